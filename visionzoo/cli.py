"""Command-line checks made before Hydra runs a job.

Hydra reports a mistyped override (an unknown key, a config group option that does not exist, an override it
cannot parse) or a run folder it cannot create in several lines and exits with status 1. The entry points call
:func:`check_command_line` first: it composes the config the way Hydra will (about 0.1 s) and turns those mistakes
into the project's one line (``error: ...`` naming the key or file and the fix) with exit status 2.

Sweeps (``-m key=a,b``) are checked with the first value of each swept key. Command lines with other Hydra flags
(``--cfg``, ``--help``, ``-cn`` ...) are left to Hydra.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Iterator

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, ListConfig, Node, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from visionzoo.errors import VisionZooError

#: The Hydra configs: the package's copy in an installed wheel, the repository's configs/ in a clone (a link).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
COMMANDS = ("train", "eval", "predict", "serve", "export")
USAGE = """usage: visionzoo {train,eval,predict,serve,export} [key=value ...]

  visionzoo train experiment=ben_synthetic            same overrides as python train.py ...
  visionzoo eval experiment=dip_denoise data.sigma=25
  visionzoo predict experiment=ben_cutout input=photos/ output=cutouts/ ckpt_path=last.ckpt
  visionzoo serve model=ben2_base ckpt_path=hf-hub:PramaLLC/BEN2/model.safetensors serve.port=7000
  visionzoo export --model ben_dla34 --weights last.ckpt --out ben.onnx"""
_MULTIRUN_FLAGS = ("-m", "--multirun")


def main(argv: list[str] | None = None) -> None:
    """The ``visionzoo`` console script: ``visionzoo train|eval|predict|serve|export ...``. The first four take the same
    Hydra overrides as ``python train.py`` (and its ``-m`` sweeps and flags); ``export`` its own options."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(USAGE if not argv or argv[0] in ("-h", "--help") else f"error: unknown command {argv[0]!r}\n{USAGE}",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    command, rest = argv[0], argv[1:]
    if command == "export":
        from visionzoo.export import main as export_main

        export_main(rest)
        return
    run_job(command, rest)


def run_job(command: str, overrides: list[str]) -> None:
    """``train`` / ``eval`` / ``predict`` / ``serve`` through Hydra with the packaged configs (what the entry-point scripts do)."""
    import hydra

    from visionzoo.run import jobs

    job = {"train": jobs.train, "eval": jobs.evaluate, "predict": jobs.predict, "serve": jobs.serve}[command]
    check_command_line(command, overrides)
    # Hydra reads the overrides from sys.argv; the job name keeps the scripts' log names (train.log ...).
    sys.argv = [f"visionzoo-{command}", *overrides, f"hydra.job.name={command}"]

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=command)
    def hydra_job(cfg: DictConfig) -> None:
        jobs.main(job, cfg)

    hydra_job()


