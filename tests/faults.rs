//! Item 4 of the issue: fault injection. Each test injects one fault and its
//! name states the outcome the crate promises for it (README, Guarantees and
//! Design: "Nothing a task does can take a worker down"; "Every handle
//! resolves, whatever ends the task"; `TaskHandle::cancel`; `submit_with`
//! and `submit_blocking` tokens): what the handle resolves to, what the
//! counters say, whether the destructors ran, and whether the worker lives on
//! (a next task still runs on the plan's only worker).
//!
//! The faults: a future whose destructor panics (after it returned a value,
//! inside its last poll, when it is cancelled running or queued, cancelled by
//! tag, aborted, timed out, and a detached output's); a future that panics on
//! its first poll; a blocking closure that panics (while it holds its slot,
//! and after its task was cancelled and it was abandoned); the runtime
//! dropped under a plan with queued and running tasks whose handles are
//! awaited on another runtime; submitting, waiting for room, awaiting and
//! cancelling from a plain thread outside any runtime; and a task's waker
//! woken after the task finished.
//!
//! How: tasks report that they started on channels and park on gates, so the
//! test always knows where each task is; nothing sleeps for synchronization.
//! Destructor panics print their message on stderr: that is the default
//! panic hook, not a failure. Tests that drop a runtime build their own
//! runtimes, of both flavours, in plain `#[test]`s; a wait there is bounded
//! in real time (a hang fails the test).

mod common;

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{DropFlag, Gate};
use taskplan::{Plan, TaskError};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How long, in real time, a test waits for something that must happen at
/// once before it calls it a hang.
const HANG: Duration = Duration::from_secs(10);

/// Sets its flag, then panics, when dropped (unless already unwinding).
struct PanicsOnDrop {
    dropped: Arc<AtomicBool>,
    message: &'static str,
}

fn bomb(message: &'static str) -> (PanicsOnDrop, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    let bomb = PanicsOnDrop {
        dropped: Arc::clone(&dropped),
        message,
    };
    (bomb, dropped)
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
        if !std::thread::panicking() {
            panic!("{}", self.message);
        }
    }
}

/// A future that returns its value on its first poll and whose destructor
/// panics: the crate drops it after it returned.
struct ReturnsThenPanicsOnDrop {
    value: Option<u32>,
    _bomb: PanicsOnDrop,
}

impl Future for ReturnsThenPanicsOnDrop {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(self.value.take().expect("polled once"))
    }
}

/// A task that reports `n` when it starts and then waits forever, holding
/// `guard` (dropped with it).
fn parked<G: Send + 'static>(
    n: usize,
    started: &tokio::sync::mpsc::UnboundedSender<usize>,
    guard: G,
) -> impl Future<Output = ()> + Send + 'static {
    let started = started.clone();
    async move {
        let _guard = guard;
        started.send(n).unwrap();
        std::future::pending::<()>().await
    }
}

/// Checks that the only worker is alive: a next task runs.
async fn the_worker_runs_a_next_task(plan: &Plan) {
    let next = plan.submit(async { "next" }).await.unwrap();
    assert_eq!(next.await.unwrap(), "next", "the worker lives on");
}

fn assert_cancelled<T: std::fmt::Debug>(result: Result<T, TaskError>, what: &str) {
    match result {
        Err(error) if error.is_cancelled() => {}
        other => panic!("{what}: expected cancelled, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Destructors that panic.

// Outcome: the handle gets the value (the future returned before it was
// dropped), the task counts as completed, not panicked; the worker lives on.
async fn a_future_whose_destructor_panics_after_it_returned_completes_with_its_value() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (bomb, dropped) = bomb("destructor after the value");
    let handle = plan
        .submit(ReturnsThenPanicsOnDrop {
            value: Some(5),
            _bomb: bomb,
        })
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap(), 5);
    assert!(
        dropped.load(Ordering::SeqCst),
        "dropped before the handle resolved"
    );
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.panicked), (1, 0), "{stats:?}");
    the_worker_runs_a_next_task(&plan).await;
    common::join_or_fail(&plan).await;
}

