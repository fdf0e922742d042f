"""Experiment trackers (train.logger): TensorBoard event files and an MLflow store, written by
a tiny fine-tune (per-epoch curves and final scores) and by a classical run (final scores)."""

import pytest

import imgcls

TINY = ["model.image_size=16", "train.epochs=2", "train.batch_size=8", "split.val=0.2"]


def test_a_tiny_finetune_writes_tensorboard_curves_and_scores(shapes_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = imgcls.train(str(shapes_folder), model="small_cnn", out=tmp_path / "run", progress=False,
                       overrides=[*TINY, "train.logger=tensorboard"])
    events = EventAccumulator(str(run.path / "logs" / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val_accuracy", "train_loss_epoch", "final/test_accuracy"} <= tags
    assert len(events.Scalars("val_accuracy")) == 2  # one point per epoch
    final = events.Scalars("final/test_accuracy")[-1].value
    assert final == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)
    assert (run.path / "logs" / "version_0" / "metrics.csv").is_file()  # the CSV log stays


def test_mlflow_records_both_schools_in_one_store(shapes_folder, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # nothing may land in the working directory
    deep = imgcls.train(str(shapes_folder), model="small_cnn", out=tmp_path / "deep", progress=False,
                        overrides=[*TINY, "train.logger=mlflow"])
    classical = imgcls.train(str(shapes_folder), model="logistic_regression", features="hist",
                             out=tmp_path / "classical", progress=False, overrides=["train.logger=mlflow"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("shapes")
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(found) == {"deep", "classical"}
    for run in (deep, classical):
        record = found[run.path.name]
        assert record.data.metrics["test_accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
        assert record.data.params["model.name"] == run.config.model.name
        assert record.data.tags["imgcls.school"] == run.metrics["model"]["school"]
        names = {a.path for a in client.list_artifacts(record.info.run_id)}
        assert {"report.html", "metrics.json", "model_card.md"} <= names
    history = client.get_metric_history(found["deep"].info.run_id, "val_accuracy")
    assert len(history) == 2  # the fine-tune's epochs, in the same MLflow run as its final scores
    assert list(work.iterdir()) == [] and (tmp_path / "mlartifacts").is_dir()


def test_an_unknown_logger_is_a_config_error(shapes_folder, tmp_path):
    with pytest.raises(imgcls.ConfigError, match="train.logger"):
        imgcls.train(str(shapes_folder), model="svm", out=tmp_path / "r", overrides=["train.logger=wandb"],
                     progress=False)
    assert not (tmp_path / "r").exists()
