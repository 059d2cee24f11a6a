"""Kept for experiment folders written before the layers (issue 20): their experiment.py does
`from harness.experiment import run_experiment`. The lab's module is harness.lab.experiment."""

from harness.lab.experiment import run_experiment

__all__ = ["run_experiment"]
