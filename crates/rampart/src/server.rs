//! Start-up and shutdown: opens (or on first start creates) the data directory, the keyring and
//! the database, starts delivery and the listeners, and on SIGTERM stops intake, finishes
//! in-flight requests, lets connectors settle, and commits everything before exiting.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::sync::{mpsc, watch};

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::data::Keyring;
use crate::data::keyring::MasterKey;
use crate::delivery::fleet::{Declared, Directory, Fleet, SANDBOX};
use crate::delivery::sandbox::Sandbox;
use crate::delivery::{Delivery, DeliveryDeps};
use crate::http::{self, AppState};
use crate::identity::api_keys::{self, StoredApiKey};
use crate::identity::{ApiKeyToken, Scopes};
use crate::network::limits::ConnectionLimit;
use crate::network::tls;
use crate::store::accounts::Account;
use crate::store::{self, Store};

/// Events waiting to be recorded before connectors are slowed down.
const EVENT_QUEUE: usize = 65_536;
/// How often the routing directory's version is checked.
const ROUTING_POLL: Duration = Duration::from_secs(1);

/// The opened data directory: configuration, database and keys.
pub struct Core {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub keyring: Arc<Keyring>,
    pub clock: SharedClock,
}

impl Core {
    /// Opens the data directory, creating it (owner-only), the master key and the database on
    /// first use.
    pub fn open(config: Config) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        if !dir.exists() {
            fs::create_dir_all(dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let master = MasterKey::load_or_create(&config.master_key_path())?;
        let store = Store::open(&config.db_path()).context("cannot open the database")?;
        let clock: SharedClock = Arc::new(SystemClock);
        let stored_keys = store.read(store::accounts::data_keys)?;
        let (keyring, new_key) = Keyring::open(&master, &stored_keys)?;
        if let Some(key) = new_key {
            let now = clock.now_ms();
            store.write_blocking(move |c| store::accounts::insert_data_key(c, &key, now))?;
        }
        Ok(Self {
            config: Arc::new(config),
            store: Arc::new(store),
            keyring: Arc::new(keyring),
            clock,
        })
    }

    /// Creates an account.
    pub fn create_account(&self, name: &str) -> anyhow::Result<Account> {
        let account = Account {
            id: store::accounts::new_account_id(),
            name: name.to_owned(),
            created_at: self.clock.now_ms(),
        };
        let record = account.clone();
        self.store
            .write_blocking(move |c| store::accounts::insert(c, &record))?;
        Ok(account)
    }

    /// Creates an API key for `account_id` and returns the token (to show once) and its record.
    pub fn create_api_key(
        &self,
        account_id: &str,
        name: &str,
        scopes: Scopes,
        expires_at: Option<crate::clock::Millis>,
    ) -> anyhow::Result<(ApiKeyToken, StoredApiKey)> {
        let (token, record) = api_keys::issue(
            &self.keyring,
            account_id,
            name,
            scopes,
            expires_at,
            self.clock.now_ms(),
        );
        let row = record.clone();
        self.store
            .write_blocking(move |c| store::api_keys::insert(c, &row))?;
        Ok((token, record))
    }

    /// On the very first start (no account yet): a default account and a key with every scope.
    fn bootstrap(&self) -> anyhow::Result<Option<ApiKeyToken>> {
        if self.store.read(store::accounts::count)? > 0 {
            return Ok(None);
        }
        let account = self.create_account("default")?;
        let (token, _) = self.create_api_key(&account.id, "initial key", Scopes::all(), None)?;
        Ok(Some(token))
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    let metrics = crate::monitor::metrics_handle();
    let core = tokio::task::block_in_place(|| Core::open(config))?;
    if let Some(token) = tokio::task::block_in_place(|| core.bootstrap())? {
        println!("Created the default account. Its API key, shown only this once (store it now):");
        println!("{}", token.reveal());
    }
    let config = core.config.clone();
    let (cert, key) = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => tls::ensure_self_signed(&config.data_dir.join("tls"))?,
        _ => anyhow::bail!("set both tls_cert_file and tls_key_file, or neither"),
    };
    let tls_config = tls::server_config(&cert, &key)?;

    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let sandbox = Sandbox::new(SANDBOX, config.sandbox.clone(), events_tx.clone());
    let mut fleet = Fleet::new(sandbox, core.keyring.clone(), core.clock.clone(), events_tx);
    let version = core.store.read(store::routing::routing_version)?;
    let mut declared = Declared::default();
    let mut directory = Directory::load(&core.store)?;
    declared.merge_into(&mut directory, &config, &core.keyring);
    let router = fleet.start(directory);
    let deps = DeliveryDeps {
        store: core.store.clone(),
        keyring: core.keyring.clone(),
        clock: core.clock.clone(),
        config: config.delivery.clone(),
    };
    let delivery = Arc::new(Delivery::start(deps, router, events_rx).await?);
    let (stop_reload, reload_stopped) = watch::channel(false);
    let reload = tokio::spawn(reload_routing(
        Reloader {
            fleet,
            declared,
            config: (*config).clone(),
            keyring: core.keyring.clone(),
        },
        core.store.clone(),
        delivery.clone(),
        version,
        reload_stopped,
    ));
    let state = AppState::new(
        core.store.clone(),
        core.keyring.clone(),
        core.clock.clone(),
        config.clone(),
        delivery.clone(),
        metrics,
    );
    let app = http::app(state.clone());

    let handle: Handle<std::net::SocketAddr> = Handle::new();
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // The connection cap sits under TLS: a connection over the cap is closed before any handshake.
    let limit = ConnectionLimit::new(DefaultAcceptor, config.limits.max_connections);
    let acceptor =
        RustlsAcceptor::new(RustlsConfig::from_config(tls_config)).acceptor(limit.clone());
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle.clone())
        .first_request_timeout(Duration::from_millis(config.limits.header_read_timeout_ms));
    server
        .http_builder()
        .http1()
        .header_read_timeout(Duration::from_millis(config.limits.header_read_timeout_ms));
    let mut servers = vec![tokio::spawn(server.serve(app.clone().into_make_service()))];
    println!(
        "Rampart listening on https://{addr} (certificate: {})",
        cert.display()
    );

