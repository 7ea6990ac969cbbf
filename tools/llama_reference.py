"""Golden last-token features of a tiny random Llama-architecture decoder (tests/fixtures/text/llama_tiny/).

Written from the Llama architecture as Hugging Face transformers' LlamaModel runs it (RMSNorm in float32 with the
weight applied after, rotary embeddings with rotate_half on the two halves of each head, grouped-query attention
with each key/value head shared by consecutive query heads, SwiGLU feed-forward, a final RMSNorm) and ShareLock's
feature (sharelock/models/language_encoder.py: `last_hidden_state[:, -1]`, left padding, no chat template).
Positions are 0..T-1 for every row of a batch, padding included, as LlamaModel.forward does without position_ids.

Writes: model.safetensors (HF names), config.json, golden.json (token id sequences, features one by one and as
one left-padded batch). Rerun: /usr/bin/python3 tools/llama_reference.py
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "text", "llama_tiny")

CONFIG = {
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def make_weights(g):
    c = CONFIG
    D, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = D // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    r = lambda *s, std=0.15: torch.randn(*s, generator=g) * std  # noqa: E731
    w = {"model.embed_tokens.weight": r(V, D, std=0.5)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + r(D, std=0.2)
        w[p + "self_attn.q_proj.weight"] = r(D, D)
        w[p + "self_attn.k_proj.weight"] = r(kv, D)
        w[p + "self_attn.v_proj.weight"] = r(kv, D)
        w[p + "self_attn.o_proj.weight"] = r(D, D)
        w[p + "post_attention_layernorm.weight"] = 1 + r(D, std=0.2)
        w[p + "mlp.gate_proj.weight"] = r(F, D)
        w[p + "mlp.up_proj.weight"] = r(F, D)
        w[p + "mlp.down_proj.weight"] = r(D, F)
    w["model.norm.weight"] = 1 + r(D, std=0.2)
    w["lm_head.weight"] = r(V, D)
    return w


def rms_norm(x, weight, eps):
    x32 = x.float()
    var = x32.pow(2).mean(-1, keepdim=True)
    return weight * (x32 * torch.rsqrt(var + eps)).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(w, ids, mask):
    """ids, mask: [B, T] (mask 1 = token, 0 = left padding). Returns the final-norm hidden states [B, T, D]."""
    c = CONFIG
    B, T = ids.shape
    D = c["hidden_size"]
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    hd = D // H
    eps = c["rms_norm_eps"]
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    pos = torch.arange(T).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    min_value = torch.finfo(torch.float32).min
    causal = torch.triu(torch.full((T, T), min_value), diagonal=1)
    bias = causal[None, None].expand(B, 1, T, T).clone()
    bias = bias.masked_fill(mask[:, None, None, :] == 0, min_value)
    h = w["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = H // KV
        k = k[:, :, None].expand(B, KV, rep, T, hd).reshape(B, H, T, hd)
        v = v[:, :, None].expand(B, KV, rep, T, hd).reshape(B, H, T, hd)
        scores = q @ k.transpose(2, 3) / math.sqrt(hd) + bias
        attn = torch.softmax(scores.float(), dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(B, T, D)
        h = h + o @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = x @ w[p + "mlp.gate_proj.weight"].T
        up = x @ w[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    return rms_norm(h, w["model.norm.weight"], eps)


def main():
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(29)
    w = make_weights(g)
    c = CONFIG
    lengths = [1, 2, 5, 9, 16]
    seqs = []
    for n in lengths:
        body = torch.randint(3, c["vocab_size"], (n,), generator=g).tolist()
        seqs.append([c["bos_token_id"]] + body)
    single = []
    for s in seqs:
        ids = torch.tensor([s])
        single.append(forward(w, ids, torch.ones_like(ids))[0, -1].tolist())
    # One batch, left-padded with EOS as ShareLock's tokenizer does (pad_token = eos_token, padding_side left).
    T = max(len(s) for s in seqs)
    ids = torch.tensor([[c["eos_token_id"]] * (T - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (T - len(s)) + [1] * len(s) for s in seqs])
    batch = forward(w, ids, mask)[:, -1].tolist()
    os.makedirs(OUT, exist_ok=True)
    safetensors_io.save(os.path.join(OUT, "model.safetensors"), w)
    hf = dict(c, architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", max_position_embeddings=64)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(hf, f, indent=1)
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"sequences": seqs, "single": single, "padded_batch": batch}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
