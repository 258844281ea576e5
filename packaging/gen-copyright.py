#!/usr/bin/env python3
"""Write debian/copyright from the crates the release binary links.

usage: packaging/gen-copyright.py [--check FILE | --output FILE]

Walks `cargo metadata` from whatsapp-mcp through normal dependency edges (the crates of the
x86_64 Linux binary with default features; build and dev dependencies are not linked) and
writes one DEP-5 paragraph a crate. A crate's license comes from its Cargo.toml and is checked
against its own sources: every `SPDX-License-Identifier:` line in its files, and its license
files. Files whose SPDX header names a license the manifest does not (wacore-libsignal says
MIT but carries Signal's AGPL-3.0-only headers) get a paragraph of their own, and the crate's
paragraph states the combined license with a comment.

cargo-deny and cargo-about read the manifests and match license files against SPDX texts, but
neither looks at per-file SPDX headers, so neither would have seen wacore-libsignal's AGPL;
this script does, with Python's standard library only and offline (`cargo metadata --offline`
over the registry cargo has already unpacked). License texts come from packaging/licenses/
(taken from the crates' own license files), or from /usr/share/common-licenses where Debian
ships them.

With --check, the file is compared with what would be written and the difference is shown.
"""

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LICENSE_DIR = ROOT / "packaging" / "licenses"
TARGET = "x86_64-unknown-linux-gnu"
REGENERATE = "python3 packaging/gen-copyright.py --output debian/copyright"

# Licenses Debian ships in /usr/share/common-licenses: the copyright file points there
# instead of repeating the text (lintian asks for that for Apache-2.0 and the GPLs).
COMMON_LICENSES = {
    "Apache-2.0": "the Apache License, Version 2.0",
    "CC0-1.0": "the Creative Commons CC0 1.0 Universal license",
    "MPL-2.0": "the Mozilla Public License, Version 2.0",
}

# C code that a crate compiles into the binary and whose license is not the crate's.
# name -> (files under the crate, copyright, license, a line the files must hold).
BUNDLED = {
    "libsqlite3-sys": (
        "sqlite3/*",
        "none: the SQLite authors disclaim copyright",
        "public-domain",
        "The author disclaims copyright to this source code.",
    ),
}

LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|UNLICENSE|NOTICE)([-._].*)?$", re.I)
SPDX_LINE = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-() ]+)")
# "Copyright 2015 Brian Smith", "Copyright (c) The Rust Project Developers": a year or a
# copyright sign must follow the word, which leaves out prose such as "copyright notice".
COPYRIGHT_LINE = re.compile(r"^[\s/*#!;-]*Copyright\s+(?:(?:\(c\)|©)\s*(\S.*)|(\d{4}.*))", re.I)
# Template lines in license texts ("Copyright [yyyy] [name of copyright owner]").
TEMPLATE = re.compile(r"yyyy|<year>|\[year\]|\{year\}|copyright owner|Free Software Foundation", re.I)
SOURCE_SUFFIXES = {".rs", ".c", ".h", ".S", ".s", ".pl", ".py", ".proto", ".toml"}
HEAD_BYTES = 4096


class GenError(Exception):
    """Something the generator cannot decide by itself."""


def cargo_metadata():
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked", "--offline",
           "--filter-platform", TARGET, "--manifest-path", str(ROOT / "Cargo.toml")]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as err:
        raise GenError(f"{' '.join(cmd)} failed:\n{err.stderr}") from err
    return json.loads(out)


