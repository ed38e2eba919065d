/* test_train.c - eff_train.h against PyTorch and PEFT fixtures and finite differences:
   optimizers (AdamW, SGD, mixed precision, accumulation, clipping, schedules, loss
   scaling), LoRA / DoRA against PEFT (logits, adapter gradients, merge, files both ways),
   QLoRA, LOMO, Houlsby / prefix / prompt / BitFit, QAT, distillation, pruning, data and
   resumable checkpoints.
   Fixtures: tools/gen_train_fixtures.py -> tests/fixtures/train/ (and tests/fixtures/model/). */
#define EFF_IMPLEMENTATION
#include "eff_train.h"
#include "eff_test.h"

#include <sys/stat.h>

#ifndef FIXTURES
#define FIXTURES "tests/fixtures"
#endif
#define OUTDIR "build/train_test"

EFF_TEST_FN int quick(void) { return getenv("EFF_TEST_QUICK") != NULL; }

static const float *st_f32(const eff_safetensors *st, const char *name, int64_t *n) {
    const eff_safetensors_entry *e = eff_safetensors_find(st, name);
    if (!e || e->tensor.dtype != EFF_F32) return NULL;
    if (n) *n = eff_tensor_nelements(&e->tensor);
    return (const float *)e->tensor.data;
}

/* The tiny Llama fixture (or GPT-2) with its batch. */
typedef struct {
    eff_model m;
    eff_safetensors st;
    const int32_t *tok, *tgt;
    int64_t B, T;
} fixture;

static int fixture_open(eff_ctx *ctx, fixture *f, const char *model_dir, const char *state) {
    eff_status s;
    const eff_safetensors_entry *e;
    memset(f, 0, sizeof *f);
    s = eff_model_load_hf(ctx, &f->m, model_dir);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, model_dir);
    if (s) return 0;
    s = eff_safetensors_open(ctx, &f->st, state);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, state);
    if (s) { eff_model_free(ctx, &f->m); return 0; }
    e = eff_safetensors_find(&f->st, "tokens");
    f->tok = (const int32_t *)e->tensor.data;
    f->B = e->tensor.ne[0]; f->T = e->tensor.ne[1];
    f->tgt = (const int32_t *)eff_safetensors_find(&f->st, "targets")->tensor.data;
    return 1;
}
static void fixture_close(eff_ctx *ctx, fixture *f) {
    eff_model_free(ctx, &f->m);
    eff_safetensors_close(ctx, &f->st);
}

/* ---------------------------------------------------------------------------
   Optimizers
   --------------------------------------------------------------------------- */
static void test_schedule(void) {
    eff_lr_schedule s;
    memset(&s, 0, sizeof s);
    EFF_CHECK(eff_lr_schedule_factor(&s, 1) == 1.0f && eff_lr_schedule_factor(&s, 1000) == 1.0f, "constant schedule is 1");
    s.kind = EFF_LR_COSINE; s.warmup_steps = 4; s.total_steps = 14; s.final_ratio = 0.1f;
    EFF_CHECK(eff_lr_schedule_factor(&s, 1) == 0.25f && eff_lr_schedule_factor(&s, 4) == 1.0f, "warmup is linear: 1/4 at step 1, 1 at step 4");
    EFF_CHECK(fabs(eff_lr_schedule_factor(&s, 9) - 0.55) < 1e-6 && fabs(eff_lr_schedule_factor(&s, 14) - 0.1) < 1e-6 &&
              fabs(eff_lr_schedule_factor(&s, 100) - 0.1) < 1e-6, "cosine: half way 0.55, end and after 0.1");
    s.kind = EFF_LR_LINEAR; s.warmup_steps = 0; s.total_steps = 10; s.final_ratio = 0.0f;
    EFF_CHECK(fabs(eff_lr_schedule_factor(&s, 5) - 0.5) < 1e-6 && eff_lr_schedule_factor(&s, 10) == 0.0f, "linear decay: 0.5 at 5, 0 at 10");
}

/* 10 steps on the Llama fixture; losses against torch. mode 0 AdamW+clip+cosine, 1 SGD nesterov
   + linear, 2 bf16 mixed precision AdamW, 3 AdamW with 2 accumulated micro-batches. */
static void test_optim_fixture(eff_ctx *ctx, int mode) {
    static const char *names[4] = {"adamw_losses", "sgd_losses", "bf16_losses", "accum_losses"};
    static const char *what[4] = {"AdamW + clip_grad_norm_ + warmup/cosine", "SGD momentum Nesterov wd + linear decay",
                                  "bf16 params + fp32 masters (AdamW)", "AdamW with 2 accumulated micro-batches"};
    fixture f;
    eff_safetensors ref;
    eff_optim o;
    eff_optim_opts oo;
    const float *want, *norms;
    double worst = 0.0, worst_norm = 0.0;
    int step;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    if (eff_safetensors_open(ctx, &ref, FIXTURES "/train/optim.safetensors")) { EFF_CHECK(0, "open optim fixture"); fixture_close(ctx, &f); return; }
    want = st_f32(&ref, names[mode], NULL);
    norms = st_f32(&ref, "adamw_norms", NULL);
    memset(&oo, 0, sizeof oo);
    if (mode == 1) {
        oo.kind = EFF_OPTIM_SGD; oo.lr = 0.05f; oo.momentum = 0.9f; oo.nesterov = 1; oo.weight_decay = 0.01f;
        oo.schedule.kind = EFF_LR_LINEAR; oo.schedule.total_steps = 10;
    } else {
        oo.kind = EFF_OPTIM_ADAMW; oo.lr = 1e-2f; oo.beta1 = 0.9f; oo.beta2 = 0.95f; oo.eps = 1e-8f; oo.weight_decay = 0.1f;
        if (mode == 0) {
            oo.max_grad_norm = 1.0f;
            oo.schedule.kind = EFF_LR_COSINE; oo.schedule.warmup_steps = 3; oo.schedule.total_steps = 10; oo.schedule.final_ratio = 0.1f;
        }
        if (mode == 3) oo.accum_steps = 2;
    }
    if (mode == 2) EFF_CHECK_STATUS(ctx, eff_train_mixed_precision(ctx, &f.m, EFF_BF16), EFF_OK, "mixed precision bf16");
    EFF_CHECK_STATUS(ctx, eff_model_alloc_grads(ctx, &f.m), EFF_OK, "alloc grads");
    EFF_CHECK_STATUS(ctx, eff_optim_init(ctx, &o, &oo), EFF_OK, "optim init");
    EFF_CHECK_STATUS(ctx, eff_optim_add_model(ctx, &o, &f.m, 0, 0), EFF_OK, "add model");
    if (mode == 2) EFF_CHECK(o.params[0].master != NULL && o.params[0].param->dtype == EFF_BF16 && !o.params[0].own_master,
                             "mixed precision: bf16 embedding with the model's f32 master");
    for (step = 0; step < 10; step++) {
        float loss = 0.0f, l;
        if (mode == 3) {
            int r;
            for (r = 0; r < 2; r++) {
                eff_model_forward(ctx, &f.m, f.tok + r * f.T, f.tgt + r * f.T, 1, f.T, &l);
                eff_model_backward(ctx, &f.m);
                loss += l / 2;
            }
        } else {
            eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, &loss);
            eff_model_backward(ctx, &f.m);
        }
        if (fabs(loss - want[step]) / fabs(want[step]) > worst) worst = fabs(loss - want[step]) / fabs(want[step]);
        if (eff_optim_step(ctx, &o) != EFF_OK) { EFF_CHECK(0, "optim step: %s", eff_ctx_last_error(ctx)); break; }
        if (mode == 0 && fabs(o.last_grad_norm - norms[step]) / norms[step] > worst_norm) worst_norm = fabs(o.last_grad_norm - norms[step]) / norms[step];
    }
    EFF_CHECK(worst <= (mode == 2 ? 2e-4 : 2e-5), "%s: 10 losses match torch (worst relative error %.2g)", what[mode], worst);
    if (mode == 0) EFF_CHECK(worst_norm <= 1e-4, "%s: pre-clip gradient norms match clip_grad_norm_ (worst %.2g)", what[mode], worst_norm);
    eff_optim_free(ctx, &o);
    eff_safetensors_close(ctx, &ref);
    fixture_close(ctx, &f);
}

