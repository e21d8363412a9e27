//! Observability: each task's `tracing` span and events, and the queue-wait
//! and run-time figures in `Stats`.
//!
//! Mutation testing: two mutants survive here, each changing no figure a
//! test can see. `replace match guard !waited with false` in `supervise`
//! reads the clock afresh at every start instead of reusing the reading
//! taken at the previous task's end, which under a paused clock is the same
//! instant. `replace > with >= in TimingSum::record` also calls `fetch_max`
//! for a time equal to the maximum, which leaves the maximum as it was.
//!
//! These tests have their own binary and run one at a time: `tracing`
//! caches per call site whether anyone listens, and each tracing test here
//! installs its own subscriber on its thread, while a test without one
//! would record that nobody listens. Each uses a current-thread runtime, so
//! the supervisors run on the thread where the subscriber is installed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use taskplan::{Plan, Stats, Timing};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One test at a time touches the call-site cache. Each test has its own
/// runtime; tokio's mutex is fine with that, and is held across awaits.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A span or an event as the subscriber saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    level: Option<Level>,
    fields: BTreeMap<String, String>,
    /// For an event: its explicit parent, or else the span entered on its
    /// thread when it fired.
    span: Option<u64>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.fields
            .insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields
            .insert(field.name().to_owned(), value.to_owned());
    }
}

#[derive(Default)]
struct Log {
    spans: HashMap<u64, Seen>,
    events: Vec<Seen>,
    /// Entered spans, innermost last; one thread only (current-thread
    /// runtime).
    entered: Vec<u64>,
}

/// A subscriber that keeps every span and event at or above `max_level`.
#[derive(Clone)]
struct Capture {
    log: Arc<Mutex<Log>>,
    max_level: Level,
    next_id: Arc<AtomicU64>,
}

impl Capture {
    fn new(max_level: Level) -> Capture {
        Capture {
            log: Arc::default(),
            max_level,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    fn events(&self) -> Vec<Seen> {
        self.log().events.clone()
    }

    /// Forgets the events seen so far.
    fn clear(&self) {
        self.log().events.clear();
    }

    /// The events whose message is `message`.
    fn events_saying(&self, message: &str) -> Vec<Seen> {
        self.events()
            .into_iter()
            .filter(|event| event.field("message") == Some(message))
            .collect()
    }

    fn span(&self, id: u64) -> Seen {
        self.log().spans[&id].clone()
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut record = Seen {
            name: attributes.metadata().name().to_owned(),
            level: Some(*attributes.metadata().level()),
            ..Seen::default()
        };
        attributes.record(&mut record);
        self.log().spans.insert(id, record);
        Id::from_u64(id)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut log = self.log();
        let mut record = Seen {
            name: event.metadata().name().to_owned(),
            level: Some(*event.metadata().level()),
            span: match event.parent() {
                Some(parent) => Some(parent.into_u64()),
                None => log.entered.last().copied(),
            },
            ..Seen::default()
        };
        event.record(&mut record);
        log.events.push(record);
    }

    fn enter(&self, span: &Id) {
        self.log().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut log = self.log();
        let position = log.entered.iter().rposition(|&id| id == span.into_u64());
        if let Some(position) = position {
            log.entered.remove(position);
        }
    }
}

/// A task's own event nests under the task's span, which names the plan,
/// the task, its tag and its priority, at the level the builder set.
#[tokio::test]
async fn a_task_runs_in_a_span_with_plan_id_tag_and_priority() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let capture = Capture::new(Level::INFO);
    let _default = tracing::subscriber::set_default(capture.clone());
    common::harness(async {
        let plan = common::tracked(
            Plan::builder()
                .name("spans")
                .workers(1)
                .span_level(Level::INFO)
                .build()
                .unwrap(),
        );
        let handle = plan
            .task(async { tracing::info!(answer = 42, "inside the task") })
            .tag("ui")
            .priority(3)
            .submit()
            .await
            .unwrap();
        let id = handle.id();
        handle.await.unwrap();

        let inside = capture.events_saying("inside the task");
        assert_eq!(inside.len(), 1, "{:?}", capture.events());
        let span_id = inside[0].span.expect("the task's event has a span");
        let span = capture.span(span_id);
        assert_eq!(span.name, "task");
        assert_eq!(span.level, Some(Level::INFO));
        assert_eq!(span.field("plan"), Some("spans"));
        assert_eq!(span.field("id"), Some(id.to_string().as_str()));
        assert_eq!(span.field("tag"), Some("ui"));
        assert_eq!(span.field("priority"), Some("3"));
    })
    .await
}

/// Every level the builder accepts is the span's level.
#[tokio::test]
async fn the_span_takes_each_level_the_builder_sets() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let capture = Capture::new(Level::TRACE);
    let _default = tracing::subscriber::set_default(capture.clone());
    common::harness(async {
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            let plan = common::tracked(
                Plan::builder()
                    .name(level.as_str())
                    .workers(1)
                    .span_level(level)
                    .build()
                    .unwrap(),
            );
            plan.submit(async {}).await.unwrap().await.unwrap();
            let spans: Vec<Seen> = capture.log().spans.values().cloned().collect();
            let span = spans
                .iter()
                .find(|span| span.field("plan") == Some(level.as_str()))
                .expect("a span for the task");
            assert_eq!(span.level, Some(level));
        }
    })
    .await
}

