"""Second autocorrelation inequality (lower bound on C2)."""
