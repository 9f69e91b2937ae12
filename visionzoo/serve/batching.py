"""Requests for the same model that arrive close together share one forward pass.

One worker thread per device takes the oldest waiting request, then waits up to ``window_s`` for more requests
for the same model and input size (up to ``max_batch``), and runs them as one batch. The queue is bounded: when
``max_queue`` requests wait, :meth:`Batcher.submit` raises :class:`QueueFull` (the service answers 503 with
Retry-After) and everything already accepted still completes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: ``run(model_name, images, input_size)`` -> one float alpha ``(H, W)`` per ``(H, W, 3)`` uint8 image.
BatchRunner = Callable[[str, list[np.ndarray], int | None], list[np.ndarray]]


class QueueFull(Exception):
    """The batcher holds ``max_queue`` waiting requests already."""


@dataclass
class _Request:
    model: str
    image: np.ndarray
    input_size: int | None
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple[str, int | None]:
        return self.model, self.input_size


class Batcher:
    """A bounded queue of single-image requests and the worker thread that runs them in batches.

    Args:
        run: computes a batch (see :data:`BatchRunner`); an exception fails every request of that batch.
        max_batch: most images per forward pass. window_s: how long the first request of a batch waits for
            company (seconds). max_queue: most requests waiting (not yet in a batch).
        on_batch: called with each batch's size (the service's metrics).
    """

    def __init__(self, run: BatchRunner, max_batch: int = 8, window_s: float = 0.01, max_queue: int = 64,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.run, self.max_batch, self.window_s, self.max_queue = run, max(1, max_batch), window_s, max_queue
        self.on_batch = on_batch
        self._waiting: deque[_Request] = deque()
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="visionzoo-batcher", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        """Requests waiting for a batch."""
        with self._changed:
            return len(self._waiting)

    def submit(self, model: str, image: np.ndarray, input_size: int | None = None) -> Future:
        """Queue one image; the future resolves to its float alpha ``(H, W)``. Raises :class:`QueueFull`."""
        request = _Request(model, image, input_size)
        with self._changed:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting")
            self._waiting.append(request)
            self._changed.notify_all()
        return request.future

    def stop(self) -> None:
        """Finish the batches already waiting, then end the worker."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join()

    def _next_batch(self) -> list[_Request] | None:
        with self._changed:
            while not self._waiting:
                if self._stopped:
                    return None
                self._changed.wait()
            key = self._waiting[0].key
            deadline = time.monotonic() + self.window_s
            while (sum(r.key == key for r in self._waiting) < self.max_batch and not self._stopped
                   and (left := deadline - time.monotonic()) > 0):
                self._changed.wait(left)
            batch = [r for r in self._waiting if r.key == key][: self.max_batch]
            for request in batch:
                self._waiting.remove(request)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                alphas = self.run(batch[0].model, [r.image for r in batch], batch[0].input_size)
            except Exception as err:  # noqa: BLE001 - handed to every waiting request
                for request in batch:
                    request.future.set_exception(err)
                continue
            for request, alpha in zip(batch, alphas):
                request.future.set_result(alpha)
