//! The synchronisation types the crate builds its own protocols from, in one
//! place, so the loom model checks (`src/loom_tests.rs`) can swap them.
//!
//! In a normal build these are the standard library's atomics and mutex and
//! `futures-util`'s `AtomicWaker`, re-exported unchanged. In the crate's own
//! unit tests built with `--cfg loom` the atomics, the mutex and the waker
//! slot are loom's, whose every access loom can interleave and whose memory
//! orderings it models. (Only there: loom is a dev-dependency, and loom's
//! types only work inside a loom model, so the library itself, built with
//! `--cfg loom` for another crate's tests, keeps the standard ones, as
//! Tokio's `cfg(all(test, loom))` does.)
//!
//! `UnsafeCell` is the standard one behind loom's interface (`with_mut`):
//! under loom, loom's, which reports two threads reaching the cell without
//! an ordering between them. The task cell's waker slot uses it, being the
//! one cell two threads hand back and forth.
//!
//! `Arc` is the standard one in both builds: the crate keeps nothing of its
//! own in reference counts, and `Waker::from`, `Arc<dyn Trait>` coercions and
//! `self: &Arc<Self>` receivers all need the standard type. Tokio's and
//! tokio-util's types (`Notify`, `CancellationToken`, `TaskTracker`) stay
//! Tokio's: loom cannot see into them, and the loom tests model the part of
//! a protocol that goes through them instead.

pub(crate) use std::sync::Arc;

#[cfg(not(all(test, loom)))]
pub(crate) use futures_util::task::AtomicWaker;
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// loom's waker slot behind the interface of `futures-util`'s, whose
/// `register` borrows the waker where loom's takes it by value.
#[cfg(all(test, loom))]
#[derive(Debug, Default)]
pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

#[cfg(all(test, loom))]
impl AtomicWaker {
    pub(crate) fn new() -> AtomicWaker {
        AtomicWaker(loom::future::AtomicWaker::new())
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.0.register_by_ref(waker);
    }

    pub(crate) fn wake(&self) {
        self.0.wake();
    }
}

/// The standard `UnsafeCell` behind the part of loom's interface the crate
/// uses, so loom can check every access.
#[cfg(not(all(test, loom)))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(all(test, loom)))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer to the value; what `f` may do with it is
    /// the caller's contract.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(all(test, loom))]
pub(crate) use loom::cell::UnsafeCell;
