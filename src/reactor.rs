//! The I/O driver: one `mio::Poll`, the listener, the signal pipe and a slab of
//! connections, all edge-triggered. Together with `pump.rs` (the bytes of one socket),
//! `journal_file.rs` (the journal's writes) and `pool.rs` (worker threads) this is the only
//! part of counterd that does I/O while serving; every decision is made by the sans-I/O
//! parts it calls.
//!
//! One turn of the loop ([`Reactor::run`]), shaped like Redis's `ae.c` and `beforeSleep`:
//! 1. sleep in `epoll_wait` until readiness or the nearest deadline (the poll timeout);
//! 2. handle each event: [`Reactor::accept`] what [`Admission`] lets in, or
//!    [`Reactor::ready`]: `pump::read` what the socket has into its [`Conn`], which hands
//!    each request to the [`Router`] — answered now, or later when its work is done;
//! 3. [`Reactor::before_sleep`], in a fixed order: the connections that yielded last turn,
//!    due deadlines (idle, header, parked work), completions from the pool, the journal's
//!    write (and sync), one flush of every connection with something to send, and, if
//!    accepting stopped at the cap and a connection has closed since, accepting again.
//!
//! Every answer leaves in step 3, after the turn's journal records are written: an answer
//! that comes later — after a timer, from the pool, after the journal — is not a special
//! case. Nothing here blocks (but `--work sleep`, on purpose) and nothing is shared: one
//! event is handled at a time, which is why the counter store needs no lock.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, trace, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::admission::{Admission, Admit};
use crate::config::Limits;
use crate::conn::{Answer, Conn, Next, Refuse, Service};
use crate::episode::Episode;
use crate::http::Request;
use crate::journal;
use crate::journal_file::JournalFile;
use crate::metrics::Timeout;
use crate::pool::Pool;
use crate::pump::{self, Buffers, Env, Pumped, READ_BUDGET, ReadState};
use crate::router::{Handled, Router, State};
use crate::timers::{Slot, Timers};
use crate::trace::{self, Kind, Recorder, Source};
use crate::work::{InWork, Job, Owner, Waiting, WorkMode};

// Small numbers, as in mio's own examples: mio's trace lines print them as they are.
const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// The pool's workers wake the loop through this (`--work pool` only).
const WAKER: Token = Token(2);
/// A connection's token is its slab key plus this, above the special tokens.
const FIRST_CLIENT: usize = 3;

fn client_token(key: usize) -> Token {
    Token(key + FIRST_CLIENT)
}

/// One read's worth: also the most a connection holds back under backpressure.
const READ_BUF: usize = 64 * 1024;
/// How long a graceful shutdown waits for connections to finish writing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Records in the flight recorder: some hundreds of busy turns, or thousands of quiet ones;
/// `/trace` is then at most about 2 MiB.
const TRACE_RECORDS: usize = 8192;

struct Client {
    socket: TcpStream,
    conn: Conn,
    /// Its deadline in [`Timers`]; the slot's id is also the connection's serial number.
    timer: Slot,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// Served, or being refused with `503` (which does not count against the cap).
    admitted: Admit,
    /// The turn `read.reads_left` belongs to: the read budget is per connection per turn,
    /// however often the connection is read in it (an event, then its place in `yielded`).
    turn: u64,
    read: ReadState,
    /// In `yielded` already: a connection waits there at most once.
    yielded: bool,
    /// In `dirty` already: flushed once at the end of this turn.
    dirty: bool,
}

impl AsMut<Slot> for Client {
    fn as_mut(&mut self) -> &mut Slot {
        &mut self.timer
    }
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    clients: Slab<Client>,
    timers: Timers,
    state: State,
    router: Router,
    limits: Limits,
    admission: Admission,
    bufs: Buffers,
    /// The reactor's own count of turns.
    turn: u64,
    /// Connections to read again next turn: out of read budget, or with input that no
    /// new edge will announce.
    yielded: VecDeque<usize>,
    /// Connections to flush at the end of this turn.
    dirty: Vec<usize>,
    /// Requests in work (`--work timer|pool`), and the pool's workers.
    in_work: InWork,
    pool: Option<Pool>,
    /// With `--journal`: this turn's records go here before any answer leaves.
    journal: Option<JournalFile>,
    /// One warning per episode of clients too slow to send a request.
    slow_clients: Episode,
    stopping: Option<Instant>,
    started: Instant,
}

