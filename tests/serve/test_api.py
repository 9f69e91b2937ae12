"""The service over real HTTP: cut-outs equal predict.py's files, batching equals one-by-one, a full queue answers
503 and loses nothing, jobs survive a restart, every bad request gets one line and a 4xx, metrics count it all."""

from __future__ import annotations

import base64
import json
import signal
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.serve.conftest import BASE_OVERRIDES, REPO, start_server

#: Real server subprocesses (seconds to start each): in make test, not make test-fast.
pytestmark = pytest.mark.integration

PHOTOS = ("astronaut.jpg", "coffee.jpg", "chelsea.jpg", "deep16.png")


def decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def follow(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def predicted(serve_folder) -> Path:
    """predict.py's files for the test photos, with the server's model and weights."""
    out = serve_folder / "predicted"
    subprocess.run([sys.executable, str(REPO / "predict.py"), "experiment=ben_cutout", "model=ben_tiny",
                    "ckpt_path=tiny.safetensors", "predictor.input_size=64", f"input={serve_folder / 'images'}",
                    f"output={out}", f"hydra.run.dir={serve_folder / 'predict_run'}"],
                   cwd=serve_folder, check=True, capture_output=True)
    return out


def test_cutout_equals_predict_py_byte_for_byte(server, serve_folder, predicted):
    with server.client() as client:
        for name in PHOTOS:
            data = (serve_folder / "images" / name).read_bytes()
            stem = Path(name).stem
            raw = client.post("/v1/cutout", content=data)  # the raw body
            assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
            assert raw.content == (predicted / f"{stem}_cutout.png").read_bytes(), name
            mask = client.post("/v1/cutout", params={"output": "mask"}, files={"file": (name, data)})  # multipart
            assert mask.content == (predicted / f"{stem}_mask.png").read_bytes(), name
        both = client.post("/v1/cutout", params={"output": "both"}, content=data).json()
        assert (both["model"], both["width"], both["height"]) == ("ben_tiny", 64, 64)
        cutout = decode(base64.b64decode(both["cutout_png"]))
        assert cutout.dtype == np.uint16 and cutout.shape == (64, 64, 4)  # 16 bits in, 16 bits out
        other = client.post("/v1/cutout", params={"model": "ben_dla34", "output": "mask"}, content=data)
        assert other.status_code == 200 and other.headers["x-model"] == "ben_dla34"
        assert other.content != mask.content


def test_64_concurrent_requests_each_equal_its_one_by_one_result(server, serve_folder):
    photos = [(serve_folder / "images" / name).read_bytes() for name in PHOTOS[:3]]
    with server.client() as client:
        alone = [client.post("/v1/cutout", params={"output": "mask"}, content=p).content for p in photos]
        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(lambda i: client.post("/v1/cutout", params={"output": "mask"},
                                                          content=photos[i % 3]), range(64)))
        assert [a.status_code for a in answers] == [200] * 64
        for i, answer in enumerate(answers):  # batched forward passes: equal to 1 level of 255
            difference = np.abs(decode(answer.content).astype(int) - decode(alone[i % 3]).astype(int))
            assert difference.max() <= 1, i
        sizes = client.get("/metrics").text
    batch_count = float(next(line.split()[-1] for line in sizes.splitlines()
                             if line.startswith("visionzoo_batch_size_count")))
    images = float(next(line.split()[-1] for line in sizes.splitlines() if line.startswith("visionzoo_batch_size_sum")))
    assert images / batch_count > 1.5  # requests shared forward passes


def test_a_full_queue_answers_503_and_loses_nothing(serve_folder):
    busy = start_server(serve_folder, [*BASE_OVERRIDES, "serve.input_size=512", "serve.max_queue=2",
                                       "serve.max_batch=1", "serve.jobs_dir=jobs_busy"])
    photo = (serve_folder / "images" / "astronaut.jpg").read_bytes()
    try:
        with busy.client() as client, ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: client.post("/v1/cutout", params={"output": "mask"}, content=photo),
                                    range(24)))
            statuses = [a.status_code for a in answers]
            assert set(statuses) == {200, 503} and statuses.count(200) >= 3
            refused = next(a for a in answers if a.status_code == 503)
            assert refused.headers["retry-after"] == "2" and "busy" in refused.json()["error"]
            accepted = [a.content for a in answers if a.status_code == 200]
            assert all(content == accepted[0] for content in accepted)  # every accepted request completed
            metrics = client.get("/metrics").text
        assert f'visionzoo_requests_total{{route="/v1/cutout",status="503"}} {statuses.count(503)}.0' in metrics
    finally:
        busy.stop()


