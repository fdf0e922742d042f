"""The offline web export: a folder that classifies in the browser with onnxruntime-web.

The Python half checks the folder; the browser half opens it from disk in headless Chromium
and checks that it answers as ONNX Runtime does in Python, asks no server for anything, and
runs the camera (Chromium's fake device)."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import imgcls
from helpers import CHROMIUM, chromium_page, web_runtime_vendored
from imgcls.core.errors import ConfigError
from imgcls.deploy.exporting import export, list_formats
from imgcls.deploy.exporting.web_format import RUNTIME_ENV, runtime_dir
from imgcls.runs import EXPORT_JSON

needs_runtime = pytest.mark.skipif(not web_runtime_vendored(), reason="onnxruntime-web is not vendored "
                                   "(`make test` runs tools/vendor-web-runtime.sh; needs npm)")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Class folders of 32 px shapes, plus odd-sized copies that the page must resize."""
    from PIL import Image

    from imgcls.data.builtins import make_shapes, write_image_folder

    root = tmp_path_factory.mktemp("web-images")
    folder = write_image_folder(make_shapes(n_per_class=12, size=32, seed=0), root / "train")
    odd = root / "odd"
    odd.mkdir()
    sizes = [(57, 41), (20, 26), (96, 96), (33, 70)]
    for i, path in enumerate(sorted(folder.rglob("*.png"))[::6]):
        w, h = sizes[i % len(sizes)]
        Image.open(path).convert("RGB").resize((w, h), Image.BICUBIC).save(odd / f"{i:02d}-{path.stem}.png")
    return folder, sorted(odd.iterdir())


@pytest.fixture(scope="module")
def web_export(images, tmp_path_factory):
    if not web_runtime_vendored():
        pytest.skip("onnxruntime-web is not vendored")
    out = tmp_path_factory.mktemp("web") / "run"
    run = imgcls.train(str(images[0]), model="small_cnn", out=out, progress=False,
                       overrides=["train.epochs=2", "model.image_size=32", "cache=false"]).path
    return run, export(run, "web", progress=False)


@needs_runtime
def test_the_folder_holds_the_verified_graph_and_the_runtime(web_export):
    run, result = web_export
    assert "web" in [f.name for f in list_formats()]
    report = json.loads((result.path / EXPORT_JSON).read_text())
    assert report["format"] == "web" and report["parity"]["disagreements"] == 0
    web = result.path / "web"
    assert {"index.html", "imgcls-web.js", "model.js", "ort/ort.wasm.min.js", "ort/ort-runtime.js"} <= set(
        report["web"]["files"])
    assert report["files"]["web"]["bytes"] == sum(report["web"]["files"].values())
    text = (web / "model.js").read_text()
    model = json.loads(text[text.index("=") + 1:].strip().rstrip(";"))
    assert base64.b64decode(model["onnx"]) == (result.path / "model.onnx").read_bytes()
    assert model["meta"]["classes"] == ["circle", "square", "triangle"]
    page = (web / "index.html").read_text()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts and all((web / s).is_file() for s in scripts)  # nothing loaded from elsewhere
    assert "fetch(" not in page + (web / "imgcls-web.js").read_text()  # file:// refuses fetch


def test_a_missing_runtime_is_named_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(RUNTIME_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="ort-wasm-simd-threaded.wasm.*npm install onnxruntime-web"):
        runtime_dir()


def test_a_region_of_interest_is_refused_before_anything_is_written(images, tmp_path):
    run = imgcls.train(str(images[0]), model="small_cnn", out=tmp_path / "run", progress=False,
                       overrides=["train.epochs=1", "model.image_size=32", "cache=false",
                                  "model.roi=otsu"]).path
    with pytest.raises(ConfigError, match="region of interest"):
        export(run, "web", progress=False)
    assert not (run / "export" / "model.onnx").exists()


@needs_runtime
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_the_page_from_disk_answers_as_python_does_offline(web_export, images, tmp_path):
    from playwright.sync_api import expect

    from imgcls.data.decode import decode_image
    from imgcls.deploy.predictors import OnnxPredictor

    run, result = web_export
    files = sorted(images[0].rglob("*.png"))[::5] + images[1]
    onnx = OnnxPredictor(result.path / "model.onnx")
    expected = onnx.predict_images([decode_image(p) for p in files])  # decoded, prepared as predict does
    shot = Path(os.environ.get("IMGCLS_SCREENSHOT") or tmp_path / "web-export.png")
    requests: list[str] = []
    with chromium_page() as (page, errors):
        page.on("request", lambda req: requests.append(req.url))
        page.goto((result.path / "web" / "index.html").as_uri())
        expect(page.locator("body[data-ready='1']")).to_have_count(1, timeout=30_000)
        expect(page.locator("#model-info")).to_contain_text("3 classes")
        page.set_input_files("#files", [str(p) for p in files])
        expect(page.locator("#status")).to_contain_text("Done", timeout=30_000)
        cards = page.locator(".card")
        expect(cards).to_have_count(len(files))
        got = np.array([json.loads(cards.nth(i).get_attribute("data-probabilities"))
                        for i in range(len(files))])
        labels = [cards.nth(i).get_attribute("data-label") for i in range(len(files))]
        page.screenshot(path=str(shot), full_page=True)

        page.click("#tab-camera")
        page.click("#camera-toggle")
        page.wait_for_function("window.imgclsStats.frames >= 8", timeout=30_000)
        stats = page.evaluate("window.imgclsStats")
        expect(page.locator("#camera-bars .pred")).to_have_count(3)
        assert not errors, errors
    assert labels == [onnx.classes[i] for i in expected.argmax(1)]
    assert np.abs(got - expected).max() < 0.05  # the page's resize is the only step outside the graph
    assert stats["fps"] > 0 and len(stats["ms"]) >= 8
    assert requests and all(u.split(":", 1)[0] in ("file", "blob", "data") for u in requests), requests

