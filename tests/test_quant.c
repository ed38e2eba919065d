/* test_quant.c - tests of eff_quant.h.
   Fixtures (tests/fixtures/quant, .efq files) come from tools/gen_quant_fixtures.py
   (gguf-py, ggml's C reference quantizers, bitsandbytes); this program needs no
   Python. Run from the repository root (or set EFF_FIXTURES to the fixture dir). */

/* The library promises bit-exact quantizers even when the including file is
   compiled with FMA contraction: turn it on for this whole file to prove it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
/* eff_test.h's EFF_CHECK_STATUS prints the context's 512-byte error message into a
   512-byte buffer; with the implementation in this file GCC sees the sizes and
   warns about a possible truncation, which is harmless here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define EFF_IMPLEMENTATION
#include "eff_quant.h"
#include "eff_test.h"

/* ---------------------------------------------------------------------------
   Fixture container (.efq): "EFFQFIX1", u32 count, entries of
   u32 name_len, name, u32 kind, u64 n, data.
   --------------------------------------------------------------------------- */
typedef struct { char name[64]; int kind; int64_t n; void *data; } fx_entry;
typedef struct { fx_entry e[64]; int count; int ok; } fx_file;
static const size_t fx_kind_size[6] = {4, 1, 4, 8, 1, 8};

static void fx_path(char *buf, size_t size, const char *file) {
    const char *dir = getenv("EFF_FIXTURES");
    snprintf(buf, size, "%s/%s", dir ? dir : "tests/fixtures/quant", file);
}

static fx_file fx_load(const char *file) {
    fx_file f;
    char path[512], magic[8];
    uint32_t count, i;
    FILE *fp;
    memset(&f, 0, sizeof f);
    fx_path(path, sizeof path, file);
    fp = fopen(path, "rb");
    if (!fp) { printf("  cannot open fixture %s\n", path); return f; }
    if (fread(magic, 1, 8, fp) != 8 || memcmp(magic, "EFFQFIX1", 8) || fread(&count, 4, 1, fp) != 1 || count > 64) {
        fclose(fp); return f;
    }
    for (i = 0; i < count; i++) {
        uint32_t len, kind;
        uint64_t n;
        fx_entry *e = &f.e[i];
        if (fread(&len, 4, 1, fp) != 1 || len >= sizeof e->name || fread(e->name, 1, len, fp) != len ||
            fread(&kind, 4, 1, fp) != 1 || kind > 5 || fread(&n, 8, 1, fp) != 1 || n > ((uint64_t)1 << 28)) break;
        e->name[len] = 0; e->kind = (int)kind; e->n = (int64_t)n;
        e->data = malloc((size_t)n * fx_kind_size[kind] + 1);
        if (!e->data || fread(e->data, fx_kind_size[kind], (size_t)n, fp) != (size_t)n) break;
        f.count++;
    }
    f.ok = f.count == (int)count;
    fclose(fp);
    return f;
}
static fx_entry *fx_get(fx_file *f, const char *name) {
    int i;
    for (i = 0; i < f->count; i++)
        if (strcmp(f->e[i].name, name) == 0) return &f->e[i];
    return NULL;
}
static void fx_free(fx_file *f) {
    int i;
    for (i = 0; i < f->count; i++) free(f->e[i].data);
    f->count = 0;
}

static int msg_has(eff_ctx *ctx, const char *needle) { return strstr(eff_ctx_last_error(ctx), needle) != NULL; }

/* ---------------------------------------------------------------------------
   1. ggml block formats: byte-exact against gguf-py / ggml's C reference
   --------------------------------------------------------------------------- */
static const struct { const char *name; int dtype; } ggml_formats[] = {
    {"q8_0", EFF_Q8_0}, {"q8_1", EFF_Q8_1}, {"q4_0", EFF_Q4_0}, {"q4_1", EFF_Q4_1}, {"q5_0", EFF_Q5_0},
    {"q5_1", EFF_Q5_1}, {"q4_k", EFF_Q4_K}, {"q6_k", EFF_Q6_K}, {"q8_k", EFF_Q8_K},
};
#define N_GGML_FORMATS 9

static void test_ggml_fixtures(eff_ctx *ctx) {
    int f;
    for (f = 0; f < N_GGML_FORMATS; f++) {
        char file[64];
        fx_file fx;
        fx_entry *x, *q, *dq;
        snprintf(file, sizeof file, "ggml_%s.efq", ggml_formats[f].name);
        fx = fx_load(file);
        x = fx_get(&fx, "x"); q = fx_get(&fx, "q"); dq = fx_get(&fx, "dq");
        EFF_CHECK(fx.ok && x && q, "%s: fixture %s loads", ggml_formats[f].name, file);
        if (fx.ok && x && q) {
            int dt = ggml_formats[f].dtype;
            int64_t n = x->n, rb = eff_dtype_row_bytes(dt, n), i, first = -1, nbad = 0;
            unsigned char *mine = (unsigned char *)calloc((size_t)rb + 1, 1);
            eff_status s = eff_quant_row_quantize(ctx, dt, (const float *)x->data, mine, n);
            EFF_CHECK(s == EFF_OK && rb == q->n, "%s: quantize %lld values (%lld bytes)", ggml_formats[f].name,
                      (long long)n, (long long)rb);
            for (i = 0; i < rb && i < q->n; i++)
                if (mine[i] != ((unsigned char *)q->data)[i]) { if (first < 0) first = i; nbad++; }
            EFF_CHECK(nbad == 0, "%s: quantized bytes identical to the reference (%lld differ, first at byte %lld)",
                      ggml_formats[f].name, (long long)nbad, (long long)first);
            if (dq) {
                float *y = (float *)malloc((size_t)n * sizeof(float));
                s = eff_quant_row_dequantize(ctx, dt, q->data, y, n);
                EFF_CHECK(s == EFF_OK && memcmp(y, dq->data, (size_t)n * 4) == 0, "%s: dequantized floats bit-identical",
                          ggml_formats[f].name);
                free(y);
            }
            free(mine);
        }
        fx_free(&fx);
    }
}

/* The per-format entry points do the same as the generic ones. */
static void test_ggml_named(eff_ctx *ctx) {
    float x[512], y1[512], y2[512];
    unsigned char a[600], b[600];
    int ok = 1, i;
    typedef eff_status (*qfn)(eff_ctx *, const float *, void *, int64_t);
    typedef eff_status (*dfn)(eff_ctx *, const void *, float *, int64_t);
    const struct { int dt; qfn q; dfn d; } fns[] = {
        {EFF_Q8_0, eff_quant_q8_0_quantize, eff_quant_q8_0_dequantize}, {EFF_Q8_1, eff_quant_q8_1_quantize, eff_quant_q8_1_dequantize},
        {EFF_Q4_0, eff_quant_q4_0_quantize, eff_quant_q4_0_dequantize}, {EFF_Q4_1, eff_quant_q4_1_quantize, eff_quant_q4_1_dequantize},
        {EFF_Q5_0, eff_quant_q5_0_quantize, eff_quant_q5_0_dequantize}, {EFF_Q5_1, eff_quant_q5_1_quantize, eff_quant_q5_1_dequantize},
        {EFF_Q4_K, eff_quant_q4_k_quantize, eff_quant_q4_k_dequantize}, {EFF_Q6_K, eff_quant_q6_k_quantize, eff_quant_q6_k_dequantize},
        {EFF_Q8_K, eff_quant_q8_k_quantize, eff_quant_q8_k_dequantize}};
    eff_test_seed(11);
    eff_test_fill(x, 512, 2.0);
    for (i = 0; i < 9; i++) {
        memset(a, 0, sizeof a); memset(b, 0, sizeof b);
        ok &= fns[i].q(ctx, x, a, 512) == EFF_OK && eff_quant_row_quantize(ctx, fns[i].dt, x, b, 512) == EFF_OK &&
              memcmp(a, b, sizeof a) == 0;
        ok &= fns[i].d(ctx, a, y1, 512) == EFF_OK && eff_quant_row_dequantize(ctx, fns[i].dt, a, y2, 512) == EFF_OK &&
              memcmp(y1, y2, sizeof y1) == 0;
    }
    EFF_CHECK(ok, "eff_quant_<fmt>_quantize/_dequantize agree with eff_quant_row_*");
}

/* Round-trip error on Gaussian data: per-format NMSE ceilings (ggml's own
   test-quantize-fns thresholds are in the same range) and, for the round-to-
   nearest formats, the per-element bound |x - dq| <= d/2 (+ the fp16 rounding of d). */
static void test_ggml_roundtrip(eff_ctx *ctx) {
    const struct { int dt; double max_nmse; } lim[] = {
        {EFF_Q8_0, 4e-5}, {EFF_Q8_1, 4e-5}, {EFF_Q4_0, 1.2e-2}, {EFF_Q4_1, 8e-3}, {EFF_Q5_0, 3e-3},
        {EFF_Q5_1, 2e-3}, {EFF_Q4_K, 6e-3}, {EFF_Q6_K, 4e-4}, {EFF_Q8_K, 6e-5}};
    const int64_t n = 256 * 64;
    float *x = (float *)malloc(n * 4), *y = (float *)malloc(n * 4);
    unsigned char *q = (unsigned char *)malloc((size_t)n * 2);
    int f;
    eff_rng r;
    eff_rng_seed(&r, 5);
    eff_rng_fill_normal(&r, x, n, 0.0f, 1.0f);
    for (f = 0; f < 9; f++) {
        int dt = lim[f].dt;
        double nm;
        eff_quant_row_quantize(ctx, dt, x, q, n);
        eff_quant_row_dequantize(ctx, dt, q, y, n);
        nm = eff_test_nmse_ff(y, x, n);
        EFF_CHECK(nm <= lim[f].max_nmse && nm > 0.0, "%s round trip on N(0,1): nmse %.3g <= %.1g", eff_dtype_name(dt), nm,
                  lim[f].max_nmse);
    }
    {   /* Q8_0 elementwise: |x - q*d16| <= d/2 + |q| |d16 - d| */
        int64_t b, j, bad = 0;
        eff_quant_q8_0_quantize(ctx, x, q, n);
        eff_quant_q8_0_dequantize(ctx, q, y, n);
        for (b = 0; b < n / 32; b++) {
            float amax = 0.0f, d, d16;
            for (j = 0; j < 32; j++) amax = fabsf(x[32 * b + j]) > amax ? fabsf(x[32 * b + j]) : amax;
            d = amax / 127.0f;
            d16 = eff_fp16_to_fp32(eff_fp32_to_fp16(d));
            for (j = 0; j < 32; j++) {
                double e = fabs((double)x[32 * b + j] - y[32 * b + j]);
                double bound = 0.5 * d * (1 + 1e-6) + 127.0 * fabs((double)d16 - d) + 1e-12;
                bad += e > bound;
            }
        }
        EFF_CHECK(bad == 0, "q8_0: every |x - dq(q(x))| <= d/2 + fp16 rounding of d (%lld violations)", (long long)bad);
    }
    {   /* Q4_1: nearest rounding of (x - min)/d: |err| <= d/2 + 15|d16-d| + |m16-min| */
        int64_t b, j, bad = 0;
        eff_quant_q4_1_quantize(ctx, x, q, n);
        eff_quant_q4_1_dequantize(ctx, q, y, n);
        for (b = 0; b < n / 32; b++) {
            float mn = x[32 * b], mx = x[32 * b], d, d16, m16;
            for (j = 0; j < 32; j++) { mn = x[32 * b + j] < mn ? x[32 * b + j] : mn; mx = x[32 * b + j] > mx ? x[32 * b + j] : mx; }
            d = (mx - mn) / 15.0f;
            d16 = eff_fp16_to_fp32(eff_fp32_to_fp16(d));
            m16 = eff_fp16_to_fp32(eff_fp32_to_fp16(mn));
            for (j = 0; j < 32; j++) {
                double e = fabs((double)x[32 * b + j] - y[32 * b + j]);
                bad += e > 0.5 * d * (1 + 1e-5) + 15.0 * fabs((double)d16 - d) + fabs((double)m16 - mn) + 1e-6;
            }
        }
        EFF_CHECK(bad == 0, "q4_1: every |x - dq(q(x))| <= d/2 + fp16 rounding (%lld violations)", (long long)bad);
    }
    free(x); free(y); free(q);
}

/* ---------------------------------------------------------------------------
   2. Dot kernels: SIMD vs scalar, and vs dequantize-then-float-dot
   --------------------------------------------------------------------------- */
