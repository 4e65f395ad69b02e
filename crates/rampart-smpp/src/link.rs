//! One link to the SMSC: the TCP (or TLS) connection(s), the bind(s), and the merged stream of
//! what the SMSC sends. A transceiver link has one session; a transmitter/receiver link two.

use std::{pin::Pin, str::FromStr, time::Duration};

use futures_util::{Stream, StreamExt, stream};
use rusmpp::{
    pdus::{BindReceiver, BindTransceiver, BindTransmitter},
    types::COctetString,
    values::{InterfaceVersion, Npi, Ton},
};
use rusmppc::{Client, ConnectionBuilder, Event, error::Error as ClientError};
use secrecy::ExposeSecret;
use tokio::{net::TcpStream, time::timeout};

use crate::{BindMode, SmppConfig, SmppError, tls::TlsSetup};

/// Largest PDU we accept from the SMSC: a full message_payload TLV plus the fixed fields.
const MAX_COMMAND_LENGTH: usize = 70_000;

/// What a session was bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionRole {
    Transceiver,
    Transmitter,
    Receiver,
}

/// Everything the SMSC sends, from every session of the link, tagged with its session.
pub(crate) type LinkEvents = Pin<Box<dyn Stream<Item = (SessionRole, Event)> + Send>>;

/// The bound sessions of a link.
#[derive(Debug)]
pub(crate) struct Sessions {
    sessions: Vec<(SessionRole, Client)>,
}

impl Sessions {
    /// The session that carries `submit_sm`.
    pub(crate) fn submitter(&self) -> Option<&Client> {
        self.sessions
            .iter()
            .find(|(role, _)| *role != SessionRole::Receiver)
            .map(|(_, client)| client)
    }

    /// The session with this role, to answer on the session a request came from.
    pub(crate) fn session(&self, role: SessionRole) -> Option<&Client> {
        self.sessions
            .iter()
            .find(|(candidate, _)| *candidate == role)
            .map(|(_, client)| client)
    }

    /// Unbinds every session (each bounded by `wait`), then closes them.
    pub(crate) async fn unbind_and_close(&self, wait: Duration) {
        for (role, client) in &self.sessions {
            match timeout(wait, client.unbind()).await {
                Ok(Ok(())) => tracing::info!(?role, "unbound from the SMSC"),
                Ok(Err(error)) => tracing::warn!(?role, %error, "unbind failed"),
                Err(_) => tracing::warn!(?role, "unbind timed out"),
            }
        }
        self.close(wait).await;
    }

    /// Closes every session without unbinding (the link is already gone).
    pub(crate) async fn close(&self, wait: Duration) {
        for (_, client) in &self.sessions {
            if timeout(wait, client.close_and_wait()).await.is_err() {
                tracing::warn!("closing an SMPP session timed out");
            }
        }
    }
}

/// A bound link.
pub(crate) struct Link {
    pub sessions: Sessions,
    pub events: LinkEvents,
}

impl Link {
    /// Connects and binds every session the bind mode needs.
    pub(crate) async fn establish(
        config: &SmppConfig,
        tls: Option<&TlsSetup>,
    ) -> Result<Self, SmppError> {
        match config.bind {
            BindMode::Transceiver => {
                let (client, events) = open_session(config, tls, SessionRole::Transceiver).await?;
                Ok(Self {
                    sessions: Sessions {
                        sessions: vec![(SessionRole::Transceiver, client)],
                    },
                    events,
                })
            }
            BindMode::TransmitterReceiver => {
                let (transmitter, transmitter_events) =
                    open_session(config, tls, SessionRole::Transmitter).await?;
                let receiver = open_session(config, tls, SessionRole::Receiver).await;
                let (receiver, receiver_events) = match receiver {
                    Ok(opened) => opened,
                    Err(error) => {
                        let half = Sessions {
                            sessions: vec![(SessionRole::Transmitter, transmitter)],
                        };
                        half.unbind_and_close(config.response_timeout).await;
                        return Err(error);
                    }
                };
                Ok(Self {
                    sessions: Sessions {
                        sessions: vec![
                            (SessionRole::Transmitter, transmitter),
                            (SessionRole::Receiver, receiver),
                        ],
                    },
                    events: Box::pin(stream::select(transmitter_events, receiver_events)),
                })
            }
        }
    }
}

