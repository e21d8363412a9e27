//! What the harnesses share: how big a run is, exact percentiles, the
//! runtime they measure on, the cache-line round-trip probe ([`rtt`]), and
//! where result files go ([`results_dir`]).
#![allow(dead_code)] // Each harness uses a different subset.

pub mod rtt;

use std::io::Write as _;
use std::path::PathBuf;
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

/// Criterion's output directory, found as criterion finds it:
/// `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else
/// `target/criterion` (`cargo bench` runs a bench in the package root). The
/// plain-text results (`cache_line_rtt.txt`, `memory_per_task.txt`,
/// `cancel_latency.txt`, `abort_queued.txt`) go there, beside criterion's own,
/// for `scripts/bench_table.py`.
pub fn results_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        PathBuf::from(home)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(target).join("criterion")
    } else {
        PathBuf::from("target/criterion")
    }
}

/// Appends `text` to `name` in [`results_dir`] (if `append`) or replaces
/// it, and says where it went. A failure to write is reported, not fatal:
/// the figures were printed already.
pub fn write_results(name: &str, text: &str, append: bool) {
    let dir = results_dir();
    let path = dir.join(name);
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&path)?;
        file.write_all(text.as_bytes())
    });
    match result {
        Ok(()) => println!(
            "{} {}",
            if append { "appended to" } else { "wrote" },
            path.display()
        ),
        Err(error) => eprintln!("could not write {}: {error}", path.display()),
    }
}
