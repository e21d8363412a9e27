//! Regression tests from a review: each failed before its fix.
//!
//! - no queued task starts once the plan's token is cancelled;
//! - a panicking destructor of a detached task's output neither kills its
//!   worker nor leaves the task unsettled;
//! - a supervisor gives the runtime a turn between tasks;
//! - `abort` returns only once every handle has resolved;
//! - a task dropped with the runtime is counted and settled.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use taskplan::Plan;

// A task cancels the plan's token (e.g. it hit a fatal error) and returns.
// Its supervisor polls the task first (`biased`), sees it complete, pulls the
// next queued task and polls it before the watcher task drains the queue.
#[tokio::test]
async fn a_queued_task_does_not_start_after_a_task_cancels_the_token() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let token = plan.token();
        let first = plan.submit(async move { token.cancel() }).await.unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let started_in_task = Arc::clone(&started);
        let queued = plan
            .submit(async move { started_in_task.store(true, Ordering::SeqCst) })
            .await
            .unwrap();
        first.await.unwrap();
        let queued = queued.await;
        assert!(
            !started.load(Ordering::SeqCst),
            "queued task started after the plan was aborted: {queued:?}"
        );
        assert!(queued.unwrap_err().is_cancelled());
    })
    .await
}

// Same, with the cancel coming from outside while the running task becomes
// ready at the same moment: the supervisor is already scheduled when the
// token wakes the watcher, so it runs first.
#[tokio::test]
async fn a_queued_task_does_not_start_after_an_external_token_cancel() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let running = plan
            .submit(async move {
                started_tx.send(()).unwrap();
                rx.await.unwrap();
            })
            .await
            .unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let started_in_task = Arc::clone(&started);
        let queued = plan
            .submit(async move { started_in_task.store(true, Ordering::SeqCst) })
            .await
            .unwrap();
        started_rx.recv().await.unwrap();
        tx.send(()).unwrap();
        plan.token().cancel();
        let _ = running.await;
        let queued = queued.await;
        assert!(
            !started.load(Ordering::SeqCst),
            "queued task started after the token was cancelled: {queued:?}"
        );
    })
    .await
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("output destructor panicked");
        }
    }
}

#[tokio::test]
async fn a_panicking_output_destructor_does_not_kill_the_worker() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        // Detached: the handle is dropped, so the output is dropped with the
        // task wrapper, in the supervisor.
        drop(plan.submit(async { PanicsOnDrop }).await.unwrap());
        let next = plan.submit(async { "next" }).await;
        let next = next.expect("plan still accepts work").await;
        assert_eq!(
            next.unwrap(),
            "next",
            "the worker survives and runs the next task"
        );
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn wait_idle_returns_after_a_panicking_output_destructor() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        drop(plan.submit(async { PanicsOnDrop }).await.unwrap());
        tokio::time::timeout(Duration::from_secs(3600), plan.wait_idle())
            .await
            .expect("wait_idle never returns: the task was never settled");
        let stats = plan.stats();
        assert_eq!(stats.workers, 2);
    })
    .await
}

fn chain(
    plan: Plan,
    ran: Arc<AtomicUsize>,
    left: usize,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        ran.fetch_add(1, Ordering::SeqCst);
        if left > 0 {
            let next = chain(plan.clone(), Arc::clone(&ran), left - 1);
            drop(plan.try_submit(next).ok());
        }
    })
}

#[tokio::test]
async fn a_supervisor_yields_to_other_tasks_between_tasks() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        plan.submit(chain(plan.clone(), Arc::clone(&ran), 10_000))
            .await
            .unwrap();
        // Let the supervisor run; Tokio's own budget is 128 operations per poll.
        tokio::task::yield_now().await;
        let ran_before_we_got_back = ran.load(Ordering::SeqCst);
        plan.close();
        assert!(
            ran_before_we_got_back < 1_000,
            "the supervisor ran {ran_before_we_got_back} tasks without yielding"
        );
    })
    .await
}

struct SlowDrop {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.entered.send(()).unwrap();
        let _ = self.release.recv();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_returns_only_once_every_handle_has_resolved() {
    common::harness(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let _blocker = plan
            .submit(async move {
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        started_rx.recv().await.unwrap();

        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let slow = SlowDrop {
            entered: entered_tx,
            release: release_rx,
        };
        let queued = Arc::new(plan.submit(async move { drop(slow) }).await.unwrap());

        let canceller = {
            let queued = Arc::clone(&queued);
            std::thread::spawn(move || queued.cancel())
        };
        entered_rx.recv().unwrap(); // the canceller is inside the task's destructor

        let token = plan.token();
        let abort = {
            let queued = Arc::clone(&queued);
            tokio::spawn(async move {
                let report = plan.abort().await;
                (report, queued.is_finished())
            })
        };
        // Wait until the abort has done all it can: token cancelled, the
        // supervisor and the watcher gone (only the abort task is left).
        while !(token.is_cancelled() && metrics.num_alive_tasks() <= 1) {
            tokio::task::yield_now().await;
        }
        release_tx.send(()).unwrap();
        canceller.join().unwrap();
        let (report, resolved_when_abort_returned) = abort.await.unwrap();
        assert!(
            resolved_when_abort_returned,
            "abort returned ({report:?}) before the cancelled task's handle resolved"
        );
    })
    .await
}

#[test]
fn a_task_dropped_with_the_runtime_is_counted_and_settled() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Not tracked: the runtime under the plan is dropped; the plan cannot be
    // joined afterwards (the second runtime checks it settled instead).
    let (plan, running) = runtime.block_on(common::bounded(async {
        let plan = Plan::builder().workers(1).build().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let running = plan
            .submit(async move {
                tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        rx.recv().await.unwrap();
        (plan, running)
    }));
    drop(runtime);
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    other.block_on(common::bounded(async {
        assert!(running.await.unwrap_err().is_cancelled());
        let stats = plan.stats();
        assert_eq!((stats.running, stats.cancelled), (0, 1), "{stats:?}");
        tokio::time::timeout(Duration::from_secs(3600), plan.wait_idle())
            .await
            .expect("wait_idle hangs");
        // And it can still be shut down, from another runtime.
        common::join_or_fail(&plan).await;
    }));
}
