//! Layered configuration: built-in defaults, then a TOML file, then `RAMPART_...` environment
//! variables (nested keys with `__`, e.g. `RAMPART_LIMITS__MAX_BODY_BYTES`), then CLI flags.
//! Secrets are never inline: they are read from files named here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, keys and certificates live.
    pub data_dir: PathBuf,
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// A plaintext HTTP listener; off unless the operator asks for one.
    pub plaintext_listen: Option<SocketAddr>,
    /// Lets `plaintext_listen` bind a non-loopback address (refused otherwise).
    pub plaintext_allow_public: bool,
    /// Certificate and key (PEM). Default: a self-signed pair in `<data_dir>/tls/`.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) whose client certificates are accepted (mutual TLS). When set,
    /// the server asks every client for a certificate; one is optional, except for API keys
    /// that require it (`client_cert_sha256`). Reloaded with the pair.
    pub tls_client_ca_file: Option<PathBuf>,
    /// The master key file. Default: `<data_dir>/master.key`, created on first start.
    pub master_key_file: Option<PathBuf>,
    /// Log format: `text` or `json`.
    pub log_format: String,
    pub limits: Limits,
    pub network: Network,
    pub rate_limits: RateLimits,
    pub people: People,
    pub messaging: Messaging,
    pub delivery: Delivery,
    pub sandbox: Sandbox,
    pub audit: Audit,
    pub pumping: Pumping,
    pub backup: Backup,
    pub keys: Keys,
    pub billing: Billing,
    /// SMPP connectors declared here, beside those the CLI stores in the data directory.
    pub connectors: Vec<DeclaredConnector>,
    /// Routes declared here, beside those the CLI stores.
    pub routes: Vec<DeclaredRoute>,
    /// The file this configuration was read from, if any (watched for connector and route
    /// changes while the server runs).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

/// An SMPP connector declared in the configuration file. Its password is read from a file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredConnector {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password_file: PathBuf,
    #[serde(default)]
    pub tls: bool,
    /// Extra trusted roots (PEM) for the SMSC's certificate; implies `tls`.
    pub tls_ca_file: Option<PathBuf>,
    #[serde(default = "default_window")]
    pub window: usize,
    pub max_rate: Option<u32>,
    /// Further tunables, as for `rampart connector add --option KEY=VALUE`.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A route declared in the configuration file: destinations starting with `prefix` go
/// through `connector` (lower priority first).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRoute {
    pub prefix: String,
    pub connector: String,
    #[serde(default)]
    pub priority: i64,
}

fn default_window() -> usize {
    64
}

/// Protection against floods and slow clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A request that takes longer than this (including reading its body) is cut off.
    pub request_timeout_ms: u64,
    /// A client must send its request headers within this time.
    pub header_read_timeout_ms: u64,
    /// Requests handled at once; above it new requests get 503 at once instead of queueing.
    pub max_in_flight_requests: usize,
    /// Open TCP connections at once; a connection beyond it is closed at once.
    pub max_connections: usize,
    /// Open connections at once from one client address (an IPv6 client: its /64).
    pub max_connections_per_ip: usize,
    /// Open connections at once on the plaintext listener (its own cap).
    pub plaintext_max_connections: usize,
    /// A connection (HTTP/1.1 keep-alive or HTTP/2) with no request in flight for this long
    /// is closed.
    pub idle_connection_timeout_ms: u64,
    /// An HTTP/2 connection that sent nothing for this long is pinged...
    pub http2_keep_alive_interval_ms: u64,
    /// ...and closed if the ping is not answered within this time.
    pub http2_keep_alive_timeout_ms: u64,
    /// Concurrent streams (requests) on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

/// Who may reach the server, by address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client. Empty:
    /// the socket's peer is the client, and the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Addresses or networks refused on every authenticated request (403 `ip_denied`).
    pub denied_ips: Vec<String>,
    /// Addresses or networks operators (their keys and their sessions over the instance) must
    /// come from (403 `ip_not_allowed` otherwise). Empty: any address.
    pub operator_allowed_ips: Vec<String>,
    /// Failed authentications per minute from one address before it is banned (0: never).
    pub ban_after_failures: u32,
    /// How long a first ban lasts; each further ban of the address lasts twice as long (at
    /// most a day).
    pub ban_seconds: u64,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            denied_ips: Vec::new(),
            operator_allowed_ips: Vec::new(),
            ban_after_failures: 20,
            ban_seconds: 60,
        }
    }
}

