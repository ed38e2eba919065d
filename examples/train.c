/* train.c - a training command line on eff_train.h: full fine-tune, LoRA, QLoRA, LOMO or
   distillation of a Llama/GPT-2 model on a text file, with a progress line per step,
   validation perplexity, atomic checkpoints, resume, and Ctrl-C saving a checkpoint.

     train --mode lora --text corpus.txt [--model hf_dir | --preset tiny-llama] [--steps 200]
           [--batch 8] [--seq 64] [--lr 1e-3] [--rank 8] [--alpha 16] [--targets q,v]
           [--ckpt out.ckpt] [--resume] [--eval-every 50] [--ckpt-every 100] [--checkpointing]
           [--teacher hf_dir]   (distill: the teacher; default: a wider copy trained by nothing)
           [--save-adapter dir] (lora: write a PEFT adapter at the end)

   Without --text it trains on a generated corpus of simple sentences. */
#define EFF_IMPLEMENTATION
#include "eff_train.h"
#include "demo_common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_stop = 0;   /* the example's own flag; the library has no globals */
static void on_sigint(int sig) { (void)sig; g_stop = 1; }

#define TRY(expr) do { eff_status s_ = (expr); if (s_) { fprintf(stderr, "error: %s: %s\n", #expr, eff_ctx_last_error(ctx)); return 1; } } while (0)

