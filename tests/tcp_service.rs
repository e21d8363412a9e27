//! The `tcp_service` example, run as a real process and driven by real TCP
//! clients, drains on SIGTERM without losing a request.
//!
//! Eight clients each keep a few requests in flight (`echo`, short `work`,
//! and unknown commands) on their own connection. Once 100 answers have
//! arrived, the test sends the service SIGTERM; each client goes on sending
//! until a request is answered `error shutting down`, then hangs up and reads
//! what is still owed. This proves that:
//!
//! - every request line a client wrote got exactly one answer, in order, and
//!   every `ok` carries its request's text;
//! - once a connection sees `error shutting down`, it never sees another
//!   `ok`: the plan closes once, at the signal;
//! - the work the service took is exactly the work it reports: the `ok`
//!   answers across all clients add up to the report's `completed`, and
//!   nothing was cancelled, timed out or forced;
//! - the process exits 0 within a bound, printing only its address and
//!   its report on stdout.
#![cfg(all(unix, feature = "signal"))]

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

const CLIENTS: usize = 8;

/// Requests each client keeps in flight: the service must answer
/// pipelined requests in order.
const WINDOW: usize = 4;

/// Answers, over all clients, before the signal: the service is busy, with
/// requests queued and running, when it arrives.
const ANSWERS_BEFORE_SIGNAL: usize = 100;

/// How long the whole test may take, in real time, from starting the
/// service to its exit. Everything takes well under a second when the
/// machine is idle; the bound only turns a hang into a failure.
const BOUND: Duration = Duration::from_secs(60);

/// A client that sends this many requests has not been told to stop.
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;

