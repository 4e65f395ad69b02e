//! The `rampart` command: `serve` runs the server; the other subcommands administer the data
//! directory directly (they work whether or not the server is running).

mod cli_admin;
mod cli_backup;
mod cli_billing;
mod cli_keys;
mod cli_optout;
mod cli_people;
mod cli_policy;
mod cli_pumping;
mod cli_routing;
mod cli_verify;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rampart::app::App;
use rampart::config::Config;
use rampart::server;

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
    Account(cli_admin::AccountCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(cli_admin::ApiKeyCommand),
    /// Manage connectors to carriers (a running server picks changes up within a second).
    #[command(subcommand)]
    Connector(cli_routing::ConnectorCommand),
    /// Manage routes: which connector carries which destinations.
    #[command(subcommand)]
    Route(cli_routing::RouteCommand),
    /// Manage our numbers: which account receives the messages sent to each.
    #[command(subcommand)]
    Number(cli_routing::NumberCommand),
    /// Show or set an account's policy: destinations, senders, content, quiet hours,
    /// frequency caps (docs/policy.md).
    #[command(subcommand)]
    Policy(cli_policy::PolicyCommand),
    /// Manage people: operators and members of accounts.
    #[command(subcommand)]
    User(cli_people::UserCommand),
    /// Manage the members of an account and their roles.
    #[command(subcommand)]
    Member(cli_people::MemberCommand),
    /// Spend: prepaid accounts, prices, credits, balances, the ledger, refunds.
    #[command(subcommand)]
    Billing(cli_billing::BillingCommand),
    /// Addresses banned for failing authentication again and again.
    #[command(subcommand)]
    Ban(cli_admin::BanCommand),
    /// An account's opt-outs (numbers that get no more messages) and opt-out settings.
    #[command(subcommand)]
    Optout(cli_optout::OptOutCommand),
    /// SMS pumping defence: blocked destination ranges and accounts' safe lists.
    #[command(subcommand)]
    Pumping(cli_pumping::PumpingCommand),
    /// Manage the key hierarchy: rotate data keys and the master key, re-encrypt, retire.
    #[command(subcommand)]
    Keys(cli_keys::KeysCommand),
    /// Check integrity: the audit hash chain, its signed checkpoints, every sealed field of
    /// messages and inbound, and owner-only files. Read-only; exits 1 on any finding.
    Verify {
        /// The audit signing key's public half (64 hex digits, `audit-signing.pub`) kept
        /// elsewhere: checkpoints re-signed with a key planted in the directory then fail.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Take an encrypted backup of the database while the server runs (see docs/backup.md).
    Backup {
        /// A new file, or a directory to write `rampart-backup-<time>.rbk` into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a backup whole, then make it the database of --data-dir (empty or new unless
    /// --force). Nothing changes unless every check passes.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The master key file of the instance that made the backup, when --data-dir does
        /// not hold it yet (it is copied there). Default: the data directory's own.
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        /// Replace the database of a data directory that has one (the old one is set aside).
        /// Stop the server on it first.
        #[arg(long)]
        force: bool,
        /// Only check the backup (manifest, chunks, digests); change nothing.
        #[arg(long, conflicts_with = "force")]
        check: bool,
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
    if let Command::Verify { public_key } = &cli.command {
        // Before anything opens the directory for writing: verify changes nothing.
        if !cli_verify::run(&config, public_key.as_deref())? {
            std::process::exit(1);
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Command::Serve { listen } = cli.command {
        if let Some(listen) = listen {
            config.listen = listen;
        }
        return Ok(runtime.block_on(server::serve(config))?);
    }
    if let Command::Restore {
        from,
        master_key_file,
        force,
        check,
    } = cli.command
    {
        return cli_backup::run_restore(&config, from, master_key_file, force, check);
    }
    if matches!(cli.command, Command::Backup { .. }) && !config.db_path().exists() {
        anyhow::bail!(
            "no database in {}: nothing to back up (is --data-dir right?)",
            config.data_dir.display()
        );
    }
    // The admin commands work on the data directory directly, through the same use cases as
    // the API; the store commits everything before the directory is closed.
    let app = App::open(config)?;
    let outcome = runtime.block_on(async {
        // Whichever command comes first sets the data directory up the same way.
        app.bootstrap().await?;
        match cli.command {
            Command::Serve { .. } | Command::Verify { .. } | Command::Restore { .. } => Ok(()),
            Command::Backup { out } => cli_backup::run_backup(&app, out).await,
            Command::Account(command) => cli_admin::run_account(&app, command).await,
            Command::Apikey(command) => cli_admin::run_apikey(&app, command).await,
            Command::Connector(command) => cli_routing::run_connector(&app, command).await,
            Command::Route(command) => cli_routing::run_route(&app, command).await,
            Command::Number(command) => cli_routing::run_number(&app, command).await,
            Command::Ban(command) => cli_admin::run_ban(&app, command).await,
            Command::Billing(command) => cli_billing::run_billing(&app, command).await,
            Command::Keys(command) => cli_keys::run_keys(&app, command).await,
            Command::Policy(command) => cli_policy::run_policy(&app, command).await,
            Command::Optout(command) => cli_optout::run_optout(&app, command).await,
            Command::Pumping(command) => cli_pumping::run_pumping(&app, command).await,
            Command::User(command) => cli_people::run_user(&app, command).await,
            Command::Member(command) => cli_people::run_member(&app, command).await,
        }
    });
    app.close();
    outcome
}
