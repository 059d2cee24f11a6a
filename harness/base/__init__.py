"""Layer 1, base: what every other layer may use and nothing in it imports from them.

config (the flat run configuration and its budgets), records (the CSV columns and the run
folder's files), resources (shipped data folders, the Jinja environment), errors (UserError
and the one-line form of an error), scores (better/worse by an env's direction, and how a
number is printed).
"""
