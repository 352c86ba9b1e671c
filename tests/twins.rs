//! The thread-per-connection twins of `examples/` (`threads_mutex`, `threads_manager`)
//! against the same checks as counterd: the API, HTTP/1.x framing on a blocking socket,
//! and the exact count under concurrent clients. Only `/metrics` is left out: a twin's
//! metrics belong to the asking connection (see `examples/thread_per_conn/mod.rs`).
//!
//! The twins are examples, which `cargo test` builds but `cargo test --test twins` alone
//! does not: build them first (`cargo build --examples`) when running this file alone.

mod common;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::checks::{self, assert_standard_headers};
use common::{Server, get_request};

/// `target/<profile>/examples/NAME`, next to the counterd binary cargo built for the tests.
fn twin(name: &str) -> PathBuf {
    let counterd = PathBuf::from(env!("CARGO_BIN_EXE_counterd"));
    let path = counterd
        .parent()
        .expect("the counterd binary is in a directory")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo test` (which builds the examples) or \
         `cargo build --examples` before `cargo test --test twins`",
        path.display()
    );
    path
}

fn start(name: &str, args: &[&str]) -> Server {
    Server::start_bin(&twin(name), args)
}

/// The same check functions for every twin, one `#[test]` each so that a failure names
/// both the twin and the check.
macro_rules! twin_tests {
    ($($twin:ident),*) => {$(
        mod $twin {
            const NAME: &str = stringify!($twin);
            #[test]
            fn the_original_session() { super::original_session(NAME) }
            #[test]
            fn api_errors() { super::api_errors(NAME) }
            #[test]
            fn max_counters_is_507() { super::max_counters_is_507(NAME) }
            #[test]
            fn head_and_absolute_form() { super::head_and_absolute_form(NAME) }
            #[test]
            fn keep_alive_and_close() { super::keep_alive_and_close(NAME) }
            #[test]
            fn pipelining() { super::pipelining(NAME) }
            #[test]
            fn pipelined_flood_without_reading() { super::pipelined_flood_without_reading(NAME) }
            #[test]
            fn trickled_and_half_closed_input() { super::trickled_and_half_closed_input(NAME) }
            #[test]
            fn bad_requests_are_refused_and_closed() { super::bad_requests(NAME) }
            #[test]
            fn concurrent_incs_lose_no_update() { super::concurrent_incs(NAME) }
            #[test]
            fn concurrent_set_and_get_never_cross_answers() { super::concurrent_set_get(NAME) }
            #[test]
            fn blocking_work_overlaps_across_clients() { super::work_overlaps(NAME) }
            #[test]
            fn command_line() { super::command_line(NAME) }
        }
    )*};
}

twin_tests!(threads_mutex, threads_manager);

fn original_session(name: &str) {
    let server = start(name, &[]);
    checks::original_session(&server);
    // Every connection sees the one store.
    server.get("/inc?name=x").assert(200, "ok\n");
    server.get("/get?name=x").assert(200, "x: 2\n");
}

fn api_errors(name: &str) {
    let server = start(name, &[]);
    let mut c = server.client();
    c.get("/get?name=y").assert(404, "y not found\n");
    c.get("/inc?name=y").assert(404, "y not found\n");
    server.get("/get?name=y").assert(404, "y not found\n");

    c.get("/set?name=N&val=9223372036854775807")
        .assert(200, "ok\n");
    let r = c.get("/inc?name=N");
    r.assert(409, "N: increment would overflow\n");
    assert_standard_headers(&r);
    c.get("/get?name=N").assert(200, "N: 9223372036854775807\n");

    checks::api_400s_keep_the_connection(
        &mut c,
        &[
            "/get",
            "/get?name=",
            "/set?name=v&val=abc",
            "/set?name=v",
            "/get?name=%zz",
        ],
    );
    c.get("/set?name=a+b%21&val=3").assert(200, "ok\n");
    c.get("/get?name=a%20b!").assert(200, "a b!: 3\n");

    for target in ["/", "/nope", "/GET?name=i"] {
        c.get(target).assert(404, "404 page not found\n");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let r = c.request(method, "/set?name=i&val=5");
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{r:?}");
    }
    c.get("/get?name=i").assert(200, "i: 0\n");
}

fn max_counters_is_507(name: &str) {
    let server = start(name, &["--max-counters", "3"]);
    let mut c = server.client();
    c.get("/set?name=a&val=1").assert(200, "ok\n");
    let r = c.get("/set?name=b&val=1");
    assert_eq!(r.status, 507, "{r:?}");
    c.get("/set?name=a&val=5").assert(200, "ok\n");
    c.get("/get?name=a").assert(200, "a: 5\n");
}

fn head_and_absolute_form(name: &str) {
    let server = start(name, &[]);
    let mut c = server.client();
    for target in ["/get?name=i", "/get?name=nope", "/nowhere", "/get?name="] {
        let get = c.get(target);
        let head = c.request("HEAD", target);
        assert_eq!(head.status, get.status, "{target}");
        assert!(head.body.is_empty());
        assert_eq!(head.header("Content-Length"), get.header("Content-Length"));
    }
    let r = c.request("HEAD", "/inc?name=i");
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("3")));
    c.get("/get?name=i").assert(200, "i: 1\n");

    c.get("http://example.com/set?name=abs&val=4")
        .assert(200, "ok\n");
    c.get("HTTP://h:8000/inc?name=abs").assert(200, "ok\n");
    c.get("/get?name=abs").assert(200, "abs: 5\n");
}

