"""The prompt of one start state, fitted to the prompt's token budget (issue 17, fact 6).

The env renders the prompt from the state: statement, parent (program or construction), its
score and its ancestors' scores, the best known value and a program's stdout tail. A prompt
over `prompt_max_tokens` is never cut from the left (the statement must survive): the shown
parent is shortened in its middle, with a visible marker, until the prompt fits, and the
step records how many prompts were shortened (`prompts/shortened` in steps.csv).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.env import Env
from harness.loop.buffer import State

MAX_SHRINKS = 8  # re-renders while shortening; each one aims at the measured excess


def render(env: Env, state: State, action: str, history_len: int,
           shown_chars: int | None = None) -> str:
    return env.prompt(state.solution, state.raw_score, action, construction=state.construction,
                      history=state.history[:history_len], stdout=state.stdout,
                      shown_chars=shown_chars)


def fit_prompt(env: Env, state: State, action: str, max_tokens: int, history_len: int,
               count_tokens: Callable[[str], int]) -> tuple[str, bool]:
    """(prompt text, whether the shown parent was shortened to fit `max_tokens`)."""
    text = render(env, state, action, history_len)
    tokens = count_tokens(text)
    if tokens <= max_tokens:
        return text, False
    chars = len(env.shown_solution(state.solution, action))
    for _ in range(MAX_SHRINKS):
        chars_per_token = len(text) / max(tokens, 1)
        chars = max(0, int(chars - (tokens - max_tokens) * chars_per_token) - 32)
        text = render(env, state, action, history_len, shown_chars=chars)
        tokens = count_tokens(text)
        if tokens <= max_tokens or chars == 0:
            break
    return text, True
