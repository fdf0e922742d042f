"""scikit-learn objects on disk: skops files, loaded only when every type they hold is a
scikit-learn, NumPy or SciPy type."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import ModelError

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def skops_io():
    """``skops.io``, imported without the scan of every scikit-learn estimator that skops runs at
    import time to build its default list of trusted types (3.4 of the 5 s that predicting one
    image with a classical run took). imgcls never uses that list: :func:`load_skops` trusts
    exactly the types a file holds, once each is checked to be scikit-learn, NumPy or SciPy."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    scan = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io as sio
    finally:
        sklearn.utils.all_estimators = scan
    return sio


def load_skops(path: Path):
    """Load a skops file, refusing any type outside scikit-learn, NumPy and SciPy."""
    sio = skops_io()
    if not path.is_file():
        raise ModelError(f"Model weights '{path}' are missing.")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is a model error
        raise ModelError(f"'{path}' is not a valid skops file: {exc}") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ModelError(f"Refusing to load '{path}': it references untrusted types {refused}.")
    try:
        return sio.load(path, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"Cannot load '{path}': {exc}") from None
