/* demo_common.h - what the demos share: the generated corpus (sentences from a tiny
   grammar, deterministic for a seed) and a plain AdamW training loop over it. */
#ifndef EFF_DEMO_COMMON_H
#define EFF_DEMO_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define DEMO_FN static __attribute__((unused))
#else
#define DEMO_FN static
#endif

DEMO_FN double demo_now(void) { return eff_time_seconds(); }

/* Sentences "<subject> <verb> <object> <place>." from fixed word lists; style 0 and 1
   are two grammars with disjoint words (train_demo pre-trains on one, fine-tunes on the other). */
DEMO_FN int64_t demo_corpus(char *buf, int64_t cap, uint64_t seed, int style) {
    static const char *subj[2][6] = {{"the cat", "the dog", "a bird", "my friend", "the old man", "a small child"},
                                     {"the robot", "a pilot", "the queen", "our teacher", "a sailor", "the baker"}};
    static const char *verb[2][6] = {{"sees", "likes", "finds", "draws", "wants", "carries"},
                                     {"builds", "repairs", "paints", "sells", "opens", "guards"}};
    static const char *obj[2][6] = {{"the red ball", "a green apple", "the big box", "a blue hat", "the little boat", "some warm bread"},
                                    {"a silver engine", "the old bridge", "a tall tower", "the night market", "a wooden door", "the city gate"}};
    static const char *tail[2][6] = {{"today", "at home", "in the park", "by the river", "every morning", "with joy"},
                                     {"at dawn", "before the storm", "for the king", "in the harbor", "after lunch", "without a word"}};
    eff_rng r;
    int64_t n = 0;
    style = style ? 1 : 0;
    eff_rng_seed(&r, seed);
    while (n + 96 < cap)
        n += snprintf(buf + n, (size_t)(cap - n), "%s %s %s %s. ", subj[style][eff_rng_u64(&r) % 6], verb[style][eff_rng_u64(&r) % 6],
                      obj[style][eff_rng_u64(&r) % 6], tail[style][eff_rng_u64(&r) % 6]);
    return n;
}

/* A small byte-level Llama configuration. */
DEMO_FN eff_model_config demo_llama(int64_t dim, int64_t layers, int64_t heads, int64_t kv, int64_t hidden, int64_t max_seq) {
    eff_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.vocab_size = 256; c.max_seq = max_seq; c.dim = dim; c.n_layers = layers; c.n_heads = heads;
    c.n_kv_heads = kv; c.hidden_dim = hidden;
    return c;
}

/* Trains m for `steps` AdamW steps on random windows of ids; prints the loss now and then.
   Returns the last loss (or -1 on error). */
DEMO_FN float demo_train(eff_ctx *ctx, eff_model *m, const int32_t *ids, int64_t n_ids, int64_t B, int64_t T, int64_t steps, float lr,
                        const char *label) {
    size_t np = m->n_params > 0 ? (size_t)m->n_params : 1, nbt = B * T > 0 ? (size_t)(B * T) : 1;
    float **mom = (float **)calloc(np, sizeof(float *)), **var = (float **)calloc(np, sizeof(float *));
    int32_t *x = (int32_t *)malloc(nbt * sizeof(int32_t)), *y = (int32_t *)malloc(nbt * sizeof(int32_t));
    eff_adamw_opts adam;
    float loss = -1.0f;
    int64_t i, b, step;
    double t0 = demo_now();
    if (!m->grads.base && eff_model_alloc_grads(ctx, m) != EFF_OK) return -1.0f;
    for (i = 0; i < m->n_params; i++) {
        int64_t ne = eff_tensor_nelements(m->params[i].w);
        mom[i] = (float *)calloc(ne > 0 ? (size_t)ne : 1, sizeof(float));
        var[i] = (float *)calloc(ne > 0 ? (size_t)ne : 1, sizeof(float));
    }
    memset(&adam, 0, sizeof adam);
    adam.lr = lr; adam.beta2 = 0.95f; adam.weight_decay = 0.01f;
    for (step = 1; step <= steps; step++) {
        for (b = 0; b < B; b++) {
            int64_t off = (int64_t)(eff_rng_u64(eff_ctx_rng(ctx)) % (uint64_t)(n_ids - T - 1));
            for (i = 0; i < T; i++) { x[b * T + i] = ids[off + i]; y[b * T + i] = ids[off + i + 1]; }
        }
        eff_model_zero_grads(m);
        if (eff_model_forward(ctx, m, x, y, B, T, &loss) || eff_model_backward(ctx, m)) { loss = -1.0f; break; }
        adam.step = step;
        adam.lr = lr * (step < steps / 2 ? 1.0f : 0.3f);   /* a short decay at the end */
        for (i = 0; i < m->n_params; i++)
            eff_adamw_step(ctx, &adam, eff_tensor_nelements(m->params[i].w), m->params[i].w->data, EFF_F32, NULL, m->params[i].g->data, EFF_F32,
                           mom[i], var[i]);
        if (label && (step % (steps / 4) == 0 || step == 1))
            printf("  %-7s step %4lld  loss %.4f  (%.0f tokens/s)\n", label, (long long)step, (double)loss, (double)(step * B * T) / (demo_now() - t0));
    }
    for (i = 0; i < m->n_params; i++) { free(mom[i]); free(var[i]); }
    free(mom); free(var); free(x); free(y);
    return loss;
}

