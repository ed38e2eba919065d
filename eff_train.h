/* eff_train.h - v0.1 - memory-efficient training for eff: optimizers over parameter
   groups (SGD, AdamW, mixed precision, loss scaling, clipping, accumulation, LR
   schedules), LoRA / DoRA with PEFT-compatible files, QLoRA on NF4, LOMO, Houlsby
   adapters, prefix and prompt tuning, BitFit, QAT, distillation, pruning, token
   datasets and resumable checkpoints.   Public domain / MIT.

   WHAT
     - eff_optim           an optimizer over groups of (param, grad) pairs with per-group
                           lr / weight decay: AdamW (torch.optim.AdamW) or SGD (momentum,
                           Nesterov, L2 weight decay as torch.optim.SGD); bf16/f16 params
                           with fp32 masters; dynamic loss scaling (skip on inf/NaN, grow
                           after N good steps); global-norm clipping (clip_grad_norm_);
                           gradient accumulation; constant / warmup + cosine / linear LR
     - eff_lora            LoRA (Hu et al. 2022) on any subset of the linears by name
                           (q, k, v, o, gate, up, down, or HF module names), PEFT's init,
                           scale alpha/r (or alpha/sqrt(r)), dropout, merge / unmerge,
                           DoRA (Liu et al. 2024), adapter_model.safetensors +
                           adapter_config.json exactly as PEFT writes and reads them
     - eff_qlora           QLoRA (Dettmers et al. 2023): the base linears in NF4 with double
                           quantization (eff_quant.h), dequantized tile by tile inside the
                           forward and backward; the f32 copies are freed
     - eff_lomo            LOMO (Lv et al. 2023): the SGD update fused into backward through
                           the model's layer-wise gradients (one layer's gradient alive at a
                           time), with the paper's two-pass global-norm clipping and loss
                           scaling
     - eff_peft            Houlsby adapters, prefix tuning, prompt tuning, BitFit
     - eff_qat             fake quantization with the straight-through estimator on the
                           linears (latent fp32 weights, eff_quant.h's fake quant)
     - eff_distill         teacher -> student: CE + alpha T^2 KL(p_t^T || p_s^T) + hidden MSE
     - eff_prune           iterative magnitude pruning with masks and lottery-ticket rewinding
     - eff_data            a token dataset from text (byte-level or BPE), train/validation
                           split, seeded shuffling, batches [B, T]
     - eff_train_save/load checkpoints (weights, optimizer state, RNG and data state, step)
                           written atomically; resume is bit-identical

   USAGE
         #define EFF_IMPLEMENTATION
         #include "eff_train.h"
         eff_optim opt; eff_optim_opts oo; eff_lora lora; eff_lora_opts lo;
         memset(&lo, 0, sizeof lo); lo.r = 8; lo.alpha = 16; lo.targets = "q,v";
         eff_lora_attach(ctx, &lora, &model, &lo);            // base frozen, A/B trainable
         memset(&oo, 0, sizeof oo); oo.lr = 1e-3f;
         eff_optim_init(ctx, &opt, &oo);
         eff_lora_add_to_optim(ctx, &lora, &opt, 0);           // group 0 = the default group
         for (step = 0; step < n; step++) {
             eff_model_forward(ctx, &model, x, y, B, T, &loss);
             eff_model_backward(ctx, &model);
             eff_optim_step(ctx, &opt);                        // clip, unscale, update, zero
         }
         eff_lora_save_peft(ctx, &lora, "out/adapter");        // loads in PEFT

   CONVENTIONS
     - Objects are plain structs the caller owns; the init and attach functions fill them, free and
       detach release what they allocated (all through the context's allocator, so
       eff_ctx_bytes_peak measures every mode).
     - Optimizer steps consume the gradients: eff_optim_step zeroes them afterwards.
     - Names of trainable tensors: model parameters keep eff's names ("layers.0.attn.q.w");
       LoRA tensors use PEFT's keys ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").

   VERSIONS
     0.1  first release.
*/
#ifndef EFF_TRAIN_H
#define EFF_TRAIN_H

#include "eff_model.h"
#include "eff_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Learning-rate schedules. The factor multiplies every group's base lr at
   optimizer step t (1-based): warmup t / warmup_steps while t <= warmup_steps,
   then decay with progress p = (t - warmup) / (total - warmup) clamped to [0, 1]:
     constant 1;  cosine r + (1 - r) (1 + cos(pi p)) / 2;  linear r + (1 - r)(1 - p)
   with r = final_ratio.
   --------------------------------------------------------------------------- */
enum { EFF_LR_CONSTANT = 0, EFF_LR_COSINE = 1, EFF_LR_LINEAR = 2 };
typedef struct eff_lr_schedule {
    int kind;               /* EFF_LR_CONSTANT (default), EFF_LR_COSINE or EFF_LR_LINEAR */
    int64_t warmup_steps;   /* 0: no warmup */
    int64_t total_steps;    /* decay reaches final_ratio here (cosine / linear) */
    float final_ratio;      /* lr at total_steps / base lr; 0: decay to 0 */
} eff_lr_schedule;
EFFDEF float eff_lr_schedule_factor(const eff_lr_schedule *s, int64_t step);

/* ---------------------------------------------------------------------------
   Optimizer over parameter groups
   --------------------------------------------------------------------------- */
enum { EFF_OPTIM_ADAMW = 0, EFF_OPTIM_SGD = 1 };

typedef struct eff_optim_opts {
    int kind;               /* EFF_OPTIM_ADAMW (default) or EFF_OPTIM_SGD */
    float lr;               /* default group lr; 0: 1e-3 (AdamW) or 1e-2 (SGD) */
    float weight_decay;     /* default group weight decay (AdamW decoupled, SGD L2) */
    float beta1, beta2, eps;            /* AdamW; 0: 0.9, 0.999, 1e-8 */
    float momentum, dampening;          /* SGD */
    int nesterov;
    float max_grad_norm;    /* > 0: clip the global L2 norm to this (after unscaling) */
    int64_t accum_steps;    /* micro-batches summed per step; gradients are divided by it; 0: 1 */
    eff_lr_schedule schedule;
    /* Dynamic loss scaling (Micikevicius et al. 2018; torch.cuda.amp.GradScaler's rules):
       the caller multiplies the loss gradient by eff_optim_loss_scale() (eff_model's
       loss_scale); a step whose gradients hold inf/NaN is skipped and the scale multiplied
       by backoff_factor; after growth_interval finite steps it is multiplied by growth_factor. */
    int loss_scaling;
    float init_scale;       /* 0: 65536 */
    float growth_factor;    /* 0: 2 */
    float backoff_factor;   /* 0: 0.5 */
    int64_t growth_interval;/* 0: 2000 */
    float min_scale;        /* 0: 1 */
} eff_optim_opts;

typedef struct eff_optim_group {
    char name[32];
    float lr;               /* base lr (the schedule multiplies it) */
    float weight_decay;
} eff_optim_group;

typedef struct eff_optim_param {
    char name[96];
    eff_tensor *param;      /* contiguous f32, bf16 or f16 */
    eff_tensor *grad;       /* contiguous f32, as many elements */
    float *master;          /* fp32 master weights of bf16/f16 params; NULL for f32 */
    float *m, *v;           /* AdamW moments; SGD momentum in m */
    int64_t n;              /* elements */
    int64_t group;
    int own_master;
} eff_optim_param;

typedef struct eff_optim {
    eff_optim_opts opts;    /* defaults filled in */
    eff_optim_group *groups;
    int64_t n_groups;
    eff_optim_param *params;
    int64_t n_params, cap_params;
    int64_t step;           /* optimizer steps taken (skipped steps are not counted) */
    float loss_scale;       /* current loss scale (1 without loss scaling) */
    int64_t good_steps;     /* finite steps since the last change of the scale */
    int64_t n_skipped;      /* steps skipped for inf/NaN gradients */
    int last_skipped;       /* the last eff_optim_step skipped its update */
    double last_grad_norm;  /* global L2 norm of the last step's unscaled gradients (before clipping) */
    float last_lr;          /* lr factor x default lr of the last step */
    int64_t state_bytes;    /* bytes the optimizer allocated (moments, masters) */
} eff_optim;

/* Group 0 ("default", opts->lr, opts->weight_decay) always exists. */
EFFDEF eff_status eff_optim_init(eff_ctx *ctx, eff_optim *o, const eff_optim_opts *opts);
EFFDEF void       eff_optim_free(eff_ctx *ctx, eff_optim *o);
/* A new group with its own lr (0: the default lr) and weight decay; *group gets its index. */
EFFDEF eff_status eff_optim_add_group(eff_ctx *ctx, eff_optim *o, const char *name, float lr, float weight_decay, int64_t *group);
/* One parameter tensor with its gradient. For bf16/f16 params pass fp32 master weights
   (kept by the caller) or NULL to have the optimizer make them from param. */
EFFDEF eff_status eff_optim_add_param(eff_ctx *ctx, eff_optim *o, int64_t group, const char *name, eff_tensor *param,
                                      eff_tensor *grad, float *master);
/* Every model parameter with an allocated gradient whose linear is not frozen: 2-D weights
   go to decay_group, vectors (norms, biases) to no_decay_group (pass the same index twice
   to decay everything, as torch does by default). Masters from eff_train_mixed_precision. */
EFFDEF eff_status eff_optim_add_model(eff_ctx *ctx, eff_optim *o, eff_model *m, int64_t decay_group, int64_t no_decay_group);
/* The factor the loss gradient must be multiplied by (the loss scale; 1 without scaling). */
EFFDEF float      eff_optim_loss_scale(const eff_optim *o);
/* Global L2 norm of the gradients as they are (double accumulation). */
EFFDEF eff_status eff_optim_grad_norm(eff_ctx *ctx, const eff_optim *o, double *norm);
/* torch.nn.utils.clip_grad_norm_: multiplies the gradients in place by
   min(1, max_norm / (norm + 1e-6)); *norm (may be NULL) gets the norm before clipping. */
EFFDEF eff_status eff_optim_clip_grad_norm(eff_ctx *ctx, eff_optim *o, float max_norm, double *norm);
/* One update: gradients x 1/(loss_scale * accum_steps), inf/NaN check (loss scaling: skip
   and back off), clipping, the scheduled lr, AdamW or SGD on every param, then zeroes the
   gradients. Sets last_skipped / last_grad_norm / last_lr. */
EFFDEF eff_status eff_optim_step(eff_ctx *ctx, eff_optim *o);
EFFDEF void       eff_optim_zero_grad(eff_optim *o);
/* Total elements of every parameter in the optimizer (the trainable parameter count). */
EFFDEF int64_t    eff_optim_n_params(const eff_optim *o);

/* Mixed precision (Micikevicius et al. 2018): every 2-D weight of m (linears and the
   embeddings) becomes dtype (EFF_BF16 or EFF_F16) and stays trainable; the f32 values
   left in the model's weight arena are the fp32 masters (m->params[i].master), which
   eff_optim_add_model hands to the optimizer. Forward and backward run in f32 on the
   rounded weights; norms stay f32. */
EFFDEF eff_status eff_train_mixed_precision(eff_ctx *ctx, eff_model *m, int dtype);

/* ---------------------------------------------------------------------------
   LoRA / DoRA (PEFT conventions)
     h = W0 x + s B A dropout(x), s = alpha / r (alpha / sqrt(r) with rslora),
     A [r, in] Kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B [out, r] = 0.
     DoRA: h = (m / ||W0 + s B A||_row) (W0 x + s B A x) + b, the norm detached (as PEFT).
   Targets: comma-separated eff names (q, k, v, o, gate, up, down, "all") or HF module
   names matched as PEFT does (a module path equal to or ending in "." + name: q_proj,
   mlp.down_proj, c_attn, c_proj, ...). GPT-2's fused c_attn is one PEFT module: one A and
   a B of 3C rows shared by eff's q, k and v (any of q, k, v selects it).
   --------------------------------------------------------------------------- */
typedef struct eff_lora_opts {
    int64_t r;              /* rank; 0: 8 */
    float alpha;            /* 0: 8 (PEFT's default lora_alpha) */
    float dropout;          /* on the LoRA branch input while training */
    const char *targets;    /* NULL: "q,v" (PEFT's Llama default) */
    int use_rslora;         /* s = alpha / sqrt(r) */
    int use_dora;
    int init_random_b;      /* test hook: B ~ U(-1/sqrt(r), 1/sqrt(r)) instead of 0 */
    uint64_t seed;          /* init and dropout; 0: from the context RNG */
} eff_lora_opts;

typedef struct eff_lora_module {
    char path[96];          /* HF module path: "model.layers.0.self_attn.q_proj" */
    char kind[16];          /* eff name of the first linear: q, k, v, o, gate, up, down */
    int64_t in, out, r;
    float scale;
    eff_tensor A, B, dA, dB;            /* [r, in], [out, r] and their f32 gradients */
    eff_tensor mag, dmag;               /* DoRA magnitude [out] (data NULL without DoRA) */
    eff_model_linear *lin[3];           /* eff linears covering rows [row0[i], row0[i] + rows) of B */
    int64_t row0[3], rows[3];
    int n_lin;
    int64_t index;
} eff_lora_module;

typedef struct eff_lora_slot {          /* adapter state of one eff linear */
    struct eff_lora *lora;
    eff_lora_module *mod;
    int part;
} eff_lora_slot;

typedef struct eff_lora {
    eff_lora_opts opts;     /* defaults filled in; targets points to targets_buf */
    char targets_buf[256];
    eff_model *m;
    eff_lora_module *mods;
    int64_t n_mods;
    eff_lora_slot *slots;
    int64_t n_slots;
    void *store;            /* one allocation for every A, B, dA, dB (and DoRA vectors) */
    int training;           /* dropout active (1 after attach) */
    int64_t dropout_step;   /* mixed into the dropout seed; advance it once per step */
    int merged;
    float *merge_g;         /* DoRA: the row scales applied by merge (unmerge divides them out) */
} eff_lora;

/* Attaches LoRA to the targeted linears of m (dense models), freezes the base
   (m->frozen; no base gradients needed) and initializes A and B as PEFT does. */
EFFDEF eff_status eff_lora_attach(eff_ctx *ctx, eff_lora *lora, eff_model *m, const eff_lora_opts *opts);
/* Removes the adapters from the linears (unmerged weights stay as they are) and frees. */
EFFDEF void       eff_lora_detach(eff_ctx *ctx, eff_lora *lora);
/* W += s B A (DoRA: W = m (W + s B A) / ||W + s B A||_row); unmerge restores W. The
   adapters stay attached and are skipped while merged. f32 base weights only. */
EFFDEF eff_status eff_lora_merge(eff_ctx *ctx, eff_lora *lora);
EFFDEF eff_status eff_lora_unmerge(eff_ctx *ctx, eff_lora *lora);
EFFDEF eff_status eff_lora_add_to_optim(eff_ctx *ctx, eff_lora *lora, eff_optim *o, int64_t group);
EFFDEF int64_t    eff_lora_n_trainable(const eff_lora *lora);
EFFDEF void       eff_lora_zero_grads(eff_lora *lora);
/* The tensor (and gradient) stored under a PEFT key, e.g.
   "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"; NOT_FOUND otherwise. */
EFFDEF eff_status eff_lora_find(const eff_lora *lora, const char *key, eff_tensor **w, eff_tensor **g);
/* dir/adapter_model.safetensors (f32) + dir/adapter_config.json, as PEFT's save_pretrained. */
EFFDEF eff_status eff_lora_save_peft(eff_ctx *ctx, const eff_lora *lora, const char *dir);
/* Reads a PEFT LoRA adapter (r, lora_alpha, target_modules, use_rslora, use_dora from the
   config) and attaches it to m. */
EFFDEF eff_status eff_lora_load_peft(eff_ctx *ctx, eff_lora *lora, eff_model *m, const char *dir);

/* ---------------------------------------------------------------------------
   QLoRA: every linear of the blocks (q, k, v, o, gate, up, down) stored as NF4 (or FP4)
   with double quantization; forward and backward dequantize 64-row tiles into a small
   f32 buffer (no full-precision copy of the base); LoRA (fp32) on opts->targets. The
   model's f32 weight arena is re-packed without the quantized weights (their W.data
   becomes NULL), so the base really lives at ~4.13 bits per weight.
   --------------------------------------------------------------------------- */
typedef struct eff_qlora_linear {
    eff_model_linear *lin;
    eff_quant_4bit q;
    eff_linear_adapter inner;   /* the LoRA adapter of this linear (forward NULL: none) */
} eff_qlora_linear;

typedef struct eff_qlora {
    eff_lora lora;
    eff_qlora_linear *lins;
    int64_t n_lins;
    int64_t base_params;        /* weights quantized */
    int64_t base_bytes;         /* their NF4 codes + statistics */
} eff_qlora;

/* qopts NULL: NF4, blocksize 64, double quantization (QLoRA's setting). */
EFFDEF eff_status eff_qlora_attach(eff_ctx *ctx, eff_qlora *q, eff_model *m, const eff_lora_opts *lopts,
                                   const eff_quant_4bit_opts *qopts);
EFFDEF void       eff_qlora_detach(eff_ctx *ctx, eff_qlora *q);
EFFDEF double     eff_qlora_bits_per_weight(const eff_qlora *q);

/* ---------------------------------------------------------------------------
   LOMO (Lv et al. 2023, OpenLMLab/LOMO): SGD fused into backward. eff_lomo_init switches
   the model to layer-wise gradients (eff_model_alloc_grads_layerwise) and installs an
   on_grads hook that updates each group with eff_sgd_step as soon as its gradient is
   complete, then zeroes it. With clip_grad_norm (or loss scaling) a first backward pass
   only accumulates the squared norm (and detects inf/NaN: the step is skipped and the
   scale halved); the second pass updates with coef = min(1, clip / (norm + 1e-6)).
   --------------------------------------------------------------------------- */
typedef struct eff_lomo_opts {
    float lr;                   /* 0: 1e-2 */
    float weight_decay;         /* as torch.optim.SGD */
    float clip_grad_norm;       /* > 0: two-pass global-norm clipping */
    float clip_grad_value;      /* > 0: clamp every gradient element to +-value first */
    int loss_scaling;           /* dynamic loss scaling (fp16 training) */
    float init_scale;           /* 0: 65536 */
    int64_t growth_interval;    /* 0: 1000 (the paper's window) */
} eff_lomo_opts;

typedef struct eff_lomo {
    eff_lomo_opts opts;
    eff_model *m;
    int pass;                   /* 0: norm pass, 1: update pass */
    double sumsq;
    float coef;
    int overflow;
    float loss_scale;
    int64_t step, good_steps, n_skipped;
    int last_skipped;
    double last_grad_norm;
} eff_lomo;

EFFDEF eff_status eff_lomo_init(eff_ctx *ctx, eff_lomo *l, eff_model *m, const eff_lomo_opts *opts);
/* Forward + (norm pass) + fused backward-and-update on one batch; *loss may be NULL. */
EFFDEF eff_status eff_lomo_step(eff_ctx *ctx, eff_lomo *l, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                                float *loss);
EFFDEF void       eff_lomo_free(eff_ctx *ctx, eff_lomo *l);

/* ---------------------------------------------------------------------------
   Other parameter-efficient methods. Each attaches trainable tensors to a frozen model
   (m->frozen) and lists them in w[] / g[] with names for the optimizer and checkpoints.
     HOULSBY  bottleneck adapters after the attention output projection and after the FFN
              (Houlsby et al. 2019): y += up(gelu(down(y))), size = bottleneck m;
              2 per layer of 2 m C + m + C parameters; up starts at 0 (identity)
     PREFIX   prefix tuning (Li & Liang 2021): size = P trainable keys and values per layer
              (L 2 P kvd parameters), seen by every query; without the MLP reparametrisation
     PROMPT   prompt tuning (Lester et al. 2021): size = P virtual-token embeddings prepended
              to every sequence (P C parameters), initialized from random vocabulary rows;
              run it with eff_peft_forward (targets of the prompt positions are ignored)
     BITFIT   bias terms only (Ben Zaken et al. 2022): every linear and norm bias (GPT-2)
   --------------------------------------------------------------------------- */
