//! # taskplan's durable queue against its peers
//!
//! **What it measures.** Throughput of no-op jobs drained from a queue
//! filled beforehand, in jobs per second, for three Redis-backed job
//! queues and a bare Streams floor, each consuming with **4 concurrent
//! slots in one process**:
//!
//! | peer | crate | consumer |
//! |---|---|---|
//! | `taskplan` | this repository (`durable`, feature `redis`) | `Host` on a `Plan` with 4 workers, default host options |
//! | `apalis` | `apalis` 1.0 + `apalis-redis` 1.0 | `WorkerBuilder` with `.concurrency(4)`, default `RedisStorage` config |
//! | `bullmq` | `bullmq-official` 1.4 (BullMQ's own Rust port, Taskforce.sh; docs.bullmq.io names it `bullmq-rust`, but that name on crates.io is an unrelated wrapper) | `Worker` with `concurrency(4)`, default options |
//! | `streams` | `redis` (a bare Streams consumer group) | 4 tasks: `XREADGROUP COUNT k` (10) + one `XACK` per batch, pipelined with the next read |
//! | `streams1` | the same | the same with `COUNT 1`: one round trip per job |
//!
//! The streams peers are the floor: no leases, retries, dead letters,
//! priorities or stats, only what a hand-rolled queue costs, batched
//! (`streams`) and one job per round trip (`streams1`).
//!
//! **How.** The harness starts its own `redis-server` (nothing on disk,
//! listening on a unix socket in a temporary directory; `--tcp` for a free
//! loopback port instead); every peer uses the same socket. For each
//! round and peer: `FLUSHALL`, fill the queue with the peer's own bulk or
//! pipelined enqueue (not timed), build the consumer (connections made),
//! then time from starting the consumer until the handler of the last job
//! has run. Handlers count completions with an atomic and wake the timer
//! through a `Notify` at the last one; no sleeps. After each drain the
//! queue itself must agree that every job finished (taskplan's
//! `stats().completed`, BullMQ's completed count, the group's pending
//! count and entries read), else the row shows the error. A peer that
//! makes no progress for `--stall` seconds, returns an error or panics is
//! shown as a failed row; the run goes on.
//!
//! **CPU per job.** Each drain also reads the CPU time (user + system,
//! from `/proc`, in 10 ms ticks: meaningful at the default fills, not in
//! the smoke mode) that `redis-server` and this process spent while it
//! ran, shown per job. A busy machine disturbs these far less than wall
//! time, and Redis's share bounds how far a peer can scale by adding
//! processes: one Redis core at `r` µs/job caps the cluster near
//! `1e6 / r` jobs/s. In the scaling mode the client column is left out
//! (the consumers are other processes) and Redis's includes the parent's
//! progress polls (one small read every 2 ms).
//!
//! **Fairness.** Rounds interleave the peers (the order rotates each
//! round), so machine noise hits all alike; the table shows the median
//! and the min and max over rounds, and the load average at the start and
//! end. Ratios within one run are what counts: on a shared machine the
//! absolute numbers move. apalis-redis 1.0 cannot drain a queue filled
//! with 8,000 jobs or more (7,999 drains): `push` puts every job in its
//! scheduled set (run at "now"), and its fetch script moves all due ones
//! to the active list with one `RPUSH` of `unpack(ids)`, past Lua's 8,000
//! stack slots, so `Worker::run` returns "too many results to unpack"
//! before running a job. The fill is pipelined per peer (taskplan's
//! client has no bulk enqueue: 1,000 enqueues in flight). The run
//! shows that failure at `--n` once (a row, caught), and measures apalis
//! at `--apalis-n` (5,000 by default), a fill it survives; its ratio
//! column compares medians at those fills.
//!
//! **Scaling** (`--scaling`): taskplan's host and the streams floor drain
//! one queue from 1 and from 2 processes (this binary again, `--worker`);
//! the parent times from `go` until the queue's own done counter reaches
//! the fill. On a 2-core machine that also runs `redis-server`, 2
//! processes cannot scale linearly; the speedup column says how close.
//!
//! **Run it** (from the repository root):
//!
//! ```sh
//! cargo run --release --manifest-path benches/durable_peers/Cargo.toml -- --rounds 5 --scaling
//! cargo run --release --manifest-path benches/durable_peers/Cargo.toml -- --smoke
//! ```
//!
//! Flags: `--n N` (fill, 20000), `--apalis-n N` (5000), `--rounds R` (5),
//! `--peers taskplan,apalis,bullmq,streams,streams1`, `--slots S` (4),
//! `--stream-count K` (10), `--scaling`, `--scaling-only`,
//! `--scaling-n N` (50000), `--stall SECS` (10), `--tcp`,
//! `--no-apalis-probe`, `--smoke` (also
//! `--test`: tiny fills, one round, every peer, scaling included).
//! Needs `redis-server` (7.0 or later) on `PATH`. Exits non-zero if any
//! row failed (the apalis probe at `--n` aside, which is expected to).

