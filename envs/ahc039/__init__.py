"""AtCoder Heuristic Contest 039: an axis-parallel net around mackerels, away from sardines."""
