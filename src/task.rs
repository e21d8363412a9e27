//! One submitted task: the state it shares with its handle, and the wrapper a
//! supervisor polls.
//!
//! A task costs two allocations: an `Arc<Core<T>>` shared by the wrapper and
//! the [`TaskHandle`](crate::TaskHandle), and the boxed [`Task`] wrapper that
//! owns the user's future inline and sits in the queue until a supervisor
//! runs it. The wrapper is the only place a user future is polled or dropped,
//! which is why every way a task can end (completion, panic, cancellation,
//! being dropped with the plan or the runtime) resolves its handle from here.
//!
//! The shared `Core` is kept to what both sides need: the lifecycle state,
//! the task's place in the queue and the supervisor running it (so a cancel
//! can unlink it or wake that supervisor), and one mutex-guarded slot that
//! holds either the handle's waker or the result. For a task whose output is
//! `()` it is 48 bytes, 64 with the `Arc`'s counts. Everything only the
//! running side needs (id, tag, timeout, token) lives in the wrapper, and the
//! waker a cancel wakes is the supervisor's own, registered once per wait
//! in the plan rather than once per task.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Failure, contain_panic, panic_text};
use crate::stats::Outcomes;
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::sync::{AtomicU8, AtomicU32, AtomicUsize, AtomicWaker, Ordering};
use crate::tag::TagInfo;

/// A task's id, unique within its plan and assigned in submission order.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
/// let first = plan.submit(async {}).await.unwrap();
/// let second = plan.submit(async {}).await.unwrap();
/// assert!(first.id() < second.id());
/// println!("submitted {} and {}", first.id(), second.id());
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    pub(crate) fn from_sequence(sequence: u64) -> TaskId {
        TaskId(NonZeroU64::new(sequence.wrapping_add(1)).unwrap_or(NonZeroU64::MIN))
    }

    /// Returns the id as a number; the first task of a plan is `1`.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

// Lifecycle stages, in the low bits of `Header::state`.
//
// QUEUED -> RUNNING -> ENDING -> DONE, or QUEUED -> DONE through
// RUNNING|CANCEL when a queued task is cancelled. A running task whose cancel
// is requested goes RUNNING -> RUNNING|CANCEL -> DONE and always ends
// cancelled: its value, timeout or panic only counts if it went on to ENDING
// first. QUEUED -> RUNNING is only ever written with the plan's queue lock
// held (by the pop that takes the task, or by a cancel that
// unlinks it), so a task seen as QUEUED under that lock is still linked at
// `Header::queue_key`, unless an abort drained the whole queue: drained tasks
// stay QUEUED until they are dropped, and `Queue::holds` tells them apart.
const STAGE_MASK: u8 = 0b011;
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
/// A running task whose end is decided and being counted; DONE follows
/// under the same slot lock.
const ENDING: u8 = 3;
/// Set once cancellation was requested; the supervisor drops the future at
/// its next poll, and the canceller wakes that supervisor so the poll
/// happens.
const CANCEL: u8 = 0b100;

/// The type-erased part of a task's shared state.
pub(crate) struct Header {
    /// The task's slot in the queue; only meaningful while QUEUED and only
    /// read or written with the queue lock held.
    queue_key: AtomicUsize,
    /// The plan's number for the supervisor running the task: whom a cancel
    /// wakes. Written before the task is marked RUNNING (Release), so a
    /// canceller that sees RUNNING (Acquire) reads the right one.
    supervisor: AtomicU32,
    state: AtomicU8,
}

impl Header {
    pub(crate) fn is_queued(&self) -> bool {
        self.state.load(Ordering::Acquire) & STAGE_MASK == QUEUED
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & STAGE_MASK == DONE
    }

    fn cancel_requested(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCEL != 0
    }

    pub(crate) fn queue_key(&self) -> usize {
        self.queue_key.load(Ordering::Relaxed)
    }

    pub(crate) fn set_queue_key(&self, key: usize) {
        self.queue_key.store(key, Ordering::Relaxed);
    }

