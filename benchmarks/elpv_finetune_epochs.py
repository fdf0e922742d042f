"""ELPV fine-tuning with test accuracy printed after every epoch (how the recipe was chosen).

Each run takes 12-14 minutes on 2 cores. The test split is looked at every epoch here, so
use it only to study a recipe, never to pick a model.

    python benchmarks/elpv_finetune_epochs.py elpv model.augment=crop+hflip+vflip train.epochs=8 \
        train.tta=hflip+vflip [train.head_init=random train.freeze_bn=false train.lr=1e-3 ...]
"""

from __future__ import annotations

import sys
import time

import numpy as np


def main() -> None:
    import torch
    from lightning.pytorch.callbacks import Callback
    from sklearn.metrics import f1_score

    import imgcls
    from imgcls.data import ImageSpec, load_dataset, load_images

    task, overrides = sys.argv[1], sys.argv[2:]
    ds = load_dataset(task)
    loaded = load_images(ds, ImageSpec(size=224), n_jobs=2, progress=False)
    test = np.flatnonzero(ds.table["split"].to_numpy()[loaded.rows] == "test")
    images = torch.from_numpy(np.ascontiguousarray(loaded.images[test]))
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    labels = ds.labels[loaded.rows[test]]
    classes = sorted(set(ds.labels))
    truth = np.array([classes.index(v) for v in labels])
    started = time.time()

    class TestEachEpoch(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            net = pl_module.net.eval()
            with torch.inference_mode():
                pred = torch.cat([net(images[s:s + 64]) for s in range(0, len(images), 64)]).argmax(1).numpy()
            pl_module.train()
            print(f"epoch {trainer.current_epoch}: test accuracy {(pred == truth).mean():.4f} "
                  f"macro-F1 {f1_score(truth, pred, average='macro'):.3f}  t={time.time() - started:.0f}s",
                  flush=True)

    run = imgcls.train(task, model="tf_efficientnet_lite0", out=f"benchmarks/out/{task}-epochs",
                       overwrite=True, overrides=overrides, progress=False, callbacks=[TestEachEpoch()])
    test_metrics = run.metrics["test"]
    print(f"final (with the run's TTA): accuracy {test_metrics['accuracy']:.4f} "
          f"macro-F1 {test_metrics['macro']['f1']:.4f}  wall {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
