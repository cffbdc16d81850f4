complete -c rbg -s h -l help -d 'Print help'
complete -c rbg -s V -l version -d 'Print version'