static void test_vec_dot(eff_ctx *ctx) {
    const int wfmts[] = {EFF_Q8_0, EFF_Q4_0, EFF_Q4_1, EFF_Q5_0, EFF_Q5_1, EFF_Q4_K, EFF_Q6_K, EFF_NF4, EFF_FP4};
    int f, trial;
    for (f = 0; f < 9; f++) {
        int dt = wfmts[f], at = eff_quant_vec_dot_type(dt);
        int64_t n = eff_dtype_blck_size(dt) * (eff_dtype_blck_size(dt) == 256 ? 7 : 37);   /* odd block counts exercise the tails */
        float *w = (float *)malloc(n * 4), *a = (float *)malloc(n * 4), *wd = (float *)malloc(n * 4), *ad = (float *)malloc(n * 4);
        unsigned char *wq = (unsigned char *)malloc((size_t)n * 2), *aq = (unsigned char *)malloc((size_t)n * 4);
        double worst_simd = 0, worst_deq = 0, worst_true = 0;
        for (trial = 0; trial < 8; trial++) {
            float s_simd = 0, s_ref = 0;
            double s_deq = 0, s_true = 0, mag = 0, mag_true = 0;
            int64_t i;
            eff_test_seed(100 + trial);
            eff_test_fill(w, n, trial == 7 ? 1e-3 : 1.0);
            eff_test_fill(a, n, trial == 6 ? 30.0 : 1.0);
            if (trial == 5) for (i = 0; i < n; i++) w[i] = fabsf(w[i]) + 0.25f;   /* min > 0 paths */
            eff_quant_row_quantize(ctx, dt, w, wq, n);
            eff_quant_row_dequantize(ctx, dt, wq, wd, n);
            if (at == EFF_F32) { memcpy(aq, a, (size_t)n * 4); memcpy(ad, a, (size_t)n * 4); }   /* NF4 / FP4 */
            else {
                eff_quant_row_quantize(ctx, at, a, aq, n);
                eff_quant_row_dequantize(ctx, at, aq, ad, n);
            }
            eff_quant_vec_dot(ctx, dt, n, &s_simd, wq, aq, EFF_QUANT_KERNEL_AUTO);
            eff_quant_vec_dot(ctx, dt, n, &s_ref, wq, aq, EFF_QUANT_KERNEL_SCALAR);
            for (i = 0; i < n; i++) {
                s_deq += (double)wd[i] * ad[i]; mag += fabs((double)wd[i] * ad[i]);
                s_true += (double)w[i] * a[i]; mag_true += fabs((double)w[i] * a[i]);
            }
            /* Q8_1's s = fp16(d * sum q) is rounded, so Q4_1/Q5_1 differ from the
               dequantized dot by that rounding: at most 2^-11 |m s| per block. */
            if (fabs(s_simd - (double)s_ref) / mag > worst_simd) worst_simd = fabs(s_simd - (double)s_ref) / mag;
            if (fabs(s_ref - s_deq) / mag > worst_deq) worst_deq = fabs(s_ref - s_deq) / mag;
            if (fabs(s_ref - s_true) / mag_true > worst_true) worst_true = fabs(s_ref - s_true) / mag_true;
        }
        EFF_CHECK(worst_simd <= 1e-6, "%s . %s: %s kernel = scalar kernel (rel. diff %.2g <= 1e-6 of sum|w a|)",
                  eff_dtype_name(dt), eff_dtype_name(at), eff_quant_simd_name(), worst_simd);
        EFF_CHECK(worst_deq <= ((at == EFF_Q8_1) ? 1e-4 : 1e-6), "%s . %s: = dot of dequantized rows (rel. diff %.2g)",
                  eff_dtype_name(dt), eff_dtype_name(at), worst_deq);
        EFF_CHECK(worst_true <= 0.08, "%s . %s: close to the float dot (rel. err %.2g <= 0.08 of sum|w a|)",
                  eff_dtype_name(dt), eff_dtype_name(at), worst_true);
        free(w); free(a); free(wd); free(ad); free(wq); free(aq);
    }
}

/* ---------------------------------------------------------------------------
   3. eff_linear_forward on quantized W (decode path M <= 8 and prefill M > 8)
   --------------------------------------------------------------------------- */
static void test_linear(eff_ctx *ctx) {
    const int fmts[] = {EFF_Q8_0, EFF_Q4_0, EFF_Q4_1, EFF_Q5_0, EFF_Q5_1, EFF_Q4_K, EFF_Q6_K, EFF_NF4, EFF_FP4};
    const int64_t N = 37, K = 512, Ms[] = {1, 3, 17};
    float *w = (float *)malloc(N * K * 4), *wd = (float *)malloc(N * K * 4), *x = (float *)malloc(17 * K * 4);
    float *y = (float *)malloc(17 * N * 4), *yr = (float *)malloc(17 * N * 4), bias[37];
    int f, m;
    eff_tensor W = eff_tensor_2d(w, EFF_F32, N, K), Wq, X, Y, B = eff_tensor_1d(bias, EFF_F32, N);
    eff_test_seed(7);
    eff_test_fill(w, N * K, 0.5);
    eff_test_fill(x, 17 * K, 1.0);
    eff_test_fill(bias, N, 1.0);
    for (f = 0; f < 9; f++) {
        eff_status s = eff_quant_tensor_quantize(ctx, &Wq, &W, fmts[f]);
        EFF_CHECK(s == EFF_OK && Wq.dtype == fmts[f] && Wq.ne[0] == N && Wq.ne[1] == K, "tensor_quantize to %s",
                  eff_dtype_name(fmts[f]));
        if (s) continue;
        eff_quant_row_dequantize(ctx, fmts[f], Wq.data, wd, N * K);
        for (m = 0; m < 3; m++) {
            int64_t M = Ms[m], i, j, k;
            double *ref = (double *)malloc((size_t)(M * N) * sizeof(double)), *ref2 = (double *)malloc((size_t)(M * N) * sizeof(double));
            int at = eff_quant_vec_dot_type(fmts[f]);
            float *xd = (float *)malloc((size_t)(M * K) * 4);
            unsigned char *xq = (unsigned char *)malloc((size_t)(M * K) * 2);
            X = eff_tensor_2d(x, EFF_F32, M, K);
            Y = eff_tensor_2d(y, EFF_F32, M, N);
            s = eff_linear_forward(ctx, &Y, &X, &Wq, &B);
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) {
                    double acc = bias[j];
                    for (k = 0; k < K; k++) acc += (double)x[i * K + k] * wd[j * K + k];
                    ref[i * N + j] = acc;
                }
            /* the decode path quantizes each row of x to the partner format first */
            if (at == EFF_F32) memcpy(xd, x, (size_t)(M * K) * 4);
            else {
                eff_quant_row_quantize(ctx, at, x, xq, M * K);
                eff_quant_row_dequantize(ctx, at, xq, xd, M * K);
            }
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) {
                    double acc = bias[j];
                    for (k = 0; k < K; k++) acc += (double)xd[i * K + k] * wd[j * K + k];
                    ref2[i * N + j] = acc;
                }
            /* decode quantizes x to 8 bits (nmse ~ 1e-5); prefill dequantizes W and runs sgemm */
            {
                double e = eff_test_nmse(y, ref, M * N), tol = M > 8 || at == EFF_F32 ? 1e-10 : 1e-4;
                EFF_CHECK(s == EFF_OK && e <= tol, "linear_forward %s W, M=%lld: nmse %.3g <= %.0g vs dequantized-W float64",
                          eff_dtype_name(fmts[f]), (long long)M, e, tol);
            }
            if (M <= 8) {
                /* Q8_1 keeps s = fp16(d * sum q): the min term sees that rounding */
                double e = eff_test_nmse(y, ref2, M * N), tol = at == EFF_Q8_1 ? 1e-6 : 1e-11;
                EFF_CHECK(e <= tol, "linear_forward %s W, M=%lld: nmse %.3g <= %.0g vs dequantized W and %s-rounded x",
                          eff_dtype_name(fmts[f]), (long long)M, e, tol, eff_dtype_name(at));
            }
            (void)yr;
            free(ref); free(ref2); free(xd); free(xq);
        }
        eff_tensor_free(ctx, &Wq);
    }
    free(w); free(wd); free(x); free(y); free(yr);
}

/* ---------------------------------------------------------------------------
   Argument validation
   --------------------------------------------------------------------------- */
static void test_ggml_errors(eff_ctx *ctx) {
    float x[64] = {0};
    unsigned char q[64];
    float s;
    eff_ctx *bare;
    eff_tensor W, Wq, X, Y;
    float w[64], y[2];
    EFF_CHECK_STATUS(ctx, eff_quant_q4_0_quantize(ctx, x, q, 33), EFF_ERR_SHAPE, "q4_0 n=33");
    EFF_CHECK(msg_has(ctx, "'n'"), "message names 'n': %s", eff_ctx_last_error(ctx));
    EFF_CHECK_STATUS(ctx, eff_quant_q4_0_quantize(ctx, NULL, q, 32), EFF_ERR_INVALID_ARG, "q4_0 x=NULL");
    EFF_CHECK_STATUS(ctx, eff_quant_q4_0_dequantize(ctx, q, NULL, 32), EFF_ERR_INVALID_ARG, "q4_0 dequant x=NULL");
    EFF_CHECK_STATUS(ctx, eff_quant_q4_k_quantize(ctx, x, q, 32), EFF_ERR_SHAPE, "q4_k n=32");
    EFF_CHECK_STATUS(ctx, eff_quant_q8_0_quantize(ctx, x, q, -32), EFF_ERR_INVALID_ARG, "q8_0 n<0");
    EFF_CHECK_STATUS(ctx, eff_quant_q8_0_quantize(ctx, NULL, NULL, 0), EFF_OK, "n=0 is a no-op");
    EFF_CHECK_STATUS(ctx, eff_quant_row_quantize(ctx, EFF_F32, x, q, 32), EFF_ERR_DTYPE, "row_quantize f32");
    EFF_CHECK(msg_has(ctx, "'dtype'"), "message names 'dtype': %s", eff_ctx_last_error(ctx));
    EFF_CHECK_STATUS(ctx, eff_quant_row_quantize(ctx, 999, x, q, 32), EFF_ERR_DTYPE, "row_quantize id 999");
    EFF_CHECK_STATUS(ctx, eff_quant_vec_dot(ctx, EFF_Q8_K, 256, &s, q, q, 0), EFF_ERR_DTYPE, "vec_dot on activation format");
    EFF_CHECK_STATUS(ctx, eff_quant_vec_dot(ctx, EFF_Q8_0, 32, &s, q, q, 7), EFF_ERR_INVALID_ARG, "vec_dot kernel=7");
    EFF_CHECK_STATUS(ctx, eff_quant_vec_dot(ctx, EFF_Q8_0, 32, NULL, q, q, 0), EFF_ERR_INVALID_ARG, "vec_dot s=NULL");
    EFF_CHECK(eff_quant_vec_dot_type(EFF_Q4_1) == EFF_Q8_1 && eff_quant_vec_dot_type(EFF_Q6_K) == EFF_Q8_K &&
              eff_quant_vec_dot_type(EFF_Q5_0) == EFF_Q8_0 && eff_quant_vec_dot_type(EFF_F32) == -1, "vec_dot_type pairing");
    EFF_CHECK(eff_quant_register(NULL) == EFF_ERR_INVALID_ARG, "register(NULL)");
    W = eff_tensor_2d(w, EFF_F32, 2, 32);
    memset(w, 0, sizeof w);
    EFF_CHECK_STATUS(ctx, eff_quant_tensor_quantize(ctx, &Wq, &W, EFF_Q4_K), EFF_ERR_SHAPE, "tensor_quantize 32 cols to q4_k");
    EFF_CHECK_STATUS(ctx, eff_quant_tensor_quantize(ctx, &Wq, NULL, EFF_Q4_0), EFF_ERR_INVALID_ARG, "tensor_quantize in=NULL");
    /* a context without eff_quant_register has no kernels: linear must say so */
    if (eff_ctx_create(NULL, &bare) == EFF_OK) {
        eff_quant_tensor_quantize(bare, &Wq, &W, EFF_Q4_0);
        X = eff_tensor_2d(x, EFF_F32, 1, 32);
        Y = eff_tensor_2d(y, EFF_F32, 1, 2);
        EFF_CHECK_STATUS(bare, eff_linear_forward(bare, &Y, &X, &Wq, NULL), EFF_ERR_DTYPE, "linear on q4_0 without register");
        EFF_CHECK(msg_has(bare, "eff_quant_register"), "message says to call eff_quant_register: %s", eff_ctx_last_error(bare));
        eff_tensor_free(bare, &Wq);
        eff_ctx_destroy(bare);
    }
}


