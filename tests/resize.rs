//! Issue 0.2, semantics 4: changing the number of workers live.

mod common;

use common::{Gate, Occupancy};
use taskplan::{Plan, ResizeError};

async fn growing_takes_effect_at_once() {
    let plan = Plan::builder().workers(1).build().unwrap();
    let gate = Gate::closed();
    let occupancy = Occupancy::default();
    let (started_tx, mut started_rx) = common::started_channel();
    let mut handles = Vec::new();
    for n in 0..4 {
        let (gate, occupancy, started_tx) = (gate.clone(), occupancy.clone(), started_tx.clone());
        handles.push(
            plan.submit(async move {
                let _inside = occupancy.enter();
                started_tx.send(n).unwrap();
                gate.pass().await;
            })
            .await
            .unwrap(),
        );
    }
    assert_eq!(started_rx.recv().await, Some(0));
    assert_eq!(plan.stats().queued, 3);

    plan.set_workers(3).unwrap();
    assert_eq!(plan.stats().workers, 3);
    // Two new workers take two queued tasks without anything finishing.
    assert_eq!(started_rx.recv().await, Some(1));
    assert_eq!(started_rx.recv().await, Some(2));
    assert_eq!(occupancy.now(), 3);
    let stats = plan.stats();
    assert_eq!((stats.running, stats.queued), (3, 1));

    gate.open();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(occupancy.peak(), 3);
}

async fn shrinking_never_interrupts_running_tasks() {
    let plan = Plan::builder().workers(3).build().unwrap();
    let gate = Gate::closed();
    let occupancy = Occupancy::default();
    let (started_tx, mut started_rx) = common::started_channel();
    let mut running = Vec::new();
    for n in 0..3 {
        let (gate, occupancy, started_tx) = (gate.clone(), occupancy.clone(), started_tx.clone());
        running.push(
            plan.submit(async move {
                let _inside = occupancy.enter();
                started_tx.send(n).unwrap();
                gate.pass().await;
                n
            })
            .await
            .unwrap(),
        );
    }
    for _ in 0..3 {
        started_rx.recv().await.unwrap();
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
    gate.open();
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
    let plan = Plan::builder().workers(4).build().unwrap();
    plan.set_workers(1).unwrap();
    plan.set_workers(2).unwrap();
    let occupancy = Occupancy::default();
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let mut handles = Vec::new();
    for n in 0..5 {
        let (gate, occupancy, started_tx) = (gate.clone(), occupancy.clone(), started_tx.clone());
        handles.push(
            plan.submit(async move {
                let _inside = occupancy.enter();
                started_tx.send(n).unwrap();
                gate.pass().await;
            })
            .await
            .unwrap(),
        );
    }
    started_rx.recv().await.unwrap();
    started_rx.recv().await.unwrap();
    let stats = plan.stats();
    assert_eq!((stats.workers, stats.running, stats.queued), (2, 2, 3));
    gate.open();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(occupancy.peak(), 2);
}

async fn zero_workers_is_an_error_and_changes_nothing() {
    let plan = Plan::builder().workers(2).build().unwrap();
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
