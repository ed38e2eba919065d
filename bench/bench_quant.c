/* bench_quant.c - GEMV y = W x (one token of decode) per weight format, against the
   machine's read bandwidth measured in the same run.

   Decode is memory bound: each call streams all of W once, so the figure of merit
   is weight bytes / time compared with what a plain streaming read achieves. The
   working set cycles through several copies of W totalling well over the L3
   (32 MiB here), so every call reads W from DRAM, not from cache. */
#define EFF_IMPLEMENTATION
#include "eff_quant.h"
#include "bench_util.h"

#define WORKING_SET ((int64_t)384 << 20)   /* bytes of weights cycled through: 12x a 32 MiB L3 */

typedef struct {
    const char *name;
    int dtype;          /* weight dtype, run through eff_linear_forward ... */
    int gemv_4bit;      /* ... or (EFF_NF4) eff_quant_4bit_quantize + eff_quant_4bit_gemv */
    int double_quant;   /* eff_quant_4bit only */
} fmt_t;

/* Per-call times: the machine may be shared, so the table shows the median and
   the best call (a preempted OpenMP thread stalls a whole call). */
#define MAX_CALLS 4096
typedef struct { double t[MAX_CALLS]; int n; } timings;
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void timings_sort(timings *tm) { qsort(tm->t, (size_t)tm->n, sizeof(double), cmp_double); }

/* The reference: streaming reads of regions of `bytes` (the size of W), cycled
   through the working set and timed per region exactly like the GEMV calls. */
static void bench_read(eff_ctx *ctx, const float *buf, int64_t bytes, timings *tm) {
    int64_t nf = bytes / 4 / 4096 * 4096, nreg = (WORKING_SET / 4) / nf, c;
    volatile float sink = 0.0f;
    double t0;
    if (nreg < 2) nreg = 2;
    tm->n = 0;
    t0 = bench_now();
    do {
        for (c = 0; c < nreg && tm->n < MAX_CALLS; c++) {
            double t = bench_now();
            sink += bench_read_sum(buf + (c * nf) % (WORKING_SET / 4 - nf + 1), nf, eff_ctx_n_threads(ctx));
            tm->t[tm->n++] = (bench_now() - t) * (double)bytes / (double)(nf * 4);
        }
    } while (bench_now() - t0 < 0.4 && tm->n < MAX_CALLS);
    (void)sink;
}

/* NF4: eff_quant_4bit_gemv over copies of one quantized matrix. */
static void bench_nf4(eff_ctx *ctx, const fmt_t *f, int64_t N, int64_t K, const float *w, const float *x, float *y,
                      int64_t *wbytes, timings *tm) {
    eff_quant_4bit q0, *W;
    eff_quant_4bit_opts o;
    int64_t bytes, ncopies, c;
    double t0;
    memset(&o, 0, sizeof o);
    o.quant_type = EFF_NF4; o.blocksize = 64; o.double_quant = f->double_quant;
    tm->n = 0;
    if (eff_quant_4bit_quantize(ctx, &q0, w, N, K, &o) != EFF_OK) { printf("nf4 failed: %s\n", eff_ctx_last_error(ctx)); return; }
    bytes = eff_quant_4bit_nbytes(&q0);
    ncopies = WORKING_SET / bytes < 2 ? 2 : WORKING_SET / bytes;
    *wbytes = bytes;
    W = (eff_quant_4bit *)eff_ctx_alloc(ctx, (size_t)ncopies * sizeof *W);
    for (c = 0; c < ncopies; c++) {   /* deep copies: every array of every copy is distinct memory */
        W[c] = q0;
        W[c].codes = (uint8_t *)eff_ctx_alloc(ctx, (size_t)(q0.n + 1) / 2);
        memcpy(W[c].codes, q0.codes, (size_t)(q0.n + 1) / 2);
        if (q0.absmax) { W[c].absmax = (float *)eff_ctx_alloc(ctx, (size_t)q0.nblocks * 4); memcpy(W[c].absmax, q0.absmax, (size_t)q0.nblocks * 4); }
        if (q0.qabsmax) {
            W[c].qabsmax = (uint8_t *)eff_ctx_alloc(ctx, (size_t)q0.nblocks); memcpy(W[c].qabsmax, q0.qabsmax, (size_t)q0.nblocks);
            W[c].absmax2 = (float *)eff_ctx_alloc(ctx, (size_t)q0.nblocks2 * 4); memcpy(W[c].absmax2, q0.absmax2, (size_t)q0.nblocks2 * 4);
        }
    }
    for (c = 0; c < ncopies; c++) eff_quant_4bit_gemv(ctx, &W[c], x, y, 1, EFF_QUANT_KERNEL_AUTO);
    t0 = bench_now();
    do {
        for (c = 0; c < ncopies && tm->n < MAX_CALLS; c++) {
            double t = bench_now();
            eff_quant_4bit_gemv(ctx, &W[c], x, y, 1, EFF_QUANT_KERNEL_AUTO);
            tm->t[tm->n++] = bench_now() - t;
        }
    } while (bench_now() - t0 < 0.6 && tm->n < MAX_CALLS);
    for (c = 0; c < ncopies; c++) eff_quant_4bit_free(ctx, &W[c]);
    eff_ctx_free(ctx, W);
    eff_quant_4bit_free(ctx, &q0);
}

