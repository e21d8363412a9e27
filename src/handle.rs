//! The submitter's side of a task: [`TaskHandle`], which awaits its result
//! and can cancel it; [`CancelHandle`], which only cancels and can be cloned
//! and sent anywhere; and [`CancelOnDrop`], a handle that cancels its task
//! when dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use crate::engine::cell::{Control, Joiner, TaskId};
use crate::engine::shared::Shared;
use crate::error::TaskError;

/// An owned permission to await a task's result and to cancel it.
///
/// A `TaskHandle<T>` is a future that resolves to `Ok(T)` when the task's
/// future returns, or to a [`TaskError`] when the task was cancelled,
/// panicked or timed out. Every handle resolves: whatever ends a task, its
/// handle learns of it.
///
/// Dropping a handle *detaches* the task: it still runs, and its output is
/// dropped. Use [`cancel`](TaskHandle::cancel) to stop it instead.
///
/// `TaskHandle` is `Unpin`, and `Send` and `Sync` when `T` is `Send`, so it
/// can be stored, moved between tasks, and polled through `&mut`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use taskplan::Plan;
///
/// let plan = Plan::builder().workers(2).build().unwrap();
/// let handle = plan.submit(async { 6 * 7 }).await.unwrap();
/// assert_eq!(handle.await.unwrap(), 42);
/// # }
/// ```
///
/// # Panics
///
/// Polling a handle again after it returned `Ready` panics, as for any
/// future that is not fused.
pub struct TaskHandle<T> {
    core: Joiner<T>,
    plan: Arc<Shared>,
    id: TaskId,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(core: Joiner<T>, plan: Arc<Shared>, id: TaskId) -> TaskHandle<T> {
        TaskHandle { core, plan, id }
    }

    /// Cancels the task.
    ///
    /// - A queued task is removed from the queue and never starts; its future
    ///   is dropped before this call returns.
    /// - A running task's future is dropped at the supervisor's next poll,
    ///   which this call triggers, even if the future waits on something that
    ///   never wakes it. Its destructors run and its supervisor moves on to
    ///   the next task.
    /// - A finished task is left as it is.
    ///
    /// In the first two cases the handle resolves to an error for which
    /// [`TaskError::is_cancelled`] is `true`. That includes a running task
    /// whose poll returns its value, times out or panics in the same instant:
    /// a task that was running when the cancel reached it ends cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskplan::Plan;
    ///
    /// let plan = Plan::builder().workers(1).build().unwrap();
    /// let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
    /// stuck.cancel();
    /// assert!(stuck.await.unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.plan.cancel(self.core.header());
    }

    /// Returns the task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Returns `true` once the task has finished, however it ended: then
    /// awaiting the handle returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().build()?;
    /// let handle = plan.submit(async { 1 }).await?;
    /// plan.wait_idle().await;
    /// assert!(handle.is_finished());
    /// assert_eq!(handle.await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.core.header().is_done()
    }

    /// Returns a handle that cancels this task, and can be cloned and sent
    /// to other tasks and threads, like Tokio's `AbortHandle`.
    ///
    /// The cancel handle does not keep the task's output alive: once the
    /// task has ended and its `TaskHandle` is dropped, the output is dropped
    /// as usual, and the cancel handle only reports the task as finished.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
    /// let handle = plan.submit(std::future::pending::<()>()).await.unwrap();
    /// let canceller = handle.cancel_handle();
    /// // Another task, with no access to `handle`, stops the work.
    /// tokio::spawn(async move { canceller.cancel() }).await.unwrap();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            task: Arc::downgrade(&self.core.control()),
            plan: Arc::downgrade(&self.plan),
            id: self.id,
        }
    }

    /// Turns this handle into one that cancels the task when dropped, like
    /// tokio-util's `AbortOnDropHandle`: for work that must not outlive
    /// the code waiting for it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
    /// let handle = plan.submit(std::future::pending::<()>()).await.unwrap();
    /// let canceller = handle.cancel_handle();
    /// let guard = handle.cancel_on_drop();
    /// drop(guard); // e.g. the request that wanted the result went away
    /// plan.wait_idle().await;
    /// assert!(canceller.is_finished());
    /// assert_eq!(plan.stats().cancelled, 1);
    /// # }
    /// ```
    pub fn cancel_on_drop(self) -> CancelOnDrop<T> {
        CancelOnDrop(Some(self))
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        self.get_mut().core.poll_output(cx).map(|output| {
            output
                .expect("`TaskHandle` polled after it returned `Ready`")
                .map_err(|failure| TaskError::new(id, failure))
        })
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Cancels one task; cloneable, `Send` and `Sync`, and blind to the task's
/// output type. Made by [`TaskHandle::cancel_handle`].
///
/// It does not keep the task or its plan alive: cancelling a task that has
/// ended, or whose plan is gone, does nothing.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::collections::HashMap;
/// use taskplan::{CancelHandle, TaskId};
///
/// let plan = taskplan::Plan::builder().workers(2).build().unwrap();
/// // A job service keeps cancel handles by id, of any output type.
/// let mut jobs: HashMap<TaskId, CancelHandle> = HashMap::new();
/// let report = plan.submit(std::future::pending::<String>()).await.unwrap();
/// let count = plan.submit(std::future::pending::<u64>()).await.unwrap();
/// jobs.insert(report.id(), report.cancel_handle());
/// jobs.insert(count.id(), count.cancel_handle());
/// for job in jobs.values() {
///     job.cancel();
/// }
/// assert!(report.await.unwrap_err().is_cancelled());
/// assert!(count.await.unwrap_err().is_cancelled());
/// # }
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    task: Weak<dyn Control>,
    plan: Weak<Shared>,
    id: TaskId,
}

