//! Cancelling handles from another thread while `abort()` drops a long
//! queue. The abort takes the whole queue out under the lock in one step and
//! drops the tasks after releasing it, so until a task is dropped it still
//! looks queued. A cancel that sees it then must leave it to the abort (the
//! queue no longer holds it), not unlink it a second time. (Regression test:
//! before `Queue::holds` such a cancel indexed the emptied queue and
//! panicked.)

mod common;

use std::sync::{Arc, Barrier};

use taskplan::Plan;

const QUEUED: usize = 20_000;

#[test]
fn cancelling_handles_while_an_abort_drops_the_queue() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for _ in 0..10 {
        // Not tracked: this runtime has no time driver, which `join_or_fail`
        // needs for its bound; the body aborts the plan and checks every
        // handle itself. Each round is bounded.
        runtime.block_on(common::bounded(async {
            let plan = Plan::builder().workers(1).capacity(QUEUED).build().unwrap();
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            let blocker = plan
                .submit(async move {
                    started_tx.send(()).unwrap();
                    std::future::pending::<()>().await
                })
                .await
                .unwrap();
            started_rx.await.unwrap();
            let handles: Arc<Vec<_>> = Arc::new(
                (0..QUEUED)
                    .map(|_| plan.try_submit(std::future::pending::<()>()).unwrap())
                    .collect(),
            );
            let both_ready = Arc::new(Barrier::new(2));
            // From the back: the abort drops those last, so most of these
            // cancels land while the tasks are out of the queue but alive.
            let canceller = std::thread::spawn({
                let handles = Arc::clone(&handles);
                let both_ready = Arc::clone(&both_ready);
                move || {
                    both_ready.wait();
                    for handle in handles.iter().rev() {
                        handle.cancel();
                    }
                }
            });
            both_ready.wait();
            let report = plan.abort().await;
            canceller.join().expect("no cancel panicked");
            assert_eq!(report.cancelled, QUEUED + 1);
            assert_eq!(report.completed, 0);
            assert!(blocker.await.unwrap_err().is_cancelled());
            let handles = Arc::into_inner(handles).expect("the canceller is done");
            for handle in handles {
                assert!(
                    handle.is_finished(),
                    "abort returned before a handle resolved"
                );
                assert!(handle.await.unwrap_err().is_cancelled());
            }
            common::assert_conserved(plan.stats());
        }));
    }
}
