"""Golden ShareLock head training steps (tests/fixtures/text/sharelock_tiny.safetensors).

Written from the official code (JonaRuthardt/ShareLock: sharelock/models/projection.py, model.py, utils/misc.py,
train.py, configs/default_config.yaml): the language projector is nn.Sequential of (Linear, BatchNorm1d, ReLU,
Dropout(0.2)) x (layers - 1) then Linear to the embedding size, L2-normalised; the vision projector has 0 layers
(the normalised vision feature itself, so the embedding size is the vision width); the loss is transformers'
clip_loss of exp(2.6592) * image @ text.T (mean of the two cross-entropies with the diagonal as targets); Adam with
weight decay (added to the gradient) on every parameter, get_cosine_schedule_with_warmup stepped per optimizer
step, and Lightning's gradient_clip_val (clip_grad_norm_ to 1 before the step). Dropout's random masks are drawn
here and saved (scaled by 1 / (1 - p)) so the test feeds the same ones.

Rerun: /usr/bin/python3 tools/sharelock_reference.py
Bench (`npm run bench -- sharelock`): /usr/bin/python3 tools/sharelock_reference.py --bench [--batch B] [--text T]
  [--vision V] [--hidden H] [--steps N] [--threads T] — the official modules (real nn.Dropout), seconds per step.
"""
import json
import math
import os
import sys

if "--threads" in sys.argv:
    # Thread counts must be set before torch (and its OpenMP / BLAS) is imported.
    _t = sys.argv[sys.argv.index("--threads") + 1]
    for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_k] = _t
    # OpenMP threads that sleep between parallel regions instead of spinning, as Flaneur's step session does
    # (allow_spinning 0): on this loaded 2-core machine, 2 threads at batch/hidden 1024 took 5.7 s a step
    # spinning (1.2 CPU s) and 2.0 s passive (0.48 CPU s). PyTorch at its best, unless the caller chose.
    if int(_t) > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "text", "sharelock_tiny.safetensors")

B, TEXT, VISION, HIDDEN, LAYERS = 8, 32, 16, 48, 4
LR, WD, WARMUP, TOTAL, STEPS, P = 1e-2, 1e-4, 2, 10, 5, 0.2
ACC, ACC_STEPS = 2, 3


class FixedDropout(nn.Module):
    """nn.Dropout(p) in training mode with its mask given (the mask holds 0 or 1 / (1 - p))."""

    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        return x * self.mask if self.training else x


class Projection(nn.Module):
    """sharelock/models/projection.py with Dropout's masks fixed."""

    def __init__(self, embedding_size, input_size, hidden_size, num_layers, normalize=True, dropout=None):
        super().__init__()
        self.normalize = normalize
        if num_layers > 0:
            layers = []
            for _ in range(num_layers - 1):
                layers.append(nn.Linear(input_size, hidden_size))
                layers.append(nn.BatchNorm1d(hidden_size))
                layers.append(nn.ReLU())
                layers.append(FixedDropout() if dropout is None else nn.Dropout(dropout))
                input_size = hidden_size
            layers.append(nn.Linear(input_size, embedding_size))
            self.projection = nn.Sequential(*layers)
        else:
            self.projection = nn.Identity()

    def forward(self, x):
        projection = self.projection(x)
        if self.normalize:
            projection = projection / projection.norm(dim=1, keepdim=True)
        return projection


def contrastive_loss(logits):
    return nn.functional.cross_entropy(logits, torch.arange(len(logits)))


def clip_loss(similarity):
    return (contrastive_loss(similarity) + contrastive_loss(similarity.t())) / 2.0


def loss_fn(logits, target):
    logit_scale = torch.tensor(2.6592).exp()
    return clip_loss(logit_scale * logits @ target.T)


def cosine_with_warmup(step):
    if step < WARMUP:
        return float(step) / float(max(1, WARMUP))
    progress = float(step - WARMUP) / float(max(1, TOTAL - WARMUP))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def draw_batch(out, prefix, drops):
    """A batch of features (text of an LLM: large and shifted; vision: DINOv2-like) and the dropout masks, saved."""
    text = torch.randn(B, TEXT) * 2 + 0.5
    vis = torch.randn(B, VISION)
    out[f"{prefix}.text"] = text
    out[f"{prefix}.vision"] = vis
    for j, d in enumerate(drops):
        d.mask = (torch.rand(B, HIDDEN) >= P).float() / (1 - P)
        out[f"{prefix}.mask.{j}"] = d.mask
    return text, vis


