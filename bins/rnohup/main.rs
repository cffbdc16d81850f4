//! `rnohup`: run a command immune to hangups. All logic is in `hupkit_rnohup`.
//!
//! Start-up: none ([`Startup::AS_INHERITED`]). rnohup must see the standard
//! streams and signal dispositions exactly as inherited: a closed stdout is
//! closed for it (GNU's `nohup` behaves so), and an ignored or default SIGPIPE
//! is passed on to the command as it came.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_rnohup::main, Startup::AS_INHERITED);
