/* eff_model.h - v0.1 - the reference decoder transformer of eff: GPT-2 and Llama
   families (and a Mixture-of-Experts FFN), forward, backward, KV-cached steps,
   HF safetensors loading and saving.   Public domain / MIT.

   WHAT
     - eff_model_config    one struct for both families: GPT-2 (LayerNorm, GELU, learned
                           positions, biases, tied embeddings) and Llama (RMSNorm, RoPE, SwiGLU,
                           GQA, no biases, tied or untied head); presets for common shapes
     - eff_model           weights in one arena laid out from a size table; every linear is an
                           eff_model_linear that knows its dtype (quantized weights need no
                           special code), with an adapter slot (LoRA, filled by eff_train.h) and
                           an optional pruning mask
     - eff_model_forward   logits and mean cross-entropy for a batch [B, T]; attention through
                           eff_attn.h (flash by default, reference on request, any block mask)
     - eff_model_backward  gradients of every parameter (+=, so accumulation works)
     - eff_model_load_hf / eff_model_save_hf   GPT2LMHeadModel / LlamaForCausalLM safetensors
                           with their config.json, real key names
     - eff_model_count     parameters and FLOPs per component

   USAGE
         #define EFF_IMPLEMENTATION
         #include "eff_model.h"
         eff_ctx *ctx; eff_model m; eff_model_config c; float loss;
         eff_ctx_create(NULL, &ctx);
         eff_model_config_preset(&c, "tiny-llama");
         eff_model_init(ctx, &m, &c);                      // random weights, GPT-2 style init
         eff_model_alloc_grads(ctx, &m);
         eff_model_forward(ctx, &m, tokens, targets, B, T, &loss);   // logits in m.acts.logits
         eff_model_backward(ctx, &m);                      // grads in each param's g
         eff_model_free(ctx, &m);

   CONVENTIONS
     - Activations f32, shapes outermost first: the residual stream is [B, T, C].
     - Parameter names are eff's own ("layers.3.attn.q.w"); eff_model_hf_name maps them
       to the HF checkpoint names. GPT-2's fused c_attn is split into q, k, v on load
       and fused again on save; its Conv1D weights are transposed to [out, in].
     - Weights are f32 after init/load; eff_model_quantize converts every linear to any
       dtype registered in the context (eff_quant.h formats included).
     - Every function returns eff_status; messages name the failing argument or key.

   VERSIONS
     0.1  GPT-2 / Llama dense forward + backward, HF safetensors load/save.
*/
#ifndef EFF_MODEL_H
#define EFF_MODEL_H

#include "eff_attn.h"
#include "eff_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { EFF_MODEL_GPT2 = 0, EFF_MODEL_LLAMA = 1 };
enum { EFF_ROUTER_TOPK = 0, EFF_ROUTER_HASH = 1 };
enum { EFF_ATTN_IMPL_FLASH = 0, EFF_ATTN_IMPL_REF = 1 };

typedef struct eff_model_config {
    int arch;                  /* EFF_MODEL_GPT2 or EFF_MODEL_LLAMA */
    int64_t vocab_size;
    int64_t max_seq;           /* positions (GPT-2's n_positions; Llama's max_position_embeddings) */
    int64_t dim;               /* d_model */
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;        /* 0: n_heads (GQA when smaller) */
    int64_t head_dim;          /* 0: dim / n_heads */
    int64_t hidden_dim;        /* FFN width; 0: 4 * dim (GPT-2) */
    float norm_eps;            /* 0: 1e-5 */
    float rope_theta;          /* Llama; 0: 10000 */
    int rope_mode;             /* EFF_ROPE_NEOX (HF Llama) or EFF_ROPE_GPTJ (Meta / llama2.c) */
    int tie_embeddings;        /* head shares the token embedding */
    /* Mixture of experts (n_experts > 0 replaces every FFN) */
    int64_t n_experts;
    int64_t top_k;             /* experts per token (1 = Switch) */
    float capacity_factor;     /* 0: no capacity limit */
    float aux_loss_coef;       /* Switch load-balancing loss weight */
    int router;                /* EFF_ROUTER_TOPK or EFF_ROUTER_HASH */
} eff_model_config;

/* Named presets: "gpt2" (small), "gpt2-medium", "gpt2-large", "gpt2-xl", "stories15M",
   "stories42M", "stories110M", "tiny-gpt2", "tiny-llama", "llama-10M". */
EFFDEF eff_status eff_model_config_preset(eff_model_config *c, const char *name);
/* Fills defaults (zeros) and checks the shapes agree; the message names the field. */
EFFDEF eff_status eff_model_config_check(eff_ctx *ctx, eff_model_config *c);

/* An adapter adds a trainable correction to a linear (eff_train.h's LoRA/DoRA fill it). */
typedef struct eff_linear_adapter {
    void *state;
    /* y += delta(x) */
    eff_status (*forward)(eff_ctx *ctx, void *state, eff_tensor *y, const eff_tensor *x);
    /* dx += d delta / dx . dy (dx may be NULL), adapter gradients += */
    eff_status (*backward)(eff_ctx *ctx, void *state, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x);
    /* 1: the adapter computes the whole layer: forward writes y (=) and backward writes dx (=)
       instead of adding; W is not read (QLoRA keeps the base weights in NF4 itself). */
    int replace;
} eff_linear_adapter;

typedef struct eff_model_linear {
    eff_tensor W;              /* [out, in], any registered dtype */
    eff_tensor b;              /* [out] f32; data NULL when the layer has no bias */
    eff_tensor dW, db;         /* f32 gradients; data NULL when not allocated or frozen */
    const uint8_t *mask;       /* optional pruning mask [out * in] (1 keeps); applied by eff_train.h */
    eff_linear_adapter adapter;
    int frozen;                /* no gradient for W and b (inputs still get gradients) */
    char name[48];
} eff_model_linear;

EFFDEF eff_status eff_model_linear_forward(eff_ctx *ctx, eff_model_linear *l, eff_tensor *y, const eff_tensor *x);
/* dx (=, may be NULL), dW/db (+=, unless frozen), adapter backward. */
EFFDEF eff_status eff_model_linear_backward(eff_ctx *ctx, eff_model_linear *l, eff_tensor *dx, const eff_tensor *dy,
                                            const eff_tensor *x);

typedef struct eff_model_ffn {
    eff_model_linear gate;     /* Llama only (SwiGLU) */
    eff_model_linear up;       /* GPT-2 c_fc / Llama up_proj */
    eff_model_linear down;     /* GPT-2 c_proj / Llama down_proj */
} eff_model_ffn;

typedef struct eff_model_layer {
    eff_tensor ln1_w, ln1_b, ln2_w, ln2_b;     /* b data NULL for Llama */
    eff_tensor d_ln1_w, d_ln1_b, d_ln2_w, d_ln2_b;
    eff_model_linear q, k, v, o;
    eff_model_ffn ffn;                         /* dense FFN (n_experts == 0) */
    eff_model_linear router;                   /* MoE: [n_experts, dim] */
    eff_model_ffn *experts;                    /* MoE: n_experts FFNs */
    /* Prefix tuning (Li & Liang 2021; eff_train.h fills them): P trainable keys and values
       [P, n_kv_heads * head_dim] that every query sees before the sequence (no RoPE on them;
       the sequence keeps positions 0..T-1). data NULL: none. Gradients += like parameters. */
    eff_tensor prefix_k, prefix_v, d_prefix_k, d_prefix_v;
} eff_model_layer;

/* One entry of the canonical parameter list (weights in order of the size table). */
typedef struct eff_model_param {
    char name[48];
    eff_tensor *w;             /* the weight (may be quantized) */
    eff_tensor *g;             /* its f32 gradient (data NULL before eff_model_alloc_grads) */
    float *master;             /* fp32 master copy when w is bf16/f16 (eff_train.h mixed precision); else NULL */
} eff_model_param;

/* Activations of one layer, kept for backward (sized once for [B, T]). */
typedef struct eff_model_layer_acts {
    eff_tensor res;                        /* [B, T, C] layer input */
    eff_tensor ln1, ln1_mean, ln1_rstd;    /* [B, T, C], [B*T] */
    eff_tensor q, k, v;                    /* [B, T, H, hd], [B, T, Hkv, hd] (after RoPE) */
    eff_tensor att, lse;                   /* [B, T, H, hd], [B, H, T] */
    eff_tensor res2;                       /* after the attention residual */
    eff_tensor ln2, ln2_mean, ln2_rstd;
    eff_tensor h, u, a;                    /* FFN: pre-activation (gate), up (Llama), activation */
    eff_tensor kp, vp;                     /* prefix tuning: [B, P + T, kvd] prefix + k, v */
    /* MoE: N = B*T tokens, k assignments each; expert inputs/outputs are kept per
       assignment, sorted by expert (rows offs[e] .. offs[e+1]) */
    eff_tensor probs;                      /* [N, E] router softmax */
    eff_tensor sel, gate, row;             /* [N, k] chosen expert, gate weight, row in the sorted buffers (-1: dropped) */
    eff_tensor offs;                       /* [E + 1] i64 */
    eff_tensor xs, hs, us, as, ys;         /* [N*k, C | F | F | F | C] */
    eff_tensor counts;                     /* [E] f32: assignments routed to e before the capacity limit */
    float aux;                             /* Switch load-balancing loss of this layer */
} eff_model_layer_acts;

typedef struct eff_model_acts {
    int64_t B, T;
    eff_arena arena;
    eff_tensor tokens, targets;            /* [B, T] i32 (copies) */
    eff_model_layer_acts *layers;
    eff_tensor res_out;                    /* [B, T, C] output of the last layer */
    eff_tensor lnf, lnf_mean, lnf_rstd;
    eff_tensor logits;                     /* [B, T, V] */
    /* backward scratch */
    eff_tensor dres, dtmp, dln, datt, dq, dk, dv, dh, du, da, dlogits;
    eff_tensor dys, dxs, dhs, dus, das, dprobs, dgate;   /* MoE */
    eff_tensor dkp, dvp;                   /* prefix tuning */
    eff_tensor rope;                       /* [B, T, head_dim] RoPE (cos, sin) of each sequence's positions */
    int64_t rope_pos0;                     /* position of row 0 of sequence 0's table */
    int64_t n_prefix;                      /* the layout was made for this many prefix tokens */
    int dropless;                          /* MoE: ignore the capacity limit (cached steps) */
    int checkpoint;                        /* the layout was made with m->checkpoint */
    float loss;                            /* cross-entropy + aux_loss_coef * sum of MoE aux losses */
    float ce_loss;
    int has_targets;
} eff_model_acts;

struct eff_model;
typedef struct eff_model {
    eff_model_config cfg;
    eff_arena weights;
    eff_arena grads;
    eff_tensor tok_emb;                    /* [V, C] */
    eff_tensor pos_emb;                    /* [max_seq, C] (GPT-2) */
    eff_tensor lnf_w, lnf_b;
    eff_tensor d_tok_emb, d_pos_emb, d_lnf_w, d_lnf_b;
    eff_model_layer *layers;
    eff_model_linear head;                 /* [V, C]; tied: W and dW alias tok_emb */
    eff_model_param *params;
    int64_t n_params;
    eff_model_acts acts;
    eff_attn_opts attn;                    /* passed to attention (block_mask etc.); causal is forced */
    int attn_impl;                         /* EFF_ATTN_IMPL_FLASH (default) or EFF_ATTN_IMPL_REF */
    void *linear_store;                    /* 2-D weights kept outside the arena (eff_model_quantize, GGUF) */
    int external2d;                        /* 2-D weights live in linear_store, not in the f32 arena */
    /* Activation checkpointing (Chen et al. 2016): keep only each block's input; backward
       recomputes the block's forward before its backward. Set before the first forward. */
    int checkpoint;
    /* Called in backward as soon as a group's gradients are complete: layer l (its norms
       and linears), then n_layers (final norm and untied head) is reported first and -1
       (embeddings) last. LOMO applies its update here. */
    eff_status (*on_grads)(eff_ctx *ctx, struct eff_model *m, int64_t layer, void *user);
    void *on_grads_user;
    int layerwise_grads;                   /* set by eff_model_alloc_grads_layerwise */
    /* Hooks for eff_train.h. frozen: the model's own weights get no gradients (adapters,
       prefixes or prompts train), so backward runs without eff_model_alloc_grads.
       loss_scale (0 = 1) multiplies the loss gradient (dynamic loss scaling, accumulation).
       on_dlogits is called in backward with the cross-entropy gradient of the logits
       [B, T, V] (before loss_scale) so another loss can add its gradient (distillation).
       prompt (prompt tuning, Lester et al. 2021) [P, C]: when data != NULL the embeddings of
       the first P positions of every sequence are replaced by these rows (the caller puts
       placeholder tokens there); d_prompt (if data != NULL) += their gradients. */
    int frozen;
    float loss_scale;
    eff_status (*on_dlogits)(eff_ctx *ctx, struct eff_model *m, eff_tensor *dlogits, void *user);
    void *on_dlogits_user;
    eff_tensor prompt, d_prompt;
} eff_model;

/* Lays out the weights for c and initializes them (normal(0, 0.02); residual output
   projections scaled by 1/sqrt(2 n_layers); biases 0; norms 1) from ctx's RNG. */
EFFDEF eff_status eff_model_init(eff_ctx *ctx, eff_model *m, const eff_model_config *c);
EFFDEF void       eff_model_free(eff_ctx *ctx, eff_model *m);
/* Allocates zeroed f32 gradients for every parameter (one arena). */
EFFDEF eff_status eff_model_alloc_grads(eff_ctx *ctx, eff_model *m);
/* LOMO-style gradients (Lv et al. 2023): all layers share one gradient buffer the size of
   the largest layer; backward zeroes it before each layer and on_grads must consume it
   (apply the update) before the next layer overwrites it. Embedding and top gradients
   keep their own buffers. Peak gradient memory: one layer + embeddings + head. */
EFFDEF eff_status eff_model_alloc_grads_layerwise(eff_ctx *ctx, eff_model *m);
EFFDEF void       eff_model_zero_grads(eff_model *m);
/* Index range [*first, *last) of layer l's parameters in m->params (l = -1: embeddings,
   l = n_layers: final norm and head). */
EFFDEF void       eff_model_layer_params(const eff_model *m, int64_t l, int64_t *first, int64_t *last);
/* Parameter count of a config without building it. */
EFFDEF int64_t    eff_model_config_n_params(const eff_model_config *c);

/* tokens [B*T] (i32, row-major [B, T]); targets may be NULL (no loss) and use -100 to
   ignore a position. Logits land in m->acts.logits. The activation arena is sized for
   (B, T) on first use and re-sized when they change. */
EFFDEF eff_status eff_model_forward(eff_ctx *ctx, eff_model *m, const int32_t *tokens, const int32_t *targets,
                                    int64_t B, int64_t T, float *loss);
/* Backward of the last forward (which needs targets): parameter gradients +=. */
EFFDEF eff_status eff_model_backward(eff_ctx *ctx, eff_model *m);

EFFDEF const eff_model_param *eff_model_find_param(const eff_model *m, const char *name);

/* KV-cached inference. A cache for this model (n_layers, n_kv_heads, head_dim filled in
   from the config; the rest of opts as eff_attn_cache_opts: dtype, max_seqs, max_tokens,
   paged, window, n_sink). */
EFFDEF eff_status eff_model_cache_create(eff_ctx *ctx, const eff_model *m, eff_attn_cache *cache, const eff_attn_cache_opts *opts);
/* Runs n new tokens of each of B sequences (tokens [B, n], sequence ids seqs[B]) over the
   cache: their K/V are appended and attention sees everything cached before them.
   Prefill is a step with n = prompt length; decode is n = 1; speculative verification
   n = gamma + 1. Logits [B, n, V] land in m->acts.logits and, if logits != NULL, there.
   MoE layers run dropless here (no capacity limit). */
EFFDEF eff_status eff_model_step(eff_ctx *ctx, eff_model *m, eff_attn_cache *cache, const int64_t *seqs, int64_t B,
                                 const int32_t *tokens, int64_t n, float *logits);
/* Converts every linear (and the token embedding, which a tied head reads) to dtype
   through the context's dtype table (eff_quant_register first for block formats).
   Quantized weights are frozen: backward still gives input gradients. */
EFFDEF eff_status eff_model_quantize(eff_ctx *ctx, eff_model *m, int dtype);
/* Bytes of weights one decode step reads (every linear, the head and one embedding row). */
EFFDEF int64_t eff_model_weight_bytes(const eff_model *m);

/* HF checkpoints: dir/config.json + dir/model.safetensors. */
EFFDEF eff_status eff_model_load_hf(eff_ctx *ctx, eff_model *m, const char *dir);
EFFDEF eff_status eff_model_save_hf(eff_ctx *ctx, const eff_model *m, const char *dir);
/* llama2.c checkpoints: v0 (legacy fp32, negative vocab = separate classifier), v1 ("ak42"
   fp32) and v2 ("ak42" int8 groups with fp32 scales, dequantized on import). RoPE pairs
   (2i, 2i+1) as Meta's weights expect. Sizes are checked against the file length. */
EFFDEF eff_status eff_model_load_llama2c(eff_ctx *ctx, eff_model *m, const char *path);
/* GGUF (llama.cpp's format), llama architecture: the metadata keys llama.cpp reads
   (general.architecture, llama.context_length, llama.embedding_length, llama.block_count,
   llama.feed_forward_length, llama.attention.head_count(_kv), ..._layer_norm_rms_epsilon,
   llama.rope.freq_base, llama.rope.dimension_count) and ggml tensor names (token_embd,
   blk.N.attn_q/k/v/output, blk.N.attn_norm/ffn_norm, blk.N.ffn_gate/up/down, output_norm,
   output). Weights are written in their dtype (f32, f16, bf16 or any ggml block format
   from eff_model_quantize) and loaded without conversion. llama.cpp rotates interleaved
   pairs, so a model in NEOX mode (from HF) has its q/k rows permuted on export and loads
   back in GPT-J mode with the same logits. The tokenizer is not written. */
EFFDEF eff_status eff_model_save_gguf(eff_ctx *ctx, const eff_model *m, const char *path);
EFFDEF eff_status eff_model_load_gguf(eff_ctx *ctx, eff_model *m, const char *path);
/* Parses an HF config.json (GPT-2 or Llama model_type) into c. */
EFFDEF eff_status eff_model_config_from_hf(eff_ctx *ctx, eff_model_config *c, const char *json, int64_t len);
/* Writes the HF-layout tensor `hf_name` (weights, or the gradients when grads != 0) into
   out (f32, the HF shape); *n gets its element count. out may be NULL to ask the size. */
EFFDEF eff_status eff_model_export_hf_tensor(eff_ctx *ctx, const eff_model *m, const char *hf_name, int grads,
                                             float *out, int64_t *n);
/* The i-th HF tensor name of the model in checkpoint order; EFF_ERR_NOT_FOUND past the end. */
EFFDEF eff_status eff_model_hf_names(const eff_model *m, int64_t i, char *name, size_t size);

/* ---------------------------------------------------------------------------
   Tokenizers: byte-level (256 ids, no files), llama2.c's tokenizer.bin
   (sentencepiece BPE with scores and byte fallback, encoded as llama2.c's run.c
   does), and GPT-2's byte-level BPE (vocab.json + merges.txt).
   --------------------------------------------------------------------------- */
enum { EFF_TOK_BYTE = 0, EFF_TOK_LLAMA2C = 1, EFF_TOK_GPT2 = 2 };
typedef struct eff_tokenizer {
    int kind;
    int64_t vocab_size;
    int32_t bos_id, eos_id;        /* -1 when the vocabulary has none */
    char **pieces;                 /* raw bytes of each token (GPT-2: after undoing the byte-to-unicode map) */
    int32_t *piece_len;
    float *scores;                 /* llama2.c merge scores */
    int32_t byte_id[256];          /* token of each single byte (GPT-2), or the <0xXX> fallback token (llama2.c) */
    int64_t ht_cap;                /* bytes -> id hash table (open addressing) */
    int32_t *ht;
    int64_t mt_cap;                /* GPT-2 merges: (left id, right id) -> rank and merged id */
    uint64_t *mt_key;
    int32_t *mt_rank, *mt_id;
    char *text;                    /* backing store of the pieces */
    const char *byte_text;         /* the 256 byte values, for byte-fallback tokens */
} eff_tokenizer;

EFFDEF eff_status eff_tokenizer_byte(eff_ctx *ctx, eff_tokenizer *t);
/* llama2.c's tokenizer.bin; vocab_size comes from the model (32000 for Llama 2). */
EFFDEF eff_status eff_tokenizer_load_llama2c(eff_ctx *ctx, eff_tokenizer *t, const char *path, int64_t vocab_size);
EFFDEF eff_status eff_tokenizer_load_gpt2(eff_ctx *ctx, eff_tokenizer *t, const char *vocab_json, const char *merges_txt);
EFFDEF void       eff_tokenizer_free(eff_ctx *ctx, eff_tokenizer *t);
/* ids[0 .. *n) for text[0 .. len); fails with EFF_ERR_SHAPE if more than max_ids are needed
   (*n then holds the count needed). bos/eos add the special tokens when the vocabulary has them. */
