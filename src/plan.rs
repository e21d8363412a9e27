//! [`Plan`]: a bounded queue of tasks and the supervisors that run them.
//!
//! All mutable queue state sits behind one mutex (`Shared::state`), held
//! only for O(1) list operations and never across an `.await`, a wake, or a
//! user destructor. Wakeups go through three [`Notify`]s: supervisors wait
//! for work, submitters wait for room, and `wait_idle` waits for quiet.
//! Every waiter registers (`enable`) before it looks at the state, so a
//! change made between its look and its wait still wakes it.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use slab::Slab;

use crate::blocking::{Blocking, BlockingTask};
use crate::builder::PlanBuilder;
use crate::error::{ResizeError, SubmitError, contain_panic};
use crate::handle::TaskHandle;
use crate::queue::Queue;
use crate::stats::{CachePadded, Counters, Outcomes, ShutdownReport, Stats};
use crate::supervisor;
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::sync::{AtomicBool, AtomicUsize, AtomicWaker, Ordering};
use crate::tag::{Tag, TagRegistry};
use crate::task::{CancelRequest, Control, Header, Join, NewTask, Setup, Task, TaskId};
use crate::task_builder::{TaskBuilder, TaskOptions};

/// A set of workers that run submitted futures, at most `workers` at a time,
/// with a bounded queue in front of them.
///
/// A plan owns `workers` supervisor tasks spawned on the Tokio runtime that
/// built it. Each supervisor takes the next queued task (promoted tasks
/// first, then by priority, then oldest first), runs it to the end, and
/// takes the next. Every submitted task gets a [`TaskHandle`] to
/// await its output or cancel it, and the plan as a whole can be closed,
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

/// State shared by a plan's clones, its supervisors and its handles.
pub(crate) struct Shared {
    pub(crate) name: Box<str>,
    capacity: usize,
    /// On a cache line of its own: every submit and every pop takes this
    /// lock, and the read-mostly fields around it (and the `Arc`'s counts,
    /// which every handle touches) should not bounce with it.
    state: CachePadded<Mutex<State>>,
    /// Supervisors wait here for a task to be queued or for the plan to close.
    work_available: Notify,
    /// Submitters wait here for room in the queue or for the plan to close.
    room_available: Notify,
    /// `wait_idle` waits here for the last task to finish.
    idle: Notify,
    /// Callers inside `wait_idle`; with none, going idle wakes nobody.
    idle_waiters: AtomicUsize,
    /// Cancelled on abort; every supervisor races its task against it.
    pub(crate) token: CancellationToken,
    /// Cancelled when the plan closes, for `Plan::closed`; not tied to
    /// `token`, which only an abort cancels.
    closing: CancellationToken,
    /// The waker of each live supervisor, by its number: a cancel wakes the
    /// supervisor running the task through it. Taken alone, never with
    /// another lock held.
    supervisor_wakers: Mutex<Slab<Arc<AtomicWaker>>>,
    supervisors: TaskTracker,
    /// Supervisors not yet exited; the last one out cancels what is queued.
    live_supervisors: AtomicUsize,
    /// Supervisors not yet told to retire. `set_workers` moves `workers`,
    /// then supervisors are spawned or retire until this matches it.
    active_supervisors: AtomicUsize,
    /// The target number of supervisors.
    workers: AtomicUsize,
    /// Serializes changes to `workers` and `active_supervisors`, so a
    /// spawn and a retirement never decide on stale counts. Lock order:
    /// `resize` before `state`, and only in one corner: spawning on a runtime
    /// that has shut down drops the new supervisor's exit guard at once,
    /// which may drain the (by then closed and empty) queue. Nothing takes
    /// `resize` while holding `state` or `tags`.
    resize: Mutex<()>,
    /// Applied to tasks that do not set their own timeout.
    pub(crate) default_timeout: Option<Duration>,
    /// The level of each task's span.
    span_level: tracing::Level,
    /// `workers`, published.
    #[cfg(feature = "metrics")]
    workers_gauge: metrics::Gauge,
    /// Every tag seen. Lock order: never taken while `state` is held.
    tags: Mutex<TagRegistry>,
    /// Blocking closures still running on the blocking pool after their task
    /// ended.
    blocking: Arc<Blocking>,
    /// Set once an abort cancelled a queued or running task.
    forced: AtomicBool,
    /// Live `Plan` clones; the last one dropped closes the plan.
    plans: AtomicUsize,
    counters: Counters,
    runtime: Handle,
}

