#!/usr/bin/python3
"""
PyTorch reference for Flaneur's NeCo step (native/train/neco-step.ts), written from the official code
(vpariza/NeCo src/neco.py: knn_loss, compute_knn_perm_mat, compute_knn_subloss, update_queue, training_step,
configure_optimizers; src/neco_transforms.py: calculate_bboxes; diffsort's bitonic network and 'cauchy' swap).

A tiny ViT student and EMA teacher with NeCo's projection head (Linear-GELU-Linear-GELU-Linear, L2-normalised),
2 global + 2 local crops of 2 images with fixed pixels and fixed crop boxes, the relative boxes of every crop pair,
torchvision's roi_align (aligned=True, adaptive sampling; written out here because Debian has no torchvision),
a queue of teacher patch embeddings (starting empty, as the official run) with the random draws recorded, cosine
similarities to the reference patches, the differentiable bitonic sort (steepness 100), the cross-entropy between
teacher and student permutations; gradients of every parameter at the first step, then 5 AdamW steps (backbone and
head learning rates, weight decay schedule on the decayed groups, no decay on biases and 1-D parameters), and the
EMA teacher.

Writes tests/fixtures/train/neco_tiny.safetensors. Run with Debian's python3-torch:
    /usr/bin/python3 tools/neco_reference.py            (fixture)
    /usr/bin/python3 tools/neco_reference.py --bench [--steps N] [--threads T]   (the `npm run bench -- neco` step)
"""
import copy
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bench_threads  # noqa: E402  (before numpy and torch: --threads sets the BLAS/OpenMP thread variables)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
from vit_reference import ViT, official_state, randomize  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "train")

VIT = dict(patch=16, dim=48, depth=2, heads=3, mlp_hidden=96, registers=0, layer_scale=False, eps=1e-6, pos_grid=4)
HEAD = dict(in_dim=48, hidden=64, out=32)
B, G, L, GLOBAL, LOCAL, STEPS = 2, 2, 2, 64, 32, 5
IMAGE_W, IMAGE_H = 96, 80
QUEUE, ALIGN, STEEPNESS = 128, 7, 100.0
BETAS, EPS = (0.9, 0.999), 1e-8


def cosine(base, final, total):
    # The official cosine_scheduler (and CosineAnnealingLR's closed form): final + (base - final)(1 + cos(pi i/n))/2.
    return [final + 0.5 * (base - final) * (1 + math.cos(math.pi * s / total)) for s in range(total)]


# ---------------------------------------------------------------------------------------------------------------
# diffsort: the bitonic network (networks.py) and execute_sort with the 'cauchy' swap (DiffSortNet's default, which
# NeCo's DiffSortNet(sort_net, 49, steepness=...) uses).

