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

#endif /* EFF_DEMO_COMMON_H */
