//! Semantics 6: cancelling queued, running and finished tasks.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use common::{DropFlag, Gate, Gated};
use taskplan::Plan;

/// Pending forever, and drops the waker it is given: nothing can ever wake
/// it, as with a read on a socket whose peer went silent.
struct NeverWakes;

impl Future for NeverWakes {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

async fn a_cancelled_queued_task_never_starts() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let blocker_gate = gate.clone();
    let blocker = plan
        .submit(async move {
            started_tx.send(0).unwrap();
            blocker_gate.pass().await
        })
        .await
        .unwrap();
    started_rx.recv().await.unwrap();

    let started = Arc::new(AtomicBool::new(false));
    let (guard, dropped) = DropFlag::new();
    let started_in_task = Arc::clone(&started);
    let queued = plan
        .submit(async move {
            let _guard = guard;
            started_in_task.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap();

    queued.cancel();
    // Removed from the queue, dropped and resolved before `cancel` returns.
    assert!(queued.is_finished());
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(plan.stats().queued, 0);
    assert!(queued.await.unwrap_err().is_cancelled());

    gate.open();
    blocker.await.unwrap();
    plan.wait_idle().await;
    assert!(!started.load(Ordering::SeqCst));
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 1));
}

async fn a_running_task_that_never_wakes_is_dropped_at_once() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (started_tx, mut started_rx) = common::started_channel();
    let (guard, dropped) = DropFlag::new();
    let stuck = plan
        .submit(async move {
            let _guard = guard;
            started_tx.send(0).unwrap();
            NeverWakes.await;
        })
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    assert_eq!(plan.stats().running, 1);

    stuck.cancel();
    let error = stuck.await.unwrap_err();
    assert!(error.is_cancelled());
    assert!(
        dropped.load(Ordering::SeqCst),
        "destructors ran before the handle resolved"
    );

    // The only worker is free again.
    let next = plan.submit(async { "next" }).await.unwrap();
    assert_eq!(next.await.unwrap(), "next");
    let stats = plan.stats();
    assert_eq!((stats.running, stats.cancelled, stats.completed), (0, 1, 1));
}

async fn cancelling_one_task_leaves_the_others_running() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut tasks = Gated::new();
    let cancelled = plan.submit(tasks.task(0)).await.unwrap();
    let survivor = plan.submit(tasks.task(1)).await.unwrap();
    tasks.started().await;
    tasks.started().await;
    cancelled.cancel();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    tasks.gate.open();
    assert_eq!(survivor.await.unwrap(), 1);
}

async fn cancelling_a_finished_task_does_nothing() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut handle = plan.submit(async { 5 }).await.unwrap();
    assert_eq!((&mut handle).await.unwrap(), 5);
    handle.cancel();
    handle.cancel();
    assert!(handle.is_finished());
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 0));
}

async fn cancelling_twice_counts_once() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (started_tx, mut started_rx) = common::started_channel();
    let running = plan
        .submit(async move {
            started_tx.send(0).unwrap();
            NeverWakes.await
        })
        .await
        .unwrap();
    let queued = plan.submit(async {}).await.unwrap();
    started_rx.recv().await.unwrap();
    // The queued one first: once the running one is gone, the worker
    // would start the queued one.
    for _ in 0..2 {
        queued.cancel();
        running.cancel();
    }
    assert!(running.await.unwrap_err().is_cancelled());
    assert!(queued.await.unwrap_err().is_cancelled());
    plan.wait_idle().await;
    assert_eq!(plan.stats().cancelled, 2);
}

on_both_runtimes!(
    a_cancelled_queued_task_never_starts,
    a_running_task_that_never_wakes_is_dropped_at_once,
    cancelling_one_task_leaves_the_others_running,
    cancelling_a_finished_task_does_nothing,
    cancelling_twice_counts_once,
);
