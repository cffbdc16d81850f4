//! `detach`: run a command as a daemon. All logic is in `hupkit_detach`.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]). Closed fds 0-2 are opened on
//! `/dev/null`, so that no pidfile, lock or output file detach opens can land on
//! fd 0-2 and be taken for a standard stream; SIGPIPE is ignored, so that a
//! closed stdout under `--status` or `--stop` is a quiet write error, not a death
//! (the daemon's own dispositions are reset to default before exec anyway).
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_detach::main, Startup::LIKE_RUST);
