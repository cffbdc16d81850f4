//! Benchmarks against the anchors, measured as ratios in one run.
//!
//! Each benchmark starts our tool and its anchor alternately, in the same process,
//! the order flipped every pair, so that machine load and cache state fall on both
//! alike; the figure is the median of the per-pair ratios (ours / anchor), with its
//! spread. A ratio below 1.0 means we are faster. Timings are wall-clock from
//! `spawn` to `wait` returning, with all three standard streams on `/dev/null`.
//! Each row also shows the peak resident set of either side: the largest
//! `ru_maxrss` that `wait4` reported for the timed child over all runs (the
//! kernel keeps it across `execve`, so for a wrapper it is the larger of the
//! wrapper's and its command's; it does not count daemons left behind).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The GNU coreutils nohup that rnohup is measured against.
pub const GNU_NOHUP: &str = "/usr/bin/nohup";

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// A fresh scratch directory for one benchmark, under the target directory (on
/// the disk the project builds on, as users' state and pidfiles are on theirs).
/// Not under /tmp: on this project's machines a new directory there made each
/// file creation cost up to 1.5 ms, now and then, for ours and the anchors alike,
/// which measured that disk, not the tools.
fn scratch_dir(name: &str) -> PathBuf {
    target_dir(&crate::workspace_root()).join(format!("{name}.{}", std::process::id()))
}

fn build_release(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--locked",
            "--package",
            "hupkit",
            "--bins",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release failed".into());
    }
    Ok(target_dir(root).join("release"))
}

/// Kills and reaps every child of this process: the daemons a daemonizer left
/// behind are reparented here, because the benchmark is a child subreaper. No
/// process is picked by name: only our own children, from /proc.
fn reap_daemons() {
    reap_daemons_counted();
}

fn time_once(argv: &[&Path], env: &[(&str, &str)], reap: bool) -> Result<Duration, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd
        .spawn()
        .and_then(|mut c| c.wait())
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let elapsed = start.elapsed();
    if reap {
        reap_daemons();
    }
    if !status.success() {
        return Err(format!("{} failed: {status}", program.display()));
    }
    Ok(elapsed)
}

/// The peak-RSS launcher: runs `argv[2..]` and writes the command's `ru_maxrss`
/// (KiB) into the file `argv[1]`. Not measured from here: the kernel keeps a
/// process's peak across `execve`, so a child forked (or vforked) by this
/// multi-MiB benchmark process would carry the benchmark's size as its peak.
/// This launcher is a small static program, so its share is about 0.1 MiB
/// (`/bin/true` measures 1.1 MiB through it).
const RSS_LAUNCHER: &str = r#"#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 125;
    pid_t pid = vfork();
    if (pid < 0) return 125;
    if (pid == 0) { execv(argv[2], argv + 2); _exit(127); }
    int status; struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) return 125;
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f)) return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
"#;

/// Builds [`RSS_LAUNCHER`] once (with `cc -static`), under the target directory;
/// `None` where it cannot be built (the RSS columns then say n/a).
fn rss_launcher() -> Option<&'static Path> {
    static LAUNCHER: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    LAUNCHER
        .get_or_init(|| {
            let dir = target_dir(&crate::workspace_root()).join("bench-rss");
            std::fs::create_dir_all(&dir).ok()?;
            let src = dir.join("rss-launcher.c");
            let bin = dir.join("rss-launcher");
            std::fs::write(&src, RSS_LAUNCHER).ok()?;
            let ok = Command::new("cc")
                .args(["-O2", "-static", "-o"])
                .arg(&bin)
                .arg(&src)
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(bin)
        })
        .as_deref()
}

/// How many runs of each side [`compare_with`] measures the peak RSS of.
const RSS_RUNS: usize = 5;

/// The largest peak RSS (KiB) of `runs` runs of `cmd` through the launcher,
/// whatever their exit status; `prepare` sets up each command (its arguments
/// after the program, its environment and standard streams). `None` without a
/// launcher or when a run could not be measured.
fn max_rss(
    program: &Path,
    runs: usize,
    mut prepare: impl FnMut(&mut Command),
    reap: bool,
) -> Option<u64> {
    let launcher = rss_launcher()?;
    let out = scratch_dir("hupkit-bench-rss-out");
    let mut peak = 0;
    for _ in 0..runs {
        let mut cmd = Command::new(launcher);
        cmd.arg(&out).arg(program);
        prepare(&mut cmd);
        let ran = cmd.status();
        if reap {
            reap_daemons();
        }
        ran.ok()?;
        let kib = std::fs::read_to_string(&out)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        let _ = std::fs::remove_file(&out);
        peak = peak.max(kib);
    }
    Some(peak)
}

