//! The durable queue against a real Redis: enqueue, claim, run, ack; order
//! by priority then FIFO; leases that run out; fencing; retries to the dead
//! letters; jobs that cannot run; delayed jobs; the pub/sub fast paths for
//! cancels and enqueue wakeups, and their fallbacks. Each test starts its own
//! `redis-server` (see `common_redis`).
#![cfg(feature = "redis")]

mod common;
mod common_redis;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bounded;
use common_redis::{Proxy, RedisServer, eventually};
use taskplan::Plan;
use taskplan::durable::{Client, Host, JobContext, JobId, JobState};
use tokio::sync::{Semaphore, mpsc};

/// Short settings so tests stay fast.
const LEASE: Duration = Duration::from_millis(600);
const POLL: Duration = Duration::from_millis(20);

fn host(plan: &Plan, client: &Client) -> taskplan::durable::HostBuilder {
    Host::builder(plan, client)
        .lease(LEASE)
        .poll_interval(POLL)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
}

async fn state_of(client: &Client, id: JobId) -> Option<JobState> {
    client.job_info(id).await.unwrap().map(|i| i.state)
}

async fn until_state(client: &Client, id: JobId, state: JobState) {
    eventually(&format!("job {id} to be {state:?}"), || async {
        (state_of(client, id).await == Some(state)).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_claim_run_ack() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(2).name("ack").build().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let host = host(&plan, &client)
            .register("add", move |(a, b): (u32, u32), cx: JobContext| {
                let tx = tx.clone();
                async move {
                    tx.send((cx.id(), cx.attempt(), a + b)).unwrap();
                    Ok::<(), String>(())
                }
            })
            .start();

        let id = client
            .job("add", &(2, 3))
            .tag("math")
            .enqueue()
            .await
            .unwrap();
        let (ran, attempt, sum) = rx.recv().await.unwrap();
        assert_eq!((ran, attempt, sum), (id, 1, 5));
        until_state(&client, id, JobState::Done).await;

        let info = client.job_info(id).await.unwrap().unwrap();
        assert_eq!(
            (info.attempts, info.fence, info.tag.as_deref()),
            (1, 1, Some("math"))
        );
        let counts = client.counts().await.unwrap();
        assert_eq!(
            (counts.ready, counts.leased, counts.delayed, counts.dead),
            (0, 0, 0, 0)
        );
        // The job ran as an ordinary plan task, with its tag.
        let report = host.shutdown(Duration::from_secs(1)).await;
        assert_eq!(report.completed, 1);
        assert!(rx.try_recv().is_err(), "ran once");
    })
    .await
}

