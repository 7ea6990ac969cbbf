#!/usr/bin/env python3
"""
Flaneur's DINO / Dora / NeCo trainer for PyTorch's torchrun: the run exported by `flaneur train export` (run.json),
trained with DistributedDataParallel across processes and nodes, and brought back with `flaneur train import`.

    torchrun --standalone --nproc_per_node=N train.py --config run.json            # start
    torchrun --standalone --nproc_per_node=N train.py --config run.json --resume   # continue from the last checkpoint

Same semantics as Flaneur's own trainer (native/train/train-dino.ts, train-neco.ts): the same generator and draw
order for every augmentation, the same model, loss, clipping, AdamW, EMA teacher and centre (NeCo: crop boxes, RoI
align, queue, differentiable sort), so a run's first steps here give Flaneur's losses. Checkpoints are Flaneur's own
format (checkpoints/step-NNNNNNN.safetensors + .json). Videos exported with their source are decoded first (ffmpeg).
"""
import argparse
import datetime
import glob
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flaneur_train import neco as N  # noqa: E402
from flaneur_train import st  # noqa: E402
from flaneur_train.data import (  # noqa: E402
    Frames, _rows, dino_batch, dora_batch, drop_mask, prepare_frames, shard,
)
from flaneur_train.model import (  # noqa: E402
    Student, cosine, dino_loss, dora_loss, head_forward, koleo_loss, mean_entropy, param_shapes, teacher_probs,
    vit_forward, vit_patches, vit_shapes,
)
from flaneur_train.rng import Rng  # noqa: E402

BETAS, EPS = (0.9, 0.999), 1e-8
LAST = "head.last_layer.weight_v"


def fail(msg, code=2):
    print(f"flaneur train.py: {msg}", file=sys.stderr)
    sys.exit(code)


def latest_checkpoint(d):
    files = sorted(glob.glob(os.path.join(d, "step-*.json")))
    return files[-1] if files else None


def save_checkpoint(d, state, names, rng_state, extra, tensors=None, counters=None):
    os.makedirs(d, exist_ok=True)
    t = {}
    for n in names:
        t[f"p.{n}"] = state["p"][n]
        t[f"t.{n}"] = state["t"][n]
        t[f"m.{n}"] = state["m"][n]
        t[f"v.{n}"] = state["v"][n]
    if state.get("center") is not None:
        t["center"] = state["center"].reshape(-1)
    for k, v in (tensors or {}).items():
        t[f"x.{k}"] = v
    base = os.path.join(d, f"step-{state['step']:07d}")
    st.save(base + ".safetensors", t, {"step": state["step"]})
    meta = {"step": state["step"], "rngState": rng_state, "savedAt": datetime.datetime.utcnow().isoformat() + "Z", **extra}
    if counters:
        meta["counters"] = counters
    with open(base + ".json.tmp", "w") as f:
        json.dump(meta, f)
    os.replace(base + ".json.tmp", base + ".json")
    for old in sorted(glob.glob(os.path.join(d, "step-*.json")))[:-2]:
        os.remove(old)
        if os.path.exists(old[:-5] + ".safetensors"):
            os.remove(old[:-5] + ".safetensors")


def load_state(file, names, device):
    tensors, _ = st.load(file[:-5] + ".safetensors" if file.endswith(".json") else file)
    with open(file) as f:
        meta = json.load(f) if file.endswith(".json") else {}
    get = lambda k: tensors[k].to(device)
    state = {
        "p": {n: get(f"p.{n}") for n in names},
        "t": {n: get(f"t.{n}") for n in names},
        "m": {n: get(f"m.{n}") for n in names},
        "v": {n: get(f"v.{n}") for n in names},
        "center": get("center").reshape(1, -1) if "center" in tensors else None,
        "extra": {k[2:]: v for k, v in tensors.items() if k.startswith("x.")},
    }
    return state, meta



def save_encoder(out, backbone, vit, steps, e, trained_by):
    """The trained backbone as out/encoder.safetensors, with its provenance in the metadata (what train.import reads)."""
    st.save(os.path.join(out, "encoder.safetensors"), backbone,
            {"heads": vit["heads"], "trained_by": trained_by, "steps": steps,
             "world": e["world"], "device": e["device"], "wall_seconds": round(e["wallSeconds"], 1)})
    print(f"done: {os.path.join(out, 'encoder.safetensors')}", flush=True)


