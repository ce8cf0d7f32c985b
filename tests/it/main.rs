//! The integration tests, one module per command or concern, in one test
//! binary (one link instead of twenty): each runs the real `portctl`
//! against real sockets and processes and reads its output; `common`
//! (shared with `tests/limits_talk.rs`) holds their helpers.
//!
//! `limits_talk` alone is a binary of its own: it measures `talk`'s peak
//! memory with wait4, whose figure starts at the high-water mark of the
//! process that spawned it, and beside a hundred other tests this one
//! grows past what that measure can bear.
// The tests stage what they test with the OS's own calls (signals,
// rlimits, wait4) through libc: unsafe is theirs to use, as it is
// platform/'s in the crate.
#![allow(unsafe_code)]

#[path = "../common/mod.rs"]
mod common;

mod adversarial;
mod architecture;
mod check;
mod deploy;
mod docs;
mod free_exec;
mod held;
mod kill;
mod limits_check;
mod limits_review;
mod limits_serve;
mod list;
mod metrics;
mod safety;
mod serve;
mod tables;
mod talk;
mod top;
mod trace;
mod traffic;
mod trust;
mod wait_probe;
mod whatis;
mod who;
