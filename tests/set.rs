//! Issue 12, item 3: `TaskSet`, handles whose results come back in the
//! order the tasks finish.
//!
//! The order of ends is driven by the tests, never left to timing: each task
//! waits for its own release (a oneshot), or a single worker runs queued
//! tasks in priority order behind a gate.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use common::{DropFlag, Gate};
use futures_util::{Stream, StreamExt};
use taskplan::{Plan, TaskHandle, TaskSet};
use tokio::sync::{mpsc, oneshot};

/// A task that returns `value` once released, and the release.
fn held<T: Send + 'static>(
    value: T,
) -> (
    oneshot::Sender<()>,
    impl Future<Output = T> + Send + 'static,
) {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let task = async move {
        release_rx.await.expect("released, not dropped");
        value
    };
    (release_tx, task)
}

/// Sends once on a channel for every wake: lets a test wait for the event
/// "the set was woken" without polling it.
struct WakeSignal(mpsc::UnboundedSender<()>);

impl Wake for WakeSignal {
    fn wake(self: Arc<Self>) {
        let _ = self.0.send(());
    }
}

async fn results_come_as_the_tasks_finish_while_the_set_waits() {
    let plan = common::tracked(Plan::builder().workers(3).build().unwrap());
    let mut set = TaskSet::new();
    let mut releases = Vec::new();
    for name in ["added first", "added second", "added third"] {
        let (release, task) = held(name);
        set.submit(&plan, task).await.unwrap();
        releases.push(Some(release));
    }
    assert_eq!(set.len(), 3);
    // Released third, first, second: each release lets one task end, and
    // the set, waiting, must hand back exactly that one.
    for (released, expected, left) in [
        (2, "added third", 2),
        (0, "added first", 1),
        (1, "added second", 0),
    ] {
        releases[released].take().unwrap().send(()).unwrap();
        assert_eq!(set.join_next().await.unwrap().unwrap(), expected);
        assert_eq!(set.len(), left);
    }
    assert!(set.is_empty());
    assert!(set.join_next().await.is_none());
}

/// The tasks end while nobody polls the set, in an order unlike the order
/// they were added: the set still hands them back in the order they ended,
/// and a handle added after its task ended comes after them.
async fn results_come_in_the_order_the_tasks_finished_even_unpolled() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    // Holds the only worker, so that what follows queues, and then runs one
    // task at a time in priority order.
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let blocker_gate = gate.clone();
    let blocker = plan
        .submit(async move {
            started_tx.send(()).unwrap();
            blocker_gate.pass().await
        })
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    let mut set = TaskSet::new();
    for (name, priority) in [("low", 0), ("high", 2), ("middle", 1)] {
        set.push(
            plan.task(async move { name })
                .priority(priority)
                .try_submit()
                .unwrap(),
        );
    }
    let added_late = plan.task(async { "added late" }).priority(-1);
    let added_late = added_late.try_submit().unwrap();
    // Runs last: once it has ended, every task before it has ended and
    // resolved its handle, as one worker ends a task before taking the next.
    let last = plan.task(async {}).priority(-2).try_submit().unwrap();
    gate.open();
    blocker.await.unwrap();
    last.await.unwrap();
    set.push(added_late);

    let mut order = Vec::new();
    while let Some(result) = set.join_next().await {
        order.push(result.unwrap());
    }
    assert_eq!(order, ["high", "middle", "low", "added late"]);
}

async fn join_next_with_id_names_the_task_that_finished() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let (release_slow, slow) = held("slow");
    let slow_id = set.submit(&plan, slow).await.unwrap();
    let quick_id = set.submit(&plan, async { "quick" }).await.unwrap();
    assert_ne!(slow_id, quick_id);
    assert_eq!(
        set.join_next_with_id().await.unwrap().unwrap(),
        (quick_id, "quick")
    );
    release_slow.send(()).unwrap();
    assert_eq!(
        set.join_next_with_id().await.unwrap().unwrap(),
        (slow_id, "slow")
    );
    assert!(set.join_next_with_id().await.is_none());
}

