"""UnCo's counting decoder in PyTorch, written from the official UnCounTRModel.py (lukasknobel/SelfCollages, MIT) with
its default arguments, as Flaneur's native/count/unco-step.ts builds it: the frozen backbone's patch features and
the exemplars' features each go through `fim_embed`; fixed 2-D sin-cos positions on the query; `depth` blocks of
self-attention, cross-attention to the embedded exemplars and an MLP (pre-norm, residual); `fim_norm`; then the
DensityMapDecoder: log2(patch) stages of Conv3x3 + GroupNorm + ReLU (a Conv1x1 to one channel closing the last),
each followed by bilinear x2 upsampling. The reference-less mode (shots 0) uses the learned shot token as its only
exemplar. Parameter names are the official state_dict names, which Flaneur reads back (flaneur train import-unco).

Loss: the official DensityMSELoss (mask of kept pixels, independent per sample, pixels with target mass always
kept), on a map whose every object weighs `scaling`."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos_positions(dim, grid):
    """MAE's 2-D sin-cos embedding [grid*grid, dim]: half the channels for x, half for y."""
    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing="ij")

    def axis(d, pos):
        freq = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        angle = np.outer(pos.reshape(-1), freq)
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)

    return torch.from_numpy(np.concatenate([axis(dim // 2, xs), axis(dim // 2, ys)], axis=1)).float()


class SelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)).softmax(-1)
        return self.proj((w @ v).transpose(1, 2).reshape(b, n, d))


class CrossAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.wq, self.wk, self.wv, self.proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, y):
        b, n, d = x.shape
        h = self.heads
        heads = lambda t: t.reshape(b, t.shape[1], h, d // h).transpose(1, 2)
        q, k, v = heads(self.wq(x)), heads(self.wk(y)), heads(self.wv(y))
        w = (q @ k.transpose(-2, -1) / math.sqrt(d // h)).softmax(-1)
        return self.proj((w @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, d, heads, mlp_ratio):
        super().__init__()
        self.norm0, self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.selfattn = SelfAttention(d, heads)
        self.attn = CrossAttention(d, heads)
        self.mlp = Mlp(d, int(d * mlp_ratio))

    def forward(self, x, y):
        x = x + self.selfattn(self.norm0(x))
        x = x + self.attn(self.norm1(x), y)
        return x + self.mlp(self.norm2(x))


class DensityHead(nn.Module):
    """The official DensityMapDecoder; `pred_head.pred_head.i.{0,1,3}` in the state_dict."""

    def __init__(self, d, patch, channels, groups):
        super().__init__()
        n = int(round(math.log2(patch)))
        stages = []
        for i in range(n):
            layers = [nn.Conv2d(d if i == 0 else channels, channels, 3, padding=1), nn.GroupNorm(groups, channels), nn.ReLU()]
            if i == n - 1:
                layers.append(nn.Conv2d(channels, 1, 1))
            stages.append(nn.Sequential(*layers))
        self.pred_head = nn.ModuleList(stages)

    def forward(self, x):
        b, n, c = x.shape
        side = int(round(math.sqrt(n)))
        x = x.transpose(1, 2).reshape(b, c, side, side)
        for stage in self.pred_head:
            x = F.interpolate(stage(x), scale_factor=2, mode="bilinear", align_corners=False)
        return x[:, 0]


class UncoDecoder(nn.Module):
    """Flaneur's UncoConfig (encoderDim, grid, patch, embed, depth, heads, mlpRatio, upsamplingDim, groups, shots)."""

    def __init__(self, c):
        super().__init__()
        d = c["embed"]
        self.shots = c["shots"]
        self.shot_token = nn.Parameter(torch.zeros(c["encoderDim"]))
        self.fim_embed = nn.Linear(c["encoderDim"], d)
        self.register_buffer("positions", sincos_positions(d, c["grid"]).unsqueeze(0), persistent=False)
        self.fim_blocks = nn.ModuleList(Block(d, c["heads"], c["mlpRatio"]) for _ in range(c["depth"]))
        self.fim_norm = nn.LayerNorm(d)
        self.pred_head = DensityHead(d, c["patch"], c["upsamplingDim"], c.get("groups", 8))

    def forward(self, latent, exemplars=None):
        """latent [B, grid², encoderDim], exemplars [B, shots, encoderDim] (None: the shot token) → [B, S, S]."""
        if exemplars is None:
            exemplars = self.shot_token.expand(latent.shape[0], 1, -1)
        x = self.fim_embed(latent) + self.positions
        y = self.fim_embed(exemplars)
        for block in self.fim_blocks:
            x = block(x, y)
        return self.pred_head(self.fim_norm(x))


def density_loss(pred, target, generator, mask_prob=0.2):
    """DensityMSELoss: squared error on the pixels kept (each with probability 1 - mask_prob, target mass always)."""
    keep = (torch.rand(target.shape, generator=generator) >= mask_prob).to(target.device) | (target > 0)
    return ((pred - target) ** 2 * keep).mean()
