//! A durable job queue in Redis, shared by plans on many hosts (feature
//! `redis`).
//!
//! A [`Client`] enqueues jobs from any process: a named kind with a JSON
//! payload (any `serde::Serialize`), and a tag, priority, timeout, maximum
//! number of attempts and run-after delay. A [`Host`] on each machine claims
//! jobs while its [`Plan`](crate::Plan) has room and runs each as an
//! ordinary plan task, so tags, priorities, timeouts, cancellation and stats
//! keep their meaning; the handler for each kind is registered on the host.
//!
//! # Delivery is at least once
//!
//! A job leaves the queue only when the host that ran it acknowledges it.
//! A host holds each claimed job under a **lease** that it renews while the
//! job runs; if the host dies, stalls or loses Redis, the lease runs out and
//! the job goes back to its place in the queue, for another host. So a job
//! can run more than once (its first run may have done its work and died
//! before the acknowledgement): **handlers should be idempotent**. A job is
//! never lost once [`JobBuilder::enqueue`] returned `Ok`, short of losing
//! Redis's data (run Redis with persistence for that).
//!
//! Each claim bumps the job's **fence**. Acknowledging, failing, releasing
//! and renewing carry the fence, and Redis refuses them once another claim
//! has taken the job ([`Error::is_stale`]): a host that comes back after
//! its lease ran out cannot overwrite the newer attempt's result. A host
//! that learns on renewal that it lost a lease stops running that job; a
//! host that claims a job again while its own older attempt still runs
//! (it stalled past the lease) stops the older attempt and drops its
//! result, and keeps renewing the newer one. Handlers can fence their own
//! side effects with [`JobContext::fence`].
//!
//! A failed attempt (the handler's `Err`, a panic, or the job's timeout) is
//! retried after an exponential backoff until the job's attempts run out,
//! then the job goes to the **dead letters**, with the reason:
//! [`Client::dead_letters`] lists them and [`Client::retry_dead`] puts one
//! back. A job that cannot run at all (no handler for its kind on the host
//! that claimed it, or a payload that does not decode) goes to the dead
//! letters at once. Nothing is dropped and nothing panics in a worker.
//!
//! A lease that runs out counts as an attempt (the job may have been what
//! killed its host): if it was the job's last allowed attempt, the job goes
//! to the dead letters with that reason instead of back to the queue. A job
//! put back unstarted or cancelled by its host's shutdown
//! ([`Client::release`], [`Host::shutdown`]) does not count an attempt.
//! An acknowledgement is accepted while the job's fence is current and the
//! job is still leased, even if its lease time has just passed and no host
//! has put it back yet.
//!
//! A claim whose reply is lost (the connection dropped after Redis ran it)
//! does not cost its jobs an attempt either: the host retries the claim
//! with the same token until Redis answers, and Redis hands it the jobs
//! that claim took (while their leases last), so they run on this host.
//! If Redis stays out of reach for longer than a lease, those leases run
//! out like any other, and count an attempt. Redis keeps each host's
//! last claim under the host's name, so **a host's name must be unique
//! among the live hosts of a queue** ([`HostBuilder::name`]; the default
//! is). A host that dies with a claim unanswered is not helped: its jobs'
//! leases run out and count an attempt, as for any job of a dead host.
//!
//! # The Redis data model
//!
//! All keys start with a prefix (`taskplan` by default):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<p>:seq` | string | the last job id given (`INCR`) |
//! | `<p>:job:<id>` | hash | the job: `kind`, `payload`, `tag`, `priority`, `timeout_ms`, `max_attempts`, `attempts`, `fence`, `rank`, `state`, `owner` (the lease holder; for a done job, the host that acknowledged it), `last_error`, `cancel` (a cancel asked while it runs), `ttl_s` (how long its record stays once finished), times |
//! | `<p>:ready` | sorted set | ready jobs, by **rank** (all scores 0; members ordered as strings) |
//! | `<p>:leased` | sorted set | claimed job ids, scored by lease expiry (ms, Redis's clock) |
//! | `<p>:delayed` | sorted set | job ids waiting for their run-after time or a retry's backoff, scored by due time |
//! | `<p>:dead` | sorted set | dead-letter job ids, scored by time of death |
//! | `<p>:claim:<host>` | string | the host's last claim that took jobs: its token and `id:fence` pairs, expiring with the lease; a claim retried with that token gets these jobs (those it still holds) back |
//! | `<p>:tag:<tag>` | set | ids of the tag's unfinished jobs (ready, delayed or running), for `promote`, `cancel_tag` and `tag_counts` |
//! | `<p>:promotions` | string | the last promotion number given (`INCR`) |
//! | `<p>:stats`, `<p>:stats:<tag>` | hash | event counts for [`Client::stats`] and [`Client::tag_stats`], kept by the scripts; a tag's expire once it is idle |
//! | `<p>:events` | pub/sub channel | `ready` (a job is ready to claim) and `cancel:<id>` (a running job was asked to cancel), published by the scripts; hints only, see below |
//!
//! A job's **rank** is a fixed-width hex string made once at enqueue and
//! kept in its hash: `tier (14 digits) . 2^31 - 1 - priority (8 digits) .
//! id (14 digits)`. The ready set holds ranks with equal scores, which
//! Redis orders as byte strings, so the first member is the next job: the
//! lowest tier, then the highest priority, then the oldest id (FIFO).
//! String ranks keep full 64-bit room for each field, where packing them
//! into one score (a double, 53 bits) would not. A job starts in the base
//! tier `2^53`; [`Client::promote`] rewrites the tier of the tag's ready and
//! delayed jobs to `2^53 - n` for the `n`th promotion, so newer promotions
//! come first and jobs keep their priority and FIFO order within a tier,
//! as [`Plan::promote`](crate::Plan::promote) does in one plan. Because a job
//! keeps its rank, a job put back (its lease ran out, a host released it, a
//! retry's backoff ended, or a dead letter retried) returns to **its
//! original place**, not to the back.
//!
//! Every change that touches more than one key is one Lua script
//! (`scripts.rs`), so it is atomic: enqueue; claim of up to 256 jobs in
//! queue order (which first moves due delayed jobs and expired leases, at
//! most 100 of each per call, so a backlog never blocks Redis for long;
//! any host that claims keeps the queue moving); settle, of up to 256
//! jobs, each fenced on its own (a stale one is refused, the others apply)
//! and each an ack (the record then expires, one day by default), a fail
//! (to the delayed set with backoff, or to the dead letters) or a release
//! (back to its place, attempt not counted); renew (fenced, per job;
//! reports lost leases and cancelled jobs, each with its fence); retry of
//! a dead letter; and `cancel_tag`, `promote` and `tag_counts`, 500 jobs of
//! the tag per script call.
//!
//! # Throughput
//!
//! A host claims as many jobs as it has room for in one script call: its
//! plan's workers plus a prefetch ([`HostBuilder::prefetch`]; by default
//! as many jobs as the workers finish in two claim round trips, measured
//! as it goes, from 1 to 256), so a worker that ends a job finds the next
//! one waiting in the plan instead of waiting for Redis, while of long
//! jobs only one waits and the rest stay claimable by idle hosts. Finished
//! jobs go to one settling task per host, which sends all the jobs waiting
//! to be settled in one script call, one call in flight at a time: batches
//! grow with the load, with no timer, and a lone job is acknowledged at
//! once. So a busy host makes about two round trips per batch of jobs, not
//! two per job, and the due-work step runs once per claim call.
//! [`Client::claim_many`] and [`Client::ack_many`] give hand-written
//! workers the same batches.
//!
//! # Stats
//!
//! [`Client::stats`] and [`Client::tag_stats`] count events (enqueued,
//! claimed, completed, failed, expired, released, dead, cancelled) across
//! every host, kept by the scripts as each happens. [`Client::counts`] and
//! [`Client::tag_counts`] are gauges: how many jobs are ready, delayed,
//! leased (or running) and dead now, in the queue or in one tag.
//! Times come from Redis's `TIME`, so hosts' clocks need not agree.
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use taskplan::Plan;
//! use taskplan::durable::{Client, Host};
//!
//! // Any process: enqueue.
//! let client = Client::connect("redis://127.0.0.1:6379/").await?;
//! let id = client.job("resize", &("photo-7.jpg", 640)).tag("photos").enqueue().await?;
//!
//! // Each host: run jobs on a plan.
//! let plan = Plan::builder().workers(4).name("photos").build()?;
//! let host = Host::builder(&plan, &client)
//!     .register("resize", |(file, width): (String, u32), cx| async move {
//!         println!("job {}: resizing {file} to {width}", cx.id());
//!         Ok::<(), String>(())
//!     })
//!     .start();
//! # let _ = id;
//! host.shutdown(Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Cancelling a tag across hosts
//!
//! [`Client::cancel_tag`] ends the tag's ready and delayed jobs at once and
//! flags its running ones. The flag reaches the host running the job by
//! two paths:
//!
//! - **Fast, best effort:** the script publishes `cancel:<id>` on
//!   `<prefix>:events`; each [`Host`] listens there on a pub/sub connection
//!   of its own and cancels that job's plan task as soon as the message
//!   arrives, typically within a round trip.
//! - **Fallback, guaranteed while the host reaches Redis:** each host
//!   renews its leases every [`HostBuilder::renew_interval`] (by default a
//!   third of the lease, at most 500 ms), and the renewal reports flagged
//!   jobs. So a running job stops within one renewal interval even if the
//!   message was lost.
//!
//! Either way the job is then recorded as cancelled. Redis keeps no
//! pub/sub message for a connection that is not subscribed at the moment
//! it is published: a host whose events connection dropped resubscribes on
//! its own, renews at once when it is back (to pick up what it missed), and
//! relies on the renewals meanwhile.
//!
//! # Waking idle hosts
//!
//! An idle host asks Redis for work every [`HostBuilder::poll_interval`]
//! (200 ms by default). On top of that, enqueueing a job that is ready at
//! once publishes `ready` on `<prefix>:events`, and so do retrying a dead
//! letter ([`Client::retry_dead`]) and a claim that moves due delayed jobs
//! or expired leases back to the ready set; every
//! idle host that hears it claims at once. This too is best effort: a job
//! whose message is lost waits at most one poll interval. A host that
//! (re)subscribes looks for work once at once, so a job enqueued while it
//! was not listening does not wait for the poll either. A delayed job that
//! comes due while every host is idle is moved to the ready set only by
//! the next claim (a poll), so it starts within one poll interval of its
//! due time, as before.
//!
//! # Limits
//!
//! Enqueueing is one round trip per job (there is no bulk enqueue); claims
//! and acknowledgements are batched. The keys a script touches are derived
//! inside it, so the queue needs a standalone Redis (5.0 or later), not
//! Redis Cluster. Dead letters stay until retried. Draining on SIGTERM is
//! [`Host::shutdown_on_signal`] (feature `signal`). Throughput against the
//! peers: `benches/durable_peers/` and BENCHMARKS.md.
#![cfg_attr(docsrs, doc(cfg(feature = "redis")))]

mod client;
mod host;
mod job;
mod scripts;

pub use client::{Client, ClusterStats, JobBuilder, QueueCounts, Renewed, TagCounts};
pub use host::{Host, HostBuilder};
pub use job::{Claimed, DeadLetter, Error, Failed, JobContext, JobId, JobInfo, JobState};
