/* generate.c - text generation from the command line.

     generate --hf DIR | --llama2c FILE | --gguf FILE  [--quant DTYPE]
              [--tokenizer tokenizer.bin | --vocab vocab.json --merges merges.txt]
              [--prompt TEXT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]
              [--rep-pen R] [--seed S] [--draft-hf DIR | --draft-llama2c FILE | --draft-gguf FILE |
              --early-exit L | --lookup] [--gamma G] [--adaptive] [--paged]

   Loads a checkpoint (HF GPT-2 / Llama / Mixtral safetensors with config.json, a
   llama2.c .bin, or a llama GGUF, f32 or quantized), optionally converts its weights
   (--quant bf16 | q8_0 | q4_0 | q4_k | nf4 ..., the draft's too), tokenizes the prompt (byte-level unless a tokenizer is given),
   streams the generated text, then prints tokens/s and, with a draft, the acceptance
   rate and tokens per target call next to (1 - a^(g+1)) / (1 - a).

   After `make demo` (examples/spec_demo saves the pair it trains, byte-level):
     ./build/examples/generate --hf build/demo_target --prompt "the cat " -n 100
     ./build/examples/generate --hf build/demo_target --draft-hf build/demo_draft --gamma 5 --prompt "the cat " -n 100 */
#define EFF_IMPLEMENTATION
#include "eff_infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const eff_tokenizer *tok; int32_t prev; } stream_state;

static int on_token(int32_t t, void *user) {
    stream_state *s = (stream_state *)user;
    int32_t len;
    const char *p = eff_tokenizer_piece(s->tok, s->prev, t, &len);
    fwrite(p, 1, (size_t)len, stdout);
    fflush(stdout);
    s->prev = t;
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: generate --hf DIR | --llama2c FILE | --gguf FILE [--quant DTYPE] [--tokenizer FILE | --vocab FILE --merges FILE]\n"
                    "                [--prompt TEXT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--rep-pen R] [--seed S]\n"
                    "                [--draft-hf DIR | --draft-llama2c FILE | --draft-gguf FILE | --early-exit L | --lookup]\n"
                    "                [--gamma G] [--adaptive] [--paged]\n");
}

static eff_status load_model(eff_ctx *ctx, eff_model *m, const char *hf, const char *l2c, const char *gguf, int quant) {
    eff_status s = hf ? eff_model_load_hf(ctx, m, hf) : l2c ? eff_model_load_llama2c(ctx, m, l2c) : eff_model_load_gguf(ctx, m, gguf);
    if (s == EFF_OK && quant >= 0 && quant != EFF_F32) {
        s = eff_model_quantize(ctx, m, quant);
        if (s) eff_model_free(ctx, m);
    }
    return s;
}

int main(int argc, char **argv) {
    const char *hf = NULL, *l2c = NULL, *tokfile = NULL, *vocab = NULL, *merges = NULL, *prompt = "Once upon a time";
    const char *gguf = NULL, *dhf = NULL, *dl2c = NULL, *dgguf = NULL;
    int64_t n = 128, early = 0, gamma = 4;
    int lookup = 0, adaptive = 0, paged = 0, quant = -1, i;
    eff_sampler_opts so;
    eff_ctx *ctx;
    eff_model m, draft;
    eff_tokenizer tok;
    eff_attn_cache cache, dcache;
    eff_attn_cache_opts co;
    eff_gen_opts g;
    eff_gen_stats st;
    stream_state ss;
    int32_t *ids, *out;
    int64_t n_ids, n_out;
    eff_status s;
    int use_draft;

    memset(&so, 0, sizeof so);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (++i, 1))
        if (ARG("--hf")) hf = v;
        else if (ARG("--llama2c")) l2c = v;
        else if (ARG("--gguf")) gguf = v;
        else if (ARG("--quant")) {
            quant = eff_dtype_from_name(v);
            if (quant < 0) { fprintf(stderr, "error: unknown dtype '%s' (f32, bf16, f16, q8_0, q4_0, q4_k, q6_k, nf4, ...)\n", v); return 2; }
        }
        else if (ARG("--tokenizer")) tokfile = v;
        else if (ARG("--vocab")) vocab = v;
        else if (ARG("--merges")) merges = v;
        else if (ARG("--prompt")) prompt = v;
        else if (ARG("-n")) n = atoll(v);
        else if (ARG("--temp")) so.temperature = (float)atof(v);
        else if (ARG("--top-k")) so.top_k = atoll(v);
        else if (ARG("--top-p")) so.top_p = (float)atof(v);
        else if (ARG("--min-p")) so.min_p = (float)atof(v);
        else if (ARG("--rep-pen")) so.repetition_penalty = (float)atof(v);
        else if (ARG("--seed")) so.seed = (uint64_t)atoll(v);
        else if (ARG("--draft-hf")) dhf = v;
        else if (ARG("--draft-llama2c")) dl2c = v;
        else if (ARG("--draft-gguf")) dgguf = v;
        else if (ARG("--early-exit")) early = atoll(v);
        else if (ARG("--gamma")) gamma = atoll(v);
        else if (strcmp(a, "--lookup") == 0) lookup = 1;
        else if (strcmp(a, "--adaptive") == 0) adaptive = 1;
        else if (strcmp(a, "--paged") == 0) paged = 1;
        else { usage(); return 2; }
