//! Issue 12, items 2 and 7: every kind of task takes every option, and a
//! task's own token works both ways.
//!
//! `plan.task(..)`, `plan.task_with(|token| ..)` and
//! `plan.blocking_task(..)` share one builder with `.tag()`, `.priority()`
//! and `.timeout()`; before, `submit_with` and `submit_blocking` took none,
//! so `cancel_tag(user)` could not reach a user's CPU work. And cancelling a
//! `task_with`/`submit_with` token from outside now cancels the task (before,
//! the task ran on and completed).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Gated;
use taskplan::Plan;

/// A closure that reports it started, then spins until its token is
/// cancelled, and returns whether it was.
fn cooperative(
    started: tokio::sync::mpsc::UnboundedSender<()>,
) -> impl FnOnce(tokio_util::sync::CancellationToken) -> bool + Send + 'static {
    move |token| {
        started.send(()).unwrap();
        while !token.is_cancelled() {
            std::thread::yield_now();
        }
        true
    }
}

async fn cancel_tag_reaches_a_users_blocking_work() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let cpu = plan
        .blocking_task(cooperative(started_tx))
        .tag("user-7")
        .submit()
        .await
        .unwrap();
    let other = plan.blocking_task(|_| "untagged").submit().await.unwrap();
    started_rx.recv().await.unwrap();
    assert_eq!(plan.cancel_tag("user-7"), 1);
    assert!(cpu.await.unwrap_err().is_cancelled());
    assert_eq!(other.await.unwrap(), "untagged");
    plan.wait_idle().await;
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 1));
    // Its last task ended: the tag is forgotten.
    assert_eq!(plan.tag_stats("user-7").submitted, 0);
}

async fn a_blocking_task_takes_its_place_by_priority_and_a_promotion() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let blocker = plan.submit(gated.task(0)).await.unwrap();
    gated.started().await;
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let low = {
        let order = order_tx.clone();
        plan.blocking_task(move |_| order.send("low").unwrap())
            .priority(-1)
            .submit()
            .await
            .unwrap()
    };
    let promoted = {
        let order = order_tx.clone();
        plan.blocking_task(move |_| order.send("promoted").unwrap())
            .priority(-5)
            .tag("ui")
            .submit()
            .await
            .unwrap()
    };
    let high = plan
        .task(async move { order_tx.send("high").unwrap() })
        .priority(3)
        .submit()
        .await
        .unwrap();
    assert_eq!(plan.promote("ui"), 1);
    gated.gate.open();
    blocker.await.unwrap();
    for handle in [promoted, high, low] {
        handle.await.unwrap();
    }
    let order: Vec<_> = std::iter::from_fn(|| order_rx.try_recv().ok()).collect();
    assert_eq!(order, ["promoted", "high", "low"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_task_times_out_and_its_token_tells_the_closure() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let (told_tx, told_rx) = std::sync::mpsc::channel();
        let closure = cooperative(started_tx);
        let handle = plan
            .blocking_task(move |token| told_tx.send(closure(token)).unwrap())
            // The closure only returns once its token is cancelled: the
            // deadline must come first, however slow the machine.
            .timeout(Duration::from_millis(1))
            .submit()
            .await
            .unwrap();
        started_rx.recv().await.unwrap();
        assert!(handle.await.unwrap_err().is_timeout());
        assert!(
            tokio::task::spawn_blocking(move || told_rx.recv().unwrap())
                .await
                .unwrap()
        );
        assert_eq!(plan.stats().timed_out, 1);
    })
    .await
}

async fn a_refused_blocking_task_hands_back_its_closure_from_try_submit() {
    let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
    let mut gated = Gated::new();
    let blocker = plan.submit(gated.task(0)).await.unwrap();
    gated.started().await;
    let queued = plan.blocking_task(|_| 1).tag("t").try_submit().unwrap();
    let called = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&called);
    let refused = plan
        .blocking_task(move |_| flag.store(true, Ordering::SeqCst))
        .tag("t")
        .try_submit()
        .unwrap_err();
    assert!(refused.is_full());
    assert!(!called.load(Ordering::SeqCst), "handed back uncalled");
    refused.into_inner()(tokio_util::sync::CancellationToken::new());
    assert!(called.load(Ordering::SeqCst));
    gated.gate.open();
    blocker.await.unwrap();
    assert_eq!(queued.await.unwrap(), 1);
}

async fn task_with_takes_a_tag_priority_and_timeout() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let blocker = plan.submit(gated.task(0)).await.unwrap();
    gated.started().await;
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let tagged = plan
        .task_with(|token| async move {
            token_tx.send(token).unwrap();
            std::future::pending::<()>().await
        })
        .tag("job")
        .priority(2)
        .timeout(Duration::from_secs(3600))
        .submit()
        .await
        .unwrap();
    assert_eq!(plan.tag_stats("job").queued, 1);
    assert_eq!(plan.cancel_tag("job"), 1);
    assert!(tagged.await.unwrap_err().is_cancelled());
    // Dropped unstarted: the future (and the sender in it) never ran.
    assert!(token_rx.await.is_err());
    gated.gate.open();
    blocker.await.unwrap();
}