impl Reactor {
    pub fn new(
        listener: TcpListener,
        state: State,
        router: Router,
        limits: Limits,
        admission: Admission,
        pool_threads: usize,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut state = state;
        let pool_threads_traced = match router.work().mode {
            WorkMode::Pool => u16::try_from(pool_threads).unwrap_or(u16::MAX),
            _ => 0,
        };
        let started = Instant::now();
        state.trace = Recorder::new(TRACE_RECORDS, 0, pool_threads_traced, started);
        let pool = match router.work().mode {
            WorkMode::Pool => {
                let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
                Some(Pool::new(pool_threads, waker)?)
            }
            _ => None,
        };
        Ok(Reactor {
            poll,
            listener: Some(listener),
            signals,
            clients: Slab::with_capacity(1024),
            timers: Timers::new(),
            state,
            router,
            limits,
            admission,
            bufs: Buffers::new(READ_BUF),
            turn: 0,
            yielded: VecDeque::new(),
            dirty: Vec::with_capacity(1024),
            in_work: InWork::new(),
            pool,
            journal: None,
            slow_clients: Episode::default(),
            stopping: None,
            started,
        })
    }

    /// Keeps the counters in `journal` from now on (it has been replayed into the store).
    pub fn with_journal(mut self, journal: JournalFile) -> Reactor {
        self.state.keep_journal();
        self.state.records.reserve(READ_BUF);
        self.state.metrics.journal.compactions = 1; // the rewrite at start
        self.journal = Some(journal);
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Serves until SIGINT/SIGTERM and a graceful shutdown.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let slept_from = Instant::now();
            if let Some(deadline) = self.stopping {
                if self.clients.is_empty() && self.in_work.is_empty() {
                    break;
                }
                if slept_from >= deadline {
                    warn!(
                        "{} still open after {SHUTDOWN_GRACE:?}; closing them",
                        plural(self.clients.len() as u64, "connection")
                    );
                    break;
                }
            }
            self.wait(&mut events)?;
            let now = Instant::now();
            let n = events.iter().count();
            self.state.metrics.looping.woke(now - slept_from, n);
            let conns = u32::try_from(self.clients.len()).unwrap_or(u32::MAX);
            self.state.trace.turn(now, now - slept_from, conns);
            self.turn += 1;
            self.state.metrics.loop_iterations += 1;
            self.state.date.update(SystemTime::now());
            // Connections that yielded before this turn are read again at its end.
            let yielded = self.yielded.len();
            for event in events.iter() {
                self.state.metrics.events += 1;
                trace!(
                    "event {} readable={} writable={} read_closed={} write_closed={} error={}",
                    TokenName(event.token()),
                    event.is_readable(),
                    event.is_writable(),
                    event.is_read_closed(),
                    event.is_write_closed(),
                    event.is_error()
                );
                let kind = Kind::ready(
                    event.is_readable(),
                    event.is_writable(),
                    event.is_read_closed(),
                );
                let source = match event.token() {
                    LISTENER => Source::Listener,
                    SIGNALS => Source::Signals,
                    WAKER => Source::Waker,
                    Token(t) => Source::Conn(u32::try_from(t - FIRST_CLIENT).unwrap_or(u32::MAX)),
                };
                // The one clock read of an event: where its slice starts on the timeline.
                self.state.trace.event(Instant::now(), source, kind);
                match event.token() {
                    LISTENER => self.accept(now),
                    SIGNALS => {
                        if self.on_signal(now) {
                            return self.finish();
                        }
                    }
                    WAKER => {} // the pool's completions are taken in `before_sleep`
                    token => self.ready(token, event, now),
                }
            }
            self.before_sleep(yielded, now)?;
            let ended = Instant::now();
            self.state.trace.end_turn(ended);
            let busy = ended - now;
            self.state.metrics.looping.turned(busy);
            trace!(
                "turn {}: slept {}us in epoll_wait, {n} {}, busy {}us",
                self.turn,
                (now - slept_from).as_micros(),
                if n == 1 { "event" } else { "events" },
                busy.as_micros()
            );
        }
        self.finish()
    }

    /// Sleeps in `epoll_wait` until readiness or the nearest deadline. A signal that
    /// interrupts the sleep (`EINTR`) is part of the same sleep, not the end of a turn.
    fn wait(&mut self, events: &mut Events) -> io::Result<()> {
        loop {
            let timeout = self.poll_timeout(Instant::now());
            match self.poll.poll(events, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                done => return done,
            }
        }
    }

    /// Starts a slice for a step of the loop's own at the end of the turn.
    fn loop_step(&mut self, kind: Kind) {
        self.state.trace.event(Instant::now(), Source::Loop, kind);
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let later = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        [
            self.timers.timeout(now),
            later(self.in_work.next_due()),
            later(self.admission.deadline()),
            later(self.stopping),
            later(self.journal.as_ref().and_then(JournalFile::sync_due)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The end of every turn, as Redis's `beforeSleep`, always in this order: whatever
    /// changes the counters comes before the journal's write, and every answer after it.
    fn before_sleep(&mut self, yielded: usize, now: Instant) -> io::Result<()> {
        // 1. Connections that yielded in an earlier turn: read on where they stopped.
        if yielded > 0 {
            self.loop_step(Kind::Again);
        }
        for _ in 0..yielded {
            if let Some(key) = self.yielded.pop_front() {
                if let Some(client) = self.clients.get_mut(key) {
                    client.yielded = false;
                    self.read(key, now);
                }
            }
        }
        // 2. Due deadlines: idle and header timeouts, lingering closes, parked work.
        let due = |t: Option<Duration>| t == Some(Duration::ZERO);
        if due(self.timers.timeout(now)) || self.in_work.next_due().is_some_and(|t| t <= now) {
            self.loop_step(Kind::Timer);
        }
        self.expire(now);
        while let Some(waiting) = self.in_work.pop_due(now) {
            self.deliver(waiting, now);
        }
        // 3. Completions from the pool.
        let mut woken = false;
        while let Some(done) = self.pool.as_mut().and_then(Pool::next_done) {
            if !woken {
                self.loop_step(Kind::Wake);
                woken = true;
            }
            if let Some(waiting) = self.in_work.take(done.id) {
                self.state.trace.job(trace::Job {
                    id: waiting.seq,
                    worker: u16::try_from(done.worker).unwrap_or(u16::MAX),
                    start: done.started,
                    end: done.ended,
                });
                self.deliver(waiting, now);
            }
        }
        // 4. The journal: this turn's records in one write (and, with `--fsync always`,
        //    one sync) before any of this turn's answers goes out — group commit.
        if self.journal.is_some() && !self.state.records.is_empty() {
            self.loop_step(Kind::Commit);
        }
        self.commit(now)?;
        // 5. One flush of every connection with something to send, then its interest and
        //    its deadline.
        let mut dirty = mem::take(&mut self.dirty);
        if !dirty.is_empty() {
            self.loop_step(Kind::Write);
        }
        let mut written = 0;
        for &key in &dirty {
            written += self.flush(key, now);
        }
        self.state.trace.io(0, written, 0);
        dirty.clear();
        self.dirty = dirty; // keeps its capacity: no allocation per turn
        // 6. Accepting resumes if it stopped at the cap and a connection has closed since
        //    (edge-triggered: the listener will not report the clients already waiting).
        if self.admission.stalled() {
            self.accept(now);
        }
        Ok(())
    }

    /// Accepts until `WouldBlock` (edge-triggered: the listener will not report again for
    /// connections already queued), or until [`Admission`] says stop.
    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if !self.admission.may_accept(now) {
                return;
            }
            match listener.accept() {
                Ok((socket, peer)) => {
                    let how = self.admission.admit(now);
                    self.admit(socket, peer.ip(), how, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.admission.drained();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The client gave up while queued: nothing to do, keep accepting.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    self.admission.accept_failed(&e, now);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut socket: TcpStream, peer: IpAddr, how: Admit, now: Instant) {
        // Whole answers go out in one write; never let Nagle hold one back.
        let _ = socket.set_nodelay(true);
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut socket, client_token(key), Interest::READABLE)
        {
            warn!("cannot register a new connection: {e}");
            self.admission.closed(how);
            return;
        }
        let mut conn = Conn::new(peer, now);
        match how {
            Admit::Serve => self.state.metrics.opened(),
            Admit::Refuse => {
                self.state.metrics.connections_rejected += 1;
                let retry = Some(("Retry-After", &b"1"[..]));
                let why = "server at its connection limit, retry later";
                conn.refuse(&mut self.state, 503, retry, &why);
            }
        }
        trace!("{key}: accepted {peer}");
        let timer = self.timers.slot();
        entry.insert(Client {
            socket,
            conn,
            timer,
            writable: false,
            admitted: how,
            turn: 0,
            read: ReadState::default(),
            yielded: false,
            dirty: false,
        });
        self.mark(key); // the 503 goes out, or the first deadline is armed
    }

    /// Readiness for one connection: read what there is (not for a `WRITABLE` alone when
    /// the input was exhausted), and flush it at the end of the turn.
    fn ready(&mut self, token: Token, event: &Event, now: Instant) {
        let key = token.0 - FIRST_CLIENT;
        let Some(client) = self.clients.get_mut(key) else {
            return; // closed earlier in this turn
        };
        client.read.peer_closed |= event.is_read_closed();
        if event.is_readable()
            || event.is_read_closed()
            || event.is_error()
            || !client.read.exhausted
        {
            self.read(key, now);
        }
        self.mark(key);
    }

    /// Reads one connection's input into its `Conn`, which answers what it can; a request
    /// that needs work goes into work.
    fn read(&mut self, key: usize, now: Instant) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        if client.turn != self.turn {
            client.turn = self.turn;
            client.read.reads_left = READ_BUDGET;
        }
        let owner = Owner {
            key,
            serial: client.timer.id(),
        };
        let answered = self.state.metrics.responses_total();
        let mut later = None;
        let mut svc = Serve {
            router: &self.router,
            state: &mut self.state,
            later: &mut later,
        };
        let mut env = Env {
            bufs: &mut self.bufs,
            svc: &mut svc,
            limits: &self.limits,
            now,
        };
        let read = pump::read(
            key,
            &mut client.socket,
            &mut client.conn,
            &mut client.read,
            &mut env,
        );
        let bytes = client.read.bytes;
        match read {
            Err(e) => {
                debug!("{key}: {e}");
                self.close(key);
            }
            Ok(Pumped::Yielded) => self.yield_turn(key),
            Ok(Pumped::Blocked) => {}
        }
        let answered = self.state.metrics.responses_total() - answered;
        self.state.trace.io(bytes, 0, answered as usize);
        if let Some(job) = later {
            self.start_work(owner, job, now);
        }
        self.mark(key);
    }

    /// Puts `job` in work: on a worker thread if there is a pool, else parked on a
    /// deadline in the loop's own timer heap.
    fn start_work(&mut self, owner: Owner, job: Job, now: Instant) {
        let time = self.router.work().time;
        let at = now;
        match &mut self.pool {
            Some(pool) => {
                let (id, seq) = self.in_work.start(owner, job, None);
                pool.submit(id, time);
                self.state.trace.to_pool(at, seq);
            }
            None => {
                // `--work-us` is bounded by the command line; the clock cannot overflow.
                let due = now.checked_add(time).unwrap_or(now);
                let (_, seq) = self.in_work.start(owner, job, Some(due));
                self.state.trace.parked(at, seq);
            }
        }
        self.count_work();
    }

    /// The answer to a request whose work is done. The counter operation runs even if its
    /// connection has closed meanwhile (a request read is a request carried out); only then
    /// is the answer dropped.
    fn deliver(&mut self, waiting: Waiting, now: Instant) {
        let Waiting { owner, job, seq } = waiting;
        let at = now;
        self.state.trace.completed(at, seq);
        let job = &job;
        let client = self
            .clients
            .get_mut(owner.key)
            .filter(|c| c.timer.id() == owner.serial);
        match client {
            Some(client) => {
                self.bufs.lend(&mut client.conn);
                let (router, state) = (&self.router, &mut self.state);
                client.conn.answer_later(now, |out| {
                    router.finish(state, job, out);
                });
                self.mark(owner.key);
            }
            None => {
                let mut dropped = Vec::new();
                self.router.finish(&mut self.state, job, &mut dropped);
            }
        }
        self.count_work();
    }

    fn count_work(&mut self) {
        let m = &mut self.state.metrics;
        m.work_in_flight = self.in_work.len() as u64;
        m.pool_busy_threads = self.pool.as_ref().map_or(0, Pool::busy) as u64;
    }

    /// Flushes `key` at the end of this turn (once, however often it is marked).
    fn mark(&mut self, key: usize) {
        if let Some(client) = self.clients.get_mut(key) {
            if !client.dirty {
                client.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Reads `key` again next turn (once, however often it is yielded).
    fn yield_turn(&mut self, key: usize) {
        if let Some(client) = self.clients.get_mut(key) {
            if !client.yielded {
                client.yielded = true;
                self.yielded.push_back(key);
            }
        }
    }

    /// Writes what one connection has to send, then closes it or updates its interest and
    /// deadline. Returns the bytes written.
    fn flush(&mut self, key: usize, now: Instant) -> usize {
        let Some(client) = self.clients.get_mut(key) else {
            return 0; // closed earlier in this turn
        };
        client.dirty = false;
        let before = client.conn.output().len();
        let mut again = false;
        let close = loop {
            match pump::flush(
                key,
                &mut client.socket,
                &mut client.conn,
                &client.read,
                &mut self.bufs,
                now,
            ) {
                Err(e) => {
                    debug!("{key}: {e}");
                    break true;
                }
                Ok(Pumped::Yielded) => again = true,
                Ok(Pumped::Blocked) => {}
            }
            match client.conn.next() {
                Next::Continue => break false,
                Next::Close => break true,
                Next::Shutdown => {
                    // Half-close, then read until the client closes: closing now with its
                    // input unread would reset the connection and could destroy the answer.
                    if client.socket.shutdown(Shutdown::Write).is_err() {
                        break true;
                    }
                    client.conn.linger(now);
                }
            }
        };
        let written = before.saturating_sub(client.conn.output().len());
        if close {
            self.close(key);
            return written;
        }
        let want_write = !client.conn.output().is_empty();
        if want_write != client.writable {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(&mut client.socket, client_token(key), interest)
            {
                debug!("{key}: reregister: {e}");
                self.close(key);
                return written;
            }
            client.writable = want_write;
        }
        let at = client.conn.deadline(&self.limits);
        self.timers.arm(key, &mut client.timer, at);
        if again {
            self.yield_turn(key);
        }
        written
    }

    fn close(&mut self, key: usize) {
        // Dropping the socket closes it, which also removes it from the epoll set.
        let client = self.clients.remove(key);
        self.admission.closed(client.admitted);
        if client.admitted == Admit::Serve {
            self.state.metrics.closed();
        }
        trace!("{key}: closed");
    }

    /// Asks each connection whose deadline is due what it means: a `408`, an idle close, the
    /// end of a linger, or (most often) nothing yet, and a later deadline.
    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.timers.pop_due(now, &mut self.clients) {
            let client = &mut self.clients[key];
            let fired = client.conn.on_timeout(&mut self.state, &self.limits, now);
            if let Some(kind) = fired {
                self.state.metrics.timeout(kind);
            }
            if fired == Some(Timeout::Header) && self.slow_clients.begins(now) {
                warn!(
                    "requests not received within --header-timeout, starting with {}: answering 408",
                    client.conn.peer()
                );
            }
            self.mark(key); // writes a 408, closes, or re-arms
        }
        self.timers.purge(&mut self.clients);
    }

    /// Step 4 with `--journal`: this turn's records go out in one `write` (then, with
    /// `--fsync always`, one `fdatasync`) before step 5 lets this turn's answers out —
    /// group commit, as Redis flushes its AOF before the loop sleeps. An error stops the
    /// server before any unrecorded change is acknowledged.
    fn commit(&mut self, now: Instant) -> io::Result<()> {
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        let m = &mut self.state.metrics;
        journal.append(&self.state.records, now, m)?;
        self.state.records.clear();
        journal.maybe_sync(now, m)?;
        if journal::should_compact(journal.size, journal.compacted) {
            let started = Instant::now();
            journal.compact(self.state.store.iter())?;
            self.state.metrics.journal.compactions += 1;
            info!(
                "journal compacted to {} bytes in {:.1} ms",
                journal.size,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        Ok(())
    }

    /// Returns true when the process should stop right away (a second signal).
    fn on_signal(&mut self, now: Instant) -> bool {
        let mut signals = Vec::new();
        signals.extend(self.signals.pending());
        for signal in signals {
            if self.stopping.is_some() {
                warn!("signal {signal} during shutdown: stopping now");
                return true;
            }
            info!("signal {signal}: shutting down");
            self.begin_shutdown(now);
        }
        false
    }

    /// Stops accepting, closes idle connections, and lets the others finish: requests in
    /// work are answered, pending answers written.
    fn begin_shutdown(&mut self, now: Instant) {
        self.listener = None;
        self.stopping = Some(now + SHUTDOWN_GRACE);
        let keys: Vec<usize> = self.clients.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.clients[key].conn.stop();
            self.mark(key);
        }
    }

    fn finish(mut self) -> io::Result<()> {
        if let Some(journal) = &mut self.journal {
            let m = &mut self.state.metrics;
            journal.append(&self.state.records, Instant::now(), m)?;
            journal.sync(m)?;
        }
        let m = &self.state.metrics;
        info!(
            "stopped after {:.1}s: {}, {}",
            self.started.elapsed().as_secs_f64(),
            plural(m.connections_accepted, "connection"),
            plural(m.requests_total(), "request")
        );
        Ok(())
    }
}

/// The service a connection's requests meet in the loop: the router over the reactor's
/// state. A request the router hands back for work is kept in `later` for the reactor to
/// put in work (one at a time per connection, so one per read).
struct Serve<'a> {
    router: &'a Router,
    state: &'a mut State,
    later: &'a mut Option<Job>,
}

impl Service for Serve<'_> {
    fn answer(
        &mut self,
        req: &Request<'_>,
        peer: IpAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Answer {
        match self.router.handle(self.state, req, peer, now, out) {
            Handled::Now => Answer::Now,
            Handled::Later(job) => {
                debug_assert!(self.later.is_none(), "one request in work per connection");
                *self.later = Some(job);
                Answer::Later
            }
        }
    }
}

impl Refuse for Serve<'_> {
    fn refuse(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        why: &dyn std::fmt::Display,
    ) {
        self.state.refuse(out, status, extra, why);
    }
}

/// Tokens as the trace names them: the two special ones by name, connections by slab key.
struct TokenName(Token);

impl std::fmt::Display for TokenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            LISTENER => f.write_str("listener"),
            SIGNALS => f.write_str("signals"),
            WAKER => f.write_str("waker"),
            Token(token) => write!(f, "{}", token - FIRST_CLIENT),
        }
    }
}

/// `1 connection`, `2 connections`.
fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