enum { EFF_PEFT_HOULSBY = 1, EFF_PEFT_PREFIX = 2, EFF_PEFT_PROMPT = 3, EFF_PEFT_BITFIT = 4 };
typedef struct eff_peft_opts {
    int kind;
    int64_t size;               /* bottleneck (HOULSBY, 0: 64), tokens (PREFIX / PROMPT, 0: 10) */
    float init_std;             /* HOULSBY down / PREFIX init; 0: 0.02 */
    uint64_t seed;              /* 0: from the context RNG */
} eff_peft_opts;

typedef struct eff_houlsby {
    eff_model_linear *lin;      /* the linear whose output it adapts (attn.o or ffn.down) */
    eff_tensor *Wd, *bd, *Wu, *bu, *dWd, *dbd, *dWu, *dbu;   /* [m, C], [m], [C, m], [C] */
    float *y0, *h;              /* saved sublayer output [M, C] and bottleneck pre-activation [M, m] */
    int64_t rows_cap;
} eff_houlsby;

typedef struct eff_peft {
    int kind;
    eff_model *m;
    int64_t size;
    eff_tensor *w, *g;          /* the trainable tensors and their gradients */
    char (*names)[64];
    int64_t n_tensors;
    void *store;
    eff_houlsby *ad;
    int64_t n_ad;
    int32_t *tok_buf, *tgt_buf; /* PROMPT: inputs with the P placeholder positions */
    int64_t buf_cap;
} eff_peft;

EFFDEF eff_status eff_peft_attach(eff_ctx *ctx, eff_peft *p, eff_model *m, const eff_peft_opts *opts);
EFFDEF void       eff_peft_detach(eff_ctx *ctx, eff_peft *p);
EFFDEF eff_status eff_peft_add_to_optim(eff_ctx *ctx, eff_peft *p, eff_optim *o, int64_t group);
EFFDEF int64_t    eff_peft_n_trainable(const eff_peft *p);
EFFDEF void       eff_peft_zero_grads(eff_peft *p);
/* eff_model_forward, except PROMPT runs [P placeholders, tokens] (T + P <= max_seq); logits
   of the real tokens are m->acts.logits rows P.. of each sequence. */
EFFDEF eff_status eff_peft_forward(eff_ctx *ctx, eff_peft *p, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                                   float *loss);

/* ---------------------------------------------------------------------------
   Quantization-aware training (Jacob et al. 2018): the block linears keep fp32 latent
   weights; eff_qat_apply replaces W by its fake-quantized value (symmetric absmax,
   per output channel or per tensor, eff_quant.h's PyTorch rules) before forward and
   backward; eff_qat_restore applies the straight-through estimator's clamp mask to dW
   (eff_quant_fake_backward) and puts the latent weights back for the optimizer step.
   --------------------------------------------------------------------------- */
typedef struct eff_qat_opts {
    int bits;                   /* 8 or 4; 0: 8 */
    int per_tensor;             /* 0: one scale per output channel (row) */
} eff_qat_opts;
typedef struct eff_qat {
    eff_qat_opts opts;
    eff_model *m;
    eff_model_linear **lins;
    int64_t n;
    float *latent;              /* every linear's fp32 weights, back to back */
    float *scale;               /* per row (or per tensor) scales of the last apply */
    int32_t *zero;
    int applied;
} eff_qat;
EFFDEF eff_status eff_qat_init(eff_ctx *ctx, eff_qat *q, eff_model *m, const eff_qat_opts *opts);
EFFDEF eff_status eff_qat_apply(eff_ctx *ctx, eff_qat *q);
EFFDEF eff_status eff_qat_restore(eff_ctx *ctx, eff_qat *q);
EFFDEF void       eff_qat_free(eff_ctx *ctx, eff_qat *q);

/* ---------------------------------------------------------------------------
   Distillation (Hinton et al. 2015; TinyBERT's hidden-state loss, Jiao et al. 2020):
     loss = CE(student) + alpha T^2 KL(softmax(t / T) || softmax(s / T))   (batchmean over
            the B*T positions, F.kl_div's convention)
          + hidden_weight sum_j MSE(h_student[j], h_teacher[layer_map[j]])   (layer outputs)
   The teacher only runs forward. eff_distill_forward runs both models; then
   eff_model_backward(student) adds the KL and hidden gradients through the student's
   on_dlogits and on_grads hooks.
   --------------------------------------------------------------------------- */
typedef struct eff_distill_opts {
    float alpha;                /* KL weight; 0: 1 */
    float temperature;          /* 0: 2 */
    float hidden_weight;        /* 0: no hidden loss */
    const int64_t *layer_map;   /* [student n_layers]: teacher layer of each student layer, -1 none */
} eff_distill_opts;
typedef struct eff_distill {
    eff_distill_opts opts;
    eff_model *student, *teacher;
    int64_t map[64];
    float ce, kl, hidden, loss; /* the parts of the last loss */
} eff_distill;
EFFDEF eff_status eff_distill_init(eff_ctx *ctx, eff_distill *d, eff_model *student, eff_model *teacher, const eff_distill_opts *opts);
EFFDEF eff_status eff_distill_forward(eff_ctx *ctx, eff_distill *d, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                                      float *loss);
EFFDEF void       eff_distill_free(eff_ctx *ctx, eff_distill *d);

/* ---------------------------------------------------------------------------
   Pruning during training: masks on the block linears (eff_model_linear.mask), iterative
   magnitude pruning per layer (the smallest |w| of the remaining weights), masks re-applied
   after every optimizer step, and lottery-ticket rewinding (Frankle & Carbin 2019) to the
   weights saved at init (or at an early step: eff_prune_save_rewind).
   --------------------------------------------------------------------------- */
typedef struct eff_prune {
    eff_model *m;
    eff_model_linear **lins;
    int64_t n, total;
    uint8_t *masks;             /* total bytes, one per weight (1 keeps) */
    float *rewind;              /* the saved weights theta_k */
} eff_prune;
EFFDEF eff_status eff_prune_init(eff_ctx *ctx, eff_prune *p, eff_model *m);   /* masks all 1; saves theta_0 */
EFFDEF eff_status eff_prune_save_rewind(eff_ctx *ctx, eff_prune *p);          /* theta_k = current weights */
/* Prunes `fraction` of each linear's remaining weights by magnitude and applies the masks. */
EFFDEF eff_status eff_prune_magnitude(eff_ctx *ctx, eff_prune *p, float fraction);
EFFDEF eff_status eff_prune_apply(eff_ctx *ctx, eff_prune *p);                /* W *= mask */
EFFDEF eff_status eff_prune_rewind(eff_ctx *ctx, eff_prune *p);               /* W = theta_k * mask */
EFFDEF double     eff_prune_sparsity(const eff_prune *p);
EFFDEF void       eff_prune_free(eff_ctx *ctx, eff_prune *p);

/* ---------------------------------------------------------------------------
   Data: a token stream split into train (first 1 - val_fraction) and validation; the
   train split is cut into windows of T + 1 tokens (inputs and next-token targets) that
   each epoch visits in a seeded random order; validation batches are in order.
   --------------------------------------------------------------------------- */
typedef struct eff_data_opts {
    int64_t B, T;
    float val_fraction;         /* 0: 0.1 */
    uint64_t seed;
} eff_data_opts;
typedef struct eff_data {
    int32_t *tokens;
    int64_t n_tokens, n_train;  /* train = [0, n_train), validation = [n_train, n_tokens) */
    int64_t B, T;
    int64_t n_chunks, n_val_chunks;
    int64_t *perm;              /* this epoch's order of the train windows */
    int64_t pos, epoch;         /* next window of perm; epochs completed */
    eff_rng rng;                /* the shuffling stream */
    eff_rng perm_rng;           /* rng before this epoch's permutation (checkpoints store it) */
} eff_data;
EFFDEF eff_status eff_data_from_tokens(eff_ctx *ctx, eff_data *d, const int32_t *ids, int64_t n, const eff_data_opts *opts);
/* Tokenizes text (tok: byte-level or BPE from eff_model.h; no BOS/EOS). */
EFFDEF eff_status eff_data_from_text(eff_ctx *ctx, eff_data *d, const eff_tokenizer *tok, const char *text, int64_t len,
                                     const eff_data_opts *opts);
EFFDEF eff_status eff_data_load_file(eff_ctx *ctx, eff_data *d, const eff_tokenizer *tok, const char *path, const eff_data_opts *opts);
EFFDEF eff_status eff_data_next(eff_ctx *ctx, eff_data *d, int32_t *x, int32_t *y);   /* x, y [B, T] */
EFFDEF int64_t    eff_data_n_val_batches(const eff_data *d);
EFFDEF eff_status eff_data_val_batch(eff_ctx *ctx, const eff_data *d, int64_t i, int32_t *x, int32_t *y);
EFFDEF void       eff_data_free(eff_ctx *ctx, eff_data *d);

/* ---------------------------------------------------------------------------
   Checkpoints: one safetensors file (written atomically) with every model weight
   ("model.<name>"), every optimizer tensor that is not a model weight (LoRA, adapters:
   "optim.<name>.param"), the optimizer state (".m", ".v", ".master"), and metadata: the
   model shape, optimizer step / loss scale, the context RNG and the data position.
   Loading checks everything (format, model shape, every tensor's presence, dtype and size)
   before it changes anything: a truncated or mismatched file is rejected with a message
   and the model, optimizer and data stay as they were.
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_train_save(eff_ctx *ctx, const char *path, const eff_model *m, const eff_optim *o, const eff_data *d);
EFFDEF eff_status eff_train_load(eff_ctx *ctx, const char *path, eff_model *m, eff_optim *o, eff_data *d);

#ifdef __cplusplus
}
#endif
#endif /* EFF_TRAIN_H */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_TRAIN_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_TRAIN_IMPLEMENTED)
#define EFF_TRAIN_IMPLEMENTED
#define EFF__WANT_INTERNALS
#include "eff_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Schedules
   --------------------------------------------------------------------------- */
EFFDEF float eff_lr_schedule_factor(const eff_lr_schedule *s, int64_t step) {
    double p, r;
    if (!s) return 1.0f;
    if (s->warmup_steps > 0 && step <= s->warmup_steps) return (float)((double)step / (double)s->warmup_steps);
    if (s->kind == EFF_LR_CONSTANT || s->total_steps <= s->warmup_steps) return 1.0f;
    p = (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    p = p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p;
    r = s->final_ratio;
    if (s->kind == EFF_LR_COSINE) return (float)(r + (1.0 - r) * 0.5 * (1.0 + cos(3.14159265358979323846 * p)));
    return (float)(r + (1.0 - r) * (1.0 - p));
}

/* ---------------------------------------------------------------------------
   Optimizer
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_optim_init(eff_ctx *ctx, eff_optim *o, const eff_optim_opts *opts) {
    eff_optim_opts d;
    EFF__CHECK_PTR(ctx, o);
    memset(o, 0, sizeof *o);
    memset(&d, 0, sizeof d);
    if (opts) d = *opts;
    EFF__CHECK(ctx, d.kind == EFF_OPTIM_ADAMW || d.kind == EFF_OPTIM_SGD, EFF_ERR_INVALID_ARG, "eff_optim_init: opts->kind %d", d.kind);
    EFF__CHECK(ctx, d.lr >= 0.0f && d.weight_decay >= 0.0f && d.max_grad_norm >= 0.0f && d.accum_steps >= 0, EFF_ERR_INVALID_ARG,
               "eff_optim_init: opts->lr, weight_decay, max_grad_norm and accum_steps must be >= 0");
    EFF__CHECK(ctx, !d.nesterov || (d.kind == EFF_OPTIM_SGD && d.momentum > 0.0f && d.dampening == 0.0f), EFF_ERR_INVALID_ARG,
               "eff_optim_init: opts->nesterov needs SGD with momentum > 0 and dampening 0");
    EFF__CHECK(ctx, d.schedule.kind >= EFF_LR_CONSTANT && d.schedule.kind <= EFF_LR_LINEAR && d.schedule.warmup_steps >= 0,
               EFF_ERR_INVALID_ARG, "eff_optim_init: opts->schedule kind %d / warmup %lld", d.schedule.kind, (long long)d.schedule.warmup_steps);
    if (d.lr == 0.0f) d.lr = d.kind == EFF_OPTIM_ADAMW ? 1e-3f : 1e-2f;
    if (d.beta1 == 0.0f) d.beta1 = 0.9f;
    if (d.beta2 == 0.0f) d.beta2 = 0.999f;
    if (d.eps == 0.0f) d.eps = 1e-8f;
    if (d.accum_steps == 0) d.accum_steps = 1;
    if (d.init_scale == 0.0f) d.init_scale = 65536.0f;
    if (d.growth_factor == 0.0f) d.growth_factor = 2.0f;
    if (d.backoff_factor == 0.0f) d.backoff_factor = 0.5f;
    if (d.growth_interval == 0) d.growth_interval = 2000;
    if (d.min_scale == 0.0f) d.min_scale = 1.0f;
    EFF__CHECK(ctx, d.growth_factor >= 1.0f && d.backoff_factor > 0.0f && d.backoff_factor < 1.0f && d.growth_interval > 0,
               EFF_ERR_INVALID_ARG, "eff_optim_init: loss scaling needs growth_factor >= 1, 0 < backoff_factor < 1, growth_interval > 0");
    o->opts = d;
    o->loss_scale = d.loss_scaling ? d.init_scale : 1.0f;
    o->groups = (eff_optim_group *)eff_ctx_calloc(ctx, 16 * sizeof(eff_optim_group));
    if (!o->groups) return EFF_ERR_OOM;
    snprintf(o->groups[0].name, sizeof o->groups[0].name, "default");
    o->groups[0].lr = d.lr;
    o->groups[0].weight_decay = d.weight_decay;
    o->n_groups = 1;
    return EFF_OK;
}

EFFDEF void eff_optim_free(eff_ctx *ctx, eff_optim *o) {
    int64_t i;
    if (!o) return;
    for (i = 0; i < o->n_params; i++) {
        eff_ctx_free(ctx, o->params[i].m);
        eff_ctx_free(ctx, o->params[i].v);
        if (o->params[i].own_master) eff_ctx_free(ctx, o->params[i].master);
    }
    eff_ctx_free(ctx, o->params);
    eff_ctx_free(ctx, o->groups);
    memset(o, 0, sizeof *o);
}

EFFDEF eff_status eff_optim_add_group(eff_ctx *ctx, eff_optim *o, const char *name, float lr, float weight_decay, int64_t *group) {
    eff_optim_group *g;
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK(ctx, o->groups != NULL, EFF_ERR_INVALID_ARG, "eff_optim_add_group: 'o' is not initialized");
    EFF__CHECK(ctx, o->n_groups < 16, EFF_ERR_INVALID_ARG, "eff_optim_add_group: at most 16 groups");
    EFF__CHECK(ctx, lr >= 0.0f && weight_decay >= 0.0f, EFF_ERR_INVALID_ARG, "eff_optim_add_group: 'lr' and 'weight_decay' must be >= 0");
    g = &o->groups[o->n_groups];
    snprintf(g->name, sizeof g->name, "%s", name ? name : "group");
    g->lr = lr > 0.0f ? lr : o->opts.lr;
    g->weight_decay = weight_decay;
    if (group) *group = o->n_groups;
    o->n_groups++;
    return EFF_OK;
}

EFFDEF eff_status eff_optim_add_param(eff_ctx *ctx, eff_optim *o, int64_t group, const char *name, eff_tensor *param, eff_tensor *grad,
                                      float *master) {
    eff_optim_param *p;
    int64_t n;
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK_PTR(ctx, param);
    EFF__CHECK_PTR(ctx, grad);
    EFF__CHECK(ctx, group >= 0 && group < o->n_groups, EFF_ERR_INVALID_ARG, "eff_optim_add_param: group %lld of %lld", (long long)group,
               (long long)o->n_groups);
    n = eff_tensor_nelements(param);
    EFF__CHECK(ctx, param->data && grad->data && n >= 0, EFF_ERR_INVALID_ARG, "eff_optim_add_param: '%s' has no data or gradient",
               name ? name : "?");
    EFF__CHECK(ctx, param->dtype == EFF_F32 || param->dtype == EFF_BF16 || param->dtype == EFF_F16, EFF_ERR_DTYPE,
               "eff_optim_add_param: '%s' param dtype %s (f32, bf16 or f16)", name ? name : "?", eff_dtype_name(param->dtype));
    EFF__CHECK(ctx, grad->dtype == EFF_F32 && eff_tensor_nelements(grad) == n && eff_tensor_is_contiguous(grad) && eff_tensor_is_contiguous(param),
               EFF_ERR_SHAPE, "eff_optim_add_param: '%s' needs a contiguous param and an f32 gradient of %lld elements", name ? name : "?",
               (long long)n);
    EFF__CHECK(ctx, param->dtype != EFF_F32 || !master, EFF_ERR_INVALID_ARG, "eff_optim_add_param: 'master' is only for bf16/f16 params");
    if (o->n_params == o->cap_params) {
        int64_t cap = o->cap_params ? 2 * o->cap_params : 64;
        eff_optim_param *np = (eff_optim_param *)eff_ctx_calloc(ctx, (size_t)cap * sizeof(eff_optim_param));
        if (!np) return EFF_ERR_OOM;
        if (o->n_params) memcpy(np, o->params, (size_t)o->n_params * sizeof(eff_optim_param));
        eff_ctx_free(ctx, o->params);
        o->params = np;
        o->cap_params = cap;
    }
    p = &o->params[o->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name ? name : "param");
    p->param = param; p->grad = grad; p->n = n; p->group = group;
    if (param->dtype != EFF_F32) {
        if (master) p->master = master;
        else {
            p->master = (float *)eff_ctx_alloc(ctx, (size_t)n * sizeof(float));
            if (!p->master) return EFF_ERR_OOM;
            p->own_master = 1;
            o->state_bytes += n * 4;
            if (param->dtype == EFF_BF16) eff_bf16_to_fp32_row((const uint16_t *)param->data, p->master, n);
            else eff_fp16_to_fp32_row((const uint16_t *)param->data, p->master, n);
        }
    }
    if (o->opts.kind == EFF_OPTIM_ADAMW || o->opts.momentum != 0.0f) {
        p->m = (float *)eff_ctx_calloc(ctx, (size_t)n * sizeof(float));
        if (!p->m) { if (p->own_master) eff_ctx_free(ctx, p->master); return EFF_ERR_OOM; }
        o->state_bytes += n * 4;
    }
    if (o->opts.kind == EFF_OPTIM_ADAMW) {
        p->v = (float *)eff_ctx_calloc(ctx, (size_t)n * sizeof(float));
        if (!p->v) { eff_ctx_free(ctx, p->m); if (p->own_master) eff_ctx_free(ctx, p->master); return EFF_ERR_OOM; }
        o->state_bytes += n * 4;
    }
    o->n_params++;
    return EFF_OK;
}

/* Is parameter i of m the weight or bias of a frozen linear? */
static int eff__param_frozen(const eff_model *m, int64_t i) {
    const eff_tensor *w = m->params[i].w;
    int64_t l, e;
    for (l = 0; l < m->cfg.n_layers; l++) {
        const eff_model_layer *ly = &m->layers[l];
        const eff_model_linear *lin[8];
        int k;
        lin[0] = &ly->q; lin[1] = &ly->k; lin[2] = &ly->v; lin[3] = &ly->o;
        lin[4] = &ly->ffn.gate; lin[5] = &ly->ffn.up; lin[6] = &ly->ffn.down; lin[7] = &ly->router;
        for (k = 0; k < 8; k++) if ((w == &lin[k]->W || w == &lin[k]->b) && lin[k]->frozen) return 1;
        for (e = 0; e < m->cfg.n_experts; e++) {
            const eff_model_ffn *f = &ly->experts[e];
            if ((w == &f->gate.W || w == &f->up.W || w == &f->down.W) && (f->gate.frozen || f->up.frozen || f->down.frozen)) return 1;
        }
    }
    if (w == &m->head.W && m->head.frozen) return 1;
    return 0;
}

EFFDEF eff_status eff_optim_add_model(eff_ctx *ctx, eff_optim *o, eff_model *m, int64_t decay_group, int64_t no_decay_group) {
    int64_t i, added = 0;
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_optim_add_model: model is not built");
    EFF__CHECK(ctx, !m->frozen, EFF_ERR_INVALID_ARG, "eff_optim_add_model: the model is frozen (its adapters train: add those)");
    for (i = 0; i < m->n_params; i++) {
        eff_model_param *p = &m->params[i];
        if (!p->g->data || !p->w->data || eff__param_frozen(m, i)) continue;
        EFF__TRY(eff_optim_add_param(ctx, o, p->w->ndim >= 2 ? decay_group : no_decay_group, p->name, p->w, p->g, p->master));
        added++;
    }
    EFF__CHECK(ctx, added > 0, EFF_ERR_INVALID_ARG, "eff_optim_add_model: no parameter has a gradient (call eff_model_alloc_grads)");
    return EFF_OK;
}

EFFDEF float eff_optim_loss_scale(const eff_optim *o) { return o && o->opts.loss_scaling ? o->loss_scale : 1.0f; }

EFFDEF int64_t eff_optim_n_params(const eff_optim *o) {
    int64_t i, n = 0;
    for (i = 0; o && i < o->n_params; i++) n += o->params[i].n;
    return n;
}

/* Sum of squares of every gradient (double); inf/NaN propagate. */
static double eff__optim_sumsq(const eff_optim *o) {
    double s = 0.0;
    int64_t i, j;
    for (i = 0; i < o->n_params; i++) {
        const float *g = (const float *)o->params[i].grad->data;
        double t = 0.0;
        for (j = 0; j < o->params[i].n; j++) t += (double)g[j] * (double)g[j];
        s += t;
    }
    return s;
}

EFFDEF eff_status eff_optim_grad_norm(eff_ctx *ctx, const eff_optim *o, double *norm) {
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK_PTR(ctx, norm);
    *norm = sqrt(eff__optim_sumsq(o));
    return EFF_OK;
}

EFFDEF eff_status eff_optim_clip_grad_norm(eff_ctx *ctx, eff_optim *o, float max_norm, double *norm) {
    double nrm, coef;
    int64_t i, j;
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK(ctx, max_norm > 0.0f, EFF_ERR_INVALID_ARG, "eff_optim_clip_grad_norm: 'max_norm' %g must be > 0", (double)max_norm);
    nrm = sqrt(eff__optim_sumsq(o));
    if (norm) *norm = nrm;
    EFF__CHECK(ctx, nrm == nrm && nrm <= DBL_MAX, EFF_ERR_NUMERIC, "eff_optim_clip_grad_norm: the gradient norm is not finite");
    coef = (double)max_norm / (nrm + 1e-6);
    if (coef >= 1.0) return EFF_OK;
    for (i = 0; i < o->n_params; i++) {
        float *g = (float *)o->params[i].grad->data, c = (float)coef;
        for (j = 0; j < o->params[i].n; j++) g[j] *= c;
    }
    return EFF_OK;
}

EFFDEF void eff_optim_zero_grad(eff_optim *o) {
    int64_t i;
    for (i = 0; o && i < o->n_params; i++) memset(o->params[i].grad->data, 0, (size_t)o->params[i].n * sizeof(float));
}

EFFDEF eff_status eff_optim_step(eff_ctx *ctx, eff_optim *o) {
    const eff_optim_opts *d;
    double inv, nrm, coef = 1.0;
    float factor;
    int64_t i, t;
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK(ctx, o->groups != NULL, EFF_ERR_INVALID_ARG, "eff_optim_step: 'o' is not initialized");
    d = &o->opts;
    inv = 1.0 / ((double)(d->loss_scaling ? o->loss_scale : 1.0f) * (double)d->accum_steps);
    o->last_skipped = 0;
    if (d->loss_scaling || d->max_grad_norm > 0.0f) {
        nrm = sqrt(eff__optim_sumsq(o)) * inv;
        o->last_grad_norm = nrm;
        if (!(nrm == nrm && nrm <= DBL_MAX)) {
            if (!d->loss_scaling)
                return eff_ctx_error(ctx, EFF_ERR_NUMERIC, "eff_optim_step: the gradient norm is not finite (enable loss_scaling to skip such steps)");
            o->loss_scale = o->loss_scale * d->backoff_factor < d->min_scale ? d->min_scale : o->loss_scale * d->backoff_factor;
            o->good_steps = 0;
            o->n_skipped++;
            o->last_skipped = 1;
            eff_optim_zero_grad(o);
            return EFF_OK;
        }
        if (d->max_grad_norm > 0.0f) {
            coef = (double)d->max_grad_norm / (nrm + 1e-6);
            if (coef > 1.0) coef = 1.0;
        }
    }
    t = o->step + 1;
    factor = eff_lr_schedule_factor(&d->schedule, t);
    o->last_lr = factor * d->lr;
    for (i = 0; i < o->n_params; i++) {
        eff_optim_param *p = &o->params[i];
        const eff_optim_group *g = &o->groups[p->group];
        float gs = (float)(inv * coef);
        if (d->kind == EFF_OPTIM_ADAMW) {
            eff_adamw_opts a;
            memset(&a, 0, sizeof a);
            a.lr = g->lr * factor; a.beta1 = d->beta1; a.beta2 = d->beta2; a.eps = d->eps; a.weight_decay = g->weight_decay;
            a.step = t; a.grad_scale = gs;
            if (a.lr == 0.0f) continue;   /* the kernel would read 0 as its default */
            EFF__TRY(eff_adamw_step(ctx, &a, p->n, p->param->data, p->param->dtype, p->master, p->grad->data, EFF_F32, p->m, p->v));
        } else {
            eff_sgd_opts s;
            memset(&s, 0, sizeof s);
            s.lr = g->lr * factor; s.momentum = d->momentum; s.dampening = d->dampening; s.weight_decay = g->weight_decay;
            s.nesterov = d->nesterov; s.step = t; s.grad_scale = gs;
            if (s.lr == 0.0f) continue;
            EFF__TRY(eff_sgd_step(ctx, &s, p->n, p->param->data, p->param->dtype, p->master, p->grad->data, EFF_F32, p->m));
        }
    }
    o->step = t;
    if (d->loss_scaling && ++o->good_steps >= d->growth_interval) {
        o->loss_scale *= d->growth_factor;
        o->good_steps = 0;
    }
    eff_optim_zero_grad(o);
    return EFF_OK;
}

EFFDEF eff_status eff_train_mixed_precision(eff_ctx *ctx, eff_model *m, int dtype) {
    float **old;
    int64_t i, l;
    eff_status s;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, dtype == EFF_BF16 || dtype == EFF_F16, EFF_ERR_DTYPE, "eff_train_mixed_precision: 'dtype' must be EFF_BF16 or EFF_F16");
    EFF__CHECK(ctx, m->params != NULL && !m->linear_store, EFF_ERR_INVALID_ARG, "eff_train_mixed_precision: model not built or already converted");
    old = (float **)eff_ctx_alloc(ctx, (size_t)m->n_params * sizeof(float *));
    if (!old) return EFF_ERR_OOM;
    for (i = 0; i < m->n_params; i++) old[i] = (float *)m->params[i].w->data;
    s = eff_model_quantize(ctx, m, dtype);
    if (s == EFF_OK) {
        for (i = 0; i < m->n_params; i++)
            if (m->params[i].w->dtype == dtype) m->params[i].master = old[i];   /* the f32 arena copy is the master */
        for (l = 0; l < m->cfg.n_layers; l++) {   /* eff_model_quantize freezes; these weights train */
            eff_model_layer *ly = &m->layers[l];
            int64_t e;
            ly->q.frozen = ly->k.frozen = ly->v.frozen = ly->o.frozen = 0;
            ly->ffn.gate.frozen = ly->ffn.up.frozen = ly->ffn.down.frozen = ly->router.frozen = 0;
            for (e = 0; e < m->cfg.n_experts; e++) ly->experts[e].gate.frozen = ly->experts[e].up.frozen = ly->experts[e].down.frozen = 0;
        }
        m->head.frozen = 0;
    }
    eff_ctx_free(ctx, old);
    return s;
}

