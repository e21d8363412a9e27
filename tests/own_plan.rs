//! Issue 12, item 9: a task that calls into its own plan never hangs
//! silently. `wait_idle` waits for the other tasks, `shutdown` spares the
//! caller (an abort stops it too, as it stops everything), and `submit`
//! does not wait for room that only the caller's own worker could make.
//!
//! Each of these hung before: `wait_idle` and a full `submit` for ever,
//! `shutdown(grace)` until its grace ran out. Most tests run on the
//! current-thread runtime with paused time, where `settle` (a virtual sleep
//! that only ends once every task is parked) makes "the caller is waiting
//! in there now" an event rather than a guess.

mod common;

use std::time::Duration;

use common::{Captured, Gate, Gated};
use taskplan::{Plan, TaskHandle, TaskId};

/// Lets every task run until it parks: under paused time, a sleep only
/// ends when nothing else can happen.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Submits a task of `plan` that, once `gate` (if any) lets it through,
/// fills its own plan's queue (capacity 1) with a task returning 1, then
/// submits a second returning 2. The task returns the first's handle and
/// what the second submit gave: its id, or the refusal's `is_full`.
async fn fill_then_submit_from_inside(
    plan: &Plan,
    gate: Option<Gate>,
) -> TaskHandle<(TaskHandle<u32>, Result<TaskId, bool>)> {
    let inner = plan.clone();
    plan.submit(async move {
        if let Some(gate) = gate {
            gate.pass().await;
        }
        let first = inner.submit(async { 1 }).await.unwrap();
        let second = inner.submit(async { 2 }).await;
        (
            first,
            second
                .map(|handle| handle.id())
                .map_err(|refused| refused.is_full()),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn wait_idle_from_a_task_waits_for_the_other_tasks() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        let mut gated = Gated::new();
        let other = plan.submit(gated.task(1)).await.unwrap();
        gated.started().await;
        let inner = plan.clone();
        let waiter = plan
            .submit(async move {
                inner.wait_idle().await;
                inner.stats().completed
            })
            .await
            .unwrap();
        settle().await;
        assert!(!waiter.is_finished(), "it waits while the other task runs");
        gated.gate.open();
        assert_eq!(other.await.unwrap(), 1);
        let completed_when_it_returned = common::or_hang(waiter, "wait_idle from a task")
            .await
            .unwrap();
        assert_eq!(
            completed_when_it_returned, 1,
            "returned before the other ended"
        );
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn tasks_that_all_wait_for_idle_wait_for_each_other_and_return() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(3).build().unwrap());
        let mut gated = Gated::new();
        let slow = plan.submit(gated.task(0)).await.unwrap();
        gated.started().await;
        let mut waiters = Vec::new();
        for _ in 0..2 {
            let inner = plan.clone();
            waiters.push(
                plan.submit(async move { inner.wait_idle().await })
                    .await
                    .unwrap(),
            );
        }
        settle().await;
        assert!(waiters.iter().all(|waiter| !waiter.is_finished()));
        gated.gate.open();
        slow.await.unwrap();
        for waiter in waiters {
            common::or_hang(waiter, "two tasks in wait_idle")
                .await
                .unwrap();
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn wait_idle_from_the_only_worker_with_work_queued_returns_and_warns() {
    let (log, _default) = Captured::install();
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let inner = plan.clone();
        let waiter = plan
            .submit(async move {
                let queued = inner.submit(async { "later" }).await.unwrap();
                // The only worker is this one: `queued` can never start
                // while this waits.
                inner.wait_idle().await;
                // Handed out, not awaited: it can only run once this ends.
                (queued,)
            })
            .await
            .unwrap();
        let (queued,) = common::or_hang(waiter, "wait_idle from the only worker")
            .await
            .unwrap();
        assert_eq!(
            queued.await.unwrap(),
            "later",
            "it runs once the caller ended"
        );
        let line = log.line_containing("`wait_idle` called from tasks of the plan");
        assert!(line.contains("WARN"), "{line}");
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn shutdown_from_a_task_drains_the_others_and_spares_the_caller() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        let other = plan
            .submit(tokio::time::sleep(Duration::from_secs(1)))
            .await
            .unwrap();
        let inner = plan.clone();
        let caller = plan
            .submit(async move {
                let report = inner.shutdown(Duration::from_secs(60)).await;
                (report, inner.is_closed())
            })
            .await
            .unwrap();
        let (report, closed) = common::or_hang(caller, "shutdown from a task")
            .await
            .unwrap();
        assert!(closed);
        assert_eq!((report.completed, report.cancelled), (1, 0));
        assert!(!report.forced);
        // It waited for the other task's second, not for the grace.
        assert_eq!(report.elapsed, Duration::from_secs(1));
        other.await.unwrap();
        plan.wait_idle().await;
        assert_eq!(plan.stats().completed, 2, "the caller ended normally");
        assert!(!plan.token().is_cancelled());
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn shutdown_from_a_task_cancels_the_others_after_the_grace() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let inner = plan.clone();
        let caller = plan
            .submit(async move {
                let queued = inner.submit(async {}).await.unwrap();
                let report = inner.shutdown(Duration::from_secs(5)).await;
                (report, queued.await)
            })
            .await
            .unwrap();
        let (report, queued) = common::or_hang(caller, "shutdown from a task")
            .await
            .unwrap();
        assert!(
            queued.unwrap_err().is_cancelled(),
            "a queued task never starts"
        );
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert_eq!((report.completed, report.cancelled), (0, 2));
        assert!(report.forced);
        assert_eq!(report.elapsed, Duration::from_secs(5));
        plan.wait_idle().await;
        assert_eq!(plan.stats().completed, 1, "the caller was spared");
    })
    .await
}

/// The docs' stuck case: the caller holds the only worker, so its queued
/// task can never start before it ends; `shutdown` cancels it at once
/// instead of waiting out the grace.
#[tokio::test(start_paused = true)]
async fn shutdown_from_the_only_worker_cancels_what_can_never_start_at_once() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let inner = plan.clone();
        let caller = plan
            .submit(async move {
                let queued = inner.submit(async { "never" }).await.unwrap();
                let report = inner.shutdown(Duration::from_secs(3600)).await;
                (report, queued.await)
            })
            .await
            .unwrap();
        let (report, queued) = common::or_hang(caller, "shutdown from the only worker")
            .await
            .unwrap();
        assert!(queued.unwrap_err().is_cancelled());
        assert_eq!(report.cancelled, 1);
        assert!(report.forced);
        assert_eq!(
            report.elapsed,
            Duration::ZERO,
            "it did not wait out the grace"
        );
    })
    .await
}

