"""The reviewer: reads a finished experiment (report and CSVs) and proposes the next one.

Two reviewers write the same proposal (proposal.py: schema, search space, validation): the
offline one (offline_reviewer.py: rules over the numbers, no key, no network) and Claude (the
official SDK; a forced `submit_proposal` tool call validated against the schema, one repair
turn with the reason, then the offline reviewer as a fallback, which is recorded). Backoff on
429/529 is the SDK's own (exponential, honouring retry-after), `max_retries` times. Tokens
and dollars (list prices) are recorded with the review.

    review = review_experiment(read_result(folder), history, reviewer="auto")
    write_review(folder, review)     # review.json (proposal + plan + usage) and review.md
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.base.config import BUDGETS
from harness.base.errors import one_line
from harness.base.resources import templates
from harness.base.scores import better, fmt
from harness.env import env_class
from harness.lab.findings import ledger_text
from harness.lab.folders import reports_root_of
from harness.lab.offline_reviewer import offline_proposal
from harness.lab.plan import Arm, Plan, PlanError
from harness.lab.planner import claude_model, reply_json
from harness.lab.proposal import (
    BUDGET_ORDER,
    MAX_SEEDS,
    PROPOSAL_SCHEMA,
    SEARCH_SPACE,
    Proposal,
    ProposalError,
    Result,
    Scope,
    make_scope,
    validate_proposal,
)

# --- the review: either reviewer, then review.json and review.md ---
PRICES_PER_MTOK = {"claude-opus": (5.0, 25.0), "claude-sonnet": (3.0, 15.0),
                   "claude-haiku": (1.0, 5.0)}  # list prices, USD per million tokens (in, out)


@dataclass
class Usage:
    """Reviewer tokens and dollars (list prices; unknown models priced as Sonnet)."""
    model: str = ""
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, usage) -> None:
        self.calls += 1
        self.tokens_in += int(getattr(usage, "input_tokens", 0) or 0)
        self.tokens_out += int(getattr(usage, "output_tokens", 0) or 0)

    @property
    def cost_usd(self) -> float:
        price = next((p for prefix, p in PRICES_PER_MTOK.items()
                      if self.model.startswith(prefix)), PRICES_PER_MTOK["claude-sonnet"])
        return (self.tokens_in * price[0] + self.tokens_out * price[1]) / 1e6

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "cost_usd": round(self.cost_usd, 6)}


@dataclass(frozen=True)
class Review:
    reviewed: str              # the experiment folder's name
    reviewer: str              # "offline", "claude (<model>)" or "offline (claude fallback: ...)"
    proposal: Proposal
    plan: dict | None          # the next experiment's plan.json, validated
    usage: dict = field(default_factory=dict)
    rejected: tuple[str, ...] = ()  # reasons for rejected answers
    created: str = ""

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "proposal": self.proposal.to_dict(),
                "rejected": list(self.rejected)}


def review_experiment(current: Result, history: list[Result], *, reviewer: str = "auto",
                      budget: str | None = None, memory: str = "", question: str = "",
                      max_retries: int = 2, track: tuple[int, int] = (1, 1)) -> Review:
    """Propose the next experiment after `current` (history: the sweep's earlier ones).

    reviewer: 'claude', 'offline', or 'auto' (Claude when ANTHROPIC_API_KEY is set). Claude's
    answer is validated; an invalid one gets one repair turn with the reason, and a second
    invalid answer or an API error (after the SDK's own backoff on 429/529) falls back to the
    offline reviewer, which says so in `reviewer`. `track` (k, K): the sweep is track k of K
    parallel tracks of its question (tracks.py); track k > 1 is steered off the obvious
    proposal (the offline reviewer takes its k-th direction, Claude is told)."""
    scope = make_scope(current, history, budget)
    usage, rejected = Usage(), []
    use_claude = reviewer == "claude" or (reviewer == "auto"
                                          and os.environ.get("ANTHROPIC_API_KEY"))
    name, found = "offline", None
    if use_claude:
        import anthropic

        usage.model = claude_model()
        try:
            found = claude_proposal(current, history, scope, memory, question or
                                    current.plan["request"], usage, rejected, max_retries,
                                    track)
            name = f"claude ({usage.model})"
        except (ProposalError, anthropic.APIError) as err:
            name = f"offline (claude fallback: {one_line(err)})"
    if found is None:
        found = validate_proposal(offline_proposal(current, history, scope, track), scope)
    proposal, plan = found
    if plan is not None:
        plan = dataclasses.replace(plan, planner=f"reviewer {name} after {current.folder.name}")
    return Review(current.folder.name, name, proposal, plan.to_dict() if plan else None,
                  usage.to_dict() if usage.calls else {}, tuple(rejected),
                  time.strftime("%Y-%m-%d %H:%M:%S"))


# --- the Claude reviewer ---
PROPOSAL_TOOL = {"name": "submit_proposal", "input_schema": PROPOSAL_SCHEMA,
                 "description": "Submit the next experiment (or stop: true)."}


def claude_proposal(current: Result, history: list[Result], scope: Scope, memory: str,
                    question: str, usage: Usage, rejected: list[str], max_retries: int,
                    track: tuple[int, int] = (1, 1)) -> tuple[Proposal, Plan | None]:
    """Ask Claude (a forced `submit_proposal` call); one repair turn on an invalid answer."""
    import anthropic

    client = anthropic.Anthropic(max_retries=max_retries, timeout=120.0)
    messages = [{"role": "user", "content": render_prompt(current, history, scope, memory,
                                                          question, track)}]
    for _ in range(2):
        message = client.messages.create(
            model=usage.model, max_tokens=2048, tools=[PROPOSAL_TOOL], messages=messages,
            tool_choice={"type": "tool", "name": PROPOSAL_TOOL["name"]})
        usage.add(message.usage)
        try:
            return validate_proposal(reply_json(message), scope)
        except PlanError as err:
            rejected.append(str(err))
            messages += repair_turn(message, str(err))
    raise ProposalError(f"invalid proposal twice ({rejected[-1]})")


def repair_turn(message, reason: str) -> list[dict]:
    """The rejected answer and the reason, as the next turns of the conversation."""
    content, calls = [], []
    for block in message.content:
        if block.type == "tool_use":
            content.append({"type": "tool_use", "id": block.id, "name": block.name,
                            "input": block.input})
            calls.append(block.id)
        elif block.type == "text" and block.text:
            content.append({"type": "text", "text": block.text})
    note = f"Invalid proposal: {reason}. Call submit_proposal again with a corrected one."
    reply = ([{"type": "tool_result", "tool_use_id": i, "is_error": True, "content": note}
              for i in calls] or [{"type": "text", "text": note}])
    return [{"role": "assistant", "content": content or [{"type": "text", "text": "(empty)"}]},
            {"role": "user", "content": reply}]


def render_prompt(current: Result, history: list[Result], scope: Scope, memory: str,
                  question: str, track: tuple[int, int] = (1, 1)) -> str:
    """The review prompt: the researcher's open comments and the env's findings ledger come
    before the numbers, so that they frame the reading."""
    cls = env_class(scope.env)
    ledger = ledger_text(reports_root_of(current.folder), scope.env)
    return templates().get_template("review_prompt.md.j2").render(
        question=question, env=cls, better=better(cls.direction),
        scope=scope, current=current, rows=current.summary.to_dict("records"),
        report=current.report[:8000], memory=memory or "(this is the first experiment)",
        space=SEARCH_SPACE, budgets=BUDGETS, max_seeds=MAX_SEEDS,
        allowed=BUDGET_ORDER[:BUDGET_ORDER.index(scope.budget) + 1], fmt=fmt,
        comments=scope.comments, ledger=ledger or "(no findings on this env yet)",
        track=track[0], tracks=track[1])


# --- review.json and review.md ---
def write_review(folder: Path, review: Review) -> Path:
    """review.json (written atomically) and review.md in the experiment folder; returns .md."""
    folder = Path(folder)
    tmp = folder / "review.json.tmp"
    tmp.write_text(json.dumps({**review.to_dict(), "inputs": review_inputs(folder)},
                              indent=2) + "\n")
    os.replace(tmp, folder / "review.json")
    path = folder / "review.md"
    path.write_text(templates().get_template("review.md.j2").render(
        review=review, p=review.proposal, fmt=fmt))
    return path


REVIEW_INPUTS = ("plan.json", "data/summary.csv", "comments.md")


def review_inputs(folder: Path) -> str:
    """A fingerprint of what a review reads: when it changes (a new comment, more results),
    the stored review is stale and is redone."""
    digest = hashlib.sha256()
    for name in REVIEW_INPUTS:
        path = Path(folder) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def review_is_current(folder: Path) -> bool:
    path = Path(folder) / "review.json"
    return path.exists() and json.loads(path.read_text()).get("inputs") == review_inputs(folder)


def load_review(folder: Path) -> Review:
    data = json.loads((Path(folder) / "review.json").read_text())
    data.pop("inputs", None)
    p = data["proposal"]
    proposal = Proposal(**{**p, "arms": tuple(Arm(**a) for a in p["arms"]),
                           "evidence": tuple(p["evidence"])})
    proposal = dataclasses.replace(proposal, comment_responses=tuple(
        p.get("comment_responses", [])))
    return Review(**{**data, "proposal": proposal, "rejected": tuple(data["rejected"])})