/// Requests per second per API key and per account (0: no limit). Over the limit a request
/// gets 429 with `Retry-After`. The burst is how many may come at once (0: one second's worth).
/// The routes open before signing in (sign-in and its second step, setup, password resets,
/// invitations) are limited per client network, per minute.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub key_per_second: u32,
    pub key_burst: u32,
    pub account_per_second: u32,
    pub account_burst: u32,
    /// Requests per minute per client network on the routes open before signing in (0: no
    /// limit), and how many may come at once.
    pub sign_in_per_minute: u32,
    pub sign_in_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            key_per_second: 0,
            key_burst: 0,
            account_per_second: 0,
            account_burst: 0,
            sign_in_per_minute: 60,
            sign_in_burst: 30,
        }
    }
}

/// People who sign in: sessions, passwords, links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct People {
    /// A session unused this long ends (OWASP ASVS 4.0 V3.3.2).
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, however active (V3.3.2).
    pub session_absolute_hours: u32,
    /// An operator-supplied list of breached passwords, one per line (plain or SHA-1 hex,
    /// as Have I Been Pwned publishes them); such passwords are refused (NIST SP 800-63B
    /// 5.1.1.2).
    pub breached_passwords_file: Option<PathBuf>,
    /// Argon2id memory in KiB, passes and lanes (OWASP minimum: 19456, 2, 1). Stored hashes
    /// made with weaker settings are replaced at the next sign-in.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Password hashes computed at once (0: one per core); the rest wait, so a flood of
    /// sign-ins cannot take every core from the API.
    pub max_concurrent_hashes: usize,
    /// The address people reach the server at, for links in invitations and resets and as the
    /// passkey origin (default: https://localhost:PORT of the listener).
    pub public_url: Option<String>,
    /// How long an invitation link stays valid.
    pub invite_hours: u32,
}

impl Default for People {
    fn default() -> Self {
        Self {
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            breached_passwords_file: None,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 0,
            public_url: None,
            invite_hours: 72,
        }
    }
}

/// Spend: prepaid accounts, prices and refunds (docs/billing.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Billing {
    /// The instance's one currency (ISO 4217), shown beside every amount.
    pub currency: String,
    /// How many days after its charge a message may still be refunded.
    pub refund_window_days: u32,
}

impl Default for Billing {
    fn default() -> Self {
        Self {
            currency: "EUR".into(),
            refund_window_days: 30,
        }
    }
}

/// Message shape rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Messaging {
    /// Longest body accepted, in SMS segments.
    pub max_segments: usize,
    /// Most recipients in one send request.
    pub max_recipients: usize,
    /// How long an `Idempotency-Key` is remembered (at least 1): a retry within it gets the
    /// first answer; after it the key is free again and the record is deleted.
    pub idempotency_hours: u32,
    /// Whether new accounts start live (their messages follow the routes to carriers) rather
    /// than in sandbox mode (delivered by the simulator). Off: an operator puts an account
    /// live with `rampart account mode --live`.
    pub new_accounts_live: bool,
}

/// Delivery worker tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    /// Attempts before a message with transient errors fails.
    pub max_attempts: u32,
    /// First retry delay; it doubles each attempt up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Messages claimed from the queue at once.
    pub claim_batch: usize,
    /// Most receipts kept per connector while they wait for the carrier id they name (a
    /// receipt may beat its `submit_sm_resp`); beyond it the oldest go. Receipts for ids we
    /// never sent (a confused or hostile carrier) end up here, so it must be bounded.
    pub early_receipts_max_per_connector: usize,
    /// Receipts waiting longer than this for their carrier id are dropped.
    pub early_receipts_max_age_ms: u64,
}

/// The simulated carrier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sandbox {
    /// Delay before a normal number's delivery receipt.
    pub receipt_delay_ms: u64,
    /// Delay of the "delayed" test number's receipt.
    pub delayed_receipt_ms: u64,
    /// A file the sandbox appends every message it accepts to, one JSON line each (`to`,
    /// `from`, `body`), created owner-only: a test phone for demos and tests, such as reading
    /// a sign-in code. Off by default: it holds message text in clear.
    pub outbox_file: Option<PathBuf>,
}

/// The audit trail's checkpoints and integrity checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Audit {
    /// A signed checkpoint of the hash chain after this many events (and at shutdown).
    pub checkpoint_every: u64,
    /// How often the server checks the chain and its checkpoints, in seconds; 0: never.
    pub verify_every_seconds: u64,
    /// Every this many scheduled checks (and the first) read the whole chain; the others
    /// read only the rows added since the last clean check. 1: always the whole chain.
    pub full_verify_every: u64,
}

/// SMS pumping defence (`policy::pumping`): per account, a destination prefix (the number
/// without its last `masked_digits`) that gets too many messages in a window, or a run of
/// sequential numbers, is blocked for `block_hours`; so is a prefix of a country over its
/// velocity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Pumping {
    pub enabled: bool,
    /// The categories of messages watched (`otp`, `transactional`, `marketing`). By default
    /// the one-time codes sign-up and sign-in flows send, where SMS pumping strikes; a
    /// newsletter to a sorted contact list would look like a sequential burst.
    pub categories: Vec<String>,
    pub masked_digits: usize,
    pub window_minutes: u64,
    pub max_per_prefix: u32,
    pub max_per_country: u32,
    /// Distinct numbers with consecutive endings in one prefix and window; 0: not checked.
    pub sequential_run: u32,
    pub block_hours: u64,
}

