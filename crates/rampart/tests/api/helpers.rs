//! The harness: starts the real `rampart` binary on a fresh data directory and a free port, and
//! talks to it over TLS verified against the certificate the server made, as a client would.
//! Every wait here is a bounded poll with a deadline; nothing asserts on how long things take.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub use crate::reply::{Reply, assert_problem};

/// How long the server may take to print its address.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// How long a message may take to reach an expected status.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(15);
/// Between two looks at something that is expected to change.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A normal number: the sandbox delivers it.
pub const NORMAL_NUMBER: &str = "+447911123456";
pub const OTHER_NUMBER: &str = "+33612345678";
pub const THIRD_NUMBER: &str = "+12125550123";

/// Settings that make the sandbox and retries quick enough for tests.
const FAST_ENV: &[(&str, &str)] = &[
    // The suites send runs of sequential numbers to one range on purpose; the pumping defence
    // has tests of its own, which turn it back on.
    ("RAMPART_PUMPING__ENABLED", "false"),
    ("RAMPART_SANDBOX__RECEIPT_DELAY_MS", "5"),
    ("RAMPART_SANDBOX__DELAYED_RECEIPT_MS", "1500"),
    ("RAMPART_DELIVERY__RETRY_BASE_MS", "100"),
    // Many tests present junk or revoked keys on purpose, all from 127.0.0.1; bans for failing
    // authentication are tested on their own (access.rs), with a low threshold.
    ("RAMPART_NETWORK__BAN_AFTER_FAILURES", "1000"),
    // Likewise many tests sign people in from 127.0.0.1; the per-network limit of the routes
    // open before signing in is tested on its own (people.rs).
    ("RAMPART_RATE_LIMITS__SIGN_IN_PER_MINUTE", "100000"),
];

/// One running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// A key of the default account with every account scope, made with
    /// `rampart apikey create` before the first start.
    pub key: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    child: Option<Child>,
    /// Where the server's log (its stderr) goes.
    pub stderr_path: PathBuf,
    env: Vec<(String, String)>,
    _root: TempDir,
}

/// Starts the server with the fast test settings.
pub fn spawn_app() -> TestApp {
    spawn_app_with(&[])
}

/// Starts the server with extra `RAMPART_...` settings on top of the fast test settings.
pub fn spawn_app_with(extra_env: &[(&str, &str)]) -> TestApp {
    let root = tempfile::Builder::new()
        .prefix("rampart-api-test")
        .tempdir()
        .expect("a temporary directory");
    let data_dir = root.path().join("data");
    let stderr_path = root.path().join("server.stderr");
    let env: Vec<(String, String)> = FAST_ENV
        .iter()
        .chain(extra_env)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let key = run_cli(
        &data_dir,
        &env,
        &["apikey", "create", "--name", "test key", "--scopes", "*"],
    );
    let (child, addr, printed) = start_server(&data_dir, &stderr_path, &env);
    assert_eq!(printed, None, "a start must never print an API key");
    TestApp {
        client: client_for(&data_dir, addr),
        addr,
        key,
        data_dir,
        child: Some(child),
        stderr_path,
        env,
        _root: root,
    }
}

/// Starts the server on an existing data directory (one a restore made, say) with `key` as
/// the test's key; the caller keeps the directory alive.
pub fn spawn_app_on(data_dir: &Path, key: &str) -> TestApp {
    let root = tempfile::Builder::new()
        .prefix("rampart-api-test")
        .tempdir()
        .expect("a temporary directory");
    let stderr_path = root.path().join("server.stderr");
    let env: Vec<(String, String)> = FAST_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (child, addr, printed) = start_server(data_dir, &stderr_path, &env);
    assert_eq!(printed, None, "a start must never print an API key");
    TestApp {
        client: client_for(data_dir, addr),
        addr,
        key: key.to_owned(),
        data_dir: data_dir.to_path_buf(),
        child: Some(child),
        stderr_path,
        env,
        _root: root,
    }
}

/// Runs a `rampart` admin command on the data directory; returns its stdout, trimmed.
fn run_cli(data_dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let output = server_command(data_dir, env)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the rampart binary runs");
    assert!(
        output.status.success(),
        "rampart {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn server_command(data_dir: &Path, env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rampart"));
    command.arg("--data-dir").arg(data_dir);
    for name in [
        "RAMPART_CONFIG",
        "RAMPART_LOG",
        "RAMPART_DATA_DIR",
        "RAMPART_LISTEN",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Starts `rampart serve` and reads its stdout until it says where it listens. Returns the
/// process, the address, and the key when this start printed one.
fn start_server(
    data_dir: &Path,
    stderr_path: &Path,
    env: &[(String, String)],
) -> (Child, SocketAddr, Option<String>) {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_path)
        .expect("the server log file");
    let mut child = server_command(data_dir, env)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the rampart binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    // Reads to the end, so the server can never block on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let mut key = None;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not say where it listens; stdout: {seen:?}; stderr: {}",
                    fs::read_to_string(stderr_path).unwrap_or_default()
                );
            }
        };
        let trimmed = line.trim();
        if trimmed.starts_with("rk_") && !trimmed.contains(' ') {
            key = Some(trimmed.to_owned());
        }
        if let Some(rest) = trimmed.strip_prefix("Rampart listening on https://") {
            let addr = rest
                .split_whitespace()
                .next()
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .unwrap_or_else(|| panic!("cannot read the address in `{trimmed}`"));
            return (child, addr, key);
        }
        seen.push(line);
    }
}

