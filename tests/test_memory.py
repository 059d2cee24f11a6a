"""Research memory (issue 12): plans that build on an earlier experiment, comments read and
answered by reviewers, the findings ledger (contested when two experiments disagree), and
`harness reindex` rebuilding the derived files byte for byte. Experiments are recorded CSVs
(no model runs); the Claude reviewer talks to the local Messages API stand-in."""

import json

import pytest
from click.testing import CliRunner

from harness.base import records
from harness.cli import main
from harness.lab.findings import collect
from harness.lab.folders import FolderError
from harness.lab.offline_planner import offline_plan
from harness.lab.planner import make_plan
from harness.lab.proposal import read_result
from harness.lab.reviewer import review_experiment
from harness.lab.sweep import continue_sweep, run_sweep, start_sweep
from harness.lab.sweep_state import load_state

C_PUCT = "tune c_puct on toy"  # smoke: c_puct in {0.5, 1, 2}, baseline c_puct=1


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def recorded(folder, scores, request=C_PUCT, seeds=2):
    """An experiment folder from recorded CSVs: scores[arm] = each seed's final best score."""
    plan = offline_plan(request, "smoke", "tiny", seeds, "cpu").to_dict()
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps(plan))
    write_steps(folder, scores, plan["settings"]["steps"])
    return read_result(folder)  # renders summary.csv, report.md, INDEX.md and the ledger


def write_steps(folder, scores, n_steps):
    steps = records.CsvLog(folder / "data" / "steps.csv", records.STEP_COLUMNS)
    for arm, per_seed in scores.items():
        for seed, final in enumerate(per_seed):
            steps.append([{"arm": arm, "seed": seed, "step": s, "score/best": final - (n_steps
                           - 1 - s), "valid_frac": 1.0, "tokens/generated": 10,
                           "time/step_s": 0.1} for s in range(n_steps)])


BETTER_2 = {"c_puct=0.5": [10, 10.02], "c_puct=1": [12, 12.02], "c_puct=2": [14, 14.02]}
WORSE_2 = {"c_puct=0.5": [10, 10.02], "c_puct=1": [12, 12.02], "c_puct=2": [8, 8.02]}


@pytest.fixture()
def prior(reports_in_tmp):
    return recorded(reports_in_tmp / "2026-11-24_03-10-tune-c-puct-on-toy", BETTER_2)


# --- building on a past experiment ---
@pytest.mark.parametrize("change, expect", [
    ("lr 1e-4", {"learning_rate": 1e-4}),
    ("beta 4", {"beta": 4.0, "objective": "entropic_const"}),
    ("group size 2", {"group_size": 2, "groups_per_step": 2}),  # 4 rollouts per step, as before
])
def test_a_reference_yields_the_prior_plan_with_the_change(prior, reports_in_tmp, change,
                                                            expect):
    for ref in ("2026-11-24_03-10-tune-c-puct-on-toy", "2026-11-24_03", "last"):
        plan = make_plan(f"like {ref} but with {change}", None, "tiny", None, "cpu",
                         planner="offline", root=reports_in_tmp).to_dict()
        arms = [{**a, "overrides": {**{k: v for k, v in a["overrides"].items()
                                       if not ("group_size" in expect and k == "groups_per_step")},
                                    **expect}} for a in prior.plan["arms"]]
        assert plan["arms"] == arms and plan["baseline"] == prior.plan["baseline"]
        assert plan["seeds"] == prior.plan["seeds"] and plan["budget"] == "smoke"
        assert plan["based_on"] == prior.folder.name
        assert all(f"{k}=" in plan["difference"] for k in expect)


def test_a_reference_can_change_seeds_and_is_shown_in_the_report(prior, reports_in_tmp):
    result = run("experiment", "like last but with 1 seed and lr 1e-4", "--model", "tiny",
                 "--dry-run")
    assert result.exit_code == 0, result.output
    folder = reports_in_tmp / result.output.strip().split("/")[-1]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["seeds"] == [0] and plan["based_on"] == prior.folder.name
    assert plan["difference"].startswith("seeds 2 -> 1; ")
    assert run("report", str(folder)).exit_code == 0
    report = (folder / "report.md").read_text()
    assert f"- **Based on:** `{prior.folder.name}`" in report and "seeds 2 -> 1" in report


