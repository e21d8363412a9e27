//! Throughput of the whole hot path (submit, queue, pull, poll, complete)
//! against the usual ways of running many futures with bounded concurrency,
//! all in one criterion run so their ratios can be compared.
//!
//! Run with `cargo bench --bench throughput` (or `-- --test` for a smoke
//! run that executes every benchmark once). Criterion's figures are per
//! iteration; each iteration runs [`TASKS`] tasks, and the reported
//! throughput is in tasks per second.
//!
//! # Groups `throughput_<runtime>_<task>`
//!
//! [`TASKS`] tasks are submitted and every result is awaited, on a
//! multi-thread runtime with 2 worker threads (`multi`) and on a
//! current-thread runtime (`current`), with tasks that return at once
//! (`noop`) and tasks that yield to the scheduler once (`yield`). Peers:
//!
//! - `taskplan_w1`, `_w2`, `_w4`: a [`Plan`] with 1, 2 or 4 workers and the
//!   default capacity of 1024; every `submit` is awaited, every handle kept
//!   and awaited after the last submit.
//! - `tokio_spawn`: `tokio::spawn` and awaiting every `JoinHandle`; no
//!   concurrency limit.
//! - `joinset_semaphore`: the hand-rolled bounded pool: a permit of a
//!   `Semaphore` of 4 acquired before each `JoinSet::spawn`, released when the
//!   task ends; then `join_next` until empty.
//! - `task_tracker_semaphore`: the same with a `TaskTracker`, then
//!   `close` and `wait`.
//! - `buffer_unordered`: `futures::stream::iter(..).buffer_unordered(4)` in
//!   the timed task itself: no spawning, no second thread, no handles.
//! - `channel_floor`: the bare floor: boxed futures sent through an
//!   `async_channel::bounded(1024)` to 4 worker tasks that await them, no
//!   handles, no cancellation; the submitter waits for a completion count.
//!
//! The timed loop runs inside a task spawned on the runtime, not in
//! `Runtime::block_on` on the bench thread, so on the multi-thread runtime
//! submitter and workers share the runtime's 2 threads as they would in a
//! server, and the bench thread is not a third thread competing for 2 cores.
//! Long-lived state (the plan, the tracker, the floor's workers) is built
//! once per benchmark, outside the timed loop; per-batch state (a
//! semaphore, a `JoinSet`, handle vectors) inside it, as a caller would.
//!
//! # Cache-line round trip around `throughput_multi_noop`
//!
//! This VM's two vCPUs are sometimes far apart (a cache line bouncing
//! between two threads costs 420-500 ns round trip instead of 70-100 ns),
//! which makes the multi-thread groups bimodal. Right before and right after
//! `throughput_multi_noop`, the probe in `support/rtt.rs` measures that round
//! trip (2-10 ms, with the runtime idle) and prints it; when the group
//! actually ran (not filtered out) and this is not a `--test` smoke run, both
//! are appended to `target/criterion/cache_line_rtt.txt` as `before <ns>
//! <unix secs> <UTC> <near|far|busy>` and `after ...`, for
//! `scripts/bench_table.py`.
//!
//! # Group `submitters`
//!
//! [`TASKS`] no-op tasks split between 1, 4 or 16 submitting tasks that run
//! at once on the multi-thread runtime; each awaits its own handles.
//!
//! # Group `cancel_signal`
//!
//! The per-task cost of a cancellation signal alone, on a current-thread
//! runtime with no queue or scheduling in the way, [`SIGNAL_TASKS`] tasks
//! per iteration: `child_token_select` (a `CancellationToken::child_token()`
//! per task raced in a biased `select!`, the usual idiom), `shared_token_select`
//! (one `cancelled()` future pinned once and raced against every task, as
//! taskplan's supervisors do with the plan token) and `header_flag` (an
//! atomic flag looked at before the poll, as taskplan's wrapper does with the
//! flag in the task's shared state). This is why per-task cancellation in
//! taskplan allocates nothing and joins no waiter list.
//!
//! # Group `tracing`
//!
//! What each task's span and events cost: [`TASKS`] no-op tasks on a
//! 4-worker plan on the multi-thread runtime with no subscriber
//! (`taskplan_no_subscriber`, beside `tokio_spawn` for scale), with a `fmt`
//! subscriber at `INFO` writing to `io::sink` on the runtime's threads
//! (`taskplan_info_subscriber`: the task spans at `DEBUG` and the events at
//! `TRACE` are filtered out), and the same with the spans raised to `INFO`
//! (`taskplan_info_subscriber_info_spans`: a span made per task).
//! `span_and_events_alone_no_subscriber` makes the same span and events as
//! a task does, with nothing else, to show tracing's own share.
//!
//! # Group `promote`
//!
//! `Plan::promote` of a tag that marks a tenth of 1,000, 10,000 and 100,000
//! queued tasks (throughput in tasks moved, so a flat time per element means
//! cost follows the tasks moved), and of a tag of 16 tasks spread through
//! 1,000 and 100,000 queued tasks, and through 100,000 queued behind 5,000
//! pending promotions (a flat time means cost does not follow the queue).

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use taskplan::Plan;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod support;
use support::rtt;

