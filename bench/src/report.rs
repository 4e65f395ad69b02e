//! Turning merged statistics into results: the compact table, the JSON summary, and the
//! server's memory high-water mark read from /proc.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::Stats;

/// Latency percentiles of accepted requests, in milliseconds.
#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// `None` when nothing was accepted.
    pub fn from_histogram(latency_us: &Histogram<u64>) -> Option<Self> {
        if latency_us.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Some(Self {
            p50: ms(latency_us.value_at_quantile(0.50)),
            p90: ms(latency_us.value_at_quantile(0.90)),
            p99: ms(latency_us.value_at_quantile(0.99)),
            p999: ms(latency_us.value_at_quantile(0.999)),
            max: ms(latency_us.max()),
            mean: latency_us.mean() / 1_000.0,
        })
    }
}

/// One concurrency level's result.
#[derive(Debug, Serialize)]
pub struct LevelResult {
    pub concurrency: usize,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Open loop: the target in messages/s.
    pub target_messages_per_s: Option<f64>,
    pub recipients: u32,
    /// From the start of the window to the last counted completion (at least the duration).
    pub elapsed_s: f64,
    pub requests: u64,
    pub accepted_requests: u64,
    pub accepted_messages: u64,
    pub requests_per_s: f64,
    pub accepted_messages_per_s: f64,
    pub errors: BTreeMap<String, u64>,
    pub reconnects: u64,
    /// Of accepted requests; `null` when none was accepted.
    pub latency_ms: Option<Latency>,
}

impl LevelResult {
    pub fn new(
        concurrency: usize,
        target_rate: Option<f64>,
        recipients: u32,
        elapsed: Duration,
        stats: &Stats,
    ) -> Self {
        let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
        let accepted_messages = stats.accepted * u64::from(recipients);
        Self {
            concurrency,
            mode: if target_rate.is_some() {
                "open"
            } else {
                "closed"
            },
            target_messages_per_s: target_rate,
            recipients,
            elapsed_s: elapsed.as_secs_f64(),
            requests: stats.requests,
            accepted_requests: stats.accepted,
            accepted_messages,
            requests_per_s: stats.requests as f64 / seconds,
            accepted_messages_per_s: accepted_messages as f64 / seconds,
            errors: stats.errors.clone(),
            reconnects: stats.reconnects,
            latency_ms: Latency::from_histogram(&stats.latency_us),
        }
    }
}

/// The server's resident memory, from /proc/PID/status, in KiB.
#[derive(Debug, Serialize, PartialEq)]
pub struct ServerMemory {
    pub pid: u32,
    /// Peak resident set size (VmHWM).
    pub peak_rss_kib: u64,
    /// Resident set size now (VmRSS).
    pub rss_kib: u64,
}

pub fn read_server_memory(pid: u32) -> Result<ServerMemory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_proc_status(pid, &status).with_context(|| format!("no VmHWM/VmRSS in {path}"))
}

fn parse_proc_status(pid: u32, status: &str) -> Option<ServerMemory> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(ServerMemory {
        pid,
        peak_rss_kib: field("VmHWM:")?,
        rss_kib: field("VmRSS:")?,
    })
}

const HEADER: &str = " conc  mode          secs  requests     req/s    msgs/s      p50      p90      p99    p99.9      max  errors";

pub fn table_header() -> String {
    format!("{HEADER}\n{}", "-".repeat(HEADER.len() + 8))
}

/// One row of the table; latencies in ms.
pub fn table_row(result: &LevelResult) -> String {
    let mode = match result.target_messages_per_s {
        Some(rate) => format!("open {rate:.0}/s"),
        None => "closed".to_owned(),
    };
    let mut row = format!(
        "{:>5}  {:<12} {:>5.1} {:>9} {:>9.1} {:>9.1}",
        result.concurrency,
        mode,
        result.elapsed_s,
        result.requests,
        result.requests_per_s,
        result.accepted_messages_per_s,
    );
    match &result.latency_ms {
        Some(l) => {
            for value in [l.p50, l.p90, l.p99, l.p999, l.max] {
                let _ = write!(row, " {value:>8.2}");
            }
        }
        None => row.push_str(&format!(" {:>8}", "-").repeat(5)),
    }
    row.push_str("  ");
    if result.errors.is_empty() {
        row.push('-');
    } else {
        let errors: Vec<String> = result
            .errors
            .iter()
            .map(|(label, count)| format!("{label}:{count}"))
            .collect();
        row.push_str(&errors.join(" "));
    }
    if result.reconnects > 0 {
        let _ = write!(row, " (reconnects: {})", result.reconnects);
    }
    row
}

pub fn memory_line(memory: &ServerMemory) -> String {
    format!(
        "server pid {}: peak RSS (VmHWM) {:.1} MiB, RSS now {:.1} MiB",
        memory.pid,
        memory.peak_rss_kib as f64 / 1024.0,
        memory.rss_kib as f64 / 1024.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::new_histogram;

    #[test]
    fn percentiles_come_from_the_histogram_in_milliseconds() {
        let mut histogram = new_histogram().unwrap();
        // 980 fast requests at 2 ms, 20 slow ones at 100 ms.
        for _ in 0..980 {
            histogram.record(2_000).unwrap();
        }
        for _ in 0..20 {
            histogram.record(100_000).unwrap();
        }
        let latency = Latency::from_histogram(&histogram).unwrap();
        assert!((latency.p50 - 2.0).abs() < 0.01, "{latency:?}");
        assert!((latency.p90 - 2.0).abs() < 0.01, "{latency:?}");
        assert!((latency.p99 - 100.0).abs() < 0.1, "{latency:?}");
        assert!((latency.max - 100.0).abs() < 0.1, "{latency:?}");
    }

    #[test]
    fn no_accepted_request_means_no_latency() {
        assert_eq!(Latency::from_histogram(&new_histogram().unwrap()), None);
    }

    #[test]
    fn accepted_messages_are_accepted_requests_times_recipients() {
        let mut stats = Stats::new().unwrap();
        stats.requests = 110;
        stats.accepted = 100;
        stats.errors.insert("429".into(), 10);
        let result = LevelResult::new(8, None, 100, Duration::from_secs(10), &stats);
        assert_eq!(result.accepted_messages, 10_000);
        assert!((result.accepted_messages_per_s - 1_000.0).abs() < 1e-9);
        assert!((result.requests_per_s - 11.0).abs() < 1e-9);
        assert!(table_row(&result).contains("429:10"));
    }

    #[test]
    fn peak_and_current_rss_are_read_from_proc_status() {
        let status =
            "Name:\trampart\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        let memory = parse_proc_status(7, status).unwrap();
        assert_eq!((memory.peak_rss_kib, memory.rss_kib), (51_200, 40_960));
        assert!(memory_line(&memory).contains("peak RSS (VmHWM) 50.0 MiB"));
    }

    #[test]
    fn own_process_memory_can_be_read() {
        let memory = read_server_memory(std::process::id()).unwrap();
        assert!(memory.peak_rss_kib >= memory.rss_kib);
    }
}
