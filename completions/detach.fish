complete -c detach -s c -l chdir -d 'Working directory of the daemon [default: /]' -r -f -a "(__fish_complete_directories)"
complete -c detach -s e -l stderr -d 'Standard error of the daemon [default: /dev/null]' -r -F
complete -c detach -s o -l stdout -d 'Standard output of the daemon [default: /dev/null]; the same FILE as --stderr shares one open file' -r -F
complete -c detach -s E -l env -d 'Set NAME to VALUE in the daemon\'s environment (repeatable)' -r
complete -c detach -s l -l lock -d 'Single instance: refuse to start while the daemon recorded in FILE lives' -r -F
complete -c detach -s p -l pidfile -d 'Write the daemon\'s PID to FILE (and its identity to FILE.id) before returning' -r -F
complete -c detach -s u -l user -d 'Run as USER, with its groups, or as USER:GROUP (root only)' -r -f -a "(__fish_complete_users)"
complete -c detach -s m -l umask -d 'The daemon\'s umask, in octal [default: the caller\'s]' -r
complete -c detach -l notify -d 'Give the daemon a NOTIFY_SOCKET (sd_notify protocol) and return when it sends READY=1; fail if it exits first, sends ERRNO=, or is not ready in SECONDS [default: 60]' -r
complete -c detach -l job -d 'With --status, --stop or another control: the daemon of the job record ID (PID@STARTTIME, as rjobs --records shows it), for a daemon started without --pidfile' -r
complete -c detach -l retry -d 'With --stop or --restart: signals and waits, e.g. TERM/5/KILL/2, or N for TERM/N/KILL/N [default: TERM/10]' -r
complete -c detach -l signal -d 'With --reload: the signal to send instead of SIGHUP (USR1, SIGUSR1, -10)' -r
complete -c detach -l print -d 'Print an /etc/init.d script (sysv) or a systemd unit (systemd) that runs COMMAND with these options, instead of running it' -r -f -a "sysv\t'An /etc/init.d script with LSB headers, calling detach'
systemd\t'A systemd service unit with the same settings'"
complete -c detach -l name -d 'With --print: the service\'s name (letters, digits and _.@-); the script\'s pidfile is /run/NAME.pid unless -p is given' -r
complete -c detach -l syslog -d 'Send each line the daemon writes to syslog through /dev/log, tagged TAG[PID] [default TAG: COMMAND\'s name], facility daemon, standard output at priority info, standard error at err (see LOGGING; not with --scope, whose logout the relay would not survive: use --journal there)' -r
complete -c detach -l journal -d 'Connect the daemon\'s standard output (priority 6) and error (3) straight to journald, identifier TAG [default: COMMAND\'s name] (see LOGGING)' -r
complete -c detach -s a -l append -d 'Append to the --stdout/--stderr files instead of truncating them'
complete -c detach -s v -l verbose -d 'Say what was done, on standard error'
complete -c detach -l scope -d 'Start the daemon in a new transient scope of the caller\'s service manager (the user manager; for root, the system manager), before it runs COMMAND: logind\'s kill of the session at logout (KillUserProcesses=yes) does not reach it'
complete -c detach -l linger -d 'Enable lingering for the daemon\'s user (logind\'s SetUserLinger), so that its service manager, and a --scope daemon with it, outlives the user\'s last logout'
complete -c detach -l status -d 'Tell whether the daemon of the --pidfile (or --job) runs (LSB status codes)'
complete -c detach -l stop -d 'Stop the daemon of the --pidfile (or --job), wait for it to end, remove the pidfile (a paused daemon is continued after each signal, so that it can act on it)'
complete -c detach -s h -l help -d 'Print help'
complete -c detach -s V -l version -d 'Print version'
complete -c detach -l reload -d 'Ask the daemon of the --pidfile (or --job) to reread its configuration: send it SIGHUP (or --signal)'
complete -c detach -l pause -d 'Stop (SIGSTOP) the process group of the daemon of the --pidfile (or --job): the daemon and its children'
complete -c detach -l resume -d 'Continue (SIGCONT) the process group of a paused daemon of the --pidfile (or --job)'
complete -c detach -l restart -d 'Stop the daemon of the --pidfile (or --job), then start it again with the command line and options read back from its job record'
