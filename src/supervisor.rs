//! The supervisor loop: one spawned Tokio task per worker that pulls tasks
//! off the plan's queue and runs them one at a time.
//!
//! A supervisor runs each task raced against the plan's
//! [`CancellationToken`](tokio_util::sync::CancellationToken) in `select!`,
//! so an abort drops a task at once even when it waits on I/O that never
//! completes. Per-task cancellation needs no token: a task's own cancel flag
//! and waker live in its header, and the task wrapper checks them on every
//! poll (see `task.rs`).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use tokio::time::{Instant, Sleep, sleep_until};

use crate::plan::Shared;
use crate::task::Outcome;

/// Runs tasks until the plan is closed and drained, is aborted, or has more
/// supervisors than it needs.
///
/// Taking the next task does not look at the token: an abort closes and
/// drains the queue (see `watch_token`), which ends `next_task` as surely
/// and costs the hot path nothing.
pub(crate) async fn supervise(plan: Arc<Shared>) {
    let _exit = ExitGuard { plan: &plan };
    // One `cancelled()` future for the supervisor's whole life, so it joins
    // the token's waiter list once, not once per task.
    let mut aborted = pin!(plan.token.cancelled());
    // One timer for the supervisor's whole life, made at the first task with
    // a timeout (a runtime without a time driver never needs one), and reset
    // for each later one.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    while let Some(mut task) = plan.next_task().await {
        let deadline = task
            .header()
            .timeout()
            .and_then(|timeout| Instant::now().checked_add(timeout));
        if let Some(deadline) = deadline {
            match &mut timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => timer = Some(Box::pin(sleep_until(deadline))),
            }
        }
        let expired = poll_fn(|cx| match (&mut timer, deadline) {
            (Some(timer), Some(_)) => timer.as_mut().poll(cx),
            _ => Poll::Pending,
        });
        // The task goes first: a task that finishes on its first poll never
        // pays for looking at the token or the clock.
        let ending = tokio::select! {
            biased;
            outcome = poll_fn(|cx| task.as_mut().poll_run(cx, plan.outcomes())) => Ending::Ran(outcome),
            _ = &mut aborted => Ending::Aborted,
            _ = expired => Ending::Expired,
        };
        plan.finished_running(task.header());
        let outcome = match ending {
            Ending::Ran(outcome) => outcome,
            Ending::Expired => task.as_mut().time_out(plan.outcomes()),
            Ending::Aborted => {
                // Close and empty the queue before this task's handle
                // resolves, so whoever awaits it sees the plan stopped.
                plan.cancel_queued();
                task.header().record(plan.outcomes(), &Outcome::Cancelled);
                drop(task);
                plan.settle(1);
                return;
            }
        };
        if let Outcome::Panicked(message) = &outcome {
            let header = task.header();
            tracing::error!(
                plan = %plan.name,
                task = %header.id(),
                tag = header.tag().map(|tag| tag.name.as_str()),
                panic = message.as_deref().unwrap_or("<non-string payload>"),
                "task panicked"
            );
        }
        drop(task);
        plan.settle(1);
    }
}

/// How the race between a task, the token and the clock ended.
enum Ending {
    Ran(Outcome),
    Aborted,
    Expired,
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
        // A retiring supervisor may have been the one a push woke: hand the
        // wakeup on so the task it was meant for does not wait.
        self.plan.pass_on_wakeup();
        self.plan.supervisor_exited();
    }
}
