//! Shutting a plan down on SIGTERM or Ctrl-C (feature `signal`, on by
//! default).

use std::future::Future;
use std::time::Duration;

use crate::plan::Plan;
use crate::stats::ShutdownReport;

impl Plan {
    /// Waits for SIGTERM or Ctrl-C (SIGINT), then runs
    /// [`shutdown(grace)`](Plan::shutdown) and returns its report; a second
    /// signal during the drain aborts at once.
    ///
    /// The signals are listened for from the moment this is called, before
    /// the returned future is first polled, so a service can announce that
    /// it is ready right after calling it without losing an early signal.
    ///
    /// A second SIGTERM or SIGINT, received after the first and before the
    /// drain ends, cuts the grace period short: the plan is aborted as by
    /// [`abort`](Plan::abort) (queued tasks never start, running ones are
    /// dropped), and the report, which then has
    /// [`forced`](crate::ShutdownReport::forced) set if that cancelled a
    /// task, is returned as soon as every task has ended. It is logged at
    /// `WARN` (`second signal: aborting`) with the signal's name. This is
    /// what an operator who presses Ctrl-C twice, or an orchestrator that
    /// sends SIGTERM again, expects. A second signal sent before the drain
    /// began counts too: listening never stops between the two. On Unix a
    /// signal is only seen once per kind at a time, so two of the same kind
    /// arriving together, before the first is seen, count as one.
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
    /// if report.forced {
    ///     eprintln!("cut short: {} cancelled", report.cancelled);
    /// }
    /// println!("drained: {} completed, {} cancelled", report.completed, report.cancelled);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future before a signal arrives leaves the plan
    /// untouched; after, as for [`shutdown`](Plan::shutdown), and a later
    /// signal no longer aborts.
    #[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
    pub fn shutdown_on_signal(
        &self,
        grace: Duration,
    ) -> impl Future<Output = ShutdownReport> + Send + '_ {
        // Listen now, not at the first poll: a signal that arrives between
        // this call and the first poll is not lost. The plan's runtime is
        // entered because registering needs one.
        let listening = {
            let _runtime = self.runtime().enter();
            Signals::listen()
        };
        async move {
            let mut signals = match listening {
                Ok(signals) => Some(signals),
                Err(error) => {
                    tracing::error!(
                        plan = %self.name(),
                        %error,
                        "cannot listen for shutdown signals; shutting down now"
                    );
                    None
                }
            };
            if let Some(first) = self.first_signal(signals.as_mut()).await {
                tracing::info!(plan = %self.name(), signal = first, "shutting down");
            }
            let drain = self.shutdown(grace);
            let Some(mut signals) = signals else {
                return drain.await;
            };
            // The same listeners as for the first signal, so a second one
            // that arrived since is already waiting to be seen.
            tokio::pin!(drain);
            tokio::select! {
                biased;
                report = &mut drain => report,
                Some(second) = signals.recv() => {
                    tracing::warn!(plan = %self.name(), signal = second, "second signal: aborting");
                    self.abort().await;
                    // The drain's own report: its `elapsed` counts from the
                    // start of the drain, not from the second signal.
                    drain.await
                }
            }
        }
    }

    /// Waits for the first shutdown signal and returns its name, or returns
    /// `None` once the plan's token is cancelled or no signal can come.
    async fn first_signal(&self, signals: Option<&mut Signals>) -> Option<&'static str> {
        let signals = signals?;
        let token = self.token();
        tokio::select! {
            signal = signals.recv() => {
                if signal.is_none() {
                    tracing::error!(
                        plan = %self.name(),
                        "shutdown signals can no longer be received; shutting down now"
                    );
                }
                signal
            }
            () = token.cancelled() => None,
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

    /// Resolves with the signal's name when SIGTERM or SIGINT arrives, or
    /// with `None` if neither can arrive any more (the runtime that delivers
    /// them is shutting down).
    async fn recv(&mut self) -> Option<&'static str> {
        tokio::select! {
            // Both pending: SIGTERM is seen first, and SIGINT stays pending.
            biased;
            Some(()) = self.terminate.recv() => Some("SIGTERM"),
            Some(()) = self.interrupt.recv() => Some("SIGINT"),
            else => None,
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

    /// Resolves with `"Ctrl-C"` when Ctrl-C is pressed, or with `None` if
    /// it cannot be listened for.
    async fn recv(&mut self) -> Option<&'static str> {
        tokio::signal::ctrl_c().await.ok().map(|()| "Ctrl-C")
    }
}
