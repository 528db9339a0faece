"""Keeps the served model in step with MODEL_URI.

For ``models:/<name>@<alias>`` a background thread asks the registry where the alias points
every POLL_INTERVAL_S seconds. When it has moved, the new version is loaded in that thread while
requests go on being answered by the old one, then swapped in with one reference assignment
(atomic under the GIL: a request sees the old model or the new one, never a mix). If loading
fails, the old model stays and the failure is reported by /ready and /model. When the alias
leads nowhere any more (the version deleted, or the store removed by ``make clean``), nothing is
served: /ready turns 503 with the reason. Any other URI (a run, a local folder) is loaded once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lab1.core.errors import one_line
from lab1.core.registry import ALIAS_URI, VERSION_URI
from lab1.core.tracking import connect, is_embedded, sqlite_file, tracking_uri
from lab3.service.model import ModelInfo, ServedModel, load

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)


class ModelWatcher:
    def __init__(
        self,
        model_uri: str,
        poll_interval_s: float,
        loader: Callable[[str, ModelInfo], ServedModel] = load,
    ):
        self.model_uri = model_uri
        self.poll_interval_s = poll_interval_s
        self.follows_alias = ALIAS_URI.match(model_uri) is not None
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.last_checked: str | None = None
        self.loads = 0  # successful loads (the first one included)
        self.failures = 0
        self._loader = loader
        self._client: MlflowClient | None = None
        self._store: tuple[int, int] | None = None  # the embedded store file's (device, inode)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load in the background (the server answers /health at once) and keep watching."""
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            if self.current is not None and not self.follows_alias:
                return  # a fixed URI: nothing more will change
            self._stop.wait(self.poll_interval_s)

    # --- one poll ----------------------------------------------------------------------------

    def check(self) -> None:
        """Resolve MODEL_URI; load and swap in the model if it differs from the one served."""
        self.last_checked = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if not self._same_store():
            return
        try:
            target = self._resolve()  # what MODEL_URI points at now: an immutable URI
        except Exception as exc:
            message = f"cannot resolve {self.model_uri}: {one_line(exc)}"
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                self._gone(message)  # the registry no longer has it: never serve it again
            else:  # the registry may be down for a while: keep serving
                self._failed(message)
            return
        if self.current is not None and self.current.info.uri == target.uri:
            self.last_error = None
            return
        try:
            model = self._loader(target.uri, target)
        except Exception as exc:  # a broken version must not take the service down
            self._failed(f"cannot load {target.uri}: {one_line(exc)}")
            return
        previous = self.current
        self.current = model  # the swap
        # The model, MLflow and scikit-learn are millions of long-lived objects; left in the
        # collected generations, every full collection walks them all (pauses of hundreds of
        # ms under load). Frozen, they are skipped; the old model is freed by refcounting.
        gc.collect()
        gc.freeze()
        self.loads += 1
        self.last_error = None
        logger.info("serving %s (was %s)", target.uri, previous.info.uri if previous else "none")

    def _same_store(self) -> bool:
        """For the embedded store (a SQLite file): False, after dropping the model, when the file
        is gone (``make clean``); a new file (a new store) is connected to afresh, and its
        versions are other models than the old store's of the same number."""
        uri = tracking_uri()
        if not (self.follows_alias or VERSION_URI.match(self.model_uri)) or not is_embedded(uri):
            return True
        try:
            identity = sqlite_file(uri).stat()
        except FileNotFoundError:
            if self._store is None:  # not made yet: the pipeline makes it (the service must
                # not: two processes creating one SQLite store at once crash in its migration)
                self._failed(
                    f"cannot resolve {self.model_uri}: the model store {sqlite_file(uri)} "
                    "does not exist yet (run the pipeline)"
                )
            else:
                self._gone(f"the model store {sqlite_file(uri)} no longer exists")
            return False
        if self._store is not None and (identity.st_dev, identity.st_ino) != self._store:
            self._client = None
            self._gone(f"the model store {sqlite_file(uri)} was replaced; loading anew")
        self._store = (identity.st_dev, identity.st_ino)
        return True

    def _gone(self, message: str) -> None:
        """What was served no longer exists in the registry: stop serving it (/ready: 503)."""
        if self.current is not None:
            logger.warning("%s; no longer serving %s", message, self.current.info.uri)
            self.current, self.last_error = None, message  # said once, here
        self._failed(message)

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            logger.warning(
                "%s%s",
                message,
                "; still serving the previous model" if self.current is not None else "",
            )
        self.failures += 1
        self.last_error = message

    def _resolve(self) -> ModelInfo:
        alias, version = ALIAS_URI.match(self.model_uri), VERSION_URI.match(self.model_uri)
        if not (alias or version):
            return ModelInfo(uri=self.model_uri)
        if self._client is None:
            self._client = connect()  # the same default store as the pipeline
        client = self._client
        if alias:
            found = client.get_model_version_by_alias(alias["name"], alias["alias"])
        elif version:
            found = client.get_model_version(version["name"], version["version"])
        from lab1.core.lineage import version_lineage
        from lab1.core.model_files import recorded_files_sha256
        from lab1.core.registry import version_metrics

        tags = found.tags or {}
        return ModelInfo(
            uri=f"models:/{found.name}/{found.version}",
            name=found.name,
            version=str(found.version),
            alias=alias["alias"] if alias else None,
            source_run_id=tags.get("source_run_id") or found.run_id,
            git_commit=tags.get("git.commit"),
            data_digest=tags.get("data.digest"),
            test_metrics=version_metrics(found),
            lineage=version_lineage(client, found),  # what `python -m lab1.lineage` prints
            files_sha256=recorded_files_sha256(client, found),
        )
