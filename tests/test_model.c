/* test_model.c - the reference transformer against PyTorch (transformers): logits,
   loss and every parameter gradient of a tiny GPT-2 and a tiny Llama (GQA, untied
   head), 5 AdamW steps, save/load round trips, and malformed checkpoints.
   Fixtures: tools/gen_model_fixtures.py -> tests/fixtures/model/. */
#define EFF_IMPLEMENTATION
#include "eff_model.h"
#include "eff_test.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures/model"
#endif

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

static const float *st_f32(const eff_safetensors *st, const char *name, int64_t *n) {
    const eff_safetensors_entry *e = eff_safetensors_find(st, name);
    if (!e || e->tensor.dtype != EFF_F32) return NULL;
    if (n) *n = eff_tensor_nelements(&e->tensor);
    return (const float *)e->tensor.data;
}

static double nmse_ff(const float *a, const float *b, int64_t n) { return eff_test_nmse_ff(a, b, n); }

/* Forward + backward against the state file; then 5 AdamW steps against PyTorch's losses. */
static void check_fixture(eff_ctx *ctx, const char *name, int attn_impl) {
    char dir[256], path[300];
    eff_model m;
    eff_safetensors st;
    const eff_safetensors_entry *tok, *tgt;
    const float *ref_logits, *ref_loss, *ref_adam;
    int64_t B, T, n, i;
    float loss;
    eff_status s;
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES, name);
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "load_hf");
    if (s) return;
    m.attn_impl = attn_impl;
    s = eff_safetensors_open(ctx, &st, path);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "open state file");
    if (s) { eff_model_free(ctx, &m); return; }
    EFF_CHECK(eff_safetensors_meta(&st, "format") && strcmp(eff_safetensors_meta(&st, "format"), "eff-state") == 0 &&
              strcmp(eff_safetensors_meta(&st, "version"), "1") == 0, "%s: state file format eff-state v1", name);
    tok = eff_safetensors_find(&st, "tokens");
    tgt = eff_safetensors_find(&st, "targets");
    B = tok->tensor.ne[0]; T = tok->tensor.ne[1];
    ref_logits = st_f32(&st, "logits", &n);
    ref_loss = st_f32(&st, "loss", NULL);
    ref_adam = st_f32(&st, "adamw_losses", NULL);
    EFF_CHECK_STATUS(ctx, eff_model_alloc_grads(ctx, &m), EFF_OK, "alloc grads");
    s = eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, (const int32_t *)tgt->tensor.data, B, T, &loss);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "forward");
    EFF_CHECK(nmse_ff((const float *)m.acts.logits.data, ref_logits, n) <= 1e-8, "%s (%s): logits nmse %.3g <= 1e-8", name,
              attn_impl ? "ref" : "flash", nmse_ff((const float *)m.acts.logits.data, ref_logits, n));
    EFF_CHECK(fabs(loss - *ref_loss) <= 1e-5 * fabs(*ref_loss), "%s: loss %.7f vs torch %.7f", name, (double)loss, (double)*ref_loss);
    if (m.cfg.n_experts) {   /* the fixture's confident router overflows capacity: drops must happen */
        int64_t drops = 0, k, nk = B * T * m.cfg.top_k;
        for (k = 0; k < nk; k++) drops += ((const int32_t *)m.acts.layers[0].row.data)[k] < 0;
        EFF_CHECK(drops > 0 && drops < nk, "%s: capacity limit dropped %lld of %lld assignments in layer 0", name, (long long)drops, (long long)nk);
    }
    s = eff_model_backward(ctx, &m);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "backward");
    {
        char hf[160], gname[200];
        double worst = 0.0;
        int64_t count = 0;
        const char *worst_name = "";
        static char worst_buf[160];
        for (i = 0; eff_model_hf_names(&m, i, hf, sizeof hf) == EFF_OK; i++) {
            int64_t ne, nr;
            float *g;
            const float *ref;
            double e;
            snprintf(gname, sizeof gname, "grad.%s", hf);
            ref = st_f32(&st, gname, &nr);
            EFF_CHECK(ref != NULL, "%s: fixture has %s", name, gname);
            if (!ref) continue;
            eff_model_export_hf_tensor(ctx, &m, hf, 1, NULL, &ne);
            EFF_CHECK(ne == nr, "%s: %s has %lld elements (torch %lld)", name, hf, (long long)ne, (long long)nr);
            g = (float *)malloc((size_t)ne * sizeof(float));
            eff_model_export_hf_tensor(ctx, &m, hf, 1, g, NULL);
            e = nmse_ff(g, ref, ne);
            if (e > 1e-8) printf("    %s: grad nmse %.3g\n", hf, e);
            if (e > worst || e != e) { worst = e; snprintf(worst_buf, sizeof worst_buf, "%s", hf); worst_name = worst_buf; }
            count++;
            free(g);
        }
        EFF_CHECK(count > 0 && worst <= 1e-8, "%s: all %lld parameter gradients match torch, worst nmse %.3g (%s)", name,
                  (long long)count, worst, worst_name);
    }
    if (!eff_safetensors_meta(&st, "no_adamw")) {   /* 5 AdamW steps as torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1) */
        float **mom = (float **)calloc((size_t)m.n_params, sizeof(float *)), **var = (float **)calloc((size_t)m.n_params, sizeof(float *));
        eff_adamw_opts o;
        int step;
        double worst = 0.0;
        memset(&o, 0, sizeof o);
        o.lr = 1e-2f; o.beta1 = 0.9f; o.beta2 = 0.95f; o.eps = 1e-8f; o.weight_decay = 0.1f;
        for (i = 0; i < m.n_params; i++) {
            int64_t ne = eff_tensor_nelements(m.params[i].w);
            mom[i] = (float *)calloc((size_t)ne, sizeof(float));
            var[i] = (float *)calloc((size_t)ne, sizeof(float));
        }
        for (step = 1; step <= 5; step++) {
            eff_model_zero_grads(&m);
            eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, (const int32_t *)tgt->tensor.data, B, T, &loss);
            if (fabs(loss - ref_adam[step - 1]) / fabs(ref_adam[step - 1]) > worst) worst = fabs(loss - ref_adam[step - 1]) / fabs(ref_adam[step - 1]);
            eff_model_backward(ctx, &m);
            o.step = step;
            for (i = 0; i < m.n_params; i++)
                eff_adamw_step(ctx, &o, eff_tensor_nelements(m.params[i].w), m.params[i].w->data, EFF_F32, NULL,
                               m.params[i].g->data, EFF_F32, mom[i], var[i]);
        }
        EFF_CHECK(worst <= 1e-5, "%s: 5 AdamW steps reproduce torch's losses (worst relative error %.2g)", name, worst);
        for (i = 0; i < m.n_params; i++) { free(mom[i]); free(var[i]); }
        free(mom); free(var);
    }
    eff_safetensors_close(ctx, &st);
    eff_model_free(ctx, &m);
}