/* ---------------------------------------------------------------------------
   LoRA / DoRA
   --------------------------------------------------------------------------- */
/* The linears of layer l a PEFT module covers: kinds, eff linears, HF path. Returns the
   number of modules of a layer (i past it: 0). */
static int eff__lora_module_def(eff_model *m, int64_t l, int i, char *path, size_t psize, const char **kinds, eff_model_linear **lin) {
    eff_model_layer *ly = &m->layers[l];
    if (m->cfg.arch == EFF_MODEL_GPT2) {
        static const char *sfx[4] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
        if (i >= 4) return 0;
        snprintf(path, psize, "transformer.h.%lld.%s", (long long)l, sfx[i]);
        kinds[1] = kinds[2] = NULL; lin[1] = lin[2] = NULL;
        switch (i) {
        case 0: kinds[0] = "q"; kinds[1] = "k"; kinds[2] = "v"; lin[0] = &ly->q; lin[1] = &ly->k; lin[2] = &ly->v; break;
        case 1: kinds[0] = "o"; lin[0] = &ly->o; break;
        case 2: kinds[0] = "up"; lin[0] = &ly->ffn.up; break;
        default: kinds[0] = "down"; lin[0] = &ly->ffn.down; break;
        }
        return 4;
    } else {
        static const char *sfx[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                                     "mlp.up_proj", "mlp.down_proj"};
        static const char *kn[7] = {"q", "k", "v", "o", "gate", "up", "down"};
        eff_model_linear *ls[7];
        if (i >= (m->cfg.n_experts ? 4 : 7)) return 0;
        ls[0] = &ly->q; ls[1] = &ly->k; ls[2] = &ly->v; ls[3] = &ly->o; ls[4] = &ly->ffn.gate; ls[5] = &ly->ffn.up; ls[6] = &ly->ffn.down;
        snprintf(path, psize, "model.layers.%lld.%s", (long long)l, sfx[i]);
        kinds[0] = kn[i]; kinds[1] = kinds[2] = NULL;
        lin[0] = ls[i]; lin[1] = lin[2] = NULL;
        return m->cfg.n_experts ? 4 : 7;
    }
}

/* PEFT's target rule (a path equal to the name or ending in "." + name) plus eff's short names. */
static int eff__lora_match(const char *targets, const char *path, const char **kinds) {
    const char *p = targets;
    char tok[96];
    while (*p) {
        size_t n = 0, lp = strlen(path), lt;
        int k;
        while (*p == ',' || *p == ' ') p++;
        while (p[n] && p[n] != ',' && p[n] != ' ' && n + 1 < sizeof tok) { tok[n] = p[n]; n++; }
        tok[n] = 0;
        p += n;
        while (*p && *p != ',') p++;
        if (!n) continue;
        if (strcmp(tok, "all") == 0 || strcmp(tok, "all-linear") == 0) return 1;
        for (k = 0; k < 3; k++) if (kinds[k] && strcmp(tok, kinds[k]) == 0) return 1;
        lt = strlen(tok);
        if (strcmp(path, tok) == 0 || (lp > lt && path[lp - lt - 1] == '.' && strcmp(path + lp - lt, tok) == 0)) return 1;
    }
    return 0;
}

/* x as a contiguous [M, cols] f32 matrix. */
static eff_status eff__rows_f32(eff_ctx *ctx, const eff_tensor *t, const char *what, int64_t cols, int64_t *M) {
    EFF__CHECK(ctx, t && t->data && t->dtype == EFF_F32 && eff_tensor_is_contiguous(t) && eff_tensor_ncols(t) == cols, EFF_ERR_SHAPE,
               "LoRA: '%s' must be a contiguous f32 tensor with rows of %lld", what, (long long)cols);
    *M = eff_tensor_nrows(t);
    return EFF_OK;
}

static uint64_t eff__lora_seed(const eff_lora *lora, const eff_lora_module *mod) {
    return eff_hash_u64(lora->opts.seed ^ 0x4c6f5241ull, (uint64_t)lora->dropout_step * 100003ull + (uint64_t)mod->index);
}

/* Row norms ||W + s B A||_row of the module rows [r0, r0 + rows) (DoRA), into nrm. */
static eff_status eff__dora_norms(eff_ctx *ctx, const eff_lora_module *mod, const eff_model_linear *lin, int64_t r0, int64_t rows, float *nrm) {
    const float *A = (const float *)mod->A.data, *Bm = (const float *)mod->B.data;
    float *row = (float *)eff_ctx_alloc(ctx, (size_t)mod->in * sizeof(float));
    const eff_dtype_traits *tr = eff_ctx_dtype(ctx, lin->W.dtype);
    int64_t o, j, k;
    if (!row) return EFF_ERR_OOM;
    EFF__CHECK(ctx, tr && tr->to_float && lin->W.data, EFF_ERR_DTYPE, "DoRA: cannot read the base weight of %s", lin->name);
    for (o = 0; o < rows; o++) {
        double s2 = 0.0;
        tr->to_float((const char *)lin->W.data + o * lin->W.nb[0], row, mod->in);
        for (k = 0; k < mod->r; k++) {
            float b = mod->scale * Bm[(r0 + o) * mod->r + k];
            for (j = 0; j < mod->in; j++) row[j] += b * A[k * mod->in + j];
        }
        for (j = 0; j < mod->in; j++) s2 += (double)row[j] * row[j];
        nrm[o] = (float)sqrt(s2);
    }
    eff_ctx_free(ctx, row);
    return EFF_OK;
}

/* xd = dropout(x) (a copy only when dropout is active), xa[M, r] = xd A^T. */
static eff_status eff__lora_xa(eff_ctx *ctx, eff_lora_slot *sl, const float *x, int64_t M, float **xd, float *xa) {
    eff_lora *lora = sl->lora;
    eff_lora_module *mod = sl->mod;
    *xd = (float *)x;
    if (lora->training && lora->opts.dropout > 0.0f) {
        eff_tensor X = eff_tensor_2d((void *)x, EFF_F32, M, mod->in), D;
        *xd = (float *)eff_ctx_alloc(ctx, (size_t)(M * mod->in) * sizeof(float));
        if (!*xd) return EFF_ERR_OOM;
        D = eff_tensor_2d(*xd, EFF_F32, M, mod->in);
        EFF__TRY(eff_dropout_forward(ctx, &D, &X, lora->opts.dropout, eff__lora_seed(lora, mod), 0));
    }
    return eff_sgemm(ctx, 0, 1, M, mod->r, mod->in, 1.0f, *xd, mod->in, (const float *)mod->A.data, mod->in, 0.0f, xa, mod->r);
}

/* y[M, rows] += s (dropout(x) A^T) B_part^T; DoRA rescales the whole output. */
static eff_status eff__lora_forward(eff_ctx *ctx, void *state, eff_tensor *y, const eff_tensor *x) {
    eff_lora_slot *sl = (eff_lora_slot *)state;
    eff_lora_module *mod = sl->mod;
    eff_model_linear *lin = mod->lin[sl->part];
    int64_t M, My, rows = mod->rows[sl->part], r0 = mod->row0[sl->part], i, o;
    float *xd, *xa, *lo = NULL;
    eff_status s;
    if (sl->lora->merged) return EFF_OK;
    EFF__TRY(eff__rows_f32(ctx, x, "x", mod->in, &M));
    EFF__TRY(eff__rows_f32(ctx, y, "y", rows, &My));
    EFF__CHECK(ctx, M == My, EFF_ERR_SHAPE, "LoRA forward: x has %lld rows, y %lld", (long long)M, (long long)My);
    xa = (float *)eff_ctx_alloc(ctx, (size_t)(M * mod->r) * sizeof(float));
    if (!xa) return EFF_ERR_OOM;
    s = eff__lora_xa(ctx, sl, (const float *)x->data, M, &xd, xa);
    if (s == EFF_OK && !mod->mag.data)
        s = eff_sgemm(ctx, 0, 1, M, rows, mod->r, mod->scale, xa, mod->r, (const float *)mod->B.data + r0 * mod->r, mod->r, 1.0f,
                      (float *)y->data, rows);
    if (s == EFF_OK && mod->mag.data) {   /* DoRA: y = b + g (x W^T + s xa B^T), g = m / ||W + s B A||_row */
        float *nrm = (float *)eff_ctx_alloc(ctx, (size_t)rows * sizeof(float));
        lo = (float *)eff_ctx_alloc(ctx, (size_t)(M * rows) * sizeof(float));
        if (!nrm || !lo) s = EFF_ERR_OOM;
        if (s == EFF_OK) s = eff__dora_norms(ctx, mod, lin, 0, rows, nrm);
        if (s == EFF_OK)
            s = eff_sgemm(ctx, 0, 1, M, rows, mod->r, mod->scale, xa, mod->r, (const float *)mod->B.data + r0 * mod->r, mod->r, 0.0f, lo, rows);
        for (i = 0; s == EFF_OK && i < M; i++) {
            float *yr = (float *)y->data + i * rows;
            for (o = 0; o < rows; o++) {
                float b = lin->b.data ? ((const float *)lin->b.data)[o] : 0.0f;
                float g = ((const float *)mod->mag.data)[r0 + o] / nrm[o];
                yr[o] = b + g * (yr[o] - b + lo[i * rows + o]);
            }
        }
        eff_ctx_free(ctx, nrm);
        eff_ctx_free(ctx, lo);
    }
    if (xd != (const float *)x->data) eff_ctx_free(ctx, xd);
    eff_ctx_free(ctx, xa);
    return s;
}

/* dB += s dy'^T xa, dA += (s dy' B)^T xd, dx += dropout'(s dy' B A) with dy' = g dy (DoRA) or dy;
   DoRA also dx += (g - 1) dy W and dm += sum_rows dy z / ||.||, z = x W^T + s xa B^T. */
