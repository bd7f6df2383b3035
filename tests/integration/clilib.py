"""What `svcctl ... --help` shows, read independently of the generators (cmd/cli_tree.*) that
the completions and man pages come from, so that the tests compare the two."""
import os
import re
import subprocess

SVCCTL = os.environ.get("SVCCTL_BIN", "")
SOURCE = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def clean_env():
    """The environment without svcctl's own variables (they change defaults shown)."""
    env = dict(os.environ)
    for name in ("SVCCTL_ZK", "SVCCTL_AUTH", "SVCCTL_ADMIN_ID"):
        env.pop(name, None)
    return env


def help_text(path):
    p = subprocess.run([SVCCTL, *path, "--help"], capture_output=True, text=True,
                       env=clean_env(), timeout=30)
    assert p.returncode == 0, p
    return p.stdout


def sections(text):
    """{"Options": [lines], "Subcommands": [lines], ...} of one --help."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^(\w+):$", line)
        if m:
            current = out.setdefault(m.group(1), [])
        elif current is not None and line.strip():
            current.append(line)
    return out


def help_option_names(path):
    """The names of each option --help shows for the command at `path` (its own, not the
    global ones): [["-o", "--output"], ...]."""
    out = []
    for line in sections(help_text(path)).get("Options", []):
        if line.startswith("  -"):
            out.append(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", line.split()[0]))
    return out


def help_options(path):
    """Every option name --help shows for the command at `path`."""
    return {name for names in help_option_names(path) for name in names}


def help_subcommands(path):
    return [line.split()[0] for line in sections(help_text(path)).get("Subcommands", [])
            if line.startswith("  ") and not line.startswith("   ")]


def commands(path=()):
    """Every command path, svcctl itself (()) first, as --help lists them."""
    out = [tuple(path)]
    for sub in help_subcommands(list(path)):
        out.extend(commands((*path, sub)))
    return out
