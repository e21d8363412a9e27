//! Semantics 3: never more than `workers` tasks run, and with work queued,
//! exactly `workers` run.

mod common;

use common::{Gate, Occupancy};
use taskplan::Plan;

async fn never_more_than_n_and_n_while_work_is_queued() {
    const WORKERS: usize = 3;
    const TASKS: usize = 12;
    let plan = Plan::builder().workers(WORKERS).build().unwrap();
    let gate = Gate::closed();
    let occupancy = Occupancy::default();
    let (started_tx, mut started_rx) = common::started_channel();
    let mut handles = Vec::new();
    for n in 0..TASKS {
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

    for _ in 0..WORKERS {
        started_rx.recv().await.unwrap();
    }
    let mut started = WORKERS;
    while started < TASKS {
        assert_eq!(occupancy.now(), WORKERS);
        let stats = plan.stats();
        assert_eq!(stats.running, WORKERS);
        assert_eq!(stats.queued, TASKS - started);
        // One finishes, and its worker takes the next queued task.
        gate.let_through(1);
        started_rx.recv().await.unwrap();
        started += 1;
    }
    gate.open();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(occupancy.peak(), WORKERS);
}

async fn one_worker_runs_tasks_one_at_a_time_in_order() {
    let plan = Plan::builder().workers(1).build().unwrap();
    let occupancy = Occupancy::default();
    let (started_tx, mut started_rx) = common::started_channel();
    for n in 0..50 {
        let (occupancy, started_tx) = (occupancy.clone(), started_tx.clone());
        plan.submit(async move {
            let _inside = occupancy.enter();
            started_tx.send(n).unwrap();
            tokio::task::yield_now().await;
        })
        .await
        .unwrap();
    }
    plan.wait_idle().await;
    assert_eq!(occupancy.peak(), 1);
    for expected in 0..50 {
        assert_eq!(started_rx.recv().await.unwrap(), expected);
    }
}

on_both_runtimes!(
    never_more_than_n_and_n_while_work_is_queued,
    one_worker_runs_tasks_one_at_a_time_in_order,
);
