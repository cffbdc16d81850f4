complete -c rfg -s h -l help -d 'Print help'
complete -c rfg -s V -l version -d 'Print version'
