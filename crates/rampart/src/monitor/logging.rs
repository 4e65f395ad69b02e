//! The log filter: what `RAMPART_LOG` may turn on, and what it may not.
//!
//! `rusmpp` and `rusmppc`, under the SMPP connector, log whole PDUs at `debug` and `trace`: bind
//! passwords, phone numbers and message texts. An operator raising the log level to chase a
//! problem must not get those, so their targets stay at `warn` whatever the spec asks.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, LevelFilter};

/// The filter when `RAMPART_LOG` is unset, empty or invalid.
const DEFAULT_SPEC: &str = "info";

/// Directives forced on top of every spec.
const WIRE_LOGS_QUIET: [&str; 2] = ["rusmpp=warn", "rusmppc=warn"];

/// The log filter for an `EnvFilter` spec such as `debug` or `info,rampart::delivery=trace`
/// (`None`, empty or invalid: `info`), with `rusmpp` and `rusmppc` held at `warn`.
///
/// The spec's own directives for those crates are dropped rather than merely outranked:
/// `EnvFilter` replaces a directive only when another names the very same target, and a longer
/// target (`rusmppc::connection=debug`) is more specific than `rusmppc=warn` and would win.
/// Directives scoped to a span (`[name]=debug`) enable every event inside that span; neither
/// crate runs inside spans of ours, and neither opens any.
pub fn log_filter(spec: Option<&str>) -> EnvFilter {
    let kept: Vec<&str> = spec
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty() && !names_wire_crate(directive))
        .collect();
    let spec = if kept.is_empty() {
        DEFAULT_SPEC.to_owned()
    } else {
        kept.join(",")
    };
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(DEFAULT_SPEC));
    WIRE_LOGS_QUIET
        .iter()
        .try_fold(filter, |filter, directive| {
            directive
                .parse::<Directive>()
                .map(|directive| filter.add_directive(directive))
        })
        // The directives above are constants that always parse; should one ever not, warn
        // level for everything is the safe side.
        .unwrap_or_else(|_| EnvFilter::default().add_directive(LevelFilter::WARN.into()))
}

/// Whether a directive (`target[span{field}]=level`) is about `rusmpp` or `rusmppc`. Targets
/// match by prefix, so `rusmpp=debug` would reach `rusmppc` too.
fn names_wire_crate(directive: &str) -> bool {
    directive
        .split(['[', '='])
        .next()
        .is_some_and(|target| target.trim().starts_with("rusmpp"))
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a subscriber filtered by `spec` prints for one event of each interesting target
    /// and level.
    fn logged_with(spec: Option<&str>) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(spec))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "rusmpp::codec::encode", "rusmpp-trace");
            tracing::debug!(target: "rusmpp::codec::decode", "rusmpp-debug");
            tracing::debug!(target: "rusmppc::connection::smpp", "rusmppc-conn-debug");
            tracing::trace!(target: "rusmppc::client", "rusmppc-client-trace");
            tracing::warn!(target: "rusmppc::connection::smpp", "rusmppc-warn");
            tracing::info!(target: "rampart::delivery", "rampart-info");
            tracing::debug!(target: "rampart::delivery", "rampart-debug");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn assert_no_wire_logs(spec: &str, logged: &str) {
        for quiet in [
            "rusmpp-trace",
            "rusmpp-debug",
            "rusmppc-conn-debug",
            "rusmppc-client-trace",
        ] {
            assert!(
                !logged.contains(quiet),
                "{spec:?} let {quiet} through:\n{logged}"
            );
        }
        assert!(logged.contains("rusmppc-warn"), "{spec:?}:\n{logged}");
    }

    #[test]
    fn debug_everywhere_leaves_the_smpp_crates_at_warn() {
        let logged = logged_with(Some("debug"));
        assert_no_wire_logs("debug", &logged);
        assert!(logged.contains("rampart-debug"), "{logged}");
    }

    #[test]
    fn asking_for_the_smpp_crates_by_name_does_not_enable_them() {
        for spec in [
            "trace",
            "rusmpp=debug",
            "rusmppc=trace",
            "info,rusmpp=trace,rusmppc=trace",
            "rusmppc::connection=debug,rusmpp::codec=trace",
            "rusmppc[{sequence_number}]=trace",
            "rusmppc",
            "warn, rusmppc = trace ,debug",
        ] {
            assert_no_wire_logs(spec, &logged_with(Some(spec)));
        }
    }

    #[test]
    fn a_later_directive_for_the_same_target_replaces_the_earlier() {
        // What the forced directives rely on: add_directive for a target already in the filter
        // replaces it, whatever the levels.
        let filter = EnvFilter::new("rusmppc=trace").add_directive("rusmppc=warn".parse().unwrap());
        assert_eq!(filter.to_string(), "rusmppc=warn");
    }

    #[test]
    fn no_spec_an_empty_one_or_an_invalid_one_means_info() {
        for spec in [None, Some(""), Some("  "), Some("rampart=loud")] {
            let logged = logged_with(spec);
            assert!(logged.contains("rampart-info"), "{spec:?}:\n{logged}");
            assert!(!logged.contains("rampart-debug"), "{spec:?}:\n{logged}");
            assert_no_wire_logs("default", &logged);
        }
    }

    #[test]
    fn other_targets_keep_the_level_asked_for() {
        let logged = logged_with(Some("warn,rampart::delivery=debug"));
        assert!(logged.contains("rampart-debug"), "{logged}");
        assert_no_wire_logs("warn,rampart::delivery=debug", &logged);
    }
}
