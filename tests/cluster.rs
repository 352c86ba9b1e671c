//! Counters partitioned over three counterd instances by nginx, configured by the
//! repository's own `scripts/cluster/nginx.conf.in` (`hash $arg_name consistent`,
//! `max_fails=0`, `proxy_next_upstream off`): every name lives on exactly one instance;
//! when one instance dies (`kill -9`) its names answer `502`, never a value, while the
//! other names stay exact and served; after a restart on the same port with the same
//! journal (`--fsync always`) every acknowledged change of its names is back.
//!
//! nginx (Debian's nginx-light) is installed with apt-get when it is missing (as root, as
//! in CI); without it this test fails, it never skips.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server, TempDir, server_bin};

/// Counter names driven through nginx: enough that every instance owns some.
const NAMES: usize = 60;
/// Increments of every name, one at a time, before the load that sees the kill.
const WARM_INCS: u64 = 3;
/// Keep-alive clients incrementing through nginx while an instance is killed.
const CLIENTS: usize = 4;

/// The nginx binary, installed with apt-get if it is missing.
fn nginx() -> PathBuf {
    let find = || {
        Command::new("sh")
            .args(["-c", "command -v nginx || command -v /usr/sbin/nginx"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if let Some(bin) = find() {
        return bin;
    }
    let install =
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light";
    let status = Command::new("sh").args(["-c", install]).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "this test needs Debian's nginx-light (apt-get install nginx-light)"
    );
    find().expect("nginx installed but not found")
}

/// `scripts/cluster/nginx.conf.in` with its placeholders filled in, as scripts/cluster.sh
/// fills them: comment lines as they are, the `@INSTANCE@` line once per instance.
fn render_config(prefix: &Path, port: u16, instances: &[SocketAddr]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster/nginx.conf.in");
    let template = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in template.lines() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let line = line
            .replace("@PREFIX@", prefix.to_str().unwrap())
            .replace("@PORT@", &port.to_string());
        if line.contains("@INSTANCE@") {
            for addr in instances {
                out.push_str(&line.replace("@INSTANCE@", &addr.to_string()));
                out.push('\n');
            }
        } else {
            assert!(!line.contains('@'), "unfilled placeholder in {line:?}");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// nginx in front of the instances: one foreground process (the config says
/// `master_process off`), killed by its PID, and only it, when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    prefix: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, instances: &[SocketAddr]) -> Nginx {
        let bin = nginx();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix).unwrap();
        // A port free a moment ago; should another process take it first, try another.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = prefix.join("nginx.conf");
            std::fs::write(&conf, render_config(&prefix, port, instances)).unwrap();
            let log = prefix.join("error.log");
            let _ = std::fs::remove_file(&log);
            let mut child = Command::new(&bin)
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("Address already in use") {
                        break; // the port went elsewhere: another one
                    }
                    panic!("nginx exited at start; error.log:\n{text}");
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Nginx {
                        child,
                        addr,
                        prefix,
                    };
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not listen within 10 s"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for nginx in 5 tries");
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID; with master_process off it is all of nginx.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an instance with its own journal, synced before every answer, on `port`
/// (`0` picks a free one).
fn instance(journal: &Path, port: &str) -> Server {
    let args = [
        "--journal",
        journal.to_str().unwrap(),
        "--fsync",
        "always",
        port,
    ];
    Server::start_exact(&server_bin(), &args)
}

/// The value of `name` from a `/get` answered 200.
fn value_of(client: &mut Client, name: &str) -> i64 {
    let r = client.get(&format!("/get?name={name}"));
    assert_eq!(r.status, 200, "get {name}: {r:?}");
    r.text()
        .strip_suffix('\n')
        .and_then(|t| t.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("get {name}: {r:?}"))
}

/// Which instance holds `name`, asking each one directly: exactly one must have it, the
/// others must not know it.
fn owner_of(instances: &[&Server], name: &str) -> usize {
    let holders: Vec<usize> = instances
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let r = s.get(&format!("/get?name={name}"));
            match r.status {
                200 => Some(i),
                404 => None,
                _ => panic!("instance {i}, get {name}: {r:?}"),
            }
        })
        .collect();
    assert_eq!(holders.len(), 1, "{name} is held by instances {holders:?}");
    holders[0]
}

fn name(i: usize) -> String {
    format!("n{i}")
}

/// What one load client saw for one name.
#[derive(Default, Clone, Copy)]
struct Seen {
    /// `200 ok`: the increment is acknowledged.
    acked: u64,
    /// `502`: nginx could not get an answer from the name's instance.
    bad_gateway: u64,
    /// `200` for an increment sent after the kill.
    acked_after_kill: u64,
}

