//! Issue 0.2, semantics 3 and 8: cancelling by tag and per-tag counters;
//! issue 12, item 4: a tag's counts cover its current life, and the plan
//! forgets it once none of its tasks is queued or running.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{DropFlag, Gate, assert_conserved, assert_forgotten};
use taskplan::{Plan, Tag};

async fn cancel_tag_cancels_queued_and_running_of_that_tag_only() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();

    // Running: one "sync", one "ui". Queued: two "sync", one "ui".
    let (guard, running_sync_dropped) = DropFlag::new();
    let started = started_tx.clone();
    let running_sync = plan
        .task(async move {
            let _guard = guard;
            started.send(0).unwrap();
            std::future::pending::<()>().await
        })
        .tag("sync")
        .submit()
        .await
        .unwrap();
    let (ui_gate, started) = (gate.clone(), started_tx.clone());
    let running_ui = plan
        .task(async move {
            started.send(1).unwrap();
            ui_gate.pass().await;
            "ui ran"
        })
        .tag(String::from("ui"))
        .submit()
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    started_rx.recv().await.unwrap();
    let queued_sync: Vec<_> = (0..2)
        .map(|_| plan.task(async {}).tag("sync").try_submit().unwrap())
        .collect();
    let queued_ui = plan
        .task(async { "queued ui ran" })
        .tag("ui")
        .try_submit()
        .unwrap();
    let untagged = plan.try_submit(async { "untagged ran" }).unwrap();

    let (sync, ui) = (plan.tag_stats("sync"), plan.tag_stats("ui"));
    assert_eq!((sync.submitted, sync.running, sync.queued), (3, 1, 2));
    assert_eq!((ui.submitted, ui.running, ui.queued), (2, 1, 1));
    assert_eq!(plan.cancel_tag("sync"), 3);
    assert!(running_sync.await.unwrap_err().is_cancelled());
    assert!(running_sync_dropped.load(Ordering::SeqCst));
    for handle in queued_sync {
        assert!(handle.await.unwrap_err().is_cancelled());
    }
    gate.open();
    assert_eq!(running_ui.await.unwrap(), "ui ran");
    assert_eq!(queued_ui.await.unwrap(), "queued ui ran");
    assert_eq!(untagged.await.unwrap(), "untagged ran");

    assert_eq!(plan.cancel_tag("sync"), 0, "nothing of the tag is left");
    assert_eq!(plan.cancel_tag("never-used"), 0);
    plan.wait_idle().await;
    let all = plan.stats();
    assert_eq!((all.submitted, all.cancelled, all.completed), (6, 3, 3));
    assert_forgotten(&plan, "sync");
    assert_forgotten(&plan, "ui");
}

async fn tag_stats_obey_the_conservation_law_per_tag() {
    // Two workers for the "a" tasks, one for a task that keeps "a" counted
    // once the others have ended.
    let plan = common::tracked(Plan::builder().workers(3).build().unwrap());
    let keeper = common::keep_tag(&plan, "a").await;
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let mut gated = Vec::new();
    for n in 0..4 {
        let (gate, started_tx) = (gate.clone(), started_tx.clone());
        gated.push(
            plan.task(async move {
                started_tx.send(n).unwrap();
                gate.pass().await;
            })
            .tag("a")
            .submit()
            .await
            .unwrap(),
        );
    }
    started_rx.recv().await.unwrap();
    started_rx.recv().await.unwrap();
    let b_panics = plan
        .task(async { panic!("b fails") })
        .tag("b")
        .submit()
        .await
        .unwrap();

    // Quiet: the keeper and two "a" running, two "a" and one "b" queued.
    let a = plan.tag_stats("a");
    assert_eq!((a.workers, a.submitted, a.running, a.queued), (3, 5, 3, 2));
    assert_conserved(a);
    let b = plan.tag_stats("b");
    assert_eq!((b.submitted, b.queued, b.running), (1, 1, 0));
    assert_conserved(b);

    gated.pop().unwrap().cancel(); // a queued one
    gate.open();
    for handle in gated {
        handle.await.unwrap();
    }
    assert!(b_panics.await.unwrap_err().is_panic());

    // A resolved handle is counted: "a" adds up with only its keeper left.
    let a = plan.tag_stats("a");
    assert_eq!(
        (a.submitted, a.completed, a.cancelled, a.running, a.queued),
        (5, 3, 1, 1, 0)
    );
    assert_conserved(a);
    keeper.release().await;
    plan.wait_idle().await;
    assert_forgotten(&plan, "a");
    assert_forgotten(&plan, "b");
    let unknown = plan.tag_stats("c");
    assert_eq!((unknown.workers, unknown.submitted), (3, 0));
    // The plan's counters include every tag, in every life.
    let all = plan.stats();
    assert_eq!(
        (all.submitted, all.completed, all.cancelled, all.panicked),
        (6, 4, 1, 1)
    );
}

