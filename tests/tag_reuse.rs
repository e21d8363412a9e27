//! A tag's index is never reused under a task that still uses it (issue 12,
//! item 4): the plan frees a tag with its last task and hands its index to
//! the next new tag, so a submit of the same name racing that last task's
//! end, and submits of other names that may take the freed index, must
//! still leave every task in its own tag's lists.
//!
//! Each round, on a 2-thread runtime: a task of tag `x` runs alone on the
//! plan's one worker. Three racers start together, on a barrier: one lets
//! that task end (which frees `x`, unless the next racer's task is queued
//! first), one submits another task of `x`, one submits tasks of three new
//! tags. The racing tasks park, so once the worker has started one of them
//! the rest stay queued; then `promote` and `cancel_tag` of each tag must
//! reach exactly that tag's tasks, and `tag_stats("x")` must cover one
//! life: the new task alone, or the old one completed too. Nothing sleeps:
//! each step waits on the event it needs.
//!
//! About 3 s in a debug build on the project's 2-core machine.

mod common;

use std::sync::Arc;

use taskplan::{Plan, TaskHandle};
use tokio::sync::{Barrier, mpsc, oneshot};

/// Rounds in a debug build; a release build runs four times as many.
const ROUNDS: usize = if cfg!(debug_assertions) {
    5_000
} else {
    20_000
};
/// New tags submitted against each end of `x`'s last task.
const OTHERS: usize = 3;

/// A task that reports its start with `label` and parks until its handle
/// cancels it.
async fn parked(label: usize, started: mpsc::UnboundedSender<usize>) {
    started.send(label).unwrap();
    std::future::pending::<()>().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_freed_by_its_last_task_while_submits_race_keeps_every_task_in_its_own_tag() {
    common::harness_within(std::time::Duration::from_secs(120), async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (started_tx, mut started_rx) = mpsc::unbounded_channel();
        let (mut new_lives, mut same_lives) = (0, 0);
        for round in 0..ROUNDS {
            // The last task of `x`, running.
            let (end_tx, end_rx) = oneshot::channel::<()>();
            let last = plan
                .task({
                    let started = started_tx.clone();
                    async move {
                        started.send(usize::MAX).unwrap();
                        end_rx.await.ok();
                    }
                })
                .tag("x")
                .submit()
                .await
                .unwrap();
            assert_eq!(started_rx.recv().await, Some(usize::MAX));

            let barrier = Arc::new(Barrier::new(3));
            let ender = tokio::spawn({
                let barrier = Arc::clone(&barrier);
                async move {
                    barrier.wait().await;
                    end_tx.send(()).unwrap();
                }
            });
            let same_name = tokio::spawn({
                let (barrier, plan, started) =
                    (Arc::clone(&barrier), plan.clone(), started_tx.clone());
                async move {
                    barrier.wait().await;
                    // In an array: a task's output that is itself a future
                    // reads as a forgotten `.await`.
                    [plan
                        .task(parked(OTHERS, started))
                        .tag("x")
                        .submit()
                        .await
                        .unwrap()]
                }
            });
            let other_names = tokio::spawn({
                let (barrier, plan, started) =
                    (Arc::clone(&barrier), plan.clone(), started_tx.clone());
                async move {
                    barrier.wait().await;
                    let mut handles = Vec::new();
                    for other in 0..OTHERS {
                        let task = plan.task(parked(other, started.clone()));
                        let task = task.tag(format!("other-{round}-{other}"));
                        handles.push(task.submit().await.unwrap());
                    }
                    handles
                }
            });
            ender.await.unwrap();
            let [x]: [TaskHandle<()>; 1] = same_name.await.unwrap();
            let others = other_names.await.unwrap();
            last.await.unwrap();

            // The worker takes one racing task (label `OTHERS` is x's); the
            // rest stay queued behind it.
            let running = started_rx.recv().await.unwrap();
            let queued = |label: usize| usize::from(label != running);
            let stats = plan.tag_stats("x");
            assert_eq!(stats.running + stats.queued, 1, "round {round}: {stats:?}");
            match (stats.submitted, stats.completed) {
                (1, 0) => new_lives += 1,
                (2, 1) => same_lives += 1,
                _ => panic!("round {round}: x spans more than one life: {stats:?}"),
            }
            common::assert_conserved(stats);
            assert_eq!(plan.promote("x"), queued(OTHERS), "round {round}");
            for other in 0..OTHERS {
                let name = format!("other-{round}-{other}");
                assert_eq!(plan.promote(&name), queued(other), "round {round}");
            }

            assert_eq!(plan.cancel_tag("x"), 1, "round {round}");
            assert!(x.await.unwrap_err().is_cancelled(), "round {round}");
            for (other, handle) in others.into_iter().enumerate() {
                assert!(
                    !handle.is_finished(),
                    "round {round}: cancelling x reached other-{round}-{other}"
                );
                let name = format!("other-{round}-{other}");
                assert_eq!(plan.cancel_tag(&name), 1, "round {round}");
                assert!(handle.await.unwrap_err().is_cancelled());
            }
            plan.wait_idle().await;
            // Whichever racing task ran, a cancel freed the worker, which
            // then started the next: drain those reports.
            while started_rx.try_recv().is_ok() {}
            common::assert_forgotten(&plan, "x");
        }
        println!(
            "{ROUNDS} rounds: x began a new life in {new_lives}, kept its life in {same_lives}"
        );
    })
    .await;
}
