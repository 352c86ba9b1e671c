//! HTTP/1.x on the wire: keep-alive, HTTP/1.0, pipelining, trickled and half-closed input,
//! request bodies, and every class of bad input of docs/reference.md, against the real binary.

mod common;

use std::io::Write;
use std::thread;
use std::time::Duration;

use common::checks;
use common::{Client, Response, Server, get_request};

/// Sends `raw` on a new connection; asserts the answer has `status` (one of `statuses`),
/// says `Connection: close` and is followed by EOF; then checks that the server still
/// serves a new connection.
#[track_caller]
fn refused(server: &Server, raw: &[u8], statuses: &[u16]) -> Response {
    let mut c = server.client();
    c.send(raw);
    let r = c.read_response();
    let what = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    assert!(
        statuses.contains(&r.status),
        "{what:?}: want {statuses:?}, got {r:?}"
    );
    assert!(
        r.closes(),
        "{what:?}: an error answer says Connection: close: {r:?}"
    );
    assert!(r.raw_head.contains("\r\nConnection: close\r\n"), "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    c.expect_eof();
    server.get("/get?name=i").assert(200, "i: 0\n");
    r
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("/set?name=k&val=0").assert(200, "ok\n");
    for n in 1..=20 {
        c.get("/inc?name=k").assert(200, "ok\n");
        let r = c.get("/get?name=k");
        r.assert(200, &format!("k: {n}\n"));
        assert!(
            r.header("Connection").is_none(),
            "HTTP/1.1 keep-alive needs no Connection header: {r:?}"
        );
    }
    c.expect_open(Duration::from_millis(100));
    let metrics = c.get("/metrics");
    assert!(
        metrics
            .text()
            .contains("counterd_connections_accepted_total 1\n"),
        "all on one connection:\n{}",
        metrics.text()
    );
}

#[test]
fn http10_without_keep_alive_closes() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.send(b"GET /get?name=i HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    r.assert(200, "i: 0\n");
    assert!(r.raw_head.contains("\r\nConnection: close\r\n"), "{r:?}");
    c.expect_eof();
}

#[test]
fn http10_with_keep_alive_stays_open() {
    let server = Server::start(&[]);
    checks::http10_keep_alive_then_close(&mut server.client(), 3);
}

#[test]
fn http11_connection_close_closes() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.send(&get_request(
        "/inc?name=i",
        "HTTP/1.1",
        &["Connection: close"],
    ));
    let r = c.read_response();
    r.assert(200, "ok\n");
    assert!(r.raw_head.contains("\r\nConnection: close\r\n"), "{r:?}");
    c.expect_eof();
    server.get("/get?name=i").assert(200, "i: 1\n");
}

#[test]
fn requests_after_connection_close_are_not_answered() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let mut raw = get_request("/inc?name=i", "HTTP/1.1", &[]);
    raw.extend(get_request(
        "/inc?name=i",
        "HTTP/1.1",
        &["Connection: close"],
    ));
    raw.extend(get_request("/inc?name=i", "HTTP/1.1", &[]));
    c.send(&raw);
    let first = c.read_response();
    first.assert(200, "ok\n");
    assert!(!first.closes());
    let second = c.read_response();
    second.assert(200, "ok\n");
    assert!(second.closes(), "{second:?}");
    c.expect_eof();
    server.get("/get?name=i").assert(200, "i: 2\n");
}

#[test]
fn hundred_pipelined_requests_in_one_write_are_answered_in_order() {
    checks::hundred_pipelined_requests_in_order(&Server::start(&[]));
}

#[test]
fn a_request_sent_byte_by_byte_is_answered() {
    let server = Server::start(&[]);
    let mut c = server.client();
    for (raw, status, body) in [
        (
            get_request(
                "/set?name=slow&val=41",
                "HTTP/1.1",
                &["User-Agent: trickle", "Accept: */*"],
            ),
            200,
            "ok\n",
        ),
        (get_request("/inc?name=slow", "HTTP/1.1", &[]), 200, "ok\n"),
        (
            get_request("/get?name=slow", "HTTP/1.1", &[]),
            200,
            "slow: 42\n",
        ),
    ] {
        for byte in &raw {
            c.send(std::slice::from_ref(byte));
            thread::sleep(Duration::from_millis(1));
        }
        c.read_response().assert(status, body);
    }
    // Bare LF line endings, trickled too.
    for byte in b"GET /get?name=slow HTTP/1.1\nHost: t\n\n" {
        c.send(std::slice::from_ref(byte));
        thread::sleep(Duration::from_millis(1));
    }
    c.read_response().assert(200, "slow: 42\n");
}

