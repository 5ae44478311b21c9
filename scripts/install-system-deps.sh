#!/usr/bin/env bash
# Installs the system programs the tests drive for real, from Debian's packages, when they are missing.
set -euo pipefail

packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v curl >/dev/null 2>&1 || packages+=(curl)
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
# redis-cli creates the local Redis Cluster the cluster tests run on.
command -v redis-cli >/dev/null 2>&1 || packages+=(redis-tools)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
# Debian keeps initdb, pg_ctl and postgres in /usr/lib/postgresql/<version>/bin, off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
# The load benchmark's generator, only for `make bench`.
if [ "${1:-}" = "--bench" ]; then
    command -v wrk >/dev/null 2>&1 || packages+=(wrk)
    # Node.js and npm run the HTTP cache conformance suite (bench_conformance.py).
    command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi

if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "installing system packages: ${packages[*]}"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${packages[@]}"
