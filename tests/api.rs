//! The counter API of docs/reference.md, spoken over raw TCP to the real binary.

mod common;

use std::collections::BTreeMap;

use common::checks::{self, assert_standard_headers};
use common::{Client, Response, Server};

#[test]
fn the_original_session_byte_for_byte() {
    checks::original_session(&Server::start(&[]));
}

#[test]
fn preloaded_counters_and_set_overwrites() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("/get?name=i").assert(200, "i: 0\n");
    c.get("/get?name=j").assert(200, "j: 0\n");
    c.get("/inc?name=j").assert(200, "ok\n");
    c.get("/get?name=j").assert(200, "j: 1\n");
    c.get("/get?name=i").assert(200, "i: 0\n");
    c.get("/set?name=j&val=-42").assert(200, "ok\n");
    c.get("/get?name=j").assert(200, "j: -42\n");
    c.get("/set?name=j&val=%2B7").assert(200, "ok\n");
    c.get("/get?name=j").assert(200, "j: 7\n");
    c.get("/set?name=big&val=-9223372036854775808")
        .assert(200, "ok\n");
    c.get("/get?name=big")
        .assert(200, "big: -9223372036854775808\n");
}

#[test]
fn missing_counter_is_404_and_inc_never_creates() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("/get?name=y").assert(404, "y not found\n");
    c.get("/inc?name=y").assert(404, "y not found\n");
    c.get("/inc?name=y").assert(404, "y not found\n");
    c.get("/get?name=y").assert(404, "y not found\n");
    // A new connection sees the same store.
    server.get("/get?name=y").assert(404, "y not found\n");
}

#[test]
fn overflow_is_409_and_keeps_the_value() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("/set?name=N&val=9223372036854775806")
        .assert(200, "ok\n");
    c.get("/inc?name=N").assert(200, "ok\n");
    c.get("/get?name=N").assert(200, "N: 9223372036854775807\n");
    let r = c.get("/inc?name=N");
    r.assert(409, "N: increment would overflow\n");
    assert_standard_headers(&r);
    c.get("/get?name=N").assert(200, "N: 9223372036854775807\n");
}

#[test]
fn bad_val_is_400_naming_the_value() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("/set?name=v&val=5").assert(200, "ok\n");
    for (raw, decoded) in [
        ("abc", "abc"),
        ("1.5", "1.5"),
        ("0x10", "0x10"),
        ("12z", "12z"),
        ("--1", "--1"),
        ("9223372036854775808", "9223372036854775808"),
        ("%201", " 1"),
        ("1e3", "1e3"),
    ] {
        let r = c.get(&format!("/set?name=v&val={raw}"));
        assert_eq!(r.status, 400, "val={raw}: {r:?}");
        assert!(
            r.text().contains(decoded),
            "the body of a bad val={raw} names it: {:?}",
            r.text()
        );
        assert!(r.text().ends_with('\n'));
        assert_standard_headers(&r);
    }
    let r = c.get("/set?name=v&val=");
    assert_eq!(r.status, 400, "empty val: {r:?}");
    assert_eq!(c.get("/set?name=v").status, 400, "missing val");
    c.get("/get?name=v").assert(200, "v: 5\n");
}

#[test]
fn names_missing_empty_or_too_long_are_400() {
    let server = Server::start(&[]);
    let mut c = server.client();
    checks::api_400s_keep_the_connection(
        &mut c,
        &[
            "/get",
            "/get?",
            "/get?nam=x",
            "/get?name=",
            "/inc",
            "/inc?name=",
            "/set?val=1",
            "/set?name=&val=1",
            "/get?name=%zz",
            "/get?name=%ff",
        ],
    );
    let n256 = "a".repeat(256);
    c.get(&format!("/set?name={n256}&val=3"))
        .assert(200, "ok\n");
    c.get(&format!("/get?name={n256}"))
        .assert(200, &format!("{n256}: 3\n"));
    let n257 = "b".repeat(257);
    assert_eq!(c.get(&format!("/set?name={n257}&val=3")).status, 400);
    assert_eq!(c.get(&format!("/get?name={n257}")).status, 400);
    assert_eq!(c.get(&format!("/inc?name={n257}")).status, 400);
    // The limit is in bytes after decoding: 128 × `é` is 256 bytes, one more byte is too many.
    let e128 = "%C3%A9".repeat(128);
    c.get(&format!("/set?name={e128}&val=1"))
        .assert(200, "ok\n");
    assert_eq!(c.get(&format!("/set?name={e128}a&val=1")).status, 400);
}