impl Default for Pumping {
    fn default() -> Self {
        Self {
            enabled: true,
            categories: vec!["otp".into()],
            masked_digits: 3,
            window_minutes: 10,
            max_per_prefix: 100,
            max_per_country: 2000,
            sequential_run: 10,
            block_hours: 12,
        }
    }
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            verify_every_seconds: 3600,
            full_verify_every: 24,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./rampart-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            plaintext_listen: None,
            plaintext_allow_public: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            master_key_file: None,
            log_format: "text".into(),
            limits: Limits::default(),
            network: Network::default(),
            rate_limits: RateLimits::default(),
            people: People::default(),
            messaging: Messaging::default(),
            delivery: Delivery::default(),
            sandbox: Sandbox::default(),
            audit: Audit::default(),
            pumping: Pumping::default(),
            backup: Backup::default(),
            keys: Keys::default(),
            billing: Billing::default(),
            connectors: Vec::new(),
            routes: Vec::new(),
            source_file: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
            max_in_flight_requests: 4096,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            plaintext_max_connections: 1_024,
            idle_connection_timeout_ms: 60_000,
            http2_keep_alive_interval_ms: 20_000,
            http2_keep_alive_timeout_ms: 10_000,
            http2_max_concurrent_streams: 128,
        }
    }
}

impl Default for Messaging {
    fn default() -> Self {
        Self {
            max_segments: 10,
            max_recipients: 1000,
            idempotency_hours: 24,
            new_accounts_live: false,
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            claim_batch: 256,
            early_receipts_max_per_connector: 10_000,
            early_receipts_max_age_ms: 24 * 60 * 60 * 1000,
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self {
            receipt_delay_ms: 20,
            delayed_receipt_ms: 5_000,
            outbox_file: None,
        }
    }
}

/// Scheduled backups (`[backup]`): off unless `dir` is set. See docs/backup.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backup {
    /// Where the server writes its encrypted backups (created owner-only).
    pub dir: Option<PathBuf>,
    /// Minutes between two backups (fractions allowed); the first comes one period after start.
    pub every_minutes: f64,
    /// How many of the newest backups in `dir` to keep; older ones are removed.
    pub keep: usize,
}

impl Default for Backup {
    fn default() -> Self {
        Self {
            dir: None,
            every_minutes: 24.0 * 60.0,
            keep: 7,
        }
    }
}

/// The key hierarchy (`[keys]`). See docs/keys.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Keys {
    /// A shell command that prints the master key (base64 of 32 bytes), e.g. a vault or KMS
    /// CLI. When unset, the `RAMPART_MASTER_KEY` environment variable is used if set, else
    /// `master_key_file`.
    pub master_key_command: Option<String>,
    /// A data key is replaced after sealing this many values (AES-GCM with random nonces is
    /// good for 2^32 per key; the default is a quarter of that).
    pub rotate_after_encryptions: u64,
    /// A data key is replaced after this many days (0: never by age).
    pub rotate_after_days: u32,
    /// After a rotation, the server moves older rows to the new keys in the background.
    pub reencrypt_in_background: bool,
    /// Values re-encrypted per transaction (smaller: shorter writes beside live traffic).
    pub reencrypt_batch: usize,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            master_key_command: None,
            rotate_after_encryptions: 1 << 30,
            rotate_after_days: 90,
            reencrypt_in_background: true,
            reencrypt_batch: 500,
        }
    }
}

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Loads defaults, then `file` (or `<data_dir>/rampart.toml` when it exists), then the
    /// environment. `data_dir` is the one the CLI resolved, used to find the default file.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> Result<Self, ConfigError> {
        let default_file = data_dir.join("rampart.toml");
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| default_file.exists().then_some(default_file));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only variables naming a configuration key are read, so unrelated `RAMPART_*`
        // variables in the environment cannot stop the server from starting; a misspelt
        // nested key (`RAMPART_LIMITS__MAX_BODYBYTES`) is still refused.
        let known = Config::top_level_keys();
        figment = figment.merge(
            Env::prefixed("RAMPART_")
                .filter(move |key| {
                    // figment hands the key over in its original case.
                    let key = key.as_str().to_ascii_lowercase();
                    known
                        .iter()
                        .any(|k| key == *k || key.starts_with(&format!("{k}__")))
                })
                .split("__"),
        );
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.data_dir = data_dir.to_path_buf();
        config.source_file = file;
        Ok(config)
    }

    /// The names of the top-level keys, as environment variables spell them (lowercased).
    fn top_level_keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("rampart.db")
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}
