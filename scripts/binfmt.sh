#!/usr/bin/env bash
# Makes foreign-architecture programs runnable here, as rootstrap's
# cross-platform builds need: mounts binfmt_misc if it is not, and registers
# qemu-user-static's interpreters (with the fix-binary flag, so they work
# inside a chroot) from its binfmt.d files, as systemd-binfmt would on a
# machine that boots with systemd. Needs root and qemu-user-static installed.
# Usage: scripts/binfmt.sh [ARCH...]   (default: aarch64 arm ppc64le s390x riscv64)
set -euo pipefail
dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/status" ]; then
    mount -t binfmt_misc binfmt_misc "$dir"
fi
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(aarch64 arm ppc64le s390x riscv64)
for a in "${arches[@]}"; do
    conf=/usr/lib/binfmt.d/qemu-$a.conf
    [ -f "$conf" ] || { echo "binfmt: $conf missing (apt-get install qemu-user-static)" >&2; exit 1; }
    name=$(cut -d: -f2 "$conf")
    if [ -e "$dir/$name" ]; then
        echo 1 >"$dir/$name"   # enabled, in case a test disabled it
    else
        grep -v '^#' "$conf" | head -1 >"$dir/register"
    fi
done
ls "$dir" | grep -v -e '^register$' -e '^status$' | tr '\n' ' '
echo
