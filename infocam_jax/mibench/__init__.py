"""MI-estimation benchmark for a discrete label Y and continuous X, with exact truth (nats).

``tasks``: samplers with exact per-sample PMI and true I(X;Y); ``estimators``: the
estimators under one signature; ``knn``: the Ross (2014) kNN estimator; ``report``:
tables, verdicts and figures. See BUILD_NOTES.md ("MI benchmark for discrete labels").
"""

from infocam_jax.mibench.tasks import FAMILIES, Sample, Task, make_task, parse_task

__all__ = ["FAMILIES", "Sample", "Task", "make_task", "parse_task"]
