//! One submitted task, in one allocation: the state it shares with its
//! handle, and the user's future with what running it needs.
//!
//! A task is a `Cell`, allocated once in an `Arc` when it is submitted (a
//! second, small allocation holds its tag, priority, timeout or token, only
//! if it sets one): 80 bytes for a 16-byte future, counts included. The
//! cell has three parts:
//!
//! - `Core`, shared with the [`TaskHandle`](crate::TaskHandle) and the tag
//!   registry: the lifecycle state word, one word that is the task's place
//!   in the queue and then the supervisor running it (so a cancel can
//!   unlink it or wake that supervisor), and the handle's waker. No lock:
//!   bits of the state word say whose the waker is.
//! - `Stage`, the future until the task ends and then its result, in one
//!   place: the owner's until the task is DONE, the handle's after.
//! - `Body`, reached only by the task's unique owner, the [`Task`] that
//!   moves from the queue to a supervisor: the id, when it was queued,
//!   whether the future was dropped, and its optional setup.
//!
//! The owner is the only place a user future is polled or dropped, which is
//! why every way a task can end (completion, panic, cancellation, being
//! dropped with the plan or the runtime) resolves its handle from here. The
//! waker a cancel wakes is the supervisor's own, registered once per wait in
//! the plan rather than once per task.

// The task cell reaches its owner-only part through an `UnsafeCell`; see
// `Cell` for the invariant every block relies on.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::counters::Outcomes;
use crate::engine::panic::{Failure, contain_panic, panic_text};
use crate::engine::sync::UnsafeCell as CheckedUnsafeCell;
use crate::engine::sync::{Arc, AtomicU8, AtomicU32, AtomicWaker, Ordering};
use crate::engine::tags::TagInfo;
use crate::tag::Tag;

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
//
// Only the task's owner (see `Cell`) changes the stage bits; the canceller
// sets CANCEL and the handle sets JOIN_WAKER and OUTPUT_TAKEN, each with one
// read-modify-write that leaves the other bits alone. So the owner always
// knows the stage it moves from, and moves with one `fetch_xor` or
// `fetch_or` rather than a compare-exchange loop.
const STAGE_MASK: u8 = 0b011;
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
/// A running task whose end is decided and being counted; DONE follows
/// once the result is stored.
const ENDING: u8 = 3;
/// Set once cancellation was requested; the supervisor drops the future at
/// its next poll, and the canceller wakes that supervisor so the poll
/// happens.
const CANCEL: u8 = 0b100;
/// The handle's waker is in `Core::waker`, handed over to whoever ends the
/// task. While it is clear the slot is the handle's alone; while it is set,
/// the handle leaves the slot alone until it has cleared the bit again and
/// found the task not DONE. The owner looks at the bit once, in the
/// read-modify-write that marks the task DONE: set then, the waker is the
/// owner's to take; clear, it stays where it is (dropped with the cell).
/// The handle's changes to the bit after DONE change nothing.
const JOIN_WAKER: u8 = 0b1000;
/// The handle took the result out of the stage (see `Stage`).
const OUTPUT_TAKEN: u8 = 0b1_0000;

/// The type-erased part of a task's shared state.
pub(crate) struct Header {
    /// While QUEUED, the task's node in the queue; from RUNNING on, the
    /// plan's number for the supervisor running it: whom a cancel wakes.
    /// One word for both, as a task is never in both places. The node is
    /// only read or written with the queue lock held; the supervisor is
    /// written before the task is marked RUNNING (Release), so a canceller
    /// that sees RUNNING (Acquire) reads the right one. 32 bits, so the
    /// header is 8 bytes (see `engine::queue::MAX_QUEUED`).
    place: AtomicU32,
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

    /// The task's node in the queue; only meaningful while QUEUED. Caller
    /// holds the queue lock.
    pub(crate) fn queue_key(&self) -> usize {
        self.place.load(Ordering::Relaxed) as usize
    }

    /// Caller holds the queue lock; `key` fits in 32 bits (see
    /// `engine::queue::MAX_QUEUED`).
    pub(crate) fn set_queue_key(&self, key: u32) {
        self.place.store(key, Ordering::Relaxed);
    }

    /// The supervisor running the task, once it is RUNNING.
    pub(crate) fn supervisor(&self) -> u32 {
        self.place.load(Ordering::Relaxed)
    }

