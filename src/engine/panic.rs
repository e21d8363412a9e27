//! Containing panics of user code: a task's future, its destructor, its
//! output's destructor, a waker. The engine runs all of them, and none may
//! unwind into its bookkeeping or take a supervisor down.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// How a task ended without a value, as its cell stores it until
/// the handle makes a [`TaskError`] of it.
pub(crate) enum Failure {
    Cancelled,
    TimedOut,
    /// Boxed once more, so a result is 16 bytes rather than 24: it shares
    /// the task's stage with the future (see `engine::cell`), and a panic is
    /// rare enough to pay the second allocation.
    Panic(Box<Box<dyn Any + Send + 'static>>),
}

impl Failure {
    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> Failure {
        Failure::Panic(Box::new(payload))
    }
}

/// Best-effort text of a panic payload, for logs and `Display`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// A panic payload's message for a log line, or a placeholder.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> &str {
    panic_message(payload).unwrap_or("<non-string payload>")
}

/// Runs `action`, which runs user code (a destructor, a waker), and hands a
/// panic's message to `report` instead of letting it unwind into this crate.
///
/// The caught payload is dropped where a panic is contained too (see
/// [`drop_payload`]).
pub(crate) fn contain_panic(action: impl FnOnce(), report: impl FnOnce(&str)) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(action)) {
        report(panic_text(&*payload));
        drop_payload(payload);
    }
}

/// Drops a caught panic payload without letting a panic of its destructor
/// unwind into this crate.
///
/// A payload is any value, so its destructor is user code and may panic,
/// with a payload that is user code in turn. The payload of that second
/// panic is dropped the same way; the payload of a third is leaked: a chain
/// of payloads can be endless, each drop starting another panic, and leaking
/// one value is the only way to end it that neither unwinds nor aborts.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        if let Err(third) = catch_unwind(AssertUnwindSafe(move || drop(second))) {
            std::mem::forget(third);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Drops: how many `Nested` payloads were dropped.
    static DROPS: AtomicUsize = AtomicUsize::new(0);

    /// A panic payload whose destructor panics with one a level smaller.
    struct Nested(usize);

    impl Drop for Nested {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
            if self.0 > 0 && !std::thread::panicking() {
                std::panic::panic_any(Nested(self.0 - 1));
            }
        }
    }

    /// A payload whose destructor panics, with a payload whose destructor
    /// panics again, does not unwind out of `contain_panic`: the first two
    /// are dropped and the third, `Nested(1)`, is leaked.
    #[test]
    fn contain_panic_contains_payloads_whose_destructors_panic() {
        let mut reported = None;
        contain_panic(
            || std::panic::panic_any(Nested(3)),
            |panic| reported = Some(panic.to_owned()),
        );
        assert_eq!(reported.as_deref(), Some("<non-string payload>"));
        assert_eq!(DROPS.load(Ordering::SeqCst), 2, "Nested(3) and Nested(2)");
    }
}
