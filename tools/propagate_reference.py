#!/usr/bin/python3
"""
PyTorch reference of mask propagation and of the DAVIS metrics, for Flaneur's parity tests and its propagate bench.

Propagation is written from DINO's eval_video_segmentation.py (facebookresearch/dino): the first frame's mask on the
patch grid (nearest), a queue of the n most recent soft predictions, affinity exp(cos / temperature) between the
target's patches and the context's, a square neighbourhood of `radius` patches (the first frame's of `firstRadius`
when meta.json gives it; DINO's protocol otherwise), top-k over the whole context,
normalised weights (with meta.json's `firstPrior` β, Flaneur's product option: (1 - β) x that + β x the labels of
the top-k most similar patches of the whole first frame; with `reidentify` δ, lost objects found again: `reidentify`
below), soft labels carried; bilinear upsampling by the patch size (align_corners=False), per-object
min-max normalisation (norm_mask), argmax, nearest resize to the mask's size. J and F are written from the DAVIS
2017 toolkit's definitions (db_eval_iou, f_measure with _seg2bmap and a disk of ceil(0.008 x diagonal)); frames
scored are all but the first and the last, as the semi-supervised DAVIS evaluation does.

  /usr/bin/python3 tools/propagate_reference.py propagate DIR     # DIR/meta.json, features.f32, masks.u8.gz
  /usr/bin/python3 tools/propagate_reference.py fmeasure DIR      # DIR/meta.json, pairs.u8

`propagate` writes DIR/reference.json (J, F, J&F per object and mean) and DIR/reference-masks.u8.gz (the predicted
instance ids of every frame, the first one being the given mask); `fmeasure` writes DIR/fmeasure.json (F per pair).
"""
import gzip
import json
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

torch.set_num_threads(1)


def nearest_resize(a, out_h, out_w):
    """PIL's NEAREST: source index floor((o + 0.5) * in / out)."""
    h, w = a.shape
    ys = np.minimum(h - 1, np.floor((np.arange(out_h) + 0.5) * h / out_h).astype(np.int64))
    xs = np.minimum(w - 1, np.floor((np.arange(out_w) + 0.5) * w / out_w).astype(np.int64))
    return a[ys][:, xs]


def to_one_hot(small, classes):
    h, w = small.shape
    t = torch.from_numpy(np.ascontiguousarray(small, dtype=np.int64)).view(-1, 1)
    t = torch.where(t < classes, t, torch.zeros_like(t))
    one = torch.zeros(t.shape[0], classes).scatter_(1, t, 1)
    return one.view(h, w, classes).permute(2, 0, 1).unsqueeze(0)


def restrict_neighborhood(h, w, size):
    mask = torch.zeros(h, w, h, w)
    for i in range(h):
        for j in range(w):
            mask[i, j, max(0, i - size): min(h, i + size + 1), max(0, j - size): min(w, j + size + 1)] = 1
    return mask.reshape(h * w, h * w)