mod clock;
mod done;
mod peers;
mod procs;
mod server;

use std::time::{Duration, Instant};

use clock::Timed;

use peers::Drain;
use server::RedisServer;

/// One of the queues compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Taskplan,
    Apalis,
    Bullmq,
    Streams,
    /// The same group reading one entry per `XREADGROUP`: a claim and an
    /// ack per job, one round trip each (the ack pipelined with the next
    /// read), the floor for a queue that does not batch.
    StreamsOne,
}

impl Peer {
    const ALL: [Peer; 5] = [
        Peer::Taskplan,
        Peer::Apalis,
        Peer::Bullmq,
        Peer::Streams,
        Peer::StreamsOne,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Taskplan => "taskplan",
            Peer::Apalis => "apalis",
            Peer::Bullmq => "bullmq",
            Peer::Streams => "streams",
            Peer::StreamsOne => "streams1",
        }
    }

    fn label(self, o: &Options) -> String {
        let slots = o.slots;
        match self {
            Peer::Taskplan => format!("taskplan durable (Host, {slots} workers)"),
            Peer::Apalis => format!("apalis-redis 1.0 (concurrency {slots})"),
            Peer::Bullmq => format!("bullmq-official 1.4 (concurrency {slots})"),
            Peer::Streams => format!(
                "Redis Streams group, COUNT {} ({slots} consumers)",
                o.stream_count
            ),
            Peer::StreamsOne => format!("Redis Streams group, COUNT 1 ({slots} consumers)"),
        }
    }

    fn parse(s: &str) -> Result<Peer, String> {
        Peer::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown peer {s:?}; one of taskplan, apalis, bullmq, streams, streams1")
            })
    }
}

struct Options {
    n: u64,
    apalis_n: u64,
    rounds: usize,
    peers: Vec<Peer>,
    slots: usize,
    stream_count: usize,
    table: bool,
    scaling: bool,
    scaling_n: u64,
    stall: Duration,
    tcp: bool,
    probe_apalis: bool,
    worker: Option<(Peer, String)>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        n: 20_000,
        apalis_n: 5_000,
        rounds: 5,
        peers: Peer::ALL.to_vec(),
        slots: 4,
        stream_count: 10,
        table: true,
        scaling: false,
        scaling_n: 50_000,
        stall: Duration::from_secs(10),
        tcp: false,
        probe_apalis: true,
        worker: None,
    };
    let mut worker_peer = None;
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let number = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{v}: {e}"))
        };
        match arg.as_str() {
            "--n" => o.n = number(value()?)?,
            "--apalis-n" => o.apalis_n = number(value()?)?,
            "--rounds" => o.rounds = number(value()?)? as usize,
            "--peers" => {
                o.peers = value()?
                    .split(',')
                    .map(Peer::parse)
                    .collect::<Result<_, _>>()?
            }
            "--slots" => o.slots = number(value()?)? as usize,
            "--stream-count" => o.stream_count = number(value()?)? as usize,
            "--scaling" => o.scaling = true,
            "--scaling-only" => (o.scaling, o.table) = (true, false),
            "--scaling-n" => o.scaling_n = number(value()?)?,
            "--stall" => o.stall = Duration::from_secs(number(value()?)?),
            "--tcp" => o.tcp = true,
            "--no-apalis-probe" => o.probe_apalis = false,
            "--smoke" | "--test" => {
                (o.n, o.apalis_n, o.rounds, o.scaling_n) = (300, 300, 1, 600);
                (o.scaling, o.probe_apalis) = (true, false);
            }
            "--worker" => worker_peer = Some(Peer::parse(&value()?)?),
            "--url" => url = Some(value()?),
            // `cargo bench` passes this to every target.
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other:?}; see the doc comment in main.rs"
                ));
            }
        }
    }
    if let Some(peer) = worker_peer {
        o.worker = Some((peer, url.ok_or("--worker needs --url")?));
    }
    if o.rounds == 0 || o.slots == 0 || o.n == 0 {
        return Err("--rounds, --slots and --n must be positive".into());
    }
    Ok(o)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Fills the peer's queue with `n` jobs and times its drain, in a task of