/* ---------------------------------------------------------------------------
   4. NF4 / FP4 / double quantization against bitsandbytes
   --------------------------------------------------------------------------- */
/* tools/gen_quant_fixtures.py hash_input(): exact in float32 on both sides */
static void hash_input(float *x, int64_t n, uint64_t seed) {
    int64_t i;
    for (i = 0; i < n; i++) {
        uint64_t u = (((uint64_t)i * 2654435761ull + seed) & 0xFFFFFFFFull) >> 8;
        double v = (double)u / 16777216.0 - 0.5, scale = ldexp(1.0, (int)((i / 64) % 7)) / 4.0;
        x[i] = (float)(v * scale);
    }
}
static int same_bytes(const void *a, const fx_entry *e, size_t elem) {
    return e && memcmp(a, e->data, (size_t)e->n * elem) == 0;
}

static void check_4bit_case(eff_ctx *ctx, fx_file *fx, const char *tag, int qt, int64_t rows, int64_t cols, int64_t bs) {
    char nx[16], nc[16], na[16], nd[16];
    fx_entry *x, *codes, *absmax, *dq;
    eff_quant_4bit q;
    eff_quant_4bit_opts o;
    snprintf(nx, sizeof nx, "%s_x", tag); snprintf(nc, sizeof nc, "%s_codes", tag);
    snprintf(na, sizeof na, "%s_absmax", tag); snprintf(nd, sizeof nd, "%s_dq", tag);
    x = fx_get(fx, nx); codes = fx_get(fx, nc); absmax = fx_get(fx, na); dq = fx_get(fx, nd);
    if (!x || !codes || !absmax || !dq || x->n != rows * cols) { EFF_CHECK(0, "case %s: fixture arrays present", tag); return; }
    memset(&o, 0, sizeof o);
    o.quant_type = qt; o.blocksize = bs;
    EFF_CHECK(eff_quant_4bit_quantize(ctx, &q, (const float *)x->data, rows, cols, &o) == EFF_OK, "case %s: quantize", tag);
    EFF_CHECK(codes->n == (rows * cols + 1) / 2 && same_bytes(q.codes, codes, 1),
              "case %s (%s, blocksize %lld, n %lld): packed codes identical to bitsandbytes", tag, eff_dtype_name(qt),
              (long long)bs, (long long)(rows * cols));
    EFF_CHECK(absmax->n == q.nblocks && same_bytes(q.absmax, absmax, 4), "case %s: absmax identical (%lld blocks)", tag,
              (long long)q.nblocks);
    {
        float *y = (float *)malloc((size_t)(rows * cols) * 4);
        EFF_CHECK(eff_quant_4bit_dequantize(ctx, &q, y) == EFF_OK && same_bytes(y, dq, 4),
                  "case %s: dequantized values identical to bitsandbytes' dequantize_4bit", tag);
        free(y);
    }
    if (bs == 64 && cols % 64 == 0) {   /* the self-contained block dtype holds the same codes and absmax */
        int64_t nb = rows * cols / 64, b, bad = 0;
        unsigned char *blk = (unsigned char *)malloc((size_t)nb * 36);
        float *y = (float *)malloc((size_t)(rows * cols) * 4);
        EFF_CHECK(eff_quant_row_quantize(ctx, qt, (const float *)x->data, blk, rows * cols) == EFF_OK, "case %s: %s block quantize", tag,
                  eff_dtype_name(qt));
        for (b = 0; b < nb; b++)
            bad += memcmp(blk + b * 36, (const float *)absmax->data + b, 4) != 0 ||
                   memcmp(blk + b * 36 + 4, (const unsigned char *)codes->data + b * 32, 32) != 0;
        EFF_CHECK(bad == 0, "case %s: %s block dtype = bitsandbytes' codes and absmax in all %lld blocks (%lld differ)", tag,
                  eff_dtype_name(qt), (long long)nb, (long long)bad);
        EFF_CHECK(eff_quant_row_dequantize(ctx, qt, blk, y, rows * cols) == EFF_OK && same_bytes(y, dq, 4),
                  "case %s: %s block dequantize identical to bitsandbytes", tag, eff_dtype_name(qt));
        free(blk); free(y);
    }
    eff_quant_4bit_free(ctx, &q);
}

static void test_4bit_fixtures(eff_ctx *ctx) {
    fx_file fx = fx_load("bnb_4bit.efq");
    fx_entry *e;
    EFF_CHECK(fx.ok, "bnb_4bit.efq loads");
    if (!fx.ok) return;
    e = fx_get(&fx, "nf4_code");
    EFF_CHECK(e && e->n == 16 && same_bytes(eff_quant_4bit_code(EFF_NF4), e, 4), "NF4 table = bitsandbytes' (bitwise)");
    e = fx_get(&fx, "fp4_code");
    EFF_CHECK(e && e->n == 16 && same_bytes(eff_quant_4bit_code(EFF_FP4), e, 4), "FP4 table = bitsandbytes' CPU dequantizer");
    e = fx_get(&fx, "dyn8_code");
    EFF_CHECK(e && e->n == 256 && same_bytes(eff_quant_dyn8_code(), e, 4), "dynamic 8-bit map = create_dynamic_map()");
    EFF_CHECK(eff_quant_4bit_code(EFF_Q4_0) == NULL, "no 4-bit table for q4_0");
    check_4bit_case(ctx, &fx, "a", EFF_NF4, 8, 256, 64);
    check_4bit_case(ctx, &fx, "b", EFF_NF4, 1, 1001, 128);
    check_4bit_case(ctx, &fx, "c", EFF_FP4, 16, 64, 64);
    {   /* D: double quantization on regenerated hash data */
        const int64_t n = 64 * 600;
        float *x = (float *)malloc(n * 4), *dabs = (float *)malloc(600 * 4), a2[3];
        uint8_t qa[600];
        eff_quant_4bit q, qd;
        eff_quant_4bit_opts o;
        fx_entry *codes = fx_get(&fx, "d_codes"), *absmax = fx_get(&fx, "d_absmax"), *off = fx_get(&fx, "d_offset");
        fx_entry *cen = fx_get(&fx, "d_centered"), *qabs = fx_get(&fx, "d_qabsmax"), *abs2 = fx_get(&fx, "d_absmax2");
        fx_entry *dab = fx_get(&fx, "d_dabsmax");
        hash_input(x, n, 12345);
        memset(&o, 0, sizeof o);
        eff_quant_4bit_quantize(ctx, &q, x, 600, 64, &o);
        EFF_CHECK(same_bytes(q.codes, codes, 1) && same_bytes(q.absmax, absmax, 4), "case d: NF4 codes and absmax identical");
        o.double_quant = 1;
        EFF_CHECK(eff_quant_4bit_quantize(ctx, &qd, x, 600, 64, &o) == EFF_OK && qd.absmax == NULL && qd.nblocks2 == 3,
                  "case d: double quantization keeps 600 8-bit absmax codes and 3 fp32 scales");
        EFF_CHECK(same_bytes(qd.codes, codes, 1), "case d: double quantization leaves the 4-bit codes unchanged");
        EFF_CHECK(off && fabsf(qd.offset - *(float *)off->data) <= 2e-7f * fabsf(*(float *)off->data),
                  "case d: offset = mean(absmax) within 1 ulp of torch's mean (%.9g vs %.9g)", qd.offset,
                  off ? *(float *)off->data : 0.0f);
        /* the 8-bit rule itself, exactly, on bitsandbytes' centered values */
        EFF_CHECK(eff_quant_dyn8_quantize(ctx, (const float *)cen->data, 600, 256, qa, a2) == EFF_OK &&
                  same_bytes(qa, qabs, 1) && same_bytes(a2, abs2, 4),
                  "dyn8 blockwise codes and absmax identical to bitsandbytes' reference rule");
        {
            int64_t i, bad = 0;
            eff_quant_4bit_absmax(ctx, &qd, dabs);
            for (i = 0; i < 600; i++) bad += fabsf(dabs[i] - ((float *)dab->data)[i]) > 1e-6f * fabsf(((float *)dab->data)[i]);
            EFF_CHECK(bad == 0, "case d: dequantized absmax = bitsandbytes' (code * absmax2 + offset), %lld differ", (long long)bad);
            /* when the offsets agree exactly the whole chain must be bitwise equal */
            if (qd.offset == *(float *)off->data)
                EFF_CHECK(same_bytes(qd.qabsmax, qabs, 1) && same_bytes(dabs, dab, 4), "case d: offsets agree: codes bitwise equal");
        }
        {
            float *y = (float *)malloc(n * 4);
            double sum = 0.0, ref = *(double *)fx_get(&fx, "d_dq_sum")->data;
            int64_t i;
            eff_quant_4bit_dequantize(ctx, &qd, y);
            for (i = 0; i < n; i++) sum += y[i];
            EFF_CHECK(fabs(sum - ref) <= 1e-5 * (fabs(ref) + 1.0), "case d: sum of dequantized weights %.9g = bitsandbytes' %.9g", sum, ref);
            free(y);
        }
        EFF_CHECK(eff_quant_4bit_nbytes(&qd) == n / 2 + 600 + 3 * 4 + 4 && eff_quant_4bit_nbytes(&q) == n / 2 + 600 * 4,
                  "4-bit byte counts (4.127 vs 4.5 bits per weight)");
        eff_quant_4bit_free(ctx, &q);
        eff_quant_4bit_free(ctx, &qd);
        free(x); free(dabs);
    }
    fx_free(&fx);
}

/* Round-trip bounds: |x - dq| <= absmax * (largest half gap of the table) per
   element, and NF4 beats FP4 on Gaussian weights (what NF4 was designed for). */
