"""DHD (Deep Height Decoupling, Wu et al.): camera-only 3D semantic occupancy in plain PyTorch, one module set for
the published DHD-S and the zoo's variants.

* :mod:`~visionzoo.models.dhd.parts`: the building blocks under the official key names, configured by width and depth.
* :mod:`~visionzoo.models.dhd.view`: frustum, lifting, voxel pooling and Mask-Guided Height Sampling.
* :mod:`~visionzoo.models.dhd.stereo`: DHD-M/L's stereo cost volume against the previous frame.
* :mod:`~visionzoo.models.dhd.network`: the :class:`DHD` and :class:`StereoDHD` networks and the registered
  ``dhd_s`` and ``dhd_m`` (as published), ``dhd_dla34``, ``dhd_r50`` and ``dhd_tiny``.
"""

from visionzoo.models.dhd.network import DHD, StereoDHD, bevdet_input, dhd, dhd_m, dhd_s

__all__ = ["DHD", "StereoDHD", "bevdet_input", "dhd", "dhd_m", "dhd_s"]