/* clip_grad_norm_ on the fixture's gradients. */
static void test_clip(eff_ctx *ctx) {
    eff_safetensors st, ref;
    eff_optim o;
    eff_tensor *w, *g;
    int64_t i, n = 0, k = 0, first = -1;
    double norm = 0.0;
    if (eff_safetensors_open(ctx, &st, FIXTURES "/model/llama/state.safetensors")) { EFF_CHECK(0, "open state"); return; }
    if (eff_safetensors_open(ctx, &ref, FIXTURES "/train/optim.safetensors")) { EFF_CHECK(0, "open optim fixture"); eff_safetensors_close(ctx, &st); return; }
    for (i = 0; i < st.n_entries; i++) n += strncmp(st.entries[i].name, "grad.", 5) == 0;
    w = (eff_tensor *)calloc((size_t)n, sizeof(eff_tensor));
    g = (eff_tensor *)calloc((size_t)n, sizeof(eff_tensor));
    eff_optim_init(ctx, &o, NULL);
    for (i = 0; i < st.n_entries; i++) {
        const eff_safetensors_entry *e = &st.entries[i];
        int64_t ne = eff_tensor_nelements(&e->tensor);
        if (strncmp(e->name, "grad.", 5) != 0) continue;
        eff_tensor_alloc(ctx, &w[k], EFF_F32, 1, &ne);
        eff_tensor_alloc(ctx, &g[k], EFF_F32, 1, &ne);
        memcpy(g[k].data, e->tensor.data, (size_t)ne * 4);
        if (strcmp(e->name, "grad.model.embed_tokens.weight") == 0) first = k;
        eff_optim_add_param(ctx, &o, 0, e->name, &w[k], &g[k], NULL);
        k++;
    }
    EFF_CHECK_STATUS(ctx, eff_optim_clip_grad_norm(ctx, &o, 0.5f, &norm), EFF_OK, "clip_grad_norm");
    EFF_CHECK(fabs(norm - *st_f32(&ref, "clip_norm", NULL)) <= 1e-5 * norm, "clip_grad_norm_: total norm %.7g vs torch %.7g", norm,
              (double)*st_f32(&ref, "clip_norm", NULL));
    if (first >= 0) {
        int64_t ne;
        const float *c0 = st_f32(&ref, "clip_grad0", &ne);
        EFF_CHECK(eff_test_nmse_ff((const float *)g[first].data, c0, ne) <= 1e-12, "clip_grad_norm_: clipped gradient matches torch (nmse %.2g)",
                  eff_test_nmse_ff((const float *)g[first].data, c0, ne));
    }
    EFF_CHECK_STATUS(ctx, eff_optim_clip_grad_norm(ctx, &o, 0.0f, NULL), EFF_ERR_INVALID_ARG, "clip rejects max_norm 0");
    eff_optim_free(ctx, &o);
    for (i = 0; i < k; i++) { eff_tensor_free(ctx, &w[i]); eff_tensor_free(ctx, &g[i]); }
    free(w); free(g);
    eff_safetensors_close(ctx, &st);
    eff_safetensors_close(ctx, &ref);
}

/* Dynamic loss scaling: skip on inf/NaN and back off; grow after growth_interval good steps. */
static void test_loss_scaling(eff_ctx *ctx) {
    eff_optim o;
    eff_optim_opts oo;
    float p[4] = {1, 2, 3, 4}, g[4], before[4];
    eff_tensor P = eff_tensor_1d(p, EFF_F32, 4), G = eff_tensor_1d(g, EFF_F32, 4);
    int i, ok = 1;
    memset(&oo, 0, sizeof oo);
    oo.kind = EFF_OPTIM_SGD; oo.lr = 0.1f; oo.loss_scaling = 1; oo.init_scale = 1024.0f; oo.growth_interval = 3; oo.min_scale = 256.0f;
    eff_optim_init(ctx, &o, &oo);
    eff_optim_add_param(ctx, &o, 0, "p", &P, &G, NULL);
    EFF_CHECK(eff_optim_loss_scale(&o) == 1024.0f, "loss scale starts at init_scale");
    for (i = 0; i < 4; i++) g[i] = 1024.0f;   /* scaled gradient of 1 */
    memcpy(before, p, sizeof p);
    eff_optim_step(ctx, &o);
    EFF_CHECK(!o.last_skipped && fabs(p[0] - (before[0] - 0.1f)) < 1e-6 && g[0] == 0.0f, "finite step: unscaled update p -= lr * g, grads zeroed");
    g[0] = INFINITY; g[1] = 1.0f;
    memcpy(before, p, sizeof p);
    eff_optim_step(ctx, &o);
    EFF_CHECK(o.last_skipped && memcmp(before, p, sizeof p) == 0 && o.loss_scale == 512.0f && o.n_skipped == 1 && g[1] == 0.0f,
              "inf gradient: step skipped, params untouched, scale 1024 -> 512, grads dropped");
    g[2] = NAN;
    eff_optim_step(ctx, &o);
    g[3] = NAN;
    eff_optim_step(ctx, &o);
    EFF_CHECK(o.loss_scale == 256.0f && o.n_skipped == 3 && o.step == 1, "NaN: skipped, scale stops at min_scale 256 (%g)", (double)o.loss_scale);
    for (i = 0; i < 3; i++) {
        int j;
        for (j = 0; j < 4; j++) g[j] = 256.0f;
        eff_optim_step(ctx, &o);
        ok &= !o.last_skipped;
    }
    EFF_CHECK(ok && o.loss_scale == 512.0f && o.step == 4, "3 good steps: scale grows back to 512 (%g)", (double)o.loss_scale);
    eff_optim_free(ctx, &o);
    memset(&oo, 0, sizeof oo);
    eff_optim_init(ctx, &o, &oo);
    eff_optim_add_param(ctx, &o, 0, "p", &P, &G, NULL);
    oo.max_grad_norm = 1.0f;
    o.opts.max_grad_norm = 1.0f;
    g[0] = NAN;
    EFF_CHECK_STATUS(ctx, eff_optim_step(ctx, &o), EFF_ERR_NUMERIC, "NaN gradient without loss scaling is an error");
    EFF_CHECK_STATUS(ctx, eff_optim_add_param(ctx, &o, 5, "p", &P, &G, NULL), EFF_ERR_INVALID_ARG, "add_param rejects an unknown group");
    {
        int32_t bad[4];
        eff_tensor Bd = eff_tensor_1d(bad, EFF_I32, 4);
        EFF_CHECK_STATUS(ctx, eff_optim_add_param(ctx, &o, 0, "bad", &Bd, &G, NULL), EFF_ERR_DTYPE, "add_param rejects an i32 param");
    }
    {
        int64_t grp = -1;
        EFF_CHECK_STATUS(ctx, eff_optim_add_group(ctx, &o, "no_decay", 0.5f, 0.0f, &grp), EFF_OK, "add group");
        EFF_CHECK(grp == 1 && o.groups[1].lr == 0.5f, "group 1 has its own lr");
    }
    eff_optim_free(ctx, &o);
    memset(&oo, 0, sizeof oo);
    oo.kind = 7;
    EFF_CHECK_STATUS(ctx, eff_optim_init(ctx, &o, &oo), EFF_ERR_INVALID_ARG, "init rejects an unknown kind");
}

/* ---------------------------------------------------------------------------
   LoRA against PEFT
   --------------------------------------------------------------------------- */
static double logits_nmse(const eff_model *m, const float *ref, int64_t n) {
    return eff_test_nmse_ff((const float *)m->acts.logits.data, ref, n);
}