static void test_4bit_roundtrip(eff_ctx *ctx) {
    const int64_t rows = 64, cols = 512, n = rows * cols;
    float *x = (float *)malloc(n * 4), *y = (float *)malloc(n * 4), *am = (float *)malloc(n / 32 * 4);
    double nm[2][2];
    int t, dq;
    eff_rng r;
    eff_rng_seed(&r, 99);
    eff_rng_fill_normal(&r, x, n, 0.0f, 0.02f);
    for (t = 0; t < 2; t++)
        for (dq = 0; dq < 2; dq++) {
            eff_quant_4bit q;
            eff_quant_4bit_opts o;
            int qt = t ? EFF_FP4 : EFF_NF4;
            const float *code = eff_quant_4bit_code(qt);
            float gap = 0.0f;
            int64_t i, bad = 0;
            int a, b;
            for (a = 0; a < 16; a++) {   /* largest distance from a point of [-1,1] to the nearest code */
                float best_up = 2.0f;
                for (b = 0; b < 16; b++) if (code[b] > code[a] && code[b] - code[a] < best_up) best_up = code[b] - code[a];
                if (best_up < 2.0f && best_up / 2 > gap) gap = best_up / 2;
            }
            memset(&o, 0, sizeof o);
            o.quant_type = qt; o.blocksize = 32; o.double_quant = dq;
            eff_quant_4bit_quantize(ctx, &q, x, rows, cols, &o);
            eff_quant_4bit_dequantize(ctx, &q, y);
            eff_quant_4bit_absmax(ctx, &q, am);
            for (i = 0; i < n; i++) {
                float amax = 0.0f;
                int64_t j, b0 = i / 32 * 32;
                for (j = b0; j < b0 + 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
                /* with double quant the stored absmax itself moves by its own 8-bit error */
                bad += fabs((double)x[i] - y[i]) > amax * gap * 1.0001 + fabs((double)am[i / 32] - amax) + 1e-9;
            }
            nm[t][dq] = eff_test_nmse_ff(y, x, n);
            EFF_CHECK(bad == 0, "%s%s blocksize 32: |x - dq| <= absmax * %.4f (+ absmax error) everywhere (%lld violations)",
                      eff_dtype_name(qt), dq ? "+DQ" : "", gap, (long long)bad);
            eff_quant_4bit_free(ctx, &q);
        }
    EFF_CHECK(nm[0][0] < nm[1][0] && nm[0][0] < 0.012, "NF4 nmse %.4g < FP4 nmse %.4g on N(0, 0.02^2) weights", nm[0][0], nm[1][0]);
    EFF_CHECK(nm[0][1] < nm[0][0] * 1.05, "double quantization costs < 5%% extra error (%.4g vs %.4g)", nm[0][1], nm[0][0]);
    free(x); free(y); free(am);
}

static void test_4bit_gemv(eff_ctx *ctx) {
    const struct { int64_t rows, cols, bs; int qt, dq; } cs[] = {
        {37, 256, 64, EFF_NF4, 0}, {37, 256, 64, EFF_NF4, 1}, {19, 512, 128, EFF_FP4, 0}, {8, 96, 32, EFF_FP4, 1},
        {5, 100, 64, EFF_NF4, 0} /* blocks straddle rows: generic path */, {3, 33, 32, EFF_NF4, 1} /* odd cols */,
        {3, 64 * 300, 64, EFF_NF4, 1} /* > 256 blocks per row: chunked absmax */};
    int c;
    for (c = 0; c < 7; c++) {
        int64_t N = cs[c].rows, K = cs[c].cols, M = 3, i, j, k;
        float *w = (float *)malloc(N * K * 4), *wd = (float *)malloc(N * K * 4), *x = (float *)malloc(M * K * 4);
        float *y = (float *)malloc(M * N * 4), *ys = (float *)malloc(M * N * 4);
        double *ref = (double *)malloc((size_t)(M * N) * 8), e, es;
        eff_quant_4bit q;
        eff_quant_4bit_opts o;
        eff_test_seed(500 + c);
        eff_test_fill(w, N * K, 0.1);
        eff_test_fill(x, M * K, 1.0);
        memset(&o, 0, sizeof o);
        o.quant_type = cs[c].qt; o.blocksize = cs[c].bs; o.double_quant = cs[c].dq;
        eff_quant_4bit_quantize(ctx, &q, w, N, K, &o);
        eff_quant_4bit_dequantize(ctx, &q, wd);
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) {
                double acc = 0;
                for (k = 0; k < K; k++) acc += (double)x[i * K + k] * wd[j * K + k];
                ref[i * N + j] = acc;
            }
        EFF_CHECK(eff_quant_4bit_gemv(ctx, &q, x, y, M, EFF_QUANT_KERNEL_AUTO) == EFF_OK &&
                  eff_quant_4bit_gemv(ctx, &q, x, ys, M, EFF_QUANT_KERNEL_SCALAR) == EFF_OK, "4-bit gemv case %d runs", c);
        e = eff_test_nmse(y, ref, M * N);
        es = eff_test_nmse(ys, ref, M * N);
        EFF_CHECK(e <= 1e-12 && es <= 1e-12, "%s%s gemv [%lld x %lld] bs %lld, M=3: = dequantized-W float64 (nmse %.2g, scalar %.2g)",
                  eff_dtype_name(cs[c].qt), cs[c].dq ? "+DQ" : "", (long long)N, (long long)K, (long long)cs[c].bs, e, es);
        eff_quant_4bit_free(ctx, &q);
        free(w); free(wd); free(x); free(y); free(ys); free(ref);
    }
}

static void test_4bit_errors(eff_ctx *ctx) {
    float x[64] = {0}, y[4];
    uint8_t c[64];
    eff_quant_4bit q, bad;
    eff_quant_4bit_opts o;
    memset(&o, 0, sizeof o);
    o.quant_type = EFF_Q4_0;
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_quantize(ctx, &q, x, 1, 64, &o), EFF_ERR_INVALID_ARG, "4bit quant_type q4_0");
    EFF_CHECK(msg_has(ctx, "quant_type"), "message names quant_type: %s", eff_ctx_last_error(ctx));
    o.quant_type = EFF_NF4; o.blocksize = -64;
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_quantize(ctx, &q, x, 1, 64, &o), EFF_ERR_INVALID_ARG, "4bit blocksize -64");
    EFF_CHECK(msg_has(ctx, "blocksize"), "message names blocksize: %s", eff_ctx_last_error(ctx));
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_quantize(ctx, &q, NULL, 1, 64, NULL), EFF_ERR_INVALID_ARG, "4bit x NULL");
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_quantize(ctx, &q, x, -1, 64, NULL), EFF_ERR_INVALID_ARG, "4bit rows -1");
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_quantize(ctx, &q, x, INT64_MAX / 2, 64, NULL), EFF_ERR_OVERFLOW, "4bit rows x cols overflow");
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_quantize(ctx, &q, x, 0, 0, NULL), EFF_OK, "4bit empty tensor");
    eff_quant_4bit_free(ctx, &q);
    memset(&bad, 0, sizeof bad);
    bad.quant_type = EFF_NF4; bad.rows = 2; bad.cols = 32; bad.n = 64; bad.blocksize = 64; bad.nblocks = 1;   /* no arrays */
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_gemv(ctx, &bad, x, y, 1, 0), EFF_ERR_INVALID_ARG, "gemv on an unfilled struct");
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_dequantize(ctx, NULL, x), EFF_ERR_INVALID_ARG, "dequantize NULL q");
    EFF_CHECK_STATUS(ctx, eff_quant_dyn8_quantize(ctx, x, 64, 0, c, y), EFF_ERR_INVALID_ARG, "dyn8 blocksize 0");
    EFF_CHECK_STATUS(ctx, eff_quant_dyn8_dequantize(ctx, c, NULL, 64, 64, x), EFF_ERR_INVALID_ARG, "dyn8 absmax NULL");
    eff_quant_4bit_quantize(ctx, &q, x, 2, 32, NULL);
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_gemv(ctx, &q, x, y, 1, 3), EFF_ERR_INVALID_ARG, "gemv kernel 3");
    EFF_CHECK_STATUS(ctx, eff_quant_4bit_gemv(ctx, &q, x, NULL, 1, 0), EFF_ERR_INVALID_ARG, "gemv y NULL");
    eff_quant_4bit_free(ctx, &q);
}


/* ---------------------------------------------------------------------------
   5. Affine / symmetric int8 / int4 and QAT against PyTorch
   --------------------------------------------------------------------------- */
static void test_affine(eff_ctx *ctx) {
    /* tools/gen_quant_fixtures.py INT_CONFIGS */
    const struct { int bits, uns, sym, gran; int64_t gs; } cfg[] = {
        {8, 0, 0, 0, 0}, {8, 0, 1, 1, 0}, {8, 1, 0, 2, 16}, {8, 1, 1, 0, 0},
        {4, 0, 1, 2, 32}, {4, 1, 0, 1, 0}, {4, 0, 0, 2, 16}, {4, 1, 1, 2, 32}};
    const char *gname[] = {"tensor", "channel", "group"};
    fx_file fx = fx_load("affine.efq");
    fx_entry *x = fx_get(&fx, "x");
    int c;
    EFF_CHECK(fx.ok && x && x->n == 6 * 64, "affine.efq loads");
    if (!fx.ok || !x) return;
    for (c = 0; c < 8; c++) {
        char nm[32];
        fx_entry *sc, *zp, *qv, *dq;
        eff_quant_int q;
        eff_quant_int_opts o;
        int32_t v[384];
        float y[384];
        memset(&q, 0, sizeof q);
        snprintf(nm, sizeof nm, "c%d_scale", c); sc = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "c%d_zero", c); zp = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "c%d_q", c); qv = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "c%d_dq", c); dq = fx_get(&fx, nm);
        memset(&o, 0, sizeof o);
        o.bits = cfg[c].bits; o.is_unsigned = cfg[c].uns; o.scheme = cfg[c].sym ? EFF_QSCHEME_SYMMETRIC : EFF_QSCHEME_AFFINE;
        o.granularity = cfg[c].gran; o.group_size = cfg[c].gs;
        EFF_CHECK(eff_quant_int_quantize(ctx, &q, (const float *)x->data, 6, 64, &o) == EFF_OK && sc && q.ngroups == sc->n,
                  "%s%d %s per %s: quantize (%lld groups)", cfg[c].uns ? "uint" : "int", cfg[c].bits,
                  cfg[c].sym ? "symmetric" : "affine", gname[cfg[c].gran], (long long)q.ngroups);
        if (!sc || q.ngroups != sc->n) { eff_quant_int_free(ctx, &q); continue; }
        EFF_CHECK(same_bytes(q.scale, sc, 4) && same_bytes(q.zero, zp, 4), "  config %d: scales and zero points = MinMaxObserver's", c);
        eff_quant_int_values(ctx, &q, v);
        EFF_CHECK(same_bytes(v, qv, 4), "  config %d: integer values = torch (quantize_per_channel / fake_quantize)", c);
        eff_quant_int_dequantize(ctx, &q, y);
        EFF_CHECK(same_bytes(y, dq, 4), "  config %d: dequantized = torch.fake_quantize_per_channel_affine bitwise", c);
        {   /* the same through the QAT forward with the same qparams */
            float yf[384];
            eff_quant_fake_forward(ctx, yf, (const float *)x->data, 384, q.group_size, q.scale, q.zero, q.qmin, q.qmax);
            EFF_CHECK(memcmp(yf, y, sizeof yf) == 0, "  config %d: fake_forward = quantize + dequantize", c);
        }
        if (c == 0) {
            eff_quant_stats st;
            memset(&st, 0, sizeof st);
            EFF_CHECK(eff_quant_error_stats(ctx, (const float *)x->data, y, 384, &st) == EFF_OK && st.sqnr_db > 30.0 &&
                      fabs(st.nmse - pow(10.0, -st.sqnr_db / 10.0)) < 1e-12 && st.max_abs_err <= 0.5 * q.scale[0] * 1.0001,
                      "int8 per tensor: SQNR %.1f dB, max error %.4g <= S/2", st.sqnr_db, st.max_abs_err);
        }
        if (cfg[c].bits == 4) {   /* packing: element 2i in the low nibble */
            int32_t v0 = cfg[c].uns ? q.data[0] & 15 : ((q.data[0] & 15) ^ 8) - 8;
            EFF_CHECK(v0 == v[0], "  config %d: int4 packing puts element 0 in the low nibble", c);
        }
        eff_quant_int_free(ctx, &q);
    }
    for (c = 0; c < 3; c++) {
        const int64_t gsz[] = {384, 64, 16};
        const int qmin[] = {-128, -8, 0}, qmax[] = {127, 7, 15};
        char nm[32];
        fx_entry *sc, *zp, *y, *dy, *dx;
        float out[384];
        int64_t i, masked = 0;
        snprintf(nm, sizeof nm, "qat%d_scale", c); sc = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "qat%d_zero", c); zp = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "qat%d_y", c); y = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "qat%d_dy", c); dy = fx_get(&fx, nm);
        snprintf(nm, sizeof nm, "qat%d_dx", c); dx = fx_get(&fx, nm);
        if (!sc || !zp || !y || !dy || !dx) { EFF_CHECK(0, "qat%d fixture arrays", c); continue; }
        eff_quant_fake_forward(ctx, out, (const float *)x->data, 384, gsz[c], (const float *)sc->data, (const int32_t *)zp->data,
                               qmin[c], qmax[c]);
        EFF_CHECK(same_bytes(out, y, 4), "QAT %d: fake-quant forward = torch bitwise (values beyond the clamp range)", c);
        eff_quant_fake_backward(ctx, out, (const float *)dy->data, (const float *)x->data, 384, gsz[c], (const float *)sc->data,
                                (const int32_t *)zp->data, qmin[c], qmax[c]);
        for (i = 0; i < 384; i++) masked += out[i] == 0.0f && ((const float *)dy->data)[i] != 0.0f;
        EFF_CHECK(same_bytes(out, dx, 4) && masked > 0, "QAT %d: STE backward = torch autograd (%lld gradients masked)", c,
                  (long long)masked);
    }
    fx_free(&fx);
}

