//! The application layer: one method of [`App`] per use case (send, cancel, read and list
//! messages and inbound; issue, list and revoke API keys; create and list accounts; add and
//! remove connectors, routes and numbers; retention). The HTTP API and the CLI are thin
//! adapters over it.
//!
//! This is the one place a request passes its checks: the caller's scope, the business
//! policy (before anything is stored), and the audit trail (in the same transaction as the
//! change). A rule added here holds for the API and the CLI alike.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod audit_trail;
pub mod backup;
pub mod bans;
pub mod billing;
pub mod error;
pub mod factors;
pub mod inbound;
pub mod integrity;
pub mod keys;
pub mod keywords;
pub mod messages;
pub mod notices;
pub mod opt_out_settings;
pub mod opt_outs;
pub mod passkeys;
pub mod people;
pub mod people_policy;
pub mod policies;
pub mod pumping;
pub mod restore;
pub mod retention;
pub mod routing;
pub mod sessions;
pub mod shredding;
pub mod sign_in;

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Notify;

use self::audit::AuditEvent;
pub use self::audit::{Actor, Caller};
pub use self::error::AppError;
use crate::clock::{Millis, SharedClock, SystemClock};
use crate::config::Config;
use crate::data::audit_key::AuditSigningKey;
use crate::data::keyring::MasterKey;
use crate::data::sealing::Sealer;
use crate::delivery::DeliveryDeps;
use crate::identity::key_cache::KeyCache;
use crate::identity::passkeys::Passkeys;
use crate::identity::password::{BreachedList, HashParams, PasswordWork};
use crate::identity::softlock::{Softlock, SoftlockConfig};
use crate::network::bans::Bans;
use crate::network::ip::{IpList, client_ip};
use crate::network::rate_limit::RateLimits;
use crate::policy::frequency::SendCounter;
use crate::policy::opt_out_list::OptOutList;
use crate::policy::pumping::PumpingGuard;
use crate::policy::{Policy, Rules};
use crate::store::audit::AuditRecord;
use crate::store::{Store, StoreError, Tx};

/// How long after proving who they are a signed-in person may do sensitive things (make keys,
/// change roles, remove factors) without proving it again (OWASP ASVS 4.0 V3.7.1).
pub const REAUTHENTICATION_WINDOW_MS: Millis = 10 * 60 * 1000;

/// Sign-ins that may wait for the password hasher at once; more are answered 429 at once.
const SIGN_IN_QUEUE: usize = 64;

/// How often a key's `last_used_at` is written at most: the send path stays free of writes
/// for bookkeeping, and the value is still accurate to the minute.
const TOUCH_INTERVAL_MS: Millis = 60_000;

/// A name (of a key, a user, an account) trimmed, of 1 to `max` characters, with no control
/// characters (they would forge lines in logs and terminals; OWASP ASVS 4.0 V5.1.3).
pub fn validate_name(raw: &str, max: usize) -> Result<String, AppError> {
    // Control characters are refused wherever they are, even where trimming would drop them
    // (a trailing newline): the rule the OpenAPI pattern states.
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > max || raw.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "invalid_name",
            format!("a name is 1 to {max} characters, with no control characters"),
            "name",
        ));
    }
    Ok(name.to_owned())
}

