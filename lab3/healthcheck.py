"""The containers' health check (the image has no curl): exit 0 when the URL answers 200 within
2 s, else 1 with the reason on stderr.

    python -m lab3.healthcheck [URL]      default: http://127.0.0.1:8080/ready (the service)

A module rather than ``python -c "..."``: the check is then a few words with no spaces inside
any of them, which every engine passes through intact (podman 4.3's Docker-compatible API split
the ``-c`` program on its spaces, so the compose stack's MLflow server was never healthy).

The URL is the container's own loopback: no proxy is asked, whatever HTTP_PROXY says.
"""

from __future__ import annotations

import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/ready"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0
    url = args[0] if args else DEFAULT_URL
    try:
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(url, timeout=2) as answer:
            return 0 if answer.status == 200 else 1
    except Exception as exc:  # refused, timed out, 503: all mean "not healthy"
        sys.stderr.write(f"{url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
