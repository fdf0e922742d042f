"""ELPV: calibrated confidence and "unknown" detection, for a fine-tune and a classical run.

Each model is trained on ELPV (2 classes, the reference split) with 10 % of train held out
as the validation split that the temperature and the unknown threshold are fitted on
(``split.val=0.1``, stratified, carved from the reference train split; every other setting
as in benchmarks/elpv_deep.py and elpv_classical.py).
Then, on the same process and the same test images:

- calibration: test ECE and log-loss of the model's own probabilities (the baseline, as
  a plain classifier would give them) and after temperature scaling;
- unknown detection: the ELPV test cells against images of other kinds, for every unknown
  score the model can give (knn on its representation, msp = the plain classifier's
  confidence, the baseline; energy for networks): AUROC, FPR at 95 % TPR, and the share
  the model's own threshold (5 % false rejections on validation) calls unknown.

Other kinds of images, written to a temporary folder:
  digits    scikit-learn's 8x8 digits (upscaled by the model's own preparation), --n-other
  shapes    imgcls' synthetic circles / squares / triangles, --n-other
  photos    scikit-image's sample photographs, each whole and as four quarters
  textures  scikit-image's brick, grass and gravel textures, 16 tiles of 128 px each

    python benchmarks/elpv_unknown.py [--models finetune svm] [--n-other 300] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

FINETUNE = ["model.name=tf_efficientnet_lite0", "model.image_size=224", "model.augment=crop+hflip+vflip",
            "train.tta=hflip+vflip"]
SVM = ["model.name=svm"]
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text",
          "hubble_deep_field", "immunohistochemistry", "horse", "clock", "retina", "cat", "colorwheel",
          "logo", "checkerboard", "cell", "microaneurysms", "shepp_logan_phantom")
TEXTURES = ("brick", "grass", "gravel")


def _save(images: list[np.ndarray], folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.dtype != np.uint8:
            span = max(1e-9, float(np.ptp(img)))
            img = (255 * (img.astype(np.float64) - img.min()) / span).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        Image.fromarray(img).save(folder / f"{k:04d}.png")
    return folder


def other_images(root: Path, n: int) -> dict[str, Path]:
    import skimage.data
    from sklearn.datasets import load_digits

    from imgcls.data.builtins import make_shapes

    digits = (load_digits().images[:n] * 16).clip(0, 255).astype(np.uint8)
    shapes = make_shapes(n_per_class=max(1, n // 3), size=64, seed=1)
    photos = []
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        h, w = img.shape[:2]
        photos += [img] + [img[y:y + h // 2, x:x + w // 2] for y in (0, h // 2) for x in (0, w // 2)]
    textures = [getattr(skimage.data, name)()[y:y + 128, x:x + 128]
                for name in TEXTURES for y in range(0, 512, 128) for x in range(0, 512, 128)]
    return {"digits": _save(list(digits), root / "digits"),
            "shapes": _save(list(shapes.arrays), root / "shapes"),
            "photos": _save(photos, root / "photos"),
            "textures": _save(textures, root / "textures")}


def run_model(name: str, overrides: list[str], out: Path, others: dict[str, Path]) -> dict:
    import imgcls

    started = time.perf_counter()
    run = imgcls.train("elpv", out=out / name, overwrite=True, progress=False,
                       overrides=["cache=false", "split.val=0.1", *overrides])
    trained = time.perf_counter() - started
    test = run.metrics["test"]
    started = time.perf_counter()
    result = imgcls.evaluate(run.path, ood=[str(p) for p in others.values()], progress=False)
    names = {str(p): k for k, p in others.items()}
    cal = test.get("calibration", {})
    return {"overrides": overrides, "train_seconds": round(trained, 1),
            "evaluate_seconds": round(time.perf_counter() - started, 1),
            "accuracy": test["accuracy"], "accuracy_ci": test["intervals"]["accuracy"],
            "temperature": cal.get("temperature"), "ece_before": cal.get("ece_before"),
            "ece_after": test["ece"],
            "log_loss_before": cal.get("log_loss_before"), "log_loss_after": test["log_loss"],
            "unknown": run.metrics.get("unknown"), "test_unknown": test.get("unknown"),
            "tune_seconds": run.metrics["timings"].get("tune_seconds"),
            "ood": {names[k]: v for k, v in result.metrics["ood"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["finetune", "svm"], choices=["finetune", "svm"])
    parser.add_argument("--n-other", type=int, default=300, help="digits and shapes images")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="elpv-unknown-") as tmp:
        others = other_images(Path(tmp) / "other", args.n_other)
        print("other images: " + ", ".join(f"{k} {len(list(p.iterdir()))}" for k, p in others.items()))
        for name in args.models:
            results[name] = run_model(name, FINETUNE if name == "finetune" else SVM, Path(tmp), others)
            r = results[name]
            print(f"\n== {name}: test accuracy {r['accuracy']:.4f} {r['accuracy_ci']}, train "
                  f"{r['train_seconds']} s, tuning (temperature + threshold) {r['tune_seconds']} s")
            print(f"calibration: temperature {r['temperature']:.3f}; test ECE {r['ece_before']:.4f} -> "
                  f"{r['ece_after']:.4f} ({r['ece_after'] / r['ece_before']:.2f}x); log-loss "
                  f"{r['log_loss_before']:.4f} -> {r['log_loss_after']:.4f}")
            t = r["test_unknown"]
            print(f"threshold ({t['method']}): rejects {t['rejected']:.1%} of ELPV test cells; accuracy on "
                  f"the accepted {t['accuracy_accepted']:.4f}, on the rejected {t['accuracy_rejected']}")
            print(f"{'other':>9} {'score':>7} {'AUROC':>7} {'FPR@95':>7}   "
                  "threshold rejects other / ELPV test")
            for other, found in r["ood"].items():
                for method, m in found["methods"].items():
                    mine = found["threshold"]
                    rejects = (f"{mine['rejected_out']:.1%} / {mine['rejected_in']:.1%}"
                               if method == mine["method"] else "")
                    print(f"{other:>9} {method:>7} {m['auroc']:7.3f} {m['fpr_at_95_tpr']:7.3f}   {rejects}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
