//! Cancellation benchmark: how soon a cancelled task's worker moves on, and
//! how long stopping a plan with a long queue takes, against the hand-rolled
//! equivalents.
//!
//! Run with `cargo bench --bench cancel`. `-- --quick` (or
//! `TASKPLAN_BENCH_QUICK=1`) shrinks every count about 20x; `-- --test` is a
//! smoke run with tiny counts that finishes in a couple of seconds. As with
//! criterion, running the binary without `--bench` (which is how
//! `cargo test --benches` runs it) is also a smoke run. Other arguments are
//! ignored.
//!
//! # (a) Cancel to next task
//!
//! One worker slot. Task A signals that it started and then parks forever
//! (`std::future::pending`); task B is queued behind it and returns
//! `Instant::now()` from its first poll. Once A has started and B is
//! waiting: `t0 = Instant::now()`, cancel A, and the sample is B's start
//! minus `t0`. So it covers the cancel call, dropping A, freeing the slot,
//! waking whoever runs B and B's first poll: how long a cancelled task keeps
//! its worker from the next one. Each iteration reuses the same plan, pool
//! or worker; the first few are a discarded warm-up. Exact nearest-rank
//! p50, p99, p99.9 and max, in µs, on a multi-thread runtime (2 worker
//! threads) and a current-thread runtime; the measuring loop runs in a task
//! spawned on the runtime under test. Peers:
//!
//! - `taskplan`: `Plan` with 1 worker; B is `submit`ted once A runs (so it
//!   is queued); cancel is `TaskHandle::cancel` on A.
//! - `spawn+sem(1)`: `tokio::spawn` + `Semaphore(1)`. A holds the only
//!   permit; B is spawned once A runs and signals only after its `acquire`
//!   returned `Pending` (so it is registered as a waiter); cancel is
//!   `JoinHandle::abort` on A, whose drop releases the permit.
//! - `worker+child token`: one worker task (spawned on a `TaskTracker`)
//!   pulls `(job, token)` pairs from an mpsc channel and races each job
//!   against its own `child_token()` of a parent token in a `select!`
//!   (biased, token first: a cancelled job is never polled again), the usual
//!   tokio-util idiom; B is sent while A runs; cancel is `token.cancel()`.
//!
//! The target for taskplan: p99 under 20 µs.
//!
//! # (b) Abort 100,000 queued
//!
//! Multi-thread runtime, 2 worker threads. For taskplan: a plan with 1
//! worker (issue 11's setup) and one with 4, room for everything, one task
//! per worker parked forever (waited for until all run) and 100,000 queued
//! behind them with `try_submit`, every handle kept. Timed: from calling `plan.abort().await` until it returned *and*
//! every handle has resolved. `abort` promises the latter on return, so each
//! handle's `is_finished()` is checked right after; any that is not is
//! awaited inside the timed span, counted in the `late` column, and fails
//! the run at the end, after the tables. The handles themselves are dropped
//! after the timed span, as a caller holding them would.
//!
//! Peer: the `TaskTracker` + `CancellationToken` idiom, 100,000 tasks
//! spawned with `tracker.spawn`, each `select!`ing its job (pending forever)
//! against `token.cancelled()`. Two rows: one shared token cloned into every
//! task (`token.clone()`, what the tokio graceful-shutdown guide shows), and
//! one `child_token()` per task. Every task has been polled once (a counter
//! of started tasks reached 100,000, then one more yield) before timing
//! `token.cancel(); tracker.close(); tracker.wait().await`.
//!
//! Each is repeated on a fresh plan or tracker, rounds taken in turns across
//! the peers; reported: median and min in ms, and the ratio of each peer's
//! median to the 1-worker taskplan's. The target for taskplan: at least 5x
//! faster than the tracker drain.
//!
//! # Results files
//!
//! Outside a smoke run, (a)'s table is written to
//! `target/criterion/cancel_latency.txt` and (b)'s to
//! `target/criterion/abort_queued.txt` (replacing the last run's), each
//! under a `#` line with the time, the mode and the cache-line round trip
//! (`support/rtt.rs`) probed right before and after that part, for
//! `scripts/bench_table.py`.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskplan::{Plan, TaskHandle};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod support;
use support::{micros, multi_thread_runtime, percentile};

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How big a run is, chosen from the command line.
struct Params {
    mode: &'static str,
    /// Measured cancel-to-next iterations per (runtime, peer).
    iterations: usize,
    /// Discarded iterations before those.
    warmup: usize,
    /// Queued tasks (and tracker tasks) in the abort comparison.
    queued: usize,
    /// Rounds of the abort comparison.
    rounds: usize,
}

