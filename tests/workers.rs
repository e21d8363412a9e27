//! Issue 11: the bound on `workers`, and supervisors started only as work
//! arrives.

mod common;

use common::Gated;
use taskplan::{BuildError, MAX_WORKERS, Plan, ResizeError};

/// Tasks alive on the current runtime: on the current-thread runtime, read
/// from its own thread, the count is exact.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test]
async fn more_workers_than_max_is_a_build_error_that_says_what_to_do() {
    common::harness(async {
        for workers in [MAX_WORKERS + 1, usize::MAX] {
            let error = Plan::builder().workers(workers).build().unwrap_err();
            assert_eq!(error, BuildError::TooManyWorkers);
            let message = error.to_string();
            assert!(message.contains(&MAX_WORKERS.to_string()), "{message}");
            assert!(message.contains("MAX_WORKERS"), "{message}");
        }
    })
    .await
}

async fn more_workers_than_max_is_a_resize_error_and_changes_nothing() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    for workers in [MAX_WORKERS + 1, usize::MAX] {
        let error = plan.set_workers(workers).unwrap_err();
        assert_eq!(error, ResizeError::TooManyWorkers);
        assert!(error.to_string().contains("MAX_WORKERS"), "{error}");
        assert_eq!(plan.stats().workers, 2);
    }
    assert_eq!(plan.submit(async { 1 }).await.unwrap().await.unwrap(), 1);
}

/// Regression test (issue 11): `build` spawned every supervisor at once,
/// which for `workers(1_000_000)` took seconds, and for `usize::MAX`
/// allocated until the process aborted.
#[tokio::test]
async fn max_workers_starts_no_supervisor_until_work_arrives_and_one_per_task() {
    common::harness(async {
        let before = alive_tasks();
        let plan = common::tracked(Plan::builder().workers(MAX_WORKERS).build().unwrap());
        assert_eq!(plan.stats().workers, MAX_WORKERS);
        // The plan's token watcher, and no supervisor.
        assert_eq!(alive_tasks(), before + 1);

        let mut tasks = Gated::new();
        let mut handles = Vec::new();
        for n in 0..3 {
            handles.push(plan.submit(tasks.task(n)).await.unwrap());
        }
        for _ in 0..3 {
            tasks.started().await;
        }
        assert_eq!(tasks.occupancy.now(), 3, "all three run at once");
        assert_eq!(alive_tasks(), before + 1 + 3, "one supervisor per task");

        tasks.gate.open();
        for handle in handles {
            handle.await.unwrap();
        }
    })
    .await
}

on_both_runtimes!(more_workers_than_max_is_a_resize_error_and_changes_nothing);
