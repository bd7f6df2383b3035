# bash completion for svcctl.
#
# The candidates come from the svcctl being completed (`svcctl __complete -- WORD...`), which
# reads them from its own command line definition and, for names, from the registry that
# --zk (or SVCCTL_ZK) points at; so this file never needs to change with svcctl.
# Needs no bash-completion package.

# bash splits words at ':' and '=' (COMP_WORDBREAKS): "127.0.0.1:9101" arrives as three
# words. Glue them back, so that svcctl sees the words as typed.
_svcctl_words() {
    local i word glue=0
    for ((i = 1; i <= COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((${#_svcctl_typed[@]} > 0)) && [[ $word =~ ^[:=]+$ ]]; then
            _svcctl_typed[-1]+=$word
            glue=1
        elif ((glue)); then
            _svcctl_typed[-1]+=$word
            glue=0
        else
            _svcctl_typed+=("$word")
        fi
    done
}

_svcctl() {
    local bin=${COMP_WORDS[0]} cur line kind
    [[ $bin == "~/"* ]] && bin=$HOME/${bin#"~/"}
    local -a _svcctl_typed lines
    _svcctl_words
    cur=${_svcctl_typed[-1]}
    mapfile -t lines < <("$bin" __complete -- "${_svcctl_typed[@]}" 2>/dev/null)
    kind=${lines[0]-}
    COMPREPLY=()
    if [[ $kind == files ]]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
    fi
    [[ $kind == words ]] || return
    # bash replaces only the part after the last ':' or '=' of the word.
    local keep=${cur%"${cur##*[:=]}"}
    for line in "${lines[@]:1}"; do
        line=${line%%$'\t'*}
        COMPREPLY+=("${line#"$keep"}")
    done
}

complete -F _svcctl svcctl
