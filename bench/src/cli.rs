//! Command-line interface of `rampart-bench`: the options and the parsing of their values.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Load generator for Rampart's send API (`POST /v1/messages`) over HTTPS keep-alive.
///
/// For each concurrency level it opens that many keep-alive connections (one per worker),
/// warms up, then measures for the given duration: requests/s, accepted messages/s, errors by
/// status code and latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "rampart-bench", version)]
pub struct Args {
    /// Base URL of the server; requests go to `<url>/v1/messages`. HTTPS only.
    #[arg(long, default_value = "https://localhost:8443")]
    pub url: String,

    /// API key (`rk_...`). Prefer the environment variable so the key stays out of `ps`.
    /// (Not a `RAMPART_` variable: that prefix belongs to the server's own settings.)
    #[arg(long, env = "BENCH_API_KEY", hide_env_values = true)]
    pub key: String,

    /// PEM file with the certificate (or CA) to trust, e.g. `<data-dir>/tls/cert.pem`.
    #[arg(long)]
    pub cacert: PathBuf,

    /// Comma-separated concurrency levels, each run in turn: N workers = N connections.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64", value_parser = parse_concurrency)]
    pub concurrency: Vec<usize>,

    /// How long to measure at each level (e.g. `20s`, `500ms`, `2m`).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,

    /// How long to send before measuring at each level; those requests are not counted.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Recipients per request (`to` becomes an array when above 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub recipients: u32,

    /// Open-loop target rate in messages/s over all workers; 0 = closed loop, as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,

    /// Size of the pool of distinct valid destination numbers to cycle through.
    #[arg(long, default_value_t = 10_000)]
    pub numbers: usize,

    /// Countries of the destination numbers (gb, fr, de, us), in case the server's geo policy
    /// allows only some.
    #[arg(long, value_delimiter = ',', default_value = "gb,fr,de,us", value_parser = parse_country)]
    pub countries: Vec<String>,

    /// Message body sent in every request.
    #[arg(long, default_value = "Rampart benchmark: your code is 123456")]
    pub body: String,

    /// Sender ID sent in every request.
    #[arg(long, default_value = "Rampart")]
    pub from: String,

    /// Give up on a request (or on opening a connection) after this long; it counts as an error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print a machine-readable JSON summary on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Server process ID: print its peak RSS (VmHWM from /proc/PID/status) at the end.
    #[arg(long)]
    pub pid: Option<u32>,
}

impl Args {
    /// Open-loop target in messages/s, or `None` for a closed loop.
    pub fn open_loop_rate(&self) -> Option<f64> {
        (self.rate > 0.0).then_some(self.rate)
    }
}

fn parse_concurrency(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a concurrency between 1 and 10000")),
    }
}

fn parse_country(text: &str) -> Result<String, String> {
    Ok(text.trim().to_ascii_lowercase())
}

/// Parses `250ms`, `20s`, `2m` or a bare number of seconds (fractions allowed: `1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_seconds) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 20s or 2m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    Duration::try_from_secs_f64(value * unit_seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_milliseconds_seconds_minutes_and_bare_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_or_negative_durations_are_refused() {
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn concurrency_list_is_split_on_commas() {
        let args = Args::try_parse_from([
            "rampart-bench",
            "--key",
            "rk_test",
            "--cacert",
            "cert.pem",
            "--concurrency",
            "1,16,64",
        ])
        .unwrap();
        assert_eq!(args.concurrency, vec![1, 16, 64]);
        assert_eq!(args.open_loop_rate(), None);
    }

    #[test]
    fn zero_concurrency_is_refused() {
        let result = Args::try_parse_from([
            "rampart-bench",
            "--key",
            "rk_test",
            "--cacert",
            "cert.pem",
            "--concurrency",
            "0",
        ]);
        assert!(result.is_err());
    }
}
