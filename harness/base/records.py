"""What a run leaves on disk: tidy CSVs appended and flushed per step, and provenance.

The run folder is the unit of record. Rows are appended and flushed as soon as a step ends,
so a crash loses at most the step in flight; on resume, rows from steps after the last
checkpoint are dropped so that no row is duplicated. Reports read these files only.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
import sys
import time
from dataclasses import astuple, dataclass, field, fields
from importlib import metadata
from pathlib import Path


def _column(name: str):
    """A field whose CSV column name is not a Python name (it has a slash)."""
    return field(metadata={"column": name})


def columns(row_type) -> list[str]:
    """The CSV columns of a row dataclass: its fields, in order."""
    return [f.metadata.get("column", f.name) for f in fields(row_type)]


@dataclass(frozen=True)
class StepRow:
    """One line of steps.csv, written after every step; the fields are the columns."""
    arm: str
    seed: int
    step: int
    reward_max: float = _column("reward/max")
    reward_mean: float = _column("reward/mean")
    score_best: float | None = _column("score/best")            # the buffer's best raw score
    score_step_best: float | None = _column("score/step_best")  # this step's best valid one
    valid_frac: float
    beta_mean: float = _column("beta/mean")
    loss: float
    kl: float
    grad_norm: float
    tokens_generated: int = _column("tokens/generated")
    tokens_train: int = _column("tokens/train")
    time_select_s: float = _column("time/select_s")
    time_sample_s: float = _column("time/sample_s")
    time_eval_s: float = _column("time/eval_s")
    time_train_s: float = _column("time/train_s")
    time_step_s: float = _column("time/step_s")
    rollouts_per_s: float
    buffer_size: int = _column("buffer/size")
    prompts_shortened: int = _column("prompts/shortened")
    kl_base: float | None = field(default=None, metadata={"column": "kl/base"})  # kl_coef > 0

    def to_dict(self) -> dict:
        """column -> value (the progress line and the CSV read this)."""
        return dict(zip(STEP_COLUMNS, astuple(self), strict=True))


@dataclass(frozen=True)
class RolloutRow:
    """One line of rollouts.csv: one action, its score and its advantage."""
    arm: str
    seed: int
    step: int
    group: int
    parent_id: int
    child_id: int | None  # the buffer state it became, if kept
    raw_score: float | None
    reward: float
    valid: bool
    advantage: float
    message: str
    tokens: int
    finished: bool        # ended with EOS (not at the token cap)
    complete: bool        # held a complete answer (harness/env/answers.py)
    text: str

    def to_dict(self) -> dict:
        return dict(zip(ROLLOUT_COLUMNS, astuple(self), strict=True))


STEP_COLUMNS = columns(StepRow)
ROLLOUT_COLUMNS = columns(RolloutRow)
BUFFER_COLUMNS = ["arm", "seed", "id", "parent_id", "step", "raw_score", "reward", "visits",
                  "best_reachable"]  # "reward" was "value" before issue 20 (same place)


class CsvLog:
    """An append-only CSV with a fixed header; every write is flushed."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(columns)
        elif self._header() != columns:
            self._rewrite(self._rows())  # a folder from an older version: add the new columns

    def _header(self) -> list[str]:
        with self.path.open(newline="") as f:
            return next(csv.reader(f), [])

    def _rows(self) -> list[dict]:
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")  # old columns go
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)

    def append(self, rows: list) -> None:
        """Append row records (StepRow, RolloutRow) or dicts with exactly these columns."""
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writerows(r if isinstance(r, dict) else r.to_dict() for r in rows)
            f.flush()

    def drop_steps_from(self, step: int, arm: str, seed: int) -> None:
        """Remove this arm/seed's rows with step >= `step` (left over from a killed run)."""
        self._rewrite([r for r in self._rows() if not (
            r["arm"] == arm and r["seed"] == str(seed) and int(r["step"]) >= step)])


def write_buffer_csv(path: Path, buffer, arm: str, seed: int) -> None:
    """The final buffer of one arm/seed (rows of other arms/seeds in the file are kept)."""
    rows = []
    if path.exists():
        with path.open(newline="") as f:
            rows = [{("reward" if k == "value" else k): v for k, v in r.items()}
                    for r in csv.DictReader(f) if not (r["arm"] == arm and r["seed"] == str(seed))]
    rows += [{"arm": arm, "seed": seed, "id": s.id, "parent_id": s.parent_id, "step": s.step,
              "raw_score": s.raw_score, "reward": s.reward, "visits": s.visits,
              "best_reachable": s.best_reachable} for s in buffer.states.values()]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, BUFFER_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


# --- shards: each job of an experiment writes its own CSVs; the experiment merges them ---
SHARDED = {"steps.csv": STEP_COLUMNS, "rollouts.csv": ROLLOUT_COLUMNS,
           "buffer.csv": BUFFER_COLUMNS}


