//! The `rampart` command: `serve` runs the server; the other subcommands administer the data
//! directory directly (they work whether or not the server is running).

mod cli_routing;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rampart::clock;
use rampart::config::Config;
use rampart::identity::Scopes;
use rampart::server::{self, Core};
use rampart::store;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Self-hosted SMS API platform with security built into every layer"
)]
struct Cli {
    /// Where the database, keys and certificates live.
    #[arg(
        long,
        global = true,
        env = "RAMPART_DATA_DIR",
        default_value = "./rampart-data"
    )]
    data_dir: PathBuf,
    /// A TOML configuration file (default: <data-dir>/rampart.toml when present).
    #[arg(long, global = true, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTPS API, delivery worker).
    Serve {
        /// Address for the HTTPS listener.
        #[arg(long, env = "RAMPART_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage connectors to carriers (a running server picks changes up within a second).
    #[command(subcommand)]
    Connector(cli_routing::ConnectorCommand),
    /// Manage routes: which connector carries which destinations.
    #[command(subcommand)]
    Route(cli_routing::RouteCommand),
    /// Manage our numbers: which account receives the messages sent to each.
    #[command(subcommand)]
    Number(cli_routing::NumberCommand),
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List accounts.
    List,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key; its secret is printed once.
    Create {
        /// Account id (may be omitted when there is only one account).
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value = "cli key")]
        name: String,
        /// Comma-separated scopes (messages:send, messages:read, keys:manage, metrics:read,
        /// inbound:read, connectors:read, or *).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Expiry as RFC 3339, or a duration in days like `30d` or hours like `12h`.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List API keys (never their secrets).
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Revoke an API key; it stops working on its next request.
    Revoke {
        /// The key id (`rk_` and 12 characters).
        id: String,
    },
}

fn init_logging(config: &Config) {
    let spec = std::env::var("RAMPART_LOG").ok();
    let filter = rampart::monitor::logging::log_filter(spec.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(&cli.data_dir, cli.config.as_deref())?;
    init_logging(&config);
    match cli.command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(server::serve(config))
        }
        Command::Account(command) => {
            let core = Core::open(config)?;
            match command {
                AccountCommand::Create { name } => {
                    let account = core.create_account(&name)?;
                    println!("{}", account.id);
                }
                AccountCommand::List => {
                    for account in core.store.read(store::accounts::list)? {
                        println!(
                            "{}\t{}\t{}",
                            account.id,
                            account.name,
                            clock::rfc3339(account.created_at)
                        );
                    }
                }
            }
            core.store.close();
            Ok(())
        }
        Command::Apikey(command) => {
            let core = Core::open(config)?;
            run_apikey(&core, command)?;
            core.store.close();
            Ok(())
        }
        Command::Connector(command) => {
            with_core(config, |core| cli_routing::run_connector(core, command))
        }
        Command::Route(command) => with_core(config, |core| cli_routing::run_route(core, command)),
        Command::Number(command) => {
            with_core(config, |core| cli_routing::run_number(core, command))
        }
    }
}

/// Opens the data directory, runs `f`, and closes the store (committing) even when `f` fails.
fn with_core(config: Config, f: impl FnOnce(&Core) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let core = Core::open(config)?;
    let result = f(&core);
    core.store.close();
    result
}

fn resolve_account(core: &Core, account: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = account {
        if core.store.read(|c| store::accounts::get(c, &id))?.is_none() {
            bail!("no account {id}");
        }
        return Ok(id);
    }
    let accounts = core.store.read(store::accounts::list)?;
    match accounts.as_slice() {
        [only] => Ok(only.id.clone()),
        [] => bail!(
            "there is no account yet: run `rampart account create --name NAME` or start the server once"
        ),
        _ => bail!("there are several accounts: name one with --account"),
    }
}

fn parse_expiry(text: &str, now: clock::Millis) -> anyhow::Result<clock::Millis> {
    let relative = |digits: &str, unit: clock::Millis| -> anyhow::Result<clock::Millis> {
        let n: clock::Millis = digits.parse().context("expected a number")?;
        Ok(now + n * unit)
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

fn run_apikey(core: &Core, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create {
            account,
            name,
            scopes,
            expires,
        } => {
            let account = resolve_account(core, account)?;
            let scopes = Scopes::parse(scopes.iter().map(String::as_str))?;
            if scopes.is_empty() {
                bail!("a key needs at least one scope");
            }
            let expires_at = expires
                .map(|e| parse_expiry(&e, core.clock.now_ms()))
                .transpose()?;
            let (token, record) = core.create_api_key(&account, &name, scopes, expires_at)?;
            eprintln!(
                "API key {} for account {account} with scopes {:?}; shown only this once:",
                record.id, scopes
            );
            println!("{}", token.reveal());
        }
        ApiKeyCommand::List { account } => {
            let account = resolve_account(core, account)?;
            for key in core.store.read(|c| store::api_keys::list(c, &account))? {
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else if key.expires_at.is_some_and(|at| at <= core.clock.now_ms()) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\tlast used: {}",
                    key.id,
                    state,
                    key.name,
                    key.scopes.to_stored(),
                    key.last_used_at
                        .map_or_else(|| "never".to_owned(), clock::rfc3339)
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let found = core
                .store
                .read(|c| store::api_keys::find(c, &id))?
                .context("no such API key")?;
            let now = core.clock.now_ms();
            let account = found.account_id.clone();
            let key_id = id.clone();
            if !core
                .store
                .write_blocking(move |c| store::api_keys::revoke(c, &account, &key_id, now))?
            {
                bail!("API key {id} is already revoked");
            }
            // Running servers drop their cached key records on their next request.
            rampart::identity::key_cache::announce_change(&core.config.data_dir)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
