"""DHD (Deep Height Decoupling, Wu et al.): camera-only 3D semantic occupancy in plain PyTorch, one module set for
the published DHD-S and the zoo's variants.

* :mod:`~visionzoo.models.dhd.parts`: the building blocks under the official key names, configured by width and depth.
* :mod:`~visionzoo.models.dhd.view`: frustum, lifting, voxel pooling and Mask-Guided Height Sampling.
* :mod:`~visionzoo.models.dhd.temporal`: the previous frame's BEV aligned to the current key ego (DHD-M/L's
  temporal fusion, BEVDet4D's ``shift_feature``).
* :mod:`~visionzoo.models.dhd.network`: the :class:`DHD` network and the registered ``dhd_s`` (as published),
  ``dhd_dla34``, ``dhd_r50`` and ``dhd_tiny``.
"""

from visionzoo.models.dhd.network import DHD, bevdet_input, dhd, dhd_s

__all__ = ["DHD", "bevdet_input", "dhd", "dhd_s"]
