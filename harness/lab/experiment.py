"""Experiments: a request becomes a timestamped folder with its plan, its single script, the
data of every arm and seed, figures and a report.

    folder = create_experiment("tune entropic temperature on erdos", root=reports_root())
    run_experiment(folder)          # what `python <folder>/experiment.py` calls

`create_experiment` plans (planner.py) and writes plan.json and experiment.py (rendered from
experiments/experiment.py.j2 with the plan inlined). `run_experiment` writes config.json
(provenance) before any compute, runs each unfinished arm x seed as one job (executors.py:
here, on Ray or on SLURM; each job writes its own shard, merged into the tidy CSVs in plan
order), and renders the report from the folder's files, also after a Ctrl-C, so an
interrupted folder says which arms finished.
"""

from __future__ import annotations

import json
import pprint
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from harness.base import records
from harness.base.config import Config
from harness.base.resources import jinja_env, resource_dir
from harness.env import make_env, resolve_action
from harness.lab.executors import ExecutorSpec, run_jobs
from harness.lab.folders import (
    PLAN_FILE,
    adopt_problem,
    is_experiment_folder,
    localized,
    problem_provenance,
    read_plan,
)
from harness.lab.plan import Plan, validate_plan
from harness.lab.planner import make_plan
from harness.lab.report import finished_runs, write_index, write_report
from harness.lab.status import running
from harness.loop.model import check_model_name, default_device
from harness.loop.sampling import describe as describe_sampling
from harness.sandbox.isolation import isolation

SCRIPT_TEMPLATE = "experiment.py.j2"


def create_experiment(request: str, *, root: Path, budget: str | None = None,
                      model: str | None = None, seeds: int | None = None,
                      planner: str = "auto", max_retries: int = 2) -> Path:
    """Plan `request` and write plan.json and experiment.py into a new folder under `root`.

    The default budget is `small` on CPU and `medium` on a GPU (a "like X" request: X's
    budget and model). Raises a one-line UserError for a request that cannot be planned or
    a model that cannot load, before any folder is made."""
    plan = make_plan(request, budget, model, seeds, default_device(), planner=planner,
                     max_retries=max_retries, root=Path(root))
    check_model_name(plan.model)
    folder = new_experiment_dir(Path(root), request)
    write_experiment(folder, plan)
    write_index(Path(root))  # INDEX.md lists the planned folder from now on (issue 18)
    return folder


def write_experiment(folder: Path, plan: Plan) -> None:
    """The one way an experiment folder is written: plan.json and the experiment.py that
    runs it (create_experiment, sweeps and tracks), and a copy of a file problem."""
    plan = replace(plan, env=adopt_problem(folder, plan.env))
    (folder / PLAN_FILE).write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    (folder / "experiment.py").write_text(render_script(plan))


def hyperparameters(cfg: Config) -> dict[str, str]:
    """The knobs that define the released configuration, as label -> value text."""
    return {
        "steps": str(cfg.steps), "groups": str(cfg.groups_per_step),
        "group size": str(cfg.group_size), "lr": f"{cfg.learning_rate:g}",
        "LoRA rank": str(cfg.lora_rank),
        "Adam": f"({cfg.adam_beta1:g}, {cfg.adam_beta2:g}, {cfg.adam_eps:g})",
        "clipping": f"{cfg.max_grad_norm:g}" if cfg.max_grad_norm > 0 else "none",
        "kl_coef": f"{cfg.kl_coef:g}", "temperature": f"{cfg.temperature:g}",
        "max_new_tokens": str(cfg.max_new_tokens), "eval_timeout_s": f"{cfg.eval_timeout_s:g}",
        "atcoder_cases": str(cfg.atcoder_cases), "reasoning": cfg.reasoning,
    }


def slugify(text: str) -> str:
    """A folder-name slug: lower-case words joined by '-', at most 48 characters."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48].strip("-") or "experiment"


def new_experiment_dir(root: Path, request: str) -> Path:
    """`root/<YYYY-MM-DD_HH-MM>-<slug>/`, made atomically (-2, -3 ... on a clash)."""
    base = f"{time.strftime('%Y-%m-%d_%H-%M')}-{slugify(request)}"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = root / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"too many experiment folders named {base}")


def render_script(plan: Plan) -> str:
    templates = jinja_env(resource_dir("experiments"), trim=False)
    request = " ".join(plan.request.split()).replace("\\", "/").replace('"""', "'''")
    return templates.get_template(SCRIPT_TEMPLATE).render(
        request=request, created=time.strftime("%Y-%m-%d %H:%M"), planner=plan.planner,
        n_arms=len(plan.arms), n_seeds=len(plan.seeds), env=plan.env, budget=plan.budget,
        plan=pprint.pformat(plan.to_dict(), sort_dicts=False, width=92))


