//! The flight recorder behind `GET /trace`: the last turns of one loop, event by event,
//! kept in a fixed ring and answered as Chrome Trace Event Format JSON (what Perfetto,
//! `chrome://tracing` and the dashboard's timeline read).
//!
//! Sans I/O like the rest of the core: the loop passes every time in as an [`Instant`] (one
//! clock read per event); the recorder reads no clock, starts no thread and allocates only
//! in [`Recorder::new`], so it can stay on always, as Go's tracer does since 1.22. Times
//! become nanoseconds since the server's start only when the ring is rendered: done per
//! event, that subtraction cost as much as the rest of the recording.
//!
//! What one loop records, in order:
//!
//! ```text
//! turn(start, slept, conns)          epoll_wait returned at `start` after `slept`
//!   event(at, source, kind)          one ready token (or the loop's own work) from `at` ...
//!   io(read, written, answered)      ... what it moved, added to the open event
//!   parked / to_pool / forwarded     a request starts to wait (flow start)
//!   job(Job)                         a pool worker's run, reported with its completion
//!   completed(at, id)                the waiting request is answered (flow end)
//! end_turn(at)                       back to epoll_wait
//! ```
//!
//! An event ends where the next one starts (or the turn ends): the caller reads the clock
//! once per event. Times never go back within a track (a time earlier than the last one is
//! taken as the last one), so every event slice nests in its turn by construction — Perfetto
//! drops slices that overlap partially.
//!
//! Tracks: a recorder is one shard's loop (`tid` = 1000 × shard + 1) and its pool's threads
//! (`tid` = 1000 × shard + 2 + worker). A pool worker does not write here: it times its job
//! into a [`Job`], which travels back with the completion, and the loop records it.

use std::time::{Duration, Instant};

#[cfg(any(test, feature = "test-support"))]
pub mod check;

/// What an event was about: the token epoll reported, or the loop's own work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Listener,
    Signals,
    Waker,
    /// Work of the loop's own between events: deadlines, the journal's commit.
    Loop,
    /// A connection, by its slab key (which is its token).
    Conn(u32),
}

/// What happened to the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    ReadWrite,
    /// The peer closed or the socket reported an error (with nothing to read).
    Closed,
    /// Driven again in the same turn after using up its read budget.
    Again,
    /// A deadline fired: a timeout, or parked work that is due.
    Timer,
    /// The waker: completions from the pool, messages from other shards.
    Wake,
    /// The journal's write (and sync), then the turn's answers released.
    Commit,
}

impl Kind {
    /// The kind of a readiness event, from mio's `is_readable`, `is_writable` and
    /// `is_read_closed || is_error`.
    pub fn ready(readable: bool, writable: bool, closed: bool) -> Kind {
        match (readable, writable) {
            (true, true) => Kind::ReadWrite,
            (true, false) => Kind::Read,
            (false, true) => Kind::Write,
            (false, false) if closed => Kind::Closed,
            (false, false) => Kind::Read,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::ReadWrite => "read+write",
            Kind::Closed => "closed",
            Kind::Again => "again",
            Kind::Timer => "timer",
            Kind::Wake => "wake",
            Kind::Commit => "commit",
        }
    }
}

/// One job as a pool worker ran it: timed on the worker's thread (`Instant::now()` before
/// and after), sent back with the completion, recorded by the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// The request the job belongs to (the id given to [`Recorder::to_pool`]).
    pub id: u64,
    /// The worker's index in its shard's pool, from 0.
    pub worker: u16,
    pub start: Instant,
    pub end: Instant,
}

/// Why a request waits, or that it is done waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Parked,
    Pool,
    Forwarded(u16),
    Completed,
}

/// Bytes and answers of one event (saturating: a record stays fixed-size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Io {
    read: u32,
    written: u32,
    answered: u32,
}

#[derive(Clone, Copy, Debug)]
enum Record {
    Turn {
        start: Instant,
        slept: Duration,
        number: u64,
        conns: u32,
    },
    Event {
        at: Instant,
        source: Source,
        kind: Kind,
        io: Io,
    },
    Mark {
        at: Instant,
        id: u64,
        mark: Mark,
    },
    Job(Job),
    End {
        at: Instant,
    },
}

/// Pool workers per shard that get a track of their own (tids stay below the next shard's).
pub const MAX_POOL_TRACKS: u16 = 998;

/// The JSON written per record is at most this long, on average over a ring: a turn (two
/// records) writes its sleep, its slice and its counter, a pool hand-off (three) four flow
/// events and a job — under 200 bytes a record with every number at its longest, as a test
/// checks; about 130 with real ones.
pub const MAX_BYTES_PER_RECORD: usize = 256;
/// [`write_head`] and [`write_tail`] together, and the metadata of one track.
pub const MAX_FRAME_BYTES: usize = 256;
const MAX_TRACK_META_BYTES: usize = 256;

