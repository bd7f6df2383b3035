#!/usr/bin/env python3
"""The module graph CMake builds, against the one ARCHITECTURE.md documents.

Configures the source tree into a scratch directory with `cmake --graphviz`, reads every
direct link between svcctl's own targets (and the few outside libraries whose use is a
rule: ZooKeeper's C client, libcurl, Boost, msgpack, CLI11), and compares them with the
table between the `module-graph` markers in ARCHITECTURE.md. Any edge in one and not the
other fails, naming it: a new dependency lands together with the document's line.
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys

# Outside libraries whose edges are checked; the others (fmt, nlohmann_json, Threads,
# the settings target) any module may link.
TRACKED_EXTERNAL = {"zookeeper::mt", "CURL::libcurl", "Boost::headers", "msgpackc-cxx", "CLI11::CLI11"}
OURS = re.compile(r"^(svcctl|svcctl_\w+|\w+_bench)$")


def tracked(name):
    return name != "svcctl_settings" and (OURS.match(name) or name in TRACKED_EXTERNAL)


def built_edges(cmake, source, work):
    if work.exists():
        shutil.rmtree(work)
    dot = work / "modules.dot"
    subprocess.run([cmake, "-S", str(source), "-B", str(work), "-DSVCCTL_TESTS=OFF", f"--graphviz={dot}"],
                   check=True, stdout=subprocess.DEVNULL)
    edges = set()
    for line in dot.read_text().splitlines():
        m = re.search(r"// (\S+) -> (\S+)$", line)
        if m and OURS.match(m.group(1)) and tracked(m.group(2)):
            edges.add((m.group(1), m.group(2)))
    return edges


def documented_edges(doc):
    text = doc.read_text()
    m = re.search(r"<!-- module-graph -->(.*?)<!-- /module-graph -->", text, re.S)
    if not m:
        sys.exit(f"{doc}: no table between <!-- module-graph --> and <!-- /module-graph -->")
    edges = set()
    for row in m.group(1).splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        target = cells[0].strip("`")
        for dep in re.findall(r"`([^`]+)`", cells[1]):
            if tracked(dep):  # not a path or a word quoted in a note
                edges.add((target, dep))
    return edges


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", type=pathlib.Path, required=True)
    p.add_argument("--work", type=pathlib.Path, required=True)
    p.add_argument("--cmake", default="cmake")
    a = p.parse_args()
    built = built_edges(a.cmake, a.source, a.work)
    documented = documented_edges(a.source / "ARCHITECTURE.md")
    ok = True
    for t, d in sorted(built - documented):
        print(f"{t} links {d}, which ARCHITECTURE.md's module graph does not say", file=sys.stderr)
        ok = False
    for t, d in sorted(documented - built):
        print(f"ARCHITECTURE.md says {t} links {d}; the build does not", file=sys.stderr)
        ok = False
    if not built:
        print("no edge read from cmake --graphviz", file=sys.stderr)
        ok = False
    print(f"{len(built)} edges checked" if ok else "module graph and ARCHITECTURE.md differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
