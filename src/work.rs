//! Work that takes time (`--work-us N --work MODE`), sans I/O: what a request waits for
//! before its answer, and where it waits.
//!
//! `sleep` and `spin` happen inside the router, on the loop's thread. `timer` and `pool`
//! are the event loop's two answers to waiting: the request becomes a [`Job`] that waits
//! in [`InWork`] — parked on a deadline the loop sleeps towards, or out at a worker thread —
//! while the loop serves everyone else, and the router finishes it when it comes back.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::http::Framing;

/// How the loop spends the work of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkMode {
    /// The handler blocks the thread: every other client waits (the problem).
    Sleep,
    /// The handler computes on the loop's core: CPU work, which more cores can share.
    Spin,
    /// The wait is a deadline in the loop's own timer heap: an event, like any other.
    Timer,
    /// The blocking call runs on a worker thread; its completion comes back as an event.
    Pool,
}

/// `--work-us` and `--work`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub mode: WorkMode,
    pub time: Duration,
}

impl Default for Work {
    fn default() -> Self {
        Work {
            mode: WorkMode::Sleep,
            time: Duration::ZERO,
        }
    }
}

/// A counter operation, checked and decoded before any work is done for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Set(i64),
    Inc,
}

/// A request waiting for its work: all it needs to be answered later, and nothing of the
/// connection's buffers (a few dozen bytes and the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub op: Op,
    pub name: Box<str>,
    pub framing: Framing,
}

/// Which connection awaits a job's answer: its slab key, and its serial number, which is
/// unique for the life of the process so that a key reused by a newer connection never
/// receives an older connection's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub key: usize,
    pub serial: u64,
}

/// A job in work, as [`InWork`] keeps it and gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub owner: Owner,
    pub job: Job,
    /// Unique for the life of the process (ids are reused): the flight recorder draws the
    /// wait from its start to its end under this number.
    pub seq: u64,
}

/// The requests in work: each with its owner, parked on a deadline or out at the pool.
/// A job is carried out even if its connection closes meanwhile; only its answer is lost.
#[derive(Debug, Default)]
pub struct InWork {
    jobs: Slab<Waiting>,
    /// Parked jobs by deadline (timer mode); ties keep the order in which they were parked.
    parked: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    started: u64,
}

impl InWork {
    pub fn new() -> InWork {
        InWork::default()
    }

    /// Takes on `job` for `owner` until [`InWork::take`] (the pool's completion) or, with a
    /// deadline, [`InWork::pop_due`]. Returns the job's id and its sequence number.
    pub fn start(&mut self, owner: Owner, job: Job, due: Option<Instant>) -> (usize, u64) {
        self.started += 1;
        let seq = self.started;
        let id = self.jobs.insert(Waiting { owner, job, seq });
        if let Some(at) = due {
            self.parked.push(Reverse((at, seq, id)));
        }
        (id, seq)
    }

    /// The nearest deadline of a parked job: the loop sleeps no longer than this.
    pub fn next_due(&self) -> Option<Instant> {
        self.parked.peek().map(|Reverse((at, ..))| *at)
    }

    /// The next parked job whose deadline has passed at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Waiting> {
        let &Reverse((at, _, id)) = self.parked.peek()?;
        if at > now {
            return None;
        }
        self.parked.pop();
        self.take(id)
    }

    /// The job with `id`, done.
    pub fn take(&mut self, id: usize) -> Option<Waiting> {
        self.jobs.try_remove(id)
    }

    /// Requests in work: `counterd_work_in_flight`.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Job {
        Job {
            op: Op::Inc,
            name: name.into(),
            framing: Framing::CLOSE,
        }
    }

    fn owner(key: usize) -> Owner {
        Owner { key, serial: 7 }
    }

    #[test]
    fn parked_jobs_come_due_in_deadline_order_then_parking_order() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut w = InWork::new();
        w.start(owner(1), job("late"), Some(t + ms(20)));
        w.start(owner(2), job("first"), Some(t + ms(10)));
        w.start(owner(3), job("second"), Some(t + ms(10)));
        assert_eq!(w.len(), 3);
        assert_eq!(w.next_due(), Some(t + ms(10)));
        assert_eq!(w.pop_due(t + ms(9)), None, "nothing is due early");
        let due: Vec<_> = std::iter::from_fn(|| w.pop_due(t + ms(15)))
            .map(|w| (w.owner, w.job, w.seq))
            .collect();
        assert_eq!(
            due,
            [(owner(2), job("first"), 2), (owner(3), job("second"), 3)]
        );
        assert_eq!(w.next_due(), Some(t + ms(20)));
        let last = w.pop_due(t + ms(20)).unwrap();
        assert_eq!((last.owner, last.job, last.seq), (owner(1), job("late"), 1));
        assert!(w.is_empty());
        assert_eq!(w.next_due(), None);
    }

    #[test]
    fn pool_jobs_are_taken_by_id_once() {
        let mut w = InWork::new();
        let (a, _) = w.start(owner(1), job("a"), None);
        let (b, seq) = w.start(owner(2), job("b"), None);
        assert_eq!(w.next_due(), None, "pool jobs have no deadline");
        let taken = w.take(b).unwrap();
        assert_eq!(
            (taken.owner, taken.job, taken.seq),
            (owner(2), job("b"), seq)
        );
        assert_eq!(w.take(b), None);
        assert_eq!(w.len(), 1);
        assert_eq!(w.take(a).map(|w| w.owner), Some(owner(1)));
        assert!(w.is_empty());
        // Ids are reused, sequence numbers never.
        let (again, seq_again) = w.start(owner(3), job("c"), None);
        assert_eq!(again, a);
        assert!(seq_again > seq);
    }
}
