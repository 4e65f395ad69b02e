//! `rampart account|apikey`: accounts and API keys, administered by the local operator
//! through the same use cases as the API (and audited the same way).

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart::app::api_keys::NewApiKey;
use rampart::app::{Actor, App, Caller};
use rampart::clock::{self, Millis};
use rampart::network::client_cert::CertFingerprint;
use rampart::network::rate_limit::{Rate, RateSettings};

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List accounts.
    List,
    /// Set the addresses or CIDR networks every key of an account may be used from (a key
    /// with its own list must pass both). No --ips: any address again.
    AllowIps {
        #[arg(long)]
        account: String,
        /// Comma-separated, e.g. `203.0.113.0/24,2001:db8::/32`.
        #[arg(long, value_delimiter = ',')]
        ips: Vec<String>,
    },
    /// Set an account's rate limits, replacing the server's (`[rate_limits]`) for it; its
    /// admins may tighten them. A limit not given is the server's again; a rate of 0 lifts
    /// it. With --show, only print them.
    RateLimits {
        #[arg(long)]
        account: String,
        /// Requests per second for each API key of the account.
        #[arg(long)]
        key_per_second: Option<u32>,
        /// Requests at once for each key (default: the rate).
        #[arg(long, requires = "key_per_second")]
        key_burst: Option<u32>,
        /// Requests per second for all the account's keys together.
        #[arg(long)]
        account_per_second: Option<u32>,
        /// Requests at once for the account (default: the rate).
        #[arg(long, requires = "account_per_second")]
        account_burst: Option<u32>,
        #[arg(long, conflicts_with_all = ["key_per_second", "account_per_second"])]
        show: bool,
    },
    /// Put an account live (its messages follow the routes to carriers) or in sandbox mode
    /// (the simulator delivers them; new accounts start there unless
    /// `messaging.new_accounts_live`).
    Mode {
        #[arg(long)]
        account: String,
        #[arg(long, conflicts_with = "sandbox", required_unless_present = "sandbox")]
        live: bool,
        #[arg(long)]
        sandbox: bool,
    },
    /// Delete an account for good by crypto-shredding: its data keys are destroyed (its
    /// numbers and bodies unreadable at once), its API keys revoked, its members and numbers
    /// removed, then its rows purged. Cannot be undone.
    Delete {
        #[arg(long)]
        account: String,
        /// The account id again, to confirm.
        #[arg(long)]
        confirm: String,
    },
    /// Set how long an account keeps messages: bodies of finished messages (and of inbound
    /// ones) erased after N days, whole messages deleted after M days. A period not given is
    /// kept for ever. With --show, only print them.
    Retention {
        #[arg(long)]
        account: String,
        /// Erase message bodies after this many days (1 to 36500); the rest is kept.
        #[arg(long)]
        erase_bodies_after_days: Option<u32>,
        /// Delete whole messages after this many days (1 to 36500, not fewer than
        /// --erase-bodies-after-days).
        #[arg(long)]
        purge_after_days: Option<u32>,
        #[arg(long, conflicts_with_all = ["erase_bodies_after_days", "purge_after_days"])]
        show: bool,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; its secret is printed once.
    Create {
        /// Account id (may be omitted when there is only one account).
        #[arg(long, conflicts_with = "operator")]
        account: Option<String>,
        /// An operator's key over the whole instance (server-wide scopes: metrics:read,
        /// connectors:read, bans:manage, accounts:manage) instead of an account's.
        #[arg(long)]
        operator: bool,
        #[arg(long, default_value = "cli key")]
        name: String,
        /// Comma-separated scopes, or `*` for every scope the key may hold. An account's key:
        /// messages:send, messages:read, messages:status, inbound:read, keys:manage,
        /// members:read, members:manage, account:manage, audit:read, billing:read. An
        /// operator's key
        /// (--operator):
        /// metrics:read, connectors:read, bans:manage, accounts:manage.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Expiry as RFC 3339, or a duration in days like `30d` or hours like `12h`.
        #[arg(long)]
        expires: Option<String>,
        /// Comma-separated addresses or CIDR networks the key may be used from (default: any).
        #[arg(long, value_delimiter = ',')]
        allowed_ips: Vec<String>,
        /// Binds the key to one client certificate (mutual TLS; the server needs
        /// `tls_client_ca_file`): its SHA-256 as 64 hex digits, colons allowed.
        #[arg(long, conflicts_with = "client_cert")]
        client_cert_sha256: Option<String>,
        /// Binds the key to the client certificate in this PEM file (the first one in it).
        #[arg(long)]
        client_cert: Option<std::path::PathBuf>,
    },
    /// List API keys (never their secrets).
    List {
        #[arg(long, conflicts_with = "operator")]
        account: Option<String>,
        /// The operators' keys instead of an account's.
        #[arg(long)]
        operator: bool,
    },
    /// Revoke an API key; it stops working on its next request.
    Revoke {
        /// The key id (`rk_` and 12 characters).
        id: String,
    },
}