/* Save -> load gives back the same weights and the same logits. */
static void check_roundtrip(eff_ctx *ctx, const char *preset) {
    eff_model_config c;
    eff_model a, b;
    int32_t toks[2 * 9];
    int64_t i;
    double e;
    char dir[256];
    snprintf(dir, sizeof dir, "build/test_model_%s", preset);
    eff_model_config_preset(&c, preset);
    EFF_CHECK_STATUS(ctx, eff_model_init(ctx, &a, &c), EFF_OK, "init");
    for (i = 0; i < 18; i++) toks[i] = (int32_t)((i * 37 + 5) % c.vocab_size);
    EFF_CHECK_STATUS(ctx, eff_model_save_hf(ctx, &a, dir), EFF_OK, "save_hf");
    EFF_CHECK_STATUS(ctx, eff_model_load_hf(ctx, &b, dir), EFF_OK, "load_hf of a saved model");
    eff_model_forward(ctx, &a, toks, NULL, 2, 9, NULL);
    eff_model_forward(ctx, &b, toks, NULL, 2, 9, NULL);
    e = nmse_ff((const float *)b.acts.logits.data, (const float *)a.acts.logits.data, eff_tensor_nelements(&a.acts.logits));
    EFF_CHECK(e == 0.0, "%s: save/load round trip gives identical logits (nmse %.3g)", preset, e);
    EFF_CHECK(b.n_params == a.n_params && memcmp(a.weights.base, b.weights.base, a.weights.size) == 0, "%s: identical weights", preset);
    eff_model_free(ctx, &a);
    eff_model_free(ctx, &b);
}

/* Malformed checkpoints: each a clear error, no crash. */
static void check_malformed(eff_ctx *ctx) {
    eff_model m, good;
    eff_model_config c;
    char dir[] = "build/test_model_bad";
    eff_status s;
    eff_model_config_preset(&c, "tiny-llama");
    eff_model_init(ctx, &good, &c);
    eff_model_save_hf(ctx, &good, dir);
    s = eff_model_load_hf(ctx, &m, "build/does_not_exist");
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_IO, "missing directory");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"llama\", \"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 176,"
               " \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"num_key_value_heads\": 2}");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_NOT_FOUND, "config says 3 layers, file has 2 (missing key)");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"llama\", \"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 176,"
               " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 2}");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_FORMAT, "config says 1 layer, file has 2 (unexpected key)");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"llama\", \"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 200,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2}");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_SHAPE, "intermediate_size disagrees with the file (wrong shape)");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"llama\", \"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 176,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 5, \"num_key_value_heads\": 2}");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_INVALID_ARG, "heads not divisible (config check)");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"bert\"}");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_UNSUPPORTED, "unknown model_type");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"llama\", ");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_FORMAT, "truncated config.json");
    write_text("build/test_model_bad/model.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}");
    write_text("build/test_model_bad/config.json", "{\"model_type\": \"llama\", \"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 176,"
               " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2}");
    s = eff_model_load_hf(ctx, &m, dir);
    EFF_CHECK_STATUS(ctx, s, EFF_ERR_FORMAT, "broken safetensors");
    {   /* bad inputs to forward */
        int32_t toks[4] = {1, 2, 3, 999}, tg[4] = {1, 2, -100, 7};
        s = eff_model_forward(ctx, &good, toks, tg, 1, 4, NULL);
        EFF_CHECK_STATUS(ctx, s, EFF_ERR_INVALID_ARG, "token id outside the vocabulary");
        toks[3] = 4; tg[1] = 300;
        s = eff_model_forward(ctx, &good, toks, tg, 1, 4, NULL);
        EFF_CHECK_STATUS(ctx, s, EFF_ERR_INVALID_ARG, "target outside the vocabulary");
        {
            int32_t *many = (int32_t *)calloc(1000, sizeof(int32_t));
            s = eff_model_forward(ctx, &good, many, NULL, 1, 1000, NULL);
            EFF_CHECK_STATUS(ctx, s, EFF_ERR_SHAPE, "T beyond max_seq");
            free(many);
        }
        s = eff_model_backward(ctx, &good);
        EFF_CHECK_STATUS(ctx, s, EFF_ERR_INVALID_ARG, "backward without a forward with targets");
    }
    eff_model_free(ctx, &good);
}

/* MoE gradients against central finite differences of the loss (float forward, so
   h = 2e-3 and a loose bound); both routers, sampled parameters of router and experts. */
