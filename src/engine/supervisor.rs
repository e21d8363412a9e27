//! The supervisor loop: one spawned Tokio task per worker that pulls tasks
//! off the plan's queue and runs them one at a time.
//!
//! A supervisor runs each task raced against the plan's
//! [`CancellationToken`](tokio_util::sync::CancellationToken) (and its
//! timeout) in a biased select, so an abort drops a task at once even when
//! it waits on I/O that never completes. Per-task cancellation needs no
//! token: a task's own cancel flag lives in its header and `Task::poll_run`
//! checks it on every poll (see `engine/cell.rs`); a cancel wakes the supervisor
//! through the waker it registered with the plan, found by the number the
//! header records.

use std::future::{Future, poll_fn};
use std::panic::catch_unwind;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::engine::cell::{CancelRequest, Control, Ended, HandleWaker, Outcome, Task};
use crate::engine::counters::{CachePadded, Outcomes};
use crate::engine::current::Mark;
use crate::engine::panic::contain_panic;
use crate::engine::shared::Shared;
use crate::engine::sync::{AtomicBool, AtomicWaker, Ordering};

/// Runs tasks until the plan is closed and drained, is aborted, or has more
/// supervisors than it needs.
///
/// Waiting for the next task does not involve the token: an abort closes
/// and drains the queue (see `watch_token`), which ends `next_task` as
/// surely. The token is looked at once more before a task's first poll, for
/// a task taken off the queue just as the abort began.
pub(crate) async fn supervise(mut exit: ExitGuard) {
    // Taken up by the first look at the queue, with no await in between.
    let mut spawned = std::mem::take(&mut exit.spawn_wakeup);
    let plan = &exit.plan;
    let cancel_waker = &*exit.waker;
    // This supervisor's own counters: ending a task writes nothing another
    // supervisor writes.
    let outcomes: &Outcomes = &exit.outcomes;
    // One `cancelled()` future for the supervisor's whole life, polled once
    // with the alarm as its waker, so the supervisor joins the token's
    // waiter list once and from then on looks at the token with one load.
    let mut aborted = pin!(plan.token.cancelled());
    let alarm = TokenAlarm::arm(aborted.as_mut(), Arc::clone(&exit.waker));
    // One timer for the supervisor's whole life, made at the first task with
    // a timeout (a runtime without a time driver never needs one), and reset
    // for each later one.
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    while let Some(task) = plan
        .next_task(exit.number, std::mem::take(&mut spawned))
        .await
    {
        let timeout = task.timeout(plan.default_timeout);
        // The clock is read only for what needs it: timings, or a timeout.
        let started = (plan.timings || timeout.is_some()).then(Instant::now);
        // Ends the task however this iteration ends, including when the
        // runtime drops this supervisor in the middle of it.
        let mut running = Running {
            plan,
            outcomes,
            task: Some(task),
            started,
            timed: false,
            handle: HandleWaker::default(),
        };
        let task = running.task();
        let queue_wait = match (started, task.queued_at()) {
            (Some(started), Some(queued_at)) => Some(
                started
                    .saturating_duration_since(plan.epoch)
                    .saturating_sub(queued_at),
            ),
            _ => None,
        };
        plan.record_started(outcomes, task, queue_wait);
        let span = plan.task_span(task);
        // An abort may have come after this task left the queue and before
        // the queue was drained: then it must not start at all.
        if alarm.fired() {
            plan.abort_queued();
            return;
        }
        tracing::trace!(
            parent: &span,
            queue_wait = queue_wait.map(tracing::field::debug),
            "task started"
        );
        let mut deadline = timeout
            .zip(started)
            .and_then(|(timeout, started)| started.checked_add(timeout));
        if let Some(at) = deadline {
            match &mut timer {
                Some(timer) => timer.as_mut().reset(at),
                // Found missing before: not asked again, and not logged
                // again, for any task of the plan.
                None if plan.time_driver_missing.load(Ordering::Relaxed) => deadline = None,
                // Tokio panics when a runtime without the time driver makes
                // a timer; that must not take the supervisor down.
                None => match catch_unwind(|| Box::pin(sleep_until(at))) {
                    Ok(made) => timer = Some(made),
                    Err(_) => {
                        if !plan.time_driver_missing.swap(true, Ordering::Relaxed) {
                            tracing::error!(
                                plan = %plan.name,
                                task = %task.id(),
                                "task timeouts need the runtime's time driver (`enable_time` \
                                 or `enable_all` on the runtime builder); this plan's tasks run \
                                 without their timeouts"
                            );
                        }
                        deadline = None;
                    }
                },
            }
        }
        // A biased select of the task, the token and the clock. The task's
        // first poll goes first, so a task that finishes at once never pays
        // for looking at the token or the clock (the token was just looked
        // at, above). From then on the token and the clock go first: after
        // an abort or past its deadline a task is not polled again, not even
        // by the wakeup that brought the news.
        let mut first_poll = true;
        let running_task = Mark::new(plan, task.id());
        // A task's own token works both ways: cancelled from outside the
        // task, it cancels the task (see `OwnTokenWatch`). Watched for this
        // iteration: the `cancelled()` future lives on this stack frame.
        let own_token = task.token().cloned();
        let mut own_token_cancelled = pin!(own_token.as_ref().map(CancellationToken::cancelled));
        if let Some(cancelled) = own_token_cancelled.as_mut().as_pin_mut() {
            OwnTokenWatch::arm(cancelled, task, Arc::clone(&exit.waker), running_task);
        }
        let ending = poll_fn(|cx| {
            // The task's calls into its own plan know it as the caller.
            let _running = running_task.enter();
            // Also registers with the clock, so it wakes us; the token's
            // alarm wakes us through `cancel_waker`, which a pending task
            // poll has just registered.
            let mut interrupted = |cx: &mut Context<'_>| {
                if alarm.fired() {
                    return Some(Ending::Aborted);
                }
                match (&mut timer, deadline) {
                    (Some(timer), Some(_)) => timer
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                        .then_some(Ending::Expired),
                    _ => None,
                }
            };
            if !first_poll {
                if let Some(ending) = interrupted(cx) {
                    return Poll::Ready(ending);
                }
            }
            let polled = {
                // The task's own events nest under its span.
                let _entered = span.enter();
                task.poll_run(cx, outcomes, cancel_waker)
            };
            if let Poll::Ready(outcome) = polled {
                return Poll::Ready(Ending::Ran(outcome));
            }
            if std::mem::take(&mut first_poll) {
                if let Some(ending) = interrupted(cx) {
                    return Poll::Ready(ending);
                }
            }
            Poll::Pending
        })
        .await;
        // The race is decided: the task's own token stops being watched
        // before anything below ends the task and cancels that token itself.
        own_token_cancelled.set(None);
        let _entered = span.enter();
        let mut ending = match ending {
            Ending::Expired => Ending::Ran(task.time_out(outcomes)),
            other => other,
        };
        if let Ending::Ran(ran) = &mut ending {
            // Woken last, once the task is settled (see `HandleWaker`).
            running.handle = std::mem::take(&mut ran.handle);
        }
        let ended = running.measure();
        let run_time = ended.zip(started).map(|(ended, started)| {
            tracing::field::debug(ended.saturating_duration_since(started))
        });
        let task = running.task();
        match ending {
            Ending::Ran(Ended {
                outcome: Outcome::Completed,
                ..
            }) => tracing::trace!(run_time, "task completed"),
            Ending::Ran(Ended {
                outcome: Outcome::Cancelled,
                ..
            }) => tracing::debug!(run_time, "task cancelled"),
            Ending::Ran(Ended {
                outcome: Outcome::TimedOut,
                ..
            }) => {
                let timeout = task.timeout(plan.default_timeout).unwrap_or_default();
                in_context!(span, plan, task, warn, ?timeout, "task timed out");
            }
            Ending::Ran(Ended {
                outcome: Outcome::Panicked(message),
                ..
            }) => {
                in_context!(span, plan, task, error, panic = %message, "task panicked");
            }
            Ending::Aborted => {
                tracing::debug!(run_time, "task cancelled by an abort");
                // Close and empty the queue before this task's handle
                // resolves (when `running` drops), so whoever awaits it sees
                // the plan already stopped.
                plan.abort_queued();
                return;
            }
            Ending::Expired => unreachable!("turned into its outcome above"),
        }
        drop(running);
        drop(_entered);
        // Tasks that finish on their first poll never make this loop wait:
        // let the rest of the runtime have its turn now and then.
        tokio::task::coop::consume_budget().await;
    }
}

