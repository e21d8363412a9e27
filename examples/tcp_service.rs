//! A small TCP service whose requests run as tasks on a plan: bounded
//! concurrency across all connections, a tag per connection so a client that
//! goes away takes its work with it, and a graceful drain on SIGTERM.
//!
//! Run it with `cargo run --example tcp_service` (or `cargo run --example
//! tcp_service -- 7000` for a fixed port; the default, 0, picks any free
//! one). It prints `listening on <address>` once it accepts connections;
//! talk to it with `nc 127.0.0.1 <port>`. Stop it with Ctrl-C or
//! `kill -TERM <pid>`: it prints one `report: ...` line and exits 0.
//!
//! # Protocol
//!
//! One request per line, one answer line per request, answers in request
//! order on each connection. A client may send further requests before the
//! earlier ones are answered.
//!
//! - `echo <text>` answers `ok <text>`.
//! - `work <ms> <text>` waits `<ms>` milliseconds (at most 5000; a stand-in
//!   for slow I/O) and answers `ok <text>`.
//! - Anything else answers `error unknown command` (or `error bad duration`
//!   for a `work` whose `<ms>` is not a number up to 5000); such a request
//!   takes no worker.
//! - A request read once the service is shutting down answers
//!   `error shutting down`.
//! - A line longer than 4096 bytes answers `error line too long`, and the
//!   service reads no more from that connection.
//!
//! # Shutdown
//!
//! On SIGTERM or Ctrl-C the service stops accepting connections and the plan
//! stops taking requests. Requests already taken run to the end (for up to
//! [`GRACE`]) and are answered. Each client then gets up to [`LINGER`] to
//! hang up, and every request it sends meanwhile is still answered, with
//! `error shutting down`; so a client that stops sending at that answer never
//! has a request go unanswered. Then the service closes what is left, prints
//! the plan's report, and exits. A second SIGTERM or Ctrl-C during the drain
//! cuts it short: requests still running are cancelled at once and answered
//! `error cancelled`.

use std::io;
use std::pin::pin;

use std::time::Duration;

use taskplan::{Plan, TaskError, TaskHandle};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long requests taken before the signal may run on. Longer than the
/// longest `work` request, so a drain never has to cancel one.
const GRACE: Duration = Duration::from_secs(10);

/// How long each client has, once the drain is over, to hang up.
const LINGER: Duration = Duration::from_secs(5);

/// How long the service waits, after telling connections to close, for them
/// to hand over their last answers: a client that reads nothing must not
/// hold the process forever.
const CLOSE_BOUND: Duration = Duration::from_secs(2);

/// The longest `work` request, so one request cannot hold a worker past the
/// grace period.
const MAX_WORK_MS: u64 = 5_000;

/// The longest request line, line ending included: a client that never sends
/// a newline must not make the service buffer without end.
const MAX_LINE_BYTES: u64 = 4_096;

/// Requests read from one connection and not yet answered. Past this, the
/// service reads no more from it until answers go out: a client that sends
/// without reading cannot make the service hold its answers without end.
const PIPELINE_DEPTH: usize = 16;