static eff_status eff__lora_backward(eff_ctx *ctx, void *state, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    eff_lora_slot *sl = (eff_lora_slot *)state;
    eff_lora *lora = sl->lora;
    eff_lora_module *mod = sl->mod;
    eff_model_linear *lin = mod->lin[sl->part];
    int64_t M, My, rows = mod->rows[sl->part], r0 = mod->row0[sl->part], r = mod->r, i, o;
    float *xd = NULL, *xa, *dxa, *dyg = NULL, *tmp = NULL;
    const float *dyp;
    eff_status s = EFF_OK;
    if (lora->merged) return EFF_OK;
    EFF__TRY(eff__rows_f32(ctx, x, "x", mod->in, &M));
    EFF__TRY(eff__rows_f32(ctx, dy, "dy", rows, &My));
    EFF__CHECK(ctx, M == My, EFF_ERR_SHAPE, "LoRA backward: x has %lld rows, dy %lld", (long long)M, (long long)My);
    if (dx) { int64_t Mx; EFF__TRY(eff__rows_f32(ctx, dx, "dx", mod->in, &Mx)); }
    xa = (float *)eff_ctx_alloc(ctx, (size_t)(M * r) * sizeof(float));
    dxa = (float *)eff_ctx_alloc(ctx, (size_t)(M * r) * sizeof(float));
    if (!xa || !dxa) { eff_ctx_free(ctx, xa); eff_ctx_free(ctx, dxa); return EFF_ERR_OOM; }
    s = eff__lora_xa(ctx, sl, (const float *)x->data, M, &xd, xa);
    dyp = (const float *)dy->data;
    if (s == EFF_OK && mod->mag.data) {
        float *nrm = (float *)eff_ctx_alloc(ctx, (size_t)rows * sizeof(float));
        float *z = (float *)eff_ctx_alloc(ctx, (size_t)(M * rows) * sizeof(float));
        dyg = (float *)eff_ctx_alloc(ctx, (size_t)(M * rows) * sizeof(float));
        if (!nrm || !z || !dyg) s = EFF_ERR_OOM;
        if (s == EFF_OK) s = eff__dora_norms(ctx, mod, lin, 0, rows, nrm);
        if (s == EFF_OK) {   /* z = x W^T + s xa B^T */
            eff_tensor Z = eff_tensor_2d(z, EFF_F32, M, rows), X = eff_tensor_2d(x->data, EFF_F32, M, mod->in);
            s = eff_linear_forward(ctx, &Z, &X, &lin->W, NULL);
            if (s == EFF_OK)
                s = eff_sgemm(ctx, 0, 1, M, rows, r, mod->scale, xa, r, (const float *)mod->B.data + r0 * r, r, 1.0f, z, rows);
        }
        for (i = 0; s == EFF_OK && i < M; i++)
            for (o = 0; o < rows; o++) {
                float g = ((const float *)mod->mag.data)[r0 + o] / nrm[o], d = dyp[i * rows + o];
                ((float *)mod->dmag.data)[r0 + o] += d * z[i * rows + o] / nrm[o];
                dyg[i * rows + o] = g * d;
                z[i * rows + o] = (g - 1.0f) * d;   /* reuse z for the extra base-path gradient */
            }
        if (s == EFF_OK && dx) {   /* dx += ((g - 1) dy) W */
            eff_tensor G = eff_tensor_2d(z, EFF_F32, M, rows), T;
            tmp = (float *)eff_ctx_alloc(ctx, (size_t)(M * mod->in) * sizeof(float));
            if (!tmp) s = EFF_ERR_OOM;
            T = eff_tensor_2d(tmp, EFF_F32, M, mod->in);
            if (s == EFF_OK) s = eff_linear_backward(ctx, &T, NULL, NULL, &G, x, &lin->W);
            for (i = 0; s == EFF_OK && i < M * mod->in; i++) ((float *)dx->data)[i] += tmp[i];
            eff_ctx_free(ctx, tmp);
            tmp = NULL;
        }
        eff_ctx_free(ctx, nrm);
        eff_ctx_free(ctx, z);
        dyp = dyg;
    }
    if (s == EFF_OK)   /* dB_part += s dy^T xa */
        s = eff_sgemm(ctx, 1, 0, rows, r, M, mod->scale, dyp, rows, xa, r, 1.0f, (float *)mod->dB.data + r0 * r, r);
    if (s == EFF_OK)   /* dxa = s dy B_part */
        s = eff_sgemm(ctx, 0, 0, M, r, rows, mod->scale, dyp, rows, (const float *)mod->B.data + r0 * r, r, 0.0f, dxa, r);
    if (s == EFF_OK)   /* dA += dxa^T xd */
        s = eff_sgemm(ctx, 1, 0, r, mod->in, M, 1.0f, dxa, r, xd, mod->in, 1.0f, (float *)mod->dA.data, mod->in);
    if (s == EFF_OK && dx) {
        if (xd == (const float *)x->data) {   /* dx += dxa A */
            s = eff_sgemm(ctx, 0, 0, M, mod->in, r, 1.0f, dxa, r, (const float *)mod->A.data, mod->in, 1.0f, (float *)dx->data, mod->in);
        } else {
            tmp = (float *)eff_ctx_alloc(ctx, (size_t)(M * mod->in) * sizeof(float));
            if (!tmp) s = EFF_ERR_OOM;
            if (s == EFF_OK) s = eff_sgemm(ctx, 0, 0, M, mod->in, r, 1.0f, dxa, r, (const float *)mod->A.data, mod->in, 0.0f, tmp, mod->in);
            if (s == EFF_OK) {
                eff_tensor T = eff_tensor_2d(tmp, EFF_F32, M, mod->in);
                s = eff_dropout_backward(ctx, &T, &T, lora->opts.dropout, eff__lora_seed(lora, mod), 0);
            }
            for (i = 0; s == EFF_OK && i < M * mod->in; i++) ((float *)dx->data)[i] += tmp[i];
            eff_ctx_free(ctx, tmp);
        }
    }
    if (xd && xd != (const float *)x->data) eff_ctx_free(ctx, xd);
    eff_ctx_free(ctx, dyg);
    eff_ctx_free(ctx, xa);
    eff_ctx_free(ctx, dxa);
    return s;
}

EFFDEF eff_status eff_lora_attach(eff_ctx *ctx, eff_lora *lora, eff_model *m, const eff_lora_opts *opts) {
    eff_lora_opts o;
    int64_t l, n_mods = 0, n_slots = 0, total = 0, k;
    int i, pass;
    char path[96];
    const char *kinds[3];
    eff_model_linear *lin[3];
    unsigned char *base;
    eff_rng rng;
    EFF__CHECK_PTR(ctx, lora);
    memset(lora, 0, sizeof *lora);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_lora_attach: model is not built");
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (o.r == 0) o.r = 8;
    if (o.alpha == 0.0f) o.alpha = 8.0f;
    EFF__CHECK(ctx, o.r > 0 && o.alpha > 0.0f && o.dropout >= 0.0f && o.dropout < 1.0f, EFF_ERR_INVALID_ARG,
               "eff_lora_attach: opts r %lld, alpha %g, dropout %g out of range", (long long)o.r, (double)o.alpha, (double)o.dropout);
    snprintf(lora->targets_buf, sizeof lora->targets_buf, "%s", o.targets ? o.targets : "q,v");
    o.targets = lora->targets_buf;
    if (o.seed == 0) o.seed = eff_rng_u64(eff_ctx_rng(ctx));
    lora->opts = o;
    lora->m = m;
    for (pass = 0; pass < 2; pass++) {
        n_mods = n_slots = 0;
        for (l = 0; l < m->cfg.n_layers; l++)
            for (i = 0; eff__lora_module_def(m, l, i, path, sizeof path, kinds, lin); i++) {
                eff_lora_module *md;
                int64_t in, out = 0;
                if (!eff__lora_match(o.targets, path, kinds)) continue;
                in = lin[0]->W.ne[1];
                for (k = 0; k < 3 && lin[k]; k++) out += lin[k]->W.ne[0];
                if (pass == 1) {
                    md = &lora->mods[n_mods];
                    snprintf(md->path, sizeof md->path, "%s", path);
                    snprintf(md->kind, sizeof md->kind, "%s", kinds[0]);
                    md->in = in; md->out = out; md->r = o.r; md->index = n_mods;
                    md->scale = o.use_rslora ? o.alpha / sqrtf((float)o.r) : o.alpha / (float)o.r;
                    out = 0;
                    for (k = 0; k < 3 && lin[k]; k++) {
                        md->lin[k] = lin[k]; md->row0[k] = out; md->rows[k] = lin[k]->W.ne[0]; out += lin[k]->W.ne[0];
                        lora->slots[n_slots + k].lora = lora; lora->slots[n_slots + k].mod = md; lora->slots[n_slots + k].part = (int)k;
                    }
                    md->n_lin = (int)k;
                } else {
                    for (k = 0; k < 3 && lin[k]; k++)
                        EFF__CHECK(ctx, !lin[k]->adapter.forward, EFF_ERR_INVALID_ARG, "eff_lora_attach: %s already has an adapter", lin[k]->name);
                    total += 2 * (o.r * in + out * o.r) + (o.use_dora ? 2 * out : 0) + 32;
                }
                n_mods++;
                for (k = 0; k < 3 && lin[k]; k++) n_slots++;
            }
        if (pass == 0) {
            EFF__CHECK(ctx, n_mods > 0, EFF_ERR_NOT_FOUND, "eff_lora_attach: opts->targets \"%s\" match no linear of this model", o.targets);
            lora->mods = (eff_lora_module *)eff_ctx_calloc(ctx, (size_t)n_mods * sizeof(eff_lora_module));
            lora->slots = (eff_lora_slot *)eff_ctx_calloc(ctx, (size_t)n_slots * sizeof(eff_lora_slot));
            lora->store = eff_ctx_calloc(ctx, (size_t)total * sizeof(float));
            if (!lora->mods || !lora->slots || !lora->store) { eff_lora_detach(ctx, lora); return EFF_ERR_OOM; }
        }
    }
    lora->n_mods = n_mods; lora->n_slots = n_slots;
    base = (unsigned char *)lora->store;
    eff_rng_seed(&rng, o.seed);
    for (k = 0; k < n_mods; k++) {
        eff_lora_module *md = &lora->mods[k];
        float *p = (float *)base, bound = 1.0f / sqrtf((float)md->in);
        md->A = eff_tensor_2d(p, EFF_F32, md->r, md->in); p += md->r * md->in;
        md->B = eff_tensor_2d(p, EFF_F32, md->out, md->r); p += md->out * md->r;
        md->dA = eff_tensor_2d(p, EFF_F32, md->r, md->in); p += md->r * md->in;
        md->dB = eff_tensor_2d(p, EFF_F32, md->out, md->r); p += md->out * md->r;
        if (o.use_dora) {
            int64_t j, n = md->out * md->in;
            md->mag = eff_tensor_1d(p, EFF_F32, md->out); p += md->out;
            md->dmag = eff_tensor_1d(p, EFF_F32, md->out); p += md->out;
            (void)n;
            for (j = 0; j < md->n_lin; j++) {   /* magnitude = ||W0||_row (B = 0 at init) */
                int64_t rows = md->rows[j], r0 = md->row0[j], rr, c;
                const eff_dtype_traits *tr = eff_ctx_dtype(ctx, md->lin[j]->W.dtype);
                float *row = (float *)eff_ctx_alloc(ctx, (size_t)md->in * sizeof(float));
                if (!row) { eff_lora_detach(ctx, lora); return EFF_ERR_OOM; }
                for (rr = 0; rr < rows; rr++) {
                    double s2 = 0.0;
                    tr->to_float((const char *)md->lin[j]->W.data + rr * md->lin[j]->W.nb[0], row, md->in);
                    for (c = 0; c < md->in; c++) s2 += (double)row[c] * row[c];
                    ((float *)md->mag.data)[r0 + rr] = (float)sqrt(s2);
                }
                eff_ctx_free(ctx, row);
            }
        }
        base = (unsigned char *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
        eff_rng_fill_uniform(&rng, (float *)md->A.data, md->r * md->in, -bound, bound);   /* kaiming_uniform_(a = sqrt(5)) */
        if (o.init_random_b) eff_rng_fill_uniform(&rng, (float *)md->B.data, md->out * md->r, -1.0f / sqrtf((float)md->r), 1.0f / sqrtf((float)md->r));
    }
    for (k = 0; k < n_slots; k++) {
        eff_model_linear *ln = lora->slots[k].mod->lin[lora->slots[k].part];
        ln->adapter.state = &lora->slots[k];
        ln->adapter.forward = eff__lora_forward;
        ln->adapter.backward = eff__lora_backward;
        ln->adapter.replace = 0;
        ln->frozen = 1;
    }
    m->frozen = 1;
    lora->training = 1;
    return EFF_OK;
}

EFFDEF void eff_lora_detach(eff_ctx *ctx, eff_lora *lora) {
    int64_t k;
    if (!lora) return;
    for (k = 0; lora->slots && k < lora->n_slots; k++) {
        eff_lora_slot *sl = &lora->slots[k];
        eff_model_linear *ln;
        if (!sl->mod) continue;
        ln = sl->mod->lin[sl->part];
        if (ln && ln->adapter.state == (void *)sl) memset(&ln->adapter, 0, sizeof ln->adapter);
    }
    eff_ctx_free(ctx, lora->mods);
    eff_ctx_free(ctx, lora->slots);
    eff_ctx_free(ctx, lora->store);
    memset(lora, 0, sizeof *lora);
}

/* sign +1: merge, -1: unmerge. DoRA merge W = g (W + s B A) with g = m / ||W + s B A||_row;
   g is kept (lora->merge_g) so unmerge can undo it exactly as PEFT does. */
static eff_status eff__lora_merge(eff_ctx *ctx, eff_lora *lora, int sign) {
    int64_t k, j, o, c, q, gi = 0, total = 0;
    EFF__CHECK_PTR(ctx, lora);
    EFF__CHECK(ctx, lora->mods != NULL, EFF_ERR_INVALID_ARG, "eff_lora_merge: 'lora' is not attached");
    EFF__CHECK(ctx, lora->merged == (sign < 0), EFF_ERR_INVALID_ARG, "eff_lora_%s: the adapter is %s", sign > 0 ? "merge" : "unmerge",
               lora->merged ? "already merged" : "not merged");
    for (k = 0; k < lora->n_mods; k++) {
        total += lora->mods[k].out;
        for (j = 0; j < lora->mods[k].n_lin; j++)
            EFF__CHECK(ctx, lora->mods[k].lin[j]->W.dtype == EFF_F32 && lora->mods[k].lin[j]->W.data, EFF_ERR_DTYPE,
                       "eff_lora_merge: %s is not an f32 weight", lora->mods[k].lin[j]->name);
    }
    if (sign > 0 && lora->opts.use_dora) {
        lora->merge_g = (float *)eff_ctx_alloc(ctx, (size_t)total * sizeof(float));
        if (!lora->merge_g) return EFF_ERR_OOM;
    }
    for (k = 0; k < lora->n_mods; k++) {
        eff_lora_module *md = &lora->mods[k];
        const float *A = (const float *)md->A.data, *Bm = (const float *)md->B.data;
        for (j = 0; j < md->n_lin; j++) {
            eff_model_linear *ln = md->lin[j];
            if (md->mag.data && sign > 0) {
                EFF__TRY(eff__dora_norms(ctx, md, ln, md->row0[j], md->rows[j], lora->merge_g + gi));
                for (o = 0; o < md->rows[j]; o++) lora->merge_g[gi + o] = ((const float *)md->mag.data)[md->row0[j] + o] / lora->merge_g[gi + o];
            }
            for (o = 0; o < md->rows[j]; o++) {
                float *w = (float *)((char *)ln->W.data + o * ln->W.nb[0]);
                const float *b = Bm + (md->row0[j] + o) * md->r;
                float g = md->mag.data ? lora->merge_g[gi + o] : 1.0f;
                for (c = 0; c < md->in; c++) {
                    float d = 0.0f;
                    for (q = 0; q < md->r; q++) d += b[q] * A[q * md->in + c];
                    if (sign > 0) w[c] = g * (w[c] + md->scale * d);
                    else w[c] = w[c] / g - md->scale * d;
                }
            }
            gi += md->rows[j];
        }
    }
    if (sign < 0) { eff_ctx_free(ctx, lora->merge_g); lora->merge_g = NULL; }
    lora->merged = sign > 0;
    return EFF_OK;
}
EFFDEF eff_status eff_lora_merge(eff_ctx *ctx, eff_lora *lora) { return eff__lora_merge(ctx, lora, 1); }
EFFDEF eff_status eff_lora_unmerge(eff_ctx *ctx, eff_lora *lora) { return eff__lora_merge(ctx, lora, -1); }

EFFDEF eff_status eff_lora_add_to_optim(eff_ctx *ctx, eff_lora *lora, eff_optim *o, int64_t group) {
    int64_t k;
    char nm[160];
    EFF__CHECK_PTR(ctx, lora);
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK(ctx, lora->mods != NULL, EFF_ERR_INVALID_ARG, "eff_lora_add_to_optim: 'lora' is not attached");
    for (k = 0; k < lora->n_mods; k++) {
        eff_lora_module *md = &lora->mods[k];
        snprintf(nm, sizeof nm, "base_model.model.%s.lora_A.weight", md->path);
        EFF__TRY(eff_optim_add_param(ctx, o, group, nm, &md->A, &md->dA, NULL));
        snprintf(nm, sizeof nm, "base_model.model.%s.lora_B.weight", md->path);
        EFF__TRY(eff_optim_add_param(ctx, o, group, nm, &md->B, &md->dB, NULL));
        if (md->mag.data) {
            snprintf(nm, sizeof nm, "base_model.model.%s.lora_magnitude_vector", md->path);
            EFF__TRY(eff_optim_add_param(ctx, o, group, nm, &md->mag, &md->dmag, NULL));
        }
    }
    return EFF_OK;
}

EFFDEF int64_t eff_lora_n_trainable(const eff_lora *lora) {
    int64_t k, n = 0;
    for (k = 0; lora && k < lora->n_mods; k++)
        n += lora->mods[k].r * (lora->mods[k].in + lora->mods[k].out) + (lora->mods[k].mag.data ? lora->mods[k].out : 0);
    return n;
}

EFFDEF void eff_lora_zero_grads(eff_lora *lora) {
    int64_t k;
    for (k = 0; lora && k < lora->n_mods; k++) {
        eff_lora_module *md = &lora->mods[k];
        memset(md->dA.data, 0, (size_t)(md->r * md->in) * sizeof(float));
        memset(md->dB.data, 0, (size_t)(md->out * md->r) * sizeof(float));
        if (md->dmag.data) memset(md->dmag.data, 0, (size_t)md->out * sizeof(float));
    }
}

EFFDEF eff_status eff_lora_find(const eff_lora *lora, const char *key, eff_tensor **w, eff_tensor **g) {
    int64_t k;
    char nm[160];
    if (!lora || !key) return EFF_ERR_INVALID_ARG;
    for (k = 0; k < lora->n_mods; k++) {
        eff_lora_module *md = &lora->mods[k];
        int which;
        for (which = 0; which < 3; which++) {
            eff_tensor *tw = which == 0 ? &md->A : which == 1 ? &md->B : &md->mag, *tg = which == 0 ? &md->dA : which == 1 ? &md->dB : &md->dmag;
            if (which == 2 && !md->mag.data) continue;
            snprintf(nm, sizeof nm, which == 2 ? "base_model.model.%s.lora_magnitude_vector" : "base_model.model.%s.lora_%c.weight", md->path,
                     which == 0 ? 'A' : 'B');
            if (strcmp(nm, key) == 0) {
                if (w) *w = tw;
                if (g) *g = tg;
                return EFF_OK;
            }
        }
    }
    return EFF_ERR_NOT_FOUND;
}

static eff_status eff__mkdir(eff_ctx *ctx, const char *dir) {
#ifdef EFF__POSIX
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return eff_ctx_error(ctx, EFF_ERR_IO, "cannot create directory '%s': %s", dir, strerror(errno));
#else
    (void)ctx; (void)dir;
#endif
    return EFF_OK;
}

/* Writes text atomically. */
static eff_status eff__write_text(eff_ctx *ctx, const char *path, const char *txt, size_t len) {
    eff_file_writer fw;
    eff_status s;
    EFF__TRY(eff_file_writer_open(ctx, &fw, path));
    s = eff_file_writer_write(ctx, &fw, txt, len);
    if (s == EFF_OK) s = eff_file_writer_commit(ctx, &fw); else eff_file_writer_abort(ctx, &fw);
    return s;
}

/* The PEFT target name of a module: the last path component (Llama), or the last two
   for GPT-2 (attn.c_proj and mlp.c_proj share "c_proj"). */
static const char *eff__lora_target_name(const eff_lora *lora, const eff_lora_module *md) {
    const char *p = md->path + strlen(md->path);
    int dots = lora->m->cfg.arch == EFF_MODEL_GPT2 ? 2 : 1;
    while (p > md->path) {
        if (p[-1] == '.' && --dots == 0) break;
        p--;
    }
    return p;
}

EFFDEF eff_status eff_lora_save_peft(eff_ctx *ctx, const eff_lora *lora, const char *dir) {
    eff_json_writer jw;
    eff_tensor *ts;
    char (*names)[160];
    char path[1024];
    const char *txt;
    size_t tlen = 0;
    int64_t k, n = 0, j;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, lora);
    EFF__CHECK_PTR(ctx, dir);
    EFF__CHECK(ctx, lora->mods != NULL, EFF_ERR_INVALID_ARG, "eff_lora_save_peft: 'lora' is not attached");
    EFF__CHECK(ctx, !lora->merged, EFF_ERR_INVALID_ARG, "eff_lora_save_peft: unmerge first");
    EFF__TRY(eff__mkdir(ctx, dir));
    ts = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)(3 * lora->n_mods) * sizeof(eff_tensor));
    names = (char (*)[160])eff_ctx_calloc(ctx, (size_t)(3 * lora->n_mods) * 160);
    if (!ts || !names) { eff_ctx_free(ctx, ts); eff_ctx_free(ctx, (void *)names); return EFF_ERR_OOM; }
    for (k = 0; k < lora->n_mods; k++) {
        const eff_lora_module *md = &lora->mods[k];
        snprintf(names[n], 160, "base_model.model.%s.lora_A.weight", md->path); ts[n] = md->A; ts[n].name = names[n]; n++;
        snprintf(names[n], 160, "base_model.model.%s.lora_B.weight", md->path); ts[n] = md->B; ts[n].name = names[n]; n++;
        if (md->mag.data) { snprintf(names[n], 160, "base_model.model.%s.lora_magnitude_vector", md->path); ts[n] = md->mag; ts[n].name = names[n]; n++; }
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    {
        const char *meta[2] = {"format", "pt"};
        s = eff_safetensors_write(ctx, path, ts, n, meta, 1);
    }
    eff_ctx_free(ctx, ts);
    eff_ctx_free(ctx, (void *)names);
    EFF__TRY(s);
    eff_jsonw_init(ctx, &jw, 1);
    eff_jsonw_begin_object(&jw);
    eff_jsonw_key(&jw, "peft_type"); eff_jsonw_string(&jw, "LORA");
    eff_jsonw_key(&jw, "task_type"); eff_jsonw_string(&jw, "CAUSAL_LM");
    eff_jsonw_key(&jw, "base_model_name_or_path"); eff_jsonw_null(&jw);
    eff_jsonw_key(&jw, "r"); eff_jsonw_int(&jw, lora->opts.r);
    eff_jsonw_key(&jw, "lora_alpha"); eff_jsonw_number(&jw, lora->opts.alpha);
    eff_jsonw_key(&jw, "lora_dropout"); eff_jsonw_number(&jw, lora->opts.dropout);
    eff_jsonw_key(&jw, "target_modules"); eff_jsonw_begin_array(&jw);
    for (k = 0; k < lora->n_mods; k++) {   /* unique target names in first-seen order */
        const char *t = eff__lora_target_name(lora, &lora->mods[k]);
        int seen = 0;
        for (j = 0; j < k; j++) seen |= strcmp(eff__lora_target_name(lora, &lora->mods[j]), t) == 0;
        if (!seen) eff_jsonw_string(&jw, t);
    }
    eff_jsonw_end_array(&jw);
    eff_jsonw_key(&jw, "bias"); eff_jsonw_string(&jw, "none");
    eff_jsonw_key(&jw, "fan_in_fan_out"); eff_jsonw_bool(&jw, lora->m->cfg.arch == EFF_MODEL_GPT2);
    eff_jsonw_key(&jw, "inference_mode"); eff_jsonw_bool(&jw, 1);
    eff_jsonw_key(&jw, "init_lora_weights"); eff_jsonw_bool(&jw, 1);
    eff_jsonw_key(&jw, "use_rslora"); eff_jsonw_bool(&jw, lora->opts.use_rslora);
    eff_jsonw_key(&jw, "use_dora"); eff_jsonw_bool(&jw, lora->opts.use_dora);
    eff_jsonw_key(&jw, "modules_to_save"); eff_jsonw_null(&jw);
    eff_jsonw_key(&jw, "layers_to_transform"); eff_jsonw_null(&jw);
    eff_jsonw_key(&jw, "layers_pattern"); eff_jsonw_null(&jw);
    eff_jsonw_key(&jw, "rank_pattern"); eff_jsonw_begin_object(&jw); eff_jsonw_end_object(&jw);
    eff_jsonw_key(&jw, "alpha_pattern"); eff_jsonw_begin_object(&jw); eff_jsonw_end_object(&jw);
    eff_jsonw_key(&jw, "revision"); eff_jsonw_null(&jw);
    eff_jsonw_end_object(&jw);
    txt = eff_jsonw_finish(&jw, &tlen);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    s = txt ? eff__write_text(ctx, path, txt, tlen) : eff_ctx_error(ctx, EFF_ERR_OOM, "eff_lora_save_peft: JSON writer failed");
    eff_jsonw_free(&jw);
    return s;
}