/// Tasks per iteration.
const TASKS: usize = 100_000;
/// Concurrency limit of the peers that have one: permits, workers, futures
/// in flight.
const LIMIT: usize = 4;
/// Queue or channel capacity.
const CAPACITY: usize = 1024;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Clone, Copy)]
enum Flavor {
    Multi,
    Current,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Multi => "multi",
            Flavor::Current => "current",
        }
    }

    fn runtime(self) -> Runtime {
        match self {
            Flavor::Multi => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
            Flavor::Current => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .expect("build the runtime")
    }
}

/// What each task does.
#[derive(Clone, Copy)]
enum Work {
    /// Returns at once.
    Noop,
    /// Yields to the scheduler once, then returns.
    YieldOnce,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Noop => "noop",
            Work::YieldOnce => "yield",
        }
    }

    async fn task(self) {
        if let Work::YieldOnce = self {
            tokio::task::yield_now().await;
        }
    }
}

/// Runs `iters` batches in a task spawned on `rt` and returns the time they
/// took, measured inside that task.
fn timed<S, F, Fut>(rt: &Runtime, iters: u64, state: &S, batch: F) -> Duration
where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let state = state.clone();
    rt.block_on(rt.spawn(async move {
        let start = Instant::now();
        for _ in 0..iters {
            batch(state.clone()).await;
        }
        start.elapsed()
    }))
    .expect("the timed task panicked")
}

/// The bare floor: worker tasks awaiting boxed futures from a channel, and
/// a completion count the submitter waits on.
#[derive(Clone)]
struct Floor {
    tx: async_channel::Sender<Job>,
    done: Arc<Done>,
}

#[derive(Default)]
struct Done {
    count: AtomicUsize,
    target: AtomicUsize,
    notify: Notify,
}

impl Floor {
    fn start(rt: &Runtime) -> Floor {
        let (tx, rx) = async_channel::bounded::<Job>(CAPACITY);
        let done = Arc::new(Done::default());
        for _ in 0..LIMIT {
            let rx = rx.clone();
            let done = Arc::clone(&done);
            rt.spawn(async move {
                while let Ok(job) = rx.recv().await {
                    job.await;
                    // One wake per batch, not per job.
                    let count = done.count.fetch_add(1, Ordering::AcqRel) + 1;
                    if count == done.target.load(Ordering::Acquire) {
                        done.notify.notify_one();
                    }
                }
            });
        }
        Floor { tx, done }
    }

    /// Sets the completion count the next wait is for: `count` more jobs.
    fn expect(&self, count: usize) -> usize {
        let target = self.done.count.load(Ordering::Acquire) + count;
        self.done.target.store(target, Ordering::Release);
        target
    }

    async fn send(tx: &async_channel::Sender<Job>, job: Job) {
        if tx.send(job).await.is_err() {
            panic!("the floor's workers are running");
        }
    }

