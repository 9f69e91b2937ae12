"""Pretrained weights: one place that finds, checks, reads and loads them.

Sources are a local file, a folder written by :func:`save_pretrained`, an http(s) URL (downloaded once into
a cache folder and checked against a sha256 when one is given), or a Hugging Face hub name
``hf-hub:ORG/REPO[/FILE][@REVISION]`` (FILE defaults to ``model.safetensors``), fetched by ``huggingface_hub``
into its cache; with ``HF_HUB_OFFLINE=1`` (or no network) the cached copy is used. ``.safetensors`` is preferred;
``.pt``, ``.pth``, ``.ckpt`` and ``.bin`` files are read with ``torch.load(weights_only=True)``, so a pickle that
would run code is refused. Lightning checkpoints (``{"state_dict": ...}``) and wrapped models (``module.``, ``net.`` ...) load into
the bare model: the key prefix is found by matching against the model's own keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file as save_safetensors
from torch import nn

from visionzoo.errors import WeightsError
from visionzoo.files import atomic_write

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_TORCH_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".tar"}
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a model."""

    source: str
    loaded: int = 0
    prefix: str = ""
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    #: Keys the model declares its published checkpoint carries without using (``unused_checkpoint_keys``).
    skipped: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{self.loaded} tensors loaded from {self.source}"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} unused by the network skipped (the published file carries them)")
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("shape-mismatched", self.mismatched)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        return "; ".join(parts)


