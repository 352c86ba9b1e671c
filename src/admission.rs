//! Who gets in: the connection cap (the event loop's answer to the Go post's semaphore
//! middleware and `netutil.LimitListener`), the `503` budget of `reject` mode, the pause
//! after `EMFILE`, and the file-descriptor budget that bounds them all. Sans I/O: the
//! reactor asks before each `accept` and reports what came of it; the clock is passed in.

use std::io;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::config::Overload;
use crate::episode::Episode;

/// Pause after `EMFILE`/`ENFILE` before accepting again.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

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
    /// `reject`: connections over the cap are accepted to be refused (each holds a
    /// descriptor while its `503` goes out); in `queue` mode they stay in the backlog and
    /// hold none.
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

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Under the cap: serve it.
    Serve,
    /// Over the cap in `reject` mode: answer `503` and close.
    Refuse,
}

#[derive(Debug)]
pub struct Admission {
    max_conns: usize,
    overload: Overload,
    reject_budget: usize,
    /// Connections being served, and connections on their way out with a `503`.
    open: usize,
    refusing: usize,
    at_cap: bool,
    paused_until: Option<Instant>,
    /// One warning per episode: at the cap, out of descriptors.
    crowded: Episode,
    trouble: Episode,
}

impl Admission {
    /// `max_conns` as the fd budget allows it; `reject_budget` from the same budget.
    pub fn new(max_conns: usize, overload: Overload, reject_budget: usize) -> Admission {
        Admission {
            max_conns: max_conns.max(1),
            overload,
            reject_budget,
            open: 0,
            refusing: 0,
            at_cap: false,
            paused_until: None,
            crowded: Episode::default(),
            trouble: Episode::default(),
        }
    }

    /// Before each `accept`: whether to take one more connection from the backlog. No
    /// while accepting is paused, or at the cap in `queue` mode (the clients wait in the
    /// kernel), or at the cap with the `503` budget spent.
    pub fn may_accept(&mut self, now: Instant) -> bool {
        match self.paused_until {
            Some(t) if now < t => return false,
            _ => self.paused_until = None,
        }
        let full = self.open >= self.max_conns
            && (self.overload == Overload::Queue || self.refusing >= self.reject_budget);
        if full && !self.at_cap {
            self.at_cap = true;
            if self.crowded.begins(now) {
                warn!(
                    "at the connection cap ({}): new clients wait in the listen backlog",
                    self.max_conns
                );
            }
        }
        !full
    }

    /// A connection was accepted (after [`Admission::may_accept`] said yes).
    pub fn admit(&mut self, now: Instant) -> Admit {
        if self.open < self.max_conns {
            if self.at_cap {
                self.at_cap = false;
                info!("below the connection cap again");
            }
            self.open += 1;
            Admit::Serve
        } else {
            if !self.at_cap {
                self.at_cap = true;
                if self.crowded.begins(now) {
                    warn!(
                        "at the connection cap ({}): refusing new clients with 503",
                        self.max_conns
                    );
                }
            }
            self.refusing += 1;
            Admit::Refuse
        }
    }

    /// `accept` said `WouldBlock`: the backlog is empty. Below the cap there is nothing
    /// left to retry at the end of a turn (a new client raises a new edge).
    pub fn drained(&mut self) {
        if self.open < self.max_conns {
            self.at_cap = false;
        }
    }

    /// A connection admitted as `how` has closed.
    pub fn closed(&mut self, how: Admit) {
        match how {
            Admit::Serve => self.open = self.open.saturating_sub(1),
            Admit::Refuse => self.refusing = self.refusing.saturating_sub(1),
        }
    }

    /// `accept` failed with something other than `WouldBlock` or a client that gave up:
    /// `EMFILE`, `ENFILE`, `ENOBUFS`. The pending connection stays queued and the listener
    /// stays readable, so retrying at once would spin: pause instead, warning once.
    pub fn accept_failed(&mut self, err: &io::Error, now: Instant) {
        if self.trouble.begins(now) {
            warn!("accept failed: {err}; pausing accepts for {ACCEPT_PAUSE:?} at a time");
        }
        self.paused_until = Some(now + ACCEPT_PAUSE);
    }

    /// Accepting stopped short of `WouldBlock` (the cap, or a pause): edge-triggered
    /// readiness will not report the waiting clients again, so the reactor must try
    /// again itself, at the end of each turn.
    pub fn stalled(&self) -> bool {
        self.at_cap || self.paused_until.is_some()
    }

    /// When a pause ends: part of the poll timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.paused_until
    }

    pub fn open(&self) -> usize {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn queue_mode_stops_accepting_at_the_cap_and_resumes_when_one_closes() {
        let now = Instant::now();
        let mut a = Admission::new(2, Overload::Queue, 0);
        assert!(a.may_accept(now));
        assert_eq!(a.admit(now), Admit::Serve);
        assert!(a.may_accept(now));
        assert_eq!(a.admit(now), Admit::Serve);
        assert!(!a.may_accept(now), "the third client waits in the backlog");
        assert!(a.stalled(), "the reactor must retry: no new edge will come");
        a.closed(Admit::Serve);
        assert!(a.may_accept(now));
        assert_eq!(a.admit(now), Admit::Serve);
        assert!(!a.stalled());
        assert_eq!(a.open(), 2);
        // Room, and nobody waiting: nothing to retry each turn.
        a.closed(Admit::Serve);
        assert!(!a.may_accept(now) || a.stalled() || a.open() == 1);
        a.drained();
        assert!(!a.stalled(), "no accept retried at the end of every turn");
    }

    #[test]
    fn reject_mode_refuses_within_its_budget() {
        let now = Instant::now();
        let mut a = Admission::new(1, Overload::Reject, 2);
        assert_eq!(a.admit(now), Admit::Serve);
        for _ in 0..2 {
            assert!(a.may_accept(now));
            assert_eq!(a.admit(now), Admit::Refuse);
        }
        assert!(!a.may_accept(now), "the 503 budget is spent");
        a.closed(Admit::Refuse);
        assert!(a.may_accept(now));
        assert_eq!(a.admit(now), Admit::Refuse);
        a.closed(Admit::Serve);
        assert_eq!(a.admit(now), Admit::Serve, "room again");
    }

    #[test]
    fn emfile_pauses_accepting_for_a_while_without_spinning() {
        let t0 = Instant::now();
        let mut a = Admission::new(10, Overload::Queue, 0);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        a.accept_failed(&emfile, t0);
        assert!(!a.may_accept(t0));
        assert!(!a.may_accept(t0 + ACCEPT_PAUSE / 2));
        assert_eq!(
            a.deadline(),
            Some(t0 + ACCEPT_PAUSE),
            "the poll wakes for it"
        );
        assert!(a.stalled());
        assert!(a.may_accept(t0 + ACCEPT_PAUSE));
        assert_eq!(a.deadline(), None);
        assert!(!a.stalled());
    }
}