EFFDEF eff_status eff_lora_load_peft(eff_ctx *ctx, eff_lora *lora, eff_model *m, const char *dir) {
    eff_file_map fm;
    eff_json js;
    const eff_json_node *r, *tm, *ch;
    eff_lora_opts o;
    eff_safetensors st;
    char path[1024], targets[256];
    const char *pt;
    int64_t k, i, n_found = 0;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, lora);
    memset(lora, 0, sizeof *lora);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, dir);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    EFF__TRY(eff_file_map_open(ctx, path, &fm));
    s = eff_json_parse(ctx, &js, (const char *)fm.data, fm.size, 0);
    eff_file_map_close(ctx, &fm);
    EFF__TRY(s);
    memset(&o, 0, sizeof o);
    targets[0] = 0;
    r = eff_json_root(&js);
    pt = r && r->type == EFF_JSON_OBJECT ? eff_json_get_string(&js, r, "peft_type", NULL) : NULL;
    if (!pt || strcmp(pt, "LORA") != 0) s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: peft_type \"%s\" (eff reads LORA)", path, pt ? pt : "?");
    if (s == EFF_OK) {
        const eff_json_node *rp = eff_json_get(&js, r, "rank_pattern"), *ap = eff_json_get(&js, r, "alpha_pattern"), *lt;
        o.r = eff_json_get_int(&js, r, "r", 8);
        o.alpha = (float)eff_json_get_number(&js, r, "lora_alpha", 8.0);
        o.dropout = (float)eff_json_get_number(&js, r, "lora_dropout", 0.0);
        o.use_rslora = eff_json_get_bool(&js, r, "use_rslora", 0);
        o.use_dora = eff_json_get_bool(&js, r, "use_dora", 0);
        lt = eff_json_get(&js, r, "layers_to_transform");
        if ((rp && rp->type == EFF_JSON_OBJECT && rp->len > 0) || (ap && ap->type == EFF_JSON_OBJECT && ap->len > 0) || (lt && lt->type != EFF_JSON_NULL))
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: rank_pattern, alpha_pattern and layers_to_transform are not supported", path);
        tm = eff_json_get(&js, r, "target_modules");
        if (s == EFF_OK && tm && tm->type == EFF_JSON_STRING) snprintf(targets, sizeof targets, "%s", tm->str);
        else if (s == EFF_OK && tm && tm->type == EFF_JSON_ARRAY) {
            size_t len = 0;
            for (ch = eff_json_child(&js, tm); ch; ch = eff_json_next(&js, ch))
                if (ch->type == EFF_JSON_STRING && len + strlen(ch->str) + 2 < sizeof targets)
                    len += (size_t)snprintf(targets + len, sizeof targets - len, "%s%s", len ? "," : "", ch->str);
        } else if (s == EFF_OK) s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: no target_modules", path);
    }
    eff_json_free(ctx, &js);
    EFF__TRY(s);
    o.targets = targets;
    o.seed = 1;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    EFF__TRY(eff_safetensors_open(ctx, &st, path));
    s = eff_lora_attach(ctx, lora, m, &o);
    for (i = 0; s == EFF_OK && i < st.n_entries; i++) {
        const eff_safetensors_entry *e = &st.entries[i];
        eff_tensor *w = NULL, flat, dst;
        int64_t n;
        if (eff_lora_find(lora, e->name, &w, NULL) != EFF_OK) {
            s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: tensor '%s' matches no LoRA module of this model and config", path, e->name);
            break;
        }
        n = eff_tensor_nelements(w);
        if (eff_tensor_nelements(&e->tensor) != n || e->tensor.ndim != w->ndim || e->tensor.ne[0] != w->ne[0]) {
            s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: '%s' has %lld elements, the model needs [%lld%s%lld]", path, e->name,
                              (long long)eff_tensor_nelements(&e->tensor), (long long)w->ne[0], w->ndim > 1 ? ", " : "",
                              w->ndim > 1 ? (long long)w->ne[1] : 0LL);
            break;
        }
        s = eff_tensor_reshape(ctx, &flat, &e->tensor, 1, &n);
        dst = eff_tensor_1d(w->data, EFF_F32, n);
        if (s == EFF_OK) s = eff_tensor_copy(ctx, &dst, &flat);
        n_found++;
    }
    for (k = 0; s == EFF_OK && k < lora->n_mods; k++) {   /* every module's A and B must be present */
        char nm[160];
        snprintf(nm, sizeof nm, "base_model.model.%s.lora_A.weight", lora->mods[k].path);
        if (!eff_safetensors_find(&st, nm)) s = eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "%s: missing '%s'", path, nm);
        snprintf(nm, sizeof nm, "base_model.model.%s.lora_B.weight", lora->mods[k].path);
        if (s == EFF_OK && !eff_safetensors_find(&st, nm)) s = eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "%s: missing '%s'", path, nm);
    }
    eff_safetensors_close(ctx, &st);
    if (s != EFF_OK) { if (lora->mods) { m->frozen = 0; eff_lora_detach(ctx, lora); } return s; }
    (void)n_found;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   QLoRA
   --------------------------------------------------------------------------- */
#define EFF__QTILE 64
/* Rows [r0, r0 + n) of a 4-bit [rows, cols] weight into out[n, cols] (f32). */
static void eff__q4_rows(const eff_quant_4bit *q, int64_t r0, int64_t n, float *out) {
    const float *code = eff_quant_4bit_code(q->quant_type), *dyn = eff_quant_dyn8_code();
    int64_t i, e0 = r0 * q->cols, ne = n * q->cols, blk = -1;
    float am = 0.0f;
    for (i = 0; i < ne; i++) {
        int64_t e = e0 + i, b = e / q->blocksize;
        uint8_t byte = q->codes[e >> 1];
        if (b != blk) {
            blk = b;
            if (q->double_quant) { am = dyn[q->qabsmax[b]] * q->absmax2[b / q->blocksize2]; am = am + q->offset; }
            else am = q->absmax[b];
        }
        out[i] = code[(e & 1) ? (byte & 15) : (byte >> 4)] * am;
    }
}

static eff_status eff__qlora_forward(eff_ctx *ctx, void *state, eff_tensor *y, const eff_tensor *x) {
    eff_qlora_linear *ql = (eff_qlora_linear *)state;
    const eff_quant_4bit *q = &ql->q;
    int64_t M, My, o0, i, o;
    float *tile;
    eff_status s = EFF_OK;
    EFF__TRY(eff__rows_f32(ctx, x, "x", q->cols, &M));
    EFF__TRY(eff__rows_f32(ctx, y, "y", q->rows, &My));
    EFF__CHECK(ctx, M == My, EFF_ERR_SHAPE, "QLoRA forward: x has %lld rows, y %lld", (long long)M, (long long)My);
    tile = (float *)eff_ctx_alloc(ctx, (size_t)(EFF__QTILE * q->cols) * sizeof(float));
    if (!tile) return EFF_ERR_OOM;
    for (o0 = 0; s == EFF_OK && o0 < q->rows; o0 += EFF__QTILE) {
        int64_t n = q->rows - o0 < EFF__QTILE ? q->rows - o0 : EFF__QTILE;
        eff__q4_rows(q, o0, n, tile);
        s = eff_sgemm(ctx, 0, 1, M, n, q->cols, 1.0f, (const float *)x->data, q->cols, tile, q->cols, 0.0f, (float *)y->data + o0, q->rows);
    }
    eff_ctx_free(ctx, tile);
    if (s == EFF_OK && ql->lin->b.data)
        for (i = 0; i < M; i++)
            for (o = 0; o < q->rows; o++) ((float *)y->data)[i * q->rows + o] += ((const float *)ql->lin->b.data)[o];
    if (s == EFF_OK && ql->inner.forward) s = ql->inner.forward(ctx, ql->inner.state, y, x);
    return s;
}

static eff_status eff__qlora_backward(eff_ctx *ctx, void *state, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    eff_qlora_linear *ql = (eff_qlora_linear *)state;
    const eff_quant_4bit *q = &ql->q;
    int64_t M, Mx, o0;
    float *tile;
    eff_status s = EFF_OK;
    EFF__TRY(eff__rows_f32(ctx, dy, "dy", q->rows, &M));
    if (dx) {
        EFF__TRY(eff__rows_f32(ctx, dx, "dx", q->cols, &Mx));
        tile = (float *)eff_ctx_alloc(ctx, (size_t)(EFF__QTILE * q->cols) * sizeof(float));
        if (!tile) return EFF_ERR_OOM;
        for (o0 = 0; s == EFF_OK && o0 < q->rows; o0 += EFF__QTILE) {   /* dx = sum over tiles dy[:, tile] W_tile */
            int64_t n = q->rows - o0 < EFF__QTILE ? q->rows - o0 : EFF__QTILE;
            eff__q4_rows(q, o0, n, tile);
            s = eff_sgemm(ctx, 0, 0, M, q->cols, n, 1.0f, (const float *)dy->data + o0, q->rows, tile, q->cols, o0 ? 1.0f : 0.0f,
                          (float *)dx->data, q->cols);
        }
        eff_ctx_free(ctx, tile);
    }
    if (s == EFF_OK && ql->inner.backward) s = ql->inner.backward(ctx, ql->inner.state, dx, dy, x);
    return s;
}

EFFDEF eff_status eff_qlora_attach(eff_ctx *ctx, eff_qlora *q, eff_model *m, const eff_lora_opts *lopts, const eff_quant_4bit_opts *qopts) {
    eff_quant_4bit_opts qo;
    int64_t l, k, n = 0, i;
    eff_arena na;
    eff_status s = EFF_OK;
    int pass;
    EFF__CHECK_PTR(ctx, q);
    memset(q, 0, sizeof *q);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL && m->cfg.n_experts == 0 && !m->linear_store, EFF_ERR_UNSUPPORTED,
               "eff_qlora_attach: needs a built dense model with f32 weights");
    memset(&qo, 0, sizeof qo);
    if (qopts) qo = *qopts; else qo.double_quant = 1;
    if (qo.quant_type == 0) qo.quant_type = EFF_NF4;
    EFF__TRY(eff_lora_attach(ctx, &q->lora, m, lopts));
    q->lins = (eff_qlora_linear *)eff_ctx_calloc(ctx, (size_t)(7 * m->cfg.n_layers) * sizeof(eff_qlora_linear));
    if (!q->lins) { eff_qlora_detach(ctx, q); return EFF_ERR_OOM; }
    for (l = 0; s == EFF_OK && l < m->cfg.n_layers; l++) {
        eff_model_layer *ly = &m->layers[l];
        eff_model_linear *ls[7];
        ls[0] = &ly->q; ls[1] = &ly->k; ls[2] = &ly->v; ls[3] = &ly->o; ls[4] = &ly->ffn.gate; ls[5] = &ly->ffn.up; ls[6] = &ly->ffn.down;
        for (k = 0; s == EFF_OK && k < 7; k++) {
            eff_qlora_linear *ql;
            if (!ls[k]->W.data) continue;   /* GPT-2 has no gate */
            ql = &q->lins[n];
            ql->lin = ls[k];
            s = eff_quant_4bit_quantize(ctx, &ql->q, (const float *)ls[k]->W.data, ls[k]->W.ne[0], ls[k]->W.ne[1], &qo);
            if (s != EFF_OK) break;
            ql->inner = ls[k]->adapter;
            ls[k]->adapter.state = ql;
            ls[k]->adapter.forward = eff__qlora_forward;
            ls[k]->adapter.backward = eff__qlora_backward;
            ls[k]->adapter.replace = 1;
            ls[k]->frozen = 1;
            q->base_params += ls[k]->W.ne[0] * ls[k]->W.ne[1];
            q->base_bytes += eff_quant_4bit_nbytes(&ql->q);
            n++;
        }
    }
    q->n_lins = n;
    if (s != EFF_OK) { eff_qlora_detach(ctx, q); return s; }
    /* re-pack the weight arena without the quantized weights */
    eff_arena_init(&na);
    for (pass = 0; s == EFF_OK && pass < 2; pass++) {
        if (pass == 1) s = eff_arena_commit(ctx, &na);
        for (i = 0; s == EFF_OK && i < m->n_params; i++) {
            eff_tensor *w = m->params[i].w, t;
            int quantized = 0;
            for (k = 0; k < n; k++) quantized |= w == &q->lins[k].lin->W;
            if (quantized) { if (pass == 1) w->data = NULL; continue; }
            s = eff_arena_tensor(ctx, &na, &t, w->dtype, w->ndim, w->ne);
            if (s == EFF_OK && pass == 1) { memcpy(t.data, w->data, (size_t)eff_tensor_nbytes(w)); w->data = t.data; }
        }
    }
    if (s != EFF_OK) { eff_arena_release(ctx, &na); eff_qlora_detach(ctx, q); return s; }
    eff_arena_release(ctx, &m->weights);
    m->weights = na;
    if (m->cfg.tie_embeddings) m->head.W = m->tok_emb;
    return EFF_OK;
}

/* Detaching leaves the model without its quantized weights (W.data NULL): free it after. */
EFFDEF void eff_qlora_detach(eff_ctx *ctx, eff_qlora *q) {
    int64_t k;
    if (!q) return;
    for (k = 0; q->lins && k < q->n_lins; k++) {
        if (q->lins[k].lin && q->lins[k].lin->adapter.state == (void *)&q->lins[k]) q->lins[k].lin->adapter = q->lins[k].inner;
        eff_quant_4bit_free(ctx, &q->lins[k].q);
    }
    eff_ctx_free(ctx, q->lins);
    eff_lora_detach(ctx, &q->lora);
    memset(q, 0, sizeof *q);
}

EFFDEF double eff_qlora_bits_per_weight(const eff_qlora *q) {
    return q && q->base_params ? 8.0 * (double)q->base_bytes / (double)q->base_params : 0.0;
}

/* ---------------------------------------------------------------------------
   LOMO
   --------------------------------------------------------------------------- */
static eff_status eff__lomo_hook(eff_ctx *ctx, eff_model *m, int64_t layer, void *user) {
    eff_lomo *L = (eff_lomo *)user;
    int64_t first, last, i, j;
    float inv = 1.0f / L->loss_scale;
    eff_model_layer_params(m, layer, &first, &last);
    for (i = first; i < last; i++) {
        eff_model_param *p = &m->params[i];
        float *g = (float *)p->g->data;
        int64_t n = eff_tensor_nelements(p->w);
        if (!g || !p->w->data) continue;
        if (L->pass == 0) {
            double t = 0.0;
            for (j = 0; j < n; j++) t += (double)g[j] * (double)g[j];
            if (!(t == t && t <= DBL_MAX)) L->overflow = 1;
            L->sumsq += t;
        } else {
            eff_sgd_opts so;
            float gs = L->coef * inv;
            if (L->opts.clip_grad_value > 0.0f) {   /* clamp the unscaled gradient, then only the clip coefficient remains */
                float v = L->opts.clip_grad_value;
                for (j = 0; j < n; j++) { float u = g[j] * inv; g[j] = u > v ? v : u < -v ? -v : u; }
                gs = L->coef;
            }
            memset(&so, 0, sizeof so);
            so.lr = L->opts.lr; so.weight_decay = L->opts.weight_decay; so.step = L->step + 1; so.grad_scale = gs;
            EFF__TRY(eff_sgd_step(ctx, &so, n, p->w->data, p->w->dtype, p->master, g, EFF_F32, NULL));
        }
        memset(g, 0, (size_t)n * sizeof(float));   /* consumed: the next pass / step starts at zero */
    }
    return EFF_OK;
}

EFFDEF eff_status eff_lomo_init(eff_ctx *ctx, eff_lomo *l, eff_model *m, const eff_lomo_opts *opts) {
    EFF__CHECK_PTR(ctx, l);
    memset(l, 0, sizeof *l);
    EFF__CHECK_PTR(ctx, m);
    if (opts) l->opts = *opts;
    if (l->opts.lr == 0.0f) l->opts.lr = 1e-2f;
    if (l->opts.init_scale == 0.0f) l->opts.init_scale = 65536.0f;
    if (l->opts.growth_interval == 0) l->opts.growth_interval = 1000;
    EFF__CHECK(ctx, l->opts.lr > 0.0f && l->opts.weight_decay >= 0.0f && l->opts.clip_grad_norm >= 0.0f && l->opts.clip_grad_value >= 0.0f,
               EFF_ERR_INVALID_ARG, "eff_lomo_init: opts lr, weight_decay and clip values must be >= 0");
    EFF__CHECK(ctx, !m->on_grads, EFF_ERR_INVALID_ARG, "eff_lomo_init: the model already has an on_grads hook");
    if (!m->layerwise_grads) EFF__TRY(eff_model_alloc_grads_layerwise(ctx, m));
    l->m = m;
    l->loss_scale = l->opts.loss_scaling ? l->opts.init_scale : 1.0f;
    m->on_grads = eff__lomo_hook;
    m->on_grads_user = l;
    return EFF_OK;
}

