#!/usr/bin/python3
"""
PyTorch reference of the DINO-vs-Dora training comparison of `npm run bench -- segment --compare N --real`, for
budgets a 2-core CPU cannot reach (run on a GPU; CPU works for a smoke test). Same data (tools/dora-scale-data.ts:
the synthetic tour at 10 fps and the sample clip at 1 fps), same recipe as bench/segment.ts's TI16_RECIPE (ViT-Ti/16
from DINO's initialisation, 96 px global views, 2 local crops of 48 px, head 512/128/1024, lr x 2B/256 with a
cosine schedule, weight decay 0.04 -> 0.4, EMA 0.996 -> 1, clip 3, drop-path 0.1, centre 0.9, temperatures
0.1/0.04, DINO's freeze_last_layer, DINOv2's KoLeo), Dora as native/train/dora-clips.ts (clips of F frames with
stride s, one crop per clip, discovery on the first frame from k random heads, Sinkhorn-Knopp, tracking by
cross-attention, the k masked views for the student, the teacher on the unmasked view) and the same Hummingbird
evaluation (224 px, k 30, T 0.02, bank: tour frames 40 and 120 / clip 10 s; scored: 18 held-out tour frames / clip
40 s and 70 s). Every model of a budget starts from the same initial weights.

    python3 tools/dora_scale_reference.py DATA_DIR OUT.json --budgets 1500x8,3000x64 [--device cuda]
        [--lr 0.004] [--freeze 150] [--koleo 0.1] [--max-seconds 480] [--evals 4]

A budget STEPSxBATCH trains plain DINO and Dora for STEPS steps of BATCH frames and evaluates both (and the
initialisation) at `--evals` evenly spaced points. OUT.json is rewritten after every evaluation, so a run that is
cut short keeps what it measured.
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------------------- model
class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, drop=0.0, want=False):
        B, T, D = x.shape
        h, hd = self.heads, D // self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(B, T, 3, h, hd).permute(2, 0, 3, 1, 4)
        extra = None
        if want or not hasattr(F, "scaled_dot_product_attention"):
            attn = ((q * hd**-0.5) @ k.transpose(-2, -1)).softmax(-1)
            ctx = attn @ v
            if want:
                cat = lambda t: t.transpose(1, 2).reshape(B, T, D)
                extra = (cat(q), cat(k), attn[:, :, 0, 1:])
        else:
            ctx = F.scaled_dot_product_attention(q, k, v)
        a = self.proj(ctx.transpose(1, 2).reshape(B, T, D))
        x = x + drop_path(a, drop, self.training)
        x = x + drop_path(self.fc2(F.gelu(self.fc1(self.norm2(x)))), drop, self.training)
        return x, extra


def drop_path(x, p, training):
    if p == 0.0 or not training:
        return x
    keep = (torch.rand(x.shape[0], 1, 1, device=x.device) >= p).to(x.dtype)
    return x * keep / (1 - p)


class ViT(nn.Module):
    def __init__(self, dim=192, depth=12, heads=3, hidden=768, patch=16, grid=14, drop_path=0.1):
        super().__init__()
        self.patch, self.grid, self.dim, self.drop = patch, grid, dim, drop_path
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def pos(self, g):
        if g == self.grid:
            return self.pos_embed
        p = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, self.dim).permute(0, 3, 1, 2)
        p = F.interpolate(p, size=(g, g), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], p.permute(0, 2, 3, 1).reshape(1, g * g, self.dim)], 1)

    def forward(self, x, want=False):
        B = x.shape[0]
        g = x.shape[-1] // self.patch
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], 1) + self.pos(g)
        n = len(self.blocks)
        extra = None
        for i, blk in enumerate(self.blocks):
            rate = self.drop * i / (n - 1) if n > 1 else self.drop
            x, extra = blk(x, rate, want and i == n - 1)
        x = self.norm(x)
        return x, extra


class Head(nn.Module):
    def __init__(self, dim, hidden=512, bottleneck=128, out=1024):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.last = nn.Parameter(torch.empty(out, bottleneck))

    def forward(self, x):
        return F.linear(F.normalize(self.mlp(x), dim=-1), F.normalize(self.last, dim=1))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.vit = ViT()
        self.head = Head(self.vit.dim)

    def forward(self, x, want=False):
        tokens, extra = self.vit(x, want)
        cls = tokens[:, 0]
        return self.head(cls), cls, extra


def dino_init(m, gen):
    """native/train/train-dino.ts initParams: truncated normal 0.02, zero biases, unit norms, uniform last layer."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith("head.last"):
                b = 1 / math.sqrt(p.shape[1])
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * b - b)
            else:
                t = torch.randn(p.shape, generator=gen) * 0.02
                while True:
                    bad = t.abs() > 0.04
                    if not bad.any():
                        break
                    t[bad] = torch.randn(int(bad.sum()), generator=gen) * 0.02
                p.copy_(t)


