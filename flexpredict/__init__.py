"""flexpredict: predict and recommend AI inference deployments from MLPerf results and your own benchmarks.

Importing the package does no work; see `flexpredict.dataset`, `flexpredict.predictors`, `flexpredict.recommend`
and `flexpredict.bench`, or the `flexpredict` command.
"""
