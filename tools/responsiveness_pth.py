#!/usr/bin/python3
"""
A DINO training checkpoint of about 50 MB for `npm run bench -- responsiveness` (the `.pth` import it times):
teacher and student ViT-Ti/16 backbones at 224 px in the official DINO names with `module.backbone.` prefixes,
small heads, an optimizer stub and args, as torch.save writes it (zip format). Random weights, seeded.

Run with Debian's python3-torch:  /usr/bin/python3 tools/responsiveness_pth.py OUT.pth
"""
import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from pth_reference import dino_checkpoint  # noqa: E402


def vit_ti16(gen):
    dim, depth, mlp, tokens = 192, 12, 768, 197
    sd = collections.OrderedDict()
    sd["cls_token"] = torch.randn(1, 1, dim, generator=gen) * 0.02
    sd["pos_embed"] = torch.randn(1, tokens, dim, generator=gen) * 0.02
    sd["patch_embed.proj.weight"] = torch.randn(dim, 3, 16, 16, generator=gen) * 0.02
    sd["patch_embed.proj.bias"] = torch.zeros(dim)
    for i in range(depth):
        p = f"blocks.{i}."
        sd[p + "norm1.weight"] = torch.ones(dim)
        sd[p + "norm1.bias"] = torch.zeros(dim)
        sd[p + "attn.qkv.weight"] = torch.randn(3 * dim, dim, generator=gen) * 0.02
        sd[p + "attn.qkv.bias"] = torch.zeros(3 * dim)
        sd[p + "attn.proj.weight"] = torch.randn(dim, dim, generator=gen) * 0.02
        sd[p + "attn.proj.bias"] = torch.zeros(dim)
        sd[p + "norm2.weight"] = torch.ones(dim)
        sd[p + "norm2.bias"] = torch.zeros(dim)
        sd[p + "mlp.fc1.weight"] = torch.randn(mlp, dim, generator=gen) * 0.02
        sd[p + "mlp.fc1.bias"] = torch.zeros(mlp)
        sd[p + "mlp.fc2.weight"] = torch.randn(dim, mlp, generator=gen) * 0.02
        sd[p + "mlp.fc2.bias"] = torch.zeros(dim)
    sd["norm.weight"] = torch.ones(dim)
    sd["norm.bias"] = torch.zeros(dim)
    return sd


def main():
    out = sys.argv[1]
    gen = torch.Generator().manual_seed(0)
    backbone = vit_ti16(gen)
    args = argparse.Namespace(arch="vit_tiny", patch_size=16, out_dim=256, lr=0.0005, momentum_teacher=0.996)
    ckpt = dino_checkpoint(backbone, gen, noise=0.01, hidden=2048, dim=192, bottleneck=256, args=args)
    torch.save(ckpt, out)


if __name__ == "__main__":
    main()
