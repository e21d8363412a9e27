//! [`PlanBuilder`]: configuration for a [`Plan`].

use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::Level;

use crate::engine::shared::Settings;
use crate::error::BuildError;
use crate::plan::{MAX_WORKERS, Plan};

/// Configures and builds a [`Plan`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskplan::BuildError> {
/// use taskplan::Plan;
///
/// let plan = Plan::builder().workers(4).capacity(1024).name("sync").build()?;
/// assert_eq!(plan.stats().workers, 4);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PlanBuilder {
    workers: Option<usize>,
    capacity: usize,
    name: String,
    parent: Option<CancellationToken>,
    task_timeout: Option<Duration>,
    span_level: Level,
    timings: bool,
}

impl Default for PlanBuilder {
    fn default() -> Self {
        PlanBuilder::new()
    }
}

impl PlanBuilder {
    /// Returns a builder with the defaults; same as [`Plan::builder`].
    pub fn new() -> PlanBuilder {
        PlanBuilder {
            workers: None,
            capacity: 1024,
            name: String::from("plan"),
            parent: None,
            task_timeout: None,
            span_level: Level::DEBUG,
            timings: false,
        }
    }

    /// Sets how many tasks may run at once: the most supervisors the plan
    /// starts, each when a task arrives that no started one is free to take.
    ///
    /// Defaults to [`std::thread::available_parallelism`], or 1 if that is
    /// unknown. Zero, or more than [`MAX_WORKERS`], makes
    /// [`build`](PlanBuilder::build) fail.
    pub fn workers(mut self, workers: usize) -> PlanBuilder {
        self.workers = Some(workers);
        self
    }

    /// Sets how many tasks may wait in the queue before
    /// [`submit`](Plan::submit) waits and [`try_submit`](Plan::try_submit)
    /// refuses. Running tasks do not count. Defaults to 1024; zero makes
    /// [`build`](PlanBuilder::build) fail. A capacity above `2^32 - 2`
    /// (more tasks than any machine can hold) is taken as `2^32 - 2`.
    pub fn capacity(mut self, capacity: usize) -> PlanBuilder {
        self.capacity = capacity;
        self
    }

    /// Sets the name the plan's log events carry. Defaults to `"plan"`.
    pub fn name(mut self, name: impl Into<String>) -> PlanBuilder {
        self.name = name.into();
        self
    }

    /// Ties the plan to a parent token: cancelling `parent` aborts the plan.
    ///
    /// The plan's own [`token`](Plan::token) becomes a child of `parent`, so
    /// aborting the plan does not cancel `parent`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tokio_util::sync::CancellationToken;
    ///
    /// let service = CancellationToken::new();
    /// let plan = taskplan::Plan::builder().workers(1).token(service.clone()).build().unwrap();
    /// let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
    ///
    /// service.cancel();
    /// assert!(stuck.await.unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub fn token(mut self, parent: CancellationToken) -> PlanBuilder {
        self.parent = Some(parent);
        self
    }

    /// Sets a timeout for every task that does not set its own with
    /// [`TaskBuilder::timeout`](crate::TaskBuilder::timeout) or opt out with
    /// [`TaskBuilder::no_timeout`](crate::TaskBuilder::no_timeout).
    ///
    /// A task's timeout counts from when it starts running. A task still
    /// running at its deadline is dropped like a cancelled one, its handle
    /// resolves with [`TaskError::is_timeout`](crate::TaskError::is_timeout),
    /// and it counts in [`Stats::timed_out`](crate::Stats::timed_out).
    /// Timeouts need the runtime's time driver (`enable_time`); without it a
    /// task's timeout is logged as an error and the task runs without one.
    pub fn task_timeout(mut self, timeout: Duration) -> PlanBuilder {
        self.task_timeout = Some(timeout);
        self
    }

    /// Sets the level of the `tracing` span each task runs in. Defaults to
    /// `DEBUG`.
    ///
    /// Every task runs inside a span named `task` with the fields `plan`
    /// (the plan's name), `id`, `tag` and `priority`, entered while the task
    /// is polled, so the task's own events nest under it. Make it `INFO` to
    /// see that context on a service that logs at `INFO`; creating a span
    /// then costs a little per task. With no subscriber listening, or one
    /// that filters the level out, spans cost next to nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let plan = taskplan::Plan::builder()
    ///     .name("mail")
    ///     .span_level(tracing::Level::INFO)
    ///     .build()?;
    /// // Logged as `task{plan=mail id=1}: sending`.
    /// plan.submit(async { tracing::info!("sending") }).await?.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn span_level(mut self, level: Level) -> PlanBuilder {
        self.span_level = level;
        self
    }

    /// Measures how long each task waits in the queue and runs, for
    /// [`Stats::queue_wait`], [`Stats::run_time`], the `queue_wait` and
    /// `run_time` fields of the task events, and (with the `metrics`
    /// feature) the two histograms.
    ///
    /// Off by default: measuring reads the clock three times per task
    /// (queued, started, ended), a large share of a short task's time in the
    /// plan. Without it the
    /// two timings stay empty (a count of zero) and the events leave the
    /// fields out; timeouts work either way, reading the clock once per task
    /// that has one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// let plan = taskplan::Plan::builder().workers(1).timings(true).build()?;
    /// plan.submit(tokio::time::sleep(Duration::from_secs(2))).await?.await?;
    /// assert_eq!(plan.stats().run_time.total, Duration::from_secs(2));
    ///
    /// let untimed = taskplan::Plan::builder().workers(1).build()?;
    /// untimed.submit(async {}).await?.await?;
    /// assert_eq!(untimed.stats().run_time.count, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Stats::queue_wait`]: crate::Stats::queue_wait
    /// [`Stats::run_time`]: crate::Stats::run_time
    pub fn timings(mut self, enabled: bool) -> PlanBuilder {
        self.timings = enabled;
        self
    }

    /// Builds the plan on the current Tokio runtime, current-thread or
    /// multi-thread, where its supervisors will run. None starts before the
    /// first task is queued, so building costs the same for any `workers`.
    ///
    /// # Errors
    ///
    /// Returns a [`BuildError`] whose message says what to change if called
    /// outside a Tokio runtime, if `workers` or `capacity` is zero, or if
    /// `workers` is above [`MAX_WORKERS`]. It never panics.
    pub fn build(self) -> Result<Plan, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::ZeroWorkers),
            Some(workers) if workers > MAX_WORKERS => return Err(BuildError::TooManyWorkers),
            Some(workers) => workers,
            None => std::thread::available_parallelism()
                .map_or(1, NonZeroUsize::get)
                .min(MAX_WORKERS),
        };
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        let runtime = Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let token = self
            .parent
            .map_or_else(CancellationToken::new, |parent| parent.child_token());
        let settings = Settings {
            name: self.name,
            workers,
            capacity: self.capacity,
            default_timeout: self.task_timeout,
            span_level: self.span_level,
            timings: self.timings,
        };
        Ok(Plan::start(settings, token, runtime))
    }
}
