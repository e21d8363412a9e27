//! Which plan's task, if any, the current thread is running.
//!
//! A task that waits on its own plan can wait for itself: `wait_idle` for a
//! plan that is not idle while the caller runs, `shutdown` for a drain that
//! the caller is part of, `submit` for room that only a worker can make
//! while the caller holds one. The supervisor marks each poll of a task
//! with the plan and the task, so those calls can tell such a caller from
//! everyone else and do something other than wait forever (see their docs).
//! The same mark tells a cancel of a task's own token made by the task
//! itself from one made elsewhere.
//!
//! A thread-local, set for the length of one poll, rather than a Tokio
//! task-local: it costs two thread-local writes per poll and no wrapper
//! around the user's future. A blocking task's closure runs on another
//! thread, which carries its task's mark for as long as the closure runs.

use std::cell::Cell;

use crate::engine::cell::TaskId;
use crate::engine::shared::Shared;

thread_local! {
    static RUNNING: Cell<Option<Mark>> = const { Cell::new(None) };
}

/// One task of one plan. The plan is known by its address, which is only
/// compared, never dereferenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    plan: usize,
    task: TaskId,
}

impl Mark {
    pub(crate) fn new(plan: &Shared, task: TaskId) -> Mark {
        Mark {
            plan: address(plan),
            task,
        }
    }

    /// The task the current thread runs, if any.
    pub(crate) fn current() -> Option<Mark> {
        RUNNING.get()
    }

    /// Whether the current thread runs this task.
    pub(crate) fn is_current(self) -> bool {
        RUNNING.get() == Some(self)
    }

    /// Marks the current thread as running this task until the guard drops.
    pub(crate) fn enter(self) -> Running {
        Running(RUNNING.replace(Some(self)))
    }
}

/// Marks the current thread as running a task, until dropped.
pub(crate) struct Running(Option<Mark>);

impl Drop for Running {
    fn drop(&mut self) {
        // The previous mark, not `None`: a task's poll may, in principle,
        // poll a task of another plan inside it.
        RUNNING.set(self.0);
    }
}

/// The task of `plan` the current thread runs, if any.
pub(crate) fn task_of(plan: &Shared) -> Option<TaskId> {
    RUNNING
        .get()
        .filter(|mark| mark.plan == address(plan))
        .map(|mark| mark.task)
}

fn address(plan: &Shared) -> usize {
    std::ptr::from_ref(plan) as usize
}
