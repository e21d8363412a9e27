//! [`TaskBuilder`]: a task's tag, priority and timeout, set before it is
//! submitted, for every kind of task: a future ([`Plan::task`]), a future
//! made from its own token ([`Plan::task_with`]) and a blocking closure
//! ([`Plan::blocking_task`]).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::blocking::BlockingTask;
use crate::engine::shared::TaskOptions;
use crate::error::SubmitError;
use crate::handle::TaskHandle;
use crate::plan::Plan;
use crate::tag::Tag;

/// Describes one task before it is submitted; made by [`Plan::task`],
/// [`Plan::task_with`] or [`Plan::blocking_task`].
///
/// Every kind of task takes every option: tag, priority and timeout. `K`
/// is what is submitted: the task's future, or a [`Blocking`] closure.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// let plan = taskplan::Plan::builder().workers(1).build()?;
/// let handle = plan
///     .task(async { 7 })
///     .tag("bg")
///     .priority(-1)
///     .timeout(Duration::from_secs(30))
///     .try_submit()?;
/// assert_eq!(handle.await?, 7);
///
/// // A user's CPU-bound work, tagged so `cancel_tag` reaches it too.
/// let checksum = plan
///     .blocking_task(|_token| (1..=100u64).sum::<u64>())
///     .tag("user-42")
///     .submit()
///     .await?;
/// assert_eq!(checksum.await?, 5050);
/// # Ok(())
/// # }
/// ```
#[must_use = "a task is only submitted by `submit` or `try_submit`"]
pub struct TaskBuilder<'plan, K> {
    plan: &'plan Plan,
    kind: K,
    options: TaskOptions,
    /// The task's own token: for `task_with` and blocking tasks.
    token: Option<CancellationToken>,
}

/// The closure of a blocking task, as its [`TaskBuilder`] holds it; made
/// by [`Plan::blocking_task`].
///
/// A refused blocking task hands back the closure itself, not this.
pub struct Blocking<C>(pub(crate) C);

impl<C> fmt::Debug for Blocking<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Blocking(..)")
    }
}

impl<'plan, K> TaskBuilder<'plan, K> {
    pub(crate) fn new(plan: &'plan Plan, kind: K, token: Option<CancellationToken>) -> Self {
        TaskBuilder {
            plan,
            kind,
            options: TaskOptions::default(),
            token,
        }
    }

    /// Tags the task, so that [`Plan::promote`], [`Plan::cancel_tag`] and
    /// [`Plan::tag_stats`] can act on it with others of its kind. Accepts a
    /// `&'static str` or a `String`.
    ///
    /// The plan keeps what it knows of a tag only while one of its tasks is
    /// queued or running (see [`Plan::tag_stats`]), so a tag may name a
    /// user, a connection or a request: distinct names cost the plan
    /// nothing once their tasks have ended. (With the `metrics` feature, a
    /// recorder that keeps every series it is given keeps each tag's; see
    /// the guide's metrics section.) A task the plan refuses leaves nothing
    /// of its tag behind.
    pub fn tag(mut self, tag: impl Into<Tag>) -> Self {
        self.options.tag = Some(tag.into());
        self
    }

    /// Sets the task's priority; the default is 0.
    ///
    /// Among queued tasks, a higher priority starts first, and equal
    /// priorities start in submission order. Priorities order the queue
    /// only: a running task is never interrupted for a higher one.
    pub fn priority(mut self, priority: i32) -> Self {
        self.options.priority = priority;
        self
    }

    /// Limits how long the task may run, counted from when it starts, not
    /// from when it is queued. A task still running at the deadline is
    /// dropped like a cancelled one, and its handle resolves to an error for
    /// which [`TaskError::is_timeout`](crate::TaskError::is_timeout) is
    /// `true`. Overrides [`PlanBuilder::task_timeout`](crate::PlanBuilder::task_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// let plan = taskplan::Plan::builder().build()?;
    /// let slow = plan
    ///     .task(std::future::pending::<()>())
    ///     .timeout(Duration::from_secs(2))
    ///     .submit()
    ///     .await?;
    /// assert!(slow.await.unwrap_err().is_timeout());
    /// assert_eq!(plan.stats().timed_out, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(Some(timeout));
        self
    }

    /// Lets the task run as long as it takes, even if the plan has a
    /// [default timeout](crate::PlanBuilder::task_timeout).
    pub fn no_timeout(mut self) -> Self {
        self.options.timeout = Some(None);
        self
    }
}

impl<F> TaskBuilder<'_, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Submits the task, waiting while the queue is full; see
    /// [`Plan::submit`].
    ///
    /// # Errors
    ///
    /// Returns a [`SubmitError`] that [`is_closed`](SubmitError::is_closed),
    /// with the future inside, if the plan is closed, or closes while
    /// waiting (and one that is full in the case [`Plan::submit`]
    /// describes).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: if the returned future is dropped before
    /// it resolves, nothing was submitted.
    pub async fn submit(self) -> Result<TaskHandle<F::Output>, SubmitError<F>> {
        self.plan
            .submit_task(self.kind, self.options, self.token)
            .await
    }

    /// Submits the task if the queue has room, without waiting; see
    /// [`Plan::try_submit`].
    ///
    /// # Errors
    ///
    /// Returns a [`SubmitError`] (full or closed) with the future inside.
    pub fn try_submit(self) -> Result<TaskHandle<F::Output>, SubmitError<F>> {
        self.plan
            .try_submit_task(self.kind, self.options, self.token)
    }
}

impl<C, T> TaskBuilder<'_, Blocking<C>>
where
    C: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    /// Submits the blocking task, waiting while the queue is full; see
    /// [`Plan::submit_blocking`].
    ///
    /// # Errors
    ///
    /// As [`Plan::submit`]; the error carries the closure, not yet called.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: if the returned future is dropped before
    /// it resolves, nothing was submitted.
    pub async fn submit(self) -> Result<TaskHandle<T>, SubmitError<C>> {
        let plan = self.plan;
        let (task, options, token) = self.into_blocking_task();
        plan.submit_task(task, options, Some(token))
            .await
            .map_err(|error| error.map(BlockingTask::into_closure))
    }

    /// Submits the blocking task if the queue has room, without waiting.
    ///
    /// # Errors
    ///
    /// A [`SubmitError`] (full or closed) with the closure inside, not yet
    /// called.
    pub fn try_submit(self) -> Result<TaskHandle<T>, SubmitError<C>> {
        let plan = self.plan;
        let (task, options, token) = self.into_blocking_task();
        plan.try_submit_task(task, options, Some(token))
            .map_err(|error| error.map(BlockingTask::into_closure))
    }

    fn into_blocking_task(self) -> (BlockingTask<C, T>, TaskOptions, CancellationToken) {
        let token = self
            .token
            .expect("a blocking task's builder is made with its token");
        let task = BlockingTask::new(self.kind.0, token.clone(), self.plan.blocking_counts());
        (task, self.options, token)
    }
}

impl<K> fmt::Debug for TaskBuilder<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("plan", &self.plan.name())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