#[test]
fn a_killed_instance_s_names_answer_502_and_every_acknowledged_change_comes_back() {
    let dir = TempDir::new("kill");
    let journals: Vec<PathBuf> = (0..3)
        .map(|i| dir.0.join(format!("instance{i}.journal")))
        .collect();
    let mut instances: Vec<Option<Server>> =
        journals.iter().map(|j| Some(instance(j, "0"))).collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(|s| s.as_ref().unwrap().addr).collect();
    let front = Nginx::start(&dir.0, &addrs);
    let names: Vec<String> = (0..NAMES).map(name).collect();

    // Create every name through nginx and increment each a few times, one at a time.
    let mut c = front.client();
    for n in &names {
        c.get(&format!("/set?name={n}&val=0")).assert(200, "ok\n");
    }
    for _ in 0..WARM_INCS {
        for n in &names {
            c.get(&format!("/inc?name={n}")).assert(200, "ok\n");
        }
    }
    let live: Vec<&Server> = instances.iter().map(|s| s.as_ref().unwrap()).collect();
    let owner: Vec<usize> = names.iter().map(|n| owner_of(&live, n)).collect();
    let mut owned = [0usize; 3];
    for &o in &owner {
        owned[o] += 1;
    }
    assert!(
        owned.iter().all(|&k| k > 0),
        "every instance owns some of the {NAMES} names: {owned:?}"
    );
    // The victim: the instance with the most names.
    let victim = (0..3).max_by_key(|&i| owned[i]).unwrap();
    let victim_port = addrs[victim].port().to_string();

    // Load through nginx; the victim is killed while it runs.
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (stop, killed, acked) = (stop.clone(), killed.clone(), acked.clone());
            let addr = front.addr;
            thread::spawn(move || {
                let mut seen = vec![Seen::default(); NAMES];
                let mut c = Client::connect(addr);
                let mut i = w * NAMES / CLIENTS;
                while !stop.load(Ordering::SeqCst) {
                    let after_kill = killed.load(Ordering::SeqCst);
                    let r = c.get(&format!("/inc?name={}", name(i)));
                    match r.status {
                        200 => {
                            assert_eq!(r.text(), "ok\n", "{r:?}");
                            seen[i].acked += 1;
                            if after_kill {
                                seen[i].acked_after_kill += 1;
                            }
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        502 => seen[i].bad_gateway += 1,
                        _ => panic!("inc {}: {r:?}", name(i)),
                    }
                    if r.closes() {
                        c = Client::connect(addr);
                    }
                    i = (i + 1) % NAMES;
                }
                seen
            })
        })
        .collect();
    let wait_for = |count: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked.load(Ordering::SeqCst) < count {
            assert!(Instant::now() < deadline, "the load made no progress");
            thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(2 * NAMES as u64);
    instances[victim]
        .as_ref()
        .unwrap()
        .signal("KILL")
        .expect("kill -9");
    assert!(
        instances[victim]
            .as_mut()
            .unwrap()
            .wait_exit(Duration::from_secs(5))
            .is_some(),
        "the victim did not die"
    );
    killed.store(true, Ordering::SeqCst);
    // Go on past the kill until the others have acknowledged more changes.
    let at_kill = acked.load(Ordering::SeqCst);
    wait_for(at_kill + 2 * NAMES as u64);
    stop.store(true, Ordering::SeqCst);
    let mut seen = vec![Seen::default(); NAMES];
    for w in workers {
        for (total, s) in seen.iter_mut().zip(w.join().expect("a load client failed")) {
            total.acked += s.acked;
            total.bad_gateway += s.bad_gateway;
            total.acked_after_kill += s.acked_after_kill;
        }
    }
    let acked_of = |i: usize| WARM_INCS + seen[i].acked;

    // While the victim is down: its names answer 502, never a value; every other name
    // was served throughout and holds exactly its acknowledged changes.
    let mut c = front.client();
    let (mut survivors_after_kill, mut victim_502s) = (0, 0);
    for (i, n) in names.iter().enumerate() {
        if owner[i] == victim {
            victim_502s += seen[i].bad_gateway;
            assert_eq!(
                seen[i].acked_after_kill, 0,
                "{n} acknowledged after the kill"
            );
            for target in [format!("/get?name={n}"), format!("/inc?name={n}")] {
                let r = c.get(&target);
                assert_eq!(r.status, 502, "{target} with its instance down: {r:?}");
                assert!(!r.text().contains(&format!("{n}: ")), "{r:?}");
            }
        } else {
            survivors_after_kill += seen[i].acked_after_kill;
            assert_eq!(seen[i].bad_gateway, 0, "{n} lives on a live instance");
            assert_eq!(value_of(&mut c, n), acked_of(i) as i64, "{n}");
        }
    }
    assert!(victim_502s > 0, "the load never met the dead instance");
    assert!(
        survivors_after_kill > 0,
        "no change was acknowledged after the kill"
    );

    // The victim comes back on its port with its journal: every acknowledged change of
    // its names is there. Beyond them, only increments in flight at the kill (at most one
    // per client) may have been applied: those got a 502 but had reached the instance.
    instances[victim] = Some(instance(&journals[victim], &victim_port));
    let mut extra = 0;
    for (i, n) in names.iter().enumerate() {
        let v = value_of(&mut c, n);
        let want = acked_of(i) as i64;
        if owner[i] == victim {
            assert!(
                want <= v && v <= want + seen[i].bad_gateway as i64,
                "{n}: {v} after the restart, {want} acknowledged, {} answered 502",
                seen[i].bad_gateway
            );
            extra += v - want;
        } else {
            assert_eq!(v, want, "{n}");
        }
    }
    assert!(
        extra <= CLIENTS as i64,
        "{extra} unacknowledged increments applied"
    );

    // Every name is served again, from the instance that held it before.
    let live: Vec<&Server> = instances.iter().map(|s| s.as_ref().unwrap()).collect();
    for (i, n) in names.iter().enumerate() {
        c.get(&format!("/inc?name={n}")).assert(200, "ok\n");
        assert_eq!(owner_of(&live, n), owner[i], "{n} moved");
    }
    let log = front.error_log();
    assert!(
        log.contains("Connection refused"),
        "nginx error.log:\n{log}"
    );
}

