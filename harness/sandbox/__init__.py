"""Layer 2, sandbox: running untrusted (model-written) code.

runner (one program or call under limits, its process tree killed), driver (the script that
starts inside the sandbox; imports nothing from harness), pool (a batch in parallel, here on
threads or as Ray tasks), ray_session (joining or starting Ray). Imports only harness.base.
"""
