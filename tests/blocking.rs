//! Issue 0.2, semantics 7: blocking closures on Tokio's blocking pool.
//!
//! Mutation testing: `replace match guard error.is_panic() with true` in
//! `BlockingTask::poll` (src/blocking.rs) survives, and no test here can
//! kill it. The guard only decides the branch for a `JoinError` that is not
//! a panic, which tokio returns only when the runtime shuts down before the
//! blocking pool started the closure; by then the runtime has dropped the
//! supervisor holding the task, so the task is never polled to see it. The
//! mutant changes unreachable behaviour only.

mod common;

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use taskplan::Plan;
use tokio_util::sync::CancellationToken;

/// A closure's way to wait for the test: blocks its thread until released.
fn blocker() -> (std_mpsc::Sender<()>, std_mpsc::Receiver<()>) {
    std_mpsc::channel()
}

async fn a_closure_runs_off_the_runtime_threads_and_returns_its_value() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (release_tx, release_rx) = blocker();
    let handle = plan
        .submit_blocking(move |_token| {
            // Blocks its thread: on a current-thread runtime this would
            // deadlock the test if it ran on the runtime's thread.
            release_rx.recv().unwrap();
            6 * 7
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    release_tx.send(()).unwrap();
    assert_eq!(handle.await.unwrap(), 42);
}

async fn a_running_closure_holds_a_worker_slot() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = blocker();
    let closure = plan
        .submit_blocking(move |_token| {
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .await
        .unwrap();
    let next = plan.submit(async { "next" }).await.unwrap();
    entered_rx.await.unwrap();
    let stats = plan.stats();
    assert_eq!(
        (stats.running, stats.queued),
        (1, 1),
        "the closure holds the only slot"
    );
    assert!(!next.is_finished());
    release_tx.send(()).unwrap();
    closure.await.unwrap();
    assert_eq!(next.await.unwrap(), "next");
}

async fn cancelling_resolves_at_once_cancels_the_token_and_frees_the_slot() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = blocker();
    let (returned_tx, returned_rx) = tokio::sync::oneshot::channel();
    let stubborn = plan
        .submit_blocking(move |token: CancellationToken| {
            token_tx.send(token).unwrap();
            entered_tx.send(()).unwrap();
            // Never looks at its token.
            release_rx.recv().unwrap();
            returned_tx.send(()).unwrap();
        })
        .await
        .unwrap();
    let next = plan.submit(async { "next ran" }).await.unwrap();
    entered_rx.await.unwrap();
    let token = token_rx.await.unwrap();

    stubborn.cancel();
    assert!(stubborn.await.unwrap_err().is_cancelled());
    assert!(token.is_cancelled());
    // The slot is free although the closure still blocks its thread.
    assert_eq!(next.await.unwrap(), "next ran");
    assert!(returned_rx.is_empty());
    release_tx.send(()).unwrap();
    returned_rx.await.unwrap();
}

async fn a_cooperative_closure_stops_when_its_token_is_cancelled() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
    let handle = plan
        .submit_blocking(move |token: CancellationToken| {
            token_tx.send(token.clone()).unwrap();
            let mut rounds = 0u64;
            while !token.is_cancelled() {
                rounds += 1;
                std::thread::yield_now();
            }
            stopped_tx.send(rounds).unwrap();
        })
        .await
        .unwrap();
    token_rx.await.unwrap();
    handle.cancel();
    assert!(handle.await.unwrap_err().is_cancelled());
    stopped_rx.await.unwrap();
}

async fn a_panicking_closure_resolves_with_a_panic() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let handle = plan
        .submit_blocking(|_token| -> u8 { panic!("disk on fire") })
        .await
        .unwrap();
    let error = handle.await.unwrap_err();
    assert!(error.is_panic());
    assert_eq!(
        *error.into_panic().downcast::<&str>().unwrap(),
        "disk on fire"
    );
    assert_eq!(plan.submit(async { 1 }).await.unwrap().await.unwrap(), 1);
}

async fn a_refused_closure_is_handed_back_uncalled() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.close();
    let refused = plan.submit_blocking(|_token| 5).await.unwrap_err();
    assert!(refused.is_closed());
    let closure = refused.into_inner();
    assert_eq!(closure(CancellationToken::new()), 5);
}

async fn abort_counts_a_closure_still_running_as_abandoned() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = blocker();
    let stubborn = plan
        .submit_blocking(move |_token| {
            entered_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .await
        .unwrap();
    let finished = plan.submit_blocking(|_token| 1).await.unwrap();
    assert_eq!(finished.await.unwrap(), 1);
    entered_rx.await.unwrap();

    // Returns although the closure still blocks: abort never waits for it.
    let report = plan.abort().await;
    assert_eq!(report.abandoned, 1, "only the one still running");
    assert_eq!((report.completed, report.cancelled), (1, 1));
    assert!(stubborn.await.unwrap_err().is_cancelled());

    release_tx.send(()).unwrap();
    // Once the closure returns it is no longer abandoned. Its thread
    // finishing is not an event this test can await, so poll the count.
    let mut report = plan.abort().await;
    for _ in 0..10_000 {
        if report.abandoned == 0 {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
        report = plan.abort().await;
    }
    assert_eq!(report.abandoned, 0);
}

on_both_runtimes!(
    a_closure_runs_off_the_runtime_threads_and_returns_its_value,
    a_running_closure_holds_a_worker_slot,
    cancelling_resolves_at_once_cancels_the_token_and_frees_the_slot,
    a_cooperative_closure_stops_when_its_token_is_cancelled,
    a_panicking_closure_resolves_with_a_panic,
    a_refused_closure_is_handed_back_uncalled,
    abort_counts_a_closure_still_running_as_abandoned,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_never_waits_past_its_grace_for_a_blocked_closure() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = blocker();
        plan.submit_blocking(move |_token| {
            entered_tx.send(()).unwrap();
            // Released only after shutdown returns: if shutdown waited for
            // this closure, the test would never end.
            release_rx.recv().unwrap();
        })
        .await
        .unwrap();
        entered_rx.await.unwrap();
        let report = plan.shutdown(Duration::from_millis(1)).await;
        assert!(report.forced);
        assert_eq!((report.cancelled, report.abandoned), (1, 1));
        release_tx.send(()).unwrap();
    })
    .await
}
