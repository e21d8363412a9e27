//! Hot-path benchmark: submit, queue, pull, poll and complete a batch of
//! no-op tasks with bounded concurrency, against the usual alternatives.
//!
//! Run with `cargo bench --bench hot_path` (or `-- --test` for a smoke run).
//!
//! # Group `hot_path`
//!
//! Every peer runs on the same multi-thread Tokio runtime (2 worker threads),
//! with a concurrency limit of 4 where the peer has one, and each iteration
//! pushes [`BATCH`] no-op tasks through it and waits for all of them, so the
//! reported throughput is in tasks per second and the peers' times are
//! directly comparable.
//!
//! The timed loop itself runs inside a task spawned on the runtime, not in
//! `Runtime::block_on` on the bench thread: everything (submitter and workers)
//! then shares the runtime's two worker threads, as it does when a server task
//! submits work, and the bench thread is not a third thread competing for the
//! two cores. Timing uses `iter_custom`; one spawn per sample is the only cost
//! outside the tasks, spread over `iters * BATCH` tasks.
//!
//! Long-lived state is set up once for the whole group, outside the timed
//! loop: the `Plan` (4 supervisors, capacity 1024), the `TaskTracker`
//! (reopened after each batch), and the channels and 4 worker tasks of the
//! two hand-rolled pools (`tokio_mpsc_workers`, `async_channel_workers`).
//! Per-batch state (the semaphore's `Arc`, `JoinSet`, handle vectors) is
//! created inside the timed loop, as a caller would.
//!
//! # Group `cancel_signal`
//!
//! Isolates the per-task cost of a cancellation signal on a current-thread
//! runtime, with no queue or scheduling in the way, [`BATCH`] tasks per
//! iteration:
//!
//! - `child_token_select`: a `CancellationToken::child_token()` of a parent
//!   per task, raced (`select!`, biased, task first) against its
//!   `cancelled()`.
//! - `shared_token_select`: one `cancelled()` future pinned once and raced
//!   against every task, as taskplan's supervisors do with the plan token.
//! - `header_flag`: no token: an atomic cancel flag checked before the poll,
//!   as taskplan's task wrapper does with the flag in the task header.
//!
//! # Group `promote`
//!
//! `Plan::promote` of a tag with 16 queued tasks spread through queues of
//! 1,000 and of 100,000 tasks, and through 100,000 tasks behind 5,000
//! earlier promotions still pending. Promotion walks only the tag's own
//! list, so the times should match.

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use taskplan::Plan;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Tasks per iteration.
const BATCH: usize = 10_000;
/// Concurrency limit: workers, permits, or futures in flight.
const LIMIT: usize = 4;
/// Queue or channel capacity.
const CAPACITY: usize = 1024;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

fn multi_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the multi-thread runtime")
}

/// Runs `iters` batches in a task spawned on `rt` and returns the time they
/// took, measured inside that task. `state` is cloned once per batch (one
/// reference count per [`BATCH`] tasks).
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

/// Completion count shared by a hand-rolled pool's workers and its submitter.
///
/// The count only grows, so a batch waits for `start + BATCH` and no reset is
/// needed between batches.
#[derive(Default)]
struct Done {
    count: AtomicUsize,
    notify: Notify,
}

impl Done {
    /// Called by a worker after each job; wakes the submitter only when
    /// `target` is reached, so a batch costs one wake, not one per job.
    fn one_towards(&self, target: &AtomicUsize) {
        let done = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if done == target.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }

    async fn wait_for(&self, target: usize) {
        loop {
            let mut notified = pin!(self.notify.notified());
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }
}

/// A hand-rolled pool's shared state: completion count and batch target.
#[derive(Default)]
struct Pool {
    done: Done,
    target: AtomicUsize,
}

impl Pool {
    fn finish_job(&self) {
        self.done.one_towards(&self.target);
    }

