//! Publishing a plan's counts and timings through the [`metrics`] facade
//! (feature `metrics`), so a service exports them with the exporter it
//! already uses.
//!
//! A plan gets its handles once, when it is made, and a tag at the start of
//! each of its lives (see `engine::tags`); a task then costs a few calls on
//! those handles and no lookup. When a tag's life ends the plan drops its
//! handles; the series are the recorder's, which keeps them (so a tag's
//! counters count on across its lives) or drops them by its own rules. The
//! plan's series carry a `plan` label; each tag's carry `plan` and `tag`
//! under names of their own (`taskplan_tag_*`), so summing a plan's series
//! never counts a task twice. With no recorder installed the handles do
//! nothing.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, Unit};

use crate::engine::cell::Outcome;

/// The series of one plan, or of one tag of a plan.
#[derive(Clone)]
pub(crate) struct Published {
    submitted: Counter,
    completed: Counter,
    cancelled: Counter,
    panicked: Counter,
    timed_out: Counter,
    queued: Gauge,
    running: Gauge,
    queue_wait: Histogram,
    run_time: Histogram,
}

impl Default for Published {
    /// Handles that record nothing, for tests that build counts alone.
    fn default() -> Published {
        Published {
            submitted: Counter::noop(),
            completed: Counter::noop(),
            cancelled: Counter::noop(),
            panicked: Counter::noop(),
            timed_out: Counter::noop(),
            queued: Gauge::noop(),
            running: Gauge::noop(),
            queue_wait: Histogram::noop(),
            run_time: Histogram::noop(),
        }
    }
}

impl Published {
    /// Registers a plan's series, labelled `plan`.
    pub(crate) fn for_plan(plan: &str) -> Published {
        describe("taskplan_");
        Published::register("taskplan_", vec![Label::new("plan", plan.to_owned())])
    }

    /// Registers a tag's series, labelled `plan` and `tag`.
    pub(crate) fn for_tag(plan: &str, tag: &str) -> Published {
        describe("taskplan_tag_");
        Published::register(
            "taskplan_tag_",
            vec![
                Label::new("plan", plan.to_owned()),
                Label::new("tag", tag.to_owned()),
            ],
        )
    }

    fn register(prefix: &str, labels: Vec<Label>) -> Published {
        let finished = |outcome: &'static str| {
            let mut labels = labels.clone();
            labels.push(Label::new("outcome", outcome));
            metrics::counter!(format!("{prefix}tasks_finished_total"), labels)
        };
        Published {
            submitted: metrics::counter!(format!("{prefix}tasks_submitted_total"), labels.clone()),
            completed: finished("completed"),
            cancelled: finished("cancelled"),
            panicked: finished("panicked"),
            timed_out: finished("timed_out"),
            queued: metrics::gauge!(format!("{prefix}tasks_queued"), labels.clone()),
            running: metrics::gauge!(format!("{prefix}tasks_running"), labels.clone()),
            queue_wait: metrics::histogram!(format!("{prefix}queue_wait_seconds"), labels.clone()),
            run_time: metrics::histogram!(format!("{prefix}run_time_seconds"), labels),
        }
    }

    pub(crate) fn submitted(&self) {
        self.submitted.increment(1);
        self.queued.increment(1.0);
    }

    /// A task started, after `queue_wait` if it was measured.
    pub(crate) fn started(&self, queue_wait: Option<Duration>) {
        self.queued.decrement(1.0);
        self.running.increment(1.0);
        if let Some(queue_wait) = queue_wait {
            self.queue_wait.record(queue_wait.as_secs_f64());
        }
    }

    pub(crate) fn ran(&self, run_time: Duration) {
        self.run_time.record(run_time.as_secs_f64());
    }

    /// A started task ended.
    pub(crate) fn finished(&self, outcome: &Outcome) {
        self.running.decrement(1.0);
        let counter = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Cancelled => &self.cancelled,
            Outcome::TimedOut => &self.timed_out,
            Outcome::Panicked(_) => &self.panicked,
        };
        counter.increment(1);
    }

    /// `count` queued tasks were cancelled before they started.
    pub(crate) fn cancelled_queued(&self, count: usize) {
        self.cancelled.increment(count as u64);
        self.queued.decrement(count as f64);
    }
}

/// Describes the series for exporters that print help and units.
fn describe(prefix: &str) {
    let of = if prefix == "taskplan_" {
        "the plan's tasks"
    } else {
        "the tag's tasks"
    };
    metrics::describe_counter!(
        format!("{prefix}tasks_submitted_total"),
        Unit::Count,
        format!("Tasks accepted, of {of}")
    );
    metrics::describe_counter!(
        format!("{prefix}tasks_finished_total"),
        Unit::Count,
        format!("Tasks ended, by outcome, of {of}")
    );
    metrics::describe_gauge!(
        format!("{prefix}tasks_queued"),
        Unit::Count,
        format!("Tasks waiting to start, of {of}")
    );
    metrics::describe_gauge!(
        format!("{prefix}tasks_running"),
        Unit::Count,
        format!("Tasks running, of {of}")
    );
    metrics::describe_histogram!(
        format!("{prefix}queue_wait_seconds"),
        Unit::Seconds,
        format!("Time from queued to started, of {of}")
    );
    metrics::describe_histogram!(
        format!("{prefix}run_time_seconds"),
        Unit::Seconds,
        format!("Time from started to ended, of {of}")
    );
}

/// Registers the gauge of a plan's worker target.
pub(crate) fn workers_gauge(plan: &str) -> Gauge {
    metrics::describe_gauge!(
        "taskplan_workers",
        Unit::Count,
        "How many tasks the plan may run at once"
    );
    metrics::gauge!("taskplan_workers", "plan" => plan.to_owned())
}