def test_jobs_survive_sigterm_and_a_restart_finishes_them(serve_folder, predicted):
    overrides = [*BASE_OVERRIDES, "serve.jobs_dir=jobs_restart", "serve.input_size=256"]
    first = start_server(serve_folder, overrides)
    files = [("files", (f"{i}_{name}", (serve_folder / "images" / name).read_bytes()))
             for i in range(4) for name in PHOTOS[:3]]
    with first.client() as client:
        job = client.post("/v1/jobs", params={"kind": "cutout"}, files=files)
        assert job.status_code == 201
        job_id = job.json()["id"]
        while client.get(f"/v1/jobs/{job_id}").json()["state"] == "queued":
            time.sleep(0.05)
    # SIGTERM: uvicorn drains, runs the app's shutdown (the job stays on disk), then re-raises the signal
    assert first.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in first.log.read_text()
    on_disk = json.loads((serve_folder / "jobs_restart" / job_id / "job.json").read_text())
    assert on_disk["state"] in ("running", "done")
    second = start_server(serve_folder, overrides)
    try:
        with second.client() as client:
            finished = follow(client, job_id)
            assert finished["state"] == "done" and finished["progress"] == 1.0
            assert any(j["id"] == job_id for j in client.get("/v1/jobs").json())
            result = client.get(f"/v1/jobs/{job_id}/result")
            assert result.status_code == 200 and result.headers["content-type"] == "application/zip"
        out = serve_folder / "jobs_restart" / job_id / "output"
        assert len(list(out.glob("*_cutout.png"))) == 12 and len(list(out.glob("*_mask.png"))) == 12
    finally:
        second.stop()


def test_video_and_denoise_jobs_with_progress(server, serve_folder, tmp_path):
    from tests.helpers.video import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=6, size=(48, 64))
    noisy = np.clip(cv2.imread(str(serve_folder / "images" / "astronaut.jpg"))[:40, :40].astype(float)
                    + np.random.default_rng(0).normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
    with server.client() as client:
        video = client.post("/v1/jobs", files=[("files", ("clip.mp4", clip.read_bytes()))]).json()
        denoise = client.post("/v1/jobs", params={"kind": "denoise"},
                              files=[("files", ("noisy.png", cv2.imencode(".png", noisy)[1].tobytes()))]).json()
        assert follow(client, video["id"])["state"] == "done"
        names = set(__import__("zipfile").ZipFile(__import__("io").BytesIO(
            client.get(f"/v1/jobs/{video['id']}/result").content)).namelist())
        assert {"clip_mask.mp4", "clip_greenscreen.mp4"} <= names
        done = follow(client, denoise["id"], timeout=300)
        assert done["state"] == "done", done
        denoised = decode(client.get(f"/v1/jobs/{denoise['id']}/result").content)
        assert denoised.shape == (40, 40, 3)
        gone = client.delete("/v1/jobs/nope")
        assert gone.status_code == 404 and "no job 'nope'" in gone.json()["error"]


def png_declaring(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header declares ``width x height`` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_bad_requests_get_one_line_and_the_server_stays_up(server, serve_folder):
    jpeg = (serve_folder / "images" / "astronaut.jpg").read_bytes()
    cases = [
        ({"content": b""}, {}, 400, "the upload is empty"),
        ({"files": {"file": ("photo.png", b"just some text")}}, {}, 400, "photo.png is not an image"),
        ({"content": jpeg[: len(jpeg) // 2]}, {}, 400, "is truncated or corrupt"),
        ({"content": png_declaring(30000, 30000)}, {}, 413, "declares too many pixels"),
        ({"content": np.random.default_rng(0).bytes(1_500_000)}, {}, 413, "over this server's limit of 1.0 MB"),
        ({"content": jpeg}, {"model": "nope"}, 404, "model 'nope' is not loaded here"),
        ({"content": jpeg}, {"output": "gif"}, 422, "bad option output='gif'"),
        ({"content": jpeg}, {"input_size": "huge"}, 422, "bad option input_size"),
        ({"content": jpeg}, {"input_size": "8"}, 422, "bad option input_size=8"),
    ]
    with server.client() as client:
        for request, params, status, message in cases:
            answer = client.post("/v1/cutout", params=params, **request)
            assert answer.status_code == status, (message, answer.text)
            body = answer.json()
            assert set(body) == {"error"} and message in body["error"] and "\n" not in body["error"]
        assert client.post("/v1/jobs", params={"kind": "paint"}, files=[("files", ("a.jpg", jpeg))]).status_code == 422
        assert client.get("/v1/jobs/nope/result").status_code == 404
        assert client.get("/healthz").json()["status"] == "ok"  # still up


def test_models_health_metrics_and_docs(server):
    with server.client() as client:
        models = client.get("/v1/models").json()
        assert [m["name"] for m in models] == ["ben_tiny", "ben_dla34"]
        assert models[0]["default"] and models[0]["input_size"] == 64 and models[0]["task"] == "matting"
        assert client.get("/docs").status_code == 200
        assert "/v1/cutout" in client.get("/openapi.json").json()["paths"]
        metrics = client.get("/metrics").text
        for series in ("visionzoo_requests_total", "visionzoo_request_seconds_bucket", "visionzoo_queue_depth",
                       "visionzoo_batch_size_bucket"):
            assert series in metrics


def test_binding_beyond_loopback_needs_a_key_and_the_key_is_checked(serve_folder):
    refused = subprocess.run([sys.executable, "-m", "visionzoo.cli", "serve", "model=ben_tiny", "serve.host=0.0.0.0"],
                             cwd=serve_folder, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: serve.host=0.0.0.0 makes the server reachable")
    keyed = start_server(serve_folder, [*BASE_OVERRIDES, "serve.api_key=s3cret", "serve.jobs_dir=jobs_key"])
    try:
        assert httpx.get(f"{keyed.url}/v1/models").status_code == 401
        assert httpx.get(f"{keyed.url}/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert httpx.get(f"{keyed.url}/healthz").status_code == 200
    finally:
        keyed.stop()
