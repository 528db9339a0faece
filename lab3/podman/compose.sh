#!/usr/bin/env bash
# docker-compose (Debian's, v1) against podman, for hosts with no Docker daemon and no systemd:
#   bash lab3/podman/compose.sh -p mlops -f lab3/docker-compose.light.yml up -d
#   bash lab3/podman/compose.sh -p mlops -f lab3/docker-compose.light.yml down -v
# For the command's duration it starts podman's Docker-compatible API on a private socket, and
# runs the containers' health checks every 2 s: podman runs them from systemd timers, absent
# here, and compose's `depends_on: condition: service_healthy` waits on them. Both stop (by PID)
# when the command returns; the containers keep running.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
command -v docker-compose >/dev/null || { echo "compose.sh: needs docker-compose (apt-get install docker-compose)" >&2; exit 1; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/podman-api.XXXXXX")"
podman system service --time=0 "unix://$dir/podman.sock" 2>"$dir/api.log" &
api=$!
(
  while sleep 2; do
    for id in $(podman ps -q --filter health=starting --filter health=unhealthy 2>/dev/null); do
      podman healthcheck run "$id" >/dev/null 2>&1 || true
    done
  done
) &
ticker=$!
stop() {
  kill "$ticker" "$api" 2>/dev/null || true
  wait "$ticker" "$api" 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT
for _ in $(seq 100); do [ -S "$dir/podman.sock" ] && break; sleep 0.1; done
[ -S "$dir/podman.sock" ] || { echo "compose.sh: podman's API did not start: $(cat "$dir/api.log")" >&2; exit 1; }
DOCKER_HOST="unix://$dir/podman.sock" docker-compose "$@"
