"""The TTT-Discover loop: search with a policy that is trained on its own search, at test time.

Per step (paper Sec. 3): pick start states from the buffer -> build prompts -> sample a group of
actions per state -> evaluate them (sandboxed, in parallel) -> add the best children to the
buffer -> entropic advantages within each group -> one LoRA policy-gradient step -> one row.
Every ablation of the paper is a configuration of this one function (see `Config`).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.base import records
from harness.base.config import Config
from harness.base.errors import UserError
from harness.base.scores import best_of
from harness.env import Env, EvalResult, env_kwargs, make_env, resolve_action
from harness.loop.buffer import Buffer
from harness.loop.model import Policy, add_lora, default_device, load_policy
from harness.loop.objective import group_advantages
from harness.loop.progress import StepProgress
from harness.loop.prompts import fit_prompt
from harness.loop.sampling import Rollout, describe, sample
from harness.loop.train import make_optimizer, policy_gradient_step
from harness.sandbox.isolation import isolation, warn_if_visible
from harness.sandbox.pool import make_pool


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    best_raw_score: float
    best_solution: str
    steps_done: int
    action: str


def run_ttt(cfg: Config, paths: records.RunPaths, *, resume: bool = False,
            progress: bool = True, policy: Policy | None = None) -> RunResult:
    """Run (or resume) one configuration of the loop, writing where `paths` says.

    Several arms and seeds may share one folder: rows carry `arm` and `seed` columns, and the
    checkpoint, adapter and best candidate are per arm and seed. `resume` continues this
    arm/seed from its checkpoint (a finished one only re-writes its outputs). The caller
    writes config.json (see `discover`) and says where the CSVs go: `RunPaths.run_folder`
    for one run, `RunPaths.shard` for an experiment's job. `policy` may pass an already
    loaded base model (it gets fresh LoRA adapters here).
    """
    arm = paths.arm
    env = make_env(cfg.env, **env_kwargs(cfg))
    action = resolve_action(cfg, env)
    if action == "program":  # model-written code will run: say if it can read your files
        warn_if_visible()
    device = cfg.device or default_device()
    ckpt = paths.checkpoint(cfg.seed)
    seed_everything(cfg.seed)
    policy = policy or load_policy(cfg.model, device)
    add_lora(policy, cfg.lora_rank, cfg.lora_alpha)
    optimizer = make_optimizer(policy, cfg.learning_rate, (cfg.adam_beta1, cfg.adam_beta2),
                               cfg.adam_eps)
    buffer = Buffer(cfg.c_puct, cfg.topk_children, cfg.buffer_size, cfg.epsilon, cfg.seed,
                    cfg.puct_divisor, cfg.q_ancestors)
    steps_log = records.CsvLog(paths.data / "steps.csv", records.STEP_COLUMNS)
    rollouts_log = records.CsvLog(paths.data / "rollouts.csv", records.ROLLOUT_COLUMNS)
    start_step = load_checkpoint(ckpt, policy, optimizer, buffer) if resume else 0
    if start_step == 0:
        add_initial_states(env, action, buffer, cfg.groups_per_step)
    for log in (steps_log, rollouts_log):
        log.drop_steps_from(start_step, arm, cfg.seed)  # rows of a step that never checkpointed

    # an env that spreads its own work (cases) gets the pool kind; candidates go one by one
    inside = env.parallel_inside
    workers = 1 if inside else (cfg.eval_workers or None)  # no oversubscription
    with make_pool("local" if inside else cfg.eval_executor, workers) as pool, \
            StepProgress(cfg.steps, start_step, env, enabled=progress,
                         label=f"{env.name} {arm} s{cfg.seed}") as bar:
        for step in range(start_step, cfg.steps):
            t0 = time.perf_counter()
            # --- select start states ---
            starts = buffer.select(cfg.reuse, cfg.groups_per_step)
            redraw_initial_starts(env, action, buffer, starts)
            prompts, shortened = build_prompts(cfg, env, action, policy, starts)
            t_select = time.perf_counter()
            # --- sample ---
            rollouts = sample(policy, prompts, cfg.group_size, cfg.max_new_tokens,
                              cfg.temperature, env.answer_prefix(action),
                              batch_size=cfg.sample_batch_size, fast_sampler=cfg.fast_sampler,
                              reasoning=cfg.reasoning, answer_end=env.answer_end(action),
                              stop_at_answer=cfg.stop_at_answer, sample_dtype=cfg.sample_dtype)
            t_sample = time.perf_counter()
            # --- evaluate ---
            jobs = [(r.text, starts[r.group].construction) for r in rollouts]
            results = pool.map(lambda job: env.evaluate(job[0], action, job[1]), jobs)
            t_eval = time.perf_counter()
            # --- buffer update ---
            child_ids = update_buffer(buffer, starts, rollouts, results, step)
            # --- advantages ---
            advantages, betas = compute_advantages(cfg, rollouts, results)
            # --- policy update ---
            stats = {"loss": 0.0, "kl": 0.0, "grad_norm": 0.0, "tokens/train": 0}
            if cfg.updates_policy:
                stats = policy_gradient_step(policy, optimizer, rollouts, advantages,
                                             cfg.train_micro_batch, cfg.max_grad_norm,
                                             cfg.kl_coef)
            t_train = time.perf_counter()
            # --- record ---
            times = {"select": t_select - t0, "sample": t_sample - t_select,
                     "eval": t_eval - t_sample, "train": t_train - t_eval, "step": t_train - t0}
            row = step_row(cfg, arm, step, env, buffer, rollouts, results, betas, stats,
                           times, sum(shortened))
            steps_log.append([row])
            rollouts_log.append(rollout_rows(cfg, arm, step, starts, rollouts, results,
                                             advantages, child_ids))
            save_checkpoint(ckpt, step + 1, policy, optimizer, buffer)
            bar.update(step, row)

    best = buffer.best()
    save_outputs(paths, env, action, policy, buffer, cfg.seed)
    return RunResult(paths.root, best.raw_score, best.solution, cfg.steps, action)


# --- stages ---
def add_initial_states(env: Env, action: str, buffer: Buffer, n: int) -> None:
    """One initial state per group of a step, drawn from the buffer's seeded generator."""
    for result in env.initial_states(action, buffer.rng, n):
        if not result.valid:
            raise RuntimeError(f"{env.name}: initial state is invalid: {result.message}")
        buffer.add_initial(result.solution, result.raw_score, result.reward,
                           result.construction, result.stdout)


