/* eff_infer.h - v0.1 - fast generation on eff_model.h: samplers, speculative decoding
   (draft model, early exit, prompt lookup), prefix caching, continuous batching.
   Public domain / MIT.

   WHAT
     - eff_sampler          greedy, temperature, top-k, top-p, min-p, repetition / presence /
                            frequency penalties; deterministic for a seed
     - eff_generate         prefill + token-by-token decoding over the model's KV cache, stop
                            tokens, a streaming callback
     - eff_generate_spec    speculative decoding (Leviathan et al. 2023, Chen et al. 2023): a
                            draft proposes gamma tokens, the target scores gamma + 1 positions in
                            one cached step, draft token x is kept with probability
                            min(1, p(x) / q(x)), a rejection draws from norm(max(0, p - q)), a
                            bonus token follows when all are kept; caches roll back to the kept
                            prefix. The output distribution is exactly the target's. Drafts: a
                            second model, the target's first layers (early exit), or n-gram
                            prompt lookup. Greedy verification and adaptive gamma as options.
     - eff_prefix_cache     reuse of cached prompt prefixes across requests (longest match over
                            retained sequences, shared through the paged cache's copy-on-write
                            fork), LRU eviction
     - eff_batch            continuous batching: sequences join and leave between steps, every
                            step decodes all active sequences together

   USAGE
         #define EFF_IMPLEMENTATION
         #include "eff_infer.h"
         eff_gen_opts g = {0};            // greedy, up to the cache length
         g.max_tokens = 64;
         eff_generate(ctx, &model, &cache, 0, prompt, n_prompt, &g, out, 64, &n_out, &stats);

   SAMPLING ORDER (eff_sampler_probs)
     1. penalties over the last penalty_last_n tokens of the history (all if 0):
        repetition (CTRL, Keskar et al. 2019: a seen token's logit is divided by the penalty
        if positive, multiplied if negative), then presence (subtract once) and frequency
        (subtract count times), as OpenAI defines them;
     2. temperature 0 means greedy: the distribution is one-hot on the argmax (ties: lowest id);
     3. logits / temperature, softmax;
     4. top-k: keep the k most probable (ties: lower id first);
     5. top-p (nucleus): keep the smallest prefix of the sorted distribution whose mass >= p;
     6. min-p: drop tokens below min_p * the largest probability;
     7. renormalize; eff_sampler_sample draws one token with the sampler's RNG.

   VERSIONS
     0.1  samplers, generation, speculative decoding, prefix caching, continuous batching.
*/
#ifndef EFF_INFER_H
#define EFF_INFER_H

#include "eff_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Samplers
   --------------------------------------------------------------------------- */
typedef struct eff_sampler_opts {
    float temperature;          /* 0: greedy */
    int64_t top_k;              /* 0: off */
    float top_p;                /* 0 or >= 1: off */
    float min_p;                /* 0: off */
    float repetition_penalty;   /* 0 or 1: off */
    float presence_penalty;     /* 0: off */
    float frequency_penalty;    /* 0: off */
    int64_t penalty_last_n;     /* window of the history the penalties see; 0: all of it */
    uint64_t seed;
} eff_sampler_opts;

typedef struct eff_sampler {
    eff_sampler_opts opts;
    int64_t vocab_size;
    eff_rng rng;
    float *work;                /* [V] adjusted logits */
    int32_t *order;             /* [V] sort scratch */
    int32_t *counts;            /* [V] penalty counts */
} eff_sampler;

EFFDEF eff_status eff_sampler_init(eff_ctx *ctx, eff_sampler *s, const eff_sampler_opts *opts, int64_t vocab_size);
EFFDEF void       eff_sampler_free(eff_ctx *ctx, eff_sampler *s);
/* probs[V] = the distribution the chain above gives for logits[V] after history[0..n_hist). */
EFFDEF eff_status eff_sampler_probs(eff_ctx *ctx, eff_sampler *s, const float *logits, const int32_t *history, int64_t n_hist,
                                    float *probs);
/* Draws from a distribution probs[V] with the sampler's RNG (inverse CDF of one uniform). */
EFFDEF eff_status eff_sampler_draw(eff_ctx *ctx, eff_sampler *s, const float *probs, int32_t *token);
/* eff_sampler_probs + eff_sampler_draw (greedy needs no RNG draw). */
EFFDEF eff_status eff_sampler_sample(eff_ctx *ctx, eff_sampler *s, const float *logits, const int32_t *history, int64_t n_hist,
                                     int32_t *token);

/* ---------------------------------------------------------------------------
   Generation
   --------------------------------------------------------------------------- */
typedef struct eff_gen_opts {
    int64_t max_tokens;         /* tokens to generate; 0: until the cache or max_out is full */
    const int32_t *stop;        /* generation ends after any of these tokens (it is included) */
    int64_t n_stop;
    eff_sampler_opts sampler;
    int (*on_token)(int32_t token, void *user);   /* streaming; nonzero return stops */
    void *user;
} eff_gen_opts;

typedef struct eff_gen_stats {
    int64_t prompt_tokens, generated;
    int64_t target_calls;       /* model steps of the target after the prefill */
    int64_t draft_calls;        /* model steps of the draft */
    int64_t drafted, accepted;  /* speculative: proposed and kept draft tokens */
    int64_t rounds;             /* speculative rounds */
    double seconds_prefill, seconds_decode;
} eff_gen_stats;

/* Prefills prompt[0..n_prompt) into sequence seq of the cache (which should be empty for seq)
   and generates into out[0..*n_out). */
EFFDEF eff_status eff_generate(eff_ctx *ctx, eff_model *m, eff_attn_cache *cache, int64_t seq, const int32_t *prompt, int64_t n_prompt,
                               const eff_gen_opts *opts, int32_t *out, int64_t max_out, int64_t *n_out, eff_gen_stats *stats);


/* ---------------------------------------------------------------------------
   Speculative decoding
   --------------------------------------------------------------------------- */