    async fn wait(&self, target: usize) {
        loop {
            let mut notified = pin!(self.done.notify.notified());
            notified.as_mut().enable();
            if self.done.count.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }

    /// Sends `count` jobs made by `job` and waits until all have run.
    async fn run(&self, count: usize, job: impl Fn() -> Job) {
        let target = self.expect(count);
        for _ in 0..count {
            Floor::send(&self.tx, job()).await;
        }
        self.wait(target).await;
    }
}

fn plan(rt: &Runtime, workers: usize) -> Plan {
    rt.block_on(async {
        Plan::builder()
            .workers(workers)
            .capacity(CAPACITY)
            .name("bench")
            .build()
            .expect("build the plan")
    })
}

fn stop(rt: &Runtime, plan: Plan) {
    rt.block_on(async {
        let report = plan.shutdown(Duration::from_secs(5)).await;
        assert!(!report.forced, "the plan drained");
    });
}

async fn taskplan_batch(plan: &Plan, count: usize, work: Work) {
    let mut handles = Vec::with_capacity(count);
    for _ in 0..count {
        handles.push(plan.submit(work.task()).await.expect("plan is open"));
    }
    for handle in handles {
        handle.await.expect("the task completes");
    }
}

async fn tokio_spawn_batch(count: usize, work: Work) {
    let mut handles = Vec::with_capacity(count);
    for _ in 0..count {
        handles.push(tokio::spawn(work.task()));
    }
    for handle in handles {
        handle.await.expect("the task completes");
    }
}

async fn joinset_batch(permits: Arc<Semaphore>, count: usize, work: Work) {
    let mut set = JoinSet::new();
    for _ in 0..count {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore is open");
        set.spawn(async move {
            work.task().await;
            drop(permit);
        });
    }
    while let Some(result) = set.join_next().await {
        result.expect("the task completes");
    }
}

async fn tracker_batch(tracker: &TaskTracker, permits: Arc<Semaphore>, count: usize, work: Work) {
    for _ in 0..count {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore is open");
        tracker.spawn(async move {
            work.task().await;
            drop(permit);
        });
    }
}

/// The cache-line round trip around one group: probed before it starts and
/// after it finishes, recorded only if one of its benchmarks ran.
struct RttAround {
    group: String,
    /// The `before` line, stamped when it was probed.
    before: String,
    /// Set by the group's benchmarks when they run: a filter that excludes
    /// the group leaves it unset.
    ran: Arc<AtomicBool>,
}

impl RttAround {
    fn start(group: &str) -> RttAround {
        let before = rtt::probe(rtt::BATCHES);
        println!(
            "{group}: cache-line round trip before: {before:.1} ns ({})",
            rtt::label(before)
        );
        RttAround {
            group: group.to_string(),
            before: rtt::record_line("before", before),
            ran: Arc::new(AtomicBool::new(false)),
        }
    }

    fn finish(self) {
        let after = rtt::probe(rtt::BATCHES);
        println!(
            "{}: cache-line round trip after: {after:.1} ns ({})",
            self.group,
            rtt::label(after)
        );
        let smoke = std::env::args().any(|arg| arg == "--test");
        if self.ran.load(Ordering::Relaxed) && !smoke {
            let lines = format!("{}\n{}\n", self.before, rtt::record_line("after", after));
            support::write_results("cache_line_rtt.txt", &lines, true);
        }
    }
}

fn throughput(c: &mut Criterion) {
    for flavor in [Flavor::Multi, Flavor::Current] {
        for work in [Work::Noop, Work::YieldOnce] {
            let rt = flavor.runtime();
            let name = format!("throughput_{}_{}", flavor.name(), work.name());
            // Only the one group the table reads; the probe spins
            // both cores for a few ms, outside any measurement.
            let probe = (name == "throughput_multi_noop").then(|| RttAround::start(&name));
            let ran = probe.as_ref().map(|probe| Arc::clone(&probe.ran));
            let mark_ran = move || {
                if let Some(ran) = &ran {
                    ran.store(true, Ordering::Relaxed);
                }
            };
            let mut group = c.benchmark_group(name);
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(3))
                .warm_up_time(Duration::from_secs(1))
                .throughput(Throughput::Elements(TASKS as u64));

            for workers in [1, 2, 4] {
                let plan = plan(&rt, workers);
                group.bench_function(format!("taskplan_w{workers}"), |b| {
                    b.iter_custom(|iters| {
                        mark_ran();
                        timed(&rt, iters, &plan, move |plan| async move {
                            taskplan_batch(&plan, TASKS, work).await;
                        })
                    });
                });
                stop(&rt, plan);
            }

            group.bench_function("tokio_spawn", |b| {
                b.iter_custom(|iters| {
                    mark_ran();
                    timed(&rt, iters, &(), move |()| tokio_spawn_batch(TASKS, work))
                });
            });

            group.bench_function("joinset_semaphore", |b| {
                b.iter_custom(|iters| {
                    mark_ran();
                    timed(&rt, iters, &(), move |()| {
                        joinset_batch(Arc::new(Semaphore::new(LIMIT)), TASKS, work)
                    })
                });
            });

            let tracker = TaskTracker::new();
            group.bench_function("task_tracker_semaphore", |b| {
                b.iter_custom(|iters| {
                    mark_ran();
                    timed(&rt, iters, &tracker, move |tracker| async move {
                        tracker_batch(&tracker, Arc::new(Semaphore::new(LIMIT)), TASKS, work).await;
                        tracker.close();
                        tracker.wait().await;
                        tracker.reopen();
                    })
                });
            });

            group.bench_function("buffer_unordered", |b| {
                b.iter_custom(|iters| {
                    mark_ran();
                    timed(&rt, iters, &(), move |()| async move {
                        let finished = futures_util::stream::iter(0..TASKS)
                            .map(|_| work.task())
                            .buffer_unordered(LIMIT)
                            .count()
                            .await;
                        assert_eq!(finished, TASKS);
                    })
                });
            });

            let floor = Floor::start(&rt);
            group.bench_function("channel_floor", |b| {
                b.iter_custom(|iters| {
                    mark_ran();
                    timed(&rt, iters, &floor, move |floor| async move {
                        floor.run(TASKS, || Box::pin(work.task())).await;
                    })
                });
            });
            group.finish();
            floor.tx.close();
            if let Some(probe) = probe {
                probe.finish();
            }
        }
    }
}