def redraw_initial_starts(env: Env, action: str, buffer: Buffer, starts) -> None:
    """Envs whose initial states are redrawn when picked (AC: a fresh constant sequence)
    get them here, in place, as the released sampler does."""
    if not env.redraws_initial:
        return
    for state in {s.id: s for s in starts if s.is_initial}.values():
        fresh = env.redraw_initial(action, buffer.rng)
        state.solution, state.construction = fresh.solution, fresh.construction
        state.raw_score, state.reward = fresh.raw_score, fresh.reward


def build_prompts(cfg: Config, env: Env, action: str, policy: Policy, starts
                  ) -> tuple[list[str], list[bool]]:
    """Each start state's prompt, fitted to `prompt_max_tokens` (see harness/loop/prompts.py)."""
    def count(text: str) -> int:
        return len(policy.tokenizer(text, add_special_tokens=False)["input_ids"])

    fitted = [fit_prompt(env, s, action, cfg.prompt_max_tokens, cfg.prompt_history, count)
              for s in starts]
    return [text for text, _ in fitted], [cut for _, cut in fitted]


def update_buffer(buffer: Buffer, starts, rollouts: list[Rollout], results: list[EvalResult],
                  step: int) -> list[int | None]:
    """Record every rollout under its start state as it was scored, then keep the top
    children per parent (harness/loop/buffer.py); returns the new state id per rollout."""
    child_ids = [buffer.record_rollout(starts[r.group].id, res.valid, res.solution,
                                       res.raw_score, res.reward, step, res.construction,
                                       res.stdout)
                 for r, res in zip(rollouts, results, strict=True)]
    buffer.end_step()
    return [cid if cid in buffer.states else None for cid in child_ids]


def compute_advantages(cfg: Config, rollouts: list[Rollout],
                       results: list[EvalResult]) -> tuple[list[float], list[float]]:
    """Advantages within each group under the configured objective; the beta of each group."""
    advantages = [0.0] * len(rollouts)
    betas = []
    for g in sorted({r.group for r in rollouts}):
        members = [i for i, r in enumerate(rollouts) if r.group == g]
        adv_G, beta = group_advantages([results[i].reward for i in members], cfg.objective,
                                       cfg.beta, cfg.kl_target)
        for i, a in zip(members, adv_G, strict=True):
            advantages[i] = float(a)
        betas.append(beta)
    return advantages, betas


def step_row(cfg: Config, arm: str, step: int, env: Env, buffer: Buffer,
             rollouts: list[Rollout], results: list[EvalResult], betas: list[float],
             stats: dict, times: dict, shortened: int) -> records.StepRow:
    """The step's line of steps.csv; `stats` from `policy_gradient_step`, `times` in s."""
    rewards = [r.reward for r in results]
    valid = [r for r in results if r.valid]
    return records.StepRow(
        arm=arm, seed=cfg.seed, step=step, reward_max=max(rewards),
        reward_mean=float(np.mean(rewards)), score_best=buffer.best().raw_score,
        score_step_best=best_of([r.raw_score for r in valid], env.direction),
        valid_frac=len(valid) / len(results), beta_mean=float(np.mean(betas)),
        loss=stats["loss"], kl=stats["kl"], grad_norm=stats["grad_norm"],
        tokens_generated=sum(r.num_tokens for r in rollouts),
        tokens_train=stats["tokens/train"], time_select_s=times["select"],
        time_sample_s=times["sample"], time_eval_s=times["eval"],
        time_train_s=times["train"], time_step_s=times["step"],
        rollouts_per_s=len(rollouts) / max(times["step"], 1e-9),
        buffer_size=len(buffer.states), prompts_shortened=shortened,
        kl_base=stats.get("kl/base"))


