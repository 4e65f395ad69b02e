//! End-to-end tests of SMPP delivery: the real `rampart` binary, configured with its CLI,
//! sends through HTTP to the node-smpp test SMSC, which records the bytes on the wire, sends
//! receipts and inbound messages, throttles, dies and comes back.

// A test reports failure by panicking; helpers outside `#[test]` functions do the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod hostile;
mod inbound;
mod opt_out;
mod resilience;
mod routing;
mod sending;
