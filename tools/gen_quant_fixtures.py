#!/usr/bin/env python3
"""gen_quant_fixtures.py - writes the fixtures of tests/test_quant.c (eff_quant.h).

Run from the repository root:

    pip install gguf numpy bitsandbytes torch
    python3 tools/gen_quant_fixtures.py --ggml-lib /path/to/libggml-base.so

Outputs tests/fixtures/quant/*.efq (small; committed). The C tests never need
Python. Oracles:
  * gguf-py (PyPI `gguf`): gguf.quants.quantize for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 and
    dequantize for every format, GGUFWriter/GGUFReader for the GGUF fixtures.
  * ggml's C reference quantizers (quantize_row_*_ref in libggml-base.so) for the
    formats gguf-py cannot encode (Q8_1 Q4_K Q6_K Q8_K). libggml-base.so comes
    from any ggml/llama.cpp source tree, e.g.
        pip download llama-cpp-python --no-deps --no-binary :all:
        tar xzf llama_cpp_python-*.tar.gz && cd llama_cpp_python-*/vendor/llama.cpp/ggml
        touch ggml.pc.in && cmake -B build -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=ON && make -C build ggml-base
    (GGML_NATIVE=OFF: the x86-64 baseline build has no FMA, as upstream's reference).
  * bitsandbytes (CPU) for NF4/FP4 codes and absmax, and LLM.int8's int8_vectorwise_quant.

Other modes:
    python3 tools/gen_quant_fixtures.py --verify-gguf FILE.gguf
        reads a GGUF file written by eff (test_quant writes build/tests/eff_written.gguf)
        with gguf-py's GGUFReader and checks it against the expected contents.

Container format (.efq), little-endian:
    8 bytes "EFFQFIX1", u32 count, then count entries of
    u32 name_len, name bytes, u32 kind (0 f32, 1 u8, 2 i32, 3 f64, 4 i8, 5 i64),
    u64 n_elements, data.
"""
import argparse
import ctypes
import os
import struct
import sys
import warnings

import numpy as np

KIND = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.int32): 2,
        np.dtype(np.float64): 3, np.dtype(np.int8): 4, np.dtype(np.int64): 5}

OUT = "tests/fixtures/quant"


def write_efq(path, entries):
    with open(path, "wb") as f:
        f.write(b"EFFQFIX1")
        f.write(struct.pack("<I", len(entries)))
        for name, arr in entries:
            arr = np.ascontiguousarray(arr)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<IQ", KIND[arr.dtype], arr.size))
            f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    print(f"  wrote {path} ({os.path.getsize(path)} bytes)")


# ---------------------------------------------------------------------------
# ggml block formats
# ---------------------------------------------------------------------------
BLOCK = {"q8_0": (32, 34), "q8_1": (32, 36), "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22),
         "q5_1": (32, 24), "q4_k": (256, 144), "q6_k": (256, 210), "q8_k": (256, 292)}
GGUF_NAME = {"q8_0": "Q8_0", "q8_1": "Q8_1", "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0",
             "q5_1": "Q5_1", "q4_k": "Q4_K", "q6_k": "Q6_K", "q8_k": "Q8_K"}
GGML_REF = {"q8_0": "q8_0", "q8_1": "q8_1", "q4_0": "q4_0", "q4_1": "q4_1", "q5_0": "q5_0",
            "q5_1": "q5_1", "q4_k": "q4_K", "q6_k": "q6_K", "q8_k": "q8_K"}


def fma_sensitive_blocks(rng, offset, qmax, count):
    """Blocks whose Q4_0 (offset 8.5, qmax 15) or Q5_0 (16.5, 31) code changes when
    x*id + offset is computed with one rounding (FMA) instead of two: they catch a
    quantizer compiled with floating-point contraction."""
    found = []
    div = -8.0 if qmax == 15 else -16.0
    while len(found) < count:
        x = rng.standard_normal((1 << 16, 32)).astype(np.float32)
        idx = np.argmax(np.abs(x), axis=1)
        mx = x[np.arange(x.shape[0]), idx]
        d = (mx / np.float32(div)).astype(np.float32)
        idv = (np.float32(1.0) / d).astype(np.float32)
        two = np.trunc((x * idv[:, None]).astype(np.float32) + np.float32(offset))
        fused = np.trunc((x.astype(np.float64) * idv[:, None].astype(np.float64) + offset).astype(np.float32))
        bad = np.nonzero(np.any(np.minimum(two, qmax) != np.minimum(fused, qmax), axis=1))[0]
        for b in bad[: count - len(found)]:
            found.append(x[b])
    return np.concatenate(found)