async fn an_empty_set_yields_none_every_way_and_takes_members_again() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut set = TaskSet::<u8>::default();
    assert!(set.is_empty());
    assert!(set.join_next().await.is_none());
    assert!(set.join_next_with_id().await.is_none());
    assert!(set.try_join_next().is_none());
    assert!(set.next().await.is_none());
    // Emptied, not ended: a new member is yielded as usual.
    set.submit(&plan, async { 5 }).await.unwrap();
    assert_eq!(set.next().await.unwrap().unwrap(), 5);
    assert!(set.join_next().await.is_none());
}

async fn try_join_next_takes_a_finished_result_and_never_waits() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let (release, held_task) = held("held");
    set.submit(&plan, held_task).await.unwrap();
    assert!(set.try_join_next().is_none(), "nothing has finished");

    // A handle whose task finished before it was added, on a plan of its
    // own, whose `wait_idle` the held task does not hold up.
    let other_plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let also_finished = other_plan.submit(async { "also" }).await.unwrap();
    other_plan.wait_idle().await;
    set.push(also_finished);
    assert_eq!(set.len(), 2);
    assert_eq!(set.try_join_next().unwrap().unwrap(), "also");
    assert!(set.try_join_next().is_none(), "the held task still runs");
    assert_eq!(set.len(), 1);

    // The held task's end reaches the set while nobody waits in it: the
    // wake of a `join_next` dropped before is the event to wait for.
    let (woken_tx, mut woken_rx) = mpsc::unbounded_channel();
    let waker = Waker::from(Arc::new(WakeSignal(woken_tx)));
    let mut joining = Box::pin(set.join_next());
    assert!(
        joining
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(joining);
    release.send(()).unwrap();
    woken_rx.recv().await.unwrap();
    assert_eq!(set.try_join_next().unwrap().unwrap(), "held");
    assert!(set.is_empty());
    assert!(set.try_join_next().is_none());
}

/// `cancel_all` cancels the members, queued or running, and nothing else:
/// a task of the same plan outside the set completes, and the plan stays
/// open. A member that finished first keeps its result.
async fn cancel_all_cancels_exactly_the_members() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let early = set.submit(&plan, async { "early" }).await.unwrap();
    plan.wait_idle().await;

    let gate = Gate::closed();
    let outsider_gate = gate.clone();
    let outsider = plan
        .submit(async move {
            outsider_gate.pass().await;
            "outsider"
        })
        .await
        .unwrap();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let running = set
        .submit(&plan, async move {
            started_tx.send(()).unwrap();
            std::future::pending::<&str>().await
        })
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    // Both workers are taken: this one waits in the queue.
    let queued = set
        .submit(&plan, std::future::pending::<&str>())
        .await
        .unwrap();

    set.cancel_all();
    assert_eq!(
        plan.stats().queued,
        0,
        "a queued member is cancelled at once"
    );
    assert_eq!(set.len(), 3, "cancelled members stay until joined");
    let mut cancelled = HashSet::new();
    while let Some(result) = set.join_next_with_id().await {
        match result {
            Ok((id, output)) => assert_eq!((id, output), (early, "early")),
            Err(error) => {
                assert!(error.is_cancelled(), "{error}");
                cancelled.insert(error.id());
            }
        }
    }
    assert_eq!(cancelled, HashSet::from([running, queued]));

    assert!(!plan.is_closed());
    assert!(!outsider.is_finished());
    gate.open();
    assert_eq!(outsider.await.unwrap(), "outsider");
    assert_eq!(plan.submit(async { 1 }).await.unwrap().await.unwrap(), 1);
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (3, 2), "{stats:?}");
}