impl Params {
    fn from_args() -> Params {
        let mode = support::Mode::from_args();
        let (iterations, warmup, queued, rounds) = match mode {
            support::Mode::Smoke => (200, 20, 1_000, 3),
            support::Mode::Quick => (500, 50, 5_000, 5),
            support::Mode::Full => (10_000, 500, 100_000, 7),
        };
        Params {
            mode: mode.name(),
            iterations,
            warmup,
            queued,
            rounds,
        }
    }
}

// ---------------------------------------------------------------------------
// (a) Cancel to next task
// ---------------------------------------------------------------------------

/// A task that says it started, then never finishes on its own.
async fn parked(started: oneshot::Sender<()>) {
    // The receiver is alive until the signal arrives.
    let _ = started.send(());
    std::future::pending::<()>().await;
}

/// Runs `future`, sending `waiting` the first time it returns `Pending`: by
/// then it has registered its waker wherever it waits.
async fn signal_when_waiting<F: Future>(future: F, waiting: oneshot::Sender<()>) -> F::Output {
    let mut future = pin!(future);
    let mut waiting = Some(waiting);
    poll_fn(|cx| {
        let poll = future.as_mut().poll(cx);
        if poll.is_pending() {
            if let Some(waiting) = waiting.take() {
                let _ = waiting.send(());
            }
        }
        poll
    })
    .await
}

/// `taskplan`: cancel A with `TaskHandle::cancel`; B is queued behind it.
async fn taskplan_cancel(iterations: usize) -> Vec<Duration> {
    let plan = Plan::builder()
        .workers(1)
        .capacity(16)
        .name("cancel")
        .build()
        .expect("inside a runtime");
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let (started_tx, started_rx) = oneshot::channel();
        let a = plan
            .submit(parked(started_tx))
            .await
            .expect("the plan is open");
        started_rx.await.expect("A starts");
        // The only worker runs A, so B stays queued.
        let b = plan
            .submit(async { Instant::now() })
            .await
            .expect("the plan is open");
        let t0 = Instant::now();
        a.cancel();
        let b_started = b.await.expect("B runs to the end");
        samples.push(b_started.saturating_duration_since(t0));
        let a_error = a.await.expect_err("A never finishes on its own");
        assert!(a_error.is_cancelled(), "A ended as cancelled: {a_error}");
    }
    let report = plan.shutdown(Duration::from_secs(5)).await;
    assert!(!report.forced, "nothing was left running");
    samples
}

/// `spawn+sem(1)`: A holds the only permit, B waits for it; cancel A with
/// `JoinHandle::abort`.
async fn spawn_semaphore_cancel(iterations: usize) -> Vec<Duration> {
    let permits = Arc::new(Semaphore::new(1));
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let (started_tx, started_rx) = oneshot::channel();
        let a = tokio::spawn({
            let permits = Arc::clone(&permits);
            async move {
                let _permit = permits.acquire().await.expect("never closed");
                parked(started_tx).await;
            }
        });
        started_rx.await.expect("A starts");
        let (waiting_tx, waiting_rx) = oneshot::channel();
        let b = tokio::spawn({
            let permits = Arc::clone(&permits);
            async move {
                let _permit = signal_when_waiting(permits.acquire(), waiting_tx)
                    .await
                    .expect("never closed");
                Instant::now()
            }
        });
        waiting_rx.await.expect("B waits for the permit");
        let t0 = Instant::now();
        a.abort();
        let b_started = b.await.expect("B runs to the end");
        samples.push(b_started.saturating_duration_since(t0));
        let a_error = a.await.expect_err("A never finishes on its own");
        assert!(a_error.is_cancelled(), "A ended as aborted: {a_error}");
    }
    samples
}