async fn cancelling_the_token_from_outside_cancels_a_running_task() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let handle = plan
        .submit_with(|token| async move {
            token_tx.send(token).unwrap();
            // Never looks at its token: only the plan can stop it.
            std::future::pending::<()>().await
        })
        .await
        .unwrap();
    let token = token_rx.await.unwrap();
    token.cancel();
    let error = common::bounded(handle).await.unwrap_err();
    assert!(error.is_cancelled());
    let stats = plan.stats();
    assert_eq!((stats.cancelled, stats.running), (1, 0));
}

async fn a_task_whose_token_was_cancelled_while_queued_never_starts() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let blocker = plan.submit(gated.task(0)).await.unwrap();
    gated.started().await;
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    let mut outside = None;
    let queued = plan
        .task_with(|token| {
            outside = Some(token);
            async move { flag.store(true, Ordering::SeqCst) }
        })
        .submit()
        .await
        .unwrap();
    outside.unwrap().cancel();
    gated.gate.open();
    blocker.await.unwrap();
    assert!(queued.await.unwrap_err().is_cancelled());
    assert!(
        !started.load(Ordering::SeqCst),
        "its future was never polled"
    );
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 1));
}

async fn cancelling_a_blocking_tasks_token_from_outside_frees_its_worker() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let handle = plan
        .submit_blocking(move |token| {
            token_tx.send(token).unwrap();
            // Does not look at its token; released by the test at the end.
            let _ = release_rx.recv();
        })
        .await
        .unwrap();
    token_rx.await.unwrap().cancel();
    assert!(common::bounded(handle).await.unwrap_err().is_cancelled());
    // The worker is free for the next task although the closure still runs.
    assert_eq!(plan.submit(async { 5 }).await.unwrap().await.unwrap(), 5);
    release_tx.send(()).unwrap();
}

async fn a_completed_task_leaves_its_token_alone() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    let handle = plan
        .submit_with(|token| async move {
            token_tx.send(token).unwrap();
            7
        })
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), 7);
    let token = token_rx.await.unwrap();
    assert!(!token.is_cancelled());
    // Cancelled after the task ended: nothing to cancel, nothing counted.
    token.cancel();
    plan.wait_idle().await;
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 0));
}

/// From the review: a task that cancels its own token, to stop the work
/// it handed out, is not cancelled by it: only a cancel from outside the
/// task is. (With the first version of item 7 this task ended cancelled.)
async fn a_task_cancelling_its_own_token_is_not_cancelled_by_it() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let handle = plan
        .submit_with(|token| async move {
            let helper = tokio::spawn({
                let token = token.clone();
                async move { token.cancelled().await }
            });
            // Done with the helper: stop it, and wait for it to stop.
            token.cancel();
            helper.await.unwrap();
            tokio::task::yield_now().await;
            42
        })
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), 42);
    assert_eq!(plan.stats().cancelled, 0);
}

/// The same for a blocking closure: its thread runs the task.
async fn a_blocking_closure_cancelling_its_own_token_completes() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let handle = plan
        .submit_blocking(|token| {
            token.cancel();
            // Give a wrongly fired alarm time to end the task first.
            std::thread::sleep(std::time::Duration::from_millis(20));
            "done"
        })
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), "done");
    let report = plan.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        (report.completed, report.cancelled, report.abandoned),
        (1, 0, 0)
    );
}

/// From the review: a blocking closure is one of the plan's tasks for
/// `wait_idle` too, which waits for the others instead of for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_idle_from_a_blocking_closure_waits_for_the_others_only() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        let mut gated = Gated::new();
        let other = plan.submit(gated.task(1)).await.unwrap();
        gated.started().await;
        let inner = plan.clone();
        let runtime = tokio::runtime::Handle::current();
        let blocking = plan
            .submit_blocking(move |_| {
                runtime.block_on(inner.wait_idle());
                inner.stats().completed
            })
            .await
            .unwrap();
        gated.gate.open();
        assert_eq!(other.await.unwrap(), 1);
        assert_eq!(common::bounded(blocking).await.unwrap(), 1);
    })
    .await
}

on_both_runtimes!(
    cancel_tag_reaches_a_users_blocking_work,
    a_blocking_task_takes_its_place_by_priority_and_a_promotion,
    a_refused_blocking_task_hands_back_its_closure_from_try_submit,
    task_with_takes_a_tag_priority_and_timeout,
    cancelling_the_token_from_outside_cancels_a_running_task,
    a_task_whose_token_was_cancelled_while_queued_never_starts,
    cancelling_a_blocking_tasks_token_from_outside_frees_its_worker,
    a_completed_task_leaves_its_token_alone,
    a_task_cancelling_its_own_token_is_not_cancelled_by_it,
    a_blocking_closure_cancelling_its_own_token_completes,
);