const SHUTTING_DOWN: &str = "error shutting down";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_answers_every_request_and_reports_the_work_done() {
    let deadline = Instant::now() + BOUND;
    let binary = common::example_binary("tcp_service");
    let mut service = Command::new(&binary)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // If the test fails, the service must not outlive it.
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("starting {}: {error}", binary.display()));
    let pid = service.id().unwrap().to_string();
    let mut stdout = BufReader::new(service.stdout.take().unwrap()).lines();

    let first = timeout_at(deadline, stdout.next_line())
        .await
        .expect("the service did not say where it listens")
        .unwrap()
        .expect("the service closed stdout before saying where it listens");
    let address: SocketAddr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .parse()
        .unwrap();

    let (answers_tx, mut answers_rx) = watch::channel(0usize);
    let mut clients = JoinSet::new();
    for client in 0..CLIENTS {
        clients.spawn(run_client(client, address, answers_tx.clone()));
    }

    // Signal once the service is busy: an event, not a guess at a time.
    // A client that ends before the signal has failed: say why.
    timeout_at(deadline, async {
        tokio::select! {
            reached = answers_rx.wait_for(|answers| *answers >= ANSWERS_BEFORE_SIGNAL) => {
                reached.expect("the counter lives as long as this test");
            }
            Some(ended) = clients.join_next() => {
                panic!("a client ended before the signal: {:?}", ended.map_err(panic_text));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("fewer than {ANSWERS_BEFORE_SIGNAL} answers within {BOUND:?}"));
    let answers_at_signal = *answers_rx.borrow();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success(), "kill -TERM {pid} failed: {killed}");

    let mut logs = Vec::new();
    while let Some(joined) = timeout_at(deadline, clients.join_next())
        .await
        .expect("clients still running at the bound")
    {
        match joined {
            Ok(log) => logs.push(log),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    let mut rest = Vec::new();
    while let Some(line) = timeout_at(deadline, stdout.next_line())
        .await
        .expect("the service did not close stdout within the bound")
        .unwrap()
    {
        rest.push(line);
    }
    let status: ExitStatus = timeout_at(deadline, service.wait())
        .await
        .expect("the service did not exit within the bound")
        .unwrap();
    assert!(status.success(), "exit status {status}, stdout: {rest:?}");

    let [report] = rest.as_slice() else {
        panic!("expected one report line after the address, got {rest:?}");
    };
    let field = |name: &str| -> String {
        let mut words = report.split_whitespace();
        words
            .find(|word| *word == name)
            .and_then(|_| words.next())
            .unwrap_or_else(|| panic!("no {name} in {report:?}"))
            .to_owned()
    };
    let count = |name: &str| -> usize { field(name).parse().unwrap() };
    let oks: usize = logs.iter().map(|log| log.oks).sum();
    let requests: usize = logs.iter().map(|log| log.requests).sum();
    eprintln!(
        "{requests} requests, {oks} answered ok, {answers_at_signal} answers before the signal; {report}"
    );
    assert_eq!(count("completed"), oks, "{report}");
    assert_eq!(count("cancelled"), 0, "{report}");
    assert_eq!(count("panicked"), 0, "{report}");
    assert_eq!(count("timed_out"), 0, "{report}");
    assert_eq!(field("forced"), "false", "{report}");
    assert_eq!(count("connections"), CLIENTS, "{report}");
    assert!(
        oks >= ANSWERS_BEFORE_SIGNAL / 2,
        "too few ok answers for a busy service: {oks}"
    );
}

/// What one client saw.
#[derive(Debug)]
struct ClientLog {
    requests: usize,
    oks: usize,
}

/// What a request should be answered, while the service takes work.
enum Expected {
    Ok(String),
    UnknownCommand,
}

/// The `number`th request of `client`: mostly short `work`, some `echo`,
/// and now and then a command the service does not know.
fn request(client: usize, number: usize) -> (String, Expected) {
    let text = format!("client-{client} request-{number}");
    match number % 7 {
        3 => (format!("hello {text}\n"), Expected::UnknownCommand),
        0 | 5 => (format!("echo {text}\n"), Expected::Ok(text)),
        _ => {
            let milliseconds = 1 + (client * 7 + number * 13) % 20;
            (format!("work {milliseconds} {text}\n"), Expected::Ok(text))
        }
    }
}

/// Sends requests, [`WINDOW`] at a time, until one is answered
/// `error shutting down`; then hangs up and reads every answer still owed.
/// Checks each answer against its request as it arrives.
async fn run_client(
    client: usize,
    address: SocketAddr,
    answers_tx: watch::Sender<usize>,
) -> ClientLog {
    let stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("client {client}: connecting: {error}"));
    stream.set_nodelay(true).unwrap();
    let (read_half, mut write_half) = stream.into_split();
    let mut answers = BufReader::new(read_half).lines();
    let mut in_flight: VecDeque<(String, Expected)> = VecDeque::new();
    let mut log = ClientLog {
        requests: 0,
        oks: 0,
    };
    let mut shutting_down = false;
    loop {
        while !shutting_down && in_flight.len() < WINDOW {
            assert!(
                log.requests < MAX_REQUESTS_PER_CLIENT,
                "client {client}: never told the service is shutting down"
            );
            let (line, expected) = request(client, log.requests);
            write_half.write_all(line.as_bytes()).await.unwrap_or_else(|error| {
                panic!(
                    "client {client}: the service stopped reading with {} requests unanswered: {error}",
                    in_flight.len()
                )
            });
            log.requests += 1;
            in_flight.push_back((line, expected));
        }
        let Some((request, expected)) = in_flight.pop_front() else {
            break;
        };
        let answer = answers
            .next_line()
            .await
            .unwrap_or_else(|error| panic!("client {client}: reading: {error}"))
            .unwrap_or_else(|| {
                panic!(
                    "client {client}: the service hung up with {} requests unanswered, first {request:?}",
                    in_flight.len() + 1
                )
            });
        match expected {
            Expected::UnknownCommand => {
                assert_eq!(
                    answer, "error unknown command",
                    "client {client}: {request:?}"
                );
            }
            Expected::Ok(_) if answer == SHUTTING_DOWN => {
                shutting_down = true;
            }
            Expected::Ok(text) => {
                assert!(
                    !shutting_down,
                    "client {client}: {request:?} answered {answer:?} after {SHUTTING_DOWN:?}"
                );
                assert_eq!(answer, format!("ok {text}"), "client {client}: {request:?}");
                log.oks += 1;
            }
        }
        answers_tx.send_modify(|answers| *answers += 1);
    }
    // Every request is answered: hang up, and the service closes its side
    // without sending anything more.
    write_half.shutdown().await.unwrap();
    let extra = answers
        .next_line()
        .await
        .unwrap_or_else(|error| panic!("client {client}: reading after hanging up: {error}"));
    assert_eq!(extra, None, "client {client}: an answer to no request");
    log
}

fn panic_text(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
            })
            .unwrap_or_else(|| "a panic".to_owned()),
        Err(error) => error.to_string(),
    }
}