/// The flight recorder of one loop (one shard) and its pool's threads.
pub struct Recorder {
    ring: Box<[Record]>,
    /// Where the next record goes.
    next: usize,
    /// Records held, up to the ring's length.
    len: usize,
    shard: u16,
    pool_threads: u16,
    /// A turn is open (between `turn` and `end_turn`).
    in_turn: bool,
    /// The ring slot of the open event, for `io`.
    open_event: Option<usize>,
    /// The latest time recorded on the loop's track: times never go back.
    last: Instant,
    turns: u64,
    /// Per pool worker, the end of its last job: its jobs never overlap either.
    worker_free: Box<[Instant]>,
    /// The server's start: time 0 of the rendered trace.
    origin: Instant,
}

impl Recorder {
    /// A recorder for `shard` (from 0) with room for `capacity` records, and a track for
    /// each of `pool_threads` pool workers; `origin` (the server's start) is time 0 of its
    /// trace. The only allocation it ever makes.
    pub fn new(capacity: usize, shard: u16, pool_threads: u16, origin: Instant) -> Recorder {
        let capacity = capacity.max(2);
        let pool_threads = pool_threads.min(MAX_POOL_TRACKS);
        Recorder {
            ring: vec![Record::End { at: origin }; capacity].into_boxed_slice(),
            next: 0,
            len: 0,
            shard,
            pool_threads,
            in_turn: false,
            open_event: None,
            last: origin,
            turns: 0,
            worker_free: vec![origin; usize::from(pool_threads)].into_boxed_slice(),
            origin,
        }
    }

    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// The most [`Recorder::write_events`] can append: size an output buffer with it once.
    pub fn max_json_bytes(&self) -> usize {
        MAX_TRACK_META_BYTES * (1 + usize::from(self.pool_threads))
            + MAX_BYTES_PER_RECORD * self.ring.len()
    }

    /// A turn begins: `epoll_wait` returned at `start` after sleeping `slept`, with
    /// `conns` connections open. Ends a turn left open.
    pub fn turn(&mut self, start: Instant, slept: Duration, conns: u32) {
        if self.in_turn {
            self.end_turn(self.last);
        }
        // The sleep began after the last turn ended, and the turn after both.
        let start = start.max(self.last);
        let slept = slept.min(start - self.last);
        self.turns += 1;
        self.push(Record::Turn {
            start,
            slept,
            number: self.turns,
            conns,
        });
        self.last = start;
        self.in_turn = true;
    }

    /// One event of the open turn starts at `at` (ignored outside a turn).
    pub fn event(&mut self, at: Instant, source: Source, kind: Kind) {
        if !self.in_turn {
            return;
        }
        let at = self.advance(at);
        let slot = self.next;
        self.push(Record::Event {
            at,
            source,
            kind,
            io: Io::default(),
        });
        self.open_event = Some(slot);
    }

    /// Adds bytes read and written, and requests answered, to the open event.
    pub fn io(&mut self, read: usize, written: usize, answered: usize) {
        let Some(slot) = self.open_event else { return };
        if let Record::Event { io, .. } = &mut self.ring[slot] {
            let add = |a: u32, b: usize| a.saturating_add(u32::try_from(b).unwrap_or(u32::MAX));
            io.read = add(io.read, read);
            io.written = add(io.written, written);
            io.answered = add(io.answered, answered);
        }
    }

    /// Request `id` is parked on the loop's timer heap (`--work timer`).
    pub fn parked(&mut self, at: Instant, id: u64) {
        self.mark(at, id, Mark::Parked);
    }

    /// Request `id` is handed to the pool (`--work pool`).
    pub fn to_pool(&mut self, at: Instant, id: u64) {
        self.mark(at, id, Mark::Pool);
    }

    /// Request `id` is sent to the shard that owns its counter.
    pub fn forwarded(&mut self, at: Instant, id: u64, shard: u16) {
        self.mark(at, id, Mark::Forwarded(shard));
    }

    /// Request `id`, which waited, is answered. (Requests that never waited need no call.)
    pub fn completed(&mut self, at: Instant, id: u64) {
        self.mark(at, id, Mark::Completed);
    }

    /// A pool worker's job, as it came back with its completion.
    pub fn job(&mut self, job: Job) {
        let Some(free) = self.worker_free.get_mut(usize::from(job.worker)) else {
            return; // not one of this pool's workers
        };
        let start = job.start.max(*free);
        let end = job.end.max(start);
        *free = end;
        self.push(Record::Job(Job { start, end, ..job }));
    }

    /// The open turn ends at `at`: the loop goes back to `epoll_wait`.
    pub fn end_turn(&mut self, at: Instant) {
        if !self.in_turn {
            return;
        }
        let at = self.advance(at);
        self.push(Record::End { at });
        self.in_turn = false;
        self.open_event = None;
    }

    fn mark(&mut self, at: Instant, id: u64, mark: Mark) {
        if !self.in_turn {
            return;
        }
        let at = self.advance(at);
        self.push(Record::Mark { at, id, mark });
    }

    fn advance(&mut self, at: Instant) -> Instant {
        self.last = self.last.max(at);
        self.last
    }

    /// On the per-event path: no division, no branch on what is overwritten (`io` checks
    /// that its slot still holds an event: only marks and jobs can have wrapped onto it).
    fn push(&mut self, record: Record) {
        let slot = self.next;
        self.ring[slot] = record;
        self.next = if slot + 1 == self.ring.len() {
            0
        } else {
            slot + 1
        };
        if self.len < self.ring.len() {
            self.len += 1;
        }
    }

