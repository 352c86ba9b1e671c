//! The original program's curl session, driven by the real `curl` binary. These tests need
//! curl on PATH and FAIL (never skip) without it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, run_bin};

/// Runs `curl ARGS` (with `-s` and a time limit) and returns its stdout; panics with
/// curl's stderr if it fails, or with a clear message if curl is not installed.
fn curl(args: &[&str]) -> String {
    if let Err(e) = Command::new("curl").arg("--version").output() {
        panic!("tests/curl.rs needs the `curl` binary on PATH (e.g. apt-get install curl): {e}");
    }
    let mut all = vec!["-s", "-S", "--max-time", "5"];
    all.extend_from_slice(args);
    let out = run_bin(Path::new("curl"), &all, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "curl {all:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("curl output is UTF-8")
}

fn url(server: &Server, target: &str) -> String {
    format!("http://{}{target}", server.addr)
}

#[test]
fn curl_is_installed() {
    let out = Command::new("curl")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("tests/curl.rs needs the `curl` binary on PATH (e.g. apt-get install curl): {e}")
        });
    assert!(
        out.status.success(),
        "curl --version failed: {}",
        out.status
    );
}

#[test]
fn the_original_session_through_curl() {
    let server = Server::start(&[]);
    for (target, want) in [
        ("/set?name=x&val=0", "ok\n"),
        ("/get?name=x", "x: 0\n"),
        ("/inc?name=x", "ok\n"),
        ("/get?name=x", "x: 1\n"),
        ("/get?name=i", "i: 0\n"),
        ("/get?name=j", "j: 0\n"),
        ("/get?name=y", "y not found\n"),
        ("/inc?name=y", "y not found\n"),
        ("/get?name=y", "y not found\n"),
        ("/nope", "404 page not found\n"),
    ] {
        assert_eq!(curl(&[&url(&server, target)]), want, "curl -s {target}");
    }
}

#[test]
fn curl_reuses_one_connection_for_many_urls() {
    let server = Server::start(&[]);
    let urls: Vec<String> = [
        "/set?name=x&val=0",
        "/inc?name=x",
        "/inc?name=x",
        "/get?name=x",
        "/get?name=nope",
    ]
    .iter()
    .map(|t| url(&server, t))
    .collect();
    let mut args = vec!["-w", "[%{http_code} %{num_connects}]\n"];
    args.extend(urls.iter().map(String::as_str));
    assert_eq!(
        curl(&args),
        "ok\n[200 1]\nok\n[200 0]\nok\n[200 0]\nx: 2\n[200 0]\nnope not found\n[404 0]\n",
        "one connection, kept alive between the transfers"
    );
}

#[test]
fn curl_sees_honest_status_codes() {
    let server = Server::start(&["--max-counters", "3"]);
    let code = |extra: &[&str], target: &str| {
        let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        args.extend_from_slice(extra);
        let u = url(&server, target);
        args.push(&u);
        curl(&args)
    };
    assert_eq!(code(&[], "/set?name=m&val=9223372036854775807"), "200");
    assert_eq!(code(&[], "/inc?name=m"), "409");
    assert_eq!(code(&[], "/set?name=m&val=nope"), "400");
    assert_eq!(code(&[], "/get?name="), "400");
    assert_eq!(code(&[], "/set?name=full&val=1"), "507");
    assert_eq!(code(&[], "/get?name=full"), "404");
    assert_eq!(code(&["-X", "POST"], "/inc?name=i"), "405");
    assert_eq!(code(&["-d", "val=1"], "/set?name=i"), "405");
    assert_eq!(code(&["--http1.0"], "/get?name=i"), "200");
    assert_eq!(
        curl(&[&url(&server, "/get?name=i")]),
        "i: 0\n",
        "no refused request changed i"
    );
    assert_eq!(
        curl(&[&url(&server, "/get?name=m")]),
        "m: 9223372036854775807\n"
    );
}

#[test]
fn curl_head_shows_get_headers_without_a_body() {
    let server = Server::start(&[]);
    let head = curl(&["-I", &url(&server, "/get?name=i")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    for line in [
        "\r\nContent-Type: text/plain; charset=utf-8\r\n",
        "\r\nContent-Length: 5\r\n",
        "\r\nDate: ",
    ] {
        assert!(head.contains(line), "curl -I lacks {line:?}: {head:?}");
    }
    assert!(head.ends_with("\r\n\r\n"), "no body after a HEAD: {head:?}");
    // curl -I /inc increments, like GET.
    curl(&["-I", &url(&server, "/inc?name=i")]);
    assert_eq!(curl(&[&url(&server, "/get?name=i")]), "i: 1\n");
    let post = curl(&["-i", "-X", "POST", &url(&server, "/get?name=i")]);
    assert!(post.starts_with("HTTP/1.1 405 "), "{post:?}");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post:?}");
}

#[test]
fn curl_over_ipv6() {
    let server = Server::start(&["--bind", "::1"]);
    assert_eq!(curl(&["-g", &url(&server, "/set?name=v6&val=5")]), "ok\n");
    assert_eq!(curl(&["-g", &url(&server, "/inc?name=v6")]), "ok\n");
    assert_eq!(curl(&["-g", &url(&server, "/get?name=v6")]), "v6: 6\n");
}

#[test]
fn curl_with_url_encoded_names() {
    let server = Server::start(&[]);
    assert_eq!(
        curl(&[&url(&server, "/set?name=hello+world&val=-3")]),
        "ok\n"
    );
    assert_eq!(
        curl(&[&url(&server, "/get?name=hello%20world")]),
        "hello world: -3\n"
    );
    assert_eq!(
        curl(&[
            "-G",
            "--data-urlencode",
            "name=caf\u{e9}",
            &url(&server, "/get")
        ]),
        "caf\u{e9} not found\n"
    );
}
