//! Errors: why a task was refused, why a plan could not be built, and why a
//! task produced no value.
//!
//! Every error that refuses a task carries the task back, so a refused task is
//! never lost: call [`SubmitError::into_inner`] to get it back.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::engine::cell::TaskId;
use crate::engine::panic::{Failure, panic_message};
use crate::plan::MAX_WORKERS;

/// A task was refused by [`Plan::submit`] or [`Plan::try_submit`].
///
/// The refused future is handed back inside the error: nothing was queued and
/// nothing was dropped. [`into_inner`](SubmitError::into_inner) returns it.
///
/// `SubmitError<F>` implements [`Debug`](fmt::Debug), [`Display`](fmt::Display)
/// and [`Error`], and is `Send + Sync + 'static`, for every task a plan
/// accepts, whether or not the task is `Debug` or `Sync`: the error never
/// lends the task out by shared reference, only gives it back by value. So
/// `?` converts it into `Box<dyn Error + Send + Sync>` or `anyhow::Error`
/// even for a boxed or `!Sync` future.
///
/// [`Plan::submit`]: crate::Plan::submit
/// [`Plan::try_submit`]: crate::Plan::try_submit
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
/// plan.close();
///
/// let refused = plan.try_submit(async { 7 }).unwrap_err();
/// assert!(refused.is_closed());
/// // The task is not lost: run it some other way.
/// assert_eq!(refused.into_inner().await, 7);
/// # }
/// ```
pub struct SubmitError<F> {
    reason: Reason,
    // A mutex only so that the error is `Sync` whatever the task is: it is
    // never locked, since the task only leaves by value.
    task: Mutex<F>,
}

/// Why a task was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reason {
    /// The queue holds `capacity` tasks that have not started.
    Full,
    /// The queue is full and the submitter is a task of the same plan,
    /// which must not wait for room: see `Plan::submit`.
    FullInsideTask,
    Closed,
}

impl<F> SubmitError<F> {
    pub(crate) fn full(task: F) -> SubmitError<F> {
        SubmitError::new(Reason::Full, task)
    }

    pub(crate) fn full_inside_task(task: F) -> SubmitError<F> {
        SubmitError::new(Reason::FullInsideTask, task)
    }

    pub(crate) fn closed(task: F) -> SubmitError<F> {
        SubmitError::new(Reason::Closed, task)
    }

    fn new(reason: Reason, task: F) -> SubmitError<F> {
        SubmitError {
            reason,
            task: Mutex::new(task),
        }
    }

    /// Returns the refused task.
    pub fn into_inner(self) -> F {
        // Never locked, so never poisoned; the task is whole either way.
        self.task
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `f` to the refused task, keeping the reason.
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> SubmitError<G> {
        let reason = self.reason;
        SubmitError::new(reason, f(self.into_inner()))
    }

    /// Returns `true` if the task was refused because the queue was full.
    ///
    /// Only [`Plan::try_submit`](crate::Plan::try_submit) and its kin return
    /// this, and [`Plan::submit`](crate::Plan::submit) when called from one
    /// of the plan's own tasks (which must not wait for room); otherwise
    /// `submit` waits for room.
    pub fn is_full(&self) -> bool {
        matches!(self.reason, Reason::Full | Reason::FullInsideTask)
    }

    /// Returns `true` if the task was refused because the plan was closed.
    pub fn is_closed(&self) -> bool {
        self.reason == Reason::Closed
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::Full | Reason::FullInsideTask => f.write_str("Full(..)"),
            Reason::Closed => f.write_str("Closed(..)"),
        }
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.reason {
            Reason::Full => {
                "plan queue is full; await `submit` to wait for room, or raise `capacity`"
            }
            Reason::FullInsideTask => {
                "plan queue is full and the submitter is one of its own tasks, which does not \
                 wait for room (that could deadlock the plan); raise `capacity`, or handle the \
                 refusal, e.g. run the task handed back inline"
            }
            Reason::Closed => "plan is closed and accepts no new tasks; the task is handed back",
        })
    }
}

impl<F> Error for SubmitError<F> {}

/// A [`PlanBuilder`](crate::PlanBuilder) could not build a plan.
///
/// The message says what to change. Building never panics.
///
/// # Examples
///
/// ```
/// use taskplan::{BuildError, Plan};
///
/// // No Tokio runtime is running here.
/// let error = Plan::builder().build().unwrap_err();
/// assert_eq!(error, BuildError::NoRuntime);
/// println!("{error}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `build` was called outside a Tokio runtime.
    NoRuntime,
    /// `workers(0)` was set.
    ZeroWorkers,
    /// `capacity(0)` was set.
    ZeroCapacity,
    /// `workers` was set above [`MAX_WORKERS`](crate::MAX_WORKERS).
    TooManyWorkers,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuildError::NoRuntime => {
                "no Tokio runtime is running; call `build` from inside a runtime \
                 (for example under `#[tokio::main]`) or after `Runtime::enter`"
            }
            BuildError::ZeroWorkers => {
                "`workers` must be at least 1; a plan with no workers never runs a task"
            }
            BuildError::ZeroCapacity => {
                "`capacity` must be at least 1; a plan with no room can never accept a task"
            }
            BuildError::TooManyWorkers => {
                return write!(
                    f,
                    "`workers` must be at most {MAX_WORKERS} (`taskplan::MAX_WORKERS`); lower \
                     it, or split the work across several plans"
                );
            }
        })
    }
}

