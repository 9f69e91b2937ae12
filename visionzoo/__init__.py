"""visionzoo: a multi-task vision model zoo on Deep Layer Aggregation backbones."""

from visionzoo.models import (
    create_model,
    from_pretrained,
    list_models,
    load_weights,
    model_card,
    register_model,
    save_pretrained,
)

__version__ = "0.1.0"
__all__ = [
    "create_model",
    "from_pretrained",
    "list_models",
    "load_weights",
    "model_card",
    "register_model",
    "save_pretrained",
]