static void test_affine_errors(eff_ctx *ctx) {
    float x[64] = {0}, s[2] = {1.0f, 0.0f};
    int32_t z[2] = {0, 0};
    eff_quant_int q;
    eff_quant_int_opts o;
    float sc;
    int32_t zp;
    memset(&o, 0, sizeof o);
    o.bits = 3;
    EFF_CHECK_STATUS(ctx, eff_quant_int_quantize(ctx, &q, x, 1, 64, &o), EFF_ERR_INVALID_ARG, "int quantize bits=3");
    EFF_CHECK(msg_has(ctx, "bits"), "message names bits: %s", eff_ctx_last_error(ctx));
    o.bits = 8; o.granularity = EFF_QGRAN_GROUP; o.group_size = 48;
    EFF_CHECK_STATUS(ctx, eff_quant_int_quantize(ctx, &q, x, 1, 64, &o), EFF_ERR_SHAPE, "group 48 does not divide 64");
    o.granularity = 7;
    EFF_CHECK_STATUS(ctx, eff_quant_int_quantize(ctx, &q, x, 1, 64, &o), EFF_ERR_INVALID_ARG, "granularity 7");
    EFF_CHECK_STATUS(ctx, eff_quant_int_qparams(ctx, x, 64, 5, 5, 0, 0, &sc, &zp), EFF_ERR_INVALID_ARG, "qparams qmin == qmax");
    EFF_CHECK_STATUS(ctx, eff_quant_int_qparams(ctx, x, 64, -8, 7, 0, 0, &sc, &zp), EFF_OK, "qparams of zeros");
    EFF_CHECK(sc == FLT_EPSILON && zp == -8, "all-zero input, affine int4: scale = eps, zero = qmin (as MinMaxObserver)");
    EFF_CHECK_STATUS(ctx, eff_quant_fake_forward(ctx, x, x, 64, 32, s, z, -8, 7), EFF_ERR_INVALID_ARG, "fake quant scale 0");
    EFF_CHECK(msg_has(ctx, "scale[1]"), "message names scale[1]: %s", eff_ctx_last_error(ctx));
    EFF_CHECK_STATUS(ctx, eff_quant_fake_forward(ctx, x, x, 64, 48, s, z, -8, 7), EFF_ERR_SHAPE, "fake quant group 48");
    EFF_CHECK_STATUS(ctx, eff_quant_fake_backward(ctx, x, x, NULL, 64, 64, s, z, -8, 7), EFF_ERR_INVALID_ARG, "fake backward x NULL");
    EFF_CHECK_STATUS(ctx, eff_quant_int_dequantize(ctx, NULL, x), EFF_ERR_INVALID_ARG, "int dequantize NULL");
}

/* ---------------------------------------------------------------------------
   6. LLM.int8()
   --------------------------------------------------------------------------- */
/* The naive reference, written out independently (no contraction: bitwise target). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void llm_int8_naive(float *Y, const float *X, const int8_t *xq, const float *rs, const uint8_t *cols, int64_t M, int64_t K,
                           const int8_t *wq, const float *scb, int64_t N, const float *bias) {
#ifdef __clang__
#pragma clang fp contract(off)
#endif
    int64_t i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            int32_t acc = 0;
            float out, o = 0.0f;
            int any = 0;
            for (k = 0; k < K; k++) acc += xq[i * K + k] * wq[j * K + k];
            out = (float)acc * (rs[i] * scb[j]) * 6.200124e-05f;
            if (bias) out += bias[j];
            for (k = 0; k < K; k++)
                if (cols && cols[k]) { o += X[i * K + k] * ((float)wq[j * K + k] * scb[j] * 7.874015718698502e-3f); any = 1; }
            Y[i * N + j] = any ? out + o : out;
        }
}

static void test_llm_int8(eff_ctx *ctx) {
    fx_file fx = fx_load("llm_int8.efq");
    const int64_t M = 5, K = 64, N = 7;
    fx_entry *X = fx_get(&fx, "X"), *W = fx_get(&fx, "W"), *b = fx_get(&fx, "bias");
    int8_t xq[5 * 64];
    float rs[5], Y[35], Yn[35], Yf[35];
    double ref[35];
    uint8_t cols[64];
    eff_quant_llm_int8 w;
    int64_t no = -1, i, j, k;
    EFF_CHECK(fx.ok && X && W && b, "llm_int8.efq loads");
    if (!fx.ok || !X || !W || !b) return;
    EFF_CHECK(eff_quant_llm_int8_rowwise(ctx, xq, rs, cols, (const float *)X->data, M, K, EFF_QUANT_LLM_INT8_THRESHOLD) == EFF_OK &&
              same_bytes(xq, fx_get(&fx, "xq"), 1) && same_bytes(rs, fx_get(&fx, "row_stats"), 4) &&
              same_bytes(cols, fx_get(&fx, "outlier_cols"), 1),
              "int8_vectorwise_quant(X, 6.0): codes, row stats and outlier columns = bitsandbytes");
    EFF_CHECK(eff_quant_llm_int8_weight(ctx, &w, (const float *)W->data, N, K) == EFF_OK && same_bytes(w.q, fx_get(&fx, "wq"), 1) &&
              same_bytes(w.scb, fx_get(&fx, "scb"), 4), "W row-wise int8 + SCB = bitsandbytes");
    eff_quant_llm_int8_matmul(ctx, Y, (const float *)X->data, M, &w, (const float *)b->data, 6.0f, &no);
    llm_int8_naive(Yn, (const float *)X->data, xq, rs, cols, M, K, w.q, w.scb, N, (const float *)b->data);
    EFF_CHECK(no == 3 && memcmp(Y, Yn, sizeof Y) == 0, "int8 matmul with 3 outlier columns = naive int8 reference bitwise");
    {
        double e = eff_test_nmse_ff(Y, (const float *)fx_get(&fx, "out")->data, M * N);
        EFF_CHECK(e < 1e-12, "int8 matmul = bitsandbytes' int8_mixed_scaled_mm (nmse %.2g; only addmm order differs)", e);
    }
    eff_quant_llm_int8_matmul(ctx, Y, (const float *)X->data, M, &w, (const float *)b->data, 0.0f, &no);
    EFF_CHECK(no == 0 && same_bytes(Y, fx_get(&fx, "out0"), 4), "threshold 0: = bitsandbytes' int8_scaled_mm bitwise");
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double acc = ((const float *)b->data)[j];
            for (k = 0; k < K; k++) acc += (double)((const float *)X->data)[i * K + k] * ((const float *)W->data)[j * K + k];
            ref[i * N + j] = acc;
        }
    eff_quant_llm_int8_matmul(ctx, Yf, (const float *)X->data, M, &w, (const float *)b->data, 6.0f, NULL);
    {
        double e6 = eff_test_nmse(Yf, ref, M * N), e0 = eff_test_nmse(Y, ref, M * N);
        EFF_CHECK(e6 < 1e-3 && e6 < e0, "vs fp32 matmul: nmse %.3g with outlier decomposition < %.3g without", e6, e0);
    }
    EFF_CHECK_STATUS(ctx, eff_quant_llm_int8_matmul(ctx, Y, NULL, M, &w, NULL, 6.0f, NULL), EFF_ERR_INVALID_ARG, "int8 matmul X NULL");
    EFF_CHECK_STATUS(ctx, eff_quant_llm_int8_matmul(ctx, Y, Yf, -1, &w, NULL, 6.0f, NULL), EFF_ERR_INVALID_ARG, "int8 matmul M<0");
    eff_quant_llm_int8_free(ctx, &w);
    {   /* a larger random case with OpenMP: optimized = naive bitwise */
        const int64_t M2 = 3, K2 = 300, N2 = 301;
        float *X2 = (float *)malloc(M2 * K2 * 4), *W2 = (float *)malloc(N2 * K2 * 4), *Y2 = (float *)malloc(M2 * N2 * 4);
        float *Y2n = (float *)malloc(M2 * N2 * 4), rs2[3];
        int8_t *xq2 = (int8_t *)malloc(M2 * K2);
        uint8_t cols2[300];
        eff_test_seed(31);
        eff_test_fill(X2, M2 * K2, 3.0);
        X2[17] = 20.0f; X2[K2 + 200] = -9.0f;
        eff_test_fill(W2, N2 * K2, 0.05);
        eff_quant_llm_int8_weight(ctx, &w, W2, N2, K2);
        eff_quant_llm_int8_matmul(ctx, Y2, X2, M2, &w, NULL, 6.0f, &no);
        eff_quant_llm_int8_rowwise(ctx, xq2, rs2, cols2, X2, M2, K2, 6.0f);
        llm_int8_naive(Y2n, X2, xq2, rs2, cols2, M2, K2, w.q, w.scb, N2, NULL);
        EFF_CHECK(memcmp(Y2, Y2n, (size_t)(M2 * N2) * 4) == 0 && no >= 2, "int8 matmul [3x300]x[301x300]^T, %lld outliers: = naive bitwise",
                  (long long)no);
        eff_quant_llm_int8_free(ctx, &w);
        free(X2); free(W2); free(Y2); free(Y2n); free(xq2);
    }
    fx_free(&fx);
}


/* ---------------------------------------------------------------------------
   7. GGUF
   --------------------------------------------------------------------------- */
static unsigned char *read_file(const char *path, int64_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *size = n;
    return buf;
}

/* The metadata of tools/gen_quant_fixtures.py gguf_expected_kv(). */
static int check_gguf_kvs(const eff_quant_gguf *g) {
    const eff_quant_gguf_kv *kv;
    int ok = 1;
    uint64_t u64s[2];
    double f64;
    float f32s[2];
    kv = eff_quant_gguf_find_kv(g, "general.architecture");
    ok &= kv && kv->value.type == EFF_GGUF_STRING && strcmp(kv->value.str, "eff-test") == 0;
    kv = eff_quant_gguf_find_kv(g, "eff.u8"); ok &= kv && kv->value.type == EFF_GGUF_U8 && kv->value.v.u8 == 200;
    kv = eff_quant_gguf_find_kv(g, "eff.i8"); ok &= kv && kv->value.type == EFF_GGUF_I8 && kv->value.v.i8 == -100;
    kv = eff_quant_gguf_find_kv(g, "eff.u16"); ok &= kv && kv->value.type == EFF_GGUF_U16 && kv->value.v.u16 == 60000;
    kv = eff_quant_gguf_find_kv(g, "eff.i16"); ok &= kv && kv->value.type == EFF_GGUF_I16 && kv->value.v.i16 == -30000;
    kv = eff_quant_gguf_find_kv(g, "eff.u32"); ok &= kv && kv->value.type == EFF_GGUF_U32 && kv->value.v.u32 == 4000000000u;
    kv = eff_quant_gguf_find_kv(g, "eff.i32"); ok &= kv && kv->value.type == EFF_GGUF_I32 && kv->value.v.i32 == -2000000000;
    kv = eff_quant_gguf_find_kv(g, "eff.f32"); ok &= kv && kv->value.type == EFF_GGUF_F32 && kv->value.v.f32 == 3.25f;
    kv = eff_quant_gguf_find_kv(g, "eff.bool"); ok &= kv && kv->value.type == EFF_GGUF_BOOL && kv->value.v.b == 1;
    kv = eff_quant_gguf_find_kv(g, "eff.str");
    ok &= kv && kv->value.type == EFF_GGUF_STRING && kv->value.len == 13 && strcmp(kv->value.str, "h\xc3\xa9llo w\xc3\xb6rld") == 0;
    kv = eff_quant_gguf_find_kv(g, "eff.u64"); ok &= kv && kv->value.type == EFF_GGUF_U64 && kv->value.v.u64 == ((uint64_t)1 << 40) + 7;
    kv = eff_quant_gguf_find_kv(g, "eff.i64"); ok &= kv && kv->value.type == EFF_GGUF_I64 && kv->value.v.i64 == -((int64_t)1 << 40);
    kv = eff_quant_gguf_find_kv(g, "eff.f64"); ok &= kv && kv->value.type == EFF_GGUF_F64 && kv->value.v.f64 == -1.0e300;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_u8");
    ok &= kv && kv->value.type == EFF_GGUF_ARRAY && kv->value.elem_type == EFF_GGUF_U8 && kv->value.count == 3 &&
          memcmp(kv->value.data, "\1\2\3", 3) == 0;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_i32");
    ok &= kv && kv->value.elem_type == EFF_GGUF_I32 && kv->value.count == 3 && ((const int32_t *)kv->value.data)[0] == -1 &&
          ((const int32_t *)kv->value.data)[2] == 1;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_f32");
    if (kv) memcpy(f32s, kv->value.data, 8);
    ok &= kv && kv->value.elem_type == EFF_GGUF_F32 && kv->value.count == 2 && f32s[0] == 0.5f && f32s[1] == -2.0f;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_bool");
    ok &= kv && kv->value.elem_type == EFF_GGUF_BOOL && kv->value.count == 3 && memcmp(kv->value.data, "\1\0\1", 3) == 0;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_str");
    ok &= kv && kv->value.elem_type == EFF_GGUF_STRING && kv->value.count == 3 && strcmp(kv->value.strs[0].str, "a") == 0 &&
          kv->value.strs[1].len == 0 && strcmp(kv->value.strs[2].str, "ccc") == 0;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_u64");
    if (kv) memcpy(u64s, kv->value.data, 16);
    ok &= kv && kv->value.elem_type == EFF_GGUF_U64 && kv->value.count == 2 && u64s[0] == 1 && u64s[1] == (uint64_t)1 << 63;
    kv = eff_quant_gguf_find_kv(g, "eff.arr_f64");
    if (kv) memcpy(&f64, kv->value.data, 8);
    ok &= kv && kv->value.elem_type == EFF_GGUF_F64 && kv->value.count == 1 && f64 == 0.25;
    return ok;
}

