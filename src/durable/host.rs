//! The claiming side: a [`Host`] claims jobs from Redis while its plan has
//! room and runs each as an ordinary plan task.
//!
//! Five kinds of Tokio task make a host: one claim loop, one lease
//! renewer, one events listener, one small task per job handed to the plan
//! that awaits the job's [`TaskHandle`](crate::TaskHandle) and frees its
//! slot, and one settling task that acknowledges, fails or releases the
//! finished jobs in batches (one script call for all the jobs that ended
//! while the previous call was out). Settling is apart from claiming so
//! that a slow Redis call never holds up claiming, and a job's slot is
//! free for the next job before its acknowledgement is sent.
//!
//! The events listener holds a pub/sub connection of its own on
//! `<prefix>:events` and turns its messages into wakeups: `ready` wakes the
//! claim loop, `cancel:<id>` cancels that job's task if it runs here. Both
//! are only fast paths: the claim loop still polls and the renewer still
//! reports cancelled jobs, so a message lost (pub/sub keeps none while the
//! listener is reconnecting) costs at most one poll or renewal interval.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{
    BATCH_MAX, Client, Renewed, Settle, SettleOp, Settled, random_hex, unique_token,
};
use super::job::{Claimed, JobContext, JobId};
use crate::{CancelHandle, Plan, TaskError};

type JobFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;
type Start = Box<dyn FnOnce(JobContext) -> JobFuture + Send + 'static>;
/// Decodes a payload and returns what starts the job, or why it cannot run.
type Handler = Arc<dyn Fn(&str) -> Result<Start, String> + Send + Sync + 'static>;

