//! Everything the client needs to know about one SMSC account: where it is, how to bind, and
//! how hard to push it. Validated once by [`SmppConfig::validate`] when the client is spawned.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::SmppError;

/// How to bind to the SMSC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// One `bind_transceiver` session carries submissions, receipts and MO messages.
    #[default]
    Transceiver,
    /// Two sessions: `bind_transmitter` for submissions and `bind_receiver` for receipts and MO
    /// messages. The link counts as bound only while both are; if one drops, both are rebound.
    TransmitterReceiver,
}

/// How a message of several parts is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concatenation {
    /// Each part in its own `submit_sm` with a user data header `05 00 03 ref total seq`
    /// (8-bit reference) and esm_class 0x40.
    #[default]
    Udh,
    /// Each part in its own `submit_sm` with the `sar_msg_ref_num`, `sar_total_segments` and
    /// `sar_segment_seqnum` TLVs; the SMSC builds the header.
    SarTlvs,
    /// The whole message in the `message_payload` TLV of a single `submit_sm`; the SMSC splits
    /// it. Events then report part 0 only.
    MessagePayload,
}

/// TLS towards the SMSC (rustls).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Name the SMSC's certificate must carry (SNI and verification). An IP address works too.
    pub server_name: String,
    /// Extra trusted root certificates (PEM), on top of the Mozilla roots: a carrier's private
    /// CA, or a test SMSC's self-signed certificate.
    pub extra_root_ca_pem: Option<String>,
    /// Client certificate chain (PEM) for carriers that require mutual TLS.
    pub client_cert_pem: Option<String>,
    /// Private key (PEM) of the client certificate.
    pub client_key_pem: Option<SecretString>,
}

impl TlsConfig {
    /// TLS with the Mozilla roots only, verifying `server_name`.
    pub fn new(server_name: impl Into<String>) -> Self {
        Self {
            server_name: server_name.into(),
            extra_root_ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
        }
    }
}

/// Bounds on what the SMSC can make the client hold while multi-part MO messages wait for
/// their missing parts. The SMSC (or anyone in the middle of a plaintext link) is untrusted:
/// parts that never complete must not grow memory. When a bound is hit the oldest waiting
/// messages are dropped (counted in [`crate::LinkStatus::mo_dropped_total`]).
///
/// Bytes are counted as payload bytes plus [`PART_OVERHEAD`] for each part and each message
/// held, so a flood of empty parts is bounded too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Most messages waiting for parts at once (default 1,024).
    pub max_pending_messages: usize,
    /// Largest part kept (default 1 KiB). A `short_message` carries at most 254 bytes (290
    /// septets once GSM-7 is unpacked); only a part in `message_payload` can be larger, and a
    /// message split into parts has no reason to be. A message with a larger part is dropped.
    pub max_part_bytes: usize,
    /// Most bytes one message may gather (default 64 KiB: 255 full `short_message` parts). A
    /// message that grows past it is dropped.
    pub max_message_bytes: usize,
    /// Most bytes held across all waiting messages (default 4 MiB).
    pub max_total_bytes: usize,
    /// How long the first part of a message waits for the others (default 600 s).
    pub part_ttl: Duration,
}

/// Bookkeeping bytes charged for every part and every message held, on top of the payload.
pub const PART_OVERHEAD: usize = 64;

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_pending_messages: 1024,
            max_part_bytes: 1024,
            max_message_bytes: 64 * 1024,
            max_total_bytes: 4 * 1024 * 1024,
            part_ttl: Duration::from_secs(600),
        }
    }
}

impl ReassemblyLimits {
    fn validate(&self) -> Result<(), SmppError> {
        let invalid = |message: &str| Err(SmppError::InvalidConfig(message.into()));
        if self.max_pending_messages == 0 || self.part_ttl.is_zero() {
            return invalid("reassembly max_pending_messages and part_ttl must be positive");
        }
        if self.max_part_bytes == 0
            || self.max_part_bytes > self.max_message_bytes
            || self.max_message_bytes > self.max_total_bytes
        {
            return invalid(
                "reassembly byte caps must satisfy 0 < max_part_bytes <= max_message_bytes <= max_total_bytes",
            );
        }
        Ok(())
    }
}