static void check_moe_fd(eff_ctx *ctx, int router) {
    eff_model_config c;
    eff_model m;
    int32_t toks[2 * 7], tg[2 * 7];
    int64_t i, k;
    double num = 0.0, den = 0.0;
    const char *names[4] = {"layers.0.moe.router.w", "layers.0.moe.experts.1.up.w", "layers.1.moe.experts.0.down.w", "layers.1.moe.experts.2.gate.w"};
    eff_model_config_preset(&c, "tiny-llama");
    c.dim = 16; c.n_heads = 2; c.n_kv_heads = 1; c.hidden_dim = 24; c.vocab_size = 40;
    c.n_experts = 3; c.top_k = router == EFF_ROUTER_HASH ? 1 : 2; c.router = router; c.aux_loss_coef = 0.1f;
    EFF_CHECK_STATUS(ctx, eff_model_init(ctx, &m, &c), EFF_OK, "init MoE model");
    for (i = 0; i < 14; i++) { toks[i] = (int32_t)((i * 7 + 3) % 40); tg[i] = (int32_t)((i * 11 + 1) % 40); }
    for (i = 0; i < m.n_params; i++) {   /* larger weights: clear routing margins and gradients well above float noise */
        float *w = (float *)m.params[i].w->data;
        int64_t j, n = eff_tensor_nelements(m.params[i].w);
        if (strstr(m.params[i].name, "ln") || strstr(m.params[i].name, "lnf")) continue;
        for (j = 0; j < n; j++) w[j] *= strstr(m.params[i].name, "router") ? 40.0f : 6.0f;
    }
    eff_model_alloc_grads(ctx, &m);
    eff_model_forward(ctx, &m, toks, tg, 2, 7, NULL);
    eff_model_backward(ctx, &m);
    for (k = 0; k < 4; k++) {
        const eff_model_param *p = eff_model_find_param(&m, names[k]);
        if (!p) { EFF_CHECK(0, "param %s exists", names[k]); continue; }
        if (router == EFF_ROUTER_HASH && k == 0) continue;   /* the router is unused by hash routing */
        for (i = 0; i < eff_tensor_nelements(p->w); i += 37) {
            float *w = (float *)p->w->data + i, w0 = *w, lp, lm;
            double fd, g = ((const float *)p->g->data)[i];
            *w = w0 + 2e-3f; eff_model_forward(ctx, &m, toks, tg, 2, 7, &lp);
            *w = w0 - 2e-3f; eff_model_forward(ctx, &m, toks, tg, 2, 7, &lm);
            *w = w0;
            fd = ((double)lp - (double)lm) / 4e-3;
            num += (fd - g) * (fd - g); den += g * g;
        }
    }
    EFF_CHECK(den > 0 && num / den < 1e-3, "MoE (%s routing) gradients match finite differences: nmse %.3g", router ? "hash" : "top-k",
              den > 0 ? num / den : -1.0);
    eff_model_free(ctx, &m);
}

