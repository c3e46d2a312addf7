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


def test_naming_another_strategy_or_metric_drops_the_files_options():
    """Issue 29: the README's NASI-on-DARTS command kept evolution's population and KCC's eps."""
    cfg = load_config(CONFIGS / "darts-cifar10.yaml", ["strategy.name=nasi", "metric.name=ntk_trace",
                                                       "strategy.options={steps: 30, mu: 2.0}"])
    assert (cfg.strategy.name, cfg.strategy.options) == ("nasi", {"steps": 30, "mu": 2.0})
    assert (cfg.metric.name, cfg.metric.options) == ("ntk_trace", {})
    assert cfg.space.build == {"C": 8, "layers": 5}  # the space was not renamed: its build stands


def test_options_given_on_the_command_line_survive_a_switch_in_any_order():
    cfg = load_config(CONFIGS / "darts-cifar10.yaml", ["strategy.options.steps=5", "strategy.name=nasi",
                                                       "metric.name=kcc:bn=eval"])
    assert cfg.strategy.options == {"steps": 5}
    assert cfg.metric.options == {"eps": 0.001}  # the same metric: a spec's options add to the file's


def test_the_same_name_keeps_the_files_options():
    cfg = load_config(CONFIGS / "darts-cifar10.yaml", ["strategy.name=evolution", "strategy.options.population=12"])
    assert cfg.strategy.options == {"population": 12, "sample_size": 3}


def test_colon_equals_replaces_a_mapping_instead_of_merging():
    cfg = load_config(CONFIGS / "darts-cifar10.yaml", ["strategy.options:={population: 6}", "space.build:={C: 4}"])
    assert cfg.strategy.options == {"population": 6}
    assert cfg.space.build == {"C": 4}
    assert load_config(CONFIGS / "darts-cifar10.yaml", ["metric.options:={}"]).metric.options == {}
    with pytest.raises(SearchkitError, match="empty key"):
        load_config(None, [":={}"])
