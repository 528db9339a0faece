#!/usr/bin/env bash
# podman with the project's settings (lab3/podman/containers.conf): use it where a command says
# `docker`, e.g.  DOCKER="bash lab3/podman/podman.sh" bash lab3/build.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
if [ "${1:-}" = build ]; then
  # Docker's image format: podman's default (OCI) has no HEALTHCHECK, and would drop ours.
  shift
  exec podman build --format docker "$@"
fi
exec podman "$@"