EFFDEF eff_status eff_tokenizer_encode(eff_ctx *ctx, const eff_tokenizer *t, const char *text, int64_t len, int bos, int eos,
                                       int32_t *ids, int64_t max_ids, int64_t *n);
/* Bytes of ids (special tokens skipped; llama2.c's leading space after BOS dropped) into out
   (NUL-terminated, truncated to size); *len gets the full length. */
EFFDEF eff_status eff_tokenizer_decode(eff_ctx *ctx, const eff_tokenizer *t, const int32_t *ids, int64_t n, char *out, size_t size,
                                       size_t *len);
/* The bytes of one token as they are printed after token prev (-1: none). */
EFFDEF const char *eff_tokenizer_piece(const eff_tokenizer *t, int32_t prev, int32_t id, int32_t *len);

/* Parameter and FLOP table per component (forward FLOPs per token at context length T). */
typedef struct eff_model_counts {
    int64_t embedding, attention, mlp, norms, head, total;   /* parameters */
    double flops_attn_proj, flops_attn_scores, flops_mlp, flops_head, flops_total;   /* per token */
} eff_model_counts;
EFFDEF void eff_model_count(const eff_model_config *c, int64_t T, eff_model_counts *out);

#ifdef __cplusplus
}
#endif
#endif /* EFF_MODEL_H */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_MODEL_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_MODEL_IMPLEMENTED)
#define EFF_MODEL_IMPLEMENTED
#define EFF__WANT_INTERNALS
#include "eff_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Config
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_model_config_preset(eff_model_config *c, const char *name) {
    static const struct { const char *name; int arch; int64_t V, P, C, L, H, KV, F; int tie; } p[] = {
        {"gpt2", EFF_MODEL_GPT2, 50257, 1024, 768, 12, 12, 12, 3072, 1},
        {"gpt2-medium", EFF_MODEL_GPT2, 50257, 1024, 1024, 24, 16, 16, 4096, 1},
        {"gpt2-large", EFF_MODEL_GPT2, 50257, 1024, 1280, 36, 20, 20, 5120, 1},
        {"gpt2-xl", EFF_MODEL_GPT2, 50257, 1024, 1600, 48, 25, 25, 6400, 1},
        {"stories15M", EFF_MODEL_LLAMA, 32000, 256, 288, 6, 6, 6, 768, 1},
        {"stories42M", EFF_MODEL_LLAMA, 32000, 1024, 512, 8, 8, 8, 1376, 1},
        {"stories110M", EFF_MODEL_LLAMA, 32000, 1024, 768, 12, 12, 12, 2048, 1},
        {"tiny-gpt2", EFF_MODEL_GPT2, 256, 128, 64, 2, 4, 4, 256, 1},
        {"tiny-llama", EFF_MODEL_LLAMA, 256, 128, 64, 2, 4, 2, 176, 0},
        {"llama-10M", EFF_MODEL_LLAMA, 256, 256, 320, 8, 8, 4, 864, 0},
    };
    size_t i;
    if (!c || !name) return EFF_ERR_INVALID_ARG;
    for (i = 0; i < sizeof p / sizeof p[0]; i++) {
        if (strcmp(p[i].name, name) != 0) continue;
        memset(c, 0, sizeof *c);
        c->arch = p[i].arch; c->vocab_size = p[i].V; c->max_seq = p[i].P; c->dim = p[i].C; c->n_layers = p[i].L;
        c->n_heads = p[i].H; c->n_kv_heads = p[i].KV; c->hidden_dim = p[i].F; c->tie_embeddings = p[i].tie;
        /* llama2.c checkpoints rotate pairs (2i, 2i+1); HF Llama rotates halves */
        c->rope_mode = strncmp(name, "stories", 7) == 0 ? EFF_ROPE_GPTJ : EFF_ROPE_NEOX;
        return EFF_OK;
    }
    return EFF_ERR_NOT_FOUND;
}

EFFDEF eff_status eff_model_config_check(eff_ctx *ctx, eff_model_config *c) {
    EFF__CHECK_PTR(ctx, c);
    EFF__CHECK(ctx, c->arch == EFF_MODEL_GPT2 || c->arch == EFF_MODEL_LLAMA, EFF_ERR_INVALID_ARG, "model config: unknown arch %d", c->arch);
    EFF__CHECK(ctx, c->vocab_size > 0 && c->dim > 0 && c->n_layers > 0 && c->n_heads > 0 && c->max_seq > 0, EFF_ERR_INVALID_ARG,
               "model config: vocab_size, dim, n_layers, n_heads and max_seq must be positive");
    if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
    if (c->head_dim == 0) {
        EFF__CHECK(ctx, c->dim % c->n_heads == 0, EFF_ERR_INVALID_ARG, "model config: dim %lld not divisible by n_heads %lld",
                   (long long)c->dim, (long long)c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    if (c->hidden_dim == 0) c->hidden_dim = c->arch == EFF_MODEL_GPT2 ? 4 * c->dim : (8 * c->dim / 3 + 31) / 32 * 32;
    if (c->norm_eps == 0.0f) c->norm_eps = 1e-5f;
    if (c->rope_theta == 0.0f) c->rope_theta = 10000.0f;
    EFF__CHECK(ctx, c->n_kv_heads > 0 && c->n_heads % c->n_kv_heads == 0, EFF_ERR_INVALID_ARG,
               "model config: n_heads %lld is not a multiple of n_kv_heads %lld", (long long)c->n_heads, (long long)c->n_kv_heads);
    EFF__CHECK(ctx, c->arch == EFF_MODEL_LLAMA || (c->n_kv_heads == c->n_heads && c->head_dim * c->n_heads == c->dim),
               EFF_ERR_INVALID_ARG, "model config: GPT-2 needs n_kv_heads == n_heads and head_dim * n_heads == dim");
    EFF__CHECK(ctx, c->head_dim % 2 == 0 || c->arch == EFF_MODEL_GPT2, EFF_ERR_INVALID_ARG, "model config: RoPE needs an even head_dim");
    EFF__CHECK(ctx, c->hidden_dim > 0, EFF_ERR_INVALID_ARG, "model config: hidden_dim must be positive");
    EFF__CHECK(ctx, c->rope_mode == EFF_ROPE_NEOX || c->rope_mode == EFF_ROPE_GPTJ, EFF_ERR_INVALID_ARG, "model config: rope_mode %d", c->rope_mode);
    EFF__CHECK(ctx, c->n_experts >= 0 && (c->n_experts == 0 || (c->top_k >= 1 && c->top_k <= c->n_experts)), EFF_ERR_INVALID_ARG,
               "model config: top_k %lld must be in [1, n_experts = %lld]", (long long)c->top_k, (long long)c->n_experts);
    EFF__CHECK(ctx, c->capacity_factor >= 0.0f && c->aux_loss_coef >= 0.0f, EFF_ERR_INVALID_ARG,
               "model config: capacity_factor and aux_loss_coef must be >= 0");
    EFF__CHECK(ctx, c->router == EFF_ROUTER_TOPK || c->router == EFF_ROUTER_HASH, EFF_ERR_INVALID_ARG, "model config: router %d", c->router);
    EFF__CHECK(ctx, c->router != EFF_ROUTER_HASH || c->n_experts == 0 || c->top_k == 1, EFF_ERR_INVALID_ARG,
               "model config: hash routing sends each token to one expert (top_k must be 1)");
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Layout: one function builds every weight tensor in a fixed order (the size
   table); it runs once to size the arena and once to place the tensors.
   --------------------------------------------------------------------------- */
typedef struct { eff_model *m; eff_arena *a; int64_t n; int record; int external2d; } eff__lay;

static eff_status eff__lay_t(eff_ctx *ctx, eff__lay *L, eff_tensor *t, eff_tensor *g, const char *name, int ndim, int64_t n0, int64_t n1) {
    int64_t ne[2];
    ne[0] = n0; ne[1] = n1;
    if (L->external2d && ndim == 2) EFF__TRY(eff_tensor_init(ctx, t, EFF_F32, ndim, ne, NULL));   /* filled by the loader */
    else EFF__TRY(eff_arena_tensor(ctx, L->a, t, EFF_F32, ndim, ne));
    memset(g, 0, sizeof *g);
    if (L->record) {
        eff_model_param *p = &L->m->params[L->n];
        snprintf(p->name, sizeof p->name, "%.47s", name);
        p->w = t; p->g = g;
    }
    L->n++;
    return EFF_OK;
}
static eff_status eff__lay_lin(eff_ctx *ctx, eff__lay *L, eff_model_linear *l, const char *name, int64_t out, int64_t in, int bias) {
    char nm[64];
    eff_linear_adapter keep = l->adapter;
    const uint8_t *mask = l->mask;
    int frozen = l->frozen;
    memset(l, 0, sizeof *l);
    l->adapter = keep; l->mask = mask; l->frozen = frozen;
    snprintf(l->name, sizeof l->name, "%.47s", name);
    snprintf(nm, sizeof nm, "%s.w", name);
    EFF__TRY(eff__lay_t(ctx, L, &l->W, &l->dW, nm, 2, out, in));
    if (bias) {
        snprintf(nm, sizeof nm, "%s.b", name);
        EFF__TRY(eff__lay_t(ctx, L, &l->b, &l->db, nm, 1, out, 1));
    }
    return EFF_OK;
}
static eff_status eff__lay_ffn(eff_ctx *ctx, eff__lay *L, eff_model_ffn *f, const char *prefix, const eff_model_config *c) {
    char nm[64];
    int gpt2 = c->arch == EFF_MODEL_GPT2;
    if (!gpt2) { snprintf(nm, sizeof nm, "%s.gate", prefix); EFF__TRY(eff__lay_lin(ctx, L, &f->gate, nm, c->hidden_dim, c->dim, 0)); }
    snprintf(nm, sizeof nm, "%s.up", prefix);
    EFF__TRY(eff__lay_lin(ctx, L, &f->up, nm, c->hidden_dim, c->dim, gpt2));
    snprintf(nm, sizeof nm, "%s.down", prefix);
    EFF__TRY(eff__lay_lin(ctx, L, &f->down, nm, c->dim, c->hidden_dim, gpt2));
    return EFF_OK;
}

static eff_status eff__model_layout(eff_ctx *ctx, eff_model *m, eff_arena *a, int record) {
    const eff_model_config *c = &m->cfg;
    eff__lay L;
    int64_t l, e;
    int gpt2 = c->arch == EFF_MODEL_GPT2;
    char nm[64];
    L.m = m; L.a = a; L.n = 0; L.record = record; L.external2d = m->external2d;
    EFF__TRY(eff__lay_t(ctx, &L, &m->tok_emb, &m->d_tok_emb, "tok_emb", 2, c->vocab_size, c->dim));
    if (gpt2) EFF__TRY(eff__lay_t(ctx, &L, &m->pos_emb, &m->d_pos_emb, "pos_emb", 2, c->max_seq, c->dim));
    for (l = 0; l < c->n_layers; l++) {
        eff_model_layer *ly = &m->layers[l];
        int64_t qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
        snprintf(nm, sizeof nm, "layers.%lld.ln1.w", (long long)l);
        EFF__TRY(eff__lay_t(ctx, &L, &ly->ln1_w, &ly->d_ln1_w, nm, 1, c->dim, 1));
        if (gpt2) { snprintf(nm, sizeof nm, "layers.%lld.ln1.b", (long long)l); EFF__TRY(eff__lay_t(ctx, &L, &ly->ln1_b, &ly->d_ln1_b, nm, 1, c->dim, 1)); }
        snprintf(nm, sizeof nm, "layers.%lld.attn.q", (long long)l); EFF__TRY(eff__lay_lin(ctx, &L, &ly->q, nm, qd, c->dim, gpt2));
        snprintf(nm, sizeof nm, "layers.%lld.attn.k", (long long)l); EFF__TRY(eff__lay_lin(ctx, &L, &ly->k, nm, kvd, c->dim, gpt2));
        snprintf(nm, sizeof nm, "layers.%lld.attn.v", (long long)l); EFF__TRY(eff__lay_lin(ctx, &L, &ly->v, nm, kvd, c->dim, gpt2));
        snprintf(nm, sizeof nm, "layers.%lld.attn.o", (long long)l); EFF__TRY(eff__lay_lin(ctx, &L, &ly->o, nm, c->dim, qd, gpt2));
        snprintf(nm, sizeof nm, "layers.%lld.ln2.w", (long long)l);
        EFF__TRY(eff__lay_t(ctx, &L, &ly->ln2_w, &ly->d_ln2_w, nm, 1, c->dim, 1));
        if (gpt2) { snprintf(nm, sizeof nm, "layers.%lld.ln2.b", (long long)l); EFF__TRY(eff__lay_t(ctx, &L, &ly->ln2_b, &ly->d_ln2_b, nm, 1, c->dim, 1)); }
        if (c->n_experts == 0) {
            snprintf(nm, sizeof nm, "layers.%lld.ffn", (long long)l);
            EFF__TRY(eff__lay_ffn(ctx, &L, &ly->ffn, nm, c));
        } else {
            snprintf(nm, sizeof nm, "layers.%lld.moe.router", (long long)l);
            EFF__TRY(eff__lay_lin(ctx, &L, &ly->router, nm, c->n_experts, c->dim, 0));
            for (e = 0; e < c->n_experts; e++) {
                snprintf(nm, sizeof nm, "layers.%lld.moe.experts.%lld", (long long)l, (long long)e);
                EFF__TRY(eff__lay_ffn(ctx, &L, &ly->experts[e], nm, c));
            }
        }
    }
    EFF__TRY(eff__lay_t(ctx, &L, &m->lnf_w, &m->d_lnf_w, "lnf.w", 1, c->dim, 1));
    if (gpt2) EFF__TRY(eff__lay_t(ctx, &L, &m->lnf_b, &m->d_lnf_b, "lnf.b", 1, c->dim, 1));
    if (!c->tie_embeddings) {
        EFF__TRY(eff__lay_lin(ctx, &L, &m->head, "head", c->vocab_size, c->dim, 0));
    } else {
        memset(&m->head, 0, sizeof m->head);
        snprintf(m->head.name, sizeof m->head.name, "head");
        m->head.W = m->tok_emb;   /* the tied head reads the embedding */
    }
    m->n_params = L.n;
    return EFF_OK;
}

EFFDEF int64_t eff_model_config_n_params(const eff_model_config *c) {
    eff_model_counts k;
    eff_model_count(c, 1, &k);
    return k.total;
}

static void eff__model_free_acts(eff_ctx *ctx, eff_model *m) {
    eff_arena_release(ctx, &m->acts.arena);
    eff_ctx_free(ctx, m->acts.layers);
    memset(&m->acts, 0, sizeof m->acts);
}

EFFDEF void eff_model_free(eff_ctx *ctx, eff_model *m) {
    if (!m) return;
    eff__model_free_acts(ctx, m);
    eff_arena_release(ctx, &m->weights);
    eff_arena_release(ctx, &m->grads);
    if (m->layers) {
        int64_t l;
        for (l = 0; l < m->cfg.n_layers; l++) eff_ctx_free(ctx, m->layers[l].experts);
    }
    eff_ctx_free(ctx, m->layers);
    eff_ctx_free(ctx, m->params);
    eff_ctx_free(ctx, m->linear_store);
    memset(m, 0, sizeof *m);
}

/* Allocates the layer array and the weight arena (uninitialized weights). */
static eff_status eff__model_build(eff_ctx *ctx, eff_model *m, const eff_model_config *cin, int external2d) {
    eff_status s;
    int64_t l;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, cin);
    memset(m, 0, sizeof *m);
    m->cfg = *cin;
    m->external2d = external2d;
    EFF__TRY(eff_model_config_check(ctx, &m->cfg));
    m->layers = (eff_model_layer *)eff_ctx_calloc(ctx, (size_t)m->cfg.n_layers * sizeof(eff_model_layer));
    if (!m->layers) return ctx ? EFF_ERR_OOM : EFF_ERR_OOM;
    for (l = 0; l < m->cfg.n_layers && m->cfg.n_experts; l++) {
        m->layers[l].experts = (eff_model_ffn *)eff_ctx_calloc(ctx, (size_t)m->cfg.n_experts * sizeof(eff_model_ffn));
        if (!m->layers[l].experts) { eff_model_free(ctx, m); return EFF_ERR_OOM; }
    }
    eff_arena_init(&m->weights);
    s = eff__model_layout(ctx, m, &m->weights, 0);                 /* sizing pass */
    if (s == EFF_OK) {
        m->params = (eff_model_param *)eff_ctx_calloc(ctx, (size_t)m->n_params * sizeof(eff_model_param));
        if (!m->params) s = EFF_ERR_OOM;
    }
    if (s == EFF_OK) s = eff_arena_commit(ctx, &m->weights);
    if (s == EFF_OK) s = eff__model_layout(ctx, m, &m->weights, 1);  /* placing pass */
    if (s != EFF_OK) { eff_model_free(ctx, m); return s; }
    m->attn_impl = EFF_ATTN_IMPL_FLASH;
    return EFF_OK;
}

static int eff__ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

EFFDEF eff_status eff_model_init(eff_ctx *ctx, eff_model *m, const eff_model_config *c) {
    int64_t i;
    eff_rng *rng;
    float resid_std;
    EFF__TRY(eff__model_build(ctx, m, c, 0));
    rng = eff_ctx_rng(ctx);
    resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layers);
    for (i = 0; i < m->n_params; i++) {
        const eff_model_param *p = &m->params[i];
        float *w = (float *)p->w->data;
        int64_t n = eff_tensor_nelements(p->w), j;
        if (eff__ends_with(p->name, ".b")) { for (j = 0; j < n; j++) w[j] = 0.0f; }
        else if (strstr(p->name, "ln1.") || strstr(p->name, "ln2.") || strncmp(p->name, "lnf.", 4) == 0) { for (j = 0; j < n; j++) w[j] = 1.0f; }
        else if (strcmp(p->name, "pos_emb") == 0) eff_rng_fill_normal(rng, w, n, 0.0f, 0.01f);
        else if (eff__ends_with(p->name, "attn.o.w") || eff__ends_with(p->name, ".down.w")) eff_rng_fill_normal(rng, w, n, 0.0f, resid_std);
        else eff_rng_fill_normal(rng, w, n, 0.0f, 0.02f);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_model_alloc_grads(eff_ctx *ctx, eff_model *m) {
    int pass;
    int64_t i;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_model_alloc_grads: model is not built");
    if (m->grads.base) { eff_model_zero_grads(m); return EFF_OK; }
    eff_arena_init(&m->grads);
    for (pass = 0; pass < 2; pass++) {
        if (pass == 1) EFF__TRY(eff_arena_commit(ctx, &m->grads));
        for (i = 0; i < m->n_params; i++) {
            eff_model_param *p = &m->params[i];
            EFF__TRY(eff_arena_tensor(ctx, &m->grads, p->g, EFF_F32, p->w->ndim, p->w->ne));
        }
    }
    if (m->cfg.tie_embeddings) m->head.dW = m->d_tok_emb;
    eff_model_zero_grads(m);
    return EFF_OK;
}

EFFDEF void eff_model_zero_grads(eff_model *m) {
    if (m && m->grads.base) memset(m->grads.base, 0, m->grads.size);
}

/* Parameters are laid out: tok_emb, [pos_emb], layer 0 .. layer L-1, lnf (w, b), [head]. */
EFFDEF void eff_model_layer_params(const eff_model *m, int64_t l, int64_t *first, int64_t *last) {
    int64_t i, lo = -1, hi = -1;
    char pre[32];
    if (l < 0) { *first = 0; *last = m->cfg.arch == EFF_MODEL_GPT2 ? 2 : 1; return; }
    if (l >= m->cfg.n_layers) {
        for (i = 0; i < m->n_params; i++) if (strncmp(m->params[i].name, "lnf.", 4) == 0) break;
        *first = i; *last = m->n_params; return;
    }
    snprintf(pre, sizeof pre, "layers.%lld.", (long long)l);
    for (i = 0; i < m->n_params; i++)
        if (strncmp(m->params[i].name, pre, strlen(pre)) == 0) { if (lo < 0) lo = i; hi = i + 1; }
    *first = lo; *last = hi;
}

EFFDEF eff_status eff_model_alloc_grads_layerwise(eff_ctx *ctx, eff_model *m) {
    int64_t l, i, first, last;
    int pass;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK(ctx, m->params != NULL && !m->grads.base, EFF_ERR_INVALID_ARG, "eff_model_alloc_grads_layerwise: model not built or grads exist");
    eff_arena_init(&m->grads);
    for (pass = 0; pass < 2; pass++) {
        size_t mark = 0, maxend = 0;
        if (pass == 1) EFF__TRY(eff_arena_commit(ctx, &m->grads));
        for (l = -1; l <= m->cfg.n_layers; l++) {
            if (l == 0) mark = m->grads.used;
            if (l >= 0 && l < m->cfg.n_layers) m->grads.used = mark;   /* every layer starts at the shared region */
            if (l == m->cfg.n_layers) m->grads.used = maxend;
            eff_model_layer_params(m, l, &first, &last);
            for (i = first; i < last; i++) {
                eff_model_param *p = &m->params[i];
                EFF__TRY(eff_arena_tensor(ctx, &m->grads, p->g, EFF_F32, p->w->ndim, p->w->ne));
            }
            if (m->grads.used > maxend) maxend = m->grads.used;
        }
    }
    if (m->cfg.tie_embeddings) m->head.dW = m->d_tok_emb;
    m->layerwise_grads = 1;
    eff_model_zero_grads(m);
    return EFF_OK;
}

EFFDEF const eff_model_param *eff_model_find_param(const eff_model *m, const char *name) {
    int64_t i;
    if (!m || !name) return NULL;
    for (i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
   Linear with adapter slot
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_model_linear_forward(eff_ctx *ctx, eff_model_linear *l, eff_tensor *y, const eff_tensor *x) {
    EFF__CHECK_PTR(ctx, l);
    if (!(l->adapter.replace && l->adapter.forward)) EFF__TRY(eff_linear_forward(ctx, y, x, &l->W, l->b.data ? &l->b : NULL));
    if (l->adapter.forward) EFF__TRY(l->adapter.forward(ctx, l->adapter.state, y, x));
    return EFF_OK;
}

EFFDEF eff_status eff_model_linear_backward(eff_ctx *ctx, eff_model_linear *l, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    int train = !l->frozen;
    EFF__CHECK_PTR(ctx, l);
    if (l->adapter.replace && l->adapter.backward) return l->adapter.backward(ctx, l->adapter.state, dx, dy, x);
    EFF__TRY(eff_linear_backward(ctx, dx, train && l->dW.data ? &l->dW : NULL, train && l->db.data ? &l->db : NULL, dy, x, &l->W));
    if (l->adapter.backward) EFF__TRY(l->adapter.backward(ctx, l->adapter.state, dx, dy, x));
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Activations: one arena sized for [B, T] (sizing pass, then placing pass)
   --------------------------------------------------------------------------- */
/* Prefix-tuning tokens (layer 0's prefix_k; every layer has the same count). */
static int64_t eff__n_prefix(const eff_model *m) {
    return m->layers && m->layers[0].prefix_k.data ? m->layers[0].prefix_k.ne[0] : 0;
}

static eff_status eff__acts_layout(eff_ctx *ctx, eff_model *m, int64_t B, int64_t T) {
    const eff_model_config *c = &m->cfg;
    eff_model_acts *A = &m->acts;
    eff_arena *a = &A->arena;
    int64_t BT = B * T, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, l, P = eff__n_prefix(m);
    int64_t sBTC[3], sBTQ[3], sBTK[3], sBTF[3], sBHT[3], sBT[1], sBTV[3], sTok[2], sBPK[3];
    sBPK[0] = B; sBPK[1] = P + T; sBPK[2] = kvd;
    sBTC[0] = B; sBTC[1] = T; sBTC[2] = c->dim;
    sBTQ[0] = B; sBTQ[1] = T; sBTQ[2] = qd;
    sBTK[0] = B; sBTK[1] = T; sBTK[2] = kvd;
    sBTF[0] = B; sBTF[1] = T; sBTF[2] = c->hidden_dim;
    sBHT[0] = B; sBHT[1] = c->n_heads; sBHT[2] = T;
    sBT[0] = BT;
    sBTV[0] = B; sBTV[1] = T; sBTV[2] = c->vocab_size;
    sTok[0] = B; sTok[1] = T;
    EFF__TRY(eff_arena_tensor(ctx, a, &A->tokens, EFF_I32, 2, sTok));
    if (c->arch != EFF_MODEL_GPT2) {
        int64_t sRope[3];
        sRope[0] = B; sRope[1] = T; sRope[2] = c->head_dim;
        EFF__TRY(eff_arena_tensor(ctx, a, &A->rope, EFF_F32, 3, sRope));
    }
    EFF__TRY(eff_arena_tensor(ctx, a, &A->targets, EFF_I32, 2, sTok));
    for (l = 0; l < c->n_layers; l++) {
        eff_model_layer_acts *L = &A->layers[l];
        if (m->checkpoint && l > 0) {   /* only the block input is kept; the rest is layer 0's scratch */
            eff_tensor res;
            EFF__TRY(eff_arena_tensor(ctx, a, &res, EFF_F32, 3, sBTC));
            *L = A->layers[0];
            L->res = res;
            continue;
        }
        EFF__TRY(eff_arena_tensor(ctx, a, &L->res, EFF_F32, 3, sBTC));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->ln1, EFF_F32, 3, sBTC));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->ln1_mean, EFF_F32, 1, sBT));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->ln1_rstd, EFF_F32, 1, sBT));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->q, EFF_F32, 3, sBTQ));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->k, EFF_F32, 3, sBTK));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->v, EFF_F32, 3, sBTK));
        if (P) { EFF__TRY(eff_arena_tensor(ctx, a, &L->kp, EFF_F32, 3, sBPK)); EFF__TRY(eff_arena_tensor(ctx, a, &L->vp, EFF_F32, 3, sBPK)); }
        EFF__TRY(eff_arena_tensor(ctx, a, &L->att, EFF_F32, 3, sBTQ));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->lse, EFF_F32, 3, sBHT));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->res2, EFF_F32, 3, sBTC));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->ln2, EFF_F32, 3, sBTC));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->ln2_mean, EFF_F32, 1, sBT));
        EFF__TRY(eff_arena_tensor(ctx, a, &L->ln2_rstd, EFF_F32, 1, sBT));
        if (c->n_experts == 0) {
            EFF__TRY(eff_arena_tensor(ctx, a, &L->h, EFF_F32, 3, sBTF));
            if (c->arch == EFF_MODEL_LLAMA) EFF__TRY(eff_arena_tensor(ctx, a, &L->u, EFF_F32, 3, sBTF));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->a, EFF_F32, 3, sBTF));
        } else {
            int64_t sNE[2], sNK[2], sE1[1], sAC[2], sAF[2];
            sNE[0] = BT; sNE[1] = c->n_experts; sNK[0] = BT; sNK[1] = c->top_k; sE1[0] = c->n_experts + 1;
            sAC[0] = BT * c->top_k; sAC[1] = c->dim; sAF[0] = BT * c->top_k; sAF[1] = c->hidden_dim;
            EFF__TRY(eff_arena_tensor(ctx, a, &L->probs, EFF_F32, 2, sNE));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->sel, EFF_I32, 2, sNK));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->gate, EFF_F32, 2, sNK));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->row, EFF_I32, 2, sNK));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->offs, EFF_I64, 1, sE1));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->counts, EFF_F32, 1, sE1));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->xs, EFF_F32, 2, sAC));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->hs, EFF_F32, 2, sAF));
            if (c->arch == EFF_MODEL_LLAMA) EFF__TRY(eff_arena_tensor(ctx, a, &L->us, EFF_F32, 2, sAF));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->as, EFF_F32, 2, sAF));
            EFF__TRY(eff_arena_tensor(ctx, a, &L->ys, EFF_F32, 2, sAC));
        }
    }
    EFF__TRY(eff_arena_tensor(ctx, a, &A->res_out, EFF_F32, 3, sBTC));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->lnf, EFF_F32, 3, sBTC));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->lnf_mean, EFF_F32, 1, sBT));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->lnf_rstd, EFF_F32, 1, sBT));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->logits, EFF_F32, 3, sBTV));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dres, EFF_F32, 3, sBTC));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dtmp, EFF_F32, 3, sBTC));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dln, EFF_F32, 3, sBTC));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->datt, EFF_F32, 3, sBTQ));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dq, EFF_F32, 3, sBTQ));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dk, EFF_F32, 3, sBTK));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dv, EFF_F32, 3, sBTK));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dh, EFF_F32, 3, sBTF));
    if (c->arch == EFF_MODEL_LLAMA) EFF__TRY(eff_arena_tensor(ctx, a, &A->du, EFF_F32, 3, sBTF));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->da, EFF_F32, 3, sBTF));
    EFF__TRY(eff_arena_tensor(ctx, a, &A->dlogits, EFF_F32, 3, sBTV));
    if (P) { EFF__TRY(eff_arena_tensor(ctx, a, &A->dkp, EFF_F32, 3, sBPK)); EFF__TRY(eff_arena_tensor(ctx, a, &A->dvp, EFF_F32, 3, sBPK)); }
    if (c->n_experts) {
        int64_t sNE[2], sNK[2], sAC[2], sAF[2];
        sNE[0] = BT; sNE[1] = c->n_experts; sNK[0] = BT; sNK[1] = c->top_k;
        sAC[0] = BT * c->top_k; sAC[1] = c->dim; sAF[0] = BT * c->top_k; sAF[1] = c->hidden_dim;
        EFF__TRY(eff_arena_tensor(ctx, a, &A->dys, EFF_F32, 2, sAC));
        EFF__TRY(eff_arena_tensor(ctx, a, &A->dxs, EFF_F32, 2, sAC));
        EFF__TRY(eff_arena_tensor(ctx, a, &A->dhs, EFF_F32, 2, sAF));
        if (c->arch == EFF_MODEL_LLAMA) EFF__TRY(eff_arena_tensor(ctx, a, &A->dus, EFF_F32, 2, sAF));
        EFF__TRY(eff_arena_tensor(ctx, a, &A->das, EFF_F32, 2, sAF));
        EFF__TRY(eff_arena_tensor(ctx, a, &A->dprobs, EFF_F32, 2, sNE));
        EFF__TRY(eff_arena_tensor(ctx, a, &A->dgate, EFF_F32, 2, sNK));
    }
    return EFF_OK;
}

