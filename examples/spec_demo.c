/* spec_demo.c - speculative decoding and prefix caching on a pair the demo trains itself.

   A target (8 layers, dim 256) and a draft (2 layers, dim 64, 46x smaller) learn the same
   generated corpus; then the draft is distilled on the target's own greedy continuations
   of corpus snippets (sequence-level distillation: where the corpus leaves a free choice,
   the draft learns which one the target makes). The evaluation prompts are decoded
   greedily three ways, all on this machine in this run: plain target decoding,
   speculative decoding with the draft, and prompt-lookup drafting. Greedy speculative
   output is the target's output token for token (checked); what changes is how many
   target calls it takes. Finally four requests share a system prompt through the prefix
   cache. */
#define EFF_IMPLEMENTATION
#include "eff_infer.h"
#include "demo_common.h"

#define TRY(expr) do { eff_status s_ = (expr); if (s_) { printf("%s: %s\n", #expr, eff_ctx_last_error(ctx)); return 1; } } while (0)

int main(void) {
    eff_ctx *ctx;
    eff_ctx_opts o;
    eff_model target, draft;
    eff_tokenizer tok;
    static char corpus[1 << 17];
    static int32_t ids[1 << 17];
    int64_t n_text, n_ids, p;
    const char *prompts[4] = {"the dog ", "a small child wants ", "my friend finds the ", "the old man carries some "};
    double t_plain = 0, t_spec = 0, t_look = 0;
    int64_t tok_plain = 0, calls_plain = 0, calls_spec = 0, calls_look = 0, drafted = 0, accepted = 0, dcalls = 0, look_dr = 0, look_acc = 0;
    int all_equal = 1;

    memset(&o, 0, sizeof o);
    o.seed = 2024;
    if (eff_ctx_create(&o, &ctx)) return 1;
    TRY(eff_tokenizer_byte(ctx, &tok));
    n_text = demo_corpus(corpus, sizeof corpus, 11, 0);
    TRY(eff_tokenizer_encode(ctx, &tok, corpus, n_text, 0, 0, ids, (int64_t)(sizeof ids / sizeof ids[0]), &n_ids));
    if (demo_spec_pair(ctx, &target, &draft, ids, n_ids, 320, 1) < 0) { printf("training: %s\n", eff_ctx_last_error(ctx)); return 1; }
    printf("target: %.2fM parameters (%.1f MB f32)   draft: %.3fM parameters\n", eff_model_config_n_params(&target.cfg) / 1e6,
           (double)eff_model_weight_bytes(&target) / 1e6, eff_model_config_n_params(&draft.cfg) / 1e6);
    TRY(eff_model_save_hf(ctx, &target, "build/demo_target"));   /* for examples/generate */
    TRY(eff_model_save_hf(ctx, &draft, "build/demo_draft"));

    printf("\ngreedy decoding of 4 prompts x 200 tokens:\n");
    for (p = 0; p < 4; p++) {
        int32_t prompt[64], plain[256], spec[256], look[256];
        int64_t np, n1, n2, n3;
        eff_attn_cache c1, c2, c3, cdr;
        eff_attn_cache_opts co;
        eff_gen_opts g;
        eff_gen_stats s1, s2, s3;
        eff_spec_opts sp;
        memset(&co, 0, sizeof co);
        memset(&g, 0, sizeof g);
        g.max_tokens = 200;
        TRY(eff_tokenizer_encode(ctx, &tok, prompts[p], (int64_t)strlen(prompts[p]), 0, 0, prompt, 64, &np));
        TRY(eff_model_cache_create(ctx, &target, &c1, &co));
        TRY(eff_model_cache_create(ctx, &target, &c2, &co));
        TRY(eff_model_cache_create(ctx, &target, &c3, &co));
        TRY(eff_model_cache_create(ctx, &draft, &cdr, &co));
        TRY(eff_generate(ctx, &target, &c1, 0, prompt, np, &g, plain, 256, &n1, &s1));
        memset(&sp, 0, sizeof sp);
        sp.draft = &draft; sp.draft_cache = &cdr; sp.gamma = 5;
        TRY(eff_generate_spec(ctx, &target, &c2, 0, prompt, np, &g, &sp, spec, 256, &n2, &s2));
        memset(&sp, 0, sizeof sp);
        sp.draft_kind = EFF_DRAFT_PROMPT_LOOKUP; sp.gamma = 6;
        TRY(eff_generate_spec(ctx, &target, &c3, 0, prompt, np, &g, &sp, look, 256, &n3, &s3));
        all_equal &= n1 == n2 && n1 == n3 && !memcmp(plain, spec, (size_t)n1 * 4) && !memcmp(plain, look, (size_t)n1 * 4);
        t_plain += s1.seconds_decode; t_spec += s2.seconds_decode; t_look += s3.seconds_decode;
        tok_plain += n1; calls_plain += s1.target_calls; calls_spec += s2.target_calls; calls_look += s3.target_calls;
        drafted += s2.drafted; accepted += s2.accepted; dcalls += s2.draft_calls; look_dr += s3.drafted; look_acc += s3.accepted;
        if (p == 0) {
            char text[512];
            size_t tl;
            eff_tokenizer_decode(ctx, &tok, plain, n1 < 120 ? n1 : 120, text, sizeof text, &tl);
            printf("  \"%s%s...\"\n", prompts[p], text);
        }
        eff_attn_cache_free(ctx, &c1); eff_attn_cache_free(ctx, &c2); eff_attn_cache_free(ctx, &c3); eff_attn_cache_free(ctx, &cdr);
    }
    {
        double alpha = drafted ? (double)accepted / drafted : 0.0;
        printf("\n| decoding                 | tokens | target calls | tokens/call | draft acceptance | tokens/s | speedup |\n");
        printf("|--------------------------|--------|--------------|-------------|------------------|----------|---------|\n");
        printf("| plain (target only)      | %6lld | %12lld | %11.2f | %16s | %8.0f | %6.2fx |\n", (long long)tok_plain, (long long)calls_plain,
               (double)tok_plain / calls_plain, "-", tok_plain / t_plain, 1.0);
        printf("| speculative, draft model | %6lld | %12lld | %11.2f | %16.2f | %8.0f | %6.2fx |\n", (long long)tok_plain, (long long)calls_spec,
               (double)tok_plain / calls_spec, alpha, tok_plain / t_spec, t_plain / t_spec);
        printf("| speculative, prompt look | %6lld | %12lld | %11.2f | %16.2f | %8.0f | %6.2fx |\n", (long long)tok_plain, (long long)calls_look,
               (double)tok_plain / calls_look, look_dr ? (double)look_acc / look_dr : 0.0, tok_plain / t_look, t_plain / t_look);
        printf("draft calls: %lld; the formula (1 - a^(g+1)) / (1 - a) at a = %.2f, g = 5 predicts %.2f tokens per target call\n",
               (long long)dcalls, alpha, eff_spec_expected_tokens(alpha, 5));
        printf("greedy speculative output == plain greedy output: %s\n", all_equal ? "yes, token for token" : "NO (bug)");
    }

    {   /* prefix caching: four requests behind one system prompt */
        const char *sys = "you are a careful narrator. you describe what people and animals do, one short sentence at a time. ";
        const char *asks[4] = {"the cat ", "a bird finds ", "the dog likes the ", "my friend "};
        eff_attn_cache pc_cache, plain;
        eff_attn_cache_opts co;
        eff_prefix_cache pc;
        int64_t r, total = 0, reused_total = 0;
        double t_pc = 0.0, t_full = 0.0;
        memset(&co, 0, sizeof co);
        co.paged = 1; co.max_seqs = 4;
        TRY(eff_model_cache_create(ctx, &target, &pc_cache, &co));
        co.paged = 0; co.max_seqs = 1;
        TRY(eff_model_cache_create(ctx, &target, &plain, &co));
        TRY(eff_prefix_cache_init(ctx, &pc, &target, &pc_cache, 2, 2));
        printf("\nprefix caching: 4 requests sharing a %zu-byte system prompt\n", strlen(sys));
        printf("| request | prompt tokens | reused | computed | prefill ms (cached) | prefill ms (full) |\n");
        printf("|---------|---------------|--------|----------|---------------------|-------------------|\n");
        for (r = 0; r < 4; r++) {
            char text[512];
            int32_t prompt[512];
            int64_t np, reused, zero = 0, seq = r % 2;
            double t0;
            snprintf(text, sizeof text, "%s%s", sys, asks[r]);
            TRY(eff_tokenizer_encode(ctx, &tok, text, (int64_t)strlen(text), 0, 0, prompt, 512, &np));
            double dt_pc, dt_full;
            t0 = demo_now();
            TRY(eff_prefix_cache_prefill(ctx, &pc, seq, prompt, np, &reused));
            dt_pc = demo_now() - t0;
            TRY(eff_attn_cache_reset(ctx, &plain, 0));
            t0 = demo_now();
            TRY(eff_model_step(ctx, &target, &plain, &zero, 1, prompt, np, NULL));
            dt_full = demo_now() - t0;
            t_pc += dt_pc; t_full += dt_full;
            printf("| %7lld | %13lld | %6lld | %8lld | %19.2f | %17.2f |\n", (long long)r, (long long)np, (long long)reused,
                   (long long)(np - reused), 1e3 * dt_pc, 1e3 * dt_full);
            total += np; reused_total += reused;
        }
        printf("computed %lld of %lld prompt tokens (%.0f%% reused); prefill time %.1f ms with the cache vs %.1f ms without\n",
               (long long)(total - reused_total), (long long)total, 100.0 * reused_total / total, 1e3 * t_pc, 1e3 * t_full);
        eff_prefix_cache_free(ctx, &pc);
        eff_attn_cache_free(ctx, &pc_cache);
        eff_attn_cache_free(ctx, &plain);
    }
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &target);
    eff_model_free(ctx, &draft);
    eff_ctx_destroy(ctx);
    return all_equal ? 0 : 1;
}
