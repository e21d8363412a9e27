//! Issue 11, first half: a handle polled with a waker whose `wake` panics.
//!
//! A `TaskHandle` is an ordinary future, so whoever polls it chooses its
//! waker, and that waker's `wake` is user code. Each test polls a handle once
//! with a waker that panics when woken, then ends the task one way
//! (completion, panic, timeout, cancel through the handle while it runs or
//! while it is queued, `cancel_tag`, `abort`, the runtime dropping the
//! supervisors), and checks what the crate promises for a panic in user
//! code: it is contained, the plan's bookkeeping finishes (`wait_idle`,
//! `shutdown` and a second `abort` return), the worker lives on (a next task
//! runs on the only worker), and the handle's result is still there for a
//! poll with a good waker.
//!
//! Time is paused, and every wait goes through `common::or_hang`, a
//! timeout of an hour only to turn a hang into a failure: under paused time
//! a hang reaches it at once, and nothing else does. The wakers' panics
//! print their message on stderr: that is the default panic hook, not a
//! failure.

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use taskplan::{Plan, TaskError};
use tokio::sync::Notify;

/// A waker that reports being woken and then panics.
#[derive(Default)]
struct PanickingWaker {
    woken: Notify,
    wakes: AtomicUsize,
}

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.notify_one();
        panic!("a handle's waker panics");
    }
}

impl PanickingWaker {
    /// Waits until the waker was woken (and panicked).
    async fn woken(&self) {
        common::or_hang(self.woken.notified(), "the handle's waker is never woken").await;
    }
}

/// Polls `future` (a handle, or one of the plan's own waiters) once with a
/// [`PanickingWaker`], which it keeps until it is polled again or dropped.
fn poll_with_panicking_waker<F: Future + Unpin>(future: &mut F) -> Arc<PanickingWaker> {
    let waker = Arc::new(PanickingWaker::default());
    let polled = Pin::new(future).poll(&mut Context::from_waker(&Waker::from(Arc::clone(&waker))));
    assert!(polled.is_pending(), "the future is still waiting");
    waker
}

/// A one-worker plan, tracked by the harness.
fn one_worker_plan() -> Plan {
    common::tracked(Plan::builder().workers(1).name("wakers").build().unwrap())
}

/// A task that reports that it started and then waits forever.
fn parked(
    started: &tokio::sync::mpsc::UnboundedSender<()>,
) -> impl Future<Output = ()> + Send + 'static {
    let started = started.clone();
    async move {
        started.send(()).unwrap();
        std::future::pending::<()>().await
    }
}

fn assert_cancelled<T: std::fmt::Debug>(result: Result<T, TaskError>, what: &str) {
    match result {
        Err(error) if error.is_cancelled() => {}
        other => panic!("{what}: expected cancelled, got {other:?}"),
    }
}

/// Runs `action`, failing the test if it unwinds.
fn returns_normally<R>(action: impl FnOnce() -> R, what: &str) -> R {
    std::panic::catch_unwind(AssertUnwindSafe(action))
        .unwrap_or_else(|_| panic!("{what} unwound with the handle waker's panic"))
}