/* Bytes the activations of a [B, T] batch take (a sizing pass that leaves m->acts as it was). */
static size_t eff__acts_bytes(eff_ctx *ctx, eff_model *m, int64_t B, int64_t T) {
    eff_arena saved = m->acts.arena;
    size_t need;
    eff_arena_init(&m->acts.arena);
    need = eff__acts_layout(ctx, m, B, T) == EFF_OK && !m->acts.arena.overflow ? m->acts.arena.size : (size_t)-1;
    m->acts.arena = saved;
    return need;
}
static eff_status eff__acts_ensure(eff_ctx *ctx, eff_model *m, int64_t B, int64_t T) {
    eff_status s;
    if (m->acts.arena.base && m->acts.checkpoint == m->checkpoint && m->acts.n_prefix == eff__n_prefix(m) &&
        ((m->acts.B == B && m->acts.T == T) || eff__acts_bytes(ctx, m, B, T) <= m->acts.arena.size)) {
        /* the same shape, or another one that fits (decode alternates 1-token steps with
           gamma+1-token verification): reuse the memory */
        eff_arena_rewind(&m->acts.arena);
        m->acts.B = B; m->acts.T = T;
        return eff__acts_layout(ctx, m, B, T);
    }
    eff__model_free_acts(ctx, m);
    m->acts.layers = (eff_model_layer_acts *)eff_ctx_calloc(ctx, (size_t)m->cfg.n_layers * sizeof(eff_model_layer_acts));
    if (!m->acts.layers) return EFF_ERR_OOM;
    eff_arena_init(&m->acts.arena);
    s = eff__acts_layout(ctx, m, B, T);
    if (s == EFF_OK) s = eff_arena_commit(ctx, &m->acts.arena);
    if (s == EFF_OK) s = eff__acts_layout(ctx, m, B, T);
    if (s != EFF_OK) { eff__model_free_acts(ctx, m); return s; }
    m->acts.B = B; m->acts.T = T; m->acts.checkpoint = m->checkpoint; m->acts.n_prefix = eff__n_prefix(m);
    return EFF_OK;
}

/* [B, T, H*hd] buffer as [B, T, H, hd], and that as the [B, H, T, hd] view attention takes. */
static eff_tensor eff__heads(const eff_tensor *t, int64_t H, int64_t hd) {
    return eff_tensor_4d(t->data, EFF_F32, t->ne[0], t->ne[1], H, hd);
}
static eff_tensor eff__bhtd(const eff_tensor *t, int64_t H, int64_t hd) {
    eff_tensor v = eff__heads(t, H, hd);
    int64_t nb1 = v.nb[1], ne1 = v.ne[1];
    v.ne[1] = v.ne[2]; v.nb[1] = v.nb[2];
    v.ne[2] = ne1; v.nb[2] = nb1;
    return v;
}

static eff_status eff__norm_fwd(eff_ctx *ctx, const eff_model *m, eff_tensor *y, eff_tensor *mean, eff_tensor *rstd,
                                const eff_tensor *x, const eff_tensor *w, const eff_tensor *b) {
    if (m->cfg.arch == EFF_MODEL_GPT2) return eff_layernorm_forward(ctx, y, mean, rstd, x, w, b, m->cfg.norm_eps);
    return eff_rmsnorm_forward(ctx, y, rstd, x, w, m->cfg.norm_eps);
}
static eff_status eff__norm_bwd(eff_ctx *ctx, const eff_model *m, eff_tensor *dx, eff_tensor *dw, eff_tensor *db,
                                const eff_tensor *dy, const eff_tensor *x, const eff_tensor *w, const eff_tensor *mean,
                                const eff_tensor *rstd) {
    if (m->cfg.arch == EFF_MODEL_GPT2) return eff_layernorm_backward(ctx, dx, dw->data ? dw : NULL, db->data ? db : NULL, dy, x, w, mean, rstd);
    return eff_rmsnorm_backward(ctx, dx, dw->data ? dw : NULL, dy, x, w, rstd);
}

static eff_attn_opts eff__attn_opts(const eff_model *m) {
    eff_attn_opts o = m->attn;
    o.causal = 1;
    return o;
}

static eff_rope_opts eff__rope_opts(const eff_model *m, int64_t pos_offset) {
    eff_rope_opts r;
    memset(&r, 0, sizeof r);
    r.theta = m->cfg.rope_theta;
    r.mode = m->cfg.rope_mode;
    r.pos_offset = pos_offset;
    return r;
}

/* ---------------------------------------------------------------------------
   Feed-forward blocks: dense (GELU MLP or SwiGLU) and Mixture of Experts
   --------------------------------------------------------------------------- */
/* y = down(act(x)); h, u, a keep the intermediates (u only for SwiGLU). */
static eff_status eff__ffn_forward(eff_ctx *ctx, const eff_model *m, eff_model_ffn *f, eff_tensor *y, const eff_tensor *x,
                                   eff_tensor *h, eff_tensor *u, eff_tensor *a) {
    if (m->cfg.arch == EFF_MODEL_GPT2) {
        EFF__TRY(eff_model_linear_forward(ctx, &f->up, h, x));
        EFF__TRY(eff_gelu_forward(ctx, a, h));
    } else {
        EFF__TRY(eff_model_linear_forward(ctx, &f->gate, h, x));
        EFF__TRY(eff_model_linear_forward(ctx, &f->up, u, x));
        EFF__TRY(eff_swiglu_forward(ctx, a, h, u));
    }
    return eff_model_linear_forward(ctx, &f->down, y, a);
}
/* dx (=) from dy; da, dh, du, dtmp are scratch of the shapes of a, h, u, x. */
static eff_status eff__ffn_backward(eff_ctx *ctx, const eff_model *m, eff_model_ffn *f, eff_tensor *dx, const eff_tensor *dy,
                                    const eff_tensor *x, const eff_tensor *h, const eff_tensor *u, const eff_tensor *a,
                                    eff_tensor *da, eff_tensor *dh, eff_tensor *du, eff_tensor *dtmp) {
    EFF__TRY(eff_model_linear_backward(ctx, &f->down, da, dy, a));
    if (m->cfg.arch == EFF_MODEL_GPT2) {
        EFF__TRY(eff_gelu_backward(ctx, dh, da, h));
        return eff_model_linear_backward(ctx, &f->up, dx, dh, x);
    }
    EFF__TRY(eff_swiglu_backward(ctx, dh, du, da, h, u));
    EFF__TRY(eff_model_linear_backward(ctx, &f->gate, dx, dh, x));
    EFF__TRY(eff_model_linear_backward(ctx, &f->up, dtmp, du, x));
    return eff_residual_backward(ctx, dx, NULL, dtmp);
}

/* Rows [r0, r0+n) of a [rows, cols] f32 buffer as a 2-D tensor. */
static eff_tensor eff__rows(const eff_tensor *t, int64_t r0, int64_t n) {
    int64_t cols = eff_tensor_ncols(t);
    return eff_tensor_2d((float *)t->data + r0 * cols, EFF_F32, n, cols);
}

/* Mixture of experts on x = ln2 [N, C], writing y [N, C].
   Routing: top-k of the router softmax (ties to the lower index); gates renormalized
   over the k chosen (Mixtral), except k = 1 where the gate is the probability itself
   (Switch, so the router still learns); or hash routing (Roller et al. 2021): expert
   eff_hash_u64(layer, token) mod E with gate 1.
   Capacity (capacity_factor > 0): each expert takes at most ceil(cf * N * k / E)
   assignments, filled slot by slot (all first choices, then second choices, ...)
   in token order; dropped assignments contribute nothing (the residual carries x).
   Capacity makes a token's output depend on the rest of the batch, so KV-cached
   steps (inference) run dropless.
   Aux loss (Switch, Fedus et al. 2021): E * sum_e f_e P_e with f_e the fraction of the
   N*k assignments routed to e (before the capacity limit) and P_e the mean router
   probability of e. */
static eff_status eff__moe_forward(eff_ctx *ctx, eff_model *m, int64_t l, eff_tensor *y) {
    const eff_model_config *c = &m->cfg;
    eff_model_layer *ly = &m->layers[l];
    eff_model_layer_acts *L = &m->acts.layers[l];
    const int32_t *tokens = (const int32_t *)m->acts.tokens.data;
    int64_t N = m->acts.B * m->acts.T, E = c->n_experts, K = c->top_k, C = c->dim, n, e, s, j, cap;
    float *p = (float *)L->probs.data, *gate = (float *)L->gate.data, *cnt = (float *)L->counts.data;
    int32_t *sel = (int32_t *)L->sel.data, *row = (int32_t *)L->row.data;
    int64_t *offs = (int64_t *)L->offs.data, *fill;
    if (c->router == EFF_ROUTER_TOPK) {
        eff_tensor P = eff_tensor_2d(p, EFF_F32, N, E);
        EFF__TRY(eff_model_linear_forward(ctx, &ly->router, &P, &L->ln2));
        EFF__TRY(eff_softmax_forward(ctx, &P, &P));
        for (n = 0; n < N; n++) {
            const float *pn = p + n * E;
            double S = 0.0;
            for (s = 0; s < K; s++) {   /* k-th largest, ties to the lower index */
                int64_t best = -1;
                for (e = 0; e < E; e++) {
                    int taken = 0;
                    for (j = 0; j < s; j++) taken |= sel[n * K + j] == e;
                    if (!taken && (best < 0 || pn[e] > pn[best])) best = e;
                }
                sel[n * K + s] = (int32_t)best;
                S += pn[best];
            }
            for (s = 0; s < K; s++) gate[n * K + s] = K == 1 ? pn[sel[n * K + s]] : (float)(pn[sel[n * K + s]] / S);
        }
    } else {
        for (n = 0; n < N; n++) { sel[n] = (int32_t)(eff_hash_u64((uint64_t)l, (uint64_t)tokens[n]) % (uint64_t)E); gate[n] = 1.0f; }
    }
    /* capacity, slot-major; rows sorted by expert */
    cap = c->capacity_factor > 0.0f && !m->acts.dropless ? (int64_t)ceil((double)c->capacity_factor * (double)(N * K) / (double)E) : N * K;
    fill = (int64_t *)eff_ctx_calloc(ctx, (size_t)(2 * E) * sizeof(int64_t));
    if (!fill) return EFF_ERR_OOM;
    for (e = 0; e < E; e++) cnt[e] = 0.0f;
    for (s = 0; s < K; s++)
        for (n = 0; n < N; n++) {
            e = sel[n * K + s];
            cnt[e] += 1.0f;
            if (fill[e] < cap) { fill[e]++; row[n * K + s] = 0; } else row[n * K + s] = -1;
        }
    offs[0] = 0;
    for (e = 0; e < E; e++) { offs[e + 1] = offs[e] + fill[e]; fill[E + e] = 0; }
    for (s = 0; s < K; s++)
        for (n = 0; n < N; n++) {
            int64_t r;
            if (row[n * K + s] < 0) continue;
            e = sel[n * K + s];
            r = offs[e] + fill[E + e]++;
            row[n * K + s] = (int32_t)r;
            memcpy((float *)L->xs.data + r * C, (const float *)L->ln2.data + n * C, (size_t)C * sizeof(float));
        }
    eff_ctx_free(ctx, fill);
    for (e = 0; e < E; e++) {
        int64_t r0 = offs[e], ne = offs[e + 1] - offs[e];
        eff_tensor X, H, U, A, Y;
        if (ne == 0) continue;
        X = eff__rows(&L->xs, r0, ne); H = eff__rows(&L->hs, r0, ne); A = eff__rows(&L->as, r0, ne); Y = eff__rows(&L->ys, r0, ne);
        U = c->arch == EFF_MODEL_LLAMA ? eff__rows(&L->us, r0, ne) : H;
        EFF__TRY(eff__ffn_forward(ctx, m, &ly->experts[e], &Y, &X, &H, &U, &A));
    }
    memset(y->data, 0, (size_t)(N * C) * sizeof(float));
    for (n = 0; n < N; n++) {
        float *yn = (float *)y->data + n * C;
        for (s = 0; s < K; s++) {
            int64_t r = row[n * K + s];
            const float *yr;
            float g = gate[n * K + s];
            if (r < 0) continue;
            yr = (const float *)L->ys.data + r * C;
            for (j = 0; j < C; j++) yn[j] += g * yr[j];
        }
    }
    L->aux = 0.0f;
    if (c->router == EFF_ROUTER_TOPK) {
        double aux = 0.0;
        for (e = 0; e < E; e++) {
            double P = 0.0;
            for (n = 0; n < N; n++) P += p[n * E + e];
            aux += (cnt[e] / (double)(N * K)) * (P / (double)N);
        }
        L->aux = (float)(aux * (double)E);
    }
    return EFF_OK;
}

