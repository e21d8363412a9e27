//! What a durable job is, as values: its id, a claimed job and its lease,
//! what a handler is told, what the queue reports, and the errors.
//!
//! Plain values only; the Redis calls that make and change them live in
//! `client.rs`, the claiming loop in `host.rs`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A job's id, unique within one queue (one Redis database and prefix).
///
/// Ids are assigned by Redis in enqueue order, so among jobs of equal
/// priority a smaller id runs first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// Returns the id as a number, as Redis stores it.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A job claimed from the queue under a lease: what a host runs.
///
/// The claim bumped the job's fence; only calls carrying this fence can
/// acknowledge, fail, release or renew the job, so once the lease is lost
/// (it ran out and another host claimed the job) this value can change
/// nothing. [`Client::claim`](super::Client::claim) returns it; a
/// [`Host`](super::Host) claims and settles jobs for you.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub(crate) id: JobId,
    pub(crate) fence: u64,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) tag: Option<String>,
    pub(crate) priority: i32,
    pub(crate) timeout: Option<Duration>,
}

impl Claimed {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// The fencing token of this claim: it grows with every claim of the job.
    pub fn fence(&self) -> u64 {
        self.fence
    }
    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How many attempts the job may have in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// The job's kind, which picks its handler.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The payload, as the JSON text it was enqueued with.
    pub fn payload(&self) -> &str {
        &self.payload
    }
    /// The job's tag, if it has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The job's priority.
    pub fn priority(&self) -> i32 {
        self.priority
    }
    /// The job's timeout, if it has one.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// What a handler is told about the job it runs.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) id: JobId,
    pub(crate) fence: u64,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) tag: Option<String>,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// The fence of this attempt: it grows with every claim of the job, so
    /// a newer attempt always has a larger one.
    ///
    /// Redis refuses this attempt's result once a newer claim has the job,
    /// but side effects of the handler elsewhere are its own to guard: pass
    /// the fence along (with the id) to a store that keeps the largest one
    /// it has seen and refuses writes with a smaller one, and an attempt
    /// that lost its lease (its host stalled past it) cannot overwrite what
    /// the newer attempt wrote.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskplan::durable::JobContext;
    ///
    /// // A write to a store that keeps the fence of the last write per key.
    /// fn fenced_write(cx: &JobContext, stored_fence: &mut u64, value: &mut String, new: &str) {
    ///     if cx.fence() >= *stored_fence {
    ///         *stored_fence = cx.fence();
    ///         *value = new.to_owned();
    ///     }
    /// }
    /// # let _ = fenced_write;
    /// ```
    pub fn fence(&self) -> u64 {
        self.fence
    }
    /// Which attempt this is, from 1. Delivery is at least once: a job may
    /// run again after an attempt that did its work but was not
    /// acknowledged, so a handler should be idempotent.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// How many attempts the job may have in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// The job's tag, if it has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
}

/// Where a job is in its life, from [`Client::job_info`](super::Client::job_info).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting in the ready set to be claimed.
    Ready,
    /// Waiting for its run-after time, or for its backoff after a failed
    /// attempt.
    Delayed,
    /// Claimed by a host under a lease.
    Running,
    /// Acknowledged; its record expires after the finished-job TTL.
    Done,
    /// In the dead letters: out of attempts, or it could not be run.
    Dead,
    /// Cancelled by [`Client::cancel_tag`](super::Client::cancel_tag); its
    /// record expires after the finished-job TTL.
    Cancelled,
}

impl JobState {
    pub(crate) fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "ready" => JobState::Ready,
            "delayed" => JobState::Delayed,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "dead" => JobState::Dead,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
}

/// A snapshot of one job's record.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's id.
    pub id: JobId,
    /// The job's kind.
    pub kind: String,
    /// Where the job is.
    pub state: JobState,
    /// Attempts claimed so far (an attempt put back unstarted is not counted).
    pub attempts: u32,
    /// How many attempts the job may have in all.
    pub max_attempts: u32,
    /// The fence of the latest claim (0 if never claimed).
    pub fence: u64,
    /// Why the latest attempt failed, if one did.
    pub last_error: Option<String>,
    /// The job's tag, if it has one.
    pub tag: Option<String>,
    /// The job's priority.
    pub priority: i32,
    /// The host that holds the job's lease while it runs, or, once it is
    /// done, the host that acknowledged it (its name, from
    /// [`HostBuilder::name`](super::HostBuilder::name)); `None` otherwise.
    pub owner: Option<String>,
}

