//! Mutation testing: these mutants of the task cell (`src/engine/cell.rs`,
//! then `src/task.rs`) change nothing this matrix can see, and are killed by
//! unit tests of the cell instead (`engine::cell::tests::lifecycle::mutants`):
//!
//! - `replace Header::is_queued -> bool with true`: `Shared::cancel` also
//!   asks `Queue::holds`, which alone decides; `is_queued` only spares the
//!   lookup.
//! - `replace Header::mark_unqueued_for_cancel with ()` (and its `| with
//!   &`): a task a cancel took off the queue is dropped right after, which
//!   marks it DONE; in between, a second cancel finds it neither in the
//!   queue (`holds`) nor running, marked or not.
//! - `replace match guard waker.will_wake(cx.waker()) with false` in
//!   `Core::register` (was `Core::poll_output`): it stores a clone of a waker equal to the one it
//!   holds, which costs a clone and changes no wakeup.
//!
//! Two survive, equivalent: `replace | with ^` in
//! `mark_unqueued_for_cancel` (`RUNNING ^ CANCEL` is the same constant), and
//! `delete match arm DONE in Header::request_cancel` (the general arm's
//! `fetch_or` on a DONE task reports `AlreadyDone` too; the arm only spares
//! the write).
//!
//! Item 5 of the issue: a cancel matrix, in the manner of Java's
//! `StructuredTaskScope` tests. Every way to stop a task (its handle,
//! `cancel_tag`, `abort`, the parent token given to `PlanBuilder::token`, a
//! per-task timeout) meets it at every moment of its life (queued, just
//! started, mid-run, finishing, finished), on both runtime flavours; each of
//! the 50 cells is its own test and asserts one outcome: the handle's result,
//! how often the future was polled, that its destructor had run when the
//! handle resolved, the plan's counters, that the plan let go of the task's
//! tag once it ended, what `cancel_tag` or `abort` returned, and whether the
//! worker runs a next task.
//!
//! How: the target task is a [`Probe`] that reports every poll on a channel
//! and keeps its last waker, so the test knows exactly where the task is and
//! can wake it; nothing sleeps for synchronization. One worker, so "queued"
//! means behind a blocker that holds the only worker.
//!
//! The moments, precisely:
//! - *queued*: the only worker runs a blocker; the target was never polled.
//! - *just started*: the target was polled once and is parked.
//! - *mid-run*: the test woke it once more; it was polled a second time and
//!   is parked again.
//! - *finishing*: the target's waker has been woken and its next poll would
//!   return its value, and the cancel lands before that poll. To make this
//!   exact on both flavours, the cancel runs inside the target's second poll,
//!   just after the target woke itself and armed its value (the supervisor
//!   is busy polling it, so its next poll cannot come first). Who wins is
//!   documented: a cancelled running task "is dropped at the supervisor's
//!   next poll" (`TaskHandle::cancel`, `Plan::cancel_tag`), and "after an
//!   abort or past its deadline a task is not polled again, not even by the
//!   wakeup that brought the news" (README, Design). So the cancel wins:
//!   the handle reports cancelled and the value is never produced. For the
//!   timeout, the finishing target's own timer fires at its deadline (it
//!   started it at its first poll for the same duration), so the wakeup and
//!   the deadline arrive together; the clock goes first, and it times out.
//! - *finished*: the task returned its value and its handle has resolved
//!   (awaited only after the cancel): a cancel then changes nothing.
//!
//! Time: on the current-thread runtime every cell runs under paused time, so
//! the timeout column is exact (a task times out at its deadline, to the
//! timer wheel's 1 ms tick, however loaded the machine). Tokio
//! allows paused time only on that runtime, so on the multi-thread runtime
//! the timeout column uses short real deadlines and each of its cells is
//! built so that its outcome does not depend on how fast the machine is: a
//! task that completes on its first poll cannot time out (its first poll
//! goes before the clock), a parked task that nothing wakes can only time
//! out, and a finishing task's own timer can never fire before the plan's
//! (it starts later, with the same duration, on the same timer wheel). Only
//! *mid-run* needs the second poll to come before a real deadline; if a
//! loaded machine lets the deadline pass first (seen as one poll instead of
//! two), the cell still asserts the timeout and is run again with a ten
//! times longer deadline, up to three times.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{DropFlag, Gate};
use taskplan::{Plan, ShutdownReport, TaskError, TaskHandle};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// What the target returns if it is let finish.
const VALUE: u32 = 42;
/// The target's tag; nothing else in a cell carries it.
const TAG: &str = "cell";
/// The timeout under paused (virtual) time.
const PAUSED_TIMEOUT: Duration = Duration::from_secs(10);
/// The timer wheel's resolution.
const TICK: Duration = Duration::from_millis(1);
/// Real timeouts on the multi-thread runtime, tried in turn by the one cell
/// that needs to win a race against a real deadline (timeout x mid-run).
const REAL_TIMEOUTS: [Duration; 3] = [
    Duration::from_millis(30),
    Duration::from_millis(300),
    Duration::from_secs(3),
];

