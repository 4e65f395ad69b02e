//! `rampart-smsc-sink`: the SMSC that Rampart's SMPP benchmark measures against. It accepts
//! `bind_transceiver` (and transmitter/receiver) with one system_id and password, answers every
//! `submit_sm` at once with a fresh message_id, answers `enquire_link` and `unbind` (the smpp34
//! server core does), and prints one line a second with the `submit_sm` count, so the figure
//! is the SMSC's own count. With `--receipts` it also sends a `DELIVRD` receipt for every
//! `submit_sm` that asks for one.
//!
//! The SMPP engine is the `smpp34` crate (the same Rust core as the PyPI `smpp34` server, without
//! the Python event loop, which managed 8,000-12,000 submit_sm/s on the benchmark machine).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use clap::Parser;
use smpp34::server::ESME;
use smpp34::{
    SmppConnectionInformation, SmppError, SmppServer, SmppServerListener, bind_receiver,
    bind_receiver_resp, bind_transceiver, bind_transceiver_resp, bind_transmitter,
    bind_transmitter_resp, submit_sm, submit_sm_resp,
};

/// A fast SMSC sink for benchmarks: counts submit_sm per second.
#[derive(Debug, Parser)]
#[command(name = "rampart-smsc-sink", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2775")]
    listen: SocketAddr,
    /// The system_id a bind must carry.
    #[arg(long, default_value = "rampart")]
    system_id: String,
    /// A file holding the password a bind must carry (a trailing newline is ignored).
    #[arg(long)]
    password_file: std::path::PathBuf,
    /// Send a delivery receipt (deliver_sm, esm_class 0x04, stat:DELIVRD) for every submit_sm
    /// with registered_delivery bit 0 set.
    #[arg(long)]
    receipts: bool,
    /// Delay between a submit_sm and its receipt, so the receipt follows the submit_sm_resp.
    #[arg(long, default_value_t = 5)]
    receipt_delay_ms: u64,
    /// Tokio worker threads (1 keeps the sink to one core of a 2-core machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Counters shared by the sessions and the once-a-second reporter.
#[derive(Default)]
struct Counters {
    submit_sm: AtomicU64,
    receipts_sent: AtomicU64,
    receipts_failed: AtomicU64,
    binds: AtomicU64,
    first_submit_ms: AtomicU64,
    last_submit_ms: AtomicU64,
}