def ggml_inputs(fmt, rng):
    qk = BLOCK[fmt][0]
    parts = []
    if qk == 32:
        parts.append(rng.standard_normal(16 * 32))                       # ordinary weights
        parts.append(rng.uniform(-1e-3, 1e-3, 4 * 32))                  # small scale
        parts.append(rng.standard_normal(2 * 32) * 1e4)                 # large scale
        parts.append(np.zeros(32))                                      # all zero -> d = 0
        parts.append(np.full(32, 3.0))                                  # constant
        parts.append(np.full(32, -2.5))
        ties = np.arange(-16, 16) + 0.5                                 # exact .5 cases after scaling
        ties[0] = 127.0 if fmt in ("q8_0", "q8_1") else -8.0            # d = 1 for Q8 / Q4_0
        parts.append(ties)
        parts.append(np.abs(rng.standard_normal(32)) + 0.1)            # positive only (Q4_1 min > 0)
        parts.append(-np.abs(rng.standard_normal(32)) - 0.1)           # negative only
        o = rng.standard_normal(32); o[7] = 1000.0; parts.append(o)     # one outlier
        parts.append(rng.standard_normal(32) * 1e-30)                   # fp16 scale underflows
        parts.append(rng.standard_normal(32) * 1e5)                     # fp16 scale near overflow
        if fmt == "q4_0":
            parts.append(fma_sensitive_blocks(rng, 8.5, 15, 3))
        if fmt == "q5_0":
            parts.append(fma_sensitive_blocks(rng, 16.5, 31, 3))
    else:
        parts.append(rng.standard_normal(2 * 256))
        parts.append(rng.uniform(-1e-3, 1e-3, 256))
        parts.append(rng.standard_normal(256) * 300.0)
        parts.append(np.zeros(256))
        z = rng.standard_normal(256); z[32:64] = 0.0; z[160:176] = 0.0; parts.append(z)   # zero sub-blocks
        parts.append(np.abs(rng.standard_normal(256)) + 0.5)            # positive only
        o = rng.standard_normal(256); o[100] = -50.0; o[3] = 20.0; parts.append(o)
        parts.append((np.arange(256) % 17 - 8) * 0.25)                  # grid with ties
    return np.concatenate(parts).astype(np.float32)