    /// The record `i` places after the oldest one held.
    fn get(&self, i: usize) -> Record {
        let oldest = if self.len < self.ring.len() {
            0
        } else {
            self.next
        };
        self.ring[(oldest + i) % self.ring.len()]
    }

    /// Nanoseconds since the server's start: the trace's clock.
    fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn loop_tid(&self) -> u64 {
        1000 * u64::from(self.shard) + 1
    }

    fn pool_tid(&self, worker: u16) -> u64 {
        1000 * u64::from(self.shard) + 2 + u64::from(worker)
    }

    /// The records of the newest `turns` whole turns: from the first one's `Turn` to the
    /// last one's `End`. A turn partly overwritten, or still open, is left out.
    fn whole_turns(&self, turns: usize) -> Option<(usize, usize)> {
        let last = (0..self.len)
            .rev()
            .find(|&i| matches!(self.get(i), Record::End { .. }))?;
        let mut first = None;
        let mut seen = 0;
        for i in (0..last).rev() {
            if seen == turns {
                break;
            }
            if let Record::Turn { .. } = self.get(i) {
                first = Some(i);
                seen += 1;
            }
        }
        // Without an `End` before it, the oldest `Turn` found really is whole.
        Some((first?, last))
    }

    /// Appends this track's trace events (each after `,\n`, so the tracks of several
    /// recorders concatenate between [`write_head`] and [`write_tail`]): the metadata that
    /// names the tracks, then the newest `turns` whole turns (`usize::MAX`: all the ring
    /// holds). Appends at most [`Recorder::max_json_bytes`].
    pub fn write_events(&self, out: &mut Vec<u8>, turns: usize) {
        let mut json = Json(out);
        json.thread(self.loop_tid(), format_args!("shard {}", self.shard));
        for w in 0..self.pool_threads {
            json.thread(
                self.pool_tid(w),
                format_args!("shard {} pool {w}", self.shard),
            );
        }
        let Some((first, last)) = self.whole_turns(turns) else {
            return;
        };
        let tid = self.loop_tid();
        for i in first..=last {
            match self.get(i) {
                Record::Turn {
                    start,
                    slept,
                    number,
                    conns,
                } => {
                    let (end, events) = self.turn_end(i, last);
                    let slept = u64::try_from(slept.as_nanos()).unwrap_or(u64::MAX);
                    let start = self.ns(start);
                    if slept > 0 {
                        json.slice(tid, start - slept, start, "sleep", "epoll_wait");
                        json.0.extend_from_slice(b"}");
                    }
                    json.slice(tid, start, end, "turn", format_args!("turn {number}"));
                    json.args();
                    json.num("turn", number);
                    json.num("events", events);
                    json.num("connections", u64::from(conns));
                    json.0.extend_from_slice(b"}}");
                    json.counter(tid, start, self.shard, conns);
                }
                Record::Event {
                    at,
                    source,
                    kind,
                    io,
                } => {
                    let end = self.boundary_after(i, last);
                    json.slice(tid, self.ns(at), end, "event", Named(source, kind));
                    json.args();
                    json.str("token", Token(source));
                    json.str("kind", kind.label());
                    json.num("read", u64::from(io.read));
                    json.num("written", u64::from(io.written));
                    json.num("answered", u64::from(io.answered));
                    json.0.extend_from_slice(b"}}");
                }
                Record::Mark { at, id, mark } if mark != Mark::Completed => {
                    self.write_flows(&mut json, i, last, self.ns(at), id, mark);
                }
                Record::Job(job) => {
                    let tid = self.pool_tid(job.worker);
                    json.slice(tid, self.ns(job.start), self.ns(job.end), "job", "job");
                    json.args();
                    json.num("request", job.id);
                    json.0.extend_from_slice(b"}}");
                }
                Record::Mark { .. } | Record::End { .. } => {}
            }
        }
    }

    /// The end of the turn that begins at record `i`, and how many events it had.
    fn turn_end(&self, i: usize, last: usize) -> (u64, u64) {
        let mut events = 0;
        for j in i + 1..=last {
            match self.get(j) {
                Record::Event { .. } => events += 1,
                Record::End { at } => return (self.ns(at), events),
                _ => {}
            }
        }
        unreachable!("whole_turns ends on an End")
    }

    /// When the slice containing record `i` ends: the next event's start, or the turn's end.
    fn boundary_after(&self, i: usize, last: usize) -> u64 {
        for j in i + 1..=last {
            match self.get(j) {
                Record::Event { at, .. } | Record::End { at } => return self.ns(at),
                _ => {}
            }
        }
        unreachable!("whole_turns ends on an End")
    }

    /// The innermost slice around record `i` (a mark): its event, or else its turn.
    fn enclosing(&self, i: usize, last: usize) -> (u64, u64) {
        for j in (0..i).rev() {
            match self.get(j) {
                Record::Event { at, .. } => return (self.ns(at), self.boundary_after(i, last)),
                Record::Turn { start, .. } => return (self.ns(start), self.turn_end(j, last).0),
                _ => {}
            }
        }
        unreachable!("whole_turns starts on a Turn")
    }

