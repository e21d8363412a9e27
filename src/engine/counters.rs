//! The counters behind [`Stats`]: lock-free, written where a task ends
//! (mostly by the supervisor that ran it, in a block of its own) and added
//! up only when a snapshot is asked for.

use std::time::Duration;

use crate::engine::cell::Outcome;
use crate::engine::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::stats::{Stats, Timing, duration_from_nanos};

/// Lock-free counters of the plan's tasks.
///
/// A finishing task adds one to exactly one outcome counter before its
/// handle resolves (so a resolved handle is always counted), and one to
/// `settled` after (so `wait_idle` never returns before a handle resolves).
/// `submitted` is raised before a task can finish, so reading `settled`
/// first and `submitted` last never sees more settled tasks than submitted
/// ones: if the two are equal, the plan was idle at the first read.
///
/// Outcomes are counted where the task ends, so that finishing a task
/// writes no counter another supervisor writes. Each supervisor counts the
/// tasks it runs, and settles them, in a block of its own, lent to it for
/// its life (see [`lend`](Counters::lend)); the rest (cancels of queued
/// tasks, tasks dropped with their supervisor's runtime) go to the plan's
/// block. A snapshot adds them all up, and so does `is_idle`, for
/// `settled`. `submitted` is written by submitters, so it sits on a cache
/// line of its own too.
///
/// `settled` being a sum keeps `is_idle` exact: each block's count only
/// grows, and every task is submitted before it settles, so a sum of
/// blocks read one after the other is at most the total at the last read,
/// which is at most `submitted` then and at the later read of it. If the
/// sum equals that read, all three are equal: the plan was idle at the
/// last read of a block.
pub(crate) struct Counters {
    /// Only written with the queue lock held, so a plain store of the next
    /// value is enough; it is atomic for the lock-free `is_idle`.
    pub(crate) submitted: CachePadded<AtomicUsize>,
    outcomes: CachePadded<Outcomes>,
    blocks: Mutex<Blocks>,
}

/// The supervisors' outcome blocks. A block outlives the supervisor it was
/// lent to, keeping its counts, and goes to the next one to start, so there
/// are never more blocks than supervisors ever ran at once.
#[derive(Default)]
struct Blocks {
    all: Vec<Arc<CachePadded<Outcomes>>>,
    free: Vec<Arc<CachePadded<Outcomes>>>,
}

/// Written by whoever finishes a task: mostly supervisors.
#[derive(Default)]
pub(crate) struct Outcomes {
    pub(crate) completed: AtomicUsize,
    pub(crate) cancelled: AtomicUsize,
    /// The part of `cancelled` that never started.
    pub(crate) cancelled_queued: AtomicUsize,
    pub(crate) panicked: AtomicUsize,
    pub(crate) timed_out: AtomicUsize,
    /// Finished tasks whose handles have resolved.
    pub(crate) settled: AtomicUsize,
    pub(crate) queue_wait: TimingSum,
    pub(crate) run_time: TimingSum,
    /// The same counts, published through the `metrics` facade.
    #[cfg(feature = "metrics")]
    pub(crate) published: crate::engine::metrics::Published,
}

/// The sum and maximum behind a [`Timing`]; its count is kept elsewhere.
///
/// The sum is in nanoseconds, which 64 bits hold for 584 years: a plan with
/// a million tasks queued at all times adds that up in a week. So each add
/// that wraps around also counts one wrap, and the sum is
/// `wraps * 2^64 + nanos`. The wrap is seen from the value `fetch_add`
/// returns, so the common add costs nothing more.
#[derive(Default)]
pub(crate) struct TimingSum {
    nanos: AtomicU64,
    wraps: AtomicU64,
    max_nanos: AtomicU64,
}

impl TimingSum {
    pub(crate) fn record(&self, time: Duration) {
        let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        let before = self.nanos.fetch_add(nanos, Ordering::Relaxed);
        if before.checked_add(nanos).is_none() {
            self.wraps.fetch_add(1, Ordering::Relaxed);
        }
        // Most times are not a new maximum: look before writing.
        if nanos > self.max_nanos.load(Ordering::Relaxed) {
            self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        }
    }

    #[cfg(test)]
    fn snapshot(&self, count: usize) -> Timing {
        let mut total = TimingTotal::default();
        self.add_to(&mut total);
        total.timing(count)
    }