/* Tokenizers against the ids the real libraries produced (tools/gen_tokenizer_fixtures.py). */
static void check_tokenizers(eff_ctx *ctx) {
    eff_file_map fm;
    eff_json js;
    const eff_json_node *r, *c, *cases;
    eff_tokenizer tg, tl, tb;
    int32_t ids[512];
    char text[512];
    int64_t n, k;
    size_t len;
    int kind;
    EFF_CHECK_STATUS(ctx, eff_file_map_open(ctx, "tests/fixtures/tok/cases.json", &fm), EFF_OK, "open cases.json");
    EFF_CHECK_STATUS(ctx, eff_json_parse(ctx, &js, (const char *)fm.data, fm.size, 0), EFF_OK, "parse cases.json");
    r = eff_json_root(&js);
    EFF_CHECK_STATUS(ctx, eff_tokenizer_load_gpt2(ctx, &tg, "tests/fixtures/tok/gpt2/vocab.json", "tests/fixtures/tok/gpt2/merges.txt"), EFF_OK, "load gpt2");
    EFF_CHECK_STATUS(ctx, eff_tokenizer_load_llama2c(ctx, &tl, "tests/fixtures/tok/llama2c/tokenizer.bin",
                     eff_json_get_int(&js, eff_json_get(&js, r, "llama2c"), "vocab_size", 0)), EFF_OK, "load llama2c");
    for (kind = 0; kind < 2; kind++) {
        const eff_tokenizer *t = kind ? &tl : &tg;
        cases = kind ? eff_json_get(&js, eff_json_get(&js, r, "llama2c"), "cases") : eff_json_get(&js, r, "gpt2");
        for (c = eff_json_child(&js, cases); c; c = eff_json_next(&js, c)) {
            const char *s = eff_json_get_string(&js, c, "text", "");
            const eff_json_node *want = eff_json_get(&js, c, "ids"), *runc = eff_json_get(&js, c, "runc_ids"), *w;
            int same, same_real;
            eff_status st = eff_tokenizer_encode(ctx, t, s, (int64_t)strlen(s), 0, 0, ids, 512, &n);
            same_real = st == EFF_OK && n == want->len;
            for (k = 0, w = eff_json_child(&js, want); same_real && w; w = eff_json_next(&js, w), k++) same_real = ids[k] == (int32_t)w->inum;
            if (!runc) {
                EFF_CHECK(same_real, "gpt2 tokenizer: \"%s\" -> %lld ids as HF tokenizers' byte-level BPE", s, (long long)n);
            } else {
                /* llama2.c's encoder (run.c) is the format's definition; sentencepiece agrees except on some whitespace runs */
                const eff_json_node *r0 = eff_json_child(&js, runc), *w0 = eff_json_child(&js, want);
                int runc_is_sp = runc->len == want->len;
                for (; runc_is_sp && r0; r0 = eff_json_next(&js, r0), w0 = eff_json_next(&js, w0)) runc_is_sp = r0->inum == w0->inum;
                same = st == EFF_OK && n == runc->len;
                for (k = 0, w = eff_json_child(&js, runc); same && w; w = eff_json_next(&js, w), k++) same = ids[k] == (int32_t)w->inum;
                EFF_CHECK(same, "llama2.c tokenizer: \"%s\" -> %lld ids as run.c's encoder", s, (long long)n);
                if (runc_is_sp) EFF_CHECK(same_real, "llama2.c tokenizer: \"%s\" -> the same ids as sentencepiece", s);
            }
            eff_tokenizer_decode(ctx, t, ids, n, text, sizeof text, &len);
            /* sentencepiece's dummy prefix comes back as a leading space that decode drops */
            EFF_CHECK(len == strlen(s) && memcmp(text, s, len) == 0, "%s tokenizer: decode(encode(\"%s\")) round trip", kind ? "llama2.c" : "gpt2", s);
        }
    }
    EFF_CHECK_STATUS(ctx, eff_tokenizer_encode(ctx, &tg, "Hello world", 11, 0, 0, ids, 2, &n), EFF_ERR_SHAPE, "encode into too small a buffer");
    EFF_CHECK(n > 2, "the needed count is reported (%lld)", (long long)n);
    EFF_CHECK_STATUS(ctx, eff_tokenizer_byte(ctx, &tb), EFF_OK, "byte tokenizer");
    {
        const char s[] = "bytes \xff\x00 ok";
        eff_tokenizer_encode(ctx, &tb, s, (int64_t)sizeof s - 1, 0, 0, ids, 512, &n);
        eff_tokenizer_decode(ctx, &tb, ids, n, text, sizeof text, &len);
        EFF_CHECK(n == (int64_t)sizeof s - 1 && len == sizeof s - 1 && memcmp(text, s, len) == 0, "byte tokenizer round trip incl. 0x00 and 0xff");
    }
    eff_tokenizer_free(ctx, &tg);
    eff_tokenizer_free(ctx, &tl);
    eff_tokenizer_free(ctx, &tb);
    eff_json_free(ctx, &js);
    eff_file_map_close(ctx, &fm);
    {   /* malformed tokenizer files */
        FILE *f = fopen("build/tok_bad.bin", "wb");
        unsigned char b[16] = {16, 0, 0, 0, 0, 0, 128, 63, 200, 0, 0, 0, 'a', 'b', 'c', 'd'};
        fwrite(b, 1, sizeof b, f);
        fclose(f);
        EFF_CHECK_STATUS(ctx, eff_tokenizer_load_llama2c(ctx, &tl, "build/tok_bad.bin", 10), EFF_ERR_FORMAT, "tokenizer.bin with a length past the end");
        f = fopen("build/tok_bad.bin", "wb");
        fwrite(b, 1, 10, f);
        fclose(f);
        EFF_CHECK_STATUS(ctx, eff_tokenizer_load_llama2c(ctx, &tl, "build/tok_bad.bin", 10), EFF_ERR_FORMAT, "truncated tokenizer.bin");
        write_text("build/tok_bad.json", "{\"a\": 0, \"b\": \"x\"}");
        EFF_CHECK_STATUS(ctx, eff_tokenizer_load_gpt2(ctx, &tg, "build/tok_bad.json", "tests/fixtures/tok/gpt2/merges.txt"), EFF_ERR_FORMAT, "vocab.json with a non-integer id");
        write_text("build/tok_bad.json", "{\"a\": 0, \"b\": 1}");
        EFF_CHECK_STATUS(ctx, eff_tokenizer_load_gpt2(ctx, &tg, "build/tok_bad.json", "tests/fixtures/tok/gpt2/merges.txt"), EFF_ERR_FORMAT, "vocab.json without all 256 bytes");
    }
}

/* The KV-cached step reproduces the full forward's logits at every position: prefill
   of a prefix, then one token at a time; two sequences of different lengths batched
   in one step; contiguous and paged caches; bf16 cache within bf16 rounding. */
