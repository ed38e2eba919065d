/* test_infer.c - samplers, generation, speculative decoding, prefix caching and
   continuous batching on small random eff models. */
#define EFF_IMPLEMENTATION
#include "eff_infer.h"
#include "eff_test.h"

static int quick(void) { return getenv("EFF_TEST_QUICK") != NULL; }

/* ---- samplers against a float64 reference of the documented chain ---- */
static void ref_probs(const eff_sampler_opts *o, const float *logits, int64_t V, const int32_t *hist, int64_t nh, double *p) {
    double w[64], mx = -1e300, sum = 0.0;
    int64_t i, j, order[64], keep;
    int cnt[64] = {0};
    for (i = 0; i < V; i++) w[i] = logits[i];
    for (i = (o->penalty_last_n > 0 && nh > o->penalty_last_n ? nh - o->penalty_last_n : 0); i < nh; i++) cnt[hist[i]]++;
    for (i = 0; i < V; i++) {
        if (!cnt[i]) continue;
        if (o->repetition_penalty > 0 && o->repetition_penalty != 1) w[i] = w[i] > 0 ? w[i] / o->repetition_penalty : w[i] * o->repetition_penalty;
        w[i] -= o->presence_penalty + cnt[i] * o->frequency_penalty;
    }
    if (o->temperature == 0) {
        int64_t b = 0;
        for (i = 1; i < V; i++) if (w[i] > w[b]) b = i;
        for (i = 0; i < V; i++) p[i] = i == b;
        return;
    }
    for (i = 0; i < V; i++) { w[i] /= o->temperature; if (w[i] > mx) mx = w[i]; }
    for (i = 0; i < V; i++) { p[i] = exp(w[i] - mx); sum += p[i]; }
    for (i = 0; i < V; i++) p[i] /= sum;
    for (i = 0; i < V; i++) order[i] = i;
    for (i = 0; i < V; i++)   /* selection sort: descending p, ties by id */
        for (j = i + 1; j < V; j++)
            if (p[order[j]] > p[order[i]] || (p[order[j]] == p[order[i]] && order[j] < order[i])) { int64_t t = order[i]; order[i] = order[j]; order[j] = t; }
    keep = V;
    if (o->top_k > 0 && o->top_k < keep) keep = o->top_k;
    if (o->top_p > 0 && o->top_p < 1) { double m = 0; for (i = 0; i < keep; i++) { m += p[order[i]]; if (m >= o->top_p) { keep = i + 1; break; } } }
    if (o->min_p > 0) for (i = 1; i < keep; i++) if (p[order[i]] < o->min_p * p[order[0]]) { keep = i; break; }
    for (sum = 0, i = 0; i < keep; i++) sum += p[order[i]];
    for (i = keep; i < V; i++) p[order[i]] = 0;
    for (i = 0; i < keep; i++) p[order[i]] /= sum;
}

