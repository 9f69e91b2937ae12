"""Running a job from a composed Hydra config, one responsibility per module:

* :mod:`~visionzoo.run.jobs`: the jobs of ``train.py``, ``eval.py`` and ``predict.py`` (and ``main``, which turns a
  user's mistake into one line and exit status 2).
* :mod:`~visionzoo.run.checks`: config checks made before anything heavy is built (required nodes, the weights
  policy, constructor arguments, model and data agreeing on the grid).
* :mod:`~visionzoo.run.build`: instantiating the datamodule, network, task, predictor, trainer, callbacks and
  loggers, with the model card's preprocessing resolved once.
* :mod:`~visionzoo.run.checkpoints`: which checkpoint a training run resumes from, and whether it can.
* :mod:`~visionzoo.run.results`: the run folder and its ``metrics.json`` / ``metrics.csv`` / printed table.
"""
