#!/usr/bin/env bash
# Prints the first Debian mirror URI in the host's apt sources (one-line and
# deb822 formats), so scripts never hard-code a mirror host name.
# Honours $ROOTSTRAP_MIRROR when set.
set -euo pipefail
if [ -n "${ROOTSTRAP_MIRROR:-}" ]; then
    echo "$ROOTSTRAP_MIRROR"
    exit 0
fi
{
    grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -E 's/\[[^]]*\]//' | awk '$3 !~ /-/ {print $2}'
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN{RS=""; FS="\n"} /Types:[^\n]*deb( |$|\n)/ {
               uris=""; ok=0
               for (i=1;i<=NF;i++) {
                 if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uris=$i }
                 if ($i ~ /^Suites:/) { n=split($i, s, /[ \t]+/); for (j=2;j<=n;j++) if (s[j] !~ /-/) ok=1 }
               }
               if (ok) { split(uris, u, /[ \t]+/); print u[1] } }' "$f"
    done
} | grep -m1 . || { echo "no Debian mirror in the host's apt sources; set ROOTSTRAP_MIRROR" >&2; exit 1; }
