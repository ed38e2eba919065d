#!/usr/bin/env python3
"""Times PyTorch's CPU scaled_dot_product_attention on the shapes bench/bench_attn.c uses,
so both appear in one table (bench_attn runs this script when python3 can import torch).

    python3 tools/bench_torch_sdpa.py [--threads 2] [--reps 3] [--d 64] [--bwd] T:BH [T:BH ...]

Prints one line per shape and mode, best of --reps runs, in seconds:
    sdpa fwd causal T BH d seconds
    sdpa bwd full   T BH d seconds      (with --bwd: the backward pass alone)
Shapes are [1, BH, T, d] fp32, Tq == Tk (so is_causal's top-left diagonal is also bottom-right).
Never needed to build or test eff."""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--bwd", action="store_true")
    ap.add_argument("shapes", nargs="+", help="T:BH pairs")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:  # the C bench checks first; this is for people running it by hand
        print("sdpa unavailable: %s" % e)
        return 1
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print("sdpa torch %s threads %d" % (torch.__version__, torch.get_num_threads()))
    for shape in a.shapes:
        T, BH = (int(x) for x in shape.split(":"))
        for causal in (True, False):
            mode = "causal" if causal else "full"
            q, k, v = (torch.randn(1, BH, T, a.d) for _ in range(3))
            best = float("inf")
            with torch.no_grad():
                for r in range(a.reps + 1):   # the first run warms up
                    t0 = time.perf_counter()
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    if r > 0:
                        best = min(best, time.perf_counter() - t0)
            print("sdpa fwd %s %d %d %d %.6f" % (mode, T, BH, a.d, best))
            if a.bwd:
                q, k, v = (x.clone().requires_grad_(True) for x in (q, k, v))
                best = float("inf")
                for r in range(a.reps + 1):
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    g = torch.ones_like(o)
                    t0 = time.perf_counter()
                    o.backward(g)
                    if r > 0:
                        best = min(best, time.perf_counter() - t0)
                    q.grad = k.grad = v.grad = None
                print("sdpa bwd %s %d %d %d %.6f" % (mode, T, BH, a.d, best))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
