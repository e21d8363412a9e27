//! [`TaskSet`]: a collection of task handles whose results come back in the
//! order the tasks finish.
//!
//! The members live in a [`FuturesUnordered`]: each wakeup polls only the
//! handle whose task woke the set, however many members there are, and a
//! result leaves the set in the same poll that returns it, so a dropped
//! `join_next` future has taken nothing out. A task is never run by the
//! set: its plan runs it, and the set only holds the handle.
//!
//! Two things are added around it, both for the order of results:
//!
//! - A handle only tells the set its task finished once the set has polled
//!   it, and `FuturesUnordered` first polls a new member at its next poll,
//!   in the order members were added. So `push` polls at once (a *sweep*),
//!   which registers the new member's waker and moves any result already
//!   delivered into `finished`, a queue of results in the order they came.
//! - The set's own waker ([`Wakeup`]) stands between the members and whoever
//!   waits in `join_next`, so a sweep never replaces that waiter's waker,
//!   and it records every wake, so a sweep can poll again until nothing
//!   woke it during its last poll.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;

use crate::engine::cell::TaskId;
use crate::error::{SubmitError, TaskError};
use crate::handle::TaskHandle;
use crate::plan::Plan;

/// A collection of [`TaskHandle`]s that yields their results in the order
/// the tasks finish: taskplan's `JoinSet`.
///
/// Tasks run on their [`Plan`] whether or not the set is polled; the set
/// holds their handles. Put a handle in with [`push`](TaskSet::push), or
/// submit and put in at once with [`submit`](TaskSet::submit). Take results
/// out with [`join_next`](TaskSet::join_next), as a [`Stream`], or all at
/// once with [`join_all`](TaskSet::join_all). Each member yields exactly one
/// result, `Ok(output)` or the [`TaskError`] that says why there is none, and
/// then leaves the set.
///
/// Members may come from several plans, and a plan's other tasks are no
/// concern of the set: [`cancel_all`](TaskSet::cancel_all) and dropping the
/// set cancel the members only, and leave their plans open.
///
/// # Dropping
///
/// **Dropping a `TaskSet` cancels every task still in it**, as dropping a
/// `JoinSet` aborts its tasks, and as [`cancel_all`](TaskSet::cancel_all)
/// does. A task that finished before the drop is not affected; its result is
/// dropped. Call [`detach_all`](TaskSet::detach_all) first to let the
/// members run on, as dropping their handles one by one would.
///
/// `TaskSet` is `Unpin`; it is `Send` when `T` is `Send`, and `Sync` when
/// `T` is `Send` and `Sync`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use taskplan::{Plan, TaskSet};
///
/// let plan = Plan::builder().workers(3).build()?;
/// let mut set = TaskSet::new();
/// for millis in [30, 10, 20] {
///     set.submit(&plan, async move {
///         tokio::time::sleep(Duration::from_millis(millis)).await;
///         millis
///     })
///     .await?;
/// }
///
/// let mut finished = Vec::new();
/// while let Some(result) = set.join_next().await {
///     finished.push(result?);
/// }
/// assert_eq!(finished, [10, 20, 30]);
/// # Ok(())
/// # }
/// ```
pub struct TaskSet<T> {
    /// Members whose results have not been delivered to the set yet.
    members: FuturesUnordered<Member<T>>,
    /// Results delivered to the set but not yet taken out, oldest first.
    /// Each is older than anything `members` can still yield.
    finished: VecDeque<(TaskId, Result<T, TaskError>)>,
    wakeup: Arc<Wakeup>,
    /// `wakeup` as a waker, made once: the set polls `members` with it only.
    waker: Waker,
}

impl<T> TaskSet<T> {
    /// Returns an empty set.
    #[must_use]
    pub fn new() -> TaskSet<T> {
        let wakeup = Arc::new(Wakeup::default());
        TaskSet {
            members: FuturesUnordered::new(),
            finished: VecDeque::new(),
            waker: Waker::from(Arc::clone(&wakeup)),
            wakeup,
        }
    }