/// How the task is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `TaskHandle::cancel`.
    Handle,
    /// `Plan::cancel_tag` of the target's tag.
    Tag,
    /// `Plan::abort`.
    Abort,
    /// Cancelling the parent token given to `PlanBuilder::token`.
    ParentToken,
    /// The target's own timeout (`TaskBuilder::timeout`).
    Timeout,
}

/// When the stop meets the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    Queued,
    JustStarted,
    MidRun,
    Finishing,
    Finished,
}

/// How the target's handle resolved.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Value(u32),
    Cancelled,
    TimedOut,
}

impl Outcome {
    fn of(result: Result<u32, TaskError>) -> Outcome {
        match result {
            Ok(value) => Outcome::Value(value),
            Err(error) if error.is_cancelled() => Outcome::Cancelled,
            Err(error) if error.is_timeout() => Outcome::TimedOut,
            Err(error) => panic!("the target panicked: {error}"),
        }
    }
}

/// The single expected outcome of a cell, with how often the target is
/// polled in all.
fn expected(kind: Kind, moment: Moment) -> (Outcome, usize) {
    use Moment::*;
    match (kind, moment) {
        // A timeout counts from the start: a task queued past its timeout
        // still runs (here it returns at its first poll).
        (Kind::Timeout, Queued) => (Outcome::Value(VALUE), 1),
        // A cancelled queued task never starts.
        (_, Queued) => (Outcome::Cancelled, 0),
        (Kind::Timeout, JustStarted) => (Outcome::TimedOut, 1),
        (_, JustStarted) => (Outcome::Cancelled, 1),
        (Kind::Timeout, MidRun) => (Outcome::TimedOut, 2),
        (_, MidRun) => (Outcome::Cancelled, 2),
        // The clock goes first: the target's own timer woke it at the
        // deadline, but it is not polled again.
        (Kind::Timeout, Finishing) => (Outcome::TimedOut, 1),
        // The cancel lands during the second poll; no third poll.
        (_, Finishing) => (Outcome::Cancelled, 2),
        // A finished task keeps its value.
        (_, Finished) => (Outcome::Value(VALUE), 1),
    }
}

/// What the target and the test share.
struct ProbeState {
    polls: AtomicUsize,
    /// The waker of the target's last poll.
    waker: Mutex<Option<Waker>>,
    /// Once set, the next poll returns `VALUE`.
    finish: AtomicBool,
    /// Runs inside the poll with the given number, after the target woke
    /// itself and armed `finish`: the *finishing* moment.
    hook: Mutex<Option<(usize, Hook)>>,
    /// Each poll's number, sent at the end of that poll.
    polled: mpsc::UnboundedSender<usize>,
}

type Hook = Box<dyn FnOnce() + Send>;

/// An `abort()` in progress, owned so that it can outlive the hook that
/// started it.
type AbortInProgress = Pin<Box<dyn Future<Output = ShutdownReport> + Send>>;