    /// Marks a task as taken off the queue by `supervisor`. Caller holds the
    /// queue lock.
    pub(crate) fn mark_started(&self, supervisor: u32) {
        self.place.store(supervisor, Ordering::Relaxed);
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
                // task's end, this `fetch_or` and the end's `fetch_or` of
                // ENDING in `Cell::conclude` order the two: seeing RUNNING
                // here means the end will see CANCEL and end the task
                // cancelled.
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

/// The part of a task its handle shares: the lifecycle state and the
/// handle's waker.
///
/// There is no lock: the state word says who may touch the waker slot
/// (see `JOIN_WAKER`) and when the result in the task's stage is the
/// handle's to take (DONE, stored with Release before it).
pub(crate) struct Core {
    header: Header,
    /// The waker of the handle's last poll.
    waker: CheckedUnsafeCell<Option<Waker>>,
}

impl Core {
    fn new() -> Core {
        Core {
            header: Header {
                place: AtomicU32::new(u32::MAX),
                state: AtomicU8::new(QUEUED),
            },
            waker: CheckedUnsafeCell::new(None),
        }
    }

    /// Marks the task DONE, for its owner, once its result is stored, and
    /// takes the handle's waker if it handed one over, for the caller to
    /// wake (see [`HandleWaker`]). The task is not DONE yet.
    #[must_use = "the handle is only woken by waking the returned waker"]
    fn mark_done(&self) -> Option<Waker> {
        // The stage bits are the owner's alone (see the stage constants):
        // this load is exact, and the xor turns that stage into DONE,
        // leaving the handle's and the canceller's bits as they are. Release:
        // whoever sees DONE sees the result and the counts before it.
        let stage = self.header.state.load(Ordering::Relaxed) & STAGE_MASK;
        let previous = self.header.state.fetch_xor(stage ^ DONE, Ordering::AcqRel);
        if previous & JOIN_WAKER == 0 {
            return None;
        }
        // SAFETY: JOIN_WAKER was set when the task became DONE, and the
        // handle only reaches the slot after clearing the bit and finding
        // the task not DONE: the slot is the owner's from now on.
        self.waker.with_mut(|slot| unsafe { (*slot).take() })
    }

    /// Leaves `waker` for whoever ends the task, unless the task is DONE:
    /// then returns the state that says so, and the result is the
    /// caller's to take.
    ///
    /// # Safety
    ///
    /// Only the task's one handle calls this, never from two threads at
    /// once.
    unsafe fn register(&self, waker: &Waker) -> Result<(), u8> {
        let state = self.header.state.load(Ordering::Acquire);
        if state & STAGE_MASK == DONE {
            return Err(state);
        }
        if state & JOIN_WAKER != 0 {
            // Take the slot back to look at the waker in it. A task that
            // ended first has taken the waker or is taking it: leave the
            // slot alone (clearing the bit after DONE changes nothing, as
            // the owner looked at it once, as it marked the task DONE).
            let previous = self.header.state.fetch_and(!JOIN_WAKER, Ordering::AcqRel);
            if previous & STAGE_MASK == DONE {
                return Err(previous);
            }
        }
        self.waker.with_mut(|slot| {
            // SAFETY: JOIN_WAKER is clear, so the slot is this handle's
            // alone (the owner only takes the waker when it finds the bit
            // set), and the caller's contract rules out a second handle.
            let slot = unsafe { &mut *slot };
            match slot {
                Some(stored) if stored.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        });
        // Hand the slot over. A task that ended while the bit was clear
        // left this waker where it is (it is dropped with the task), and
        // setting the bit after DONE changes nothing: the caller takes the
        // result.
        let previous = self.header.state.fetch_or(JOIN_WAKER, Ordering::AcqRel);
        if previous & STAGE_MASK == DONE {
            return Err(previous);
        }
        Ok(())
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

/// How a run of a task ended, and the waker of its handle to wake once the
/// end is settled.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) outcome: Outcome,
    pub(crate) handle: HandleWaker,
}

/// The waker of a task's handle, taken as the task resolved.
///
/// Whoever polls a [`TaskHandle`](crate::TaskHandle) chooses its waker, so
/// waking it runs user code, which may panic. That panic must neither take
/// a supervisor down nor stop the plan's bookkeeping half way (a cancel that
/// unwinds before the task is settled leaves `wait_idle` waiting forever),
/// so the task's resolution hands the waker to whoever ends the task, which
/// wakes it last, with [`wake`](HandleWaker::wake), where the panic is
/// contained and logged. Dropping it wakes it the same way (without the
/// plan's name for the log), so no path can lose the wakeup.
#[derive(Default)]
#[must_use = "dropping it wakes the handle at once; `wake` wakes it with the plan's name for the log"]
pub(crate) struct HandleWaker(Option<Wakeup>);

/// A [`HandleWaker`] that has a waker, and what its log line names.
struct Wakeup {
    waker: Waker,
    task: TaskId,
    tag: Option<Arc<TagInfo>>,
}

impl HandleWaker {
    fn new(waker: Option<Waker>, task: TaskId, tag: Option<&Arc<TagInfo>>) -> HandleWaker {
        HandleWaker(waker.map(|waker| Wakeup {
            waker,
            task,
            tag: tag.cloned(),
        }))
    }

    /// Whether the handle was polled before its task resolved, so there is
    /// a waker to wake.
    pub(crate) fn is_waiting(&self) -> bool {
        self.0.is_some()
    }

    /// Wakes the handle, if it was waiting; a panic of its waker is
    /// contained and logged with `plan`'s name.
    // Inlined, with the waking out of line: most tasks end before anyone
    // awaits their handle, and then this is one test of a word.
    #[inline]
    pub(crate) fn wake(mut self, plan: &str) {
        if let Some(wakeup) = self.0.take() {
            wakeup.wake(Some(plan));
        }
    }
}

impl Drop for HandleWaker {
    #[inline]
    fn drop(&mut self) {
        if let Some(wakeup) = self.0.take() {
            wakeup.wake(None);
        }
    }
}

impl Wakeup {
    #[inline(never)]
    fn wake(self, plan: Option<&str>) {
        let Wakeup { waker, task, tag } = self;
        contain_panic(
            || waker.wake(),
            |panic| {
                tracing::error!(
                    plan,
                    task = %task,
                    tag = tag.as_ref().map(|tag| tag.name.as_str()),
                    panic,
                    "a task handle's waker panicked"
                )
            },
        );
    }
}

impl fmt::Debug for HandleWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleWaker")
            .field("waiting", &self.0.is_some())
            .finish()
    }
}

/// The type-erased header of a task that may outlive its run: what the plan
/// keeps of a running tagged task, to cancel it by tag.
pub(crate) trait Control: Send + Sync {
    fn header(&self) -> &Header;
}

/// The handle's view of a task: its header and its result, with the
/// future's type erased.
pub(crate) trait Join<T>: Control {
    /// Polls for the task's result: `Ready(None)` once it was taken.
    ///
    /// # Safety
    ///
    /// Only the task's one handle calls this, never from two threads at
    /// once: the result is taken once, and the waker slot is the handle's.
    unsafe fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Failure>>>;

    /// The same task as a `Control`, for a cancel handle that does not
    /// know the output's type.
    fn control(self: Arc<Self>) -> Arc<dyn Control>;
}

/// The handle's one hold on its task: made once per task (see
/// [`NewTask::join`]) and never cloned, which is what lets it take the
/// result and use the waker slot without a lock.
pub(crate) struct Joiner<T>(Arc<dyn Join<T>>);

impl<T> Joiner<T> {
    pub(crate) fn header(&self) -> &Header {
        self.0.header()
    }

    /// Polls for the task's result, for the handle: `Ready(None)` once the
    /// result was taken.
    pub(crate) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Failure>>> {
        // SAFETY: a `Joiner` is made once per task and is not `Clone`, so
        // this is the task's one handle, and `&mut self` rules out a second
        // poll at the same time.
        unsafe { self.0.poll_output(cx) }
    }

    /// The same task as a `Control`, for a cancel handle that does not
    /// know the output's type.
    pub(crate) fn control(&self) -> Arc<dyn Control> {
        Arc::clone(&self.0).control()
    }
}

/// Counts how a task ended, for the plan and for its tag.
fn record(tag: Option<&Arc<TagInfo>>, plan: &Outcomes, outcome: &Outcome) {
    plan.record(outcome);
    if let Some(tag) = tag {
        tag.outcomes.record(outcome);
    }
}

/// The user's future until the task ends, then its result until the handle
/// takes it: one place for both, as tokio's task cell has, since a task
/// never holds both.
///
/// Which one is there: the future until the body's [`Meta`] says it was
/// dropped; the result from DONE until OUTPUT_TAKEN (every way to DONE
/// stores one, after dropping the future); between the two, neither.
union Stage<F: Future> {
    future: ManuallyDrop<F>,
    output: ManuallyDrop<Result<F::Output, Failure>>,
}

/// A task's tag: its name from submission until the task is queued, then
/// the plan's entry for the tag, registered in the hold of the plan's lock
/// that queues the task (see `engine::tags`). A task that is never queued
/// never registers its tag.
pub(crate) enum TaskTag {
    Named(Tag),
    Registered(Arc<TagInfo>),
}

/// What a task has beyond the defaults: where it may run and how long.
///
/// Allocated only for a task that sets something, so a plain task is one
/// allocation.
pub(crate) struct Setup {
    pub(crate) tag: Option<TaskTag>,
    /// As queued with; kept for the task's span.
    pub(crate) priority: i32,
    /// `None` takes the plan's default timeout; `Some(None)` runs without
    /// one.
    pub(crate) timeout: Option<Option<Duration>>,
    /// The task's own token, for `submit_with` and `submit_blocking`:
    /// cancelled whenever the task ends without a value, so work it handed
    /// elsewhere stops too.
    pub(crate) token: Option<CancellationToken>,
    /// A running tagged task's slot in its tag's registry of running tasks;
    /// only read or written with the queue lock held.
    pub(crate) running_key: usize,
    /// A queued task's entry for its priority or tag in the queue (see
    /// `engine::queue`), `u32::MAX` if it has neither; only read or written
    /// with the queue lock held. Here rather than in the header: only a
    /// task with a priority or a tag has one, and such a task has a setup.
    pub(crate) extra_key: u32,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            tag: None,
            priority: 0,
            timeout: None,
            token: None,
            running_key: usize::MAX,
            extra_key: u32::MAX,
        }
    }
}

impl Setup {
    /// The plan's entry for the task's tag, once the task is queued.
    fn tag(&self) -> Option<&Arc<TagInfo>> {
        match &self.tag {
            Some(TaskTag::Registered(tag)) => Some(tag),
            Some(TaskTag::Named(_)) | None => None,
        }
    }

    /// `None` if everything is the default: then no side part is allocated.
    pub(crate) fn boxed(self) -> Option<Box<Setup>> {
        let is_default = self.tag.is_none()
            && self.priority == 0
            && self.timeout.is_none()
            && self.token.is_none();
        (!is_default).then(|| Box::new(self))
    }
}

/// The body's word of bookkeeping: whether the future was dropped (the
/// top bit), and when the task was queued, as a time since the plan's epoch
/// (the rest: nanoseconds plus one, 0 for none; room for 292 years), in 8
/// bytes where an `Option<Instant>` alone takes 16.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Meta(u64);

impl Meta {
    const NONE: Meta = Meta(0);
    const FUTURE_DROPPED: u64 = 1 << 63;
    const STAMP: u64 = Meta::FUTURE_DROPPED - 1;

    fn future_dropped(self) -> bool {
        self.0 & Meta::FUTURE_DROPPED != 0
    }

    fn mark_future_dropped(&mut self) {
        self.0 |= Meta::FUTURE_DROPPED;
    }

    fn set_queued_at(&mut self, since_epoch: Duration) {
        let nanos = u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX);
        let stamp = nanos.saturating_add(1).min(Meta::STAMP);
        self.0 = (self.0 & Meta::FUTURE_DROPPED) | stamp;
    }

    fn queued_at(self) -> Option<Duration> {
        (self.0 & Meta::STAMP)
            .checked_sub(1)
            .map(Duration::from_nanos)
    }
}