static void check_samplers(eff_ctx *ctx) {
    const int64_t V = 40;
    float logits[40], probs[40];
    double ref[40];
    int32_t hist[12] = {3, 5, 5, 7, 9, 9, 9, 1, 0, 3, 5, 39};
    eff_sampler_opts cases[9];
    const char *names[9] = {"greedy", "temperature 0.7", "top-k 5", "top-p 0.8", "min-p 0.1", "top-k 10 + top-p 0.9 + min-p 0.05",
                            "repetition 1.3", "presence 0.5 + frequency 0.2 (last 6)", "temperature 1.5 + all penalties + top-k 20"};
    int c;
    int64_t i;
    eff_test_seed(99);
    for (i = 0; i < V; i++) logits[i] = (float)(3.0 * eff_test_uniform());
    logits[11] = logits[12];   /* a tie */
    memset(cases, 0, sizeof cases);
    cases[1].temperature = 0.7f;
    cases[2].temperature = 1.0f; cases[2].top_k = 5;
    cases[3].temperature = 1.0f; cases[3].top_p = 0.8f;
    cases[4].temperature = 1.0f; cases[4].min_p = 0.1f;
    cases[5].temperature = 1.0f; cases[5].top_k = 10; cases[5].top_p = 0.9f; cases[5].min_p = 0.05f;
    cases[6].temperature = 1.0f; cases[6].repetition_penalty = 1.3f;
    cases[7].temperature = 1.0f; cases[7].presence_penalty = 0.5f; cases[7].frequency_penalty = 0.2f; cases[7].penalty_last_n = 6;
    cases[8].temperature = 1.5f; cases[8].repetition_penalty = 1.1f; cases[8].presence_penalty = 0.3f; cases[8].frequency_penalty = 0.1f;
    cases[8].top_k = 20;
    for (c = 0; c < 9; c++) {
        eff_sampler s;
        double worst = 0.0;
        eff_sampler_init(ctx, &s, &cases[c], V);
        eff_sampler_probs(ctx, &s, logits, hist, 12, probs);
        ref_probs(&cases[c], logits, V, hist, 12, ref);
        for (i = 0; i < V; i++) if (fabs(probs[i] - ref[i]) > worst) worst = fabs(probs[i] - ref[i]);
        EFF_CHECK(worst < 1e-6, "sampler %s matches the reference chain (max |dp| %.2g)", names[c], worst);
        eff_sampler_free(ctx, &s);
    }
    {   /* determinism and the draw frequencies (chi-square, 30 bins) */
        eff_sampler a, b;
        int32_t ta, tb;
        int same = 1, n = quick() ? 4000 : 40000;
        double chi = 0.0, pr[40];
        int64_t cnt[40] = {0};
        cases[1].seed = 5;
        eff_sampler_init(ctx, &a, &cases[1], V);
        eff_sampler_init(ctx, &b, &cases[1], V);
        eff_sampler_probs(ctx, &a, logits, NULL, 0, probs);
        for (i = 0; i < n; i++) {
            eff_sampler_sample(ctx, &a, logits, NULL, 0, &ta);
            eff_sampler_sample(ctx, &b, logits, NULL, 0, &tb);
            same &= ta == tb;
            cnt[ta]++;
        }
        for (i = 0; i < V; i++) pr[i] = probs[i];
        for (i = 0; i < V; i++) if (pr[i] * n >= 5) chi += (cnt[i] - pr[i] * n) * (cnt[i] - pr[i] * n) / (pr[i] * n);
        EFF_CHECK(same, "same seed, same tokens");
        EFF_CHECK(chi < 80.0, "sampled frequencies match the distribution (chi-square %.1f, df < 40)", chi);
        eff_sampler_free(ctx, &a);
        eff_sampler_free(ctx, &b);
    }
    {
        eff_sampler s;
        eff_sampler_opts bad;
        memset(&bad, 0, sizeof bad);
        bad.temperature = -1.0f;
        EFF_CHECK_STATUS(ctx, eff_sampler_init(ctx, &s, &bad, V), EFF_ERR_INVALID_ARG, "negative temperature");
        memset(&bad, 0, sizeof bad);
        eff_sampler_init(ctx, &s, &bad, V);
        logits[3] = NAN;
        EFF_CHECK_STATUS(ctx, eff_sampler_probs(ctx, &s, logits, NULL, 0, probs), EFF_ERR_NUMERIC, "NaN logits");
        eff_sampler_free(ctx, &s);
    }
}

/* ---- small models ---- */
static void tiny(eff_ctx *ctx, eff_model *m, int64_t V, int64_t layers, uint64_t seed, float scale) {
    eff_model_config c;
    int64_t i, j;
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.vocab_size = V; c.max_seq = 160; c.dim = 32; c.n_layers = layers; c.n_heads = 4; c.n_kv_heads = 2;
    c.hidden_dim = 64;
    eff_rng_seed(eff_ctx_rng(ctx), seed);
    eff_model_init(ctx, m, &c);
    for (i = 0; i < m->n_params; i++) {   /* larger weights: peaked, input-dependent distributions */
        float *w = (float *)m->params[i].w->data;
        if (strstr(m->params[i].name, "ln")) continue;
        for (j = 0; j < eff_tensor_nelements(m->params[i].w); j++) w[j] *= scale;
    }
}
static void cache_for(eff_ctx *ctx, const eff_model *m, eff_attn_cache *c, int64_t seqs, int paged) {
    eff_attn_cache_opts o;
    memset(&o, 0, sizeof o);
    o.max_seqs = seqs; o.paged = paged; o.block_size = 8;
    eff_model_cache_create(ctx, m, c, &o);
}

