"""Datasets (folders, manifests, built-ins), decoding, splits and image loading."""

from .dataset import Dataset
from .decode import decode_image
from .loading import ImageSpec, LoadedImages, load_images, prepare_image
from .sources import load_dataset
from .splits import assign_splits, carve_validation

__all__ = [
    "Dataset",
    "ImageSpec",
    "LoadedImages",
    "assign_splits",
    "carve_validation",
    "decode_image",
    "load_dataset",
    "load_images",
    "prepare_image",
]
