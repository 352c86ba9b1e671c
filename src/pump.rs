//! Moving bytes between one socket and its [`Conn`]: [`read`] when an event says there is
//! input, [`flush`] once at the end of the turn, and no more calls than those need. Generic
//! over `Read` and `Write`, so that the exact calls made are unit-tested on a scripted
//! socket; the reactor passes a `mio::net::TcpStream`.
//!
//! The rule that keeps a keep-alive request at one `read` and one `write`: a read that
//! returns less than the buffer offered means the socket's input is exhausted (epoll(7);
//! nginx relies on it too), and the next arrival raises a new edge, so there is no need to
//! read again only to hear `WouldBlock`. The exception is an event that reported the
//! peer's close: its FIN raises no further edge, so then reading goes on until `0`.
//! Likewise a short write means the socket is full: wait for `WRITABLE`.
//!
//! Built with `RUSTFLAGS="--cfg counterd_drain"`, reading goes on to `WouldBlock` after
//! every read (the first rule), so that `scripts/syscalls.sh` can measure the difference.

use std::io::{self, Read, Write};
use std::time::Instant;

use log::trace;

use crate::config::Limits;
use crate::conn::{Conn, Service};

/// Reads per connection per turn of the loop, so a client that sends and reads as fast as
/// the loopback allows cannot keep the thread from everyone else.
pub const READ_BUDGET: usize = 16;

/// What a [`read`] or a [`flush`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The input is exhausted, the socket is full, or the connection waits for an answer:
    /// readiness (or the answer) says when to come back.
    Blocked,
    /// Input may still be waiting with no edge to announce it (the read budget ran out, or
    /// reading stopped for output that has drained since): come back next turn.
    Yielded,
}

/// One connection's reading state, kept by the reactor between events.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadState {
    /// The last reading ended because the input was exhausted (not for the budget,
    /// backpressure or a request in work): nothing more to read until the next edge.
    pub exhausted: bool,
    /// An event has reported the peer's close (`EPOLLRDHUP`): read until `0`, since no
    /// further edge will come.
    pub peer_closed: bool,
    /// Reads left in this turn's budget.
    pub reads_left: usize,
    /// Bytes the last [`read`] took in (for the flight recorder).
    pub bytes: usize,
}

/// What the reactor lends to connections: one read buffer for all, and output buffers for
/// the connections that have something to send this turn, given back once it is flushed
/// (see [`Conn::lend_buffer`]), so that an idle connection holds none and a steady load
/// allocates none.
pub struct Buffers {
    pub read: Box<[u8]>,
    spares: Vec<Vec<u8>>,
}

/// Output buffers kept for reuse: about one per connection answered in one turn (a wakeup
/// brings at most 1024 events), each at most [`SPARE_KEPT`] bytes, so at most 16 MiB.
const MAX_SPARES: usize = 1024;
const SPARE_KEPT: usize = 16 * 1024;
/// A new output buffer: room for a dozen pipelined answers.
const SPARE_NEW: usize = 2 * 1024;

impl Buffers {
    pub fn new(read_size: usize) -> Buffers {
        Buffers {
            read: vec![0; read_size].into_boxed_slice(),
            spares: Vec::new(),
        }
    }

    /// Gives `conn` an output buffer if it has none.
    pub fn lend(&mut self, conn: &mut Conn) {
        let mut buf = self
            .spares
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(SPARE_NEW));
        conn.lend_buffer(&mut buf);
        if buf.capacity() > 0 {
            self.spares.push(buf); // it had one already
        }
    }

    /// Takes back `conn`'s output buffer once everything in it is sent.
    pub fn take_back(&mut self, conn: &mut Conn) {
        let mut buf = Vec::new();
        conn.return_buffer(&mut buf);
        if buf.capacity() > 0 && buf.capacity() <= SPARE_KEPT && self.spares.len() < MAX_SPARES {
            self.spares.push(buf);
        }
    }
}

/// What the reactor lends to one read: the shared buffers, the service that answers, the
/// limits and the time of this turn.
pub struct Env<'a, S> {
    pub bufs: &'a mut Buffers,
    pub svc: &'a mut S,
    pub limits: &'a Limits,
    pub now: Instant,
}