/// Builds a [`Host`]: its handlers and lease settings. Made by
/// [`Host::builder`].
pub struct HostBuilder {
    plan: Plan,
    client: Client,
    handlers: HashMap<String, Handler>,
    name: Option<String>,
    lease: Duration,
    poll: Duration,
    renew_every: Option<Duration>,
    backoff: (Duration, Duration),
    prefetch: Option<usize>,
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuilder")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .field("lease", &self.lease)
            .field("poll", &self.poll)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl HostBuilder {
    /// Registers `handler` for jobs of `kind`, whose payload decodes as `P`.
    ///
    /// The handler's future runs as a plan task with the job's tag,
    /// priority and timeout. `Ok(())` acknowledges the job; an `Err` (its
    /// `Display` is kept as the reason), a panic or a timeout fails the
    /// attempt, which is retried with backoff until the job's attempts run
    /// out, and then the job goes to the dead letters. A job whose kind no
    /// handler is registered for, or whose payload does not decode as `P`,
    /// goes to the dead letters at once with the reason: every host of a
    /// queue should register every kind. Registering a kind again replaces
    /// its handler.
    pub fn register<P, F, Fut, E>(mut self, kind: &str, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(P, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        let handler = Arc::new(handler);
        let kind_name = kind.to_owned();
        let erased: Handler = Arc::new(move |payload: &str| {
            let input: P = serde_json::from_str(payload).map_err(|e| {
                format!(
                    "the payload of this `{kind_name}` job does not decode: {e}; fix it and \
                     enqueue it again"
                )
            })?;
            let handler = Arc::clone(&handler);
            let start: Start = Box::new(move |cx: JobContext| {
                Box::pin(async move { handler(input, cx).await.map_err(|e| e.to_string()) })
            });
            Ok(start)
        });
        self.handlers.insert(kind.to_owned(), erased);
        self
    }

    /// Names this host in logs and in the records of the jobs it runs.
    ///
    /// The name must be unique among the hosts of a queue that are alive at
    /// the same time: a host keeps the record of its last claim under its
    /// name, to find that claim's jobs again should the reply be lost, so
    /// two live hosts of one name overwrite each other's record, and the
    /// jobs of a lost reply are then not found again at once (they still
    /// run once their leases run out, but with an attempt counted). The
    /// default, `<hostname>-<process id>-<random>`, is unique.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the lease on a claimed job (default 30 s): if this host does not
    /// renew it in time (it died, stalled or lost Redis), the job goes back
    /// to its place in the queue for another host. By default the host
    /// renews every third of it, at most every 500 ms
    /// ([`renew_interval`](HostBuilder::renew_interval)). Short leases find dead hosts sooner and cost more
    /// renewals.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// Sets how often an idle host asks Redis for work (default 200 ms);
    /// a host that just claimed a job, or has room again, asks at once.
    ///
    /// An idle host is also woken at once by a pub/sub message when a job
    /// is enqueued, so this interval only bounds how long a job waits when
    /// that message is lost (the host was reconnecting) or for a job that
    /// became ready otherwise with no host claiming.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// Sets how often this host renews its leases (default a third of the
    /// lease, at most 500 ms), at most half the lease so that a lease never
    /// runs out between renewals.
    ///
    /// A renewal also reports the running jobs whose tag was cancelled
    /// ([`Client::cancel_tag`]), so this interval bounds how long a
    /// cancelled job runs on when the pub/sub message that normally stops
    /// it at once is lost. Longer intervals cost Redis fewer calls.
    pub fn renew_interval(mut self, every: Duration) -> Self {
        self.renew_every = Some(every.max(Duration::from_millis(10)));
        self
    }

    /// Sets the retry backoff: attempt `n` failed waits `base * 2^(n-1)`,
    /// at most `max` (defaults 1 s and 5 min).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = (base, max.max(base));
        self
    }

    /// Sets how many jobs this host claims beyond its plan's workers, so
    /// that a worker that finishes a job finds the next one already in
    /// the plan's queue instead of waiting for a round trip to Redis.
    ///
    /// By default the host sizes it as it goes: as many jobs as its workers
    /// finish during two claim round trips, by moving averages of how long
    /// its jobs and its claim calls take (as many as the workers until
    /// both are measured), at least one and at most 256. So jobs much
    /// shorter than a round trip are claimed in large batches, and of jobs
    /// much longer one waits in the plan.
    ///
    /// Either way it is at most the plan's
    /// [`capacity`](crate::PlanBuilder::capacity), where prefetched jobs
    /// wait.
    ///
    /// Prefetched jobs are leased (and renewed) like running ones, so no
    /// other host can run them meanwhile, [`Client::promote`] does not move
    /// them and [`Client::cancel_tag`] stops them as running jobs: a fixed
    /// prefetch of 0 keeps every job not yet running claimable by any idle
    /// host, at the cost of a round trip between a worker's jobs. A
    /// prefetched job that has not started when the host drains goes back
    /// to its place at once, its attempt not counted; so does one whose
    /// turn comes more than a lease after this host last renewed it (it
    /// could not reach Redis, so another host may hold the job now).
    pub fn prefetch(mut self, jobs: usize) -> Self {
        self.prefetch = Some(jobs);
        self
    }

    /// Starts claiming: spawns the claim loop, the lease renewer, the
    /// events listener and the settling task on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// Panics if called outside a Tokio runtime, as `tokio::spawn` does.
    pub fn start(self) -> Host {
        let name = self.name.unwrap_or_else(default_name);
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        // Not tracked and not aborted: it ends by itself once the host and
        // all its jobs are gone (jobs still running when the host is
        // dropped are settled as usual).
        tokio::spawn(settle_loop(
            self.client.clone(),
            name.clone(),
            self.lease,
            settle_rx,
        ));
        let shared = Arc::new(HostShared {
            plan: self.plan,
            client: self.client,
            handlers: self.handlers,
            name,
            lease: self.lease,
            poll: self.poll,
            renew_every: match self.renew_every {
                Some(every) => every.min(self.lease / 2),
                // Often enough to keep leases, and to see a cancelled tag
                // within 500 ms should its pub/sub message be lost.
                None => (self.lease / 3).min(Duration::from_millis(500)),
            },
            renew_now: Notify::new(),
            backoff: self.backoff,
            held: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            room: Notify::new(),
            stop: CancellationToken::new(),
            settlers: TaskTracker::new(),
            settle_tx,
            prefetch: self.prefetch,
            pace: Arc::default(),
            epoch: Instant::now(),
        });
        // Tracked with the settlers: waiting for them waits for claiming to
        // end too, so no job is claimed after the wait.
        shared.settlers.spawn(claim_loop(Arc::clone(&shared)));
        let renewer = tokio::spawn(renew_loop(Arc::clone(&shared)));
        let listener = tokio::spawn(events_loop(Arc::clone(&shared)));
        Host {
            shared,
            renewer,
            listener,
        }
    }
}

/// A host: claims jobs from a durable queue and runs them on a [`Plan`].
///
/// It claims while fewer of its jobs are in the plan (running or waiting
/// their turn) than the plan has workers plus the
/// [prefetch](HostBuilder::prefetch), as many as there is room for in one
/// call, so that a worker that ends a job finds the next one already
/// there. Each claimed job becomes a plan task
/// with the job's tag, priority and timeout, so the plan's stats,
/// `cancel_tag`, `promote` and `shutdown` see it like any other task. A job
/// whose task is cancelled on this host (by the plan's shutdown or abort, or
/// a local cancel) is put back in its place in the queue, its attempt not
/// counted.
///
/// Delivery is **at least once**; see [`Client`].
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use taskplan::Plan;
/// use taskplan::durable::{Client, Host};
///
/// let plan = Plan::builder().workers(8).name("mail").build()?;
/// let client = Client::connect("redis://127.0.0.1:6379/").await?;
/// let host = Host::builder(&plan, &client)
///     .register("send_email", |(to, template): (String, String), _cx| async move {
///         println!("sending {template} to {to}");
///         Ok::<(), std::io::Error>(())
///     })
///     .start();
/// // ... on SIGTERM:
/// let report = host.shutdown(Duration::from_secs(10)).await;
/// println!("{} jobs completed", report.completed);
/// # Ok(())
/// # }
/// ```
pub struct Host {
    shared: Arc<HostShared>,
    renewer: JoinHandle<()>,
    listener: JoinHandle<()>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.shared.name)
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

struct HostShared {
    plan: Plan,
    client: Client,
    handlers: HashMap<String, Handler>,
    name: String,
    lease: Duration,
    poll: Duration,
    renew_every: Duration,
    /// Wakes the renewer early: after the events listener (re)subscribes,
    /// to pick up cancels published while it was not listening.
    renew_now: Notify,
    backoff: (Duration, Duration),
    /// The jobs this host holds a lease on, by id, each with the fence of
    /// its current attempt here: the renewer's list. An older attempt of the
    /// same job (its lease ran out and this host claimed the job again) is
    /// not in it: it was marked lost and cancelled when the new one came.
    /// A leaf lock, never held across an `.await`.
    held: Mutex<HashMap<JobId, Held>>,
    /// Jobs submitted to the plan whose outcome has not come yet, old
    /// attempts included: what the claim loop counts against the plan's
    /// workers.
    in_flight: AtomicUsize,
    /// Woken when a job of this host ends or a `ready` event arrives, so
    /// the claim loop looks again.
    room: Notify,
    /// Stops the claim loop (and, once the settlers are done, the renewer).
    stop: CancellationToken,
    /// The claim loop and one task per job handed to the plan, which ends
    /// once its job is settled in Redis.
    settlers: TaskTracker,
    /// Jobs to settle, for the one settling task.
    settle_tx: mpsc::UnboundedSender<Pending>,
    /// How many jobs to claim beyond the plan's workers; `None`: sized by
    /// `pace`.
    prefetch: Option<usize>,
    pace: Arc<Pace>,
    /// The origin of [`Held::until`].
    epoch: Instant,
}

/// The default prefetch's bound: one claim call's worth.
const PREFETCH_MAX: usize = BATCH_MAX;

/// How long this host's jobs and claim calls take, as moving averages in
/// nanoseconds (0: not measured yet), for sizing the default prefetch.
#[derive(Default)]
struct Pace {
    job_ns: AtomicU64,
    claim_ns: AtomicU64,
}

impl Pace {
    /// Folds `sample` into an average that weighs the last eight or so.
    /// Two writers may race and lose a sample: it is an estimate.
    fn record(cell: &AtomicU64, sample: Duration) {
        let sample = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = cell.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        cell.store(new.max(1), Ordering::Relaxed);
    }

