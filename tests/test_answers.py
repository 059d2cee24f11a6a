"""Actions end where their answer ends (issue 19): the rules, every backend, and training."""

import pytest
import torch

from harness.env import answers, make_env
from harness.env.answers import AnswerEnd, AnswerWatch
from harness.loop.model import add_lora, load_policy
from harness.loop.sampling import _rollouts, sample
from harness.loop.train import action_logprobs, make_optimizer, policy_gradient_step


def test_a_list_ends_at_the_bracket_that_closes_a_list_long_enough():
    assert answers.LIST.find("[1, 2, 3]\n\nHere is why") == len("[1, 2, 3]")
    assert answers.LIST.find("[[1, 2], [3]] more") == len("[[1, 2], [3]]")
    assert answers.LIST.find("[1, 2, 3") is None
    assert answers.LIST.find("] no list yet [x]") is None
    four = answers.list_end(4)
    text = "[11]\nNow a better one: [0.5, 0.4, 0.3, 0.2] and more"
    assert four.find(text) == text.index(" and more")  # [11] is too short to be the answer
    assert four.find("[11] then [1, 2]") is None


def test_a_list_also_ends_where_its_run_of_numbers_breaks_off():
    four = answers.run_end(4)
    text = "[0.5, 0.4, 0.3, 0.2\n\nThis list is good"
    assert four.find(text) == text.index("This")
    for going_on in ("[0.5, 0.4, 0.3, 0.2", "[0.5, 0.4, 0.3, 0.2,\n", "[0.5, 0.4, 0.3, 0.2 -",
                     "[0.5, 0.4, 0.3, 2e", "[0.5, 0.4, 0.3, 2e-", "[0.5, 0.4, 0.3, 0.2, ."):
        assert four.find(going_on) is None, going_on  # the next number may still come
    text = "[4/4, 7.2, 5.5, 16.9, 8.0 underline"  # "4" alone is too short to be the answer
    assert four.find(text) == text.index("underline")
    assert four.find("Here are 24 values: [1, 2, 3, x") is None  # only after the bracket
    assert answers.run_end(1).find("[4/4") == len("[4")


def test_the_earliest_of_two_rules_ends_the_answer_as_a_stream_would_see_it():
    rule = answers.numbers_answer(4)
    assert rule.triggers == ""  # a break can come with any token
    assert rule.find("[0.5, 0.4, 0.3, 0.2] and more") == len("[0.5, 0.4, 0.3, 0.2]")
    assert rule.find("[11] and more") == len("[11]")  # closed: the answer, if invalid
    assert rule.find("[0.5, 0.4, 0.3 and more") is None
    pieces = ["0.5", ", 0.4", ", 0.3", ", 0.2", "\n\n", "This", " list"]
    watch = AnswerWatch(rule, pieces.__getitem__, "[", 1, eos_id=99)
    for t in range(len(pieces)):
        watch.feed(t, [0], [t])
    assert watch.ends == [pieces.index("This")]  # kept, like the token after a circle's last
    assert watch.stopped(0, pieces.index("This") + 1)


def test_a_program_ends_at_the_fence_that_closes_its_code_block():
    text = "Here:\n```python\ndef run(seed, budget_s):\n    return [1]\n```\nIt works because"
    assert answers.CODE_BLOCK.find(text) == text.index("It works") - 1
    assert answers.CODE_BLOCK.find("```python\ndef run():\n    pass\n") is None
    assert answers.CODE_BLOCK.find("inline ``` is not a block") is None


def test_lines_and_counted_numbers():
    assert answers.FIRST_LINE.find("\n\n  hello world\nmore") == len("\n\n  hello world")
    assert answers.FIRST_LINE.find("\n\nhello") is None
    six = answers.numbers_end(6)
    assert six.find("0.1 0.2 0.3\n0.4 0.5 0.6\n0.7") == len("0.1 0.2 0.3\n0.4 0.5 0.6")
    assert six.find("0.1 0.2 0.3\n0.4 0.5 0.6") is None  # the last number may go on


def test_each_env_says_where_its_answers_end():
    erdos = make_env("erdos").answer_end("construction")
    assert erdos.find("[0.5, 0.4, 0.3, 0.2] and") == len("[0.5, 0.4, 0.3, 0.2]")
    assert erdos.find("[0.5, 0.4, 0.3, 0.2 and") == len("[0.5, 0.4, 0.3, 0.2 ")
    assert erdos.find("[0.5, 0.4, 0.3 and") is None  # three numbers: too few for Erdős
    assert make_env("erdos").answer_end("program") is answers.CODE_BLOCK
    assert make_env("toy").answer_end("construction") is answers.FIRST_LINE
    circles = make_env("cp26").answer_end("construction")
    assert circles.find(" ".join(["0.5"] * 78) + "\n") is not None
    assert circles.find(" ".join(["0.5"] * 77) + "\n") is None


