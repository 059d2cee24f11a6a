"""The reviewer: the declared search space and the proposal schema (proposal.py), the
offline reviewer on recorded CSVs with a known best, the Claude reviewer against a local
Messages API stand-in (tests/messages_server.py; the SDK is not mocked), `harness review`."""

import json
import math

import pytest
from click.testing import CliRunner

from harness.base import records
from harness.base.config import BUDGETS
from harness.cli import main
from harness.lab.offline_planner import offline_plan
from harness.lab.proposal import (
    SEARCH_SPACE,
    Knob,
    ProposalError,
    check_search_space,
    make_scope,
    read_result,
    validate_proposal,
)
from harness.lab.reviewer import load_review, review_experiment, write_review


def recorded(folder, request, scores, seeds=2, budget="smoke"):
    """An experiment folder from recorded CSVs: scores[arm] = each seed's final best score."""
    plan = offline_plan(request, budget, "tiny", seeds, "cpu").to_dict()
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps(plan))
    steps = records.CsvLog(folder / "data" / "steps.csv", records.STEP_COLUMNS)
    n_steps = plan["settings"]["steps"]
    for arm, per_seed in scores.items():
        for seed, final in enumerate(per_seed):
            steps.append([{"arm": arm, "seed": seed, "step": s, "score/best": final - (n_steps
                           - 1 - s), "valid_frac": 1.0, "tokens/generated": 10,
                           "time/step_s": 0.1} for s in range(n_steps)])
    return read_result(folder)  # renders summary.csv and report.md from the CSVs


C_PUCT = "tune c_puct on toy"  # smoke: c_puct in {0.5, 1, 2}, baseline c_puct=1


@pytest.fixture()
def interior(tmp_path):
    """Known best: c_puct=1, well separated (2 seeds, tiny spread)."""
    return recorded(tmp_path / "interior", C_PUCT, {"c_puct=0.5": [10, 10.02],
                                                    "c_puct=1": [14, 14.02],
                                                    "c_puct=2": [11, 11.02]})


def proposal_of(result, history=()):
    review = review_experiment(result, list(history), reviewer="offline")
    return review.proposal, review.plan


# --- the search space ---
def test_the_search_space_names_per_arm_config_fields_with_sane_ranges():
    assert check_search_space(SEARCH_SPACE) is SEARCH_SPACE
    for budget in BUDGETS.values():  # every budget's own settings are inside it
        for key, value in budget.settings.items():
            if key in SEARCH_SPACE:
                assert SEARCH_SPACE[key].problem(value) is None, (key, value)


@pytest.mark.parametrize("space, message", [
    ({"lora_alpha": Knob(int, 1, 64)}, "is int, the config field is float"),
    ({"steps": Knob(int, 1, 10)}, "not a per-arm config field"),
    ({"warp": Knob(float, 0, 1)}, "not a per-arm config field"),
    ({"c_puct": Knob(float, 0.0, 2.0, log=True)}, "low > 0 on a log scale"),
])
def test_a_broken_search_space_is_refused(space, message):
    with pytest.raises(ValueError, match=message):
        check_search_space(space)


# --- the proposal schema ---
def good_proposal(**change):
    data = {"title": "Zoom c_puct", "hypothesis": "The best c_puct is near 1.",
            "env": "toy", "baseline": "c1",
            "arms": [{"name": "c1", "overrides": {"c_puct": 1}, "why": "best"},
                     {"name": "c1.4", "overrides": {"c_puct": 1.4}, "why": "zoom"}],
            "seeds": 2, "budget": "smoke", "rationale": "c_puct=1 had mean best 14.01.",
            "evidence": [{"what": "c_puct=1 mean best", "value": 14.01}], "stop": False,
            "summary": "c_puct=1 is best (14.01 vs 11.01)."}
    return {**data, **change}


def test_a_valid_proposal_becomes_a_plan_through_the_planners_schema(interior):
    proposal, plan = validate_proposal(good_proposal(), make_scope(interior, []))
    assert [a.overrides for a in plan.arms] == [{"c_puct": 1.0}, {"c_puct": 1.4}]
    assert plan.settings["steps"] == 2 and plan.seeds == (0, 1) and plan.model == "tiny"
    assert proposal.evidence == ({"what": "c_puct=1 mean best", "value": 14.01},)


