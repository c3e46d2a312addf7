"""Config loading: defaults, YAML presets, dotted overrides, strict keys and types."""
from pathlib import Path

import pytest

from searchkit.config import RunConfig, load_config, parse_override
from searchkit.errors import SearchkitError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_equal_the_default_preset():
    assert load_config(CONFIGS / "default.yaml") == RunConfig()


def test_every_preset_loads():
    for path in CONFIGS.glob("*.yaml"):
        assert isinstance(load_config(path), RunConfig)


def test_overrides_are_typed_and_nested():
    cfg = load_config(None, ["budget.archs=7", "metric.options.eps=0.5", "data.name=synthetic", "budget.seconds=2"])
    assert cfg.budget.archs == 7
    assert cfg.metric.options == {"eps": 0.5}
    assert cfg.data.name == "synthetic"
    assert cfg.budget.seconds == 2.0 and isinstance(cfg.budget.seconds, float)
    assert parse_override("space.build={C: 8, N: 1}") == {"space": {"build": {"C": 8, "N": 1}}}


def test_override_merges_into_a_preset_mapping():
    cfg = load_config(CONFIGS / "darts-cifar10.yaml", ["space.build.C=4"])
    assert cfg.space.build == {"C": 4, "layers": 5}  # the preset's other build options survive


@pytest.mark.parametrize("override,message", [
    ("budget.arch=5", "unknown config key 'budget.arch'; valid keys here: archs, seconds"),
    ("colour=red", "unknown config key 'colour'"),
    ("budget.archs=many", "config key 'budget.archs' must be an integer or null, got 'many'"),
    ("seed=true", "config key 'seed' must be an integer"),
    ("budget=3", "config section 'budget' must be a mapping"),
    ("noequals", "must look like key=value"),
    ("a..b=1", "empty key"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(SearchkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SearchkitError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("budget: [1, 2\n")
    with pytest.raises(SearchkitError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(SearchkitError, match="must hold a mapping"):
        load_config(listing)