    /// The supervisor running the task, once it is RUNNING.
    pub(crate) fn supervisor(&self) -> u32 {
        self.supervisor.load(Ordering::Relaxed)
    }

    /// Marks a task as taken off the queue by `supervisor`. Caller holds the
    /// queue lock.
    pub(crate) fn mark_started(&self, supervisor: u32) {
        self.supervisor.store(supervisor, Ordering::Relaxed);
        self.state.fetch_or(RUNNING, Ordering::AcqRel);
    }

    /// Marks a task as taken off the queue to be dropped, not run. Caller
    /// holds the queue lock.
    pub(crate) fn mark_unqueued_for_cancel(&self) {
        self.state.fetch_or(RUNNING | CANCEL, Ordering::AcqRel);
    }

    /// Asks a running task to stop. On `Requested` the caller must wake the
    /// task's [`supervisor`](Header::supervisor), which then drops it.
    pub(crate) fn request_cancel(&self) -> CancelRequest {
        match self.state.load(Ordering::Acquire) & STAGE_MASK {
            QUEUED => CancelRequest::StillQueued,
            DONE => CancelRequest::AlreadyDone,
            _ => {
                // A running task only moves on to DONE, where the flag is
                // ignored, so setting it unconditionally is safe. Racing a
                // task's end, this `fetch_or` and the end's compare-exchange
                // in `Core::conclude` order the two: seeing RUNNING here means
                // the end will see CANCEL and end the task cancelled.
                let previous = self.state.fetch_or(CANCEL, Ordering::AcqRel);
                let newly_requested = previous & STAGE_MASK == RUNNING && previous & CANCEL == 0;
                if newly_requested {
                    CancelRequest::Requested
                } else {
                    CancelRequest::AlreadyDone
                }
            }
        }
    }
}

/// What `Header::request_cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelRequest {
    /// The task is queued: the caller must unlink it under the queue lock.
    StillQueued,
    /// The task was running and is now asked to stop: the caller must wake
    /// its supervisor.
    Requested,
    /// The task had finished, or was already asked to stop.
    AlreadyDone,
}

/// Where a task's result meets its handle.
enum Slot<T> {
    /// Not finished; holds the waker of the handle's last poll, if any.
    Waiting(Option<Waker>),
    Ready(Result<T, Failure>),
    /// The handle took the result.
    Taken,
}

/// The waker a slot held before its result was stored: a task is resolved
/// once.
fn waiting_waker<T>(previous: Slot<T>) -> Option<Waker> {
    match previous {
        Slot::Waiting(waker) => waker,
        Slot::Ready(_) | Slot::Taken => unreachable!("a task is resolved once"),
    }
}

/// Shared state of a task whose output is `T`.
pub(crate) struct Core<T> {
    header: Header,
    /// The result and the handle's waker share one lock, so a result is
    /// never stored without the waker that was registered before it being
    /// woken, and a handle never registers after the result without seeing it.
    slot: Mutex<Slot<T>>,
}

