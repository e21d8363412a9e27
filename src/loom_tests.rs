//! Loom model checks of the state taskplan synchronises with its own atomics
//! and locks, rather than only through Tokio's primitives.
//!
//! # Running
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/tmp/target-l \
//!     cargo test --release --lib --no-default-features loom
//! ```
//!
//! - `--cfg loom` turns `crate::sync`'s atomics, mutex and waker slot into
//!   loom's (see `src/engine/sync.rs`), and compiles this module.
//! - `--no-default-features`: Tokio has no `signal` module under
//!   `cfg(loom)`, so the `signal` feature cannot compile there.
//! - `--release`: loom runs every interleaving; unoptimised, it is several
//!   times slower.
//! - Bounds: every model runs without a preemption bound (loom's whole
//!   search) except `header::loom_cancel_racing_start_…`, the largest (three
//!   threads, two of them in `block_on`), bounded to 4 preemptions: 3 s,
//!   against 10 s for 5 and more than 7 minutes unbounded. Setting
//!   `LOOM_MAX_PREEMPTIONS` applies that bound to every model instead.
//! - Time: the models take about 6 s in all on the 2-core machine, once
//!   built. The first run takes about 1 min 45 s, as it rebuilds every
//!   dependency with the flag (in its own target directory, so the normal
//!   build is not disturbed); after a change to the crate, about 30 s.
//!
//! Two limits of loom shape these models, and each is worked around here:
//!
//! - loom regards SeqCst loads and stores as AcqRel (its README,
//!   tokio-rs/loom#180): see `idle` for how the SeqCst protocol is modelled.
//! - loom's search keeps only the last access to each atomic, and misses
//!   interleavings in which another thread's load is followed by its store
//!   (tokio-rs/loom#166, #392): a single look at a flag racing a thread
//!   whose first access is a load is not explored both ways. Looks that
//!   must see every step of another thread therefore spin with
//!   `thread::yield_now`, which loom re-explores after each step.
//!
//! Each model was checked to fail when the code it checks is broken: no
//! second look at the cancel flag after registering the waker, or the
//! registration after it (deadlock); DONE stored before the result, or the
//! outcome counted after the handle resolves; the supervisor's number stored
//! after RUNNING; a cancel without the `holds` check; the alarm waking
//! before setting `fired`, or not looked at after the first poll; a
//! retirement decided apart from the pop (kept as a control model); an unconditional `abandoned`
//! increment; `wait_idle` making its `Notified` after the look, `settle`
//! looking at the waiters before settling, `settled` counted Relaxed, or
//! `is_idle` loading `submitted` first; a `Plan` clone not counted.

//! # What is checked, and against what
//!
//! Loom can only interleave what goes through its own types, so each check
//! uses the crate's real code where loom can reach it, and otherwise a copy
//! whose text is compared with the source (the `mirror!` items and `Fact`s,
//! checked by `sources::loom_copies_match_the_source`, so a change to the
//! source fails that test until the copy here is brought up to date):
//!
//! - `header`: the task lifecycle (`Header`, `Core` with its waker slot, a
//!   loom `UnsafeCell` whose every access loom checks, `Task::poll_run`,
//!   `Task::end` and `Task`'s drop, `Queue`), all real. What stands in for the plan is the
//!   glue around them: `Shared::cancel`, the pop in `Shared::try_pop`, and
//!   the drain in `Shared::cancel_queued`, copied call for call under a loom
//!   mutex that stands for the plan's queue lock.
//! - `blocking`: `Run` and the `abandoned` count, private to `engine/blocking.rs`,
//!   are mirrored verbatim.
//! - `idle`: `Counters` is real; `idle_waiters` and the order of the SeqCst
//!   operations in `Shared::settle` and `Plan::wait_idle` are copied; Tokio's
//!   `Notify` is replaced by a model of its documented guarantee (see there).
//! - `alarm`: `TokenAlarm`, private to `engine/supervisor.rs`, is mirrored
//!   verbatim; the supervisor's biased poll is copied; `poll_run` and the
//!   supervisor's `AtomicWaker` are real.
//! - `counts`: the `plans` count (`Clone`/`Drop for Plan`), and the
//!   supervisor counts: `live_supervisors` and the `workers` and
//!   `active_supervisors` that `State` keeps under the queue lock
//!   (`State::claim_retirement`, `State::claim_spawns`, `claim_spawns` and
//!   `supervisor_exited` mirrored verbatim; the retirement and pop of
//!   `try_pop`, the spawn claim of `push` and the locked part of `resize`
//!   copied).
//!
//! State that needs no loom model, and why:
//!
//! - `Outcomes`' outcome counters: each is a lone `fetch_add`, and what
//!   orders them against the handle is the state word's DONE (Release after
//!   the count, Acquire in the handle), checked in `header` (a resolved
//!   handle always finds its task counted). `Stats` snapshots
//!   are documented as not adding up while tasks move.
//! - `Header::queue_key`: only read and written under the queue lock.
//! - `forced`: one flag, only ever set, stored before the supervisors exit
//!   and read after `TaskTracker::wait`, which orders the two.
//! - The plan's mutexes (`state`, `resize`, `tags`, `supervisor_wakers`) and
//!   `error.rs`'s payload mutex: plain critical sections; what needs
//!   checking is the lock order, which is documented in `engine/shared.rs` and which
//!   no atomic interleaving changes. `supervisor_wakers` hands out an
//!   `Arc<AtomicWaker>` that may outlive its supervisor: waking it then is a
//!   spurious wakeup at worst.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::thread;

use crate::engine::cell::{CancelRequest, Ended, Header, Joiner, NewTask, Outcome, Setup, Task};
use crate::engine::counters::{Counters, Outcomes};
use crate::engine::panic::Failure;
use crate::engine::queue::Queue;
use crate::engine::sync::{Arc, AtomicBool, AtomicUsize, AtomicWaker, Mutex, Ordering};

/// No preemption bound: loom's whole search.
const EXHAUSTIVE: Option<usize> = None;

/// The bound for the models where three threads race over one task and its
/// handle awaits it: since the handle's waker changes hands through the
/// state word rather than under a lock, their whole search takes hours
/// where three preemptions take seconds (`LOOM_MAX_PREEMPTIONS=4` lifts it
/// for a longer run; Tokio's own CI checks its task cell with 2).
const HAND_OVER_BOUND: Option<usize> = Some(3);

/// Runs `model` under every interleaving loom explores with at most `bound`
/// preemptions, or the bound `LOOM_MAX_PREEMPTIONS` sets for every model.
fn check(bound: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = bound;
    }
    builder.check(model);
}

/// Copies private source items verbatim and records their text, which
/// `sources::loom_copies_match_the_source` finds in the source file.
macro_rules! mirror {
    ($name:ident in $file:literal: $($item:item)+) => {
        $($item)+
        pub(super) const $name: super::sources::Fact = super::sources::Fact {
            file: $file,
            source: include_str!($file),
            text: stringify!($($item)+),
        };
    };
}

