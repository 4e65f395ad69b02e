//! Start-up and shutdown: opens (or on first start creates) the data directory through the
//! application layer, starts delivery and the listeners, and on SIGTERM stops intake, finishes
//! in-flight requests, lets connectors settle, and commits everything before exiting.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::sync::{mpsc, watch};

use crate::app::{Actor, App, AppError};
use crate::config::Config;
use crate::delivery::sync::RoutingSync;
use crate::delivery::{Delivery, DeliveryError};
use crate::http::{self, AppState};
use crate::network::client_cert::ClientCertAcceptor;
use crate::network::limits::{ConnectionCaps, ConnectionLimit, plaintext_bind_allowed};
use crate::network::tls::{self, TlsError};

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory, keys or database could not be opened.
    #[error(transparent)]
    App(#[from] AppError),
    /// Delivery could not start.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Only one of the certificate and key files is configured.
    #[error("set both tls_cert_file and tls_key_file, or neither")]
    HalfTls,
    /// A plaintext listener on a non-loopback address without `plaintext_allow_public`.
    #[error(
        "plaintext_listen {0} is not a loopback address; set plaintext_allow_public = true to serve plaintext HTTP beyond this host"
    )]
    PublicPlaintext(SocketAddr),
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Events waiting to be recorded before connectors are slowed down.
const EVENT_QUEUE: usize = 65_536;

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    if let Some(plain) = config.plaintext_listen
        && !plaintext_bind_allowed(plain, config.plaintext_allow_public)
    {
        return Err(ServerError::PublicPlaintext(plain));
    }
    tls::install_crypto_provider();
    let metrics = crate::monitor::metrics_handle();
    let app = Arc::new(tokio::task::block_in_place(|| App::open(config))?);
    app.bootstrap().await?;
    // The code goes to a person at a terminal, never into a log that something captures.
    match app.prepare_setup(std::io::stdout().is_terminal()).await? {
        Some((code, None)) => {
            println!(
                "No operator yet. Make the first one with this one-time setup code (POST /v1/auth/setup):"
            );
            println!("{}", code.reveal());
        }
        Some((_, Some(path))) => println!(
            "No operator yet. The one-time setup code for the first one is in {} (POST /v1/auth/setup).",
            path.display()
        ),
        None => {}
    }
    let config = app.config().clone();
    let (cert, key) = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => tls::ensure_self_signed(&config.data_dir.join("tls"))?,
        _ => return Err(ServerError::HalfTls),
    };
    let tls_files = tls::TlsFiles {
        cert: cert.clone(),
        key,
        client_ca: config.tls_client_ca_file.clone(),
    };
    let tls_config = tls::server_config(&tls_files)?;

    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let mut deps = app.delivery_deps();
    let (keywords_tx, keywords_rx) = mpsc::channel(crate::app::keywords::KEYWORD_QUEUE);
    deps.keywords = Some(keywords_tx);
    let keywords = tokio::spawn(app.clone().act_on_keywords(keywords_rx));
    let (routing, router) = RoutingSync::start(&deps, &config, events_tx)?;
    let delivery = Arc::new(Delivery::start(deps, router, events_rx, app.delivery_wake()).await?);
    let (stop_routing, routing_stopped) = watch::channel(false);
    let routing = tokio::spawn(routing.run(delivery.clone(), routing_stopped));
    let bans = tokio::spawn(sync_bans(app.clone()));
    let keys = tokio::spawn(manage_keys(app.clone()));
    let integrity = tokio::spawn(check_integrity(app.clone()));
    let backups = scheduled_backups(app.clone())?.map(tokio::spawn);
    let state = AppState::new(app.clone(), delivery.clone(), metrics);
    let router = http::app(state.clone());

    let handle: Handle<SocketAddr> = Handle::new();
    let limits = &config.limits;
    let (listener, addr) = bind(config.listen)?;
    // The connection caps sit under TLS: a connection over a cap is closed before any handshake.
    let caps = ConnectionCaps {
        listener: "https",
        max_total: limits.max_connections,
        max_per_ip: limits.max_connections_per_ip,
        idle_timeout: Duration::from_millis(limits.idle_connection_timeout_ms),
    };
    let served_tls = RustlsConfig::from_config(tls_config);
    let tls_reload = tokio::spawn(tls::reload_on_change(served_tls.clone(), tls_files));
    // The client certificate, if any, is read once per connection, after the handshake.
    let acceptor = ClientCertAcceptor::new(
        RustlsAcceptor::new(served_tls)
            .handshake_timeout(Duration::from_millis(limits.header_read_timeout_ms))
            .acceptor(ConnectionLimit::new(DefaultAcceptor, caps)),
    );
    let server = axum_server::from_tcp(listener)
        .map_err(|source| ServerError::Listen { addr, source })?
        .acceptor(acceptor)
        .handle(handle.clone());
    let service = router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut servers = vec![tokio::spawn(with_timeouts(server, limits).serve(service))];
    println!(
        "Rampart listening on https://{addr} (certificate: {})",
        cert.display()
    );
    if let Some(ca) = &config.tls_client_ca_file {
        tracing::info!(client_ca = %ca.display(), "client certificates are asked for (mutual TLS)");
    }

    if let Some(plain) = config.plaintext_listen {
        let plain_handle: Handle<SocketAddr> = Handle::with_control(handle.control());
        let (listener, plain_addr) = bind(plain)?;
        tracing::warn!(%plain_addr, "plaintext HTTP listener enabled by configuration");
        println!("Rampart listening on http://{plain_addr} (plaintext, as configured)");
        let caps = ConnectionCaps {
            listener: "plaintext",
            max_total: limits.plaintext_max_connections,
            ..caps
        };
        let server = axum_server::from_tcp(listener)
            .map_err(|source| ServerError::Listen {
                addr: plain,
                source,
            })?
            .acceptor(ConnectionLimit::new(DefaultAcceptor, caps))
            .handle(plain_handle);
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        servers.push(tokio::spawn(with_timeouts(server, limits).serve(service)));
    }

    shutdown_signal().await;
    tracing::info!("shutting down: no new requests; finishing in-flight ones");
    state.set_ready(false);
    handle.graceful_shutdown(Some(Duration::from_secs(30)));
    for server in servers {
        let _ = server.await;
    }
    tls_reload.abort();
    // The fleet holds an event sender: it must be gone before delivery waits for the last event.
    let _ = stop_routing.send(true);
    let _ = routing.await;
    bans.abort();
    keys.abort();
    if let Err(e) = app.flush_key_uses().await {
        tracing::warn!(error = %e, "cannot store the keys' encryption counts");
    }
    integrity.abort();
    if let Some(backups) = backups {
        backups.abort();
    }
    delivery.shutdown().await;
    // Delivery dropped the keywords' sender: the replies in hand are queued, then it ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), keywords).await;
    drop(state);
    app.close();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The slow-client defences every listener has: a deadline for the first request and for each
