//! [`Plan`]: the public face of a bounded queue of tasks and the
//! supervisors that run them.
//!
//! A `Plan` is a cloneable handle on the engine's shared state
//! ([`Shared`](crate::engine::shared::Shared)); its methods check their
//! input, word their errors and document the promises, and leave the
//! locking and waking to the engine.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::builder::PlanBuilder;
use crate::engine::blocking::Blocking as BlockingCounts;
use crate::engine::cell::{Joiner, NewTask, TaskId};
use crate::engine::shared::{Prepared, Refused, Settings, Shared, TaskOptions};
use crate::engine::sync::Arc;
use crate::engine::sync::Ordering;
use crate::error::{ResizeError, SubmitError};
use crate::handle::TaskHandle;
use crate::stats::{ShutdownReport, Stats};
use crate::task_builder::{Blocking, TaskBuilder};

/// The most workers a plan may have: [`PlanBuilder::workers`] and
/// [`Plan::set_workers`] refuse more.
///
/// Each worker is a Tokio task with its own state, so the bound keeps a
/// mistyped size from exhausting memory; a plan that needs more tasks at
/// once than this is better split into several plans.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use taskplan::{BuildError, MAX_WORKERS, Plan};
///
/// let plan = Plan::builder().workers(MAX_WORKERS).build().unwrap();
/// assert_eq!(plan.stats().workers, 65_536);
/// let error = Plan::builder().workers(MAX_WORKERS + 1).build().unwrap_err();
/// assert_eq!(error, BuildError::TooManyWorkers);
/// # }
/// ```
pub const MAX_WORKERS: usize = 65_536;

/// A set of workers that run submitted futures, at most `workers` at a time,
/// with a bounded queue in front of them.
///
/// A plan runs up to `workers` supervisor tasks on the Tokio runtime that
/// built it, and starts them as work arrives: a task queued while no
/// started supervisor is free to take it starts another, until `workers`
/// run. A plan that is never given more than three tasks at once never
/// starts more than three, however large `workers` is. Each supervisor
/// takes the next queued task (promoted tasks first, then by priority, then
/// oldest first), runs it to the end, and takes the next. Every submitted
/// task gets a [`TaskHandle`] to await its output or cancel it, and the
/// plan as a whole can be closed,
/// drained with a deadline ([`shutdown`](Plan::shutdown)) or stopped at once
/// ([`abort`](Plan::abort)).
///
/// `Plan` is cheap to clone: clones share one plan. When the last clone is
/// dropped the plan closes, as if [`close`](Plan::close) were called; the
/// tasks already queued still run and every handle still resolves.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskplan::Plan;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let plan = Plan::builder().workers(4).capacity(1024).name("sync").build()?;
///
/// let mut handles = Vec::new();
/// for n in 0..10u64 {
///     handles.push(plan.submit(async move { n * n }).await?);
/// }
/// let mut total = 0;
/// for handle in handles {
///     total += handle.await?;
/// }
/// assert_eq!(total, 285);
///
/// let report = plan.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report.completed, 10);
/// # Ok(())
/// # }
/// ```
pub struct Plan {
    shared: Arc<Shared>,
}

impl Plan {
    /// Returns a builder for a plan, with the defaults: as many workers as
    /// [`std::thread::available_parallelism`], a capacity of 1024 queued
    /// tasks, and the name `"plan"`.
    pub fn builder() -> PlanBuilder {
        PlanBuilder::new()
    }

    pub(crate) fn start(settings: Settings, token: CancellationToken, runtime: Handle) -> Plan {
        Plan {
            shared: Shared::start(settings, token, runtime),
        }
    }

