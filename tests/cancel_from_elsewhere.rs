//! Issue 12, items 1 and 5: cancelling from elsewhere. A `CancelHandle`
//! (cloneable, `Send + Sync`, blind to the output type), a handle that
//! cancels on drop, `Plan::cancel(TaskId)`, and `Plan::cancel_all`, which
//! leaves the plan open.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{DropFlag, Gated};
use taskplan::{CancelHandle, CancelOnDrop, Plan};
use tokio_test::{assert_pending, assert_ready};

#[test]
fn cancel_handles_are_send_sync_clone_and_static() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<CancelHandle>();
    fn sendable<T: Send + Sync + 'static>() {}
    sendable::<CancelOnDrop<u32>>();
}

async fn a_cancel_handle_cancels_a_running_task_from_another_task() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let handle = plan.submit(gated.task(1)).await.unwrap();
    gated.started().await;
    let canceller = handle.cancel_handle();
    assert_eq!(canceller.id(), handle.id());
    assert!(!canceller.is_finished());
    tokio::spawn(async move { canceller.clone().cancel() })
        .await
        .unwrap();
    assert!(handle.await.unwrap_err().is_cancelled());
    assert_eq!(plan.stats().cancelled, 1);
}

async fn a_cancel_handle_cancels_a_queued_task_which_never_starts() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let blocker = plan.submit(gated.task(1)).await.unwrap();
    gated.started().await;
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    let queued = plan
        .submit(async move { flag.store(true, Ordering::SeqCst) })
        .await
        .unwrap();
    queued.cancel_handle().cancel();
    // As `TaskHandle::cancel`: resolved before `cancel` returns.
    assert!(queued.is_finished());
    gated.gate.open();
    blocker.await.unwrap();
    assert!(queued.await.unwrap_err().is_cancelled());
    assert!(!started.load(Ordering::SeqCst));
}

async fn a_cancel_handle_does_not_keep_the_output_alive() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (output, dropped) = DropFlag::new();
    let handle = plan.submit(async move { output }).await.unwrap();
    let canceller = handle.cancel_handle();
    plan.wait_idle().await;
    assert!(canceller.is_finished());
    // The output lives in the task until its handle takes it or goes.
    assert!(!dropped.load(Ordering::SeqCst));
    drop(handle);
    assert!(
        dropped.load(Ordering::SeqCst),
        "a cancel handle kept a finished task's output alive"
    );
    canceller.cancel(); // a finished task is left as it is
    assert!(canceller.is_finished());
    assert_eq!(plan.stats().completed, 1);
}

async fn cancel_on_drop_cancels_when_dropped_and_detach_does_not() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut gated = Gated::new();
    let guarded = plan.submit(gated.task(1)).await.unwrap();
    let kept = plan.submit(gated.task(2)).await.unwrap();
    gated.started().await;
    gated.started().await;
    let guarded_canceller = guarded.cancel_handle();
    let guarded = guarded.cancel_on_drop();
    let kept = kept.cancel_on_drop().detach();
    drop(guarded);
    gated.gate.open();
    assert_eq!(kept.await.unwrap(), 2);
    plan.wait_idle().await;
    assert!(guarded_canceller.is_finished());
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 1));
}

async fn cancel_on_drop_resolves_like_the_handle() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let guarded = plan.submit(async { 5 }).await.unwrap().cancel_on_drop();
    let id = guarded.id();
    assert_eq!(guarded.await.unwrap(), 5);
    // Dropped after it finished (by the await): nothing is cancelled.
    assert!(!plan.cancel(id));
    assert_eq!(plan.stats().cancelled, 0);
}

async fn plan_cancel_by_id_reaches_queued_and_running_tasks() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let running = plan.submit(gated.task(1)).await.unwrap();
    gated.started().await;
    let (guard, dropped) = DropFlag::new();
    let queued = plan
        .submit(async move {
            let _guard = guard;
        })
        .await
        .unwrap();
    let other = plan.submit(gated.task(3)).await.unwrap();
    let (queued_id, other_id) = (queued.id(), other.id());

    assert!(plan.cancel(queued_id));
    // Dropped unstarted before `cancel` returned; the others untouched.
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(plan.stats().queued, 1);
    assert!(plan.cancel(running.id()));
    assert!(running.await.unwrap_err().is_cancelled());
    assert!(queued.await.unwrap_err().is_cancelled());
    // Cancelled once: a second cancel of either finds nothing.
    assert_eq!(gated.started().await, 3);
    assert!(!plan.cancel(queued_id));
    gated.gate.open();
    assert_eq!(other.await.unwrap(), 3);
    assert!(!plan.cancel(other_id), "a finished task is not cancelled");
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 2));
}

