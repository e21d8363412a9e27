//! The enqueue side, and the queue's operations as calls: [`Client`] and
//! [`JobBuilder`].
//!
//! A `Client` is all a process needs to enqueue jobs and look at the queue;
//! it runs no plan. The lease operations (claim, ack, fail, release, renew)
//! are here too, each one script call (claims and settles of one job or of
//! a batch alike), so that a [`Host`](super::Host) and a hand-written
//! worker go through the same fenced steps.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::Serialize;

use super::job::{Claimed, DeadLetter, Error, Failed, JobId, JobInfo, JobState};
use super::scripts;

/// How many due delayed jobs and expired leases one claim moves at most.
const TICK_LIMIT: u32 = 100;

/// How many jobs one claim or settle script handles at most, so that a
/// large batch never blocks Redis for long.
pub(crate) const BATCH_MAX: usize = 256;

/// How many of a tag's jobs one `cancel_tag` or `promote` script handles,
/// so that a large tag never blocks Redis for long.
const CHUNK: u32 = 500;

/// How long an acknowledged job's record stays by default: one day.
const FINISHED_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest finished-job TTL written to Redis, in seconds (about 31,700
/// years): a longer one (`Duration::MAX`, meant as "keep forever") makes
/// Redis refuse the `EXPIRE` inside the scripts, and a script that fails
/// half-way keeps the writes it made before the failure (a settle batch
/// then applies its first entries and none after). Not a round number: a
/// script that turns it into a Lua number and back must get digits, not
/// `1e+12` (Redis 7.2 writes such numbers in exponent form).
const FINISHED_TTL_MAX_S: u64 = 999_999_999_999;

/// A connection to a durable queue in Redis: enqueue jobs, inspect them,
/// and (for hosts) claim and settle them.
///
/// Cloning is cheap and shares one multiplexed connection, which reconnects
/// by itself after Redis restarts or the network drops; a call made while
/// Redis is down returns an error ([`Error::is_redis`]) rather than waiting
/// forever.
///
/// Delivery is **at least once**: a job is removed only when a host
/// acknowledges it, so a job whose host dies, stalls or loses Redis before
/// acknowledging runs again elsewhere. Handlers should be idempotent.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use taskplan::durable::Client;
///
/// let client = Client::connect("redis://127.0.0.1:6379/").await?;
/// let id = client
///     .job("send_email", &("ada@example.com", "welcome"))
///     .tag("user-7")
///     .priority(5)
///     .timeout(Duration::from_secs(30))
///     .max_attempts(5)
///     .enqueue()
///     .await?;
/// println!("enqueued job {id}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    con: ConnectionManager,
    /// Opens the dedicated pub/sub connections of hosts.
    redis: redis::Client,
    keys: Arc<Keys>,
    finished_ttl: Duration,
}

/// The queue's keys under one prefix; see the module docs.
struct Keys {
    prefix: String,
    seq: String,
    ready: String,
    leased: String,
    delayed: String,
    dead: String,
    events: String,
    scripts: Scripts,
}

struct Scripts {
    enqueue: Script,
    claim: Script,
    maintain: Script,
    settle: Script,
    renew: Script,
    retry_dead: Script,
    cancel_tag: Script,
    promote: Script,
    tag_counts: Script,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            seq: format!("{prefix}:seq"),
            ready: format!("{prefix}:ready"),
            leased: format!("{prefix}:leased"),
            delayed: format!("{prefix}:delayed"),
            dead: format!("{prefix}:dead"),
            events: format!("{prefix}:events"),
            scripts: Scripts {
                enqueue: scripts::enqueue(),
                claim: scripts::claim(),
                maintain: scripts::maintain(),
                settle: scripts::settle(),
                renew: scripts::renew(),
                retry_dead: scripts::retry_dead(),
                cancel_tag: scripts::cancel_tag(),
                promote: scripts::promote(),
                tag_counts: scripts::tag_counts(),
            },
        }
    }

    fn job(&self, id: JobId) -> String {
        format!("{}:job:{}", self.prefix, id.0)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

/// How to settle one claimed job, for [`Client::settle_batch`].
pub(crate) struct Settle {
    pub(crate) id: JobId,
    pub(crate) fence: u64,
    pub(crate) op: SettleOp,
}

pub(crate) enum SettleOp {
    Ack,
    Fail {
        reason: String,
        backoff: Duration,
        dead_now: bool,
    },
    Release,
}

impl Settle {
    pub(crate) fn ack(job: &Claimed) -> Settle {
        Settle {
            id: job.id,
            fence: job.fence,
            op: SettleOp::Ack,
        }
    }
    pub(crate) fn release(job: &Claimed) -> Settle {
        Settle {
            id: job.id,
            fence: job.fence,
            op: SettleOp::Release,
        }
    }
    pub(crate) fn fail(job: &Claimed, reason: String, backoff: Duration, dead_now: bool) -> Settle {
        Settle {
            id: job.id,
            fence: job.fence,
            op: SettleOp::Fail {
                reason,
                backoff,
                dead_now,
            },
        }
    }
}

/// What became of one settled job; see the `settle` script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    Done,
    Retry,
    Dead,
    Released,
    Cancelled,
    Stale,
}