/// One SMSC account. Build with [`SmppConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct SmppConfig {
    /// SMSC host name or IP address.
    pub host: String,
    /// SMSC port (2775 is customary for plain SMPP, 3550 or 8775 for TLS).
    pub port: u16,
    /// `system_id` of the bind (at most 15 ASCII characters).
    pub system_id: String,
    /// Password of the bind (at most 8 ASCII characters, an SMPP 3.4 limit).
    pub password: SecretString,
    /// `system_type` of the bind (at most 12 ASCII characters, often empty).
    pub system_type: String,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// Transceiver (default) or a transmitter + receiver pair.
    pub bind: BindMode,
    /// Most `submit_sm` sent and not yet answered at once (default 64).
    pub window: usize,
    /// Most `submit_sm` per second; `None` for no cap.
    pub max_rate: Option<u32>,
    /// How often to send `enquire_link` (default 30 s).
    pub enquire_link_interval: Duration,
    /// How long to wait for any response, `submit_sm_resp` included (default 10 s).
    pub response_timeout: Duration,
    /// How long to wait for the TCP connection and TLS handshake (default 10 s).
    pub connect_timeout: Duration,
    /// First wait before reconnecting after the link dropped or a bind failed (default 1 s).
    pub reconnect_min_backoff: Duration,
    /// Longest wait between reconnection attempts (default 60 s); the wait doubles from the
    /// minimum up to this, each with random jitter (between half and all of it).
    pub reconnect_max_backoff: Duration,
    /// First pause of all sending after `ESME_RTHROTTLED` or `ESME_RMSGQFUL`; doubled at each
    /// further refusal of the same part, up to 60 s (default 1 s).
    pub throttle_backoff: Duration,
    /// How often one part is retried after throttling before it is reported as `Rejected`
    /// with `permanent: false` (default 8).
    pub max_throttle_retries: u32,
    /// Pack GSM-7 septets 8-into-7 in `short_message` (and unpack inbound GSM-7). Default false:
    /// one septet per byte, which most SMSCs expect.
    pub gsm7_packed: bool,
    /// How multipart messages are sent.
    pub concatenation: Concatenation,
    /// Bounds on multi-part MO messages waiting for their parts.
    pub reassembly: ReassemblyLimits,
}

impl SmppConfig {
    /// A configuration with every tunable at its default.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        system_id: impl Into<String>,
        password: SecretString,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            system_id: system_id.into(),
            password,
            system_type: String::new(),
            tls: None,
            bind: BindMode::default(),
            window: 64,
            max_rate: None,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect_min_backoff: Duration::from_secs(1),
            reconnect_max_backoff: Duration::from_secs(60),
            throttle_backoff: Duration::from_secs(1),
            max_throttle_retries: 8,
            gsm7_packed: false,
            concatenation: Concatenation::default(),
            reassembly: ReassemblyLimits::default(),
        }
    }

    /// Checks every field against what SMPP and this client can do.
    pub fn validate(&self) -> Result<(), SmppError> {
        let invalid = |message: String| Err(SmppError::InvalidConfig(message));
        if self.host.trim().is_empty() {
            return invalid("host is empty".into());
        }
        check_c_string("system_id", &self.system_id, 15)?;
        check_c_string("password", self.password.expose_secret(), 8)?;
        check_c_string("system_type", &self.system_type, 12)?;
        if self.window == 0 || self.window > MAX_WINDOW {
            return invalid(format!("window must be 1..={MAX_WINDOW}"));
        }
        if self.max_rate == Some(0) {
            return invalid("max_rate must be positive (or None for no cap)".into());
        }
        for (name, value) in [
            ("enquire_link_interval", self.enquire_link_interval),
            ("response_timeout", self.response_timeout),
            ("connect_timeout", self.connect_timeout),
            ("reconnect_min_backoff", self.reconnect_min_backoff),
            ("throttle_backoff", self.throttle_backoff),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be positive"));
            }
        }
        if self.reconnect_max_backoff < self.reconnect_min_backoff {
            return invalid("reconnect_max_backoff is below reconnect_min_backoff".into());
        }
        if let Some(tls) = &self.tls
            && tls.server_name.trim().is_empty()
        {
            return invalid("tls.server_name is empty".into());
        }
        self.reassembly.validate()
    }
}

/// A window beyond this is a misconfiguration rather than a tuning choice.
const MAX_WINDOW: usize = 10_000;

fn check_c_string(name: &str, value: &str, max_len: usize) -> Result<(), SmppError> {
    if value.len() > max_len || !value.bytes().all(|byte| (0x20..0x7f).contains(&byte)) {
        return Err(SmppError::InvalidConfig(format!(
            "{name} must be at most {max_len} printable ASCII characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SmppConfig {
        SmppConfig::new("127.0.0.1", 2775, "rampart", SecretString::from("secret"))
    }

    #[test]
    fn defaults_are_valid() {
        assert!(valid().validate().is_ok());
        assert_eq!(valid().window, 64);
        assert_eq!(valid().bind, BindMode::Transceiver);
        assert_eq!(valid().concatenation, Concatenation::Udh);
    }

    #[test]
    fn password_longer_than_smpp_allows_is_refused() {
        let mut config = valid();
        config.password = SecretString::from("123456789");
        assert!(matches!(
            config.validate(),
            Err(SmppError::InvalidConfig(_))
        ));
    }

    #[test]
    fn zero_window_and_zero_rate_are_refused() {
        let mut config = valid();
        config.window = 0;
        assert!(config.validate().is_err());
        let mut config = valid();
        config.max_rate = Some(0);
        assert!(config.validate().is_err());
    }

    #[test]
    fn reassembly_caps_must_nest() {
        let mut config = valid();
        config.reassembly.max_part_bytes = config.reassembly.max_message_bytes + 1;
        assert!(config.validate().is_err());
        let mut config = valid();
        config.reassembly.max_message_bytes = config.reassembly.max_total_bytes + 1;
        assert!(config.validate().is_err());
        let mut config = valid();
        config.reassembly.max_pending_messages = 0;
        assert!(config.validate().is_err());
    }
}