async fn plan_cancel_by_id_ignores_ids_it_does_not_run() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let elsewhere = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    // Both plans number their first task alike; only the one asked cancels.
    let ours = plan.submit(gated.task(1)).await.unwrap();
    let theirs = elsewhere.submit(gated.task(2)).await.unwrap();
    gated.started().await;
    gated.started().await;
    let unknown = elsewhere.submit(async {}).await.unwrap().id();
    assert!(!plan.cancel(unknown), "no task of this plan has that id");
    assert!(plan.cancel(ours.id()));
    gated.gate.open();
    assert!(ours.await.unwrap_err().is_cancelled());
    assert_eq!(theirs.await.unwrap(), 2);
}

async fn cancel_all_cancels_every_queued_and_running_task_and_the_plan_stays_open() {
    let plan = common::tracked(Plan::builder().workers(2).capacity(8).build().unwrap());
    let mut gated = Gated::new();
    let mut handles = Vec::new();
    for n in 0..2 {
        handles.push(plan.submit(gated.task(n)).await.unwrap());
    }
    gated.started().await;
    gated.started().await;
    for n in 2..5 {
        handles.push(plan.task(gated.task(n)).tag("t").submit().await.unwrap());
    }
    let blocking_started = Arc::new(tokio::sync::Notify::new());
    let notify = Arc::clone(&blocking_started);
    let stats = plan.stats();
    assert_eq!((stats.running, stats.queued), (2, 3));

    assert_eq!(plan.cancel_all(), 5);
    assert!(!plan.is_closed());
    for handle in handles {
        assert!(handle.await.unwrap_err().is_cancelled());
    }
    // Later tasks run as usual, blocking ones included.
    let blocking = plan
        .submit_blocking(move |_| {
            notify.notify_one();
            7
        })
        .await
        .unwrap();
    blocking_started.notified().await;
    assert_eq!(blocking.await.unwrap(), 7);
    gated.gate.open();
    assert_eq!(plan.submit(gated.task(9)).await.unwrap().await.unwrap(), 9);
    plan.wait_idle().await;
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (2, 5));
    assert_eq!(plan.cancel_all(), 0, "nothing left to cancel");
}

async fn cancel_all_frees_room_for_a_waiting_submitter() {
    let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
    let mut gated = Gated::new();
    let running = plan.submit(gated.task(1)).await.unwrap();
    gated.started().await;
    let queued = plan.submit(gated.task(2)).await.unwrap();
    let mut waiting = tokio_test::task::spawn(plan.submit(gated.task(3)));
    assert_pending!(waiting.poll(), "the queue holds one: the submitter waits");

    assert_eq!(plan.cancel_all(), 2);
    assert!(waiting.is_woken(), "the room freed woke the submitter");
    let third = assert_ready!(waiting.poll()).unwrap();
    assert!(running.await.unwrap_err().is_cancelled());
    assert!(queued.await.unwrap_err().is_cancelled());
    gated.gate.open();
    assert_eq!(third.await.unwrap(), 3);
}

async fn a_blocking_task_is_cancelled_by_cancel_all_and_by_id() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let started = started_tx.clone();
    let first = plan
        .submit_blocking(move |_| {
            started.send(()).unwrap();
            let _ = release_rx.recv();
        })
        .await
        .unwrap();
    let second = plan
        .submit_blocking(move |token| {
            started_tx.send(()).unwrap();
            while !token.is_cancelled() {
                std::thread::yield_now();
            }
        })
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    started_rx.recv().await.unwrap();
    assert!(plan.cancel(second.id()));
    assert_eq!(plan.cancel_all(), 1);
    assert!(first.await.unwrap_err().is_cancelled());
    assert!(second.await.unwrap_err().is_cancelled());
    release_tx.send(()).unwrap();
}

/// Issue 12, item 4 with items 1 and 5: a tag whose last tasks go by
/// `cancel_all` or `Plan::cancel(id)` is freed like any other, and a task
/// of the same name queued next starts the tag's new life.
async fn cancel_all_and_cancel_by_id_free_the_tags_they_empty() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut gated = Gated::new();
    let running = plan.task(gated.task(0)).tag("kept").submit().await.unwrap();
    gated.started().await;
    let by_id = plan
        .task(gated.task(1))
        .tag("by-id")
        .submit()
        .await
        .unwrap();
    assert!(plan.cancel(by_id.id()));
    assert_eq!(
        plan.tag_stats("by-id").submitted,
        0,
        "freed with its last task"
    );
    let queued = plan
        .task(gated.task(2))
        .tag("queued")
        .submit()
        .await
        .unwrap();
    let also_kept = plan.task(gated.task(3)).tag("kept").submit().await.unwrap();
    assert_eq!(plan.tag_stats("kept").submitted, 2);

    assert_eq!(plan.cancel_all(), 3);
    assert!(queued.await.unwrap_err().is_cancelled());
    assert!(also_kept.await.unwrap_err().is_cancelled());
    assert!(running.await.unwrap_err().is_cancelled());
    plan.wait_idle().await;
    for tag in ["by-id", "queued", "kept"] {
        let stats = plan.tag_stats(tag);
        assert_eq!(
            (stats.submitted, stats.cancelled),
            (0, 0),
            "{tag} was not freed"
        );
    }
    // The same name again: a new life, counted from zero.
    gated.gate.open();
    let again = plan
        .task(gated.task(4))
        .tag("queued")
        .submit()
        .await
        .unwrap();
    assert_eq!(again.await.unwrap(), 4);
    assert_eq!(plan.stats().cancelled, 4);
}

