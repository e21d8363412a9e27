//! apalis 1.0 with apalis-redis 1.0: `RedisStorage::push_bulk` fills, a
//! worker built with `WorkerBuilder` and `.concurrency(slots)` (apalis's
//! tower concurrency limit) runs, with the storage's default config.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_redis::RedisStorage;

use super::{Drain, FILL_CHUNK, Payload};
use crate::done::Done;

async fn storage(url: &str) -> Result<RedisStorage<Payload>, String> {
    let conn = apalis_redis::connect(url)
        .await
        .map_err(|e| format!("apalis: connect: {e}"))?;
    Ok(RedisStorage::new(conn))
}

pub async fn fill(url: &str, n: u64) -> Result<(), String> {
    let mut storage = storage(url).await?;
    let mut i = 0;
    while i < n {
        let jobs: Vec<Payload> = (i..(i + FILL_CHUNK).min(n)).collect();
        storage
            .push_bulk(jobs)
            .await
            .map_err(|e| format!("apalis: push_bulk: {e}"))?;
        i += FILL_CHUNK;
    }
    Ok(())
}

async fn noop(_job: Payload, done: Data<Arc<Done>>) -> Result<(), BoxDynError> {
    done.hit();
    Ok(())
}

pub async fn drain(url: &str, n: u64, slots: usize, stall: Duration) -> Result<Drain, String> {
    let done = Arc::new(Done::new(n));
    let storage = storage(url).await?;
    // The first error the worker reports, and its context to stop it by.
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let context: Arc<Mutex<Option<WorkerContext>>> = Arc::default();
    let (errors, contexts) = (Arc::clone(&first_error), Arc::clone(&context));
    let worker = WorkerBuilder::new("bench")
        .backend(storage)
        .data(Arc::clone(&done))
        .concurrency(slots)
        .on_event(move |cx, event| {
            contexts.lock().unwrap().get_or_insert_with(|| cx.clone());
            if let Event::Error(e) = event {
                errors.lock().unwrap().get_or_insert_with(|| e.to_string());
            }
        })
        .build(noop);

    let start = Instant::now();
    let running = tokio::spawn(worker.run());
    let waited = done.wait(stall).await;
    let elapsed = start.elapsed();

    // Stop it as its docs say (through its context); a worker that does
    // not stop in time is aborted, so it never runs into the next peer.
    let cx = context.lock().unwrap().clone();
    if let Some(cx) = cx {
        let _ = cx.stop();
    }
    let mut running = running;
    if tokio::time::timeout(Duration::from_secs(10), &mut running)
        .await
        .is_err()
    {
        running.abort();
    }
    if let Err(e) = waited {
        let error = first_error.lock().unwrap().clone();
        return Err(match error {
            Some(error) => format!("apalis: {e}; first worker error: {error}"),
            None => format!("apalis: {e}"),
        });
    }
    Ok(Drain {
        elapsed,
        done: done.count(),
    })
}