    /// A waiting request's arrows: from the slice where it began to wait to the one where it
    /// was answered, through its pool job if there was one. Drawn only when the answer is
    /// in the window too, so that every flow start has its end.
    fn write_flows(&self, json: &mut Json, i: usize, last: usize, at: u64, id: u64, mark: Mark) {
        let mut job = None;
        let mut done = None;
        for j in i + 1..=last {
            match self.get(j) {
                Record::Job(found) if found.id == id && mark == Mark::Pool => job = Some(found),
                Record::Mark {
                    at,
                    id: other,
                    mark: Mark::Completed,
                } if other == id => {
                    done = Some((j, at));
                    break;
                }
                // The same id waiting again before an answer: the caller reuses ids.
                Record::Mark { id: other, .. } if other == id => break,
                _ => {}
            }
        }
        let Some((j, done_at)) = done else { return };
        let tid = self.loop_tid();
        let from = (tid, inside(at, self.enclosing(i, last)));
        let to = (tid, inside(self.ns(done_at), self.enclosing(j, last)));
        let name = match mark {
            Mark::Parked => "parked",
            Mark::Pool => "pool",
            Mark::Forwarded(_) => "forwarded",
            Mark::Completed => unreachable!("a completion starts no flow"),
        };
        // Through the job when it ran between the hand-off and the answer, as it must on
        // one monotonic clock; otherwise (a caller's slip) straight to the answer.
        let ran = job.map(|job| {
            let (start, end) = (self.ns(job.start), self.ns(job.end));
            (self.pool_tid(job.worker), inside(start, (start, end)))
        });
        match ran {
            Some(ran) if from.1 <= ran.1 && ran.1 <= to.1 => {
                json.flow(self.flow_id(0, id), name, from, ran);
                json.flow(self.flow_id(1, id), name, ran, to);
            }
            _ => json.flow(self.flow_id(0, id), name, from, to),
        }
    }

    /// Flow ids unique over shards and legs, and below 2^53 (exact in JavaScript).
    fn flow_id(&self, leg: u64, id: u64) -> u64 {
        (u64::from(self.shard) << 42) | (leg << 40) | (id & ((1 << 40) - 1))
    }
}

/// A time inside the slice `(start, end)`, off its edges where it can be: a flow binds to
/// the slice that encloses its time, and at an edge that could be the neighbour.
fn inside(at: u64, (start, end): (u64, u64)) -> u64 {
    if end - start >= 2 {
        at.clamp(start + 1, end - 1)
    } else {
        start
    }
}

/// Starts the JSON document: `{"displayTimeUnit":"ns","traceEvents":[` and the process name.
/// Times are in microseconds, as the format says, to the nanosecond.
pub fn write_head(out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n\
          {\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"counterd\"}}",
    );
}

/// Ends the JSON document.
pub fn write_tail(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\n]}\n");
}

/// The whole document for `recorders`: their newest `turns` whole turns each.
pub fn render_json(recorders: &[&Recorder], turns: usize, out: &mut Vec<u8>) {
    write_head(out);
    for r in recorders {
        r.write_events(out, turns);
    }
    write_tail(out);
}

/// `conn 12 read`, `listener read`, `loop commit`.
struct Named(Source, Kind);

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", Token(self.0), self.1.label())
    }
}

struct Token(Source);

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Source::Listener => f.write_str("listener"),
            Source::Signals => f.write_str("signals"),
            Source::Waker => f.write_str("waker"),
            Source::Loop => f.write_str("loop"),
            Source::Conn(key) => write!(f, "conn {key}"),
        }
    }
}

/// A writer of trace events. Every string it writes is made here from fixed words and
/// numbers, never from the network, so nothing needs escaping.
struct Json<'a>(&'a mut Vec<u8>);

