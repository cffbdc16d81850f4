complete -c rjobs -s t -l tty -d 'The session of another terminal (read-only view), e.g. /dev/pts/3 or pts/3' -r -F
complete -c rjobs -l explain -d 'Explain one process (PID, PID@STARTTIME or a job spec): its session, group, terminal, SIGHUP, where fds 0-2 lead, and what hangup, shell exit, kill -HUP of the shell and logout (logind) would do to it' -r
complete -c rjobs -s l -l long -d 'Show each member process, with its SIGHUP disposition, terminal fds, controlling terminal, orphaned group, tracer, what logout does to it and where its output goes (lost when its terminal has hung up)'
complete -c rjobs -s A -l all-sessions -d 'Every session, grouped by session, then by job'
complete -c rjobs -l records -d 'The jobs started by rnohup, detach and disown, across sessions and logouts'
complete -c rjobs -l prune -d 'With --records: forget the records of jobs that are gone'
complete -c rjobs -l json -d 'Print JSON instead of a table'
complete -c rjobs -s h -l help -d 'Print help'
complete -c rjobs -s V -l version -d 'Print version'