/// Logs an event of a task at a level that may be above its span's: with
/// the task's span disabled (a `warn` event under a `debug` span, with an
/// `info` filter), the event carries the span's fields itself.
macro_rules! in_context {
    ($span:expr, $plan:expr, $task:expr, $level:ident, $($fields:tt)+) => {
        if $span.is_disabled() {
            tracing::$level!(
                plan = %$plan.name,
                task = %$task.id(),
                tag = $task.tag().map(|tag| tag.name.as_str()),
                $($fields)+
            )
        } else {
            tracing::$level!($($fields)+)
        }
    };
}
use in_context;

/// The task a supervisor is running. Dropping it ends the task: one that has
/// not resolved yet (an abort, or the runtime dropping the supervisor) is
/// counted and resolved as cancelled, and every task is settled, so
/// `wait_idle` and `shutdown` never wait for it in vain.
struct Running<'a> {
    plan: &'a Shared,
    /// The supervisor's counters.
    outcomes: &'a Outcomes,
    /// Always `Some` until `drop` takes it.
    task: Option<Task>,
    /// When the task started, if the clock was read for it: for its run
    /// time when timings are on.
    started: Option<Instant>,
    /// Whether `measure` has counted its run time.
    timed: bool,
    /// The handle's waker, once the supervisor saw the task end.
    handle: HandleWaker,
}

