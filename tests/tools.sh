#!/usr/bin/env bash
# Install the validation tools the `tools` tests use, where missing (tests/run.sh calls this):
#   npm-groovy-lint  pinned in lab2/lint/package-lock.json (needs Node.js and Java)
#   docker-compose   Debian's package (validates the compose files; no Docker engine needed)
#   dataset-fashion-mnist  Debian's package: the real Fashion-MNIST idx files, offline
# jenkins-jobs comes with the Python environment (requirements.lock, extra "ci").
# Missing system packages are installed with apt-get when running as root; otherwise this stops
# with the command to run, because the tests would otherwise fail for want of a tool.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=()
command -v java >/dev/null || packages+=(default-jre-headless)
command -v npm >/dev/null || packages+=(nodejs npm)
command -v docker-compose >/dev/null || packages+=(docker-compose)
# Real Fashion-MNIST, offline (the image tests and bench/cnn_bench.py read it).
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/tools.sh: missing ${packages[*]}; run: sudo apt-get install ${packages[*]}" >&2
    exit 1
  fi
  echo "tests/tools.sh: installing ${packages[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
fi

# npm-groovy-lint: reinstall only when the lock file changed (like pipeline.sh's .venv).
lint="$root/lab2/lint"
want="$(sha256sum "$lint/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$lint/node_modules/.lock.sha256" 2>/dev/null)" != "$want" ]; then
  echo "tests/tools.sh: installing npm-groovy-lint from lab2/lint/package-lock.json" >&2
  (cd "$lint" && npm ci --no-audit --no-fund --loglevel=error >&2)
  printf '%s\n' "$want" > "$lint/node_modules/.lock.sha256"
fi