static void check_cached_step(eff_ctx *ctx, const char *name) {
    char dir[256];
    eff_model m;
    eff_attn_cache cache;
    eff_attn_cache_opts co;
    int32_t toks[2][20];
    float *full[2], *step;
    int64_t V, T = 20, i, j, mode;
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES, name);
    if (eff_model_load_hf(ctx, &m, dir) != EFF_OK) { EFF_CHECK(0, "load %s", name); return; }
    V = m.cfg.vocab_size;
    m.cfg.capacity_factor = 0.0f;   /* steps are dropless; compare with a dropless forward */
    for (i = 0; i < T; i++) { toks[0][i] = (int32_t)((i * 31 + 7) % V); toks[1][i] = (int32_t)((i * 17 + 3) % V); }
    for (j = 0; j < 2; j++) {
        full[j] = (float *)malloc((size_t)(T * V) * sizeof(float));
        eff_model_forward(ctx, &m, toks[j], NULL, 1, T, NULL);
        memcpy(full[j], m.acts.logits.data, (size_t)(T * V) * sizeof(float));
    }
    step = (float *)malloc((size_t)(2 * T * V) * sizeof(float));
    for (mode = 0; mode < 3; mode++) {   /* 0 contiguous f32, 1 paged f32 (block 4), 2 contiguous bf16 */
        double worst = 0.0;
        int64_t seqs[2] = {0, 1}, p0 = 7, p1 = 4;
        eff_status s = EFF_OK;
        memset(&co, 0, sizeof co);
        co.max_seqs = 2; co.max_tokens = 32; co.paged = mode == 1; co.block_size = 4; co.dtype = mode == 2 ? EFF_BF16 : EFF_F32;
        EFF_CHECK_STATUS(ctx, eff_model_cache_create(ctx, &m, &cache, &co), EFF_OK, "cache create");
        /* prefill sequence 0 with 7 tokens and sequence 1 with 4, separately */
        s = eff_model_step(ctx, &m, &cache, &seqs[0], 1, toks[0], p0, step);
        for (i = 0; s == EFF_OK && i < p0; i++) { double e = nmse_ff(step + i * V, full[0] + i * V, V); if (e > worst) worst = e; }
        if (s == EFF_OK) s = eff_model_step(ctx, &m, &cache, &seqs[1], 1, toks[1], p1, step);
        for (i = 0; s == EFF_OK && i < p1; i++) { double e = nmse_ff(step + i * V, full[1] + i * V, V); if (e > worst) worst = e; }
        /* then both together, one token per step; sequence 1 catches up first */
        for (i = 0; s == EFF_OK && i < 10; i++) {
            int32_t t2[2];
            t2[0] = toks[0][p0 + i]; t2[1] = toks[1][p1 + i];
            s = eff_model_step(ctx, &m, &cache, seqs, 2, t2, 1, step);
            if (s == EFF_OK) {
                double e0 = nmse_ff(step, full[0] + (p0 + i) * V, V), e1 = nmse_ff(step + V, full[1] + (p1 + i) * V, V);
                if (e0 > worst) worst = e0;
                if (e1 > worst) worst = e1;
            }
        }
        EFF_CHECK_STATUS(ctx, s, EFF_OK, "cached steps");
        EFF_CHECK(worst <= (mode == 2 ? 1e-3 : 1e-10), "%s: cached step == full forward at every position (%s cache), worst nmse %.3g", name,
                  mode == 0 ? "contiguous f32" : mode == 1 ? "paged f32" : "bf16", worst);
        eff_attn_cache_free(ctx, &cache);
    }
    {   /* a cache for another model shape is rejected; so is a sequence id outside it */
        eff_attn_cache_opts bad;
        int64_t seq = 5;
        memset(&bad, 0, sizeof bad);
        bad.n_layers = m.cfg.n_layers + 1; bad.n_kv_heads = m.cfg.n_kv_heads; bad.head_dim = m.cfg.head_dim; bad.max_tokens = 8;
        eff_attn_cache_create(ctx, &cache, &bad);
        EFF_CHECK_STATUS(ctx, eff_model_step(ctx, &m, &cache, &seq, 1, toks[0], 1, NULL), EFF_ERR_SHAPE, "cache of another shape");
        eff_attn_cache_free(ctx, &cache);
        memset(&co, 0, sizeof co);
        eff_model_cache_create(ctx, &m, &cache, &co);
        EFF_CHECK_STATUS(ctx, eff_model_step(ctx, &m, &cache, &seq, 1, toks[0], 1, NULL), EFF_ERR_INVALID_ARG, "sequence id outside the cache");
        eff_attn_cache_free(ctx, &cache);
    }
    free(full[0]); free(full[1]); free(step);
    eff_model_free(ctx, &m);
}

/* llama2.c v0 and v2 files made from the HF Llama fixture (q/k un-permuted to Meta's
   interleaved RoPE): the same logits as transformers; truncated or lying files rejected. */
static void check_llama2c(eff_ctx *ctx) {
    eff_safetensors ref;
    eff_model m;
    const eff_safetensors_entry *tok;
    int64_t n;
    int v;
    if (eff_safetensors_open(ctx, &ref, FIXTURES "/llama2c/ref.safetensors") != EFF_OK) { EFF_CHECK(0, "llama2c ref fixture"); return; }
    tok = eff_safetensors_find(&ref, "tokens");
    for (v = 0; v < 2; v++) {
        const char *file = v ? FIXTURES "/llama2c/model_v2.bin" : FIXTURES "/llama2c/model_v0.bin";
        const float *want = st_f32(&ref, v ? "v2_logits" : "v0_logits", &n);
        eff_status s = eff_model_load_llama2c(ctx, &m, file);
        EFF_CHECK_STATUS(ctx, s, EFF_OK, v ? "load llama2.c v2" : "load llama2.c v0");
        if (s) continue;
        EFF_CHECK(m.cfg.rope_mode == EFF_ROPE_GPTJ && !m.cfg.tie_embeddings && m.cfg.n_kv_heads == 2, "llama2.c v%d: config from the header", v ? 2 : 0);
        eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, NULL, tok->tensor.ne[0], tok->tensor.ne[1], NULL);
        EFF_CHECK(nmse_ff((const float *)m.acts.logits.data, want, n) <= 1e-10, "llama2.c v%d: logits match transformers (nmse %.3g)", v ? 2 : 0,
                  nmse_ff((const float *)m.acts.logits.data, want, n));
        eff_model_free(ctx, &m);
    }
    eff_safetensors_close(ctx, &ref);
    {   /* truncated file, lying header, bad group size */
        eff_file_map fm;
        FILE *f;
        unsigned char *buf;
        int32_t g = 48;
        eff_file_map_open(ctx, FIXTURES "/llama2c/model_v2.bin", &fm);
        buf = (unsigned char *)malloc((size_t)fm.size);
        memcpy(buf, fm.data, (size_t)fm.size);
        f = fopen("build/l2c_bad.bin", "wb"); fwrite(buf, 1, (size_t)fm.size - 100, f); fclose(f);
        EFF_CHECK_STATUS(ctx, eff_model_load_llama2c(ctx, &m, "build/l2c_bad.bin"), EFF_ERR_FORMAT, "truncated llama2.c v2 file");
        buf[8 + 8] = 3;   /* n_layers 2 -> 3 */
        f = fopen("build/l2c_bad.bin", "wb"); fwrite(buf, 1, (size_t)fm.size, f); fclose(f);
        EFF_CHECK_STATUS(ctx, eff_model_load_llama2c(ctx, &m, "build/l2c_bad.bin"), EFF_ERR_FORMAT, "header claims more layers than the file holds");
        buf[8 + 8] = 2;
        memcpy(buf + 37, &g, 4);
        f = fopen("build/l2c_bad.bin", "wb"); fwrite(buf, 1, (size_t)fm.size, f); fclose(f);
        EFF_CHECK_STATUS(ctx, eff_model_load_llama2c(ctx, &m, "build/l2c_bad.bin"), EFF_ERR_FORMAT, "group size that does not divide dim");
        memset(buf, 0, 28);
        f = fopen("build/l2c_bad.bin", "wb"); fwrite(buf, 1, 28, f); fclose(f);
        EFF_CHECK_STATUS(ctx, eff_model_load_llama2c(ctx, &m, "build/l2c_bad.bin"), EFF_ERR_FORMAT, "v0 header of zeros");
        free(buf);
        eff_file_map_close(ctx, &fm);
    }
}