impl Settled {
    /// The error for an outcome the call did not ask for: stale, or a
    /// reply that does not fit the operation.
    fn unexpected<T>(self, id: JobId) -> Result<T, Error> {
        match self {
            Settled::Stale => Err(Error::stale(id)),
            other => Err(Error::corrupt(format!("job {id} settled as {other:?}"))),
        }
    }
}

/// One job in the reply of the claim script.
type ClaimReply = (u64, u64, u32, String, String, String, i32, u64, u32);

/// A token no other claim uses: a random per-process seed and a counter.
pub(crate) fn unique_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", random_hex(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// 16 hex digits that differ between processes and between calls, from
/// the standard library's randomly seeded hasher (no dependency needed for
/// names that only have to be unlikely to collide).
pub(crate) fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

impl Client {
    /// Connects to the queue at `url` (`redis://host:port/db`), under the
    /// default key prefix `taskplan`.
    ///
    /// Fails if Redis cannot be reached within a few seconds.
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with_prefix(url, "taskplan").await
    }

    /// Connects to the queue at `url` whose keys start with `prefix`.
    /// Queues under different prefixes in one database are independent.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Client, Error> {
        if prefix.is_empty() {
            return Err(Error::invalid(
                "the key prefix is empty; pass a name such as \"jobs\"",
            ));
        }
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let con = client.get_connection_manager_with_config(config).await?;
        Ok(Client {
            con,
            redis: client,
            keys: Arc::new(Keys::new(prefix)),
            finished_ttl: FINISHED_TTL,
        })
    }

    /// Opens a dedicated connection subscribed to the queue's events
    /// channel, `<prefix>:events`: `ready` when a job is ready to claim,
    /// `cancel:<id>` when a running job is asked to cancel. Delivery is
    /// best effort (a message published while no connection is subscribed
    /// is gone), so hosts treat these as hints and keep polling and renewing.
    pub(crate) async fn subscribe_events(&self) -> Result<redis::aio::PubSubStream, Error> {
        let subscribe = async {
            let mut pubsub = self.redis.get_async_pubsub().await?;
            pubsub.subscribe(&self.keys.events).await?;
            Ok::<_, Error>(pubsub.into_on_message())
        };
        // A server that accepts the connection and then stalls must not
        // hold up the host's resubscription loop forever.
        match tokio::time::timeout(Duration::from_secs(5), subscribe).await {
            Ok(stream) => stream,
            Err(_) => Err(Error::from(redis::RedisError::from((
                redis::ErrorKind::Io,
                "subscribing to the queue's events timed out",
            )))),
        }
    }

    /// Sets how long a finished (acknowledged or cancelled) job's record
    /// stays in Redis (default one day), for jobs enqueued through this
    /// client and its clones made after this call. Rounded up to whole
    /// seconds, and under 10^12 seconds (about 31,700 years), so
    /// `Duration::MAX` keeps them for good.
    pub fn finished_ttl(mut self, ttl: Duration) -> Client {
        self.finished_ttl = ttl;
        self
    }

    /// Starts describing a job of `kind` with `payload`, encoded as JSON
    /// now; [`JobBuilder::enqueue`] sends it.
    pub fn job<P: Serialize + ?Sized>(&self, kind: &str, payload: &P) -> JobBuilder<'_> {
        JobBuilder {
            client: self,
            kind: kind.to_owned(),
            payload: serde_json::to_string(payload).map_err(Error::encode),
            tag: None,
            priority: 0,
            timeout: None,
            max_attempts: 3,
            run_after: Duration::ZERO,
        }
    }

    /// Returns a snapshot of job `id`'s record, or `None` if there is none
    /// (it never existed, or it finished and its record expired).
    pub async fn job_info(&self, id: JobId) -> Result<Option<JobInfo>, Error> {
        let mut con = self.con.clone();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.job(id))
            .arg(&[
                "kind",
                "state",
                "attempts",
                "max_attempts",
                "fence",
                "last_error",
                "tag",
                "priority",
                "owner",
            ])
            .query_async(&mut con)
            .await?;
        let mut f = fields.into_iter();
        let mut next = || f.next().flatten();
        let (Some(kind), Some(state)) = (next(), next()) else {
            return Ok(None);
        };
        let state = JobState::parse(&state)
            .ok_or_else(|| Error::corrupt(format!("job {id} has state {state:?}")))?;
        let num = |v: Option<String>| v.and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        let attempts = num(next()) as u32;
        let max_attempts = num(next()) as u32;
        let fence = num(next()) as u64;
        let last_error = next();
        let tag = next().filter(|t| !t.is_empty());
        let priority = num(next()) as i32;
        let owner = next();
        Ok(Some(JobInfo {
            id,
            kind,
            state,
            attempts,
            max_attempts,
            fence,
            last_error,
            tag,
            priority,
            owner,
        }))
    }

    /// Lists the dead letters, oldest death first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        let mut con = self.con.clone();
        let ids: Vec<u64> = con.zrange(&self.keys.dead, 0, -1).await?;
        let mut letters = Vec::with_capacity(ids.len());
        for id in ids {
            let id = JobId(id);
            if let Some(info) = self.job_info(id).await? {
                letters.push(DeadLetter {
                    id,
                    kind: info.kind,
                    reason: info.last_error.unwrap_or_default(),
                    attempts: info.attempts,
                });
            }
        }
        Ok(letters)
    }

    /// Takes job `id` out of the dead letters and puts it back in its place
    /// in the ready set, with its attempts reset, and wakes idle hosts as
    /// [`JobBuilder::enqueue`] does. Returns `false` if it was not a dead
    /// letter.
    pub async fn retry_dead(&self, id: JobId) -> Result<bool, Error> {
        let mut con = self.con.clone();
        let done: i64 = self
            .keys
            .scripts
            .retry_dead
            .key(&self.keys.dead)
            .key(&self.keys.ready)
            .arg(&self.keys.prefix)
            .arg(id.0)
            .invoke_async(&mut con)
            .await?;
        Ok(done == 1)
    }

    /// Claims the best ready job under a lease of `lease`, for `owner` (a
    /// name for logs and [`JobInfo`]), or returns `None` if none is ready.
    ///
    /// Before claiming, moves due delayed jobs to the ready set and puts
    /// jobs whose lease ran out back in their place (a bounded number of
    /// each per call). The claim counts an attempt and bumps the job's
    /// fence; renew the lease with [`renew`](Client::renew) before it runs
    /// out, and settle the job with [`ack`](Client::ack),
    /// [`fail`](Client::fail) or [`release`](Client::release).
    ///
    /// If this returns an error after Redis ran the claim (the reply was
    /// lost), the job stays leased to `owner` until its lease runs out,
    /// which counts an attempt. A [`Host`](super::Host) does not lose jobs
    /// that way: it retries a failed claim so that Redis hands it the jobs
    /// that claim took.
    pub async fn claim(&self, lease: Duration, owner: &str) -> Result<Option<Claimed>, Error> {
        let token = unique_token();
        Ok(self.claim_batch(lease, owner, 1, &token).await?.pop())
    }

    /// Claims up to `max` (at most 256) of the best ready jobs in one call,
    /// in queue order (the first is the one [`claim`](Client::claim) would
    /// return), each under its own lease and fence as `claim` gives, and
    /// each counting an attempt. Returns an empty list if none is ready.
    ///
    /// Settle them one by one or with [`ack_many`](Client::ack_many); renew
    /// them all with one [`renew`](Client::renew).
    pub async fn claim_many(
        &self,
        lease: Duration,
        owner: &str,
        max: usize,
    ) -> Result<Vec<Claimed>, Error> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let token = unique_token();
        self.claim_batch(lease, owner, max.min(BATCH_MAX), &token)
            .await
    }

    /// Claims up to `max` jobs under `token`. Calling again with the same
    /// token and owner, while the leases last, returns the jobs the first
    /// call took and still holds, rather than claiming more: so a caller
    /// that lost a reply retries with the token and runs what it claimed.
    /// With `max` 0, only that: no new job is claimed.
    pub(crate) async fn claim_batch(
        &self,
        lease: Duration,
        owner: &str,
        max: usize,
        token: &str,
    ) -> Result<Vec<Claimed>, Error> {
        let lease_ms = lease.as_millis().max(1) as u64;
        let mut con = self.con.clone();
        let keys = &self.keys;
        let reply: Vec<ClaimReply> = keys
            .scripts
            .claim
            .key(&keys.ready)
            .key(&keys.leased)
            .key(&keys.delayed)
            .key(&keys.dead)
            .arg(&keys.prefix)
            .arg(lease_ms)
            .arg(owner)
            .arg(TICK_LIMIT)
            .arg(token)
            .arg(max)
            .invoke_async(&mut con)
            .await?;
        Ok(reply
            .into_iter()
            .map(
                |(id, fence, attempt, kind, payload, tag, priority, timeout_ms, max_attempts)| {
                    Claimed {
                        id: JobId(id),
                        fence,
                        attempt,
                        max_attempts,
                        kind,
                        payload,
                        tag: Some(tag).filter(|t| !t.is_empty()),
                        priority,
                        timeout: Some(Duration::from_millis(timeout_ms)).filter(|t| !t.is_zero()),
                    }
                },
            )
            .collect())
    }

    /// Moves due delayed jobs to the ready set and puts jobs whose lease ran
    /// out back in their place (at most 100 of each per call), as every
    /// [`claim`](Client::claim) does first. Hosts need not call it; it is for
    /// tools and tests that watch the queue without claiming.
    pub async fn maintain(&self) -> Result<(), Error> {
        let mut con = self.con.clone();
        let keys = &self.keys;
        let _: i64 = keys
            .scripts
            .maintain
            .key(&keys.ready)
            .key(&keys.leased)
            .key(&keys.delayed)
            .key(&keys.dead)
            .arg(&keys.prefix)
            .arg(TICK_LIMIT)
            .invoke_async(&mut con)
            .await?;
        Ok(())
    }

    /// Acknowledges a finished job: it leaves the queue, and its record
    /// expires after the finished-job TTL.
    ///
    /// Refused with an error for which [`Error::is_stale`] is `true` if
    /// `job`'s lease was lost (it ran out and the job was put back or
    /// claimed again): the job then runs again, which is what at-least-once
    /// means.
    pub async fn ack(&self, job: &Claimed) -> Result<(), Error> {
        match self.settle_one(job, Settle::ack(job)).await? {
            Settled::Done => Ok(()),
            other => other.unexpected(job.id),
        }
    }

    /// Acknowledges many finished jobs in one round trip (one script per
    /// 256 jobs), each as [`ack`](Client::ack) would: returns one result
    /// per job, in order, and a job whose lease was lost is refused alone
    /// ([`Error::is_stale`]) while the others are acknowledged.
    ///
    /// The outer error is Redis's: then some chunks may have been applied
    /// and others not; acknowledging again is safe (an applied one is then
    /// refused as stale).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: taskplan::durable::Client) -> Result<(), taskplan::durable::Error> {
    /// use std::time::Duration;
    ///
    /// let jobs = client.claim_many(Duration::from_secs(30), "worker-1", 32).await?;
    /// // ... run them ...
    /// for (job, acked) in jobs.iter().zip(client.ack_many(&jobs).await?) {
    ///     if let Err(e) = acked {
    ///         eprintln!("job {} runs again: {e}", job.id());
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ack_many(&self, jobs: &[Claimed]) -> Result<Vec<Result<(), Error>>, Error> {
        let mut results = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(BATCH_MAX) {
            let entries: Vec<Settle> = chunk.iter().map(Settle::ack).collect();
            let settled = self.settle_batch(&entries).await?;
            for (job, settled) in chunk.iter().zip(settled) {
                results.push(match settled {
                    Settled::Done => Ok(()),
                    other => other.unexpected(job.id),
                });
            }
        }
        Ok(results)
    }

    /// Records a failed attempt with its `reason`: the job waits `backoff`,
    /// then goes back to its place in the ready set, or goes to the dead
    /// letters if it has had all its attempts. With `dead_now`, it goes to
    /// the dead letters whatever its attempts (it cannot run: unknown kind,
    /// undecodable payload). Refused as [`ack`](Client::ack) is.
    pub async fn fail(
        &self,
        job: &Claimed,
        reason: &str,
        backoff: Duration,
        dead_now: bool,
    ) -> Result<Failed, Error> {
        let entry = Settle::fail(job, reason.to_owned(), backoff, dead_now);
        match self.settle_one(job, entry).await? {
            Settled::Retry => Ok(Failed::Retry),
            Settled::Dead => Ok(Failed::Dead),
            Settled::Cancelled => Ok(Failed::Cancelled),
            other => other.unexpected(job.id),
        }
    }

    /// Puts a claimed job back in its place in the ready set at once, its
    /// attempt not counted: for a job claimed but not run (a host stopping,
    /// a plan with no room). A job whose tag was cancelled meanwhile
    /// ([`cancel_tag`](Client::cancel_tag)) ends as cancelled instead.
    /// Refused as [`ack`](Client::ack) is.
    pub async fn release(&self, job: &Claimed) -> Result<(), Error> {
        match self.settle_one(job, Settle::release(job)).await? {
            Settled::Released | Settled::Cancelled => Ok(()),
            other => other.unexpected(job.id),
        }
    }

    async fn settle_one(&self, job: &Claimed, entry: Settle) -> Result<Settled, Error> {
        self.settle_batch(std::slice::from_ref(&entry))
            .await?
            .pop()
            .ok_or_else(|| Error::corrupt(format!("settling job {} returned nothing", job.id)))
    }

    /// Settles up to [`BATCH_MAX`] jobs in one script call, each by its own
    /// fence. Returns one outcome per entry, in order.
    pub(crate) async fn settle_batch(&self, entries: &[Settle]) -> Result<Vec<Settled>, Error> {
        debug_assert!(entries.len() <= BATCH_MAX);
        let mut con = self.con.clone();
        let keys = &self.keys;
        let mut call = keys.scripts.settle.key(&keys.leased);
        call.key(&keys.ready)
            .key(&keys.delayed)
            .key(&keys.dead)
            .arg(&keys.prefix);
        for e in entries {
            let (op, reason, backoff_ms, dead_now) = match &e.op {
                SettleOp::Ack => ("a", "", 0, false),
                SettleOp::Release => ("r", "", 0, false),
                SettleOp::Fail {
                    reason,
                    backoff,
                    dead_now,
                } => ("f", reason.as_str(), backoff.as_millis() as u64, *dead_now),
            };
            call.arg(op)
                .arg(e.id.0)
                .arg(e.fence)
                .arg(reason)
                .arg(backoff_ms)
                .arg(if dead_now { "1" } else { "0" });
        }
        let words: Vec<String> = call.invoke_async(&mut con).await?;
        if words.len() != entries.len() {
            return Err(Error::corrupt(format!(
                "settling {} jobs returned {} outcomes",
                entries.len(),
                words.len()
            )));
        }
        words
            .iter()
            .map(|w| {
                Ok(match w.as_str() {
                    "done" => Settled::Done,
                    "retry" => Settled::Retry,
                    "dead" => Settled::Dead,
                    "released" => Settled::Released,
                    "cancelled" => Settled::Cancelled,
                    "stale" => Settled::Stale,
                    other => return Err(Error::corrupt(format!("settle returned {other:?}"))),
                })
            })
            .collect()
    }

    /// Extends to `lease` from now the leases of `jobs` (id and fence).
    /// Returns the attempts (id and fence) whose lease was already lost
    /// (their results will be refused, so a host stops running them) and
    /// those whose tag was cancelled (a host stops them too; they then end
    /// as cancelled). Attempts are reported with their fence, so that an
    /// old attempt of a job and its newer claim are told apart.
    pub async fn renew(&self, jobs: &[(JobId, u64)], lease: Duration) -> Result<Renewed, Error> {
        if jobs.is_empty() {
            return Ok(Renewed::default());
        }
        let mut con = self.con.clone();
        let mut call = self.keys.scripts.renew.key(&self.keys.leased);
        call.arg(&self.keys.prefix)
            .arg(lease.as_millis().max(1) as u64);
        for &(id, fence) in jobs {
            call.arg(id.0).arg(fence);
        }
        type Attempts = Vec<(u64, u64)>;
        let (lost, cancel): (Attempts, Attempts) = call.invoke_async(&mut con).await?;
        let attempts = |v: Vec<(u64, u64)>| v.into_iter().map(|(id, f)| (JobId(id), f)).collect();
        Ok(Renewed {
            lost: attempts(lost),
            cancelled: attempts(cancel),
        })
    }

    /// Cancels every unfinished job tagged `tag`, on every host: ready and
    /// delayed jobs end as cancelled at once; a running job is flagged and
    /// announced on the queue's pub/sub channel, and its host stops it as
    /// soon as the message arrives, or else when it next renews its leases
    /// (by default at most every 500 ms), and then records it as cancelled.
    /// Returns how many jobs were cancelled or flagged.
    ///
    /// Works in chunks of 500 jobs, each one atomic script, so a large tag
    /// never blocks Redis for long. A job tagged `tag` and enqueued while
    /// this runs may or may not be cancelled. A flagged job that finishes
    /// before its host sees the flag is recorded as done.
    pub async fn cancel_tag(&self, tag: &str) -> Result<usize, Error> {
        let mut con = self.con.clone();
        let keys = &self.keys;
        let mut total = 0;
        loop {
            let (n, left): (usize, usize) = keys
                .scripts
                .cancel_tag
                .key(&keys.ready)
                .key(&keys.delayed)
                .arg(&keys.prefix)
                .arg(tag)
                .arg(CHUNK)
                .invoke_async(&mut con)
                .await?;
            total += n;
            if left == 0 {
                return Ok(total);
            }
        }
    }

    /// Moves every ready or delayed job tagged `tag` in front of every job
    /// not promoted since, on every host, keeping their order (priority,
    /// then FIFO): the newest promotion comes first, as with
    /// [`Plan::promote`](crate::Plan::promote). Running jobs are not moved.
    /// Returns how many jobs moved.
    ///
    /// Works in chunks of about 500 jobs, each one atomic script, so a
    /// large tag never blocks Redis for long; between chunks, a host may
    /// claim a job of the tag not yet moved.
    pub async fn promote(&self, tag: &str) -> Result<usize, Error> {
        let mut con = self.con.clone();
        let keys = &self.keys;
        let tier: u64 = con.incr(format!("{}:promotions", keys.prefix), 1).await?;
        let mut cursor = "0".to_owned();
        let mut total = 0;
        loop {
            let (next, moved): (String, usize) = keys
                .scripts
                .promote
                .key(&keys.ready)
                .arg(&keys.prefix)
                .arg(tag)
                .arg(tier)
                .arg(&cursor)
                .arg(CHUNK)
                .invoke_async(&mut con)
                .await?;
            total += moved;
            if next == "0" {
                return Ok(total);
            }
            cursor = next;
        }
    }

    /// Counts of what happened to every job of the queue, from all hosts.
    pub async fn stats(&self) -> Result<ClusterStats, Error> {
        self.read_stats(format!("{}:stats", self.keys.prefix)).await
    }

    /// Counts of what happened to the jobs tagged `tag`, from all hosts.
    ///
    /// A tag's counts are forgotten once none of its jobs has done anything
    /// for a finished-job TTL (one day by default), so tags per user cost
    /// nothing in Redis after their work ends; all zero then.
    pub async fn tag_stats(&self, tag: &str) -> Result<ClusterStats, Error> {
        self.read_stats(format!("{}:stats:{tag}", self.keys.prefix))
            .await
    }

    /// How many of the jobs tagged `tag` are ready, delayed (or backing
    /// off) and running now, on every host: the tag's gauges, where
    /// [`tag_stats`](Client::tag_stats) has its event counts.
    ///
    /// Read from the tag's index of unfinished jobs: a tag with up to 500
    /// of them is counted in one atomic script, so the counts are one
    /// instant's; a larger one is counted in chunks of about 500, each one
    /// script, so jobs that move between chunks may be counted in either
    /// state (or, rarely, twice). A running job whose tag was cancelled is
    /// no longer in the index, so it is not counted while its host stops
    /// it. Dead letters are not counted here: see
    /// [`dead_letters`](Client::dead_letters).
    pub async fn tag_counts(&self, tag: &str) -> Result<TagCounts, Error> {
        let mut con = self.con.clone();
        let keys = &self.keys;
        let mut cursor = "0".to_owned();
        let mut counts = TagCounts::default();
        loop {
            let (next, ready, delayed, running): (String, usize, usize, usize) = keys
                .scripts
                .tag_counts
                .arg(&keys.prefix)
                .arg(tag)
                .arg(&cursor)
                .arg(CHUNK)
                .invoke_async(&mut con)
                .await?;
            counts.ready += ready;
            counts.delayed += delayed;
            counts.running += running;
            if next == "0" {
                return Ok(counts);
            }
            cursor = next;
        }
    }

    async fn read_stats(&self, key: String) -> Result<ClusterStats, Error> {
        let mut con = self.con.clone();
        let fields: Vec<Option<u64>> = redis::cmd("HMGET")
            .arg(key)
            .arg(&[
                "enqueued",
                "claimed",
                "completed",
                "failed",
                "expired",
                "released",
                "dead",
                "cancelled",
            ])
            .query_async(&mut con)
            .await?;
        let mut f = fields.into_iter().map(Option::unwrap_or_default);
        let mut next = || f.next().unwrap_or_default();
        Ok(ClusterStats {
            enqueued: next(),
            claimed: next(),
            completed: next(),
            failed: next(),
            expired: next(),
            released: next(),
            dead: next(),
            cancelled: next(),
        })
    }

    /// How many jobs are ready, delayed (or backing off), leased and dead.
    pub async fn counts(&self) -> Result<QueueCounts, Error> {
        let mut con = self.con.clone();
        let (ready, delayed, leased, dead): (usize, usize, usize, usize) = redis::pipe()
            .zcard(&self.keys.ready)
            .zcard(&self.keys.delayed)
            .zcard(&self.keys.leased)
            .zcard(&self.keys.dead)
            .query_async(&mut con)
            .await?;
        Ok(QueueCounts {
            ready,
            delayed,
            leased,
            dead,
        })
    }
}

