//! The load generators and measurements behind `seednode bench`, shared with the developer
//! harnesses in `benches/` (which call this code instead of keeping copies).
//!
//! Unlike the rest of this library, this module performs I/O: it opens sockets, reads the clock
//! and spawns threads. It is the imperative shell of a measuring tool, not part of the node.
//!
//! The peers and trackers it measures are untrusted: every buffer, table and wait is bounded
//! (the constants in [`limits`]); a remote that breaks the protocol ends its connection with an
//! error naming what it did, never a panic; every run ends within its configured duration plus
//! a bounded grace ([`limits::GRACE`]).
//!
//! - [`leech`]: a sink leecher (BEP 3) that downloads from any seeder as fast as it sends.
//! - [`tracker_udp`] and [`tracker_http`]: load generators for any tracker (BEP 15; BEP 3 and
//!   BEP 23 compact announces, BEP 48 scrapes), over a Zipf-like swarm-size distribution
//!   ([`swarm`]).
//! - [`hash`]: torrent-creation throughput against the machine's raw SHA-1 throughput.
//! - [`Histogram`], [`Machine`], [`process_cpu_secs`]: what the reports are made of.

pub mod hash;
pub mod leech;
pub mod limits;
pub mod swarm;
pub mod tracker_http;
pub mod tracker_udp;

mod histogram;

use std::path::Path;

pub use histogram::Histogram;
use serde::Serialize;

/// The version of the code doing the measuring: the package version and the commit it was built
/// from, as `seednode --version` prints them.
pub const SEEDNODE_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SEEDNODE_COMMIT"),
    ")"
);

/// What a benchmark ran on, so that results from different boards can be compared.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo` (`model name`, or on ARM boards `Model` / `Hardware`).
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cores: usize,
    /// Target architecture of this binary (`x86_64`, `aarch64`, `arm`).
    pub arch: &'static str,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// [`SEEDNODE_VERSION`].
    pub seednode_version: &'static str,
}

impl Machine {
    /// Reads the description of this machine; unknown parts are `"unknown"`.
    #[must_use]
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_owned())
            })
        };
        let cpu_model = field("model name")
            .or_else(|| field("Model"))
            .or_else(|| field("Hardware"))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            arch: std::env::consts::ARCH,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
            seednode_version: SEEDNODE_VERSION,
        }
    }
}

/// Clock ticks per second of the `utime` and `stime` fields of `/proc/PID/stat`: Linux's
/// `USER_HZ`, 100 on every architecture this runs on (x86_64, aarch64, armv7).
pub const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads, not reaped children) used so far by process `pid`,
/// from `/proc/PID/stat` fields 14 and 15; `pid` "self" is this process.
///
/// # Errors
/// The file cannot be read or does not have the fields (not Linux, or the process is gone).
pub fn process_cpu_secs(pid: &str) -> std::io::Result<f64> {
    let path = Path::new("/proc").join(pid).join("stat");
    let text = std::fs::read_to_string(&path)?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed /proc stat");
    let rest = text.rsplit_once(')').ok_or_else(bad)?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let tick = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(bad)
    };
    Ok((tick(14)? + tick(15)?) as f64 / USER_HZ)
}

/// Bytes per second over `secs`, in MB/s (10^6 bytes); 0 when `secs` is not positive.
#[must_use]
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Renders rows as a table with aligned columns: the first column left-aligned, the others
/// right-aligned (numbers), two spaces between columns.
#[must_use]
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.take(cols).enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            if i > 0 {
                s.push_str("  ");
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["what", "MB/s"],
            &[
                vec!["a".into(), "1.0".into()],
                vec!["longer".into(), "123.4".into()],
            ],
        );
        assert_eq!(t, "what     MB/s\na         1.0\nlonger  123.4\n");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(&[]).abs() < 1e-9);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(process_cpu_secs("self").expect("/proc/self/stat") >= 0.0);
    }
}
