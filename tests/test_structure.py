"""Keep the layout honest: light import, explicit public API, no upward imports."""

import ast
import pathlib
import subprocess
import sys

import imgcls

SRC = pathlib.Path(imgcls.__file__).parent


def test_import_is_light():
    code = ("import sys, imgcls; heavy = [m for m in ('torch', 'sklearn', 'fastapi', 'skimage', "
            "'matplotlib', 'pandas', 'cv2') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_exists():
    for name in imgcls.__all__:
        assert getattr(imgcls, name) is not None, name


def test_public_functions_are_the_library_calls():
    assert callable(imgcls.train) and callable(imgcls.evaluate) and callable(imgcls.predict)


def test_lower_stages_never_import_cli_or_serve():
    for path in SRC.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.endswith(("cli", "serve")), f"{path} imports {node.module}"


def test_modules_stay_small():
    for path in SRC.rglob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path
