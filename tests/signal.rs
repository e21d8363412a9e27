//! Issue 0.2, semantics 9: a real process shuts down gracefully on SIGTERM;
//! issue 12, item 8: a second signal during the drain aborts at once.
//!
//! Runs the `graceful_shutdown` example (built by `common::example_binary`) as a
//! child process, waits for it to say it is serving, sends it SIGTERM, and
//! checks that it drains and exits 0 with its report; and, with its requests
//! hung, that a second SIGTERM once the drain has begun ends it at once.
//!
//! Mutation testing: the mutants of `Signals::listen` and `Signals::recv`
//! for targets without Unix signals (`#[cfg(not(unix))]` in src/signal.rs)
//! survive on Linux, where that code is not compiled; they need a run on
//! Windows.
#![cfg(all(unix, feature = "signal"))]

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The `graceful_shutdown` example running as a child process, its output
/// read line by line.
struct Example {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The reads block: if the example hangs, this kills it once the bound
    /// runs out, so the reads end and the test fails instead of hanging.
    watchdog: common::Watchdog,
}

impl Example {
    fn start(arguments: &[&str]) -> Example {
        let binary = common::example_binary("graceful_shutdown");
        assert!(binary.exists(), "{} is missing", binary.display());
        let mut child = Command::new(&binary)
            .args(arguments)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        let watchdog = common::Watchdog::start(common::TEST_BOUND, move || {
            eprintln!(
                "the example did not exit within {:?}: killing it",
                common::TEST_BOUND
            );
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        });
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Example {
            child,
            stdout,
            watchdog,
        }
    }

    /// The next line the example prints: waits for an event, not for a time.
    fn next_line(&mut self) -> String {
        match self.stdout.next() {
            Some(line) => line.unwrap(),
            None => panic!("the example's output ended early"),
        }
    }

    /// Sends the example `signal` ("TERM", "INT").
    fn send(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Reads the rest of the output and waits for the exit.
    fn finish(mut self) -> (ExitStatus, String) {
        let mut rest = String::new();
        for line in self.stdout.by_ref() {
            rest.push_str(&line.unwrap());
            rest.push('\n');
        }
        let status = self.child.wait().unwrap();
        drop(self.watchdog); // the child is reaped: its pid is no longer ours to kill
        (status, rest)
    }
}

/// The `report:` line of the example's output, and a reader of its numbers.
fn report_in(output: &str) -> (&str, impl Fn(&str) -> u64 + '_) {
    let report = output
        .lines()
        .find(|line| line.starts_with("report:"))
        .unwrap_or_else(|| panic!("no report in output:\n{output}"));
    let field = move |name: &str| -> u64 {
        let after = report.split(&format!("{name} ")).nth(1).unwrap();
        after
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (report, field)
}

#[test]
fn sigterm_drains_the_plan_and_exits_zero_with_a_report() {
    let mut example = Example::start(&[]);
    // Wait for the event "serving", not for a fixed time.
    let line = example.next_line();
    assert!(line.starts_with("ready"), "unexpected first line: {line:?}");
    example.send("TERM");
    let (status, rest) = example.finish();
    assert!(status.success(), "exit status {status:?}, output:\n{rest}");
    let (report, field) = report_in(&rest);
    // Work under 50 ms each and a 2 s grace: everything accepted drains.
    assert!(report.contains("forced false"), "{report}");
    assert!(report.contains("cancelled 0"), "{report}");
    assert_eq!(field("accepted"), field("completed"), "{report}");
}

/// Issue 12, item 8: a second SIGTERM while the drain waits on requests
/// that never end aborts at once. The grace is ten minutes and the test's
/// bound one: without the abort the watchdog kills the example, and the
/// test fails on its exit status.
#[test]
fn a_second_sigterm_during_the_drain_aborts_at_once_with_a_forced_report() {
    let mut example = Example::start(&["--stuck"]);
    let line = example.next_line();
    assert!(line.starts_with("ready"), "unexpected first line: {line:?}");
    example.send("TERM");
    let line = example.next_line();
    assert!(
        line.starts_with("draining: up to 600 s"),
        "unexpected line: {line:?}"
    );
    example.send("TERM");
    let (status, rest) = example.finish();
    assert!(status.success(), "exit status {status:?}, output:\n{rest}");
    let (report, field) = report_in(&rest);
    assert!(report.contains("forced true"), "{report}");
    assert!(field("accepted") > 0, "{report}");
    assert_eq!(field("completed"), 0, "{report}");
    assert_eq!(field("cancelled"), field("accepted"), "{report}");
}

/// The tests below send signals to their own process, where every listener
/// hears every signal: they take turns.
static OWN_SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn signal_self(signal: &str) {
    let pid = std::process::id().to_string();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// The signal that started a shutdown is logged by name, at `INFO`, with
/// the plan. This test sends SIGTERM to its own process: the plan listens
/// from the call on, and once tokio listens the signal no longer ends the
/// process.
#[tokio::test]
async fn the_signal_that_started_a_shutdown_is_logged_by_name() {
    let _turn = OWN_SIGNALS.lock().await;
    let (log, _default) = common::Captured::install();
    common::harness(async {
        let plan = common::tracked(taskplan::Plan::builder().name("signalled").build().unwrap());
        let shutdown = plan.shutdown_on_signal(Duration::from_secs(1));
        signal_self("TERM");
        assert!(!shutdown.await.forced);
        let line = log.line_containing("shutting down");
        assert!(line.contains("INFO"), "{line}");
        assert!(line.contains("plan=signalled"), "{line}");
        assert!(line.contains("signal=\"SIGTERM\""), "{line}");
    })
    .await
}

/// A second signal sent right after the first, before the drain has even
/// begun, is not lost: it aborts the drain of a task that never ends, and
/// is logged at `WARN` by name. Without the abort, the hour-long grace
/// outlasts the harness's bound and the test fails.
#[tokio::test]
async fn a_second_signal_sent_before_the_drain_began_still_aborts_and_is_logged() {
    let _turn = OWN_SIGNALS.lock().await;
    let (log, _default) = common::Captured::install();
    common::harness(async {
        let plan = common::tracked(
            taskplan::Plan::builder()
                .name("signalled twice")
                .workers(1)
                .build()
                .unwrap(),
        );
        let stuck = plan.submit(std::future::pending::<()>()).await.unwrap();
        let queued = plan.submit(std::future::pending::<()>()).await.unwrap();
        let shutdown = plan.shutdown_on_signal(Duration::from_secs(3600));
        signal_self("TERM");
        signal_self("INT");
        let report = shutdown.await;
        assert!(report.forced, "{report:?}");
        assert_eq!((report.completed, report.cancelled), (0, 2), "{report:?}");
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert!(queued.await.unwrap_err().is_cancelled());

        let first = log.line_containing("shutting down");
        let second = log.line_containing("second signal: aborting");
        assert!(second.contains("WARN"), "{second}");
        assert!(second.contains("plan=signalled twice"), "{second}");
        // Two kinds, one each: whichever was seen first, the other is named.
        let named = |line: &str, signal: &str| line.contains(&format!("signal=\"{signal}\""));
        assert!(
            (named(&first, "SIGTERM") && named(&second, "SIGINT"))
                || (named(&first, "SIGINT") && named(&second, "SIGTERM")),
            "{first}\n{second}"
        );
    })
    .await
}