/// [`TASKS`] no-op tasks split between several submitters at once.
fn submitters(c: &mut Criterion) {
    let rt = Flavor::Multi.runtime();
    let mut group = c.benchmark_group("submitters");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(TASKS as u64));

    /// Runs `submitter(state, share)` in `count` tasks at once, each with
    /// its share of [`TASKS`], and waits for all of them.
    async fn fan_out<S, F, Fut>(count: usize, state: S, submitter: F)
    where
        S: Clone + Send + 'static,
        F: Fn(S, usize) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let share = TASKS / count;
        let submitters: Vec<_> = (0..count)
            .map(|_| tokio::spawn(submitter(state.clone(), share)))
            .collect();
        for submitter in submitters {
            submitter.await.expect("the submitter finishes");
        }
    }

    let plan = plan(&rt, LIMIT);
    let tracker = TaskTracker::new();
    let floor = Floor::start(&rt);
    for count in [1usize, 4, 16] {
        group.bench_with_input(
            BenchmarkId::new("taskplan_w4", count),
            &count,
            |b, &count| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, &plan, move |plan| {
                        fan_out(count, plan, |plan, share| async move {
                            taskplan_batch(&plan, share, Work::Noop).await;
                        })
                    })
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("tokio_spawn", count),
            &count,
            |b, &count| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, &(), move |()| {
                        fan_out(count, (), |(), share| tokio_spawn_batch(share, Work::Noop))
                    })
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("joinset_semaphore", count),
            &count,
            |b, &count| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, &(), move |()| {
                        // One limit shared by every submitter; each keeps
                        // its own `JoinSet`, which cannot be shared.
                        let permits = Arc::new(Semaphore::new(LIMIT));
                        fan_out(count, permits, |permits, share| {
                            joinset_batch(permits, share, Work::Noop)
                        })
                    })
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("task_tracker_semaphore", count),
            &count,
            |b, &count| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, &tracker, move |tracker| async move {
                        let permits = Arc::new(Semaphore::new(LIMIT));
                        fan_out(
                            count,
                            (tracker.clone(), permits),
                            |(tracker, permits), share| async move {
                                tracker_batch(&tracker, permits, share, Work::Noop).await;
                            },
                        )
                        .await;
                        tracker.close();
                        tracker.wait().await;
                        tracker.reopen();
                    })
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("channel_floor", count),
            &count,
            |b, &count| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, &floor, move |floor| async move {
                        // The floor counts completions globally: one waiter,
                        // many senders.
                        let target = floor.expect(TASKS);
                        fan_out(count, floor.tx.clone(), |tx, share| async move {
                            for _ in 0..share {
                                Floor::send(&tx, Box::pin(Work::Noop.task())).await;
                            }
                        })
                        .await;
                        floor.wait(target).await;
                    })
                });
            },
        );
    }
    group.finish();
    floor.tx.close();
    stop(&rt, plan);
}

/// `Plan::promote` with queues of different lengths.
fn promote(c: &mut Criterion) {
    let rt = Flavor::Multi.runtime();
    let mut group = c.benchmark_group("promote");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));

    // (queued tasks, tagged "ui" among them, earlier promotions pending)
    let cases = [
        (1_000usize, 100usize, 0usize),
        (10_000, 1_000, 0),
        (100_000, 10_000, 0),
        (1_000, 16, 0),
        (100_000, 16, 0),
        (100_000, 16, 5_000),
    ];
    for (queued, tagged, pending) in cases {
        let plan = rt.block_on(async {
            let plan = Plan::builder()
                .workers(1)
                .capacity(queued)
                .build()
                .expect("inside a runtime");
            // Hold the only worker so everything below stays queued.
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            plan.submit(async move {
                started_tx.send(()).expect("the bench waits for this");
                std::future::pending::<()>().await
            })
            .await
            .expect("plan is open");
            started_rx.await.expect("the blocker starts");
            // The "ui" tasks are spread evenly through the queue.
            let stride = queued / tagged;
            for n in 0..queued {
                let tag = if n % stride == 0 && n / stride < tagged {
                    taskplan::Tag::from("ui")
                } else if n < pending {
                    taskplan::Tag::from(format!("pending-{n}"))
                } else {
                    taskplan::Tag::from("bg")
                };
                plan.task(async {}).tag(tag).try_submit().expect("room");
            }
            for n in 0..pending {
                plan.promote(&format!("pending-{n}"));
            }
            plan
        });
        group.throughput(Throughput::Elements(tagged as u64));
        let name = format!("{tagged}_of_{queued}_queued_{pending}_pending");
        group.bench_function(name, |b| {
            // Each call moves the same tasks again, to a new front tier.
            b.iter(|| assert_eq!(plan.promote(black_box("ui")), tagged));
        });
        rt.block_on(plan.abort());
    }
    group.finish();
}