/// Copies methods verbatim into an `impl` block and records the text of the
/// methods alone, for a source `impl` that holds others too.
macro_rules! mirror_methods {
    ($name:ident in $file:literal: impl $ty:ident { $($methods:tt)+ }) => {
        impl $ty {
            $($methods)+
        }
        pub(super) const $name: super::sources::Fact = super::sources::Fact {
            file: $file,
            source: include_str!($file),
            text: stringify!($($methods)+),
        };
    };
}

/// Source text a model copies (orderings, the order of calls), found in the
/// source file by `sources::loom_copies_match_the_source`.
macro_rules! fact {
    ($name:ident in $file:literal: $text:literal) => {
        pub(super) const $name: super::sources::Fact = super::sources::Fact {
            file: $file,
            source: include_str!($file),
            text: $text,
        };
    };
}

mod sources {
    /// A piece of source text that a model here copies.
    pub(super) struct Fact {
        pub(super) file: &'static str,
        pub(super) source: &'static str,
        pub(super) text: &'static str,
    }

    /// Drops `//` comments (doc comments included) and all whitespace, so
    /// that `stringify!`'s spacing and rustfmt's compare equal.
    fn normalized(text: &str) -> String {
        text.lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .flat_map(str::chars)
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    /// Every copy in this module is still what the source says: if this
    /// fails, the source changed under a model, which must be brought up to
    /// date (and re-checked) with it.
    #[test]
    fn loom_copies_match_the_source() {
        let facts = [
            &super::header::CANCEL,
            &super::header::UNQUEUE,
            &super::header::POP,
            &super::header::DRAIN,
            &super::header::DROP_UNSTARTED,
            &super::blocking::STATES,
            &super::blocking::RUN,
            &super::blocking::STILL_RUNNING,
            &super::idle::SETTLE,
            &super::idle::WAIT_IDLE,
            &super::idle::REGISTER,
            &super::alarm::TOKEN_ALARM,
            &super::alarm::ALARM_IMPLS,
            &super::alarm::BIASED_POLL,
            &super::counts::PLAN_CLONE_DROP,
            &super::counts::CLAIMS,
            &super::counts::CLAIM_SPAWNS,
            &super::counts::SUPERVISOR_EXITED,
            &super::counts::RETIRE_THEN_POP,
            &super::counts::PUSH_SPAWNS,
            &super::counts::RESIZE,
            &super::counts::RESIZE_SPAWNS,
        ];
        for fact in facts {
            assert!(
                normalized(fact.source).contains(&normalized(fact.text)),
                "src/{} no longer contains what src/loom_tests.rs copies from it:\n{}",
                fact.file,
                fact.text
            );
        }
    }
}

/// Whether a [`Probe`] was polled: test bookkeeping, outside the model
/// (loom runs its threads one at a time on one OS thread).
type Polled = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// A user future for the models: pends forever, or returns 7 on its first
/// poll, and records whether it was ever polled.
struct Probe {
    finishes: bool,
    polled: Polled,
}

impl Future for Probe {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
        self.polled.store(true, std::sync::atomic::Ordering::SeqCst);
        if self.finishes {
            Poll::Ready(7)
        } else {
            Poll::Pending
        }
    }
}

/// A task around a [`Probe`], as a supervisor holds it.
type ProbeTask = Task;

/// A task around a [`Probe`], with its shared core and its "polled" flag.
fn probe_task(finishes: bool) -> (ProbeTask, Joiner<u32>, Polled) {
    let polled = Polled::default();
    let future = Probe {
        finishes,
        polled: Polled::clone(&polled),
    };
    let mut task = NewTask::new(future, Setup::default());
    let core = task.join();
    (task.into_task(), core, polled)
}

/// Awaits a task's handle: what `TaskHandle::poll` does, with loom's
/// `block_on`, which reports a deadlock if the wakeup never comes.
fn await_handle(core: &mut Joiner<u32>) -> Result<u32, Failure> {
    block_on(poll_fn(|cx| core.poll_output(cx))).expect("polled once after Ready")
}

fn is_cancelled(result: &Result<u32, Failure>) -> bool {
    matches!(result, Err(Failure::Cancelled))
}

/// Item 1: a task's lifecycle state, its result slot and the handle.
mod header {
    use super::*;

    /// The number the running supervisor records in the header.
    const SUPERVISOR: u32 = 7;

