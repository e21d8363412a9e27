//! Semantics 5: a panic is logged through `tracing` with the plan name and
//! the task id.
//!
//! This test has its own binary: `tracing` caches per call site whether
//! anyone listens, and tests running in parallel threads without a
//! subscriber could race that cache against the scoped subscriber here.

mod common;

use taskplan::Plan;

// Current-thread runtime: the supervisors run on this thread, where the
// subscriber is installed.
#[tokio::test]
async fn a_panic_is_logged_with_the_plan_name_and_task_id() {
    common::harness(async {
        let (captured, _default) = common::Captured::install();

        let plan = common::tracked(
            Plan::builder()
                .workers(1)
                .name("sync-engine")
                .build()
                .unwrap(),
        );
        let handle = plan.submit(async { panic!("disk gone") }).await.unwrap();
        let id = handle.id();
        assert!(handle.await.unwrap_err().is_panic());

        let line = captured.line_containing("task panicked");
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("plan=sync-engine"), "{line}");
        assert!(line.contains(&format!("task={id}")), "{line}");
        assert!(line.contains("disk gone"), "{line}");
    })
    .await
}