enum { EFF_DRAFT_MODEL = 0, EFF_DRAFT_PROMPT_LOOKUP = 1 };
typedef struct eff_spec_opts {
    int draft_kind;              /* EFF_DRAFT_MODEL (a second model or an early-exit view) or EFF_DRAFT_PROMPT_LOOKUP */
    eff_model *draft;            /* EFF_DRAFT_MODEL: same vocabulary as the target */
    eff_attn_cache *draft_cache; /* EFF_DRAFT_MODEL: the draft's cache, sequence draft_seq empty */
    int64_t draft_seq;
    int64_t gamma;               /* tokens proposed per round; 0: 4 */
    int adaptive;                /* grow gamma after a fully accepted round, shrink after an early rejection */
    int64_t gamma_max;           /* adaptive bound; 0: 2 * gamma */
    int64_t ngram_max, ngram_min;/* prompt lookup: the longest suffix n-gram is tried first; 0: 3 and 1 */
} eff_spec_opts;

/* Like eff_generate, with a draft. The output has the target's distribution under the
   same sampler options (for temperature 0: exactly the target's greedy output). stats
   counts rounds, drafted and accepted tokens, target and draft calls. */
EFFDEF eff_status eff_generate_spec(eff_ctx *ctx, eff_model *target, eff_attn_cache *cache, int64_t seq, const int32_t *prompt,
                                    int64_t n_prompt, const eff_gen_opts *gen, const eff_spec_opts *spec, int32_t *out, int64_t max_out,
                                    int64_t *n_out, eff_gen_stats *stats);
/* Expected tokens per target call for acceptance rate alpha and draft length gamma:
   (1 - alpha^(gamma+1)) / (1 - alpha) (Leviathan et al. 2023, eq. 1). */
EFFDEF double eff_spec_expected_tokens(double alpha, int64_t gamma);
/* Self-speculative drafting: view = the target's first n_layers blocks with its final norm
   and head (weights shared, not copied). Free with eff_model_view_free. */
EFFDEF eff_status eff_model_early_exit_view(eff_ctx *ctx, eff_model *view, const eff_model *target, int64_t n_layers);
EFFDEF void       eff_model_view_free(eff_ctx *ctx, eff_model *view);

/* ---------------------------------------------------------------------------
   Prefix caching: retained prompts live in reserved sequences of the cache; a new prompt
   forks the one with the longest common prefix (paged caches share its blocks, copy on
   write) and computes only the rest.
   --------------------------------------------------------------------------- */
typedef struct eff_prefix_cache {
    eff_model *model;
    eff_attn_cache *cache;
    int64_t first_slot, n_slots;     /* cache sequences [first_slot, first_slot + n_slots) hold retained prompts */
    int32_t **tokens;                /* [n_slots] retained prompt tokens */
    int64_t *len;                    /* [n_slots] their lengths (0: free) */
    uint64_t *last_use;              /* LRU clock per slot */
    uint64_t clock;
    int64_t hits, misses, tokens_reused, tokens_computed, evictions;
} eff_prefix_cache;

EFFDEF eff_status eff_prefix_cache_init(eff_ctx *ctx, eff_prefix_cache *pc, eff_model *m, eff_attn_cache *cache, int64_t first_slot,
                                        int64_t n_slots);
EFFDEF void       eff_prefix_cache_free(eff_ctx *ctx, eff_prefix_cache *pc);
/* Fills sequence seq with prompt[0..n) (the last prompt token's logits land in
   m->acts.logits at row T - 1), reusing the longest retained prefix, then retains the
   prompt (evicting the least recently used slot when all are taken). *reused (may be
   NULL) gets the number of tokens that were not recomputed. */
EFFDEF eff_status eff_prefix_cache_prefill(eff_ctx *ctx, eff_prefix_cache *pc, int64_t seq, const int32_t *prompt, int64_t n,
                                           int64_t *reused);

/* ---------------------------------------------------------------------------
   Continuous batching: requests join (their prompt is prefilled on arrival) and leave
   (their cache sequence is reset) between steps; eff_batch_step decodes one token of
   every active request in one model step.
   --------------------------------------------------------------------------- */
typedef struct eff_batch_req {
    int active, done;
    int64_t seq;                     /* cache sequence */
    int32_t *hist;                   /* prompt then generated tokens */
    int64_t n_prompt, n_hist, cap, max_new;
    int32_t pending;                 /* sampled, not yet fed */
    eff_sampler sampler;
    eff_gen_opts opts;
} eff_batch_req;
typedef struct eff_batch {
    eff_model *model;
    eff_attn_cache *cache;
    eff_batch_req *req;              /* one per cache sequence */
    int64_t n_req;
    int64_t steps, tokens;           /* decode steps run and tokens produced by them */
} eff_batch;

EFFDEF eff_status eff_batch_init(eff_ctx *ctx, eff_batch *b, eff_model *m, eff_attn_cache *cache);
EFFDEF void       eff_batch_free(eff_ctx *ctx, eff_batch *b);
/* Adds a request (prefill + first token now); *id is its cache sequence. Fails with
   EFF_ERR_OOM when every cache sequence is busy. */
EFFDEF eff_status eff_batch_add(eff_ctx *ctx, eff_batch *b, const int32_t *prompt, int64_t n, const eff_gen_opts *opts, int64_t *id);
/* One decode step of all active requests; *n_active gets how many remain active after it. */
EFFDEF eff_status eff_batch_step(eff_ctx *ctx, eff_batch *b, int64_t *n_active);
/* The tokens generated for request id so far (valid until the request is removed). */
EFFDEF eff_status eff_batch_result(const eff_batch *b, int64_t id, const int32_t **tokens, int64_t *n, int *done);
/* Frees a finished (or unwanted) request's sequence for new arrivals. */
EFFDEF eff_status eff_batch_remove(eff_ctx *ctx, eff_batch *b, int64_t id);

#ifdef __cplusplus
}
#endif
#endif /* EFF_INFER_H */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_INFER_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_INFER_IMPLEMENTED)
#define EFF_INFER_IMPLEMENTED
#define EFF__WANT_INTERNALS
#include "eff_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif


/* ---------------------------------------------------------------------------
   Samplers
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_sampler_init(eff_ctx *ctx, eff_sampler *s, const eff_sampler_opts *opts, int64_t V) {
    EFF__CHECK_PTR(ctx, s);
    memset(s, 0, sizeof *s);
    EFF__CHECK(ctx, V > 0 && V <= INT32_MAX, EFF_ERR_INVALID_ARG, "eff_sampler_init: vocab_size %lld", (long long)V);
    if (opts) s->opts = *opts;
    EFF__CHECK(ctx, s->opts.temperature >= 0.0f && s->opts.top_k >= 0 && s->opts.top_p >= 0.0f && s->opts.min_p >= 0.0f &&
               s->opts.min_p <= 1.0f && s->opts.repetition_penalty >= 0.0f && s->opts.penalty_last_n >= 0,
               EFF_ERR_INVALID_ARG, "eff_sampler_init: temperature, top_k, top_p, min_p, penalties must be >= 0 (min_p <= 1)");
    s->vocab_size = V;
    eff_rng_seed(&s->rng, s->opts.seed);
    s->work = (float *)eff_ctx_alloc(ctx, (size_t)V * sizeof(float));
    s->order = (int32_t *)eff_ctx_alloc(ctx, (size_t)V * sizeof(int32_t));
    s->counts = (int32_t *)eff_ctx_calloc(ctx, (size_t)V * sizeof(int32_t));
    if (!s->work || !s->order || !s->counts) { eff_sampler_free(ctx, s); return EFF_ERR_OOM; }
    return EFF_OK;
}

EFFDEF void eff_sampler_free(eff_ctx *ctx, eff_sampler *s) {
    if (!s) return;
    eff_ctx_free(ctx, s->work); eff_ctx_free(ctx, s->order); eff_ctx_free(ctx, s->counts);
    memset(s, 0, sizeof *s);
}

/* Sorts ids by descending p, ties by ascending id (a stable, platform-independent order). */
static void eff__sort_desc(int32_t *ids, const float *p, int64_t n) {
    int64_t width, i;
    /* bottom-up merge sort with a scratch half... small n in practice; insertion for n <= 32 */
    if (n <= 32) {
        for (i = 1; i < n; i++) {
            int32_t v = ids[i];
            int64_t j = i - 1;
            while (j >= 0 && (p[ids[j]] < p[v] || (p[ids[j]] == p[v] && ids[j] > v))) { ids[j + 1] = ids[j]; j--; }
            ids[j + 1] = v;
        }
        return;
    }
    /* heap sort (in place, O(n log n)) by the same total order */
    for (width = n / 2 - 1; width >= 0; width--) {
        int64_t r = width;
        for (;;) {
            int64_t c = 2 * r + 1;
            int32_t t;
            if (c >= n) break;
            /* a max-heap of the "smallest first" order, so the sorted array ends descending */
            if (c + 1 < n && (p[ids[c + 1]] < p[ids[c]] || (p[ids[c + 1]] == p[ids[c]] && ids[c + 1] > ids[c]))) c++;
            if (!(p[ids[c]] < p[ids[r]] || (p[ids[c]] == p[ids[r]] && ids[c] > ids[r]))) break;
            t = ids[r]; ids[r] = ids[c]; ids[c] = t; r = c;
        }
    }
    for (i = n - 1; i > 0; i--) {
        int64_t r = 0;
        int32_t t = ids[0]; ids[0] = ids[i]; ids[i] = t;
        for (;;) {
            int64_t c = 2 * r + 1;
            if (c >= i) break;
            if (c + 1 < i && (p[ids[c + 1]] < p[ids[c]] || (p[ids[c + 1]] == p[ids[c]] && ids[c + 1] > ids[c]))) c++;
            if (!(p[ids[c]] < p[ids[r]] || (p[ids[c]] == p[ids[r]] && ids[c] > ids[r]))) break;
            t = ids[r]; ids[r] = ids[c]; ids[c] = t; r = c;
        }
    }
}

EFFDEF eff_status eff_sampler_probs(eff_ctx *ctx, eff_sampler *s, const float *logits, const int32_t *history, int64_t n_hist,
                                    float *probs) {
    const eff_sampler_opts *o;
    int64_t V, i, start, keep;
    float *w;
    double sum, mass;
    EFF__CHECK_PTR(ctx, s);
    EFF__CHECK_PTR(ctx, logits);
    EFF__CHECK_PTR(ctx, probs);
    EFF__CHECK(ctx, n_hist == 0 || history, EFF_ERR_INVALID_ARG, "eff_sampler_probs: argument 'history' is NULL");
    o = &s->opts; V = s->vocab_size; w = s->work;
    for (i = 0; i < V; i++) {
        EFF__CHECK(ctx, logits[i] == logits[i] && logits[i] != INFINITY, EFF_ERR_NUMERIC, "eff_sampler_probs: logits[%lld] is %g", (long long)i,
                   (double)logits[i]);
        w[i] = logits[i];
    }
    /* 1. penalties */
    if ((o->repetition_penalty > 0.0f && o->repetition_penalty != 1.0f) || o->presence_penalty != 0.0f || o->frequency_penalty != 0.0f) {
        start = o->penalty_last_n > 0 && n_hist > o->penalty_last_n ? n_hist - o->penalty_last_n : 0;
        for (i = start; i < n_hist; i++) {
            EFF__CHECK(ctx, history[i] >= 0 && history[i] < V, EFF_ERR_INVALID_ARG, "eff_sampler_probs: history[%lld] = %d outside the vocabulary",
                       (long long)i, (int)history[i]);
            s->counts[history[i]]++;
        }
        for (i = start; i < n_hist; i++) {
            int32_t t = history[i];
            int32_t c = s->counts[t];
            if (c == 0) continue;   /* already handled */
            if (o->repetition_penalty > 0.0f && o->repetition_penalty != 1.0f)
                w[t] = w[t] > 0.0f ? w[t] / o->repetition_penalty : w[t] * o->repetition_penalty;
            w[t] -= o->presence_penalty + (float)c * o->frequency_penalty;
            s->counts[t] = 0;
        }
    }
    /* 2. greedy */
    if (o->temperature == 0.0f) {
        int64_t best = 0;
        for (i = 1; i < V; i++) if (w[i] > w[best]) best = i;
        for (i = 0; i < V; i++) probs[i] = 0.0f;
        probs[best] = 1.0f;
        return EFF_OK;
    }
    /* 3. temperature + softmax (max subtracted; -inf logits give 0) */
    {
        float mx = -INFINITY;
        for (i = 0; i < V; i++) { w[i] /= o->temperature; if (w[i] > mx) mx = w[i]; }
        EFF__CHECK(ctx, mx > -INFINITY, EFF_ERR_NUMERIC, "eff_sampler_probs: every logit is -inf");
        for (sum = 0.0, i = 0; i < V; i++) { probs[i] = expf(w[i] - mx); sum += probs[i]; }
        for (i = 0; i < V; i++) probs[i] = (float)(probs[i] / sum);
    }
    if ((o->top_k <= 0 || o->top_k >= V) && (o->top_p <= 0.0f || o->top_p >= 1.0f) && o->min_p <= 0.0f) return EFF_OK;
    /* 4-6. truncations over the sorted order */
    for (i = 0; i < V; i++) s->order[i] = (int32_t)i;
    eff__sort_desc(s->order, probs, V);
    keep = V;
    if (o->top_k > 0 && o->top_k < keep) keep = o->top_k;
    if (o->top_p > 0.0f && o->top_p < 1.0f) {
        for (mass = 0.0, i = 0; i < keep; i++) {
            mass += probs[s->order[i]];
            if (mass >= o->top_p) { keep = i + 1; break; }
        }
    }
    if (o->min_p > 0.0f) {
        float thr = o->min_p * probs[s->order[0]];
        for (i = 1; i < keep; i++) if (probs[s->order[i]] < thr) { keep = i; break; }
    }
    /* 7. renormalize the kept set */
    for (sum = 0.0, i = 0; i < keep; i++) sum += probs[s->order[i]];
    for (i = keep; i < V; i++) probs[s->order[i]] = 0.0f;
    for (i = 0; i < keep; i++) probs[s->order[i]] = (float)(probs[s->order[i]] / sum);
    return EFF_OK;
}

