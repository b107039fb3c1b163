#compdef proverctl
# zsh completion for proverctl (`proverctl completion zsh`).
# Install: mkdir -p ~/.zfunc && proverctl completion zsh > ~/.zfunc/_proverctl, and fpath=(~/.zfunc $fpath) before compinit
# in ~/.zshrc (or `source <(proverctl completion zsh)` after compinit)
_proverctl() {
    local -a described plain
    local line kind value help files=0 dirs=0
    local IFS=$'\n'
    for line in $(_PROVERCTL_COMPLETE=zsh \
                  _PROVERCTL_COMPLETE_WORDS="${(pj:\n:)words[2,CURRENT-1]}" \
                  _PROVERCTL_COMPLETE_INCOMPLETE="${words[CURRENT]}" "${words[1]}" 2>/dev/null); do
        kind=${line%%$'\t'*}
        value=${line#*$'\t'}
        help=${value#*$'\t'}
        value=${value%%$'\t'*}
        case $kind in
            file) files=1 ;;
            dir) dirs=1 ;;
            *) if [[ -n $help ]]; then described+=("${value//:/\\:}:$help"); else plain+=("$value"); fi ;;
        esac
    done
    (( ${#described} )) && _describe -V values described
    (( ${#plain} )) && compadd -V plain -Q -a plain
    (( files )) && _files
    (( dirs )) && _files -/
    return 0
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _proverctl "$@"
else
    compdef _proverctl proverctl
fi
