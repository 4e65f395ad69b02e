//! `rampart connector|route|number`: edits the routing directory in the data directory's
//! database. A running server sees every change within a second (it polls the directory's
//! version) and reloads without a restart; connectors that did not change keep their links.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rampart::delivery::fleet::SANDBOX;
use rampart::delivery::router::Route;
use rampart::delivery::smpp_config::{self, SmppOptions};
use rampart::messaging::PhoneNumber;
use rampart::server::Core;
use rampart::store::routing::{self, ConnectorRow, NumberRow, password_context};
use rampart::store::{self};
use rampart_smpp::SecretString;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum ConnectorCommand {
    /// Add a connector to a carrier.
    #[command(subcommand)]
    Add(AddConnector),
    /// List connectors (their settings; never the password).
    List,
    /// Remove a connector and the routes that use it.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum AddConnector {
    /// An SMPP 3.4 account at a carrier's SMSC.
    Smpp(SmppArgs),
}

#[derive(Args)]
pub struct SmppArgs {
    /// A name of your choice (letters, digits, `-`, `_`), used in routes and metrics.
    #[arg(long)]
    name: String,
    #[arg(long)]
    host: String,
    #[arg(long)]
    port: u16,
    #[arg(long)]
    system_id: String,
    /// A file holding the bind password (at most 8 characters; a trailing newline is ignored).
    #[arg(long)]
    password_file: PathBuf,
    /// Connect over TLS.
    #[arg(long)]
    tls: bool,
    /// A PEM file of extra trusted root certificates for the SMSC (implies --tls).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Most submissions awaiting the SMSC's answer at once.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Most submit_sm per second.
    #[arg(long)]
    max_rate: Option<u32>,
    /// Further tunables as KEY=VALUE (repeatable): system_type, bind (transceiver |
    /// transmitter_receiver), concatenation (udh | sar | payload), gsm7_packed,
    /// tls_server_name, tls_client_cert_file, tls_client_key_file (mutual TLS),
    /// enquire_link_ms, response_timeout_ms, connect_timeout_ms,
    /// reconnect_min_ms, reconnect_max_ms, throttle_backoff_ms, max_throttle_retries.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
}

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Send destinations starting with PREFIX through a connector (priority: lower first).
    Add {
        /// `+` and digits, e.g. `+44`; `""` matches every destination.
        #[arg(long, allow_hyphen_values = true)]
        prefix: String,
        #[arg(long)]
        connector: String,
        #[arg(long, default_value_t = 0)]
        priority: i64,
    },
    /// List routes.
    List,
    /// Remove a route.
    Remove {
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        connector: String,
    },
}

#[derive(Subcommand)]
pub enum NumberCommand {
    /// Assign a number (E.164 like +447700900123, or a short code like 12345) to an account;
    /// messages sent to it arrive in that account's `GET /v1/inbound`.
    Add {
        number: String,
        #[arg(long)]
        account: String,
    },
    /// List numbers and their accounts.
    List,
    /// Remove a number.
    Remove { number: String },
}

pub fn run_connector(core: &Core, command: ConnectorCommand) -> anyhow::Result<()> {
    match command {
        ConnectorCommand::Add(AddConnector::Smpp(args)) => add_smpp(core, args),
        ConnectorCommand::List => {
            for row in core.store.read(routing::list_connectors)? {
                println!(
                    "{}\t{}\t{}:{}\tsystem_id={}\ttls={}{}\twindow={}\tmax_rate={}\toptions={}",
                    row.name,
                    row.kind,
                    row.host,
                    row.port,
                    row.system_id,
                    row.tls,
                    row.tls_ca_file
                        .as_deref()
                        .map(|ca| format!(" (ca {ca})"))
                        .unwrap_or_default(),
                    row.window,
                    row.max_rate
                        .map_or_else(|| "none".to_owned(), |r| r.to_string()),
                    row.options
                );
            }
            Ok(())
        }
        ConnectorCommand::Remove { name } => {
            let target = name.clone();
            match core
                .store
                .write_blocking(move |c| routing::delete_connector(c, &target))?
            {
                None => bail!("no connector {name}"),
                Some(routes) => println!("removed connector {name} and {routes} route(s)"),
            }
            Ok(())
        }
    }
}