EFFDEF eff_status eff_sampler_draw(eff_ctx *ctx, eff_sampler *s, const float *probs, int32_t *token) {
    double u, c = 0.0;
    int64_t i, last = -1;
    EFF__CHECK_PTR(ctx, s);
    EFF__CHECK_PTR(ctx, probs);
    EFF__CHECK_PTR(ctx, token);
    u = eff_rng_uniform_f64(&s->rng);
    for (i = 0; i < s->vocab_size; i++) {
        if (probs[i] <= 0.0f) continue;
        last = i;
        c += probs[i];
        if (u < c) { *token = (int32_t)i; return EFF_OK; }
    }
    EFF__CHECK(ctx, last >= 0, EFF_ERR_NUMERIC, "eff_sampler_draw: the distribution has no mass");
    *token = (int32_t)last;   /* rounding left u above the total: the last token with mass */
    return EFF_OK;
}

EFFDEF eff_status eff_sampler_sample(eff_ctx *ctx, eff_sampler *s, const float *logits, const int32_t *history, int64_t n_hist,
                                     int32_t *token) {
    float *p;
    eff_status st;
    EFF__CHECK_PTR(ctx, s);
    p = (float *)eff_ctx_alloc(ctx, (size_t)s->vocab_size * sizeof(float));
    if (!p) return EFF_ERR_OOM;
    st = eff_sampler_probs(ctx, s, logits, history, n_hist, p);
    if (st == EFF_OK) {
        if (s->opts.temperature == 0.0f) {
            int64_t i;
            for (i = 0; i < s->vocab_size; i++) if (p[i] == 1.0f) { *token = (int32_t)i; break; }
        } else {
            st = eff_sampler_draw(ctx, s, p, token);
        }
    }
    eff_ctx_free(ctx, p);
    return st;
}

/* ---------------------------------------------------------------------------
   Generation
   --------------------------------------------------------------------------- */
static int eff__is_stop(const eff_gen_opts *o, int32_t t) {
    int64_t i;
    for (i = 0; i < o->n_stop; i++) if (o->stop[i] == t) return 1;
    return 0;
}

/* Context bookkeeping shared by plain and speculative generation: the prompt followed by
   the generated tokens, so samplers see the full history. */
typedef struct { int32_t *tok; int64_t n, cap; } eff__hist;
static eff_status eff__hist_init(eff_ctx *ctx, eff__hist *h, const int32_t *prompt, int64_t n, int64_t extra) {
    h->cap = n + extra + 1;
    h->tok = (int32_t *)eff_ctx_alloc(ctx, (size_t)h->cap * sizeof(int32_t));
    if (!h->tok) return EFF_ERR_OOM;
    memcpy(h->tok, prompt, (size_t)n * sizeof(int32_t));
    h->n = n;
    return EFF_OK;
}

EFFDEF eff_status eff_generate(eff_ctx *ctx, eff_model *m, eff_attn_cache *cache, int64_t seq, const int32_t *prompt, int64_t n_prompt,
                               const eff_gen_opts *opts, int32_t *out, int64_t max_out, int64_t *n_out, eff_gen_stats *stats) {
    eff_gen_opts o;
    eff_gen_stats st;
    eff_sampler smp;
    eff__hist h;
    int64_t limit, room;
    int32_t tok = 0;
    eff_status s;
    double t0;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, cache);
    EFF__CHECK(ctx, prompt && n_prompt > 0, EFF_ERR_INVALID_ARG, "eff_generate: the prompt is empty");
    EFF__CHECK(ctx, max_out >= 0 && (max_out == 0 || out), EFF_ERR_INVALID_ARG, "eff_generate: bad output buffer");
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    EFF__CHECK(ctx, o.n_stop >= 0 && (o.n_stop == 0 || o.stop), EFF_ERR_INVALID_ARG, "eff_generate: bad stop list");
    memset(&st, 0, sizeof st);
    room = m->cfg.max_seq - n_prompt;
    EFF__CHECK(ctx, room > 0, EFF_ERR_SHAPE, "eff_generate: prompt of %lld tokens leaves no room in max_seq %lld", (long long)n_prompt,
               (long long)m->cfg.max_seq);
    limit = max_out;
    if (o.max_tokens > 0 && o.max_tokens < limit) limit = o.max_tokens;
    if (room < limit) limit = room;
    EFF__TRY(eff_sampler_init(ctx, &smp, &o.sampler, m->cfg.vocab_size));
    s = eff__hist_init(ctx, &h, prompt, n_prompt, limit);
    if (s != EFF_OK) { eff_sampler_free(ctx, &smp); return s; }
    t0 = eff__now();
    s = eff_model_step(ctx, m, cache, &seq, 1, prompt, n_prompt, NULL);
    st.prompt_tokens = n_prompt;
    st.seconds_prefill = eff__now() - t0;
    t0 = eff__now();
    while (s == EFF_OK && st.generated < limit) {
        const float *lg = (const float *)m->acts.logits.data + (m->acts.T - 1) * m->cfg.vocab_size;
        s = eff_sampler_sample(ctx, &smp, lg, h.tok, h.n, &tok);
        if (s != EFF_OK) break;
        out[st.generated++] = tok;
        h.tok[h.n++] = tok;
        if ((o.on_token && o.on_token(tok, o.user)) || eff__is_stop(&o, tok) || st.generated >= limit) break;
        s = eff_model_step(ctx, m, cache, &seq, 1, &tok, 1, NULL);
        st.target_calls++;
    }
    st.seconds_decode = eff__now() - t0;
    eff_ctx_free(ctx, h.tok);
    eff_sampler_free(ctx, &smp);
    if (n_out) *n_out = st.generated;
    if (stats) *stats = st;
    return s;
}


