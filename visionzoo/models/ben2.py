"""The published Swin-B multi-view networks, written for the zoo: BEN2 Base and BEN v1 Base (PramaLLC) and MVANet.

One class (:class:`BEN2Net`) serves the three; a :class:`MultiViewStyle` says where they differ (the blocks' norm
and activation, the attention feed-forwards' activation, MCLM's layer names, the entries of MVANet's released file
that the network never uses). What follows describes BEN2; BEN v1 is the same network, MVANet differs only there.

The published network (``BEN2.py`` of github PramaLLC/BEN2; MVANet's design) splits the ``H x W`` input into four
``H/2 x W/2`` quadrant views plus the whole image at half size (the global view), runs all five through one Swin-B,
and decodes them together:

* ``multifieldcrossatt`` (:class:`GlobalLocalAttention`, MVANet's MCLM) at stride 32: the global view attends to
  pooled summaries (pool ratios 1, 4, 8, with sine position codes) of the stitched quadrants, then each quadrant
  attends to its own part of the refreshed global view;
* four refinement stages ``dec_blk4..1`` (:class:`LocalRefinementAttention`, MVANet's MCRM) at strides 16, 8, 4,
  4: the global view's saliency map gates each quadrant, each quadrant attends to pooled summaries (ratios 2, 4, 8)
  of its part of the global view, and the refreshed quadrants are added back into the global view;
* the quadrants are stitched at stride 4, the global view added, ``insmask_head`` merges, and a shallow 3x3
  convolution of the input image is added at strides 4 and 2 on the way up to full resolution.

The state dict has exactly the published names and shapes (BEN2 and BEN v1: 535 entries, 511 float tensors and 24
int64 ``relative_position_index`` buffers, 94,134,658 parameters; MVANet: 611 entries with the BatchNorm statistics,
94,139,021 parameters), so ``BEN2_Base.pth`` (``{"model_state_dict": ...}``)
and the hub's ``model.safetensors`` load with no conversion. Unlike the published code, the five views of every
image in a batch go through each stage together (no per-image loop), ``forward`` carries no ``inference_mode`` or
autocast (mixed precision comes from the caller), and in training mode the published but unused ``sideout1-5``
heads give side outputs for deep supervision.

Input sizes: height and width must be multiples of 128 (each view's stride-32 map is split in halves; 1024 is the
published size, 128, 256, 384, 512 and 256x512 work too). At 256 the stride-32 map is 4 x 4 and MCLM's 1/8 pool is
empty: it adds no keys (the forward equals the published one; the published code cannot train or export at that
size, this one can).

Written for export at any size: the forward never fixes a size it reads from a tensor (slices rather than
``chunk``/``unflatten``, the pools as matrices, integer rounding, ``-1`` where a size may be 0), so the ONNX graph
that ``visionzoo.export`` traces keeps batch, height and width free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.errors import VisionZooError
from visionzoo.models.ben import BEN, BENRefiner, confidence_map
from visionzoo.models.registry import register_model
from visionzoo.models.swin import SwinBackbone
from visionzoo.models.weights import load_weights
from visionzoo.preprocessing import Preprocessing

#: Input height and width must be multiples of this (two views per side, each view's stride-32 map halved).
BEN2_SIZE_MULTIPLE = 128


def split_quadrants(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(4B, C, H/2, W/2)``: top-left, top-right, bottom-left, bottom-right, each a block of B."""
    half_h, half_w = x.shape[-2] // 2, x.shape[-1] // 2  # slices, not chunk: an exported graph keeps H, W free
    top, bottom = x[..., :half_h, :], x[..., half_h:, :]
    return torch.cat([top[..., :half_w], top[..., half_w:], bottom[..., :half_w], bottom[..., half_w:]], dim=0)


def quarters(x: torch.Tensor, dim: int) -> list[torch.Tensor]:
    """``x`` cut into 4 equal consecutive blocks along ``dim``, e.g. the 4 quadrants' blocks of a batch.

    Slices rather than ``unflatten(dim, (4, -1))``, whose traced sizes would be fixed in an exported graph.
    """
    size = x.shape[dim] // 4
    before = (slice(None),) * dim
    return [x[(*before, slice(i * size, (i + 1) * size))] for i in range(4)]


