# fish completion for svcctl.
#
# The candidates come from the svcctl being completed (`svcctl __complete -- WORD...`), which
# reads them from its own command line definition and, for names, from the registry that
# --zk (or SVCCTL_ZK) points at; so this file never needs to change with svcctl.

function __svcctl_complete
    set -l current (commandline -ct)
    # "$current" is one word even when nothing is typed yet: the one being completed.
    set -l typed (commandline -opc) "$current"
    set -l out ($typed[1] __complete -- $typed[2..-1] 2>/dev/null)
    switch "$out[1]"
        case files
            __fish_complete_path "$current"
        case words
            printf '%s\n' $out[2..-1]
    end
end

complete -c svcctl -f -a '(__svcctl_complete)'
