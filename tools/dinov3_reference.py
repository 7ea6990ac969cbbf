#!/usr/bin/python3
"""
A reference DINOv3 Vision Transformer, written here from the published architecture (facebookresearch/dinov3,
dinov3/models/vision_transformer.py and dinov3/layers: axial 2-D RoPE on patch tokens only, CLS + storage
(register) tokens, layer scale, GELU MLP or SwiGLU FFN, masked key bias), for golden fixtures of Flaneur's graph.

Writes into tests/fixtures/dinov3/:
  <model>.official.safetensors   weights in the official dinov3 names (storage_tokens, rope_embed.periods,
                                 blocks.N.attn.qkv.bias_mask, ...); the key bias is non-zero and masked
  <model>.hf.safetensors         the same weights in Hugging Face DINOv3ViTModel names (q/k/v/o_proj, no key bias)
  dinov3_tiny.official.pth       the official state dict as torch.save writes it (zip format)
  <model>.<H>x<W>.expected.safetensors   input and expected cls, patches, q, k (after RoPE), attention, block0

Models: dinov3_tiny (GELU MLP) and dinov3swiglu_tiny (SwiGLU), dim 64, 4 heads, 2 blocks, patch 16, 4 registers.
Run with Debian's python3-torch:  /usr/bin/python3 tools/dinov3_reference.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "dinov3")


def rope_tables(periods, gh, gw):
    """sin, cos [gh*gw, head_dim]: patch centres in [-1, 1] per axis (separately normalised), angles 2*pi*c/period
    for the row coordinate then the column coordinate, the whole tiled twice."""
    ys = (torch.arange(gh, dtype=torch.float32) + 0.5) / gh
    xs = (torch.arange(gw, dtype=torch.float32) + 0.5) / gw
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2) * 2.0 - 1.0  # [N, 2]
    ang = (2 * math.pi * grid[:, :, None] / periods[None, None, :]).reshape(grid.shape[0], -1)  # [N, hd/2]
    ang = torch.cat([ang, ang], dim=-1)  # [N, hd]
    return torch.sin(ang), torch.cos(ang)


def rotate(x, sin, cos):
    half = x.shape[-1] // 2
    swapped = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + swapped * sin


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, swiglu, eps):
        super().__init__()
        self.heads, self.swiglu = heads, swiglu
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.register_buffer("bias_mask", torch.cat([torch.ones(dim), torch.zeros(dim), torch.ones(dim)]))
        self.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        if swiglu:
            self.w1 = nn.Linear(dim, hidden)
            self.w2 = nn.Linear(dim, hidden)
            self.w3 = nn.Linear(hidden, dim)
        else:
            self.fc1 = nn.Linear(dim, hidden)
            self.fc2 = nn.Linear(hidden, dim)
        self.ls2 = nn.Parameter(torch.ones(dim))

    def forward(self, x, sin, cos, keep):
        B, T, D = x.shape
        hd = D // self.heads
        qkv = F.linear(self.norm1(x), self.qkv.weight, self.qkv.bias * self.bias_mask)
        q, k, v = qkv.reshape(B, T, 3, self.heads, hd).unbind(2)  # each [B, T, H, hd]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        n = sin.shape[0]
        q = torch.cat([q[:, :, : T - n], rotate(q[:, :, T - n :], sin, cos)], dim=2)
        k = torch.cat([k[:, :, : T - n], rotate(k[:, :, T - n :], sin, cos)], dim=2)
        attn = ((q * hd**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(ctx) * self.ls1
        h = self.norm2(x)
        f = self.w3(F.silu(self.w1(h)) * self.w2(h)) if self.swiglu else self.fc2(F.gelu(self.fc1(h)))
        x = x + f * self.ls2
        flat = lambda t: t.transpose(1, 2).reshape(B, T, D)[:, keep]
        return x, flat(q), flat(k), attn


class DinoV3(nn.Module):
    def __init__(self, patch, dim, depth, heads, hidden, registers, swiglu, eps=1e-5, base=100.0):
        super().__init__()
        self.patch, self.dim, self.registers, self.heads = patch, dim, registers, heads
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.storage_tokens = nn.Parameter(torch.zeros(1, registers, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        hd = dim // heads
        self.register_buffer("periods", base ** (2 * torch.arange(hd // 4, dtype=torch.float32) / (hd // 2)))
        self.blocks = nn.ModuleList([Block(dim, heads, hidden, swiglu, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        B, _, H, W = x.shape
        gh, gw = H // self.patch, W // self.patch
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        R = self.registers
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.storage_tokens.expand(B, -1, -1), x], dim=1)
        sin, cos = rope_tables(self.periods, gh, gw)
        keep = [0] + list(range(1 + R, x.shape[1]))
        outs = {}
        for i, blk in enumerate(self.blocks):
            x, q, k, attn = blk(x, sin, cos, keep)
            if i == 0:
                outs["block0"] = x[:, keep]
        x = self.norm(x)
        outs.update(cls=x[:, 0], patches=x[:, 1 + R :], q=q, k=k, attention=attn[:, :, 0, 1 + R :])
        return outs


def official_state(m):
    s = {
        "cls_token": m.cls_token,
        "storage_tokens": m.storage_tokens,
        "mask_token": m.mask_token,
        "patch_embed.proj.weight": m.patch_embed.weight,
        "patch_embed.proj.bias": m.patch_embed.bias,
        "rope_embed.periods": m.periods,
        "norm.weight": m.norm.weight,
        "norm.bias": m.norm.bias,
    }
    for i, b in enumerate(m.blocks):
        p = f"blocks.{i}."
        s.update({
            p + "norm1.weight": b.norm1.weight, p + "norm1.bias": b.norm1.bias,
            p + "attn.qkv.weight": b.qkv.weight, p + "attn.qkv.bias": b.qkv.bias,
            p + "attn.qkv.bias_mask": b.bias_mask,
            p + "attn.proj.weight": b.proj.weight, p + "attn.proj.bias": b.proj.bias,
            p + "ls1.gamma": b.ls1, p + "ls2.gamma": b.ls2,
            p + "norm2.weight": b.norm2.weight, p + "norm2.bias": b.norm2.bias,
        })
        names = ("w1", "w2", "w3") if b.swiglu else ("fc1", "fc2")
        for n in names:
            s[p + f"mlp.{n}.weight"] = getattr(b, n).weight
            s[p + f"mlp.{n}.bias"] = getattr(b, n).bias
    return s


def hf_state(m):
    D = m.dim
    s = {
        "embeddings.cls_token": m.cls_token,
        "embeddings.register_tokens": m.storage_tokens,
        "embeddings.mask_token": m.mask_token.reshape(1, 1, D),
        "embeddings.patch_embeddings.weight": m.patch_embed.weight,
        "embeddings.patch_embeddings.bias": m.patch_embed.bias,
        "norm.weight": m.norm.weight,
        "norm.bias": m.norm.bias,
    }
    for i, b in enumerate(m.blocks):
        p = f"layer.{i}."
        for j, n in enumerate(["q_proj", "k_proj", "v_proj"]):
            s[p + f"attention.{n}.weight"] = b.qkv.weight[j * D : (j + 1) * D]
            if n != "k_proj":  # Hugging Face's DINOv3 has no key bias (the official one is masked to zero)
                s[p + f"attention.{n}.bias"] = b.qkv.bias[j * D : (j + 1) * D]
        s.update({
            p + "attention.o_proj.weight": b.proj.weight, p + "attention.o_proj.bias": b.proj.bias,
            p + "norm1.weight": b.norm1.weight, p + "norm1.bias": b.norm1.bias,
            p + "norm2.weight": b.norm2.weight, p + "norm2.bias": b.norm2.bias,
            p + "layer_scale1.lambda1": b.ls1, p + "layer_scale2.lambda1": b.ls2,
        })
        pairs = (
            [("gate_proj", b.w1), ("up_proj", b.w2), ("down_proj", b.w3)]
            if b.swiglu
            else [("up_proj", b.fc1), ("down_proj", b.fc2)]
        )
        for n, lin in pairs:
            s[p + f"mlp.{n}.weight"] = lin.weight
            s[p + f"mlp.{n}.bias"] = lin.bias
    return s


def randomize(m, gen):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("ls1") or name.endswith("ls2"):
                p.copy_(0.5 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
                if p.dim() == 4:
                    fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                if name in ("cls_token", "storage_tokens", "mask_token"):
                    fan_in = 4
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def swiglu_hidden(hidden_features, align=8):
    d = int(hidden_features * 2 / 3)
    return d + (-d % align)


MODELS = {
    "dinov3_tiny": dict(patch=16, dim=64, depth=2, heads=4, hidden=256, registers=4, swiglu=False),
    "dinov3swiglu_tiny": dict(patch=16, dim=64, depth=2, heads=4, hidden=swiglu_hidden(256), registers=4, swiglu=True),
}
SIZES = [(224, 224), (160, 256)]


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, (name, kw) in enumerate(MODELS.items()):
        gen = torch.Generator().manual_seed(300 + seed)
        m = DinoV3(**kw).eval()
        randomize(m, gen)
        meta = {"generator": "tools/dinov3_reference.py", "model": name, **kw}
        state = official_state(m)
        safetensors_io.save(os.path.join(OUT, f"{name}.official.safetensors"), state, meta)
        safetensors_io.save(os.path.join(OUT, f"{name}.hf.safetensors"), hf_state(m), meta)
        if not kw["swiglu"]:
            torch.save({k: v.detach().clone() for k, v in state.items()}, os.path.join(OUT, f"{name}.official.pth"))
        for h, w in SIZES:
            x = torch.randn(1, 3, h, w, generator=gen)
            with torch.no_grad():
                outs = m(x)
            tensors = {"input": x, **outs}
            safetensors_io.save(
                os.path.join(OUT, f"{name}.{h}x{w}.expected.safetensors"), tensors, {"generator": "tools/dinov3_reference.py"}
            )
            print(name, h, w, {k: tuple(v.shape) for k, v in tensors.items()})


if __name__ == "__main__":
    main()
