//! BullMQ's official Rust port (`bullmq-official`, from the BullMQ
//! monorepo): `Queue::add_bulk` fills, a `Worker` with `concurrency(slots)`
//! and otherwise default options runs. Like BullMQ on Node, it keeps
//! completed jobs by default (as taskplan keeps finished records).

use std::sync::Arc;
use std::time::Duration;

use bullmq::options::RedisConnectionOptions;
use bullmq::worker::CancellationToken;
use bullmq::{BulkJob, Job, Queue, QueueOptions, Worker, WorkerOptions};

use super::{Drain, FILL_CHUNK, Payload};
use crate::clock::Clock;
use crate::done::Done;

pub const QUEUE: &str = "bench";

fn connection(url: &str) -> RedisConnectionOptions {
    RedisConnectionOptions::new().url(url)
}

async fn queue(url: &str) -> Result<Queue, String> {
    Queue::with_options(QUEUE, QueueOptions::new().connection(connection(url)))
        .await
        .map_err(|e| format!("bullmq: open the queue: {e}"))
}

pub async fn fill(url: &str, n: u64) -> Result<(), String> {
    let queue = queue(url).await?;
    let mut i = 0;
    while i < n {
        let jobs = (i..(i + FILL_CHUNK).min(n))
            .map(|j| BulkJob::new("noop", j as Payload))
            .collect();
        queue
            .add_bulk(jobs)
            .await
            .map_err(|e| format!("bullmq: add_bulk: {e}"))?;
        i += FILL_CHUNK;
    }
    Ok(())
}

pub async fn drain(url: &str, n: u64, slots: usize, stall: Duration) -> Result<Drain, String> {
    let done = Arc::new(Done::new(n));
    let handler_done = Arc::clone(&done);
    let processor = move |_job: Job, _token: CancellationToken| {
        let done = Arc::clone(&handler_done);
        async move {
            done.hit();
            Ok(serde_json::Value::Null)
        }
    };
    let options = WorkerOptions::new()
        .connection(connection(url))
        .concurrency(slots)
        .manual_start();
    let worker = Worker::with_options(QUEUE, processor, options)
        .await
        .map_err(|e| format!("bullmq: create the worker: {e}"))?;

    let clock = Clock::start();
    worker
        .run()
        .await
        .map_err(|e| format!("bullmq: run: {e}"))?;
    let waited = done.wait(stall).await;
    let timed = clock.stop();

    worker
        .close(10_000)
        .await
        .map_err(|e| format!("bullmq: close: {e}"))?;
    waited.map_err(|e| format!("bullmq: {e}"))?;
    let completed = queue(url)
        .await?
        .get_completed_count()
        .await
        .map_err(|e| format!("bullmq: count: {e}"))?;
    if completed != n {
        return Err(format!("bullmq: {completed} completed of {n}"));
    }
    Ok(Drain {
        timed,
        done: done.count(),
    })
}