#[test]
fn query_strings_are_form_urlencoded() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("/set?name=a+b%21&val=3").assert(200, "ok\n");
    c.get("/get?name=a%20b!").assert(200, "a b!: 3\n");
    c.get("/get?name=x&name=i").assert(404, "x not found\n"); // the first occurrence wins
    c.get("/get?junk=1&name=i&other").assert(200, "i: 0\n"); // unknown parameters ignored
    c.get("/set?val=9&name=o").assert(200, "ok\n");
    c.get("/get?name=o").assert(200, "o: 9\n");
}

/// `name{labels} value` lines of a Prometheus exposition.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {l:?}"));
            (
                k.to_string(),
                v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

#[test]
fn metrics_has_every_series_and_counts_requests() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    assert_standard_headers(&r);
    let before = samples(r.text());
    let want = [
        "counterd_connections_open",
        "counterd_connections_peak",
        "counterd_connections_accepted_total",
        "counterd_connections_rejected_total",
        "counterd_requests_total{route=\"get\"}",
        "counterd_requests_total{route=\"set\"}",
        "counterd_requests_total{route=\"inc\"}",
        "counterd_requests_total{route=\"metrics\"}",
        "counterd_requests_total{route=\"other\"}",
        "counterd_responses_total{code=\"200\"}",
        "counterd_responses_total{code=\"400\"}",
        "counterd_responses_total{code=\"404\"}",
        "counterd_rate_limited_total",
        "counterd_timeouts_total{kind=\"idle\"}",
        "counterd_timeouts_total{kind=\"header\"}",
        "counterd_counters",
        "counterd_loop_iterations_total",
        "counterd_events_total",
    ];
    for series in want {
        assert!(
            before.contains_key(series),
            "/metrics lacks {series}:\n{}",
            r.text()
        );
    }
    for name in ["counterd_connections_open", "counterd_counters"] {
        assert!(
            r.text().contains(&format!("# TYPE {name} gauge\n")),
            "{name} is a gauge:\n{}",
            r.text()
        );
    }
    assert!(
        r.text()
            .contains("# TYPE counterd_requests_total counter\n"),
        "{}",
        r.text()
    );
    assert_eq!(before["counterd_counters"], 2.0, "i and j preloaded");
    assert!(before["counterd_connections_open"] >= 1.0);
    assert!(before["counterd_connections_accepted_total"] >= 1.0);
    assert!(before["counterd_requests_total{route=\"metrics\"}"] >= 1.0);

    c.get("/inc?name=i").assert(200, "ok\n");
    c.get("/inc?name=i").assert(200, "ok\n");
    c.get("/inc?name=nope").assert(404, "nope not found\n");
    c.get("/set?name=new&val=1").assert(200, "ok\n");
    assert_eq!(c.get("/get?name=").status, 400);
    c.get("/elsewhere").assert(404, "404 page not found\n");
    let after = samples(c.get("/metrics").text());
    let delta = |k: &str| after[k] - before[k];
    assert_eq!(delta("counterd_requests_total{route=\"inc\"}"), 3.0);
    assert_eq!(delta("counterd_requests_total{route=\"set\"}"), 1.0);
    assert_eq!(delta("counterd_requests_total{route=\"get\"}"), 1.0);
    assert_eq!(delta("counterd_requests_total{route=\"other\"}"), 1.0);
    assert_eq!(delta("counterd_requests_total{route=\"metrics\"}"), 1.0);
    assert_eq!(delta("counterd_responses_total{code=\"404\"}"), 2.0);
    assert_eq!(delta("counterd_responses_total{code=\"400\"}"), 1.0);
    // Three 200s (inc, inc, set) plus the first /metrics itself.
    assert_eq!(delta("counterd_responses_total{code=\"200\"}"), 4.0);
    assert_eq!(after["counterd_counters"], 3.0);
    assert!(after["counterd_loop_iterations_total"] > before["counterd_loop_iterations_total"]);
    assert!(after["counterd_events_total"] > before["counterd_events_total"]);
}

