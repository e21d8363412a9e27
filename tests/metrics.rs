//! Feature `metrics`: a plan publishes its counts, gauges and timings
//! through the `metrics` facade, per plan and per tag.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use taskplan::Plan;

/// Every sample of a histogram.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// A recorder that keeps each series by its name and sorted labels, e.g.
/// `taskplan_tasks_finished_total{outcome=completed,plan=p}`.
#[derive(Default)]
struct Kept {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
    /// What each name was described as: its unit and help text.
    descriptions: Mutex<HashMap<String, (Option<Unit>, String)>>,
}

fn series(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|label| format!("{}={}", label.key(), label.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Kept {
    fn counter(&self, name: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        let counter = counters
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name}"));
        counter.load(Ordering::Relaxed)
    }

    fn gauge(&self, name: &str) -> f64 {
        let gauges = self.gauges.lock().unwrap();
        let gauge = gauges
            .get(name)
            .unwrap_or_else(|| panic!("no gauge {name}"));
        f64::from_bits(gauge.load(Ordering::Relaxed))
    }

    fn samples(&self, name: &str) -> Vec<f64> {
        let histograms = self.histograms.lock().unwrap();
        let samples = histograms
            .get(name)
            .unwrap_or_else(|| panic!("no histogram {name}"));
        samples.0.lock().unwrap().clone()
    }
}

impl Kept {
    fn describe(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        let mut descriptions = self.descriptions.lock().unwrap();
        descriptions.insert(name.as_str().to_owned(), (unit, help.into_owned()));
    }

    fn description(&self, name: &str) -> (Option<Unit>, String) {
        let descriptions = self.descriptions.lock().unwrap();
        descriptions
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not described"))
    }
}

impl Recorder for Kept {
    fn describe_counter(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(name, unit, help);
    }
    fn describe_gauge(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(name, unit, help);
    }
    fn describe_histogram(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(name, unit, help);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(Arc::clone(counters.entry(series(key)).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(gauges.entry(series(key)).or_default()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(Arc::clone(histograms.entry(series(key)).or_default()))
    }
}

/// Counts by outcome, queued and running gauges, the worker target and
/// exact timings under a paused clock, for the plan and for its tag; the
/// tag's series do not repeat in the plan's names, so nothing is counted
/// twice.
#[tokio::test(start_paused = true)]
async fn a_plan_publishes_its_counts_gauges_and_timings() {
    common::harness(async {
        let kept = Arc::new(Kept::default());
        // A plan registers its series when built, a tag when first used:
        // both here, where the recorder is this thread's.
        let (plan, first) = metrics::with_local_recorder(&*kept, || {
            let plan = Plan::builder()
                .name("p")
                .workers(1)
                .timings(true)
                .build()
                .unwrap();
            let first = plan
                .task(async { tokio::time::sleep(Duration::from_secs(2)).await })
                .tag("t")
                .try_submit()
                .unwrap();
            (plan, first)
        });
        let plan = common::tracked(plan);
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let queued = plan.submit(async {}).await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(kept.gauge("taskplan_tasks_running{plan=p}"), 1.0);
        assert_eq!(kept.gauge("taskplan_tasks_queued{plan=p}"), 2.0);
        assert_eq!(kept.gauge("taskplan_tag_tasks_running{plan=p,tag=t}"), 1.0);
        first.await.unwrap();
        queued.cancel();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stuck.cancel();
        plan.wait_idle().await;
        plan.set_workers(3).unwrap();

        assert_eq!(kept.counter("taskplan_tasks_submitted_total{plan=p}"), 3);
        let finished = |outcome: &str| {
            kept.counter(&format!(
                "taskplan_tasks_finished_total{{outcome={outcome},plan=p}}"
            ))
        };
        assert_eq!((finished("completed"), finished("cancelled")), (1, 2));
        assert_eq!((finished("panicked"), finished("timed_out")), (0, 0));
        assert_eq!(kept.gauge("taskplan_tasks_running{plan=p}"), 0.0);
        assert_eq!(kept.gauge("taskplan_tasks_queued{plan=p}"), 0.0);
        assert_eq!(kept.gauge("taskplan_workers{plan=p}"), 3.0);
        // `first` waited 0 s and ran 2 s; `stuck` waited 2 s and ran 1 s.
        assert_eq!(
            kept.samples("taskplan_queue_wait_seconds{plan=p}"),
            [0.0, 2.0]
        );
        assert_eq!(
            kept.samples("taskplan_run_time_seconds{plan=p}"),
            [2.0, 1.0]
        );

        let tag = "{plan=p,tag=t}";
        assert_eq!(
            kept.counter(&format!("taskplan_tag_tasks_submitted_total{tag}")),
            1
        );
        assert_eq!(
            kept.counter("taskplan_tag_tasks_finished_total{outcome=completed,plan=p,tag=t}"),
            1
        );
        assert_eq!(kept.gauge(&format!("taskplan_tag_tasks_running{tag}")), 0.0);
        assert_eq!(
            kept.samples(&format!("taskplan_tag_run_time_seconds{tag}")),
            [2.0]
        );

        // Exporters print a unit and help text for each name.
        let (unit, help) = kept.description("taskplan_queue_wait_seconds");
        assert_eq!(unit, Some(Unit::Seconds));
        assert_eq!(help, "Time from queued to started, of the plan's tasks");
        let (unit, help) = kept.description("taskplan_tag_tasks_finished_total");
        assert_eq!(unit, Some(Unit::Count));
        assert_eq!(help, "Tasks ended, by outcome, of the tag's tasks");
        assert_eq!(kept.description("taskplan_workers").0, Some(Unit::Count));
    })
    .await
}