/// The target task: reports its polls, keeps its waker, returns `VALUE`
/// once told to (or once its own timer fires), and sets a flag when dropped.
struct Probe {
    state: Arc<ProbeState>,
    /// Start a timer of this length at the first poll; return when it fires.
    own_timer: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    _dropped: DropFlag,
}

impl Future for Probe {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let this = &mut *self;
        let state = Arc::clone(&this.state);
        let poll = state.polls.fetch_add(1, Ordering::SeqCst) + 1;
        *state.waker.lock().unwrap() = Some(cx.waker().clone());
        if let Some(after) = this.own_timer.take() {
            this.timer = Some(Box::pin(tokio::time::sleep(after)));
        }
        let timer_ready = this
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        // Only a wakeup by the timer arms the value: if a stalled thread let
        // the timer run out within the first poll, the plan's deadline (no
        // later than the timer's) has passed too, and nothing wakes this.
        let timer_fired = timer_ready && poll > 1;
        let result = if timer_fired || state.finish.load(Ordering::SeqCst) {
            Poll::Ready(VALUE)
        } else {
            let hook = {
                let mut slot = state.hook.lock().unwrap();
                match slot.take() {
                    Some((at, hook)) if at == poll => Some(hook),
                    other => {
                        *slot = other;
                        None
                    }
                }
            };
            if let Some(hook) = hook {
                // Woken, and the next poll returns the value...
                state.finish.store(true, Ordering::SeqCst);
                cx.waker().wake_by_ref();
                // ...but the cancel comes first.
                hook();
            }
            Poll::Pending
        };
        let _ = state.polled.send(poll);
        result
    }
}

/// What a cancel acts on, shareable with a hook that runs inside the
/// target's poll.
#[derive(Clone)]
struct Stopper {
    kind: Kind,
    plan: Plan,
    parent: CancellationToken,
    /// The target's handle, while a hook may need it.
    handle: Arc<Mutex<Option<TaskHandle<u32>>>>,
    /// What `cancel_tag` returned.
    tag_cancelled: Arc<Mutex<Option<usize>>>,
    /// The `abort` started by a cancel, polled once already.
    abort: Arc<Mutex<Option<AbortInProgress>>>,
}

impl Stopper {
    /// Stops the target now, synchronously: what can be done without an
    /// `.await` (an abort is started and polled once, which is when it
    /// drains the queue and cancels the token; its report is awaited later).
    /// The timeout needs no action: it stops the task by itself.
    fn stop(&self, handle: Option<&TaskHandle<u32>>) {
        match self.kind {
            Kind::Handle => match handle {
                Some(handle) => handle.cancel(),
                None => self
                    .handle
                    .lock()
                    .unwrap()
                    .as_ref()
                    .expect("the hook's handle is in place")
                    .cancel(),
            },
            Kind::Tag => *self.tag_cancelled.lock().unwrap() = Some(self.plan.cancel_tag(TAG)),
            Kind::Abort => {
                let plan = self.plan.clone();
                let mut abort: AbortInProgress = Box::pin(async move { plan.abort().await });
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(report) = abort.as_mut().poll(&mut cx) {
                    abort = Box::pin(std::future::ready(report));
                }
                *self.abort.lock().unwrap() = Some(abort);
            }
            Kind::ParentToken => self.parent.cancel(),
            Kind::Timeout => {}
        }
    }

    async fn abort_report(&self) -> Option<ShutdownReport> {
        let abort = self.abort.lock().unwrap().take();
        match abort {
            Some(abort) => Some(abort.await),
            None => None,
        }
    }
}

/// Why an attempt could not show its moment (only a real deadline can
/// spoil one).
struct DeadlineCameFirst;

