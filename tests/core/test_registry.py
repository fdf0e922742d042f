import pytest

from imgcls.core.errors import ConfigError
from imgcls.core.registry import Registry


def test_register_get_and_names_keep_order():
    reg = Registry[int]("thing")
    reg.add("one", 1)
    reg.register("two")(2)
    assert reg.get("two") == 2
    assert reg.names() == ["one", "two"]
    assert "one" in reg and "three" not in reg


def test_duplicate_registration_is_an_error():
    reg = Registry[int]("thing")
    reg.add("one", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("one", 2)


def test_unknown_name_suggests_the_closest():
    reg = Registry[int]("model")
    reg.add("random_forest", 1)
    with pytest.raises(ConfigError, match="Did you mean 'random_forest'"):
        reg.get("random_forrest")