def run_experiment(folder: Path, plan: dict | None = None, *, progress: bool = True,
                   executor: ExecutorSpec | None = None) -> Path:
    """Run (or resume) every arm x seed of `plan` (default: folder/plan.json) in `folder`,
    then write the report; returns report.md. Each arm x seed is one job of `executor`
    (default: here, one after another) writing its own shard; the shards are merged into
    data/*.csv in plan order after each job. Finished runs are not redone; a killed run
    continues from its checkpoint. On Ctrl-C the report is written, then the interrupt
    propagates; runs that failed after their retries are named in a JobsFailed error, raised
    after the report is written."""
    folder = Path(folder).resolve()
    executor = executor or ExecutorSpec()
    plan = read_plan(folder) if plan is None else localized(plan, folder)
    spec = validate_plan(plan)
    record = json.dumps(spec.to_dict(), indent=2) + "\n"
    if not is_experiment_folder(folder) or (folder / PLAN_FILE).read_text() != record:
        (folder / PLAN_FILE).write_text(record)  # the report reads the plan that ran
    if not (folder / "config.json").exists():
        write_provenance(folder, spec)
    runs = [(arm.name, seed) for arm in spec.arms for seed in spec.seeds]
    records.shard_legacy_data(folder)
    records.merge_shards(folder, runs)
    done = finished_runs(folder, spec.settings["steps"])
    todo = [run for run in runs if run not in done]
    with running(folder):  # run.json: `harness status` sees it running until the report
        try:
            with remember_ctrl_c() as ctrl_c:
                def job_done(arm: str, seed: int) -> None:
                    records.merge_shards(folder, runs)
                    if ctrl_c.is_set():  # an interrupt swallowed somewhere still stops us
                        raise KeyboardInterrupt

                failures = run_jobs(executor, folder, spec.to_dict(), todo,
                                    progress=progress, on_done=job_done)
        except KeyboardInterrupt:
            records.merge_shards(folder, runs)
            write_report(folder)
            raise
        report = write_report(folder)  # every job's end merged the shards (job_done)
    if failures:
        raise JobsFailed("; ".join(f"arm {arm} seed {seed} failed: {reason}"
                                   for (arm, seed), reason in failures.items()))
    return report


class JobsFailed(RuntimeError):
    """Some runs of an experiment failed after their retries (the others finished)."""


@contextmanager
def remember_ctrl_c():
    """Ctrl-C raises KeyboardInterrupt where the main thread is, as usual, with two repairs.
    Python swallows (and prints) an interrupt that lands in a finalizer, which is frequent
    while a finished arm's model is freed: such an interrupt is raised again once the
    finalizer is done. And the event stays set, so the experiment stops at the next run
    boundary whatever happened to the exception."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def on_sigint(signum, frame):
        event.set()
        raise KeyboardInterrupt

    def on_unraisable(unraisable):
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type,
                                                          KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, 0.01)  # raise it again in 10 ms (SIGALRM)
        else:
            previous_hook(unraisable)

    previous = signal.signal(signal.SIGINT, on_sigint), signal.signal(signal.SIGALRM, on_sigint)
    previous_hook, sys.unraisablehook = sys.unraisablehook, on_unraisable
    try:
        yield event
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGALRM, previous[1])
        sys.unraisablehook = previous_hook


def write_provenance(folder: Path, plan: Plan) -> None:
    """config.json: the baseline arm's config, each arm's overrides and resolved action, the
    seeds and budget, and provenance (git SHA, branch, code.diff, versions, device, command)."""
    from harness.loop.ttt import env_info

    env = make_env(plan.env)
    arms = {}
    for a in plan.arms:
        cfg = plan.config(a.name, plan.seeds[0])
        arms[a.name] = {"overrides": a.overrides, "action": resolve_action(cfg, env),
                        "sampling": describe_sampling(cfg.fast_sampler, cfg.sample_dtype,
                                                      cfg.device or default_device())}
    records.write_config(folder, plan.config(plan.baseline, plan.seeds[0]).to_dict(),
                         plan.device, {
                             "kind": "experiment", "request": plan.request,
                             "budget": plan.budget, "seeds": list(plan.seeds),
                             "settings": plan.settings, "baseline": plan.baseline,
                             "arms": arms, "planner": plan.planner,
                             "env": {**env_info(env), "actions": list(env.actions)},
                             "sandbox": isolation().describe(),
                             **({"problem": problem} if (problem := problem_provenance(folder))
                                else {})})
