//! Helpers shared by the integration tests: deterministic gates and signals,
//! never sleeps.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc};

/// Defines `#[tokio::test]`s on both runtime flavours for each named
/// `async fn` in the calling module.
#[macro_export]
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod current_thread {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name().await
                }
            )*
        }
        mod multi_thread {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name().await
                }
            )*
        }
    };
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
