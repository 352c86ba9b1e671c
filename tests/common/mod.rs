//! Test harness shared by the integration tests: start a real server binary on a free port,
//! talk raw HTTP/1.x to it over `std::net`, and stop it again.
//!
//! Nothing here is specific to counterd's source: [`Server::start_bin`] takes any binary
//! that follows the contract of `docs/reference.md` (`BIN [ARGS] PORT`, first stdout line
//! `listening on http://ADDR:PORT`). [`Server::start`] starts counterd itself, or the binary
//! named by the `COUNTERD_BIN` environment variable when that is set, so the same tests can
//! be pointed at another implementation:
//! `COUNTERD_BIN=target/debug/examples/twin cargo test --test api`.
//!
//! Every blocking operation has a timeout, so a broken server fails a test instead of
//! hanging it, and a [`Server`] kills the one process it started when it is dropped.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read and write timeout of every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one response (or one expected EOF) may take in total.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary the tests run: `$COUNTERD_BIN` if set, else counterd itself.
pub fn server_bin() -> PathBuf {
    match std::env::var_os("COUNTERD_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_counterd")),
    }
}

/// Bytes that a background thread collects from a pipe.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn drain(mut pipe: impl Read + Send + 'static, into: Captured) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.0.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A running server process, killed (by its PID, and only it) when dropped.
pub struct Server {
    child: Child,
    /// Where the server listens, from its first stdout line.
    pub addr: SocketAddr,
    /// The first stdout line, without its newline.
    pub banner: String,
    stdout_rest: Captured,
    stderr: Captured,
    drains: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Server {
    /// Starts [`server_bin`] with `args` followed by port `0`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_bin(&server_bin(), args)
    }

    /// Starts `bin` with `args` followed by port `0`, and waits for its `listening on` line.
    /// Panics (with the server's stderr) if it does not come within [`START_TIMEOUT`].
    pub fn start_bin(bin: &Path, args: &[&str]) -> Server {
        let mut all: Vec<&str> = args.to_vec();
        all.push("0");
        Server::start_exact(bin, &all)
    }