/* Backward of eff__moe_forward: dy = d y; writes dx = d x (=). */
static eff_status eff__moe_backward(eff_ctx *ctx, eff_model *m, int64_t l, eff_tensor *dx, const eff_tensor *dy) {
    const eff_model_config *c = &m->cfg;
    eff_model_layer *ly = &m->layers[l];
    eff_model_layer_acts *L = &m->acts.layers[l];
    eff_model_acts *A = &m->acts;
    int64_t N = A->B * A->T, E = c->n_experts, K = c->top_k, C = c->dim, n, e, s, j;
    const float *p = (const float *)L->probs.data, *gate = (const float *)L->gate.data, *cnt = (const float *)L->counts.data;
    const int32_t *sel = (const int32_t *)L->sel.data, *row = (const int32_t *)L->row.data;
    const int64_t *offs = (const int64_t *)L->offs.data;
    float *dgate = (float *)A->dgate.data;
    /* d(expert output row) = gate * dy; d gate = dy . expert output */
    for (n = 0; n < N; n++) {
        const float *dyn = (const float *)dy->data + n * C;
        for (s = 0; s < K; s++) {
            int64_t r = row[n * K + s];
            double dg = 0.0;
            if (r < 0) { dgate[n * K + s] = 0.0f; continue; }
            {
                float *dr = (float *)A->dys.data + r * C;
                const float *yr = (const float *)L->ys.data + r * C;
                for (j = 0; j < C; j++) { dr[j] = gate[n * K + s] * dyn[j]; dg += (double)dyn[j] * yr[j]; }
            }
            dgate[n * K + s] = (float)dg;
        }
    }
    for (e = 0; e < E; e++) {
        int64_t r0 = offs[e], ne = offs[e + 1] - offs[e];
        eff_tensor X, H, U, Aa, dY, dX, dA, dH, dU, dT;
        if (ne == 0) continue;
        X = eff__rows(&L->xs, r0, ne); H = eff__rows(&L->hs, r0, ne); Aa = eff__rows(&L->as, r0, ne);
        dY = eff__rows(&A->dys, r0, ne); dX = eff__rows(&A->dxs, r0, ne); dA = eff__rows(&A->das, r0, ne); dH = eff__rows(&A->dhs, r0, ne);
        dT = eff__rows(&A->dys, r0, ne);   /* dY is consumed by down's backward before dT is written */
        U = c->arch == EFF_MODEL_LLAMA ? eff__rows(&L->us, r0, ne) : H;
        dU = c->arch == EFF_MODEL_LLAMA ? eff__rows(&A->dus, r0, ne) : dH;
        EFF__TRY(eff__ffn_backward(ctx, m, &ly->experts[e], &dX, &dY, &X, &H, &U, &Aa, &dA, &dH, &dU, &dT));
    }
    memset(dx->data, 0, (size_t)(N * C) * sizeof(float));
    for (n = 0; n < N; n++) {
        float *dxn = (float *)dx->data + n * C;
        for (s = 0; s < K; s++) {
            int64_t r = row[n * K + s];
            const float *dr;
            if (r < 0) continue;
            dr = (const float *)A->dxs.data + r * C;
            for (j = 0; j < C; j++) dxn[j] += dr[j];
        }
    }
    if (c->router == EFF_ROUTER_TOPK) {
        float *dp = (float *)A->dprobs.data;
        float coef = c->aux_loss_coef * (m->loss_scale != 0.0f ? m->loss_scale : 1.0f);
        eff_tensor P = eff_tensor_2d((void *)p, EFF_F32, N, E), dP = eff_tensor_2d(dp, EFF_F32, N, E);
        for (n = 0; n < N; n++) {
            const float *pn = p + n * E;
            float *dpn = dp + n * E;
            for (e = 0; e < E; e++) dpn[e] = coef * (float)E * cnt[e] / (float)(N * K) / (float)N;   /* aux loss */
            if (K == 1) { dpn[sel[n]] += dgate[n]; continue; }
            {   /* gate_j = p_j / S over the chosen set: d p_j = (d gate_j - sum_i gate_i d gate_i) / S */
                double S = 0.0, gd = 0.0;
                for (s = 0; s < K; s++) { S += pn[sel[n * K + s]]; gd += (double)gate[n * K + s] * dgate[n * K + s]; }
                for (s = 0; s < K; s++) dpn[sel[n * K + s]] += (float)(((double)dgate[n * K + s] - gd) / S);
            }
        }
        EFF__TRY(eff_softmax_backward(ctx, &dP, &dP, &P));
        EFF__TRY(eff_model_linear_backward(ctx, &ly->router, &A->dtmp, &dP, &L->ln2));
        EFF__TRY(eff_residual_backward(ctx, dx, NULL, &A->dtmp));
    }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Forward
   --------------------------------------------------------------------------- */
/* One layer. Training/forward (cache == NULL): causal attention over the T tokens.
   Cached step: sequence b's tokens sit at positions pos[b] .. pos[b]+T; their K/V are
   appended to the cache and attention reads everything cached. */
static eff_status eff__layer_forward(eff_ctx *ctx, eff_model *m, int64_t l, eff_tensor *out, eff_attn_cache *cache,
                                     const int64_t *seqs, const int64_t *pos) {
    const eff_model_config *c = &m->cfg;
    eff_model_layer *ly = &m->layers[l];
    eff_model_layer_acts *L = &m->acts.layers[l];
    int gpt2 = c->arch == EFF_MODEL_GPT2;
    int64_t b, B = m->acts.B;
    eff_tensor Q, K, V, O, q4, k4;
    eff_attn_opts ao = eff__attn_opts(m);
    EFF__TRY(eff__norm_fwd(ctx, m, &L->ln1, &L->ln1_mean, &L->ln1_rstd, &L->res, &ly->ln1_w, gpt2 ? &ly->ln1_b : NULL));
    EFF__TRY(eff_model_linear_forward(ctx, &ly->q, &L->q, &L->ln1));
    EFF__TRY(eff_model_linear_forward(ctx, &ly->k, &L->k, &L->ln1));
    EFF__TRY(eff_model_linear_forward(ctx, &ly->v, &L->v, &L->ln1));
    if (!gpt2) {
        q4 = eff__heads(&L->q, c->n_heads, c->head_dim);
        k4 = eff__heads(&L->k, c->n_kv_heads, c->head_dim);
        for (b = 0; b < (pos ? B : 1); b++) {   /* one RoPE call per sequence position offset */
            eff_rope_opts ro = eff__rope_opts(m, pos ? pos[b] : 0);
            eff_tensor qb = q4, kb = k4;
            ro.cs = (const float *)m->acts.rope.data + b * m->acts.T * c->head_dim;   /* filled by eff__forward */
            ro.cs_pos0 = pos ? pos[b] : 0;
            ro.cs_len = m->acts.T;
            if (pos) { EFF__TRY(eff_tensor_slice(ctx, &qb, &q4, 0, b, 1)); EFF__TRY(eff_tensor_slice(ctx, &kb, &k4, 0, b, 1)); }
            EFF__TRY(eff_rope_forward(ctx, &qb, &qb, &ro));
            EFF__TRY(eff_rope_forward(ctx, &kb, &kb, &ro));
        }
    }
    Q = eff__bhtd(&L->q, c->n_heads, c->head_dim);
    K = eff__bhtd(&L->k, c->n_kv_heads, c->head_dim);
    V = eff__bhtd(&L->v, c->n_kv_heads, c->head_dim);
    O = eff__bhtd(&L->att, c->n_heads, c->head_dim);
    if (ly->prefix_k.data) {   /* prefix tuning: keys/values [prefix; sequence]; bottom-right causal keeps the prefix visible */
        int64_t P = ly->prefix_k.ne[0], T = m->acts.T, kvd = c->n_kv_heads * c->head_dim;
        size_t rb = (size_t)kvd * sizeof(float);
        EFF__CHECK(ctx, !cache, EFF_ERR_UNSUPPORTED, "eff_model_step: prefix tuning is implemented for training forward only");
        for (b = 0; b < B; b++) {
            memcpy((float *)L->kp.data + b * (P + T) * kvd, ly->prefix_k.data, (size_t)P * rb);
            memcpy((float *)L->kp.data + (b * (P + T) + P) * kvd, (float *)L->k.data + b * T * kvd, (size_t)T * rb);
            memcpy((float *)L->vp.data + b * (P + T) * kvd, ly->prefix_v.data, (size_t)P * rb);
            memcpy((float *)L->vp.data + (b * (P + T) + P) * kvd, (float *)L->v.data + b * T * kvd, (size_t)T * rb);
        }
        K = eff__bhtd(&L->kp, c->n_kv_heads, c->head_dim);
        V = eff__bhtd(&L->vp, c->n_kv_heads, c->head_dim);
    }
    if (cache) {
        for (b = 0; b < B; b++) {
            eff_tensor Kb, Vb;
            EFF__TRY(eff_tensor_slice(ctx, &Kb, &K, 0, b, 1));
            EFF__TRY(eff_tensor_slice(ctx, &Vb, &V, 0, b, 1));
            EFF__TRY(eff_attn_cache_append(ctx, cache, l, seqs[b], &Kb, &Vb));
        }
        EFF__TRY(eff_attn_cache_decode(ctx, &O, NULL, &Q, cache, l, seqs, &ao));
    } else if (m->attn_impl == EFF_ATTN_IMPL_REF) EFF__TRY(eff_attn_ref_forward(ctx, &O, &L->lse, &Q, &K, &V, &ao));
    else EFF__TRY(eff_attn_flash_forward(ctx, &O, &L->lse, &Q, &K, &V, &ao));
    EFF__TRY(eff_model_linear_forward(ctx, &ly->o, &L->res2, &L->att));
    EFF__TRY(eff_residual_forward(ctx, &L->res2, &L->res2, &L->res));
    EFF__TRY(eff__norm_fwd(ctx, m, &L->ln2, &L->ln2_mean, &L->ln2_rstd, &L->res2, &ly->ln2_w, gpt2 ? &ly->ln2_b : NULL));
    if (c->n_experts) EFF__TRY(eff__moe_forward(ctx, m, l, out));
    else EFF__TRY(eff__ffn_forward(ctx, m, &ly->ffn, out, &L->ln2, &L->h, &L->u, &L->a));
    return eff_residual_forward(ctx, out, out, &L->res2);
}

/* Shared by eff_model_forward (cache == NULL) and eff_model_step. */
static eff_status eff__model_run(eff_ctx *ctx, eff_model *m, const char *fn, const int32_t *tokens, const int32_t *targets, int64_t B,
                                 int64_t T, eff_attn_cache *cache, const int64_t *seqs, const int64_t *pos) {
    const eff_model_config *c = &m->cfg;
    eff_model_acts *A;
    int64_t l, i;
    EFF__CHECK(ctx, B > 0 && T > 0, EFF_ERR_SHAPE, "%s: B = %lld and T = %lld must be positive", fn, (long long)B, (long long)T);
    for (i = 0; i < (pos ? B : 1); i++)
        EFF__CHECK(ctx, (pos ? pos[i] : 0) + T <= c->max_seq, EFF_ERR_SHAPE, "%s: positions up to %lld exceed max_seq %lld", fn,
                   (long long)((pos ? pos[i] : 0) + T), (long long)c->max_seq);
    for (i = 0; i < B * T; i++) {
        EFF__CHECK(ctx, tokens[i] >= 0 && tokens[i] < c->vocab_size, EFF_ERR_INVALID_ARG,
                   "%s: tokens[%lld] = %d outside the vocabulary of %lld", fn, (long long)i, (int)tokens[i], (long long)c->vocab_size);
        EFF__CHECK(ctx, !targets || targets[i] == -100 || (targets[i] >= 0 && targets[i] < c->vocab_size), EFF_ERR_INVALID_ARG,
                   "%s: targets[%lld] = %d is neither -100 nor in the vocabulary", fn, (long long)i, (int)targets[i]);
    }
    EFF__TRY(eff__acts_ensure(ctx, m, B, T));
    A = &m->acts;
    A->dropless = cache != NULL;
    memcpy(A->tokens.data, tokens, (size_t)(B * T) * sizeof(int32_t));
    A->has_targets = targets != NULL;
    if (targets) memcpy(A->targets.data, targets, (size_t)(B * T) * sizeof(int32_t));
    EFF__TRY(eff_embedding_forward(ctx, &A->layers[0].res, &A->tokens, &m->tok_emb));
    if (m->prompt.data && !cache) {   /* prompt tuning: the first P embeddings of each sequence are the prompt */
        int64_t P = m->prompt.ne[0], b;
        EFF__CHECK(ctx, m->prompt.ndim == 2 && m->prompt.ne[1] == c->dim && P <= T, EFF_ERR_SHAPE,
                   "%s: prompt must be [P <= T = %lld, %lld]", fn, (long long)T, (long long)c->dim);
        for (b = 0; b < B; b++)
            memcpy((float *)A->layers[0].res.data + b * T * c->dim, m->prompt.data, (size_t)(P * c->dim) * sizeof(float));
    }
    if (c->arch == EFF_MODEL_GPT2) {
        for (i = 0; i < (pos ? B : 1); i++) {
            eff_tensor pe, res = A->layers[0].res;
            EFF__TRY(eff_tensor_slice(ctx, &pe, &m->pos_emb, 0, pos ? pos[i] : 0, T));
            if (pos) EFF__TRY(eff_tensor_slice(ctx, &res, &A->layers[0].res, 0, i, 1));
            EFF__TRY(eff_add_forward(ctx, &res, &res, &pe));
        }
    }
    if (c->arch != EFF_MODEL_GPT2) {   /* RoPE angles once per call, not once per layer */
        eff_rope_opts ro = eff__rope_opts(m, 0);
        for (i = 0; i < (pos ? B : 1); i++)
            EFF__TRY(eff_rope_table(ctx, (float *)A->rope.data + i * T * c->head_dim, pos ? pos[i] : 0, T, c->head_dim, &ro));
        A->rope_pos0 = pos ? pos[0] : 0;
    }
    for (l = 0; l < c->n_layers; l++)
        EFF__TRY(eff__layer_forward(ctx, m, l, l + 1 < c->n_layers ? &A->layers[l + 1].res : &A->res_out, cache, seqs, pos));
    EFF__TRY(eff__norm_fwd(ctx, m, &A->lnf, &A->lnf_mean, &A->lnf_rstd, &A->res_out, &m->lnf_w, c->arch == EFF_MODEL_GPT2 ? &m->lnf_b : NULL));
    EFF__TRY(eff_model_linear_forward(ctx, &m->head, &A->logits, &A->lnf));
    A->loss = A->ce_loss = 0.0f;
    if (targets) {
        eff_tensor lg = eff_tensor_2d(A->logits.data, EFF_F32, B * T, c->vocab_size), tg = eff_tensor_1d(A->targets.data, EFF_I32, B * T);
        EFF__TRY(eff_cross_entropy_forward(ctx, NULL, &A->ce_loss, &lg, &tg, NULL));
        A->loss = A->ce_loss;
        for (l = 0; l < c->n_layers && c->n_experts; l++) A->loss += c->aux_loss_coef * A->layers[l].aux;
    }
    return EFF_OK;
}

EFFDEF eff_status eff_model_forward(eff_ctx *ctx, eff_model *m, const int32_t *tokens, const int32_t *targets, int64_t B, int64_t T,
                                    float *loss) {
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, tokens);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_model_forward: model is not built");
    EFF__TRY(eff__model_run(ctx, m, "eff_model_forward", tokens, targets, B, T, NULL, NULL, NULL));
    if (loss) *loss = m->acts.loss;
    return EFF_OK;
}

EFFDEF eff_status eff_model_cache_create(eff_ctx *ctx, const eff_model *m, eff_attn_cache *cache, const eff_attn_cache_opts *opts) {
    eff_attn_cache_opts o;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, cache);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    o.n_layers = m->cfg.n_layers; o.n_kv_heads = m->cfg.n_kv_heads; o.head_dim = m->cfg.head_dim;
    if (o.max_tokens == 0 && o.window == 0) o.max_tokens = m->cfg.max_seq;
    return eff_attn_cache_create(ctx, cache, &o);
}

EFFDEF eff_status eff_model_step(eff_ctx *ctx, eff_model *m, eff_attn_cache *cache, const int64_t *seqs, int64_t B, const int32_t *tokens,
                                 int64_t n, float *logits) {
    int64_t *pos, b;
    eff_status s;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, cache);
    EFF__CHECK_PTR(ctx, seqs);
    EFF__CHECK_PTR(ctx, tokens);
    EFF__CHECK(ctx, m->params != NULL, EFF_ERR_INVALID_ARG, "eff_model_step: model is not built");
    EFF__CHECK(ctx, cache->opts.n_layers == m->cfg.n_layers && cache->opts.n_kv_heads == m->cfg.n_kv_heads &&
               cache->opts.head_dim == m->cfg.head_dim, EFF_ERR_SHAPE, "eff_model_step: the cache was made for another model shape");
    EFF__CHECK(ctx, B > 0 && n > 0, EFF_ERR_SHAPE, "eff_model_step: B = %lld and n = %lld must be positive", (long long)B, (long long)n);
    pos = (int64_t *)eff_ctx_alloc(ctx, (size_t)B * sizeof(int64_t));
    if (!pos) return EFF_ERR_OOM;
    for (b = 0; b < B; b++) {
        if (seqs[b] < 0 || seqs[b] >= cache->opts.max_seqs) {
            eff_ctx_free(ctx, pos);
            return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_model_step: seqs[%lld] = %lld outside the cache's %lld sequences", (long long)b,
                                 (long long)seqs[b], (long long)cache->opts.max_seqs);
        }
        pos[b] = cache->len[seqs[b] * cache->opts.n_layers];   /* layer 0's count = the next position */
    }
    s = eff__model_run(ctx, m, "eff_model_step", tokens, NULL, B, n, cache, seqs, pos);
    eff_ctx_free(ctx, pos);
    if (s == EFF_OK && logits) memcpy(logits, m->acts.logits.data, (size_t)(B * n * m->cfg.vocab_size) * sizeof(float));
    return s;
}

static eff_status eff__quantize_tensor(eff_ctx *ctx, eff_tensor *W, int dtype, unsigned char **store) {
    const eff_dtype_traits *tr = eff_ctx_dtype(ctx, dtype);
    int64_t rows = W->ne[0], cols = W->ne[1], rb = eff_dtype_row_bytes(dtype, cols), r;
    float *tmp;
    EFF__CHECK(ctx, W->dtype == EFF_F32, EFF_ERR_DTYPE, "eff_model_quantize: weights are already %s", eff_dtype_name(W->dtype));
    EFF__CHECK(ctx, rb > 0, EFF_ERR_SHAPE, "eff_model_quantize: rows of %lld do not divide into %s blocks", (long long)cols, tr->name);
    tmp = (float *)W->data;
    for (r = 0; r < rows; r++) tr->from_float(tmp + r * cols, *store + r * rb, cols);
    W->data = *store;
    W->dtype = dtype;
    W->nb[1] = (int64_t)tr->type_size;
    W->nb[0] = rb;
    *store += rows * rb;
    return EFF_OK;
}

