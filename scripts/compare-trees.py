#!/usr/bin/env python3
"""Compares two rootfs tarballs entry by entry: path, type, mode, owner,
link target and content hash (mtimes are not compared: both tools clamp
them differently by design).

    compare-trees.py OURS.tar THEIRS.tar [--allow FILE] [--label NAME]

The allow-list names the differences that are by design, one per line:

    KIND  GLOB  # reason

KIND is `only-ours`, `only-theirs` (the path exists in one tree only) or
`differs` (both have it; any attribute may differ). GLOB is an fnmatch
pattern over the path without a leading `./` (`*` also crosses `/`).
Every allow-list line must carry a reason. Exits 1 when a difference is not
allowed, or when an allow-list line matched nothing (a stale allowance
hides nothing, but it no longer documents anything either).
"""

import argparse
import fnmatch
import hashlib
import sys
import tarfile

KINDS = ("only-ours", "only-theirs", "differs")


def entry_type(member):
    if member.isreg() or member.islnk():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.ischr():
        return "char"
    if member.isblk():
        return "block"
    if member.isfifo():
        return "fifo"
    return "other"


def normal(name):
    name = name.removeprefix("./").rstrip("/")
    return name if name else "."


def read_tree(path):
    """Path -> (type, mode, uid, gid, link target, sha256)."""
    tree = {}
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        by_name = {normal(m.name): m for m in members}
        for m in members:
            name = normal(m.name)
            content = m
            # A hard link stands for its target's content: which of the
            # names a tool writes first is not a difference.
            while content.islnk():
                content = by_name[normal(content.linkname)]
            digest = ""
            if content.isreg():
                digest = hashlib.sha256(tar.extractfile(content).read()).hexdigest()
            target = m.linkname if m.issym() else ""
            tree[name] = (entry_type(m), oct(m.mode & 0o7777), m.uid, m.gid, target, digest)
    return tree


def read_allow(path):
    rules = []
    if path is None:
        return rules
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            body, _, reason = text.partition("#")
            words = body.split()
            if len(words) != 2 or words[0] not in KINDS or not reason.strip():
                sys.exit(f"{path}:{number}: want `KIND GLOB  # reason` with KIND one of {KINDS}")
            rules.append({"kind": words[0], "glob": words[1], "reason": reason.strip(),
                          "line": number, "used": 0})
    return rules


def allowed(rules, kind, name):
    for rule in rules:
        if rule["kind"] == kind and fnmatch.fnmatchcase(name, rule["glob"]):
            rule["used"] += 1
            return True
    return False


FIELDS = ("type", "mode", "uid", "gid", "link", "sha256")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ours")
    parser.add_argument("theirs")
    parser.add_argument("--allow")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    ours, theirs = read_tree(args.ours), read_tree(args.theirs)
    rules = read_allow(args.allow)
    label = f"{args.label}: " if args.label else ""
    bad = []
    for name in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(name), theirs.get(name)
        if a == b:
            continue
        if b is None:
            kind, what = "only-ours", f"only in ours: {a}"
        elif a is None:
            kind, what = "only-theirs", f"only in theirs: {b}"
        else:
            kind = "differs"
            what = ", ".join(f"{f} {x!r} vs {y!r}" for f, x, y in zip(FIELDS, a, b) if x != y)
        if not allowed(rules, kind, name):
            bad.append(f"{kind} {name}: {what}")
    for rule in rules:
        print(f"{label}allowed {rule['used']:4d} x {rule['kind']} {rule['glob']}  ({rule['reason']})")
    stale = [r for r in rules if r["used"] == 0]
    for rule in stale:
        print(f"{label}STALE allow-list line {rule['line']}: {rule['kind']} {rule['glob']}")
    for line in bad:
        print(f"{label}UNEXPECTED {line}")
    common = len(ours.keys() & theirs.keys())
    print(f"{label}{len(ours)} entries in ours, {len(theirs)} in theirs, {common} in both; "
          f"{len(bad)} unexpected difference(s)")
    return 1 if bad or stale else 0


if __name__ == "__main__":
    sys.exit(main())