static void test_lora_peft(eff_ctx *ctx, const char *arch, const char *adapter) {
    char mdir[256], adir[256], spath[300];
    eff_safetensors st;
    eff_model m;
    eff_lora lora;
    const eff_safetensors_entry *tok;
    const float *ref_logits, *ref_loss;
    int64_t n, i, B, T, count = 0;
    float loss;
    double worst = 0.0;
    eff_status s;
    snprintf(mdir, sizeof mdir, "%s/model/%s", FIXTURES, arch);
    snprintf(adir, sizeof adir, "%s/train/%s", FIXTURES, adapter);
    snprintf(spath, sizeof spath, "%s/state.safetensors", adir);
    if (eff_model_load_hf(ctx, &m, mdir)) { EFF_CHECK(0, "load %s", mdir); return; }
    if (eff_safetensors_open(ctx, &st, spath)) { EFF_CHECK(0, "open %s", spath); eff_model_free(ctx, &m); return; }
    s = eff_lora_load_peft(ctx, &lora, &m, adir);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "load PEFT adapter");
    if (s) { eff_safetensors_close(ctx, &st); eff_model_free(ctx, &m); return; }
    tok = eff_safetensors_find(&st, "tokens");
    B = tok->tensor.ne[0]; T = tok->tensor.ne[1];
    ref_logits = st_f32(&st, "logits", &n);
    ref_loss = st_f32(&st, "loss", NULL);
    s = eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, (const int32_t *)eff_safetensors_find(&st, "targets")->tensor.data, B, T, &loss);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "forward with adapter");
    EFF_CHECK(logits_nmse(&m, ref_logits, n) <= 1e-8, "%s: logits match PEFT (nmse %.3g)", adapter, logits_nmse(&m, ref_logits, n));
    EFF_CHECK(fabs(loss - *ref_loss) <= 1e-5 * fabs(*ref_loss), "%s: loss %.7f vs PEFT %.7f", adapter, (double)loss, (double)*ref_loss);
    s = eff_model_backward(ctx, &m);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "backward with frozen base (no base gradients allocated)");
    for (i = 0; i < st.n_entries; i++) {
        const eff_safetensors_entry *e = &st.entries[i];
        eff_tensor *w = NULL, *g = NULL;
        double err;
        if (strncmp(e->name, "grad.", 5) != 0) continue;
        if (eff_lora_find(&lora, e->name + 5, &w, &g) != EFF_OK) { EFF_CHECK(0, "%s: eff has %s", adapter, e->name + 5); continue; }
        err = eff_test_nmse_ff((const float *)g->data, (const float *)e->tensor.data, eff_tensor_nelements(&e->tensor));
        if (err > worst || err != err) worst = err;
        count++;
    }
    EFF_CHECK(count == lora.n_mods * (lora.opts.use_dora ? 3 : 2) && worst <= 1e-8, "%s: %lld adapter gradients match PEFT (worst nmse %.3g)",
              adapter, (long long)count, worst);
    /* merge gives the same logits; unmerge restores the base */
    if (!lora.opts.use_dora || 1) {
        float *before = (float *)malloc((size_t)n * sizeof(float)), *w0;
        int64_t nw = eff_tensor_nelements(&lora.mods[0].lin[0]->W);
        double e1, e2 = 0.0;
        memcpy(before, m.acts.logits.data, (size_t)n * sizeof(float));
        w0 = (float *)malloc((size_t)nw * sizeof(float));
        memcpy(w0, lora.mods[0].lin[0]->W.data, (size_t)nw * sizeof(float));
        EFF_CHECK_STATUS(ctx, eff_lora_merge(ctx, &lora), EFF_OK, "merge");
        eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, NULL, B, T, NULL);
        e1 = logits_nmse(&m, before, n);
        EFF_CHECK(e1 <= 1e-12, "%s: merged weights give the same logits (nmse %.2g)", adapter, e1);
        EFF_CHECK_STATUS(ctx, eff_lora_merge(ctx, &lora), EFF_ERR_INVALID_ARG, "merge twice is refused");
        EFF_CHECK_STATUS(ctx, eff_lora_unmerge(ctx, &lora), EFF_OK, "unmerge");
        for (i = 0; i < nw; i++) {
            double d = fabs((double)((float *)lora.mods[0].lin[0]->W.data)[i] - w0[i]);
            if (d > e2) e2 = d;
        }
        EFF_CHECK(e2 <= 1e-6, "%s: unmerge restores the base weights (max |dW| %.2g)", adapter, e2);
        eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, NULL, B, T, NULL);
        EFF_CHECK(logits_nmse(&m, before, n) <= 1e-12, "%s: unmerged logits match again", adapter);
        free(before); free(w0);
    }
    /* save in PEFT's format, reload, same tensors */
    {
        char out[300];
        eff_lora l2;
        eff_model m2;
        int same = 1;
        snprintf(out, sizeof out, "%s/%s_roundtrip", OUTDIR, adapter);
        EFF_CHECK_STATUS(ctx, eff_lora_save_peft(ctx, &lora, out), EFF_OK, "save_peft");
        eff_model_load_hf(ctx, &m2, mdir);
        s = eff_lora_load_peft(ctx, &l2, &m2, out);
        EFF_CHECK_STATUS(ctx, s, EFF_OK, "reload the eff-written adapter");
        if (!s) {
            for (i = 0; i < lora.n_mods; i++) {
                same &= l2.mods[i].r == lora.mods[i].r && strcmp(l2.mods[i].path, lora.mods[i].path) == 0 && l2.mods[i].scale == lora.mods[i].scale;
                same &= memcmp(l2.mods[i].A.data, lora.mods[i].A.data, (size_t)eff_tensor_nbytes(&lora.mods[i].A)) == 0;
                same &= memcmp(l2.mods[i].B.data, lora.mods[i].B.data, (size_t)eff_tensor_nbytes(&lora.mods[i].B)) == 0;
                if (lora.mods[i].mag.data) same &= memcmp(l2.mods[i].mag.data, lora.mods[i].mag.data, (size_t)eff_tensor_nbytes(&lora.mods[i].mag)) == 0;
            }
            EFF_CHECK(same && l2.n_mods == lora.n_mods, "%s: save_peft -> load_peft round trip is exact (%lld modules)", adapter, (long long)l2.n_mods);
            eff_lora_detach(ctx, &l2);
        }
        eff_model_free(ctx, &m2);
        /* for tools/gen_train_fixtures.py --verify: the base model, tokens and eff's logits */
        if (strcmp(arch, "llama") == 0 || strcmp(arch, "gpt2") == 0) {
            char p[400];
            FILE *fb;
            eff_tensor ts[2];
            const char *meta[2] = {"format", "pt"};
            snprintf(p, sizeof p, "%s/base.txt", out);
            fb = fopen(p, "w");
            if (fb) { fprintf(fb, "%s\n", mdir); fclose(fb); }
            eff_model_forward(ctx, &m, (const int32_t *)tok->tensor.data, NULL, B, T, NULL);
            ts[0] = tok->tensor; ts[0].name = "tokens";
            ts[1] = m.acts.logits; ts[1].name = "logits";
            snprintf(p, sizeof p, "%s/logits.safetensors", out);
            eff_safetensors_write(ctx, p, ts, 2, meta, 1);
        }
    }
    eff_lora_detach(ctx, &lora);
    eff_safetensors_close(ctx, &st);
    eff_model_free(ctx, &m);
}

/* PEFT's init: A ~ U(+-1/sqrt(in)), B = 0 so the adapter is a no-op; only A and B train. */
static void test_lora_init_and_train(eff_ctx *ctx) {
    fixture f;
    eff_lora lora;
    eff_lora_opts lo;
    eff_optim o;
    eff_optim_opts oo;
    float *base_logits, *w0, loss0 = 0, loss = 0;
    int64_t n, i, nw, k;
    int in_bounds = 1, zero_b = 1, step;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, &loss0);
    n = eff_tensor_nelements(&f.m.acts.logits);
    base_logits = (float *)malloc((size_t)n * sizeof(float));
    memcpy(base_logits, f.m.acts.logits.data, (size_t)n * sizeof(float));
    memset(&lo, 0, sizeof lo);
    lo.r = 4; lo.alpha = 16; lo.targets = "q,v,down";
    EFF_CHECK_STATUS(ctx, eff_lora_attach(ctx, &lora, &f.m, &lo), EFF_OK, "attach LoRA q,v,down");
    EFF_CHECK(lora.n_mods == 3 * f.m.cfg.n_layers && lora.mods[0].scale == 4.0f, "3 modules per layer, scale alpha/r = 4");
    EFF_CHECK(strcmp(lora.mods[0].path, "model.layers.0.self_attn.q_proj") == 0 && strcmp(lora.mods[2].path, "model.layers.0.mlp.down_proj") == 0,
              "HF module paths (%s, %s)", lora.mods[0].path, lora.mods[2].path);
    for (k = 0; k < lora.n_mods; k++) {
        float bound = 1.0f / sqrtf((float)lora.mods[k].in);
        for (i = 0; i < lora.mods[k].r * lora.mods[k].in; i++) in_bounds &= fabsf(((float *)lora.mods[k].A.data)[i]) <= bound;
        for (i = 0; i < lora.mods[k].r * lora.mods[k].out; i++) zero_b &= ((float *)lora.mods[k].B.data)[i] == 0.0f;
    }
    EFF_CHECK(in_bounds && zero_b, "PEFT init: A within +-1/sqrt(in), B zero");
    eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, &loss);
    EFF_CHECK(memcmp(base_logits, f.m.acts.logits.data, (size_t)n * sizeof(float)) == 0, "B = 0: logits bit-identical to the base model");
    EFF_CHECK(eff_lora_n_trainable(&lora) == f.m.cfg.n_layers * 4 * ((32 + 32) + (32 + 16) + (72 + 32)), "trainable count r(in + out) per module (%lld)",
              (long long)eff_lora_n_trainable(&lora));
    memset(&oo, 0, sizeof oo);
    oo.lr = 1e-2f;
    eff_optim_init(ctx, &o, &oo);
    EFF_CHECK_STATUS(ctx, eff_optim_add_model(ctx, &o, &f.m, 0, 0), EFF_ERR_INVALID_ARG, "add_model refuses a frozen model");
    EFF_CHECK_STATUS(ctx, eff_lora_add_to_optim(ctx, &lora, &o, 0), EFF_OK, "LoRA params into the optimizer");
    EFF_CHECK(eff_optim_n_params(&o) == eff_lora_n_trainable(&lora), "the optimizer holds exactly the LoRA tensors");
    nw = eff_tensor_nelements(&f.m.layers[0].q.W);
    w0 = (float *)malloc((size_t)nw * sizeof(float));
    memcpy(w0, f.m.layers[0].q.W.data, (size_t)nw * sizeof(float));
    for (step = 0; step < 20; step++) {
        eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, &loss);
        eff_model_backward(ctx, &f.m);
        eff_optim_step(ctx, &o);
    }
    EFF_CHECK(loss < loss0 - 0.1f, "20 LoRA steps lower the loss %.3f -> %.3f", (double)loss0, (double)loss);
    EFF_CHECK(memcmp(w0, f.m.layers[0].q.W.data, (size_t)nw * sizeof(float)) == 0, "the base weights did not change");
    EFF_CHECK(f.m.grads.base == NULL, "no base gradients were allocated");
    eff_optim_free(ctx, &o);
    eff_lora_detach(ctx, &lora);
    EFF_CHECK(f.m.layers[0].q.adapter.forward == NULL, "detach removes the adapters");
    memset(&lo, 0, sizeof lo);
    lo.targets = "nothing_here";
    f.m.frozen = 0;
    EFF_CHECK_STATUS(ctx, eff_lora_attach(ctx, &lora, &f.m, &lo), EFF_ERR_NOT_FOUND, "targets matching nothing are an error");
    free(base_logits); free(w0);
    fixture_close(ctx, &f);
}

/* Directional finite difference of the loss in the trainable tensors: (L(p + h v) - L(p - h v)) / 2h
   against g . v, v uniform in [-1, 1] scaled to |h v| = 1e-2. */