/// Counts of what happened to a queue's jobs (or one tag's), summed over
/// every host, from [`Client::stats`] and [`Client::tag_stats`].
///
/// Each field counts events since the counts began: a job retried twice
/// adds 3 to `claimed` and 2 to `failed`. Every enqueued job ends, or is
/// still unfinished, so at a quiet point `enqueued >= completed + dead +
/// cancelled`, and a dead letter retried with [`Client::retry_dead`] can
/// count in `dead` and then again in `completed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Jobs enqueued.
    pub enqueued: u64,
    /// Attempts claimed by hosts.
    pub claimed: u64,
    /// Jobs acknowledged.
    pub completed: u64,
    /// Attempts that failed: an error, a panic, a timeout, or a job that
    /// could not run.
    pub failed: u64,
    /// Leases that ran out (their host died, stalled or lost Redis).
    pub expired: u64,
    /// Claimed jobs put back unstarted or cancelled by their host's drain.
    pub released: u64,
    /// Jobs moved to the dead letters.
    pub dead: u64,
    /// Jobs cancelled by [`Client::cancel_tag`].
    pub cancelled: u64,
}

/// What a lease renewal found, from [`Client::renew`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Renewed {
    /// Attempts (id and fence) whose lease was already lost: stop them,
    /// their results will be refused.
    pub lost: Vec<(JobId, u64)>,
    /// Attempts (id and fence) whose tag was cancelled: stop them;
    /// releasing or failing them then records them as cancelled.
    pub cancelled: Vec<(JobId, u64)>,
}

