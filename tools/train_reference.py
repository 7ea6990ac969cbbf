#!/usr/bin/python3
"""
PyTorch reference for Flaneur's training graphs: a tiny DINO student/teacher (the ViT of vit_reference.py with a
DINO head), the DINO loss over 2 global + 2 local crops, gradients of every student parameter at the first step,
then 5 AdamW steps with global-norm clipping, cosine lr / weight-decay schedules, the EMA teacher and the centre.

Writes tests/fixtures/train/dino_tiny.safetensors (initial parameters, inputs, schedules, expected gradients,
losses and final parameters). Run with Debian's python3-torch:  /usr/bin/python3 tools/train_reference.py
"""
import copy
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bench_threads  # noqa: E402  (before torch: --threads sets the BLAS/OpenMP thread variables)
import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
from vit_reference import ViT, official_state, randomize  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "train")

VIT = dict(patch=16, dim=48, depth=2, heads=3, mlp_hidden=96, registers=0, layer_scale=False, eps=1e-6, pos_grid=4)
HEAD = dict(in_dim=48, hidden=64, bottleneck=32, out=128)
B, GLOBAL, LOCAL, STEPS = 2, 64, 32, 5
STUDENT_TEMP, TEACHER_TEMP, CENTER_M, MAX_NORM = 0.1, 0.04, 0.9, 0.3
BETAS, EPS = (0.9, 0.999), 1e-8


def cosine(base, final, total, warmup=0, start=0.0):
    out = []
    for s in range(total):
        if s < warmup:
            out.append(base if warmup == 1 else start + (base - start) * s / (warmup - 1))
        else:
            t = (s - warmup) / max(1, total - warmup)
            out.append(final + 0.5 * (base - final) * (1 + math.cos(math.pi * min(1.0, t))))
    return out


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(HEAD["in_dim"], HEAD["hidden"]), nn.GELU(),
            nn.Linear(HEAD["hidden"], HEAD["hidden"]), nn.GELU(),
            nn.Linear(HEAD["hidden"], HEAD["bottleneck"]),
        )
        self.weight_v = nn.Parameter(torch.empty(HEAD["out"], HEAD["bottleneck"]))

    def forward(self, x):
        z = F.normalize(self.mlp(x), dim=-1)
        return F.linear(z, F.normalize(self.weight_v, dim=1))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.vit = ViT(**VIT)
        self.head = Head()

    def forward(self, x):
        return self.head(self.vit(x)["cls"])

    def state(self):
        s = {k: v for k, v in official_state(self.vit).items()}
        for i in (0, 2, 4):
            s[f"head.mlp.{i}.weight"] = self.head.mlp[i].weight
            s[f"head.mlp.{i}.bias"] = self.head.mlp[i].bias
        s["head.last_layer.weight_v"] = self.head.weight_v
        return s