impl Error for BuildError {}

/// [`Plan::set_workers`](crate::Plan::set_workers) refused a new size; the
/// plan is unchanged.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use taskplan::{Plan, ResizeError};
///
/// let plan = Plan::builder().workers(2).build().unwrap();
/// assert_eq!(plan.set_workers(0), Err(ResizeError::ZeroWorkers));
/// assert_eq!(plan.stats().workers, 2);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResizeError {
    /// `set_workers(0)` was called.
    ZeroWorkers,
    /// `set_workers` was called with more than
    /// [`MAX_WORKERS`](crate::MAX_WORKERS).
    TooManyWorkers,
    /// `set_workers` was called on a closed plan, whose workers are only
    /// finishing what is left.
    Closed,
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResizeError::ZeroWorkers => f.write_str(
                "`workers` must be at least 1; to stop the plan use `shutdown` or `abort`",
            ),
            ResizeError::TooManyWorkers => write!(
                f,
                "`workers` must be at most {MAX_WORKERS} (`taskplan::MAX_WORKERS`); pass a \
                 smaller number, or split the work across several plans"
            ),
            ResizeError::Closed => f.write_str(
                "the plan is closed, so its number of workers is fixed; build a new plan to \
                 run more work",
            ),
        }
    }
}

impl Error for ResizeError {}

/// Why a task produced no value.
///
/// A [`TaskHandle`](crate::TaskHandle) resolves to `Err(TaskError)` when its
/// task was cancelled, panicked or ran past its timeout.
///
/// `TaskError` is `Send + Sync + 'static` and implements [`Error`], so `?`
/// converts it into `Box<dyn Error + Send + Sync>` or `anyhow::Error`. (A
/// panic's payload need not be `Sync`; the error keeps it behind a lock,
/// and gives it out only by value, through [`into_panic`](TaskError::into_panic).)
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use taskplan::Plan;
///
/// let plan = Plan::builder().workers(1).build().unwrap();
/// let handle = plan.submit(async { panic!("boom") }).await.unwrap();
/// let error = handle.await.unwrap_err();
/// assert!(error.is_panic());
/// assert_eq!(*error.into_panic().downcast::<&str>().unwrap(), "boom");
/// # }
/// ```
pub struct TaskError {
    id: TaskId,
    kind: Kind,
}

enum Kind {
    Cancelled,
    TimedOut,
    // The mutex makes the error `Sync` without requiring the payload to be.
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl TaskError {
    pub(crate) fn new(id: TaskId, failure: Failure) -> TaskError {
        let kind = match failure {
            Failure::Cancelled => Kind::Cancelled,
            Failure::TimedOut => Kind::TimedOut,
            Failure::Panic(payload) => Kind::Panic(Mutex::new(*payload)),
        };
        TaskError { id, kind }
    }

    /// Returns the id of the task that failed.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Returns `true` if the task was cancelled before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, Kind::Cancelled)
    }

    /// Returns `true` if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panic(_))
    }

    /// Returns `true` if the task ran past its timeout and was dropped.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::TimedOut)
    }

    /// Consumes the error, returning the object with which the task panicked.
    ///
    /// # Panics
    ///
    /// Panics if the error does not come from a panic; check
    /// [`is_panic`](TaskError::is_panic) first, or use
    /// [`try_into_panic`](TaskError::try_into_panic).
    ///
    /// # Examples
    ///
    /// Resume the task's panic on the awaiting side:
    ///
    /// ```should_panic
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskplan::Plan;
    ///
    /// let plan = Plan::builder().workers(1).build().unwrap();
    /// let handle = plan.submit(async { panic!("boom") }).await.unwrap();
    /// if let Err(error) = handle.await {
    ///     if error.is_panic() {
    ///         std::panic::resume_unwind(error.into_panic());
    ///     }
    /// }
    /// # }
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(error) => {
                panic!("`into_panic` called on a task error that is not a panic: {error}")
            }
        }
    }

    /// Consumes the error, returning the panic payload if the task panicked,
    /// or the error itself otherwise.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, TaskError> {
        match self.kind {
            Kind::Panic(payload) => Ok(payload.into_inner().unwrap_or_else(|e| e.into_inner())),
            kind => Err(TaskError { id: self.id, kind }),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cancelled => write!(f, "task {} was cancelled", self.id),
            Kind::TimedOut => write!(f, "task {} timed out", self.id),
            Kind::Panic(payload) => {
                let payload = payload.lock().unwrap_or_else(|e| e.into_inner());
                match panic_message(&**payload) {
                    Some(message) => write!(f, "task {} panicked: {message}", self.id),
                    None => write!(f, "task {} panicked", self.id),
                }
            }
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Cancelled => "Cancelled",
            Kind::TimedOut => "TimedOut",
            Kind::Panic(_) => "Panic(..)",
        };
        f.debug_struct("TaskError")
            .field("id", &self.id)
            .field("kind", &format_args!("{kind}"))
            .finish()
    }
}

impl Error for TaskError {}
