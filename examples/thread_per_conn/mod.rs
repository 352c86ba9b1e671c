//! What both thread-per-connection twins share: the command line, an accept loop that
//! spawns one OS thread per connection, and the blocking loop each of those threads runs
//! around a [`counterd::conn::Conn`]. This is the shape of Go's `net/http` server
//! (`go c.serve(ctx)` per accepted connection), with OS threads instead of goroutines.
//!
//! The twins differ only in the [`Counters`] handle each connection's [`App`] gets:
//! a lock around one shared store (`threads_mutex.rs`) or a channel to the one thread that
//! owns it (`threads_manager.rs`). Parsing, routing and answering are counterd's own
//! sans-I/O core, byte for byte.
//!
//! Teaching twins, not hardened servers: no connection cap (every connection costs a
//! thread, so a flood of connections costs threads and memory without bound), no rate
//! limit, no graceful shutdown (SIGTERM just ends the process), and the idle, header and
//! linger deadlines are only checked once a second. Each connection's `App` holds its
//! own `Metrics`, so `/metrics` shows the numbers of the connection that asks, not the
//! server's.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use counterd::config::{Config, PRELOAD};
use counterd::conn::{Conn, Next};
use counterd::http::HttpDate;
use counterd::router::App;
use counterd::store::{Counters, Store};

/// Each connection thread's read buffer.
const READ_BUF: usize = 16 * 1024;
/// A blocked read wakes up this often so that the connection can check its deadlines.
const TICK: Duration = Duration::from_secs(1);

/// `NAME [--work-us N] [--max-counters N] [PORT]`, into counterd's own [`Config`] (its
/// defaults for everything else); prints help or an error and exits.
pub fn parse_args(name: &str, about: &str) -> Config {
    let defaults = Config::default();
    let usage = format!(
        "{name} — {about}\n\n\
         Usage: {name} [OPTIONS] [PORT]\n\n\
         Arguments:\n  \
           [PORT]  port to listen on (127.0.0.1); 0 picks a free one [default: {port}]\n\n\
         Options:\n      \
               --work-us N       block N µs in every request [default: 0]\n      \
               --max-counters N  most counters the store holds (507 past it) [default: {max}]\n  \
           -h, --help            print this help\n",
        port = defaults.port,
        max = defaults.max_counters,
    );
    let mut opts = defaults;
    let mut port = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| usage_error(name, &format!("{flag} wants a whole number")))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{usage}");
                exit(0)
            }
            "--work-us" => opts.work.time = Duration::from_micros(value("--work-us")),
            "--max-counters" => {
                opts.max_counters = value("--max-counters").try_into().unwrap_or(usize::MAX)
            }
            p if port.is_none() && !p.starts_with('-') => {
                port = Some(
                    p.parse()
                        .unwrap_or_else(|_| usage_error(name, &format!("bad port {p:?}"))),
                )
            }
            other => usage_error(name, &format!("unexpected argument {other:?}")),
        }
    }
    opts.port = port.unwrap_or(opts.port);
    opts
}

fn usage_error(name: &str, msg: &str) -> ! {
    eprintln!("{name}: {msg}\nTry '{name} --help'.");
    exit(2)
}

/// The store every twin starts with: counterd's preload, as in the original program.
pub fn preloaded(max_counters: usize) -> Store {
    let mut store = Store::new(max_counters);
    for (name, value) in PRELOAD {
        let _ = store.set(name, value);
    }
    store
}

/// Binds, prints the `listening on` line, then accepts forever, giving each connection a
/// thread of its own and a counters handle from `handle`.
pub fn serve<C, F>(opts: &Config, mut handle: F) -> io::Result<()>
where
    C: Counters + Send + 'static,
    F: FnMut() -> C,
{
    // One descriptor per connection, as in counterd: raise the soft limit to the hard one.
    let _ = counterd::os::raise_fd_limit();
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), opts.port))?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);

    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: the client stays queued; do not spin on it.
                eprintln!("accept: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let store = handle();
        let config = opts.clone();
        // The equivalent of `go c.serve(ctx)`: a thread (2 MiB of reserved stack) per client.
        let spawned = thread::Builder::new()
            .name("conn".into())
            .spawn(move || connection(stream, peer.ip(), store, &config));
        if let Err(e) = spawned {
            eprintln!("cannot start a thread for {peer}: {e}"); // the stream is dropped
        }
    }
}

/// One client, start to end, with blocking reads and writes: what the reactor does with
/// readiness events, this thread does by waiting in `read` and `write`.
fn connection<C: Counters>(mut stream: TcpStream, peer: IpAddr, store: C, config: &Config) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(TICK));
    let limits = &config.limits;
    let _ = stream.set_write_timeout(Some(limits.idle_timeout)); // the slow-read guard
    let mut router = App::new(store, config, HttpDate::new(SystemTime::now()));
    router.state.metrics.opened();
    let mut conn = Conn::new(peer, Instant::now());
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if conn.wants_read() {
            match stream.read(&mut buf) {
                Ok(0) => conn.eof(&mut router, limits, Instant::now()),
                Ok(n) => {
                    router.state.date.update(SystemTime::now());
                    conn.receive(&buf[..n], &mut router, limits, Instant::now());
                }
                // Nothing for a second: let the connection check its idle/header deadlines.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if let Some(kind) = conn.on_timeout(&mut router, limits, Instant::now()) {
                        router.state.metrics.timeout(kind);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        loop {
            while !conn.output().is_empty() {
                match stream.write(conn.output()) {
                    Ok(0) => return,
                    Ok(n) => conn.written(n, Instant::now()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return, // includes the write timeout
                }
            }
            // Requests held back while the output was high: answer them before reading on.
            if !conn.can_resume() {
                break;
            }
            conn.resume(&mut router, limits, Instant::now());
        }
        match conn.next() {
            Next::Continue if conn.wants_read() => {}
            Next::Continue | Next::Close => return,
            Next::Shutdown => {
                // As in the reactor: half-close, then read and discard until the client
                // closes, so that unread input does not turn the last answer into a reset.
                if stream.shutdown(Shutdown::Write).is_err() {
                    return;
                }
                conn.linger(Instant::now());
            }
        }
    }
}
