"""A tracking URI with credentials in it (http://user:password@host:port), as MLflow takes it:
the server check sends them as MLflow does (basic auth), and no message shows the password."""

from __future__ import annotations

import base64
import http.server
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from lab1.core.cli import check_store, run_script, setup_logging
from lab1.core.errors import PipelineError, without_credentials
from tests.loopback import free_port
from tests.project import REPO, clean_env

SECRET = "se@cret"  # an "@" of its own: urllib and requests split the URI at the last one


@contextmanager
def health_server(user: str, password: str) -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server whose /health answers 200 only to basic auth as ``user:password``
    (401 otherwise); yields its port and the Authorization headers it got."""
    wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    seen: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            ok = self.path == "/health" and seen[-1] == wanted
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_server_check_sends_the_uris_credentials_as_basic_auth(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with health_server("admin", SECRET) as (port, seen):
        check_store(f"http://admin:{SECRET}@127.0.0.1:{port}/")
        # Percent-encoded, as a URI should carry an "@": decoded before it is sent.
        check_store(f"http://admin:se%40cret@127.0.0.1:{port}")
        with pytest.raises(PipelineError) as wrong:
            check_store(f"http://admin:other@127.0.0.1:{port}")
    assert len(seen) == 3
    assert "HTTP 401" in str(wrong.value) and "other" not in str(wrong.value)


def test_mlflows_username_and_password_variables_come_first(monkeypatch):
    """MLflow sends MLFLOW_TRACKING_USERNAME/PASSWORD when both are set, else the URI's own."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    with health_server("admin", SECRET) as (port, _seen):
        check_store(f"http://127.0.0.1:{port}")
        check_store(f"http://someone:else@127.0.0.1:{port}")


def test_the_loopback_checks_read_the_proxy_variables_of_now(monkeypatch):
    """urllib's urlopen() keeps the first opener it builds, proxy settings and all. Poisoned so
    (a dead proxy), the server check (its proxy read afresh) and the containers' health check (a
    loopback URL: no proxy) still reach the server."""
    import urllib.request

    from lab3 import healthcheck

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    dead = urllib.request.ProxyHandler({"http": "http://127.0.0.1:9"})
    monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener(dead))
    with health_server("admin", SECRET) as (port, seen):
        check_store(f"http://admin:{SECRET}@127.0.0.1:{port}")
        assert healthcheck.main([f"http://127.0.0.1:{port}/health"]) == 1  # 401: reached
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        monkeypatch.setenv("no_proxy", "")
        with pytest.raises(PipelineError, match="refused"):  # the proxy of now is asked
            check_store(f"http://admin:{SECRET}@127.0.0.1:{port}")
    assert len(seen) == 2


@pytest.mark.parametrize(
    "text",
    [
        f"MLFLOW_TRACKING_URI=http://admin:{SECRET}@127.0.0.1:9/: no",
        f"API request to https://admin:{SECRET}@host/api/2.0 failed",
        f"('http://admin:{SECRET}@host:5000', 'x')",
    ],
)
def test_the_scrubber_hides_a_password_holding_an_at_sign(text):
    shown = without_credentials(text)
    assert "cret" not in shown and "admin" not in shown and "***@" in shown, shown


def test_pipeline_sh_check_names_an_unanswering_server_without_its_password():
    """pipeline.sh's first step (python -m lab1.core.cli) against a port nobody listens on."""
    port = free_port()
    env = clean_env(
        PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=f"http://admin:{SECRET}@127.0.0.1:{port}"
    )
    done = subprocess.run(
        [sys.executable, "-m", "lab1.core.cli"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"http://***@127.0.0.1:{port}" in done.stderr, done.stderr
    assert "cret" not in done.stderr + done.stdout and "admin" not in done.stderr, done.stderr
    assert "Connection refused" in done.stderr, done.stderr


def test_every_log_line_is_scrubbed_libraries_included(capfd):
    """setup_logging's one stderr format hides credentials in any logger's line (MLflow's and
    uvicorn's too), and run_script's error line (every stage, the monitor) goes through it."""
    setup_logging()
    try:
        logging.getLogger("mlflow.utils.rest_utils").warning(
            "API request to http://admin:%s@127.0.0.1:9/api failed", SECRET
        )

        def fails() -> int:
            raise PipelineError(f"store http://admin:{SECRET}@127.0.0.1:9 is down")

        assert run_script("monitor", fails) == 1
    finally:
        logging.getLogger().handlers.clear()
    err = capfd.readouterr().err
    assert err.count("http://***@127.0.0.1:9") == 2, err
    assert "cret" not in err and "admin" not in err, err


def test_links_to_the_mlflow_ui_carry_no_credentials(monkeypatch):
    """Links are printed and stored (reports, tags): the browser asks for the login itself."""
    from lab1.core.mlflow_ui import run_link, ui_base

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://admin:{SECRET}@mlflow.example:5000/")
    assert ui_base() == "https://mlflow.example:5000"
    assert run_link("1", "abc").startswith("https://mlflow.example:5000/#/")


def test_links_open_mlflow_ui_url_else_the_tracking_server_else_the_local_ui(monkeypatch):
    """MLFLOW_UI_URL (the Makefile's, from `make ui`'s PORT) wins; a tracking server is its own
    UI; else `mlflow ui`'s default. A value that is no UI address is refused in one line."""
    from lab1.core.mlflow_ui import LOCAL_UI, ui_base

    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert ui_base() == LOCAL_UI == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert ui_base() == "http://mlflow.example:5000"
    monkeypatch.setenv("MLFLOW_UI_URL", f"https://admin:{SECRET}@ui.example/mlflow/")
    assert ui_base() == "https://ui.example/mlflow"
    bad = ["127.0.0.1:5001", "http://127.0.0.1:x;touch y", "http://h:99999", f"ftp://a:{SECRET}@h"]
    for value in bad:
        monkeypatch.setenv("MLFLOW_UI_URL", value)
        with pytest.raises(PipelineError, match="is not the address of an MLflow UI") as refused:
            ui_base()
        assert "cret" not in str(refused.value)


@pytest.mark.integration
def test_a_uri_with_credentials_works_against_mlflows_basic_auth_server(tmp_path, monkeypatch):
    """The real `mlflow server --app-name basic-auth` (lab3's config): connect() with the
    admin's credentials in the URI passes the server check and MLflow's own client uses them;
    a wrong password is one line without it."""
    import os

    from lab1.core.tracking import connect
    from tests import loopback

    ini = (REPO / "lab3" / "mlflow" / "basic_auth.ini").read_text()
    config = tmp_path / "basic_auth.ini"
    config.write_text(ini.replace("/mlflow/auth/", f"{tmp_path}/"))
    port = loopback.free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": f"long-{SECRET}-pw",  # MLflow wants 12 characters
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-key",
    }
    argv = [loopback.mlflow_command(), "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{tmp_path}/db", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with loopback.running("mlflow-auth", argv, port, "/health", tmp_path / "server.log", env=env):
        monkeypatch.setenv(
            "MLFLOW_TRACKING_URI", f"http://admin:long-se%40cret-pw@127.0.0.1:{port}"
        )
        client = connect()
        created = client.create_experiment("with-credentials")
        assert client.get_experiment(created).name == "with-credentials"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://admin:wr@ng@127.0.0.1:{port}")
        with pytest.raises(PipelineError) as refused:
            connect()
    assert f"http://***@127.0.0.1:{port}" in str(refused.value)
    assert "ng@" not in str(refused.value) and "admin" not in str(refused.value), refused.value
