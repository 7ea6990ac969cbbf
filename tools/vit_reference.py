#!/usr/bin/python3
"""
Reference DINO and DINOv2 Vision Transformers, written here to match the published architectures (the official
facebookresearch/dino and dinov2 code), used to make golden fixtures for Flaneur's own ONNX graphs.

Writes into tests/fixtures/vit/:
  <model>.official.safetensors   weights in the official DINO / DINOv2 (timm-style) names
  <model>.hf.safetensors         the same weights in Hugging Face transformers names (ViTModel / Dinov2WithRegisters)
  <model>.official.bf16.safetensors   (dino_tiny only) the weights in bfloat16
  <model>.<H>x<W>.expected.safetensors   input pixels and expected cls, patches, q, k, attention, block0

Run with Debian's python3-torch:  /usr/bin/python3 tools/vit_reference.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "vit")


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_hidden, eps, layer_scale):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, mlp_hidden)
        self.fc2 = nn.Linear(mlp_hidden, dim)
        self.ls1 = nn.Parameter(torch.ones(dim)) if layer_scale else None
        self.ls2 = nn.Parameter(torch.ones(dim)) if layer_scale else None

    def forward(self, x, keep):
        B, T, D = x.shape
        hd = D // self.heads
        qkv = self.qkv(self.norm1(x))
        q, k, v = qkv[..., :D], qkv[..., D : 2 * D], qkv[..., 2 * D :]
        split = lambda t: t.reshape(B, T, self.heads, hd).permute(0, 2, 1, 3)
        attn = ((split(q) * hd**-0.5) @ split(k).transpose(-2, -1)).softmax(dim=-1)
        ctx = (attn @ split(v)).transpose(1, 2).reshape(B, T, D)
        a = self.proj(ctx)
        if self.ls1 is not None:
            a = a * self.ls1
        x = x + a
        f = self.fc2(F.gelu(self.fc1(self.norm2(x))))
        if self.ls2 is not None:
            f = f * self.ls2
        return x + f, q[:, keep], k[:, keep], attn


class ViT(nn.Module):
    def __init__(self, patch, dim, depth, heads, mlp_hidden, registers, layer_scale, eps, pos_grid):
        super().__init__()
        self.patch, self.dim, self.registers, self.pos_grid = patch, dim, registers, pos_grid
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim)) if registers else None
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_hidden, eps, layer_scale) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def interpolate_pos(self, gh, gw):
        # As the official code: bicubic with scale factor (n + 0.1) / N on the (rows, cols) of the grid.
        pos = self.pos_embed
        if gh == self.pos_grid and gw == self.pos_grid:
            return pos
        N = self.pos_grid
        patch_pos = pos[:, 1:].reshape(1, N, N, self.dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, scale_factor=((gh + 0.1) / N, (gw + 0.1) / N), mode="bicubic")
        assert patch_pos.shape[-2:] == (gh, gw)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, gh * gw, self.dim)
        return torch.cat([pos[:, :1], patch_pos], dim=1)

    def forward(self, x):
        B, _, H, W = x.shape
        gh, gw = H // self.patch, W // self.patch
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.interpolate_pos(gh, gw)
        R = self.registers
        if R:
            x = torch.cat([x[:, :1], self.register_tokens.expand(B, -1, -1), x[:, 1:]], dim=1)
        keep = [0] + list(range(1 + R, x.shape[1]))
        outs = {}
        for i, blk in enumerate(self.blocks):
            x, q, k, attn = blk(x, keep)
            if i == 0:
                outs["block0"] = x[:, keep]
        x = self.norm(x)
        outs.update(
            cls=x[:, 0],
            patches=x[:, 1 + R :],
            q=q,
            k=k,
            attention=attn[:, :, 0, 1 + R :],
        )
        return outs


def official_state(m: ViT):
    s = {
        "cls_token": m.cls_token,
        "pos_embed": m.pos_embed,
        "patch_embed.proj.weight": m.patch_embed.weight,
        "patch_embed.proj.bias": m.patch_embed.bias,
        "norm.weight": m.norm.weight,
        "norm.bias": m.norm.bias,
    }
    if m.register_tokens is not None:
        s["register_tokens"] = m.register_tokens
        s["mask_token"] = torch.zeros(1, m.dim)
    for i, b in enumerate(m.blocks):
        p = f"blocks.{i}."
        s.update({
            p + "norm1.weight": b.norm1.weight, p + "norm1.bias": b.norm1.bias,
            p + "attn.qkv.weight": b.qkv.weight, p + "attn.qkv.bias": b.qkv.bias,
            p + "attn.proj.weight": b.proj.weight, p + "attn.proj.bias": b.proj.bias,
            p + "norm2.weight": b.norm2.weight, p + "norm2.bias": b.norm2.bias,
            p + "mlp.fc1.weight": b.fc1.weight, p + "mlp.fc1.bias": b.fc1.bias,
            p + "mlp.fc2.weight": b.fc2.weight, p + "mlp.fc2.bias": b.fc2.bias,
        })
        if b.ls1 is not None:
            s[p + "ls1.gamma"] = b.ls1
            s[p + "ls2.gamma"] = b.ls2
    return s


def hf_state(m: ViT, dinov2: bool):
    D = m.dim
    s = {
        "embeddings.cls_token": m.cls_token,
        "embeddings.position_embeddings": m.pos_embed,
        "embeddings.patch_embeddings.projection.weight": m.patch_embed.weight,
        "embeddings.patch_embeddings.projection.bias": m.patch_embed.bias,
        "layernorm.weight": m.norm.weight,
        "layernorm.bias": m.norm.bias,
    }
    if dinov2:
        s["embeddings.mask_token"] = torch.zeros(1, D)
        if m.register_tokens is not None:
            s["embeddings.register_tokens"] = m.register_tokens
    else:
        s["pooler.dense.weight"] = torch.eye(D)
        s["pooler.dense.bias"] = torch.zeros(D)
    for i, b in enumerate(m.blocks):
        p = f"encoder.layer.{i}."
        for j, n in enumerate(["query", "key", "value"]):
            s[p + f"attention.attention.{n}.weight"] = b.qkv.weight[j * D : (j + 1) * D]
            s[p + f"attention.attention.{n}.bias"] = b.qkv.bias[j * D : (j + 1) * D]
        s[p + "attention.output.dense.weight"] = b.proj.weight
        s[p + "attention.output.dense.bias"] = b.proj.bias
        if dinov2:
            s.update({
                p + "norm1.weight": b.norm1.weight, p + "norm1.bias": b.norm1.bias,
                p + "norm2.weight": b.norm2.weight, p + "norm2.bias": b.norm2.bias,
                p + "mlp.fc1.weight": b.fc1.weight, p + "mlp.fc1.bias": b.fc1.bias,
                p + "mlp.fc2.weight": b.fc2.weight, p + "mlp.fc2.bias": b.fc2.bias,
                p + "layer_scale1.lambda1": b.ls1, p + "layer_scale2.lambda1": b.ls2,
            })
        else:
            s.update({
                p + "layernorm_before.weight": b.norm1.weight, p + "layernorm_before.bias": b.norm1.bias,
                p + "layernorm_after.weight": b.norm2.weight, p + "layernorm_after.bias": b.norm2.bias,
                p + "intermediate.dense.weight": b.fc1.weight, p + "intermediate.dense.bias": b.fc1.bias,
                p + "output.dense.weight": b.fc2.weight, p + "output.dense.bias": b.fc2.bias,
            })
    return s


def randomize(m: ViT, gen):
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
                if name in ("cls_token", "pos_embed", "register_tokens"):
                    fan_in = 4
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


MODELS = {
    # name: (constructor kwargs, dinov2?, sizes)
    "dino_tiny": (dict(patch=16, dim=48, depth=2, heads=3, mlp_hidden=96, registers=0, layer_scale=False, eps=1e-6, pos_grid=14), False, [(224, 224), (160, 192)]),
    "dinov2reg_tiny": (dict(patch=14, dim=48, depth=2, heads=3, mlp_hidden=192, registers=4, layer_scale=True, eps=1e-6, pos_grid=16), True, [(224, 224), (168, 196)]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for name, (kw, dinov2, sizes) in MODELS.items():
        gen = torch.Generator().manual_seed(1234 if dinov2 else 42)
        m = ViT(**kw).eval()
        randomize(m, gen)
        meta = {"generator": "tools/vit_reference.py", "model": name, **{k: v for k, v in kw.items()}}
        safetensors_io.save(os.path.join(OUT, f"{name}.official.safetensors"), official_state(m), meta)
        safetensors_io.save(os.path.join(OUT, f"{name}.hf.safetensors"), hf_state(m, dinov2), meta)
        if name == "dino_tiny":
            bf = {k: v.to(torch.bfloat16) for k, v in official_state(m).items()}
            safetensors_io.save(os.path.join(OUT, f"{name}.official.bf16.safetensors"), bf, meta)
        for (h, w) in sizes:
            x = torch.randn(2, 3, h, w, generator=gen)
            with torch.no_grad():
                outs = m(x)
            tensors = {"input": x, **outs}
            safetensors_io.save(os.path.join(OUT, f"{name}.{h}x{w}.expected.safetensors"), tensors, {"generator": "tools/vit_reference.py"})
            print(name, h, w, {k: tuple(v.shape) for k, v in tensors.items()})


if __name__ == "__main__":
    main()