// Outcome: a local of an `async` block is dropped inside the poll that
// returns, so its panic is a panic of the task: the handle reports the
// panic with the destructor's payload, and the worker lives on.
async fn a_local_whose_destructor_panics_as_the_task_returns_makes_the_task_panic() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (bomb, dropped) = bomb("local destructor");
    let handle = plan
        .submit(async move {
            let _bomb = bomb;
            5u32
        })
        .await
        .unwrap();
    let error = handle.await.unwrap_err();
    assert!(error.is_panic(), "{error:?}");
    assert_eq!(
        *error.into_panic().downcast::<String>().unwrap(),
        "local destructor"
    );
    assert!(dropped.load(Ordering::SeqCst));
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.panicked), (0, 1), "{stats:?}");
    the_worker_runs_a_next_task(&plan).await;
    common::join_or_fail(&plan).await;
}

// Outcome: cancelled (a destructor's panic is logged, not a task panic);
// the destructor ran before the handle resolved; the worker lives on.
async fn cancelling_a_running_task_whose_destructor_panics_resolves_cancelled_and_the_worker_lives_on()
 {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (started_tx, mut started_rx) = common::started_channel();
    let (bomb, dropped) = bomb("destructor on cancel, running");
    let running = plan.submit(parked(0, &started_tx, bomb)).await.unwrap();
    started_rx.recv().await.unwrap();
    running.cancel();
    assert_cancelled(running.await, "the running task");
    assert!(
        dropped.load(Ordering::SeqCst),
        "dropped before the handle resolved"
    );
    let stats = plan.stats();
    assert_eq!(
        (stats.running, stats.cancelled, stats.panicked),
        (0, 1, 0),
        "{stats:?}"
    );
    the_worker_runs_a_next_task(&plan).await;
    common::join_or_fail(&plan).await;
}

// Outcome: `cancel()` returns normally (the panic is contained where the
// future is dropped, in the caller's thread), the task never starts and is
// resolved and dropped before `cancel()` returns; the running task is
// untouched.
async fn cancelling_a_queued_task_whose_destructor_panics_returns_normally_and_it_never_starts() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let blocker = {
        let gate = gate.clone();
        let started_tx = started_tx.clone();
        plan.submit(async move {
            started_tx.send(0).unwrap();
            gate.pass().await;
        })
        .await
        .unwrap()
    };
    assert_eq!(started_rx.recv().await, Some(0));
    let (bomb, dropped) = bomb("destructor on cancel, queued");
    let queued = plan.submit(parked(1, &started_tx, bomb)).await.unwrap();

    queued.cancel();
    assert!(queued.is_finished(), "resolved before cancel() returned");
    assert!(
        dropped.load(Ordering::SeqCst),
        "dropped before cancel() returned"
    );
    assert_cancelled(queued.await, "the queued task");

    gate.open();
    blocker.await.unwrap();
    plan.wait_idle().await;
    assert_eq!(
        started_rx.try_recv().ok(),
        None,
        "the queued task never started"
    );
    let stats = plan.stats();
    assert_eq!(
        (stats.completed, stats.cancelled, stats.panicked),
        (1, 1, 0),
        "{stats:?}"
    );
    the_worker_runs_a_next_task(&plan).await;
    common::join_or_fail(&plan).await;
}

// Outcome: `cancel_tag` and then `abort` over running and queued tasks whose
// destructors all panic: every handle resolves cancelled, every destructor
// ran, nothing counts as panicked, queued tasks never start, and the abort
// returns its report.
async fn cancel_tag_and_abort_over_tasks_whose_destructors_panic_resolve_every_handle_cancelled() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let (started_tx, mut started_rx) = common::started_channel();
    let mut flags = Vec::new();
    let mut submit = |n: usize, tag: Option<&'static str>| {
        let (bomb, dropped) = bomb("destructor on cancel_tag or abort");
        flags.push(dropped);
        let task = plan.task(parked(n, &started_tx, bomb));
        match tag {
            Some(tag) => task.tag(tag).try_submit().unwrap(),
            None => task.try_submit().unwrap(),
        }
    };
    let running_tagged = submit(0, Some("sync"));
    let running = submit(1, None);
    let queued_tagged = submit(2, Some("sync"));
    let next_up = submit(3, None);
    let stays_queued = submit(4, None);
    let mut started = vec![
        started_rx.recv().await.unwrap(),
        started_rx.recv().await.unwrap(),
    ];
    started.sort_unstable();
    assert_eq!(started, [0, 1]);

    assert_eq!(plan.cancel_tag("sync"), 2, "one running, one queued");
    assert!(queued_tagged.is_finished(), "the queued one at once");
    assert_cancelled(running_tagged.await, "the running tagged task");
    assert_cancelled(queued_tagged.await, "the queued tagged task");
    // The freed worker takes the next untagged task.
    assert_eq!(started_rx.recv().await, Some(3));

    let report = plan.abort().await;
    assert_eq!(
        (
            report.completed,
            report.cancelled,
            report.panicked,
            report.forced
        ),
        (0, 5, 0, true),
        "{report:?}"
    );
    for (n, handle) in [(1, running), (3, next_up), (4, stays_queued)] {
        assert!(
            handle.is_finished(),
            "task {n} resolved when abort returned"
        );
        assert_cancelled(handle.await, "an aborted task");
    }
    for (n, dropped) in flags.iter().enumerate() {
        assert!(dropped.load(Ordering::SeqCst), "task {n}'s destructor ran");
    }
    assert_eq!(
        started_rx.try_recv().ok(),
        None,
        "tasks 2 and 4 never started"
    );
    // Its last task ended (with a panicking destructor): the plan let go
    // of the tag.
    common::assert_forgotten(&plan, "sync");
    common::join_or_fail(&plan).await;
}

