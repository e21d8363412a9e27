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
//! [`CancellationToken`](tokio_util::sync::CancellationToken) in `select!`,
//! and each task's own cancel flag wakes its supervisor, so cancellation never
//! waits for the task to look at a flag.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod blocking;
mod builder;
mod error;
mod handle;
mod plan;
mod queue;
#[cfg(feature = "signal")]
mod signal;
mod stats;
mod supervisor;
mod tag;
mod task;
mod task_builder;

pub use builder::PlanBuilder;
pub use error::{BuildError, ResizeError, SubmitError, TaskError};
pub use handle::TaskHandle;
pub use plan::Plan;
pub use stats::{ShutdownReport, Stats};
pub use tag::Tag;
pub use task::TaskId;
pub use task_builder::TaskBuilder;
