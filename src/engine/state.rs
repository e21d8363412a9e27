//! The plan's state behind its one lock, and the wakeup accounting that
//! lives in it.
//!
//! Every submit and pop takes the lock once; while it is held, the counts
//! here decide who is woken, so that each queued task gets exactly one
//! supervisor coming for it and no wakeup is spent twice or lost. The
//! counts are plain integers because the lock orders them; the `Notify`s
//! they pace are in `Shared`.

use crate::engine::cell::{Control, TaskId, WeakTask};
use crate::engine::queue::Queue;
use crate::engine::sync::{Arc, AtomicUsize, Ordering};
use crate::engine::tags::{TagInfo, TagRegistry};

pub(crate) struct State {
    pub(crate) queue: Queue,
    /// The tags with a task queued or running, and their counts. Under
    /// this lock with the queue, so that registering a tag, queueing its
    /// tasks and freeing it agree (see `engine::tags`).
    pub(crate) tags: TagRegistry,
    pub(crate) closed: bool,
    /// Tasks taken off the queue to run, for `Stats::running`.
    pub(crate) started: usize,
    /// The target number of supervisors: `Stats::workers`.
    pub(crate) workers: usize,
    /// Supervisors spawned and not yet told to retire.
    ///
    /// Kept here, under the same lock as the queue, so that a supervisor
    /// decides between retiring and popping in the same hold of the lock in
    /// which `set_workers` changes `workers`: once `set_workers` returns,
    /// every pop sees the new target, and a supervisor beyond it retires
    /// instead of starting a task (see `claim_retirement`). (A regression
    /// test: these were atomics looked at before the pop took the lock, and
    /// a supervisor that looked just before a shrink popped just after it.)
    pub(crate) active_supervisors: usize,
    /// Submitters registered to wait for room and not yet sent a wakeup.
    /// A pop or a cancel that frees room claims one and wakes it; with none
    /// waiting, freeing room costs no wakeup at all.
    pub(crate) waiting_submitters: usize,
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
    pub(crate) idle_supervisors: usize,
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
    pub(crate) wakeups_in_flight: usize,
    /// The task each supervisor runs, by supervisor number: how
    /// `Plan::cancel(id)` and `Plan::cancel_all` find running tasks without
    /// a registry written per task. Set in the same hold of the lock as the
    /// pop, so a task is always either in the queue or here; cleared when
    /// the supervisor finds the queue empty. Between the two it may name a
    /// task that has since ended: its header then says so, or it no longer
    /// upgrades, and a canceller finds nothing to cancel.
    pub(crate) running: Vec<Option<RunningTask>>,
    /// Tasks of this plan waiting inside `submit` for room in it. Room is
    /// made only by a worker starting a task; if every worker waited there,
    /// or in `wait_idle` (`Shared::inside_idle_waiters`), none would. So a
    /// task may wait only while the two together stay below `workers` (see
    /// `InsideSubmitter`).
    pub(crate) inside_submitters: usize,
}

/// A task a supervisor took off the queue.
pub(crate) struct RunningTask {
    pub(crate) id: TaskId,
    pub(crate) task: WeakTask,
}

impl State {
    /// Records the task `supervisor` just popped. Returns the one it ran
    /// before, for the caller to drop once it has released the lock: that
    /// may be the last reference to the task's allocation.
    #[must_use = "drop it after releasing the lock"]
    pub(crate) fn record_running(
        &mut self,
        supervisor: u32,
        id: TaskId,
        task: WeakTask,
    ) -> Option<RunningTask> {
        let number = supervisor as usize;
        if self.running.len() <= number {
            self.running.resize_with(number + 1, || None);
        }
        self.running[number].replace(RunningTask { id, task })
    }

    /// Forgets the last task of `supervisor`, which found nothing to do or
    /// exited; returns it as `record_running` does.
    #[must_use = "drop it after releasing the lock"]
    pub(crate) fn forget_running(&mut self, supervisor: u32) -> Option<RunningTask> {
        self.running
            .get_mut(supervisor as usize)
            .and_then(Option::take)
    }

    /// The running task numbered `id`, if it is still alive.
    pub(crate) fn find_running(&self, id: TaskId) -> Option<Arc<dyn Control>> {
        self.running
            .iter()
            .flatten()
            .find(|running| running.id == id)
            .and_then(|running| running.task.upgrade())
    }

    /// Every task the supervisors run that is still alive, but `spared`.
    pub(crate) fn all_running_except(&self, spared: Option<TaskId>) -> Vec<Arc<dyn Control>> {
        self.running
            .iter()
            .flatten()
            .filter(|running| Some(running.id) != spared)
            .filter_map(|running| running.task.upgrade())
            .collect()
    }

