//! Progress of hashing and verification: an indicatif bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports bytes done, out of a total when one is known. Shared by hashing threads (`Sync`).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    label: &'static str,
    total: Option<u64>,
    /// Last step reported in plain mode: tenths of the total, or units of [`PLAIN_STEP_BYTES`].
    last_step: AtomicU64,
}

/// Without a known total, plain mode prints a line every this many bytes.
const PLAIN_STEP_BYTES: u64 = 256 * 1024 * 1024;

impl Progress {
    /// Starts reporting `label` over `total` bytes.
    pub(crate) fn new(label: &'static str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(t) => (
                    ProgressBar::new(t),
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ),
                None => (
                    ProgressBar::new_spinner(),
                    "{msg} {spinner} {bytes} {bytes_per_sec}",
                ),
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(label);
            bar
        });
        Self {
            bar,
            label,
            total,
            last_step: AtomicU64::new(0),
        }
    }

    /// Records that `done` bytes are finished.
    pub(crate) fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        match self.total {
            Some(0) => {}
            Some(total) => {
                let tenth = done.saturating_mul(10) / total;
                if self.last_step.fetch_max(tenth, Ordering::Relaxed) < tenth {
                    eprintln!("{}: {}% ({done} of {total} bytes)", self.label, tenth * 10);
                }
            }
            None => {
                let step = done / PLAIN_STEP_BYTES;
                if self.last_step.fetch_max(step, Ordering::Relaxed) < step {
                    eprintln!("{}: {done} bytes", self.label);
                }
            }
        }
    }

    /// Ends the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
