//! Connection deadlines, kept so that the nearest one can be the poll timeout
//! (Redis `ae.c` style: no timer thread, no scan of every connection on each wakeup).
//!
//! A binary heap of `(when, key, id)` with lazy deletion. Each connection carries a
//! [`Slot`] saying which heap entry is its live one; anything else popped for it is stale.
//! Two rules keep the heap small and the hot path free of pushes:
//! - a deadline that moves *later* (every keep-alive request does that) pushes nothing: when
//!   the old entry comes due, the connection is asked for its real deadline and re-armed;
//! - a connection's `id` is unique for the life of the process, so an entry left by a closed
//!   connection never fires for the new connection that got the same slab key.
//!
//! Entries of closed connections are purged once they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

/// What the heap knows about one connection.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    armed: Option<Instant>,
}

impl Slot {
    pub fn id(&self) -> u64 {
        self.id
    }
}

pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_id: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers::new()
    }
}

impl Timers {
    pub fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            next_id: 0,
        }
    }

    /// A fresh, unarmed slot for a new connection.
    pub fn slot(&mut self) -> Slot {
        self.next_id += 1;
        Slot {
            id: self.next_id,
            armed: None,
        }
    }

    /// Makes sure the connection at `key` is looked at no later than `at`.
    pub fn arm(&mut self, key: usize, slot: &mut Slot, at: Instant) {
        if slot.armed.is_some_and(|armed| armed <= at) {
            return; // the entry already in the heap comes due first; it will re-arm
        }
        slot.armed = Some(at);
        self.heap.push(Reverse((at, key, slot.id)));
    }

    /// How long the reactor may sleep, or `None` if no deadline is pending.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, ..))| at.saturating_duration_since(now))
    }

    /// Pops the next connection whose armed deadline is due at `now`, skipping stale
    /// entries. The slot is disarmed; the caller checks the connection's real deadline
    /// and re-arms it if that is still in the future.
    pub fn pop_due<T: AsMut<Slot>>(&mut self, now: Instant, conns: &mut Slab<T>) -> Option<usize> {
        while let Some(&Reverse((at, key, id))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(slot) = conns.get_mut(key).map(AsMut::as_mut) {
                if slot.id == id && slot.armed == Some(at) {
                    slot.armed = None;
                    return Some(key);
                }
            }
        }
        None
    }

    /// Drops the entries of connections that are gone once they dominate the heap, so its
    /// size stays proportional to the open connections, not to how many have come and gone.
    pub fn purge<T: AsMut<Slot>>(&mut self, conns: &mut Slab<T>) {
        if self.heap.len() <= 2 * conns.len() + 1024 {
            return;
        }
        self.heap.retain(|Reverse((at, key, id))| {
            conns
                .get_mut(*key)
                .map(AsMut::as_mut)
                .is_some_and(|s| s.id == *id && s.armed == Some(*at))
        });
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct C(Slot);
    impl AsMut<Slot> for C {
        fn as_mut(&mut self) -> &mut Slot {
            &mut self.0
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fires_in_deadline_order() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut conns = Slab::new();
        let a = conns.insert(C(timers.slot()));
        let b = conns.insert(C(timers.slot()));
        timers.arm(a, &mut conns[a].0, t0 + ms(20));
        timers.arm(b, &mut conns[b].0, t0 + ms(10));
        assert_eq!(timers.timeout(t0), Some(ms(10)));
        assert_eq!(timers.pop_due(t0 + ms(5), &mut conns), None);
        assert_eq!(timers.pop_due(t0 + ms(30), &mut conns), Some(b));
        assert_eq!(timers.pop_due(t0 + ms(30), &mut conns), Some(a));
        assert_eq!(timers.pop_due(t0 + ms(30), &mut conns), None);
        assert_eq!(timers.timeout(t0), None);
    }

    #[test]
    fn later_deadline_pushes_nothing_earlier_one_does() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut conns = Slab::new();
        let a = conns.insert(C(timers.slot()));
        timers.arm(a, &mut conns[a].0, t0 + ms(100));
        for i in 0..1000 {
            timers.arm(a, &mut conns[a].0, t0 + ms(100 + i));
        }
        assert_eq!(timers.len(), 1);
        timers.arm(a, &mut conns[a].0, t0 + ms(10));
        assert_eq!(timers.len(), 2);
        // The earlier entry is the live one; the older, later one is stale.
        assert_eq!(timers.pop_due(t0 + ms(10), &mut conns), Some(a));
        assert_eq!(timers.pop_due(t0 + ms(1000), &mut conns), None);
        assert!(timers.is_empty());
    }

    #[test]
    fn reused_slab_key_never_inherits_a_deadline() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut conns = Slab::new();
        let old = conns.insert(C(timers.slot()));
        timers.arm(old, &mut conns[old].0, t0 + ms(10));
        conns.remove(old);
        let new = conns.insert(C(timers.slot()));
        assert_eq!(new, old, "slab reuses the key");
        timers.arm(new, &mut conns[new].0, t0 + ms(50));
        assert_eq!(
            timers.pop_due(t0 + ms(20), &mut conns),
            None,
            "old deadline must not fire"
        );
        assert_eq!(timers.pop_due(t0 + ms(50), &mut conns), Some(new));
    }

    #[test]
    fn reused_key_with_the_same_instant_still_distinguished() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut conns = Slab::new();
        let old = conns.insert(C(timers.slot()));
        timers.arm(old, &mut conns[old].0, t0 + ms(10));
        conns.remove(old);
        let new = conns.insert(C(timers.slot()));
        timers.arm(new, &mut conns[new].0, t0 + ms(10));
        assert_eq!(timers.pop_due(t0 + ms(10), &mut conns), Some(new));
        assert_eq!(timers.pop_due(t0 + ms(10), &mut conns), None);
    }

    #[test]
    fn purge_bounds_the_heap_by_live_connections() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut conns = Slab::new();
        for i in 0..10_000u64 {
            let k = conns.insert(C(timers.slot()));
            timers.arm(k, &mut conns[k].0, t0 + ms(1000 + i));
            conns.remove(k);
            timers.purge(&mut conns);
        }
        assert!(timers.len() <= 1025, "heap holds {}", timers.len());
        let live = conns.insert(C(timers.slot()));
        timers.arm(live, &mut conns[live].0, t0 + ms(5));
        for _ in 0..2000 {
            let k = conns.insert(C(timers.slot()));
            timers.arm(k, &mut conns[k].0, t0 + ms(9));
            conns.remove(k);
        }
        timers.purge(&mut conns);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.pop_due(t0 + ms(5), &mut conns), Some(live));
    }
}
