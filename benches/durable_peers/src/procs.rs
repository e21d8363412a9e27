//! The scaling mode: the same filled queue drained by 1 or 2 processes.
//!
//! The parent fills the queue, starts the processes (this binary again,
//! with `--worker`), waits until each has connected and says `ready`,
//! writes `go` to each, and times until the queue's own done counter
//! reaches the fill: taskplan's `Client::stats().completed`, the stream
//! group's `entries-read - pending` (`XINFO GROUPS`), polled every 2 ms.
//! Closing a child's stdin tells it to shut down.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::Peer;
use crate::clock::{Clock, Timed};
use crate::done::Done;
use crate::peers::{streams, taskplan};

/// What the parent passes a worker process.
pub struct WorkerArgs {
    pub peer: Peer,
    pub url: String,
    pub slots: usize,
    pub stream_count: usize,
}

/// The body of a worker process (`--worker`): connect, say `ready`, wait
/// for `go`, consume, and shut down when stdin closes.
pub async fn worker(args: WorkerArgs) -> Result<(), String> {
    let (go, eof) = stdin_signals();
    let never = Arc::new(Done::new(u64::MAX));
    match args.peer {
        Peer::Taskplan => {
            let client = taskplan::client(&args.url).await?;
            let plan = taskplan::plan(args.slots)?;
            ready();
            let _ = go.await;
            let host = taskplan::start_host(&plan, &client, never);
            let _ = eof.await;
            host.shutdown(Duration::from_secs(10)).await;
        }
        Peer::Streams => {
            let cons = streams::connect(&args.url, args.slots).await?;
            ready();
            let _ = go.await;
            let name = format!("p{}", std::process::id());
            streams::run_consumers(cons, &name, args.stream_count, never).await?;
            let _ = eof.await;
        }
        other => return Err(format!("{} has no multi-process mode here", other.name())),
    }
    Ok(())
}

/// The first line on stdin (`go`), and its end (EOF: shut down).
fn stdin_signals() -> (oneshot::Receiver<()>, oneshot::Receiver<()>) {
    let (go_tx, go_rx) = oneshot::channel();
    let (eof_tx, eof_rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::stdin().lock().lines();
        let _ = lines.next();
        let _ = go_tx.send(());
        for _ in lines {}
        let _ = eof_tx.send(());
    });
    (go_rx, eof_rx)
}

fn ready() {
    println!("ready");
    let _ = std::io::stdout().flush();
}

struct Children {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Children {
    fn spawn(count: usize, args: &WorkerArgs) -> Result<Children, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut children = Children {
            children: Vec::new(),
        };
        for _ in 0..count {
            let mut child = Command::new(&exe)
                .args(["--worker", args.peer.name(), "--url", &args.url])
                .args(["--slots", &args.slots.to_string()])
                .args(["--stream-count", &args.stream_count.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("start a worker process: {e}"))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().ok_or("no stdout")?;
            children.children.push((child, stdin));
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(|e| format!("read a worker's ready line: {e}"))?;
            if line.trim() != "ready" {
                return Err(format!("a worker process said {line:?}, not ready"));
            }
        }
        Ok(children)
    }

    fn go(&mut self) -> Result<(), String> {
        for (_, stdin) in &mut self.children {
            let stdin = stdin.as_mut().ok_or("stdin gone")?;
            stdin
                .write_all(b"go\n")
                .and_then(|_| stdin.flush())
                .map_err(|e| format!("tell a worker to go: {e}"))?;
        }
        Ok(())
    }

    /// Closes every stdin and waits for the processes, a bounded time.
    fn finish(mut self) -> Result<(), String> {
        for (_, stdin) in &mut self.children {
            stdin.take();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut failures = Vec::new();
        for (child, _) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        failures.push(format!("a worker process exited with {status}"));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        failures.push("a worker process did not stop in 20 s".into());
                        break;
                    }
                }
            }
        }
        self.children.clear();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Drains a queue filled with `n` jobs with `processes` worker processes;
/// returns the time from `go` to the queue's counter reaching `n`, and
/// Redis's CPU time meanwhile.
pub async fn drain(
    args: &WorkerArgs,
    n: u64,
    processes: usize,
    stall: Duration,
) -> Result<Timed, String> {
    let client = taskplan::client(&args.url).await?;
    let mut con = redis::Client::open(args.url.as_str())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut children = Children::spawn(processes, args)?;
    children.go()?;
    let clock = Clock::start();
    let mut last = (0, Instant::now());
    let timed = loop {
        let done = match args.peer {
            Peer::Taskplan => taskplan::completed(&client).await?,
            _ => streams::group_progress(&mut con).await?.1,
        };
        if done >= n {
            break clock.stop();
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > stall {
            return Err(format!("no progress for {stall:?}: {done} of {n} done"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    children.finish()?;
    // The consumers' CPU was in the children; this process only polled.
    Ok(Timed {
        own_cpu: None,
        ..timed
    })
}
