/* train_demo.c - memory-efficient fine-tuning side by side.

   A small Llama-style model is pre-trained for a moment on sentences from one tiny grammar,
   then fine-tuned for the same budget of steps on a second grammar with each method:
   full fine-tune (AdamW, SGD with momentum), LOMO (with and without activation
   checkpointing), LoRA and QLoRA (NF4 base). One table shows trainable parameters, peak
   memory (every byte goes through the context's allocator: eff_ctx_bytes_peak) and the loss
   after the budget; the loss curves are written to build/train_demo_loss.svg. */
#define EFF_IMPLEMENTATION
#include "eff_train.h"
#include "demo_common.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

enum { B = 8, T = 64, PRE_STEPS = 150, STEPS = 60, N_MODES = 6 };

#define TRY(expr) do { eff_status s_ = (expr); if (s_) { printf("%s: %s\n", #expr, eff_ctx_last_error(ctx)); return 1; } } while (0)

typedef struct { const char *name; int64_t trainable, total; size_t peak; float loss[STEPS]; float val; double tok_s; } result;

/* One fine-tuning run in its own context, so its peak memory is its own. */
static int run_mode(int mode, const char *base_dir, const char *text, int64_t n_text, result *r) {
    static const char *names[N_MODES] = {"full fine-tune, AdamW", "full fine-tune, SGD+momentum", "LOMO (fused SGD)", "LOMO + checkpointing",
                                         "LoRA r=4 on q,v", "QLoRA r=4 on q,v (NF4)"};
    eff_ctx *ctx;
    eff_ctx_opts co;
    eff_model m;
    eff_tokenizer tok;
    eff_data data;
    eff_data_opts dopts;
    eff_optim opt;
    eff_optim_opts oo;
    eff_lora lora;
    eff_qlora qlora;
    eff_lomo lomo;
    eff_lora_opts lo;
    static int32_t x[B * T], y[B * T];
    int64_t step, i, nb;
    double t0, sum = 0.0;
    memset(&co, 0, sizeof co);
    co.seed = 5;
    if (eff_ctx_create(&co, &ctx)) return 1;
    eff_quant_register(ctx);
    memset(r, 0, sizeof *r);
    r->name = names[mode];
    TRY(eff_model_load_hf(ctx, &m, base_dir));
    TRY(eff_tokenizer_byte(ctx, &tok));
    memset(&dopts, 0, sizeof dopts);
    dopts.B = B; dopts.T = T; dopts.seed = 11;
    TRY(eff_data_from_text(ctx, &data, &tok, text, n_text, &dopts));
    r->total = eff_model_config_n_params(&m.cfg);
    memset(&oo, 0, sizeof oo);
    oo.kind = mode == 1 ? EFF_OPTIM_SGD : EFF_OPTIM_ADAMW;
    oo.lr = mode == 0 ? 2e-3f : mode == 1 ? 5e-2f : 1e-2f;
    oo.momentum = mode == 1 ? 0.9f : 0.0f;
    memset(&lo, 0, sizeof lo);
    lo.r = 4; lo.alpha = 8; lo.targets = "q,v"; lo.seed = 3;
    if (mode <= 1) {
        TRY(eff_model_alloc_grads(ctx, &m));
        TRY(eff_optim_init(ctx, &opt, &oo));
        TRY(eff_optim_add_model(ctx, &opt, &m, 0, 0));
        r->trainable = eff_optim_n_params(&opt);
    } else if (mode <= 3) {
        eff_lomo_opts lm;
        memset(&lm, 0, sizeof lm);
        lm.lr = 5e-2f;
        m.checkpoint = mode == 3;
        TRY(eff_lomo_init(ctx, &lomo, &m, &lm));
        r->trainable = r->total;
    } else {
        TRY(eff_optim_init(ctx, &opt, &oo));
        if (mode == 4) { TRY(eff_lora_attach(ctx, &lora, &m, &lo)); TRY(eff_lora_add_to_optim(ctx, &lora, &opt, 0)); }
        else { TRY(eff_qlora_attach(ctx, &qlora, &m, &lo, NULL)); TRY(eff_lora_add_to_optim(ctx, &qlora.lora, &opt, 0)); }
        r->trainable = eff_optim_n_params(&opt);
    }
    t0 = demo_now();
    for (step = 0; step < STEPS; step++) {
        TRY(eff_data_next(ctx, &data, x, y));
        if (mode == 2 || mode == 3) TRY(eff_lomo_step(ctx, &lomo, x, y, B, T, &r->loss[step]));
        else {
            TRY(eff_model_forward(ctx, &m, x, y, B, T, &r->loss[step]));
            TRY(eff_model_backward(ctx, &m));
            TRY(eff_optim_step(ctx, &opt));
        }
    }
    r->tok_s = (double)(STEPS * B * T) / (demo_now() - t0);
    r->peak = eff_ctx_bytes_peak(ctx);
    nb = eff_data_n_val_batches(&data) < 4 ? eff_data_n_val_batches(&data) : 4;
    for (i = 0; i < nb; i++) {
        float l = 0.0f;
        TRY(eff_data_val_batch(ctx, &data, i, x, y));
        TRY(eff_model_forward(ctx, &m, x, y, B, T, &l));
        sum += l;
    }
    r->val = nb ? (float)(sum / (double)nb) : 0.0f;
    if (mode <= 1 || mode >= 4) eff_optim_free(ctx, &opt);
    if (mode == 2 || mode == 3) eff_lomo_free(ctx, &lomo);
    if (mode == 4) eff_lora_detach(ctx, &lora);
    if (mode == 5) eff_qlora_detach(ctx, &qlora);
    eff_data_free(ctx, &data);
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);
    return 0;
}

