"""Report prose calls ties ties (issue 18): equal scores are 'no effect', never a win."""

import pandas as pd

from harness.lab.report_text import findings, identical_actions, next_steps


def summary(scores: dict[str, float], n: int = 1) -> pd.DataFrame:
    return pd.DataFrame([{"arm": a, "best_raw": v, "mean_best": v, "ci95": 0.0, "n": n,
                          "status": "finished", "rollouts": 8, "valid_frac": 1.0}
                         for a, v in scores.items()])


PLAN = {"request": "tune c_puct on toy", "budget": "small", "model": "tiny",
        "settings": {"steps": 2},
        "arms": [{"name": f"c_puct={v}", "overrides": {"c_puct": v}} for v in (0.5, 1.0, 2.0)]}


def test_equal_arms_are_no_effect_and_nobody_beats_anybody():
    lines = findings(summary({"c_puct=0.5": 18.0, "c_puct=1.0": 18.0, "c_puct=2.0": 18.0}),
                     "c_puct=1.0", "max", 16.0)
    text = "\n".join(lines)
    assert lines[0].startswith("No effect at this budget: every arm reached 18")
    assert "Best result" not in text and "-0" not in text
    assert text.count("equal: no effect at this budget") == 2


def test_a_tie_at_the_top_is_named_a_tie():
    lines = findings(summary({"c_puct=0.5": 18.0, "c_puct=1.0": 17.0, "c_puct=2.0": 18.0}),
                     "c_puct=1.0", "max", None)
    assert lines[0] == ("Best result: a tie at 18 (higher is better) between `c_puct=0.5`, "
                        "`c_puct=2.0`.")


def test_identical_actions_are_detected_and_said():
    rows = [{"arm": arm, "seed": 0, "step": s, "group": 0, "text": t}
            for arm in ("a", "b") for s, t in ((0, "x"), (1, "y"))]
    assert identical_actions(pd.DataFrame(rows))
    rows[-1]["text"] = "z"
    assert not identical_actions(pd.DataFrame(rows))
    lines = findings(summary({"a": 3.0, "b": 3.0}), "a", "max", None, same_actions=True)
    assert "all arms sampled the same actions" in lines[0]


def test_a_tie_gives_no_edge_of_grid_advice(tmp_path):
    tied = summary({"c_puct=0.5": 18.0, "c_puct=1.0": 18.0, "c_puct=2.0": 18.0})
    assert not any("edge of the grid" in s for s in next_steps(tied, PLAN, tmp_path, "max",
                                                               False))
    clear = summary({"c_puct=0.5": 17.0, "c_puct=1.0": 16.0, "c_puct=2.0": 18.0}, n=3)
    assert any("edge of the grid" in s for s in next_steps(clear, PLAN, tmp_path, "max", False))
    one_seed = summary({"c_puct=0.5": 17.0, "c_puct=1.0": 16.0, "c_puct=2.0": 18.0}, n=1)
    assert not any("edge of the grid" in s for s in next_steps(one_seed, PLAN, tmp_path, "max",
                                                               False))


def test_a_zero_effect_is_never_printed_as_minus_zero():
    from harness.lab.findings import Evidence, _finding
    from harness.lab.stats import difference

    row = {"mean_best": 0.5, "n": 1, "ci95": 0.0}
    effect, _ = difference(row, dict(row), "min")  # -1 * 0.0 would be -0.0
    ev = Evidence("exp", effect, float("nan"), 1, 1)
    finding = _finding("toy", [("a", "b", ev), ("b", "a", ev)])
    assert all("-0" not in e.text() for e in finding.evidence)
    assert "-0" not in finding.row()["effect"]


def test_tables_number_steps_as_the_csvs_do():
    from harness.lab.report import valid_by_step

    steps = pd.DataFrame([{"arm": "a", "step": s, "valid_frac": 0.5} for s in (0, 1)])
    assert [row[0] for row in valid_by_step(steps, ["a"])] == ["0", "1"]


def test_the_arm_comparison_draws_points_not_bars_from_an_offset_axis(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from harness.lab import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    rows = summary({"a": 17.0, "b": 18.0})
    runs = pd.DataFrame([{"arm": "a", "best_raw": 17.0}, {"arm": "b", "best_raw": 18.0}])
    figures.arm_comparison(rows, runs, "a", "letters", "max", tmp_path / "x.png")
    [ax] = drawn[0].axes
    assert not ax.patches  # no bars whose length would exaggerate 17 vs 18
    plt.close(drawn[0])


def test_a_dry_run_is_indexed_at_once_and_links_what_exists(tmp_path):
    from harness.lab.experiment import create_experiment
    from harness.lab.report import reindex

    folder = create_experiment("tune c_puct on toy", root=tmp_path, budget="smoke",
                               model="tiny", planner="offline")
    index = (tmp_path / "INDEX.md").read_text()
    assert f"[{folder.name}]({folder.name}/plan.json)" in index and "| planned |" in index
    reindex(tmp_path)
    assert (tmp_path / "INDEX.md").read_text() == index  # what reindex rebuilds, at all times


def test_a_sweep_row_names_a_tie_at_the_top(tmp_path):
    from harness.lab.proposal import Result
    from harness.lab.sweep_digest import _headline_text

    rows = summary({"a": 12.0, "b": 12.0, "c": 11.0})
    plan = {"env": "toy", "arms": [{"name": a, "overrides": {}} for a in "abc"]}
    result = Result(0, tmp_path, plan, rows, "done", "", "")
    assert _headline_text(result, result.ranked()[0]).startswith("tie: `a`, `b` 12")


def test_a_sweep_with_tied_arms_names_no_single_best_configuration(tmp_path):
    from harness.lab.proposal import Result
    from harness.lab.sweep_digest import best_configuration

    rows = summary({"a": 12.0, "b": 12.0})
    plan = {"env": "toy", "arms": [{"name": a, "overrides": {}} for a in "ab"],
            "settings": {}, "budget": "smoke", "model": "tiny"}
    best = best_configuration([Result(0, tmp_path, plan, rows, "done", "", "")])
    assert best["tied"] == ["a", "b"]