#ifdef EFF_INFER_H
/* The speculative-decoding pair of spec_demo and bench_infer: a target (8 layers, dim
   256) and a 46x smaller draft (2 layers, dim 64) trained on ids with 256-token windows
   (the positions generation reaches), then the draft distilled on the target's own
   greedy continuations of 48 corpus snippets (sequence-level distillation: where the
   corpus leaves a free choice, the draft learns the one the target makes). verbose
   prints the losses. Returns 0, or -1 with the error in ctx. */
DEMO_FN int demo_spec_pair(eff_ctx *ctx, eff_model *target, eff_model *draft, const int32_t *ids, int64_t n_ids, int64_t max_seq,
                           int verbose) {
    static int32_t dist[48 * 224];
    eff_model_config ct = demo_llama(256, 8, 8, 2, 704, max_seq), cd = demo_llama(64, 2, 4, 2, 176, max_seq);
    int64_t nd = 0, k, no;
    double t0;
    if (eff_model_init(ctx, target, &ct) || eff_model_init(ctx, draft, &cd)) return -1;
    if (demo_train(ctx, target, ids, n_ids, 2, 256, 600, 3e-3f, verbose ? "target" : NULL) < 0) return -1;
    if (demo_train(ctx, draft, ids, n_ids, 2, 256, 400, 4e-3f, verbose ? "draft" : NULL) < 0) return -1;
    t0 = demo_now();
    for (k = 0; k < 48; k++) {
        eff_attn_cache c;
        eff_attn_cache_opts co;
        eff_gen_opts g;
        int64_t off = (int64_t)(eff_rng_u64(eff_ctx_rng(ctx)) % (uint64_t)(n_ids - 64));
        while (ids[off] != ' ') off++;   /* start at a word */
        memcpy(dist + nd, ids + off + 1, 24 * sizeof(int32_t));
        memset(&co, 0, sizeof co);
        memset(&g, 0, sizeof g);
        g.max_tokens = 200;
        if (eff_model_cache_create(ctx, target, &c, &co)) return -1;
        if (eff_generate(ctx, target, &c, 0, dist + nd, 24, &g, dist + nd + 24, 200, &no, NULL)) { eff_attn_cache_free(ctx, &c); return -1; }
        eff_attn_cache_free(ctx, &c);
        nd += 24 + no;
    }
    if (verbose) printf("  distillation set: %lld tokens of target greedy text (%.1f s)\n", (long long)nd, demo_now() - t0);
    return demo_train(ctx, draft, dist, nd, 2, 224, 200, 2e-3f, verbose ? "distill" : NULL) < 0 ? -1 : 0;
}
#endif

#endif /* EFF_DEMO_COMMON_H */