    /// The default prefetch: as many jobs as `workers` finish in two claim
    /// round trips, so that a worker never waits for one, and no more, so
    /// that long jobs are not held back from other hosts: one for jobs
    /// much longer than a round trip, up to [`PREFETCH_MAX`] for tiny ones.
    /// Before anything is measured, as many as the workers.
    fn prefetch(&self, workers: usize) -> usize {
        let job = self.job_ns.load(Ordering::Relaxed);
        let claim = self.claim_ns.load(Ordering::Relaxed);
        if job == 0 || claim == 0 {
            return workers.min(PREFETCH_MAX);
        }
        let want = (2 * workers as u128 * claim as u128).div_ceil(job as u128);
        want.min(PREFETCH_MAX as u128) as usize
    }
}

struct Held {
    fence: u64,
    cancel: CancelHandle,
    /// Shared with the attempt's settler, which drops the result if set.
    lost: Arc<AtomicBool>,
    /// Until when (nanoseconds from [`HostShared::epoch`], this host's
    /// clock) the lease surely holds: the send time of the claim or of the
    /// last renewal that kept it, plus the lease. A job that has not
    /// started by then (prefetched, while Redis was out of reach) does not
    /// start: another host may hold it now.
    until: Arc<AtomicU64>,
}

impl Held {
    /// Stops this attempt and drops its result: its lease is gone.
    fn lose(&self) {
        self.lost.store(true, Ordering::Release);
        self.cancel.cancel();
    }
}

/// `<hostname>-<pid>-<random>`: unique among live hosts, as a host's name
/// must be, even across machines and restarts that reuse a process id.
fn default_name() -> String {
    let hostname = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = random_hex();
    format!("{hostname}-{}-{}", std::process::id(), &random[..8])
}

impl HostShared {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many more jobs to claim now: the plan's workers and the
    /// prefetch, less the jobs already handed to the plan.
    fn room(&self) -> usize {
        let workers = self.plan.stats().workers;
        let prefetch = match self.prefetch {
            Some(fixed) => fixed,
            None => self.pace.prefetch(workers),
        };
        // Prefetched jobs wait in the plan's queue: more than it holds
        // would only be refused and put back.
        let prefetch = prefetch.min(self.plan.capacity());
        (workers + prefetch).saturating_sub(self.in_flight.load(Ordering::Acquire))
    }

