//! Prints the cache-line round-trip probe ([`support::rtt`]): median ns per
//! round trip of an `AtomicU64` ping-ponged between two OS threads, and
//! whether that reads as the machine's two vCPUs being near (70-100 ns) or
//! far apart (420-500 ns).
//!
//! Run with `cargo bench --bench rtt` (five probes of 20,000 round trips
//! each, a few ms apart, to show whether the state moves), or `-- --test`
//! for one small probe. Nothing is written to a file: `benches/throughput.rs`
//! records the probe around its `throughput_multi_noop` group.

mod support;
use support::rtt;

fn main() {
    let smoke = std::env::args().skip(1).any(|arg| arg == "--test");
    let (probes, batches) = if smoke { (1, 20) } else { (5, rtt::BATCHES) };
    println!(
        "cache-line round trip between two threads: median of {batches} batches of {} round trips",
        rtt::BATCH
    );
    for _ in 0..probes {
        let ns = rtt::probe(batches);
        println!("{}", rtt::record_line("probe", ns));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
