"""Run entry-point command lines one after another in one Python process, as separate processes would.

``python tests/helpers/command_batch.py JOBS.json RESULTS.json``: every job (``script``, ``args``, ``cwd``, ``env``)
runs the script as ``__main__`` with that ``sys.argv``, in that folder, with those environment variables added; its
exit status, standard output and standard error go to RESULTS.json. torch, Lightning and Hydra are imported once
for the whole batch instead of once per command, which is most of a command's time when it fails early (the
bad-input suite, ``tests/test_bad_inputs.py``). Modules import before any job runs, so handlers they make at import
(Lightning's logger) write to this process's own streams, not to a job's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One command line: ``{"returncode", "stdout", "stderr"}`` as a process running it would give."""
    from hydra.core.global_hydra import GlobalHydra

    os.chdir(job["cwd"])
    os.environ.update(job.get("env", {}))
    sys.argv = [job["script"], *job["args"]]
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(job["script"], run_name="__main__")
        except SystemExit as stop:
            if isinstance(stop.code, str):  # sys.exit("message"): printed, status 1
                print(stop.code, file=sys.stderr)
                code = 1
            else:
                code = stop.code or 0
        except BaseException:  # what the interpreter would print and exit 1 with
            traceback.print_exc()
            code = 1
    GlobalHydra.instance().clear()  # the next job's @hydra.main initialises it again
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main(jobs_file: str, results_file: str) -> None:
    import lightning  # noqa: F401  (imported once, before any job's streams are redirected)
    import torch  # noqa: F401

    import visionzoo.run.jobs  # noqa: F401

    jobs = json.loads(Path(jobs_file).read_text())
    results = {}
    for job in jobs:
        results[job["id"]] = run_job(job)
        Path(results_file).write_text(json.dumps(results))  # what finished survives a crash of a later job


if __name__ == "__main__":
    main(*sys.argv[1:])
