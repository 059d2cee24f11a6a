"""Toy env: a seconds-fast problem for tests."""