/* Speculative greedy output == greedy target output, for every kind of draft. */
static void check_spec_greedy(eff_ctx *ctx) {
    eff_model t, d, view;
    eff_attn_cache ct, cd, cv;
    int32_t prompt[6] = {5, 9, 2, 5, 9, 7}, ref[80], out[80];
    int64_t nref, nout, kind, gamma;
    eff_gen_opts g;
    eff_gen_stats st;
    tiny(ctx, &t, 32, 4, 1, 20.0f);
    tiny(ctx, &d, 32, 1, 2, 20.0f);
    eff_model_early_exit_view(ctx, &view, &t, 2);
    memset(&g, 0, sizeof g);
    g.max_tokens = 60;
    cache_for(ctx, &t, &ct, 1, 0);
    eff_generate(ctx, &t, &ct, 0, prompt, 6, &g, ref, 80, &nref, NULL);
    eff_attn_cache_free(ctx, &ct);
    for (kind = 0; kind < 3; kind++)
        for (gamma = 1; gamma <= 6; gamma += 5) {
            eff_spec_opts sp;
            eff_status s;
            memset(&sp, 0, sizeof sp);
            sp.gamma = gamma;
            cache_for(ctx, &t, &ct, 1, kind == 1);
            if (kind == 0) { sp.draft = &d; cache_for(ctx, &d, &cd, 1, 0); sp.draft_cache = &cd; }
            if (kind == 1) { sp.draft = &view; cache_for(ctx, &view, &cv, 1, 1); sp.draft_cache = &cv; }
            if (kind == 2) sp.draft_kind = EFF_DRAFT_PROMPT_LOOKUP;
            s = eff_generate_spec(ctx, &t, &ct, 0, prompt, 6, &g, &sp, out, 80, &nout, &st);
            EFF_CHECK(s == EFF_OK && nout == nref && memcmp(out, ref, (size_t)nref * sizeof(int32_t)) == 0,
                      "greedy speculative (%s draft, gamma %lld) == greedy target, %lld tokens, %lld target calls, acceptance %.2f",
                      kind == 0 ? "model" : kind == 1 ? "early-exit" : "prompt-lookup", (long long)gamma, (long long)nout,
                      (long long)st.target_calls, st.drafted ? (double)st.accepted / st.drafted : 0.0);
            {   /* rollback: the target cache holds exactly the context's K/V, as if rejected drafts were never seen */
                eff_attn_cache fresh;
                eff_tensor K1, V1, K2, V2;
                int64_t n1, n2, l, full = 6 + nout - 1, H = t.cfg.n_kv_heads, D = t.cfg.head_dim;
                float *buf = (float *)malloc((size_t)(4 * H * 160 * D) * sizeof(float));
                int32_t ctxt[200];
                int ok = 1;
                memcpy(ctxt, prompt, sizeof prompt);
                memcpy(ctxt + 6, out, (size_t)nout * sizeof(int32_t));
                cache_for(ctx, &t, &fresh, 1, 0);
                { int64_t z = 0; eff_model_step(ctx, &t, &fresh, &z, 1, ctxt, full, NULL); }
                for (l = 0; l < t.cfg.n_layers; l++) {
                    K1 = eff_tensor_3d(buf, EFF_F32, H, 160, D); V1 = eff_tensor_3d(buf + H * 160 * D, EFF_F32, H, 160, D);
                    K2 = eff_tensor_3d(buf + 2 * H * 160 * D, EFF_F32, H, 160, D); V2 = eff_tensor_3d(buf + 3 * H * 160 * D, EFF_F32, H, 160, D);
                    eff_attn_cache_gather(ctx, &ct, l, 0, &K1, &V1, NULL, &n1);
                    eff_attn_cache_gather(ctx, &fresh, l, 0, &K2, &V2, NULL, &n2);
                    ok &= n1 <= full && n1 >= full - 1;
                    if (n1 <= n2) {
                        int64_t h;
                        for (h = 0; h < H; h++) {
                            /* a stale rejected token would differ at nmse ~1; incremental vs one-shot prefill differ at ~1e-12 */
                            ok &= eff_test_nmse_ff(buf + h * 160 * D, buf + 2 * H * 160 * D + h * 160 * D, n1 * D) < 1e-9;
                            ok &= eff_test_nmse_ff(buf + H * 160 * D + h * 160 * D, buf + 3 * H * 160 * D + h * 160 * D, n1 * D) < 1e-9;
                        }
                    } else ok = 0;
                }
                EFF_CHECK(ok, "rollback leaves the target cache as if the rejected drafts were never seen");
                eff_attn_cache_free(ctx, &fresh);
                free(buf);
            }
            eff_attn_cache_free(ctx, &ct);
            if (kind == 0) eff_attn_cache_free(ctx, &cd);
            if (kind == 1) eff_attn_cache_free(ctx, &cv);
        }
    eff_model_view_free(ctx, &view);
    eff_model_free(ctx, &t);
    eff_model_free(ctx, &d);
}

