//! `seednode info FILE.torrent`: what a torrent holds, as text (like `transmission-show`) or
//! JSON. Names come from the file and are shown escaped (control and bidi characters as
//! `\u{..}`), never raw.

use std::fmt::Write as _;

use seednode_wire::bencode::{self, Value};
use seednode_wire::display::escape_name;
use seednode_wire::metainfo::Metainfo;

use super::torrent_file::{magnet_of, read_torrent_file};
use super::{CliError, InfoArgs};

/// The torrent's `source` (in `info`, as private trackers set it), when it is a UTF-8 string.
pub(crate) fn info_source(meta: &Metainfo) -> Option<String> {
    match bencode::decode(&meta.info_bytes) {
        Ok(Value::Dict(d)) => match d.get(b"source") {
            Some(Value::Bytes(s)) => std::str::from_utf8(s).ok().map(str::to_owned),
            _ => None,
        },
        _ => None,
    }
}

/// A file of the torrent as clients list it: `name/path` (multi-file) or `name`.
struct File {
    path: String,
    length: u64,
}

/// The torrent's real files, in order, without BEP 47 padding files (`.pad/<N>`).
fn files(meta: &Metainfo) -> Vec<File> {
    let name = &meta.info.name;
    let join = |path: &[String]| {
        if path.is_empty() {
            name.clone()
        } else {
            format!("{name}/{}", path.join("/"))
        }
    };
    match meta.v2.as_ref().filter(|_| !meta.has_v1()) {
        // v2-only: the file tree (a single file's one component is its name).
        Some(v2) => v2
            .info
            .files
            .iter()
            .map(|f| File {
                path: if v2.info.multi_file {
                    join(&f.path)
                } else {
                    f.path.join("/")
                },
                length: f.length,
            })
            .collect(),
        None => meta
            .info
            .files
            .iter()
            .filter(|f| !matches!(f.path.as_slice(), [dir, n] if dir == ".pad" && *n == f.length.to_string()))
            .map(|f| File {
                path: join(&f.path),
                length: f.length,
            })
            .collect(),
    }
}

/// The tracker tiers (BEP 12), or `announce` alone as one tier.
fn tiers(meta: &Metainfo) -> Vec<Vec<String>> {
    if meta.announce_list.is_empty() {
        meta.announce.iter().map(|a| vec![a.clone()]).collect()
    } else {
        meta.announce_list.clone()
    }
}

/// A JSON string literal of `s` (RFC 8259: quotes, backslash and control characters escaped).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), json_string)
}

fn json_list<T>(items: &[T], each: impl Fn(&T) -> String) -> String {
    let parts: Vec<String> = items.iter().map(each).collect();
    format!("[{}]", parts.join(","))
}

/// The JSON form: one object, keys as in the text form.
fn to_json(meta: &Metainfo) -> String {
    let v1 = meta.has_v1().then(|| meta.info_hash.to_string());
    let v2 = meta.info_hash_v2().map(|h| h.to_string());
    let files = files(meta);
    let mut out = String::from("{");
    let _ = write!(
        out,
        "\"name\":{},\"info_hash_v1\":{},\"info_hash_v2\":{},\"piece_length\":{},\"pieces\":{},\
         \"total_length\":{},\"private\":{},\"source\":{},\"comment\":{},\"created_by\":{},\
         \"creation_date\":{},",
        json_string(&meta.info.name),
        json_opt(v1.as_deref()),
        json_opt(v2.as_deref()),
        meta.info.piece_length,
        meta.info.pieces.len(),
        meta.info.total_length(),
        meta.info.private,
        json_opt(info_source(meta).as_deref()),
        json_opt(meta.comment.as_deref()),
        json_opt(meta.created_by.as_deref()),
        meta.creation_date
            .map_or_else(|| "null".to_owned(), |d| d.to_string()),
    );
    let _ = write!(
        out,
        "\"files\":{},\"trackers\":{},\"webseeds\":{},\"magnet\":{}}}",
        json_list(&files, |f| format!(
            "{{\"path\":{},\"length\":{}}}",
            json_string(&f.path),
            f.length
        )),
        json_list(&tiers(meta), |tier| json_list(tier, |u| json_string(u))),
        json_list(&meta.url_list, |u| json_string(u)),
        json_string(&magnet_of(meta, &[])),
    );
    out
}

/// The text form, one `key: value` a line, files and trackers indented below their heading.
fn to_text(meta: &Metainfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name: {}", escape_name(&meta.info.name));
    if meta.has_v1() {
        let _ = writeln!(out, "info-hash v1: {}", meta.info_hash);
    }
    if let Some(v2) = meta.info_hash_v2() {
        let _ = writeln!(out, "info-hash v2: {v2}");
    }
    let _ = writeln!(out, "piece length: {}", meta.info.piece_length);
    let _ = writeln!(out, "pieces: {}", meta.info.pieces.len());
    let _ = writeln!(out, "total length: {}", meta.info.total_length());
    let _ = writeln!(
        out,
        "private: {}",
        if meta.info.private { "yes" } else { "no" }
    );
    if let Some(source) = info_source(meta) {
        let _ = writeln!(out, "source: {}", escape_name(&source));
    }
    if let Some(comment) = &meta.comment {
        let _ = writeln!(out, "comment: {}", escape_name(comment));
    }
    if let Some(by) = &meta.created_by {
        let _ = writeln!(out, "created by: {}", escape_name(by));
    }
    if let Some(date) = meta.creation_date {
        let _ = writeln!(out, "creation date: {date}");
    }
    let files = files(meta);
    let _ = writeln!(out, "files: {}", files.len());
    for f in &files {
        let _ = writeln!(out, "  {} ({} bytes)", escape_name(&f.path), f.length);
    }
    let tiers = tiers(meta);
    let _ = writeln!(
        out,
        "trackers: {}",
        tiers.iter().map(Vec::len).sum::<usize>()
    );
    for (i, tier) in tiers.iter().enumerate() {
        for url in tier {
            let _ = writeln!(out, "  tier {i}: {}", escape_name(url));
        }
    }
    if !meta.url_list.is_empty() {
        let _ = writeln!(out, "webseeds: {}", meta.url_list.len());
        for url in &meta.url_list {
            let _ = writeln!(out, "  {}", escape_name(url));
        }
    }
    let _ = writeln!(out, "magnet: {}", magnet_of(meta, &[]));
    out
}

pub(crate) fn info(args: &InfoArgs) -> Result<(), CliError> {
    let meta = read_torrent_file(&args.torrent)?;
    if args.json {
        println!("{}", to_json(&meta));
    } else {
        print!("{}", to_text(&meta));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_and_controls() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
