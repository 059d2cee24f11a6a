"""The state buffer and start-state selection (PUCT and the paper's ablations).

A state is a candidate solution the search may start from. Each step picks start states,
samples a group of actions from each, and every rollout is recorded here as it is scored.
PUCT (paper Sec. 3.3) scores a state by Q, the best reward among its valid children (not the
mean: we want one great solution), plus an exploration bonus from a rank prior and visits.

The bookkeeping follows the released code (test-time-training/discover,
`recipes/ttt/sampler.py`, `PUCTSampler`), fact by fact (issue 17, docs/FAITHFULNESS.md):
1. visits count rollouts: each rollout from a parent adds 1 to n of the parent and of each of
   its recorded ancestors, and 1 to T; a failed (invalid) rollout does this and nothing else;
2. m, behind Q, is updated for the direct parent only, as the best reward of its *valid*
   children; a visited state without a valid child keeps Q = R, its own reward;
3. score = Q + c * scale * P * sqrt(1 + T/G) / (1 + n/G) with G = 1 (`puct_divisor`);
4. every valid child that duplicates no state joins when scored; at the end of each step only
   the top-k children of each parent across the whole buffer stay, then the buffer is capped
   by value, always keeping the initial states.
Two project variants are named knobs, off by default: `puct_divisor` = group size (visits and
T counted in groups) and `q_ancestors` (a child's reward raises m of every recorded ancestor).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field


@dataclass
class State:
    id: int
    parent_id: int | None
    solution: str          # program source or construction text, exactly what the env scores
    raw_score: float | None  # None: an empty start that has no value yet (reward 0)
    reward: float          # R(i): the transformed score
    step: int = 0          # the step that created it (-1 for initial states)
    construction: str = ""   # the construction (a program's returned value); "" if none
    stdout: str = ""         # the tail of the program's standard output
    lineage: list[int] = field(default_factory=list)  # recorded ancestors, parent first
    history: list[float | None] = field(default_factory=list)  # their raw scores, parent first
    visits: int = 0        # n_i: rollouts started here or from a descendant
    best_reachable: float | None = None  # m_i: best reward of a valid child (None: none yet)

    @property
    def is_initial(self) -> bool:
        return self.parent_id is None

    @property
    def key(self) -> str:
        """What makes two states duplicates: the construction, else the solution."""
        return self.construction or self.solution


def puct_score(q: float, prior: float, n: float, T: float, G: float, scale: float,
               c: float = 1.0) -> float:
    """PUCT score (paper Sec. 3.3): Q(i) + c * scale * P(i) * sqrt(1 + T/G) / (1 + n_i/G).

    q: Q(i); prior: rank prior P(i); n: rollouts from the state or its descendants; T: all
    rollouts; G: the divisor (1 in the released code); scale: reward range of the non-initial
    states, so that c is unit-free.
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

    def __init__(self, c_puct: float = 1.0, topk_children: int = 2, max_size: int = 1000,
                 epsilon: float = 0.1, seed: int = 0, puct_divisor: int = 1,
                 q_ancestors: bool = False):
        self.states: dict[int, State] = {}
        self.c_puct = c_puct
        self.topk_children = topk_children
        self.max_size = max_size
        self.epsilon = epsilon
        self.puct_divisor = puct_divisor
        self.q_ancestors = q_ancestors
        self.total_expansions = 0  # T, in rollouts
        self.next_id = 0
        self.rng = random.Random(seed)  # eps-greedy picks and redrawn initial states
        self._keys: set[str] = set()

    # --- adding ---
    def add_initial(self, solution: str, raw_score: float | None, reward: float,
                    construction: str = "", stdout: str = "") -> State:
        return self._add(State(self.next_id, None, solution, raw_score, reward, -1,
                               construction, stdout))

    def _add(self, state: State) -> State:
        self.states[state.id] = state
        self._keys.add(state.key)
        self.next_id = max(self.next_id, state.id + 1)
        return state

    def child(self, parent_id: int, solution: str, raw_score: float | None, reward: float,
              step: int, construction: str = "", stdout: str = "") -> State:
        """A new state under `parent_id`, with the parent's lineage and score history."""
        parent = self.states[parent_id]
        return State(self.next_id, parent_id, solution, raw_score, reward, step, construction,
                     stdout, [parent_id, *parent.lineage], [parent.raw_score, *parent.history])

    def record_rollout(self, parent_id: int, valid: bool, solution: str,
                       raw_score: float | None, reward: float, step: int,
                       construction: str = "", stdout: str = "") -> int | None:
        """Record one scored rollout from `parent_id` (facts 1, 2, 4); returns the id of the
        new state, or None when the child is invalid or duplicates a state."""
        parent = self.states[parent_id]
        for sid in (parent_id, *parent.lineage):
            if sid in self.states:
                self.states[sid].visits += 1
        self.total_expansions += 1
        if not valid:
            return None
        for sid in (parent_id, *parent.lineage) if self.q_ancestors else (parent_id,):
            if sid in self.states:
                s = self.states[sid]
                s.best_reachable = reward if s.best_reachable is None \
                    else max(s.best_reachable, reward)
        state = self.child(parent_id, solution, raw_score, reward, step, construction, stdout)
        if state.key in self._keys:
            return None
        return self._add(state).id

    def end_step(self) -> None:
        """Keep the top-k children of each parent across the whole buffer, then cap the
        buffer by value, always keeping the initial states (fact 4)."""
        by_parent: dict[int, list[State]] = {}
        for s in self.states.values():
            if not s.is_initial:
                by_parent.setdefault(s.parent_id, []).append(s)
        for children in by_parent.values():
            children.sort(key=lambda s: (-s.reward, s.id))
            for s in children[self.topk_children:]:
                del self.states[s.id]
        extra = len(self.states) - self.max_size
        if extra > 0:
            removable = sorted((s for s in self.states.values() if not s.is_initial),
                               key=lambda s: (s.reward, -s.id))
            for s in removable[:extra]:
                del self.states[s.id]
        self._keys = {s.key for s in self.states.values()}

    # --- selection ---
    def best(self) -> State:
        """The best state; a scored one wins over an empty start of equal reward."""
        return max(self.states.values(),
                   key=lambda s: (s.reward, s.raw_score is not None, -s.id))

    def q_value(self, s: State) -> float:
        return s.best_reachable if s.visits > 0 and s.best_reachable is not None else s.reward

    def puct_scores(self) -> dict[int, float]:
        states = list(self.states.values())
        prior = rank_prior([s.reward for s in states])
        # the released code's scale: the reward range of the non-initial states (of all
        # states while there are none), at least 1e-6
        grown = [s.reward for s in states if not s.is_initial] or [s.reward for s in states]
        scale = max(max(grown) - min(grown), 1e-6)
        return {s.id: puct_score(self.q_value(s), p, s.visits, self.total_expansions,
                                 self.puct_divisor, scale, self.c_puct)
                for s, p in zip(states, prior, strict=True)}

    def select(self, rule: str, n: int) -> list[State]:
        """Pick `n` start states with the given strategy (puct, eps_greedy, greedy, none)."""
        if rule == "none":
            initial = [s for s in self.states.values() if s.is_initial]
            return [initial[i % len(initial)] for i in range(n)]
        if rule == "puct":
            scores = self.puct_scores()
            ranked = sorted(self.states.values(), key=lambda s: (-scores[s.id], -s.reward, s.id))
            return self._spread(ranked, n)
        ranked = sorted(self.states.values(), key=lambda s: (-s.reward, s.id))
        if rule == "greedy":
            return self._spread(ranked, n)
        if rule == "eps_greedy":
            picks = []
            for i in range(n):
                explore = self.rng.random() < self.epsilon
                picks.append(self.rng.choice(ranked) if explore else ranked[i % len(ranked)])
            return picks
        raise ValueError(f"unknown reuse rule {rule!r}")

    def _spread(self, ranked: list[State], n: int) -> list[State]:
        """Take the best-ranked states, skipping the lineage (recorded ancestors and
        descendants) of states already picked. When the buffer has fewer unrelated states
        than groups, the picks repeat."""
        picked: list[State] = []
        blocked: set[int] = set()
        for s in ranked:
            if len(picked) == n:
                break
            if s.id in blocked:
                continue
            picked.append(s)
            blocked |= {s.id, *s.lineage}
            blocked |= {d.id for d in self.states.values() if s.id in d.lineage}
        distinct = len(picked)
        return picked + [picked[i % distinct] for i in range(n - distinct)]

    # --- persistence ---
    def to_dict(self) -> dict:
        return {"states": [asdict(s) for s in self.states.values()],
                "total_expansions": self.total_expansions, "next_id": self.next_id,
                "rng": self.rng.getstate()}

    def load_dict(self, data: dict) -> None:
        self.states = {d["id"]: State(**d) for d in data["states"]}
        self._keys = {s.key for s in self.states.values()}
        self.total_expansions = data["total_expansions"]
        self.next_id = data["next_id"]
        rng_state = data["rng"]
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
