//! The engine's state shared by a plan's clones, its supervisors and its
//! handles: the queue behind one mutex, the wakeups, the supervisors'
//! registry and the counters.
//!
//! All mutable queue state sits behind one mutex (`Shared::state`), held
//! only for O(1) list operations and never across an `.await`, a wake, or a
//! user destructor. Wakeups go through three [`Notify`]s: supervisors wait
//! for work, submitters wait for room, and `wait_idle` waits for quiet.
//! Every waiter registers (`enable`) before it looks at the state, so a
//! change made between its look and its wait still wakes it.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use slab::Slab;

use crate::engine::blocking::Blocking;
use crate::engine::cell::{
    CancelRequest, Control, Header, Joiner, NewTask, Setup, Task, TaskId, TaskTag,
};
use crate::engine::counters::{CachePadded, Counters, Outcomes};
use crate::engine::current;
use crate::engine::panic::contain_panic;
use crate::engine::queue::{MAX_QUEUED, Queue};
use crate::engine::state::{IdleWaiter, State, claim, claim_up_to};
use crate::engine::supervisor::{self, TokenAlarm};
use crate::engine::sync::{Arc, Mutex, MutexGuard};
use crate::engine::sync::{AtomicBool, AtomicUsize, AtomicWaker, Ordering};
use crate::engine::tags::{self, TagRegistry};
use crate::stats::{ShutdownReport, Stats, Timing};
use crate::tag::Tag;

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
    /// The plan's own tasks inside `wait_idle` or `shutdown`, which wait
    /// for the others: while there are any, every settle wakes the idle
    /// waiters (see `wait_others_idle`).
    inside_idle_waiters: AtomicUsize,
    /// Cancelled on abort; every supervisor races its task against it.
    pub(crate) token: CancellationToken,
    /// Fired, before `cancel()` returns, by a cancel of `token` from
    /// anywhere: from then on the plan counts as closed and refuses tasks,
    /// though the abort that follows (`watch_token`) is still on its way.
    /// A load, where `token.is_cancelled()` takes the token's lock.
    pub(crate) token_alarm: Arc<TokenAlarm>,
    /// Cancelled when the plan closes, for `Plan::closed`; not tied to
    /// `token`, which only an abort cancels.
    closing: CancellationToken,
    /// The waker of each live supervisor, by its number: a cancel wakes the
    /// supervisor running the task through it. Taken alone, never with
    /// another lock held.
    supervisor_wakers: Mutex<Slab<Arc<AtomicWaker>>>,
    supervisors: TaskTracker,
    /// Supervisors not yet exited; the last one out cancels what is queued.
    ///
    /// Invariant: never below the number of supervisors counted in
    /// `State::active_supervisors`, so that it cannot reach zero while one
    /// is still to come. Hence a supervisor is counted here under the
    /// queue lock, in the same hold that counts it active, before it is
    /// spawned.
    live_supervisors: AtomicUsize,
    /// Serializes `set_workers`, so the published `workers` gauge ends at
    /// the last target set. Lock order: `resize` before `state`. Nothing
    /// takes `resize` while holding `state`.
    resize: Mutex<()>,
    /// Applied to tasks that do not set their own timeout.
    pub(crate) default_timeout: Option<Duration>,
    /// The level of each task's span.
    span_level: tracing::Level,
    /// Whether tasks' queue waits and run times are measured; see
    /// `PlanBuilder::timings`. Without them a task reads the clock only
    /// for its timeout.
    pub(crate) timings: bool,
    /// What the queued tasks' timestamps count from (see `Task::queued_at`):
    /// when the plan was made.
    pub(crate) epoch: Instant,
    /// `workers`, published.
    #[cfg(feature = "metrics")]
    workers_gauge: metrics::Gauge,
    /// Blocking closures still running on the blocking pool after their task
    /// ended.
    pub(crate) blocking: Arc<Blocking>,
    /// Set once an abort cancelled a queued or running task.
    forced: AtomicBool,
    /// Set once a supervisor found that the plan's runtime has no time
    /// driver, so timeouts cannot be kept: found, and logged, once per plan
    /// (Tokio's panic at making a timer prints a message each time).
    pub(crate) time_driver_missing: AtomicBool,
    /// Live `Plan` clones; the last one dropped closes the plan.
    pub(crate) plans: AtomicUsize,
    counters: Counters,
    runtime: Handle,
}

/// What a built plan starts with, checked.
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) span_level: tracing::Level,
    pub(crate) timings: bool,
}

/// What a task asks of the queue and its supervisor.
#[derive(Debug, Default)]
pub(crate) struct TaskOptions {
    pub(crate) tag: Option<Tag>,
    pub(crate) priority: i32,
    /// `None`: the plan's default; `Some(None)`: no timeout at all.
    pub(crate) timeout: Option<Option<Duration>>,
}

/// Why `Shared::push` refused a task; the task is handed back.
pub(crate) enum Refused<T> {
    Full(T),
    /// Full, and the submitter is one of the plan's own tasks, which must
    /// not wait for room: see `Shared::submit`.
    FullInsideTask(T),
    Closed(T),
}

