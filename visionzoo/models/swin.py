"""Swin Transformer backbone in the object-detection layout (the one BEN2 / MVANet are built on).

Differences from timm's classification Swin that change the numbers (so published detection-style weights need
this module, not timm's ``SwinTransformer``):

* each block pads its map to a multiple of the window *before* the cyclic shift (timm rolls, then pads), so the
  attention mask is laid over the padded map;
* a stage's output is taken *before* its patch merging (the merging belongs to the stage, key
  ``layers.{i}.downsample``), and every output goes through its own LayerNorm ``norm{i}``;
* the patch-embedding map (stride 4, after its LayerNorm) is returned as an extra, first feature map.

State-dict names follow that layout: ``patch_embed.proj/norm``, ``layers.{i}.blocks.{j}.{norm1, attn.qkv,
attn.proj, attn.relative_position_bias_table, attn.relative_position_index, norm2, mlp.fc1, mlp.fc2}``,
``layers.{i}.downsample.{norm, reduction}`` and ``norm{i}``; ``relative_position_index`` is a saved int64 buffer.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn
from torch.utils.checkpoint import checkpoint

#: Added to the attention logits of token pairs that a cyclic shift brought together from different regions.
SHIFT_MASK_VALUE = -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """``(window**2, window**2)`` int64: the row of the bias table for each (query, key) pair of a window.

    Index = (dy + window - 1) * (2 * window - 1) + (dx + window - 1) for the pair's offset (dy, dx).
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window - 1
    dx = xs[:, None] - xs[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def padded_size(size: int, window: int) -> int:
    """``size`` rounded up to a multiple of ``window``, written as ``ceil(size / window) * window`` so that a traced
    size stays a product (``torch.export`` then sees at once that the padded map splits into whole windows)."""
    return (size + window - 1) // window * window


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, nH * nW, window**2, C)``, windows in row-major order."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, -1, window * window, channels)


