"""Layer 5, lab: the research around the loop.

plan (the plan schema, budgets and validation), planner + offline_planner + memory (from a
request to a plan), experiment + executors (running a plan's jobs), folders (what an
experiment folder is, and finding one), stats (arm differences and their intervals), report,
report_text and figures, findings (the ledger), proposal + reviewer + offline_reviewer (what
to run next), sweep, sweep_state, sweep_digest and tracks (many experiments overnight).
"""
