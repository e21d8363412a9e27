//! apalis 1.0 with apalis-redis 1.0: `RedisStorage::push_bulk` fills, a
//! worker built with `WorkerBuilder` and `.concurrency(slots)` (apalis's
//! tower concurrency limit) runs, with the storage's default config.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::RedisStorage;

use super::{Drain, FILL_CHUNK, Payload};
use crate::clock::Clock;
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
            if std::env::var_os("DURABLE_PEERS_DEBUG").is_some() {
                eprintln!("apalis event: {event:?}");
            }
            if let Event::Error(e) = event {
                errors.lock().unwrap().get_or_insert_with(|| e.to_string());
            }
        })
        .build(noop);

    let clock = Clock::start();
    let mut running = tokio::spawn(worker.run());
    // A worker whose `run()` ends before the last job (it does, with an
    // error, when its fetch script fails) ends the wait at once.
    let (waited, ended) = tokio::select! {
        waited = done.wait(stall) => (waited, None),
        ended = &mut running => (
            Err(format!("the worker stopped after {} of {n} jobs", done.count())),
            Some(ended),
        ),
    };
    let timed = clock.stop();

    // Stop it as its docs say (through its context); a worker that does
    // not stop in time is aborted, so it never runs into the next peer.
    let ended = match ended {
        Some(ended) => Some(ended),
        None => {
            let cx = context.lock().unwrap().clone();
            if let Some(cx) = cx {
                let _ = cx.stop();
            }
            match tokio::time::timeout(Duration::from_secs(10), &mut running).await {
                Ok(ended) => Some(ended),
                Err(_) => {
                    running.abort();
                    None
                }
            }
        }
    };
    let ended = match ended {
        Some(Ok(Ok(()))) => None,
        Some(Ok(Err(e))) => Some(format!("run() returned: {e}")),
        Some(Err(e)) => Some(format!("run() panicked: {e}")),
        None => Some("did not stop within 10 s".to_owned()),
    };
    if let Err(e) = waited {
        let mut why = format!("apalis: {e}");
        if let Some(ended) = ended {
            why += &format!("; worker {ended}");
        }
        if let Some(error) = first_error.lock().unwrap().clone() {
            why += &format!("; first error event: {error}");
        }
        return Err(why);
    }
    Ok(Drain {
        timed,
        done: done.count(),
    })
}