#[test]
fn half_closed_client_gets_every_answer_then_eof() {
    let server = Server::start(&[]);
    checks::half_closed_burst_gets_every_answer(&mut server.client(), "h");
}

#[test]
fn half_close_right_after_one_request() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.send(&get_request("/get?name=i", "HTTP/1.1", &[]));
    c.shutdown_write();
    c.read_response().assert(200, "i: 0\n");
    c.expect_eof();
}

#[test]
fn content_length_body_is_skipped() {
    let server = Server::start(&[]);
    let mut c = server.client();
    // The body looks like a request: executing it would desynchronise the stream.
    let smuggled = "GET /inc?name=b HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut raw = get_request(
        "/set?name=b&val=1",
        "HTTP/1.1",
        &[&format!("Content-Length: {}", smuggled.len())],
    );
    raw.extend(smuggled.as_bytes());
    raw.extend(get_request("/get?name=b", "HTTP/1.1", &[]));
    c.send(&raw);
    c.read_response().assert(200, "ok\n");
    c.read_response().assert(200, "b: 1\n");

    // A body that arrives in pieces, across writes.
    c.send(&get_request(
        "/inc?name=b",
        "HTTP/1.1",
        &["Content-Length: 10"],
    ));
    thread::sleep(Duration::from_millis(50));
    c.send(b"0123");
    thread::sleep(Duration::from_millis(50));
    c.send(b"456789");
    c.send(&get_request("/get?name=b", "HTTP/1.1", &[]));
    c.read_response().assert(200, "ok\n");
    c.read_response().assert(200, "b: 2\n");

    // Content-Length: 0 and a repeated identical Content-Length are fine.
    let raw = get_request("/get?name=b", "HTTP/1.1", &["Content-Length: 0"]);
    c.send(&raw);
    c.read_response().assert(200, "b: 2\n");
    let mut raw = get_request(
        "/get?name=b",
        "HTTP/1.1",
        &["Content-Length: 3", "Content-Length: 3"],
    );
    raw.extend(b"xyz");
    c.send(&raw);
    c.read_response().assert(200, "b: 2\n");

    // A body of exactly 1 MiB is still read and discarded.
    let mut raw = get_request("/inc?name=b", "HTTP/1.1", &["Content-Length: 1048576"]);
    raw.extend(vec![b'G'; 1 << 20]);
    raw.extend(get_request("/get?name=b", "HTTP/1.1", &[]));
    let mut writer = c.stream.try_clone().unwrap();
    let t = thread::spawn(move || writer.write_all(&raw));
    c.read_response().assert(200, "ok\n");
    c.read_response().assert(200, "b: 3\n");
    t.join().unwrap().expect("1 MiB body written");
}

#[test]
fn pipelined_flood_without_reading_is_answered_in_full() {
    checks::pipelined_flood_without_reading(&Server::start(&[]));
}

#[test]
fn malformed_request_lines_are_400() {
    let server = Server::start(&[]);
    for raw in [
        &b"this is not http\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /get?name=i\r\n\r\n",
        b"GET /get?name=i HTTP/1.1 extra\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        refused(&server, raw, &[400]);
    }
}

#[test]
fn a_version_that_is_not_digit_dot_digit_is_400_and_a_foreign_one_505() {
    let server = Server::start(&[]);
    for raw in [
        &b"GET / HTTP/1.x\r\n\r\n"[..],
        b"GET / HTTP/11\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET / HTTP/1.1.1\r\n\r\n",
    ] {
        refused(&server, raw, &[400]);
    }
    for raw in [&b"GET / HTTP/2.0\r\n\r\n"[..], b"GET / HTTP/1.2\r\n\r\n"] {
        refused(&server, raw, &[505]);
    }
}