/// How many jobs are in each of the queue's sets, from [`Client::counts`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct QueueCounts {
    /// Jobs waiting to be claimed.
    pub ready: usize,
    /// Jobs waiting for their run-after time or a retry's backoff.
    pub delayed: usize,
    /// Jobs claimed under a lease.
    pub leased: usize,
    /// Jobs in the dead letters.
    pub dead: usize,
}

/// How many of a tag's jobs are in each state now, on every host, from
/// [`Client::tag_counts`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct TagCounts {
    /// Jobs waiting to be claimed.
    pub ready: usize,
    /// Jobs waiting for their run-after time or a retry's backoff.
    pub delayed: usize,
    /// Jobs claimed under a lease (running, or about to start, on a host).
    pub running: usize,
}

impl TagCounts {
    /// Jobs not yet running: ready or delayed.
    pub fn queued(&self) -> usize {
        self.ready + self.delayed
    }
}

/// A job being described; made by [`Client::job`], sent by
/// [`enqueue`](JobBuilder::enqueue).
#[must_use = "a job is enqueued only by `.enqueue().await`"]
pub struct JobBuilder<'a> {
    client: &'a Client,
    kind: String,
    payload: Result<String, Error>,
    tag: Option<String>,
    priority: i32,
    timeout: Option<Duration>,
    max_attempts: u32,
    run_after: Duration,
}

