"""The web row of the export table: a folder that classifies images and camera frames in the
browser, offline, with no server.

``RUN/export/web/`` holds ``index.html`` (the page), ``imgcls-web.js`` (preparation and
inference), ``model.js`` (the verified ONNX graph, base64, with its imgcls metadata) and
``ort/`` (onnxruntime-web's WebAssembly runtime, vendored from the npm registry when imgcls
was built, see ``tools/vendor-web-runtime.sh``). Everything loads through ``<script>`` tags,
never ``fetch``, so the page works opened from disk (``file://``) as well as from any static
host, and it asks no server for anything.

The graph is the ONNX export's, parity-checked here by ONNX Runtime; the page's resize (the
one step outside the graph) is checked against Python in headless Chromium by the test suite
and ``benchmarks/web_export.py``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

from ...core.errors import ConfigError
from ...runs import ONNX_FILES, Run
from ..predictors import OnnxPredictor
from .formats import ExportFormat
from .onnx_format import write_onnx_export

WEB_DIR = "web"
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "imgcls-web.js")
RUNTIME_ENV = "IMGCLS_WEB_RUNTIME"
WEB_SOURCES = Path(__file__).resolve().parent / "web"  # the page, its script, the vendored runtime


def runtime_dir() -> Path:
    """The folder holding onnxruntime-web's files: ``$IMGCLS_WEB_RUNTIME`` (for example
    ``node_modules/onnxruntime-web/dist``), else the copy vendored into the package."""
    chosen = os.environ.get(RUNTIME_ENV)
    folder = Path(chosen) if chosen else WEB_SOURCES / "vendor"
    missing = [f for f in RUNTIME_FILES if not (folder / f).is_file()]
    if missing:
        where = f"${RUNTIME_ENV}='{folder}'" if chosen else f"'{folder}'"
        raise ConfigError(
            f"The web export needs onnxruntime-web's WebAssembly runtime, and {where} lacks "
            f"{', '.join(missing)}. In a source checkout run `sh tools/vendor-web-runtime.sh "
            "src/imgcls/deploy/exporting/web/vendor` (needs npm, once); or `npm install "
            f"onnxruntime-web@1.31.1` and set {RUNTIME_ENV}=node_modules/onnxruntime-web/dist.")
    return folder


def runtime_version(folder: Path) -> str:
    stamp = folder / "VERSION"
    if stamp.is_file():
        return stamp.read_text(encoding="utf-8").split()[1]
    package = folder.parent / "package.json"  # a node_modules/onnxruntime-web/dist folder
    try:
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def write_web_export(clf, run: Run, out_dir: Path, check, calib, quantize: str | None) -> dict:
    roi = clf.image_spec.roi
    if roi not in (None, "none"):
        raise ConfigError(f"The web export cannot run this model's region of interest ('{roi}') in the "
                          "browser; export --format onnx and crop on the server, or train without --roi.")
    runtime = runtime_dir()  # before anything is written
    report = write_onnx_export(clf, run, out_dir, check, calib, quantize)
    precision = "int8" if quantize == "int8" else "fp32"
    model_file = out_dir / ONNX_FILES[precision]
    meta = OnnxPredictor(model_file).metadata
    staged = out_dir / f".{WEB_DIR}.staged"
    shutil.rmtree(staged, ignore_errors=True)
    (staged / "ort").mkdir(parents=True)
    try:
        version = runtime_version(runtime)
        for name in PAGE_FILES:
            shutil.copyfile(WEB_SOURCES / name, staged / name)
        shutil.copyfile(runtime / RUNTIME_FILES[0], staged / "ort" / RUNTIME_FILES[0])
        _script(staged / "ort" / "ort-runtime.js", "IMGCLS_ORT", {
            "version": version, "mjs": (runtime / RUNTIME_FILES[1]).read_text(encoding="utf-8"),
            "wasm": base64.b64encode((runtime / RUNTIME_FILES[2]).read_bytes()).decode("ascii")})
        _script(staged / "model.js", "IMGCLS_MODEL", {
            "meta": meta, "onnx": base64.b64encode(model_file.read_bytes()).decode("ascii")})
        _replace_dir(staged, out_dir / WEB_DIR)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    files = sorted(p for p in (out_dir / WEB_DIR).rglob("*") if p.is_file())
    report["format"] = "web"
    report["versions"]["onnxruntime-web"] = version
    report["web"] = {"model": ONNX_FILES[precision], "precision": precision,
                     "runtime": f"onnxruntime-web {version}",
                     "backend": "wasm (single thread unless the page is cross-origin isolated)",
                     "open": f"{WEB_DIR}/index.html",
                     "files": {str(p.relative_to(out_dir / WEB_DIR)): p.stat().st_size for p in files}}
    report["files"][WEB_DIR] = {"precision": precision, "bytes": sum(p.stat().st_size for p in files),
                                "runtime": "browser"}
    return report


def _script(path: Path, name: str, value: dict) -> None:
    """A classic script that sets ``window.NAME``: the one way a page opened from disk can
    read a file beside it (``fetch`` of a file:// URL is refused by browsers)."""
    path.write_text(f"window.{name} = {json.dumps(value, separators=(',', ':'))};\n", encoding="utf-8")


def _replace_dir(staged: Path, target: Path) -> None:
    """Swap the staged folder in: the old one is moved aside first, removed only after."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)


WEB_FORMAT = ExportFormat(
    "web", "/", "A folder (web/index.html) that classifies images and the camera in the browser with "
    "onnxruntime-web (WebAssembly), offline, from disk or any static host; the ONNX graph inside is "
    "parity-checked here, the page in headless Chromium by the tests", ("int8",), write_web_export)