def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$VISIONZOO_CACHE`` or ``~/.cache/visionzoo``."""
    return Path(os.environ.get("VISIONZOO_CACHE", Path.home() / ".cache" / "visionzoo"))


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


HF_HUB_PREFIX = "hf-hub:"


def resolve(source: str | os.PathLike, sha256: str | None = None) -> Path:
    """Turn a path, URL or ``hf-hub:`` name into a local path (downloading into a cache) and check ``sha256``."""
    text = str(source)
    if text.startswith(HF_HUB_PREFIX):
        path = _from_hub(text)
    elif urllib.parse.urlparse(text).scheme in ("http", "https"):
        path = _download(text, sha256)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise WeightsError(f"weights not found: {path}; pass an existing file, a saved model folder or a URL")
    if sha256 and path.is_file():
        actual = sha256_of(path)
        if not actual.startswith(sha256.lower()):
            raise WeightsError(f"sha256 mismatch for {path}: expected {sha256}, got {actual}; delete it and retry")
    return path


def _from_hub(name: str) -> Path:
    """``hf-hub:ORG/REPO[/FILE][@REVISION]`` -> the file in ``huggingface_hub``'s cache (fetched if missing)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    spec, _, revision = name[len(HF_HUB_PREFIX) :].partition("@")
    parts = spec.strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise WeightsError(f"{name} is not a hub name; write hf-hub:ORG/REPO or hf-hub:ORG/REPO/FILE")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or WEIGHTS_FILE
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision or None))
    except LocalEntryNotFoundError as err:
        raise WeightsError(
            f"{name}: {filename} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub cannot be "
            f"reached; download it from https://huggingface.co/{repo_id} and pass its path"
        ) from err
    except (HfHubHTTPError, HFValidationError) as err:
        raise WeightsError(f"{name}: {_first_line(err)}; check the repository and file name") from err


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _download(url: str, sha256: str | None) -> Path:
    name = Path(urllib.parse.urlparse(url).path).name or "weights"
    target = cache_dir() / (f"{sha256[:12]}-{name}" if sha256 else name)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, target)
    handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(handle)
    try:
        urllib.request.urlretrieve(url, tmp)  # noqa: S310 - scheme checked by the caller
        if sha256 and not sha256_of(tmp).startswith(sha256.lower()):
            raise WeightsError(f"sha256 mismatch for {url}: expected {sha256}; the download was discarded")
        os.replace(tmp, target)
    except OSError as err:
        raise WeightsError(f"could not download {url}: {err}; download it by hand and pass the local path") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def read_state_dict(source: str | os.PathLike, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read tensors from a weights file or saved-model folder without running any pickled code.

    Lightning checkpoints and ``{"model_state_dict": ...}``-style wrappers are unwrapped; prefixes are kept (see
    :func:`load_state_dict_into`).
    """
    path = resolve(source, sha256)
    if path.is_dir():
        path = path / WEIGHTS_FILE
        if not path.exists():
            raise WeightsError(f"{path.parent} has no {WEIGHTS_FILE}; pass a folder written by save_pretrained")
    if path.suffix == ".safetensors":
        try:
            return load_safetensors(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise WeightsError(f"{path} is not a readable safetensors file ({err}); re-download or re-export it") from err
    return unwrap_state_dict(torch_load_safely(path), path)


def torch_load_safely(path: Path) -> Any:
    """``torch.load`` that builds only tensors and plain containers; failures are one-line WeightsErrors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        converted = path.with_name(f"{path.stem}_weights.pth")
        raise WeightsError(
            f"refused to load {path}: it holds pickled objects beyond tensors, which could run code; if you trust "
            f"the file, keep only its weights once: python -c \"import torch; c = torch.load('{path}', "
            f"weights_only=False); torch.save(c.get('state_dict', c), '{converted}')\" and load {converted}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        kind = "unknown suffix" if path.suffix not in _TORCH_SUFFIXES else "corrupt or truncated"
        raise WeightsError(f"cannot read weights {path} ({kind}: {err}); use .safetensors or a torch .pt/.ckpt") from err


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise WeightsError(f"{path} holds no state dict of tensors; save model.state_dict() or use save_pretrained")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _is_state_dict(obj: Mapping) -> bool:
    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) >= max(1, len(values) // 2)


def find_prefix(keys: list[str], model_keys: set[str]) -> str:
    """The prefix (e.g. ``"net."``, ``"module."``) that, stripped from ``keys``, matches most model keys."""
    direct = sum(key in model_keys for key in keys)
    votes: Counter[str] = Counter()
    for key in keys:
        if key in model_keys:
            continue
        for cut, char in enumerate(key):
            if char == "." and key[cut + 1 :] in model_keys:
                votes[key[: cut + 1]] += 1
                break
    if not votes:
        return ""
    prefix, count = votes.most_common(1)[0]
    return prefix if count > direct else ""


def load_state_dict_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> LoadReport:
    """Load ``state`` into ``model`` non-strictly and report every key that did not load.

    Tensors whose shapes differ from the model's are not loaded and are listed as ``mismatched``. A model whose
    published checkpoint carries tensors its network never uses names them with a regular expression in its
    ``unused_checkpoint_keys`` attribute: those are skipped (``report.skipped``), not ``unexpected``.
    """
    own = model.state_dict()
    prefix = find_prefix(list(state), set(own))
    report = LoadReport(source=source, prefix=prefix)
    unused = getattr(model, "unused_checkpoint_keys", None)
    usable: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            report.unexpected.append(key)
            continue
        name = key[len(prefix) :]
        if unused and name not in own and re.fullmatch(unused, name):
            report.skipped.append(name)
        elif name not in own:
            report.unexpected.append(key)
        elif own[name].shape != value.shape:
            report.mismatched.append(f"{name} {tuple(value.shape)} vs {tuple(own[name].shape)}")
        else:
            usable[name] = value
    report.unexpected.sort()
    report.missing = sorted(set(own) - set(usable) - {m.split(" ")[0] for m in report.mismatched})
    missing_ok = model.load_state_dict(usable, strict=False)
    assert not missing_ok.unexpected_keys, missing_ok.unexpected_keys
    report.loaded = len(usable)
    (log.info if report.clean else log.warning)("%s", report.summary())
    return report


def load_weights(model: nn.Module, source: str | os.PathLike, sha256: str | None = None, strict: bool = True) -> LoadReport:
    """Load weights from a file, folder or URL into ``model``.

    With ``strict`` (the default) any missing, unexpected or shape-mismatched key is an error naming the source:
    that is what a checkpoint of another model looks like.
    """
    report = load_state_dict_into(model, read_state_dict(source, sha256), source=str(source))
    if strict:
        require_clean(model, report, source)
    return report


def require_clean(model: nn.Module, report: LoadReport, source: str | os.PathLike) -> None:
    """Every tensor of ``model`` loaded and nothing else in the file, or a WeightsError naming the model."""
    if not report.clean:
        network = getattr(model, "net", model)  # a task LightningModule: name its network
        name = getattr(network, "visionzoo_config", {}).get("name", type(network).__name__)
        if report.loaded == 0:
            raise WeightsError(f"weights {source} are not for model {name!r} (none of its "
                               f"{len(report.missing)} tensors is in the file); pass a checkpoint of a {name} run, "
                               "or the model= the checkpoint was trained with")
        raise WeightsError(f"weights {source} do not fit model {name!r}: {report.summary()}")


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (registered name + builder arguments) into ``directory``."""
    config = getattr(model, "visionzoo_config", None)
    if config is None:
        raise WeightsError("save_pretrained needs a model built by visionzoo.create_model (it records the name)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_safetensors(tensors, str(p), metadata={"format": "pt"}))
    text = json.dumps({"name": config["name"], "kwargs": config["kwargs"]}, indent=2, sort_keys=True)
    atomic_write(directory / CONFIG_FILE, lambda p: Path(p).write_text(text + "\n"))
    return directory