/// its own so that a panic becomes an error row.
async fn measure(server: &RedisServer, o: &Options, peer: Peer, n: u64) -> Result<Drain, String> {
    server.flush().await?;
    let url = server.url().to_owned();
    let (slots, count, stall) = (o.slots, o.stream_count, o.stall);
    let task = tokio::spawn(async move {
        match peer {
            Peer::Taskplan => {
                peers::taskplan::fill(&url, n).await?;
                peers::taskplan::drain(&url, n, slots, stall).await
            }
            Peer::Apalis => {
                peers::apalis::fill(&url, n).await?;
                peers::apalis::drain(&url, n, slots, stall).await
            }
            Peer::Bullmq => {
                peers::bullmq::fill(&url, n).await?;
                peers::bullmq::drain(&url, n, slots, stall).await
            }
            Peer::Streams | Peer::StreamsOne => {
                let count = if peer == Peer::StreamsOne { 1 } else { count };
                peers::streams::fill(&url, n).await?;
                peers::streams::drain(&url, n, slots, count, stall).await
            }
        }
    });
    let drain = task
        .await
        .map_err(|e| format!("{}: panicked: {e}", peer.name()))??;
    if drain.done != n {
        return Err(format!(
            "{}: {} handler runs for {n} jobs",
            peer.name(),
            drain.done
        ));
    }
    Ok(drain)
}

