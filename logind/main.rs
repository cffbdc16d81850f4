//! `hupkit-dbus`: the helper that talks D-Bus for detach and rdisown
//! (`--scope`, `--linger`) and for rjobs (logind's settings). All logic is in `hupkit_logind::serve`.
//!
//! Start-up: as inherited ([`Startup::AS_INHERITED`]): its standard input and
//! output are the tool's socket, its standard error `/dev/null`; a write to a
//! tool that is gone may end it by SIGPIPE, which is what it should do then.
#![no_main]

use hupkit_common::entry::Startup;

hupkit_common::entry!(hupkit_logind::serve::main, Startup::AS_INHERITED);
