//! One allocation per task: submitting a task allocates its cell and
//! nothing else, and a second, small allocation only for a task that sets a
//! tag, priority, timeout or token. Counted with a counting global
//! allocator, on the test's own thread, while the plan's only worker is
//! parked (so nothing else runs) and the queue has room (so it does not
//! grow).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use taskplan::Plan;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; counting touches only a
// thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations made on this thread by `submits` submits of no-op tasks.
async fn per_task(plan: &Plan, submits: usize, tagged: bool) -> f64 {
    let mut handles = Vec::with_capacity(submits);
    let before = allocations();
    for _ in 0..submits {
        let task = plan.task(async {});
        let task = if tagged {
            task.tag("t").priority(1)
        } else {
            task
        };
        handles.push(task.submit().await.unwrap());
    }
    let made = allocations() - before;
    for handle in handles {
        handle.cancel();
    }
    made as f64 / submits as f64
}

#[tokio::test(flavor = "current_thread")]
async fn a_task_is_one_allocation_and_its_setup_a_second_only_when_set() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).capacity(1024).build().unwrap());
        let gate = common::Gate::closed();
        let pass = gate.clone();
        // Tagged, so that the plan keeps the tag's entry while the tasks
        // measured come and go: it is made once, for the tag's life.
        let parked = plan
            .task(async move { pass.pass().await })
            .tag("t")
            .submit()
            .await
            .unwrap();
        tokio::task::yield_now().await;
        // One round first, for what the queue allocates once and keeps:
        // the map node of priority 1's lane, and room for the entries it
        // keeps beside each task that has a tag or a priority (grown on
        // demand, kept up to the queue's initial capacity).
        per_task(&plan, 500, true).await;
        assert_eq!(per_task(&plan, 500, false).await, 1.0, "a plain task");
        assert_eq!(per_task(&plan, 500, true).await, 2.0, "a tagged task");
        gate.open();
        parked.await.unwrap();
    })
    .await;
}