    fn add_to(&self, total: &mut TimingTotal) {
        let wraps = u128::from(self.wraps.load(Ordering::Relaxed));
        let nanos = u128::from(self.nanos.load(Ordering::Relaxed));
        total.nanos += (wraps << 64) + nanos;
        total.max_nanos = total.max_nanos.max(self.max_nanos.load(Ordering::Relaxed));
    }
}

/// [`TimingSum`]s added up.
#[derive(Default)]
struct TimingTotal {
    nanos: u128,
    max_nanos: u64,
}

impl TimingTotal {
    fn timing(&self, count: usize) -> Timing {
        Timing {
            count,
            total: duration_from_nanos(self.nanos),
            max: Duration::from_nanos(self.max_nanos),
        }
    }
}

/// Aligns a value to its own cache line (128 bytes covers the adjacent-line
/// prefetcher on x86-64 and the line size on recent ARM cores).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl Counters {
    /// Counters of the plan named `plan`.
    pub(crate) fn new(plan: &str) -> Counters {
        #[cfg(not(feature = "metrics"))]
        let _ = plan;
        Counters {
            submitted: CachePadded::default(),
            outcomes: CachePadded(Outcomes {
                #[cfg(feature = "metrics")]
                published: crate::engine::metrics::Published::for_plan(plan),
                ..Outcomes::default()
            }),
            blocks: Mutex::new(Blocks::default()),
        }
    }

    /// Counts one more submitted task. Caller holds the queue lock, which
    /// makes this the only writer.
    pub(crate) fn record_submitted(&self) {
        let submitted = self.submitted.load(Ordering::Relaxed);
        self.submitted.store(submitted + 1, Ordering::Release);
    }

    /// The plan's own block: for outcomes counted outside a supervisor.
    pub(crate) fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    /// Lends a supervisor a block to count the tasks it runs; it gives it
    /// back with [`give_back`](Counters::give_back) when it exits.
    pub(crate) fn lend(&self) -> Arc<CachePadded<Outcomes>> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(block) = blocks.free.pop() {
            return block;
        }
        let block = Arc::new(CachePadded(Outcomes {
            #[cfg(feature = "metrics")]
            published: self.outcomes.published.clone(),
            ..Outcomes::default()
        }));
        blocks.all.push(Arc::clone(&block));
        block
    }

    /// How many blocks were ever lent out at once.
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> usize {
        self.blocks.lock().unwrap().all.len()
    }

    pub(crate) fn give_back(&self, block: Arc<CachePadded<Outcomes>>) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        blocks.free.push(block);
    }

    /// `true` if, at some instant during the call, no task was queued or
    /// running. See the type's docs for why the load order makes this exact.
    pub(crate) fn is_idle(&self) -> bool {
        // SeqCst: `Shared::settle` and `Plan::wait_idle` rely on it.
        let settled = self.settled();
        settled == self.submitted.load(Ordering::SeqCst)
    }

    /// The tasks settled in every block, each loaded (SeqCst) one after
    /// the other; see the type's docs for why that is enough.
    fn settled(&self) -> usize {
        let mut settled = self.outcomes.settled.load(Ordering::SeqCst);
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        for block in &blocks.all {
            settled += block.settled.load(Ordering::SeqCst);
        }
        settled
    }

    /// An upper bound on the tasks queued or running at some instant during
    /// the call, exact when it is at most the tasks that stayed queued or
    /// running throughout; loaded in `is_idle`'s order for the same reason.
    pub(crate) fn unsettled(&self) -> usize {
        let settled = self.settled();
        self.submitted
            .load(Ordering::SeqCst)
            .saturating_sub(settled)
    }

    /// Fills a snapshot; `queued` and `started` come from the queue lock.
    pub(crate) fn snapshot(&self, workers: usize, queued: usize, started: usize) -> Stats {
        let mut totals = Totals::default();
        self.outcomes.add_to(&mut totals);
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        for block in &blocks.all {
            block.add_to(&mut totals);
        }
        drop(blocks);
        let submitted = self.submitted.load(Ordering::Acquire);
        totals.stats(workers, queued, started, submitted)
    }
}

/// Outcome counts added up over several blocks.
#[derive(Default)]
struct Totals {
    completed: usize,
    cancelled: usize,
    cancelled_queued: usize,
    panicked: usize,
    timed_out: usize,
    queue_wait: TimingTotal,
    run_time: TimingTotal,
}

