"""The offline reviewer: the next experiment from the numbers alone (no key, no network).

Rules, first match wins; every candidate goes through `validate_proposal` like Claude's
answers (in the search space, within the budget, not a repeat), else the next one is tried:
1. no experiment has a score -> stop; the current one's actions were (almost) never valid ->
   stop: make actions valid first (more seeds would repeat the noise);
2. plateau: the sweep's best mean has not improved for PATIENCE experiments -> stop;
3. the best arm is within noise of others (n < 2, or their 95% CIs overlap) -> the same arms
   with more seeds (doubling, as many as the budget allows at the same number of steps);
4. one numeric knob was tuned: best at an edge of the grid -> extend the grid beyond it (same
   ratio, or same step on a linear knob); best inside -> zoom in between its neighbours;
   no further at the search space's bound or once the spacing is below RESOLUTION;
5. the best arm becomes the base and the next knob not yet varied (NEXT_KNOBS, when relevant
   to that configuration) gets a grid around its current value;
6. nothing left -> stop, naming the best configuration.
Parallel tracks of one question (tracks.py): track k of K takes the k-th distinct direction
that rules 3-5 offer (a direction: more seeds, or refining / tuning one knob), wrapping round
when there are fewer, so that the tracks do not all run the same experiment.

Why rules rather than Optuna (ask/tell, TPE): a sweep is a handful of experiments of 3-5
arms with 1-3 noisy seeds each; TPE needs tens of trials before it beats a grid and cannot
say "within noise, add seeds" or "the best is at the edge". These rules are deterministic
and each proposal cites the numbers it used. (Optuna is also not installed here.)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator

import pandas as pd

from harness.base.config import BUDGETS, Config
from harness.base.scores import beats, better, improved
from harness.lab.findings import settled_about
from harness.lab.folders import reports_root_of
from harness.lab.memory import parse_change
from harness.lab.offline_planner import MULTIPLIERS
from harness.lab.plan import PlanError, fit_settings, matched_groups
from harness.lab.proposal import (
    MAX_SEEDS,
    SEARCH_SPACE,
    ProposalError,
    Result,
    Scope,
    validate_proposal,
)
from harness.lab.report_text import WEAK_VALID_FRAC, identical_actions, pooled_valid_frac
from harness.lab.stats import separated

PATIENCE = 2          # experiments without a new best before the sweep stops
RESOLUTION = 0.05     # relative grid spacing below which a knob is not refined further
NEXT_KNOBS = ("kl_target", "c_puct", "learning_rate", "temperature", "beta", "epsilon")
RELEVANT = {"kl_target": ("objective", "entropic_adaptive"),
            "beta": ("objective", "entropic_const"), "c_puct": ("reuse", "puct"),
            "epsilon": ("reuse", "eps_greedy"), "learning_rate": ("train", True)}
COMPANIONS = {"groups_per_step", "objective"}  # set alongside group_size / beta


def offline_proposal(current: Result, history: list[Result], scope: Scope,
                     track: tuple[int, int] = (1, 1)) -> dict:
    """Comments first: the first open comment that asks for more seeds or to "try <knob>
    <value>" and makes a valid proposal is acted on; otherwise the rules above decide (for
    track k of K). Every open comment gets a response, and settled findings on the knobs the
    proposal varies are named in its rationale."""
    plain = dataclasses.replace(scope, comments=())  # responses are added at the end
    scored = [r for r in [*history, current] if r.scored]
    base = current if current.scored or not scored else scored[-1]
    chosen, responses = None, {}
    invalid = _mostly_invalid(current)  # the evidence first: then comments, then numbers
    if invalid:
        chosen = _stop(invalid, [], current, None)
        responses = {c: "Not run: make actions valid first (see the proposal)."
                     for c in scope.comments}
    for comment in scope.comments if scored and not invalid else ():
        for candidate in _from_comment(comment, base, base.ranked()):
            try:
                validate_proposal(candidate, plain)
            except ProposalError as err:
                responses.setdefault(comment, f"Not run: {err}.")
                continue
            chosen, responses[comment] = candidate, f"Acted on: {candidate['title']}."
            break
        if chosen:
            break
    chosen = chosen or _by_numbers(current, history, plain, track)
    word = "stop" if chosen["stop"] else "the proposal follows the numbers"
    chosen["comment_responses"] = [{"comment": c, "response": responses.get(c, (
        f"Read; no offline rule turns it into an experiment, so {word}: {chosen['title']}."))}
        for c in scope.comments]
    chosen["rationale"] += _ledger_note(base, chosen)
    return chosen


def _from_comment(comment: str, base: Result, ranked: list[dict]) -> Iterator[dict]:
    """Proposals a comment asks for: more seeds for the scored arms, or 'try <change>' on
    the best arm (the change in the planner's words, memory.parse_change)."""
    text = comment.split(": ", 2)[-1]
    n = len(base.plan["seeds"])
    if re.search(r"\bseeds?\b", text, re.IGNORECASE):
        arms = [{"name": r["arm"], "overrides": r["overrides"], "why": "asked for in a comment"}
                for r in ranked]
        asked = re.search(r"(\d+)\s+seeds?\b", text, re.IGNORECASE)
        # the number asked for, or nothing: never "acted on" with another number
        counts = [int(asked[1])] if asked else range(min(MAX_SEEDS, max(2, 2 * n)), n, -1)
        for k in range(len(arms), 0, -1):
            for seeds in counts:
                if _steps_at(base.plan["budget"], arms[:k], seeds):
                    yield _proposal(
                        base, f"More seeds for {', '.join(a['name'] for a in arms[:k])}",
                        f"With {seeds} seeds per arm the 95% CIs tell whether the arms differ.",
                        arms[:k], arms[0]["name"], seeds, f"A comment asks for more seeds: "
                        f"{text!r}.", [_cite(r) for r in ranked[:k]], _reading(base, ranked))
    match = re.search(r"\btry\s+(.+?)(?:[.;!]|$)", text, re.IGNORECASE)
    if match and ranked:
        try:
            change = parse_change(match[1])
        except PlanError:
            return
        best = ranked[0]
        name = "+".join(f"{k}={v}" for k, v in change.overrides.items() if k != "objective")
        arms = [{"name": best["arm"], "overrides": best["overrides"], "why": "the best so far"},
                {"name": name or "changed", "overrides": {**best["overrides"],
                                                          **change.overrides},
                 "why": f"asked for in a comment: {match[1]}"}]
        yield _proposal(base, f"Try {match[1]} on {best['arm']}", f"{match[1]} on top of "
                        f"`{best['arm']}` may beat it.", arms, best["arm"],
                        change.seeds or n, f"A comment asks to try {match[1]!r}.",
                        [_cite(best)], _reading(base, ranked))


def _ledger_note(base: Result, proposal: dict) -> str:

    keys = {k for a in proposal["arms"] for k in a["overrides"]}
    settled = settled_about(reports_root_of(base.folder), base.plan["env"], keys)
    if proposal["stop"] or not settled:
        return ""
    return (" Ledger: " + "; ".join(f"'{f.claim}' is {f.status}" for f in settled)
            + "; this proposal runs those knobs again only as part of: "
            + proposal["title"] + ".")


def _by_numbers(current: Result, history: list[Result], scope: Scope,
                track: tuple[int, int] = (1, 1)) -> dict:
    """The rules' valid proposal for track k of K (a dict in the proposal schema): the first
    one for track 1."""
    results = [*history, current]
    scored = [r for r in results if r.scored]
    if not scored:
        return _stop("No experiment of the sweep produced a score, so there is nothing to "
                     "build on.", [], current, None)
    base = current if current.scored else scored[-1]
    note = "" if base is current else (f"Experiment {current.folder.name} failed "
                                       f"({current.error or 'no score'}); building on "
                                       f"{base.folder.name}. ")
    ranked = base.ranked()
    invalid = _mostly_invalid(current)
    if invalid:  # the evidence first: scores mean little until actions are valid
        return _stop(invalid, [], current, None)
    plateau = _plateau(scored)
    if plateau:
        return _stop(note + plateau[0], plateau[1], base, ranked[0])
    k, tracks = track
    options = list(itertools.islice(_directions(base, ranked, results, scope), k))
    if options:
        chosen = options[(k - 1) % len(options)]  # fewer directions than k: wrap round
        chosen["summary"] = note + chosen["summary"]
        if chosen is not options[0]:
            chosen["rationale"] += (f" Track {k} of {tracks}: direction "
                                    f"{options.index(chosen) + 1} of the rules, so that the "
                                    f"tracks differ (the first: {options[0]['title']}).")
        return chosen
    return _stop(note + "Every refinement these rules know has been run or does not fit the "
                 "budget.", [_cite(ranked[0])], base, ranked[0])


def _directions(base: Result, ranked: list[dict], results: list[Result],
                scope: Scope) -> Iterator[dict]:
    """The valid candidates of rules 3-5 in order, the first of each direction (more seeds;
    refining or tuning a given knob)."""
    seen = set()
    for rule in (_more_seeds, _refine, _next_knob):
        for candidate in rule(base, ranked, results):
            direction = (rule.__name__, "" if rule is _more_seeds else
                         ",".join(sorted(tuned_keys(candidate) - COMPANIONS)))
            if direction in seen:
                continue
            try:
                validate_proposal(candidate, scope)
            except ProposalError:
                continue  # e.g. a repeat or over budget: the next candidate
            seen.add(direction)
            yield candidate


# --- numbers ---
def _mostly_invalid(result: Result) -> str | None:
    """A reason to stop when the experiment's actions were (almost) never valid."""
    summary = result.summary
    if summary.empty or "valid_frac" not in summary:
        return None
    valid = pooled_valid_frac(summary)
    if valid is None or valid >= WEAK_VALID_FRAC:
        return None
    return (f"Make actions valid first: only {valid:.1%} of {int(summary['rollouts'].sum())} "
            f"rollouts in {result.folder.name} were valid, so its scores say nothing about "
            "the knobs; more seeds or a finer grid would only repeat that (see the report's "
            "Diagnostics: another action format or a bigger model).")


def _cite(row: dict) -> dict:
    return {"what": f"{row['arm']} mean best (n={int(row['n'])})", "value": row["mean_best"]}


def _reading(base: Result, ranked: list[dict]) -> str:
    best, better_word = ranked[0], better(base.direction)
    rollouts = base.folder / "data" / "rollouts.csv"
    if rollouts.exists() and identical_actions(pd.read_csv(rollouts, dtype={"arm": str})):
        return (f"In {base.folder.name}, all arms sampled the same actions: no effect at this "
                f"budget (every arm reached {best['mean_best']:.6g}; {better_word} is better).")
    tied = base.tied_best()
    if len(tied) > 1:
        return (f"In {base.folder.name}, {', '.join(f'`{a}`' for a in tied)} tie at "
                f"{best['mean_best']:.6g} ({better_word} is better): no effect between them at "
                "this budget.")
    text = (f"In {base.folder.name}, `{best['arm']}` has the best mean {best['mean_best']:.6g} "
            f"(n={int(best['n'])}; {better_word} is better)")
    if len(ranked) > 1:
        runner = ranked[1]
        text += f"; runner-up `{runner['arm']}` {runner['mean_best']:.6g} (n={int(runner['n'])})"
    return text + "."


def _plateau(scored: list[Result]) -> tuple[str, list[dict]] | None:
    if len(scored) <= PATIENCE:
        return None
    direction = scored[-1].direction
    heads = [(r, r.ranked()[0]) for r in scored]
    earlier = heads[:-PATIENCE]
    result, top = earlier[0]
    for r, row in earlier[1:]:
        if beats(row["mean_best"], top["mean_best"], direction):
            result, top = r, row
    margin = 0.0 if math.isnan(top["ci95"]) else top["ci95"]
    target = improved(top["mean_best"], margin, direction)
    recent = heads[-PATIENCE:]
    if any(beats(row["mean_best"], target, direction) for _, row in recent):
        return None
    text = (f"Plateau: the best mean {top['mean_best']:.6g} (`{top['arm']}` in "
            f"{result.folder.name}) was not beaten in the last {PATIENCE} experiments (best "
            f"means {', '.join(format(row['mean_best'], '.6g') for _, row in recent)}).")
    return text, [_cite(top)] + [_cite(row) for _, row in recent]


# --- proposals ---
def _proposal(base: Result, title: str, hypothesis: str, arms: list[dict], baseline: str,
              seeds: int, rationale: str, evidence: list[dict], summary: str) -> dict:
    return {"title": title, "hypothesis": hypothesis, "env": base.plan["env"], "arms": arms,
            "baseline": baseline, "seeds": seeds, "budget": base.plan["budget"],
            "rationale": rationale, "evidence": evidence, "stop": False, "summary": summary}


def _stop(reason: str, evidence: list[dict], base: Result, best: dict | None) -> dict:
    answer = reason
    tied = base.tied_best() if best is not None else []
    if len(tied) > 1:
        answer += (f" No single best configuration: {', '.join(f'`{a}`' for a in tied)} tie "
                   f"at {best['mean_best']:.6g} in {base.folder.name}.")
    elif best is not None:
        answer += (f" Best configuration: `{best['arm']}` ({best['overrides'] or 'defaults'}) "
                   f"with mean best {best['mean_best']:.6g} (n={int(best['n'])}) in "
                   f"{base.folder.name}.")
    return {"title": "Stop: " + reason.split(":")[0].split(".")[0][:80], "hypothesis": "",
            "env": base.plan["env"], "arms": [], "baseline": "",
            "seeds": len(base.plan["seeds"]), "budget": base.plan["budget"],
            "rationale": reason, "evidence": evidence, "stop": True, "summary": answer}


def _more_seeds(base: Result, ranked: list[dict], results) -> Iterator[dict]:
    best = ranked[0]
    tied = [r for r in ranked[1:] if not separated(best, r)]
    if not tied:
        return
    n, steps = len(base.plan["seeds"]), base.plan["settings"]["steps"]
    rows = [best, *tied]
    arms = [{"name": r["arm"], "overrides": r["overrides"],
             "why": f"mean best {r['mean_best']:.6g} (n={int(r['n'])}) in {base.folder.name}"}
            for r in rows]
    for k in range(len(arms), 1, -1):  # the weakest tied arms go first when seeds do not fit
        for seeds in range(min(MAX_SEEDS, max(2, 2 * n)), n, -1):
            if _steps_at(base.plan["budget"], arms[:k], seeds) != steps:
                continue
            names = ", ".join(f"`{r['arm']}`" for r in rows[:k])
            yield _proposal(
                base, f"More seeds for {names.replace('`', '')}",
                f"With {seeds} seeds per arm the 95% CIs tell whether {names} really differ.",
                arms[:k], best["arm"], seeds,
                f"{names} are within noise of each other (n={n} seed(s), "
                f"{'no interval' if n < 2 else 'overlapping 95% CIs'}): more seeds before "
                "refining further.", [_cite(r) for r in rows[:k]], _reading(base, ranked))


def _steps_at(budget: str, arms: list[dict], seeds: int) -> int:
    try:
        return fit_settings(budget, arms, seeds)["steps"]
    except PlanError:
        return 0


def tuned_keys(plan: dict) -> set[str]:
    """Config keys whose value differs between the plan's arms."""
    keys = {k for a in plan["arms"] for k in a["overrides"]}
    return {k for k in keys if len({repr(a["overrides"].get(k)) for a in plan["arms"]}) > 1}


def _refine(base: Result, ranked: list[dict], results) -> Iterator[dict]:
    keys = tuned_keys(base.plan) - COMPANIONS
    key = keys.pop() if len(keys) == 1 else None
    knob = SEARCH_SPACE.get(key)
    if knob is None or knob.choices or not all(key in a["overrides"]
                                               for a in base.plan["arms"]):
        return
    best = ranked[0]
    values = sorted({a["overrides"][key] for a in base.plan["arms"]})
    b, size = best["overrides"][key], BUDGETS[base.plan["budget"]].grid
    i = values.index(b)
    if i in (0, len(values) - 1):
        other = values[1] if i == 0 else values[-2]
        new = [b]
        for _ in range(size - 1):
            new.append(new[-1] * (b / other) if knob.log else new[-1] + (b - other))
        how = (f"`{best['arm']}` is at the {'low' if i == 0 else 'high'} edge of the grid "
               f"{values}: extend the grid beyond it")
    else:
        left, right = _mid(knob, values[i - 1], b), _mid(knob, b, values[i + 1])
        if _fine(knob, b, left) and _fine(knob, b, right):
            return
        new = [left, b, right] if size < 5 else [_mid(knob, values[i - 1], left), left, b,
                                                  right, _mid(knob, right, values[i + 1])]
        how = (f"`{best['arm']}` is inside the grid {values}: zoom in between "
               f"{values[i - 1]:g} and {values[i + 1]:g}")
    new = _clean(key, new)
    if len(new) < 2:
        return  # at the search space's bound
    arms = [_tuned_arm(key, v, best["overrides"], base) for v in new]
    baseline = next(a["name"] for a, v in zip(arms, new, strict=True) if v == _clean(key, [b])[0])
    yield _proposal(base, f"{'Zoom' if 'zoom' in how else 'Extend'} {key} around {b:g}",
                    f"The best {key} lies in {min(new):g}..{max(new):g}; this grid locates it "
                    f"more precisely than {values}.", arms, baseline, len(base.plan["seeds"]),
                    how + ".", [_cite(best)] + [_cite(r) for r in ranked[1:2]],
                    _reading(base, ranked))


def _mid(knob, a: float, b: float) -> float:
    return math.sqrt(a * b) if knob.log else (a + b) / 2


def _fine(knob, b: float, other: float) -> bool:
    scale = abs(b) if knob.log else knob.high - knob.low
    return abs(other - b) < RESOLUTION * scale


def _clean(key: str, values: list) -> list:
    """Rounded (4 significant digits; ints for int knobs), clipped to the space, distinct."""
    knob, out = SEARCH_SPACE[key], []
    for v in values:
        v = min(max(v, knob.low), knob.high)
        v = int(round(v)) if knob.kind is int else float(f"{v:.4g}")
        if v not in out:
            out.append(v)
    return sorted(out)


def _tuned_arm(key: str, value, overrides: dict, base: Result) -> dict:
    new = {**overrides, key: value}
    matched = ""
    if key == "group_size":  # the same rollouts per step where the budget allows
        per_step = Config().replace(**{**base.plan["settings"], **overrides}).rollouts_per_step
        new["groups_per_step"], matched = matched_groups(value, per_step)
        matched = f" ({matched})"
    label = f"{value:.4g}" if isinstance(value, float) else str(value)
    extra = {k: v for k, v in overrides.items() if k != key}
    return {"name": f"{key}={label}", "overrides": new,
            "why": f"{key} = {label}" + (f" on top of {extra}" if extra else "") + matched}


def _next_knob(base: Result, ranked: list[dict], results) -> Iterator[dict]:
    best = ranked[0]
    varied = set().union(*(tuned_keys(r.plan) for r in results))
    cfg = Config().replace(**{**base.plan["settings"], **best["overrides"]})
    size = BUDGETS[base.plan["budget"]].grid
    for key in NEXT_KNOBS:
        need = RELEVANT.get(key)
        if key in varied or (need and getattr(cfg, need[0]) != need[1]):
            continue
        value = getattr(cfg, key)
        multipliers = MULTIPLIERS.get(key, (0.25, 0.5, 1, 2, 4))
        values = _clean(key, [value * m for m in (multipliers[1:4] if size == 3
                                                  else multipliers)])
        if len(values) < 2:
            continue
        arms = [_tuned_arm(key, v, best["overrides"], base) for v in values]
        here = _clean(key, [value])[0]
        baseline = next((a["name"] for a, v in zip(arms, values, strict=True) if v == here),
                        arms[0]["name"])
        yield _proposal(
            base, f"Tune {key} on the best configuration so far",
            f"{key} has not been varied in this sweep; around {value:g} on top of "
            f"`{best['arm']}` one of {values} may beat it.", arms, baseline,
            len(base.plan["seeds"]),
            f"`{best['arm']}` is the best configuration so far and {key} is the next untried "
            f"knob (order: {', '.join(NEXT_KNOBS)}).", [_cite(best)], _reading(base, ranked))
