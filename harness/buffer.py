"""The state buffer and start-state selection (PUCT and the paper's ablations).

A state is a candidate solution the search may start from. Each step picks start states,
samples a group of actions from each, and adds the best children back. PUCT (paper Sec. 3.3)
scores a state by Q, the best reward ever reached from it (not the mean: we want one great
solution), plus an exploration bonus from a rank prior and visit counts.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass


@dataclass
class State:
    id: int
    parent_id: int | None
    solution: str          # program source or construction text, exactly what the env scores
    raw_score: float
    reward: float          # R(i): the transformed score
    step: int = 0          # the step that created it (-1 for initial states)
    visits: int = 0        # n_i: rollouts started here or from a descendant
    best_reachable: float | None = None  # m_i: best reward reached from here (None: never expanded)

    @property
    def is_initial(self) -> bool:
        return self.parent_id is None


def puct_score(q: float, prior: float, n: float, T: float, G: float, scale: float,
               c: float = 1.0) -> float:
    """PUCT score (paper Sec. 3.3): Q(i) + c * scale * P(i) * sqrt(1 + T/G) / (1 + n_i/G).

    q: best reward reached from the state (its own reward if never expanded); prior: rank
    prior P(i); n: visits of the state; T: total expansions; G: group size; scale: reward
    range of the non-initial states, so that c is unit-free.
    """
    return q + c * scale * prior * math.sqrt(1.0 + T / G) / (1.0 + n / G)


def rank_prior(values: list[float]) -> list[float]:
    """Rank 0 (best) weighs N, the last weighs 1, normalised to sum 1. Ties keep input order."""
    n = len(values)
    order = sorted(range(n), key=lambda i: -values[i])
    weights = [0.0] * n
    for rank, i in enumerate(order):
        weights[i] = float(n - rank)
    total = sum(weights)
    return [w / total for w in weights]


class Buffer:
    """All states the search may reuse, with the statistics PUCT needs."""

    def __init__(self, group_size: int, c_puct: float = 1.0, topk_children: int = 2,
                 max_size: int = 1000, epsilon: float = 0.1, seed: int = 0):
        self.states: dict[int, State] = {}
        self.group_size = group_size
        self.c_puct = c_puct
        self.topk_children = topk_children
        self.max_size = max_size
        self.epsilon = epsilon
        self.total_expansions = 0  # T
        self.next_id = 0
        self.rng = random.Random(seed)

    # --- adding ---
    def add_initial(self, solution: str, raw_score: float, reward: float) -> State:
        return self._add(None, solution, raw_score, reward, step=-1)

    def _add(self, parent_id, solution, raw_score, reward, step) -> State:
        state = State(self.next_id, parent_id, solution, raw_score, reward, step)
        self.states[state.id] = state
        self.next_id += 1
        return state

    def ancestors(self, state_id: int) -> list[int]:
        out, parent = [], self.states[state_id].parent_id
        while parent is not None and parent in self.states:
            out.append(parent)
            parent = self.states[parent].parent_id
        return out

    def record_group(self, parent_id: int, children: list[tuple[str, float, float, bool]],
                     step: int) -> list[int | None]:
        """Record one group's children (solution, raw_score, reward, valid) sampled from parent.

        Visits and best-reachable rewards go to the parent and its ancestors; the best
        `topk_children` valid children that are not duplicates of an existing state join the
        buffer. Returns the new state id per child (None for children not kept).
        """
        rewards = [r for _, _, r, _ in children]
        best = max(rewards) if rewards else 0.0
        self.total_expansions += len(children)
        for sid in [parent_id, *self.ancestors(parent_id)]:
            s = self.states[sid]
            s.visits += len(children)
            s.best_reachable = best if s.best_reachable is None else max(s.best_reachable, best)
        known = {s.solution for s in self.states.values()}
        order = sorted(range(len(children)), key=lambda i: -children[i][2])
        ids: list[int | None] = [None] * len(children)
        kept = 0
        for i in order:
            solution, raw, reward, valid = children[i]
            if kept >= self.topk_children or not valid or solution in known:
                continue
            ids[i] = self._add(parent_id, solution, raw, reward, step).id
            known.add(solution)
            kept += 1
        return ids

    def trim(self) -> None:
        """Cap the buffer by value, always keeping the initial states."""
        extra = len(self.states) - self.max_size
        if extra <= 0:
            return
        removable = sorted((s for s in self.states.values() if not s.is_initial),
                           key=lambda s: (s.reward, s.id))
        for s in removable[:extra]:
            del self.states[s.id]

    # --- selection ---
    def best(self) -> State:
        return max(self.states.values(), key=lambda s: (s.reward, -s.id))

    def puct_scores(self) -> dict[int, float]:
        states = list(self.states.values())
        prior = rank_prior([s.reward for s in states])
        grown = [s.reward for s in states if not s.is_initial]
        scale = max(max(grown) - min(grown), 1e-6) if grown else 1e-6
        out = {}
        for s, p in zip(states, prior, strict=True):
            q = s.best_reachable if s.visits > 0 and s.best_reachable is not None else s.reward
            out[s.id] = puct_score(q, p, s.visits, self.total_expansions, self.group_size,
                                   scale, self.c_puct)
        return out

    def select(self, sampler: str, n: int) -> list[State]:
        """Pick `n` start states with the given strategy (puct, eps_greedy, greedy, none)."""
        if sampler == "none":
            initial = [s for s in self.states.values() if s.is_initial]
            return [initial[i % len(initial)] for i in range(n)]
        if sampler == "puct":
            scores = self.puct_scores()
            ranked = sorted(self.states.values(), key=lambda s: (-scores[s.id], -s.reward, s.id))
            return self._spread(ranked, n)
        ranked = sorted(self.states.values(), key=lambda s: (-s.reward, s.id))
        if sampler == "greedy":
            return self._spread(ranked, n)
        if sampler == "eps_greedy":
            picks = []
            for i in range(n):
                explore = self.rng.random() < self.epsilon
                picks.append(self.rng.choice(ranked) if explore else ranked[i % len(ranked)])
            return picks
        raise ValueError(f"unknown sampler {sampler!r}")

    def _spread(self, ranked: list[State], n: int) -> list[State]:
        """Take the best-ranked states, skipping the lineage of states already picked.

        When the buffer has fewer unrelated states than groups, the ranking repeats.
        """
        picked: list[State] = []
        blocked: set[int] = set()
        for s in ranked:
            if len(picked) == n:
                break
            if s.id in blocked:
                continue
            picked.append(s)
            blocked |= {s.id, *self.ancestors(s.id)}
            blocked |= {d.id for d in self.states.values() if s.id in self.ancestors(d.id)}
        distinct = len(picked)
        return picked + [picked[i % distinct] for i in range(n - distinct)]

    # --- persistence ---
    def to_dict(self) -> dict:
        return {"states": [asdict(s) for s in self.states.values()],
                "total_expansions": self.total_expansions, "next_id": self.next_id,
                "rng": self.rng.getstate()}

    def load_dict(self, data: dict) -> None:
        self.states = {d["id"]: State(**d) for d in data["states"]}
        self.total_expansions = data["total_expansions"]
        self.next_id = data["next_id"]
        rng_state = data["rng"]
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