/* Activation checkpointing gives bit-identical gradients with a smaller activation arena;
   layer-wise (LOMO) gradients, read in the on_grads hook, equal the full gradients. */
typedef struct { float *copy; int64_t calls, order_ok, last; } grad_tap;
static eff_status tap_grads(eff_ctx *ctx, eff_model *m, int64_t layer, void *user) {
    grad_tap *t = (grad_tap *)user;
    int64_t first, last, i, off = 0;
    (void)ctx;
    if (t->calls == 0) t->order_ok = layer == m->cfg.n_layers;
    else t->order_ok &= layer == t->last - 1;
    t->last = layer; t->calls++;
    eff_model_layer_params(m, layer, &first, &last);
    for (i = 0; i < first; i++) off += eff_tensor_nelements(m->params[i].w);
    for (i = first; i < last; i++) {
        int64_t n = eff_tensor_nelements(m->params[i].w);
        memcpy(t->copy + off, m->params[i].g->data, (size_t)n * sizeof(float));
        off += n;
    }
    return EFF_OK;
}
static void check_checkpoint_and_layerwise(eff_ctx *ctx, const char *name) {
    char dir[256];
    eff_model m;
    int32_t toks[2 * 16], tg[2 * 16];
    int64_t i, total = 0, off;
    float *ref;
    size_t plain_bytes, ckpt_bytes;
    int same = 1;
    grad_tap tap;
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES, name);
    if (eff_model_load_hf(ctx, &m, dir) != EFF_OK) { EFF_CHECK(0, "load %s", name); return; }
    for (i = 0; i < 32; i++) { toks[i] = (int32_t)((i * 13 + 1) % m.cfg.vocab_size); tg[i] = (int32_t)((i * 7 + 5) % m.cfg.vocab_size); }
    for (i = 0; i < m.n_params; i++) total += eff_tensor_nelements(m.params[i].w);
    ref = (float *)malloc((size_t)total * sizeof(float));
    eff_model_alloc_grads(ctx, &m);
    eff_model_forward(ctx, &m, toks, tg, 2, 16, NULL);
    eff_model_backward(ctx, &m);
    plain_bytes = m.acts.arena.size;
    for (i = 0, off = 0; i < m.n_params; i++) {
        int64_t n = eff_tensor_nelements(m.params[i].w);
        memcpy(ref + off, m.params[i].g->data, (size_t)n * sizeof(float));
        off += n;
    }
    m.checkpoint = 1;
    eff_model_zero_grads(&m);
    eff_model_forward(ctx, &m, toks, tg, 2, 16, NULL);
    eff_model_backward(ctx, &m);
    ckpt_bytes = m.acts.arena.size;
    for (i = 0, off = 0; i < m.n_params; i++) {
        int64_t n = eff_tensor_nelements(m.params[i].w);
        same &= memcmp(ref + off, m.params[i].g->data, (size_t)n * sizeof(float)) == 0;
        off += n;
    }
    EFF_CHECK(same, "%s: checkpointed backward gives bit-identical gradients", name);
    EFF_CHECK(ckpt_bytes < plain_bytes, "%s: checkpointing shrinks activations %zu -> %zu bytes", name, plain_bytes, ckpt_bytes);
    eff_model_free(ctx, &m);
    /* layer-wise gradients through the hook */
    eff_model_load_hf(ctx, &m, dir);
    memset(&tap, 0, sizeof tap);
    tap.copy = (float *)calloc((size_t)total, sizeof(float));
    EFF_CHECK_STATUS(ctx, eff_model_alloc_grads_layerwise(ctx, &m), EFF_OK, "layerwise grads");
    m.on_grads = tap_grads; m.on_grads_user = &tap;
    eff_model_forward(ctx, &m, toks, tg, 2, 16, NULL);
    eff_model_backward(ctx, &m);
    EFF_CHECK(tap.calls == m.cfg.n_layers + 2 && tap.order_ok, "%s: on_grads called top, layers downward, embeddings (%lld calls)", name,
              (long long)tap.calls);
    EFF_CHECK(memcmp(tap.copy, ref, (size_t)total * sizeof(float)) == 0, "%s: layer-wise gradients equal the full ones", name);
    {
        int64_t full = 0;
        for (i = 0; i < m.n_params; i++) full += eff_tensor_nbytes(m.params[i].g);
        EFF_CHECK((int64_t)m.grads.size < full, "%s: layer-wise gradient memory %zu < %lld bytes", name, m.grads.size, (long long)full);
    }
    free(tap.copy);
    free(ref);
    eff_model_free(ctx, &m);
}

/* GGUF export -> import: bit-exact weights and logits for a GPT-J-mode model, the same
   logits for an HF (NEOX) model whose q/k rows are permuted on export, quantized
   weights kept byte for byte; malformed files rejected. */