/// The part of a task only its owner touches, beside its stage.
struct Body {
    /// With, besides whether the future was dropped, when the task was
    /// queued, for its queue-wait time; set by the plan just before it
    /// queues the task, if the plan keeps timings. A `Cell` (the standard
    /// one): the owner marks the future dropped through `&Body`, while it
    /// holds the body shared for its id and setup.
    meta: std::cell::Cell<Meta>,
    id: TaskId,
    setup: Option<Box<Setup>>,
}

impl Body {
    /// The task's own token, cancelled whenever the task ends without a
    /// value.
    fn token(&self) -> Option<&CancellationToken> {
        self.setup.as_deref().and_then(|setup| setup.token.as_ref())
    }

    /// The plan's entry for the task's tag, once the task is queued.
    fn tag(&self) -> Option<&Arc<TagInfo>> {
        self.setup.as_deref().and_then(Setup::tag)
    }
}

/// One task in one allocation: the part it shares with its handle (`core`),
/// its future or result (`stage`), and the part only its owner touches
/// (`body`).
///
/// # Ownership of `stage` and `body`
///
/// `body` is reached only through the one value that owns the right to run
/// the task: a [`NewTask`] until it is queued, then the [`Task`] it becomes,
/// which moves from the queue to a supervisor and is never cloned. Handles
/// and the tag registry hold the same allocation as `dyn Join<T>` or
/// `dyn Control`, which only reach `core`. That is the invariant every
/// `unsafe` block below relies on: `&mut` access to `body` comes from
/// `&mut NewTask` or `&mut Task`, `&` access from `&NewTask` or `&Task`.
///
/// `stage` is the owner's the same way until the task is DONE, and the
/// handle's from then on: the owner stores the result and marks the task
/// DONE (Release) as its last touch of the stage, and the handle reaches
/// the stage only once it has seen DONE (Acquire). The two are separate
/// cells so that neither side's reference ever covers the other's part.
///
/// The allocation is an `Arc`'s, which never moves its contents, so the
/// future in `stage` is pinned for as long as it lives.
struct Cell<F: Future> {
    core: Core,
    stage: UnsafeCell<Stage<F>>,
    body: UnsafeCell<Body>,
}

impl<F: Future> Drop for Cell<F> {
    fn drop(&mut self) {
        let state = self.core.header.state.load(Ordering::Acquire);
        let future_dropped = self.body.get_mut().meta.get().future_dropped();
        let stage = self.stage.get_mut();
        if state & STAGE_MASK == DONE {
            if state & OUTPUT_TAKEN == 0 {
                // SAFETY: DONE and not taken: the stage holds the result
                // (see `Stage`), and `&mut self` is the last access.
                unsafe { ManuallyDrop::drop(&mut stage.output) }
            }
        } else if !future_dropped {
            // SAFETY: not DONE and not dropped: the stage holds the future,
            // dropped in place where it was pinned.
            unsafe { ManuallyDrop::drop(&mut stage.future) }
        }
    }
}

// SAFETY: `core` is synchronized (atomics, and a waker slot whose owner the
// state word decides). `stage` and `body` are only reached through the
// unique owner described on `Cell`, and `stage` by the one handle after
// DONE, so two threads never reach them at once: a shared borrow of the
// owner never reaches them from two threads (`NewTask` reaches them only
// through `&mut self`; `Task` is `!Sync` by its marker), and the owner
// moves between threads only with `F: Send` (the owner types are `Send`
// only through this impl and the auto-trait on `UnsafeCell<Stage<F>>:
// Send`, which needs `F: Send` and `F::Output: Send`). The result crosses
// to the handle's thread, hence `F::Output: Send`.
unsafe impl<F> Sync for Cell<F>
where
    F: Future + Send,
    F::Output: Send,
{
}

impl<F> Control for Cell<F>
where
    F: Future + Send,
    F::Output: Send,
{
    fn header(&self) -> &Header {
        &self.core.header
    }
}

impl<F> Join<F::Output> for Cell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    unsafe fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Option<Result<F::Output, Failure>>> {
        // SAFETY: forwarded from the caller's contract.
        let state = match unsafe { self.core.register(cx.waker()) } {
            Ok(()) => return Poll::Pending,
            Err(done) => done,
        };
        if state & OUTPUT_TAKEN != 0 {
            return Poll::Ready(None);
        }
        // Marked first, as `Relaxed`: only this handle reads the flag
        // before the cell's drop, which the `Arc`'s count orders after.
        self.core
            .header
            .state
            .fetch_or(OUTPUT_TAKEN, Ordering::Relaxed);
        // SAFETY: DONE, seen with Acquire by `register`: the owner stored
        // the result and left the stage to the handle (see `Cell`), and
        // OUTPUT_TAKEN was clear, so the result is still there; the flag
        // just set keeps anyone from reading or dropping it again.
        let result = unsafe { ManuallyDrop::take(&mut (*self.stage.get()).output) };
        Poll::Ready(Some(result))
    }

    fn control(self: Arc<Self>) -> Arc<dyn Control> {
        self
    }
}

/// A task made but not yet queued, with its future's type still known, so
/// a refused task can give its future back.
pub(crate) struct NewTask<F: Future> {
    cell: Arc<Cell<F>>,
    /// Whether [`join`](NewTask::join) made the task's one `Joiner`.
    joined: bool,
}

impl<F> NewTask<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Makes a task of `future`: the task's one allocation (two if `setup`
    /// is not the default).
    pub(crate) fn new(future: F, setup: Setup) -> NewTask<F> {
        let cell = Arc::new(Cell {
            core: Core::new(),
            stage: UnsafeCell::new(Stage {
                future: ManuallyDrop::new(future),
            }),
            body: UnsafeCell::new(Body {
                meta: std::cell::Cell::new(Meta::NONE),
                id: TaskId::from_sequence(0),
                setup: setup.boxed(),
            }),
        });
        NewTask {
            cell,
            joined: false,
        }
    }

    /// The handle's half of the task.
    ///
    /// # Panics
    ///
    /// If called twice: a task has one handle.
    pub(crate) fn join(&mut self) -> Joiner<F::Output> {
        assert!(
            !std::mem::replace(&mut self.joined, true),
            "a task has one handle"
        );
        Joiner(Arc::clone(&self.cell) as Arc<dyn Join<F::Output>>)
    }

    fn body(&mut self) -> &mut Body {
        // SAFETY: `&mut self` is the unique owner's (see `Cell`).
        unsafe { &mut *self.cell.body.get() }
    }

    /// Records that the task is being queued now.
    pub(crate) fn stamp_queued(&mut self, since_epoch: Duration) {
        let meta = self.body().meta.get_mut();
        meta.set_queued_at(since_epoch);
    }

    /// The name of the task's tag, until the task is queued.
    pub(crate) fn tag_name(&mut self) -> Option<&str> {
        match self.body().setup.as_ref()?.tag.as_ref()? {
            TaskTag::Named(name) => Some(name.as_str()),
            TaskTag::Registered(_) => None,
        }
    }

    /// Swaps the name of the task's tag for the plan's entry for it, which
    /// `register` returns given the name, as the task is queued; returns
    /// that entry. Does nothing for a task without a tag, or whose tag is
    /// registered already.
    pub(crate) fn register_tag(
        &mut self,
        register: impl FnOnce(Tag) -> Arc<TagInfo>,
    ) -> Option<&Arc<TagInfo>> {
        let setup = self.body().setup.as_mut()?;
        if let Some(TaskTag::Named(_)) = setup.tag {
            let Some(TaskTag::Named(name)) = setup.tag.take() else {
                unreachable!("matched just above");
            };
            setup.tag = Some(TaskTag::Registered(register(name)));
        }
        setup.tag()
    }

    /// Erases the future's type, to queue the task.
    pub(crate) fn into_task(self) -> Task {
        Task(self.cell, PhantomData)
    }

    /// Takes the future back out of a task that was never queued, for
    /// handing a refused task back to its submitter.
    pub(crate) fn into_future(mut self) -> F {
        let meta = self.body().meta.get_mut();
        assert!(!meta.future_dropped(), "a refused task is never polled");
        // Marked first, so the cell's drop leaves the stage alone.
        meta.mark_future_dropped();
        // SAFETY: `self` is the unique owner's (see `Cell`) and the task was
        // never queued, so never polled and never pinned: moving the future
        // out is allowed. It was there (checked) and is marked taken.
        unsafe { ManuallyDrop::take(&mut (*self.cell.stage.get()).future) }
    }
}

