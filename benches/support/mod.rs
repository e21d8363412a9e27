//! What the plain-table harnesses (`latency`, `cancel`) share: how big a run
//! is, exact percentiles, and the runtime they measure on.
#![allow(dead_code)] // Each harness uses a different subset.

use std::time::Duration;

use tokio::runtime::Runtime;

/// How big a run is, chosen from the command line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--test`, or no `--bench` (as under `cargo test --benches`): tiny
    /// counts, as criterion's smoke run.
    Smoke,
    /// `--quick` or `TASKPLAN_BENCH_QUICK=1`: about 20 times smaller.
    Quick,
    Full,
}

impl Mode {
    pub fn from_args() -> Mode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |flag: &str| args.iter().any(|arg| arg == flag);
        let quick_env = std::env::var("TASKPLAN_BENCH_QUICK").is_ok_and(|value| value == "1");
        // `cargo bench` passes `--bench`; without it the binary runs under
        // `cargo test --benches`, which wants a smoke run, as in criterion.
        if has("--test") || !has("--bench") {
            Mode::Smoke
        } else if has("--quick") || quick_env {
            Mode::Quick
        } else {
            Mode::Full
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke (--test)",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Nearest-rank percentile `num / den` (e.g. 999/1000 for p99.9) of sorted
/// samples: the smallest sample with at least that fraction of the samples
/// at or below it. Integer arithmetic, so p99.9 of 1,000 samples is exactly
/// the 999th.
pub fn percentile(sorted: &[Duration], num: usize, den: usize) -> Duration {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (num * sorted.len()).div_ceil(den).max(1);
    sorted[rank - 1]
}

pub fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

pub fn multi_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the multi-thread runtime")
}