struct Sink {
    system_id: String,
    password: String,
    receipts: bool,
    receipt_delay: Duration,
    counters: Arc<Counters>,
    /// Bound sessions that can take deliver_sm, by session id.
    receivers: Mutex<HashMap<String, Arc<ESME>>>,
    started_unix_s: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Sink {
    fn credentials_match(&self, system_id: &str, password: &str) -> bool {
        system_id == self.system_id && password == self.password
    }

    fn receiver(&self, session_id: &str) -> Option<Arc<ESME>> {
        self.receivers
            .lock()
            .ok()
            .and_then(|map| map.get(session_id).cloned())
    }

    /// Sends a receipt for `message_id` after the configured delay, on its own task so the
    /// submit_sm_resp is not held up.
    fn send_receipt(&self, session_id: &str, submit: &submit_sm, message_id: String) {
        let Some(esme) = self.receiver(session_id) else {
            self.counters
                .receipts_failed
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let counters = self.counters.clone();
        let delay = self.receipt_delay;
        let (from, to) = (submit.destination_addr.clone(), submit.source_addr.clone());
        let (from_ton, from_npi) = (submit.dest_addr_ton, submit.dest_addr_npi);
        let (to_ton, to_npi) = (submit.source_addr_ton, submit.source_addr_npi);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let text = format!(
                "id:{message_id} sub:001 dlvrd:001 submit date:2601010000 done date:2601010000 \
                 stat:DELIVRD err:000 text:"
            );
            let sent = esme
                .deliver_sm()
                .source_addr_ton(from_ton)
                .source_addr_npi(from_npi)
                .source_addr(from)
                .dest_addr_ton(to_ton)
                .dest_addr_npi(to_npi)
                .destination_addr(to)
                .esm_class(0x04)
                .short_message(text.into_bytes())
                .send()
                .await;
            let counter = match sent {
                Ok(_) => &counters.receipts_sent,
                Err(_) => &counters.receipts_failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }
}

#[async_trait]
impl SmppServerListener for Sink {
    async fn on_bind_transceiver(
        &self,
        bind: bind_transceiver,
        _connection: &SmppConnectionInformation,
        _session_id: &String,
    ) -> bind_transceiver_resp {
        if self.credentials_match(&bind.system_id, &bind.password) {
            self.counters.binds.fetch_add(1, Ordering::Relaxed);
            bind.accept("SINK".into(), Some(0x34))
        } else {
            bind.reject(SmppError::ESME_RINVPASWD)
        }
    }

    async fn on_bind_transmitter(
        &self,
        bind: bind_transmitter,
        _connection: &SmppConnectionInformation,
        _session_id: &String,
    ) -> bind_transmitter_resp {
        if self.credentials_match(&bind.system_id, &bind.password) {
            self.counters.binds.fetch_add(1, Ordering::Relaxed);
            bind.accept("SINK".into(), Some(0x34))
        } else {
            bind.reject(SmppError::ESME_RINVPASWD)
        }
    }

    async fn on_bind_receiver(
        &self,
        bind: bind_receiver,
        _connection: &SmppConnectionInformation,
        _session_id: &String,
    ) -> bind_receiver_resp {
        if self.credentials_match(&bind.system_id, &bind.password) {
            self.counters.binds.fetch_add(1, Ordering::Relaxed);
            bind.accept("SINK".into(), Some(0x34))
        } else {
            bind.reject(SmppError::ESME_RINVPASWD)
        }
    }

    async fn on_submit_sm(
        &self,
        submit: submit_sm,
        _connection: &SmppConnectionInformation,
        session_id: &String,
    ) -> submit_sm_resp {
        let n = self.counters.submit_sm.fetch_add(1, Ordering::Relaxed) + 1;
        let now = unix_ms();
        if n == 1 {
            self.counters.first_submit_ms.store(now, Ordering::Relaxed);
        }
        self.counters.last_submit_ms.store(now, Ordering::Relaxed);
        // Unique across restarts of the sink: its start time in seconds, then the count.
        let message_id = format!("{:x}{n:08x}", self.started_unix_s);
        if self.receipts && submit.registered_delivery & 0x01 != 0 {
            self.send_receipt(session_id, &submit, message_id.clone());
        }
        submit.accept(message_id)
    }

    async fn on_esme_bound(&self, esme: ESME, session_id: &String) {
        if esme.can_receive
            && let Ok(mut map) = self.receivers.lock()
        {
            map.insert(session_id.clone(), Arc::new(esme));
        }
    }

    async fn on_esme_unbound(&self, session_id: &String) {
        if let Ok(mut map) = self.receivers.lock() {
            map.remove(session_id);
        }
    }

    async fn on_listen_failed(&self, error: &str) {
        eprintln!("rampart-smsc-sink: {error}");
        std::process::exit(1);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let password = std::fs::read_to_string(&args.password_file)
        .with_context(|| format!("cannot read {}", args.password_file.display()))?
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args, password))
}

async fn run(args: Args, password: String) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let sink = Arc::new(Sink {
        system_id: args.system_id.clone(),
        password,
        receipts: args.receipts,
        receipt_delay: Duration::from_millis(args.receipt_delay_ms),
        counters: counters.clone(),
        receivers: Mutex::new(HashMap::new()),
        started_unix_s: unix_ms() / 1000,
    });
    let mut server = SmppServer::new(args.listen.ip(), args.listen.port(), sink);
    server.start().await;
    println!(
        "# listening on {} (receipts {}); columns: unix_ms submit_sm_total submit_sm_per_s \
         receipts_total binds_total",
        args.listen,
        if args.receipts { "on" } else { "off" }
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let total = counters.submit_sm.load(Ordering::Relaxed);
                println!(
                    "{} {total} {} {} {}",
                    unix_ms(),
                    total - last,
                    counters.receipts_sent.load(Ordering::Relaxed),
                    counters.binds.load(Ordering::Relaxed),
                );
                last = total;
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let first = counters.first_submit_ms.load(Ordering::Relaxed);
    let last_ms = counters.last_submit_ms.load(Ordering::Relaxed);
    let total = counters.submit_sm.load(Ordering::Relaxed);
    println!(
        "# total submit_sm {total}, first at {first}, last at {last_ms}, receipts sent {}, \
         receipts failed {}",
        counters.receipts_sent.load(Ordering::Relaxed),
        counters.receipts_failed.load(Ordering::Relaxed),
    );
    server.stop().await;
    Ok(())
}