/* Generation runs on every weight dtype: greedy decode over the cache picks, at each
   step, a token whose logit in an uncached full forward of the same (quantized) model
   is the maximum up to the decode path's rounding; greedy speculative decoding with an
   early-exit draft of the quantized model reproduces it token for token. */
static void check_weight_dtypes(eff_ctx *ctx) {
    const int dts[6] = {EFF_F32, EFF_BF16, EFF_Q8_0, EFF_Q4_0, EFF_Q4_K, EFF_NF4};
    const char *names[6] = {"f32", "bf16", "q8_0", "q4_0", "q4_k", "nf4"};
    int32_t seq[40] = {3, 17, 8, 3, 17, 40};
    int64_t d, i, V = 64, np = 6, ngen = 16;
    eff_quant_register(ctx);
    for (d = 0; d < 6; d++) {
        eff_model_config c;
        eff_model m, view;
        eff_attn_cache cache, cv;
        eff_gen_opts g;
        eff_spec_opts sp;
        int32_t out[40], out2[40];
        int64_t nout = 0, nout2 = 0;
        double worst = 0.0;
        eff_status s;
        /* activations are rounded to 8 bits in the Q8_0 / Q4_0 / Q4_K decode dot */
        double tol = dts[d] == EFF_F32 || dts[d] == EFF_BF16 || dts[d] == EFF_NF4 ? 1e-4 : 0.05;
        memset(&c, 0, sizeof c);
        c.arch = EFF_MODEL_LLAMA; c.vocab_size = V; c.max_seq = 64; c.dim = 256; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2;
        c.hidden_dim = 256;
        eff_rng_seed(eff_ctx_rng(ctx), 11);
        if (eff_model_init(ctx, &m, &c)) { EFF_CHECK(0, "init"); return; }
        for (i = 0; i < m.n_params; i++) {   /* peaked, input-dependent distributions */
            float *w = (float *)m.params[i].w->data;
            int64_t j;
            if (strstr(m.params[i].name, "ln")) continue;
            for (j = 0; j < eff_tensor_nelements(m.params[i].w); j++) w[j] *= 10.0f;
        }
        if (dts[d] != EFF_F32) {
            s = eff_model_quantize(ctx, &m, dts[d]);
            EFF_CHECK_STATUS(ctx, s, EFF_OK, "eff_model_quantize");
            if (s) { eff_model_free(ctx, &m); continue; }
        }
        memset(&g, 0, sizeof g);
        g.max_tokens = ngen;
        cache_for(ctx, &m, &cache, 1, 0);
        s = eff_generate(ctx, &m, &cache, 0, seq, np, &g, out, 40, &nout, NULL);
        eff_attn_cache_free(ctx, &cache);
        memcpy(seq + np, out, (size_t)nout * sizeof(int32_t));
        for (i = 0; s == EFF_OK && i < nout; i++) {
            const float *l;
            float mx = -1e30f, mn = 1e30f;
            int64_t v;
            if (eff_model_forward(ctx, &m, seq, NULL, 1, np + i, NULL)) { s = EFF_ERR_INVALID_ARG; break; }
            l = (const float *)m.acts.logits.data + (np + i - 1) * V;
            for (v = 0; v < V; v++) { mx = l[v] > mx ? l[v] : mx; mn = l[v] < mn ? l[v] : mn; }
            if ((mx - l[out[i]]) / (mx - mn) > worst) worst = (mx - l[out[i]]) / (mx - mn);
        }
        EFF_CHECK(s == EFF_OK && nout == ngen && worst <= tol,
                  "%s weights: greedy generation picks the full forward's argmax at each of %lld steps (worst gap %.2g of the logit range <= %.0g)",
                  names[d], (long long)nout, worst, tol);
        memset(&sp, 0, sizeof sp);
        sp.gamma = 3;
        eff_model_early_exit_view(ctx, &view, &m, 1);
        sp.draft = &view;
        cache_for(ctx, &m, &cache, 1, 1);
        cache_for(ctx, &view, &cv, 1, 1);
        sp.draft_cache = &cv;
        s = eff_generate_spec(ctx, &m, &cache, 0, seq, np, &g, &sp, out2, 40, &nout2, NULL);
        /* the verification step scores gamma + 1 positions at once (M > 1): the same rounding bounds apply */
        EFF_CHECK(s == EFF_OK && nout2 == nout && (tol > 1e-3 || memcmp(out, out2, (size_t)nout * sizeof(int32_t)) == 0),
                  "%s weights: greedy speculative decoding (early-exit draft) runs%s", names[d],
                  tol > 1e-3 ? "" : " and equals plain greedy");
        eff_attn_cache_free(ctx, &cache);
        eff_attn_cache_free(ctx, &cv);
        eff_model_view_free(ctx, &view);
        eff_model_free(ctx, &m);
    }
}

