//! Semantics 1: building a plan.
//!
//! Mutation testing: `replace Plan::builder -> PlanBuilder with
//! Default::default()` survives because it changes nothing:
//! `PlanBuilder::default()` is `PlanBuilder::new()`, which is what
//! `Plan::builder()` returns.

mod common;

use std::time::Duration;

use taskplan::{BuildError, Plan, PlanBuilder, ShutdownReport, Stats, TaskHandle};
use tokio_util::sync::CancellationToken;

fn assert_clone_send_sync_debug<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
fn assert_send_sync_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_have_the_promised_traits() {
    assert_clone_send_sync_debug::<Plan>();
    assert_clone_send_sync_debug::<PlanBuilder>();
    assert_clone_send_sync_debug::<Stats>();
    assert_clone_send_sync_debug::<ShutdownReport>();
    assert_send_sync_error::<BuildError>();
    assert_send_sync_error::<taskplan::TaskError>();
    fn assert_handle<T: Send + Sync + Unpin + std::future::Future>() {}
    assert_handle::<TaskHandle<u32>>();
    // `Send` and `Sync` even when the output is only `Send`.
    assert_handle::<TaskHandle<std::cell::Cell<u8>>>();
}

#[test]
fn build_outside_a_runtime_is_an_error_not_a_panic() {
    let error = Plan::builder().build().unwrap_err();
    assert_eq!(error, BuildError::NoRuntime);
    let message = error.to_string();
    assert!(message.contains("no Tokio runtime"), "{message}");
    assert!(
        message.contains("#[tokio::main]"),
        "says what to do: {message}"
    );
}

#[tokio::test]
async fn zero_workers_is_an_error_that_says_what_to_do() {
    common::harness(async {
        let error = Plan::builder().workers(0).build().unwrap_err();
        assert_eq!(error, BuildError::ZeroWorkers);
        assert!(error.to_string().contains("`workers` must be at least 1"));
    })
    .await
}

#[tokio::test]
async fn zero_capacity_is_an_error_that_says_what_to_do() {
    common::harness(async {
        let error = Plan::builder().capacity(0).build().unwrap_err();
        assert_eq!(error, BuildError::ZeroCapacity);
        assert!(error.to_string().contains("`capacity` must be at least 1"));
    })
    .await
}

/// The queue's keys are 32 bits: a capacity past what they can number is
/// taken as the most they can, and the plan says so.
#[tokio::test]
async fn a_capacity_past_2_pow_32_minus_2_is_taken_as_that() {
    common::harness(async {
        let plan = Plan::builder().capacity(usize::MAX).build().unwrap();
        let shown = format!("{plan:?}");
        assert!(shown.contains("capacity: 4294967294"), "{shown}");
        let plan = Plan::builder().capacity(4_294_967_294).build().unwrap();
        assert!(format!("{plan:?}").contains("capacity: 4294967294"));
    })
    .await
}

#[test]
fn bad_settings_are_reported_even_outside_a_runtime() {
    // The settings are checked first, so the error names the real mistake.
    assert_eq!(
        Plan::builder().workers(0).build().unwrap_err(),
        BuildError::ZeroWorkers
    );
}

#[tokio::test]
async fn defaults_are_available_parallelism_1024_and_plan() {
    common::harness(async {
        let gate = common::Gate::closed();
        let plan = common::tracked(Plan::builder().build().unwrap());
        let parallelism = std::thread::available_parallelism().unwrap().get();
        assert_eq!(plan.stats().workers, parallelism);
        assert_eq!(plan.name(), "plan");
        assert!(format!("{plan:?}").contains("\"plan\""));
        // A task's description shows the plan and its options, whatever the
        // future (this one is not `Debug`).
        let described = format!("{:?}", plan.task(async {}).tag("ui").priority(2));
        assert!(
            described.starts_with("TaskBuilder { plan: \"plan\""),
            "{described}"
        );
        assert!(described.contains("priority: 2"), "{described}");
        assert!(described.contains("\"ui\""), "{described}");

        // Occupy every worker, then the queue holds exactly 1024 more.
        let (started_tx, mut started_rx) = common::started_channel();
        for n in 0..parallelism {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            plan.submit(async move {
                started_tx.send(n).unwrap();
                gate.pass().await;
            })
            .await
            .unwrap();
        }
        for _ in 0..parallelism {
            started_rx.recv().await.unwrap();
        }
        for _ in 0..1024 {
            plan.try_submit(async {}).unwrap();
        }
        assert!(plan.try_submit(async {}).unwrap_err().is_full());
        gate.open();
        plan.wait_idle().await;
        assert_eq!(plan.stats().completed, parallelism + 1024);
    })
    .await
}

async fn runs_tasks_on_this_runtime_flavour() {
    let plan = common::tracked(Plan::builder().workers(2).name("flavour").build().unwrap());
    let handles: Vec<_> = (0..100u32)
        .map(|n| plan.try_submit(async move { n }).unwrap())
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    assert_eq!(sum, 4950);
}

async fn clones_share_one_plan() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let clone = plan.clone();
    clone.submit(async {}).await.unwrap().await.unwrap();
    assert_eq!(plan.stats().completed, 1);
    assert!(clone.close());
    assert!(plan.is_closed());
    assert!(!plan.close());
}

async fn cancelling_the_parent_token_aborts_the_plan() {
    let parent = CancellationToken::new();
    let plan = common::tracked(
        Plan::builder()
            .workers(1)
            .token(parent.clone())
            .build()
            .unwrap(),
    );
    let (started_tx, mut started_rx) = common::started_channel();
    let running = plan
        .submit(async move {
            started_tx.send(0).unwrap();
            std::future::pending::<()>().await
        })
        .await
        .unwrap();
    let queued = plan.submit(async {}).await.unwrap();
    started_rx.recv().await.unwrap();

    parent.cancel();
    assert!(running.await.unwrap_err().is_cancelled());
    assert!(queued.await.unwrap_err().is_cancelled());
    assert!(plan.is_closed());
    assert!(plan.token().is_cancelled());
    let report = plan.shutdown(Duration::from_secs(1)).await;
    assert_eq!((report.completed, report.cancelled), (0, 2));
}

async fn aborting_the_plan_leaves_the_parent_alone() {
    let parent = CancellationToken::new();
    let plan = common::tracked(
        Plan::builder()
            .workers(1)
            .token(parent.clone())
            .build()
            .unwrap(),
    );
    plan.abort().await;
    assert!(plan.token().is_cancelled());
    assert!(!parent.is_cancelled());
}

on_both_runtimes!(
    runs_tasks_on_this_runtime_flavour,
    clones_share_one_plan,
    cancelling_the_parent_token_aborts_the_plan,
    aborting_the_plan_leaves_the_parent_alone,
);
