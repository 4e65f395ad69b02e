//! Rampart: a self-hosted SMS API platform with security built into every layer.
//!
//! The folders follow the security layers: `network` (TLS, limits), `data` (keys and
//! encryption at rest) and `identity` (accounts, API keys, scopes); the fourth, `policy`
//! (business rules), is still to come. Around them sits the SMS core: `messaging` (numbers, bodies, encoding), `delivery` (queue, connectors),
//! `store` (SQLite), `http` (the API) and `monitor` (metrics).

pub mod clock;
pub mod config;
pub mod data;
pub mod delivery;
pub mod http;
pub mod identity;
pub mod messaging;
pub mod monitor;
pub mod network;
pub mod server;
pub mod store;
