/* train.c - a training command line on eff_train.h: full fine-tune, LoRA, QLoRA, LOMO or
   distillation of a Llama/GPT-2 model on a text file, with a progress line per step,
   validation perplexity, atomic checkpoints, resume, and Ctrl-C saving a checkpoint.

     train --mode lora --text corpus.txt [--model hf_dir | --preset tiny-llama] [--steps 200]
           [--batch 8] [--seq 64] [--lr 1e-3] [--rank 8] [--alpha 16] [--targets q,v]
           [--ckpt out.ckpt] [--resume] [--eval-every 50] [--ckpt-every 100] [--checkpointing]
           [--teacher hf_dir]   (distill: the teacher; default: a wider copy trained by nothing)
           [--save-adapter dir] (lora: write a PEFT adapter at the end)
           [--ranks N] [--zero 0|1|2|3]

   Without --text it trains on a generated corpus of simple sentences.

   --ranks N (full, lora, qlora): data-parallel training on N rank threads of one process
   (eff_parallel.h's local backend). Every rank has its own context and model replica,
   runs B/N rows of each batch, and eff_dp_optim averages the gradients over the ranks
   (--zero 0: all-reduce; 1-3: ZeRO stages, AdamW state sharded, then gradients and
   parameters) before the same clipped, scheduled AdamW as one rank's: the loss curve is
   one rank's on the full batch. The replicas keep full parameters and gradients (eff_model
   has no per-layer gather hook), so ZeRO's savings show in the optimizer's share. No
   checkpoints with --ranks. */
#define EFF_IMPLEMENTATION
#include "eff_train.h"
#include "eff_parallel.h"
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

/* ---------------------------------------------------------------------------
   --ranks N: data-parallel / ZeRO training on rank threads
   --------------------------------------------------------------------------- */
typedef struct dp_job {
    const char *mode, *text_path, *model_dir, *preset, *targets;
    int64_t steps, B, T, eval_every, lora_r;
    float lr, alpha;
    int zero, checkpointing;
    size_t peak[64], optim_bytes[64];   /* per rank: context peak, bytes of eff_dp_optim's state */
} dp_job;

#define RTRY(expr) do { s = (expr); if (s) { fprintf(stderr, "rank %d: error: %s: %s\n", r, #expr, eff_ctx_last_error(ctx)); goto done; } } while (0)

