//! A panicking output destructor of a detached tagged task never escapes
//! `cancel_tag`. (Regression test from a review: `cancel_tag` holds a
//! reference to each running tagged task while it cancels them; if one
//! finishes meanwhile with its handle gone, that reference is the last, and
//! dropping it drops the task's output in the caller.)
//!
//! Deterministic: the destructor of a queued task of the same tag (dropped
//! by `cancel_tag` between the clone and the drop) lets the running task
//! finish and waits until its supervisor has moved on to the next task.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use taskplan::Plan;
use tokio::sync::{Semaphore, oneshot};

struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("output destructor");
    }
}

/// Held by the queued task's future: when dropped, lets the running task
/// finish and waits for the supervisor to start the next task.
struct LetRunningFinish {
    gate: Arc<Semaphore>,
    next_started: std_mpsc::Receiver<()>,
}
impl Drop for LetRunningFinish {
    fn drop(&mut self) {
        self.gate.add_permits(1);
        self.next_started.recv().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_output_destructor_panic_does_not_escape_cancel_tag() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        // Keeps the second worker busy so the queued tasks stay queued.
        let (blocker_started_tx, blocker_started_rx) = oneshot::channel();
        let blocker = plan
            .submit(async move {
                blocker_started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let (running_started_tx, running_started_rx) = oneshot::channel();
        let running = plan
            .task({
                let gate = Arc::clone(&gate);
                async move {
                    running_started_tx.send(()).unwrap();
                    gate.acquire().await.unwrap().forget();
                    PanicsOnDrop
                }
            })
            .tag("t")
            .submit()
            .await
            .unwrap();
        drop(running); // detached
        blocker_started_rx.await.unwrap();
        running_started_rx.await.unwrap();

        let (next_started_tx, next_started_rx) = std_mpsc::channel();
        let guard = LetRunningFinish {
            gate,
            next_started: next_started_rx,
        };
        let queued = plan
            .task(async move {
                let _guard = guard;
            })
            .tag("t")
            .submit()
            .await
            .unwrap();
        let next = plan
            .submit(async move { next_started_tx.send(()).unwrap() })
            .await
            .unwrap();

        let cancelled = catch_unwind(AssertUnwindSafe(|| plan.cancel_tag("t")));
        assert!(
            cancelled.is_ok(),
            "a detached task's output destructor panicked inside cancel_tag's caller"
        );
        assert!(queued.await.unwrap_err().is_cancelled());
        next.await.unwrap();
        blocker.cancel();
        plan.shutdown(std::time::Duration::ZERO).await;
    })
    .await
}
