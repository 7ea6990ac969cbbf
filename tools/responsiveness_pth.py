#!/usr/bin/python3
"""
A DINO training checkpoint of about 50 MB for `npm run bench -- responsiveness` (the `.pth` import it times):
teacher and student ViT-Ti/16 backbones at 224 px in the official DINO names with `module.backbone.` prefixes,
small heads, an optimizer stub and args, as torch.save writes it (zip format). Random weights, seeded.

Run with Debian's python3-torch:  /usr/bin/python3 tools/responsiveness_pth.py OUT.pth
"""
import argparse
import collections
import sys

import torch


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
    teacher = collections.OrderedDict(("module.backbone." + k, v.clone()) for k, v in backbone.items())
    student = collections.OrderedDict(
        ("module.backbone." + k, v + 0.01 * torch.randn(v.shape, generator=gen)) for k, v in backbone.items()
    )
    for sd in (teacher, student):
        sd["module.head.mlp.0.weight"] = torch.randn(2048, 192, generator=gen)
        sd["module.head.mlp.0.bias"] = torch.zeros(2048)
        sd["module.head.last_layer.weight_g"] = torch.ones(256, 1)
        sd["module.head.last_layer.weight_v"] = torch.randn(256, 2048, generator=gen)
    ckpt = {
        "student": student,
        "teacher": teacher,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.0005, "weight_decay": 0.04, "params": [0, 1, 2]}]},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_tiny", patch_size=16, out_dim=256, lr=0.0005, momentum_teacher=0.996),
        "dino_loss": collections.OrderedDict(center=torch.zeros(1, 256)),
        "fp16_scaler": None,
    }
    torch.save(ckpt, out)


if __name__ == "__main__":
    main()