/// The default span level is `DEBUG`: a subscriber at `INFO` sees the
/// task's events but no span.
#[tokio::test]
async fn the_span_is_at_debug_by_default() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let capture = Capture::new(Level::INFO);
    let _default = tracing::subscriber::set_default(capture.clone());
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).build().unwrap());
        plan.submit(async { tracing::info!("plain") })
            .await
            .unwrap()
            .await
            .unwrap();
        let plain = capture.events_saying("plain");
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].span, None);
        assert!(capture.log().spans.is_empty());

        let debug = Capture::new(Level::DEBUG);
        let _debug = tracing::subscriber::set_default(debug.clone());
        plan.submit(async { tracing::info!("nested") })
            .await
            .unwrap()
            .await
            .unwrap();
        let nested = debug.events_saying("nested");
        let span = debug.span(nested[0].span.expect("a span at DEBUG"));
        assert_eq!(
            (span.name.as_str(), span.level),
            ("task", Some(Level::DEBUG))
        );
    })
    .await
}

/// Each way a task can go is one event, at the level a service owner would
/// pick: queued, started and completed at `TRACE`, cancels at `DEBUG`, a
/// timeout at `WARN`, a panic at `ERROR`. Events of a started task carry its
/// span.
#[tokio::test(start_paused = true)]
async fn each_step_of_a_task_is_an_event_at_its_level() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let capture = Capture::new(Level::TRACE);
    let _default = tracing::subscriber::set_default(capture.clone());
    common::harness(async {
        let plan = common::tracked(Plan::builder().name("levels").workers(1).build().unwrap());
        plan.submit(async {}).await.unwrap().await.unwrap();
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let queued = plan.submit(async {}).await.unwrap();
        tokio::task::yield_now().await;
        queued.cancel();
        stuck.cancel();
        assert!(stuck.await.unwrap_err().is_cancelled());
        let slow = plan
            .task(std::future::pending::<()>())
            .timeout(Duration::from_secs(1))
            .submit()
            .await
            .unwrap();
        assert!(slow.await.unwrap_err().is_timeout());
        let panicking = plan.submit(async { panic!("boom") }).await.unwrap();
        assert!(panicking.await.unwrap_err().is_panic());
        plan.wait_idle().await;

        let levels_of = |message: &str| -> Vec<Level> {
            capture
                .events_saying(message)
                .iter()
                .filter_map(|event| event.level)
                .collect()
        };
        assert_eq!(levels_of("task queued"), vec![Level::TRACE; 5]);
        assert_eq!(levels_of("task started"), vec![Level::TRACE; 4]);
        assert_eq!(levels_of("task completed"), vec![Level::TRACE]);
        assert_eq!(levels_of("task cancelled"), vec![Level::DEBUG]);
        assert_eq!(levels_of("queued task cancelled"), vec![Level::DEBUG]);
        assert_eq!(levels_of("task timed out"), vec![Level::WARN]);
        assert_eq!(levels_of("task panicked"), vec![Level::ERROR]);

        // The queued event names the plan itself; a started task's events
        // get the plan from their span.
        let queued_events = capture.events_saying("task queued");
        assert!(
            queued_events
                .iter()
                .all(|e| e.field("plan") == Some("levels"))
        );
        for message in [
            "task started",
            "task completed",
            "task timed out",
            "task panicked",
        ] {
            for event in capture.events_saying(message) {
                let span = capture.span(event.span.expect("inside the task's span"));
                assert_eq!(span.field("plan"), Some("levels"), "{message}");
            }
        }
        let panic = &capture.events_saying("task panicked")[0];
        assert_eq!(panic.field("panic"), Some("boom"));
        // Inside the span, the event does not repeat the span's fields.
        assert_eq!(panic.field("plan"), None);
    })
    .await
}