def label_propagation(feat_tar, h, w, list_frame_feats, list_segs, args, mask_neighborhood):
    return_feat_tar = feat_tar.T
    ncontext = len(list_frame_feats)
    feat_sources = torch.stack(list_frame_feats)  # ncontext x dim x hw
    feat_tar = F.normalize(feat_tar, dim=1, p=2)
    feat_sources = F.normalize(feat_sources, dim=1, p=2)
    feat_tar = feat_tar.unsqueeze(0).repeat(ncontext, 1, 1)
    cos = torch.bmm(feat_tar, feat_sources)  # ncontext x n_tar x n_src
    aff = torch.exp(cos / args["temperature"])
    if mask_neighborhood is None:
        # DINO's one neighbourhood for every context frame; Flaneur's `firstRadius` gives the first frame its own.
        first_radius = args.get("firstRadius", args["radius"])
        mask_neighborhood = (
            restrict_neighborhood(h, w, args["radius"]) if args["radius"] > 0 else None,
            restrict_neighborhood(h, w, first_radius) if first_radius > 0 else None,
        )
    recent_mask, first_mask = mask_neighborhood
    if first_mask is not None:
        aff[0] *= first_mask
    if recent_mask is not None and ncontext > 1:
        aff[1:] *= recent_mask.unsqueeze(0)
    aff = aff.transpose(2, 1).reshape(-1, h * w)
    tk_val, _ = torch.topk(aff, dim=0, k=min(args["topk"], aff.shape[0]))
    tk_val_min, _ = torch.min(tk_val, dim=0)
    aff[aff < tk_val_min] = 0
    aff = aff / torch.sum(aff, keepdim=True, axis=0)
    segs = torch.cat(list_segs)
    nmb_context, C, h, w = segs.shape
    segs = segs.reshape(nmb_context, C, -1).transpose(2, 1).reshape(-1, C).T
    seg_tar = torch.mm(segs, aff)
    beta = args.get("firstPrior", 0)
    if beta > 0:
        # Flaneur's first-frame prior: each target patch's top-k affinities to the whole first frame, mixed in.
        a0 = torch.exp(torch.mm(feat_tar[0], feat_sources[0]) / args["temperature"]).T  # n_src x n_tar
        k0, _ = torch.topk(a0, dim=0, k=min(args["topk"], a0.shape[0]))
        k0_min, _ = torch.min(k0, dim=0)
        a0[a0 < k0_min] = 0
        a0 = a0 / torch.sum(a0, keepdim=True, axis=0)
        seg_tar = (1 - beta) * seg_tar + beta * torch.mm(list_segs[0].reshape(C, -1), a0)
    if args.get("reidentify") is not None:
        seg_tar = reidentify(seg_tar, cos, list_segs, recent_mask, first_mask, args["reidentify"])
    return seg_tar.reshape(1, C, h, w), return_feat_tar, mask_neighborhood


REID_LOST = 0.25
REID_BACKGROUND = 0.5


def reidentify(seg_tar, cos, list_segs, recent_mask, first_mask, margin):
    """Flaneur's `reidentify`: objects whose mass in the newest context frame fell below REID_LOST x their first-frame
    mass are lost; a target patch the propagation gives to the background (share >= REID_BACKGROUND) whose best cosine to a lost object's first-frame patches (label >= 0.5, anywhere)
    beats its best cosine to the recent frames' neighbourhood candidates (the first frame's when it is the only
    context frame) by more than `margin` takes that object's label (one-hot)."""
    C = seg_tar.shape[0]
    first = list_segs[0].reshape(C, -1)
    newest = list_segs[-1].reshape(C, -1)
    lost = [c for c in range(1, C) if first[c].sum() > 0 and newest[c].sum() < REID_LOST * first[c].sum()]
    if not lost:
        return seg_tar
    if cos.shape[0] > 1:
        recent = cos[1:].clone()
        if recent_mask is not None:
            recent[(recent_mask == 0).unsqueeze(0).expand_as(recent)] = float("-inf")
    else:
        recent = cos[:1].clone()
        if first_mask is not None:
            recent[(first_mask == 0).unsqueeze(0).expand_as(recent)] = float("-inf")
    recent_best = recent.amax(dim=(0, 2))  # n_tar
    per_lost = []
    for c in lost:
        patches = first[c] >= 0.5
        per_lost.append(cos[0][:, patches].amax(dim=1) if patches.any() else torch.full_like(recent_best, float("-inf")))
    best, which = torch.stack(per_lost).max(dim=0)
    # Only patches the propagation gives to the background (share >= REID_BACKGROUND).
    fire = (best > recent_best + margin) & (seg_tar[0] >= REID_BACKGROUND)
    out = seg_tar.clone()
    for i, c in enumerate(lost):
        sel = fire & (which == i)
        out[:, sel] = 0
        out[c, sel] = 1
    return out


def norm_mask(mask):
    c = mask.shape[0]
    for cnt in range(c):
        m = mask[cnt]
        if m.max() > 0:
            m = m - m.min()
            m = m / m.max()
            mask[cnt] = m
    return mask


