"""Long work (a video, several images, a photo to denoise) as jobs kept in a folder, so that they outlive the
server: a restarted server (or another process sharing the folder) lists them and finishes the unfinished ones.

A job is ``<root>/<id>/`` with ``job.json`` (kind, state, progress, times, options, error), ``input/`` (the
uploads), ``output/`` (what the predictors write; a finished file is never redone, so an interrupted job resumes
where it stopped) and, while a process works on it, ``claim`` (that process's host and pid: a claim whose process
is gone is taken over). States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

from visionzoo.files import atomic_write

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
#: ``run(job, folder, progress, cancelled)``: does the job's work; ``progress(done, total)`` reports it,
#: ``cancelled()`` says the client asked to stop.
JobRunner = Callable[[dict[str, Any], Path, Callable[[float, float], None], Callable[[], bool]], None]


class JobCancelled(Exception):
    """Raised by a runner that saw ``cancelled()``."""


def _alive(owner: dict[str, Any]) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # another machine's claim: trust it
    try:
        os.kill(int(owner["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError):
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    """The jobs folder: create, read, list, cancel, claim. Safe across threads and processes (claims are files
    created exclusively; ``job.json`` is replaced atomically)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, kind: str, files: list[tuple[str, bytes]], options: dict[str, Any]) -> dict[str, Any]:
        """A queued job with ``files`` (already checked) saved under ``input/``."""
        job_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)
        staging = self.root / f".{job_id}.part"
        (staging / "input").mkdir(parents=True)
        (staging / "output").mkdir()
        for name, data in files:
            (staging / "input" / name).write_bytes(data)
        job = {"id": job_id, "kind": kind, "state": "queued", "progress": 0.0, "done": 0, "total": len(files),
               "created": time.time(), "started": None, "finished": None, "seconds_left": None, "error": None,
               "options": options, "inputs": [name for name, _ in files]}
        self._write(staging, job)
        staging.rename(self.folder(job_id))  # appears whole or not at all
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        path = self.folder(job_id) / "job.json"
        if not job_id or "/" in job_id or job_id.startswith(".") or not path.is_file():
            return None
        return json.loads(path.read_text())

    def list(self) -> list[dict[str, Any]]:
        jobs = (self.get(p.name) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return sorted((j for j in jobs if j is not None), key=lambda j: j["created"])

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            job = self.get(job_id) or {}
            job.update(fields)
            self._write(self.folder(job_id), job)
            return job

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        job = self.get(job_id)
        if job is None or job["state"] in FINAL:
            return job
        if job["state"] == "queued":
            return self.update(job_id, state="cancelled", finished=time.time())
        return self.update(job_id, cancel_requested=True)  # the worker stops between steps

    def claim_next(self) -> dict[str, Any] | None:
        """The oldest job that is queued, or running under a process that is gone, now claimed by this one. A
        cancel that such a gone process never carried out is carried out here."""
        for job in self.list():
            if job["state"] not in ("queued", "running") or not self._claim(job["id"]):
                continue
            current = self.get(job["id"])  # another process may have finished it since the listing
            if current["state"] in ("queued", "running") and not current.get("cancel_requested"):
                return current
            if current["state"] == "running":
                self.update(job["id"], state="cancelled", finished=time.time())
            self.release(job["id"])
        return None

    def release(self, job_id: str) -> None:
        (self.folder(job_id) / "claim").unlink(missing_ok=True)

    def result(self, job_id: str) -> Path | None:
        """The job's output: its one file, or a zip of its files (made once)."""
        out = self.folder(job_id) / "output"
        files = sorted(p for p in out.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts[-2:]))
        if not files:
            return None
        if len(files) == 1:
            return files[0]
        archive = self.folder(job_id) / "result.zip"
        if not archive.exists():
            def write(temporary: Path) -> None:
                with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as bundle:
                    for path in files:
                        bundle.write(path, path.relative_to(out))
            atomic_write(archive, write)
        return archive

    def _claim(self, job_id: str) -> bool:
        claim = self.folder(job_id) / "claim"
        owner = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    held = json.loads(claim.read_text() or "{}")
                except (OSError, ValueError):
                    return False
                if _alive(held):
                    return False
                claim.unlink(missing_ok=True)  # its process is gone: take it over
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(owner, handle)
            return True
        return False

    @staticmethod
    def _write(folder: Path, job: dict[str, Any]) -> None:
        atomic_write(folder / "job.json", lambda temporary: temporary.write_text(json.dumps(job, indent=1)))


class JobWorker:
    """A thread that claims jobs from a :class:`JobStore` one at a time and runs them with ``runners[kind]``."""

    def __init__(self, store: JobStore, runners: dict[str, JobRunner], poll_s: float = 0.2) -> None:
        self.store, self.runners, self.poll_s = store, runners, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="visionzoo-jobs", daemon=True)

    def start(self) -> "JobWorker":
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; the job in hand stops at its next step and stays ``running`` on disk (a restart resumes
        it)."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim_next()
            if job is None:
                self._stop.wait(self.poll_s)
                continue
            self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        job_id, started = job["id"], time.time()
        self.store.update(job_id, state="running", started=job.get("started") or started, error=None)
        last = [0.0]

        def progress(done: float, total: float) -> None:
            now = time.time()
            if now - last[0] < 0.5 and done < total:
                return
            last[0] = now
            share = done / total if total else 0.0
            left = (now - started) * (1 - share) / share if share > 0 else None
            self.store.update(job_id, progress=round(share, 4), done=done, total=total,
                              seconds_left=None if left is None else round(left, 1))

        def cancelled() -> bool:
            return self._stop.is_set() or bool((self.store.get(job_id) or {}).get("cancel_requested"))

        try:
            self.runners[job["kind"]](job, self.store.folder(job_id), progress, cancelled)
        except JobCancelled:
            if not self._stop.is_set():  # a client's cancel; a shutdown leaves the job running for a restart
                self.store.update(job_id, state="cancelled", finished=time.time())
                shutil.rmtree(self.store.folder(job_id) / "input", ignore_errors=True)
            self.store.release(job_id)
            return
        except Exception as err:  # noqa: BLE001 - the job's fault is reported in the job, the server goes on
            self.store.update(job_id, state="failed", finished=time.time(), error=f"{type(err).__name__}: {err}")
            self.store.release(job_id)
            return
        self.store.update(job_id, state="done", progress=1.0, seconds_left=0.0, finished=time.time())
        self.store.release(job_id)