/// With the task's span filtered out, a timeout or a panic still says which
/// plan and task it was, on the event itself.
#[tokio::test(start_paused = true)]
async fn warnings_and_errors_carry_the_task_when_its_span_is_filtered_out() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let capture = Capture::new(Level::WARN);
    let _default = tracing::subscriber::set_default(capture.clone());
    common::harness(async {
        let plan = common::tracked(Plan::builder().name("quiet").workers(1).build().unwrap());
        let slow = plan
            .task(std::future::pending::<()>())
            .tag("t")
            .timeout(Duration::from_secs(1))
            .submit()
            .await
            .unwrap();
        let slow_id = slow.id().to_string();
        assert!(slow.await.unwrap_err().is_timeout());
        let panicking = plan.submit(async { panic!("boom") }).await.unwrap();
        let panicking_id = panicking.id().to_string();
        assert!(panicking.await.unwrap_err().is_panic());
        plan.wait_idle().await;

        assert!(capture.log().spans.is_empty());
        let timed_out = &capture.events_saying("task timed out")[0];
        assert_eq!(timed_out.field("plan"), Some("quiet"));
        assert_eq!(timed_out.field("task"), Some(slow_id.as_str()));
        assert_eq!(timed_out.field("tag"), Some("t"));
        assert_eq!(timed_out.field("timeout"), Some("1s"));
        let panicked = &capture.events_saying("task panicked")[0];
        assert_eq!(panicked.field("plan"), Some("quiet"));
        assert_eq!(panicked.field("task"), Some(panicking_id.as_str()));
        assert_eq!(panicked.field("panic"), Some("boom"));
    })
    .await
}

fn timing(count: usize, total_ms: u64, max_ms: u64) -> (usize, Duration, Duration) {
    (
        count,
        Duration::from_millis(total_ms),
        Duration::from_millis(max_ms),
    )
}

fn parts(timing: Timing) -> (usize, Duration, Duration) {
    (timing.count, timing.total, timing.max)
}

/// Timings are opt-in: without `timings(true)` the stats' timings stay
/// empty and the task events leave out their `queue_wait` and `run_time`
/// fields; with it, both are there.
#[tokio::test(start_paused = true)]
async fn timings_are_measured_only_when_the_builder_asks() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let capture = Capture::new(Level::TRACE);
    let _default = tracing::subscriber::set_default(capture.clone());
    common::harness(async {
        for timings in [false, true] {
            let name = format!("timings-{timings}");
            // One worker for the task, one for a task that keeps "t"
            // counted once it has ended (which waits 0 s and, still
            // running, counts no run time).
            let plan = common::tracked(
                Plan::builder()
                    .name(name.as_str())
                    .workers(2)
                    .timings(timings)
                    .build()
                    .unwrap(),
            );
            let keeper = common::keep_tag(&plan, "t").await;
            let slow = async { tokio::time::sleep(Duration::from_secs(1)).await };
            plan.task(slow)
                .tag("t")
                .submit()
                .await
                .unwrap()
                .await
                .unwrap();
            let (stats, tagged) = (plan.stats(), plan.tag_stats("t"));
            let counted = usize::from(timings);
            assert_eq!(stats.completed, 1);
            assert_eq!(
                (stats.queue_wait.count, stats.run_time.count),
                (2 * counted, counted)
            );
            assert_eq!(
                (tagged.queue_wait.count, tagged.run_time.count),
                (2 * counted, counted)
            );
            let expected_run_time = timings.then_some(Duration::from_secs(1));
            assert_eq!(stats.run_time.mean(), expected_run_time);
            assert_eq!(tagged.run_time.mean(), expected_run_time);
            keeper.release().await;
            plan.wait_idle().await;

            let started = capture.events_saying("task started");
            let completed = capture.events_saying("task completed");
            assert_eq!(
                (started.len(), completed.len()),
                (2, 2),
                "with the keeper's"
            );
            // The task started after its keeper, and completed first.
            let (started, completed) = (&started[1], &completed[0]);
            assert_eq!(started.field("queue_wait").is_some(), timings);
            assert_eq!(completed.field("run_time"), timings.then_some("1s"));
            capture.clear();
        }
    })
    .await
}

