//! The engine: everything a [`Plan`](crate::Plan) runs on, apart from the
//! public face that wraps it.
//!
//! Each module has one job. The engine imports nothing from the public face
//! but plain values: `Tag`, and the `stats` snapshots (`Stats`, `Timing`,
//! `ShutdownReport`) it fills. The modules are listed from the top down;
//! each uses those below it, and two pairs use each other: `shared` and
//! `supervisor` (the plan spawns supervisors, which pull from it), and
//! `cell` and `counters`/`metrics` (a task counts its end in them; they
//! name its outcome).
//!
//! - [`shared`]: the state a plan's clones, supervisors and handles share:
//!   the queue behind one mutex, the wakeups, resizing, shutdown and the
//!   counters.
//! - [`state`]: the state behind the plan's one lock, and the wakeup
//!   accounting that makes every wakeup count.
//! - [`supervisor`]: the loop each worker runs: take a task, race it
//!   against the plan's token and its timeout, end it.
//! - [`blocking`]: closures on Tokio's blocking pool, as plan tasks.
//! - [`queue`]: the tasks not yet started, in start order, with per-tag
//!   lists for promotion and cancellation.
//! - [`cell`]: one task in one allocation, and its lifecycle; the crate's
//!   only `unsafe` code.
//! - [`tags`]: what the plan keeps about each tag while one of its tasks is
//!   queued or running.
//! - [`counters`]: lock-free counts and timings, per supervisor.
//! - [`current`]: which plan's task the current thread runs, so that a
//!   task's calls into its own plan, and its cancels of its own token, can
//!   be told from everyone else's.
//! - [`panic`]: containing the panics of user code the engine runs.
//! - [`metrics`]: the same counts published through the `metrics` facade.
//! - [`sync`]: the atomics and locks, switched to loom's under `--cfg loom`.

pub(crate) mod blocking;
pub(crate) mod cell;
pub(crate) mod counters;
pub(crate) mod current;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod panic;
pub(crate) mod queue;
pub(crate) mod shared;
pub(crate) mod state;
pub(crate) mod supervisor;
pub(crate) mod sync;
pub(crate) mod tags;