#undef ARG
    }
    if ((hf != NULL) + (l2c != NULL) + (gguf != NULL) != 1 || (dhf != NULL) + (dl2c != NULL) + (dgguf != NULL) > 1) { usage(); return 2; }
    if (eff_ctx_create(NULL, &ctx)) return 1;
    eff_quant_register(ctx);   /* kernels of the block formats (GGUF weights, --quant) */
#define TRY(expr) do { s = (expr); if (s) { fprintf(stderr, "error: %s: %s\n", eff_status_str(s), eff_ctx_last_error(ctx)); return 1; } } while (0)
    TRY(load_model(ctx, &m, hf, l2c, gguf, quant));
    if (tokfile) TRY(eff_tokenizer_load_llama2c(ctx, &tok, tokfile, m.cfg.vocab_size));
    else if (vocab && merges) TRY(eff_tokenizer_load_gpt2(ctx, &tok, vocab, merges));
    else TRY(eff_tokenizer_byte(ctx, &tok));
    if (tok.vocab_size > m.cfg.vocab_size) { fprintf(stderr, "error: tokenizer has %lld tokens, the model %lld\n", (long long)tok.vocab_size, (long long)m.cfg.vocab_size); return 1; }
    ids = (int32_t *)malloc((size_t)(strlen(prompt) + 8) * sizeof(int32_t));
    out = (int32_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    TRY(eff_tokenizer_encode(ctx, &tok, prompt, (int64_t)strlen(prompt), tok.bos_id >= 0 && tok.kind == EFF_TOK_LLAMA2C, 0, ids,
                             (int64_t)strlen(prompt) + 8, &n_ids));
    memset(&co, 0, sizeof co);
    co.paged = paged;
    TRY(eff_model_cache_create(ctx, &m, &cache, &co));
    use_draft = dhf || dl2c || dgguf || early > 0;
    if (dhf || dl2c || dgguf) TRY(load_model(ctx, &draft, dhf, dl2c, dgguf, quant));
    else if (early > 0) TRY(eff_model_early_exit_view(ctx, &draft, &m, early));
    if (use_draft) TRY(eff_model_cache_create(ctx, &draft, &dcache, &co));
    fprintf(stderr, "model: %s, %lld layers, dim %lld, %.1fM parameters, %.1f MB of weights per token (%s); prompt %lld tokens\n",
            m.cfg.arch == EFF_MODEL_GPT2 ? "GPT-2" : "Llama", (long long)m.cfg.n_layers, (long long)m.cfg.dim,
            eff_model_config_n_params(&m.cfg) / 1e6, eff_model_weight_bytes(&m) / 1e6, quant >= 0 ? eff_dtype_name(quant) : "as loaded",
            (long long)n_ids);
    memset(&g, 0, sizeof g);
    g.max_tokens = n; g.sampler = so; g.on_token = on_token; g.user = &ss;
    ss.tok = &tok; ss.prev = n_ids ? ids[n_ids - 1] : -1;
    printf("%s", prompt);
    if (use_draft || lookup) {
        eff_spec_opts sp;
        memset(&sp, 0, sizeof sp);
        sp.gamma = gamma; sp.adaptive = adaptive;
        if (lookup) sp.draft_kind = EFF_DRAFT_PROMPT_LOOKUP;
        else { sp.draft = &draft; sp.draft_cache = &dcache; }
        TRY(eff_generate_spec(ctx, &m, &cache, 0, ids, n_ids, &g, &sp, out, n, &n_out, &st));
    } else {
        TRY(eff_generate(ctx, &m, &cache, 0, ids, n_ids, &g, out, n, &n_out, &st));
    }
    printf("\n");
    fprintf(stderr, "prefill %.1f ms, %lld tokens in %.3f s: %.1f tokens/s\n", 1e3 * st.seconds_prefill, (long long)n_out, st.seconds_decode,
            n_out / (st.seconds_decode > 0 ? st.seconds_decode : 1e-9));
    if (st.rounds) {
        double a = st.drafted ? (double)st.accepted / st.drafted : 0.0;
        fprintf(stderr, "speculative: %lld rounds, acceptance %.2f, %.2f tokens per target call (formula at gamma %lld: %.2f)\n",
                (long long)st.rounds, a, (double)n_out / (st.target_calls ? st.target_calls : 1), (long long)gamma, eff_spec_expected_tokens(a, gamma));
    }
    if (use_draft) { eff_attn_cache_free(ctx, &dcache); if (dhf || dl2c || dgguf) eff_model_free(ctx, &draft); else eff_model_view_free(ctx, &draft); }
    eff_attn_cache_free(ctx, &cache);
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &m);
    free(ids); free(out);
    eff_ctx_destroy(ctx);
    return 0;
}