# ---------------------------------------------------------------------------------------------------------- data
def load_frames(d, meta, dev):
    out = {}
    for key in ("tour", "real"):
        files = sorted(os.listdir(os.path.join(d, meta[key]["dir"])))
        arr = np.stack([np.asarray(Image.open(os.path.join(d, meta[key]["dir"], f)).convert("RGB")) for f in files])
        out[key] = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(dev)  # uint8 [N, 3, H, W]
    return out


def crop_box(w, h, scale, rnd, ratio=(3 / 4, 4 / 3)):
    for _ in range(10):
        area = w * h * rnd.uniform(*scale)
        r = math.exp(rnd.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
        if 0 < cw <= w and 0 < ch <= h:
            return rnd.randint(0, w - cw), rnd.randint(0, h - ch), cw, ch
    s = min(w, h)
    return 0, 0, s, s


def crops(imgs, boxes, flips, size):
    """imgs float [B, 3, H, W] in 0..1; boxes (x, y, w, h) in pixels; bilinear resampling to size x size."""
    B, _, H, W = imgs.shape
    theta = torch.tensor([[[(w / W) * (-1 if f else 1), 0.0, (x + w / 2) / W * 2 - 1], [0.0, h / H, (y + h / 2) / H * 2 - 1]]
                          for (x, y, w, h), f in zip(boxes, flips)], device=imgs.device)
    grid = F.affine_grid(theta, (B, 3, size, size), align_corners=False)
    return F.grid_sample(imgs, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gray(x):
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def jitter(x, rnd, gray_p, blur_p=0.0, p=0.8, b=0.4, c=0.4, s=0.2, h=0.1):
    """DINO's colour jitter (p 0.8, 0.4/0.4/0.2/0.1, random order per batch), grayscale and blur, per view."""
    B = x.shape[0]
    dev = x.device
    on = torch.tensor([rnd.random() < p for _ in range(B)], device=dev).view(B, 1, 1, 1)
    u = lambda lo, hi: torch.tensor([rnd.uniform(lo, hi) for _ in range(B)], device=dev).view(B, 1, 1, 1)
    y = x
    order = [0, 1, 2, 3]
    rnd.shuffle(order)
    for op in order:
        if op == 0:
            y = (y * u(1 - b, 1 + b)).clamp(max=1)
        elif op == 1:
            m = gray(y).mean((2, 3), keepdim=True)
            y = ((y - m) * u(1 - c, 1 + c) + m).clamp(0, 1)
        elif op == 2:
            g = gray(y)
            y = ((y - g) * u(1 - s, 1 + s) + g).clamp(0, 1)
        else:
            a = u(-h, h) * 2 * math.pi
            r, gg, bb = y[:, 0:1], y[:, 1:2], y[:, 2:3]
            yy = 0.299 * r + 0.587 * gg + 0.114 * bb
            ci = 0.596 * r - 0.274 * gg - 0.322 * bb
            cq = 0.211 * r - 0.523 * gg + 0.312 * bb
            i2, q2 = ci * a.cos() - cq * a.sin(), ci * a.sin() + cq * a.cos()
            y = torch.cat([yy + 0.956 * i2 + 0.621 * q2, yy - 0.272 * i2 - 0.647 * q2, yy - 1.106 * i2 + 1.703 * q2],
                          1).clamp(0, 1)
    x = torch.where(on, y, x)
    g = torch.tensor([rnd.random() < gray_p for _ in range(B)], device=dev).view(B, 1, 1, 1)
    x = torch.where(g, gray(x).expand_as(x), x)
    if blur_p > 0:
        for i in range(B):
            if rnd.random() < blur_p:
                sigma = rnd.uniform(0.1, 2.0)
                r = max(1, int(math.ceil(3 * sigma)))
                t = torch.arange(-r, r + 1, device=dev, dtype=x.dtype)
                k = torch.exp(-(t**2) / (2 * sigma**2))
                k = k / k.sum()
                xi = x[i : i + 1].transpose(0, 1)  # [3, 1, H, W]
                xi = F.conv2d(F.pad(xi, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
                xi = F.conv2d(F.pad(xi, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
                x[i] = xi.transpose(0, 1)[0]
    return x


def norm(x):
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def views(frames, picks, size, scale, rnd, gray_p=0.2):
    """One augmented view per (source, index): random resized crop, flip, jitter, grayscale; normalised."""
    out = [None] * len(picks)
    by = {}
    for i, (src, idx) in enumerate(picks):
        by.setdefault(src, []).append((i, idx))
    for src, items in by.items():
        t = frames[src]
        H, W = t.shape[-2:]
        imgs = t[torch.tensor([idx for _, idx in items], device=t.device)].float() / 255
        boxes = [crop_box(W, H, scale, rnd) for _ in items]
        flips = [rnd.random() < 0.5 for _ in items]
        v = crops(imgs, boxes, flips, size)
        for (i, _), vi in zip(items, v):
            out[i] = vi
    return norm(jitter(torch.stack(out), rnd, gray_p))


# ---------------------------------------------------------------------------------------------------------- losses
def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def ce(t, s):
    return torch.sum(-t * F.log_softmax(s, -1), -1).mean()


def koleo(cls):
    z = F.normalize(cls.float(), dim=-1)
    d = torch.cdist(z, z) + torch.eye(z.shape[0], device=z.device) * 1e3
    return -torch.log(d.min(1).values + 1e-8).mean()


def sinkhorn(scores, eps, iters):
    """Batched [C, n, k] as native/models/dora.ts: uniform marginals, returns the plan x n."""
    q = torch.exp((scores - scores.amax((1, 2), keepdim=True)) / eps)
    q = q / q.sum((1, 2), keepdim=True)
    n, k = q.shape[1:]
    for _ in range(iters):
        q = q / (q.sum(1, keepdim=True) * k)
        q = q / (q.sum(2, keepdim=True) * n)
    return q * n


# ---------------------------------------------------------------------------------------------------------- training
class Trainer:
    def __init__(self, method, init_state, steps, batch, a, frames, meta, dev, seed):
        self.method, self.steps, self.B, self.a, self.frames, self.dev = method, steps, batch, a, frames, dev
        self.student = Model().to(dev)
        self.student.load_state_dict(init_state)
        self.teacher = Model().to(dev)
        self.teacher.load_state_dict(init_state)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad = False
        named = list(self.student.named_parameters())
        self.decay = [p for n, p in named if p.dim() > 1]
        self.no_decay = [p for n, p in named if p.dim() <= 1]
        self.opt = torch.optim.AdamW([{"params": self.decay}, {"params": self.no_decay, "weight_decay": 0.0}],
                                     lr=0.0, betas=(0.9, 0.999), eps=1e-8)
        self.center = torch.zeros(1, 1024, device=dev)
        self.rnd = random.Random(seed)
        torch.manual_seed(seed)
        self.sizes = {"tour": meta["tour"]["frames"], "real": meta["real"]["frames"]}
        self.step = 0
        base = a.lr * 2 * batch / 256
        warm = min(max(20, steps // 75), steps)
        self.lr = [base * s / (warm - 1) if s < warm and warm > 1 else
                   1e-6 + 0.5 * (base - 1e-6) * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, steps - warm))))
                   for s in range(steps)]
        self.wd = [0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * s / steps)) for s in range(steps)]
        self.ema = [1.0 + 0.5 * (0.996 - 1.0) * (1 + math.cos(math.pi * s / steps)) for s in range(steps)]
        self.losses = []

    def pick(self):
        total = sum(self.sizes.values())
        r = self.rnd.randrange(total)
        return ("tour", r) if r < self.sizes["tour"] else ("real", r - self.sizes["tour"])

    def dino_step(self):
        a, B = self.a, self.B
        picks = [self.pick() for _ in range(B)]
        g = torch.cat([views(self.frames, picks, 96, (0.4, 1), self.rnd) for _ in range(2)])
        loc = [views(self.frames, picks, 48, (0.05, 0.4), self.rnd) for _ in range(a.locals)]
        with torch.no_grad():
            t_out, _, _ = self.teacher(g)
        s_g, cls, _ = self.student(g)
        s_all = [s_g[:B], s_g[B:]] + (list(self.student(torch.cat(loc))[0].chunk(len(loc))) if loc else [])
        t = F.softmax((t_out - self.center) / 0.04, -1).chunk(2)
        total, n = 0, 0
        for iq in range(2):
            for v in range(len(s_all)):
                if v != iq:
                    total = total + ce(t[iq], s_all[v] / 0.1)
                    n += 1
        loss = total / n
        reg = sum(koleo(c) for c in cls.chunk(2)) if a.koleo > 0 else 0.0
        return loss, reg, t_out

    def dora_step(self):
        a, B = self.a, self.B
        Fc, stride, k = a.frames_per_clip, a.stride, a.objects
        clips = B // Fc
        imgs_by_clip, clip_frames, heads = [], [], []
        for _ in range(clips):
            src, _ = self.pick()
            N = self.sizes[src]
            start = self.rnd.randrange(max(1, N - (Fc - 1) * stride))
            idx = [min(N - 1, start + t * stride) for t in range(Fc)]
            t = self.frames[src][torch.tensor(idx, device=self.dev)].float() / 255
            H, W = t.shape[-2:]
            box = crop_box(W, H, (0.4, 1), self.rnd)
            flip = self.rnd.random() < 0.5
            heads.append(self.rnd.sample(range(3), min(k, 3)))
            imgs_by_clip.append(crops(t, [box] * Fc, [flip] * Fc, 96))
            clip_frames.append((src, idx))
        tv = norm(jitter(torch.cat(imgs_by_clip), self.rnd, 0.2, blur_p=0.1))  # [B, 3, 96, 96], clip-major
        loc = []
        for _ in range(a.locals):
            picks = [(src, i) for src, idx in clip_frames for i in idx]
            loc.append(views(self.frames, picks, 48, (0.05, 0.4), self.rnd))
        with torch.no_grad():
            t_out, _, (q, kk, att) = self.teacher(tv, want=True)
            q, kk = q[:, 1:], kk[:, 1:]
            n, d = q.shape[1], q.shape[2]
            q0 = q.view(clips, Fc, n, d)[:, 0]
            att0 = att.view(clips, Fc, -1, n)[:, 0]
            sel = torch.stack([att0[c, heads[c]] for c in range(clips)])  # [C, k, n]
            proto = sel @ q0  # [C, k, d]
            xn = F.normalize(q0, dim=-1)
            m = sinkhorn(xn @ F.normalize(proto, dim=-1).transpose(1, 2), a.epsilon, a.iterations)  # [C, n, k]
            refined = m.transpose(1, 2) @ xn  # [C, k, d]
            kc = kk.view(clips, Fc, n, d)
            tr = (refined.unsqueeze(1) @ kc.transpose(2, 3) / math.sqrt(d)).softmax(-1)  # [C, F, k, n]
            mask = (tr > tr.mean(-1, keepdim=True)).float().view(B, k, n)
            gsz = 96 // 16
            up = mask.view(B, k, gsz, gsz).repeat_interleave(16, 2).repeat_interleave(16, 3)
            black = norm(torch.zeros(1, 3, 1, 1, device=self.dev))
            masked = torch.cat([tv * up[:, j : j + 1] + black * (1 - up[:, j : j + 1]) for j in range(k)])
            self.cover = float(mask.mean())
        s_m, cls, _ = self.student(masked)
        t = F.softmax((t_out - self.center) / 0.04, -1)
        lm = sum(ce(t, s / 0.1) for s in s_m.chunk(k)) / k
        if loc:
            ll = sum(ce(t, s / 0.1) for s in self.student(torch.cat(loc))[0].chunk(len(loc))) / len(loc)
            loss = 0.5 * (lm + ll)
        else:
            loss = lm
        reg = sum(koleo(c) for c in cls.chunk(k)) if a.koleo > 0 else 0.0
        return loss, reg, t_out

    def train_step(self):
        s = self.step
        for i, g in enumerate(self.opt.param_groups):
            g["lr"] = self.lr[s]
            if i == 0:
                g["weight_decay"] = self.wd[s]
        self.student.train()
        loss, reg, t_out = self.dora_step() if self.method == "dora" else self.dino_step()
        total = loss + self.a.koleo * reg
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 3.0)
        if s < self.a.freeze:
            self.student.head.last.grad = None
        self.opt.step()
        with torch.no_grad():
            m = self.ema[s]
            for ps, pt in zip(self.student.parameters(), self.teacher.parameters()):
                pt.mul_(m).add_(ps.detach(), alpha=1 - m)
            self.center = self.center * 0.9 + t_out.mean(0, keepdim=True) * 0.1
        self.losses.append(loss.item())
        self.step += 1


# ---------------------------------------------------------------------------------------------------------- evaluation
def patch_labels(lab, W, H, grid, C):
    out = np.zeros((grid * grid, C), np.float32)
    for gy in range(grid):
        y0, y1 = (gy * H) // grid, ((gy + 1) * H) // grid
        for gx in range(grid):
            x0, x1 = (gx * W) // grid, ((gx + 1) * W) // grid
            cell = lab[y0:y1, x0:x1].ravel()
            cell = cell[cell < C]
            if cell.size:
                out[gy * grid + gx] = np.bincount(cell, minlength=C)[:C] / cell.size
    return out


@torch.no_grad()
def patch_features(vit, frames, src, idxs, dev):
    vit.eval()
    x = frames[src][torch.tensor(idxs, device=dev)].float() / 255
    kw = {"antialias": True} if "antialias" in F.interpolate.__code__.co_varnames else {}
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, **kw)
    tok, _ = vit(norm(x))
    return F.normalize(tok[:, 1:].float(), dim=-1)  # [N, 196, D]


