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
pub(crate) async fn supervise(plan: Arc<Shared>) {
    let _exit = ExitGuard { plan: &plan };
    // One `cancelled()` future for the supervisor's whole life: it registers
    // with the token once, not once per task.
    let mut aborted = pin!(plan.token.cancelled());
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut aborted => break,
            next = plan.next_task() => next,
        };
        let Some(mut task) = next else { return };
        // The task goes first: a task that finishes on its first poll never
        // pays for looking at the token.
        let outcome = tokio::select! {
            biased;
            outcome = poll_fn(|cx| task.as_mut().poll_run(cx, plan.counters())) => Some(outcome),
            _ = &mut aborted => None,
        };
        let Some(outcome) = outcome else {
            // Close and empty the queue before this task's handle resolves,
            // so whoever awaits it sees the plan already stopped.
            plan.cancel_queued();
            plan.counters().record(&Outcome::Cancelled);
            drop(task);
            plan.settle(1);
            break;
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
    plan.cancel_queued();
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
