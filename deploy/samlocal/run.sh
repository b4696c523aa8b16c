#!/usr/bin/env bash
# `make sam-local-test`: the images built by `sam build` and served by `sam local start-api`,
# proven with real requests (tests/deploy). Needs root to install and start a Docker engine when
# none runs; fails loudly when any step cannot run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
SAM=${SAM:-.venv-sam/bin/sam}
PY=${PY:-.venv/bin/python}
export SAM_CLI_TELEMETRY=0
started_at=$SECONDS

step() { echo "sam-local-test: $* ($((SECONDS - started_at)) s)" >&2; }

step "Docker engine"
export DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/tmp/simpleai-dockerd.pid}
stop_dockerd() {
    step "stopping the dockerd we started"
    local pid deadline=$((SECONDS + 30))
    pid=$(cat "$DOCKERD_PIDFILE")
    kill "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
}
if [ "$(deploy/samlocal/ensure-docker.sh)" = started ]; then
    # We started dockerd: stop it again when done, whatever happens.
    trap stop_dockerd EXIT
fi

step "stand-in base image"
deploy/samlocal/build-standin-image.sh

step "sam build"
"$SAM" build

step "sam local start-api and requests"
SAM_LOCAL_TEST=1 SAM="$SAM" "$PY" -m pytest tests/deploy -m docker -p no:cacheprovider -v
step "passed"
