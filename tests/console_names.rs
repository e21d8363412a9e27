//! Built with `--cfg tokio_unstable`, supervisors carry names that
//! tokio-console shows: `<plan name> supervisor <n>`.
//!
//! Run with
//! `RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/unstable cargo test --test console_names`
//! (CI does). Tokio reports a spawned task's name as the `task.name` field
//! of its `runtime.spawn` span, which is what tokio-console reads.
//!
//! Mutation testing: the mutants of `ExitGuard::number` survive a normal
//! `cargo mutants` run because that function exists only under
//! `--cfg tokio_unstable`; this test kills them when run under it.
#![cfg(tokio_unstable)]

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use taskplan::Plan;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Keeps the `task.name` of every `runtime.spawn` span.
#[derive(Clone, Default)]
struct SpawnNames {
    names: Arc<Mutex<Vec<String>>>,
    next_id: Arc<AtomicU64>,
}

struct TaskName(Option<String>);

impl Visit for TaskName {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "task.name" {
            self.0 = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "task.name" {
            self.0 = Some(value.to_owned());
        }
    }
}

impl Subscriber for SpawnNames {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.name() == "runtime.spawn"
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut name = TaskName(None);
        attributes.record(&mut name);
        if let Some(name) = name.0 {
            self.names.lock().unwrap().push(name);
        }
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn supervisors_are_named_after_their_plan() {
    let names = SpawnNames::default();
    let _default = tracing::subscriber::set_default(names.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let plan = Plan::builder().name("mail").workers(2).build().unwrap();
        plan.set_workers(3).unwrap();
        // Supervisors start as work arrives: three tasks queued before any
        // runs start three.
        for _ in 0..3 {
            plan.try_submit(async {}).unwrap();
        }
        plan.shutdown(std::time::Duration::from_secs(5)).await;
    });
    let mut supervisors: Vec<String> = names
        .names
        .lock()
        .unwrap()
        .iter()
        .filter(|name| name.starts_with("mail supervisor"))
        .cloned()
        .collect();
    supervisors.sort();
    assert_eq!(
        supervisors,
        [
            "mail supervisor 0",
            "mail supervisor 1",
            "mail supervisor 2"
        ]
    );
}
