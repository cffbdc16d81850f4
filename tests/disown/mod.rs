//! disown on a real `bash -i`, then the terminal hung up: every kind of job
//! survives; and each refusal changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use hupkit_common::identity::{Identity, Liveness};
use hupkit_common::pidfd::PidFd;
use hupkit_common::proc::Status;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::util::{self, shell::Shell};

mod bash;
mod hard;

/// A process the test started, killed by identity when dropped.
struct Victim(Identity);

impl Victim {
    fn of(pid: &str) -> Victim {
        Victim(Identity::of(Pid::from_raw(pid.trim().parse().unwrap())).unwrap())
    }
    fn alive(&self) -> bool {
        self.0.liveness() == Liveness::Alive
    }
    fn status(&self) -> Status {
        Status::read(self.0.pid).unwrap()
    }
    /// Where fds 0-2 point.
    fn fds(&self) -> Vec<String> {
        (0..3)
            .map(|fd| {
                std::fs::read_link(format!("/proc/{}/fd/{fd}", self.0.pid))
                    .map_or_else(|_| "closed".into(), |p| p.display().to_string())
            })
            .collect()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if let Ok(fd) = PidFd::open(self.0.pid) {
            if self.alive() {
                let _ = fd.signal(Signal::SIGKILL);
                let _ = fd.wait_exit(util::DEADLINE);
            }
        }
    }
}

const WRITER: &str = "import threading, time
def w(n):
    while True:
        print('tick', n, flush=True)
        time.sleep(0.05)
for n in range(3):
    threading.Thread(target=w, args=(n,), daemon=True).start()
while True:
    time.sleep(1)
";

#[test]
fn every_kind_of_job_survives_the_hangup() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let tty = sh.tty.display().to_string();

    let running = Victim::of(&sh.last_line("sleep 300 & echo $!"));
    sh.suspend("sleep 301", "sleep");
    let stopped = Victim::of(&sh.last_line("jobs -p %%"));
    let reader = Victim::of(&sh.last_line("sh -c 'while :; do read x; sleep 0.2; done' & echo $!"));
    let busy = Victim::of(&sh.last_line("sh -c 'while :; do :; done' & echo $!"));
    std::fs::write(dir.path().join("writer.py"), WRITER).unwrap();
    let writer = Victim::of(&sh.last_line("python3 writer.py & echo $!"));
    assert!(util::poll_until(util::DEADLINE, || Status::read(
        reader.0.pid
    )
    .is_ok()
        && hupkit_common::proc::Stat::read(reader.0.pid).is_ok_and(
            |s| s.state == hupkit_common::proc::ProcState::Stopped
        )));

    for v in [&running, &stopped, &reader, &busy, &writer] {
        let (out, rc) = sh.run(&format!("rdisown {}", v.0.pid));
        assert_eq!(rc, 0, "{out}");
        // (The writer's own ticks may be interleaved on the terminal.)
        let pid = format!(" PID {} (", v.0.pid);
        assert!(
            out.lines().any(|l| l.starts_with("rdisown: [")
                && l.contains(&pid)
                && l.contains("SIGHUP ignored")),
            "{out}"
        );
    }
    // The pipeline, as the current job.
    let (lead, _) = sh.run("sleep 302 | cat & jobs -p %%");
    let pipe_lead = Victim::of(lead.lines().last().unwrap());
    let (out, rc) = sh.run("rdisown %+");
    assert_eq!(rc, 0, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("rdisown: ")).collect();
    assert_eq!(lines.len(), 2, "both members of the pipeline:\n{out}");
    let pipe_cat = Victim::of(lines[1].split_ascii_whitespace().nth(3).unwrap());

    sh.hang_up();
    assert!(sh.wait().is_some(), "bash ends with its terminal");
    let log = dir.path().join("nohup.out");
    let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    let before = size();
    assert!(
        util::poll_until(util::DEADLINE, || size() > before + 100),
        "the writer keeps writing after the hangup"
    );
    for v in [
        &running, &stopped, &reader, &busy, &writer, &pipe_lead, &pipe_cat,
    ] {
        assert!(v.alive(), "PID {} survived", v.0.pid);
        let st = v.status();
        assert!(
            st.sig_ign.contains(Signal::SIGHUP),
            "PID {} ignores SIGHUP",
            v.0.pid
        );
        let fds = v.fds();
        assert!(
            !fds.contains(&tty),
            "PID {} has no fd on {tty}: {fds:?}",
            v.0.pid
        );
        assert_eq!(
            hupkit_common::proc::Stat::read(v.0.pid).unwrap().tty_nr,
            0,
            "no controlling terminal"
        );
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("tick 2"));
    let records = dir.path().join(".local/state/hupkit/jobs");
    assert_eq!(
        std::fs::read_dir(&records).unwrap().count(),
        6,
        "one record per job (the pipeline's two processes are one job)"
    );
}