/* ---------------------------------------------------------------------------
   Speculative decoding
   --------------------------------------------------------------------------- */
EFFDEF double eff_spec_expected_tokens(double alpha, int64_t gamma) {
    if (alpha >= 1.0) return (double)(gamma + 1);
    return (1.0 - pow(alpha, (double)(gamma + 1))) / (1.0 - alpha);
}

EFFDEF eff_status eff_model_early_exit_view(eff_ctx *ctx, eff_model *view, const eff_model *target, int64_t n_layers) {
    EFF__CHECK_PTR(ctx, view);
    EFF__CHECK_PTR(ctx, target);
    EFF__CHECK(ctx, target->params != NULL, EFF_ERR_INVALID_ARG, "eff_model_early_exit_view: target is not built");
    EFF__CHECK(ctx, n_layers >= 1 && n_layers <= target->cfg.n_layers, EFF_ERR_INVALID_ARG,
               "eff_model_early_exit_view: n_layers %lld not in [1, %lld]", (long long)n_layers, (long long)target->cfg.n_layers);
    *view = *target;
    view->cfg.n_layers = n_layers;
    memset(&view->acts, 0, sizeof view->acts);
    memset(&view->grads, 0, sizeof view->grads);
    view->on_grads = NULL;
    view->checkpoint = 0;
    return EFF_OK;
}

EFFDEF void eff_model_view_free(eff_ctx *ctx, eff_model *view) {
    if (!view) return;
    eff_arena_release(ctx, &view->acts.arena);   /* only the activations belong to the view */
    eff_ctx_free(ctx, view->acts.layers);
    memset(view, 0, sizeof *view);
}

/* Prompt lookup (Saxena 2023): the longest suffix n-gram of hist that occurred earlier;
   the tokens that followed its latest earlier occurrence are the draft. */
static int64_t eff__prompt_lookup(const int32_t *hist, int64_t n, int64_t nmax, int64_t nmin, int64_t want, int32_t *draft) {
    int64_t g, start, k;
    for (g = nmax < n - 1 ? nmax : n - 1; g >= nmin && g >= 1; g--) {
        for (start = n - g - 1; start >= 0; start--) {
            for (k = 0; k < g && hist[start + k] == hist[n - g + k]; k++) {}
            if (k == g) {
                int64_t avail = n - (start + g), m = avail < want ? avail : want;
                for (k = 0; k < m; k++) draft[k] = hist[start + g + k];
                if (m > 0) return m;
            }
        }
    }
    return 0;
}

