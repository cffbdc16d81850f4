complete -c rnohup -l output -d 'append output to FILE instead of \'nohup.out\'' -r -F
complete -c rnohup -l help -d 'display this help and exit'
complete -c rnohup -l version -d 'output version information and exit'
