# Alternating runs of several commands, medians (docs/benchmarks.md, "Floors"): python3 alternate.py ROUNDS "CMD ARGS" "CMD ARGS"...
import os, time, sys, statistics
cmds = [a.split() for a in sys.argv[2:]]
n = int(sys.argv[1])
env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
dn = os.open("/dev/null", os.O_RDWR)
res = [[] for _ in cmds]
for i in range(n):
    order = list(range(len(cmds))) if i % 2 == 0 else list(reversed(range(len(cmds))))
    for k in order:
        t = time.perf_counter()
        pid = os.posix_spawn(cmds[k][0], cmds[k], env, file_actions=[(os.POSIX_SPAWN_DUP2, dn, 0), (os.POSIX_SPAWN_DUP2, dn, 1), (os.POSIX_SPAWN_DUP2, dn, 2)])
        os.waitpid(pid, 0)
        res[k].append(time.perf_counter() - t)
for c, r in zip(cmds, res):
    print(" ".join(c), "median %.0f us" % (statistics.median(r) * 1e6))
