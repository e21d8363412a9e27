//! Open-loop latency benchmark: how long a task waits between the moment it
//! was *due* to arrive and the moment it starts running, at 50% and 90% of
//! each peer's own peak throughput.
//!
//! Run with `cargo bench --bench latency`. `-- --quick` (or
//! `TASKPLAN_BENCH_QUICK=1`) shrinks every count about 20x; `-- --test` is a
//! smoke run with tiny counts that finishes in a couple of seconds. As with
//! criterion, running the binary without `--bench` (which is how
//! `cargo test --benches` runs it) is also a smoke run. Other arguments are
//! ignored.
//!
//! # What is measured
//!
//! Every peer runs the same task body: record `Instant::now()` as the task's
//! start and the thread it runs on (two relaxed stores into preallocated
//! slots), busy-spin for [`WORK`] (5 µs) from that instant, count itself
//! done. The fixed CPU cost makes the peak a rate a generator can pace; the
//! recording costs the same for every peer.
//!
//! 1. **Peak**: closed-loop throughput. The generator submits a batch as fast
//!    as it can and waits for the last task; tasks/s is the batch size over
//!    the time from the first submit to the last completion. Best of
//!    several rounds, taken in turns across the peers so that a noisy moment
//!    on the (shared, 2-core) machine does not hit one peer only.
//! 2. **Open loop**: arrivals on a fixed schedule, `t_i = t0 + i * interval`,
//!    at 50% and 90% of *that peer's own* peak. The schedule never slows
//!    down when the system falls behind: whenever the generator runs it
//!    submits every task already due, and when it is ahead it
//!    `yield_now()`s until the next one is. Latency is measured from the
//!    *scheduled* arrival `t_i`, not from the submit call, so a generator
//!    held up by a busy system does not hide the delay (no coordinated
//!    omission). The `gen lag` column is the part of that delay spent before
//!    the submit call (the generator itself was late); the rest is queueing
//!    and scheduling inside the peer.
//!
//! Reported per (peer, load): offered rate, achieved rate (arrivals over the
//! time from `t0` to the last completion), and exact nearest-rank p50, p99,
//! p99.9 and max of the latencies, in µs; each the median over several
//! rounds (taken in turns across the peers), with the range of p99 over the
//! rounds as a noise gauge. Two diagnostic columns: `gen lag99` (above) and
//! `local%`, the share of tasks that started on the worker thread the
//! generator was on when it submitted them: near 100% means the peer ran
//! everything on one of the two threads.
//!
//! # Setup
//!
//! One multi-thread Tokio runtime, 2 worker threads, `enable_all`, shared by
//! all peers (idle peers cost nothing). The generator runs in a task spawned
//! on that runtime, not in `block_on` on the bench thread, so it shares the
//! two worker threads with the tasks as a server task that submits work
//! does; a task running on the generator's thread therefore delays the
//! generator too, and that shows in the latencies, as it would in a server.
//!
//! Queue and channel capacities are [`CAPACITY`] (65,536), above the number
//! of arrivals in a run, so no peer ever pushes back on the generator:
//! backpressure would turn the open loop into a closed one.
//!
//! # Reading the results
//!
//! - Tokio runs a task that called `yield_now()` again only once its worker
//!   has nothing else to run (or at its periodic maintenance), so a peer
//!   that keeps the generator's worker busy makes the generator late. That
//!   delay is real (it is what another task on that worker would see) and
//!   shows in `gen lag99`.
//! - The peak is closed-loop, where the generator submits in a burst and
//!   then sleeps; pacing an open loop costs the generator more CPU, so 90%
//!   of that peak can be at or past what the peer sustains open-loop. An
//!   achieved rate below the offered one, with latencies that grow to
//!   milliseconds, means the run was overloaded, not merely slow.
//! - The machine is small and shared: look at the p99 range before reading
//!   much into a difference in p99 or p99.9.
//!
//! # Peers
//!
//! - `taskplan w=2`, `taskplan w=4`: a `Plan` with 2 or 4 workers,
//!   `submit(..).await`, handle dropped (the task is detached).
//! - `joinset+sem(4)`: `JoinSet::spawn` per task; the task acquires one of 4
//!   semaphore permits *inside* itself, so the generator is never blocked;
//!   the open-loop form of the hand-rolled bounded pool.
//! - `tokio::spawn`: unbounded, `JoinHandle` dropped.
//! - `async-channel(4)`: 4 worker tasks pulling boxed futures from an
//!   `async_channel::bounded(65_536)`.
//!
//! Every peer learns that its batch is done the same way: the task that
//! brings the shared done-count to the batch size records the end time and
//! wakes the generator.

use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use taskplan::Plan;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

mod support;
use support::{micros, multi_thread_runtime, percentile};

