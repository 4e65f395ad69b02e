//! Starts the real test SMSC (node-smpp, `tests/smsc/smsc.js`) on loopback, reads what it
//! records, and collects the client's events, every wait bounded by a timeout.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use rampart_smpp::{
    Address, SecretString, SmppClient, SmppConfig, SmppEvent, SmppHandle, Submission,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::{Notify, mpsc},
    time::{Instant, timeout},
};

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub const SYSTEM_ID: &str = "rampart";
pub const PASSWORD: &str = "secret";

/// When `node` is not installed: fails the test in CI (`CI=true`), where a skip would let the
/// suite pass without running; elsewhere returns early from it with a loud message.
#[macro_export]
macro_rules! require_node {
    () => {
        if !$crate::harness::node_available() {
            if $crate::harness::in_ci() {
                panic!("`node` is not installed, and CI=true: the SMPP integration tests need it");
            }
            eprintln!(
                "\n{banner}\nSKIPPED: `node` is not installed; the SMPP integration tests need it.\n\
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

fn smsc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smsc")
}

/// The test SMSC process and everything it has recorded so far.
pub struct Smsc {
    child: Child,
    stdin: ChildStdin,
    records: Arc<Mutex<Vec<Value>>>,
    recorded: Arc<Notify>,
    pub port: u16,
}

impl Smsc {
    /// Starts the SMSC with `options` (see the top of `smsc.js`) and waits until it listens.
    pub async fn start(options: Value) -> Smsc {
        let dir = smsc_dir();
        assert!(
            dir.join("node_modules/smpp").is_dir(),
            "the test SMSC's packages are missing: run `npm ci --prefix crates/rampart-smpp/tests/smsc`"
        );
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start node");
        let stdin = child.stdin.take().expect("smsc stdin");
        let stdout = child.stdout.take().expect("smsc stdout");
        let records = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::new(Notify::new());
        let (sink, notify) = (Arc::clone(&records), Arc::clone(&recorded));
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(record) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("smsc: {line}");
                    continue;
                };
                sink.lock().unwrap().push(record);
                notify.notify_waiters();
            }
        });
        let mut smsc = Smsc {
            child,
            stdin,
            records,
            recorded,
            port: 0,
        };
        let listening = smsc
            .wait_for_record(|record| record["event"] == "listening")
            .await;
        smsc.port = listening["port"].as_u64().expect("port") as u16;
        smsc
    }

    /// Everything recorded so far.
    pub fn records(&self) -> Vec<Value> {
        self.records.lock().unwrap().clone()
    }

    /// Recorded events of one kind (`submit_sm`, `bind`, `deliver_sm_resp`, ...).
    pub fn recorded(&self, event: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|record| record["event"] == event)
            .collect()
    }

    /// Waits until `count` records satisfy `matches`; returns them.
    pub async fn wait_for_records(
        &self,
        count: usize,
        matches: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.recorded.notified();
            let found: Vec<Value> = self.records().into_iter().filter(&matches).collect();
            if found.len() >= count {
                return found;
            }
            if timeout(deadline.saturating_duration_since(Instant::now()), notified)
                .await
                .is_err()
            {
                panic!(
                    "the SMSC recorded {} of {count} expected records; all records: {:#?}",
                    found.len(),
                    self.records()
                );
            }
        }
    }

    pub async fn wait_for_record(&self, matches: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_records(1, matches).await.remove(0)
    }

    /// Sends one control command (see the top of `smsc.js`).
    pub async fn control(&mut self, command: Value) {
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("control line");
        self.stdin.flush().await.expect("flush control");
    }

    /// Kills the SMSC abruptly (no unbind, connections reset).
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill smsc");
    }
}

/// A client configuration for the test SMSC with short timers.
pub fn config(port: u16) -> SmppConfig {
    let mut config = SmppConfig::new("127.0.0.1", port, SYSTEM_ID, SecretString::from(PASSWORD));
    config.enquire_link_interval = Duration::from_secs(5);
    config.response_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config.reconnect_min_backoff = Duration::from_millis(100);
    config.reconnect_max_backoff = Duration::from_millis(500);
    config.throttle_backoff = Duration::from_millis(100);
    config
}

/// A running client and the events it reported.
pub struct TestClient {
    pub handle: SmppHandle,
    events: mpsc::Receiver<SmppEvent>,
    pub seen: Vec<SmppEvent>,
}

impl TestClient {
    pub fn spawn(config: SmppConfig) -> TestClient {
        let (sender, events) = mpsc::channel(1024);
        let handle = SmppClient::spawn(config, sender).expect("spawn client");
        TestClient {
            handle,
            events,
            seen: Vec::new(),
        }
    }

    /// The next event, failing the test after [`WAIT`].
    pub async fn next_event(&mut self) -> SmppEvent {
        let event = timeout(WAIT, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no SMPP event within {WAIT:?}; seen: {:#?}", self.seen))
            .expect("event channel closed");
        self.seen.push(event.clone());
        event
    }

    /// Skips events until one satisfies `matches`.
    pub async fn wait_for(&mut self, matches: impl Fn(&SmppEvent) -> bool) -> SmppEvent {
        loop {
            let event = self.next_event().await;
            if matches(&event) {
                return event;
            }
        }
    }

    pub async fn submit(&self, submission: Submission) {
        timeout(WAIT, self.handle.submit(submission))
            .await
            .expect("submit waited too long")
            .expect("submit refused");
    }

    pub async fn shutdown(self) {
        timeout(WAIT, self.handle.shutdown())
            .await
            .expect("shutdown took too long");
    }
}

/// A single-part GSM-7 submission from "Rampart" to a UK test number.
pub fn gsm7_submission(reference: u64, septets: &[u8]) -> Submission {
    Submission {
        reference,
        source: Address::from_sender("Rampart").unwrap(),
        destination: Address::from_sender("+447700900123").unwrap(),
        data_coding: rampart_smpp::DATA_CODING_GSM7,
        parts: vec![septets.to_vec()],
        registered_delivery: true,
        validity: None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Plain SMSC options with the test credentials.
pub fn smsc_options() -> Value {
    json!({ "port": 0, "system_id": SYSTEM_ID, "password": PASSWORD })
}
