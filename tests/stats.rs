//! Semantics 8: the counters and their conservation law.

mod common;

use common::{Gated, assert_conserved};
use taskplan::Plan;

async fn counters_add_up_at_every_quiet_point() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    let fresh = plan.stats();
    assert_eq!(fresh.workers, 2);
    let copy = fresh;
    assert_eq!(fresh, copy, "Stats is Copy + PartialEq");
    assert_eq!(
        (
            fresh.queued,
            fresh.running,
            fresh.submitted,
            fresh.completed
        ),
        (0, 0, 0, 0)
    );

    let mut tasks = Gated::new();
    let mut gated = Vec::new();
    for n in 0..6 {
        gated.push(plan.submit(tasks.task(n)).await.unwrap());
    }
    tasks.started().await;
    tasks.started().await;
    // Quiet: two running, four queued.
    let stats = plan.stats();
    assert_eq!((stats.submitted, stats.running, stats.queued), (6, 2, 4));
    assert_conserved(stats);

    // Cancel one running and one queued task.
    let running = gated.remove(0);
    let queued = gated.pop().unwrap();
    queued.cancel();
    running.cancel();
    assert!(running.await.unwrap_err().is_cancelled());
    assert!(queued.await.unwrap_err().is_cancelled());
    // The freed worker took the next queued task.
    tasks.started().await;
    let stats = plan.stats();
    assert_eq!((stats.running, stats.queued, stats.cancelled), (2, 2, 2));
    assert_conserved(stats);

    // One panics, the rest complete.
    let panicked = plan.submit(async { panic!("counted") }).await.unwrap();
    tasks.gate.open();
    for handle in gated {
        handle.await.unwrap();
    }
    assert!(panicked.await.unwrap_err().is_panic());
    plan.wait_idle().await;

    let stats = plan.stats();
    assert_eq!(
        (
            stats.workers,
            stats.queued,
            stats.running,
            stats.submitted,
            stats.completed,
            stats.cancelled,
            stats.panicked,
            stats.timed_out,
        ),
        (2, 0, 0, 7, 4, 2, 1, 0)
    );
    assert_conserved(stats);
}

async fn a_resolved_handle_is_already_counted() {
    let plan = common::tracked(Plan::builder().workers(2).build().unwrap());
    for n in 1..=50 {
        plan.submit(async {}).await.unwrap().await.unwrap();
        let stats = plan.stats();
        assert_eq!(stats.completed, n);
        assert_conserved(stats);
    }
}

async fn the_report_matches_the_stats() {
    let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
    plan.submit(async {}).await.unwrap();
    plan.submit(async { panic!("x") }).await.unwrap();
    plan.submit(std::future::pending::<()>()).await.unwrap();
    plan.submit(async {}).await.unwrap();
    let report = plan.abort().await;
    let stats = plan.stats();
    assert_eq!(
        (
            report.completed,
            report.cancelled,
            report.panicked,
            report.timed_out
        ),
        (
            stats.completed,
            stats.cancelled,
            stats.panicked,
            stats.timed_out
        )
    );
    assert_eq!(
        report.completed + report.cancelled + report.panicked + report.timed_out,
        stats.submitted
    );
    assert_conserved(stats);
}

on_both_runtimes!(
    counters_add_up_at_every_quiet_point,
    a_resolved_handle_is_already_counted,
    the_report_matches_the_stats,
);