    /// Starts `bin` with exactly `args` (no port added).
    pub fn start_exact(bin: &Path, args: &[&str]) -> Server {
        let mut child = spawn_piped(bin, args);
        let stderr = Captured::default();
        let mut drains = vec![drain(child.stderr.take().unwrap(), stderr.clone())];

        // The first stdout line comes through a channel so that waiting for it has a timeout;
        // the same thread then keeps draining stdout (which should stay silent).
        let stdout_rest = Captured::default();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let rest = stdout_rest.clone();
        drains.push(thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut line = String::new();
            let got = reader.read_line(&mut line);
            let _ = tx.send((got.is_ok(), line));
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                rest.0.lock().unwrap().append(&mut buf);
            }
        }));

        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok((true, line)) if !line.is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "{} {args:?} printed no `listening on` line ({other:?}); stderr:\n{}",
                    bin.display(),
                    stderr.text()
                );
            }
        };
        let banner = line.trim_end_matches(['\n', '\r']).to_string();
        let addr = parse_banner(&banner).unwrap_or_else(|| {
            panic!("unexpected first stdout line {banner:?}; want `listening on http://ADDR:PORT`")
        });
        Server {
            child,
            addr,
            banner,
            stdout_rest,
            stderr,
            drains,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new keep-alive client connected to this server.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Convenience: one request on a new connection.
    pub fn get(&self, target: &str) -> Response {
        self.client().get(target)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits (at most 5 s) until the server's stderr contains `needle`, and returns it all.
    /// stderr is read by a thread of its own, so a line the server wrote before its
    /// `listening on` line may not have been read yet when the banner arrives.
    pub fn stderr_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.stderr();
            if text.contains(needle) || Instant::now() >= deadline {
                return text;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the server wrote to stdout after its first line.
    pub fn stdout_after_banner(&self) -> String {
        self.stdout_rest.text()
    }

    /// Sends `signal` (a name such as `TERM` or `INT`) with the `kill` command and waits up
    /// to `timeout` for the process to exit. Returns the exit status and how long it took,
    /// or an error if it did not exit in time (the process is then killed on drop).
    /// Once it returns `Ok`, [`Server::stderr`] holds everything the server wrote.
    pub fn stop_with(
        &mut self,
        signal: &str,
        timeout: Duration,
    ) -> Result<(ExitStatus, Duration), String> {
        let sent = Instant::now();
        self.signal(signal)?;
        let exit = self.wait_exit(timeout).ok_or_else(|| {
            format!(
                "server did not exit within {timeout:?} of SIG{signal}; stderr:\n{}",
                self.stderr()
            )
        })?;
        Ok((exit, sent.elapsed()))
    }

    /// Sends `signal` (a name such as `TERM`) to the server process, and only to it, with
    /// the `kill` command. Does not wait.
    pub fn signal(&self, signal: &str) -> Result<(), String> {
        if self.exited.is_some() {
            return Err("the server has already exited".into());
        }
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -{signal} {pid} failed: {status}"));
        }
        Ok(())
    }

    /// Polls for the process to exit, for at most `timeout`; then joins the pipe readers.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status);
                    // The pipes close with the process (it has no children), so this is quick.
                    for handle in self.drains.drain(..) {
                        let _ = handle.join();
                    }
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // Child::kill signals exactly this PID (SIGKILL) and nothing else.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `listening on http://127.0.0.1:PORT` or `listening on http://[::1]:PORT` → the address.
pub fn parse_banner(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("listening on http://")?;
    let addr: SocketAddr = rest.parse().ok()?;
    (addr.port() != 0).then_some(addr)
}

/// Starts `bin args` with stdin closed and stdout and stderr piped.
fn spawn_piped(bin: &Path, args: &[&str]) -> Child {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Runs `bin args` to completion (for `--help` and bad flags), killing it after `timeout`.
pub fn run_bin(bin: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut child = spawn_piped(bin, args);
    let out = Captured::default();
    let err = Captured::default();
    let t1 = drain(child.stdout.take().unwrap(), out.clone());
    let t2 = drain(child.stderr.take().unwrap(), err.clone());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {args:?} still running after {timeout:?}; stderr:\n{}",
                    bin.display(),
                    err.text()
                );
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    let _ = t1.join();
    let _ = t2.join();
    let stdout = out.0.lock().unwrap().clone();
    let stderr = err.0.lock().unwrap().clone();
    Output {
        status,
        stdout,
        stderr,
    }
}

pub use counterd::testkit::{Response, parse_response};

/// A raw HTTP/1.x client on one TCP connection. Every read and write has a timeout.
pub struct Client {
    pub stream: TcpStream,
    /// Bytes received but not yet consumed by a parsed response.
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: impl ToSocketAddrs) -> Client {
        let addr = addr
            .to_socket_addrs()
            .expect("address")
            .next()
            .expect("an address");
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Client::from_stream(stream)
    }

    /// Wraps a stream connected elsewhere (e.g. from a chosen source address).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let _ = stream.set_nodelay(true);
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Writes all of `bytes`, reporting failure instead of panicking.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Closes our sending side.
    pub fn shutdown_write(&mut self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// `GET target HTTP/1.1` (keep-alive) and its response.
    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target)
    }

    /// `METHOD target HTTP/1.1` (keep-alive) and its response; HEAD responses have no body.
    pub fn request(&mut self, method: &str, target: &str) -> Response {
        self.send(format!("{method} {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        if method == "HEAD" {
            self.read_head_response()
        } else {
            self.read_response()
        }
    }

    /// Reads one response whose body is framed by `Content-Length`.
    pub fn read_response(&mut self) -> Response {
        self.read_response_inner(false)
    }

    /// Reads one response to a HEAD request: headers only, whatever `Content-Length` says.
    pub fn read_head_response(&mut self) -> Response {
        self.read_response_inner(true)
    }

    fn read_response_inner(&mut self, head_only: bool) -> Response {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            if let Some((response, used)) = parse_response(&self.buf, head_only) {
                self.buf.drain(..used);
                return response;
            }
            self.fill(deadline, "a whole response");
        }
    }

    /// Asserts that the server closes the connection: no more bytes, then EOF (or a reset),
    /// within [`RESPONSE_TIMEOUT`].
    #[track_caller]
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before EOF: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => panic!("want EOF, got {:?}", String::from_utf8_lossy(&chunk[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return;
                }
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("want EOF, got {e}"),
            }
        }
    }

    /// Asserts that the connection stays open and silent for `wait`.
    #[track_caller]
    pub fn expect_open(&mut self, wait: Duration) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut chunk = [0u8; 4096];
        let got = self.stream.read(&mut chunk);
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match got {
            Err(e) if is_timeout(&e) => {}
            Ok(0) => panic!("server closed a connection that should stay open"),
            Ok(n) => panic!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) => panic!("connection should stay open: {e}"),
        }
    }

    /// Reads once more into `buf`; panics on EOF, error or the deadline.
    fn fill(&mut self, deadline: Instant, want: &str) {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "EOF while waiting for {want}; got so far {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => panic!(
                    "{e} while waiting for {want}; got so far {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `GET` request with extra header lines (each without its CRLF).
pub fn get_request(target: &str, version: &str, headers: &[&str]) -> Vec<u8> {
    let mut req = format!("GET {target} {version}\r\nHost: test\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// A fresh directory of this test binary's own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "counterd-{}-{tag}-{}-{nanos}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub mod checks;
