//! `disown`: cut running jobs loose from their terminal. All logic is in `hupkit_disown`.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]). A closed pipe on disown's output
//! must not kill it between attaching to a process and detaching from it (the
//! process would be left stopped under ptrace); closed fds 0-2 are `/dev/null`,
//! so that the output file disown opens is never one of them.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_disown::main, Startup::LIKE_RUST);
