//! Issue 0.2, semantics 6: a task's own cancellation token.

mod common;

use std::time::Duration;

use common::Gate;
use taskplan::Plan;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Submits a task that passes its token out and then waits at `gate`.
async fn task_sharing_its_token(
    plan: &Plan,
    gate: Gate,
) -> (taskplan::TaskHandle<()>, CancellationToken) {
    let (token_tx, token_rx) = oneshot::channel();
    let handle = plan
        .submit_with(move |token| async move {
            token_tx.send(token).unwrap();
            gate.pass().await;
        })
        .await
        .unwrap();
    (handle, token_rx.await.unwrap())
}

async fn the_token_is_cancelled_when_the_task_is_cancelled() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (handle, token) = task_sharing_its_token(&plan, Gate::closed()).await;
    // Work handed elsewhere stops with the task.
    let helper = tokio::spawn({
        let token = token.clone();
        async move { token.cancelled().await }
    });
    assert!(!token.is_cancelled());
    handle.cancel();
    assert!(handle.await.unwrap_err().is_cancelled());
    assert!(token.is_cancelled());
    helper.await.unwrap();
}

async fn the_token_is_cancelled_when_the_plan_aborts() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (handle, token) = task_sharing_its_token(&plan, Gate::closed()).await;
    plan.abort().await;
    assert!(token.is_cancelled());
    assert!(handle.await.unwrap_err().is_cancelled());
}

async fn the_token_of_a_task_that_completes_is_left_alone() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let (handle, token) = task_sharing_its_token(&plan, gate.clone()).await;
    gate.open();
    handle.await.unwrap();
    assert!(!token.is_cancelled());
}

async fn a_closed_plan_hands_the_future_back() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.close();
    let refused = plan
        .submit_with(|token| async move { token.is_cancelled() })
        .await
        .unwrap_err();
    assert!(refused.is_closed());
    assert!(
        !refused.into_inner().await,
        "the future runs elsewhere as it is"
    );
}

async fn the_token_is_cancelled_when_the_task_panics() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (token_tx, token_rx) = oneshot::channel();
    let handle = plan
        .submit_with(move |token| async move {
            token_tx.send(token).unwrap();
            tokio::task::yield_now().await;
            panic!("gave up");
        })
        .await
        .unwrap();
    let token = token_rx.await.unwrap();
    assert!(handle.await.unwrap_err().is_panic());
    assert!(token.is_cancelled());
}

on_both_runtimes!(
    the_token_is_cancelled_when_the_task_panics,
    the_token_is_cancelled_when_the_task_is_cancelled,
    the_token_is_cancelled_when_the_plan_aborts,
    the_token_of_a_task_that_completes_is_left_alone,
    a_closed_plan_hands_the_future_back,
    a_cancelled_plan_token_closes_the_plan_before_cancel_returns,
    a_cancelled_parent_token_closes_the_plan_before_cancel_returns,
);

#[tokio::test(start_paused = true)]
async fn the_token_is_cancelled_when_the_task_times_out() {
    common::harness(async {
        let plan = common::tracked(
            Plan::builder()
                .workers(1)
                .task_timeout(Duration::from_secs(1))
                .build()
                .unwrap(),
        );
        let (handle, token) = task_sharing_its_token(&plan, Gate::closed()).await;
        assert!(handle.await.unwrap_err().is_timeout());
        assert!(token.is_cancelled());
    })
    .await
}

#[tokio::test]
async fn the_token_is_a_child_of_the_plan_token() {
    common::harness(async {
        let parent = CancellationToken::new();
        let plan = common::tracked(
            Plan::builder()
                .workers(1)
                .token(parent.clone())
                .build()
                .unwrap(),
        );
        let (handle, token) = task_sharing_its_token(&plan, Gate::closed()).await;
        parent.cancel();
        assert!(token.is_cancelled());
        assert!(handle.await.unwrap_err().is_cancelled());
    })
    .await
}

/// Issue 12, item 10: once the plan's token is cancelled, the plan counts
/// as closed at once and refuses tasks, though the abort it starts runs
/// on the plan's runtime a moment later. (Before, `is_closed()` was still
/// `false` right after `cancel()`, and `try_submit` was accepted, then
/// cancelled.)
async fn a_cancelled_plan_token_closes_the_plan_before_cancel_returns() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.token().cancel();
    // No await in between: the plan's watcher has not run yet.
    assert!(plan.is_closed());
    let refused = plan.try_submit(async { 1 }).unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_inner().await, 1);
    assert!(plan.submit(async {}).await.unwrap_err().is_closed());
    assert!(plan.set_workers(2).is_err());
    assert_eq!(plan.stats().submitted, 0);
}

/// The same for a parent token given to the builder, cancelled from
/// outside the plan.
async fn a_cancelled_parent_token_closes_the_plan_before_cancel_returns() {
    let parent = CancellationToken::new();
    let plan = common::tracked(
        Plan::builder()
            .workers(1)
            .token(parent.clone())
            .build()
            .unwrap(),
    );
    parent.cancel();
    assert!(plan.is_closed());
    assert!(plan.try_submit(async {}).unwrap_err().is_closed());
}
