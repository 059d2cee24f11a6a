"""Plans: the offline grammar, the schema's checks, budgets, and the Claude planner against a
local Messages API stand-in (tests/messages_server.py; the SDK itself is not mocked)."""

import math

import pytest

from harness.base.config import BUDGETS, Config
from harness.env import ENVS
from harness.lab.offline_planner import offline_plan
from harness.lab.plan import PlanError, validate_plan
from harness.lab.planner import make_plan


def plan(request, budget="small", seeds=None):
    return offline_plan(request, budget, "smollm2", seeds, "cpu")


def arms(p):
    return {a.name: a.overrides for a in p.arms}


def test_tuning_the_entropic_temperature_tunes_the_kl_target_and_says_why():
    p = plan("tune entropic temperature on erdos")
    assert [list(o) for o in arms(p).values()] == [["kl_target"]] * 3
    assert [a.overrides["kl_target"] for a in p.arms][1] == pytest.approx(math.log(2))
    assert p.arm(p.baseline).overrides["kl_target"] == pytest.approx(math.log(2))
    assert "KL" in p.hypothesis and "adaptive" in p.hypothesis


@pytest.mark.parametrize("request_text, key", [
    ("tune beta on toy", "kl_target"), ("Tune the KL target on toy", "kl_target"),
    ("tune PUCT c on toy", "c_puct"), ("tune exploration on toy", "c_puct"),
    ("tune group size on toy", "group_size"), ("tune learning rate on toy", "learning_rate"),
    ("tune LoRA rank on toy", "lora_rank"), ("tune constant beta on toy", "beta"),
    ("tune c_puct on toy", "c_puct"), ("tune reuse on toy", "reuse"),
])
def test_tune_synonyms_map_to_config_fields_with_the_default_as_baseline(request_text, key):
    p = plan(request_text)
    assert all(key in o for o in arms(p).values()) and len(p.arms) >= 2
    values = [a.overrides[key] for a in p.arms]
    assert len(set(map(str, values))) == len(values)
    default = p.config(p.baseline, 0)
    assert getattr(default, key) == p.arm(p.baseline).overrides[key]


def test_group_size_arms_keep_rollouts_per_step_equal():
    p = plan("tune group size on toy")
    assert {p.config(a.name, 0).rollouts_per_step for a in p.arms} == {12}


@pytest.mark.parametrize("component, expected", [
    ("entropic", ["full", "constant_beta", "no_entropic"]),
    ("reuse", ["full", "eps_greedy", "no_reuse"]),
    ("training", ["full", "no_training", "best_of_n"]),
])
def test_ablations_are_the_papers_arms_as_configs(component, expected):
    p = plan(f"ablate {component} on erdos")
    assert [a.name for a in p.arms] == expected and p.baseline == "full"
    full = p.config("full", 0)
    assert (full.reuse, full.objective, full.train) == ("puct", "entropic_adaptive", True)
    if "best_of_n" in expected:
        bon = p.config("best_of_n", 0)
        assert (bon.reuse, bon.objective, bon.updates_policy) == ("none", "none", False)


def test_compare_accepts_arm_names_synonyms_and_settings():
    p = plan("compare no reuse vs Best-of-N vs c_puct=2 on toy")
    assert arms(p) == {"no_reuse": {"reuse": "none"},
                       "best_of_n": {"reuse": "none", "objective": "none"},
                       "c_puct=2.0": {"c_puct": 2.0}}
    assert p.baseline == "no_reuse"


def test_run_plans_the_full_method_alone_and_planning_is_deterministic():
    assert plan("run toy") == plan("run toy")
    assert [a.name for a in plan("Run erdős.").arms] == ["full"]


@pytest.mark.parametrize("request_text, message", [
    ("make it better", "cannot plan 'make it better': I understand 'tune <knob> on <env>'"),
    ("tune beta on nowhere", "unknown env 'nowhere'"),
    ("tune happiness on toy", "cannot tune 'happiness'; knobs: entropic temperature"),
    ("ablate vibes on toy", "components: entropic, reuse, training, all"),
    ("compare full vs warp drive on toy", "unknown arm 'warp drive'"),
])
def test_unplannable_requests_fail_with_one_line(request_text, message):
    with pytest.raises(PlanError) as err:
        plan(request_text)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "cannot plan" in message or "unknown env" in message:
        assert all(name in str(err.value) for name in ENVS)


def test_budgets_bound_the_whole_experiment():
    small = plan("tune entropic temperature on erdos")
    assert small.rollouts_total <= BUDGETS["small"].max_rollouts == 288
    assert small.settings["steps"] == 8  # the main job: 3 arms x 8 steps (issue 19)
    assert plan("tune reuse on toy").settings["steps"] == 6  # 4 arms: fewer steps each
    with pytest.raises(PlanError, match="7 arms exceed the small budget's 4"):
        plan("ablate all on erdos")
    with pytest.raises(PlanError, match="do not fit"):
        plan("ablate reuse on toy", seeds=8)
    medium = plan("ablate all on erdos", budget="medium")
    assert len(medium.arms) == 7 and medium.seeds == (0, 1, 2)


def test_a_plan_round_trips_through_its_json():
    p = plan("ablate entropic on toy")
    assert validate_plan(p.to_dict()) == p