static eff_status dp_rank(eff_comm *c, void *arg) {
    dp_job *J = (dp_job *)arg;
    eff_ctx *ctx = eff_comm_ctx(c);
    int n = eff_comm_size(c), r = eff_comm_rank(c), is_lora = strcmp(J->mode, "lora") == 0, is_qlora = strcmp(J->mode, "qlora") == 0;
    int64_t rows = J->B / n, step, i;
    eff_model m;
    eff_model_config cfg;
    eff_tokenizer tok;
    eff_data data;
    eff_data_opts dopts;
    eff_optim reg;
    eff_optim_opts oo;
    eff_lora lora;
    eff_qlora qlora;
    eff_lora_opts lo;
    eff_lr_schedule sched;
    eff_dp_optim *dpo = NULL;
    eff_dp_optim_opts dpoo;
    float **params = NULL, **grads = NULL;
    int64_t *counts = NULL;
    int32_t *x = NULL, *y = NULL;
    char *corpus = NULL;
    size_t base_bytes;
    eff_status s = EFF_OK;
    memset(&m, 0, sizeof m); memset(&tok, 0, sizeof tok); memset(&data, 0, sizeof data); memset(&reg, 0, sizeof reg);
    memset(&lora, 0, sizeof lora); memset(&qlora, 0, sizeof qlora);
    eff_quant_register(ctx);
    /* the same model, data order and adapters on every rank (the same seeds); rank 0's
       parameters are broadcast below anyway, as DDP does at construction */
    if (J->model_dir) RTRY(eff_model_load_hf(ctx, &m, J->model_dir));
    else { RTRY(eff_model_config_preset(&cfg, J->preset)); cfg.max_seq = cfg.max_seq < J->T ? J->T : cfg.max_seq; RTRY(eff_model_init(ctx, &m, &cfg)); }
    m.checkpoint = J->checkpointing;
    RTRY(eff_tokenizer_byte(ctx, &tok));
    memset(&dopts, 0, sizeof dopts);
    dopts.B = J->B; dopts.T = J->T; dopts.seed = 7;
    if (J->text_path) RTRY(eff_data_load_file(ctx, &data, &tok, J->text_path, &dopts));
    else {
        int64_t len;
        corpus = (char *)malloc((size_t)1 << 18);
        if (!corpus) { s = EFF_ERR_OOM; goto done; }
        len = demo_corpus(corpus, (int64_t)1 << 18, 3, 0);
        RTRY(eff_data_from_text(ctx, &data, &tok, corpus, len, &dopts));
    }
    /* the trainable tensors, listed by an optimizer without state (SGD, no momentum) */
    memset(&oo, 0, sizeof oo);
    oo.kind = EFF_OPTIM_SGD;
    RTRY(eff_optim_init(ctx, &reg, &oo));
    memset(&lo, 0, sizeof lo);
    lo.r = J->lora_r; lo.alpha = J->alpha; lo.targets = J->targets; lo.seed = 99;
    if (is_lora) { RTRY(eff_lora_attach(ctx, &lora, &m, &lo)); RTRY(eff_lora_add_to_optim(ctx, &lora, &reg, 0)); }
    else if (is_qlora) { RTRY(eff_qlora_attach(ctx, &qlora, &m, &lo, NULL)); RTRY(eff_lora_add_to_optim(ctx, &qlora.lora, &reg, 0)); }
    else { RTRY(eff_model_alloc_grads(ctx, &m)); RTRY(eff_optim_add_model(ctx, &reg, &m, 0, 0)); }
    params = (float **)calloc((size_t)reg.n_params, sizeof(float *));
    grads = (float **)calloc((size_t)reg.n_params, sizeof(float *));
    counts = (int64_t *)calloc((size_t)reg.n_params, sizeof(int64_t));
    x = (int32_t *)malloc((size_t)(J->B * J->T) * sizeof(int32_t));
    y = (int32_t *)malloc((size_t)(J->B * J->T) * sizeof(int32_t));
    if (!params || !grads || !counts || !x || !y) { s = EFF_ERR_OOM; goto done; }
    for (i = 0; i < reg.n_params; i++) {
        if (reg.params[i].param->dtype != EFF_F32) { s = eff_ctx_error(ctx, EFF_ERR_DTYPE, "--ranks trains f32 parameters"); goto done; }
        params[i] = (float *)reg.params[i].param->data; grads[i] = (float *)reg.params[i].grad->data; counts[i] = reg.params[i].n;
        RTRY(eff_comm_broadcast(c, params[i], counts[i], EFF_F32, 0));
    }
    /* the single-rank run's AdamW: weight decay 0.01, clip 1.0, warmup + cosine */
    memset(&dpoo, 0, sizeof dpoo);
    dpoo.zero_stage = J->zero; dpoo.adamw.weight_decay = 0.01f; dpoo.max_grad_norm = 1.0f;
    base_bytes = eff_ctx_bytes_in_use(ctx);
    RTRY(eff_dp_optim_create(c, (int)reg.n_params, params, grads, counts, &dpoo, &dpo));
    J->optim_bytes[r] = eff_ctx_bytes_in_use(ctx) - base_bytes;
    memset(&sched, 0, sizeof sched);
    sched.kind = EFF_LR_COSINE; sched.warmup_steps = J->steps / 20; sched.total_steps = J->steps; sched.final_ratio = 0.1f;
    if (r == 0)
        printf("mode %s on %d ranks (ZeRO-%d): %lld trainable of %lld parameters, global batch %lld x %lld (%lld rows per rank)\n", J->mode,
               n, J->zero, (long long)eff_optim_n_params(&reg), (long long)eff_model_config_n_params(&m.cfg), (long long)J->B,
               (long long)J->T, (long long)rows);
    for (step = 0; step < J->steps; step++) {
        float loss = 0.0f, lr = J->lr * eff_lr_schedule_factor(&sched, step + 1);
        int32_t stop = g_stop;
        double t0 = demo_now();
        RTRY(eff_data_next(ctx, &data, x, y));   /* every rank draws the global batch and keeps its rows */
        if (is_lora) lora.dropout_step = step;
        if (is_qlora) qlora.lora.dropout_step = step;
        RTRY(eff_model_forward(ctx, &m, x + r * rows * J->T, y + r * rows * J->T, rows, J->T, &loss));
        RTRY(eff_model_backward(ctx, &m));
        RTRY(eff_dp_optim_step(dpo, lr));
        RTRY(eff_comm_all_reduce(c, &loss, 1, EFF_F32, EFF_RED_AVG));   /* mean of equal-sized rows: the full batch's loss */
        RTRY(eff_comm_all_reduce(c, &stop, 1, EFF_I32, EFF_RED_MAX));   /* Ctrl-C on any rank stops all at the same step */
        if (r == 0) {
            printf("step %5lld | loss %.4f | lr %.2e | %7.0f tok/s | rank 0 mem %7.2f MiB (peak %7.2f MiB)\n", (long long)step + 1,
                   (double)loss, (double)lr, (double)(J->B * J->T) / (demo_now() - t0), eff_ctx_bytes_in_use(ctx) / 1048576.0,
                   eff_ctx_bytes_peak(ctx) / 1048576.0);
            fflush(stdout);
        }
        if (r == 0 && J->eval_every > 0 && ((step + 1) % J->eval_every == 0 || step + 1 == J->steps) && eff_data_n_val_batches(&data) > 0) {
            double sum = 0.0;
            int64_t k, nb = eff_data_n_val_batches(&data) < 8 ? eff_data_n_val_batches(&data) : 8;
            for (k = 0; k < nb; k++) {
                float l;
                RTRY(eff_data_val_batch(ctx, &data, k, x, y));
                RTRY(eff_model_forward(ctx, &m, x, y, J->B, J->T, &l));
                sum += l;
            }
            printf("  validation: loss %.4f, perplexity %.2f over %lld batches\n", sum / (double)nb, exp(sum / (double)nb), (long long)nb);
        }
        if (stop) break;
    }
done:
    if (r < 64) J->peak[r] = eff_ctx_bytes_peak(ctx);
    eff_dp_optim_destroy(dpo);
    free(params); free(grads); free(counts); free(x); free(y); free(corpus);
    eff_optim_free(ctx, &reg);
    if (is_lora && lora.m) eff_lora_detach(ctx, &lora);
    if (is_qlora && qlora.lora.m) eff_qlora_detach(ctx, &qlora);
    eff_data_free(ctx, &data);
    eff_tokenizer_free(ctx, &tok);
    eff_model_free(ctx, &m);
    return s;
}