/// [`max_rss`] of the command line `argv`, set up as [`time_once`] does.
fn max_rss_of(argv: &[&Path], env: &[(&str, &str)], reap: bool) -> Option<u64> {
    let (program, args) = argv.split_first()?;
    // The launcher calls execv, which does not search PATH.
    let found;
    let program = if program.components().count() > 1 {
        *program
    } else {
        found = Path::new("/usr/bin").join(program);
        found.as_path()
    };
    max_rss(
        program,
        RSS_RUNS,
        |cmd| {
            cmd.args(args)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        },
        reap,
    )
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The result of one benchmark.
pub struct Comparison {
    /// Median time of ours, in microseconds.
    pub ours_us: f64,
    /// Median time of the anchor, in microseconds.
    pub anchor_us: f64,
    /// Median, 10th and 90th percentile of the per-pair ratios.
    pub ratio: (f64, f64, f64),
    /// Peak resident set of ours, in KiB: the largest of [`RSS_RUNS`] runs.
    pub ours_rss_kib: Option<u64>,
    /// Peak resident set of the anchor, in KiB, likewise.
    pub anchor_rss_kib: Option<u64>,
}

/// Runs `ours` and `anchor` alternately in environment `env`, `pairs` times
/// after a warm-up.
pub fn compare(
    ours: &[&Path],
    anchor: &[&Path],
    env: &[(&str, &str)],
    pairs: usize,
) -> Result<Comparison, String> {
    compare_with(ours, anchor, env, pairs, true)
}

/// [`compare`], choosing whether children left behind are killed after each run.
pub fn compare_with(
    ours: &[&Path],
    anchor: &[&Path],
    env: &[(&str, &str)],
    pairs: usize,
    reap: bool,
) -> Result<Comparison, String> {
    for _ in 0..pairs.min(50) {
        time_once(ours, env, reap)?;
        time_once(anchor, env, reap)?;
    }
    let mut a = Vec::with_capacity(pairs);
    let mut b = Vec::with_capacity(pairs);
    let mut ratios = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (r_ours, r_anchor) = if i % 2 == 0 {
            let x = time_once(ours, env, reap)?;
            (x, time_once(anchor, env, reap)?)
        } else {
            let y = time_once(anchor, env, reap)?;
            (time_once(ours, env, reap)?, y)
        };
        let (x, y) = (r_ours.as_secs_f64(), r_anchor.as_secs_f64());
        a.push(x * 1e6);
        b.push(y * 1e6);
        ratios.push(x / y);
    }
    for v in [&mut a, &mut b, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    Ok(Comparison {
        ours_us: quantile(&a, 0.5),
        anchor_us: quantile(&b, 0.5),
        ratio: (
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.1),
            quantile(&ratios, 0.9),
        ),
        ours_rss_kib: max_rss_of(ours, env, reap),
        anchor_rss_kib: max_rss_of(anchor, env, reap),
    })
}

/// A size in KiB as MiB with two decimals, the unit of the RSS columns.
fn mib(kib: Option<u64>) -> String {
    #[allow(clippy::cast_precision_loss)]
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.2} MiB", k as f64 / 1024.0))
}

fn row(name: &str, env: &str, pairs: usize, c: &Comparison) {
    println!(
        "| {name} | {env} | {pairs} | {:.0} µs | {:.0} µs | {:.3} | {:.3}-{:.3} | {} | {} |",
        c.ours_us,
        c.anchor_us,
        c.ratio.0,
        c.ratio.1,
        c.ratio.2,
        mib(c.ours_rss_kib),
        mib(c.anchor_rss_kib)
    );
}

/// `cargo xtask bench`: builds the release binaries and prints each comparison as
/// a Markdown table row.
pub fn run(pairs: usize) -> Result<(), String> {
    let root = crate::workspace_root();
    let release = build_release(&root)?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
    let gnu = Path::new(GNU_NOHUP);
    if !gnu.exists() {
        return Err(format!("{GNU_NOHUP} not found: the anchor is missing"));
    }
    println!(
        "| benchmark | environment | pairs | ours (median) | anchor (median) | ratio median | ratio p10-p90 | ours max RSS | anchor max RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");

    let rnohup = release.join("rnohup");
    let t = Path::new("true");
    // GNU nohup calls setlocale(LC_ALL, ""): in the C locale that is free, in a
    // UTF-8 locale it reads locale files. Both are what users run, so both count.
    for env in [[("LC_ALL", "C")], [("LANG", "C.UTF-8")]] {
        let c = compare(&[&rnohup, t], &[gnu, t], &env, pairs)?;
        let label = format!("{}={}", env[0].0, env[0].1);
        row("`rnohup true` vs GNU `nohup true`", &label, pairs, &c);
    }
    // With a HOME, rnohup also writes its job record (GNU nohup writes nothing).
    let state = scratch_dir("hupkit-bench-state");
    let state_s = state.to_string_lossy().into_owned();
    let env = [("LANG", "C.UTF-8"), ("XDG_STATE_HOME", state_s.as_str())];
    let c = compare(&[&rnohup, t], &[gnu, t], &env, pairs)?;
    row(
        "`rnohup true` (writing its job record) vs GNU `nohup true`",
        "LANG=C.UTF-8",
        pairs,
        &c,
    );
    let _ = std::fs::remove_dir_all(&state);

    bench_detach(&release, pairs.min(500))?;
    // disown's hold time is a latency: measured before rjobs' crowds of up
    // to 20,000 processes, whose teardown the kernel finishes in the
    // background (the p90 went from 1.1 to 3.9 ms right after them).
    bench_disown(&release, pairs.min(200))?;
    bench_rjobs(&release, pairs)?;
    bench_rfg(&release)?;
    bench_rss(&release)
}

