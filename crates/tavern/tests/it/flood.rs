//! Idle and slow clients cannot starve anyone: thousands of connections
//! that never finish a request leave the API and the worlds answering, the
//! listener holds no more connections than its limits, a Tavern short of
//! file descriptors keeps serving, and a world that cannot start for want
//! of a resource is tried again with growing pauses, not in a tight loop.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

fn addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// Raises this test process's open-file limit to its hard limit (the
/// flood needs its own sockets); answers it.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    hard
}

/// Opens `count` connections to `to` from the loopback address `from`,
/// each silent (`slow` false) or sending the start of a request head and
/// no more; answers those that opened (Tavern may close them later).
async fn open_many(to: SocketAddr, from: IpAddr, count: usize, slow: bool) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await
        else {
            continue;
        };
        if slow {
            let _ = stream
                .write_all(b"GET /api/v1/instances HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await;
        }
        held.push(stream);
    }
    held
}

/// Open file descriptors of a process.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// `n` requests through `http`, each on a new connection: every answer's
/// status and how long it took.
async fn timed(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    n: usize,
) -> Vec<(u16, Duration)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let began = Instant::now();
        let mut r = http.get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let status = match tokio::time::timeout(Duration::from_secs(5), r.send()).await {
            Ok(Ok(resp)) => resp.status().as_u16(),
            Ok(Err(_)) => 0,
            Err(_) => 1,
        };
        out.push((status, began.elapsed()));
    }
    out
}

fn p99(times: &[(u16, Duration)]) -> Duration {
    let mut t: Vec<Duration> = times.iter().map(|(_, d)| *d).collect();
    t.sort();
    t[(t.len() * 99 / 100).min(t.len() - 1)]
}