async fn a_panicking_member_comes_back_as_a_panic_and_the_rest_follow() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut set = TaskSet::new();
    let panicked = set
        .submit(&plan, async { panic!("member failed") })
        .await
        .unwrap();
    set.submit(&plan, async { "next" }).await.unwrap();
    let error = set.join_next().await.unwrap().unwrap_err();
    assert!(error.is_panic());
    assert_eq!(error.id(), panicked);
    assert_eq!(
        *error.into_panic().downcast::<&str>().unwrap(),
        "member failed"
    );
    assert_eq!(set.join_next().await.unwrap().unwrap(), "next");
}

/// A `join_next` future dropped after a result reached the set, but before
/// it was polled again, leaves that result in the set.
async fn a_dropped_join_next_loses_no_result() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let (release_first, first) = held("first");
    let (release_second, second) = held("second");
    set.submit(&plan, first).await.unwrap();
    set.submit(&plan, second).await.unwrap();

    let (woken_tx, mut woken_rx) = mpsc::unbounded_channel();
    let waker = Waker::from(Arc::new(WakeSignal(woken_tx)));
    let mut joining = Box::pin(set.join_next());
    assert!(
        joining
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    release_first.send(()).unwrap();
    woken_rx.recv().await.unwrap(); // "first" has reached the set
    drop(joining);

    assert_eq!(set.len(), 2);
    assert_eq!(set.join_next().await.unwrap().unwrap(), "first");
    release_second.send(()).unwrap();
    assert_eq!(set.join_next().await.unwrap().unwrap(), "second");
    assert!(set.join_next().await.is_none());
}

/// Whoever waits in `poll_join_next` is woken when a handle whose task has
/// already ended is added: no member's end will wake it for that result.
async fn a_waiting_poller_is_woken_when_a_finished_handle_is_added() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut set = TaskSet::new();
    let (release, held_task) = held("held");
    set.submit(&plan, held_task).await.unwrap();
    let (woken_tx, mut woken_rx) = mpsc::unbounded_channel();
    let waker = Waker::from(Arc::new(WakeSignal(woken_tx)));
    assert!(
        set.poll_join_next(&mut Context::from_waker(&waker))
            .is_pending()
    );

    let other_plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let ended = other_plan.submit(async { "ended" }).await.unwrap();
    other_plan.wait_idle().await;
    set.push(ended);
    assert!(
        woken_rx.try_recv().is_ok(),
        "the waiting poller was not woken"
    );
    let next = set.poll_join_next(&mut Context::from_waker(&waker));
    assert!(matches!(next, Poll::Ready(Some(Ok("ended")))), "{next:?}");
    release.send(()).unwrap();
    assert_eq!(set.join_next().await.unwrap().unwrap(), "held");
}

/// `join_next` as a `select!` branch that often loses: every result still
/// comes back exactly once. A task may only end after the other branch won,
/// so `join_next` futures are dropped while tasks end around them.
async fn join_next_in_a_losing_select_branch_loses_no_result() {
    const TASKS: u32 = 300;
    let plan = common::tracked(Plan::builder().workers(3).build().unwrap());
    let mut set = TaskSet::new();
    let gate = Gate::closed();
    for n in 0..TASKS {
        let gate = gate.clone();
        set.submit(&plan, async move {
            gate.pass().await;
            n
        })
        .await
        .unwrap();
    }
    let mut seen = HashSet::new();
    let mut dropped = 0;
    while !set.is_empty() {
        tokio::select! {
            biased;
            () = tokio::task::yield_now() => {
                dropped += 1;
                gate.let_through(1);
            }
            joined = set.join_next() => {
                let n = joined.unwrap().unwrap();
                assert!(seen.insert(n), "{n} came back twice");
            }
        }
    }
    assert_eq!(seen.len(), TASKS as usize);
    assert!(dropped >= TASKS, "each task waited for a dropped join_next");
}

