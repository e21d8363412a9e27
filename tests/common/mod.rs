//! Helpers shared by the integration tests: deterministic gates and signals,
//! never sleeps; and the harness every test body runs in.
//!
//! # The harness: every test is bounded, every test plan is joined
//!
//! - [`harness`] runs a test body with a bound of [`TEST_BOUND`] of real
//!   (wall-clock) time: a body that hangs fails the test instead of hanging
//!   CI. The bound is kept by a watchdog thread, not a Tokio timer, so it
//!   holds under paused time (where a virtual hour passes in no real time)
//!   and on runtimes without a time driver.
//! - A plan built in a harnessed body is wrapped in [`tracked`], which keeps
//!   a clone of it for the harness. Once the body returns, the harness joins
//!   each tracked plan with [`join_or_fail`]: aborts it and fails the test
//!   unless it terminates within [`JOIN_BOUND`] with its counts adding up.
//! - `on_both_runtimes!` runs its bodies in the harness. A test written with
//!   `#[tokio::test]` directly wraps its body: `common::harness(async { ..
//!   }).await`.
//! - A test whose plan must stay up past its body, or must see its last
//!   clone dropped, does not call [`tracked`] and says why in a comment
//!   starting `Not tracked:`; [`tracked`] outside a harnessed body panics,
//!   so a forgotten harness cannot pass silently.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use taskplan::Plan;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Defines `#[tokio::test]`s on both runtime flavours for each named
/// `async fn` in the calling module, each run in the [`harness`].
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod current_thread {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::common::harness(super::$name()).await
                }
            )*
        }
        mod multi_thread {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::common::harness(super::$name()).await
                }
            )*
        }
    };
}

/// How long a test body may run, in real time, before the harness fails it.
/// Every test here takes well under a second; the bound only has to be
/// short enough that a hang fails CI instead of stalling it.
pub const TEST_BOUND: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// The plans a harnessed body built, for the harness to join.
    static TRACKED: RefCell<Vec<Plan>>;
}

/// Registers `plan` to be joined (with [`join_or_fail`]) once the test body
/// returns, and returns it.
///
/// # Panics
///
/// Outside a body run by [`harness`] (or `on_both_runtimes!`), including in
/// a task the body spawned: build the plan in the body itself.
pub fn tracked(plan: Plan) -> Plan {
    TRACKED
        .try_with(|plans| plans.borrow_mut().push(plan.clone()))
        .expect(
            "common::tracked outside a harnessed test body: wrap the body in \
             common::harness or use on_both_runtimes!",
        );
    plan
}

/// Runs a test body within [`TEST_BOUND`] of real time, then joins every plan
/// it [`tracked`] with [`join_or_fail`]. Returns the body's output.
///
/// # Panics
///
/// If the body panics, does not finish within the bound, or a tracked plan
/// does not terminate with its counts adding up.
pub async fn harness<F: Future>(body: F) -> F::Output {
    harness_within(TEST_BOUND, body).await
}

/// [`harness`] with a bound other than [`TEST_BOUND`].
pub async fn harness_within<F: Future>(bound: Duration, body: F) -> F::Output {
    let (output, plans) = TRACKED
        .scope(RefCell::new(Vec::new()), async {
            let Some(output) = within(bound, body).await else {
                let plans = TRACKED.with(|plans| format!("{:?}", plans.borrow()));
                panic!(
                    "the test body did not finish within {bound:?} of real time; \
                     its plans: {plans}"
                );
            };
            (output, TRACKED.with(RefCell::take))
        })
        .await;
    for plan in &plans {
        join_or_fail(plan).await;
    }
    output
}

/// Runs `body` within [`TEST_BOUND`] of real time, tracking nothing: for a
/// test exempt from joining (see the module docs), or whose runtime has no
/// time driver ([`join_or_fail`] needs one).
///
/// # Panics
///
/// If the body does not finish within the bound.
pub async fn bounded<F: Future>(body: F) -> F::Output {
    within(TEST_BOUND, body).await.unwrap_or_else(|| {
        panic!("the test body did not finish within {TEST_BOUND:?} of real time")
    })
}

/// Runs `future` to completion, or gives up (`None`) once `bound` of real
/// time has passed. Needs no time driver and ignores paused time.
pub async fn within<F: Future>(bound: Duration, future: F) -> Option<F::Output> {
    let (expired_tx, expired_rx) = oneshot::channel::<()>();
    let _watchdog = Watchdog::start(bound, move || {
        let _ = expired_tx.send(());
    });
    tokio::select! {
        biased;
        output = future => Some(output),
        _ = expired_rx => None,
    }
}

/// How long a [`Watchdog`]'s owner has, after the watchdog fired, to drop
/// it before the watchdog aborts the whole test process.
pub const STUCK_GRACE: Duration = Duration::from_secs(10);

