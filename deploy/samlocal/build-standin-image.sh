#!/usr/bin/env bash
# Builds a stand-in for AWS's Lambda Python base image, for CI on machines that cannot pull from
# any container registry. Users build on the real base image; nothing here ships.
#
# A minimal Debian 13 (python3 is 3.13) from the mirror this machine's apt uses, with
# awslambdaric (installed by the host's pip), the host's CA bundle and pip index settings, and an
# entrypoint that runs the runtime interface client with the handler string, as the real image's
# does. SAM CLI adds its own runtime interface emulator when it runs the container. The image is
# tagged with the exact name:tag the Dockerfile's FROM uses, and with the -<arch> tag SAM asks
# for; it is rebuilt only when its inputs change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
suite=trixie

# The FROM line's image, with the Dockerfile's ARG defaults substituted.
image=$(python3 - "$root/Dockerfile" <<'PY'
import re, string, sys
args, image = {}, None
for line in open(sys.argv[1], encoding="utf-8"):
    if m := re.match(r"\s*ARG\s+(\w+)=(\S+)", line):
        args.setdefault(m[1], m[2])
    elif m := re.match(r"\s*FROM\s+(\S+)", line, re.I):
        image = string.Template(m[1]).substitute(args)
        break
print(image)
PY
)
case "$(uname -m)" in
    x86_64) arch=x86_64 wheel_platform=manylinux2014_x86_64 ;;
    aarch64) arch=arm64 wheel_platform=manylinux2014_aarch64 ;;
    *) echo "build-standin-image: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
ca_bundle=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
mirror=$(python3 "$here/host_settings.py" apt-mirror)
pip_conf=$(python3 "$here/host_settings.py" pip-conf)
key=$(cat "$0" "$ca_bundle" <(echo "$mirror $arch") <(echo "$pip_conf") | sha256sum | cut -c1-16)

if [ "$(docker image inspect --format '{{.Comment}}' "$image" 2>/dev/null)" = "simpleai-standin $key" ]; then
    docker tag "$image" "$image-$arch"
    echo "build-standin-image: $image is up to date" >&2
    exit 0
fi

command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
}
work=$(mktemp -d /tmp/simpleai-standin.XXXXXX)
cleanup() {
    # debootstrap mounts /proc and /sys inside the root file system; never delete through them.
    grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs

echo "build-standin-image: debootstrap $suite" >&2
debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}
python=$(basename "$(readlink -f "$rootfs/usr/bin/python3")")  # e.g. python3.13
py_version=${python#python}

echo "build-standin-image: awslambdaric for Python $py_version" >&2
python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --root-user-action=ignore --target "$rootfs/var/runtime" \
    --only-binary=:all: --implementation cp --python-version "$py_version" \
    --platform "$wheel_platform" awslambdaric

# Downloads from inside containers may pass a TLS-intercepting proxy that only the host's CA
# bundle trusts; pip in the image uses the same index as the host's pip.
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
{ echo "$pip_conf"; echo "cert = /etc/ssl/certs/ca-certificates.crt"; } >"$rootfs/etc/pip.conf"
# The real base image lets pip install anywhere; Debian's marker (PEP 668) would refuse.
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
mkdir -p "$rootfs/var/task"
cat >"$rootfs/lambda-entrypoint.sh" <<'SH'
#!/bin/sh
# Runs the Lambda runtime interface client with the handler string, e.g. app.handler.
cd "$LAMBDA_TASK_ROOT"
export PYTHONPATH="$LAMBDA_RUNTIME_DIR"
exec python3 -m awslambdaric "$1"
SH
chmod 755 "$rootfs/lambda-entrypoint.sh"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

echo "build-standin-image: docker import $image" >&2
tar -C "$rootfs" --one-file-system -c . | docker import \
    -m "simpleai-standin $key" \
    -c "ENV LAMBDA_TASK_ROOT=/var/task" \
    -c "ENV LAMBDA_RUNTIME_DIR=/var/runtime" \
    -c "ENV LANG=C.UTF-8" \
    -c "WORKDIR /var/task" \
    -c 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
    - "$image" >/dev/null
docker tag "$image" "$image-$arch"
echo "build-standin-image: built $image and $image-$arch" >&2