impl Running<'_> {
    fn task(&mut self) -> &mut Task {
        self.task.as_mut().expect("taken only on drop")
    }

    /// Counts the task's run time, ending now, and returns now, if the
    /// plan measures timings. Called once: by the supervisor as the task
    /// ends, or else by `drop`.
    fn measure(&mut self) -> Option<Instant> {
        self.timed = true;
        let started = self.started.filter(|_| self.plan.timings)?;
        let ended = Instant::now();
        let run_time = ended.saturating_duration_since(started);
        let outcomes = self.outcomes;
        self.plan.record_run_time(outcomes, self.task(), run_time);
        Some(ended)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // Not measured yet: the task never got its first poll (an abort
        // came first), or the runtime dropped the supervisor mid-task.
        if !self.timed {
            self.measure();
        }
        let Some(mut task) = self.task.take() else {
            return;
        };
        let plan = self.plan;
        if !task.header().is_done() {
            task.record(self.outcomes, &Outcome::Cancelled);
        }
        plan.finished_running(&task);
        let id = task.id();
        // A task that did not end before (an abort, or the runtime dropping
        // this supervisor) ends now, as cancelled.
        let ended_now = task.end();
        // Dropping a detached task's output runs user code too; its panic
        // must not take the supervisor down.
        contain_panic(
            || drop(task),
            |panic| {
                tracing::error!(
                    plan = %plan.name,
                    task = %id,
                    panic,
                    "a task's output destructor panicked"
                )
            },
        );
        plan.settle(self.outcomes, 1);
        // Last, once the task is settled: waking a handle runs user code.
        std::mem::take(&mut self.handle).wake(&plan.name);
        ended_now.wake(&plan.name);
    }
}

/// A supervisor's view of the plan's token, without its lock.
///
/// The token's `cancelled()` future holds this as its waker. Cancelling the
/// token sets its flag and then calls every waiter's waker before `cancel()`
/// returns, and only a cancel calls it, so `fired` is exact: a poll that
/// begins after the cancel sees it. Looking costs one load, where
/// `is_cancelled()` takes the token's mutex and re-polling `cancelled()`
/// takes that and its `Notify`'s, both shared by every supervisor (measured:
/// tasks that yield once ran 2.8 times slower than `tokio::spawn` with the
/// locks, on the 2-thread runtime).
pub(crate) struct TokenAlarm {
    fired: AtomicBool,
    /// The supervisor's waker, which its running task's pending polls keep
    /// current.
    supervisor: Arc<AtomicWaker>,
}

impl TokenAlarm {
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

impl Wake for TokenAlarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.supervisor.wake();
    }
}

impl TokenAlarm {
    /// Arms an alarm on `cancelled`, a token's `cancelled()` future: polls
    /// it once with the alarm as its waker, so that from then on, for as
    /// long as the future lives, a cancel sets `fired` and wakes `waker`
    /// before `cancel()` returns.
    pub(crate) fn arm(
        cancelled: Pin<&mut impl Future<Output = ()>>,
        waker: Arc<AtomicWaker>,
    ) -> Arc<TokenAlarm> {
        let alarm = Arc::new(TokenAlarm {
            fired: AtomicBool::new(false),
            supervisor: waker,
        });
        let alarm_waker = Waker::from(Arc::clone(&alarm));
        if cancelled
            .poll(&mut Context::from_waker(&alarm_waker))
            .is_ready()
        {
            // Cancelled before: the waker was not called.
            alarm.fired.store(true, Ordering::Release);
        }
        alarm
    }
}

/// Watches a task's own token (`task_with`, blocking tasks) for a cancel
/// from outside the task, which cancels the task exactly as
/// `TaskHandle::cancel` does: it sets the cancel bit in the task's header
/// and wakes the supervisor, so the poll protocol that makes a handle's
/// cancel reliable (`Task::poll_run` registers, then looks at the bit)
/// covers this one too. A cancel made on a thread running the task (its
/// own code, or its blocking closure: see `engine/current.rs`) is spared:
/// the task stopping what it handed out is its own business.
///
/// The token's `cancelled()` future holds this as its waker for the
/// task's run, as the plan's token holds `TokenAlarm`.
struct OwnTokenWatch {
    task: Arc<dyn Control>,
    supervisor: Arc<AtomicWaker>,
    spared: Mark,
}