EFFDEF eff_status eff_generate_spec(eff_ctx *ctx, eff_model *tm, eff_attn_cache *cache, int64_t seq, const int32_t *prompt, int64_t n_prompt,
                                    const eff_gen_opts *gen, const eff_spec_opts *spec, int32_t *out, int64_t max_out, int64_t *n_out,
                                    eff_gen_stats *stats) {
    eff_gen_opts g;
    eff_spec_opts sp;
    eff_gen_stats st;
    eff_sampler smp;
    eff__hist h;
    int64_t V, limit, gamma, t_len, d_len, i;
    float *p = NULL, *q = NULL, *resid = NULL;
    int32_t *draft = NULL;
    int done = 0, use_model;
    eff_status s;
    double t0;
    EFF__CHECK_PTR(ctx, tm);
    EFF__CHECK_PTR(ctx, cache);
    EFF__CHECK_PTR(ctx, spec);
    EFF__CHECK(ctx, prompt && n_prompt > 0, EFF_ERR_INVALID_ARG, "eff_generate_spec: the prompt is empty");
    EFF__CHECK(ctx, max_out >= 0 && (max_out == 0 || out), EFF_ERR_INVALID_ARG, "eff_generate_spec: bad output buffer");
    memset(&g, 0, sizeof g);
    if (gen) g = *gen;
    sp = *spec;
    use_model = sp.draft_kind == EFF_DRAFT_MODEL;
    EFF__CHECK(ctx, use_model || sp.draft_kind == EFF_DRAFT_PROMPT_LOOKUP, EFF_ERR_INVALID_ARG, "eff_generate_spec: draft_kind %d", sp.draft_kind);
    if (sp.gamma == 0) sp.gamma = 4;
    EFF__CHECK(ctx, sp.gamma >= 1, EFF_ERR_INVALID_ARG, "eff_generate_spec: gamma = %lld must be >= 1", (long long)sp.gamma);
    if (sp.gamma_max == 0) sp.gamma_max = 2 * sp.gamma;
    EFF__CHECK(ctx, sp.gamma_max >= sp.gamma, EFF_ERR_INVALID_ARG, "eff_generate_spec: gamma_max %lld < gamma %lld", (long long)sp.gamma_max,
               (long long)sp.gamma);
    if (sp.ngram_max == 0) sp.ngram_max = 3;
    if (sp.ngram_min == 0) sp.ngram_min = 1;
    V = tm->cfg.vocab_size;
    if (use_model) {
        EFF__CHECK(ctx, sp.draft && sp.draft_cache, EFF_ERR_INVALID_ARG, "eff_generate_spec: a model draft needs 'draft' and 'draft_cache'");
        EFF__CHECK(ctx, sp.draft->cfg.vocab_size == V, EFF_ERR_SHAPE, "eff_generate_spec: draft vocabulary %lld != target vocabulary %lld",
                   (long long)sp.draft->cfg.vocab_size, (long long)V);
    }
    limit = max_out;
    if (g.max_tokens > 0 && g.max_tokens < limit) limit = g.max_tokens;
    if (tm->cfg.max_seq - n_prompt < limit) limit = tm->cfg.max_seq - n_prompt;
    if (use_model && sp.draft->cfg.max_seq - n_prompt < limit) limit = sp.draft->cfg.max_seq - n_prompt;
    EFF__CHECK(ctx, limit >= 0, EFF_ERR_SHAPE, "eff_generate_spec: the prompt does not fit in max_seq");
    memset(&st, 0, sizeof st);
    EFF__TRY(eff_sampler_init(ctx, &smp, &g.sampler, V));
    s = eff__hist_init(ctx, &h, prompt, n_prompt, limit + sp.gamma_max + 2);
    p = (float *)eff_ctx_alloc(ctx, (size_t)((sp.gamma_max + 1) * V) * sizeof(float));
    q = (float *)eff_ctx_alloc(ctx, (size_t)((sp.gamma_max + 1) * V) * sizeof(float));
    resid = (float *)eff_ctx_alloc(ctx, (size_t)V * sizeof(float));
    draft = (int32_t *)eff_ctx_alloc(ctx, (size_t)(sp.gamma_max + 2) * sizeof(int32_t));
    if (s == EFF_OK && (!p || !q || !resid || !draft)) s = EFF_ERR_OOM;
    /* prefill everything but the last prompt token; it is fed with the first drafts */
    t0 = eff__now();
    t_len = d_len = 0;
    if (s == EFF_OK && n_prompt > 1) {
        s = eff_model_step(ctx, tm, cache, &seq, 1, prompt, n_prompt - 1, NULL);
        if (s == EFF_OK && use_model) s = eff_model_step(ctx, sp.draft, sp.draft_cache, &sp.draft_seq, 1, prompt, n_prompt - 1, NULL);
        t_len = d_len = n_prompt - 1;
    }
    st.prompt_tokens = n_prompt;
    st.seconds_prefill = eff__now() - t0;
    t0 = eff__now();
    gamma = sp.gamma;
    while (s == EFF_OK && !done && st.generated < limit) {
        int64_t n = h.n, want = gamma, nd = 0, a, fed;
        int32_t next = -1;
        if (want > limit - st.generated - 1) want = limit - st.generated - 1;
        if (want < 0) want = 0;
        /* 1. propose up to `want` tokens; q rows hold the draft's distributions */
        if (use_model && want > 0) {
            eff_model *dm = sp.draft;
            for (i = 0; s == EFF_OK && i < want; i++) {
                const float *lg;
                int64_t feed = i == 0 ? n - d_len : 1;
                const int32_t *ft = i == 0 ? h.tok + d_len : &draft[i - 1];
                s = eff_model_step(ctx, dm, sp.draft_cache, &sp.draft_seq, 1, ft, feed, NULL);
                if (s != EFF_OK) break;
                d_len += feed;
                st.draft_calls++;
                lg = (const float *)dm->acts.logits.data + (dm->acts.T - 1) * V;
                h.tok[n + i] = 0;   /* history for the draft's sampler: hist + drafts so far */
                memcpy(h.tok + n, draft, (size_t)i * sizeof(int32_t));
                s = eff_sampler_probs(ctx, &smp, lg, h.tok, n + i, q + i * V);
                if (s == EFF_OK) {
                    if (smp.opts.temperature == 0.0f) { int64_t v; for (v = 0; v < V; v++) if (q[i * V + v] == 1.0f) { draft[i] = (int32_t)v; break; } }
                    else s = eff_sampler_draw(ctx, &smp, q + i * V, &draft[i]);
                }
            }
            nd = want;
        } else if (want > 0) {
            nd = eff__prompt_lookup(h.tok, n, sp.ngram_max, sp.ngram_min, want, draft);
            for (i = 0; i < nd; i++) { int64_t v; for (v = 0; v < V; v++) q[i * V + v] = 0.0f; q[i * V + draft[i]] = 1.0f; }
        }
        if (s != EFF_OK) break;
        /* 2. the target scores every proposed position in one step */
        {
            int64_t nfeed = (n - t_len) + nd;
            int32_t *feed = h.tok + t_len;
            memcpy(h.tok + n, draft, (size_t)nd * sizeof(int32_t));
            s = eff_model_step(ctx, tm, cache, &seq, 1, feed, nfeed, NULL);
            if (s != EFF_OK) break;
            fed = t_len + nfeed;
            st.target_calls++;
            for (i = 0; s == EFF_OK && i <= nd; i++) {
                const float *lg = (const float *)tm->acts.logits.data + (nfeed - nd - 1 + i) * V;
                s = eff_sampler_probs(ctx, &smp, lg, h.tok, n + i, p + i * V);
            }
        }
        if (s != EFF_OK) break;
        /* 3. accept draft i with probability min(1, p/q); on rejection draw from norm(max(0, p - q)) */
        for (a = 0; a < nd; a++) {
            int32_t x = draft[a];
            double px = p[a * V + x], qx = q[a * V + x];
            double u = eff_rng_uniform_f64(&smp.rng);
            if (qx > 0.0 && u < px / qx) continue;   /* accepted (px >= qx always is) */
            {
                double sum = 0.0;
                int64_t v;
                for (v = 0; v < V; v++) { float r = p[a * V + v] - q[a * V + v]; resid[v] = r > 0.0f ? r : 0.0f; sum += resid[v]; }
                if (sum > 0.0) for (v = 0; v < V; v++) resid[v] = (float)(resid[v] / sum);
                else memcpy(resid, p + a * V, (size_t)V * sizeof(float));   /* p == q: any draw from p */
                s = eff_sampler_draw(ctx, &smp, resid, &next);
            }
            break;
        }
        if (s != EFF_OK) break;
        if (a == nd) s = eff_sampler_draw(ctx, &smp, p + nd * V, &next);   /* all kept: a bonus token from p_{nd+1} */
        if (s != EFF_OK) break;
        st.rounds++; st.drafted += nd; st.accepted += a;
        /* 4. emit the kept drafts and the new token */
        for (i = 0; i <= a && !done; i++) {
            int32_t t = i < a ? draft[i] : next;
            out[st.generated++] = t;
            h.tok[n + i] = t;
            h.n = n + i + 1;
            if ((g.on_token && g.on_token(t, g.user)) || eff__is_stop(&g, t) || st.generated >= limit) done = 1;
        }
        /* 5. roll the caches back to the kept prefix: hist[0..n) + drafts[0..a), and never past
           the context (a stop token may end the round early) */
        if (a > h.n - 1 - n) a = h.n - 1 - n;
        t_len = n + a;
        if (fed > t_len) s = eff_attn_cache_truncate(ctx, cache, seq, t_len);
        if (s == EFF_OK && use_model && d_len > n + a) { d_len = n + a; s = eff_attn_cache_truncate(ctx, sp.draft_cache, sp.draft_seq, d_len); }
        if (sp.adaptive && nd > 0) {
            if (a == nd && gamma < sp.gamma_max) gamma++;
            else if (a < nd / 2 && gamma > 1) gamma--;
        }
    }
    st.seconds_decode = eff__now() - t0;
    eff_ctx_free(ctx, p); eff_ctx_free(ctx, q); eff_ctx_free(ctx, resid); eff_ctx_free(ctx, draft); eff_ctx_free(ctx, h.tok);
    eff_sampler_free(ctx, &smp);
    if (n_out) *n_out = st.generated;
    if (stats) *stats = st;
    return s;
}

