#!/usr/bin/env bash
# Install the validation tools the `tools` tests use, where missing (tests/run.sh calls this):
#   npm-groovy-lint  pinned in lab2/lint/package-lock.json (needs Node.js and Java)
#   docker-compose   Debian's package (validates the compose files; no Docker engine needed)
#   dataset-fashion-mnist  Debian's package: the real Fashion-MNIST idx files, offline
#   postgresql       Debian's package: the server binaries (the lab3 stack test runs its own
#                    throwaway cluster; Debian's default cluster is not created)
#   podman, runc, mmdebstrap, dnsname  Debian's: the container tests build and run the project
#                    image with rootful podman (no Docker daemon here), its base from Debian's
#                    packages; the dnsname CNI plugin lets compose services find each other by name
#   chromium, chromium-driver  Debian's headless browser and its matching WebDriver: the tests
#                    of web pages (the MLflow UI, the service's pages; tests/browser.py)
#   prometheus, prometheus-pushgateway  Debian's: the monitoring test pushes gauges to the
#                    gateway and queries them back from a real Prometheus (tests/lab3/test_monitor.py)
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
# PostgreSQL server binaries: the lab3 stack test starts a throwaway cluster of its own.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || packages+=(postgresql)
# The container tests (tests/lab3/test_container.py; lab3/podman/).
command -v podman >/dev/null || packages+=(podman runc)
command -v mmdebstrap >/dev/null || packages+=(mmdebstrap)
[ -e /usr/lib/cni/dnsname ] || packages+=(golang-github-containernetworking-plugin-dnsname)
# The tests of web pages (tests/browser.py); fonts so that pages render text as a user sees it.
command -v chromium >/dev/null || packages+=(chromium fonts-dejavu-core)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
# The monitoring test (tests/lab3/test_monitor.py): a real Prometheus scraping a Pushgateway.
command -v prometheus >/dev/null || packages+=(prometheus)
command -v prometheus-pushgateway >/dev/null || packages+=(prometheus-pushgateway)
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/tools.sh: missing ${packages[*]}; run: sudo apt-get install ${packages[*]}" >&2
    exit 1
  fi
  echo "tests/tools.sh: installing ${packages[*]}" >&2
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    # Only the binaries: no "main" cluster, so no server left running after the install.
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  fi
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
