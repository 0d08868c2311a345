"""Evaluation on math benchmarks: plan jobs, solve, grade, write result lines (``srca eval``).

The datasets are read by :mod:`.data`, answers graded by :mod:`.grading`, and the report over
those lines is :mod:`.report`."""
from .records import ResultsError, comparable, make_record, problem_seed, read_records
from .runner import Job, arun_eval, plan, run_eval
from .variants import VARIANTS, base_method, config_for, method_names

__all__ = ["Job", "ResultsError", "VARIANTS", "arun_eval", "base_method", "comparable", "config_for",
           "make_record", "method_names", "plan", "problem_seed", "read_records", "run_eval"]