static void write_svg(const char *path, const result *r, int n) {
    static const char *colors[N_MODES] = {"#d62728", "#ff7f0e", "#2ca02c", "#17becf", "#1f77b4", "#9467bd"};
    FILE *f = fopen(path, "w");
    float lo = 1e9f, hi = -1e9f;
    int i, s;
    if (!f) return;
    for (i = 0; i < n; i++) for (s = 0; s < STEPS; s++) { if (r[i].loss[s] < lo) lo = r[i].loss[s]; if (r[i].loss[s] > hi) hi = r[i].loss[s]; }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"420\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"760\" height=\"420\" fill=\"white\"/>\n"
               "<text x=\"380\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Fine-tuning loss per step (same model, data and budget)</text>\n"
               "<line x1=\"60\" y1=\"370\" x2=\"540\" y2=\"370\" stroke=\"black\"/><line x1=\"60\" y1=\"40\" x2=\"60\" y2=\"370\" stroke=\"black\"/>\n"
               "<text x=\"300\" y=\"400\" text-anchor=\"middle\">step</text>\n");
    for (s = 0; s <= 4; s++) {
        float v = lo + (hi - lo) * (float)s / 4.0f;
        fprintf(f, "<text x=\"54\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", 370.0 - 330.0 * s / 4.0 + 4, (double)v);
        fprintf(f, "<text x=\"%.1f\" y=\"386\" text-anchor=\"middle\">%d</text>\n", 60.0 + 480.0 * s / 4.0, STEPS * s / 4);
    }
    for (i = 0; i < n; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", colors[i]);
        for (s = 0; s < STEPS; s++)
            fprintf(f, "%.1f,%.1f ", 60.0 + 480.0 * s / (STEPS - 1), 370.0 - 330.0 * (r[i].loss[s] - lo) / (hi - lo + 1e-9));
        fprintf(f, "\"/>\n<rect x=\"555\" y=\"%d\" width=\"14\" height=\"3\" fill=\"%s\"/><text x=\"574\" y=\"%d\">%s</text>\n", 60 + 22 * i, colors[i],
                65 + 22 * i, r[i].name);
    }
    fprintf(f, "</svg>\n");
    fclose(f);
}