    fact!(CANCEL in "engine/shared.rs": "
        pub(crate) fn cancel(&self, header: &Header) {
            let mut request = header.request_cancel();
            if request == CancelRequest::StillQueued {
                let state = self.lock();
                if header.is_queued() && state.queue.holds(header.queue_key(), header) {
                    self.unqueue(state, header.queue_key());
                    return;
                }
                drop(state);
                request = header.request_cancel();
            }
            if request == CancelRequest::Requested {
                self.wake_supervisor(header.supervisor());
            }
        }");
    fact!(UNQUEUE in "engine/shared.rs": "
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
        }");
    fact!(POP in "engine/shared.rs": "
        match state.queue.pop() {
            Some((mut task, tag)) => {
                task.header().mark_started(supervisor);");
    fact!(DRAIN in "engine/shared.rs": "
            let mut state = self.lock();
            let newly_closed = !std::mem::replace(&mut state.closed, true);
            (newly_closed, state.queue.drain())
        };
        if newly_closed {
            self.announce_closed();
        }
        if tasks.len() > 0 {
            self.lock().tags.free_all_not_running();
        }
        self.drop_unstarted(tasks.len(), tasks.into_tasks());");
    fact!(DROP_UNSTARTED in "engine/shared.rs": "
        self.outcomes().record_cancelled_queued(count);
        let mut handles = Vec::new();
        for mut task in tasks {
            task.record_cancelled_queued_for_tag();
            tracing::debug!(
                plan = %self.name,
                task = %task.id(),
                tag = task.tag().map(|tag| tag.name.as_str()),
                \"queued task cancelled\"
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
        }");

    /// The plan's side of one task: its queue under a loom mutex standing
    /// for the plan's queue lock, its outcome counts, and the waker of the
    /// one supervisor.
    struct Plan {
        queue: Mutex<Queue>,
        outcomes: Outcomes,
        supervisor: AtomicWaker,
    }

    /// A task that finishes on its first poll, marked started by the one
    /// supervisor and run to its end on a thread of its own: the
    /// supervisor's side of the models that race that end.
    fn spawn_finishing_run(plan: &Arc<Plan>) -> (thread::JoinHandle<Outcome>, Joiner<u32>) {
        let (task, core, _) = probe_task(true);
        task.header().mark_started(SUPERVISOR);
        let plan = Arc::clone(plan);
        let supervisor = thread::spawn(move || {
            let mut task: Task = task;
            plan.run(&mut task)
        });
        (supervisor, core)
    }

    /// What a cancel did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Cancel {
        /// Took the task off the queue and dropped it.
        Unqueued,
        /// Flagged the running task and woke its supervisor.
        Requested,
        /// Nothing: finished, or being dropped by a drain.
        Nothing,
    }

    impl Plan {
        fn new() -> Plan {
            Plan {
                queue: Mutex::new(Queue::with_capacity(1)),
                outcomes: Outcomes::default(),
                supervisor: AtomicWaker::new(),
            }
        }

        /// `Shared::cancel`, call for call (`CANCEL`), with the wakeup of
        /// the supervisor going to the one supervisor's waker. The model's
        /// task is untagged, so there is no tag to let go of.
        fn cancel(&self, header: &Header) -> Cancel {
            let mut request = header.request_cancel();
            if request == CancelRequest::StillQueued {
                let mut state = self.queue.lock().unwrap();
                if header.is_queued() && state.holds(header.queue_key(), header) {
                    let (task, _) = state.remove(header.queue_key());
                    assert!(task.tag().is_none(), "the model's task is untagged");
                    drop(state);
                    self.drop_unstarted(vec![task]);
                    return Cancel::Unqueued;
                }
                drop(state);
                request = header.request_cancel();
            }
            if request == CancelRequest::Requested {
                // The number is stored before the AcqRel `fetch_or` that
                // marks RUNNING, and read after an Acquire look that saw
                // RUNNING: it is the right supervisor's.
                assert_eq!(
                    header.supervisor(),
                    SUPERVISOR,
                    "a cancel woke a wrong supervisor"
                );
                self.supervisor.wake();
                return Cancel::Requested;
            }
            Cancel::Nothing
        }

        /// `Shared::drop_unstarted` (`DROP_UNSTARTED`): counted, then ended,
        /// which resolves the handle, then the handles woken.
        fn drop_unstarted(&self, tasks: Vec<Task>) {
            if tasks.is_empty() {
                return;
            }
            self.outcomes.record_cancelled_queued(tasks.len());
            let mut handles = Vec::new();
            for mut task in tasks {
                let handle = task.end();
                if handle.is_waiting() {
                    handles.push(handle);
                }
                drop(task);
            }
            for handle in handles {
                handle.wake("loom");
            }
        }

        /// The pop of `Shared::try_pop` (`POP`), then the task run to its end
        /// as the supervisor's poll runs it.
        fn pop_and_run(&self) -> Option<Outcome> {
            let popped = {
                let mut state = self.queue.lock().unwrap();
                state.pop().map(|(task, _)| {
                    task.header().mark_started(SUPERVISOR);
                    task
                })
            };
            let mut task = popped?;
            Some(self.run(&mut task))
        }

        /// The supervisor's run of a task: polled to its end, and its
        /// handle woken once it ended, as `Running`'s drop wakes it.
        fn run(&self, task: &mut Task) -> Outcome {
            let ended = block_on(poll_fn(|cx| {
                task.poll_run(cx, &self.outcomes, &self.supervisor)
            }));
            ended.handle.wake("loom");
            ended.outcome
        }

        /// The queue part of an abort (`DRAIN`): closed and drained under
        /// the lock, dropped outside it. (The tags the drained tasks alone
        /// kept are freed in a second hold in between; the model's tasks are
        /// untagged.)
        fn drain(&self) {
            let tasks = self.queue.lock().unwrap().drain();
            self.drop_unstarted(tasks.into_tasks().collect());
        }

        fn cancelled(&self) -> usize {
            self.outcomes.cancelled.load(Ordering::Acquire)
        }

        fn completed(&self) -> usize {
            self.outcomes.completed.load(Ordering::Acquire)
        }
    }

    /// One queued task that never finishes by itself, a supervisor that
    /// takes it off the queue (holding the queue lock) and runs it, a
    /// `TaskHandle::cancel` on another thread, and the handle awaited on a
    /// third. Whatever the interleaving: the task is cancelled exactly once
    /// and counted once; a task the cancel took off the queue was never
    /// polled; a running one is woken and dropped (no lost wakeup, or loom
    /// reports a deadlock); the cancel wakes the supervisor that started it;
    /// the handle resolves as cancelled, with the count already there.
    #[test]
    fn loom_cancel_racing_start_cancels_once_and_never_loses_the_wakeup() {
        check(HAND_OVER_BOUND, || {
            let plan = Arc::new(Plan::new());
            let (task, mut core, polled) = probe_task(false);
            plan.queue.lock().unwrap().push(task, 0, None);

            let supervisor = {
                let plan = Arc::clone(&plan);
                thread::spawn(move || plan.pop_and_run())
            };
            let canceller = {
                let (plan, control) = (Arc::clone(&plan), core.control());
                thread::spawn(move || plan.cancel(control.header()))
            };

            let result = await_handle(&mut core);
            assert!(is_cancelled(&result), "the handle of a cancelled task");
            assert_eq!(plan.cancelled(), 1, "a resolved handle's task is counted");

            let ran = supervisor.join().unwrap();
            let cancel = canceller.join().unwrap();
            match cancel {
                Cancel::Unqueued => {
                    assert!(ran.is_none(), "an unqueued task was also started");
                    assert!(!polled.load(std::sync::atomic::Ordering::SeqCst));
                }
                Cancel::Requested => {
                    assert!(matches!(ran, Some(Outcome::Cancelled)), "{ran:?}");
                }
                Cancel::Nothing => panic!("a cancel of a live task did nothing"),
            }
            assert!(core.header().is_done());
            assert_eq!((plan.cancelled(), plan.completed()), (1, 0));
        });
    }

    /// A running task whose future finishes on its first poll, a cancel of
    /// it, and its handle awaited: the task either completes (handle
    /// `Ok(7)`, counted completed) or is cancelled (handle cancelled,
    /// counted cancelled), never both, and only a cancel that was
    /// `Requested` cancels it.
    #[test]
    fn loom_cancel_racing_completion_resolves_one_outcome() {
        check(HAND_OVER_BOUND, || {
            let plan = Arc::new(Plan::new());
            let (supervisor, mut core) = spawn_finishing_run(&plan);

            let canceller = {
                let (plan, control) = (Arc::clone(&plan), core.control());
                thread::spawn(move || plan.cancel(control.header()))
            };

            let result = await_handle(&mut core);
            let completed = matches!(result, Ok(7));
            assert!(completed || is_cancelled(&result));

            let outcome = supervisor.join().unwrap();
            let cancel = canceller.join().unwrap();
            assert_ne!(cancel, Cancel::Unqueued, "a running task is not queued");
            match outcome {
                Outcome::Completed => assert!(completed),
                Outcome::Cancelled => {
                    assert!(!completed);
                    assert_eq!(cancel, Cancel::Requested);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                (plan.completed(), plan.cancelled()),
                (usize::from(completed), usize::from(!completed))
            );
        });
    }

    /// `TaskHandle::is_finished` (`Header::is_done`) looked at in a loop
    /// while the task ends on another thread, by completing in its
    /// supervisor or by a cancel taking it off the queue and dropping it:
    /// once it is true, the result is in the slot (a poll returns it at
    /// once) and the task's outcome is counted.
    ///
    /// The look spins with `yield_now` rather than looking once: loom's
    /// exploration misses the interleavings in which another thread's first
    /// access to the state is a load followed by a store (tokio-rs/loom#166,
    /// #392), and a spinning look is re-explored after each step of the
    /// other thread.
    #[test]
    fn loom_is_finished_only_once_the_result_and_its_count_are_there() {
        for completes in [true, false] {
            check(EXHAUSTIVE, move || {
                let plan = Arc::new(Plan::new());
                let (task, mut core, _) = probe_task(true);
                let ending = if completes {
                    task.header().mark_started(SUPERVISOR);
                    let plan = Arc::clone(&plan);
                    thread::spawn(move || {
                        let mut task: Task = task;
                        assert!(matches!(plan.run(&mut task), Outcome::Completed));
                    })
                } else {
                    plan.queue.lock().unwrap().push(task, 0, None);
                    let (plan, control) = (Arc::clone(&plan), core.control());
                    thread::spawn(move || {
                        assert_eq!(plan.cancel(control.header()), Cancel::Unqueued)
                    })
                };
                while !core.header().is_done() {
                    thread::yield_now();
                }
                assert_eq!(
                    (plan.completed(), plan.cancelled()),
                    (usize::from(completes), usize::from(!completes)),
                    "a finished task is counted"
                );
                let mut cx = Context::from_waker(Waker::noop());
                match core.poll_output(&mut cx) {
                    Poll::Ready(Some(result)) => assert_eq!(result.is_ok(), completes),
                    _ => panic!("is_finished was true before the result was there"),
                }
                ending.join().unwrap();
            });
        }
    }

    /// The handle polled with one waker and then awaited with another while
    /// its task ends on another thread: the second poll takes the waker slot
    /// back (clearing `JOIN_WAKER`) and hands it over again. Whatever the
    /// interleaving, the slot is never reached from both threads without an
    /// order between them (the slot is a loom `UnsafeCell`, which checks
    /// that), and the handle ends with the value: a poll sees the task
    /// DONE, or the end wakes the waker of the handle's last poll (a lost
    /// wakeup is a deadlock, which loom reports).
    #[test]
    fn loom_a_handle_polled_again_while_its_task_ends_gets_the_value() {
        check(HAND_OVER_BOUND, || {
            let plan = Arc::new(Plan::new());
            let (supervisor, mut core) = spawn_finishing_run(&plan);
            // A waker that wakes nothing: only the second one can.
            let result = match core.poll_output(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(result) => result.expect("taken once"),
                Poll::Pending => await_handle(&mut core),
            };
            assert!(matches!(result, Ok(7)), "the handle got the value");
            assert!(matches!(supervisor.join().unwrap(), Outcome::Completed));
            assert_eq!(plan.completed(), 1);
        });
    }

    /// `Plan::cancel_tag` counts each `Requested` cancel as "cancelled", and
    /// its docs say "a task that finishes while this runs is not counted".
    /// A running task that completes while it is cancelled: whatever the
    /// interleaving, a cancel reported as requested ends the task cancelled.
    /// Before the fix the supervisor's first look at the flag (clear), the
    /// cancel's look (RUNNING) and `fetch_or` (`Requested`), then a poll
    /// returning `Ready` completed the task with its value, yet `cancel_tag`
    /// counted it as cancelled.
    #[test]
    fn loom_a_requested_cancel_means_the_task_did_not_complete() {
        check(EXHAUSTIVE, || {
            let plan = Arc::new(Plan::new());
            let (supervisor, core) = spawn_finishing_run(&plan);
            let cancel = plan.cancel(core.header());
            let outcome = supervisor.join().unwrap();
            if cancel == Cancel::Requested {
                assert!(
                    matches!(outcome, Outcome::Cancelled),
                    "cancel returned Requested (counted by cancel_tag), but the task {outcome:?}"
                );
            }
        });
    }

    /// One queued task, an abort draining the queue (closed and drained
    /// under the lock, tasks dropped outside it), a supervisor popping and a
    /// cancel, all at once. The drain leaves drained tasks QUEUED until it
    /// drops them: the cancel must then leave them to it. Whatever the
    /// interleaving the task ends once (a second resolve would panic),
    /// counted once as cancelled, started only if the supervisor popped it
    /// first, and the handle resolves as cancelled.
    #[test]
    fn loom_cancel_racing_an_abort_drain_and_a_start_ends_the_task_once() {
        check(EXHAUSTIVE, || {
            let plan = Arc::new(Plan::new());
            let (task, mut core, polled) = probe_task(false);
            plan.queue.lock().unwrap().push(task, 0, None);

            let supervisor = {
                let plan = Arc::clone(&plan);
                thread::spawn(move || plan.pop_and_run())
            };
            let aborter = {
                let plan = Arc::clone(&plan);
                thread::spawn(move || plan.drain())
            };
            let cancel = plan.cancel(core.header());

            let ran = supervisor.join().unwrap();
            aborter.join().unwrap();
            let result = await_handle(&mut core);
            assert!(is_cancelled(&result));
            assert_eq!((plan.cancelled(), plan.completed()), (1, 0));
            match ran {
                Some(outcome) => {
                    assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
                    assert_eq!(cancel, Cancel::Requested);
                }
                None => {
                    assert!(!polled.load(std::sync::atomic::Ordering::SeqCst));
                    assert_ne!(cancel, Cancel::Requested);
                }
            }
        });
    }
}

/// Item 2: a blocking closure's state and the plan's `abandoned` count.
mod blocking {
    use super::*;
    use crate::engine::sync::AtomicU8;

    /// `Blocking` as in `blocking.rs` (its field is private).
    #[derive(Default)]
    struct Blocking {
        abandoned: AtomicUsize,
    }

    mirror! { STILL_RUNNING in "engine/blocking.rs":
        impl Blocking {
            pub(crate) fn still_running(&self) -> usize {
                self.abandoned.load(Ordering::Acquire)
            }
        }
    }

    mirror! { STATES in "engine/blocking.rs":
        const RUNNING: u8 = 0;
        const RETURNED: u8 = 1;
        const ABANDONED: u8 = 2;
    }

    mirror! { RUN in "engine/blocking.rs":
        struct Run {
            state: AtomicU8,
            counts: Arc<Blocking>,
        }

        impl Run {
            fn closure_returned(&self) {
                if self
                    .state
                    .compare_exchange(RUNNING, RETURNED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    self.counts.abandoned.fetch_sub(1, Ordering::AcqRel);
                }
            }

            fn task_ended(&self) {
                // Counted before the state says so, and taken back if the closure
                // had already returned: the closure's `fetch_sub` can only follow
                // a count that is already there, so a reader never sees it wrap.
                self.counts.abandoned.fetch_add(1, Ordering::AcqRel);
                if self
                    .state
                    .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    self.counts.abandoned.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    fn run(counts: &Arc<Blocking>) -> Arc<Run> {
        Arc::new(Run {
            state: AtomicU8::new(RUNNING),
            counts: Arc::clone(counts),
        })
    }

    /// Two blocking tasks share the plan's count. Each closure returns on
    /// its thread while its task ends on another (`BlockingTask`'s drop, in
    /// a supervisor). Read as `shutdown` reads it, after every task ended
    /// (it waits for the supervisors first), the count never exceeds the two
    /// closures (it never wraps below zero); once every closure returned it
    /// is exactly 0.
    #[test]
    fn loom_closure_return_racing_task_end_leaves_an_exact_count() {
        check(EXHAUSTIVE, || {
            let counts = Arc::new(Blocking::default());
            let runs = [run(&counts), run(&counts)];
            let closures: Vec<_> = runs
                .iter()
                .map(|run| {
                    let run = Arc::clone(run);
                    thread::spawn(move || run.closure_returned())
                })
                .collect();
            for run in &runs {
                run.task_ended();
            }
            let seen = counts.still_running();
            assert!(seen <= 2, "abandoned read as {seen} with two closures");
            for closure in closures {
                closure.join().unwrap();
            }
            assert_eq!(counts.still_running(), 0);
        });
    }

    /// The same count read while a task is ending, not after. (Regression
    /// test: the closure's `fetch_sub` could land between the task's
    /// compare-exchange and its `fetch_add`, so a reader saw the count
    /// wrapped to `usize::MAX`. Latent then: the only reader, `shutdown`,
    /// reads after every supervisor exited.)
    #[test]
    fn loom_abandoned_count_never_wraps_while_a_task_ends() {
        check(EXHAUSTIVE, || {
            let counts = Arc::new(Blocking::default());
            let run = run(&counts);
            let closure = {
                let run = Arc::clone(&run);
                thread::spawn(move || run.closure_returned())
            };
            let task = {
                let run = Arc::clone(&run);
                thread::spawn(move || run.task_ended())
            };
            let seen = counts.still_running();
            assert!(seen <= 1, "abandoned read as {seen} with one closure");
            closure.join().unwrap();
            task.join().unwrap();
            assert_eq!(counts.still_running(), 0);
        });
    }
}

/// Item 3: the idle protocol between `Shared::settle` and `Plan::wait_idle`.
///
/// `Counters` (`record_submitted`, `record_settled`, `is_idle`) is the real
/// one. `idle_waiters` and the order of the SeqCst operations are copied
/// from `SETTLE`, `WAIT_IDLE` and `REGISTER`.
///
/// Two stand-ins, both stated here:
///
/// - Tokio's `Notify`, which loom cannot see into, is modelled by its
///   documented guarantee for `notify_waiters`: it wakes every `Notified`
///   created before the call, polled or not (Tokio orders the two with a
///   SeqCst counter in `Notify`'s state). Here that counter is `calls`: a
///   `Notified` is a SeqCst load of it, `notify_waiters` a SeqCst
///   `fetch_add`, and a waiter is woken if the count moved since its load.
/// - loom regards SeqCst accesses as AcqRel (its README, "Unsupported
///   features"; tokio-rs/loom#180), which allows the store-buffer outcome
///   that SeqCst forbids: both sides' loads missing the other's store. So
///   the model puts a `fence(SeqCst)`, which loom does model, between each
///   side's SeqCst store and its SeqCst loads of the other's counter: that
///   gives those accesses the one property of SeqCst the protocol relies on
///   ("either the waiter sees the plan idle or the settler sees the
///   waiter"). `loom_without_seqcst_the_idle_wakeup_is_lost` runs the model
///   without the fences, that is with AcqRel, and loom finds the lost
///   wakeup: the SeqCst is what makes it correct.
mod idle {
    use super::*;
    use loom::sync::atomic::fence;

    fact!(SETTLE in "engine/shared.rs": "
        outcomes.record_settled(count);
        if self.idle_waiters.load(Ordering::SeqCst) > 0 && self.counters.is_idle() {
            self.wake_users(|| self.idle.notify_waiters());
        }");
    fact!(WAIT_IDLE in "engine/shared.rs": "
        let _waiting = IdleWaiter::register(&self.idle_waiters);
        loop {
            let mut idle = pin!(self.idle.notified());
            idle.as_mut().enable();
            if self.counters.is_idle() {
                return;
            }
            idle.await;
        }");
    fact!(REGISTER in "engine/state.rs": "
        waiters.fetch_add(1, Ordering::SeqCst);
        IdleWaiter(waiters)");

    struct Plan {
        counters: Counters,
        idle_waiters: AtomicUsize,
        /// `Notify`'s count of `notify_waiters` calls (see the module docs).
        calls: AtomicUsize,
        /// Whether the model stands in for SeqCst with fences.
        seq_cst: bool,
    }

    impl Plan {
        fn new(seq_cst: bool) -> Plan {
            Plan {
                counters: Counters::new("loom"),
                idle_waiters: AtomicUsize::new(0),
                calls: AtomicUsize::new(0),
                seq_cst,
            }
        }

        fn seq_cst_fence(&self) {
            if self.seq_cst {
                fence(Ordering::SeqCst);
            }
        }

        /// `Shared::settle` (`SETTLE`), counting in `outcomes`: a
        /// supervisor's own block, or the plan's.
        fn settle(&self, outcomes: &Outcomes, count: usize) {
            outcomes.record_settled(count);
            self.seq_cst_fence();
            if self.idle_waiters.load(Ordering::SeqCst) > 0 && self.counters.is_idle() {
                self.calls.fetch_add(1, Ordering::SeqCst);
            }
        }

        /// One turn of `Plan::wait_idle`'s loop, after `IdleWaiter::register`
        /// (`WAIT_IDLE`, `REGISTER`): `Ok` if it returns, `Err(notified)`
        /// with the `Notified` it would await.
        fn wait_idle_once(&self) -> Result<(), usize> {
            self.idle_waiters.fetch_add(1, Ordering::SeqCst);
            self.seq_cst_fence();
            let notified = self.calls.load(Ordering::SeqCst);
            if self.counters.is_idle() {
                return Ok(());
            }
            Err(notified)
        }

        /// Whether a `Notified` made when `calls` was `notified` is woken.
        fn woken(&self, notified: usize) -> bool {
            self.calls.load(Ordering::SeqCst) != notified
        }
    }

    /// Two running tasks settle on two threads, each in its supervisor's
    /// own block, while `wait_idle` starts on a third and adds the blocks
    /// up. Once both settled the plan is idle, so the waiter must have
    /// returned or been woken (and then its next turn returns).
    fn settlers_and_a_waiter(seq_cst: bool) {
        let plan = Arc::new(Plan::new(seq_cst));
        plan.counters.record_submitted();
        plan.counters.record_submitted();
        let settlers: Vec<_> = (0..2)
            .map(|_| {
                let plan = Arc::clone(&plan);
                let block = plan.counters.lend();
                thread::spawn(move || plan.settle(&block, 1))
            })
            .collect();
        let waited = plan.wait_idle_once();
        for settler in settlers {
            settler.join().unwrap();
        }
        assert!(plan.counters.is_idle());
        if let Err(notified) = waited {
            assert!(
                plan.woken(notified),
                "lost wakeup: wait_idle sleeps on an idle plan"
            );
        }
    }

    #[test]
    fn loom_settle_and_wait_idle_never_lose_the_wakeup() {
        check(EXHAUSTIVE, || settlers_and_a_waiter(true));
    }

    /// The control for the model above: with the SeqCst fences taken out
    /// (the protocol with AcqRel orderings), loom finds the lost wakeup.
    #[test]
    #[should_panic(expected = "lost wakeup")]
    fn loom_without_seqcst_the_idle_wakeup_is_lost() {
        check(EXHAUSTIVE, || settlers_and_a_waiter(false));
    }

    /// A task queued before `wait_idle` starts (counted under the queue
    /// lock, as `Shared::push` does), taken off the queue, run to its end
    /// and settled by a supervisor (as `Running`'s drop settles it, after
    /// the task resolved), while another task is submitted concurrently and
    /// never runs. If `wait_idle` returns, the first task's handle has
    /// resolved and its outcome is counted, as `Counters`' docs promise. If
    /// it does not, no wakeup was lost: the plan is not idle (the second
    /// task is queued), or the waiter was woken.
    #[test]
    fn loom_wait_idle_returns_only_once_earlier_tasks_resolved() {
        check(EXHAUSTIVE, || {
            let plan = Arc::new(Plan::new(true));
            let queue = Arc::new(Mutex::new(Vec::<ProbeTask>::new()));
            let (task, core, _) = probe_task(true);
            {
                let mut queue = queue.lock().unwrap();
                queue.push(task);
                plan.counters.record_submitted();
            }

            let supervisor = {
                let (plan, queue) = (Arc::clone(&plan), Arc::clone(&queue));
                let block = plan.counters.lend();
                thread::spawn(move || {
                    let task = queue.lock().unwrap().pop();
                    if let Some(mut task) = task {
                        task.header().mark_started(1);
                        let waker = AtomicWaker::new();
                        let ended = block_on(poll_fn(|cx| task.poll_run(cx, &block, &waker)));
                        drop(task);
                        plan.settle(&block, 1);
                        ended.handle.wake("loom");
                    }
                })
            };
            let submitter = {
                let (plan, queue) = (Arc::clone(&plan), Arc::clone(&queue));
                thread::spawn(move || {
                    let (task, _, _) = probe_task(true);
                    let mut queue = queue.lock().unwrap();
                    queue.insert(0, task);
                    plan.counters.record_submitted();
                })
            };

            let waited = plan.wait_idle_once();
            if waited.is_ok() {
                assert!(
                    core.header().is_done(),
                    "wait_idle returned before a handle resolved"
                );
                let completed = plan.counters.snapshot(1, 0, 1).completed;
                assert_eq!(completed, 1);
            }
            supervisor.join().unwrap();
            submitter.join().unwrap();
            if let Err(notified) = waited {
                if plan.counters.is_idle() {
                    assert!(
                        plan.woken(notified),
                        "lost wakeup: wait_idle sleeps on an idle plan"
                    );
                }
            }
        });
    }

    /// A running task submits a follow-up task (counted under the queue
    /// lock, as `Shared::push` does) and then finishes and settles, while
    /// `wait_idle` starts. The follow-up was queued before the first task
    /// settled, so the plan was never idle: `is_idle` must not say it was.
    /// This is what its order of loads is for ("settled" first, then
    /// "submitted"): loading "submitted" first, it could see 1 before the
    /// follow-up and then 1 settled after it, and return on a busy plan.
    #[test]
    fn loom_wait_idle_never_returns_between_a_task_and_its_follow_up() {
        check(EXHAUSTIVE, || {
            let plan = Arc::new(Plan::new(true));
            let queue_lock = Arc::new(Mutex::new(()));
            plan.counters.record_submitted();
            let running = {
                let (plan, queue_lock) = (Arc::clone(&plan), Arc::clone(&queue_lock));
                thread::spawn(move || {
                    {
                        let _queue = queue_lock.lock().unwrap();
                        plan.counters.record_submitted();
                    }
                    plan.settle(plan.counters.outcomes(), 1);
                })
            };
            let waited = plan.wait_idle_once();
            assert!(
                waited.is_err(),
                "wait_idle returned while a follow-up task was queued"
            );
            running.join().unwrap();
            assert!(!plan.counters.is_idle());
        });
    }
}

/// Item 4: the supervisor's token alarm and its waker.
mod alarm {
    use super::*;
    use std::task::Wake;

    mirror! { TOKEN_ALARM in "engine/supervisor.rs":
        pub(crate) struct TokenAlarm {
            fired: AtomicBool,
            supervisor: Arc<AtomicWaker>,
        }
    }

    mirror! { ALARM_IMPLS in "engine/supervisor.rs":
        impl TokenAlarm {
            pub(crate) fn fired(&self) -> bool {
                self.fired.load(Ordering::Acquire)
            }
        }

        impl Wake for TokenAlarm {
            fn wake(self: Arc<Self>) {
                self.wake_by_ref();
            }

            fn wake_by_ref(self: &Arc<Self>) {
                self.fired.store(true, Ordering::Release);
                self.supervisor.wake();
            }
        }
    }

    fact!(BIASED_POLL in "engine/supervisor.rs": "
            if !first_poll {
                if let Some(ending) = interrupted(cx) {
                    return Poll::Ready(ending);
                }
            }
            let polled = {
                // The task's own events nest under its span.
                let _entered = span.enter();
                task.poll_run(cx, outcomes, cancel_waker)
            };
            if let Poll::Ready(outcome) = polled {
                return Poll::Ready(Ending::Ran(outcome));
            }
            if std::mem::take(&mut first_poll) {
                if let Some(ending) = interrupted(cx) {
                    return Poll::Ready(ending);
                }
            }
            Poll::Pending");

    #[derive(Debug)]
    enum Ending {
        Ran(Ended),
        Aborted,
    }

    /// A supervisor running a task that never finishes, in its biased poll
    /// (`BIASED_POLL`: the task's first poll first, registering the
    /// supervisor's waker, then the alarm; the alarm first from then on),
    /// while the plan's token is cancelled on another thread, which calls
    /// the alarm's waker (`fired`, then the supervisor's waker) before
    /// `cancel()` returns. The supervisor always ends with `Aborted`: no lost
    /// wakeup (loom reports a deadlock otherwise). And a third thread that
    /// learns the cancel has returned (here an Acquire load of a flag the
    /// canceller sets after it; in the crate, whatever synchronises with the
    /// canceller, such as the plan's queue lock) sees `fired`.
    #[test]
    fn loom_token_alarm_wakes_the_supervisor_and_is_seen_after_the_cancel() {
        check(EXHAUSTIVE, || {
            let waker = Arc::new(AtomicWaker::new());
            let alarm = Arc::new(TokenAlarm {
                fired: AtomicBool::new(false),
                supervisor: Arc::clone(&waker),
            });
            let cancel_returned = Arc::new(AtomicBool::new(false));
            let (task, _core, _) = probe_task(false);
            task.header().mark_started(1);

            let supervisor = {
                let alarm = Arc::clone(&alarm);
                thread::spawn(move || {
                    let outcomes = Outcomes::default();
                    let mut task: Task = task;
                    let mut first_poll = true;
                    let ending = block_on(poll_fn(|cx| {
                        if !first_poll && alarm.fired() {
                            return Poll::Ready(Ending::Aborted);
                        }
                        if let Poll::Ready(outcome) = task.poll_run(cx, &outcomes, &waker) {
                            return Poll::Ready(Ending::Ran(outcome));
                        }
                        if std::mem::take(&mut first_poll) && alarm.fired() {
                            return Poll::Ready(Ending::Aborted);
                        }
                        Poll::Pending
                    }));
                    if let Ending::Ran(outcome) = ending {
                        panic!("the task ended by itself: {outcome:?}");
                    }
                })
            };
            let canceller = {
                let (alarm, cancel_returned) = (Arc::clone(&alarm), Arc::clone(&cancel_returned));
                thread::spawn(move || {
                    alarm.wake_by_ref();
                    cancel_returned.store(true, Ordering::Release);
                })
            };
            if cancel_returned.load(Ordering::Acquire) {
                assert!(alarm.fired(), "a look after the cancel missed the alarm");
            }
            supervisor.join().unwrap();
            canceller.join().unwrap();
        });
    }
}

/// Item 5: the other counts the crate keeps in its own atomics.
mod counts {
    use super::*;

    /// What `Drop for Plan` reaches: the clone count, and a `close` that
    /// records how often it ran.
    struct Shared {
        plans: AtomicUsize,
        closes: AtomicUsize,
    }

    impl Shared {
        fn close(&self) -> bool {
            self.closes.fetch_add(1, Ordering::AcqRel) == 0
        }
    }

    struct Plan {
        shared: Arc<Shared>,
    }

    mirror! { PLAN_CLONE_DROP in "plan.rs":
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
    }

    /// Two clones of a plan dropped on two threads, one of which first
    /// clones its clone: the plan closes exactly once, and never while a
    /// clone is alive.
    #[test]
    fn loom_the_last_plan_clone_dropped_closes_the_plan_once() {
        check(EXHAUSTIVE, || {
            let shared = Arc::new(Shared {
                plans: AtomicUsize::new(1),
                closes: AtomicUsize::new(0),
            });
            let plan = Plan {
                shared: Arc::clone(&shared),
            };
            let other = plan.clone();
            let first = thread::spawn(move || {
                let again = other.clone();
                drop(other);
                assert_eq!(again.shared.closes.load(Ordering::Acquire), 0);
                drop(again);
            });
            let second = thread::spawn(move || drop(plan));
            first.join().unwrap();
            second.join().unwrap();
            assert_eq!(shared.closes.load(Ordering::Acquire), 1);
            assert_eq!(shared.plans.load(Ordering::Acquire), 0);
        });
    }

    /// What the queue lock guards that retirement and spawning decide on:
    /// `State`'s supervisor counts, and a stand-in queue that only counts.
    struct State {
        queue: Queued,
        workers: usize,
        active_supervisors: usize,
        wakeups_in_flight: usize,
        closed: bool,
    }

    /// The queue, as far as these models need it: how many tasks it holds.
    struct Queued(usize);

    impl Queued {
        fn len(&self) -> usize {
            self.0
        }
    }

    mirror_methods! { CLAIMS in "engine/state.rs":
        impl State {
            pub(crate) fn claim_retirement(&mut self) -> bool {
                let surplus = self.active_supervisors > self.workers;
                if surplus {
                    self.active_supervisors -= 1;
                }
                surplus
            }

            pub(crate) fn claim_spawns(&mut self) -> usize {
                let uncovered = self.queue.len().saturating_sub(self.wakeups_in_flight);
                let room = self.workers.saturating_sub(self.active_supervisors);
                let spawns = uncovered.min(room);
                self.active_supervisors += spawns;
                self.wakeups_in_flight += spawns;
                spawns
            }
        }
    }

    /// What `try_pop`, `resize`, `supervisor_exited` and the spawn claims
    /// reach: the locked state and the live count.
    struct Supervisors {
        state: Mutex<State>,
        live_supervisors: AtomicUsize,
        /// How often the last one out cancelled the queue.
        cancelled_queue: AtomicUsize,
    }

    mirror_methods! { CLAIM_SPAWNS in "engine/shared.rs":
        impl Supervisors {
            fn claim_spawns(&self, state: &mut State) -> usize {
                let spawns = state.claim_spawns();
                if spawns > 0 {
                    self.live_supervisors.fetch_add(spawns, Ordering::AcqRel);
                }
                spawns
            }
        }
    }

    mirror_methods! { SUPERVISOR_EXITED in "engine/shared.rs":
        impl Supervisors {
            pub(crate) fn supervisor_exited(&self) {
                if self.live_supervisors.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.cancel_queued();
                }
            }
        }
    }

    fact!(RETIRE_THEN_POP in "engine/shared.rs": "
        let mut state = self.lock();
        state.wakeup_taken(woken);
        if state.claim_retirement() {
            let wake = state.claim_wakeup();
            drop(state);
            if wake {
                self.work_available.notify_one();
            }
            return Some(None);
        }
        match state.queue.pop() {");
    fact!(PUSH_SPAWNS in "engine/shared.rs": "
        let wake_supervisor = state.claim_wakeup();
        let spawns = self.claim_spawns(&mut state);
        drop(state);
        if wake_supervisor {
            self.work_available.notify_one();
        }
        self.spawn_supervisors(spawns);");
    fact!(RESIZE in "engine/shared.rs": "
            let mut state = self.lock();
            if self.closed_in(&state) {
                return false;
            }
            state.workers = workers;");
    fact!(RESIZE_SPAWNS in "engine/shared.rs": "
            (wake, inside_submitters_stuck, self.claim_spawns(&mut state))
        };");

    /// What a supervisor between two tasks did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Look {
        Retired,
        Popped,
        Empty,
    }

    impl Supervisors {
        fn new(workers: usize, active: usize, queued: usize) -> Supervisors {
            Supervisors {
                state: Mutex::new(State {
                    queue: Queued(queued),
                    workers,
                    active_supervisors: active,
                    wakeups_in_flight: 0,
                    closed: false,
                }),
                live_supervisors: AtomicUsize::new(active),
                cancelled_queue: AtomicUsize::new(0),
            }
        }

        fn lock(&self) -> crate::engine::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap()
        }

        /// `Shared::cancel_queued`: closed and drained under the lock.
        fn cancel_queued(&self) {
            {
                let mut state = self.lock();
                state.closed = true;
                state.queue.0 = 0;
            }
            self.cancelled_queue.fetch_add(1, Ordering::AcqRel);
        }

        /// The locked part of `Shared::resize` (`RESIZE`, `RESIZE_SPAWNS`);
        /// returns how many supervisors it claimed.
        fn resize(&self, workers: usize) -> usize {
            let mut state = self.lock();
            state.workers = workers;
            self.claim_spawns(&mut state)
        }

        /// `Shared::push` with no supervisor idle (`PUSH_SPAWNS`), the
        /// closed check first; returns how many supervisors it claimed, or
        /// `None` if the plan was closed.
        fn push(&self) -> Option<usize> {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            state.queue.0 += 1;
            Some(self.claim_spawns(&mut state))
        }

        /// A pop, under the lock: the guarantee the models check is that
        /// no supervisor beyond the target takes a task.
        fn pop(state: &mut State) -> Look {
            if state.queue.len() == 0 {
                return Look::Empty;
            }
            assert!(
                state.active_supervisors <= state.workers,
                "a supervisor beyond the target popped a task"
            );
            state.queue.0 -= 1;
            Look::Popped
        }

        /// A supervisor between two tasks: `Shared::try_pop`'s retirement
        /// and pop in one hold of the lock (`RETIRE_THEN_POP`), then the
        /// exit of one that retired.
        fn between_tasks(&self) -> Look {
            let mut state = self.lock();
            if state.claim_retirement() {
                drop(state);
                self.supervisor_exited();
                return Look::Retired;
            }
            Self::pop(&mut state)
        }

        /// The control: the retirement decided in one hold of the lock and
        /// the pop in another, as `should_retire` did before `try_pop`.
        fn between_tasks_in_two_looks(&self) -> Look {
            if self.lock().claim_retirement() {
                self.supervisor_exited();
                return Look::Retired;
            }
            Self::pop(&mut self.lock())
        }
    }

    /// Two supervisors of a busy plan (two workers, two tasks queued) come
    /// back for their next task while `set_workers(1)` shrinks it. A pop
    /// after the resize sees the new target: whoever pops then is within
    /// it, and one of the two retires instead (the pops' assertion). The
    /// counts end equal and the queue is never cancelled.
    fn shrinking_while_supervisors_look(between_tasks: fn(&Supervisors) -> Look) {
        let supervisors = Arc::new(Supervisors::new(2, 2, 2));
        let looking: Vec<_> = (0..2)
            .map(|_| {
                let supervisors = Arc::clone(&supervisors);
                thread::spawn(move || between_tasks(&supervisors))
            })
            .collect();
        assert_eq!(supervisors.resize(1), 0);
        let looks: Vec<Look> = looking.into_iter().map(|s| s.join().unwrap()).collect();
        let retired = looks.iter().filter(|look| **look == Look::Retired).count();
        assert!(retired <= 1, "both supervisors retired from one surplus");
        let live = supervisors.live_supervisors.load(Ordering::Acquire);
        let active = supervisors.lock().active_supervisors;
        assert_eq!((live, active), (2 - retired, 2 - retired));
        assert_eq!(supervisors.cancelled_queue.load(Ordering::Acquire), 0);
    }

    #[test]
    fn loom_a_resize_racing_a_pop_lets_no_surplus_supervisor_pop() {
        check(EXHAUSTIVE, || {
            shrinking_while_supervisors_look(Supervisors::between_tasks)
        });
    }

    /// The control for the model above: with the retirement decided
    /// apart from the pop, loom finds a supervisor that looked before the
    /// shrink and popped after it (issue 11).
    #[test]
    #[should_panic(expected = "beyond the target popped")]
    fn loom_retiring_apart_from_the_pop_lets_a_surplus_supervisor_pop() {
        check(EXHAUSTIVE, || {
            shrinking_while_supervisors_look(Supervisors::between_tasks_in_two_looks)
        });
    }

    /// Two supervisors of a plan just shrunk from 2 workers to 1 come back
    /// for their next task while `set_workers(2)` grows it back. Exactly
    /// as many retire as the final target needs (one if the shrink was
    /// seen, none otherwise), spawns make up the difference, the counts end
    /// equal (`live == active == workers == 2`), and the "last one out"
    /// never fires on the open plan.
    #[test]
    fn loom_retirement_racing_a_resize_keeps_the_supervisor_counts() {
        check(EXHAUSTIVE, || {
            let supervisors = Arc::new(Supervisors::new(1, 2, 2));
            let looking: Vec<_> = (0..2)
                .map(|_| {
                    let supervisors = Arc::clone(&supervisors);
                    thread::spawn(move || supervisors.between_tasks())
                })
                .collect();
            let spawned = supervisors.resize(2);
            let retired = looking
                .into_iter()
                .map(|supervisor| supervisor.join().unwrap())
                .filter(|look| *look == Look::Retired)
                .count();
            assert!(retired <= 1, "both supervisors retired from one surplus");
            assert_eq!(spawned, retired, "spawns make up for retirements");
            let live = supervisors.live_supervisors.load(Ordering::Acquire);
            let active = supervisors.lock().active_supervisors;
            assert_eq!((live, active), (2, 2));
            assert_eq!(supervisors.cancelled_queue.load(Ordering::Acquire), 0);
        });
    }

    /// The runtime under the plan shuts down: it drops the plan's two
    /// supervisors while a submitter pushes a task, claims a third
    /// supervisor for it (counted live in the same hold of the lock) and
    /// spawns it, which the stopped runtime drops at once. The last one out
    /// cancels the queue, so no task is left queued with nobody to run it:
    /// however the push falls, the plan ends closed and empty, and the
    /// live count at zero. The queue is cancelled once, or twice if the
    /// claim came after the last exit and so revived the count from zero
    /// (harmless: the second finds the queue already drained).
    #[test]
    fn loom_the_queue_is_cancelled_by_the_last_supervisor_out_only() {
        check(EXHAUSTIVE, || {
            let supervisors = Arc::new(Supervisors::new(3, 2, 0));
            let exits: Vec<_> = (0..2)
                .map(|_| {
                    let supervisors = Arc::clone(&supervisors);
                    thread::spawn(move || supervisors.supervisor_exited())
                })
                .collect();
            if let Some(spawns) = supervisors.push() {
                assert_eq!(spawns, 1, "none idle, room for one: a new supervisor");
                supervisors.supervisor_exited();
            }
            for exit in exits {
                exit.join().unwrap();
            }
            assert_eq!(supervisors.live_supervisors.load(Ordering::Acquire), 0);
            let state = supervisors.lock();
            assert!(state.closed);
            assert_eq!(
                state.queue.len(),
                0,
                "a task left queued with nobody to run it"
            );
            drop(state);
            let cancels = supervisors.cancelled_queue.load(Ordering::Acquire);
            assert!((1..=2).contains(&cancels), "{cancels} cancels");
        });
    }
}
