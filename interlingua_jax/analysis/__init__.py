"""Turns a suite's saved run outputs into the paper's figures, LaTeX tables and a summary.

  python -m interlingua_jax.analysis --root=/runs/20250101_120000

Reads only what the runs saved (docs/CONTRACTS.md, "Run outputs"), so it can be rerun at
any time, e.g. while a suite is still running. A missing piece (a failed run, a run without
compression) is reported in `summary.md` and `ablation_results.json` and skipped, never fatal.
Accuracies are fractions in the JSON and percentages in figures and tables.
By concern: `runs` (loading, summaries, seeds), `tables`, `figures`, `cli` (the driver).
"""
from interlingua_jax.analysis.cli import FIGURES, TABLES, analyze
from interlingua_jax.analysis.runs import Run, find_runs, load_run, summarize

__all__ = ["FIGURES", "TABLES", "Run", "analyze", "find_runs", "load_run", "summarize"]
