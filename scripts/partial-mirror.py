#!/usr/bin/env python3
"""Write a partial Debian mirror to DIR: the signed index files of SUITE for
amd64/main exactly as the upstream mirror serves them, plus the .debs of the
named packages (names on stdin, one per line). Served over 127.0.0.1 it lets
benchmarks compare tools without the network deciding the result.

usage: partial-mirror.py MIRROR SUITE DIR < names.txt
"""
import lzma
import os
import sys
import urllib.request


def fetch(url, dest):
    if os.path.exists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            f.write(chunk)
    os.rename(tmp, dest)


def main():
    mirror, suite, out = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    names = {line.strip() for line in sys.stdin if line.strip()}
    dists = f"dists/{suite}"
    for name in ["InRelease", "Release", "Release.gpg"]:
        fetch(f"{mirror}/{dists}/{name}", f"{out}/{dists}/{name}")
    for name in ["Packages.xz", "Packages.gz"]:
        rel = f"{dists}/main/binary-amd64/{name}"
        try:
            fetch(f"{mirror}/{rel}", f"{out}/{rel}")
        except Exception as e:  # not every suite ships every compression
            print(f"note: {rel}: {e}", file=sys.stderr)
    with lzma.open(f"{out}/{dists}/main/binary-amd64/Packages.xz", "rt") as f:
        text = f.read()
    found = {}
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        if fields.get("Package") in names:
            found[fields["Package"]] = fields["Filename"]
    missing = names - found.keys()
    if missing:
        print("not in the index: " + " ".join(sorted(missing)), file=sys.stderr)
    for name, filename in sorted(found.items()):
        fetch(f"{mirror}/{filename}", f"{out}/{filename}")
    print(f"{len(found)} packages in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