/// The opened data directory and everything the use cases need.
pub struct App {
    config: Arc<Config>,
    store: Arc<Store>,
    sealer: Sealer,
    clock: SharedClock,
    keys: KeyCache,
    policy: Arc<dyn Policy>,
    /// Every account's policy document, in memory.
    policies: policies::PolicyCache,
    /// Messages accepted per recipient, for frequency caps.
    send_counter: SendCounter,
    /// Who opted out (the policy refuses them).
    opt_out_hook: Arc<dyn policies::OptOuts>,
    /// Proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: IpList,
    /// Addresses refused on every authenticated request.
    denied_ips: IpList,
    /// Where operators may act over the instance from (empty: anywhere).
    operator_networks: IpList,
    rate_limits: RateLimits,
    bans: Bans,
    /// Password hashing, bounded in how much runs at once.
    passwords: PasswordWork,
    /// The operator's list of breached passwords (empty without one).
    breached: BreachedList,
    /// Failed sign-ins per email, and per client network: rising delays.
    sign_in_throttle: Softlock<String>,
    sign_in_network_throttle: Softlock<IpAddr>,
    /// Sign-ins that may wait for the password hasher at once.
    sign_in_queue: tokio::sync::Semaphore,
    /// The one lane to the hasher for sign-ins from networks that failed recently.
    suspect_sign_ins: tokio::sync::Semaphore,
    /// The passkey relying party (`people.public_url`), or why passkeys are unavailable.
    passkeys: Result<Passkeys, String>,
    /// Notified when messages are queued for now, so delivery looks at once.
    delivery_wake: Arc<Notify>,
    key_touches: Mutex<HashMap<String, Millis>>,
    /// Checks the audit trail's checkpoints (the scheduled integrity check).
    audit_public: ed25519_dalek::VerifyingKey,
    /// The scheduled integrity check's progress.
    integrity_watch: Mutex<integrity::IntegrityWatch>,
    /// The stored keys' summary when the keyring last loaded them.
    keys_version: Mutex<Option<crate::store::keys::KeysVersion>>,
    /// Whether opening made or re-wrapped keys (values may want moving to them).
    keys_made_at_start: bool,
    /// Billed accounts and prices, as the send path reads them (`sync_billing`).
    billing: std::sync::RwLock<billing::BillingState>,
    /// Every account's opt-outs, for the send path (kept in step with the store).
    opt_outs: RwLock<OptOutList>,
    /// `opt_outs_version` when the copy above was taken.
    opt_outs_version: Mutex<Option<i64>>,
    /// The pumping defence's counters, blocks and safe lists.
    pumping: Mutex<PumpingGuard>,
    /// `pumping_version` when the blocks and safe lists above were taken.
    pumping_version: Mutex<Option<i64>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the data directory with the wall clock, creating it (owner-only), the master key
    /// and the database on first use.
    pub fn open(config: Config) -> Result<Self, AppError> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// [`App::open`] with a given clock (tests drive time by hand).
    pub fn open_with_clock(config: Config, clock: SharedClock) -> Result<Self, AppError> {
        let dir = &config.data_dir;
        if !dir.exists() {
            fs::create_dir_all(dir)
                .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
                .map_err(|e| {
                    AppError::Setup(format!(
                        "cannot create data directory {}: {e}",
                        dir.display()
                    ))
                })?;
        }
        crate::data::permissions::require_private_data(&config)
            .map_err(|e| AppError::Setup(e.to_string()))?;
        let networks = |field: &str, entries: &[String]| {
            IpList::parse(entries.iter().map(String::as_str))
                .map_err(|e| AppError::Setup(format!("network.{field}: {e}")))
        };
        let trusted_proxies = networks("trusted_proxies", &config.network.trusted_proxies)?;
        let denied_ips = networks("denied_ips", &config.network.denied_ips)?;
        let operator_networks =
            networks("operator_allowed_ips", &config.network.operator_allowed_ips)?;
        let master = MasterKey::from_source(&keys::master_key_source(&config), true)?;
        let store = Store::open(&config.db_path())?;
        let audit_key = AuditSigningKey::load_or_create(dir, clock.clone())
            .map_err(|e| AppError::Setup(e.to_string()))?;
        let audit_public = audit_key.verifying_key();
        store.sign_audit_checkpoints(config.audit.checkpoint_every, Arc::new(audit_key));
        let (keyring, keys_made_at_start) = keys::open_keyring(&master, &store, clock.now_ms())?;
        drop(master);
        let people = &config.people;
        let passwords = PasswordWork::new(
            HashParams {
                memory_kib: people.argon2_memory_kib,
                iterations: people.argon2_iterations,
                parallelism: people.argon2_parallelism,
            },
            (people.max_concurrent_hashes > 0).then_some(people.max_concurrent_hashes),
        )
        .map_err(|e| AppError::Setup(format!("people.argon2_*: {e}")))?;
        let breached = match &people.breached_passwords_file {
            Some(path) => BreachedList::load(path).map_err(|e| {
                AppError::Setup(format!(
                    "people.breached_passwords_file {}: {e}",
                    path.display()
                ))
            })?,
            None => BreachedList::empty(),
        };
        let passkeys = passkeys::relying_party(&config);
        if let Err(e) = &passkeys {
            tracing::warn!(error = %e, "passkeys are unavailable");
        }
        let billing = billing::BillingState::load(&store)?;
        let app = Self {
            billing: std::sync::RwLock::new(billing),
            opt_outs: RwLock::new(OptOutList::default()),
            opt_outs_version: Mutex::new(None),
            pumping: Mutex::new(PumpingGuard::default()),
            pumping_version: Mutex::new(None),
            rate_limits: RateLimits::new(&config.rate_limits),
            bans: Bans::new(
                config.network.ban_after_failures,
                (config.network.ban_seconds as Millis).saturating_mul(1000),
            ),
            keys: KeyCache::new(&config.data_dir),
            policies: policies::PolicyCache::new(&config.data_dir),
            passwords,
            breached,
            passkeys,
            // The lock after 100 failures in a row is durable, in the user record; these
            // tables only slow attempts down.
            sign_in_throttle: Softlock::new(SoftlockConfig {
                hard_lock_after: None,
                ..SoftlockConfig::default()
            }),
            sign_in_queue: tokio::sync::Semaphore::new(SIGN_IN_QUEUE),
            suspect_sign_ins: tokio::sync::Semaphore::new(1),
            // A network may be an office behind one address: more free failures than a person.
            sign_in_network_throttle: Softlock::new(SoftlockConfig {
                free_failures: 10,
                hard_lock_after: None,
                ..SoftlockConfig::default()
            }),
            config: Arc::new(config),
            store: Arc::new(store),
            sealer: Sealer::new(Arc::new(keyring)),
            clock,
            policy: Arc::new(Rules),
            send_counter: SendCounter::default(),
            opt_out_hook: Arc::new(policies::NoOptOuts),
            trusted_proxies,
            denied_ips,
            operator_networks,
            delivery_wake: Arc::new(Notify::new()),
            audit_public,
            integrity_watch: Mutex::new(integrity::IntegrityWatch::default()),
            key_touches: Mutex::new(HashMap::new()),
            keys_version: Mutex::new(None),
            keys_made_at_start,
        };
        app.sync_opt_outs()?;
        app.sync_pumping()?;
        Ok(app)
    }

