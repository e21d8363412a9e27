//! Semantics 7: close, shutdown with a grace period, abort, dropping the
//! last clone, and waiting for idle. At the end, the test harness's own
//! promises (`tests/common`): a plan a test leaves running is aborted and
//! joined, a body that hangs fails within its bound (real time, so paused
//! time never trips it), and `tracked` outside the harness panics.

mod common;

use std::time::Duration;

use common::{DropFlag, Gate};
use taskplan::Plan;
use tokio::time::{Instant, sleep};
use tokio_test::{assert_pending, task};

async fn close_stops_intake_and_says_whether_it_closed() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let queued: Vec<_> = (0..3)
        .map(|n| {
            let gate = gate.clone();
            plan.try_submit(async move {
                gate.pass().await;
                n
            })
            .unwrap()
        })
        .collect();
    assert!(!plan.is_closed());
    assert!(plan.close());
    assert!(plan.is_closed());
    assert!(!plan.close(), "already closed");
    assert!(plan.try_submit(async { 0 }).unwrap_err().is_closed());

    // What was accepted before the close still runs.
    gate.open();
    for (n, handle) in queued.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), n);
    }
}

async fn abort_cancels_queued_and_running_tasks_at_once() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let (started_tx, mut started_rx) = common::started_channel();
    let mut handles = Vec::new();
    let mut drop_flags = Vec::new();
    for n in 0..5 {
        let (guard, dropped) = DropFlag::new();
        drop_flags.push(dropped);
        let started_tx = started_tx.clone();
        handles.push(
            plan.submit(async move {
                let _guard = guard;
                started_tx.send(n).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap(),
        );
    }
    started_rx.recv().await.unwrap();
    started_rx.recv().await.unwrap();

    let report = plan.abort().await;
    assert!(report.forced);
    assert_eq!((report.completed, report.cancelled), (0, 5));
    // When `abort` returns, every future was dropped and every handle resolved.
    for (handle, dropped) in handles.iter().zip(&drop_flags) {
        assert!(handle.is_finished());
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
    for handle in handles {
        assert!(handle.await.unwrap_err().is_cancelled());
    }
    assert!(plan.is_closed());
    assert!(plan.token().is_cancelled());
    // Only the two that were running ever started.
    assert_eq!(started_rx.try_recv().ok(), None);
}

async fn abort_is_idempotent() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.submit(std::future::pending::<()>()).await.unwrap();
    let first = plan.abort().await;
    let second = plan.abort().await;
    let third = plan.shutdown(Duration::from_secs(1)).await;
    assert_eq!(first.cancelled, 1);
    assert_eq!(
        (second.completed, second.cancelled),
        (first.completed, first.cancelled)
    );
    assert_eq!(
        (third.completed, third.cancelled),
        (first.completed, first.cancelled)
    );
    // Like the counts, `forced` describes the plan's whole life.
    assert!(first.forced && second.forced && third.forced);
}

async fn shutdown_and_abort_from_several_clones_at_once() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let gate = Gate::closed();
    let mut handles = Vec::new();
    for _ in 0..6 {
        let gate = gate.clone();
        handles.push(plan.submit(async move { gate.pass().await }).await.unwrap());
    }
    let (a, b, c) = (plan.clone(), plan.clone(), plan.clone());
    let (first, second, third) = tokio::join!(
        a.shutdown(Duration::from_secs(3600)),
        b.shutdown(Duration::from_secs(3600)),
        c.abort(),
    );
    for report in [first, second, third] {
        assert_eq!((report.completed, report.cancelled), (0, 6));
    }
    for handle in handles {
        assert!(handle.await.unwrap_err().is_cancelled());
    }
}

async fn dropping_every_clone_closes_the_plan_and_queued_tasks_still_run() {
    // Not tracked: the harness's clone would keep the plan open.
    let plan = Plan::builder().workers(1).build().unwrap();
    let clone = plan.clone();
    let gate = Gate::closed();
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let gate = gate.clone();
            clone
                .try_submit(async move {
                    gate.pass().await;
                    n
                })
                .unwrap()
        })
        .collect();
    drop(plan);
    drop(clone);
    gate.open();
    for (n, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap(), n, "every handle still resolves");
    }
}

