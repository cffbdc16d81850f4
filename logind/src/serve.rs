//! `hupkit-dbus`: the helper executable that talks D-Bus for detach and
//! rdisown, and for rjobs' logout forecast, so that they do not link zbus (see `hupkit_common::dbus`, the
//! tools' side, for the why and the protocol).
//!
//! It reads request lines on its standard input and answers each with one
//! line on its standard output, until end-of-file; it wraps [`Manager`],
//! [`enable_linger`] and [`logind_settings`] and adds nothing to what they do. It writes nothing else:
//! its standard error is `/dev/null` when a tool runs it.

use std::ffi::OsString;
use std::io::{BufRead as _, Read as _};

use hupkit_common::dbus::{Request, reply_line, send_line};
use hupkit_common::exit::{self, Status};

use crate::{Manager, enable_linger, logind_settings};

/// What `--help` says.
const HELP: &str = "hupkit-dbus: hupkit's D-Bus helper for detach and rdisown (--scope, --linger) and rjobs (logind's settings); not meant to be run by hand\n";

/// The longest request line read.
const MAX_REQUEST: usize = 64 * 1024;

/// The helper's entry (`args`, argv\[0\] first): `--help`, or the serve loop
/// ([`serve`]) without arguments.
#[must_use]
pub fn main(args: Vec<OsString>) -> Status {
    let first = args.into_iter().nth(1);
    match first.as_ref().and_then(|a| a.to_str()) {
        None => {
            serve();
            exit::SUCCESS
        }
        Some("--help" | "-h") => {
            let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDOUT, HELP.as_bytes());
            exit::SUCCESS
        }
        Some(_) => {
            let _ = hupkit_common::stdio::write_all(hupkit_common::stdio::STDERR, HELP.as_bytes());
            exit::USAGE
        }
    }
}

/// Answers requests on standard input until end-of-file, or until a reply
/// cannot be written (the tool is gone).
pub fn serve() {
    let mut manager: Option<Manager> = None;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut input)
            .take(MAX_REQUEST as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.pop() != Some(b'\n') {
            let _ = send_line(&mut out, &reply_line(Err("request too long or cut".into())));
            return;
        }
        let reply = match std::str::from_utf8(&line) {
            Ok(text) => Request::parse(text).and_then(|req| answer(&mut manager, req)),
            Err(_) => Err("a request is text".into()),
        };
        if !send_line(&mut out, &reply_line(reply)) {
            return;
        }
    }
}

/// Does `req`: the word to reply after `ok`, or the sentence after `error`.
fn answer(manager: &mut Option<Manager>, req: Request) -> Result<String, String> {
    const NOT_CONNECTED: &str = "not connected to a service manager (no connect request)";
    match req {
        Request::Connect => {
            let m = Manager::connect().map_err(|e| e.0)?;
            let which = if m.is_user() { "user" } else { "system" };
            *manager = Some(m);
            Ok(which.into())
        }
        Request::Linger(uid) => enable_linger(uid).map(|()| String::new()).map_err(|e| e.0),
        Request::LogindSettings => logind_settings().map(|s| s.words()).map_err(|e| e.0),
        Request::NewScope {
            hint,
            pids,
            delegate,
        } => {
            let m = manager.as_ref().ok_or(NOT_CONNECTED)?;
            if delegate {
                m.move_job_to_new_scope(&pids, &hint)
            } else {
                m.move_to_new_scope(&pids, &hint)
            }
            .map_err(|e| e.0)
        }
        Request::Attach { scope, pids } => {
            let m = manager.as_ref().ok_or(NOT_CONNECTED)?;
            m.attach_to_scope(&scope, &pids)
                .map(|()| String::new())
                .map_err(|e| e.0)
        }
    }
}