struct State {
    queue: Queue,
    /// Per-tag counts, by tag index.
    tags: Vec<TagState>,
    closed: bool,
    /// Tasks taken off the queue to run, for `Stats::running`.
    started: usize,
    /// Submitters registered to wait for room and not yet sent a wakeup.
    /// A pop or a cancel that frees room claims one and wakes it; with none
    /// waiting, freeing room costs no wakeup at all.
    waiting_submitters: usize,
    /// Supervisors registered to wait for work and not yet sent a wakeup.
    ///
    /// Exact while the plan is open: a waiter registers with the `Notify`
    /// before it is counted, and every wakeup an idle supervisor is sent
    /// (`notify_one`) is taken off this count first. It must never
    /// overstate: a wakeup claimed for a supervisor that is not waiting
    /// becomes the `Notify`'s one stored permit, and a second one is lost,
    /// leaving `wakeups_in_flight` too high for good. (A regression test:
    /// `set_workers` once woke idle supervisors with `notify_waiters`, which
    /// left them counted; each woke and counted itself again, and a later
    /// task stayed queued beside an idle worker.) `notify_waiters` is only
    /// used once the plan has closed, after which no supervisor waits again.
    idle_supervisors: usize,
    /// Wakeups sent to idle supervisors and not yet taken up: a woken
    /// supervisor counts itself off at its next look at the queue.
    ///
    /// Invariant (see `claim_wakeup`): while a supervisor is idle, there is
    /// a wakeup on its way for every queued task, so no task waits for a
    /// worker while one sleeps; and no more than that, so a burst of pushes
    /// to supervisors that are already coming costs no wakeups at all, and a
    /// supervisor is never woken for a task another one will take. (Waking
    /// only one at a time and letting it wake the next, as a chain, costs
    /// fewer wakeups, but Tokio runs a task woken from a worker thread on
    /// that same thread next, so the chain kept whole bursts on one thread
    /// while the other slept: measured, 170 of 500 bursts of 200 CPU-bound
    /// tasks ran on one of two threads, against 4 with this rule.)
    ///
    /// The count may understate (once the plan closes, `notify_waiters` wakes
    /// supervisors nobody counted), which only costs a spare wakeup; it must
    /// never overstate,
    /// or queued tasks would wait for wakeups that are not coming. Every
    /// wakeup counted here is taken up by exactly one supervisor: `Notify`
    /// hands a `notify_one` to a waiter, passes it on if that waiter is
    /// dropped, or keeps it as a permit for the next one, and a supervisor
    /// whose `Notified` completes, by `enable` or by being awaited, counts
    /// itself off.
    wakeups_in_flight: usize,
}

impl State {
    /// Claims a wakeup for an idle supervisor if the invariant above needs
    /// one. The caller sends it (`notify_one`) after releasing the lock.
    fn claim_wakeup(&mut self) -> bool {
        let needed = self.idle_supervisors > 0 && self.wakeups_in_flight < self.queue.len();
        if needed {
            self.idle_supervisors -= 1;
            self.wakeups_in_flight += 1;
        }
        needed
    }

    /// Counts off a wakeup the calling supervisor took up.
    fn wakeup_taken(&mut self, woken: bool) {
        if woken {
            self.wakeups_in_flight = self.wakeups_in_flight.saturating_sub(1);
        }
    }
}

/// What the locked state knows of one tag.
#[derive(Default)]
struct TagState {
    submitted: usize,
    started: usize,
    /// The tag's running tasks, so `cancel_tag` can reach them.
    running: Slab<Arc<dyn Control>>,
}

/// Why `Shared::push` refused a task; the task is handed back.
enum Refused<T> {
    Full(T),
    Closed(T),
}

impl<F> Refused<NewTask<F>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// The error for the submitter, with its future taken back out.
    fn into_submit_error(self) -> SubmitError<F> {
        match self {
            Refused::Full(task) => SubmitError::Full(task.into_future()),
            Refused::Closed(task) => SubmitError::Closed(task.into_future()),
        }
    }
}

impl Plan {
    /// Returns a builder for a plan, with the defaults: as many workers as
    /// [`std::thread::available_parallelism`], a capacity of 1024 queued
    /// tasks, and the name `"plan"`.
    pub fn builder() -> PlanBuilder {
        PlanBuilder::new()
    }

    pub(crate) fn start(
        name: String,
        workers: usize,
        capacity: usize,
        default_timeout: Option<Duration>,
        span_level: tracing::Level,
        token: CancellationToken,
        runtime: Handle,
    ) -> Plan {
        let counters = Counters::new(&name);
        let tags = TagRegistry::new(&name);
        #[cfg(feature = "metrics")]
        let workers_gauge = crate::metrics::workers_gauge(&name);
        #[cfg(feature = "metrics")]
        workers_gauge.set(workers as f64);
        let shared = Arc::new(Shared {
            name: name.into_boxed_str(),
            capacity,
            state: CachePadded(Mutex::new(State {
                // Grows on demand: a large capacity costs nothing up front.
                queue: Queue::with_capacity(capacity.min(1024)),
                tags: Vec::new(),
                closed: false,
                started: 0,
                waiting_submitters: 0,
                idle_supervisors: 0,
                wakeups_in_flight: 0,
            })),
            work_available: Notify::new(),
            room_available: Notify::new(),
            idle: Notify::new(),
            idle_waiters: AtomicUsize::new(0),
            token,
            closing: CancellationToken::new(),
            supervisor_wakers: Mutex::new(Slab::new()),
            supervisors: TaskTracker::new(),
            live_supervisors: AtomicUsize::new(0),
            active_supervisors: AtomicUsize::new(0),
            workers: AtomicUsize::new(workers),
            resize: Mutex::new(()),
            default_timeout,
            span_level,
            tags: Mutex::new(tags),
            blocking: Arc::new(Blocking::default()),
            forced: AtomicBool::new(false),
            plans: AtomicUsize::new(1),
            counters,
            #[cfg(feature = "metrics")]
            workers_gauge,
            runtime,
        });
        {
            let _resize = shared.resize.lock().unwrap_or_else(|e| e.into_inner());
            shared.spawn_missing_supervisors_locked();
        }
        shared
            .runtime
            .spawn(supervisor::watch_token(Arc::clone(&shared)));
        tracing::debug!(plan = %shared.name, workers, capacity, "plan started");
        Plan { shared }
    }

