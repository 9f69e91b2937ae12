"""Pure ``nn.Module`` models: backbones, necks, task families, the registry, the factory and weights loading.

Importing this package registers every family's models (their modules call ``register_model`` on import), so
``list_models`` is complete whichever module a caller imports first.
"""

from visionzoo.models import ben, ben2, dhd, dip, dla  # noqa: F401  (they register their models)
from visionzoo.models.backbones import DLA_VARIANTS, TimmFeatures
from visionzoo.models.encoders import DLAUpEncoder
from visionzoo.models.factory import create_model, from_pretrained
from visionzoo.models.necks import DLAUp, IDAUp
from visionzoo.models.registry import ModelCard, list_models, model_card, register_model
from visionzoo.models.weights import load_weights, save_pretrained

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
