//! `rdisown`: the same program as `disown`, under a name no shell builtin hides.
//!
//! Start-up: both ([`Startup::LIKE_RUST`]), as `disown`'s (see its `main.rs`).
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_disown::main, Startup::LIKE_RUST);