/// Rates of one row over the rounds, or why it failed.
struct Row {
    label: String,
    fill: u64,
    rates: Vec<f64>,
    /// Redis's and this process's CPU microseconds per job, each round.
    redis_us: Vec<f64>,
    own_us: Vec<f64>,
    error: Option<String>,
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn micros(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

impl Row {
    fn new(label: impl Into<String>, fill: u64) -> Row {
        Row {
            label: label.into(),
            fill,
            rates: Vec::new(),
            redis_us: Vec::new(),
            own_us: Vec::new(),
            error: None,
        }
    }

    fn record(&mut self, fill: u64, result: Result<Timed, String>) {
        match result {
            Ok(timed) => {
                let rate = fill as f64 / timed.elapsed.as_secs_f64();
                let per_job = |cpu: Option<f64>| cpu.map(|s| s * 1e6 / fill as f64);
                let (redis, own) = (per_job(timed.redis_cpu), per_job(timed.own_cpu));
                eprintln!(
                    "  {:<44} fill {fill:>6}: {rate:>9.0} jobs/s, CPU µs/job: redis {}, client {}",
                    self.label,
                    micros(redis),
                    micros(own)
                );
                self.rates.push(rate);
                self.redis_us.extend(redis);
                self.own_us.extend(own);
            }
            Err(e) => {
                eprintln!("  {:<44} fill {fill:>6}: FAILED: {e}", self.label);
                self.error.get_or_insert(e);
            }
        }
    }

    /// (median, min, max) of the rounds that succeeded.
    fn summary(&self) -> Option<(f64, f64, f64)> {
        let min = self.rates.iter().copied().reduce(f64::min)?;
        let max = self.rates.iter().copied().reduce(f64::max)?;
        Some((median(&self.rates)?, min, max))
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn print_table(rows: &[Row], apalis: Option<f64>, taskplan: Option<f64>) {
    println!(
        "| peer | fill | jobs/s median | min | max | vs apalis-redis | vs taskplan | Redis CPU µs/job | client CPU µs/job |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let cpu = format!(
            "{} | {}",
            micros(median(&row.redis_us)),
            micros(median(&row.own_us))
        );
        match row.summary() {
            Some((median, min, max)) => println!(
                "| {} | {} | {median:.0} | {min:.0} | {max:.0} | {} | {} | {cpu} |",
                row.label,
                row.fill,
                ratio(Some(median), apalis),
                ratio(Some(median), taskplan),
            ),
            None => println!(
                "| {} | {} | failed | - | - | - | - | - | - |",
                row.label, row.fill
            ),
        }
        if let Some(e) = &row.error {
            println!(
                "|  ↳ error | | {} | | | | | | |",
                e.replace('|', "/").replace('\n', " ")
            );
        }
    }
}

/// Prints the peers table; returns the rows that failed (the apalis
/// probe at `--n`, expected to fail, not counted) and all rows.
async fn peers_table(server: &RedisServer, o: &Options) -> (usize, usize) {
    let load_start = load_average();
    let started = Instant::now();
    let fill_of = |p: Peer| if p == Peer::Apalis { o.apalis_n } else { o.n };
    let mut rows: Vec<Row> = o
        .peers
        .iter()
        .map(|&p| Row::new(p.label(o), fill_of(p)))
        .collect();
    let mut probe = None;
    if o.probe_apalis && o.peers.contains(&Peer::Apalis) && o.n != o.apalis_n {
        eprintln!("apalis at fill {} (once):", o.n);
        let mut row = Row::new(Peer::Apalis.label(o), o.n);
        row.record(
            o.n,
            measure(server, o, Peer::Apalis, o.n).await.map(|d| d.timed),
        );
        probe = Some(row);
    }
    for round in 0..o.rounds {
        eprintln!(
            "round {} of {} (load {}):",
            round + 1,
            o.rounds,
            load_average()
        );
        for k in 0..o.peers.len() {
            let i = (k + round) % o.peers.len();
            let (peer, fill) = (o.peers[i], rows[i].fill);
            let result = measure(server, o, peer, fill).await.map(|d| d.timed);
            rows[i].record(fill, result);
        }
    }
    let median_of = |p: Peer| {
        o.peers
            .iter()
            .position(|&q| q == p)
            .and_then(|i| rows[i].summary())
            .map(|s| s.0)
    };
    let (apalis, taskplan) = (median_of(Peer::Apalis), median_of(Peer::Taskplan));
    let outcome = (
        rows.iter().filter(|r| r.error.is_some()).count(),
        rows.len(),
    );
    rows.extend(probe);
    println!();
    println!(
        "No-op jobs from a filled queue, {} slots in one process, {} round(s), peers interleaved; \
         redis-server {} ({}); load average {load_start} at start, {} at end; {:.1} s.",
        o.slots,
        o.rounds,
        if o.tcp {
            "on loopback TCP"
        } else {
            "on a unix socket"
        },
        redis_version(server).await,
        load_average(),
        started.elapsed().as_secs_f64(),
    );
    println!();
    print_table(&rows, apalis, taskplan);
    outcome
}

/// Prints the scaling table; returns the rows that failed and all rows.
async fn scaling_table(server: &RedisServer, o: &Options) -> (usize, usize) {
    let load_start = load_average();
    let started = Instant::now();
    let peers: Vec<Peer> = [Peer::Taskplan, Peer::Streams]
        .into_iter()
        .filter(|p| o.peers.contains(p))
        .collect();
    let mut rows = Vec::new();
    for &peer in &peers {
        for processes in [1, 2] {
            rows.push((
                peer,
                processes,
                Row::new(format!("{} ×{processes}", peer.name()), o.scaling_n),
            ));
        }
    }
    for round in 0..o.rounds {
        eprintln!(
            "scaling round {} of {} (load {}):",
            round + 1,
            o.rounds,
            load_average()
        );
        for k in 0..rows.len() {
            let i = (k + round) % rows.len();
            let (peer, processes) = (rows[i].0, rows[i].1);
            let result = scaled(server, o, peer, processes).await;
            rows[i].2.record(o.scaling_n, result);
        }
    }
    println!();
    println!(
        "Scaling: the same queue ({} jobs) drained by 1 or 2 processes of {} slots each, \
         timed by the queue's done counter; {} round(s); load average {load_start} at start, {} at end; {:.1} s.",
        o.scaling_n,
        o.slots,
        o.rounds,
        load_average(),
        started.elapsed().as_secs_f64(),
    );
    println!();
    println!(
        "| peer | processes | fill | jobs/s median | min | max | vs 1 process | Redis CPU µs/job |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (peer, processes, row) in &rows {
        let one = rows
            .iter()
            .find(|(p, n, _)| p == peer && *n == 1)
            .and_then(|(_, _, r)| r.summary())
            .map(|s| s.0);
        match row.summary() {
            Some((median, min, max)) => println!(
                "| {} | {processes} | {} | {median:.0} | {min:.0} | {max:.0} | {} | {} |",
                peer.label(o),
                row.fill,
                ratio(Some(median), one),
                micros(crate::median(&row.redis_us)),
            ),
            None => println!(
                "| {} | {processes} | {} | failed | - | - | - | - |",
                peer.label(o),
                row.fill
            ),
        }
        if let Some(e) = &row.error {
            println!("|  ↳ error | | | {} | | | | |", e.replace('|', "/"));
        }
    }
    let failed = rows.iter().filter(|(_, _, r)| r.error.is_some()).count();
    (failed, rows.len())
}

async fn scaled(
    server: &RedisServer,
    o: &Options,
    peer: Peer,
    processes: usize,
) -> Result<Timed, String> {
    server.flush().await?;
    let url = server.url().to_owned();
    match peer {
        Peer::Taskplan => peers::taskplan::fill(&url, o.scaling_n).await?,
        _ => peers::streams::fill(&url, o.scaling_n).await?,
    }
    let args = procs::WorkerArgs {
        peer,
        url,
        slots: o.slots,
        stream_count: o.stream_count,
    };
    procs::drain(&args, o.scaling_n, processes, o.stall).await
}

async fn redis_version(server: &RedisServer) -> String {
    let info = async {
        let mut con = server.connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut con)
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_owned())
    };
    info.await.unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("durable_peers: {e}");
            std::process::exit(2);
        }
    };
    if let Some((peer, url)) = o.worker.clone() {
        let args = procs::WorkerArgs {
            peer,
            url,
            slots: o.slots,
            stream_count: o.stream_count,
        };
        if let Err(e) = procs::worker(args).await {
            eprintln!("durable_peers worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let server = match RedisServer::start(o.tcp).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("durable_peers: {e}");
            std::process::exit(1);
        }
    };
    let (mut failed, mut rows) = (0, 0);
    if o.table {
        let (f, r) = peers_table(&server, &o).await;
        (failed, rows) = (failed + f, rows + r);
    }
    if o.scaling {
        let (f, r) = scaling_table(&server, &o).await;
        (failed, rows) = (failed + f, rows + r);
    }
    // A row fails if any of its rounds did; the smoke mode's exit code is
    // what keeps CI honest. (apalis at `--n` is expected to fail: a probe.)
    println!();
    println!("rows: {} passed, {failed} failed", rows - failed);
    if failed > 0 {
        drop(server);
        std::process::exit(1);
    }
}
