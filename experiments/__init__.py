"""Reusable experiment script templates (data, not code): `experiment.py.j2` is the single
script that `harness experiment` renders, with the plan inlined, into each experiment folder."""