#[test]
fn a_head_mixing_crlf_and_bare_lf_is_400_and_hides_no_request() {
    // llhttp's CVE-2022-35256: a front end that ends lines only at CRLF reads `Dummy` as
    // one header and forwards the `GET /inc` as a body; whoever splits at bare LF as well
    // sees a Content-Length and then runs a second, hidden request.
    let server = Server::start(&[]);
    let hidden = b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut raw = format!(
        "GET /get?name=i HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: {}\r\n\r\n",
        hidden.len()
    )
    .into_bytes();
    raw.extend_from_slice(hidden);
    refused(&server, &raw, &[400]);
    refused(&server, b"GET /get?name=i HTTP/1.1\r\nHost: x\n\n", &[400]);
    server.get("/get?name=i").assert(200, "i: 0\n");
    // A head of bare LFs only, as typed into nc, is served.
    let mut c = server.client();
    c.send(b"GET /inc?name=i HTTP/1.1\nHost: x\n\n");
    c.read_response().assert(200, "ok\n");
    server.get("/get?name=i").assert(200, "i: 1\n");
}

#[test]
fn bad_headers_are_400() {
    let server = Server::start(&[]);
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    ] {
        refused(&server, raw, &[400]);
    }
}

#[test]
fn invalid_content_length_is_400() {
    let server = Server::start(&[]);
    for value in ["+5", "-1", "5,6", "0x10", "", "1e3", "5 5"] {
        let raw = get_request(
            "/inc?name=i",
            "HTTP/1.1",
            &[&format!("Content-Length: {value}")],
        );
        refused(&server, &raw, &[400]);
    }
    let raw = get_request(
        "/inc?name=i",
        "HTTP/1.1",
        &["Content-Length: 3", "Content-Length: 4"],
    );
    refused(&server, &raw, &[400]);
    let raw = get_request(
        "/inc?name=i",
        "HTTP/1.1",
        &["Content-Length: 3", "Transfer-Encoding: chunked"],
    );
    refused(&server, &raw, &[400]);
    let raw = get_request(
        "/inc?name=i",
        "HTTP/1.1",
        &["Transfer-Encoding: chunked", "Content-Length: 3"],
    );
    refused(&server, &raw, &[400]);
    // None of the refused /inc requests ran (`refused` checks i is still 0).
}

#[test]
fn transfer_encodings_other_than_a_lone_chunked_are_400() {
    let server = Server::start(&[]);
    for te in [
        "gzip",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        "chunked\r\nTransfer-Encoding: chunked",
        " xchunked",
    ] {
        let mut raw = get_request(
            "/inc?name=i",
            "HTTP/1.1",
            &[&format!("Transfer-Encoding: {te}")],
        );
        raw.extend(b"3\r\nabc\r\n0\r\n\r\n");
        refused(&server, &raw, &[400]);
    }
    let mut raw = get_request("/inc?name=i", "HTTP/1.0", &["Transfer-Encoding: chunked"]);
    raw.extend(b"3\r\nabc\r\n0\r\n\r\n");
    refused(&server, &raw, &[400]);
}

#[test]
fn a_chunked_post_and_a_pipelined_get_are_both_answered_in_order() {
    let server = Server::start(&[]);
    let mut raw = b"POST /inc?name=i HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
        1c;note=x\r\nGET /inc?name=i HTTP/1.1\r\n\r\n\r\n0\r\nTrailer: y\r\n\r\n"
        .to_vec();
    raw.extend(get_request("/inc?name=i", "HTTP/1.1", &[]));
    raw.extend(get_request("/get?name=i", "HTTP/1.1", &[]));
    for (k, write) in [raw.len(), 1, 7].into_iter().enumerate() {
        let mut c = server.client();
        for piece in raw.chunks(write) {
            c.send(piece);
        }
        c.read_response().assert(405, "method not allowed\n");
        c.read_response().assert(200, "ok\n");
        // The body's look-alike request never ran: one /inc per round.
        c.read_response().assert(200, &format!("i: {}\n", k + 1));
    }
}

