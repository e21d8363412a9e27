//! A timeout on a runtime without the time driver is logged and the task
//! runs without it; the plan goes on. (Regression test from a review: Tokio
//! panics when such a runtime makes a timer, and that panic once killed the
//! supervisor and, with it, the plan.)

mod common;

use std::time::Duration;
use taskplan::Plan;

#[test]
fn a_timeout_without_a_time_driver_does_not_kill_the_plan() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Not tracked: this runtime has no time driver, which `join_or_fail`
    // needs for its bound; the body aborts the plan itself.
    runtime.block_on(common::bounded(async {
        let plan = Plan::builder().workers(1).build().unwrap();
        let timed = plan.task(async { 1 }).timeout(Duration::from_secs(1)).submit().await.unwrap();
        let result = timed.await;
        let next = plan.submit(async { 2 }).await;
        assert!(
            next.is_ok(),
            "plan closed itself after a timed task on a runtime without timers; the task got {result:?}"
        );
        plan.abort().await;
        common::assert_conserved(plan.stats());
    }));
}
