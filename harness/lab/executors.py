"""Where an experiment's jobs run: here one after another, on Ray, or on SLURM via submitit.

One job = one (arm, seed) of a plan = `run_job`, which runs the TTT loop with resume on and
writes only its own files: `data/shards/<arm>-s<seed>/{steps,rollouts,buffer}.csv`, its
checkpoint, adapter and best candidate. The experiment merges the shards into the tidy CSVs
in plan order (`records.merge_shards`), so the folder, report and figures are the same
whichever executor ran the jobs.

    spec = ExecutorSpec("ray", max_parallel=4)          # or "local", "slurm"
    spec.check()                                        # one-line errors, before any folder
    failures = run_jobs(spec, folder, plan, [("default", 0), ("beta_const", 0)])

A job that dies (its worker killed, its node lost) or raises is run again, up to
`job_retries` more times; it continues from its own last finished step (the checkpoint), and
the rows of a step that never checkpointed are dropped, so no (arm, seed, step) row appears
twice. After that it is reported failed with the reason, and the other jobs go on.

Ray (`--executor ray`): `--ray-address auto|HOST:PORT` joins a cluster started with
`ray start --head`; without it a local Ray sized to this machine is started and shut down at
the end. Usage statistics are off and no dashboard is started. Every node must see the
experiment folder at the same absolute path (put the reports root, HARNESS_REPORTS_DIR, on a
shared file system) and have this package installed: jobs write their results there
directly; nothing is shipped back through Ray. SLURM (`--executor slurm`) submits each job
with submitit; its logs go to `<folder>/slurm/`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.base import records
from harness.base.errors import UserError, one_line
from harness.lab.folders import is_experiment_folder
from harness.lab.plan import validate_plan
from harness.sandbox.ray_session import RaySession

KINDS = ("local", "ray", "slurm")


class ExecutorError(UserError):
    """A one-line problem with the executor settings (shown to the user as is)."""


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str = "local"
    max_parallel: int = 4            # jobs in flight at once (ray, slurm)
    ray_address: str | None = None   # None: start a local Ray; "auto" or HOST:PORT: join
    job_retries: int = 2             # extra attempts of a job that died or failed
    slurm_partition: str | None = None
    slurm_gpus: int = 0
    slurm_time_min: int = 240
    slurm_cluster: str = "slurm"     # submitit's "local" runs the same path without sbatch

    def check(self) -> None:
        """Raise ExecutorError (one line) when these settings cannot work here."""
        if self.kind not in KINDS:
            raise ExecutorError(f"unknown executor {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.max_parallel < 1 or self.job_retries < 0:
            raise ExecutorError("--max-parallel must be >= 1 and the job retries >= 0")
        if self.kind == "ray":
            _import("ray")
            if self.ray_address is not None:
                check_reachable(resolve_ray_address(self.ray_address))
        if self.kind == "slurm":
            _import("submitit")
            if self.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
                raise ExecutorError("--executor slurm needs SLURM's sbatch on PATH, and it is "
                                    "not there (run on a SLURM login node)")


def _import(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ExecutorError(f"this executor needs {module}: pip install "
                            "'harness[cluster]' (ray and submitit)") from None


def resolve_ray_address(address: str) -> str:
    """HOST:PORT of `address`; "auto" is $RAY_ADDRESS or the cluster `ray start` on this
    machine recorded (the same places Ray itself looks)."""
    if address != "auto":
        return address
    recorded = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
    found = os.environ.get("RAY_ADDRESS") or (
        recorded.read_text().strip() if recorded.exists() else "")
    if not found:
        raise ExecutorError("--ray-address auto found no running Ray cluster (start one with "
                            "`ray start --head`, or give HOST:PORT)")
    return found


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"--ray-address must be auto or HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ExecutorError(f"cannot reach a Ray cluster at {address}: "
                            f"{err.strerror or err}") from None


# --- one job ---
def run_job(folder: str, plan: dict, arm: str, seed: int, progress: bool = False) -> dict:
    """Run (or resume) one arm x seed of `plan` in `folder`, writing only its own shard."""
    from harness.loop.ttt import run_ttt

    if not is_experiment_folder(folder):
        raise ExecutorError(f"{folder} is not visible on {socket.gethostname()}: put the "
                            "reports root on a file system every node shares")
    paths = records.RunPaths.shard(Path(folder), arm, seed)
    paths.data.mkdir(parents=True, exist_ok=True)
    (paths.data / "worker.json").write_text(json.dumps(  # who runs it: for `ps`, kill and logs
        {"pid": os.getpid(), "host": socket.gethostname(),
         "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    spec = validate_plan(plan)
    result = run_ttt(spec.config(arm, seed), paths, resume=True, progress=progress)
    return {"arm": arm, "seed": seed, "best": result.best_raw_score}


def job_resources(plan: dict) -> tuple[int, int]:
    """(CPUs, GPUs) one job of `plan` needs: one GPU on a CUDA plan; its evaluation workers'
    CPUs when the plan fixes them, else one (Ray lends a blocked task's CPU to its
    evaluations)."""
    settings = plan.get("settings", {})
    gpus = 1 if str(plan.get("device", "cpu")).startswith("cuda") else 0
    return max(1, int(settings.get("eval_workers") or 1)), gpus


def run_jobs(spec: ExecutorSpec, folder: Path, plan: dict, runs: list[tuple[str, int]],
             *, progress: bool = True, on_done=None) -> dict[tuple[str, int], str]:
    """Run every (arm, seed) of `runs`; returns {(arm, seed): reason} for those that failed
    after their retries. `on_done(arm, seed)` is called in this process after each job ends
    (the experiment merges its shards there). Ctrl-C cancels every job and re-raises."""
    runner = {"local": _run_local, "ray": _run_ray, "slurm": _run_slurm}[spec.kind]
    return runner(spec, Path(folder).resolve(), plan, list(runs), progress,
                  on_done or (lambda arm, seed: None))


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


# --- local: in this process, one job after another ---
def _run_local(spec, folder, plan, runs, progress, on_done):
    failures = {}
    for i, (arm, seed) in enumerate(runs, 1):
        for attempt in range(spec.job_retries + 1):
            _say(progress, f"[{i}/{len(runs)}] arm {arm}, seed {seed}"
                           + (f" (attempt {attempt + 1})" if attempt else ""))
            try:
                run_job(str(folder), plan, arm, seed, progress)
                failures.pop((arm, seed), None)
                break
            except Exception as err:  # KeyboardInterrupt is not an Exception: it propagates
                failures[(arm, seed)] = one_line(err, last=True)
                _say(progress, f"arm {arm}, seed {seed} failed: {failures[(arm, seed)]}")
        on_done(arm, seed)
    return failures


# --- Ray ---
def _run_ray(spec, folder, plan, runs, progress, on_done):
    with RaySession(spec.ray_address, quiet=not progress) as session:
        ray = session.ray
        cpus, gpus = job_resources(plan)
        task = ray.remote(run_job).options(num_cpus=cpus, num_gpus=gpus,
                                           max_retries=spec.job_retries, retry_exceptions=True)
        plan_ref = ray.put(plan)
        pending, running, failures = list(runs), {}, {}
        try:
            while pending or running:
                while pending and len(running) < spec.max_parallel:
                    arm, seed = pending.pop(0)
                    running[task.remote(str(folder), plan_ref, arm, seed)] = (arm, seed)
                    _say(progress, f"[ray] started arm {arm}, seed {seed}")
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    arm, seed = running.pop(ref)
                    try:
                        out = ray.get(ref)
                        _say(progress, f"[ray] arm {arm}, seed {seed} done: best "
                                       f"{out['best']:.6g}")
                    except Exception as err:  # retries spent: RayTaskError, WorkerCrashedError
                        failures[(arm, seed)] = one_line(err, last=True)
                        _say(progress, f"[ray] arm {arm}, seed {seed} failed: "
                                       f"{failures[(arm, seed)]}")
                    on_done(arm, seed)
        except BaseException:  # Ctrl-C or a driver error: no job outlives the experiment
            for ref in running:
                ray.cancel(ref, force=True)
            raise
    return failures


# --- SLURM through submitit ---
POLL_S = {"slurm": 15.0, "local": 0.5}


def _run_slurm(spec, folder, plan, runs, progress, on_done):
    import submitit

    cpus, gpus = job_resources(plan)
    executor = submitit.AutoExecutor(folder=folder / "slurm" / "%j", cluster=spec.slurm_cluster)
    executor.update_parameters(
        name=f"harness-{folder.name}"[:64], timeout_min=spec.slurm_time_min,
        cpus_per_task=cpus, gpus_per_node=max(gpus, spec.slurm_gpus), nodes=1, tasks_per_node=1,
        **({"slurm_partition": spec.slurm_partition} if spec.slurm_partition else {}))
    pending = [(arm, seed, 0) for arm, seed in runs]
    running, failures = {}, {}
    try:
        while pending or running:
            while pending and len(running) < spec.max_parallel:
                arm, seed, attempt = pending.pop(0)
                job = executor.submit(run_job, str(folder), plan, arm, seed)
                running[job] = (arm, seed, attempt)
                _say(progress, f"[slurm] submitted arm {arm}, seed {seed} as job {job.job_id}")
            time.sleep(POLL_S.get(spec.slurm_cluster, 5.0))
            for job in [j for j in running if j.done()]:
                arm, seed, attempt = running.pop(job)
                try:
                    out = job.result()
                    failures.pop((arm, seed), None)
                    _say(progress, f"[slurm] arm {arm}, seed {seed} done: best "
                                   f"{out['best']:.6g}")
                except Exception as err:  # failed, timed out, node lost: from its checkpoint
                    failures[(arm, seed)] = one_line(err, last=True)
                    if attempt < spec.job_retries:
                        pending.append((arm, seed, attempt + 1))
                        _say(progress, f"[slurm] arm {arm}, seed {seed} failed "
                                       f"({failures[(arm, seed)]}); retrying")
                        continue
                on_done(arm, seed)
    except BaseException:
        for job in running:
            job.cancel(check=False)
        raise
    return failures
