//! Many clients at once against the one-threaded server: no lost update, no crossed answer.

mod common;

use common::{Client, Server, checks};

#[test]
fn concurrent_incs_lose_no_update() {
    checks::concurrent_incs_lose_no_update(&Server::start(&[]));
}

#[test]
fn concurrent_set_and_get_never_cross_answers() {
    checks::concurrent_set_and_get_never_cross_answers(&Server::start(&[]));
}

#[test]
fn many_idle_connections_do_not_block_an_active_one() {
    let server = Server::start(&[]);
    // Idle connections, some with half a request in, some with nothing.
    let mut idle: Vec<Client> = (0..200).map(|_| server.client()).collect();
    for (n, c) in idle.iter_mut().enumerate() {
        if n % 2 == 0 {
            c.send(b"GET /inc?name=i HTTP/1.1\r\nHost:");
        }
    }
    let mut active = server.client();
    for n in 1..=50 {
        active.get("/inc?name=j").assert(200, "ok\n");
        active.get("/get?name=j").assert(200, &format!("j: {n}\n"));
    }
    // The half requests complete later and are answered on their own connections.
    for (n, c) in idle.iter_mut().enumerate() {
        if n % 2 == 0 {
            c.send(b" t\r\n\r\n");
            c.read_response().assert(200, "ok\n");
        }
    }
    active.get("/get?name=i").assert(200, "i: 100\n");
}
