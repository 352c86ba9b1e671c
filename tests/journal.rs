//! `--journal`, against the real binary: restarts, `kill -9` under load, a torn tail,
//! damage, an unwritable path, a disk that fills up while serving, and the shapes a power
//! cut leaves (holes before valid turns, old journals with NULs) under each `--fsync`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{Server, TempDir, run_bin, server_bin};

/// The journal's name inside each test's directory.
const JOURNAL: &str = "counters.journal";
use counterd::journal::{Seal, compacted};

const WAIT: Duration = Duration::from_secs(5);

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
    let server = start(&dir.file(JOURNAL), &[]);
    server.get("/get?name=i").assert(200, "i: 0\n");
    server.get("/set?name=i&val=41").assert(200, "ok\n");
    server.get("/inc?name=i").assert(200, "ok\n");
    server.get("/set?name=a%20b%0Ac&val=-7").assert(200, "ok\n");
    stop(server);
    let text = std::fs::read_to_string(dir.file(JOURNAL)).unwrap();
    assert!(text.starts_with("counterd-journal 2 "), "{text}");
    assert!(text.contains("\ncommit "), "{text}");
    let server = start(&dir.file(JOURNAL), &[]);
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
    let server = start(&dir.file(JOURNAL), &["--fsync", "always"]);
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    const CLIENTS: u64 = 8;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (acked, done, addr) = (acked.clone(), done.clone(), server.addr);
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let req = b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n";
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
    let server = start(&dir.file(JOURNAL), &[]);
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
    std::fs::write(dir.file(JOURNAL), "counterd-journal 1\nset i 5\ninc i\ninc").unwrap();
    let server = start(&dir.file(JOURNAL), &[]);
    server.get("/get?name=i").assert(200, "i: 6\n");
    assert!(
        server.stderr_with("torn").contains("torn"),
        "{}",
        server.stderr()
    );
    server.get("/inc?name=i").assert(200, "ok\n");
    stop(server);
    let server = start(&dir.file(JOURNAL), &[]);
    server.get("/get?name=i").assert(200, "i: 7\n");
    stop(server);
}

#[test]
fn damage_in_the_middle_refuses_to_start_naming_the_offset() {
    let dir = TempDir::new("damage");
    let text = "counterd-journal 1\nset i 5\nset i five\ninc i\n";
    std::fs::write(dir.file(JOURNAL), text).unwrap();
    let path = dir.file(JOURNAL);
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
    let path = dir.file(JOURNAL);
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
        s.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
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
    let server = start(&dir.file(JOURNAL), &["--fsync", "no"]);
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
    let size = std::fs::metadata(dir.file(JOURNAL)).unwrap().len();
    assert!(size < 4 << 20, "{size} bytes after compaction");
    assert!(
        server
            .stderr_with("journal compacted")
            .contains("journal compacted"),
        "{}",
        server.stderr()
    );
    stop(server);
    let server = start(&dir.file(JOURNAL), &[]);
    server
        .get(&format!("/get?name={name}"))
        .assert(200, &format!("{name}: 19999\n"));
    stop(server);
}

/// A journal as counterd writes it: compacted from `pairs` under `salt`, then one turn per
/// entry of `turns`; also where each turn starts.
fn turns(salt: u32, pairs: &[(&str, i64)], turns: &[&str]) -> (Vec<u8>, Vec<usize>) {
    let mut j = compacted(pairs.iter().copied(), salt);
    let mut starts = Vec::new();
    for records in turns {
        starts.push(j.len());
        j.extend_from_slice(records.as_bytes());
        Seal::new(salt).commit(records.as_bytes(), &mut j);
    }
    (j, starts)
}

