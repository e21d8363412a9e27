//! Counting completions in the handlers, and waiting for the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Jobs done so far, and a wakeup when the count reaches the target.
pub struct Done {
    count: AtomicU64,
    target: u64,
    notify: Notify,
}

impl Done {
    pub fn new(target: u64) -> Done {
        Done {
            count: AtomicU64::new(0),
            target,
            notify: Notify::new(),
        }
    }

    /// Called by a handler as its job finishes.
    pub fn hit(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            // A stored permit: the waiter need not be waiting yet.
            self.notify.notify_one();
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until the target is reached; fails if no job finished for
    /// `stall` (a peer that stopped making progress, not a slow one).
    pub async fn wait(&self, stall: Duration) -> Result<(), String> {
        let mut last = self.count();
        loop {
            if self.count() >= self.target {
                return Ok(());
            }
            if tokio::time::timeout(stall, self.notify.notified())
                .await
                .is_ok()
            {
                return Ok(());
            }
            let now = self.count();
            if now == last {
                return Err(format!(
                    "no progress for {stall:?}: {now} of {} jobs done",
                    self.target
                ));
            }
            last = now;
        }
    }
}