@torch.no_grad()
def hummingbird(vit, frames, src, bank, evals, labels, C, W, H, dev):
    bf = patch_features(vit, frames, src, bank, dev).reshape(-1, vit.dim)
    bl = torch.from_numpy(np.concatenate([patch_labels(labels[f], W, H, 14, C) for f in bank])).to(dev)
    qf = patch_features(vit, frames, src, evals, dev)
    inter, union = np.zeros(C), np.zeros(C)
    for i, f in enumerate(evals):
        sims, idx = (qf[i] @ bf.T).topk(30, dim=1)
        w = (sims / 0.02).softmax(1)
        scores = (w.unsqueeze(-1) * bl[idx]).sum(1)  # [196, C]
        up = F.interpolate(scores.T.reshape(1, C, 14, 14), size=(H, W), mode="bilinear", align_corners=False)
        pred = up[0].argmax(0).cpu().numpy().ravel()
        t = labels[f].ravel()
        ok = t < C
        p, t = pred[ok], t[ok]
        for c in range(C):
            tp = np.sum((p == c) & (t == c))
            inter[c] += tp
            union[c] += np.sum(p == c) + np.sum(t == c) - tp
    per = [float(i / u) if u > 0 else None for i, u in zip(inter, union)]
    vals = [x for x in per if x is not None]
    return 100 * sum(vals) / len(vals), [None if x is None else round(100 * x, 2) for x in per]


