//! Protections that cap what clients can take: the per-IP rate limiter, and the file
//! descriptor budget that bounds the connection cap.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket per client address: `rate` tokens a second, at most `burst` saved up.
///
/// The table is bounded: a bucket that has refilled completely carries no information
/// (a new one would be identical), so full buckets are swept out when the table is at its
/// bound. If even then no room can be made, the new address is refused: the limiter fails
/// closed rather than letting a flood from many addresses grow memory.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
    max_tracked: usize,
    /// A sweep that freed nothing is not retried for a while, so a flood from many
    /// addresses costs one O(n) sweep a second, not one per request.
    next_sweep: Option<Instant>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub const DEFAULT_MAX_TRACKED: usize = 65_536;

    /// `rate` > 0 tokens a second, `burst` >= 1.
    pub fn new(rate: f64, burst: f64, max_tracked: usize) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            buckets: HashMap::new(),
            max_tracked,
            next_sweep: None,
        }
    }

    /// Takes a token for `ip`. `Err(secs)`: refused; retry after that many whole seconds.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let ip = ip.to_canonical();
        if !self.buckets.contains_key(&ip) && !self.make_room(now) {
            return Err(1);
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        bucket.tokens = refill(bucket, rate, burst, now);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / rate).ceil();
            Err((wait as u64).max(1))
        }
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    fn make_room(&mut self, now: Instant) -> bool {
        if self.buckets.len() < self.max_tracked {
            return true;
        }
        if self.next_sweep.is_some_and(|t| now < t) {
            return false;
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .retain(|_, b| refill(b, rate, burst, now) < burst);
        let freed = self.buckets.len() < self.max_tracked;
        self.next_sweep = (!freed).then(|| now + Duration::from_secs(1));
        freed
    }
}

fn refill(b: &Bucket, rate: f64, burst: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

/// One warning per episode of a protection firing, never one per refused request: an
/// episode ends after a quiet spell with no events.
#[derive(Debug, Default)]
pub struct Episode {
    last: Option<Instant>,
}

impl Episode {
    pub const QUIET: Duration = Duration::from_secs(10);

    /// Records an event; true if it starts a new episode (and so deserves a warning).
    pub fn begins(&mut self, now: Instant) -> bool {
        let new = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= Self::QUIET);
        self.last = Some(now);
        new
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// How `fd_limit` descriptors are shared out: connections under the cap, connections
/// being refused with `503` (in `reject` mode only), and a small fixed reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The largest connection cap the descriptors allow.
    pub max_conns: usize,
    /// Connections being refused with `503` at once, on top of the cap.
    pub reject_budget: usize,
}

/// Descriptors kept back for stdio, epoll, the listener, the signal pipe, the journal and
/// slack (Redis keeps 32), but never more than half: under a low limit at least half
/// the descriptors still serve connections.
pub const RESERVED_FDS: u64 = 32;
/// The most connections refused with `503` at once.
pub const MAX_REJECT_BUDGET: usize = 64;

impl FdBudget {
    /// `reject`: whether connections over the cap are accepted to be refused (they hold a
    /// descriptor while their `503` goes out), or left in the listen backlog (they hold none).
    pub fn new(fd_limit: u64, reject: bool) -> FdBudget {
        let reserve = RESERVED_FDS.min(fd_limit / 2);
        let available = usize::try_from(fd_limit - reserve).unwrap_or(usize::MAX);
        let reject_budget = if reject {
            MAX_REJECT_BUDGET.min(available / 4)
        } else {
            0
        };
        FdBudget {
            max_conns: (available - reject_budget).max(1),
            reject_budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(20.0, 1.0, 100);
        assert_eq!(rl.check(ip(1), t0), Ok(()));
        assert_eq!(rl.check(ip(1), t0), Err(1));
        assert_eq!(rl.check(ip(1), t0 + Duration::from_millis(10)), Err(1));
        assert_eq!(rl.check(ip(1), t0 + Duration::from_millis(100)), Ok(()));
        // Another address has its own bucket.
        assert_eq!(rl.check(ip(2), t0 + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn burst_allows_that_many_back_to_back() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1.0, 5.0, 100);
        for _ in 0..5 {
            assert_eq!(rl.check(ip(1), t0), Ok(()));
        }
        assert!(rl.check(ip(1), t0).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(0.25, 1.0, 100);
        assert_eq!(rl.check(ip(1), t0), Ok(()));
        assert_eq!(rl.check(ip(1), t0), Err(4));
        assert_eq!(rl.check(ip(1), t0 + Duration::from_millis(1500)), Err(3));
        let mut fast = RateLimiter::new(1000.0, 1.0, 100);
        assert_eq!(fast.check(ip(1), t0), Ok(()));
        assert_eq!(fast.check(ip(1), t0), Err(1));
    }

    #[test]
    fn ipv4_mapped_ipv6_shares_the_ipv4_bucket() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1.0, 1.0, 100);
        assert_eq!(rl.check(ip(1), t0), Ok(()));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(rl.check(mapped, t0).is_err());
    }

    #[test]
    fn table_stays_bounded_and_forgets_full_buckets() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10.0, 1.0, 4);
        for i in 0..4 {
            assert_eq!(rl.check(ip(i), t0), Ok(()));
        }
        // Full table of recently-used buckets: a new address is refused, nothing grows.
        assert_eq!(rl.check(ip(9), t0), Err(1));
        assert_eq!(rl.tracked(), 4);
        // A second later every bucket has refilled and is forgotten to make room.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(rl.check(ip(9), later), Ok(()));
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn one_warning_per_episode() {
        let t0 = Instant::now();
        let mut e = Episode::default();
        assert!(e.begins(t0));
        for ms in (100..5000).step_by(100) {
            assert!(!e.begins(t0 + Duration::from_millis(ms)));
        }
        assert!(e.begins(t0 + Duration::from_millis(4900) + Episode::QUIET));
    }

    #[test]
    fn fd_budget() {
        let budget = |fds, reject| {
            let b = FdBudget::new(fds, reject);
            (b.max_conns, b.reject_budget)
        };
        // queue mode never sends a 503, so it keeps nothing back for them.
        assert_eq!(budget(1024, false), (992, 0));
        assert_eq!(budget(1024, true), (928, 64));
        // A low limit: half the descriptors still serve connections.
        assert_eq!(budget(64, false), (32, 0));
        assert_eq!(budget(64, true), (24, 8));
        assert_eq!(budget(10, false), (5, 0));
        assert_eq!(budget(10, true), (4, 1));
        assert_eq!(budget(1, false), (1, 0));
        assert_eq!(budget(0, true), (1, 0));
        for fds in 0..5000 {
            for reject in [false, true] {
                let b = FdBudget::new(fds, reject);
                let used = (b.max_conns + b.reject_budget) as u64;
                assert!(used <= fds.max(1), "{fds} {reject}: {b:?}");
                assert!(2 * used >= fds, "{fds} {reject}: {b:?}");
            }
        }
    }
}