    /// Replaces the business policy every send is checked against.
    pub fn with_policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the answer to who opted out (the opt-out store's).
    pub fn with_opt_outs(mut self, opt_outs: Arc<dyn policies::OptOuts>) -> Self {
        self.opt_out_hook = opt_outs;
        self
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// What the delivery worker needs: the same store, sealer and clock.
    pub fn delivery_deps(&self) -> DeliveryDeps {
        DeliveryDeps {
            store: self.store.clone(),
            sealer: self.sealer.clone(),
            clock: self.clock.clone(),
            config: self.config.delivery.clone(),
            keywords: None,
        }
    }

    /// The signal delivery waits on for newly queued messages.
    pub fn delivery_wake(&self) -> Arc<Notify> {
        self.delivery_wake.clone()
    }

    fn wake_delivery(&self) {
        self.delivery_wake.notify_one();
    }

    /// The client's address for a request from `peer` (see `network::ip::client_ip`).
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        client_ip(peer, forwarded_for, &self.trusted_proxies)
    }

    /// Records a refusal in the audit trail without making the refused request wait.
    fn record_refusal(&self, event: AuditEvent) {
        self.store.write_detached(move |tx| event.record(tx));
    }

    /// Whether the database answers (readiness).
    pub fn is_healthy(&self) -> bool {
        self.store.read(|tx| tx.count_accounts()).is_ok()
    }

    /// The latest audit events, newest first: one account's, or every account's and the
    /// instance's when `account` is `None`.
    pub fn audit_trail(
        &self,
        account: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AppError> {
        Ok(self.store.read(|tx| tx.list_audit(account, limit))?)
    }

    /// Commits what is queued and closes the database.
    pub fn close(&self) {
        self.store.close();
    }

    /// Runs `change` in one transaction and, when `happened` says it changed something,
    /// records `audit` in the same transaction.
    async fn write_audited<T, F>(
        &self,
        audit: AuditEvent,
        change: F,
        happened: fn(&T) -> bool,
    ) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.store
            .write(move |tx| {
                let outcome = change(tx)?;
                if happened(&outcome) {
                    audit.record(tx)?;
                }
                Ok::<_, AppError>(outcome)
            })
            .await
    }

    /// Step-up: a session must have proved who it is within the last minutes before a
    /// sensitive change; keys and the local operator pass (they hold no password to ask for).
    pub(crate) fn require_recent_authentication(&self, caller: &Caller) -> Result<(), AppError> {
        match &caller.session {
            Some(session)
                if self.clock.now_ms() - session.authenticated_at > REAUTHENTICATION_WINDOW_MS =>
            {
                Err(AppError::forbidden(
                    "reauthentication_required",
                    "confirm your password (and second factor) again: POST /v1/auth/reauthenticate",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Records that a key was used, at most once a minute per key, without waiting.
    fn note_key_used(&self, key_id: &str, stored_last_used: Option<Millis>, now: Millis) {
        if stored_last_used.is_some_and(|at| now - at < TOUCH_INTERVAL_MS) {
            return;
        }
        let mut touches = self
            .key_touches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if touches
            .get(key_id)
            .is_some_and(|at| now - at < TOUCH_INTERVAL_MS)
        {
            return;
        }
        touches.insert(key_id.to_owned(), now);
        drop(touches);
        let key_id = key_id.to_owned();
        self.store
            .write_detached(move |tx| tx.touch_api_key(&key_id, now));
    }
}
