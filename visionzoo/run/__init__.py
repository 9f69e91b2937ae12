"""The runner's parts, one responsibility each (the jobs themselves are :mod:`visionzoo.runner`):

* :mod:`~visionzoo.run.checks`: config checks made before anything heavy is built (required nodes, the weights
  policy, constructor arguments, model and data agreeing on the grid).
* :mod:`~visionzoo.run.build`: instantiating the datamodule, network, task, trainer, callbacks and loggers.
* :mod:`~visionzoo.run.results`: the run folder and its ``metrics.json`` / ``metrics.csv`` / printed table.

Checkpoint policy (which checkpoint to resume, whether it can be) is :mod:`visionzoo.checkpoints`.
"""
