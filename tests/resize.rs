//! Issue 0.2, semantics 4: changing the number of workers live.

mod common;

use common::{Gated, Occupancy};
use taskplan::{Plan, ResizeError};

async fn growing_takes_effect_at_once() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut tasks = Gated::new();
    let mut handles = Vec::new();
    for n in 0..4 {
        handles.push(plan.submit(tasks.task(n)).await.unwrap());
    }
    assert_eq!(tasks.started().await, 0);
    assert_eq!(plan.stats().queued, 3);

    plan.set_workers(3).unwrap();
    assert_eq!(plan.stats().workers, 3);
    // Two new workers take two queued tasks without anything finishing.
    assert_eq!(tasks.started().await, 1);
    assert_eq!(tasks.started().await, 2);
    assert_eq!(tasks.occupancy.now(), 3);
    let stats = plan.stats();
    assert_eq!((stats.running, stats.queued), (3, 1));

    tasks.gate.open();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(tasks.occupancy.peak(), 3);
}

async fn shrinking_never_interrupts_running_tasks() {
    let plan = common::tracked(Plan::builder().workers(3).build().unwrap());
    let mut tasks = Gated::new();
    let mut running = Vec::new();
    for n in 0..3 {
        running.push(plan.submit(tasks.task(n)).await.unwrap());
    }
    for _ in 0..3 {
        tasks.started().await;
    }

    plan.set_workers(1).unwrap();
    assert_eq!(plan.stats().workers, 1);
    // Queue more while all three still run.
    let after = Occupancy::default();
    let mut later = Vec::new();
    for _ in 0..6 {
        let after = after.clone();
        later.push(
            plan.submit(async move {
                let _inside = after.enter();
                tokio::task::yield_now().await;
            })
            .await
            .unwrap(),
        );
    }
    tasks.gate.open();
    for (n, handle) in running.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), n, "a running task finished normally");
    }
    for handle in later {
        handle.await.unwrap();
    }
    assert_eq!(after.peak(), 1, "once the surplus left, one task at a time");
    assert_eq!(plan.stats().cancelled, 0);
}

async fn shrinking_idle_workers_and_growing_again() {
    let plan = common::tracked(Plan::builder().workers(4).build().unwrap());
    plan.set_workers(1).unwrap();
    plan.set_workers(2).unwrap();
    let mut tasks = Gated::new();
    let mut handles = Vec::new();
    for n in 0..5 {
        handles.push(plan.submit(tasks.task(n)).await.unwrap());
    }
    tasks.started().await;
    tasks.started().await;
    let stats = plan.stats();
    assert_eq!((stats.workers, stats.running, stats.queued), (2, 2, 3));
    tasks.gate.open();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(tasks.occupancy.peak(), 2);
}

async fn zero_workers_is_an_error_and_changes_nothing() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let error = plan.set_workers(0).unwrap_err();
    assert_eq!(error, ResizeError::ZeroWorkers);
    assert!(error.to_string().contains("`workers` must be at least 1"));
    assert_eq!(plan.stats().workers, 2);
    assert_eq!(plan.submit(async { 1 }).await.unwrap().await.unwrap(), 1);
}

on_both_runtimes!(
    growing_takes_effect_at_once,
    shrinking_never_interrupts_running_tasks,
    shrinking_idle_workers_and_growing_again,
    zero_workers_is_an_error_and_changes_nothing,
);