    /// Submits a task, waiting while the queue is full.
    ///
    /// The queue is full when it holds `capacity` tasks that have not
    /// started; then this waits until a task starts, is cancelled, or the
    /// plan closes. Returns a [`TaskHandle`] for the task once it is queued.
    ///
    /// # Errors
    ///
    /// Returns [`SubmitError::Closed`] with the future inside if the plan is
    /// closed, or closes while waiting.
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
    /// Returns [`SubmitError::Full`] if the queue holds `capacity` tasks that
    /// have not started, and [`SubmitError::Closed`] if the plan is closed.
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
        TaskBuilder::new(self, future)
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
        let token = self.shared.token.child_token();
        let future = make(token.clone());
        self.submit_task(future, TaskOptions::default(), Some(token))
            .await
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
        let token = self.shared.token.child_token();
        let task = BlockingTask::new(closure, token.clone(), Arc::clone(&self.shared.blocking));
        self.submit_task(task, TaskOptions::default(), Some(token))
            .await
            .map_err(|error| error.map(BlockingTask::into_closure))
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
            mut task,
            join,
            placement,
        } = self.prepare(future, options, token);
        let mut wait_for_room = false;
        loop {
            let mut room = pin!(self.shared.room_available.notified());
            if wait_for_room {
                // Registered before the look at the queue, so room freed
                // between the look and the wait still wakes this submitter.
                room.as_mut().enable();
            }
            task = match self.shared.push(task, placement, wait_for_room) {
                Ok(id) => return Ok(self.handle(join, id)),
                Err(Refused::Full(task)) => task,
                Err(refused) => return Err(refused.into_submit_error()),
            };
            if wait_for_room {
                room.await;
            }
            wait_for_room = true;
        }
    }

    /// Submits with the given options if the queue has room.
    pub(crate) fn try_submit_task<F>(
        &self,
        future: F,
        options: TaskOptions,
    ) -> Result<TaskHandle<F::Output>, SubmitError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Prepared {
            task,
            join,
            placement,
        } = self.prepare(future, options, None);
        self.shared
            .push(task, placement, false)
            .map(|id| self.handle(join, id))
            .map_err(Refused::into_submit_error)
    }

    fn prepare<F>(
        &self,
        future: F,
        options: TaskOptions,
        token: Option<CancellationToken>,
    ) -> Prepared<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let tag = options.tag.map(|tag| self.shared.tag_info(tag));
        let placement = Placement {
            priority: options.priority,
            tag: tag.as_ref().map(|tag| tag.index),
        };
        let setup = Setup {
            tag,
            priority: options.priority,
            timeout: options.timeout,
            token,
            ..Setup::default()
        };
        let task = NewTask::new(future, setup);
        Prepared {
            join: task.join(),
            task,
            placement,
        }
    }

    fn handle<T>(&self, join: Arc<dyn Join<T>>, id: TaskId) -> TaskHandle<T> {
        TaskHandle::new(join, Arc::clone(&self.shared), id)
    }

    /// Closes the plan to new tasks. Returns `true` if this call closed it,
    /// `false` if it was already closed.
    ///
    /// Tasks already queued or running are not affected: they run to the end
    /// and their handles resolve as usual. Submitters waiting for room get
    /// [`SubmitError::Closed`]. Once the queue is empty the supervisors exit.
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
        self.shared.closing.clone().cancelled_owned()
    }

    /// Returns `true` once the plan accepts no new tasks: after
    /// [`close`](Plan::close), a shutdown, an abort, or when the last clone
    /// was dropped.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
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
        let started = tokio::time::Instant::now();
        let supervisors = &self.shared.supervisors;
        // With no grace, closing and draining must be one step (below), or a
        // worker could start a queued task in between.
        let drained = !grace.is_zero() && {
            self.close();
            // The timer belongs to the plan's runtime, not to the caller's:
            // `shutdown` may be awaited on a plain thread or on another
            // runtime, where making a timer would panic.
            let grace_period = {
                let _runtime = self.shared.runtime.enter();
                tokio::time::timeout(grace, supervisors.wait())
            };
            grace_period.await.is_ok()
        };
        if !drained {
            // Drain before cancelling: a task still queued when the grace
            // ran out must never start.
            self.shared.abort_queued();
            self.shared.token.cancel();
        }
        supervisors.wait().await;
        // A task that a cancel on another thread took off the queue may still
        // be resolving there; the report waits for its handle too.
        self.wait_idle().await;
        let stats = self.stats();
        ShutdownReport {
            completed: stats.completed,
            cancelled: stats.cancelled,
            panicked: stats.panicked,
            timed_out: stats.timed_out,
            abandoned: self.shared.blocking.still_running(),
            forced: self.shared.forced.load(Ordering::Acquire),
            elapsed: started.elapsed(),
        }
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
        let _waiting = IdleWaiter::register(&self.shared.idle_waiters);
        loop {
            let mut idle = pin!(self.shared.idle.notified());
            idle.as_mut().enable();
            if self.shared.counters.is_idle() {
                return;
            }
            idle.await;
        }
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
        &self.shared.runtime
    }

    /// Returns the plan's name, as set by [`PlanBuilder::name`](crate::PlanBuilder::name).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Moves every queued task tagged `tag` in front of every other queued
    /// task, and returns how many moved.
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

    /// Changes how many tasks may run at once, while the plan runs.
    ///
    /// Growing takes effect at once: new workers start and take queued tasks.
    /// Shrinking never cancels or interrupts a running task: surplus workers
    /// leave after their current task, so for a while more than `workers`
    /// tasks may still be running. [`Stats::workers`] reports the new target
    /// as soon as this returns.
    ///
    /// # Errors
    ///
    /// Returns [`ResizeError::ZeroWorkers`] if `workers` is zero; the plan is
    /// left as it was.
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
        self.shared.resize(workers);
        tracing::debug!(plan = %self.shared.name, workers, "workers changed");
        Ok(())
    }

    /// Returns the counters of the tasks tagged `tag`, with the same fields
    /// and the same conservation law as [`stats`](Plan::stats). `workers` is
    /// the plan's. A tag never used gives all zeros.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder().workers(1).build()?;
    /// plan.task(async {}).tag("ui").submit().await?.await?;
    /// plan.task(async {}).tag("bg").submit().await?.await?;
    /// let ui = plan.tag_stats("ui");
    /// assert_eq!((ui.submitted, ui.completed), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn tag_stats(&self, tag: &str) -> Stats {
        self.shared.tag_stats(tag)
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
            .field("capacity", &self.shared.capacity)
            .field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code, so a poisoned lock means a
        // bug in this crate, not a half-done user operation; the queue itself
        // is consistent after every statement that can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the target number of supervisors and spawns any that are
    /// missing.
    fn resize(self: &Arc<Shared>, workers: usize) {
        let _resize = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        self.workers.store(workers, Ordering::Release);
        self.spawn_missing_supervisors_locked();
        #[cfg(feature = "metrics")]
        self.workers_gauge.set(workers as f64);
        // Idle surplus supervisors retire now rather than at their next
        // task. They are woken one by one through the wakeup count, not all
        // at once with `notify_waiters`, which would leave them counted as
        // idle (see `State::idle_supervisors`).
        let surplus = self
            .active_supervisors
            .load(Ordering::Acquire)
            .saturating_sub(workers);
        let wake = {
            let mut state = self.lock();
            let wake = surplus.min(state.idle_supervisors);
            state.idle_supervisors -= wake;
            state.wakeups_in_flight += wake;
            wake
        };
        for _ in 0..wake {
            self.work_available.notify_one();
        }
    }

    /// Spawns supervisors until as many are active as `workers` asks for.
    /// Caller holds `resize`.
    fn spawn_missing_supervisors_locked(self: &Arc<Shared>) {
        while self.active_supervisors.load(Ordering::Acquire) < self.workers.load(Ordering::Acquire)
        {
            // `live` first: it must never drop to zero while a supervisor
            // counts as active, or the last one out would abort the queue.
            self.live_supervisors.fetch_add(1, Ordering::AcqRel);
            self.active_supervisors.fetch_add(1, Ordering::AcqRel);
            // The guard is made here, outside the supervisor's future, so it
            // runs even if the runtime drops that future before polling it.
            let exit = supervisor::ExitGuard::new(Arc::clone(self));
            #[cfg(tokio_unstable)]
            let name = format!("{} supervisor {}", self.name, exit.number());
            let supervisor = self.supervisors.track_future(supervisor::supervise(exit));
            #[cfg(tokio_unstable)]
            {
                // Named for tokio-console. Tokio's named spawn has an error
                // type but does not fail today; if it did, dropping the
                // supervisor runs its exit guard, which keeps the counts.
                let named = tokio::task::Builder::new()
                    .name(&name)
                    .spawn_on(supervisor, &self.runtime);
                if let Err(error) = named {
                    tracing::error!(plan = %self.name, %error, "could not spawn a supervisor");
                }
            }
            #[cfg(not(tokio_unstable))]
            self.runtime.spawn(supervisor);
        }
    }

    /// Claims a retirement if more supervisors are active than `workers`
    /// asks for. A supervisor that gets `true` must exit.
    pub(crate) fn should_retire(&self) -> bool {
        let surplus = || {
            self.active_supervisors.load(Ordering::Acquire) > self.workers.load(Ordering::Acquire)
        };
        // Both counts only change under `resize`; the unlocked look keeps
        // the per-task cost to two loads, and a stale "no" only delays a
        // retirement to the next task.
        if !surplus() {
            return false;
        }
        let _resize = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        if !surplus() {
            return false;
        }
        self.active_supervisors.fetch_sub(1, Ordering::AcqRel);
        true
    }

    /// Returns the entry of a tag, creating it on first use.
    fn tag_info(&self, tag: Tag) -> Arc<crate::tag::TagInfo> {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(tag)
    }

    fn find_tag(&self, tag: &str) -> Option<Arc<crate::tag::TagInfo>> {
        self.tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tag)
            .cloned()
    }

    /// Queues a task, or hands it back. With `wait_for_room`, a refusal for
    /// lack of room also counts the caller as a waiting submitter: it must
    /// have registered with `room_available` first.
    fn push<F>(
        &self,
        mut task: NewTask<F>,
        placement: Placement,
        wait_for_room: bool,
    ) -> Result<TaskId, Refused<NewTask<F>>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Read before the lock, to keep the clock out of the critical section.
        task.stamp_queued(Instant::now());
        // The event and the published count below come after the task has
        // moved into the queue; its tag is kept for them only when they
        // need it.
        let tag = (cfg!(feature = "metrics") || tracing::enabled!(tracing::Level::TRACE))
            .then(|| task.tag().cloned())
            .flatten();
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed(task));
        }
        if state.queue.len() >= self.capacity {
            state.waiting_submitters += usize::from(wait_for_room);
            return Err(Refused::Full(task));
        }
        let task = task.into_task();
        let id = state.queue.push(task, placement.priority, placement.tag);
        if let Some(tag) = placement.tag {
            if state.tags.len() <= tag {
                state.tags.resize_with(tag + 1, TagState::default);
            }
            state.tags[tag].submitted += 1;
        }
        // Counted under the lock so a supervisor cannot finish the task
        // before it is counted as submitted.
        self.counters.record_submitted();
        let wake_supervisor = state.claim_wakeup();
        drop(state);
        if wake_supervisor {
            self.work_available.notify_one();
        }
        #[cfg(feature = "metrics")]
        {
            self.outcomes().record_submitted();
            if let Some(tag) = &tag {
                tag.outcomes.record_submitted();
            }
        }
        tracing::trace!(
            plan = %self.name,
            task = %id,
            tag = tag.as_ref().map(|tag| tag.name.as_str()),
            priority = placement.priority,
            "task queued"
        );
        Ok(id)
    }

    /// Waits for the next task, and says whether it had to wait for it.
    /// Returns `None` once the plan is closed and nothing is queued, or when
    /// this supervisor must retire.
    pub(crate) async fn next_task(&self, supervisor: u32) -> Option<(Task, bool)> {
        // Set once this supervisor was woken, until it has looked at the
        // queue: see `State::wakeups_in_flight`.
        let mut woken = false;
        // Set once this call has waited, so the caller knows its clock
        // reading from before the call is stale.
        let mut waited = false;
        loop {
            if self.should_retire() {
                self.pass_on_wakeup(std::mem::take(&mut woken));
                return None;
            }
            if let Some(next) = self.try_pop(supervisor, std::mem::take(&mut woken), false) {
                return next.map(|task| (task, waited));
            }
            let mut work = pin!(self.work_available.notified());
            if work.as_mut().enable() {
                // A wakeup kept for the next waiter: take it up.
                woken = true;
                continue;
            }
            if let Some(next) = self.try_pop(supervisor, false, true) {
                // If a wakeup reaches `work` before it drops, `Notify`
                // passes it on to another waiter.
                return next.map(|task| (task, waited));
            }
            work.await;
            woken = true;
            waited = true;
        }
    }

    /// `Some(Some(task))` if one was queued, `Some(None)` if the plan is
    /// closed and drained, `None` if the caller should wait; then, with
    /// `register_idle`, it is counted as an idle supervisor, and must have
    /// registered with `work_available` first. `woken` says whether the
    /// caller takes up a wakeup. The task is marked as run by `supervisor`.
    fn try_pop(&self, supervisor: u32, woken: bool, register_idle: bool) -> Option<Option<Task>> {
        let mut state = self.lock();
        state.wakeup_taken(woken);
        match state.queue.pop() {
            Some((mut task, tag)) => {
                task.header().mark_started(supervisor);
                state.started += 1;
                if let Some(tag) = tag {
                    let tag = &mut state.tags[tag];
                    tag.started += 1;
                    let key = tag.running.insert(task.control());
                    task.set_running_key(key);
                }
                let wake_submitter = claim(&mut state.waiting_submitters);
                // More queued than supervisors coming: wake another.
                let wake_supervisor = state.claim_wakeup();
                drop(state);
                if wake_submitter {
                    self.room_available.notify_one();
                }
                if wake_supervisor {
                    self.work_available.notify_one();
                }
                Some(Some(task))
            }
            None if state.closed => Some(None),
            None => {
                state.idle_supervisors += usize::from(register_idle);
                None
            }
        }
    }

    /// The span a task runs in, at the plan's span level.
    pub(crate) fn task_span(&self, task: &Task) -> tracing::Span {
        // A span's level is part of its static callsite, hence one
        // callsite per level.
        macro_rules! task_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "task",
                    plan = %self.name,
                    id = %task.id(),
                    tag = task.tag().map(|tag| tag.name.as_str()),
                    priority = task.priority(),
                )
            };
        }
        match self.span_level {
            tracing::Level::ERROR => task_span!(tracing::Level::ERROR),
            tracing::Level::WARN => task_span!(tracing::Level::WARN),
            tracing::Level::INFO => task_span!(tracing::Level::INFO),
            tracing::Level::DEBUG => task_span!(tracing::Level::DEBUG),
            _ => task_span!(tracing::Level::TRACE),
        }
    }

    /// Counts the time a task waited in the queue, for the plan and its tag.
    pub(crate) fn record_queue_wait(&self, task: &Task, waited: Duration) {
        self.outcomes().record_started(waited);
        if let Some(tag) = task.tag() {
            tag.outcomes.record_started(waited);
        }
    }

    /// Counts the time a task ran, for the plan and its tag.
    pub(crate) fn record_run_time(&self, task: &Task, ran: Duration) {
        self.outcomes().record_run_time(ran);
        if let Some(tag) = task.tag() {
            tag.outcomes.record_run_time(ran);
        }
    }

    /// Forgets a tagged task that stopped running.
    pub(crate) fn finished_running(&self, task: &Task) {
        if let Some(tag) = task.tag() {
            self.lock().tags[tag.index]
                .running
                .remove(task.running_key());
        }
    }

    /// Gives a new supervisor its number and the waker through which a
    /// cancel of its task reaches it.
    pub(crate) fn register_supervisor(&self) -> (u32, Arc<AtomicWaker>) {
        let waker = Arc::new(AtomicWaker::new());
        let key = self
            .supervisor_wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Arc::clone(&waker));
        // Past `u32::MAX` live supervisors (not a plan that fits in memory)
        // the number means "unknown", and a cancel wakes them all.
        (u32::try_from(key).unwrap_or(u32::MAX), waker)
    }

    pub(crate) fn unregister_supervisor(&self, number: u32, waker: &Arc<AtomicWaker>) {
        let mut wakers = self
            .supervisor_wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = match number {
            u32::MAX => wakers
                .iter()
                .find(|(_, other)| Arc::ptr_eq(other, waker))
                .map(|(key, _)| key),
            number => Some(number as usize),
        };
        if let Some(key) = key {
            wakers.try_remove(key);
        }
    }

    /// Wakes the supervisor running a task that was just asked to stop.
    fn wake_supervisor(&self, number: u32) {
        let wakers: Vec<Arc<AtomicWaker>> = {
            let wakers = self
                .supervisor_wakers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match number {
                u32::MAX => wakers.iter().map(|(_, waker)| Arc::clone(waker)).collect(),
                number => wakers.get(number as usize).cloned().into_iter().collect(),
            }
        };
        // Woken outside the lock: waking runs scheduler code.
        for waker in wakers {
            waker.wake();
        }
    }

    /// Hands the work of a supervisor that is leaving to another: the
    /// wakeup it took up, if `woken`, or one meant for it that it never saw.
    pub(crate) fn pass_on_wakeup(&self, woken: bool) {
        let wake = {
            let mut state = self.lock();
            state.wakeup_taken(woken);
            state.claim_wakeup()
        };
        if wake {
            self.work_available.notify_one();
        }
    }

    fn promote(&self, tag: &str) -> usize {
        let Some(tag) = self.find_tag(tag) else {
            return 0;
        };
        self.lock().queue.promote(tag.index)
    }

    fn cancel_tag(&self, tag: &str) -> usize {
        let Some(tag) = self.find_tag(tag) else {
            return 0;
        };
        let mut state = self.lock();
        let queued = state.queue.drain_tag(tag.index);
        // Cloned out so the supervisors are woken after the lock is released.
        let running: Vec<Arc<dyn Control>> = state
            .tags
            .get(tag.index)
            .map(|tag_state| {
                tag_state
                    .running
                    .iter()
                    .map(|(_, task)| Arc::clone(task))
                    .collect()
            })
            .unwrap_or_default();
        let wake_submitters = claim_up_to(&mut state.waiting_submitters, queued.len());
        drop(state);
        let mut cancelled = queued.len();
        self.drop_unstarted(queued.len(), queued);
        for _ in 0..wake_submitters {
            self.room_available.notify_one();
        }
        for task in running {
            if task.header().request_cancel() == CancelRequest::Requested {
                self.wake_supervisor(task.header().supervisor());
                cancelled += 1;
            }
            // If the task finished meanwhile and its handle is gone, this is
            // the last reference, and dropping it drops the task's output:
            // user code, whose panic must not reach the caller.
            contain_panic(
                || drop(task),
                |panic| tracing::error!(plan = %self.name, panic, "a task's output destructor panicked"),
            );
        }
        cancelled
    }

    /// Counts, drops and settles tasks taken off the queue unstarted.
    ///
    /// `count` is how many `tasks` yields. The plan's count goes up for all
    /// of them first; each task's tag count just before it drops, in one
    /// visit, since an abort may bring many tasks that are no longer in the
    /// cache. Either way a task is counted before its handle resolves, and
    /// the handles are woken once every task is settled.
    fn drop_unstarted(&self, count: usize, tasks: impl IntoIterator<Item = Task>) {
        if count == 0 {
            return;
        }
        self.outcomes().record_cancelled_queued(count);
        // Waking a handle runs user code, which may panic: that waits until
        // the bookkeeping is done (see `HandleWaker`).
        let mut handles = Vec::new();
        // Drops the futures and resolves the handles, outside the lock.
        for mut task in tasks {
            task.record_cancelled_queued_for_tag();
            tracing::debug!(
                plan = %self.name,
                task = %task.id(),
                tag = task.tag().map(|tag| tag.name.as_str()),
                "queued task cancelled"
            );
            let handle = task.end();
            if handle.is_waiting() {
                handles.push(handle);
            }
            drop(task);
        }
        self.settle(count);
        for handle in handles {
            handle.wake(&self.name);
        }
    }

    fn tag_stats(&self, tag: &str) -> Stats {
        let workers = self.workers.load(Ordering::Acquire);
        let Some(tag) = self.find_tag(tag) else {
            return Stats {
                workers,
                ..Stats::default()
            };
        };
        let (queued, started, submitted) = {
            let state = self.lock();
            let counts = state.tags.get(tag.index);
            (
                state.queue.tag_len(tag.index),
                counts.map_or(0, |counts| counts.started),
                counts.map_or(0, |counts| counts.submitted),
            )
        };
        tag.outcomes.snapshot(workers, queued, started, submitted)
    }

    /// Cancels one task, queued or running.
    pub(crate) fn cancel(&self, header: &Header) {
        let mut request = header.request_cancel();
        if request == CancelRequest::StillQueued {
            let mut state = self.lock();
            if header.is_queued() && state.queue.holds(header.queue_key(), header) {
                let (task, _) = state.queue.remove(header.queue_key());
                let wake_submitter = claim(&mut state.waiting_submitters);
                drop(state);
                if wake_submitter {
                    self.room_available.notify_one();
                }
                self.drop_unstarted(1, [task]);
                return;
            }
            // A supervisor took it between our two looks: cancel it there.
            // (Or an abort drained it: then it is being dropped unstarted,
            // and this finds it still QUEUED and leaves it be.)
            drop(state);
            request = header.request_cancel();
        }
        if request == CancelRequest::Requested {
            self.wake_supervisor(header.supervisor());
        }
    }

    pub(crate) fn close(&self) -> bool {
        let newly_closed = !std::mem::replace(&mut self.lock().closed, true);
        if newly_closed {
            self.announce_closed();
        }
        newly_closed
    }

    /// Wakes whoever waits on a plan that just closed.
    fn announce_closed(&self) {
        self.closing.cancel();
        self.supervisors.close();
        self.work_available.notify_waiters();
        self.room_available.notify_waiters();
        tracing::debug!(plan = %self.name, "plan closed");
    }

    /// Closes the plan and drops every queued task without starting it.
    ///
    /// Closing and draining happen under one hold of the lock: a supervisor
    /// that finishes a task in between must find the queue empty, not pop a
    /// task that was queued when the abort began.
    pub(crate) fn cancel_queued(&self) {
        let (newly_closed, tasks) = {
            let mut state = self.lock();
            let newly_closed = !std::mem::replace(&mut state.closed, true);
            (newly_closed, state.queue.drain())
        };
        if newly_closed {
            self.announce_closed();
        }
        self.drop_unstarted(tasks.len(), tasks.into_tasks());
    }

    /// The queue's part of an abort: marks the plan as forced and cancels
    /// what is queued. Callers that interrupt a running task call this even
    /// when the queue is empty, since that task makes the abort forced.
    pub(crate) fn abort_queued(&self) {
        if !self.counters.is_idle() {
            self.forced.store(true, Ordering::Release);
        }
        self.cancel_queued();
    }

    pub(crate) fn outcomes(&self) -> &Outcomes {
        self.counters.outcomes()
    }

    /// Marks `count` finished tasks' handles as resolved, and wakes
    /// `wait_idle` if nothing is left.
    pub(crate) fn settle(&self, count: usize) {
        self.counters.outcomes().record_settled(count);
        // `notify_waiters` always takes a lock; a plan that goes idle often
        // with nobody in `wait_idle` should not pay it per task. SeqCst here
        // and in `wait_idle` (count, then look) means that either the waiter
        // sees the plan idle or this sees the waiter.
        if self.idle_waiters.load(Ordering::SeqCst) > 0 && self.counters.is_idle() {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once the plan is closed and every supervisor has exited.
    pub(crate) async fn supervisors_exited(&self) {
        self.supervisors.wait().await;
    }

    pub(crate) fn supervisor_exited(&self) {
        if self.live_supervisors.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Nobody is left to run what is queued (an abort, or the runtime
            // shutting down): resolve those handles now rather than never.
            self.cancel_queued();
        }
    }

    fn stats(&self) -> Stats {
        let (queued, started) = {
            let state = self.lock();
            (state.queue.len(), state.started)
        };
        self.counters
            .snapshot(self.workers.load(Ordering::Acquire), queued, started)
    }
}

/// A task ready to be queued: the task, its handle's half, and where it
/// goes.
struct Prepared<F: Future> {
    task: NewTask<F>,
    join: Arc<dyn Join<F::Output>>,
    placement: Placement,
}

/// Where a task goes in the queue.
#[derive(Clone, Copy)]
struct Placement {
    priority: i32,
    tag: Option<usize>,
}

/// Counts a caller of `wait_idle` for as long as it waits, however it ends.
struct IdleWaiter<'a>(&'a AtomicUsize);