def from_windows(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`to_windows`: ``(B, nH * nW, window**2, C)`` -> ``(B, H, W, C)``."""
    batch, channels = windows.shape[0], windows.shape[-1]
    x = windows.view(batch, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)


def shift_attention_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """``(nH * nW, window**2, window**2)`` additive mask for shifted windows on a padded ``height x width`` map.

    The map is cut into 3 x 3 regions by the window and shift borders (counted from the bottom/right edge);
    token pairs from different regions get :data:`SHIFT_MASK_VALUE`, pairs from the same region 0. Written with
    comparisons only, so a traced ``height`` and ``width`` stay free in an exported graph.
    """
    def region_of(size: int) -> torch.Tensor:
        position = torch.arange(size, device=device)
        return (position >= size - window).long() + (position >= size - shift).long()

    labels = (region_of(height)[:, None] * 3 + region_of(width)[None, :]).float()
    labels = to_windows(labels[None, :, :, None], window)[0, :, :, 0]  # (nW, window**2)
    different = labels[:, None, :] != labels[:, :, None]
    return different.float() * SHIFT_MASK_VALUE


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v`` for ``(B, H, N, d)`` queries, keys, values and a 4-D ``bias``.

    Eagerly this is PyTorch's fused attention (on the CPU it takes a 4-D mask; a 3-D one falls back to the slower
    math path). When exporting (ONNX has no fused attention) it is traced as the explicit product, whose output
    strides the exporters handle.
    """
    if torch.compiler.is_exporting() or torch.jit.is_tracing():
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1) + bias
        return scores.softmax(dim=-1) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window x window`` windows with a learnt relative-position bias."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """``(heads, window**2, window**2)`` bias added to the attention logits."""
        tokens = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``windows``: ``(B, nW, N, C)`` tokens of each window; ``mask``: ``(nW, N, N)`` or None. Same shape out."""
        batch, num_windows, tokens, channels = windows.shape
        heads = self.num_heads
        qkv = self.qkv(windows).view(batch, num_windows, tokens, 3, heads, channels // heads)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5)  # (3, B, nW, heads, N, head_dim)
        bias = self.position_bias().to(qkv.dtype)  # (heads, N, N)
        if mask is None:  # one bias for every window: (B * nW, heads, N, head_dim)
            q, k, v = qkv.flatten(1, 2).unbind(0)
        else:  # windows share the head axis, (B, nW * heads, N, head_dim), so the per-window bias broadcasts over
            # the batch without a copy (attention stays 4-D, as ONNX export needs)
            q, k, v = qkv.flatten(2, 3).unbind(0)
            bias = (bias + mask[:, None].to(qkv.dtype)).flatten(0, 1)  # (nW * heads, N, N)
        out = window_attention(q, k, v, bias[None])
        out = out.reshape(batch, num_windows, heads, tokens, -1).transpose(2, 3)
        return self.proj(out.reshape(batch, num_windows, tokens, channels))


class PatchMerging(nn.Module):
    """2 x 2 neighbouring tokens concatenated, LayerNorm, linear 4C -> 2C. ``(B, H, W, C)`` ->
    ``(B, ceil(H/2), ceil(W/2), 2C)``; odd sizes are zero-padded.

    Concatenation order: the original Swin's (four blocks of C channels at the (row, column) offsets (0, 0),
    (1, 0), (0, 1), (1, 1)) or, with ``unfold_order``, mmdet's ``nn.Unfold`` one (channel ``c * 4 + 2 * row +
    column``), which its weights were trained in."""

    def __init__(self, dim: int, unfold_order: bool = False) -> None:
        super().__init__()
        self.unfold_order = unfold_order
        if unfold_order:  # mmdet registers (and stores) the norm first
            self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        if not unfold_order:
            self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        if self.unfold_order:
            x = torch.stack([x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]], dim=-1)
            x = x.flatten(-2)
        else:
            x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual and stochastic depth.

    Input and output ``(B, H, W, C)``; the map is padded to a multiple of the window before the shift.
    """

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        _, height, width, channels = x.shape
        window = self.window
        padded_h, padded_w = padded_size(height, window), padded_size(width, window)
        y = F.pad(self.norm1(x), (0, 0, 0, padded_w - width, 0, padded_h - height))
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = from_windows(self.attn(to_windows(y, window), mask if self.shift else None), window, *y.shape[1:3])
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y[:, :height, :width])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinStage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows, then (except the last stage) patch merging.

    ``forward`` returns ``(output before merging (B, H, W, C), input of the next stage (B, H/2, W/2, 2C))``.
    """

    def __init__(
        self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float, drop_path: Sequence[float],
        downsample: bool, unfold_order: bool = False,
    ) -> None:
        super().__init__()
        self.window, self.shift = window, window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, unfold_order) if downsample else None
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = x.shape[1:3]
        padded = (padded_size(height, self.window), padded_size(width, self.window))
        mask = shift_attention_mask(*padded, self.window, self.shift, x.device)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, mask, use_reentrant=False)
            else:
                x = block(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` convolution (input zero-padded to a multiple of it) and LayerNorm."""

    def __init__(self, in_chans: int, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, H/patch, W/patch, dim)`` (rounded up)."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % self.patch, 0, (-height) % self.patch))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinBackbone(nn.Module):
    """Swin Transformer returning the patch-embedding map and every stage's normalised output.

    Args:
        embed_dim: channels after patch embedding (doubled at each stage).
        depths / num_heads: blocks and attention heads per stage.
        window: attention window in tokens. mlp_ratio: MLP hidden width / channels.
        drop_path_rate: stochastic depth, rising linearly from 0 to this over all blocks.
        patch: patch size (stride of the first map).
        norm_stages: the stages given an output LayerNorm ``norm{i}`` (None: all).
        unfold_order: merge patches in mmdet's ``nn.Unfold`` channel order (:class:`PatchMerging`).

    ``forward((B, in_chans, H, W))`` -> ``[(B, embed_dim, H/4, W/4), (B, embed_dim, H/4, W/4),
    (B, 2 embed_dim, H/8, W/8), (B, 4 embed_dim, H/16, W/16), (B, 8 embed_dim, H/32, W/32)]`` (NCHW; sizes
    rounded up). ``grad_checkpointing = True`` recomputes the blocks in the backward pass to save memory.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
        in_chans: int = 3,
        patch: int = 4,
        norm_stages: Sequence[int] | None = None,
        unfold_order: bool = False,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        self.channels = [embed_dim] + [embed_dim * 2**i for i in range(len(depths))]
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(SwinStage(
                embed_dim * 2**i, depth, num_heads[i], window, mlp_ratio, rates[start : start + depth],
                downsample=i < len(depths) - 1, unfold_order=unfold_order,
            ))
        for i in range(len(depths)) if norm_stages is None else norm_stages:
            self.add_module(f"norm{i}", nn.LayerNorm(embed_dim * 2**i))

    @property
    def grad_checkpointing(self) -> bool:
        return self.layers[0].grad_checkpointing

    @grad_checkpointing.setter
    def grad_checkpointing(self, enabled: bool) -> None:
        for stage in self.layers:
            stage.grad_checkpointing = bool(enabled)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        outputs = [x.permute(0, 3, 1, 2)]
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            outputs.append(getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2))
        return outputs


#: The zoo's Swin names -> mmdet's ``SwinTransformer`` names (the same parameters).
MMDET_NAMES = (("patch_embed.proj.", "patch_embed.projection."), ("layers.", "stages."),
               (".attn.", ".attn.w_msa."), (".mlp.fc1.", ".ffn.layers.0.0."), (".mlp.fc2.", ".ffn.layers.1."))


def _renamed(name: str, pairs: Sequence[tuple[str, str]]) -> str:
    for old, new in pairs:
        if name.startswith(old) or (old.startswith(".") and old in name):
            name = name.replace(old, new, 1)
    return name


class MMDetSwin(SwinBackbone):
    """mmdet's ``SwinTransformer`` as the BEVDet family configures it (DHD-L: Swin-B, window 12): the zoo's Swin
    with mmdet's state-dict layout (``patch_embed.projection``, ``stages.N.blocks.M.attn.w_msa``, ``ffn.layers``,
    ``stages.N.downsample``, ``norm{i}`` for the ``out_indices`` only) and its patch-merging channel order.

    ``forward((B, 3, H, W))`` -> ``[stage 0's raw output (B, C, H/4, W/4)]`` (with ``stereo``, the stereo
    features: mmdet's ``return_stereo_feat``) ``+ [norm_i(stage i) (B, C 2^i, H/2^(i+2), W/2^(i+2)) for i in
    out_indices]``; :meth:`stereo_features` runs only as far as stage 0.
    """

    def __init__(self, embed_dim: int = 128, depths: Sequence[int] = (2, 2, 18, 2),
                 num_heads: Sequence[int] = (4, 8, 16, 32), window: int = 12, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.1, out_indices: Sequence[int] = (2, 3), stereo: bool = False) -> None:
        super().__init__(embed_dim, depths, num_heads, window, mlp_ratio, drop_path_rate, norm_stages=out_indices,
                         unfold_order=True)
        self.out_indices, self.stereo = tuple(out_indices), stereo
        self.channels = [embed_dim] * stereo + [embed_dim * 2**i for i in self.out_indices]  # what forward returns
        self.register_state_dict_post_hook(self._to_mmdet_names)
        self.register_load_state_dict_pre_hook(self._from_mmdet_names)

    @staticmethod
    def _to_mmdet_names(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
        own = [k for k in state_dict if k.startswith(prefix)]  # the last entries: this module's, in order
        for key in own:
            state_dict[prefix + _renamed(key[len(prefix):], MMDET_NAMES)] = state_dict.pop(key)

    @staticmethod
    def _from_mmdet_names(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
        back = [(new, old) for old, new in MMDET_NAMES[::-1]]
        for key in [k for k in state_dict if k.startswith(prefix)]:
            state_dict[prefix + _renamed(key[len(prefix):], back)] = state_dict.pop(key)

    def stereo_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> stage 0's raw output ``(B, C, H/4, W/4)``."""
        return self.layers[0](self.patch_embed(x))[0].permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        outputs = []
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            if i == 0 and self.stereo:
                outputs.append(out.permute(0, 3, 1, 2))
            if i in self.out_indices:
                outputs.append(getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2))
        return outputs
