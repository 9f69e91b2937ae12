"""Predict 3D semantic occupancy for the samples of an Occ3D-layout folder (info pickle + six camera images).

For each sample it writes ``<output>/<scene_name>/<token>/labels.npz`` with ``semantics`` ``(X, Y, Z)`` uint8 in
the Occ3D layout (the model's grid; 17 = free), and for the first ``pictures`` samples
``<output>/pictures/<token>.png``: the front camera, the BEV map and the voxel rendering of the prediction, next to
the ground truth's (camera-visible voxels) when the sample has a labels.npz, with the class legend. Only the
cameras are read: no LiDAR or labels are needed. A sample whose files are broken is reported and skipped; files
are written atomically, and finished samples are skipped unless ``overwrite``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from visionzoo.constants import OCC3D_CLASSES, OCC3D_COLOURS, OCC3D_FREE
from visionzoo.data.images import write_image
from visionzoo.data.occ3d import (ImageAugment, Occ3DDataset, collate_occ3d, key_frame_images, occ3d_records,
                                  read_labels)
from visionzoo.data.transforms import tensor_to_image
from visionzoo.errors import DataError
from visionzoo.files import atomic_write, ensure_writable_folder
from visionzoo.predict.common import BatchReport, resolve_device
from visionzoo.preprocessing import Preprocessing
from visionzoo.progress import file_progress
from visionzoo.visualize import (OCCUPANCY_PICTURE_TITLES, class_legend, image_grid, occupancy_bev,
                                  occupancy_picture_row, occupancy_voxels, side_by_side)

log = logging.getLogger(__name__)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


class OccupancyPredictor:
    """DHD over the samples of an Occ3D-layout folder.

    Args:
        net: the occupancy network (weights loaded by ``predict.py`` from ``ckpt_path`` / ``model.pretrained``).
        input: the folder holding the info pickles and ``samples/`` (like ``data.root``).
        output: folder for the predicted ``labels.npz`` files and ``pictures/``.
        split / info_file: which info pickle to read (``info_file``, relative to ``input``, wins).
        input_size: network input (height, width) in pixels; ``None``: the model's.
        pictures: samples drawn (0: none). device: ``auto``, ``cpu``, ``cuda``...
        preprocessing: what the model expects (its card's; the run passes it): camera order, key ego frame, image
            resize and normalisation, as for the data module.
    """

    def __init__(
        self, net: nn.Module, input: str, output: str, overwrite: bool = False, split: str = "val",
        info_file: str | None = None, input_size: Sequence[int] | None = None, pictures: int = 4,
        device: str = "auto", preprocessing: Preprocessing | None = None,
    ) -> None:
        self.net, self.input, self.output, self.overwrite = net, Path(input), Path(output), overwrite
        self.preprocessing = preprocessing or Preprocessing()
        self.split, self.info_file, self.cameras = split, info_file, list(self.preprocessing.cameras)
        if input_size is None:
            if self.preprocessing.input_size is None:
                raise DataError("predictor.input_size is not set and the model card gives none; pass "
                                "predictor.input_size=[HEIGHT,WIDTH]")
            input_size = self.preprocessing.input_size[-2:]
        self.augment = ImageAugment(size=(int(input_size[0]), int(input_size[1])))
        self.pictures, self.device = pictures, resolve_device(device)

    def run(self) -> BatchReport:
        records = occ3d_records(self.input, self.split, self.cameras, self.info_file, root_key="input",
                                key_ego=self.preprocessing.key_ego, frames=self.preprocessing.frames)
        ensure_writable_folder(self.output)
        grid = self.net.grid
        dataset = Occ3DDataset(records, grid, self.augment, targets=False, preprocessing=self.preprocessing)
        net = self.net.to(self.device).eval()
        front = self.cameras.index("CAM_FRONT") if "CAM_FRONT" in self.cameras else 0
        report, drawn = BatchReport(), 0
        with file_progress() as bar, torch.inference_mode():
            task = bar.add_task("occupancy", total=len(records))
            for index, record in enumerate(records):
                target = self.output / record.scene / record.token / "labels.npz"
                if target.exists() and not self.overwrite:
                    report.finished.append(target)
                    bar.advance(task)
                    continue
                try:
                    batch = collate_occ3d([dataset[index]])
                    inputs = [batch[k].to(self.device) for k in ("images", "intrinsics", "cam2ego", "post", "bda")]
                    semantics = net(*inputs)["logits"][0].argmax(dim=-1).to(torch.uint8).cpu().numpy()
                    atomic_write(target, lambda tmp: tmp.write_bytes(_npz_bytes(semantics=semantics)))
                    report.written.append(target)
                    if drawn < self.pictures:
                        self._draw(record, key_frame_images(batch["images"])[0, front], semantics, grid)
                        drawn += 1
                except DataError as err:
                    report.failed[Path(record.token)] = str(err)
                bar.advance(task)
        report.print()
        return report

    def _draw(self, record, image: torch.Tensor, semantics: np.ndarray, grid) -> None:
        front = tensor_to_image(image, self.preprocessing.mean, self.preprocessing.std)
        z_scale = grid.voxel[2] / grid.voxel[0]
        if record.labels_path.is_file():
            truth = read_labels(record.labels_path, grid, record.token)
            tiles = occupancy_picture_row(front, truth["semantics"], semantics, truth["mask_camera"], z_scale)
            titles = OCCUPANCY_PICTURE_TITLES
        else:
            tiles = [front, occupancy_bev(semantics, OCC3D_COLOURS, OCC3D_FREE),
                     occupancy_voxels(semantics, OCC3D_COLOURS, OCC3D_FREE, z_scale=z_scale)]
            titles = ("front camera", "BEV predicted", "voxels predicted")
        picture = side_by_side(image_grid([tiles], titles, cell=256), class_legend(OCC3D_CLASSES, OCC3D_COLOURS))
        write_image(self.output / "pictures" / f"{record.token}.png", picture)