def dino_loss(student, teacher, center):
    s = (student / STUDENT_TEMP).chunk(4)
    t = F.softmax((teacher - center) / TEACHER_TEMP, dim=-1).detach().chunk(2)
    total, n = 0, 0
    for iq, q in enumerate(t):
        for v in range(len(s)):
            if v == iq:
                continue
            total = total + torch.sum(-q * F.log_softmax(s[v], dim=-1), dim=-1).mean()
            n += 1
    return total / n


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(5)
    student = Model()
    randomize(student.vit, gen)
    with torch.no_grad():
        for i in (0, 2, 4):
            student.head.mlp[i].weight.copy_(torch.randn(student.head.mlp[i].weight.shape, generator=gen) / math.sqrt(student.head.mlp[i].weight.shape[1]))
            student.head.mlp[i].bias.copy_(0.05 * torch.randn(student.head.mlp[i].bias.shape, generator=gen))
        student.head.weight_v.copy_(torch.randn(student.head.weight_v.shape, generator=gen))
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    init = {k: v.detach().clone() for k, v in student.state().items()}

    globals_ = torch.randn(2 * B, 3, GLOBAL, GLOBAL, generator=gen)
    locals_ = torch.randn(2 * B, 3, LOCAL, LOCAL, generator=gen)
    center = 0.1 * torch.randn(1, HEAD["out"], generator=gen)
    # Peak lr 2e-3: the key bias has an analytically zero gradient, so both frameworks feed Adam rounding noise
    # there, which Adam normalises to updates of about lr; at DINO-like learning rates that stays below 1e-4.
    lr = cosine(2e-3, 1e-4, STEPS, warmup=2, start=5e-4)
    wd = cosine(0.04, 0.4, STEPS)
    ema = cosine(0.9, 1.0, STEPS)

    names = list(student.state().keys())
    params = student.state()
    reg = [params[n] for n in names if params[n].dim() > 1]
    not_reg = [params[n] for n in names if params[n].dim() <= 1]
    opt = torch.optim.AdamW([{"params": reg}, {"params": not_reg, "weight_decay": 0.0}], lr=lr[0], betas=BETAS, eps=EPS)

    out = {f"init.{k}": v for k, v in init.items()}
    out.update({"globals": globals_, "locals": locals_, "center0": center})
    losses, norms = [], []
    for step in range(STEPS):
        for i, g in enumerate(opt.param_groups):
            g["lr"] = lr[step]
            if i == 0:
                g["weight_decay"] = wd[step]
        s_out = torch.cat([student(globals_), student(locals_)])
        with torch.no_grad():
            t_out = teacher(globals_)
        loss = dino_loss(s_out, t_out, center)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for k in names:
                out[f"grad.{k}"] = params[k].grad.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_([params[k] for k in names], MAX_NORM)
        opt.step()
        with torch.no_grad():
            sp, tp = student.state(), teacher.state()
            for k in names:
                tp[k].mul_(ema[step]).add_((1 - ema[step]) * sp[k].detach())
            center = center * CENTER_M + t_out.mean(dim=0, keepdim=True) * (1 - CENTER_M)
        losses.append(loss.item())
        norms.append(norm.item())
    for k, v in student.state().items():
        out[f"final.{k}"] = v.detach().clone()
    for k, v in teacher.state().items():
        out[f"teacher.{k}"] = v.detach().clone()
    out["center_final"] = center
    out["losses"] = torch.tensor(losses)
    out["grad_norms"] = torch.tensor(norms)
    meta = {"generator": "tools/train_reference.py", "vit": json.dumps(VIT), "head": json.dumps(HEAD), "batch": B,
            "global": GLOBAL, "local": LOCAL, "steps": STEPS, "student_temp": STUDENT_TEMP, "teacher_temp": TEACHER_TEMP,
            "center_momentum": CENTER_M, "max_norm": MAX_NORM, "lr": json.dumps(lr), "wd": json.dumps(wd),
            "ema": json.dumps(ema), "betas": json.dumps(BETAS), "eps": EPS, "torch": torch.__version__}
    safetensors_io.save(os.path.join(OUT, "dino_tiny.safetensors"), out, meta)
    print("losses", losses, "norms", norms)




def bench_models():
    """ViT-Ti/16 student and EMA teacher with the DINO head (2048, 256, 4096), AdamW, for the step benchmarks."""
    global HEAD
    bench_threads.configure(torch)
    vit = dict(patch=16, dim=192, depth=12, heads=3, mlp_hidden=768, registers=0, layer_scale=False, eps=1e-6, pos_grid=14)
    HEAD = dict(in_dim=192, hidden=2048, bottleneck=256, out=4096)

    class BenchModel(Model):
        def __init__(self):
            nn.Module.__init__(self)
            self.vit = ViT(**vit)
            self.head = Head()

    gen = torch.Generator().manual_seed(0)
    student = BenchModel()
    randomize(student.vit, gen)
    with torch.no_grad():
        student.head.weight_v.normal_()
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    params = list(student.parameters())
    return student, teacher, params, torch.optim.AdamW(params, lr=1e-4), gen


