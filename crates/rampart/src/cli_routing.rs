//! `rampart connector|route|number`: edits the routing directory in the data directory's
//! database. A running server sees every change within a second (it polls the directory's
//! version) and reloads without a restart; connectors that did not change keep their links.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use rampart::app::routing::NewSmppConnector;
use rampart::app::{Actor, App, AppError};
use rampart::delivery::fleet::SANDBOX;
use rampart::delivery::router::Route;
use secrecy::SecretString;
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

pub async fn run_connector(app: &App, command: ConnectorCommand) -> anyhow::Result<()> {
    match command {
        ConnectorCommand::Add(AddConnector::Smpp(args)) => {
            let row = app
                .add_smpp_connector(&Actor::Operator, args.into_new()?)
                .await?;
            println!("added connector {}", row.name);
        }
        ConnectorCommand::List => {
            for row in app.list_connectors()? {
                let ca = row.tls_ca_file.as_deref().map(|ca| format!(" (ca {ca})"));
                let rate = row
                    .max_rate
                    .map_or_else(|| "none".to_owned(), |r| r.to_string());
                println!(
                    "{}\t{}\t{}:{}\tsystem_id={}\ttls={}{}\twindow={}\tmax_rate={rate}\toptions={}",
                    row.name,
                    row.kind,
                    row.host,
                    row.port,
                    row.system_id,
                    row.tls,
                    ca.unwrap_or_default(),
                    row.window,
                    row.options
                );
            }
        }
        ConnectorCommand::Remove { name } => {
            let routes = app
                .remove_connector(&Actor::Operator, &name)
                .await
                .with_context(|| format!("no connector {name}"))?;
            println!("removed connector {name} and {routes} route(s)");
        }
    }
    Ok(())
}

impl SmppArgs {
    /// The connector to add, with the bind password read from its file.
    fn into_new(self) -> anyhow::Result<NewSmppConnector> {
        rampart::data::permissions::require_owner_only(&[&self.password_file])?;
        let password = Zeroizing::new(
            std::fs::read_to_string(&self.password_file)
                .with_context(|| format!("cannot read {}", self.password_file.display()))?,
        );
        Ok(NewSmppConnector {
            name: self.name,
            host: self.host,
            port: self.port,
            system_id: self.system_id,
            password: SecretString::from(password.trim_end_matches(['\r', '\n']).to_owned()),
            tls: self.tls,
            tls_ca_file: self.tls_ca,
            window: self.window,
            max_rate: self.max_rate,
            options: self.options,
        })
    }
}

pub async fn run_route(app: &App, command: RouteCommand) -> anyhow::Result<()> {
    match command {
        RouteCommand::Add {
            prefix,
            connector,
            priority,
        } => {
            let route = Route {
                prefix,
                connector,
                priority,
            };
            app.set_route(&Actor::Operator, route.clone())
                .await
                .map_err(|e| match e {
                    AppError::NotFound(_) => anyhow!(
                        "no connector {}: add it first (`rampart connector add ...`)",
                        route.connector
                    ),
                    other => other.into(),
                })?;
            let (p, c, n) = (&route.prefix, &route.connector, route.priority);
            println!("route {p:?} -> {c} (priority {n})");
        }
        RouteCommand::List => list_routes(app)?,
        RouteCommand::Remove { prefix, connector } => {
            app.remove_route(&Actor::Operator, &prefix, &connector)
                .await
                .with_context(|| format!("no route {prefix:?} -> {connector}"))?;
            println!("removed route {prefix:?} -> {connector}");
        }
    }
    Ok(())
}

fn list_routes(app: &App) -> anyhow::Result<()> {
    let routes = app.list_routes()?;
    if routes.is_empty() {
        println!("\"\"\t{SANDBOX}\t0\t(default: no route configured)");
    }
    for route in routes {
        let (p, c, n) = (&route.prefix, &route.connector, route.priority);
        println!("{p:?}\t{c}\t{n}");
    }
    Ok(())
}

pub async fn run_number(app: &App, command: NumberCommand) -> anyhow::Result<()> {
    match command {
        NumberCommand::Add { number, account } => {
            let row = app
                .assign_number(&Actor::Operator, &number, &account)
                .await
                .map_err(|e| match e {
                    AppError::NotFound(_) => anyhow!("no account {account}"),
                    other => other.into(),
                })?;
            println!("{} -> {}", row.number, row.account_id);
        }
        NumberCommand::List => {
            for row in app.list_numbers()? {
                println!("{}\t{}", row.number, row.account_id);
            }
        }
        NumberCommand::Remove { number } => {
            let removed = app
                .remove_number(&Actor::Operator, &number)
                .await
                .with_context(|| format!("no number {number}"))?;
            println!("removed {removed}");
        }
    }
    Ok(())
}