impl Totals {
    /// The snapshot these totals give, with the counts kept elsewhere.
    fn stats(&self, workers: usize, queued: usize, started: usize, submitted: usize) -> Stats {
        let cancelled_running = self.cancelled.saturating_sub(self.cancelled_queued);
        let finished_after_start =
            self.completed + cancelled_running + self.panicked + self.timed_out;
        Stats {
            workers,
            queued,
            running: started.saturating_sub(finished_after_start),
            submitted,
            completed: self.completed,
            cancelled: self.cancelled,
            panicked: self.panicked,
            timed_out: self.timed_out,
            queue_wait: self.queue_wait.timing(started),
            run_time: self.run_time.timing(finished_after_start),
        }
    }
}

impl Outcomes {
    /// Fills a snapshot of these outcomes with the counts kept elsewhere.
    pub(crate) fn snapshot(
        &self,
        workers: usize,
        queued: usize,
        started: usize,
        submitted: usize,
    ) -> Stats {
        let mut totals = Totals::default();
        self.add_to(&mut totals);
        totals.stats(workers, queued, started, submitted)
    }

    fn add_to(&self, totals: &mut Totals) {
        totals.completed += self.completed.load(Ordering::Acquire);
        totals.cancelled += self.cancelled.load(Ordering::Acquire);
        totals.cancelled_queued += self.cancelled_queued.load(Ordering::Acquire);
        totals.panicked += self.panicked.load(Ordering::Acquire);
        totals.timed_out += self.timed_out.load(Ordering::Acquire);
        self.queue_wait.add_to(&mut totals.queue_wait);
        self.run_time.add_to(&mut totals.run_time);
    }

    pub(crate) fn record(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Cancelled => &self.cancelled,
            Outcome::TimedOut => &self.timed_out,
            Outcome::Panicked(_) => &self.panicked,
        };
        counter.fetch_add(1, Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        self.published.finished(outcome);
    }

    pub(crate) fn record_cancelled_queued(&self, count: usize) {
        self.cancelled_queued.fetch_add(count, Ordering::AcqRel);
        self.cancelled.fetch_add(count, Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        self.published.cancelled_queued(count);
    }

    /// Publishes a task that was just queued; the counts behind
    /// `Stats::submitted` are kept under the queue lock instead.
    #[cfg(feature = "metrics")]
    pub(crate) fn record_submitted(&self) {
        self.published.submitted();
    }

    /// Counts a task that starts after waiting `waited` in the queue, if
    /// that was measured.
    pub(crate) fn record_started(&self, waited: Option<Duration>) {
        if let Some(waited) = waited {
            self.queue_wait.record(waited);
        }
        #[cfg(feature = "metrics")]
        self.published.started(waited);
    }

    /// Counts the run time of a task that ended.
    pub(crate) fn record_run_time(&self, ran: Duration) {
        self.run_time.record(ran);
        #[cfg(feature = "metrics")]
        self.published.ran(ran);
    }

    pub(crate) fn record_settled(&self, count: usize) {
        self.settled.fetch_add(count, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A sum past 64 bits of nanoseconds is kept whole through the wrap
    /// count.
    /// Supervisors settle tasks in their own blocks; `is_idle` and
    /// `unsettled` add every block up. Kills a `settled` that reads the
    /// plan's block alone, or skips the lent ones.
    #[test]
    fn the_plan_is_idle_once_every_block_settled_what_was_submitted() {
        let counters = Counters::new("test");
        let (first, second) = (counters.lend(), counters.lend());
        for _ in 0..3 {
            counters.record_submitted();
        }
        first.record_settled(1);
        counters.outcomes().record_settled(1);
        assert!(!counters.is_idle());
        assert_eq!(counters.unsettled(), 1);
        // A block given back keeps its counts for the sums.
        counters.give_back(second);
        let second = counters.lend();
        second.record_settled(1);
        assert!(counters.is_idle());
        assert_eq!(counters.unsettled(), 0);
    }

    #[test]
    fn a_timing_sum_past_584_years_is_exact() {
        let sum = TimingSum::default();
        let longest = Duration::from_nanos(u64::MAX);
        sum.record(longest);
        sum.record(longest);
        sum.record(Duration::from_nanos(2));
        let timing = sum.snapshot(3);
        assert_eq!(timing.total, duration_from_nanos(1 << 65));
        assert_eq!(timing.max, longest);
        assert_eq!(timing.mean(), Some(duration_from_nanos((1 << 65) / 3)));
    }

    /// A time too long for 64 bits of nanoseconds counts as the longest.
    #[test]
    fn a_time_past_584_years_counts_as_the_longest() {
        let sum = TimingSum::default();
        sum.record(Duration::MAX);
        assert_eq!(sum.snapshot(1).max, Duration::from_nanos(u64::MAX));
    }
}