def update(student, teacher, params, opt, loss):
    """Backward, global-norm clipping (3.0), AdamW, EMA teacher (0.996): the end of every benchmarked step."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 3.0)
    opt.step()
    with torch.no_grad():
        for ps, pt in zip(student.parameters(), teacher.parameters()):
            pt.mul_(0.996).add_(0.004 * ps.detach())


def report(times):
    print(json.dumps(bench_threads.timing(torch, times)))


def bench(steps=4, batch=32, warmup=1):
    """PyTorch 1.13 timing of the same DINO-style step as `npm run bench -- train`: ViT-Ti/16 at 224 px, batch
    images as 2 global crops of batch/2 images, DINO head (2048, 256, 4096), loss, backward, clip, AdamW, EMA."""
    import time
    student, teacher, params, opt, gen = bench_models()
    x = torch.randn(batch, 3, 224, 224, generator=gen)
    center = torch.zeros(1, HEAD["out"])

    def loss_fn(s, t):
        s = (s / STUDENT_TEMP).chunk(2)
        t = F.softmax((t - center) / TEACHER_TEMP, dim=-1).chunk(2)
        return 0.5 * (torch.sum(-t[0] * F.log_softmax(s[1], -1), -1).mean() + torch.sum(-t[1] * F.log_softmax(s[0], -1), -1).mean())

    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            t_out = teacher(x)
        loss = loss_fn(student(x), t_out)
        update(student, teacher, params, opt, loss)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    report(times)


def dora_bench(steps=3, frames=8, objects=3, warmup=1):
    """PyTorch 1.13 timing of the same Dora step as `npm run bench -- dora`: ViT-Ti/16 at 224 px, one clip of
    `frames` frames; the teacher's forward gives its logits and last-block q, k, CLS attention; prototypes from
    `objects` heads on the first frame, Sinkhorn-Knopp (0.05, 30), masks by cross-attention on every frame,
    nearest-upsampled; the student on the objects x frames masked views; Dora loss, backward, clip, AdamW, EMA."""
    import time
    student, teacher, params, opt, gen = bench_models()
    x = torch.randn(frames, 3, 224, 224, generator=gen)
    center = torch.zeros(1, HEAD["out"])
    black = torch.full((1, 3, 1, 1), -2.0)
    heads = list(range(objects))

    def sinkhorn(scores, eps=0.05, iters=30):
        q = torch.exp((scores - scores.max()) / eps)
        q = q / q.sum()
        n, k = q.shape
        for _ in range(iters):
            q = q / (q.sum(0, keepdim=True) * k)
            q = q / (q.sum(1, keepdim=True) * n)
        return q * n

    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = teacher.vit(x)
            t_logits = teacher.head(out["cls"])
            q, k, att = out["q"][:, 1:], out["k"][:, 1:], out["attention"]
            d = q.shape[-1]
            proto = att[0, heads] @ q[0]
            xn = F.normalize(q[0], dim=-1)
            m = sinkhorn(xn @ F.normalize(proto, dim=-1).T)
            refined = m.T @ xn
            t = (refined @ k.transpose(1, 2) / math.sqrt(d)).softmax(-1)
            t = F.normalize(t, dim=-1)
            masks = (t > t.mean(-1, keepdim=True)).float()  # [F, k, n]
            masks = masks.reshape(frames, objects, 14, 14).repeat_interleave(16, 2).repeat_interleave(16, 3)
            views = torch.cat([x * masks[:, j : j + 1] + black * (1 - masks[:, j : j + 1]) for j in range(objects)])
        s = student(views) / STUDENT_TEMP
        tp = F.softmax((t_logits - center) / TEACHER_TEMP, dim=-1)
        loss = sum(torch.sum(-tp * F.log_softmax(c, -1), -1).mean() for c in s.chunk(objects)) / objects
        update(student, teacher, params, opt, loss)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    report(times)


if __name__ == "__main__":
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else None
    warmup = {"warmup": int(sys.argv[sys.argv.index("--warmup") + 1])} if "--warmup" in sys.argv else {}
    if "--dora-bench" in sys.argv:
        dora_bench(**({"steps": steps} if steps else {}), **warmup)
    elif "--bench" in sys.argv:
        bench(**({"steps": steps} if steps else {}), **warmup)
    else:
        main()