def evaluate(vit, frames, meta, labels, dev):
    out = {}
    for key in ("tour", "real"):
        m = meta[key]
        C = len(meta[f"{key}_classes"])
        miou, per = hummingbird(vit, frames, key, m["bank"], m["eval"], labels[key], C, m["width"], m["height"], dev)
        out[key] = {"miou": round(miou, 2), "per_class": per}
    return out


# ---------------------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--budgets", default="1500x8")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--lr", type=float, default=0.004)
    ap.add_argument("--freeze", type=int, default=150)
    ap.add_argument("--koleo", type=float, default=0.1)
    ap.add_argument("--locals", type=int, default=2)
    ap.add_argument("--frames-per-clip", type=int, default=4)
    ap.add_argument("--stride", type=int, default=5)
    ap.add_argument("--objects", type=int, default=3)
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--evals", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=1e9, help="per trained model; it stops early and says so")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fit-seconds", type=float, default=0,
                    help="time a few Dora steps first and cut each budget's steps to fit this many seconds per model")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    meta = json.load(open(os.path.join(a.data, "meta.json")))
    frames = load_frames(a.data, meta, dev)
    labels = {}
    for key in ("tour", "real"):
        m = meta[key]
        labels[key] = {f: np.fromfile(os.path.join(a.data, "labels", f"{key}_{f}.u8"), np.uint8).reshape(m["height"], m["width"])
                       for f in m["bank"] + m["eval"]}
    gen = torch.Generator().manual_seed(a.seed)
    init = Model()
    dino_init(init, gen)
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    result = {"generator": "tools/dora_scale_reference.py", "torch": torch.__version__, "device": str(dev),
              "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
              "settings": {k: v for k, v in vars(a).items() if k not in ("data", "out")},
              "init": evaluate(init.vit.to(dev), frames, meta, labels, dev), "budgets": {}}
    print("init", json.dumps(result["init"]), flush=True)

    def save():
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)

    save()
    for spec in a.budgets.split(","):
        steps, batch = (int(x) for x in spec.split("x"))
        if a.fit_seconds > 0:
            probe = Trainer("dora", init_state, 1000, batch, a, frames, meta, dev, a.seed + 99)
            for i in range(20):
                if i == 5:
                    sync(dev)
                    t0 = time.time()
                probe.train_step()
            sync(dev)
            per = (time.time() - t0) / 15
            fit = int(a.fit_seconds / per)
            print(f"{spec}: {per:.4f} s per Dora step, {fit} steps fit {a.fit_seconds} s", flush=True)
            if fit < steps:
                steps = fit
            del probe
        res = result["budgets"].setdefault(spec, {})
        for method in ("dino", "dora"):
            tr = Trainer(method, init_state, steps, batch, a, frames, meta, dev, a.seed)
            r = res.setdefault(method, {"evals": [], "loss": []})
            r["steps"], r["batch"] = steps, batch
            at = sorted({max(1, round(steps * (i + 1) / a.evals)) for i in range(a.evals)})
            t0 = time.time()
            paused = 0.0
            while tr.step < steps:
                tr.train_step()
                if tr.step in at or time.time() - t0 - paused > a.max_seconds:
                    sync(dev)
                    e0 = time.time()
                    e = evaluate(tr.teacher.vit, frames, meta, labels, dev)
                    paused += time.time() - e0
                    wall = time.time() - t0 - paused
                    r["evals"].append({"step": tr.step, "train_s": round(wall, 1), **e,
                                       "loss_last50": round(sum(tr.losses[-50:]) / len(tr.losses[-50:]), 4),
                                       **({"mask_cover": round(tr.cover, 3)} if method == "dora" else {})})
                    r["loss"] = [round(sum(tr.losses[i : i + 50]) / len(tr.losses[i : i + 50]), 4)
                                 for i in range(0, len(tr.losses), 50)]
                    print(spec, method, json.dumps(r["evals"][-1]), flush=True)
                    save()
                    if time.time() - t0 - paused > a.max_seconds:
                        r["stopped_early"] = True
                        break
            r["s_per_step"] = round((time.time() - t0 - paused) / max(1, tr.step), 4)
            save()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
