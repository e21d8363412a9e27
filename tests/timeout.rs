//! Issue 0.2, semantics 5: timeouts. Time is paused: these tests are exact.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DropFlag, Gate};
use taskplan::Plan;
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn a_task_over_its_timeout_is_dropped_and_reports_a_timeout() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (guard, dropped) = DropFlag::new();
        let started = Instant::now();
        let slow = plan
            .task(async move {
                let _guard = guard;
                sleep(Duration::from_secs(60)).await;
            })
            .timeout(Duration::from_secs(2))
            .submit()
            .await
            .unwrap();
        let error = slow.await.unwrap_err();
        assert!(error.is_timeout());
        assert!(!error.is_cancelled());
        assert_eq!(error.to_string(), format!("task {} timed out", error.id()));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(dropped.load(Ordering::SeqCst));

        // The worker moved on.
        assert_eq!(plan.submit(async { 1 }).await.unwrap().await.unwrap(), 1);
        let stats = plan.stats();
        assert_eq!(
            (stats.timed_out, stats.cancelled, stats.completed),
            (1, 0, 1)
        );
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_task_within_its_timeout_completes() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let quick = plan
            .task(async {
                sleep(Duration::from_secs(1)).await;
                "in time"
            })
            .timeout(Duration::from_secs(2))
            .submit()
            .await
            .unwrap();
        assert_eq!(quick.await.unwrap(), "in time");
        assert_eq!(plan.stats().timed_out, 0);
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_timeout_counts_from_the_start_not_from_the_queue() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        plan.submit(sleep(Duration::from_secs(10))).await.unwrap();
        // Queued for 10 s, then runs 1 s of its 2 s budget.
        let queued = plan
            .task(async {
                sleep(Duration::from_secs(1)).await;
                "ran"
            })
            .timeout(Duration::from_secs(2))
            .submit()
            .await
            .unwrap();
        assert_eq!(queued.await.unwrap(), "ran");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_plan_default_applies_unless_the_task_overrides_it() {
    common::harness(async {
        let plan = common::tracked(
            Plan::builder()
                .workers(3)
                .task_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        );
        let default = plan.submit(sleep(Duration::from_secs(6))).await.unwrap();
        let longer = plan
            .task(sleep(Duration::from_secs(6)))
            .timeout(Duration::from_secs(7))
            .submit()
            .await
            .unwrap();
        let unlimited = plan
            .task(sleep(Duration::from_secs(600)))
            .no_timeout()
            .submit()
            .await
            .unwrap();
        assert!(default.await.unwrap_err().is_timeout());
        longer.await.unwrap();
        unlimited.await.unwrap();
        assert_eq!(plan.stats().timed_out, 1);
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn each_task_gets_its_own_deadline_on_a_reused_worker() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let mut handles = Vec::new();
        // Each sleeps from its own start: `sleep` inside the task, not before.
        for (run, limit) in [(3, 1), (1, 3), (5, 4), (2, 10)] {
            handles.push(
                plan.task(async move { sleep(Duration::from_secs(run)).await })
                    .timeout(Duration::from_secs(limit))
                    .submit()
                    .await
                    .unwrap(),
            );
        }
        let outcomes: Vec<bool> = {
            let mut outcomes = Vec::new();
            for handle in handles {
                outcomes.push(handle.await.is_ok());
            }
            outcomes
        };
        assert_eq!(outcomes, [false, true, false, true]);
        let stats = plan.stats();
        assert_eq!((stats.timed_out, stats.completed), (2, 2));
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_task_cancelled_before_its_deadline_is_cancelled_not_timed_out() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let gate = Gate::closed();
        let task_gate = gate.clone();
        let handle = plan
            .task(async move { task_gate.pass().await })
            .timeout(Duration::from_secs(60))
            .submit()
            .await
            .unwrap();
        tokio::task::yield_now().await;
        handle.cancel();
        assert!(handle.await.unwrap_err().is_cancelled());
        let stats = plan.stats();
        assert_eq!((stats.cancelled, stats.timed_out), (1, 0));
    })
    .await
}

#[test]
fn a_plan_without_timeouts_runs_on_a_runtime_without_a_time_driver() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // Not tracked: `join_or_fail` bounds the join with a Tokio timer, and
    // this runtime has no time driver. The body aborts the plan itself.
    runtime.block_on(common::bounded(async {
        let plan = Plan::builder().workers(2).build().unwrap();
        let handle = plan.submit(async { 5 }).await.unwrap();
        assert_eq!(handle.await.unwrap(), 5);
        assert_eq!(plan.abort().await.completed, 1);
        common::assert_conserved(plan.stats());
    }));
}