@pytest.fixture(scope="module")
def policy(one_torch_thread):
    policy = load_policy("tiny", "cpu")
    add_lora(policy, 4)
    return policy


TEN_CHARS = AnswerEnd(lambda text: 10 if len(text) >= 10 else None, "")  # every token


@pytest.mark.parametrize("setting", ["off", "on", "shared"])
def test_every_backend_ends_each_row_with_eos_right_after_its_answer(policy, setting):
    """Rows stop on their own; the appended EOS carries the sampler's own log-prob of EOS
    there, so sampler and learner agree on every kept token, the end token included."""
    tok, eos = policy.tokenizer, policy.tokenizer.eos_token_id
    torch.manual_seed(0)
    rollouts = sample(policy, ["hello there", "a longer prompt, with more words"], 4, 40,
                      answer_prefix="[", fast_sampler=setting, answer_end=TEN_CHARS,
                      stop_at_answer=True, sample_dtype="model")
    for r in rollouts:
        assert r.finished and r.complete and r.action_ids[-1] == eos
        answer = r.action_ids[:-1]
        assert len("[" + tok.decode(answer)) >= 10 > len("[" + tok.decode(answer[:-1]))
    assert len({r.num_tokens for r in rollouts}) > 1  # each row stopped where it ended
    learner = action_logprobs(policy, rollouts)
    for r, logp_T in zip(rollouts, learner, strict=True):
        assert torch.allclose(logp_T, torch.tensor(r.logprobs), atol=1e-4)


def test_without_stopping_rows_run_to_the_cap_and_completeness_is_still_recorded(policy):
    torch.manual_seed(0)
    rollouts = sample(policy, ["hello there"], 3, 16, answer_prefix="[", fast_sampler="shared",
                      answer_end=TEN_CHARS, stop_at_answer=False)
    assert all(r.num_tokens == 16 and not r.finished and r.complete for r in rollouts)


def _loss_of(policy, tokens_BN, logprobs_BN, eos_BN, rule):
    """Rollouts from raw sampled tokens (cut at the answer when there is a rule) -> the loss
    of a policy-gradient step that moves nothing (learning rate 0)."""
    eos, pad = policy.tokenizer.eos_token_id, policy.tokenizer.pad_token_id
    tokens_BN, logprobs_BN = tokens_BN.clone(), logprobs_BN.clone()
    watch = AnswerWatch(rule, lambda t: policy.tokenizer.decode([t]), "[", 2, eos)
    for t in range(tokens_BN.shape[1]):
        watch.feed(t, [0, 1], tokens_BN[:, t].tolist())
    watch.cut(tokens_BN, logprobs_BN, eos_BN, pad)
    prompt = policy.tokenizer("say a list")["input_ids"]
    rollouts = _rollouts(policy, [(0, prompt), (0, prompt)], tokens_BN, logprobs_BN)
    optimizer = make_optimizer(policy, 0.0)
    return policy_gradient_step(policy, optimizer, rollouts, [1.0, -0.5])["loss"]


def test_training_ignores_what_was_generated_after_the_answer(policy):
    """Two samples equal up to one token after their answers and different after it: with
    the answer rule the loss is the same; without it (a control) it differs."""
    tok = policy.tokenizer
    answer = tok("1, 2, 3]", add_special_tokens=False)["input_ids"]
    tails = [tok(text, add_special_tokens=False)["input_ids"][:12]
             for text in (" and here is some prose that goes on and on, a long way past the list",
                          " 42 ]] ``` more and more text, [9, 8], and then some more words")]
    n = len(answer) + 1 + 12
    batches = []
    for tail in tails:
        tokens_BN = torch.tensor([answer + [7] + tail] * 2)[:, :n]
        gen = torch.Generator().manual_seed(len(tail) + tail[0])
        logprobs_BN = -torch.rand(2, n, generator=gen)
        logprobs_BN[:, :len(answer) + 1] = -0.5  # the same up to the EOS position
        batches.append((tokens_BN, logprobs_BN, torch.full((2, n), -3.0)))
    stopped = [_loss_of(policy, *b, answers.LIST) for b in batches]
    assert stopped[0] == pytest.approx(stopped[1], rel=1e-6)
    unstopped = [_loss_of(policy, *b, None) for b in batches]
    assert unstopped[0] != pytest.approx(unstopped[1], rel=1e-3)