pub async fn run_account(app: &App, command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Create { name } => {
            let account = app.create_account(&Actor::Operator, &name).await?;
            println!("{}", account.id);
        }
        AccountCommand::AllowIps { account, ips } => {
            let list = app
                .set_account_allowed_ips(&Actor::Operator, &account, &ips)
                .await?;
            if list.is_empty() {
                println!("{account}: keys may be used from any address");
            } else {
                println!(
                    "{account}: keys may be used only from {}",
                    list.names().join(", ")
                );
            }
        }
        AccountCommand::RateLimits {
            account,
            key_per_second,
            key_burst,
            account_per_second,
            account_burst,
            show,
        } => {
            let limits = if show {
                app.rate_limits_of(&account)?
            } else {
                let rate = |per_second: Option<u32>, burst: Option<u32>| {
                    per_second.map(|per_second| Rate {
                        per_second,
                        burst: burst.unwrap_or(0),
                    })
                };
                let settings = RateSettings {
                    api_key: rate(key_per_second, key_burst),
                    account: rate(account_per_second, account_burst),
                };
                app.set_account_rate_limits(&Actor::Operator, &account, settings)
                    .await?
            };
            let show = |rate: Rate| match rate.per_second {
                0 => "no limit".to_owned(),
                n => format!("{n}/s, bursts of {}", rate.effective_burst()),
            };
            println!(
                "{account}: each key {}; the account {}",
                show(limits.effective.api_key),
                show(limits.effective.account)
            );
        }
        AccountCommand::Delete { account, confirm } => {
            anyhow::ensure!(
                account == confirm,
                "--confirm must repeat the account id: nothing was deleted"
            );
            let destroyed = app.delete_account(&Actor::Operator, &account).await?;
            let purged = app.purge_deleted_accounts().await?;
            println!(
                "account {account} deleted: {destroyed} data keys destroyed, {purged} rows purged"
            );
        }
        AccountCommand::Retention {
            account,
            erase_bodies_after_days,
            purge_after_days,
            show,
        } => {
            let retention = if show {
                app.retention_of(&account)?
            } else {
                app.set_retention_of(
                    &Actor::Operator,
                    &account,
                    erase_bodies_after_days,
                    purge_after_days,
                )
                .await?
            };
            let days = |d: Option<u32>| match d {
                Some(d) => format!("after {d} days"),
                None => "never".to_owned(),
            };
            println!(
                "{account}: bodies erased {}; messages deleted {}",
                days(retention.erase_bodies_after_days()),
                days(retention.purge_after_days())
            );
        }
        AccountCommand::Mode { account, live, .. } => {
            app.set_account_mode(&Actor::Operator, &account, live)
                .await?;
            let mode = if live { "live" } else { "in sandbox mode" };
            println!("account {account} is {mode} (a running server applies it within a second)");
        }
        AccountCommand::List => {
            let live = app.live_accounts()?;
            for account in app.list_accounts()? {
                let created = clock::rfc3339(account.created_at);
                let mode = if live.contains(&account.id) {
                    "live"
                } else {
                    "sandbox"
                };
                println!("{}\t{}\t{created}\t{mode}", account.id, account.name);
            }
        }
    }
    Ok(())
}

