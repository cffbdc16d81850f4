//! Soak: disown injected again and again into live processes; CI-sized here,
//! full counts with `cargo xtask soak` (`HUPKIT_SOAK_ROUNDS`).

use std::process::{Command, Stdio};

use crate::util;

/// Rounds for the soak tests: `HUPKIT_SOAK_ROUNDS` (cargo xtask soak sets the
/// full counts), else a CI-sized default.
fn rounds(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// disown injected again and again into live processes of every kind: none is
/// ever harmed (alive, not stopped, still doing its work).
#[test]
fn soak_disown_injections_harm_nothing() {
    use std::io::Write as _;
    let per_kind = rounds("HUPKIT_SOAK_ROUNDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("writer.log");
    let writer = "import threading,time,sys\nf=open(sys.argv[1],'a')\ndef w(n):\n    while True:\n        f.write(f'{n}\\n'); f.flush(); time.sleep(0.01)\nfor n in range(4): threading.Thread(target=w,args=(n,),daemon=True).start()\nwhile True: time.sleep(1)\n";
    std::fs::write(dir.path().join("w.py"), writer).unwrap();
    let spawn = |args: &[&str], stdin: Stdio| {
        util::ChildGuard::new(
            Command::new(args[0])
                .args(&args[1..])
                .stdin(stdin)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut targets = vec![
        ("sleeping", spawn(&["sleep", "600"], Stdio::null())),
        (
            "busy",
            spawn(&["sh", "-c", "while :; do :; done"], Stdio::null()),
        ),
        (
            "multithreaded",
            spawn(
                &[
                    "python3",
                    &dir.path().join("w.py").to_string_lossy(),
                    &log.to_string_lossy(),
                ],
                Stdio::null(),
            ),
        ),
        (
            "blocked in read",
            spawn(&["sh", "-c", "read x; echo got"], Stdio::piped()),
        ),
    ];
    // Each target in its state: the writer writing, the sleeper and the reader asleep.
    assert!(util::poll_until(util::DEADLINE, || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
            && [0, 3].iter().all(|&i| {
                hupkit_common::proc::Stat::read(targets[i].1.pid())
                    .is_ok_and(|s| s.state == hupkit_common::proc::ProcState::Sleeping)
            })
    }));
    let mut injected = 0;
    for round in 0..per_kind {
        for (kind, guard) in &mut targets {
            let pid = guard.pid().to_string();
            let out = util::run_tool("disown", &["--null", &pid]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{kind}, round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            injected += 1;
            let child = guard.0.as_mut().unwrap();
            assert!(
                child.try_wait().unwrap().is_none(),
                "{kind} died at round {round}"
            );
            let st = hupkit_common::proc::Stat::read(guard.pid()).unwrap();
            assert!(
                !(st.state.is_stopped() || st.state == hupkit_common::proc::ProcState::Zombie),
                "{kind} left in state {} at round {round}",
                st.state
            );
        }
    }
    // Still doing their work: the writer writes, the reader still reads its pipe.
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        util::poll_until(util::DEADLINE, || std::fs::metadata(&log).unwrap().len()
            > size),
        "the writer still writes"
    );
    let reader = targets
        .iter_mut()
        .find(|(k, _)| *k == "blocked in read")
        .unwrap();
    let child = reader.1.0.as_mut().unwrap();
    child.stdin.take().unwrap().write_all(b"line\n").unwrap();
    assert!(
        util::poll_until(util::DEADLINE, || child
            .try_wait()
            .unwrap()
            .is_some_and(|s| s.success())),
        "the reader got its line"
    );
    eprintln!("soak: {injected} injections, no target harmed");
}