/// How a task that cancels its own tag in the poll that ends it, ends.
enum Ending {
    Value,
    Panic,
}

/// Runs one tagged task that calls `cancel_tag` on its own tag inside the
/// poll that then returns its value or panics: the cancel is requested
/// while the task runs, before its end is decided. Returns the count
/// `cancel_tag` reported, the handle's result, and the plan's stats (its
/// only task's), once the plan has forgotten the tag.
async fn cancel_own_tag_then(
    ending: Ending,
) -> (usize, Result<u32, taskplan::TaskError>, taskplan::Stats) {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (count_tx, count_rx) = tokio::sync::oneshot::channel();
    let inner = plan.clone();
    let handle = plan
        .task(async move {
            count_tx.send(inner.cancel_tag("own")).unwrap();
            match ending {
                Ending::Value => 7,
                Ending::Panic => panic!("ends as it is cancelled"),
            }
        })
        .tag("own")
        .submit()
        .await
        .unwrap();
    let result = handle.await;
    let counted = count_rx.await.unwrap();
    plan.wait_idle().await;
    assert_forgotten(&plan, "own");
    (counted, result, plan.stats())
}

/// Regression (found by loom, `loom_a_requested_cancel_means_the_task_did_not_complete`):
/// `cancel_tag` counted a running task whose poll then returned its value,
/// and the task completed anyway. A cancel that counts a task now always
/// ends it cancelled, so the count and the outcome agree.
async fn a_task_counted_by_cancel_tag_as_it_returns_its_value_ends_cancelled() {
    let (counted, result, stats) = cancel_own_tag_then(Ending::Value).await;
    assert_eq!(counted, 1);
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!((stats.cancelled, stats.completed), (1, 0), "{stats:?}");
    assert_conserved(stats);
}

/// The same race with a panic: the task counted by `cancel_tag` ends
/// cancelled, and is not also counted as panicked.
async fn a_task_counted_by_cancel_tag_as_it_panics_ends_cancelled() {
    let (counted, result, stats) = cancel_own_tag_then(Ending::Panic).await;
    assert_eq!(counted, 1);
    assert!(result.unwrap_err().is_cancelled());
    assert_eq!((stats.cancelled, stats.panicked), (1, 0), "{stats:?}");
    assert_conserved(stats);
}

/// The same race with a timeout: as its time runs out the task's future is
/// dropped, and its destructor cancels the task's own tag before the
/// timeout is decided. The task counted by `cancel_tag` ends cancelled, not
/// timed out.
#[tokio::test(start_paused = true)]
async fn a_task_counted_by_cancel_tag_as_it_times_out_ends_cancelled() {
    /// Cancels the tag `own` when dropped, and sends what `cancel_tag` said.
    struct CancelOwnTag(Plan, Option<tokio::sync::oneshot::Sender<usize>>);

    impl Drop for CancelOwnTag {
        fn drop(&mut self) {
            if let Some(count_tx) = self.1.take() {
                let _ = count_tx.send(self.0.cancel_tag("own"));
            }
        }
    }

    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (count_tx, count_rx) = tokio::sync::oneshot::channel();
        let guard = CancelOwnTag(plan.clone(), Some(count_tx));
        let handle = plan
            .task(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            })
            .tag("own")
            .timeout(Duration::from_secs(1))
            .submit()
            .await
            .unwrap();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert_eq!(count_rx.await.unwrap(), 1);
        plan.wait_idle().await;
        assert_forgotten(&plan, "own");
        let stats = plan.stats();
        assert_eq!((stats.cancelled, stats.timed_out), (1, 0), "{stats:?}");
        assert_conserved(stats);
    })
    .await
}