static void logits_of(eff_ctx *ctx, eff_model *m, const int32_t *toks, float *out) {
    eff_model_forward(ctx, m, toks, NULL, 2, 9, NULL);
    memcpy(out, m->acts.logits.data, (size_t)(18 * m->cfg.vocab_size) * sizeof(float));
}
static void check_gguf(eff_ctx *ctx) {
    eff_model a, b;
    int32_t toks[18];
    float *la, *lb;
    int64_t i, V;
    int k, q;
    const char *path = "build/test_model.gguf";
    EFF_CHECK_STATUS(ctx, eff_quant_register(ctx), EFF_OK, "eff_quant_register");
    for (k = 0; k < 4; k++) {   /* 0 llama2.c (GPT-J) f32, 1 HF (NEOX) f32, 2 q8_0, 3 q4_k */
        const char *what[4] = {"llama2.c f32 (GPT-J RoPE)", "HF Llama f32 (NEOX RoPE, q/k permuted)", "q8_0 model", "q4_k model"};
        eff_status s = k == 1 ? eff_model_load_hf(ctx, &a, FIXTURES "/llama") : eff_model_load_llama2c(ctx, &a, FIXTURES "/llama2c/model_v0.bin");
        if (s) { EFF_CHECK(0, "load for GGUF"); continue; }
        if (k >= 2) {   /* the fixture's rows (72) are not whole blocks: a random model with rows of 256 */
            eff_model_config c;
            eff_model_free(ctx, &a);
            eff_model_config_preset(&c, "tiny-llama");
            c.dim = 256; c.hidden_dim = 512; c.rope_mode = EFF_ROPE_GPTJ;
            eff_model_init(ctx, &a, &c);
            EFF_CHECK_STATUS(ctx, eff_model_quantize(ctx, &a, k == 2 ? EFF_Q8_0 : EFF_Q4_K), EFF_OK, "quantize before export");
        }
        V = a.cfg.vocab_size;
        for (i = 0; i < 18; i++) toks[i] = (int32_t)((i * 13 + 2) % V);
        la = (float *)malloc((size_t)(18 * V) * sizeof(float)); lb = (float *)malloc((size_t)(18 * V) * sizeof(float));
        logits_of(ctx, &a, toks, la);
        EFF_CHECK_STATUS(ctx, eff_model_save_gguf(ctx, &a, path), EFF_OK, "save_gguf");
        s = eff_model_load_gguf(ctx, &b, path);
        EFF_CHECK_STATUS(ctx, s, EFF_OK, "load_gguf");
        if (s) { eff_model_free(ctx, &a); free(la); free(lb); continue; }
        logits_of(ctx, &b, toks, lb);
        if (k == 1) {
            EFF_CHECK(b.cfg.rope_mode == EFF_ROPE_GPTJ && eff_test_nmse_ff(lb, la, 18 * V) < 1e-12, "GGUF round trip, %s: logits nmse %.3g", what[k],
                      eff_test_nmse_ff(lb, la, 18 * V));
        } else {
            int same = 1;
            for (q = 0; q < (int)a.n_params; q++)
                same &= a.params[q].w->dtype == b.params[q].w->dtype && eff_tensor_nbytes(a.params[q].w) == eff_tensor_nbytes(b.params[q].w) &&
                        memcmp(a.params[q].w->data, b.params[q].w->data, (size_t)eff_tensor_nbytes(a.params[q].w)) == 0;
            EFF_CHECK(same && memcmp(la, lb, (size_t)(18 * V) * sizeof(float)) == 0, "GGUF round trip, %s: identical weights and logits", what[k]);
        }
        eff_model_free(ctx, &a);
        eff_model_free(ctx, &b);
        free(la); free(lb);
    }
    {   /* malformed: another architecture, a missing key, a tensor of the wrong shape */
        eff_quant_gguf_writer w;
        float one[32 * 96], norm[32];
        int64_t ne[2];
        for (i = 0; i < 32 * 96; i++) one[i] = 0.01f * (float)(i % 7);
        for (i = 0; i < 32; i++) norm[i] = 1.0f;
        eff_quant_gguf_writer_init(&w);
        eff_quant_gguf_writer_set_str(ctx, &w, "general.architecture", "gpt2");
        eff_quant_gguf_writer_write(ctx, &w, path);
        EFF_CHECK_STATUS(ctx, eff_model_load_gguf(ctx, &a, path), EFF_ERR_UNSUPPORTED, "GGUF of another architecture");
        eff_quant_gguf_writer_set_str(ctx, &w, "general.architecture", "llama");
        eff_quant_gguf_writer_write(ctx, &w, path);
        EFF_CHECK_STATUS(ctx, eff_model_load_gguf(ctx, &a, path), EFF_ERR_FORMAT, "GGUF without llama.embedding_length");
        eff_quant_gguf_writer_set_u32(ctx, &w, "llama.embedding_length", 32);
        eff_quant_gguf_writer_set_u32(ctx, &w, "llama.block_count", 1);
        eff_quant_gguf_writer_set_u32(ctx, &w, "llama.feed_forward_length", 64);
        eff_quant_gguf_writer_set_u32(ctx, &w, "llama.attention.head_count", 4);
        ne[0] = 32; ne[1] = 96;
        eff_quant_gguf_writer_add_tensor(ctx, &w, "token_embd.weight", 0, 2, ne, one);
        ne[0] = 32;
        eff_quant_gguf_writer_add_tensor(ctx, &w, "output_norm.weight", 0, 1, ne, norm);
        eff_quant_gguf_writer_write(ctx, &w, path);
        EFF_CHECK_STATUS(ctx, eff_model_load_gguf(ctx, &a, path), EFF_ERR_NOT_FOUND, "GGUF missing block tensors");
        ne[0] = 16;
        eff_quant_gguf_writer_add_tensor(ctx, &w, "blk.0.attn_norm.weight", 0, 1, ne, norm);
        eff_quant_gguf_writer_write(ctx, &w, path);
        EFF_CHECK_STATUS(ctx, eff_model_load_gguf(ctx, &a, path), EFF_ERR_SHAPE, "GGUF tensor of the wrong shape");
        eff_quant_gguf_writer_free(ctx, &w);
    }
}

/* eff_model_quantize to a ggml format and to NF4: the logits stay close to the f32
   model's, the weights shrink to the format's bits per weight, and the KV-cached decode
   (one dot per output) agrees with the full forward (dequantize + sgemm). */
