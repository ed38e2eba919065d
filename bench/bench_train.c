/* bench_train.c - training tokens/s and peak bytes of each mode of eff_train.h on the
   "llama-10M" preset (dim 320, 8 layers, GQA 8/4, vocab 256): full fine-tune with AdamW,
   SGD with momentum, bf16 mixed precision AdamW, LOMO (with and without activation
   checkpointing), LoRA and QLoRA (r = 8 on q, v). Each mode runs in its own context, so
   the peak is that mode's (weights + gradients + optimizer state + activations).
   BENCH_STEPS (default 3) timed steps after one warm-up step; BENCH_T (default 128). */
#define EFF_IMPLEMENTATION
#include "eff_train.h"
#include "bench_util.h"

enum { N_MODES = 7 };

static int run(int mode, int64_t B, int64_t T, int steps, double *tok_s, size_t *peak, int64_t *trainable) {
    eff_ctx *ctx;
    eff_ctx_opts co;
    eff_model m;
    eff_model_config c;
    eff_optim opt;
    eff_optim_opts oo;
    eff_lora lora;
    eff_qlora q;
    eff_lomo lomo;
    eff_lomo_opts lm;
    eff_lora_opts lo;
    int32_t *x, *y;
    int64_t i;
    int s;
    double t0 = 0.0;
    memset(&co, 0, sizeof co);
    co.seed = 1;
    if (eff_ctx_create(&co, &ctx)) return 1;
    eff_quant_register(ctx);
    eff_model_config_preset(&c, "llama-10M");
    if (eff_model_init(ctx, &m, &c)) return 1;
    memset(&oo, 0, sizeof oo);
    oo.kind = mode == 1 ? EFF_OPTIM_SGD : EFF_OPTIM_ADAMW;
    oo.momentum = mode == 1 ? 0.9f : 0.0f;
    memset(&lo, 0, sizeof lo);
    lo.r = 8; lo.alpha = 16; lo.targets = "q,v";
    memset(&lm, 0, sizeof lm);
    if (mode == 2) eff_train_mixed_precision(ctx, &m, EFF_BF16);
    if (mode <= 2) {
        eff_model_alloc_grads(ctx, &m);
        eff_optim_init(ctx, &opt, &oo);
        eff_optim_add_model(ctx, &opt, &m, 0, 0);
        *trainable = eff_optim_n_params(&opt);
    } else if (mode <= 4) {
        m.checkpoint = mode == 4;
        eff_lomo_init(ctx, &lomo, &m, &lm);
        *trainable = eff_model_config_n_params(&c);
    } else {
        eff_optim_init(ctx, &opt, &oo);
        if (mode == 5) { eff_lora_attach(ctx, &lora, &m, &lo); eff_lora_add_to_optim(ctx, &lora, &opt, 0); }
        else { eff_qlora_attach(ctx, &q, &m, &lo, NULL); eff_lora_add_to_optim(ctx, &q.lora, &opt, 0); }
        *trainable = eff_optim_n_params(&opt);
    }
    x = (int32_t *)malloc((size_t)(B * T) * sizeof(int32_t));
    y = (int32_t *)malloc((size_t)(B * T) * sizeof(int32_t));
    for (i = 0; i < B * T; i++) { x[i] = (int32_t)((i * 31) % 256); y[i] = (int32_t)((i * 31 + 17) % 256); }
    for (s = 0; s <= steps; s++) {
        if (s == 1) t0 = bench_now();
        if (mode == 3 || mode == 4) eff_lomo_step(ctx, &lomo, x, y, B, T, NULL);
        else {
            eff_model_forward(ctx, &m, x, y, B, T, NULL);
            eff_model_backward(ctx, &m);
            eff_optim_step(ctx, &opt);
        }
    }
    *tok_s = (double)(steps * B * T) / (bench_now() - t0);
    *peak = eff_ctx_bytes_peak(ctx);
    if (mode == 3 || mode == 4) eff_lomo_free(ctx, &lomo); else eff_optim_free(ctx, &opt);
    if (mode == 5) eff_lora_detach(ctx, &lora);
    if (mode == 6) eff_qlora_detach(ctx, &q);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);
    free(x); free(y);
    return 0;
}

int main(void) {
    static const char *names[N_MODES] = {"full, AdamW fp32", "full, SGD + momentum", "full, AdamW bf16 + fp32 master", "LOMO",
                                         "LOMO + checkpointing", "LoRA r=8 q,v", "QLoRA r=8 q,v (NF4+DQ)"};
    int steps = getenv("BENCH_STEPS") ? atoi(getenv("BENCH_STEPS")) : 3, i, nt = 1;
    int64_t B = 4, T = getenv("BENCH_T") ? atoll(getenv("BENCH_T")) : 128;
    eff_model_config c;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    bench_print_machine("bench_train: training step (forward + backward + update) on llama-10M", nt);
    eff_model_config_preset(&c, "llama-10M");
    printf("model: llama-10M, %.2fM parameters; batch %lld x %lld tokens; %d timed steps\n\n", eff_model_config_n_params(&c) / 1e6, (long long)B,
           (long long)T, steps);
    printf("| mode                           | trainable | tokens/s | peak bytes       |\n");
    printf("|--------------------------------|-----------|----------|------------------|\n");
    for (i = 0; i < N_MODES; i++) {
        double tps = 0.0;
        size_t peak = 0;
        int64_t tr = 0;
        if (run(i, B, T, steps, &tps, &peak, &tr)) { printf("| %-30s | failed |\n", names[i]); continue; }
        printf("| %-30s | %8.2fM | %8.0f | %9.1f MiB    |\n", names[i], tr / 1e6, tps, peak / 1048576.0);
        fflush(stdout);
    }
    return 0;
}
