"""DICOM files generated with pydicom: rescale, windows, MONOCHROME1, frames, broken files,
header columns with pseudonymised identifiers, patient-grouped splits, check and a whole run."""

import numpy as np
import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")

from helpers import write_dicom  # noqa: E402
from imgcls.config import SplitConfig  # noqa: E402
from imgcls.core.errors import ImageDecodeError  # noqa: E402
from imgcls.data import assign_splits, load_dataset  # noqa: E402
from imgcls.data.decode import decode_image, decode_with_info  # noqa: E402
from imgcls.data.dicom import apply_window, pseudonym  # noqa: E402


def ramp(h=16, w=64, top=4095):
    return np.tile(np.linspace(0, top, w).round().astype(np.uint16), (h, 1))


def expected_window(stored, slope, intercept, centre, width):
    """The DICOM linear window written out by hand, on the rescaled values."""
    hu = stored.astype(float) * slope + intercept
    low, high = centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2
    out = np.where(hu <= low, 0.0, np.where(hu > high, 1.0, ((hu - (centre - 0.5)) / (width - 1) + 0.5)))
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def test_12_bit_rescaled_and_windowed_from_the_file(tmp_path):
    stored = ramp(h=2, w=4096)
    path = write_dicom(tmp_path / "ct.dcm", stored, slope=0.5, intercept=-1024, window=(40, 400))
    arr, info = decode_with_info(path)
    assert info["format"] == "DICOM" and info["mode"] == "MONOCHROME2 12-bit"
    assert arr.dtype == np.uint8 and arr.shape == stored.shape
    np.testing.assert_allclose(arr.astype(int), expected_window(stored, 0.5, -1024, 40, 400), atol=1)
    # the window keeps contrast a plain 16-to-8-bit scaling loses: its 400 HU span 256 levels
    inside = (arr[0] > 0) & (arr[0] < 255)
    assert len(np.unique(arr[0][inside])) > 200
    assert len(np.unique((stored[0][inside] / 257).round())) <= 4


def test_user_windows_presets_minmax_and_three_channels(tmp_path):
    stored = ramp()
    path = write_dicom(tmp_path / "ct.dcm", stored, slope=1.0, intercept=-1024, window=(40, 400))
    lung = decode_image(path, window="lung")  # preset: centre -600, width 1500
    np.testing.assert_allclose(lung.astype(int), expected_window(stored, 1, -1024, -600, 1500), atol=1)
    given = decode_image(path, window="-600:1500")
    np.testing.assert_array_equal(given, lung)
    minmax = decode_image(path, window="minmax")
    assert minmax.min() == 0 and minmax.max() == 255
    rgb = decode_image(path, window="brain+subdural+bone")
    assert rgb.shape == (*stored.shape, 3)
    for channel, preset in enumerate(("brain", "subdural", "bone")):
        np.testing.assert_array_equal(rgb[..., channel], decode_image(path, window=preset))


def test_monochrome1_is_inverted_so_dense_is_bright(tmp_path):
    stored = ramp()
    mono2 = decode_image(write_dicom(tmp_path / "m2.dcm", stored, window=(2048, 4096)))
    mono1 = decode_image(write_dicom(tmp_path / "m1.dcm", stored, window=(2048, 4096),
                                     photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono1.astype(int), 255 - mono2.astype(int), atol=1)
    assert mono1[0, 0] == 255 and mono1[0, -1] == 0


def test_file_without_window_uses_its_own_range(tmp_path):
    stored = ramp(top=1000)
    arr = decode_image(write_dicom(tmp_path / "x.dcm", stored))
    assert arr[0, 0] == 0 and arr[0, -1] == 255


def test_multi_frame_gives_the_middle_frame_or_the_one_asked(tmp_path):
    frames = np.stack([np.full((8, 8), v, np.uint16) for v in (100, 2000, 4000)])
    path = write_dicom(tmp_path / "cine.dcm", frames, window=(2048, 4096))
    arr, info = decode_with_info(path)
    assert info["frames"] == 3 and int(arr.mean()) == 125  # frame 1: 2000 of 0..4096
    assert int(decode_image(path, frame=2).mean()) == 249
    with pytest.raises(ImageDecodeError, match="frame 5 asked for, but the file has 3"):
        decode_image(path, frame=5)


def test_broken_and_pixel_less_files_are_reasons_not_crashes(tmp_path):
    good = write_dicom(tmp_path / "good.dcm", ramp())
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(good.read_bytes()[:400])
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(cut)
    assert caught.value.kind == "truncated" and "ends before its pixel data" in caught.value.reason
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 300)
    with pytest.raises(ImageDecodeError, match="DICOM"):
        decode_image(garbage)
    report = write_dicom(tmp_path / "report.dcm", ramp(), pixels=False, modality="SR")
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(report)
    assert caught.value.kind == "no_pixel_data" and "SR" in caught.value.reason
    named_png = tmp_path / "scan.png"
    named_png.write_bytes(good.read_bytes())
    with pytest.raises(ImageDecodeError, match="rename it .dcm"):
        decode_image(named_png)
    no_suffix = tmp_path / "IM0001"  # scanners often write no extension: the marker decides
    no_suffix.write_bytes(good.read_bytes())
    assert decode_image(no_suffix).shape == (16, 64)