/// A client that trusts only the server's own certificate, and reaches it as `localhost`.
/// It speaks HTTP/2 when the server offers it (it does, by ALPN).
fn client_for(data_dir: &Path, addr: SocketAddr) -> reqwest::Client {
    client_builder(data_dir, addr)
        .build()
        .expect("an HTTPS client")
}

fn client_builder(data_dir: &Path, addr: SocketAddr) -> reqwest::ClientBuilder {
    let pem = fs::read(data_dir.join("tls").join("cert.pem")).expect("the server's certificate");
    let cert = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(30))
}

impl TestApp {
    /// A second client that speaks only HTTP/1.1, for behaviour that differs by protocol.
    pub fn http1_client(&self) -> reqwest::Client {
        client_builder(&self.data_dir, self.addr)
            .http1_only()
            .build()
            .expect("an HTTP/1.1 client")
    }

    /// A client that presents `identity` (a client certificate and its key, PEM) when the
    /// server asks for one (mutual TLS).
    pub fn client_with_identity(&self, identity: reqwest::Identity) -> reqwest::Client {
        client_builder(&self.data_dir, self.addr)
            .identity(identity)
            .build()
            .expect("an HTTPS client with a client certificate")
    }

    /// A client whose connections come from `local` (any 127.0.0.0/8 address works on
    /// loopback), to test rules by client address.
    pub fn client_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        client_builder(&self.data_dir, self.addr)
            .local_address(local)
            .build()
            .expect("an HTTPS client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Sends a request; `key` is the API key, or `""` for none.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<(Option<&str>, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method.clone(), self.url(path));
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((content_type, bytes)) = body {
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            request = request.body(bytes);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e:?}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading the answer to {method} {path}: {e:?}"));
        Reply {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.request(Method::GET, path, key, None, &[]).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Reply {
        self.request(Method::DELETE, path, key, None, &[]).await
    }

    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> Reply {
        self.post_json_with_headers(path, key, body, &[]).await
    }

    pub async fn post_json_with_headers(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serializable JSON");
        self.request(
            Method::POST,
            path,
            key,
            Some((Some("application/json"), bytes)),
            headers,
        )
        .await
    }

    /// Posts raw bytes with the given content type (or none).
    pub async fn post_raw(
        &self,
        path: &str,
        key: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> Reply {
        self.request(Method::POST, path, key, Some((content_type, bytes)), &[])
            .await
    }

    /// Sends with the default key; asserts 202 and returns the accepted entries.
    pub async fn send(&self, body: &Value) -> Vec<Value> {
        let reply = self.post_json("/v1/messages", &self.key, body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "send: {}", reply.text);
        reply.json()["messages"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no `messages` in {}", reply.text))
    }

    /// Sends one message to `to` and returns its id.
    pub async fn send_to(&self, to: &str, body: &str) -> String {
        let accepted = self
            .send(&json!({"to": to, "from": "Rampart", "body": body}))
            .await;
        assert_eq!(
            accepted.len(),
            1,
            "one recipient, one message: {accepted:?}"
        );
        id_of(&accepted[0])
    }

    /// The message as the API shows it to the default key.
    pub async fn message(&self, id: &str) -> Value {
        let reply = self.get(&format!("/v1/messages/{id}"), &self.key).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {id}: {}", reply.text);
        reply.json()
    }

    /// Polls until the message has `status`; fails at once if it settles on another final
    /// status, or after `STATUS_DEADLINE`.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + STATUS_DEADLINE;
        loop {
            let message = self.message(id).await;
            let now = message["status"].as_str().unwrap_or_default().to_owned();
            if now == status {
                return message;
            }
            assert!(
                !is_final(&now),
                "message {id} ended `{now}` instead of `{status}`: {message}"
            );
            assert!(
                Instant::now() < deadline,
                "message {id} is still `{now}`, not `{status}`: {message}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Every message the default key can list with `query` (e.g. `status=failed&`), walking
    /// all pages of `limit` messages.
    pub async fn list_all(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: no test stores more than a few thousand messages.
        for _ in 0..10_000 {
            let mut path = format!("/v1/messages?{query}limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let reply = self.get(&path, &self.key).await;
            assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.text);
            let page = reply.json();
            let data = page["data"].as_array().cloned().unwrap_or_default();
            assert!(data.len() <= limit, "page longer than limit={limit}");
            all.extend(data);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return all,
            }
        }
        panic!("pagination did not end");
    }

    /// Creates a key in the default account with `scopes` (and an optional expiry); returns
    /// its id and whole secret.
    pub async fn create_key(&self, scopes: &[&str], expires_at: Option<&str>) -> (String, String) {
        let mut body = json!({"name": format!("test key {}", scopes.join(" ")), "scopes": scopes});
        if let Some(at) = expires_at {
            body["expires_at"] = json!(at);
        }
        let reply = self.post_json("/v1/api-keys", &self.key, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create key: {}",
            reply.text
        );
        let created = reply.json();
        (
            created["id"].as_str().expect("key id").to_owned(),
            created["key"].as_str().expect("key secret").to_owned(),
        )
    }

    /// Runs an admin subcommand against this data directory (the server may be running);
    /// asserts success and returns stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        run_cli(&self.data_dir, &self.env, args)
    }

    /// The `rampart` command on this data directory, with the test settings, to run as the
    /// test pleases.
    pub fn command(&self) -> Command {
        server_command(&self.data_dir, &self.env)
    }

    /// Runs an admin subcommand that may fail: whether it succeeded, its stdout and stderr.
    pub fn cli_output(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_output_on(&self.data_dir, args)
    }

    /// Like [`TestApp::cli_output`], on another data directory (with this server's settings).
    pub fn cli_output_on(&self, data_dir: &Path, args: &[&str]) -> (bool, String, String) {
        let output = server_command(data_dir, &self.env)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("the rampart binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// A new operator's key over the instance with every server-wide scope (metrics,
    /// connectors, bans, accounts).
    /// The id of the first account (the default one made on first start).
    pub fn account_id(&self) -> String {
        let accounts = self.cli(&["account", "list"]);
        accounts.split('\t').next().unwrap().to_owned()
    }

    pub fn operator_key(&self) -> String {
        self.cli(&[
            "apikey",
            "create",
            "--operator",
            "--name",
            "ops",
            "--scopes",
            "*",
        ])
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to end; returns its exit status.
    /// Async on purpose: while we wait, this runtime keeps our client's connections alive to
    /// answer the server's HTTP/2 shutdown handshake (GOAWAY, PING), as a live client would.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("the kill command runs");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("poll the server process") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not exit within {within:?} of SIGTERM");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Sends a signal (`HUP`, `TERM`...) to the server without waiting for anything.
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("the kill command runs");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll the server process").is_none(),
            None => false,
        }
    }

    /// Stops the server and runs `rampart serve` again on its data directory, expecting a
    /// refusal to start; returns its stderr. [`TestApp::restart`] starts it for real.
    pub fn restart_refused(&mut self) -> String {
        self.kill9();
        let stderr_path = self.stderr_path.with_extension("refused");
        serve_refused_with(&self.data_dir, &self.env, &stderr_path)
    }

    /// Starts the server again on the same data directory (a new port). No key is printed
    /// again; the one we have keeps working.
    pub fn restart(&mut self) {
        self.kill9();
        let (child, addr, key) = start_server(&self.data_dir, &self.stderr_path, &self.env);
        assert_eq!(key, None, "a restart must not print a new key");
        self.child = Some(child);
        self.addr = addr;
        self.client = client_for(&self.data_dir, addr);
    }

    /// Everything the server wrote to stderr so far (its log), across restarts.
    pub fn server_log(&self) -> String {
        let mut text = String::new();
        if let Ok(file) = File::open(&self.stderr_path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the futures concurrently on this task and returns their outputs in order.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}

pub fn id_of(message: &Value) -> String {
    message["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {message}"))
        .to_owned()
}

pub fn is_final(status: &str) -> bool {
    matches!(
        status,
        "delivered" | "undelivered" | "failed" | "expired" | "canceled"
    )
}

/// RFC 3339 for now plus `offset`, to the millisecond (the precision the server keeps).
pub fn rfc3339_from_now(offset: time::Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + offset;
    at.replace_millisecond(at.millisecond())
        .expect("a valid millisecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a formattable time")
}

pub fn parse_rfc3339(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("`{text}` is not RFC 3339: {e}"))
}

/// Runs `rampart serve` on a fresh data directory with `extra_env`, expecting it to refuse to
/// start (bounded wait); returns what it wrote to stderr.
pub fn serve_refused(extra_env: &[(&str, &str)]) -> String {
    let root = tempfile::Builder::new()
        .prefix("rampart-api-test")
        .tempdir()
        .expect("a temporary directory");
    let env: Vec<(String, String)> = FAST_ENV
        .iter()
        .chain(extra_env)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    serve_refused_with(
        &root.path().join("data"),
        &env,
        &root.path().join("server.stderr"),
    )
}

/// Runs `rampart serve` on `data_dir` with `env`, expecting it to refuse to start (bounded
/// wait); returns what it wrote to stderr (also kept in `stderr_path`).
fn serve_refused_with(data_dir: &Path, env: &[(String, String)], stderr_path: &Path) -> String {
    let stderr = File::create(stderr_path).expect("the server log file");
    let mut child = server_command(data_dir, env)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("the rampart binary starts");
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll the server process") {
            assert!(!status.success(), "the server exited successfully");
            return fs::read_to_string(stderr_path).unwrap_or_default();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started instead of refusing");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Writes a file only its owner may read, as a secret must be for Rampart to take it.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    file.write_all(contents.as_ref()).unwrap();
}