def check_command_line(config_name: str, argv: list[str] | None = None) -> None:
    """Exit with one ``error:`` line and status 2 when Hydra would reject ``argv`` (default ``sys.argv[1:]``)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        command_line_problem(config_name, argv)
    except VisionZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def command_line_problem(config_name: str, argv: list[str]) -> None:
    """Raise :class:`VisionZooError` describing the first problem with ``argv``; return when there is none."""
    flags = [arg for arg in argv if arg.startswith("-")]  # overrides never start with "-"
    if any(flag not in _MULTIRUN_FLAGS for flag in flags):
        return
    multirun = bool(flags)
    overrides = first_of_each_sweep([arg for arg in argv if arg not in _MULTIRUN_FLAGS])
    cfg = _compose(config_name, overrides)
    HydraConfig.instance().set_config(cfg)  # for the ${hydra:...} interpolations in paths and run dirs
    _check_required(cfg)
    _check_run_dir(cfg, multirun)


def _check_required(cfg: DictConfig) -> None:
    """Values the chosen config marks ``???`` (predict.py's ``input`` and ``output``) must be given."""
    missing = [key for key, node in _walk(cfg) if not key.startswith("hydra.") and node._is_missing()]
    if missing:
        given = " ".join(f"{key}=..." for key in missing)
        raise VisionZooError(f"missing value{'s' if len(missing) > 1 else ''} for {', '.join(missing)}: pass {given}")


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """The overrides of the first job of a sweep: ``seed=1,2`` -> ``seed=1``; unparsable ones are kept as given
    (composition reports them)."""
    parser = OverridesParser.create()
    chosen = []
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException as err:
            raise VisionZooError(f"cannot parse override {text!r} ({_first_line(err)}); "
                                 "see https://hydra.cc/docs/advanced/override_grammar/basic") from err
        if not override.is_sweep_override():
            chosen.append(text)
            continue
        try:
            first = next(iter(override.sweep_string_iterator()))
        except (HydraException, StopIteration, TypeError):  # interval() sweeps have no values to list
            continue
        chosen.append(f"{override.get_key_element()}={first}")
    return chosen


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    try:
        return _compose_raw(config_name, overrides, hydra_config=True)
    except MissingConfigException as err:
        raise VisionZooError(_missing_option(err)) from err
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__
        full_key = getattr(cause, "full_key", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and full_key:
            problem = _unknown_key(config_name, overrides, full_key)
            if problem is not None:
                raise VisionZooError(problem) from err
        raise VisionZooError(f"{_first_line(err)} (in the command line overrides)") from err


def _compose_raw(config_name: str, overrides: list[str], hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=hydra_config)


def _missing_option(err: MissingConfigException) -> str:
    """``experiment/ben_dis`` not found -> the option, the closest name and the list to pick from."""
    if not err.missing_cfg_file:
        return _first_line(err)
    group, _, option = err.missing_cfg_file.rpartition("/")
    if not group:
        return f"config '{option}' not found in {CONFIG_DIR}"
    options = list(err.options or [])
    closest = difflib.get_close_matches(option, options, n=1)
    hint = f" (did you mean {group}={closest[0]}?)" if closest else ""
    return f"no config {group}={option}{hint}; pick one of configs/{group}/: {', '.join(options)}"


def _unknown_key(config_name: str, overrides: list[str], full_key: str) -> str | None:
    """The line for an override that names a key the config lacks (``full_key``, from the error Hydra raised):
    the closest existing key and how to add a new one; or, for a mapping merged into a flat mapping of options
    (``task.fit.early_stop={rule: auto}``), how to replace it whole. ``None`` when no override brought the key.
    The config is composed once more without that override, to read the keys it does have."""
    override = next((o for o in overrides if "=" in o and not o.startswith(("+", "~"))
                     and (full_key == o.split("=", 1)[0] or full_key.startswith(o.split("=", 1)[0] + "."))), None)
    if override is None:
        return None
    key, value = override.split("=", 1)
    try:
        cfg: DictConfig | None = _compose_raw(config_name, [o for o in overrides if o is not override])
    except (HydraException, OmegaConfBaseException):
        cfg = None  # another override is wrong as well: report this one without a suggestion
    node = OmegaConf.select(cfg, key) if cfg is not None else None
    flat_options = isinstance(node, DictConfig) and not any(isinstance(v, (DictConfig, ListConfig))
                                                           for v in node.values())
    if value.lstrip().startswith("{") and flat_options:
        return (f"{key}={value} adds options that {key} lacks; to replace it whole write ~{key} "
                f"'+{key}={value}'")
    closest = difflib.get_close_matches(full_key, [name for name, _ in _walk(cfg)], n=1, cutoff=0.6) if cfg else []
    hint = f" (did you mean {closest[0]}?)" if closest else ""
    given = value if full_key == key else "..."
    return f"unknown config key '{full_key}'{hint}; fix the name, or write +{full_key}={given} to add a new key"


def _walk(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Every (dotted key, node) under ``node``; interpolations are not resolved."""
    for key in node.keys():
        child = node._get_node(key)
        name = f"{prefix}{key}"
        yield name, child
        if isinstance(child, DictConfig) and not (child._is_missing() or child._is_none() or child._is_interpolation()):
            yield from _walk(child, name + ".")


def _check_run_dir(cfg: DictConfig, multirun: bool) -> None:
    """The run (or sweep) folder Hydra will create must be creatable: its nearest existing parent a writable folder."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = Path(OmegaConf.select(cfg, key))
    except OmegaConfBaseException:
        return  # a custom run dir with resolvers only Hydra's run sets up: let Hydra create it
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "is not a folder" if not existing.is_dir() else "is not writable"
        raise VisionZooError(f"cannot create the run folder {folder}: {existing} {reason}; "
                             f"set {key}=A_WRITABLE_FOLDER or run from another directory")


def _first_line(error: BaseException | str) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


if __name__ == "__main__":
    main()