/// A job in the dead letters, from
/// [`Client::dead_letters`](super::Client::dead_letters).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The job's id; pass it to [`Client::retry_dead`](super::Client::retry_dead).
    pub id: JobId,
    /// The job's kind.
    pub kind: String,
    /// Why the job is dead: its last error.
    pub reason: String,
    /// Attempts the job had.
    pub attempts: u32,
}

/// What became of a failed attempt, from [`Client::fail`](super::Client::fail).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Failed {
    /// The job waits for its backoff, then goes back to its place in the
    /// ready set.
    Retry,
    /// The job is out of attempts (or cannot run) and is in the dead letters.
    Dead,
    /// The job's tag was cancelled: it ended as cancelled.
    Cancelled,
}

/// A durable-queue operation failed.
///
/// The message says what to do. No job is lost to an error: an enqueue that
/// fails enqueued nothing; a claim that fails claimed nothing or leaves the
/// job under a lease that runs out; an acknowledgement refused for a stale
/// fence ([`is_stale`](Error::is_stale)) means another claim owns the job,
/// which will run (or has run) again.
pub struct Error {
    kind: ErrorKind,
}

enum ErrorKind {
    Redis(redis::RedisError),
    Encode(serde_json::Error),
    Invalid(&'static str),
    Stale(JobId),
    Corrupt(String),
}

impl Error {
    pub(crate) fn encode(e: serde_json::Error) -> Error {
        Error {
            kind: ErrorKind::Encode(e),
        }
    }
    pub(crate) fn invalid(what: &'static str) -> Error {
        Error {
            kind: ErrorKind::Invalid(what),
        }
    }
    pub(crate) fn stale(id: JobId) -> Error {
        Error {
            kind: ErrorKind::Stale(id),
        }
    }
    pub(crate) fn corrupt(what: String) -> Error {
        Error {
            kind: ErrorKind::Corrupt(what),
        }
    }

    /// Returns `true` if Redis could not be reached or refused the command.
    /// Retrying later is safe.
    pub fn is_redis(&self) -> bool {
        matches!(self.kind, ErrorKind::Redis(_))
    }
    /// Returns `true` if the payload could not be encoded as JSON.
    pub fn is_encode(&self) -> bool {
        matches!(self.kind, ErrorKind::Encode(_))
    }
    /// Returns `true` if a setting of the job or client was out of range.
    pub fn is_invalid(&self) -> bool {
        matches!(self.kind, ErrorKind::Invalid(_))
    }
    /// Returns `true` if the call carried a fence that no longer owns the
    /// job: its lease ran out, and it was put back or claimed again.
    pub fn is_stale(&self) -> bool {
        matches!(self.kind, ErrorKind::Stale(_))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Error {
        Error {
            kind: ErrorKind::Redis(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Redis(e) => write!(
                f,
                "redis failed: {e}; check that the server is up and reachable, then retry"
            ),
            ErrorKind::Encode(e) => write!(
                f,
                "payload could not be encoded as json: {e}; nothing was enqueued"
            ),
            ErrorKind::Invalid(what) => write!(f, "{what}; nothing was changed"),
            ErrorKind::Stale(id) => write!(
                f,
                "the lease on job {id} was lost (it ran out, and the job was put back or \
                 claimed again); this result was not recorded and the job runs again"
            ),
            ErrorKind::Corrupt(what) => write!(
                f,
                "redis returned an unexpected reply ({what}); check that nothing else writes \
                 under this queue's key prefix"
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Redis(e) => f.debug_tuple("Redis").field(e).finish(),
            ErrorKind::Encode(e) => f.debug_tuple("Encode").field(e).finish(),
            ErrorKind::Invalid(w) => f.debug_tuple("Invalid").field(w).finish(),
            ErrorKind::Stale(id) => f.debug_tuple("Stale").field(id).finish(),
            ErrorKind::Corrupt(w) => f.debug_tuple("Corrupt").field(w).finish(),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            ErrorKind::Redis(e) => Some(e),
            ErrorKind::Encode(e) => Some(e),
            _ => None,
        }
    }
}