typedef struct {
    eff_tensor **w, **g;
    int n;
} tset;
typedef float (*loss_fn)(eff_ctx *ctx, void *user);
static void check_fd(eff_ctx *ctx, const char *what, tset *ts, loss_fn f, void *user, double tol, double step) {
    double dot = 0.0, vn = 0.0, h, lp, lm, fd;
    float **v = (float **)calloc((size_t)ts->n, sizeof(float *));
    int i;
    int64_t j, n;
    eff_test_seed(99);
    for (i = 0; i < ts->n; i++) {
        n = eff_tensor_nelements(ts->w[i]);
        memset(ts->g[i]->data, 0, (size_t)n * 4);
    }
    f(ctx, user);   /* fills the gradients */
    for (i = 0; i < ts->n; i++) {
        n = eff_tensor_nelements(ts->w[i]);
        if (n <= 0) n = 1;
        v[i] = (float *)calloc((size_t)n, sizeof(float));
        for (j = 0; j < n; j++) {
            v[i][j] = (float)eff_test_uniform();
            dot += (double)v[i][j] * ((float *)ts->g[i]->data)[j];
            vn += (double)v[i][j] * v[i][j];
        }
    }
    h = step / sqrt(vn);
    for (i = 0; i < ts->n; i++) for (j = 0; j < eff_tensor_nelements(ts->w[i]); j++) ((float *)ts->w[i]->data)[j] += (float)(h * v[i][j]);
    lp = f(ctx, user);
    for (i = 0; i < ts->n; i++) for (j = 0; j < eff_tensor_nelements(ts->w[i]); j++) ((float *)ts->w[i]->data)[j] -= (float)(2 * h * v[i][j]);
    lm = f(ctx, user);
    for (i = 0; i < ts->n; i++) for (j = 0; j < eff_tensor_nelements(ts->w[i]); j++) ((float *)ts->w[i]->data)[j] += (float)(h * v[i][j]);
    fd = (lp - lm) / (2 * h);
    EFF_CHECK(fabs(fd - dot) <= tol * fabs(dot) && dot != 0.0, "%s: gradient . v %.6g vs finite difference %.6g", what, dot, fd);
    for (i = 0; i < ts->n; i++) free(v[i]);
    free(v);
}

typedef struct { fixture *f; eff_lora *lora; } lora_fd_user;
static float lora_loss(eff_ctx *ctx, void *user) {
    lora_fd_user *u = (lora_fd_user *)user;
    float loss = 0.0f;
    eff_model_forward(ctx, &u->f->m, u->f->tok, u->f->tgt, u->f->B, u->f->T, &loss);
    eff_lora_zero_grads(u->lora);
    eff_model_backward(ctx, &u->f->m);
    return loss;
}

/* LoRA with dropout (a fixed mask per step) and DoRA against finite differences. */
static void test_lora_fd(eff_ctx *ctx, int dora) {
    fixture f;
    eff_lora lora;
    eff_lora_opts lo;
    lora_fd_user u;
    tset ts;
    eff_tensor *w[64], *g[64];
    int64_t k;
    if (!fixture_open(ctx, &f, FIXTURES "/model/gpt2", FIXTURES "/model/gpt2/state.safetensors")) return;
    memset(&lo, 0, sizeof lo);
    lo.r = 2; lo.alpha = 4; lo.targets = "all"; lo.dropout = dora ? 0.0f : 0.25f; lo.use_dora = dora; lo.init_random_b = 1; lo.seed = 5;
    EFF_CHECK_STATUS(ctx, eff_lora_attach(ctx, &lora, &f.m, &lo), EFF_OK, "attach");
    ts.n = 0;
    for (k = 0; k < lora.n_mods && ts.n < 60; k++) {
        /* DoRA detaches the weight norm (as PEFT), so only the magnitude's gradient is exact */
        if (!dora) { w[ts.n] = &lora.mods[k].A; g[ts.n++] = &lora.mods[k].dA; w[ts.n] = &lora.mods[k].B; g[ts.n++] = &lora.mods[k].dB; }
        else { w[ts.n] = &lora.mods[k].mag; g[ts.n++] = &lora.mods[k].dmag; }
    }
    ts.w = w; ts.g = g;
    u.f = &f; u.lora = &lora;
    check_fd(ctx, dora ? "GPT-2 DoRA magnitudes on every linear (fused c_attn)" : "GPT-2 LoRA with dropout 0.25 on every linear", &ts, lora_loss, &u, 2e-2, 1e-2);
    eff_lora_detach(ctx, &lora);
    fixture_close(ctx, &f);
}

/* ---------------------------------------------------------------------------
   QLoRA
   --------------------------------------------------------------------------- */
static void test_qlora(eff_ctx *ctx) {
    fixture f;
    eff_model ref;
    eff_qlora q;
    eff_lora lr;
    eff_lora_opts lo;
    eff_quant_4bit_opts qo;
    size_t before, after;
    float *logits;
    int64_t n, l, k;
    double e, worst = 0.0;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    eff_model_load_hf(ctx, &ref, FIXTURES "/model/llama");
    memset(&lo, 0, sizeof lo);
    lo.r = 4; lo.alpha = 8; lo.targets = "all"; lo.init_random_b = 1; lo.seed = 11;
    memset(&qo, 0, sizeof qo);
    qo.quant_type = EFF_NF4; qo.blocksize = 64; qo.double_quant = 1;
    /* reference: the same weights NF4-quantized and dequantized in full, plain LoRA on top */
    for (l = 0; l < ref.cfg.n_layers; l++) {
        eff_model_linear *ls[7];
        ls[0] = &ref.layers[l].q; ls[1] = &ref.layers[l].k; ls[2] = &ref.layers[l].v; ls[3] = &ref.layers[l].o;
        ls[4] = &ref.layers[l].ffn.gate; ls[5] = &ref.layers[l].ffn.up; ls[6] = &ref.layers[l].ffn.down;
        for (k = 0; k < 7; k++) {
            eff_quant_4bit t;
            eff_quant_4bit_quantize(ctx, &t, (const float *)ls[k]->W.data, ls[k]->W.ne[0], ls[k]->W.ne[1], &qo);
            eff_quant_4bit_dequantize(ctx, &t, (float *)ls[k]->W.data);
            eff_quant_4bit_free(ctx, &t);
        }
    }
    EFF_CHECK_STATUS(ctx, eff_lora_attach(ctx, &lr, &ref, &lo), EFF_OK, "reference LoRA");
    eff_model_forward(ctx, &ref, f.tok, f.tgt, f.B, f.T, NULL);
    eff_model_backward(ctx, &ref);
    before = eff_ctx_bytes_in_use(ctx);
    EFF_CHECK_STATUS(ctx, eff_qlora_attach(ctx, &q, &f.m, &lo, &qo), EFF_OK, "QLoRA attach (NF4 + double quant)");
    after = eff_ctx_bytes_in_use(ctx);
    EFF_CHECK(f.m.layers[0].q.W.data == NULL && f.m.layers[1].ffn.down.W.data == NULL, "the f32 base weights are gone");
    EFF_CHECK(after < before, "QLoRA shrinks the model's memory %zu -> %zu bytes (base %lld weights in %lld bytes)", before, after,
              (long long)q.base_params, (long long)q.base_bytes);
    EFF_CHECK(eff_qlora_bits_per_weight(&q) > 4.1 && eff_qlora_bits_per_weight(&q) < 4.2, "base at %.3f bits per weight (4 + 8/64 + 32/(64*256))",
              eff_qlora_bits_per_weight(&q));
    eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, NULL);
    n = eff_tensor_nelements(&f.m.acts.logits);
    logits = (float *)ref.acts.logits.data;
    e = eff_test_nmse_ff((const float *)f.m.acts.logits.data, logits, n);
    EFF_CHECK(e <= 1e-10, "QLoRA forward == dequantized base + LoRA (nmse %.2g)", e);
    EFF_CHECK_STATUS(ctx, eff_model_backward(ctx, &f.m), EFF_OK, "QLoRA backward (tiles dequantized again)");
    for (k = 0; k < q.lora.n_mods; k++) {
        double ea = eff_test_nmse_ff((const float *)q.lora.mods[k].dA.data, (const float *)lr.mods[k].dA.data, eff_tensor_nelements(&lr.mods[k].dA));
        double eb = eff_test_nmse_ff((const float *)q.lora.mods[k].dB.data, (const float *)lr.mods[k].dB.data, eff_tensor_nelements(&lr.mods[k].dB));
        if (ea > worst) worst = ea;
        if (eb > worst) worst = eb;
    }
    EFF_CHECK(worst <= 1e-10, "QLoRA adapter gradients == dequantized-base LoRA gradients (worst nmse %.2g)", worst);
    EFF_CHECK_STATUS(ctx, eff_lora_merge(ctx, &q.lora), EFF_ERR_DTYPE, "merging into NF4 weights is refused");
    eff_qlora_detach(ctx, &q);
    eff_lora_detach(ctx, &lr);
    eff_model_free(ctx, &ref);
    fixture_close(ctx, &f);
}

/* ---------------------------------------------------------------------------
   LOMO
   --------------------------------------------------------------------------- */
static int params_equal(const eff_model *a, const eff_model *b, double *maxrel) {
    int64_t i, j;
    int same = 1;
    *maxrel = 0.0;
    for (i = 0; i < a->n_params; i++) {
        int64_t n = eff_tensor_nelements(a->params[i].w);
        const float *x = (const float *)a->params[i].w->data, *y = (const float *)b->params[i].w->data;
        same &= memcmp(x, y, (size_t)n * 4) == 0;
        for (j = 0; j < n; j++) {
            double d = fabs((double)x[j] - y[j]) / (fabs((double)y[j]) + 1e-6);
            if (d > *maxrel) *maxrel = d;
        }
    }
    return same;
}