async fn the_stream_yields_what_join_next_would() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let (release_slow, slow) = held(1);
    set.submit(&plan, slow).await.unwrap();
    set.submit(&plan, async { 2 }).await.unwrap();
    assert_eq!(set.size_hint(), (2, Some(2)));
    assert_eq!(set.next().await.unwrap().unwrap(), 2);
    release_slow.send(()).unwrap();
    assert_eq!(set.next().await.unwrap().unwrap(), 1);
    assert!(set.next().await.is_none());
    assert_eq!(set.size_hint(), (0, Some(0)));

    let panicked = set.submit(&plan, async { panic!("in a stream") }).await;
    let id = panicked.unwrap();
    let errors: Vec<_> = (&mut set).collect().await;
    assert_eq!(errors.len(), 1);
    let error = errors.into_iter().next().unwrap().unwrap_err();
    assert!(error.is_panic() && error.id() == id);
}

/// Dropping a set cancels its members, running or queued, like dropping a
/// `JoinSet`.
async fn dropping_the_set_cancels_its_members() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let mut set = TaskSet::new();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (ended_tx, ended_rx) = oneshot::channel::<()>();
    set.submit(&plan, async move {
        let _ended = ended_tx; // dropped with the future: ends `ended_rx`
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await
    })
    .await
    .unwrap();
    started_rx.recv().await.unwrap();
    let (queued_flag, queued_dropped) = DropFlag::new();
    set.submit(&plan, async move {
        let _flag = queued_flag;
    })
    .await
    .unwrap();

    drop(set);
    // A queued task's future is dropped by the cancel itself.
    assert!(queued_dropped.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(plan.stats().queued, 0);
    ended_rx.await.unwrap_err(); // the running one's future was dropped
    plan.wait_idle().await;
    assert_eq!(plan.stats().cancelled, 2);
    assert!(!plan.is_closed());
}

/// After `detach_all`, the members run on and dropping the set cancels
/// nothing.
async fn detach_all_lets_the_members_run_on() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let gate = Gate::closed();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for n in 0..2 {
        let (gate, done_tx) = (gate.clone(), done_tx.clone());
        set.submit(&plan, async move {
            gate.pass().await;
            done_tx.send(n).unwrap();
        })
        .await
        .unwrap();
    }
    drop(done_tx);
    set.detach_all();
    assert!(set.is_empty());
    assert!(set.join_next().await.is_none());
    drop(set);
    gate.open();
    let mut done = vec![done_rx.recv().await.unwrap(), done_rx.recv().await.unwrap()];
    done.sort();
    assert_eq!(done, [0, 1]);
    plan.wait_idle().await;
    let stats = plan.stats();
    assert_eq!((stats.completed, stats.cancelled), (2, 0), "{stats:?}");
}

async fn ten_thousand_tasks_come_back_exactly_once_each() {
    const TASKS: usize = 10_000;
    let plan = common::tracked(Plan::builder().workers(4).capacity(256).build().unwrap());
    let mut set = TaskSet::new();
    for n in 0..TASKS {
        set.submit(&plan, async move { n }).await.unwrap();
    }
    let mut seen = vec![false; TASKS];
    let mut count = 0;
    while let Some(result) = set.join_next().await {
        let n = result.unwrap();
        assert!(!seen[n], "{n} came back twice");
        seen[n] = true;
        count += 1;
        assert_eq!(set.len(), TASKS - count);
    }
    assert_eq!(count, TASKS);
    assert!(seen.iter().all(|&seen| seen));
    assert_eq!(plan.stats().completed, TASKS);
}

async fn join_all_returns_every_result_failures_included() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut set = TaskSet::new();
    let cancelled = plan.submit(std::future::pending::<u32>()).await.unwrap();
    let cancelled_id = cancelled.id();
    cancelled.cancel();
    set.push(cancelled);
    set.submit(&plan, async { 4 }).await.unwrap();
    set.submit(&plan, async { 6 }).await.unwrap();
    let results = set.join_all().await;
    assert_eq!(results.len(), 3);
    let mut outputs = Vec::new();
    for result in results {
        match result {
            Ok(output) => outputs.push(output),
            Err(error) => assert!(error.is_cancelled() && error.id() == cancelled_id),
        }
    }
    outputs.sort();
    assert_eq!(outputs, [4, 6]);
}

