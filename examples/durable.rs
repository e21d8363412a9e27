//! The durable queue in one process: a client enqueues jobs into Redis, a
//! host runs them on a plan, and the results and the cluster's stats are
//! printed.
//!
//! ```sh
//! redis-server --port 6379 --save "" --appendonly no &
//! cargo run --example durable --features redis
//! ```
//!
//! It connects to `REDIS_URL` if set, else `redis://127.0.0.1:6379/`, and
//! keeps its keys under the prefix `taskplan-demo`, so it does not touch
//! another queue in the same database. The stats it prints count every run
//! of the demo against that Redis, as a cluster's would. In production the
//! client and the hosts are usually different processes: see the
//! `durable_host` example for a host alone.

use std::time::Duration;

use taskplan::Plan;
use taskplan::durable::{Client, Host, JobContext, JobState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let client = Client::connect_with_prefix(&url, "taskplan-demo")
        .await
        .map_err(|e| format!("cannot reach Redis at {url} ({e}); start one with `redis-server`"))?
        // Finished records are for inspection; a demo needs them briefly.
        .finished_ttl(Duration::from_secs(600));

    // Enqueue: photos to resize (one of them urgent), and a flaky upload
    // that fails its first attempt and is retried.
    let mut ids = Vec::new();
    for (i, file) in ["cat.jpg", "dog.jpg", "bird.jpg"].into_iter().enumerate() {
        let priority = if i == 2 { 10 } else { 0 };
        let id = client
            .job("resize", &(file, 640u32))
            .tag("photos")
            .priority(priority)
            .enqueue()
            .await?;
        ids.push(id);
    }
    ids.push(
        client
            .job("upload", "report.pdf")
            .tag("uploads")
            .max_attempts(3)
            .enqueue()
            .await?,
    );
    let photos = client.tag_counts("photos").await?;
    println!(
        "enqueued {} jobs; photos queued: {}",
        ids.len(),
        photos.queued()
    );

    // Host: run them on a plan with two workers.
    let plan = Plan::builder().workers(2).name("demo").build()?;
    let host = Host::builder(&plan, &client)
        .name("demo-host")
        .poll_interval(Duration::from_millis(50))
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .register(
            "resize",
            |(file, width): (String, u32), cx: JobContext| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                println!("job {}: resized {file} to {width} px", cx.id());
                Ok::<(), String>(())
            },
        )
        .register("upload", |file: String, cx: JobContext| async move {
            if cx.attempt() == 1 {
                // Handlers should be idempotent: this one may run again.
                return Err(format!("upload of {file} timed out (attempt 1)"));
            }
            println!(
                "job {}: uploaded {file} on attempt {}",
                cx.id(),
                cx.attempt()
            );
            Ok(())
        })
        .start();

    // Wait, with a bound, for every job to finish.
    for &id in &ids {
        let mut polls = 0;
        let info = loop {
            let info = client.job_info(id).await?.ok_or("a job's record is gone")?;
            if matches!(
                info.state,
                JobState::Done | JobState::Dead | JobState::Cancelled
            ) {
                break info;
            }
            polls += 1;
            if polls > 200 {
                return Err(format!("job {id} did not finish within 20 s: {info:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "job {id} ({}): {:?} after {} attempt(s), by {}",
            info.kind,
            info.state,
            info.attempts,
            info.owner.as_deref().unwrap_or("-")
        );
    }
    host.shutdown(Duration::from_secs(5)).await;

    let stats = client.stats().await?;
    println!(
        "queue stats (every run): enqueued {} claimed {} completed {} failed {} dead {}",
        stats.enqueued, stats.claimed, stats.completed, stats.failed, stats.dead
    );
    let uploads = client.tag_stats("uploads").await?;
    println!(
        "tag uploads: completed {} failed {}; running now {}",
        uploads.completed,
        uploads.failed,
        client.tag_counts("uploads").await?.running
    );
    Ok(())
}
