"""The run's frames and the per-step batches, drawn with Flaneur's generator in Flaneur's order.

Every rank draws the whole global batch (the draws are cheap and leave every rank's generator in the same state,
which is what a checkpoint stores) and builds only its shard: DINO samples, or Dora clips, split evenly by rank.
"""
import os
import re
import subprocess
import threading
import time

import numpy as np
import torch

from . import augment as A
from .dora import discover, track_masks


SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[\d.]+(?:e[-+]?\d+)?)")
# A decoded frame is the recorded one when their timestamps agree to this (seconds); showinfo prints 6 decimals.
PTS_TOLERANCE = 1e-3


def frames_ready(root, s):
    path = os.path.join(root, s["file"])
    return os.path.exists(path) and os.path.getsize(path) == s["frames"] * s["width"] * s["height"] * 3


def decode_source(root, s, ffmpeg):
    """A video exported with `decode`: its sampled frames decoded from the source with the ffmpeg filters Flaneur
    used (media/decode.ts: sampling, bicubic scaling, RGB24), keeping the frames at the recorded timestamps, written
    as frames/<id>.rgb (the layout of copied frames). Nothing to do when that file is already complete."""
    if frames_ready(root, s):
        return False
    d = s["decode"]
    src = os.path.join(root, d["source"])
    if not os.path.exists(src) or os.path.getsize(src) != d["bytes"]:
        raise SystemExit(f"{src}: the source video is missing or not the exported one ({d['bytes']} bytes expected). "
                         "Copy the export folder again from Flaneur.")
    out = os.path.join(root, s["file"])
    os.makedirs(os.path.dirname(out), exist_ok=True)
    frame_bytes = s["width"] * s["height"] * 3
    args = [ffmpeg, "-hide_banner", "-nostdin", "-v", "info"]
    if d.get("skipFrame"):
        args += ["-skip_frame", "nokey"]
    args += ["-copyts", "-i", src, "-an", "-sn", "-dn", "-vf", d["vf"] + ",showinfo", "-vsync", "0", "-f", "rawvideo",
             "-pix_fmt", "rgb24", "pipe:1"]
    want = s["pts"]
    tmp = f"{out}.decoding-{os.getpid()}"
    pts, tail = [], []

    def read_stderr(stream):
        for line in iter(stream.readline, b""):
            text = line.decode("utf8", "replace")
            m = SHOWINFO.search(text)
            if m:
                pts.append(float(m.group(3)))
            else:
                tail.append(text)
                del tail[:-20]

    started = time.time()
    print(f"decoding {s['name']} ({s['frames']} frames of {s['width']}x{s['height']}) with {ffmpeg}", flush=True)
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as err:
        raise SystemExit(f"cannot run ffmpeg ({ffmpeg}): {err}. Install ffmpeg or pass --ffmpeg PATH.")
    reader = threading.Thread(target=read_stderr, args=(proc.stderr,), daemon=True)
    reader.start()
    kept, seq, j = 0, 0, 0
    try:
        with open(tmp, "wb") as f:
            while j < len(want):
                buf = proc.stdout.read(frame_bytes)
                if len(buf) < frame_bytes:
                    break
                # The frame's timestamp comes on stderr; wait for its showinfo line.
                while len(pts) <= seq and reader.is_alive():
                    time.sleep(0.001)
                if len(pts) <= seq:
                    break
                t = pts[seq]
                seq += 1
                if want[j] < t - PTS_TOLERANCE:
                    raise SystemExit(
                        f"{src}: no decoded frame at {want[j]:.6f} s (the next one is at {t:.6f} s): this ffmpeg "
                        "samples the video differently from Flaneur's. Export with the frames copied instead "
                        "(flaneur train export --frames copy).")
                if abs(t - want[j]) <= PTS_TOLERANCE:
                    f.write(buf)
                    kept += 1
                    j += 1
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
        reader.join(timeout=5)
    if kept != len(want):
        os.remove(tmp)
        missing = want[kept] if kept < len(want) else None
        raise SystemExit(f"{src}: decoded {kept} of the {len(want)} recorded frames"
                         + (f" (none at {missing:.6f} s)" if missing is not None else "")
                         + ". ffmpeg said: " + "".join(tail[-5:]).strip())
    os.replace(tmp, out)
    print(f"decoded {kept} frames of {s['name']} in {time.time() - started:.1f} s", flush=True)
    return True