static void test_lomo(eff_ctx *ctx, const char *arch, float clip, int ckpt) {
    char mdir[200], spath[260];
    fixture a, b;
    eff_optim o;
    eff_optim_opts oo;
    eff_lomo lomo;
    eff_lomo_opts lo;
    int step, same;
    double maxrel;
    snprintf(mdir, sizeof mdir, "%s/model/%s", FIXTURES, arch);
    snprintf(spath, sizeof spath, "%s/state.safetensors", mdir);
    if (!fixture_open(ctx, &a, mdir, spath)) return;
    if (!fixture_open(ctx, &b, mdir, spath)) { fixture_close(ctx, &a); return; }
    a.m.checkpoint = b.m.checkpoint = ckpt;
    memset(&oo, 0, sizeof oo);
    oo.kind = EFF_OPTIM_SGD; oo.lr = 0.05f; oo.weight_decay = 0.01f; oo.max_grad_norm = clip;
    eff_model_alloc_grads(ctx, &a.m);
    eff_optim_init(ctx, &o, &oo);
    eff_optim_add_model(ctx, &o, &a.m, 0, 0);
    memset(&lo, 0, sizeof lo);
    lo.lr = 0.05f; lo.weight_decay = 0.01f; lo.clip_grad_norm = clip;
    EFF_CHECK_STATUS(ctx, eff_lomo_init(ctx, &lomo, &b.m, &lo), EFF_OK, "LOMO init (layer-wise gradients + hook)");
    for (step = 0; step < 3; step++) {
        float la, lb;
        eff_model_forward(ctx, &a.m, a.tok, a.tgt, a.B, a.T, &la);
        eff_model_backward(ctx, &a.m);
        eff_optim_step(ctx, &o);
        EFF_CHECK_STATUS(ctx, eff_lomo_step(ctx, &lomo, b.tok, b.tgt, b.B, b.T, &lb), EFF_OK, "LOMO step");
        if (step == 0) EFF_CHECK(la == lb, "%s: same loss before the first update", arch);
    }
    same = params_equal(&b.m, &a.m, &maxrel);
    if (clip == 0.0f)
        EFF_CHECK(same, "%s%s: 3 LOMO steps == 3 SGD steps (lr 0.05, wd 0.01), bit-identical parameters", arch, ckpt ? " + checkpointing" : "");
    else
        EFF_CHECK(maxrel <= 1e-5 && fabs(lomo.last_grad_norm - o.last_grad_norm) <= 1e-6 * o.last_grad_norm,
                  "%s: two-pass clipped LOMO == SGD + clip_grad_norm_(%g) (max rel diff %.2g, norms %.6g / %.6g)", arch, (double)clip, maxrel,
                  lomo.last_grad_norm, o.last_grad_norm);
    eff_lomo_free(ctx, &lomo);
    eff_optim_free(ctx, &o);
    fixture_close(ctx, &a);
    fixture_close(ctx, &b);
}

static eff_status inject_nan(eff_ctx *ctx, eff_model *m, eff_tensor *dlogits, void *user) {
    int *left = (int *)user;
    (void)ctx; (void)m;
    if (*left > 0) { ((float *)dlogits->data)[5] = NAN; (*left)--; }
    return EFF_OK;
}
static void test_lomo_scaling(eff_ctx *ctx) {
    fixture f;
    eff_lomo lomo;
    eff_lomo_opts lo;
    float *w0;
    int64_t n;
    int nans = 2;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    memset(&lo, 0, sizeof lo);
    lo.lr = 0.01f; lo.loss_scaling = 1; lo.init_scale = 1024.0f; lo.growth_interval = 2;
    eff_lomo_init(ctx, &lomo, &f.m, &lo);
    f.m.on_dlogits = inject_nan; f.m.on_dlogits_user = &nans;
    n = eff_tensor_nelements(&f.m.tok_emb);
    w0 = (float *)malloc((size_t)n * 4);
    memcpy(w0, f.m.tok_emb.data, (size_t)n * 4);
    eff_lomo_step(ctx, &lomo, f.tok, f.tgt, f.B, f.T, NULL);
    EFF_CHECK(lomo.last_skipped && lomo.loss_scale == 512.0f && memcmp(w0, f.m.tok_emb.data, (size_t)n * 4) == 0,
              "LOMO: a NaN gradient skips the step in the norm pass (params untouched) and halves the scale (%g)", (double)lomo.loss_scale);
    eff_lomo_step(ctx, &lomo, f.tok, f.tgt, f.B, f.T, NULL);
    eff_lomo_step(ctx, &lomo, f.tok, f.tgt, f.B, f.T, NULL);
    EFF_CHECK(!lomo.last_skipped && lomo.step == 1 && lomo.n_skipped == 2 && lomo.loss_scale == 256.0f && memcmp(w0, f.m.tok_emb.data, (size_t)n * 4) != 0,
              "LOMO recovers after 2 skipped steps (scale %g) and updates", (double)lomo.loss_scale);
    eff_lomo_step(ctx, &lomo, f.tok, f.tgt, f.B, f.T, NULL);
    EFF_CHECK(lomo.step == 2 && lomo.loss_scale == 512.0f, "2 good steps grow the scale again (%g)", (double)lomo.loss_scale);
    free(w0);
    eff_lomo_free(ctx, &lomo);
    fixture_close(ctx, &f);
}

/* Peak bytes of a few steps of each optimizer on a small Llama: AdamW > SGD > LOMO. */
static size_t peak_of(int mode, int ckpt) {
    eff_ctx *c;
    eff_ctx_opts co;
    eff_model m;
    eff_model_config cfg;
    eff_optim o;
    eff_optim_opts oo;
    eff_lomo lomo;
    eff_lomo_opts lo;
    int32_t x[4 * 32], y[4 * 32];
    int i;
    size_t peak;
    memset(&co, 0, sizeof co);
    co.seed = 1;
    if (eff_ctx_create(&co, &c)) return 0;
    memset(&cfg, 0, sizeof cfg);
    cfg.arch = EFF_MODEL_LLAMA; cfg.vocab_size = 256; cfg.max_seq = 64; cfg.dim = 64; cfg.n_layers = 6; cfg.n_heads = 4; cfg.hidden_dim = 176;
    eff_model_init(c, &m, &cfg);
    m.checkpoint = ckpt;
    for (i = 0; i < 4 * 32; i++) { x[i] = (int32_t)((i * 7) % 256); y[i] = (int32_t)((i * 7 + 7) % 256); }
    memset(&oo, 0, sizeof oo);
    memset(&lo, 0, sizeof lo);
    if (mode < 2) {
        oo.kind = mode == 0 ? EFF_OPTIM_ADAMW : EFF_OPTIM_SGD;
        oo.momentum = mode == 1 ? 0.9f : 0.0f;
        eff_model_alloc_grads(c, &m);
        eff_optim_init(c, &o, &oo);
        eff_optim_add_model(c, &o, &m, 0, 0);
    } else {
        eff_lomo_init(c, &lomo, &m, &lo);
    }
    for (i = 0; i < 2; i++) {
        if (mode < 2) {
            eff_model_forward(c, &m, x, y, 4, 32, NULL);
            eff_model_backward(c, &m);
            eff_optim_step(c, &o);
        } else {
            eff_lomo_step(c, &lomo, x, y, 4, 32, NULL);
        }
    }
    peak = eff_ctx_bytes_peak(c);
    if (mode < 2) eff_optim_free(c, &o); else eff_lomo_free(c, &lomo);
    eff_model_free(c, &m);
    eff_ctx_destroy(c);
    return peak;
}
static void test_lomo_memory(void) {
    int ck;
    for (ck = 0; ck < 2; ck++) {
        size_t adam = peak_of(0, ck), sgd = peak_of(1, ck), lomo = peak_of(2, ck);
        EFF_CHECK(adam > sgd && sgd > lomo && lomo > 0, "peak bytes%s: AdamW %zu > SGD(momentum) %zu > LOMO %zu", ck ? " with checkpointing" : "",
                  adam, sgd, lomo);
    }
}

/* ---------------------------------------------------------------------------
   Houlsby adapters, prefix and prompt tuning, BitFit
   --------------------------------------------------------------------------- */
typedef struct { fixture *f; eff_peft *p; } peft_user;
static float peft_loss(eff_ctx *ctx, void *user) {
    peft_user *u = (peft_user *)user;
    float loss = 0.0f;
    eff_peft_forward(ctx, u->p, u->f->tok, u->f->tgt, u->f->B, u->f->T, &loss);
    eff_peft_zero_grads(u->p);
    eff_model_backward(ctx, &u->f->m);
    return loss;
}

