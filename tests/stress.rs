//! Stress on the multi-thread runtime (issue item 3): many submitters,
//! cancellers, a promoter, a tag canceller and a resizer race on one plan
//! for 10^6 tasks ([`TASKS`]; 200,000 in a debug build, so that `cargo test`
//! stays fast: `cargo test --release --test stress` runs the full 10^6).
//! Then:
//!
//! - every handle resolved exactly once: each handle is awaited by the
//!   collector, which marks its task id and fails on an id seen twice, on an
//!   output that is not its own task's, and on an error that is not exactly
//!   one of cancelled, panicked or timed out; and as many resolved as were
//!   kept;
//! - the handles' outcomes equal the plan's counters: `stats()` minus the
//!   detached tasks, per outcome; and every outcome occurred. A detached
//!   task ends as its kind says (no canceller reaches it: the tag canceller
//!   leaves its tag, `"detached"`, alone, which only the promoter picks), so
//!   the submitters count those ends themselves;
//! - conservation holds for the plan, and once it is idle the plan has let
//!   go of every tag;
//! - `shutdown` terminates (`common::join_or_fail_with`) with a report that
//!   matches the counters;
//! - once the plan, every handle and the runtime are dropped, the live heap
//!   bytes are exactly what they were before the runtime was built;
//! - and while it ran, the live heap never grew by more than [`PEAK_BOUND`],
//!   whatever the number of tasks: nothing is kept per task until the plan
//!   is dropped (which the check above could not see).
//!
//! # How
//!
//! A 2-thread runtime and one plan (4 workers, capacity 1024). The tasks are
//! a seeded mix: most return a value at once, some yield 1 to 4 times, 0.5%
//! panic, 0.2% wait forever under a 1 ms timeout, 5% run under a generous
//! timeout they meet; random priorities from -2 to 2, tags from a small set,
//! 1 in 32 detached (its handle dropped at once). Every task's future owns a
//! small heap buffer and its output is one, so a future or an output that
//! is never dropped shows up as live bytes.
//!
//! Four submitters alternate `submit` and `try_submit` (a refused task is
//! handed back and submitted with `submit`). Each kept handle goes into a
//! random slot of a shared pool of 256, evicting the handle there to the
//! collector: while in the pool, two cancellers may `cancel` it, whatever
//! state its task is in. A promoter `promote`s (random tags), a tag
//! canceller `cancel_tag`s (random tags of kept tasks), and a resizer
//! `set_workers` between 1 and 6.
//! The roles are paced by the submitters (a permit every so many tasks, not
//! a timer), so the mix is the same on a slow machine and a fast one.
//!
//! The counting allocator (`#[global_allocator]` over `System`) counts live
//! bytes for the whole process, so this binary holds this one test only,
//! and nothing is printed while it measures. A warm-up run of the same
//! workload, with fewer tasks, comes first, as in a memory benchmark, so
//! one-time global allocations (thread-locals of the test thread, `tracing`
//! call sites, the panic machinery) are in the baseline, not in the delta.
//! Planned panics are silenced by a panic hook that passes any other panic
//! to the default hook.
//!
//! Timings on the project's 2-core machine, loaded (load average 8 to 10):
//! `cargo test --test stress`, 200,000 tasks, about 8 s (2 to 5 s when quiet);
//! `cargo test --release --test stress`, 10^6 tasks, 4 to 6 s. The test
//! prints its numbers (`-- --nocapture`). Each run is bounded by
//! [`RUN_BOUND`] of real time, and the plan is joined with
//! `common::join_or_fail_with`; the test builds its own runtimes, so it does
//! not use `common::harness`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use taskplan::{Plan, TaskBuilder, TaskError, TaskHandle, TaskId};
use tokio::sync::{Semaphore, mpsc};

/// Tasks in the measured run.
const TASKS: usize = if cfg!(debug_assertions) {
    200_000
} else {
    1_000_000
};
/// How much the live heap may grow over the baseline while the measured run
/// races: its peak is 1 to 3 MB (the queue, the pool, the channel, the
/// collector, the by-id record of resolved handles), whatever `TASKS` is.
const PEAK_BOUND: isize = 32 << 20;
/// Tasks in the warm-up run.
const WARM_UP_TASKS: usize = 20_000;
const SUBMITTERS: usize = 4;
const CANCELLERS: usize = 2;
/// How long one run may take, in real time, before the test fails: several
/// times what a debug run takes on a loaded machine, and still a bound.
const RUN_BOUND: Duration = Duration::from_secs(120);
const POOL_SLOTS: usize = 256;
/// Tags of the kept tasks; a task may also have none.
const TAGS: [&str; 3] = ["ui", "sync", "bg"];
/// The tag of every detached task, and of no other.
const DETACHED: &str = "detached";
/// What the promoter picks from; the tag canceller picks from [`TAGS`].
const ALL_TAGS: [&str; 4] = ["ui", "sync", "bg", DETACHED];
/// Each submitter gives one permit to a role every so many of its tasks.
const CANCEL_EVERY: usize = 16;
const PROMOTE_EVERY: usize = 64;
const CANCEL_TAG_EVERY: usize = 512;
const RESIZE_EVERY: usize = 256;