/// `worker+child token`: one worker races each job against its own child
/// token; cancel A with `token.cancel()`.
async fn token_worker_cancel(iterations: usize) -> Vec<Duration> {
    let tracker = TaskTracker::new();
    let parent = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Job, CancellationToken)>();
    tracker.spawn(async move {
        while let Some((job, token)) = rx.recv().await {
            tokio::select! {
                biased;
                () = token.cancelled() => {}
                () = job => {}
            }
        }
    });
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let (started_tx, started_rx) = oneshot::channel();
        let a_token = parent.child_token();
        tx.send((Box::pin(parked(started_tx)), a_token.clone()))
            .expect("the worker is running");
        started_rx.await.expect("A starts");
        // The only worker runs A, so B stays in the channel.
        let (b_tx, b_rx) = oneshot::channel();
        let b: Job = Box::pin(async move {
            let _ = b_tx.send(Instant::now());
        });
        tx.send((b, parent.child_token()))
            .expect("the worker is running");
        let t0 = Instant::now();
        a_token.cancel();
        let b_started = b_rx.await.expect("B runs to the end");
        samples.push(b_started.saturating_duration_since(t0));
    }
    drop(tx);
    tracker.close();
    tracker.wait().await;
    samples
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the current-thread runtime")
}

/// Runs `job(iterations)` in a task spawned on `rt`, after a discarded
/// warm-up of `warmup` iterations, and returns the sorted samples.
fn measure<F, Fut>(rt: &Runtime, params: &Params, job: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Vec<Duration>> + Send + 'static,
{
    rt.block_on(rt.spawn(job(params.warmup)))
        .expect("the warm-up panicked");
    let mut samples = rt
        .block_on(rt.spawn(job(params.iterations)))
        .expect("the measuring task panicked");
    samples.sort_unstable();
    samples
}

/// Prints a line and keeps it in `$out`, the text of a results file.
macro_rules! outln {
    ($out:expr) => {{
        println!();
        $out.push('\n');
    }};
    ($out:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $out.push_str(&line);
        $out.push('\n');
    }};
}

/// Runs (a) and returns its table, as printed.
fn cancel_to_next(params: &Params) -> String {
    let mut out = String::new();
    outln!(
        out,
        "(a) cancel to next task: one worker slot; A parked, B queued; B's start - cancel call (µs)"
    );
    outln!(
        out,
        "{:<16} {:<20} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "runtime",
        "peer",
        "n",
        "p50",
        "p99",
        "p99.9",
        "max"
    );
    for (flavor, rt) in [
        ("multi-thread(2)", multi_thread_runtime()),
        ("current-thread", current_thread_runtime()),
    ] {
        let rows = [
            ("taskplan", measure(&rt, params, taskplan_cancel)),
            ("spawn+sem(1)", measure(&rt, params, spawn_semaphore_cancel)),
            (
                "worker+child token",
                measure(&rt, params, token_worker_cancel),
            ),
        ];
        for (peer, samples) in &rows {
            outln!(
                out,
                "{:<16} {:<20} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
                flavor,
                peer,
                samples.len(),
                micros(percentile(samples, 1, 2)),
                micros(percentile(samples, 99, 100)),
                micros(percentile(samples, 999, 1000)),
                micros(percentile(samples, 1, 1)),
            );
        }
        let p99 = micros(percentile(&rows[0].1, 99, 100));
        outln!(
            out,
            "{:<16} target taskplan p99 < 20 µs: {} ({p99:.1} µs)",
            flavor,
            if p99 < 20.0 { "met" } else { "NOT met" }
        );
    }
    outln!(out);
    out
}

// ---------------------------------------------------------------------------
// (b) Abort 100,000 queued
// ---------------------------------------------------------------------------

/// Workers of the plans in the abort comparison, each worker holding a
/// parked task: 1 (issue 11's setup: one worker, one blocker) and 4.
const ABORT_WORKERS: [usize; 2] = [1, 4];

/// One taskplan abort.
struct PlanAbort {
    /// From the `abort` call until every handle has resolved.
    elapsed: Duration,
    /// Handles not yet resolved when `abort` returned.
    late: usize,
    /// What went against `abort`'s contract, if anything.
    anomalies: Vec<String>,
}

