//! The durable queue when things go wrong around it: Redis killed and
//! restarted under running hosts, and a host drained while jobs run.
//! Each test starts its own `redis-server` (see `common_redis`).
#![cfg(feature = "redis")]

mod common;
mod common_redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::bounded;
use common_redis::{Proxy, RedisServer, eventually};
use taskplan::Plan;
use taskplan::durable::{Client, Host, JobId, JobState};

fn host(plan: &Plan, client: &Client) -> taskplan::durable::HostBuilder {
    Host::builder(plan, client)
        .lease(Duration::from_millis(600))
        .poll_interval(Duration::from_millis(20))
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run_loses_no_job() {
    let mut redis = RedisServer::start_persistent();
    let client = redis.client().await;
    bounded(async {
        let runs: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
        let counted = Arc::clone(&runs);
        let plan = Plan::builder().workers(4).build().unwrap();
        let host = host(&plan, &client)
            .register("work", move |_: (), cx: taskplan::durable::JobContext| {
                let counted = Arc::clone(&counted);
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    *counted.lock().unwrap().entry(cx.id()).or_default() += 1;
                    Ok::<(), String>(())
                }
            })
            .start();
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(
                client
                    .job("work", &())
                    .max_attempts(10)
                    .enqueue()
                    .await
                    .unwrap(),
            );
        }
        eventually("some jobs to run", || async {
            (runs.lock().unwrap().len() >= 5).then_some(())
        })
        .await;

        // SIGKILL, down for longer than a lease (so settling calls give up
        // and leases run out), then back with its data (the AOF).
        tokio::task::block_in_place(|| redis.kill());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tokio::task::block_in_place(|| redis.restart());

        for &id in &ids {
            eventually(&format!("job {id} to be done"), || async {
                let info = client.job_info(id).await.ok().flatten()?;
                (info.state == JobState::Done).then_some(())
            })
            .await;
        }
        let runs = runs.lock().unwrap().clone();
        assert!(
            ids.iter().all(|id| runs.get(id).copied().unwrap_or(0) >= 1),
            "every job ran"
        );
        let counts = client.counts().await.unwrap();
        assert_eq!(
            (counts.ready, counts.leased, counts.delayed, counts.dead),
            (0, 0, 0, 0)
        );
        assert_eq!(plan.stats().panicked, 0);
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_puts_unfinished_jobs_back_in_their_place() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let stuck_1 = client.job("stuck", &()).enqueue().await.unwrap();
        let stuck_2 = client.job("stuck", &()).enqueue().await.unwrap();
        let quick = client
            .job("quick", &())
            .priority(-1)
            .enqueue()
            .await
            .unwrap();
        let plan = Plan::builder().workers(2).build().unwrap();
        let host = host(&plan, &client)
            // Only the running jobs are claimed: the prefetched case is
            // `shutdown_puts_a_whole_prefetched_batch_back_at_once`.
            .prefetch(0)
            .register("stuck", |_: (), _| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .register("quick", |_: (), _| async { Ok::<(), String>(()) })
            .start();
        for id in [stuck_1, stuck_2] {
            eventually("both stuck jobs to run", || async {
                let info = client.job_info(id).await.unwrap()?;
                (info.state == JobState::Running).then_some(())
            })
            .await;
        }
        // Running jobs get the grace, then are cancelled and put back.
        let report = host.shutdown(Duration::from_millis(100)).await;
        assert_eq!((report.cancelled, report.completed), (2, 0));
        for id in [stuck_1, stuck_2] {
            let info = client.job_info(id).await.unwrap().unwrap();
            assert_eq!(
                (info.state, info.attempts),
                (JobState::Ready, 0),
                "job {id}"
            );
        }
        // Back in their places: before the lower-priority job, in order.
        let next: Vec<JobId> = [
            client
                .claim(Duration::from_secs(5), "t")
                .await
                .unwrap()
                .unwrap()
                .id(),
            client
                .claim(Duration::from_secs(5), "t")
                .await
                .unwrap()
                .unwrap()
                .id(),
            client
                .claim(Duration::from_secs(5), "t")
                .await
                .unwrap()
                .unwrap()
                .id(),
        ]
        .into();
        assert_eq!(next, [stuck_1, stuck_2, quick]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_puts_a_claimed_but_unstarted_job_back_without_running_it() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let plan = Plan::builder().workers(1).build().unwrap();
        // Other work holds the plan's one worker, so the claimed job waits
        // in the plan's queue.
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let local = plan.submit(async { released.await.ok() }).await.unwrap();
        let ran = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&ran);
        let host = host(&plan, &client)
            .register("job", move |_: (), _| {
                *flag.lock().unwrap() = true;
                async { Ok::<(), String>(()) }
            })
            .start();
        let id = client.job("job", &()).enqueue().await.unwrap();
        eventually("the job to be claimed and queued in the plan", || async {
            (plan.stats().queued == 1).then_some(())
        })
        .await;
        assert_eq!(
            client.job_info(id).await.unwrap().unwrap().state,
            JobState::Running
        );

        let drain = tokio::spawn(host.shutdown(Duration::from_secs(5)));
        eventually("the drain to begin", || async {
            plan.is_closed().then_some(())
        })
        .await;
        release.send(()).unwrap();
        local.await.unwrap();
        drain.await.unwrap();
        assert!(!*ran.lock().unwrap(), "the handler never ran");
        let info = client.job_info(id).await.unwrap().unwrap();
        assert_eq!((info.state, info.attempts), (JobState::Ready, 0));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_is_lost_still_runs_its_job_on_its_last_attempt() {
    // Redis runs the claim (the job's only attempt is counted and leased to
    // the host) and the connection drops before the reply arrives. Were
    // the claim forgotten, the lease would run out on the last attempt and
    // the job go to the dead letters without ever running.
    let redis = RedisServer::start();
    let proxy = Proxy::start(&redis).await;
    bounded(async {
        let client = redis.client().await;
        let via_proxy = proxy.client().await;
        let marker = "a-payload-only-the-claim-reply-carries";
        proxy.cut_reply_containing(marker);
        let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
        let plan = Plan::builder().workers(2).build().unwrap();
        let host = host(&plan, &via_proxy)
            // Not about expiry: long enough that only a forgotten claim
            // (never renewed) could run out.
            .lease(Duration::from_secs(3))
            .register(
                "work",
                move |payload: String, cx: taskplan::durable::JobContext| {
                    let _ = ran_tx.send((payload, cx.attempt()));
                    async { Ok::<(), String>(()) }
                },
            )
            .start();
        let id = client
            .job("work", marker)
            .max_attempts(1)
            .enqueue()
            .await
            .unwrap();
        let state = eventually("the job to finish", || async {
            let info = client.job_info(id).await.ok().flatten()?;
            matches!(info.state, JobState::Done | JobState::Dead).then_some(info)
        })
        .await;
        assert_eq!(proxy.cuts(), 1, "the claim's reply was cut");
        assert_eq!(
            (state.state, state.attempts, state.last_error),
            (JobState::Done, 1, None)
        );
        assert_eq!(ran.recv().await, Some((marker.to_owned(), 1)));
        assert!(ran.try_recv().is_err(), "it ran once");
        host.shutdown(Duration::from_secs(1)).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_puts_a_whole_prefetched_batch_back_at_once() {
    let redis = RedisServer::start();
    bounded(async {
        let client = redis.client().await;
        let stuck = client
            .job("stuck", &())
            .priority(1)
            .enqueue()
            .await
            .unwrap();
        let mut queued = Vec::new();
        for _ in 0..3 {
            queued.push(client.job("quick", &()).enqueue().await.unwrap());
        }
        let quick_runs = Arc::new(Mutex::new(0u32));
        let counted = Arc::clone(&quick_runs);
        let plan = Plan::builder().workers(1).build().unwrap();
        let host = host(&plan, &client)
            .lease(Duration::from_secs(30))
            .prefetch(3)
            .register("stuck", |_: (), _| async {
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .register("quick", move |_: (), _| {
                *counted.lock().unwrap() += 1;
                async { Ok::<(), String>(()) }
            })
            .start();
        // One running, three prefetched: claimed, waiting in the plan.
        eventually("the batch to be claimed", || async {
            let stats = plan.stats();
            (stats.running == 1 && stats.queued == 3).then_some(())
        })
        .await;
        assert_eq!(client.counts().await.unwrap().leased, 4);

        host.shutdown(Duration::from_millis(100)).await;
        assert_eq!(*quick_runs.lock().unwrap(), 0, "no prefetched job ran");
        for &id in std::iter::once(&stuck).chain(&queued) {
            let info = client.job_info(id).await.unwrap().unwrap();
            assert_eq!(
                (info.state, info.attempts),
                (JobState::Ready, 0),
                "job {id}"
            );
        }
        assert_eq!(client.stats().await.unwrap().released, 4);
        // Back in their places, in order.
        let again = client
            .claim_many(Duration::from_secs(5), "t", 10)
            .await
            .unwrap();
        let ids: Vec<JobId> = again.iter().map(|j| j.id()).collect();
        assert_eq!(ids, [stuck, queued[0], queued[1], queued[2]]);
    })
    .await
}

/// A prefetched job whose lease ran out while its host could not reach
/// Redis must not start once a worker frees up: another host may hold it
/// now. (The host's renewals fail meanwhile, so it has not heard the lease
/// is lost; but it knows it has not renewed it for longer than a lease.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetched_job_whose_lease_ran_out_does_not_start_here() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(&redis).await;
    bounded(async {
        let client = redis.client().await;
        let via_proxy = proxy.client().await;
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
        let plan = Plan::builder().workers(1).build().unwrap();
        let lease = Duration::from_millis(600);
        let slow_gate = std::sync::Arc::clone(&gate);
        let host = host(&plan, &via_proxy)
            .lease(lease)
            .prefetch(1)
            .register("slow", move |(): (), _cx: taskplan::durable::JobContext| {
                let gate = std::sync::Arc::clone(&slow_gate);
                let started = started_tx.clone();
                async move {
                    let _ = started.send(());
                    let _ = gate.acquire().await.map(|p| p.forget());
                    Ok::<(), String>(())
                }
            })
            .register("b", move |(): (), _cx: taskplan::durable::JobContext| {
                let _ = ran_tx.send(());
                async { Ok::<(), String>(()) }
            })
            .start();
        let slow = client
            .job("slow", &())
            .priority(10)
            .enqueue()
            .await
            .unwrap();
        let b = client.job("b", &()).enqueue().await.unwrap();
        started.recv().await.unwrap();
        eventually("b to be prefetched into the plan", || async {
            (plan.stats().queued == 1).then_some(())
        })
        .await;
        // The host loses Redis for longer than a lease; another host takes
        // both jobs.
        proxy.pause();
        tokio::time::sleep(lease * 3).await;
        let other = client
            .claim_many(Duration::from_secs(30), "other", 2)
            .await
            .unwrap();
        let ids: Vec<_> = other.iter().map(|j| j.id()).collect();
        assert_eq!(ids, vec![slow, b], "the other host holds both leases");
        // The slow job ends here: the worker is free for the prefetched b.
        gate.add_permits(1);
        let ran_here = tokio::time::timeout(Duration::from_secs(2), ran.recv())
            .await
            .is_ok();
        proxy.resume();
        host.shutdown(Duration::from_secs(1)).await;
        assert!(
            !ran_here,
            "b started on the stalled host while another host held its lease"
        );
    })
    .await
}
