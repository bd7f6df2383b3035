"""Man pages (man/): one per subcommand, each showing every option --help shows, clean under
`mandoc -T lint`; `cmake --install` puts them, the binary and the completion scripts where
they belong."""
import os
import re
import shutil
import subprocess

import pytest

import clilib
from clilib import SVCCTL, SOURCE

PROSE = os.path.join(SOURCE, "man")
SECTION = re.compile(r"^[A-Z][A-Z ]+$", re.M)


def prose_pages():
    return sorted(f[:-len(".mdoc")] for f in os.listdir(PROSE) if f.endswith(".mdoc"))


def render(page, out_dir):
    """The page as the build writes it (man/CMakeLists.txt), into out_dir."""
    out = os.path.join(out_dir, page + ".1")
    subprocess.run([SVCCTL, "__man", page, os.path.join(PROSE, page + ".mdoc"), "--out", out],
                   check=True, env=clilib.clean_env(), timeout=30)
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("man")
    return {page: render(page, str(d)) for page in prose_pages()}


def need_mandoc():
    if not shutil.which("mandoc"):
        pytest.skip("mandoc is not installed (scripts/deps.sh installs it)")


def formatted(path):
    p = subprocess.run(["mandoc", "-T", "ascii", "-O", "width=400", path], capture_output=True,
                       text=True, check=True, timeout=30)
    return re.sub(".\b", "", p.stdout)  # no overstrike (bold, underline)


def section(text, name):
    m = re.search(rf"^{name}$(.*?)(?=^[A-Z][A-Z ]+$|\Z)", text, re.M | re.S)
    assert m, f"no {name} section"
    return m.group(1)


def subsection(options, title):
    """The part of OPTIONS under the heading `title` ("svcctl register api")."""
    m = re.search(rf"^   {re.escape(title)}$(.*?)(?=^   svcctl |\Z)", options, re.M | re.S)
    assert m, f"no subsection {title}"
    return m.group(1)


def has_word(text, word):
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_every_subcommand_has_a_page():
    want = {"svcctl"} | {"svcctl-" + c for c in clilib.help_subcommands([])}
    missing = want - set(prose_pages())
    assert not missing, f"write man/<page>.mdoc for {sorted(missing)} (see man/README.md)"
    assert set(prose_pages()) == want


def test_pages_show_every_option_help_shows(pages):
    need_mandoc()
    texts = {page: formatted(path) for page, path in pages.items()}
    for path in clilib.commands():
        page = "svcctl-" + path[0] if path else "svcctl"
        options = section(texts[page], "OPTIONS")
        if len(path) > 1:
            options = subsection(options, "svcctl " + " ".join(path))
        for name in clilib.help_options(list(path)):
            assert has_word(options, name), f"{page}: OPTIONS misses {name} of `svcctl {' '.join(path)}`"
        if clilib.help_subcommands(list(path)):
            continue
        synopsis = section(texts[page], "SYNOPSIS")
        for names in clilib.help_option_names(list(path)):
            if "--help" not in names:
                assert any(has_word(synopsis, n) for n in names), f"{page}: SYNOPSIS misses {names}"


def test_mandoc_lint_is_clean(pages):
    need_mandoc()
    # mandoc looks for the pages .Xr names in the current directory, among others.
    p = subprocess.run(["mandoc", "-T", "lint", *(os.path.basename(p) for p in pages.values())],
                       cwd=os.path.dirname(pages["svcctl"]), capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_cmake_install_puts_everything_in_place(pages, tmp_path):
    build = os.path.dirname(os.path.dirname(os.path.abspath(SVCCTL)))  # <build>/cmd/svcctl
    if not os.path.exists(os.path.join(build, "cmake_install.cmake")):
        pytest.skip("SVCCTL_BIN is not in a CMake build tree")
    subprocess.run(["cmake", "--install", build, "--prefix", str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    share = tmp_path / "share"
    assert os.access(tmp_path / "bin" / "svcctl", os.X_OK)
    for installed, source in ((share / "bash-completion" / "completions" / "svcctl", "svcctl.bash"),
                              (share / "zsh" / "vendor-completions" / "_svcctl", "_svcctl"),
                              (share / "fish" / "vendor_completions.d" / "svcctl.fish", "svcctl.fish")):
        with open(os.path.join(SOURCE, "completions", source)) as f:
            assert installed.read_text() == f.read(), installed
    man1 = share / "man" / "man1"
    assert sorted(os.listdir(man1)) == sorted(page + ".1" for page in pages)
    for page, path in pages.items():
        with open(path) as f:
            assert (man1 / (page + ".1")).read_text() == f.read(), f"{page}(1) as built differs"
