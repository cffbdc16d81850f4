//! `hupkit-common`: the narrow waist of the hupkit suite.
//!
//! Everything two tools share lives here, so that a tool's folder holds only that
//! tool's policy:
//!
//! - [`exit`]: the exit statuses every tool documents (GNU's 125/126/127, 128+N).
//! - [`error`]: the one error type, which knows its exit status.
//! - [`diag`]: GNU-style diagnostics (`prog: what failed 'operand': Strerror`),
//!   written with plain `write(2)` so a failed write is seen, as `ferror(stderr)` is in C.
//! - [`quote`]: coreutils' `quoteaf` shell quoting of operands in messages.
//! - [`text`]: decimal integers and padded columns without `core::fmt`, for
//!   what is written once per process.
//! - [`signal`]: reading and changing signal dispositions and the signal mask.
//! - [`stdio`]: fd-level helpers for the standard streams, which may be closed.
//! - [`proc`]: readers for `/proc/PID/stat` and `/proc/PID/status`.
//! - [`jobs`]: jobs as process groups of a session, from one `/proc` scan, and job specs.
//! - [`logout`]: what logind does at logout to a process, from its cgroup,
//!   logind's settings and linger (rjobs' forecast).
//! - [`scope`]: the scope level's D-Bus-free part (unit names, cgroups,
//!   linger); [`dbus`]: the tools' side of `hupkit-dbus`, the helper
//!   executable that talks D-Bus for `--scope` and `--linger`.
//! - [`output`]: where a process's output goes (file, terminal, hung-up
//!   terminal: lost, pipe...), from `/proc/PID/fd`.
//! - [`tty`]: terminal names from device numbers; [`pty`]: pseudo-terminals and
//!   the transcript of what one shows (huplab's and the tests' one pty reader).
//! - [`ptrace`]: why a stopped process is stopped.
//! - [`inject`]: system calls run inside another process (ptrace), for disown.
//! - [`records`]: the job-record store (what rnohup, detach and disown started).
//! - [`identity`]: PID + start time + boot, so a reused PID is never taken for
//!   the process that was recorded.
//! - [`pidfd`]: signal and wait on a process through a pidfd; [`watch`]: follow
//!   a process group that is not our child until it ends or stops, without
//!   scanning `/proc` on every tick.
//! - [`safefile`]: pidfiles, records and locks written without following
//!   symlinks, atomically; [`safepath`]: paths walked component by component
//!   (`openat`, `O_NOFOLLOW`), trusting only root's and the caller's links,
//!   directories and files, for what a privileged tool reads as well as writes.
//! - [`nss`]: users and groups looked up by `getent`, a dynamically linked
//!   process, for a tool that is linked static (detach).
//! - [`cli`]: clap parsing with GNU-style usage errors and exit statuses.
//! - [`entry`]: every tool's C `main` ([`entry!`]), with the start-up each tool
//!   asks for; [`cargs`]: argv from that `main`.
//!
//! Design decisions: `unsafe` is confined to the syscall edge, in [`stdio`]
//! (raw fds 0-2), [`signal`] (dispositions, the raw signal reset), [`cargs`] and
//! [`entry`] (argv from the C runtime), [`pidfd`] (`pidfd_open` and the pidfd
//! calls libc does not wrap), [`pty`] (`setsid` and `TIOCSCTTY` before exec)
//! and [`records`] (`getrlimit`), each block with a `// SAFETY:` comment; nothing
//! here panics or exits the process.

pub mod cargs;
pub mod cli;
pub mod dbus;
pub mod diag;
pub mod entry;
pub mod error;
pub mod exit;
pub mod identity;
pub mod inject;
pub mod jobs;
pub mod logout;
pub mod nss;
pub mod output;
pub mod pidfd;
pub mod proc;
pub mod ptrace;
pub mod pty;
pub mod quote;
pub mod records;
pub mod safefile;
pub mod safepath;
pub mod scope;
pub mod signal;
pub mod stdio;
pub mod text;
pub mod tty;
pub mod watch;

pub use error::{Context, Error, Result};
