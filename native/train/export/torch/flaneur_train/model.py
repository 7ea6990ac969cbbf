"""The ViT, DINO head and losses of Flaneur's step graph (native/models/vit.ts, dino-head.ts, dino-loss.ts) as
functional PyTorch over {official name: tensor}, so checkpoints carry Flaneur's names unchanged."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def param_shapes(vit, head):
    """vitParamShapes + dinoHeadParamShapes, in Flaneur's order."""
    s = vit_shapes(vit)
    dims = [head["inDim"]] + [head["hiddenDim"]] * (head["layers"] - 1) + [head["bottleneckDim"]]
    for i in range(head["layers"]):
        s[f"head.mlp.{2 * i}.weight"] = [dims[i + 1], dims[i]]
        s[f"head.mlp.{2 * i}.bias"] = [dims[i + 1]]
    s["head.last_layer.weight_v"] = [head["outDim"], head["bottleneckDim"]]
    return s


def vit_shapes(vit):
    """vitParamShapes, in Flaneur's order."""
    D = vit["dim"]
    s = {
        "cls_token": [1, 1, D],
        "pos_embed": [1, 1 + vit["posGrid"] ** 2, D],
        "patch_embed.proj.weight": [D, 3, vit["patchSize"], vit["patchSize"]],
        "patch_embed.proj.bias": [D],
    }
    if vit["registers"] > 0:
        s["register_tokens"] = [1, vit["registers"], D]
    for i in range(vit["depth"]):
        p = f"blocks.{i}."
        s[p + "norm1.weight"] = [D]
        s[p + "norm1.bias"] = [D]
        s[p + "attn.qkv.weight"] = [3 * D, D]
        s[p + "attn.qkv.bias"] = [3 * D]
        s[p + "attn.proj.weight"] = [D, D]
        s[p + "attn.proj.bias"] = [D]
        if vit["layerScale"]:
            s[p + "ls1.gamma"] = [D]
        s[p + "norm2.weight"] = [D]
        s[p + "norm2.bias"] = [D]
        s[p + "mlp.fc1.weight"] = [vit["mlpHidden"], D]
        s[p + "mlp.fc1.bias"] = [vit["mlpHidden"]]
        s[p + "mlp.fc2.weight"] = [D, vit["mlpHidden"]]
        s[p + "mlp.fc2.bias"] = [D]
        if vit["layerScale"]:
            s[p + "ls2.gamma"] = [D]
    s["norm.weight"] = [D]
    s["norm.bias"] = [D]
    return s


def _pos(P, vit, gh, gw):
    pos = P["pos_embed"]
    N = vit["posGrid"]
    if gh == N and gw == N:
        return pos[:, :1], pos[:, 1:]
    grid = pos[:, 1:].reshape(1, N, N, -1).permute(0, 3, 1, 2)
    if vit["posInterpolation"] == "offset":
        # The official DINO / DINOv2 code (interpolate.ts 'offset'): scale factor (n + 0.1) / N.
        grid = F.interpolate(grid, scale_factor=((gh + 0.1) / N, (gw + 0.1) / N), mode="bicubic", align_corners=False)
    else:
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
    return pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)


def vit_forward(P, vit, x, dp=None, want_last=False):
    """CLS [B, D] (and, with want_last, the last block's q, k [B, n, D] without CLS and CLS attention [B, H, n])."""
    t, extra = _tokens(P, vit, x, dp, want_last)
    return t[:, 0], extra


def vit_patches(P, vit, x, dp=None):
    """The normalised patch tokens [B, n, D] (registers left out), as vit.ts's `patches` output."""
    t, _ = _tokens(P, vit, x, dp, False)
    return t[:, 1 + vit["registers"] :]