pub async fn run_apikey(app: &App, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create {
            account,
            operator,
            name,
            scopes,
            expires,
            allowed_ips,
            client_cert_sha256,
            client_cert,
        } => {
            let client_cert_sha256 = match client_cert {
                Some(path) => Some(certificate_fingerprint(&path)?),
                None => client_cert_sha256,
            };
            let caller = Caller::operator(if operator {
                String::new()
            } else {
                app.account_or_only(account.as_deref())?
            });
            let now = app.clock().now_ms();
            let expires_at = expires.map(|e| parse_expiry(&e, now)).transpose()?;
            let new = NewApiKey {
                name,
                scopes,
                expires_at,
                allowed_ips,
                client_cert_sha256,
            };
            let issued = app.issue_api_key(&caller, new).await?;
            let owner = if operator {
                "the operators".to_owned()
            } else {
                format!("account {}", caller.account_id)
            };
            let bound = issued
                .key
                .client_cert_sha256
                .map(|f| format!(", bound to client certificate {f}"))
                .unwrap_or_default();
            eprintln!(
                "API key {} for {owner} with scopes {:?}{bound}; shown only this once:",
                issued.key.id, issued.key.scopes
            );
            println!("{}", issued.token.reveal());
        }
        ApiKeyCommand::List { account, operator } => {
            let caller = Caller::operator(if operator {
                String::new()
            } else {
                app.account_or_only(account.as_deref())?
            });
            list_keys(app, &caller)?;
        }
        ApiKeyCommand::Revoke { id } => {
            let caller = Caller::operator(app.api_key_account(&id).context("no such API key")?);
            app.revoke_api_key(&caller, &id)
                .await
                .with_context(|| format!("API key {id} is not live (already revoked?)"))?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// The SHA-256 of the first certificate in a PEM file, as the key stores it.
fn certificate_fingerprint(path: &std::path::Path) -> anyhow::Result<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(path)
        .with_context(|| format!("{}: no PEM certificate in it", path.display()))?;
    Ok(CertFingerprint::of_der(der.as_ref()).to_hex())
}

fn list_keys(app: &App, caller: &Caller) -> anyhow::Result<()> {
    let now = app.clock().now_ms();
    for key in app.list_api_keys(caller)? {
        let state = match (key.revoked_at, key.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            _ => "active",
        };
        let last_used = key
            .last_used_at
            .map_or_else(|| "never".to_owned(), clock::rfc3339);
        let scopes = key.scopes.to_stored();
        let certificate = key
            .client_cert_sha256
            .map(|f| format!("\tclient certificate: {f}"))
            .unwrap_or_default();
        println!(
            "{}\t{state}\t{}\t{scopes}\tlast used: {last_used}{certificate}",
            key.id, key.name
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum BanCommand {
    /// List the bans in force.
    List,
    /// Lift the ban on an address (a running server applies it within a second).
    Lift { ip: String },
}

pub async fn run_ban(app: &App, command: BanCommand) -> anyhow::Result<()> {
    match command {
        BanCommand::List => {
            for ban in app.list_bans()? {
                let until = clock::rfc3339(ban.until);
                println!("{}\tuntil {until}\tstrikes {}", ban.ip, ban.strikes);
            }
        }
        BanCommand::Lift { ip } => {
            app.lift_ban(&Actor::Operator, &ip)
                .await
                .with_context(|| format!("no ban on {ip}"))?;
            println!("lifted the ban on {ip}");
        }
    }
    Ok(())
}

/// `--expires`: RFC 3339, or a duration from now in days (`30d`) or hours (`12h`).
fn parse_expiry(text: &str, now: Millis) -> anyhow::Result<Millis> {
    let relative = |digits: &str, unit: Millis| -> anyhow::Result<Millis> {
        let n: Millis = digits.parse().context("expected a number")?;
        Ok(now.saturating_add(n.saturating_mul(unit)))
    };
    let at = if let Some(days) = text.strip_suffix('d') {
        relative(days, 86_400_000)?
    } else if let Some(hours) = text.strip_suffix('h') {
        relative(hours, 3_600_000)?
    } else {
        clock::parse_rfc3339(text).context("--expires takes RFC 3339, `30d` or `12h`")?
    };
    if at <= now {
        bail!("--expires must be in the future");
    }
    Ok(at)
}
