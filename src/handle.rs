//! [`TaskHandle`]: the submitter's side of a task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::engine::cell::{Join, TaskId};
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
    core: Arc<dyn Join<T>>,
    plan: Arc<Shared>,
    id: TaskId,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(core: Arc<dyn Join<T>>, plan: Arc<Shared>, id: TaskId) -> TaskHandle<T> {
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
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        self.core.poll_output(cx).map(|output| {
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
