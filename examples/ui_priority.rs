//! The essay's interactive UI: background jobs flood the plan, the user
//! clicks, and `promote("ui")` makes the click's work run next instead of
//! after everything already queued.
//!
//! Run it with `cargo run --example ui_priority`.

use std::time::Duration;

use taskplan::Plan;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One worker, like the essay's single TaskExecutor thread.
    let plan = Plan::builder().workers(1).name("ui").build()?;
    let (ran_tx, mut ran_rx) = mpsc::unbounded_channel::<String>();

    // Background work floods the queue: thumbnails, 10 ms each.
    let (first_started_tx, first_started_rx) = tokio::sync::oneshot::channel();
    let mut first_started_tx = Some(first_started_tx);
    for n in 1..=8 {
        let ran_tx = ran_tx.clone();
        let started_tx = first_started_tx.take();
        plan.task(async move {
            if let Some(started_tx) = started_tx {
                started_tx.send(()).ok();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            ran_tx.send(format!("thumbnail {n}")).ok();
        })
        .tag("bg")
        .submit()
        .await?;
    }
    // The worker is busy with the first thumbnail when the user clicks; a
    // running task is never interrupted, only the queue is reordered.
    first_started_rx.await?;

    // The user clicks: two small jobs, queued behind all eight thumbnails.
    for job in ["open menu", "highlight button"] {
        let ran_tx = ran_tx.clone();
        plan.task(async move {
            ran_tx.send(format!("{job}  <- user action")).ok();
        })
        .tag("ui")
        .submit()
        .await?;
    }
    let queued = plan.stats().queued;
    // Read while the tags have work: the plan keeps a tag's counts only
    // while one of its tasks is queued or running.
    let (ui, bg) = (plan.tag_stats("ui"), plan.tag_stats("bg"));
    let moved = plan.promote("ui");
    println!("{queued} jobs queued; promote(\"ui\") moved {moved} to the front");

    drop(ran_tx);
    plan.wait_idle().await;
    let mut order = Vec::new();
    while let Some(job) = ran_rx.recv().await {
        order.push(job);
    }
    println!("ran in this order:");
    for (position, job) in order.iter().enumerate() {
        println!("  {:>2}. {job}", position + 1);
    }
    println!(
        "before the promotion: ui {} queued; bg {} queued, {} running",
        ui.queued, bg.queued, bg.running
    );
    println!("all done: {} completed", plan.stats().completed);
    plan.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
