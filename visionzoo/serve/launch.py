"""Starting ``visionzoo serve`` as a subprocess on a free loopback port and waiting until it answers (the tests and
``benchmarks/serve_bench.py`` use it; users run ``visionzoo serve`` themselves)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    """A server subprocess: its address, process and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 600), **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` (SIGTERM: uvicorn drains, then re-raises it) and wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def launch(overrides: list[str], cwd: str | os.PathLike, threads: int | None = None,
           timeout: float = 120) -> RunningServer:
    """``visionzoo serve serve.port=<free> *overrides`` in ``cwd`` (its log beside), ready when ``/healthz``
    answers; ``threads`` sets OMP_NUM_THREADS. Raises RuntimeError with the log's end if it never does."""
    port = free_port()
    log = Path(cwd) / f"server-{port}.log"
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "visionzoo.cli", "serve", f"serve.port={port}", *overrides],
                                   cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, env=env)
    server = RunningServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.3)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