fn add_smpp(core: &Core, args: SmppArgs) -> anyhow::Result<()> {
    let valid_name = !args.name.is_empty()
        && args.name.len() <= 64
        && args
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        bail!("--name must be 1 to 64 letters, digits, `-` or `_`");
    }
    if args.name == SANDBOX {
        bail!("`sandbox` is the built-in connector's name");
    }
    let password = Zeroizing::new(
        std::fs::read_to_string(&args.password_file)
            .with_context(|| format!("cannot read {}", args.password_file.display()))?,
    );
    let password = password.trim_end_matches(['\r', '\n']);
    let options = parse_options(&args.name, &args.options)?;
    let tls_ca_file = args
        .tls_ca
        .as_ref()
        .map(|path| {
            std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))
        })
        .transpose()?;
    let ca_pem = tls_ca_file
        .as_ref()
        .map(std::fs::read_to_string)
        .transpose()
        .context("cannot read the --tls-ca file")?;
    let mut row = ConnectorRow {
        name: args.name.clone(),
        kind: "smpp".into(),
        host: args.host,
        port: args.port,
        system_id: args.system_id,
        password_sealed: Vec::new(),
        tls: args.tls || tls_ca_file.is_some(),
        tls_ca_file: tls_ca_file.map(|p| p.display().to_string()),
        window: args.window,
        max_rate: args.max_rate,
        options,
        created_at: core.clock.now_ms(),
    };
    // Refuse now what the server could not start later.
    smpp_config::build(&row, SecretString::from(password.to_owned()), ca_pem)?;
    row.password_sealed = core
        .keyring
        .encrypt(password.as_bytes(), password_context(&row.name).as_bytes())?;
    let stored = row.clone();
    if !core
        .store
        .write_blocking(move |c| routing::insert_connector(c, &stored))?
    {
        bail!(
            "a connector named {} exists already; remove it first",
            row.name
        );
    }
    println!("added connector {}", row.name);
    Ok(())
}

/// `KEY=VALUE` pairs into the options JSON, checked against [`SmppOptions`]. Values that read
/// as JSON (numbers, booleans) are taken as such, anything else as a string.
fn parse_options(name: &str, pairs: &[String]) -> anyhow::Result<String> {
    let mut object = serde_json::Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--option {pair}: expected KEY=VALUE"))?;
        let value = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| serde_json::Value::String(value.to_owned()));
        object.insert(key.trim().to_owned(), value);
    }
    let json = serde_json::Value::Object(object).to_string();
    SmppOptions::parse(name, &json)?;
    Ok(json)
}

pub fn run_route(core: &Core, command: RouteCommand) -> anyhow::Result<()> {
    match command {
        RouteCommand::Add {
            prefix,
            connector,
            priority,
        } => {
            let digits = prefix.strip_prefix('+');
            if !(prefix.is_empty()
                || digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
            {
                bail!("--prefix must be `+` and digits (like +44), or empty for every destination");
            }
            let name = connector.clone();
            let exists =
                connector == SANDBOX || core.store.read(|c| routing::connector_exists(c, &name))?;
            if !exists {
                bail!("no connector {connector}: add it first (`rampart connector add ...`)");
            }
            let route = Route {
                prefix,
                connector,
                priority,
            };
            let now = core.clock.now_ms();
            let stored = route.clone();
            core.store
                .write_blocking(move |c| routing::upsert_route(c, &stored, now))?;
            println!(
                "route {:?} -> {} (priority {})",
                route.prefix, route.connector, route.priority
            );
        }
        RouteCommand::List => {
            let routes = core.store.read(routing::list_routes)?;
            if routes.is_empty() {
                println!("\"\"\t{SANDBOX}\t0\t(default: no route configured)");
            }
            for route in routes {
                println!(
                    "{:?}\t{}\t{}",
                    route.prefix, route.connector, route.priority
                );
            }
        }
        RouteCommand::Remove { prefix, connector } => {
            let (p, c) = (prefix.clone(), connector.clone());
            if !core
                .store
                .write_blocking(move |conn| routing::delete_route(conn, &p, &c))?
            {
                bail!("no route {prefix:?} -> {connector}");
            }
            println!("removed route {prefix:?} -> {connector}");
        }
    }
    Ok(())
}

/// An E.164 number (normalised) or a short code (digits only).
fn parse_number(number: &str) -> anyhow::Result<String> {
    if number.trim().starts_with('+') {
        return Ok(PhoneNumber::parse(number)?.as_str().to_owned());
    }
    let digits = number.trim();
    if (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(digits.to_owned());
    }
    bail!("a number is + and the international number, or a short code of 3 to 15 digits");
}

pub fn run_number(core: &Core, command: NumberCommand) -> anyhow::Result<()> {
    match command {
        NumberCommand::Add { number, account } => {
            let number = parse_number(&number)?;
            let id = account.clone();
            if core.store.read(|c| store::accounts::get(c, &id))?.is_none() {
                bail!("no account {account}");
            }
            let row = NumberRow {
                number: number.clone(),
                account_id: account.clone(),
                created_at: core.clock.now_ms(),
            };
            if !core
                .store
                .write_blocking(move |c| routing::insert_number(c, &row))?
            {
                bail!("{number} is assigned already; remove it first");
            }
            println!("{number} -> {account}");
        }
        NumberCommand::List => {
            for row in core.store.read(|c| routing::list_numbers(c, None))? {
                println!("{}\t{}", row.number, row.account_id);
            }
        }
        NumberCommand::Remove { number } => {
            let number = parse_number(&number).unwrap_or(number);
            let target = number.clone();
            if !core
                .store
                .write_blocking(move |c| routing::delete_number(c, &target))?
            {
                bail!("no number {number}");
            }
            println!("removed {number}");
        }
    }
    Ok(())
}