fn disown(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(util::bin("disown"))
        .args(args)
        .env("HUPKIT_NO_RECORD", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refusals_change_nothing() {
    assert_eq!(
        disown(&["999999999"]),
        (
            1,
            String::new(),
            "disown: 999999999: no such process\n".into()
        )
    );
    let (rc, _, err) = disown(&["1"]);
    assert_eq!(rc, 1);
    assert!(
        err.starts_with("disown: PID 1 (") && err.ends_with(") is init (PID 1); left alone\n"),
        "{err}"
    );
    if let Some((pid, comm)) = util::kernel_thread() {
        assert_eq!(
            disown(&[&pid]),
            (
                1,
                String::new(),
                format!("disown: PID {pid} ({comm}) is a kernel thread; left alone\n")
            )
        );
    }
    let me = std::process::id().to_string();
    let (rc, _, err) = disown(&[&me]);
    assert_eq!(rc, 1);
    assert!(
        err.ends_with("is disown itself or one of its ancestors; left alone\n"),
        "{err}"
    );
    assert_eq!(disown(&["x"]).0, 1);
    assert_eq!(disown(&[]).0, 2);

    // A zombie.
    let mut z = util::ChildGuard::new(Command::new("true").spawn().unwrap());
    let zpid = z.pid();
    assert!(util::poll_until(util::DEADLINE, || {
        hupkit_common::proc::Stat::read(zpid)
            .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Zombie)
    }));
    let (rc, _, err) = disown(&[&zpid.to_string()]);
    assert_eq!(
        (rc, err),
        (
            1,
            format!("disown: PID {zpid} (true) is a zombie (it has exited); left alone\n")
        )
    );
    z.wait(util::DEADLINE);
}

#[test]
fn already_traced_is_refused() {
    let child = Command::new("sleep").arg("300").spawn().unwrap();
    let mut guard = util::ChildGuard::new(child);
    let pid = guard.pid();
    nix::sys::ptrace::seize(pid, nix::sys::ptrace::Options::empty()).unwrap();
    let (rc, _, err) = disown(&[&pid.to_string()]);
    assert_eq!(
        (rc, err),
        (
            1,
            format!(
                "disown: PID {pid} (sleep) is already traced by PID {}; left alone\n",
                nix::unistd::gettid()
            )
        )
    );
    assert!(
        !Status::read(pid).unwrap().sig_ign.contains(Signal::SIGHUP),
        "nothing changed"
    );
    // PTRACE_DETACH needs the tracee in a ptrace stop.
    nix::sys::ptrace::interrupt(pid).unwrap();
    nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::__WALL)).unwrap();
    nix::sys::ptrace::detach(pid, None).unwrap();
    drop(guard.0.take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
}

#[test]
fn another_users_process_is_refused() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to drop to nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("disown");
    if std::fs::hard_link(util::bin("disown"), &bin).is_err() {
        std::fs::copy(util::bin("disown"), &bin).unwrap();
    }
    let mut guard = util::ChildGuard::new(Command::new("sleep").arg("300").spawn().unwrap());
    let pid = guard.pid();
    let out = Command::new(&bin)
        .args(["--null", &pid.to_string()])
        .current_dir(dir.path())
        .env_clear()
        .env("HUPKIT_NO_RECORD", "1")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("disown: PID {pid} (sleep 300): cannot trace it: permission denied: it belongs to uid 0; tracing another user's process needs root (CAP_SYS_PTRACE)")),
        "{err}"
    );
    assert!(
        !Status::read(pid).unwrap().sig_ign.contains(Signal::SIGHUP),
        "nothing changed"
    );
    let _ = guard.wait(Duration::ZERO);
}

#[test]
fn keep_tty_null_and_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let tty = sh.tty.display().to_string();
    let a = Victim::of(&sh.last_line("sleep 300 & echo $!"));
    let (out, rc) = sh.run(&format!("rdisown --keep-tty {}", a.0.pid));
    assert_eq!(
        (out.as_str(), rc),
        (
            format!("rdisown: [1] PID {} (sleep 300): SIGHUP ignored\n", a.0.pid).as_str(),
            0
        )
    );
    assert!(a.fds().iter().all(|f| *f == tty), "descriptors untouched");
    let b = Victim::of(&sh.last_line("sleep 301 & echo $!"));
    sh.run(&format!("rdisown --null {}", b.0.pid));
    assert_eq!(b.fds(), ["/dev/null", "/dev/null", "/dev/null"]);
    assert!(!dir.path().join("nohup.out").exists());
    let py = "import signal,time; signal.signal(signal.SIGHUP, lambda *a: None); time.sleep(300)";
    let c = Victim::of(&sh.last_line(&format!("python3 -c '{py}' & echo $!")));
    assert!(util::poll_until(util::DEADLINE, || c
        .status()
        .sig_cgt
        .contains(Signal::SIGHUP)));
    let (out, rc) = sh.run(&format!("rdisown --null {}", c.0.pid));
    assert_eq!(rc, 1, "a process left alone is one not cut loose");
    assert!(
        out.contains("has its own SIGHUP handler; left alone (--override-handler forces)"),
        "{out}"
    );
    assert!(c.status().sig_cgt.contains(Signal::SIGHUP));
    let (out, rc) = sh.run(&format!("rdisown --override-handler --null {}", c.0.pid));
    assert_eq!(rc, 0, "{out}");
    assert!(c.status().sig_ign.contains(Signal::SIGHUP));
}