int main(void) {
    eff_ctx *ctx;
    eff_ctx_opts co;
    eff_model m;
    eff_model_config c;
    eff_tokenizer tok;
    eff_data data;
    eff_data_opts dopts;
    eff_optim opt;
    eff_optim_opts oo;
    static char pre[1 << 17], fine[1 << 17];
    static int32_t x[B * T], y[B * T];
    static result res[N_MODES];
    int64_t n_pre = demo_corpus(pre, sizeof pre, 1, 0), n_fine = demo_corpus(fine, sizeof fine, 2, 1), step;
    int i;
    float loss = 0.0f;

    memset(&co, 0, sizeof co);
    co.seed = 42;
    if (eff_ctx_create(&co, &ctx)) return 1;
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.vocab_size = 256; c.max_seq = 128; c.dim = 128; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2; c.hidden_dim = 352;
    TRY(eff_model_init(ctx, &m, &c));
    TRY(eff_model_alloc_grads(ctx, &m));
    TRY(eff_tokenizer_byte(ctx, &tok));
    memset(&dopts, 0, sizeof dopts);
    dopts.B = B; dopts.T = T; dopts.seed = 1;
    TRY(eff_data_from_text(ctx, &data, &tok, pre, n_pre, &dopts));
    memset(&oo, 0, sizeof oo);
    oo.lr = 3e-3f; oo.max_grad_norm = 1.0f; oo.schedule.kind = EFF_LR_COSINE; oo.schedule.warmup_steps = 10; oo.schedule.total_steps = PRE_STEPS;
    TRY(eff_optim_init(ctx, &opt, &oo));
    TRY(eff_optim_add_model(ctx, &opt, &m, 0, 0));
    for (step = 0; step < PRE_STEPS; step++) {
        TRY(eff_data_next(ctx, &data, x, y));
        TRY(eff_model_forward(ctx, &m, x, y, B, T, &loss));
        TRY(eff_model_backward(ctx, &m));
        TRY(eff_optim_step(ctx, &opt));
    }
    printf("Pre-trained a %.2fM-parameter Llama (dim %lld, %lld layers) for %d steps on grammar A: loss %.3f\n",
           eff_model_config_n_params(&c) / 1e6, (long long)c.dim, (long long)c.n_layers, PRE_STEPS, (double)loss);
    TRY(eff_model_save_hf(ctx, &m, "build/train_demo_base"));
    eff_optim_free(ctx, &opt);
    eff_data_free(ctx, &data);
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);

    printf("Fine-tuning on grammar B for %d steps of %d x %d tokens with each method:\n\n", STEPS, B, T);
    for (i = 0; i < N_MODES; i++)
        if (run_mode(i, "build/train_demo_base", fine, n_fine, &res[i])) return 1;
    printf("| method                        | trainable params | share   | peak memory | loss (last 5) | val loss | tokens/s |\n");
    printf("|-------------------------------|------------------|---------|-------------|---------------|----------|----------|\n");
    for (i = 0; i < N_MODES; i++) {
        double last = 0.0;
        int s;
        for (s = STEPS - 5; s < STEPS; s++) last += res[i].loss[s] / 5.0;
        printf("| %-29s | %16lld | %6.2f%% | %7.2f MiB | %13.3f | %8.3f | %8.0f |\n", res[i].name, (long long)res[i].trainable,
               100.0 * (double)res[i].trainable / (double)res[i].total, res[i].peak / 1048576.0, last, (double)res[i].val, res[i].tok_s);
    }
    printf("\nPeak memory: AdamW %s SGD %s LOMO (gradients and optimizer state are what the fused update removes);\n"
           "LoRA trains %.2f%% of the weights; QLoRA keeps the frozen base in NF4.\n",
           res[0].peak > res[1].peak ? ">" : "<=", res[1].peak > res[2].peak ? ">" : "<=", 100.0 * (double)res[4].trainable / (double)res[4].total);
    write_svg("build/train_demo_loss.svg", res, N_MODES);
    printf("Loss curves: build/train_demo_loss.svg\n");
    return 0;
}