/* Times y = W x with W cycling through copies (eff_linear_forward). */
static void bench_gemv(eff_ctx *ctx, const fmt_t *f, int64_t N, int64_t K, const float *w, const float *x, float *y,
                       int64_t *wbytes, timings *tm) {
    int64_t rb = eff_dtype_row_bytes(f->dtype, K), bytes = rb * N, ncopies = WORKING_SET / bytes, c;
    eff_tensor *W, X = eff_tensor_2d((void *)x, EFF_F32, 1, K), Y = eff_tensor_2d(y, EFF_F32, 1, N);
    eff_tensor Wf = eff_tensor_2d((void *)w, EFF_F32, N, K);
    double t0;
    tm->n = 0;
    if (ncopies < 2) ncopies = 2;
    *wbytes = bytes;
    W = (eff_tensor *)eff_ctx_alloc(ctx, (size_t)ncopies * sizeof(eff_tensor));
    for (c = 0; c < ncopies; c++) {   /* quantize once, copy the bytes */
        if (c == 0 && f->dtype != EFF_F32) {
            if (eff_quant_tensor_quantize(ctx, &W[0], &Wf, f->dtype) != EFF_OK) {
                printf("quantize failed: %s\n", eff_ctx_last_error(ctx));
                return;
            }
            continue;
        }
        eff_tensor_alloc(ctx, &W[c], f->dtype, 2, Wf.ne);
        memcpy(W[c].data, c ? W[0].data : w, (size_t)bytes);
    }
    for (c = 0; c < ncopies; c++) eff_linear_forward(ctx, &Y, &X, &W[c], NULL);   /* warm up, page in */
    t0 = bench_now();
    do {
        for (c = 0; c < ncopies && tm->n < MAX_CALLS; c++) {
            double t = bench_now();
            if (eff_linear_forward(ctx, &Y, &X, &W[c], NULL) != EFF_OK) { printf("linear failed: %s\n", eff_ctx_last_error(ctx)); break; }
            tm->t[tm->n++] = bench_now() - t;
        }
    } while (bench_now() - t0 < 0.6 && tm->n < MAX_CALLS);
    for (c = 0; c < ncopies; c++) eff_tensor_free(ctx, &W[c]);
    eff_ctx_free(ctx, W);
}

