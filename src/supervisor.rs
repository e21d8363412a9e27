//! The supervisor loop: one spawned Tokio task per worker that pulls tasks
//! off the plan's queue and runs them one at a time.
//!
//! A supervisor runs each task raced against the plan's
//! [`CancellationToken`](tokio_util::sync::CancellationToken) in `select!`,
//! so an abort drops a task at once even when it waits on I/O that never
//! completes. Per-task cancellation needs no token: a task's own cancel flag
//! and waker live in its header, and the task wrapper checks them on every
//! poll (see `task.rs`).

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;

use crate::plan::Shared;
use crate::task::Outcome;

/// Runs tasks until the plan is closed and drained, or aborted.
///
/// Taking the next task does not look at the token: an abort closes and
/// drains the queue (see `watch_token`), which ends `next_task` as surely
/// and costs the hot path nothing.
pub(crate) async fn supervise(plan: Arc<Shared>) {
    let _exit = ExitGuard { plan: &plan };
    // One `cancelled()` future for the supervisor's whole life, so it joins
    // the token's waiter list once, not once per task.
    let mut aborted = pin!(plan.token.cancelled());
    while let Some(mut task) = plan.next_task().await {
        // The task goes first: a task that finishes on its first poll never
        // pays for looking at the token.
        let outcome = tokio::select! {
            biased;
            outcome = poll_fn(|cx| task.as_mut().poll_run(cx, plan.outcomes())) => Some(outcome),
            _ = &mut aborted => None,
        };
        let Some(outcome) = outcome else {
            // Close and empty the queue before this task's handle resolves,
            // so whoever awaits it sees the plan already stopped.
            plan.cancel_queued();
            plan.outcomes().record(&Outcome::Cancelled);
            drop(task);
            plan.settle(1);
            return;
        };
        let id = task.header().id();
        drop(task);
        if let Outcome::Panicked(message) = outcome {
            tracing::error!(
                plan = %plan.name,
                task = %id,
                panic = message.as_deref().unwrap_or("<non-string payload>"),
                "task panicked"
            );
        }
        plan.settle(1);
    }
}

/// Turns a cancellation of the plan's token, from wherever it comes, into
/// an abort of the queue: closed, and every queued task dropped unstarted.
/// Running tasks see the token themselves, in `supervise`.
///
/// Ends when the token is cancelled or when every supervisor has exited, so
/// a plan that shuts down normally leaves nothing waiting on the token.
pub(crate) async fn watch_token(plan: Arc<Shared>) {
    tokio::select! {
        _ = plan.token.cancelled() => plan.cancel_queued(),
        _ = plan.supervisors_exited() => {}
    }
}

/// Runs when a supervisor exits, normally or because the runtime dropped it.
struct ExitGuard<'a> {
    plan: &'a Shared,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        self.plan.supervisor_exited();
    }
}