impl OwnTokenWatch {
    /// Polls `cancelled`, the task's token's `cancelled()` future, once
    /// with a watch as its waker: from then on, for as long as the future
    /// lives, a cancel from outside cancels the task. A token cancelled
    /// already (while the task was queued) cancels it now, before its first
    /// poll.
    fn arm(
        cancelled: Pin<&mut impl Future<Output = ()>>,
        task: &Task,
        supervisor: Arc<AtomicWaker>,
        spared: Mark,
    ) {
        let watch = Arc::new(OwnTokenWatch {
            task: task.control(),
            supervisor,
            spared,
        });
        let waker = Waker::from(Arc::clone(&watch));
        if cancelled.poll(&mut Context::from_waker(&waker)).is_ready() {
            watch.wake_by_ref();
        }
    }
}

impl Wake for OwnTokenWatch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.spared.is_current() {
            return;
        }
        if self.task.header().request_cancel() == CancelRequest::Requested {
            self.supervisor.wake();
        }
    }
}

/// How the race between a task, the token and the clock ended.
enum Ending {
    Ran(Ended),
    Aborted,
    Expired,
}

/// Turns a cancellation of the plan's token, from wherever it comes, into
/// an abort of the queue: closed, and every queued task dropped unstarted.
/// Running tasks see the token themselves, in `supervise`.
///
/// Ends when the token is cancelled or when every supervisor has exited, so
/// a plan that shuts down normally leaves nothing waiting on the token.
///
/// Also closes the plan if the runtime drops the watcher: see
/// [`CloseIfDropped`].
pub(crate) async fn watch_token(
    plan: Arc<Shared>,
    armed: Pin<Box<WaitForCancellationFutureOwned>>,
) {
    let runtime_gone = CloseIfDropped(Some(Arc::clone(&plan)));
    // `armed` keeps the plan's alarm armed (see `Shared::token_alarm`),
    // which wakes this through its waker.
    let alarm = &plan.token_alarm;
    let cancelled = poll_fn(|cx| {
        alarm.supervisor.register(cx.waker());
        if alarm.fired() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    tokio::select! {
        () = cancelled => plan.abort_queued(),
        () = plan.supervisors_exited() => {}
    }
    drop(armed);
    runtime_gone.disarm();
}

/// Closes the plan and cancels what is queued when dropped armed, which
/// only a runtime shutting down does to the watcher.
///
/// The last supervisor out does the same (`Shared::supervisor_exited`), but
/// supervisors start as work arrives, so a plan may have none to exit: its
/// handles all resolve either way, and a plan whose runtime is gone is
/// closed whether or not it ever ran a task.
struct CloseIfDropped(Option<Arc<Shared>>);

impl CloseIfDropped {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CloseIfDropped {
    fn drop(&mut self) {
        if let Some(plan) = self.0.take() {
            plan.cancel_queued();
        }
    }
}

/// Runs when a supervisor exits, normally or because the runtime dropped it.
pub(crate) struct ExitGuard {
    plan: Arc<Shared>,
    /// The supervisor's number in the plan, recorded in the header of each
    /// task it runs.
    number: u32,
    /// Registered with each pending poll of a task; a cancel of that task
    /// wakes it.
    waker: Arc<AtomicWaker>,
    /// Lent by the plan for the supervisor's life.
    outcomes: Arc<CachePadded<Outcomes>>,
    /// The wakeup the spawn counted for this supervisor (see
    /// `State::claim_spawns`), until `supervise` takes it up.
    spawn_wakeup: bool,
}

impl ExitGuard {
    /// The supervisor's number in the plan.
    #[cfg(tokio_unstable)]
    pub(crate) fn number(&self) -> u32 {
        self.number
    }

    pub(crate) fn new(plan: Arc<Shared>) -> ExitGuard {
        let (number, waker) = plan.register_supervisor();
        let outcomes = plan.lend_outcomes();
        ExitGuard {
            plan,
            number,
            waker,
            outcomes,
            spawn_wakeup: true,
        }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // A supervisor the runtime drops may have been the one a push woke,
        // or spawned and never polled: hand the wakeup on so the task it was
        // meant for does not wait.
        self.plan.pass_on_wakeup(self.spawn_wakeup);
        self.plan.unregister_supervisor(self.number, &self.waker);
        self.plan.give_back_outcomes(Arc::clone(&self.outcomes));
        self.plan.supervisor_exited();
    }
}