def test_an_unknown_or_ambiguous_reference_is_refused_in_one_line(prior, reports_in_tmp):
    recorded(reports_in_tmp / "2026-11-24_03-10-tune-c-puct-on-toy-2", BETTER_2)
    result = run("experiment", "like 2026-11-24_03 but with lr 1e-4", "--model", "tiny",
                 "--dry-run")
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "'2026-11-24_03' is ambiguous; candidates: 2026-11-24_03-10-tune-c-puct-on-toy, " \
           "2026-11-24_03-10-tune-c-puct-on-toy-2" in line
    with pytest.raises(FolderError, match="'yesterday' names no experiment; candidates: 2026"):
        make_plan("like yesterday but with lr 1e-4", None, "tiny", None, "cpu",
                  planner="offline", root=reports_in_tmp)
    assert len(list(reports_in_tmp.glob("*/plan.json"))) == 2  # no folder was made


# --- comments ---
COMMENT = "beta 4 looked unstable; try more seeds"


def test_a_comment_is_shown_atop_the_report_and_answered_by_the_offline_reviewer(prior):
    assert run("comment", str(prior.folder), COMMENT).exit_code == 0
    assert run("report", str(prior.folder)).exit_code == 0
    report = (prior.folder / "report.md").read_text()
    assert report.index(COMMENT) < report.index("## Question and hypothesis")
    review = review_experiment(read_result(prior.folder), [], reviewer="offline")
    [answer] = review.proposal.comment_responses
    assert answer["comment"].endswith(COMMENT) and answer["response"].startswith("Acted on")
    assert len(review.plan["seeds"]) > len(prior.plan["seeds"])


def test_the_claude_reviewer_receives_the_comments_and_the_findings(prior, claude):
    assert run("comment", str(prior.folder), COMMENT).exit_code == 0
    [comment] = [f"{prior.folder.name}: {c}" for c in read_result(prior.folder).comments]
    claude.reply_tool_use("submit_proposal", {
        "title": "More seeds", "hypothesis": "c_puct=2 stays best.", "env": "toy",
        "baseline": "c2", "arms": [{"name": "c2", "overrides": {"c_puct": 2.0}},
                                   {"name": "c1", "overrides": {"c_puct": 1.0}}],
        "seeds": 4, "budget": "smoke", "rationale": "As the comment asks.",
        "evidence": [{"what": "c_puct=2 mean best", "value": 14.01}], "stop": False,
        "summary": "c_puct=2 is best.",
        "comment_responses": [{"comment": comment, "response": "4 seeds, as asked."}]})
    review = review_experiment(read_result(prior.folder), [], reviewer="claude",
                               max_retries=0)
    [sent] = claude.requests
    prompt = sent["messages"][0]["content"]
    assert COMMENT in prompt and "on toy, c_puct=2.0 beats c_puct=1.0" in prompt
    assert prompt.index(COMMENT) < prompt.index("Results (data/summary.csv")
    assert review.reviewer.startswith("claude") and review.proposal.comment_responses == (
        {"comment": comment, "response": "4 seeds, as asked."},)


def test_sweep_continue_extends_a_finished_sweep_and_answers_new_comments(reports_in_tmp):
    def fake_run(folder, progress=False):
        plan = json.loads((folder / "plan.json").read_text())
        write_steps(folder, {a["name"]: [10 + i + 0.01 * s for s in plan["seeds"]]
                             for i, a in enumerate(plan["arms"])}, plan["settings"]["steps"])
        read_result(folder)

    root = start_sweep(C_PUCT, root=reports_in_tmp, experiments=1, hours=1.0,
                       reviewer="offline", budget="smoke", model="tiny")
    run_sweep(root, run=fake_run, progress=False, heartbeat_s=0.05)
    first = root / load_state(root).experiments[0].folder
    assert load_state(root).status == "finished" and (first / "review.json").exists()
    assert run("comment", str(first), COMMENT).exit_code == 0
    continue_sweep(root, progress=False, run=fake_run)
    state = load_state(root)
    assert len(state.experiments) == 2 and (first / "review.previous.json").exists()
    review = json.loads((first / "review.json").read_text())["proposal"]
    assert [r["comment"].split(": ")[-1] for r in review["comment_responses"]] == [COMMENT]


