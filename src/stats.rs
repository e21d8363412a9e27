//! What a plan reports: what it has done so far ([`Stats`], with the time
//! its tasks spent queued and running as [`Timing`]s) and how a shutdown
//! ended ([`ShutdownReport`]). Plain values; the engine's counters behind
//! them live in `engine::counters`.

use std::time::Duration;

/// A snapshot of a plan's counters, from [`Plan::stats`](crate::Plan::stats).
///
/// Every task the plan accepted is in exactly one state, so at every quiet
/// point (no submit, pop or completion in flight):
///
/// ```text
/// submitted == queued + running + completed + cancelled + panicked + timed_out
/// ```
///
/// Taken while tasks move, the fields are each current but may not add up.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let plan = taskplan::Plan::builder().workers(2).build().unwrap();
/// plan.submit(async {}).await.unwrap().await.unwrap();
/// plan.wait_idle().await;
///
/// let stats = plan.stats();
/// assert_eq!((stats.workers, stats.submitted, stats.completed), (2, 1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// How many workers the plan is set to run: at most this many tasks run
    /// at once. Right after [`Plan::set_workers`](crate::Plan::set_workers)
    /// shrinks the plan, this is the new target, while the surplus workers
    /// finish the tasks they were running.
    pub workers: usize,
    /// Tasks accepted and not yet started.
    pub queued: usize,
    /// Tasks started and not yet finished.
    pub running: usize,
    /// Tasks ever accepted.
    pub submitted: usize,
    /// Tasks whose future returned a value.
    pub completed: usize,
    /// Tasks cancelled before they finished, queued or running, including by
    /// an abort.
    pub cancelled: usize,
    /// Tasks whose future panicked.
    pub panicked: usize,
    /// Tasks dropped because they ran past their timeout.
    pub timed_out: usize,
    /// How long started tasks waited in the queue: from being queued (after
    /// any wait for room) to being taken by a worker. Tasks cancelled while
    /// queued are not included. Empty unless the plan measures timings
    /// ([`PlanBuilder::timings`](crate::PlanBuilder::timings)).
    pub queue_wait: Timing,
    /// How long tasks ran: from being taken by a worker to their end,
    /// however they ended. Tasks still running are not included. Empty
    /// unless the plan measures timings
    /// ([`PlanBuilder::timings`](crate::PlanBuilder::timings)).
    pub run_time: Timing,
}

/// How long a plan's tasks spent in one stage, queued or running: a count,
/// a sum and a maximum since the plan was built, from which
/// [`mean`](Timing::mean) follows.
///
/// Measured with [`tokio::time::Instant`], so under a paused clock
/// (`tokio::time::pause`) the figures are exact. A task's queue wait is
/// counted before it starts, its run time just after its handle resolves
/// and before [`Plan::wait_idle`](crate::Plan::wait_idle) can return: read
/// after `wait_idle`, the figures cover every task. Measuring them reads
/// the clock three times per task (queued, started, ended) and adds to the
/// counters of the supervisor that ran it; the sum cannot overflow.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
///
/// let plan = taskplan::Plan::builder().workers(1).timings(true).build().unwrap();
/// let slow = plan.submit(tokio::time::sleep(Duration::from_secs(3))).await.unwrap();
/// let next = plan.submit(async {}).await.unwrap();
/// slow.await.unwrap();
/// next.await.unwrap();
/// plan.wait_idle().await;
///
/// let stats = plan.stats();
/// // `next` waited for `slow` to finish.
/// assert_eq!(stats.queue_wait.max, Duration::from_secs(3));
/// assert_eq!(stats.run_time.count, 2);
/// assert_eq!(stats.run_time.mean(), Some(Duration::from_millis(1500)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timing {
    /// How many tasks the figures cover.
    pub count: usize,
    /// Their times, summed.
    pub total: Duration,
    /// The longest of them.
    pub max: Duration,
}

impl Timing {
    /// The mean time, or `None` if no task is covered yet.
    ///
    /// Taken while tasks move, `count` and `total` may be a task apart, so
    /// the mean is then approximate.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let mean = self.total.as_nanos() / self.count as u128;
        Some(duration_from_nanos(mean))
    }
}

pub(crate) fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SECOND: u128 = 1_000_000_000;
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).unwrap_or(u64::MAX);
    Duration::new(seconds, (nanos % NANOS_PER_SECOND) as u32)
}

/// How a [`Plan::shutdown`](crate::Plan::shutdown) or
/// [`Plan::abort`](crate::Plan::abort) ended.
///
/// The counts are totals over the plan's whole life, taken once every
/// supervisor has exited, so they are final: a later call reports the same.
/// Only `abandoned` and `elapsed` describe the moment of the call.
/// `completed + cancelled + panicked + timed_out` equals the number of tasks
/// the plan ever accepted.
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
/// let report = plan.shutdown(Duration::from_secs(5)).await;
/// assert_eq!((report.completed, report.cancelled), (1, 0));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks whose future returned a value.
    pub completed: usize,
    /// Tasks cancelled before they finished, including those the shutdown
    /// cancelled when the grace period ran out.
    pub cancelled: usize,
    /// Tasks whose future panicked.
    pub panicked: usize,
    /// Tasks dropped because they ran past their timeout.
    pub timed_out: usize,
    /// Blocking closures (from [`Plan::submit_blocking`](crate::Plan::submit_blocking))
    /// whose task was cancelled, timed out or aborted, and which were still
    /// running on the blocking pool when this call returned. A thread cannot
    /// be stopped from outside, so they run on until they return; their
    /// results are dropped.
    pub abandoned: usize,
    /// `true` if an abort (a grace period that ran out, [`Plan::abort`], or
    /// the plan's token) cancelled tasks that were queued or running. Like
    /// the counts, it covers the plan's whole life.
    ///
    /// [`Plan::abort`]: crate::Plan::abort
    pub forced: bool,
    /// How long this call took.
    pub elapsed: Duration,
}
