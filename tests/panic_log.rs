//! Semantics 5: a panic is logged through `tracing` with the plan name and
//! the task id.
//!
//! This test has its own binary: `tracing` caches per call site whether
//! anyone listens, and tests running in parallel threads without a
//! subscriber could race that cache against the scoped subscriber here.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use taskplan::Plan;

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread runtime: the supervisors run on this thread, where the
// subscriber is installed.
#[tokio::test]
async fn a_panic_is_logged_with_the_plan_name_and_task_id() {
    common::harness(async {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);

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

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = log
            .lines()
            .find(|line| line.contains("task panicked"))
            .unwrap_or_else(|| panic!("no panic event in log:\n{log}"));
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("plan=sync-engine"), "{line}");
        assert!(line.contains(&format!("task={id}")), "{line}");
        assert!(line.contains("disk gone"), "{line}");
    })
    .await
}
