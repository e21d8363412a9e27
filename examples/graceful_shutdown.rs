//! A small service that keeps submitting work and, on SIGTERM or Ctrl-C,
//! stops taking work, drains what it has for up to two seconds, cancels the
//! rest, and prints the report.
//!
//! Run it with `cargo run --example graceful_shutdown`, then press Ctrl-C
//! (or `kill -TERM <pid>`). It prints `ready` once it is serving.

use std::time::Duration;

use taskplan::Plan;

/// How long a shutdown may drain before the rest is cancelled.
const GRACE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plan = Plan::builder()
        .workers(4)
        .capacity(64)
        .name("service")
        .build()?;

    // The "service": a request every few milliseconds, each 5 to 50 ms of
    // work. Stops when the plan closes and hands its request back.
    let intake = plan.clone();
    let producer = tokio::spawn(async move {
        let mut served = 0u64;
        loop {
            let work = Duration::from_millis(5 + (served * 7) % 46);
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

    // Listening starts with this call, so "ready" is only printed once a
    // signal can no longer be missed.
    let shutdown = plan.shutdown_on_signal(GRACE);
    println!("ready: pid {}", std::process::id());
    let report = shutdown.await;
    let accepted = producer.await?;
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