def bitonic_network(n):
    blocks = math.ceil(math.log2(n))
    full = 2 ** blocks
    cut = full - n
    layers = []
    for block in range(blocks):
        for layer in range(block + 1):
            m = 2 ** (block - layer)
            sa, sb = np.zeros((n, full)), np.zeros((n, full))
            cmin, cmax = np.zeros((full, n)), np.zeros((full, n))
            c = 0
            for i in range(0, full, 2 * m):
                for j in range(m):
                    a, b = i + j, i + j + m
                    if a >= cut and b >= cut:
                        sa[c, a], sb[c, b] = 1, 1
                        lo, hi = (b, a) if ((i + j) // 2 ** (block + 1)) % 2 == 1 else (a, b)
                        cmin[lo, c], cmax[hi, c] = 1, 1
                        c += 1
                    elif a >= cut or b >= cut:
                        kept = a if a >= cut else b
                        sa[c, kept], sb[c, kept] = 1, 1
                        cmin[kept, c], cmax[kept, c] = 0.5, 0.5
                        c += 1
            layers.append(tuple(torch.tensor(t, dtype=torch.float32) for t in
                                (sa[:c, cut:], sb[:c, cut:], cmin[cut:, :c], cmax[cut:, :c])))
    return layers


def diff_sort(net, x, steepness):
    P = torch.eye(x.shape[1], dtype=x.dtype).repeat(x.shape[0], 1, 1)
    for sa, sb, cmin, cmax in net:
        a, b = x @ sa.T, x @ sb.T
        alpha = torch.atan(steepness * (b - a)) / math.pi + 0.5
        aP, bP = P @ sa.T, P @ sb.T
        w_min = alpha.unsqueeze(-2) * aP + (1 - alpha).unsqueeze(-2) * bP
        w_max = (1 - alpha).unsqueeze(-2) * aP + alpha.unsqueeze(-2) * bP
        P = w_max @ cmax.T.unsqueeze(-3) + w_min @ cmin.T.unsqueeze(-3)
        x = (alpha * a + (1 - alpha) * b) @ cmin.T + ((1 - alpha) * a + alpha * b) @ cmax.T
    return x, P


# ---------------------------------------------------------------------------------------------------------------
# torchvision.ops.roi_align(input, [boxes], output_size, spatial_scale=1, sampling_ratio=-1, aligned=True), one box
# per image, written as torchvision's CPU kernel does it (bin grid, bilinear_interpolate with its edge rules).

def roi_align_one(feat, box, out=ALIGN):
    # feat [C, H, W]; box [x1, y1, x2, y2] (float32 tensor) in grid units.
    C, H, W = feat.shape
    f32 = np.float32
    x1, y1, x2, y2 = (f32(v) for v in box.tolist())
    sw, sh = f32(x1 - f32(0.5)), f32(y1 - f32(0.5))
    rw, rh = f32(f32(x2 - f32(0.5)) - sw), f32(f32(y2 - f32(0.5)) - sh)
    bh, bw = f32(rh / f32(out)), f32(rw / f32(out))
    gh, gw = int(math.ceil(f32(rh / f32(out)))), int(math.ceil(f32(rw / f32(out))))
    count = max(gh * gw, 1)
    rows = []
    for ph in range(out):
        for pw in range(out):
            acc = torch.zeros(C)
            for iy in range(gh):
                y = f32(f32(sh + f32(ph * bh)) + f32(f32((iy + f32(0.5)) * bh) / f32(gh)))
                for ix in range(gw):
                    x = f32(f32(sw + f32(pw * bw)) + f32(f32((ix + f32(0.5)) * bw) / f32(gw)))
                    if y < -1.0 or y > H or x < -1.0 or x > W:
                        continue
                    yy, xx = max(y, f32(0)), max(x, f32(0))
                    y_lo, x_lo = int(yy), int(xx)
                    if y_lo >= H - 1:
                        y_lo = y_hi = H - 1
                        yy = f32(y_lo)
                    else:
                        y_hi = y_lo + 1
                    if x_lo >= W - 1:
                        x_lo = x_hi = W - 1
                        xx = f32(x_lo)
                    else:
                        x_hi = x_lo + 1
                    ly, lx = float(f32(yy - y_lo)), float(f32(xx - x_lo))
                    hy, hx = 1 - ly, 1 - lx
                    acc = acc + hy * hx * feat[:, y_lo, x_lo] + hy * lx * feat[:, y_lo, x_hi] \
                        + ly * hx * feat[:, y_hi, x_lo] + ly * lx * feat[:, y_hi, x_hi]
            rows.append(acc / count)
    return torch.stack(rows, 1).reshape(C, out, out)


# The bench (not the fixture) sets this to a dict: each box's RoI-align is then computed once, as a [49, H*W] matrix
# (roi_align_one of a one-hot feature map: the same samples and weights), and applied as one matmul, so the timed
# step pays what torchvision's C++ kernel would (next to nothing) rather than this file's per-sample Python loop.
ROI_CACHE = None


def roi_matrix(box, H, W):
    key = (tuple(box.tolist()), H, W)
    if key not in ROI_CACHE:
        with torch.no_grad():
            ROI_CACHE[key] = roi_align_one(torch.eye(H * W).reshape(H * W, H, W), box).reshape(H * W, -1).T.clone()
    return ROI_CACHE[key]


def roi_align(feats, boxes):
    # feats [B, C, H, W], boxes [B, 4] -> [B, C, out, out]
    if ROI_CACHE is not None:
        B, C, H, W = feats.shape
        return torch.stack([(feats[i].reshape(C, H * W) @ roi_matrix(boxes[i], H, W).T).reshape(C, ALIGN, ALIGN)
                            for i in range(B)])
    return torch.stack([roi_align_one(feats[i], boxes[i]) for i in range(feats.shape[0])])


# ---------------------------------------------------------------------------------------------------------------
# NeCoTransforms.calculate_bboxes: for each global crop g and every crop v, the intersection of the two crops in g's
# pixel coordinates ("gc" [G, V, 4]) and in v's ("all" [V, G, 4]).

def calculate_bboxes(crops, sizes):
    gc = torch.zeros(G, len(crops), 4)
    allb = torch.zeros(len(crops), G, 4)
    for g in range(G):
        for v in range(len(crops)):
            lt = torch.max(crops[g, :2], crops[v, :2])
            rb = torch.min(crops[g, 2:], crops[v, 2:])
            assert torch.all(rb - lt > 0)
            for (k, out, size) in ((g, gc[g, v], sizes[g]), (v, allb[v, g], sizes[v])):
                wh = crops[k, 2:] - crops[k, :2]
                out[:2] = size * ((lt - crops[k, :2]) / wh)
                out[2:] = size * ((rb - crops[k, :2]) / wh)
    return gc, allb


class Model(nn.Module):
    def __init__(self, vit=None, head=None):
        super().__init__()
        vit = vit or VIT
        head = head or HEAD
        self.vit = ViT(**vit)
        self.projection_head = nn.Sequential(
            nn.Linear(head["in_dim"], head["hidden"]), nn.GELU(),
            nn.Linear(head["hidden"], head["hidden"]), nn.GELU(),
            nn.Linear(head["hidden"], head["out"]),
        )

    def forward(self, x):
        # Patch tokens through the head, L2-normalised (the official forward_head with l2_norm=True).
        return F.normalize(self.projection_head(self.vit(x)["patches"]), dim=-1)

    def state(self):
        s = dict(official_state(self.vit))
        for i in (0, 2, 4):
            s[f"projection_head.{i}.weight"] = self.projection_head[i].weight
            s[f"projection_head.{i}.bias"] = self.projection_head[i].bias
        return s


def perm_mat(src, tgt, net, steepness):
    # compute_knn_perm_mat with sim_dist 'cosine': src, tgt [b, 49, d] -> permutations [b*49, 49, 49].
    sim = torch.einsum("bhc,bwc->bhw", F.normalize(src, dim=-1), F.normalize(tgt, dim=-1))
    return diff_sort(net, sim.reshape(-1, sim.shape[-1]), steepness)[1]


def pairs():
    return [(g, v) for g in range(G) for v in range(G + L) if v != g]


def neco_loss(s_glob, s_loc, t_glob, gc, allb, refs, net):
    # s_glob [G, B, Ng, d], s_loc [L, B, Nl, d], t_glob [G, B, Ng, d]; refs {(g, v): [B, 49, d]}.
    gg = int(math.isqrt(s_glob.shape[2]))
    lg = int(math.isqrt(s_loc.shape[2]))
    grid = lambda t, n: t.reshape(t.shape[0], n, n, -1).permute(0, 3, 1, 2)  # noqa: E731
    flat = lambda t: t.permute(0, 2, 3, 1).reshape(t.shape[0], ALIGN * ALIGN, -1)  # noqa: E731
    loss = 0
    for g in range(G):
        sub = 0
        for v in range(G + L):
            if v == g:
                continue
            t_al = flat(roi_align(grid(t_glob[g], gg), gc[:, g, v] / VIT["patch"]))
            if v < G:
                s_al = flat(roi_align(grid(s_glob[v], gg), allb[:, v, g] / VIT["patch"]))
            else:
                s_al = flat(roi_align(grid(s_loc[v - G], lg), allb[:, v, g] / VIT["patch"]))
            p = perm_mat(s_al, refs[(g, v)], net, STEEPNESS)
            with torch.no_grad():
                q = perm_mat(t_al, refs[(g, v)], net, STEEPNESS)
            # compute_knn_subloss ('all'): -mean over (b, input, h, w) of sum over sorted positions of q log p.
            sub = sub - torch.mean(torch.sum(q * torch.log(p), dim=-1))
        loss = loss + sub / (G + L - 1)
    return loss / G


class Queue:
    """update_queue and the reference draw of knn_loss (is_queue_usable), with the random indices recorded."""

    def __init__(self, dim, gen):
        self.q = torch.zeros(G, QUEUE, dim)
        self.entries = 0
        self.gen = gen

    def push(self, t_glob):
        k = min(B * 10, QUEUE)
        idx_all = []
        for i in range(G):
            emb = t_glob[i].reshape(-1, t_glob.shape[-1])
            idx = torch.randperm(emb.shape[0], generator=self.gen)[:k]
            self.q[i, k:] = self.q[i, :-k].clone()
            self.q[i, :k] = emb[idx]
            idx_all.append(idx)
        self.entries = min(self.entries + k, QUEUE)
        return torch.stack(idx_all)

    def draw(self, g):
        idx = torch.randperm(QUEUE, generator=self.gen)[: B * ALIGN * ALIGN]
        idx = torch.remainder(idx, self.entries)
        return self.q[g][idx].reshape(B, ALIGN * ALIGN, -1), idx


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    student = Model()
    randomize(student.vit, gen)
    with torch.no_grad():
        for i in (0, 2, 4):
            w = student.projection_head[i].weight
            w.copy_(torch.randn(w.shape, generator=gen) / math.sqrt(w.shape[1]))
            student.projection_head[i].bias.copy_(0.05 * torch.randn(w.shape[0], generator=gen))
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    init = {k: v.detach().clone() for k, v in student.state().items()}

    globals_ = torch.randn(G * B, 3, GLOBAL, GLOBAL, generator=gen)
    locals_ = torch.randn(L * B, 3, LOCAL, LOCAL, generator=gen)
    # Absolute crop boxes [x1, y1, x2, y2] per image on an IMAGE_W x IMAGE_H frame (globals large, locals small,
    # every pair intersecting), as NeCoTransforms samples them.
    crops = torch.tensor([
        [[4, 2, 80, 70], [10, 8, 94, 78], [20, 30, 44, 52], [50, 12, 70, 40]],
        [[0, 0, 64, 60], [16, 10, 90, 74], [30, 20, 52, 41], [8, 28, 40, 56]],
    ], dtype=torch.float32)
    sizes = [GLOBAL] * G + [LOCAL] * L
    boxes = [calculate_bboxes(crops[i], sizes) for i in range(B)]
    gc = torch.stack([b[0] for b in boxes])  # [B, G, V, 4]
    allb = torch.stack([b[1] for b in boxes])  # [B, V, G, 4]

    # 10x the paper's rates (1e-5, 1e-4) so 5 steps move the weights measurably. Not higher: the key bias and parts of
    # the key weights have analytically zero gradients, where both frameworks feed Adam rounding noise (|g| ~ 1e-8,
    # near eps) that it turns into updates of up to lr; at 1e-3 those alone differ by 4e-4 after 5 steps.
    lr_b = cosine(1e-4, 0.0, STEPS)
    lr_h = cosine(1e-3, 0.0, STEPS)
    wd = cosine(0.04, 0.5, STEPS)
    ema = cosine(0.9, 1.0, STEPS)

    names = list(student.state().keys())
    params = student.state()
    groups = []
    for head in (False, True):
        sel = [n for n in names if n.startswith("projection_head") == head]
        groups.append({"params": [params[n] for n in sel if not (n.endswith(".bias") or params[n].dim() == 1)]})
        groups.append({"params": [params[n] for n in sel if n.endswith(".bias") or params[n].dim() == 1],
                       "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr_b[0], betas=BETAS, eps=EPS, weight_decay=wd[0])
    net = bitonic_network(ALIGN * ALIGN)
    queue = Queue(HEAD["out"], gen)

    out = {f"init.{k}": v for k, v in init.items()}
    out.update({"globals": globals_, "locals": locals_, "crops": crops, "bbox_gc": gc, "bbox_all": allb})
    losses, push_idx, draw_idx = [], [], []
    for step in range(STEPS):
        for i, g in enumerate(opt.param_groups):
            g["lr"] = lr_b[step] if i < 2 else lr_h[step]
            if i in (0, 2):
                g["weight_decay"] = wd[step]
        with torch.no_grad():
            t_glob = teacher(globals_).reshape(G, B, -1, HEAD["out"])
        push_idx.append(queue.push(t_glob))
        refs, draws = {}, []
        for (g, v) in pairs():
            refs[(g, v)], idx = queue.draw(g)
            draws.append(idx)
        draw_idx.append(torch.stack(draws))
        s_glob = student(globals_).reshape(G, B, -1, HEAD["out"])
        s_loc = student(locals_).reshape(L, B, -1, HEAD["out"])
        loss = neco_loss(s_glob, s_loc, t_glob, gc, allb, refs, net)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for k in names:
                out[f"grad.{k}"] = params[k].grad.detach().clone()
        opt.step()
        with torch.no_grad():
            sp, tp = student.state(), teacher.state()
            for k in names:
                tp[k].mul_(ema[step]).add_((1 - ema[step]) * sp[k].detach())
        losses.append(loss.item())
    for k, v in student.state().items():
        out[f"final.{k}"] = v.detach().clone()
    for k, v in teacher.state().items():
        out[f"teacher.{k}"] = v.detach().clone()
    out["losses"] = torch.tensor(losses)
    out["push_idx"] = torch.stack(push_idx).to(torch.float32)  # [steps, G, k]
    out["draw_idx"] = torch.stack(draw_idx).to(torch.float32)  # [steps, pairs, B*49]
    meta = {"generator": "tools/neco_reference.py", "vit": json.dumps(VIT), "head": json.dumps(HEAD), "batch": B,
            "global_crops": G, "local_crops": L, "global": GLOBAL, "local": LOCAL, "steps": STEPS, "queue": QUEUE,
            "align": ALIGN, "steepness": STEEPNESS, "lr_backbone": json.dumps(lr_b), "lr_head": json.dumps(lr_h),
            "wd": json.dumps(wd), "ema": json.dumps(ema), "betas": json.dumps(BETAS), "eps": EPS,
            "torch": torch.__version__}
    safetensors_io.save(os.path.join(OUT, "neco_tiny.safetensors"), out, meta)
    print("losses", losses)


def bench(steps=3, warmup=1):
    """PyTorch timing of the step `npm run bench -- neco` times: ViT-S/16 (random init) student and EMA teacher,
    NeCo head (2048, 256), one image with 2 global crops (224) and 4 local crops (96), 10 crop pairs, queue draw,
    49 aligned patches, diff sort (steepness 100) for student and teacher, loss, backward, AdamW, EMA. The first
    (untimed) step also fills the RoI-align matrix cache (the crops are fixed). Wall and process CPU seconds."""
    import time
    import resource
    global ROI_CACHE
    ROI_CACHE = {}
    bench_threads.configure(torch)
    vit = dict(patch=16, dim=384, depth=12, heads=6, mlp_hidden=1536, registers=0, layer_scale=False, eps=1e-6,
               pos_grid=14)
    head = dict(in_dim=384, hidden=2048, out=256)
    global B, L, VIT
    B, L, VIT = 1, 4, vit
    gen = torch.Generator().manual_seed(0)
    student = Model(vit, head)
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW(student.parameters(), lr=1e-5)
    net = bitonic_network(ALIGN * ALIGN)
    x_g = torch.randn(G, 3, 224, 224, generator=gen)
    x_l = torch.randn(L, 3, 96, 96, generator=gen)
    crops = torch.tensor([[10, 0, 230, 210], [40, 30, 250, 240], [60, 50, 120, 110], [100, 90, 160, 150],
                          [150, 120, 200, 170], [70, 140, 130, 200]], dtype=torch.float32)
    gc, allb = calculate_bboxes(crops, [224] * G + [96] * L)
    gc, allb = gc[None], allb[None]
    queue = torch.nn.functional.normalize(torch.randn(8192, head["out"], generator=gen), dim=-1)
    times, cpu = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        with torch.no_grad():
            t_glob = teacher(x_g).reshape(G, 1, -1, head["out"])
        refs = {pv: queue[torch.randperm(queue.shape[0], generator=gen)[:49]].reshape(1, 49, -1) for pv in pairs()}
        s_glob = student(x_g).reshape(G, 1, -1, head["out"])
        s_loc = student(x_l).reshape(L, 1, -1, head["out"])
        loss = neco_loss(s_glob, s_loc, t_glob, gc, allb, refs, net)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(0.9995).add_(0.0005 * ps.detach())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(f"neco reference: step {i} {time.perf_counter() - t0:.2f} s, loss {loss.item():.4f}", file=sys.stderr,
              flush=True)
    print(json.dumps(bench_threads.timing(torch, times, cpu_s_per_step=bench_threads.median(cpu))))


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench(
            steps=int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 3,
            warmup=int(sys.argv[sys.argv.index("--warmup") + 1]) if "--warmup" in sys.argv else 1,
        )
    else:
        main()