@pytest.mark.parametrize("change, message", [
    ({"arms": [{"name": "a", "overrides": {"lora_alpha": 8.0}}]},
     "sets 'lora_alpha', which is outside the search space; knobs: objective"),
    ({"arms": [{"name": "a", "overrides": {"steps": 9}}]}, "outside the search space"),
    ({"arms": [{"name": "a", "overrides": {"c_puct": 100}}]},
     r"c_puct=100 is outside the search space \(c_puct must be within \[0.05, 16\]\)"),
    ({"arms": [{"name": "a", "overrides": {"reuse": "magic"}}]}, "reuse must be one of"),
    ({"arms": [{"name": "a", "overrides": {"train": 1}}]}, "train must be one of True"),
    ({"env": "erdos"}, "env must stay 'toy'"),
    ({"budget": "medium"}, "budget 'medium' is not allowed; use one of smoke"),
    ({"seeds": 0}, "seeds must be an integer from 1"),
    ({"evidence": [{"what": "made up", "value": 99.5}]}, "is not a number from the"),
    ({"evidence": []}, "evidence must list the numbers"),
    ({"arms": []}, "arms must be a non-empty list"),
    ({"baseline": "nope"}, "baseline 'nope' is not one of the arms"),
    ({"colour": "red"}, "unexpected fields"),
    ({"arms": [{"name": f"c{i}", "overrides": {"c_puct": 0.5 + i}} for i in range(5)]},
     "5 arms x 2 seeds do not fit the smoke budget"),
    ({"arms": [{"name": n, "overrides": {"c_puct": v}} for n, v in
               (("c0.5", 0.5), ("c1", 1.0), ("c2", 2.0))]}, "already run"),
])
def test_a_proposal_outside_the_space_or_schema_is_rejected_with_a_reason(interior, change,
                                                                          message):
    with pytest.raises(ProposalError, match=message) as err:
        validate_proposal(good_proposal(**change), make_scope(interior, []))
    assert "\n" not in str(err.value)


def test_a_stop_needs_no_arms(interior):
    proposal, plan = validate_proposal(good_proposal(stop=True, arms=[], baseline=""),
                                       make_scope(interior, []))
    assert proposal.stop and plan is None


# --- the offline reviewer on recorded CSVs with a known best ---
def test_an_interior_best_is_zoomed_into_between_its_neighbours(interior):
    proposal, plan = proposal_of(interior)
    values = [a["overrides"]["c_puct"] for a in plan["arms"]]
    assert values == [round(math.sqrt(0.5), 4), 1.0, round(math.sqrt(2), 3)]
    assert plan["baseline"] == "c_puct=1" and plan["seeds"] == [0, 1]
    assert [e["value"] for e in proposal.evidence] == pytest.approx([14.01, 11.01])
    assert "`c_puct=1` has the best mean 14.01" in proposal.summary
    assert "zoom" in proposal.rationale and not proposal.stop


def test_a_best_at_the_edge_extends_the_grid_beyond_it(tmp_path):
    edge = recorded(tmp_path / "edge", C_PUCT, {"c_puct=0.5": [10, 10.02],
                                                "c_puct=1": [11, 11.02], "c_puct=2": [14, 14]})
    proposal, plan = proposal_of(edge)
    assert [a["overrides"]["c_puct"] for a in plan["arms"]] == [2.0, 4.0, 8.0]
    assert plan["baseline"] == "c_puct=2" and "high edge" in proposal.rationale


def test_arms_within_noise_get_more_seeds_the_weakest_dropped_to_fit(tmp_path):
    noisy = recorded(tmp_path / "noisy", C_PUCT, {"c_puct=0.5": [12, 14],
                                                  "c_puct=1": [13, 13.5], "c_puct=2": [9, 15]})
    proposal, plan = proposal_of(noisy)
    # 3 arms x 4 seeds do not fit the smoke budget's 64 rollouts at 2 steps; 2 arms do
    assert [a["name"] for a in plan["arms"]] == ["c_puct=1", "c_puct=0.5"]
    assert plan["seeds"] == [0, 1, 2, 3] and plan["settings"]["steps"] == 2
    assert "within noise" in proposal.rationale