    /// Claims a wakeup for an idle supervisor if the invariant above needs
    /// one. The caller sends it (`notify_one`) after releasing the lock.
    pub(crate) fn claim_wakeup(&mut self) -> bool {
        let needed = self.idle_supervisors > 0 && self.wakeups_in_flight < self.queue.len();
        if needed {
            self.idle_supervisors -= 1;
            self.wakeups_in_flight += 1;
        }
        needed
    }

    /// Counts off a wakeup the calling supervisor took up.
    pub(crate) fn wakeup_taken(&mut self, woken: bool) {
        if woken {
            self.wakeups_in_flight = self.wakeups_in_flight.saturating_sub(1);
        }
    }

    /// Claims a retirement if more supervisors are active than `workers`
    /// asks for. A supervisor that gets `true` must exit without popping.
    pub(crate) fn claim_retirement(&mut self) -> bool {
        let surplus = self.active_supervisors > self.workers;
        if surplus {
            self.active_supervisors -= 1;
        }
        surplus
    }

    /// Claims a new supervisor for each queued task no supervisor is coming
    /// for, as far as `workers` has room, and counts them active. The
    /// caller counts them live before it releases the lock, and spawns them
    /// after.
    ///
    /// A new supervisor counts as a wakeup in flight until its first look at
    /// the queue, so that the invariant of `wakeups_in_flight` extends to
    /// it: while fewer supervisors are active than `workers`, one is coming
    /// for every queued task. Called after `claim_wakeup`, it only spawns
    /// when no idle supervisor is left to wake.
    pub(crate) fn claim_spawns(&mut self) -> usize {
        let uncovered = self.queue.len().saturating_sub(self.wakeups_in_flight);
        let room = self.workers.saturating_sub(self.active_supervisors);
        let spawns = uncovered.min(room);
        self.active_supervisors += spawns;
        self.wakeups_in_flight += spawns;
        spawns
    }

    /// Frees `tag` if none of its tasks is queued or running any more.
    /// Called in the hold of the lock that took one of its tasks off the
    /// queue or out of its running set, with that task (or a clone of the
    /// tag) still held, so the registry's reference is not the last.
    pub(crate) fn free_tag_if_idle(&mut self, tag: &TagInfo) {
        let idle =
            self.queue.tag_len(tag.index) == 0 && self.tags.state(tag.index).running.is_empty();
        if idle {
            self.tags.free(tag);
        }
    }
}

/// Counts a caller of `wait_idle` for as long as it waits, however it ends.
pub(crate) struct IdleWaiter<'a>(&'a AtomicUsize);

impl<'a> IdleWaiter<'a> {
    pub(crate) fn register(waiters: &'a AtomicUsize) -> IdleWaiter<'a> {
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
pub(crate) fn claim(waiters: &mut usize) -> bool {
    claim_up_to(waiters, 1) == 1
}

/// Takes up to `wanted` from a count of registered waiters; returns how many
/// to wake.
pub(crate) fn claim_up_to(waiters: &mut usize, wanted: usize) -> usize {
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
    use crate::engine::cell::{NewTask, Setup};

    fn state(queued: usize, idle_supervisors: usize, wakeups_in_flight: usize) -> State {
        let mut queue = Queue::with_capacity(queued);
        for _ in 0..queued {
            let task = NewTask::new(async {}, Setup::default()).into_task();
            queue.push(task, 0, None);
        }
        State {
            queue,
            tags: TagRegistry::new(),
            closed: false,
            started: 0,
            workers: 1,
            active_supervisors: 1,
            waiting_submitters: 0,
            idle_supervisors,
            wakeups_in_flight,
            running: Vec::new(),
            inside_submitters: 0,
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

    #[test]
    fn a_spawn_is_claimed_per_queued_task_no_supervisor_is_coming_for() {
        // Three queued, one wakeup on its way, room for five more: two.
        let mut state = state(3, 0, 1);
        state.workers = 6;
        assert_eq!(state.claim_spawns(), 2);
        assert_eq!((state.active_supervisors, state.wakeups_in_flight), (3, 3));
        assert_eq!(state.claim_spawns(), 0, "each queued task has one coming");
    }

    #[test]
    fn no_more_spawns_than_workers_has_room_for() {
        let mut state = state(4, 0, 0);
        state.workers = 2;
        assert_eq!(state.claim_spawns(), 1);
        assert_eq!((state.active_supervisors, state.wakeups_in_flight), (2, 1));
        assert_eq!(state.claim_spawns(), 0);
        // Shrunk below the active count: none, and no wrap.
        state.workers = 1;
        assert_eq!(state.claim_spawns(), 0);
        assert_eq!(state.active_supervisors, 2);
    }

    #[test]
    fn only_supervisors_beyond_the_target_retire() {
        let mut state = state(1, 0, 0);
        state.active_supervisors = 3;
        assert!(state.claim_retirement());
        assert!(state.claim_retirement());
        assert!(
            !state.claim_retirement(),
            "the last one within the target stays"
        );
        assert_eq!(state.active_supervisors, 1);
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
