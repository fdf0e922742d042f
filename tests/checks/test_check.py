"""`imgcls check` finds every defect under the right check and nothing on clean data."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import imgcls
from helpers import file_hashes, write_bomb_png, write_empty, write_text_as_png, write_truncated_jpeg
from imgcls.checks import check

EXPECTED = {  # file -> check that must flag it
    "odd/dup_a.png": "exact_duplicate", "odd/dup_b.png": "leakage", "odd/dup_c.png": "label_conflict",
    "odd/near.jpg": "near_duplicate", "odd/truncated.jpg": "truncated", "odd/empty.png": "empty",
    "odd/notes.png": "not_image", "odd/garbage.png": "unreadable", "odd/bomb.png": "too_many_pixels",
    "odd/jpeg_named.png": "extension_mismatch", "odd/tiny.png": "tiny", "odd/wide.png": "extreme_aspect",
    "odd/deep16.png": "16bit", "odd/cmyk.jpg": "cmyk", "odd/alpha.png": "alpha",
    "odd/anim.gif": "animation", "odd/rotated.jpg": "exif_rotation", "odd/grey.png": "grey_among_colour",
    "odd/dark.png": "dark", "odd/bright.png": "bright", "odd/flat.png": "low_information",
    "odd/blurred.png": "blurry", "odd/mislabelled.png": "label_issue",
}


@pytest.fixture
def defect_report(defect_manifest, tmp_path):
    return check(str(defect_manifest), out=tmp_path / "out", progress=False)


def test_every_defect_is_found_under_its_check(defect_report):
    found = {(f.path, f.check) for f in defect_report.issues}
    missing = [(p, c) for p, c in EXPECTED.items() if (p, c) not in found]
    assert not missing


def test_dataset_level_findings(defect_report):
    checks = {f.check for f in defect_report.issues if f.path == ""}
    assert {"class_imbalance", "class_too_small", "group_representation"} <= checks
    assert defect_report.summary["classes"]["counts"]["rare"] == 3


def test_severities(defect_report):
    severity = {(f.path, f.check): f.severity for f in defect_report.issues}
    assert severity[("odd/bomb.png", "too_many_pixels")] == "error"
    assert severity[("odd/cmyk.jpg", "cmyk")] == "info"
    assert severity[("odd/dup_b.png", "leakage")] == "warning"


def test_clean_dataset_has_no_errors_or_warnings(clean_folder, tmp_path):
    report = check(str(clean_folder), out=tmp_path / "out", progress=False)
    bad = [f for f in report.issues if f.severity in ("error", "warning")]
    assert bad == []
    assert report.exit_code("warning") == 0


def test_outputs_and_exit_codes(defect_report, tmp_path):
    payload = json.loads((tmp_path / "out" / "check.json").read_text())
    assert set(payload) == {"summary", "issues"}
    assert set(payload["issues"][0]) == {"path", "check", "severity", "detail", "hint"}
    html = (tmp_path / "out" / "check.html").read_text()
    assert "data:image/png;base64," in html and "too many pixels" in html
    assert defect_report.exit_code("error") == 1
    assert defect_report.exit_code(None) == 0


def test_user_files_are_never_changed(defect_manifest, tmp_path):
    before = file_hashes(defect_manifest.parent)
    check(str(defect_manifest), out=tmp_path / "o", write_manifest=tmp_path / "c.csv", progress=False)
    assert file_hashes(defect_manifest.parent) == before


def test_clean_manifest_trains(defect_manifest, tmp_path):
    clean = defect_manifest.parent / "clean.csv"
    check(str(defect_manifest), out=tmp_path / "o", write_manifest=clean, progress=False,
          overrides=["check.labels=false"])
    table = pd.read_csv(clean)
    kept = set(table["path"])
    assert not kept & {"odd/truncated.jpg", "odd/empty.png", "odd/notes.png", "odd/bomb.png"}
    assert not kept & {"odd/dup_a.png", "odd/dup_b.png", "odd/dup_c.png"}  # conflicting group
    assert "site" in table.columns and "split" in table.columns
    run = imgcls.train(str(clean), model="logistic_regression", features="hog",
                       out=tmp_path / "run", progress=False, overrides=["split.column=null"])
    assert (run.path / "report.html").is_file()
    assert pd.read_csv(run.path / "skipped.csv").empty


def test_second_check_reads_only_new_files(clean_folder, tmp_path, monkeypatch):
    from PIL import Image

    check(str(clean_folder), out=tmp_path / "a", progress=False, overrides=["check.labels=false"])
    Image.new("RGB", (64, 64), (10, 200, 30)).save(clean_folder / "dots" / "new.png")
    read = []
    import imgcls.checks.inspect as inspect_module

    original = inspect_module.inspect_row
    monkeypatch.setattr(inspect_module, "inspect_row",
                        lambda ds, i: (read.append(ds.paths[i]), original(ds, i))[1])
    check(str(clean_folder), out=tmp_path / "b", progress=False, overrides=["check.labels=false"])
    assert read == ["dots/new.png"]


def test_cli_fail_on(defect_manifest, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "imgcls", "check", str(defect_manifest),
                               "--out", str(tmp_path / "cli"), "-q", "--no-labels", *args],
                              capture_output=True, text=True, timeout=300)

    assert run().returncode == 0
    failing = run("--fail-on", "error")
    assert failing.returncode == 1 and "too_many_pixels" in failing.stderr
    assert run("--fail-on", "everything").returncode == 2


def test_default_output_folder_is_named_after_the_dataset(clean_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = check(str(clean_folder), progress=False, overrides=["check.labels=false"])
    assert report.out == tmp_path.joinpath("checks", "clean").relative_to(tmp_path)
    assert (tmp_path / "checks" / "clean" / "check.json").is_file()


def test_label_issues_from_a_given_run(clean_folder, tmp_path):
    from PIL import Image

    from helpers import colourise, stripes

    run = imgcls.train(str(clean_folder), model="logistic_regression", features="hog",
                       out=tmp_path / "run", progress=False)
    rng = __import__("numpy").random.default_rng(99)
    Image.fromarray(colourise(stripes(rng), rng)).save(clean_folder / "dots" / "odd_one.png")
    report = check(str(clean_folder), out=tmp_path / "o", run=run.path, progress=False)
    flagged = {f.path for f in report.by_check("label_issue")}
    assert "dots/odd_one.png" in flagged


def test_a_folder_of_hostile_files_is_checked_to_the_end(clean_folder, tmp_path):
    """A malformed TIFF, an empty file, text named .png, a truncated JPEG and a bomb among good
    images: the check finishes (exit 0), lists each with its reason, and changes nothing."""
    from helpers import write_tiff_without_second_frame_size

    hostile = {"stripes/scan.tif": write_tiff_without_second_frame_size,
               "stripes/empty.png": write_empty, "dots/notes.png": write_text_as_png,
               "dots/cut.jpg": write_truncated_jpeg, "dots/bomb.png": write_bomb_png}
    for rel, write in hostile.items():
        write(clean_folder / rel)
    before = file_hashes(clean_folder)
    out = subprocess.run([sys.executable, "-m", "imgcls", "check", str(clean_folder), "--out",
                          str(tmp_path / "out"), "-q", "--no-labels"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    issues = json.loads((tmp_path / "out" / "check.json").read_text())["issues"]
    errors = {f["path"]: f for f in issues if f["severity"] == "error"}
    assert set(hostile) <= set(errors)
    assert "Missing dimensions" in errors["stripes/scan.tif"]["detail"]
    assert file_hashes(clean_folder) == before