async fn abort_from_a_task_stops_every_task_the_caller_included() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut gated = Gated::new();
    let other = plan.submit(gated.task(1)).await.unwrap();
    gated.started().await;
    let inner = plan.clone();
    let caller = plan
        .submit(async move { inner.abort().await })
        .await
        .unwrap();
    assert!(
        common::or_hang(caller, "abort from a task")
            .await
            .unwrap_err()
            .is_cancelled()
    );
    assert!(other.await.unwrap_err().is_cancelled());
    plan.wait_idle().await;
    assert_eq!(plan.stats().cancelled, 2);
    assert!(plan.token().is_cancelled());
}

async fn submit_from_the_only_worker_into_its_full_plan_is_refused_at_once() {
    let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
    let inner = plan.clone();
    let task = plan
        .submit(async move {
            let queued = inner.submit(async { 1 }).await.unwrap();
            let refused = inner.submit(async { 2 }).await.unwrap_err();
            assert!(refused.is_full());
            let message = refused.to_string();
            // Handled as the message suggests: run the task inline.
            (queued, refused.into_inner().await, message)
        })
        .await
        .unwrap();
    let (queued, inline, message) = task.await.unwrap();
    assert_eq!((queued.await.unwrap(), inline), (1, 2));
    assert!(message.contains("one of its own tasks"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn submit_from_a_task_waits_for_room_another_worker_makes() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).capacity(1).build().unwrap());
        let mut gated = Gated::new();
        let busy = plan.submit(gated.task(1)).await.unwrap();
        gated.started().await;
        let submitter = fill_then_submit_from_inside(&plan, None).await;
        settle().await;
        assert!(
            !submitter.is_finished(),
            "it waits: the other worker can make room"
        );
        gated.gate.open();
        busy.await.unwrap();
        let (first, second) = common::or_hang(submitter, "the waiting submit")
            .await
            .unwrap();
        assert_eq!(first.await.unwrap(), 1);
        assert!(
            second.is_ok(),
            "room came when the other worker started a task"
        );
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_waiting_submit_from_a_task_is_refused_once_fewer_workers_leave_it_stuck() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).capacity(1).build().unwrap());
        let mut gated = Gated::new();
        let busy = plan.submit(gated.task(1)).await.unwrap();
        gated.started().await;
        let submitter = fill_then_submit_from_inside(&plan, None).await;
        settle().await;
        assert!(!submitter.is_finished());
        // With one worker, the one running the submitter, nobody else
        // could make room.
        plan.set_workers(1).unwrap();
        let (first, second) = common::or_hang(submitter, "the waiting submit")
            .await
            .unwrap();
        assert!(second.unwrap_err(), "refused as full");
        gated.gate.open();
        busy.await.unwrap();
        assert_eq!(first.await.unwrap(), 1);
    })
    .await
}