/// A queued or running task with its future's type erased: the unique
/// right to run it, as the queue and the supervisors hold it.
///
/// Dropping a task that has not ended (a cancel of a queued task, an abort,
/// the runtime dropping its supervisor) drops its future and resolves its
/// handle as cancelled; the code that dropped it counts it.
///
/// Not `Sync`: the body is reached through `&Task` too, and a future need
/// not be `Sync`, so a `&Task` must not be shared between threads.
pub(crate) struct Task(Arc<dyn Runnable>, PhantomData<std::cell::Cell<()>>);

/// A task's header, held without keeping the task alive: what the plan
/// keeps of the task each supervisor runs, to cancel it by id or with all
/// the others. Once the task has ended and its handles are gone, its output
/// is dropped as usual and this no longer upgrades.
pub(crate) struct WeakTask(std::sync::Weak<dyn Runnable>);

impl WeakTask {
    /// The task's header, if the task is still alive.
    pub(crate) fn upgrade(&self) -> Option<Arc<dyn Control>> {
        self.0.upgrade().map(Runnable::control)
    }
}

/// What a supervisor does with a task, type-erased.
///
/// # Safety
///
/// Every method but `header` reaches the task's `body` or `stage`: the
/// caller must be the task's unique owner (see `Cell`), holding it by
/// `&mut` for the methods marked as writing.
trait Runnable: Control {
    unsafe fn id(&self) -> TaskId;

    /// Writes.
    unsafe fn set_id(&self, id: TaskId);

    unsafe fn setup(&self) -> Option<&Setup>;

    /// Writes.
    #[allow(clippy::mut_from_ref)]
    unsafe fn setup_mut(&self) -> Option<&mut Setup>;

    unsafe fn queued_at(&self) -> Option<Duration>;

    /// Writes.
    unsafe fn time_out(&self, counters: &Outcomes) -> Ended;

    /// Writes.
    unsafe fn poll_run(
        &self,
        cx: &mut Context<'_>,
        counters: &Outcomes,
        cancel_waker: &AtomicWaker,
    ) -> Poll<Ended>;

    /// Writes. Ends a task that is not DONE, as cancelled.
    unsafe fn abandon(&self) -> HandleWaker;

    fn control(self: Arc<Self>) -> Arc<dyn Control>;
}

impl Task {
    pub(crate) fn header(&self) -> &Header {
        self.0.header()
    }

    pub(crate) fn id(&self) -> TaskId {
        // SAFETY: `&self` on the unique owner (see `Cell`).
        unsafe { self.0.id() }
    }

    /// Numbers the task. Caller holds the queue lock and queues it next, so
    /// ids follow queue order.
    pub(crate) fn set_id(&mut self, id: TaskId) {
        // SAFETY: `&mut self` on the unique owner (see `Cell`).
        unsafe { self.0.set_id(id) }
    }

    fn setup(&self) -> Option<&Setup> {
        // SAFETY: `&self` on the unique owner (see `Cell`); the side part
        // is only written through `&mut self`.
        unsafe { self.0.setup() }
    }

    /// The plan's entry for the task's tag.
    pub(crate) fn tag(&self) -> Option<&Arc<TagInfo>> {
        self.setup().and_then(Setup::tag)
    }

    /// How long the task may run once started, given the plan's default.
    pub(crate) fn timeout(&self, plan_default: Option<Duration>) -> Option<Duration> {
        self.setup()
            .and_then(|setup| setup.timeout)
            .unwrap_or(plan_default)
    }

    pub(crate) fn priority(&self) -> i32 {
        self.setup().map_or(0, |setup| setup.priority)
    }

    /// The task's own token, for `task_with` and blocking tasks.
    pub(crate) fn token(&self) -> Option<&CancellationToken> {
        self.setup().and_then(|setup| setup.token.as_ref())
    }

    /// When the task was queued, as a time since the plan's epoch; `None`
    /// unless the plan keeps timings.
    pub(crate) fn queued_at(&self) -> Option<Duration> {
        // SAFETY: `&self` on the unique owner (see `Cell`).
        unsafe { self.0.queued_at() }
    }

    /// A running tagged task's slot in its tag's registry of running tasks;
    /// only read or written with the queue lock held.
    pub(crate) fn running_key(&self) -> usize {
        self.setup().map_or(usize::MAX, |setup| setup.running_key)
    }

    pub(crate) fn set_running_key(&mut self, key: usize) {
        // SAFETY: `&mut self` on the unique owner (see `Cell`).
        if let Some(setup) = unsafe { self.0.setup_mut() } {
            setup.running_key = key;
        }
    }

    /// A queued task's entry for its priority or tag in the queue, or
    /// `u32::MAX`; only read or written with the queue lock held.
    pub(crate) fn extra_key(&self) -> u32 {
        self.setup().map_or(u32::MAX, |setup| setup.extra_key)
    }

    /// Sets the entry.
    ///
    /// # Panics
    ///
    /// If the task has no setup: only a task with a priority or a tag has
    /// an entry, and `Setup::boxed` keeps the setup of every such task.
    pub(crate) fn set_extra_key(&mut self, key: u32) {
        // SAFETY: `&mut self` on the unique owner (see `Cell`).
        unsafe { self.0.setup_mut() }
            .expect("a task with a priority or a tag has a setup")
            .extra_key = key;
    }

    /// A shared handle on the header, for registries that outlive a run.
    pub(crate) fn control(&self) -> Arc<dyn Control> {
        Arc::clone(&self.0).control()
    }

    /// A handle on the header that does not keep the task alive.
    pub(crate) fn downgrade(&self) -> WeakTask {
        WeakTask(Arc::downgrade(&self.0))
    }

    /// Counts how the task ended, for the plan and for its tag.
    pub(crate) fn record(&self, plan: &Outcomes, outcome: &Outcome) {
        record(self.tag(), plan, outcome);
    }

    /// Counts the task as cancelled before it started, for its tag; the
    /// caller counts it for the plan.
    pub(crate) fn record_cancelled_queued_for_tag(&self) {
        if let Some(tag) = self.tag() {
            tag.outcomes.record_cancelled_queued(1);
        }
    }

    /// Drops the future of a task that ran past its timeout: counts it and
    /// resolves its handle with a timeout error. The caller wakes the
    /// handle (`Ended::handle`) once the task is settled.
    pub(crate) fn time_out(&mut self, counters: &Outcomes) -> Ended {
        // SAFETY: `&mut self` on the unique owner (see `Cell`).
        unsafe { self.0.time_out(counters) }
    }

    /// Polls the user's future once, unless cancellation was requested.
    ///
    /// When the future is pending, `cancel_waker` (the supervisor's) holds
    /// `cx`'s waker before the cancel flag is looked at again, so a cancel
    /// between the poll and that look is seen or wakes the supervisor.
    ///
    /// When the task ends, in this order: the future is dropped (its
    /// destructors run), the outcome is counted in `counters`, and the
    /// handle resolves; so whoever sees the handle resolved sees the count.
    /// The handle's waker is returned (`Ended::handle`), for the caller to
    /// wake once the task is settled. After `Ready` the task must not be
    /// polled again.
    pub(crate) fn poll_run(
        &mut self,
        cx: &mut Context<'_>,
        counters: &Outcomes,
        cancel_waker: &AtomicWaker,
    ) -> Poll<Ended> {
        // SAFETY: `&mut self` on the unique owner (see `Cell`).
        unsafe { self.0.poll_run(cx, counters, cancel_waker) }
    }

    /// Ends a task that has not ended (a cancel of a queued task, an abort,
    /// the runtime dropping its supervisor): drops its future and resolves
    /// its handle as cancelled; the caller has counted it. Returns the
    /// handle's waker, for the caller to wake once the task is settled; it
    /// has none if the task had ended already.
    #[inline]
    pub(crate) fn end(&mut self) -> HandleWaker {
        // Decided by the state, not the stage: an end interrupted between
        // dropping the future and storing the result (a panic in a metrics
        // recorder or a tracing subscriber as it was counted) must still
        // resolve the handle. Only the owner, the caller, sets DONE, so the
        // load is exact; and most tasks have ended by the time they are
        // dropped, which it spares the rest.
        if self.header().is_done() {
            return HandleWaker::default();
        }
        // SAFETY: `&mut self` on the unique owner (see `Cell`).
        unsafe { self.0.abandon() }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A task nobody ended with `end` wakes its handle here, where the
        // waker's panic is contained too.
        drop(self.end());
    }
}