static void test_peft(eff_ctx *ctx, const char *arch, int kind, int64_t size) {
    static const char *kn[5] = {"", "Houlsby adapters", "prefix tuning", "prompt tuning", "BitFit"};
    char mdir[200], spath[260], what[160];
    fixture f;
    eff_peft p;
    eff_peft_opts po;
    peft_user u;
    tset ts;
    eff_tensor *w[128], *g[128];
    int64_t k, want = 0, C, L, kvd;
    eff_status s;
    snprintf(mdir, sizeof mdir, "%s/model/%s", FIXTURES, arch);
    snprintf(spath, sizeof spath, "%s/state.safetensors", mdir);
    if (!fixture_open(ctx, &f, mdir, spath)) return;
    C = f.m.cfg.dim; L = f.m.cfg.n_layers; kvd = f.m.cfg.n_kv_heads * f.m.cfg.head_dim;
    memset(&po, 0, sizeof po);
    po.kind = kind; po.size = size; po.seed = 3;
    s = eff_peft_attach(ctx, &p, &f.m, &po);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, kn[kind]);
    if (s) { fixture_close(ctx, &f); return; }
    if (kind == EFF_PEFT_HOULSBY) {
        want = L * 2 * (2 * size * C + size + C);
        for (k = 0; k < p.n_tensors; k++) eff_rng_fill_normal(eff_ctx_rng(ctx), (float *)p.w[k].data, eff_tensor_nelements(&p.w[k]), 0.0f, 0.05f);
    }
    if (kind == EFF_PEFT_PREFIX) want = L * 2 * size * kvd;
    if (kind == EFF_PEFT_PROMPT) want = size * C;
    if (kind == EFF_PEFT_BITFIT) want = L * (3 * C + C + f.m.cfg.hidden_dim + C + 2 * C) + C;
    EFF_CHECK(eff_peft_n_trainable(&p) == want, "%s %s: %lld trainable parameters (formula %lld), %.2f%% of %lld", arch, kn[kind],
              (long long)eff_peft_n_trainable(&p), (long long)want, 100.0 * (double)eff_peft_n_trainable(&p) / (double)eff_model_config_n_params(&f.m.cfg),
              (long long)eff_model_config_n_params(&f.m.cfg));
    ts.n = 0;
    for (k = 0; k < p.n_tensors && k < 128; k++) { w[ts.n] = &p.w[k]; g[ts.n++] = &p.g[k]; }
    ts.w = w; ts.g = g;
    u.f = &f; u.p = &p;
    snprintf(what, sizeof what, "%s %s (size %lld)", arch, kn[kind], (long long)size);
    check_fd(ctx, what, &ts, peft_loss, &u, kind == EFF_PEFT_PROMPT ? 5e-2 : 2e-2, kind == EFF_PEFT_PREFIX ? 0.2 : kind == EFF_PEFT_PROMPT ? 0.02 : 1e-2);
    {   /* a few optimizer steps lower the loss and leave the base alone */
        eff_optim o;
        eff_optim_opts oo;
        float l0 = 0, l1 = 0;
        int step;
        float w0 = ((float *)f.m.layers[0].q.W.data)[3];
        memset(&oo, 0, sizeof oo);
        oo.lr = 1e-2f;
        eff_optim_init(ctx, &o, &oo);
        eff_peft_add_to_optim(ctx, &p, &o, 0);
        for (step = 0; step < 15; step++) {
            eff_peft_forward(ctx, &p, f.tok, f.tgt, f.B, f.T, step == 0 ? &l0 : &l1);
            eff_model_backward(ctx, &f.m);
            eff_optim_step(ctx, &o);
        }
        EFF_CHECK(l1 < l0 && ((float *)f.m.layers[0].q.W.data)[3] == w0, "%s: 15 steps lower the loss %.4f -> %.4f, base unchanged", what,
                  (double)l0, (double)l1);
        eff_optim_free(ctx, &o);
    }
    eff_peft_detach(ctx, &p);
    EFF_CHECK(!f.m.frozen && !f.m.prompt.data && !f.m.layers[0].prefix_k.data && !f.m.layers[0].o.adapter.forward, "%s: detach restores the model", what);
    fixture_close(ctx, &f);
}

/* ---------------------------------------------------------------------------
   QAT, distillation, pruning
   --------------------------------------------------------------------------- */
static void test_qat(eff_ctx *ctx) {
    fixture f;
    eff_qat q;
    eff_qat_opts qo;
    eff_optim o;
    eff_optim_opts oo;
    float *w0, l0 = 0, l1 = 0;
    int64_t n, i, r, C;
    int on_grid = 1, step;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    memset(&qo, 0, sizeof qo);
    qo.bits = 4;
    EFF_CHECK_STATUS(ctx, eff_qat_init(ctx, &q, &f.m, &qo), EFF_OK, "QAT init (int4 per channel)");
    n = eff_tensor_nelements(&f.m.layers[0].q.W);
    C = f.m.layers[0].q.W.ne[1];
    w0 = (float *)malloc((size_t)n * 4);
    memcpy(w0, f.m.layers[0].q.W.data, (size_t)n * 4);
    EFF_CHECK_STATUS(ctx, eff_qat_apply(ctx, &q), EFF_OK, "QAT apply");
    for (r = 0; r < f.m.layers[0].q.W.ne[0]; r++)
        for (i = 0; i < C; i++) {
            double v = ((float *)f.m.layers[0].q.W.data)[r * C + i] / q.scale[r];
            on_grid &= fabs(v - nearbyint(v)) < 1e-4 && v >= -8.5 && v <= 7.5;
        }
    EFF_CHECK(on_grid, "fake-quantized weights sit on the int4 grid of their row's scale");
    EFF_CHECK_STATUS(ctx, eff_qat_restore(ctx, &q), EFF_OK, "QAT restore");
    EFF_CHECK(memcmp(w0, f.m.layers[0].q.W.data, (size_t)n * 4) == 0, "restore puts the latent fp32 weights back exactly");
    eff_model_alloc_grads(ctx, &f.m);
    memset(&oo, 0, sizeof oo);
    oo.lr = 3e-3f;
    eff_optim_init(ctx, &o, &oo);
    eff_optim_add_model(ctx, &o, &f.m, 0, 0);
    for (step = 0; step < 15; step++) {
        eff_qat_apply(ctx, &q);
        eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, step == 0 ? &l0 : &l1);
        eff_model_backward(ctx, &f.m);
        eff_qat_restore(ctx, &q);
        eff_optim_step(ctx, &o);
    }
    EFF_CHECK(l1 < l0 - 0.1f, "15 QAT steps (STE) lower the fake-quantized model's loss %.3f -> %.3f", (double)l0, (double)l1);
    eff_optim_free(ctx, &o);
    eff_qat_free(ctx, &q);
    free(w0);
    fixture_close(ctx, &f);
}

typedef struct { fixture *f; eff_distill *d; } distill_user;
static float distill_loss(eff_ctx *ctx, void *user) {
    distill_user *u = (distill_user *)user;
    float loss = 0.0f;
    eff_distill_forward(ctx, u->d, u->f->tok, u->f->tgt, u->f->B, u->f->T, &loss);
    eff_model_zero_grads(&u->f->m);
    eff_model_backward(ctx, &u->f->m);
    return loss;
}

static void test_distill(eff_ctx *ctx) {
    fixture f;
    eff_model teacher;
    eff_distill d;
    eff_distill_opts dopts;
    distill_user u;
    tset ts;
    eff_tensor *w[64], *g[64];
    int64_t map[2] = {1, -1}, i, n;
    float *t0;
    double kl = 0.0;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    eff_model_load_hf(ctx, &teacher, FIXTURES "/model/llama");
    for (i = 0; i < teacher.n_params; i++) {   /* a different teacher */
        float *p = (float *)teacher.params[i].w->data;
        int64_t j, ne = eff_tensor_nelements(teacher.params[i].w);
        for (j = 0; j < ne; j++) p[j] *= 1.3f;
    }
    memset(&dopts, 0, sizeof dopts);
    dopts.alpha = 0.7f; dopts.temperature = 2.0f; dopts.hidden_weight = 0.5f; dopts.layer_map = map;
    EFF_CHECK_STATUS(ctx, eff_distill_init(ctx, &d, &f.m, &teacher, &dopts), EFF_OK, "distill init");
    eff_model_alloc_grads(ctx, &f.m);
    n = eff_tensor_nelements(&teacher.tok_emb);
    t0 = (float *)malloc((size_t)n * 4);
    memcpy(t0, teacher.tok_emb.data, (size_t)n * 4);
    eff_distill_forward(ctx, &d, f.tok, f.tgt, f.B, f.T, NULL);
    {   /* KL against a direct float64 computation */
        int64_t N = f.B * f.T, V = f.m.cfg.vocab_size, r, j;
        for (r = 0; r < N; r++) {
            double zs = 0, zt = 0;
            const float *s = (const float *)f.m.acts.logits.data + r * V, *t = (const float *)teacher.acts.logits.data + r * V;
            for (j = 0; j < V; j++) { zs += exp(s[j] / 2.0); zt += exp(t[j] / 2.0); }
            for (j = 0; j < V; j++) { double pt = exp(t[j] / 2.0) / zt; kl += pt * (log(pt) - (s[j] / 2.0 - log(zs))); }
        }
        kl = 0.7 * 4.0 * kl / (double)N;
    }
    EFF_CHECK(fabs(d.kl - kl) <= 1e-5 * kl && d.hidden > 0.0f && fabs(d.loss - (d.ce + d.kl + d.hidden)) < 1e-6,
              "distill loss = CE %.4f + alpha T^2 KL %.4f (float64 %.4f) + hidden MSE %.4f", (double)d.ce, (double)d.kl, kl, (double)d.hidden);
    ts.n = 0;
    for (i = 0; i < f.m.n_params && ts.n < 64; i++) { w[ts.n] = f.m.params[i].w; g[ts.n++] = f.m.params[i].g; }
    ts.w = w; ts.g = g;
    u.f = &f; u.d = &d;
    check_fd(ctx, "distillation (CE + KL(T = 2) + hidden MSE with a layer map) student gradient", &ts, distill_loss, &u, 2e-2, 1e-2);
    EFF_CHECK(memcmp(t0, teacher.tok_emb.data, (size_t)n * 4) == 0, "the teacher stays frozen");
    eff_distill_free(ctx, &d);
    EFF_CHECK(!f.m.on_grads && !f.m.on_dlogits, "free removes the student's hooks");
    free(t0);
    eff_model_free(ctx, &teacher);
    fixture_close(ctx, &f);
}

