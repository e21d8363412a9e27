//! The essay's story, with a plan instead of threads.
//!
//! A manager runs a sync engine as tasks on a plan. One sync is stuck on slow
//! I/O: it reads from a server that accepted the connection and never
//! answers. The manager loses patience and cancels it, and the stuck read is
//! dropped at once: no flag for the sync to check, no join that never
//! returns. Then the very same manager runs with three workers instead of
//! one: the only change is the number passed to `workers`.
//!
//! Run it with `cargo run --example sync_engine`.

use std::time::{Duration, Instant};

use taskplan::{Plan, TaskHandle};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// How long the manager lets a sync run before it stops it.
const PATIENCE: Duration = Duration::from_millis(100);

/// A sync that finishes: it "copies" `files` files, 5 ms each, and says
/// when it was done.
async fn sync_folder(files: u64, since: Instant) -> (u64, Duration) {
    for _ in 0..files {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (files, since.elapsed())
}

/// A sync stuck on slow I/O: it waits for a reply that never comes.
async fn sync_from_silent_server(mut connection: TcpStream) -> u64 {
    let mut reply = [0u8; 1];
    // Blocks until the server writes, which it never does. A thread here
    // could only be stopped by the server; a task is stopped by dropping it,
    // which also closes the connection.
    connection.read(&mut reply).await.unwrap_or(0) as u64
}

async fn manager(workers: usize, server: &TcpListener) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let plan = Plan::builder().workers(workers).name("sync").build()?;

    let connection = TcpStream::connect(server.local_addr()?).await?;
    let mut stuck = plan.submit(sync_from_silent_server(connection)).await?;
    let folders = [("photos", 8), ("documents", 4), ("notes", 2)];
    let mut syncs: Vec<(&str, TaskHandle<(u64, Duration)>)> = Vec::new();
    for (folder, files) in folders {
        syncs.push((folder, plan.submit(sync_folder(files, started)).await?));
    }

    if tokio::time::timeout(PATIENCE, &mut stuck).await.is_err() {
        let asked = Instant::now();
        stuck.cancel();
        let outcome = (&mut stuck).await;
        println!(
            "  music: stuck on slow I/O for {} ms; stopped {:.2} ms after cancel ({})",
            PATIENCE.as_millis(),
            asked.elapsed().as_secs_f64() * 1000.0,
            outcome.unwrap_err(),
        );
    }
    for (folder, sync) in syncs {
        let (files, done_at) = sync.await?;
        println!(
            "  {folder}: synced {files} files, done at {} ms",
            done_at.as_millis()
        );
    }

    let report = plan.shutdown(Duration::from_secs(5)).await;
    println!(
        "  report: {} completed, {} cancelled, all done in {} ms",
        report.completed,
        report.cancelled,
        started.elapsed().as_millis()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A server that accepts connections and never says a word.
    let server = TcpListener::bind("127.0.0.1:0").await?;

    for workers in [1, 3] {
        println!("manager with {workers} worker(s):");
        manager(workers, &server).await?;
    }
    Ok(())
}
