/* quant_table.c - one weight matrix, every eff_quant.h format: bits per weight,
   bytes, reconstruction error and the time of one GEMV (one token of decode).

   The matrix is 1024 x 4096 of N(0, 0.02^2) weights with a few large outliers,
   like a transformer projection. Fewer bits cost accuracy; block formats with a
   scale per 32-256 weights (Q*_0, Q4_K, NF4) keep the outliers from ruining the
   rest, a single per-tensor int8 scale does not. Single thread, so the times
   compare formats rather than measure the machine (bench/bench_quant.c does).
   Then two other ways to shrink the same matrix: magnitude and 2:4 pruning
   (sparsity vs error), and truncated SVD (rank vs error; a trained or structured
   matrix has a decaying spectrum, an i.i.d. random one does not). */
#define EFF_IMPLEMENTATION
#include "eff_quant.h"
#include <stdio.h>

#define ROWS 1024
#define COLS 4096

/* fastest of `reps` timed calls, in microseconds */
#define TIME_US(call, out)                                                  \
    do {                                                                    \
        int r_;                                                             \
        (out) = 1e30;                                                       \
        for (r_ = 0; r_ < reps; r_++) {                                     \
            double t_ = eff_time_seconds();                                          \
            call;                                                           \
            t_ = (eff_time_seconds() - t_) * 1e6;                                    \
            (out) = t_ < (out) ? t_ : (out);                                \
        }                                                                   \
    } while (0)

static void row(eff_ctx *ctx, const char *name, double bytes, const float *w, const float *wd, double us) {
    eff_quant_stats st;
    eff_quant_error_stats(ctx, w, wd, (int64_t)ROWS * COLS, &st);
    printf("| %-22s | %6.3f | %8.2f | %9.2e | %7.1f | %8.0f |\n", name, 8.0 * bytes / ((double)ROWS * COLS), bytes / 1048576.0,
           st.nmse, st.sqnr_db, us);
}

