//! Rampart's SMPP 3.4 client (ESME) towards a carrier's SMSC, built on `rusmppc`.
//!
//! [`SmppClient::spawn`] starts a background task that binds (transceiver, or a
//! transmitter + receiver pair, over TCP or TLS), keeps the link alive with `enquire_link`,
//! rebinds with exponential backoff and jitter, and sends [`Submission`]s through a bounded
//! window and an optional rate cap. Everything it learns comes back as [`SmppEvent`]s:
//! acceptances, refusals, submissions to requeue after a link loss, delivery receipts, and
//! mobile-originated messages with their parts reassembled.
//!
//! Callers encode and split text themselves (GSM-7 as unpacked septets, UCS-2 as UTF-16BE);
//! this crate adds concatenation headers or TLVs, optional GSM-7 packing and SMPP framing.
//! It has no HTTP or database dependency.
//!
//! Logging: this crate never logs a password, a phone number or a message body, and the `Debug`
//! output of its types masks numbers and shows the length of texts only. The `rusmpp`
//! and `rusmppc` crates underneath do, at `debug` level (whole PDUs, the bind password
//! included): keep the targets `rusmpp` and `rusmppc` at `info` or quieter in production.

mod backoff;
mod client;
pub mod codes;
mod config;
mod error;
mod gsm7;
mod inbound;
mod link;
mod message;
mod outbound;
mod reassembly;
mod receipt;
mod redact;
mod stats;
mod submitter;
mod supervisor;
mod tls;
mod udh;

pub use client::{SmppClient, SmppHandle};
pub use codes::{DATA_CODING_GSM7, DATA_CODING_UCS2};
pub use config::{BindMode, Concatenation, PART_OVERHEAD, ReassemblyLimits, SmppConfig, TlsConfig};
pub use error::SmppError;
pub use message::{Address, LinkState, LinkStatus, SmppEvent, Submission};
pub use receipt::ReceiptState;
pub use secrecy::SecretString;
