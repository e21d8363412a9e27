//! Regression test from a review: `abort()` must not start a task that was
//! still queued when it was called. It once could: the plan was closed in one
//! hold of the queue lock (logging "plan closed") and drained in another, and
//! a supervisor that finished its task in between popped and polled the next.
//!
//! A thread-local `tracing` subscriber on the aborting thread holds the abort
//! at the "plan closed" event, and meanwhile lets the running task finish and
//! gives the next one up to 2 s to start. With closing and draining done in
//! one step, nothing is left to start and the wait simply runs out. (Its own
//! test binary: see `panic_log.rs` for why.)

mod common;

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskplan::Plan;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Runs `hook` on the event whose message is "plan closed".
struct OnPlanClosed(Box<dyn Fn() + Send + Sync>);

struct Message(bool);
impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}") == "plan closed" {
            self.0 = true;
        }
    }
}

impl Subscriber for OnPlanClosed {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            (self.0)();
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_never_starts_a_task_that_was_queued_when_it_was_called() {
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let running = plan
            .submit(async move {
                started_tx.send(()).unwrap();
                let _ = finish_rx.await;
            })
            .await
            .unwrap();
        let (queued_ran_tx, queued_ran_rx) = std_mpsc::channel();
        let queued = plan
            .submit(async move {
                queued_ran_tx.send(()).unwrap();
            })
            .await
            .unwrap();
        started_rx.await.unwrap();

        // Inside the gap: let the running task finish, give its supervisor up
        // to 2 s to take the next task (it does so at once when the bug is
        // there; a fixed plan never lets it, and the wait just runs out).
        let finish_tx = Mutex::new(Some(finish_tx));
        let queued_ran_rx = Arc::new(Mutex::new(queued_ran_rx));
        let subscriber = OnPlanClosed(Box::new(move || {
            if let Some(finish) = finish_tx.lock().unwrap().take() {
                finish.send(()).unwrap();
                let _ = queued_ran_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(2));
            }
        }));
        let report = {
            let _default = tracing::subscriber::set_default(subscriber);
            plan.abort().await
        };
        let _ = running.await;
        assert!(
            queued.await.unwrap_err().is_cancelled(),
            "a task queued when abort() was called ran to completion: {report:?}"
        );
    })
    .await
}
