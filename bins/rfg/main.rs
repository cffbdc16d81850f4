//! `rfg`: bring a job to the foreground. All logic is in `hupkit_rfg`.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]). SIGPIPE must not end rfg while the
//! job holds the terminal (it is not among the signals rfg catches to give the
//! terminal back, because it is ignored here); closed fds 0-2 are `/dev/null`, so
//! the terminal rfg opens never lands on a standard stream's number.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_rfg::main, Startup::LIKE_RUST);
