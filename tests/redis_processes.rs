//! The durable queue across real host processes (the `durable_host`
//! example): a host SIGKILLed mid-job, a host SIGSTOPped past its lease and
//! resumed, and a host drained by SIGTERM. Each test starts its own
//! `redis-server` (see `common_redis`).
// The example drains through `Host::shutdown_on_signal`.
#![cfg(all(feature = "redis", feature = "signal"))]

mod common_redis;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common_redis::{RedisServer, bounded, eventually, example_binary};
use taskplan::durable::{Client, JobId, JobState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// One `durable_host` process; killed on drop.
struct HostProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl HostProcess {
    /// Starts a host named `name`; its stdout lines go to `lines` as
    /// `(name, line)`.
    fn spawn(
        redis: &RedisServer,
        name: &str,
        lease_ms: u64,
        grace_ms: u64,
        lines: &mpsc::UnboundedSender<(String, String)>,
    ) -> HostProcess {
        let mut child = Command::new(example_binary("durable_host"))
            .args([
                &redis.url(),
                name,
                &lease_ms.to_string(),
                &grace_ms.to_string(),
                "2",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start durable_host");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, name) = (lines.clone(), name.to_owned());
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = tx.send((name.clone(), line));
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, log) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf).await {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        HostProcess { child, stderr }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the host is running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// Waits for the next line equal to `line` from any host; returns the host.
async fn expect(lines: &mut mpsc::UnboundedReceiver<(String, String)>, line: &str) -> String {
    loop {
        let (host, got) = lines.recv().await.expect("a host's output ended");
        if got == line {
            return host;
        }
    }
}

async fn until_done(client: &Client, id: JobId) -> taskplan::durable::JobInfo {
    eventually(&format!("job {id} to be done"), || async {
        let info = client.job_info(id).await.unwrap()?;
        (info.state == JobState::Done).then_some(info)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_process_loses_its_job_to_the_other() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let (tx, mut lines) = mpsc::unbounded_channel();
        let mut hosts = [
            (
                "a".to_owned(),
                HostProcess::spawn(&redis, "a", 600, 1000, &tx),
            ),
            (
                "b".to_owned(),
                HostProcess::spawn(&redis, "b", 600, 1000, &tx),
            ),
        ];
        expect(&mut lines, "ready").await;
        expect(&mut lines, "ready").await;

        let id = client.job("sleep", &1500u64).enqueue().await.unwrap();
        let owner = expect(&mut lines, &format!("start {id} 1")).await;
        let (_, owner_process) = hosts.iter_mut().find(|(name, _)| *name == owner).unwrap();
        owner_process.signal("KILL");

        let survivor = expect(&mut lines, &format!("start {id} 2")).await;
        assert_ne!(survivor, owner);
        assert_eq!(expect(&mut lines, &format!("done {id} 2")).await, survivor);
        let info = until_done(&client, id).await;
        assert_eq!((info.attempts, info.fence), (2, 2));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stopped_past_its_lease_is_fenced_out_when_it_resumes() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let (tx, mut lines) = mpsc::unbounded_channel();
        let hosts = [
            (
                "a".to_owned(),
                HostProcess::spawn(&redis, "a", 600, 1000, &tx),
            ),
            (
                "b".to_owned(),
                HostProcess::spawn(&redis, "b", 600, 1000, &tx),
            ),
        ];
        expect(&mut lines, "ready").await;
        expect(&mut lines, "ready").await;

        let id = client.job("sleep", &1000u64).enqueue().await.unwrap();
        let owner = expect(&mut lines, &format!("start {id} 1")).await;
        let stopped = &hosts.iter().find(|(name, _)| *name == owner).unwrap().1;
        stopped.signal("STOP");

        // Its lease runs out; the other host takes the job.
        let other = expect(&mut lines, &format!("start {id} 2")).await;
        assert_ne!(other, owner);
        stopped.signal("CONT");

        // The resumed host learns it lost the lease (and stops the job), or
        // its late ack is refused: either way its result is not recorded.
        eventually("the resumed host to be fenced out", || async {
            let log = stopped.log();
            (log.contains("lease lost") || log.contains("ack refused")).then_some(())
        })
        .await;
        assert_eq!(expect(&mut lines, &format!("done {id} 2")).await, other);
        let info = until_done(&client, id).await;
        assert_eq!((info.attempts, info.fence), (2, 2));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_host_and_puts_the_unfinished_job_back() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let (tx, mut lines) = mpsc::unbounded_channel();
        let mut host = HostProcess::spawn(&redis, "a", 5000, 400, &tx);
        expect(&mut lines, "ready").await;

        let short = client.job("sleep", &200u64).enqueue().await.unwrap();
        let long = client.job("sleep", &60_000u64).enqueue().await.unwrap();
        expect(&mut lines, &format!("start {short} 1")).await;
        expect(&mut lines, &format!("start {long} 1")).await;
        host.signal("TERM");

        // The short job finishes within the grace; the long one is put back.
        expect(&mut lines, &format!("done {short} 1")).await;
        expect(&mut lines, "drained completed 1 cancelled 1").await;
        let status = host.child.wait().await.unwrap();
        assert!(status.success(), "{status}");
        until_done(&client, short).await;
        let info = client.job_info(long).await.unwrap().unwrap();
        assert_eq!((info.state, info.attempts), (JobState::Ready, 0));
    })
    .await
}
