"""The service's parts in one process: the batcher groups and bounds requests; several workers sharing one jobs
folder (one per GPU, or several servers behind one address) run each job exactly once, and a job claimed by a
process that died is taken over."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from visionzoo.serve.batching import Batcher, QueueFull
from visionzoo.serve.jobs import JobStore, JobWorker


def test_batcher_groups_by_model_and_size_up_to_the_maximum():
    seen, gate = [], threading.Event()

    def run(model, images, size):
        gate.wait(5)
        seen.append((model, size, len(images)))
        return [np.full(im.shape[:2], float(im[0, 0, 0])) for im in images]

    batcher = Batcher(run, max_batch=3, window_s=0.05, max_queue=8)
    image = lambda v: np.full((2, 2, 3), v, np.uint8)  # noqa: E731
    blocker = batcher.submit("a", image(0))  # the worker takes this one and waits at the gate
    time.sleep(0.1)
    futures = [batcher.submit(m, image(v), s) for v, (m, s) in
               enumerate([("a", None), ("b", None), ("a", None), ("a", None), ("a", None), ("a", 64)], start=1)]
    assert batcher.depth() == 6
    with pytest.raises(QueueFull):
        for v in range(10):
            batcher.submit("c", image(v))
    gate.set()
    assert [f.result(5)[0, 0] for f in futures] == [1, 2, 3, 4, 5, 6]  # each answer is its own image's
    blocker.result(5)
    batcher.stop()
    assert seen[:4] == [("a", None, 1), ("a", None, 3), ("b", None, 1), ("a", None, 1)]
    assert ("a", 64, 1) in seen


def test_workers_sharing_a_folder_run_each_job_once(tmp_path):
    store = JobStore(tmp_path)
    jobs = [store.create("cutout", [("x.png", b"1")], {}) for _ in range(8)]
    runs, lock = [], threading.Lock()

    def runner(job, folder, progress, cancelled):
        with lock:
            runs.append(job["id"])
        time.sleep(0.05)
        (folder / "output" / "done.txt").write_text(job["id"])
        progress(1, 1)

    workers = [JobWorker(JobStore(tmp_path), {"cutout": runner}, poll_s=0.01).start() for _ in range(3)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(store.get(j["id"])["state"] != "done" for j in jobs):
        time.sleep(0.05)
    for worker in workers:
        worker.stop()
    assert sorted(runs) == sorted(j["id"] for j in jobs)  # every job once, none twice
    assert all(store.get(j["id"])["state"] == "done" for j in jobs)
    assert all(not (store.folder(j["id"]) / "claim").exists() for j in jobs)


def test_a_dead_process_claim_is_taken_over_and_cancel_stops_a_queued_job(tmp_path):
    store = JobStore(tmp_path)
    orphan, queued = (store.create("cutout", [("x.png", b"1")], {}) for _ in range(2))
    store.update(orphan["id"], state="running")
    import socket

    (store.folder(orphan["id"]) / "claim").write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 7}))
    assert store.cancel(queued["id"])["state"] == "cancelled"
    assert store.claim_next()["id"] == orphan["id"]  # its process is gone: this one takes it over
    assert store.claim_next() is None  # the cancelled job is not run
