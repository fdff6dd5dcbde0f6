#!/usr/bin/env bash
# Install what gpdl needs on a Debian 12 machine, idempotently:
#  - Debian packages: PostgreSQL 15 server + plpython3u, Fashion-MNIST, Chromium
#  - a Python 3.11 virtual environment in .venv with gpdl and its test tools
#  - reveal.js, require.js and jQuery from the npm registry, for the offline report and slides
# The database server runs as an unprivileged user and imports from .venv, so
# the checkout must be readable by other users.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need_apt=()
for pkg in postgresql-15 postgresql-plpython3-15 dataset-fashion-mnist chromium fonts-dejavu-core; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi

# The server's user must reach the checkout (its .venv and backend/).
if [ "$(id -u)" -eq 0 ]; then
    dir="$root"
    while [ "$dir" != "/" ]; do
        if [ "$(( $(stat -c '%a' "$dir" | sed 's/.*\(.\)$/\1/') & 1 ))" -eq 0 ]; then
            echo "setup: letting other users traverse $dir (the database server reads .venv)"
            chmod o+x "$dir"
        fi
        dir=$(dirname "$dir")
    done
fi

python=${GPDL_PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 /usr/bin/python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
            python=$candidate
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "setup: installing Debian's python3.11-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-venv >/dev/null
    python=/usr/bin/python3.11
fi

stamp=.venv/.gpdl-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: creating .venv with $python and installing gpdl (a few minutes the first time)"
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    echo "$want" > "$stamp"
fi

# The report and slides of `gpdl demo` work offline with these: pinned versions, each
# tarball's sha512 checked, kept in .venv/share/gpdl/web-assets (a package there is skipped).
.venv/bin/python -m gpdl_jupyter.web_assets
chmod -R o+rX .venv backend 2>/dev/null || true