/// Answers the requests held back for this connection, then reads what the socket has (up
/// to backpressure, a request in work, or the read budget), handing it to the connection.
/// Writes nothing: the turn's answers go out together in [`flush`].
pub fn read<T: Read, S: Service>(
    key: usize,
    socket: &mut T,
    conn: &mut Conn,
    rs: &mut ReadState,
    env: &mut Env<'_, S>,
) -> io::Result<Pumped> {
    env.bufs.lend(conn);
    conn.resume(env.svc, env.limits, env.now);
    rs.exhausted = false;
    rs.bytes = 0;
    while conn.wants_read() {
        if rs.reads_left == 0 {
            return Ok(Pumped::Yielded);
        }
        rs.reads_left -= 1;
        match socket.read(&mut env.bufs.read) {
            Ok(0) => {
                trace!("{key}: read eof");
                conn.eof(env.svc, env.limits, env.now);
            }
            Ok(n) => {
                trace!("{key}: read {n} bytes");
                rs.bytes += n;
                conn.receive(&env.bufs.read[..n], env.svc, env.limits, env.now);
                if n < env.bufs.read.len() && !rs.peer_closed && !cfg!(counterd_drain) {
                    rs.exhausted = true;
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                rs.exhausted = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Pumped::Blocked)
}

/// Writes pending output until it is out or the socket is full (a short write, or
/// `WouldBlock`: `WRITABLE` will say when it has room again). `Yielded` when the output has
/// drained and the connection has input to come back for next turn: requests held back
/// while the output was high, or bytes not read for it, which no new edge will announce.
pub fn flush<T: Write>(
    key: usize,
    socket: &mut T,
    conn: &mut Conn,
    rs: &ReadState,
    bufs: &mut Buffers,
    now: Instant,
) -> io::Result<Pumped> {
    while !conn.output().is_empty() {
        let len = conn.output().len();
        match socket.write(conn.output()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                trace!("{key}: wrote {n} bytes");
                conn.written(n, now);
                if n < len {
                    return Ok(Pumped::Blocked);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Pumped::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bufs.take_back(conn);
    if conn.can_resume() || (conn.wants_read() && !rs.exhausted) {
        Ok(Pumped::Yielded)
    } else {
        Ok(Pumped::Blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Next;
    use crate::router::App;
    use crate::testkit;
    use std::collections::VecDeque;
    use std::net::{IpAddr, Ipv4Addr};

    /// What the scripted socket does at each call, in order.
    #[derive(Debug)]
    enum Step {
        /// A read returns these bytes (at most what the buffer offers; the rest stays).
        Data(Vec<u8>),
        Eof,
        /// A write accepts at most this many bytes.
        Accept(usize),
        Full,
    }

    /// A socket that plays a script and records every call made on it.
    #[derive(Default)]
    struct Scripted {
        reads: VecDeque<Step>,
        writes: VecDeque<Step>,
        calls: Vec<&'static str>,
        written: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls.push("read");
            match self.reads.pop_front() {
                Some(Step::Data(mut d)) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    if n < d.len() {
                        self.reads.push_front(Step::Data(d.split_off(n)));
                    }
                    Ok(n)
                }
                Some(Step::Eof) => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
                Some(other) => panic!("{other:?} in the read script"),
            }
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls.push("write");
            match self.writes.pop_front() {
                Some(Step::Accept(n)) => {
                    let n = n.min(buf.len());
                    self.written.extend_from_slice(&buf[..n]);
                    Ok(n)
                }
                Some(Step::Full) => Err(io::ErrorKind::WouldBlock.into()),
                None => {
                    self.written.extend_from_slice(buf);
                    Ok(buf.len())
                }
                Some(other) => panic!("{other:?} in the write script"),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct World {
        socket: Scripted,
        conn: Conn,
        rs: ReadState,
        bufs: Buffers,
        router: App,
        limits: Limits,
        now: Instant,
    }

    const READ_SIZE: usize = 4096;

    impl World {
        fn new() -> World {
            let now = Instant::now();
            World {
                socket: Scripted::default(),
                conn: Conn::new(IpAddr::V4(Ipv4Addr::LOCALHOST), now),
                rs: ReadState {
                    reads_left: READ_BUDGET,
                    ..ReadState::default()
                },
                bufs: Buffers::new(READ_SIZE),
                router: testkit::router(100),
                limits: Limits::default(),
                now,
            }
        }

        fn reads(&mut self, steps: impl IntoIterator<Item = Step>) -> &mut World {
            self.socket.reads.extend(steps);
            self
        }

        /// An event's read, as the reactor does it.
        fn read(&mut self) -> Pumped {
            let mut env = Env {
                bufs: &mut self.bufs,
                svc: &mut self.router,
                limits: &self.limits,
                now: self.now,
            };
            read(0, &mut self.socket, &mut self.conn, &mut self.rs, &mut env).unwrap()
        }

        /// The end of the turn's flush.
        fn flush(&mut self) -> Pumped {
            flush(
                0,
                &mut self.socket,
                &mut self.conn,
                &self.rs,
                &mut self.bufs,
                self.now,
            )
            .unwrap()
        }

        /// A readable event and the end of its turn: `Yielded` if either asks for another.
        fn turn(&mut self) -> Pumped {
            let read = self.read();
            match self.flush() {
                Pumped::Blocked => read,
                yielded => yielded,
            }
        }

        fn calls(&mut self) -> Vec<&'static str> {
            std::mem::take(&mut self.socket.calls)
        }
    }

    fn get(name: &str) -> Vec<u8> {
        format!("GET /inc?name={name} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
    }

    #[test]
    fn a_short_read_is_the_last_read() {
        let mut w = World::new();
        w.reads([Step::Data(get("i"))]);
        assert_eq!(w.turn(), Pumped::Blocked);
        assert_eq!(
            w.calls(),
            ["read", "write"],
            "no read just to hear WouldBlock"
        );
        assert_eq!(w.router.state.store.get("i"), Some(1));
    }

    #[test]
    fn a_full_read_reads_again() {
        let mut w = World::new();
        let stream = get("i").repeat(READ_SIZE / get("i").len() + 1);
        w.reads([Step::Data(stream.clone())]);
        assert_eq!(w.turn(), Pumped::Blocked);
        // The first read filled the buffer; the second got the rest, short: done.
        assert_eq!(w.calls(), ["read", "read", "write"]);
        let n = stream.len() / get("i").len();
        assert_eq!(w.router.state.store.get("i"), Some(n as i64));
    }

    #[test]
    fn after_the_peer_closed_reading_goes_on_until_eof() {
        let mut w = World::new();
        w.rs.peer_closed = true;
        w.reads([Step::Data(get("i")), Step::Eof]);
        assert_eq!(w.turn(), Pumped::Blocked);
        assert_eq!(w.calls(), ["read", "read", "write"]);
        assert_eq!(
            w.conn.next(),
            Next::Close,
            "the client is gone and owed nothing"
        );
    }

    #[test]
    fn reading_writes_nothing_and_the_flush_writes_everything() {
        let mut w = World::new();
        w.reads([Step::Data(get("i").repeat(3))]);
        assert_eq!(w.read(), Pumped::Blocked);
        assert_eq!(w.calls(), ["read"], "answered, not yet written");
        assert!(!w.conn.output().is_empty());
        assert_eq!(w.flush(), Pumped::Blocked);
        assert_eq!(w.calls(), ["write"], "three answers, one write");
        assert_eq!(
            String::from_utf8_lossy(&w.socket.written)
                .matches("HTTP/1.1 200 OK")
                .count(),
            3
        );
    }

    #[test]
    fn a_short_write_waits_for_writable() {
        let mut w = World::new();
        w.reads([Step::Data(get("i"))]);
        w.socket.writes.push_back(Step::Accept(10));
        assert_eq!(w.turn(), Pumped::Blocked);
        assert_eq!(
            w.calls(),
            ["read", "write"],
            "no second write after a short one"
        );
        assert!(!w.conn.output().is_empty());
        // WRITABLE: the rest goes out; the input was exhausted, so nothing is read.
        assert!(w.rs.exhausted);
        assert_eq!(w.flush(), Pumped::Blocked);
        assert_eq!(w.calls(), ["write"]);
        assert!(w.conn.output().is_empty());
        assert!(w.socket.written.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn reading_resumes_after_backpressure_without_a_new_edge() {
        let mut w = World::new();
        // /metrics answers are a few KiB: enough requests to pass the high-water mark.
        let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let stream = one.repeat(400);
        w.reads([Step::Data(stream.clone())]);
        // The socket takes nothing at first: reading stops at the mark.
        w.socket.writes.push_back(Step::Full);
        assert_eq!(w.turn(), Pumped::Blocked);
        assert!(!w.conn.wants_read(), "held back by its own output");
        let first = w.calls();
        assert_eq!(first.last(), Some(&"write"));
        // WRITABLE: everything drains, and the connection asks to be read again next turn
        // although no read was short (the edge for those bytes is spent).
        assert_eq!(w.flush(), Pumped::Yielded);
        let mut turns = 0;
        loop {
            w.rs.reads_left = READ_BUDGET;
            turns += 1;
            assert!(turns < 100);
            if w.turn() == Pumped::Blocked {
                break;
            }
        }
        let text = String::from_utf8_lossy(&w.socket.written).into_owned();
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 400);
        assert!(w.socket.reads.is_empty(), "every byte was read");
    }

    #[test]
    fn the_read_budget_yields_and_is_not_refilled_by_the_pump() {
        let mut w = World::new();
        w.reads((0..READ_BUDGET + 4).map(|_| Step::Data(vec![b'\n'; READ_SIZE])));
        assert_eq!(w.read(), Pumped::Yielded);
        assert_eq!(w.calls().len(), READ_BUDGET);
        assert_eq!(w.rs.reads_left, 0);
        // Read again in the same turn (another event): not one more read.
        assert_eq!(w.read(), Pumped::Yielded);
        assert!(w.calls().is_empty());
        // The flush asks for the next turn too: input is still waiting.
        assert_eq!(w.flush(), Pumped::Yielded);
    }
}