fn keep_alive_and_close(name: &str) {
    let server = start(name, &[]);
    let mut c = server.client();
    for n in 1..=20 {
        c.get("/inc?name=k").assert(404, "k not found\n");
        c.get(&format!("/set?name=k{n}&val={n}"))
            .assert(200, "ok\n");
    }
    c.expect_open(Duration::from_millis(100));

    // HTTP/1.0 keep-alive stays open and says so; without it, the answer closes.
    checks::http10_keep_alive_then_close(&mut c, 1);

    // HTTP/1.1 Connection: close; what follows it is not answered.
    let mut c = server.client();
    let mut raw = get_request("/inc?name=i", "HTTP/1.1", &["Connection: close"]);
    raw.extend(get_request("/inc?name=i", "HTTP/1.1", &[]));
    c.send(&raw);
    let r = c.read_response();
    r.assert(200, "ok\n");
    assert!(r.closes(), "{r:?}");
    c.expect_eof();
    server.get("/get?name=i").assert(200, "i: 1\n");
}

fn pipelining(name: &str) {
    checks::hundred_pipelined_requests_in_order(&start(name, &[]));
}

/// Backpressure on a blocking socket: the twin blocks in `write` while the client does not
/// read, stops reading, and carries on once the client reads.
fn pipelined_flood_without_reading(name: &str) {
    checks::pipelined_flood_without_reading(&start(name, &[]));
}

fn trickled_and_half_closed_input(name: &str) {
    let server = start(name, &[]);
    let mut c = server.client();
    for byte in get_request("/set?name=slow&val=41", "HTTP/1.1", &["Accept: */*"]) {
        c.send(&[byte]);
        thread::sleep(Duration::from_millis(1));
    }
    c.read_response().assert(200, "ok\n");
    c.get("/get?name=slow").assert(200, "slow: 41\n");
    checks::half_closed_burst_gets_every_answer(&mut c, "slow");
}

fn bad_requests(name: &str) {
    let server = start(name, &[]);
    for (raw, status) in [
        (&b"this is not http\r\n\r\n"[..], 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            400,
        ),
    ] {
        let mut c = server.client();
        c.send(raw);
        let r = c.read_response();
        assert_eq!(
            r.status,
            status,
            "{:?}: {r:?}",
            String::from_utf8_lossy(raw)
        );
        assert!(r.closes(), "{r:?}");
        c.expect_eof();
    }
    // Answers before the bad request in a pipeline are kept; what follows is not answered.
    let mut c = server.client();
    let mut raw = get_request("/inc?name=i", "HTTP/1.1", &[]);
    raw.extend(b"NOT A REQUEST\r\n\r\n");
    raw.extend(get_request("/inc?name=i", "HTTP/1.1", &[]));
    c.send(&raw);
    c.read_response().assert(200, "ok\n");
    assert_eq!(c.read_response().status, 400);
    c.expect_eof();
    server.get("/get?name=i").assert(200, "i: 1\n");
}

fn concurrent_incs(name: &str) {
    checks::concurrent_incs_lose_no_update(&start(name, &[]));
}

fn concurrent_set_get(name: &str) {
    checks::concurrent_set_and_get_never_cross_answers(&start(name, &[]));
}

/// `CLIENTS` clients, each one request on its own connection, at once; how long until the
/// last answer.
fn simultaneous_requests(server: &Server, clients: usize) -> Duration {
    let addr = server.addr;
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| thread::spawn(move || common::Client::connect(addr).get("/inc?name=i")))
        .collect();
    for t in threads {
        t.join().expect("client").assert(200, "ok\n");
    }
    started.elapsed()
}

const WORK: Duration = Duration::from_millis(200);
const WORK_CLIENTS: usize = 5;

/// The trade-off of `docs/concurrency-model.md` in one test: with `--work-us`, each
/// request blocks its thread; a thread per connection overlaps the blocking...
fn work_overlaps(name: &str) {
    let server = start(name, &["--work-us", &WORK.as_micros().to_string()]);
    let took = simultaneous_requests(&server, WORK_CLIENTS);
    // 5 × 200 ms back to back would be 1 s; overlapped it is a little over 200 ms.
    assert!(
        took < WORK * 3,
        "{WORK_CLIENTS} requests of {WORK:?} each took {took:?}: they should overlap"
    );
    server
        .get("/get?name=i")
        .assert(200, &format!("i: {WORK_CLIENTS}\n"));
}

/// ...while counterd's one thread serves them one after another.
#[test]
fn counterd_serialises_blocking_work() {
    let server = Server::start_bin(
        &PathBuf::from(env!("CARGO_BIN_EXE_counterd")),
        &["--work-us", &WORK.as_micros().to_string()],
    );
    let took = simultaneous_requests(&server, WORK_CLIENTS);
    assert!(
        took >= WORK * WORK_CLIENTS as u32,
        "{WORK_CLIENTS} requests of {WORK:?} each took only {took:?} on one thread"
    );
}

fn command_line(name: &str) {
    let bin = twin(name);
    let out = common::run_bin(&bin, &["--help"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for documented in ["Usage:", "[PORT]", "--work-us", "--max-counters"] {
        assert!(help.contains(documented), "{documented}: {help}");
    }
    for args in [
        &["--work-us", "x"][..],
        &["--work-us"],
        &["70000"],
        &["0", "1"],
        &["--no-such-flag"],
    ] {
        let out = common::run_bin(&bin, args, Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: a message on stderr");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    // The banner is the first and only stdout line.
    let server = start(name, &[]);
    assert!(server.banner.starts_with("listening on http://127.0.0.1:"));
    assert_eq!(server.stdout_after_banner(), "");
}
