//! Layer 1, network and service: TLS on every listener, and the limits that keep floods and
//! slow clients from taking the service down (see also the request layers in `http`).

pub mod bans;
pub mod client_cert;
pub mod connection;
pub mod ip;
pub mod limits;
pub mod rate_limit;
pub mod tls;