int main(void) {
    const int blocks[] = {EFF_Q8_0, EFF_Q6_K, EFF_Q5_0, EFF_Q4_K, EFF_Q4_0};
    eff_ctx *ctx;
    eff_ctx_opts o;
    float *w, *wd, *x, *y;
    eff_tensor W, Wq, X, Y;
    double t;
    int f, i, reps = 30;
    memset(&o, 0, sizeof o);
    o.n_threads = 1;
    o.seed = 42;
    if (eff_ctx_create(&o, &ctx) || eff_quant_register(ctx)) return 1;
    w = (float *)eff_ctx_alloc(ctx, sizeof(float) * ROWS * COLS);
    wd = (float *)eff_ctx_alloc(ctx, sizeof(float) * ROWS * COLS);
    x = (float *)eff_ctx_alloc(ctx, sizeof(float) * COLS);
    y = (float *)eff_ctx_alloc(ctx, sizeof(float) * ROWS);
    if (!w || !wd || !x || !y) return 1;
    eff_rng_fill_normal(eff_ctx_rng(ctx), w, (int64_t)ROWS * COLS, 0.0f, 0.02f);
    for (i = 0; i < 64; i++) w[eff_rng_u64(eff_ctx_rng(ctx)) % ((uint64_t)ROWS * COLS)] = 0.5f;   /* outliers */
    eff_rng_fill_normal(eff_ctx_rng(ctx), x, COLS, 0.0f, 1.0f);
    W = eff_tensor_2d(w, EFF_F32, ROWS, COLS);
    X = eff_tensor_2d(x, EFF_F32, 1, COLS);
    Y = eff_tensor_2d(y, EFF_F32, 1, ROWS);

    printf("W: %d x %d, N(0, 0.02^2) + 64 outliers of 0.5; GEMV on 1 thread (fastest of 30), %s kernels\n\n", ROWS, COLS, eff_quant_simd_name());
    printf("| format                 | bits/w |      MiB | nmse      | SQNR dB | GEMV us  |\n");
    printf("|------------------------|--------|----------|-----------|---------|----------|\n");
    TIME_US(eff_linear_forward(ctx, &Y, &X, &W, NULL), t);
    row(ctx, "f32", 4.0 * ROWS * COLS, w, w, t);

    {   /* int8 / int4: PyTorch-style affine and symmetric quantization */
        const struct { const char *name; int bits, scheme, gran; int64_t gs; } ic[] = {
            {"int8 sym, per tensor", 8, EFF_QSCHEME_SYMMETRIC, EFF_QGRAN_TENSOR, 0},
            {"int8 sym, per channel", 8, EFF_QSCHEME_SYMMETRIC, EFF_QGRAN_CHANNEL, 0},
            {"int4 affine, group 128", 4, EFF_QSCHEME_AFFINE, EFF_QGRAN_GROUP, 128}};
        for (f = 0; f < 3; f++) {
            eff_quant_int q;
            eff_quant_int_opts io;
            memset(&io, 0, sizeof io);
            io.bits = ic[f].bits; io.scheme = ic[f].scheme; io.granularity = ic[f].gran; io.group_size = ic[f].gs;
            eff_quant_int_quantize(ctx, &q, w, ROWS, COLS, &io);
            eff_quant_int_dequantize(ctx, &q, wd);
            row(ctx, ic[f].name, (double)ROWS * COLS * ic[f].bits / 8 + 8.0 * (double)q.ngroups, w, wd, NAN);
            eff_quant_int_free(ctx, &q);
        }
    }
    {   /* LLM.int8(): int8 per output row (absmax), int8 x int8 products */
        eff_quant_llm_int8 q;
        int64_t k;
        eff_quant_llm_int8_weight(ctx, &q, w, ROWS, COLS);
        for (k = 0; k < (int64_t)ROWS * COLS; k++) wd[k] = (float)q.q[k] * (q.scb[k / COLS] / 127.0f);
        TIME_US(eff_quant_llm_int8_matmul(ctx, y, x, 1, &q, NULL, EFF_QUANT_LLM_INT8_THRESHOLD, NULL), t);
        row(ctx, "int8 LLM.int8 (rows)", (double)ROWS * COLS + 4.0 * ROWS, w, wd, t);
        eff_quant_llm_int8_free(ctx, &q);
    }
    for (f = 0; f < 5; f++) {   /* ggml blocks through the dtype table: eff_linear_forward runs on them */
        eff_quant_tensor_quantize(ctx, &Wq, &W, blocks[f]);
        eff_quant_row_dequantize(ctx, blocks[f], Wq.data, wd, (int64_t)ROWS * COLS);
        TIME_US(eff_linear_forward(ctx, &Y, &X, &Wq, NULL), t);
        row(ctx, eff_dtype_name(blocks[f]), (double)eff_tensor_nbytes(&Wq), w, wd, t);
        eff_tensor_free(ctx, &Wq);
    }
    for (f = 0; f < 3; f++) {   /* bitsandbytes 4-bit */
        eff_quant_4bit q;
        eff_quant_4bit_opts qo;
        memset(&qo, 0, sizeof qo);
        qo.quant_type = f == 2 ? EFF_FP4 : EFF_NF4;
        qo.double_quant = f == 1;
        eff_quant_4bit_quantize(ctx, &q, w, ROWS, COLS, &qo);
        eff_quant_4bit_dequantize(ctx, &q, wd);
        TIME_US(eff_quant_4bit_gemv(ctx, &q, x, y, 1, EFF_QUANT_KERNEL_AUTO), t);
        row(ctx, f == 0 ? "nf4 (block 64)" : f == 1 ? "nf4 + double quant" : "fp4 (block 64)", (double)eff_quant_4bit_nbytes(&q), w, wd, t);
        eff_quant_4bit_free(ctx, &q);
    }
    /* the same NF4 codes as a block dtype of the context's table: eff_linear_forward runs on it */
    eff_quant_tensor_quantize(ctx, &Wq, &W, EFF_NF4);
    eff_quant_row_dequantize(ctx, EFF_NF4, Wq.data, wd, (int64_t)ROWS * COLS);
    TIME_US(eff_linear_forward(ctx, &Y, &X, &Wq, NULL), t);
    row(ctx, "nf4 dtype (linear)", (double)eff_tensor_nbytes(&Wq), w, wd, t);
    eff_tensor_free(ctx, &Wq);
    printf("\nnmse = sum (w - dq(q(w)))^2 / sum w^2; SQNR = -10 log10(nmse). The int8/int4 storage rows have no GEMV kernel (nan);\n"
           "LLM.int8 multiplies int8 weights by int8-rounded activations.\n");

    {   /* pruning: zero the smallest weights (by |w| over the whole matrix), or keep 2 of every 4 */
        const double sp[5] = {0.25, 0.5, 0.75, 0.9, 0.95};
        uint8_t *mask = (uint8_t *)eff_ctx_alloc(ctx, (size_t)ROWS * COLS);
        eff_quant_nm nm;
        if (!mask) return 1;
        printf("\n| pruning                  | sparsity | nmse      | GEMV us  |\n");
        printf("|--------------------------|----------|-----------|----------|\n");
        for (f = 0; f < 5; f++) {
            eff_quant_stats st;
            memcpy(wd, w, sizeof(float) * ROWS * COLS);
            eff_quant_prune_magnitude(ctx, mask, w, (int64_t)ROWS * COLS, sp[f]);
            eff_quant_prune_apply(ctx, wd, mask, (int64_t)ROWS * COLS);
            eff_quant_error_stats(ctx, w, wd, (int64_t)ROWS * COLS, &st);
            printf("| magnitude (unstructured) | %7.0f%% | %9.2e | %8s |\n", 100.0 * sp[f], st.nmse, "dense");
        }
        if (eff_quant_nm_prune(ctx, &nm, w, ROWS, COLS, 2, 4) == EFF_OK) {
            eff_quant_stats st;
            eff_quant_nm_decompress(ctx, &nm, wd);
            eff_quant_error_stats(ctx, w, wd, (int64_t)ROWS * COLS, &st);
            TIME_US(eff_quant_nm_matmul(ctx, y, x, 1, &nm, NULL), t);
            printf("| 2:4 semi-structured      | %7.0f%% | %9.2e | %8.0f |\n", 50.0, st.nmse, t);
            eff_quant_nm_free(ctx, &nm);
        }
        printf("nmse of magnitude pruning = the share of sum w^2 in the dropped weights; the 2:4 row multiplies only the kept half.\n");
        eff_ctx_free(ctx, mask);
    }

    {   /* low rank: A ~ B C with B [m, r], C [r, n] from the truncated SVD */
        enum { M_ = 256, N_ = 512, R_ = 16 };
        const int64_t ranks[5] = {8, 16, 32, 64, 128};
        float *A = (float *)eff_ctx_alloc(ctx, sizeof(float) * M_ * N_), *Bm = (float *)eff_ctx_alloc(ctx, sizeof(float) * M_ * N_);
        float *Cm = (float *)eff_ctx_alloc(ctx, sizeof(float) * M_ * N_), *Us = (float *)eff_ctx_alloc(ctx, sizeof(float) * M_ * R_);
        float *Vs = (float *)eff_ctx_alloc(ctx, sizeof(float) * R_ * N_);
        int kind;
        if (!A || !Bm || !Cm || !Us || !Vs) return 1;
        printf("\n| low rank (%d x %d)          | rank | params vs dense | rel. error ||A - BC|| / ||A|| |\n", M_, N_);
        printf("|-------------------------------|------|-----------------|------------------------------|\n");
        for (kind = 0; kind < 2; kind++) {
            int64_t k, j;
            if (kind == 0) memcpy(A, w, sizeof(float) * M_ * N_);   /* the top-left block of W (a rows' prefix) */
            else {   /* rank-16 structure plus 5% noise */
                eff_rng_fill_normal(eff_ctx_rng(ctx), Us, (int64_t)M_ * R_, 0.0f, 1.0f);
                eff_rng_fill_normal(eff_ctx_rng(ctx), Vs, (int64_t)R_ * N_, 0.0f, 1.0f);
                for (k = 0; k < M_; k++)
                    for (j = 0; j < N_; j++) {
                        float acc = 0.0f;
                        int r;
                        for (r = 0; r < R_; r++) acc += Us[k * R_ + r] * Vs[r * N_ + j];
                        A[k * N_ + j] = acc / 4.0f + 0.05f * eff_rng_normal(eff_ctx_rng(ctx));
                    }
            }
            for (f = 0; f < 5; f++) {
                int64_t got;
                double err;
                if (eff_quant_lowrank(ctx, A, M_, N_, ranks[f], 0.0, Bm, Cm, &got, &err) != EFF_OK) return 1;
                printf("| %-29s | %4lld | %14.1f%% | %28.3f |\n", kind == 0 ? "block of W (i.i.d. Gaussian)" : "rank-16 signal + 5% noise",
                       (long long)got, 100.0 * (double)got * (M_ + N_) / ((double)M_ * N_), err);
            }
        }
        eff_ctx_free(ctx, A); eff_ctx_free(ctx, Bm); eff_ctx_free(ctx, Cm); eff_ctx_free(ctx, Us); eff_ctx_free(ctx, Vs);
    }
    eff_ctx_free(ctx, w); eff_ctx_free(ctx, wd); eff_ctx_free(ctx, x); eff_ctx_free(ctx, y);
    eff_ctx_destroy(ctx);
    return 0;
}