    /// Returns how many members the set holds: tasks whose results have not
    /// been taken out, finished or not.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len() + self.finished.len()
    }

    /// Returns `true` if the set holds no member.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a task's handle to the set.
    ///
    /// The task is unaffected: it runs on its plan as before, and its result
    /// now comes out of the set. A handle whose task already finished is
    /// added too, and yields its result at the next
    /// [`join_next`](TaskSet::join_next).
    ///
    /// This is how a task with a tag, a priority or a timeout, or from
    /// [`Plan::submit_with`] or [`Plan::submit_blocking`], joins a set.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().workers(2).build()?;
    /// let mut set = TaskSet::new();
    /// set.push(plan.task(async { "redrawn" }).tag("ui").priority(5).submit().await?);
    /// assert_eq!(set.len(), 1);
    /// assert_eq!(set.join_next().await.unwrap()?, "redrawn");
    /// # Ok(())
    /// # }
    /// ```
    pub fn push(&mut self, handle: TaskHandle<T>) {
        self.members.push(Member { handle });
        // From now on the new member's end wakes the set, in its turn.
        self.sweep();
    }

    /// Moves every result delivered to the set so far into `finished`, in
    /// the order delivered, and leaves every member polled, so that its end
    /// wakes the set; waits for nothing.
    fn sweep(&mut self) {
        let already_finished = self.finished.len();
        let mut cx = Context::from_waker(&self.waker);
        loop {
            // Cleared before the poll: a wake during it means a member was
            // queued after the queue was read, or the poll stopped short.
            self.wakeup.woken.store(false, Ordering::SeqCst);
            match Pin::new(&mut self.members).poll_next(&mut cx) {
                Poll::Ready(Some(result)) => self.finished.push_back(result),
                Poll::Pending if self.wakeup.woken.load(Ordering::SeqCst) => {}
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        // A handle added after its task ended woke nobody: tell whoever
        // waits in `poll_join_next` that a result is here.
        if self.finished.len() > already_finished {
            self.wakeup.waiter.wake();
        }
    }

    /// Waits for the next member to finish and returns its result, or
    /// returns `None` if the set is empty.
    ///
    /// Results come in the order the tasks finished, not the order they were
    /// added: each call returns the result of the member whose task finished
    /// first among those still in the set. A task that had already finished
    /// when its handle was added counts as finishing then. Tasks that finish
    /// at the same moment on different threads come in the order their ends
    /// reached the set.
    ///
    /// The member whose result is returned leaves the set. A member that was
    /// cancelled, panicked or timed out yields its [`TaskError`]; a panic is
    /// not resumed here.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe. If the returned future is dropped before
    /// it resolves, no result has been taken out of the set: every member's
    /// result is still there for the next call. It can be used as a branch
    /// of `tokio::select!` in a loop.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().workers(2).build()?;
    /// let mut set = TaskSet::new();
    /// let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    /// set.submit(&plan, async move { release_rx.await.map(|()| "held back") }).await?;
    /// set.submit(&plan, async { Ok("quick") }).await?;
    ///
    /// // The second task finishes first, so its result comes first.
    /// assert_eq!(set.join_next().await.unwrap()??, "quick");
    /// release_tx.send(()).unwrap();
    /// assert_eq!(set.join_next().await.unwrap()??, "held back");
    /// assert!(set.join_next().await.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, TaskError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// As [`join_next`](TaskSet::join_next), with the finished task's
    /// [`TaskId`] beside its output.
    ///
    /// A [`TaskError`] names its task already, through [`TaskError::id`].
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe, as [`join_next`](TaskSet::join_next).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().build()?;
    /// let mut set = TaskSet::new();
    /// let id = set.submit(&plan, async { 7 }).await?;
    /// let (finished, output) = set.join_next_with_id().await.unwrap()?;
    /// assert_eq!((finished, output), (id, 7));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join_next_with_id(&mut self) -> Option<Result<(TaskId, T), TaskError>> {
        poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// Returns the result of a member that has finished, without waiting;
    /// `None` if no member has finished or the set is empty.
    ///
    /// Every member whose end has reached the set before this call is found,
    /// and the one returned is the first of them, as for
    /// [`join_next`](TaskSet::join_next). A task's end reaches the set when
    /// its handle resolves, or when the handle is added if its task had
    /// already finished. On a multi-thread runtime that can be a moment
    /// after [`Plan::wait_idle`] returns or [`TaskHandle::is_finished`] turns
    /// `true`, as the handle is woken last; a task that ends during the call
    /// may be found or left for the next. To wait for a result, use
    /// [`join_next`](TaskSet::join_next).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().build()?;
    /// let mut set = TaskSet::new();
    /// set.submit(&plan, async { 1 }).await?;
    /// plan.wait_idle().await; // the task has finished
    /// set.submit(&plan, std::future::pending::<i32>()).await?;
    ///
    /// assert_eq!(set.try_join_next().unwrap()?, 1);
    /// assert!(set.try_join_next().is_none()); // the other never finishes
    /// assert_eq!(set.len(), 1);
    /// // Dropping the set cancels the task that never finishes.
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, TaskError>> {
        self.try_join_next_with_id()
            .map(|result| result.map(|(_, output)| output))
    }

    /// As [`try_join_next`](TaskSet::try_join_next), with the finished
    /// task's [`TaskId`] beside its output.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(TaskId, T), TaskError>> {
        if self.finished.is_empty() {
            self.sweep();
        }
        self.finished
            .pop_front()
            .map(|(id, result)| result.map(|output| (id, output)))
    }

    /// Polls for the next member to finish: the poll behind
    /// [`join_next`](TaskSet::join_next), for code that implements
    /// [`Future`] or [`Stream`] by hand.
    ///
    /// Returns `Poll::Ready(Some(result))` for a finished member, which
    /// leaves the set; `Poll::Ready(None)` if the set is empty; and
    /// `Poll::Pending` otherwise, after arranging for the waker in `cx` to
    /// be woken when a member finishes. Only the waker of the latest poll is
    /// woken.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, TaskError>>> {
        self.poll_join_next_with_id(cx)
            .map(|next| next.map(|result| result.map(|(_, output)| output)))
    }

    /// As [`poll_join_next`](TaskSet::poll_join_next), with the finished
    /// task's [`TaskId`] beside its output.
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(TaskId, T), TaskError>>> {
        let next = match self.finished.pop_front() {
            Some(finished) => Poll::Ready(Some(finished)),
            None => {
                self.wakeup.waiter.register(cx.waker());
                let mut own = Context::from_waker(&self.waker);
                Pin::new(&mut self.members).poll_next(&mut own)
            }
        };
        next.map(|next| next.map(|(id, result)| result.map(|output| (id, output))))
    }

    /// Waits for every member to finish and returns their results, in the
    /// order the tasks finished.
    ///
    /// Unlike `JoinSet::join_all`, which panics on the first failed task,
    /// this returns every result, failures included: a member cancelled by a
    /// plan's shutdown is an ordinary outcome, not a reason to panic.
    ///
    /// # Cancel safety
    ///
    /// This method is not cancel safe: it owns the set, so dropping the
    /// returned future drops the set, which cancels the members still in it
    /// and drops the results collected so far. Loop on
    /// [`join_next`](TaskSet::join_next) to keep them.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().workers(4).build()?;
    /// let mut set = TaskSet::new();
    /// for n in 1..=4u64 {
    ///     set.submit(&plan, async move { n * n }).await?;
    /// }
    /// let squares: Result<Vec<u64>, _> = set.join_all().await.into_iter().collect();
    /// assert_eq!(squares?.iter().sum::<u64>(), 30);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join_all(mut self) -> Vec<Result<T, TaskError>> {
        let mut results = Vec::with_capacity(self.len());
        while let Some(result) = self.join_next().await {
            results.push(result);
        }
        results
    }

    /// Cancels every member's task, as [`TaskHandle::cancel`] does for each.
    ///
    /// The members stay in the set: each then yields its result, which is a
    /// [`TaskError`] for which [`is_cancelled`](TaskError::is_cancelled) is
    /// `true`, except for a task that had finished before this call, which
    /// keeps its own result. Nothing else changes: tasks of the same plans
    /// that are not members are untouched, and the plans stay open.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().workers(1).build()?;
    /// let mut set = TaskSet::new();
    /// for _ in 0..3 {
    ///     set.submit(&plan, std::future::pending::<()>()).await?;
    /// }
    /// set.cancel_all();
    /// while let Some(result) = set.join_next().await {
    ///     assert!(result.unwrap_err().is_cancelled());
    /// }
    /// // The plan still takes work.
    /// assert_eq!(plan.submit(async { "next" }).await?.await?, "next");
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_all(&self) {
        for member in self.members.iter() {
            member.handle.cancel();
        }
    }

    /// Removes every member from the set without cancelling it: each task
    /// runs on, and its result is dropped, as when its handle is dropped.
    ///
    /// The set is empty afterwards and can be used again; dropping it then
    /// cancels nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().build()?;
    /// let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    /// let mut set = TaskSet::new();
    /// set.submit(&plan, async move { done_tx.send("ran anyway").unwrap() }).await?;
    /// set.detach_all();
    /// drop(set);
    /// assert_eq!(done_rx.await?, "ran anyway");
    /// # Ok(())
    /// # }
    /// ```
    pub fn detach_all(&mut self) {
        self.members.clear();
        self.finished.clear();
    }
}