/* The joint distribution of the first two generated tokens under speculative sampling
   equals the target's (exact probabilities from the target), by chi-square. */
static double chi2_joint(eff_ctx *ctx, eff_model *t, eff_model *d, int kind, int64_t gamma, const eff_sampler_opts *so, int trials) {
    const int64_t V = t->cfg.vocab_size;
    int32_t prompt[3] = {1, 4, 2}, out[4];
    double *pj = (double *)calloc((size_t)(V * V), sizeof(double)), chi = 0.0;
    int64_t *cnt = (int64_t *)calloc((size_t)(V * V), sizeof(int64_t)), i, a, b;
    eff_attn_cache ct, cd;
    eff_sampler s;
    float *p1 = (float *)malloc((size_t)V * sizeof(float)), *p2 = (float *)malloc((size_t)V * sizeof(float));
    int32_t ctx4[4];
    /* exact: p(a) p(b | a) through the target's processed distributions */
    eff_sampler_init(ctx, &s, so, V);
    eff_model_forward(ctx, t, prompt, NULL, 1, 3, NULL);
    eff_sampler_probs(ctx, &s, (const float *)t->acts.logits.data + 2 * V, prompt, 3, p1);
    for (a = 0; a < V; a++) {
        if (p1[a] == 0.0f) continue;
        ctx4[0] = 1; ctx4[1] = 4; ctx4[2] = 2; ctx4[3] = (int32_t)a;
        eff_model_forward(ctx, t, ctx4, NULL, 1, 4, NULL);
        eff_sampler_probs(ctx, &s, (const float *)t->acts.logits.data + 3 * V, ctx4, 4, p2);
        for (b = 0; b < V; b++) pj[a * V + b] = (double)p1[a] * p2[b];
    }
    eff_sampler_free(ctx, &s);
    for (i = 0; i < trials; i++) {
        eff_gen_opts g;
        eff_spec_opts sp;
        int64_t n;
        memset(&g, 0, sizeof g);
        g.max_tokens = 2; g.sampler = *so; g.sampler.seed = 1000 + (uint64_t)i;
        memset(&sp, 0, sizeof sp);
        sp.gamma = gamma;
        cache_for(ctx, t, &ct, 1, 0);
        if (kind == EFF_DRAFT_MODEL) { sp.draft = d; cache_for(ctx, d, &cd, 1, 0); sp.draft_cache = &cd; }
        else sp.draft_kind = EFF_DRAFT_PROMPT_LOOKUP;
        eff_generate_spec(ctx, t, &ct, 0, prompt, 3, &g, &sp, out, 4, &n, NULL);
        if (n == 2) cnt[out[0] * V + out[1]]++;
        eff_attn_cache_free(ctx, &ct);
        if (kind == EFF_DRAFT_MODEL) eff_attn_cache_free(ctx, &cd);
    }
    {   /* pool cells with expected count < 5 into one */
        double pool_e = 0.0, pool_o = 0.0;
        for (i = 0; i < V * V; i++) {
            double e = pj[i] * trials;
            if (e >= 5.0) chi += (cnt[i] - e) * (cnt[i] - e) / e;
            else { pool_e += e; pool_o += (double)cnt[i]; }
        }
        if (pool_e > 0.0) chi += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1.0 ? pool_e : 1.0);
    }
    free(pj); free(cnt); free(p1); free(p2);
    return chi;
}