static int run_ranks(dp_job *J, int n) {
    eff_comm_local_opts o;
    eff_status s;
    int r;
    if (n < 1 || n > 64 || J->B % n != 0 || J->zero < 0 || J->zero > 3) {
        fprintf(stderr, "error: --ranks must be 1..64 and divide --batch (%lld); --zero 0..3\n", (long long)J->B);
        return 2;
    }
    memset(&o, 0, sizeof o);
    o.ctx_opts.seed = 1234;   /* the single-rank run's seed: the same initial model */
    o.timeout = 600.0;
    s = eff_comm_local_run_opts(n, dp_rank, J, &o);
    if (s != EFF_OK) { fprintf(stderr, "error: the ranks failed: %s\n", eff_status_str(s)); return 1; }
    printf("per rank: peak %.2f MiB, of which the optimizer (eff_dp_optim, ZeRO-%d) holds %.2f MiB\n", J->peak[0] / 1048576.0, J->zero,
           J->optim_bytes[0] / 1048576.0);
    for (r = 1; r < n; r++) if (J->peak[r] != J->peak[0]) printf("  rank %d: peak %.2f MiB\n", r, J->peak[r] / 1048576.0);
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
    int n_ranks = atoi(arg(argc, argv, "--ranks", "0"));
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
               "             [--eval-every N] [--ckpt-every N] [--checkpointing] [--teacher HF_DIR] [--save-adapter DIR]\n"
               "             [--ranks N] [--zero 0|1|2|3]   (data parallel on N threads: full, lora, qlora)\n");
        return flag(argc, argv, "--help") ? 0 : 2;
    }
    if (n_ranks > 0) {
        dp_job J;
        if (!(is_full || is_lora || is_qlora)) { fprintf(stderr, "error: --ranks trains --mode full, lora or qlora\n"); return 2; }
        if (ckpt) fprintf(stderr, "note: --ckpt is ignored with --ranks\n");
        memset(&J, 0, sizeof J);
        J.mode = mode; J.text_path = text_path; J.model_dir = model_dir; J.preset = preset;
        J.targets = arg(argc, argv, "--targets", "q,v"); J.steps = steps; J.B = B; J.T = T; J.eval_every = eval_every;
        J.lora_r = atoll(arg(argc, argv, "--rank", "8")); J.alpha = (float)atof(arg(argc, argv, "--alpha", "16"));
        J.lr = lr > 0 ? lr : (is_full ? 1e-3f : 3e-3f);
        J.zero = atoi(arg(argc, argv, "--zero", "0")); J.checkpointing = flag(argc, argv, "--checkpointing");
        signal(SIGINT, on_sigint);
        return run_ranks(&J, n_ranks);
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
