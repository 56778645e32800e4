//! Strata's demo job: two real-time warehouse queries a stream processor runs on keyed
//! state, on the embedded default store (a local directory).
//!
//! 1. Page **PV/UV** with a day-long CUMULATE window that emits every minute, driven by
//!    event time and watermarks, with UV by distinct device kept in map state.
//! 2. **DAU with new and returning devices**: minute-level then day-level dedup of
//!    (channel, device), with each device's first-seen / last-seen days in state with TTL.
//!
//! [`StreamConfig`] generates the synthetic input (size, skew, out-of-order delay, late
//! share); [`Job`] runs the queries on [`strata::KeyedBackend`] state and timers. See
//! `job.rs` for the state layout and the watermark rules. [`run`] runs it fault-tolerantly:
//! parallel instances by key-group range, checkpoints, a transactional sink, and restarts
//! (after a crash or with another parallelism) from the last completed checkpoint.
#![deny(missing_docs)]

mod job;
mod runner;
mod stream;

pub use job::{DauRow, Job, JobConfig, JobProgress, JobStats, PvRow, Row};
pub use runner::{committed_rows, csv_line, run, RunConfig, RunEnd};
pub use stream::{
    Event, Stream, StreamConfig, DAY_MS, DEFAULT_START_MS, MINUTES_PER_DAY, MINUTE_MS,
};
