"""Facts shared by models and data (one source of truth each)."""

#: ImageNet normalisation for inputs scaled to [0, 1] (RGB order).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
