//! How a stored SMPP connector (a `connectors` row) becomes a `rampart_smpp::SmppConfig`: the
//! password unsealed, the CA file read, and the optional tunables of the `options` JSON.

use std::time::Duration;

use rampart_smpp::{BindMode, Concatenation, SecretString, SmppConfig, SmppError, TlsConfig};
use serde::{Deserialize, Serialize};

use crate::data::sealing::{Field, Sealer};
use crate::store::routing::ConnectorRecord;

/// Tunables beyond the common flags, stored as the connector's `options` JSON object. Every
/// field is optional; absent ones keep the SMPP client's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmppOptions {
    /// `system_type` of the bind (often empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_type: Option<String>,
    /// `transceiver` (default) or `transmitter_receiver`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOption>,
    /// `udh` (default), `sar` or `payload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concatenation: Option<ConcatenationOption>,
    /// Pack GSM-7 8-into-7 (default false: one septet per byte).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gsm7_packed: Option<bool>,
    /// Name to verify on the SMSC's certificate (default: the host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Client certificate chain (PEM file) for carriers that require mutual TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_file: Option<String>,
    /// The client certificate's private key (PEM file, readable by its owner only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enquire_link_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_min_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_max_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_backoff_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_throttle_retries: Option<u32>,
    /// Most multi-part inbound messages waiting for parts (default 1,024).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mo_max_pending: Option<usize>,
    /// Largest inbound part kept while its message waits (default 1 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mo_max_part_bytes: Option<usize>,
    /// Most bytes one waiting inbound message may gather (default 64 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mo_max_message_bytes: Option<usize>,
    /// Most bytes held by all waiting inbound parts together (default 4 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mo_max_total_bytes: Option<usize>,
    /// How long an inbound message waits for its missing parts (default 600 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mo_part_ttl_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindOption {
    Transceiver,
    TransmitterReceiver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcatenationOption {
    Udh,
    Sar,
    Payload,
}

/// Why a connector's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SmppSetupError {
    /// The `options` JSON does not parse or names an option that does not exist.
    #[error("connector {name}: invalid options: {reason}")]
    Options { name: String, reason: String },
    /// The CA file named by `tls_ca_file` cannot be read.
    #[error("connector {name}: cannot read the TLS CA file {path}: {source}")]
    CaFile {
        name: String,
        path: String,
        source: std::io::Error,
    },
    /// A client certificate or key file cannot be used.
    #[error("connector {name}: client certificate: {reason}")]
    ClientCertificate { name: String, reason: String },
    /// The sealed password does not decrypt (another master key, or tampering).
    #[error("connector {name}: the stored password cannot be decrypted")]
    Password { name: String },
    /// The SMPP client refuses the settings (lengths, ranges, certificates).
    #[error("connector {name}: {source}")]
    Client { name: String, source: SmppError },
    /// The connector's kind is not one this build can run.
    #[error("connector {name}: unknown kind `{kind}`")]
    UnknownKind { name: String, kind: String },
}

impl SmppOptions {
    /// Parses the stored JSON object (empty means no options).
    pub fn parse(name: &str, json: &str) -> Result<Self, SmppSetupError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(json).map_err(|e| SmppSetupError::Options {
            name: name.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Builds and validates the SMPP client configuration of a stored connector.
pub fn smpp_config(row: &ConnectorRecord, sealer: &Sealer) -> Result<SmppConfig, SmppSetupError> {
    if row.kind != "smpp" {
        return Err(SmppSetupError::UnknownKind {
            name: row.name.clone(),
            kind: row.kind.clone(),
        });
    }
    let password = sealer
        .open_string(
            Field::ConnectorPassword,
            "",
            &row.name,
            &row.password_sealed,
        )
        .map_err(|_| SmppSetupError::Password {
            name: row.name.clone(),
        })?;
    let ca_pem = row
        .tls_ca_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|source| SmppSetupError::CaFile {
                name: row.name.clone(),
                path: path.clone(),
                source,
            })
        })
        .transpose()?;
    build(row, SecretString::from(password), ca_pem)
}

