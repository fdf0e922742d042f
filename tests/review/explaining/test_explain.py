"""Explanations of both schools: files, faithfulness, the sanity check, the CLI and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imgcls
from helpers import write_text_as_png
from imgcls.config import ExplainConfig
from imgcls.core.errors import ConfigError, DataError
from imgcls.data.prepare import prepare_image
from imgcls.deploy.predictors import ClassifierPredictor
from imgcls.models import GRADIENTS
from imgcls.review.explaining import ModelView, error_overlays, explain
from imgcls.review.explaining.faithfulness import area, faithfulness, pixel_order
from imgcls.review.explaining.methods import METHODS, resolve_methods
from imgcls.review.explaining.sanity import randomisation_check, spearman
from imgcls.runs import load_run_model as load_model

SIZE, SPOT = 32, 10
FAST = {"lime_samples": 40, "shap_evals": 60, "curve_steps": 8, "ig_steps": 8}


def spot_image(rng: np.random.Generator, spot: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """Grey noise; 'spot' images carry one bright square whose corner is returned."""
    img = np.clip(rng.normal(70, 15, (SIZE, SIZE)), 0, 255).astype(np.uint8)
    y, x = (int(v) for v in rng.integers(2, SIZE - SPOT - 2, size=2))
    if spot:
        img[y : y + SPOT, x : x + SPOT] = 230
    return np.repeat(img[..., None], 3, axis=2), (y, x)


@pytest.fixture(scope="module")
def spot_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spots")
    rng = np.random.default_rng(0)
    for label in ("plain", "spot"):
        (root / label).mkdir()
        for k in range(40):
            img, _ = spot_image(rng, label == "spot")
            Image.fromarray(img).save(root / label / f"{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def deep_run(spot_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deep") / "run"
    imgcls.train(str(spot_folder), model="small_cnn", out=out, progress=False,
                 overrides=[f"model.image_size={SIZE}", "train.epochs=8", "explain.report_errors=2"])
    return out


@pytest.fixture(scope="module")
def classical_run(spot_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("classical") / "run"
    imgcls.train(str(spot_folder), model="logistic_regression", features="hog+hist", out=out,
                 progress=False, overrides=[f"model.image_size={SIZE}"])
    return out


def deep_view(run: Path) -> ModelView:
    clf = load_model(run)
    return ModelView(clf, ClassifierPredictor(clf))


def spot_images(view: ModelView, folder: Path, n: int) -> list[np.ndarray]:
    return [view.from_model_input(prepare_image(np.asarray(Image.open(p)), view.spec))
            for p in sorted((folder / "spot").glob("*.png"))[:n]]


class TextureModel:
    """A stand-in model: P(class 1) rises with the pixel contrast of the top-left quadrant only,
    which blurring (what deletion does) removes."""

    school, family = "classical", "stub"
    capabilities = frozenset()
    classes_ = np.array(["flat", "textured"], dtype=object)
    classes = list(classes_)

    def __init__(self) -> None:
        from imgcls.data import ImageSpec

        self.image_spec = self.spec = ImageSpec(size=SIZE, channels=3)

    def predict_proba(self, batch):
        quadrant = np.asarray(batch, dtype=np.float64)[:, : SIZE // 2, : SIZE // 2, 0]
        p = 1 / (1 + np.exp(-(quadrant.std(axis=(1, 2)) - 30) / 5))
        return np.stack([1 - p, p], axis=1)


def textured_image() -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 100, np.uint8)
    checks = (np.indices((SIZE // 2, SIZE // 2)).sum(axis=0) % 2) * 200 + 20
    image[: SIZE // 2, : SIZE // 2] = checks[..., None]
    return image


def stub_view() -> ModelView:
    model = TextureModel()
    return ModelView(model, model)


def test_pixel_order_ranks_high_first_and_breaks_ties_by_seed():
    attribution = np.array([[0.0, 5.0], [5.0, 1.0]])
    order = pixel_order(attribution, seed=0)
    assert set(order[:2]) == {1, 2} and list(order[2:]) == [3, 0]
    orders = {tuple(pixel_order(np.zeros((4, 4)), seed=s)) for s in range(5)}
    assert len(orders) > 1  # ties are not resolved by position
    assert np.array_equal(pixel_order(np.zeros((4, 4)), 3), pixel_order(np.zeros((4, 4)), 3))


def test_area_of_a_constant_and_a_ramp():
    assert area(np.ones(11)) == pytest.approx(1.0)
    assert area(np.linspace(0, 1, 21)) == pytest.approx(0.5)


def test_faithfulness_rewards_the_map_that_points_at_what_the_model_uses():
    view = stub_view()
    image = textured_image()  # texture where the model looks: P(textured) near 1
    truth = np.zeros((SIZE, SIZE))
    truth[: SIZE // 2, : SIZE // 2] = 1
    right = faithfulness(view, image, truth, target=1, steps=10)
    wrong = faithfulness(view, image, 1 - truth, target=1, steps=10)
    assert right["deletion"][0] == pytest.approx(right["insertion"][-1])  # same full image
    assert right["deletion_auc"] < wrong["deletion_auc"] - 0.3
    assert right["insertion_auc"] > wrong["insertion_auc"] + 0.3


def test_occlusion_lime_and_shap_find_the_quadrant_the_model_reads():
    view = stub_view()
    image = textured_image()
    cfg = ExplainConfig(**FAST)
    for name in ("occlusion", "lime", "shap"):
        attribution = METHODS.get(name).attribute(view, image, 1, cfg)
        assert attribution.shape == (SIZE, SIZE), name
        inside = attribution[: SIZE // 2, : SIZE // 2].mean()
        outside = np.delete(attribution.ravel(),
                            np.flatnonzero(np.pad(np.ones((SIZE // 2, SIZE // 2)),
                                                  ((0, SIZE // 2), (0, SIZE // 2))).ravel())).mean()
        assert inside > outside, name


def test_randomised_weights_change_the_gradient_maps(deep_run, spot_folder):
    """Adebayo et al. (2018): a map that survives weight randomisation explains nothing."""
    view = deep_view(deep_run)
    images = spot_images(view, spot_folder, 6)
    for method in ("gradcam", "integrated_gradients"):
        check = randomisation_check(view, images, method, ExplainConfig(**FAST))
        assert check["passed"], check
        assert check["mean_spearman"] < 0.5


def test_randomisation_check_fails_a_map_that_ignores_the_model(deep_run, spot_folder):
    view = deep_view(deep_run)
    images = spot_images(view, spot_folder, 3)

    def edges(view, image, target, cfg):  # depends on the image only
        return np.abs(np.diff(image[..., 0].astype(float), axis=0, append=0))

    check = randomisation_check(view, images, edges)
    assert not check["passed"] and check["mean_spearman"] > 0.99


def test_gradcam_of_the_trained_network_covers_the_spot(deep_run):
    view = deep_view(deep_run)
    rng = np.random.default_rng(7)
    inside = []
    for _ in range(6):
        img, (y, x) = spot_image(rng, True)
        image = view.from_model_input(prepare_image(img, view.spec))
        attribution = METHODS.get("gradcam").attribute(view, image, view.classes.index("spot"),
                                                       ExplainConfig())
        top = np.argsort(attribution.ravel())[::-1][: SPOT * SPOT]
        rows, cols = np.unravel_index(top, attribution.shape)
        near = (rows >= y - 2) & (rows < y + SPOT + 2) & (cols >= x - 2) & (cols < x + SPOT + 2)
        inside.append(np.mean(near))
    assert np.mean(inside) > 0.5


def test_gradcam_on_a_vision_transformer_uses_the_token_grid():
    import timm

    from imgcls.models.deep.networks import Preprocessed

    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2, img_size=SIZE)
    module = Preprocessed(net, (0.5,) * 3, (0.5,) * 3).eval()
    view = stub_view()
    view._logits = module
    view.clf.capabilities = frozenset({GRADIENTS})  # instance attribute: the stub now claims a network
    image = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    attribution = METHODS.get("gradcam").attribute(view, image, 0, ExplainConfig())
    assert attribution.shape == (SIZE, SIZE) and np.isfinite(attribution).all()
    assert len(net.blocks[-1].norm1._forward_hooks) == 0  # the hook is removed afterwards


def test_resolve_methods_by_capability():
    black_box, network = frozenset(), frozenset({GRADIENTS})
    assert [m.name for m in resolve_methods("auto", black_box)] == ["occlusion", "lime", "shap"]
    assert "gradcam" in [m.name for m in resolve_methods("auto", network)]
    with pytest.raises(ConfigError, match="needs a deep model"):
        resolve_methods("gradcam", black_box)
    with pytest.raises(ConfigError, match="Did you mean 'lime'"):
        resolve_methods("lim", network)


def test_explain_deep_run_writes_maps_gallery_and_faithfulness(deep_run, spot_folder, tmp_path):
    images = sorted((spot_folder / "spot").glob("*.png"))[:2]
    bad = write_text_as_png(tmp_path / "notes.png")
    before = {p: p.read_bytes() for p in images}
    result = explain(deep_run, [*map(str, images), str(bad)], out=tmp_path / "ex", progress=False,
                     settings=FAST, sanity=True)
    assert len(result.images) == 2 and result.skipped[0]["path"].endswith("notes.png")
    assert set(result.summary) == {"gradcam", "integrated_gradients", "occlusion", "lime", "shap", "random"}
    for entry in result.images:
        for name, record in entry["methods"].items():
            array = np.load(tmp_path / "ex" / record["npy"])
            assert array.shape == (SIZE, SIZE), name
            assert Image.open(tmp_path / "ex" / record["png"]).size == (SIZE, SIZE)
            assert 0 <= record["deletion_auc"] <= 1 and len(record["deletion"]) == FAST["curve_steps"] + 1
    data = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert data["summary"]["random"]["beats_random"] is None and data["sanity"][0]["passed"]
    html = (tmp_path / "ex" / "explain.html").read_text()
    assert "notes.png" in html and "Sanity check" in html and "gradcam.png" in html
    assert before == {p: p.read_bytes() for p in images}  # user files untouched


def test_explain_classical_run_adds_feature_group_importance(classical_run, spot_folder, tmp_path):
    images = [str(p) for p in sorted((spot_folder / "spot").glob("*.png"))[:2]]
    result = explain(classical_run, images, out=tmp_path / "ex", progress=False, settings=FAST)
    assert set(result.summary) == {"occlusion", "lime", "shap", "random"}
    assert sorted(r["group"] for r in result.importance) == ["hist", "hog"]
    assert all(np.isfinite(r["importance"]) for r in result.importance)
    assert "Feature groups" in (tmp_path / "ex" / "explain.html").read_text()


def test_explain_still_works_when_the_training_data_has_moved(spot_folder, tmp_path):
    import shutil

    data = shutil.copytree(spot_folder, tmp_path / "data")
    run = imgcls.train(str(data), model="logistic_regression", features="hist", out=tmp_path / "run",
                       progress=False, overrides=[f"model.image_size={SIZE}"]).path
    image = shutil.copy(data / "spot" / "00.png", tmp_path / "keep.png")
    shutil.rmtree(data)
    result = explain(run, [image], methods="occlusion", out=tmp_path / "ex", progress=False, settings=FAST)
    assert result.importance is None and len(result.images) == 1


def test_report_of_a_run_shows_explained_worst_errors(deep_run, spot_folder, tmp_path):
    import pandas as pd

    from imgcls.data import load_dataset, load_images
    from imgcls.evaluation.scoring import report_heatmaps
    from imgcls.report import write_report
    from imgcls.runs import Run

    table = pd.read_csv(deep_run / "predictions.csv")
    wrong = ((table["split"] == "test") & (table["label"] != table["prediction"])).sum()
    html = (deep_run / "report.html").read_text()
    assert html.count('class="explained"') == min(2, wrong)  # as trained (explain.report_errors=2)
    # the same report with every test prediction made wrong: exactly 2 heat maps, beside errors
    table.loc[table["split"] == "test", "label"] = table["prediction"].map({"spot": "plain", "plain": "spot"})
    opened, clf = Run.open(deep_run), load_model(deep_run)
    ds = load_dataset(str(spot_folder))
    loaded = load_images(ds, clf.image_spec, progress=False)
    heatmaps = report_heatmaps(clf, table, ds, loaded, 2)
    report = write_report(tmp_path / "report.html", opened.metrics, table, ds, loaded, opened.config,
                          heatmaps)
    html = report.read_text()
    assert html.count('class="explained"') == 2 and html.count("Grad-CAM: why") == 2


def test_error_overlays_are_images_for_both_schools(deep_run, classical_run):
    for run in (deep_run, classical_run):
        clf = load_model(run)
        image = np.zeros((SIZE, SIZE, 3), np.uint8)
        uris, method = error_overlays(clf, np.stack([image, image]), [str(clf.classes_[0])] * 2)
        assert len(uris) == 2 and all(u.startswith("data:image/png;base64,") for u in uris)
        assert method == ("Grad-CAM" if clf.supports(GRADIENTS) else "occlusion")


def test_error_overlays_explain_the_prepared_image_as_it_is(spot_folder, tmp_path):
    """A ROI model's loaded images are already cropped: cropping them again would explain
    another picture."""
    from imgcls.review.explaining.gallery import overlay_uri

    run = imgcls.train(str(spot_folder), model="logistic_regression", features="hist", out=tmp_path / "roi",
                       progress=False, overrides=[f"model.image_size={SIZE}", "model.roi=otsu"]).path
    clf = load_model(run)
    raw = np.full((SIZE, SIZE), 70, np.uint8)
    raw[8:20, 8:20] = 200
    raw[11:15, 11:15] = 255  # a dot inside the spot: a second Otsu crop would keep only the dot
    prepared = prepare_image(raw, clf.image_spec)
    image = ModelView.from_model_input(prepared)
    view = ModelView(clf, ClassifierPredictor(clf))
    twice = ModelView.from_model_input(prepare_image(prepared, clf.image_spec))
    assert not np.array_equal(twice, image)  # a second crop changes the picture
    cfg = ExplainConfig(occlusion_window=0.25)
    label = str(clf.predict(prepared[None])[0])
    occlusion = METHODS.get("occlusion").attribute(view, image, view.classes.index(label), cfg)
    expected = overlay_uri(image, occlusion)
    assert error_overlays(clf, prepared[None], [label]) == ([expected], "occlusion")


def test_bad_requests_are_clear_errors(deep_run, classical_run, tmp_path):
    with pytest.raises(ConfigError, match="not one of the model's classes"):
        explain(deep_run, [str(tmp_path)], target="nope", progress=False)
    with pytest.raises(ConfigError, match="needs a deep model"):
        explain(classical_run, methods="gradcam", errors=1, progress=False)
    with pytest.raises(ConfigError, match="explain.lime_samples"):
        explain(deep_run, errors=1, settings={"lime_samples": 1}, progress=False)
    bad = write_text_as_png(tmp_path / "only.png")
    with pytest.raises(DataError, match="only.png"):
        explain(deep_run, [str(bad)], progress=False, settings=FAST)
    with pytest.raises(ConfigError, match="randomisation check"):
        explain(classical_run, [str(bad)], sanity=True, progress=False)


def test_cli_explain_and_its_exit_codes(deep_run, spot_folder, tmp_path):
    from typer.testing import CliRunner

    from imgcls.cli import app

    image = str(sorted((spot_folder / "spot").glob("*.png"))[0])
    runner = CliRunner()
    ok = runner.invoke(app, ["explain", str(deep_run), image, "--method", "gradcam+lime", "--lime-samples",
                             "20", "--out", str(tmp_path / "cli"), "-q"])
    assert ok.exit_code == 0, ok.output
    assert "gradcam" in ok.output and (tmp_path / "cli" / "explain.html").is_file()
    bad = runner.invoke(app, ["explain", str(deep_run), image, "--method", "nope", "-q"])
    assert bad.exit_code == 1 and "Unknown explanation method 'nope'" in bad.output
    assert os.path.isdir(deep_run / "model")


def test_spearman_of_identical_and_unrelated_maps():
    rng = np.random.default_rng(0)
    a = rng.random((16, 16))
    assert spearman(a, a) == pytest.approx(1.0)
    assert abs(spearman(a, rng.random((16, 16)))) < 0.2
