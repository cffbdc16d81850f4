//! Reliability: every tool under hostile input, races, PID reuse, fuzzed
//! arguments and repetition (docs/reliability.md gives the figures).

/// Every tool on bad inputs and in hostile surroundings: status, message, no panic.
mod battery;
/// Concurrent starts and writers, and targets that exit mid-operation.
mod concurrency;
/// Random argument vectors through every parser and rjobs' run path.
mod fuzz;
/// Simulated and real PID reuse: nothing acts on the new holder of a PID.
mod pid_reuse;
/// disown injected again and again: nothing harmed (full counts: `cargo xtask soak`).
mod soak;