    if let Some(plain) = config.plaintext_listen {
        let plain_handle: Handle<std::net::SocketAddr> = Handle::with_control(handle.control());
        let listener = std::net::TcpListener::bind(plain)
            .with_context(|| format!("cannot listen on {plain}"))?;
        listener.set_nonblocking(true)?;
        let plain_addr = listener.local_addr()?;
        tracing::warn!(%plain_addr, "plaintext HTTP listener enabled by configuration");
        println!("Rampart listening on http://{plain_addr} (plaintext, as configured)");
        let server = axum_server::from_tcp(listener)?
            .acceptor(limit)
            .handle(plain_handle);
        servers.push(tokio::spawn(server.serve(app.into_make_service())));
    }

    shutdown_signal().await;
    tracing::info!("shutting down: no new requests; finishing in-flight ones");
    state.set_ready(false);
    handle.graceful_shutdown(Some(Duration::from_secs(30)));
    for server in servers {
        let _ = server.await;
    }
    // The fleet holds an event sender: it must be gone before delivery waits for the last event.
    let _ = stop_reload.send(true);
    let _ = reload.await;
    delivery.shutdown().await;
    drop(state);
    core.store.close();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What the routing reload task keeps between reloads.
struct Reloader {
    fleet: Fleet,
    declared: Declared,
    /// The configuration whose connectors and routes are in force.
    config: Config,
    keyring: Arc<Keyring>,
}

/// The configuration file's identity, to notice edits.
fn file_stamp(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Rebuilds the router whenever the routing directory changes (the CLI edits it while the
/// server runs) or the configuration file is edited (only its connectors and routes are
/// re-read; other settings take a restart). One point read and one `stat` a second;
/// connectors that did not change keep their links.
async fn reload_routing(
    mut reloader: Reloader,
    store: Arc<Store>,
    delivery: Arc<Delivery>,
    mut seen: i64,
    mut stop: watch::Receiver<bool>,
) {
    let config_file = reloader
        .config
        .source_file
        .clone()
        .unwrap_or_else(|| reloader.config.data_dir.join("rampart.toml"));
    let mut seen_file = file_stamp(&config_file);
    let mut tick = tokio::time::interval(ROUTING_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let version = match store.read(store::routing::routing_version) {
            Ok(version) => version,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the routing version");
                continue;
            }
        };
        let file = file_stamp(&config_file);
        if version == seen && file == seen_file {
            continue;
        }
        if file != seen_file {
            seen_file = file;
            match Config::load(&reloader.config.data_dir, Some(&config_file)) {
                Ok(config) => {
                    reloader.config.connectors = config.connectors;
                    reloader.config.routes = config.routes;
                }
                Err(e) => {
                    tracing::error!(error = %e, "configuration file not reloaded; keeping its previous connectors and routes")
                }
            }
        }
        match Directory::load(&store) {
            Ok(mut directory) => {
                tracing::info!(version, "routing changed; reloading connectors and routes");
                reloader
                    .declared
                    .merge_into(&mut directory, &reloader.config, &reloader.keyring);
                reloader.fleet.apply(&delivery, directory).await;
                seen = version;
            }
            Err(e) => tracing::error!(error = %e, "cannot read the routing directory"),
        }
    }
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