/// The side files next to `journal`.
fn side_files(journal: &Path) -> Vec<PathBuf> {
    let name = journal.file_name().unwrap().to_string_lossy().into_owned() + ".aside-";
    let mut found: Vec<PathBuf> = std::fs::read_dir(journal.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
        .collect();
    found.sort();
    found
}

fn refused(journal: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--journal", journal.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("0");
    let out = run_bin(&server_bin(), &args, WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    stderr
}

#[test]
fn the_issues_old_journals_with_nul_holes_start_with_a_warning_naming_the_offset() {
    // A later append reached the disk before an earlier one (everysec), and a write torn
    // with a gap: both from issue 19, written by a counterd without commit lines.
    let mut first = b"counterd-journal 1\nset c 1\n".to_vec();
    first.extend_from_slice(&[0; 100]);
    first.extend_from_slice(b"inc c\n");
    let second = b"counterd-journal 1\nset c 1\ninc c\nin\0\0c\n".to_vec();
    for (bytes, value, offset) in [(first, 1, 27), (second, 2, 33)] {
        let dir = TempDir::new("nul");
        std::fs::write(dir.file(JOURNAL), &bytes).unwrap();
        let server = start(&dir.file(JOURNAL), &[]);
        server
            .get("/get?name=c")
            .assert(200, &format!("c: {value}\n"));
        let aside = side_files(&dir.file(JOURNAL));
        assert_eq!(aside.len(), 1, "{aside:?}");
        let stderr = server.stderr_with("kept in");
        assert!(stderr.contains(&format!("up to byte {offset}")), "{stderr}");
        assert!(stderr.contains(&aside[0].display().to_string()), "{stderr}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), &bytes[offset..]);
        server.get("/inc?name=c").assert(200, "ok\n");
        stop(server);
        // Rewritten in the new format; the side file stays.
        let server = start(&dir.file(JOURNAL), &[]);
        server
            .get("/get?name=c")
            .assert(200, &format!("c: {}\n", value + 1));
        stop(server);
        assert_eq!(side_files(&dir.file(JOURNAL)), aside);
    }
}

#[test]
fn a_torn_last_turn_is_cut_off_in_every_mode() {
    let (j, starts) = turns(11, &[("c", 0)], &["inc c\n", "inc c\ninc c\n"]);
    let last = starts[1];
    // Cut short, and with a hole of NULs inside the last turn.
    let mut holed = j.clone();
    holed[last + 3..last + 9].fill(0);
    for (bytes, fsync) in [
        (&j[..j.len() - 4], "always"),
        (&holed[..], "always"),
        (&holed[..], "no"),
    ] {
        let dir = TempDir::new("torn2");
        std::fs::write(dir.file(JOURNAL), bytes).unwrap();
        let server = start(&dir.file(JOURNAL), &["--fsync", fsync]);
        server.get("/get?name=c").assert(200, "c: 1\n");
        let stderr = server.stderr_with("torn");
        assert!(
            stderr.contains(&format!(
                "torn last turn ({} bytes at byte {last})",
                bytes.len() - last
            )),
            "{stderr}"
        );
        assert!(side_files(&dir.file(JOURNAL)).is_empty());
        stop(server);
    }
}

#[test]
fn a_bad_turn_before_valid_ones_is_cut_and_set_aside_under_everysec() {
    let (mut j, starts) = turns(12, &[("c", 0)], &["inc c\n", "inc c\n", "inc c\nset d 5\n"]);
    j[starts[1]..starts[2]].fill(0); // the page of turn 2 never reached the disk
    let dir = TempDir::new("aside");
    std::fs::write(dir.file(JOURNAL), &j).unwrap();
    let server = start(&dir.file(JOURNAL), &[]);
    server.get("/get?name=c").assert(200, "c: 1\n");
    server.get("/get?name=d").assert(404, "d not found\n");
    let aside = side_files(&dir.file(JOURNAL));
    assert_eq!(
        aside,
        [dir.0.join(format!("counters.journal.aside-{}", starts[1]))]
    );
    assert_eq!(std::fs::read(&aside[0]).unwrap(), &j[starts[1]..]);
    let stderr = server.stderr_with("kept in");
    assert!(stderr.contains(&format!("byte {}", starts[1])), "{stderr}");
    assert!(stderr.contains(&aside[0].display().to_string()), "{stderr}");
    stop(server);
}

#[test]
fn a_bad_turn_before_valid_ones_under_always_refuses_unless_asked_to_recover() {
    let (mut j, starts) = turns(13, &[("c", 0)], &["inc c\n", "inc c\n", "inc c\n"]);
    j[starts[1] + 2] = b'X';
    let dir = TempDir::new("always");
    std::fs::write(dir.file(JOURNAL), &j).unwrap();
    let stderr = refused(&dir.file(JOURNAL), &["--fsync", "always"]);
    assert!(
        stderr.contains(&format!("journal damaged at byte {}", starts[1])),
        "{stderr}"
    );
    assert!(stderr.contains("--journal-recover"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.file(JOURNAL)).unwrap(),
        j,
        "left as it was"
    );
    assert!(side_files(&dir.file(JOURNAL)).is_empty());

    let server = start(
        &dir.file(JOURNAL),
        &["--fsync", "always", "--journal-recover"],
    );
    server.get("/get?name=c").assert(200, "c: 1\n");
    let aside = side_files(&dir.file(JOURNAL));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), &j[starts[1]..]);
    let stderr = server.stderr_with("kept in");
    assert!(stderr.contains(&aside[0].display().to_string()), "{stderr}");
    stop(server);
}

#[test]
fn damage_in_the_compacted_part_is_exit_1_in_every_mode() {
    let (mut j, starts) = turns(14, &[("a", 1), ("b", 2)], &["inc a\n"]);
    let first_turn = compacted([], 14).len() - "commit 0 0 00000000\n".len();
    j[starts[0] - 5] ^= 1; // inside the compacted turn's checksum
    let dir = TempDir::new("compacted");
    std::fs::write(dir.file(JOURNAL), &j).unwrap();
    for extra in [
        &["--fsync", "no"][..],
        &["--fsync", "always", "--journal-recover"],
    ] {
        let stderr = refused(&dir.file(JOURNAL), extra);
        assert!(
            stderr.contains(&format!("byte {first_turn}: the compacted part")),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(dir.file(JOURNAL)).unwrap(),
        j,
        "left as it was"
    );
}