/* ---------------------------------------------------------------------------
   Prefix caching
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_prefix_cache_init(eff_ctx *ctx, eff_prefix_cache *pc, eff_model *m, eff_attn_cache *cache, int64_t first_slot,
                                        int64_t n_slots) {
    EFF__CHECK_PTR(ctx, pc);
    memset(pc, 0, sizeof *pc);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, cache);
    EFF__CHECK(ctx, n_slots >= 1 && first_slot >= 0 && first_slot + n_slots <= cache->opts.max_seqs, EFF_ERR_INVALID_ARG,
               "eff_prefix_cache_init: slots [%lld, %lld) outside the cache's %lld sequences", (long long)first_slot,
               (long long)(first_slot + n_slots), (long long)cache->opts.max_seqs);
    pc->model = m; pc->cache = cache; pc->first_slot = first_slot; pc->n_slots = n_slots;
    pc->tokens = (int32_t **)eff_ctx_calloc(ctx, (size_t)n_slots * sizeof(int32_t *));
    pc->len = (int64_t *)eff_ctx_calloc(ctx, (size_t)n_slots * sizeof(int64_t));
    pc->last_use = (uint64_t *)eff_ctx_calloc(ctx, (size_t)n_slots * sizeof(uint64_t));
    if (!pc->tokens || !pc->len || !pc->last_use) { eff_prefix_cache_free(ctx, pc); return EFF_ERR_OOM; }
    return EFF_OK;
}

EFFDEF void eff_prefix_cache_free(eff_ctx *ctx, eff_prefix_cache *pc) {
    int64_t i;
    if (!pc) return;
    for (i = 0; pc->tokens && i < pc->n_slots; i++) eff_ctx_free(ctx, pc->tokens[i]);
    eff_ctx_free(ctx, pc->tokens); eff_ctx_free(ctx, pc->len); eff_ctx_free(ctx, pc->last_use);
    memset(pc, 0, sizeof *pc);
}

EFFDEF eff_status eff_prefix_cache_prefill(eff_ctx *ctx, eff_prefix_cache *pc, int64_t seq, const int32_t *prompt, int64_t n, int64_t *reused) {
    int64_t best = -1, best_len = 0, i, k, keep, slot;
    eff_status s;
    EFF__CHECK_PTR(ctx, pc);
    EFF__CHECK(ctx, prompt && n > 0, EFF_ERR_INVALID_ARG, "eff_prefix_cache_prefill: the prompt is empty");
    EFF__CHECK(ctx, seq < pc->first_slot || seq >= pc->first_slot + pc->n_slots, EFF_ERR_INVALID_ARG,
               "eff_prefix_cache_prefill: sequence %lld is one of the prefix cache's own slots", (long long)seq);
    for (i = 0; i < pc->n_slots; i++) {   /* longest common prefix; ties go to the most recent */
        for (k = 0; k < pc->len[i] && k < n && pc->tokens[i][k] == prompt[k]; k++) {}
        if (k > best_len || (k == best_len && k > 0 && best >= 0 && pc->last_use[i] > pc->last_use[best])) { best = i; best_len = k; }
    }
    keep = best_len < n ? best_len : n - 1;   /* the last prompt token is always computed: its logits are needed */
    if (keep > 0) {
        EFF__TRY(eff_attn_cache_fork(ctx, pc->cache, pc->first_slot + best, seq));
        EFF__TRY(eff_attn_cache_truncate(ctx, pc->cache, seq, keep));
        pc->hits++;
        pc->last_use[best] = ++pc->clock;
    } else {
        EFF__TRY(eff_attn_cache_reset(ctx, pc->cache, seq));
        pc->misses++;
    }
    s = eff_model_step(ctx, pc->model, pc->cache, &seq, 1, prompt + keep, n - keep, NULL);
    if (s != EFF_OK) return s;
    pc->tokens_reused += keep;
    pc->tokens_computed += n - keep;
    if (reused) *reused = keep;
    /* retain this prompt: extend the matched slot if it is a prefix of the prompt, else take
       a free slot or evict the least recently used */
    slot = -1;
    if (best >= 0 && best_len == pc->len[best]) slot = best;
    for (i = 0; slot < 0 && i < pc->n_slots; i++) if (pc->len[i] == 0) slot = i;
    if (slot < 0) {
        slot = 0;
        for (i = 1; i < pc->n_slots; i++) if (pc->last_use[i] < pc->last_use[slot]) slot = i;
        pc->evictions++;
    }
    if (pc->len[slot] < n) {
        int32_t *t = (int32_t *)eff_ctx_alloc(ctx, (size_t)n * sizeof(int32_t));
        if (!t) return EFF_ERR_OOM;
        eff_ctx_free(ctx, pc->tokens[slot]);
        pc->tokens[slot] = t;
    }
    EFF__TRY(eff_attn_cache_fork(ctx, pc->cache, seq, pc->first_slot + slot));
    memcpy(pc->tokens[slot], prompt, (size_t)n * sizeof(int32_t));
    pc->len[slot] = n;
    pc->last_use[slot] = ++pc->clock;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Continuous batching
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_batch_init(eff_ctx *ctx, eff_batch *b, eff_model *m, eff_attn_cache *cache) {
    EFF__CHECK_PTR(ctx, b);
    memset(b, 0, sizeof *b);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, cache);
    b->model = m; b->cache = cache; b->n_req = cache->opts.max_seqs;
    b->req = (eff_batch_req *)eff_ctx_calloc(ctx, (size_t)b->n_req * sizeof(eff_batch_req));
    if (!b->req) return EFF_ERR_OOM;
    return EFF_OK;
}