# --- the findings ledger ---
def test_two_experiments_with_opposite_significant_effects_mark_the_finding_contested(
        prior, reports_in_tmp):
    later = recorded(reports_in_tmp / "2026-11-25_03-10-tune-c-puct-on-toy", WORSE_2)
    [finding] = [f for f in collect(reports_in_tmp) if "c_puct=2.0" in f.claim]
    assert finding.status == "contested"
    assert [e.folder for e in finding.evidence] == [prior.folder.name, later.folder.name]
    assert [e.effect > 0 for e in finding.evidence] == [True, False]
    [half] = [f for f in collect(reports_in_tmp) if "c_puct=0.5" in f.claim]
    assert half.status == "refuted"  # c_puct=0.5 loses to c_puct=1 both times
    printed = run("findings", "--env", "toy").output
    assert "| contested | toy | on toy, c_puct=2.0 beats c_puct=1.0 |" in printed
    assert f"[{later.folder.name}]({later.folder.name}/report.md)" in printed
    assert run("findings", "--env", "erdos").output.count("\n") == 6  # header only


def test_reindex_rebuilds_the_derived_files_byte_for_byte(prior, reports_in_tmp):
    recorded(reports_in_tmp / "2026-11-25_03-10-tune-c-puct-on-toy", WORSE_2, seeds=1)
    names = ["INDEX.md", "FINDINGS.md", "findings.csv"]
    before = {n: (reports_in_tmp / n).read_bytes() for n in names}
    assert b"| supported | toy |" in before["FINDINGS.md"]
    for n in names:
        (reports_in_tmp / n).unlink()
    assert run("reindex").exit_code == 0
    assert {n: (reports_in_tmp / n).read_bytes() for n in names} == before


def test_the_claude_planner_resolves_the_reference_and_sees_the_prior_plan(prior,
                                                                           reports_in_tmp,
                                                                           claude):
    arms = [{**a, "overrides": {**a["overrides"], "learning_rate": 1e-4}}
            for a in prior.plan["arms"]]
    claude.reply_tool_use("submit_plan", {
        "goal": "Same grid at a lower learning rate.", "hypothesis": "c_puct=2 stays best.",
        "env": "toy", "arms": arms, "baseline": prior.plan["baseline"]})
    plan = make_plan("like last but with lr 1e-4", None, "tiny", None, "cpu",
                     planner="claude", max_retries=0, root=reports_in_tmp)
    [sent] = claude.requests
    prompt = sent["messages"][0]["content"]
    assert f"builds on the earlier experiment `{prior.folder.name}`" in prompt
    assert '"request": "tune c_puct on toy"' in prompt and "c_puct=2.0 beats" in prompt
    assert plan.planner.startswith("claude") and plan.based_on == prior.folder.name
    assert plan.difference.startswith("c_puct=0.5: learning_rate=0.0001")


def test_equal_scores_are_a_finding_of_no_effect(reports_in_tmp):
    recorded(reports_in_tmp / "2026-11-26_01-00-tune-c-puct-on-toy",
             {"c_puct=0.5": [12], "c_puct=1": [12], "c_puct=2": [12]}, seeds=1)
    statuses = {f.claim: f.status for f in collect(reports_in_tmp)}
    assert set(statuses.values()) == {"no effect"}


def test_a_run_without_valid_actions_supports_no_claim(reports_in_tmp):
    folder = reports_in_tmp / "2026-11-26_02-00-tune-c-puct-on-toy"
    result = recorded(folder, BETTER_2)
    summary = result.summary.assign(valid_frac=0.0)  # as if no action had been valid
    summary.to_csv(folder / "data" / "summary.csv", index=False)
    assert collect(reports_in_tmp) == []
