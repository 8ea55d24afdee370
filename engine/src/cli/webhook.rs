//! `seednode webhook add|list|remove|test`: webhook endpoints in the data directory's catalog
//! (works while the node runs: its sender looks for new rows every 2 s). `docs/webhooks.md`.

use ring::rand::SystemRandom;
use seednode_storage::catalog::{NewWebhookEndpoint, WebhookEvent};
use seednode_wire::display::escape_name;

use super::{CliError, WebhookArgs, WebhookCommand};
use crate::daemon::{data_dir, open_catalog, unix_now};
use crate::events::webhook::{self, seal, sign};

/// Runs `seednode webhook …`.
///
/// # Errors
/// The failure, worded for the operator.
pub(crate) fn webhook(args: &WebhookArgs) -> Result<(), CliError> {
    let dir = data_dir(args.data_dir.as_deref())?;
    let mut catalog = open_catalog(&dir)?;
    match &args.command {
        WebhookCommand::Add {
            url,
            kinds,
            secret,
            recipient_key,
            allow_private,
            label,
        } => {
            let rng = SystemRandom::new();
            let (secret, generated) = match secret {
                Some(s) => (s.clone(), false),
                None => (
                    sign::WebhookSecret::generate(&rng)
                        .map_err(|_| "the operating system's random generator failed")?,
                    true,
                ),
            };
            let recipient_key = match recipient_key {
                Some(k) => Some(
                    seal::parse_recipient_key(k).map_err(|e| format!("--recipient-key: {e}"))?,
                ),
                None => None,
            };
            let endpoint = NewWebhookEndpoint {
                url: url.clone(),
                kinds: kinds
                    .split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
                secrets: vec![secret.clone()],
                recipient_key,
                allow_private: *allow_private,
                created_at: unix_now(),
                label: label.clone().unwrap_or_default(),
            };
            webhook::check_endpoint(&endpoint).map_err(|e| format!("{}: {e}", escape_name(url)))?;
            let id = catalog
                .add_webhook_endpoint(&endpoint)
                .map_err(|e| e.to_string())?;
            println!("webhook_id={id}");
            if generated {
                println!("secret={secret}");
                eprintln!("the signing secret is shown once, above: give it to the receiver");
            }
            Ok(())
        }
        WebhookCommand::List { json } => {
            let endpoints = catalog.webhook_endpoints().map_err(|e| e.to_string())?;
            if *json {
                let list: Vec<serde_json::Value> = endpoints
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "id": e.id,
                            "url": e.endpoint.url,
                            "kinds": e.endpoint.kinds,
                            "sealed": e.endpoint.recipient_key.is_some(),
                            "allow_private": e.endpoint.allow_private,
                            "pending": e.pending,
                            "failed": e.failed,
                            "label": e.endpoint.label,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if endpoints.is_empty() {
                eprintln!("no webhooks (add one with `seednode webhook add URL --kinds '*'`)");
            } else {
                println!(
                    "{:>4}  {:>7}  {:>6}  {:<24}  URL",
                    "ID", "PENDING", "FAILED", "KINDS"
                );
                for e in &endpoints {
                    println!(
                        "{:>4}  {:>7}  {:>6}  {:<24}  {}",
                        e.id,
                        e.pending,
                        e.failed,
                        e.endpoint.kinds.join(","),
                        escape_name(&e.endpoint.url)
                    );
                }
            }
            Ok(())
        }
        WebhookCommand::Remove { id } => {
            if catalog
                .remove_webhook_endpoint(*id)
                .map_err(|e| e.to_string())?
            {
                eprintln!("webhook {id} removed");
                Ok(())
            } else {
                Err(format!("no webhook {id} (see `seednode webhook list`)"))
            }
        }
        WebhookCommand::Test { id } => {
            let endpoints = catalog.webhook_endpoints().map_err(|e| e.to_string())?;
            if !endpoints.iter().any(|e| e.id == *id) {
                return Err(format!("no webhook {id} (see `seednode webhook list`)"));
            }
            let mut event = crate::events::Event::new("webhook.test", unix_now());
            event.details = serde_json::json!({ "webhook_id": id });
            let event_id = webhook::new_event_id(&SystemRandom::new())
                .map_err(|_| "the operating system's random generator failed")?;
            let now_ms = unix_now().saturating_mul(1000);
            let queued = catalog
                .enqueue_webhook_to(
                    *id,
                    &WebhookEvent {
                        id: event_id.clone(),
                        kind: event.kind.to_owned(),
                        body: webhook::event_body(&event),
                        created_at: event.at,
                        exclude_endpoint: None,
                    },
                    now_ms,
                )
                .map_err(|e| e.to_string())?;
            if !queued {
                return Err(format!("webhook {id}: its backlog is full; nothing queued"));
            }
            println!(
                "queued {event_id} for webhook {id}: the running node delivers it within seconds"
            );
            Ok(())
        }
    }
}
