//! Shutting a plan down on SIGTERM or Ctrl-C (feature `signal`, on by
//! default).

use std::future::Future;
use std::time::Duration;

use crate::plan::Plan;
use crate::stats::ShutdownReport;

impl Plan {
    /// Waits for SIGTERM or Ctrl-C (SIGINT), then runs
    /// [`shutdown(grace)`](Plan::shutdown) and returns its report.
    ///
    /// The signals are listened for from the moment this is called, before
    /// the returned future is first polled, so a service can announce that
    /// it is ready right after calling it without losing an early signal.
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
    #[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
    pub fn shutdown_on_signal(
        &self,
        grace: Duration,
    ) -> impl Future<Output = ShutdownReport> + Send + '_ {
        // Listen now, not at the first poll: a signal that arrives between
        // this call and the first poll is not lost. The plan's runtime is
        // entered because registering needs one.
        let signals = {
            let _runtime = self.runtime().enter();
            Signals::listen()
        };
        async move {
            let token = self.token();
            tokio::select! {
                signal = async {
                    match signals {
                        Ok(mut signals) => Ok(signals.recv().await),
                        Err(error) => Err(error),
                    }
                } => match signal {
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
}

/// The shutdown signals, listened for from creation on.
#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves with the signal's name when SIGTERM or SIGINT arrives.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Ctrl-C, where there are no Unix signals.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn listen() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn recv(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            // Nothing to listen to: shut down rather than never.
            Err(_) => "Ctrl-C unavailable",
        }
    }
}