    /// Submits a task, waiting while the queue is full.
    ///
    /// The queue is full when it holds `capacity` tasks that have not
    /// started; then this waits until a task starts, is cancelled, or the
    /// plan closes. Returns a [`TaskHandle`] for the task once it is queued.
    ///
    /// # From inside the plan
    ///
    /// Room is made only by a worker starting a task. A task of this plan
    /// that waits for room holds its worker meanwhile, so if every worker
    /// waited, none would ever make room. A task of this plan waits for
    /// room only while fewer than `workers - 1` of its tasks already wait
    /// in `submit` or in [`wait_idle`](Plan::wait_idle); otherwise it gets
    /// a full [`SubmitError`] at once, with
    /// its task handed back (so with one worker, a task never waits on its
    /// own plan). A task that waits is refused the same way if
    /// [`set_workers`](Plan::set_workers) lowers the bar meanwhile.
    ///
    /// # Errors
    ///
    /// Returns a [`SubmitError`] that [`is_closed`](SubmitError::is_closed),
    /// with the future inside, if the plan is closed, or closes while
    /// waiting; one that [`is_full`](SubmitError::is_full) only when called
    /// from one of the plan's own tasks that must not wait (above).
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: if the returned future is dropped before
    /// it resolves, nothing was submitted, and the task's future is dropped
    /// with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).capacity(1).build()?;
    /// let handle = plan.submit(async { "done" }).await?;
    /// assert_eq!(handle.await?, "done");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit<F>(&self, future: F) -> Result<TaskHandle<F::Output>, SubmitError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.task(future).submit().await
    }

    /// Submits a task if the queue has room, without waiting.
    ///
    /// # Errors
    ///
    /// Returns a [`SubmitError`] that [`is_full`](SubmitError::is_full) if the
    /// queue holds `capacity` tasks that have not started, or that
    /// [`is_closed`](SubmitError::is_closed) if the plan is closed.
    /// Either way the future is handed back inside the error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // One worker, room for one queued task.
    /// let plan = taskplan::Plan::builder().workers(1).capacity(1).build().unwrap();
    /// let first = plan.try_submit(async { 1 }).unwrap();
    /// // The worker has not had a chance to start `first`: the queue is full.
    /// let refused = plan.try_submit(async { 2 }).unwrap_err();
    /// assert!(refused.is_full());
    /// assert_eq!(first.await.unwrap(), 1);
    /// assert_eq!(refused.into_inner().await, 2);
    /// # }
    /// ```
    pub fn try_submit<F>(&self, future: F) -> Result<TaskHandle<F::Output>, SubmitError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.task(future).try_submit()
    }

    /// Starts describing a task to submit: its tag, priority and timeout.
    ///
    /// Nothing is submitted until [`TaskBuilder::submit`] or
    /// [`TaskBuilder::try_submit`] is called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// let plan = taskplan::Plan::builder().workers(2).build()?;
    /// let handle = plan
    ///     .task(async { "redrawn" })
    ///     .tag("ui")
    ///     .priority(5)
    ///     .timeout(Duration::from_secs(2))
    ///     .submit()
    ///     .await?;
    /// assert_eq!(handle.await?, "redrawn");
    /// # Ok(())
    /// # }
    /// ```
    pub fn task<F>(&self, future: F) -> TaskBuilder<'_, F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        TaskBuilder::new(self, future, None)
    }

    /// Starts describing a task made from its own [`CancellationToken`]:
    /// the builder form of [`submit_with`](Plan::submit_with), taking a
    /// tag, priority and timeout.
    ///
    /// `make` is called at once with a fresh child of the plan's
    /// [token](Plan::token) and returns the task's future. The token works
    /// both ways, as described at [`submit_with`](Plan::submit_with): the
    /// task's end without a value cancels it, and a cancel from outside the
    /// task cancels the task.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let (token_tx, token_rx) = tokio::sync::oneshot::channel();
    /// let handle = plan
    ///     .task_with(|token| async move {
    ///         token_tx.send(token).unwrap();
    ///         std::future::pending::<()>().await
    ///     })
    ///     .tag("upload")
    ///     .submit()
    ///     .await?;
    /// // Whoever holds the token can stop the task.
    /// token_rx.await?.cancel();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # Ok(())
    /// # }
    /// ```
    pub fn task_with<M, F>(&self, make: M) -> TaskBuilder<'_, F>
    where
        M: FnOnce(CancellationToken) -> F,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let token = self.child_token();
        let future = make(token.clone());
        TaskBuilder::new(self, future, Some(token))
    }

    /// Starts describing a blocking task: the builder form of
    /// [`submit_blocking`](Plan::submit_blocking), taking a tag, priority
    /// and timeout, so that [`cancel_tag`](Plan::cancel_tag) and
    /// [`promote`](Plan::promote) reach CPU-bound work too.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(2).build()?;
    /// let resized = plan
    ///     .blocking_task(|_token| vec![0u8; 64].len())
    ///     .tag("user-7")
    ///     .priority(1)
    ///     .submit()
    ///     .await?;
    /// assert_eq!(resized.await?, 64);
    /// # Ok(())
    /// # }
    /// ```
    pub fn blocking_task<C, T>(&self, closure: C) -> TaskBuilder<'_, Blocking<C>>
    where
        C: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        TaskBuilder::new(self, Blocking(closure), Some(self.child_token()))
    }

    /// A fresh child of the plan's token, for a task of its own.
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.shared.token.child_token()
    }

    /// The plan's count of blocking closures that outlived their task.
    pub(crate) fn blocking_counts(&self) -> Arc<BlockingCounts> {
        Arc::clone(&self.shared.blocking)
    }

    /// Submits a task built from its own [`CancellationToken`], waiting while
    /// the queue is full.
    ///
    /// `make` is called at once with a fresh child of the plan's
    /// [token](Plan::token), and returns the task's future. The token is
    /// cancelled when the task is cancelled, times out, panics or is dropped
    /// by an abort, so work the task hands elsewhere (a spawned task, a
    /// thread, a request to another service) can watch it and stop too. A
    /// task that completes leaves its token alone.
    ///
    /// The other way, cancelling the token from outside the task (another
    /// task or thread, or work the task handed it to) cancels the task, as
    /// [`TaskHandle::cancel`] does: a running task is dropped at once; a
    /// queued one stays queued, and is dropped unpolled, counted as started
    /// and cancelled, when a worker takes it. The task's own code may cancel
    /// its token, to stop what it handed out, and runs on.
    ///
    /// # Errors
    ///
    /// As [`submit`](Plan::submit); the error carries the future `make`
    /// returned.
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Plan::submit).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let (helper_tx, helper_rx) = tokio::sync::oneshot::channel();
    /// let handle = plan
    ///     .submit_with(|token| async move {
    ///         // Hand work elsewhere; it stops when this task is cancelled.
    ///         let helper = tokio::spawn(async move { token.cancelled().await });
    ///         helper_tx.send(helper).unwrap();
    ///         std::future::pending::<()>().await
    ///     })
    ///     .await?;
    /// let helper = helper_rx.await?;
    /// handle.cancel();
    /// helper.await?; // ended because the task's token was cancelled
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_with<M, F>(&self, make: M) -> Result<TaskHandle<F::Output>, SubmitError<F>>
    where
        M: FnOnce(CancellationToken) -> F,
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.task_with(make).submit().await
    }

    /// Submits a synchronous closure to run on Tokio's blocking thread pool,
    /// waiting while the queue is full.
    ///
    /// The closure runs while holding one of the plan's worker slots, so
    /// blocking work counts against `workers` like any other task. It gets
    /// its own [`CancellationToken`], as with [`submit_with`](Plan::submit_with).
    ///
    /// Cancelling the task cancels the token, resolves the handle as cancelled
    /// at once, and frees the worker slot. **A thread cannot be stopped from
    /// outside**: a closure that never looks at its token runs on until it
    /// returns, and its result is dropped. A shutdown never waits past its
    /// grace period for such closures; it counts those still running as
    /// [`abandoned`](crate::ShutdownReport::abandoned).
    ///
    /// # Errors
    ///
    /// As [`submit`](Plan::submit); the error carries the closure, not yet
    /// called.
    ///
    /// # Cancel safety
    ///
    /// As [`submit`](Plan::submit).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(2).build()?;
    /// let handle = plan
    ///     .submit_blocking(|token| {
    ///         let mut checksum = 0u64;
    ///         for block in 0..1_000u64 {
    ///             if token.is_cancelled() {
    ///                 break; // a cooperative closure stops when asked
    ///             }
    ///             checksum = checksum.wrapping_add(block * block);
    ///         }
    ///         checksum
    ///     })
    ///     .await?;
    /// assert_eq!(handle.await?, 332_833_500);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_blocking<C, T>(&self, closure: C) -> Result<TaskHandle<T>, SubmitError<C>>
    where
        C: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.blocking_task(closure).submit().await
    }

    /// Submits with the given options, waiting while the queue is full.
    pub(crate) async fn submit_task<F>(
        &self,
        future: F,
        options: TaskOptions,
        token: Option<CancellationToken>,
    ) -> Result<TaskHandle<F::Output>, SubmitError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Prepared {
            task,
            join,
            placement,
        } = self.shared.prepare(future, options, token);
        self.shared
            .submit(task, placement)
            .await
            .map(|id| self.handle(join, id))
            .map_err(submit_error)
    }

    /// Submits with the given options if the queue has room.
    pub(crate) fn try_submit_task<F>(
        &self,
        future: F,
        options: TaskOptions,
        token: Option<CancellationToken>,
    ) -> Result<TaskHandle<F::Output>, SubmitError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Prepared {
            task,
            join,
            placement,
        } = self.shared.prepare(future, options, token);
        self.shared
            .push(task, placement, false)
            .map(|id| self.handle(join, id))
            .map_err(submit_error)
    }

    fn handle<T>(&self, join: Joiner<T>, id: TaskId) -> TaskHandle<T> {
        TaskHandle::new(join, Arc::clone(&self.shared), id)
    }

    /// Closes the plan to new tasks. Returns `true` if this call closed it,
    /// `false` if it was already closed.
    ///
    /// Tasks already queued or running are not affected: they run to the end
    /// and their handles resolve as usual. Submitters waiting for room get
    /// a [`SubmitError`] that [`is_closed`](SubmitError::is_closed). Once
    /// the queue is empty the supervisors exit.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
    /// let queued = plan.submit(async { 1 }).await.unwrap();
    /// assert!(plan.close());
    /// assert!(!plan.close());
    /// assert!(plan.submit(async { 2 }).await.unwrap_err().is_closed());
    /// assert_eq!(queued.await.unwrap(), 1);
    /// # }
    /// ```
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Waits until the plan is closed: by [`close`](Plan::close), a
    /// shutdown, an abort, its token, or the last clone being dropped.
    /// Returns at once if it already is.
    ///
    /// The returned future does not borrow the plan, so a loop that feeds
    /// the plan can race it in a `select!` and stop at the moment the plan
    /// stops taking work, while the queued tasks still run.
    ///
    /// After a cancel of the plan's token, [`is_closed`](Plan::is_closed)
    /// is `true` and submits are refused before `cancel()` returns; this
    /// future resolves a moment later, once the plan's runtime has run the
    /// abort the cancel starts.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().build()?;
    /// let closed = plan.closed();
    /// let producer = tokio::spawn(async move {
    ///     closed.await;
    ///     "stopped producing"
    /// });
    /// plan.close();
    /// assert_eq!(producer.await?, "stopped producing");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future changes nothing.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.closed()
    }

    /// Returns `true` once the plan accepts no new tasks: after
    /// [`close`](Plan::close), a shutdown, an abort, or when the last clone
    /// was dropped.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Closes the plan, lets queued and running tasks finish for up to
    /// `grace`, then cancels what is left, waits for every supervisor to
    /// exit, and reports.
    ///
    /// When this returns, every task the plan accepted has finished and its
    /// handle has resolved, and no supervisor is running. If the grace period
    /// runs out, the plan's [`token`](Plan::token) is cancelled, queued tasks
    /// are dropped without starting, and running tasks are dropped at once.
    ///
    /// Calling this again, or from several clones at once, is safe: each call
    /// waits for the same end, and the first grace period to run out cancels
    /// what is left.
    ///
    /// # From inside the plan
    ///
    /// Called from one of the plan's own tasks, `shutdown` cannot wait for
    /// every supervisor, one of which runs the caller. It closes the plan,
    /// waits up to `grace` for every *other* task to end, then cancels those
    /// left (queued ones never start), waits for them, and reports. It does
    /// not cancel the calling task or the plan's token: the caller runs on,
    /// and the plan's last supervisor exits once the caller ends. If the
    /// tasks waiting on the plan (the caller among them) hold every worker
    /// while tasks are queued, those can never start before the caller
    /// ends, so they are cancelled at once rather than after the grace. Two
    /// tasks that shut the plan down at once each count the other among the
    /// tasks to cancel when the grace runs out.
    ///
    /// A zero `grace` is an [`abort`](Plan::abort), which stops everything,
    /// the calling task included: from inside a task, its future is dropped
    /// at its next poll, so the call does not return there.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future before it resolves leaves the plan
    /// closed, and, if the grace period had run out, aborted; the
    /// supervisors still finish on their own.
    ///
    /// # Panics
    ///
    /// With a non-zero `grace`, panics if the plan's runtime was built
    /// without the time driver (`enable_time`), as `tokio::time::timeout`
    /// does. The caller's context does not matter: `shutdown` may be awaited
    /// on another runtime or on a plain thread.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    ///
    /// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
    /// plan.submit(async {}).await.unwrap();
    /// plan.submit(std::future::pending::<()>()).await.unwrap();
    ///
    /// let report = plan.shutdown(Duration::from_millis(10)).await;
    /// assert_eq!((report.completed, report.cancelled), (1, 1));
    /// assert!(report.forced);
    /// # }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.shared.shutdown(grace).await
    }

    /// Stops the plan at once: [`shutdown`](Plan::shutdown) with zero grace.
    ///
    /// Queued tasks never start, running tasks are dropped at their
    /// supervisor's next poll, and every handle resolves as cancelled. Needs
    /// no time driver.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
    /// let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
    /// let report = plan.abort().await;
    /// assert_eq!(report.cancelled, 1);
    /// assert!(stuck.await.unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub async fn abort(&self) -> ShutdownReport {
        self.shutdown(Duration::ZERO).await
    }

    /// Waits until no task is queued or running.
    ///
    /// Returns at once if the plan is idle. A task submitted after this
    /// returns is not waited for.
    ///
    /// # From inside the plan
    ///
    /// Called from one of the plan's own tasks, the plan is never idle
    /// while the caller runs, so this waits instead until every other task
    /// has ended, or waits in here too. If those waiting hold every worker
    /// while tasks are queued, which then can never start, it returns
    /// without waiting for them and logs a warning, rather than hang.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let plan = taskplan::Plan::builder().workers(2).build().unwrap();
    /// for _ in 0..8 {
    ///     plan.submit(tokio::task::yield_now()).await.unwrap();
    /// }
    /// plan.wait_idle().await;
    /// assert_eq!(plan.stats().completed, 8);
    /// # }
    /// ```
    pub async fn wait_idle(&self) {
        self.shared.wait_idle().await;
    }

    /// Returns a snapshot of the plan's counters. See [`Stats`] for the
    /// conservation law they obey.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let running = plan.submit(std::future::pending::<()>()).await?;
    /// plan.submit(async {}).await?;
    /// tokio::task::yield_now().await;
    /// let stats = plan.stats();
    /// assert_eq!((stats.running, stats.queued, stats.submitted), (1, 1, 2));
    /// running.cancel();
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Returns the plan's cancellation token.
    ///
    /// The token is cancelled when the plan aborts: by [`abort`](Plan::abort),
    /// by a [`shutdown`](Plan::shutdown) whose grace ran out, or by the
    /// cancellation of the parent token given to
    /// [`PlanBuilder::token`](crate::PlanBuilder::token). Cancelling it
    /// aborts the plan, as if `abort` were called, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let plan = taskplan::Plan::builder().workers(1).build().unwrap();
    /// let token = plan.token();
    /// let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
    /// token.cancel();
    /// assert!(stuck.await.unwrap_err().is_cancelled());
    /// assert!(plan.is_closed());
    /// # }
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.shared.token.clone()
    }

    /// The runtime the plan's supervisors run on.
    #[cfg_attr(not(feature = "signal"), allow(dead_code))]
    pub(crate) fn runtime(&self) -> &Handle {
        self.shared.runtime()
    }

    /// Returns the plan's name, as set by [`PlanBuilder::name`](crate::PlanBuilder::name).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Moves every queued task tagged `tag` in front of every other queued
    /// task, and returns how many moved.
    ///
    /// A tag none of whose tasks is queued or running is not known to the
    /// plan (see [`tag_stats`](Plan::tag_stats)): promoting it moves
    /// nothing and returns 0, and a task of it submitted later queues as
    /// usual.
    ///
    /// The moved tasks keep the order in which they would have started, and
    /// start before anything queued at the time of the call, including tasks
    /// moved by earlier promotions. Tasks submitted later queue behind them
    /// as usual. The cost grows with the number of tasks moved (it is
    /// O(m log m) for m tasks), never with the length of the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    /// for job in ["bg 1", "bg 2", "click"] {
    ///     let order_tx = order_tx.clone();
    ///     let tag = if job == "click" { "ui" } else { "bg" };
    ///     plan.task(async move { order_tx.send(job).unwrap() }).tag(tag).try_submit()?;
    /// }
    /// // The worker has not started anything yet: the click goes first.
    /// assert_eq!(plan.promote("ui"), 1);
    /// plan.wait_idle().await;
    /// assert_eq!(order_rx.recv().await, Some("click"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn promote(&self, tag: &str) -> usize {
        self.shared.promote(tag)
    }

    /// Cancels every queued and running task tagged `tag`, and returns how
    /// many it cancelled.
    ///
    /// Each is cancelled as by [`TaskHandle::cancel`]: queued ones never
    /// start, running ones are dropped at once. Tasks with other tags, or
    /// none, are untouched. The count is exact: a task that finished before
    /// this reached it is not counted, and every task counted ends
    /// cancelled, even one whose poll returns its value in the same instant.
    /// A tag none of whose tasks is queued or running is not known to the
    /// plan (see [`tag_stats`](Plan::tag_stats)): cancelling it returns 0,
    /// and a task of it submitted later runs as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let sync = plan.task(std::future::pending::<()>()).tag("sync").submit().await?;
    /// let ui = plan.task(async { "drawn" }).tag("ui").submit().await?;
    /// assert_eq!(plan.cancel_tag("sync"), 1);
    /// assert!(sync.await.unwrap_err().is_cancelled());
    /// assert_eq!(ui.await?, "drawn");
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_tag(&self, tag: &str) -> usize {
        self.shared.cancel_tag(tag)
    }

    /// Cancels the task numbered `id`, queued or running, and returns
    /// whether it did: `false` if no task of this plan by that id is queued
    /// or running (it finished, was cancelled before, or never existed).
    ///
    /// Ids are numbered per plan: pass only ids of this plan's tasks, since
    /// an id from another plan names whichever task of this one has the
    /// same number.
    ///
    /// The task is cancelled as by [`TaskHandle::cancel`], for a caller that
    /// only has the id: a job service cancelling a job named in a request
    /// from another connection. A running task is found among the tasks the
    /// supervisors run, at once; a queued one by a look through the queue,
    /// which takes time in proportion to the number queued, under the
    /// plan's lock. Where a handle is at hand, [`TaskHandle::cancel`] or a
    /// [`CancelHandle`](crate::CancelHandle) find their task at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let job = plan.submit(std::future::pending::<()>()).await?;
    /// let id = job.id(); // e.g. sent to a client, which asks to cancel it
    /// assert!(plan.cancel(id));
    /// assert!(job.await.unwrap_err().is_cancelled());
    /// assert!(!plan.cancel(id)); // already ended
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self, id: TaskId) -> bool {
        self.shared.cancel_by_id(id)
    }

    /// Cancels every queued and running task, leaves the plan open, and
    /// returns how many it cancelled.
    ///
    /// Each task queued or running when this is called is cancelled as by
    /// [`TaskHandle::cancel`]; the count is exact in the same way as
    /// [`cancel_tag`](Plan::cancel_tag)'s. Tasks submitted afterwards run as
    /// usual. Unlike [`abort`](Plan::abort), which also stops the plan for
    /// good, this is a reset: "drop everything in flight, keep serving".
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let running = plan.submit(std::future::pending::<()>()).await?;
    /// let queued = plan.submit(async { "never" }).await?;
    /// tokio::task::yield_now().await; // the first one starts
    /// assert_eq!(plan.cancel_all(), 2);
    /// assert!(running.await.unwrap_err().is_cancelled());
    /// assert!(queued.await.unwrap_err().is_cancelled());
    /// // The plan stays open.
    /// assert_eq!(plan.submit(async { "next" }).await?.await?, "next");
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_all(&self) -> usize {
        self.shared.cancel_all()
    }

    /// Changes how many tasks may run at once, while the plan runs.
    ///
    /// Growing takes effect at once: new workers start for the queued tasks,
    /// and later ones as work arrives.
    /// Shrinking never cancels or interrupts a running task: surplus workers
    /// leave after their current task, so for a while more than `workers`
    /// tasks may still be running. But once this returns, no worker beyond
    /// the new number starts a task: every task that starts from then on
    /// starts while at most `workers` tasks run, itself included.
    /// [`Stats::workers`] reports the new target as soon as this returns.
    ///
    /// # Errors
    ///
    /// Returns [`ResizeError::ZeroWorkers`] if `workers` is zero,
    /// [`ResizeError::TooManyWorkers`] if it is above [`MAX_WORKERS`], and
    /// [`ResizeError::Closed`] once the plan is closed (by `close`, a
    /// shutdown, an abort or its token); the plan is left as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// plan.set_workers(3)?;
    /// assert_eq!(plan.stats().workers, 3);
    /// assert!(plan.set_workers(0).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_workers(&self, workers: usize) -> Result<(), ResizeError> {
        if workers == 0 {
            return Err(ResizeError::ZeroWorkers);
        }
        if workers > MAX_WORKERS {
            return Err(ResizeError::TooManyWorkers);
        }
        if !self.shared.resize(workers) {
            return Err(ResizeError::Closed);
        }
        tracing::debug!(plan = %self.shared.name, workers, "workers changed");
        Ok(())
    }

    /// Returns the counters of the tasks tagged `tag` in the tag's current
    /// life, with the same fields and the same conservation law as
    /// [`stats`](Plan::stats). `workers` is the plan's.
    ///
    /// A plan keeps a tag only while one of its tasks is queued or running,
    /// so that tags made per user, per connection or per request cost
    /// nothing once their work is done. A tag's life begins when one of its
    /// tasks is queued while none is queued or running, and ends when the
    /// last of them has ended; its counts cover that life. After it, the tag
    /// reports as one never seen, all zeros but `workers`, and a task of the
    /// same name submitted later begins a new life, counted from zero.
    /// [`stats`](Plan::stats) counts every task of every life, and so do
    /// a tag's series with the `metrics` feature: they are the recorder's,
    /// which keeps them from one life to the next.
    ///
    /// A task has ended here once the plan is done with it, which is before
    /// its handle's waker is woken and before [`wait_idle`](Plan::wait_idle)
    /// returns. (A handle polled in the instant between its task storing
    /// its result and that point may resolve a moment earlier.) A refused
    /// submit never begins a life.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// let (started_tx, started) = tokio::sync::oneshot::channel();
    /// let (release, released) = tokio::sync::oneshot::channel::<()>();
    /// let slow = plan
    ///     .task(async move {
    ///         started_tx.send(()).unwrap();
    ///         released.await.ok()
    ///     })
    ///     .tag("ui")
    ///     .submit()
    ///     .await?;
    /// plan.task(async {}).tag("ui").submit().await?;
    /// started.await?;
    /// let ui = plan.tag_stats("ui");
    /// assert_eq!((ui.submitted, ui.running, ui.queued), (2, 1, 1));
    ///
    /// release.send(()).unwrap();
    /// slow.await?;
    /// plan.wait_idle().await;
    /// // Both ended: the tag's life is over, and the plan forgot it.
    /// assert_eq!(plan.tag_stats("ui").submitted, 0);
    /// assert_eq!(plan.stats().completed, 2);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn tag_stats(&self, tag: &str) -> Stats {
        self.shared.tag_stats(tag)
    }
}

/// The error for a submitter whose task the engine refused, with its
/// future taken back out.
fn submit_error<F>(refused: Refused<NewTask<F>>) -> SubmitError<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match refused {
        Refused::Full(task) => SubmitError::full(task.into_future()),
        Refused::FullInsideTask(task) => SubmitError::full_inside_task(task.into_future()),
        Refused::Closed(task) => SubmitError::closed(task.into_future()),
    }
}

impl Plan {
    /// The engine, for its unit tests.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// How many tasks may wait for a worker: the durable host prefetches
    /// no more than that.
    #[cfg(feature = "redis")]
    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

impl Clone for Plan {
    fn clone(&self) -> Plan {
        self.shared.plans.fetch_add(1, Ordering::Relaxed);
        Plan {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Plan {
    fn drop(&mut self) {
        if self.shared.plans.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("name", &self.shared.name)
            .field("capacity", &self.shared.capacity())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}