/// A `submit` from one of the plan's own tasks, counted in
/// `State::inside_submitters` while it waits for room.
struct InsideSubmitter<'a> {
    plan: &'a Shared,
    /// Whether the submitter is one of the plan's tasks at all.
    caller: bool,
    counted: bool,
}

impl InsideSubmitter<'_> {
    /// Counts the submitter as waiting, unless that would make every worker
    /// wait for room that only a worker can make; then it must not wait.
    /// Asked again after each wakeup, since `set_workers` may have lowered
    /// the bar meanwhile.
    fn may_wait(&mut self) -> bool {
        let mut state = self.plan.lock();
        state.inside_submitters += usize::from(!self.counted);
        // Tasks in `wait_idle` hold their workers too (see
        // `wait_others_idle`, which wakes this to look again when one
        // arrives).
        let parked = state.inside_submitters + self.plan.inside_idle_waiters.load(Ordering::SeqCst);
        self.counted = parked < state.workers;
        if !self.counted {
            state.inside_submitters -= 1;
        }
        self.counted
    }
}

impl Drop for InsideSubmitter<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.plan.lock().inside_submitters -= 1;
        }
    }
}

impl Shared {
    /// Queues a task, waiting while the queue is full; the loop behind
    /// `Plan::submit` and its kin.
    ///
    /// Cancel safe: dropped while waiting, it drops the task unqueued.
    pub(crate) async fn submit<F>(
        self: &Arc<Shared>,
        mut task: NewTask<F>,
        placement: Placement,
    ) -> Result<TaskId, Refused<NewTask<F>>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut wait_for_room = false;
        // Set while the caller is one of this plan's tasks counted in
        // `State::inside_submitters`; uncounts it however this ends.
        let mut inside = InsideSubmitter {
            plan: self,
            caller: current::task_of(self).is_some(),
            counted: false,
        };
        loop {
            let mut room = pin!(self.room_available.notified());
            if wait_for_room {
                // Registered before the look at the queue, so room freed
                // between the look and the wait still wakes this submitter.
                room.as_mut().enable();
            }
            task = match self.push(task, placement, wait_for_room) {
                Ok(id) => return Ok(id),
                Err(Refused::Full(task)) => task,
                Err(refused) => return Err(refused),
            };
            if inside.caller && !inside.may_wait() {
                return Err(Refused::FullInsideTask(task));
            }
            if wait_for_room {
                room.await;
            }
            wait_for_room = true;
        }
    }

    /// Makes the task of `future` and works out where it is queued.
    pub(crate) fn prepare<F>(
        &self,
        future: F,
        options: TaskOptions,
        token: Option<CancellationToken>,
    ) -> Prepared<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Only named here: the tag is registered as the task is queued (see
        // `push`), so a task that never is leaves nothing of its tag behind.
        let placement = Placement {
            priority: options.priority,
            tagged: options.tag.is_some(),
        };
        let setup = Setup {
            tag: options.tag.map(TaskTag::Named),
            priority: options.priority,
            timeout: options.timeout,
            token,
            ..Setup::default()
        };
        let mut task = NewTask::new(future, setup);
        Prepared {
            join: task.join(),
            task,
            placement,
        }
    }

    /// Resolves when the plan closes, however it closes; borrows nothing.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.closing.clone().cancelled_owned()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed_in(&self.lock())
    }

    /// Whether the plan takes no more work, given its locked state: closed,
    /// or its token cancelled (the abort that closes it may still be on its
    /// way, see `token_alarm`).
    fn closed_in(&self, state: &State) -> bool {
        state.closed || self.token_alarm.fired()
    }

    /// Closes the plan, lets it drain for `grace`, then aborts what is left;
    /// see `Plan::shutdown` for the promises.
    pub(crate) async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        // An abort from inside stops the caller too, as any abort does: its
        // future is dropped at its next poll, so nothing waits on it.
        if let Some(caller) = current::task_of(self).filter(|_| !grace.is_zero()) {
            return self.shutdown_from_inside(caller, grace).await;
        }
        let started = tokio::time::Instant::now();
        let supervisors = &self.supervisors;
        // With no grace, closing and draining must be one step (below), or a
        // worker could start a queued task in between.
        let drained = !grace.is_zero() && {
            self.close();
            // The timer belongs to the plan's runtime, not to the caller's:
            // `shutdown` may be awaited on a plain thread or on another
            // runtime, where making a timer would panic.
            let grace_period = {
                let _runtime = self.runtime.enter();
                tokio::time::timeout(grace, supervisors.wait())
            };
            grace_period.await.is_ok()
        };
        if !drained {
            // Drain before cancelling: a task still queued when the grace
            // ran out must never start.
            self.abort_queued();
            self.wake_users(|| self.token.cancel());
        }
        supervisors.wait().await;
        // A task that a cancel on another thread took off the queue may still
        // be resolving there; the report waits for its handle too.
        self.wait_idle().await;
        self.report(started)
    }

    /// `shutdown` called by one of the plan's own tasks: waiting for every
    /// supervisor would wait for the caller's own, so this waits for the
    /// other tasks instead, then cancels those left, sparing the caller.
    /// The token is not cancelled: that would cancel the caller too.
    async fn shutdown_from_inside(&self, caller: TaskId, grace: Duration) -> ShutdownReport {
        let started = tokio::time::Instant::now();
        self.close();
        // The plan's runtime's timer, as in `shutdown`.
        let waited = {
            let _runtime = self.runtime.enter();
            tokio::time::timeout(grace, self.wait_others_idle())
        };
        let others_ended = waited.await == Ok(OthersIdle::Ended);
        if !others_ended {
            if self.cancel_all_except(Some(caller)) > 0 {
                self.forced.store(true, Ordering::Release);
            }
            self.wait_others_idle().await;
        }
        self.report(started)
    }

    fn report(&self, started: tokio::time::Instant) -> ShutdownReport {
        let stats = self.stats();
        ShutdownReport {
            completed: stats.completed,
            cancelled: stats.cancelled,
            panicked: stats.panicked,
            timed_out: stats.timed_out,
            abandoned: self.blocking.still_running(),
            forced: self.forced.load(Ordering::Acquire),
            elapsed: started.elapsed(),
        }
    }

    /// Waits until no task is queued or running; see `Plan::wait_idle`.
    pub(crate) async fn wait_idle(&self) {
        if current::task_of(self).is_some() {
            if self.wait_others_idle().await == OthersIdle::Stuck {
                tracing::warn!(
                    plan = %self.name,
                    "`wait_idle` called from tasks of the plan that hold every worker while \
                     tasks are queued: those can never start, so it returns without waiting \
                     for them"
                );
            }
            return;
        }
        let _waiting = IdleWaiter::register(&self.idle_waiters);
        loop {
            let mut idle = pin!(self.idle.notified());
            idle.as_mut().enable();
            if self.counters.is_idle() {
                return;
            }
            idle.await;
        }
    }

    /// `wait_idle` for a caller that is one of the plan's own tasks: waits
    /// until every task is either finished or, like the caller, waiting in
    /// here for the others. Returns `Stuck` instead if those waiting hold
    /// every worker while tasks are queued, which then can never start.
    async fn wait_others_idle(&self) -> OthersIdle {
        let _waiting = IdleWaiter::register(&self.inside_idle_waiters);
        // Counted before the first look, so a settle either is seen by it
        // or sees the count and wakes it (SeqCst, as in `settle`). This
        // arrival may be the one others wait for: they look again.
        self.wake_users(|| self.idle.notify_waiters());
        // It also holds a worker that tasks waiting in `submit` counted on
        // to make room: they look again (`InsideSubmitter::may_wait`). One
        // that counted itself after this look sees this waiter counted.
        if self.lock().inside_submitters > 0 {
            self.wake_users(|| self.room_available.notify_waiters());
        }
        loop {
            let mut idle = pin!(self.idle.notified());
            idle.as_mut().enable();
            let waiting = self.inside_idle_waiters.load(Ordering::SeqCst);
            if self.others_idle(waiting) {
                return OthersIdle::Ended;
            }
            let stuck = {
                let state = self.lock();
                waiting >= state.workers && state.queue.len() > 0
            };
            if stuck {
                return OthersIdle::Stuck;
            }
            idle.await;
        }
    }

    /// Whether every task queued or running, at some instant during the
    /// call, was one of the `waiting` tasks of the plan that wait for the
    /// others.
    fn others_idle(&self, waiting: usize) -> bool {
        self.counters.unsettled() <= waiting
    }

    #[cfg_attr(not(feature = "signal"), allow(dead_code))]
    pub(crate) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Makes the engine of a plan; its supervisors start as work arrives.
    pub(crate) fn start(
        settings: Settings,
        token: CancellationToken,
        runtime: Handle,
    ) -> Arc<Shared> {
        let Settings {
            name,
            workers,
            capacity,
            default_timeout,
            span_level,
            timings,
        } = settings;
        // The queue's keys are 32 bits; no machine holds that many tasks.
        let capacity = capacity.min(MAX_QUEUED);
        let counters = Counters::new(&name);
        // Armed here, before any task can be submitted; kept armed by the
        // token's watcher.
        let mut token_cancelled = Box::pin(token.clone().cancelled_owned());
        let token_alarm = TokenAlarm::arm(token_cancelled.as_mut(), Arc::new(AtomicWaker::new()));
        #[cfg(feature = "metrics")]
        let workers_gauge = crate::engine::metrics::workers_gauge(&name);
        #[cfg(feature = "metrics")]
        workers_gauge.set(workers as f64);
        let shared = Arc::new(Shared {
            name: name.into_boxed_str(),
            capacity,
            state: CachePadded(Mutex::new(State {
                // Grows on demand: a large capacity costs nothing up front.
                queue: Queue::with_capacity(capacity.min(1024)),
                tags: TagRegistry::new(),
                closed: false,
                started: 0,
                workers,
                active_supervisors: 0,
                waiting_submitters: 0,
                idle_supervisors: 0,
                wakeups_in_flight: 0,
                running: Vec::new(),
                inside_submitters: 0,
            })),
            work_available: Notify::new(),
            room_available: Notify::new(),
            idle: Notify::new(),
            idle_waiters: AtomicUsize::new(0),
            inside_idle_waiters: AtomicUsize::new(0),
            token,
            token_alarm,
            closing: CancellationToken::new(),
            supervisor_wakers: Mutex::new(Slab::new()),
            supervisors: TaskTracker::new(),
            live_supervisors: AtomicUsize::new(0),
            resize: Mutex::new(()),
            default_timeout,
            span_level,
            timings,
            epoch: Instant::now(),
            blocking: Arc::new(Blocking::default()),
            forced: AtomicBool::new(false),
            time_driver_missing: AtomicBool::new(false),
            plans: AtomicUsize::new(1),
            counters,
            #[cfg(feature = "metrics")]
            workers_gauge,
            runtime,
        });
        // No supervisor yet: the first task queued starts one.
        shared.runtime.spawn(supervisor::watch_token(
            Arc::clone(&shared),
            token_cancelled,
        ));
        tracing::debug!(plan = %shared.name, workers, capacity, "plan started");
        shared
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code, so a poisoned lock means a
        // bug in this crate, not a half-done user operation; the queue itself
        // is consistent after every statement that can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the target number of supervisors and spawns any that are
    /// missing; returns `false`, changing nothing, once the plan is closed.
    pub(crate) fn resize(self: &Arc<Shared>, workers: usize) -> bool {
        let _resize = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        let (wake, inside_submitters_stuck, spawns) = {
            let mut state = self.lock();
            if self.closed_in(&state) {
                return false;
            }
            state.workers = workers;
            // Idle surplus supervisors retire now rather than at their next
            // task. They are woken one by one through the wakeup count, not
            // all at once with `notify_waiters`, which would leave them
            // counted as idle (see `State::idle_supervisors`).
            let surplus = state.active_supervisors.saturating_sub(workers);
            let wake = surplus.min(state.idle_supervisors);
            state.idle_supervisors -= wake;
            state.wakeups_in_flight += wake;
            let parked = state.inside_submitters + self.inside_idle_waiters.load(Ordering::SeqCst);
            let inside_submitters_stuck = state.inside_submitters > 0 && parked >= workers;
            (wake, inside_submitters_stuck, self.claim_spawns(&mut state))
        };
        #[cfg(feature = "metrics")]
        self.workers_gauge.set(workers as f64);
        for _ in 0..wake {
            self.work_available.notify_one();
        }
        // Fewer workers may leave the plan's own tasks waiting on each
        // other: they look again (see `InsideSubmitter`, `wait_others_idle`).
        if inside_submitters_stuck {
            self.wake_users(|| self.room_available.notify_waiters());
        }
        if self.inside_idle_waiters.load(Ordering::SeqCst) > 0 {
            self.wake_users(|| self.idle.notify_waiters());
        }
        self.spawn_supervisors(spawns);
        true
    }

    /// Claims new supervisors (`State::claim_spawns`) and counts them live,
    /// in the caller's hold of the queue lock; the caller spawns them with
    /// `spawn_supervisors` once it has released the lock.
    fn claim_spawns(&self, state: &mut State) -> usize {
        let spawns = state.claim_spawns();
        if spawns > 0 {
            self.live_supervisors.fetch_add(spawns, Ordering::AcqRel);
        }
        spawns
    }

    /// Spawns supervisors claimed with `claim_spawns`. Called without the
    /// queue lock: spawning on a runtime that has shut down drops the new
    /// supervisor's exit guard at once, which takes the lock.
    fn spawn_supervisors(self: &Arc<Shared>, count: usize) {
        for _ in 0..count {
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

    /// Queues a task, or hands it back. With `wait_for_room`, a refusal for
    /// lack of room also counts the caller as a waiting submitter: it must
    /// have registered with `room_available` first.
    pub(crate) fn push<F>(
        self: &Arc<Shared>,
        mut task: NewTask<F>,
        placement: Placement,
        wait_for_room: bool,
    ) -> Result<TaskId, Refused<NewTask<F>>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Read before the lock, to keep the clock out of the critical section.
        if self.timings {
            task.stamp_queued(Instant::now().saturating_duration_since(self.epoch));
        }
        // The event and the published count below come after the task has
        // moved into the queue; its tag is kept for them only when they
        // need it.
        let keep_tag = placement.tagged
            && (cfg!(feature = "metrics") || tracing::enabled!(tracing::Level::TRACE));
        // The counters of a tag's new life, made outside the lock (with the
        // `metrics` feature that calls the user's recorder) once a look
        // under it found the tag unregistered; then the push starts over.
        let mut new_outcomes = None;
        let (id, tag, mut state) = loop {
            let mut state = self.lock();
            if self.closed_in(&state) {
                return Err(Refused::Closed(task));
            }
            if state.queue.len() >= self.capacity {
                state.waiting_submitters += usize::from(wait_for_room);
                return Err(Refused::Full(task));
            }
            // Registered in the hold that queues the task, after the checks
            // that may refuse it: a refused task registers nothing, and the
            // tag cannot be freed between its registration and the push.
            let tag = if placement.tagged {
                let name = task
                    .tag_name()
                    .expect("a tagged task is named until queued");
                match state.tags.find(name).cloned() {
                    Some(registered) => task.register_tag(|_| registered),
                    None => match new_outcomes.take() {
                        Some(outcomes) => {
                            task.register_tag(|name| state.tags.register(name, outcomes))
                        }
                        None => {
                            drop(state);
                            let name = task.tag_name().expect("named until queued");
                            new_outcomes = Some(tags::new_outcomes(&self.name, name));
                            continue;
                        }
                    },
                }
            } else {
                None
            };
            let index = tag.map(|tag| tag.index);
            let tag = tag.filter(|_| keep_tag).cloned();
            let id = state
                .queue
                .push(task.into_task(), placement.priority, index);
            if let Some(index) = index {
                state.tags.state_mut(index).submitted += 1;
            }
            break (id, tag, state);
        };
        // Counted under the lock so a supervisor cannot finish the task
        // before it is counted as submitted.
        self.counters.record_submitted();
        // An idle supervisor if there is one, or else a new one.
        let wake_supervisor = state.claim_wakeup();
        let spawns = self.claim_spawns(&mut state);
        drop(state);
        if wake_supervisor {
            self.work_available.notify_one();
        }
        self.spawn_supervisors(spawns);
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

    /// Waits for the next task. Returns `None` once the plan is closed and
    /// nothing is queued, or when this supervisor must retire. `woken` says whether the caller takes
    /// up a wakeup: a new supervisor's first call takes up the one its
    /// spawn counted (see `State::claim_spawns`).
    pub(crate) async fn next_task(&self, supervisor: u32, woken: bool) -> Option<Task> {
        // Set once this supervisor was woken, until it has looked at the
        // queue: see `State::wakeups_in_flight`.
        let mut woken = woken;
        loop {
            if let Some(next) = self.try_pop(supervisor, std::mem::take(&mut woken), false) {
                return next;
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
                return next;
            }
            work.await;
            woken = true;
        }
    }

    /// `Some(Some(task))` if one was queued, `Some(None)` if the plan is
    /// closed and drained or the caller must retire, `None` if the caller
    /// should wait; then, with `register_idle`, it is counted as an idle
    /// supervisor, and must have registered with `work_available` first.
    /// `woken` says whether the caller takes up a wakeup. The task is marked
    /// as run by `supervisor`.
    fn try_pop(&self, supervisor: u32, woken: bool, register_idle: bool) -> Option<Option<Task>> {
        let mut state = self.lock();
        state.wakeup_taken(woken);
        // Decided in the same hold of the lock as the pop, and `resize`
        // changes `workers` under it too: after `set_workers` returns, no
        // supervisor beyond the target starts a task.
        if state.claim_retirement() {
            // It may have been the one a push woke: hand the wakeup on.
            let wake = state.claim_wakeup();
            drop(state);
            if wake {
                self.work_available.notify_one();
            }
            return Some(None);
        }
        match state.queue.pop() {
            Some((mut task, tag)) => {
                task.header().mark_started(supervisor);
                let previous_task = state.record_running(supervisor, task.id(), task.downgrade());
                state.started += 1;
                if let Some(tag) = tag {
                    let tag = state.tags.state_mut(tag);
                    tag.started += 1;
                    let key = tag.running.insert(task.control());
                    task.set_running_key(key);
                }
                let wake_submitter = claim(&mut state.waiting_submitters);
                // More queued than supervisors coming: wake another.
                let wake_supervisor = state.claim_wakeup();
                drop(state);
                drop(previous_task);
                if wake_submitter {
                    self.wake_users(|| self.room_available.notify_one());
                }
                if wake_supervisor {
                    self.work_available.notify_one();
                }
                Some(Some(task))
            }
            None if state.closed => {
                let previous_task = state.forget_running(supervisor);
                drop(state);
                drop(previous_task);
                Some(None)
            }
            None => {
                let previous_task = state.forget_running(supervisor);
                state.idle_supervisors += usize::from(register_idle);
                drop(state);
                drop(previous_task);
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

    /// Counts a task that starts, with the time it waited in the queue if
    /// that was measured, for the plan and its tag.
    pub(crate) fn record_started(
        &self,
        outcomes: &Outcomes,
        task: &Task,
        waited: Option<Duration>,
    ) {
        outcomes.record_started(waited);
        if let Some(tag) = task.tag() {
            tag.outcomes.record_started(waited);
        }
    }

    /// Counts the time a task ran, for the plan and its tag.
    pub(crate) fn record_run_time(&self, outcomes: &Outcomes, task: &Task, ran: Duration) {
        outcomes.record_run_time(ran);
        if let Some(tag) = task.tag() {
            tag.outcomes.record_run_time(ran);
        }
    }

    /// Forgets a tagged task that stopped running, and its tag if that was
    /// the tag's last task.
    pub(crate) fn finished_running(&self, task: &Task) {
        if let Some(tag) = task.tag() {
            let mut state = self.lock();
            state
                .tags
                .state_mut(tag.index)
                .running
                .remove(task.running_key());
            state.free_tag_if_idle(tag);
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

    /// Lends a new supervisor the counters it counts its tasks' ends in.
    pub(crate) fn lend_outcomes(&self) -> Arc<CachePadded<Outcomes>> {
        self.counters.lend()
    }

    /// Takes back an exiting supervisor's counters, counts kept.
    pub(crate) fn give_back_outcomes(&self, outcomes: Arc<CachePadded<Outcomes>>) {
        self.counters.give_back(outcomes);
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
        drop(wakers);
        // A retiring supervisor's slot would keep its last task's
        // allocation until the number is reused. (Lock order: `state` alone,
        // after `supervisor_wakers` is released.)
        if number != u32::MAX {
            let previous_task = self.lock().forget_running(number);
            drop(previous_task);
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

    pub(crate) fn promote(&self, tag: &str) -> usize {
        let mut state = self.lock();
        let Some(index) = state.tags.find(tag).map(|tag| tag.index) else {
            return 0;
        };
        state.queue.promote(index)
    }

    pub(crate) fn cancel_tag(&self, tag: &str) -> usize {
        let mut state = self.lock();
        // Cloned, so that freeing the tag below leaves the last reference
        // to this, dropped after the lock.
        let Some(tag) = state.tags.find(tag).cloned() else {
            return 0;
        };
        let queued = state.queue.drain_tag(tag.index);
        // Cloned out so the supervisors are woken after the lock is released.
        let running: Vec<Arc<dyn Control>> = state
            .tags
            .state(tag.index)
            .running
            .iter()
            .map(|(_, task)| Arc::clone(task))
            .collect();
        // With none running, it was the queued tasks that kept the tag.
        state.free_tag_if_idle(&tag);
        self.cancel_taken(state, queued.len(), queued, running)
    }

    /// Ends what a cancel took in its hold of the lock, which this ends:
    /// the `count` queued tasks dropped unstarted, the room they freed given
    /// to waiting submitters, the running ones asked to stop. Returns how
    /// many it cancelled.
    fn cancel_taken(
        &self,
        mut state: MutexGuard<'_, State>,
        count: usize,
        queued: impl IntoIterator<Item = Task>,
        running: Vec<Arc<dyn Control>>,
    ) -> usize {
        let wake_submitters = claim_up_to(&mut state.waiting_submitters, count);
        drop(state);
        self.drop_unstarted(count, queued);
        for _ in 0..wake_submitters {
            self.wake_users(|| self.room_available.notify_one());
        }
        count + self.cancel_running(running)
    }

    /// Asks running tasks to stop and wakes their supervisors; returns how
    /// many were still running and not yet asked. Called without the queue
    /// lock.
    fn cancel_running(&self, running: Vec<Arc<dyn Control>>) -> usize {
        let mut cancelled = 0;
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

    /// Cancels the task numbered `id`, queued or running; see
    /// `Plan::cancel`.
    pub(crate) fn cancel_by_id(&self, id: TaskId) -> bool {
        let state = self.lock();
        if let Some(key) = state.queue.find(id) {
            self.unqueue(state, key);
            return true;
        }
        let running = state.find_running(id);
        drop(state);
        running.is_some_and(|task| self.cancel_running(vec![task]) == 1)
    }

    /// Takes the task at `key` off the queue and drops it unstarted, ending
    /// the caller's hold of the lock.
    fn unqueue(&self, mut state: MutexGuard<'_, State>, key: usize) {
        let (task, _) = state.queue.remove(key);
        if let Some(tag) = task.tag() {
            state.free_tag_if_idle(tag);
        }
        let wake_submitter = claim(&mut state.waiting_submitters);
        drop(state);
        if wake_submitter {
            self.wake_users(|| self.room_available.notify_one());
        }
        self.drop_unstarted(1, [task]);
    }

    /// Cancels every queued and running task and leaves the plan open; see
    /// `Plan::cancel_all`.
    pub(crate) fn cancel_all(&self) -> usize {
        self.cancel_all_except(None)
    }

    /// `cancel_all`, sparing the running task numbered `spared`.
    fn cancel_all_except(&self, spared: Option<TaskId>) -> usize {
        // One hold of the lock: every task queued or running at this
        // instant is found once, as queued or as running, never both.
        let mut state = self.lock();
        let queued = state.queue.drain();
        if queued.len() > 0 {
            // In the same hold as the drain, since the plan may stay open: a
            // task of a freed tag queued next starts a new life. Before the
            // tasks drop: their references to their tags are the last.
            state.tags.free_all_not_running();
        }
        let running = state.all_running_except(spared);
        self.cancel_taken(state, queued.len(), queued.into_tasks(), running)
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
        self.settle(self.outcomes(), count);
        for handle in handles {
            handle.wake(&self.name);
        }
    }

    pub(crate) fn tag_stats(&self, tag: &str) -> Stats {
        let (workers, counts) = {
            let state = self.lock();
            let counts = state.tags.find(tag).map(|tag| {
                let counts = state.tags.state(tag.index);
                let queued = state.queue.tag_len(tag.index);
                // The outcomes are atomics, read after the lock; the clone
                // keeps them if the tag is freed meanwhile.
                (Arc::clone(tag), queued, counts.started, counts.submitted)
            });
            (state.workers, counts)
        };
        // Not registered: never seen, or its last task has ended.
        let Some((tag, queued, started, submitted)) = counts else {
            return Stats {
                workers,
                ..Stats::default()
            };
        };
        let stats = tag.outcomes.snapshot(workers, queued, started, submitted);
        self.with_timings_if_measured(stats)
    }

    /// Cancels one task, queued or running.
    pub(crate) fn cancel(&self, header: &Header) {
        let mut request = header.request_cancel();
        if request == CancelRequest::StillQueued {
            let state = self.lock();
            if header.is_queued() && state.queue.holds(header.queue_key(), header) {
                self.unqueue(state, header.queue_key());
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

    /// Runs `wake`, which wakes futures the plan's users poll (a submit
    /// waiting for room, `wait_idle`, `closed()`, the token's waiters). Their
    /// wakers are user code: a panic in one must not unwind through the
    /// plan's bookkeeping or take a supervisor down, so it is contained and
    /// logged. (Supervisors' own wakeups need no such care.)
    fn wake_users(&self, wake: impl FnOnce()) {
        contain_panic(wake, |panic| {
            tracing::error!(
                plan = %self.name,
                panic,
                "the waker of a future waiting on the plan panicked"
            );
        });
    }

    /// Wakes whoever waits on a plan that just closed.
    fn announce_closed(&self) {
        self.wake_users(|| self.closing.cancel());
        self.supervisors.close();
        self.work_available.notify_waiters();
        self.wake_users(|| self.room_available.notify_waiters());
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
        if tasks.len() > 0 {
            // The tags only queued tasks kept are free now. Freed in a hold
            // of its own, so that the drain's stays O(1); the plan is closed,
            // so no task of theirs can be queued in between. Before the
            // tasks drop: their references to their tags are the last.
            self.lock().tags.free_all_not_running();
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

    /// Marks `count` finished tasks' handles as resolved, in the block of
    /// whoever finished them, and wakes `wait_idle` if nothing is left.
    pub(crate) fn settle(&self, outcomes: &Outcomes, count: usize) {
        outcomes.record_settled(count);
        // `notify_waiters` always takes a lock; a plan that goes idle often
        // with nobody in `wait_idle` should not pay it per task. SeqCst here
        // and in `wait_idle` (count, then look) means that either the waiter
        // sees the plan idle or this sees the waiter.
        if self.idle_waiters.load(Ordering::SeqCst) > 0 && self.counters.is_idle() {
            self.wake_users(|| self.idle.notify_waiters());
        }
        // The plan's own tasks waiting for the others look again at every
        // settle; they are rare, and their condition changes with each.
        if self.inside_idle_waiters.load(Ordering::SeqCst) > 0 {
            self.wake_users(|| self.idle.notify_waiters());
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

    pub(crate) fn stats(&self) -> Stats {
        let (workers, queued, started) = {
            let state = self.lock();
            (state.workers, state.queue.len(), state.started)
        };
        let stats = self.counters.snapshot(workers, queued, started);
        self.with_timings_if_measured(stats)
    }

    /// Empties the timings of a snapshot if they were not measured, rather
    /// than report a count of tasks with a total of zero.
    fn with_timings_if_measured(&self, stats: Stats) -> Stats {
        if self.timings {
            return stats;
        }
        Stats {
            queue_wait: Timing::default(),
            run_time: Timing::default(),
            ..stats
        }
    }
}

/// How `wait_others_idle` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OthersIdle {
    /// Every other task ended.
    Ended,
    /// The waiting tasks hold every worker while tasks are queued.
    Stuck,
}

/// A task ready to be queued: the task, its handle's half, and where it
/// goes.
pub(crate) struct Prepared<F: Future> {
    pub(crate) task: NewTask<F>,
    pub(crate) join: Joiner<F::Output>,
    pub(crate) placement: Placement,
}

/// Where a task goes in the queue.
#[derive(Clone, Copy)]
pub(crate) struct Placement {
    priority: i32,
    /// Whether the task has a tag, which `push` registers: untagged tasks
    /// never look.
    tagged: bool,
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The engine's shared state with its supervisors: what no end-to-end
    //! test can see (spare wakeups, counter blocks).

    use super::*;
    use crate::plan::Plan;

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
        let shared = Arc::clone(plan.shared());
        // Supervisors start as work arrives: three tasks start three.
        for _ in 0..3 {
            plan.try_submit(async {}).unwrap();
        }
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

    /// Each supervisor counts its tasks' ends in a block of its own; the
    /// counts outlive the supervisor, and its block goes to the next one,
    /// so shrinking and growing again neither loses counts nor adds blocks.
    #[tokio::test]
    async fn counts_outlive_their_supervisor_and_its_block_is_reused() {
        let plan = Plan::builder().workers(3).build().unwrap();
        let shared = Arc::clone(plan.shared());
        for round in 1..=2 {
            plan.set_workers(3).unwrap();
            // Three tasks that can only finish together need three
            // supervisors at once.
            let barrier = Arc::new(tokio::sync::Barrier::new(3));
            let mut handles = Vec::new();
            for _ in 0..3 {
                let barrier = Arc::clone(&barrier);
                handles.push(
                    plan.submit(async move {
                        barrier.wait().await;
                    })
                    .await
                    .unwrap(),
                );
            }
            for handle in handles {
                handle.await.unwrap();
            }
            plan.set_workers(1).unwrap();
            until(|| shared.supervisor_wakers.lock().unwrap().len() == 1).await;
            assert_eq!(plan.stats().completed, 3 * round);
            assert_eq!(shared.counters.blocks(), 3);
        }
    }

    /// `settle` wakes `wait_idle` callers only when there are some and the
    /// plan is idle: a plan that goes idle with nobody waiting pays no
    /// wakeup (`notify_waiters` takes a lock).
    #[tokio::test]
    async fn settle_wakes_idle_waiters_only_when_there_are_some_and_the_plan_is_idle() {
        use std::future::Future;
        use std::task::{Context, Waker};

        let plan = Plan::builder().workers(1).build().unwrap();
        let shared = plan.shared();
        let woken = |expected_waiters: usize| {
            let mut notified = pin!(shared.idle.notified());
            notified.as_mut().enable();
            let _waiters: Vec<IdleWaiter<'_>> = (0..expected_waiters)
                .map(|_| IdleWaiter::register(&shared.idle_waiters))
                .collect();
            shared.settle(shared.counters.outcomes(), 0);
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

    /// A refused submit registers nothing, whether the plan is full (a
    /// `try_submit`, and a `submit` dropped while it waits for room) or
    /// closed: a tag is registered only in the hold that queues its task.
    #[tokio::test]
    async fn a_refused_submit_registers_no_tag() {
        let plan = Plan::builder().workers(1).capacity(1).build().unwrap();
        let shared = Arc::clone(plan.shared());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let running = plan.submit(async move { released.await.ok() }).await;
        until(|| plan.stats().running == 1).await;
        let queued = plan.try_submit(async {}).unwrap();

        let full = plan.task(async {}).tag("full").try_submit();
        assert!(full.unwrap_err().is_full());
        {
            let mut waiting = pin!(plan.task(async {}).tag("waiting").submit());
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(waiting.as_mut().poll(&mut context).is_pending());
        }
        assert_eq!(shared.lock().tags.len(), 0);

        plan.close();
        let closed = plan.task(async {}).tag("closed").try_submit();
        assert!(closed.unwrap_err().is_closed());
        let closed = plan.task(async {}).tag("closed").submit().await;
        assert!(closed.unwrap_err().is_closed());
        assert_eq!(shared.lock().tags.len(), 0);
        release.send(()).unwrap();
        running.unwrap().await.unwrap();
        queued.await.unwrap();
    }

    /// A tag is freed in the hold of the lock that takes its last task off
    /// the queue or out of its running set, however that task ends: it
    /// completes, its handle cancels it queued, `cancel_tag` drains it, an
    /// abort drains it.
    #[tokio::test]
    async fn a_tag_is_freed_with_its_last_task_however_it_ends() {
        let plan = Plan::builder().workers(1).build().unwrap();
        let shared = Arc::clone(plan.shared());
        let registered = |name: &str| shared.lock().tags.find(name).is_some();

        // On this one thread the supervisor is done with the task before
        // the handle is woken.
        let done = plan.task(async {}).tag("done").submit().await.unwrap();
        done.await.unwrap();
        assert!(!registered("done"));

        // Parks the only worker: what follows stays queued.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let parked = plan.task(async move { released.await.ok() }).tag("parked");
        let parked = parked.submit().await.unwrap();
        until(|| plan.stats().running == 1).await;
        assert!(registered("parked"));

        let queued = plan.task(async {}).tag("cancelled").submit().await.unwrap();
        assert!(registered("cancelled"));
        queued.cancel();
        assert!(!registered("cancelled"));

        for _ in 0..2 {
            drop(plan.task(async {}).tag("by-tag").submit().await.unwrap());
        }
        assert_eq!(plan.cancel_tag("by-tag"), 2);
        assert!(!registered("by-tag"));

        drop(plan.task(async {}).tag("drained").submit().await.unwrap());
        assert!(registered("drained"));
        plan.abort().await;
        assert!(parked.await.unwrap_err().is_cancelled());
        drop(release);
        assert_eq!(shared.lock().tags.len(), 0, "the running one's tag too");
    }
}
