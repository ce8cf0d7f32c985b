#!/usr/bin/env bash
# The fleet image as a user meets it (README.md, "Fleets"): built from
# deploy/Dockerfile with the static binary scripts/package.sh made, run with
# the host's PID and network namespaces and the two capabilities it needs,
# and scraped by a real Prometheus, which must find a host listener with
# its owner. Needs a running dockerd and prometheus; run as root (CI does).
# Nothing connects to a container's address: the image serves on the host's
# loopback (--network=host).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/dist/portctl-x86_64-linux-static
[ -x "$binary" ] || { echo "check-image: $binary is missing: run scripts/package.sh" >&2; exit 1; }
tag=portctl:check-image
work=$(mktemp -d /tmp/portctl-check-image.XXXXXX)
container=portctl-check-image-$$
attributed=portctl-check-image-attributed-$$
cleanup() {
    docker rm -f "$container" "$attributed" >/dev/null 2>&1 || true
    [ -n "${listener:-}" ] && kill "$listener" 2>/dev/null || true
    [ -n "${prom:-}" ] && kill "$prom" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

docker build -q -f deploy/Dockerfile -t "$tag" . >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "check-image: $tag is $((size / 1024)) KiB"
[ "$size" -lt $((20 * 1024 * 1024)) ] || { echo "check-image: the image is over 20 MiB" >&2; exit 1; }

# A host listener with a name of its own, owned by nobody: naming it needs
# the capabilities the README gives.
# Debian's interpreter, not a shim (pyenv's is a script nobody cannot run).
cp -L /usr/bin/python3 "$work/imagechecked"
chmod 755 "$work" "$work/imagechecked"
setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$work/imagechecked" -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(600)' >"$work/port" &
listener=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

# A container's process on the host's network: the image must name the
# container behind it (its cgroup, read through the host's /sys/fs/cgroup).
# Nothing connects to it.
image_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
docker image inspect portctl-busybox:test >/dev/null 2>&1 || {
    rootfs=$work/rootfs; mkdir -p "$rootfs/bin"; cp /bin/busybox "$rootfs/bin/"
    for l in sh httpd sleep; do ln -s busybox "$rootfs/bin/$l"; done
    tar -C "$rootfs" -c . | docker import - portctl-busybox:test >/dev/null
}
attributed_id=$(docker run -d --name "$attributed" --network host portctl-busybox:test \
    httpd -f -p "127.0.0.1:$image_port" -h /)

metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# As the README says, but on loopback only: nothing leaves this machine.
docker run -d --name "$container" --pid=host --network=host --cgroupns=host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
    --cap-drop=ALL --cap-add=SYS_PTRACE --cap-add=DAC_READ_SEARCH --read-only \
    "$tag" serve metrics --bind 127.0.0.1 --port "$metrics_port" >/dev/null

cat > "$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: portctl
    static_configs:
      - targets: ['127.0.0.1:$metrics_port']
YML
web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$web_port" >"$work/prometheus.log" 2>&1 &
prom=$!

# How many series Prometheus has for a query.
found() {
    python3 - "$web_port" "$1" <<'PY' || true
import json, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[1], urllib.parse.quote(sys.argv[2]))
print(len(json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]))
PY
}
owner="portctl_listener_info{port=\"$port\",process=\"imagechecked\",user=\"65534\"}"
inside="portctl_listener_info{port=\"$image_port\",runtime=\"docker\",container=\"$attributed_id\"}"
for _ in $(seq 90); do
    if [ "$(found "$owner")" = 1 ] && [ "$(found "$inside")" = 1 ]; then
        echo "check-image: Prometheus found the host listener $port with its owner, and $image_port in its container, through the image"
        exit 0
    fi
    sleep 1
done
echo "check-image: Prometheus never found $owner and $inside" >&2
docker logs "$container" >&2 || true
tail -20 "$work/prometheus.log" >&2
exit 1
