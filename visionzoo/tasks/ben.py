"""BEN training and evaluation on DIS5K-layout data.

Stages (``stage``): ``base`` trains the Base alone (Refiner frozen and skipped), ``refiner`` trains the Refiner on
a frozen Base (its BatchNorm statistics frozen too), ``joint`` trains both. A model with no Refiner (``ben2_base``)
trains and is evaluated as its Base; ``freeze`` names parts kept fixed (e.g. ``[backbone]``). Losses: BCE + IoU +
SSIM on the Base logits, the same with ``side_weight`` on every decoder side output (deep supervision), and a
Refiner loss (BCE + IoU) weighted towards the trimap's unknown band (``refiner_known_weight`` elsewhere).

Metrics are the DIS protocol (:class:`~visionzoo.metrics.dis.DISMetrics`) at each GT's original resolution, for
the Base alone (``base``) and the final alpha (``refined``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.data.contract import NamedSplits, datamodule_of
from visionzoo.data.images import write_image
from visionzoo.data.transforms import tensor_to_image
from visionzoo.errors import VisionZooError
from visionzoo.files import ensure_writable_folder
from visionzoo.metrics.dis import REPORTED_METRICS, DISMetrics
from visionzoo.models.ben import TRIMAP_UNKNOWN
from visionzoo.pixels import unit_to_uint8
from visionzoo.tasks.base import VisionTask
from visionzoo.tasks.losses import bce_loss, iou_loss, segmentation_loss
from visionzoo.tasks.pictures import publish_picture
from visionzoo.visualize import gray_to_rgb, image_grid, line_plot, over_checkerboard

STAGES = ("base", "refiner", "joint")
VARIANTS = ("base", "refined")
PICTURE_TITLES = ("image", "ground truth", "base", "confidence", "refined", "cut-out")


def probability_to_uint8(prob: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(1, h, w)`` probability -> ``(H, W)`` uint8 at ``size`` = (H, W), bilinear."""
    resized = F.interpolate(prob[None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
    return unit_to_uint8(resized).cpu().numpy()


class BENTask(VisionTask):
    """LightningModule for :class:`~visionzoo.models.ben.BEN`.

    Args:
        net, optimizer, scheduler: see :class:`~visionzoo.tasks.base.VisionTask`.
        stage: ``"base"``, ``"refiner"`` or ``"joint"``.
        loss_weights: weights of ``bce``, ``iou``, ``ssim`` for the Base output.
        side_weight: factor on the side-output losses.
        refiner_weight: factor on the Refiner loss.
        refiner_known_weight: pixel weight of confident (known) pixels in the Refiner loss; unknown pixels weigh 1.
        skeleton_dir: cache folder for HCE's GT skeletons (``None``: no cache).
        save_predictions: folder to write predicted masks into during ``test`` (``<split>/<name>.png``).
        pictures: images per test split drawn into ``<run dir>/pictures/<split>.png`` (image, GT, Base,
            confidence, refined, cut-out); 0 draws none.
        freeze: names of submodules of the network kept fixed (no gradients, eval mode), e.g. ``[backbone]`` to
            fine-tune ``ben2_base``'s decoder only.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        stage: str = "joint",
        loss_weights: Mapping[str, float] | None = None,
        side_weight: float = 0.5,
        refiner_weight: float = 1.0,
        refiner_known_weight: float = 0.1,
        skeleton_dir: str | None = None,
        save_predictions: str | None = None,
        pictures: int = 4,
        freeze: Sequence[str] = (),
    ) -> None:
        super().__init__(net, optimizer, scheduler)
        if stage not in STAGES:
            raise VisionZooError(f"task.stage must be one of {', '.join(STAGES)}, not {stage!r}")
        self.has_refiner = hasattr(net, "refiner")
        if not self.has_refiner:
            if stage == "refiner":
                raise VisionZooError("task.stage=refiner: this model has no Refiner; use task.stage=base, or "
                                     "model=ben2_refined for BEN2 with the zoo's Refiner")
            stage = "base"  # the Base is all there is to train and evaluate
        self.variants = VARIANTS if self.has_refiner else ("base",)
        self.stage = stage
        self.loss_weights = dict(loss_weights or {"bce": 1.0, "iou": 1.0, "ssim": 1.0})
        self.side_weight, self.refiner_weight = side_weight, refiner_weight
        self.refiner_known_weight = refiner_known_weight
        self.skeleton_dir = skeleton_dir
        self.save_predictions = Path(save_predictions) if save_predictions else None
        self.pictures = int(pictures)
        self._picture_rows: dict[str, list[list[np.ndarray]]] = {}
        stage_frozen = {"base": ["refiner"], "refiner": ["base"]}.get(stage, []) if self.has_refiner else []
        self.frozen = [_submodule(net, name) for name in [*freeze, *stage_frozen]]
        for module in self.frozen:
            module.requires_grad_(False)
        self.val_metrics = nn.ModuleDict()
        self.val_split_names: list[str] = []
        self.test_metrics = nn.ModuleDict()
        self.test_split_names: list[str] = []

    def train(self, mode: bool = True) -> "BENTask":
        super().train(mode)
        for module in self.frozen:
            module.eval()  # a frozen part keeps its BatchNorm statistics (and drops no paths)
        return self

    def _forward(self, image: torch.Tensor) -> dict[str, Any]:
        if self.has_refiner:
            return self.net(image, refine=self.stage != "base")
        return self.net(image)

    # ---- training -------------------------------------------------------------------------------------------
    def compute_losses(self, out: Mapping[str, Any], mask: torch.Tensor) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if self.stage != "refiner":
            base, parts = segmentation_loss(out["base_logits"], mask, self.loss_weights)
            losses.update({f"base_{k}": v for k, v in parts.items()})
            side = sum(segmentation_loss(s, mask, self.loss_weights)[0] for s in out["side_logits"])
            losses["base"] = base
            losses["side"] = self.side_weight * side / max(1, len(out["side_logits"]))
        if self.stage != "base":
            unknown = self.refiner_band(out, mask)
            weight = unknown + self.refiner_known_weight * (1 - unknown)
            refined = bce_loss(out["refined_logits"], mask, weight) + iou_loss(out["refined_logits"], mask)
            losses["refiner"] = self.refiner_weight * refined
            losses["unknown_fraction"] = unknown.mean().detach()
        losses["loss"] = sum(v for k, v in losses.items() if k in ("base", "side", "refiner"))
        return losses

    def refiner_band(self, out: Mapping[str, Any], mask: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` 0/1 map of the pixels the Refiner loss weighs fully: the trimap's unknown band."""
        return (out["trimap"] == TRIMAP_UNKNOWN).float()

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.compute_losses(self._forward(batch["image"]), batch["mask"])

    # ---- evaluation -----------------------------------------------------------------------------------------
    def _predict_uint8(self, batch: dict[str, Any]) -> dict[str, list[np.ndarray]]:
        out = self._forward(batch["image"])
        outputs = {"base": out["base"], "refined": out["alpha"]}
        return {v: [probability_to_uint8(outputs[v][i], gt.shape) for i, gt in enumerate(batch["gt"])]
                for v in self.variants}

    def new_metrics(self, split: str) -> DISMetrics:
        """The metric collecting one split's scores (one per split and variant)."""
        return DISMetrics(self.skeleton_dir)

    def _split_metrics(self, splits: Sequence[str]) -> nn.ModuleDict:
        # states must live where the process group can gather them (NCCL: the GPU)
        return nn.ModuleDict({f"{s}|{v}": self.new_metrics(s) for s in splits for v in self.variants}).to(self.device)

    def picture_titles(self, split: str) -> tuple[str, ...]:
        return PICTURE_TITLES if self.has_refiner else tuple(t for t in PICTURE_TITLES if t != "refined")

    def picture_row(self, split: str, image: np.ndarray, gt: np.ndarray, preds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One picture row: the image, its ground truth and the predictions (uint8 maps at the GT's size)."""
        base, final = preds["base"], preds[self.variants[-1]]
        confidence = np.abs(2 * base.astype(np.int16) - 255).astype(np.uint8)  # |2p - 1| of the drawn Base map
        row = [image, gray_to_rgb(gt), gray_to_rgb(base), gray_to_rgb(confidence)]
        return row + [gray_to_rgb(final)] * self.has_refiner + [over_checkerboard(image, final)]

    def _collect_pictures(self, split: str, batch: dict[str, Any], preds: dict[str, list[np.ndarray]]) -> None:
        rows = self._picture_rows.setdefault(split, [])
        for i, gt in enumerate(batch["gt"][: max(0, self.pictures - len(rows))]):
            image = tensor_to_image(batch["image"][i])
            image = cv2.resize(image, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            rows.append(self.picture_row(split, image, gt, {v: preds[v][i] for v in self.variants}))

    def on_validation_start(self) -> None:
        data = datamodule_of(self.trainer, NamedSplits)
        self.val_split_names = list(data.val_splits) if data is not None else ["val"]
        self.val_metrics = self._split_metrics(self.val_split_names)

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.val_split_names[dataloader_idx]
        preds = self._predict_uint8(batch)
        for variant in self.variants:
            self.val_metrics[f"{split}|{variant}"].update(preds[variant], batch["gt"], batch["gt_path"])

    def on_validation_epoch_end(self) -> None:
        for index, split in enumerate(self.val_split_names):
            for variant in self.variants:
                values = self.val_metrics[f"{split}|{variant}"].compute()
                self.val_metrics[f"{split}|{variant}"].reset()
                # val/...: the first split's final output; val/base/...: its Base; val/<split>/...: other splits
                prefix = "val" if index == 0 else f"val/{split}"
                prefix += "" if variant == self.variants[-1] else "/base"
                # Values are already synced by the metric; sync_dist only averages identical numbers across ranks.
                self.log_dict({f"{prefix}/{k}": v for k, v in values.items()}, add_dataloader_idx=False,
                              prog_bar=index == 0 and variant == "refined", sync_dist=True)

    def on_test_start(self) -> None:
        data = datamodule_of(self.trainer, NamedSplits)
        self.test_split_names = list(data.test_splits) if data is not None else ["test"]
        self.test_metrics = self._split_metrics(self.test_split_names)
        self._results = []
        self._picture_rows = {}
        if self.save_predictions is not None:
            ensure_writable_folder(self.save_predictions, key="task.save_predictions")

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.test_split_names[dataloader_idx]
        preds = self._predict_uint8(batch)
        for variant in self.variants:
            self.test_metrics[f"{split}|{variant}"].update(preds[variant], batch["gt"], batch["gt_path"])
        if self.pictures:
            self._collect_pictures(split, batch, preds)
        if self.save_predictions is not None:
            for name, mask in zip(batch["name"], preds[self.variants[-1]]):
                write_image(self.save_predictions / split / f"{name}.png", mask)

    def on_test_epoch_end(self) -> None:
        rows = []
        curves: dict[str, dict[str, np.ndarray]] = {}
        for variant in self.variants:
            split_rows = []
            for split in self.test_split_names:
                metric = self.test_metrics[f"{split}|{variant}"]
                values = metric.compute()
                curves[f"{split} {variant}"] = metric.mean_curves
                ordered = [*REPORTED_METRICS, *(k for k in values if k not in REPORTED_METRICS)]
                split_rows.append({"split": split, "model": variant, **{k: values[k] for k in ordered}})
                self.log_dict({f"test/{split}/{variant}/{k}": v for k, v in values.items()}, add_dataloader_idx=False,
                              sync_dist=True)
            rows.extend(split_rows)
            te_rows = [r for r in split_rows if r["split"].startswith("DIS-TE")]
            if len(te_rows) > 1:
                mean = {k: float(np.mean([r[k] for r in te_rows])) for k in REPORTED_METRICS}
                rows.append({"split": f"DIS-TE (1-{len(te_rows)}) mean", "model": variant, **mean})
        self._results = rows
        if self._picture_rows and self.trainer.is_global_zero:
            for split, picture_rows in self._picture_rows.items():
                publish_picture(self, split, image_grid(picture_rows, self.picture_titles(split)))
            publish_picture(self, "dis_curves", np.concatenate([
                line_plot({name: c[key] for name, c in curves.items()}, title, "threshold (0-255)", label,
                          size=(8.0, 3.6) if len(curves) > 5 else (5.6, 3.6))
                for key, title, label in (("F", "F-measure by threshold (dataset mean)", "F (beta^2 = 0.3)"),
                                          ("E", "E-measure by threshold (dataset mean)", "E-measure"))], axis=0))


def _submodule(net: nn.Module, name: str) -> nn.Module:
    """``net.get_submodule(name)``, or a one-line error listing the top-level parts."""
    try:
        return net.get_submodule(name)
    except AttributeError:
        parts = ", ".join(n for n, _ in net.named_children())
        raise VisionZooError(f"task.freeze: the model has no part {name!r}; top-level parts: {parts}") from None