/// A thread that runs `on_expiry` once `bound` of real time has passed,
/// unless the watchdog is dropped first. Dropping it stops and joins the
/// thread, so nothing of it outlives its owner.
///
/// `on_expiry` can only ask the owner to give up (wake an `.await`, kill a
/// child process); an owner stuck in synchronous code never hears it. So if
/// the watchdog is still not dropped [`STUCK_GRACE`] after it fired, it
/// aborts the process: the test binary fails instead of hanging CI.
pub struct Watchdog {
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(bound: Duration, on_expiry: impl FnOnce() + Send + 'static) -> Watchdog {
        let (stop, stopped) = std_mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("test-watchdog".into())
            .spawn(move || {
                let expired = |wait| {
                    matches!(
                        stopped.recv_timeout(wait),
                        Err(std_mpsc::RecvTimeoutError::Timeout)
                    )
                };
                if expired(bound) {
                    on_expiry();
                    if expired(STUCK_GRACE) {
                        eprintln!(
                            "a test is still stuck {STUCK_GRACE:?} after its bound of \
                             {bound:?} ran out (blocked in synchronous code?): aborting"
                        );
                        std::process::abort();
                    }
                }
            })
            .expect("spawning the watchdog thread");
        Watchdog {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take()); // wakes the thread at once
        if let Some(thread) = self.thread.take() {
            // Do not turn a failing test's unwind into an abort.
            let _ = thread.join();
        }
    }
}

