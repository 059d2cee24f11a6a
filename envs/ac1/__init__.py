"""First autocorrelation inequality (upper bound on C1)."""