def test_window_is_the_dicom_linear_function():
    values = np.array([-1000.0, -160.5, 0.0, 40.0, 239.5, 3000.0])
    out = apply_window(values, 40, 400)
    assert out[0] == 0 and out[-1] == 1 and abs(out[3] - 0.5) < 0.01
    assert np.all(np.diff(out) >= 0)


def scan_folder(root, patients=8, per_patient=3, size=24):
    """Class folders of CT-like slices: 'lesion' has a disk at +65 HU on 30 HU tissue, a
    contrast only a soft-tissue window shows; one patient's slices share a class."""
    rng = np.random.default_rng(0)
    for p in range(patients):
        label = "lesion" if p % 2 else "clear"
        (root / label).mkdir(parents=True, exist_ok=True)
        for s in range(per_patient):
            hu = np.full((size, size), 30.0) + rng.normal(0, 3, (size, size))
            hu[:2], hu[-2:] = 1200, -1000  # bone and air widen the range a minmax window sees
            if label == "lesion":
                yy, xx = np.mgrid[:size, :size]
                cy, cx = size // 2 + rng.integers(-2, 3, 2)
                hu[(yy - cy) ** 2 + (xx - cx) ** 2 < 20] = 65
            write_dicom(root / label / f"p{p}-s{s}.dcm", (hu + 1024).clip(0, 4095), intercept=-1024,
                        patient=f"MRN-{1000 + p}", manufacturer="Acme" if p < 4 else "Zenith",
                        spacing=0.7 if p != 7 else 1.4)
    return root


def test_header_columns_pseudonymise_identifiers_and_group_splits(tmp_path):
    root = scan_folder(tmp_path / "scans")
    ds = load_dataset(str(root))
    for column in ("Modality", "Manufacturer", "BodyPartExamined", "PixelSpacing", "PatientID"):
        assert column in ds.metadata_columns
    ids = ds.table["PatientID"]
    assert ids.str.startswith("anon-").all() and ids.nunique() == 8
    assert not ids.str.contains("MRN").any()
    assert list(load_dataset(str(root)).table["PatientID"]) == list(ids)  # stable across loads
    salted = load_dataset(str(root), pseudonym_salt="s3cret").table["PatientID"]
    assert salted.nunique() == 8 and not set(salted) & set(ids)
    assert salted.iloc[0] == pseudonym("MRN-1000", "s3cret")  # clear/p0-s0.dcm, the first row
    kept = load_dataset(str(root), identifiers="keep").table["PatientID"]
    assert set(kept) == {f"MRN-{1000 + p}" for p in range(8)}
    split = assign_splits(ds, SplitConfig(test=0.25, group_by="PatientID")).table
    per_patient = split.groupby("PatientID")["split"].nunique()
    assert (per_patient == 1).all() and set(split["split"]) >= {"train", "test"}


def test_check_flags_broken_files_modalities_and_spacing(tmp_path):
    root = scan_folder(tmp_path / "scans")
    (root / "clear" / "cut.dcm").write_bytes((root / "clear" / "p0-s0.dcm").read_bytes()[:300])
    write_dicom(root / "clear" / "mr.dcm", ramp(24, 24), modality="MR", patient="MRN-1000")
    write_dicom(root / "lesion" / "report.dcm", ramp(), pixels=False, modality="SR", patient="MRN-1001")
    import imgcls

    report = imgcls.check(str(root), out=tmp_path / "check", progress=False, overrides=["check.labels=false"])
    errors = {f.path: f.check for f in report.issues if f.severity == "error"}
    assert errors == {"clear/cut.dcm": "truncated", "lesion/report.dcm": "no_pixel_data"}
    assert report.by_check("mixed_modalities") and "MR: 1" in report.by_check("mixed_modalities")[0].detail
    spaced = {f.path for f in report.by_check("inconsistent_spacing")}
    assert spaced == {f"lesion/p7-s{s}.dcm" for s in range(3)}
    assert report.summary["dicom"]["modalities"]["CT"] == 24
    written = "".join((tmp_path / "check" / name).read_text() for name in ("check.json", "check.html"))
    assert "MRN-" not in written and "Doe^Jane" not in written  # identifiers never reach a report