static void check_spec_distribution(eff_ctx *ctx) {
    eff_model t, agree, disagree;
    eff_sampler_opts so;
    int trials = quick() ? 300 : 3000;
    double chi;
    tiny(ctx, &t, 6, 2, 11, 6.0f);
    tiny(ctx, &agree, 6, 1, 11, 6.0f);      /* same seed: shares the embedding, the first layer differs in count */
    tiny(ctx, &disagree, 6, 2, 77, 30.0f);  /* a confident, different model */
    memset(&so, 0, sizeof so);
    so.temperature = 1.0f;
    /* df <= 35; chi-square 99.9th percentile at df 35 is ~66 */
    chi = chi2_joint(ctx, &t, &disagree, EFF_DRAFT_MODEL, 2, &so, trials);
    EFF_CHECK(chi < 66.0, "speculative sampling (disagreeing draft, gamma 2) has the target's distribution: chi-square %.1f", chi);
    chi = chi2_joint(ctx, &t, &agree, EFF_DRAFT_MODEL, 3, &so, trials);
    EFF_CHECK(chi < 66.0, "speculative sampling (similar draft, gamma 3) has the target's distribution: chi-square %.1f", chi);
    chi = chi2_joint(ctx, &t, NULL, EFF_DRAFT_PROMPT_LOOKUP, 4, &so, trials);
    EFF_CHECK(chi < 66.0, "speculative sampling (prompt lookup, gamma 4) has the target's distribution: chi-square %.1f", chi);
    so.temperature = 0.8f; so.top_k = 4;
    chi = chi2_joint(ctx, &t, &disagree, EFF_DRAFT_MODEL, 1, &so, trials);
    EFF_CHECK(chi < 66.0, "speculative sampling (temperature 0.8, top-k 4, gamma 1) has the target's distribution: chi-square %.1f", chi);
    eff_model_free(ctx, &t);
    eff_model_free(ctx, &agree);
    eff_model_free(ctx, &disagree);
}