impl<T: Send + 'static> TaskSet<T> {
    /// Submits a task to `plan`, waiting while its queue is full, and adds
    /// the task to the set; returns the task's id.
    ///
    /// This is [`Plan::submit`] followed by [`push`](TaskSet::push). For a
    /// tag, a priority or a timeout, submit with [`Plan::task`] and push the
    /// handle.
    ///
    /// # Errors
    ///
    /// As [`Plan::submit`]: a [`SubmitError`] that
    /// [`is_closed`](SubmitError::is_closed), with the future inside, if the
    /// plan is closed or closes while waiting; one that
    /// [`is_full`](SubmitError::is_full) only when called from one of the
    /// plan's own tasks that must not wait for room (see [`Plan::submit`]).
    /// The set is unchanged.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe, as [`Plan::submit`]: if the returned
    /// future is dropped before it resolves, nothing was submitted and the
    /// set is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().build()?;
    /// let mut set = TaskSet::new();
    /// set.submit(&plan, async { "fetched" }).await?;
    ///
    /// plan.close();
    /// let refused = set.submit(&plan, async { "too late" }).await.unwrap_err();
    /// assert!(refused.is_closed());
    /// assert_eq!(refused.into_inner().await, "too late"); // handed back, not lost
    /// assert_eq!(set.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit<F>(&mut self, plan: &Plan, future: F) -> Result<TaskId, SubmitError<F>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let handle = plan.submit(future).await?;
        Ok(self.push_returning_id(handle))
    }

    /// Submits a task to `plan` if its queue has room, without waiting, and
    /// adds the task to the set; returns the task's id.
    ///
    /// This is [`Plan::try_submit`] followed by [`push`](TaskSet::push).
    ///
    /// # Errors
    ///
    /// As [`Plan::try_submit`]: a [`SubmitError`], full or closed, with the
    /// future inside. The set is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use taskplan::{Plan, TaskSet};
    ///
    /// let plan = Plan::builder().workers(1).capacity(1).build()?;
    /// let mut set = TaskSet::new();
    /// set.try_submit(&plan, async { 1 })?;
    /// // The worker has not had a chance to start the first: the queue is full.
    /// let refused = set.try_submit(&plan, async { 2 }).unwrap_err();
    /// assert!(refused.is_full());
    /// assert_eq!(set.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_submit<F>(&mut self, plan: &Plan, future: F) -> Result<TaskId, SubmitError<F>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let handle = plan.try_submit(future)?;
        Ok(self.push_returning_id(handle))
    }

    fn push_returning_id(&mut self, handle: TaskHandle<T>) -> TaskId {
        let id = handle.id();
        self.push(handle);
        id
    }
}