def test_a_run_on_dicom_keeps_its_window_for_predict_and_audit(tmp_path):
    import imgcls

    root = scan_folder(tmp_path / "scans", patients=12)
    soft = decode_image(root / "lesion" / "p1-s0.dcm", window="soft_tissue")[2:-2]
    plain = decode_image(root / "lesion" / "p1-s0.dcm", window="minmax")[2:-2]
    assert np.ptp(soft) > 4 * np.ptp(plain)  # the lesion's 35 HU: visible only in the window
    run = imgcls.train(str(root), model="logistic_regression", features="pixels", out=tmp_path / "run",
                       progress=False, overrides=["model.window=soft_tissue", "model.image_size=24",
                                                  "split.group_by=PatientID", "cache=false"])
    assert run.model.image_spec.window == "soft_tissue"
    assert run.metrics["test"]["accuracy"] >= 0.8
    table = imgcls.predict(tmp_path / "run", [str(root / "lesion")], progress=False)
    assert (table["prediction"] == "lesion").mean() >= 0.8
    result = imgcls.audit(tmp_path / "run", group_by="Manufacturer", n_boot=0, min_group_size=1,
                          progress=False)
    assert set(result.report["metrics"]["accuracy"]["by_group"]) == {"Acme", "Zenith"}
    assert "window: soft_tissue" in (tmp_path / "run" / "config.yaml").read_text()
    assert "MRN-" not in pd.read_csv(tmp_path / "run" / "predictions.csv").to_string()
    served = serve_predictions(tmp_path / "run", [root / "lesion" / "p1-s0.dcm",
                                                  write_dicom(tmp_path / "sr.dcm", ramp(), pixels=False)])
    assert served["model"]["window"] == "soft_tissue"
    first, second = served["results"]
    expected = table.loc[table["path"].str.endswith("p1-s0.dcm"), "prediction"].iloc[0]
    assert first["error"] is None and first["predictions"][0]["label"] == expected
    assert second["error"]["code"] == "no_pixel_data"


def serve_predictions(run, files):
    """What the server answers for ``files`` uploaded under names without an image extension."""
    from fastapi.testclient import TestClient

    from helpers import wait_ready
    from imgcls.config import ServeConfig
    from imgcls.serve import create_app

    app = create_app(ServeConfig(models=[f"scans={run}"], api_key=None))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        uploads = [("files", (f"upload{n}", f.read_bytes(), "application/dicom"))
                   for n, f in enumerate(files)]
        response = client.post("/v1/predict", files=uploads)
        assert response.status_code == 200, response.text
        info = client.get("/v1/models/scans").json()
    return {**response.json(), "model": info}


def test_a_scanner_that_gives_the_class_away_is_flagged():
    from imgcls.checks.medical import dicom_findings

    table = pd.DataFrame({"path": [f"{i}.dcm" for i in range(6)], "label": ["a", "a", "a", "b", "b", "b"],
                          "Modality": "CT", "Manufacturer": ["Acme"] * 3 + ["Zenith"] * 3,
                          "PixelSpacing": 0.7})
    _, found = dicom_findings(table)
    assert [f.check for f in found] == ["header_predicts_label"] and "Acme -> a" in found[0].detail
    table.loc[0, "Manufacturer"] = "Zenith"  # one 'a' from the other scanner: no longer a giveaway
    assert dicom_findings(table)[1] == []


def test_a_manifest_of_files_without_extension_gets_the_header_columns(tmp_path):
    for n in range(4):
        write_dicom(tmp_path / "export" / f"IM{n:04d}", ramp(), patient=f"MRN-{n}", modality="MR")
    pd.DataFrame({"path": [f"export/IM{n:04d}" for n in range(4)], "label": ["a", "b"] * 2}).to_csv(
        tmp_path / "scans.csv", index=False)
    ds = load_dataset(str(tmp_path / "scans.csv"))
    assert ds.table["Modality"].tolist() == ["MR"] * 4
    assert ds.table["PatientID"].str.startswith("anon-").all()
    assert ds.read(0).shape == (16, 64)
