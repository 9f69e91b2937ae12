"""The HTTP service: cut-outs now, longer work as jobs, the loaded models, health and metrics, and the web page.

Routes (JSON errors are ``{"error": "<one line>"}`` with a 4xx status; the server stays up):

* ``POST /v1/cutout``: one image (multipart field ``file`` or the raw body) -> the RGBA cut-out PNG
  (``output=cutout``), the mask PNG (``output=mask``) or both as base64 in JSON (``output=both``), at the image's own
  resolution and upright; query options ``model``, ``input_size``, ``refine_foreground``, ``normalize``. Requests
  for the same model arriving together share a forward pass (:mod:`visionzoo.serve.batching`).
* ``POST /v1/jobs`` (multipart ``files``; ``kind=cutout`` for images and videos, ``kind=denoise`` for DIP),
  ``GET /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result``, ``DELETE /v1/jobs/{id}``
  (:mod:`visionzoo.serve.jobs`).
* ``GET /v1/models``, ``GET /healthz``, ``GET /metrics`` (Prometheus text), ``GET /`` (the page), ``/docs``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from visionzoo.data.images import encode_image
from visionzoo.errors import DataError
from visionzoo.predict.cutout import CutoutPredictor, MaskModel, alpha_to_uint8, compose_cutout
from visionzoo.predict.video import VIDEO_SUFFIXES
from visionzoo.serve.batching import Batcher, QueueFull
from visionzoo.serve.jobs import JobCancelled, JobStore, JobWorker
from visionzoo.serve.uploads import ClientError, check_image, check_video, image_from_upload, safe_name

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("static") / "index.html"
OUTPUTS = ("cutout", "mask", "both")
#: The most files one job takes.
MAX_JOB_FILES = 64


@dataclasses.dataclass
class ServeSettings:
    """``serve.*`` of the config (configs/serve/default.yaml documents each)."""

    host: str = "127.0.0.1"
    port: int = 7000
    api_key: str | None = None
    models: dict[str, str | None] = dataclasses.field(default_factory=dict)
    max_upload_mb: float = 50.0
    max_megapixels: float = 50.0
    max_batch: int | str = "auto"
    batch_window_ms: float = 10.0
    max_queue: int = 64
    timeout_s: float = 300.0
    jobs_dir: str = "serve_jobs"
    cors_origins: list[str] = dataclasses.field(default_factory=list)
    denoise: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)


class Metrics:
    """The Prometheus series of one app (its own registry, so several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("visionzoo_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("visionzoo_request_seconds", "Request latency by route", ["route"],
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
                                 registry=self.registry)
        self.queue = Gauge("visionzoo_queue_depth", "Cut-out requests waiting for a batch", registry=self.registry)
        self.batches = Histogram("visionzoo_batch_size", "Images per forward pass", buckets=(1, 2, 4, 8, 16, 32, 64),
                                 registry=self.registry)


def create_app(models: dict[str, MaskModel], settings: ServeSettings, cards: dict[str, dict[str, Any]] | None = None,
               denoiser: Any = None) -> FastAPI:
    """The service around already loaded ``models`` (name -> :class:`MaskModel`; the first is the default).

    ``cards``: what ``/v1/models`` tells about each; ``denoiser``: a callable ``(input file, output folder,
    progress, cancelled)`` for ``kind=denoise`` jobs, or None (such jobs are refused).
    """
    if not models:
        raise ValueError("no models to serve")
    default_model = next(iter(models))
    metrics = Metrics()
    batcher = Batcher(lambda name, images, size: models[name].predict_alpha(images, size),
                      batch_size_for(settings.max_batch, models.values()), settings.batch_window_ms / 1000,
                      settings.max_queue, on_batch=metrics.batches.observe)
    store = JobStore(settings.jobs_dir)

    def cutout_job(job: dict[str, Any], folder: Path, progress, cancelled) -> None:
        options = job["options"]
        predictor = CutoutPredictor(None, "", str(folder / "output"), model=models[options["model"]],
                                    refine_foreground=options.get("refine_foreground", False))
        inputs = sorted((folder / "input").iterdir())
        for index, path in enumerate(inputs):
            if cancelled():
                raise JobCancelled()
            predictor.input = str(path)
            predictor.run()  # skips a file whose outputs exist: a resumed job picks up here
            progress(index + 1, len(inputs))

    def denoise_job(job: dict[str, Any], folder: Path, progress, cancelled) -> None:
        inputs = sorted((folder / "input").iterdir())
        for index, path in enumerate(inputs):
            def step(done: float, total: float, index: int = index) -> None:
                if cancelled():
                    raise JobCancelled()
                progress(index + done / total, len(inputs))

            denoiser(path, folder / "output", step)
            progress(index + 1, len(inputs))

    worker = JobWorker(store, {"cutout": cutout_job, "denoise": denoise_job}).start()
    app = FastAPI(title="visionzoo", version="0.1.0",
                  description="Cut-outs (BEN), denoising (DIP) and jobs over HTTP. docs/serve.md in the repository.")
    app.state.batcher, app.state.store, app.state.worker, app.state.metrics = batcher, store, worker, metrics

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])

    @app.on_event("shutdown")
    def _shutdown() -> None:
        worker.stop(timeout=30)  # the job in hand stays "running" on disk: a restart finishes it
        batcher.stop()

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        started = time.perf_counter()
        if settings.api_key and (request.url.path.startswith("/v1/") or request.url.path == "/metrics"):
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
            if given != settings.api_key:
                response = _error(401, "missing or wrong API key; send it as the X-API-Key header")
                _record(request, response, started)
                return response
        response = await call_next(request)
        _record(request, response, started)
        return response

    def _record(request: Request, response: Response, started: float) -> None:
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.requests.labels(name, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - started)

    @app.exception_handler(ClientError)
    async def _client_error(_: Request, err: ClientError) -> JSONResponse:
        return _error(err.status, str(err), err.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_options(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return _error(422, f"bad option {where}: {first.get('msg', 'invalid')} (got {first.get('input')!r})")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    def _model(name: str | None) -> str:
        name = name or default_model
        if name not in models:
            raise ClientError(f"model {name!r} is not loaded here; loaded: {', '.join(models)} (GET /v1/models)", 404)
        return name

    async def _upload(request: Request, field: str = "file", files: int = 1) -> list[tuple[str, bytes]]:
        """The uploaded ``(name, bytes)`` (at most ``files`` of them); a request longer than ``files`` uploads of
        the size limit is refused before it is read."""
        length = int(request.headers.get("content-length") or 0)
        if length > files * settings.max_bytes + 65536:  # 64 kB for the multipart framing
            raise ClientError(f"the request is {length / 1e6:.1f} MB, over this server's limit of "
                              f"{files * settings.max_upload_mb:.1f} MB ({files} x serve.max_upload_mb)", 413)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=files, max_part_size=settings.max_bytes + 1)
            uploads = form.getlist(field)
            if not uploads:
                raise ClientError(f"the multipart request has no {field!r} field; send the image as {field!r}")
            files = []
            for upload in uploads:
                if isinstance(upload, str):
                    raise ClientError(f"the {field!r} field must be a file, not text")
                files.append((upload.filename or "upload", await upload.read()))
            return files
        return [(request.query_params.get("filename") or "upload", await request.body())]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "models": list(models), "queue": batcher.depth()}

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        metrics.queue.set(batcher.depth())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    def list_loaded() -> list[dict[str, Any]]:
        return [{"name": name, "input_size": model.input_size, "default": name == default_model,
                 **(cards or {}).get(name, {})} for name, model in models.items()]

    @app.post("/v1/cutout")
    async def cutout(request: Request, model: str | None = None, output: str = "cutout",
                     input_size: int | None = None, refine_foreground: bool = False, normalize: bool = True) -> Response:
        name = _model(model)
        if output not in OUTPUTS:
            raise ClientError(f"bad option output={output!r}; choose one of {', '.join(OUTPUTS)}", 422)
        if input_size is not None and not 32 <= input_size <= 4096:
            raise ClientError(f"bad option input_size={input_size}; use 32 to 4096 pixels", 422)
        (filename, data), = (await _upload(request))[:1]
        image = await asyncio.to_thread(image_from_upload, data, safe_name(filename, "upload"), settings.max_bytes,
                                        settings.max_pixels)
        try:
            future = batcher.submit(name, image.rgb8(), input_size)
        except QueueFull:
            raise ClientError("the server is busy (its queue is full); retry in a few seconds", 503,
                              {"Retry-After": "2"}) from None
        try:
            alpha = await asyncio.wait_for(asyncio.wrap_future(future), settings.timeout_s)
        except asyncio.TimeoutError:
            raise ClientError(f"the cut-out took over {settings.timeout_s:.0f} s (serve.timeout_s)", 504) from None
        except DataError as err:
            raise ClientError(str(err), 422) from err
        mask = alpha_to_uint8(alpha, normalize)
        height, width = mask.shape
        if output == "mask":
            return Response(await asyncio.to_thread(encode_image, mask), media_type="image/png",
                            headers={"X-Model": name})
        rgba = await asyncio.to_thread(compose_cutout, image, mask, refine_foreground)
        if output == "cutout":
            return Response(await asyncio.to_thread(encode_image, rgba), media_type="image/png",
                            headers={"X-Model": name})
        mask_png, cutout_png = await asyncio.to_thread(lambda: (encode_image(mask), encode_image(rgba)))
        return JSONResponse({"model": name, "width": width, "height": height,
                             "mask_png": base64.b64encode(mask_png).decode(),
                             "cutout_png": base64.b64encode(cutout_png).decode()})

    @app.post("/v1/jobs", status_code=201)
    async def submit_job(request: Request, kind: str = "cutout", model: str | None = None,
                         refine_foreground: bool = False) -> dict[str, Any]:
        if kind not in ("cutout", "denoise"):
            raise ClientError(f"bad option kind={kind!r}; choose cutout or denoise", 422)
        if kind == "denoise" and denoiser is None:
            raise ClientError("this server does not denoise (serve.denoise is off)", 422)
        name = _model(model) if kind == "cutout" else None
        files, seen = [], set()
        for index, (filename, data) in enumerate(await _upload(request, "files", MAX_JOB_FILES)):
            clean = safe_name(filename, f"upload{index}")
            if kind == "cutout" and Path(clean).suffix.lower() in VIDEO_SUFFIXES:
                await asyncio.to_thread(check_video, data, clean, settings.max_bytes)
            else:  # saved as uploaded, under the suffix of what it is
                suffix = await asyncio.to_thread(check_image, data, clean, settings.max_bytes, settings.max_pixels)
                clean = f"{Path(clean).stem}{suffix}"
            if clean in seen:
                clean = f"{Path(clean).stem}_{index}{Path(clean).suffix}"
            seen.add(clean)
            files.append((clean, data))
        return store.create(kind, files, {"model": name, "refine_foreground": refine_foreground})

    @app.get("/v1/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        return store.list()

    def _job(job_id: str) -> dict[str, Any]:
        job = store.get(job_id)
        if job is None:
            raise ClientError(f"no job {job_id!r} (GET /v1/jobs lists them)", 404)
        return job

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return _job(job_id)

    @app.get("/v1/jobs/{job_id}/result")
    def job_result(job_id: str) -> FileResponse:
        job = _job(job_id)
        if job["state"] != "done":
            raise ClientError(f"job {job_id} is {job['state']}, not done; GET /v1/jobs/{job_id} follows it", 409)
        path = store.result(job_id)
        if path is None:
            raise ClientError(f"job {job_id} wrote nothing", 404)
        return FileResponse(path, filename=path.name)

    @app.delete("/v1/jobs/{job_id}")
    def cancel_job(job_id: str) -> dict[str, Any]:
        _job(job_id)
        return store.cancel(job_id)

    return app


#: ``serve.max_batch=auto``: batches on a GPU; on a CPU one image per forward pass, as a batch of 8 1024-pixel
#: images is no faster per image there and holds the answers back (benchmarks in docs/serve.md).
AUTO_BATCH = {"cuda": 8, "cpu": 1}


def batch_size_for(max_batch: int | str, models: Any) -> int:
    """``serve.max_batch``: a number, or ``auto`` (:data:`AUTO_BATCH` for the models' device)."""
    if max_batch != "auto":
        return int(max_batch)
    on_gpu = any(model.device.type == "cuda" for model in models)
    return AUTO_BATCH["cuda" if on_gpu else "cpu"]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status,
                        headers=headers)


def dip_denoiser(settings: dict[str, Any], device: str = "auto"):
    """``(input file, output folder, on_step)`` -> ``<stem>_dip.png`` in the folder, with the DIP recipe in
    ``settings`` (``model``, ``architecture``, ``fit``, ``tile``: predict.py's ``experiment=dip_denoise`` options)."""
    from visionzoo.models.factory import create_model
    from visionzoo.predict.denoise import DenoisePredictor

    def denoise(path: Path, out: Path, on_step) -> None:
        predictor = DenoisePredictor(partial(create_model, name=settings.get("model", "dip_scaled")), str(path),
                                     str(out), architecture=settings.get("architecture", "auto"),
                                     fit=settings.get("fit"), tile=settings.get("tile"), device=device)
        if not predictor.output_path(path).exists():  # a resumed job keeps the photos it finished
            predictor.denoise_file(path, on_step)

    return denoise
