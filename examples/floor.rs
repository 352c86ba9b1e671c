//! The yardstick, not a server anyone should use: the same reactor style as counterd
//! (mio, a slab, edge-triggered, a short read ends the reading as in `src/pump.rs`) with no
//! parsing beyond finding the end of each request head, and one canned answer. Whatever
//! counterd does on top — parsing, routing, counting, timers, limits — shows up as the
//! distance to this floor.
//!
//! Keep-alive and pipelining work; HTTP/1.0 without `keep-alive` is closed after its
//! answer. `cargo run --release --example floor -- [--drain] [PORT]`; `--drain` reads on
//! until `WouldBlock` after every read (counterd's first rule), for comparison.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

/// Same size and headers as counterd's answer to `/inc` (the date is frozen).
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 3\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nok\n";
const ANSWER_10: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 3\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: keep-alive\r\n\r\nok\n";
const ANSWER_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 3\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\nok\n";

struct Client {
    socket: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    close_after_write: bool,
    writable: bool,
    /// An event reported the peer's close: read until `0`.
    peer_closed: bool,
}

fn main() -> io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let drain = args.first().is_some_and(|a| a == "--drain");
    if drain {
        args.remove(0);
    }
    let port = args.first().map_or(Ok(8001), |p| p.parse()).expect("port");
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!("listening on http://{}", listener.local_addr()?);

    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut clients: Slab<Client> = Slab::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);

    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut socket, _)) => {
                            let _ = socket.set_nodelay(true);
                            let entry = clients.vacant_entry();
                            poll.registry().register(
                                &mut socket,
                                Token(entry.key()),
                                Interest::READABLE,
                            )?;
                            entry.insert(Client {
                                socket,
                                input: Vec::new(),
                                output: Vec::new(),
                                close_after_write: false,
                                writable: false,
                                peer_closed: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(client) = clients.get_mut(key) else {
                continue;
            };
            client.peer_closed |= event.is_read_closed();
            if serve(client, &mut buf, &mut out, drain).is_err()
                || (client.close_after_write && client.output.is_empty())
            {
                clients.remove(key);
                continue;
            }
            let want_write = !client.output.is_empty();
            if want_write != client.writable {
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                poll.registry()
                    .reregister(&mut client.socket, Token(key), interest)?;
                client.writable = want_write;
            }
        }
    }
}

/// Reads until a short read (or, with `drain`, until `WouldBlock`), answering every
/// complete head straight from the read buffer into `out` (shared by all connections, like
/// counterd's), then writes once. Only a head cut by a read, or output the socket would not
/// take, is kept per connection.
fn serve(client: &mut Client, buf: &mut [u8], out: &mut Vec<u8>, drain: bool) -> io::Result<()> {
    out.clear();
    loop {
        match client.socket.read(buf) {
            Ok(0) => {
                client.close_after_write = true;
                break;
            }
            Ok(n) => {
                if client.input.is_empty() {
                    let used = answer(&buf[..n], &mut client.close_after_write, out);
                    client.input.extend_from_slice(&buf[used..n]);
                } else {
                    client.input.extend_from_slice(&buf[..n]);
                    let used = answer(&client.input, &mut client.close_after_write, out);
                    client.input.drain(..used);
                }
                if n < buf.len() && !client.peer_closed && !drain {
                    break; // the input is exhausted: the next arrival raises a new edge
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if client.output.is_empty() {
        let n = write_some(&mut client.socket, out)?;
        client.output.extend_from_slice(&out[n..]);
    } else {
        client.output.extend_from_slice(out);
        let n = write_some(&mut client.socket, &client.output)?;
        client.output.drain(..n);
    }
    Ok(())
}

/// Appends the canned answer for every complete head in `input`; returns the bytes used.
fn answer(input: &[u8], close: &mut bool, out: &mut Vec<u8>) -> usize {
    let mut start = 0;
    while !*close {
        let Some(len) = head_len(&input[start..]) else {
            break;
        };
        let head = &input[start..start + len];
        let http10 = head
            .split(|&b| b == b'\n')
            .next()
            .is_some_and(|line| line.ends_with(b"HTTP/1.0\r"));
        let keep_alive = !http10
            || head
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"));
        out.extend_from_slice(match (http10, keep_alive) {
            (false, _) => ANSWER,
            (true, true) => ANSWER_10,
            (true, false) => ANSWER_CLOSE,
        });
        *close |= !keep_alive;
        start += len;
    }
    start
}

/// Length of the head at the start of `buf` up to and including its `\r\n\r\n`.
fn head_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        if nl >= 3 && &buf[nl - 3..=nl] == b"\r\n\r\n" {
            return Some(nl + 1);
        }
        i = nl + 1;
    }
    None
}

/// Writes until done, a short write or `WouldBlock`; returns how much went out.
fn write_some(socket: &mut TcpStream, mut data: &[u8]) -> io::Result<usize> {
    let total = data.len();
    while !data.is_empty() {
        match socket.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n < data.len() => {
                data = &data[n..];
                break; // the socket is full: WRITABLE says when it has room
            }
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total - data.len())
}