def split_views(x: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(5B, ...)`` -> the quadrant views ``(4B, ...)`` and the global views ``(B, ...)``."""
    return x[: 4 * batch], x[4 * batch :]


def merge_quadrants(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_quadrants`: ``(4B, C, h, w)`` -> ``(B, C, 2h, 2w)``."""
    top_left, top_right, bottom_left, bottom_right = quarters(x, dim=0)
    top = torch.cat([top_left, top_right], dim=-1)
    return torch.cat([top, torch.cat([bottom_left, bottom_right], dim=-1)], dim=-2)


def sine_position_code(height: int, width: int, channels: int, device: torch.device) -> torch.Tensor:
    """DETR's normalised sine position code of a ``height x width`` map: ``(height * width, 1, channels)``.

    The first half of the channels encodes the row, the second the column; positions (i + 0.5) / size * 2 pi,
    frequencies 10000 ** (2 floor(k / 2) / (channels / 2)), sin on even and cos on odd channels.
    """
    half = channels // 2
    frequencies = 10000.0 ** (2 * (torch.arange(half, device=device) // 2) / half)

    def encode(size: int) -> torch.Tensor:
        position = torch.arange(1, size + 1, dtype=torch.float32, device=device)
        angle = ((position - 0.5) / (size + 1e-6) * 2 * math.pi)[:, None] / frequencies
        return torch.stack([angle[:, 0::2].sin(), angle[:, 1::2].cos()], dim=2).flatten(1)  # (size, half)

    rows = encode(height)[:, None, :].expand(height, width, half)
    cols = encode(width)[None, :, :].expand(height, width, half)
    return torch.cat([rows, cols], dim=-1).reshape(-1, 1, channels)  # -1: ONNX reads a 0 as "keep this size"


def to_sequence(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, h, w)`` -> ``(h * w, N, C)``, the sequence-first layout of ``nn.MultiheadAttention``."""
    return x.reshape(x.shape[0], x.shape[1], -1).permute(2, 0, 1)  # -1: h * w may be 0 (an empty pool)


def round_half_even(numerator: int, denominator: int) -> int:
    """Python's ``round(numerator / denominator)`` (halves to the even neighbour) in integer arithmetic, so it
    also takes a traced size (a 0-dim tensor) and keeps it free in an exported graph."""
    quotient, remainder = numerator // denominator, numerator % denominator
    up = (2 * remainder > denominator) | ((2 * remainder == denominator) & (quotient % 2 == 1))
    return quotient + up


def pool_sizes(height: int, width: int, ratios: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(round(height / r), round(width / r))`` for each ratio, as the published code sizes its pools; a size may
    be 0 (the 1/8 pool of a 4 x 4 map), which :func:`pooled_sequence` turns into no keys."""
    return [(round_half_even(height, r), round_half_even(width, r)) for r in ratios]


def adaptive_pool_matrix(size: int, pooled: int, device: torch.device) -> torch.Tensor:
    """``(pooled, size)``: row ``i`` averages cells ``floor(i size / pooled)`` to ``ceil((i + 1) size / pooled) - 1``,
    the bins of ``adaptive_avg_pool2d``; ``pooled`` may be 0 (no rows)."""
    bins = torch.arange(pooled, device=device)[:, None]
    divisor = pooled + (pooled == 0)  # any non-zero divisor when there are no bins (ONNX Runtime checks it)
    start = bins * size // divisor
    end = ((bins + 1) * size + divisor - 1) // divisor
    cells = torch.arange(size, device=device)[None, :]
    inside = ((cells >= start) & (cells < end)).float()
    return inside / (end - start).float()


def pooled_sequence(x: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Adaptive average pooling of ``(N, C, h, w)`` to each size, the cells concatenated: ``(sum of cells, N, C)``.

    Written as ``rows @ x @ columns^T`` with :func:`adaptive_pool_matrix` (equal to ``adaptive_avg_pool2d``): an
    empty size adds no cells, and a traced ``h`` and ``w`` stay free in an exported graph.
    """
    height, width = x.shape[-2:]
    pools = []
    for rows, cols in sizes:
        row_matrix = adaptive_pool_matrix(height, rows, x.device).to(x.dtype)
        col_matrix = adaptive_pool_matrix(width, cols, x.device).to(x.dtype)
        pools.append(to_sequence(row_matrix @ x @ col_matrix.transpose(0, 1)))
    return torch.cat(pools, dim=0)


def attend(attention: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
           value: torch.Tensor) -> torch.Tensor:
    """``attention(query, key, value, need_weights=False)[0]`` for sequence-first ``(L, N, E)`` inputs (no masks),
    from the module's own weights: the same projections and fused attention, written with ``view`` of traced sizes
    (PyTorch's own forward ``unflatten``s the key/value projection, whose sizes a traced ONNX graph would fix).
    Returns ``(L_query, N, E)``."""
    heads, dim = attention.num_heads, attention.embed_dim
    weights, biases = attention.in_proj_weight.split(dim), attention.in_proj_bias.split(dim)

    def heads_first(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        length, batch = x.shape[0], x.shape[1]  # (L, N, E) -> (N, heads, L, E / heads)
        x = F.linear(x, weight, bias).view(length, batch * heads, dim // heads).transpose(0, 1)
        return x.view(batch, heads, length, dim // heads)

    q, k, v = (heads_first(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=attention.dropout if attention.training else 0.0)
    length, batch = query.shape[0], query.shape[1]
    return attention.out_proj(out.permute(2, 0, 1, 3).reshape(length, batch, dim))


@dataclass(frozen=True)
class MultiViewStyle:
    """What tells the published networks of the family apart (their shapes and forward are otherwise one).

    ``norm`` and ``activation``: the conv-norm-activation blocks' layers (``"instance"``: InstanceNorm2d without
    affine parameters; ``"batch"``: BatchNorm2d; ``"gelu"`` or ``"prelu"``; the two ``upsample`` blocks always end
    in GELU); ``attention_activation``: the activation inside the MCLM/MCRM feed-forward (``"gelu"``/``"relu"``);
    ``global_mlp``: the names of MCLM's global-view feed-forward layers (its local-view pair is ``linear3/4``);
    ``unused_checkpoint_keys``: a regular expression of the entries the released checkpoint carries that the
    network never calls (skipped on loading, see :func:`visionzoo.models.weights.load_state_dict_into`).
    """

    norm: str = "instance"
    activation: str = "gelu"
    attention_activation: str = "gelu"
    global_mlp: tuple[str, str] = ("linear1", "linear2")
    unused_checkpoint_keys: str | None = None


#: BEN v1 and BEN2 (PramaLLC): InstanceNorm + GELU blocks, GELU attention feed-forwards.
BEN_STYLE = MultiViewStyle()
#: MVANet (qianyu-dlut/MVANet ``model/MVANet.py`` since its 2025-02-20 fix): BatchNorm + PReLU blocks, ReLU
#: feed-forwards, MCLM's global feed-forward named ``linear5/6``. ``Model_80.pth`` also holds ``linear1/2`` and a
#: sixth attention in MCLM, and ``linear1/2`` and attentions 4-7 in each MCRM, which the code never calls
#: (MVANet issue #3).
MVANET_STYLE = MultiViewStyle(
    norm="batch", activation="prelu", attention_activation="relu", global_mlp=("linear5", "linear6"),
    unused_checkpoint_keys=(r"multifieldcrossatt\.(linear[12]|attention\.5)\..+"
                            r"|dec_blk[1-4]\.(linear[12]|attention\.[4-7])\..+"),
)
STYLES = {"ben": BEN_STYLE, "mvanet": MVANET_STYLE}

_NORMS = {"instance": nn.InstanceNorm2d, "batch": nn.BatchNorm2d}
_ACTIVATIONS = {"gelu": nn.GELU, "prelu": nn.PReLU}
_ATTENTION_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def conv_norm_act(in_channels: int, out_channels: int, norm: str = "instance",
                  activation: str = "gelu") -> nn.Sequential:
    """3x3 convolution, normalisation, activation: the published ``make_cbr`` / ``make_cbg`` blocks (keys ``0``,
    ``1``, ``2``; see :class:`MultiViewStyle` for the choices)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        _NORMS[norm](out_channels),
        _ACTIVATIONS[activation](),
    )


class _AttentionFeedForward(nn.Module):
    """Shared by both attention blocks: residual attention -> LayerNorm -> residual MLP -> LayerNorm.

    Subclasses create ``norm1``, ``norm2`` and ``dropout`` (after their attention and linear layers: the
    published state-dict order) and set ``activation`` (the MLP's, a name of ``_ATTENTION_ACTIVATIONS``).
    """

    norm1: nn.LayerNorm
    norm2: nn.LayerNorm
    dropout: nn.Dropout
    activation: str

    def attend_and_mix(self, x: torch.Tensor, attended: torch.Tensor, up: nn.Linear, down: nn.Linear) -> torch.Tensor:
        x = self.norm1(x + self.dropout(attended))
        hidden = _ATTENTION_ACTIVATIONS[self.activation](up(x))
        return self.norm2(x + self.dropout(down(self.dropout(hidden))))


class GlobalLocalAttention(_AttentionFeedForward):
    """MVANet's multi-view complementary localisation (MCLM), key prefix ``multifieldcrossatt``.

    ``forward(local (4B, C, h, w), glob (B, C, h, w))`` -> ``(5B, C, h, w)``: the refreshed quadrants (4 blocks of
    B) then the refreshed global view. ``h`` and ``w`` must be even. The global view's feed-forward layers are
    named ``global_mlp`` (BEN: ``linear1/2``, MVANet: ``linear5/6``), the quadrants' ``linear3/4``; all four are
    registered in name order, as the published modules are.
    """

    def __init__(self, dim: int = 128, num_heads: int = 1, pool_ratios: tuple[int, ...] = (1, 4, 8),
                 dropout: float = 0.1, activation: str = "gelu",
                 global_mlp: tuple[str, str] = ("linear1", "linear2")) -> None:
        super().__init__()
        self.pool_ratios = tuple(pool_ratios)
        self.activation = activation
        self.global_mlp = tuple(global_mlp)
        self.attention = nn.ModuleList(nn.MultiheadAttention(dim, num_heads, dropout=dropout) for _ in range(5))
        pairs = sorted([self.global_mlp, ("linear3", "linear4")])
        for up, down in pairs:
            self.add_module(up, nn.Linear(dim, 2 * dim))
            self.add_module(down, nn.Linear(2 * dim, dim))
        self.norm1, self.norm2, self.dropout = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.Dropout(dropout)

    def forward(self, local: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = glob.shape
        sizes = pool_sizes(height, width, self.pool_ratios)
        pools = pooled_sequence(merge_quadrants(local), sizes)
        pool_code = torch.cat([sine_position_code(*size, channels, glob.device) for size in sizes]).to(glob.dtype)
        glob_code = sine_position_code(height, width, channels, glob.device).to(glob.dtype)

        g = to_sequence(glob)
        attended = attend(self.attention[0], g + glob_code, pools + pool_code, pools)
        g = self.attend_and_mix(g, attended, *(getattr(self, name) for name in self.global_mlp))

        glob_map = g.permute(1, 2, 0).reshape(batch, channels, height, width)
        glob_parts = quarters(to_sequence(split_quadrants(glob_map)), dim=1)
        queries = to_sequence(local)
        attended = torch.cat([
            attend(attention, q, part, part)
            for attention, q, part in zip(self.attention[1:], quarters(queries, dim=1), glob_parts)
        ], dim=1)
        local_seq = self.attend_and_mix(queries, attended, self.linear3, self.linear4)
        return torch.cat([local_seq, g], dim=1).permute(1, 2, 0).reshape(5 * batch, channels, height, width)


class LocalRefinementAttention(_AttentionFeedForward):
    """MVANet's multi-view complementary refinement (MCRM), key prefixes ``dec_blk1..4``.

    ``forward(views (5B, C, h, w))`` -> ``(views (5B, C, h, w), token map (B, 1, 2h, 2w))``; the token map is the
    global view's sigmoid saliency that gated the quadrants.
    """

    def __init__(self, dim: int = 128, num_heads: int = 1, pool_ratios: tuple[int, ...] = (2, 4, 8),
                 dropout: float = 0.1, activation: str = "gelu") -> None:
        super().__init__()
        self.pool_ratios = tuple(pool_ratios)
        self.activation = activation
        self.attention = nn.ModuleList(nn.MultiheadAttention(dim, num_heads, dropout=dropout) for _ in range(4))
        self.linear3 = nn.Linear(dim, 2 * dim)
        self.linear4 = nn.Linear(2 * dim, dim)
        self.norm1, self.norm2, self.dropout = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.Dropout(dropout)
        self.sal_conv = nn.Conv2d(dim, 1, kernel_size=1)

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels, height, width = views.shape[1:]
        batch = views.shape[0] // 5
        local, glob = split_views(views, batch)
        token_map = F.interpolate(torch.sigmoid(self.sal_conv(glob)), size=(2 * height, 2 * width), mode="nearest")
        local = local * split_quadrants(token_map)

        sizes = pool_sizes(height, width, self.pool_ratios)
        pools = quarters(pooled_sequence(split_quadrants(glob), sizes), dim=1)
        queries = to_sequence(local)
        attended = torch.cat([
            attend(attention, q, kv, kv)
            for attention, q, kv in zip(self.attention, quarters(queries, dim=1), pools)
        ], dim=1)
        local = self.attend_and_mix(queries, attended, self.linear3, self.linear4)
        local = local.permute(1, 2, 0).reshape(4 * batch, channels, height, width)
        glob = glob + F.interpolate(merge_quadrants(local), size=(height, width), mode="nearest")
        return torch.cat([local, glob], dim=0), token_map


def check_ben2_size(height: int, width: int) -> None:
    """A clear error for input sizes the multi-view network cannot take."""
    if height % BEN2_SIZE_MULTIPLE or width % BEN2_SIZE_MULTIPLE:
        raise VisionZooError(
            f"BEN2 needs height and width that are multiples of {BEN2_SIZE_MULTIPLE} (each of the 2 x 2 views' "
            f"stride-32 maps is halved), got {height}x{width}; use 1024 (published), 512, 384 or 256"
        )


class BEN2Net(nn.Module):
    """The published multi-view network (BEN2 Base, BEN v1 Base, MVANet); ``forward`` returns logits (see the
    module docstring).

    Args:
        drop_path_rate: the Swin's stochastic depth when training (published: 0.2).
        dropout: dropout of the attention blocks when training (published: 0.1).
        grad_checkpointing: recompute the Swin blocks in the backward pass (less memory when fine-tuning).
        style: ``"ben"`` (BEN v1 and BEN2) or ``"mvanet"``: the blocks' layers and the checkpoint's names
            (:class:`MultiViewStyle`).

    ``forward((B, 3, H, W) ImageNet-normalised RGB)`` -> ``{"logits": (B, 1, H, W)}``; in training mode also
    ``side_logits``: the ``sideout5..1`` maps of the stitched quadrants (strides 32, 16, 8, 4, 4) then of the
    global view (strides 64, 32, 16, 8, 8), deepest first.
    """

    #: Strides of ``side_logits``: the stitched quadrants' maps, then the global view's.
    side_strides = (32, 16, 8, 4, 4, 64, 32, 16, 8, 8)
    #: Input height and width must be multiples of this (read by the ONNX export).
    size_multiple = BEN2_SIZE_MULTIPLE

    def __init__(self, drop_path_rate: float = 0.2, dropout: float = 0.1, grad_checkpointing: bool = False,
                 style: str = "ben") -> None:
        super().__init__()
        if style not in STYLES:
            raise VisionZooError(f"unknown multi-view network style {style!r}; choose one of {sorted(STYLES)}")
        look = STYLES[style]
        self.unused_checkpoint_keys = look.unused_checkpoint_keys

        def block(in_channels: int, out_channels: int, activation: str = look.activation) -> nn.Sequential:
            return conv_norm_act(in_channels, out_channels, look.norm, activation)

        dim = 128
        self.backbone = SwinBackbone(128, (2, 2, 18, 2), (4, 8, 16, 32), window=12, drop_path_rate=drop_path_rate)
        self.backbone.grad_checkpointing = grad_checkpointing
        self.sideout5 = nn.Sequential(nn.Conv2d(dim, 1, kernel_size=3, padding=1))
        self.sideout4 = nn.Sequential(nn.Conv2d(dim, 1, kernel_size=3, padding=1))
        self.sideout3 = nn.Sequential(nn.Conv2d(dim, 1, kernel_size=3, padding=1))
        self.sideout2 = nn.Sequential(nn.Conv2d(dim, 1, kernel_size=3, padding=1))
        self.sideout1 = nn.Sequential(nn.Conv2d(dim, 1, kernel_size=3, padding=1))
        self.output5 = block(1024, dim)
        self.output4 = block(512, dim)
        self.output3 = block(256, dim)
        self.output2 = block(128, dim)
        self.output1 = block(128, dim)
        self.multifieldcrossatt = GlobalLocalAttention(dim, 1, (1, 4, 8), dropout, look.attention_activation,
                                                       look.global_mlp)
        self.conv1 = block(dim, dim)
        self.conv2 = block(dim, dim)
        self.conv3 = block(dim, dim)
        self.conv4 = block(dim, dim)
        self.dec_blk1 = LocalRefinementAttention(dim, 1, (2, 4, 8), dropout, look.attention_activation)
        self.dec_blk2 = LocalRefinementAttention(dim, 1, (2, 4, 8), dropout, look.attention_activation)
        self.dec_blk3 = LocalRefinementAttention(dim, 1, (2, 4, 8), dropout, look.attention_activation)
        self.dec_blk4 = LocalRefinementAttention(dim, 1, (2, 4, 8), dropout, look.attention_activation)
        self.insmask_head = nn.Sequential(
            *block(dim, 384), *block(384, 384), nn.Conv2d(384, dim, kernel_size=3, padding=1)
        )
        self.shallow = nn.Sequential(nn.Conv2d(3, dim, kernel_size=3, padding=1))
        self.upsample1 = block(dim, dim, "gelu")
        self.upsample2 = block(dim, dim, "gelu")
        self.output = nn.Sequential(nn.Conv2d(dim, 1, kernel_size=3, padding=1))

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        batch, _, height, width = x.shape
        if not torch.jit.is_tracing():  # a traced size is a tensor; export_onnx checks the example's
            check_ben2_size(height, width)
        views = torch.cat([split_quadrants(x), F.interpolate(x, scale_factor=0.5, mode="bilinear")], dim=0)
        f0, f1, f2, f3, f4 = self.backbone(views)

        e5 = self.output5(f4)
        e5 = self.multifieldcrossatt(*split_views(e5, batch))
        e4 = self.conv4(self.dec_blk4(self.output4(f3) + _resize(e5, f3))[0])
        e3 = self.conv3(self.dec_blk3(self.output3(f2) + _resize(e4, f2))[0])
        e2 = self.conv2(self.dec_blk2(self.output2(f1) + _resize(e3, f1))[0])
        e1 = self.conv1(self.dec_blk1(self.output1(f0) + _resize(e2, f0))[0])

        local, glob = split_views(e1, batch)
        stitched = merge_quadrants(local)
        out = self.insmask_head(stitched + _resize(glob, stitched))
        out = self.upsample1(F.interpolate(out + self.shallow_downsampled(x, 4), scale_factor=2, mode="nearest"))
        out = self.upsample2(F.interpolate(out + self.shallow_downsampled(x, 2), scale_factor=2, mode="nearest"))
        result: dict[str, Any] = {"logits": self.output(out)}
        if self.training:
            stages = ((self.sideout5, e5), (self.sideout4, e4), (self.sideout3, e3), (self.sideout2, e2),
                      (self.sideout1, e1))
            sides = [split_views(head(e), batch) for head, e in stages]
            result["side_logits"] = [merge_quadrants(s[0]) for s in sides] + [s[1] for s in sides]
        return result

    def shallow_downsampled(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        """``shallow(x)`` bilinearly resized by ``1 / factor`` (2 or 4, align_corners=False), as the published
        network adds it, without computing the full-resolution map (128 channels at the input size).

        A bilinear halving (quartering) averages rows ``f i + f/2 - 1`` and ``f i + f/2`` of the 3x3 convolution's
        output, and so does every column; the convolution being linear, that is one ``factor``-strided 4x4
        convolution of the zero-padded input whose kernel is the 3x3 kernel averaged over its 2 x 2 shifts.
        ``(B, 3, H, W)`` -> ``(B, 128, H / factor, W / factor)``.
        """
        conv = self.shallow[0]
        kernel = F.avg_pool2d(F.pad(conv.weight, (1, 1, 1, 1)), kernel_size=2, stride=1)
        kernel = kernel.reshape(conv.out_channels, conv.in_channels, 4, 4)  # a shape the ONNX tracer can read
        start = factor // 2 - 1
        return F.conv2d(F.pad(x, (1, 1, 1, 1))[..., start:, start:], kernel, conv.bias, stride=factor)


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like`` (the published ``resize_as``)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear")


class BEN2Base(BEN2Net):
    """A published multi-view network (BEN2 Base, BEN v1 Base or MVANet: Swin-B, 94.1 M parameters) with the zoo's
    BEN outputs.

    ``forward((B, 3, H, W))`` returns ``alpha`` = ``base`` (the sigmoid mask) and ``confidence``
    (``|2 alpha - 1|``), each ``(B, 1, H, W)``; in training mode also ``base_logits`` and ``side_logits`` (see
    :class:`BEN2Net`, whose arguments it takes).
    """

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        out = super().forward(x)
        prob = torch.sigmoid(out["logits"])
        result: dict[str, Any] = {"alpha": prob, "base": prob, "confidence": confidence_map(prob)}
        if self.training:
            result.update(base_logits=out["logits"], side_logits=out["side_logits"])
        return result


def ben2_refined(
    base_weights: str | None = None,
    refiner_backbone: str = "dla46_c",
    refiner_out_stride: int = 4,
    refiner_width: int = 16,
    refiner_kwargs: dict[str, Any] | None = None,
    low: float = 0.1,
    high: float = 0.9,
    blend: str = "hard",
    drop_path_rate: float = 0.2,
    dropout: float = 0.1,
    grad_checkpointing: bool = False,
) -> BEN:
    """BEN2 Base followed by the zoo's Confidence-Guided Matting Refiner (train the Refiner on the frozen Base).

    Args:
        base_weights: the published BEN2 Base weights (``BEN2_Base.pth``, ``model.safetensors`` or an
            ``hf-hub:`` name) loaded into ``base``; ``None`` leaves it random.
        refiner_*, low, high, blend: see :func:`visionzoo.models.ben.ben_dla`.
        drop_path_rate, dropout, grad_checkpointing: see :class:`BEN2Net`.
    """
    base = BEN2Net(drop_path_rate, dropout, grad_checkpointing)
    if base_weights is not None:
        load_weights(base, base_weights)
    refiner = BENRefiner(refiner_backbone, out_stride=refiner_out_stride, width=refiner_width,
                         backbone_kwargs=refiner_kwargs)
    return BEN(base, refiner, low, high, blend)


BEN2_LICENSE = "MIT (BEN2 design and published weights: PramaLLC)"
#: The published weights on the Hugging Face hub (also as BEN2_Base.pth in the same repository).
BEN2_HUB_WEIGHTS = "hf-hub:PramaLLC/BEN2/model.safetensors"

#: What the published BEN weights (v1 and BEN2) expect: Lanczos resizing as the published ``inference()`` does;
#: channels_last is slower for this network on the CPU (benchmarks/BEN2_BENCH.md).
BEN2_PREPROCESSING = Preprocessing(input_size=(3, 1024, 1024), resample="lanczos", channels_last=False)
#: MVANet's predict.py resizes with Pillow's bilinear filter.
MVANET_PREPROCESSING = Preprocessing(input_size=(3, 1024, 1024), resample="bilinear", channels_last=False)
register_model(
    "ben2_base", task="matting", preprocessing=BEN2_PREPROCESSING, weights=BEN2_HUB_WEIGHTS, license=BEN2_LICENSE,
    description="BEN2 Base as published by PramaLLC (Swin-B multi-view network, 94.1 M parameters)",
)(BEN2Base)
register_model(
    "ben_base", task="matting", preprocessing=BEN2_PREPROCESSING, weights="hf-hub:PramaLLC/BEN/BEN_Base.pth",
    license="Apache-2.0 (BEN v1 published weights: PramaLLC)",
    description="BEN v1 Base as published by PramaLLC, the BEN paper's Base (BEN2's network, 94.1 M parameters)",
    reference="DIS-VD (BEN paper, its test.py): MAE 0.0309, Dice 0.881, IoU 0.837",
)(BEN2Base)
register_model(
    "mvanet", task="matting", preprocessing=MVANET_PREPROCESSING,
    license="MIT (MVANet code and weights: Qian Yu et al.)",
    description="MVANet (CVPR 2024) as published: Model_80.pth from github qianyu-dlut/MVANet's README (Google Drive)",
    reference="DIS-VD (MVANet paper, with flip + 3-scale test-time augmentation): maxF .913, wF .856, Em .938, "
              "Sa .905, MAE .036",
    defaults={"style": "mvanet"},
)(BEN2Base)
register_model(
    "ben2_refined", task="matting", preprocessing=BEN2_PREPROCESSING, license=BEN2_LICENSE + "; Refiner Apache-2.0",
)(ben2_refined)
