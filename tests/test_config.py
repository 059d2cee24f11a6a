"""The flat config: overrides, validation and budgets."""

import pytest

from harness.base.config import (
    BUDGETS,
    Config,
    ConfigError,
    make_config,
    parse_overrides,
)


def test_unknown_keys_are_rejected_with_the_valid_list():
    with pytest.raises(ConfigError, match="unknown config key 'lr'.*learning_rate"):
        Config().replace(lr=1.0)


def test_set_pairs_are_parsed_to_field_types():
    assert parse_overrides(["steps=3", "beta=4", "train=false", "reuse=none"]) == {
        "steps": 3, "beta": 4.0, "train": False, "reuse": "none"}


@pytest.mark.parametrize("pair, message", [
    ("steps", "key=value"), ("steps=three", "expects int"), ("train=maybe", "expects bool"),
    ("nope=1", "unknown config key"),
])
def test_bad_set_pairs_fail_with_one_line(pair, message):
    with pytest.raises(ConfigError, match=message):
        parse_overrides([pair])


@pytest.mark.parametrize("key, value", [("reuse", "mcts"), ("objective", "ppo"),
                                         ("action", "dance"), ("group_size", 0),
                                         ("reasoning", "maybe"), ("max_grad_norm", -1.0),
                                         ("kl_coef", -0.1), ("adam_beta2", 1.0),
                                         ("adam_eps", 0.0), ("train_micro_batch", 0),
                                         ("sample_batch_size", 0), ("atcoder_cases", 0)])
def test_invalid_values_are_rejected(key, value):
    with pytest.raises(ConfigError):
        Config().replace(**{key: value})


def test_budget_presets_apply_before_explicit_overrides():
    cfg = make_config("smoke", steps=5)
    assert cfg.steps == 5 and cfg.group_size == BUDGETS["smoke"].settings["group_size"]
    assert make_config("paper") == Config()
    with pytest.raises(ConfigError, match="unknown budget"):
        make_config("huge")


def test_best_of_n_is_a_configuration_that_never_updates_the_policy():
    cfg = Config(reuse="none", objective="none")
    assert not cfg.updates_policy and cfg.rollouts_per_step == 64 * 8


def test_config_round_trips_through_a_dict():
    cfg = make_config("small", beta=3.0)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_every_training_and_sampling_knob_is_settable_with_set():
    assert parse_overrides(["adam_beta1=0.8", "adam_beta2=0.99", "adam_eps=1e-6",
                            "max_grad_norm=1", "train_micro_batch=2", "kl_coef=0.1",
                            "reasoning=off", "sample_batch_size=16", "atcoder_cases=20"]) == {
        "adam_beta1": 0.8, "adam_beta2": 0.99, "adam_eps": 1e-6, "max_grad_norm": 1.0,
        "train_micro_batch": 2, "kl_coef": 0.1, "reasoning": "off", "sample_batch_size": 16,
        "atcoder_cases": 20}


def test_the_paper_budget_is_the_released_configuration():
    cfg = make_config("paper")
    assert (cfg.steps, cfg.groups_per_step, cfg.group_size, cfg.rollouts_per_step) == \
        (50, 64, 8, 512)
    assert (cfg.learning_rate, cfg.lora_rank) == (4e-5, 32)
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps) == (0.9, 0.95, 1e-8)
    assert (cfg.max_grad_norm, cfg.kl_coef, cfg.temperature) == (0.0, 0.0, 1.0)
    assert (cfg.max_new_tokens, cfg.eval_timeout_s, cfg.atcoder_cases, cfg.reasoning) == \
        (26000, 1000.0, 150, "auto")


@pytest.mark.parametrize("budget", ["smoke", "small", "medium"])
def test_scaled_down_budgets_keep_cpu_sized_evaluation_but_do_not_clip(budget):
    cfg = make_config(budget)
    assert (cfg.eval_timeout_s, cfg.atcoder_cases) == (10.0, 8)
    assert cfg.max_new_tokens <= 512 and cfg.max_grad_norm == 0.0 and cfg.kl_coef == 0.0


def test_only_envs_that_take_cases_get_atcoder_cases():
    from harness.env import env_kwargs, make_env

    cfg = Config(env="ahc039", atcoder_cases=5, eval_timeout_s=3.0)
    assert env_kwargs(cfg)["n_cases"] == 5 and make_env(cfg.env, **env_kwargs(cfg)).n_cases == 5
    assert "n_cases" not in env_kwargs(Config(env="erdos"))
    assert env_kwargs(Config(env="erdos", eval_timeout_s=3.0))["eval_timeout_s"] == 3.0


def test_the_old_name_of_reuse_is_still_accepted():
    """Plans, config.json files and --set written before issue 20 call it `sampler`."""
    assert Config().replace(sampler="none").reuse == "none"
    assert Config.from_dict({"sampler": "eps_greedy"}).reuse == "eps_greedy"
    assert parse_overrides(["sampler=greedy"]) == {"reuse": "greedy"}
    with pytest.raises(ConfigError, match="reuse must be one of"):
        Config().replace(sampler="mcts")