static void test_prune(eff_ctx *ctx) {
    fixture f;
    eff_prune p;
    eff_optim o;
    eff_optim_opts oo;
    int64_t i, n, zeros = 0;
    float *w0;
    int step, ok = 1, kept_init = 1;
    if (!fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) return;
    EFF_CHECK_STATUS(ctx, eff_prune_init(ctx, &p, &f.m), EFF_OK, "prune init (theta_0 saved)");
    n = eff_tensor_nelements(&f.m.layers[0].ffn.up.W);
    w0 = (float *)malloc((size_t)n * 4);
    memcpy(w0, f.m.layers[0].ffn.up.W.data, (size_t)n * 4);
    EFF_CHECK_STATUS(ctx, eff_prune_magnitude(ctx, &p, 0.5f), EFF_OK, "prune 50%");
    EFF_CHECK(fabs(eff_prune_sparsity(&p) - 0.5) < 0.01, "sparsity %.3f after pruning half of every linear", eff_prune_sparsity(&p));
    {   /* the pruned ones are the smallest */
        float maxp = 0.0f, mink = 1e30f;
        for (i = 0; i < n; i++) {
            float a = fabsf(w0[i]);
            if (!f.m.layers[0].ffn.up.mask[i]) { if (a > maxp) maxp = a; } else if (a < mink) mink = a;
        }
        EFF_CHECK(maxp <= mink, "magnitude pruning removed the smallest |w| (max pruned %.4g <= min kept %.4g)", (double)maxp, (double)mink);
    }
    eff_prune_magnitude(ctx, &p, 0.2f);
    EFF_CHECK(fabs(eff_prune_sparsity(&p) - 0.6) < 0.01, "iterative: 20%% of the remaining -> sparsity %.3f", eff_prune_sparsity(&p));
    eff_model_alloc_grads(ctx, &f.m);
    memset(&oo, 0, sizeof oo);
    oo.lr = 1e-2f;
    eff_optim_init(ctx, &o, &oo);
    eff_optim_add_model(ctx, &o, &f.m, 0, 0);
    for (step = 0; step < 5; step++) {
        eff_model_forward(ctx, &f.m, f.tok, f.tgt, f.B, f.T, NULL);
        eff_model_backward(ctx, &f.m);
        eff_optim_step(ctx, &o);
        eff_prune_apply(ctx, &p);
    }
    for (i = 0; i < n; i++) {
        float v = ((float *)f.m.layers[0].ffn.up.W.data)[i];
        if (!f.m.layers[0].ffn.up.mask[i]) { ok &= v == 0.0f; zeros++; }
    }
    EFF_CHECK(ok && zeros > 0, "after 5 steps with the mask re-applied the pruned weights are still 0 (%lld)", (long long)zeros);
    eff_prune_rewind(ctx, &p);
    for (i = 0; i < n; i++) {
        float v = ((float *)f.m.layers[0].ffn.up.W.data)[i];
        kept_init &= f.m.layers[0].ffn.up.mask[i] ? v == w0[i] : v == 0.0f;
    }
    EFF_CHECK(kept_init, "lottery-ticket rewinding: survivors back at theta_0, pruned at 0");
    eff_optim_free(ctx, &o);
    eff_prune_free(ctx, &p);
    EFF_CHECK(f.m.layers[0].q.mask == NULL, "free detaches the masks");
    free(w0);
    fixture_close(ctx, &f);
}

/* ---------------------------------------------------------------------------
   Data and checkpoints
   --------------------------------------------------------------------------- */
static int64_t make_text(char *buf, int64_t cap) {
    static const char *w[] = {"the cat", "a dog", "sees", "likes", "the red ball", "a green hat", "today", "at home"};
    int64_t n = 0, i = 0;
    while (n + 40 < cap) { n += snprintf(buf + n, (size_t)(cap - n), "%s %s %s %s. ", w[i % 2], w[2 + (i / 2) % 2], w[4 + (i / 3) % 2], w[6 + (i / 5) % 2]); i++; }
    return n;
}