def shard_dir(folder: Path, arm: str, seed: int) -> Path:
    return Path(folder) / "data" / "shards" / f"{arm}-s{seed}"


@dataclass(frozen=True)
class RunPaths:
    """Where one run of the loop (an arm x seed) writes, made by its caller: `root` holds
    checkpoints/, adapter/ and best/ (per arm and seed), `data` the CSVs."""
    root: Path
    data: Path
    arm: str = "default"

    @classmethod
    def run_folder(cls, folder: Path) -> RunPaths:
        """A `harness discover` folder: one run, its CSVs in data/."""
        return cls(Path(folder), Path(folder) / "data")

    @classmethod
    def shard(cls, folder: Path, arm: str, seed: int) -> RunPaths:
        """One arm x seed job of an experiment folder: its CSVs in its own shard."""
        return cls(Path(folder), shard_dir(folder, arm, seed), arm)

    def checkpoint(self, seed: int) -> Path:
        return self.root / "checkpoints" / f"{self.arm}-s{seed}.pt"

    def adapter(self, seed: int) -> Path:
        return self.root / "adapter" / f"{self.arm}-s{seed}"


def merge_shards(folder: Path, runs: list[tuple[str, int]]) -> None:
    """data/<name>.csv = one header + the shard rows of each (arm, seed) in `runs` order.

    Shards are joined as text, so every number is byte for byte what its job wrote, whichever
    machine or process ran it. A folder without shards is left alone."""
    data = Path(folder) / "data"
    if not (data / "shards").is_dir():
        return
    for name, columns in SHARDED.items():
        header = io.StringIO()
        csv.writer(header).writerow(columns)
        parts = [header.getvalue()]
        for arm, seed in runs:
            path = shard_dir(folder, arm, seed) / name
            if path.exists():
                with path.open(newline="") as f:  # keep "\r\n" and newlines inside fields
                    parts.append(f.read().partition("\n")[2])  # the rows after the header
        tmp = data / f"{name}.tmp"
        with tmp.open("w", newline="") as f:
            f.write("".join(parts))
        tmp.replace(data / name)


def shard_legacy_data(folder: Path) -> None:
    """Split the tidy CSVs of a folder written before shards existed into per-run shards
    (once, atomically), so it resumes like any other."""
    data = Path(folder) / "data"
    if (data / "shards").exists() or not (data / "steps.csv").exists():
        return
    staging = data / "shards.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for name, columns in SHARDED.items():
        if not (data / name).exists():
            continue
        with (data / name).open(newline="") as f:
            runs: dict[tuple[str, str], list[dict]] = {}
            for row in csv.DictReader(f):
                runs.setdefault((row["arm"], row["seed"]), []).append(row)
        for (arm, seed), rows in runs.items():
            path = staging / f"{arm}-s{seed}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, columns)
                writer.writeheader()
                writer.writerows(rows)
    staging.mkdir(parents=True, exist_ok=True)
    staging.rename(data / "shards")


# --- provenance ---
LIBRARIES = ("torch", "transformers", "peft", "numpy", "pandas", "gguf", "harness")


def git_info(folder: Path) -> dict:
    """SHA, branch and the diff of a dirty tree for the repo holding `folder` (if any)."""
    try:
        import git

        repo = git.Repo(folder, search_parent_directories=True)
    except Exception:  # not a checkout (an installed wheel) or git missing: no provenance
        return {"sha": None, "branch": None, "dirty": None, "diff": "", "untracked": []}
    try:
        branch = repo.active_branch.name
    except TypeError:
        branch = None  # detached HEAD
    sha = repo.head.commit.hexsha if repo.head.is_valid() else None
    diff = repo.git.diff("HEAD") if sha else ""
    # new files are not in `git diff HEAD`: name them, so a dirty tree is fully described
    return {"sha": sha, "branch": branch, "dirty": repo.is_dirty(untracked_files=False),
            "diff": diff, "untracked": repo.untracked_files[:200]}


def provenance(device: str) -> dict:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    git = git_info(Path(__file__).resolve().parent)
    return {
        "git_sha": git["sha"], "git_branch": git["branch"], "git_dirty": git["dirty"],
        "git_untracked": git["untracked"],
        "python": sys.version.split()[0], "platform": platform.platform(),
        "versions": versions, "device": device, "command": sys.argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "_diff": git["diff"],
    }


def write_config(run_dir: Path, config: dict, device: str, extra: dict | None = None) -> None:
    """config.json (the config, resolved choices and provenance) and code.diff, before compute."""
    run_dir.mkdir(parents=True, exist_ok=True)
    prov = provenance(device)
    diff = prov.pop("_diff")
    if diff:
        (run_dir / "code.diff").write_text(diff + "\n")
    payload = {"config": config, **(extra or {}), "provenance": prov}
    (run_dir / "config.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