/// Yields each member's result as it finishes, as
/// [`join_next`](TaskSet::join_next) does, and `None` while the set is
/// empty.
///
/// `None` does not end the set for good: after a [`push`](TaskSet::push), the
/// stream yields again.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_util::StreamExt;
/// use taskplan::{Plan, TaskSet};
///
/// let plan = Plan::builder().workers(2).build()?;
/// let mut set = TaskSet::new();
/// for n in 0..5 {
///     set.submit(&plan, async move { n }).await?;
/// }
/// let mut outputs: Vec<i32> = set.map(Result::unwrap).collect().await;
/// outputs.sort();
/// assert_eq!(outputs, [0, 1, 2, 3, 4]);
/// # Ok(())
/// # }
/// ```
impl<T> Stream for TaskSet<T> {
    type Item = Result<T, TaskError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_join_next(cx)
    }

    /// Exactly one item is left for each member now in the set.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<T> Drop for TaskSet<T> {
    /// Cancels the members still in the set; see [Dropping](TaskSet#dropping).
    fn drop(&mut self) {
        self.cancel_all();
    }
}

// Nothing in a set is ever pinned: `members` is `Unpin` whatever it holds,
// and an output waiting in `finished` is moved out, never polled.
impl<T> Unpin for TaskSet<T> {}

impl<T> Default for TaskSet<T> {
    fn default() -> TaskSet<T> {
        TaskSet::new()
    }
}

impl<T> Extend<TaskHandle<T>> for TaskSet<T> {
    fn extend<I: IntoIterator<Item = TaskHandle<T>>>(&mut self, handles: I) {
        for handle in handles {
            self.push(handle);
        }
    }
}

/// Collects handles into a set.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use taskplan::{Plan, TaskSet};
///
/// let plan = Plan::builder().workers(2).build()?;
/// let handles = (0..3).map(|n| plan.try_submit(async move { n })).collect::<Result<Vec<_>, _>>()?;
/// let set: TaskSet<i32> = handles.into_iter().collect();
/// assert_eq!(set.len(), 3);
/// # Ok(())
/// # }
/// ```
impl<T> FromIterator<TaskHandle<T>> for TaskSet<T> {
    fn from_iter<I: IntoIterator<Item = TaskHandle<T>>>(handles: I) -> TaskSet<T> {
        let mut set = TaskSet::new();
        set.extend(handles);
        set
    }
}

impl<T> fmt::Debug for TaskSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSet").field("len", &self.len()).finish()
    }
}

/// The waker a set's members wake: it passes the wake on to whoever waits
/// in [`TaskSet::join_next`], and records it for [`TaskSet::sweep`].
#[derive(Default)]
struct Wakeup {
    waiter: AtomicWaker,
    woken: AtomicBool,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.waiter.wake();
    }
}

/// A member of a set: a handle that resolves with its task's id, which a
/// successful output does not carry.
struct Member<T> {
    handle: TaskHandle<T>,
}

impl<T> Future for Member<T> {
    type Output = (TaskId, Result<T, TaskError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.handle.id();
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|result| (id, result))
    }
}
