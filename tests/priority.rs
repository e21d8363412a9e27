//! Issue 0.2, semantics 1 and 2: priorities and promotion.

mod common;

use common::Gate;
use taskplan::{Plan, TaskHandle};
use tokio::sync::mpsc;

/// One worker, held busy until the returned gate opens, so everything
/// submitted meanwhile stays queued.
async fn held_plan() -> (Plan, Gate, TaskHandle<()>) {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    let gate = Gate::closed();
    let (started_tx, mut started_rx) = common::started_channel();
    let blocker_gate = gate.clone();
    let blocker = plan
        .submit(async move {
            started_tx.send(0).unwrap();
            blocker_gate.pass().await;
        })
        .await
        .unwrap();
    started_rx.recv().await.unwrap();
    (plan, gate, blocker)
}

/// Queues a task that reports `label` when it starts.
fn queue(
    plan: &Plan,
    order: &mpsc::UnboundedSender<&'static str>,
    label: &'static str,
    tag: &'static str,
    priority: i32,
) {
    let order = order.clone();
    plan.task(async move { order.send(label).unwrap() })
        .tag(tag)
        .priority(priority)
        .try_submit()
        .unwrap();
}

/// Releases the worker and returns the labels in the order they started.
async fn run_order(
    plan: &Plan,
    gate: Gate,
    blocker: TaskHandle<()>,
    mut order: mpsc::UnboundedReceiver<&'static str>,
) -> Vec<&'static str> {
    gate.open();
    blocker.await.unwrap();
    plan.wait_idle().await;
    let mut labels = Vec::new();
    while let Ok(label) = order.try_recv() {
        labels.push(label);
    }
    labels
}

async fn higher_priority_starts_first_and_equal_priorities_in_order() {
    let (plan, gate, blocker) = held_plan().await;
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    queue(&plan, &order_tx, "0a", "x", 0);
    queue(&plan, &order_tx, "5a", "x", 5);
    queue(&plan, &order_tx, "-1", "x", -1);
    queue(&plan, &order_tx, "5b", "x", 5);
    queue(&plan, &order_tx, "0b", "x", 0);
    queue(&plan, &order_tx, "max", "x", i32::MAX);
    queue(&plan, &order_tx, "min", "x", i32::MIN);
    queue(&plan, &order_tx, "5c", "x", 5);
    assert_eq!(
        run_order(&plan, gate, blocker, order_rx).await,
        ["max", "5a", "5b", "5c", "0a", "0b", "-1", "min"]
    );
}

async fn equal_priorities_are_fifo_under_many_concurrent_submitters() {
    const SUBMITTERS: usize = 8;
    const EACH: usize = 50;
    let (plan, gate, blocker) = held_plan().await;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let mut submitters = Vec::new();
    for submitter in 0..SUBMITTERS {
        let (plan, started_tx) = (plan.clone(), started_tx.clone());
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for index in 0..EACH {
                let started_tx = started_tx.clone();
                let handle = plan
                    .task(async move { started_tx.send((submitter, index)).unwrap() })
                    .priority(3)
                    .submit()
                    .await
                    .unwrap();
                ids.push(handle.id());
            }
            ids
        }));
    }
    let mut id_of = std::collections::HashMap::new();
    for (submitter, task) in submitters.into_iter().enumerate() {
        for (index, id) in task.await.unwrap().into_iter().enumerate() {
            id_of.insert((submitter, index), id);
        }
    }
    gate.open();
    blocker.await.unwrap();
    plan.wait_idle().await;

    let mut started = Vec::new();
    while let Ok(label) = started_rx.try_recv() {
        started.push(label);
    }
    assert_eq!(started.len(), SUBMITTERS * EACH);
    // Ids are given in queue order, so FIFO means: they start by id.
    let ids: Vec<_> = started.iter().map(|label| id_of[label]).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "started out of order: {ids:?}"
    );
    // And each submitter's own tasks start in the order it submitted them.
    for submitter in 0..SUBMITTERS {
        let own: Vec<_> = started
            .iter()
            .filter(|(s, _)| *s == submitter)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(own, (0..EACH).collect::<Vec<_>>());
    }
}