// Outcome: timed out (not panicked), the destructor ran, the worker lives on.
#[tokio::test(start_paused = true)]
async fn a_task_whose_destructor_panics_when_it_times_out_reports_a_timeout() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (bomb, dropped) = bomb("destructor on timeout");
        let (started_tx, mut started_rx) = common::started_channel();
        let slow = plan
            .task(parked(0, &started_tx, bomb))
            .timeout(Duration::from_secs(2))
            .submit()
            .await
            .unwrap();
        started_rx.recv().await.unwrap();
        let error = slow.await.unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        assert!(dropped.load(Ordering::SeqCst));
        let stats = plan.stats();
        assert_eq!(
            (stats.timed_out, stats.cancelled, stats.panicked),
            (1, 0, 0),
            "{stats:?}"
        );
        the_worker_runs_a_next_task(&plan).await;
        common::join_or_fail(&plan).await;
    })
    .await
}

// Outcome (stronger than `robustness.rs`): a detached task whose output's
// destructor panics counts as completed, is settled (`wait_idle` returns),
// its tag is let go of as its last task, and the worker lives on.
async fn a_detached_output_whose_destructor_panics_counts_as_completed_and_the_worker_lives_on() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (bomb, dropped) = bomb("output destructor");
    // Held until the handle is gone: on a multi-thread runtime the task
    // could otherwise finish first, and the handle, holding the last
    // reference, would drop the output here, in the test.
    let gate = common::Gate::closed();
    let pass = gate.clone();
    drop(
        plan.task(async move {
            pass.pass().await;
            bomb
        })
        .tag("detached")
        .submit()
        .await
        .unwrap(),
    );
    gate.open();
    plan.wait_idle().await;
    assert!(dropped.load(Ordering::SeqCst), "the output was dropped");
    let stats = plan.stats();
    assert_eq!(
        (stats.running, stats.completed, stats.panicked),
        (0, 1, 0),
        "{stats:?}"
    );
    common::assert_forgotten(&plan, "detached");
    the_worker_runs_a_next_task(&plan).await;
    common::join_or_fail(&plan).await;
}

// ---------------------------------------------------------------------------
// Panics in polls.

/// A panic payload that is not a string.
#[derive(Debug, PartialEq)]
struct Code(u32);

fn fail_with(code: u32) -> u32 {
    std::panic::panic_any(Code(code))
}

// Outcome: the handle reports a panic carrying the original (non-string)
// payload; the future's locals were dropped; its token is cancelled; it
// counts as panicked; the worker lives on.
async fn a_future_that_panics_on_its_first_poll_resolves_as_a_panic_with_its_payload() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (guard, dropped) = DropFlag::new();
    let (token_tx, token_rx) = oneshot::channel::<CancellationToken>();
    let handle = plan
        .submit_with(move |token| async move {
            let _guard = guard;
            token_tx.send(token).unwrap();
            fail_with(7)
        })
        .await
        .unwrap();
    let id = handle.id();
    let error = handle.await.unwrap_err();
    assert!(error.is_panic(), "{error:?}");
    assert_eq!(error.to_string(), format!("task {id} panicked"));
    assert_eq!(*error.into_panic().downcast::<Code>().unwrap(), Code(7));
    assert!(dropped.load(Ordering::SeqCst), "its locals were dropped");
    assert!(token_rx.await.unwrap().is_cancelled(), "its token");
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.panicked), (0, 1), "{stats:?}");
    the_worker_runs_a_next_task(&plan).await;
    common::join_or_fail(&plan).await;
}

