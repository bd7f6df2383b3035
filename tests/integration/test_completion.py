"""Shell completion (completions/): each shell's script, run by the real shell, offers every
subcommand and every option that --help shows, enumerated values, file names, and live
names from a real ZooKeeper registry; hidden subcommands stay hidden."""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile

import pytest

import clilib
from clilib import SVCCTL, SOURCE

SCRIPTS = {
    "bash": os.path.join(SOURCE, "completions", "svcctl.bash"),
    "zsh": os.path.join(SOURCE, "completions", "_svcctl"),
    "fish": os.path.join(SOURCE, "completions", "svcctl.fish"),
}
END = "<<end>>"
# Names from the registry are asked for with this typed, so a slow machine cannot time out.
ZK_TIMEOUT = ["--zk-timeout", "15000"]


@pytest.fixture(scope="module")
def path_env():
    """PATH with `svcctl` on it, as a user completing `svcctl ...` has."""
    d = tempfile.mkdtemp(prefix="svcctl-bin-")
    os.symlink(os.path.abspath(SVCCTL), os.path.join(d, "svcctl"))
    env = clilib.clean_env()
    env["PATH"] = d + os.pathsep + env.get("PATH", "")
    yield env
    shutil.rmtree(d, ignore_errors=True)


def need(shell):
    assert shutil.which(shell), f"{shell} is not installed (scripts/deps.sh installs it)"


def bash_words(line):
    """COMP_WORDS as bash makes them: ':' and '=' (COMP_WORDBREAKS) are words of their own."""
    out = []
    for word in (line.split(" ") if line else [""]):
        parts = [p for p in re.split(r"([:=]+)", word) if p != ""] or [""]
        if re.fullmatch(r"[:=]+", parts[-1]):
            parts.append("")
        out.extend(parts)
    return out


