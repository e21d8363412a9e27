//! taskplan's durable queue: a [`Client`] enqueues, a [`Host`] on a
//! [`Plan`] with `slots` workers claims and runs, with default host options.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use taskplan::Plan;
use taskplan::durable::{Client, Host, JobContext};

use super::{Drain, FILL_CHUNK, Payload};
use crate::clock::Clock;
use crate::done::Done;

pub const PREFIX: &str = "bench";
pub const KIND: &str = "noop";

pub async fn client(url: &str) -> Result<Client, String> {
    Client::connect_with_prefix(url, PREFIX)
        .await
        .map_err(|e| format!("taskplan: connect: {e}"))
}

/// Enqueues `n` jobs, `FILL_CHUNK` in flight at once on the client's
/// multiplexed connection (the client has no bulk enqueue).
pub async fn fill(url: &str, n: u64) -> Result<(), String> {
    let client = client(url).await?;
    futures::stream::iter(0..n)
        .map(|i| {
            let client = &client;
            async move { client.job(KIND, &(i as Payload)).enqueue().await }
        })
        .buffer_unordered(FILL_CHUNK as usize)
        .try_for_each(|_| async { Ok(()) })
        .await
        .map_err(|e| format!("taskplan: enqueue: {e}"))
}

/// Starts a host with `slots` workers whose handler counts into `done`.
pub fn start_host(plan: &Plan, client: &Client, done: Arc<Done>) -> Host {
    Host::builder(plan, client)
        .register(KIND, move |_: Payload, _cx: JobContext| {
            let done = Arc::clone(&done);
            async move {
                done.hit();
                Ok::<(), String>(())
            }
        })
        .start()
}

pub fn plan(slots: usize) -> Result<Plan, String> {
    Plan::builder()
        .workers(slots)
        .name("bench")
        .build()
        .map_err(|e| format!("taskplan: build the plan: {e}"))
}

pub async fn drain(url: &str, n: u64, slots: usize, stall: Duration) -> Result<Drain, String> {
    let client = client(url).await?;
    let plan = plan(slots)?;
    let done = Arc::new(Done::new(n));

    let clock = Clock::start();
    let host = start_host(&plan, &client, Arc::clone(&done));
    let waited = done.wait(stall).await;
    let timed = clock.stop();

    host.shutdown(Duration::from_secs(10)).await;
    waited.map_err(|e| format!("taskplan: {e}"))?;
    // The handlers counted n; the queue must agree once the acks landed.
    let stats = client.stats().await.map_err(|e| e.to_string())?;
    if stats.completed != n {
        return Err(format!(
            "taskplan: {} acknowledged of {n} (claimed {}, failed {})",
            stats.completed, stats.claimed, stats.failed
        ));
    }
    Ok(Drain {
        timed,
        done: done.count(),
    })
}

/// Jobs acknowledged so far, for the multi-process mode's timer.
pub async fn completed(client: &Client) -> Result<u64, String> {
    Ok(client.stats().await.map_err(|e| e.to_string())?.completed)
}