static const char *arg(int argc, char **argv, const char *name, const char *def) {
    int i;
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return i + 1 < argc ? argv[i + 1] : "1";
    return def;
}
static int flag(int argc, char **argv, const char *name) {
    int i;
    for (i = 1; i < argc; i++) if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = arg(argc, argv, "--mode", "lora"), *text_path = arg(argc, argv, "--text", NULL);
    const char *model_dir = arg(argc, argv, "--model", NULL), *preset = arg(argc, argv, "--preset", "tiny-llama");
    const char *ckpt = arg(argc, argv, "--ckpt", NULL), *teacher_dir = arg(argc, argv, "--teacher", NULL);
    const char *save_adapter = arg(argc, argv, "--save-adapter", NULL);
    int64_t steps = atoll(arg(argc, argv, "--steps", "100")), B = atoll(arg(argc, argv, "--batch", "8")), T = atoll(arg(argc, argv, "--seq", "64"));
    int64_t eval_every = atoll(arg(argc, argv, "--eval-every", "50")), ckpt_every = atoll(arg(argc, argv, "--ckpt-every", "0"));
    float lr = (float)atof(arg(argc, argv, "--lr", "0"));
    eff_ctx *ctx;
    eff_ctx_opts co;
    eff_model m, teacher;
    eff_model_config c;
    eff_tokenizer tok;
    eff_data data;
    eff_data_opts dopts;
    eff_optim opt;
    eff_optim_opts oo;
    eff_lora lora;
    eff_qlora qlora;
    eff_lomo lomo;
    eff_distill dist;
    eff_lora_opts lo;
    int is_lora = strcmp(mode, "lora") == 0, is_qlora = strcmp(mode, "qlora") == 0, is_lomo = strcmp(mode, "lomo") == 0;
    int is_distill = strcmp(mode, "distill") == 0, is_full = strcmp(mode, "full") == 0;
    int32_t *x, *y;
    int64_t step, trainable = 0;
    double t0;

    if (flag(argc, argv, "--help") || !(is_lora || is_qlora || is_lomo || is_distill || is_full)) {
        printf("usage: train --mode full|lora|qlora|lomo|distill [--text FILE] [--model HF_DIR | --preset NAME] [--steps N]\n"
               "             [--batch B] [--seq T] [--lr LR] [--rank R] [--alpha A] [--targets q,v] [--ckpt FILE] [--resume]\n"
               "             [--eval-every N] [--ckpt-every N] [--checkpointing] [--teacher HF_DIR] [--save-adapter DIR]\n");
        return flag(argc, argv, "--help") ? 0 : 2;
    }
    memset(&co, 0, sizeof co);
    co.seed = 1234;
    if (eff_ctx_create(&co, &ctx)) return 1;
    eff_quant_register(ctx);
    signal(SIGINT, on_sigint);

    if (model_dir) TRY(eff_model_load_hf(ctx, &m, model_dir));
    else { TRY(eff_model_config_preset(&c, preset)); c.max_seq = c.max_seq < T ? T : c.max_seq; TRY(eff_model_init(ctx, &m, &c)); }
    m.checkpoint = flag(argc, argv, "--checkpointing");
    TRY(eff_tokenizer_byte(ctx, &tok));
    if (m.cfg.vocab_size < 256) { fprintf(stderr, "error: the byte tokenizer needs a vocabulary of 256 (model has %lld)\n", (long long)m.cfg.vocab_size); return 1; }
    memset(&dopts, 0, sizeof dopts);
    dopts.B = B; dopts.T = T; dopts.seed = 7;
    if (text_path) TRY(eff_data_load_file(ctx, &data, &tok, text_path, &dopts));
    else {
        static char corpus[1 << 18];
        int64_t n = demo_corpus(corpus, sizeof corpus, 3, 0);
        TRY(eff_data_from_text(ctx, &data, &tok, corpus, n, &dopts));
    }

    memset(&oo, 0, sizeof oo);
    oo.kind = EFF_OPTIM_ADAMW;
    oo.lr = lr > 0 ? lr : (is_full || is_distill ? 1e-3f : 3e-3f);
    oo.weight_decay = 0.01f;
    oo.max_grad_norm = 1.0f;
    oo.schedule.kind = EFF_LR_COSINE; oo.schedule.warmup_steps = steps / 20; oo.schedule.total_steps = steps; oo.schedule.final_ratio = 0.1f;
    memset(&lo, 0, sizeof lo);
    lo.r = atoll(arg(argc, argv, "--rank", "8")); lo.alpha = (float)atof(arg(argc, argv, "--alpha", "16"));
    lo.targets = arg(argc, argv, "--targets", "q,v"); lo.seed = 99;
    if (!is_lomo) TRY(eff_optim_init(ctx, &opt, &oo));
    if (is_lora) { TRY(eff_lora_attach(ctx, &lora, &m, &lo)); TRY(eff_lora_add_to_optim(ctx, &lora, &opt, 0)); trainable = eff_lora_n_trainable(&lora); }
    if (is_qlora) {
        TRY(eff_qlora_attach(ctx, &qlora, &m, &lo, NULL));
        TRY(eff_lora_add_to_optim(ctx, &qlora.lora, &opt, 0));
        trainable = eff_lora_n_trainable(&qlora.lora);
        printf("QLoRA base: %lld weights in NF4 + double quantization, %.3f bits per weight\n", (long long)qlora.base_params, eff_qlora_bits_per_weight(&qlora));
    }
    if (is_full || is_distill) { TRY(eff_model_alloc_grads(ctx, &m)); TRY(eff_optim_add_model(ctx, &opt, &m, 0, 0)); trainable = eff_optim_n_params(&opt); }
    if (is_lomo) {
        eff_lomo_opts lm;
        memset(&lm, 0, sizeof lm);
        lm.lr = lr > 0 ? lr : 5e-2f; lm.clip_grad_norm = 1.0f;
        TRY(eff_lomo_init(ctx, &lomo, &m, &lm));
        trainable = eff_model_config_n_params(&m.cfg);
    }
    if (is_distill) {
        eff_distill_opts dd;
        if (teacher_dir) TRY(eff_model_load_hf(ctx, &teacher, teacher_dir));
        else { eff_model_config tc = m.cfg; tc.n_layers *= 2; TRY(eff_model_init(ctx, &teacher, &tc)); }
        memset(&dd, 0, sizeof dd);
        dd.alpha = 0.5f; dd.temperature = 2.0f;
        TRY(eff_distill_init(ctx, &dist, &m, &teacher, &dd));
    }
    if (ckpt && flag(argc, argv, "--resume")) {
        eff_status s = eff_train_load(ctx, ckpt, &m, is_lomo ? NULL : &opt, &data);
        if (s) { fprintf(stderr, "error: cannot resume from %s: %s\n", ckpt, eff_ctx_last_error(ctx)); return 1; }
        printf("resumed from %s at step %lld\n", ckpt, (long long)(is_lomo ? 0 : opt.step));
    }
    printf("mode %s: %lld trainable of %lld parameters (%.3f%%), batch %lld x %lld, %lld train windows, %lld validation batches\n", mode,
           (long long)trainable, (long long)eff_model_config_n_params(&m.cfg), 100.0 * (double)trainable / (double)eff_model_config_n_params(&m.cfg),
           (long long)B, (long long)T, (long long)data.n_chunks, (long long)eff_data_n_val_batches(&data));
    x = (int32_t *)malloc((size_t)(B * T) * sizeof(int32_t));
    y = (int32_t *)malloc((size_t)(B * T) * sizeof(int32_t));
    for (step = is_lomo ? 0 : opt.step; step < steps && !g_stop; step++) {
        float loss = 0.0f;
        t0 = demo_now();
        TRY(eff_data_next(ctx, &data, x, y));
        if (is_lomo) TRY(eff_lomo_step(ctx, &lomo, x, y, B, T, &loss));
        else {
            if (is_lora) lora.dropout_step = opt.step;
            if (is_distill) TRY(eff_distill_forward(ctx, &dist, x, y, B, T, &loss));
            else TRY(eff_model_forward(ctx, &m, x, y, B, T, &loss));
            TRY(eff_model_backward(ctx, &m));
            TRY(eff_optim_step(ctx, &opt));
        }
        printf("step %5lld | loss %.4f | lr %.2e | %7.0f tok/s | mem %7.2f MiB (peak %7.2f MiB)\n", (long long)step + 1, (double)loss,
               is_lomo ? (double)lomo.opts.lr : (double)opt.last_lr, (double)(B * T) / (demo_now() - t0), eff_ctx_bytes_in_use(ctx) / 1048576.0,
               eff_ctx_bytes_peak(ctx) / 1048576.0);
        fflush(stdout);
        if (eval_every > 0 && ((step + 1) % eval_every == 0 || step + 1 == steps) && eff_data_n_val_batches(&data) > 0) {
            double sum = 0.0;
            int64_t i, nb = eff_data_n_val_batches(&data) < 8 ? eff_data_n_val_batches(&data) : 8;
            for (i = 0; i < nb; i++) {
                float l;
                TRY(eff_data_val_batch(ctx, &data, i, x, y));
                TRY(eff_model_forward(ctx, &m, x, y, B, T, &l));
                sum += l;
            }
            printf("  validation: loss %.4f, perplexity %.2f over %lld batches\n", sum / (double)nb, exp(sum / (double)nb), (long long)nb);
        }
        if (ckpt && ckpt_every > 0 && (step + 1) % ckpt_every == 0) TRY(eff_train_save(ctx, ckpt, &m, is_lomo ? NULL : &opt, &data));
    }
    if (ckpt && (g_stop || step == steps)) {
        TRY(eff_train_save(ctx, ckpt, &m, is_lomo ? NULL : &opt, &data));
        printf("%scheckpoint written to %s (step %lld)\n", g_stop ? "interrupted: " : "", ckpt, (long long)step);
    }
    if (save_adapter && is_lora) { TRY(eff_lora_save_peft(ctx, &lora, save_adapter)); printf("PEFT adapter written to %s\n", save_adapter); }
    free(x); free(y);
    if (is_distill) { eff_distill_free(ctx, &dist); eff_model_free(ctx, &teacher); }
    if (is_lomo) eff_lomo_free(ctx, &lomo); else eff_optim_free(ctx, &opt);
    if (is_lora) eff_lora_detach(ctx, &lora);
    if (is_qlora) eff_qlora_detach(ctx, &qlora);
    eff_data_free(ctx, &data);
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &m);
    eff_ctx_destroy(ctx);
    return 0;
}
