//! `huplab`: the separation lab. All logic is in `hupkit_huplab`.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]). huplab prints a table (a closed
//! pipe is a quiet `EPIPE`); a closed stdout is `/dev/null`, so `--version` with
//! stdout closed is a quiet success. Its probes do not inherit the ignored
//! SIGPIPE: `std::process::Command` resets it to default in the child.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_huplab::main, Startup::LIKE_RUST);
