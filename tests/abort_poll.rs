//! `abort()` (or a cancel of the plan's token) drops a running task at its
//! supervisor's next poll without polling it again. (Regression test from a
//! review: the supervisor once polled the task first on every wakeup, so the
//! wakeup that carried the abort ran the task once more, and a task that
//! became ready then was counted `completed` after the abort.)

mod common;

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use taskplan::Plan;
use tokio::sync::oneshot;

async fn abort_does_not_poll_a_running_task_again() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let token = plan.token();
    let polled_after_abort = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let mut started_tx = Some(started_tx);
    let handle = plan
        .submit({
            let polled_after_abort = Arc::clone(&polled_after_abort);
            // Never registers a waker: only the supervisor's own wakeup
            // (from the token) can poll it again.
            // The token is looked at before `started` is sent: a poll that
            // began before the abort may see the token cancelled on its way
            // out (the test thread aborts as soon as `started` arrives), and
            // no supervisor can help that; only a poll that *begins* after
            // the abort is a bug.
            poll_fn(move |_| {
                if token.is_cancelled() {
                    polled_after_abort.store(true, Ordering::SeqCst);
                    return Poll::Ready("finished after abort");
                }
                if let Some(tx) = started_tx.take() {
                    tx.send(()).unwrap();
                }
                Poll::Pending
            })
        })
        .await
        .unwrap();
    started_rx.await.unwrap();

    let report = plan.abort().await;
    let result = handle.await;
    assert!(
        !polled_after_abort.load(Ordering::SeqCst),
        "the running task was polled after the abort cancelled the token; \
         handle: {result:?}, report: {report:?}"
    );
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!((report.completed, report.cancelled), (0, 1));
}

on_both_runtimes!(abort_does_not_poll_a_running_task_again);
