/* sgemm_speed.c - why a packed, register-blocked sgemm matters.

   C = A B for square n x n matrices, three ways: the textbook triple loop
   (eff_sgemm_naive: one multiply-add per loaded element), the same loop with
   the k loop moved inside so rows stream (i-k-j order), and eff_sgemm (panels
   packed to fit the caches, a 14 x 32 tile of C kept in AVX-512 registers,
   OpenMP over blocks). The table shows GFLOP/s and the speedup. */
#define EFF_IMPLEMENTATION
#include "eff_tensor.h"
#include <stdio.h>
#include <stdlib.h>

/* i-k-j: the innermost loop walks rows of B and C contiguously. */
static void gemm_ikj(int64_t n, const float *A, const float *B, float *C) {
    int64_t i, j, k;
    for (i = 0; i < n * n; i++) C[i] = 0.0f;
    for (i = 0; i < n; i++)
        for (k = 0; k < n; k++) {
            float a = A[i * n + k];
            for (j = 0; j < n; j++) C[i * n + j] += a * B[k * n + j];
        }
}

int main(void) {
    static const int64_t sizes[] = {64, 128, 256, 512, 1024};
    eff_ctx *ctx;
    int s;
    if (eff_ctx_create(NULL, &ctx)) return 1;
    printf("C = A B, fp32, %d threads, SIMD: %s\n\n", eff_ctx_n_threads(ctx), EFF_SIMD_NAME);
    printf("%6s | %12s | %12s | %12s | %9s\n", "n", "naive GF/s", "i-k-j GF/s", "eff GF/s", "speedup");
    printf("-------+--------------+--------------+--------------+----------\n");
    for (s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); s++) {
        int64_t n = sizes[s];
        float *A = (float *)malloc((size_t)(n * n) * sizeof(float)), *B = (float *)malloc((size_t)(n * n) * sizeof(float));
        float *C = (float *)malloc((size_t)(n * n) * sizeof(float));
        double flops = 2.0 * (double)n * n * n, t, t_naive, t_ikj, t_eff = 1e30;
        int r;
        if (!A || !B || !C) return 1;
        eff_rng_fill_uniform(eff_ctx_rng(ctx), A, n * n, -1.0f, 1.0f);
        eff_rng_fill_uniform(eff_ctx_rng(ctx), B, n * n, -1.0f, 1.0f);
        t = eff_time_seconds(); eff_sgemm_naive(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n); t_naive = eff_time_seconds() - t;
        t = eff_time_seconds(); gemm_ikj(n, A, B, C); t_ikj = eff_time_seconds() - t;
        for (r = 0; r < 5; r++) {
            t = eff_time_seconds();
            if (eff_sgemm(ctx, 0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n)) return 1;
            t = eff_time_seconds() - t;
            if (t < t_eff) t_eff = t;
        }
        printf("%6lld | %12.2f | %12.2f | %12.1f | %8.0fx\n", (long long)n, flops / t_naive * 1e-9, flops / t_ikj * 1e-9,
               flops / t_eff * 1e-9, t_naive / t_eff);
        free(A); free(B); free(C);
    }
    eff_ctx_destroy(ctx);
    return 0;
}
