//! The yardstick, not a server anyone should use: the same reactor style as counterd
//! (mio, a slab, edge-triggered, drain until `WouldBlock`) with no parsing beyond finding
//! the end of each request head, and one canned answer. Whatever counterd does on top —
//! parsing, routing, counting, timers, limits — shows up as the distance to this floor.
//!
//! Keep-alive and pipelining work; HTTP/1.0 without `keep-alive` is closed after its
//! answer. `cargo run --release --example floor -- [PORT]`.

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
}

fn main() -> io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .map_or(Ok(8001), |p| p.parse())
        .expect("port");
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!("listening on http://{}", listener.local_addr()?);

    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut clients: Slab<Client> = Slab::new();
    let mut buf = vec![0u8; 64 * 1024];

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
            if serve(client, &mut buf).is_err()
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

/// Reads until `WouldBlock`, answers every complete head, writes until done or full.
fn serve(client: &mut Client, buf: &mut [u8]) -> io::Result<()> {
    loop {
        match client.socket.read(buf) {
            Ok(0) => {
                client.close_after_write = true;
                break;
            }
            Ok(n) => client.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut start = 0;
    while !client.close_after_write {
        let Some(end) = find(&client.input[start..], b"\r\n\r\n") else {
            break;
        };
        let head = &client.input[start..start + end];
        let http10 = head
            .split(|&b| b == b'\n')
            .next()
            .is_some_and(|line| line.ends_with(b"HTTP/1.0\r"));
        let keep_alive = !http10
            || head
                .windows(10)
                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"));
        client.output.extend_from_slice(match (http10, keep_alive) {
            (false, _) => ANSWER,
            (true, true) => ANSWER_10,
            (true, false) => ANSWER_CLOSE,
        });
        client.close_after_write |= !keep_alive;
        start += end + 4;
    }
    client.input.drain(..start);
    while !client.output.is_empty() {
        match client.socket.write(&client.output) {
            Ok(n) => {
                client.output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