/// A client on a loopback address of its own, a new connection for each
/// request.
fn client_from(ip: &str, hosts: &[(&str, SocketAddr)]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().ok())
        .pool_max_idle_per_host(0);
    for (h, a) in hosts {
        b = b.resolve(h, *a);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_idle_and_slow_connections_starve_nobody() {
    let hard = raise_open_files();
    assert!(
        hard >= 12_000,
        "the flood needs 12 000 open files, the hard limit is {hard}"
    );
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_SERVER_MAX_CONNECTIONS", "2000"),
            ("TAVERN_SERVER_HEADER_TIMEOUT_SECONDS", "60"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("floodkey")).await;
    add_world(&admin, "steady", "stub").await;
    let (s, b) = admin
        .post("/api/v1/instances/steady/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, "steady", "running").await;
    let to = addr(&server);
    let pid = server.pid();
    let rss_before = rss_mib(pid);

    // 10 000 connections from 40 addresses, half silent, half slow.
    let mut flood = Vec::new();
    let mut opened = 0;
    for n in 1..=40u8 {
        let from = IpAddr::from([127, 0, 1, n]);
        let batch = open_many(to, from, 250, n % 2 == 0).await;
        opened += batch.len();
        flood.push(batch);
    }
    // Every attempt got through the accept queue; the listener kept no
    // more than its limits allow (2 000, and 250 on their way out).
    assert!(opened >= 9_000, "only {opened} connections opened");
    let held = open_files(pid);
    assert!(held < 2_000 + 250 + 256, "Tavern holds {held} files");

    // The API and the world answer others, each on a new connection.
    let http = client_from("127.0.0.1", &[("steady.localhost", to)]);
    let api = timed(
        &http,
        &format!("{}/api/v1/instances", server.url),
        Some(&server.admin_token),
        200,
    )
    .await;
    let world = timed(
        &http,
        &format!("http://steady.localhost:{}/api/status", to.port()),
        None,
        50,
    )
    .await;
    assert!(
        api.iter().all(|(s, _)| *s == 200),
        "API answers: {:?}",
        api.iter().filter(|(s, _)| *s != 200).collect::<Vec<_>>()
    );
    assert!(
        world.iter().all(|(s, _)| *s == 200),
        "world answers: {:?}",
        world.iter().filter(|(s, _)| *s != 200).collect::<Vec<_>>()
    );
    let rss_after = rss_mib(pid);
    eprintln!(
        "under the flood: API p99 {:?}, world p99 {:?}, Tavern holds {held} files, RSS {rss_before} -> {rss_after} MiB",
        p99(&api),
        p99(&world)
    );
    // One address more than its share: its stalest connections go first,
    // and beyond the share of those leaving, it is refused.
    let greedy = open_many(to, IpAddr::from([127, 0, 2, 1]), 600, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alive = count_open(greedy).await;
    assert!(
        alive <= 256 + 32,
        "{alive} connections of one client stayed open"
    );
    drop(flood);
}

/// How many of these connections Tavern has not closed.
async fn count_open(streams: Vec<TcpStream>) -> usize {
    let mut open = 0;
    for s in streams {
        let mut buf = [0u8; 1];
        // Nothing to read and not closed (not even after a 503): open.
        let waited = tokio::time::timeout(Duration::from_millis(20), s.peek(&mut buf)).await;
        if waited.is_err() {
            open += 1;
        }
    }
    open
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tavern_short_of_file_descriptors_keeps_serving() {
    raise_open_files();
    let server = Server::start_wrapped("127.0.0.1:0", &["prlimit", "--nofile=256:256", "--"], &[]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("shortkey")).await;
    add_world(&admin, "short", "stub").await;
    let (s, b) = admin
        .post("/api/v1/instances/short/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, "short", "running").await;
    let to = addr(&server);
    let idle = open_many(to, IpAddr::from([127, 0, 3, 1]), 300, false).await;
    let http = client_from("127.0.0.1", &[("short.localhost", to)]);
    let api = timed(
        &http,
        &format!("{}/api/v1/instances", server.url),
        Some(&server.admin_token),
        20,
    )
    .await;
    let world = timed(
        &http,
        &format!("http://short.localhost:{}/api/status", to.port()),
        None,
        20,
    )
    .await;
    assert!(api.iter().all(|(s, _)| *s == 200), "{api:?}");
    assert!(world.iter().all(|(s, _)| *s == 200), "{world:?}");
    // The world keeps running: its checks are not starved either.
    let (_, w) = admin.get("/api/v1/instances/short").await;
    assert_eq!(w["state"], "running", "{w}");
    drop(idle);
    let log = server.output();
    let accept_failures = log.matches("accept failed").count();
    assert!(
        accept_failures <= 5,
        "{accept_failures} accept failures logged"
    );
    assert!(
        !log.contains("no free port"),
        "a start failed for want of descriptors"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_that_lacks_a_resource_is_retried_with_growing_pauses() {
    // The only port worlds may use is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = Server::start_with_env(
        &[],
        &[("TAVERN_RUNTIME_PORT_RANGE", &format!("{port}-{port}"))],
    );
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("portkey")).await;
    add_world(&admin, "portless", "stub").await;
    let (s, b) = admin
        .post("/api/v1/instances/portless/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_until("the failed start is shown", || async {
        admin.get("/api/v1/instances/portless").await.1["state_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no free port") && r.contains("trying again in"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Tries at 0, 0.2, 0.6, 1.4 and 3.0 s (the tests' backoff is 200 ms):
    // not one every 250 ms.
    let tries = server.output().matches("start: no free port").count();
    assert!((2..=7).contains(&tries), "{tries} tries in about 4 s");
    // Once the port is free, the world starts.
    drop(taken);
    wait_for_state(&admin, "portless", "running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = Server::start_with_env(&[], &[("TAVERN_SERVER_HEADER_TIMEOUT_SECONDS", "1")]);
    let to = addr(&server);
    let from = IpAddr::from([127, 0, 4, 1]);
    let silent = open_many(to, from, 1, false).await;
    let slow = open_many(to, from, 1, true).await;
    // A kept-alive connection after one whole request.
    let mut idle = open_many(to, from, 1, false).await;
    idle[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut all: Vec<TcpStream> = silent.into_iter().chain(slow).chain(idle).collect();
    // Still open within the timeout (the idle one has its answer to read).
    for s in &mut all[..2] {
        let mut buf = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.peek(&mut buf))
                .await
                .is_err(),
            "closed too early"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for mut s in all {
        use tokio::io::AsyncReadExt as _;
        let mut rest = Vec::new();
        let left = deadline.saturating_duration_since(Instant::now());
        let closed = tokio::time::timeout(left, s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a connection outlived the header timeout");
    }
}