def linked_packages(meta):
    """The root package and everything it reaches through normal dependency edges."""
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    seen, stack = set(), [root]
    while stack:
        pkg = stack.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for dep in nodes[pkg]["deps"]:
            if any(kind["kind"] is None for kind in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    others = sorted((packages[p] for p in seen if p != root),
                    key=lambda p: (p["name"], p["version"]))
    return packages[root], others


def normalise(expr):
    """Cargo's older `MIT/Apache-2.0` spelling as an SPDX expression."""
    expr = re.sub(r"\s*/\s*", " OR ", expr.strip())
    return re.sub(r"\s+", " ", expr)


def dep5_expression(expr):
    """An SPDX expression in DEP-5 words: `A or B, and C` for `(A OR B) AND C`."""
    group = re.fullmatch(r"\(([^()]+)\) AND ([^()]+)", expr)
    if group:
        return f"{dep5_expression(group[1])}, and {dep5_expression(group[2])}"
    if "(" in expr:
        raise GenError(f"cannot write {expr!r} in DEP-5 words")
    # DEP-5 spells SPDX's `X WITH Y-exception` as `X with Y exception`.
    expr = re.sub(r" WITH (\S+)-exception\b", r" with \1 exception", expr)
    if " WITH " in expr:
        raise GenError(f"cannot write the exception in {expr!r} in DEP-5 words")
    return expr.replace(" OR ", " or ").replace(" AND ", " and ")


def license_names(expr):
    """The license names (and `X with Y` pairs) a DEP-5 expression refers to."""
    parts = re.split(r",?\s+(?:or|and)\s+", expr)
    return {part.strip() for part in parts if part.strip()}


def read_head(path):
    try:
        with open(path, "rb") as file:
            return file.read(HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def copyright_lines(text):
    holders = []
    for line in text.splitlines():
        match = COPYRIGHT_LINE.match(line)
        if not match or TEMPLATE.search(line):
            continue
        holder = (match[1] or match[2]).strip()
        holder = re.sub(r"\s*\*/$", "", holder).rstrip()
        holder = re.sub(r",?\s*All rights reserved\.?$", "", holder, flags=re.I)
        if holder and holder not in holders:
            holders.append(holder)
    return holders


def scan_crate(directory):
    """License-file copyright lines, and SPDX expressions by the files that carry them."""
    holders = []
    for name in sorted(os.listdir(directory)):
        if LICENSE_FILE.match(name) and (directory / name).is_file():
            holders += [h for h in copyright_lines((directory / name).read_text(errors="replace"))
                        if h not in holders]
    spdx = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix not in SOURCE_SUFFIXES:
                continue
            for match in SPDX_LINE.finditer(read_head(path)):
                expr = normalise(match[1])
                spdx.setdefault(expr, []).append(path.relative_to(directory).as_posix())
    return holders, spdx


def wrap(text):
    """Prose for a Comment field: paragraphs (split by blank lines) wrapped, `.` between."""
    paragraphs = [textwrap.fill(part, 76, break_long_words=False, break_on_hyphens=False)
                  for part in text.split("\n\n")]
    return "\n.\n".join(paragraphs)


def field(name, value):
    lines = (wrap(value) if name == "Comment" else value).split("\n")
    return "\n".join([f"{name}: {lines[0]}"] + [f" {line}" for line in lines[1:]])


def paragraph(*fields):
    return "\n".join(field(name, value) for name, value in fields if value) + "\n"


def license_text(name):
    """The text of a license name, or of `X with Y` (X's text, then the exception's)."""
    if " with " in name:
        base, exception = name.split(" with ", 1)
        return f"{license_text(base)}\n\n{license_text(exception.replace(' ', '-'))}"
    if name in COMMON_LICENSES:
        return textwrap.fill(f"On Debian systems, the full text of {COMMON_LICENSES[name]} can "
                             f"be found in /usr/share/common-licenses/{name}.", 76)
    path = LICENSE_DIR / name
    if not path.is_file():
        raise GenError(f"no license text for {name}: add it as {path.relative_to(ROOT)} "
                       "(from the crate's own license file)")
    return path.read_text().strip("\n")


def license_paragraph(name):
    lines = [line.rstrip() or "." for line in license_text(name).split("\n")]
    return f"License: {name}\n" + "".join(f" {line}\n" for line in lines)


def generate():
    meta = cargo_metadata()
    root, crates = linked_packages(meta)
    repository = root["repository"]
    own_license = normalise(root["license"])
    own_copyright = root["metadata"]["deb"]["copyright"].replace(",", "", 1)
    out, used = [], {own_license}
    agpl_crates = []
    crate_paragraphs = []
    for crate in crates:
        directory = Path(crate["manifest_path"]).parent
        declared = normalise(crate["license"] or "")
        if not declared:
            raise GenError(f"{crate['name']} {crate['version']} declares no license")
        holders, spdx = scan_crate(directory)
        holders = holders or crate["authors"] or [f"the {crate['name']} authors"]
        files = f"cargo-registry/{crate['name']}-{crate['version']}"
        extra = {expr: paths for expr, paths in spdx.items() if expr != declared}
        effective = declared
        comment = None
        if extra:
            effective = " AND ".join([f"({declared})" if " OR " in declared else declared]
                                     + sorted(extra))
            if re.search(r"\bAGPL", effective):
                agpl_crates.append(crate["name"])
            comment = (f"Cargo.toml declares {declared}, but the SPDX headers of some files "
                       f"say {', '.join(sorted(extra))}; those files are listed below, and the "
                       "crate as a whole is under both.")
        expr = dep5_expression(effective)
        used |= license_names(expr)
        crate_paragraphs.append(paragraph(
            ("Files", f"{files}/*"), ("Copyright", "\n".join(holders)),
            ("License", expr), ("Comment", comment)))
        for extra_expr, paths in sorted(extra.items()):
            file_holders = []
            for path in paths:
                file_holders += [h for h in copyright_lines(read_head(directory / path))
                                 if h not in file_holders]
            extra_dep5 = dep5_expression(extra_expr)
            used |= license_names(extra_dep5)
            crate_paragraphs.append(paragraph(
                ("Files", "\n".join(f"{files}/{path}" for path in paths)),
                ("Copyright", "\n".join(file_holders or holders)),
                ("License", extra_dep5),
                ("Comment", f"From the files' SPDX-License-Identifier headers; Cargo.toml "
                            f"says {declared}.")))
        if crate["name"] in BUNDLED:
            pattern, notice, bundled_license, marker = BUNDLED[crate["name"]]
            sample = directory / pattern.replace("*", "sqlite3.h")
            if marker not in read_head(sample):
                raise GenError(f"{sample} no longer says {marker!r}: check its license")
            used.add(bundled_license)
            crate_paragraphs.append(paragraph(
                ("Files", f"{files}/{pattern}"), ("Copyright", notice),
                ("License", bundled_license),
                ("Comment", "The SQLite library, compiled into the binary by the crate's "
                            "\"bundled\" feature.")))

    combined = ""
    if agpl_crates:
        combined = (f"\n\nOur own code is under the {own_license} license. The binary as "
                    f"distributed also contains code under AGPL-3.0-only (from "
                    f"{', '.join(agpl_crates)}), so the combined work is distributed under the "
                    f"terms of the GNU Affero General Public License, version 3; its "
                    f"corresponding source is at {repository}.")
    out.append(paragraph(
        ("Format", "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"),
        ("Upstream-Name", root["name"]),
        ("Upstream-Contact", f"{repository}/issues"),
        ("Source", repository),
        ("Comment",
         "/usr/bin/whatsapp-mcp links the Rust crates below (and the SQLite library bundled "
         "by libsqlite3-sys) statically. A paragraph for cargo-registry/NAME-VERSION covers "
         "that crate as cargo unpacks it from crates.io; its license comes from the crate's "
         "manifest, license files and SPDX headers." + combined + "\n\n"
         "Generated by packaging/gen-copyright.py; to update it run:\n\n" + REGENERATE)))
    out.append(paragraph(("Files", "*"), ("Copyright", own_copyright),
                         ("License", dep5_expression(own_license))))
    out += crate_paragraphs
    out += [license_paragraph(name) for name in sorted(used)]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="FILE", help="fail if FILE is not what would be written")
    group.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    args = parser.parse_args()
    try:
        text = generate()
    except GenError as err:
        print(f"gen-copyright: {err}", file=sys.stderr)
        return 1
    if args.check:
        current = Path(args.check).read_text() if Path(args.check).exists() else ""
        if current == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(True), text.splitlines(True), args.check, "generated", n=1))
        print(f"gen-copyright: {args.check} does not match the dependency tree; "
              f"regenerate it with `{REGENERATE}` and review the change", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
