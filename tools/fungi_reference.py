#!/usr/bin/python3
"""
Golden per-sample FUNGI gradients for Flaneur's FUNGI graphs (native/fungi/graph.ts).

A tiny DINO-style ViT (tools/vit_reference.py, dim 48, 2 blocks) at 32 px; for each objective the losses written as
fungivision writes them (KL: kl_div(log_softmax(z/T), uniform, 'mean'); DINO: the teacher/student double loop with
same views included and a detached, separate teacher head; SimCLR: InfoNCE against a fixed negative batch with the
self-similarity replaced by -10e3 through diagonal_scatter and the temperature only on the positives), run one
sample at a time (batch of one: the per-sample gradient by definition), gradient w.r.t. blocks.1.attn.proj weight
and bias concatenated as [D, D+1].

Writes tests/fixtures/fungi/fungi_tiny.safetensors. Run with Debian's python3-torch:
  /usr/bin/python3 tools/fungi_reference.py
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402
from vit_reference import MODELS, ViT, official_state, randomize  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fungi")
SIZE = 32
SAMPLES = 3
# Reduced view counts and head sizes keep the fixture small; the formulas are the paper's.
DINO = dict(teacher_temp=0.07, student_temp=0.1, latent=64, global_views=2, local_views=2)
KL_T = 1.0
SIMCLR = dict(temperature=0.07, latent=16, views=9, negatives=10)


def linear(gen, inp, out):
    layer = nn.Linear(inp, out)
    bound = 1 / inp**0.5
    with torch.no_grad():
        layer.weight.copy_((torch.rand(out, inp, generator=gen) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(out, generator=gen) * 2 - 1) * bound)
    return layer


def kl_loss(vit, head, views):
    z = head(F.normalize(vit(views)["cls"], dim=-1, p=2))
    L = z.shape[1]
    uniform = F.softmax(torch.ones(L) / L / KL_T, dim=0).unsqueeze(0).repeat(z.shape[0], 1)
    return F.kl_div(F.log_softmax(z / KL_T, dim=1), uniform, reduction="mean")


def dino_loss(vit, student_head, teacher_head, views):
    e = F.normalize(vit(views)["cls"], dim=-1, p=2).unsqueeze(0)  # [1, V, D]
    with torch.no_grad():
        t = teacher_head(e[:, :2].reshape(2, -1).detach())
    s = student_head(e.reshape(e.shape[1], -1))
    t = F.softmax(t.reshape(1, 2, -1) / DINO["teacher_temp"], dim=-1).permute(1, 0, 2)
    s = F.log_softmax(s.reshape(1, e.shape[1], -1) / DINO["student_temp"], dim=-1).permute(1, 0, 2)
    loss = torch.zeros(1)
    for tv in t:
        for sv in s:
            loss += (-tv * sv).sum(dim=-1)
    return loss.mean()


def simclr_loss(vit, head, views, negatives):
    latents = head(vit(views)["cls"])
    features = F.normalize(torch.cat([negatives, latents], dim=0), dim=-1, p=2)
    n = latents.shape[0]
    cos = F.cosine_similarity(features[-n:, None, :], features[None, :, :], dim=-1)
    rows, cols = cos.shape
    cos = torch.diagonal_scatter(cos, torch.ones(rows) * -10e3, cols - rows)
    pos = cos[:, -n:] / SIMCLR["temperature"]
    nll = -(pos - torch.diag(pos)).sum(dim=1) / (n - 1)
    nll = nll + torch.logsumexp(cos, dim=-1)
    return nll.mean()


def per_sample_grad(vit, loss_fn, views, V):
    proj = vit.blocks[-1].proj
    grads, losses = [], []
    for s in range(views.shape[0] // V):
        vit.zero_grad()
        loss = loss_fn(views[s * V : (s + 1) * V])
        loss.backward()
        grads.append(torch.cat([proj.weight.grad, proj.bias.grad.unsqueeze(1)], dim=1).clone())
        losses.append(loss.item())
    return torch.stack(grads), losses


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(11)
    kwargs, _, _ = MODELS["dino_tiny"]
    vit = ViT(**kwargs)
    randomize(vit, gen)
    D = kwargs["dim"]
    out = {f"model.{k}": v for k, v in official_state(vit).items()}

    kl_head = linear(gen, D, D)
    dino_s = linear(gen, D, DINO["latent"])
    dino_t = linear(gen, D, DINO["latent"])
    simclr_head = linear(gen, D, SIMCLR["latent"])
    for name, h in (("kl", kl_head), ("dino_student", dino_s), ("dino_teacher", dino_t), ("simclr", simclr_head)):
        out[f"head.{name}.weight"] = h.weight
        out[f"head.{name}.bias"] = h.bias
    for p in list(dino_t.parameters()) + list(dino_s.parameters()) + list(kl_head.parameters()) + list(simclr_head.parameters()):
        p.requires_grad = False

    V_DINO = DINO["global_views"] + DINO["local_views"]
    views = {
        "kl": torch.randn(SAMPLES, 3, SIZE, SIZE, generator=gen),
        "dino": torch.randn(SAMPLES * V_DINO, 3, SIZE, SIZE, generator=gen),
        "simclr": torch.randn(SAMPLES * SIMCLR["views"], 3, SIZE, SIZE, generator=gen),
    }
    negatives = F.normalize(torch.randn(SIMCLR["negatives"], SIMCLR["latent"], generator=gen), dim=-1)
    out["simclr.negatives"] = negatives
    g, l = per_sample_grad(vit, lambda v: kl_loss(vit, kl_head, v), views["kl"], 1)
    out.update({"kl.views": views["kl"], "kl.grad": g, "kl.loss": torch.tensor(l)})
    g, l = per_sample_grad(vit, lambda v: dino_loss(vit, dino_s, dino_t, v), views["dino"], V_DINO)
    out.update({"dino.views": views["dino"], "dino.grad": g, "dino.loss": torch.tensor(l)})
    g, l = per_sample_grad(vit, lambda v: simclr_loss(vit, simclr_head, v, negatives), views["simclr"], SIMCLR["views"])
    out.update({"simclr.views": views["simclr"], "simclr.grad": g, "simclr.loss": torch.tensor(l)})
    meta = {"generator": "tools/fungi_reference.py", "vit": json.dumps(kwargs), "size": SIZE, "samples": SAMPLES,
            "kl_temperature": KL_T, "dino": json.dumps(DINO), "simclr": json.dumps(SIMCLR), "torch": torch.__version__}
    safetensors_io.save(os.path.join(OUT, "fungi_tiny.safetensors"), out, meta)
    print({k: out[k].abs().max().item() for k in ("kl.grad", "dino.grad", "simclr.grad")})


if __name__ == "__main__":
    main()