def propagate(feats, first, meta):
    """feats: T x n x dim (float32), first: H x W ids. Returns T x H x W predicted ids."""
    gh, gw, C = meta["gridH"], meta["gridW"], meta["classes"]
    H, W = meta["height"], meta["width"]
    scale = meta["inputHeight"] // gh
    args = meta
    first_seg = to_one_hot(nearest_resize(first, gh, gw), C)
    frame1_feat = torch.from_numpy(feats[0]).T  # dim x hw
    que = []
    out = [first.copy()]
    mask_nb = None
    for t in range(1, feats.shape[0]):
        used_feats = [frame1_feat] + [p[0] for p in que]
        used_segs = [first_seg] + [p[1] for p in que]
        avg, feat_tar, mask_nb = label_propagation(torch.from_numpy(feats[t]), gh, gw, used_feats, used_segs, args, mask_nb)
        if args["context"] > 0:
            if len(que) == args["context"]:
                que.pop(0)
            que.append([feat_tar, avg.clone()])
        up = F.interpolate(avg, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False)[0]
        up = norm_mask(up)
        _, seg = torch.max(up, dim=0)
        seg = seg.numpy().astype(np.uint8)
        out.append(nearest_resize(seg, H, W))
    return np.stack(out)


def db_eval_iou(annotation, segmentation):
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    inters = np.sum(segmentation & annotation)
    union = np.sum(segmentation | annotation)
    return 1.0 if np.isclose(union, 0) else inters / union


def seg2bmap(seg):
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def disk(r):
    y, x = np.mgrid[-r: r + 1, -r: r + 1]
    return (x * x + y * y <= r * r).astype(np.float32)


def dilate(b, r):
    k = torch.from_numpy(disk(r))[None, None]
    x = torch.from_numpy(b.astype(np.float32))[None, None]
    return (F.conv2d(x, k, padding=r)[0, 0] > 0.5).numpy()


def f_measure(fg, gt, bound_th=0.008):
    bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * np.linalg.norm(fg.shape))
    fb = seg2bmap(fg)
    gb = seg2bmap(gt)
    fd = dilate(fb, bound_pix)
    gd = dilate(gb, bound_pix)
    n_fg = np.sum(fb)
    n_gt = np.sum(gb)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fb & gd) / float(n_fg)
        recall = np.sum(gb & fd) / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score(pred, truth, objects):
    """DAVIS semi-supervised: frames 1 .. T-2, per object mean over frames, then mean over objects."""
    per = []
    for o in range(1, objects + 1):
        js, fs = [], []
        for t in range(1, pred.shape[0] - 1):
            p = pred[t] == o
            g = truth[t] == o
            js.append(db_eval_iou(g, p))
            fs.append(f_measure(p, g))
        J, Fm = float(np.mean(js)), float(np.mean(fs))
        per.append({"object": o, "J": J, "F": Fm, "JF": (J + Fm) / 2, "frames": len(js)})
    J = float(np.mean([p["J"] for p in per]))
    Fm = float(np.mean([p["F"] for p in per]))
    return {"J": J, "F": Fm, "JF": (J + Fm) / 2, "objects": per}


def main():
    mode, d = sys.argv[1], sys.argv[2]
    meta = json.load(open(os.path.join(d, "meta.json")))
    H, W = meta["height"], meta["width"]
    if mode == "fmeasure":
        pairs = np.frombuffer(gzip.open(os.path.join(d, "pairs.u8.gz")).read(), dtype=np.uint8).reshape(-1, 2, H, W)
        out = [f_measure(p[0] > 0, p[1] > 0) for p in pairs]
        json.dump({"F": out}, open(os.path.join(d, "fmeasure.json"), "w"))
        return
    T, n, dim = meta["frames"], meta["gridH"] * meta["gridW"], meta["dim"]
    feats = np.fromfile(os.path.join(d, "features.f32"), dtype=np.float32).reshape(T, n, dim)
    truth = np.frombuffer(gzip.open(os.path.join(d, "masks.u8.gz")).read(), dtype=np.uint8).reshape(T, H, W)
    pred = propagate(feats, truth[0], meta)
    with gzip.open(os.path.join(d, "reference-masks.u8.gz"), "wb") as f:
        f.write(pred.astype(np.uint8).tobytes())
    json.dump(score(pred, truth, meta["classes"] - 1), open(os.path.join(d, "reference.json"), "w"))


if __name__ == "__main__":
    main()
