"""Keep the layout honest: light import, explicit public API, layers that hold, small modules."""

import pathlib
import re
import shutil
import subprocess
import sys

import imgcls
from layers import LAYERS, violations

SRC = pathlib.Path(imgcls.__file__).parent
ROOT = SRC.parent.parent


def test_import_is_light():
    code = ("import sys, imgcls; heavy = [m for m in ('torch', 'sklearn', 'fastapi', 'skimage', "
            "'matplotlib', 'pandas', 'cv2', 'numpy', 'pydantic') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_exists_and_internals_stay_out():
    for name in imgcls.__all__:
        assert getattr(imgcls, name) is not None, name
    assert not {"FeatureSet", "assign_splits", "MODELS", "Registry"} & set(imgcls.__all__)


def test_public_functions_are_the_library_calls():
    assert callable(imgcls.train) and callable(imgcls.evaluate) and callable(imgcls.predict)


def test_the_layers_hold():
    """Every import (inside functions too) goes down the layers, no import cycle anywhere, and
    imports inside functions only where they keep a heavy library out."""
    assert violations(SRC.parent) == []


def test_the_layer_check_catches_planted_violations(tmp_path):
    tree = tmp_path / "src"
    shutil.copytree(SRC, tree / "imgcls", ignore=shutil.ignore_patterns("__pycache__"))
    decode = tree / "imgcls" / "data" / "decode.py"
    decode.write_text(decode.read_text() + "\n\ndef _planted():\n    from ..training import train\n")
    roi = tree / "imgcls" / "data" / "roi.py"
    roi.write_text(roi.read_text() + "\nfrom .loading import load_images  # noqa\n")
    runs = tree / "imgcls" / "runs.py"
    runs.write_text(runs.read_text() + "\n\ndef _lazy():\n    from .core.log import info\n")
    found = violations(tree)
    assert any(v.startswith("upward import: imgcls.data.decode (layer data) imports imgcls.training")
               for v in found), found
    assert any(v.startswith("import cycle:") and "imgcls.data.roi" in v for v in found), found
    assert any("function-level import of imgcls.core.log in imgcls.runs" in v for v in found), found
    (tree / "imgcls" / "stray.py").write_text("X = 1\n")
    assert any(v.startswith("imgcls.stray is in no layer") for v in violations(tree))


def test_architecture_doc_lists_the_layers_the_test_enforces():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\s*\d+\.\s+`?([a-z_]+)`?", section, flags=re.MULTILINE)
    assert listed == [name for name, _ in LAYERS]


def test_modules_stay_small():
    for path in SRC.rglob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path