/// `cargo xtask bench detach [--pairs N]`: only [`bench_detach`] (500 pairs
/// unless told), with the table's header.
///
/// # Errors
/// The build or a run failed.
pub fn run_detach(pairs: usize) -> Result<(), String> {
    let release = build_release(&crate::workspace_root())?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
    println!(
        "| benchmark | environment | pairs | ours (median) | anchor (median) | ratio median | ratio p10-p90 | ours max RSS | anchor max RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    bench_detach(&release, pairs)
}

/// The detach rows: `pairs` pairs each (the caller is a child subreaper).
/// `HUPKIT_BENCH_DETACH=PATH` measures that detach instead of this build's
/// (an older build, for a before-and-after in one sitting).
fn bench_detach(release: &Path, pairs: usize) -> Result<(), String> {
    // detach: start a daemon with a pidfile, against start-stop-daemon doing the
    // same, and against setsid -f (which writes no pidfile and reports nothing).
    let dir = scratch_dir("hupkit-bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let detach = std::env::var_os("HUPKIT_BENCH_DETACH")
        .map_or_else(|| release.join("detach"), PathBuf::from);
    let ours_pid = dir.join("detach.pid");
    let ssd_pid = dir.join("ssd.pid");
    let sleep = Path::new("/bin/sleep");
    let n = Path::new("1000");
    let ours: Vec<&Path> = vec![&detach, Path::new("-p"), &ours_pid, sleep, n];
    let env = [("LC_ALL", "C")];
    if let Some(ssd) = ["/sbin/start-stop-daemon", "/usr/sbin/start-stop-daemon"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    {
        let anchor: Vec<&Path> = vec![
            ssd,
            Path::new("--start"),
            Path::new("--background"),
            Path::new("--make-pidfile"),
            Path::new("--pidfile"),
            &ssd_pid,
            Path::new("--exec"),
            sleep,
            Path::new("--"),
            n,
        ];
        let c = compare(&ours, &anchor, &env, pairs)?;
        row(
            "`detach -p F sleep` vs `start-stop-daemon --start --background --make-pidfile`",
            "LC_ALL=C",
            pairs,
            &c,
        );
    }
    let setsid = Path::new("/usr/bin/setsid");
    if setsid.exists() {
        let anchor: Vec<&Path> = vec![setsid, Path::new("-f"), sleep, n];
        let c = compare(&ours, &anchor, &env, pairs)?;
        row(
            "`detach -p F sleep` vs `setsid -f sleep`",
            "LC_ALL=C",
            pairs,
            &c,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The tools of [`bench_rss`]: name, what it runs, and whether it acts on a
/// target process (`Some(stopped)`).
const RSS_CASES: [(&str, &str, Option<bool>); 6] = [
    ("rnohup", "`rnohup true`, writing its job record", None),
    ("detach", "`detach -p F sleep 1000`", None),
    ("rjobs", "`rjobs -A`", None),
    ("rbg", "`rbg PID` on a stopped process", Some(true)),
    (
        "disown",
        "`disown --null PID` on a sleeping process",
        Some(false),
    ),
    ("huplab", "`huplab` (one hangup of its lab)", None),
];

/// Sets up `c` (the launcher, with `tool`'s path) as `tool` in [`RSS_CASES`]
/// runs, on target `pid`, scratch `dir`.
fn rss_command(c: &mut Command, dir: &Path, tool: &str, pid: u32) {
    use std::os::unix::process::CommandExt;
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match tool {
        "rnohup" => c.arg("true").env("XDG_STATE_HOME", dir),
        "detach" => c
            .arg("-p")
            .arg(dir.join("d.pid"))
            .args(["/bin/sleep", "1000"]),
        "rjobs" => c.arg("-A"),
        "rbg" => c.arg(pid.to_string()),
        "disown" => c.args(["--null", &pid.to_string()]),
        _ => c.process_group(0),
    };
}

/// Peak RSS of every tool (goal: at most 4 MiB), each doing real work once per
/// run, the largest over its runs (rfg's is in its own table).
fn bench_rss(release: &Path) -> Result<(), String> {
    let dir = scratch_dir("hupkit-bench-rss");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
    let tty = || {
        pty.slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| e.to_string())
    };
    // A target for the tools that act on a job: a sleeping process on the
    // pseudo-terminal, session leader, started afresh for each run.
    let target = |stop: bool| -> Result<std::process::Child, String> {
        let mut cmd = Command::new("/bin/sleep");
        cmd.arg("1000").stdin(tty()?).stdout(tty()?).stderr(tty()?);
        hupkit_common::pty::session_leader_on_exec(&mut cmd);
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        if stop {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
        }
        std::thread::sleep(Duration::from_millis(5));
        Ok(child)
    };
    println!();
    println!("| tool | command | runs | max RSS | goal |");
    println!("|---|---|---|---|---|");
    for (tool, what, needs_target) in RSS_CASES {
        let runs = if tool == "huplab" { 3 } else { 20 };
        let mut peak = Some(0);
        for _ in 0..runs {
            let mut job = needs_target.map(target).transpose()?;
            let pid = job.as_ref().map_or(0, std::process::Child::id);
            // Reaps the daemons detach left, and the target: children of ours.
            let kib = max_rss(
                &release.join(tool),
                1,
                |c| rss_command(c, &dir, tool, pid),
                true,
            );
            if let Some(job) = &mut job {
                let _ = job.kill();
                let _ = job.wait();
            }
            peak = peak.zip(kib).map(|(a, b)| a.max(b));
        }
        println!("| {tool} | {what} | {runs} | {} | <= 4 MiB |", mib(peak));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `cargo xtask bench disown`: only [`bench_disown`], 200 runs.
///
/// # Errors
/// The build or a run failed.
pub fn run_disown() -> Result<(), String> {
    bench_disown(&build_release(&crate::workspace_root())?, 200)
}

/// The targets of [`bench_disown`]: a process asleep in a system call, and
/// one that makes none (a shell loop), which disown reaches another way.
const DISOWN_TARGETS: [(&str, &[&str]); 2] = [
    ("sleeping (`sleep`)", &["/bin/sleep", "1000"]),
    (
        "CPU-bound (`sh -c 'while :; do :; done'`)",
        &["/bin/sh", "-c", "while :; do :; done"],
    ),
];

/// One `disown --null -v` of a fresh target: the whole command and the time
/// held (disown's own measure, attach to detach), in ms.
fn disown_once(
    disown: &Path,
    argv: &[&str],
    pty: &nix::pty::OpenptyResult,
) -> Result<(f64, f64), String> {
    let tty = || {
        pty.slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| e.to_string())
    };
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .stdin(tty()?)
        .stdout(tty()?)
        .stderr(tty()?);
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let mut target = cmd.spawn().map_err(|e| e.to_string())?;
    // Let it reach its sleep or its loop.
    std::thread::sleep(Duration::from_millis(5));
    let start = Instant::now();
    let out = Command::new(disown)
        .args(["--null", "-v", &target.id().to_string()])
        .env_clear()
        .output();
    let total = start.elapsed().as_secs_f64() * 1e3;
    let _ = target.kill();
    let _ = target.wait();
    let out = out.map_err(|e| format!("{}: {e}", disown.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let us: f64 = text
        .rsplit("; held ")
        .next()
        .and_then(|t| t.trim().strip_suffix("µs"))
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "disown said: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok((total, us / 1e3))
}

/// `disown --null -v PID` on fresh targets, sleeping and CPU-bound: the whole
/// command, and how long the target was held stopped (disown's own measure,
/// attach to detach). With `HUPKIT_BENCH_DISOWN_BASELINE=PATH`, an older
/// disown is measured in the same run, alternating with this build (the
/// order flipped every run), so that both get the same load.
fn bench_disown(release: &Path, runs: usize) -> Result<(), String> {
    let mut binaries = vec![("this build".to_string(), release.join("disown"))];
    if let Some(old) = std::env::var_os("HUPKIT_BENCH_DISOWN_BASELINE") {
        binaries.push((
            "`HUPKIT_BENCH_DISOWN_BASELINE`".to_string(),
            PathBuf::from(old),
        ));
    }
    // The target's fds 0-2 are its controlling terminal (a pseudo-terminal), so
    // disown has the full work: SIGHUP, /dev/null and the output opened, three
    // descriptors re-pointed (it is a session leader here, so no TIOCNOTTY).
    let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
    // [binary][target] -> (totals, helds)
    let mut figures = vec![vec![(Vec::new(), Vec::new()); DISOWN_TARGETS.len()]; binaries.len()];
    for run in 0..runs {
        for (t, (_, argv)) in DISOWN_TARGETS.iter().enumerate() {
            for k in 0..binaries.len() {
                let b = if run % 2 == 0 {
                    k
                } else {
                    binaries.len() - 1 - k
                };
                let (total, held) = disown_once(&binaries[b].1, argv, &pty)?;
                figures[b][t].0.push(total);
                figures[b][t].1.push(held);
            }
        }
    }
    println!();
    println!("| benchmark | disown | runs | median | p90 | goal |");
    println!("|---|---|---|---|---|---|");
    for (t, (target, _)) in DISOWN_TARGETS.iter().enumerate() {
        for (b, (name, _)) in binaries.iter().enumerate() {
            let (total, held) = &mut figures[b][t];
            total.sort_by(f64::total_cmp);
            held.sort_by(f64::total_cmp);
            println!(
                "| `disown --null PID`, {target}, whole command | {name} | {runs} | {:.2} ms | {:.2} ms | < 10 ms |",
                quantile(total, 0.5),
                quantile(total, 0.9)
            );
            println!(
                "| time the {target} target is held stopped | {name} | {runs} | {:.3} ms | {:.3} ms | p90 <= 2 ms |",
                quantile(held, 0.5),
                quantile(held, 0.9)
            );
        }
    }
    Ok(())
}

/// `rjobs -A` against `ps -e -o pid,ppid,pgid,sid,tty,stat,args` with 2000 extra
/// processes (each its own process group), and `rjobs --records` over 10,000 records.
fn bench_rjobs(release: &Path, pairs: usize) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut extra = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let child = Command::new("/bin/sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the extra processes: {e}"))?;
        extra.push(child);
    }
    let rjobs = release.join("rjobs");
    let ps = Path::new("/bin/ps");
    let n = pairs.min(200);
    let result = compare_with(
        &[&rjobs, Path::new("-A")],
        &[
            ps,
            Path::new("-e"),
            Path::new("-o"),
            Path::new("pid,ppid,pgid,sid,tty,stat,args"),
        ],
        &[("LC_ALL", "C")],
        n,
        false,
    );
    for child in &mut extra {
        let _ = child.kill();
    }
    for mut child in extra {
        let _ = child.wait();
    }
    let c = result?;
    row(
        "`rjobs -A` vs `ps -e -o pid,ppid,pgid,sid,tty,stat,args`, 2000 extra processes",
        "LC_ALL=C",
        n,
        &c,
    );

    // 10,000 records of jobs that are gone (each is checked against /proc).
    let state = scratch_dir("hupkit-bench-records");
    let jobs = state.join("hupkit/jobs");
    std::fs::create_dir_all(&jobs).map_err(|e| format!("{}: {e}", jobs.display()))?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    for i in 0..10_000u32 {
        let text = format!(
            "hupkit-job 1\npid={}\nstarttime={}\nboot_id={}\nwhen=2026-11-22T10:00:00+00:00\nlevel=nohup\nhost=bench\ncwd=/tmp\ntty=/dev/pts/0\noutput=/tmp/nohup.out\npidfile=\narg=sleep\narg={i}\n",
            4_000_000 + i,
            1000 + u64::from(i),
            boot.trim()
        );
        std::fs::write(
            jobs.join(format!("{}-{}.job", 4_000_000 + i, 1000 + i)),
            text,
        )
        .map_err(|e| e.to_string())?;
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let status = Command::new(&rjobs)
            .arg("--records")
            .env_clear()
            .env("XDG_STATE_HOME", &state)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        if !status.success() {
            return Err("rjobs --records failed".into());
        }
    }
    times.sort_by(f64::total_cmp);
    let _ = std::fs::remove_dir_all(&state);
    println!();
    println!("| benchmark | runs | median | max | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| `rjobs --records`, 10,000 records | 20 | {:.1} ms | {:.1} ms | < 100 ms |",
        quantile(&times, 0.5),
        times.last().copied().unwrap_or(f64::NAN)
    );
    bench_rjobs_scaling(release)
}

/// `n` idle processes for the rjobs benchmarks, each in a process group of its
/// own (so each is a job to `rjobs -A`, as a `sleep &` of a shell is), started
/// cheaply: one holder process, forked from this one and leader of a session
/// of its own, forks them; each sets `PR_SET_PDEATHSIG` to SIGKILL and
/// `pause()`s. No `exec`: 20,000 of them cost seconds, not minutes, and about
/// 100 KB of kernel memory each. Dropping the crowd kills the holder by PID,
/// which kills every member (their parent-death signal), and reaps them all
/// (they are reparented to this process, a child subreaper).
struct Crowd {
    holder: nix::unistd::Pid,
    /// How many the holder started.
    started: usize,
}

impl Crowd {
    fn start(n: usize) -> Result<Crowd, String> {
        use nix::unistd::{
            ForkResult, fork, getpid, getppid, pause, pipe, read, setpgid, setsid, write,
        };
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
        let (rx, tx) = pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: the child calls only async-signal-safe functions (setsid,
        // fork, prctl, getppid, setpgid, pause, write, _exit) and allocates nothing.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                drop(rx);
                let _ = setsid();
                let holder = getpid();
                let mut started = 0u32;
                for _ in 0..n {
                    // SAFETY: as above; the member only pauses until killed.
                    match unsafe { fork() } {
                        Ok(ForkResult::Child) => {
                            let _ =
                                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                            if getppid() != holder {
                                // SAFETY: _exit is async-signal-safe.
                                unsafe { nix::libc::_exit(0) };
                            }
                            let _ = setpgid(
                                nix::unistd::Pid::from_raw(0),
                                nix::unistd::Pid::from_raw(0),
                            );
                            loop {
                                pause();
                            }
                        }
                        Ok(ForkResult::Parent { .. }) => started += 1,
                        Err(_) => break,
                    }
                }
                let _ = write(&tx, &started.to_ne_bytes());
                drop(tx);
                loop {
                    pause();
                }
            }
            ForkResult::Parent { child } => {
                drop(tx);
                let mut crowd = Crowd {
                    holder: child,
                    started: 0,
                };
                let mut buf = [0u8; 4];
                let got = read(&rx, &mut buf).map_err(|e| format!("read: {e}"))?;
                if got != 4 {
                    return Err("the crowd's holder died before reporting".into());
                }
                crowd.started = u32::from_ne_bytes(buf) as usize;
                if crowd.started < n {
                    return Err(format!(
                        "could start only {} of {n} extra processes (fork failed)",
                        crowd.started
                    ));
                }
                // Each member sets its own group after the fork: wait until all have.
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline && crowd.grouped() < n {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(crowd)
            }
        }
    }

    /// How many members lead their own group yet (children of the holder
    /// whose group is their PID).
    fn grouped(&self) -> usize {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.holder))
            .unwrap_or_default();
        children
            .split_ascii_whitespace()
            .filter_map(|pid| pid.parse().ok().map(nix::unistd::Pid::from_raw))
            .filter(|&pid| nix::unistd::getpgid(Some(pid)) == Ok(pid))
            .count()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.holder, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.holder, None);
        // The members die of their parent-death signal and come to this
        // process (the subreaper) as zombies: reap them as they come.
        let mut left = self.started;
        let deadline = Instant::now() + Duration::from_secs(60);
        while left > 0 && Instant::now() < deadline {
            let before = left;
            left = left.saturating_sub(reap_daemons_counted());
            if left == before {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The limits on how many processes this machine can have, lowest first:
/// `(limit, name)`.
fn process_limits() -> Vec<(usize, String)> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<usize>().ok())
    };
    let mut limits = Vec::new();
    if let Some(n) = read("/proc/sys/kernel/pid_max") {
        limits.push((n, "/proc/sys/kernel/pid_max".to_string()));
    }
    if let Some(n) = read("/proc/sys/kernel/threads-max") {
        limits.push((n, "/proc/sys/kernel/threads-max".to_string()));
    }
    if let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
    {
        limits.push((
            usize::try_from(soft).unwrap_or(usize::MAX),
            "RLIMIT_NPROC".to_string(),
        ));
    }
    for p in ["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"] {
        if let Some(n) = read(p) {
            limits.push((n, p.to_string()));
        }
    }
    limits.sort();
    limits
}

/// One run of `argv` (output to /dev/null): its wall-clock time and its peak
/// resident set (`ru_maxrss` of `wait4`, KiB).
fn time_rss(argv: &[&Path]) -> Result<(Duration, i64), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; all-zero is a valid value.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to live locals.
    let r = unsafe { nix::libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let elapsed = start.elapsed();
    if r != pid {
        return Err(format!("{}: wait4 failed", program.display()));
    }
    if !(nix::libc::WIFEXITED(status) && nix::libc::WEXITSTATUS(status) == 0) {
        return Err(format!("{} failed: status {status:#x}", program.display()));
    }
    Ok((elapsed, usage.ru_maxrss))
}

/// The peak RSS of one run of `argv` in KiB, as `/usr/bin/time -f %M` reports
/// it (`None` without it).
fn peak_rss_kib(argv: &[&Path]) -> Option<i64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let out = Command::new(time)
        .args(["-f", "%M"])
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// `cargo xtask bench rjobs`: builds the release binaries and runs
/// [`bench_rjobs`] alone (with its scaling table).
pub fn run_rjobs(pairs: usize) -> Result<(), String> {
    let release = build_release(&crate::workspace_root())?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
    bench_rjobs(&release, pairs)
}

/// The sizes of [`bench_rjobs_scaling`]'s crowd.
const SCALING_SIZES: [usize; 3] = [200, 2000, 20_000];

/// `rjobs -A` and `ps -e -o pid,ppid,pgid,sid,tty,stat,args` beside 200, 2000
/// and 20,000 extra processes (a [`Crowd`], each its own job): median time of
/// alternating runs, milliseconds per 1000 processes present, and rjobs' peak
/// RSS. Where the machine cannot hold 20,000 more, the largest crowd is what
/// its lowest limit allows (named in the table).
pub fn bench_rjobs_scaling(release: &Path) -> Result<(), String> {
    let rjobs = release.join("rjobs");
    let ps = Path::new("/bin/ps");
    let ours: [&Path; 2] = [&rjobs, Path::new("-A")];
    let anchor: [&Path; 4] = [
        ps,
        Path::new("-e"),
        Path::new("-o"),
        Path::new("pid,ppid,pgid,sid,tty,stat,args"),
    ];
    let present = || {
        std::fs::read_dir("/proc").map_or(0, |d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
    };
    let limits = process_limits();
    let (lowest, lowest_name) = limits
        .first()
        .cloned()
        .unwrap_or((usize::MAX, "none".into()));
    // Room for the rest of the machine: what runs now, and a margin of 1000.
    let room = lowest.saturating_sub(present() + 1000);
    println!();
    println!(
        "| extra processes | processes present | rjobs -A (median) | ps (median) | ratio | rjobs ms per 1000 processes | ps ms per 1000 processes | rjobs peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for want in SCALING_SIZES {
        let n = want.min(room);
        let note = if n < want {
            format!(" (limited by {lowest_name} = {lowest})")
        } else {
            String::new()
        };
        let crowd = Crowd::start(n)?;
        let total = present();
        let runs = if n >= 10_000 { 10 } else { 30 };
        let (mut ours_ms, mut ps_ms, mut ratios, mut rss) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for i in 0..=runs {
            let (x, y) = if i % 2 == 0 {
                let x = time_rss(&ours)?;
                (x, time_rss(&anchor)?)
            } else {
                let y = time_rss(&anchor)?;
                (time_rss(&ours)?, y)
            };
            if i == 0 {
                continue; // warm-up
            }
            rss = rss.max(x.1);
            ours_ms.push(x.0.as_secs_f64() * 1e3);
            ps_ms.push(y.0.as_secs_f64() * 1e3);
            ratios.push(x.0.as_secs_f64() / y.0.as_secs_f64());
        }
        // wait4's figure counts this benchmark's own image (posix_spawn shares
        // it until exec, and the high-water mark survives exec): GNU time forks
        // from a small process, so its figure is rjobs' own.
        if let Some(kib) = peak_rss_kib(&ours) {
            rss = kib;
        }
        drop(crowd);
        for v in [&mut ours_ms, &mut ps_ms, &mut ratios] {
            v.sort_by(f64::total_cmp);
        }
        let (ma, mb) = (quantile(&ours_ms, 0.5), quantile(&ps_ms, 0.5));
        #[allow(clippy::cast_precision_loss)]
        let per = |ms: f64| ms * 1000.0 / total.max(1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let rss_mib = rss as f64 / 1024.0;
        println!(
            "| {n}{note} | {total} | {ma:.1} ms | {mb:.1} ms | {:.3} | {:.2} | {:.2} | {:.1} MiB |",
            quantile(&ratios, 0.5),
            per(ma),
            per(mb),
            rss_mib
        );
    }
    Ok(())
}

/// Kills and reaps every child of this process, like [`reap_daemons`]; the number reaped.
fn reap_daemons_counted() -> usize {
    let me = std::process::id();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) else {
        return 0;
    };
    let mut reaped = 0;
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_ascii_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            if nix::sys::wait::waitpid(pid, None).is_ok() {
                reaped += 1;
            }
        }
    }
    reaped
}

/// `cargo xtask bench rfg`: builds the release binaries and runs [`bench_rfg`] alone.
pub fn run_rfg() -> Result<(), String> {
    bench_rfg(&build_release(&crate::workspace_root())?)
}

/// How long `rfg` is measured while its job runs.
const RFG_WINDOW: Duration = Duration::from_secs(10);

/// The processes beside rfg's job during [`bench_rfg`].
const RFG_CROWD: usize = 2000;

/// The job and rfg in a session of their own on a new pseudo-terminal: the
/// job (`sleep`) in its own group, then `exec rfg JOB`, so that rfg is this
/// process's child, the session leader, and in the terminal's foreground group.
const RFG_SESSION: &str =
    r#"set -m; sleep 1000 & j=$!; set +m; echo "$j" > job.pid; exec "$RFG" "$j""#;

/// The CPU time (user + system) `pid` has used, from /proc/PID/stat, in
/// seconds (proc(5): clock ticks of `USER_HZ`, 100 on every architecture hupkit
/// builds for).
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Fields after comm, numbered from 3 (state): utime is 14, stime 15.
    let fields: Vec<&str> = after.split_ascii_whitespace().collect();
    let ticks = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: no field {n}"))
    };
    #[allow(clippy::cast_precision_loss)]
    Ok((ticks(14)? + ticks(15)?) as f64 / 100.0)
}