#[test]
fn group_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    let lead = sh.last_line("sleep 300 | sleep 301 & jobs -p %%");
    // Both members must have exec'd `sleep`: a bash fork that has not yet
    // would be refused for bash's own SIGHUP handler.
    let pgid: i32 = lead.trim().parse().unwrap();
    assert!(util::poll_until(util::DEADLINE, || {
        let members: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| hupkit_common::proc::Stat::read(Pid::from_raw(pid)).ok())
            .filter(|st| st.pgrp.as_raw() == pgid)
            .map(|st| st.name())
            .collect();
        members.len() == 2 && members.iter().all(|n| n == "sleep")
    }));
    let (out, rc) = sh.run(&format!("rdisown --null -g {lead}"));
    assert_eq!(rc, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("rdisown: ")).count(),
        2,
        "-g: the whole group\n{out}"
    );
    let parent = sh.last_line("sh -c 'sleep 302 & sleep 303 & wait' & echo $!");
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .is_ok_and(|c| c.split_ascii_whitespace().count() == 2)
    }));
    let (out, rc) = sh.run(&format!("rdisown --null --tree -v {parent}"));
    assert_eq!(rc, 0, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("rdisown: ")).collect();
    assert_eq!(
        lines.len(),
        3,
        "--tree: the process and its two children\n{out}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("; held ") && l.ends_with(" µs")),
        "{out}"
    );
}

/// `disown -o LINK`, where LINK is another user's symbolic link in a shared
/// (sticky) directory pointing into a directory of root's: as root, disown must
/// not create or open the file the link names, and must leave the process as it
/// was (nothing injected, SIGHUP still at its default).
#[test]
fn output_link_of_another_user_is_not_followed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to plant as nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let private = dir.path().join("private");
    std::fs::create_dir(&shared).unwrap();
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = shared.join("out.log");
    std::os::unix::fs::symlink(private.join("made-by-root"), &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();

    let child = util::ChildGuard::new(Command::new("sleep").arg("300").spawn().unwrap());
    let pid = child.pid().to_string();
    let (rc, out, err) = disown(&["-o", link.to_str().unwrap(), &pid]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.starts_with(&format!("disown: failed to open '{}': ", link.display()))
            && err.contains("symbolic link of another user"),
        "{err}"
    );
    assert!(
        !private.join("made-by-root").exists(),
        "root created the file another user's link names"
    );
    let status = Status::read(child.pid()).unwrap();
    assert!(
        !status.sig_ign.contains(Signal::SIGHUP),
        "SIGHUP was touched"
    );
    assert_eq!(status.tracer_pid, 0);
}

/// An output path longer than the old scratch slot (2000 bytes) but within
/// a page: the target opens it, and the scratch page it was written in is
/// unmapped again (the process's mappings are as before).
#[test]
fn a_long_output_path_fits_the_scratch_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut sh = Shell::start(dir.path());
    // Nine directories of 240 bytes: the absolute path is over 2,100 bytes.
    let (out, rc) = sh.run("d=$(printf '%0240d' 0); p=$d/$d/$d/$d/$d/$d/$d/$d/$d; mkdir -p $p");
    assert_eq!(rc, 0, "{out}");
    let a = Victim::of(&sh.last_line("sleep 300 & echo $!"));
    let maps = || std::fs::read_to_string(format!("/proc/{}/maps", a.0.pid)).unwrap();
    let before = maps();
    let (out, rc) = sh.run(&format!("rdisown -o $p/out.log {}", a.0.pid));
    assert_eq!(rc, 0, "{out}");
    let log = dir
        .path()
        .join(vec!["0".repeat(240); 9].join("/"))
        .join("out.log");
    assert!(log.as_os_str().len() > 2100);
    let log = log.display().to_string();
    assert_eq!(a.fds(), ["/dev/null", log.as_str(), log.as_str()]);
    assert_eq!(maps(), before, "the scratch page is unmapped");

    // Eighteen: longer than the page (and than PATH_MAX). It is refused
    // before anything is written past the page.
    let (out, rc) =
        sh.run("(for i in $(seq 18); do mkdir -p $d && cd $d || exit; done); echo made");
    assert_eq!(rc, 0, "{out}");
    let b = Victim::of(&sh.last_line("sleep 301 & echo $!"));
    let tty = b.fds();
    let (out, rc) = sh.run(&format!(
        "rdisown -o $p/$d/$d/$d/$d/$d/$d/$d/$d/$d/out.log {}",
        b.0.pid
    ));
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "rdisown: [2] PID {} (sleep 301): opening '",
            b.0.pid
        )) && out.ends_with("' failed in the process: File name too long; left as it was\n"),
        "{out}"
    );
    assert_eq!(b.fds(), tty, "descriptors untouched");
}

