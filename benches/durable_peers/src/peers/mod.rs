//! The peers: each fills its queue with `n` no-op jobs, then is timed
//! from the moment its consumer starts until the handler of the last job
//! has run.

pub mod apalis;
pub mod bullmq;
pub mod streams;
pub mod taskplan;

use crate::clock::Timed;

/// What one timed drain of a filled queue measured.
pub struct Drain {
    /// From starting the consumer to the last handler's completion, and
    /// the CPU time spent meanwhile.
    pub timed: Timed,
    /// Jobs whose handler ran (must equal the fill).
    pub done: u64,
}

/// The payload of every job: its number. The handlers ignore it.
pub type Payload = u64;

/// How many jobs one fill request carries, for the peers with a bulk
/// enqueue; the others keep this many enqueues in flight.
pub const FILL_CHUNK: u64 = 1_000;
