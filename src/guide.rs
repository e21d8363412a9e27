//! A guide to taskplan: the model, choosing sizes, cancellation, shutdown,
//! and migrating from hand-rolled pools.
//!
//! This module holds no code, only this page. The [crate overview](crate)
//! says what taskplan does; this guide says how it behaves, so that a reader
//! who knows Tokio can decide how to size a plan, what a cancel really
//! stops, how to shut a service down, and what to replace in an existing
//! `JoinSet` or `TaskTracker` program.
//!
//! The examples run as doctests with Tokio's clock paused, so their sleeps,
//! timeouts and grace periods take no real time. Each one wraps its body in
//! an hour-long timeout (hidden), so a mistake fails rather than hangs.
//!
//! # The model
//!
//! A [`Plan`] is one queue and a set of workers.
//!
//! A plan runs up to `workers` *supervisors* on the Tokio runtime
//! [`PlanBuilder::build`] is called from, started as work arrives: a task
//! queued while no started supervisor is free to take it starts one. A
//! supervisor is an ordinary Tokio task. It
//! takes the next task off the queue, polls that task's future until the
//! task ends, and takes the next. A task is not spawned: its future runs
//! inside its supervisor. So at most `workers` tasks make progress at once,
//! and Tokio sees the supervisors, however many tasks are submitted. Tasks
//! run on the plan's runtime whoever submits them, including a plain thread
//! outside any runtime.
//!
//! The *queue* holds tasks that were accepted and have not started, at most
//! `capacity` of them. Running tasks do not count against it. A supervisor
//! takes promoted tasks first (the latest promotion first), then the highest
//! [`priority`](crate::TaskBuilder::priority), then the oldest. Task ids
//! ([`TaskId`]) count up from 1 in the order tasks were queued.
//!
//! A [`TaskHandle`] is the submitter's side of one task. It is a future that
//! resolves to `Ok(output)`, or to a [`TaskError`] that says whether the task
//! was cancelled, panicked or timed out. Every handle resolves, whatever ends
//! its task. Dropping a handle *detaches* the task: it still runs, and its
//! output is dropped.
//!
//! A *tag* ([`Tag`]) names a kind of task. [`Plan::promote`],
//! [`Plan::cancel_tag`] and [`Plan::tag_stats`] act on every task of a tag
//! at once. A plan keeps a small entry for a tag only while one of its tasks
//! is queued or running, so a tag may name a kind of work, a user or a
//! connection alike: a million distinct names cost the plan nothing once
//! their tasks have ended (a `metrics` recorder keeps its own series). The tag's counts go with its entry: [`Plan::tag_stats`]
//! counts a tag's current life, from the task queued while none was to the
//! end of its last one, and then reports all zeros.
//!
//! The plan's *token* ([`Plan::token`]) is a [`CancellationToken`]. It is
//! cancelled when the plan aborts, and cancelling it aborts the plan. It is a
//! child of the token given to [`PlanBuilder::token`], if any, and the parent
//! of the token each [`Plan::submit_with`] and [`Plan::submit_blocking`] task
//! gets.
//!
//! `Plan` is cheap to clone, and clones share one plan. When the last clone
//! is dropped the plan closes, as [`Plan::close`] does: queued tasks still
//! run, and every handle still resolves.
//!
//! ## A task's life
//!
//! ```text
//!   submit / try_submit
//!        |
//!        |-- refused: SubmitError (full or closed), the future handed back
//!        v
//!    [queued] -- cancel, cancel_tag, abort ----------------> cancelled
//!        |                                                   (never polled)
//!        | a supervisor takes it; its timeout starts
//!        v
//!    [running] -- its future returns ----------------------> completed
//!        |------ its poll panics --------------------------> panicked
//!        |------ past its timeout -------------------------> timed out
//!        `------ cancel, cancel_tag, abort ----------------> cancelled
//! ```
//!
//! - **Accepted.** [`Plan::submit`] and [`Plan::try_submit`] queue the task
//!   and return its handle. The plan counts it in `submitted` and `queued`.
//!   A refused task is not counted, and nothing of it is kept: it comes back
//!   inside the [`SubmitError`].
//! - **Started.** A supervisor takes it off the queue: it moves from `queued`
//!   to `running`, for the plan and for its tag. Its timeout counts from
//!   here, not from when it was queued.
//! - **Ended.** Exactly one of `completed`, `cancelled`, `panicked` or
//!   `timed_out` goes up, and only then does the handle resolve: a resolved
//!   handle is always counted. A cancel that reaches a running task wins,
//!   even over a value its poll returns in the same instant.
//! - **Panicked.** A panic does not take the worker down. The handle gets the
//!   payload ([`TaskError::into_panic`]), the panic is logged through
//!   `tracing` with the plan's name and the task's id, and the supervisor
//!   takes the next task.
//!
//! ## Who counts what
//!
//! [`Plan::stats`] returns a [`Stats`] snapshot. `workers` is the target set
//! by the builder or [`Plan::set_workers`]. `queued` and `running` are the
//! tasks in each state now; `submitted` and the four outcomes count over the
//! plan's whole life. At every quiet point:
//!
//! ```text
//! submitted == queued + running + completed + cancelled + panicked + timed_out
//! ```
//!
//! A snapshot taken while tasks move has each field current, but they may
//! not add up. [`Plan::tag_stats`] returns the same fields, with the same
//! law, for one tag's tasks in the tag's current life (see the tags above);
//! its `workers` is the plan's. The
//! [`ShutdownReport`] that [`Plan::shutdown`] returns holds the final totals,
//! plus what only a shutdown knows: blocking closures left running
//! (`abandoned`), whether an abort cut anything short (`forced`), and how
//! long the call took.
//!
//! One worker, and a task of each outcome:
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//! use tokio::sync::oneshot;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(1).name("model").build()?;
//!
//! let (started_tx, started_rx) = oneshot::channel();
//! let (finish_tx, finish_rx) = oneshot::channel::<()>();
//! let first = plan
//!     .submit(async move {
//!         started_tx.send(()).unwrap();
//!         finish_rx.await.unwrap();
//!         "first"
//!     })
//!     .await?;
//! let second = plan.submit(async { "second" }).await?;
//! let slow = plan
//!     .task(std::future::pending::<&str>())
//!     .timeout(Duration::from_secs(1))
//!     .submit()
//!     .await?;
//! let broken = plan.submit(async { panic!("bad input") }).await?;
//!
//! // The one worker runs `first`; the other three wait in the queue.
//! started_rx.await?;
//! let stats = plan.stats();
//! assert_eq!((stats.submitted, stats.queued, stats.running), (4, 3, 1));
//!
//! second.cancel(); // queued: it never starts
//! finish_tx.send(()).unwrap();
//! assert_eq!(first.await?, "first");
//! assert!(second.await.unwrap_err().is_cancelled());
//! assert!(slow.await.unwrap_err().is_timeout());
//! assert!(broken.await.unwrap_err().is_panic());
//!
//! let stats = plan.stats();
//! assert_eq!(
//!     (stats.completed, stats.cancelled, stats.timed_out, stats.panicked),
//!     (1, 1, 1, 1)
//! );
//! assert_eq!(
//!     stats.submitted,
//!     stats.queued + stats.running + stats.completed
//!         + stats.cancelled + stats.panicked + stats.timed_out
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! # Choosing workers and capacity
//!
//! A plan has two sizes. `workers` is how many tasks make progress at once.
//! `capacity` is how many more may wait for a worker.
//!
//! ## Workers
//!
//! A task holds its worker from the moment a supervisor takes it until it
//! ends, through every `.await` in between. So `workers` is a concurrency
//! limit, not a thread count. The default is
//! [`std::thread::available_parallelism`].
//!
//! - **I/O-bound work** (requests, queries, file transfers): set `workers` to
//!   what the thing downstream can take: the database pool's size, the
//!   remote API's concurrent-request limit, the number of open files you
//!   allow. A worker whose task waits on I/O costs a parked Tokio task and
//!   nothing else, so a plan may have hundreds.
//! - **CPU-bound work** (hashing, parsing, compression): a future that
//!   computes without reaching a pending `.await` holds a runtime thread for
//!   as long as it computes, and the timers, I/O and tasks queued on that
//!   thread wait. Run such work with [`Plan::submit_blocking`], which runs a
//!   closure on Tokio's blocking pool while it holds one worker slot, and
//!   keep `workers` near the number of cores: more only take turns on the
//!   same cores. A task may also call [`tokio::task::spawn_blocking`] and
//!   await it, but then a cancel drops only the `JoinHandle`: the closure
//!   gets no token and the plan does not count it as
//!   [`abandoned`](crate::ShutdownReport::abandoned).
//!
//! ```
//! use taskplan::Plan;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(3600), async {
//! // CPU-bound: one worker per core (the default), closures on the blocking pool.
//! let checksums = Plan::builder().name("checksum").build()?;
//! let mut handles = Vec::new();
//! for block in 0..8u64 {
//!     handles.push(
//!         checksums
//!             .submit_blocking(move |token| {
//!                 let mut sum = 0u64;
//!                 for word in 0..100_000u64 {
//!                     if word % 10_000 == 0 && token.is_cancelled() {
//!                         break; // asked to stop: a closure can only stop itself
//!                     }
//!                     sum = sum.wrapping_add(word ^ block);
//!                 }
//!                 sum
//!             })
//!             .await?,
//!     );
//! }
//! for handle in handles {
//!     handle.await?;
//! }
//! assert_eq!(checksums.stats().completed, 8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Capacity
//!
//! `capacity` bounds the tasks that were accepted and have not started, so
//! a plan holds at most `workers + capacity` unfinished tasks. A queued task
//! costs one allocation that holds its future, state and result slot (120
//! bytes for a 16-byte future), a queue slot, and a small second allocation
//! only if it sets a tag, priority, timeout or token. The default is 1024.
//!
//! When the queue is full, the plan pushes back:
//!
//! - [`Plan::submit`] waits until a task starts, a queued task is cancelled,
//!   or the plan closes. A producer that awaits `submit` slows to the pace
//!   of the workers. `submit` is cancel safe: dropping it while it waits
//!   submits nothing, so it can sit in a `select!` or under a timeout.
//! - [`Plan::try_submit`] never waits. It refuses with
//!   a [`SubmitError`] that [`is_full`](crate::SubmitError::is_full), and [`SubmitError::into_inner`] hands the future
//!   back unpolled: answer "busy", retry later, or run it some other way.
//!
//! Capacity is shared by every priority and tag: a full queue makes a
//! high-priority `submit` wait too. Work that must always get in needs room
//! left for it, or a plan of its own.
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//! use tokio::sync::oneshot;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! // One worker, and room for two tasks to wait.
//! let plan = Plan::builder().workers(1).capacity(2).build()?;
//! let (started_tx, started_rx) = oneshot::channel();
//! let (finish_tx, finish_rx) = oneshot::channel::<()>();
//! let busy = plan
//!     .submit(async move {
//!         started_tx.send(()).unwrap();
//!         finish_rx.await.unwrap();
//!     })
//!     .await?;
//! started_rx.await?;
//! let waiting = [plan.try_submit(async {})?, plan.try_submit(async {})?];
//!
//! // The queue is full: `try_submit` hands the future back...
//! let refused = plan.try_submit(async { "handled elsewhere" }).unwrap_err();
//! assert!(refused.is_full());
//! assert_eq!(refused.into_inner().await, "handled elsewhere");
//!
//! // ...and `submit` waits. Dropping it while it waits submits nothing.
//! let gave_up = tokio::time::timeout(Duration::from_millis(50), plan.submit(async {})).await;
//! assert!(gave_up.is_err());
//! assert_eq!(plan.stats().submitted, 3);
//!
//! finish_tx.send(()).unwrap();
//! busy.await?;
//! for handle in waiting {
//!     handle.await?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Changing the number of workers
//!
//! [`Plan::set_workers`] changes `workers` while the plan runs. Growing
//! starts supervisors at once, and they take queued tasks. Shrinking never
//! interrupts a task: a surplus supervisor leaves after its current task, so
//! for a while more than `workers` tasks may run. [`Stats::workers`] shows
//! the new target as soon as the call returns. Zero is refused with
//! [`ResizeError::ZeroWorkers`](crate::ResizeError::ZeroWorkers); to stop a
//! plan, shut it down.
//!
//! ```
//! use std::sync::Arc;
//! use taskplan::Plan;
//! use tokio::sync::Barrier;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(1).build()?;
//! // Three tasks that can only finish together: one worker is not enough.
//! let together = Arc::new(Barrier::new(3));
//! let mut handles = Vec::new();
//! for _ in 0..3 {
//!     let together = Arc::clone(&together);
//!     handles.push(plan.submit(async move { together.wait().await; }).await?);
//! }
//! plan.set_workers(3)?;
//! for handle in handles {
//!     handle.await?;
//! }
//! plan.set_workers(1)?;
//! assert_eq!(plan.stats().workers, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! # The cancellation model
//!
//! Tokio cancels a future by dropping it: the future is never polled again,
//! and its destructors run. taskplan cancels the same way, and does not wait
//! for the task to look at a flag.
//!
//! ## What stops at once
//!
//! - **A queued task never starts.** [`TaskHandle::cancel`] takes it off the
//!   queue and drops its future before `cancel` returns. Its room in the
//!   queue is free again, for a waiting `submit`.
//! - **A running task is dropped at its supervisor's next poll.** `cancel`
//!   wakes the supervisor, which drops the future without polling it again.
//!   What the future waits on does not matter: a socket that never answers,
//!   a lock never released, [`std::future::pending`]. Its destructors run
//!   before its handle resolves.
//! - **Timeouts** ([`TaskBuilder::timeout`](crate::TaskBuilder::timeout),
//!   [`PlanBuilder::task_timeout`]) drop a running task the same way, and
//!   its handle reports [`TaskError::is_timeout`].
//! - **Groups.** [`Plan::cancel_tag`] cancels one tag's queued and running
//!   tasks. [`Plan::abort`], a [`shutdown`](crate::Plan::shutdown) whose
//!   grace ran out, cancelling [`Plan::token`], and cancelling the parent
//!   token given to [`PlanBuilder::token`] all abort the plan: it closes,
//!   queued tasks never start, and running tasks are dropped.
//!
//! "At once" means at the supervisor's next poll. On a busy runtime that
//! comes after the tasks ahead of it in the runtime's run queue. Cancelling
//! a finished task does nothing, and cancelling twice counts once.
//!
//! ## What cannot be stopped
//!
//! - **A thread.** A [`Plan::submit_blocking`] closure runs on a thread of
//!   Tokio's blocking pool, and a thread cannot be stopped from outside.
//!   Cancelling the task cancels the closure's token, resolves the handle as
//!   cancelled, and frees the worker slot, all at once. The closure runs on
//!   until it returns, and its result is dropped. A closure that should stop
//!   when asked must check `token.is_cancelled()` as it goes. A shutdown does
//!   not wait for such closures: it counts those still running as
//!   [`abandoned`](crate::ShutdownReport::abandoned).
//! - **A future that never yields.** Dropping a future happens between
//!   polls. A poll that computes for a second, or loops forever, holds its
//!   runtime thread until it returns, and no cancel, timeout or abort takes
//!   effect before its next pending `.await`. Long computations belong in
//!   `submit_blocking`; a loop that must stay async can call
//!   [`tokio::task::yield_now`] now and then, which gives its supervisor a
//!   point at which to drop it.
//!
//! A closure that ignores its token is abandoned, and its slot runs the next
//! task:
//!
//! ```
//! use taskplan::Plan;
//! use tokio::sync::oneshot;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(1).build()?;
//! let (started_tx, started_rx) = oneshot::channel();
//! let (reply_tx, reply_rx) = std::sync::mpsc::channel::<String>();
//! let stuck = plan
//!     .submit_blocking(move |_token| {
//!         started_tx.send(()).unwrap();
//!         reply_rx.recv().ok() // a blocking read that never looks at its token
//!     })
//!     .await?;
//! started_rx.await?;
//!
//! stuck.cancel();
//! assert!(stuck.await.unwrap_err().is_cancelled()); // at once, thread or not
//! let next = plan.submit(async { "ran" }).await?;
//! assert_eq!(next.await?, "ran"); // the slot is free again
//!
//! let report = plan.abort().await;
//! assert_eq!(report.abandoned, 1); // the thread is still blocked in `recv`
//! drop(reply_tx); // now it returns, and its result is dropped
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! An async loop that yields can be cancelled between rounds:
//!
//! ```
//! use taskplan::Plan;
//! use tokio::sync::watch;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(1).build()?;
//! let (rounds_tx, mut rounds_rx) = watch::channel(0u64);
//! let search = plan
//!     .submit(async move {
//!         let mut best = 0u64;
//!         for round in 1u64.. {
//!             for candidate in 0..10_000u64 {
//!                 best = best.max(candidate.wrapping_mul(round) % 7_919);
//!             }
//!             rounds_tx.send_replace(round);
//!             // Without this, the loop never reaches a pending `.await`,
//!             // and nothing could stop it.
//!             tokio::task::yield_now().await;
//!         }
//!         best
//!     })
//!     .await?;
//!
//! rounds_rx.wait_for(|round| *round >= 3).await?;
//! search.cancel();
//! assert!(search.await.unwrap_err().is_cancelled());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Cancel safety of your futures
//!
//! A task may be dropped at any `.await` at which it is pending. Write tasks
//! so that stopping there is safe:
//!
//! - Code after an `.await` may never run. Put cleanup (closing, releasing,
//!   rolling back) in a destructor: it runs however the task ends, and
//!   before its handle resolves.
//! - Do not leave shared state half-changed across an `.await`. A task that
//!   takes an item off a shared list and then awaits a write loses the item
//!   if it is cancelled in between. Tokio's docs say which of its methods
//!   are cancel safe (for example, `mpsc::Receiver::recv` is, and
//!   `AsyncReadExt::read_exact` is not).
//! - Work the task hands elsewhere is not dropped with it. A task spawned
//!   with [`tokio::spawn`] runs on when its `JoinHandle` is dropped, and so
//!   does a thread. Give such work the task's own token (next section), or
//!   hold the spawned task in an
//!   [`AbortOnDropHandle`](tokio_util::task::AbortOnDropHandle).
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use taskplan::Plan;
//! use tokio::sync::oneshot;
//!
//! /// An open connection, counted; closing it is in `Drop`, so it happens
//! /// however the task that holds it ends.
//! struct Connection {
//!     open: Arc<AtomicUsize>,
//! }
//!
//! impl Connection {
//!     fn open(open: &Arc<AtomicUsize>) -> Connection {
//!         open.fetch_add(1, Ordering::SeqCst);
//!         Connection { open: Arc::clone(open) }
//!     }
//! }
//!
//! impl Drop for Connection {
//!     fn drop(&mut self) {
//!         self.open.fetch_sub(1, Ordering::SeqCst);
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(1).build()?;
//! let open = Arc::new(AtomicUsize::new(0));
//! let (started_tx, started_rx) = oneshot::channel();
//! let counted = Arc::clone(&open);
//! let request = plan
//!     .submit(async move {
//!         let connection = Connection::open(&counted);
//!         started_tx.send(()).unwrap();
//!         std::future::pending::<()>().await; // a reply that never comes
//!         drop(connection); // never reached: do not put cleanup here
//!     })
//!     .await?;
//! started_rx.await?;
//! assert_eq!(open.load(Ordering::SeqCst), 1);
//!
//! request.cancel();
//! assert!(request.await.unwrap_err().is_cancelled());
//! assert_eq!(open.load(Ordering::SeqCst), 0); // closed before the handle resolved
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Tokens for work handed elsewhere
//!
//! [`Plan::submit_with`] calls its closure with a fresh child of the plan's
//! token and submits the future it returns. The token is cancelled when the
//! task is cancelled, times out, panics, or is dropped by an abort, and is
//! left alone when the task completes. Hand it to whatever the task starts
//! that outlives its future: a spawned task, a thread, a request to another
//! service that can be called off. Inside the task's own future there is no
//! need to watch it: the future is dropped.
//!
//! The token also works the other way: cancelled from outside the task
//! (another task, a thread, or the work it was handed to), it cancels the
//! task, as [`TaskHandle::cancel`] would. The task's own code may cancel it
//! to stop what it handed out, and runs on; so may a blocking task's
//! closure.
//!
//! For a tag, a priority or a timeout on such tasks, use the builders:
//! [`Plan::task_with`](crate::Plan::task_with) and
//! [`Plan::blocking_task`](crate::Plan::blocking_task).
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//! use tokio::sync::oneshot;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let plan = Plan::builder()
//!     .workers(1)
//!     .task_timeout(Duration::from_secs(5))
//!     .build()?;
//! let (upload_tx, upload_rx) = oneshot::channel();
//! let sync = plan
//!     .submit_with(|token| async move {
//!         // The upload runs as a Tokio task of its own: dropping this
//!         // future would not stop it, but the token does.
//!         tokio::spawn(async move {
//!             let upload = tokio::time::sleep(Duration::from_secs(60));
//!             let outcome = tokio::select! {
//!                 () = upload => "uploaded",
//!                 () = token.cancelled() => "upload called off",
//!             };
//!             upload_tx.send(outcome).unwrap();
//!         });
//!         std::future::pending::<()>().await // waits for a reply that never comes
//!     })
//!     .await?;
//!
//! assert!(sync.await.unwrap_err().is_timeout());
//! assert_eq!(upload_rx.await?, "upload called off");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Dropping a handle
//!
//! Dropping a [`TaskHandle`] detaches its task, as dropping a Tokio
//! `JoinHandle` does. Where the task should stop when nobody waits for it
//! any more, wrap the handle; [`TaskHandle::cancel`] on a finished task does
//! nothing, so the wrapper may always cancel:
//!
//! ```
//! use std::future::Future;
//! use std::pin::Pin;
//! use std::task::{Context, Poll};
//! use taskplan::{Plan, TaskError, TaskHandle};
//!
//! /// A task handle that cancels its task when dropped.
//! struct CancelOnDrop<T>(TaskHandle<T>);
//!
//! impl<T> Drop for CancelOnDrop<T> {
//!     fn drop(&mut self) {
//!         self.0.cancel();
//!     }
//! }
//!
//! impl<T> Future for CancelOnDrop<T> {
//!     type Output = Result<T, TaskError>;
//!
//!     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
//!         Pin::new(&mut self.0).poll(cx) // `TaskHandle` is `Unpin`
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(std::time::Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(1).build()?;
//! let answer = CancelOnDrop(plan.submit(async { 42 }).await?);
//! assert_eq!(answer.await?, 42);
//!
//! drop(CancelOnDrop(plan.submit(std::future::pending::<()>()).await?));
//! plan.wait_idle().await;
//! assert_eq!(plan.stats().cancelled, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! # Shutdown recipes
//!
//! | call | new tasks | queued tasks | running tasks | returns |
//! |---|---|---|---|---|
//! | [`close`](crate::Plan::close) | refused (`Closed`) | still run | still run | at once |
//! | [`shutdown(grace)`](crate::Plan::shutdown) | refused | run until `grace` passes, then never start | run until `grace` passes, then dropped | once every task ended and every supervisor exited, with a [`ShutdownReport`] |
//! | [`abort`](crate::Plan::abort) | refused | never start | dropped at once | as `shutdown`; it is `shutdown(Duration::ZERO)` |
//! | cancelling [`token`](crate::Plan::token) | refused, a moment later | never start | dropped at once | at once; the abort goes on without the caller |
//! | dropping the last `Plan` clone | none can come | still run | still run | at once |
//!
//! `shutdown` and `abort` are idempotent and safe to call from many clones at
//! once: every call returns when the plan has stopped, and the first grace
//! period to run out cancels what is left. The report's counts are totals
//! over the plan's whole life, so a later call reports the same;
//! `completed + cancelled + panicked + timed_out` is every task the plan
//! accepted. `forced` says whether an abort ever cut a queued or running
//! task short. `abandoned` counts blocking closures still running when the
//! call returned, and `elapsed` how long it took.
//!
//! A shutdown with a non-zero grace needs the time driver on the plan's
//! runtime; [`Plan::abort`] does not.
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(2).build()?;
//! for _ in 0..3 {
//!     // The handles are dropped: these tasks run detached.
//!     plan.submit(tokio::time::sleep(Duration::from_millis(10))).await?;
//! }
//! plan.submit(std::future::pending::<()>()).await?;
//!
//! let report = plan.shutdown(Duration::from_secs(1)).await;
//! assert_eq!((report.completed, report.cancelled), (3, 1));
//! assert!(report.forced); // the grace ran out on the pending task
//! assert!(report.elapsed >= Duration::from_secs(1));
//!
//! let again = plan.abort().await; // already stopped: the same totals
//! assert_eq!((again.completed, again.cancelled), (3, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## On SIGTERM
//!
//! [`Plan::shutdown_on_signal`] (feature `signal`, on by default) waits for
//! SIGTERM or Ctrl-C and then runs `shutdown(grace)`. It listens from the
//! moment it is called, not from its first poll, so a service may say it is
//! ready right after the call without missing an early signal. It also
//! returns, through the same shutdown, if the plan's token is cancelled
//! first. A second SIGTERM or Ctrl-C during the drain aborts at once, as
//! [`Plan::abort`] does, and is logged at `WARN`: an operator who presses
//! Ctrl-C twice does not wait out the grace period.
//!
//! A server that accepts connections until the signal, sheds load when the
//! queue is full, and drains for ten seconds:
//!
//! ```no_run
//! use std::pin::pin;
//! use std::time::Duration;
//! use taskplan::Plan;
//! use tokio::io::AsyncWriteExt;
//! use tokio::net::{TcpListener, TcpStream};
//!
//! async fn serve(mut connection: TcpStream) {
//!     let _ = connection.write_all(b"hello\n").await;
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let plan = Plan::builder().workers(64).capacity(256).name("server").build()?;
//!     let listener = TcpListener::bind("0.0.0.0:8080").await?;
//!
//!     let mut shutdown = pin!(plan.shutdown_on_signal(Duration::from_secs(10)));
//!     println!("ready"); // a signal from now on is not missed
//!     let report = loop {
//!         tokio::select! {
//!             report = &mut shutdown => break report,
//!             accepted = listener.accept() => {
//!                 let (connection, _) = accepted?;
//!                 // Full: shed the connection. Closed: the shutdown has begun.
//!                 if let Err(refused) = plan.try_submit(serve(connection)) {
//!                     drop(refused.into_inner());
//!                 }
//!             }
//!         }
//!     };
//!     eprintln!(
//!         "served {}, cut short {}, in {:?}",
//!         report.completed, report.cancelled, report.elapsed
//!     );
//!     Ok(())
//! }
//! ```
//!
//! ## Under a parent token
//!
//! [`PlanBuilder::token`] makes the plan's token a child of a token the
//! program already has. Cancelling the parent *aborts* the plan: queued
//! tasks never start and running ones are dropped, with no grace. Aborting
//! the plan does not cancel the parent. One parent can stop several plans at
//! once.
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let service = CancellationToken::new();
//! let fetch = Plan::builder().workers(2).name("fetch").token(service.clone()).build()?;
//! let store = Plan::builder().workers(1).name("store").token(service.clone()).build()?;
//! let fetching = fetch.submit(std::future::pending::<()>()).await?;
//! let storing = store.submit(std::future::pending::<()>()).await?;
//!
//! store.abort().await;
//! assert!(!service.is_cancelled()); // a plan never cancels its parent
//!
//! service.cancel();
//! assert!(fetching.await.unwrap_err().is_cancelled());
//! assert!(storing.await.unwrap_err().is_cancelled());
//! let report = fetch.shutdown(Duration::from_secs(5)).await; // already aborted
//! assert!(report.forced);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! To *drain* when a parent token is cancelled, rather than abort, leave the
//! token out of the builder and wait on it:
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let stop = CancellationToken::new();
//! let plan = Plan::builder().workers(2).build()?;
//! let drainer = tokio::spawn({
//!     let (plan, stop) = (plan.clone(), stop.clone());
//!     async move {
//!         stop.cancelled().await;
//!         plan.shutdown(Duration::from_secs(10)).await
//!     }
//! });
//!
//! let job = plan.submit(tokio::time::sleep(Duration::from_millis(20))).await?;
//! stop.cancel();
//! let report = drainer.await?;
//! assert_eq!((report.completed, report.cancelled, report.forced), (1, 0, false));
//! job.await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Nested plans
//!
//! A task that awaits another task of its own plan holds its worker while
//! it waits. When every worker does so, nothing runs again: with one worker,
//! the first such task is enough. Put the second stage on a plan of its own,
//! whose tasks do not submit back to the first.
//!
//! Shut the outer plan down first, then the inner one. The outer shutdown
//! ends the tasks that submit to the inner plan and await it, so the inner
//! shutdown then drains work that nobody adds to. The other order makes the
//! outer tasks' `submit` fail with `Closed`, and drops inner work the outer
//! tasks are still waiting for.
//!
//! To abort both at once, build the inner plan with the outer plan's token
//! as its parent ([`PlanBuilder::token`]): an abort of the outer plan then
//! aborts the inner one too, and a graceful shutdown of the outer plan
//! leaves it alone.
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let crawl = Plan::builder().workers(4).name("crawl").build()?;
//! let parse = Plan::builder().workers(2).name("parse").token(crawl.token()).build()?;
//!
//! let mut pages = Vec::new();
//! for page in 0..8u32 {
//!     let parse = parse.clone();
//!     pages.push(
//!         crawl
//!             .submit(async move {
//!                 tokio::time::sleep(Duration::from_millis(10)).await; // the fetch
//!                 let Ok(parsed) = parse.submit(async move { page * 2 }).await else {
//!                     return None; // the parse plan is closed
//!                 };
//!                 parsed.await.ok()
//!             })
//!             .await?,
//!     );
//! }
//!
//! // Outer first: once it returns, nothing submits to `parse` any more.
//! let crawled = crawl.shutdown(Duration::from_secs(5)).await;
//! let parsed = parse.shutdown(Duration::from_secs(5)).await;
//! assert_eq!((crawled.completed, parsed.completed), (8, 8));
//! for (page, handle) in (0..8u32).zip(pages) {
//!     assert_eq!(handle.await?, Some(page * 2));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## Waiting without stopping
//!
//! [`Plan::wait_idle`] waits until no task is queued or running, and leaves
//! the plan open. It suits batches: submit a batch, wait, read the counts,
//! submit the next. A task submitted after it returns is not waited for. It
//! is cancel safe.
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(4).build()?;
//! for batch in 1..=3 {
//!     for _ in 0..10 {
//!         plan.task(tokio::time::sleep(Duration::from_millis(5))).tag("import").submit().await?;
//!     }
//!     plan.wait_idle().await;
//!     assert_eq!(plan.stats().completed, batch * 10);
//!     // Idle: the batch's tag has no task left, and the plan forgot it.
//!     assert_eq!(plan.tag_stats("import").completed, 0);
//! }
//! assert!(!plan.is_closed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! # Migrating
//!
//! The same program, three ways. It fetches 100 pages, at most 4 at a time,
//! and collects the bodies. Every 25th server never answers. Once every page
//! has been handed over, the program gives the batch 5 seconds, then
//! cancels the stragglers and counts them. All three print the same: 96
//! fetched, 4 cancelled.
//!
//! ## With `JoinSet` and `Semaphore`
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokio::sync::Semaphore;
//! use tokio::task::JoinSet;
//! use tokio::time::Instant;
//!
//! /// Pretends to fetch a page: 10 ms, except every 25th, which never answers.
//! async fn fetch(page: u32) -> String {
//!     if page % 25 == 24 {
//!         std::future::pending::<()>().await;
//!     }
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     format!("<html>page {page}</html>")
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let limit = Arc::new(Semaphore::new(4));
//! let mut fetches = JoinSet::new();
//! for page in 0..100 {
//!     // Taken before the spawn, so at most 4 tasks exist and the loop waits.
//!     let permit = Arc::clone(&limit).acquire_owned().await?;
//!     fetches.spawn(async move {
//!         let _permit = permit; // given back when the task ends, however it ends
//!         (page, fetch(page).await)
//!     });
//! }
//!
//! let mut fetched = Vec::new();
//! let deadline = tokio::time::sleep_until(Instant::now() + Duration::from_secs(5));
//! tokio::pin!(deadline);
//! loop {
//!     tokio::select! {
//!         joined = fetches.join_next() => match joined {
//!             Some(Ok(page_and_body)) => fetched.push(page_and_body),
//!             Some(Err(error)) => std::panic::resume_unwind(error.into_panic()),
//!             None => break,
//!         },
//!         () = &mut deadline => break,
//!     }
//! }
//!
//! // Shutdown: cancel the stragglers and wait until they are dropped.
//! fetches.abort_all();
//! let mut cancelled = 0;
//! while let Some(joined) = fetches.join_next().await {
//!     match joined {
//!         Ok(page_and_body) => fetched.push(page_and_body),
//!         Err(error) if error.is_cancelled() => cancelled += 1,
//!         Err(error) => std::panic::resume_unwind(error.into_panic()),
//!     }
//! }
//! println!("{} fetched, {cancelled} cancelled", fetched.len());
//! assert_eq!((fetched.len(), cancelled), (96, 4));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## With `TaskTracker`, `Semaphore` and `CancellationToken`
//!
//! A [`TaskTracker`](tokio_util::task::TaskTracker) counts tasks but keeps
//! no results and cannot abort them: results go through a channel, and each
//! task races a token to stop. The same `fetch`:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokio::sync::{Semaphore, mpsc};
//! use tokio::time::Instant;
//! use tokio_util::sync::CancellationToken;
//! use tokio_util::task::TaskTracker;
//!
//! # async fn fetch(page: u32) -> String {
//! #     if page % 25 == 24 {
//! #         std::future::pending::<()>().await;
//! #     }
//! #     tokio::time::sleep(Duration::from_millis(10)).await;
//! #     format!("<html>page {page}</html>")
//! # }
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let limit = Arc::new(Semaphore::new(4));
//! let tracker = TaskTracker::new();
//! let stop = CancellationToken::new();
//! let (results_tx, mut results_rx) = mpsc::unbounded_channel();
//! for page in 0..100 {
//!     let permit = Arc::clone(&limit).acquire_owned().await?;
//!     let (stop, results_tx) = (stop.clone(), results_tx.clone());
//!     tracker.spawn(async move {
//!         let _permit = permit;
//!         let body = tokio::select! {
//!             body = fetch(page) => Some(body),
//!             () = stop.cancelled() => None,
//!         };
//!         let _ = results_tx.send((page, body));
//!     });
//! }
//! drop(results_tx);
//!
//! // Shutdown: no new tasks; drain for 5 s; then cancel and wait again.
//! tracker.close();
//! let deadline = Instant::now() + Duration::from_secs(5);
//! if tokio::time::timeout_at(deadline, tracker.wait()).await.is_err() {
//!     stop.cancel();
//!     tracker.wait().await;
//! }
//!
//! let (mut fetched, mut cancelled) = (Vec::new(), 0);
//! while let Some((page, body)) = results_rx.recv().await {
//!     match body {
//!         Some(body) => fetched.push((page, body)),
//!         None => cancelled += 1,
//!     }
//! }
//! println!("{} fetched, {cancelled} cancelled", fetched.len());
//! assert_eq!((fetched.len(), cancelled), (96, 4));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## With taskplan
//!
//! The same `fetch`:
//!
//! ```
//! use std::time::Duration;
//! use taskplan::Plan;
//!
//! # async fn fetch(page: u32) -> String {
//! #     if page % 25 == 24 {
//! #         std::future::pending::<()>().await;
//! #     }
//! #     tokio::time::sleep(Duration::from_millis(10)).await;
//! #     format!("<html>page {page}</html>")
//! # }
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::time::timeout(Duration::from_secs(3600), async {
//! let plan = Plan::builder().workers(4).capacity(16).name("fetch").build()?;
//! let mut fetches = Vec::new();
//! for page in 0..100 {
//!     // Waits while 16 are queued.
//!     fetches.push((page, plan.submit(fetch(page)).await?));
//! }
//!
//! // Shutdown: no new tasks; drain for 5 s; then cancel the rest.
//! let report = plan.shutdown(Duration::from_secs(5)).await;
//!
//! let (mut fetched, mut cancelled) = (Vec::new(), 0);
//! for (page, handle) in fetches {
//!     match handle.await {
//!         Ok(body) => fetched.push((page, body)),
//!         Err(error) if error.is_cancelled() => cancelled += 1,
//!         Err(error) => return Err(error.into()), // a panic, with its payload
//!     }
//! }
//! println!("{} fetched, {cancelled} cancelled", fetched.len());
//! assert_eq!((fetched.len(), cancelled), (96, 4));
//! assert_eq!((report.completed, report.cancelled), (96, 4));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).await?
//! # }
//! ```
//!
//! ## What maps to what
//!
//! | hand-rolled | taskplan |
//! |---|---|
//! | `Semaphore::new(4)`, a permit moved into each task | `workers(4)`: a worker slot, taken when the task starts and given back when it ends, however it ends |
//! | awaiting `acquire_owned` before each spawn | [`submit`](crate::Plan::submit), which waits only while `capacity` tasks are queued |
//! | `try_acquire_owned`, and the work kept by the caller | [`try_submit`](crate::Plan::try_submit): a full [`SubmitError`](crate::SubmitError), [`into_inner`](crate::SubmitError::into_inner) hands it back |
//! | `JoinSet::new` | [`TaskSet::new`]: a set of handles, whose tasks run on a plan |
//! | `JoinSet::spawn` | [`TaskSet::submit`]`(&plan, future)`, which waits while the plan's queue is full; [`TaskSet::try_submit`] never waits |
//! | a `JoinSet` task with more to it | [`TaskSet::push`] of a handle from [`Plan::task`], [`Plan::task_with`](crate::Plan::task_with) or [`Plan::blocking_task`](crate::Plan::blocking_task) (each with tag, priority, timeout) |
//! | `TaskTracker::spawn` | [`Plan::submit`], which returns a [`TaskHandle`] |
//! | `JoinSet::join_next`, `join_next_with_id`, `try_join_next` | [`TaskSet::join_next`], [`join_next_with_id`](crate::TaskSet::join_next_with_id), [`try_join_next`](crate::TaskSet::try_join_next): in the order the tasks finished; `join_next` is cancel safe; the set is also a `Stream` |
//! | `JoinSet::join_all` | [`TaskSet::join_all`], which returns every result, failures included, where `JoinSet`'s panics on the first |
//! | `JoinSet::len`, `is_empty` | [`TaskSet::len`], [`is_empty`](crate::TaskSet::is_empty) |
//! | `JoinSet::detach_all` | [`TaskSet::detach_all`] |
//! | a results channel | awaiting each [`TaskHandle`]; [`Plan::wait_idle`] for detached tasks |
//! | `AbortHandle::abort`, a child token per task | [`TaskHandle::cancel`], also for a task that has not started; [`TaskHandle::cancel_handle`](crate::TaskHandle::cancel_handle) for a cloneable `AbortHandle`; [`Plan::cancel`](crate::Plan::cancel) by id |
//! | `AbortOnDropHandle` | [`TaskHandle::cancel_on_drop`](crate::TaskHandle::cancel_on_drop) |
//! | `select!` against a token inside every task | nothing: the supervisor drops the future; [`Plan::submit_with`] for work the task hands elsewhere |
//! | `JoinSet::abort_all` | [`TaskSet::cancel_all`]: the set's tasks only; [`Plan::abort`] stops every task of a plan |
//! | `JoinSet::shutdown` | [`TaskSet::cancel_all`], then [`TaskSet::join_all`] |
//! | `tracker.close()` + `tracker.wait()` | [`Plan::close`] + [`Plan::wait_idle`], or [`Plan::shutdown`] |
//! | `timeout(grace, tracker.wait())`, `token.cancel()`, `tracker.wait()` | [`Plan::shutdown`]`(grace)` |
//! | a shared parent `CancellationToken` | [`PlanBuilder::token`] |
//! | `tokio::time::timeout` around each future | [`TaskBuilder::timeout`](crate::TaskBuilder::timeout), [`PlanBuilder::task_timeout`]; counted from the task's start |
//! | `JoinError::is_cancelled`, `is_panic` | [`TaskError::is_cancelled`](crate::TaskError::is_cancelled), [`is_panic`](crate::TaskError::is_panic), [`is_timeout`](crate::TaskError::is_timeout) |
//! | counters kept by hand | [`Plan::stats`], [`Plan::tag_stats`], [`ShutdownReport`] |
//! | `Semaphore::add_permits` to grow | [`Plan::set_workers`], to grow or shrink |
//! | `tokio::signal` + the shutdown above | [`Plan::shutdown_on_signal`] |
//!
//! ## What the hand-rolled versions lack
//!
//! - **Cancelling one queued task.** In the first two programs, work that
//!   has no permit yet has no handle: it is the loop, waiting. A plan gives
//!   every accepted task a handle while it is queued, and
//!   [`TaskHandle::cancel`] takes it off the queue.
//! - **A bounded queue apart from the running tasks.** With a semaphore,
//!   waiting work either waits in the producer, as above, or is spawned and
//!   waits for a permit as a Tokio task, with no bound. A plan queues up to
//!   `capacity` tasks, refuses more with the future handed back, and
//!   [`close`](crate::Plan::close) refuses new work without touching queued
//!   work.
//! - **Order.** Tokio has no priority spawn (tokio-rs/tokio#3150). A plan
//!   starts higher [`priority`](crate::TaskBuilder::priority) first, equal
//!   priorities in submission order, and [`Plan::promote`] moves a tag's
//!   queued tasks to the front. tokio-util's `JoinMap` (feature `join-map`)
//!   aborts tasks by key, but has no queue to reorder.
//! - **Counts.** [`Plan::stats`] and [`Plan::tag_stats`] count every task in
//!   exactly one state. A `TaskTracker` counts live tasks only, and a panic
//!   in a tracked task reaches only its `JoinHandle` (and the panic hook);
//!   the second program drops those handles, so a panic there would show
//!   only as a result missing from the channel.
//! - **Shrinking live.** `Semaphore::forget_permits` removes only permits no
//!   task holds. [`Plan::set_workers`] shrinks as the running tasks end,
//!   without interrupting them.
//!
//! ## What changes
//!
//! - **Dropping.** Dropping a `JoinSet` aborts its tasks, and dropping a
//!   [`TaskSet`] cancels its members ([`TaskSet::detach_all`] first to keep
//!   them running). Dropping a [`TaskHandle`] detaches its task, and
//!   dropping the last `Plan` clone only closes the plan: queued and running
//!   tasks still run. Call [`Plan::abort`] to stop all of a plan's tasks.
//! - **`Send` futures.** A task must be `Send + 'static`, as for
//!   [`tokio::spawn`]. There is no equivalent of `JoinSet::spawn_local`.
//! - **Tokio sees supervisors.** A task's future runs inside its
//!   supervisor's Tokio task, so inside a task [`tokio::task::id`] names the
//!   supervisor, and tools that list Tokio tasks show the supervisors (and
//!   one small watcher task per plan), not one task per submission.
//!
//!
//! # Observability
//!
//! ## Tracing
//!
//! Every task runs inside a `tracing` span named `task`, with the fields
//! `plan` (the plan's name), `id`, `tag` and `priority`. The span is entered
//! while the task is polled, so the task's own events nest under it. It is
//! at `DEBUG` by default; [`PlanBuilder::span_level`] raises it, for a
//! service that logs at `INFO` and wants each line to say which task wrote
//! it. A task's steps are events at the levels a service owner would pick:
//!
//! | event | level | fields |
//! |---|---|---|
//! | `task queued` | `TRACE` | `plan`, `task`, `tag`, `priority` |
//! | `task started` | `TRACE` | `queue_wait` |
//! | `task completed` | `TRACE` | `run_time` |
//! | `task cancelled`, `task cancelled by an abort` | `DEBUG` | `run_time` |
//! | `queued task cancelled` | `DEBUG` | `plan`, `task`, `tag` |
//! | `task timed out` | `WARN` | `timeout` |
//! | `task panicked` | `ERROR` | `panic` |
//!
//! Events of a started task take the plan and task from the span. When the
//! span is filtered out (a `WARN` filter and the default `DEBUG` span), a
//! timeout or a panic names `plan`, `task` and `tag` itself. With no
//! subscriber, or one that filters these levels out, the span and events
//! cost a few nanoseconds per task: see the `tracing` group of
//! `cargo bench --bench throughput`.
//!
//! ## Queue wait and run time
//!
//! [`Stats::queue_wait`] and [`Stats::run_time`] say how long tasks waited
//! in the queue and how long they ran, as a count, a sum and a maximum
//! ([`Timing`], with [`Timing::mean`]), for the plan and for each tag's
//! current life through [`Plan::tag_stats`]. They are off unless the builder
//! turns them on with [`PlanBuilder::timings`]: measuring costs each task
//! three reads of the clock (queued, started, ended), a large share of a
//! short task's time in the plan. Without them both stay empty, and the task
//! events leave out their `queue_wait` and `run_time` fields.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! let plan = taskplan::Plan::builder().workers(1).timings(true).build()?;
//! for _ in 0..3 {
//!     plan.task(async { tokio::time::sleep(Duration::from_secs(1)).await })
//!         .tag("report")
//!         .submit()
//!         .await?;
//! }
//! plan.wait_idle().await;
//! let report = plan.stats();
//! // One worker: the second waited 1 s, the third 2 s.
//! assert_eq!(report.queue_wait.max, Duration::from_secs(2));
//! assert_eq!(report.run_time.mean(), Some(Duration::from_secs(1)));
//! # Ok(())
//! # }
//! ```
//!
//! ## Metrics
//!
//! With the `metrics` feature, each plan publishes through the
//! [`metrics`](https://docs.rs/metrics) facade, to whatever exporter the
//! service installed (Prometheus, StatsD, ...):
//!
//! - `taskplan_tasks_submitted_total` and `taskplan_tasks_finished_total`
//!   (with `outcome` = `completed`, `cancelled`, `panicked` or `timed_out`),
//!   counters;
//! - `taskplan_tasks_queued`, `taskplan_tasks_running` and
//!   `taskplan_workers`, gauges;
//! - `taskplan_queue_wait_seconds` and `taskplan_run_time_seconds`,
//!   histograms;
//!
//! all labelled `plan`, and the same per tag as `taskplan_tag_*`, labelled
//! `plan` and `tag`, so adding up a plan's series never counts a task twice.
//! A plan registers its series when it is built and a tag's at the start of
//! each of its lives (see [`Plan::tag_stats`]), so install the recorder
//! first. The series are the recorder's: the plan lets go of its handles on
//! a tag's series when the tag's life ends, and the recorder keeps them, so
//! they count on across lives where `tag_stats` starts again from zero. A
//! recorder that keeps every series it has seen grows with every distinct
//! tag: with tags per user or per connection, give it an idle timeout that
//! drops series no longer updated. `cargo run --example metrics
//! --features metrics` prints what a Prometheus scrape reads.
//!
//! ## tokio-console
//!
//! Built with `RUSTFLAGS="--cfg tokio_unstable"` (which tokio-console needs
//! anyway), supervisors are spawned with the names `<plan> supervisor <n>`,
//! so the console shows which plan each busy worker belongs to.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken
//! [`Plan`]: crate::Plan
//! [`Plan::abort`]: crate::Plan::abort
//! [`Plan::cancel_tag`]: crate::Plan::cancel_tag
//! [`Plan::close`]: crate::Plan::close
//! [`Plan::promote`]: crate::Plan::promote
//! [`Plan::set_workers`]: crate::Plan::set_workers
//! [`Plan::shutdown`]: crate::Plan::shutdown
//! [`Plan::shutdown_on_signal`]: crate::Plan::shutdown_on_signal
//! [`Plan::stats`]: crate::Plan::stats
//! [`Plan::submit`]: crate::Plan::submit
//! [`Plan::submit_blocking`]: crate::Plan::submit_blocking
//! [`Plan::submit_with`]: crate::Plan::submit_with
//! [`Plan::task`]: crate::Plan::task
//! [`Plan::tag_stats`]: crate::Plan::tag_stats
//! [`Plan::token`]: crate::Plan::token
//! [`Plan::try_submit`]: crate::Plan::try_submit
//! [`Plan::wait_idle`]: crate::Plan::wait_idle
//! [`PlanBuilder::build`]: crate::PlanBuilder::build
//! [`PlanBuilder::timings`]: crate::PlanBuilder::timings
//! [`PlanBuilder::task_timeout`]: crate::PlanBuilder::task_timeout
//! [`PlanBuilder::span_level`]: crate::PlanBuilder::span_level
//! [`Stats::queue_wait`]: crate::Stats::queue_wait
//! [`Stats::run_time`]: crate::Stats::run_time
//! [`Timing`]: crate::Timing
//! [`Timing::mean`]: crate::Timing::mean
//! [`PlanBuilder::token`]: crate::PlanBuilder::token
//! [`ShutdownReport`]: crate::ShutdownReport
//! [`Stats`]: crate::Stats
//! [`Stats::workers`]: crate::Stats::workers
//! [`SubmitError`]: crate::SubmitError
//! [`SubmitError::into_inner`]: crate::SubmitError::into_inner
//! [`Tag`]: crate::Tag
//! [`TaskError`]: crate::TaskError
//! [`TaskError::into_panic`]: crate::TaskError::into_panic
//! [`TaskError::is_timeout`]: crate::TaskError::is_timeout
//! [`TaskHandle`]: crate::TaskHandle
//! [`TaskHandle::cancel`]: crate::TaskHandle::cancel
//! [`TaskId`]: crate::TaskId
//! [`TaskSet`]: crate::TaskSet
//! [`TaskSet::cancel_all`]: crate::TaskSet::cancel_all
//! [`TaskSet::detach_all`]: crate::TaskSet::detach_all
//! [`TaskSet::join_all`]: crate::TaskSet::join_all
//! [`TaskSet::join_next`]: crate::TaskSet::join_next
//! [`TaskSet::len`]: crate::TaskSet::len
//! [`TaskSet::new`]: crate::TaskSet::new
//! [`TaskSet::push`]: crate::TaskSet::push
//! [`TaskSet::submit`]: crate::TaskSet::submit
//! [`TaskSet::try_submit`]: crate::TaskSet::try_submit