// ---------------------------------------------------------------------------
// The counting allocator.

struct Counting;

/// Bytes currently allocated, over the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The most `LIVE` has been since the last reset.
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// Allocation calls (reallocations included).
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: isize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System` with this layout.
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `pointer` came from `System` with this layout.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            grew(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------
// The workload.

/// xorshift64*: a seeded, dependency-free source of choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % bound
    }
}

/// The payload of a planned panic: the panic hook lets it pass silently.
struct PlannedPanic;

#[derive(Clone, Copy)]
enum Kind {
    /// Returns at once.
    Value,
    /// Yields this many times, then returns.
    Yields(u8),
    /// Yields once, then panics with [`PlannedPanic`].
    Panics,
    /// Never finishes; has a 1 ms timeout.
    Stuck,
}

struct Spec {
    kind: Kind,
    tag: Option<&'static str>,
    priority: i32,
    timeout: Option<Duration>,
    detached: bool,
    try_first: bool,
}

impl Spec {
    fn random(rng: &mut Rng) -> Spec {
        let kind = match rng.below(1000) {
            0..5 => Kind::Panics,
            5..7 => Kind::Stuck,
            7..300 => Kind::Yields(1 + rng.below(4) as u8),
            _ => Kind::Value,
        };
        let detached = rng.below(32) == 0;
        let tag = match (detached, rng.below(4)) {
            (true, _) => Some(DETACHED),
            (false, 0) => None,
            (false, n) => Some(TAGS[n - 1]),
        };
        let timeout = match kind {
            Kind::Stuck => Some(Duration::from_millis(1)),
            _ if rng.below(20) == 0 => Some(Duration::from_secs(600)),
            _ => None,
        };
        Spec {
            kind,
            tag,
            priority: rng.below(5) as i32 - 2,
            timeout,
            detached,
            try_first: rng.below(2) == 0,
        }
    }
}

/// The output a task with sequence number `seq` returns.
fn output_of(seq: u64) -> Vec<u8> {
    seq.to_le_bytes().to_vec()
}

/// A task: owns a heap buffer while it lives, returns a heap buffer.
fn job(seq: u64, kind: Kind) -> impl Future<Output = Vec<u8>> + Send + 'static {
    let owned = vec![0u8; 24];
    async move {
        let _owned = owned;
        match kind {
            Kind::Value => {}
            Kind::Yields(times) => {
                for _ in 0..times {
                    tokio::task::yield_now().await;
                }
            }
            Kind::Panics => {
                tokio::task::yield_now().await;
                std::panic::panic_any(PlannedPanic);
            }
            Kind::Stuck => std::future::pending::<()>().await,
        }
        output_of(seq)
    }
}

fn describe<'plan, F>(plan: &'plan Plan, future: F, spec: &Spec) -> TaskBuilder<'plan, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut task = plan.task(future).priority(spec.priority);
    if let Some(tag) = spec.tag {
        task = task.tag(tag);
    }
    if let Some(timeout) = spec.timeout {
        task = task.timeout(timeout);
    }
    task
}

/// A kept handle and the sequence number of its task.
type Entry = (u64, TaskHandle<Vec<u8>>);

/// What every racer shares.
struct Race {
    plan: Plan,
    pool: Mutex<Vec<Option<Entry>>>,
    cancels: Semaphore,
    promotions: Semaphore,
    tag_cancels: Semaphore,
    resizes: Semaphore,
}

impl Race {
    fn budgets(&self) -> [&Semaphore; 4] {
        [
            &self.cancels,
            &self.promotions,
            &self.tag_cancels,
            &self.resizes,
        ]
    }
}

#[derive(Default, Clone, Copy, Debug)]
struct SubmitterTally {
    kept: usize,
    detached: usize,
    refused_full: usize,
    /// How the detached tasks end, as their kinds say.
    detached_ends: Ends,
}

/// Ends of tasks that nothing cancels.
#[derive(Default, Clone, Copy, Debug)]
struct Ends {
    completed: usize,
    panicked: usize,
    timed_out: usize,
}

impl Ends {
    /// Counts the end a task of `kind` comes to when nothing cancels it.
    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Value | Kind::Yields(_) => self.completed += 1,
            Kind::Panics => self.panicked += 1,
            Kind::Stuck => self.timed_out += 1,
        }
    }

    fn add(&mut self, other: Ends) {
        self.completed += other.completed;
        self.panicked += other.panicked;
        self.timed_out += other.timed_out;
    }
}

async fn submitter(
    race: Arc<Race>,
    to_collector: mpsc::Sender<Entry>,
    index: usize,
    count: usize,
) -> SubmitterTally {
    let mut rng = Rng::new(1 + index as u64);
    let mut tally = SubmitterTally::default();
    for n in 0..count {
        let seq = (index * count + n) as u64;
        let spec = Spec::random(&mut rng);
        let future = job(seq, spec.kind);
        let future = if spec.try_first {
            match describe(&race.plan, future, &spec).try_submit() {
                Ok(handle) => Ok(handle),
                Err(refused) => {
                    assert!(refused.is_full(), "the plan closed under a submitter");
                    tally.refused_full += 1;
                    // Handed back: submit it again, waiting for room.
                    Err(refused.into_inner())
                }
            }
        } else {
            Err(future)
        };
        let handle = match future {
            Ok(handle) => handle,
            Err(future) => describe(&race.plan, future, &spec)
                .submit()
                .await
                .expect("the plan closed under a submitter"),
        };
        for (every, budget) in [
            (CANCEL_EVERY, &race.cancels),
            (PROMOTE_EVERY, &race.promotions),
            (CANCEL_TAG_EVERY, &race.tag_cancels),
            (RESIZE_EVERY, &race.resizes),
        ] {
            if n % every == every - 1 {
                budget.add_permits(1);
            }
        }
        if spec.detached {
            drop(handle);
            tally.detached += 1;
            tally.detached_ends.count(spec.kind);
            continue;
        }
        tally.kept += 1;
        let slot = rng.below(POOL_SLOTS);
        let evicted = race.pool.lock().unwrap()[slot].replace((seq, handle));
        if let Some(entry) = evicted {
            to_collector.send(entry).await.expect("the collector lives");
        }
    }
    tally
}

#[derive(Default, Clone, Copy, Debug)]
struct RoleTally {
    cancels: usize,
    promoted: usize,
    tag_cancelled: usize,
    resizes: usize,
}

/// Runs `act` once per permit of its `budget`, until the budget is closed.
async fn role(
    race: Arc<Race>,
    seed: u64,
    budget: fn(&Race) -> &Semaphore,
    act: fn(&Race, &mut Rng, &mut RoleTally),
) -> RoleTally {
    let mut rng = Rng::new(seed);
    let mut tally = RoleTally::default();
    while let Ok(permit) = budget(&race).acquire().await {
        permit.forget();
        act(&race, &mut rng, &mut tally);
    }
    tally
}

fn cancel_one(race: &Race, rng: &mut Rng, tally: &mut RoleTally) {
    let pool = race.pool.lock().unwrap();
    if let Some((_, handle)) = &pool[rng.below(POOL_SLOTS)] {
        handle.cancel();
        tally.cancels += 1;
    }
}

fn promote_one(race: &Race, rng: &mut Rng, tally: &mut RoleTally) {
    tally.promoted += race.plan.promote(ALL_TAGS[rng.below(ALL_TAGS.len())]);
}

fn cancel_a_tag(race: &Race, rng: &mut Rng, tally: &mut RoleTally) {
    tally.tag_cancelled += race.plan.cancel_tag(TAGS[rng.below(TAGS.len())]);
}

fn resize(race: &Race, rng: &mut Rng, tally: &mut RoleTally) {
    race.plan.set_workers(1 + rng.below(6)).unwrap();
    tally.resizes += 1;
}

/// What the handles said.
#[derive(Default)]
struct Outcomes {
    completed: usize,
    cancelled: usize,
    panicked: usize,
    timed_out: usize,
    /// By task id: resolved yet.
    resolved: Vec<bool>,
}

impl Outcomes {
    fn record(&mut self, seq: u64, id: TaskId, result: Result<Vec<u8>, TaskError>) {
        let index = usize::try_from(id.as_u64()).unwrap();
        if self.resolved.len() <= index {
            self.resolved.resize(index + 1, false);
        }
        assert!(!self.resolved[index], "task {id} resolved twice");
        self.resolved[index] = true;
        match result {
            Ok(output) => {
                assert_eq!(
                    output,
                    output_of(seq),
                    "task {id} got another task's output"
                );
                self.completed += 1;
            }
            Err(error) => {
                assert_eq!(error.id(), id, "{error}");
                match (error.is_cancelled(), error.is_panic(), error.is_timeout()) {
                    (true, false, false) => self.cancelled += 1,
                    (false, false, true) => self.timed_out += 1,
                    (false, true, false) => {
                        assert!(
                            error.into_panic().is::<PlannedPanic>(),
                            "task {id} panicked with another payload"
                        );
                        self.panicked += 1;
                    }
                    _ => panic!("task {id}: {error} is not exactly one kind of error"),
                }
            }
        }
    }

    fn total(&self) -> usize {
        self.completed + self.cancelled + self.panicked + self.timed_out
    }
}

/// Awaits every handle it is sent, in whatever order they resolve.
async fn collector(mut from_submitters: mpsc::Receiver<Entry>) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            entry = from_submitters.recv(), if open => match entry {
                Some((seq, handle)) => waiting.push(async move {
                    let id = handle.id();
                    (seq, id, handle.await)
                }),
                None => open = false,
            },
            Some((seq, id, result)) = waiting.next(), if !waiting.is_empty() => {
                outcomes.record(seq, id, result);
            }
            else => break,
        }
    }
    outcomes
}

/// What one run did, in plain numbers (nothing on the heap, so it can be
/// kept across the final measurement).
#[derive(Clone, Copy)]
struct Summary {
    tasks: usize,
    kept: usize,
    detached: usize,
    refused_full: usize,
    completed: usize,
    cancelled: usize,
    panicked: usize,
    timed_out: usize,
    cancels: usize,
    promoted: usize,
    tag_cancelled: usize,
    resizes: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tasks ({} kept, {} detached, {} refused as full and resubmitted); \
             handles: {} completed, {} cancelled, {} panicked, {} timed out; \
             {} cancels, {} promoted, {} cancelled by tag, {} resizes",
            self.tasks,
            self.kept,
            self.detached,
            self.refused_full,
            self.completed,
            self.cancelled,
            self.panicked,
            self.timed_out,
            self.cancels,
            self.promoted,
            self.tag_cancelled,
            self.resizes
        )
    }
}

/// The race itself, on the current runtime; checks everything but memory.
async fn race(tasks: usize) -> Summary {
    let plan = Plan::builder()
        .workers(4)
        .capacity(1024)
        .name("stress")
        .build()
        .unwrap();
    let race = Arc::new(Race {
        plan: plan.clone(),
        pool: Mutex::new((0..POOL_SLOTS).map(|_| None).collect()),
        cancels: Semaphore::new(0),
        promotions: Semaphore::new(0),
        tag_cancels: Semaphore::new(0),
        resizes: Semaphore::new(0),
    });
    let (to_collector, from_submitters) = mpsc::channel(1024);
    let collector = tokio::spawn(collector(from_submitters));

    type Budget = fn(&Race) -> &Semaphore;
    type Act = fn(&Race, &mut Rng, &mut RoleTally);
    let mut roles: Vec<(Budget, Act)> = vec![(|race| &race.cancels, cancel_one); CANCELLERS];
    roles.push((|race| &race.promotions, promote_one));
    roles.push((|race| &race.tag_cancels, cancel_a_tag));
    roles.push((|race| &race.resizes, resize));
    let roles: Vec<_> = roles
        .into_iter()
        .enumerate()
        .map(|(seed, (budget, act))| {
            tokio::spawn(role(Arc::clone(&race), 100 + seed as u64, budget, act))
        })
        .collect();

    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|index| {
            tokio::spawn(submitter(
                Arc::clone(&race),
                to_collector.clone(),
                index,
                tasks / SUBMITTERS,
            ))
        })
        .collect();
    let mut submitted = SubmitterTally::default();
    for submitter in submitters {
        let tally = submitter.await.expect("a submitter panicked");
        submitted.kept += tally.kept;
        submitted.detached += tally.detached;
        submitted.detached_ends.add(tally.detached_ends);
        submitted.refused_full += tally.refused_full;
    }
    for budget in race.budgets() {
        budget.close();
    }
    let mut acted = RoleTally::default();
    for role in roles {
        let tally = role.await.expect("a role panicked");
        acted.cancels += tally.cancels;
        acted.promoted += tally.promoted;
        acted.tag_cancelled += tally.tag_cancelled;
        acted.resizes += tally.resizes;
    }
    let left: Vec<Entry> = race
        .pool
        .lock()
        .unwrap()
        .iter_mut()
        .filter_map(Option::take)
        .collect();
    for entry in left {
        to_collector.send(entry).await.expect("the collector lives");
    }
    drop(to_collector);
    let outcomes = collector.await.expect("the collector panicked");

    // Every kept handle resolved exactly once.
    assert_eq!(submitted.kept + submitted.detached, tasks);
    assert_eq!(outcomes.total(), submitted.kept, "a kept handle was lost");
    assert_eq!(
        outcomes
            .resolved
            .iter()
            .filter(|&&resolved| resolved)
            .count(),
        submitted.kept
    );

    // The handles agree with the counters, once the detached tasks are done.
    plan.wait_idle().await;
    let stats = plan.stats();
    let detached = submitted.detached_ends;
    common::assert_conserved(stats);
    for tag in ALL_TAGS {
        common::assert_forgotten(&plan, tag);
    }
    assert_eq!((stats.queued, stats.running), (0, 0), "{stats:?}");
    assert_eq!(stats.submitted, tasks, "{stats:?}");
    assert_eq!(
        (
            outcomes.completed,
            outcomes.cancelled,
            outcomes.panicked,
            outcomes.timed_out
        ),
        (
            stats.completed - detached.completed,
            stats.cancelled,
            stats.panicked - detached.panicked,
            stats.timed_out - detached.timed_out
        ),
        "handles against stats {stats:?} minus detached {detached:?}"
    );
    // Every path was taken. None of these can be 0 by chance: each comes
    // from thousands of tasks (hundreds in the warm-up), and only a
    // cancellation of every single one of them could take it away.
    for (outcome, count) in [
        ("completed", outcomes.completed),
        ("cancelled", outcomes.cancelled),
        ("panicked", outcomes.panicked),
        ("timed out", outcomes.timed_out),
    ] {
        assert!(count > 0, "no handle {outcome}");
    }

    // Shutdown terminates, and reports what the counters say.
    let report = common::join_or_fail_with(&plan, Duration::from_secs(10)).await;
    assert_eq!(
        (
            report.completed,
            report.cancelled,
            report.panicked,
            report.timed_out,
            report.abandoned,
            report.forced
        ),
        (
            stats.completed,
            stats.cancelled,
            stats.panicked,
            stats.timed_out,
            0,
            false
        ),
        "{report:?}"
    );
    assert_eq!(
        plan.stats(),
        stats,
        "nothing changed after the plan went idle"
    );
    Summary {
        tasks,
        kept: submitted.kept,
        detached: submitted.detached,
        refused_full: submitted.refused_full,
        completed: outcomes.completed,
        cancelled: outcomes.cancelled,
        panicked: outcomes.panicked,
        timed_out: outcomes.timed_out,
        cancels: acted.cancels,
        promoted: acted.promoted,
        tag_cancelled: acted.tag_cancelled,
        resizes: acted.resizes,
    }
}

/// Builds a 2-thread runtime, races `tasks` tasks on it within the test
/// bound, and drops the runtime (which joins its threads).
fn run(tasks: usize) -> Summary {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let summary = runtime.block_on(async {
        common::within(RUN_BOUND, race(tasks))
            .await
            .unwrap_or_else(|| panic!("{tasks} tasks did not finish within {RUN_BOUND:?}"))
    });
    drop(runtime);
    summary
}

#[test]
fn racing_submitters_cancellers_promoters_and_a_resizer_lose_no_handle_and_leak_nothing() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<PlannedPanic>() {
            default_hook(info);
        }
    }));

    let warm_up = run(WARM_UP_TASKS);
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    let allocations_before = ALLOCATIONS.load(Ordering::SeqCst);
    let started = Instant::now();
    let summary = run(TASKS);
    let elapsed = started.elapsed();
    let live = LIVE.load(Ordering::SeqCst);
    let peak = PEAK.load(Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - allocations_before;

    let _ = std::panic::take_hook(); // back to the default hook
    println!("warm-up: {warm_up}");
    println!("measured: {summary}");
    println!(
        "{} tasks in {elapsed:.2?}; {allocations} allocations; live bytes: \
         baseline {baseline}, peak {peak} (+{}), after {live}",
        summary.tasks,
        peak - baseline
    );
    assert_eq!(
        live,
        baseline,
        "{} bytes outlived the plan, its handles and the runtime",
        live - baseline
    );
    assert!(
        peak - baseline < PEAK_BOUND,
        "the live heap grew by {} bytes while {} tasks ran",
        peak - baseline,
        summary.tasks
    );
}