def prepare_frames(root, index, ffmpeg, local_rank):
    """Decodes the videos exported with `decode` once per machine (local rank 0) while the other local ranks wait;
    a failure is left in frames/<id>.rgb.failed so they stop with its reason."""
    todo = [s for s in index["sources"] if s.get("decode") and not frames_ready(root, s)]
    since = time.time() - 1
    for s in todo:
        failed = os.path.join(root, s["file"]) + ".failed"
        if local_rank == 0:
            if os.path.exists(failed):
                os.remove(failed)
            try:
                decode_source(root, s, ffmpeg)
            except SystemExit as err:
                with open(failed, "w") as f:
                    f.write(str(err))
                raise
        else:
            while not frames_ready(root, s):
                if os.path.exists(failed) and os.path.getmtime(failed) >= since:
                    with open(failed) as f:
                        raise SystemExit(f.read())
                time.sleep(0.5)
    return len(todo)


class Frames:
    """Sampled frames as Flaneur stores them: one raw RGB file per media item, frame i at i * w * h * 3."""

    def __init__(self, root, index):
        self.sources = []
        for s in index["sources"]:
            path = os.path.join(root, s["file"])
            need = s["frames"] * s["width"] * s["height"] * 3
            have = os.path.getsize(path) if os.path.exists(path) else -1
            if have < need:
                how = ("Run train.py once to decode them from the source video (--decode-only decodes and stops)."
                       if s.get("decode") else "Copy the export folder again from Flaneur.")
                raise SystemExit(f"{path}: expected {need} bytes of frames ({s['frames']} frames), found {have}. {how}")
            mm = np.memmap(path, dtype=np.uint8, mode="r", shape=(s["frames"], s["height"], s["width"], 3))
            self.sources.append({**s, "data": mm})
        self.total = sum(s["frames"] for s in self.sources)

    def locate(self, i):
        for s in self.sources:
            if i < s["frames"]:
                return s, i
            i -= s["frames"]
        raise IndexError(i)

    def image(self, src, idx):
        return np.asarray(src["data"][idx])


def drop_mask(rng, depth, rows, rate):
    """train-dino.ts dropMask: [depth, rows] keep masks scaled by 1 / (1 - p), p growing linearly over depth."""
    out = np.zeros((depth, rows), dtype=np.float32)
    for d in range(depth):
        p = rate * d / (depth - 1) if depth > 1 else rate
        for r in range(rows):
            out[d, r] = 0 if rng.next() < p else np.float32(1 / (1 - p))
    return out


def shard(n, rank, world):
    per = n // world
    return list(range(rank * per, (rank + 1) * per))


def _rows(mask, crops, total, mine):
    """Rows of a crop-major [depth, crops * total] mask for this rank's samples, crop-major again."""
    idx = [c * total + i for c in range(crops) for i in mine]
    return torch.from_numpy(np.ascontiguousarray(mask[:, idx]))


def dino_batch(cfg, frames, rng, rank, world):
    a, vit = cfg["args"], cfg["vit"]
    B, L = a["batch"], a["localCrops"]
    draws = []
    for _ in range(B):
        src, idx = frames.locate(rng.int(frames.total))
        W, H = src["width"], src["height"]
        views = [A.draw_view(W, H, a["globalSize"], (0.4, 1), 0.2, rng) for _ in range(2)]
        views += [A.draw_view(W, H, a["localSize"], (0.05, 0.4), 0.2, rng) for _ in range(L)]
        draws.append((src, idx, views))
    dp_g = drop_mask(rng, vit["depth"], 2 * B, a["dropPath"]) if a["dropPath"] > 0 else None
    dp_l = drop_mask(rng, vit["depth"], L * B, a["dropPath"]) if a["dropPath"] > 0 and L > 0 else None
    mine = shard(B, rank, world)
    g, l = [[] for _ in range(2)], [[] for _ in range(L)]
    for i in mine:
        src, idx, views = draws[i]
        img = frames.image(src, idx)
        for c, v in enumerate(views):
            (g[c] if c < 2 else l[c - 2]).append(A.apply_view(img, v, vit["mean"], vit["std"]))
    out = {
        "globals": torch.from_numpy(np.stack([x for c in g for x in c])),
        "locals": torch.from_numpy(np.stack([x for c in l for x in c])) if L > 0 else None,
        "dp_global": _rows(dp_g, 2, B, mine) if dp_g is not None else None,
        "dp_local": _rows(dp_l, L, B, mine) if dp_l is not None else None,
        "batch": len(mine),
        "crops": 2,
    }
    return out