EFFDEF eff_status eff_lomo_step(eff_ctx *ctx, eff_lomo *l, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T, float *loss) {
    eff_model *m;
    float ls = 0.0f;
    EFF__CHECK_PTR(ctx, l);
    EFF__CHECK(ctx, l->m != NULL, EFF_ERR_INVALID_ARG, "eff_lomo_step: 'l' is not initialized");
    EFF__CHECK_PTR(ctx, targets);
    m = l->m;
    m->loss_scale = l->loss_scale;
    EFF__TRY(eff_model_forward(ctx, m, tokens, targets, B, T, &ls));
    if (loss) *loss = ls;
    l->coef = 1.0f;
    l->last_skipped = 0;
    if (l->opts.clip_grad_norm > 0.0f || l->opts.loss_scaling) {   /* pass 1: the global norm only (paper: grad_norm) */
        l->pass = 0; l->sumsq = 0.0; l->overflow = 0;
        EFF__TRY(eff_model_backward(ctx, m));
        l->last_grad_norm = sqrt(l->sumsq) / l->loss_scale;
        if (l->overflow) {
            EFF__CHECK(ctx, l->opts.loss_scaling, EFF_ERR_NUMERIC, "eff_lomo_step: non-finite gradients (enable loss_scaling to skip)");
            l->loss_scale = l->loss_scale * 0.5f < 1.0f ? 1.0f : l->loss_scale * 0.5f;
            l->good_steps = 0; l->n_skipped++; l->last_skipped = 1;
            return EFF_OK;
        }
        if (l->opts.clip_grad_norm > 0.0f) {
            double c = (double)l->opts.clip_grad_norm / (l->last_grad_norm + 1e-6);
            l->coef = c < 1.0 ? (float)c : 1.0f;
        }
    }
    l->pass = 1;
    EFF__TRY(eff_model_backward(ctx, m));
    l->step++;
    if (l->opts.loss_scaling && ++l->good_steps >= l->opts.growth_interval) { l->loss_scale *= 2.0f; l->good_steps = 0; }
    return EFF_OK;
}

EFFDEF void eff_lomo_free(eff_ctx *ctx, eff_lomo *l) {
    (void)ctx;
    if (!l) return;
    if (l->m && l->m->on_grads == eff__lomo_hook) { l->m->on_grads = NULL; l->m->on_grads_user = NULL; l->m->loss_scale = 0.0f; }
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------------------
   Houlsby adapters, prefix and prompt tuning, BitFit
   --------------------------------------------------------------------------- */
static eff_status eff__houlsby_forward(eff_ctx *ctx, void *state, eff_tensor *y, const eff_tensor *x) {
    eff_houlsby *a = (eff_houlsby *)state;
    int64_t C = a->Wu->ne[0], mb = a->Wd->ne[0], M, i, j;
    float *act;
    eff_tensor H, Aa;
    eff_status s;
    (void)x;
    EFF__TRY(eff__rows_f32(ctx, y, "y", C, &M));
    if (a->rows_cap < M) {
        eff_ctx_free(ctx, a->y0); eff_ctx_free(ctx, a->h);
        a->y0 = (float *)eff_ctx_alloc(ctx, (size_t)(M * C) * sizeof(float));
        a->h = (float *)eff_ctx_alloc(ctx, (size_t)(M * mb) * sizeof(float));
        a->rows_cap = a->y0 && a->h ? M : 0;
        if (!a->rows_cap) return EFF_ERR_OOM;
    }
    memcpy(a->y0, y->data, (size_t)(M * C) * sizeof(float));
    for (i = 0; i < M; i++) memcpy(a->h + i * mb, a->bd->data, (size_t)mb * sizeof(float));
    EFF__TRY(eff_sgemm(ctx, 0, 1, M, mb, C, 1.0f, a->y0, C, (const float *)a->Wd->data, C, 1.0f, a->h, mb));
    act = (float *)eff_ctx_alloc(ctx, (size_t)(M * mb) * sizeof(float));
    if (!act) return EFF_ERR_OOM;
    H = eff_tensor_2d(a->h, EFF_F32, M, mb); Aa = eff_tensor_2d(act, EFF_F32, M, mb);
    s = eff_gelu_forward(ctx, &Aa, &H);
    if (s == EFF_OK) s = eff_sgemm(ctx, 0, 1, M, C, mb, 1.0f, act, mb, (const float *)a->Wu->data, mb, 1.0f, (float *)y->data, C);
    for (i = 0; s == EFF_OK && i < M; i++)
        for (j = 0; j < C; j++) ((float *)y->data)[i * C + j] += ((const float *)a->bu->data)[j];
    eff_ctx_free(ctx, act);
    return s;
}

static eff_status eff__houlsby_backward(eff_ctx *ctx, void *state, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    eff_houlsby *a = (eff_houlsby *)state;
    int64_t C = a->Wu->ne[0], mb = a->Wd->ne[0], M, i, j;
    float *act, *da, *dy0 = NULL, *tmp = NULL;
    eff_tensor H, Aa, DA;
    eff_status s = EFF_OK;
    EFF__TRY(eff__rows_f32(ctx, dy, "dy", C, &M));
    EFF__CHECK(ctx, a->rows_cap >= M, EFF_ERR_INVALID_ARG, "Houlsby backward: no forward for %lld rows", (long long)M);
    act = (float *)eff_ctx_alloc(ctx, (size_t)(M * mb) * sizeof(float));
    da = (float *)eff_ctx_alloc(ctx, (size_t)(M * mb) * sizeof(float));
    if (!act || !da) { eff_ctx_free(ctx, act); eff_ctx_free(ctx, da); return EFF_ERR_OOM; }
    H = eff_tensor_2d(a->h, EFF_F32, M, mb); Aa = eff_tensor_2d(act, EFF_F32, M, mb); DA = eff_tensor_2d(da, EFF_F32, M, mb);
    s = eff_gelu_forward(ctx, &Aa, &H);
    if (s == EFF_OK) s = eff_sgemm(ctx, 1, 0, C, mb, M, 1.0f, (const float *)dy->data, C, act, mb, 1.0f, (float *)a->dWu->data, mb);
    for (i = 0; s == EFF_OK && i < M; i++)
        for (j = 0; j < C; j++) ((float *)a->dbu->data)[j] += ((const float *)dy->data)[i * C + j];
    if (s == EFF_OK) s = eff_sgemm(ctx, 0, 0, M, mb, C, 1.0f, (const float *)dy->data, C, (const float *)a->Wu->data, mb, 0.0f, da, mb);
    if (s == EFF_OK) s = eff_gelu_backward(ctx, &DA, &DA, &H);
    if (s == EFF_OK) s = eff_sgemm(ctx, 1, 0, mb, C, M, 1.0f, da, mb, a->y0, C, 1.0f, (float *)a->dWd->data, C);
    for (i = 0; s == EFF_OK && i < M; i++)
        for (j = 0; j < mb; j++) ((float *)a->dbd->data)[j] += da[i * mb + j];
    if (s == EFF_OK && dx) {   /* the extra gradient of the sublayer output, dh Wd, through the frozen linear: dx += (dh Wd) W */
        int64_t K = eff_tensor_ncols(x);
        dy0 = (float *)eff_ctx_alloc(ctx, (size_t)(M * C) * sizeof(float));
        tmp = (float *)eff_ctx_alloc(ctx, (size_t)(M * K) * sizeof(float));
        if (!dy0 || !tmp) s = EFF_ERR_OOM;
        if (s == EFF_OK) s = eff_sgemm(ctx, 0, 0, M, C, mb, 1.0f, da, mb, (const float *)a->Wd->data, C, 0.0f, dy0, C);
        if (s == EFF_OK) {
            eff_tensor D0 = eff_tensor_2d(dy0, EFF_F32, M, C), Tm = eff_tensor_2d(tmp, EFF_F32, M, K);
            s = a->lin->adapter.replace ? EFF_ERR_UNSUPPORTED : eff_linear_backward(ctx, &Tm, NULL, NULL, &D0, x, &a->lin->W);
        }
        for (i = 0; s == EFF_OK && i < M * K; i++) ((float *)dx->data)[i] += tmp[i];
    }
    eff_ctx_free(ctx, dy0); eff_ctx_free(ctx, tmp); eff_ctx_free(ctx, act); eff_ctx_free(ctx, da);
    return s;
}

/* Adds a trainable tensor (and its gradient) of shape [n0] or [n0, n1] at float offset *off
   of base (NULL: sizing pass, only counts). */
static void eff__peft_tensor(eff_peft *p, float *base, int64_t *off, const char *name, int ndim, int64_t n0, int64_t n1) {
    int64_t n = ndim == 1 ? n0 : n0 * n1, k = p->n_tensors;
    if (base) {
        float *cur = base + *off;
        p->w[k] = ndim == 1 ? eff_tensor_1d(cur, EFF_F32, n0) : eff_tensor_2d(cur, EFF_F32, n0, n1);
        p->g[k] = ndim == 1 ? eff_tensor_1d(cur + n, EFF_F32, n0) : eff_tensor_2d(cur + n, EFF_F32, n0, n1);
        snprintf(p->names[k], 64, "%s", name);
    }
    *off += (2 * n + 15) / 16 * 16;
    p->n_tensors++;
}

/* Lays out the tensors of HOULSBY / PREFIX / PROMPT; returns the float count. */
static int64_t eff__peft_layout(eff_peft *p, float *base) {
    eff_model *m = p->m;
    const eff_model_config *c = &m->cfg;
    int64_t l, kvd = c->n_kv_heads * c->head_dim, off = 0;
    char nm[64];
    p->n_tensors = 0;
    for (l = 0; l < c->n_layers; l++) {
        int k;
        if (p->kind == EFF_PEFT_HOULSBY) {
            for (k = 0; k < 2; k++) {
                const char *where = k == 0 ? "attn" : "ffn";
                snprintf(nm, sizeof nm, "layers.%lld.%s_adapter.down.w", (long long)l, where); eff__peft_tensor(p, base, &off, nm, 2, p->size, c->dim);
                snprintf(nm, sizeof nm, "layers.%lld.%s_adapter.down.b", (long long)l, where); eff__peft_tensor(p, base, &off, nm, 1, p->size, 1);
                snprintf(nm, sizeof nm, "layers.%lld.%s_adapter.up.w", (long long)l, where); eff__peft_tensor(p, base, &off, nm, 2, c->dim, p->size);
                snprintf(nm, sizeof nm, "layers.%lld.%s_adapter.up.b", (long long)l, where); eff__peft_tensor(p, base, &off, nm, 1, c->dim, 1);
            }
        } else if (p->kind == EFF_PEFT_PREFIX) {
            snprintf(nm, sizeof nm, "layers.%lld.prefix_k", (long long)l); eff__peft_tensor(p, base, &off, nm, 2, p->size, kvd);
            snprintf(nm, sizeof nm, "layers.%lld.prefix_v", (long long)l); eff__peft_tensor(p, base, &off, nm, 2, p->size, kvd);
        }
    }
    if (p->kind == EFF_PEFT_PROMPT) eff__peft_tensor(p, base, &off, "prompt", 2, p->size, c->dim);
    return off;
}

EFFDEF eff_status eff_peft_attach(eff_ctx *ctx, eff_peft *p, eff_model *m, const eff_peft_opts *opts) {
    eff_peft_opts o;
    eff_rng rng;
    int64_t l, k, total = 0;
    EFF__CHECK_PTR(ctx, p);
    memset(p, 0, sizeof *p);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, opts);
    o = *opts;
    EFF__CHECK(ctx, o.kind >= EFF_PEFT_HOULSBY && o.kind <= EFF_PEFT_BITFIT, EFF_ERR_INVALID_ARG, "eff_peft_attach: opts->kind %d", o.kind);
    EFF__CHECK(ctx, m->params != NULL && m->cfg.n_experts == 0, EFF_ERR_UNSUPPORTED, "eff_peft_attach: needs a built dense model");
    EFF__CHECK(ctx, !m->grads.base, EFF_ERR_INVALID_ARG, "eff_peft_attach: the model has full gradients (the base must stay frozen)");
    if (o.size == 0) o.size = o.kind == EFF_PEFT_HOULSBY ? 64 : 10;
    if (o.init_std == 0.0f) o.init_std = 0.02f;
    if (o.seed == 0) o.seed = eff_rng_u64(eff_ctx_rng(ctx));
    EFF__CHECK(ctx, o.size > 0 && (o.kind != EFF_PEFT_PROMPT || o.size < m->cfg.max_seq), EFF_ERR_INVALID_ARG, "eff_peft_attach: opts->size %lld",
               (long long)o.size);
    p->kind = o.kind; p->m = m; p->size = o.size;
    eff_rng_seed(&rng, o.seed);
    if (o.kind == EFF_PEFT_BITFIT) {   /* the model's own bias tensors, with gradients of their own */
        int64_t n = 0, pass;
        for (pass = 0; pass < 2; pass++) {
            n = 0;
            for (k = 0; k < m->n_params; k++) {
                const char *nm = m->params[k].name;
                size_t L = strlen(nm);
                if (L < 2 || strcmp(nm + L - 2, ".b") != 0 || !m->params[k].w->data) continue;
                if (pass == 1) {
                    p->w[n] = *m->params[k].w;
                    p->g[n] = eff_tensor_1d((float *)p->store + total, EFF_F32, m->params[k].w->ne[0]);
                    snprintf(p->names[n], 64, "%s", nm);
                    *m->params[k].g = p->g[n];
                    m->params[k].g->data = p->g[n].data;
                    total += m->params[k].w->ne[0];
                }
                n++;
            }
            if (pass == 0) {
                EFF__CHECK(ctx, n > 0, EFF_ERR_NOT_FOUND, "eff_peft_attach: BitFit needs biases and this model (Llama) has none");
                for (k = 0, total = 0; k < m->n_params; k++) total += m->params[k].w->ndim == 1 ? m->params[k].w->ne[0] : 0;
                p->store = eff_ctx_calloc(ctx, (size_t)total * sizeof(float));
                p->w = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)n * sizeof(eff_tensor));
                p->g = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)n * sizeof(eff_tensor));
                p->names = (char (*)[64])eff_ctx_calloc(ctx, (size_t)n * 64);
                if (!p->store || !p->w || !p->g || !p->names) { eff_peft_detach(ctx, p); return EFF_ERR_OOM; }
                total = 0;
            }
        }
        p->n_tensors = n;
        for (k = 0; k < n; k++) {   /* the tensors in p->w are copies: point them back at the model's */
            int64_t i;
            for (i = 0; i < m->n_params; i++) if (strcmp(m->params[i].name, p->names[k]) == 0) p->w[k] = *m->params[i].w;
        }
        for (l = 0; l < m->cfg.n_layers; l++) {   /* linears: bias gradient only (dW stays NULL) */
            eff_model_layer *ly = &m->layers[l];
            ly->q.frozen = ly->k.frozen = ly->v.frozen = ly->o.frozen = ly->ffn.up.frozen = ly->ffn.down.frozen = 0;
        }
        m->frozen = 1;
        return EFF_OK;
    }
    total = eff__peft_layout(p, NULL);
    p->w = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)p->n_tensors * sizeof(eff_tensor));
    p->g = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)p->n_tensors * sizeof(eff_tensor));
    p->names = (char (*)[64])eff_ctx_calloc(ctx, (size_t)p->n_tensors * 64);
    p->store = eff_ctx_calloc(ctx, (size_t)total * sizeof(float));
    if (!p->w || !p->g || !p->names || !p->store) { eff_peft_detach(ctx, p); return EFF_ERR_OOM; }
    eff__peft_layout(p, (float *)p->store);
    if (p->kind == EFF_PEFT_HOULSBY) {
        p->ad = (eff_houlsby *)eff_ctx_calloc(ctx, (size_t)(2 * m->cfg.n_layers) * sizeof(eff_houlsby));
        if (!p->ad) { eff_peft_detach(ctx, p); return EFF_ERR_OOM; }
        for (l = 0; l < m->cfg.n_layers; l++)
            for (k = 0; k < 2; k++) {
                eff_houlsby *a = &p->ad[2 * l + k];
                eff_model_linear *lin = k == 0 ? &m->layers[l].o : &m->layers[l].ffn.down;
                int64_t t = 8 * l + 4 * k;
                if (lin->adapter.forward) { eff_peft_detach(ctx, p); return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_peft_attach: %s already has an adapter", lin->name); }
                a->lin = lin;
                a->Wd = &p->w[t]; a->bd = &p->w[t + 1]; a->Wu = &p->w[t + 2]; a->bu = &p->w[t + 3];
                a->dWd = &p->g[t]; a->dbd = &p->g[t + 1]; a->dWu = &p->g[t + 2]; a->dbu = &p->g[t + 3];
                eff_rng_fill_normal(&rng, (float *)a->Wd->data, eff_tensor_nelements(a->Wd), 0.0f, o.init_std);
                lin->adapter.state = a; lin->adapter.forward = eff__houlsby_forward; lin->adapter.backward = eff__houlsby_backward;
                lin->adapter.replace = 0;
                p->n_ad++;
            }
    } else if (p->kind == EFF_PEFT_PREFIX) {
        for (l = 0; l < m->cfg.n_layers; l++) {
            eff_model_layer *ly = &m->layers[l];
            eff_rng_fill_normal(&rng, (float *)p->w[2 * l].data, eff_tensor_nelements(&p->w[2 * l]), 0.0f, o.init_std);
            eff_rng_fill_normal(&rng, (float *)p->w[2 * l + 1].data, eff_tensor_nelements(&p->w[2 * l + 1]), 0.0f, o.init_std);
            ly->prefix_k = p->w[2 * l]; ly->prefix_v = p->w[2 * l + 1]; ly->d_prefix_k = p->g[2 * l]; ly->d_prefix_v = p->g[2 * l + 1];
        }
    } else {   /* PROMPT: rows of random vocabulary tokens (Lester et al.'s sampled-vocab init) */
        const eff_dtype_traits *tr = eff_ctx_dtype(ctx, m->tok_emb.dtype);
        for (k = 0; k < p->size; k++) {
            int64_t id = (int64_t)(eff_rng_u64(&rng) % (uint64_t)m->cfg.vocab_size);
            tr->to_float((const char *)m->tok_emb.data + id * m->tok_emb.nb[0], (float *)p->w[0].data + k * m->cfg.dim, m->cfg.dim);
        }
        m->prompt = p->w[0]; m->d_prompt = p->g[0];
    }
    m->frozen = 1;
    return EFF_OK;
}

EFFDEF void eff_peft_detach(eff_ctx *ctx, eff_peft *p) {
    int64_t l, k;
    eff_model *m;
    if (!p) return;
    m = p->m;
    if (m && p->w) {
        if (p->kind == EFF_PEFT_HOULSBY)
            for (k = 0; k < p->n_ad; k++) {
                if (p->ad[k].lin->adapter.state == (void *)&p->ad[k]) memset(&p->ad[k].lin->adapter, 0, sizeof(eff_linear_adapter));
                eff_ctx_free(ctx, p->ad[k].y0); eff_ctx_free(ctx, p->ad[k].h);
            }
        if (p->kind == EFF_PEFT_PREFIX)
            for (l = 0; l < m->cfg.n_layers; l++) {
                eff_model_layer *ly = &m->layers[l];
                memset(&ly->prefix_k, 0, sizeof(eff_tensor)); memset(&ly->prefix_v, 0, sizeof(eff_tensor));
                memset(&ly->d_prefix_k, 0, sizeof(eff_tensor)); memset(&ly->d_prefix_v, 0, sizeof(eff_tensor));
            }
        if (p->kind == EFF_PEFT_PROMPT) { memset(&m->prompt, 0, sizeof(eff_tensor)); memset(&m->d_prompt, 0, sizeof(eff_tensor)); }
        if (p->kind == EFF_PEFT_BITFIT)
            for (k = 0; k < p->n_tensors; k++) {
                int64_t i;
                for (i = 0; i < m->n_params; i++)
                    if (m->params[i].g->data == p->g[k].data) memset(m->params[i].g, 0, sizeof(eff_tensor));
            }
        m->frozen = 0;
    }
    eff_ctx_free(ctx, p->ad);
    eff_ctx_free(ctx, p->store);
    eff_ctx_free(ctx, p->w);
    eff_ctx_free(ctx, p->g);
    eff_ctx_free(ctx, (void *)p->names);
    eff_ctx_free(ctx, p->tok_buf);
    eff_ctx_free(ctx, p->tgt_buf);
    memset(p, 0, sizeof *p);
}

EFFDEF eff_status eff_peft_add_to_optim(eff_ctx *ctx, eff_peft *p, eff_optim *o, int64_t group) {
    int64_t k;
    EFF__CHECK_PTR(ctx, p);
    EFF__CHECK_PTR(ctx, o);
    EFF__CHECK(ctx, p->w != NULL, EFF_ERR_INVALID_ARG, "eff_peft_add_to_optim: 'p' is not attached");
    for (k = 0; k < p->n_tensors; k++) EFF__TRY(eff_optim_add_param(ctx, o, group, p->names[k], &p->w[k], &p->g[k], NULL));
    return EFF_OK;
}

