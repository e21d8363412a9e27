//! Blocking tasks: a synchronous closure run on Tokio's blocking pool while
//! it holds one of the plan's worker slots.
//!
//! The task's future owns the blocking pool's `JoinHandle`. Cancelling the
//! task drops that future, which frees the worker slot and resolves the
//! handle at once; the closure itself cannot be stopped from outside, so it
//! is told through its token and, if still running, counted as abandoned
//! until it returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::current::Mark;
use crate::engine::sync::{AtomicU8, AtomicUsize, Ordering};

/// Counts blocking closures that outlived their task.
#[derive(Default)]
pub(crate) struct Blocking {
    abandoned: AtomicUsize,
}

impl Blocking {
    /// Closures still running whose task has ended.
    pub(crate) fn still_running(&self) -> usize {
        self.abandoned.load(Ordering::Acquire)
    }
}

// Life of one closure, in `Run::state`. RUNNING -> RETURNED when it returns
// first; RUNNING -> ABANDONED when its task ends first, and then the closure
// takes the abandoned count back down when it returns. Whichever side moves
// the state out of RUNNING decides, so the count is neither missed nor
// taken twice.
const RUNNING: u8 = 0;
const RETURNED: u8 = 1;
const ABANDONED: u8 = 2;

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

/// Calls `closure_returned` when dropped: when the closure returns or
/// unwinds.
struct ClosureGuard(Arc<Run>);

impl Drop for ClosureGuard {
    fn drop(&mut self) {
        self.0.closure_returned();
    }
}

enum Stage<C, T> {
    /// Not yet polled: the closure and its token, ready to be handed back.
    Waiting(C, CancellationToken, Arc<Blocking>),
    Running(JoinHandle<T>, Arc<Run>),
    Done,
}

/// The future of a blocking task.
pub(crate) struct BlockingTask<C, T> {
    stage: Stage<C, T>,
}

// Nothing in a `BlockingTask` is ever pinned: the closure is moved out
// before it runs, and `JoinHandle` is `Unpin`.
impl<C, T> Unpin for BlockingTask<C, T> {}

impl<C, T> BlockingTask<C, T>
where
    C: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(closure: C, token: CancellationToken, counts: Arc<Blocking>) -> Self {
        BlockingTask {
            stage: Stage::Waiting(closure, token, counts),
        }
    }

    /// Returns the closure of a task that was refused, never polled.
    pub(crate) fn into_closure(mut self) -> C {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Waiting(closure, ..) => closure,
            _ => unreachable!("a refused task is never polled"),
        }
    }
}

impl<C, T> Future for BlockingTask<C, T>
where
    C: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Stage::Waiting(..) = self.stage {
            let Stage::Waiting(closure, token, counts) =
                std::mem::replace(&mut self.stage, Stage::Done)
            else {
                unreachable!()
            };
            let run = Arc::new(Run {
                state: AtomicU8::new(RUNNING),
                counts,
            });
            let guard = ClosureGuard(Arc::clone(&run));
            // The closure's thread runs the task as much as its supervisor
            // does: its calls into the plan, and its cancels of its own
            // token, are the task's (see `engine/current.rs`).
            let task = Mark::current();
            let join = tokio::task::spawn_blocking(move || {
                let _guard = guard;
                let _running = task.map(Mark::enter);
                closure(token)
            });
            self.stage = Stage::Running(join, run);
        }
        let Stage::Running(join, _) = &mut self.stage else {
            unreachable!("a finished blocking task is never polled again")
        };
        match ready!(Pin::new(join).poll(cx)) {
            Ok(value) => {
                self.stage = Stage::Done;
                Poll::Ready(value)
            }
            // The closure panicked: resume the panic here, in the task, where
            // `Task::poll_run` turns it into a panic error for the handle.
            Err(error) if error.is_panic() => {
                self.stage = Stage::Done;
                std::panic::resume_unwind(error.into_panic())
            }
            // Only a runtime shutting down cancels a blocking task, and that
            // drops this task with its supervisor: nothing is left to wake.
            Err(_) => Poll::Pending,
        }
    }
}

impl<C, T> Drop for BlockingTask<C, T> {
    fn drop(&mut self) {
        if let Stage::Running(_, run) = &self.stage {
            run.task_ended();
        }
    }
}