def ggml_lib_quant(lib, fmt, x):
    qk, bs = BLOCK[fmt]
    out = (ctypes.c_uint8 * (len(x) // qk * bs))()
    fn = getattr(lib, f"quantize_row_{GGML_REF[fmt]}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x.ctypes.data, ctypes.addressof(out), len(x))
    return np.frombuffer(bytes(out), dtype=np.uint8).copy()


def ggml_lib_dequant(lib, fmt, q, n):
    name = {"q8_1": None}.get(fmt, GGML_REF[fmt])
    if name is None:
        return None
    y = np.zeros(n, dtype=np.float32)
    fn = getattr(lib, f"dequantize_row_{name}")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(q.ctypes.data, y.ctypes.data, n)
    return y


def gen_ggml(args):
    import gguf
    import gguf.quants as gq
    lib = ctypes.CDLL(args.ggml_lib) if args.ggml_lib else None
    rng = np.random.default_rng(20240801)
    for fmt in BLOCK:
        x = ggml_inputs(fmt, rng)
        qt = getattr(gguf.GGMLQuantizationType, GGUF_NAME[fmt])
        q_py = None
        try:
            q_py = gq.quantize(x.reshape(1, -1), qt).reshape(-1).view(np.uint8)
        except NotImplementedError:
            pass
        q_c = ggml_lib_quant(lib, fmt, x) if lib else None
        if q_py is not None and q_c is not None and not np.array_equal(q_py, q_c):
            sys.exit(f"{fmt}: gguf-py and ggml's C reference disagree; refusing to write a fixture")
        q = q_py if q_py is not None else q_c
        if q is None:
            print(f"  {fmt}: skipped (needs --ggml-lib: gguf-py cannot quantize it)")
            continue
        dq = ggml_lib_dequant(lib, fmt, q, len(x)) if lib else None
        try:
            dq_py = gq.dequantize(q.reshape(1, -1), qt).reshape(-1).astype(np.float32)
            if dq is None:
                dq = dq_py
            elif not np.array_equal(dq, dq_py):
                print(f"  note {fmt}: gguf-py dequantize differs from ggml C in {np.sum(dq != dq_py)} values (using C)")
        except NotImplementedError:
            pass
        src = "gguf-py" if q_py is not None else "ggml C ref"
        print(f"  {fmt}: {len(x)} values, quantized by {src}{', cross-checked with ggml C' if q_py is not None and q_c is not None else ''}")
        entries = [("x", x), ("q", q)]
        if dq is not None:
            entries.append(("dq", dq))
        write_efq(os.path.join(OUT, f"ggml_{fmt}.efq"), entries)


# ---------------------------------------------------------------------------
# bitsandbytes NF4 / FP4 / dynamic 8-bit map
# ---------------------------------------------------------------------------
def hash_input(n, seed):
    """Test data the C test regenerates exactly: 24-bit integer hash / 2^24 - 0.5,
    times a power of two per 64 elements (all float32 operations exact)."""
    i = np.arange(n, dtype=np.uint64)
    u = ((i * np.uint64(2654435761) + np.uint64(seed)) & np.uint64(0xFFFFFFFF)) >> np.uint64(8)
    v = u.astype(np.float64) / 16777216.0 - 0.5
    scale = 2.0 ** ((i // 64) % 7).astype(np.float64) / 4.0
    return (v * scale).astype(np.float32)


def fp4_cuda_index(v):
    """bitsandbytes' CUDA dQuantizeFP4 on scaled values (float32 comparisons)."""
    v = np.asarray(v, dtype=np.float32)
    sign = np.where(v < 0, 8, 0)
    x = np.abs(v)
    f = np.float32
    q = np.where(x > f(0.29166667),
                 np.where(x > f(0.583333), np.where(x > f(0.8333333), 3, 2), np.where(x > f(0.4166667), 5, 4)),
                 np.where(x > f(0.0859375), np.where(x > f(0.20833333), 7, 6), np.where(x > f(0.00260417), 1, 0)))
    return (q + sign).astype(np.uint8)


def blockwise_scale(torch, A, blocksize):
    """bitsandbytes' reference-backend scaling: x * (1/absmax) for full blocks,
    x / absmax for a short last block (absmax clamped to 1e-38 there)."""
    A_flat = A.reshape(-1).float()
    n = A_flat.numel()
    rem = n % blocksize
    full = n - rem
    blocks = full // blocksize
    A_com = A_flat[:full].reshape(blocks, blocksize)
    absmax = A_com.abs().max(dim=-1)[0]
    scaled = torch.clamp(A_com * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = A_flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(A_flat[full:] / am, -1, 1)])
    return scaled, absmax


def dyn8_reference(torch, A, code, blocksize):
    """bitsandbytes' quantize_blockwise, reference (default) backend rule:
    nearest code by torch.bucketize on float32 midpoints (ties to the lower code)."""
    scaled, absmax = blockwise_scale(torch, A, blocksize)
    bounds = (code[:-1] + code[1:]) / 2
    return torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8), absmax


def pack_nibbles(q):
    q = np.asarray(q, dtype=np.uint8)
    if q.size % 2:
        q = np.concatenate([q, np.zeros(1, np.uint8)])
    return ((q[0::2] << 4) | q[1::2]).astype(np.uint8)


def gen_bnb(args):
    import torch
    import bitsandbytes.functional as F
    torch.manual_seed(0)
    rng = np.random.default_rng(77)
    nf4 = F.get_4bit_type("nf4", device="cpu").float()
    dyn = F.create_dynamic_map(signed=True).float()
    # the FP4 values bitsandbytes' CPU dequantizer uses: dequantize the 16 codes with absmax 1
    all16 = torch.tensor([0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF], dtype=torch.uint8)
    fp4 = torch.ops.bitsandbytes.dequantize_4bit(all16, torch.ones(1), 64, "fp4", [16], torch.float32).float()
    entries = [("nf4_code", nf4.numpy()), ("fp4_code", fp4.numpy()), ("dyn8_code", dyn.numpy())]

    # A: NF4, blocksize 64, Gaussian with outliers, a zero block, exact code values, midpoint neighbours
    x = rng.standard_normal(2048).astype(np.float32)
    x[100] = 9.0
    x[256:320] = 0.0
    x[320:336] = nf4.numpy()                         # code values times absmax 1
    x[336:384] = rng.uniform(-1, 1, 48)
    x[336] = 1.0
    q, st = F.quantize_4bit(torch.from_numpy(x), blocksize=64, quant_type="nf4")
    dq = F.dequantize_4bit(q, st).reshape(-1)
    entries += [("a_x", x), ("a_codes", q.numpy().reshape(-1)), ("a_absmax", st.absmax.numpy()), ("a_dq", dq.numpy())]
    # numpy re-implementation agrees with bitsandbytes
    sc, am = blockwise_scale(torch, torch.from_numpy(x), 64)
    mine = pack_nibbles(torch.bucketize(sc, (nf4[:-1] + nf4[1:]) / 2).numpy())
    assert np.array_equal(mine, q.numpy().reshape(-1)), "NF4 rule re-implementation disagrees with bitsandbytes"

    # B: NF4, odd length, short last block (blocksize 128, n = 1001)
    xb = (rng.standard_normal(1001) * 0.05).astype(np.float32)
    q, st = F.quantize_4bit(torch.from_numpy(xb), blocksize=128, quant_type="nf4")
    dq = F.dequantize_4bit(q, st).reshape(-1)
    entries += [("b_x", xb), ("b_codes", q.numpy().reshape(-1)), ("b_absmax", st.absmax.numpy()), ("b_dq", dq.numpy())]

    # C: FP4, blocksize 64: bitsandbytes' CUDA rule (its CPU reference backend rounds the
    # FP4 table to 4 decimals); values from the CPU dequantizer
    xc = rng.standard_normal(1024).astype(np.float32) * 3
    xc[64:128] = np.linspace(-1, 1, 64)
    sc, am = blockwise_scale(torch, torch.from_numpy(xc), 64)
    qc = pack_nibbles(fp4_cuda_index(sc.numpy()))
    st = F.QuantState(absmax=am, shape=torch.Size([1024]), dtype=torch.float32, blocksize=64, code=fp4,
                      quant_type="fp4")
    dq = F.dequantize_4bit(torch.from_numpy(qc).unsqueeze(1), st).reshape(-1)
    entries += [("c_x", xc), ("c_codes", qc), ("c_absmax", am.numpy()), ("c_dq", dq.numpy())]

    # D: NF4 + double quantization on hash data (not stored: the test regenerates it)
    n = 64 * 600
    xd = torch.from_numpy(hash_input(n, 12345))
    q, st = F.quantize_4bit(xd, blocksize=64, quant_type="nf4", compress_statistics=False)
    absmax = st.absmax
    offset = absmax.mean()
    centered = absmax - offset
    qabs, absmax2 = dyn8_reference(torch, centered, dyn, 256)
    q_native, _ = F.quantize_blockwise(centered, blocksize=256)   # bitsandbytes' CPU library (BinSearch)
    print(f"  double quant: bitsandbytes' CPU 8-bit quantizer differs from its reference rule in "
          f"{int((q_native.reshape(-1) != qabs.reshape(-1)).sum())} of {qabs.numel()} codes (we follow the reference rule)")
    entries += [("d_codes", q.numpy().reshape(-1)), ("d_absmax", absmax.numpy()), ("d_offset", offset.reshape(1).numpy()),
                ("d_centered", centered.numpy()), ("d_qabsmax", qabs.numpy().reshape(-1)), ("d_absmax2", absmax2.numpy())]
    # dequantized absmax and weights, as bitsandbytes computes them
    dabs = (dyn[qabs.long()].reshape(-1, 1)[:600].reshape(-1) *
            torch.repeat_interleave(absmax2, 256)[:600]) + offset
    dq = (nf4[torch.stack([q.reshape(-1) >> 4, q.reshape(-1) & 15], 1).reshape(-1).long()] *
          torch.repeat_interleave(dabs, 64))
    entries += [("d_dabsmax", dabs.numpy()), ("d_dq_sum", np.array([dq.double().sum().item()]))]
    write_efq(os.path.join(OUT, "bnb_4bit.efq"), entries)


# ---------------------------------------------------------------------------
# affine / symmetric int8 / int4 and QAT (PyTorch), LLM.int8 (bitsandbytes)
# ---------------------------------------------------------------------------
# (bits, unsigned, symmetric, granularity 0 tensor / 1 channel / 2 group, group_size)
INT_CONFIGS = [(8, 0, 0, 0, 0), (8, 0, 1, 1, 0), (8, 1, 0, 2, 16), (8, 1, 1, 0, 0),
               (4, 0, 1, 2, 32), (4, 1, 0, 1, 0), (4, 0, 0, 2, 16), (4, 1, 1, 2, 32)]


def torch_qparams(torch, xg, bits, unsigned, symmetric):
    """PyTorch's PerChannelMinMaxObserver over the rows of xg (one row per group)."""
    from torch.ao.quantization.observer import PerChannelMinMaxObserver
    dtype = torch.quint8 if unsigned else torch.qint8
    kw = {}
    if bits == 4:
        kw = dict(quant_min=0, quant_max=15) if unsigned else dict(quant_min=-8, quant_max=7)
    qs = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    ob = PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=qs, **kw)
    ob(xg)
    sc, zp = ob.calculate_qparams()
    qmin, qmax = (ob.quant_min, ob.quant_max)
    return sc.float(), zp.int(), qmin, qmax


def gen_affine(args):
    import torch
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated")
    rng = np.random.default_rng(5)
    rows, cols = 6, 64
    x = np.clip(rng.standard_normal((rows, cols)) * 10, -60, 60).astype(np.float32)
    x[0, :] = (np.arange(cols) % 16 - 8) * 0.5 + 0.25          # exact .5 ties after scaling by 1/0.5
    x[0, 0], x[0, 1] = -64.0, 63.5                               # per-row and per-tensor range -> S = 0.5
    x[3, :16] = 0.0                                              # an all-zero group
    x[4, :] = np.abs(x[4, :]) + 1.0                              # positive only: range widened to 0
    entries = [("x", x.reshape(-1))]
    xt = torch.from_numpy(x)
    for ci, (bits, unsigned, sym, gran, gs) in enumerate(INT_CONFIGS):
        gsz = rows * cols if gran == 0 else cols if gran == 1 else gs
        xg = xt.reshape(-1, gsz)
        sc, zp, qmin, qmax = torch_qparams(torch, xg, bits, unsigned, sym)
        y = torch.fake_quantize_per_channel_affine(xg, sc, zp, 0, qmin, qmax)
        if bits == 8:
            qt = torch.quantize_per_channel(xg, sc.double(), zp.long(), 0, torch.quint8 if unsigned else torch.qint8)
            ints = qt.int_repr().int().reshape(-1)
            assert torch.equal(qt.dequantize(), y), "quantize_per_channel disagrees with fake_quantize"
        else:
            ints = (torch.round(y / sc.reshape(-1, 1)) + zp.reshape(-1, 1)).int().reshape(-1)
        entries += [(f"c{ci}_scale", sc.numpy()), (f"c{ci}_zero", zp.numpy().astype(np.int32)),
                    (f"c{ci}_q", ints.numpy().astype(np.int32)), (f"c{ci}_dq", y.reshape(-1).numpy())]
    # QAT: qparams from half the range so that some values fall outside the clamp
    for ci, (bits, unsigned, sym, gran, gs) in enumerate([(8, 0, 0, 0, 0), (4, 0, 1, 1, 0), (4, 1, 0, 2, 16)]):
        gsz = rows * cols if gran == 0 else cols if gran == 1 else gs
        xg = xt.reshape(-1, gsz).clone()
        sc, zp, qmin, qmax = torch_qparams(torch, xg * 0.5, bits, unsigned, sym)
        xr = xg.clone().requires_grad_(True)
        y = torch.fake_quantize_per_channel_affine(xr, sc, zp, 0, qmin, qmax)
        dy = torch.from_numpy(rng.standard_normal(y.shape).astype(np.float32))
        y.backward(dy)
        entries += [(f"qat{ci}_scale", sc.numpy()), (f"qat{ci}_zero", zp.numpy().astype(np.int32)),
                    (f"qat{ci}_y", y.detach().reshape(-1).numpy()), (f"qat{ci}_dy", dy.reshape(-1).numpy()),
                    (f"qat{ci}_dx", xr.grad.reshape(-1).numpy())]
    write_efq(os.path.join(OUT, "affine.efq"), entries)


def gen_llm_int8(args):
    import torch
    import bitsandbytes  # noqa: F401  (registers torch.ops.bitsandbytes)
    rng = np.random.default_rng(8)
    M, K, N = 5, 64, 7
    X = (rng.standard_normal((M, K)) * 1.5).astype(np.float32)
    X[2, 3] = 7.5          # outlier column 3
    X[0, 10] = -6.0        # |x| == threshold counts (>=)
    X[4, 20] = 5.99        # just below: not an outlier
    X[1, 40] = 12.0
    W = (rng.standard_normal((N, K)) * 0.1).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    Xt, Wt, bt = torch.from_numpy(X.copy()), torch.from_numpy(W), torch.from_numpy(bias)
    CA, SCA, cols = torch.ops.bitsandbytes.int8_vectorwise_quant.default(Xt.clone(), 6.0)
    CB, SCB, _ = torch.ops.bitsandbytes.int8_vectorwise_quant.default(Wt.clone(), 0.0)
    out, _ = torch.ops.bitsandbytes.int8_mixed_scaled_mm.default(Xt, CA, CB, SCA, SCB, cols, bt)
    CA0, SCA0, _ = torch.ops.bitsandbytes.int8_vectorwise_quant.default(Xt.clone(), 0.0)
    out0 = torch.ops.bitsandbytes.int8_scaled_mm.default(CA0, CB, SCA0, SCB, bias=bt, dtype=torch.float32)
    mask = np.zeros(K, np.uint8)
    mask[cols.numpy()] = 1
    print(f"  LLM.int8: outlier columns {cols.tolist()}")
    write_efq(os.path.join(OUT, "llm_int8.efq"), [
        ("X", X.reshape(-1)), ("W", W.reshape(-1)), ("bias", bias), ("xq", CA.numpy().reshape(-1)),
        ("row_stats", SCA.numpy()), ("outlier_cols", mask), ("wq", CB.numpy().reshape(-1)), ("scb", SCB.numpy()),
        ("out", out.float().numpy().reshape(-1)), ("xq0", CA0.numpy().reshape(-1)), ("out0", out0.float().numpy().reshape(-1))])


# ---------------------------------------------------------------------------
# GGUF: a file written by gguf-py for eff's reader, and a check of eff's writer
# ---------------------------------------------------------------------------
# The metadata test_quant.c expects (and writes itself for --verify-gguf).
def gguf_expected_kv(gguf):
    T = gguf.GGUFValueType
    return [
        ("eff.u8", 200, T.UINT8), ("eff.i8", -100, T.INT8), ("eff.u16", 60000, T.UINT16), ("eff.i16", -30000, T.INT16),
        ("eff.u32", 4000000000, T.UINT32), ("eff.i32", -2000000000, T.INT32), ("eff.f32", 3.25, T.FLOAT32),
        ("eff.bool", True, T.BOOL), ("eff.str", "h\u00e9llo w\u00f6rld", T.STRING), ("eff.u64", (1 << 40) + 7, T.UINT64),
        ("eff.i64", -(1 << 40), T.INT64), ("eff.f64", -1.0e300, T.FLOAT64),
        ("eff.arr_u8", [1, 2, 3], (T.ARRAY, T.UINT8)), ("eff.arr_i32", [-1, 0, 1], (T.ARRAY, T.INT32)),
        ("eff.arr_f32", [0.5, -2.0], (T.ARRAY, T.FLOAT32)), ("eff.arr_bool", [True, False, True], (T.ARRAY, T.BOOL)),
        ("eff.arr_str", ["a", "", "ccc"], (T.ARRAY, T.STRING)), ("eff.arr_u64", [1, 1 << 63], (T.ARRAY, T.UINT64)),
        ("eff.arr_f64", [0.25], (T.ARRAY, T.FLOAT64)),   # gguf-py refuses empty arrays
    ]


def gguf_tensors():
    """(name, ggml type name, numpy shape, raw bytes) of the fixture tensors."""
    import gguf.quants as gq
    import gguf
    rng = np.random.default_rng(3)
    t = []
    f = rng.standard_normal((3, 5)).astype(np.float32)
    t.append(("tok.weight", "F32", (3, 5), f.tobytes()))
    t.append(("norm.f16", "F16", (7,), rng.standard_normal(7).astype(np.float16).tobytes()))
    t.append(("ids.i32", "I32", (4,), np.array([1, -2, 3, -4], np.int32).tobytes()))
    w = rng.standard_normal((2, 64)).astype(np.float32)
    t.append(("blk.0.q8", "Q8_0", (2, 64), gq.quantize(w, gguf.GGMLQuantizationType.Q8_0).tobytes()))
    t.append(("blk.0.q4", "Q4_0", (1, 32), gq.quantize(w[:1, :32], gguf.GGMLQuantizationType.Q4_0).tobytes()))
    d = read_efq(os.path.join(OUT, "ggml_q6_k.efq"))["q"][:210]          # one Q6_K block from ggml's quantizer
    t.append(("blk.0.q6k", "Q6_K", (1, 256), d.tobytes()))
    t.append(("empty", "F32", (0, 4), b""))
    return t


def read_efq(path):
    out = {}
    kinds = [np.float32, np.uint8, np.int32, np.float64, np.int8, np.int64]
    with open(path, "rb") as f:
        assert f.read(8) == b"EFFQFIX1"
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            (ln,) = struct.unpack("<I", f.read(4))
            name = f.read(ln).decode()
            kind, n = struct.unpack("<IQ", f.read(12))
            dt = np.dtype(kinds[kind])
            out[name] = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)
    return out


def gen_gguf(args):
    import gguf
    path = os.path.join(OUT, "gguf_pywriter.gguf")
    w = gguf.GGUFWriter(path, "eff-test")
    w.add_custom_alignment(64)
    for key, val, vt in gguf_expected_kv(gguf):
        if isinstance(vt, tuple):
            w.add_key_value(key, val, vt[0], sub_type=vt[1])
        else:
            w.add_key_value(key, val, vt)
    entries = []
    for name, tname, shape, raw in gguf_tensors():
        qt = getattr(gguf.GGMLQuantizationType, tname)
        arr = np.frombuffer(raw, dtype=np.uint8)
        # raw uint8 data: gguf-py wants the byte shape (rows, bytes per row) and derives ne from it
        blck, tsize = gguf.GGML_QUANT_SIZES[qt]
        w.add_tensor(name, arr, raw_shape=tuple(shape[:-1]) + (shape[-1] // blck * tsize,), raw_dtype=qt)
        entries.append((f"t_{name}", arr.copy() if arr.size else np.zeros(0, np.uint8)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"  wrote {path} ({os.path.getsize(path)} bytes)")
    write_efq(os.path.join(OUT, "gguf_tensors.efq"), entries)


def verify_gguf(path):
    """Reads a file written by eff (test_quant writes build/tests/eff_written.gguf: the
    fixture's metadata and tensors plus eff.writer = "eff") with gguf-py and checks it."""
    import gguf
    r = gguf.GGUFReader(path)
    ok = True

    def check(cond, what):
        nonlocal ok
        print(("  ok   " if cond else "  FAIL ") + what)
        ok &= bool(cond)
    fields = r.fields
    check(r.alignment == 64, f"alignment {r.alignment} == 64")
    check(fields["general.architecture"].contents() == "eff-test", "general.architecture")
    check(fields["eff.writer"].contents() == "eff", "eff.writer")
    for key, val, vt in gguf_expected_kv(gguf):
        got = fields[key].contents() if key in fields else None
        if isinstance(val, float):
            good = got is not None and np.float32(got) == np.float32(val) if vt == gguf.GGUFValueType.FLOAT32 else got == val
        elif isinstance(val, list) and val and isinstance(val[0], float):
            good = got is not None and list(np.float32(got)) == list(np.float32(val))
        else:
            good = got == val
        check(good, f"{key} = {val!r} (read {got!r})")
    tensors = {t.name: t for t in r.tensors}
    for name, tname, shape, raw in gguf_tensors():
        t = tensors.get(name)
        good = (t is not None and t.tensor_type.name == tname and bytes(np.asarray(t.data).tobytes()) == raw and
                [int(x) for x in t.shape] == list(reversed(shape)))
        check(good, f"tensor {name} {tname} {shape}: type, shape and bytes")
    print("verify-gguf:", "all checks passed" if ok else "FAILED")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# pruning, distillation, SVD (PyTorch / numpy)
# ---------------------------------------------------------------------------
def gen_compress(args):
    import torch
    import torch.nn.functional as F
    import torch.nn.utils.prune as prune
    rng = np.random.default_rng(11)
    e = []
    # magnitude pruning, tie-free data (torch's topk breaks ties arbitrarily)
    w1 = rng.permutation(np.arange(1, 201)).astype(np.float32) * np.where(rng.random(200) < 0.5, -1, 1).astype(np.float32) / 50
    w2 = rng.permutation(np.arange(201, 321)).astype(np.float32) / 50
    l1 = torch.nn.Linear(20, 10, bias=False); l1.weight.data = torch.from_numpy(w1.reshape(10, 20))
    prune.l1_unstructured(l1, "weight", amount=0.3)
    e += [("p_w1", w1), ("p_mask1", l1.weight_mask.numpy().reshape(-1).astype(np.uint8))]
    a = torch.nn.Linear(20, 10, bias=False); a.weight.data = torch.from_numpy(w1.reshape(10, 20))
    b = torch.nn.Linear(12, 10, bias=False); b.weight.data = torch.from_numpy(w2.reshape(10, 12))
    prune.global_unstructured([(a, "weight"), (b, "weight")], pruning_method=prune.L1Unstructured, amount=0.5)
    e += [("p_w2", w2), ("p_gmask1", a.weight_mask.numpy().reshape(-1).astype(np.uint8)),
          ("p_gmask2", b.weight_mask.numpy().reshape(-1).astype(np.uint8))]
    # distillation: Hinton KL (batchmean * T^2), reverse KL, cosine embedding loss
    N, V, T = 4, 10, 2.0
    s = torch.from_numpy((rng.standard_normal((N, V)) * 3).astype(np.float32)).requires_grad_(True)
    t = torch.from_numpy((rng.standard_normal((N, V)) * 3).astype(np.float32))
    loss = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T * T
    loss.backward()
    e += [("kd_s", s.detach().numpy().reshape(-1)), ("kd_t", t.numpy().reshape(-1)), ("kd_loss", np.array([loss.item()])),
          ("kd_grad", s.grad.numpy().reshape(-1).copy())]
    s.grad = None
    lq, lp = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    rloss = (lq.exp() * (lq - lp)).sum() / N * T * T
    rloss.backward()
    e += [("kd_rloss", np.array([rloss.item()])), ("kd_rgrad", s.grad.numpy().reshape(-1).copy())]
    hs = torch.from_numpy(rng.standard_normal((5, 8)).astype(np.float32)).requires_grad_(True)
    ht = torch.from_numpy(rng.standard_normal((5, 8)).astype(np.float32))
    closs = F.cosine_embedding_loss(hs, ht, torch.ones(5))
    closs.backward()
    e += [("cos_hs", hs.detach().numpy().reshape(-1)), ("cos_ht", ht.numpy().reshape(-1)), ("cos_loss", np.array([closs.item()])),
          ("cos_grad", hs.grad.numpy().reshape(-1))]
    # SVD: singular values from numpy (float64 LAPACK) of a tall and a wide matrix
    A = rng.standard_normal((20, 12)).astype(np.float32)
    Bw = rng.standard_normal((9, 17)).astype(np.float32)
    e += [("svd_a", A.reshape(-1)), ("svd_sa", np.linalg.svd(A.astype(np.float64), compute_uv=False)),
          ("svd_b", Bw.reshape(-1)), ("svd_sb", np.linalg.svd(Bw.astype(np.float64), compute_uv=False))]
    write_efq(os.path.join(OUT, "compress.efq"), e)


# ---------------------------------------------------------------------------
def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ggml-lib", help="path of libggml-base.so (ggml's C reference quantizers)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--only", help="comma-separated sections: ggml,bnb,affine,llm_int8,gguf,compress")
    ap.add_argument("--verify-gguf", help="check a GGUF file written by eff's writer with gguf-py")
    args = ap.parse_args()
    OUT = args.out
    if args.verify_gguf:
        return verify_gguf(args.verify_gguf)
    os.makedirs(OUT, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    sections = [("ggml", gen_ggml), ("bnb", gen_bnb), ("affine", gen_affine), ("llm_int8", gen_llm_int8), ("gguf", gen_gguf), ("compress", gen_compress)]
    for name, fn in sections:
        if only is None or name in only:
            print(f"[{name}]")
            fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
