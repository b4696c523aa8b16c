#!/usr/bin/env bash
# Makes sure a Docker engine answers on the default socket: installs Debian's docker.io and
# starts dockerd (as root) when none runs. Prints "started" on stdout when it started dockerd
# itself (the caller stops it again), nothing when an engine was already running.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-docker: no Docker engine answers and we are not root to start one" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure-docker: installing docker.io" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q docker.io >&2 || { apt-get update -q >&2 && apt-get install -y -q docker.io >&2; }
fi
log=${DOCKERD_LOG:-/tmp/simpleai-dockerd.log}
# setsid: dockerd must outlive this script and must not get the terminal's signals.
setsid dockerd >"$log" 2>&1 < /dev/null &
echo $! > "${DOCKERD_PIDFILE:-/tmp/simpleai-dockerd.pid}"
deadline=$((SECONDS + 60))
until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
        echo "ensure-docker: dockerd did not answer within 60 s; its log ($log):" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    sleep 0.5
done
echo started