async fn taskplan_abort(queued: usize, workers: usize) -> PlanAbort {
    let total = queued + workers;
    let plan = Plan::builder()
        .workers(workers)
        .capacity(total)
        .name("abort")
        .build()
        .expect("inside a runtime");
    let mut handles: Vec<TaskHandle<()>> = Vec::with_capacity(total);
    let mut started = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (started_tx, started_rx) = oneshot::channel();
        handles.push(plan.try_submit(parked(started_tx)).expect("room"));
        started.push(started_rx);
    }
    for started_rx in started {
        started_rx.await.expect("a parked task starts");
    }
    for _ in 0..queued {
        handles.push(plan.try_submit(std::future::pending::<()>()).expect("room"));
    }

    let t0 = Instant::now();
    let report = plan.abort().await;
    let mut awaited = vec![false; total];
    let mut late_results = Vec::new();
    for (handle, awaited) in handles.iter_mut().zip(&mut awaited) {
        if !handle.is_finished() {
            *awaited = true;
            late_results.push(handle.await);
        }
    }
    let elapsed = t0.elapsed();

    // Untimed: did everything end as `abort` promises?
    let late = late_results.len();
    let mut anomalies = Vec::new();
    if late > 0 {
        anomalies.push(format!(
            "{late} of {total} handles unresolved when abort() returned"
        ));
    }
    if report.cancelled != total || report.completed != 0 {
        anomalies.push(format!(
            "report: {} cancelled, {} completed; expected {total} and 0",
            report.cancelled, report.completed
        ));
    }
    let mut not_cancelled = late_results
        .into_iter()
        .filter(|result| !result.as_ref().is_err_and(|error| error.is_cancelled()))
        .count();
    for (handle, awaited) in handles.into_iter().zip(awaited) {
        if !awaited && !handle.await.is_err_and(|error| error.is_cancelled()) {
            not_cancelled += 1;
        }
    }
    if not_cancelled > 0 {
        anomalies.push(format!(
            "{not_cancelled} handles did not resolve as cancelled"
        ));
    }
    PlanAbort {
        elapsed,
        late,
        anomalies,
    }
}

/// The `TaskTracker` + `CancellationToken` drain: `tasks` tracked tasks, each
/// racing a job that never ends against a clone of one token, or against its
/// own child token.
async fn tracker_abort(tasks: usize, child_tokens: bool) -> Duration {
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..tasks {
        let token = if child_tokens {
            token.child_token()
        } else {
            token.clone()
        };
        let started = Arc::clone(&started);
        tracker.spawn(async move {
            started.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = token.cancelled() => {}
                () = std::future::pending::<()>() => {}
            }
        });
    }
    // Every task polled once, so every one waits on its token.
    while started.load(Ordering::Relaxed) < tasks {
        tokio::task::yield_now().await;
    }
    // The last counted task registers with its token later in the same poll.
    tokio::task::yield_now().await;

    let t0 = Instant::now();
    token.cancel();
    tracker.close();
    tracker.wait().await;
    t0.elapsed()
}

