//! Run many futures with bounded concurrency, clean cancellation and clean
//! shutdown.
//!
//! Threads are hard to stop and hard to scale: stopping one means a flag it
//! may never look at, and going from one to three means redesigning what
//! they share. taskplan takes the other road. A program puts small tasks
//! into a [`Plan`], a few workers run them, and the plan, not the program,
//! owns starting, stopping and counting them. A task stuck on slow I/O stops
//! the moment it is cancelled, and the number of workers is one number.
//!
//! # Overview
//!
//! - [`Plan::builder`] configures `workers` (how many tasks run at once),
//!   `capacity` (how many may wait) and a `name` for logs.
//! - [`Plan::submit`] queues a future, waiting while the queue is full;
//!   [`Plan::try_submit`] never waits. A refused future is handed back in
//!   the [`SubmitError`].
//! - Each task gets a [`TaskHandle`]: await it for the output, or
//!   [`cancel`](TaskHandle::cancel) it, queued or running. Dropping it
//!   detaches the task.
//! - A [`TaskSet`] holds many handles and yields their results in the order
//!   the tasks finish, as a `JoinSet` does; dropping it cancels its tasks.
//! - A panicking task resolves its handle with a [`TaskError`] and its worker
//!   goes on; the panic is logged through `tracing`.
//! - [`Plan::shutdown`] drains with a deadline and then cancels the rest;
//!   [`Plan::abort`] cancels everything at once. Both return a
//!   [`ShutdownReport`]. [`Plan::stats`] counts what happened.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plan = Plan::builder().workers(3).name("sync").build()?;
//!
//! let fast = plan.submit(async { "synced" }).await?;
//! let stuck = plan.submit(std::future::pending::<&str>()).await?;
//!
//! assert_eq!(fast.await?, "synced");
//! stuck.cancel(); // stops at once, though it waits on nothing that wakes it
//! assert!(stuck.await.unwrap_err().is_cancelled());
//!
//! let report = plan.shutdown(Duration::from_secs(5)).await;
//! assert_eq!((report.completed, report.cancelled), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! # Cancellation
//!
//! A running task is stopped by dropping its future, which Tokio futures
//! allow at any `.await`. Each supervisor races its task against the plan's
//! [`CancellationToken`](tokio_util::sync::CancellationToken) in a biased
//! select (the token goes first after the task's first poll), and each
//! task's own cancel flag wakes its supervisor, so cancellation never waits
//! for the task to look at a flag. [`TaskHandle::cancel`] stops one
//! task, queued or running; [`Plan::cancel_tag`] stops a kind of task;
//! [`Plan::abort`] stops everything.
//!
//! # Priorities
//!
//! [`Plan::task`] describes a task before submitting it. Among queued tasks
//! a higher [`priority`](TaskBuilder::priority) starts first; equal
//! priorities start in submission order, whoever submits them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plan = taskplan::Plan::builder().workers(1).build()?;
//! let report = plan.task(async { "report" }).priority(-5).submit().await?;
//! let alert = plan.task(async { "alert" }).priority(10).submit().await?;
//! assert_eq!((alert.await?, report.await?), ("alert", "report"));
//! # Ok(())
//! # }
//! ```
//!
//! # Tags and promotion
//!
//! A [`tag`](TaskBuilder::tag) names a kind of task. [`Plan::promote`] moves
//! every queued task of a tag in front of everything else queued, keeping
//! their order: the essay's interactive UI, whose clicks must not wait behind
//! background work. It costs O(m log m) for the m tasks moved, however long
//! the queue. [`Plan::cancel_tag`] cancels a tag's queued and running tasks,
//! and [`Plan::tag_stats`] counts them.
//!
//! # Resizing
//!
//! [`Plan::set_workers`] changes how many tasks run at once while the plan
//! runs. Growing starts workers at once for queued work; shrinking lets
//! surplus workers finish their current task first, and none of them starts
//! another. Workers start as work arrives, up to [`MAX_WORKERS`]. Nothing is lost or interrupted, which is
//! the point: going from one worker to three is one number, not a redesign.
//!
//! # Timeouts
//!
//! [`TaskBuilder::timeout`], or [`PlanBuilder::task_timeout`] for every task,
//! bounds how long a task may run once started. A task over its timeout is
//! dropped like a cancelled one and its handle reports
//! [`TaskError::is_timeout`].
//!
//! # Tokens for work handed elsewhere
//!
//! [`Plan::submit_with`] gives a task its own
//! [`CancellationToken`](tokio_util::sync::CancellationToken), a child of the
//! plan's, cancelled when the task is cancelled, times out or the plan aborts,
//! so what the task spawned or sent to a thread can stop with it.
//!
//! # Blocking tasks
//!
//! [`Plan::submit_blocking`] runs a synchronous closure on Tokio's blocking
//! pool while it holds one of the plan's worker slots. Cancelling it resolves
//! its handle and frees its slot at once, and cancels its token; but a thread
//! cannot be killed, so a closure that never looks at its token runs on until
//! it returns. A shutdown does not wait for such closures and reports them as
//! [`abandoned`](ShutdownReport::abandoned).
//!
//! # Shutdown
//!
//! [`Plan::shutdown`] stops intake, drains for a grace period, then cancels
//! what is left and reports. With the `signal` feature (on by default),
//! [`Plan::shutdown_on_signal`] does so on SIGTERM or Ctrl-C, and aborts at
//! once on a second one, which is what a service under an orchestrator
//! needs:
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! let plan = taskplan::Plan::builder().name("service").build()?;
//! // ... hand `plan.clone()` to whatever submits work ...
//! let report = plan.shutdown_on_signal(Duration::from_secs(10)).await;
//! eprintln!("{} completed, {} cancelled", report.completed, report.cancelled);
//! # Ok(())
//! # }
//! ```
//!
//! # Observability
//!
//! Each task runs in a `tracing` span (plan, id, tag, priority) with an
//! event for each step; [`Stats::queue_wait`] and [`Stats::run_time`] say
//! how long tasks waited and ran; the `metrics` feature publishes all of it
//! through the `metrics` facade; and with `--cfg tokio_unstable`,
//! tokio-console shows each supervisor by its plan's name. See the
//! [guide](guide#observability).
//!
//! # Guide
//!
//! The [`guide`] goes further: the model, choosing workers and capacity,
//! the cancellation model, shutdown recipes, observability, and the same
//! program written with `JoinSet` + `Semaphore`, with `TaskTracker`, and
//! with taskplan.
//!
//! # Layout
//!
//! The public face (`Plan`, the builders, `TaskHandle`, the errors and the
//! stats) wraps an engine under `src/engine/`: the task cell (one
//! allocation per task, the crate's only `unsafe`), the queue, the locked
//! state and its wakeup accounting, the supervisors, and the counters.
//! The engine imports nothing of the public face but plain values.
//! `ARCHITECTURE.md` has the module map and a task's life through them.
//!
//! # Feature flags
//!
//! - `signal` (default): [`Plan::shutdown_on_signal`], through `tokio/signal`.
//! - `metrics`: publish counts, gauges and timings through the
//!   [`metrics`](https://docs.rs/metrics) facade.
//! - `redis`: [`durable`], a job queue in Redis shared by plans on many
//!   hosts, with leases, retries and dead letters; delivery is at least once.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
// `unsafe` lives in one module, `task`, which opts in: the task cell that
// makes a task one allocation. Every block there says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]

mod builder;
#[cfg(feature = "redis")]
pub mod durable;
mod engine;
mod error;
pub mod guide;
mod handle;
mod plan;
mod set;
#[cfg(feature = "signal")]
mod signal;
mod stats;
mod tag;
mod task_builder;

#[cfg(all(test, loom))]
mod loom_tests;

pub use builder::PlanBuilder;
pub use engine::cell::TaskId;
pub use error::{BuildError, ResizeError, SubmitError, TaskError};
pub use handle::{CancelHandle, CancelOnDrop, TaskHandle};
pub use plan::{MAX_WORKERS, Plan};
pub use set::TaskSet;
pub use stats::{ShutdownReport, Stats, Timing};
pub use tag::Tag;
pub use task_builder::{Blocking, TaskBuilder};