#[test]
fn unknown_paths_are_404_page_not_found() {
    let server = Server::start(&[]);
    let mut c = server.client();
    for target in ["/", "/nope", "/get/", "/GET?name=i", "/metrics/x"] {
        let r = c.get(target);
        r.assert(404, "404 page not found\n");
        assert_standard_headers(&r);
    }
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = Server::start(&[]);
    let mut c = server.client();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let r = c.request(method, "/set?name=i&val=5");
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{r:?}");
        assert!(r.raw_head.contains("\r\nAllow: GET, HEAD\r\n"), "{r:?}");
        assert_standard_headers(&r);
    }
    c.get("/get?name=i").assert(200, "i: 0\n");
}

#[test]
fn head_answers_like_get_without_a_body() {
    let server = Server::start(&[]);
    let mut c = server.client();
    for target in [
        "/get?name=i",
        "/get?name=nope",
        "/nowhere",
        "/get?name=",
        "/metrics",
    ] {
        let get = c.get(target);
        let head = c.request("HEAD", target);
        assert_eq!(head.status, get.status, "{target}");
        assert!(head.body.is_empty());
        assert_standard_headers(&head);
        if target != "/metrics" {
            // /metrics changes between the two requests; its length may too.
            assert_eq!(
                head.header("Content-Length"),
                get.header("Content-Length"),
                "{target}"
            );
        }
        let names = |r: &Response| r.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&head), names(&get), "{target}");
    }
    // Nothing followed the HEAD answers: the next GET parses cleanly.
    c.get("/get?name=i").assert(200, "i: 0\n");
    let r = c.request("HEAD", "/inc?name=i");
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("3")));
    c.get("/get?name=i").assert(200, "i: 1\n");
    // Pipelined HEAD then GET: had the HEAD carried a body, the GET would be misread.
    c.send(
        b"HEAD /get?name=i HTTP/1.1\r\nHost: t\r\n\r\nGET /get?name=j HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let h = c.read_head_response();
    assert_eq!((h.status, h.header("Content-Length")), (200, Some("5")));
    c.read_response().assert(200, "j: 0\n");
}

#[test]
fn absolute_form_targets_work() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.get("http://example.com/set?name=abs&val=4")
        .assert(200, "ok\n");
    c.get("http://h:8000/inc?name=abs").assert(200, "ok\n");
    c.get("HTTP://h/get?name=abs").assert(200, "abs: 5\n");
    c.get("/get?name=abs").assert(200, "abs: 5\n");
    c.get("http://h/nope").assert(404, "404 page not found\n");
}

#[test]
fn every_answer_has_the_standard_headers() {
    let server = Server::start(&["--max-counters", "3"]);
    let mut c = server.client();
    let mut seen = Vec::new();
    for (method, target) in [
        ("GET", "/set?name=m&val=9223372036854775807"),
        ("GET", "/get?name=m"),
        ("GET", "/inc?name=m"),
        ("GET", "/get?name=nope"),
        ("GET", "/set?name=m&val=x"),
        ("GET", "/set?name=other&val=1"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("POST", "/get?name=i"),
        ("HEAD", "/get?name=i"),
    ] {
        let r = c.request(method, target);
        assert_standard_headers(&r);
        seen.push(r.status);
    }
    assert_eq!(seen, [200, 200, 409, 404, 400, 507, 200, 404, 405, 200]);
}

#[test]
fn max_counters_is_507_and_existing_names_still_work() {
    let server = Server::start(&["--max-counters", "3"]);
    let mut c = server.client();
    c.get("/set?name=a&val=1").assert(200, "ok\n");
    let r = c.get("/set?name=b&val=1");
    assert_eq!(r.status, 507, "{r:?}");
    assert!(!r.body.is_empty());
    assert_standard_headers(&r);
    c.get("/get?name=b").assert(404, "b not found\n");
    c.get("/set?name=a&val=5").assert(200, "ok\n");
    c.get("/set?name=i&val=6").assert(200, "ok\n");
    c.get("/get?name=a").assert(200, "a: 5\n");
    c.get("/get?name=i").assert(200, "i: 6\n");
}

#[test]
fn a_fresh_connection_per_request_sees_one_store() {
    let server = Server::start(&[]);
    server.get("/set?name=shared&val=10").assert(200, "ok\n");
    server.get("/inc?name=shared").assert(200, "ok\n");
    let mut other = Client::connect(server.addr);
    other.get("/get?name=shared").assert(200, "shared: 11\n");
}