/// A running task whose cancel is already requested is not counted again
/// by a second `cancel_tag` before it has stopped.
async fn cancel_tag_counts_a_running_task_once() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (started_tx, mut started_rx) = common::started_channel();
    let stuck = plan
        .task(async move {
            started_tx.send(0).unwrap();
            std::future::pending::<()>().await
        })
        .tag("t")
        .submit()
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    assert_eq!(plan.cancel_tag("t"), 1);
    assert_eq!(plan.cancel_tag("t"), 0);
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(plan.stats().cancelled, 1);
    plan.wait_idle().await;
    assert_forgotten(&plan, "t");
}

on_both_runtimes!(
    cancel_tag_counts_a_running_task_once,
    cancel_tag_cancels_queued_and_running_of_that_tag_only,
    tag_stats_obey_the_conservation_law_per_tag,
    a_task_counted_by_cancel_tag_as_it_returns_its_value_ends_cancelled,
    a_task_counted_by_cancel_tag_as_it_panics_ends_cancelled,
);

#[test]
fn tags_come_from_static_strs_and_strings() {
    let borrowed = Tag::from("ui");
    let owned = Tag::from(String::from("ui"));
    assert_eq!(borrowed, owned);
    assert_eq!(borrowed.as_str(), "ui");
    assert_eq!(AsRef::<str>::as_ref(&owned), "ui");
    assert_eq!(std::borrow::Borrow::<str>::borrow(&owned), "ui");
    assert_eq!(format!("{owned} {owned:?}"), "ui \"ui\"");
}

/// Per-tag counts stay exact through timeouts, `cancel_tag` and an abort.
#[tokio::test(start_paused = true)]
async fn tag_stats_add_up_through_timeouts_and_abort() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        let slow = plan
            .task(std::future::pending::<()>())
            .tag("t")
            .timeout(Duration::from_secs(1))
            .submit()
            .await
            .unwrap();
        let stuck = plan
            .task(std::future::pending::<()>())
            .tag("t")
            .submit()
            .await
            .unwrap();
        let queued = plan.task(async {}).tag("t").submit().await.unwrap();
        tokio::task::yield_now().await;
        let s = plan.tag_stats("t");
        assert_eq!((s.running, s.queued), (2, 1), "{s:?}");
        assert!(slow.await.unwrap_err().is_timeout());
        // the freed worker takes `queued`
        queued.await.unwrap();
        let s = plan.tag_stats("t");
        assert_conserved(s);
        let again = plan
            .task(std::future::pending::<()>())
            .tag("t")
            .submit()
            .await
            .unwrap();
        let waiting = plan.task(async {}).tag("t").submit().await.unwrap();
        let late = plan.task(async {}).tag("t").submit().await.unwrap();
        tokio::task::yield_now().await;
        let s = plan.tag_stats("t");
        assert_eq!(
            (
                s.submitted,
                s.completed,
                s.timed_out,
                s.cancelled,
                s.running,
                s.queued
            ),
            (6, 1, 1, 0, 2, 2),
            "{s:?}"
        );
        assert_conserved(s);
        assert_eq!(plan.cancel_tag("t"), 4);
        let report = plan.abort().await;
        for h in [stuck, again, waiting, late] {
            assert!(h.await.unwrap_err().is_cancelled());
        }
        assert_eq!(
            (report.completed, report.timed_out, report.cancelled),
            (1, 1, 4),
            "{report:?}"
        );
        assert_forgotten(&plan, "t");
    })
    .await
}