EFFDEF eff_status eff_model_quantize(eff_ctx *ctx, eff_model *m, int dtype) {
    const eff_dtype_traits *tr;
    int64_t i, total = 0;
    unsigned char *store, *base;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, m);
    tr = eff_ctx_dtype(ctx, dtype);
    EFF__CHECK(ctx, tr && tr->from_float && tr->to_float, EFF_ERR_DTYPE, "eff_model_quantize: dtype %d has no conversion%s", dtype,
               tr && tr->is_quantized ? " (call eff_quant_register(ctx) first)" : "");
    EFF__CHECK(ctx, !m->linear_store, EFF_ERR_INVALID_ARG, "eff_model_quantize: the model is already quantized");
    for (i = 0; i < m->n_params; i++) {   /* 2-D weights: every linear and the embedding */
        const eff_tensor *w = m->params[i].w;
        int64_t rb;
        if (w->ndim != 2 || strcmp(m->params[i].name, "pos_emb") == 0) continue;
        rb = eff_dtype_row_bytes(dtype, w->ne[1]);
        EFF__CHECK(ctx, rb > 0, EFF_ERR_SHAPE, "eff_model_quantize: %s rows of %lld are not whole %s blocks of %lld", m->params[i].name,
                   (long long)w->ne[1], tr->name, (long long)tr->blck_size);
        total += w->ne[0] * rb + 64;
    }
    base = store = (unsigned char *)eff_ctx_alloc(ctx, (size_t)total);
    if (!store) return EFF_ERR_OOM;
    for (i = 0; s == EFF_OK && i < m->n_params; i++) {
        eff_tensor *w = m->params[i].w;
        if (w->ndim != 2 || strcmp(m->params[i].name, "pos_emb") == 0) continue;
        s = eff__quantize_tensor(ctx, w, dtype, &store);
        store = base + ((store - base + 63) & ~(int64_t)63);
    }
    if (s != EFF_OK) { eff_ctx_free(ctx, base); return s; }
    m->linear_store = base;
    if (m->cfg.tie_embeddings) m->head.W = m->tok_emb;
    /* quantized weights are frozen */
    {
        int64_t l, e;
        for (l = 0; l < m->cfg.n_layers; l++) {
            eff_model_layer *ly = &m->layers[l];
            ly->q.frozen = ly->k.frozen = ly->v.frozen = ly->o.frozen = 1;
            ly->ffn.gate.frozen = ly->ffn.up.frozen = ly->ffn.down.frozen = ly->router.frozen = 1;
            for (e = 0; e < m->cfg.n_experts; e++) ly->experts[e].gate.frozen = ly->experts[e].up.frozen = ly->experts[e].down.frozen = 1;
        }
        m->head.frozen = 1;
    }
    return EFF_OK;
}

EFFDEF int64_t eff_model_weight_bytes(const eff_model *m) {
    int64_t i, total = 0;
    if (!m) return 0;
    for (i = 0; i < m->n_params; i++) {
        const eff_tensor *w = m->params[i].w;
        if (strcmp(m->params[i].name, "tok_emb") == 0 || strcmp(m->params[i].name, "pos_emb") == 0)
            total += eff_dtype_row_bytes(w->dtype, w->ne[w->ndim - 1]);   /* one row per token */
        else
            total += eff_tensor_nbytes(w);
    }
    if (m->cfg.tie_embeddings) total += eff_tensor_nbytes(&m->tok_emb);   /* the head reads the whole table */
    return total;
}

/* ---------------------------------------------------------------------------
   Backward: the forward in reverse; dres carries the residual stream's gradient.
   --------------------------------------------------------------------------- */
/* dx (=) of a sum of linears reading the same x: the first writes, the rest add via tmp. */
static eff_status eff__lin_bwd_acc(eff_ctx *ctx, eff_model_linear *l, eff_tensor *dx, eff_tensor *tmp, const eff_tensor *dy,
                                   const eff_tensor *x, int first) {
    if (first) return eff_model_linear_backward(ctx, l, dx, dy, x);
    EFF__TRY(eff_model_linear_backward(ctx, l, tmp, dy, x));
    return eff_residual_backward(ctx, dx, NULL, tmp);
}

static eff_status eff__layer_backward(eff_ctx *ctx, eff_model *m, int64_t l) {
    const eff_model_config *c = &m->cfg;
    eff_model_layer *ly = &m->layers[l];
    eff_model_layer_acts *L = &m->acts.layers[l];
    eff_model_acts *A = &m->acts;
    int gpt2 = c->arch == EFF_MODEL_GPT2;
    eff_tensor Q, K, V, O, dQ, dK, dV, dO;
    eff_attn_opts ao = eff__attn_opts(m);
    /* FFN: out = res2 + ffn(ln2(res2)); dres is d out */
    if (c->n_experts) EFF__TRY(eff__moe_backward(ctx, m, l, &A->dln, &A->dres));
    else EFF__TRY(eff__ffn_backward(ctx, m, &ly->ffn, &A->dln, &A->dres, &L->ln2, &L->h, &L->u, &L->a, &A->da, &A->dh, &A->du, &A->dtmp));
    EFF__TRY(eff__norm_bwd(ctx, m, &A->dtmp, &ly->d_ln2_w, &ly->d_ln2_b, &A->dln, &L->res2, &ly->ln2_w, &L->ln2_mean, &L->ln2_rstd));
    EFF__TRY(eff_residual_backward(ctx, &A->dres, NULL, &A->dtmp));     /* dres is now d res2 */
    /* attention: res2 = res + o(att) */
    EFF__TRY(eff_model_linear_backward(ctx, &ly->o, &A->datt, &A->dres, &L->att));
    Q = eff__bhtd(&L->q, c->n_heads, c->head_dim);
    K = eff__bhtd(&L->k, c->n_kv_heads, c->head_dim);
    V = eff__bhtd(&L->v, c->n_kv_heads, c->head_dim);
    O = eff__bhtd(&L->att, c->n_heads, c->head_dim);
    dQ = eff__bhtd(&A->dq, c->n_heads, c->head_dim);
    dK = eff__bhtd(&A->dk, c->n_kv_heads, c->head_dim);
    dV = eff__bhtd(&A->dv, c->n_kv_heads, c->head_dim);
    dO = eff__bhtd(&A->datt, c->n_heads, c->head_dim);
    if (ly->prefix_k.data) {
        K = eff__bhtd(&L->kp, c->n_kv_heads, c->head_dim); V = eff__bhtd(&L->vp, c->n_kv_heads, c->head_dim);
        dK = eff__bhtd(&A->dkp, c->n_kv_heads, c->head_dim); dV = eff__bhtd(&A->dvp, c->n_kv_heads, c->head_dim);
    }
    if (m->attn_impl == EFF_ATTN_IMPL_REF) EFF__TRY(eff_attn_ref_backward(ctx, &dQ, &dK, &dV, &dO, &Q, &K, &V, &ao));
    else EFF__TRY(eff_attn_flash_backward(ctx, &dQ, &dK, &dV, &dO, &Q, &K, &V, &O, &L->lse, &ao));
    if (ly->prefix_k.data) {   /* split [prefix; sequence] gradients: the prefix sums over the batch */
        int64_t P = ly->prefix_k.ne[0], T = A->T, kvd = c->n_kv_heads * c->head_dim, b, j;
        for (b = 0; b < A->B; b++) {
            const float *gk = (const float *)A->dkp.data + b * (P + T) * kvd, *gv = (const float *)A->dvp.data + b * (P + T) * kvd;
            memcpy((float *)A->dk.data + b * T * kvd, gk + P * kvd, (size_t)(T * kvd) * sizeof(float));
            memcpy((float *)A->dv.data + b * T * kvd, gv + P * kvd, (size_t)(T * kvd) * sizeof(float));
            for (j = 0; j < P * kvd; j++) {
                if (ly->d_prefix_k.data) ((float *)ly->d_prefix_k.data)[j] += gk[j];
                if (ly->d_prefix_v.data) ((float *)ly->d_prefix_v.data)[j] += gv[j];
            }
        }
    }
    if (!gpt2) {
        eff_rope_opts ro = eff__rope_opts(m, 0);
        eff_tensor dq4 = eff__heads(&A->dq, c->n_heads, c->head_dim), dk4 = eff__heads(&A->dk, c->n_kv_heads, c->head_dim);
        ro.cs = (const float *)A->rope.data; ro.cs_pos0 = A->rope_pos0; ro.cs_len = A->T;
        EFF__TRY(eff_rope_backward(ctx, &dq4, &dq4, &ro));
        EFF__TRY(eff_rope_backward(ctx, &dk4, &dk4, &ro));
    }
    EFF__TRY(eff__lin_bwd_acc(ctx, &ly->q, &A->dln, &A->dtmp, &A->dq, &L->ln1, 1));
    EFF__TRY(eff__lin_bwd_acc(ctx, &ly->k, &A->dln, &A->dtmp, &A->dk, &L->ln1, 0));
    EFF__TRY(eff__lin_bwd_acc(ctx, &ly->v, &A->dln, &A->dtmp, &A->dv, &L->ln1, 0));
    EFF__TRY(eff__norm_bwd(ctx, m, &A->dtmp, &ly->d_ln1_w, &ly->d_ln1_b, &A->dln, &L->res, &ly->ln1_w, &L->ln1_mean, &L->ln1_rstd));
    return eff_residual_backward(ctx, &A->dres, NULL, &A->dtmp);        /* dres is now d res */
}

EFFDEF eff_status eff_model_backward(eff_ctx *ctx, eff_model *m) {
    const eff_model_config *c;
    eff_model_acts *A;
    int64_t l, BT;
    EFF__CHECK_PTR(ctx, m);
    A = &m->acts;
    c = &m->cfg;
    EFF__CHECK(ctx, A->arena.base && A->has_targets, EFF_ERR_INVALID_ARG, "eff_model_backward: run eff_model_forward with targets first");
    EFF__CHECK(ctx, m->grads.base != NULL || m->frozen, EFF_ERR_INVALID_ARG, "eff_model_backward: call eff_model_alloc_grads first");
    BT = A->B * A->T;
    {
        eff_tensor lg = eff_tensor_2d(A->logits.data, EFF_F32, BT, c->vocab_size), dlg = eff_tensor_2d(A->dlogits.data, EFF_F32, BT, c->vocab_size);
        eff_tensor tg = eff_tensor_1d(A->targets.data, EFF_I32, BT);
        EFF__TRY(eff_cross_entropy_backward(ctx, &dlg, &lg, &tg, 0.0f, NULL));
        if (m->on_dlogits) EFF__TRY(m->on_dlogits(ctx, m, &A->dlogits, m->on_dlogits_user));
        if (m->loss_scale != 0.0f && m->loss_scale != 1.0f) {
            float *g = (float *)A->dlogits.data;
            int64_t j, nl = BT * c->vocab_size;
            for (j = 0; j < nl; j++) g[j] *= m->loss_scale;
        }
    }
    EFF__TRY(eff_model_linear_backward(ctx, &m->head, &A->dln, &A->dlogits, &A->lnf));
    EFF__TRY(eff__norm_bwd(ctx, m, &A->dres, &m->d_lnf_w, &m->d_lnf_b, &A->dln, &A->res_out, &m->lnf_w, &A->lnf_mean, &A->lnf_rstd));
    if (m->on_grads) EFF__TRY(m->on_grads(ctx, m, c->n_layers, m->on_grads_user));
    for (l = c->n_layers - 1; l >= 0; l--) {
        if (m->checkpoint && l + 1 < c->n_layers)   /* recompute this block's activations (the top block's are still there) */
            EFF__TRY(eff__layer_forward(ctx, m, l, l + 1 < c->n_layers ? &A->layers[l + 1].res : &A->res_out, NULL, NULL, NULL));
        if (m->layerwise_grads) {   /* the shared buffer holds the previous layer's (consumed) gradients */
            int64_t first, last, i;
            eff_model_layer_params(m, l, &first, &last);
            for (i = first; i < last; i++) memset(m->params[i].g->data, 0, (size_t)eff_tensor_nbytes(m->params[i].g));
        }
        EFF__TRY(eff__layer_backward(ctx, m, l));
        if (m->on_grads) EFF__TRY(m->on_grads(ctx, m, l, m->on_grads_user));
    }
    if (c->arch == EFF_MODEL_GPT2 && m->d_pos_emb.data) {
        int64_t b, t, j;
        for (b = 0; b < A->B; b++)
            for (t = 0; t < A->T; t++) {
                const float *g = (const float *)A->dres.data + (b * A->T + t) * c->dim;
                float *d = (float *)m->d_pos_emb.data + t * c->dim;
                for (j = 0; j < c->dim; j++) d[j] += g[j];
            }
    }
    if (m->prompt.data) {   /* prompt rows: their gradient goes to the prompt, not to the placeholder tokens */
        int64_t P = m->prompt.ne[0], b, j;
        for (b = 0; b < A->B; b++) {
            float *g = (float *)A->dres.data + b * A->T * c->dim;
            if (m->d_prompt.data)
                for (j = 0; j < P * c->dim; j++) ((float *)m->d_prompt.data)[j] += g[j];
            memset(g, 0, (size_t)(P * c->dim) * sizeof(float));
        }
    }
    if (m->d_tok_emb.data) EFF__TRY(eff_embedding_backward(ctx, &m->d_tok_emb, &A->dres, &A->tokens));
    if (m->on_grads) EFF__TRY(m->on_grads(ctx, m, -1, m->on_grads_user));
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   HF checkpoints. Each HF tensor is the concatenation (along rows) of up to three
   eff tensors, stored transposed for GPT-2's Conv1D layers.
   --------------------------------------------------------------------------- */
typedef struct { const eff_tensor *w[3]; const eff_tensor *g[3]; int n; int transpose; } eff__hf_map;

static void eff__hf_set(eff__hf_map *mp, int transpose, const eff_tensor *w0, const eff_tensor *g0, const eff_tensor *w1,
                        const eff_tensor *g1, const eff_tensor *w2, const eff_tensor *g2) {
    mp->w[0] = w0; mp->g[0] = g0; mp->w[1] = w1; mp->g[1] = g1; mp->w[2] = w2; mp->g[2] = g2;
    mp->n = w2 ? 3 : w1 ? 2 : 1;
    mp->transpose = transpose;
}

/* The i-th HF tensor: its name and where its values live. 0 when i is past the end. */
static int eff__hf_entry(const eff_model *m, int64_t i, char *name, size_t size, eff__hf_map *mp) {
    const eff_model_config *c = &m->cfg;
    int64_t per, l, k;
    const eff_model_layer *ly;
    if (i < 0) return 0;
    if (c->arch == EFF_MODEL_GPT2) {
        per = 12;
        if (i == 0) { snprintf(name, size, "transformer.wte.weight"); eff__hf_set(mp, 0, &m->tok_emb, &m->d_tok_emb, 0, 0, 0, 0); return 1; }
        if (i == 1) { snprintf(name, size, "transformer.wpe.weight"); eff__hf_set(mp, 0, &m->pos_emb, &m->d_pos_emb, 0, 0, 0, 0); return 1; }
        i -= 2;
        if (i < c->n_layers * per) {
            static const char *nm[12] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                                         "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                                         "mlp.c_proj.weight", "mlp.c_proj.bias"};
            l = i / per; k = i % per; ly = &m->layers[l];
            snprintf(name, size, "transformer.h.%lld.%s", (long long)l, nm[k]);
            switch (k) {
            case 0: eff__hf_set(mp, 0, &ly->ln1_w, &ly->d_ln1_w, 0, 0, 0, 0); break;
            case 1: eff__hf_set(mp, 0, &ly->ln1_b, &ly->d_ln1_b, 0, 0, 0, 0); break;
            case 2: eff__hf_set(mp, 1, &ly->q.W, &ly->q.dW, &ly->k.W, &ly->k.dW, &ly->v.W, &ly->v.dW); break;
            case 3: eff__hf_set(mp, 0, &ly->q.b, &ly->q.db, &ly->k.b, &ly->k.db, &ly->v.b, &ly->v.db); break;
            case 4: eff__hf_set(mp, 1, &ly->o.W, &ly->o.dW, 0, 0, 0, 0); break;
            case 5: eff__hf_set(mp, 0, &ly->o.b, &ly->o.db, 0, 0, 0, 0); break;
            case 6: eff__hf_set(mp, 0, &ly->ln2_w, &ly->d_ln2_w, 0, 0, 0, 0); break;
            case 7: eff__hf_set(mp, 0, &ly->ln2_b, &ly->d_ln2_b, 0, 0, 0, 0); break;
            case 8: eff__hf_set(mp, 1, &ly->ffn.up.W, &ly->ffn.up.dW, 0, 0, 0, 0); break;
            case 9: eff__hf_set(mp, 0, &ly->ffn.up.b, &ly->ffn.up.db, 0, 0, 0, 0); break;
            case 10: eff__hf_set(mp, 1, &ly->ffn.down.W, &ly->ffn.down.dW, 0, 0, 0, 0); break;
            default: eff__hf_set(mp, 0, &ly->ffn.down.b, &ly->ffn.down.db, 0, 0, 0, 0); break;
            }
            return 1;
        }
        i -= c->n_layers * per;
        if (i == 0) { snprintf(name, size, "transformer.ln_f.weight"); eff__hf_set(mp, 0, &m->lnf_w, &m->d_lnf_w, 0, 0, 0, 0); return 1; }
        if (i == 1) { snprintf(name, size, "transformer.ln_f.bias"); eff__hf_set(mp, 0, &m->lnf_b, &m->d_lnf_b, 0, 0, 0, 0); return 1; }
        i -= 2;
    } else {
        per = c->n_experts ? 7 + 3 * c->n_experts : 9;
        if (i == 0) { snprintf(name, size, "model.embed_tokens.weight"); eff__hf_set(mp, 0, &m->tok_emb, &m->d_tok_emb, 0, 0, 0, 0); return 1; }
        i -= 1;
        if (i < c->n_layers * per) {
            l = i / per; k = i % per; ly = &m->layers[l];
            if (k == 0) { snprintf(name, size, "model.layers.%lld.input_layernorm.weight", (long long)l); eff__hf_set(mp, 0, &ly->ln1_w, &ly->d_ln1_w, 0, 0, 0, 0); }
            else if (k <= 4) {
                const eff_model_linear *lin = k == 1 ? &ly->q : k == 2 ? &ly->k : k == 3 ? &ly->v : &ly->o;
                snprintf(name, size, "model.layers.%lld.self_attn.%c_proj.weight", (long long)l, "qkvo"[k - 1]);
                eff__hf_set(mp, 0, &lin->W, &lin->dW, 0, 0, 0, 0);
            } else if (k == 5) { snprintf(name, size, "model.layers.%lld.post_attention_layernorm.weight", (long long)l); eff__hf_set(mp, 0, &ly->ln2_w, &ly->d_ln2_w, 0, 0, 0, 0); }
            else if (!c->n_experts) {
                const eff_model_linear *lin = k == 6 ? &ly->ffn.gate : k == 7 ? &ly->ffn.up : &ly->ffn.down;
                snprintf(name, size, "model.layers.%lld.mlp.%s_proj.weight", (long long)l, k == 6 ? "gate" : k == 7 ? "up" : "down");
                eff__hf_set(mp, 0, &lin->W, &lin->dW, 0, 0, 0, 0);
            } else if (k == 6) {   /* Mixtral names: gate = router, experts w1 (gate), w2 (down), w3 (up) */
                snprintf(name, size, "model.layers.%lld.block_sparse_moe.gate.weight", (long long)l);
                eff__hf_set(mp, 0, &ly->router.W, &ly->router.dW, 0, 0, 0, 0);
            } else {
                int64_t e = (k - 7) / 3, w = (k - 7) % 3;
                const eff_model_linear *lin = w == 0 ? &ly->experts[e].gate : w == 1 ? &ly->experts[e].down : &ly->experts[e].up;
                snprintf(name, size, "model.layers.%lld.block_sparse_moe.experts.%lld.w%d.weight", (long long)l, (long long)e, (int)w + 1);
                eff__hf_set(mp, 0, &lin->W, &lin->dW, 0, 0, 0, 0);
            }
            return 1;
        }
        i -= c->n_layers * per;
        if (i == 0) { snprintf(name, size, "model.norm.weight"); eff__hf_set(mp, 0, &m->lnf_w, &m->d_lnf_w, 0, 0, 0, 0); return 1; }
        i -= 1;
    }
    if (i == 0 && !c->tie_embeddings) { snprintf(name, size, "lm_head.weight"); eff__hf_set(mp, 0, &m->head.W, &m->head.dW, 0, 0, 0, 0); return 1; }
    return 0;
}

EFFDEF eff_status eff_model_hf_names(const eff_model *m, int64_t i, char *name, size_t size) {
    eff__hf_map mp;
    char tmp[128];
    if (!m || !m->params) return EFF_ERR_INVALID_ARG;
    if (!eff__hf_entry(m, i, tmp, sizeof tmp, &mp)) return EFF_ERR_NOT_FOUND;
    if (name && size) snprintf(name, size, "%s", tmp);
    return EFF_OK;
}

/* HF shape of a map: [sum rows, cols], transposed for Conv1D; 1-D for vectors. */
static int eff__hf_shape(const eff__hf_map *mp, int64_t ne[2]) {
    int p, nd = mp->w[0]->ndim;
    int64_t rows = 0;
    for (p = 0; p < mp->n; p++) rows += mp->w[p]->ne[0];
    if (nd == 1) { ne[0] = rows; ne[1] = 1; return 1; }
    if (mp->transpose) { ne[0] = mp->w[0]->ne[1]; ne[1] = rows; } else { ne[0] = rows; ne[1] = mp->w[0]->ne[1]; }
    return 2;
}

/* Copies between the eff tensors of a map and one HF-layout f32 buffer. */
static eff_status eff__hf_copy(eff_ctx *ctx, const eff__hf_map *mp, int grads, float *hf, int to_hf) {
    int64_t ne[2], off = 0, r, col, total_rows;
    int p, nd = eff__hf_shape(mp, ne);
    total_rows = mp->transpose ? ne[1] : ne[0];
    for (p = 0; p < mp->n; p++) {
        const eff_tensor *t = grads ? mp->g[p] : mp->w[p];
        int64_t rows = mp->w[p]->ne[0], cols = nd == 1 ? 1 : mp->w[p]->ne[1];
        const eff_dtype_traits *tr;
        float *row;
        EFF__CHECK(ctx, t && t->data, EFF_ERR_INVALID_ARG, "HF copy: %s are not allocated", grads ? "gradients" : "weights");
        tr = eff_ctx_dtype(ctx, t->dtype);
        EFF__CHECK(ctx, tr && (to_hf ? tr->to_float != NULL : tr->from_float != NULL), EFF_ERR_DTYPE,
                   "HF copy: no conversion for dtype %s", tr ? tr->name : "?");
        row = (float *)eff_ctx_alloc(ctx, (size_t)cols * sizeof(float));
        if (!row) return EFF_ERR_OOM;
        for (r = 0; r < rows; r++) {
            char *tr_row = (char *)t->data + (nd == 1 ? r * t->nb[0] : r * t->nb[0]);
            if (to_hf) {
                if (nd == 1) tr->to_float(tr_row, row, 1); else tr->to_float(tr_row, row, cols);
                for (col = 0; col < cols; col++) {
                    if (nd == 1) hf[off + r] = row[0];
                    else if (mp->transpose) hf[col * total_rows + off + r] = row[col];
                    else hf[(off + r) * cols + col] = row[col];
                }
            } else {
                for (col = 0; col < cols; col++) {
                    if (nd == 1) row[0] = hf[off + r];
                    else if (mp->transpose) row[col] = hf[col * total_rows + off + r];
                    else row[col] = hf[(off + r) * cols + col];
                }
                tr->from_float(row, tr_row, nd == 1 ? 1 : cols);
            }
        }
        eff_ctx_free(ctx, row);
        off += rows;
    }
    return EFF_OK;
}

static eff_status eff__hf_find(const eff_model *m, const char *hf_name, eff__hf_map *mp) {
    int64_t i;
    char nm[128];
    for (i = 0; eff__hf_entry(m, i, nm, sizeof nm, mp); i++)
        if (strcmp(nm, hf_name) == 0) return EFF_OK;
    return EFF_ERR_NOT_FOUND;
}

EFFDEF eff_status eff_model_export_hf_tensor(eff_ctx *ctx, const eff_model *m, const char *hf_name, int grads, float *out, int64_t *n) {
    eff__hf_map mp;
    int64_t ne[2];
    int nd;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, hf_name);
    if (eff__hf_find(m, hf_name, &mp) != EFF_OK) return eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "eff_model_export_hf_tensor: no tensor '%s'", hf_name);
    nd = eff__hf_shape(&mp, ne);
    if (n) *n = nd == 1 ? ne[0] : ne[0] * ne[1];
    if (!out) return EFF_OK;
    return eff__hf_copy(ctx, &mp, grads, out, 1);
}