EFFDEF int64_t eff_peft_n_trainable(const eff_peft *p) {
    int64_t k, n = 0;
    for (k = 0; p && k < p->n_tensors; k++) n += eff_tensor_nelements(&p->w[k]);
    return n;
}

EFFDEF void eff_peft_zero_grads(eff_peft *p) {
    int64_t k;
    for (k = 0; p && k < p->n_tensors; k++) memset(p->g[k].data, 0, (size_t)eff_tensor_nelements(&p->g[k]) * sizeof(float));
}

EFFDEF eff_status eff_peft_forward(eff_ctx *ctx, eff_peft *p, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T, float *loss) {
    int64_t P, b;
    EFF__CHECK_PTR(ctx, p);
    EFF__CHECK(ctx, p->m != NULL, EFF_ERR_INVALID_ARG, "eff_peft_forward: 'p' is not attached");
    EFF__CHECK_PTR(ctx, tokens);
    if (p->kind != EFF_PEFT_PROMPT) return eff_model_forward(ctx, p->m, tokens, targets, B, T, loss);
    P = p->size;
    EFF__CHECK(ctx, B > 0 && T > 0, EFF_ERR_SHAPE, "eff_peft_forward: B and T must be positive");
    if (p->buf_cap < B * (T + P)) {
        eff_ctx_free(ctx, p->tok_buf); eff_ctx_free(ctx, p->tgt_buf);
        p->tok_buf = (int32_t *)eff_ctx_alloc(ctx, (size_t)(B * (T + P)) * sizeof(int32_t));
        p->tgt_buf = (int32_t *)eff_ctx_alloc(ctx, (size_t)(B * (T + P)) * sizeof(int32_t));
        p->buf_cap = p->tok_buf && p->tgt_buf ? B * (T + P) : 0;
        if (!p->buf_cap) return EFF_ERR_OOM;
    }
    for (b = 0; b < B; b++) {
        int64_t t;
        for (t = 0; t < P; t++) { p->tok_buf[b * (T + P) + t] = 0; p->tgt_buf[b * (T + P) + t] = -100; }
        memcpy(p->tok_buf + b * (T + P) + P, tokens + b * T, (size_t)T * sizeof(int32_t));
        if (targets) memcpy(p->tgt_buf + b * (T + P) + P, targets + b * T, (size_t)T * sizeof(int32_t));
    }
    return eff_model_forward(ctx, p->m, p->tok_buf, targets ? p->tgt_buf : NULL, B, T + P, loss);
}

/* ---------------------------------------------------------------------------
   QAT
   --------------------------------------------------------------------------- */
/* The dense block linears of m (q, k, v, o, gate, up, down) into out (count returned). */
static int64_t eff__block_linears(eff_model *m, eff_model_linear **out) {
    int64_t l, k, n = 0;
    for (l = 0; l < m->cfg.n_layers; l++) {
        eff_model_layer *ly = &m->layers[l];
        eff_model_linear *ls[7];
        ls[0] = &ly->q; ls[1] = &ly->k; ls[2] = &ly->v; ls[3] = &ly->o; ls[4] = &ly->ffn.gate; ls[5] = &ly->ffn.up; ls[6] = &ly->ffn.down;
        for (k = 0; k < 7; k++) {
            if (!ls[k]->W.data) continue;
            if (out) out[n] = ls[k];
            n++;
        }
    }
    return n;
}

EFFDEF eff_status eff_qat_init(eff_ctx *ctx, eff_qat *q, eff_model *m, const eff_qat_opts *opts) {
    int64_t k, total = 0, rows = 0;
    EFF__CHECK_PTR(ctx, q);
    memset(q, 0, sizeof *q);
    EFF__CHECK_PTR(ctx, m);
    if (opts) q->opts = *opts;
    if (q->opts.bits == 0) q->opts.bits = 8;
    EFF__CHECK(ctx, q->opts.bits == 8 || q->opts.bits == 4, EFF_ERR_INVALID_ARG, "eff_qat_init: opts->bits %d (8 or 4)", q->opts.bits);
    EFF__CHECK(ctx, m->params != NULL && m->cfg.n_experts == 0, EFF_ERR_UNSUPPORTED, "eff_qat_init: needs a built dense model");
    q->m = m;
    q->n = eff__block_linears(m, NULL);
    q->lins = (eff_model_linear **)eff_ctx_alloc(ctx, (size_t)q->n * sizeof(eff_model_linear *));
    if (!q->lins) return EFF_ERR_OOM;
    eff__block_linears(m, q->lins);
    for (k = 0; k < q->n; k++) {
        EFF__CHECK(ctx, q->lins[k]->W.dtype == EFF_F32, EFF_ERR_DTYPE, "eff_qat_init: %s is not f32", q->lins[k]->name);
        total += eff_tensor_nelements(&q->lins[k]->W);
        rows += q->lins[k]->W.ne[0];
    }
    q->latent = (float *)eff_ctx_alloc(ctx, (size_t)total * sizeof(float));
    q->scale = (float *)eff_ctx_alloc(ctx, (size_t)rows * sizeof(float));
    q->zero = (int32_t *)eff_ctx_calloc(ctx, (size_t)rows * sizeof(int32_t));
    if (!q->latent || !q->scale || !q->zero) { eff_qat_free(ctx, q); return EFF_ERR_OOM; }
    return EFF_OK;
}

EFFDEF eff_status eff_qat_apply(eff_ctx *ctx, eff_qat *q) {
    int64_t k, off = 0, roff = 0;
    int qmax, qmin;
    EFF__CHECK_PTR(ctx, q);
    EFF__CHECK(ctx, q->m && !q->applied, EFF_ERR_INVALID_ARG, "eff_qat_apply: not initialized or already applied");
    qmax = (1 << (q->opts.bits - 1)) - 1; qmin = -qmax - 1;
    for (k = 0; k < q->n; k++) {
        eff_model_linear *l = q->lins[k];
        int64_t R = l->W.ne[0], C = l->W.ne[1], r;
        float *w = (float *)l->W.data, *lat = q->latent + off;
        memcpy(lat, w, (size_t)(R * C) * sizeof(float));
        if (q->opts.per_tensor) {
            EFF__TRY(eff_quant_int_qparams(ctx, lat, R * C, qmin, qmax, EFF_QSCHEME_SYMMETRIC, 0, &q->scale[roff], &q->zero[roff]));
            for (r = 1; r < R; r++) { q->scale[roff + r] = q->scale[roff]; q->zero[roff + r] = q->zero[roff]; }
        } else {
            for (r = 0; r < R; r++)
                EFF__TRY(eff_quant_int_qparams(ctx, lat + r * C, C, qmin, qmax, EFF_QSCHEME_SYMMETRIC, 0, &q->scale[roff + r], &q->zero[roff + r]));
        }
        EFF__TRY(eff_quant_fake_forward(ctx, w, lat, R * C, C, q->scale + roff, q->zero + roff, qmin, qmax));
        off += R * C; roff += R;
    }
    q->applied = 1;
    return EFF_OK;
}

EFFDEF eff_status eff_qat_restore(eff_ctx *ctx, eff_qat *q) {
    int64_t k, off = 0, roff = 0;
    int qmax, qmin;
    EFF__CHECK_PTR(ctx, q);
    EFF__CHECK(ctx, q->applied, EFF_ERR_INVALID_ARG, "eff_qat_restore: eff_qat_apply was not called");
    qmax = (1 << (q->opts.bits - 1)) - 1; qmin = -qmax - 1;
    for (k = 0; k < q->n; k++) {
        eff_model_linear *l = q->lins[k];
        int64_t R = l->W.ne[0], C = l->W.ne[1];
        if (l->dW.data && !l->frozen)   /* straight-through estimator: pass the gradient where the clamp was inactive */
            EFF__TRY(eff_quant_fake_backward(ctx, (float *)l->dW.data, (const float *)l->dW.data, q->latent + off, R * C, C, q->scale + roff,
                                             q->zero + roff, qmin, qmax));
        memcpy(l->W.data, q->latent + off, (size_t)(R * C) * sizeof(float));
        off += R * C; roff += R;
    }
    q->applied = 0;
    return EFF_OK;
}

EFFDEF void eff_qat_free(eff_ctx *ctx, eff_qat *q) {
    if (!q) return;
    if (q->applied) eff_qat_restore(ctx, q);
    eff_ctx_free(ctx, q->lins);
    eff_ctx_free(ctx, q->latent);
    eff_ctx_free(ctx, q->scale);
    eff_ctx_free(ctx, q->zero);
    memset(q, 0, sizeof *q);
}

/* ---------------------------------------------------------------------------
   Distillation
   --------------------------------------------------------------------------- */
/* KL gradient into the student's dlogits: alpha T (softmax(s/T) - softmax(t/T)) / N. */
static eff_status eff__distill_dlogits(eff_ctx *ctx, eff_model *m, eff_tensor *dlogits, void *user) {
    eff_distill *d = (eff_distill *)user;
    int64_t N = m->acts.B * m->acts.T, V = m->cfg.vocab_size, n, j;
    float T = d->opts.temperature, a = d->opts.alpha;
    (void)ctx;
    for (n = 0; n < N; n++) {
        const float *s = (const float *)m->acts.logits.data + n * V, *t = (const float *)d->teacher->acts.logits.data + n * V;
        float *g = (float *)dlogits->data + n * V;
        double ms = -INFINITY, mt = -INFINITY, zs = 0.0, zt = 0.0;
        for (j = 0; j < V; j++) { if (s[j] > ms) ms = s[j]; if (t[j] > mt) mt = t[j]; }
        for (j = 0; j < V; j++) { zs += exp((s[j] - ms) / T); zt += exp((t[j] - mt) / T); }
        for (j = 0; j < V; j++)
            g[j] += (float)((double)a * T * (exp((s[j] - ms) / T) / zs - exp((t[j] - mt) / T) / zt) / (double)N);
    }
    return EFF_OK;
}

/* Hidden-state MSE gradient: in on_grads(l) the residual gradient is d(output of layer l - 1). */
static eff_status eff__distill_grads(eff_ctx *ctx, eff_model *m, int64_t l, void *user) {
    eff_distill *d = (eff_distill *)user;
    int64_t j = l - 1, tl, i, n;
    const float *hs, *ht;
    float *g = (float *)m->acts.dres.data, c;
    (void)ctx;
    if (l < 1 || l > m->cfg.n_layers || d->opts.hidden_weight == 0.0f || d->map[j] < 0) return EFF_OK;
    tl = d->map[j];
    n = m->acts.B * m->acts.T * m->cfg.dim;
    hs = (const float *)(j + 1 < m->cfg.n_layers ? m->acts.layers[j + 1].res.data : m->acts.res_out.data);
    ht = (const float *)(tl + 1 < d->teacher->cfg.n_layers ? d->teacher->acts.layers[tl + 1].res.data : d->teacher->acts.res_out.data);
    c = 2.0f * d->opts.hidden_weight / (float)n;
    for (i = 0; i < n; i++) g[i] += c * (hs[i] - ht[i]);
    return EFF_OK;
}

EFFDEF eff_status eff_distill_init(eff_ctx *ctx, eff_distill *d, eff_model *student, eff_model *teacher, const eff_distill_opts *opts) {
    int64_t j;
    EFF__CHECK_PTR(ctx, d);
    memset(d, 0, sizeof *d);
    EFF__CHECK_PTR(ctx, student);
    EFF__CHECK_PTR(ctx, teacher);
    if (opts) d->opts = *opts;
    if (d->opts.alpha == 0.0f) d->opts.alpha = 1.0f;
    if (d->opts.temperature == 0.0f) d->opts.temperature = 2.0f;
    EFF__CHECK(ctx, d->opts.alpha > 0.0f && d->opts.temperature > 0.0f && d->opts.hidden_weight >= 0.0f, EFF_ERR_INVALID_ARG,
               "eff_distill_init: opts alpha, temperature must be > 0 and hidden_weight >= 0");
    EFF__CHECK(ctx, student->cfg.vocab_size == teacher->cfg.vocab_size, EFF_ERR_SHAPE, "eff_distill_init: vocabularies differ (%lld vs %lld)",
               (long long)student->cfg.vocab_size, (long long)teacher->cfg.vocab_size);
    EFF__CHECK(ctx, student->cfg.n_layers <= 64, EFF_ERR_UNSUPPORTED, "eff_distill_init: at most 64 student layers");
    EFF__CHECK(ctx, !student->on_dlogits && !student->on_grads, EFF_ERR_INVALID_ARG, "eff_distill_init: the student already has hooks");
    for (j = 0; j < student->cfg.n_layers; j++) {
        d->map[j] = d->opts.layer_map && d->opts.hidden_weight > 0.0f ? d->opts.layer_map[j] : -1;
        EFF__CHECK(ctx, d->map[j] < teacher->cfg.n_layers, EFF_ERR_INVALID_ARG, "eff_distill_init: layer_map[%lld] = %lld past the teacher",
                   (long long)j, (long long)d->map[j]);
        EFF__CHECK(ctx, d->map[j] < 0 || student->cfg.dim == teacher->cfg.dim, EFF_ERR_SHAPE, "eff_distill_init: hidden MSE needs equal dims");
    }
    d->student = student; d->teacher = teacher;
    student->on_dlogits = eff__distill_dlogits; student->on_dlogits_user = d;
    student->on_grads = eff__distill_grads; student->on_grads_user = d;
    return EFF_OK;
}

EFFDEF eff_status eff_distill_forward(eff_ctx *ctx, eff_distill *d, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                                      float *loss) {
    int64_t N, V, n, j, i;
    double kl = 0.0, hid = 0.0;
    float Tt;
    EFF__CHECK_PTR(ctx, d);
    EFF__CHECK(ctx, d->student != NULL, EFF_ERR_INVALID_ARG, "eff_distill_forward: 'd' is not initialized");
    EFF__CHECK_PTR(ctx, targets);
    EFF__TRY(eff_model_forward(ctx, d->teacher, tokens, NULL, B, T, NULL));
    EFF__TRY(eff_model_forward(ctx, d->student, tokens, targets, B, T, &d->ce));
    N = B * T; V = d->student->cfg.vocab_size; Tt = d->opts.temperature;
    for (n = 0; n < N; n++) {   /* KL(p_t || p_s) at temperature T, in double */
        const float *s = (const float *)d->student->acts.logits.data + n * V, *t = (const float *)d->teacher->acts.logits.data + n * V;
        double ms = -INFINITY, mt = -INFINITY, zs = 0.0, zt = 0.0, acc = 0.0;
        for (j = 0; j < V; j++) { if (s[j] > ms) ms = s[j]; if (t[j] > mt) mt = t[j]; }
        for (j = 0; j < V; j++) { zs += exp((s[j] - ms) / Tt); zt += exp((t[j] - mt) / Tt); }
        for (j = 0; j < V; j++) {
            double lt = (t[j] - mt) / Tt - log(zt), lsq = (s[j] - ms) / Tt - log(zs);
            acc += exp(lt) * (lt - lsq);
        }
        kl += acc;
    }
    d->kl = (float)(d->opts.alpha * Tt * Tt * kl / (double)N);
    for (j = 0; j < d->student->cfg.n_layers; j++) {
        const float *hs, *ht;
        int64_t tl = d->map[j], ne = N * d->student->cfg.dim;
        double acc = 0.0;
        if (tl < 0) continue;
        hs = (const float *)(j + 1 < d->student->cfg.n_layers ? d->student->acts.layers[j + 1].res.data : d->student->acts.res_out.data);
        ht = (const float *)(tl + 1 < d->teacher->cfg.n_layers ? d->teacher->acts.layers[tl + 1].res.data : d->teacher->acts.res_out.data);
        for (i = 0; i < ne; i++) acc += ((double)hs[i] - ht[i]) * ((double)hs[i] - ht[i]);
        hid += acc / (double)ne;
    }
    d->hidden = (float)(d->opts.hidden_weight * hid);
    d->loss = d->ce + d->kl + d->hidden;
    if (loss) *loss = d->loss;
    return EFF_OK;
}

EFFDEF void eff_distill_free(eff_ctx *ctx, eff_distill *d) {
    (void)ctx;
    if (!d) return;
    if (d->student && d->student->on_dlogits == eff__distill_dlogits) { d->student->on_dlogits = NULL; d->student->on_dlogits_user = NULL; }
    if (d->student && d->student->on_grads == eff__distill_grads) { d->student->on_grads = NULL; d->student->on_grads_user = NULL; }
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------------------
   Pruning
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_prune_init(eff_ctx *ctx, eff_prune *p, eff_model *m) {
    int64_t k, off = 0;
    EFF__CHECK_PTR(ctx, p);
    memset(p, 0, sizeof *p);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL && m->cfg.n_experts == 0, EFF_ERR_UNSUPPORTED, "eff_prune_init: needs a built dense model");
    p->m = m;
    p->n = eff__block_linears(m, NULL);
    p->lins = (eff_model_linear **)eff_ctx_alloc(ctx, (size_t)p->n * sizeof(eff_model_linear *));
    if (!p->lins) return EFF_ERR_OOM;
    eff__block_linears(m, p->lins);
    for (k = 0; k < p->n; k++) {
        EFF__CHECK(ctx, p->lins[k]->W.dtype == EFF_F32, EFF_ERR_DTYPE, "eff_prune_init: %s is not f32", p->lins[k]->name);
        p->total += eff_tensor_nelements(&p->lins[k]->W);
    }
    p->masks = (uint8_t *)eff_ctx_alloc(ctx, (size_t)p->total);
    p->rewind = (float *)eff_ctx_alloc(ctx, (size_t)p->total * sizeof(float));
    if (!p->masks || !p->rewind) { eff_prune_free(ctx, p); return EFF_ERR_OOM; }
    memset(p->masks, 1, (size_t)p->total);
    for (k = 0; k < p->n; k++) {
        p->lins[k]->mask = p->masks + off;
        off += eff_tensor_nelements(&p->lins[k]->W);
    }
    return eff_prune_save_rewind(ctx, p);
}

EFFDEF eff_status eff_prune_save_rewind(eff_ctx *ctx, eff_prune *p) {
    int64_t k, off = 0;
    EFF__CHECK_PTR(ctx, p);
    EFF__CHECK(ctx, p->rewind != NULL, EFF_ERR_INVALID_ARG, "eff_prune_save_rewind: 'p' is not initialized");
    for (k = 0; k < p->n; k++) {
        int64_t n = eff_tensor_nelements(&p->lins[k]->W);
        memcpy(p->rewind + off, p->lins[k]->W.data, (size_t)n * sizeof(float));
        off += n;
    }
    return EFF_OK;
}

static int eff__cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

EFFDEF eff_status eff_prune_magnitude(eff_ctx *ctx, eff_prune *p, float fraction) {
    int64_t k, i;
    float *tmp;
    EFF__CHECK_PTR(ctx, p);
    EFF__CHECK(ctx, p->masks != NULL, EFF_ERR_INVALID_ARG, "eff_prune_magnitude: 'p' is not initialized");
    EFF__CHECK(ctx, fraction >= 0.0f && fraction <= 1.0f, EFF_ERR_INVALID_ARG, "eff_prune_magnitude: 'fraction' %g not in [0, 1]", (double)fraction);
    for (k = 0; k < p->n; k++) {
        eff_model_linear *l = p->lins[k];
        int64_t n = eff_tensor_nelements(&l->W), kept = 0, cut;
        const float *w = (const float *)l->W.data;
        uint8_t *mk = (uint8_t *)l->mask;
        float thr;
        tmp = (float *)eff_ctx_alloc(ctx, (size_t)n * sizeof(float));
        if (!tmp) return EFF_ERR_OOM;
        for (i = 0; i < n; i++) if (mk[i]) tmp[kept++] = fabsf(w[i]);
        cut = (int64_t)floor((double)fraction * (double)kept + 0.5);
        if (cut > 0) {
            int64_t removed = 0;
            qsort(tmp, (size_t)kept, sizeof(float), eff__cmp_float);
            thr = tmp[cut - 1];
            for (i = 0; i < n && removed < cut; i++)   /* below the threshold first, then ties in index order */
                if (mk[i] && fabsf(w[i]) < thr) { mk[i] = 0; removed++; }
            for (i = 0; i < n && removed < cut; i++)
                if (mk[i] && fabsf(w[i]) == thr) { mk[i] = 0; removed++; }
        }
        eff_ctx_free(ctx, tmp);
    }
    return eff_prune_apply(ctx, p);
}

