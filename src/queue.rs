//! The queue of tasks that have not started.
//!
//! Tasks live in a slab and are threaded on an intrusive doubly linked list
//! by slab key. Unlike a channel, this lets a queued task be unlinked in O(1)
//! when it is cancelled (so its future is dropped and its room freed at once,
//! not when a supervisor would have reached it), and it lets later features
//! relink queued tasks, for priorities and promotion, without touching the
//! rest of the queue. The queue is not synchronized itself: it lives inside
//! the plan's mutex.

use slab::Slab;

use crate::task::BoxedTask;

/// Marks the end of a list; slab keys never reach it.
const NIL: usize = usize::MAX;

struct Node {
    task: BoxedTask,
    previous: usize,
    next: usize,
}

/// A FIFO of queued tasks with O(1) removal by key.
pub(crate) struct Queue {
    nodes: Slab<Node>,
    head: usize,
    tail: usize,
}

impl Queue {
    pub(crate) fn with_capacity(capacity: usize) -> Queue {
        Queue {
            nodes: Slab::with_capacity(capacity),
            head: NIL,
            tail: NIL,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Appends a task and records its key in its header.
    pub(crate) fn push_back(&mut self, task: BoxedTask) {
        let previous = self.tail;
        let slot = self.nodes.vacant_entry();
        let key = slot.key();
        task.header().set_queue_key(key);
        slot.insert(Node {
            task,
            previous,
            next: NIL,
        });
        match previous {
            NIL => self.head = key,
            previous => self.nodes[previous].next = key,
        }
        self.tail = key;
    }

    /// Takes the first task and marks it started.
    pub(crate) fn pop_front(&mut self) -> Option<BoxedTask> {
        if self.head == NIL {
            return None;
        }
        let task = self.unlink(self.head);
        task.header().mark_started();
        Some(task)
    }

    /// Unlinks the task at `key` so it can be dropped instead of run.
    ///
    /// The caller must have seen the task as queued with the lock held, which
    /// guarantees `key` still belongs to it.
    pub(crate) fn remove(&mut self, key: usize) -> BoxedTask {
        let task = self.unlink(key);
        task.header().mark_unqueued_for_cancel();
        task
    }

    /// Takes every queued task, to be dropped instead of run.
    pub(crate) fn drain(&mut self) -> Vec<BoxedTask> {
        let mut tasks = Vec::with_capacity(self.len());
        while self.head != NIL {
            tasks.push(self.remove(self.head));
        }
        tasks
    }

    fn unlink(&mut self, key: usize) -> BoxedTask {
        let Node {
            task,
            previous,
            next,
        } = self.nodes.remove(key);
        match previous {
            NIL => self.head = next,
            previous => self.nodes[previous].next = next,
        }
        match next {
            NIL => self.tail = previous,
            next => self.nodes[next].previous = previous,
        }
        task
    }
}