impl Json<'_> {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn display(&mut self, d: impl std::fmt::Display) {
        use std::io::Write as _;
        let _ = write!(self.0, "{d}"); // writing into a Vec cannot fail
    }

    fn int(&mut self, n: u64) {
        self.raw(itoa::Buffer::new().format(n));
    }

    /// Nanoseconds as microseconds with three decimals: exact, and what the format wants.
    fn micros(&mut self, ns: u64) {
        self.int(ns / 1000);
        let frac = ns % 1000;
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        self.0.extend_from_slice(&digits);
    }

    fn thread(&mut self, tid: u64, name: std::fmt::Arguments) {
        self.raw(",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":");
        self.int(tid);
        self.raw(",\"args\":{\"name\":\"");
        self.display(name);
        self.raw("\"}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":");
        self.int(tid);
        self.raw(",\"args\":{\"sort_index\":");
        self.int(tid);
        self.raw("}}");
    }

    /// An `X` slice, left open for its `args` (or closed with `}`).
    fn slice(&mut self, tid: u64, start: u64, end: u64, cat: &str, name: impl std::fmt::Display) {
        self.raw(",\n{\"ph\":\"X\",\"cat\":\"");
        self.raw(cat);
        self.raw("\",\"name\":\"");
        self.display(name);
        self.raw("\",\"pid\":1,\"tid\":");
        self.int(tid);
        self.raw(",\"ts\":");
        self.micros(start);
        self.raw(",\"dur\":");
        self.micros(end - start);
    }

    fn args(&mut self) {
        self.raw(",\"args\":{");
    }

    /// One `"key":n` member of an args object (a comma before all but the first).
    fn num(&mut self, key: &str, n: u64) {
        self.key(key);
        self.int(n);
    }

    fn str(&mut self, key: &str, s: impl std::fmt::Display) {
        self.key(key);
        self.raw("\"");
        self.display(s);
        self.raw("\"");
    }

    fn key(&mut self, key: &str) {
        if self.0.last() != Some(&b'{') {
            self.raw(",");
        }
        self.raw("\"");
        self.raw(key);
        self.raw("\":");
    }

    fn counter(&mut self, tid: u64, at: u64, shard: u16, conns: u32) {
        self.raw(",\n{\"ph\":\"C\",\"name\":\"connections, shard ");
        self.int(u64::from(shard));
        self.raw("\",\"pid\":1,\"tid\":");
        self.int(tid);
        self.raw(",\"ts\":");
        self.micros(at);
        self.raw(",\"args\":{\"open\":");
        self.int(u64::from(conns));
        self.raw("}}");
    }

    /// A flow from `(tid, ts)` to `(tid, ts)`: `s` binds to the slice around its time, `f`
    /// with `bp:"e"` to the slice around its time too (not the next one to begin).
    fn flow(&mut self, id: u64, name: &str, from: (u64, u64), to: (u64, u64)) {
        for (ph, (tid, ts)) in [("s", from), ("f", to)] {
            self.raw(",\n{\"ph\":\"");
            self.raw(ph);
            if ph == "f" {
                self.raw("\",\"bp\":\"e");
            }
            self.raw("\",\"cat\":\"wait\",\"name\":\"");
            self.raw(name);
            self.raw("\",\"id\":");
            self.int(id);
            self.raw(",\"pid\":1,\"tid\":");
            self.int(tid);
            self.raw(",\"ts\":");
            self.micros(ts);
            self.raw("}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check::{Summary, check};
    use super::*;

    /// The recorder with times given as nanoseconds since its origin, so that the cases
    /// below read as numbers.
    struct Rec {
        r: Recorder,
        origin: Instant,
    }

    #[allow(clippy::wrong_self_convention)] // to_pool is the recorder's own name
    impl Rec {
        fn new(capacity: usize, shard: u16, pool_threads: u16) -> Rec {
            let origin = Instant::now();
            let r = Recorder::new(capacity, shard, pool_threads, origin);
            Rec { r, origin }
        }
        fn at(&self, ns: u64) -> Instant {
            self.origin + Duration::from_nanos(ns)
        }
        fn turn(&mut self, start: u64, slept: u64, conns: u32) {
            let start = self.at(start);
            self.r.turn(start, Duration::from_nanos(slept), conns);
        }
        fn event(&mut self, at: u64, source: Source, kind: Kind) {
            self.r.event(self.at(at), source, kind);
        }
        fn io(&mut self, read: usize, written: usize, answered: usize) {
            self.r.io(read, written, answered);
        }
        fn parked(&mut self, at: u64, id: u64) {
            self.r.parked(self.at(at), id);
        }
        fn to_pool(&mut self, at: u64, id: u64) {
            self.r.to_pool(self.at(at), id);
        }
        fn forwarded(&mut self, at: u64, id: u64, shard: u16) {
            self.r.forwarded(self.at(at), id, shard);
        }
        fn completed(&mut self, at: u64, id: u64) {
            self.r.completed(self.at(at), id);
        }
        fn job(&mut self, id: u64, worker: u16, start: u64, end: u64) {
            let (start, end) = (self.at(start), self.at(end));
            self.r.job(Job {
                id,
                worker,
                start,
                end,
            });
        }
        fn end_turn(&mut self, at: u64) {
            self.r.end_turn(self.at(at));
        }
    }

    fn render(recorders: &[&Recorder], turns: usize) -> (String, Summary) {
        let mut out = Vec::new();
        render_json(recorders, turns, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        let sum = check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, sum)
    }

    fn all(r: &Rec) -> Summary {
        render(&[&r.r], usize::MAX).1
    }

    #[test]
    fn a_turn_is_a_slice_with_its_sleep_its_events_and_a_counter() {
        let mut r = Rec::new(64, 0, 0);
        r.turn(10_000, 4_000, 3);
        r.event(10_000, Source::Listener, Kind::Read);
        r.event(11_500, Source::Conn(7), Kind::Read);
        r.io(120, 0, 0);
        r.io(0, 300, 2);
        r.event(12_250, Source::Loop, Kind::Commit);
        r.end_turn(13_001);
        let (text, sum) = render(&[&r.r], usize::MAX);
        assert_eq!(sum.tracks.get(&1).map(String::as_str), Some("shard 0"));
        let sleep: Vec<_> = sum.of("sleep").collect();
        assert_eq!((sleep[0].start, sleep[0].end), (6_000, 10_000));
        let turn: Vec<_> = sum.of("turn").collect();
        assert_eq!(turn.len(), 1);
        assert_eq!((turn[0].start, turn[0].end), (10_000, 13_001));
        assert_eq!(turn[0].name, "turn 1");
        let events: Vec<_> = sum.events_in(turn[0]).collect();
        let spans: Vec<_> = events
            .iter()
            .map(|e| (e.name.as_str(), e.start, e.end))
            .collect();
        assert_eq!(
            spans,
            [
                ("listener read", 10_000, 11_500),
                ("conn 7 read", 11_500, 12_250),
                ("loop commit", 12_250, 13_001)
            ]
        );
        let io = &events[1].args;
        assert_eq!(io.get("read").and_then(|v| v.as_u64()), Some(120));
        assert_eq!(io.get("written").and_then(|v| v.as_u64()), Some(300));
        assert_eq!(io.get("answered").and_then(|v| v.as_u64()), Some(2));
        assert_eq!(sum.counters, 1);
        // Times are µs to the ns, as written.
        assert!(text.contains("\"ts\":11.500,\"dur\":0.750"), "{text}");
    }

    #[test]
    fn a_parked_request_flows_from_its_event_to_the_one_that_answers_it() {
        let mut r = Rec::new(64, 0, 0);
        r.turn(1_000, 0, 1);
        r.event(1_000, Source::Conn(1), Kind::Read);
        r.parked(1_200, 42);
        r.event(1_500, Source::Conn(2), Kind::Read);
        r.end_turn(2_000);
        r.turn(1_002_000, 1_000_000, 2);
        r.event(1_002_000, Source::Loop, Kind::Timer);
        r.completed(1_002_100, 42);
        r.io(0, 40, 1);
        r.end_turn(1_003_000);
        let sum = all(&r);
        assert_eq!(sum.flows, [("parked".to_string(), 1, 1)]);
        assert_eq!(sum.of("turn").count(), 2);
        // The second turn's sleep is the gap after the first.
        let sleeps: Vec<_> = sum.of("sleep").map(|s| (s.start, s.end)).collect();
        assert_eq!(sleeps, [(2_000, 1_002_000)]);
    }

    #[test]
    fn a_pool_job_gets_its_thread_track_and_the_flow_goes_through_it() {
        let mut r = Rec::new(64, 1, 4);
        r.turn(100, 0, 1);
        r.event(100, Source::Conn(3), Kind::Read);
        r.to_pool(150, 9);
        r.end_turn(400);
        r.turn(5_000, 4_600, 1);
        r.event(5_000, Source::Waker, Kind::Wake);
        r.job(9, 2, 420, 4_420);
        r.completed(5_050, 9);
        r.end_turn(5_300);
        let sum = all(&r);
        // Shard 1: its loop is tid 1001, its pool's worker 2 is tid 1004.
        assert_eq!(sum.tracks.get(&1001).map(String::as_str), Some("shard 1"));
        assert_eq!(
            sum.tracks.get(&1004).map(String::as_str),
            Some("shard 1 pool 2")
        );
        assert_eq!(sum.tracks.len(), 5, "the loop and 4 workers");
        let job: Vec<_> = sum.of("job").collect();
        assert_eq!((job[0].tid, job[0].start, job[0].end), (1004, 420, 4_420));
        let mut flows = sum.flows.clone();
        flows.sort();
        assert_eq!(
            flows,
            [
                ("pool".to_string(), 1001, 1004),
                ("pool".to_string(), 1004, 1001)
            ]
        );
    }

    #[test]
    fn a_job_that_never_came_back_still_draws_the_wait_directly() {
        let mut r = Rec::new(64, 0, 1);
        r.turn(100, 0, 1);
        r.event(100, Source::Conn(3), Kind::Read);
        r.to_pool(150, 9);
        r.forwarded(160, 10, 1);
        r.event(170, Source::Conn(4), Kind::Read);
        r.completed(180, 10);
        r.completed(190, 9);
        r.end_turn(400);
        let mut flows = all(&r).flows;
        flows.sort();
        assert_eq!(
            flows,
            [("forwarded".to_string(), 1, 1), ("pool".to_string(), 1, 1)]
        );
    }

    #[test]
    fn a_wait_without_its_answer_in_the_ring_draws_no_flow() {
        let mut r = Rec::new(64, 0, 0);
        r.turn(100, 0, 1);
        r.event(100, Source::Conn(3), Kind::Read);
        r.parked(150, 1); // answered in the open turn below: not drawn
        r.parked(160, 2); // never answered
        r.completed(170, 3); // never waited (in the ring)
        r.end_turn(400);
        r.turn(500, 100, 1);
        r.event(500, Source::Loop, Kind::Timer);
        r.completed(510, 1);
        let sum = all(&r);
        assert!(sum.flows.is_empty(), "{:?}", sum.flows);
        assert_eq!(sum.of("turn").count(), 1, "the open turn is not drawn");
    }

    #[test]
    fn times_that_go_back_are_taken_as_the_last_one() {
        let mut r = Rec::new(64, 0, 1);
        r.turn(1_000, 200, 1);
        r.event(900, Source::Conn(1), Kind::Read); // before the turn began
        r.event(1_500, Source::Conn(2), Kind::Read);
        r.parked(1_400, 5); // before its event
        r.event(1_450, Source::Conn(3), Kind::Write); // before the last event
        r.end_turn(1_300); // before the last event
        r.turn(1_200, 50, 1); // before the last turn ended
        r.event(1_600, Source::Loop, Kind::Timer);
        r.completed(1_600, 5);
        r.end_turn(1_700);
        let sum = all(&r);
        let spans: Vec<_> = sum
            .slices
            .iter()
            .map(|s| (s.cat.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            spans,
            [
                ("sleep", 800, 1_000),
                ("turn", 1_000, 1_500),
                ("event", 1_000, 1_500),
                ("event", 1_500, 1_500),
                ("event", 1_500, 1_500),
                ("turn", 1_500, 1_700),
                ("event", 1_600, 1_700),
            ]
        );
        assert_eq!(sum.flows.len(), 1);
    }

    #[test]
    fn jobs_on_one_worker_never_overlap() {
        let mut r = Rec::new(64, 0, 2);
        r.turn(0, 0, 0);
        r.event(0, Source::Waker, Kind::Wake);
        r.job(1, 0, 100, 500);
        r.job(2, 0, 300, 400);
        r.job(3, 1, 300, 800);
        r.job(4, 7, 0, 1);
        r.end_turn(1_000);
        let sum = all(&r);
        let jobs: Vec<_> = sum.of("job").map(|j| (j.tid, j.start, j.end)).collect();
        assert_eq!(jobs, [(2, 100, 500), (2, 500, 500), (3, 300, 800)]);
    }

    #[test]
    fn the_ring_keeps_only_whole_turns_the_newest_ones() {
        for capacity in [2, 3, 5, 16, 17, 100] {
            let mut r = Rec::new(capacity, 0, 0);
            let mut t = 0;
            let mut events_of = Vec::new();
            for turn in 0..50u64 {
                t += 1_000;
                r.turn(t, 500, turn as u32);
                let n = turn % 4;
                for _ in 0..n {
                    t += 10;
                    r.event(t, Source::Conn(turn as u32), Kind::Read);
                }
                t += 10;
                r.end_turn(t);
                events_of.push(n);
            }
            let sum = all(&r);
            let turns: Vec<_> = sum.of("turn").collect();
            // Whole turns only: each has all its events, numbered up to the last one.
            assert!(!turns.is_empty() || capacity < 6, "capacity {capacity}");
            for (k, turn) in turns.iter().enumerate() {
                let number = 50 - (turns.len() - k) as u64 + 1;
                assert_eq!(turn.name, format!("turn {number}"));
                let want = events_of[number as usize - 1];
                assert_eq!(sum.events_in(turn).count() as u64, want, "{turn:?}");
            }
            // And as many as fit: the one before the oldest shown did not.
            let held: u64 = turns
                .iter()
                .map(|t| 2 + sum.events_in(t).count() as u64)
                .sum();
            let before = 50 - turns.len();
            if before > 0 {
                assert!(held + 2 + events_of[before - 1] > capacity as u64);
            }
        }
    }

    #[test]
    fn turns_asks_for_the_newest_whole_turns_only() {
        let mut r = Rec::new(1000, 0, 0);
        for k in 0..10u64 {
            r.turn(k * 100 + 10, 10, 0);
            r.event(k * 100 + 20, Source::Conn(0), Kind::Read);
            r.end_turn(k * 100 + 50);
        }
        r.turn(2_000, 0, 0); // open: never shown
        let names = |n| {
            render(&[&r.r], n)
                .1
                .of("turn")
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(3), ["turn 8", "turn 9", "turn 10"]);
        assert_eq!(names(0), Vec::<String>::new());
        assert_eq!(names(usize::MAX).len(), 10);
    }

    #[test]
    fn shards_concatenate_into_one_document() {
        let mut a = Rec::new(64, 0, 1);
        let mut b = Rec::new(64, 1, 1);
        for (r, t) in [(&mut a, 100), (&mut b, 150)] {
            r.turn(t, 10, 1);
            r.event(t, Source::Conn(1), Kind::Read);
            r.forwarded(t + 1, 77, 1);
            r.event(t + 5, Source::Waker, Kind::Wake);
            r.completed(t + 6, 77);
            r.end_turn(t + 20);
        }
        let sum = render(&[&a.r, &b.r], usize::MAX).1;
        let names: Vec<_> = sum.tracks.values().map(String::as_str).collect();
        assert_eq!(
            names,
            ["shard 0", "shard 0 pool 0", "shard 1", "shard 1 pool 0"]
        );
        // The same request id on two shards: two flows, ids apart.
        assert_eq!(sum.flows.len(), 2);
    }

    #[test]
    fn an_empty_recorder_still_names_its_tracks() {
        let r = Rec::new(8, 0, 2);
        let sum = all(&r);
        assert_eq!(sum.tracks.len(), 3);
        assert!(sum.slices.is_empty());
        let mut r = Rec::new(8, 0, 0);
        r.event(5, Source::Conn(1), Kind::Read); // outside a turn: not recorded
        r.parked(5, 1);
        r.end_turn(6);
        r.turn(10, 0, 0); // open
        assert!(all(&r).slices.is_empty());
    }

    /// A small deterministic generator (no rand crate): xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Any sequence of calls, times jumping back and forth, any capacity: the document
    /// always checks (valid JSON, slices nest, events in turns, flows paired).
    #[test]
    fn any_sequence_of_calls_renders_a_valid_trace() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..300 {
            let capacity = 2 + rng.below(120) as usize;
            let pool = rng.below(4) as u16;
            let mut r = Rec::new(capacity, rng.below(3) as u16, pool);
            let mut t = rng.below(1 << 40);
            let mut waiting = Vec::new();
            let mut id = 0;
            for _ in 0..rng.below(400) {
                // Mostly forward, sometimes back.
                t = if rng.below(10) == 0 {
                    t.saturating_sub(rng.below(5_000))
                } else {
                    t + rng.below(5_000)
                };
                match rng.below(12) {
                    0 | 1 => r.turn(t, rng.below(10_000), rng.below(500) as u32),
                    2 => r.end_turn(t),
                    3..=5 => {
                        let kind = [Kind::Read, Kind::Write, Kind::Timer, Kind::Wake];
                        let source = Source::Conn(rng.below(64) as u32);
                        r.event(t, source, kind[rng.below(4) as usize]);
                    }
                    6 => r.io(rng.below(1 << 20) as usize, rng.below(1 << 20) as usize, 1),
                    7 => {
                        id += 1;
                        waiting.push(id);
                        match rng.below(3) {
                            0 => r.parked(t, id),
                            1 => r.to_pool(t, id),
                            _ => r.forwarded(t, id, 1),
                        }
                    }
                    8 | 9 if !waiting.is_empty() => {
                        let k = rng.below(waiting.len() as u64) as usize;
                        r.completed(t, waiting.swap_remove(k));
                    }
                    10 if pool > 0 && !waiting.is_empty() => {
                        let start = t.saturating_sub(rng.below(20_000));
                        let id = waiting[rng.below(waiting.len() as u64) as usize];
                        let worker = rng.below(u64::from(pool)) as u16;
                        r.job(id, worker, start, start + rng.below(20_000));
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            render_json(&[&r.r], usize::MAX, &mut out);
            let text = String::from_utf8(out).unwrap();
            if let Err(e) = check(&text) {
                panic!("case {case}: {e}\n{text}");
            }
            assert!(text.len() <= r.r.max_json_bytes() + MAX_FRAME_BYTES);
        }
    }

    /// Worst cases for the size bound: the biggest numbers in every field, a ring full of
    /// each kind of record.
    #[test]
    fn the_document_stays_within_max_json_bytes() {
        const BIG: u64 = u64::MAX / 4;
        type Fill = dyn Fn(&mut Rec, u64);
        let fills: [&Fill; 4] = [
            // Turns and nothing else: a sleep, a slice and a counter per two records.
            &|r, k| {
                r.turn(BIG + k * 10, BIG, u32::MAX);
                r.end_turn(BIG + k * 10 + 5);
            },
            // Events with every figure at its maximum.
            &|r, k| {
                if k % 1000 == 0 {
                    r.turn(BIG + k, 1, u32::MAX);
                }
                r.event(BIG + k, Source::Conn(u32::MAX), Kind::ReadWrite);
                r.io(usize::MAX, usize::MAX, usize::MAX);
                if k % 1000 == 999 {
                    r.end_turn(BIG + k);
                }
            },
            // Pool hand-offs answered at once: four flows and a job per three records.
            &|r, k| {
                if k % 300 == 0 {
                    r.turn(BIG + k * 10, 1, u32::MAX);
                }
                let id = u64::MAX - k;
                r.to_pool(BIG + k * 10, id);
                r.job(id, MAX_POOL_TRACKS - 1, BIG + k * 10, BIG + k * 10 + 3);
                r.completed(BIG + k * 10 + 4, id);
                if k % 300 == 299 {
                    r.end_turn(BIG + k * 10 + 5);
                }
            },
            // Parked requests answered at once: two flows per two records.
            &|r, k| {
                if k % 500 == 0 {
                    r.turn(BIG + k * 10, 1, u32::MAX);
                }
                r.parked(BIG + k * 10, u64::MAX - k);
                r.completed(BIG + k * 10 + 4, u64::MAX - k);
                if k % 500 == 499 {
                    r.end_turn(BIG + k * 10 + 5);
                }
            },
        ];
        for (i, fill) in fills.iter().enumerate() {
            let mut r = Rec::new(3_000, u16::MAX, MAX_POOL_TRACKS);
            for k in 0..3_000 {
                fill(&mut r, k);
            }
            let mut out = Vec::new();
            r.r.write_events(&mut out, usize::MAX);
            let mut meta = Vec::new();
            Rec::new(1, u16::MAX, MAX_POOL_TRACKS)
                .r
                .write_events(&mut meta, 0);
            assert!(meta.len() <= MAX_TRACK_META_BYTES * (1 + usize::from(MAX_POOL_TRACKS)));
            let per_record = (out.len() - meta.len()) / 3_000;
            assert!(per_record <= MAX_BYTES_PER_RECORD, "fill {i}: {per_record}");
            assert!(
                out.len() <= r.r.max_json_bytes(),
                "fill {i}: {} bytes > {}",
                out.len(),
                r.r.max_json_bytes()
            );
            println!("fill {i}: {} bytes, {per_record} per record", out.len());
            let mut doc = Vec::new();
            write_head(&mut doc);
            write_tail(&mut doc);
            assert!(doc.len() <= MAX_FRAME_BYTES);
        }
    }
}
