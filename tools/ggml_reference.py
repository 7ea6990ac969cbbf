"""ggml's quantised blocks dequantised from their definitions, for tests/unit/text/llama-quant.test.ts.

Writes tests/fixtures/text/ggml_blocks.gguf (a GGUF v3 file, written here, of one [2, 512] tensor per type with
random blocks: random quants, scales and mins, float16 d / dmin of moderate size) and
tests/fixtures/text/ggml_blocks.safetensors (each tensor dequantised to float32, as ggml's dequantize_row_* define
the blocks in ggml-common.h / ggml-quants.c: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).

Run: /usr/bin/python3 tools/ggml_reference.py
"""
import os
import struct

import numpy as np
import torch

from safetensors_io import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "text")

# ggml type: (number, values per block, bytes per block)
TYPES = {
    "Q4_0": (2, 32, 18),
    "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22),
    "Q5_1": (7, 32, 24),
    "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210),
}
ROWS, COLS = 2, 512

rng = np.random.default_rng(29)


def f16(a):
    return np.asarray(a, dtype=np.float16)


def random_blocks(name, nblocks):
    """Random bytes for every field, then the float16 fields set to finite values of moderate size."""
    _, _, size = TYPES[name]
    b = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)

    def put_f16(at, lo, hi):
        b[:, at : at + 2] = f16(rng.uniform(lo, hi, nblocks)).view(np.uint8).reshape(nblocks, 2)

    if name in ("Q4_0", "Q5_0", "Q8_0"):
        put_f16(0, -0.05, 0.05)
    elif name in ("Q4_1", "Q5_1"):
        put_f16(0, 0.0, 0.05)
        put_f16(2, -1.0, 1.0)
    elif name in ("Q4_K", "Q5_K"):
        put_f16(0, 0.0, 0.01)
        put_f16(2, 0.0, 0.01)
    elif name == "Q6_K":
        put_f16(208, -0.002, 0.002)
    return b


def d16(b, at):
    return b[:, at : at + 2].copy().view(np.float16).astype(np.float32)[:, 0]


def dequant(name, b):
    """block_* of ggml-common.h widened as dequantize_row_* of ggml-quants.c does."""
    n = b.shape[0]
    if name == "Q8_0":
        d = d16(b, 0)
        q = b[:, 2:34].view(np.int8).astype(np.float32)
        return (d[:, None] * q).reshape(-1)
    if name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        d = d16(b, 0)
        at = {"Q4_0": 2, "Q4_1": 4, "Q5_0": 6, "Q5_1": 8}[name]  # where qs starts (Q5: after the uint32 qh)
        qs = b[:, at : at + 16]
        lo = (qs & 0x0F).astype(np.int64)
        hi = (qs >> 4).astype(np.int64)
        if name.startswith("Q5"):
            qh = b[:, at - 4 : at].copy().view(np.uint32)[:, 0].astype(np.int64)
            j = np.arange(16)
            lo = lo | (((qh[:, None] >> j) << 4) & 0x10)
            hi = hi | ((qh[:, None] >> (j + 12)) & 0x10)
        q = np.concatenate([lo, hi], axis=1).astype(np.float32)  # x[j] from the low nibble, x[j + 16] the high
        if name.endswith("_0"):
            return ((q - (8 if name == "Q4_0" else 16)) * d[:, None]).reshape(-1)
        m = d16(b, 2)
        return (q * d[:, None] + m[:, None]).reshape(-1)
    if name in ("Q4_K", "Q5_K"):
        d = d16(b, 0)
        dmin = d16(b, 2)
        sc = b[:, 4:16].astype(np.int64)
        scales = np.zeros((n, 8))
        mins = np.zeros((n, 8))
        for j in range(8):  # get_scale_min_k4
            if j < 4:
                scales[:, j] = sc[:, j] & 63
                mins[:, j] = sc[:, j + 4] & 63
            else:
                scales[:, j] = (sc[:, j + 4] & 0xF) | ((sc[:, j - 4] >> 6) << 4)
                mins[:, j] = (sc[:, j + 4] >> 4) | ((sc[:, j] >> 6) << 4)
        five = name == "Q5_K"
        qh = b[:, 16:48].astype(np.int64) if five else None
        qs = b[:, 48:176] if five else b[:, 16:144]
        out = np.zeros((n, 256), dtype=np.float64)
        for g in range(4):
            ql = qs[:, 32 * g : 32 * g + 32].astype(np.int64)
            lo = ql & 0xF
            hi = ql >> 4
            if five:
                lo = lo + np.where(qh & (1 << (2 * g)), 16, 0)
                hi = hi + np.where(qh & (2 << (2 * g)), 16, 0)
            d1, m1 = d * scales[:, 2 * g], dmin * mins[:, 2 * g]
            d2, m2 = d * scales[:, 2 * g + 1], dmin * mins[:, 2 * g + 1]
            out[:, 64 * g : 64 * g + 32] = d1[:, None] * lo - m1[:, None]
            out[:, 64 * g + 32 : 64 * g + 64] = d2[:, None] * hi - m2[:, None]
        return out.astype(np.float32).reshape(-1)
    if name == "Q6_K":
        d = d16(b, 208)
        scales = b[:, 192:208].view(np.int8).astype(np.float64)
        out = np.zeros((n, 256), dtype=np.float64)
        for half in range(2):
            ql = b[:, 64 * half : 64 * half + 64].astype(np.int64)
            qh = b[:, 128 + 32 * half : 128 + 32 * half + 32].astype(np.int64)
            sc = scales[:, 8 * half : 8 * half + 8]
            for l in range(32):
                is_ = l // 16
                q1 = ((ql[:, l] & 0xF) | (((qh[:, l] >> 0) & 3) << 4)) - 32
                q2 = ((ql[:, l + 32] & 0xF) | (((qh[:, l] >> 2) & 3) << 4)) - 32
                q3 = ((ql[:, l] >> 4) | (((qh[:, l] >> 4) & 3) << 4)) - 32
                q4 = ((ql[:, l + 32] >> 4) | (((qh[:, l] >> 6) & 3) << 4)) - 32
                y = 128 * half
                out[:, y + l] = d * sc[:, is_ + 0] * q1
                out[:, y + l + 32] = d * sc[:, is_ + 2] * q2
                out[:, y + l + 64] = d * sc[:, is_ + 4] * q3
                out[:, y + l + 96] = d * sc[:, is_ + 6] * q4
        return out.astype(np.float32).reshape(-1)
    raise ValueError(name)


def gguf_string(s):
    e = s.encode()
    return struct.pack("<Q", len(e)) + e


def write_gguf(path, tensors):
    """GGUF v3: no metadata, tensor infos (ggml dims fastest first), data aligned to 32 bytes."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 0)
    blobs = b""
    for name, (number, raw) in tensors.items():
        head += gguf_string(name) + struct.pack("<I", 2) + struct.pack("<QQ", COLS, ROWS)
        head += struct.pack("<IQ", number, len(blobs))
        blobs += raw + b"\0" * (-len(raw) % 32)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head + blobs)


def main():
    tensors = {}
    expected = {}
    for name, (number, per, _) in TYPES.items():
        blocks = random_blocks(name, ROWS * COLS // per)
        tensors[name] = (number, blocks.tobytes())
        expected[name] = torch.from_numpy(dequant(name, blocks).reshape(ROWS, COLS).copy())
    write_gguf(os.path.join(OUT, "ggml_blocks.gguf"), tensors)
    save(os.path.join(OUT, "ggml_blocks.safetensors"), expected)
    print("wrote", ", ".join(TYPES))


if __name__ == "__main__":
    main()