@pytest.mark.parametrize("change, message", [
    (lambda d: d["arms"][0]["overrides"].update(bogus=1), "unknown config key 'bogus'"),
    (lambda d: d["arms"][0]["overrides"].update(c_puct="big"), "c_puct must be float"),
    (lambda d: d["arms"][0]["overrides"].update(steps=99), "set per experiment"),
    (lambda d: d["arms"][0]["overrides"].update(reuse="magic"), "reuse must be one of"),
    (lambda d: d["arms"][0].update(name="a b/c"), "arm name"),
    (lambda d: d.update(baseline="nope"), "baseline 'nope' is not one of the arms"),
    (lambda d: d.update(env="mars"), "unknown env 'mars'"),
    (lambda d: d.update(seeds=[]), "seeds"),
    (lambda d: d.pop("hypothesis"), "plan lacks hypothesis"),
])
def test_validation_rejects_broken_plans_with_one_line(change, message):
    data = plan("ablate reuse on toy").to_dict()
    change(data)
    with pytest.raises(PlanError, match=message):
        validate_plan(data)


# --- the Claude planner, against tests/messages_server.py ---
GOOD = {"goal": "Does more exploration help?", "hypothesis": "c_puct=2 finds more.",
        "env": "toy", "baseline": "full",
        "arms": [{"name": "full", "overrides": {}, "why": "defaults"},
                 {"name": "c2", "overrides": {"c_puct": 2}, "why": "more exploration"}]}


def claude_plan(request="does exploration help on toy?"):
    return make_plan(request, "smoke", "tiny", None, "cpu", max_retries=0)


def test_claude_plan_is_validated_and_recorded(claude):
    claude.reply_tool_use("submit_plan", GOOD)
    p = claude_plan()
    assert p.planner == "claude (claude-test-model)"
    assert arms(p) == {"full": {}, "c2": {"c_puct": 2.0}} and p.budget == "smoke"
    [sent] = claude.requests
    assert sent["model"] == "claude-test-model" and sent["tools"][0]["name"] == "submit_plan"
    assert sent["tool_choice"] == {"type": "tool", "name": "submit_plan"}
    assert "does exploration help on toy?" in sent["messages"][0]["content"]


def test_an_invalid_json_reply_is_retried_once(claude):
    claude.reply_text("Sure! Here is the plan: {arms: [")
    claude.reply_tool_use("submit_plan", GOOD)
    p = claude_plan()
    assert p.planner.startswith("claude") and len(claude.requests) == 2
    assert "previous answer was invalid" in claude.requests[1]["messages"][0]["content"]


def test_two_invalid_replies_fall_back_to_the_offline_planner(claude):
    claude.reply_text("not json")
    claude.reply_tool_use("submit_plan", {**GOOD, "arms": [{"name": "x", "overrides":
                                                            {"bogus": 1}}]})
    p = claude_plan("run toy")
    assert p.planner.startswith("offline (claude fallback: ")
    assert "bogus" in p.planner and [a.name for a in p.arms] == ["full"]


def test_an_overloaded_api_falls_back_to_the_offline_planner(claude):
    claude.reply_overloaded()
    p = claude_plan("run toy")
    assert p.planner.startswith("offline (claude fallback: ") and "529" in p.planner
    assert len(claude.requests) == 1


def test_without_an_api_key_the_offline_planner_is_used(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert make_plan("run toy", "smoke", "tiny", None, "cpu").planner == "offline"


@pytest.mark.parametrize("budget", ["smoke", "small", "medium"])
def test_scaled_down_experiment_budgets_keep_cpu_sized_evaluation(budget):
    p = plan("run erdos", budget=budget)
    cfg = p.config(p.baseline, 0)
    assert (cfg.eval_timeout_s, cfg.atcoder_cases, cfg.max_grad_norm) == (10.0, 8, 0.0)


def test_a_paper_plan_runs_the_released_configuration():
    p = plan("run ahc039", budget="paper")
    assert p.config(p.baseline, 0).replace(env="erdos", model="smollm2", device="") == \
        Config()


def test_an_older_small_plan_without_evaluation_settings_keeps_the_cpu_sized_ones():
    older = plan("run erdos").to_dict()
    del older["settings"]["eval_timeout_s"], older["settings"]["atcoder_cases"]
    cfg = validate_plan(older).config("full", 0)
    assert (cfg.eval_timeout_s, cfg.atcoder_cases) == (10.0, 8)


def test_an_older_plan_without_answer_stops_resumes_as_it_began():
    older = plan("run erdos").to_dict()
    assert older["settings"]["stop_at_answer"] is True  # a new plan ends actions at answers
    del older["settings"]["stop_at_answer"], older["settings"]["train_micro_batch"]
    cfg = validate_plan(older).config("full", 0)
    assert not cfg.stop_at_answer and cfg.train_micro_batch == 4


@pytest.mark.parametrize("budget", ["smoke", "small"])
def test_group_size_arms_claim_matched_compute_only_when_it_is(budget):
    p = plan("tune group size on toy", budget)
    per_step = {a.name: p.config(a.name, p.seeds[0]).rollouts_per_step for a in p.arms}
    base = per_step[p.baseline]
    for arm in p.arms:
        matched = "same rollouts per step" in arm.why
        assert matched == (per_step[arm.name] == base), (arm.name, arm.why)
        if not matched:
            assert f"{per_step[arm.name]} rollouts per step, not {base}" in arm.why