const SHUTTING_DOWN: &str = "error shutting down";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(port) => port.parse()?,
        None => 0,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    // At most 4 requests run at once, whatever the number of connections;
    // 64 more may wait, after which connections stop being read until there
    // is room.
    let plan = Plan::builder()
        .name("tcp")
        .workers(4)
        .capacity(64)
        .build()?;

    // Signals are listened for from this call on, so a SIGTERM sent as soon
    // as the line below is read is not lost.
    let mut shutdown = pin!(plan.shutdown_on_signal(GRACE));
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", listener.local_addr()?)?;
        stdout.flush()?;
    }

    let connections = TaskTracker::new();
    // Cancelled once the clients have had their time to hang up.
    let closing = CancellationToken::new();
    let mut served = 0u64;
    let drained = loop {
        tokio::select! {
            // Polling the shutdown listens for the signal and, after it,
            // drains; `closed` ends the loop at the signal itself.
            report = shutdown.as_mut() => break Some(report),
            () = plan.closed() => break None,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    served += 1;
                    // A plan keeps each tag it has seen for its whole life (a
                    // small entry; with the `metrics` feature, a series too),
                    // so a tag per connection suits a demo; a service that
                    // runs for months wants a bounded set of tags.
                    let tag = format!("conn-{served}");
                    connections.spawn(serve(plan.clone(), stream, tag, closing.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, say: the listener stays ready,
                    // so retrying at once would spin.
                    eprintln!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    };
    // New connections are refused from here on; open ones are still served,
    // and their new requests answered `error shutting down`.
    drop(listener);
    let report = match drained {
        Some(report) => report,
        None => shutdown.await,
    };

    // Every request the plan took has been answered, or its answer is on its
    // way to the socket. Give clients time to hang up, then close the rest.
    connections.close();
    if tokio::time::timeout(LINGER, connections.wait())
        .await
        .is_err()
    {
        closing.cancel();
        if tokio::time::timeout(CLOSE_BOUND, connections.wait())
            .await
            .is_err()
        {
            eprintln!("some clients did not take their last answers; closing anyway");
        }
    }

    println!(
        "report: completed {} cancelled {} panicked {} timed_out {} forced {} connections {} drained_in_ms {}",
        report.completed,
        report.cancelled,
        report.panicked,
        report.timed_out,
        report.forced,
        served,
        report.elapsed.as_millis(),
    );
    Ok(())
}

/// One request, parsed.
enum Request {
    Echo(String),
    Work(Duration, String),
}

impl Request {
    fn parse(line: &str) -> Result<Request, &'static str> {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        match command {
            "echo" => Ok(Request::Echo(rest.to_owned())),
            "work" => {
                let (milliseconds, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let milliseconds = milliseconds
                    .parse::<u64>()
                    .ok()
                    .filter(|milliseconds| *milliseconds <= MAX_WORK_MS)
                    .ok_or("error bad duration")?;
                Ok(Request::Work(
                    Duration::from_millis(milliseconds),
                    text.to_owned(),
                ))
            }
            _ => Err("error unknown command"),
        }
    }

    /// The task the plan runs for this request: its output is the answer.
    async fn run(self) -> String {
        let text = match self {
            Request::Echo(text) => text,
            Request::Work(duration, text) => {
                tokio::time::sleep(duration).await;
                text
            }
        };
        if text.is_empty() {
            "ok".to_owned()
        } else {
            format!("ok {text}")
        }
    }
}

/// An answer in the making, queued in request order.
enum Answer {
    /// Known at once: a request the plan never saw.
    Now(&'static str),
    /// The output of the request's task.
    Later(TaskHandle<String>),
}

impl Answer {
    async fn line(self) -> String {
        match self {
            Answer::Now(line) => line.to_owned(),
            Answer::Later(handle) => handle.await.unwrap_or_else(|error| describe(&error)),
        }
    }
}

fn describe(error: &TaskError) -> String {
    if error.is_cancelled() {
        "error cancelled".to_owned()
    } else if error.is_timeout() {
        "error timed out".to_owned()
    } else {
        // The panic itself is logged by the plan; the client learns only
        // that its request failed.
        "error internal".to_owned()
    }
}

/// Serves one connection: a reader that turns request lines into tasks, and
/// a writer that sends their answers back in order.
async fn serve(plan: Plan, stream: TcpStream, tag: String, closing: CancellationToken) {
    // Answers are small and often pipelined: sent at once, not held back
    // until the previous one is acknowledged.
    if let Err(error) = stream.set_nodelay(true) {
        eprintln!("{tag}: {error}");
    }
    let (read_half, write_half) = stream.into_split();
    let (answers_tx, answers_rx) = mpsc::channel(PIPELINE_DEPTH);
    let (_, written) = tokio::join!(
        read_requests(&plan, read_half, &tag, answers_tx, &closing),
        write_answers(write_half, answers_rx),
    );
    if let Err(error) = written {
        eprintln!("{tag}: {error}");
    }
    // If the client went away, the writer stopped early and dropped the
    // handles of the answers it could no longer send, which detaches their
    // tasks: they would still run, and take workers from other connections,
    // for nobody. Cancelling the connection's tag stops them, queued or
    // running. After a normal end every answer was sent, and this finds
    // nothing to cancel.
    let cancelled = plan.cancel_tag(&tag);
    if cancelled > 0 {
        eprintln!("{tag}: client gone, cancelled {cancelled} requests");
    }
}

/// Reads requests until the client hangs up, the writer gives up, or the
/// service closes the connection; submits each to the plan and queues its
/// answer for the writer.
async fn read_requests(
    plan: &Plan,
    read_half: OwnedReadHalf,
    tag: &str,
    answers_tx: mpsc::Sender<Answer>,
    closing: &CancellationToken,
) {
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE_BYTES);
        let read = tokio::select! {
            // A request read halfway is dropped here, which is fine: the
            // connection reads nothing more.
            () = closing.cancelled() => return,
            () = answers_tx.closed() => return,
            read = limited.read_until(b'\n', &mut line) => read,
        };
        match read {
            Ok(0) => return,
            Ok(_) if !line.ends_with(b"\n") && line.len() as u64 == MAX_LINE_BYTES => {
                // The rest of the line is still unread, and reading past it
                // would mean buffering it; answer and read no more.
                let _ = answers_tx.send(Answer::Now("error line too long")).await;
                return;
            }
            Ok(_) => {}
            Err(error) => {
                eprintln!("{tag}: {error}");
                return;
            }
        }
        // A last line without its newline is a request too, as in `nc -N`.
        let text = String::from_utf8_lossy(&line);
        let answer = match Request::parse(text.trim_end_matches(['\n', '\r'])) {
            Ok(request) => {
                // Waits while 64 requests are queued: the connection is not
                // read meanwhile, which pushes back on the client.
                match plan.task(request.run()).tag(tag.to_owned()).submit().await {
                    Ok(handle) => Answer::Later(handle),
                    // The plan is closed: it is shutting down.
                    Err(_refused) => Answer::Now(SHUTTING_DOWN),
                }
            }
            Err(message) => Answer::Now(message),
        };
        if answers_tx.send(answer).await.is_err() {
            return; // the writer gave up; the tag's cancel stops this task
        }
    }
}

/// Writes each answer once it is known, in request order, until the reader
/// is done and every answer is out; then ends the connection's output.
async fn write_answers(
    mut write_half: OwnedWriteHalf,
    mut answers_rx: mpsc::Receiver<Answer>,
) -> io::Result<()> {
    while let Some(answer) = answers_rx.recv().await {
        let mut line = answer.line().await;
        line.push('\n');
        write_half.write_all(line.as_bytes()).await?;
    }
    write_half.shutdown().await
}
