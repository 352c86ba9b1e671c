//! One warning per episode of a protection firing (the cap, the rate limiter, slow
//! clients, `EMFILE`), never one per refused request or connection.

use std::time::{Duration, Instant};

/// An episode ends after a quiet spell with no events.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