def dora_draws(cfg, frames, rng):
    a, vit, o = cfg["args"], cfg["vit"], cfg["args"]["dora"]
    F_, L = o["framesPerClip"], a["localCrops"]
    C = a["batch"] // F_
    k = min(o["objects"], vit["heads"])
    clips = []
    for _ in range(C):
        src, _ = frames.locate(rng.int(frames.total))
        n = src["frames"]
        start = rng.int(max(1, n - (F_ - 1) * o["stride"]))
        idx = [min(n - 1, start + t * o["stride"]) for t in range(F_)]
        W, H = src["width"], src["height"]
        box = A.draw_crop_box(W, H, (0.4, 1), rng)
        flip = rng.next() < 0.5
        heads = rng.shuffle(list(range(vit["heads"])))[:k]
        per = []
        for _t in range(F_):
            jit = A.draw_jitter(rng, o["grayscaleP"])
            blur = rng.uniform(0.1, 2) if rng.next() < o["blurP"] else None
            locs = [A.draw_view(W, H, a["localSize"], (0.05, 0.4), o["grayscaleP"], rng) for _ in range(L)]
            per.append((jit, blur, locs))
        clips.append({"src": src, "idx": idx, "box": box, "flip": flip, "heads": heads, "frames": per})
    B = C * F_
    dp_g = drop_mask(rng, vit["depth"], k * B, a["dropPath"]) if a["dropPath"] > 0 else None
    dp_l = drop_mask(rng, vit["depth"], L * B, a["dropPath"]) if a["dropPath"] > 0 and L > 0 else None
    return clips, dp_g, dp_l


def dora_batch(cfg, frames, rng, rank, world, attend):
    """Dora's batch for this rank's clips; `attend(views)` is the teacher's pass: (logits, q, k, attention)."""
    a, vit, o = cfg["args"], cfg["vit"], cfg["args"]["dora"]
    F_, L, S = o["framesPerClip"], a["localCrops"], a["globalSize"]
    clips, dp_g, dp_l = dora_draws(cfg, frames, rng)
    C = len(clips)
    k = min(o["objects"], vit["heads"])
    mine = shard(C, rank, world)
    views, locs = [], [[] for _ in range(L)]
    for c in mine:
        clip = clips[c]
        for t in range(F_):
            img = frames.image(clip["src"], clip["idx"][t])
            v = A.crop_resize(img, clip["box"], S)
            if clip["flip"]:
                v = v[:, ::-1]
            jit, blur, lv = clip["frames"][t]
            px = A.apply_jitter(A.to_float(v), jit)
            if blur is not None:
                px = A.gaussian_blur(px, blur)
            views.append(A.normalise(px, vit["mean"], vit["std"]))
            for j, view in enumerate(lv):
                locs[j].append(A.apply_view(img, view, vit["mean"], vit["std"]))
    teacher_views = torch.from_numpy(np.stack(views))
    b = len(views)
    logits, q, kk, att = attend(teacher_views)
    q, kk, att = (x.double().cpu().numpy() for x in (q, kk, att))
    ps = vit["patchSize"]
    grid = S // ps
    black = torch.tensor([-m / s for m, s in zip(vit["mean"], vit["std"])], dtype=torch.float32).view(3, 1, 1)
    masked = torch.empty((k * b, 3, S, S), dtype=torch.float32)
    covered = 0
    for ci in range(len(mine)):
        b0 = ci * F_
        heads = clips[mine[ci]]["heads"]
        protos = discover(q[b0], att[b0], heads, o["epsilon"], o["iterations"])
        for t in range(F_):
            m = track_masks(protos, kk[b0 + t])  # [k, n]
            covered += int(m.sum())
            up = torch.from_numpy(m.reshape(k, grid, grid)).repeat_interleave(ps, 1).repeat_interleave(ps, 2).bool()
            for j in range(k):
                masked[j * b + b0 + t] = torch.where(up[j], teacher_views[b0 + t], black)
    mine_frames = [c * F_ + t for c in mine for t in range(F_)]
    B = C * F_
    return {
        "globals": masked,
        "locals": torch.from_numpy(np.stack([x for c in locs for x in c])) if L > 0 else None,
        "teacher_logits": logits,
        "dp_global": _rows(dp_g, k, B, mine_frames) if dp_g is not None else None,
        "dp_local": _rows(dp_l, L, B, mine_frames) if dp_l is not None else None,
        "batch": b,
        "crops": k,
        "mask_cover": covered / (b * k * grid * grid),
    }
