"""Studies built on one resumable runner (:mod:`searchkit.study.runs`): the benchmark of
strategies x metrics x seeds (:mod:`searchkit.study.benchmark`: config, orchestration, report)
and scripts such as ``benchmarks/darts_study.py``."""
