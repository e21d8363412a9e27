//! Shutting a plan down on SIGTERM or Ctrl-C (feature `signal`, on by
//! default).

use std::time::Duration;

use crate::plan::Plan;
use crate::stats::ShutdownReport;

impl Plan {
    /// Waits for SIGTERM or Ctrl-C (SIGINT), then runs
    /// [`shutdown(grace)`](Plan::shutdown) and returns its report.
    ///
    /// Also returns, through the same shutdown, if the plan's
    /// [token](Plan::token) is cancelled first, so a plan aborted some other
    /// way does not leave this waiting forever. If no signal handler can be
    /// installed, the error is logged through `tracing` and the plan shuts
    /// down at once rather than never. Available on Unix (both signals) and
    /// elsewhere (Ctrl-C only), with the `signal` feature.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// let plan = taskplan::Plan::builder().name("service").build()?;
    /// // ... submit work from request handlers ...
    /// let report = plan.shutdown_on_signal(Duration::from_secs(10)).await;
    /// println!("drained: {} completed, {} cancelled", report.completed, report.cancelled);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future before a signal arrives leaves the plan
    /// untouched; after, as for [`shutdown`](Plan::shutdown).
    pub async fn shutdown_on_signal(&self, grace: Duration) -> ShutdownReport {
        let token = self.token();
        tokio::select! {
            signal = wait_for_signal() => match signal {
                Ok(name) => tracing::info!(plan = %self.name(), signal = name, "shutting down"),
                Err(error) => tracing::error!(
                    plan = %self.name(),
                    %error,
                    "cannot listen for shutdown signals; shutting down now"
                ),
            },
            _ = token.cancelled() => {}
        }
        self.shutdown(grace).await
    }
}

/// Resolves with the signal's name when SIGTERM or SIGINT arrives.
#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => Ok("SIGTERM"),
        _ = interrupt.recv() => Ok("SIGINT"),
    }
}

/// Resolves when Ctrl-C arrives.
#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<&'static str> {
    tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
}
