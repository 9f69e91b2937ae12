"""Deep Image Prior, free of Lightning: everything a per-image fit needs, for the evaluation task and the predictor
alike (and the calibration scripts in research/dip/).

* :mod:`~visionzoo.dip.estimate`: noise level, texture and the architecture rule, from the noisy image alone.
* :mod:`~visionzoo.dip.stopping`: early-stopping rules (discrepancy principle, windowed variance).
* :mod:`~visionzoo.dip.fit`: the fitting loop, one generator or several same-size images batched.
* :mod:`~visionzoo.dip.recipe`: the per-image recipe (settings, generator choice, grouping images into batches).
* :mod:`~visionzoo.dip.classical`: BM3D / CBM3D, the classical baseline.

The generators themselves are models (:mod:`visionzoo.models.dip`); the LightningModule that scores fits against
clean images is :class:`visionzoo.tasks.dip_denoise.DIPDenoiseTask`.
"""