int main(void) {
    const fmt_t fmts[] = {{"f32", EFF_F32, 0, 0},    {"q8_0", EFF_Q8_0, 0, 0},   {"q4_0", EFF_Q4_0, 0, 0},
                          {"q4_k", EFF_Q4_K, 0, 0},  {"nf4", EFF_NF4, 1, 0},     {"nf4+dq", EFF_NF4, 1, 1},
                          {"nf4 (block dtype)", EFF_NF4, 0, 0}};
    const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}};
    const int nf = (int)(sizeof fmts / sizeof fmts[0]);
    eff_ctx *ctx;
    double bw, cbw;
    int s, f, pass, max_threads;
    timings *tm;
    float *rbuf = NULL;
    if (eff_ctx_create(NULL, &ctx) != EFF_OK) return 1;
    max_threads = eff_ctx_n_threads(ctx);
    tm = (timings *)eff_ctx_alloc(ctx, sizeof *tm);
    if (!tm) return 1;
    eff_quant_register(ctx);
    rbuf = (float *)eff_ctx_alloc(ctx, (size_t)WORKING_SET);   /* read reference: kept for bench_read */
    if (!rbuf) return 1;
    {
        int64_t i;
        for (i = 0; i < WORKING_SET / 4; i++) rbuf[i] = (float)(i & 1023);
    }
    bench_print_machine("bench_quant: GEMV y = W x (M = 1) per weight format", max_threads);
    printf("kernels: %s (eff_quant.h); threads: %d, then 1\n", eff_quant_simd_name(), max_threads);
    for (pass = 0; pass < 2; pass++) {
        int nt = pass == 0 ? max_threads : 1;
        if (pass == 1 && max_threads == 1) break;
        eff_ctx_set_n_threads(ctx, nt);
        bw = bench_read_bw_buf(nt, rbuf, (size_t)WORKING_SET);
        cbw = bench_copy_bw_threads(nt, (size_t)WORKING_SET);
        printf("\n%d thread%s: streaming read of %lld MiB %.1f GB/s; memcpy (read+write) %.1f GB/s (best of 3 after warm-up)\n\n",
               nt, nt > 1 ? "s" : "", (long long)(WORKING_SET >> 20), bw, cbw);
        printf("| W shape       | format            | bits/w | MiB of W | us/call median | GB/s median | GB/s best | read GB/s best | %% of read |\n");
        printf("|---------------|-------------------|--------|----------|----------------|-------------|-----------|----------------|-----------|\n");
        for (s = 0; s < 2; s++) {
            int64_t N = shapes[s][0], K = shapes[s][1];
            float *w = (float *)eff_ctx_alloc(ctx, (size_t)(N * K) * 4), *x = (float *)eff_ctx_alloc(ctx, (size_t)K * 4);
            float *y = (float *)eff_ctx_alloc(ctx, (size_t)N * 4);
            eff_rng_fill_normal(eff_ctx_rng(ctx), w, N * K, 0.0f, 0.02f);
            eff_rng_fill_normal(eff_ctx_rng(ctx), x, K, 0.0f, 1.0f);
            for (f = 0; f < nf; f++) {
                int64_t bytes = 0;
                double med, best, rbest;
                if (fmts[f].gemv_4bit) bench_nf4(ctx, &fmts[f], N, K, w, x, y, &bytes, tm);
                else bench_gemv(ctx, &fmts[f], N, K, w, x, y, &bytes, tm);
                if (tm->n == 0) continue;
                timings_sort(tm);
                med = tm->t[tm->n / 2];
                best = tm->t[0];
                bench_read(ctx, rbuf, bytes, tm);
                timings_sort(tm);
                rbest = tm->t[0];
                printf("| %5lld x %-5lld | %-17s | %6.3f | %8.1f | %14.0f | %11.1f | %9.1f | %14.1f | %8.0f%% |\n", (long long)N,
                       (long long)K, fmts[f].name, 8.0 * (double)bytes / (double)(N * K), (double)bytes / 1048576.0, med * 1e6,
                       (double)bytes / med / 1e9, (double)bytes / best / 1e9, (double)bytes / rbest / 1e9, 100.0 * rbest / best);
                fflush(stdout);
            }
            eff_ctx_free(ctx, w); eff_ctx_free(ctx, x); eff_ctx_free(ctx, y);
        }
    }
    printf("\nEach call streams W from DRAM (copies cycled through %lld MiB, 12x the L3). 'read GB/s best' times plain\n"
           "streaming reads of regions of the same size, cycled and timed per region the same way; %% of read = read\n"
           "best time / GEMV best time. Medians show interference from other processes on a shared machine.\n"
           "nf4, nf4+dq: eff_quant_4bit (bitsandbytes layout, absmax in its own array) via eff_quant_4bit_gemv;\n"
           "nf4 (block dtype): an EFF_NF4 tensor (blocks of 64: f32 absmax + 32 code bytes) via eff_linear_forward.\n",
           (long long)(WORKING_SET >> 20));
    eff_ctx_free(ctx, rbuf);
    eff_ctx_free(ctx, tm);
    eff_ctx_destroy(ctx);
    return 0;
}