/// rfg's CPU time while its job runs for [`RFG_WINDOW`], beside [`RFG_CROWD`]
/// other processes (all in one process group of the benchmark's own, killed
/// by that group after): this build's rfg, and the one named by
/// `HUPKIT_BENCH_RFG_BASELINE` (an older build, for the before/after figure).
pub fn bench_rfg(release: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut crowd = Vec::with_capacity(RFG_CROWD);
    let mut group = 0;
    let mut started = Ok(());
    for _ in 0..RFG_CROWD {
        match Command::new("/bin/sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(group)
            .spawn()
        {
            Ok(child) => {
                if group == 0 {
                    group = i32::try_from(child.id()).unwrap_or(0);
                }
                crowd.push(child);
            }
            Err(e) => {
                started = Err(format!("cannot start the extra processes: {e}"));
                break;
            }
        }
    }
    let mut rows = Vec::new();
    let mut result = started;
    let baseline = std::env::var_os("HUPKIT_BENCH_RFG_BASELINE").map(PathBuf::from);
    let mut binaries = vec![("this build", release.join("rfg"))];
    binaries.extend(baseline.map(|b| ("`HUPKIT_BENCH_RFG_BASELINE`", b)));
    for (name, rfg) in &binaries {
        if result.is_err() {
            break;
        }
        match rfg_cpu(rfg) {
            Ok((cpu, hwm)) => rows.push((name, rfg, cpu, hwm)),
            Err(e) => result = Err(e),
        }
    }
    if group > 0 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for mut child in crowd {
        let _ = child.wait();
    }
    result?;
    println!();
    println!("| benchmark | rfg | CPU time | share of a core | goal | max RSS |");
    println!("|---|---|---|---|---|---|");
    for (name, rfg, cpu, hwm) in rows {
        println!(
            "| rfg waiting while its job runs {} s, {RFG_CROWD} extra processes | {name} ({}) | {:.2} s | {:.2}% | < 1% | {} |",
            RFG_WINDOW.as_secs(),
            rfg.display(),
            cpu,
            100.0 * cpu / RFG_WINDOW.as_secs_f64(),
            mib(Some(hwm))
        );
    }
    Ok(())
}

/// The peak resident set of a live process `pid` in KiB (`VmHWM` in
/// /proc/PID/status), 0 where it cannot be read.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One rfg in a session of its own ([`RFG_SESSION`]): its CPU time over
/// [`RFG_WINDOW`] from the moment its job has the terminal, and its peak
/// resident set by then (KiB).
fn rfg_cpu(rfg: &Path) -> Result<(f64, u64), String> {
    use std::os::fd::AsFd;
    let dir = scratch_dir("hupkit-bench-rfg");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
    let tty = || {
        pty.slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| e.to_string())
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", RFG_SESSION])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("RFG", rfg)
        .stdin(tty()?)
        .stdout(tty()?)
        .stderr(Stdio::null());
    hupkit_common::pty::session_leader_on_exec(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", rfg.display()))?;
    let pid = child.id();
    let job_file = dir.join("job.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut job = None;
    let mut measured = Err(format!("{}: the job never got the terminal", rfg.display()));
    while Instant::now() < deadline {
        job = job.or_else(|| {
            std::fs::read_to_string(&job_file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
        });
        let fg = nix::unistd::tcgetpgrp(pty.master.as_fd()).map(nix::unistd::Pid::as_raw);
        if let (Some(j), Ok(fg)) = (job, fg) {
            if fg == j {
                let before = cpu_seconds(pid)?;
                std::thread::sleep(RFG_WINDOW);
                measured = cpu_seconds(pid).map(|after| (after - before, vm_hwm_kib(pid)));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(j) = job {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(j),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    measured
}
