#!/usr/bin/env python3
"""The server's layers (docs/architecture.md "The server's layers"), checked on its #include lines.

1. A file under server/LAYER/ includes only headers of its own layer or of a layer after it in LAYERS.
2. No header of server/usecases/ brings in nlohmann/json, directly or through another header of the project (the
   desks speak domain types; the JSON codec lives at the edge).

Prints each breach as `file:line: what`, then the count; exits 1 if there is any.

usage: layers.py REPO_ROOT (the folder that holds server/)
"""
import os
import re
import sys

# From the top (the composition root) down: a layer may include the layers after it, never those before it.
LAYERS = ("app", "http", "ops", "usecases", "formats", "decision", "storage", "core")

QUOTED = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
ANGLED = re.compile(r'^\s*#\s*include\s+<([^>]+)>')


def includes(path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = QUOTED.match(line)
            if m:
                yield number, m.group(1), True
                continue
            m = ANGLED.match(line)
            if m:
                yield number, m.group(1), False


def resolve(root, name, quoted):
    """The project file an #include names, or None (a system or third-party header)."""
    for base in ("server", "engine/include", "engine", "hardware-bridge/include"):
        candidate = os.path.join(root, base, name)
        if os.path.isfile(candidate):
            return os.path.relpath(candidate, root)
    return None


def brings_json(root, start):
    """The chain of project headers from `start` to one that includes nlohmann/json, or None."""
    seen, stack = {start}, [(start, [start])]
    while stack:
        path, chain = stack.pop()
        for _, name, quoted in includes(os.path.join(root, path)):
            if name.startswith("nlohmann/"):
                return chain + [name]
            found = resolve(root, name, quoted)
            if found and found not in seen:
                seen.add(found)
                stack.append((found, chain + [found]))
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    root = sys.argv[1]
    server = os.path.join(root, "server")
    if not os.path.isdir(server):
        print(f"layers.py: no folder {server}; " + __doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    breaches = []
    files = 0
    for layer in sorted(os.listdir(server)):
        if layer not in LAYERS:
            continue
        rank = LAYERS.index(layer)
        for dirpath, _, names in os.walk(os.path.join(server, layer)):
            for name in sorted(names):
                if not name.endswith((".hpp", ".cpp")):
                    continue
                files += 1
                path = os.path.relpath(os.path.join(dirpath, name), root)
                for number, included, quoted in includes(os.path.join(root, path)):
                    if not quoted:
                        continue
                    top = included.split("/", 1)[0]
                    if top in LAYERS and LAYERS.index(top) < rank:
                        breaches.append(f"{path}:{number}: {layer}/ includes {included}, a layer above it")
                if layer == "usecases" and name.endswith(".hpp"):
                    chain = brings_json(root, path)
                    if chain:
                        breaches.append(f"{path}:1: brings in nlohmann/json: {' -> '.join(chain)}")
    for line in breaches:
        print(line)
    print(f"{files} files of server/, {len(breaches)} breaches of its layers")
    return 1 if breaches or files == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
