//! The timer of a drain: wall time, and the CPU time that Redis and this
//! process spent in it, which a busy machine disturbs far less than wall
//! time (it still costs cache and scheduling, so it is not noise-free).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The benchmark's `redis-server`, whose CPU time each drain reads.
static REDIS_PID: OnceLock<u32> = OnceLock::new();

pub fn set_redis_pid(pid: u32) {
    let _ = REDIS_PID.set(pid);
}

/// Linux's `USER_HZ`: `/proc/<pid>/stat` counts CPU time in these ticks.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds of a process so far, from `/proc`; `None`
/// where there is no `/proc` (the column then shows `-`).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

fn redis_cpu() -> Option<f64> {
    cpu_seconds(&REDIS_PID.get()?.to_string())
}

/// Started just before a peer's consumer starts.
pub struct Clock {
    start: Instant,
    redis: Option<f64>,
    own: Option<f64>,
}

/// What a drain cost.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub elapsed: Duration,
    /// CPU seconds `redis-server` spent during the drain.
    pub redis_cpu: Option<f64>,
    /// CPU seconds this process spent during the drain (the peer's client
    /// side, every thread; `None` where the consumers ran elsewhere).
    pub own_cpu: Option<f64>,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            redis: redis_cpu(),
            own: cpu_seconds("self"),
            start: Instant::now(),
        }
    }

    pub fn stop(&self) -> Timed {
        let elapsed = self.start.elapsed();
        let delta = |before: Option<f64>, now: Option<f64>| Some(now? - before?);
        Timed {
            elapsed,
            redis_cpu: delta(self.redis, redis_cpu()),
            own_cpu: delta(self.own, cpu_seconds("self")),
        }
    }
}