static const struct { const char *name; uint32_t type; uint32_t n_dims; int64_t ne0, ne1; } gguf_fx_tensors[] = {
    {"tok.weight", 0, 2, 5, 3}, {"norm.f16", 1, 1, 7, 1}, {"ids.i32", 26, 1, 4, 1}, {"blk.0.q8", 8, 2, 64, 2},
    {"blk.0.q4", 2, 2, 32, 1}, {"blk.0.q6k", 14, 2, 256, 1}, {"empty", 0, 2, 4, 0}};

static int check_gguf_tensors(const eff_quant_gguf *g, fx_file *tfx) {
    int i, ok = g->n_tensors == 7;
    for (i = 0; i < 7 && ok; i++) {
        const eff_quant_gguf_tensor *t = eff_quant_gguf_find_tensor(g, gguf_fx_tensors[i].name);
        char nm[64];
        fx_entry *e;
        snprintf(nm, sizeof nm, "t_%s", gguf_fx_tensors[i].name);
        e = fx_get(tfx, nm);
        ok &= t && e && t->ggml_type == gguf_fx_tensors[i].type && t->n_dims == gguf_fx_tensors[i].n_dims &&
              t->ne[0] == gguf_fx_tensors[i].ne0 && t->ne[1] == gguf_fx_tensors[i].ne1 && (int64_t)t->nbytes == e->n &&
              (t->nbytes == 0 || memcmp(t->data, e->data, (size_t)t->nbytes) == 0) && t->offset % g->alignment == 0;
        if (!ok) printf("  tensor %s differs\n", gguf_fx_tensors[i].name);
    }
    return ok;
}

/* Copies every KV and tensor of g into w, in order. */
static eff_status gguf_copy_to_writer(eff_ctx *ctx, const eff_quant_gguf *g, eff_quant_gguf_writer *w) {
    int64_t i;
    for (i = 0; i < g->n_kv; i++) EFF__TRY(eff_quant_gguf_writer_set(ctx, w, g->kv[i].key, &g->kv[i].value));
    for (i = 0; i < g->n_tensors; i++) {
        const eff_quant_gguf_tensor *t = &g->tensors[i];
        EFF__TRY(eff_quant_gguf_writer_add_tensor(ctx, w, t->name, t->ggml_type, t->n_dims, t->ne, t->data));
    }
    return EFF_OK;
}

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Offsets inside the fixture file, found by scanning (so the tests do not hard-code layout). */
static int64_t find_bytes(const unsigned char *d, int64_t n, const char *needle) {
    int64_t i, k = (int64_t)strlen(needle);
    for (i = 0; i + k <= n; i++) if (memcmp(d + i, needle, (size_t)k) == 0) return i;
    return -1;
}

static void expect_bad(eff_ctx *ctx, const unsigned char *img, int64_t n, const char *what, const char *needle) {
    eff_quant_gguf g;
    eff_status s = eff_quant_gguf_open_memory(ctx, &g, img, n);
    EFF_CHECK(s == EFF_ERR_FORMAT && (!needle || msg_has(ctx, needle)), "malformed GGUF rejected: %s -> %s", what,
              s == EFF_OK ? "accepted!" : eff_ctx_last_error(ctx));
    if (s == EFF_OK) eff_quant_gguf_close(ctx, &g);
}

static void test_gguf(eff_ctx *ctx) {
    char path[512];
    int64_t size = 0, i;
    unsigned char *img, *m;
    eff_quant_gguf g;
    fx_file tfx = fx_load("gguf_tensors.efq");
    fx_path(path, sizeof path, "gguf_pywriter.gguf");
    img = read_file(path, &size);
    EFF_CHECK(img != NULL && tfx.ok, "gguf fixture %s loads (%lld bytes)", path, (long long)size);
    if (!img || !tfx.ok) { free(img); fx_free(&tfx); return; }
    /* 1. the file gguf-py wrote */
    { eff_status s_ = eff_quant_gguf_open(ctx, &g, path); EFF_CHECK(s_ == EFF_OK, "eff_quant_gguf_open(gguf-py's file)%s%s", s_ ? ": " : "", s_ ? eff_ctx_last_error(ctx) : ""); }
    EFF_CHECK(g.version == 3 && g.alignment == 64 && g.n_kv == 21 && g.n_tensors == 7 && g.data_offset % 64 == 0,
              "header: v%u, alignment %llu, %lld KVs, %lld tensors", g.version, (unsigned long long)g.alignment, (long long)g.n_kv,
              (long long)g.n_tensors);
    EFF_CHECK(check_gguf_kvs(&g), "every metadata value type (u8..f64, bool, string, arrays of each) reads back exactly");
    EFF_CHECK(check_gguf_tensors(&g, &tfx), "tensor infos (type, ne in ggml order, offsets) and data bytes as written");
    {
        eff_tensor t;
        const eff_quant_gguf_tensor *ti = eff_quant_gguf_find_tensor(&g, "tok.weight");
        EFF_CHECK(ti && eff_quant_gguf_tensor_view(ctx, ti, &t) == EFF_OK && t.dtype == EFF_F32 && t.ndim == 2 && t.ne[0] == 3 &&
                  t.ne[1] == 5, "tensor_view: f32 [3, 5] in PyTorch order");
        ti = eff_quant_gguf_find_tensor(&g, "blk.0.q6k");
        EFF_CHECK(ti && eff_quant_gguf_tensor_view(ctx, ti, &t) == EFF_OK && t.dtype == EFF_Q6_K && t.ne[1] == 256,
                  "tensor_view: Q6_K maps to EFF_Q6_K");
        EFF_CHECK(eff_quant_gguf_find_tensor(&g, "nope") == NULL && eff_quant_gguf_find_kv(&g, "nope") == NULL, "lookups of absent names");
    }
    /* 2. eff's writer reproduces gguf-py's file byte for byte */
    {
        eff_quant_gguf_writer w;
        char out[512];
        int64_t osize = 0;
        unsigned char *oimg;
        const char *dir = getenv("EFF_TEST_TMPDIR");
        snprintf(out, sizeof out, "%s/eff_roundtrip.gguf", dir ? dir : "build/tests");
        eff_quant_gguf_writer_init(&w);
        EFF_CHECK(gguf_copy_to_writer(ctx, &g, &w) == EFF_OK && eff_quant_gguf_writer_write(ctx, &w, out) == EFF_OK,
                  "writer: copy of the fixture written to %s (%s)", out, eff_ctx_last_error(ctx));
        oimg = read_file(out, &osize);
        EFF_CHECK(oimg && osize == size && memcmp(oimg, img, (size_t)size) == 0,
                  "round trip: eff's writer output is byte-identical to gguf-py's file (%lld vs %lld bytes)", (long long)osize,
                  (long long)size);
        free(oimg);
        remove(out);
        /* 3. the file tools/gen_quant_fixtures.py --verify-gguf checks with gguf-py */
        {
            eff_quant_gguf_value v;
            eff_quant_gguf g2;
            memset(&v, 0, sizeof v);
            v.type = EFF_GGUF_ARRAY; v.elem_type = EFF_GGUF_I16; v.count = 0;
            eff_quant_gguf_writer_set_str(ctx, &w, "eff.writer", "eff");
            eff_quant_gguf_writer_set(ctx, &w, "eff.arr_empty", &v);
            eff_quant_gguf_writer_set_u32(ctx, &w, "eff.u32", 7);               /* replaced ... */
            eff_quant_gguf_writer_set_u32(ctx, &w, "eff.u32", 4000000000u);     /* ... and restored */
            snprintf(out, sizeof out, "%s/eff_written.gguf", dir ? dir : "build/tests");
            EFF_CHECK(eff_quant_gguf_writer_write(ctx, &w, out) == EFF_OK && eff_quant_gguf_open(ctx, &g2, out) == EFF_OK &&
                      g2.n_kv == 23 && check_gguf_kvs(&g2) && check_gguf_tensors(&g2, &tfx) &&
                      strcmp(eff_quant_gguf_find_kv(&g2, "eff.writer")->value.str, "eff") == 0 &&
                      eff_quant_gguf_find_kv(&g2, "eff.arr_empty")->value.count == 0,
                      "writer: %s reads back (check it with: python3 tools/gen_quant_fixtures.py --verify-gguf %s)", out, out);
            eff_quant_gguf_close(ctx, &g2);
        }
        eff_quant_gguf_writer_free(ctx, &w);
    }
    /* a writer with default alignment and an F32 tensor from an eff tensor */
    {
        eff_quant_gguf_writer w;
        eff_quant_gguf g3;
        float data[6] = {1, 2, 3, 4, 5, 6};
        int64_t ne[2] = {3, 2};
        char out[512];
        const char *dir = getenv("EFF_TEST_TMPDIR");
        snprintf(out, sizeof out, "%s/eff_small.gguf", dir ? dir : "build/tests");
        eff_quant_gguf_writer_init(&w);
        eff_quant_gguf_writer_set_f32(ctx, &w, "x.f", 1.5f);
        eff_quant_gguf_writer_add_tensor(ctx, &w, "w", (uint32_t)eff_quant_gguf_type_from_dtype(EFF_F32), 2, ne, data);
        EFF_CHECK(eff_quant_gguf_writer_write(ctx, &w, out) == EFF_OK && eff_quant_gguf_open(ctx, &g3, out) == EFF_OK &&
                  g3.alignment == 32 && g3.data_offset % 32 == 0 && g3.n_tensors == 1 &&
                  memcmp(g3.tensors[0].data, data, sizeof data) == 0 && eff_quant_gguf_find_kv(&g3, "x.f")->value.v.f32 == 1.5f,
                  "default alignment 32: written and read back");
        eff_quant_gguf_close(ctx, &g3);
        remove(out);
        EFF_CHECK_STATUS(ctx, eff_quant_gguf_writer_add_tensor(ctx, &w, "w", 0, 2, ne, data), EFF_ERR_INVALID_ARG, "writer: duplicate tensor name");
        ne[0] = 33;
        EFF_CHECK_STATUS(ctx, eff_quant_gguf_writer_add_tensor(ctx, &w, "q", 2, 1, ne, data), EFF_ERR_SHAPE, "writer: Q4_0 with 33 columns");
        EFF_CHECK_STATUS(ctx, eff_quant_gguf_writer_add_tensor(ctx, &w, "r", 4, 1, ne, data), EFF_ERR_INVALID_ARG, "writer: removed type 4");
        EFF_CHECK_STATUS(ctx, eff_quant_gguf_writer_set_u32(ctx, &w, "general.alignment", 48), EFF_ERR_INVALID_ARG, "writer: alignment 48");
        EFF_CHECK_STATUS(ctx, eff_quant_gguf_writer_set_str(ctx, &w, "", "x"), EFF_ERR_INVALID_ARG, "writer: empty key");
        eff_quant_gguf_writer_free(ctx, &w);
    }
    EFF_CHECK(eff_quant_gguf_type_to_dtype(12) == EFF_Q4_K && eff_quant_gguf_type_from_dtype(EFF_Q8_0) == 8 &&
              eff_quant_gguf_type_from_dtype(EFF_NF4) == -1 && eff_quant_gguf_type_blck(10) == 256 &&
              eff_quant_gguf_type_size(9) == 36 && eff_quant_gguf_type_name(4) == NULL && eff_quant_gguf_type_size(99) == 0,
              "ggml type table: ids, block sizes, eff dtype mapping");
    eff_quant_gguf_close(ctx, &g);

    /* 4. malformed files: each a copy of the fixture with one lie */
    m = (unsigned char *)malloc((size_t)size);
    {
        int64_t o_u8 = find_bytes(img, size, "eff.u8"), o_name = find_bytes(img, size, "tok.weight"), o_str = find_bytes(img, size, "eff.str");
        int64_t o_arr = find_bytes(img, size, "eff.arr_u8"), o_bool = find_bytes(img, size, "eff.bool"), o_al = find_bytes(img, size, "general.alignment");
        int64_t o_i8 = find_bytes(img, size, "eff.i8"), o_q8 = find_bytes(img, size, "blk.0.q8"), o_f16 = find_bytes(img, size, "norm.f16");
        EFF_CHECK(o_u8 > 0 && o_name > 0 && o_str > 0 && o_arr > 0 && o_bool > 0 && o_al > 0 && o_q8 > 0, "fixture layout found");
#define FRESH() memcpy(m, img, (size_t)size)
        FRESH(); m[0] = 'X'; expect_bad(ctx, m, size, "bad magic", "magic");
        FRESH(); put_u32(m + 4, 1); expect_bad(ctx, m, size, "version 1", "version 1");
        FRESH(); put_u32(m + 4, 0x03000000u); expect_bad(ctx, m, size, "byte-swapped version (big endian)", "big-endian");
        FRESH(); put_u32(m + 4, 4); expect_bad(ctx, m, size, "version 4", "version 4");
        expect_bad(ctx, img, 10, "truncated inside the header", NULL);
        FRESH(); put_u64(m + 16, (uint64_t)1 << 40); expect_bad(ctx, m, size, "kv count far beyond the file", "key-value pairs");
        FRESH(); put_u64(m + 8, 1000000); expect_bad(ctx, m, size, "tensor count far beyond the file", "tensors");
        FRESH(); put_u64(m + o_str + 7 + 4, (uint64_t)1 << 50); expect_bad(ctx, m, size, "string length beyond the file", "length");
        FRESH(); put_u32(m + o_u8 + 6, 13); expect_bad(ctx, m, size, "value type 13", "value type");
        FRESH(); put_u32(m + o_arr + 10 + 4, EFF_GGUF_ARRAY); expect_bad(ctx, m, size, "array of arrays", "arrays of arrays");
        FRESH(); m[o_bool + 8 + 4] = 2; expect_bad(ctx, m, size, "bool = 2", "bool");
        FRESH(); memcpy(m + o_i8, "eff.u8", 6); expect_bad(ctx, m, size, "duplicate key", "duplicate key");
        FRESH(); put_u32(m + o_al + 17 + 4, 48); expect_bad(ctx, m, size, "alignment 48", "power of two");
        FRESH(); put_u32(m + o_al + 17, EFF_GGUF_I32); expect_bad(ctx, m, size, "alignment not a u32", "u32");
        FRESH(); put_u32(m + o_name + 10, 5); expect_bad(ctx, m, size, "5 dims", "dims");
        FRESH(); put_u32(m + o_name + 10 + 4 + 16, 4); expect_bad(ctx, m, size, "removed ggml type 4", "type");
        FRESH(); put_u32(m + o_name + 10 + 4 + 16, 200); expect_bad(ctx, m, size, "ggml type 200", "type");
        FRESH(); put_u64(m + o_q8 + 8 + 4, 48); expect_bad(ctx, m, size, "Q8_0 row of 48 (not a block multiple)", "block size");
        FRESH(); put_u64(m + o_name + 10 + 4, (uint64_t)-5); expect_bad(ctx, m, size, "negative ne", "negative");
        FRESH(); put_u64(m + o_name + 10 + 4, (uint64_t)1 << 62); put_u64(m + o_name + 10 + 12, 1 << 20);
        expect_bad(ctx, m, size, "element count overflow", "overflow");
        FRESH(); put_u64(m + o_name + 10 + 4 + 16 + 4, 8); expect_bad(ctx, m, size, "misaligned offset", "alignment");
        FRESH(); put_u64(m + o_name + 10 + 4 + 16 + 4, 1 << 20); expect_bad(ctx, m, size, "offset beyond the file", "beyond");
        FRESH(); put_u64(m + o_f16 + 8 + 4 + 8 + 4, 0); expect_bad(ctx, m, size, "overlapping tensors", "overlaps");
        FRESH(); memcpy(m + o_f16, "blk.0.q8", 8); expect_bad(ctx, m, size, "duplicate tensor name", "duplicate tensor");
        FRESH(); put_u64(m + o_name - 8, 70); expect_bad(ctx, m, size, "tensor name of 70 bytes", NULL);
        expect_bad(ctx, img, size - 100, "tensor data truncated", "beyond");
#undef FRESH
    }
    {   /* every prefix of the file is rejected, never read past */
        int64_t bad = 0;
        for (i = 0; i < size; i++) {
            unsigned char *pre = (unsigned char *)malloc((size_t)(i ? i : 1));
            memcpy(pre, img, (size_t)i);
            if (eff_quant_gguf_open_memory(ctx, &g, pre, i) != EFF_ERR_FORMAT) { bad++; eff_quant_gguf_close(ctx, &g); }
            free(pre);
        }
        EFF_CHECK(bad == 0, "all %lld truncations of the file are rejected with EFF_ERR_FORMAT (%lld accepted)", (long long)size,
                  (long long)bad);
    }
    {   /* deterministic byte flips: never a crash (ASan checks reads); accepted files are self-consistent */
        int64_t rejected = 0, accepted = 0, incons = 0;
        eff_test_seed(99);
        for (i = 0; i < 3000; i++) {
            int k, nflip = 1 + (int)(i % 3);
            memcpy(m, img, (size_t)size);
            for (k = 0; k < nflip; k++) {
                int64_t at = (int64_t)((eff_test_uniform() * 0.5 + 0.5) * (double)(i % 2 ? 1100 : size));
                m[at < size ? at : size - 1] ^= (unsigned char)(1u << (int)((eff_test_uniform() * 0.5 + 0.5) * 8) % 8);
            }
            if (eff_quant_gguf_open_memory(ctx, &g, m, size) == EFF_OK) {
                int64_t t;
                accepted++;
                for (t = 0; t < g.n_tensors; t++)
                    incons += (const unsigned char *)g.tensors[t].data + g.tensors[t].nbytes > m + size;
                eff_quant_gguf_close(ctx, &g);
            } else rejected++;
        }
        EFF_CHECK(incons == 0 && rejected > 0, "3000 random bit flips: %lld rejected, %lld accepted, no out-of-file tensor",
                  (long long)rejected, (long long)accepted);
    }
    EFF_CHECK_STATUS(ctx, eff_quant_gguf_open(ctx, &g, "tests/fixtures/quant/does-not-exist.gguf"), EFF_ERR_IO, "open a missing file");
    EFF_CHECK_STATUS(ctx, eff_quant_gguf_open_memory(ctx, &g, NULL, 10), EFF_ERR_INVALID_ARG, "open_memory NULL");
    free(m);
    free(img);
    fx_free(&tfx);
}