/// CPU time each task spends, busy-spinning.
const WORK: Duration = Duration::from_micros(5);
/// Concurrency limit of the bounded peers.
const LIMIT: usize = 4;
/// Queue and channel capacity; larger than any run's number of arrivals.
const CAPACITY: usize = 65_536;
/// Open-loop loads, in percent of the peer's own peak.
const LOADS: [u32; 2] = [50, 90];

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A small number naming the current thread, for the `local%` column.
fn thread_tag() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    thread_local! {
        static TAG: Cell<u8> = const { Cell::new(0) };
    }
    TAG.with(|tag| {
        if tag.get() == 0 {
            tag.set(NEXT.fetch_add(1, Ordering::Relaxed).max(1));
        }
        tag.get()
    })
}

/// How big a run is, chosen from the command line.
struct Params {
    mode: &'static str,
    /// Tasks per closed-loop (peak) run.
    peak_tasks: usize,
    /// Closed-loop rounds per peer; the best one is the peak.
    peak_rounds: usize,
    /// Arrivals per open-loop run.
    arrivals: usize,
    /// Open-loop runs per (peer, load); each statistic is the median over
    /// them.
    open_rounds: usize,
}

impl Params {
    fn from_args() -> Params {
        let mode = support::Mode::from_args();
        let (peak_tasks, peak_rounds, arrivals, open_rounds) = match mode {
            support::Mode::Smoke => (200, 1, 200, 1),
            support::Mode::Quick => (1_000, 3, 2_500, 3),
            support::Mode::Full => (20_000, 3, 50_000, 5),
        };
        Params {
            mode: mode.name(),
            peak_tasks,
            peak_rounds,
            arrivals,
            open_rounds,
        }
    }
}

/// Per-run measurement state shared by the generator and the tasks.
struct Recorder {
    /// All times are nanoseconds since this instant.
    base: Instant,
    /// Each task's start time; written once by the task.
    starts: Box<[AtomicU64]>,
    /// The thread each task started on (see [`thread_tag`]).
    threads: Box<[AtomicU8]>,
    done: AtomicUsize,
    /// When the last task finished; zero until then.
    end: AtomicU64,
    all_done: Notify,
}

impl Recorder {
    fn new(tasks: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            base: Instant::now(),
            starts: (0..tasks).map(|_| AtomicU64::new(0)).collect(),
            threads: (0..tasks).map(|_| AtomicU8::new(0)).collect(),
            done: AtomicUsize::new(0),
            end: AtomicU64::new(0),
            all_done: Notify::new(),
        })
    }

    fn ns(&self, at: Instant) -> u64 {
        at.duration_since(self.base).as_nanos() as u64
    }

    fn now_ns(&self) -> u64 {
        self.ns(Instant::now())
    }

    /// The task body shared by every peer: record the start, spin for
    /// [`WORK`], count itself done.
    fn task(self: &Arc<Recorder>, index: usize) -> impl Future<Output = ()> + Send + 'static {
        let recorder = Arc::clone(self);
        async move {
            let started = Instant::now();
            recorder.starts[index].store(recorder.ns(started), Ordering::Relaxed);
            recorder.threads[index].store(thread_tag(), Ordering::Relaxed);
            while started.elapsed() < WORK {
                std::hint::spin_loop();
            }
            // The AcqRel chain on `done` makes every task's stores
            // visible to whoever sees the last task's `end`.
            if recorder.done.fetch_add(1, Ordering::AcqRel) + 1 == recorder.starts.len() {
                // Never zero: `base` was taken before any task existed.
                recorder.end.store(recorder.now_ns(), Ordering::Release);
                recorder.all_done.notify_one();
            }
        }
    }

    /// Waits for the last task; returns its end time.
    async fn wait_all(&self) -> u64 {
        loop {
            let mut notified = pin!(self.all_done.notified());
            notified.as_mut().enable();
            let end = self.end.load(Ordering::Acquire);
            if end != 0 {
                return end;
            }
            notified.await;
        }
    }
}

/// A way of running tasks. Cheap to clone: clones share the pool.
#[derive(Clone)]
enum Peer {
    Taskplan(Plan),
    JoinSetSemaphore(Arc<Semaphore>),
    Spawn,
    ChannelPool(async_channel::Sender<Job>),
}

/// A peer plus the per-run state a caller of it would keep.
struct Submitter {
    peer: Peer,
    set: JoinSet<()>,
}

impl Submitter {
    async fn submit<F>(&mut self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.peer {
            Peer::Taskplan(plan) => {
                drop(plan.submit(task).await.expect("the plan is open"));
            }
            Peer::JoinSetSemaphore(permits) => {
                let permits = Arc::clone(permits);
                self.set.spawn(async move {
                    let _permit = permits
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    task.await;
                });
            }
            Peer::Spawn => drop(tokio::spawn(task)),
            Peer::ChannelPool(tx) => {
                let job: Job = Box::pin(task);
                tx.send(job).await.expect("the pool's workers are running");
            }
        }
    }

