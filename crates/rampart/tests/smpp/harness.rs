//! The harness: the real `rampart` binary on a fresh data directory, its admin CLI, and the
//! node-smpp test SMSC of `crates/rampart-smpp/tests/smsc`, which records every PDU it sees.
//! Every wait is a bounded poll or a timeout; nothing asserts on how fast things are.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child as AsyncChild, ChildStdin, Command as AsyncCommand};

/// Longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

pub const SYSTEM_ID: &str = "rampart";
pub const PASSWORD: &str = "secret";

/// Quick retries and short SMPP timers, so failures heal within a test's patience; accounts
/// are live, so their messages follow the routes to the test SMSC.
const FAST_ENV: &[(&str, &str)] = &[
    ("RAMPART_MESSAGING__NEW_ACCOUNTS_LIVE", "true"),
    ("RAMPART_SANDBOX__RECEIPT_DELAY_MS", "5"),
    ("RAMPART_DELIVERY__RETRY_BASE_MS", "100"),
    ("RAMPART_DELIVERY__RETRY_MAX_MS", "1000"),
];
pub const FAST_SMPP_OPTIONS: &[&str] = &[
    "reconnect_min_ms=100",
    "reconnect_max_ms=500",
    "response_timeout_ms=2000",
    "connect_timeout_ms=2000",
    "throttle_backoff_ms=100",
];

/// When `node` is not installed: fails the test in CI (`CI=true`), where a skip would let the
/// suite pass without running; elsewhere returns early from it with a loud message.
#[macro_export]
macro_rules! require_node {
    () => {
        if !$crate::harness::node_available() {
            if $crate::harness::in_ci() {
                panic!("`node` is not installed, and CI=true: the SMPP tests need it");
            }
            eprintln!(
                "\n{banner}\nSKIPPED: `node` is not installed; the SMPP tests need it.\n\
                 This test did not run. Install node, then `npm ci --prefix crates/rampart-smpp/tests/smsc`.\n{banner}\n",
                banner = "!".repeat(78)
            );
            return;
        }
    };
}

/// Whether the tests run in CI, where every test must really run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

pub fn node_available() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A data directory the CLI can prepare before the server starts.
pub struct DataDir {
    root: TempDir,
    pub path: PathBuf,
}

