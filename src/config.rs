//! The one typed configuration: what the command line says, validated once by `cli`, with
//! every default in one place. Every part is built from it: the reactor, the router, each
//! connection's limits, and the thread-per-connection twins of `examples/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::work::Work;

/// The original program's counters: `i` and `j`, at zero. With `--journal`, only a new
/// journal gets them.
pub const PRELOAD: [(&str, i64); 2] = [("i", 0), ("j", 0)];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    /// `listen(2)` backlog: where clients wait at the cap and in bursts.
    pub backlog: u32,
    /// Cap on open client connections (before the fd limit clamps it).
    pub max_conns: usize,
    pub overload: Overload,
    /// Per-client-IP token bucket.
    pub rate: Option<Rate>,
    pub limits: Limits,
    pub max_counters: usize,
    /// `--work-us` and `--work`: the work a counter request needs, a teaching device.
    pub work: Work,
    /// `--pool-threads`: workers for `--work pool`.
    pub pool_threads: usize,
    pub journal: Option<PathBuf>,
    pub fsync: Fsync,
    /// `--journal-recover`: take the point-in-time cut even where `--fsync always` refuses.
    pub journal_recover: bool,
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 8000,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            backlog: 1024,
            max_conns: 10_000,
            overload: Overload::Queue,
            rate: None,
            limits: Limits::default(),
            max_counters: 1_000_000,
            work: Work::default(),
            pool_threads: 16,
            journal: None,
            fsync: Fsync::EverySec,
            journal_recover: false,
            verbose: false,
        }
    }
}

/// What one connection may take: the bounds on a request and the clocks it runs against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_head_bytes: usize,
    /// A request (head and body) must arrive within this from its first byte: `408`.
    pub header_timeout: Duration,
    /// Idle keep-alive, never-sent, and output that makes no progress.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8192,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens a second.
    pub per_second: f64,
    /// Bucket size: requests a client may make back to back.
    pub burst: f64,
}

impl Rate {
    /// `--rate R` alone: a burst of one second's worth, at least 1.
    pub fn new(per_second: f64, burst: Option<f64>) -> Rate {
        Rate {
            per_second,
            burst: burst.unwrap_or(per_second.ceil().max(1.0)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// At the cap, stop accepting: new clients wait in the kernel's listen backlog.
    Queue,
    /// At the cap, accept and answer `503`.
    Reject,
}

/// With `--journal`: when a turn's records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before the turn's answers go out: a `200` means on disk.
    Always,
    /// At most once a second (and at a graceful stop).
    EverySec,
    /// When the kernel decides (and at a graceful stop).
    No,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_burst_defaults_to_one_seconds_worth() {
        assert_eq!(Rate::new(20.0, Some(1.0)).burst, 1.0);
        assert_eq!(Rate::new(2.5, None).burst, 3.0);
        assert_eq!(Rate::new(0.1, None).burst, 1.0);
    }
}