static void check_prefix_cache(eff_ctx *ctx) {
    eff_model m;
    eff_attn_cache c, fresh;
    eff_prefix_cache pc;
    int32_t sys[40], p1[48], p2[52], p3[44];
    int64_t i, reused, z = 0, V;
    float *ref;
    tiny(ctx, &m, 32, 2, 5, 5.0f);
    V = m.cfg.vocab_size;
    for (i = 0; i < 40; i++) sys[i] = (int32_t)((i * 7 + 1) % 32);
    memcpy(p1, sys, sizeof sys); for (i = 40; i < 48; i++) p1[i] = (int32_t)(i % 5);
    memcpy(p2, sys, sizeof sys); for (i = 40; i < 52; i++) p2[i] = (int32_t)(i % 3 + 10);
    for (i = 0; i < 44; i++) p3[i] = (int32_t)((i * 3 + 2) % 32);
    cache_for(ctx, &m, &c, 4, 1);
    eff_prefix_cache_init(ctx, &pc, &m, &c, 2, 2);
    ref = (float *)malloc((size_t)V * sizeof(float));
    EFF_CHECK_STATUS(ctx, eff_prefix_cache_prefill(ctx, &pc, 0, p1, 48, &reused), EFF_OK, "prefill p1");
    EFF_CHECK(reused == 0, "first prompt computes everything");
    EFF_CHECK_STATUS(ctx, eff_prefix_cache_prefill(ctx, &pc, 1, p2, 52, &reused), EFF_OK, "prefill p2");
    EFF_CHECK(reused == 40, "second prompt reuses the 40-token shared prefix (%lld reused)", (long long)reused);
    memcpy(ref, (const float *)m.acts.logits.data + (m.acts.T - 1) * V, (size_t)V * sizeof(float));
    cache_for(ctx, &m, &fresh, 1, 0);
    eff_model_step(ctx, &m, &fresh, &z, 1, p2, 52, NULL);
    EFF_CHECK(eff_test_nmse_ff(ref, (const float *)m.acts.logits.data + 51 * V, V) < 1e-12, "prefix-cached logits == full prefill");
    {   /* decoding continues identically on the prefix-cached sequence */
        int32_t tok = 3;
        int64_t one = 1;
        eff_model_step(ctx, &m, &c, &one, 1, &tok, 1, NULL);
        memcpy(ref, m.acts.logits.data, (size_t)V * sizeof(float));
        eff_model_step(ctx, &m, &fresh, &z, 1, &tok, 1, NULL);
        EFF_CHECK(eff_test_nmse_ff(ref, (const float *)m.acts.logits.data, V) < 1e-12, "decode after a prefix hit == decode after a full prefill");
    }
    eff_prefix_cache_prefill(ctx, &pc, 0, p3, 44, &reused);
    EFF_CHECK(reused == 0 && pc.evictions == 1, "a third distinct prompt evicts the least recently used slot (%lld evictions)", (long long)pc.evictions);
    eff_prefix_cache_prefill(ctx, &pc, 0, p2, 52, &reused);
    EFF_CHECK(reused == 51, "the most recent prompt is still cached (%lld of 52 reused)", (long long)reused);
    EFF_CHECK(pc.tokens_reused + pc.tokens_computed == 48 + 52 + 44 + 52 && pc.tokens_computed < 48 + 52 + 44 + 52,
              "computed %lld of %lld prompt tokens", (long long)pc.tokens_computed, (long long)(pc.tokens_reused + pc.tokens_computed));
    free(ref);
    eff_prefix_cache_free(ctx, &pc);
    eff_attn_cache_free(ctx, &c);
    eff_attn_cache_free(ctx, &fresh);
    eff_model_free(ctx, &m);
}

/* Continuous batching gives each request exactly what generating it alone gives. */
static void check_batching(eff_ctx *ctx) {
    eff_model m;
    eff_attn_cache c, solo;
    eff_batch b;
    int32_t pa[5] = {1, 2, 3, 4, 5}, pb[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1}, pcc[2] = {17, 3};
    const int32_t *prompts[3];
    int64_t lens[3] = {5, 9, 2}, ids[3], active, i, r;
    eff_gen_opts g[3];
    int ok = 1;
    prompts[0] = pa; prompts[1] = pb; prompts[2] = pcc;
    tiny(ctx, &m, 32, 2, 9, 8.0f);
    cache_for(ctx, &m, &c, 3, 1);
    eff_batch_init(ctx, &b, &m, &c);
    for (i = 0; i < 3; i++) {
        memset(&g[i], 0, sizeof g[i]);
        g[i].max_tokens = 12 + 5 * i;
        if (i == 1) { g[i].sampler.temperature = 0.9f; g[i].sampler.top_p = 0.95f; g[i].sampler.seed = 42; }
    }
    eff_batch_add(ctx, &b, prompts[0], lens[0], &g[0], &ids[0]);
    eff_batch_step(ctx, &b, &active);
    eff_batch_step(ctx, &b, &active);
    eff_batch_add(ctx, &b, prompts[1], lens[1], &g[1], &ids[1]);   /* joins mid-flight */
    eff_batch_step(ctx, &b, &active);
    eff_batch_add(ctx, &b, prompts[2], lens[2], &g[2], &ids[2]);
    while (active > 0 || b.steps < 3) { if (eff_batch_step(ctx, &b, &active) != EFF_OK) { ok = 0; break; } }
    for (r = 0; r < 3; r++) {
        const int32_t *toks;
        int64_t n, n_solo;
        int done;
        int32_t out[64];
        eff_batch_result(&b, ids[r], &toks, &n, &done);
        cache_for(ctx, &m, &solo, 1, 0);
        eff_generate(ctx, &m, &solo, 0, prompts[r], lens[r], &g[r], out, 64, &n_solo, NULL);
        EFF_CHECK(ok && done && n == n_solo && memcmp(out, toks, (size_t)n * sizeof(int32_t)) == 0,
                  "batched request %lld (%s) == generated alone (%lld tokens)", (long long)r, r == 1 ? "sampled" : "greedy", (long long)n);
        eff_attn_cache_free(ctx, &solo);
    }
    EFF_CHECK(b.tokens > b.steps, "steps decoded several requests at once (%lld tokens in %lld steps)", (long long)b.tokens, (long long)b.steps);
    EFF_CHECK_STATUS(ctx, eff_batch_remove(ctx, &b, ids[0]), EFF_OK, "a finished request leaves");
    EFF_CHECK_STATUS(ctx, eff_batch_add(ctx, &b, pa, 5, &g[0], &ids[0]), EFF_OK, "a new request takes its sequence");
    {
        int64_t extra;
        EFF_CHECK_STATUS(ctx, eff_batch_add(ctx, &b, pa, 5, &g[0], &extra), EFF_ERR_OOM, "no free sequence");
    }
    eff_batch_free(ctx, &b);
    eff_attn_cache_free(ctx, &c);
    eff_model_free(ctx, &m);
}

