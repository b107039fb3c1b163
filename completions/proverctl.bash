# bash completion for proverctl (`proverctl completion bash`); needs bash >= 4.4.
# Install: mkdir -p ~/.local/share/bash-completion/completions && proverctl completion bash > ~/.local/share/bash-completion/completions/proverctl
_proverctl() {
    local IFS=$'\n' cur="${COMP_WORDS[COMP_CWORD]}" line kind value
    local lines
    lines=$(_PROVERCTL_COMPLETE=bash \
            _PROVERCTL_COMPLETE_WORDS="$(printf '%s\n' "${COMP_WORDS[@]:1:COMP_CWORD-1}")" \
            _PROVERCTL_COMPLETE_INCOMPLETE="$cur" "${COMP_WORDS[0]}" 2>/dev/null)
    COMPREPLY=()
    for line in $lines; do
        kind=${line%%$'\t'*}
        value=${line#*$'\t'}
        value=${value%%$'\t'*}
        case $kind in
            file) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -f -- "$cur")) ;;
            dir) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -d -- "$cur")) ;;
            *) COMPREPLY+=("$value") ;;
        esac
    done
    return 0
}
complete -o nosort -F _proverctl proverctl