/// Runs (b) and returns what went against `abort`'s contract and the
/// table, as printed.
fn abort_queued(params: &Params) -> (Vec<String>, String) {
    let rt = multi_thread_runtime();
    let queued = params.queued;
    let mut plan_times = vec![Vec::new(); ABORT_WORKERS.len()];
    let mut late = vec![0; ABORT_WORKERS.len()];
    let mut anomalies = Vec::new();
    let mut clone_times = Vec::new();
    let mut child_times = Vec::new();
    // Rounds taken in turns across the peers, so a noisy moment does not
    // hit one peer only.
    for _ in 0..params.rounds {
        for (index, &workers) in ABORT_WORKERS.iter().enumerate() {
            let run = rt
                .block_on(rt.spawn(taskplan_abort(queued, workers)))
                .expect("the taskplan abort panicked");
            plan_times[index].push(run.elapsed);
            late[index] += run.late;
            anomalies.extend(run.anomalies);
        }
        clone_times.push(
            rt.block_on(rt.spawn(tracker_abort(queued, false)))
                .expect("the tracker drain panicked"),
        );
        child_times.push(
            rt.block_on(rt.spawn(tracker_abort(queued, true)))
                .expect("the tracker drain panicked"),
        );
    }

    let median = |times: &mut Vec<Duration>| {
        times.sort_unstable();
        times[(times.len() - 1) / 2]
    };
    let plan_medians: Vec<Duration> = plan_times.iter_mut().map(median).collect();
    // The reference: one worker, as in issue 11.
    let reference = plan_medians[0];
    let mut out = String::new();
    outln!(
        out,
        "(b) abort {queued} queued (+1 running per worker) vs tracker drain of {queued} tasks; \
         multi-thread(2); {} rounds (ms)",
        params.rounds
    );
    outln!(
        out,
        "{:<28} {:>9} {:>9} {:>14} {:>6}",
        "peer",
        "median",
        "min",
        "x taskplan w1",
        "late"
    );
    for (index, &workers) in ABORT_WORKERS.iter().enumerate() {
        outln!(
            out,
            "{:<28} {:>9.2} {:>9.2} {:>14.1} {:>6}",
            format!("taskplan abort() w{workers}"),
            millis(plan_medians[index]),
            millis(plan_times[index][0]),
            plan_medians[index].as_secs_f64() / reference.as_secs_f64(),
            late[index]
        );
    }
    let mut tracker_median = Duration::ZERO;
    for (peer, times) in [
        ("tracker + token.clone()", &mut clone_times),
        ("tracker + child_token()", &mut child_times),
    ] {
        let peer_median = median(times);
        if tracker_median.is_zero() {
            tracker_median = peer_median;
        }
        outln!(
            out,
            "{:<28} {:>9.2} {:>9.2} {:>14.1} {:>6}",
            peer,
            millis(peer_median),
            millis(times[0]),
            peer_median.as_secs_f64() / reference.as_secs_f64(),
            "-"
        );
    }
    for (index, &workers) in ABORT_WORKERS.iter().enumerate() {
        let ratio = tracker_median.as_secs_f64() / plan_medians[index].as_secs_f64();
        outln!(
            out,
            "target taskplan w{workers} >= 5x faster than the tracker + token.clone() drain: \
             {} ({ratio:.1}x)",
            if ratio >= 5.0 { "met" } else { "NOT met" }
        );
    }
    (anomalies, out)
}

/// A header for a results file: when, how big the run was, and the
/// cache-line round trip right before and after it.
fn file_header(params: &Params, before: f64, after: f64) -> String {
    let (secs, when) = support::rtt::timestamp();
    format!(
        "# {when} ({secs}); mode {}; cache-line round trip before {before:.1} ns ({}), \
         after {after:.1} ns ({})\n",
        params.mode,
        support::rtt::label(before),
        support::rtt::label(after),
    )
}

fn main() {
    let params = Params::from_args();
    let smoke = support::Mode::from_args() == support::Mode::Smoke;
    println!("cancel: cancellation costs");
    println!(
        "mode {}; (a) {} iterations per row after {} warm-up; (b) {} queued, {} rounds",
        params.mode, params.iterations, params.warmup, params.queued, params.rounds
    );
    println!();
    let rtt_before = support::rtt::probe(support::rtt::BATCHES);
    let latency = cancel_to_next(&params);
    let rtt_between = support::rtt::probe(support::rtt::BATCHES);
    let (anomalies, abort) = abort_queued(&params);
    let rtt_after = support::rtt::probe(support::rtt::BATCHES);
    println!(
        "cache-line round trip: {rtt_before:.1} ns before (a), {rtt_between:.1} ns between, \
         {rtt_after:.1} ns after (b)"
    );
    if smoke {
        println!("(smoke run: cancel_latency.txt and abort_queued.txt not written)");
    } else {
        let header = file_header(&params, rtt_before, rtt_between);
        support::write_results("cancel_latency.txt", &(header + &latency), false);
        let header = file_header(&params, rtt_between, rtt_after);
        support::write_results("abort_queued.txt", &(header + &abort), false);
    }
    // Reported after the tables, so a broken contract still shows the
    // numbers it produced.
    assert!(
        anomalies.is_empty(),
        "Plan::abort broke its contract:\n{}",
        anomalies.join("\n")
    );
}