async fn wait_idle_waits_for_queued_and_running_tasks() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.wait_idle().await; // idle from the start

    let gate = Gate::closed();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let gate = gate.clone();
        handles.push(plan.submit(async move { gate.pass().await }).await.unwrap());
    }
    let mut idle = task::spawn(plan.wait_idle());
    assert_pending!(idle.poll());
    gate.let_through(2);
    // One worker runs them in order: the first two finish, the third waits.
    for handle in handles.drain(..2) {
        handle.await.unwrap();
    }
    assert_pending!(idle.poll());
    gate.let_through(1);
    idle.await;
    let stats = plan.stats();
    assert_eq!((stats.queued, stats.running, stats.completed), (0, 0, 3));
}

/// How a test closes a plan, for `closed`.
#[derive(Debug, Clone, Copy)]
enum Closing {
    Close,
    Shutdown,
    Abort,
    CancelToken,
    DropLastClone,
}

/// `Plan::closed` is pending while the plan is open and resolves however it
/// closes; a future made before the close and one made after both resolve.
// Not tracked: one case drops the last clone, which a tracked plan never
// is; the others close their plan themselves, and a hang fails the harness.
async fn closed_resolves_however_the_plan_closes() {
    for closing in [
        Closing::Close,
        Closing::Shutdown,
        Closing::Abort,
        Closing::CancelToken,
        Closing::DropLastClone,
    ] {
        let plan = Plan::builder().workers(1).build().unwrap();
        let mut before = task::spawn(plan.closed());
        assert_pending!(before.poll(), "{closing:?}: open");
        tokio::task::yield_now().await;
        assert_pending!(before.poll(), "{closing:?}: still open");
        let after = match closing {
            Closing::Close => {
                plan.close();
                Some(plan.closed())
            }
            Closing::Shutdown => {
                plan.shutdown(Duration::from_secs(5)).await;
                Some(plan.closed())
            }
            Closing::Abort => {
                plan.abort().await;
                Some(plan.closed())
            }
            Closing::CancelToken => {
                plan.token().cancel();
                Some(plan.closed())
            }
            Closing::DropLastClone => {
                drop(plan);
                None
            }
        };
        before.await;
        if let Some(after) = after {
            after.await;
        }
    }
}

on_both_runtimes!(
    closed_resolves_however_the_plan_closes,
    close_stops_intake_and_says_whether_it_closed,
    abort_cancels_queued_and_running_tasks_at_once,
    abort_is_idempotent,
    shutdown_and_abort_from_several_clones_at_once,
    dropping_every_clone_closes_the_plan_and_queued_tasks_still_run,
    wait_idle_waits_for_queued_and_running_tasks,
);

#[tokio::test(start_paused = true)]
async fn shutdown_drains_within_the_grace_period() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let started = Instant::now();
        let mut handles = Vec::new();
        for n in 0..3u64 {
            handles.push(
                plan.submit(async move {
                    sleep(Duration::from_secs(1)).await;
                    n
                })
                .await
                .unwrap(),
            );
        }
        let report = plan.shutdown(Duration::from_secs(10)).await;
        // Queued tasks ran one after another during the grace period.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!((report.completed, report.cancelled), (3, 0));
        assert!(!report.forced);
        assert!(
            !plan.token().is_cancelled(),
            "a drained shutdown does not abort"
        );
        for (n, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), n as u64);
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_what_is_left_when_the_grace_runs_out() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
        let quick = plan.submit(sleep(Duration::from_secs(1))).await.unwrap();
        let (guard, dropped) = DropFlag::new();
        let slow = plan
            .submit(async move {
                let _guard = guard;
                sleep(Duration::from_secs(60)).await
            })
            .await
            .unwrap();
        // Queued behind both: starts at 1 s, would end at 61 s.
        let queued = plan.submit(sleep(Duration::from_secs(60))).await.unwrap();

        let started = Instant::now();
        let report = plan.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.elapsed, Duration::from_secs(5));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(report.forced);
        assert_eq!((report.completed, report.cancelled), (1, 2));
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        quick.await.unwrap();
        assert!(slow.await.unwrap_err().is_cancelled());
        assert!(queued.await.unwrap_err().is_cancelled());
        assert!(plan.token().is_cancelled());
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_shortest_concurrent_grace_wins() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let slow = plan.submit(sleep(Duration::from_secs(60))).await.unwrap();
        let other = plan.clone();
        let started = Instant::now();
        let (long, short) = tokio::join!(
            plan.shutdown(Duration::from_secs(30)),
            other.shutdown(Duration::from_secs(2)),
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(short.forced);
        assert_eq!(long.cancelled, 1);
        assert!(slow.await.unwrap_err().is_cancelled());
    })
    .await
}

