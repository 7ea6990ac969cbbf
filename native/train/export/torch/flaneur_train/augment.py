"""Flaneur's augmentations (native/train/augment.ts, dora-clips.ts) split into draws and their application.

`draw_*` take only the generator and image sizes, in the exact order of Flaneur's trainer, so every rank draws the
whole global batch (cheap) and applies only its own shard (the pixel work). The application reproduces Flaneur's
arithmetic: antialiased bilinear resize to uint8 (rounding half up), float32 storage after every operation.
"""
import math

import numpy as np

DINO_JITTER = dict(p=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)


def js_round(x):
    return math.floor(x + 0.5)


def draw_crop_box(width, height, scale, rng, ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop's box sampling as augment.ts sampleCropBox: (x, y, w, h)."""
    area = width * height
    r0, r1 = ratio
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        r = math.exp(rng.uniform(math.log(r0), math.log(r1)))
        w = js_round(math.sqrt(target * r))
        h = js_round(math.sqrt(target / r))
        if 0 < w <= width and 0 < h <= height:
            return (rng.int(width - w + 1), rng.int(height - h + 1), w, h)
    s = min(width, height)
    return (0, 0, s, s)


def draw_jitter(rng, grayscale_p, o=DINO_JITTER):
    """augment.ts colourJitter's draws: [(op, factor)] in the applied order, and the grayscale decision."""
    ops = []
    if rng.next() < o["p"]:
        for op in rng.shuffle([0, 1, 2, 3]):
            if op == 0:
                ops.append((0, rng.uniform(1 - o["brightness"], 1 + o["brightness"])))
            elif op == 1:
                ops.append((1, rng.uniform(1 - o["contrast"], 1 + o["contrast"])))
            elif op == 2:
                ops.append((2, rng.uniform(1 - o["saturation"], 1 + o["saturation"])))
            else:
                ops.append((3, rng.uniform(-o["hue"], o["hue"]) * 2 * math.pi))
    gray = rng.next() < grayscale_p
    return {"ops": ops, "gray": gray}


def draw_view(width, height, size, scale, grayscale_p, rng):
    """augment.ts augmentInto's draws: crop box, flip, jitter."""
    box = draw_crop_box(width, height, scale, rng)
    flip = rng.next() < 0.5
    return {"box": box, "flip": flip, "size": size, "jitter": draw_jitter(rng, grayscale_p)}


_WEIGHTS = {}


def _weights(in_size, out_size):
    """preprocess.ts weights() for the bilinear filter as a float32 matrix [out, in]."""
    key = (in_size, out_size)
    if key in _WEIGHTS:
        return _WEIGHTS[key]
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    radius = fscale
    m = np.zeros((out_size, in_size), dtype=np.float32)
    for o in range(out_size):
        center = (o + 0.5) * scale
        start = max(0, math.floor(center - radius))
        end = min(in_size, math.ceil(center + radius))
        w = np.zeros(end - start, dtype=np.float32)
        s = 0.0
        for i in range(start, end):
            v = max(0.0, 1 - abs((i + 0.5 - center) / fscale))
            w[i - start] = v
            s += v
        if s != 0:
            w = (w.astype(np.float64) / s).astype(np.float32)
        m[o, start:end] = w
    _WEIGHTS[key] = m
    return m


def resize_rgb(img, width, height):
    """preprocess.ts resizeRgb (bilinear): uint8 [h, w, 3] -> uint8 [height, width, 3]."""
    h0, w0, _ = img.shape
    if w0 == width and h0 == height:
        return img
    wx = _weights(w0, width).astype(np.float64)
    wy = _weights(h0, height).astype(np.float64)
    tmp = np.einsum("xi,yic->yxc", wx, img.astype(np.float64)).astype(np.float32)
    out = np.einsum("yj,jxc->yxc", wy, tmp.astype(np.float64))
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def crop_resize(img, box, size):
    x, y, w, h = box
    return resize_rgb(img[y : y + h, x : x + w], size, size)


def _gray(px):
    p = px.astype(np.float64)
    return 0.299 * p[..., 0] + 0.587 * p[..., 1] + 0.114 * p[..., 2]


def apply_jitter(px, j):
    """px float32 [h, w, 3] in 0..1, changed as augment.ts colourJitter with the drawn parameters."""
    for op, f in j["ops"]:
        p = px.astype(np.float64)
        if op == 0:
            px = np.minimum(1.0, p * f).astype(np.float32)
        elif op == 1:
            mean = _gray(px).mean()
            px = np.clip((p - mean) * f + mean, 0, 1).astype(np.float32)
        elif op == 2:
            g = _gray(px)[..., None]
            px = np.clip((p - g) * f + g, 0, 1).astype(np.float32)
        else:
            c, s = math.cos(f), math.sin(f)
            r, g, b = p[..., 0], p[..., 1], p[..., 2]
            y = 0.299 * r + 0.587 * g + 0.114 * b
            ci = 0.596 * r - 0.274 * g - 0.322 * b
            cq = 0.211 * r - 0.523 * g + 0.312 * b
            i2 = ci * c - cq * s
            q2 = ci * s + cq * c
            px = np.stack(
                [y + 0.956 * i2 + 0.621 * q2, y - 0.272 * i2 - 0.647 * q2, y - 1.106 * i2 + 1.703 * q2], -1
            )
            px = np.clip(px, 0, 1).astype(np.float32)
    if j["gray"]:
        g = _gray(px).astype(np.float32)
        px = np.stack([g, g, g], -1)
    return px


def gaussian_blur(px, sigma):
    """augment.ts gaussianBlur: separable, radius ceil(3 sigma), edges clamped; float32 between the passes."""
    r = max(1, math.ceil(3 * sigma))
    k = np.array([math.exp(-((i - r) ** 2) / (2 * sigma * sigma)) for i in range(2 * r + 1)], dtype=np.float32)
    k = (k.astype(np.float64) / float(k.astype(np.float64).sum())).astype(np.float32).astype(np.float64)
    h, w, _ = px.shape
    xs = np.clip(np.arange(w)[:, None] + np.arange(-r, r + 1)[None, :], 0, w - 1)
    ys = np.clip(np.arange(h)[:, None] + np.arange(-r, r + 1)[None, :], 0, h - 1)
    p = px.astype(np.float64)
    tmp = np.einsum("yxtc,t->yxc", p[:, xs], k).astype(np.float32).astype(np.float64)
    return np.einsum("ytxc,t->yxc", tmp[ys], k).astype(np.float32)


def to_float(v):
    return (v.astype(np.float64) / 255).astype(np.float32)


def normalise(px, mean, std):
    """float32 [h, w, 3] -> normalised CHW float32."""
    m = np.asarray(mean, dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    return ((px.astype(np.float64) - m) / s).astype(np.float32).transpose(2, 0, 1)


def apply_view(img, v, mean, std):
    """augment.ts augmentInto with drawn parameters: one normalised CHW view."""
    out = crop_resize(img, v["box"], v["size"])
    if v["flip"]:
        out = out[:, ::-1]
    return normalise(apply_jitter(to_float(out), v["jitter"]), mean, std)
