"""Trains the UnCo counting decoder of a Flaneur export (flaneur train export DIR --objective unco) with PyTorch.

    torchrun --standalone --nproc_per_node=N train_unco.py --config unco.json     (or: python train_unco.py ...)

The Self-Collages were built by Flaneur (objects found without labels in the project's frames, pasted in known
numbers): collages/*.rgb (224 x 224 RGB, uint8), their density targets at the decoder's side (*-density.f32, every
object weighing `scaling`), counts and exemplar boxes in unco.json. The frozen backbone (backbone.safetensors, run
here by flaneur_train/model.py as in Flaneur) gives their patch features once; the decoder (unco_decoder.py) starts
from init.safetensors (Flaneur's initialisation) and trains with AdamW, linear warm-up then cosine to 0, the
official masked density MSE. Several processes (torchrun) split each batch and average gradients (DDP).

Writes OUT/train_log.jsonl (step, loss, lr, held-out collage MAE), OUT/checkpoint.pt every checkpointEvery steps (a
rerun resumes from it) and OUT/decoder.safetensors (official parameter names, the counter's configuration and
provenance), which `flaneur train import-unco DIR` brings back as a trained counter.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from flaneur_train import st  # noqa: E402
from flaneur_train.model import vit_patches  # noqa: E402
from unco_decoder import UncoDecoder, density_loss  # noqa: E402


def box_feature(patches, grid, size, box):
    """Mean patch feature of the patches whose centre lies in box [x, y, w, h] (the nearest one for a tiny box)."""
    cell = size / grid
    centres = (torch.arange(grid, dtype=torch.float64) + 0.5) * cell
    x0, y0, w, h = box
    inx = (centres >= x0) & (centres < x0 + w)
    iny = (centres >= y0) & (centres < y0 + h)
    sel = (iny[:, None] & inx[None, :]).reshape(-1)
    if sel.any():
        return patches[sel].mean(0)
    cx, cy = x0 + w / 2, y0 + h / 2
    d = (centres[None, :] - cx) ** 2 + (centres[:, None] - cy) ** 2
    return patches[int(d.reshape(-1).argmin())]


def load_set(root, cfg, part, vit, P, device):
    """A collage set's patch features [K, n, D], exemplar features [K, shots, D] (or None), targets [K, S, S]."""
    meta = cfg[part]
    size, side, k = cfg["size"], cfg["side"], meta["collages"]
    rgb = np.fromfile(os.path.join(root, meta["images"]), dtype=np.uint8).reshape(k, size, size, 3)
    target = torch.from_numpy(np.fromfile(os.path.join(root, meta["density"]), dtype="<f4").reshape(k, side, side).copy())
    mean = torch.tensor(vit["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(vit["std"]).view(1, 3, 1, 1)
    feats = []
    with torch.no_grad():
        for i in range(0, k, 32):
            x = torch.from_numpy(rgb[i : i + 32].copy()).permute(0, 3, 1, 2).float() / 255.0
            feats.append(vit_patches(P, vit, ((x - mean) / std).to(device)).cpu())
    latent = torch.cat(feats)
    c = cfg["config"]
    ex = None
    if c["shots"] > 0:
        ex = torch.zeros(k, c["shots"], c["encoderDim"])
        for i, boxes in enumerate(meta["exemplars"]):
            for s in range(c["shots"]):
                if boxes:
                    ex[i, s] = box_feature(latent[i], c["grid"], size, boxes[s % len(boxes)])
    return latent, ex, target, torch.tensor(meta["counts"], dtype=torch.float32)


def lr_at(step, a):
    """Flaneur's cosineSchedule (graph/optim.ts): linear warm-up from 0 over round(warmup · steps), cosine to 0."""
    warm = round(a["warmup"] * a["steps"])
    if step < warm:
        return a["lr"] if warm == 1 else a["lr"] * step / (warm - 1)
    t = (step - warm) / max(1, a["steps"] - warm)
    return a["lr"] * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(HERE, "unco.json"))
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: the run's)")
    ap.add_argument("--out", default=None, help="output folder (default: out/ beside the config)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    opts = ap.parse_args()
    root = os.path.dirname(os.path.abspath(opts.config))
    with open(opts.config) as f:
        cfg = json.load(f)
    a, c = cfg["args"], cfg["config"]
    out = opts.out or os.path.join(root, "out")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(opts.device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    os.makedirs(out, exist_ok=True)

    P, _ = st.load(os.path.join(root, cfg["backbone"]))
    P = {k: v.to(device) for k, v in P.items()}
    train = load_set(root, cfg, "train", cfg["vit"], P, device)
    heldout = load_set(root, cfg, "heldout", cfg["vit"], P, device)
    del P

    model = UncoDecoder(c).to(device)
    init, _ = st.load(os.path.join(root, cfg["init"]))
    model.load_state_dict({k: v for k, v in init.items()}, strict=True)
    # With exemplars the shot token takes no part (no gradient: AdamW leaves it as it is, as in Flaneur; DDP needs
    # every trainable parameter used).
    model.shot_token.requires_grad_(c["shots"] == 0)
    opt = torch.optim.AdamW(model.parameters(), lr=a["lr"], weight_decay=a["weightDecay"], betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(a["seed"])
    start = 0
    ckpt = os.path.join(out, "checkpoint.pt")
    if os.path.exists(ckpt):
        saved = torch.load(ckpt, map_location=device)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["generator"])
        start = saved["step"]
        print(f"resuming at step {start}", flush=True)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    steps = min(opts.steps or a["steps"], a["steps"])
    batch = a["batch"]
    k = train[0].shape[0]
    log = open(os.path.join(out, "train_log.jsonl"), "a") if rank == 0 else None

    def evaluate():
        model.eval()
        with torch.no_grad():
            lat, ex, _, counts = heldout
            pred = model(lat.to(device), None if ex is None else ex.to(device))
            got = (pred.sum(dim=(1, 2)) / c["scaling"]).clamp(min=0).cpu()
        model.train()
        return float((got - counts).abs().mean())

    mae = float("nan")
    t0 = time.time()
    for step in range(start, steps):
        # The batch: `batch` collages drawn from the pool (this process's share of them under torchrun).
        idx = torch.randint(0, k, (batch,), generator=gen)[rank::world]
        lat, ex, target, _ = (t[idx] if t is not None else None for t in train)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        pred = net(lat.to(device), None if ex is None else ex.to(device))
        loss = density_loss(pred, target.to(device), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done = step + 1
        if done == 1 or done % a["evalEvery"] == 0 or done == steps:
            mae = evaluate()
        if rank == 0:
            log.write(json.dumps({"step": done, "loss": loss.item(), "lr": lr_at(step, a), "heldout_mae": mae}) + "\n")
            log.flush()
            print(f"step {done}/{steps} loss {loss.item():.5f} held-out MAE {mae:.3f} ({time.time() - t0:.1f} s)", flush=True)
            if done % a["checkpointEvery"] == 0 or done == steps:
                state = {"model": model.state_dict(), "opt": opt.state_dict(), "generator": gen.get_state(), "step": done}
                torch.save(state, ckpt + ".tmp")
                os.replace(ckpt + ".tmp", ckpt)
    if rank == 0:
        meta = {
            "trained_by": "torchrun (flaneur train export --objective unco)",
            "unco_config": json.dumps(c),
            "backbone_model": str(cfg["backboneModel"]),
            "backbone_sha256": cfg["backboneSha256"],
            "heldout_mae": str(mae),
            "heldout_mean_mae": str(cfg["heldout"]["meanMae"]),
            "steps": str(steps),
            "processes": str(world),
            "device": device.type,
            "torch": torch.__version__,
        }
        tensors = {n: p.detach().cpu().float() for n, p in model.named_parameters()}
        st.save(os.path.join(out, "decoder.safetensors"), tensors, meta)
        print(f"decoder written to {os.path.join(out, 'decoder.safetensors')}", flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
