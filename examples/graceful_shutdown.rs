//! A small service that keeps submitting work and, on SIGTERM or Ctrl-C,
//! stops taking work, drains what it has for up to two seconds, cancels the
//! rest, and prints the report. A second SIGTERM or Ctrl-C during the drain
//! cancels the rest at once.
//!
//! Run it with `cargo run --example graceful_shutdown`, then press Ctrl-C
//! (or `kill -TERM <pid>`). It prints `ready` once it is serving, and
//! `draining` once the shutdown has begun.
//!
//! With `-- --stuck`, every request hangs (a call that never answers) and
//! the grace period is ten minutes: the first Ctrl-C starts a drain that
//! cannot finish, and only a second one ends it soon, with the hung
//! requests cancelled and `forced true` in the report.

use std::time::Duration;

use taskplan::Plan;

/// How long a shutdown may drain before the rest is cancelled.
const GRACE: Duration = Duration::from_secs(2);

/// The grace period with `--stuck`: long enough that a drain of hung
/// requests visibly waits for a second signal.
const STUCK_GRACE: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stuck = std::env::args()
        .skip(1)
        .any(|argument| argument == "--stuck");
    let grace = if stuck { STUCK_GRACE } else { GRACE };
    let plan = Plan::builder()
        .workers(4)
        .capacity(64)
        .name("service")
        .build()?;

    // The "service": a request every few milliseconds, each 5 to 50 ms of
    // work, or never ending with `--stuck`. Stops when the plan closes and
    // hands its request back.
    let intake = plan.clone();
    let producer = tokio::spawn(async move {
        let mut served = 0u64;
        loop {
            let work = if stuck {
                Duration::MAX
            } else {
                Duration::from_millis(5 + (served * 7) % 46)
            };
            match intake.submit(tokio::time::sleep(work)).await {
                Ok(_detached) => served += 1,
                Err(refused) => {
                    drop(refused.into_inner());
                    return served;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });

    // The shutdown closes the plan as its drain begins.
    let closed = plan.closed();
    let announced = tokio::spawn(async move {
        closed.await;
        println!(
            "draining: up to {} s; a second signal cancels the rest at once",
            grace.as_secs()
        );
    });

    // Listening starts with this call, so "ready" is only printed once a
    // signal can no longer be missed.
    let shutdown = plan.shutdown_on_signal(grace);
    println!("ready: pid {}", std::process::id());
    let report = shutdown.await;
    let accepted = producer.await?;
    announced.await?;
    println!(
        "report: accepted {accepted}, completed {}, cancelled {}, panicked {}, forced {}, drained in {} ms",
        report.completed,
        report.cancelled,
        report.panicked,
        report.forced,
        report.elapsed.as_millis()
    );
    Ok(())
}
