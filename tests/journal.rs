//! `--journal`, against the real binary: restarts, `kill -9` under load, a torn tail,
//! damage, an unwritable path, and a disk that fills up while serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{Server, run_bin, server_bin};

const WAIT: Duration = Duration::from_secs(5);

/// A fresh path in a directory of its own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "counterd-journal-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("counters.journal")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(journal: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--journal", journal.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn stop(mut server: Server) {
    server.signal("TERM").unwrap();
    let status = server.wait_exit(WAIT).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

#[test]
fn a_restart_keeps_every_counter_and_does_not_preload_again() {
    let dir = TempDir::new("restart");
    let server = start(&dir.file(), &[]);
    server.get("/get?name=i").assert(200, "i: 0\n");
    server.get("/set?name=i&val=41").assert(200, "ok\n");
    server.get("/inc?name=i").assert(200, "ok\n");
    server.get("/set?name=a%20b%0Ac&val=-7").assert(200, "ok\n");
    stop(server);
    let text = std::fs::read_to_string(dir.file()).unwrap();
    assert!(text.starts_with("counterd-journal 2 "), "{text}");
    assert!(text.contains("\ncommit "), "{text}");
    let server = start(&dir.file(), &[]);
    server.get("/get?name=i").assert(200, "i: 42\n");
    server.get("/get?name=j").assert(200, "j: 0\n");
    server
        .get("/get?name=a%20b%0Ac")
        .assert(200, "a b\nc: -7\n");
    let m = server.get("/metrics").text().to_string();
    assert!(m.contains("counterd_journal_records_total 0\n"), "{m}");
    assert!(m.contains("counterd_journal_fsyncs_total"), "{m}");
    stop(server);
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_change_with_fsync_always() {
    let dir = TempDir::new("kill9");
    let server = start(&dir.file(), &["--fsync", "always"]);
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    const CLIENTS: u64 = 8;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (acked, done, addr) = (acked.clone(), done.clone(), server.addr);
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let req = b"GET /inc?name=i HTTP/1.1\r\n\r\n";
                let mut buf = [0u8; 4096];
                while !done.load(Ordering::Relaxed) {
                    if s.write_all(req).is_err() {
                        return;
                    }
                    // One request in flight at a time: an answer is one short read.
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200 ") => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    server.signal("KILL").unwrap();
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acknowledged = acked.load(Ordering::SeqCst);
    assert!(
        acknowledged > 100,
        "only {acknowledged} requests acknowledged"
    );
    drop(server);
    let server = start(&dir.file(), &[]);
    let r = server.get("/get?name=i");
    let value: u64 = r
        .text()
        .trim()
        .strip_prefix("i: ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        acknowledged <= value && value <= acknowledged + CLIENTS,
        "acknowledged {acknowledged}, recovered {value}"
    );
    stop(server);
}

#[test]
fn a_torn_last_record_is_cut_off_with_a_warning() {
    let dir = TempDir::new("torn");
    std::fs::write(dir.file(), "counterd-journal 1\nset i 5\ninc i\ninc").unwrap();
    let server = start(&dir.file(), &[]);
    server.get("/get?name=i").assert(200, "i: 6\n");
    assert!(
        server.stderr_with("torn").contains("torn"),
        "{}",
        server.stderr()
    );
    server.get("/inc?name=i").assert(200, "ok\n");
    stop(server);
    let server = start(&dir.file(), &[]);
    server.get("/get?name=i").assert(200, "i: 7\n");
    stop(server);
}

#[test]
fn damage_in_the_middle_refuses_to_start_naming_the_offset() {
    let dir = TempDir::new("damage");
    let text = "counterd-journal 1\nset i 5\nset i five\ninc i\n";
    std::fs::write(dir.file(), text).unwrap();
    let path = dir.file();
    let out = run_bin(
        &server_bin(),
        &["--journal", path.to_str().unwrap(), "0"],
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let offset = text.find("set i five").unwrap();
    assert!(stderr.contains(&format!("byte {offset}")), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "left as it was"
    );
}

#[test]
fn an_unwritable_journal_path_is_exit_2() {
    let dir = TempDir::new("path");
    let missing = dir.0.join("no/such/dir/j");
    for path in [missing.as_path(), dir.0.as_path()] {
        let out = run_bin(
            &server_bin(),
            &["--journal", path.to_str().unwrap(), "0"],
            WAIT,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {stderr}");
        assert!(stderr.contains("journal"), "{stderr}");
    }
}

#[test]
fn a_write_error_stops_the_server_without_acknowledging() {
    // A file size limit with SIGXFSZ ignored: the append that crosses it fails with EFBIG.
    let dir = TempDir::new("efbig");
    let path = dir.file();
    let script = format!(
        "trap '' XFSZ; exec prlimit --fsize=600 {} --journal {} 0",
        server_bin().display(),
        path.display()
    );
    let mut server = Server::start_exact(Path::new("/bin/sh"), &["-c", &script]);
    let mut acked = Vec::new();
    for k in 0..100 {
        let target = format!("/set?name=counter-with-a-long-name-{k}&val={k}");
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        if got.starts_with(b"HTTP/1.1 200 ") {
            acked.push(k);
            continue;
        }
        assert!(
            got.is_empty(),
            "no other answer: {}",
            String::from_utf8_lossy(&got)
        );
        break;
    }
    assert!(!acked.is_empty() && acked.len() < 100, "{acked:?}");
    let status = server.wait_exit(WAIT).expect("the server stops");
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to the journal"), "{stderr}");
    // Everything acknowledged was recorded.
    let server = start(&path, &[]);
    for k in &acked {
        let r = server.get(&format!("/get?name=counter-with-a-long-name-{k}"));
        assert_eq!(r.status, 200, "{k}");
    }
    stop(server);
}

#[test]
fn a_journal_past_twice_its_compacted_size_and_4_mib_is_rewritten() {
    let dir = TempDir::new("compact");
    let server = start(&dir.file(), &["--fsync", "no"]);
    let name = "n".repeat(250);
    // ~270 bytes a record, always the same counter: 4 MiB of records compact to one line.
    let mut c = server.client();
    for round in 0..20 {
        let mut burst = Vec::new();
        for k in 0..1000 {
            let v = round * 1000 + k;
            burst.extend(common::get_request(
                &format!("/set?name={name}&val={v}"),
                "HTTP/1.1",
                &[],
            ));
        }
        c.send(&burst);
        for _ in 0..1000 {
            assert_eq!(c.read_response().status, 200);
        }
    }
    let m = server.get("/metrics").text().to_string();
    let compactions: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("counterd_journal_compactions_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        compactions >= 2,
        "the one at start and one or more since: {m}"
    );
    let size = std::fs::metadata(dir.file()).unwrap().len();
    assert!(size < 4 << 20, "{size} bytes after compaction");
    assert!(
        server
            .stderr_with("journal compacted")
            .contains("journal compacted"),
        "{}",
        server.stderr()
    );
    stop(server);
    let server = start(&dir.file(), &[]);
    server
        .get(&format!("/get?name={name}"))
        .assert(200, &format!("{name}: 19999\n"));
    stop(server);
}
