//! One submitted task: the state it shares with its handle, and the wrapper a
//! supervisor polls.
//!
//! A task costs two allocations: an `Arc<Core<T>>` shared by the wrapper and
//! the [`TaskHandle`](crate::TaskHandle), and the boxed [`Task`] wrapper that
//! owns the user's future inline and sits in the queue until a supervisor
//! runs it. The wrapper is the only place a user future is polled or dropped,
//! which is why every way a task can end (completion, panic, cancellation,
//! being dropped with the plan or the runtime) resolves its handle from here.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

use crate::error::{TaskError, panic_message};
use crate::stats::Outcomes;

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
// QUEUED -> RUNNING -> DONE, or QUEUED -> DONE through RUNNING|CANCEL when a
// queued task is cancelled. QUEUED -> RUNNING is only ever written with the
// plan's queue lock held (by the pop that takes the task, or by a cancel that
// unlinks it), so a task seen as QUEUED under that lock is still linked at
// `Header::queue_key`.
const STAGE_MASK: u8 = 0b011;
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
/// Set once cancellation was requested; the supervisor drops the future at
/// its next poll, and `Header::cancel_waker` makes sure that poll happens.
const CANCEL: u8 = 0b100;

/// The type-erased part of a task's shared state.
pub(crate) struct Header {
    id: TaskId,
    state: AtomicU8,
    /// Woken when cancellation is requested for a running task.
    cancel_waker: AtomicWaker,
    /// The task's slot in the queue; only meaningful while QUEUED and only
    /// read or written with the queue lock held.
    queue_key: AtomicUsize,
}

impl Header {
    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

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

    /// Marks a task as taken off the queue. Caller holds the queue lock.
    pub(crate) fn mark_started(&self) {
        self.state.fetch_or(RUNNING, Ordering::AcqRel);
    }

    /// Marks a task as taken off the queue to be dropped, not run. Caller
    /// holds the queue lock.
    pub(crate) fn mark_unqueued_for_cancel(&self) {
        self.state.fetch_or(RUNNING | CANCEL, Ordering::AcqRel);
    }

    /// Asks a running task to stop. Returns `false` if the task is still
    /// queued, in which case the caller must unlink it under the queue lock.
    pub(crate) fn request_cancel(&self) -> bool {
        match self.state.load(Ordering::Acquire) & STAGE_MASK {
            QUEUED => false,
            DONE => true,
            _ => {
                // A running task only moves on to DONE, where the flag is
                // ignored, so setting it unconditionally is safe.
                self.state.fetch_or(CANCEL, Ordering::AcqRel);
                self.cancel_waker.wake();
                true
            }
        }
    }
}

/// Shared state of a task whose output is `T`.
pub(crate) struct Core<T> {
    header: Header,
    output: Mutex<Option<Result<T, TaskError>>>,
    join_waker: AtomicWaker,
}

