//! Issue 12, item 10: on a runtime without the time driver, tasks with a
//! timeout run without it, and the plan says so once. Alone in its binary:
//! `tracing` caches whether a callsite is wanted, and a test on another
//! thread with no subscriber hitting the same event could hide it from this
//! one's scoped subscriber.

mod common;

use std::time::Duration;
use taskplan::Plan;

/// Issue 12, item 10: the missing time driver is found and logged once per
/// plan, not once per task (before, each task with a timeout made Tokio
/// panic again, printing a panic message and an error every time).
#[test]
fn a_missing_time_driver_is_logged_once_per_plan() {
    let (log, _default) = common::Captured::install();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Not tracked: no time driver for `join_or_fail`'s bound, as above.
    runtime.block_on(common::bounded(async {
        let plan = Plan::builder().workers(2).build().unwrap();
        // Queued together, so both workers meet timed tasks.
        let mut timed = Vec::new();
        for round in 0..6 {
            let yielding = async move {
                tokio::task::yield_now().await;
                round
            };
            timed.push(
                plan.task(yielding)
                    .timeout(Duration::from_secs(1))
                    .submit()
                    .await
                    .unwrap(),
            );
        }
        for (round, handle) in timed.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), round, "it runs without its timeout");
        }
        plan.abort().await;
    }));
    let logged = log
        .text()
        .matches("task timeouts need the runtime's time driver")
        .count();
    assert_eq!(logged, 1, "{}", log.text());
}
