/* model_demo.c - the reference transformer end to end.

   1. Where the parameters and FLOPs of GPT-2 small/medium/large live: attention vs MLP
      vs embeddings, per token at context 1024 (eff_model_count).
   2. A small Llama-style model (RMSNorm, RoPE, SwiGLU, GQA) with the byte-level
      tokenizer, trained for a few hundred steps with AdamW on a generated corpus of
      simple sentences: forward, backward, optimizer step, loss falling, tokens/s.
   3. Greedy generation through the KV cache (eff_model_step), with tokens/s. */
#define EFF_IMPLEMENTATION
#include "eff_model.h"

#include "demo_common.h"

#define TRY(expr) do { eff_status s_ = (expr); if (s_) { printf("%s: %s\n", #expr, eff_ctx_last_error(ctx)); return 1; } } while (0)

int main(void) {
    eff_ctx *ctx;
    eff_ctx_opts o;
    eff_model m;
    eff_model_config c;
    eff_tokenizer tok;
    enum { B = 4, T = 160, STEPS = 300 };   /* windows as long as the generation below: RoPE positions past T were never trained */
    static char corpus[1 << 16];
    static int32_t ids[1 << 16];
    int64_t n_text, n_ids, i;
    const char *names[3] = {"gpt2", "gpt2-medium", "gpt2-large"};

    memset(&o, 0, sizeof o);
    o.seed = 1337;
    if (eff_ctx_create(&o, &ctx)) return 1;

    /* 1. the parameter and FLOP table */
    printf("Where GPT-2's parameters and forward FLOPs per token (context 1024) live:\n\n");
    printf("| model       |  params | embed | attention |   MLP | attn FLOPs (proj + scores) | MLP FLOPs | head FLOPs |\n");
    printf("|-------------|---------|-------|-----------|-------|----------------------------|-----------|------------|\n");
    for (i = 0; i < 3; i++) {
        eff_model_counts k;
        eff_model_config_preset(&c, names[i]);
        eff_model_count(&c, 1024, &k);
        printf("| %-11s | %6.0fM | %4.1f%% | %8.1f%% | %4.1f%% | %9.2f + %5.2f GFLOP (%2.0f%%) | %5.2f GF (%2.0f%%) | %4.2f GF |\n", names[i],
               k.total / 1e6, 100.0 * k.embedding / k.total, 100.0 * k.attention / k.total, 100.0 * k.mlp / k.total,
               k.flops_attn_proj / 1e9, k.flops_attn_scores / 1e9, 100.0 * (k.flops_attn_proj + k.flops_attn_scores) / k.flops_total,
               k.flops_mlp / 1e9, 100.0 * k.flops_mlp / k.flops_total, k.flops_head / 1e9);
    }
    printf("\nThe MLP holds two thirds of each block's weights; attention's T^2 term grows with context.\n\n");

    /* 2. train a small model on the corpus */
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.vocab_size = 256; c.max_seq = 256; c.dim = 128; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2;
    c.hidden_dim = 352;
    TRY(eff_model_init(ctx, &m, &c));
    TRY(eff_model_alloc_grads(ctx, &m));
    TRY(eff_tokenizer_byte(ctx, &tok));
    n_text = demo_corpus(corpus, sizeof corpus, 7, 0);
    TRY(eff_tokenizer_encode(ctx, &tok, corpus, n_text, 0, 0, ids, (int64_t)(sizeof ids / sizeof ids[0]), &n_ids));
    printf("model: Llama-style, dim %lld, %lld layers, %lld heads (%lld kv), %.2fM parameters, byte tokenizer\n", (long long)m.cfg.dim,
           (long long)m.cfg.n_layers, (long long)m.cfg.n_heads, (long long)m.cfg.n_kv_heads, eff_model_config_n_params(&m.cfg) / 1e6);
    printf("corpus: %lld bytes of generated sentences, e.g. \"%.60s...\"\n\n", (long long)n_text, corpus);
    {
        double t0 = demo_now();
        float loss = demo_train(ctx, &m, ids, n_ids, B, T, STEPS, 3e-3f, "train");
        if (loss < 0) { printf("training failed: %s\n", eff_ctx_last_error(ctx)); return 1; }
        printf("  %d steps of %d x %d tokens in %.1f s; final loss %.4f (a uniform guess over 256 bytes: %.2f)\n\n", STEPS, B, T,
               demo_now() - t0, (double)loss, log(256.0));
    }

    /* 3. greedy generation through the KV cache */
    {
        const char *prompt = "the old man";
        eff_attn_cache cache;
        eff_attn_cache_opts co;
        int32_t out[200], pids[64];
        int64_t np, n_out = 0, seq = 0, steps = 120;
        char text[512];
        size_t tl;
        double t0, t1;
        (void)i;
        memset(&co, 0, sizeof co);
        co.max_tokens = m.cfg.max_seq;
        TRY(eff_model_cache_create(ctx, &m, &cache, &co));
        TRY(eff_tokenizer_encode(ctx, &tok, prompt, (int64_t)strlen(prompt), 0, 0, pids, 64, &np));
        t0 = demo_now();
        TRY(eff_model_step(ctx, &m, &cache, &seq, 1, pids, np, NULL));   /* prefill */
        t1 = demo_now();
        for (i = 0; i < steps; i++) {
            const float *lg = (const float *)m.acts.logits.data + (m.acts.T - 1) * m.cfg.vocab_size;
            int32_t best = 0, v;
            for (v = 1; v < m.cfg.vocab_size; v++) if (lg[v] > lg[best]) best = v;
            out[n_out++] = best;
            TRY(eff_model_step(ctx, &m, &cache, &seq, 1, &best, 1, NULL));
        }
        eff_tokenizer_decode(ctx, &tok, out, n_out, text, sizeof text, &tl);
        printf("greedy continuation of \"%s\" through the KV cache:\n  %s%s\n", prompt, prompt, text);
        printf("prefill %lld tokens: %.2f ms; decode: %.0f tokens/s\n", (long long)np, 1e3 * (t1 - t0), (double)steps / (demo_now() - t1));
        eff_attn_cache_free(ctx, &cache);
    }
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);
    return 0;
}