    /// Hands `job` to the settling task; the receiver completes once its
    /// call is done (or given up: its lease then puts it back).
    fn settle(&self, job: Claimed, op: SettleOp) -> oneshot::Receiver<()> {
        let (done, settled) = oneshot::channel();
        // The settling task lives while this host does: a send cannot fail.
        let _ = self.settle_tx.send(Pending { job, op, done });
        settled
    }

    fn settle_failed(&self, job: Claimed, reason: String, dead_now: bool) -> oneshot::Receiver<()> {
        let backoff = self.backoff_for(job.attempt);
        self.settle(
            job,
            SettleOp::Fail {
                reason,
                backoff,
                dead_now,
            },
        )
    }

    fn backoff_for(&self, attempt: u32) -> Duration {
        let (base, max) = self.backoff;
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        base.saturating_mul(factor).min(max)
    }
}

impl Host {
    /// Starts building a host that runs jobs on `plan`, claimed through
    /// `client`.
    pub fn builder(plan: &Plan, client: &Client) -> HostBuilder {
        HostBuilder {
            plan: plan.clone(),
            client: client.clone(),
            handlers: HashMap::new(),
            name: None,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(200),
            renew_every: None,
            backoff: (Duration::from_secs(1), Duration::from_secs(300)),
            prefetch: None,
        }
    }

    /// How many jobs this host holds now, running or claimed and waiting in
    /// its plan (prefetched); an attempt found to have lost its lease
    /// counts until its task has ended.
    pub fn running(&self) -> usize {
        self.shared.held().len()
    }

    /// This host's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Stops claiming; jobs already running go on and are settled as usual.
    /// A job claimed but not started yet (prefetched, or waiting behind
    /// other work in the plan) does not start: it goes back to its place
    /// in the queue when its turn comes, its attempt not counted.
    pub fn stop_claiming(&self) {
        self.shared.stop.cancel();
    }

    /// Drains: stops claiming, shuts the plan down with `grace` (running
    /// jobs may finish until then; the rest are cancelled), puts every job
    /// whose task was cancelled back in its place in the queue, and returns
    /// the plan's report once every job of this host is settled. A job
    /// claimed but still queued in the plan (behind other tasks) does not
    /// start once the drain has begun: it goes back to the queue at once,
    /// its attempt not counted (the plan counts its task as completed).
    pub async fn shutdown(self, grace: Duration) -> crate::ShutdownReport {
        self.shared.stop.cancel();
        let report = self.shared.plan.shutdown(grace).await;
        self.settle_all().await;
        report
    }

    /// Waits for SIGTERM or Ctrl-C, then drains as
    /// [`shutdown(grace)`](Host::shutdown) does, through
    /// [`Plan::shutdown_on_signal`] (so a second signal aborts at once), and
    /// returns the plan's report once every job of this host is settled:
    /// finished jobs acknowledged or failed, the rest back in their place in
    /// the queue.
    ///
    /// The signals are listened for from the moment this is called, as
    /// with the plan's. The host stops claiming as soon as the plan closes,
    /// at the first signal; a job claimed but not yet started by then goes
    /// back at once.
    #[cfg(feature = "signal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
    pub fn shutdown_on_signal(
        &self,
        grace: Duration,
    ) -> impl Future<Output = crate::ShutdownReport> + Send + '_ {
        let drain = self.shared.plan.shutdown_on_signal(grace);
        async move {
            let report = drain.await;
            self.shared.stop.cancel();
            self.settle_all().await;
            report
        }
    }

