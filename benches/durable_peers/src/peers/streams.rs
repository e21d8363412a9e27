//! The floor: a bare Redis Streams consumer group with the `redis` crate.
//! The fill is `XADD`ed (pipelined); each of `slots` consumer tasks, on a
//! connection of its own, reads `COUNT k` entries with `XREADGROUP`, runs
//! the no-op handler for each, and acknowledges the batch with one `XACK`
//! sent in the same pipeline as the next `XREADGROUP`. No leases, retries,
//! dead letters, priorities or stats: what a hand-rolled queue costs.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

use super::{Drain, FILL_CHUNK};
use crate::clock::Clock;
use crate::done::Done;

pub const STREAM: &str = "bench:stream";
pub const GROUP: &str = "bench";

async fn connection(url: &str) -> Result<MultiplexedConnection, String> {
    redis::Client::open(url)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("streams: connect: {e}"))
}

/// Creates the group and `XADD`s `n` entries, `FILL_CHUNK` per pipeline.
pub async fn fill(url: &str, n: u64) -> Result<(), String> {
    let mut con = connection(url).await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(&mut con)
        .await
        .map_err(|e| format!("streams: XGROUP CREATE: {e}"))?;
    let mut i = 0;
    while i < n {
        let mut pipe = redis::pipe();
        for j in i..(i + FILL_CHUNK).min(n) {
            pipe.cmd("XADD")
                .arg(STREAM)
                .arg("*")
                .arg("job")
                .arg(j)
                .ignore();
        }
        pipe.query_async::<()>(&mut con)
            .await
            .map_err(|e| format!("streams: XADD: {e}"))?;
        i += FILL_CHUNK;
    }
    Ok(())
}

async fn noop(done: &Done) {
    done.hit();
}

/// One consumer: read a batch, run it, ack it with the next read, until
/// the group has nothing new.
async fn consume(
    mut con: MultiplexedConnection,
    name: String,
    count: usize,
    done: Arc<Done>,
) -> Result<(), String> {
    let mut acks: Vec<String> = Vec::new();
    loop {
        let mut pipe = redis::pipe();
        if !acks.is_empty() {
            pipe.cmd("XACK").arg(STREAM).arg(GROUP).arg(&acks).ignore();
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&name)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">");
        let (reply,): (Option<StreamReadReply>,) = pipe
            .query_async(&mut con)
            .await
            .map_err(|e| format!("streams: XREADGROUP: {e}"))?;
        acks.clear();
        let ids = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| e.id);
        for id in ids {
            noop(&done).await;
            acks.push(id);
        }
        if acks.is_empty() {
            return Ok(());
        }
    }
}

/// One connection per consumer, made before the clock starts.
pub async fn connect(url: &str, slots: usize) -> Result<Vec<MultiplexedConnection>, String> {
    let mut cons = Vec::new();
    for _ in 0..slots {
        cons.push(connection(url).await?);
    }
    Ok(cons)
}

/// Runs one consumer per connection, named `<prefix>-<i>`, until the
/// stream has no new entries for the group.
pub async fn run_consumers(
    cons: Vec<MultiplexedConnection>,
    prefix: &str,
    count: usize,
    done: Arc<Done>,
) -> Result<(), String> {
    let tasks: Vec<_> = cons
        .into_iter()
        .enumerate()
        .map(|(i, con)| {
            tokio::spawn(consume(
                con,
                format!("{prefix}-{i}"),
                count,
                Arc::clone(&done),
            ))
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| format!("streams: consumer: {e}"))??;
    }
    Ok(())
}

pub async fn drain(
    url: &str,
    n: u64,
    slots: usize,
    count: usize,
    stall: Duration,
) -> Result<Drain, String> {
    let done = Arc::new(Done::new(n));
    let cons = connect(url, slots).await?;

    let clock = Clock::start();
    let running = tokio::spawn({
        let done = Arc::clone(&done);
        async move { run_consumers(cons, "c", count, done).await }
    });
    let waited = done.wait(stall).await;
    let timed = clock.stop();
    running
        .await
        .map_err(|e| format!("streams: consumers: {e}"))??;
    waited.map_err(|e| format!("streams: {e}"))?;
    let mut con = connection(url).await?;
    let (pending, done_count) = group_progress(&mut con).await?;
    if pending != 0 || done_count != n {
        return Err(format!(
            "streams: {done_count} of {n} acknowledged, {pending} pending"
        ));
    }
    Ok(Drain {
        timed,
        done: done.count(),
    })
}

/// The group's pending count and entries acknowledged (read minus
/// pending), from `XINFO GROUPS` (Redis 7's `entries-read`).
pub async fn group_progress(con: &mut MultiplexedConnection) -> Result<(u64, u64), String> {
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(STREAM)
        .query_async(con)
        .await
        .map_err(|e| format!("streams: XINFO GROUPS: {e}"))?;
    let group = groups.first().ok_or("streams: no group")?;
    let num = |key: &str| -> u64 {
        match group.get(key) {
            Some(redis::Value::Int(v)) => *v as u64,
            _ => 0,
        }
    };
    let pending = num("pending");
    Ok((pending, num("entries-read").saturating_sub(pending)))
}