impl<F> Cell<F>
where
    F: Future + Send,
    F::Output: Send,
{
    /// # Safety
    ///
    /// The caller is the unique owner and holds it by `&mut` (see `Cell`).
    #[allow(clippy::mut_from_ref)]
    unsafe fn body_mut(&self) -> &mut Body {
        // SAFETY: exclusive by the caller's contract.
        unsafe { &mut *self.body.get() }
    }

    /// # Safety
    ///
    /// The caller is the unique owner (see `Cell`).
    unsafe fn body(&self) -> &Body {
        // SAFETY: no `&mut` exists while the owner is borrowed shared.
        unsafe { &*self.body.get() }
    }

    /// The future, unless it was dropped.
    ///
    /// # Safety
    ///
    /// The caller is the unique owner and holds it by `&mut` (see `Cell`),
    /// and the task is not DONE.
    #[allow(clippy::mut_from_ref)]
    unsafe fn future(&self) -> Option<Pin<&mut F>> {
        // SAFETY: the caller's contract.
        if unsafe { self.body() }.meta.get().future_dropped() {
            return None;
        }
        // SAFETY: before DONE the stage is the owner's (caller's contract);
        // not dropped, so it holds the future (see `Stage`); pinned because
        // the `Arc`'s allocation never moves and the future is only ever
        // dropped in place.
        Some(unsafe { Pin::new_unchecked(&mut *(*self.stage.get()).future) })
    }

    /// Drops the future in place, once, after cancelling `token` if the
    /// task has one; later calls do nothing. A panicking destructor must not
    /// take the supervisor down with it, so its panic is contained and
    /// logged.
    ///
    /// # Safety
    ///
    /// As for [`future`](Cell::future).
    unsafe fn discard(&self, token: Option<&CancellationToken>) {
        if let Some(token) = token {
            cancel_token(token);
        }
        // SAFETY: the caller's contract.
        let meta = &unsafe { self.body() }.meta;
        let mut marked = meta.get();
        if marked.future_dropped() {
            return;
        }
        // Marked first: if the destructor panics, the future still counts
        // as dropped and is never touched again.
        marked.mark_future_dropped();
        meta.set(marked);
        // SAFETY: the stage is the owner's and holds the future (not
        // dropped: checked), which is never used after (marked).
        let future = unsafe { &mut (*self.stage.get()).future };
        contain_panic(
            // SAFETY: as above; dropping a pinned value in place is what
            // `Pin` allows.
            || unsafe { ManuallyDrop::drop(future) },
            |panic| tracing::error!(panic, "a task's destructor panicked"),
        );
    }

    /// Stores the task's result and marks it DONE: the owner's last touch
    /// of the stage. Returns the handle's waker, if it was waiting.
    ///
    /// # Safety
    ///
    /// As for [`future`](Cell::future), and the future was dropped.
    unsafe fn store(&self, result: Result<F::Output, Failure>) -> Option<Waker> {
        // SAFETY: the stage is the owner's until DONE, and holds nothing
        // (the future was dropped, no result stored yet), so writing over
        // it leaks nothing.
        unsafe { (*self.stage.get()).output = ManuallyDrop::new(result) };
        self.core.mark_done()
    }

    /// Ends the task as cancelled: drops the future, counts the cancel, then
    /// resolves the handle.
    ///
    /// # Safety
    ///
    /// As for [`future`](Cell::future).
    unsafe fn end_cancelled(&self, counters: &Outcomes) -> Ended {
        // SAFETY: the caller's contract.
        let body = unsafe { self.body() };
        // SAFETY: the caller's contract.
        unsafe { self.discard(body.token()) };
        // SAFETY: the caller's contract; the future is dropped.
        unsafe { self.resolve_cancelled(body.id, body.tag(), counters) }
    }

    /// Counts a task whose future is dropped as cancelled, then resolves its
    /// handle so.
    ///
    /// # Safety
    ///
    /// As for [`store`](Cell::store).
    unsafe fn resolve_cancelled(
        &self,
        id: TaskId,
        tag: Option<&Arc<TagInfo>>,
        counters: &Outcomes,
    ) -> Ended {
        record(tag, counters, &Outcome::Cancelled);
        // SAFETY: the caller's contract.
        let waker = unsafe { self.store(Err(Failure::Cancelled)) };
        Ended {
            outcome: Outcome::Cancelled,
            handle: HandleWaker::new(waker, id, tag),
        }
    }

    /// Ends a running task whose future is already dropped with `outcome`
    /// and `result`, unless its cancel was requested first: then counts it
    /// and resolves it as cancelled.
    ///
    /// The decision is one `fetch_or` of ENDING, racing the canceller's
    /// `fetch_or` of CANCEL in `Header::request_cancel`: exactly one of them
    /// sees the other's bit, so a cancel reported as requested (and counted
    /// by `cancel_tag`) always ends the task cancelled. The end is counted
    /// once decided, and before the handle can see it.
    ///
    /// # Safety
    ///
    /// As for [`store`](Cell::store), and the task is RUNNING.
    unsafe fn conclude(
        &self,
        counters: &Outcomes,
        outcome: Outcome,
        result: Result<F::Output, Failure>,
    ) -> Ended {
        // SAFETY: the caller's contract.
        let body = unsafe { self.body() };
        let tag = body.tag();
        // RUNNING | ENDING is ENDING.
        let previous = self.core.header.state.fetch_or(ENDING, Ordering::AcqRel);
        if previous & CANCEL == 0 {
            record(tag, counters, &outcome);
            // SAFETY: the caller's contract.
            let waker = unsafe { self.store(result) };
            return Ended {
                outcome,
                handle: HandleWaker::new(waker, body.id, tag),
            };
        }
        // The cancel came first and was reported as requested; the value,
        // timeout or panic of the same instant gives way to it.
        if let Some(token) = body.token() {
            cancel_token(token);
        }
        if let Outcome::Panicked(message) = &outcome {
            tracing::error!(
                task = %body.id,
                tag = tag.map(|tag| tag.name.as_str()),
                panic = %message,
                "task panicked as it was cancelled; counted as cancelled"
            );
        }
        contain_panic(
            || drop(result),
            |panic| tracing::error!(task = %body.id, panic, "a task's output destructor panicked"),
        );
        // SAFETY: the caller's contract.
        unsafe { self.resolve_cancelled(body.id, tag, counters) }
    }
}

/// Cancels a task's own token. That wakes whatever waits on it, with
/// wakers that are user code: a panic of one is contained and logged.
fn cancel_token(token: &CancellationToken) {
    contain_panic(
        || token.cancel(),
        |panic| tracing::error!(panic, "a waker of a task's token panicked"),
    );
}

