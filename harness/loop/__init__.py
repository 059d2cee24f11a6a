"""Layer 4, loop: TTT-Discover itself.

model (policy loading, LoRA), sampling (+ shared_sampler on CPU, fast_sampler on CUDA),
buffer (PUCT start-state reuse), prompts (fitting a state's prompt), objective (entropic
advantages), train + logprobs (the LoRA step), progress (the step line), ttt (the loop).
Imports base, sandbox and env; knows nothing of experiments.
"""