/// Under a paused clock the figures are exact: one worker, three tasks of
/// 2 s, 1 s and 3 s. The first waits 0 s, the second 2 s, the third 3 s.
#[tokio::test(start_paused = true)]
async fn queue_wait_and_run_time_are_exact_per_plan_and_per_tag() {
    // No subscriber here, which tracing's call-site cache would record
    // while another test listens.
    let _serial = ONE_AT_A_TIME.lock().await;
    common::harness(async {
        // One worker for the three tasks; two more for a task of each tag
        // that keeps the tag counted once its tasks have ended. Each keeper
        // waits 0 s (which adds to the counts of queue waits, not to their
        // sums) and, still running, counts no run time.
        let plan = common::tracked(Plan::builder().workers(3).timings(true).build().unwrap());
        let keepers = [
            common::keep_tag(&plan, "a").await,
            common::keep_tag(&plan, "b").await,
        ];
        // The clock starts at the first poll, not when the future is made.
        let sleep = |seconds| async move { tokio::time::sleep(Duration::from_secs(seconds)).await };
        let first = plan.task(sleep(2)).tag("a").submit().await.unwrap();
        let second = plan.task(sleep(1)).tag("b").submit().await.unwrap();
        let third = plan.task(sleep(3)).tag("a").submit().await.unwrap();
        for handle in [first, second, third] {
            handle.await.unwrap();
        }

        let stats = plan.stats();
        assert_eq!(parts(stats.queue_wait), timing(5, 5_000, 3_000));
        assert_eq!(parts(stats.run_time), timing(3, 6_000, 3_000));
        assert_eq!(stats.run_time.mean(), Some(Duration::from_secs(2)));
        let a = plan.tag_stats("a");
        assert_eq!(parts(a.queue_wait), timing(3, 3_000, 3_000));
        assert_eq!(parts(a.run_time), timing(2, 5_000, 3_000));
        let b = plan.tag_stats("b");
        assert_eq!(parts(b.queue_wait), timing(2, 2_000, 2_000));
        assert_eq!(parts(b.run_time), timing(1, 1_000, 1_000));
        for keeper in keepers {
            keeper.release().await;
        }
    })
    .await
}

/// Run time covers every task that started, however it ended (cancelled,
/// timed out, panicked); queue wait leaves out tasks cancelled before they
/// started, and counts waiting for room apart from waiting in the queue.
#[tokio::test(start_paused = true)]
async fn run_time_covers_every_ending_and_queue_wait_only_started_tasks() {
    // No subscriber here, which tracing's call-site cache would record
    // while another test listens.
    let _serial = ONE_AT_A_TIME.lock().await;
    common::harness(async {
        let plan = common::tracked(
            Plan::builder()
                .workers(1)
                .capacity(1)
                .timings(true)
                .build()
                .unwrap(),
        );
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let queued = plan.submit(async {}).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Waits 1 s for room, which is not queue wait.
        let waiting = {
            let plan = plan.clone();
            tokio::spawn(async move { plan.submit(async {}).await.map(drop).is_ok() })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        queued.cancel();
        assert!(waiting.await.unwrap());
        tokio::time::sleep(Duration::from_secs(1)).await;
        stuck.cancel();
        plan.wait_idle().await;
        let timed_out = plan
            .task(std::future::pending::<()>())
            .timeout(Duration::from_secs(4))
            .submit()
            .await
            .unwrap();
        assert!(timed_out.await.unwrap_err().is_timeout());
        plan.wait_idle().await;

        let stats = plan.stats();
        assert_eq!(stats.cancelled, 2);
        // Started: `stuck` (waited 0 s, ran 3 s), the one that waited for
        // room (queued at 2 s, started at 3 s: waited 1 s, ran 0 s), and
        // `timed_out` (waited 0 s, ran 4 s).
        assert_eq!(parts(stats.queue_wait), timing(3, 1_000, 1_000));
        assert_eq!(parts(stats.run_time), timing(3, 7_000, 4_000));
    })
    .await
}

/// A task stopped by an abort counts its run time too.
#[tokio::test(start_paused = true)]
async fn an_aborted_task_counts_its_run_time() {
    let _serial = ONE_AT_A_TIME.lock().await;
    common::harness(async {
        let plan = common::tracked(Plan::builder().workers(1).timings(true).build().unwrap());
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        plan.abort().await;
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert_eq!(parts(plan.stats().run_time), timing(1, 2_000, 2_000));
    })
    .await
}

#[test]
fn a_timing_with_no_tasks_has_no_mean() {
    assert_eq!(Stats::default().queue_wait.mean(), None);
    assert_eq!(Timing::default().mean(), None);
}
