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
if [ "$(deploy/samlocal/ensure-docker.sh)" = started ]; then
    # We started dockerd: stop it again when done, whatever happens.
    trap 'step "stopping the dockerd we started"; kill "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null || true' EXIT
fi

step "stand-in base image"
deploy/samlocal/build-standin-image.sh

step "sam build"
"$SAM" build

step "sam local start-api and requests"
SAM_LOCAL_TEST=1 SAM="$SAM" "$PY" -m pytest tests/deploy -m docker -p no:cacheprovider -v
step "passed"
