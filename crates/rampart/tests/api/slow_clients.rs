//! Slow clients: connections that dribble their headers or sit idle (HTTP/2, HTTP/1.1
//! keep-alive) are cut by their timeouts while a normal client is served throughout: 500
//! connections dribbling their headers, 500 idle HTTP/2 connections and 50 idle HTTP/1.1
//! keep-alive connections at once. The timeouts are short through the environment.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::helpers::{TestApp, join_all, spawn_app_with};
use crate::raw;

const DRIBBLERS: usize = 500;
const IDLE_HTTP2: usize = 500;
const IDLE_HTTP1: usize = 50;
/// A slow client gives up (and the test fails) if the server has not cut it by then.
const GIVE_UP: Duration = Duration::from_secs(20);

/// The slow clients' TLS settings, shared so that handshakes after the first resume a session.
struct Clients {
    handshakes: Semaphore,
    h2: tokio_rustls::TlsConnector,
    http1: tokio_rustls::TlsConnector,
}

/// A few handshakes at a time: this test's client is one thread, and a handshake left waiting
/// for it would be cut by the server's (short) handshake timeout.
async fn connect(
    app: &TestApp,
    clients: &Clients,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let _turn = clients
        .handshakes
        .acquire()
        .await
        .expect("an open semaphore");
    let connector = if alpn == b"h2" {
        &clients.h2
    } else {
        &clients.http1
    };
    match raw::connect_with(connector, app).await {
        Ok(stream) => stream,
        Err(e) => panic!("a slow client could not connect: {e}"),
    }
}

/// Sends a request's headers a byte at a time, never ending them. True if the server cut the
/// connection before `GIVE_UP`.
async fn dribble_headers(app: &TestApp, clients: &Clients) -> bool {
    let mut stream = connect(app, clients, b"http/1.1").await;
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: ";
    let mut scratch = [0u8; 1024];
    for i in 0.. {
        if started.elapsed() > GIVE_UP {
            return false;
        }
        let byte = head.get(i).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).await.is_err() || stream.flush().await.is_err() {
            return true;
        }
        // Anything from the server (an end, an error, a 408) means it gave up on us.
        if let Ok(_read) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut scratch)).await
        {
            return true;
        }
    }
    false
}

/// Opens an HTTP/2 connection, makes one request, then stays silent. True if the server
/// closed the connection before `GIVE_UP`; otherwise what happened.
async fn idle_http2(app: &TestApp, clients: &Clients) -> Result<(), String> {
    let mut stream = connect(app, clients, b"h2").await;
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    // GET https://localhost/healthz, HPACK: indexed :method GET and :scheme https, literal
    // :path and :authority with indexed names.
    let mut block = vec![0x82, 0x87, 0x44, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"localhost");
    let length = u32::try_from(block.len())
        .expect("a short block")
        .to_be_bytes();
    hello.extend_from_slice(&[length[1], length[2], length[3], 0x1, 0x5, 0, 0, 0, 1]);
    hello.extend_from_slice(&block);
    if let Err(e) = stream.write_all(&hello).await {
        return Err(format!("could not send the request: {e}"));
    }
    let mut scratch = [0u8; 4096];
    let mut answered = 0;
    // A reset ends the connection too: the server closes an idle connection that still holds
    // unread client frames with a reset, and the kernel then drops whatever this (busy,
    // single-threaded) client had not yet read, the answer included.
    let mut reset = false;
    let read_all = async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) => return,
                Err(_) => {
                    reset = true;
                    return;
                }
                Ok(n) => answered += n,
            }
        }
    };
    match tokio::time::timeout(GIVE_UP, read_all).await {
        Ok(()) if answered > 0 || reset => Ok(()),
        Ok(()) => Err("closed without an answer".into()),
        Err(_) => Err(format!("still open after {GIVE_UP:?}")),
    }
}

