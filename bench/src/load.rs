//! The load itself: request bodies, the per-worker send loop (closed or open loop) and the
//! statistics each worker keeps, merged into one result per concurrency level.
//!
//! A request is counted when its send time (closed loop) or scheduled time (open loop) falls in
//! the measurement window; every such request is waited for, so the window's tail is not
//! silently dropped. In the open loop latency runs from the scheduled time, not the actual send,
//! so a stalled server cannot hide its stall by slowing the client down (coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::time::{Instant, sleep_until, timeout};

use crate::client::{Connection, Target, Verdict, judge};

/// Latencies are recorded in microseconds, up to an hour, with 3 significant digits.
const HIGHEST_LATENCY_US: u64 = 3_600_000_000;

pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIGHEST_LATENCY_US, 3).context("creating a latency histogram")
}

/// Builds request bodies, cycling through the destination pool so that consecutive requests
/// (and the recipients of one request) go to distinct numbers.
pub struct BodyFactory {
    prefix: String,
    quoted_numbers: Vec<String>,
    recipients: usize,
}

impl BodyFactory {
    pub fn new(from: &str, body: &str, numbers: &[String], recipients: usize) -> Result<Self> {
        anyhow::ensure!(
            numbers.len() >= recipients,
            "the number pool ({}) is smaller than the recipients per request ({recipients})",
            numbers.len()
        );
        let prefix = format!(
            r#"{{"from":{},"body":{},"to":"#,
            serde_json::to_string(from)?,
            serde_json::to_string(body)?
        );
        let quoted_numbers = numbers
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            prefix,
            quoted_numbers,
            recipients,
        })
    }

    pub fn recipients(&self) -> usize {
        self.recipients
    }

    pub fn pool_size(&self) -> usize {
        self.quoted_numbers.len()
    }

    /// The body whose recipients start at pool position `cursor` (wrapping around).
    pub fn body(&self, cursor: usize) -> Bytes {
        let pool = self.quoted_numbers.len();
        let mut text = String::with_capacity(self.prefix.len() + 2 + self.recipients * 17);
        text.push_str(&self.prefix);
        if self.recipients == 1 {
            text.push_str(&self.quoted_numbers[cursor % pool]);
        } else {
            text.push('[');
            for offset in 0..self.recipients {
                if offset > 0 {
                    text.push(',');
                }
                text.push_str(&self.quoted_numbers[(cursor + offset) % pool]);
            }
            text.push(']');
        }
        text.push('}');
        Bytes::from(text)
    }
}

/// The timing of one concurrency level, shared by its workers.
#[derive(Clone, Copy)]
pub struct Schedule {
    /// When every worker starts sending (warm-up included).
    pub start: Instant,
    /// Start of the measurement window.
    pub measure_from: Instant,
    /// End of the measurement window: nothing is sent (or scheduled) at or after it.
    pub measure_until: Instant,
    /// Open loop only: time between two sends of one worker.
    pub interval: Option<Duration>,
    pub concurrency: usize,
    pub request_timeout: Duration,
}

impl Schedule {
    /// Open loop: worker `worker` sends its `k`-th request at this time. Workers are staggered
    /// evenly over one interval so the total rate is smooth rather than bursty.
    fn slot(&self, interval: Duration, worker: usize, k: u64) -> Instant {
        let stagger = interval.as_secs_f64() * worker as f64 / self.concurrency as f64;
        self.start + Duration::from_secs_f64(stagger + interval.as_secs_f64() * k as f64)
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.measure_until
    }
}

/// What one worker (or a whole level, once merged) saw in the measurement window.
pub struct Stats {
    /// Latency of accepted requests, in microseconds.
    pub latency_us: Histogram<u64>,
    pub requests: u64,
    pub accepted: u64,
    pub errors: BTreeMap<String, u64>,
    /// Connections replaced after a transport error, a timeout or a close by the server.
    pub reconnects: u64,
    /// When the last counted request completed.
    pub last_completion: Option<Instant>,
}

impl Stats {
    pub fn new() -> Result<Self> {
        Ok(Self {
            latency_us: new_histogram()?,
            requests: 0,
            accepted: 0,
            errors: BTreeMap::new(),
            reconnects: 0,
            last_completion: None,
        })
    }

    fn count_error(&mut self, label: &str, how_many: u64) {
        *self.errors.entry(label.to_owned()).or_default() += how_many;
    }

    pub fn merge(&mut self, other: Stats) -> Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .context("merging latency histograms")?;
        self.requests += other.requests;
        self.accepted += other.accepted;
        for (label, count) in other.errors {
            *self.errors.entry(label).or_default() += count;
        }
        self.reconnects += other.reconnects;
        self.last_completion = self.last_completion.max(other.last_completion);
        Ok(())
    }
}

/// Error label for window slots the open loop never sent: the worker was still that far behind
/// its schedule `--timeout` after the window closed. Not counted in `requests`.
pub const BEHIND_SCHEDULE: &str = "behind-schedule";