static eff_status eff__read_text(eff_ctx *ctx, const char *dir, const char *file, eff_file_map *fm, char *path, size_t psize) {
    snprintf(path, psize, "%s/%s", dir, file);
    return eff_file_map_open(ctx, path, fm);
}

EFFDEF eff_status eff_model_config_from_hf(eff_ctx *ctx, eff_model_config *c, const char *text, int64_t len) {
    eff_json js;
    const eff_json_node *r, *rp;
    const char *mt, *act;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, c);
    EFF__TRY(eff_json_parse(ctx, &js, text, len, 0));
    r = eff_json_root(&js);
    memset(c, 0, sizeof *c);
    mt = r && r->type == EFF_JSON_OBJECT ? eff_json_get_string(&js, r, "model_type", NULL) : NULL;
    if (!mt) s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "config.json: no \"model_type\"");
    else if (strcmp(mt, "gpt2") == 0) {
        c->arch = EFF_MODEL_GPT2;
        c->vocab_size = eff_json_get_int(&js, r, "vocab_size", 0);
        c->max_seq = eff_json_get_int(&js, r, "n_positions", 1024);
        c->dim = eff_json_get_int(&js, r, "n_embd", 0);
        c->n_layers = eff_json_get_int(&js, r, "n_layer", 0);
        c->n_heads = eff_json_get_int(&js, r, "n_head", 0);
        c->hidden_dim = eff_json_get_int(&js, r, "n_inner", 0);
        c->norm_eps = (float)eff_json_get_number(&js, r, "layer_norm_epsilon", 1e-5);
        c->tie_embeddings = eff_json_get_bool(&js, r, "tie_word_embeddings", 1);
        act = eff_json_get_string(&js, r, "activation_function", "gelu_new");
        if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "config.json: activation_function \"%s\" (eff implements the tanh GELU)", act);
    } else if (strcmp(mt, "llama") == 0 || strcmp(mt, "mixtral") == 0) {
        c->arch = EFF_MODEL_LLAMA;
        c->vocab_size = eff_json_get_int(&js, r, "vocab_size", 0);
        c->max_seq = eff_json_get_int(&js, r, "max_position_embeddings", 2048);
        c->dim = eff_json_get_int(&js, r, "hidden_size", 0);
        c->n_layers = eff_json_get_int(&js, r, "num_hidden_layers", 0);
        c->n_heads = eff_json_get_int(&js, r, "num_attention_heads", 0);
        c->n_kv_heads = eff_json_get_int(&js, r, "num_key_value_heads", 0);
        c->head_dim = eff_json_get_int(&js, r, "head_dim", 0);
        c->hidden_dim = eff_json_get_int(&js, r, "intermediate_size", 0);
        c->norm_eps = (float)eff_json_get_number(&js, r, "rms_norm_eps", 1e-6);
        rp = eff_json_get(&js, r, "rope_parameters");
        if (!rp) rp = eff_json_get(&js, r, "rope_scaling");
        c->rope_theta = (float)eff_json_get_number(&js, r, "rope_theta", rp ? eff_json_get_number(&js, rp, "rope_theta", 10000.0) : 10000.0);
        c->rope_mode = EFF_ROPE_NEOX;
        c->tie_embeddings = eff_json_get_bool(&js, r, "tie_word_embeddings", 0);
        c->n_experts = eff_json_get_int(&js, r, "num_local_experts", 0);
        c->top_k = eff_json_get_int(&js, r, "num_experts_per_tok", c->n_experts ? 2 : 0);
        c->aux_loss_coef = (float)eff_json_get_number(&js, r, "router_aux_loss_coef", 0.0);
        c->capacity_factor = (float)eff_json_get_number(&js, r, "capacity_factor", 0.0);   /* eff's own key; Mixtral is dropless */
        if (rp && eff_json_get_string(&js, rp, "rope_type", "default") && strcmp(eff_json_get_string(&js, rp, "rope_type", "default"), "default") != 0)
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "config.json: rope_type \"%s\" is not implemented", eff_json_get_string(&js, rp, "rope_type", ""));
        if (eff_json_get_bool(&js, r, "attention_bias", 0) || eff_json_get_bool(&js, r, "mlp_bias", 0))
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "config.json: Llama with biases is not implemented");
        act = eff_json_get_string(&js, r, "hidden_act", "silu");
        if (strcmp(act, "silu") != 0) s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "config.json: hidden_act \"%s\" (eff implements SiLU)", act);
    } else {
        s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "config.json: model_type \"%s\" (eff knows gpt2, llama, mixtral)", mt);
    }
    eff_json_free(ctx, &js);
    if (s == EFF_OK) s = eff_model_config_check(ctx, c);
    return s;
}

static int eff__hf_ignorable(const char *name) {
    return eff__ends_with(name, ".attn.bias") || eff__ends_with(name, ".attn.masked_bias") || eff__ends_with(name, "rotary_emb.inv_freq");
}

EFFDEF eff_status eff_model_load_hf(eff_ctx *ctx, eff_model *m, const char *dir) {
    eff_file_map fm;
    eff_safetensors st;
    eff_model_config c;
    char path[1024], nm[160];
    eff__hf_map mp;
    eff_status s;
    int64_t i, matched = 0;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, dir);
    memset(m, 0, sizeof *m);
    EFF__TRY(eff__read_text(ctx, dir, "config.json", &fm, path, sizeof path));
    s = eff_model_config_from_hf(ctx, &c, (const char *)fm.data, fm.size);
    eff_file_map_close(ctx, &fm);
    EFF__TRY(s);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    EFF__TRY(eff_safetensors_open(ctx, &st, path));
    s = eff__model_build(ctx, m, &c, 0);
    for (i = 0; s == EFF_OK && eff__hf_entry(m, i, nm, sizeof nm, &mp); i++) {
        const eff_safetensors_entry *e = eff_safetensors_find(&st, nm);
        int64_t ne[2], n;
        int nd = eff__hf_shape(&mp, ne);
        float *buf;
        if (!e && strncmp(nm, "transformer.", 12) == 0) e = eff_safetensors_find(&st, nm + 12);   /* openai-community/gpt2 keys */
        if (!e) { s = eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "%s: missing tensor '%s' (config.json says %lld layers)", path, nm, (long long)c.n_layers); break; }
        if (e->tensor.ndim != nd || e->tensor.ne[0] != ne[0] || (nd == 2 && e->tensor.ne[1] != ne[1])) {
            s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: '%s' has shape [%lld%s%lld] but config.json implies [%lld%s%lld]", path, nm,
                              (long long)e->tensor.ne[0], e->tensor.ndim > 1 ? ", " : "", e->tensor.ndim > 1 ? (long long)e->tensor.ne[1] : 0LL,
                              (long long)ne[0], nd > 1 ? ", " : "", nd > 1 ? (long long)ne[1] : 0LL);
            if (e->tensor.ndim <= 1 && nd <= 1) { /* message already complete */ }
            break;
        }
        n = nd == 1 ? ne[0] : ne[0] * ne[1];
        buf = (float *)eff_ctx_alloc(ctx, (size_t)n * sizeof(float));
        if (!buf) { s = EFF_ERR_OOM; break; }
        {
            eff_tensor dst = eff_tensor_1d(buf, EFF_F32, n), src = e->tensor;
            eff_tensor flat;
            s = eff_tensor_reshape(ctx, &flat, &src, 1, &n);
            if (s == EFF_OK) s = eff_tensor_copy(ctx, &dst, &flat);
            if (s != EFF_OK) s = eff_ctx_error(ctx, s, "%s: cannot read '%s' (%s): %s", path, nm, eff_dtype_name(e->tensor.dtype), eff_ctx_last_error(ctx));
        }
        if (s == EFF_OK) s = eff__hf_copy(ctx, &mp, 0, buf, 0);
        eff_ctx_free(ctx, buf);
        matched++;
    }
    for (i = 0; s == EFF_OK && i < st.n_entries; i++) {   /* nothing unexpected may remain */
        const char *en = st.entries[i].name;
        char full[200];
        if (eff__hf_ignorable(en)) continue;
        if (eff__hf_find(m, en, &mp) == EFF_OK) continue;
        snprintf(full, sizeof full, "transformer.%s", en);
        if (m->cfg.arch == EFF_MODEL_GPT2 && eff__hf_find(m, full, &mp) == EFF_OK) continue;
        if (m->cfg.tie_embeddings && strcmp(en, "lm_head.weight") == 0) continue;   /* tied copy */
        s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: unexpected tensor '%s' for this config (%lld layers)", path, en, (long long)m->cfg.n_layers);
    }
    eff_safetensors_close(ctx, &st);
    if (s != EFF_OK) { eff_model_free(ctx, m); return s; }
    (void)matched;
    return EFF_OK;
}

EFFDEF eff_status eff_model_save_hf(eff_ctx *ctx, const eff_model *m, const char *dir) {
    const eff_model_config *c;
    eff_json_writer jw;
    eff_file_writer fw;
    eff_tensor *ts = NULL;
    char (*names)[128] = NULL;
    char path[1024];
    int64_t n = 0, i;
    eff__hf_map mp;
    eff_status s = EFF_OK;
    const char *txt;
    size_t tlen = 0;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, dir);
    c = &m->cfg;
#ifdef EFF__POSIX
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return eff_ctx_error(ctx, EFF_ERR_IO, "cannot create directory '%s': %s", dir, strerror(errno));
#endif
    eff_jsonw_init(ctx, &jw, 1);
    eff_jsonw_begin_object(&jw);
    if (c->arch == EFF_MODEL_GPT2) {
        eff_jsonw_key(&jw, "architectures"); eff_jsonw_begin_array(&jw); eff_jsonw_string(&jw, "GPT2LMHeadModel"); eff_jsonw_end_array(&jw);
        eff_jsonw_key(&jw, "model_type"); eff_jsonw_string(&jw, "gpt2");
        eff_jsonw_key(&jw, "vocab_size"); eff_jsonw_int(&jw, c->vocab_size);
        eff_jsonw_key(&jw, "n_positions"); eff_jsonw_int(&jw, c->max_seq);
        eff_jsonw_key(&jw, "n_embd"); eff_jsonw_int(&jw, c->dim);
        eff_jsonw_key(&jw, "n_layer"); eff_jsonw_int(&jw, c->n_layers);
        eff_jsonw_key(&jw, "n_head"); eff_jsonw_int(&jw, c->n_heads);
        eff_jsonw_key(&jw, "n_inner"); eff_jsonw_int(&jw, c->hidden_dim);
        eff_jsonw_key(&jw, "activation_function"); eff_jsonw_string(&jw, "gelu_new");
        eff_jsonw_key(&jw, "layer_norm_epsilon"); eff_jsonw_number(&jw, c->norm_eps);
    } else {
        eff_jsonw_key(&jw, "architectures"); eff_jsonw_begin_array(&jw);
        eff_jsonw_string(&jw, c->n_experts ? "MixtralForCausalLM" : "LlamaForCausalLM"); eff_jsonw_end_array(&jw);
        eff_jsonw_key(&jw, "model_type"); eff_jsonw_string(&jw, c->n_experts ? "mixtral" : "llama");
        eff_jsonw_key(&jw, "vocab_size"); eff_jsonw_int(&jw, c->vocab_size);
        eff_jsonw_key(&jw, "max_position_embeddings"); eff_jsonw_int(&jw, c->max_seq);
        eff_jsonw_key(&jw, "hidden_size"); eff_jsonw_int(&jw, c->dim);
        eff_jsonw_key(&jw, "intermediate_size"); eff_jsonw_int(&jw, c->hidden_dim);
        eff_jsonw_key(&jw, "num_hidden_layers"); eff_jsonw_int(&jw, c->n_layers);
        eff_jsonw_key(&jw, "num_attention_heads"); eff_jsonw_int(&jw, c->n_heads);
        eff_jsonw_key(&jw, "num_key_value_heads"); eff_jsonw_int(&jw, c->n_kv_heads);
        eff_jsonw_key(&jw, "head_dim"); eff_jsonw_int(&jw, c->head_dim);
        eff_jsonw_key(&jw, "rms_norm_eps"); eff_jsonw_number(&jw, c->norm_eps);
        eff_jsonw_key(&jw, "rope_theta"); eff_jsonw_number(&jw, c->rope_theta);
        eff_jsonw_key(&jw, "hidden_act"); eff_jsonw_string(&jw, "silu");
        if (c->n_experts) {
            eff_jsonw_key(&jw, "num_local_experts"); eff_jsonw_int(&jw, c->n_experts);
            eff_jsonw_key(&jw, "num_experts_per_tok"); eff_jsonw_int(&jw, c->top_k);
            eff_jsonw_key(&jw, "router_aux_loss_coef"); eff_jsonw_number(&jw, c->aux_loss_coef);
            eff_jsonw_key(&jw, "capacity_factor"); eff_jsonw_number(&jw, c->capacity_factor);
        }
    }
    eff_jsonw_key(&jw, "tie_word_embeddings"); eff_jsonw_bool(&jw, c->tie_embeddings);
    eff_jsonw_key(&jw, "torch_dtype"); eff_jsonw_string(&jw, "float32");
    eff_jsonw_end_object(&jw);
    txt = eff_jsonw_finish(&jw, &tlen);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!txt) s = eff_ctx_error(ctx, EFF_ERR_OOM, "eff_model_save_hf: config JSON failed");
    if (s == EFF_OK) s = eff_file_writer_open(ctx, &fw, path);
    if (s == EFF_OK) {
        s = eff_file_writer_write(ctx, &fw, txt, tlen);
        if (s == EFF_OK) s = eff_file_writer_write(ctx, &fw, "\n", 1);
        if (s == EFF_OK) s = eff_file_writer_commit(ctx, &fw); else eff_file_writer_abort(ctx, &fw);
    }
    eff_jsonw_free(&jw);
    EFF__TRY(s);
    while (eff__hf_entry(m, n, path, sizeof path, &mp)) n++;
    ts = (eff_tensor *)eff_ctx_calloc(ctx, (size_t)n * sizeof(eff_tensor));
    names = (char (*)[128])eff_ctx_calloc(ctx, (size_t)n * 128);
    if (!ts || !names) s = EFF_ERR_OOM;
    for (i = 0; s == EFF_OK && i < n; i++) {
        int64_t ne[2];
        int nd;
        eff__hf_entry(m, i, names[i], 128, &mp);
        nd = eff__hf_shape(&mp, ne);
        s = eff_tensor_alloc(ctx, &ts[i], EFF_F32, nd, ne);
        if (s == EFF_OK) s = eff__hf_copy(ctx, &mp, 0, (float *)ts[i].data, 1);
        ts[i].name = names[i];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (s == EFF_OK) {
        const char *meta[2] = {"format", "pt"};
        s = eff_safetensors_write(ctx, path, ts, n, meta, 1);
    }
    for (i = 0; ts && i < n; i++) eff_tensor_free(ctx, &ts[i]);
    eff_ctx_free(ctx, ts);
    eff_ctx_free(ctx, (void *)names);
    return s;
}

/* ---------------------------------------------------------------------------
   GGUF (llama architecture)
   --------------------------------------------------------------------------- */
/* The GGUF tensor for canonical parameter name p (NULL if it has none). */
static const char *eff__gguf_name(const char *p, char *buf, size_t size) {
    static const struct { const char *eff, *gguf; } map[] = {
        {"ln1.w", "attn_norm.weight"}, {"attn.q.w", "attn_q.weight"}, {"attn.k.w", "attn_k.weight"}, {"attn.v.w", "attn_v.weight"},
        {"attn.o.w", "attn_output.weight"}, {"ln2.w", "ffn_norm.weight"}, {"ffn.gate.w", "ffn_gate.weight"},
        {"ffn.up.w", "ffn_up.weight"}, {"ffn.down.w", "ffn_down.weight"},
    };
    long long l;
    int n = 0;
    size_t i;
    if (strcmp(p, "tok_emb") == 0) { snprintf(buf, size, "token_embd.weight"); return buf; }
    if (strcmp(p, "lnf.w") == 0) { snprintf(buf, size, "output_norm.weight"); return buf; }
    if (strcmp(p, "head.w") == 0) { snprintf(buf, size, "output.weight"); return buf; }
    if (sscanf(p, "layers.%lld.%n", &l, &n) != 1 || n == 0) return NULL;
    for (i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(p + n, map[i].eff) == 0) { snprintf(buf, size, "blk.%lld.%s", l, map[i].gguf); return buf; }
    return NULL;
}

/* Row r of the interleaved (Meta / llama.cpp) layout is row eff__neox_row of HF's half-split
   layout: within each head of hd rows, row 2i + j comes from row j * hd/2 + i. */
static int64_t eff__neox_row(int64_t r, int64_t hd) {
    int64_t h = r / hd, k = r % hd;
    return h * hd + (k % 2) * (hd / 2) + k / 2;
}

EFFDEF eff_status eff_model_save_gguf(eff_ctx *ctx, const eff_model *m, const char *path) {
    const eff_model_config *c;
    eff_quant_gguf_writer w;
    void **bufs;
    char (*names)[EFF_GGUF_MAX_NAME];
    int64_t i, nb = 0;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, m);
    EFF__CHECK_PTR(ctx, path);
    c = &m->cfg;
    EFF__CHECK(ctx, c->arch == EFF_MODEL_LLAMA && c->n_experts == 0, EFF_ERR_UNSUPPORTED,
               "eff_model_save_gguf: only dense Llama models are written as GGUF (llama architecture)");
    bufs = (void **)eff_ctx_calloc(ctx, (size_t)m->n_params * sizeof(void *));
    names = (char (*)[EFF_GGUF_MAX_NAME])eff_ctx_calloc(ctx, (size_t)m->n_params * EFF_GGUF_MAX_NAME);
    if (!bufs || !names) { eff_ctx_free(ctx, bufs); eff_ctx_free(ctx, (void *)names); return EFF_ERR_OOM; }
    eff_quant_gguf_writer_init(&w);