/// `counterd_connections_accepted_total` of an instance, asked directly (which itself
/// opens one connection).
fn accepted(server: &Server) -> u64 {
    let r = server.get("/metrics");
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("counterd_connections_accepted_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accepted count in /metrics"))
}

#[test]
fn the_front_door_takes_one_spelling_of_each_name_and_keeps_connections_to_the_instances() {
    let dir = TempDir::new("door");
    let instances: Vec<Server> = (0..3).map(|_| Server::start(&[])).collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(|s| s.addr).collect();
    let front = Nginx::start(&dir.0, &addrs);
    let mut c = front.client();

    // Names in RFC 3986 normal form pass; the value is the instance's business.
    c.get("/set?name=x&val=7").assert(200, "ok\n");
    c.get("/get?name=x").assert(200, "x: 7\n");
    c.get("/set?name=a%20b&val=1").assert(200, "ok\n");
    c.get("/inc?name=a%20b").assert(200, "ok\n");
    c.get("/get?name=a%20b").assert(200, "a b: 2\n");
    c.get("/set?name=%C3%A9t%C3%A9-1.0_~&val=3")
        .assert(200, "ok\n");
    c.get("/get?name=%C3%A9t%C3%A9-1.0_~")
        .assert(200, "été-1.0_~: 3\n");
    c.get("/set?name=y&val=x")
        .assert(400, "invalid val \"x\": want a decimal i64\n");
    c.get("/get?name=nobody").assert(404, "nobody not found\n");

    // Other spellings of a name, which counterd would decode to the same counter while
    // the hash sends them elsewhere, and queries whose name nginx and counterd would read
    // differently: refused before they reach an instance.
    let refusal = "cluster: want name=N or name=N&val=V, N in RFC 3986 normal form\n";
    for query in [
        "name=%78",         // x
        "name=a+b",         // a b
        "name=%c3%a9",      // lower-case hex
        "name=%41",         // A is unreserved: written as A
        "NAME=x",           // nginx's $arg_name ignores the key's case, counterd does not
        "n%61me=x",         // counterd decodes keys too
        "name=x&name=y",    // two names (with `Name=y&name=x` the two sides part)
        "val=1&name=x",     // one order only
        "name=",            // empty
        "",                 // missing
        "name=x&val=1&z=2", // nothing else
        "name=%7",          // a broken escape
    ] {
        c.get(&format!("/inc?{query}")).assert(400, refusal);
    }
    for path in ["/metrics", "/dashboard", "/", "/get/"] {
        c.get(path).assert(404, "404 page not found\n");
    }

    // Keep-alive to the instances: many requests over one connection from nginx to each.
    let before: Vec<u64> = instances.iter().map(accepted).collect();
    for round in 0..20 {
        for i in 0..30 {
            c.get(&format!("/set?name=k{i}&val={round}"))
                .assert(200, "ok\n");
        }
    }
    let after: Vec<u64> = instances.iter().map(accepted).collect();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        // One for this /metrics request, at most one from nginx.
        assert!(
            a - b <= 2,
            "instance {i} accepted {} connections for its share of 600 requests",
            a - b
        );
    }
    let log = front.error_log();
    assert!(!log.contains("[error]"), "nginx error.log:\n{log}");
}
