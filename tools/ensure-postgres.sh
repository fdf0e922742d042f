#!/bin/sh
# Make sure PostgreSQL's server programs exist for the shared-study test (tests/searching/test_workers.py).
# Installs Debian's postgresql with apt-get when we are root; never fails the build: it says why instead.
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
    echo "ensure-postgres: PostgreSQL is missing and cannot be installed here (needs root and apt-get);" \
         "the PostgreSQL shared-study test will be skipped." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install_postgres() { apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; }
if install_postgres || { apt-get update -qq >/dev/null 2>&1 && install_postgres; }; then
    echo "ensure-postgres: installed PostgreSQL." >&2
else
    echo "ensure-postgres: 'apt-get install postgresql' failed (offline?); the PostgreSQL test will be skipped." >&2
fi
exit 0