fn link_error(what: &str, error: impl std::fmt::Display) -> SmppError {
    SmppError::Link(format!("{what}: {error}"))
}

fn c_string<const MAX: usize>(what: &str, value: &str) -> Result<COctetString<1, MAX>, SmppError> {
    COctetString::from_str(value).map_err(|_| link_error(what, "not a valid C string"))
}

async fn open_session(
    config: &SmppConfig,
    tls: Option<&TlsSetup>,
    role: SessionRole,
) -> Result<(Client, LinkEvents), SmppError> {
    let address = (config.host.as_str(), config.port);
    let tcp = timeout(config.connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| link_error("connect", "timed out"))?
        .map_err(|error| link_error("connect", error))?;
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot disable Nagle on the SMPP socket");
    }
    let builder = ConnectionBuilder::new()
        .max_command_length(MAX_COMMAND_LENGTH)
        .enquire_link_interval(config.enquire_link_interval)
        .enquire_link_response_timeout(config.response_timeout)
        .response_timeout(config.response_timeout)
        // We bind as SMPP 3.4; rusmppc otherwise insists on 5.0.
        .disable_interface_version_check();
    let (client, events): (Client, LinkEvents) = match tls {
        Some(tls) => {
            let stream = timeout(
                config.connect_timeout,
                tls.connector.connect(tls.server_name.clone(), tcp),
            )
            .await
            .map_err(|_| link_error("TLS handshake", "timed out"))?
            .map_err(|error| link_error("TLS handshake", error))?;
            let (client, events) = builder.connected(stream);
            (client, Box::pin(events.map(move |event| (role, event))))
        }
        None => {
            let (client, events) = builder.connected(tcp);
            (client, Box::pin(events.map(move |event| (role, event))))
        }
    };
    if let Err(error) = bind(&client, config, role).await {
        if timeout(config.response_timeout, client.close_and_wait())
            .await
            .is_err()
        {
            tracing::warn!("closing a session that failed to bind timed out");
        }
        return Err(error);
    }
    tracing::info!(?role, host = %config.host, port = config.port, "bound to the SMSC");
    Ok((client, events))
}

async fn bind(client: &Client, config: &SmppConfig, role: SessionRole) -> Result<(), SmppError> {
    let system_id = c_string("system_id", &config.system_id)?;
    let password = c_string("password", config.password.expose_secret())?;
    let system_type = c_string("system_type", &config.system_type)?;
    let result = match role {
        SessionRole::Transceiver => client
            .bind_transceiver(
                BindTransceiver::builder()
                    .system_id(system_id)
                    .password(password)
                    .system_type(system_type)
                    .interface_version(InterfaceVersion::Smpp3_4)
                    .addr_ton(Ton::Unknown)
                    .addr_npi(Npi::Unknown)
                    .address_range(COctetString::empty())
                    .build(),
            )
            .await
            .map(drop),
        SessionRole::Transmitter => client
            .bind_transmitter(
                BindTransmitter::builder()
                    .system_id(system_id)
                    .password(password)
                    .system_type(system_type)
                    .interface_version(InterfaceVersion::Smpp3_4)
                    .addr_ton(Ton::Unknown)
                    .addr_npi(Npi::Unknown)
                    .address_range(COctetString::empty())
                    .build(),
            )
            .await
            .map(drop),
        SessionRole::Receiver => client
            .bind_receiver(
                BindReceiver::builder()
                    .system_id(system_id)
                    .password(password)
                    .system_type(system_type)
                    .interface_version(InterfaceVersion::Smpp3_4)
                    .addr_ton(Ton::Unknown)
                    .addr_npi(Npi::Unknown)
                    .address_range(COctetString::empty())
                    .build(),
            )
            .await
            .map(drop),
    };
    result.map_err(|error| match error {
        ClientError::UnexpectedResponse { response } => SmppError::Link(format!(
            "bind refused with command_status {:#010x}",
            u32::from(response.status())
        )),
        other => link_error("bind", other),
    })
}