EFFDEF eff_status eff_prune_apply(eff_ctx *ctx, eff_prune *p) {
    int64_t k, i;
    EFF__CHECK_PTR(ctx, p);
    EFF__CHECK(ctx, p->masks != NULL, EFF_ERR_INVALID_ARG, "eff_prune_apply: 'p' is not initialized");
    for (k = 0; k < p->n; k++) {
        float *w = (float *)p->lins[k]->W.data;
        const uint8_t *mk = p->lins[k]->mask;
        int64_t n = eff_tensor_nelements(&p->lins[k]->W);
        for (i = 0; i < n; i++) if (!mk[i]) w[i] = 0.0f;
    }
    return EFF_OK;
}

EFFDEF eff_status eff_prune_rewind(eff_ctx *ctx, eff_prune *p) {
    int64_t k, off = 0;
    EFF__CHECK_PTR(ctx, p);
    EFF__CHECK(ctx, p->rewind != NULL, EFF_ERR_INVALID_ARG, "eff_prune_rewind: 'p' is not initialized");
    for (k = 0; k < p->n; k++) {
        int64_t n = eff_tensor_nelements(&p->lins[k]->W);
        memcpy(p->lins[k]->W.data, p->rewind + off, (size_t)n * sizeof(float));
        off += n;
    }
    return eff_prune_apply(ctx, p);
}

EFFDEF double eff_prune_sparsity(const eff_prune *p) {
    int64_t i, z = 0;
    if (!p || !p->total) return 0.0;
    for (i = 0; i < p->total; i++) z += !p->masks[i];
    return (double)z / (double)p->total;
}

EFFDEF void eff_prune_free(eff_ctx *ctx, eff_prune *p) {
    int64_t k;
    if (!p) return;
    for (k = 0; p->lins && k < p->n; k++) if (p->masks && p->lins[k]->mask >= p->masks && p->lins[k]->mask < p->masks + p->total) p->lins[k]->mask = NULL;
    eff_ctx_free(ctx, p->lins);
    eff_ctx_free(ctx, p->masks);
    eff_ctx_free(ctx, p->rewind);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------------------
   Data
   --------------------------------------------------------------------------- */
static void eff__data_shuffle(eff_data *d) {
    int64_t i;
    d->perm_rng = d->rng;
    for (i = 0; i < d->n_chunks; i++) d->perm[i] = i;
    for (i = d->n_chunks - 1; i > 0; i--) {   /* Fisher-Yates */
        int64_t j = (int64_t)(eff_rng_u64(&d->rng) % (uint64_t)(i + 1)), t = d->perm[i];
        d->perm[i] = d->perm[j]; d->perm[j] = t;
    }
    d->pos = 0;
}

EFFDEF eff_status eff_data_from_tokens(eff_ctx *ctx, eff_data *d, const int32_t *ids, int64_t n, const eff_data_opts *opts) {
    eff_data_opts o;
    EFF__CHECK_PTR(ctx, d);
    memset(d, 0, sizeof *d);
    EFF__CHECK_PTR(ctx, ids);
    EFF__CHECK_PTR(ctx, opts);
    o = *opts;
    if (o.val_fraction == 0.0f) o.val_fraction = 0.1f;
    EFF__CHECK(ctx, o.B > 0 && o.T > 0 && o.val_fraction > 0.0f && o.val_fraction < 1.0f, EFF_ERR_INVALID_ARG,
               "eff_data: opts B %lld and T %lld must be positive, val_fraction in (0, 1)", (long long)o.B, (long long)o.T);
    d->B = o.B; d->T = o.T; d->n_tokens = n;
    d->n_train = n - (int64_t)((double)n * o.val_fraction);
    d->n_chunks = (d->n_train - 1) / o.T;
    d->n_val_chunks = (n - d->n_train - 1) / o.T;
    EFF__CHECK(ctx, d->n_chunks >= o.B, EFF_ERR_SHAPE, "eff_data: %lld tokens give %lld training windows of %lld, fewer than B = %lld",
               (long long)n, (long long)d->n_chunks, (long long)o.T, (long long)o.B);
    d->tokens = (int32_t *)eff_ctx_alloc(ctx, (size_t)n * sizeof(int32_t));
    d->perm = (int64_t *)eff_ctx_alloc(ctx, (size_t)d->n_chunks * sizeof(int64_t));
    if (!d->tokens || !d->perm) { eff_data_free(ctx, d); return EFF_ERR_OOM; }
    memcpy(d->tokens, ids, (size_t)n * sizeof(int32_t));
    eff_rng_seed(&d->rng, o.seed);
    eff__data_shuffle(d);
    return EFF_OK;
}

EFFDEF eff_status eff_data_from_text(eff_ctx *ctx, eff_data *d, const eff_tokenizer *tok, const char *text, int64_t len, const eff_data_opts *opts) {
    int32_t *ids;
    int64_t n = 0;
    eff_status s;
    EFF__CHECK_PTR(ctx, d);
    memset(d, 0, sizeof *d);
    EFF__CHECK_PTR(ctx, tok);
    EFF__CHECK_PTR(ctx, text);
    ids = (int32_t *)eff_ctx_alloc(ctx, (size_t)(len + 1) * sizeof(int32_t));   /* byte-level BPE never needs more than one id per byte */
    if (!ids) return EFF_ERR_OOM;
    s = eff_tokenizer_encode(ctx, tok, text, len, 0, 0, ids, len + 1, &n);
    if (s == EFF_OK) s = eff_data_from_tokens(ctx, d, ids, n, opts);
    eff_ctx_free(ctx, ids);
    return s;
}

EFFDEF eff_status eff_data_load_file(eff_ctx *ctx, eff_data *d, const eff_tokenizer *tok, const char *path, const eff_data_opts *opts) {
    eff_file_map fm;
    eff_status s;
    EFF__CHECK_PTR(ctx, path);
    EFF__TRY(eff_file_map_open(ctx, path, &fm));
    s = eff_data_from_text(ctx, d, tok, (const char *)fm.data, fm.size, opts);
    eff_file_map_close(ctx, &fm);
    return s;
}

EFFDEF eff_status eff_data_next(eff_ctx *ctx, eff_data *d, int32_t *x, int32_t *y) {
    int64_t b;
    EFF__CHECK_PTR(ctx, d);
    EFF__CHECK_PTR(ctx, x);
    EFF__CHECK_PTR(ctx, y);
    EFF__CHECK(ctx, d->tokens != NULL, EFF_ERR_INVALID_ARG, "eff_data_next: 'd' is empty");
    for (b = 0; b < d->B; b++) {
        const int32_t *src;
        if (d->pos == d->n_chunks) { d->epoch++; eff__data_shuffle(d); }
        src = d->tokens + d->perm[d->pos++] * d->T;
        memcpy(x + b * d->T, src, (size_t)d->T * sizeof(int32_t));
        memcpy(y + b * d->T, src + 1, (size_t)d->T * sizeof(int32_t));
    }
    return EFF_OK;
}

EFFDEF int64_t eff_data_n_val_batches(const eff_data *d) { return d && d->B ? d->n_val_chunks / d->B : 0; }

EFFDEF eff_status eff_data_val_batch(eff_ctx *ctx, const eff_data *d, int64_t i, int32_t *x, int32_t *y) {
    int64_t b;
    EFF__CHECK_PTR(ctx, d);
    EFF__CHECK_PTR(ctx, x);
    EFF__CHECK_PTR(ctx, y);
    EFF__CHECK(ctx, i >= 0 && i < eff_data_n_val_batches(d), EFF_ERR_INVALID_ARG, "eff_data_val_batch: batch %lld of %lld", (long long)i,
               (long long)eff_data_n_val_batches(d));
    for (b = 0; b < d->B; b++) {
        const int32_t *src = d->tokens + d->n_train + (i * d->B + b) * d->T;
        memcpy(x + b * d->T, src, (size_t)d->T * sizeof(int32_t));
        memcpy(y + b * d->T, src + 1, (size_t)d->T * sizeof(int32_t));
    }
    return EFF_OK;
}

EFFDEF void eff_data_free(eff_ctx *ctx, eff_data *d) {
    if (!d) return;
    eff_ctx_free(ctx, d->tokens);
    eff_ctx_free(ctx, d->perm);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------------------
   Checkpoints
   --------------------------------------------------------------------------- */
static void eff__ckpt_config(const eff_model *m, char *buf, size_t size) {
    const eff_model_config *c = &m->cfg;
    snprintf(buf, size, "arch=%d V=%lld P=%lld C=%lld L=%lld H=%lld KV=%lld hd=%lld F=%lld E=%lld tie=%d", c->arch, (long long)c->vocab_size,
             (long long)c->max_seq, (long long)c->dim, (long long)c->n_layers, (long long)c->n_heads, (long long)c->n_kv_heads,
             (long long)c->head_dim, (long long)c->hidden_dim, (long long)c->n_experts, c->tie_embeddings);
}

static int eff__is_model_tensor(const eff_model *m, const eff_tensor *t) {
    int64_t i;
    for (i = 0; i < m->n_params; i++) if (m->params[i].w->data == t->data) return 1;
    return 0;
}

/* The checkpoint's tensors (names in names[], views in ts[]); count returned (ts NULL: count only). */
static int64_t eff__ckpt_tensors(const eff_model *m, const eff_optim *o, eff_tensor *ts, char (*names)[128]) {
    int64_t i, n = 0;
    for (i = 0; i < m->n_params; i++) {
        const eff_tensor *w = m->params[i].w;
        if (!w->data) continue;   /* QLoRA: quantized weights are rebuilt from the base model */
        if (ts) { ts[n] = *w; snprintf(names[n], 128, "model.%s", m->params[i].name); ts[n].name = names[n]; }
        n++;
    }
    for (i = 0; o && i < o->n_params; i++) {
        const eff_optim_param *p = &o->params[i];
        int k;
        for (k = 0; k < 4; k++) {
            const void *data = k == 0 ? (eff__is_model_tensor(m, p->param) ? NULL : p->param->data) : k == 1 ? (const void *)p->m
                             : k == 2 ? (const void *)p->v : (const void *)p->master;
            if (!data) continue;
            if (ts) {
                ts[n] = k == 0 ? *p->param : eff_tensor_1d((void *)data, EFF_F32, p->n);
                snprintf(names[n], 128, "optim.%s.%s", p->name, k == 0 ? "param" : k == 1 ? "m" : k == 2 ? "v" : "master");
                ts[n].name = names[n];
            }
            n++;
        }
    }
    return n;
}

static void eff__rng_hex(const eff_rng *r, char *buf, size_t size) {
    snprintf(buf, size, "%016llx%016llx%016llx%016llx", (unsigned long long)r->s[0], (unsigned long long)r->s[1], (unsigned long long)r->s[2],
             (unsigned long long)r->s[3]);
}
static int eff__rng_parse(const char *s, eff_rng *r) {
    int i, j;
    if (!s || strlen(s) != 64) return 0;
    for (i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (j = 0; j < 16; j++) {
            char c = s[i * 16 + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return 0;
            v = v << 4 | (uint64_t)d;
        }
        r->s[i] = v;
    }
    return 1;
}

EFFDEF eff_status eff_train_save(eff_ctx *ctx, const char *path, const eff_model *m, const eff_optim *o, const eff_data *d) {
    int64_t n;
    eff_tensor *ts;
    char (*names)[128];
    char cfg[256], step[32], scale[32], good[32], skipped[32], kind[16], np[32], rng[80], dpos[32], depoch[32], drng[80], dtok[32];
    const char *meta[30];
    int nm = 0;
    eff_status s;
    EFF__CHECK_PTR(ctx, path);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_train_save: model is not built");
    n = eff__ckpt_tensors(m, o, NULL, NULL);
    ts = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)n * sizeof(eff_tensor));
    names = (char (*)[128])eff_ctx_calloc(ctx, (size_t)n * 128);
    if (!ts || !names) { eff_ctx_free(ctx, ts); eff_ctx_free(ctx, (void *)names); return EFF_ERR_OOM; }
    eff__ckpt_tensors(m, o, ts, names);
    eff__ckpt_config(m, cfg, sizeof cfg);
    eff__rng_hex(eff_ctx_rng(ctx), rng, sizeof rng);
    meta[nm++] = "format"; meta[nm++] = "eff-train-checkpoint";
    meta[nm++] = "version"; meta[nm++] = "1";
    meta[nm++] = "config"; meta[nm++] = cfg;
    meta[nm++] = "rng"; meta[nm++] = rng;
    if (o) {
        snprintf(step, sizeof step, "%lld", (long long)o->step);
        snprintf(scale, sizeof scale, "%.9g", (double)o->loss_scale);
        snprintf(good, sizeof good, "%lld", (long long)o->good_steps);
        snprintf(skipped, sizeof skipped, "%lld", (long long)o->n_skipped);
        snprintf(kind, sizeof kind, "%d", o->opts.kind);
        snprintf(np, sizeof np, "%lld", (long long)o->n_params);
        meta[nm++] = "step"; meta[nm++] = step;
        meta[nm++] = "loss_scale"; meta[nm++] = scale;
        meta[nm++] = "good_steps"; meta[nm++] = good;
        meta[nm++] = "n_skipped"; meta[nm++] = skipped;
        meta[nm++] = "optim_kind"; meta[nm++] = kind;
        meta[nm++] = "optim_params"; meta[nm++] = np;
    }
    if (d && d->tokens) {
        snprintf(dpos, sizeof dpos, "%lld", (long long)d->pos);
        snprintf(depoch, sizeof depoch, "%lld", (long long)d->epoch);
        snprintf(dtok, sizeof dtok, "%lld", (long long)d->n_tokens);
        eff__rng_hex(&d->perm_rng, drng, sizeof drng);
        meta[nm++] = "data_pos"; meta[nm++] = dpos;
        meta[nm++] = "data_epoch"; meta[nm++] = depoch;
        meta[nm++] = "data_tokens"; meta[nm++] = dtok;
        meta[nm++] = "data_rng"; meta[nm++] = drng;
    }
    s = eff_safetensors_write(ctx, path, ts, n, meta, nm / 2);
    eff_ctx_free(ctx, ts);
    eff_ctx_free(ctx, (void *)names);
    return s;
}

EFFDEF eff_status eff_train_load(eff_ctx *ctx, const char *path, eff_model *m, eff_optim *o, eff_data *d) {
    eff_safetensors st;
    int64_t n, i;
    eff_tensor *ts = NULL;
    const eff_safetensors_entry **src = NULL;
    char (*names)[128] = NULL;
    char cfg[256];
    const char *v;
    eff_rng rng, drng;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, path);
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_train_load: model is not built");
    EFF__TRY(eff_safetensors_open(ctx, &st, path));
    v = eff_safetensors_meta(&st, "format");
    if (!v || strcmp(v, "eff-train-checkpoint") != 0 || !eff_safetensors_meta(&st, "version") || strcmp(eff_safetensors_meta(&st, "version"), "1") != 0)
        s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: not an eff training checkpoint (format %s)", path, v ? v : "missing");
    eff__ckpt_config(m, cfg, sizeof cfg);
    if (s == EFF_OK && (!(v = eff_safetensors_meta(&st, "config")) || strcmp(v, cfg) != 0))
        s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: checkpoint of another model (%s; this model is %s)", path, v ? v : "?", cfg);
    if (s == EFF_OK && !eff__rng_parse(eff_safetensors_meta(&st, "rng"), &rng))
        s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: bad or missing \"rng\" metadata", path);
    if (s == EFF_OK && o) {
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)o->n_params);
        if (!(v = eff_safetensors_meta(&st, "optim_params")) || strcmp(v, want) != 0 || !eff_safetensors_meta(&st, "optim_kind") ||
            atoi(eff_safetensors_meta(&st, "optim_kind")) != o->opts.kind || !eff_safetensors_meta(&st, "step") || !eff_safetensors_meta(&st, "loss_scale"))
            s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: the optimizer state does not match this optimizer (%s params, kind %s)", path, v ? v : "no",
                              eff_safetensors_meta(&st, "optim_kind") ? eff_safetensors_meta(&st, "optim_kind") : "?");
    }
    if (s == EFF_OK && d && d->tokens) {
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)d->n_tokens);
        if (!(v = eff_safetensors_meta(&st, "data_tokens")) || strcmp(v, want) != 0 || !eff__rng_parse(eff_safetensors_meta(&st, "data_rng"), &drng) ||
            !eff_safetensors_meta(&st, "data_pos") || !eff_safetensors_meta(&st, "data_epoch"))
            s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: the data state is missing or for another dataset (%s tokens, this one has %s)", path, v ? v : "?", want);
        else if (atoll(eff_safetensors_meta(&st, "data_pos")) < 0 || atoll(eff_safetensors_meta(&st, "data_pos")) > d->n_chunks)
            s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: data_pos out of range", path);
    }
    n = eff__ckpt_tensors(m, o, NULL, NULL);
    if (s == EFF_OK) {
        ts = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)n * sizeof(eff_tensor));
        names = (char (*)[128])eff_ctx_calloc(ctx, (size_t)n * 128);
        src = (const eff_safetensors_entry **)eff_ctx_calloc(ctx, (size_t)n * sizeof(*src));
        if (!ts || !names || !src) s = EFF_ERR_OOM;
    }
    if (s == EFF_OK) eff__ckpt_tensors(m, o, ts, names);
    for (i = 0; s == EFF_OK && i < n; i++) {   /* validate everything first */
        src[i] = eff_safetensors_find(&st, names[i]);
        if (!src[i]) s = eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "%s: missing tensor '%s'", path, names[i]);
        else if (src[i]->tensor.dtype != ts[i].dtype || eff_tensor_nelements(&src[i]->tensor) != eff_tensor_nelements(&ts[i]))
            s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: '%s' is %s[%lld] but the model needs %s[%lld]", path, names[i], eff_dtype_name(src[i]->tensor.dtype),
                              (long long)eff_tensor_nelements(&src[i]->tensor), eff_dtype_name(ts[i].dtype), (long long)eff_tensor_nelements(&ts[i]));
    }
    if (s == EFF_OK && st.n_entries != n)
        s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: %lld tensors, expected %lld for this model and optimizer", path, (long long)st.n_entries, (long long)n);
    for (i = 0; s == EFF_OK && i < n; i++) memcpy(ts[i].data, src[i]->tensor.data, (size_t)src[i]->nbytes);
    if (s == EFF_OK) {
        *eff_ctx_rng(ctx) = rng;
        if (o) {
            o->step = atoll(eff_safetensors_meta(&st, "step"));
            o->loss_scale = (float)atof(eff_safetensors_meta(&st, "loss_scale"));
            o->good_steps = eff_safetensors_meta(&st, "good_steps") ? atoll(eff_safetensors_meta(&st, "good_steps")) : 0;
            o->n_skipped = eff_safetensors_meta(&st, "n_skipped") ? atoll(eff_safetensors_meta(&st, "n_skipped")) : 0;
            eff_optim_zero_grad(o);
            for (i = 0; i < o->n_params; i++)   /* bf16/f16 params follow their masters */
                if (o->params[i].master && o->params[i].param->dtype == EFF_BF16)
                    eff_fp32_to_bf16_row(o->params[i].master, (uint16_t *)o->params[i].param->data, o->params[i].n);
                else if (o->params[i].master && o->params[i].param->dtype == EFF_F16)
                    eff_fp32_to_fp16_row(o->params[i].master, (uint16_t *)o->params[i].param->data, o->params[i].n);
        }
        if (d && d->tokens) {
            d->rng = drng;
            eff__data_shuffle(d);
            d->pos = atoll(eff_safetensors_meta(&st, "data_pos"));
            d->epoch = atoll(eff_safetensors_meta(&st, "data_epoch"));
        }
    }
    eff_ctx_free(ctx, ts);
    eff_ctx_free(ctx, (void *)names);
    eff_ctx_free(ctx, (void *)src);
    eff_safetensors_close(ctx, &st);
    return s;
}


#ifdef __cplusplus
}
#endif
#endif /* EFF_TRAIN_IMPLEMENTATION */