def test_a_plateau_stops_the_sweep_and_names_the_best_configuration(tmp_path):
    history = [recorded(tmp_path / f"0{i}", "run toy", {"full": [s]}, seeds=1)
               for i, s in enumerate((15, 14.5), 1)]
    current = recorded(tmp_path / "03", "run toy", {"full": [14.8]}, seeds=1)
    proposal, plan = proposal_of(current, history)
    assert proposal.stop and plan is None
    assert "Plateau: the best mean 15 (`full` in 01)" in proposal.summary
    assert [e["value"] for e in proposal.evidence] == [15, 14.5, 14.8]


def test_a_single_arm_experiment_leads_to_tuning_the_next_knob(tmp_path):
    proposal, plan = proposal_of(recorded(tmp_path / "run", "run toy", {"full": [12]}, 1))
    assert [list(a["overrides"]) for a in plan["arms"]] == [
        ["reuse", "objective", "kl_target"]] * 3
    assert plan["baseline"] == "kl_target=0.6931" and "kl_target" in proposal.title


# --- the Claude reviewer against the local Messages API stand-in ---
def claude_review(result, max_retries=0):
    return review_experiment(result, [], reviewer="claude", max_retries=max_retries)


def test_a_valid_claude_proposal_is_accepted_with_its_tokens_and_cost(claude, interior):
    claude.reply_tool_use("submit_proposal", good_proposal())
    review = claude_review(interior)
    assert review.reviewer == "claude (claude-test-model)" and review.rejected == ()
    assert [a["name"] for a in review.plan["arms"]] == ["c1", "c1.4"]
    assert review.usage == {"model": "claude-test-model", "calls": 1, "tokens_in": 10,
                            "tokens_out": 10, "cost_usd": pytest.approx(1.8e-4)}
    [sent] = claude.requests
    assert sent["tool_choice"] == {"type": "tool", "name": "submit_proposal"}
    prompt = sent["messages"][0]["content"]
    assert "| c_puct=1 | partial | 14.02 | 14.01 |" in prompt  # the numbers it reviews
    assert "- `c_puct`: float in [0.05, 16], log scale" in prompt  # the search space


