import pytest

from imgcls.config import RunConfig, config_to_yaml, parse_overrides, resolve_config
from imgcls.core.errors import ConfigError


def test_defaults_then_overrides_are_typed():
    cfg = resolve_config(overrides=["split.test=0.2", "model.params.C=3", "data.source=digits"])
    assert cfg.split.test == 0.2
    assert cfg.model.params == {"C": 3}
    assert cfg.data.source == "digits"


def test_unknown_key_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="Did you mean 'split.test'"):
        resolve_config(overrides=["split.tset=0.2"])


def test_bad_value_names_the_field():
    with pytest.raises(ConfigError, match="'split.test'.*Got 1.5"):
        resolve_config(overrides=["split.test=1.5"])


def test_override_without_equals_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["split.test"])


def test_values_are_parsed_as_yaml_scalars_never_evaluated():
    parsed = parse_overrides(["a=null", "b=true", "c=__import__('os')", "d=1e-3"])
    assert parsed == {"a": None, "b": True, "c": "__import__('os')", "d": 1e-3}


def test_yaml_file_round_trip(tmp_path):
    cfg = resolve_config(overrides=["model.name=knn", "split.seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(cfg))
    again = resolve_config(path, ["split.val=0.1"])
    assert again.model.name == "knn" and again.split.seed == 7 and again.split.val == 0.1


def test_unknown_section_in_yaml_file_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("modle:\n  name: svm\n")
    with pytest.raises(ConfigError, match="Did you mean 'model'"):
        resolve_config(path)


def test_missing_config_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(tmp_path / "nope.yaml")


def test_extra_fields_forbidden_in_python_api():
    with pytest.raises(ValueError):
        RunConfig.model_validate({"model": {"nmae": "svm"}})


def test_train_section_is_typed_and_checked():
    cfg = resolve_config(overrides=["train.epochs=3", "train.lr=1e-4", "train.tta=hflip"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 1e-4 and cfg.train.tta == "hflip"
    assert cfg.model.mode == "finetune" and cfg.train.freeze == "auto"
    with pytest.raises(ConfigError, match="Did you mean 'train.epochs'"):
        resolve_config(overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match="train.imbalance"):
        resolve_config(overrides=["train.imbalance=oversample"])
    with pytest.raises(ConfigError, match="model.roi"):
        resolve_config(overrides=["model.roi=grabcut:sideways"])
    for bad in ("train.epochs=0", "train.epochs=-1", "train.lr=0"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            resolve_config(overrides=[bad])
