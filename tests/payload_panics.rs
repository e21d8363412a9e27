//! Issue 11, second half: panic payloads that panic when dropped.
//!
//! A panic's payload is any `Any + Send` value, and its destructor is user
//! code that may panic in turn, with a payload that may do the same. The
//! crate catches panics of user code (a future's poll, its destructor, a
//! detached output's destructor), and whatever payload it catches it must
//! also drop where a panic is contained. Each test lets such a payload reach
//! the plan one way and checks that the handle resolves, a next task runs on
//! the only worker, and `wait_idle` returns.
//!
//! Time is paused, and every wait goes through `common::or_hang`, a
//! timeout of an hour only to turn a hang into a failure. The payloads'
//! panics print their messages on stderr: that is the default panic hook,
//! not a failure.

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use taskplan::Plan;

/// A panic payload whose destructor panics with another `Matryoshka`, one
/// level smaller, down to the last, which panics with a message. Three
/// levels outlast the crate's two attempts at dropping what it caught.
///
/// It never panics while the thread is already unwinding, so a test that
/// fails does not abort the whole test binary.
struct Matryoshka {
    level: usize,
    drops: Arc<AtomicUsize>,
}

impl Matryoshka {
    fn new(drops: &Arc<AtomicUsize>) -> Matryoshka {
        Matryoshka {
            level: 3,
            drops: Arc::clone(drops),
        }
    }
}

impl Drop for Matryoshka {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if std::thread::panicking() {
            return;
        }
        if self.level == 0 {
            panic!("the innermost payload's destructor panics");
        }
        std::panic::panic_any(Matryoshka {
            level: self.level - 1,
            drops: Arc::clone(&self.drops),
        });
    }
}

/// A future that returns `value` on its first poll and whose destructor
/// panics with a [`Matryoshka`].
struct ReturnsThenPanicsOnDrop {
    value: Option<u32>,
    drops: Arc<AtomicUsize>,
}

impl Future for ReturnsThenPanicsOnDrop {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(self.value.take().expect("polled once"))
    }
}

impl Drop for ReturnsThenPanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::panic::panic_any(Matryoshka::new(&self.drops));
        }
    }
}

/// A one-worker plan, tracked by the harness.
fn one_worker_plan() -> Plan {
    common::tracked(Plan::builder().workers(1).name("payloads").build().unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_future_whose_destructor_panics_with_a_payload_that_panics_when_dropped_completes() {
    common::harness(async {
        let plan = one_worker_plan();
        let drops = Arc::new(AtomicUsize::new(0));
        let handle = plan
            .submit(ReturnsThenPanicsOnDrop {
                value: Some(7),
                drops: Arc::clone(&drops),
            })
            .await
            .unwrap();
        assert_eq!(common::or_hang(handle, "the handle").await.unwrap(), 7);
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().completed, 2);
        assert!(
            drops.load(Ordering::SeqCst) >= 2,
            "the payloads were dropped"
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_queued_task_whose_destructor_panics_with_such_a_payload_returns_normally() {
    common::harness(async {
        let plan = one_worker_plan();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let blocker = plan
            .submit(async move {
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .await
            .unwrap();
        started_rx.await.unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let queued = plan
            .submit(ReturnsThenPanicsOnDrop {
                value: Some(7),
                drops: Arc::clone(&drops),
            })
            .await
            .unwrap();
        std::panic::catch_unwind(AssertUnwindSafe(|| queued.cancel()))
            .unwrap_or_else(|_| panic!("cancel() unwound with the payload's panic"));
        assert!(
            common::or_hang(queued, "the handle")
                .await
                .unwrap_err()
                .is_cancelled()
        );
        blocker.cancel();
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().cancelled, 2);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_task_that_panics_with_a_payload_that_panics_when_dropped_resolves_as_a_panic() {
    common::harness(async {
        let plan = one_worker_plan();
        let drops = Arc::new(AtomicUsize::new(0));
        let payload_drops = Arc::clone(&drops);
        let handle = plan
            .submit(async move { std::panic::panic_any(Matryoshka::new(&payload_drops)) })
            .await
            .unwrap();
        let error = common::or_hang(handle, "the handle").await.unwrap_err();
        assert!(error.is_panic(), "{error:?}");
        let payload = error.into_panic().downcast::<Matryoshka>().unwrap();
        assert_eq!(payload.level, 3, "the payload the task panicked with");
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the crate dropped none");
        // Dropping it would panic: what to do with it is the user's business.
        std::mem::forget(payload);
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().panicked, 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_detached_task_that_panics_with_a_payload_that_panics_when_dropped_is_settled() {
    common::harness(async {
        let plan = one_worker_plan();
        let drops = Arc::new(AtomicUsize::new(0));
        let payload_drops = Arc::clone(&drops);
        let gate = common::Gate::closed();
        let pass = gate.clone();
        let handle = plan
            .submit(async move {
                pass.pass().await;
                std::panic::panic_any(Matryoshka::new(&payload_drops))
            })
            .await
            .unwrap();
        // Detached: the plan holds the last reference to the payload.
        drop(handle);
        gate.open();
        common::or_hang(plan.wait_idle(), "wait_idle").await;
        assert!(
            drops.load(Ordering::SeqCst) >= 2,
            "the payloads were dropped"
        );
        common::the_plan_keeps_working(&plan).await;
        assert_eq!(plan.stats().panicked, 1);
    })
    .await;
}

/// A task that cancels its own tag and then panics, in the same poll: the
/// cancel wins, and the panic's payload, overruled, is dropped by the plan.
#[tokio::test(start_paused = true)]
async fn a_payload_overruled_by_a_cancel_in_the_same_instant_is_dropped_where_contained() {
    common::harness(async {
        let plan = one_worker_plan();
        let drops = Arc::new(AtomicUsize::new(0));
        let payload_drops = Arc::clone(&drops);
        let inner = plan.clone();
        let handle = plan
            .task(async move {
                assert_eq!(inner.cancel_tag("own"), 1);
                std::panic::panic_any(Matryoshka::new(&payload_drops))
            })
            .tag("own")
            .submit()
            .await
            .unwrap();
        let error = common::or_hang(handle, "the handle").await.unwrap_err();
        assert!(error.is_cancelled(), "{error:?}");
        assert!(
            drops.load(Ordering::SeqCst) >= 2,
            "the payloads were dropped"
        );
        common::the_plan_keeps_working(&plan).await;
        let stats = plan.stats();
        assert_eq!((stats.cancelled, stats.panicked), (1, 0), "{stats:?}");
    })
    .await;
}