#[test]
fn a_request_smuggled_behind_bad_chunk_framing_never_runs() {
    let server = Server::start(&[]);
    for framing in [
        "3\r\nabc\n0\r\n\r\n",    // bare LF after the data
        "3\r\nabcX\r\n0\r\n\r\n", // data longer than its size
        "3 \r\nabc\r\n0\r\n\r\n", // whitespace after the size
        "-3\r\nabc\r\n0\r\n\r\n", // a sign
        "0x3\r\nabc\r\n0\r\n\r\n",
        "3\rabc\r\n0\r\n\r\n",                   // bare CR
        "10000000000000003\r\nabc\r\n0\r\n\r\n", // overflow
    ] {
        let mut raw = get_request("/get?name=i", "HTTP/1.1", &["Transfer-Encoding: chunked"]);
        raw.extend(framing.as_bytes());
        raw.extend(get_request("/inc?name=i", "HTTP/1.1", &[]));
        refused(&server, &raw, &[400]); // and `refused` checks that i is still 0
    }
    let mut raw = get_request("/get?name=i", "HTTP/1.1", &["Transfer-Encoding: chunked"]);
    raw.extend(b"100001\r\n");
    refused(&server, &raw, &[413]);
}

#[test]
fn host_is_checked_as_rfc_9112_says() {
    let server = Server::start(&[]);
    for raw in [
        &b"GET /inc?name=i HTTP/1.1\r\n\r\n"[..],
        b"GET /inc?name=i HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET /inc?name=i HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET /inc?name=i HTTP/1.1\r\nHost: user@x.example/p, y.example\r\n\r\n",
        b"GET /inc?name=i HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET http://h/inc?name=i HTTP/1.1\r\nHost: a@b\r\n\r\n",
    ] {
        refused(&server, raw, &[400]);
    }
    let mut c = server.client();
    c.send(b"GET /get?name=i HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    c.read_response().assert(200, "i: 0\n"); // HTTP/1.0 may omit it
    c.send(b"GET http://h/get?name=i HTTP/1.1\r\nHost: other:80\r\n\r\n");
    c.read_response().assert(200, "i: 0\n");
    c.send(b"GET /get?name=i HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n");
    c.read_response().assert(200, "i: 0\n");
}

#[test]
fn fragments_raw_bytes_and_stray_asterisks_in_the_target_are_400() {
    let server = Server::start(&[]);
    for raw in [
        &b"GET /get?name=i#frag HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /get?name=\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD * HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        refused(&server, raw, &[400]);
    }
    // `OPTIONS *` is well-formed; OPTIONS, like every method but GET and HEAD, is 405.
    let mut c = server.client();
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
}

#[test]
fn body_over_one_mib_is_413() {
    let server = Server::start(&[]);
    let raw = get_request("/inc?name=i", "HTTP/1.1", &["Content-Length: 1048577"]);
    refused(&server, &raw, &[413]);
    // Too large to represent at all is malformed rather than too large.
    let raw = get_request(
        "/inc?name=i",
        "HTTP/1.1",
        &["Content-Length: 99999999999999999999"],
    );
    refused(&server, &raw, &[400]);
}

#[test]
fn body_over_one_mib_is_413_even_while_the_body_streams_in() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let mut raw = get_request("/inc?name=i", "HTTP/1.1", &["Content-Length: 2097152"]);
    raw.extend(vec![b'x'; 2 << 20]);
    let mut writer = c.stream.try_clone().unwrap();
    // The server may stop reading once it has answered; errors writing the rest are fine.
    let t = thread::spawn(move || {
        for chunk in raw.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                return;
            }
        }
    });
    let r = c.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.closes(), "{r:?}");
    c.expect_eof();
    t.join().unwrap();
    drop(c);
    server.get("/get?name=i").assert(200, "i: 0\n");
}

