# fish completion for proverctl (`proverctl completion fish`).
# Install: mkdir -p ~/.config/fish/completions && proverctl completion fish > ~/.config/fish/completions/proverctl.fish
function __proverctl_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l words (string join \n -- $tokens[2..-1] | string collect)
    _PROVERCTL_COMPLETE=fish _PROVERCTL_COMPLETE_WORDS="$words" _PROVERCTL_COMPLETE_INCOMPLETE="$current" $tokens[1] 2>/dev/null | while read -l line
        set -l parts (string split \t -- $line)
        switch $parts[1]
            case file
                __fish_complete_path $current
            case dir
                __fish_complete_directories $current
            case '*'
                if test -n "$parts[3]"
                    printf '%s\t%s\n' $parts[2] $parts[3]
                else
                    printf '%s\n' $parts[2]
                end
        end
    end
end
complete -c proverctl -f -a '(__proverctl_complete)'