EFFDEF eff_status eff_batch_remove(eff_ctx *ctx, eff_batch *b, int64_t id) {
    eff_batch_req *r;
    EFF__CHECK_PTR(ctx, b);
    EFF__CHECK(ctx, id >= 0 && id < b->n_req && b->req[id].hist, EFF_ERR_INVALID_ARG, "eff_batch_remove: no request %lld", (long long)id);
    r = &b->req[id];
    eff_sampler_free(ctx, &r->sampler);
    eff_ctx_free(ctx, r->hist);
    memset(r, 0, sizeof *r);
    return eff_attn_cache_reset(ctx, b->cache, id);
}

EFFDEF void eff_batch_free(eff_ctx *ctx, eff_batch *b) {
    int64_t i;
    if (!b) return;
    for (i = 0; b->req && i < b->n_req; i++) if (b->req[i].hist) eff_batch_remove(ctx, b, i);
    eff_ctx_free(ctx, b->req);
    memset(b, 0, sizeof *b);
}

/* Appends the pending token to the output, deciding whether the request is done. */
static void eff__batch_emit(eff_batch_req *r, int32_t t) {
    r->hist[r->n_hist++] = t;
    if ((r->opts.on_token && r->opts.on_token(t, r->opts.user)) || eff__is_stop(&r->opts, t) || r->n_hist - r->n_prompt >= r->max_new)
        r->done = 1;
    r->pending = t;
}

EFFDEF eff_status eff_batch_add(eff_ctx *ctx, eff_batch *b, const int32_t *prompt, int64_t n, const eff_gen_opts *opts, int64_t *id) {
    eff_batch_req *r = NULL;
    int64_t i, seq = -1;
    eff_status s;
    int32_t t = 0;
    EFF__CHECK_PTR(ctx, b);
    EFF__CHECK(ctx, prompt && n > 0, EFF_ERR_INVALID_ARG, "eff_batch_add: the prompt is empty");
    EFF__CHECK(ctx, n < b->model->cfg.max_seq, EFF_ERR_SHAPE, "eff_batch_add: prompt of %lld tokens leaves no room in max_seq %lld",
               (long long)n, (long long)b->model->cfg.max_seq);
    for (i = 0; i < b->n_req; i++) if (!b->req[i].hist) { seq = i; break; }
    EFF__CHECK(ctx, seq >= 0, EFF_ERR_OOM, "eff_batch_add: all %lld cache sequences are busy", (long long)b->n_req);
    r = &b->req[seq];
    memset(r, 0, sizeof *r);
    if (opts) r->opts = *opts;
    r->seq = seq; r->n_prompt = n;
    r->max_new = b->model->cfg.max_seq - n;
    if (r->opts.max_tokens > 0 && r->opts.max_tokens < r->max_new) r->max_new = r->opts.max_tokens;
    r->cap = n + r->max_new + 1;
    EFF__TRY(eff_sampler_init(ctx, &r->sampler, &r->opts.sampler, b->model->cfg.vocab_size));
    r->hist = (int32_t *)eff_ctx_alloc(ctx, (size_t)r->cap * sizeof(int32_t));
    if (!r->hist) { eff_sampler_free(ctx, &r->sampler); memset(r, 0, sizeof *r); return EFF_ERR_OOM; }
    memcpy(r->hist, prompt, (size_t)n * sizeof(int32_t));
    r->n_hist = n;
    s = eff_attn_cache_reset(ctx, b->cache, seq);
    if (s == EFF_OK) s = eff_model_step(ctx, b->model, b->cache, &seq, 1, prompt, n, NULL);
    if (s == EFF_OK) s = eff_sampler_sample(ctx, &r->sampler, (const float *)b->model->acts.logits.data + (n - 1) * b->model->cfg.vocab_size,
                                            r->hist, r->n_hist, &t);
    if (s != EFF_OK) { eff_batch_remove(ctx, b, seq); return s; }
    r->active = 1;
    eff__batch_emit(r, t);
    if (id) *id = seq;
    return EFF_OK;
}

EFFDEF eff_status eff_batch_step(eff_ctx *ctx, eff_batch *b, int64_t *n_active) {
    int64_t *seqs, B = 0, i, left = 0;
    int32_t *toks;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, b);
    seqs = (int64_t *)eff_ctx_alloc(ctx, (size_t)b->n_req * sizeof(int64_t));
    toks = (int32_t *)eff_ctx_alloc(ctx, (size_t)b->n_req * sizeof(int32_t));
    if (!seqs || !toks) { eff_ctx_free(ctx, seqs); eff_ctx_free(ctx, toks); return EFF_ERR_OOM; }
    for (i = 0; i < b->n_req; i++)
        if (b->req[i].active && !b->req[i].done) { seqs[B] = i; toks[B] = b->req[i].pending; B++; }
    if (B > 0) s = eff_model_step(ctx, b->model, b->cache, seqs, B, toks, 1, NULL);
    for (i = 0; s == EFF_OK && i < B; i++) {
        eff_batch_req *r = &b->req[seqs[i]];
        int32_t t = 0;
        s = eff_sampler_sample(ctx, &r->sampler, (const float *)b->model->acts.logits.data + i * b->model->cfg.vocab_size, r->hist, r->n_hist, &t);
        if (s == EFF_OK) eff__batch_emit(r, t);
    }
    if (B > 0) { b->steps++; b->tokens += B; }
    for (i = 0; i < b->n_req; i++) left += b->req[i].active && !b->req[i].done;
    if (n_active) *n_active = left;
    eff_ctx_free(ctx, seqs);
    eff_ctx_free(ctx, toks);
    return s;
}

EFFDEF eff_status eff_batch_result(const eff_batch *b, int64_t id, const int32_t **tokens, int64_t *n, int *done) {
    const eff_batch_req *r;
    if (!b || id < 0 || id >= b->n_req || !b->req[id].hist) return EFF_ERR_INVALID_ARG;
    r = &b->req[id];
    if (tokens) *tokens = r->hist + r->n_prompt;
    if (n) *n = r->n_hist - r->n_prompt;
    if (done) *done = r->done;
    return EFF_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* EFF_INFER_IMPLEMENTATION */
