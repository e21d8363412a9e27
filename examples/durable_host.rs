//! One host of a durable queue: claims `sleep` jobs (payload: milliseconds)
//! from Redis and runs them on a plan, until SIGTERM or Ctrl-C, then drains:
//! running jobs may finish for the grace period, the rest go back to their
//! place in the queue.
//!
//! ```sh
//! redis-server --port 6390 &
//! cargo run --example durable_host --features redis -- redis://127.0.0.1:6390/ host-1
//! ```
//!
//! Arguments: the Redis URL, the host's name, and optionally the lease and
//! the grace period in milliseconds (default 5000 and 2000) and the number
//! of workers (default 2). It prints `ready`, then `start <id> <attempt>`
//! and `done <id> <attempt>` for each job, and `drained completed <n>
//! cancelled <n>` at the end; the host's own log lines go to stderr. The
//! drain is `Host::shutdown_on_signal` (features `redis` and `signal`). The
//! multi-process tests in `tests/redis_processes.rs` drive it.

use std::time::Duration;

use taskplan::Plan;
use taskplan::durable::{Client, Host, JobContext};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::DEBUG)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(name)) = (args.first(), args.get(1)) else {
        return Err(
            "usage: durable_host <redis-url> <name> [lease_ms] [grace_ms] [workers]".into(),
        );
    };
    let number = |i: usize, default: u64| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let lease = Duration::from_millis(number(2, 5000)?);
    let grace = Duration::from_millis(number(3, 2000)?);
    let workers = number(4, 2)? as usize;

    let plan = Plan::builder()
        .workers(workers)
        .name(name.clone())
        .build()?;
    let client = Client::connect(url).await?;
    let host = Host::builder(&plan, &client)
        .name(name.clone())
        .lease(lease)
        .poll_interval(Duration::from_millis(20))
        .register("sleep", |ms: u64, cx: JobContext| async move {
            println!("start {} {}", cx.id(), cx.attempt());
            tokio::time::sleep(Duration::from_millis(ms)).await;
            println!("done {} {}", cx.id(), cx.attempt());
            Ok::<(), String>(())
        })
        .start();
    // Listens for signals from this call on, so `ready` comes after it: a
    // signal sent on seeing `ready` is not missed.
    let drained = host.shutdown_on_signal(grace);
    println!("ready");
    let report = drained.await;
    println!(
        "drained completed {} cancelled {}",
        report.completed, report.cancelled
    );
    Ok(())
}
