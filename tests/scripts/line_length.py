#!/usr/bin/env python3
"""Lines of the project's own C++ longer than 120 columns (docs/style.md, .clang-format's ColumnLimit).

Columns are display columns, as clang-format counts them: a wide or full-width character (Japanese text) is two, a
combining mark none, a tab advances to the next multiple of 8, anything else one. Prints each line too long as
`file:line: N columns`, then the count; exits 1 if there is any. scripts/wrap-long-lines re-wraps them.

usage: line_length.py SOURCE_DIR [LIMIT]
"""
import os
import sys
import unicodedata

FOLDERS = ("bench", "cli", "engine", "hardware-bridge", "server", "tests", "wasm")
SUFFIXES = (".cpp", ".hpp", ".h", ".cc", ".ipp", ".inc")
SKIP = {"node_modules", ".git"}


def columns(line):
    width = 0
    for ch in line:
        if ch == "\t":
            width += 8 - width % 8
        elif unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            width += 2
        else:
            width += 1
    return width


def source_files(root):
    for folder in FOLDERS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP and not d.startswith("build"))
            for name in sorted(filenames):
                if name.endswith(SUFFIXES):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def long_lines(root, limit=120):
    """(file, line number, columns) of every line longer than `limit`."""
    for path in source_files(root):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                n = columns(line.rstrip("\r\n"))
                if n > limit:
                    yield path, number, n


def main():
    root = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 120
    found = list(long_lines(root, limit))
    for path, number, n in found:
        print(f"{path}:{number}: {n} columns")
    print(f"{sum(1 for _ in source_files(root))} C++ files, {len(found)} lines longer than {limit} columns")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
