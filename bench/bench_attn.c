/* bench_attn.c - flash attention speed and memory, beside PyTorch's CPU SDPA when available.

   Tables:
     1. flash forward / backward, d = 64, causal and full, T = 1k..8k (B*H shrinks as T grows),
        GFLOP/s by flash-attn's count (fwd 4 B H T^2 d, halved when causal; bwd = 2.5 fwd),
        peak bytes allocated during the call, and torch.nn.functional.scaled_dot_product_attention
        on the same shapes and thread count (tools/bench_torch_sdpa.py) when python3 has torch
     2. naive (the T x T matrix, eff_sgemm) vs flash, causal, B = 1, H = 12, with peak bytes;
        the float64 reference at small T
     3. sliding window (w = 256) vs dense causal
     4. decode over a KV cache of 1k..32k tokens: f32 vs int8 cache, tokens/s per layer
   Absolute times drift on shared machines; compare the columns of one run.
   EFF_BENCH_QUICK=1 runs smaller sizes; EFF_BENCH_NO_TORCH=1 skips the PyTorch column. */
#define _POSIX_C_SOURCE 200809L
#define EFF_IMPLEMENTATION
#include "eff_attn.h"
#include "bench_util.h"

static float *rnd(int64_t n, uint64_t seed) {
    float *p = (float *)malloc((size_t)n * sizeof(float));
    eff_rng r;
    eff_rng_seed(&r, seed);
    eff_rng_fill_uniform(&r, p, n, -1.0f, 1.0f);
    return p;
}

/* PyTorch timings: lines "sdpa fwd|bwd causal|full T BH d seconds" */
typedef struct { int bwd, causal; long T, BH; double sec; } torch_row;
static torch_row g_torch[64];
static int g_ntorch;
static char g_torch_ver[128];