impl<F> Runnable for Cell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    unsafe fn id(&self) -> TaskId {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.body().id }
    }

    unsafe fn set_id(&self, id: TaskId) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.body_mut() }.id = id;
    }

    unsafe fn setup(&self) -> Option<&Setup> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.body() }.setup.as_deref()
    }

    unsafe fn setup_mut(&self) -> Option<&mut Setup> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.body_mut() }.setup.as_deref_mut()
    }

    unsafe fn queued_at(&self) -> Option<Duration> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.body() }.meta.get().queued_at()
    }

    unsafe fn time_out(&self, counters: &Outcomes) -> Ended {
        // SAFETY: forwarded from the caller's contract; a task that timed
        // out is RUNNING.
        unsafe {
            self.discard(self.body().token());
            self.conclude(counters, Outcome::TimedOut, Err(Failure::TimedOut))
        }
    }

    unsafe fn poll_run(
        &self,
        cx: &mut Context<'_>,
        counters: &Outcomes,
        cancel_waker: &AtomicWaker,
    ) -> Poll<Ended> {
        if self.core.header.cancel_requested() {
            // SAFETY: forwarded from the caller's contract: a task being
            // polled is not DONE.
            return Poll::Ready(unsafe { self.end_cancelled(counters) });
        }
        // SAFETY: as above.
        let Some(future) = (unsafe { self.future() }) else {
            unreachable!("a finished task is never polled again");
        };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => {
                // Finished with a value: the token, if any, is left alone;
                // what the task handed on was meant to outlive it.
                // SAFETY: as above; the task is RUNNING.
                Poll::Ready(unsafe {
                    self.discard(None);
                    self.conclude(counters, Outcome::Completed, Ok(output))
                })
            }
            Ok(Poll::Pending) => {
                // Register before the second look at the flag, so a cancel
                // between the two either is seen here or wakes us.
                cancel_waker.register(cx.waker());
                if self.core.header.cancel_requested() {
                    // SAFETY: as above.
                    return Poll::Ready(unsafe { self.end_cancelled(counters) });
                }
                Poll::Pending
            }
            Err(payload) => {
                let message = panic_text(&*payload).to_owned();
                let outcome = Outcome::Panicked(message);
                // SAFETY: as above; the task is RUNNING.
                Poll::Ready(unsafe {
                    self.discard(self.body().token());
                    self.conclude(counters, outcome, Err(Failure::panic(payload)))
                })
            }
        }
    }

    unsafe fn abandon(&self) -> HandleWaker {
        // SAFETY: forwarded from the caller's contract; not DONE (the
        // trait's contract for this method, checked by `Task::end`).
        let body = unsafe { self.body() };
        // SAFETY: as above.
        unsafe { self.discard(body.token()) };
        // SAFETY: as above; the future is dropped.
        let waker = unsafe { self.store(Err(Failure::Cancelled)) };
        HandleWaker::new(waker, body.id, body.tag())
    }

    fn control(self: Arc<Self>) -> Arc<dyn Control> {
        self
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A future of exactly 16 bytes, the size the memory target is stated
    /// for.
    struct Sixteen([u64; 2]);

    impl Future for Sixteen {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            std::hint::black_box(self.0);
            Poll::Ready(())
        }
    }

    /// One allocation per task: the `Arc` holding the cell (its two counts
    /// included) is all a task with no setup allocates. This pins the size
    /// of that allocation, so a field that grows it fails here before it
    /// shows in the memory benchmark.
    #[test]
    fn a_task_of_a_16_byte_future_is_one_allocation_of_at_most_80_bytes() {
        assert_eq!(std::mem::size_of::<Sixteen>(), 16);
        let allocation = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Cell<Sixteen>>();
        println!("a task of a 16-byte future allocates {allocation} bytes");
        assert!(allocation <= 80, "a task cell is {allocation} bytes");
    }

    /// A task with no tag, priority, timeout or token has no side part.
    #[test]
    fn only_a_task_that_sets_something_allocates_its_setup() {
        assert!(Setup::default().boxed().is_none());
        let setup = Setup {
            priority: 3,
            ..Setup::default()
        };
        assert!(setup.boxed().is_some());
    }
    /// These drive the cell through each way a task can end, without a
    /// runtime, so they run under Miri (`.ci/run`), which checks every
    /// `unsafe` block above for aliasing, use after free, double drops and
    /// leaks on each path.
    mod lifecycle {
        use super::super::*;
        use std::sync::atomic::AtomicUsize as Count;
        use std::sync::atomic::Ordering::SeqCst;

        /// A future that counts its drops and is pending until `ready`.
        struct Probe {
            drops: std::sync::Arc<Count>,
            polls_until_ready: usize,
        }

        impl Future for Probe {
            type Output = u32;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
                if self.polls_until_ready == 0 {
                    return Poll::Ready(7);
                }
                self.polls_until_ready -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }

        impl Drop for Probe {
            fn drop(&mut self) {
                self.drops.fetch_add(1, SeqCst);
            }
        }

        fn probe(
            polls_until_ready: usize,
            setup: Setup,
        ) -> (Task, Joiner<u32>, std::sync::Arc<Count>) {
            let drops = std::sync::Arc::new(Count::new(0));
            let future = Probe {
                drops: drops.clone(),
                polls_until_ready,
            };
            let mut new = NewTask::new(future, setup);
            let join = new.join();
            (new.into_task(), join, drops)
        }

        fn output(join: &mut Joiner<u32>) -> Poll<Option<Result<u32, Failure>>> {
            join.poll_output(&mut Context::from_waker(Waker::noop()))
        }

        fn run(task: &mut Task, counters: &Outcomes) -> Poll<Outcome> {
            let cancel_waker = AtomicWaker::new();
            let mut cx = Context::from_waker(Waker::noop());
            task.poll_run(&mut cx, counters, &cancel_waker)
                .map(|ended| {
                    ended.handle.wake("test");
                    ended.outcome
                })
        }

        #[test]
        fn a_completed_task_hands_its_value_over_and_drops_its_future_once() {
            let counters = Outcomes::default();
            let (mut task, mut join, drops) = probe(1, Setup::default());
            task.header().mark_started(0);
            assert!(output(&mut join).is_pending());
            assert!(run(&mut task, &counters).is_pending());
            assert!(matches!(
                run(&mut task, &counters),
                Poll::Ready(Outcome::Completed)
            ));
            assert_eq!(drops.load(SeqCst), 1, "dropped as it completed");
            drop(task);
            assert_eq!(drops.load(SeqCst), 1, "not dropped again with the task");
            assert!(matches!(output(&mut join), Poll::Ready(Some(Ok(7)))));
            assert!(matches!(output(&mut join), Poll::Ready(None)));
            assert_eq!(counters.completed.load(SeqCst), 1);
        }

        /// Counts the wakes of a waker made from it.
        #[derive(Default)]
        struct Wakes(Count);

        impl std::task::Wake for Wakes {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, SeqCst);
            }
        }

        fn poll_with(join: &mut Joiner<u32>, wakes: &std::sync::Arc<Wakes>) -> Poll<Option<u32>> {
            let waker = Waker::from(wakes.clone());
            join.poll_output(&mut Context::from_waker(&waker))
                .map(|output| output.map(|result| result.ok().expect("completed")))
        }

        /// The handle's waker changes hands without a lock (`JOIN_WAKER`):
        /// a handle polled with one waker and then another is woken through
        /// the second only, once, as its task ends; polled after the end, it
        /// gets the result at once and no waker is called again. Fails if
        /// the ender misses a waker handed over, wakes a replaced one, or
        /// a second poll loses the first's hand-over.
        #[test]
        fn the_end_wakes_the_waker_of_the_handles_last_poll_once() {
            let counters = Outcomes::default();
            let (first, second) = (
                std::sync::Arc::new(Wakes::default()),
                std::sync::Arc::new(Wakes::default()),
            );
            let (mut task, mut join, _drops) = probe(1, Setup::default());
            task.header().mark_started(0);
            assert!(poll_with(&mut join, &first).is_pending());
            assert!(poll_with(&mut join, &second).is_pending());
            assert!(
                poll_with(&mut join, &second).is_pending(),
                "the same waker again"
            );
            assert!(run(&mut task, &counters).is_pending());
            assert_eq!((first.0.load(SeqCst), second.0.load(SeqCst)), (0, 0));
            assert!(matches!(
                run(&mut task, &counters),
                Poll::Ready(Outcome::Completed)
            ));
            assert_eq!((first.0.load(SeqCst), second.0.load(SeqCst)), (0, 1));
            assert_eq!(poll_with(&mut join, &first), Poll::Ready(Some(7)));
            drop(task);
            assert_eq!((first.0.load(SeqCst), second.0.load(SeqCst)), (0, 1));
        }

        /// A result that counts its drops.
        struct Counted(std::sync::Arc<Count>);

        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }

        /// The result takes the future's place in the cell and leaves it
        /// once: taken by the handle, it is the taker's to drop, and the
        /// cell leaves it alone (`OUTPUT_TAKEN`); never taken, the cell
        /// drops it with itself. Fails if the cell's drop ignores the flag
        /// (a second drop) or the stage (a result never dropped).
        #[test]
        fn a_result_is_dropped_once_whether_or_not_the_handle_took_it() {
            for taken in [false, true] {
                let drops = std::sync::Arc::new(Count::new(0));
                let result = Counted(drops.clone());
                let mut new = NewTask::new(async move { result }, Setup::default());
                let mut join = new.join();
                let mut task = new.into_task();
                task.header().mark_started(0);
                let counters = Outcomes::default();
                let ended = task.poll_run(
                    &mut Context::from_waker(Waker::noop()),
                    &counters,
                    &AtomicWaker::new(),
                );
                assert!(matches!(
                    ended,
                    Poll::Ready(Ended {
                        outcome: Outcome::Completed,
                        ..
                    })
                ));
                drop(ended);
                drop(task);
                assert_eq!(drops.load(SeqCst), 0, "the cell still holds the result");
                if taken {
                    let output = join.poll_output(&mut Context::from_waker(Waker::noop()));
                    let Poll::Ready(Some(Ok(counted))) = output else {
                        panic!("the result is there");
                    };
                    drop(counted);
                    assert_eq!(drops.load(SeqCst), 1, "dropped by its taker");
                }
                drop(join);
                assert_eq!(drops.load(SeqCst), 1, "dropped once (taken: {taken})");
            }
        }

        /// A handle polled only after its task ended was never waiting:
        /// the end wakes nobody, and the result is there at once.
        #[test]
        fn a_handle_first_polled_after_the_end_is_not_woken() {
            let counters = Outcomes::default();
            let wakes = std::sync::Arc::new(Wakes::default());
            let (mut task, mut join, _drops) = probe(0, Setup::default());
            task.header().mark_started(0);
            let ended = task
                .poll_run(
                    &mut Context::from_waker(Waker::noop()),
                    &counters,
                    &AtomicWaker::new(),
                )
                .map(|ended| ended.handle.is_waiting());
            assert_eq!(ended, Poll::Ready(false));
            assert_eq!(poll_with(&mut join, &wakes), Poll::Ready(Some(7)));
            assert_eq!(wakes.0.load(SeqCst), 0);
        }

        #[test]
        fn a_task_dropped_in_the_queue_drops_its_future_and_resolves_cancelled() {
            let (task, mut join, drops) = probe(0, Setup::default());
            drop(task);
            assert_eq!(drops.load(SeqCst), 1);
            assert!(join.header().is_done());
            assert!(matches!(
                output(&mut join),
                Poll::Ready(Some(Err(Failure::Cancelled)))
            ));
        }

        #[test]
        fn a_cancel_of_a_running_task_drops_it_at_its_next_poll() {
            let counters = Outcomes::default();
            let (mut task, mut join, drops) = probe(usize::MAX, Setup::default());
            task.header().mark_started(0);
            assert!(run(&mut task, &counters).is_pending());
            assert_eq!(join.header().request_cancel(), CancelRequest::Requested);
            assert!(matches!(
                run(&mut task, &counters),
                Poll::Ready(Outcome::Cancelled)
            ));
            assert_eq!(drops.load(SeqCst), 1);
            drop(task);
            assert_eq!(drops.load(SeqCst), 1);
            assert!(matches!(
                output(&mut join),
                Poll::Ready(Some(Err(Failure::Cancelled)))
            ));
            assert_eq!(counters.cancelled.load(SeqCst), 1);
        }

        #[test]
        fn a_panicking_task_resolves_with_its_panic() {
            let counters = Outcomes::default();
            let mut new = NewTask::new(async { panic!("boom") }, Setup::default());
            let mut join: Joiner<()> = new.join();
            let mut task = new.into_task();
            task.header().mark_started(0);
            let cancel_waker = AtomicWaker::new();
            let mut cx = Context::from_waker(Waker::noop());
            let ended = task.poll_run(&mut cx, &counters, &cancel_waker);
            assert!(
                matches!(ended, Poll::Ready(Ended { outcome: Outcome::Panicked(ref text), .. }) if text == "boom")
            );
            let result = join.poll_output(&mut cx);
            assert!(matches!(result, Poll::Ready(Some(Err(Failure::Panic(_))))));
            assert_eq!(counters.panicked.load(SeqCst), 1);
        }

        #[test]
        fn a_timed_out_task_drops_its_future_and_its_side_part() {
            let counters = Outcomes::default();
            let setup = Setup {
                timeout: Some(Some(Duration::from_secs(1))),
                token: Some(CancellationToken::new()),
                ..Setup::default()
            };
            let (mut task, mut join, drops) = probe(usize::MAX, setup);
            let token = task.setup().and_then(|setup| setup.token.clone()).unwrap();
            task.header().mark_started(0);
            assert!(run(&mut task, &counters).is_pending());
            assert!(matches!(
                task.time_out(&counters).outcome,
                Outcome::TimedOut
            ));
            assert_eq!(drops.load(SeqCst), 1);
            assert!(
                token.is_cancelled(),
                "a task that ends without a value cancels its token"
            );
            drop(task);
            assert!(matches!(
                output(&mut join),
                Poll::Ready(Some(Err(Failure::TimedOut)))
            ));
            assert_eq!(counters.timed_out.load(SeqCst), 1);
        }

        #[test]
        fn a_refused_task_gives_its_future_back_unpolled() {
            let drops = std::sync::Arc::new(Count::new(0));
            let future = Probe {
                drops: drops.clone(),
                polls_until_ready: 3,
            };
            let new = NewTask::new(future, Setup::default());
            let back = new.into_future();
            assert_eq!(drops.load(SeqCst), 0);
            assert_eq!(back.polls_until_ready, 3);
            drop(back);
            assert_eq!(drops.load(SeqCst), 1);
        }

        /// A task made and dropped without ever being queued or polled
        /// drops its future once, with the allocation (the stage's own
        /// drop: no `Task` ever ended it).
        #[test]
        fn a_task_never_queued_drops_its_future_once() {
            let drops = std::sync::Arc::new(Count::new(0));
            let future = Probe {
                drops: drops.clone(),
                polls_until_ready: 1,
            };
            let mut new = NewTask::new(future, Setup::default());
            let join = new.join();
            drop(new);
            assert_eq!(drops.load(SeqCst), 0, "the handle keeps the cell");
            drop(join);
            assert_eq!(drops.load(SeqCst), 1);
        }

        /// The handle and the owner on two threads: whichever lets go of
        /// the allocation last frees it, once.
        #[test]
        fn a_task_run_on_another_thread_meets_its_handle_and_frees_once() {
            for handle_leaves_first in [false, true] {
                let counters = std::sync::Arc::new(Outcomes::default());
                let (mut task, mut join, drops) = probe(2, Setup::default());
                task.header().mark_started(0);
                let runner = {
                    let counters = counters.clone();
                    std::thread::spawn(move || while run(&mut task, &counters).is_pending() {})
                };
                if handle_leaves_first {
                    drop(join);
                    runner.join().unwrap();
                } else {
                    let value = loop {
                        if let Poll::Ready(result) = output(&mut join) {
                            break result;
                        }
                        std::thread::yield_now();
                    };
                    assert!(matches!(value, Some(Ok(7))));
                    runner.join().unwrap();
                }
                assert_eq!(drops.load(SeqCst), 1);
            }
        }

        /// A cancel from another thread racing the task's polls ends it
        /// once, cancelled or completed, never both.
        #[test]
        fn a_cancel_from_another_thread_ends_the_task_once() {
            let counters = std::sync::Arc::new(Outcomes::default());
            let (mut task, mut join, drops) = probe(3, Setup::default());
            task.header().mark_started(0);
            let canceller = {
                let control = join.control();
                std::thread::spawn(move || control.header().request_cancel())
            };
            while run(&mut task, &counters).is_pending() {}
            canceller.join().unwrap();
            drop(task);
            assert_eq!(drops.load(SeqCst), 1);
            let ended = counters.completed.load(SeqCst) + counters.cancelled.load(SeqCst);
            assert_eq!(ended, 1);
            assert!(matches!(output(&mut join), Poll::Ready(Some(_))));
        }

        /// Written for the mutants of this file that the plan-level suites
        /// let through (see "Mutation testing" in `docs/guarantees.md`):
        /// each pins one accessor or state change of the cell directly.
        ///
        /// Left alive, because they change nothing observable:
        /// - `replace | with ^ in Header::mark_unqueued_for_cancel`:
        ///   `RUNNING ^ CANCEL` is the same constant as `RUNNING | CANCEL`.
        /// - `delete match arm DONE in Header::request_cancel`: the general
        ///   arm reports `AlreadyDone` for a DONE task too, and the CANCEL bit
        ///   it then sets on a DONE task is never read (a task is not polled
        ///   after DONE, and `is_done` masks the stage).
        mod mutants {
            use super::*;
            use crate::engine::tags::TagRegistry;
            use crate::tag::Tag;
            use std::task::{RawWaker, RawWakerVTable};

            #[test]
            fn an_id_prints_as_its_number() {
                let id = TaskId::from_sequence(4);
                assert_eq!(id.as_u64(), 5);
                assert_eq!(id.to_string(), "5");
                assert_eq!(format!("{id:?}"), "TaskId(5)");
            }

            /// Kills `is_queued -> true`, `is_done -> true`, `queue_key ->
            /// 0/1`, `set_queue_key -> ()`, `extra_key -> 0/1`,
            /// `set_extra_key -> ()`, `supervisor -> 0/1` and
            /// `mark_started -> ()`.
            #[test]
            fn the_header_reports_each_stage_and_where_the_task_is() {
                let counters = Outcomes::default();
                // A priority, as a task with an entry for one has a setup.
                let setup = Setup {
                    priority: 2,
                    ..Setup::default()
                };
                let (mut task, join, _drops) = probe(0, setup);
                let header = join.header();
                assert!(header.is_queued() && !header.is_done());
                header.set_queue_key(7);
                assert_eq!(header.queue_key(), 7);
                assert_eq!(task.extra_key(), u32::MAX, "none until queued");
                task.set_extra_key(9);
                assert_eq!(task.extra_key(), 9);
                task.header().mark_started(5);
                assert_eq!(header.supervisor(), 5);
                assert!(!header.is_queued() && !header.is_done());
                assert!(matches!(
                    run(&mut task, &counters),
                    Poll::Ready(Outcome::Completed)
                ));
                assert!(!header.is_queued() && header.is_done());
            }

            /// Kills `mark_unqueued_for_cancel -> ()` and its `| with &`: a
            /// task a cancel took off the queue is neither queued nor running
            /// for a second cancel, which has nothing to unlink or wake.
            #[test]
            fn a_task_taken_off_the_queue_for_a_cancel_is_left_to_its_dropper() {
                let (task, mut join, drops) = probe(usize::MAX, Setup::default());
                task.header().mark_unqueued_for_cancel();
                assert!(!join.header().is_queued());
                assert!(!join.header().is_done());
                assert_eq!(join.header().request_cancel(), CancelRequest::AlreadyDone);
                drop(task);
                assert_eq!(drops.load(SeqCst), 1);
                assert!(matches!(
                    output(&mut join),
                    Poll::Ready(Some(Err(Failure::Cancelled)))
                ));
            }

            /// The body's one word keeps both the queued-at time and
            /// whether the future was dropped, each unchanged by the other.
            /// Kills `mark_future_dropped -> ()`, `future_dropped ->
            /// true/false`, a `set_queued_at` that clears the flag, and
            /// one that sets it or keeps the old stamp's bits (`& with |`).
            /// (`| with ^` there survives: the flag and the stamp share no
            /// bit, so the two are the same.)
            #[test]
            fn the_body_word_keeps_the_stamp_and_the_dropped_flag_apart() {
                let mut meta = Meta::NONE;
                assert_eq!((meta.future_dropped(), meta.queued_at()), (false, None));
                meta.set_queued_at(Duration::from_nanos(6));
                assert!(!meta.future_dropped(), "a stamp leaves the flag unset");
                meta.set_queued_at(Duration::from_nanos(5));
                meta.mark_future_dropped();
                assert!(meta.future_dropped());
                assert_eq!(meta.queued_at(), Some(Duration::from_nanos(5)));
                meta.set_queued_at(Duration::MAX);
                assert!(meta.future_dropped(), "a stamp leaves the flag alone");
                assert_eq!(
                    meta.queued_at(),
                    Some(Duration::from_nanos(Meta::STAMP - 1))
                );
            }

            /// Kills `stamp_queued -> ()` and `Task::queued_at -> None`.
            #[test]
            fn a_task_keeps_the_time_it_was_queued() {
                let since_epoch = Duration::new(3, 7);
                let mut new = NewTask::new(async {}, Setup::default());
                new.stamp_queued(since_epoch);
                assert_eq!(new.into_task().queued_at(), Some(since_epoch));
                let mut at_epoch = NewTask::new(async {}, Setup::default());
                at_epoch.stamp_queued(Duration::ZERO);
                assert_eq!(at_epoch.into_task().queued_at(), Some(Duration::ZERO));
                let unstamped = NewTask::new(async {}, Setup::default()).into_task();
                assert_eq!(unstamped.queued_at(), None);
            }

            /// Kills `Task::priority -> 0/1/-1`, `Task::timeout -> None /
            /// Some(Default::default())`, `Task::running_key -> 0/1` and
            /// `set_running_key -> ()`.
            #[test]
            fn a_task_reports_its_setup_or_the_defaults() {
                let plan_default = Some(Duration::from_secs(5));
                let mut plain = NewTask::new(async {}, Setup::default()).into_task();
                assert_eq!(plain.priority(), 0);
                assert_eq!(plain.timeout(plan_default), plan_default);
                plain.set_running_key(3);
                assert_eq!(plain.running_key(), usize::MAX, "no side part to keep it");

                let setup = Setup {
                    priority: -2,
                    timeout: Some(Some(Duration::from_secs(3))),
                    ..Setup::default()
                };
                let mut set = NewTask::new(async {}, setup).into_task();
                assert_eq!(set.priority(), -2);
                assert_eq!(set.timeout(plan_default), Some(Duration::from_secs(3)));
                assert_eq!(set.running_key(), usize::MAX);
                set.set_running_key(3);
                assert_eq!(set.running_key(), 3);

                let unlimited = Setup {
                    timeout: Some(None),
                    ..Setup::default()
                };
                let unlimited = NewTask::new(async {}, unlimited).into_task();
                assert_eq!(unlimited.timeout(plan_default), None);
            }

            /// Kills `NewTask::tag_name -> None`, `Task::tag -> None`,
            /// `record -> ()`, `Task::record -> ()` and
            /// `record_cancelled_queued_for_tag -> ()`.
            #[test]
            fn a_tagged_task_counts_its_end_for_its_tag_too() {
                let setup = Setup {
                    tag: Some(TaskTag::Named(Tag::from("jobs"))),
                    ..Setup::default()
                };
                let mut new = NewTask::new(async {}, setup);
                assert_eq!(new.tag_name(), Some("jobs"));
                let mut registry = TagRegistry::new();
                let registered =
                    new.register_tag(|name| registry.register(name, Outcomes::default()));
                let tag = Arc::clone(registered.expect("a tagged task"));
                assert_eq!(new.tag_name(), None, "registered as it is queued");
                let task = new.into_task();
                assert!(task.tag().is_some_and(|found| Arc::ptr_eq(found, &tag)));

                let plan = Outcomes::default();
                task.record(&plan, &Outcome::Completed);
                assert_eq!(plan.completed.load(SeqCst), 1);
                assert_eq!(tag.outcomes.completed.load(SeqCst), 1);
                task.record_cancelled_queued_for_tag();
                assert_eq!(tag.outcomes.cancelled_queued.load(SeqCst), 1);
                assert_eq!(tag.outcomes.cancelled.load(SeqCst), 1);
                assert_eq!(
                    plan.cancelled.load(SeqCst),
                    0,
                    "the caller counts the plan's"
                );
            }

            static CLONES: Count = Count::new(0);

            fn count_clone(data: *const ()) -> RawWaker {
                CLONES.fetch_add(1, SeqCst);
                RawWaker::new(data, &COUNTING)
            }

            fn ignore(_: *const ()) {}

            static COUNTING: RawWakerVTable =
                RawWakerVTable::new(count_clone, ignore, ignore, ignore);

            /// Kills `replace match guard waker.will_wake(cx.waker()) with
            /// false in Core::register`: a handle polled again by the same
            /// task keeps the waker it holds instead of cloning it again.
            #[test]
            fn a_handle_polled_again_by_the_same_waker_does_not_clone_it() {
                // SAFETY: every function of the vtable ignores the data
                // pointer, so any pointer (here null) upholds its contract.
                let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &COUNTING)) };
                let (_task, mut join, _drops) = probe(usize::MAX, Setup::default());
                let mut cx = Context::from_waker(&waker);
                for _ in 0..3 {
                    assert!(join.poll_output(&mut cx).is_pending());
                }
                assert_eq!(CLONES.load(SeqCst), 1);
            }
        }
    }
}
