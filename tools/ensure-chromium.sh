#!/bin/sh
# Make sure /usr/bin/chromium exists for the browser test of the web page (tests/serve/test_browser.py).
# Installs Debian's chromium with apt-get when we are root; never fails the build: it says why instead.
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and there is no apt-get; the browser test will be skipped." >&2
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: $CHROMIUM is missing and we are not root; run 'sudo apt-get install chromium'" \
         "or the browser test will be skipped." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install_chromium() { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }
if install_chromium || { apt-get update -qq >/dev/null 2>&1 && install_chromium; }; then
    echo "ensure-chromium: installed $($CHROMIUM --version 2>/dev/null || echo chromium)." >&2
else
    echo "ensure-chromium: 'apt-get install chromium' failed (offline?); the browser test will be skipped." >&2
fi
exit 0
