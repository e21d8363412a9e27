//! Publishing a plan's counts, gauges and timings to Prometheus through the
//! `metrics` facade (feature `metrics`).
//!
//! Run it with `cargo run --example metrics --features metrics`. It runs a
//! few tagged tasks and prints what a Prometheus scrape would read: the
//! plan's series (`taskplan_*`, labelled `plan`) and each tag's
//! (`taskplan_tag_*`, labelled `plan` and `tag`). A service installs its
//! exporter the same way and serves `render()` (or lets the exporter's own
//! listener serve it) on `/metrics`.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use taskplan::Plan;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Install the recorder before building the plan: a plan registers its
    // series when it is built, and a tag when it is first used.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    // Timings are opt-in: they feed the two histograms.
    let plan = Plan::builder()
        .name("thumbnails")
        .workers(4)
        .timings(true)
        .build()?;
    let mut handles = Vec::new();
    for image in 0..20u64 {
        let tag = if image % 4 == 0 {
            "interactive"
        } else {
            "batch"
        };
        let resize = async move {
            tokio::time::sleep(Duration::from_millis(5 + image)).await;
            image
        };
        handles.push(plan.task(resize).tag(tag).submit().await?);
    }
    // One that never finishes, cancelled: counted under `outcome="cancelled"`.
    let stuck = plan.submit(std::future::pending::<u64>()).await?;
    stuck.cancel();
    for handle in handles {
        handle.await?;
    }
    plan.wait_idle().await;

    print!("{}", prometheus.render());
    Ok(())
}