impl<'a> IdleWaiter<'a> {
    fn register(waiters: &'a AtomicUsize) -> IdleWaiter<'a> {
        waiters.fetch_add(1, Ordering::SeqCst);
        IdleWaiter(waiters)
    }
}

impl Drop for IdleWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes one from a count of registered waiters; `true` if there was one to
/// wake.
fn claim(waiters: &mut usize) -> bool {
    claim_up_to(waiters, 1) == 1
}

/// Takes up to `wanted` from a count of registered waiters; returns how many
/// to wake.
fn claim_up_to(waiters: &mut usize, wanted: usize) -> usize {
    let claimed = wanted.min(*waiters);
    *waiters -= claimed;
    claimed
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The wakeup bookkeeping under the queue lock, alone: its mistakes cost
    //! spare wakeups, which no end-to-end test can see, or lost ones, which
    //! the model test finds as a hang.

    use super::*;
    use crate::task::{NewTask, Setup};

    fn state(queued: usize, idle_supervisors: usize, wakeups_in_flight: usize) -> State {
        let mut queue = Queue::with_capacity(queued);
        for _ in 0..queued {
            let task = NewTask::new(async {}, Setup::default()).into_task();
            queue.push(task, 0, None);
        }
        State {
            queue,
            tags: Vec::new(),
            closed: false,
            started: 0,
            waiting_submitters: 0,
            idle_supervisors,
            wakeups_in_flight,
        }
    }

    /// Claims wakeups until none is needed; returns how many.
    fn claim_all(state: &mut State) -> usize {
        std::iter::from_fn(|| state.claim_wakeup().then_some(())).count()
    }

    #[test]
    fn one_wakeup_per_queued_task_no_supervisor_is_coming_for() {
        // Three queued, one wakeup already on its way, four idle: two more.
        let mut state = state(3, 4, 1);
        assert_eq!(claim_all(&mut state), 2);
        assert_eq!((state.idle_supervisors, state.wakeups_in_flight), (2, 3));
    }

    #[test]
    fn no_more_wakeups_than_idle_supervisors() {
        let mut state = state(5, 2, 0);
        assert_eq!(claim_all(&mut state), 2);
        assert_eq!((state.idle_supervisors, state.wakeups_in_flight), (0, 2));
    }

    #[test]
    fn no_wakeup_when_enough_are_coming_or_nothing_is_queued() {
        assert_eq!(claim_all(&mut state(2, 3, 2)), 0);
        assert_eq!(claim_all(&mut state(0, 3, 0)), 0);
    }

    /// Yields until `done` holds, or fails after many turns.
    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never happened");
    }

