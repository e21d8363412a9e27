//! Semantics 3: never more than `workers` tasks run, and with work queued,
//! exactly `workers` run.

mod common;

use common::{Gated, Occupancy};
use taskplan::Plan;

async fn never_more_than_n_and_n_while_work_is_queued() {
    const WORKERS: usize = 3;
    const TASKS: usize = 12;
    let plan = common::tracked(Plan::builder().workers(WORKERS).build().unwrap());
    let mut tasks = Gated::new();
    let mut handles = Vec::new();
    for n in 0..TASKS {
        handles.push(plan.submit(tasks.task(n)).await.unwrap());
    }

    for _ in 0..WORKERS {
        tasks.started().await;
    }
    let mut started = WORKERS;
    while started < TASKS {
        assert_eq!(tasks.occupancy.now(), WORKERS);
        let stats = plan.stats();
        assert_eq!(stats.running, WORKERS);
        assert_eq!(stats.queued, TASKS - started);
        // One finishes, and its worker takes the next queued task.
        tasks.gate.let_through(1);
        tasks.started().await;
        started += 1;
    }
    tasks.gate.open();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(tasks.occupancy.peak(), WORKERS);
}

async fn one_worker_runs_tasks_one_at_a_time_in_order() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
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