static void test_data(eff_ctx *ctx) {
    static char text[20000];
    eff_tokenizer tok;
    eff_data d, d2;
    eff_data_opts o;
    int32_t x[4 * 16], y[4 * 16], x2[4 * 16], y2[4 * 16];
    int64_t n = make_text(text, sizeof text), i, seen = 0, b;
    int ok = 1, differs = 0;
    (void)seen;
    eff_tokenizer_byte(ctx, &tok);
    memset(&o, 0, sizeof o);
    o.B = 4; o.T = 16; o.seed = 5;
    EFF_CHECK_STATUS(ctx, eff_data_from_text(ctx, &d, &tok, text, n, &o), EFF_OK, "dataset from text (byte tokenizer)");
    EFF_CHECK(d.n_train == n - (int64_t)(n * 0.1) && d.n_chunks == (d.n_train - 1) / 16 && eff_data_n_val_batches(&d) > 0,
              "90/10 split: %lld train tokens, %lld windows, %lld validation batches", (long long)d.n_train, (long long)d.n_chunks,
              (long long)eff_data_n_val_batches(&d));
    {
        int64_t c, inorder = 1;
        static uint8_t mark[4096];
        memset(mark, 0, sizeof mark);
        for (c = 0; c < d.n_chunks && c < 4096; c++) { if (d.perm[c] >= 0 && d.perm[c] < 4096) mark[d.perm[c]]++; inorder &= d.perm[c] == c; }
        for (c = 0; c < d.n_chunks && c < 4096; c++) ok &= mark[c] == 1;
        differs = !inorder;
        eff_data_next(ctx, &d, x, y);
        for (b = 0; b < 4; b++) {
            ok &= memcmp(x + b * 16, d.tokens + d.perm[b] * 16, 64) == 0 && memcmp(y + b * 16, d.tokens + d.perm[b] * 16 + 1, 64) == 0;
            for (i = 0; i < 16; i++) ok &= x[b * 16 + i] == (int32_t)(unsigned char)text[d.perm[b] * 16 + i];
        }
        for (i = 1; i < d.n_chunks / 4; i++) eff_data_next(ctx, &d, x, y);
        seen = d.pos;
        EFF_CHECK(ok && seen == d.n_chunks / 4 * 4, "an epoch is a permutation of the %lld windows; batch b is window perm[b] (bytes of the text), "
                  "targets shifted by one", (long long)d.n_chunks);
    }
    EFF_CHECK(differs, "the order is shuffled");
    eff_data_from_text(ctx, &d2, &tok, text, n, &o);
    eff_data_next(ctx, &d2, x2, y2);
    eff_data_free(ctx, &d);
    eff_data_from_text(ctx, &d, &tok, text, n, &o);
    eff_data_next(ctx, &d, x, y);
    EFF_CHECK(memcmp(x, x2, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0, "the same seed gives the same batches");
    EFF_CHECK_STATUS(ctx, eff_data_val_batch(ctx, &d, 0, x, y), EFF_OK, "validation batch");
    EFF_CHECK(memcmp(x, d.tokens + d.n_train, 16 * 4) == 0, "validation batches come from the held-out tail");
    EFF_CHECK_STATUS(ctx, eff_data_val_batch(ctx, &d, 100000, x, y), EFF_ERR_INVALID_ARG, "validation batch index out of range");
    eff_data_free(ctx, &d2);
    o.B = 100000;
    EFF_CHECK_STATUS(ctx, eff_data_from_text(ctx, &d2, &tok, text, 50, &o), EFF_ERR_SHAPE, "too little text for one batch");
    eff_data_free(ctx, &d);
    eff_data_free(ctx, &d2);
    eff_tokenizer_free(ctx, &tok);
}

/* A small training setup: model + optimizer (+ LoRA with dropout) + data. */
typedef struct {
    eff_model m;
    eff_lora lora;
    eff_optim o;
    eff_data d;
    int use_lora;
} run;
static void run_open(eff_ctx *ctx, run *r, int use_lora, const char *text, int64_t n) {
    eff_model_config c;
    eff_optim_opts oo;
    eff_data_opts dopts;
    eff_tokenizer tok;
    memset(r, 0, sizeof *r);
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.vocab_size = 256; c.max_seq = 32; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 64;
    eff_rng_seed(eff_ctx_rng(ctx), 77);
    eff_model_init(ctx, &r->m, &c);
    memset(&oo, 0, sizeof oo);
    oo.lr = 1e-2f; oo.weight_decay = 0.1f; oo.max_grad_norm = 1.0f; oo.loss_scaling = 1; oo.init_scale = 256.0f; oo.growth_interval = 2;
    oo.schedule.kind = EFF_LR_COSINE; oo.schedule.warmup_steps = 2; oo.schedule.total_steps = 10;
    eff_optim_init(ctx, &r->o, &oo);
    r->use_lora = use_lora;
    if (use_lora) {
        eff_lora_opts lo;
        memset(&lo, 0, sizeof lo);
        lo.r = 4; lo.alpha = 8; lo.dropout = 0.1f; lo.targets = "q,v,up"; lo.init_random_b = 1;
        eff_lora_attach(ctx, &r->lora, &r->m, &lo);
        eff_lora_add_to_optim(ctx, &r->lora, &r->o, 0);
    } else {
        eff_model_alloc_grads(ctx, &r->m);
        eff_optim_add_model(ctx, &r->o, &r->m, 0, 0);
    }
    eff_tokenizer_byte(ctx, &tok);
    memset(&dopts, 0, sizeof dopts);
    dopts.B = 2; dopts.T = 16; dopts.seed = 9;
    eff_data_from_text(ctx, &r->d, &tok, text, n, &dopts);
    eff_tokenizer_free(ctx, &tok);
}
static void run_steps(eff_ctx *ctx, run *r, int k) {
    int32_t x[32], y[32];
    int i;
    for (i = 0; i < k; i++) {
        eff_data_next(ctx, &r->d, x, y);
        r->m.loss_scale = eff_optim_loss_scale(&r->o);
        if (r->use_lora) r->lora.dropout_step = r->o.step;
        eff_model_forward(ctx, &r->m, x, y, 2, 16, NULL);
        eff_model_backward(ctx, &r->m);
        eff_optim_step(ctx, &r->o);
    }
}
static void run_close(eff_ctx *ctx, run *r) {
    eff_optim_free(ctx, &r->o);
    if (r->use_lora) eff_lora_detach(ctx, &r->lora);
    eff_data_free(ctx, &r->d);
    eff_model_free(ctx, &r->m);
}
static int runs_equal(const run *a, const run *b) {
    int64_t i;
    int same = a->o.step == b->o.step && a->o.loss_scale == b->o.loss_scale && a->d.pos == b->d.pos;
    for (i = 0; i < a->m.n_params; i++) same &= memcmp(a->m.params[i].w->data, b->m.params[i].w->data, (size_t)eff_tensor_nbytes(a->m.params[i].w)) == 0;
    for (i = 0; i < a->o.n_params; i++) {
        same &= memcmp(a->o.params[i].param->data, b->o.params[i].param->data, (size_t)eff_tensor_nbytes(a->o.params[i].param)) == 0;
        same &= memcmp(a->o.params[i].m, b->o.params[i].m, (size_t)a->o.params[i].n * 4) == 0;
        same &= memcmp(a->o.params[i].v, b->o.params[i].v, (size_t)a->o.params[i].n * 4) == 0;
    }
    return same;
}

static void test_resume(eff_ctx *ctx, int use_lora) {
    static char text[12000];
    int64_t n = make_text(text, sizeof text);
    run a, b, c;
    char path[256], bad[256];
    const char *what = use_lora ? "LoRA (dropout) + AdamW" : "full AdamW + loss scaling + clip + cosine";
    eff_status s;
    snprintf(path, sizeof path, "%s/ckpt_%d.safetensors", OUTDIR, use_lora);
    snprintf(bad, sizeof bad, "%s/ckpt_%d_truncated.safetensors", OUTDIR, use_lora);
    run_open(ctx, &a, use_lora, text, n);
    run_steps(ctx, &a, 7);
    run_open(ctx, &b, use_lora, text, n);
    run_steps(ctx, &b, 4);
    EFF_CHECK_STATUS(ctx, eff_train_save(ctx, path, &b.m, &b.o, &b.d), EFF_OK, "save checkpoint after 4 steps");
    run_close(ctx, &b);
    run_open(ctx, &c, use_lora, text, n);
    eff_rng_seed(eff_ctx_rng(ctx), 12345);   /* the checkpoint restores the context RNG */
    s = eff_train_load(ctx, path, &c.m, &c.o, &c.d);
    EFF_CHECK_STATUS(ctx, s, EFF_OK, "load checkpoint into fresh objects");
    run_steps(ctx, &c, 3);
    EFF_CHECK(runs_equal(&a, &c), "%s: 4 steps + save + load + 3 steps == 7 steps, bit-identical weights and optimizer state", what);
    {   /* a truncated copy is rejected and nothing changes */
        FILE *fi = fopen(path, "rb"), *fo = fopen(bad, "wb");
        char *buf;
        long sz;
        run before;
        fseek(fi, 0, SEEK_END); sz = ftell(fi); fseek(fi, 0, SEEK_SET);
        buf = (char *)malloc((size_t)sz);
        if (fread(buf, 1, (size_t)sz, fi) != (size_t)sz) sz = 0;
        fwrite(buf, 1, (size_t)(sz * 2 / 3), fo);
        fclose(fi); fclose(fo);
        free(buf);
        before = c;
        (void)before;
        {
            int64_t nb = eff_tensor_nbytes(c.m.params[1].w);
            char *snap = (char *)malloc((size_t)nb);
            int64_t st0 = c.o.step;
            memcpy(snap, c.m.params[1].w->data, (size_t)nb);
            s = eff_train_load(ctx, bad, &c.m, &c.o, &c.d);
            EFF_CHECK(s != EFF_OK && strlen(eff_ctx_last_error(ctx)) > 0, "truncated checkpoint rejected: %s", eff_ctx_last_error(ctx));
            EFF_CHECK(memcmp(snap, c.m.params[1].w->data, (size_t)nb) == 0 && c.o.step == st0, "the model and optimizer are untouched");
            free(snap);
        }
    }
    {   /* a checkpoint of another model is rejected */
        eff_model other;
        eff_model_config oc;
        memset(&oc, 0, sizeof oc);
        oc.arch = EFF_MODEL_LLAMA; oc.vocab_size = 256; oc.max_seq = 32; oc.dim = 48; oc.n_layers = 2; oc.n_heads = 4; oc.hidden_dim = 64;
        eff_model_init(ctx, &other, &oc);
        s = eff_train_load(ctx, path, &other, NULL, NULL);
        EFF_CHECK(s == EFF_ERR_SHAPE && strstr(eff_ctx_last_error(ctx), "another model"), "mismatched checkpoint rejected: %s", eff_ctx_last_error(ctx));
        eff_model_free(ctx, &other);
        s = eff_train_load(ctx, FIXTURES "/model/llama/model.safetensors", &c.m, &c.o, &c.d);
        EFF_CHECK(s == EFF_ERR_FORMAT, "a non-checkpoint safetensors file is rejected: %s", eff_ctx_last_error(ctx));
        s = eff_train_load(ctx, path, &c.m, &c.o, &c.d);
        EFF_CHECK_STATUS(ctx, s, EFF_OK, "the previous checkpoint is intact and still loads");
    }
    run_close(ctx, &a);
    run_close(ctx, &c);
}


int main(void) {
    eff_ctx *ctx;
    eff_ctx_opts co;
    memset(&co, 0, sizeof co);
    co.seed = 42;
    EFF_TEST_BEGIN("test_train");
    if (eff_ctx_create(&co, &ctx)) return 1;
    eff_quant_register(ctx);
    mkdir("build", 0755);
    mkdir(OUTDIR, 0755);
    test_schedule();
#define LEAKCHK(x) do { size_t b0_ = eff_ctx_bytes_in_use(ctx); x; if (getenv("LEAKS")) printf("%s: %zd bytes\n", #x, (ssize_t)(eff_ctx_bytes_in_use(ctx) - b0_)); } while (0)
    LEAKCHK(test_optim_fixture(ctx, 0));
    LEAKCHK(test_optim_fixture(ctx, 1));
    LEAKCHK(test_optim_fixture(ctx, 2));
    LEAKCHK(test_optim_fixture(ctx, 3));
    LEAKCHK(test_clip(ctx));
    LEAKCHK(test_loss_scaling(ctx));
    LEAKCHK(test_lora_peft(ctx, "llama", "lora_llama"));
    LEAKCHK(test_lora_peft(ctx, "gpt2", "lora_gpt2"));
    LEAKCHK(test_lora_peft(ctx, "llama", "dora_llama"));
    LEAKCHK(test_lora_init_and_train(ctx));
    LEAKCHK(test_lora_fd(ctx, 0));
    LEAKCHK(test_lora_fd(ctx, 1));
    LEAKCHK(test_qlora(ctx));
    LEAKCHK(test_lomo(ctx, "llama", 0.0f, 0));
    LEAKCHK(test_lomo(ctx, "gpt2", 0.0f, 0));
    LEAKCHK(test_lomo(ctx, "llama", 0.0f, 1));
    LEAKCHK(test_lomo(ctx, "llama", 0.5f, 0));
    LEAKCHK(test_lomo_scaling(ctx));
    LEAKCHK(test_lomo_memory());
    LEAKCHK(test_peft(ctx, "gpt2", EFF_PEFT_HOULSBY, 8));
    LEAKCHK(test_peft(ctx, "llama", EFF_PEFT_HOULSBY, 4));
    LEAKCHK(test_peft(ctx, "gpt2", EFF_PEFT_PREFIX, 3));
    LEAKCHK(test_peft(ctx, "llama", EFF_PEFT_PREFIX, 5));
    LEAKCHK(test_peft(ctx, "gpt2", EFF_PEFT_PROMPT, 4));
    LEAKCHK(test_peft(ctx, "llama", EFF_PEFT_PROMPT, 3));
    LEAKCHK(test_peft(ctx, "gpt2", EFF_PEFT_BITFIT, 0));
    {
        fixture f;
        eff_peft p;
        eff_peft_opts po;
        if (fixture_open(ctx, &f, FIXTURES "/model/llama", FIXTURES "/model/llama/state.safetensors")) {
            memset(&po, 0, sizeof po);
            po.kind = EFF_PEFT_BITFIT;
            EFF_CHECK_STATUS(ctx, eff_peft_attach(ctx, &p, &f.m, &po), EFF_ERR_NOT_FOUND, "BitFit on Llama (no biases) is refused");
            fixture_close(ctx, &f);
        }
    }
    LEAKCHK(test_qat(ctx));
    LEAKCHK(test_distill(ctx));
    LEAKCHK(test_prune(ctx));
    LEAKCHK(test_data(ctx));
    LEAKCHK(test_resume(ctx, 0));
    LEAKCHK(test_resume(ctx, 1));
    EFF_CHECK(eff_ctx_bytes_in_use(ctx) == 0, "every byte allocated through the context was freed (%zu in use)", eff_ctx_bytes_in_use(ctx));
    eff_ctx_destroy(ctx);
    return EFF_TEST_END();
}