async fn cell(kind: Kind, moment: Moment) {
    let paused = Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread;
    if paused {
        tokio::time::pause();
    }
    let timeouts: &[Duration] = if paused {
        &[PAUSED_TIMEOUT]
    } else {
        &REAL_TIMEOUTS
    };
    for (attempt, &timeout) in timeouts.iter().enumerate() {
        match run(kind, moment, timeout, paused).await {
            Ok(()) => return,
            Err(DeadlineCameFirst) => {
                eprintln!(
                    "{kind:?} x {moment:?}: attempt {attempt} with a {timeout:?} deadline \
                     lost its race against the clock; trying a longer one"
                )
            }
        }
    }
    panic!("{kind:?} x {moment:?}: the deadline beat the second poll at every timeout tried");
}

async fn run(
    kind: Kind,
    moment: Moment,
    timeout: Duration,
    paused: bool,
) -> Result<(), DeadlineCameFirst> {
    let flavour = Handle::current().runtime_flavor();
    let cell = format!("cell {kind:?} x {moment:?} on {flavour:?}");
    let parent = CancellationToken::new();
    let plan = common::tracked(
        Plan::builder()
            .workers(1)
            .token(parent.clone())
            .name(cell.clone())
            .build()
            .unwrap(),
    );

    let (polled_tx, mut polled_rx) = mpsc::unbounded_channel();
    let state = Arc::new(ProbeState {
        polls: AtomicUsize::new(0),
        waker: Mutex::new(None),
        finish: AtomicBool::new(matches!(moment, Moment::Queued | Moment::Finished)),
        hook: Mutex::new(None),
        polled: polled_tx,
    });
    let (drop_flag, dropped) = DropFlag::new();
    let probe = Probe {
        state: Arc::clone(&state),
        own_timer: (kind == Kind::Timeout && moment == Moment::Finishing).then_some(timeout),
        timer: None,
        _dropped: drop_flag,
    };
    let wake_target = || {
        state
            .waker
            .lock()
            .unwrap()
            .as_ref()
            .expect("the target was polled")
            .wake_by_ref()
    };

    // Queued: an untagged blocker holds the only worker.
    let gate = Gate::closed();
    let blocker = if moment == Moment::Queued {
        let (started_tx, started_rx) = oneshot::channel();
        let gate = gate.clone();
        let blocker = plan
            .submit(async move {
                started_tx.send(()).unwrap();
                gate.pass().await;
            })
            .await
            .unwrap();
        started_rx.await.unwrap();
        Some(blocker)
    } else {
        None
    };

    let submitted_at = Instant::now();
    let mut target = plan.task(probe).tag(TAG);
    if kind == Kind::Timeout {
        target = target.timeout(timeout);
    }
    let mut handle = target.submit().await.unwrap();
    let stopper = Stopper {
        kind,
        plan: plan.clone(),
        parent: parent.clone(),
        handle: Arc::new(Mutex::new(None)),
        tag_cancelled: Arc::new(Mutex::new(None)),
        abort: Arc::new(Mutex::new(None)),
    };

    match moment {
        Moment::Queued => {
            assert_eq!(
                (plan.stats().queued, plan.stats().running),
                (1, 1),
                "{cell}"
            );
            if kind == Kind::Timeout {
                // The deadline passes while the target waits in the queue.
                tokio::time::sleep(timeout * 2).await;
                gate.open();
            } else {
                stopper.stop(Some(&handle));
            }
            if matches!(kind, Kind::Handle | Kind::Tag) {
                // Removed, dropped and resolved before the call returned.
                assert!(handle.is_finished(), "{cell}: resolved at once");
                assert!(dropped.load(Ordering::SeqCst), "{cell}: dropped at once");
                gate.open();
            }
        }
        Moment::JustStarted => {
            assert_eq!(polled_rx.recv().await, Some(1), "{cell}");
            stopper.stop(Some(&handle));
        }
        Moment::MidRun => {
            assert_eq!(polled_rx.recv().await, Some(1), "{cell}");
            wake_target();
            tokio::select! {
                biased;
                second = polled_rx.recv() => assert_eq!(second, Some(2), "{cell}"),
                // Only a real deadline can get here first.
                result = &mut handle => {
                    assert!(!paused, "{cell}: resolved before its second poll");
                    assert_eq!(Outcome::of(result), Outcome::TimedOut, "{cell}");
                    join(&plan, &cell).await;
                    return Err(DeadlineCameFirst);
                }
            }
            stopper.stop(Some(&handle));
        }
        Moment::Finishing => {
            if kind != Kind::Timeout {
                // The handle goes where the hook can reach it.
                *stopper.handle.lock().unwrap() = Some(handle);
                let hook_stopper = stopper.clone();
                *state.hook.lock().unwrap() = Some((2, Box::new(move || hook_stopper.stop(None))));
                assert_eq!(polled_rx.recv().await, Some(1), "{cell}");
                wake_target();
                assert_eq!(polled_rx.recv().await, Some(2), "{cell}: the hook ran");
                handle = stopper.handle.lock().unwrap().take().unwrap();
            } else {
                assert_eq!(polled_rx.recv().await, Some(1), "{cell}");
            }
        }
        Moment::Finished => {
            plan.wait_idle().await;
            assert!(handle.is_finished(), "{cell}: finished before the stop");
            if kind == Kind::Timeout {
                // The deadline passes after the task returned.
                tokio::time::sleep(timeout * 2).await;
            } else {
                stopper.stop(Some(&handle));
            }
        }
    }

    let result = handle.await;
    let ended_after = submitted_at.elapsed();
    assert!(
        dropped.load(Ordering::SeqCst),
        "{cell}: the future was dropped before its handle resolved"
    );
    let (outcome, polls) = expected(kind, moment);
    assert_eq!(Outcome::of(result), outcome, "{cell}: the handle's result");
    assert_eq!(
        state.polls.load(Ordering::SeqCst),
        polls,
        "{cell}: how often the target was polled"
    );
    if kind == Kind::Timeout && outcome == Outcome::TimedOut {
        // Paused, the clock jumps straight to the deadline, rounded up to
        // the timer wheel's 1 ms tick (the clock was paused mid-tick).
        let latest = if paused {
            timeout + TICK
        } else {
            Duration::MAX
        };
        assert!(
            (timeout..=latest).contains(&ended_after),
            "{cell}: timed out after {ended_after:?}, deadline {timeout:?}"
        );
    }

    // What the stop itself returned.
    if kind == Kind::Tag {
        let expected = usize::from(moment != Moment::Finished);
        assert_eq!(
            *stopper.tag_cancelled.lock().unwrap(),
            Some(expected),
            "{cell}: cancel_tag's count"
        );
    }
    let report = stopper.abort_report().await;
    if kind == Kind::Abort {
        let report = report.unwrap_or_else(|| panic!("{cell}: abort was called"));
        let (completed, cancelled, forced) = match moment {
            Moment::Queued => (0, 2, true),
            Moment::Finished => (1, 0, false),
            _ => (0, 1, true),
        };
        assert_eq!(
            (
                report.completed,
                report.cancelled,
                report.timed_out,
                report.forced
            ),
            (completed, cancelled, 0, forced),
            "{cell}: the abort's report"
        );
    }

    // The blocker: untouched by a per-task stop, cancelled by a plan-wide one.
    if let Some(blocker) = blocker {
        let blocker = blocker.await;
        match kind {
            Kind::Abort | Kind::ParentToken => {
                assert!(blocker.unwrap_err().is_cancelled(), "{cell}: the blocker");
            }
            _ => blocker.unwrap_or_else(|error| panic!("{cell}: the blocker: {error}")),
        }
    }

    // The counters, once everything has settled.
    plan.wait_idle().await;
    let stats = plan.stats();
    let blocker_completed =
        moment == Moment::Queued && !matches!(kind, Kind::Abort | Kind::ParentToken);
    let blocker_cancelled = moment == Moment::Queued && !blocker_completed;
    let (mut completed, mut cancelled, mut timed_out) = (0, 0, 0);
    match outcome {
        Outcome::Value(_) => completed += 1,
        Outcome::Cancelled => cancelled += 1,
        Outcome::TimedOut => timed_out += 1,
    }
    // The task was its tag's only one: once it ended, the plan let go of
    // the tag, whichever way it ended.
    common::assert_forgotten(&plan, TAG);
    completed += usize::from(blocker_completed);
    cancelled += usize::from(blocker_cancelled);
    assert_eq!(
        (
            stats.queued,
            stats.running,
            stats.completed,
            stats.cancelled,
            stats.timed_out,
            stats.panicked
        ),
        (0, 0, completed, cancelled, timed_out, 0),
        "{cell}: the plan's counters"
    );
    common::assert_conserved(stats);

    // A plan-wide stop cancels the plan's token (an abort has closed the
    // plan by the time it returns; a parent's cancel closes it through the
    // plan's watcher task, later); any other stop leaves the worker running.
    if matches!(kind, Kind::Abort | Kind::ParentToken) {
        assert!(plan.token().is_cancelled(), "{cell}: the plan's token");
        if kind == Kind::Abort {
            assert!(plan.is_closed(), "{cell}: the plan is closed");
        }
    } else {
        assert!(!plan.is_closed(), "{cell}: the plan stays open");
        let next = plan.submit(async { "next" }).await.unwrap();
        assert_eq!(
            next.await.unwrap(),
            "next",
            "{cell}: the worker runs a next task"
        );
    }
    join(&plan, &cell).await;
    Ok(())
}

