#!/bin/sh
# ensure-debian-package.sh PROGRAM PACKAGE WHAT
# Make sure PROGRAM (a path or a glob) exists for a test that needs it: install Debian's PACKAGE
# with apt-get when we are root. Never fails the build: it says why instead, and WHAT skips.
PROGRAM=$1 PACKAGE=$2 WHAT=$3
for found in $PROGRAM; do [ -x "$found" ] && exit 0; done
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
    echo "ensure: $PROGRAM is missing and cannot be installed here (needs root and apt-get);" \
         "$WHAT will be skipped (sudo apt-get install $PACKAGE)." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null 2>&1; }
if install || { apt-get update -qq >/dev/null 2>&1 && install; }; then
    echo "ensure: installed $PACKAGE." >&2
else
    echo "ensure: 'apt-get install $PACKAGE' failed (offline?); $WHAT will be skipped." >&2
fi
exit 0
