//! The counter table.
//!
//! One thread owns it, so it is a plain `HashMap`: no `Mutex`, no manager goroutine.
//! SipHash (std's default) is kept on purpose: names come from the network, and a
//! predictable hash would let a client force every name into one bucket.

use std::collections::HashMap;

/// Why `inc` did nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum IncError {
    NotFound,
    Overflow,
}

/// `set` would create a counter beyond the configured maximum.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// What the router needs of a counter table. [`Store`] is the real one, owned by the
/// reactor thread; the thread-per-connection twins in `examples/` implement this over a
/// `Mutex<Store>` or a channel to a manager thread, so that only the concurrency differs.
pub trait Counters {
    fn get(&mut self, name: &str) -> Option<i64>;
    fn set(&mut self, name: &str, val: i64) -> Result<(), Full>;
    fn inc(&mut self, name: &str) -> Result<i64, IncError>;
    /// How many counters exist.
    fn count(&mut self) -> usize;
    /// The most counters `set` may create.
    fn max(&self) -> usize;
}

impl Counters for Store {
    fn get(&mut self, name: &str) -> Option<i64> {
        Store::get(self, name)
    }
    fn set(&mut self, name: &str, val: i64) -> Result<(), Full> {
        Store::set(self, name, val)
    }
    fn inc(&mut self, name: &str) -> Result<i64, IncError> {
        Store::inc(self, name)
    }
    fn count(&mut self) -> usize {
        Store::len(self)
    }
    fn max(&self) -> usize {
        Store::max(self)
    }
}

pub struct Store {
    counters: HashMap<Box<str>, i64>,
    max: usize,
}

impl Store {
    /// An empty table that refuses to grow past `max` counters.
    pub fn new(max: usize) -> Store {
        Store {
            counters: HashMap::new(),
            max,
        }
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        self.counters.get(name).copied()
    }

    /// Every counter, in no particular order (for the journal's compacted form).
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.counters.iter().map(|(k, v)| (&**k, *v))
    }

    /// Creates or overwrites. Overwriting an existing name never allocates.
    pub fn set(&mut self, name: &str, val: i64) -> Result<(), Full> {
        if let Some(v) = self.counters.get_mut(name) {
            *v = val;
            return Ok(());
        }
        if self.counters.len() >= self.max {
            return Err(Full);
        }
        self.counters.insert(name.into(), val);
        Ok(())
    }

    /// Adds one and returns the new value; never creates, never wraps.
    pub fn inc(&mut self, name: &str) -> Result<i64, IncError> {
        let v = self.counters.get_mut(name).ok_or(IncError::NotFound)?;
        *v = v.checked_add(1).ok_or(IncError::Overflow)?;
        Ok(*v)
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_inc() {
        let mut s = Store::new(10);
        assert_eq!(s.get("x"), None);
        s.set("x", 41).unwrap();
        assert_eq!(s.get("x"), Some(41));
        assert_eq!(s.inc("x"), Ok(42));
        assert_eq!(s.get("x"), Some(42));
        s.set("x", -7).unwrap();
        assert_eq!(s.get("x"), Some(-7));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn inc_never_creates() {
        let mut s = Store::new(10);
        assert_eq!(s.inc("nope"), Err(IncError::NotFound));
        assert!(s.is_empty());
    }

    #[test]
    fn inc_at_i64_max_is_refused_and_value_kept() {
        let mut s = Store::new(10);
        s.set("m", i64::MAX - 1).unwrap();
        assert_eq!(s.inc("m"), Ok(i64::MAX));
        assert_eq!(s.inc("m"), Err(IncError::Overflow));
        assert_eq!(s.get("m"), Some(i64::MAX));
        s.set("n", i64::MIN).unwrap();
        assert_eq!(s.inc("n"), Ok(i64::MIN + 1));
    }

    #[test]
    fn max_counters_refuses_new_names_only() {
        let mut s = Store::new(2);
        s.set("a", 1).unwrap();
        s.set("b", 2).unwrap();
        assert_eq!(s.set("c", 3), Err(Full));
        assert_eq!(s.get("c"), None);
        // Overwriting an existing name still works at the limit.
        s.set("a", 10).unwrap();
        assert_eq!(s.get("a"), Some(10));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn zero_max_refuses_everything() {
        let mut s = Store::new(0);
        assert_eq!(s.set("a", 1), Err(Full));
    }
}
