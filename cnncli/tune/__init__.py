"""``cnncli tune``: the ``search:`` block as an Optuna study of ordinary training runs.

``space`` (paths and values of a search space, a point as a config), ``study`` (storage,
sampler, pruner, one trial after another, resuming), ``results`` (``trials.csv``,
``best.yaml``, ``importance.json``, the report).
"""