#[tokio::test]
async fn supervisors_exit_once_the_last_clone_is_dropped_and_the_queue_drains() {
    common::bounded(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        // Not tracked: the harness's clone would keep the plan open.
        let plan = Plan::builder().workers(3).build().unwrap();
        // The task that watches the plan's token; supervisors start as work
        // arrives, one for this task.
        assert_eq!(metrics.num_alive_tasks(), 1);
        let handle = plan.submit(async { 1 }).await.unwrap();
        assert_eq!(metrics.num_alive_tasks(), 2);
        drop(plan);
        assert_eq!(handle.await.unwrap(), 1);
        // On this single-threaded runtime the supervisors and the watcher finish
        // exiting within a few turns of the scheduler: nothing is left behind.
        for _ in 0..100 {
            if metrics.num_alive_tasks() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.num_alive_tasks(), 0);
    })
    .await
}

#[test]
fn handles_resolve_when_the_runtime_shuts_down_under_the_plan() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Not tracked: the runtime under the plan is dropped; nothing can join
    // it afterwards. Each runtime's part is bounded.
    let (running, queued) = runtime.block_on(common::bounded(async {
        let plan = Plan::builder().workers(1).build().unwrap();
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
        (running, queued)
    }));
    drop(runtime);
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    other.block_on(common::bounded(async {
        assert!(running.await.unwrap_err().is_cancelled());
        assert!(queued.await.unwrap_err().is_cancelled());
    }));
}

#[test]
fn abort_works_without_a_time_driver() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Not tracked: `join_or_fail` bounds the join with a Tokio timer, and
    // this runtime has no time driver. The body aborts the plan itself.
    runtime.block_on(common::bounded(async {
        let plan = Plan::builder().workers(1).build().unwrap();
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let report = plan.abort().await;
        assert_eq!(report.cancelled, 1);
        assert!(stuck.await.unwrap_err().is_cancelled());
        common::assert_conserved(plan.stats());
    }));
}

#[tokio::test]
async fn a_dropped_shutdown_future_leaves_the_plan_closed() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let gate = Gate::closed();
        let task_gate = gate.clone();
        let handle = plan
            .submit(async move { task_gate.pass().await })
            .await
            .unwrap();
        let mut shutdown = task::spawn(plan.shutdown(Duration::from_secs(60)));
        assert_pending!(shutdown.poll());
        drop(shutdown);
        assert!(plan.is_closed());
        gate.open();
        handle.await.unwrap();
        let report = plan.shutdown(Duration::from_secs(60)).await;
        assert_eq!((report.completed, report.cancelled), (1, 0));
        assert!(!report.forced);
    })
    .await
}

#[cfg(feature = "signal")]
#[tokio::test]
async fn shutdown_on_signal_also_ends_when_the_plan_token_is_cancelled() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let waiting = plan.clone();
        let shutdown =
            tokio::spawn(async move { waiting.shutdown_on_signal(Duration::from_secs(60)).await });
        plan.token().cancel();
        let report = shutdown.await.unwrap();
        assert_eq!(report.cancelled, 1);
        assert!(stuck.await.unwrap_err().is_cancelled());
    })
    .await
}

// The test harness itself (`tests/common`): what every test above relies on.

#[tokio::test]
async fn the_harness_aborts_and_joins_a_plan_the_body_left_running() {
    common::bounded(async {
        let (plan, running, queued) = common::harness(async {
            let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
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
            (plan.clone(), running, queued)
        })
        .await;
        // By the time `harness` returns, the plan was aborted and joined.
        assert!(plan.is_closed() && plan.token().is_cancelled());
        assert!(running.is_finished() && queued.is_finished());
        assert!(running.await.unwrap_err().is_cancelled());
        assert!(queued.await.unwrap_err().is_cancelled());
        let stats = plan.stats();
        assert_eq!((stats.queued, stats.running, stats.cancelled), (0, 0, 2));
    })
    .await
}

#[tokio::test]
#[should_panic(expected = "did not finish within 50ms of real time")]
async fn the_harness_fails_a_body_that_hangs() {
    common::harness_within(Duration::from_millis(50), async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        stuck.await.unwrap();
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn the_harness_bound_is_real_time_so_paused_time_never_trips_it() {
    let started = Instant::now();
    common::harness_within(Duration::from_secs(5), async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let day = plan
            .submit(sleep(Duration::from_secs(86_400)))
            .await
            .unwrap();
        day.await.unwrap();
    })
    .await;
    assert_eq!(started.elapsed(), Duration::from_secs(86_400));
}

#[tokio::test]
#[should_panic(expected = "common::tracked outside a harnessed test body")]
async fn tracked_outside_the_harness_panics() {
    common::tracked(Plan::builder().workers(1).build().unwrap());
}
