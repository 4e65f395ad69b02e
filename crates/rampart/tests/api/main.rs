//! Black-box tests of the `rampart` server: each test starts the real binary on a fresh data
//! directory and a free port, and talks to it over verified TLS like any client would.

// A test reports failure by panicking; helpers outside `#[test]` functions do the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod audit_events;
mod auth;
mod backup;
mod billing;
mod durability;
mod encoding;
mod errors;
mod exposed_files;
mod factors;
mod floods;
mod helpers;
mod isolation;
mod key_hierarchy;
mod keyring;
mod matrix;
mod messages;
mod mtls;
mod narrow_scopes;
mod openapi;
mod operations;
mod opt_outs;
mod passkeys;
mod people;
mod policy;
mod pumping;
mod rate_limits;
mod raw;
mod reply;
mod retention;
mod routing_config;
mod sandbox;
mod session;
mod slow_clients;
mod tamper;
mod tls;