#define EFF__GW(call) do { if (s == EFF_OK) s = (call); } while (0)
    EFF__GW(eff_quant_gguf_writer_set_str(ctx, &w, "general.architecture", "llama"));
    EFF__GW(eff_quant_gguf_writer_set_str(ctx, &w, "general.name", "eff"));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.context_length", (uint32_t)c->max_seq));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.embedding_length", (uint32_t)c->dim));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.block_count", (uint32_t)c->n_layers));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.feed_forward_length", (uint32_t)c->hidden_dim));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.attention.head_count", (uint32_t)c->n_heads));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads));
    EFF__GW(eff_quant_gguf_writer_set_f32(ctx, &w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps));
    EFF__GW(eff_quant_gguf_writer_set_f32(ctx, &w, "llama.rope.freq_base", c->rope_theta));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.rope.dimension_count", (uint32_t)c->head_dim));
    EFF__GW(eff_quant_gguf_writer_set_u32(ctx, &w, "llama.vocab_size", (uint32_t)c->vocab_size));
    for (i = 0; s == EFF_OK && i < m->n_params; i++) {
        const eff_tensor *t = m->params[i].w;
        int64_t ne[2], gt = eff_quant_gguf_type_from_dtype(t->dtype);
        const void *data = t->data;
        int permute = c->rope_mode == EFF_ROPE_NEOX && (eff__ends_with(m->params[i].name, "attn.q.w") || eff__ends_with(m->params[i].name, "attn.k.w"));
        if (!eff__gguf_name(m->params[i].name, names[i], EFF_GGUF_MAX_NAME)) {
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "eff_model_save_gguf: parameter %s has no llama GGUF name", m->params[i].name);
            break;
        }
        if (gt < 0) { s = eff_ctx_error(ctx, EFF_ERR_DTYPE, "eff_model_save_gguf: %s is %s, which ggml cannot hold", m->params[i].name, eff_dtype_name(t->dtype)); break; }
        if (permute) {   /* HF's half-split rows -> llama.cpp's interleaved rows */
            int64_t rb = t->nb[0], r;
            unsigned char *b = (unsigned char *)eff_ctx_alloc(ctx, (size_t)(rb * t->ne[0]));
            if (!b) { s = EFF_ERR_OOM; break; }
            for (r = 0; r < t->ne[0]; r++) memcpy(b + r * rb, (const unsigned char *)t->data + eff__neox_row(r, c->head_dim) * rb, (size_t)rb);
            bufs[nb++] = b;
            data = b;
        }
        ne[0] = t->ndim == 2 ? t->ne[1] : t->ne[0];   /* ggml order: innermost first */
        ne[1] = t->ndim == 2 ? t->ne[0] : 1;
        s = eff_quant_gguf_writer_add_tensor(ctx, &w, names[i], (uint32_t)gt, (uint32_t)t->ndim, ne, data);
    }
    EFF__GW(eff_quant_gguf_writer_write(ctx, &w, path));
#undef EFF__GW
    eff_quant_gguf_writer_free(ctx, &w);
    for (i = 0; i < nb; i++) eff_ctx_free(ctx, bufs[i]);
    eff_ctx_free(ctx, bufs);
    eff_ctx_free(ctx, (void *)names);
    return s;
}

static int eff__gguf_u32(const eff_quant_gguf *g, const char *key, int64_t *out) {
    const eff_quant_gguf_kv *kv = eff_quant_gguf_find_kv(g, key);
    if (!kv) return 0;
    switch (kv->value.type) {
    case EFF_GGUF_U32: *out = kv->value.v.u32; return 1;
    case EFF_GGUF_I32: *out = kv->value.v.i32; return 1;
    case EFF_GGUF_U64: *out = (int64_t)kv->value.v.u64; return 1;
    case EFF_GGUF_I64: *out = kv->value.v.i64; return 1;
    default: return -1;
    }
}
static int eff__gguf_f32(const eff_quant_gguf *g, const char *key, float *out) {
    const eff_quant_gguf_kv *kv = eff_quant_gguf_find_kv(g, key);
    if (!kv) return 0;
    if (kv->value.type == EFF_GGUF_F32) { *out = kv->value.v.f32; return 1; }
    if (kv->value.type == EFF_GGUF_F64) { *out = (float)kv->value.v.f64; return 1; }
    return -1;
}

EFFDEF eff_status eff_model_load_gguf(eff_ctx *ctx, eff_model *m, const char *path) {
    eff_quant_gguf g;
    eff_model_config c;
    const eff_quant_gguf_kv *arch;
    const eff_quant_gguf_tensor *emb;
    char nm[EFF_GGUF_MAX_NAME];
    int64_t i, total = 0, used = 0, v;
    unsigned char *store = NULL;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, m);
    memset(m, 0, sizeof *m);
    EFF__TRY(eff_quant_gguf_open(ctx, &g, path));
    arch = eff_quant_gguf_find_kv(&g, "general.architecture");
    if (!arch || arch->value.type != EFF_GGUF_STRING || strcmp(arch->value.str, "llama") != 0) {
        s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: general.architecture is %s%s%s (eff reads llama)", path, arch ? "\"" : "missing",
                          arch && arch->value.type == EFF_GGUF_STRING ? arch->value.str : "", arch ? "\"" : "");
        eff_quant_gguf_close(ctx, &g);
        return s;
    }
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.rope_mode = EFF_ROPE_GPTJ; c.max_seq = 2048; c.norm_eps = 1e-5f; c.rope_theta = 10000.0f;
    {
        static const char *req[4] = {"llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count"};
        int64_t *dst[4];
        int k, r;
        dst[0] = &c.dim; dst[1] = &c.n_layers; dst[2] = &c.hidden_dim; dst[3] = &c.n_heads;
        for (k = 0; k < 4 && s == EFF_OK; k++)
            if ((r = eff__gguf_u32(&g, req[k], dst[k])) != 1)
                s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: %s is %s", path, req[k], r ? "not an integer" : "missing");
        if (s == EFF_OK && eff__gguf_u32(&g, "llama.attention.head_count_kv", &v) == 1) c.n_kv_heads = v;
        if (s == EFF_OK && eff__gguf_u32(&g, "llama.context_length", &v) == 1) c.max_seq = v;
        if (s == EFF_OK && eff__gguf_f32(&g, "llama.attention.layer_norm_rms_epsilon", &c.norm_eps) < 0) s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: bad rms epsilon", path);
        if (s == EFF_OK && eff__gguf_f32(&g, "llama.rope.freq_base", &c.rope_theta) < 0) s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: bad rope.freq_base", path);
        if (s == EFF_OK && eff__gguf_u32(&g, "llama.rope.dimension_count", &v) == 1 && c.n_heads > 0 && v != c.dim / c.n_heads)
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: partial rotary (rope.dimension_count %lld) is not supported", path, (long long)v);
    }
    emb = eff_quant_gguf_find_tensor(&g, "token_embd.weight");
    if (s == EFF_OK && (!emb || emb->n_dims != 2)) s = eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "%s: no 2-D token_embd.weight", path);
    if (s == EFF_OK) { c.vocab_size = emb->ne[1]; c.tie_embeddings = eff_quant_gguf_find_tensor(&g, "output.weight") == NULL; }
    if (s == EFF_OK) s = eff__model_build(ctx, m, &c, 1);
    if (s == EFF_OK && eff_quant_register(ctx) != EFF_OK) s = ctx ? EFF_ERR_DTYPE : EFF_ERR_DTYPE;
    for (i = 0; s == EFF_OK && i < m->n_params; i++) {   /* every tensor: present, the right shape, a known type */
        const eff_tensor *t = m->params[i].w;
        const eff_quant_gguf_tensor *gt;
        eff__gguf_name(m->params[i].name, nm, sizeof nm);
        gt = eff_quant_gguf_find_tensor(&g, nm);
        if (!gt) { s = eff_ctx_error(ctx, EFF_ERR_NOT_FOUND, "%s: missing tensor %s (block_count says %lld)", path, nm, (long long)c.n_layers); break; }
        if (gt->dtype < 0) { s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: %s has ggml type %s, which eff cannot compute with", path, nm,
                                               eff_quant_gguf_type_name(gt->ggml_type) ? eff_quant_gguf_type_name(gt->ggml_type) : "?"); break; }
        if ((int64_t)gt->n_dims != t->ndim || gt->ne[0] != t->ne[t->ndim - 1] || (t->ndim == 2 && gt->ne[1] != t->ne[0])) {
            s = eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: %s has shape [%lld, %lld] (ggml order) but the metadata implies [%lld, %lld]", path, nm,
                              (long long)gt->ne[0], (long long)gt->ne[1], (long long)t->ne[t->ndim - 1], (long long)(t->ndim == 2 ? t->ne[0] : 1));
            break;
        }
        if (t->ndim == 2) total += (int64_t)gt->nbytes + 64;
        else if (gt->dtype != EFF_F32 && gt->dtype != EFF_F16 && gt->dtype != EFF_BF16) {
            s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: norm %s must be a float type, not %s", path, nm, eff_dtype_name(gt->dtype));
            break;
        }
    }
    for (i = 0; s == EFF_OK && i < g.n_tensors; i++) {   /* nothing unexpected */
        const char *tn = g.tensors[i].name;
        int64_t k, found = 0;
        for (k = 0; k < m->n_params && !found; k++) found = eff__gguf_name(m->params[k].name, nm, sizeof nm) && strcmp(nm, tn) == 0;
        if (!found) s = eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: tensor %s is not part of the llama graph eff runs", path, tn);
    }
    if (s == EFF_OK) { store = (unsigned char *)eff_ctx_alloc(ctx, (size_t)(total > 0 ? total : 1)); if (!store) s = EFF_ERR_OOM; }
    for (i = 0; s == EFF_OK && i < m->n_params; i++) {
        eff_tensor *t = m->params[i].w, view;
        const eff_quant_gguf_tensor *gt;
        eff__gguf_name(m->params[i].name, nm, sizeof nm);
        gt = eff_quant_gguf_find_tensor(&g, nm);
        s = eff_quant_gguf_tensor_view(ctx, gt, &view);
        if (s != EFF_OK) break;
        if (t->ndim == 2) {   /* keep the file's type: quantized weights need no conversion */
            memcpy(store + used, gt->data, (size_t)gt->nbytes);
            view.data = store + used;
            view.name = NULL;
            *t = view;
            used = (used + (int64_t)gt->nbytes + 63) & ~(int64_t)63;
        } else {
            s = eff_tensor_copy(ctx, t, &view);
        }
    }
    eff_quant_gguf_close(ctx, &g);
    if (s != EFF_OK) { eff_ctx_free(ctx, store); eff_model_free(ctx, m); return s; }
    m->linear_store = store;
    if (c.tie_embeddings) m->head.W = m->tok_emb;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   llama2.c checkpoints (karpathy/llama2.c export.py: legacy_export, version1/2_export)
   --------------------------------------------------------------------------- */
typedef struct { const unsigned char *p, *end; int64_t gs; int q8; } eff__l2c;

/* Reads the next tensor of n floats (fp32, or int8 groups + scales) into dst. */
static int eff__l2c_read(eff__l2c *r, float *dst, int64_t n) {
    int64_t i;
    if (!r->q8) {
        if (r->end - r->p < n * 4) return 0;
        memcpy(dst, r->p, (size_t)n * 4);
        r->p += n * 4;
        return 1;
    }
    if (n % r->gs || r->end - r->p < n + n / r->gs * 4) return 0;
    for (i = 0; i < n; i++) {
        float sc;
        memcpy(&sc, r->p + n + (i / r->gs) * 4, 4);
        dst[i] = (float)(int8_t)r->p[i] * sc;
    }
    r->p += n + n / r->gs * 4;
    return 1;
}

EFFDEF eff_status eff_model_load_llama2c(eff_ctx *ctx, eff_model *m, const char *path) {
    eff_file_map fm;
    eff_model_config c;
    int32_t h[7];
    uint32_t magic = 0;
    int version = 0, shared;
    int64_t l, gs = 0, hdr, need, qd, kvd;
    eff__l2c r;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, m);
    memset(m, 0, sizeof *m);
    EFF__TRY(eff_file_map_open(ctx, path, &fm));
    if (fm.size >= 4) memcpy(&magic, fm.data, 4);
    if (magic == 0x616b3432u) {
        if (fm.size < 256) { eff_file_map_close(ctx, &fm); return eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: truncated 256-byte header", path); }
        memcpy(&version, fm.data + 4, 4);
        memcpy(h, fm.data + 8, sizeof h);
        shared = fm.data[36];
        if (version == 2) { int32_t g; memcpy(&g, fm.data + 37, 4); gs = g; }
        hdr = 256;
        if (version != 1 && version != 2) { eff_file_map_close(ctx, &fm); return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: llama2.c version %d", path, version); }
    } else {
        if (fm.size < 28) { eff_file_map_close(ctx, &fm); return eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: too short for a llama2.c header", path); }
        memcpy(h, fm.data, sizeof h);
        shared = h[5] > 0;
        if (h[5] < 0) h[5] = -h[5];
        hdr = 28;
    }
    memset(&c, 0, sizeof c);
    c.arch = EFF_MODEL_LLAMA; c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.vocab_size = h[5]; c.max_seq = h[6]; c.tie_embeddings = shared; c.rope_mode = EFF_ROPE_GPTJ; c.norm_eps = 1e-5f;
    if (h[0] <= 0 || h[1] <= 0 || h[2] <= 0 || h[3] <= 0 || h[4] <= 0 || h[5] <= 0 || h[6] <= 0 || h[0] % h[3] || h[3] % h[4])
        s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: header dims (%d, %d, %d, %d, %d, %d, %d) are not a valid model", path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    if (s == EFF_OK && version == 2 && (gs <= 0 || c.dim % gs))
        s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: group size %lld does not divide dim %lld", path, (long long)gs, (long long)c.dim);
    if (s == EFF_OK) {   /* the file must be exactly as long as the header says */
        double nw, nn, nfreq;
        qd = c.dim; kvd = c.dim / c.n_heads * c.n_kv_heads;
        nn = (double)c.n_layers * 2 * c.dim + c.dim;
        nw = (double)c.vocab_size * c.dim * (shared ? 1 : 2) + (double)c.n_layers * ((double)c.dim * qd * 2 + (double)c.dim * kvd * 2 + 3.0 * c.dim * c.hidden_dim);
        nfreq = version == 0 ? (double)c.max_seq * (double)(c.dim / c.n_heads) : 0.0;
        need = (int64_t)(hdr + 4 * (nn + nfreq) + (version == 2 ? nw + 4 * nw / (double)gs : 4 * nw));
        if (need != fm.size)
            s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: the header implies %lld bytes but the file has %lld (truncated or another model)", path,
                              (long long)need, (long long)fm.size);
    }
    if (s == EFF_OK) s = eff__model_build(ctx, m, &c, 0);
    if (s != EFF_OK) { eff_file_map_close(ctx, &fm); return s; }
    r.p = fm.data + hdr; r.end = fm.data + fm.size; r.gs = gs; r.q8 = 0;
#define EFF__RD(t) do { if (!eff__l2c_read(&r, (float *)(t).data, eff_tensor_nelements(&(t)))) s = EFF_ERR_FORMAT; } while (0)
    if (version == 0) {
        EFF__RD(m->tok_emb);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ln1_w);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].q.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].k.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].v.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].o.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ln2_w);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ffn.gate.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ffn.down.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ffn.up.W);
        EFF__RD(m->lnf_w);
        r.p += 4 * m->cfg.max_seq * m->cfg.head_dim;   /* freq_cis tables: recomputed */
        if (!shared) EFF__RD(m->head.W);
    } else {
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ln1_w);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ln2_w);
        EFF__RD(m->lnf_w);
        r.q8 = version == 2;
        EFF__RD(m->tok_emb);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].q.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].k.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].v.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].o.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ffn.gate.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ffn.down.W);
        for (l = 0; l < c.n_layers; l++) EFF__RD(m->layers[l].ffn.up.W);
        if (!shared) EFF__RD(m->head.W);
    }
#undef EFF__RD
    eff_file_map_close(ctx, &fm);
    if (s != EFF_OK) { eff_model_free(ctx, m); return eff_ctx_error(ctx, s, "%s: weights run past the end of the file", path); }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Tokenizers
   --------------------------------------------------------------------------- */
static uint64_t eff__fnv(const char *p, int64_t n) {
    uint64_t h = 1469598103934665603ull;
    int64_t i;
    for (i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 1099511628211ull; }
    return h;
}

EFFDEF void eff_tokenizer_free(eff_ctx *ctx, eff_tokenizer *t) {
    if (!t) return;
    eff_ctx_free(ctx, t->pieces); eff_ctx_free(ctx, t->piece_len); eff_ctx_free(ctx, t->scores);
    eff_ctx_free(ctx, t->ht); eff_ctx_free(ctx, t->mt_key); eff_ctx_free(ctx, t->mt_rank); eff_ctx_free(ctx, t->mt_id);
    eff_ctx_free(ctx, t->text);
    memset(t, 0, sizeof *t);
}

/* Allocates pieces for n tokens with text_bytes of backing store; builds nothing yet. */
static eff_status eff__tok_alloc(eff_ctx *ctx, eff_tokenizer *t, int kind, int64_t n, int64_t text_bytes) {
    int i;
    memset(t, 0, sizeof *t);
    t->kind = kind; t->vocab_size = n; t->bos_id = t->eos_id = -1;
    for (i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->pieces = (char **)eff_ctx_calloc(ctx, (size_t)n * sizeof(char *));
    t->piece_len = (int32_t *)eff_ctx_calloc(ctx, (size_t)n * sizeof(int32_t));
    t->scores = (float *)eff_ctx_calloc(ctx, (size_t)n * sizeof(float));
    t->text = (char *)eff_ctx_alloc(ctx, (size_t)text_bytes + 1 + 256);
    if (!t->pieces || !t->piece_len || !t->scores || !t->text) { eff_tokenizer_free(ctx, t); return EFF_ERR_OOM; }
    for (i = 0; i < 256; i++) t->text[text_bytes + 1 + i] = (char)i;
    t->byte_text = t->text + text_bytes + 1;
    return EFF_OK;
}

/* Hash table bytes -> id over all pieces (the first id wins for duplicates). */
static eff_status eff__tok_index(eff_ctx *ctx, eff_tokenizer *t) {
    int64_t i;
    t->ht_cap = 16;
    while (t->ht_cap < 2 * t->vocab_size) t->ht_cap *= 2;
    t->ht = (int32_t *)eff_ctx_alloc(ctx, (size_t)t->ht_cap * sizeof(int32_t));
    if (!t->ht) return EFF_ERR_OOM;
    for (i = 0; i < t->ht_cap; i++) t->ht[i] = -1;
    for (i = 0; i < t->vocab_size; i++) {
        uint64_t h = eff__fnv(t->pieces[i], t->piece_len[i]) & (uint64_t)(t->ht_cap - 1);
        int dup = 0;
        while (t->ht[h] >= 0) {
            int32_t o = t->ht[h];
            if (t->piece_len[o] == t->piece_len[i] && memcmp(t->pieces[o], t->pieces[i], (size_t)t->piece_len[i]) == 0) { dup = 1; break; }
            h = (h + 1) & (uint64_t)(t->ht_cap - 1);
        }
        if (!dup) t->ht[h] = (int32_t)i;
    }
    return EFF_OK;
}
static int32_t eff__tok_lookup(const eff_tokenizer *t, const char *p, int64_t n) {
    uint64_t h;
    if (!t->ht) return -1;
    h = eff__fnv(p, n) & (uint64_t)(t->ht_cap - 1);
    while (t->ht[h] >= 0) {
        int32_t o = t->ht[h];
        if (t->piece_len[o] == n && memcmp(t->pieces[o], p, (size_t)n) == 0) return o;
        h = (h + 1) & (uint64_t)(t->ht_cap - 1);
    }
    return -1;
}

EFFDEF eff_status eff_tokenizer_byte(eff_ctx *ctx, eff_tokenizer *t) {
    int i;
    EFF__CHECK_PTR(ctx, t);
    EFF__TRY(eff__tok_alloc(ctx, t, EFF_TOK_BYTE, 256, 256));
    for (i = 0; i < 256; i++) { t->text[i] = (char)i; t->pieces[i] = t->text + i; t->piece_len[i] = 1; t->byte_id[i] = i; }
    return eff__tok_index(ctx, t);
}

EFFDEF eff_status eff_tokenizer_load_llama2c(eff_ctx *ctx, eff_tokenizer *t, const char *path, int64_t vocab_size) {
    eff_file_map fm;
    int64_t pos = 4, i, text_bytes = 0;
    uint32_t max_len;
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, t);
    memset(t, 0, sizeof *t);
    EFF__CHECK(ctx, vocab_size > 0 && vocab_size <= ((int64_t)1 << 24), EFF_ERR_INVALID_ARG, "tokenizer: vocab_size %lld", (long long)vocab_size);
    EFF__TRY(eff_file_map_open(ctx, path, &fm));
    if (fm.size < 4) { eff_file_map_close(ctx, &fm); return eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: too short for a tokenizer", path); }
    memcpy(&max_len, fm.data, 4);
    /* first pass: validate every record and size the text store */
    for (i = 0; i < vocab_size; i++) {
        int32_t len;
        if (fm.size - pos < 8) { s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: truncated at token %lld of %lld", path, (long long)i, (long long)vocab_size); break; }
        memcpy(&len, fm.data + pos + 4, 4);
        if (len < 0 || (uint32_t)len > max_len || fm.size - pos - 8 < len) {
            s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: token %lld has length %d past the end or above max_token_length %u", path, (long long)i, (int)len, max_len);
            break;
        }
        pos += 8 + len; text_bytes += len + 1;
    }
    if (s == EFF_OK) s = eff__tok_alloc(ctx, t, EFF_TOK_LLAMA2C, vocab_size, text_bytes);
    if (s == EFF_OK) {
        char *w = t->text;
        for (pos = 4, i = 0; i < vocab_size; i++) {
            int32_t len;
            memcpy(&t->scores[i], fm.data + pos, 4);
            memcpy(&len, fm.data + pos + 4, 4);
            memcpy(w, fm.data + pos + 8, (size_t)len);
            w[len] = 0;
            t->pieces[i] = w; t->piece_len[i] = len;
            w += len + 1; pos += 8 + len;
        }
        for (i = 0; i < 256 && i + 3 < vocab_size; i++) t->byte_id[i] = (int32_t)(i + 3);   /* <0x00> .. <0xFF> */
        t->bos_id = vocab_size > 1 ? 1 : -1; t->eos_id = vocab_size > 2 ? 2 : -1;
        s = eff__tok_index(ctx, t);
    }
    eff_file_map_close(ctx, &fm);
    if (s != EFF_OK) eff_tokenizer_free(ctx, t);
    return s;
}

/* GPT-2's byte <-> unicode map: printable bytes map to themselves, the rest to U+0100 + k. */
static int eff__gpt2_byte_of(uint32_t cp) {
    int b, k = 0;
    for (b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t u = printable ? (uint32_t)b : 256u + (uint32_t)k++;
        if (u == cp) return b;
    }
    return -1;
}
/* Decodes one UTF-8 code point at p (n bytes left); returns its length, 0 on invalid input. */
static int eff__utf8(const unsigned char *p, int64_t n, uint32_t *cp) {
    if (n <= 0) return 0;
    if (p[0] < 0x80) { *cp = p[0]; return 1; }
    if ((p[0] & 0xE0) == 0xC0 && n >= 2 && (p[1] & 0xC0) == 0x80) { *cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F); return 2; }
    if ((p[0] & 0xF0) == 0xE0 && n >= 3 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F); return 3;
    }
    if ((p[0] & 0xF8) == 0xF0 && n >= 4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) | ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F); return 4;
    }
    return 0;
}
/* A JSON string key (already unescaped, UTF-8) in GPT-2's byte-to-unicode form -> raw bytes. */
static int64_t eff__gpt2_unmap(const char *s, int64_t n, char *out) {
    int64_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        int l = eff__utf8((const unsigned char *)s + i, n - i, &cp), b;
        if (!l || (b = eff__gpt2_byte_of(cp)) < 0) return -1;
        out[k++] = (char)b;
        i += l;
    }
    return k;
}