// Outcome: the handle reports the closure's panic with its payload, the
// closure's token is cancelled, the worker slot is free at once (the task
// queued behind it runs), it counts as panicked, and nothing is abandoned.
async fn a_panicking_blocking_closure_resolves_as_a_panic_frees_its_slot_and_cancels_its_token() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let (token_tx, token_rx) = std_mpsc::channel::<CancellationToken>();
    let (release_tx, release_rx) = std_mpsc::channel::<()>();
    let closure = plan
        .submit_blocking(move |token| -> u32 {
            token_tx.send(token).unwrap();
            release_rx.recv().unwrap();
            panic!("disk on fire")
        })
        .await
        .unwrap();
    let behind = plan.submit(async { "behind" }).await.unwrap();
    release_tx.send(()).unwrap();
    let error = closure.await.unwrap_err();
    assert!(error.is_panic(), "{error:?}");
    assert_eq!(
        *error.into_panic().downcast::<&str>().unwrap(),
        "disk on fire"
    );
    let token = token_rx.try_recv().expect("the closure ran");
    assert!(token.is_cancelled(), "the closure's token");
    assert_eq!(behind.await.unwrap(), "behind");
    let report = common::join_or_fail(&plan).await;
    assert_eq!(
        (report.completed, report.panicked, report.abandoned),
        (1, 1, 0),
        "{report:?}"
    );
}

on_both_runtimes!(
    a_future_whose_destructor_panics_after_it_returned_completes_with_its_value,
    a_local_whose_destructor_panics_as_the_task_returns_makes_the_task_panic,
    cancelling_a_running_task_whose_destructor_panics_resolves_cancelled_and_the_worker_lives_on,
    cancelling_a_queued_task_whose_destructor_panics_returns_normally_and_it_never_starts,
    cancel_tag_and_abort_over_tasks_whose_destructors_panic_resolve_every_handle_cancelled,
    a_detached_output_whose_destructor_panics_counts_as_completed_and_the_worker_lives_on,
    a_future_that_panics_on_its_first_poll_resolves_as_a_panic_with_its_payload,
    a_panicking_blocking_closure_resolves_as_a_panic_frees_its_slot_and_cancels_its_token,
    a_plain_thread_outside_any_runtime_submits_waits_for_room_awaits_cancels_and_aborts,
    a_waker_woken_after_its_task_finished_polls_nothing_again_and_changes_no_count,
);

// ---------------------------------------------------------------------------
// Runtimes going away.

fn runtime(multi_thread: bool) -> Runtime {
    let mut builder = if multi_thread {
        let mut builder = Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    } else {
        Builder::new_current_thread()
    };
    builder.enable_all().build().unwrap()
}

/// Awaits `future`, telling `polled` once its first poll has registered a
/// waker (returned `Pending`) or resolved.
async fn reporting_first_poll<F: Future>(future: F, polled: std_mpsc::Sender<()>) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut reported = false;
    poll_fn(move |cx| {
        let result = future.as_mut().poll(cx);
        if !std::mem::replace(&mut reported, true) {
            polled.send(()).unwrap();
        }
        result
    })
    .await
}

