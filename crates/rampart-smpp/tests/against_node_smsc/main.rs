//! rampart-smpp against a real SMSC: node-smpp in server mode (`tests/smsc/`), started by each
//! test on loopback. Needs `node` (tests skip without it) and the SMSC's packages:
//! `npm ci --prefix crates/rampart-smpp/tests/smsc`.

// A failed expectation in the harness must fail the test, exactly as in a #[test] body, where
// clippy.toml already allows these.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod encodings;
mod flow_control;
mod harness;
mod inbound;
mod link;
mod submit_and_receipts;
mod throttling_and_recovery;