    /// Sets the next batch's target before its first job is sent.
    fn begin_batch(&self) -> usize {
        let target = self.done.count.load(Ordering::Acquire) + BATCH;
        self.target.store(target, Ordering::Release);
        target
    }
}

fn hot_path(c: &mut Criterion) {
    let rt = multi_thread_runtime();

    // Long-lived state, set up once for the whole group.
    let plan = rt.block_on(async {
        Plan::builder()
            .workers(LIMIT)
            .capacity(CAPACITY)
            .name("bench")
            .build()
            .expect("build the plan")
    });
    let tracker = TaskTracker::new();

    let (mpsc_tx, mpsc_rx) = tokio::sync::mpsc::channel::<Job>(CAPACITY);
    let mpsc_pool = Arc::new(Pool::default());
    let mpsc_rx = Arc::new(tokio::sync::Mutex::new(mpsc_rx));
    for _ in 0..LIMIT {
        let rx = Arc::clone(&mpsc_rx);
        let pool = Arc::clone(&mpsc_pool);
        rt.spawn(async move {
            loop {
                // Lock released before the job runs.
                let job = rx.lock().await.recv().await;
                let Some(job) = job else { break };
                job.await;
                pool.finish_job();
            }
        });
    }

    let (ac_tx, ac_rx) = async_channel::bounded::<Job>(CAPACITY);
    let ac_pool = Arc::new(Pool::default());
    for _ in 0..LIMIT {
        let rx = ac_rx.clone();
        let pool = Arc::clone(&ac_pool);
        rt.spawn(async move {
            while let Ok(job) = rx.recv().await {
                job.await;
                pool.finish_job();
            }
        });
    }
    drop(ac_rx);

    let mut group = c.benchmark_group("hot_path");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("taskplan_submit_await", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &plan, |plan| async move {
                let mut handles = Vec::with_capacity(BATCH);
                for _ in 0..BATCH {
                    handles.push(plan.submit(async {}).await.expect("plan is open"));
                }
                for handle in handles {
                    handle.await.expect("no-op task completes");
                }
            })
        });
    });

    group.bench_function("taskplan_detached", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &plan, |plan| async move {
                for _ in 0..BATCH {
                    drop(plan.submit(async {}).await.expect("plan is open"));
                }
                plan.wait_idle().await;
            })
        });
    });

    group.bench_function("tokio_spawn_joinhandle", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &(), |()| async move {
                let mut handles = Vec::with_capacity(BATCH);
                for _ in 0..BATCH {
                    handles.push(tokio::spawn(async {}));
                }
                for handle in handles {
                    handle.await.expect("no-op task completes");
                }
            })
        });
    });

    group.bench_function("joinset_semaphore", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &(), |()| async move {
                let permits = Arc::new(Semaphore::new(LIMIT));
                let mut set = JoinSet::new();
                for _ in 0..BATCH {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore is open");
                    set.spawn(async move {
                        async {}.await;
                        drop(permit);
                    });
                }
                while let Some(result) = set.join_next().await {
                    result.expect("no-op task completes");
                }
            })
        });
    });

    group.bench_function("task_tracker_semaphore", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &tracker, |tracker| async move {
                let permits = Arc::new(Semaphore::new(LIMIT));
                for _ in 0..BATCH {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore is open");
                    tracker.spawn(async move {
                        async {}.await;
                        drop(permit);
                    });
                }
                tracker.close();
                tracker.wait().await;
                tracker.reopen();
            })
        });
    });

    group.bench_function("futures_unordered_buffered", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &(), |()| async move {
                let finished = futures_util::stream::iter(0..BATCH)
                    .map(|_| async {})
                    .buffer_unordered(LIMIT)
                    .count()
                    .await;
                assert_eq!(finished, BATCH);
            })
        });
    });

    let mpsc = (mpsc_tx.clone(), Arc::clone(&mpsc_pool));
    group.bench_function("tokio_mpsc_workers", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &mpsc, |(tx, pool)| async move {
                let target = pool.begin_batch();
                for _ in 0..BATCH {
                    let job: Job = Box::pin(async {});
                    if tx.send(job).await.is_err() {
                        panic!("the workers are running");
                    }
                }
                pool.done.wait_for(target).await;
            })
        });
    });

    let ac = (ac_tx.clone(), Arc::clone(&ac_pool));
    group.bench_function("async_channel_workers", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &ac, |(tx, pool)| async move {
                let target = pool.begin_batch();
                for _ in 0..BATCH {
                    let job: Job = Box::pin(async {});
                    if tx.send(job).await.is_err() {
                        panic!("the workers are running");
                    }
                }
                pool.done.wait_for(target).await;
            })
        });
    });

    group.finish();

    // Stop the workers and the plan before the runtime goes.
    drop((mpsc, ac, mpsc_tx, ac_tx));
    rt.block_on(async {
        let report = plan.shutdown(Duration::from_secs(5)).await;
        assert!(!report.forced, "the plan drained");
    });
    drop(tracker);
    drop(rt);
}

fn cancel_signal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build the current-thread runtime");

    let mut group = c.benchmark_group("cancel_signal");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("child_token_select", |b| {
        let parent = CancellationToken::new();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..BATCH {
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
                    for _ in 0..BATCH {
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
                    for _ in 0..BATCH {
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

/// `Plan::promote` of a tag with [`PROMOTED`] queued tasks, behind queues of
/// very different lengths: the time must not grow with the queue.
fn promote(c: &mut Criterion) {
    const PROMOTED: usize = 16;
    let rt = multi_thread_runtime();
    let mut group = c.benchmark_group("promote");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // (queued tasks, of which this many are first promoted one tag each,
    // leaving that many promotions pending in front of the rest)
    for (queued, pending) in [(1_000usize, 0usize), (100_000, 0), (100_000, 5_000)] {
        let plan = rt.block_on(async {
            let plan = Plan::builder()
                .workers(1)
                .capacity(queued + PROMOTED)
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
            let stride = queued / PROMOTED;
            for n in 0..queued {
                let tag = if n < pending {
                    taskplan::Tag::from(format!("pending-{n}"))
                } else {
                    taskplan::Tag::from("bg")
                };
                let task = plan.task(async {}).tag(tag);
                if n % stride == 0 && n / stride < PROMOTED {
                    plan.task(async {}).tag("ui").try_submit().expect("room");
                }
                task.try_submit().expect("room");
            }
            for n in 0..pending {
                assert_eq!(plan.promote(&format!("pending-{n}")), 1);
            }
            plan
        });
        let name = format!("{PROMOTED}_of_{queued}_queued_{pending}_pending_promotions");
        group.bench_function(name, |b| {
            // Each call moves the same tasks again, to a new front tier.
            b.iter(|| assert_eq!(plan.promote(black_box("ui")), PROMOTED));
        });
        rt.block_on(plan.abort());
    }
    group.finish();
}

criterion_group!(benches, hot_path, cancel_signal, promote);
criterion_main!(benches);
