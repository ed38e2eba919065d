/* bench_model.c - the reference transformer's speed on this machine:
   1. training step (forward + backward) tokens/s on a ~10M-parameter Llama;
   2. KV-cached decode tokens/s for llama2.c's stories15M and stories110M shapes (random
      weights) in f32, Q8_0 and Q4_0, next to the bandwidth bound: bytes of weights read
      per token / read bandwidth measured in the same run. */
#define EFF_IMPLEMENTATION
#include "eff_quant.h"
#include "eff_model.h"
#include "bench_util.h"

static double decode_tps(eff_ctx *ctx, eff_model *m, int64_t n_tokens) {
    eff_attn_cache cache;
    eff_attn_cache_opts co;
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8}, tok = 9;
    int64_t seq = 0, i;
    double t0, best = 0.0;
    int rep;
    memset(&co, 0, sizeof co);
    co.max_tokens = m->cfg.max_seq;
    if (n_tokens > m->cfg.max_seq - 9) n_tokens = m->cfg.max_seq - 9;
    if (eff_model_cache_create(ctx, m, &cache, &co)) return 0.0;
    for (rep = 0; rep < 2; rep++) {   /* best of two runs, each from a fresh cache */
        eff_attn_cache_reset(ctx, &cache, 0);
        if (eff_model_step(ctx, m, &cache, &seq, 1, prompt, 8, NULL)) { eff_attn_cache_free(ctx, &cache); return 0.0; }
        t0 = bench_now();
        for (i = 0; i < n_tokens; i++) {
            if (eff_model_step(ctx, m, &cache, &seq, 1, &tok, 1, NULL)) { eff_attn_cache_free(ctx, &cache); return 0.0; }
            tok = (int32_t)((tok * 31 + 7) % m->cfg.vocab_size);
        }
        if (n_tokens / (bench_now() - t0) > best) best = n_tokens / (bench_now() - t0);
    }
    eff_attn_cache_free(ctx, &cache);
    return best;
}

int main(void) {
    eff_ctx *ctx;
    eff_model m;
    eff_model_config c;
    int nt, i, d;
    double rbw;
    const char *shapes[2] = {"stories15M", "stories110M"};
    const int dtypes[4] = {EFF_F32, EFF_Q8_0, EFF_Q4_0, EFF_NF4};
    if (eff_ctx_create(NULL, &ctx)) return 1;
    if (eff_quant_register(ctx)) { printf("eff_quant_register: %s\n", eff_ctx_last_error(ctx)); return 1; }
    nt = eff_ctx_n_threads(ctx);
    bench_print_machine("bench_model: training step and KV-cached decode", nt);
    rbw = bench_read_bw(nt, (size_t)512 << 20);
    printf("read bandwidth (512 MiB working set): %.1f GB/s\n\n", rbw);

    /* 1. training step */
    {
        int64_t B = 4, T = 256, n = B * T, k;
        int32_t *x = (int32_t *)malloc((size_t)n * sizeof(int32_t)), *y = (int32_t *)malloc((size_t)n * sizeof(int32_t));
        double best = 1e30;
        eff_model_counts cnt;
        eff_model_config_preset(&c, "llama-10M");
        eff_model_count(&c, T, &cnt);
        if (eff_model_init(ctx, &m, &c) || eff_model_alloc_grads(ctx, &m)) return 1;
        for (k = 0; k < n; k++) { x[k] = (int32_t)(k * 37 % c.vocab_size); y[k] = (int32_t)(k * 11 % c.vocab_size); }
        for (i = 0; i < 4; i++) {
            double t0 = bench_now();
            eff_model_forward(ctx, &m, x, y, B, T, NULL);
            eff_model_backward(ctx, &m);
            if (i > 0 && bench_now() - t0 < best) best = bench_now() - t0;
        }
        printf("| training step (fwd + bwd)     | params | B x T    | ms/step | tokens/s | GFLOP/s (6 N per token + attention) |\n");
        printf("|-------------------------------|--------|----------|---------|----------|-------------------------------------|\n");
        printf("| llama-10M (dim 320, 8 layers) | %5.1fM | %3lld x %lld | %7.1f | %8.0f | %35.1f |\n\n", cnt.total / 1e6, (long long)B,
               (long long)T, 1e3 * best, n / best, 3.0 * cnt.flops_total * n / best * 1e-9);
        eff_model_free(ctx, &m);
        free(x); free(y);
    }

    /* 2. decode */
    printf("| decode, 1 sequence | dtype | weight MB/token | tokens/s | bound tokens/s | %% of bound | vs f32 |\n");
    printf("|--------------------|-------|-----------------|----------|----------------|------------|--------|\n");
    for (i = 0; i < 2; i++) {
        double f32_tps = 0.0;
        for (d = 0; d < 4; d++) {
            double tps, mb, bound;
            eff_model_config_preset(&c, shapes[i]);
            if (eff_model_init(ctx, &m, &c)) return 1;
            if (dtypes[d] != EFF_F32 && eff_model_quantize(ctx, &m, dtypes[d])) {
                if (eff_ctx_last_status(ctx) != EFF_ERR_SHAPE) { printf("quantize: %s\n", eff_ctx_last_error(ctx)); return 1; }
                printf("| %-18s | %-5s | rows are not whole %lld-element blocks (dim %lld)\n", shapes[i], eff_dtype_name(dtypes[d]),
                       (long long)eff_dtype_blck_size(dtypes[d]), (long long)m.cfg.dim);
                eff_model_free(ctx, &m);
                continue;
            }
            mb = (double)eff_model_weight_bytes(&m) / 1e6;
            tps = decode_tps(ctx, &m, i == 0 ? 128 : 48);
            bound = rbw * 1e3 / mb;
            if (d == 0) f32_tps = tps;
            printf("| %-18s | %-5s | %15.1f | %8.1f | %14.1f | %9.0f%% | %5.2fx |\n", shapes[i], eff_dtype_name(dtypes[d]), mb, tps, bound,
                   100.0 * tps / bound, tps / f32_tps);
            eff_model_free(ctx, &m);
        }
    }
    eff_ctx_destroy(ctx);
    return 0;
}