impl fmt::Debug for JobBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobBuilder")
            .field("kind", &self.kind)
            .field("tag", &self.tag)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl JobBuilder<'_> {
    /// Tags the job: the host runs it as a plan task with this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into()).filter(|t| !t.is_empty());
        self
    }

    /// Sets the priority (default 0): among ready jobs, a higher priority
    /// is claimed first, equal priorities in enqueue order.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Limits how long one attempt may run once started; an attempt over
    /// it is dropped and counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets how many attempts the job may have in all (default 3), after
    /// which a failing job goes to the dead letters. Must be at least 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Makes the job claimable only once `delay` has passed (by Redis's
    /// clock).
    pub fn run_after(mut self, delay: Duration) -> Self {
        self.run_after = delay;
        self
    }

    /// Sends the job to Redis and returns its id. Once this returns `Ok`,
    /// the job is in Redis and will be delivered at least once.
    pub async fn enqueue(self) -> Result<JobId, Error> {
        let payload = self.payload?;
        if self.kind.is_empty() {
            return Err(Error::invalid(
                "the job kind is empty; name the kind of job",
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::invalid(
                "max_attempts is 0; a job needs at least 1 attempt",
            ));
        }
        let timeout_ms = match self.timeout {
            Some(t) => (t.as_millis() as u64).max(1),
            None => 0,
        };
        let client = self.client;
        let keys = &client.keys;
        let mut con = client.con.clone();
        let id: u64 = keys
            .scripts
            .enqueue
            .key(&keys.seq)
            .key(&keys.ready)
            .key(&keys.delayed)
            .arg(&keys.prefix)
            .arg(&self.kind)
            .arg(payload)
            .arg(self.tag.as_deref().unwrap_or(""))
            .arg(self.priority)
            .arg(timeout_ms)
            .arg(self.max_attempts)
            .arg(self.run_after.as_millis() as u64)
            .arg((client.finished_ttl.as_secs_f64().ceil().max(1.0) as u64).min(FINISHED_TTL_MAX_S))
            .invoke_async(&mut con)
            .await?;
        Ok(JobId(id))
    }
}
