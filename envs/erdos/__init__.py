"""Erdős minimum overlap problem."""
