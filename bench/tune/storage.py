"""Where studies live: a journal file (one host) or PostgreSQL (several hosts).

Around the Optuna storage sit what the workers share: a claim lock (``flock`` on the journal, a
session-level advisory lock on PostgreSQL), heartbeats, and the callback that queues a dead
worker's trial again. A storage URL's password is never printed or recorded
(:func:`bench.secrets.redact`, re-exported here as ``redact``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError, ConfigError, print_warning
from bench.secrets import redact

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

STORAGE_ENV = "BENCH_TUNE_STORAGE"
TUNE_DIR = "tuning"
JOURNAL_FILE = "journal.log"


@dataclass
class OpenedStorage:
    """An Optuna storage plus what the workers need around it."""

    storage: Any  # optuna.storages.BaseStorage
    description: str  # printable: a path or a redacted URL
    kind: str  # "journal" or "postgresql"
    lock_path: Path | None = None  # journal only
    heartbeat_interval: int | None = None

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while a worker inspects the study and claims a trial (one claim at a time)."""
        if self.kind == "journal":
            assert self.lock_path is not None
            with self.lock_path.open("a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            return
        from sqlalchemy import text

        # A session-level advisory lock: the server drops it if the worker dies holding it.
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        conn = self.storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
        finally:
            conn.close()


def retry_callback() -> Callable[..., None]:
    """Optuna's callback that queues a failed trial again, keeping its reported epochs."""
    from optuna import storages

    # Optuna 4.9 renamed RetryFailedTrialCallback; use whichever this version has.
    cls = (
        getattr(storages, "RetryHeartbeatStaleTrialCallback", None)
        or storages.RetryFailedTrialCallback
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(max_retry=3, inherit_intermediate_values=True)


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the trial this one retries, if any."""
    return trial.system_attrs.get("failed_trial")


def open_storage(
    spec: str | None,
    results_dir: Path,
    heartbeat_interval: int = 30,
    grace_period: int | None = None,
) -> OpenedStorage:
    """``spec``: None (journal under ``results_dir``), a journal file path, or a PostgreSQL URL."""
    spec = spec or os.environ.get(STORAGE_ENV) or None
    if spec is None or "://" not in spec:
        return _open_journal(Path(spec) if spec else results_dir / TUNE_DIR / JOURNAL_FILE)
    return _open_postgresql(spec, heartbeat_interval, grace_period)


def _open_journal(path: Path) -> OpenedStorage:
    import optuna
    from optuna.storages.journal import JournalFileOpenLock

    from bench.tune.journal import RepairingJournalBackend

    if path.is_symlink():
        raise ConfigError(f"--storage: journal file {path} is a symbolic link; use its target")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The open-lock is the one optuna-dashboard uses on the same file; a record cut off
        # by a killed writer is set aside under it before anything is appended.
        backend = RepairingJournalBackend(
            str(path), lock_obj=JournalFileOpenLock(str(path)), warn=print_warning
        )
    except OSError as exc:
        raise ConfigError(f"--storage: cannot use journal file {path}: {exc}") from None
    return OpenedStorage(
        optuna.storages.JournalStorage(backend),
        str(path),
        "journal",
        lock_path=path.with_name(path.name + ".claim-lock"),
    )


def _open_postgresql(spec: str, heartbeat_interval: int, grace_period: int | None) -> OpenedStorage:
    import optuna
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    shown = redact(spec)
    try:
        url = make_url(spec)
    except (sa_exc.ArgumentError, ValueError):
        raise ConfigError(f"--storage: cannot parse storage URL {shown!r}") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"--storage: {url.get_backend_name()!r} is not supported; use a journal file path "
            "(one host) or postgresql+psycopg://user:password@host/db (several hosts)"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # the driver this project installs
    if not url.database:
        raise ConfigError(f"--storage: URL {shown!r} names no database")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeats are marked experimental
            storage = optuna.storages.RDBStorage(
                url.render_as_string(hide_password=False),
                engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=retry_callback(),
            )
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"--storage: no driver for {shown!r}: {redact(str(exc), spec)}") from None
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BenchError(f"cannot reach storage {shown}: {redact(first, spec)}") from None
    return OpenedStorage(storage, shown, "postgresql", heartbeat_interval=heartbeat_interval)


class Heartbeat:
    """Records a trial's heartbeat every interval so other workers can tell it is alive."""

    def __init__(
        self, storage: Any, trial_id: int, interval: int | None, log: Callable[[str], None]
    ) -> None:
        self.storage, self.trial_id, self.interval, self.log = storage, trial_id, interval, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a blip in the database must not kill the trial
                self.log(f"heartbeat failed: {type(exc).__name__}")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def worker_id() -> str:
    """How a trial names the process that runs it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str) -> bool | None:
    """Whether the process ``worker`` names is alive; None when it runs on another host."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped by its parent) is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