def finish(world):
    """Every rank waits for the others (rank 0's export), then leaves the process group."""
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def train_neco(opts, cfg, frames, state, rng, shapes, out, ckdir, metrics, world, rank, local_rank, device, cuda, bf16,
               wall_before):
    """The NeCo loop (train-neco.ts): see flaneur_train/neco.py for what each step does."""
    a, vit, head, n = cfg["args"], cfg["vit"], cfg["head"], cfg["args"]["neco"]
    names = list(shapes.keys())
    G, L, B = 2, n["localCrops"], a["batch"]
    S, LS, ps = a["globalSize"], cfg["neco"]["localSize"], vit["patchSize"]
    Ag = n["aligned"]
    A = Ag * Ag
    Ng = (S // ps) ** 2
    K = head["outDim"]
    prs = N.pairs(G, L)
    net = N.bitonic_network(A)
    specs = [{"size": S, "scale": n["globalScale"], "count": G}, {"size": LS, "scale": n["localScale"], "count": L}]
    sizes = [S] * G + [LS] * L
    queue = N.Queue(G, n["queue"], K)
    if state["step"] > 0:
        for g in range(G):
            queue.rows[g] = state["extra"][f"queue.{g}"].reshape(n["queue"], K).cpu()
        queue.entries = int(state.get("counters", {}).get("queueEntries", 0))

    student = N.Student(vit, head, state["p"], vit_patches).to(device)
    model = torch.nn.parallel.DistributedDataParallel(student, device_ids=[local_rank] if cuda else None) \
        if world > 1 else student
    P = student.named()
    T, Mo, Va = state["t"], state["m"], state["v"]
    steps = a["steps"]
    lr = cosine(n["lrBackbone"], 0, steps)
    lr_head = cosine(n["lrHead"], 0, steps)
    wd = cosine(n["weightDecay"], n["weightDecayEnd"], steps)
    ema = cosine(n["emaStart"], n["emaEnd"], steps)
    stop = min(steps, opts.stop_at or steps)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else \
        (lambda: torch.autocast("cpu", enabled=False))

    def reduce_mean(x):
        if world > 1:
            dist.all_reduce(x)
            x /= world
        return x

    started = time.time()
    extra = lambda: {"world": world, "device": torch.cuda.get_device_name(device) if cuda else "cpu",  # noqa: E731
                     "wallSeconds": wall_before + time.time() - started, "precision": "bf16" if bf16 else "fp32",
                     "objective": "neco"}
    mean, std = vit["mean"], vit["std"]
    while state["step"] < stop:
        t0 = time.time()
        step = state["step"]
        # The draws of the whole batch, in Flaneur's order: per image its frame, boxes and view parameters; the
        # queue's pushes and reference draws; the drop-path masks.
        draws = []
        for _ in range(B):
            src, idx = frames.locate(rng.int(frames.total))
            boxes = N.draw_boxes(src["width"], src["height"], specs, rng)
            draws.append((src, idx, boxes, [N.draw_neco_view(rng) for _ in boxes]))
        push, refs_at = queue.plan(rng, B, Ng, len(prs), A)
        dp = a["dropPath"]
        dp_g = drop_mask(rng, vit["depth"], G * B, dp) if dp > 0 else None
        dp_l = drop_mask(rng, vit["depth"], L * B, dp) if dp > 0 and L > 0 else None
        mine = shard(B, rank, world)
        b = len(mine)
        gl, lo, per_image = [[] for _ in range(G)], [[] for _ in range(L)], []
        for i in mine:
            src, idx, boxes, views = draws[i]
            img = frames.image(src, idx)
            for v, (box, (jit, blur)) in enumerate(zip(boxes, views)):
                x = N.apply_neco_view(img, box, sizes[v], jit, blur, mean, std)
                (gl[v] if v < G else lo[v - G]).append(x)
            per_image.append(N.relative_boxes(boxes, sizes, G))
        roi_t, roi_s = N.roi_batch(per_image, prs, ps, S // ps, LS // ps, Ag)
        roi_global = torch.from_numpy(np.stack([m for (_g, _v, local, _s), m in zip(prs, roi_s) if not local])) \
            if any(not p[2] for p in prs) else None
        roi_local = torch.from_numpy(np.stack([m for (_g, _v, local, _s), m in zip(prs, roi_s) if local])) \
            if any(p[2] for p in prs) else None
        dev = lambda x: x.to(device, non_blocking=True) if x is not None else None  # noqa: E731
        globals_ = dev(torch.from_numpy(np.stack([x for c in gl for x in c])))
        locals_ = dev(torch.from_numpy(np.stack([x for c in lo for x in c]))) if L > 0 else None
        # Teacher: patch embeddings of the global crops; every rank's queue takes the whole batch's.
        with torch.no_grad():
            with autocast():
                t_own = N.head_forward(T, head, vit_patches(T, vit, globals_))
            t_own = t_own.float().reshape(G, b, Ng, K)
            if world > 1:
                parts = [torch.empty_like(t_own) for _ in range(world)]
                dist.all_gather(parts, t_own.contiguous())
                t_all = torch.cat(parts, 1)
            else:
                t_all = t_own
            queue.push(push, t_all)
            refs = []
            for (g, _v, _l, _s), at in zip(prs, refs_at):
                r = queue.rows[g][torch.tensor(at, dtype=torch.long)].reshape(B, A, K)
                refs.append(r[mine[0] : mine[-1] + 1])
            refs = dev(torch.stack(refs))
            t_al = torch.stack([dev(torch.from_numpy(roi_t[i])) @ t_own[g] for i, (g, _v, _l, _s) in enumerate(prs)])
        with autocast():
            s_al = model(globals_, locals_, dev(_rows(dp_g, G, B, mine)) if dp_g is not None else None,
                         dev(_rows(dp_l, L, B, mine)) if dp_l is not None else None,
                         dev(roi_global), dev(roi_local), prs, G, b)
        loss = N.neco_loss(s_al.float(), t_al, refs, net, n["steepness"])
        for p in student.parameters():
            p.grad = None
        loss.backward()
        s = {"lr": lr(step), "lrHead": lr_head(step), "wd": wd(step), "ema": ema(step)}
        t = step + 1
        bc1, bc2 = 1 - BETAS[0] ** t, 1 - BETAS[1] ** t
        with torch.no_grad():
            grads = {nm: P[nm].grad for nm in names}
            norm = torch.sqrt(sum((gr.float() ** 2).sum() for gr in grads.values()))
            for nm in names:
                p, gr = P[nm], grads[nm]
                rate = s["lrHead"] if N.is_head(nm) else s["lr"]
                if len(shapes[nm]) > 1:
                    p.mul_(1 - rate * s["wd"])
                Mo[nm].mul_(BETAS[0]).add_(gr, alpha=1 - BETAS[0])
                Va[nm].mul_(BETAS[1]).add_(gr * gr, alpha=1 - BETAS[1])
                p.sub_((rate / bc1) * Mo[nm] / (Va[nm].sqrt() / (bc2 ** 0.5) + EPS))
            for nm in names:
                T[nm].mul_(s["ema"]).add_(P[nm].detach(), alpha=1 - s["ema"])
            stats = reduce_mean(loss.detach().float().reshape(1))
        state["step"] = t
        if not torch.isfinite(stats[0]):
            fail(f"the NeCo loss became {stats[0].item()} at step {t}; lower the learning rates or the steepness", 3)
        if rank == 0:
            dt = time.time() - t0
            row = {"step": t, "loss": stats[0].item(), "lr": s["lr"], "lrHead": s["lrHead"], "wd": s["wd"],
                   "ema": s["ema"], "gradNorm": norm.item(), "teacherEntropy": queue.entries / n["queue"],
                   "queueFilled": queue.entries / n["queue"], "imgsPerS": (G + L) * B / max(dt, 1e-9),
                   "world": world, "time": datetime.datetime.utcnow().isoformat() + "Z"}
            with open(metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"step {t}/{steps} loss {row['loss']:.6f} lr {s['lr']:.3g} queue {row['queueFilled']:.2f} "
                  f"{row['imgsPerS']:.1f} img/s", flush=True)
        if t % a["checkpointEvery"] == 0 or t == stop:
            if rank == 0:
                state["p"] = {nm: P[nm].detach() for nm in names}
                save_checkpoint(ckdir, state, names, rng.state, extra(),
                                {f"queue.{g}": queue.rows[g] for g in range(G)}, {"queueEntries": queue.entries})
            if world > 1:
                dist.barrier()
    if rank == 0 and state["step"] >= steps:
        # As Flaneur's NeCo (and the official code): the student's backbone is the result.
        backbone = {nm: P[nm].detach() for nm in names if not N.is_head(nm)}
        save_encoder(out, backbone, vit, steps, extra(), "flaneur train export (torchrun, neco)")
    finish(world)


def main():
    ap = argparse.ArgumentParser(description="Flaneur's DINO / Dora / NeCo trainer (run under torchrun)")
    ap.add_argument("--config", required=True, help="run.json written by `flaneur train export`")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    ap.add_argument("--out", help="output folder (default: run/ beside run.json)")
    ap.add_argument("--stop-at", type=int, help="stop after this step (the schedules stay those of the whole run)")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="autocast bfloat16 on GPUs (auto) or full float32")
    ap.add_argument("--ffmpeg", default=os.environ.get("FFMPEG_PATH", "ffmpeg"),
                    help="ffmpeg for videos exported with their source (default: $FFMPEG_PATH, else ffmpeg on PATH)")
    ap.add_argument("--decode-only", action="store_true",
                    help="decode the videos exported with their source into frames/ and stop (one process)")
    opts = ap.parse_args()

    root = os.path.dirname(os.path.abspath(opts.config))
    with open(opts.config) as f:
        cfg = json.load(f)
    if cfg.get("format") != "flaneur-train-export" or cfg.get("version") != 1:
        fail(f"{opts.config} is not a Flaneur training export (format version 1)")
    a, vit, head = cfg["args"], cfg["vit"], cfg["head"]
    dora = a.get("dora")
    neco = cfg.get("objective") == "neco"
    out = os.path.abspath(opts.out or os.path.join(root, "run"))
    ckdir = os.path.join(out, "checkpoints")

    # Videos exported with their source: decoded here once per machine, before the processes meet.
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    prepare_frames(root, cfg["data"], opts.ffmpeg, local_rank)
    if opts.decode_only:
        print("frames ready", flush=True)
        return

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    units = a["batch"] // dora["framesPerClip"] if dora and not neco else a["batch"]
    if units % world:
        fail(f"the batch ({units} {'clips' if dora else 'images'} per step) does not split over {world} processes; "
             f"use a --nproc_per_node that divides it, or export with another batch")
    bf16 = cuda and opts.precision in ("auto", "bf16")

    frames = Frames(root, cfg["data"])
    shapes = {**vit_shapes(vit), **N.head_shapes(head)} if neco else param_shapes(vit, head)
    names = list(shapes.keys())

    resume = latest_checkpoint(ckdir)
    if resume and not opts.resume:
        fail(f"{out} already holds checkpoints; add --resume to continue from {os.path.basename(resume)}, "
             "or use another --out")
    if opts.resume and resume:
        state, meta = load_state(resume, names, device)
        state["step"] = meta["step"]
        state["counters"] = meta.get("counters", {})
        rng = Rng(meta["rngState"])
        wall_before = float(meta.get("wallSeconds", 0))
    else:
        state, _ = load_state(os.path.join(root, cfg["init"]), names, device)
        state["step"] = 0
        rng = Rng(cfg["rngState"])
        wall_before = 0.0
    for n, s in shapes.items():
        if list(state["p"][n].shape) != s:
            fail(f"parameter {n} has shape {list(state['p'][n].shape)}, expected {s}")

    metrics = os.path.join(out, "metrics.jsonl")
    if rank == 0:
        os.makedirs(ckdir, exist_ok=True)
        kept = []
        if os.path.exists(metrics):
            with open(metrics) as f:
                kept = [ln for ln in f if ln.strip() and json.loads(ln)["step"] <= state["step"]]
        with open(metrics, "w") as f:
            f.writelines(kept)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank-{rank}.pid"), "w") as f:
        f.write(str(os.getpid()))
    if world > 1:
        dist.barrier()

    if neco:
        return train_neco(opts, cfg, frames, state, rng, shapes, out, ckdir, metrics, world, rank, local_rank,
                          device, cuda, bf16, wall_before)
    student = Student(vit, head, state["p"]).to(device)
    model = torch.nn.parallel.DistributedDataParallel(student, device_ids=[local_rank] if cuda else None) \
        if world > 1 else student
    P = student.named()
    T, Mo, Va = state["t"], state["m"], state["v"]
    center = state["center"]

    steps = a["steps"]
    lr = cosine(a["lr"] * (2 * a["batch"]) / 256, a["minLr"], steps, min(a["warmupSteps"], steps))
    wd = cosine(a["weightDecay"], a["weightDecayEnd"], steps)
    ema = cosine(a["emaStart"], a["emaEnd"], steps)
    stop = min(steps, opts.stop_at or steps)
    L = a["localCrops"]

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)

    def attend(views):
        with torch.no_grad(), autocast():
            cls, (q, k, att) = vit_forward(T, vit, views.to(device), want_last=True)
            return head_forward(T, head, cls).float(), q.float(), k.float(), att.float()

    def reduce_mean(x):
        if world > 1:
            dist.all_reduce(x)
            x /= world
        return x

    started = time.time()
    extra = lambda: {"world": world, "device": torch.cuda.get_device_name(device) if cuda else "cpu",
                     "wallSeconds": wall_before + time.time() - started, "precision": "bf16" if bf16 else "fp32"}
    while state["step"] < stop:
        t0 = time.time()
        step = state["step"]
        if dora:
            b = dora_batch(cfg, frames, rng, rank, world, attend)
            t_out = b["teacher_logits"]
        else:
            b = dino_batch(cfg, frames, rng, rank, world)
        dev = lambda x: x.to(device, non_blocking=True) if x is not None else None
        g, l = dev(b["globals"]), dev(b["locals"])
        if not dora:
            with torch.no_grad(), autocast():
                t_out = head_forward(T, head, vit_forward(T, vit, g)[0]).float()
        with autocast():
            s_out, cls = model(g, l, dev(b["dp_global"]), dev(b["dp_local"]))
        s_out = s_out.float()
        probs = teacher_probs(t_out, center, a["teacherTemp"])
        n = b["batch"]
        if dora:
            loss = dora_loss(s_out, probs, a["studentTemp"], b["crops"], L, n)
        else:
            loss = dino_loss(s_out, probs, a["studentTemp"], 2 + L, 2, n)
        total = loss
        if a["koleo"] > 0:
            # KoLeo over each rank's shard of each global crop (DINOv2 computes it per GPU too).
            for c in range(b["crops"]):
                total = total + a["koleo"] * koleo_loss(cls[c * n : (c + 1) * n].float())
        for p in student.parameters():
            p.grad = None
        total.backward()
        s = {"lr": lr(step), "wd": wd(step), "ema": ema(step)}
        t = step + 1
        bc1, bc2 = 1 - BETAS[0] ** t, 1 - BETAS[1] ** t
        with torch.no_grad():
            grads = {nm: P[nm].grad for nm in names}
            norm = torch.sqrt(sum((gr.float() ** 2).sum() for gr in grads.values()))
            scale = torch.clamp(a["clip"] / (norm + 1e-6), max=1.0)
            frozen = step < a["freezeLastLayerSteps"]
            for nm in names:
                p = P[nm]
                if frozen and nm == LAST:
                    continue
                gr = grads[nm] * scale
                if len(shapes[nm]) > 1:
                    p.mul_(1 - s["lr"] * s["wd"])
                Mo[nm].mul_(BETAS[0]).add_(gr, alpha=1 - BETAS[0])
                Va[nm].mul_(BETAS[1]).add_(gr * gr, alpha=1 - BETAS[1])
                p.sub_((s["lr"] / bc1) * Mo[nm] / (Va[nm].sqrt() / (bc2 ** 0.5) + EPS))
            for nm in names:
                T[nm].mul_(s["ema"]).add_(P[nm].detach(), alpha=1 - s["ema"])
            batch_center = reduce_mean(t_out.mean(0, keepdim=True).clone())
            center.mul_(a["centerMomentum"]).add_(batch_center, alpha=1 - a["centerMomentum"])
            stats = reduce_mean(torch.stack([loss.detach().float(), mean_entropy(probs).float()]))
        state["step"] = t
        if not torch.isfinite(stats[0]):
            fail(f"the loss became {stats[0].item()} at step {t}; lower the learning rate", 3)
        if rank == 0:
            dt = time.time() - t0
            row = {"step": t, "loss": stats[0].item(), "lr": s["lr"], "wd": s["wd"], "ema": s["ema"],
                   "gradNorm": norm.item(), "teacherEntropy": stats[1].item(),
                   "imgsPerS": (b["crops"] + L) * a["batch"] / max(dt, 1e-9), "world": world,
                   "time": datetime.datetime.utcnow().isoformat() + "Z"}
            if "mask_cover" in b:
                row["maskCover"] = b["mask_cover"]
            with open(metrics, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"step {t}/{steps} loss {row['loss']:.6f} lr {s['lr']:.3g} entropy {row['teacherEntropy']:.4f} "
                  f"{row['imgsPerS']:.1f} img/s", flush=True)
        if t % a["checkpointEvery"] == 0 or t == stop:
            if rank == 0:
                state["p"] = {nm: P[nm].detach() for nm in names}
                save_checkpoint(ckdir, state, names, rng.state, extra())
            if world > 1:
                dist.barrier()
    if rank == 0 and state["step"] >= steps:
        backbone = {nm: T[nm] for nm in names if not nm.startswith("head.")}
        save_encoder(out, backbone, vit, steps, extra(), "flaneur train export (torchrun)")
    finish(world)


if __name__ == "__main__":
    main()
