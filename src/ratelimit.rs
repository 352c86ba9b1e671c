//! The per-client-IP token bucket behind `--rate` (the Go post's "no more than one request
//! per 50 ms" is `--rate 20 --burst 1`).

use std::collections::HashMap;
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
}
