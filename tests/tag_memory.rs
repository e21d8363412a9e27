//! Tags must not leak (issue 12, item 4): a plan keeps a tag only while one
//! of its tasks is queued or running, so a service that tags by user or by
//! connection does not grow with every name it has ever seen.
//!
//! Measured with a counting global allocator that counts the live heap bytes
//! allocated and freed on the test's own thread. Each test runs its plan on
//! a current-thread runtime, so everything the plan does happens on that
//! thread, and the tests of this binary can run in parallel without
//! counting each other's bytes. (Not in `tests/tags.rs`, which runs under
//! Miri: a million tasks take hours there.)
//!
//! The baseline is taken after a warm-up of the same workload, as in a
//! memory benchmark, so that storage the plan and the runtime keep for
//! reuse (the queue's slab, the runtime's task lists, one-time thread
//! locals) is in the baseline and not in the delta.
//!
//! Timings on the project's 2-core machine, in a debug build: the million
//! tags take about 4 s with the default features (`cargo test --test
//! tag_memory`), and about 17 s with `--all-features`, where each tag's
//! life begins by registering its `metrics` series.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use taskplan::Plan;

struct Counting;

thread_local! {
    /// Live bytes allocated minus freed on this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // `try_with`: a thread being torn down may allocate after its locals
    // are gone; those bytes are nobody's measurement.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

// SAFETY: every call is passed on to `System` unchanged; counting touches
// only a thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` came from `System` with this layout.
        unsafe { System.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `pointer` came from `System` with this layout.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Distinct tags cycled through the plan, as the issue asks.
const TAGS: usize = 1_000_000;
/// Tags live at once: each batch submits this many tasks, each with a tag of
/// its own, and awaits them all.
const BATCH: usize = 1_000;
/// Batches of the warm-up, before the baseline.
const WARM_UP_BATCHES: usize = 10;
/// How far above the baseline the live heap may end. Kept tags cost about
/// 300 bytes each, so a leak of even one tag in a thousand of the million
/// breaks this bound.
const BOUND: isize = 64 << 10;

/// Submits one batch of tasks tagged `user-{n}` for the `BATCH` numbers
/// from `first` on, awaits them all, and waits until the plan is idle.
async fn cycle_batch(plan: &Plan, first: usize) {
    let mut handles = Vec::with_capacity(BATCH);
    for n in first..first + BATCH {
        let handle = plan
            .task(async move { n })
            .tag(format!("user-{n}"))
            .try_submit()
            .expect("the queue has room for a batch");
        handles.push(handle);
    }
    for (n, handle) in (first..).zip(handles) {
        assert_eq!(handle.await.unwrap(), n);
    }
    plan.wait_idle().await;
}

/// A million distinct owned tags, each used by one task that has ended:
/// the plan keeps none of them. Fails on a plan that keeps every tag it has
/// seen (there, the live heap ends about 300 MB above the baseline).
#[tokio::test(flavor = "current_thread")]
async fn a_million_distinct_tags_whose_tasks_ended_leave_the_heap_where_it_was() {
    common::harness_within(std::time::Duration::from_secs(300), async {
        let plan = common::tracked(Plan::builder().workers(4).capacity(BATCH).build().unwrap());
        let started = Instant::now();
        for batch in 0..WARM_UP_BATCHES {
            cycle_batch(&plan, batch * BATCH).await;
        }
        let baseline = live();
        for batch in WARM_UP_BATCHES..TAGS / BATCH {
            cycle_batch(&plan, batch * BATCH).await;
        }
        let after = live();
        let stats = plan.stats();
        println!(
            "{TAGS} distinct tags in {:.2?}; live bytes: baseline {baseline}, after {after} \
             ({:+})",
            started.elapsed(),
            after - baseline
        );
        assert_eq!(
            (stats.submitted, stats.completed),
            (TAGS, TAGS),
            "{stats:?}"
        );
        assert!(
            after - baseline < BOUND,
            "{} bytes above the baseline after {TAGS} distinct tags whose tasks all ended",
            after - baseline
        );
        // The last batch's tags are forgotten too.
        let last = plan.tag_stats(&format!("user-{}", TAGS - 1));
        assert_eq!(last.submitted, 0, "{last:?}");
    })
    .await;
}

/// Refused submits register nothing: a submit to a full plan (with
/// `try_submit`), a `submit` dropped while it waits for room, and submits
/// to a closed plan (both kinds), each with a tag never seen before, leave
/// the heap where it was. Fails on a plan that registers a task's tag
/// before it knows the task will be queued.
#[tokio::test(flavor = "current_thread")]
async fn refused_submits_leave_no_tag_behind() {
    const REFUSED: usize = 2_000;
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let running = plan.submit(async move { pass.pass().await }).await.unwrap();
        tokio::task::yield_now().await;
        let queued = plan.try_submit(async {}).unwrap();
        assert_eq!(plan.stats().queued, 1, "the plan is full");

        // Each kind of refusal, once before the baseline, so that whatever
        // a first refusal allocates for good (tracing call sites, say) is
        // in it.
        let refuse_full = |n: usize| {
            let refused = plan.task(async {}).tag(format!("full-{n}")).try_submit();
            assert!(refused.unwrap_err().is_full());
        };
        let abandon_waiting = |n: usize| {
            let waiting = plan.task(async {}).tag(format!("waiting-{n}")).submit();
            let mut waiting = std::pin::pin!(waiting);
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(waiting.as_mut().poll(&mut context).is_pending(), "no room");
        };
        refuse_full(0);
        abandon_waiting(0);
        let baseline = live();
        for n in 1..=REFUSED {
            refuse_full(n);
            abandon_waiting(n);
        }
        let full_after = live();
        println!(
            "refused when full: live bytes: baseline {baseline}, after {full_after} ({:+})",
            full_after - baseline
        );
        assert!(
            full_after - baseline < BOUND,
            "{} bytes above the baseline after {REFUSED} refused and {REFUSED} abandoned \
             submits of new tags",
            full_after - baseline
        );

        plan.close();
        gate.open();
        running.await.unwrap();
        queued.await.unwrap();
        plan.wait_idle().await;
        let refuse_closed = |n: usize| {
            let refused = plan.task(async {}).tag(format!("closed-{n}")).try_submit();
            assert!(refused.unwrap_err().is_closed());
        };
        refuse_closed(0);
        assert!(
            plan.task(async {})
                .tag("closed-waiting-0")
                .submit()
                .await
                .unwrap_err()
                .is_closed()
        );
        let baseline = live();
        for n in 1..=REFUSED {
            refuse_closed(n);
            let refused = plan
                .task(async {})
                .tag(format!("closed-waiting-{n}"))
                .submit()
                .await;
            assert!(refused.unwrap_err().is_closed());
        }
        let closed_after = live();
        println!(
            "refused when closed: live bytes: baseline {baseline}, after {closed_after} ({:+})",
            closed_after - baseline
        );
        assert!(
            closed_after - baseline < BOUND,
            "{} bytes above the baseline after {} refused submits of new tags to a closed plan",
            closed_after - baseline,
            2 * REFUSED
        );
    })
    .await;
}