/// disown names itself as invoked: as rdisown, its diagnostics say rdisown.
#[test]
fn diagnostics_use_the_name_invoked() {
    let out = Command::new(util::bin("rdisown"))
        .arg("x")
        .env("HUPKIT_NO_RECORD", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rdisown: 'x': not a job spec (%N, %+, %-, %name, %?text, PID or PID@STARTTIME)\n"
    );
}

/// A process that cannot open one more descriptor (`RLIMIT_NOFILE` at 3, its
/// three standard streams on a terminal): disown fails to open /dev/null in
/// it, and says "left as it was", which must be true: SIGHUP still at its
/// default, the controlling terminal and the descriptors unchanged. (disown
/// opens what it needs before it changes anything.)
#[test]
fn a_process_out_of_descriptors_is_left_exactly_as_it_was() {
    let pty = util::pty();
    let mut cmd = Command::new("sleep");
    cmd.arg("300")
        .stdin(std::process::Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let child = util::ChildGuard::new(util::spawn(&mut cmd));
    drop(pty.slave);
    let pid = child.pid();
    // The limit is set once it runs (the dynamic loader needs a fourth
    // descriptor to start it).
    let limited = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=3:3"])
        .status()
        .unwrap();
    assert!(limited.success());
    let before = hupkit_common::proc::Stat::read(pid).unwrap();
    assert_ne!(
        before.tty_nr,
        0,
        "the target has a controlling terminal: {}",
        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap()
    );
    let (rc, out, err) = disown(&["--null", &pid.to_string()]);
    assert_eq!(rc, 1, "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains("Too many open files") && err.trim_end().ends_with("left as it was"),
        "{err}"
    );
    let status = Status::read(pid).unwrap();
    assert!(
        !status.sig_ign.contains(Signal::SIGHUP),
        "SIGHUP was ignored although disown said it left the process as it was"
    );
    assert_eq!(status.tracer_pid, 0);
    assert_eq!(
        hupkit_common::proc::Stat::read(pid).unwrap().tty_nr,
        before.tty_nr
    );
    drop(pty.master);
}

/// A failure half-way through the changes: the target's fd 5 is on its
/// terminal too, but its `RLIMIT_NOFILE` is 5, so re-pointing fd 5 fails
/// (`dup3` refuses a descriptor number at or past the limit) after SIGHUP is
/// ignored and fds 0-2 are re-pointed. disown must say exactly what it did
/// (not "left as it was"), and leave nothing of its own open in the target.
#[test]
fn a_failure_half_way_says_what_was_done() {
    let pty = util::pty();
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "exec 5<>/dev/tty; exec sleep 300"])
        .stdin(std::process::Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(pty.slave.try_clone().unwrap()));
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let child = util::ChildGuard::new(util::spawn(&mut cmd));
    drop(pty.slave);
    let pid = child.pid();
    let fd5 = format!("/proc/{pid}/fd/5");
    assert!(
        util::poll_until(util::DEADLINE, || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
                && std::fs::read_link(&fd5).is_ok()
        }),
        "the target runs sleep with fd 5 open"
    );
    let open_fds = || {
        let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
            .collect();
        fds.sort_unstable();
        fds
    };
    let before = open_fds();
    assert_eq!(&before[..4], [0, 1, 2, 5]);
    let limited = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=5:5"])
        .status()
        .unwrap();
    assert!(limited.success());
    let (rc, out, err) = disown(&["--null", &pid.to_string()]);
    assert_eq!(
        (rc, out.as_str(), err.as_str()),
        (
            1,
            "",
            format!(
                "disown: PID {pid} (sleep 300): dup3 onto fd 5 failed in the process: Bad file descriptor; done before it: SIGHUP ignored; fds 0->/dev/null, 1->/dev/null, 2->/dev/null\n"
            )
            .as_str()
        )
    );
    let status = Status::read(pid).unwrap();
    assert!(status.sig_ign.contains(Signal::SIGHUP), "as reported");
    assert_eq!(status.tracer_pid, 0);
    assert_eq!(open_fds(), before, "nothing of disown's left open");
    drop(pty.master);
}