def run_shell(argv, script, env, cwd=None):
    p = subprocess.run([*argv, script], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert p.returncode == 0, p
    return [[w for w in chunk.split("\n") if w] for chunk in p.stdout.split(END + "\n")[:-1]]


def complete_bash(lines, env, cwd=None):
    """For each line typed after `svcctl ` (the cursor at its end), the words bash's
    completion offers."""
    script = [f"source {shlex.quote(SCRIPTS['bash'])}",
              'c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _svcctl;'
              f' printf "%s\\n" "${{COMPREPLY[@]}}"; echo {shlex.quote(END)}; }}']
    for line in lines:
        script.append("c svcctl " + " ".join(shlex.quote(w) for w in bash_words(line)))
    return run_shell(["bash", "--norc", "--noprofile", "-c"], "\n".join(script), env, cwd)


def complete_zsh(lines, env):
    # Outside an interactive shell, compsys is not loaded: stand in for the two functions
    # the script calls, printing what they are given.
    script = ['_describe() { local name=$argv[-1]; print -rl -- "${(@P)name}" }',
              "_files() { print -r -- '<files>' }",
              "words=(svcctl); CURRENT=1",
              f"source {shlex.quote(SCRIPTS['zsh'])} >/dev/null",
              f"print {shlex.quote(END)}"]
    for line in lines:
        words = ["svcctl", *line.split(" ")] if line else ["svcctl", ""]
        script.append("words=(" + " ".join(shlex.quote(w) for w in words) + f"); CURRENT={len(words)}")
        script.append(f"_svcctl; print {shlex.quote(END)}")
    chunks = run_shell(["zsh", "-f", "-c"], "\n".join(script), env)[1:]
    # "word:description", with ':' in the word escaped.
    return [[re.split(r"(?<!\\):", c, maxsplit=1)[0].replace("\\:", ":") for c in chunk] for chunk in chunks]


def complete_fish(lines, env):
    script = [f"source {shlex.quote(SCRIPTS['fish'])}"]
    for line in lines:
        script.append(f"complete -C {shlex.quote('svcctl ' + line)}; echo {shlex.quote(END)}")
    chunks = run_shell(["fish", "--no-config", "-c"], "\n".join(script), env)
    return [[c.split("\t")[0] for c in chunk] for chunk in chunks]


def complete(shell, lines, env):
    need(shell)
    got = {"bash": complete_bash, "zsh": complete_zsh, "fish": complete_fish}[shell](lines, env)
    assert len(got) == len(lines), (shell, lines, got)  # one answer per line typed, none lost
    return got


def test_scripts_parse():
    for shell, argv in (("bash", ["bash", "-n"]), ("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])):
        need(shell)
        p = subprocess.run([*argv, SCRIPTS[shell]], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and not p.stderr, (shell, p)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_subcommand_and_option(shell, path_env):
    cmds = clilib.commands()
    globals_ = clilib.help_options([])
    with_subcommands = [c for c in cmds if clilib.help_subcommands(list(c))]
    lines = [" ".join([*c, "-"]) for c in cmds] + [" ".join([*c, ""]) for c in with_subcommands]
    got = complete(shell, lines, path_env)
    for c, offered in zip(cmds, got):
        missing = (clilib.help_options(list(c)) | globals_) - set(offered)
        assert not missing, f"{shell}: `svcctl {' '.join(c)} -<Tab>` misses {sorted(missing)}"
    for c, offered in zip(with_subcommands, got[len(cmds):]):
        assert sorted(offered) == sorted(clilib.help_subcommands(list(c))), (shell, c, offered)


def test_hidden_subcommands_stay_hidden(path_env):
    assert "__" not in clilib.help_text([])
    tree = json.loads(subprocess.run([SVCCTL, "__cli-json"], capture_output=True, text=True,
                                     env=path_env, check=True).stdout)
    assert not any(s["name"].startswith("svcctl __") for s in tree["subcommands"])
    [offered] = complete_bash([""], path_env)
    assert offered and not any(w.startswith("_") for w in offered)


def test_bash_completes_words_and_values(path_env, tmp_path):
    (tmp_path / "state.json").write_text("{}")
    cases = {
        "reg": ["register"],
        "register ": ["service", "address", "api", "key", "acl"],
        "unregister a": ["address", "api", "acl"],
        "-o ": ["table", "json", "auto"],
        "list --output j": ["json"],
        "register api s i --encoding yar": ["yar-msgpack", "yar-json"],
        "register service s --status ": ["up", "down"],
        "register key k --status=d": ["down"],
        "proxy --balance ": ["p2c", "round-robin"],
        "proxy --log-format ": ["text", "json"],
        "stats --by ": ["service", "interface", "address", "key", "version"],
        "register api s i --no-i": ["--no-idempotent"],
        "watch --lkg-file st": ["state.json"],
    }
    got = complete_bash(list(cases), path_env, cwd=tmp_path)
    for (line, want), offered in zip(cases.items(), got):
        assert offered == want, (line, offered)


def test_bash_completes_names_from_the_registry(reg, path_env):
    reg.ok("register", "service", "hello")
    reg.ok("register", "service", "other")
    reg.ok("register", "address", "hello", "127.0.0.1:9101")
    reg.ok("register", "address", "hello", "10.0.0.7:9102")
    reg.ok("register", "api", "hello", "add", "--path", "/add")
    reg.ok("register", "api", "hello", "echo", "--path", "/echo")
    reg.ok("register", "key", "key-1")
    typed = f"--zk {reg.connect} {' '.join(ZK_TIMEOUT)} "
    cases = {
        "list h": ["hello"],
        "unregister service ": ["hello", "other"],
        "call hello ": ["add", "echo"],
        "-o json call hello e": ["echo"],
        "unregister address hello ": ["10.0.0.7:9102", "127.0.0.1:9101"],
        "unregister address hello 127.0.0.1:91": ["9101"],  # bash replaces what follows the ':'
        "register acl hello ": ["key-1"],
        "call hello add --address 1": ["10.0.0.7:9102", "127.0.0.1:9101"],
    }
    got = complete_bash([typed + line for line in cases], path_env)
    for (line, want), offered in zip(cases.items(), got):
        assert offered == want, (line, offered)

    env = dict(path_env, SVCCTL_ZK=reg.connect)
    assert complete_bash([f"{' '.join(ZK_TIMEOUT)} watch hello "], env) == [["hello", "other"]]


def test_unreachable_zookeeper_is_silent(path_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([SVCCTL, "__complete", "--", "--zk", f"127.0.0.1:{port}", "list", ""],
                       capture_output=True, text=True, env=path_env, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "words\n", "")
    assert complete_bash([f"--zk 127.0.0.1:{port} list "], path_env) == [[]]
