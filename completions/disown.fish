complete -c disown -s o -l output -d 'Append output to FILE [default: nohup.out, else $HOME/nohup.out]' -r -F
complete -c disown -s g -l group -d 'A PID means its whole process group'
complete -c disown -s r -l tree -d 'Add every descendant of the processes named'
complete -c disown -s a -l all -d 'Ignore SIGHUP even in a process that installed its own handler'
complete -c disown -l null -d 'Discard output (/dev/null)'
complete -c disown -l keep-tty -d 'Only make SIGHUP ignored (bash\'s disown -h): descriptors and terminal untouched'
complete -c disown -s v -l verbose -d 'Also say how long each process was held stopped while it was changed'
complete -c disown -s h -l help -d 'Print help'
complete -c disown -s V -l version -d 'Print version'