#[test]
fn more_than_64_headers_is_431() {
    let server = Server::start(&[]);
    // Host plus 64 more: 65 header fields.
    let names: Vec<String> = (0..64).map(|n| format!("X-H{n}: v")).collect();
    let fields: Vec<&str> = names.iter().map(String::as_str).collect();
    refused(
        &server,
        &get_request("/inc?name=i", "HTTP/1.1", &fields),
        &[431],
    );
    // 64 in all is fine.
    let mut c = server.client();
    c.send(&get_request("/get?name=i", "HTTP/1.1", &fields[..63]));
    c.read_response().assert(200, "i: 0\n");
}

#[test]
fn head_over_8192_bytes_is_431() {
    let server = Server::start(&[]);
    let big = format!("X-Big: {}", "a".repeat(9000));
    refused(
        &server,
        &get_request("/inc?name=i", "HTTP/1.1", &[&big]),
        &[431],
    );
    // The same, trickled in pieces, without the end of the head ever arriving.
    let mut c = server.client();
    c.send(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for n in 0..9 {
        // Past 8192 bytes the server may stop reading; only the first 8 KiB must go in.
        if let Err(e) = c.try_send(&[b'a'; 1024]) {
            assert!(n >= 8, "server stopped reading after {n} KiB: {e}");
        }
        thread::sleep(Duration::from_millis(5));
    }
    let r = c.read_response();
    assert_eq!(r.status, 431, "{r:?}");
    assert!(r.closes());
    c.expect_eof();
    // A head of just under the limit is fine.
    let ok = format!("X-Big: {}", "a".repeat(8000));
    let mut c = server.client();
    c.send(&get_request("/get?name=i", "HTTP/1.1", &[&ok]));
    c.read_response().assert(200, "i: 0\n");
}

#[test]
fn unsupported_versions_are_505_or_400() {
    let server = Server::start(&[]);
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9"] {
        let raw = get_request("/inc?name=i", version, &[]);
        refused(&server, &raw, &[505, 400]);
    }
}

#[test]
fn answers_before_an_error_in_a_pipeline_are_kept() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let mut raw = get_request("/inc?name=i", "HTTP/1.1", &[]);
    raw.extend(get_request("/get?name=i", "HTTP/1.1", &[]));
    raw.extend(b"NOT A REQUEST\r\n\r\n");
    raw.extend(get_request("/inc?name=i", "HTTP/1.1", &[]));
    c.send(&raw);
    c.read_response().assert(200, "ok\n");
    c.read_response().assert(200, "i: 1\n");
    let r = c.read_response();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.closes());
    c.expect_eof();
    server.get("/get?name=i").assert(200, "i: 1\n");
}

#[test]
fn a_client_that_connects_and_leaves_does_not_disturb_the_server() {
    let server = Server::start(&[]);
    for _ in 0..20 {
        let c = Client::connect(server.addr);
        drop(c);
    }
    let mut c = server.client();
    c.send(b"GET /get?na");
    drop(c);
    server.get("/get?name=i").assert(200, "i: 0\n");
}

/// The answer to a `Connection: close` request is delivered whole even when the client has
/// sent more bytes that the server will never read (closing a socket with unread input
/// makes the kernel reset the connection and drop output it has not sent yet).
#[test]
fn close_answer_survives_unread_trailing_input() {
    const N: usize = 3_000;
    let server = Server::start(&[]);
    let mut c = server.client();
    let one = get_request("/metrics", "HTTP/1.1", &[]);
    let mut raw: Vec<u8> = one.iter().copied().cycle().take(one.len() * N).collect();
    raw.extend(get_request("/metrics", "HTTP/1.1", &["Connection: close"]));
    let mut writer = c.stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&raw).expect("requests sent");
        // Later, while answers are still held back: bytes after the close request.
        thread::sleep(Duration::from_millis(300));
        let _ = writer.write_all(&get_request("/inc?name=i", "HTTP/1.1", &[]));
    });
    thread::sleep(Duration::from_millis(600));
    for n in 0..N {
        let r = c.read_response();
        assert_eq!(r.status, 200, "answer {n}");
        assert!(!r.closes());
    }
    let last = c.read_response();
    assert_eq!(last.status, 200);
    assert!(last.closes());
    c.expect_eof();
    sender.join().unwrap();
    server.get("/get?name=i").assert(200, "i: 0\n");
}