impl DataDir {
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("rampart-smpp-test")
            .tempdir()
            .unwrap();
        let path = root.path().join("data");
        Self { root, path }
    }

    /// Runs `rampart ARGS` on this data directory; asserts success and returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = command(&self.path).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "rampart {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `rampart connector add smpp` for an SMSC on loopback, with the test credentials.
    pub fn add_connector(&self, name: &str, port: u16, extra: &[&str]) {
        let password_file = self.root.path().join(format!("{name}.password"));
        write_private(&password_file, format!("{PASSWORD}\n"));
        let port = port.to_string();
        let mut args = vec![
            "connector",
            "add",
            "smpp",
            "--name",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--system-id",
            SYSTEM_ID,
            "--password-file",
            password_file.to_str().unwrap(),
        ];
        let options: Vec<String> = FAST_SMPP_OPTIONS
            .iter()
            .map(|o| format!("--option={o}"))
            .collect();
        args.extend(options.iter().map(String::as_str));
        args.extend(extra);
        self.cli(&args);
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

fn command(data_dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"));
    command.arg("--data-dir").arg(data_dir);
    for name in [
        "RAMPART_CONFIG",
        "RAMPART_LOG",
        "RAMPART_DATA_DIR",
        "RAMPART_LISTEN",
    ] {
        command.env_remove(name);
    }
    command.envs(FAST_ENV.iter().copied());
    command.stdin(Stdio::null());
    command
}

/// A running server.
pub struct Rampart {
    pub dir: DataDir,
    /// A key of the default account with every account scope.
    pub key: String,
    /// An operator's key with every server-wide scope (connectors, metrics).
    pub ops: String,
    addr: SocketAddr,
    client: reqwest::Client,
    child: std::process::Child,
}

impl Rampart {
    /// Makes the default account's key and an operator's key, then starts `rampart serve`.
    pub fn start(dir: DataDir) -> Self {
        Self::start_with_env(dir, &[])
    }

    /// [`Rampart::start`] with extra environment variables (configuration overrides).
    pub fn start_with_env(dir: DataDir, env: &[(&str, &str)]) -> Self {
        let key = dir.cli(&["apikey", "create", "--scopes", "*"]);
        let ops = dir.cli(&["apikey", "create", "--operator", "--scopes", "*"]);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.root().join("server.log"))
            .unwrap();
        let mut child = command(&dir.path)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RAMPART_LOG", "info,rampart=debug")
            // The suites send runs of sequential numbers to one range on purpose.
            .env("RAMPART_PUMPING__ENABLED", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = std_mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the server did not start: {}",
                    fs::read_to_string(dir.root().join("server.log")).unwrap_or_default()
                )
            });
            let line = line.trim();
            assert!(!line.starts_with("rk_"), "a start must never print a key");
            if let Some(rest) = line.strip_prefix("Rampart listening on https://") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        let pem = fs::read(dir.path.join("tls/cert.pem")).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .resolve("localhost", addr)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            key,
            ops,
            dir,
            addr,
            client,
            child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts JSON; the status and the answer.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends one request; asserts 202 and returns the message ids in recipient order.
    pub async fn send(&self, to: Value, body: &str) -> Vec<String> {
        let response = self
            .client
            .post(self.url("/v1/messages"))
            .bearer_auth(&self.key)
            .json(&json!({"to": to, "from": "Rampart", "body": body}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let reply: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "send: {reply}");
        reply["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn message(&self, id: &str) -> Value {
        let (status, message) = self.get(&format!("/v1/messages/{id}"), &self.key).await;
        assert_eq!(status, StatusCode::OK, "{message}");
        message
    }

    /// Polls until the message's status is one of `wanted`; fails on another final status.
    pub async fn wait_for_status(&self, id: &str, wanted: &[&str]) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self.message(id).await;
            let status = message["status"].as_str().unwrap_or_default().to_owned();
            if wanted.contains(&status.as_str()) {
                return message;
            }
            let is_final = ["delivered", "undelivered", "failed", "expired", "canceled"]
                .contains(&status.as_str());
            assert!(
                !is_final,
                "message ended `{status}`, not {wanted:?}: {message}"
            );
            assert!(
                Instant::now() < deadline,
                "message still `{status}`, not {wanted:?}: {message}\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The connector as `GET /v1/connectors` shows it, once `check` holds for it.
    pub async fn wait_for_connector(&self, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, list) = self.get("/v1/connectors", &self.ops).await;
            assert_eq!(status, StatusCode::OK, "{list}");
            let found = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap_or(Value::Null);
            if check(&found) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "connector {name} never matched; last seen {found}; all: {list}\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn wait_until_bound(&self, name: &str) -> Value {
        self.wait_for_connector(name, |c| c["up"] == true).await
    }

    /// The server process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Runs one query on the server's database (read-only, beside the running server).
    pub fn query_count(&self, sql: &str) -> i64 {
        let db = rusqlite::Connection::open_with_flags(
            self.dir.path.join("rampart.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.root().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Rampart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test SMSC process and everything it recorded, with when it was read.
pub struct Smsc {
    child: AsyncChild,
    stdin: ChildStdin,
    records: Arc<Mutex<Vec<(Instant, Value)>>>,
    pub port: u16,
}

fn smsc_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rampart-smpp/tests/smsc/smsc.js")
}

impl Smsc {
    /// Starts the SMSC with `options` (see the top of `smsc.js`; the test credentials are
    /// added) and waits until it listens.
    pub async fn start(mut options: Value) -> Smsc {
        let script = smsc_script();
        assert!(
            script.with_file_name("node_modules").join("smpp").is_dir(),
            "the test SMSC's packages are missing: run `npm ci --prefix crates/rampart-smpp/tests/smsc`"
        );
        options["system_id"] = json!(SYSTEM_ID);
        options["password"] = json!(PASSWORD);
        let mut child = AsyncCommand::new("node")
            .arg(&script)
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(record) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push((Instant::now(), record));
                }
            }
        });
        let mut smsc = Smsc {
            child,
            stdin,
            records,
            port: 0,
        };
        let listening = smsc.wait_for(1, |r| r["event"] == "listening").await;
        smsc.port = listening[0]["port"].as_u64().unwrap() as u16;
        smsc
    }

    /// Records of one kind, in order.
    pub fn recorded(&self, event: &str) -> Vec<Value> {
        self.timed(event).into_iter().map(|(_, r)| r).collect()
    }

    /// Records of one kind with the moment each was read.
    pub fn timed(&self, event: &str) -> Vec<(Instant, Value)> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["event"] == event)
            .cloned()
            .collect()
    }

    /// `submit_sm` the SMSC accepted.
    pub fn accepted(&self) -> Vec<Value> {
        self.recorded("submit_sm")
            .into_iter()
            .filter(|r| r["command_status"] == 0)
            .collect()
    }

    /// Waits until `count` records satisfy `matches`, and returns them.
    pub async fn wait_for(&self, count: usize, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found: Vec<Value> = self
                .records
                .lock()
                .unwrap()
                .iter()
                .map(|(_, r)| r)
                .filter(|r| matches(r))
                .cloned()
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "the SMSC recorded {} of {count} expected records: {:#?}",
                found.len(),
                self.records
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(_, r)| r)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends a control command (see the top of `smsc.js`).
    pub async fn control(&mut self, command: Value) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Kills the SMSC abruptly: connections reset, no unbind.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A self-signed certificate for `localhost`, as (cert.pem, key.pem) paths under `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("smsc-cert.pem"), dir.join("smsc-key.pem"));
    fs::write(&cert, certified.cert.pem()).unwrap();
    fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
