//! `rbg`: continue jobs in the background. All logic is in `hupkit_rbg`.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]). rbg prints the jobs it continues,
//! as bash's `bg` does: a closed pipe is a quiet `EPIPE`, never a death half-way
//! through a list of jobs; a closed stdout is `/dev/null`.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_rbg::main, Startup::LIKE_RUST);