static void check_quantized(eff_ctx *ctx) {
    const int dts[3] = {EFF_Q8_0, EFF_Q4_K, EFF_NF4};
    const double tol[3] = {1e-3, 0.1, 0.1}, bits[3] = {8.5, 4.5, 4.5};   /* random Gaussian weights: 4-bit nmse ~0.03 */
    eff_model_config c;
    eff_model m;
    int32_t toks[12];
    int64_t V, i, d;
    float *ref, *lq, *step;
    eff_model_config_preset(&c, "tiny-llama");
    c.dim = 256; c.hidden_dim = 512;
    eff_rng_seed(eff_ctx_rng(ctx), 77);   /* the same weights for every init below */
    EFF_CHECK_STATUS(ctx, eff_model_init(ctx, &m, &c), EFF_OK, "init for quantization");
    V = m.cfg.vocab_size;
    for (i = 0; i < 12; i++) toks[i] = (int32_t)((i * 7 + 1) % V);
    ref = (float *)malloc((size_t)(12 * V) * sizeof(float));
    lq = (float *)malloc((size_t)(12 * V) * sizeof(float));
    step = (float *)malloc((size_t)(12 * V) * sizeof(float));
    eff_model_forward(ctx, &m, toks, NULL, 1, 12, NULL);
    memcpy(ref, m.acts.logits.data, (size_t)(12 * V) * sizeof(float));
    {
        int64_t wf = eff_model_weight_bytes(&m);
        eff_model_free(ctx, &m);
        for (d = 0; d < 3; d++) {
            eff_attn_cache cache;
            eff_attn_cache_opts co;
            int64_t seq = 0, wq;
            double worst = 0.0, e;
            eff_rng_seed(eff_ctx_rng(ctx), 77);
            eff_model_init(ctx, &m, &c);
            EFF_CHECK_STATUS(ctx, eff_model_quantize(ctx, &m, dts[d]), EFF_OK, eff_dtype_name(dts[d]));
            wq = eff_model_weight_bytes(&m);
            /* the norms stay f32 and a decode step reads one embedding row, so slightly above bits/32 */
            EFF_CHECK(wq < wf * (bits[d] / 32.0) * 1.05, "%s: weight bytes per decode step %lld <= %.3g x f32 (%lld)", eff_dtype_name(dts[d]),
                      (long long)wq, bits[d] / 32.0 * 1.05, (long long)wf);
            EFF_CHECK_STATUS(ctx, eff_model_forward(ctx, &m, toks, NULL, 1, 12, NULL), EFF_OK, "quantized forward");
            memcpy(lq, m.acts.logits.data, (size_t)(12 * V) * sizeof(float));
            e = eff_test_nmse_ff(lq, ref, 12 * V);
            EFF_CHECK(e < tol[d], "%s model: logits nmse vs f32 model %.3g < %.0g", eff_dtype_name(dts[d]), e, tol[d]);
            memset(&co, 0, sizeof co);
            co.max_seqs = 1; co.max_tokens = 16;
            eff_model_cache_create(ctx, &m, &cache, &co);
            for (i = 0; i < 12; i++) {
                eff_status s = eff_model_step(ctx, &m, &cache, &seq, 1, toks + i, 1, step + i * V);
                if (s) { EFF_CHECK_STATUS(ctx, s, EFF_OK, "quantized decode step"); break; }
                e = eff_test_nmse_ff(step + i * V, lq + i * V, V);
                if (e > worst) worst = e;
            }
            /* Q8_0 / Q4_K decode rounds activations to 8 bits; NF4 dots f32 activations */
            EFF_CHECK(worst < (dts[d] == EFF_NF4 ? 1e-9 : 1e-3), "%s: decode steps == full forward of the quantized model (worst nmse %.3g)",
                      eff_dtype_name(dts[d]), worst);
            eff_attn_cache_free(ctx, &cache);
            eff_model_free(ctx, &m);
        }
    }
    free(ref); free(lq); free(step);
}

static void check_counts(void) {
    eff_model_config c;
    eff_model_counts k;
    eff_model_config_preset(&c, "gpt2");
    eff_model_count(&c, 1024, &k);
    /* GPT-2 small has 124,439,808 parameters (HF count, tied head) */
    EFF_CHECK(k.total == 124439808, "gpt2 small parameter count %lld == 124439808", (long long)k.total);
    eff_model_config_preset(&c, "stories15M");
    eff_model_count(&c, 256, &k);
    EFF_CHECK(k.total == 15191712, "stories15M parameter count %lld == 15191712", (long long)k.total);
}

int main(void) {
    eff_ctx *ctx;
    EFF_TEST_BEGIN("test_model");
    if (eff_ctx_create(NULL, &ctx)) return 1;
    check_counts();
    check_fixture(ctx, "gpt2", EFF_ATTN_IMPL_FLASH);
    check_fixture(ctx, "llama", EFF_ATTN_IMPL_FLASH);
    check_fixture(ctx, "llama", EFF_ATTN_IMPL_REF);
    check_fixture(ctx, "moe", EFF_ATTN_IMPL_FLASH);
    check_cached_step(ctx, "gpt2");
    check_cached_step(ctx, "llama");
    check_cached_step(ctx, "moe");
    check_moe_fd(ctx, EFF_ROUTER_TOPK);
    check_moe_fd(ctx, EFF_ROUTER_HASH);
    check_roundtrip(ctx, "tiny-gpt2");
    check_roundtrip(ctx, "tiny-llama");
    check_malformed(ctx);
    check_tokenizers(ctx);
    check_llama2c(ctx);
    check_gguf(ctx);
    check_quantized(ctx);
    check_checkpoint_and_layerwise(ctx, "gpt2");
    check_checkpoint_and_layerwise(ctx, "llama");
    check_checkpoint_and_layerwise(ctx, "moe");
    EFF_CHECK(eff_ctx_bytes_in_use(ctx) == 0, "no memory left allocated (%zu bytes)", eff_ctx_bytes_in_use(ctx));
    eff_ctx_destroy(ctx);
    return EFF_TEST_END();
}