impl<T> Core<T> {
    pub(crate) fn new() -> Core<T> {
        Core {
            header: Header {
                queue_key: AtomicUsize::new(usize::MAX),
                supervisor: AtomicU32::new(u32::MAX),
                state: AtomicU8::new(QUEUED),
            },
            slot: Mutex::new(Slot::Waiting(None)),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    fn lock_slot(&self) -> MutexGuard<'_, Slot<T>> {
        // Nothing that can panic runs under this lock but a waker's `clone`;
        // the slot is whole after every statement, so poison is harmless.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the result of a task that ends without a value, and wakes its
    /// handle. Called once, by the wrapper, after the user's future has been
    /// dropped and the end counted; never after `conclude` stored a result.
    fn resolve(&self, result: Result<T, Failure>) {
        let waker = {
            let mut slot = self.lock_slot();
            // Marked under the lock: whoever sees DONE (Acquire in
            // `is_done`) and then takes the lock finds the result.
            self.header.state.swap(DONE, Ordering::AcqRel);
            waiting_waker(std::mem::replace(&mut *slot, Slot::Ready(result)))
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends a running task with `result`, unless its cancel was requested
    /// first: then hands `result` back and changes nothing.
    ///
    /// The decision is one compare-exchange of RUNNING for ENDING, racing the
    /// canceller's `fetch_or` of CANCEL in `Header::request_cancel`: exactly
    /// one of them sees the other's state, so a cancel reported as requested
    /// (and counted by `cancel_tag`) always ends the task cancelled. `count`
    /// runs once the end is decided and before the handle can see it.
    fn conclude(
        &self,
        result: Result<T, Failure>,
        count: impl FnOnce(),
    ) -> Result<(), Result<T, Failure>> {
        let waker = {
            let mut slot = self.lock_slot();
            if self
                .header
                .state
                .compare_exchange(RUNNING, ENDING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Err(result);
            }
            count();
            // After the count: whoever sees DONE sees it counted.
            self.header.state.store(DONE, Ordering::Release);
            waiting_waker(std::mem::replace(&mut *slot, Slot::Ready(result)))
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Polls for the task's result, for the handle: `Ready(None)` once the
    /// result was taken.
    pub(crate) fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Failure>>> {
        let mut slot = self.lock_slot();
        match &mut *slot {
            Slot::Waiting(waker) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Ready(_) => match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Ready(result) => Poll::Ready(Some(result)),
                _ => unreachable!("matched above"),
            },
            Slot::Taken => Poll::Ready(None),
        }
    }
}

/// How a task ended, as seen by the supervisor that ran it.
#[derive(Debug)]
pub(crate) enum Outcome {
    Completed,
    Cancelled,
    TimedOut,
    /// With the panic's message, for the log.
    Panicked(String),
}

/// The type-erased header of a task that may outlive its wrapper: what the
/// plan keeps of a running tagged task, to cancel it by tag.
pub(crate) trait Control: Send + Sync {
    fn header(&self) -> &Header;
}

impl<T: Send> Control for Core<T> {
    fn header(&self) -> &Header {
        &self.header
    }
}

/// A queued or running task with its type erased, as the queue and the
/// supervisors hold it.
pub(crate) trait Runnable: Send {
    fn header(&self) -> &Header;

    fn id(&self) -> TaskId;

    /// Numbers the task. Caller holds the queue lock and queues it next, so
    /// ids follow queue order.
    fn set_id(self: Pin<&mut Self>, id: TaskId);

    fn tag(&self) -> Option<&Arc<TagInfo>>;

    /// How long the task may run once started.
    fn timeout(&self) -> Option<Duration>;

    fn priority(&self) -> i32;

    /// When the task was queued; `None` only for tasks made in unit tests.
    fn queued_at(&self) -> Option<Instant>;

    /// A running tagged task's slot in its tag's registry of running tasks;
    /// only read or written with the queue lock held.
    fn running_key(&self) -> usize;

    fn set_running_key(self: Pin<&mut Self>, key: usize);

    /// A shared handle on the header, for registries that outlive a poll.
    fn control(&self) -> Arc<dyn Control>;

    /// Counts how the task ended, for the plan and for its tag.
    fn record(&self, plan: &Outcomes, outcome: &Outcome) {
        record(self.tag(), plan, outcome);
    }

    /// Counts the task as cancelled before it started, for its tag; the
    /// caller counts it for the plan.
    fn record_cancelled_queued_for_tag(&self) {
        if let Some(tag) = self.tag() {
            tag.outcomes.record_cancelled_queued(1);
        }
    }

    /// Drops the future of a task that ran past its timeout: counts it and
    /// resolves its handle with a timeout error.
    fn time_out(self: Pin<&mut Self>, counters: &Outcomes) -> Outcome;

    /// Polls the user's future once, unless cancellation was requested.
    ///
    /// When the future is pending, `cancel_waker` (the supervisor's) holds
    /// `cx`'s waker before the cancel flag is looked at again, so a cancel
    /// between the poll and that look is seen or wakes the supervisor.
    ///
    /// When the task ends, in this order: the future is dropped (its
    /// destructors run), the outcome is counted in `counters`, and the
    /// handle resolves; so whoever sees the handle resolved sees the count.
    /// After `Ready` the task must not be polled again.
    fn poll_run(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        counters: &Outcomes,
        cancel_waker: &AtomicWaker,
    ) -> Poll<Outcome>;
}

pub(crate) type BoxedTask = Pin<Box<dyn Runnable>>;

/// Counts how a task ended, for the plan and for its tag.
fn record(tag: Option<&Arc<TagInfo>>, plan: &Outcomes, outcome: &Outcome) {
    plan.record(outcome);
    if let Some(tag) = tag {
        tag.outcomes.record(outcome);
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<F> {
        Running { #[pin] future: F },
        Finished,
    }
}

/// Where a task may run, and how long: chosen at submission.
#[derive(Default)]
pub(crate) struct Setup {
    pub(crate) tag: Option<Arc<TagInfo>>,
    /// As queued with; kept for the task's span.
    pub(crate) priority: i32,
    pub(crate) timeout: Option<Duration>,
    /// The task's own token, for `submit_with` and `submit_blocking`:
    /// cancelled whenever the task ends without a value, so work it handed
    /// elsewhere stops too.
    pub(crate) token: Option<CancellationToken>,
}

pin_project! {
    /// Owns a user's future and resolves its handle however the future ends.
    pub(crate) struct Task<F: Future> {
        #[pin]
        stage: Stage<F>,
        core: Arc<Core<F::Output>>,
        id: TaskId,
        running_key: usize,
        // When the task was queued, for its queue-wait time; set by the
        // plan just before it queues the task.
        queued_at: Option<Instant>,
        setup: Setup,
    }

    impl<F: Future> PinnedDrop for Task<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before finishing: by a cancel of a queued task, by an
            // abort, or with the runtime. The handle still resolves; the
            // code that dropped the task counts it.
            let this = this.project();
            if matches!(*this.stage, Stage::Running { .. }) {
                discard(this.stage, this.setup.token.as_ref());
                this.core.resolve(Err(Failure::Cancelled));
            }
        }
    }
}

/// Drops the user's future in place, after cancelling the task's token if
/// it has one. A panicking destructor must not take the supervisor down with
/// it, so its panic is contained and logged.
fn discard<F>(mut stage: Pin<&mut Stage<F>>, token: Option<&CancellationToken>) {
    if let Some(token) = token {
        token.cancel();
    }
    contain_panic(
        || stage.set(Stage::Finished),
        |panic| tracing::error!(panic, "a task's destructor panicked"),
    );
}

impl<F: Future> Task<F> {
    pub(crate) fn new(future: F, core: Arc<Core<F::Output>>, setup: Setup) -> Task<F> {
        Task {
            stage: Stage::Running { future },
            core,
            id: TaskId::from_sequence(0),
            running_key: usize::MAX,
            queued_at: None,
            setup,
        }
    }

    /// Records that the task is being queued now.
    pub(crate) fn stamp_queued(&mut self, now: Instant) {
        self.queued_at = Some(now);
    }

    /// Takes the future back out of a task that was never pinned, for
    /// handing a refused task back to its submitter.
    // The task arrives boxed from the queue's refusal path; unboxing it
    // first would only add a move.
    #[allow(clippy::boxed_local)]
    pub(crate) fn into_future(mut self: Box<Self>) -> F {
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Running { future } => future,
            Stage::Finished => unreachable!("a refused task is never polled"),
        }
    }

    /// Ends the task as cancelled: drops the future, counts the cancel, then
    /// resolves the handle.
    fn end_cancelled(self: Pin<&mut Self>, counters: &Outcomes) -> Outcome {
        let this = self.project();
        discard(this.stage, this.setup.token.as_ref());
        record(this.setup.tag.as_ref(), counters, &Outcome::Cancelled);
        this.core.resolve(Err(Failure::Cancelled));
        Outcome::Cancelled
    }

    /// Ends a task whose future is already dropped with `outcome` and
    /// `result`, or as cancelled if its cancel was requested first (see
    /// `Core::conclude`). Counts the end that happened, then resolves the
    /// handle.
    fn conclude(
        self: Pin<&mut Self>,
        counters: &Outcomes,
        outcome: Outcome,
        result: Result<F::Output, Failure>,
    ) -> Outcome {
        let this = self.project();
        let tag = this.setup.tag.as_ref();
        let Err(overruled) = this
            .core
            .conclude(result, || record(tag, counters, &outcome))
        else {
            return outcome;
        };
        // The cancel came first and was reported as requested; the value,
        // timeout or panic of the same instant gives way to it.
        if let Some(token) = &this.setup.token {
            token.cancel();
        }
        if let Outcome::Panicked(message) = &outcome {
            tracing::error!(
                task = %this.id,
                tag = tag.map(|tag| tag.name.as_str()),
                panic = %message,
                "task panicked as it was cancelled; counted as cancelled"
            );
        }
        contain_panic(
            || drop(overruled),
            |panic| tracing::error!(task = %this.id, panic, "a task's output destructor panicked"),
        );
        record(tag, counters, &Outcome::Cancelled);
        this.core.resolve(Err(Failure::Cancelled));
        Outcome::Cancelled
    }
}

impl<F> Runnable for Task<F>
where
    F: Future + Send,
    F::Output: Send + 'static,
{
    fn header(&self) -> &Header {
        &self.core.header
    }

    fn id(&self) -> TaskId {
        self.id
    }

    fn set_id(self: Pin<&mut Self>, id: TaskId) {
        *self.project().id = id;
    }

    fn tag(&self) -> Option<&Arc<TagInfo>> {
        self.setup.tag.as_ref()
    }

    fn timeout(&self) -> Option<Duration> {
        self.setup.timeout
    }

    fn priority(&self) -> i32 {
        self.setup.priority
    }

    fn queued_at(&self) -> Option<Instant> {
        self.queued_at
    }

    fn running_key(&self) -> usize {
        self.running_key
    }

    fn set_running_key(self: Pin<&mut Self>, key: usize) {
        *self.project().running_key = key;
    }

    fn control(&self) -> Arc<dyn Control> {
        Arc::clone(&self.core) as Arc<dyn Control>
    }

    fn time_out(mut self: Pin<&mut Self>, counters: &Outcomes) -> Outcome {
        let this = self.as_mut().project();
        discard(this.stage, this.setup.token.as_ref());
        self.conclude(counters, Outcome::TimedOut, Err(Failure::TimedOut))
    }

    fn poll_run(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        counters: &Outcomes,
        cancel_waker: &AtomicWaker,
    ) -> Poll<Outcome> {
        if self.core.header.cancel_requested() {
            return Poll::Ready(self.end_cancelled(counters));
        }
        let mut this = self.as_mut().project();
        let StageProjection::Running { future } = this.stage.as_mut().project() else {
            unreachable!("a finished task is never polled again");
        };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => {
                // Finished with a value: the token, if any, is left alone;
                // what the task handed on was meant to outlive it.
                discard(this.stage, None);
                Poll::Ready(self.conclude(counters, Outcome::Completed, Ok(output)))
            }
            Ok(Poll::Pending) => {
                // Register before the second look at the flag, so a cancel
                // between the two either is seen here or wakes us.
                cancel_waker.register(cx.waker());
                if self.core.header.cancel_requested() {
                    return Poll::Ready(self.end_cancelled(counters));
                }
                Poll::Pending
            }
            Err(payload) => {
                let message = panic_text(&*payload).to_owned();
                discard(this.stage, this.setup.token.as_ref());
                let outcome = Outcome::Panicked(message);
                Poll::Ready(self.conclude(counters, outcome, Err(Failure::Panic(payload))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared part of a task is what the memory target is about: one
    /// allocation of at most 64 bytes beside the boxed future, for a task
    /// whose output is `()` (the `Arc` adds two counts of 8 bytes).
    #[test]
    fn core_of_a_unit_task_fits_in_64_bytes_with_its_counts() {
        assert!(
            std::mem::size_of::<Core<()>>() + 16 <= 64,
            "Core<()> is {} bytes",
            std::mem::size_of::<Core<()>>()
        );
    }
}