    /// Reaps what the peer keeps after the batch (the `JoinSet`'s entries).
    async fn finish(mut self) {
        while let Some(joined) = self.set.join_next().await {
            joined.expect("the task body does not panic");
        }
    }
}

/// One run's raw results.
struct Run {
    tasks: usize,
    /// From the first due time (or first submit) to the last completion.
    elapsed: Duration,
    /// Start minus scheduled arrival, per task (open loop only).
    latencies: Vec<Duration>,
    /// Submit call minus scheduled arrival, per task (open loop only).
    lags: Vec<Duration>,
    /// Tasks that started on the thread the generator submitted them from
    /// (open loop only).
    local: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.tasks as f64 / self.elapsed.as_secs_f64()
    }
}

/// Pushes `tasks` tasks through `peer`: as fast as possible when `interval`
/// is `None` (closed loop), else one every `interval` nanoseconds on a fixed
/// schedule (open loop).
async fn run(peer: Peer, tasks: usize, interval: Option<f64>) -> Run {
    let recorder = Recorder::new(tasks);
    let mut submitter = Submitter {
        peer,
        set: JoinSet::new(),
    };
    let mut due = Vec::with_capacity(if interval.is_some() { tasks } else { 0 });
    let mut lags = Vec::with_capacity(due.capacity());
    let mut submitted_on = Vec::with_capacity(due.capacity());
    let t0 = recorder.now_ns();
    match interval {
        None => {
            for index in 0..tasks {
                submitter.submit(recorder.task(index)).await;
            }
        }
        Some(interval) => {
            for index in 0..tasks {
                // From `t0`, not from the previous arrival, so lateness does
                // not accumulate into a slower schedule.
                let due_at = t0 + (index as f64 * interval) as u64;
                let mut now = recorder.now_ns();
                while now < due_at {
                    tokio::task::yield_now().await;
                    now = recorder.now_ns();
                }
                due.push(due_at);
                lags.push(Duration::from_nanos(now - due_at));
                submitted_on.push(thread_tag());
                submitter.submit(recorder.task(index)).await;
            }
        }
    }
    let end = recorder.wait_all().await;
    submitter.finish().await;
    let latencies = due
        .iter()
        .zip(recorder.starts.iter())
        .map(|(&due_at, start)| {
            Duration::from_nanos(start.load(Ordering::Relaxed).saturating_sub(due_at))
        })
        .collect();
    let local = submitted_on
        .iter()
        .zip(recorder.threads.iter())
        .filter(|(submitter, started_on)| **submitter == started_on.load(Ordering::Relaxed))
        .count();
    Run {
        tasks,
        elapsed: Duration::from_nanos(end - t0),
        latencies,
        lags,
        local,
    }
}

/// Runs [`run`] in a task spawned on `rt`, so the generator shares the
/// runtime's worker threads with the tasks.
fn run_on(rt: &Runtime, peer: &Peer, tasks: usize, interval: Option<f64>) -> Run {
    rt.block_on(rt.spawn(run(peer.clone(), tasks, interval)))
        .expect("the generator task panicked")
}

/// One open-loop run reduced to the reported statistics, in µs (rates in
/// tasks/s).
#[derive(Clone)]
struct Summary {
    achieved: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    lag_p99: f64,
    /// Percent of tasks started on the generator's thread.
    local: f64,
}

impl Summary {
    fn of(mut run: Run) -> Summary {
        run.latencies.sort_unstable();
        run.lags.sort_unstable();
        let latencies = &run.latencies;
        Summary {
            achieved: run.rate(),
            p50: micros(percentile(latencies, 1, 2)),
            p99: micros(percentile(latencies, 99, 100)),
            p999: micros(percentile(latencies, 999, 1000)),
            max: micros(percentile(latencies, 1, 1)),
            lag_p99: micros(percentile(&run.lags, 99, 100)),
            local: 100.0 * run.local as f64 / run.tasks as f64,
        }
    }
}

