//! `rjobs`: list jobs from the kernel's view. All logic is in `hupkit_rjobs`.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]). rjobs writes a listing: with SIGPIPE
//! ignored, `rjobs | head` ends it with a quiet `EPIPE`, not a death by signal;
//! a closed stdout is `/dev/null` (the listing is thrown away, status 0), as
//! before the C entry.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_rjobs::main, Startup::LIKE_RUST);
