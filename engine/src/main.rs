//! `seednode`: a headless BitTorrent seed node.
//!
//! `seednode seed PATH` hashes a file or directory (or verifies it against `--torrent`), writes the
//! .torrent beside it, prints the info-hash and magnet link, and seeds it over the peer wire
//! (BEP 3) with a built-in HTTP tracker on the same port, until SIGINT or SIGTERM. The command
//! line itself is in [`cli`].

use seednode::{ban, choker, dial, limits, rate, session};

mod cli;
mod daemon;
mod disk;
mod events;
mod front_door;
mod http;
mod nat;
mod nostr;
mod outq;
mod progress;
mod reactor;
mod sniff;
mod udp_batch;

use std::process::ExitCode;

use clap::Parser;

/// Exit status after a panic anywhere in the process (Rust's own for a panicking `main`).
const PANIC_EXIT_CODE: i32 = 101;

/// Makes a panic on any thread end the whole process with one log line and
/// [`PANIC_EXIT_CODE`], so that a half-alive node (a dead disk or resolver thread behind a live
/// event loop) never lingers: systemd's `Restart=on-failure` starts a fresh one.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            thread = name,
            at = %place,
            message = %message.escape_debug(),
            "panic: exiting"
        );
        std::process::exit(PANIC_EXIT_CODE);
    }));
}

/// Raises the soft limit on open descriptors to the hard limit (systemd's `LimitNOFILE`, or
/// the shell's `ulimit -Hn`): each connection and each open file of a served torrent takes one,
/// and the common soft default of 1,024 is at `--max-connections`' default already. Never
/// lowers it; a failure leaves the limit as it was (connections past it are refused by accept,
/// which backs off).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    // `None` is "unlimited"; the kernel still caps descriptors at `fs.nr_open` (2^20 by
    // default), the value asked for then.
    const NR_OPEN_DEFAULT: u64 = 1 << 20;
    let mut limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(NR_OPEN_DEFAULT);
    if limit.current.is_some_and(|c| c < target) {
        limit.current = Some(target);
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    raise_open_file_limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    /// Set in the child run of [`a_panic_on_any_thread_ends_the_process`].
    const CHILD_ENV: &str = "SEEDNODE_TEST_PANIC_CHILD";

    #[test]
    fn a_panic_on_any_thread_ends_the_process() {
        if std::env::var_os(CHILD_ENV).is_some() {
            install_panic_hook();
            let worker = std::thread::Builder::new()
                .name("disk-0".into())
                .spawn(|| panic!("worker gave up"))
                .expect("spawn");
            let _ = worker.join();
            // Never reached: the hook ended the process.
            std::thread::sleep(std::time::Duration::from_secs(30));
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "panic_tests::a_panic_on_any_thread_ends_the_process",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .expect("run child");
        assert_eq!(out.status.code(), Some(PANIC_EXIT_CODE), "{out:?}");
    }
}
