#!/usr/bin/env bash
# Make the stand-in for the Dockerfile's base image where Docker Hub cannot be reached: a minimal
# Debian bookworm with Python 3.11 (python3, venv, `python`), built from Debian's own packages
# with mmdebstrap and imported into podman. Reused when it exists (delete it to rebuild).
#   bash lab3/podman/base.sh          prints the image name: localhost/python:3.11-bookworm
# Then: docker build --build-arg PYTHON_IMAGE=localhost/python:3.11-bookworm ...
# The host's extra CA certificates (/usr/local/share/ca-certificates) are trusted inside, so that
# pip in the image build reaches PyPI through the same proxy the host uses.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${BASE_IMAGE:-localhost/python:3.11-bookworm}"
podman=(bash "$here/podman.sh")
if "${podman[@]}" image exists "$IMAGE"; then
  printf '%s\n' "$IMAGE"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "base.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)"
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs="$(mktemp "${TMPDIR:-/tmp}/python-base.XXXXXX.tar")"
trap 'rm -f "$rootfs"' EXIT
started=$SECONDS
mmdebstrap --variant=minbase --quiet \
  --include=python3,python3-venv,python-is-python3,ca-certificates \
  --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
  --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$rootfs" "$mirror" >&2
"${podman[@]}" import --change 'CMD ["python3"]' "$rootfs" "$IMAGE" >/dev/null
echo "base.sh: made $IMAGE in $((SECONDS - started)) s" >&2
printf '%s\n' "$IMAGE"
