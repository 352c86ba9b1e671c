//! Twin 2 of the Go post: a thread per connection, and one "counter manager" thread that
//! owns the counters. Connection threads never touch the store: they send it a command
//! over a `std::sync::mpsc` channel and wait for the reply on their own channel — the Go
//! version's manager goroutine fed by a `chan Command` whose commands carry a reply chan.
//!
//! Same API, same parser, same router as counterd (see `thread_per_conn/mod.rs` for the
//! accept loop and the per-connection thread); only the concurrency model differs. A
//! teaching twin, not a hardened server: no connection cap, no rate limit, no graceful
//! shutdown, and `/metrics` shows only the asking connection's numbers.
//! `--work-us N` sleeps in the connection thread, not in the manager, so N µs of blocking
//! work overlap across clients.
//!
//! `cargo run --release --example threads_manager -- [--work-us N] [PORT]`

mod thread_per_conn;

use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use counterd::store::{Counters, Full, IncError, Store};

enum Op {
    Get(Box<str>),
    Set(Box<str>, i64),
    Inc(Box<str>),
    Count,
}

enum Reply {
    Get(Option<i64>),
    Set(Result<(), Full>),
    Inc(Result<i64, IncError>),
    Count(usize),
}

/// What travels to the manager: the operation and where to send its result.
struct Command {
    op: Op,
    reply: Sender<Reply>,
}

/// The manager: the only thread that ever sees the `Store`, so the map needs no lock. It
/// serves one command at a time, in arrival order — a small reactor of its own.
fn manager(mut store: Store, commands: Receiver<Command>) {
    for Command { op, reply } in commands {
        let answer = match op {
            Op::Get(name) => Reply::Get(store.get(&name)),
            Op::Set(name, val) => Reply::Set(store.set(&name, val)),
            Op::Inc(name) => Reply::Inc(store.inc(&name)),
            Op::Count => Reply::Count(store.len()),
        };
        let _ = reply.send(answer); // the connection may be gone; nothing to do then
    }
}

/// One connection's way to the manager: the shared command channel and its own reply
/// channel, made once per connection and reused for every command.
struct Managed {
    commands: Sender<Command>,
    reply_to: Sender<Reply>,
    replies: Receiver<Reply>,
    max: usize,
}

impl Managed {
    fn ask(&mut self, op: Op) -> Reply {
        let command = Command {
            op,
            reply: self.reply_to.clone(),
        };
        // The manager lives as long as the process; if it were gone, nothing could answer.
        self.commands.send(command).expect("the manager thread");
        self.replies.recv().expect("the manager thread")
    }
}

impl Counters for Managed {
    fn get(&mut self, name: &str) -> Option<i64> {
        match self.ask(Op::Get(name.into())) {
            Reply::Get(v) => v,
            _ => unreachable!("the manager answers Get with Get"),
        }
    }
    fn set(&mut self, name: &str, val: i64) -> Result<(), Full> {
        match self.ask(Op::Set(name.into(), val)) {
            Reply::Set(r) => r,
            _ => unreachable!("the manager answers Set with Set"),
        }
    }
    fn inc(&mut self, name: &str) -> Result<i64, IncError> {
        match self.ask(Op::Inc(name.into())) {
            Reply::Inc(r) => r,
            _ => unreachable!("the manager answers Inc with Inc"),
        }
    }
    fn count(&mut self) -> usize {
        match self.ask(Op::Count) {
            Reply::Count(n) => n,
            _ => unreachable!("the manager answers Count with Count"),
        }
    }
    fn max(&self) -> usize {
        self.max
    }
}

fn main() -> ExitCode {
    let opts = thread_per_conn::parse_args(
        "threads_manager",
        "counterd's API, a thread per connection, one manager thread owning the counters",
    );
    let (commands, inbox) = mpsc::channel();
    let store = thread_per_conn::preloaded(opts.max_counters);
    thread::Builder::new()
        .name("manager".into())
        .spawn(move || manager(store, inbox))
        .expect("start the manager thread");
    let max = opts.max_counters;
    let served = thread_per_conn::serve(&opts, || {
        let (reply_to, replies) = mpsc::channel();
        Managed {
            commands: commands.clone(),
            reply_to,
            replies,
            max,
        }
    });
    if let Err(e) = served {
        eprintln!("threads_manager: {e}");
    }
    ExitCode::FAILURE
}