def main():
    torch.manual_seed(29)
    language = Projection(VISION, TEXT, HIDDEN, LAYERS)
    vision = Projection(VISION, VISION, 4096, 0)
    language.train()
    out = {}
    for k, v in language.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"init.language_projector.{k}"] = v.clone()
    opt = torch.optim.Adam(list(vision.parameters()) + list(language.parameters()), lr=LR, weight_decay=WD)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup)
    drops = [m for m in language.projection if isinstance(m, FixedDropout)]
    losses, lrs, norms = [], [], []
    for step in range(STEPS):
        text, vis = draw_batch(out, f"batch.{step}", drops)
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = loss_fn(vision(vis), language(text))
        loss.backward()
        if step == 0:
            for k, p in language.named_parameters():
                out[f"grad0.language_projector.{k}"] = p.grad.clone()
        norms.append(float(torch.nn.utils.clip_grad_norm_(language.parameters(), 1.0)))
        opt.step()
        sched.step()
        losses.append(float(loss))
    for k, v in language.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"final.language_projector.{k}"] = v.clone()
    # Inference (zero-shot prototypes, text queries): running statistics, no dropout.
    language.eval()
    with torch.no_grad():
        text = torch.randn(3, TEXT) * 2 + 0.5
        out["eval.text"] = text
        out["eval.embedding"] = language(text)
    # Gradient accumulation (Lightning's accumulate_grad_batches): each micro-batch's loss / ACC backward, BatchNorm
    # per micro-batch, then clip + Adam + schedule once per ACC micro-batches. Fresh initial weights.
    torch.manual_seed(31)
    language = Projection(VISION, TEXT, HIDDEN, LAYERS)
    language.train()
    drops = [m for m in language.projection if isinstance(m, FixedDropout)]
    for k, v in language.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"accum.init.language_projector.{k}"] = v.clone()
    opt = torch.optim.Adam(language.parameters(), lr=LR, weight_decay=WD)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup)
    acc_losses, acc_norms = [], []
    for step in range(ACC_STEPS):
        opt.zero_grad()
        total = 0.0
        for micro in range(ACC):
            text, vis = draw_batch(out, f"accum.batch.{step}.{micro}", drops)
            loss = loss_fn(vision(vis), language(text))
            (loss / ACC).backward()
            total += float(loss)
        acc_norms.append(float(torch.nn.utils.clip_grad_norm_(language.parameters(), 1.0)))
        opt.step()
        sched.step()
        acc_losses.append(total / ACC)
    for k, v in language.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"accum.final.language_projector.{k}"] = v.clone()
    meta = {
        "accumulation": ACC, "accum_steps": ACC_STEPS, "accum_losses": json.dumps(acc_losses),
        "accum_grad_norms": json.dumps(acc_norms),
        "batch": B, "text": TEXT, "vision": VISION, "hidden": HIDDEN, "layers": LAYERS, "lr": LR, "wd": WD,
        "warmup": WARMUP, "total": TOTAL, "steps": STEPS, "dropout": P,
        "losses": json.dumps(losses), "lrs": json.dumps(lrs), "grad_norms": json.dumps(norms),
    }
    safetensors_io.save(OUT, out, meta)
    print("wrote", OUT, "losses", losses, "lrs", lrs, "norms", norms)


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def bench():
    import resource
    import time

    b, text_dim, vision_dim = arg("--batch", 4096), arg("--text", 4096), arg("--vision", 384)
    hidden, steps = arg("--hidden", 4096), arg("--steps", 2)
    threads = arg("--threads", 0)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    language = Projection(vision_dim, text_dim, hidden, LAYERS, dropout=P)
    vision = Projection(vision_dim, vision_dim, 4096, 0)
    language.train()
    opt = torch.optim.Adam(list(vision.parameters()) + list(language.parameters()), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup)
    text = torch.randn(b, text_dim)
    vis = torch.randn(b, vision_dim)
    times, cpu = [], []
    for step in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad()
        loss = loss_fn(vision(vis), language(text))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(language.parameters(), 1.0)
        opt.step()
        sched.step()
        float(loss)
        if step > 0:  # the first step warms up allocations
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    print(json.dumps({
        "s_per_step": min(times), "cpu_s_per_step": min(cpu), "threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
    else:
        main()