// Outcome: with two tasks running (one holding a panicking destructor) and
// three queued (one with a panicking destructor), dropping the plan's
// runtime resolves every handle as cancelled, including handles already
// being awaited on another runtime (woken, not left hanging); every
// destructor has run by the time the drop returns; submit_with tokens are
// cancelled; the counts add up to five cancelled; the plan is closed and
// refuses work; a submitter waiting for room on the other runtime gets its
// future back as `Closed`, and a `wait_idle` there returns; and waking a
// waker of the dead runtime is harmless.
#[test]
fn handles_awaited_on_another_runtime_resolve_cancelled_when_the_runtime_under_the_plan_drops() {
    for multi_thread in [false, true] {
        let flavour = if multi_thread {
            "multi-thread"
        } else {
            "current-thread"
        };
        let first = runtime(multi_thread);
        let (plan, handles, flags, token, stale_waker) = first.block_on(common::bounded(async {
            // Not tracked: the runtime under the plan is dropped; the plan is
            // joined on another runtime below.
            let plan = Plan::builder()
                .workers(2)
                .capacity(3)
                .name(flavour)
                .build()
                .unwrap();
            let (started_tx, mut started_rx) = common::started_channel();
            let mut flags = Vec::new();
            let mut handles = Vec::new();

            // Running: a submit_with task that hands out its token and its
            // waker, and a tagged task whose destructor panics.
            let (guard, dropped) = DropFlag::new();
            flags.push(dropped);
            let (token_tx, token_rx) = oneshot::channel();
            let waker_slot: Arc<Mutex<Option<Waker>>> = Arc::default();
            let task_waker_slot = Arc::clone(&waker_slot);
            let task_started = started_tx.clone();
            handles.push(
                plan.submit_with(move |token| async move {
                    let _guard = guard;
                    token_tx.send(token).unwrap();
                    poll_fn(|cx| {
                        if task_waker_slot
                            .lock()
                            .unwrap()
                            .replace(cx.waker().clone())
                            .is_none()
                        {
                            task_started.send(0).unwrap();
                        }
                        Poll::<()>::Pending
                    })
                    .await
                })
                .await
                .unwrap(),
            );
            let (bomb_running, dropped) = bomb("destructor with the runtime, running");
            flags.push(dropped);
            handles.push(
                plan.task(parked(1, &started_tx, bomb_running))
                    .tag("sync")
                    .submit()
                    .await
                    .unwrap(),
            );
            let mut started = [
                started_rx.recv().await.unwrap(),
                started_rx.recv().await.unwrap(),
            ];
            started.sort_unstable();
            assert_eq!(started, [0, 1], "{flavour}");

            // Queued behind them.
            let (guard, dropped) = DropFlag::new();
            flags.push(dropped);
            handles.push(plan.try_submit(parked(2, &started_tx, guard)).unwrap());
            let (bomb_queued, dropped) = bomb("destructor with the runtime, queued");
            flags.push(dropped);
            handles.push(
                plan.try_submit(parked(3, &started_tx, bomb_queued))
                    .unwrap(),
            );
            let (guard, dropped) = DropFlag::new();
            flags.push(dropped);
            handles.push(
                plan.task(parked(4, &started_tx, guard))
                    .tag("sync")
                    .try_submit()
                    .unwrap(),
            );
            let stats = plan.stats();
            assert_eq!(
                (stats.running, stats.queued),
                (2, 3),
                "{flavour}: {stats:?}"
            );
            let token = token_rx.await.unwrap();
            let stale_waker = waker_slot.lock().unwrap().clone().unwrap();
            (plan, handles, flags, token, stale_waker)
        }));

        // Another runtime awaits every handle, waits for room in the full
        // queue, and waits for the plan to go idle; each of these has been
        // polled once (and registered its waker) before the first runtime
        // drops.
        let second = runtime(true);
        let (polled_tx, polled_rx) = std_mpsc::channel();
        let waits: Vec<_> = handles
            .into_iter()
            .map(|handle| {
                let polled = polled_tx.clone();
                // The timer is made inside the second runtime.
                second.spawn(async move {
                    tokio::time::timeout(HANG, reporting_first_poll(handle, polled)).await
                })
            })
            .collect();
        let submitter = {
            let (plan, polled) = (plan.clone(), polled_tx.clone());
            second.spawn(async move {
                let waiting = reporting_first_poll(plan.submit(async { "refused" }), polled);
                tokio::time::timeout(HANG, waiting).await
            })
        };
        let idle = {
            let (plan, polled) = (plan.clone(), polled_tx.clone());
            second.spawn(async move {
                tokio::time::timeout(HANG, reporting_first_poll(plan.wait_idle(), polled)).await
            })
        };
        for _ in 0..waits.len() + 2 {
            polled_rx
                .recv_timeout(HANG)
                .unwrap_or_else(|_| panic!("{flavour}: a waiter was never polled"));
        }
        assert!(
            flags.iter().all(|dropped| !dropped.load(Ordering::SeqCst)),
            "{flavour}: nothing ended before the runtime dropped"
        );
        assert!(!submitter.is_finished() && !idle.is_finished(), "{flavour}");

        drop(first);
        for (n, dropped) in flags.iter().enumerate() {
            assert!(
                dropped.load(Ordering::SeqCst),
                "{flavour}: task {n}'s destructor ran by the time the runtime was dropped"
            );
        }
        second.block_on(common::bounded(async {
            for (n, wait) in waits.into_iter().enumerate() {
                let result = wait
                    .await
                    .unwrap()
                    .unwrap_or_else(|_| panic!("{flavour}: task {n}'s handle hangs"));
                assert_cancelled(result, &format!("{flavour}: task {n}"));
            }
            let refused = submitter
                .await
                .unwrap()
                .unwrap_or_else(|_| panic!("{flavour}: the waiting submitter hangs"))
                .unwrap_err();
            assert!(refused.is_closed(), "{flavour}: {refused:?}");
            assert_eq!(refused.into_inner().await, "refused");
            idle.await
                .unwrap()
                .unwrap_or_else(|_| panic!("{flavour}: wait_idle hangs"));
            assert!(token.is_cancelled(), "{flavour}: the submit_with token");
            let stats = plan.stats();
            assert_eq!(
                (
                    stats.submitted,
                    stats.queued,
                    stats.running,
                    stats.cancelled
                ),
                (5, 0, 0, 5),
                "{flavour}: {stats:?}"
            );
            assert_eq!(
                (stats.completed, stats.panicked, stats.timed_out),
                (0, 0, 0),
                "{flavour}: {stats:?}"
            );
            common::assert_conserved(stats);
            // Both its tasks ended as the runtime dropped them.
            common::assert_forgotten(&plan, "sync");
            assert!(
                plan.is_closed(),
                "{flavour}: no worker is left to take work"
            );
            assert!(plan.try_submit(async {}).unwrap_err().is_closed());
            // The first runtime's task is gone; waking it does nothing.
            stale_waker.wake();
            let report = common::join_or_fail(&plan).await;
            assert_eq!((report.cancelled, report.completed), (5, 0), "{flavour}");
        }));
    }
}