/// A gate tasks wait at until the test lets them through, one at a time or
/// all at once.
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    pub fn closed() -> Gate {
        Gate(Arc::new(Semaphore::new(0)))
    }

    pub async fn pass(&self) {
        self.0
            .acquire()
            .await
            .expect("gate semaphore is never closed")
            .forget();
    }

    pub fn let_through(&self, count: usize) {
        self.0.add_permits(count);
    }

    pub fn open(&self) {
        self.0.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// Reports which tasks started, in order.
pub fn started_channel() -> (mpsc::UnboundedSender<usize>, mpsc::UnboundedReceiver<usize>) {
    mpsc::unbounded_channel()
}

/// Sets a flag when dropped: proves a future's destructors ran.
pub struct DropFlag(pub Arc<AtomicBool>);

impl DropFlag {
    pub fn new() -> (DropFlag, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (DropFlag(Arc::clone(&flag)), flag)
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Counts how many tasks run at once and the most ever seen.
#[derive(Clone, Default)]
pub struct Occupancy {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Occupancy {
    pub fn enter(&self) -> OccupancyGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        OccupancyGuard(Arc::clone(&self.now))
    }

    pub fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

pub struct OccupancyGuard(Arc<AtomicUsize>);

impl Drop for OccupancyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tasks that report when they start, count how many run at once, and
/// wait at one gate: the building block of most scheduling tests.
pub struct Gated {
    pub gate: Gate,
    pub occupancy: Occupancy,
    started_tx: mpsc::UnboundedSender<usize>,
    started_rx: mpsc::UnboundedReceiver<usize>,
}

impl Gated {
    pub fn new() -> Gated {
        let (started_tx, started_rx) = started_channel();
        Gated {
            gate: Gate::closed(),
            occupancy: Occupancy::default(),
            started_tx,
            started_rx,
        }
    }

    /// A task that reports `n` when it starts and returns `n` once the gate
    /// lets it through.
    pub fn task(&self, n: usize) -> impl std::future::Future<Output = usize> + Send + 'static {
        let (gate, occupancy, started_tx) = (
            self.gate.clone(),
            self.occupancy.clone(),
            self.started_tx.clone(),
        );
        async move {
            let _inside = occupancy.enter();
            started_tx.send(n).unwrap();
            gate.pass().await;
            n
        }
    }

    /// Waits for the next task to start and returns its number.
    pub async fn started(&mut self) -> usize {
        self.started_rx.recv().await.unwrap()
    }
}

/// Checks `submitted == queued + running + completed + cancelled + panicked
/// + timed_out`.
pub fn assert_conserved(stats: taskplan::Stats) {
    assert_eq!(
        stats.submitted,
        stats.queued
            + stats.running
            + stats.completed
            + stats.cancelled
            + stats.panicked
            + stats.timed_out,
        "{stats:?}"
    );
}

/// Checks that the plan has forgotten `tag`: it reports as a tag never seen,
/// as it must once none of its tasks is queued or running.
pub fn assert_forgotten(plan: &Plan, tag: &str) {
    let stats = plan.tag_stats(tag);
    let mut never_seen = taskplan::Stats::default();
    never_seen.workers = stats.workers;
    assert_eq!(stats, never_seen, "tag {tag:?} is still counted");
}

/// A running task of a tag that keeps the tag's counts for a test to read.
///
/// A plan keeps a tag only while one of its tasks is queued or running, so a
/// test that reads a tag's counts once its other tasks have ended keeps one
/// of these running until then. It takes a worker of its own, and counts in
/// the tag's stats (and the plan's) as a task submitted and running, whose
/// queue wait is zero: it starts before [`keep_tag`] returns.
pub struct TagKeeper {
    gate: Gate,
    handle: taskplan::TaskHandle<()>,
}

/// Submits a [`TagKeeper`] of `tag` and waits until it runs.
pub async fn keep_tag(plan: &Plan, tag: &'static str) -> TagKeeper {
    let gate = Gate::closed();
    let pass = gate.clone();
    let (started_tx, started_rx) = oneshot::channel();
    let handle = plan
        .task(async move {
            let _ = started_tx.send(());
            pass.pass().await;
        })
        .tag(tag)
        .submit()
        .await
        .expect("the plan takes the keeper");
    started_rx.await.expect("the keeper starts");
    TagKeeper { gate, handle }
}

impl TagKeeper {
    /// Lets the keeper end, completed, and waits until it has.
    pub async fn release(self) {
        self.gate.open();
        self.handle.await.expect("the keeper completes");
    }
}

/// How long a test plan may take to terminate once the test is done with it.
/// Under paused time this is virtual: a plan that never terminates fails at
/// once instead of after a real wait.
pub const JOIN_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Shuts `plan` down (with `grace` for its running tasks, then an abort) and
/// fails the test unless every supervisor has exited and every handle has
/// resolved within [`JOIN_BOUND`]; then checks that the counts add up.
/// Returns the report.
pub async fn join_or_fail_with(
    plan: &taskplan::Plan,
    grace: std::time::Duration,
) -> taskplan::ShutdownReport {
    let report = match tokio::time::timeout(JOIN_BOUND, plan.shutdown(grace)).await {
        Ok(report) => report,
        Err(_) => panic!(
            "plan {:?} did not terminate within {JOIN_BOUND:?}: {:?}",
            plan.name(),
            plan.stats()
        ),
    };
    let stats = plan.stats();
    assert_eq!((stats.queued, stats.running), (0, 0), "{stats:?}");
    assert_conserved(stats);
    report
}

/// [`join_or_fail_with`] with a grace period of zero: an abort.
pub async fn join_or_fail(plan: &taskplan::Plan) -> taskplan::ShutdownReport {
    join_or_fail_with(plan, std::time::Duration::ZERO).await
}

/// `target/<profile>/examples/<name>`, next to the running test's
/// `target/<profile>/deps/`, built now with the same cargo.
///
/// A plain `cargo test` has built it already and this build finds nothing
/// to do; a run of one test alone (`cargo test --test tcp_service`) has
/// not built it, or has left an old build from before the example or the
/// library changed. Cargo does not hold its build lock while tests run, so
/// this does not wait on the `cargo test` that started the test.
///
/// The build asks for the profile, target directory and features this test
/// binary was built with: with any other, cargo would build the library again and
/// put a different binary where the one `cargo test` built was.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary.parent().unwrap().parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    // Every feature in Cargo.toml (one missing here only costs a rebuild),
    // and `default` too: cargo tells a build with it from one with the
    // features it stands for.
    let features: Vec<&str> = [
        ("default", cfg!(feature = "default")),
        ("signal", cfg!(feature = "signal")),
        ("metrics", cfg!(feature = "metrics")),
        ("redis", cfg!(feature = "redis")),
    ]
    .into_iter()
    .filter_map(|(feature, enabled)| enabled.then_some(feature))
    .collect();
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", name])
        .args(["--profile", profile])
        .args(["--no-default-features", "--features", &features.join(",")])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building the example failed: {status}");
    profile_dir.join("examples").join(name)
}

/// What a `fmt` subscriber installed as a thread's default writes, as text.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Installs a `fmt` subscriber that writes here as this thread's
    /// default, until the guard drops. On a current-thread runtime the
    /// plan's supervisors run on this thread too.
    pub fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The first line written that contains `needle`.
    ///
    /// # Panics
    ///
    /// If there is none, showing everything written.
    pub fn line_containing(&self, needle: &str) -> String {
        let text = self.text();
        match text.lines().find(|line| line.contains(needle)) {
            Some(line) => line.to_owned(),
            None => panic!("no line with {needle:?} in the log:\n{text}"),
        }
    }
}

/// Awaits `future` under paused time, failing the test if it hangs: a wait
/// of an hour of virtual time only runs out when nothing else can happen.
pub async fn or_hang<F: Future>(future: F, what: &str) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: hangs"))
}

/// Checks that a plan's only worker is alive and its bookkeeping whole
/// after user code panicked at it: a next task runs, `wait_idle` returns,
/// and the counts add up.
pub async fn the_plan_keeps_working(plan: &Plan) {
    let next = plan
        .submit(async { "next" })
        .await
        .expect("the plan still accepts work: its worker is alive");
    assert_eq!(or_hang(next, "the next task").await.unwrap(), "next");
    or_hang(plan.wait_idle(), "wait_idle").await;
    assert_conserved(plan.stats());
}
