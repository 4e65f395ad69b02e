//! Rampart: a self-hosted SMS API platform with security built into every layer.
//!
//! The folders follow the security layers: `network` (TLS, limits), `data` (keys, sealing of
//! fields at rest), `identity` (API keys, scopes) and `policy` (business rules). Around them
//! sits the SMS core: `messaging` (numbers, bodies, encoding), `delivery` (queue worker,
//! connectors), `store` (SQLite behind repository traits) and `monitor` (metrics, logging).
//! `app` holds the use cases; `http` and the CLI are thin adapters over it, and `server`
//! wires the running process together.
//!
//! Dependency rule (checked by `tests/architecture.rs`): adapters (`http`, `server`, the CLI)
//! → `app` → domain (`messaging`, `identity`, `policy`, `delivery`, `data`, `network`,
//! `monitor`) → `store`; `clock` and `config` sit below everything. Nothing imports upward and
//! there are no cycles.

pub mod app;
pub mod billing;
pub mod clock;
pub mod config;
pub mod data;
pub mod delivery;
pub mod http;
pub mod identity;
pub mod messaging;
pub mod monitor;
pub mod network;
pub mod policy;
pub mod server;
pub mod store;
pub mod whole_number;