/// Enqueues one `log` job per `(name, priority)`, in order.
async fn enqueue_logs(client: &Client, jobs: &[(&str, i32)]) {
    for &(name, priority) in jobs {
        client
            .job("log", name)
            .priority(priority)
            .enqueue()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_runs_by_priority_then_fifo() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        // Enqueued before any host runs: (name, priority).
        let jobs = [("a", 0), ("b", 5), ("c", 0), ("d", -3), ("e", 5), ("f", 1)];
        enqueue_logs(&client, &jobs).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&order);
        let plan = Plan::builder().workers(1).build().unwrap();
        let host = host(&plan, &client)
            .register("log", move |name: String, _| {
                seen.lock().unwrap().push(name);
                async { Ok::<(), String>(()) }
            })
            .start();
        eventually("all six jobs to run", || async {
            (order.lock().unwrap().len() == 6).then_some(())
        })
        .await;
        assert_eq!(*order.lock().unwrap(), ["b", "e", "f", "a", "c", "d"]);
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_claim_in_cluster_order() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        // Claim order: b e | f a | c d (priority, then FIFO across pairs).
        let jobs = [("a", 0), ("b", 5), ("c", 0), ("d", -3), ("e", 5), ("f", 1)];
        enqueue_logs(&client, &jobs).await;
        let started = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let make_host = |name: &str| {
            let plan = Plan::builder().workers(1).name(name).build().unwrap();
            let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
            let host = host(&plan, &client)
                .name(name)
                // One job at a time, none prefetched: the pairs below.
                .prefetch(0)
                .register("log", move |job: String, _| {
                    let (started, gate) = (Arc::clone(&started), Arc::clone(&gate));
                    async move {
                        started.lock().unwrap().push(job);
                        gate.acquire().await.unwrap().forget();
                        Ok::<(), String>(())
                    }
                })
                .start();
            (plan, host)
        };
        let (plan_1, host_1) = make_host("host-1");
        let (plan_2, host_2) = make_host("host-2");
        // Each host holds one job at a time, so the jobs start in pairs, and
        // each pair is the next two in cluster order.
        for (round, expected) in [["b", "e"], ["a", "f"], ["c", "d"]].iter().enumerate() {
            let pair = eventually("two more jobs to start", || async {
                let started = started.lock().unwrap();
                (started.len() == 2 * (round + 1)).then(|| started[2 * round..].to_vec())
            })
            .await;
            let mut pair = pair;
            pair.sort();
            assert_eq!(pair, expected, "round {round}");
            gate.add_permits(2);
        }
        eventually("both plans to be idle", || async {
            let done = plan_1.stats().completed + plan_2.stats().completed;
            (done == 6).then_some(())
        })
        .await;
        // Both hosts took part.
        assert!(plan_1.stats().completed > 0 && plan_2.stats().completed > 0);
        host_1.shutdown(Duration::from_secs(1)).await;
        host_2.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_that_runs_out_puts_the_job_back_in_its_place_and_fences_the_old_owner() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let first = client.job("log", "first").enqueue().await.unwrap();
        let old = client
            .claim(Duration::from_millis(300), "dead-host")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((old.id(), old.fence(), old.attempt()), (first, 1, 1));
        // Enqueued after the claim: it would run first if the expired job
        // went to the back of the queue.
        let second = client.job("log", "second").enqueue().await.unwrap();

        // The old owner never renews; Redis puts the job back.
        eventually("the lease to run out", || async {
            client.maintain().await.unwrap();
            (state_of(&client, first).await == Some(JobState::Ready)).then_some(())
        })
        .await;
        let info = client.job_info(first).await.unwrap().unwrap();
        assert!(info.last_error.unwrap().contains("lease ran out"));

        let new = client
            .claim(Duration::from_secs(30), "live-host")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (new.id(), new.fence(), new.attempt()),
            (first, 2, 2),
            "back in its place"
        );

        // Every call of the old owner is refused; the new owner's are not.
        assert!(client.ack(&old).await.unwrap_err().is_stale());
        assert!(client.release(&old).await.unwrap_err().is_stale());
        let fail = client.fail(&old, "late", Duration::ZERO, false).await;
        assert!(fail.unwrap_err().is_stale());
        let renewed = client.renew(&[(first, old.fence())], LEASE).await.unwrap();
        assert_eq!(renewed.lost, [(first, old.fence())]);
        let renewed = client.renew(&[(first, new.fence())], LEASE).await.unwrap();
        assert!(renewed.lost.is_empty() && renewed.cancelled.is_empty());
        client.ack(&new).await.unwrap();
        assert_eq!(state_of(&client, first).await, Some(JobState::Done));

        let next = client.claim(LEASE, "live-host").await.unwrap().unwrap();
        assert_eq!(next.id(), second);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_dies_mid_job_loses_it_to_another_host() {
    let redis = RedisServer::start();
    let url = redis.url();
    // The dying host runs on its own runtime, in its own thread; dropping
    // that runtime drops the host mid-job with no ack and no release, as a
    // killed process would.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (die_tx, die_rx) = std::sync::mpsc::channel::<()>();
    let dying = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = Client::connect(&url).await.unwrap();
            let plan = Plan::builder().workers(1).build().unwrap();
            let host = host(&plan, &client)
                .name("dying")
                .register("work", move |_: (), cx: JobContext| {
                    started_tx.send(cx.attempt()).unwrap();
                    std::future::pending::<Result<(), String>>()
                })
                .start();
            std::mem::forget(host); // No drop logic runs either.
        });
        die_rx.recv().unwrap();
        rt.shutdown_background();
    });

    bounded(async {
        let client = redis.client().await;
        let id = client.job("work", &()).enqueue().await.unwrap();
        assert_eq!(
            tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
                .await
                .unwrap(),
            1
        );
        die_tx.send(()).unwrap();
        dying.join().unwrap();

        let (tx, mut rx) = mpsc::unbounded_channel();
        let plan = Plan::builder().workers(1).build().unwrap();
        let host = host(&plan, &client)
            .name("survivor")
            .register("work", move |_: (), cx: JobContext| {
                let tx = tx.clone();
                async move {
                    tx.send(cx.attempt()).unwrap();
                    Ok::<(), String>(())
                }
            })
            .start();
        assert_eq!(
            rx.recv().await.unwrap(),
            2,
            "the survivor runs the second attempt"
        );
        until_state(&client, id, JobState::Done).await;
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_keeps_its_lease_by_renewal() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let runs = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&runs);
        let plan = Plan::builder().workers(2).build().unwrap();
        // Renewed twenty times a lease, so only a stall of most of a lease
        // (2 s) could lose it on a loaded machine; the job runs two leases.
        let host = host(&plan, &client)
            .lease(Duration::from_secs(2))
            .renew_interval(Duration::from_millis(100))
            .register("slow", move |_: (), _| {
                counted.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Ok::<(), String>(())
                }
            })
            .start();
        let id = client.job("slow", &()).enqueue().await.unwrap();
        until_state(&client, id, JobState::Done).await;
        let info = client.job_info(id).await.unwrap().unwrap();
        assert_eq!((info.attempts, runs.load(Ordering::SeqCst)), (1, 1));
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_retry_then_go_to_the_dead_letters_and_can_be_retried() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let calls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&calls);
        let plan = Plan::builder().workers(2).build().unwrap();
        let host = host(&plan, &client)
            .register("flaky", move |fail_until: u32, _| {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= fail_until {
                        Err(format!("boom {n}"))
                    } else {
                        Ok(())
                    }
                }
            })
            .register("panics", |_: (), _| async {
                panic!("kaboom");
                #[allow(unreachable_code)]
                Ok::<(), String>(())
            })
            .register("slow", |_: (), _| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .start();

        // Fails on its 3 attempts: dead, with the last reason.
        let id = client
            .job("flaky", &3u32)
            .max_attempts(3)
            .enqueue()
            .await
            .unwrap();
        until_state(&client, id, JobState::Dead).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let dead = client.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
        assert_eq!(dead[0].reason, "failed: boom 3");

        // Retried from the dead letters, it runs again (and now succeeds).
        assert!(client.retry_dead(id).await.unwrap());
        assert!(!client.retry_dead(id).await.unwrap(), "no longer dead");
        until_state(&client, id, JobState::Done).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // A panic and a timeout are failed attempts too.
        let panics = client
            .job("panics", &())
            .max_attempts(2)
            .enqueue()
            .await
            .unwrap();
        let slow = client
            .job("slow", &())
            .timeout(Duration::from_millis(50))
            .max_attempts(1)
            .enqueue()
            .await
            .unwrap();
        until_state(&client, panics, JobState::Dead).await;
        until_state(&client, slow, JobState::Dead).await;
        let panicked = client.job_info(panics).await.unwrap().unwrap();
        assert_eq!(panicked.attempts, 2);
        assert_eq!(panicked.last_error.as_deref(), Some("panicked: kaboom"));
        let timed_out = client.job_info(slow).await.unwrap().unwrap();
        assert_eq!(
            timed_out.last_error.as_deref(),
            Some("timed out after 50ms")
        );
        let stats = plan.stats();
        assert_eq!((stats.panicked, stats.timed_out), (2, 1));
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

/// A payload type whose `Deserialize` panics: user code the host must
/// contain.
struct Explodes;

impl<'de> serde::Deserialize<'de> for Explodes {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("a Deserialize impl that panics")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_and_bad_payloads_go_to_the_dead_letters_at_once() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let unknown = client
            .job("nobody-runs-this", &1)
            .max_attempts(5)
            .enqueue()
            .await
            .unwrap();
        let bad = client
            .job("add", "not a pair")
            .max_attempts(5)
            .enqueue()
            .await
            .unwrap();
        let explodes = client.job("explodes", &()).enqueue().await.unwrap();
        let good = client.job("add", &(1, 2)).enqueue().await.unwrap();
        let plan = Plan::builder().workers(1).build().unwrap();
        let host = host(&plan, &client)
            .register("add", |(a, b): (u32, u32), _| async move {
                let _ = a + b;
                Ok::<(), String>(())
            })
            .register("explodes", |_: Explodes, _| async { Ok::<(), String>(()) })
            .start();
        until_state(&client, good, JobState::Done).await;
        until_state(&client, unknown, JobState::Dead).await;
        until_state(&client, bad, JobState::Dead).await;
        until_state(&client, explodes, JobState::Dead).await;
        let dead = client.dead_letters().await.unwrap();
        let reason = |id| dead.iter().find(|d| d.id == id).unwrap();
        assert_eq!(reason(unknown).attempts, 1, "not retried");
        assert!(
            reason(unknown)
                .reason
                .contains("no handler is registered for kind `nobody-runs-this`")
        );
        assert_eq!(reason(bad).attempts, 1, "not retried");
        assert!(
            reason(bad)
                .reason
                .contains("payload of this `add` job does not decode")
        );
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_is_not_claimed_before_it_is_due() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let before = Instant::now();
        let later = client
            .job("log", "later")
            .run_after(Duration::from_millis(500))
            .enqueue()
            .await
            .unwrap();
        let now = client.job("log", "now").enqueue().await.unwrap();
        assert_eq!(state_of(&client, later).await, Some(JobState::Delayed));
        let first = client.claim(LEASE, "t").await.unwrap().unwrap();
        assert_eq!(first.id(), now);
        assert!(client.claim(LEASE, "t").await.unwrap().is_none());
        let claimed = eventually("the delayed job to be claimable", || async {
            client.claim(LEASE, "t").await.unwrap()
        })
        .await;
        assert_eq!(claimed.id(), later);
        assert!(
            before.elapsed() >= Duration::from_millis(500),
            "{:?}",
            before.elapsed()
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_a_missing_server_are_clear_errors() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let zero = client
            .job("log", "x")
            .max_attempts(0)
            .enqueue()
            .await
            .unwrap_err();
        assert!(zero.is_invalid(), "{zero}");
        let empty = client.job("", "x").enqueue().await.unwrap_err();
        assert!(empty.is_invalid(), "{empty}");
        let map = std::collections::HashMap::from([((1, 2), 3)]);
        let unencodable = client.job("log", &map).enqueue().await.unwrap_err();
        assert!(unencodable.is_encode(), "{unencodable}");
        assert_eq!(
            client.counts().await.unwrap().ready,
            0,
            "nothing was enqueued"
        );
    })
    .await;
    let port = redis.port();
    drop(redis);
    let down = Client::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(down.is_redis(), "{down}");
    assert!(
        down.to_string().contains("check that the server is up"),
        "{down}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_moves_a_tag_in_front_newest_promotion_first() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let high = client
            .job("log", "high")
            .priority(5)
            .enqueue()
            .await
            .unwrap();
        let ui_1 = client.job("log", "ui 1").tag("ui").enqueue().await.unwrap();
        let plain = client.job("log", "plain").enqueue().await.unwrap();
        let ui_2 = client
            .job("log", "ui 2")
            .tag("ui")
            .priority(-1)
            .enqueue()
            .await
            .unwrap();
        let bg = client.job("log", "bg").tag("bg").enqueue().await.unwrap();
        let ui_3 = client
            .job("log", "ui 3")
            .tag("ui")
            .priority(3)
            .enqueue()
            .await
            .unwrap();

        assert_eq!(client.promote("ui").await.unwrap(), 3);
        assert_eq!(client.promote("bg").await.unwrap(), 1);
        assert_eq!(client.promote("nothing").await.unwrap(), 0);
        let mut order = Vec::new();
        while let Some(job) = client.claim(LEASE, "t").await.unwrap() {
            order.push(job.id());
        }
        // bg (newest promotion), then ui by priority then FIFO, then the rest.
        assert_eq!(order, [bg, ui_3, ui_1, ui_2, high, plain]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_and_cancel_tag_work_in_chunks_on_a_large_tag() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let first = client.job("log", "plain").enqueue().await.unwrap();
        let mut bulk = Vec::new();
        for i in 0..1200 {
            bulk.push(client.job("log", &i).tag("bulk").enqueue().await.unwrap());
        }
        assert_eq!(client.promote("bulk").await.unwrap(), 1200);
        let next = client.claim(LEASE, "t").await.unwrap().unwrap();
        assert_eq!(next.id(), bulk[0], "the oldest of the promoted tag");
        assert_eq!(client.cancel_tag("bulk").await.unwrap(), 1200);
        let counts = client.counts().await.unwrap();
        assert_eq!(
            (counts.ready, counts.leased),
            (1, 1),
            "only the untagged job is ready"
        );
        assert_eq!(
            state_of(&client, bulk[1199]).await,
            Some(JobState::Cancelled)
        );
        assert_eq!(client.claim(LEASE, "t").await.unwrap().unwrap().id(), first);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_tag_stops_a_job_running_on_a_host_within_a_second() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(1).build().unwrap();
        let host = host(&plan, &client)
            .lease(Duration::from_secs(30)) // Renewals still come every 500 ms.
            // The queued job stays in Redis's ready set (not prefetched),
            // so cancel_tag ends it at once.
            .prefetch(0)
            .register("stuck", |_: (), _| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .register("quick", |_: (), _| async { Ok::<(), String>(()) })
            .start();
        let running = client
            .job("stuck", &())
            .tag("user-7")
            .enqueue()
            .await
            .unwrap();
        until_state(&client, running, JobState::Running).await;
        let queued = client
            .job("quick", &())
            .tag("user-7")
            .enqueue()
            .await
            .unwrap();
        let delayed = client
            .job("quick", &())
            .tag("user-7")
            .run_after(Duration::from_secs(60))
            .enqueue()
            .await
            .unwrap();
        let other = client
            .job("quick", &())
            .tag("user-8")
            .priority(-1)
            .enqueue()
            .await
            .unwrap();

        let asked = Instant::now();
        assert_eq!(client.cancel_tag("user-7").await.unwrap(), 3);
        assert_eq!(state_of(&client, queued).await, Some(JobState::Cancelled));
        assert_eq!(state_of(&client, delayed).await, Some(JobState::Cancelled));
        until_state(&client, running, JobState::Cancelled).await;
        let took = asked.elapsed();
        eprintln!("cancel_tag stopped the running job in {took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(plan.stats().cancelled, 1, "stopped on its host");
        // The host goes on with other work.
        until_state(&client, other, JobState::Done).await;
        let counts = client.counts().await.unwrap();
        assert_eq!((counts.ready, counts.delayed, counts.leased), (0, 0, 0));
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_every_host_per_tag_and_in_all() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(2).build().unwrap();
        let host = host(&plan, &client)
            .register("ok", |_: (), _| async { Ok::<(), String>(()) })
            .register("fails", |_: (), _| async { Err("no") })
            .start();
        let a_1 = client.job("ok", &()).tag("a").enqueue().await.unwrap();
        let a_2 = client.job("ok", &()).tag("a").enqueue().await.unwrap();
        let a_3 = client
            .job("fails", &())
            .tag("a")
            .max_attempts(2)
            .enqueue()
            .await
            .unwrap();
        let b = client
            .job("ok", &())
            .tag("b")
            .run_after(Duration::from_secs(60))
            .enqueue()
            .await
            .unwrap();
        let plain = client.job("ok", &()).enqueue().await.unwrap();
        for id in [a_1, a_2, plain] {
            until_state(&client, id, JobState::Done).await;
        }
        until_state(&client, a_3, JobState::Dead).await;
        assert_eq!(client.cancel_tag("b").await.unwrap(), 1);
        assert_eq!(state_of(&client, b).await, Some(JobState::Cancelled));

        let a = client.tag_stats("a").await.unwrap();
        assert_eq!(
            (
                a.enqueued,
                a.claimed,
                a.completed,
                a.failed,
                a.dead,
                a.cancelled
            ),
            (3, 4, 2, 2, 1, 0)
        );
        let b = client.tag_stats("b").await.unwrap();
        assert_eq!((b.enqueued, b.claimed, b.cancelled), (1, 0, 1));
        assert_eq!(client.tag_stats("never").await.unwrap(), Default::default());
        let all = client.stats().await.unwrap();
        assert_eq!(
            (
                all.enqueued,
                all.claimed,
                all.completed,
                all.failed,
                all.dead,
                all.cancelled
            ),
            (5, 5, 3, 2, 1, 1)
        );
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_counts_are_gauges_of_a_tags_ready_delayed_and_running_jobs() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let lease = Duration::from_secs(30);
        let mut ready = Vec::new();
        for _ in 0..3 {
            ready.push(client.job("log", &()).tag("t").enqueue().await.unwrap());
        }
        for _ in 0..2 {
            client
                .job("log", &())
                .tag("t")
                .run_after(Duration::from_secs(60))
                .enqueue()
                .await
                .unwrap();
        }
        client.job("log", &()).tag("u").enqueue().await.unwrap();
        let gauges = |ready, delayed, running| (ready, delayed, running);
        let of = |c: taskplan::durable::TagCounts| (c.ready, c.delayed, c.running);

        assert_eq!(of(client.tag_counts("t").await.unwrap()), gauges(3, 2, 0));
        let claimed = client.claim(lease, "h-1").await.unwrap().unwrap();
        assert_eq!(claimed.id(), ready[0]);
        let t = client.tag_counts("t").await.unwrap();
        assert_eq!((of(t), t.queued()), (gauges(2, 2, 1), 4));
        let info = client.job_info(ready[0]).await.unwrap().unwrap();
        assert_eq!(info.owner.as_deref(), Some("h-1"));

        // Acknowledged: no longer counted; its record keeps who ended it.
        client.ack(&claimed).await.unwrap();
        assert_eq!(of(client.tag_counts("t").await.unwrap()), gauges(2, 2, 0));
        let info = client.job_info(ready[0]).await.unwrap().unwrap();
        assert_eq!(
            (info.state, info.owner.as_deref()),
            (JobState::Done, Some("h-1"))
        );
        assert_eq!(
            client.job_info(ready[1]).await.unwrap().unwrap().owner,
            None
        );

        assert_eq!(of(client.tag_counts("u").await.unwrap()), gauges(1, 0, 0));
        assert_eq!(
            of(client.tag_counts("never").await.unwrap()),
            gauges(0, 0, 0)
        );
        assert_eq!(client.cancel_tag("t").await.unwrap(), 4);
        assert_eq!(of(client.tag_counts("t").await.unwrap()), gauges(0, 0, 0));

        // A tag larger than one script's batch is counted in chunks.
        for _ in 0..700 {
            client.job("log", &()).tag("big").enqueue().await.unwrap();
        }
        assert_eq!(
            of(client.tag_counts("big").await.unwrap()),
            gauges(700, 0, 0)
        );
    })
    .await
}

/// Reports through a channel when the handler's future is dropped, which is
/// how a cancelled plan task ends.
struct DropReport(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropReport {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_tag_reaches_a_running_job_by_pubsub_long_before_the_next_renewal() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(1).build().unwrap();
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
        let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
        let host = host(&plan, &client)
            // Renewals every 20 s: only pub/sub can stop the job in time.
            .lease(Duration::from_secs(60))
            .renew_interval(Duration::from_secs(20))
            .register("stuck", move |_: (), _| {
                let guard = DropReport(dropped_tx.lock().unwrap().take());
                let started = started_tx.clone();
                async move {
                    let _guard = guard;
                    let _ = started.send(());
                    std::future::pending::<()>().await;
                    Ok::<(), String>(())
                }
            })
            .start();
        let id = client
            .job("stuck", &())
            .tag("user-7")
            .enqueue()
            .await
            .unwrap();
        started.recv().await.unwrap();

        let asked = Instant::now();
        assert_eq!(client.cancel_tag("user-7").await.unwrap(), 1);
        tokio::time::timeout(Duration::from_secs(5), dropped)
            .await
            .expect("the handler was not cancelled within 5 s")
            .unwrap();
        let took = asked.elapsed();
        eprintln!("pub/sub stopped the running job in {took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Its host records it as cancelled, not back in the queue.
        until_state(&client, id, JobState::Cancelled).await;
        assert_eq!(plan.stats().cancelled, 1);
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_reports_a_cancelled_job_without_pubsub() {
    // The fallback path alone: a hand-written worker that never subscribes
    // learns of the cancel from its renewal.
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let id = client.job("k", &()).tag("t").enqueue().await.unwrap();
        let job = client.claim(LEASE, "by-hand").await.unwrap().unwrap();
        assert_eq!(job.id(), id);
        assert_eq!(client.cancel_tag("t").await.unwrap(), 1);
        let renewed = client.renew(&[(id, job.fence())], LEASE).await.unwrap();
        assert_eq!(
            (renewed.cancelled, renewed.lost),
            (vec![(id, job.fence())], vec![])
        );
        client.release(&job).await.unwrap();
        assert_eq!(state_of(&client, id).await, Some(JobState::Cancelled));
    })
    .await
}

/// A host that runs `note` jobs (a number each, sent to the receiver) and
/// polls every 30 s: only an event can start a job on it in time.
fn idle_note_host(plan: &Plan, client: &Client) -> (Host, mpsc::UnboundedReceiver<u32>) {
    let (ran_tx, ran) = mpsc::unbounded_channel();
    let host = host(plan, client)
        .poll_interval(Duration::from_secs(30))
        .register("note", move |n: u32, _| {
            let ran = ran_tx.clone();
            async move {
                let _ = ran.send(n);
                Ok::<(), String>(())
            }
        })
        .start();
    (host, ran)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_host_is_woken_by_an_enqueue_long_before_its_poll() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(1).build().unwrap();
        let (host, mut ran) = idle_note_host(&plan, &client);
        // Several rounds, each enqueued once the host has gone idle again
        // (its last job done), so each one has to wake it.
        for n in 0..3u32 {
            let asked = Instant::now();
            let id = client.job("note", &n).enqueue().await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), ran.recv())
                .await
                .expect("the idle host did not start the job within 5 s");
            assert_eq!(got, Some(n));
            eprintln!(
                "round {n}: the idle host started the job in {:?}",
                asked.elapsed()
            );
            until_state(&client, id, JobState::Done).await;
        }
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_host_resubscribes_after_redis_restarts() {
    let mut redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(1).build().unwrap();
        let (host, mut ran) = idle_note_host(&plan, &client);
        redis.restart();
        // The client reconnects by itself; the host's listener resubscribes.
        let id = eventually("an enqueue after the restart", || async {
            client.job("note", &7u32).enqueue().await.ok()
        })
        .await;
        let got = tokio::time::timeout(Duration::from_secs(10), ran.recv())
            .await
            .expect("the host did not start the job within 10 s of the restart");
        assert_eq!(got, Some(7));
        until_state(&client, id, JobState::Done).await;
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

/// Connects as a Redis user that may run every command but subscribe to no
/// channel, so a host on it never hears the queue's events and must work
/// by the fallbacks alone (its listener keeps retrying, refused).
async fn client_without_pubsub(redis: &RedisServer) -> Client {
    let admin = redis::Client::open(redis.url()).unwrap();
    let mut con = admin.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "deaf",
            "on",
            ">deafpass",
            "~*",
            "+@all",
            "resetchannels",
        ])
        .query_async(&mut con)
        .await
        .unwrap();
    let url = format!("redis://deaf:deafpass@127.0.0.1:{}/", redis.port());
    Client::connect(&url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pubsub_a_host_still_cancels_by_renewal_and_claims_by_polling() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let deaf = client_without_pubsub(&redis).await;
        let plan = Plan::builder().workers(1).build().unwrap();
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let host = Host::builder(&plan, &deaf)
            .lease(Duration::from_secs(60))
            .renew_interval(Duration::from_millis(300))
            .poll_interval(Duration::from_millis(300))
            .register("stuck", move |_: (), _| {
                let started = started_tx.clone();
                async move {
                    let _ = started.send(());
                    std::future::pending::<()>().await;
                    Ok::<(), String>(())
                }
            })
            .start();
        // Claimed by polling.
        let id = client
            .job("stuck", &())
            .tag("user-7")
            .enqueue()
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), started.recv())
            .await
            .expect("the host did not claim by polling within 5 s")
            .unwrap();
        // Nobody hears the events: the host's listener was refused.
        let admin = redis::Client::open(redis.url()).unwrap();
        let mut con = admin.get_multiplexed_async_connection().await.unwrap();
        let (_, listeners): (String, u32) = redis::cmd("PUBSUB")
            .arg(&["NUMSUB", "taskplan:events"])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(listeners, 0);
        // Stopped by renewal.
        let asked = Instant::now();
        assert_eq!(client.cancel_tag("user-7").await.unwrap(), 1);
        until_state(&client, id, JobState::Cancelled).await;
        let took = asked.elapsed();
        eprintln!("renewal alone stopped the running job in {took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(plan.stats().cancelled, 1);
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_tells_a_stale_attempt_from_the_current_one_of_the_same_job() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let id = client.job("k", &()).tag("t").enqueue().await.unwrap();
        let old = client
            .claim(Duration::from_millis(200), "h")
            .await
            .unwrap()
            .unwrap();
        eventually("the lease to run out", || async {
            client.maintain().await.unwrap();
            (state_of(&client, id).await == Some(JobState::Ready)).then_some(())
        })
        .await;
        let new = client
            .claim(Duration::from_secs(30), "h")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((new.id(), new.fence()), (id, old.fence() + 1));
        // One host holding both attempts renews both in one call: only the
        // old one is lost, and a cancel names the current one.
        assert_eq!(client.cancel_tag("t").await.unwrap(), 1);
        let both = [(id, old.fence()), (id, new.fence())];
        let renewed = client.renew(&both, Duration::from_secs(30)).await.unwrap();
        assert_eq!(renewed.lost, [(id, old.fence())]);
        assert_eq!(renewed.cancelled, [(id, new.fence())]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_reclaims_a_job_after_a_stall_keeps_only_the_new_attempt() {
    // The host reaches Redis through a proxy the test holds shut past the
    // job's lease: a stall. The lease runs out, the host claims the job
    // again, and a late renewal reply and the old attempt's end must touch
    // neither the new attempt's lease nor its run.
    let redis = RedisServer::start();
    let proxy = Proxy::start(&redis).await;
    bounded(async {
        let client = redis.client().await;
        let via_proxy = proxy.client().await;
        let lease = Duration::from_secs(2);
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let second_started = Arc::new(tokio::sync::Notify::new());
        let later_runs = Arc::new(AtomicU32::new(0));
        let plan = Plan::builder().workers(2).build().unwrap();
        let host = host(&plan, &via_proxy)
            .lease(lease)
            .renew_interval(Duration::from_millis(100))
            .register("twice", {
                let second_started = Arc::clone(&second_started);
                let later_runs = Arc::clone(&later_runs);
                move |_: (), cx: JobContext| {
                    let started_tx = started_tx.clone();
                    let second_started = Arc::clone(&second_started);
                    let later_runs = Arc::clone(&later_runs);
                    async move {
                        let _ = started_tx.send((cx.attempt(), cx.fence()));
                        match cx.attempt() {
                            // Ends (Ok) only once the second attempt runs:
                            // its end must not unregister the second.
                            1 => second_started.notified().await,
                            // Runs two leases: it must be renewed meanwhile.
                            2 => {
                                second_started.notify_one();
                                tokio::time::sleep(Duration::from_secs(4)).await;
                            }
                            _ => {
                                later_runs.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok::<(), String>(())
                    }
                }
            })
            .start();
        let id = client
            .job("twice", &())
            .max_attempts(5)
            .enqueue()
            .await
            .unwrap();
        assert_eq!(started.recv().await, Some((1, 1)));

        proxy.pause();
        eventually("the stalled host's lease to run out", || async {
            client.maintain().await.unwrap();
            (state_of(&client, id).await == Some(JobState::Ready)).then_some(())
        })
        .await;
        proxy.resume();
        // A claim the host sent during the stall comes back with a lease
        // this host counts from the send, so it may find it spent and put
        // the job back unstarted (no attempt counted) before claiming it
        // again: the fence may have moved on by more than one.
        let (attempt, fence) = started.recv().await.unwrap();
        assert_eq!(attempt, 2);
        assert!(fence >= 2, "fence {fence}");

        until_state(&client, id, JobState::Done).await;
        let info = client.job_info(id).await.unwrap().unwrap();
        assert_eq!(
            (info.attempts, info.fence, later_runs.load(Ordering::SeqCst)),
            (2, fence, 0),
            "the second attempt kept its lease and was acknowledged"
        );
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_dead_letter_wakes_an_idle_host_long_before_its_poll() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(1).build().unwrap();
        let runs = Arc::new(AtomicU32::new(0));
        let host = host(&plan, &client)
            // Only the retry's message can start the job again in time.
            .poll_interval(Duration::from_secs(60))
            .register("once", {
                let runs = Arc::clone(&runs);
                move |_: (), _| {
                    let run = runs.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if run == 0 {
                            Err("first run fails".to_owned())
                        } else {
                            Ok(())
                        }
                    }
                }
            })
            .start();
        let id = client
            .job("once", &())
            .max_attempts(1)
            .enqueue()
            .await
            .unwrap();
        until_state(&client, id, JobState::Dead).await;
        // Let the host go idle on its 60 s poll.
        eventually("the host to be idle", || async {
            (host.running() == 0).then_some(())
        })
        .await;
        assert!(client.retry_dead(id).await.unwrap());
        until_state(&client, id, JobState::Done).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_many_returns_the_best_jobs_in_queue_order() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        // Queue order: b e f a c d (priority, then FIFO).
        let jobs = [("a", 0), ("b", 5), ("c", 0), ("d", -3), ("e", 5), ("f", 1)];
        enqueue_logs(&client, &jobs).await;
        let lease = Duration::from_secs(30);
        let payloads = |claimed: &[taskplan::durable::Claimed]| {
            claimed
                .iter()
                .map(|j| serde_json::from_str::<String>(j.payload()).unwrap())
                .collect::<Vec<_>>()
        };
        let first = client.claim_many(lease, "h", 4).await.unwrap();
        assert_eq!(payloads(&first), ["b", "e", "f", "a"]);
        assert!(first.iter().all(|j| (j.fence(), j.attempt()) == (1, 1)));
        let rest = client.claim_many(lease, "h", 4).await.unwrap();
        assert_eq!(payloads(&rest), ["c", "d"]);
        assert!(client.claim_many(lease, "h", 4).await.unwrap().is_empty());
        let counts = client.counts().await.unwrap();
        assert_eq!((counts.ready, counts.leased), (0, 6));
        assert_eq!(client.stats().await.unwrap().claimed, 6);
        for job in first.iter().chain(&rest) {
            let info = client.job_info(job.id()).await.unwrap().unwrap();
            assert_eq!(
                (info.state, info.owner.as_deref()),
                (JobState::Running, Some("h"))
            );
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_many_refuses_a_stale_fence_alone_and_applies_the_rest() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let a = client.job("k", &()).tag("t").enqueue().await.unwrap();
        let b = client.job("k", &()).tag("t").enqueue().await.unwrap();
        let c = client.job("k", &()).enqueue().await.unwrap();
        let old_a = client
            .claim(Duration::from_millis(200), "h")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old_a.id(), a);
        let bc = client
            .claim_many(Duration::from_secs(30), "h", 2)
            .await
            .unwrap();
        eventually("a's lease to run out", || async {
            client.maintain().await.unwrap();
            (state_of(&client, a).await == Some(JobState::Ready)).then_some(())
        })
        .await;
        let new_a = client
            .claim(Duration::from_secs(30), "h")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((new_a.id(), new_a.fence()), (a, 2));

        let batch = [old_a, bc[0].clone(), bc[1].clone()];
        let acked = client.ack_many(&batch).await.unwrap();
        assert_eq!(acked.len(), 3);
        assert!(acked[0].as_ref().unwrap_err().is_stale());
        assert!(acked[1].is_ok() && acked[2].is_ok());
        assert_eq!(state_of(&client, a).await, Some(JobState::Running));
        assert_eq!(state_of(&client, b).await, Some(JobState::Done));
        assert_eq!(state_of(&client, c).await, Some(JobState::Done));
        let stats = client.stats().await.unwrap();
        assert_eq!((stats.completed, stats.expired), (2, 1));
        assert_eq!(client.tag_counts("t").await.unwrap().running, 1);
        assert_eq!(client.tag_stats("t").await.unwrap().completed, 1);

        client.ack(&new_a).await.unwrap();
        assert_eq!(state_of(&client, a).await, Some(JobState::Done));
    })
    .await
}

/// Finished jobs expire: an acknowledged job's record, and a cancelled
/// one's, are gone from Redis once the client's `finished_ttl` has passed,
/// so a queue that runs forever does not grow. (Redis's own clock: a real
/// second, waited for by polling.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_expire_after_the_finished_ttl() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await.finished_ttl(Duration::from_secs(1));
        let plan = Plan::builder().workers(1).name("ttl").build().unwrap();
        let done = client.job("noop", &()).enqueue().await.unwrap();
        let cancelled = client
            .job("noop", &())
            .tag("gone")
            .run_after(Duration::from_secs(3600))
            .enqueue()
            .await
            .unwrap();
        assert_eq!(client.cancel_tag("gone").await.unwrap(), 1);
        let host = host(&plan, &client)
            .register("noop", |(): (), _cx: JobContext| async {
                Ok::<(), String>(())
            })
            .start();
        until_state(&client, done, JobState::Done).await;
        assert_eq!(
            state_of(&client, cancelled).await,
            Some(JobState::Cancelled)
        );
        for id in [done, cancelled] {
            eventually(&format!("job {id}'s record to expire"), || async {
                state_of(&client, id).await.is_none().then_some(())
            })
            .await;
        }
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await;
}

/// A `finished_ttl` meant as "keep forever" (`Duration::MAX`) must not make
/// the scripts fail: a settle script that errors half-way applies the
/// entries before the bad one and none after, and the host then retries
/// the whole batch for a lease and gives up, so finished jobs run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_ttl_of_forever_still_acknowledges_a_whole_batch() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await.finished_ttl(Duration::MAX);
        let a = client.job("k", &()).enqueue().await.unwrap();
        let b = client.job("k", &()).enqueue().await.unwrap();
        let jobs = client
            .claim_many(Duration::from_secs(30), "h", 2)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 2);
        let acked = client.ack_many(&jobs).await;
        let after = (state_of(&client, a).await, state_of(&client, b).await);
        assert!(
            matches!(&acked, Ok(r) if r.iter().all(|r| r.is_ok())),
            "ack_many: {acked:?}; states after: {after:?}"
        );
        assert_eq!(after, (Some(JobState::Done), Some(JobState::Done)));
        // A tagged job too (its stats expire with the same TTL).
        let c = client.job("k", &()).tag("t").enqueue().await.unwrap();
        let job = client
            .claim(Duration::from_secs(30), "h")
            .await
            .unwrap()
            .unwrap();
        client.ack(&job).await.unwrap();
        assert_eq!(state_of(&client, c).await, Some(JobState::Done));
    })
    .await
}
