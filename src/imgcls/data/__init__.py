"""Datasets (folders, manifests, built-ins), decoding, splits, the prepare step, image loading
and the classical school's features."""

from .dataset import Dataset
from .decode import decode_image
from .facts import DataFacts, describe
from .loading import LoadedImages, load_images
from .prepare import ImageSpec, prepare_image, prepare_images
from .sources import load_dataset
from .splits import assign_splits, carve_validation, merge_validation

__all__ = [
    "DataFacts",
    "Dataset",
    "ImageSpec",
    "LoadedImages",
    "assign_splits",
    "carve_validation",
    "merge_validation",
    "decode_image",
    "describe",
    "load_dataset",
    "load_images",
    "prepare_image",
    "prepare_images",
]