/// From the review of item 9: one task waits in `wait_idle` while another
/// fills the queue and waits in `submit`. Each check counted only its own
/// kind of waiter, so both workers were held for good with a task queued.
/// Now the submitter, the one that would hold the last worker, is refused.
#[tokio::test(start_paused = true)]
async fn a_task_in_wait_idle_and_one_in_submit_never_hold_every_worker() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).capacity(1).build().unwrap());
        let gate = common::Gate::closed();
        let submitter = fill_then_submit_from_inside(&plan, Some(gate.clone())).await;
        let inner = plan.clone();
        let waiter = plan
            .submit(async move { inner.wait_idle().await })
            .await
            .unwrap();
        settle().await;
        assert!(!waiter.is_finished(), "it waits for the submitter");
        gate.open();
        let (queued, second) = common::or_hang(submitter, "a submit beside a wait_idle")
            .await
            .unwrap();
        assert!(
            second.unwrap_err(),
            "refused as full: it must not take the last worker"
        );
        assert_eq!(common::or_hang(queued, "the queued task").await.unwrap(), 1);
        common::or_hang(waiter, "wait_idle").await.unwrap();
    })
    .await
}

/// The other order: a task waits in `submit` first (another worker could
/// make room), then the task on that other worker enters `wait_idle` and
/// holds it: the waiting submitter is told, and refused.
#[tokio::test(start_paused = true)]
async fn a_waiting_submit_is_refused_when_a_task_enters_wait_idle_on_the_last_worker() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).capacity(1).build().unwrap());
        let gate = common::Gate::closed();
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let inner = plan.clone();
        let task_gate = gate.clone();
        let waiter = plan
            .submit(async move {
                entered_tx.send(()).unwrap();
                task_gate.pass().await;
                inner.wait_idle().await;
            })
            .await
            .unwrap();
        entered_rx.await.unwrap();
        let submitter = fill_then_submit_from_inside(&plan, None).await;
        settle().await;
        assert!(
            !submitter.is_finished(),
            "it waits: the other worker could make room"
        );
        gate.open();
        let (queued, second) = common::or_hang(submitter, "the waiting submit")
            .await
            .unwrap();
        assert!(
            second.unwrap_err(),
            "refused as full once the other worker parked"
        );
        assert_eq!(common::or_hang(queued, "the queued task").await.unwrap(), 1);
        common::or_hang(waiter, "wait_idle").await.unwrap();
    })
    .await
}

on_both_runtimes!(
    abort_from_a_task_stops_every_task_the_caller_included,
    submit_from_the_only_worker_into_its_full_plan_is_refused_at_once,
);