    /// Shrinking an idle plan claims one wakeup per surplus idle supervisor,
    /// so each retires at once; then each retired supervisor's waker is
    /// gone from the registry, which only holds live supervisors.
    #[tokio::test]
    async fn shrinking_wakes_surplus_idle_supervisors_which_then_unregister() {
        let plan = Plan::builder().workers(3).build().unwrap();
        let shared = Arc::clone(&plan.shared);
        until(|| shared.lock().idle_supervisors == 3).await;
        assert_eq!(shared.supervisor_wakers.lock().unwrap().len(), 3);

        plan.set_workers(1).unwrap();
        {
            let state = shared.lock();
            assert_eq!((state.idle_supervisors, state.wakeups_in_flight), (1, 2));
        }
        until(|| shared.supervisor_wakers.lock().unwrap().len() == 1).await;
        let state = shared.lock();
        assert_eq!((state.idle_supervisors, state.wakeups_in_flight), (1, 0));
    }

    #[test]
    fn claims_take_no_more_than_are_registered() {
        let mut waiters = 3;
        assert_eq!(claim_up_to(&mut waiters, 2), 2);
        assert_eq!(waiters, 1);
        assert_eq!(claim_up_to(&mut waiters, 5), 1);
        assert_eq!(waiters, 0);
        assert!(!claim(&mut waiters));
        waiters = 1;
        assert!(claim(&mut waiters));
        assert_eq!(waiters, 0);
    }