def test_an_out_of_space_claude_proposal_is_repaired_in_one_turn(claude, interior):
    claude.reply_tool_use("submit_proposal", good_proposal(
        arms=[{"name": "a", "overrides": {"lora_alpha": 8.0}}], baseline="a"))
    claude.reply_tool_use("submit_proposal", good_proposal())
    review = claude_review(interior)
    assert review.reviewer.startswith("claude") and len(claude.requests) == 2
    assert "outside the search space" in review.rejected[0] and review.usage["calls"] == 2
    repair = claude.requests[1]["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    [result] = repair[2]["content"]
    assert result["type"] == "tool_result" and result["is_error"]
    assert "lora_alpha" in result["content"] and result["tool_use_id"] == \
        repair[1]["content"][0]["id"]


def test_two_out_of_space_proposals_are_replaced_by_the_offline_reviewer(claude, interior):
    for _ in range(2):
        claude.reply_tool_use("submit_proposal", good_proposal(
            arms=[{"name": "a", "overrides": {"c_puct": 100}}], baseline="a"))
    review = claude_review(interior)
    assert review.reviewer.startswith("offline (claude fallback: ProposalError: invalid "
                                      "proposal twice")
    assert len(review.rejected) == 2 and review.usage["calls"] == 2
    assert review.proposal == proposal_of(interior)[0]  # the offline reviewer's zoom


def test_an_overloaded_api_is_retried_with_backoff_then_succeeds(claude, interior):
    claude.reply_overloaded()  # HTTP 529; the SDK backs off (retry-after-ms: 1) and retries
    claude.reply_tool_use("submit_proposal", good_proposal())
    review = claude_review(interior, max_retries=1)
    assert review.reviewer.startswith("claude") and len(claude.requests) == 2


# --- review.json, review.md and `harness review` ---
def test_a_review_round_trips_through_review_json(interior):
    review = review_experiment(interior, [], reviewer="offline")
    text = write_review(interior.folder, review).read_text()
    assert load_review(interior.folder) == review
    assert "## Proposal: Zoom c_puct around 1" in text and "| c_puct=1 (baseline) |" in text


def test_harness_review_prints_the_proposal_once_reviewed(interior, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    first = CliRunner().invoke(main, ["review", str(interior.folder)])
    assert first.exit_code == 0, first.output
    assert "Reviewer: offline" in first.output and "Zoom c_puct around 1" in first.output
    stamp = json.loads((interior.folder / "review.json").read_text())["created"]
    again = CliRunner().invoke(main, ["review", str(interior.folder)])  # printed, not redone
    assert again.output == first.output
    assert json.loads((interior.folder / "review.json").read_text())["created"] == stamp


def test_harness_review_of_a_bad_folder_says_why_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["review", str(tmp_path / "nope")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "is not an experiment folder (no plan.json)" in result.output


# --- the evidence first (issue 18) ---
def test_a_run_with_no_valid_action_stops_to_make_actions_valid_first(tmp_path):
    result = recorded(tmp_path / "bad", C_PUCT, {"c_puct=0.5": [1, 1], "c_puct=1": [1, 1],
                                                 "c_puct=2": [1, 1]})
    log = records.CsvLog(result.folder / "data" / "rollouts.csv", records.ROLLOUT_COLUMNS)
    log.append([{"arm": arm, "seed": seed, "step": 0, "group": 0, "valid": False,
                 "reward": 0.0, "message": "no code block"}
                for arm in ("c_puct=0.5", "c_puct=1", "c_puct=2") for seed in (0, 1)])
    (result.folder / "data" / "summary.csv").unlink()  # rendered again, with the rollouts
    from harness.lab.memory import add_comment

    add_comment(result.folder, "please run 3 seeds")  # the evidence comes before comments
    proposal, _ = proposal_of(read_result(result.folder))
    assert proposal.stop and "Make actions valid first" in proposal.summary
    assert "seeds" not in proposal.title.lower()
    [response] = proposal.comment_responses
    assert response["response"].startswith("Not run: make actions valid first")


def test_identical_actions_read_as_no_effect_in_the_review(tmp_path):
    result = recorded(tmp_path / "same", C_PUCT, {"c_puct=0.5": [3, 3], "c_puct=1": [3, 3],
                                                  "c_puct=2": [3, 3]})
    log = records.CsvLog(result.folder / "data" / "rollouts.csv", records.ROLLOUT_COLUMNS)
    log.append([{"arm": arm, "seed": seed, "step": 0, "group": 0, "valid": True, "reward": 1.0,
                 "text": f"abc{seed}"} for arm in ("c_puct=0.5", "c_puct=1", "c_puct=2")
                for seed in (0, 1)])
    (result.folder / "data" / "summary.csv").unlink()
    proposal, _ = proposal_of(read_result(result.folder))
    assert "all arms sampled the same actions: no effect at this budget" in proposal.rationale \
        or "all arms sampled the same actions: no effect at this budget" in proposal.summary


def test_a_comment_asking_for_3_seeds_is_acted_on_with_3_or_not_at_all(interior):
    from harness.lab.memory import add_comment

    add_comment(interior.folder, "please run 3 seeds")
    proposal, _ = proposal_of(read_result(interior.folder))
    [response] = proposal.comment_responses
    if response["response"].startswith("Acted on"):
        assert proposal.seeds == 3
    else:
        assert proposal.seeds != 3 or proposal.stop


def test_a_new_comment_makes_harness_review_redo_the_review(interior, monkeypatch):
    from harness.lab.memory import add_comment

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    first = CliRunner().invoke(main, ["review", str(interior.folder)])
    assert first.exit_code == 0, first.output
    add_comment(interior.folder, "try c_puct 1.5")
    again = CliRunner().invoke(main, ["review", str(interior.folder)])
    assert again.exit_code == 0, again.output
    responses = json.loads((interior.folder / "review.json").read_text())["proposal"][
        "comment_responses"]
    assert any("c_puct 1.5" in r["comment"] for r in responses)


def test_a_folder_that_never_ran_is_not_called_answered(tmp_path, monkeypatch):
    from harness.lab.experiment import create_experiment

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    folder = create_experiment(C_PUCT, root=tmp_path, budget="smoke", model="tiny",
                               planner="offline")
    out = CliRunner().invoke(main, ["review", str(folder)])
    assert out.exit_code == 0, out.output
    assert "answered" not in out.output and "nothing to build on" in out.output