// Outcome: cancelling a blocking task whose closure ignores its token
// resolves it cancelled and frees its slot (the next task runs) while the
// closure is counted abandoned; when that closure later panics, with nobody
// left to tell, nothing changes: no outcome or count moves, nothing counts
// as panicked, and it is no longer counted abandoned.
#[test]
fn an_abandoned_blocking_closure_that_panics_later_changes_no_count_and_is_no_longer_abandoned() {
    for multi_thread in [false, true] {
        let flavour = if multi_thread {
            "multi-thread"
        } else {
            "current-thread"
        };
        let first = runtime(multi_thread);
        let plan = first.block_on(common::bounded(async {
            // Not tracked: joined on another runtime below, after this
            // runtime's drop has waited for the closure's thread.
            let plan = Plan::builder().workers(1).name(flavour).build().unwrap();
            let (entered_tx, entered_rx) = oneshot::channel();
            let (release_tx, release_rx) = std_mpsc::channel::<()>();
            let stubborn = plan
                .submit_blocking(move |_token| -> u32 {
                    entered_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    panic!("late failure")
                })
                .await
                .unwrap();
            entered_rx.await.unwrap();
            stubborn.cancel();
            assert_cancelled(stubborn.await, flavour);
            the_worker_runs_a_next_task(&plan).await;
            let report = plan.abort().await;
            assert_eq!(
                (report.completed, report.cancelled, report.abandoned),
                (1, 1, 1),
                "{flavour}: the closure still runs: {report:?}"
            );
            release_tx.send(()).unwrap();
            plan
        }));
        // A runtime's drop waits for its blocking threads: the closure has
        // panicked and returned when this returns.
        drop(first);
        let second = runtime(false);
        second.block_on(common::bounded(async {
            let report = common::join_or_fail(&plan).await;
            assert_eq!(
                (
                    report.completed,
                    report.cancelled,
                    report.panicked,
                    report.abandoned
                ),
                (1, 1, 0, 0),
                "{flavour}: {report:?}"
            );
        }));
    }
}

