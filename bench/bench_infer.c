/* bench_infer.c - generation speed on this machine, one run:
   1. plain greedy decoding vs speculative decoding with a trained draft for gamma 1..8
      vs prompt-lookup drafting (tokens/s, acceptance, tokens per target call);
   2. prefix-cache hit rates for requests sharing system prompts;
   3. continuous-batching throughput vs batch size.
   The target/draft pair is trained here on the demos' generated corpus (as
   examples/spec_demo.c does), so acceptance rates are those of a real pair. */
#define EFF_IMPLEMENTATION
#include "eff_infer.h"
#include "bench_util.h"
#include "../examples/demo_common.h"

int main(void) {
    eff_ctx *ctx;
    eff_model t, d;
    eff_tokenizer tok;
    static char corpus[1 << 17];
    static int32_t ids[1 << 17];
    int64_t n_ids, n_text, gamma;
    int32_t prompt[32];
    int64_t np;
    double plain_tps = 0.0;
    const int64_t NTOK = 240;
    if (eff_ctx_create(NULL, &ctx)) return 1;
    bench_print_machine("bench_infer: speculative decoding, prefix caching, batching", eff_ctx_n_threads(ctx));
    eff_tokenizer_byte(ctx, &tok);
    n_text = demo_corpus(corpus, sizeof corpus, 11, 0);
    eff_tokenizer_encode(ctx, &tok, corpus, n_text, 0, 0, ids, (int64_t)(sizeof ids / sizeof ids[0]), &n_ids);
    printf("training the pair of examples/spec_demo.c (demo_spec_pair)...\n");
    if (demo_spec_pair(ctx, &t, &d, ids, n_ids, 512, 0) < 0) { printf("training: %s\n", eff_ctx_last_error(ctx)); return 1; }
    printf("target %.2fM, draft %.3fM parameters\n", eff_model_config_n_params(&t.cfg) / 1e6, eff_model_config_n_params(&d.cfg) / 1e6);
    eff_tokenizer_encode(ctx, &tok, "the old man ", 12, 0, 0, prompt, 32, &np);

    printf("\n| greedy decoding, %lld tokens  | gamma | tokens/s | speedup | acceptance | tokens/target call | formula |\n", (long long)NTOK);
    printf("|-------------------------------|-------|----------|---------|------------|--------------------|---------|\n");
    for (gamma = 0; gamma <= 9; gamma++) {   /* 0: plain; 1..8: draft model; 9: prompt lookup (gamma 6) */
        eff_attn_cache c1, c2;
        eff_attn_cache_opts co;
        eff_gen_opts g;
        eff_gen_stats st;
        int32_t out[512];
        int64_t n;
        double tps, a;
        memset(&co, 0, sizeof co);
        memset(&g, 0, sizeof g);
        g.max_tokens = NTOK;
        eff_model_cache_create(ctx, &t, &c1, &co);
        eff_model_cache_create(ctx, &d, &c2, &co);
        if (gamma == 0) {
            eff_generate(ctx, &t, &c1, 0, prompt, np, &g, out, 512, &n, &st);
        } else {
            eff_spec_opts sp;
            memset(&sp, 0, sizeof sp);
            if (gamma <= 8) { sp.draft = &d; sp.draft_cache = &c2; sp.gamma = gamma; }
            else { sp.draft_kind = EFF_DRAFT_PROMPT_LOOKUP; sp.gamma = 6; }
            eff_generate_spec(ctx, &t, &c1, 0, prompt, np, &g, &sp, out, 512, &n, &st);
        }
        tps = n / st.seconds_decode;
        if (gamma == 0) plain_tps = tps;
        a = st.drafted ? (double)st.accepted / st.drafted : 0.0;
        if (gamma == 0) printf("| plain                         |     - | %8.0f |   1.00x |          - |               1.00 |       - |\n", tps);
        else printf("| %-29s | %5lld | %8.0f | %6.2fx | %10.2f | %18.2f | %7.2f |\n", gamma <= 8 ? "speculative, draft model" : "speculative, prompt lookup",
                    (long long)(gamma <= 8 ? gamma : 6), tps, tps / plain_tps, a, (double)n / (st.target_calls ? st.target_calls : 1),
                    eff_spec_expected_tokens(a, gamma <= 8 ? gamma : 6));
        eff_attn_cache_free(ctx, &c1);
        eff_attn_cache_free(ctx, &c2);
    }

    {   /* prefix caching: 12 requests over 3 system prompts, 2 retained slots */
        const char *sys[3] = {"you describe animals. ", "you are a careful narrator of small scenes at home and in the park. ",
                              "short answers only, one sentence each, no questions. "};
        const char *ask[4] = {"the cat ", "a bird ", "my friend ", "the dog "};
        eff_attn_cache c;
        eff_attn_cache_opts co;
        eff_prefix_cache pc;
        int64_t r, total = 0;
        double t0;
        memset(&co, 0, sizeof co);
        co.paged = 1; co.max_seqs = 4;
        eff_model_cache_create(ctx, &t, &c, &co);
        eff_prefix_cache_init(ctx, &pc, &t, &c, 1, 3);
        t0 = bench_now();
        for (r = 0; r < 12; r++) {
            char text[256];
            int32_t p[256];
            int64_t n;
            snprintf(text, sizeof text, "%s%s", sys[r % 3], ask[r / 3]);
            eff_tokenizer_encode(ctx, &tok, text, (int64_t)strlen(text), 0, 0, p, 256, &n);
            eff_prefix_cache_prefill(ctx, &pc, 0, p, n, NULL);
            total += n;
        }
        printf("\nprefix cache: 12 requests over 3 system prompts, 3 slots: %lld hits, %lld misses, %lld of %lld prompt tokens reused (%.0f%%), %.1f ms\n",
               (long long)pc.hits, (long long)pc.misses, (long long)pc.tokens_reused, (long long)total, 100.0 * pc.tokens_reused / total,
               1e3 * (bench_now() - t0));
        eff_prefix_cache_free(ctx, &pc);
        eff_attn_cache_free(ctx, &c);
    }

    {   /* batching */
        int64_t bs;
        printf("\n| batch size | decode steps | tokens | tokens/s | vs batch 1 |\n|------------|--------------|--------|----------|------------|\n");
        double base = 0.0;
        for (bs = 1; bs <= 8; bs *= 2) {
            eff_attn_cache c;
            eff_attn_cache_opts co;
            eff_batch b;
            eff_gen_opts g;
            int64_t i, active = 0;
            double t0, tps;
            memset(&co, 0, sizeof co);
            co.paged = 1; co.max_seqs = bs;
            eff_model_cache_create(ctx, &t, &c, &co);
            eff_batch_init(ctx, &b, &t, &c);
            memset(&g, 0, sizeof g);
            g.max_tokens = 64;
            for (i = 0; i < bs; i++) eff_batch_add(ctx, &b, prompt, np, &g, NULL);
            t0 = bench_now();
            do { eff_batch_step(ctx, &b, &active); } while (active > 0);
            tps = b.tokens / (bench_now() - t0);
            if (bs == 1) base = tps;
            printf("| %10lld | %12lld | %6lld | %8.0f | %9.2fx |\n", (long long)bs, (long long)b.steps, (long long)b.tokens, tps, tps / base);
            eff_batch_free(ctx, &b);
            eff_attn_cache_free(ctx, &c);
        }
    }
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &t);
    eff_model_free(ctx, &d);
    eff_ctx_destroy(ctx);
    return 0;
}
