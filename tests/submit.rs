//! Semantics 2: submitting, backpressure, refusal and cancel safety.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{DropFlag, Gate};
use taskplan::{Plan, SubmitError};
use tokio_test::{assert_pending, assert_ready, task};

/// A plan with one worker held busy by a gated task, so queued tasks stay
/// queued until the test opens the gate.
async fn busy_plan(capacity: usize) -> (Plan, Gate) {
    let plan = common::tracked(
        Plan::builder()
            .workers(1)
            .capacity(capacity)
            .build()
            .unwrap(),
    );
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let blocker_gate = gate.clone();
    plan.submit(async move {
        started_tx.send(0).unwrap();
        blocker_gate.pass().await;
    })
    .await
    .unwrap();
    started_rx.recv().await.unwrap();
    (plan, gate)
}

/// A future that is neither `Debug` nor `Unpin`, to show errors need neither.
fn opaque_task() -> impl Future<Output = u8> + Send + 'static {
    let pinned = std::marker::PhantomPinned;
    async move {
        let _pinned = pinned;
        9
    }
}

async fn submit_waits_while_the_queue_is_full() {
    let (plan, gate) = busy_plan(2).await;
    plan.submit(async {}).await.unwrap();
    plan.submit(async {}).await.unwrap();
    assert_eq!(plan.stats().queued, 2);

    let mut waiting = task::spawn(plan.submit(async { 3 }));
    assert_pending!(waiting.poll());
    assert_pending!(waiting.poll());

    // Starting one queued task makes room for exactly one more.
    gate.let_through(1);
    waiting.await.unwrap();
    gate.open();
    plan.wait_idle().await;
    assert_eq!(plan.stats().completed, 4);
}

async fn try_submit_returns_full_with_the_task() {
    let (plan, gate) = busy_plan(1).await;
    plan.try_submit(async {}).unwrap();
    let refused = plan.try_submit(opaque_task()).unwrap_err();
    assert!(refused.is_full());
    assert!(!refused.is_closed());
    assert_eq!(
        refused.into_inner().await,
        9,
        "the refused task is handed back"
    );
    gate.open();
    plan.wait_idle().await;
    assert_eq!(
        plan.stats().submitted,
        2,
        "the refused task was not counted"
    );
}

async fn both_submits_return_closed_with_the_task_once_closed() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.close();
    let refused = plan.try_submit(opaque_task()).unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_inner().await, 9);
    let refused = plan.submit(opaque_task()).await.unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_inner().await, 9);
    assert_eq!(plan.stats().submitted, 0);
}

async fn a_submitter_waiting_for_room_gets_closed_when_the_plan_closes() {
    let (plan, gate) = busy_plan(1).await;
    plan.submit(async {}).await.unwrap();
    let mut waiting = task::spawn(plan.submit(async { 5 }));
    assert_pending!(waiting.poll());
    plan.close();
    assert!(waiting.is_woken());
    let refused = assert_ready!(waiting.poll()).unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_inner().await, 5);
    gate.open();
}

async fn dropping_a_waiting_submit_submits_nothing() {
    let (plan, gate) = busy_plan(1).await;
    plan.submit(async {}).await.unwrap();

    let ran = Arc::new(AtomicBool::new(false));
    let (guard, dropped) = DropFlag::new();
    let ran_in_task = Arc::clone(&ran);
    let mut waiting = task::spawn(plan.submit(async move {
        let _guard = guard;
        ran_in_task.store(true, Ordering::SeqCst);
    }));
    assert_pending!(waiting.poll());
    drop(waiting);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task's future was dropped"
    );

    gate.open();
    plan.wait_idle().await;
    assert!(!ran.load(Ordering::SeqCst));
    let stats = plan.stats();
    assert_eq!((stats.submitted, stats.completed), (2, 2));
}

async fn a_cancelled_queued_task_frees_its_room() {
    let (plan, gate) = busy_plan(1).await;
    let queued = plan.submit(async {}).await.unwrap();
    let mut waiting = task::spawn(plan.submit(async { 1 }));
    assert_pending!(waiting.poll());
    queued.cancel();
    assert!(waiting.is_woken());
    let handle = assert_ready!(waiting.poll()).unwrap();
    gate.open();
    assert_eq!(handle.await.unwrap(), 1);
}

on_both_runtimes!(
    submit_waits_while_the_queue_is_full,
    try_submit_returns_full_with_the_task,
    both_submits_return_closed_with_the_task_once_closed,
    a_submitter_waiting_for_room_gets_closed_when_the_plan_closes,
    dropping_a_waiting_submit_submits_nothing,
    a_cancelled_queued_task_frees_its_room,
);

/// A plan that refuses both ways: full (one worker, room for one) and
/// closed. Returns the two refusals of `make`'s tasks.
fn refusals<F: std::future::Future<Output = ()> + Send + 'static>(
    mut make: impl FnMut() -> F,
) -> (SubmitError<F>, SubmitError<F>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let plan = Plan::builder().workers(1).capacity(1).build().unwrap();
    // Not started: the runtime never runs, so the queue stays full.
    let _queued = plan.try_submit(make()).unwrap();
    let full = plan.try_submit(make()).unwrap_err();
    plan.close();
    let closed = plan.try_submit(make()).unwrap_err();
    (full, closed)
}

#[test]
fn submit_error_is_debug_display_and_error_for_any_task() {
    struct NotDebug;
    impl std::future::Future for NotDebug {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }
    let (full, closed) = refusals(|| NotDebug);
    assert_eq!(format!("{full:?}"), "Full(..)");
    assert_eq!(format!("{closed:?}"), "Closed(..)");
    assert!(full.to_string().starts_with("plan queue is full"));
    assert!(full.to_string().contains("await `submit`"));
    assert!(closed.to_string().starts_with("plan is closed"));
    // Each refusal says which it is, and only that (a mutant making
    // `is_full` always true survived without this).
    assert_eq!((full.is_full(), full.is_closed()), (true, false));
    assert_eq!((closed.is_full(), closed.is_closed()), (false, true));
    fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    assert_error(&closed);

    // `?` converts it into a boxed error.
    let message = closed.to_string();
    let refuse = move || -> Result<(), Box<dyn std::error::Error>> { Err(closed)? };
    assert_eq!(refuse().unwrap_err().to_string(), message);
}

/// Issue 12, item 6: the error is `Sync` even when the task is not, so `?`
/// into `Box<dyn Error + Send + Sync>` works for boxed and `!Sync` futures.
/// (Before, `SubmitError<F>` was only `Sync` when `F` was: this failed to
/// compile.)
#[test]
fn submit_error_is_send_and_sync_for_boxed_and_not_sync_futures() {
    fn into_boxed_error<E: std::error::Error + Send + Sync + 'static>(
        error: E,
    ) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(error)
    }
    type Boxed = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let (full, closed) = refusals(|| -> Boxed { Box::pin(async {}) });
    assert!(
        into_boxed_error(full)
            .to_string()
            .starts_with("plan queue is full")
    );
    assert!(
        into_boxed_error(closed)
            .to_string()
            .starts_with("plan is closed")
    );

    // `Cell` is `Send` but not `Sync`, and so is a future holding one.
    let not_sync = || {
        let counter = std::cell::Cell::new(0u32);
        async move { counter.set(counter.get() + 1) }
    };
    let (full, closed) = refusals(not_sync);
    fn through_question_mark<F: Send + 'static>(
        error: SubmitError<F>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(error)?
    }
    assert!(through_question_mark(full).is_err());
    // And the task comes back whole, by value.
    let task = closed.into_inner();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(task);
}
