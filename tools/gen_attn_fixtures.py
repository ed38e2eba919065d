#!/usr/bin/env python3
"""gen_attn_fixtures.py - writes tests/fixtures/attn/sdpa.safetensors for tests/test_attn.c.

PyTorch's torch.nn.functional.scaled_dot_product_attention (float64, CPU) is the oracle for
the conventions eff_attn.h must share with it: the scale, additive float masks, boolean
masks (True = attend), GQA (enable_gqa: query head h uses kv head h // (Hq / Hkv)), PyTorch's
top-left is_causal and flash-attn's bottom-right diagonal (torch.nn.attention.bias.
causal_lower_right). Each case stores inputs, dO, and torch's O, dQ, dK, dV.

Run from the repository root (the C tests never need Python):
    pip install torch safetensors numpy
    python3 tools/gen_attn_fixtures.py

Tensor names: "<case>.<name>", all float64 except masks (uint8, 1 = attend). Metadata per
case: "<case>.causal" = "none" | "top_left" | "bottom_right", "<case>.scale" (0 = default).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file


def run_case(name, B, Hq, Hkv, Tq, Tk, d, dv, causal, scale=None, bias=False, boolmask=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, Tq, d, generator=g, dtype=torch.float64)
    k = torch.randn(B, Hkv, Tk, d, generator=g, dtype=torch.float64)
    v = torch.randn(B, Hkv, Tk, dv, generator=g, dtype=torch.float64)
    do = torch.randn(B, Hq, Tq, dv, generator=g, dtype=torch.float64)
    out = {}
    mask = None
    if bias:
        mask = torch.randn(B, Hq, Tq, Tk, generator=g, dtype=torch.float64)
        out[name + ".bias"] = mask.numpy().copy()
    if boolmask:
        mask = torch.rand(Tq, Tk, generator=g) > 0.3
        mask[:, 0] = True   # every row sees a key (PyTorch gives NaN for fully masked rows)
        out[name + ".mask"] = mask.numpy().astype(np.uint8)
    if causal == "bottom_right":
        from torch.nn.attention.bias import causal_lower_right
        mask = causal_lower_right(Tq, Tk)
    qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
    kw = {"enable_gqa": Hq != Hkv}
    if scale is not None:
        kw["scale"] = scale
    o = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask, is_causal=(causal == "top_left"), **kw)
    o.backward(do)
    for nm, t in (("q", q), ("k", k), ("v", v), ("do", do), ("o", o.detach()), ("dq", qq.grad), ("dk", kk.grad), ("dv", vv.grad)):
        out[name + "." + nm] = t.numpy().copy()
    meta = {name + ".causal": causal, name + ".scale": repr(0.0 if scale is None else scale)}
    return out, meta


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "fixtures", "attn", "sdpa.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tensors, meta = {}, {}
    cases = [
        dict(name="bottom_right_gqa", B=1, Hq=4, Hkv=2, Tq=5, Tk=9, d=16, dv=16, causal="bottom_right", seed=1),
        dict(name="top_left", B=2, Hq=2, Hkv=2, Tq=6, Tk=10, d=8, dv=12, causal="top_left", seed=2),
        dict(name="bias_scale", B=1, Hq=3, Hkv=3, Tq=7, Tk=7, d=8, dv=8, causal="none", scale=0.3, bias=True, seed=3),
        dict(name="boolmask_gqa", B=1, Hq=6, Hkv=2, Tq=7, Tk=11, d=16, dv=8, causal="none", boolmask=True, seed=4),
    ]
    for c in cases:
        t, m = run_case(**c)
        tensors.update(t)
        meta.update(m)
    meta["torch"] = torch.__version__
    save_file(tensors, path, metadata=meta)
    print("wrote %s (%d bytes, %d tensors, torch %s)" % (path, os.path.getsize(path), len(tensors), torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
