"""Pure ``nn.Module`` models: backbones, necks, task families, the registry and weights loading."""

from visionzoo.models.backbones import DLA_VARIANTS, TimmFeatures
from visionzoo.models.encoders import DLAUpEncoder
from visionzoo.models.necks import DLAUp, IDAUp
from visionzoo.models.registry import ModelCard, create_model, list_models, model_card, register_model
from visionzoo.models.weights import from_pretrained, load_weights, save_pretrained

__all__ = [
    "DLA_VARIANTS",
    "DLAUp",
    "DLAUpEncoder",
    "IDAUp",
    "ModelCard",
    "TimmFeatures",
    "create_model",
    "from_pretrained",
    "list_models",
    "load_weights",
    "model_card",
    "register_model",
    "save_pretrained",
]
