//! `rampart verify`: checks the data directory's integrity (audit chain, checkpoint signatures,
//! sealed fields, file permissions) on a read-only connection, beside a running server or not.
//! Prints each finding with the row it is about, then a summary; exits 1 on any finding.

use rampart::app::integrity::{IntegrityReport, verify_data_dir};
use rampart::config::Config;

/// Runs the checks and prints the report; `Ok(false)` when something was found.
pub fn run(config: &Config, public_key: Option<&str>) -> anyhow::Result<bool> {
    let report = verify_data_dir(config, public_key)?;
    print(&report);
    Ok(report.is_clean())
}

fn print(report: &IntegrityReport) {
    let (chain, sealed) = (&report.chain, &report.sealed);
    for finding in report.findings() {
        println!("FAIL {finding}");
    }
    let summary = format!(
        "{} audit events, {} checkpoints, {} sealed fields",
        chain.events, chain.checkpoints, sealed.fields
    );
    let problems = report.findings().count();
    if problems == 0 {
        println!("verified {summary}");
    } else {
        println!("{problems} problem(s) found in {summary}");
    }
    let unsigned = chain.last_seq - chain.last_checkpoint_seq;
    if unsigned > 0 {
        println!(
            "note: the {unsigned} newest audit event(s), after the last checkpoint (seq {}), are \
             covered by the hash chain only: removing them from the end would not show",
            chain.last_checkpoint_seq
        );
    }
    if sealed.legacy_fields > 0 {
        println!(
            "note: {} sealed field(s) were written by an early release and are bound to their \
             row id but not to their account",
            sealed.legacy_fields
        );
    }
}