def rollout_rows(cfg: Config, arm: str, step: int, starts, rollouts: list[Rollout],
                 results: list[EvalResult], advantages: list[float],
                 child_ids: list[int | None]) -> list[records.RolloutRow]:
    return [records.RolloutRow(
        arm=arm, seed=cfg.seed, step=step, group=r.group, parent_id=starts[r.group].id,
        child_id=cid, raw_score=res.raw_score, reward=res.reward, valid=res.valid,
        advantage=adv, message=res.message, tokens=r.num_tokens, finished=r.finished,
        complete=r.complete, text=r.text)
        for r, res, adv, cid in zip(rollouts, results, advantages, child_ids, strict=True)]


# --- checkpoints and outputs ---
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lora_state(policy: Policy) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(policy.model).items()}


def save_checkpoint(path: Path, next_step: int, policy: Policy, optimizer, buffer) -> None:
    """Everything needed to continue after a kill, written atomically (tmp file + rename)."""
    payload = {"next_step": next_step, "lora": lora_state(policy),
               "optimizer": optimizer.state_dict(), "buffer": buffer.to_dict(),
               "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                       "python": random.getstate(),
                       "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                       else None}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, policy: Policy, optimizer, buffer) -> int:
    """Restore a checkpoint; returns the step to continue from (0 when there is none)."""
    from peft import set_peft_model_state_dict

    if not path.exists():
        return 0
    payload = torch.load(path, weights_only=False)  # our own file, written by save_checkpoint
    set_peft_model_state_dict(policy.model, payload["lora"])
    optimizer.load_state_dict(payload["optimizer"])
    buffer.load_dict(payload["buffer"])
    rng = payload["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return payload["next_step"]


def save_outputs(paths: records.RunPaths, env: Env, action: str, policy: Policy,
                 buffer: Buffer, seed: int) -> None:
    """Final buffer, the adapter, and the best candidate re-verified from scratch."""
    records.write_buffer_csv(paths.data / "buffer.csv", buffer, paths.arm, seed)
    policy.model.save_pretrained(paths.adapter(seed))
    best = buffer.best()
    parent = buffer.states.get(best.parent_id)  # a program ran with its parent's construction
    if best.solution or not best.construction:
        check = env.final_check(best.solution, action, parent.construction if parent else "")
    else:  # an empty start that nothing beat: its construction is what there is to check
        check = env.final_check(best.construction, "construction")
    folder = paths.root / "best"
    folder.mkdir(exist_ok=True)
    stem = f"{paths.arm}-s{seed}"
    if best.solution:  # an empty start that nothing beat leaves only its score.json
        suffix, text = env.export(best.solution, action)
        (folder / f"{stem}{suffix}").write_text(text)
    if action == "program" and best.construction:  # its construction stands alone too
        suffix, text = env.export(best.construction, "construction")
        (folder / f"{stem}{suffix}").write_text(text)
    (folder / f"{stem}.score.json").write_text(json.dumps({
        "env": env.name, "action": action, "direction": env.direction,
        "raw_score": best.raw_score, "reward": best.reward, "state_id": best.id,
        "reverified": {"valid": check.valid, "raw_score": check.raw_score,
                       "message": check.message, **check.artifacts}}, indent=2) + "\n")


def env_info(env: Env) -> dict:
    return {"name": env.name, "objective": env.objective, "direction": env.direction}


def discover(cfg: Config, run_dir: Path, resume: bool = False, progress: bool = True
             ) -> RunResult:
    """Entry point of `harness discover`: one configuration, one run folder.

    config.json (with provenance) is written before any compute; a resumed run keeps it.
    """
    run_dir = Path(run_dir)
    if resume and not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} has no config.json: not a run folder")
    if not resume:
        env = make_env(cfg.env)
        device = cfg.device or default_device()
        records.write_config(run_dir, cfg.to_dict(), device,
                             {"action": resolve_action(cfg, env), "arm": "default",
                              "env": env_info(env), "sandbox": isolation().describe(),
                              "sampling": describe(cfg.fast_sampler, cfg.sample_dtype, device)})
    return run_ttt(cfg, records.RunPaths.run_folder(run_dir), resume=resume, progress=progress)