def _tokens(P, vit, x, dp, want_last):
    B, _, H, W = x.shape
    ps, D, R, heads = vit["patchSize"], vit["dim"], vit["registers"], vit["heads"]
    gh, gw = H // ps, W // ps
    n = gh * gw
    hd = D // heads
    t = F.conv2d(x, P["patch_embed.proj.weight"], P["patch_embed.proj.bias"], stride=ps).flatten(2).transpose(1, 2)
    cls_pos, patch_pos = _pos(P, vit, gh, gw)
    tokens = [(P["cls_token"] + cls_pos).expand(B, -1, -1)]
    if R:
        tokens.append(P["register_tokens"].expand(B, -1, -1))
    tokens.append(t + patch_pos)
    t = torch.cat(tokens, 1)
    eps = vit["lnEps"]
    extra = None
    depth = vit["depth"]
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(t, (D,), P[p + "norm1.weight"], P[p + "norm1.bias"], eps)
        qkv = F.linear(h, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"])
        q, k, v = qkv[..., :D], qkv[..., D : 2 * D], qkv[..., 2 * D :]
        split = lambda z: z.reshape(B, -1, heads, hd).permute(0, 2, 1, 3)
        attn = ((split(q) * hd**-0.5) @ split(k).transpose(-2, -1)).softmax(-1)
        if want_last and i == depth - 1:
            extra = (q[:, 1 + R :], k[:, 1 + R :], attn[:, :, 0, 1 + R :])
        a = F.linear((attn @ split(v)).transpose(1, 2).reshape(B, -1, D), P[p + "attn.proj.weight"], P[p + "attn.proj.bias"])
        if vit["layerScale"]:
            a = a * P[p + "ls1.gamma"]
        keep = dp[i].view(-1, 1, 1) if dp is not None else None
        if keep is not None:
            a = a * keep
        t = t + a
        f = F.linear(F.gelu(F.linear(F.layer_norm(t, (D,), P[p + "norm2.weight"], P[p + "norm2.bias"], eps),
                                     P[p + "mlp.fc1.weight"], P[p + "mlp.fc1.bias"])),
                     P[p + "mlp.fc2.weight"], P[p + "mlp.fc2.bias"])
        if vit["layerScale"]:
            f = f * P[p + "ls2.gamma"]
        if keep is not None:
            f = f * keep
        t = t + f
    return F.layer_norm(t, (D,), P["norm.weight"], P["norm.bias"], eps), extra


def _l2(x):
    return x / torch.sqrt((x * x).sum(-1, keepdim=True))


def head_forward(P, head, x):
    h = x
    for i in range(head["layers"]):
        h = F.linear(h, P[f"head.mlp.{2 * i}.weight"], P[f"head.mlp.{2 * i}.bias"])
        if i < head["layers"] - 1:
            h = F.gelu(h)
    return _l2(h) @ _l2(P["head.last_layer.weight_v"]).t()


class Student(nn.Module):
    """The student as one module (what DistributedDataParallel wraps): every crop size in one forward, as DINO's
    MultiCropWrapper. Parameters under Flaneur's names (dots stored as '__')."""

    def __init__(self, vit, head, weights):
        super().__init__()
        self.vit, self.head = vit, head
        self.names = list(weights.keys())
        self.params = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(w.clone()) for n, w in weights.items()})

    def named(self):
        return {n: self.params[n.replace(".", "__")] for n in self.names}

    def forward(self, globals_, locals_=None, dp_global=None, dp_local=None):
        P = self.named()
        cls, _ = vit_forward(P, self.vit, globals_, dp_global)
        out = [head_forward(P, self.head, cls)]
        if locals_ is not None:
            lcls, _ = vit_forward(P, self.vit, locals_, dp_local)
            out.append(head_forward(P, self.head, lcls))
        return torch.cat(out).float(), cls.float()


def teacher_probs(teacher, center, temp):
    return F.softmax((teacher - center) / temp, dim=-1)


def dino_loss(student, probs, student_temp, crops, globals_, batch):
    """dino-loss.ts dinoLoss: CE of each global crop's teacher against every other crop, averaged over the pairs."""
    logp = F.log_softmax(student / student_temp, dim=-1)
    rows = lambda v, i: v[i * batch : (i + 1) * batch]
    total, terms = 0.0, 0
    for t in range(globals_):
        q = rows(probs, t)
        for v in range(crops):
            if v == t:
                continue
            total = total + (-(q * rows(logp, v)).sum(-1)).mean()
            terms += 1
    return total / terms


def dora_loss(student, probs, student_temp, masked, locals_, batch):
    """dino-loss.ts doraLoss: 1/2 [mean_j CE(teacher, mask_j) + mean_l CE(teacher, local_l)]."""
    logp = F.log_softmax(student / student_temp, dim=-1)
    rows = lambda v, i: v[i * batch : (i + 1) * batch]

    def mean_ce(start, count):
        return sum((-(probs * rows(logp, v)).sum(-1)).mean() for v in range(start, start + count)) / count

    m = mean_ce(0, masked)
    return 0.5 * (m + mean_ce(masked, locals_)) if locals_ > 0 else m


def mean_entropy(probs):
    return (-(probs * torch.log(probs + 1e-12)).sum(-1)).mean()


def koleo_loss(x, tau=0.01):
    """dino-loss.ts koleoLoss: soft-min nearest neighbour distance of L2-normalised rows."""
    n = x.shape[0]
    z = _l2(x)
    d2 = F.relu(2 - 2 * (z @ z.t()))
    d = torch.sqrt(d2 + 1e-8) + torch.eye(n, device=x.device, dtype=x.dtype) * 1e3
    neg = d / -tau
    shift = neg.max(1, keepdim=True).values.detach()
    nearest = -tau * (shift + torch.log(torch.exp(neg - shift).sum(1, keepdim=True)))
    return -torch.log(nearest + 1e-8).mean()


def cosine(base, final, total, warmup=0, start=0.0):
    """graph/optim.ts cosineSchedule."""

    def f(step):
        if step < warmup:
            return base if warmup == 1 else start + (base - start) * step / (warmup - 1)
        t = (step - warmup) / max(1, total - warmup)
        return final + 0.5 * (base - final) * (1 + math.cos(math.pi * min(1.0, t)))

    return f
