"""Dora's discovery and tracking (native/models/dora.ts), in float64 like Flaneur's host code."""
import numpy as np


def _norm_rows(x):
    return (x / np.sqrt(np.maximum((x * x).sum(-1, keepdims=True), 1e-24))).astype(np.float32).astype(np.float64)


def sinkhorn(scores, epsilon, iterations):
    n, k = scores.shape
    q = np.exp((scores - scores.max()) / epsilon)
    q = q / q.sum()
    for _ in range(iterations):
        s = q.sum(0, keepdims=True)
        q = q / np.where(s * k == 0, 1, s * k)
        s = q.sum(1, keepdims=True)
        q = q / np.where(s * n == 0, 1, s * n)
    return (q * n).astype(np.float32).astype(np.float64)


def discover(q, attention, heads, epsilon, iterations):
    """Prototypes [k, d] from a clip's first frame: q [n, d] patch queries, attention [H, n] CLS attention."""
    q = q.astype(np.float64)
    proto = (attention[heads].astype(np.float64) @ q).astype(np.float32).astype(np.float64)
    x = _norm_rows(q)
    logits = (x @ _norm_rows(proto).T).astype(np.float32).astype(np.float64)
    m = sinkhorn(logits, epsilon, iterations)
    return (m.T @ x).astype(np.float32).astype(np.float64)


def track_masks(protos, keys):
    """Masks [k, n] (1 = the object): softmax over patches of P' K^T / sqrt(d), L2-normalised, above its mean."""
    d = keys.shape[1]
    s = protos @ keys.astype(np.float64).T / np.sqrt(d)
    e = np.exp(s - s.max(1, keepdims=True))
    e = e / e.sum(1, keepdims=True)
    e = e / np.sqrt((e * e).sum(1, keepdims=True))
    return (e > e.mean(1, keepdims=True)).astype(np.uint8)
