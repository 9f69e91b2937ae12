"""DHD training and evaluation on Occ3D-layout data (real or synthetic).

Loss (weights in ``loss_weights``): class-weighted cross-entropy over camera-visible voxels (``ce``), MonoScene's
``sem_scal`` and ``geo_scal`` over the same voxels, the HeightNet's BCE over pixels with a LiDAR height
(``height``) and, optionally, the DepthNet's BCE over pixels with a LiDAR depth (``depth``). Class weights come
from ``class_counts`` (the datamodule's camera-visible counts of the training split when ``None``).

Metrics: Occ3D mIoU (:class:`~visionzoo.metrics.occupancy.OccupancyMIoU`) on the val split (``val/mIoU``) and in
``test``, where the per-class table is the results table and ``pictures`` samples are drawn into
``<run dir>/pictures/occupancy.png`` (front camera, BEV and voxel views of ground truth and prediction, legend).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from visionzoo.constants import OCC3D_CLASSES, OCC3D_COLOURS, OCC3D_FREE
from visionzoo.data.contract import CameraRig, datamodule_of
from visionzoo.data.occ3d import key_frame_images
from visionzoo.data.transforms import tensor_to_image
from visionzoo.metrics.occupancy import OccupancyMIoU
from visionzoo.tasks.base import VisionTask
from visionzoo.tasks.pictures import publish_picture
from visionzoo.tasks.occupancy_losses import (bin_bce_loss, class_weights_from_counts, depth_bins_of,
                                              geo_scal_loss, sem_scal_loss, weighted_cross_entropy)
from visionzoo.visualize import (OCCUPANCY_PICTURE_TITLES, bar_plot, class_legend, image_grid, occupancy_picture_row,
                                  side_by_side)

DEFAULT_LOSS_WEIGHTS = {"ce": 10.0, "sem_scal": 0.2, "geo_scal": 0.2, "height": 0.1, "depth": 0.0}


class DHDTask(VisionTask):
    """LightningModule for :class:`~visionzoo.models.dhd.DHD`.

    Args:
        net, optimizer, scheduler: see :class:`~visionzoo.tasks.base.VisionTask`.
        loss_weights: weights of ``ce``, ``sem_scal``, ``geo_scal``, ``height``, ``depth`` (missing keys: DHD-S's).
        class_counts: 18 camera-visible voxel counts for the CE class weights; ``None``: counted on the
            datamodule's training split when fitting starts.
        pictures: samples drawn in ``test`` (0: none).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        class_counts: Sequence[int] | None = None,
        pictures: int = 4,
    ) -> None:
        super().__init__(net, optimizer, scheduler)
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **dict(loss_weights or {})}
        weights = class_weights_from_counts(torch.as_tensor(class_counts)) if class_counts is not None else None
        self.register_buffer("class_weights", weights if weights is not None else torch.ones(len(OCC3D_CLASSES)),
                             persistent=False)
        self._weights_known = weights is not None
        self.pictures = pictures
        self.val_miou = OccupancyMIoU()
        self.test_miou = OccupancyMIoU()
        self._picture_rows: list[list[np.ndarray]] = []

    def on_fit_start(self) -> None:
        data = datamodule_of(self.trainer, CameraRig)
        if not self._weights_known and data is not None:
            self.class_weights = class_weights_from_counts(data.class_counts()).to(self.device)
            self._weights_known = True

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return self.net(batch["images"], batch["intrinsics"], batch["cam2ego"], batch["post"], batch["bda"])

    def compute_losses(self, out: Mapping[str, torch.Tensor], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        logits, target, mask = out["logits"], batch["semantics"], batch["mask_camera"]
        w = self.loss_weights
        losses = {
            "ce": weighted_cross_entropy(logits, target, mask, self.class_weights),
            "sem_scal": sem_scal_loss(logits, target, mask),
            "geo_scal": geo_scal_loss(logits, target, mask, OCC3D_FREE),
            "height": bin_bce_loss(out["height"], batch["height_bin"], ~torch.isnan(batch["height"])),
        }
        if w["depth"]:
            bins, valid = depth_bins_of(batch["depth"], self.net.depth_bins)
            losses["depth"] = bin_bce_loss(out["depth"], bins, valid)
        losses["loss"] = sum(w[k] * v for k, v in losses.items())
        return losses

    input_key = "images"

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.compute_losses(self(batch), batch)

    def _predict(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self(batch)["logits"].argmax(dim=-1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.val_miou.update(self._predict(batch), batch["semantics"], batch["mask_camera"])

    def on_validation_epoch_end(self) -> None:
        values = self.val_miou.compute()
        self.val_miou.reset()
        self.log("val/mIoU", values["mIoU"], prog_bar=True, sync_dist=True)

    def on_test_start(self) -> None:
        self._picture_rows, self._results = [], []
        data = datamodule_of(self.trainer, CameraRig)
        cameras = list(data.cameras) if data is not None else []
        self._front = cameras.index("CAM_FRONT") if "CAM_FRONT" in cameras else 0

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred = self._predict(batch)
        self.test_miou.update(pred, batch["semantics"], batch["mask_camera"])
        grid = self.net.grid
        for i in range(min(len(pred), self.pictures - len(self._picture_rows))):
            front = tensor_to_image(key_frame_images(batch["images"])[i, self._front])
            self._picture_rows.append(occupancy_picture_row(
                front, batch["semantics"][i].cpu().numpy(), pred[i].cpu().numpy(),
                batch["mask_camera"][i].cpu().numpy(), grid.voxel[2] / grid.voxel[0]))

    def on_test_epoch_end(self) -> None:
        values = self.test_miou.compute()
        self.test_miou.reset()
        self.log_dict({f"test/{k}": v for k, v in values.items()}, sync_dist=True)
        rows = [{"class": name, "IoU": float(values[f"IoU/{name}"])} for name in OCC3D_CLASSES[:OCC3D_FREE]]
        rows.append({"class": "mIoU", "IoU": float(values["mIoU"])})
        self._results = rows
        if self.pictures and self.trainer.is_global_zero:
            iou = {row["class"]: row["IoU"] for row in rows[:-1]}
            publish_picture(self, "iou_per_class", bar_plot(
                iou, f"IoU per class over camera-visible voxels; mIoU {rows[-1]['IoU']:.2f} %", "IoU (%)", OCC3D_COLOURS))
        if self._picture_rows and self.trainer.is_global_zero:
            publish_picture(self, "occupancy", side_by_side(
                image_grid(self._picture_rows, OCCUPANCY_PICTURE_TITLES, cell=256),
                class_legend(OCC3D_CLASSES, OCC3D_COLOURS)))