/* ---------------------------------------------------------------------------
   8. Pruning, distillation, low rank
   --------------------------------------------------------------------------- */
static void test_pruning(eff_ctx *ctx, fx_file *fx) {
    fx_entry *w1 = fx_get(fx, "p_w1"), *w2 = fx_get(fx, "p_w2");
    uint8_t m1[200], m2[120], *masks[2];
    const float *ws[2];
    int64_t ns[2] = {200, 120}, i, kept;
    if (!w1 || !w2) { EFF_CHECK(0, "pruning fixture arrays"); return; }
    EFF_CHECK(eff_quant_prune_magnitude(ctx, m1, (const float *)w1->data, 200, 0.3) == EFF_OK &&
              same_bytes(m1, fx_get(fx, "p_mask1"), 1), "magnitude pruning 30%% = torch l1_unstructured mask");
    for (kept = 0, i = 0; i < 200; i++) kept += m1[i];
    EFF_CHECK(kept == 140, "exactly 60 of 200 weights pruned (%lld kept)", (long long)(kept));
    masks[0] = m1; masks[1] = m2; ws[0] = (const float *)w1->data; ws[1] = (const float *)w2->data;
    EFF_CHECK(eff_quant_prune_magnitude_global(ctx, masks, ws, ns, 2, 0.5) == EFF_OK && same_bytes(m1, fx_get(fx, "p_gmask1"), 1) &&
              same_bytes(m2, fx_get(fx, "p_gmask2"), 1), "global magnitude pruning 50%% = torch global_unstructured masks");
    {   /* ties are deterministic and the count is still exact */
        float w[10] = {1, 1, 1, 1, 2, 2, 2, 3, 3, 3};
        uint8_t m[10];
        eff_quant_prune_magnitude(ctx, m, w, 10, 0.5);
        EFF_CHECK(memcmp(m, "\0\0\0\0\0\1\1\1\1\1", 10) == 0, "ties pruned lowest index first, exact count");
        eff_quant_prune_apply(ctx, w, m, 10);
        EFF_CHECK(w[4] == 0.0f && w[5] == 2.0f, "prune_apply zeroes the pruned weights");
        eff_quant_prune_magnitude(ctx, m, w, 10, 0.0);
        EFF_CHECK(memchr(m, 0, 10) == NULL, "sparsity 0 keeps everything");
        eff_quant_prune_magnitude(ctx, m, w, 10, 1.0);
        EFF_CHECK(memchr(m, 1, 10) == NULL, "sparsity 1 prunes everything");
    }
    EFF_CHECK(eff_quant_prune_schedule(0.0, 0.8, 0, 0, 10, 100) == 0.0 && eff_quant_prune_schedule(0.0, 0.8, 1000, 0, 10, 100) == 0.8 &&
              fabs(eff_quant_prune_schedule(0.0, 0.8, 500, 0, 10, 100) - 0.8 * (1 - 0.125)) < 1e-12,
              "gradual schedule s_f + (s_i - s_f)(1 - p)^3");
    EFF_CHECK_STATUS(ctx, eff_quant_prune_magnitude(ctx, m1, (const float *)w1->data, 200, 1.5), EFF_ERR_INVALID_ARG, "sparsity 1.5");
    {   /* N:M 2:4 */
        const int64_t R = 13, K = 64, M = 3;
        float *w = (float *)malloc(R * K * 4), *wd = (float *)malloc(R * K * 4), *x = (float *)malloc(M * K * 4), y[3 * 13], bias[13];
        double ref[3 * 13];
        eff_quant_nm nm;
        int64_t g, j, k, bad = 0, zeros = 0, mism = 0;
        eff_test_seed(123);
        eff_test_fill(w, R * K, 1.0);
        eff_test_fill(x, M * K, 1.0);
        eff_test_fill(bias, R, 1.0);
        EFF_CHECK(eff_quant_nm_prune(ctx, &nm, w, R, K, 2, 4) == EFF_OK && eff_quant_nm_decompress(ctx, &nm, wd) == EFF_OK, "2:4 prune");
        for (i = 0; i < R * K; i += 4) {
            int nz = 0;
            for (k = 0; k < 4; k++) {
                nz += wd[i + k] != 0.0f;
                zeros += wd[i + k] == 0.0f;
                mism += wd[i + k] != 0.0f && wd[i + k] != w[i + k];
                /* a kept weight is at least as large as every pruned one in its group */
                for (g = 0; g < 4; g++) bad += wd[i + k] == 0.0f && wd[i + g] != 0.0f && fabsf(w[i + k]) > fabsf(w[i + g]);
            }
            bad += nz != 2;
        }
        EFF_CHECK(bad == 0 && mism == 0 && zeros == R * K / 2, "2:4: every group keeps its 2 largest |w|, exactly 50%% zeros");
        eff_quant_nm_matmul(ctx, y, x, M, &nm, bias);
        for (i = 0; i < M; i++)
            for (j = 0; j < R; j++) {
                double a = bias[j];
                for (k = 0; k < K; k++) a += (double)x[i * K + k] * wd[j * K + k];
                ref[i * R + j] = a;
            }
        EFF_CHECK(eff_test_nmse(y, ref, M * R) < 1e-12, "2:4 sparse x dense matmul = dense matmul on the pruned weights");
        eff_quant_nm_free(ctx, &nm);
        EFF_CHECK_STATUS(ctx, eff_quant_nm_prune(ctx, &nm, w, R, 62, 2, 4), EFF_ERR_SHAPE, "2:4 with 62 columns");
        EFF_CHECK_STATUS(ctx, eff_quant_nm_prune(ctx, &nm, w, R, K, 5, 4), EFF_ERR_INVALID_ARG, "5:4");
        free(w); free(wd); free(x);
    }
    {   /* head importance: gate gradient and per-layer l2 normalization */
        float att[2 * 3 * 4], datt[2 * 3 * 4], gg[3], gates[2 * 2 * 3], imp[6];
        double nrm0 = 0, nrm1 = 0;
        eff_test_seed(5);
        eff_test_fill(att, 24, 1.0);
        eff_test_fill(datt, 24, 1.0);
        eff_quant_head_gate_grad(ctx, gg, att, datt, 2, 3, 4);
        {
            double e = 0;
            int t, d;
            for (t = 0; t < 2; t++) for (d = 0; d < 4; d++) e += (double)att[(t * 3 + 1) * 4 + d] * datt[(t * 3 + 1) * 4 + d];
            EFF_CHECK(fabs(gg[1] - e) < 1e-6, "head gate gradient = sum_t <Att_h, dAtt_h>");
        }
        eff_test_fill(gates, 12, 1.0);
        eff_quant_head_importance(ctx, imp, gates, 2, 2, 3);
        for (i = 0; i < 3; i++) { nrm0 += (double)imp[i] * imp[i]; nrm1 += (double)imp[3 + i] * imp[3 + i]; }
        EFF_CHECK(fabs(nrm0 - 1) < 1e-6 && fabs(nrm1 - 1) < 1e-6 &&
                  fabs(imp[0] / imp[1] - (fabs(gates[0]) + fabs(gates[6])) / (fabs(gates[1]) + fabs(gates[7]))) < 1e-5,
                  "head importance: mean |grad| over batches, unit l2 norm per layer");
    }
}

