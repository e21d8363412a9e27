//! Cache-line round-trip probe: how far apart the machine's two vCPUs are
//! right now.
//!
//! Two OS threads ping-pong one `AtomicU64`: the pinger stores an odd value
//! and spins (`std::hint::spin_loop`) until it reads the next even one, which
//! the ponger stores once it has seen the odd one. One round trip moves the
//! cache line there and back. Rounds are timed in batches of [`BATCH`] (a
//! clock read per round trip would cost as much as a near round trip); the
//! result is the median over the batches of ns per round trip, so a batch
//! that a preemption hit does not move it. A probe gives up after
//! [`DEADLINE`] with the batches it has.
//!
//! On this 2-vCPU VM a round trip costs 50-100 ns when the vCPUs are close
//! and 400-500 ns when they are far apart, and multi-thread throughput
//! follows: [`label`] names the state, or says `busy` when another process
//! kept the two threads from running at once and the figure is no round
//! trip. Both threads spin, so the probe
//! needs both cores to itself for its few milliseconds; run it between
//! benchmarks, never during one.

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Round trips per timed batch: small, so that most batches fit between two
/// preemptions even on a loaded machine, and large enough that the two clock
/// reads per batch (about 25 ns each) add only a few ns per round trip.
pub const BATCH: u64 = 20;
/// Timed batches in a default probe: 20,000 round trips, 2-10 ms.
pub const BATCHES: usize = 1_000;
/// Round trips above this many ns mean the vCPUs are far apart.
pub const FAR_NS: f64 = 250.0;
/// A median above this many ns is no cache-line round trip at all: the two
/// threads did not run at once for most batches (another process held a
/// vCPU), and the figure measures the scheduler.
pub const BUSY_NS: f64 = 5_000.0;
/// Spins after which a waiting thread yields its vCPU, in case the other
/// thread waits for it to run there.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;
/// A probe stops after this long even if it has not run all its batches:
/// on a loaded machine the two spinning threads can end up taking turns on
/// one vCPU, a time slice per round trip.
pub const DEADLINE: Duration = Duration::from_millis(300);
/// What the pinger stores to tell the ponger to stop.
const STOP: u64 = u64::MAX;

/// The cache line the two threads share, alone on its line.
#[repr(align(128))]
struct Line(AtomicU64);

/// Median ns per round trip over `batches` batches of [`BATCH`] round trips,
/// after a discarded warm-up batch; fewer batches (at least one) if
/// [`DEADLINE`] passed first.
pub fn probe(batches: usize) -> f64 {
    assert!(batches > 0, "at least one batch");
    let line = Arc::new(Line(AtomicU64::new(0)));
    let ponger = {
        let line = Arc::clone(&line);
        std::thread::spawn(move || {
            let mut ping = 1;
            loop {
                let seen = wait_for(&line.0, |seen| seen == ping || seen == STOP);
                if seen == STOP {
                    return;
                }
                line.0.store(ping + 1, Ordering::Release);
                ping += 2;
            }
        })
    };
    let deadline = Instant::now() + DEADLINE;
    let mut per_round = Vec::with_capacity(batches);
    let mut round = 0;
    for batch in 0..=batches {
        let start = Instant::now();
        for _ in 0..BATCH {
            let ping = 2 * round + 1;
            line.0.store(ping, Ordering::Release);
            wait_for(&line.0, |seen| seen == ping + 1);
            round += 1;
        }
        let elapsed = start.elapsed();
        // Batch 0 only brings both threads up to speed.
        if batch > 0 {
            per_round.push(elapsed.as_nanos() as f64 / BATCH as f64);
            if Instant::now() > deadline {
                break;
            }
        }
    }
    line.0.store(STOP, Ordering::Release);
    ponger.join().expect("the ponger thread panicked");
    per_round.sort_by(f64::total_cmp);
    per_round[per_round.len() / 2]
}

/// Spins until `done` holds for the line's value, yielding now and then.
fn wait_for(line: &AtomicU64, done: impl Fn(u64) -> bool) -> u64 {
    let mut spins = 0u32;
    loop {
        let seen = line.load(Ordering::Acquire);
        if done(seen) {
            return seen;
        }
        spins += 1;
        if spins % SPINS_BEFORE_YIELD == 0 {
            std::thread::yield_now();
        } else {
            spin_loop();
        }
    }
}

/// "near", "far", or "busy" (no valid round trip: see [`BUSY_NS`]), for a
/// probe's median of `ns`.
pub fn label(ns: f64) -> &'static str {
    if ns > BUSY_NS {
        "busy"
    } else if ns > FAR_NS {
        "far"
    } else {
        "near"
    }
}

/// Seconds since the Unix epoch, and the same instant as
/// `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date crate.
pub fn timestamp() -> (u64, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let iso = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    );
    (secs, iso)
}

/// One line of `cache_line_rtt.txt`: `<when> <ns> <unix secs> <UTC> <label>`,
/// e.g. `before 87.4 1764630000 2025-12-01T23:00:00Z near`.
pub fn record_line(when: &str, ns: f64) -> String {
    let (secs, iso) = timestamp();
    format!("{when} {ns:.1} {secs} {iso} {}", label(ns))
}