// Outcome: dropping the runtime while a blocking closure that watches its
// token runs cancels that token (the task is dropped with its supervisor),
// so the closure returns and the drop, which waits for blocking threads,
// returns too; the handle resolves cancelled and nothing is left abandoned.
#[test]
fn dropping_the_runtime_under_a_cooperative_blocking_closure_cancels_its_token_and_returns() {
    for multi_thread in [false, true] {
        let flavour = if multi_thread {
            "multi-thread"
        } else {
            "current-thread"
        };
        let first = runtime(multi_thread);
        let (plan, handle) = first.block_on(common::bounded(async {
            // Not tracked: the runtime under the plan is dropped; the plan is
            // joined on another runtime below.
            let plan = Plan::builder().workers(1).name(flavour).build().unwrap();
            let (entered_tx, entered_rx) = oneshot::channel();
            let handle = plan
                .submit_blocking(move |token| -> u32 {
                    entered_tx.send(()).unwrap();
                    // Cooperative: blocks its thread until the token is
                    // cancelled.
                    block_on(token.cancelled(), || {});
                    5
                })
                .await
                .unwrap();
            entered_rx.await.unwrap();
            (plan, handle)
        }));
        let (dropped_tx, dropped_rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            drop(first);
            dropped_tx.send(()).unwrap();
        });
        dropped_rx
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("{flavour}: the runtime's drop hangs on the closure"));
        assert!(handle.is_finished(), "{flavour}");
        let second = runtime(false);
        second.block_on(common::bounded(async {
            assert_cancelled(handle.await, flavour);
            let report = common::join_or_fail(&plan).await;
            assert_eq!(
                (report.completed, report.cancelled, report.abandoned),
                (0, 1, 0),
                "{flavour}: {report:?}"
            );
        }));
    }
}

// ---------------------------------------------------------------------------
// A plain thread outside any runtime.

/// Wakes a parked thread.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on the calling thread, outside any runtime, parking the
/// thread while it is pending; `on_pending` runs after each pending poll.
fn block_on<F: Future>(future: F, mut on_pending: impl FnMut()) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        on_pending();
        std::thread::park();
    }
}

// Outcome: from a thread with no runtime, `try_submit` queues a task that
// runs on the plan's runtime (not on that thread); `submit`, driven by a
// plain executor, waits while the queue is full and is woken when room is
// made; handles are awaited there; `cancel()` from there stops a running
// task; `abort()` from there cancels the rest and reports. (`submit`'s docs
// do not require a runtime, and none of these needs one: they touch only
// the queue, `Notify`s and wakers. `shutdown` with a grace does need one for
// its timer: see the ignored test below.)
async fn a_plain_thread_outside_any_runtime_submits_waits_for_room_awaits_cancels_and_aborts() {
    let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
    let gate = Gate::closed();
    let (waiting_tx, waiting_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<Result<(), String>>();
    let thread_plan = plan.clone();
    let thread_gate = gate.clone();
    std::thread::spawn(move || {
        let plan = thread_plan;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(move || {
            assert!(Handle::try_current().is_err(), "a plain thread");
            let here = std::thread::current().id();

            // Runs on the plan's runtime.
            let probe = plan
                .try_submit(async move {
                    (
                        Handle::try_current().is_ok(),
                        std::thread::current().id() != here,
                    )
                })
                .unwrap();
            assert_eq!(block_on(probe, || {}).unwrap(), (true, true));

            // Fill the only worker and the queue's one slot.
            let (started_tx, started_rx) = std_mpsc::channel();
            let blocker = plan
                .try_submit(async move {
                    started_tx.send(()).unwrap();
                    thread_gate.pass().await;
                    "blocker"
                })
                .unwrap();
            started_rx.recv_timeout(HANG).expect("the blocker starts");
            let queued = plan.try_submit(async { "queued" }).unwrap();
            let refused = plan.try_submit(async { "waited" }).unwrap_err();
            assert!(refused.is_full());

            // Waits for room; the test opens the gate once this is pending.
            let mut waiting_tx = Some(waiting_tx);
            let waited = block_on(plan.submit(refused.into_inner()), || {
                if let Some(waiting) = waiting_tx.take() {
                    waiting.send(()).unwrap();
                }
            })
            .unwrap();
            assert!(waiting_tx.is_none(), "submit waited for room");
            assert_eq!(block_on(blocker, || {}).unwrap(), "blocker");
            assert_eq!(block_on(queued, || {}).unwrap(), "queued");
            assert_eq!(block_on(waited, || {}).unwrap(), "waited");

            // Cancel a running task from here.
            let (started_tx, started_rx) = std_mpsc::channel();
            let stuck = plan
                .try_submit(async move {
                    started_tx.send(()).unwrap();
                    std::future::pending::<()>().await
                })
                .unwrap();
            started_rx
                .recv_timeout(HANG)
                .expect("the stuck task starts");
            stuck.cancel();
            assert_cancelled(block_on(stuck, || {}), "cancelled from a plain thread");

            // Abort from here (it needs no timer, so no runtime).
            let (started_tx, started_rx) = std_mpsc::channel();
            let stuck = plan
                .try_submit(async move {
                    started_tx.send(()).unwrap();
                    std::future::pending::<()>().await
                })
                .unwrap();
            started_rx
                .recv_timeout(HANG)
                .expect("the stuck task starts");
            let report = block_on(plan.abort(), || {});
            assert_eq!(
                (report.completed, report.cancelled, report.forced),
                (4, 2, true),
                "{report:?}"
            );
            assert!(stuck.is_finished(), "resolved when abort returned");
            assert_cancelled(block_on(stuck, || {}), "aborted from a plain thread");
        }));
        let _ = done_tx.send(outcome.map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        }));
    });
    waiting_rx.await.expect("the plain thread waits for room");
    gate.open();
    if let Err(panic) = done_rx.await.expect("the plain thread reports") {
        panic!("the plain thread failed: {panic}");
    }
    assert!(plan.is_closed(), "aborted from the plain thread");
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (4, 2), "{stats:?}");
    common::assert_conserved(stats);
    common::join_or_fail(&plan).await;
}

