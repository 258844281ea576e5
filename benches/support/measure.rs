//! Timing samples and how the benchmarks report them: median and p99, never a pass/fail.
//!
//! `cargo bench` passes `--bench` to a `harness = false` target; `cargo test --all-targets`
//! runs the same binary without it. Without the flag a benchmark runs a small smoke version
//! that still checks its answers, so the benchmarks keep compiling and stay correct in CI
//! without taking minutes there.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

/// Whether this is a real benchmark run (`cargo bench`) rather than a smoke run under
/// `cargo test`.
pub fn full_run() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--bench")
}

/// Picks the full or the smoke value.
pub fn size<T>(full: T, smoke: T) -> T {
    if full_run() { full } else { smoke }
}

/// Durations of repeated runs of one operation.
#[derive(Debug, Default)]
pub struct Samples {
    times: Vec<Duration>,
}

impl Samples {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, time: Duration) {
        self.times.push(time);
    }

    /// Runs `op` and records how long it took; returns its result.
    pub fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = op();
        self.push(started.elapsed());
        out
    }

    /// Adds another set of samples of the same operation.
    pub fn merge(&mut self, other: Samples) {
        self.times.extend(other.times);
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The `q`-quantile (0.0..=1.0) by the nearest-rank method.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.times.iter().copied().max().unwrap_or_default()
    }

    /// One line: name, sample count, median, p99, max, and the target with met / MISSED.
    ///
    /// A p99 is printed only from [`P99_MIN_SAMPLES`] samples on; a shorter series shows its
    /// max instead, and its target is judged on that max.
    pub fn report(&self, name: &str, target: Option<Duration>) {
        let (judged, what) = if self.len() >= P99_MIN_SAMPLES {
            (self.p99(), "p99")
        } else {
            (self.max(), "max")
        };
        let verdict = match target {
            Some(target) if judged <= target => format!("  target {what} <= {} met", ms(target)),
            Some(target) => format!(
                "  target {what} <= {} MISSED by {}",
                ms(target),
                ms(judged - target)
            ),
            None => String::new(),
        };
        let p99 = if what == "p99" {
            ms(self.p99())
        } else {
            "-".to_owned()
        };
        println!(
            "{name:<58} n={:<5} median {:>9}  p99 {p99:>9}  max {:>9}{verdict}",
            self.len(),
            ms(self.median()),
            ms(self.max()),
        );
    }
}

/// Fewest samples a p99 is quoted from: below that, the tail is one or two samples wide.
pub const P99_MIN_SAMPLES: usize = 1_000;

/// A duration in milliseconds with enough digits for sub-millisecond figures.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Prints a rate against a floor.
pub fn report_rate(name: &str, count: u64, elapsed: Duration, unit: &str, target: Option<f64>) {
    let rate = count as f64 / elapsed.as_secs_f64();
    let verdict = match target {
        Some(t) if rate >= t => format!("  target >= {t:.0} {unit}/s met"),
        Some(t) => format!(
            "  target >= {t:.0} {unit}/s MISSED by {:.0}%",
            (1.0 - rate / t) * 100.0
        ),
        None => String::new(),
    };
    println!(
        "{name:<58} {count} {unit} in {:.2} s = {rate:.0} {unit}/s{verdict}",
        elapsed.as_secs_f64()
    );
}

/// Resident memory of a process in kB (`VmRSS` from /proc), if it is still running.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
