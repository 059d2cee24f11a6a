"""The flat config: overrides, validation and budgets."""

import pytest

from harness.config import BUDGETS, Config, ConfigError, make_config, parse_overrides


def test_unknown_keys_are_rejected_with_the_valid_list():
    with pytest.raises(ConfigError, match="unknown config key 'lr'.*learning_rate"):
        Config().replace(lr=1.0)


def test_set_pairs_are_parsed_to_field_types():
    assert parse_overrides(["steps=3", "beta=4", "train=false", "sampler=none"]) == {
        "steps": 3, "beta": 4.0, "train": False, "sampler": "none"}


@pytest.mark.parametrize("pair, message", [
    ("steps", "key=value"), ("steps=three", "expects int"), ("train=maybe", "expects bool"),
    ("nope=1", "unknown config key"),
])
def test_bad_set_pairs_fail_with_one_line(pair, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides([pair])


@pytest.mark.parametrize("key, value", [("sampler", "mcts"), ("objective", "ppo"),
                                         ("action", "dance"), ("group_size", 0)])
def test_invalid_values_are_rejected(key, value):
    with pytest.raises(ConfigError):
        Config().replace(**{key: value})


def test_budget_presets_apply_before_explicit_overrides():
    cfg = make_config("smoke", steps=5)
    assert cfg.steps == 5 and cfg.group_size == BUDGETS["smoke"]["group_size"]
    assert make_config("paper") == Config()
    with pytest.raises(ConfigError, match="unknown budget"):
        make_config("huge")


def test_best_of_n_is_a_configuration_that_never_updates_the_policy():
    cfg = Config(sampler="none", objective="none")
    assert not cfg.updates_policy and cfg.rollouts_per_step == 64 * 8


def test_config_round_trips_through_a_dict():
    cfg = make_config("small", beta=3.0)
    assert Config.from_dict(cfg.to_dict()) == cfg
