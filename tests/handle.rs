//! Semantics 4 and 5: task handles, task errors and panics.

mod common;

use common::Gate;
use taskplan::{Plan, TaskHandle};
use tokio::sync::oneshot;

async fn a_handle_resolves_to_the_output() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let handle: TaskHandle<String> = plan.submit(async { String::from("out") }).await.unwrap();
    assert_eq!(handle.await.unwrap(), "out");
}

async fn a_handle_can_be_polled_through_a_mutable_reference() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut handle = plan.submit(async { 1 }).await.unwrap();
    assert_eq!((&mut handle).await.unwrap(), 1);
    assert!(handle.is_finished());
}

async fn dropping_a_handle_detaches_the_task() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let (done_tx, done_rx) = oneshot::channel();
    let task_gate = gate.clone();
    let handle = plan
        .submit(async move {
            task_gate.pass().await;
            done_tx.send("still ran").unwrap();
        })
        .await
        .unwrap();
    drop(handle);
    gate.open();
    assert_eq!(done_rx.await.unwrap(), "still ran");
}

async fn ids_are_unique_and_in_submission_order() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut previous = None;
    for _ in 0..20 {
        let handle = plan.submit(async {}).await.unwrap();
        if let Some(previous) = previous {
            assert!(handle.id() > previous);
        }
        previous = Some(handle.id());
    }
    assert_eq!(previous.unwrap().as_u64(), 20);
}

async fn is_finished_turns_true_when_the_task_ends() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let task_gate = gate.clone();
    let mut handle = plan
        .submit(async move { task_gate.pass().await })
        .await
        .unwrap();
    assert!(!handle.is_finished());
    gate.open();
    (&mut handle).await.unwrap();
    assert!(handle.is_finished());
    assert!(format!("{handle:?}").contains("finished: true"));
}

async fn a_panic_resolves_the_handle_and_the_worker_goes_on() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let panicked = plan.submit(async { panic!("sync failed") }).await.unwrap();
    let next = plan.submit(async { "next" }).await.unwrap();

    let error = panicked.await.unwrap_err();
    assert!(error.is_panic());
    assert!(!error.is_cancelled());
    assert!(!error.is_timeout());
    assert_eq!(
        error.to_string(),
        format!("task {} panicked: sync failed", error.id())
    );
    assert_eq!(
        *error.into_panic().downcast::<&str>().unwrap(),
        "sync failed"
    );

    assert_eq!(
        next.await.unwrap(),
        "next",
        "the same worker ran the next task"
    );
    assert_eq!(plan.stats().panicked, 1);
}

async fn a_formatted_panic_message_is_kept() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let code = 7;
    let handle = plan
        .submit(async move { panic!("code {code}") })
        .await
        .unwrap();
    let error = handle.await.unwrap_err();
    assert!(error.to_string().ends_with("panicked: code 7"));
    // Debug names the task and the kind, never the payload (a mutant that
    // printed nothing survived without this).
    assert_eq!(
        format!("{error:?}"),
        format!(
            "TaskError {{ id: TaskId({}), kind: Panic(..) }}",
            error.id()
        )
    );
    let payload = error.try_into_panic().unwrap();
    assert_eq!(*payload.downcast::<String>().unwrap(), "code 7");
}

async fn try_into_panic_hands_back_other_errors() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let handle = plan.submit(std::future::pending::<()>()).await.unwrap();
    handle.cancel();
    let error = handle.await.unwrap_err();
    let error = error.try_into_panic().unwrap_err();
    assert!(error.is_cancelled());
    assert_eq!(
        error.to_string(),
        format!("task {} was cancelled", error.id())
    );
}

/// A handle polled by one task and then awaited by another wakes the one
/// that awaits it: the waker it keeps is the latest poll's.
async fn a_handle_moved_to_another_task_wakes_that_task() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let pass = gate.clone();
    let mut handle = plan
        .submit(async move {
            pass.pass().await;
            5
        })
        .await
        .unwrap();
    // Polled once here, with this task's waker.
    let mut polled = tokio_test::task::spawn(&mut handle);
    tokio_test::assert_pending!(polled.poll());
    drop(polled);
    // Then awaited by another task, which only its own waker can wake.
    let awaiting = tokio::spawn(handle);
    tokio::task::yield_now().await;
    gate.open();
    assert_eq!(awaiting.await.unwrap().unwrap(), 5);
}

on_both_runtimes!(
    a_handle_moved_to_another_task_wakes_that_task,
    a_handle_resolves_to_the_output,
    a_handle_can_be_polled_through_a_mutable_reference,
    dropping_a_handle_detaches_the_task,
    ids_are_unique_and_in_submission_order,
    is_finished_turns_true_when_the_task_ends,
    a_panic_resolves_the_handle_and_the_worker_goes_on,
    a_formatted_panic_message_is_kept,
    try_into_panic_hands_back_other_errors,
);

#[tokio::test]
#[should_panic(expected = "not a panic")]
async fn into_panic_on_a_cancellation_panics_with_a_clear_message() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let handle = plan.submit(std::future::pending::<()>()).await.unwrap();
        handle.cancel();
        handle.await.unwrap_err().into_panic();
    })
    .await
}

/// Issue 12, item 10: what the docs promise of `TaskError`, for `?`.
#[test]
fn task_error_converts_with_question_mark_into_send_sync_boxed_errors() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<taskplan::TaskError>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let message = runtime.block_on(async {
        let plan = taskplan::Plan::builder().workers(1).build().unwrap();
        // A payload that is `Send` but not `Sync`: the error holds it
        // behind a lock, and is `Sync` all the same.
        let handle = plan
            .submit(async { std::panic::panic_any(std::cell::Cell::new(1u8)) })
            .await
            .unwrap();
        let run = || async move {
            let value: () = handle.await?;
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(value)
        };
        let message = run().await.unwrap_err().to_string();
        plan.abort().await;
        message
    });
    assert!(message.contains("panicked"), "{message}");
}