fn main() {
    let params = Params::from_args();
    println!("latency: open-loop submit-to-start latency");
    println!(
        "mode {}; runtime multi-thread, 2 worker threads; task body: record start, spin {} µs",
        params.mode,
        WORK.as_micros()
    );
    println!(
        "peak: best of {} closed-loop runs of {} tasks per peer; open loop: {} arrivals per run \
         at {:?}% of each peer's own peak",
        params.peak_rounds, params.peak_tasks, params.arrivals, LOADS
    );
    println!(
        "latency = task start - scheduled arrival; limit {LIMIT} for bounded peers; \
         queue/channel capacity {CAPACITY} (never full, no backpressure)"
    );
    println!();

    let rt = multi_thread_runtime();
    let (peers, workers) = rt.block_on(async {
        let plan = |workers: usize| {
            Plan::builder()
                .workers(workers)
                .capacity(CAPACITY)
                .name("latency")
                .build()
                .expect("inside a runtime")
        };
        let (tx, rx) = async_channel::bounded::<Job>(CAPACITY);
        let workers: Vec<_> = (0..LIMIT)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    while let Ok(job) = rx.recv().await {
                        job.await;
                    }
                })
            })
            .collect();
        let peers = vec![
            ("taskplan w=2", Peer::Taskplan(plan(2))),
            ("taskplan w=4", Peer::Taskplan(plan(LIMIT))),
            (
                "joinset+sem(4)",
                Peer::JoinSetSemaphore(Arc::new(Semaphore::new(LIMIT))),
            ),
            ("tokio::spawn", Peer::Spawn),
            ("async-channel(4)", Peer::ChannelPool(tx)),
        ];
        (peers, workers)
    });

    // Warm-up: first allocations, thread wake-ups, the plans' supervisors.
    for (_, peer) in &peers {
        run_on(&rt, peer, params.peak_tasks / 4 + 1, None);
    }

    // Peak: rounds taken in turns across the peers.
    let mut peak_runs = vec![Vec::new(); peers.len()];
    for _ in 0..params.peak_rounds {
        for (runs, (_, peer)) in peak_runs.iter_mut().zip(&peers) {
            runs.push(run_on(&rt, peer, params.peak_tasks, None).rate());
        }
    }
    let peaks: Vec<f64> = peak_runs
        .iter()
        .map(|runs| runs.iter().copied().fold(0.0, f64::max))
        .collect();

    println!("closed-loop peak (tasks/s; best of the rounds is used as 100%)");
    println!("{:<18} {:>10}   rounds", "peer", "peak");
    for ((name, _), (peak, runs)) in peers.iter().zip(peaks.iter().zip(&peak_runs)) {
        let rounds = runs.iter().fold(String::new(), |mut out, rate| {
            let _ = write!(out, " {rate:.0}");
            out
        });
        println!("{name:<18} {peak:>10.0}  {rounds}");
    }
    println!();

    // Open loop: rounds and loads taken in turns across the peers, for the
    // same reason; each cell is the median over the rounds.
    let mut summaries = vec![vec![Vec::new(); LOADS.len()]; peers.len()];
    for _ in 0..params.open_rounds {
        for (load_index, load) in LOADS.into_iter().enumerate() {
            for (peer_index, ((_, peer), peak)) in peers.iter().zip(&peaks).enumerate() {
                let offered = peak * f64::from(load) / 100.0;
                let result = run_on(&rt, peer, params.arrivals, Some(1e9 / offered));
                summaries[peer_index][load_index].push(Summary::of(result));
            }
        }
    }

    println!(
        "open-loop latency from scheduled arrival to task start (µs); median of {} round(s), \
         p99 range over the rounds",
        params.open_rounds
    );
    println!(
        "{:<18} {:>5} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6}  {:>17}",
        "peer",
        "load",
        "offered/s",
        "achieved/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "gen lag99",
        "local%",
        "p99 range"
    );
    for ((name, _), (peak, by_load)) in peers.iter().zip(peaks.iter().zip(&summaries)) {
        for (load, rounds) in LOADS.into_iter().zip(by_load) {
            let median = |field: fn(&Summary) -> f64| {
                let mut values: Vec<f64> = rounds.iter().map(field).collect();
                values.sort_by(f64::total_cmp);
                values[(values.len() - 1) / 2]
            };
            let p99s = rounds.iter().map(|summary| summary.p99);
            let (low, high) = p99s.fold((f64::INFINITY, 0.0_f64), |(low, high), p99| {
                (low.min(p99), high.max(p99))
            });
            println!(
                "{:<18} {:>4}% {:>10.0} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>6.0}  {:>17}",
                name,
                load,
                peak * f64::from(load) / 100.0,
                median(|s| s.achieved),
                median(|s| s.p50),
                median(|s| s.p99),
                median(|s| s.p999),
                median(|s| s.max),
                median(|s| s.lag_p99),
                median(|s| s.local),
                format!("{low:.1}..{high:.1}"),
            );
        }
    }

    // Stop the pools before the runtime goes.
    rt.block_on(async {
        for (name, peer) in peers {
            match peer {
                Peer::Taskplan(plan) => {
                    let report = plan.shutdown(Duration::from_secs(5)).await;
                    assert!(!report.forced, "{name}: the plan drained");
                }
                Peer::ChannelPool(tx) => drop(tx),
                Peer::JoinSetSemaphore(_) | Peer::Spawn => {}
            }
        }
        for worker in workers {
            worker.await.expect("a pool worker panicked");
        }
    });
}