/// The configuration from plain parts; also used by the CLI to check settings before storing.
pub fn build(
    row: &ConnectorRecord,
    password: SecretString,
    ca_pem: Option<String>,
) -> Result<SmppConfig, SmppSetupError> {
    let options = SmppOptions::parse(&row.name, &row.options)?;
    let mut config = SmppConfig::new(row.host.clone(), row.port, row.system_id.clone(), password);
    config.window = row.window;
    config.max_rate = row.max_rate;
    if row.tls {
        let mut tls = TlsConfig::new(
            options
                .tls_server_name
                .clone()
                .unwrap_or_else(|| row.host.clone()),
        );
        tls.extra_root_ca_pem = ca_pem;
        let client_cert = |reason: String| SmppSetupError::ClientCertificate {
            name: row.name.clone(),
            reason,
        };
        match (&options.tls_client_cert_file, &options.tls_client_key_file) {
            (Some(cert), Some(key)) => {
                std::fs::metadata(key).map_err(|e| client_cert(format!("{key}: {e}")))?;
                crate::data::permissions::require_owner_only(&[std::path::Path::new(key)])
                    .map_err(|e| {
                        client_cert(
                            e.0.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join("; "),
                        )
                    })?;
                tls.client_cert_pem = Some(
                    std::fs::read_to_string(cert)
                        .map_err(|e| client_cert(format!("{cert}: {e}")))?,
                );
                tls.client_key_pem = Some(SecretString::from(
                    std::fs::read_to_string(key).map_err(|e| client_cert(format!("{key}: {e}")))?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(client_cert(
                    "set both tls_client_cert_file and tls_client_key_file".into(),
                ));
            }
        }
        config.tls = Some(tls);
    }
    if let Some(system_type) = options.system_type {
        config.system_type = system_type;
    }
    if let Some(bind) = options.bind {
        config.bind = match bind {
            BindOption::Transceiver => BindMode::Transceiver,
            BindOption::TransmitterReceiver => BindMode::TransmitterReceiver,
        };
    }
    if let Some(concatenation) = options.concatenation {
        config.concatenation = match concatenation {
            ConcatenationOption::Udh => Concatenation::Udh,
            ConcatenationOption::Sar => Concatenation::SarTlvs,
            ConcatenationOption::Payload => Concatenation::MessagePayload,
        };
    }
    if let Some(packed) = options.gsm7_packed {
        config.gsm7_packed = packed;
    }
    let ms = Duration::from_millis;
    let durations = [
        (options.enquire_link_ms, &mut config.enquire_link_interval),
        (options.response_timeout_ms, &mut config.response_timeout),
        (options.connect_timeout_ms, &mut config.connect_timeout),
        (options.reconnect_min_ms, &mut config.reconnect_min_backoff),
        (options.reconnect_max_ms, &mut config.reconnect_max_backoff),
        (options.throttle_backoff_ms, &mut config.throttle_backoff),
    ];
    for (value, field) in durations {
        if let Some(value) = value {
            *field = ms(value);
        }
    }
    if let Some(retries) = options.max_throttle_retries {
        config.max_throttle_retries = retries;
    }
    let limits = &mut config.reassembly;
    for (value, field) in [
        (options.mo_max_pending, &mut limits.max_pending_messages),
        (options.mo_max_part_bytes, &mut limits.max_part_bytes),
        (options.mo_max_message_bytes, &mut limits.max_message_bytes),
        (options.mo_max_total_bytes, &mut limits.max_total_bytes),
    ] {
        if let Some(value) = value {
            *field = value;
        }
    }
    if let Some(ttl) = options.mo_part_ttl_ms {
        limits.part_ttl = ms(ttl);
    }
    config.validate().map_err(|source| SmppSetupError::Client {
        name: row.name.clone(),
        source,
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(options: &str) -> ConnectorRecord {
        ConnectorRecord {
            name: "c1".into(),
            kind: "smpp".into(),
            host: "smsc.example".into(),
            port: 2775,
            system_id: "rampart".into(),
            password_sealed: Vec::new(),
            tls: true,
            tls_ca_file: None,
            window: 10,
            max_rate: Some(50),
            options: options.into(),
            created_at: 0,
        }
    }

    #[test]
    fn options_reach_the_smpp_configuration() {
        let config = build(
            &row(r#"{"bind":"transmitter_receiver","concatenation":"sar","reconnect_max_ms":500,"reconnect_min_ms":100}"#),
            SecretString::from("secret"),
            None,
        )
        .unwrap();
        assert_eq!(config.bind, BindMode::TransmitterReceiver);
        assert_eq!(config.concatenation, Concatenation::SarTlvs);
        assert_eq!(config.reconnect_max_backoff, Duration::from_millis(500));
        assert_eq!(config.window, 10);
        assert_eq!(config.max_rate, Some(50));
        assert_eq!(config.tls.unwrap().server_name, "smsc.example");
    }

    #[test]
    fn inbound_reassembly_caps_are_options_and_must_nest() {
        let config = build(
            &row(r#"{"mo_max_pending":16,"mo_max_total_bytes":100000,"mo_part_ttl_ms":5000}"#),
            SecretString::from("secret"),
            None,
        )
        .unwrap();
        assert_eq!(config.reassembly.max_pending_messages, 16);
        assert_eq!(config.reassembly.max_total_bytes, 100_000);
        assert_eq!(config.reassembly.part_ttl, Duration::from_secs(5));
        assert_eq!(config.reassembly.max_part_bytes, 1024);
        assert!(matches!(
            build(
                &row(r#"{"mo_max_total_bytes":1000}"#),
                SecretString::from("secret"),
                None
            ),
            Err(SmppSetupError::Client { .. })
        ));
    }

    #[test]
    fn unknown_options_and_overlong_passwords_are_refused() {
        assert!(matches!(
            build(&row(r#"{"windw":3}"#), SecretString::from("secret"), None),
            Err(SmppSetupError::Options { .. })
        ));
        assert!(matches!(
            build(&row("{}"), SecretString::from("longer than eight"), None),
            Err(SmppSetupError::Client { .. })
        ));
    }

    #[test]
    fn a_client_certificate_needs_both_files_and_an_owner_only_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("client.pem");
        let key = dir.path().join("client.key");
        let pair = rcgen::generate_simple_self_signed(vec!["rampart".to_owned()]).unwrap();
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
        let options = format!(
            r#"{{"tls_client_cert_file":"{}","tls_client_key_file":"{}"}}"#,
            cert.display(),
            key.display()
        );
        let only_cert = format!(r#"{{"tls_client_cert_file":"{}"}}"#, cert.display());
        let built = |json: &str| build(&row(json), SecretString::from("secret"), None);
        assert!(matches!(
            built(&only_cert),
            Err(SmppSetupError::ClientCertificate { .. })
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            built(&options),
            Err(SmppSetupError::ClientCertificate { .. })
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let tls = built(&options).unwrap().tls.unwrap();
        assert!(tls.client_cert_pem.is_some() && tls.client_key_pem.is_some());
    }
}