#[tokio::test(start_paused = true)]
async fn a_task_that_completes_resolves_its_handle_and_the_worker_lives_on() {
    common::harness(async {
        let plan = one_worker_plan();
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let mut handle = plan
            .submit(async move {
                pass.pass().await;
                7
            })
            .await
            .unwrap();
        let waker = poll_with_panicking_waker(&mut handle);
        gate.open();
        waker.woken().await;
        assert_eq!(common::or_hang(&mut handle, "the handle").await.unwrap(), 7);
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().completed, 2);
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_task_that_panics_resolves_its_handle_with_the_panic_and_the_worker_lives_on() {
    common::harness(async {
        let plan = one_worker_plan();
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let mut handle = plan
            .submit(async move {
                pass.pass().await;
                panic!("the task panics");
            })
            .await
            .unwrap();
        let waker = poll_with_panicking_waker(&mut handle);
        gate.open();
        waker.woken().await;
        let error = common::or_hang(&mut handle, "the handle")
            .await
            .unwrap_err();
        assert!(error.is_panic(), "{error:?}");
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().panicked, 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_task_that_times_out_resolves_its_handle_with_the_timeout_and_the_worker_lives_on() {
    common::harness(async {
        let plan = one_worker_plan();
        let mut handle = plan
            .task(std::future::pending::<()>())
            .timeout(Duration::from_secs(1))
            .submit()
            .await
            .unwrap();
        let waker = poll_with_panicking_waker(&mut handle);
        // Paused time jumps to the deadline once everything waits.
        waker.woken().await;
        let error = common::or_hang(&mut handle, "the handle")
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().timed_out, 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_running_task_through_its_handle_resolves_it_and_the_worker_lives_on() {
    common::harness(async {
        let plan = one_worker_plan();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut handle = plan.submit(parked(&started_tx)).await.unwrap();
        started_rx.recv().await.unwrap();
        let waker = poll_with_panicking_waker(&mut handle);
        returns_normally(|| handle.cancel(), "cancel()");
        waker.woken().await;
        assert_cancelled(
            common::or_hang(&mut handle, "the handle").await,
            "the running task",
        );
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().cancelled, 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_queued_task_through_its_handle_returns_normally_and_settles_it() {
    common::harness(async {
        let plan = one_worker_plan();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let blocker = plan.submit(parked(&started_tx)).await.unwrap();
        started_rx.recv().await.unwrap();
        let mut queued = plan.submit(async { 1 }).await.unwrap();
        let waker = poll_with_panicking_waker(&mut queued);
        returns_normally(|| queued.cancel(), "cancel() of a queued task");
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1, "woken by the cancel");
        assert_cancelled(
            common::or_hang(&mut queued, "the handle").await,
            "the queued task",
        );
        blocker.cancel();
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().cancelled, 2);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancel_tag_over_running_and_queued_tasks_returns_normally_and_settles_them() {
    common::harness(async {
        let plan = one_worker_plan();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut running = plan
            .task(parked(&started_tx))
            .tag("doomed")
            .submit()
            .await
            .unwrap();
        started_rx.recv().await.unwrap();
        let mut queued = plan.task(async { 1 }).tag("doomed").submit().await.unwrap();
        let running_waker = poll_with_panicking_waker(&mut running);
        let queued_waker = poll_with_panicking_waker(&mut queued);
        let cancelled = returns_normally(|| plan.cancel_tag("doomed"), "cancel_tag");
        assert_eq!(cancelled, 2);
        queued_waker.woken().await;
        running_waker.woken().await;
        assert_cancelled(
            common::or_hang(&mut queued, "the queued handle").await,
            "queued",
        );
        assert_cancelled(
            common::or_hang(&mut running, "the running handle").await,
            "running",
        );
        common::the_plan_keeps_working(&plan).await;
        let stats = plan.stats();
        assert_eq!(stats.cancelled, 2, "{stats:?}");
        common::assert_forgotten(&plan, "doomed");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn abort_with_panicking_handle_wakers_returns_settles_every_task_and_can_be_repeated() {
    common::harness(async {
        let plan = one_worker_plan();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut handles = vec![plan.submit(parked(&started_tx)).await.unwrap()];
        started_rx.recv().await.unwrap();
        for _ in 0..3 {
            handles.push(plan.submit(parked(&started_tx)).await.unwrap());
        }
        let wakers: Vec<_> = handles.iter_mut().map(poll_with_panicking_waker).collect();
        // Aborted on a task of its own, so that an abort that unwinds shows
        // as a panic of that task rather than of the test.
        let aborting = plan.clone();
        let first = tokio::spawn(async move { aborting.abort().await });
        let report = common::or_hang(first, "the first abort")
            .await
            .expect("the first abort returns, without the wakers' panics");
        assert_eq!(report.cancelled, 4, "{report:?}");
        let again = common::or_hang(plan.abort(), "a second abort").await;
        assert_eq!(again.cancelled, 4, "{again:?}");
        for waker in &wakers {
            waker.woken().await;
        }
        for handle in &mut handles {
            assert_cancelled(common::or_hang(handle, "a handle").await, "an aborted task");
        }
        common::or_hang(plan.wait_idle(), "wait_idle").await;
        let stats = plan.stats();
        assert_eq!((stats.queued, stats.running, stats.cancelled), (0, 0, 4));
    })
    .await;
}

/// Polls once with a no-op waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

// The runtime under the plan is dropped with one task running and two
// queued, all three handles polled with panicking wakers: every handle
// resolves cancelled, and the plan's bookkeeping finishes, so `wait_idle`
// (on another runtime) returns.
#[test]
fn dropping_the_runtime_under_the_plan_resolves_and_settles_every_task() {
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (plan, mut handles, wakers) = first.block_on(common::bounded(async {
        // Not tracked: the runtime under the plan is dropped; the plan is
        // waited for on another runtime below.
        let plan = Plan::builder().workers(1).build().unwrap();
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut handles = vec![plan.submit(parked(&started_tx)).await.unwrap()];
        started_rx.recv().await.unwrap();
        for _ in 0..2 {
            handles.push(plan.submit(parked(&started_tx)).await.unwrap());
        }
        let wakers: Vec<_> = handles.iter_mut().map(poll_with_panicking_waker).collect();
        (plan, handles, wakers)
    }));
    drop(first);
    for (n, waker) in wakers.iter().enumerate() {
        assert_eq!(waker.wakes.load(Ordering::SeqCst), 1, "handle {n} woken");
    }
    for handle in &mut handles {
        match poll_once(handle) {
            std::task::Poll::Ready(result) => assert_cancelled(result, "a task of the runtime"),
            std::task::Poll::Pending => panic!("a handle never resolves: {:?}", plan.stats()),
        }
    }
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second
        .block_on(common::within(Duration::from_secs(10), plan.wait_idle()))
        .unwrap_or_else(|| panic!("wait_idle hangs: {:?}", plan.stats()));
    let stats = plan.stats();
    assert_eq!((stats.queued, stats.running, stats.cancelled), (0, 0, 3));
}

// A waker's panic is logged at ERROR with the plan, the task and its tag,
// both where a supervisor ends the task and where a cancel takes it off the
// queue.
#[tokio::test(start_paused = true)]
async fn a_handle_wakers_panic_is_logged_with_plan_task_and_tag() {
    common::harness(async {
        let (captured, _default) = common::Captured::install();
        let plan = one_worker_plan();
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let mut running = plan
            .task(async move { pass.pass().await })
            .tag("sync")
            .submit()
            .await
            .unwrap();
        let mut queued = plan.task(async {}).tag("later").submit().await.unwrap();
        let running_waker = poll_with_panicking_waker(&mut running);
        let _queued_waker = poll_with_panicking_waker(&mut queued);
        queued.cancel();
        gate.open();
        running_waker.woken().await;
        common::or_hang(plan.wait_idle(), "wait_idle").await;
        for (handle, tag) in [(running.id(), "sync"), (queued.id(), "later")] {
            let line = captured.line_containing(&format!("task={handle} "));
            assert!(line.contains("ERROR"), "{line}");
            assert!(line.contains("a task handle's waker panicked"), "{line}");
            assert!(line.contains("plan=\"wakers\""), "{line}");
            assert!(line.contains(&format!("tag=\"{tag}\"")), "{line}");
            assert!(line.contains("panic=\"a handle's waker panics\""), "{line}");
        }
    })
    .await;
}

// The same for a waker on a task's own token (`submit_with`): cancelling the
// task cancels its token, which wakes whatever waits on it. A panic of that
// waker is contained too.
#[tokio::test(start_paused = true)]
async fn a_panicking_waker_on_a_tasks_own_token_does_not_take_the_worker_down() {
    common::harness(async {
        let plan = one_worker_plan();
        let (token_tx, token_rx) = tokio::sync::oneshot::channel();
        let mut handle = plan
            .submit_with(move |token| async move {
                token_tx.send(token).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        let token = token_rx.await.unwrap();
        let waker = Arc::new(PanickingWaker::default());
        let mut cancelled = Box::pin(token.cancelled());
        let polled = cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&Waker::from(Arc::clone(&waker))));
        assert!(polled.is_pending());
        returns_normally(|| handle.cancel(), "cancel()");
        waker.woken().await;
        assert!(token.is_cancelled());
        assert_cancelled(common::or_hang(&mut handle, "the handle").await, "the task");
        common::the_plan_keeps_working(&plan).await;
    })
    .await;
}

/// The plan's own waiters are user futures too: `wait_idle()` polled with a
/// waker that panics is woken by the supervisor that settles the last task,
/// and that panic must not take the supervisor down.
#[tokio::test(start_paused = true)]
async fn a_wait_idle_polled_with_a_panicking_waker_does_not_take_the_worker_down() {
    common::harness(async {
        let plan = one_worker_plan();
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let task = plan.submit(async move { pass.pass().await }).await.unwrap();
        let mut waiting = Box::pin(plan.wait_idle());
        let waker = poll_with_panicking_waker(&mut waiting);
        gate.open();
        waker.woken().await;
        common::or_hang(task, "the task").await.unwrap();
        drop(waiting);
        common::the_plan_keeps_working(&plan).await;
    })
    .await;
}

/// A submit waiting for room, polled with a waker that panics, is woken by
/// the supervisor that takes a task off the full queue: the panic must not
/// take the supervisor down, and the waiting submit still gets its room.
#[tokio::test(start_paused = true)]
async fn a_submit_waiting_for_room_polled_with_a_panicking_waker_does_not_take_the_worker_down() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let first = plan.submit(async move { pass.pass().await }).await.unwrap();
        let queued = plan.submit(async {}).await.unwrap();
        let mut waiting = Box::pin(plan.submit(async { "third" }));
        let waker = poll_with_panicking_waker(&mut waiting);
        gate.open();
        waker.woken().await;
        let third = common::or_hang(waiting, "the waiting submit")
            .await
            .unwrap();
        for handle in [first, queued] {
            common::or_hang(handle, "a queued task").await.unwrap();
        }
        assert_eq!(
            common::or_hang(third, "the third task").await.unwrap(),
            "third"
        );
        common::the_plan_keeps_working(&plan).await;
    })
    .await;
}

/// `closed()` and the plan's token polled with wakers that panic: closing
/// and aborting the plan wake them, return normally, and can be repeated.
#[tokio::test(start_paused = true)]
async fn closed_and_token_waiters_with_panicking_wakers_do_not_break_close_or_abort() {
    common::harness(async {
        let plan = one_worker_plan();
        let mut closed = Box::pin(plan.closed());
        let token = plan.token();
        let mut cancelled = Box::pin(token.cancelled());
        let closed_waker = poll_with_panicking_waker(&mut closed);
        let token_waker = poll_with_panicking_waker(&mut cancelled);
        assert!(returns_normally(|| plan.close(), "close()"));
        assert_eq!(closed_waker.wakes.load(Ordering::SeqCst), 1);
        let report = returns_normally(|| common::or_hang(plan.abort(), "abort"), "abort()").await;
        assert!(!report.forced, "nothing was running or queued");
        assert_eq!(token_waker.wakes.load(Ordering::SeqCst), 1);
        common::or_hang(plan.abort(), "a second abort").await;
        assert!(plan.is_closed() && plan.token().is_cancelled());
        drop((closed, cancelled));
    })
    .await;
}
