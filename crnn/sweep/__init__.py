"""Hyperparameter sweeps (``crnn sweep``): an Optuna study over a pipeline's ``sweep:`` space.

The parent process builds the shards once, asks the study for trials and runs each in a process
of its own (:mod:`crnn.sweep.trial`) on those shards: a child MLflow run under the sweep's parent
run, reporting each epoch's validation metric to the pruner. The study lives in the workspace
(an Optuna journal file, safe for parallel processes) or in the team's database, so a sweep
killed mid-way continues where it stopped. Optuna is an edge dependency: the core (data,
models, train, evaluate) never imports this package.
"""
