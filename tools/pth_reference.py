#!/usr/bin/python3
"""
PyTorch checkpoints written by torch.save, for Flaneur's TypeScript .pth reader (native/models/pytorch.ts).

The weights are the tiny ViTs of tools/vit_reference.py (read from tests/fixtures/vit/*.official.safetensors), so
a test can import each checkpoint and the matching .safetensors and compare. Writes into tests/fixtures/pth/:
  dino_tiny.zip.pth          state dict (OrderedDict with _metadata), zip format, f32, with a transposed
                             (strided) tensor and a tensor at an offset inside a larger storage
  dino_tiny.legacy.pth       the same, legacy format (_use_new_zipfile_serialization=False)
  dino_tiny.dino-checkpoint.pth   a DINO training checkpoint: teacher / student (different weights) with
                             module.backbone. prefixes and a module.head, optimizer, epoch, args (Namespace),
                             dino_loss center
  dino_tiny.f16.pth          f16 state dict (zip); dino_tiny.official.f16.safetensors the same weights
  dino_tiny.bf16.legacy.pth  bf16 state dict (legacy format); matches tests/fixtures/vit/dino_tiny.official.bf16
  dinov2reg_tiny.model.pth   {'model': {'backbone.' + name: ...}} (registers, layer scale)
  hostile-system.pth         a pickle whose REDUCE calls os.system (would create /tmp/flaneur-pickle-ran)
  hostile-eval.pth           a pickle (protocol 4) whose REDUCE calls builtins.eval (would create the same file)
  storage-past-end.pth       dino_tiny.zip.pth with one storage cut to half its bytes
  tensor-past-end.pth        dino_tiny.zip.pth with a tensor's storage offset moved past the end of its storage

Run with Debian's python3-torch:  /usr/bin/python3 tools/pth_reference.py
"""
import argparse
import collections
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
VIT = os.path.join(ROOT, "tests", "fixtures", "vit")
OUT = os.path.join(ROOT, "tests", "fixtures", "pth")
MARKER = "/tmp/flaneur-pickle-ran"


def state_dict(tensors):
    """An OrderedDict like nn.Module.state_dict(): with a _metadata attribute (pickled through BUILD)."""
    sd = collections.OrderedDict((k, tensors[k].clone()) for k in sorted(tensors))
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    return sd


def with_views(sd):
    """A transposed (non-contiguous) tensor and one at an offset inside a larger storage."""
    w = sd["blocks.0.mlp.fc1.weight"]
    sd["blocks.0.mlp.fc1.weight"] = w.t().contiguous().t()  # same values, strides (1, rows)
    b = sd["blocks.1.attn.qkv.bias"]
    big = torch.cat([torch.full((5,), 7.0), b, torch.full((3,), -7.0)])
    sd["blocks.1.attn.qkv.bias"] = big[5 : 5 + b.numel()]  # storage offset 5 in a storage of n + 8
    return sd


def dino_checkpoint(backbone, gen, noise, hidden, dim, bottleneck, args):
    """A DINO training checkpoint: teacher = `backbone`, student = it plus noise, both with module.backbone.
    prefixes and a module.head, an optimizer stub, epoch, args (Namespace) and the dino_loss center."""
    teacher = collections.OrderedDict(("module.backbone." + k, v.clone()) for k, v in backbone.items())
    student = collections.OrderedDict(
        ("module.backbone." + k, v + noise * torch.randn(v.shape, generator=gen)) for k, v in backbone.items()
    )
    for sd in (teacher, student):
        sd["module.head.mlp.0.weight"] = torch.randn(hidden, dim, generator=gen)
        sd["module.head.mlp.0.bias"] = torch.zeros(hidden)
        sd["module.head.last_layer.weight_g"] = torch.ones(bottleneck, 1)
        sd["module.head.last_layer.weight_v"] = torch.randn(bottleneck, hidden, generator=gen)
    return {
        "student": student,
        "teacher": teacher,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.0005, "weight_decay": 0.04, "params": [0, 1, 2]}]},
        "epoch": 100,
        "args": args,
        "dino_loss": collections.OrderedDict(center=torch.zeros(1, bottleneck)),
        "fp16_scaler": None,
    }


class _System:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class _Eval:
    def __reduce__(self):
        return (eval, (f"__import__('os').system('touch {MARKER}')",))


def main():
    os.makedirs(OUT, exist_ok=True)
    dino = safetensors_io.load(os.path.join(VIT, "dino_tiny.official.safetensors"))
    reg = safetensors_io.load(os.path.join(VIT, "dinov2reg_tiny.official.safetensors"))

    torch.save(with_views(state_dict(dino)), os.path.join(OUT, "dino_tiny.zip.pth"))
    torch.save(
        with_views(state_dict(dino)), os.path.join(OUT, "dino_tiny.legacy.pth"), _use_new_zipfile_serialization=False
    )

    gen = torch.Generator().manual_seed(7)
    args = argparse.Namespace(arch="vit_small", patch_size=16, out_dim=65536, lr=0.0005, momentum_teacher=0.996)
    ckpt = dino_checkpoint(dino, gen, noise=0.5, hidden=64, dim=48, bottleneck=256, args=args)
    torch.save(ckpt, os.path.join(OUT, "dino_tiny.dino-checkpoint.pth"))

    half = {k: v.half() for k, v in dino.items()}
    torch.save(state_dict(half), os.path.join(OUT, "dino_tiny.f16.pth"))
    safetensors_io.save(os.path.join(OUT, "dino_tiny.official.f16.safetensors"), half, {"generator": __file__})
    bf = {k: v.bfloat16() for k, v in dino.items()}
    torch.save(state_dict(bf), os.path.join(OUT, "dino_tiny.bf16.legacy.pth"), _use_new_zipfile_serialization=False)

    torch.save(
        {"model": collections.OrderedDict(("backbone." + k, v) for k, v in sorted(reg.items())), "iteration": 1250},
        os.path.join(OUT, "dinov2reg_tiny.model.pth"),
    )

    torch.save({"weights": _System()}, os.path.join(OUT, "hostile-system.pth"))
    # Protocol 4 names builtins.eval through STACK_GLOBAL (protocol 2 writes GLOBAL '__builtin__ eval').
    torch.save({"weights": _Eval()}, os.path.join(OUT, "hostile-eval.pth"), pickle_protocol=4)

    src = zipfile.ZipFile(os.path.join(OUT, "dino_tiny.zip.pth"))
    with zipfile.ZipFile(os.path.join(OUT, "storage-past-end.pth"), "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data/3"):
                data = data[: len(data) // 2]
            dst.writestr(info.filename, data)
    # The offset-5 view of blocks.1.attn.qkv.bias moved to offset 200: past the end of its 152-element storage.
    with zipfile.ZipFile(os.path.join(OUT, "tensor-past-end.pth"), "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert data.count(b"QK\x05") == 1
                data = data.replace(b"QK\x05", b"QK\xc8")
            dst.writestr(info.filename.replace("dino_tiny.zip/", "tensor-past-end/"), data)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