static void run_torch(int threads, const long *T, const long *BH, int n) {
    char cmd[1024], line[256];
    FILE *p;
    int i;
    size_t len;
    if (getenv("EFF_BENCH_NO_TORCH")) { snprintf(g_torch_ver, sizeof g_torch_ver, "skipped (EFF_BENCH_NO_TORCH)"); return; }
    if (system("python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        snprintf(g_torch_ver, sizeof g_torch_ver, "not available (python3 cannot import torch)");
        return;
    }
    len = (size_t)snprintf(cmd, sizeof cmd, "python3 tools/bench_torch_sdpa.py --bwd --threads %d --reps 5", threads);
    for (i = 0; i < n && len < sizeof cmd - 32; i++) len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %ld:%ld", T[i], BH[i]);
    p = popen(cmd, "r");
    if (!p) { snprintf(g_torch_ver, sizeof g_torch_ver, "could not run tools/bench_torch_sdpa.py"); return; }
    while (fgets(line, sizeof line, p)) {
        char dir[8], mode[8];
        long t, bh, d;
        double s;
        if (strncmp(line, "sdpa torch", 10) == 0) { line[strcspn(line, "\n")] = 0; snprintf(g_torch_ver, sizeof g_torch_ver, "%.100s", line + 5); continue; }
        if (g_ntorch < 64 && sscanf(line, "sdpa %7s %7s %ld %ld %ld %lf", dir, mode, &t, &bh, &d, &s) == 6) {
            g_torch[g_ntorch].bwd = strcmp(dir, "bwd") == 0; g_torch[g_ntorch].causal = strcmp(mode, "causal") == 0;
            g_torch[g_ntorch].T = t; g_torch[g_ntorch].BH = bh; g_torch[g_ntorch].sec = s; g_ntorch++;
        }
    }
    pclose(p);
    if (!g_torch_ver[0]) snprintf(g_torch_ver, sizeof g_torch_ver, "script printed nothing");
}
static double torch_sec(int bwd, int causal, long T, long BH) {
    int i;
    for (i = 0; i < g_ntorch; i++)
        if (g_torch[i].bwd == bwd && g_torch[i].causal == causal && g_torch[i].T == T && g_torch[i].BH == BH) return g_torch[i].sec;
    return 0.0;
}

typedef struct { double sec; size_t peak; } meas;

/* best of reps; peak bytes of the context during the call */
static meas time_flash(eff_ctx *ctx, int bwd, int64_t B, int64_t H, int64_t T, int64_t d, const eff_attn_opts *op, int reps,
                       int naive) {
    int64_t n = B * H * T * d, r;
    float *q = rnd(n, 1), *k = rnd(n, 2), *v = rnd(n, 3), *o = rnd(n, 4), *l = rnd(B * H * T, 5), *g = rnd(n, 6);
    float *dq = rnd(n, 7), *dk = rnd(n, 8), *dv = rnd(n, 9);
    eff_tensor Q = eff_tensor_4d(q, EFF_F32, B, H, T, d), K = eff_tensor_4d(k, EFF_F32, B, H, T, d);
    eff_tensor V = eff_tensor_4d(v, EFF_F32, B, H, T, d), O = eff_tensor_4d(o, EFF_F32, B, H, T, d);
    eff_tensor L = eff_tensor_3d(l, EFF_F32, B, H, T), G = eff_tensor_4d(g, EFF_F32, B, H, T, d);
    eff_tensor dQ = eff_tensor_4d(dq, EFF_F32, B, H, T, d), dK = eff_tensor_4d(dk, EFF_F32, B, H, T, d);
    eff_tensor dV = eff_tensor_4d(dv, EFF_F32, B, H, T, d);
    meas m;
    size_t base = eff_ctx_bytes_in_use(ctx);
    m.sec = 1e30; m.peak = 0;
    if (bwd) eff_attn_flash_forward(ctx, &O, &L, &Q, &K, &V, op);
    for (r = 0; r < reps; r++) {
        double t0, t;
        eff_status s;
        eff_ctx_reset_peak(ctx);
        t0 = bench_now();
        if (naive == 2) s = eff_attn_ref_forward(ctx, &O, &L, &Q, &K, &V, op);
        else if (naive) s = eff_attn_naive_forward(ctx, &O, &L, &Q, &K, &V, op);
        else if (bwd) s = eff_attn_flash_backward(ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &O, &L, op);
        else s = eff_attn_flash_forward(ctx, &O, &L, &Q, &K, &V, op);
        t = bench_now() - t0;
        if (s != EFF_OK) { printf("error: %s\n", eff_ctx_last_error(ctx)); exit(1); }
        if (t < m.sec) m.sec = t;
        if (eff_ctx_bytes_peak(ctx) - base > m.peak) m.peak = eff_ctx_bytes_peak(ctx) - base;
    }
    free(q); free(k); free(v); free(o); free(l); free(g); free(dq); free(dk); free(dv);
    return m;
}

static void mb(char *buf, size_t n, size_t bytes) {
    if (bytes >= 1 << 20) snprintf(buf, n, "%.1f MiB", (double)bytes / (1 << 20));
    else snprintf(buf, n, "%.0f KiB", (double)bytes / 1024);
}

int main(void) {
    eff_ctx *ctx;
    char b1[32], b2[32];
    int quick = getenv("EFF_BENCH_QUICK") != NULL, nt, i, causal, bwd;
    const long Ts[4] = {1024, 2048, 4096, 8192}, BHs[4] = {16, 8, 4, 2};
    const int nT = quick ? 2 : 4;
    const int64_t d = 64;
    eff_attn_opts op;
    if (eff_ctx_create(NULL, &ctx)) return 1;
    nt = eff_ctx_n_threads(ctx);
    bench_print_machine("bench_attn: flash attention speed and memory, beside PyTorch CPU SDPA", nt);
    run_torch(nt, Ts, BHs, nT);
    printf("PyTorch SDPA: %s\n", g_torch_ver);

    /* 1. flash vs PyTorch */
    for (bwd = 0; bwd < 2; bwd++) {
        printf("\n%s, d = %lld, f32, best of 5 (GFLOP/s: fwd 4 B H T^2 d, /2 causal%s)\n", bwd ? "flash backward" : "flash forward",
               (long long)d, bwd ? "; bwd 2.5 x fwd" : "");
        printf("  %6s %4s %-7s %10s %9s %12s %10s %9s %8s\n", "T", "B*H", "mask", "eff ms", "GFLOP/s", "eff peak", "torch ms", "GFLOP/s",
               "speedup");
        for (i = 0; i < nT; i++)
            for (causal = 1; causal >= 0; causal--) {
                double fl = 4.0 * (double)BHs[i] * (double)Ts[i] * (double)Ts[i] * (double)d / (causal ? 2 : 1) * (bwd ? 2.5 : 1.0);
                double ts = torch_sec(bwd, causal, Ts[i], BHs[i]);
                meas m;
                memset(&op, 0, sizeof op); op.causal = causal;
                m = time_flash(ctx, bwd, 1, BHs[i], Ts[i], d, &op, 5, 0);
                mb(b1, sizeof b1, m.peak);
                if (ts > 0)
                    printf("  %6ld %4ld %-7s %10.2f %9.1f %12s %10.2f %9.1f %7.2fx\n", Ts[i], BHs[i], causal ? "causal" : "full",
                           1e3 * m.sec, fl / m.sec * 1e-9, b1, 1e3 * ts, fl / ts * 1e-9, ts / m.sec);
                else
                    printf("  %6ld %4ld %-7s %10.2f %9.1f %12s %10s %9s %8s\n", Ts[i], BHs[i], causal ? "causal" : "full", 1e3 * m.sec,
                           fl / m.sec * 1e-9, b1, "-", "-", "-");
            }
    }

    /* 2. naive vs flash, B = 1, H = 12 */
    printf("\nnaive (T x T scores, eff_sgemm) vs flash, causal forward, B = 1, H = 12, d = 64\n");
    printf("  %6s %10s %9s %12s %10s %9s %12s %8s %8s\n", "T", "naive ms", "GFLOP/s", "naive peak", "flash ms", "GFLOP/s", "flash peak",
           "speedup", "memory");
    for (i = 0; i < (quick ? 2 : 4); i++) {
        const long T = 512L << i;
        double fl = 4.0 * 12 * (double)T * (double)T * (double)d / 2;
        meas mn, mf;
        memset(&op, 0, sizeof op); op.causal = 1;
        mn = time_flash(ctx, 0, 1, 12, T, d, &op, 2, 1);
        mf = time_flash(ctx, 0, 1, 12, T, d, &op, 3, 0);
        mb(b1, sizeof b1, mn.peak); mb(b2, sizeof b2, mf.peak);
        printf("  %6ld %10.2f %9.1f %12s %10.2f %9.1f %12s %7.2fx %7.2f%%\n", T, 1e3 * mn.sec, fl / mn.sec * 1e-9, b1, 1e3 * mf.sec,
               fl / mf.sec * 1e-9, b2, mn.sec / mf.sec, 100.0 * (double)mf.peak / (double)mn.peak);
    }
    {
        meas mr;
        memset(&op, 0, sizeof op); op.causal = 1;
        mr = time_flash(ctx, 0, 1, 1, 512, d, &op, 1, 2);
        printf("  float64 reference, T = 512, 1 head: %.1f ms (%.2f GFLOP/s)\n", 1e3 * mr.sec,
               4.0 * 512 * 512 * (double)d / 2 / mr.sec * 1e-9);
    }

    /* 3. sliding window vs dense causal */
    printf("\nsliding window (Mistral: causal, 256 keys) vs dense causal, forward, H = 12, d = 64\n");
    printf("  %6s %12s %12s %8s\n", "T", "dense ms", "window ms", "speedup");
    for (i = 0; i < (quick ? 1 : 2); i++) {
        const long T = 4096L << i;
        meas md, mw;
        memset(&op, 0, sizeof op); op.causal = 1;
        md = time_flash(ctx, 0, 1, 12, T, d, &op, 2, 0);
        op.window = 1; op.window_left = 255;
        mw = time_flash(ctx, 0, 1, 12, T, d, &op, 3, 0);
        printf("  %6ld %12.2f %12.2f %7.2fx\n", T, 1e3 * md.sec, 1e3 * mw.sec, md.sec / mw.sec);
    }

    /* 4. decode over a KV cache */
    printf("\ndecode: one new token over a cache, 12 query heads, 4 kv heads (GQA), d = 64, one layer\n");
    printf("  %7s %12s %12s %12s %12s %10s\n", "tokens", "f32 us", "f32 tok/s", "int8 us", "int8 tok/s", "f32 GB/s");
    for (i = 0; i < (quick ? 2 : 6); i++) {
        const int64_t n = 1024L << i, Hkv = 4, Hq = 12;
        double us[2];
        int dtc;
        for (dtc = 0; dtc < 2; dtc++) {
            eff_attn_cache c;
            eff_attn_cache_opts co;
            float *kv = rnd(Hkv * 1024 * d, 11), *q = rnd(Hq * d, 12), *o = rnd(Hq * d, 13);
            eff_tensor K = eff_tensor_3d(kv, EFF_F32, Hkv, 1024, d), Q = eff_tensor_4d(q, EFF_F32, 1, Hq, 1, d);
            eff_tensor O = eff_tensor_4d(o, EFF_F32, 1, Hq, 1, d);
            int64_t t, seq = 0;
            int r;
            memset(&co, 0, sizeof co);
            co.n_kv_heads = Hkv; co.head_dim = d; co.max_tokens = n; co.dtype = dtc ? EFF_I8 : EFF_F32;
            if (eff_attn_cache_create(ctx, &c, &co)) { printf("error: %s\n", eff_ctx_last_error(ctx)); return 1; }
            for (t = 0; t < n; t += 1024) eff_attn_cache_append(ctx, &c, 0, 0, &K, &K);
            us[dtc] = 1e30;
            for (r = 0; r < 7; r++) {
                double t0 = bench_now(), e;
                eff_attn_cache_decode(ctx, &O, NULL, &Q, &c, 0, &seq, NULL);
                e = bench_now() - t0;
                if (e < us[dtc]) us[dtc] = e;
            }
            us[dtc] *= 1e6;
            eff_attn_cache_free(ctx, &c);
            free(kv); free(q); free(o);
        }
        printf("  %7lld %12.1f %12.0f %12.1f %12.0f %10.1f\n", (long long)n, us[0], 1e6 / us[0], us[1], 1e6 / us[1],
               2.0 * (double)n * 4 * (double)d * 4 / (us[0] * 1e-6) * 1e-9);
    }
    eff_ctx_destroy(ctx);
    return 0;
}