async fn join(plan: &Plan, cell: &str) {
    let report = common::join_or_fail(plan).await;
    assert_eq!(report.panicked, 0, "{cell}: {report:?}");
}

macro_rules! matrix {
    ($($name:ident => $kind:ident at $moment:ident;)*) => {
        $(
            async fn $name() {
                cell(Kind::$kind, Moment::$moment).await
            }
        )*
        on_both_runtimes!($($name),*);
    };
}

matrix! {
    handle_cancel_of_a_queued_task_cancels_it_and_it_never_starts => Handle at Queued;
    handle_cancel_of_a_just_started_task_cancels_it => Handle at JustStarted;
    handle_cancel_mid_run_cancels_it => Handle at MidRun;
    handle_cancel_before_the_finishing_poll_wins_over_the_value => Handle at Finishing;
    handle_cancel_of_a_finished_task_keeps_its_value => Handle at Finished;

    cancel_tag_of_a_queued_task_cancels_it_and_it_never_starts => Tag at Queued;
    cancel_tag_of_a_just_started_task_cancels_it => Tag at JustStarted;
    cancel_tag_mid_run_cancels_it => Tag at MidRun;
    cancel_tag_before_the_finishing_poll_wins_over_the_value => Tag at Finishing;
    cancel_tag_of_a_finished_task_keeps_its_value_and_counts_zero => Tag at Finished;

    abort_with_a_queued_task_cancels_it_and_it_never_starts => Abort at Queued;
    abort_of_a_just_started_task_cancels_it => Abort at JustStarted;
    abort_mid_run_cancels_it => Abort at MidRun;
    abort_before_the_finishing_poll_wins_over_the_value => Abort at Finishing;
    abort_after_a_task_finished_keeps_its_value_and_is_not_forced => Abort at Finished;

    parent_token_cancel_with_a_queued_task_cancels_it_and_it_never_starts => ParentToken at Queued;
    parent_token_cancel_of_a_just_started_task_cancels_it => ParentToken at JustStarted;
    parent_token_cancel_mid_run_cancels_it => ParentToken at MidRun;
    parent_token_cancel_before_the_finishing_poll_wins_over_the_value => ParentToken at Finishing;
    parent_token_cancel_after_a_task_finished_keeps_its_value => ParentToken at Finished;

    timeout_passing_while_queued_does_not_apply_and_the_task_completes => Timeout at Queued;
    timeout_of_a_just_started_task_times_it_out => Timeout at JustStarted;
    timeout_mid_run_times_it_out => Timeout at MidRun;
    timeout_arriving_with_the_finishing_wakeup_wins_over_the_value => Timeout at Finishing;
    timeout_passing_after_a_task_finished_keeps_its_value => Timeout at Finished;
}
