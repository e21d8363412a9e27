//! "Every handle resolves, whatever ends the task: ... or the runtime shut
//! down under the plan" (README, Guarantees), even when a supervisor was
//! spawned but never polled before the runtime went away. (Regression tests
//! from a review: the exit guard was once made inside the supervisor's
//! future, so an unpolled supervisor never ran it and the queue was never
//! drained.)

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use taskplan::Plan;

/// Polls once with a no-op waker: resolved or not, right now.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn a_queued_task_resolves_when_the_runtime_drops_before_any_supervisor_ran() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (plan, queued) = runtime.block_on(common::bounded(async {
        // Not tracked: the runtime under the plan is dropped; nothing can
        // join it afterwards.
        let plan = Plan::builder().workers(1).build().unwrap();
        // No `.await` before the runtime goes: the supervisor is never polled.
        let queued = plan.try_submit(async { 1 }).unwrap();
        (plan, queued)
    }));
    drop(runtime);
    assert!(
        queued.is_finished(),
        "the runtime is gone and the queued task's handle never resolves: {:?}",
        plan.stats()
    );
    assert!(poll_once(queued).is_ready());
}

#[test]
fn a_queued_task_resolves_when_the_runtime_drops_right_after_set_workers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (plan, running, queued) = runtime.block_on(common::bounded(async {
        // Not tracked: the runtime under the plan is dropped; nothing can
        // join it afterwards.
        let plan = Plan::builder().workers(1).build().unwrap();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let running = plan
            .submit(async move {
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        started_rx.await.unwrap();
        let queued = plan.try_submit(async { 2 }).unwrap();
        // Grows to two; the new supervisor is spawned but not yet polled.
        plan.set_workers(2).unwrap();
        (plan, running, queued)
    }));
    drop(runtime);
    assert!(running.is_finished(), "the running task resolves (it does)");
    assert!(
        queued.is_finished(),
        "the queued task's handle never resolves: {:?}",
        plan.stats()
    );
}