impl<T> Core<T> {
    pub(crate) fn new(id: TaskId) -> Core<T> {
        Core {
            header: Header {
                id,
                state: AtomicU8::new(QUEUED),
                cancel_waker: AtomicWaker::new(),
                queue_key: AtomicUsize::new(usize::MAX),
            },
            output: Mutex::new(None),
            join_waker: AtomicWaker::new(),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// Stores the task's result and wakes its handle. Called exactly once, by
    /// the wrapper, after the user's future has been dropped.
    fn resolve(&self, result: Result<T, TaskError>) {
        *self.output.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        // Release pairs with the Acquire in `is_done`: whoever sees DONE
        // sees the output.
        let previous = self.header.state.swap(DONE, Ordering::AcqRel);
        debug_assert_ne!(previous & STAGE_MASK, DONE, "task resolved twice");
        self.join_waker.wake();
    }

    /// Polls for the task's result, for the handle.
    pub(crate) fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Option<Result<T, TaskError>>> {
        if !self.header.is_done() {
            self.join_waker.register(cx.waker());
            if !self.header.is_done() {
                return Poll::Pending;
            }
        }
        Poll::Ready(self.output.lock().unwrap_or_else(|e| e.into_inner()).take())
    }
}

/// How a task ended, as seen by the supervisor that ran it.
#[derive(Debug)]
pub(crate) enum Outcome {
    Completed,
    Cancelled,
    Panicked(Option<String>),
}

/// A queued or running task with its type erased, as the queue and the
/// supervisors hold it.
pub(crate) trait Runnable: Send {
    fn header(&self) -> &Header;

    /// Polls the user's future once, unless cancellation was requested.
    ///
    /// When the task ends, in this order: the future is dropped (its
    /// destructors run), the outcome is counted in `counters`, and the
    /// handle resolves; so whoever sees the handle resolved sees the count.
    /// After `Ready` the task must not be polled again.
    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>, counters: &Outcomes) -> Poll<Outcome>;
}

pub(crate) type BoxedTask = Pin<Box<dyn Runnable>>;

pin_project! {
    #[project = StageProjection]
    enum Stage<F> {
        Running { #[pin] future: F },
        Finished,
    }
}

pin_project! {
    /// Owns a user's future and resolves its handle however the future ends.
    pub(crate) struct Task<F: Future> {
        #[pin]
        stage: Stage<F>,
        core: std::sync::Arc<Core<F::Output>>,
    }

    impl<F: Future> PinnedDrop for Task<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before finishing: by a cancel of a queued task, by an
            // abort, or with the runtime. The handle still resolves; the
            // code that dropped the task counts it.
            let this = this.project();
            if matches!(*this.stage, Stage::Running { .. }) {
                discard(this.stage);
                this.core.resolve(Err(TaskError::cancelled(this.core.header.id)));
            }
        }
    }
}

/// Drops the user's future in place. A panicking destructor must not take
/// the supervisor down with it, so its panic is contained and logged.
fn discard<F>(mut stage: Pin<&mut Stage<F>>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Finished))) {
        tracing::error!(
            panic = panic_message(&*payload).unwrap_or("<non-string payload>"),
            "a task's destructor panicked"
        );
    }
}

impl<F: Future> Task<F> {
    pub(crate) fn new(future: F, core: std::sync::Arc<Core<F::Output>>) -> Task<F> {
        Task {
            stage: Stage::Running { future },
            core,
        }
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

    fn cancel(self: Pin<&mut Self>, counters: &Outcomes) -> Poll<Outcome> {
        let this = self.project();
        discard(this.stage);
        counters.record(&Outcome::Cancelled);
        this.core
            .resolve(Err(TaskError::cancelled(this.core.header.id)));
        Poll::Ready(Outcome::Cancelled)
    }
}

impl<F> Runnable for Task<F>
where
    F: Future + Send,
    F::Output: Send,
{
    fn header(&self) -> &Header {
        &self.core.header
    }

    fn poll_run(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        counters: &Outcomes,
    ) -> Poll<Outcome> {
        if self.core.header.cancel_requested() {
            return self.cancel(counters);
        }
        let mut this = self.as_mut().project();
        let StageProjection::Running { future } = this.stage.as_mut().project() else {
            unreachable!("a finished task is never polled again");
        };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => {
                discard(this.stage);
                counters.record(&Outcome::Completed);
                this.core.resolve(Ok(output));
                Poll::Ready(Outcome::Completed)
            }
            Ok(Poll::Pending) => {
                // Register before the second look at the flag, so a cancel
                // between the two either is seen here or wakes us.
                this.core.header.cancel_waker.register(cx.waker());
                if this.core.header.cancel_requested() {
                    return self.cancel(counters);
                }
                Poll::Pending
            }
            Err(payload) => {
                discard(this.stage);
                let message = panic_message(&*payload).map(str::to_owned);
                let id = this.core.header.id;
                counters.record(&Outcome::Panicked(None));
                this.core.resolve(Err(TaskError::panic(id, payload)));
                Poll::Ready(Outcome::Panicked(message))
            }
        }
    }
}
