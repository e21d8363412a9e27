//! Which plan's task, if any, the current thread is polling.
//!
//! A task that waits on its own plan can wait for itself: `wait_idle` for a
//! plan that is not idle while the caller runs, `shutdown` for a drain that
//! the caller is part of, `submit` for room that only a worker can make
//! while the caller holds one. The supervisor marks each poll of a task
//! with the plan and the task, so those calls can tell such a caller from
//! everyone else and do something other than wait forever (see their docs).
//!
//! A thread-local, set for the length of one poll, rather than a Tokio
//! task-local: it costs two thread-local writes per poll and no wrapper
//! around the user's future. Blocking closures run on other threads and are
//! not marked.

use std::cell::Cell;

use crate::engine::cell::TaskId;
use crate::engine::shared::Shared;

thread_local! {
    /// The plan (by address; compared, never dereferenced) and the task
    /// being polled on this thread.
    static POLLING: Cell<Option<(usize, TaskId)>> = const { Cell::new(None) };
}

/// Marks the current thread as polling `task` of `plan` until dropped.
pub(crate) struct Polling(Option<(usize, TaskId)>);

impl Polling {
    pub(crate) fn enter(plan: &Shared, task: TaskId) -> Polling {
        Polling(POLLING.replace(Some((address(plan), task))))
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        // The previous mark, not `None`: a task's poll may, in principle,
        // poll a task of another plan inside it.
        POLLING.set(self.0);
    }
}

/// The task of `plan` the current thread is polling, if any.
pub(crate) fn task_of(plan: &Shared) -> Option<TaskId> {
    POLLING
        .get()
        .filter(|&(polled, _)| polled == address(plan))
        .map(|(_, task)| task)
}

fn address(plan: &Shared) -> usize {
    std::ptr::from_ref(plan) as usize
}