/// Runs one worker on its own connection until the window closes, then waits for its last
/// request. Transport errors and timeouts are counted and the connection is replaced.
pub async fn run_worker(
    target: Arc<Target>,
    bodies: Arc<BodyFactory>,
    connection: Connection,
    schedule: Schedule,
    worker: usize,
) -> Result<Stats> {
    let mut stats = Stats::new()?;
    let mut connection = Some(connection);
    let recipients = bodies.recipients();
    // Spread the workers over the pool so that they don't all send to the same numbers.
    let mut cursor = worker * (bodies.pool_size() / schedule.concurrency.max(1));
    // In the open loop a worker still far behind once the window has closed stops here.
    let give_up_at = schedule.measure_until + schedule.request_timeout;
    let mut k: u64 = 0;

    tokio::time::sleep_until(schedule.start).await;
    loop {
        let (origin, counted) = match schedule.interval {
            None => {
                let now = Instant::now();
                if now >= schedule.measure_until {
                    break;
                }
                (now, schedule.in_window(now))
            }
            Some(interval) => {
                let slot = schedule.slot(interval, worker, k);
                if slot >= schedule.measure_until {
                    break;
                }
                let now = Instant::now();
                if now >= give_up_at {
                    let missed = count_slots_in_window(&schedule, interval, worker, k);
                    if missed > 0 {
                        stats.count_error(BEHIND_SCHEDULE, missed);
                    }
                    break;
                }
                if slot > now {
                    sleep_until(slot).await;
                }
                (slot, schedule.in_window(slot))
            }
        };
        k += 1;
        let body = bodies.body(cursor);
        cursor = cursor.wrapping_add(recipients);

        let live = match connection.take() {
            Some(live) if live.is_open() => live,
            stale => {
                if stale.is_some() {
                    stats.reconnects += 1;
                }
                match target.connect().await {
                    Ok(fresh) => fresh,
                    Err(_) => {
                        if counted {
                            stats.requests += 1;
                            stats.count_error("connect", 1);
                            stats.last_completion = Some(Instant::now());
                        }
                        // Don't spin on a server that refuses connections.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        let mut live = live;
        let outcome = timeout(schedule.request_timeout, live.send(&target, body)).await;
        let done = Instant::now();
        let verdict = match outcome {
            Ok(Ok(reply)) => {
                connection = Some(live);
                judge(&reply, recipients)
            }
            // The connection is in an unknown state after a failure: replace it.
            Ok(Err(_)) => {
                stats.reconnects += 1;
                Verdict::Error("io".into())
            }
            Err(_) => {
                stats.reconnects += 1;
                Verdict::Error("timeout".into())
            }
        };
        if !counted {
            continue;
        }
        stats.requests += 1;
        stats.last_completion = Some(done);
        match verdict {
            Verdict::Accepted => {
                stats.accepted += 1;
                let micros = u64::try_from(done.duration_since(origin).as_micros())
                    .unwrap_or(HIGHEST_LATENCY_US);
                stats.latency_us.saturating_record(micros.max(1));
            }
            Verdict::Error(label) => stats.count_error(&label, 1),
        }
    }
    Ok(stats)
}

/// Open loop: how many of this worker's slots from `k` on still fall inside the window.
fn count_slots_in_window(schedule: &Schedule, interval: Duration, worker: usize, k: u64) -> u64 {
    let mut missed = 0;
    let mut next = k;
    loop {
        let slot = schedule.slot(interval, worker, next);
        if slot >= schedule.measure_until {
            return missed;
        }
        if slot >= schedule.measure_from {
            missed += 1;
        }
        next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<String> {
        vec![
            "+447900000001".into(),
            "+33612000002".into(),
            "+4915100000003".into(),
        ]
    }

    #[test]
    fn single_recipient_body_has_a_string_to() {
        let factory = BodyFactory::new("Rampart", "hi \"there\"", &pool(), 1).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&factory.body(1)).unwrap();
        assert_eq!(body["to"], "+33612000002");
        assert_eq!(body["from"], "Rampart");
        assert_eq!(body["body"], "hi \"there\"");
    }

    #[test]
    fn multi_recipient_body_has_distinct_numbers_wrapping_round_the_pool() {
        let factory = BodyFactory::new("Rampart", "hi", &pool(), 3).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&factory.body(2)).unwrap();
        let to: Vec<&str> = body["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(to, ["+4915100000003", "+447900000001", "+33612000002"]);
    }

    #[test]
    fn more_recipients_than_numbers_is_refused() {
        assert!(BodyFactory::new("Rampart", "hi", &pool(), 4).is_err());
    }

    #[test]
    fn open_loop_slots_are_staggered_and_evenly_spaced() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            measure_from: start + Duration::from_secs(1),
            measure_until: start + Duration::from_secs(2),
            interval: Some(Duration::from_millis(100)),
            concurrency: 4,
            request_timeout: Duration::from_secs(1),
        };
        let interval = Duration::from_millis(100);
        let offset_ms =
            |worker, k| (schedule.slot(interval, worker, k) - start).as_secs_f64() * 1e3;
        assert_eq!(schedule.slot(interval, 0, 0), start);
        assert!((offset_ms(2, 0) - 50.0).abs() < 1e-3);
        assert!((offset_ms(1, 3) - 325.0).abs() < 1e-3);
        // Worker 0 has slots at 1.0, 1.1, ..., 1.9 s inside the window: ten of them.
        assert_eq!(count_slots_in_window(&schedule, interval, 0, 0), 10);
        assert_eq!(count_slots_in_window(&schedule, interval, 0, 15), 5);
    }

    #[test]
    fn merged_stats_add_counts_and_keep_the_latest_completion() {
        let mut total = Stats::new().unwrap();
        let mut a = Stats::new().unwrap();
        a.requests = 3;
        a.accepted = 2;
        a.count_error("429", 1);
        a.latency_us.record(1_000).unwrap();
        let mut b = Stats::new().unwrap();
        b.requests = 2;
        b.accepted = 1;
        b.count_error("429", 1);
        b.latency_us.record(3_000).unwrap();
        let later = Instant::now() + Duration::from_secs(1);
        b.last_completion = Some(later);
        total.merge(a).unwrap();
        total.merge(b).unwrap();
        assert_eq!((total.requests, total.accepted), (5, 3));
        assert_eq!(total.errors.get("429"), Some(&2));
        assert_eq!(total.latency_us.len(), 2);
        assert_eq!(total.last_completion, Some(later));
    }
}