static eff_status eff__merge_insert(eff_ctx *ctx, eff_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, h = (key * 0x9E3779B97F4A7C15ull) >> 20;
    h &= (uint64_t)(t->mt_cap - 1);
    while (t->mt_rank[h] >= 0) {
        if (t->mt_key[h] == key) return EFF_OK;   /* first (lowest rank) wins */
        h = (h + 1) & (uint64_t)(t->mt_cap - 1);
    }
    (void)ctx;
    t->mt_key[h] = key; t->mt_rank[h] = rank; t->mt_id[h] = id;
    return EFF_OK;
}
static int32_t eff__merge_find(const eff_tokenizer *t, int32_t a, int32_t b, int32_t *id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, h = (key * 0x9E3779B97F4A7C15ull) >> 20;
    h &= (uint64_t)(t->mt_cap - 1);
    while (t->mt_rank[h] >= 0) {
        if (t->mt_key[h] == key) { *id = t->mt_id[h]; return t->mt_rank[h]; }
        h = (h + 1) & (uint64_t)(t->mt_cap - 1);
    }
    return -1;
}

EFFDEF eff_status eff_tokenizer_load_gpt2(eff_ctx *ctx, eff_tokenizer *t, const char *vocab_json, const char *merges_txt) {
    eff_file_map vf, mf;
    eff_json js;
    const eff_json_node *r, *c;
    int64_t n = 0, text_bytes = 0, max_id = -1, i, lines = 0;
    eff_status s;
    EFF__CHECK_PTR(ctx, t);
    memset(t, 0, sizeof *t);
    EFF__TRY(eff_file_map_open(ctx, vocab_json, &vf));
    s = eff_json_parse(ctx, &js, (const char *)vf.data, vf.size, 1);
    eff_file_map_close(ctx, &vf);
    EFF__TRY(s);
    r = eff_json_root(&js);
    if (!r || r->type != EFF_JSON_OBJECT) { eff_json_free(ctx, &js); return eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: not a JSON object", vocab_json); }
    for (c = eff_json_child(&js, r); c; c = eff_json_next(&js, c)) {
        if (c->type != EFF_JSON_NUMBER || !c->is_int || c->inum < 0 || c->inum >= ((int64_t)1 << 24)) {
            s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: id of \"%.40s\" is not an integer in [0, 2^24)", vocab_json, c->key);
            eff_json_free(ctx, &js);   /* after the message: c->key lives in js */
            return s;
        }
        if (c->inum > max_id) max_id = c->inum;
        text_bytes += c->key_len + 1; n++;
    }
    s = eff__tok_alloc(ctx, t, EFF_TOK_GPT2, max_id + 1, text_bytes);
    if (s == EFF_OK) {
        char *w = t->text;
        for (c = eff_json_child(&js, r); c && s == EFF_OK; c = eff_json_next(&js, c)) {
            int64_t k = eff__gpt2_unmap(c->key, c->key_len, w);
            if (k < 0) { s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: \"%.40s\" is not in GPT-2's byte-to-unicode alphabet", vocab_json, c->key); break; }
            if (t->pieces[c->inum]) { s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: id %lld appears twice", vocab_json, (long long)c->inum); break; }
            w[k] = 0;
            t->pieces[c->inum] = w; t->piece_len[c->inum] = (int32_t)k;
            if (k == 1 && t->byte_id[(unsigned char)w[0]] < 0) t->byte_id[(unsigned char)w[0]] = (int32_t)c->inum;
            w += k + 1;
        }
        for (i = 0; s == EFF_OK && i < t->vocab_size; i++)
            if (!t->pieces[i]) { t->pieces[i] = t->text + text_bytes; t->piece_len[i] = 0; }   /* holes: empty pieces */
    }
    if (s == EFF_OK) {
        const eff_json_node *eot = eff_json_get(&js, r, "<|endoftext|>");
        if (eot) t->bos_id = t->eos_id = (int32_t)eot->inum;
    }
    eff_json_free(ctx, &js);
    for (i = 0; s == EFF_OK && i < 256; i++)
        if (t->byte_id[i] < 0) s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: no token for byte 0x%02x (not a byte-level BPE vocabulary)", vocab_json, (int)i);
    if (s == EFF_OK) s = eff__tok_index(ctx, t);
    if (s == EFF_OK) s = eff_file_map_open(ctx, merges_txt, &mf);
    if (s != EFF_OK) { eff_tokenizer_free(ctx, t); return s; }
    for (i = 0; i < mf.size; i++) lines += mf.data[i] == '\n';
    t->mt_cap = 16;
    while (t->mt_cap < 2 * (lines + 1)) t->mt_cap *= 2;
    t->mt_key = (uint64_t *)eff_ctx_alloc(ctx, (size_t)t->mt_cap * sizeof(uint64_t));
    t->mt_rank = (int32_t *)eff_ctx_alloc(ctx, (size_t)t->mt_cap * sizeof(int32_t));
    t->mt_id = (int32_t *)eff_ctx_alloc(ctx, (size_t)t->mt_cap * sizeof(int32_t));
    if (!t->mt_key || !t->mt_rank || !t->mt_id) s = EFF_ERR_OOM;
    for (i = 0; s == EFF_OK && i < t->mt_cap; i++) t->mt_rank[i] = -1;
    {
        int64_t p = 0, rank = 0, line = 0;
        char *buf = s == EFF_OK ? (char *)eff_ctx_alloc(ctx, (size_t)mf.size + 1) : NULL;
        if (s == EFF_OK && !buf) s = EFF_ERR_OOM;
        while (s == EFF_OK && p < mf.size) {
            int64_t e = p, sp;
            const char *ln = (const char *)mf.data + p;
            while (e < mf.size && mf.data[e] != '\n') e++;
            line++;
            if (e > p && mf.data[e - 1] == '\r') e--;
            if (e > p && !(line == 1 && ln[0] == '#')) {
                int64_t la, lb;
                int32_t a, b, m;
                for (sp = 0; p + sp < e && ln[sp] != ' '; sp++) {}
                if (p + sp >= e) { s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s:%lld: a merge needs two symbols", merges_txt, (long long)line); break; }
                la = eff__gpt2_unmap(ln, sp, buf);
                lb = la < 0 ? -1 : eff__gpt2_unmap(ln + sp + 1, e - p - sp - 1, buf + la);
                if (la <= 0 || lb <= 0) { s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s:%lld: symbols outside GPT-2's alphabet", merges_txt, (long long)line); break; }
                a = eff__tok_lookup(t, buf, la); b = eff__tok_lookup(t, buf + la, lb); m = eff__tok_lookup(t, buf, la + lb);
                if (a < 0 || b < 0 || m < 0) { s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s:%lld: merge of symbols missing from the vocabulary", merges_txt, (long long)line); break; }
                s = eff__merge_insert(ctx, t, a, b, (int32_t)rank++, m);
            }
            while (e < mf.size && mf.data[e] != '\n') e++;
            p = e + 1;
        }
        eff_ctx_free(ctx, buf);
    }
    eff_file_map_close(ctx, &mf);
    if (s != EFF_OK) eff_tokenizer_free(ctx, t);
    return s;
}

/* Unicode classes GPT-2's pre-tokenizer needs. Non-ASCII code points count as letters,
   except the common punctuation, symbol, space and digit blocks listed here. */
static int eff__is_space(uint32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
static int eff__is_digit(uint32_t c) {
    return (c >= '0' && c <= '9') || c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE) || (c >= 0x660 && c <= 0x669) ||
           (c >= 0x6F0 && c <= 0x6F9) || (c >= 0x966 && c <= 0x96F) || (c >= 0xFF10 && c <= 0xFF19);
}
static int eff__is_letter(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (eff__is_space(c) || eff__is_digit(c)) return 0;
    if (c < 0xC0) return c == 0xAA || c == 0xB5 || c == 0xBA;
    if (c == 0xD7 || c == 0xF7) return 0;
    if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) || (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF20) ||
        (c >= 0x1F000 && c <= 0x1FAFF))
        return 0;
    return 1;
}

/* Length of the next GPT-2 pre-token at p: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static int64_t eff__gpt2_pretoken(const unsigned char *p, int64_t n) {
    uint32_t c, d;
    int64_t i, l, k;
    static const char *con[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (k = 0; k < 7; k++) {
        int64_t cl = (int64_t)strlen(con[k]);
        if (n >= cl && memcmp(p, con[k], (size_t)cl) == 0) return cl;
    }
    l = eff__utf8(p, n, &c);
    if (!l) return 1;   /* invalid UTF-8: one byte on its own */
    i = 0;
    if (c == ' ' && n > 1) {   /* ' ?' prefix */
        int64_t l2 = eff__utf8(p + 1, n - 1, &d);
        if (l2 && !eff__is_space(d)) { i = 1; c = d; l = l2; }
    }
    if (i == 1 || !eff__is_space(c)) {
        int cls = eff__is_letter(c) ? 1 : eff__is_digit(c) ? 2 : 3;
        i += l;
        while (i < n) {
            int64_t l2 = eff__utf8(p + i, n - i, &d);
            int cd;
            if (!l2) break;
            cd = eff__is_space(d) ? 0 : eff__is_letter(d) ? 1 : eff__is_digit(d) ? 2 : 3;
            if (cd != cls) break;
            i += l2;
        }
        return i;
    }
    /* whitespace run; if a non-space follows, leave its last character for the next token */
    i = 0;
    while (i < n) {
        int64_t l2 = eff__utf8(p + i, n - i, &d);
        if (!l2 || !eff__is_space(d)) break;
        k = i; i += l2;
    }
    if (i < n && i > l) return k;   /* \s+(?!\S): back off one character */
    return i;
}

/* Appends id, counting even when out of room. */
#define EFF__PUSH(id_) do { if (cnt < max_ids) ids[cnt] = (id_); cnt++; } while (0)

EFFDEF eff_status eff_tokenizer_encode(eff_ctx *ctx, const eff_tokenizer *t, const char *text, int64_t len, int bos, int eos,
                                       int32_t *ids, int64_t max_ids, int64_t *n) {
    int64_t cnt = 0, i;
    int32_t *work = NULL;
    EFF__CHECK_PTR(ctx, t);
    EFF__CHECK(ctx, len == 0 || text, EFF_ERR_INVALID_ARG, "eff_tokenizer_encode: argument 'text' is NULL");
    EFF__CHECK(ctx, len >= 0 && max_ids >= 0 && (max_ids == 0 || ids), EFF_ERR_INVALID_ARG, "eff_tokenizer_encode: bad lengths");
    if (bos && t->bos_id >= 0) EFF__PUSH(t->bos_id);
    if (t->kind == EFF_TOK_BYTE) {
        for (i = 0; i < len; i++) EFF__PUSH((int32_t)(unsigned char)text[i]);
    } else if (t->kind == EFF_TOK_LLAMA2C) {
        /* llama2.c run.c: dummy-prefix space, code points (byte fallback), then merge the
           adjacent pair whose concatenation has the highest score until none exists */
        int64_t m = 0, k;
        char *tmp = (char *)eff_ctx_alloc(ctx, (size_t)(2 * 256 + 8));
        work = (int32_t *)eff_ctx_alloc(ctx, (size_t)(len + 2) * 4 * sizeof(int32_t));
        if (!work || !tmp) { eff_ctx_free(ctx, work); eff_ctx_free(ctx, tmp); return EFF_ERR_OOM; }
        if (len > 0) {
            int32_t sp = eff__tok_lookup(t, " ", 1);
            if (sp >= 0) work[m++] = sp;
        }
        for (i = 0; i < len;) {
            int64_t l = 1;
            int32_t id;
            while (i + l < len && l < 4 && ((unsigned char)text[i + l] & 0xC0) == 0x80) l++;
            id = eff__tok_lookup(t, text + i, l);
            if (id >= 0) work[m++] = id;
            else for (k = 0; k < l; k++) {
                int32_t b = t->byte_id[(unsigned char)text[i + k]];
                if (b < 0) { eff_ctx_free(ctx, work); eff_ctx_free(ctx, tmp); return eff_ctx_error(ctx, EFF_ERR_FORMAT, "tokenizer has no byte fallback for 0x%02x", (unsigned char)text[i + k]); }
                work[m++] = b;
            }
            i += l;
        }
        while (m > 1) {
            float best = -1e30f;
            int64_t bi = -1;
            int32_t bid = -1;
            for (k = 0; k + 1 < m; k++) {
                int32_t la = t->piece_len[work[k]], lb = t->piece_len[work[k + 1]], id;
                if (la + lb > 512) continue;
                memcpy(tmp, t->pieces[work[k]], (size_t)la);
                memcpy(tmp + la, t->pieces[work[k + 1]], (size_t)lb);
                id = eff__tok_lookup(t, tmp, la + lb);
                if (id >= 0 && t->scores[id] > best) { best = t->scores[id]; bi = k; bid = id; }
            }
            if (bi < 0) break;
            work[bi] = bid;
            memmove(work + bi + 1, work + bi + 2, (size_t)(m - bi - 2) * sizeof(int32_t));
            m--;
        }
        for (k = 0; k < m; k++) EFF__PUSH(work[k]);
        eff_ctx_free(ctx, tmp);
    } else {
        /* GPT-2: pre-tokens, then BPE on bytes merging the lowest-rank pair everywhere */
        const unsigned char *p = (const unsigned char *)text;
        work = (int32_t *)eff_ctx_alloc(ctx, (size_t)(len + 1) * sizeof(int32_t));
        if (!work) return EFF_ERR_OOM;
        i = 0;
        while (i < len) {
            int64_t pl = eff__gpt2_pretoken(p + i, len - i), m = pl, k;
            for (k = 0; k < pl; k++) work[k] = t->byte_id[p[i + k]];
            while (m > 1) {
                int32_t best = -1, bid = -1, a = -1, b = -1, id;
                int64_t w, r;
                for (k = 0; k + 1 < m; k++) {
                    int32_t rk = eff__merge_find(t, work[k], work[k + 1], &id);
                    if (rk >= 0 && (best < 0 || rk < best)) { best = rk; bid = id; a = work[k]; b = work[k + 1]; }
                }
                if (best < 0) break;
                for (r = 0, w = 0; r < m; r++) {
                    if (r + 1 < m && work[r] == a && work[r + 1] == b) { work[w++] = bid; r++; }
                    else work[w++] = work[r];
                }
                m = w;
            }
            for (k = 0; k < m; k++) EFF__PUSH(work[k]);
            i += pl;
        }
    }
    eff_ctx_free(ctx, work);
    if (eos && t->eos_id >= 0) EFF__PUSH(t->eos_id);
    if (n) *n = cnt;
    if (cnt > max_ids) return eff_ctx_error(ctx, EFF_ERR_SHAPE, "eff_tokenizer_encode: %lld ids do not fit in %lld", (long long)cnt, (long long)max_ids);
    return EFF_OK;
}
#undef EFF__PUSH

EFFDEF const char *eff_tokenizer_piece(const eff_tokenizer *t, int32_t prev, int32_t id, int32_t *len) {
    const char *p;
    int32_t l;
    if (!t || id < 0 || id >= t->vocab_size) { if (len) *len = 0; return ""; }
    if (id == t->bos_id || id == t->eos_id) { if (len) *len = 0; return ""; }
    p = t->pieces[id]; l = t->piece_len[id];
    if (t->kind == EFF_TOK_LLAMA2C) {
        if ((prev < 0 || prev == t->bos_id) && l > 0 && p[0] == ' ') { p++; l--; }
        if (id >= 3 && id < 259 && l == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>') {
            if (len) *len = 1;
            return t->byte_text + (id - 3);   /* byte-fallback token: the raw byte */
        }
    }
    if (len) *len = l;
    return p;
}

EFFDEF eff_status eff_tokenizer_decode(eff_ctx *ctx, const eff_tokenizer *t, const int32_t *ids, int64_t n, char *out, size_t size,
                                       size_t *len) {
    size_t total = 0;
    int64_t i;
    EFF__CHECK_PTR(ctx, t);
    EFF__CHECK(ctx, n == 0 || ids, EFF_ERR_INVALID_ARG, "eff_tokenizer_decode: argument 'ids' is NULL");
    for (i = 0; i < n; i++) {
        int32_t l;
        const char *p;
        EFF__CHECK(ctx, ids[i] >= 0 && ids[i] < t->vocab_size, EFF_ERR_INVALID_ARG, "eff_tokenizer_decode: ids[%lld] = %d outside the vocabulary",
                   (long long)i, (int)ids[i]);
        p = eff_tokenizer_piece(t, i ? ids[i - 1] : -1, ids[i], &l);
        if (out && total < size) memcpy(out + total, p, (size_t)l < size - total ? (size_t)l : size - total);
        total += (size_t)l;
    }
    if (out && size) out[total < size ? total : size - 1] = 0;
    if (len) *len = total;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Counting
   --------------------------------------------------------------------------- */
EFFDEF void eff_model_count(const eff_model_config *cin, int64_t T, eff_model_counts *o) {
    eff_model_config c = *cin;
    int64_t qd, kvd, ffn_mats;
    int gpt2;
    memset(o, 0, sizeof *o);
    if (eff_model_config_check(NULL, &c) != EFF_OK) return;
    gpt2 = c.arch == EFF_MODEL_GPT2;
    qd = c.n_heads * c.head_dim; kvd = c.n_kv_heads * c.head_dim;
    ffn_mats = gpt2 ? 2 : 3;
    o->embedding = c.vocab_size * c.dim + (gpt2 ? c.max_seq * c.dim : 0);
    o->attention = c.n_layers * (c.dim * qd * 2 + c.dim * kvd * 2 + (gpt2 ? qd + 2 * kvd + c.dim : 0));
    o->mlp = c.n_layers * (c.n_experts ? c.n_experts : 1) * (ffn_mats * c.dim * c.hidden_dim + (gpt2 ? c.hidden_dim + c.dim : 0));
    if (c.n_experts) o->mlp += c.n_layers * c.n_experts * c.dim;
    o->norms = (2 * c.n_layers + 1) * c.dim * (gpt2 ? 2 : 1);
    o->head = c.tie_embeddings ? 0 : c.vocab_size * c.dim;
    o->total = o->embedding + o->attention + o->mlp + o->norms + o->head;
    o->flops_attn_proj = 2.0 * (double)c.n_layers * (double)(c.dim * qd * 2 + c.dim * kvd * 2);
    o->flops_attn_scores = 2.0 * 2.0 * (double)c.n_layers * (double)T * (double)qd;   /* QK^T and PV over T keys */
    o->flops_mlp = 2.0 * (double)c.n_layers * (double)(c.n_experts ? c.top_k : 1) * (double)(ffn_mats * c.dim * c.hidden_dim);
    o->flops_head = 2.0 * (double)c.vocab_size * (double)c.dim;
    o->flops_total = o->flops_attn_proj + o->flops_attn_scores + o->flops_mlp + o->flops_head;
}

#ifdef __cplusplus
}
#endif
#endif /* EFF_MODEL_IMPLEMENTATION */
