//! Issue 0.2, semantics 9: a real process shuts down gracefully on SIGTERM.
//!
//! Runs the `graceful_shutdown` example (built by `common::example_binary`) as a
//! child process, waits for it to say it is serving, sends it SIGTERM, and
//! checks that it drains and exits 0 with its report.
//!
//! Mutation testing: the mutants of `Signals::listen` and `Signals::recv`
//! for targets without Unix signals (`#[cfg(not(unix))]` in src/signal.rs)
//! survive on Linux, where that code is not compiled; they need a run on
//! Windows.
#![cfg(all(unix, feature = "signal"))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn sigterm_drains_the_plan_and_exits_zero_with_a_report() {
    let binary = common::example_binary("graceful_shutdown");
    assert!(binary.exists(), "{} is missing", binary.display());
    let mut child = Command::new(&binary)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The reads below block: if the example hangs, kill it once the bound
    // runs out, so the reads end and the test fails instead of hanging.
    let pid = child.id().to_string();
    let watchdog = common::Watchdog::start(common::TEST_BOUND, move || {
        eprintln!(
            "the example did not exit within {:?}: killing it",
            common::TEST_BOUND
        );
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // Wait for the event "serving", not for a fixed time.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready"), "unexpected first line: {line:?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM failed");

    let mut rest = String::new();
    for line in stdout.lines() {
        rest.push_str(&line.unwrap());
        rest.push('\n');
    }
    let status = child.wait().unwrap();
    drop(watchdog); // the child is reaped: its pid is no longer ours to kill
    assert!(status.success(), "exit status {status:?}, output:\n{rest}");
    let report = rest
        .lines()
        .find(|line| line.starts_with("report:"))
        .unwrap_or_else(|| panic!("no report in output:\n{rest}"));
    // Work under 50 ms each and a 2 s grace: everything accepted drains.
    assert!(report.contains("forced false"), "{report}");
    assert!(report.contains("cancelled 0"), "{report}");
    let field = |name: &str| -> u64 {
        let after = report.split(&format!("{name} ")).nth(1).unwrap();
        after
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(field("accepted"), field("completed"), "{report}");
}

/// The signal that started a shutdown is logged by name, at `INFO`, with
/// the plan. This test sends SIGTERM to its own process: the plan listens
/// from the call on, and once tokio listens the signal no longer ends the
/// process.
#[tokio::test]
async fn the_signal_that_started_a_shutdown_is_logged_by_name() {
    let (log, _default) = common::Captured::install();
    common::harness(async {
        let plan = common::tracked(taskplan::Plan::builder().name("signalled").build().unwrap());
        let shutdown = plan.shutdown_on_signal(std::time::Duration::from_secs(1));
        let pid = std::process::id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        assert!(!shutdown.await.forced);
        let line = log.line_containing("shutting down");
        assert!(line.contains("INFO"), "{line}");
        assert!(line.contains("plan=signalled"), "{line}");
        assert!(line.contains("signal=\"SIGTERM\""), "{line}");
    })
    .await
}
