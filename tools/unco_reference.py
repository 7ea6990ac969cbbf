#!/usr/bin/python3
"""
PyTorch reference for Flaneur's UnCo decoder step (native/count/unco-step.ts), written from the official code
(lukasknobel/SelfCollages: src/models/UnCounTRModel.py forward_encode_exemplars / forward_interaction_module with
the default arguments — shared frozen encoder, shared feature space, no exemplar attention, no similarity
weighting, no unified FIM, no split head; src/models/modules/Attention.py CrossAttentionBlock; DensityMapDecoder.py;
src/util/losses/DensityMSELoss.py; TrainHandling.py's AdamW over the counting parameters).

The frozen backbone's outputs come in as data: query patch features [B, N, Denc] and exemplar features [B, S, Denc]
(the official backbone_att pooling of the exemplar crops, done outside the step). A tiny decoder: fim_embed, fixed
2-D sin-cos position embedding, `depth` CrossAttentionBlocks (self-attention, cross-attention to the embedded
exemplars, MLP), fim_norm, then log2(patch) stages of Conv3x3 + GroupNorm(8) + ReLU (+ Conv1x1 to one channel in the
last) each followed by bilinear x2 upsampling (align_corners=False). Loss: DensityMSELoss with the mask as data
(independent per sample, keep-object-pixels). With shots = 0 (the reference-less mode) the exemplars are the
learned shot token. Step 1: the density map, count, loss and gradients of every trainable parameter; then 5 AdamW
steps (lr, wd 1e-2 on every counting parameter, as the official optimiser). A parameter without a gradient (the shot
token when exemplars are given) is left alone, as torch's AdamW does.

Writes tests/fixtures/count/unco_tiny.safetensors. Run with Debian's python3-torch:
    /usr/bin/python3 tools/unco_reference.py
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "count")
CFG = {"encoder_dim": 24, "grid": 4, "patch": 4, "embed": 32, "depth": 2, "heads": 4, "mlp_ratio": 4.0,
       "upsampling_dim": 16, "groups": 8, "batch": 2, "shots": 3}
STEPS = 5
LR = [1e-3, 9e-4, 8e-4, 7e-4, 6e-4]
WD = 1e-2
BETAS = (0.9, 0.999)
EPS = 1e-8
SCALING = 60.0
MASK_PROB = 0.2


def sincos_pos_embed(dim, grid):
    """get_2d_sincos_pos_embed (MAE), float64 then float32 as the official."""
    gh = np.arange(grid, dtype=np.float32)
    gw = np.arange(grid, dtype=np.float32)
    g = np.stack(np.meshgrid(gw, gh), axis=0).reshape([2, 1, grid, grid])

    def one(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one(dim // 2, g[0]), one(dim // 2, g[1])], axis=1)


class Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.scale = (d // heads) ** -0.5
        self.qkv = nn.Linear(d, d * 3, bias=True)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.scale = (d // heads) ** -0.5
        self.wq = nn.Linear(d, d, bias=True)
        self.wk = nn.Linear(d, d, bias=True)
        self.wv = nn.Linear(d, d, bias=True)
        self.proj = nn.Linear(d, d)

    def forward(self, x, y):
        B, Nx, C = x.shape
        Ny = y.shape[1]
        h = self.heads
        q = self.wq(x).reshape(B, Nx, h, C // h).permute(0, 2, 1, 3)
        k = self.wk(y).reshape(B, Ny, h, C // h).permute(0, 2, 1, 3)
        v = self.wv(y).reshape(B, Ny, h, C // h).permute(0, 2, 1, 3)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, Nx, C))


class CrossAttentionBlock(nn.Module):
    def __init__(self, d, heads, mlp_ratio):
        super().__init__()
        self.norm0 = nn.LayerNorm(d)
        self.selfattn = Attention(d, heads)
        self.norm1 = nn.LayerNorm(d)
        self.attn = CrossAttention(d, heads)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = Mlp(d, int(d * mlp_ratio))

    def forward(self, x, y):
        x = x + self.selfattn(self.norm0(x))
        x = x + self.attn(self.norm1(x), y)
        return x + self.mlp(self.norm2(x))


class DensityMapDecoder(nn.Module):
    def __init__(self, d, factor, up_dim, groups):
        super().__init__()
        n = int(math.log2(factor))
        dims = [d] + [up_dim] * n
        stages = []
        for i, (ci, co) in enumerate(zip(dims[:-1], dims[1:])):
            layers = [nn.Conv2d(ci, co, 3, 1, 1), nn.GroupNorm(groups, co), nn.ReLU()]
            if i == n - 1:
                layers.append(nn.Conv2d(co, 1, 1, 1))
            stages.append(nn.Sequential(*layers))
        self.pred_head = nn.ModuleList(stages)

    def forward(self, x):
        n, hw, c = x.shape
        h = int(math.sqrt(hw))
        x = x.transpose(1, 2).reshape(n, c, h, h)
        for layer in self.pred_head:
            x = layer(x)
            x = F.interpolate(x, size=x.shape[-1] * 2, mode="bilinear", align_corners=False)
        return x.squeeze(-3)


class UncoDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["embed"]
        self.shot_token = nn.Parameter(torch.zeros(c["encoder_dim"]))
        self.fim_embed = nn.Linear(c["encoder_dim"], d)
        self.register_buffer("fim_pos_embed", torch.from_numpy(sincos_pos_embed(d, c["grid"])).float().unsqueeze(0))
        self.fim_blocks = nn.ModuleList([CrossAttentionBlock(d, c["heads"], c["mlp_ratio"]) for _ in range(c["depth"])])
        self.fim_norm = nn.LayerNorm(d)
        self.pred_head = DensityMapDecoder(d, c["patch"], c["upsampling_dim"], c["groups"])
        torch.nn.init.normal_(self.shot_token, std=0.02)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

    def forward(self, latent, exemplars):
        if exemplars is None:
            exemplars = self.shot_token.repeat(latent.shape[0], 1, 1)
        x = self.fim_embed(latent)
        e = self.fim_embed(exemplars)
        x = x + self.fim_pos_embed
        for blk in self.fim_blocks:
            x = blk(x, e)
        return self.pred_head(self.fim_norm(x))


def density_loss(pred, gt, mask):
    return ((pred - gt) ** 2 * mask).mean()


def run(mode, c, model0, latent, exemplars, gt, masks, out):
    model = UncoDecoder(c)
    model.load_state_dict(model0.state_dict())
    params = dict(model.named_parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=LR[0], betas=BETAS, eps=EPS, weight_decay=WD)
    losses = []
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = LR[step]
        pred = model(latent, exemplars)
        loss = density_loss(pred, gt, masks[step])
        opt.zero_grad()
        loss.backward()
        if step == 0:
            out[f"{mode}.pred"] = pred.detach().clone()
            out[f"{mode}.count"] = (pred.detach().sum(dim=(1, 2)) / SCALING).clip(0)
            for k, p in params.items():
                if p.grad is not None:
                    out[f"{mode}.grad.{k}"] = p.grad.detach().clone()
        opt.step()
        losses.append(loss.item())
    for k, p in params.items():
        out[f"{mode}.final.{k}"] = p.detach().clone()
    out[f"{mode}.losses"] = torch.tensor(losses)
    return losses


def main():
    torch.manual_seed(0)
    np.random.seed(0)
    c = CFG
    B, N, S = c["batch"], c["grid"] ** 2, c["grid"] * c["patch"]
    model0 = UncoDecoder(c)
    latent = torch.randn(B, N, c["encoder_dim"])
    exemplars = torch.randn(B, c["shots"], c["encoder_dim"])
    # A density target: a few Gaussian blobs per sample, mass SCALING each.
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    gt = torch.zeros(B, S, S)
    for b in range(B):
        for _ in range(2 + b):
            cy, cx = torch.randint(2, S - 2, (2,)).tolist()
            blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.5 ** 2))
            gt[b] += SCALING * blob / blob.sum()
    gt[gt < 1e-3] = 0
    # DensityMSELoss masks: independent per sample, object pixels always kept.
    masks = []
    for _ in range(STEPS):
        m = torch.from_numpy(np.random.binomial(n=1, p=1 - MASK_PROB, size=gt.shape)).bool()
        masks.append((m | (gt > 0)).float())
    masks = torch.stack(masks)
    out = {f"init.{k}": v.detach().clone() for k, v in model0.named_parameters()}
    out["pos_embed"] = model0.fim_pos_embed[0].clone()
    out["latent"] = latent
    out["exemplars"] = exemplars
    out["gt"] = gt
    out["masks"] = masks
    l1 = run("shots", c, model0, latent, exemplars, gt, masks, out)
    l0 = run("zero", c, model0, latent, None, gt, masks, out)
    meta = {"generator": "tools/unco_reference.py", "config": json.dumps(c), "steps": STEPS, "lr": json.dumps(LR),
            "wd": WD, "betas": json.dumps(BETAS), "eps": EPS, "scaling": SCALING, "torch": torch.__version__}
    os.makedirs(OUT, exist_ok=True)
    safetensors_io.save(os.path.join(OUT, "unco_tiny.safetensors"), out, meta)
    print("losses with exemplars", l1)
    print("losses reference-less", l0)


if __name__ == "__main__":
    main()
