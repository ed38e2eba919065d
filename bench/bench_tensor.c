/* bench_tensor.c - sgemm speed: eff vs OpenBLAS (when installed) vs the naive
   triple loop, on square and transformer shapes, in one run, against the fp32
   FMA peak and read bandwidth measured in the same run. */
#define EFF_IMPLEMENTATION
#include "eff_tensor.h"
#include "bench_util.h"
#ifdef EFF_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct { const char *what; int64_t M, N, K; int tA, tB; } shape;

static double time_eff(eff_ctx *ctx, const shape *s, const float *A, const float *B, float *C, int reps) {
    double best = 1e30;
    int r;
    int64_t lda = s->tA ? s->M : s->K, ldb = s->tB ? s->K : s->N;
    eff_sgemm(ctx, s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);   /* warm up */
    for (r = 0; r < reps; r++) {
        double t0 = bench_now(), dt;
        eff_sgemm(ctx, s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        dt = bench_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

#ifdef EFF_HAVE_OPENBLAS
static double time_blas(const shape *s, const float *A, const float *B, float *C, int reps) {
    double best = 1e30;
    int r;
    int lda = (int)(s->tA ? s->M : s->K), ldb = (int)(s->tB ? s->K : s->N);
    for (r = 0; r <= reps; r++) {
        double t0 = bench_now(), dt;
        cblas_sgemm(CblasRowMajor, s->tA ? CblasTrans : CblasNoTrans, s->tB ? CblasTrans : CblasNoTrans, (int)s->M, (int)s->N,
                    (int)s->K, 1.0f, A, lda, B, ldb, 0.0f, C, (int)s->N);
        dt = bench_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    return best;
}
#endif

int main(void) {
    static const shape shapes[] = {
        {"square", 1024, 1024, 1024, 0, 0},
        {"square", 2048, 2048, 2048, 0, 0},
        {"qkv/out proj  x W^T", 512, 768, 768, 0, 1},
        {"MLP up        x W^T", 512, 3072, 768, 0, 1},
        {"MLP down      x W^T", 512, 768, 3072, 0, 1},
        {"dW = dy^T x", 768, 768, 512, 1, 0},
        {"odd", 1031, 517, 1009, 0, 0},
        {"decode GEMV   x W^T", 1, 4096, 4096, 0, 1},
    };
    eff_ctx *ctx;
    int nt, i;
    double peak, rbw;
    float *A, *B, *C;
    size_t maxe = (size_t)2048 * 2048;
    if (eff_ctx_create(NULL, &ctx)) return 1;
    nt = eff_ctx_n_threads(ctx);
    bench_print_machine("bench_tensor: sgemm (C = op(A) op(B), fp32, row-major)", nt);
    peak = bench_fma_peak(nt);
    rbw = bench_read_bw(nt, (size_t)512 << 20);
    printf("measured fp32 FMA peak: %.1f GFLOP/s on %d threads | read bandwidth (512 MiB): %.1f GB/s\n", peak, nt, rbw);
#ifdef EFF_HAVE_OPENBLAS
    printf("peer: OpenBLAS cblas_sgemm in the same process (its own threads; OPENBLAS_NUM_THREADS=%s)\n",
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "default");
#else
    printf("peer: OpenBLAS not found at build time (apt-get install libopenblas-dev); its column is empty\n");
#endif
    A = (float *)malloc(maxe * sizeof(float));
    B = (float *)malloc(maxe * 4 * sizeof(float));
    C = (float *)malloc(maxe * sizeof(float));
    if (!A || !B || !C) return 1;
    eff_rng_fill_uniform(eff_ctx_rng(ctx), A, (int64_t)maxe, -1.0f, 1.0f);
    eff_rng_fill_uniform(eff_ctx_rng(ctx), B, (int64_t)maxe * 4, -1.0f, 1.0f);

    printf("\n| %-20s | %-16s | %9s | %6s | %9s | %8s | %9s |\n", "shape", "M x N x K", "eff GF/s", "% peak", "BLAS GF/s", "eff/BLAS",
           "naive GF/s");
    printf("|%s|%s|%s|%s|%s|%s|%s|\n", "----------------------", "------------------", "-----------", "--------", "-----------", "----------",
           "------------");
    for (i = 0; i < (int)(sizeof shapes / sizeof shapes[0]); i++) {
        const shape *s = &shapes[i];
        double flops = 2.0 * (double)s->M * (double)s->N * (double)s->K, te, gfe, gfb = 0.0, gfn = 0.0;
        int reps = flops > 4e9 ? 3 : 10;
        char dims[64];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s->M, (long long)s->N, (long long)s->K);
        te = time_eff(ctx, s, A, B, C, reps);
        gfe = flops / te * 1e-9;
#ifdef EFF_HAVE_OPENBLAS
        gfb = flops / time_blas(s, A, B, C, reps) * 1e-9;
#endif
        if (flops <= 2.2e9) {   /* the naive loop once, where it finishes in a few seconds */
            double t0 = bench_now();
            eff_sgemm_naive(s->tA, s->tB, s->M, s->N, s->K, 1.0f, A, s->tA ? s->M : s->K, B, s->tB ? s->K : s->N, 0.0f, C, s->N);
            gfn = flops / (bench_now() - t0) * 1e-9;
        }
        printf("| %-20s | %-16s | %9.1f | %5.0f%% | ", s->what, dims, gfe, 100.0 * gfe / peak);
        if (gfb > 0) printf("%9.1f | %7.2fx | ", gfb, gfe / gfb); else printf("%9s | %8s | ", "-", "-");
        if (gfn > 0) printf("%10.2f |\n", gfn); else printf("%10s |\n", "-");
        if (s->M == 1) printf("|   (GEMV reads %.0f MiB of B: eff %.1f GB/s = %.0f%% of the measured read bandwidth)\n",
                             (double)(s->N * s->K * 4) / 1048576.0, (double)(s->N * s->K * 4) / te * 1e-9,
                             100.0 * (double)(s->N * s->K * 4) / te * 1e-9 / rbw);
    }
    free(A); free(B); free(C);
    eff_ctx_destroy(ctx);
    return 0;
}