/// Makes one HTTP/1.1 request on a keep-alive connection, then stays silent. `Ok(true)` if it
/// was answered 200 and the server then closed the idle connection before `GIVE_UP`;
/// `Ok(false)` if the server cut it before answering (under this load a handshake can outlast
/// the short handshake timeout: the client thinks a TLS 1.3 handshake done before the server
/// has read its last flight).
async fn idle_http1(app: &TestApp, clients: &Clients) -> Result<bool, String> {
    let mut stream = connect(app, clients, b"http/1.1").await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
    if let Err(e) = stream.write_all(request).await {
        return Err(format!("could not send the request: {e}"));
    }
    let mut head = Vec::new();
    let mut scratch = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(GIVE_UP, stream.read(&mut scratch)).await {
            Err(_) => return Err(format!("no answer within {GIVE_UP:?}")),
            Ok(Ok(0) | Err(_)) if head.is_empty() => return Ok(false),
            Ok(Ok(0) | Err(_)) => return Err("closed inside the answer".into()),
            Ok(Ok(n)) => head.extend_from_slice(&scratch[..n]),
        }
    }
    if !head.starts_with(b"HTTP/1.1 200 ") {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&head)));
    }
    let read_all = async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(GIVE_UP, read_all)
        .await
        .map(|()| true)
        .map_err(|_| format!("still open after {GIVE_UP:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_while_a_normal_client_is_served() {
    let app = spawn_app_with(&[
        // Long enough for all of them to be open at once before the first is cut.
        ("RAMPART_LIMITS__HEADER_READ_TIMEOUT_MS", "8000"),
        ("RAMPART_LIMITS__IDLE_CONNECTION_TIMEOUT_MS", "8000"),
        ("RAMPART_LIMITS__MAX_CONNECTIONS_PER_IP", "2000"),
    ]);
    let clients = Clients {
        handshakes: Semaphore::new(32),
        h2: raw::connector(&app, b"h2").unwrap(),
        http1: raw::connector(&app, b"http/1.1").unwrap(),
    };
    let dribblers = join_all((0..DRIBBLERS).map(|_| dribble_headers(&app, &clients)));
    let idlers = join_all((0..IDLE_HTTP2).map(|_| idle_http2(&app, &clients)));
    let keep_alives = join_all((0..IDLE_HTTP1).map(|_| idle_http1(&app, &clients)));
    // A normal client, served throughout: until the slow connections are gone (the server's
    // own gauge of open connections says when), with a bound of its own. The gauge also tells
    // how many were open at once.
    let ops = app.operator_key();
    let normal = async {
        let (mut served, mut peak) = (0, 0usize);
        let started = Instant::now();
        while started.elapsed() < GIVE_UP + Duration::from_secs(2) {
            let reply = app.get("/healthz", "").await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            served += 1;
            let metrics = app.get("/metrics", &ops).await.text;
            let open = metrics
                .lines()
                .find_map(|l| l.strip_prefix("rampart_connections_open{listener=\"https\"} "))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            peak = peak.max(open as usize);
            if peak > DRIBBLERS && open < 10.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (served, peak)
    };
    let (dribbled, idled, kept, (served, peak)) =
        tokio::join!(dribblers, idlers, keep_alives, normal);
    assert!(
        peak >= DRIBBLERS + IDLE_HTTP2,
        "only {peak} slow connections were open at once"
    );
    let uncut = dribbled.iter().filter(|cut| !**cut).count();
    assert_eq!(
        uncut, 0,
        "slow-header clients not cut by the header timeout"
    );
    let uncut: Vec<_> = idled.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        uncut.is_empty(),
        "idle HTTP/2 clients not closed by the idle timeout: {uncut:?}"
    );
    let uncut: Vec<_> = kept.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        uncut.is_empty(),
        "idle HTTP/1.1 keep-alive connections not closed: {uncut:?}"
    );
    // Most were answered first, so the keep-alive idle timeout is what closed them.
    let answered = kept.iter().filter(|r| matches!(r, Ok(true))).count();
    assert!(
        answered >= IDLE_HTTP1 * 4 / 5,
        "only {answered} of {IDLE_HTTP1} keep-alive clients were answered before being cut"
    );
    // The slow connections lived at least 8 s: at one request every 100 ms or so.
    assert!(served >= 40, "the normal client was served {served} times");
}