/// Tasks per iteration of the `cancel_signal` group.
const SIGNAL_TASKS: usize = 10_000;

fn cancel_signal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build the current-thread runtime");

    let mut group = c.benchmark_group("cancel_signal");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(SIGNAL_TASKS as u64));

    group.bench_function("child_token_select", |b| {
        let parent = CancellationToken::new();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..SIGNAL_TASKS {
                        let child = parent.child_token();
                        let task = black_box(async {});
                        tokio::select! {
                            biased;
                            () = task => {}
                            () = child.cancelled() => unreachable!("never cancelled"),
                        }
                    }
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("shared_token_select", |b| {
        let token = CancellationToken::new();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut aborted = pin!(token.cancelled());
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..SIGNAL_TASKS {
                        let task = black_box(async {});
                        tokio::select! {
                            biased;
                            () = task => {}
                            () = &mut aborted => unreachable!("never cancelled"),
                        }
                    }
                }
                start.elapsed()
            })
        });
    });

    group.bench_function("header_flag", |b| {
        const CANCEL: u8 = 0b100;
        let flag = AtomicU8::new(0);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..SIGNAL_TASKS {
                        let task = black_box(async {});
                        if black_box(&flag).load(Ordering::Acquire) & CANCEL != 0 {
                            unreachable!("never cancelled");
                        }
                        task.await;
                    }
                }
                start.elapsed()
            })
        });
    });

    group.finish();
}

/// The `tracing` group: what each task's span and events cost.
fn tracing_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(TASKS as u64));
    // No subscriber first: a subscriber raises tracing's global level
    // filter for as long as it lives.
    let cases: [(&str, Option<tracing::Level>); 3] = [
        ("taskplan_no_subscriber", None),
        ("taskplan_info_subscriber", Some(tracing::Level::DEBUG)),
        (
            "taskplan_info_subscriber_info_spans",
            Some(tracing::Level::INFO),
        ),
    ];
    for (name, span_level) in cases {
        let rt = match span_level {
            None => Flavor::Multi.runtime(),
            Some(_) => runtime_with_info_subscriber(),
        };
        let plan = rt.block_on(async {
            Plan::builder()
                .workers(4)
                .capacity(CAPACITY)
                .name("bench")
                .span_level(span_level.unwrap_or(tracing::Level::DEBUG))
                .build()
                .expect("build the plan")
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(&rt, iters, &plan, move |plan| async move {
                    taskplan_batch(&plan, TASKS, Work::Noop).await;
                })
            });
        });
        if span_level.is_none() {
            group.bench_function("tokio_spawn", |b| {
                b.iter_custom(|iters| {
                    timed(&rt, iters, &(), move |()| {
                        tokio_spawn_batch(TASKS, Work::Noop)
                    })
                });
            });
        }
        stop(&rt, plan);
    }
    // The same span and events as a task's, alone, with no subscriber: the
    // part of `taskplan_no_subscriber` that tracing costs.
    group.bench_function("span_and_events_alone_no_subscriber", |b| {
        b.iter(|| {
            for id in 0..TASKS {
                let span = tracing::debug_span!(
                    "task",
                    plan = %"bench",
                    id = %black_box(id),
                    tag = black_box(None::<&str>),
                    priority = black_box(0),
                );
                tracing::trace!(parent: &span, "task started");
                let _entered = span.enter();
                tracing::trace!("task completed");
            }
        });
    });
    group.finish();
}

/// A 2-thread runtime whose threads log through a `fmt` subscriber at
/// `INFO` into `io::sink`: a service's usual setup, minus the writing.
fn runtime_with_info_subscriber() -> Runtime {
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish(),
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The thread's default for its whole life: the guard would
            // restore the previous one.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .expect("build the runtime")
}

criterion_group!(
    benches,
    throughput,
    submitters,
    promote,
    cancel_signal,
    tracing_cost
);
criterion_main!(benches);
