//! Counters behind [`crate::SmppHandle::status`], updated lock-free except for the small
//! per-second throughput ring.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use crate::LinkStatus;

/// Seconds the throughput is averaged over.
const THROUGHPUT_WINDOW_SECS: usize = 10;

#[derive(Debug)]
pub(crate) struct Stats {
    bound: AtomicBool,
    in_flight: AtomicUsize,
    submitted_total: AtomicU64,
    errors_total: AtomicU64,
    mo_dropped_total: AtomicU64,
    throughput: Mutex<ThroughputRing>,
}

impl Stats {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            bound: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            submitted_total: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            mo_dropped_total: AtomicU64::new(0),
            throughput: Mutex::new(ThroughputRing::new(now)),
        }
    }

    pub(crate) fn set_bound(&self, bound: bool) {
        self.bound.store(bound, Ordering::Relaxed);
    }

    /// Incomplete MO messages dropped by reassembly so far (the reassembler keeps the count).
    pub(crate) fn set_mo_dropped(&self, total: u64) {
        self.mo_dropped_total.store(total, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A `submit_sm` got its answer (or will never get one).
    pub(crate) fn answered(&self, accepted: bool, now: Instant) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if accepted {
            self.submitted_total.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut ring) = self.throughput.lock() {
                ring.record(now);
            }
        } else {
            self.errors_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, now: Instant) -> LinkStatus {
        let throughput = self
            .throughput
            .lock()
            .map(|mut ring| ring.per_second(now))
            .unwrap_or(0.0);
        LinkStatus {
            bound: self.bound.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            submitted_total: self.submitted_total.load(Ordering::Relaxed),
            errors_total: self.errors_total.load(Ordering::Relaxed),
            mo_dropped_total: self.mo_dropped_total.load(Ordering::Relaxed),
            throughput,
        }
    }
}

/// Acceptances per second for the last [`THROUGHPUT_WINDOW_SECS`] seconds.
#[derive(Debug)]
struct ThroughputRing {
    start: Instant,
    /// Second (since `start`) that `counts[second % N]` belongs to.
    seconds: [u64; THROUGHPUT_WINDOW_SECS],
    counts: [u64; THROUGHPUT_WINDOW_SECS],
}

impl ThroughputRing {
    fn new(start: Instant) -> Self {
        Self {
            start,
            seconds: [u64::MAX; THROUGHPUT_WINDOW_SECS],
            counts: [0; THROUGHPUT_WINDOW_SECS],
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    fn record(&mut self, now: Instant) {
        let second = self.second(now);
        let slot = (second % THROUGHPUT_WINDOW_SECS as u64) as usize;
        if self.seconds[slot] != second {
            self.seconds[slot] = second;
            self.counts[slot] = 0;
        }
        self.counts[slot] += 1;
    }

    fn per_second(&mut self, now: Instant) -> f64 {
        let current = self.second(now);
        let recent: u64 = self
            .seconds
            .iter()
            .zip(self.counts.iter())
            .filter(|&(&second, _)| {
                second != u64::MAX && current.saturating_sub(second) < THROUGHPUT_WINDOW_SECS as u64
            })
            .map(|(_, &count)| count)
            .sum();
        recent as f64 / THROUGHPUT_WINDOW_SECS as f64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn throughput_averages_the_last_ten_seconds() {
        let start = Instant::now();
        let stats = Stats::new(start);
        for _ in 0..20 {
            stats.sent();
            stats.answered(true, start + Duration::from_millis(500));
        }
        stats.sent();
        stats.answered(false, start);
        let status = stats.snapshot(start + Duration::from_secs(1));
        assert_eq!(status.submitted_total, 20);
        assert_eq!(status.errors_total, 1);
        assert_eq!(status.in_flight, 0);
        assert!((status.throughput - 2.0).abs() < f64::EPSILON);
        let later = stats.snapshot(start + Duration::from_secs(30));
        assert!(later.throughput.abs() < f64::EPSILON);
    }
}