async fn promote_moves_a_tag_to_the_front_keeping_its_order() {
    let (plan, gate, blocker) = held_plan().await;
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    queue(&plan, &order_tx, "bg1", "bg", 0);
    queue(&plan, &order_tx, "ui1", "ui", 0);
    queue(&plan, &order_tx, "urgent-bg", "bg", 10);
    queue(&plan, &order_tx, "ui2", "ui", 0);
    queue(&plan, &order_tx, "ui-high", "ui", 5);
    queue(&plan, &order_tx, "bg2", "bg", 0);
    assert_eq!(plan.promote("ui"), 3);
    // Submitted after the promotion: queues as usual.
    queue(&plan, &order_tx, "ui-late", "ui", 0);
    assert_eq!(
        run_order(&plan, gate, blocker, order_rx).await,
        // The promoted ones first, in the order they would have started.
        [
            "ui-high",
            "ui1",
            "ui2",
            "urgent-bg",
            "bg1",
            "bg2",
            "ui-late"
        ]
    );
}

async fn the_latest_promotion_goes_first() {
    let (plan, gate, blocker) = held_plan().await;
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    queue(&plan, &order_tx, "a1", "a", 0);
    queue(&plan, &order_tx, "b1", "b", 0);
    queue(&plan, &order_tx, "c1", "c", 0);
    queue(&plan, &order_tx, "a2", "a", 0);
    queue(&plan, &order_tx, "b2", "b", 0);
    assert_eq!(plan.promote("a"), 2);
    assert_eq!(plan.promote("b"), 2);
    assert_eq!(
        run_order(&plan, gate, blocker, order_rx).await,
        ["b1", "b2", "a1", "a2", "c1"]
    );
}

async fn promoting_again_keeps_the_order_across_tiers() {
    let (plan, gate, blocker) = held_plan().await;
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    queue(&plan, &order_tx, "a1", "a", 0);
    queue(&plan, &order_tx, "b1", "b", 0);
    assert_eq!(plan.promote("a"), 1);
    queue(&plan, &order_tx, "a2", "a", 9);
    assert_eq!(plan.promote("b"), 1);
    // a1 was promoted before a2 existed, so it would start first; promoting
    // "a" again keeps that, although a2 has the higher priority.
    assert_eq!(plan.promote("a"), 2);
    assert_eq!(
        run_order(&plan, gate, blocker, order_rx).await,
        ["a1", "a2", "b1"]
    );
}

async fn promote_counts_only_queued_tasks() {
    let (plan, gate, blocker) = held_plan().await;
    assert_eq!(plan.promote("nobody"), 0, "a tag never used");
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    queue(&plan, &order_tx, "ui1", "ui", 0);
    let cancelled = plan.task(async {}).tag("ui").try_submit().unwrap();
    cancelled.cancel();
    assert_eq!(plan.promote("ui"), 1, "the cancelled one is not queued");
    assert_eq!(run_order(&plan, gate, blocker, order_rx).await, ["ui1"]);
    assert_eq!(
        plan.promote("ui"),
        0,
        "nothing of the tag is queued any more"
    );
}

async fn cancelling_a_promoted_task_leaves_the_rest_in_order() {
    let (plan, gate, blocker) = held_plan().await;
    let (order_tx, order_rx) = mpsc::unbounded_channel();
    queue(&plan, &order_tx, "bg", "bg", 0);
    let order = order_tx.clone();
    let doomed = plan
        .task(async move { order.send("doomed").unwrap() })
        .tag("ui")
        .try_submit()
        .unwrap();
    queue(&plan, &order_tx, "ui", "ui", 0);
    assert_eq!(plan.promote("ui"), 2);
    doomed.cancel();
    assert_eq!(
        run_order(&plan, gate, blocker, order_rx).await,
        ["ui", "bg"]
    );
}

on_both_runtimes!(
    higher_priority_starts_first_and_equal_priorities_in_order,
    equal_priorities_are_fifo_under_many_concurrent_submitters,
    promote_moves_a_tag_to_the_front_keeping_its_order,
    the_latest_promotion_goes_first,
    promoting_again_keeps_the_order_across_tiers,
    promote_counts_only_queued_tasks,
    cancelling_a_promoted_task_leaves_the_rest_in_order,
);