    #[test]
    fn an_idle_waiter_counts_itself_for_as_long_as_it_waits() {
        let waiters = AtomicUsize::new(0);
        let first = IdleWaiter::register(&waiters);
        let second = IdleWaiter::register(&waiters);
        assert_eq!(waiters.load(Ordering::SeqCst), 2);
        drop(first);
        drop(second);
        assert_eq!(waiters.load(Ordering::SeqCst), 0);
    }

    /// `settle` wakes `wait_idle` callers only when there are some and the
    /// plan is idle: a plan that goes idle with nobody waiting pays no
    /// wakeup (`notify_waiters` takes a lock).
    #[tokio::test]
    async fn settle_wakes_idle_waiters_only_when_there_are_some_and_the_plan_is_idle() {
        use std::future::Future;
        use std::task::{Context, Waker};

        let plan = Plan::builder().workers(1).build().unwrap();
        let shared = &plan.shared;
        let woken = |expected_waiters: usize| {
            let mut notified = pin!(shared.idle.notified());
            notified.as_mut().enable();
            let _waiters: Vec<IdleWaiter<'_>> = (0..expected_waiters)
                .map(|_| IdleWaiter::register(&shared.idle_waiters))
                .collect();
            shared.settle(0);
            let mut context = Context::from_waker(Waker::noop());
            notified.poll(&mut context).is_ready()
        };
        // Idle, nobody waiting: no wakeup.
        assert!(!woken(0));
        // Idle, someone waiting: woken.
        assert!(woken(1));
        // Busy (a task submitted, not finished), someone waiting: not yet.
        let running = plan.submit(std::future::pending::<()>()).await.unwrap();
        assert!(!woken(1));
        running.cancel();
    }

    #[test]
    fn a_supervisor_that_takes_up_a_wakeup_counts_it_off_once() {
        let mut state = state(0, 0, 2);
        state.wakeup_taken(true);
        assert_eq!(state.wakeups_in_flight, 1);
        state.wakeup_taken(false);
        assert_eq!(state.wakeups_in_flight, 1);
        state.wakeup_taken(true);
        state.wakeup_taken(true);
        assert_eq!(state.wakeups_in_flight, 0, "never below zero");
    }
}