/// request's headers; HTTP/2 keep-alive pings, answered in time, and a cap on concurrent
/// streams. (Idle connections are closed by the connection caps' wrapper.)
fn with_timeouts<A>(
    mut server: axum_server::Server<SocketAddr, A>,
    limits: &crate::config::Limits,
) -> axum_server::Server<SocketAddr, A> {
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let builder = server.http_builder();
    builder.http1().header_read_timeout(header_timeout);
    builder
        .http2()
        .keep_alive_interval(Duration::from_millis(limits.http2_keep_alive_interval_ms))
        .keep_alive_timeout(Duration::from_millis(limits.http2_keep_alive_timeout_ms))
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    server.first_request_timeout(header_timeout)
}

/// Keeps the bans in force (the CLI lifts bans there) and billing's prices and prepaid
/// accounts in step with the store, once a second;
/// once an hour forgets long-ended bans and expired idempotency keys, purges the rows of
/// deleted accounts and applies accounts' retention (also half a minute after start, so a
/// server restarted often still applies it).
async fn sync_bans(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retention_running = Arc::new(tokio::sync::Mutex::new(()));
    for round in 0u64.. {
        tick.tick().await;
        if round % 3600 == RETENTION_FIRST_ROUND {
            // On its own task: a first run over a large backlog must not hold up the bans.
            if let Ok(running) = retention_running.clone().try_lock_owned() {
                let app = app.clone();
                tokio::spawn(async move {
                    match app.apply_retention().await {
                        Ok(changed) if !changed.is_empty() => {
                            tracing::info!(accounts = changed.len(), "retention applied");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot apply retention"),
                    }
                    drop(running);
                });
            }
        }
        if let Err(e) = app.sync_bans() {
            tracing::warn!(error = %e, "cannot read the bans");
        }
        // Prices and prepaid accounts changed by the CLI reach the send path within a second.
        if let Err(e) = app.sync_billing() {
            tracing::warn!(error = %e, "cannot read the billing settings");
        }
        // The CLI changes opt-outs in the store: the send path follows within a second.
        if let Err(e) = app.sync_opt_outs() {
            tracing::warn!(error = %e, "cannot read the opt-outs");
        }
        if let Err(e) = app.sync_pumping() {
            tracing::warn!(error = %e, "cannot read the pumping blocks");
        }
        if round % 3600 == 3599
            && let Err(e) = app.purge_old_bans().await
        {
            tracing::warn!(error = %e, "cannot purge old bans");
        }
        if round % 3600 == 3599
            && let Err(e) = app.expire_idempotency_keys().await
        {
            tracing::warn!(error = %e, "cannot expire idempotency keys");
        }
        if round % 3600 == 3599
            && let Err(e) = app.purge_deleted_accounts().await
        {
            tracing::warn!(error = %e, "cannot purge deleted accounts");
        }
    }
}

/// Follows keys the CLI adds or retires (once a second), stores encryption counts and rotates
/// data keys that are due (once a minute), and after any change of keys (and once at start)
/// moves older values to the newest keys in the background, paced, one job at a time.
async fn manage_keys(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let background = app.config().keys.reencrypt_in_background;
    let mut job: Option<tokio::task::JoinHandle<()>> = None;
    let mut wanted = background;
    for round in 1u64.. {
        tick.tick().await;
        match app.sync_keys() {
            Ok(changed) => wanted |= changed && background,
            Err(e) => tracing::warn!(error = %e, "cannot read the keys"),
        }
        if round % 60 == 0 {
            match app.rotate_due_keys().await {
                Ok(rotated) if !rotated.is_empty() => {
                    tracing::info!(keys = ?rotated, "data keys rotated");
                    wanted |= background;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot rotate the data keys"),
            }
        }
        if wanted && job.as_ref().is_none_or(|j| j.is_finished()) {
            wanted = false;
            if round > 1 && !app.keyring().has_older_keys() {
                continue;
            }
            if round == 1 && !app.keys_to_move() {
                continue;
            }
            let app = app.clone();
            job = Some(tokio::spawn(async move {
                let progress = crate::app::backup::NoProgress;
                match app.reencrypt(&Actor::System, &progress, true).await {
                    Ok(report) if report.reencrypted > 0 => tracing::info!(
                        values = report.reencrypted,
                        "older values moved to the newest keys"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "background re-encryption stopped"),
                }
            }));
        }
    }
}

/// The second of each hour of the server's life when retention runs: half a minute after start.
const RETENTION_FIRST_ROUND: u64 = 30;

/// Checks the audit chain and its checkpoints every `audit.verify_every_seconds` (the first
/// time one period after start); a failure is logged, counted and audited by the use case.
async fn check_integrity(app: Arc<App>) {
    let every = app.config().audit.verify_every_seconds;
    if every == 0 {
        return;
    }
    let period = Duration::from_secs(every);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = app.check_audit_integrity().await {
            tracing::warn!(error = %e, "cannot run the integrity check");
        }
    }
}

/// The scheduled backups of `[backup]`, when `backup.dir` is set: one every
/// `backup.every_minutes`, the first one period after start; a failure is logged and the next
/// one is tried on time.
fn scheduled_backups(
    app: Arc<App>,
) -> Result<Option<impl std::future::Future<Output = ()>>, ServerError> {
    let settings = app.config().backup.clone();
    let Some(dir) = settings.dir else {
        return Ok(None);
    };
    let minutes = settings.every_minutes;
    if !(minutes.is_finite() && minutes > 0.0) || settings.keep == 0 {
        return Err(ServerError::App(AppError::Setup(
            "backup.every_minutes must be above 0 and backup.keep at least 1".into(),
        )));
    }
    let period = Duration::from_secs_f64(minutes * 60.0);
    tracing::info!(dir = %dir.display(), every_minutes = minutes, keep = settings.keep, "scheduled backups are on");
    Ok(Some(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match app.scheduled_backup().await {
                Ok(report) => tracing::info!(
                    path = %report.path.display(),
                    bytes = report.file_bytes,
                    messages = report.manifest.messages,
                    ms = report.elapsed.as_millis() as u64,
                    "backup written"
                ),
                Err(e) => tracing::warn!(error = %e, "scheduled backup failed"),
            }
        }
    }))
}

/// A non-blocking listener on `addr`, and the address it got (for port 0).
fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), ServerError> {
    let listen = || -> std::io::Result<_> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        Ok((listener, bound))
    };
    listen().map_err(|source| ServerError::Listen { addr, source })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