static void check_errors(eff_ctx *ctx) {
    eff_model t, d;
    eff_attn_cache ct, cd;
    eff_spec_opts sp;
    int32_t prompt[2] = {1, 2}, out[8];
    int64_t n;
    tiny(ctx, &t, 32, 1, 1, 1.0f);
    tiny(ctx, &d, 16, 1, 1, 1.0f);
    cache_for(ctx, &t, &ct, 1, 0);
    cache_for(ctx, &d, &cd, 1, 0);
    memset(&sp, 0, sizeof sp);
    sp.draft = &d; sp.draft_cache = &cd; sp.gamma = -1;
    EFF_CHECK_STATUS(ctx, eff_generate_spec(ctx, &t, &ct, 0, prompt, 2, NULL, &sp, out, 8, &n, NULL), EFF_ERR_INVALID_ARG, "gamma < 1");
    sp.gamma = 2;
    EFF_CHECK_STATUS(ctx, eff_generate_spec(ctx, &t, &ct, 0, prompt, 2, NULL, &sp, out, 8, &n, NULL), EFF_ERR_SHAPE, "draft/target vocabulary mismatch");
    EFF_CHECK_STATUS(ctx, eff_generate_spec(ctx, &t, &ct, 0, prompt, 0, NULL, &sp, out, 8, &n, NULL), EFF_ERR_INVALID_ARG, "empty prompt (speculative)");
    EFF_CHECK_STATUS(ctx, eff_generate(ctx, &t, &ct, 0, prompt, 0, NULL, out, 8, &n, NULL), EFF_ERR_INVALID_ARG, "empty prompt");
    sp.draft = NULL;
    EFF_CHECK_STATUS(ctx, eff_generate_spec(ctx, &t, &ct, 0, prompt, 2, NULL, &sp, out, 8, &n, NULL), EFF_ERR_INVALID_ARG, "model draft without a model");
    EFF_CHECK(fabs(eff_spec_expected_tokens(0.8, 4) - (1.0 - pow(0.8, 5)) / 0.2) < 1e-12 && eff_spec_expected_tokens(1.0, 4) == 5.0,
              "expected tokens per target call formula");
    eff_attn_cache_free(ctx, &ct);
    eff_attn_cache_free(ctx, &cd);
    eff_model_free(ctx, &t);
    eff_model_free(ctx, &d);
}

int main(void) {
    eff_ctx *ctx;
    EFF_TEST_BEGIN("test_infer");
    if (eff_ctx_create(NULL, &ctx)) return 1;
    check_samplers(ctx);
    check_spec_greedy(ctx);
    check_weight_dtypes(ctx);
    check_spec_distribution(ctx);
    check_prefix_cache(ctx);
    check_batching(ctx);
    check_errors(ctx);
    EFF_CHECK(eff_ctx_bytes_in_use(ctx) == 0, "no memory left allocated (%zu bytes)", eff_ctx_bytes_in_use(ctx));
    eff_ctx_destroy(ctx);
    return EFF_TEST_END();
}