impl CancelHandle {
    /// Cancels the task, exactly as [`TaskHandle::cancel`] does.
    pub fn cancel(&self) {
        if let (Some(task), Some(plan)) = (self.task.upgrade(), self.plan.upgrade()) {
            plan.cancel(task.header());
        }
    }

    /// Returns the task's id.
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Returns `true` once the task has finished, however it ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        // Gone means ended: the task itself holds a reference until then.
        self.task
            .upgrade()
            .is_none_or(|task| task.header().is_done())
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A [`TaskHandle`] that cancels its task when dropped. Made by
/// [`TaskHandle::cancel_on_drop`].
///
/// Awaiting it gives the task's result, as awaiting the handle does.
/// Dropping it before the task ended cancels the task (see
/// [`TaskHandle::cancel`]); [`detach`](CancelOnDrop::detach) gives the plain
/// handle back, which does not.
#[must_use = "dropping it cancels the task at once"]
pub struct CancelOnDrop<T>(Option<TaskHandle<T>>);

impl<T> CancelOnDrop<T> {
    fn handle(&self) -> &TaskHandle<T> {
        self.0.as_ref().expect("taken only by `detach` and `drop`")
    }

    /// Cancels the task now; see [`TaskHandle::cancel`].
    pub fn cancel(&self) {
        self.handle().cancel();
    }

    /// Returns the task's id.
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.handle().id()
    }

    /// Returns `true` once the task has finished, however it ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.handle().is_finished()
    }

    /// Returns a [`CancelHandle`] for the task.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.handle().cancel_handle()
    }

    /// Gives back the plain handle: the task no longer ends when it drops.
    pub fn detach(mut self) -> TaskHandle<T> {
        self.0.take().expect("taken only by `detach` and `drop`")
    }
}

impl<T> Future for CancelOnDrop<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handle = self.0.as_mut().expect("taken only by `detach` and `drop`");
        Pin::new(handle).poll(cx)
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.cancel();
        }
    }
}

impl<T> fmt::Debug for CancelOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(handle) => f
                .debug_struct("CancelOnDrop")
                .field("id", &handle.id())
                .field("finished", &handle.is_finished())
                .finish(),
            None => f.write_str("CancelOnDrop(detached)"),
        }
    }
}
