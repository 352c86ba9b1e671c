//! Twin 1 of the Go post: a thread per connection, and the counters behind one
//! `Mutex` that every connection thread locks, once per store operation — the Go
//! version's `sync.Mutex` around the map.
//!
//! Same API, same parser, same router as counterd (see `thread_per_conn/mod.rs` for the
//! accept loop and the per-connection thread); only the concurrency model differs. A
//! teaching twin, not a hardened server: no connection cap, no rate limit, no graceful
//! shutdown, and `/metrics` shows only the asking connection's numbers.
//! `--work-us N` sleeps outside the lock, so N µs of blocking work overlap across clients.
//!
//! `cargo run --release --example threads_mutex -- [--work-us N] [PORT]`

mod thread_per_conn;

use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use counterd::store::{Counters, Full, IncError, Store};

/// One connection's way to the shared counters.
struct Locked {
    store: Arc<Mutex<Store>>,
    max: usize,
}

impl Locked {
    /// The lock is held for one operation, never across a request's other work.
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A connection thread cannot panic while holding it; if one did, the map is still
        // whole (every operation is a single HashMap call), so carry on.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Counters for Locked {
    fn get(&mut self, name: &str) -> Option<i64> {
        self.lock().get(name)
    }
    fn set(&mut self, name: &str, val: i64) -> Result<(), Full> {
        self.lock().set(name, val)
    }
    fn inc(&mut self, name: &str) -> Result<i64, IncError> {
        self.lock().inc(name)
    }
    fn count(&mut self) -> usize {
        self.lock().len()
    }
    fn max(&self) -> usize {
        self.max
    }
}

fn main() -> ExitCode {
    let opts = thread_per_conn::parse_args(
        "threads_mutex",
        "counterd's API, a thread per connection, the counters behind a Mutex",
    );
    let store = Arc::new(Mutex::new(thread_per_conn::preloaded(opts.max_counters)));
    let max = opts.max_counters;
    let served = thread_per_conn::serve(&opts, || Locked {
        store: Arc::clone(&store),
        max,
    });
    if let Err(e) = served {
        eprintln!("threads_mutex: {e}");
    }
    ExitCode::FAILURE
}
