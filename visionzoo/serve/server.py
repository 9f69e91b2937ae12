"""``visionzoo serve`` (and ``python -m visionzoo.serve.server``): load the models the config names and run the
app on uvicorn. Binding anything but a loopback address requires ``serve.api_key``."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from visionzoo.errors import ConfigError
from visionzoo.predict.cutout import MaskModel
from visionzoo.serve.app import ServeSettings, create_app, dip_denoiser

log = logging.getLogger(__name__)
_CARD_FIELDS = ("task", "description", "license", "weights", "reference")


def settings_from(cfg: DictConfig) -> ServeSettings:
    """``cfg.serve`` as :class:`ServeSettings` (the model-side keys stay in the config)."""
    values = OmegaConf.to_container(cfg.serve, resolve=True)
    fields = {f.name for f in dataclasses.fields(ServeSettings)}
    return ServeSettings(**{k: v for k, v in values.items() if k in fields})


def check_bind(settings: ServeSettings) -> None:
    """Refuse a non-loopback address without an API key (one line, before anything loads)."""
    host = settings.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not settings.api_key:
        raise ConfigError(f"serve.host={host} makes the server reachable from other machines; set serve.api_key=SECRET "
                          "too (clients send it as X-API-Key), or bind serve.host=127.0.0.1")


def load_models(cfg: DictConfig) -> tuple[dict[str, MaskModel], dict[str, dict[str, Any]]]:
    """The config's ``model`` (with ``ckpt_path``) first, then ``serve.models`` (registered name -> weights)."""
    from visionzoo.models.factory import create_model
    from visionzoo.models.registry import model_card, resolve_preprocessing
    from visionzoo.models.weights import load_weights
    from visionzoo.run.build import instantiate_node, preprocessing_of

    options = dict(input_size=cfg.serve.input_size, device=cfg.serve.device, precision=cfg.serve.precision)
    name = OmegaConf.select(cfg, "model.name")
    net = instantiate_node(cfg, "model")
    if cfg.get("ckpt_path") is not None:
        load_weights(net, cfg.ckpt_path)
    models = {name: MaskModel(net, preprocessing=preprocessing_of(cfg), **options)}
    for extra, weights in (cfg.serve.models or {}).items():
        extra_net = create_model(extra)
        if weights:
            load_weights(extra_net, weights)
        models[extra] = MaskModel(extra_net, preprocessing=resolve_preprocessing(extra), **options)
    cards = {}
    for model in models:
        card = model_card(model)
        cards[model] = {field: str(getattr(card, field)) if getattr(card, field, None) is not None else None
                        for field in _CARD_FIELDS}
    return models, cards


def serve(cfg: DictConfig) -> None:
    """Check the bind, load the models, serve until stopped (SIGINT/SIGTERM drain the requests in flight)."""
    import uvicorn

    settings = settings_from(cfg)
    check_bind(settings)
    models, cards = load_models(cfg)
    denoise = OmegaConf.to_container(cfg.serve.denoise, resolve=True) if cfg.serve.get("denoise") else None
    app = create_app(models, settings, cards, dip_denoiser(denoise, cfg.serve.device) if denoise else None)
    log.info("serving %s on http://%s:%d (page /, API docs /docs)", ", ".join(models), settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=30)
