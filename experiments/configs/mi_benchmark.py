"""The discrete-label MI-estimation benchmark (issue 25): tasks with exact truth, all estimators.

  python -m experiments.mi_benchmark                                  # quick tier (default)
  python -m experiments.mi_benchmark --config=experiments/configs/mi_benchmark.py:full
  python -m experiments.mi_benchmark --config.tasks="concentric(dim=3,num_classes=5)" \
      --config.num_seeds=5 --config.estimators=classifier,knn

Tasks are spec strings ``family(key=value,...)`` separated by ``;`` (families in
``infocam_jax/mibench/tasks.py``); estimators are names from
``infocam_jax.mibench.estimators.ESTIMATORS``, comma-separated.

Variants: ``quick`` (the default; 2 CPU cores, offline, <= 20 min: 9 tasks in two compiled
size buckets, 13 estimators; see BUILD_NOTES for what it leaves to the full tier) and ``full`` (an
accelerator: n up to 10^5 per seed, K up to 1000, every estimator, learning curves up
to 1,000 per class; expected ~1.5-3 h on one H100, an estimate not a measurement).
"""

import ml_collections

VARIANTS = ("quick", "full")

QUICK_TASKS = ";".join([
    "gaussian_paper(dim=2,balanced=True)",
    "null(num_classes=100,dim=10)",
    "concentric(dim=3,num_classes=5)",
    "sparse(dim=100,informative=2,num_classes=10,separation=3.0)",
    "many_classes(num_classes=100,dim=100,separation=3.0)",
    "student(nu=1,dim=2,num_classes=10,separation=3.0)",
    "transformed(kind=half_cube,base=concentric(dim=3,num_classes=5))",
    "zipf(num_classes=100,dim=10,separation=4.0,exponent=1.0)",
    "product(first=concentric(dim=3,num_classes=3),"
    "second=many_classes(num_classes=5,dim=2,separation=2.5))",
])

FULL_TASKS = ";".join(
    ["gaussian_paper(dim=%d,balanced=%s)" % (d, b) for d in (1, 2, 5, 10) for b in (True, False)]
    + ["null(num_classes=100,dim=10)", "null(num_classes=1000,dim=100)"]
    + ["concentric(dim=%d,num_classes=%d)" % (d, k) for d in (3, 5, 25) for k in (5, 10)]
    + ["sparse(dim=%d,informative=2,num_classes=10,separation=3.0)" % d
       for d in (3, 10, 30, 100, 300, 1000)]
    + ["many_classes(num_classes=100,dim=100,separation=%s)" % s for s in (1.5, 2.5, 3.5, 5.0, 7.0)]
    + ["many_classes(num_classes=1000,dim=100,separation=%s)" % s for s in (2.0, 3.0, 4.0, 5.5, 7.0)]
    + ["student(nu=%s,dim=%d,num_classes=10,separation=3.0)" % (nu, d)
       for nu in (1, 2, "inf") for d in (2, 5)]
    + ["transformed(kind=%s,base=concentric(dim=3,num_classes=5))" % k
       for k in ("half_cube", "spiral", "affine")]
    + ["transformed(kind=asinh,base=student(nu=1,dim=2,num_classes=10,separation=3.0))",
       "zipf(num_classes=100,dim=10,separation=4.0,exponent=1.0)",
       "zipf(num_classes=100,dim=10,separation=4.0,exponent=1.5)",
       "product(first=concentric(dim=3,num_classes=5),second=gaussian_paper(dim=1,balanced=True))",
       "product(first=many_classes(num_classes=10,dim=10,separation=3.0),"
       "second=many_classes(num_classes=10,dim=10,separation=3.0,seed=1))",
       "image(base=many_classes(num_classes=10,dim=4,separation=3.0))",
       "image(base=many_classes(num_classes=100,dim=8,separation=4.0))"])

QUICK_ESTIMATORS = ",".join([
    "classifier", "classifier_t", "nwj/label", "dv/label", "mine/label", "smile/label",
    "demi/label", "infonce/concat", "smile/concat", "demi/concat", "gaussian_lda",
    "gaussian_qda", "knn",
    "oracle:infonce/label", "oracle:nwj/label", "oracle:dv/label", "oracle:smile/label",
    "oracle:demi/label", "oracle:infonce/concat", "oracle:smile/concat", "oracle:demi/concat"])


def get_config(variant: str = "quick"):
  if variant not in VARIANTS:
    raise ValueError(f"mi_benchmark.py variant must be one of {VARIANTS}, got {variant!r}.")
  c = ml_collections.ConfigDict()
  c.tier = variant
  c.seed = 0
  c.num_seeds = 5
  c.tasks = QUICK_TASKS
  c.estimators = QUICK_ESTIMATORS
  c.n_train = 3000
  c.n_test = 1000
  # Neural estimators (every seed of one estimator is one vmapped, compiled program).
  c.hidden = "64,64"
  c.steps = 1200
  c.batch_size = 64
  c.learning_rate = 1e-3
  c.val_fraction = 0.2
  c.eval_every = 100
  c.clip = 5.0
  c.knn_k = 3
  c.mine_rate = 0.01
  c.truth_stderr = 0.003
  # Learning curve: one task, several training sizes (samples per class).
  c.curve_task = "many_classes(num_classes=100,dim=5,separation=3.0)"
  c.curve_per_class = "10,30,100"
  c.curve_estimators = "classifier,classifier_t,gaussian_lda,knn"
  if variant == "full":
    c.tasks = FULL_TASKS
    c.estimators = ",".join([
        "classifier", "classifier_t", "nwj/label", "dv/label", "mine/label", "smile/label",
        "demi/label", "infonce/concat", "nwj/concat", "dv/concat", "mine/concat",
        "smile/concat", "demi/concat", "gaussian_lda", "gaussian_qda", "knn"]
        + ["oracle:%s/%s" % (b, c_) for c_ in ("label", "concat")
           for b in ("infonce", "nwj", "dv", "mine", "smile", "demi")])
    c.num_seeds = 10
    c.n_train = 50_000
    c.n_test = 10_000
    c.hidden = "256,256"
    c.steps = 10_000
    c.batch_size = 256
    c.curve_per_class = "10,30,100,300,1000"
    c.curve_estimators = "classifier,classifier_t,infonce/concat,smile/label,gaussian_lda,knn"
  return c