typedef struct { eff_ctx *ctx; float *s; const float *t; int64_t N, V; eff_quant_distill_opts o; int cos; } kd_fd;
static double kd_fd_fn(void *u) {
    kd_fd *k = (kd_fd *)u;
    float l = 0;
    if (k->cos) eff_quant_distill_cosine_forward(k->ctx, &l, k->s, k->t, k->N, k->V);
    else eff_quant_distill_kl_forward(k->ctx, &l, k->s, k->t, k->N, k->V, &k->o);
    return l;
}
static void test_distill(eff_ctx *ctx, fx_file *fx) {
    fx_entry *s = fx_get(fx, "kd_s"), *t = fx_get(fx, "kd_t");
    float loss = 0, g[40], sv[40], gc[40];
    eff_quant_distill_opts o;
    int rev;
    if (!s || !t) { EFF_CHECK(0, "distillation fixture arrays"); return; }
    memset(&o, 0, sizeof o);
    o.temperature = 2.0f;
    for (rev = 0; rev < 2; rev++) {
        double want = *(double *)fx_get(fx, rev ? "kd_rloss" : "kd_loss")->data, num[40], maxd = 0, ref;
        kd_fd k;
        int i;
        o.reverse = rev;
        eff_quant_distill_kl_forward(ctx, &loss, (const float *)s->data, (const float *)t->data, 4, 10, &o);
        EFF_CHECK(fabs(loss - want) <= 1e-6 * fabs(want), "%s KL, T=2: loss %.7g = torch %.7g (x T^2, batchmean)", rev ? "reverse" : "forward",
                  loss, want);
        eff_quant_distill_kl_backward(ctx, g, (const float *)s->data, (const float *)t->data, 4, 10, 1.0f, &o);
        EFF_CHECK(eff_test_nmse_ff(g, (const float *)fx_get(fx, rev ? "kd_rgrad" : "kd_grad")->data, 40) < 1e-12,
                  "%s KL gradient = torch autograd", rev ? "reverse" : "forward");
        memcpy(sv, s->data, sizeof sv);
        k.ctx = ctx; k.s = sv; k.t = (const float *)t->data; k.N = 4; k.V = 10; k.o = o; k.cos = 0;
        for (i = 0; i < 40; i++) {   /* central differences through the float forward */
            float x0 = sv[i];
            double fp, fm;
            sv[i] = x0 + 1e-2f; fp = kd_fd_fn(&k);
            sv[i] = x0 - 1e-2f; fm = kd_fd_fn(&k);
            sv[i] = x0;
            num[i] = (fp - fm) / ((double)(x0 + 1e-2f) - (double)(x0 - 1e-2f));
            ref = fabs(num[i] - g[i]);
            maxd = ref > maxd ? ref : maxd;
        }
        EFF_CHECK(maxd < 2e-4, "%s KL gradient = finite differences (max |diff| %.2g)", rev ? "reverse" : "forward", maxd);
    }
    {   /* the T^2 factor: gradient magnitude stays comparable as T grows */
        float g1[40], g4[40];
        double n1 = 0, n4 = 0;
        int i;
        o.reverse = 0; o.temperature = 1.0f;
        eff_quant_distill_kl_backward(ctx, g1, (const float *)s->data, (const float *)t->data, 4, 10, 1.0f, &o);
        o.temperature = 8.0f;
        eff_quant_distill_kl_backward(ctx, g4, (const float *)s->data, (const float *)t->data, 4, 10, 1.0f, &o);
        for (i = 0; i < 40; i++) { n1 += fabs(g1[i]); n4 += fabs(g4[i]); }
        EFF_CHECK(n4 / n1 > 0.05 && n4 / n1 < 20, "with T^2 the gradient scale at T=8 vs T=1 is %.3g (no 1/T^2 collapse)", n4 / n1);
    }
    {
        fx_entry *hs = fx_get(fx, "cos_hs"), *ht = fx_get(fx, "cos_ht");
        double want = *(double *)fx_get(fx, "cos_loss")->data;
        eff_quant_distill_cosine_forward(ctx, &loss, (const float *)hs->data, (const float *)ht->data, 5, 8);
        eff_quant_distill_cosine_backward(ctx, gc, (const float *)hs->data, (const float *)ht->data, 5, 8, 1.0f);
        EFF_CHECK(fabs(loss - want) <= 1e-6 * fabs(want) && eff_test_nmse_ff(gc, (const float *)fx_get(fx, "cos_grad")->data, 40) < 1e-11,
                  "cosine embedding loss and gradient = torch (loss %.7g)", loss);
    }
    EFF_CHECK_STATUS(ctx, eff_quant_distill_kl_forward(ctx, &loss, sv, sv, 4, 0, NULL), EFF_ERR_INVALID_ARG, "KD V=0");
    o.temperature = -1.0f;
    EFF_CHECK_STATUS(ctx, eff_quant_distill_kl_forward(ctx, &loss, sv, sv, 4, 10, &o), EFF_ERR_INVALID_ARG, "KD T=-1");
}

static void test_svd(eff_ctx *ctx, fx_file *fx) {
    int c;
    for (c = 0; c < 2; c++) {
        int64_t m = c ? 9 : 20, n = c ? 17 : 12, k = m < n ? m : n, i, j, q;
        fx_entry *A = fx_get(fx, c ? "svd_b" : "svd_a"), *Sref = fx_get(fx, c ? "svd_sb" : "svd_sa");
        float U[20 * 12], S[12], Vt[12 * 17], R[20 * 17];
        double worst = 0, orth = 0;
        eff_quant_svd(ctx, (const float *)A->data, m, n, U, S, Vt);
        for (i = 0; i < k; i++) {
            double d = fabs(S[i] - ((double *)Sref->data)[i]) / ((double *)Sref->data)[0];
            worst = d > worst ? d : worst;
        }
        EFF_CHECK(worst < 2e-6, "SVD [%lld x %lld]: singular values = numpy's (max rel. diff %.2g)", (long long)m, (long long)n, worst);
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) {
                double a = 0;
                for (q = 0; q < k; q++) a += (double)U[i * k + q] * S[q] * Vt[q * n + j];
                R[i * n + j] = (float)a;
            }
        for (i = 0; i < k; i++)
            for (j = 0; j < k; j++) {
                double uu = 0, vv = 0;
                for (q = 0; q < m; q++) uu += (double)U[q * k + i] * U[q * k + j];
                for (q = 0; q < n; q++) vv += (double)Vt[i * n + q] * Vt[j * n + q];
                orth = fabs(uu - (i == j)) > orth ? fabs(uu - (i == j)) : orth;
                orth = fabs(vv - (i == j)) > orth ? fabs(vv - (i == j)) : orth;
            }
        EFF_CHECK(eff_test_nmse_ff(R, (const float *)A->data, m * n) < 1e-12 && orth < 1e-5,
                  "SVD [%lld x %lld]: U S Vt reconstructs A, U and V orthonormal (%.2g)", (long long)m, (long long)n, orth);
    }
    {   /* a rank-5 matrix is recovered exactly at rank 5; the error vs rank follows Eckart-Young */
        const int64_t m = 40, n = 30;
        float *L = (float *)malloc(m * 5 * 4), *Rm = (float *)malloc(5 * n * 4), *A = (float *)malloc(m * n * 4);
        float *B = (float *)malloc(m * n * 4), *C = (float *)malloc(m * n * 4), *BC = (float *)malloc(m * n * 4);
        int64_t i, j, q, r, rk = 0;
        double rel = 0, actual, worst = 0;
        eff_test_seed(77);
        eff_test_fill(L, m * 5, 1.0);
        eff_test_fill(Rm, 5 * n, 1.0);
        for (i = 0; i < m; i++) for (j = 0; j < n; j++) { double a = 0; for (q = 0; q < 5; q++) a += (double)L[i * 5 + q] * Rm[q * n + j]; A[i * n + j] = (float)a; }
        eff_quant_lowrank(ctx, A, m, n, 0, 0.999999, B, C, &rk, &rel);
        for (i = 0; i < m; i++) for (j = 0; j < n; j++) { double a = 0; for (q = 0; q < rk; q++) a += (double)B[i * rk + q] * C[q * n + j]; BC[i * n + j] = (float)a; }
        EFF_CHECK(rk == 5 && sqrt(eff_test_nmse_ff(BC, A, m * n)) < 1e-5, "rank-5 matrix: energy rule picks r = %lld, relative error %.2g",
                  (long long)rk, sqrt(eff_test_nmse_ff(BC, A, m * n)));
        eff_test_fill(A, m * n, 1.0);   /* full rank: error vs rank */
        for (r = 1; r <= 30; r += 7) {
            eff_quant_lowrank(ctx, A, m, n, r, 0, B, C, &rk, &rel);
            for (i = 0; i < m; i++) for (j = 0; j < n; j++) { double a = 0; for (q = 0; q < r; q++) a += (double)B[i * r + q] * C[q * n + j]; BC[i * n + j] = (float)a; }
            actual = sqrt(eff_test_nmse_ff(BC, A, m * n));
            worst = fabs(actual - rel) > worst ? fabs(actual - rel) : worst;
        }
        EFF_CHECK(worst < 1e-5, "||A - B C||_F / ||A||_F = sqrt(tail energy) at ranks 1, 8, 15, 22, 29 (max diff %.2g)", worst);
        EFF_CHECK_STATUS(ctx, eff_quant_lowrank(ctx, A, m, n, 31, 0, B, C, NULL, NULL), EFF_ERR_INVALID_ARG, "lowrank rank 31 > min(m, n)");
        free(L); free(Rm); free(A); free(B); free(C); free(BC);
    }
}

static void test_compress(eff_ctx *ctx) {
    fx_file fx = fx_load("compress.efq");
    EFF_CHECK(fx.ok, "compress.efq loads");
    if (!fx.ok) return;
    test_pruning(ctx, &fx);
    test_distill(ctx, &fx);
    test_svd(ctx, &fx);
    fx_free(&fx);
}

int main(void) {
    eff_ctx *ctx;
    EFF_TEST_BEGIN("test_quant");
    if (eff_ctx_create(NULL, &ctx) != EFF_OK) { printf("cannot create context\n"); return 1; }
    printf("  kernels: %s\n", eff_quant_simd_name());
    EFF_CHECK(eff_quant_register(ctx) == EFF_OK, "eff_quant_register");
    test_ggml_fixtures(ctx);
    test_ggml_named(ctx);
    test_ggml_roundtrip(ctx);
    test_vec_dot(ctx);
    test_linear(ctx);
    test_ggml_errors(ctx);
    test_4bit_fixtures(ctx);
    test_4bit_roundtrip(ctx);
    test_4bit_gemv(ctx);
    test_4bit_errors(ctx);
    test_affine(ctx);
    test_affine_errors(ctx);
    test_llm_int8(ctx);
    test_gguf(ctx);
    test_compress(ctx);
    EFF_CHECK(eff_ctx_bytes_in_use(ctx) == 0, "no context memory leaked (%zu bytes in use)", eff_ctx_bytes_in_use(ctx));
    eff_ctx_destroy(ctx);
    return EFF_TEST_END();
}