on_both_runtimes!(
    a_cancel_handle_cancels_a_running_task_from_another_task,
    a_cancel_handle_cancels_a_queued_task_which_never_starts,
    a_cancel_handle_does_not_keep_the_output_alive,
    cancel_on_drop_cancels_when_dropped_and_detach_does_not,
    cancel_on_drop_resolves_like_the_handle,
    plan_cancel_by_id_reaches_queued_and_running_tasks,
    plan_cancel_by_id_ignores_ids_it_does_not_run,
    cancel_all_cancels_every_queued_and_running_task_and_the_plan_stays_open,
    cancel_all_frees_room_for_a_waiting_submitter,
    a_blocking_task_is_cancelled_by_cancel_all_and_by_id,
    cancel_all_and_cancel_by_id_free_the_tags_they_empty,
);

/// From the review of items 1 and 5: `cancel_all`, cancel handles and
/// cancels by id race each other and new submits, which reuse the queue's
/// keys while the drained tasks are still being dropped. Every task the
/// three cancel ends cancelled, exactly once; every new task resolves; the
/// counts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_racing_cancel_all_and_new_submits_lose_nothing() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).capacity(64).build().unwrap());
        let mut new_tasks = 0;
        for _round in 0..100 {
            let gated = Gated::new();
            let mut handles = Vec::new();
            for n in 0..16 {
                handles.push(plan.submit(gated.task(n)).await.unwrap());
            }
            let cancellers: Vec<_> = handles.iter().map(|h| h.cancel_handle()).collect();
            let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
            let all = tokio::spawn({
                let plan = plan.clone();
                async move { plan.cancel_all() }
            });
            let by_handle = tokio::spawn(async move {
                for canceller in cancellers {
                    canceller.cancel();
                }
            });
            let by_id = tokio::spawn({
                let plan = plan.clone();
                async move { ids.into_iter().filter(|&id| plan.cancel(id)).count() }
            });
            let fresh = tokio::spawn({
                let plan = plan.clone();
                async move {
                    let mut fresh = Vec::new();
                    for n in 0..16u32 {
                        fresh.push(plan.submit(async move { n }).await.unwrap());
                    }
                    fresh
                }
            });
            let all = all.await.unwrap();
            by_handle.await.unwrap();
            let by_id = by_id.await.unwrap();
            let fresh = fresh.await.unwrap();
            assert!(all + by_id <= 16 + fresh.len(), "a task was counted twice");
            gated.gate.open();
            for handle in handles {
                assert!(handle.await.unwrap_err().is_cancelled());
            }
            for handle in fresh {
                new_tasks += 1;
                // Run, or caught by the racing `cancel_all`: either way, once.
                if let Err(error) = handle.await {
                    assert!(error.is_cancelled());
                }
            }
        }
        plan.wait_idle().await;
        let stats = plan.stats();
        common::assert_conserved(stats);
        assert_eq!(stats.submitted, 100 * 16 + new_tasks);
        assert!(stats.cancelled >= 100 * 16);
    })
    .await
}

/// A cancel handle outlives everything: its task (still running when its
/// runtime went away), its plan, and the runtime. Cancelling then does
/// nothing and panics nothing, and the task reads as finished.
#[test]
fn a_cancel_handle_outliving_its_task_plan_and_runtime_does_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (canceller, dropped) = runtime.block_on(async {
        // Not tracked: the runtime under the plan is dropped below.
        let plan = Plan::builder().workers(1).build().unwrap();
        let (guard, dropped) = DropFlag::new();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let handle = plan
            .submit(async move {
                let _guard = guard;
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        started_rx.await.unwrap();
        (handle.cancel_handle(), dropped)
    });
    assert!(!canceller.is_finished(), "still running");
    drop(runtime);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the runtime dropped the task"
    );
    assert!(canceller.is_finished());
    canceller.cancel();
    assert!(canceller.is_finished());
}