    /// Waits until claiming has stopped and every job this host claimed is
    /// settled in Redis, then stops renewing.
    async fn settle_all(&self) {
        self.shared.settlers.close();
        self.shared.settlers.wait().await;
        self.renewer.abort();
        self.listener.abort();
    }
}

impl Drop for Host {
    /// Stops claiming and renewing. Jobs already running go on as plan
    /// tasks and are still acknowledged or failed when they end; one that
    /// outlives its lease is put back by Redis for another host.
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.renewer.abort();
        self.listener.abort();
    }
}

async fn claim_loop(host: Arc<HostShared>) {
    let mut failures = 0u32;
    // The token of a claim that got no answer: Redis may have run it, so
    // the next claim carries it again and gets that claim's jobs, if any,
    // instead of leaving them leased to nobody until their leases run out
    // (which would count an attempt, and dead-letter a job on its last).
    let mut unanswered: Option<String> = None;
    while !host.stop.is_cancelled() {
        if host.plan.is_closed() {
            break;
        }
        let room = host.room();
        if room == 0 {
            wait(&host, host.poll).await;
            continue;
        }
        let token = unanswered.take().unwrap_or_else(unique_token);
        let max = room.min(BATCH_MAX);
        let asked = Instant::now();
        let claimed = host
            .client
            .claim_batch(host.lease, &host.name, max, &token)
            .await;
        if claimed.is_ok() {
            Pace::record(&host.pace.claim_ns, asked.elapsed());
        }
        match claimed {
            Ok(jobs) if jobs.is_empty() => {
                failures = 0;
                wait(&host, host.poll).await;
            }
            Ok(jobs) => {
                failures = 0;
                let mut refused = false;
                let mut settling = Vec::new();
                for job in jobs {
                    match start(&host, job, asked) {
                        Started::Running => {}
                        Started::Settling(done) => settling.push(done),
                        Started::Refused(done) => {
                            refused = true;
                            settling.push(done);
                        }
                    }
                }
                // Settled in one batch; waited for here so that a drain
                // (which waits for this loop) returns after they land.
                for done in settling {
                    let _ = done.await;
                }
                if refused && !host.plan.is_closed() {
                    wait(&host, host.poll).await;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                unanswered = Some(token);
                tracing::warn!(host = %host.name, error = %e, "durable: claim failed; retrying");
                let pause = host.poll.saturating_mul(failures.min(10));
                wait(&host, pause).await;
            }
        }
    }
    // Stopping with a claim unanswered: ask once more for its jobs (and
    // none new), to put them back at once rather than when their leases
    // run out.
    if let Some(token) = unanswered {
        if let Ok(jobs) = host
            .client
            .claim_batch(host.lease, &host.name, 0, &token)
            .await
        {
            let dones: Vec<_> = jobs
                .into_iter()
                .map(|job| host.settle(job, SettleOp::Release))
                .collect();
            for done in dones {
                let _ = done.await;
            }
        }
    }
}

async fn wait(host: &HostShared, pause: Duration) {
    tokio::select! {
        _ = host.stop.cancelled() => {}
        _ = host.room.notified() => {}
        _ = tokio::time::sleep(pause) => {}
    }
}

/// What [`start`] did with a claimed job.
enum Started {
    /// It runs (or waits its turn) as a plan task.
    Running,
    /// It cannot run here (unknown kind, bad payload): it is being failed;
    /// the receiver completes once that is settled.
    Settling(oneshot::Receiver<()>),
    /// The plan refused it (full or closed): it is being released.
    Refused(oneshot::Receiver<()>),
}

/// Runs a claimed job as a plan task, or has it settled at once if it
/// cannot run.
fn start(host: &Arc<HostShared>, job: Claimed, asked: Instant) -> Started {
    let Some(handler) = host.handlers.get(job.kind()) else {
        let reason = format!(
            "no handler is registered for kind `{}` on host {}; register one with \
             `HostBuilder::register`, then re-enqueue it with `Client::retry_dead`",
            job.kind(),
            host.name
        );
        return Started::Settling(host.settle_failed(job, reason, true));
    };
    // A `Deserialize` impl is user code: a panic in it must not end the
    // claim loop, and the job must not be lost.
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| handler(job.payload())))
        .unwrap_or_else(|_| {
            Err(format!(
                "decoding the payload of this `{}` job panicked; fix the payload type's \
                 `Deserialize`, then re-enqueue it with `Client::retry_dead`",
                job.kind()
            ))
        });
    let run = match decoded {
        Ok(run) => run,
        Err(reason) => return Started::Settling(host.settle_failed(job, reason, true)),
    };
    let cx = JobContext {
        id: job.id,
        fence: job.fence,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        tag: job.tag.clone(),
    };
    // A job that waited in the plan's queue (prefetched, or behind other
    // work) and whose turn comes once the host drains does not start: it
    // goes back at once.
    let draining = host.stop.clone();
    let plan = host.plan.clone();
    let pace = Arc::clone(&host.pace);
    let epoch = host.epoch;
    let until = Arc::new(AtomicU64::new(nanos(
        asked.saturating_duration_since(epoch) + host.lease,
    )));
    let lease_until = Arc::clone(&until);
    let job_task = async move {
        if draining.is_cancelled() || plan.is_closed() {
            return None;
        }
        // Its lease may have run out while it waited (no renewal got
        // through for a whole lease): put it back rather than run it
        // beside the host that may hold it now.
        if nanos(epoch.elapsed()) >= lease_until.load(Ordering::Acquire) {
            return None;
        }
        let began = Instant::now();
        let outcome = run(cx).await;
        Pace::record(&pace.job_ns, began.elapsed());
        Some(outcome)
    };
    let mut task = host.plan.task(job_task).priority(job.priority);
    if let Some(tag) = &job.tag {
        task = task.tag(tag.clone());
    }
    if let Some(timeout) = job.timeout {
        task = task.timeout(timeout);
    }
    match task.try_submit() {
        Ok(handle) => {
            host.in_flight.fetch_add(1, Ordering::AcqRel);
            let lost = Arc::new(AtomicBool::new(false));
            hold(
                &mut host.held(),
                job.id,
                Held {
                    fence: job.fence,
                    cancel: handle.cancel_handle(),
                    lost: Arc::clone(&lost),
                    until,
                },
            );
            let host2 = Arc::clone(host);
            host.settlers.spawn(async move {
                let outcome = handle.await;
                if let Some(done) = settle(&host2, job, &lost, outcome) {
                    let _ = done.await;
                }
            });
            Started::Running
        }
        Err(refused) => {
            // The plan is full of other work or closed: put the job back.
            tracing::debug!(host = %host.name, job = %job.id, closed = refused.is_closed(),
                "durable: plan refused a claimed job; putting it back");
            drop(refused);
            Started::Refused(host.settle(job, SettleOp::Release))
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Records that this host runs `new`, an attempt of job `id`. An older
/// attempt of the job still running here lost its lease (Redis gave the
/// job to this newer claim): it is stopped and its result dropped. A stale
/// `new` (never expected: claims come in fence order) is dropped instead.
fn hold(held: &mut HashMap<JobId, Held>, id: JobId, new: Held) {
    match held.get(&id) {
        Some(old) if old.fence > new.fence => new.lose(),
        _ => {
            if let Some(old) = held.insert(id, new) {
                old.lose();
            }
        }
    }
}

/// Forgets attempt `fence` of job `id`, leaving a newer attempt's entry.
fn unhold(held: &mut HashMap<JobId, Held>, id: JobId, fence: u64) {
    if held.get(&id).is_some_and(|h| h.fence == fence) {
        held.remove(&id);
    }
}

/// Applies a renewal's report: stops the attempts that lost their lease or
/// whose tag was cancelled, each only if it is the attempt held here.
fn apply_renewed(host: &HostShared, held: &HashMap<JobId, Held>, renewed: Renewed) {
    for (id, fence) in renewed.cancelled {
        if let Some(h) = held.get(&id).filter(|h| h.fence == fence) {
            tracing::debug!(host = %host.name, job = %id, "durable: tag cancelled; stopping the job");
            h.cancel.cancel();
        }
    }
    for (id, fence) in renewed.lost {
        if let Some(h) = held.get(&id).filter(|h| h.fence == fence) {
            tracing::warn!(host = %host.name, job = %id,
                "durable: lease lost; stopping the job here (it runs again elsewhere)");
            h.lose();
        }
    }
}

/// Settles a job by its plan task's outcome (`Ok(None)` is a job that did
/// not start because the host is draining): frees its slot at once, then
/// hands it to the settling task. Returns what completes once it is
/// settled, or `None` if its lease was lost and its result is dropped.
fn settle(
    host: &HostShared,
    job: Claimed,
    lost: &AtomicBool,
    outcome: Result<Option<Result<(), String>>, TaskError>,
) -> Option<oneshot::Receiver<()>> {
    unhold(&mut host.held(), job.id, job.fence);
    host.in_flight.fetch_sub(1, Ordering::AcqRel);
    host.room.notify_one();
    if lost.load(Ordering::Acquire) {
        tracing::debug!(host = %host.name, job = %job.id, "durable: lease was lost; result dropped");
        return None;
    }
    Some(match outcome {
        Ok(None) => host.settle(job, SettleOp::Release),
        Ok(Some(Ok(()))) => host.settle(job, SettleOp::Ack),
        Ok(Some(Err(reason))) => host.settle_failed(job, format!("failed: {reason}"), false),
        Err(e) if e.is_cancelled() => host.settle(job, SettleOp::Release),
        Err(e) if e.is_timeout() => {
            let after = job.timeout.unwrap_or_default();
            host.settle_failed(job, format!("timed out after {after:?}"), false)
        }
        Err(e) => {
            let reason = e.to_string();
            let reason = match reason.split_once("panicked") {
                Some((_, rest)) => format!("panicked{rest}"),
                None => reason,
            };
            host.settle_failed(job, reason, false)
        }
    })
}

/// A job waiting for the settling task, and who waits for it.
struct Pending {
    job: Claimed,
    op: SettleOp,
    done: oneshot::Sender<()>,
}

/// The settling task: sends every job waiting to be settled in one script
/// call, one call in flight at a time. Jobs that end while a call is out
/// wait for the next, so batches grow with the load and a lone job goes
/// at once. Ends once every sender (the host and its jobs) is gone.
///
/// It holds no `Arc<HostShared>`: the host's sender lives there, and the
/// task must end when the host and all its jobs are gone.
async fn settle_loop(
    client: Client,
    name: String,
    lease: Duration,
    mut pending: mpsc::UnboundedReceiver<Pending>,
) {
    let mut batch: Vec<Pending> = Vec::new();
    while let Some(first) = pending.recv().await {
        batch.push(first);
        while batch.len() < BATCH_MAX {
            match pending.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let entries: Vec<Settle> = batch
            .iter_mut()
            .map(|p| Settle {
                id: p.job.id,
                fence: p.job.fence,
                op: std::mem::replace(&mut p.op, SettleOp::Ack),
            })
            .collect();
        match retry_redis(&name, lease, || client.settle_batch(&entries)).await {
            Some(Ok(outcomes)) => {
                for ((p, entry), outcome) in batch.iter().zip(&entries).zip(outcomes) {
                    log_settled(&name, &p.job, entry, outcome);
                }
            }
            Some(Err(e)) => tracing::warn!(host = %name, jobs = batch.len(), error = %e,
                "durable: settling refused; leases will put the jobs back"),
            None => {}
        }
        for p in batch.drain(..) {
            let _ = p.done.send(());
        }
    }
}

fn log_settled(name: &str, job: &Claimed, entry: &Settle, outcome: Settled) {
    let reason = match &entry.op {
        SettleOp::Fail { reason, .. } => reason.as_str(),
        _ => "",
    };
    match outcome {
        Settled::Done | Settled::Released => {}
        Settled::Dead => tracing::warn!(host = %name, job = %job.id, kind = %job.kind,
            %reason, "durable: job moved to the dead letters"),
        Settled::Retry => tracing::info!(host = %name, job = %job.id, kind = %job.kind,
            %reason, "durable: attempt failed; will retry"),
        Settled::Cancelled => tracing::debug!(host = %name, job = %job.id,
            "durable: job of a cancelled tag; recorded as cancelled"),
        Settled::Stale => tracing::info!(host = %name, job = %job.id,
            "durable: lease was lost before settling; result not recorded"),
    }
}

/// Runs a settling call, retrying Redis errors for about one lease; after
/// that the lease has run out and Redis puts the job back by itself, so
/// giving up loses nothing. Returns `None` if it gave up.
async fn retry_redis<T, F, Fut>(
    name: &str,
    lease: Duration,
    mut call: F,
) -> Option<Result<T, super::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, super::Error>>,
{
    let deadline = tokio::time::Instant::now() + lease;
    let mut pause = Duration::from_millis(50);
    loop {
        match call().await {
            Err(e) if e.is_redis() => {
                if tokio::time::Instant::now() + pause > deadline {
                    tracing::warn!(host = %name, error = %e,
                        "durable: giving up settling jobs; their leases will put them back");
                    return None;
                }
                tracing::debug!(host = %name, error = %e, "durable: settling failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return Some(other),
        }
    }
}

async fn renew_loop(host: Arc<HostShared>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(host.renew_every) => {}
            _ = host.renew_now.notified() => {}
        }
        let jobs: Vec<(JobId, u64)> = host
            .held()
            .iter()
            .filter(|(_, h)| !h.lost.load(Ordering::Acquire))
            .map(|(id, h)| (*id, h.fence))
            .collect();
        let sent = Instant::now();
        match host.client.renew(&jobs, host.lease).await {
            // The reply may come after this host claimed one of these jobs
            // again: the fences keep it from stopping the newer attempt.
            Ok(renewed) => {
                let held = host.held();
                let until = nanos(sent.saturating_duration_since(host.epoch) + host.lease);
                for (id, fence) in &jobs {
                    if renewed.lost.contains(&(*id, *fence)) {
                        continue;
                    }
                    if let Some(h) = held.get(id).filter(|h| h.fence == *fence) {
                        h.until.fetch_max(until, Ordering::AcqRel);
                    }
                }
                apply_renewed(&host, &held, renewed);
            }
            Err(e) => {
                tracing::warn!(host = %host.name, error = %e, "durable: renewing leases failed")
            }
        }
    }
}

/// Listens on the queue's events channel for as long as the host lives,
/// resubscribing after the connection drops; meanwhile the poll and the
/// renewals carry on alone.
async fn events_loop(host: Arc<HostShared>) {
    let mut failures = 0u32;
    loop {
        match host.client.subscribe_events().await {
            Ok(mut events) => {
                failures = 0;
                tracing::debug!(host = %host.name, "durable: listening for queue events");
                // Whatever was published before this subscription is gone:
                // look for work and for cancelled jobs once now, so nothing
                // waits for a full poll or renewal interval.
                host.room.notify_one();
                host.renew_now.notify_one();
                while let Some(msg) = events.next().await {
                    match msg.get_payload::<String>() {
                        Ok(event) => on_event(&host, &event),
                        Err(e) => tracing::debug!(host = %host.name, error = %e,
                            "durable: ignoring an event that is not text"),
                    }
                }
                tracing::info!(host = %host.name,
                    "durable: queue events connection dropped; resubscribing (polling meanwhile)");
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(host = %host.name, error = %e,
                    "durable: subscribing to queue events failed; retrying (polling meanwhile)");
            }
        }
        // Back off so a Redis that is down is not hammered; the fallback
        // paths keep the host working at their own pace meanwhile.
        let pause = Duration::from_millis(100).saturating_mul(1 << failures.min(6));
        tokio::time::sleep(pause.min(Duration::from_secs(5))).await;
    }
}

/// Acts on one event; anything not understood is ignored, as another
/// version of the library may publish more kinds.
fn on_event(host: &HostShared, event: &str) {
    if event == "ready" {
        host.room.notify_one();
    } else if let Some(id) = event.strip_prefix("cancel:") {
        let Ok(id) = id.parse::<u64>() else { return };
        let held = host.held();
        // The flag is the job's, not an attempt's: it stops whichever
        // attempt of the job this host runs.
        if let Some(h) = held
            .get(&JobId(id))
            .filter(|h| !h.lost.load(Ordering::Acquire))
        {
            tracing::debug!(host = %host.name, job = %id, "durable: tag cancelled; stopping the job");
            h.cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(job: Duration, claim: Duration) -> Pace {
        let pace = Pace::default();
        Pace::record(&pace.job_ns, job);
        Pace::record(&pace.claim_ns, claim);
        pace
    }

    #[test]
    fn the_default_prefetch_covers_two_round_trips_of_work() {
        // Nothing measured yet: as many as the workers.
        assert_eq!(Pace::default().prefetch(4), 4);
        // Jobs as long as a round trip: two rounds of every worker.
        let ms = Duration::from_millis(1);
        assert_eq!(pace(ms, ms).prefetch(4), 8);
        // Jobs far longer than a round trip: one, never more.
        assert_eq!(pace(Duration::from_secs(60), ms).prefetch(4), 1);
        // Tiny jobs: one claim call's worth.
        let us = Duration::from_micros(1);
        assert_eq!(pace(us, ms).prefetch(4), PREFETCH_MAX);
    }

    #[test]
    fn default_names_differ_between_hosts_of_one_process() {
        let (a, b) = (default_name(), default_name());
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }

    #[test]
    fn the_pace_is_a_moving_average() {
        let cell = AtomicU64::new(0);
        Pace::record(&cell, Duration::from_nanos(800));
        assert_eq!(cell.load(Ordering::Relaxed), 800);
        Pace::record(&cell, Duration::from_nanos(1600));
        assert_eq!(cell.load(Ordering::Relaxed), 900);
    }
}
