complete -c huplab -l event -d 'What happens to the terminal session' -r -f -a "hangup\t'The terminal hangs up (a dropped ssh link)'
exit\t'The user types exit'
sighup\t'kill -HUP to the shell'
login-exit\t'A login shell with huponexit exits'
logout\t'The user logs out and logind kills the session\'s cgroup (KillUserProcesses=yes), applied by the lab to its shell\'s cgroup (root)'
all\t'Each of them, in turn'"
complete -c huplab -l shell -d 'The interactive shell to run in the lab (where installed)' -r -f -a "bash\t'GNU bash'
zsh\t'zsh'
dash\t'dash'"
complete -c huplab -l probe -d 'Run as a probe (internal)' -r
complete -c huplab -l json -d 'Print JSON instead of a table'
complete -c huplab -l commands -d 'Print the lines the lab types for each level and for the event (to replay them by hand), and run nothing'
complete -c huplab -s h -l help -d 'Print help'
complete -c huplab -s V -l version -d 'Print version'