async fn handles_collect_and_extend_into_a_set() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let mut handles: Vec<TaskHandle<u32>> = Vec::new();
    for n in 0..3 {
        handles.push(plan.submit(async move { n }).await.unwrap());
    }
    let mut set: TaskSet<u32> = handles.into_iter().collect();
    assert_eq!(set.len(), 3);
    let more = vec![
        plan.submit(async { 3 }).await.unwrap(),
        plan.submit(async { 4 }).await.unwrap(),
    ];
    set.extend(more);
    assert_eq!(set.len(), 5);
    assert_eq!(format!("{set:?}"), "TaskSet { len: 5 }");
    let mut outputs: Vec<u32> = set.map(Result::unwrap).collect().await;
    outputs.sort();
    assert_eq!(outputs, [0, 1, 2, 3, 4]);
}

async fn a_refused_submit_hands_the_task_back_and_leaves_the_set_alone() {
    let plan = common::tracked(Plan::builder().workers(1).capacity(1).build().unwrap());
    let mut set = TaskSet::new();
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let running_gate = gate.clone();
    set.submit(&plan, async move {
        started_tx.send(()).unwrap();
        running_gate.pass().await;
        "running"
    })
    .await
    .unwrap();
    started_rx.recv().await.unwrap();
    set.try_submit(&plan, async { "queued" }).unwrap();
    let full = set.try_submit(&plan, async { "refused" }).unwrap_err();
    assert!(full.is_full());
    assert_eq!(full.into_inner().await, "refused");
    assert_eq!(set.len(), 2);

    plan.close();
    let closed = set.submit(&plan, async { "too late" }).await.unwrap_err();
    assert!(closed.is_closed());
    assert_eq!(closed.into_inner().await, "too late");
    let closed = set.try_submit(&plan, async { "too late" }).unwrap_err();
    assert!(closed.is_closed());
    assert_eq!(set.len(), 2);

    gate.open();
    let mut outputs: Vec<&str> = set.map(Result::unwrap).collect().await;
    outputs.sort();
    assert_eq!(outputs, ["queued", "running"]);
}

on_both_runtimes!(
    results_come_as_the_tasks_finish_while_the_set_waits,
    results_come_in_the_order_the_tasks_finished_even_unpolled,
    join_next_with_id_names_the_task_that_finished,
    an_empty_set_yields_none_every_way_and_takes_members_again,
    try_join_next_takes_a_finished_result_and_never_waits,
    cancel_all_cancels_exactly_the_members,
    a_panicking_member_comes_back_as_a_panic_and_the_rest_follow,
    a_dropped_join_next_loses_no_result,
    a_waiting_poller_is_woken_when_a_finished_handle_is_added,
    join_next_in_a_losing_select_branch_loses_no_result,
    the_stream_yields_what_join_next_would,
    dropping_the_set_cancels_its_members,
    detach_all_lets_the_members_run_on,
    ten_thousand_tasks_come_back_exactly_once_each,
    join_all_returns_every_result_failures_included,
    handles_collect_and_extend_into_a_set,
    a_refused_submit_hands_the_task_back_and_leaves_the_set_alone,
);

#[test]
fn a_set_has_the_promised_traits() {
    fn assert_traits<S>()
    where
        S: Send + Sync + Unpin + Default + std::fmt::Debug + futures_util::Stream,
    {
    }
    fn assert_send<S: Send>() {}
    assert_traits::<TaskSet<String>>();
    // `Send` with an output that is only `Send`.
    assert_send::<TaskSet<std::cell::Cell<u8>>>();
}
