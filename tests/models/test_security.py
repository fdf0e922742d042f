"""A model folder must never run code on load: skops with an allow-list, no pickle."""

import json
import pickle

import pytest
import skops.io as sio

from imgcls.core.errors import ModelError
from imgcls.models import create_model, load_model


class Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def saved_model(tmp_path, shapes_small):
    from imgcls.data import ImageSpec, load_images

    images = load_images(shapes_small, ImageSpec(size=32), progress=False).images
    model = create_model("logistic_regression", features="hist", image_size=32)
    return model.fit(images, shapes_small.labels).save(tmp_path / "model")


def test_planted_pickle_payload_executes_nothing(saved_model, tmp_path):
    marker = tmp_path / "pwned"
    (saved_model / "model.skops").write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(ModelError):
        load_model(saved_model)
    assert not marker.exists()


def test_skops_file_with_untrusted_type_is_refused(saved_model, tmp_path):
    marker = tmp_path / "pwned"
    sio.dump({"model": Payload(str(marker))}, saved_model / "model.skops")
    with pytest.raises(ModelError, match="untrusted"):
        load_model(saved_model)
    assert not marker.exists()


def test_pickle_files_in_the_folder_are_never_read(saved_model, tmp_path):
    marker = tmp_path / "pwned"
    for name in ("model.pkl", "model.joblib", "model.pt"):
        (saved_model / name).write_bytes(pickle.dumps(Payload(str(marker))))
    meta = json.loads((saved_model / "model.json").read_text())
    meta["weights"] = "model.pkl"  # a tampered pointer must not change what is read
    (saved_model / "model.json").write_text(json.dumps(meta))
    load_model(saved_model)
    assert not marker.exists()


def test_classes_mismatch_between_json_and_weights_is_detected(saved_model):
    meta = json.loads((saved_model / "model.json").read_text())
    meta["classes"] = ["x", "y", "z"]
    (saved_model / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="classes"):
        load_model(saved_model)
