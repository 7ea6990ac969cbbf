#!/usr/bin/python3
"""
Exports the reference ViT (tools/vit_reference.py) with torch.onnx for the `vit` benchmark, and times PyTorch
itself on the same model and inputs.

  /usr/bin/python3 tools/export_vit_onnx.py OUT_DIR [--preset vit_s16] [--size HxW] [--time [--threads N]]

Writes OUT_DIR/<preset>.official.safetensors (random weights, official names) and OUT_DIR/<preset>.torch.onnx
(opset 17, dynamic batch, output "cls"; traced at 224x224, or at --size as OUT_DIR/<preset>.HxW.torch.onnx). With --time, prints one JSON line with PyTorch's images/s at batch 1 and 16.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
from vit_reference import ViT, official_state, randomize  # noqa: E402

PRESETS = {
    "vit_s16": dict(patch=16, dim=384, depth=12, heads=6, mlp_hidden=1536, registers=0, layer_scale=False, eps=1e-6, pos_grid=14),
    "vit_ti16": dict(patch=16, dim=192, depth=12, heads=3, mlp_hidden=768, registers=0, layer_scale=False, eps=1e-6, pos_grid=14),
}


class ClsOnly(torch.nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, pixels):
        return self.vit(pixels)["cls"]


def main():
    out = sys.argv[1]
    preset = sys.argv[sys.argv.index("--preset") + 1] if "--preset" in sys.argv else "vit_s16"
    os.makedirs(out, exist_ok=True)
    kw = PRESETS[preset]
    m = ViT(**kw).eval()
    randomize(m, torch.Generator().manual_seed(7))
    safetensors_io.save(os.path.join(out, f"{preset}.official.safetensors"), official_state(m), {"heads": kw["heads"]})
    size = sys.argv[sys.argv.index("--size") + 1] if "--size" in sys.argv else "224x224"
    h, w = (int(v) for v in size.split("x"))
    x = torch.randn(1, 3, h, w)
    name = f"{preset}.torch.onnx" if (h, w) == (224, 224) else f"{preset}.{h}x{w}.torch.onnx"
    if (h, w) != (224, 224):
        # torch 1.13 cannot trace the bicubic interpolation with per-axis scale factors: the position embeddings of
        # this grid are computed eagerly and traced as a constant (the graph is for this input size anyway).
        with torch.no_grad():
            pos = m.interpolate_pos(h // kw["patch"], w // kw["patch"]).detach().clone()
        m.interpolate_pos = lambda gh, gw: pos
    torch.onnx.export(
        ClsOnly(m), (x,), os.path.join(out, name), opset_version=17,
        input_names=["pixels"], output_names=["cls"], dynamic_axes={"pixels": {0: "batch"}, "cls": {0: "batch"}},
    )
    if "--time" in sys.argv:
        threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else os.cpu_count()
        torch.set_num_threads(threads)
        res = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        with torch.no_grad():
            for b in (1, 16):
                xb = torch.randn(b, 3, 224, 224)
                m(xb)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < 5:
                    m(xb)
                    n += b
                res[f"torch_imgs_per_s_b{b}"] = n / (time.perf_counter() - t0)
        print(json.dumps(res))


if __name__ == "__main__":
    main()