// `shutdown(grace)` called from a plain thread (a signal handler thread, a
// `Drop` impl, a synchronous `main` that handed its runtime off) drains and
// reports, as `abort()` does from there (test above). (Regression test: it
// once panicked, "there is no reactor running", after closing the plan and
// before draining anything, because its grace timer was made in the
// caller's context instead of the plan's runtime.)
#[test]
fn shutdown_with_a_grace_from_a_plain_thread_returns_its_report() {
    let runtime = runtime(true);
    // Not tracked: shut down from a plain thread below.
    let plan = runtime.block_on(async { Plan::builder().workers(1).build().unwrap() });
    let (report_tx, report_rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let report = block_on(plan.shutdown(Duration::from_secs(60)), || {});
        report_tx.send(report).unwrap();
    });
    let report = report_rx
        .recv_timeout(HANG)
        .expect("shutdown(grace) from a plain thread returns its report");
    assert!(!report.forced, "{report:?}");
}

// ---------------------------------------------------------------------------
// A waker woken after its task finished.

// Outcome: a task keeps its waker and returns; waking that waker later (while
// another task runs on the same worker, while the plan is idle, and after the
// plan was joined) polls nothing of the finished task again, moves no count,
// does not disturb the running task's result, and the worker keeps working.
async fn a_waker_woken_after_its_task_finished_polls_nothing_again_and_changes_no_count() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let polls = Arc::new(AtomicUsize::new(0));
    let waker_slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let finished = {
        let (polls, waker_slot) = (Arc::clone(&polls), Arc::clone(&waker_slot));
        plan.submit(poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            *waker_slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(1)
        }))
        .await
        .unwrap()
    };
    assert_eq!(finished.await.unwrap(), 1);
    let stale = waker_slot.lock().unwrap().take().unwrap();

    // The stale waker is the worker's own: wake it while another task runs.
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let running = {
        let gate = gate.clone();
        plan.submit(async move {
            started_tx.send(0).unwrap();
            gate.pass().await;
            2
        })
        .await
        .unwrap()
    };
    started_rx.recv().await.unwrap();
    for _ in 0..3 {
        stale.wake_by_ref();
        tokio::task::yield_now().await;
    }
    assert!(
        !running.is_finished(),
        "a spurious wakeup does not end a task"
    );
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.running), (1, 1), "{stats:?}");
    gate.open();
    assert_eq!(running.await.unwrap(), 2);

    // And while the worker is idle.
    plan.wait_idle().await;
    stale.wake_by_ref();
    tokio::task::yield_now().await;
    the_worker_runs_a_next_task(&plan).await;

    let report = common::join_or_fail(&plan).await;
    // And once every worker has exited.
    stale.wake();
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "the finished task was polled once"
    );
    assert_eq!(
        (report.completed, report.cancelled, report.panicked),
        (3, 0, 0),
        "{report:?}"
    );
    assert_eq!(plan.stats().completed, 3);
}
