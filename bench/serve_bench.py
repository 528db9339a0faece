"""Serving benchmark: this project's service (lab3) against `mlflow models serve`, same model.

Both serve the registry's champion (models:/<dataset>-classifier@champion in the embedded store;
run `bash pipeline.sh` first, or this script runs it), each with one worker process, on this
machine. wrk drives both with the same requests and the same load: 8 connections, one-row
requests, then 1,000-row batches. The body is MLflow's dataframe_split format, which both
accept, so the bytes sent are identical. Prints requests per second and p50/p99 latency for
both and their ratio.

    .venv/bin/python bench/serve_bench.py [--seconds 10] [--connections 8]
    .venv/bin/python bench/serve_bench.py --prediction-log   # our service, log off vs on

    .venv/bin/python bench/serve_bench.py --against /tmp/before   # older code vs this checkout

--prediction-log measures what the prediction log costs instead: the lab3 service alone, with
PREDICTION_LOG off and on, alternated (off, on, off, on, ...) so that the machine's drift falls on
both; prints the median req/s of each and their ratio.

--against CHECKOUT measures what a change of the service's code or settings costs: the lab3
service of CHECKOUT (e.g. `git worktree add /tmp/before <older commit>`, with its own
params.yaml) and of this checkout, both running, driven in turn on the same model; prints the
median req/s of each and the ratio this / CHECKOUT.

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab1.core.paths import PATHS  # noqa: E402
from tests import loopback  # noqa: E402


def champion_uri() -> str:
    """The champion's URI, after running the pipeline if there is none yet."""
    from lab1.core import registry
    from lab1.core.params import load_params
    from lab1.core.tracking import connect

    name = load_params(PATHS.params).registered_model_name
    if registry.champion(connect(), name) is None:
        print("no champion yet: running bash pipeline.sh first", file=sys.stderr)
        subprocess.run(["bash", str(ROOT / "pipeline.sh")], check=True, stdout=sys.stderr)
    return f"models:/{name}@champion"


def request_bodies(rows: int) -> dict[str, bytes]:
    """dataframe_split bodies of real test windows (complete rows): 1 row and ``rows`` rows."""
    from lab1.core.processed import input_columns, read_split

    test = read_split(PATHS.processed / "test.parquet")
    columns = input_columns(test)
    complete = test.loc[test[columns].notna().all(axis=1), columns]
    batch = complete.sample(rows, replace=len(complete) < rows, random_state=0).to_numpy()

    def body(data) -> bytes:
        return json.dumps({"dataframe_split": {"columns": columns, "data": data.tolist()}}).encode()

    return {"1 row": body(batch[:1]), f"{rows} rows": body(batch)}


LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*all"); f:close()
"""


def parse_wrk(output: str) -> dict[str, float]:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    def found(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output)
        if match is None:
            sys.exit(f"wrk printed no line matching {pattern!r}:\n{output}")
        return match

    rps = float(found(r"Requests/sec:\s+([\d.]+)").group(1))
    latency = {
        p: seconds(*found(rf"\s{p}%\s+([\d.]+)(us|ms|s|m)\b").groups()) for p in ("50", "99")
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50_ms": latency["50"] * 1e3,
        "p99_ms": latency["99"] * 1e3,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def drive(url: str, body: bytes, seconds: int, connections: int, work: Path) -> dict[str, float]:
    body_file = work / f"body-{len(body)}.json"
    body_file.write_bytes(body)
    script = work / f"post-{len(body)}.lua"
    script.write_text(LUA.format(body=body_file))
    base = ["wrk", "-t1", f"-c{connections}", "-s", str(script), "--latency", url]
    subprocess.run([*base[:3], "-d2s", *base[3:]], capture_output=True, check=True)  # warm-up
    done = subprocess.run(
        [*base[:3], f"-d{seconds}s", *base[3:]], capture_output=True, text=True, check=True
    )
    return parse_wrk(done.stdout)


def venv_on_path() -> dict[str, str]:
    """`mlflow models serve` starts `uvicorn` from PATH: put this environment's bin first."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def main() -> int:
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--seconds", type=int, default=10, help="per measurement (default 10)")
    cli.add_argument("--connections", type=int, default=8)
    cli.add_argument("--rows", type=int, default=1000, help="rows in the batch requests")
    cli.add_argument(
        "--model-uri",
        help="serve this model instead of the champion, e.g. models:/temperature-classifier/3",
    )
    cli.add_argument(
        "--prediction-log", action="store_true", help="A/B of the prediction log: off vs on"
    )
    cli.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="A/B of another checkout's lab3 service against this one's",
    )
    cli.add_argument(
        "--rounds", type=int, default=3, help="--prediction-log, --against: rounds of each"
    )
    args = cli.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("serve_bench: wrk is not installed (apt-get install wrk)")
    from lab1.core.tracking import tracking_uri

    # Both servers (child processes) resolve models:/ URIs in the same store as this script.
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri()
    uri = args.model_uri or champion_uri()
    bodies = request_bodies(args.rows)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    results: dict[tuple[str, str], dict[str, float]] = {}
    env = {"MODEL_URI": uri, "PREDICTION_LOG": ""}  # the comparison with MLflow: no log
    if args.prediction_log:
        return prediction_log_ab(uri, bodies, args, work)
    if args.against:
        if not (args.against / "lab3" / "serve.py").is_file():
            sys.exit(f"serve_bench: --against {args.against}: not a checkout of this project")
        return checkout_ab(uri, bodies, args, work)
    try:
        with loopback.model_service(work, env) as url:
            for label, body in bodies.items():
                results["lab3 service", label] = drive(
                    f"{url}/predict", body, args.seconds, args.connections, work
                )
        port = loopback.free_port()
        argv = [
            loopback.mlflow_command(),
            "models",
            "serve",
            "-m",
            uri,
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "--env-manager",
            "local",
            "-w",
            "1",
        ]
        with loopback.running(
            "mlflow-models-serve",
            argv,
            port,
            "/ping",
            work / "mlflow-serve.log",
            env=venv_on_path(),
        ) as url:
            for label, body in bodies.items():
                results["mlflow models serve", label] = drive(
                    f"{url}/invocations", body, args.seconds, args.connections, work
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"model {uri}; wrk, {args.connections} connections, {args.seconds} s each, "
        f"{os.cpu_count()} cores, one server worker"
    )
    print(f"{'server':22} {'request':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for (server_name, label), r in results.items():
        print(
            f"{server_name:22} {label:>10} {r['rps']:9.0f} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {r['non_2xx']:8d}"
        )
    for label in bodies:
        ours, theirs = results["lab3 service", label], results["mlflow models serve", label]
        print(
            f"{label}: lab3 / mlflow models serve = {ours['rps'] / theirs['rps']:.2f}x req/s, "
            f"p99 {ours['p99_ms']:.2f} vs {theirs['p99_ms']:.2f} ms"
        )
    return 0


def prediction_log_ab(uri: str, bodies: dict[str, bytes], args, work: Path) -> int:
    """The lab3 service with the prediction log off and on, alternated; median req/s of each."""
    import statistics

    rps: dict[tuple[str, str], list[float]] = {}
    try:
        for round_ in range(args.rounds):
            for mode in ("off", "on"):
                log = str(work / f"log-{round_}") if mode == "on" else ""
                with loopback.model_service(work, {"MODEL_URI": uri, "PREDICTION_LOG": log}) as url:
                    for label, body in bodies.items():
                        found = drive(f"{url}/predict", body, args.seconds, args.connections, work)
                        rps.setdefault((label, mode), []).append(found["rps"])
                        said = f"round {round_ + 1}, log {mode:3} {label:>10}: {found['rps']:.0f}"
                        print(f"{said} req/s", file=sys.stderr)
        logged = sum(
            len(path.read_bytes().splitlines()) for path in work.glob("log-*/predictions-*.jsonl")
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"model {uri}; wrk, {args.connections} connections, {args.seconds} s each, "
        f"{args.rounds} rounds, {os.cpu_count()} cores; {logged} requests logged"
    )
    for label in bodies:
        off, on = (statistics.median(rps[label, mode]) for mode in ("off", "on"))
        print(f"{label:>10}: log off {off:8.0f} req/s, on {on:8.0f} req/s: on/off = {on / off:.3f}")
    return 0


def checkout_ab(uri: str, bodies: dict[str, bytes], args, work: Path) -> int:
    """The lab3 service of args.against and of this checkout, both running, driven in turn
    (that, this, that, this, ...: the machine's drift falls on both); median req/s of each."""
    import statistics
    from contextlib import ExitStack

    checkouts = {"that": args.against.resolve(), "this": ROOT}
    rps: dict[tuple[str, str], list[float]] = {}
    try:
        with ExitStack() as servers:
            urls = {
                name: servers.enter_context(
                    loopback.model_service(
                        work / name, {"MODEL_URI": uri, "PREDICTION_LOG": ""}, checkout=checkout
                    )
                )
                for name, checkout in checkouts.items()
            }
            for round_ in range(args.rounds):
                for label, body in bodies.items():
                    for name, url in urls.items():
                        found = drive(f"{url}/predict", body, args.seconds, args.connections, work)
                        rps.setdefault((label, name), []).append(found["rps"])
                        said = f"round {round_ + 1}, {name} {label:>10}: {found['rps']:.0f} req/s"
                        print(f"{said} (non-2xx {found['non_2xx']})", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"model {uri}; wrk, {args.connections} connections, {args.seconds} s each, "
        f"{args.rounds} rounds, {os.cpu_count()} cores; that = {checkouts['that']}, "
        f"this = {ROOT}"
    )
    for label in bodies:
        that, this = (statistics.median(rps[label, name]) for name in checkouts)
        print(
            f"{label:>10}: that {that:8.0f} req/s, this {this:8.0f} req/s: "
            f"this/that = {this / that:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
