/* eff_attn.h - v0.1 - exact, sparse, approximate and cached attention on the CPU.
   Public domain / MIT.  Part of eff (stb-style headers for efficient transformers).

   WHAT
     - eff_attn_ref_*        reference attention in float64 (the semantics every kernel matches)
     - eff_attn_naive_*      the textbook algorithm with a T x T score matrix (for comparison)
     - eff_attn_flash_*      FlashAttention-2 forward + backward: tiles, online softmax, only the
                             row log-sum-exp saved, O(T d) memory, GQA/MQA, causal block skipping,
                             f32/bf16/f16 inputs with f32 accumulation, OpenMP, split-KV decode
     - eff_attn_merge*       the (O, lse) merge of partial results over disjoint key sets
     - eff_attn_blockmask_*  one block-sparse mask format (per query tile: key tiles, FULL or
                             PARTIAL + a small rule) driving the same flash kernel, builders for
                             causal, local, sliding window, strided, dilated, global, BigBird,
                             packed variable-length sequences, and a text/SVG renderer
     - eff_attn_cache_*      KV caches: contiguous or paged (block table, refcounts, fork with
                             copy-on-write), f32/bf16/int8/Q8_0, sliding window + attention sinks,
                             decode attention with split-KV; eff_attn_kv_bytes for memory sums
     - eff_attn_linear_*     linear attention (phi = elu + 1), non-causal and causal, fwd + bwd
     - eff_attn_linformer_*  Linformer (E, F projections of the key length), fwd + bwd
     - eff_attn_lsh_*        Reformer LSH attention (hash rounds merged by lse)
     - eff_attn_longnet_*    LongNet dilated attention (gather -> dense -> merge by lse)

   USAGE
     In exactly one C or C++ file define EFF_ATTN_IMPLEMENTATION (or EFF_IMPLEMENTATION)
     before the include; eff_tensor.h is included by this header (its implementation must
     be compiled somewhere too: EFF_IMPLEMENTATION does both). examples/attn_hello.c:

         #define EFF_IMPLEMENTATION
         #include "eff_attn.h"
         static float q[2*16*32], k[2*16*32], v[2*16*32], o[2*16*32], l[2*16];
         int main(void) {
             eff_ctx *ctx; eff_attn_opts op = {0}; eff_status s;
             eff_tensor Q = eff_tensor_4d(q, EFF_F32, 1, 2, 16, 32), K = eff_tensor_4d(k, EFF_F32, 1, 2, 16, 32);
             eff_tensor V = eff_tensor_4d(v, EFF_F32, 1, 2, 16, 32), O = eff_tensor_4d(o, EFF_F32, 1, 2, 16, 32);
             eff_tensor L = eff_tensor_3d(l, EFF_F32, 1, 2, 16);
             if (eff_ctx_create(NULL, &ctx)) return 1;
             op.causal = 1;                                    // bottom-right diagonal
             s = eff_attn_flash_forward(ctx, &O, &L, &Q, &K, &V, &op);
             eff_ctx_destroy(ctx); return (int)s;
         }

   CONVENTIONS
     - Shapes outermost first: Q [B, Hq, Tq, d], K [B, Hkv, Tk, d], V [B, Hkv, Tk, dv],
       O [B, Hq, Tq, dv], lse [B, Hq, Tq] (f32). Outer dims may have any byte strides (pass
       a permuted [B, T, H, d] view); the last dim must be contiguous.
     - GQA/MQA: Hq is a multiple of Hkv; query head h uses kv head h / (Hq / Hkv).
     - S = scale * Q K^T + bias, P = softmax_rows(S), O = P V, lse_i = log sum_j exp(S_ij).
       scale 0 means 1/sqrt(d).
     - The diagonal. Query i sits at key position c(i) = i + offset, with offset = Tk - Tq
       by default (bottom-right alignment, flash-attn >= 2.1): the last query sees every key,
       so one decode step over a KV cache is causal. PyTorch's is_causal (top-left) is
       has_causal_offset = 1, causal_offset = 0. causal: key j visible iff j <= c(i).
       window: iff c(i) - window_left <= j <= c(i) + window_right (inclusive bounds; Mistral's
       W-token window is causal + window_left = W - 1).
     - Rows that see no key give O = 0 and lse = -inf, never NaN (flash-attn writes +inf,
       PyTorch's CPU kernel 0). The merge treats -inf partials as empty.
     - Forward functions write O and lse (=). Backward functions write the input gradients
       dQ, dK, dV (=) and add into parameter gradients (Linformer's dE, dF: +=).
     - Functions that can fail return eff_status; on failure eff_ctx_last_error(ctx) names the
       function and argument. Memory comes only from eff_ctx_alloc (eff_ctx_bytes_peak
       measures it); flash never allocates anything of size Tq x Tk.
     - Numbers: flash accumulates in f32 with FA2's online softmax; against the float64
       reference its nmse is ~1e-14 (tests require 1e-10), and the reference agrees with
       PyTorch's scaled_dot_product_attention in float64 to ~1e-31 (tests/fixtures/attn).
     - Zero-initialized option structs mean defaults.

   DEFINES
     EFF_ATTN_IMPLEMENTATION / EFF_IMPLEMENTATION   emit the definitions
     EFF_STATIC, EFF_MALLOC/EFF_REALLOC/EFF_FREE, EFF_NO_SIMD: as in eff_tensor.h
     OpenMP (-fopenmp): kernels run on eff_ctx_n_threads(ctx) threads.

   VERSIONS
     0.1  reference, naive and flash attention (fwd + bwd), merge, split-KV, block-sparse
          masks and builders, KV caches (contiguous, paged, bf16/int8/Q8_0, window, sinks),
          linear attention, Linformer, Reformer LSH, LongNet.
*/
#ifndef EFF_ATTN_H
#define EFF_ATTN_H

#include "eff_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Options shared by the reference, naive and flash kernels
   --------------------------------------------------------------------------- */
typedef struct eff_attn_blockmask eff_attn_blockmask;

typedef struct eff_attn_opts {
    double scale;                /* 0: 1/sqrt(d) (double, so the float64 reference matches exactly) */
    int causal;                  /* key j visible to query i only if j <= i + offset */
    int has_causal_offset;       /* 0: offset = Tk - Tq (bottom-right); 1: use causal_offset */
    int64_t causal_offset;       /* the diagonal used by causal and window (may be negative) */
    int window;                  /* 1: only keys with i+offset-window_left <= j <= i+offset+window_right */
    int64_t window_left, window_right;
    const eff_tensor *bias;      /* additive bias [Tq, Tk], [Hq|1, Tq, Tk] or [B|1, Hq|1, Tq, Tk], f32
                                    (f64 too for the reference); -inf hides an element */
    const eff_tensor *mask;      /* u8/i8 element mask (nonzero = attend), shapes as bias */
    const eff_attn_blockmask *block_mask;   /* block-sparse pattern (flash and reference) */
    int64_t kv_splits;           /* flash forward: 0 auto split-KV when few query tiles, 1 off, n splits */
} eff_attn_opts;

/* ---------------------------------------------------------------------------
   Reference attention (float64 accumulation; Q/K/V/O may be f32, bf16, f16 or f64)
   --------------------------------------------------------------------------- */
/* O = softmax(scale Q K^T + bias, masked) V; lse may be NULL. */
EFFDEF eff_status eff_attn_ref_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                       const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts);
/* dQ, dK, dV (any may be NULL) from dO by recomputing P in float64. */
EFFDEF eff_status eff_attn_ref_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                        const eff_tensor *dO, const eff_tensor *Q, const eff_tensor *K,
                                        const eff_tensor *V, const eff_attn_opts *opts);
/* The textbook algorithm: per head, S = Q K^T (a Tq x Tk f32 buffer, eff_sgemm), softmax,
   O = P V. f32 only. Exists to be compared with flash (time and peak bytes). */
EFFDEF eff_status eff_attn_naive_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                         const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts);

/* ---------------------------------------------------------------------------
   Flash attention (FlashAttention-2 loop order; Dao 2023, arXiv 2307.08691)
   Q/K/V/O/dO/dQ/dK/dV: f32, bf16 or f16 (any mix); lse f32. Head dims 1..256.
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_attn_flash_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                         const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts);
/* Needs O and lse from the forward pass (D = rowsum(dO * O) is computed here). */
EFFDEF eff_status eff_attn_flash_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                          const eff_tensor *dO, const eff_tensor *Q, const eff_tensor *K,
                                          const eff_tensor *V, const eff_tensor *O, const eff_tensor *lse,
                                          const eff_attn_opts *opts);

/* ---------------------------------------------------------------------------
   Merge of partial results over disjoint key sets:
   lse = m + log sum_a exp(lse_a - m), O = sum_a exp(lse_a - lse) O_a.   f32 tensors;
   O is [..., dv] and lse has O's leading dims. Rows whose partials are all -inf give O = 0.
   --------------------------------------------------------------------------- */
/* In place: (O, lse) <- merge((O, lse), (O2, lse2)). */
EFFDEF eff_status eff_attn_merge(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *O2,
                                 const eff_tensor *lse2);
/* (O, lse) <- merge of n partials Os[a], lses[a]. */
EFFDEF eff_status eff_attn_merge_n(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, int64_t n,
                                   const eff_tensor *Os, const eff_tensor *lses);

/* ---------------------------------------------------------------------------
   Block-sparse masks. Query tiles of bq rows, key tiles of bk keys. For each mask head
   (1 = shared by all heads, or one per query head) and query tile, the ascending list of
   key tiles that hold a visible element, each FULL (every element visible: no element
   test) or PARTIAL (elements decided by the rule below). The transpose (per key tile,
   its query tiles) drives the backward pass. The allowed(i, j) predicate, c = i + offset:
       CAUSAL   j <= c
       WINDOW   c - window_left <= j <= c + window_right
       DILATED  (c - j) mod stride == 0
       UNION    makes WINDOW, DILATED an "or" (Sparse Transformer strided) instead of "and"
       LOCAL    floor(c / block) == floor(j / block)
       SEGMENT  seg_q[i] == seg_k[j]
       allowed = all selected conditions hold, or (GLOBAL and (glob_q[i] or glob_k[j]))
   and a key tile absent from a query tile's list hides all its elements (BigBird's random
   blocks are tile-level choices). FlexAttention's BlockMask is the same idea.
   --------------------------------------------------------------------------- */
enum {
    EFF_ATTN_RULE_CAUSAL = 1, EFF_ATTN_RULE_WINDOW = 2, EFF_ATTN_RULE_DILATED = 4, EFF_ATTN_RULE_UNION = 8,
    EFF_ATTN_RULE_LOCAL = 16, EFF_ATTN_RULE_SEGMENT = 32, EFF_ATTN_RULE_GLOBAL = 64
};
enum { EFF_ATTN_TILE_FULL = 1, EFF_ATTN_TILE_PARTIAL = 2 };

typedef struct eff_attn_rule {
    uint32_t flags;                  /* EFF_ATTN_RULE_* ORed; 0 = every element allowed */
    int64_t offset;                  /* c = i + offset */
    int64_t window_left, window_right;
    int64_t stride;                  /* DILATED, >= 1 */
    int64_t block;                   /* LOCAL, >= 1 */
    const int32_t *seg_q, *seg_k;    /* SEGMENT: [Tq], [Tk] */
    const uint8_t *glob_q, *glob_k;  /* GLOBAL: [Tq], [Tk]; either may be NULL */
} eff_attn_rule;

struct eff_attn_blockmask {
    int64_t Tq, Tk;                  /* sequence lengths it was built for */
    int64_t bq, bk;                  /* tile sizes (the flash kernel uses these) */
    int64_t nqb, nkb;                /* ceil(Tq / bq), ceil(Tk / bk) */
    int64_t n_heads;                 /* 1, or one list per query head */
    int64_t nnz;                     /* tiles present, over all heads */
    int64_t *row_ptr;                /* [n_heads * (nqb + 1)]: head h, q tile t -> col[row_ptr[h*(nqb+1)+t] ..) */
    int32_t *col;                    /* key tile ids, ascending per row */
    uint8_t *kind;                   /* EFF_ATTN_TILE_FULL or _PARTIAL */
    int64_t *t_row_ptr;              /* transpose: [n_heads * (nkb + 1)] */
    int32_t *t_col;                  /* query tile ids, ascending */
    uint8_t *t_kind;
    eff_attn_rule rule;              /* seg/glob arrays point into mem */
    void *mem;                       /* one allocation owning everything above */
};

/* General builder: tiles present where the rule allows an element and (if layout is not
   NULL) layout[h][qt][kt] != 0 for layout of shape [n_heads][nqb][nkb]. bq/bk 0 -> 64. */
EFFDEF eff_status eff_attn_blockmask_build(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t Tq, int64_t Tk,
                                           int64_t bq, int64_t bk, int64_t n_heads, const eff_attn_rule *rule,
                                           const uint8_t *layout);
EFFDEF void       eff_attn_blockmask_free(eff_ctx *ctx, eff_attn_blockmask *bm);
/* Builders (tile 0 -> 64; square tiles; T = Tq = Tk except for causal). */
EFFDEF eff_status eff_attn_blockmask_causal(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t Tq, int64_t Tk, int64_t tile);
/* floor(i/block) == floor(j/block), optionally causal. */
EFFDEF eff_status eff_attn_blockmask_local(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t block,
                                           int causal, int64_t tile);
/* i - left <= j <= i + right (Longformer: left = right = w/2; Mistral: left = W - 1, right = 0). */
EFFDEF eff_status eff_attn_blockmask_window(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t left,
                                            int64_t right, int64_t tile);
/* Sparse Transformer strided (Child et al. 2019): causal and (i - j <= stride or (i - j) mod stride == 0). */
EFFDEF eff_status eff_attn_blockmask_strided(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t stride,
                                             int64_t tile);
/* Longformer dilated sliding window: |i - j| <= radius and (i - j) mod dilation == 0. */
EFFDEF eff_status eff_attn_blockmask_dilated(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t radius,
                                             int64_t dilation, int64_t tile);
/* Longformer global + window: |i - j| <= radius, or i or j is one of the n_global positions. */
EFFDEF eff_status eff_attn_blockmask_global(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t radius,
                                            const int64_t *global, int64_t n_global, int64_t tile);
/* BigBird (Zaheer et al. 2020, HF block layout): query block I sees blocks I-1, I, I+1, the
   first and last block (global, whose rows see everything) and n_random random blocks per
   head drawn from seed. Tiles are the blocks. */
EFFDEF eff_status eff_attn_blockmask_bigbird(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t block,
                                             int64_t n_random, int64_t n_heads, uint64_t seed);
/* Packed variable-length sequences (xformers BlockDiagonalMask): n_seqs sequences of
   seqlens[s] tokens back to back; attention only within a sequence, optionally causal. */
EFFDEF eff_status eff_attn_blockmask_varlen(eff_ctx *ctx, eff_attn_blockmask *bm, const int64_t *seqlens,
                                            int64_t n_seqs, int causal, int64_t tile);
/* 1 if the mask lets query i see key j for query head h (h is taken modulo n_heads), else 0. */
EFFDEF int        eff_attn_blockmask_allowed(const eff_attn_blockmask *bm, int64_t h, int64_t i, int64_t j);
/* Draws mask head h into buf (snprintf-style: returns the length it needs, writes at most
   size-1 chars + NUL). EFF_ATTN_RENDER_TILES: one char per tile ('#' full, '+' partial,
   '.' absent); _ELEMENTS: one char per element ('#' allowed, '.' not); _SVG: an SVG image
   of the elements with tile borders. */
enum { EFF_ATTN_RENDER_TILES = 0, EFF_ATTN_RENDER_ELEMENTS = 1, EFF_ATTN_RENDER_SVG = 2 };
EFFDEF int64_t    eff_attn_blockmask_render(const eff_attn_blockmask *bm, int64_t h, int mode, char *buf, int64_t size);


/* ---------------------------------------------------------------------------
   KV caches. A sequence's tokens live in slots: slot = position, or with a sliding window
   (Mistral's rolling buffer) slot = position for the first n_sink positions (StreamingLLM's
   attention sinks, never evicted) and n_sink + (position - n_sink) mod window after them.
   Contiguous caches give each sequence its own slots; paged caches (vLLM PagedAttention)
   map slot blocks of block_size tokens to a shared pool through a per-sequence block table,
   with reference counts so eff_attn_cache_fork shares a prefix and appends copy on write.
   A row (one token, one kv head) is stored as
       f32 / bf16 / f16   head_dim values
       i8                 f32 scale s = max|x| / 127, then head_dim int8 q = round(x / s)
       q8_0               ggml blocks of 32 (conversion from the context's dtype table:
                          eff_quant.h registers it; without it creation fails with EFF_ERR_DTYPE)
   Each layer appends its own K/V (len[seq][layer] counts them). Keys are stored pre-RoPE or
   post-RoPE as the model likes: the cache only keeps positions.
   --------------------------------------------------------------------------- */
typedef struct eff_attn_cache_opts {
    int dtype;               /* EFF_F32 (0, default), EFF_BF16, EFF_F16, EFF_I8, EFF_Q8_0 */
    int64_t n_layers;        /* 0 -> 1 */
    int64_t n_kv_heads;      /* required */
    int64_t head_dim;        /* required (a multiple of 32 for q8_0) */
    int64_t max_seqs;        /* 0 -> 1 */
    int64_t max_tokens;      /* slots per sequence without a window (required then) */
    int paged;               /* 1: paged pool with block tables */
    int64_t block_size;      /* paged: tokens per block, 0 -> 16 */
    int64_t n_blocks;        /* paged: pool size, 0 -> max_seqs * blocks per sequence */
    int64_t window;          /* > 0: keep only the last `window` tokens (plus the sinks) */
    int64_t n_sink;          /* with window: first positions never evicted (StreamingLLM uses 4) */
} eff_attn_cache_opts;

typedef struct eff_attn_cache {
    eff_attn_cache_opts opts;        /* resolved options */
    int64_t slots;                   /* per sequence: max_tokens, or n_sink + window */
    int64_t row_bytes;               /* one (token, kv head) row */
    int64_t blocks_per_seq;          /* paged: ceil(slots / block_size) */
    int64_t block_bytes;             /* paged: [n_layers][2][n_kv_heads][block_size] rows */
    unsigned char *data;             /* contiguous: [max_seqs][n_layers][2][n_kv_heads][slots] rows;
                                        paged: [n_blocks] blocks */
    int64_t *len;                    /* [max_seqs][n_layers]: tokens appended = next position */
    int32_t *block_table;            /* paged: [max_seqs][blocks_per_seq], -1 = unmapped */
    int32_t *refcount;               /* paged: [n_blocks] */
    int32_t *free_list;              /* paged: free block ids (a stack) */
    int64_t n_free;
    eff_to_float_fn to_float;        /* row conversion for q8_0 (from the context's traits) */
    eff_from_float_fn from_float;
    void *mem;
} eff_attn_cache;

EFFDEF eff_status eff_attn_cache_create(eff_ctx *ctx, eff_attn_cache *cache, const eff_attn_cache_opts *opts);
EFFDEF void       eff_attn_cache_free(eff_ctx *ctx, eff_attn_cache *cache);
/* Appends n tokens for one layer of one sequence: K, V [Hkv, n, d] or [1, Hkv, n, d], f32/bf16/f16. */
EFFDEF eff_status eff_attn_cache_append(eff_ctx *ctx, eff_attn_cache *cache, int64_t layer, int64_t seq,
                                        const eff_tensor *K, const eff_tensor *V);
/* Decode attention for the last Tq appended tokens of B sequences: Q [B, Hq, Tq, d] (f32/bf16/f16),
   O [B, Hq, Tq, d], lse [B, Hq, Tq] or NULL; seqs[b] is batch row b's sequence. Query i of row b
   sits at position p = len - Tq + i and sees every retained key at a position <= p (causal is
   implied), and with opts->window only positions in [p - window_left, p + window_right].
   opts: scale, window and kv_splits are used (kv_splits 0 = automatic split-KV when there are
   few heads); bias, mask and block_mask are not supported over a cache. */
EFFDEF eff_status eff_attn_cache_decode(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                        const eff_attn_cache *cache, int64_t layer, const int64_t *seqs,
                                        const eff_attn_opts *opts);
/* The retained tokens of (layer, seq) in slot order, dequantized: K, V f32 [Hkv, n, d] with
   n >= eff_attn_cache_count(); pos[n] gets their positions (may be NULL). *n_out = count. */
EFFDEF eff_status eff_attn_cache_gather(eff_ctx *ctx, const eff_attn_cache *cache, int64_t layer, int64_t seq,
                                        eff_tensor *K, eff_tensor *V, int64_t *pos, int64_t *n_out);
EFFDEF int64_t    eff_attn_cache_count(const eff_attn_cache *cache, int64_t layer, int64_t seq);  /* retained tokens */
/* Forgets the tokens of seq from position n on, in every layer (a rollback, e.g. rejected
   speculative tokens). Paged blocks no layer uses any more go back to the pool. A sliding-window
   cache that has already overwritten those positions' slots gives EFF_ERR_UNSUPPORTED. */
EFFDEF eff_status eff_attn_cache_truncate(eff_ctx *ctx, eff_attn_cache *cache, int64_t seq, int64_t n);
/* Forgets a sequence (paged: its blocks' refcounts drop; unused blocks return to the pool). */
EFFDEF eff_status eff_attn_cache_reset(eff_ctx *ctx, eff_attn_cache *cache, int64_t seq);
/* dst (reset first) becomes a copy of src: paged caches share the blocks (copy on write). */
EFFDEF eff_status eff_attn_cache_fork(eff_ctx *ctx, eff_attn_cache *cache, int64_t src, int64_t dst);
/* Bytes of K and V for a model: 2 * n_layers * n_kv_heads * n_tokens * row bytes of dtype
   (the row formats above). -1 on bad arguments or overflow. */
EFFDEF int64_t    eff_attn_kv_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t n_tokens, int dtype);


/* ---------------------------------------------------------------------------
   Linear and approximate attention
   --------------------------------------------------------------------------- */
/* Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): phi(x) = elu(x) + 1,
   O_i = phi(Q_i)^T S / (phi(Q_i) . z + 1e-6) with S = sum_j phi(K_j) V_j^T, z = sum_j phi(K_j);
   causal: the sums run over j <= i (prefix sums: the RNN form), and needs Tq == Tk.
   Shapes as flash (GQA allowed), f32/bf16/f16; f32 state. Cost O(T d dv), memory O(d dv) per head. */
EFFDEF eff_status eff_attn_linear_forward(eff_ctx *ctx, eff_tensor *O, const eff_tensor *Q, const eff_tensor *K,
                                          const eff_tensor *V, int causal);
EFFDEF eff_status eff_attn_linear_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                           const eff_tensor *dO, const eff_tensor *Q, const eff_tensor *K,
                                           const eff_tensor *V, int causal);
/* Linformer (Wang et al. 2020): K' = E K, V' = F V with E, F [kproj, Tk] f32 (shared by all
   heads), then softmax attention of Q over the kproj projected keys. Not causal (opts may set
   scale, bias [.., Tq, kproj] and mask; not causal, window or block_mask). f32 tensors.
   Backward writes dQ, dK, dV and adds into dE, dF (parameter gradients accumulate); it needs
   O and lse from the forward pass. */
EFFDEF eff_status eff_attn_linformer_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                             const eff_tensor *K, const eff_tensor *V, const eff_tensor *E,
                                             const eff_tensor *F, const eff_attn_opts *opts);
EFFDEF eff_status eff_attn_linformer_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                              eff_tensor *dE, eff_tensor *dF, const eff_tensor *dO,
                                              const eff_tensor *Q, const eff_tensor *K, const eff_tensor *V,
                                              const eff_tensor *E, const eff_tensor *F, const eff_tensor *O,
                                              const eff_tensor *lse, const eff_attn_opts *opts);
/* Reformer LSH attention (Kitaev et al. 2020). Shared query/key QK [B, H, T, d]; keys are
   QK_j / |QK_j|. Per hash round r: bucket(x) = argmax([x R_r; -x R_r]) with R [n_rounds, d,
   n_buckets/2] (eff_attn_lsh_rotations fills it), sort by (bucket, position), cut into chunks
   of `chunk`, each chunk attends to itself and the previous chunk (cyclically); causal hides
   later positions; a query sees itself only when it has no other key (its score is -1e5, as
   in the paper). Rounds are merged by lse (keys found in several rounds count several times,
   as in lucidrains' reformer-pytorch). V [B, H, T, dv]; f32. */
typedef struct eff_attn_lsh_opts {
    int64_t chunk;    /* 0 -> 64 */
    int causal;
    double scale;     /* 0 -> 1/sqrt(d) */
} eff_attn_lsh_opts;
EFFDEF eff_status eff_attn_lsh_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *QK,
                                       const eff_tensor *V, const eff_tensor *R, const eff_attn_lsh_opts *opts);
/* R [n_rounds, d, n_buckets/2] f32 <- N(0, 1) from seed (counter-based: same seed, same R). */
EFFDEF eff_status eff_attn_lsh_rotations(eff_ctx *ctx, eff_tensor *R, uint64_t seed);
/* LongNet dilated attention (Ding et al. 2023). For each pair (seg_len[k], dilation[k]): cut
   the sequence into segments of seg_len, keep the rows at offsets o, o + r, o + 2r, ... of each
   segment, where head h uses o = (h * r / Hq) mod r (the heads split into r groups), attend
   densely within the gathered rows (causal if opts->causal), and scatter back. The pairs are
   merged by lse (overlaps counted once per pair, by design). Rows no pair covers get O = 0,
   lse = -inf. Shapes as flash (GQA allowed, Tq == Tk); opts: scale and causal only. */
EFFDEF eff_status eff_attn_longnet_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                           const eff_tensor *K, const eff_tensor *V, const int64_t *seg_len,
                                           const int64_t *dilation, int64_t n_pairs, const eff_attn_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* EFF_ATTN_H */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_ATTN_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_ATTN_IMPLEMENTED)
#define EFF_ATTN_IMPLEMENTED
#define EFF__WANT_INTERNALS
#include "eff_tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Internal helpers: row conversions, views, the problem description
   --------------------------------------------------------------------------- */
#define EFF__ATTN_MAX_D 256      /* flash head-dim limit (tiles live in L1/L2) */
#define EFF__ATTN_REF_MAX_D 65536
/* Query tiles of at most this many rows (decode) compute S^T with dot products over d instead
   of the broadcast micro-kernel, which would spend a broadcast per key and per d. */
#define EFF__FA_DOT_ROWS 8

static void eff__attn_load_row(const void *src, int dt, float *dst, int64_t n) {
    int64_t i;
    switch (dt) {
    case EFF_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case EFF_BF16: eff_bf16_to_fp32_row((const uint16_t *)src, dst, n); break;
    case EFF_F16: eff_fp16_to_fp32_row((const uint16_t *)src, dst, n); break;
    case EFF_F64: for (i = 0; i < n; i++) dst[i] = (float)((const double *)src)[i]; break;
    default: for (i = 0; i < n; i++) dst[i] = 0.0f; break;
    }
}
static void eff__attn_store_row(const float *src, void *dst, int dt, int64_t n) {
    int64_t i;
    switch (dt) {
    case EFF_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case EFF_BF16: eff_fp32_to_bf16_row(src, (uint16_t *)dst, n); break;
    case EFF_F16: eff_fp32_to_fp16_row(src, (uint16_t *)dst, n); break;
    case EFF_F64: for (i = 0; i < n; i++) ((double *)dst)[i] = (double)src[i]; break;
    default: break;
    }
}
static void eff__attn_load_row_d(const void *src, int dt, double *dst, int64_t n) {
    int64_t i;
    switch (dt) {
    case EFF_F32: for (i = 0; i < n; i++) dst[i] = (double)((const float *)src)[i]; break;
    case EFF_BF16: for (i = 0; i < n; i++) dst[i] = (double)eff_bf16_to_fp32(((const uint16_t *)src)[i]); break;
    case EFF_F16: for (i = 0; i < n; i++) dst[i] = (double)eff_fp16_to_fp32(((const uint16_t *)src)[i]); break;
    case EFF_F64: memcpy(dst, src, (size_t)n * sizeof(double)); break;
    default: for (i = 0; i < n; i++) dst[i] = 0.0; break;
    }
}
static void eff__attn_store_row_d(const double *src, void *dst, int dt, int64_t n) {
    int64_t i;
    switch (dt) {
    case EFF_F32: for (i = 0; i < n; i++) ((float *)dst)[i] = (float)src[i]; break;
    case EFF_BF16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = eff_fp32_to_bf16((float)src[i]); break;
    case EFF_F16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = eff_fp32_to_fp16((float)src[i]); break;
    case EFF_F64: memcpy(dst, src, (size_t)n * sizeof(double)); break;
    default: break;
    }
}
EFF__INLINE double eff__attn_ld(const char *p, int dt) {
    switch (dt) {
    case EFF_F32: { float f; memcpy(&f, p, 4); return f; }
    case EFF_F64: { double x; memcpy(&x, p, 8); return x; }
    case EFF_BF16: { uint16_t u; memcpy(&u, p, 2); return eff_bf16_to_fp32(u); }
    case EFF_F16: { uint16_t u; memcpy(&u, p, 2); return eff_fp16_to_fp32(u); }
    default: return 0.0;
    }
}
EFF__INLINE int64_t eff__attn_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }
EFF__INLINE int64_t eff__attn_min(int64_t a, int64_t b) { return a < b ? a : b; }
EFF__INLINE int64_t eff__attn_max(int64_t a, int64_t b) { return a > b ? a : b; }
EFF__INLINE int64_t eff__attn_roundv(int64_t n) { return (n + EFF__VL - 1) / EFF__VL * EFF__VL; }
EFF__INLINE int64_t eff__attn_floordiv(int64_t a, int64_t b) { int64_t q = a / b; return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }
EFF__INLINE int64_t eff__attn_mod(int64_t a, int64_t b) { int64_t r = a % b; return r < 0 ? r + b : r; }

/* A [b][h][t][0:n] view with a contiguous last dim; byte strides (0 = broadcast dim). */
typedef struct eff__av { char *p; int dt; int64_t sb, sh, st, sj; } eff__av;
EFF__INLINE char *eff__av_row(const eff__av *v, int64_t b, int64_t h, int64_t t) {
    return v->p + b * v->sb + h * v->sh + t * v->st;
}

struct eff_attn_cache;

/* One attention call as every kernel sees it. */
typedef struct eff__fa {
    int64_t B, Hq, Hkv, G, Tq, Tk, d, dv;
    float scale;                       /* kernels */
    double scale_d;                    /* the float64 reference */
    int causal, window, elem;          /* elem: bias or mask present (every tile needs the element pass) */
    int64_t off, wl, wr;
    eff__av q, k, v, o, lse, bias, mask;
    const eff_attn_blockmask *bm;
    /* tiling (flash) */
    int64_t dp, dvp, bq, bk, bqp, nqt, nkt, hpt;
    /* KV-cache decode: keys come from a cache; Tk and offset differ per batch row */
    const struct eff_attn_cache *cache;
    int64_t layer;
    const int64_t *seq;                /* [B] cache sequence ids */
    int64_t *tk_b, *off_b;             /* [B] */
    int *wrap_b;                       /* [B] ring buffer wrapped: key positions not monotone */
} eff__fa;

EFF__INLINE int64_t eff__fa_tk(const eff__fa *F, int64_t b) { return F->tk_b ? F->tk_b[b] : F->Tk; }
EFF__INLINE int64_t eff__fa_off(const eff__fa *F, int64_t b) { return F->off_b ? F->off_b[b] : F->off; }

#define EFF__ATTN_DT_F32 1u
#define EFF__ATTN_DT_BF16 2u
#define EFF__ATTN_DT_F16 4u
#define EFF__ATTN_DT_F64 8u
#define EFF__ATTN_DT_FLOATS (EFF__ATTN_DT_F32 | EFF__ATTN_DT_BF16 | EFF__ATTN_DT_F16)

static unsigned eff__attn_dtbit(int dt) {
    switch (dt) {
    case EFF_F32: return EFF__ATTN_DT_F32;
    case EFF_BF16: return EFF__ATTN_DT_BF16;
    case EFF_F16: return EFF__ATTN_DT_F16;
    case EFF_F64: return EFF__ATTN_DT_F64;
    default: return 0;
    }
}

/* A CPU tensor of ndim dims, allowed dtype, contiguous last dim, expected sizes (-1 = any). */
static eff_status eff__attn_check(eff_ctx *ctx, const char *fn, const eff_tensor *t, const char *nm, unsigned dts,
                                  int ndim, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    int64_t want[4];
    int i;
    char buf[96];
    want[0] = n0; want[1] = n1; want[2] = n2; want[3] = n3;
    EFF__CHECK(ctx, t != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, nm);
    EFF__TRY(eff_tensor_validate(ctx, t, nm));
    EFF__CHECK(ctx, t->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED, "%s: '%s' is a CUDA tensor; this function runs on the CPU", fn, nm);
    EFF__CHECK(ctx, eff__attn_dtbit(t->dtype) & dts, EFF_ERR_DTYPE, "%s: '%s' has dtype %s, expected %s%s%s%s", fn, nm,
               eff_dtype_name(t->dtype), dts & EFF__ATTN_DT_F32 ? "f32 " : "", dts & EFF__ATTN_DT_BF16 ? "bf16 " : "",
               dts & EFF__ATTN_DT_F16 ? "f16 " : "", dts & EFF__ATTN_DT_F64 ? "f64" : "");
    EFF__CHECK(ctx, t->ndim == ndim, EFF_ERR_SHAPE, "%s: '%s' must have %d dims, got %s", fn, nm, ndim,
               eff_tensor_describe(t, buf, sizeof buf));
    for (i = 0; i < ndim; i++)
        EFF__CHECK(ctx, want[i] < 0 || t->ne[i] == want[i], EFF_ERR_SHAPE, "%s: '%s' dim %d is %lld, expected %lld (%s)", fn, nm,
                   i, (long long)t->ne[i], (long long)want[i], eff_tensor_describe(t, buf, sizeof buf));
    EFF__CHECK(ctx, ndim == 0 || t->ne[ndim - 1] <= 1 || t->nb[ndim - 1] == (int64_t)eff_dtype_type_size(t->dtype),
               EFF_ERR_SHAPE, "%s: '%s' needs a contiguous last dim (copy it with eff_tensor_contiguous)", fn, nm);
    return EFF_OK;
}

static eff__av eff__attn_view4(const eff_tensor *t) {
    eff__av v;
    v.p = (char *)t->data; v.dt = t->dtype;
    v.sb = t->ne[0] == 1 ? 0 : t->nb[0]; v.sh = t->ne[1] == 1 ? 0 : t->nb[1]; v.st = t->nb[2]; v.sj = t->nb[3];
    return v;
}
static eff__av eff__attn_view3(const eff_tensor *t) {   /* [B, H, T] -> rows of one element */
    eff__av v;
    v.p = (char *)t->data; v.dt = t->dtype;
    v.sb = t->nb[0]; v.sh = t->nb[1]; v.st = t->nb[2]; v.sj = 0;
    return v;
}

/* bias / mask: [Tq, Tk], [Hq|1, Tq, Tk] or [B|1, Hq|1, Tq, Tk] -> a broadcasting view. */
static eff_status eff__attn_bcast(eff_ctx *ctx, const char *fn, const eff_tensor *t, const char *nm, unsigned dts,
                                  int is_mask, const eff__fa *F, eff__av *v) {
    int64_t ne[4], nb[4];
    int i, nd;
    char buf[96];
    EFF__TRY(eff_tensor_validate(ctx, t, nm));
    EFF__CHECK(ctx, t->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED, "%s: '%s' is a CUDA tensor", fn, nm);
    if (is_mask)
        EFF__CHECK(ctx, t->dtype == EFF_U8 || t->dtype == EFF_I8, EFF_ERR_DTYPE, "%s: '%s' must be u8 or i8 (nonzero = attend), got %s",
                   fn, nm, eff_dtype_name(t->dtype));
    else
        EFF__CHECK(ctx, eff__attn_dtbit(t->dtype) & dts, EFF_ERR_DTYPE, "%s: '%s' must be f32%s, got %s", fn, nm,
                   (dts & EFF__ATTN_DT_F64) ? " or f64" : "", eff_dtype_name(t->dtype));
    nd = t->ndim;
    EFF__CHECK(ctx, nd >= 2 && nd <= 4, EFF_ERR_SHAPE, "%s: '%s' must be [Tq, Tk], [H, Tq, Tk] or [B, H, Tq, Tk], got %s", fn, nm,
               eff_tensor_describe(t, buf, sizeof buf));
    for (i = 0; i < 4; i++) { ne[i] = 1; nb[i] = 0; }
    for (i = 0; i < nd; i++) { ne[4 - nd + i] = t->ne[i]; nb[4 - nd + i] = t->nb[i]; }
    EFF__CHECK(ctx, ne[2] == F->Tq && ne[3] == F->Tk, EFF_ERR_SHAPE, "%s: '%s' is %s, its last dims must be [Tq=%lld, Tk=%lld]",
               fn, nm, eff_tensor_describe(t, buf, sizeof buf), (long long)F->Tq, (long long)F->Tk);
    EFF__CHECK(ctx, (ne[0] == 1 || ne[0] == F->B) && (ne[1] == 1 || ne[1] == F->Hq), EFF_ERR_SHAPE,
               "%s: '%s' is %s; leading dims must be 1 or [B=%lld, Hq=%lld]", fn, nm, eff_tensor_describe(t, buf, sizeof buf),
               (long long)F->B, (long long)F->Hq);
    v->p = (char *)t->data; v->dt = t->dtype;
    v->sb = ne[0] == 1 ? 0 : nb[0]; v->sh = ne[1] == 1 ? 0 : nb[1]; v->st = nb[2]; v->sj = nb[3];
    return EFF_OK;
}

/* Validates Q, K, V (and O, lse when given) and the options; fills F. */
static eff_status eff__fa_setup(eff_ctx *ctx, const char *fn, eff__fa *F, const eff_tensor *O, const eff_tensor *lse,
                                const eff_tensor *Q, const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts,
                                unsigned dts, int64_t max_d) {
    eff_attn_opts op;
    memset(F, 0, sizeof *F);
    memset(&op, 0, sizeof op);
    if (opts) op = *opts;
    EFF__TRY(eff__attn_check(ctx, fn, Q, "Q", dts, 4, -1, -1, -1, -1));
    F->B = Q->ne[0]; F->Hq = Q->ne[1]; F->Tq = Q->ne[2]; F->d = Q->ne[3];
    EFF__TRY(eff__attn_check(ctx, fn, K, "K", dts, 4, F->B, -1, -1, F->d));
    F->Hkv = K->ne[1]; F->Tk = K->ne[2];
    EFF__TRY(eff__attn_check(ctx, fn, V, "V", dts, 4, F->B, F->Hkv, F->Tk, -1));
    F->dv = V->ne[3];
    EFF__CHECK(ctx, F->Hkv >= 1 && F->Hq % F->Hkv == 0, EFF_ERR_SHAPE,
               "%s: Q has %lld heads, not a multiple of K's %lld kv heads (GQA needs Hq %% Hkv == 0)", fn,
               (long long)F->Hq, (long long)F->Hkv);
    EFF__CHECK(ctx, F->d >= 1 && F->d <= max_d && F->dv >= 1 && F->dv <= max_d, EFF_ERR_SHAPE,
               "%s: head dims d=%lld, dv=%lld must be in [1, %lld]", fn, (long long)F->d, (long long)F->dv, (long long)max_d);
    F->G = F->Hq / F->Hkv;
    if (O) {
        EFF__TRY(eff__attn_check(ctx, fn, O, "O", dts, 4, F->B, F->Hq, F->Tq, F->dv));
        F->o = eff__attn_view4(O);
    }
    if (lse) {
        EFF__TRY(eff__attn_check(ctx, fn, lse, "lse", EFF__ATTN_DT_F32 | (dts & EFF__ATTN_DT_F64), 3, F->B, F->Hq, F->Tq, -1));
        F->lse = eff__attn_view3(lse);
    }
    F->q = eff__attn_view4(Q); F->k = eff__attn_view4(K); F->v = eff__attn_view4(V);
    EFF__CHECK(ctx, op.scale == op.scale && op.scale != INFINITY && op.scale != -INFINITY, EFF_ERR_INVALID_ARG,
               "%s: opts->scale is not finite", fn);
    F->scale_d = op.scale != 0.0 ? op.scale : 1.0 / sqrt((double)F->d);
    F->scale = (float)F->scale_d;
    F->causal = op.causal != 0;
    F->window = op.window != 0;
    F->off = op.has_causal_offset ? op.causal_offset : F->Tk - F->Tq;
    if (F->window) {
        EFF__CHECK(ctx, op.window_left >= 0 && op.window_right >= 0, EFF_ERR_INVALID_ARG,
                   "%s: opts->window_left (%lld) and window_right (%lld) must be >= 0", fn, (long long)op.window_left,
                   (long long)op.window_right);
        F->wl = op.window_left; F->wr = op.window_right;
    }
    EFF__CHECK(ctx, op.kv_splits >= 0, EFF_ERR_INVALID_ARG, "%s: opts->kv_splits is negative", fn);
    if (op.bias) { EFF__TRY(eff__attn_bcast(ctx, fn, op.bias, "opts->bias", EFF__ATTN_DT_F32 | (dts & EFF__ATTN_DT_F64), 0, F, &F->bias)); F->elem = 1; }
    if (op.mask) { EFF__TRY(eff__attn_bcast(ctx, fn, op.mask, "opts->mask", 0, 1, F, &F->mask)); F->elem = 1; }
    if (op.block_mask) {
        const eff_attn_blockmask *bm = op.block_mask;
        EFF__CHECK(ctx, bm->row_ptr && bm->col && bm->kind && bm->t_row_ptr && bm->t_col && bm->t_kind, EFF_ERR_INVALID_ARG,
                   "%s: opts->block_mask was not built (use eff_attn_blockmask_build or a builder)", fn);
        EFF__CHECK(ctx, bm->Tq == F->Tq && bm->Tk == F->Tk, EFF_ERR_SHAPE,
                   "%s: opts->block_mask was built for Tq=%lld, Tk=%lld but Q, K have Tq=%lld, Tk=%lld", fn, (long long)bm->Tq,
                   (long long)bm->Tk, (long long)F->Tq, (long long)F->Tk);
        EFF__CHECK(ctx, bm->n_heads == 1 || bm->n_heads == F->Hq, EFF_ERR_SHAPE,
                   "%s: opts->block_mask has %lld heads; it needs 1 or Hq=%lld", fn, (long long)bm->n_heads, (long long)F->Hq);
        F->bm = bm;
    }
    return EFF_OK;
}

/* 1 if query i of head h (batch b) sees key j under the causal/window/mask options; adds bias to *s.
   rule: the block mask's element rule (NULL: not needed). */
static int eff__rule_ok(const eff_attn_rule *r, int64_t i, int64_t j);
EFF__INLINE int eff__fa_vis(const eff__fa *F, int64_t b, int64_t h, int64_t i, int64_t j, int64_t kp, int64_t off,
                            const eff_attn_rule *rule, double *s) {
    int64_t c = i + off;
    if (F->causal && kp > c) return 0;
    if (F->window && (kp < c - F->wl || kp > c + F->wr)) return 0;
    if (F->mask.p && !*(eff__av_row(&F->mask, b, h, i) + j * F->mask.sj)) return 0;
    if (rule && !eff__rule_ok(rule, i, j)) return 0;
    if (F->bias.p) *s += eff__attn_ld(eff__av_row(&F->bias, b, h, i) + j * F->bias.sj, F->bias.dt);
    return 1;
}

/* ---------------------------------------------------------------------------
   Reference attention (float64)
   --------------------------------------------------------------------------- */
/* Scores of row (b, h, i) into s[0:Tk] (-inf where hidden); returns the max. */
static double eff__ref_scores(const eff__fa *F, int64_t b, int64_t h, int64_t i, const double *q, double *s, double *krow) {
    int64_t j, k, hk = h / F->G;
    double m = -INFINITY;
    for (j = 0; j < F->Tk; j++) {
        double acc = 0.0, sj = 0.0;
        if (F->bm && !eff_attn_blockmask_allowed(F->bm, h, i, j)) { s[j] = -INFINITY; continue; }
        if (!eff__fa_vis(F, b, h, i, j, j, F->off, NULL, &sj)) { s[j] = -INFINITY; continue; }
        eff__attn_load_row_d(eff__av_row(&F->k, b, hk, j), F->k.dt, krow, F->d);
        for (k = 0; k < F->d; k++) acc += q[k] * krow[k];
        s[j] = F->scale_d * acc + sj;
        if (s[j] > m) m = s[j];
    }
    return m;
}

/* s[j] <- softmax probabilities (0 for hidden keys and for rows that see nothing); returns lse. */
static double eff__ref_softmax(int64_t n, double *s, double m) {
    int64_t j;
    double sum = 0.0;
    if (m == -INFINITY) { for (j = 0; j < n; j++) s[j] = 0.0; return -INFINITY; }
    for (j = 0; j < n; j++) { s[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - m); sum += s[j]; }
    for (j = 0; j < n; j++) s[j] /= sum;
    return m + log(sum);
}

EFFDEF eff_status eff_attn_ref_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                       const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_ref_forward";
    eff__fa F;
    int nt;
    int64_t rows, r, per;
    double *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__TRY(eff__fa_setup(ctx, fn, &F, O, lse, Q, K, V, opts, EFF__ATTN_DT_FLOATS | EFF__ATTN_DT_F64, EFF__ATTN_REF_MAX_D));
    nt = eff_ctx_n_threads(ctx);
    rows = F.B * F.Hq * F.Tq;
    per = F.Tk + F.d + 2 * (F.d > F.dv ? F.d : F.dv) + 8;
    ws = (double *)eff_ctx_alloc(ctx, (size_t)(nt * per) * sizeof(double));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 4) if (nt > 1 && rows > 1))
    for (r = 0; r < rows; r++) {
        double *s = ws + (int64_t)eff__tid() * per, *q = s + F.Tk, *acc = q + F.d, *row = acc + (F.d > F.dv ? F.d : F.dv);
        int64_t i = r % F.Tq, h = (r / F.Tq) % F.Hq, b = r / (F.Tq * F.Hq), hk = h / F.G, j, c;
        double m, l;
        eff__attn_load_row_d(eff__av_row(&F.q, b, h, i), F.q.dt, q, F.d);
        m = eff__ref_scores(&F, b, h, i, q, s, row);
        l = eff__ref_softmax(F.Tk, s, m);
        for (c = 0; c < F.dv; c++) acc[c] = 0.0;
        for (j = 0; j < F.Tk; j++) {
            if (s[j] == 0.0) continue;
            eff__attn_load_row_d(eff__av_row(&F.v, b, hk, j), F.v.dt, row, F.dv);
            for (c = 0; c < F.dv; c++) acc[c] += s[j] * row[c];
        }
        eff__attn_store_row_d(acc, eff__av_row(&F.o, b, h, i), F.o.dt, F.dv);
        if (F.lse.p) eff__attn_store_row_d(&l, eff__av_row(&F.lse, b, h, i), F.lse.dt, 1);
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

EFFDEF eff_status eff_attn_ref_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                        const eff_tensor *dO, const eff_tensor *Q, const eff_tensor *K,
                                        const eff_tensor *V, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_ref_backward";
    const unsigned dts = EFF__ATTN_DT_FLOATS | EFF__ATTN_DT_F64;
    eff__fa F;
    eff__av vdo, vdq, vdk, vdv;
    int nt;
    int64_t groups, g, per;
    double *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__fa_setup(ctx, fn, &F, NULL, NULL, Q, K, V, opts, dts, EFF__ATTN_REF_MAX_D));
    EFF__TRY(eff__attn_check(ctx, fn, dO, "dO", dts, 4, F.B, F.Hq, F.Tq, F.dv));
    vdo = eff__attn_view4(dO);
    memset(&vdq, 0, sizeof vdq); memset(&vdk, 0, sizeof vdk); memset(&vdv, 0, sizeof vdv);
    if (dQ) { EFF__TRY(eff__attn_check(ctx, fn, dQ, "dQ", dts, 4, F.B, F.Hq, F.Tq, F.d)); vdq = eff__attn_view4(dQ); }
    if (dK) { EFF__TRY(eff__attn_check(ctx, fn, dK, "dK", dts, 4, F.B, F.Hkv, F.Tk, F.d)); vdk = eff__attn_view4(dK); }
    if (dV) { EFF__TRY(eff__attn_check(ctx, fn, dV, "dV", dts, 4, F.B, F.Hkv, F.Tk, F.dv)); vdv = eff__attn_view4(dV); }
    nt = eff_ctx_n_threads(ctx);
    groups = F.B * F.Hkv;
    /* per thread: s, dp [Tk]; q, dq [d]; do [dv]; row [max]; dK acc [Tk*d]; dV acc [Tk*dv] */
    per = 2 * F.Tk + 3 * F.d + 2 * F.dv + F.Tk * (F.d + F.dv) + 8;
    ws = (double *)eff_ctx_alloc(ctx, (size_t)(nt * per) * sizeof(double));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && groups > 1))
    for (g = 0; g < groups; g++) {
        double *s = ws + (int64_t)eff__tid() * per, *dp = s + F.Tk, *q = dp + F.Tk, *dq = q + F.d, *dov = dq + F.d;
        double *row = dov + F.dv, *dka = row + (F.d > F.dv ? F.d : F.dv), *dva = dka + F.Tk * F.d;
        int64_t b = g / F.Hkv, hk = g % F.Hkv, hh, i, j, c;
        memset(dka, 0, (size_t)(F.Tk * (F.d + F.dv)) * sizeof(double));
        for (hh = 0; hh < F.G; hh++) {
            int64_t h = hk * F.G + hh;
            for (i = 0; i < F.Tq; i++) {
                double m, Dsum = 0.0;
                eff__attn_load_row_d(eff__av_row(&F.q, b, h, i), F.q.dt, q, F.d);
                eff__attn_load_row_d(eff__av_row(&vdo, b, h, i), vdo.dt, dov, F.dv);
                m = eff__ref_scores(&F, b, h, i, q, s, row);
                eff__ref_softmax(F.Tk, s, m);
                for (j = 0; j < F.Tk; j++) {
                    double acc = 0.0;
                    if (s[j] == 0.0) { dp[j] = 0.0; continue; }
                    eff__attn_load_row_d(eff__av_row(&F.v, b, hk, j), F.v.dt, row, F.dv);
                    for (c = 0; c < F.dv; c++) { acc += dov[c] * row[c]; dva[j * F.dv + c] += s[j] * dov[c]; }
                    dp[j] = acc;
                    Dsum += s[j] * acc;
                }
                for (c = 0; c < F.d; c++) dq[c] = 0.0;
                for (j = 0; j < F.Tk; j++) {
                    double ds;
                    if (s[j] == 0.0) continue;
                    ds = F.scale_d * s[j] * (dp[j] - Dsum);
                    eff__attn_load_row_d(eff__av_row(&F.k, b, hk, j), F.k.dt, row, F.d);
                    for (c = 0; c < F.d; c++) { dq[c] += ds * row[c]; dka[j * F.d + c] += ds * q[c]; }
                }
                if (vdq.p) eff__attn_store_row_d(dq, eff__av_row(&vdq, b, h, i), vdq.dt, F.d);
            }
        }
        for (j = 0; j < F.Tk; j++) {
            if (vdk.p) eff__attn_store_row_d(dka + j * F.d, eff__av_row(&vdk, b, hk, j), vdk.dt, F.d);
            if (vdv.p) eff__attn_store_row_d(dva + j * F.dv, eff__av_row(&vdv, b, hk, j), vdv.dt, F.dv);
        }
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Naive attention: the T x T score matrix, via eff_sgemm
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_attn_naive_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                         const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_naive_forward";
    eff__fa F;
    float *S;
    int nt;
    int64_t b, h;
    eff_status st = EFF_OK;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__TRY(eff__fa_setup(ctx, fn, &F, O, lse, Q, K, V, opts, EFF__ATTN_DT_F32, EFF__ATTN_REF_MAX_D));
    EFF__CHECK(ctx, F.q.st % 4 == 0 && F.k.st % 4 == 0 && F.v.st % 4 == 0 && F.o.st % 4 == 0, EFF_ERR_SHAPE,
               "%s: row strides of Q, K, V, O must be multiples of 4 bytes", fn);
    if (F.Tq == 0 || F.B == 0 || F.Hq == 0) return EFF_OK;
    nt = eff_ctx_n_threads(ctx);
    (void)nt;
    S = (float *)eff_ctx_alloc(ctx, (size_t)(F.Tq * (F.Tk > 0 ? F.Tk : 1)) * sizeof(float));
    if (!S) return EFF_ERR_OOM;
    for (b = 0; b < F.B && st == EFF_OK; b++)
        for (h = 0; h < F.Hq && st == EFF_OK; h++) {
            int64_t hk = h / F.G, i;
            const float *q = (const float *)eff__av_row(&F.q, b, h, 0), *k = (const float *)eff__av_row(&F.k, b, hk, 0);
            const float *v = (const float *)eff__av_row(&F.v, b, hk, 0);
            float *o = (float *)eff__av_row(&F.o, b, h, 0);
            if (F.Tk > 0) st = eff_sgemm(ctx, 0, 1, F.Tq, F.Tk, F.d, F.scale, q, F.q.st / 4, k, F.k.st / 4, 0.0f, S, F.Tk);
            if (st != EFF_OK) break;
            EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && F.Tq * F.Tk > 32768))
            for (i = 0; i < F.Tq; i++) {
                float *s = S + i * F.Tk, m = -INFINITY, sum = 0.0f, inv;
                int64_t j;
                for (j = 0; j < F.Tk; j++) {
                    double bb = 0.0;
                    if (!eff__fa_vis(&F, b, h, i, j, j, F.off, NULL, &bb) ||
                        (F.bm && !eff_attn_blockmask_allowed(F.bm, h, i, j))) s[j] = -INFINITY;
                    else s[j] += (float)bb;
                    if (s[j] > m) m = s[j];
                }
                for (j = 0; j < F.Tk; j++) { s[j] = m == -INFINITY ? 0.0f : expf(s[j] - m); sum += s[j]; }
                inv = sum > 0.0f ? 1.0f / sum : 0.0f;
                for (j = 0; j < F.Tk; j++) s[j] *= inv;
                if (F.lse.p) *(float *)eff__av_row(&F.lse, b, h, i) = sum > 0.0f ? m + logf(sum) : -INFINITY;
            }
            if (F.Tk > 0) st = eff_sgemm(ctx, 0, 0, F.Tq, F.dv, F.Tk, 1.0f, S, F.Tk, v, F.v.st / 4, 0.0f, o, F.o.st / 4);
            else for (i = 0; i < F.Tq; i++) memset(o + i * (F.o.st / 4), 0, (size_t)F.dv * sizeof(float));
        }
    eff_ctx_free(ctx, S);
    return st;
}

/* ---------------------------------------------------------------------------
   Flash attention. Tiles are computed "keys as rows": S^T[j][r] = K_j . Q_r, so the
   online-softmax statistics of each query r are vectors across the tile's columns
   (no horizontal reductions), K and V are read in their natural layout (no packing for
   f32), and only Q^T is packed, once per query tile. All products go through one
   register-tiled micro-kernel:
       C[m][0:N] (=, +=, or = rs[m] C[m] +) sum_r A[m*sam + r*sar] * B[r*ldb + 0:N]
   which covers S^T = K Q^T, O = P^T V and the five backward products.
   --------------------------------------------------------------------------- */
#if defined(__GNUC__) && !defined(__clang__)
#define EFF__ATTN_UNROLL _Pragma("GCC unroll 16")
#else
#define EFF__ATTN_UNROLL
#endif

#define EFF__AMM_DEF(MR, NV)                                                                                 \
    static void eff__amm_##MR##_##NV(int64_t R, const float *EFF__RESTRICT A, int64_t sam, int64_t sar,      \
                                     const float *EFF__RESTRICT B, int64_t ldb, float *EFF__RESTRICT C,       \
                                     int64_t ldc, int mode, const float *rs) {                                \
        eff__vf acc[MR][NV];                                                                                 \
        int i, v;                                                                                            \
        int64_t r;                                                                                           \
        EFF__ATTN_UNROLL for (i = 0; i < MR; i++) {                                                          \
            eff__vf sc = eff__vset1(mode == 2 ? rs[i] : 1.0f);                                               \
            EFF__ATTN_UNROLL for (v = 0; v < NV; v++) acc[i][v] = mode == 0 ? eff__vzero()                   \
                : mode == 1 ? eff__vload(C + i * ldc + v * EFF__VL) : eff__vmul(eff__vload(C + i * ldc + v * EFF__VL), sc); \
        }                                                                                                    \
        for (r = 0; r < R; r++) {                                                                            \
            eff__vf bv[NV];                                                                                  \
            const float *a = A + r * sar;                                                                    \
            EFF__ATTN_UNROLL for (v = 0; v < NV; v++) bv[v] = eff__vload(B + r * ldb + v * EFF__VL);         \
            EFF__ATTN_UNROLL for (i = 0; i < MR; i++) {                                                      \
                eff__vf av = eff__vset1(a[i * sam]);                                                         \
                EFF__ATTN_UNROLL for (v = 0; v < NV; v++) acc[i][v] = eff__vfma(av, bv[v], acc[i][v]);       \
            }                                                                                                \
        }                                                                                                    \
        EFF__ATTN_UNROLL for (i = 0; i < MR; i++)                                                            \
            EFF__ATTN_UNROLL for (v = 0; v < NV; v++) eff__vstore(C + i * ldc + v * EFF__VL, acc[i][v]);     \
    }
#define EFF__AMM_ROW(MR) EFF__AMM_DEF(MR, 1) EFF__AMM_DEF(MR, 2) EFF__AMM_DEF(MR, 3) EFF__AMM_DEF(MR, 4)
EFF__AMM_ROW(1) EFF__AMM_ROW(2) EFF__AMM_ROW(3) EFF__AMM_ROW(4) EFF__AMM_ROW(5) EFF__AMM_ROW(6)
#undef EFF__AMM_ROW
#undef EFF__AMM_DEF

typedef void (*eff__amm_fn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *, int64_t, int,
                            const float *);
static const eff__amm_fn eff__amm_tab[6][4] = {
    {eff__amm_1_1, eff__amm_1_2, eff__amm_1_3, eff__amm_1_4}, {eff__amm_2_1, eff__amm_2_2, eff__amm_2_3, eff__amm_2_4},
    {eff__amm_3_1, eff__amm_3_2, eff__amm_3_3, eff__amm_3_4}, {eff__amm_4_1, eff__amm_4_2, eff__amm_4_3, eff__amm_4_4},
    {eff__amm_5_1, eff__amm_5_2, eff__amm_5_3, eff__amm_5_4}, {eff__amm_6_1, eff__amm_6_2, eff__amm_6_3, eff__amm_6_4}};

/* Register tile: 6 rows x 4 vectors uses 24 of AVX-512's / NEON's 32 registers; AVX2 has 16. */
#if defined(EFF__VL) && EFF__VL == 8
#define EFF__AMM_NV 2
#else
#define EFF__AMM_NV 4
#endif

/* C[M][N] (op)= A B as above; N a multiple of EFF__VL. mode 0: =, 1: +=, 2: = rs[m] * C[m] + . */
static void eff__amm(int64_t M, int64_t N, int64_t R, const float *A, int64_t sam, int64_t sar, const float *B,
                     int64_t ldb, float *C, int64_t ldc, int mode, const float *rs) {
    int64_t n0, m0;
    for (n0 = 0; n0 < N; n0 += EFF__AMM_NV * EFF__VL) {
        int nv = (int)((N - n0) / EFF__VL);
        if (nv > EFF__AMM_NV) nv = EFF__AMM_NV;
        for (m0 = 0; m0 < M; m0 += 6) {
            int mr = M - m0 < 6 ? (int)(M - m0) : 6;
            eff__amm_tab[mr - 1][nv - 1](R, A + m0 * sam, sam, sar, B + n0, ldb, C + m0 * ldc + n0, ldc, mode,
                                          rs ? rs + m0 : NULL);
        }
    }
}

/* Per-thread scratch, carved from one eff_ctx_alloc. */
typedef struct eff__fa_ws {
    float *qt, *st, *kb, *vb, *o, *m, *l, *al, *row;    /* forward */
    float *qr;                                           /* decode: scaled Q rows [bq][dp] */
    float *qn, *dot, *don, *dpt, *dk, *dva, *L, *D;     /* backward */
    int32_t *tl; uint8_t *tk;                            /* tile list */
    int64_t *kpos;                                       /* key positions (caches) */
} eff__fa_ws;

/* Carves nfloats (64-byte aligned) at offset *off; pointers only when base != NULL. */
EFF__INLINE float *eff__ws_take(char *base, int64_t *off, int64_t nfloats) {
    float *r = base ? (float *)(base + *off) : NULL;
    *off += ((nfloats * 4 + 63) / 64) * 64;
    return r;
}
/* Bytes of one thread's scratch; lays it out into w when base != NULL. */
static int64_t eff__fa_ws_layout(const eff__fa *F, int bwd, int64_t extra_floats, char *base, eff__fa_ws *w) {
    int64_t off = 0, dmax = F->d > F->dv ? F->d : F->dv, ntl = eff__attn_max(F->nkt, F->nqt) + 1;
    eff__fa_ws t;
    memset(&t, 0, sizeof t);
    t.qt = eff__ws_take(base, &off, F->d * F->bqp);
    t.st = eff__ws_take(base, &off, F->bk * F->bqp);
    t.kb = eff__ws_take(base, &off, F->bk * F->dp);
    t.vb = eff__ws_take(base, &off, F->bk * F->dvp);
    t.o = eff__ws_take(base, &off, F->bqp * F->dvp);
    t.m = eff__ws_take(base, &off, F->bqp);
    t.l = eff__ws_take(base, &off, F->bqp);
    t.al = eff__ws_take(base, &off, F->bqp);
    t.row = eff__ws_take(base, &off, eff__attn_roundv(dmax) + EFF__VL);
    if (!bwd && F->bq <= EFF__FA_DOT_ROWS) t.qr = eff__ws_take(base, &off, F->bq * F->dp);
    if (bwd) {
        t.qn = eff__ws_take(base, &off, F->bq * F->dp);
        t.dot = eff__ws_take(base, &off, F->dv * F->bqp);
        t.don = eff__ws_take(base, &off, F->bq * F->dvp);
        t.dpt = eff__ws_take(base, &off, F->bk * F->bqp);
        t.dk = eff__ws_take(base, &off, F->bk * F->dp);
        t.dva = eff__ws_take(base, &off, F->bk * F->dvp);
        t.L = eff__ws_take(base, &off, F->bqp);
        t.D = eff__ws_take(base, &off, F->bqp);
    }
    t.tl = (int32_t *)eff__ws_take(base, &off, ntl);
    t.tk = (uint8_t *)eff__ws_take(base, &off, (ntl + 3) / 4);
    t.kpos = (int64_t *)eff__ws_take(base, &off, 2 * F->bk);
    if (extra_floats) (void)eff__ws_take(base, &off, extra_floats);
    if (w) *w = t;
    return off;
}

/* Threads in the current OpenMP team (1 outside a parallel region or without OpenMP). */
EFF__INLINE int eff__attn_team(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* st[jj*ld + r] = K_jj . qr_r for nq <= EFF__FA_DOT_ROWS rows, columns nq.. up to ld zeroed. */
static void eff__fa_scores_dot(int64_t nk, int64_t nq, int64_t d, const float *kp, int64_t ldk, const float *qr, int64_t ldq,
                               float *st, int64_t ld) {
    const int64_t dv = d / EFF__VL * EFF__VL;
    int64_t jj, r, k;
    for (jj = 0; jj < nk; jj++) {
        const float *kr = kp + jj * ldk;
        float *srow = st + jj * ld;
        for (r = 0; r < nq; r++) {
            const float *q = qr + r * ldq;
            eff__vf acc = eff__vzero();
            float tail = 0.0f;
            for (k = 0; k < dv; k += EFF__VL) acc = eff__vfma(eff__vload(kr + k), eff__vload(q + k), acc);
            for (k = dv; k < d; k++) tail += kr[k] * q[k];
            srow[r] = eff__vhsum(acc) + tail;
        }
        for (r = nq; r < ld; r++) srow[r] = 0.0f;
    }
}

/* Tile kinds: bit 0 = needs the element pass, bit 1 = also the block mask's rule. */
#define EFF__TK_ELEM 1
#define EFF__TK_RULE 2

/* Kind of the tile of query rows [i0, i0+ni) x keys [j0, j0+nk) under causal/window:
   -1 = nothing visible, 0 = all visible, EFF__TK_ELEM = mixed (or bias/mask present). */
static int eff__fa_kind(const eff__fa *F, int64_t off, int64_t i0, int64_t ni, int64_t j0, int64_t nk) {
    int64_t c0 = i0 + off, c1 = i0 + ni - 1 + off, j1 = j0 + nk - 1;
    int full = 1;
    if (F->causal) { if (j0 > c1) return -1; if (j1 > c0) full = 0; }
    if (F->window) {
        if (j0 > c1 + F->wr || j1 < c0 - F->wl) return -1;
        if (j0 < c1 - F->wl || j1 > c0 + F->wr) full = 0;
    }
    return full && !F->elem ? 0 : EFF__TK_ELEM;
}

/* Key tiles seen by query rows [i0, i0+ni) of head h (and batch b): ids into tl, kinds into tk. */
static int64_t eff__fa_key_tiles(const eff__fa *F, int64_t b, int64_t h, int64_t i0, int64_t ni, int32_t *tl, uint8_t *tk) {
    int64_t n = 0, Tk = eff__fa_tk(F, b), off = eff__fa_off(F, b), t;
    if (F->wrap_b && F->wrap_b[b]) {   /* ring-buffer cache: positions are not ordered by slot */
        int kind = (F->causal && F->Tq > 1) || F->window ? EFF__TK_ELEM : 0;
        for (t = 0; t * F->bk < Tk; t++) { tl[n] = (int32_t)t; tk[n] = (uint8_t)kind; n++; }
        return n;
    }
    if (F->bm) {
        const eff_attn_blockmask *bm = F->bm;
        const int64_t *rp = bm->row_ptr + (h % bm->n_heads) * (bm->nqb + 1);
        int64_t qt = i0 / F->bq, e;
        for (e = rp[qt]; e < rp[qt + 1]; e++) {
            int64_t j0 = (int64_t)bm->col[e] * F->bk;
            int k = eff__fa_kind(F, off, i0, ni, j0, eff__attn_min(F->bk, Tk - j0));
            if (k < 0) continue;
            tl[n] = bm->col[e];
            tk[n] = (uint8_t)(k | (bm->kind[e] == EFF_ATTN_TILE_PARTIAL ? EFF__TK_ELEM | EFF__TK_RULE : 0));
            n++;
        }
        return n;
    }
    {
        int64_t lo = 0, hi = Tk, c0 = i0 + off, c1 = i0 + ni - 1 + off;
        if (F->causal) hi = eff__attn_min(hi, c1 + 1);
        if (F->window) { lo = eff__attn_max(lo, c0 - F->wl); hi = eff__attn_min(hi, c1 + F->wr + 1); }
        if (hi <= lo) return 0;
        for (t = lo / F->bk; t * F->bk < hi; t++) {
            int64_t j0 = t * F->bk;
            int k = eff__fa_kind(F, off, i0, ni, j0, eff__attn_min(F->bk, Tk - j0));
            if (k < 0) continue;
            tl[n] = (int32_t)t; tk[n] = (uint8_t)k; n++;
        }
    }
    return n;
}

/* Query tiles that see keys [j0, j0+nk) for head h (backward). */
static int64_t eff__fa_query_tiles(const eff__fa *F, int64_t h, int64_t kt, int32_t *tl, uint8_t *tk) {
    int64_t n = 0, j0 = kt * F->bk, nk = eff__attn_min(F->bk, F->Tk - j0), t;
    if (F->bm) {
        const eff_attn_blockmask *bm = F->bm;
        const int64_t *rp = bm->t_row_ptr + (h % bm->n_heads) * (bm->nkb + 1);
        int64_t e;
        for (e = rp[kt]; e < rp[kt + 1]; e++) {
            int64_t i0 = (int64_t)bm->t_col[e] * F->bq;
            int k = eff__fa_kind(F, F->off, i0, eff__attn_min(F->bq, F->Tq - i0), j0, nk);
            if (k < 0) continue;
            tl[n] = bm->t_col[e];
            tk[n] = (uint8_t)(k | (bm->t_kind[e] == EFF_ATTN_TILE_PARTIAL ? EFF__TK_ELEM | EFF__TK_RULE : 0));
            n++;
        }
        return n;
    }
    {
        int64_t lo = 0, hi = F->Tq;   /* query rows [lo, hi) that may see a key of the tile */
        if (F->causal) lo = eff__attn_max(lo, j0 - F->off);
        if (F->window) { lo = eff__attn_max(lo, j0 - F->off - F->wr); hi = eff__attn_min(hi, j0 + nk - 1 - F->off + F->wl + 1); }
        if (hi <= lo) return 0;
        for (t = lo / F->bq; t * F->bq < hi; t++) {
            int64_t i0 = t * F->bq;
            int k = eff__fa_kind(F, F->off, i0, eff__attn_min(F->bq, F->Tq - i0), j0, nk);
            if (k < 0) continue;
            tl[n] = (int32_t)t; tk[n] = (uint8_t)k; n++;
        }
    }
    return n;
}

/* The element pass over a S^T tile: st[jj*ld + hh*ni + ii] is key j0+jj against query i0+ii of
   head h0+hh. Hidden elements become -inf, visible ones get the bias. kpos: key positions
   (caches) or NULL (position = index). */
static void eff__fa_mask(const eff__fa *F, int64_t b, int64_t h0, int64_t nh, int64_t i0, int64_t ni, int64_t j0,
                         int64_t nk, const int64_t *kpos, int kind, float *st, int64_t ld) {
    int64_t jj, hh, ii, off = eff__fa_off(F, b);
    const eff_attn_rule *rule = (kind & EFF__TK_RULE) && F->bm ? &F->bm->rule : NULL;
    if (!F->elem && !rule) {   /* causal / window only: each key hides a prefix and a suffix of rows */
        for (jj = 0; jj < nk; jj++) {
            int64_t pj = kpos ? kpos[jj] : j0 + jj, lo = 0, hi = ni;   /* visible rows [lo, hi) */
            if (F->causal) lo = eff__attn_max(lo, pj - off - i0);
            if (F->window) { lo = eff__attn_max(lo, pj - off - F->wr - i0); hi = eff__attn_min(hi, pj - off + F->wl - i0 + 1); }
            if (lo > ni) lo = ni;
            if (hi < lo) hi = lo;
            for (hh = 0; hh < nh; hh++) {
                float *row = st + jj * ld + hh * ni;
                for (ii = 0; ii < lo; ii++) row[ii] = -INFINITY;
                for (ii = hi; ii < ni; ii++) row[ii] = -INFINITY;
            }
        }
        return;
    }
    for (jj = 0; jj < nk; jj++) {
        int64_t j = j0 + jj, pj = kpos ? kpos[jj] : j;
        for (hh = 0; hh < nh; hh++) {
            float *row = st + jj * ld + hh * ni;
            for (ii = 0; ii < ni; ii++) {
                double bb = 0.0;
                if (eff__fa_vis(F, b, h0 + hh, i0 + ii, j, pj, off, rule, &bb)) row[ii] += (float)bb;
                else row[ii] = -INFINITY;
            }
        }
    }
}

static const float *eff__cache_rows(const eff__fa *F, int which, int64_t b, int64_t hkv, int64_t j0, int64_t n,
                                    float *buf, int64_t ldbuf, int64_t *ld, int pad, int64_t *kpos);

/* f32 rows [j0, j0+n) of K (which 0) or V (1) for (b, hkv): a pointer into the input when it is
   already f32 (and, with pad, its row length a multiple of the vector width), else a converted,
   zero-padded copy in buf. *ld gets the row stride in floats. */
static const float *eff__fa_kv(const eff__fa *F, int which, int64_t b, int64_t hkv, int64_t j0, int64_t n, int pad,
                               float *buf, int64_t ldbuf, int64_t *ld, int64_t *kpos) {
    const eff__av *v = which ? &F->v : &F->k;
    int64_t cols = which ? F->dv : F->d, jj;
    const char *base;
    if (F->cache) return eff__cache_rows(F, which, b, hkv, j0, n, buf, ldbuf, ld, pad, kpos);
    base = eff__av_row(v, b, hkv, j0);
    if (v->dt == EFF_F32 && v->st % 4 == 0 && (!pad || cols % EFF__VL == 0)) { *ld = v->st / 4; return (const float *)base; }
    for (jj = 0; jj < n; jj++) {
        float *dst = buf + jj * ldbuf;
        int64_t c;
        eff__attn_load_row(base + jj * v->st, v->dt, dst, cols);
        for (c = cols; c < ldbuf; c++) dst[c] = 0.0f;
    }
    *ld = ldbuf;
    return buf;
}

/* Rows [i0, i0+n) of a query-side view (Q, dO) as f32, natural layout, row length padded. */
static const float *eff__fa_qrows(const eff__av *v, int64_t cols, int64_t b, int64_t h, int64_t i0, int64_t n, float *buf,
                                  int64_t ldbuf, int64_t *ld) {
    const char *base = eff__av_row(v, b, h, i0);
    int64_t ii;
    if (v->dt == EFF_F32 && v->st % 4 == 0 && cols % EFF__VL == 0) { *ld = v->st / 4; return (const float *)base; }
    for (ii = 0; ii < n; ii++) {
        float *dst = buf + ii * ldbuf;
        int64_t c;
        eff__attn_load_row(base + ii * v->st, v->dt, dst, cols);
        for (c = cols; c < ldbuf; c++) dst[c] = 0.0f;
    }
    *ld = ldbuf;
    return buf;
}

/* dst[c][r] = s * row_r[c] for the rows of a query-side view (transposed pack), zero columns >= n. */
static void eff__fa_pack_t(const eff__av *v, int64_t cols, int64_t b, int64_t h0, int64_t nh, int64_t i0, int64_t ni,
                           float s, float *row, float *dst, int64_t ldd) {
    int64_t hh, ii, c, n = nh * ni;
    for (hh = 0; hh < nh; hh++)
        for (ii = 0; ii < ni; ii++) {
            int64_t r = hh * ni + ii;
            eff__attn_load_row(eff__av_row(v, b, h0 + hh, i0 + ii), v->dt, row, cols);
            for (c = 0; c < cols; c++) dst[c * ldd + r] = s * row[c];
        }
    for (c = 0; c < cols; c++)
        for (ii = n; ii < ldd; ii++) dst[c * ldd + ii] = 0.0f;
}

/* Forward over one query tile: rows i0..i0+ni of heads h0..h0+nh (same kv head) against the
   key tiles tl[0:ntl]. Writes O and lse, or f32 partials (split-KV) when opart != NULL:
   opart row r = hh*ni + ii at opart + r*dv, lpart[r]. */
static void eff__fa_fwd_tile(const eff__fa *F, const eff__fa_ws *w, int64_t b, int64_t h0, int64_t nh, int64_t i0,
                             int64_t ni, const int32_t *tl, const uint8_t *tk, int64_t ntl, float *opart, float *lpart,
                             int64_t opart_hstride) {
    const int64_t bqp = F->bqp, d = F->d, dv = F->dv, dvp = F->dvp, nq = nh * ni, hkv = h0 / F->G;
    const int64_t Tk = eff__fa_tk(F, b);
    int64_t t, c, r;
    int first = 1;
    const int dot = w->qr != NULL && nq <= EFF__FA_DOT_ROWS;
    if (dot) {   /* decode: scaled Q rows for dot products */
        int64_t hh, ii, k;
        for (hh = 0; hh < nh; hh++)
            for (ii = 0; ii < ni; ii++) {
                float *qrow = w->qr + (hh * ni + ii) * F->dp;
                eff__attn_load_row(eff__av_row(&F->q, b, h0 + hh, i0 + ii), F->q.dt, qrow, d);
                for (k = 0; k < d; k++) qrow[k] *= F->scale;
            }
    } else eff__fa_pack_t(&F->q, d, b, h0, nh, i0, ni, F->scale, w->row, w->qt, bqp);
    for (c = 0; c < bqp; c++) { w->m[c] = -INFINITY; w->l[c] = 0.0f; }
    for (t = 0; t < ntl; t++) {
        const int64_t j0 = (int64_t)tl[t] * F->bk, nk = eff__attn_min(F->bk, Tk - j0);
        int64_t ldk, ldv, jj;
        const float *kp = eff__fa_kv(F, 0, b, hkv, j0, nk, 0, w->kb, F->dp, &ldk, w->kpos);
        const float *vp;
        if (dot) eff__fa_scores_dot(nk, nq, d, kp, ldk, w->qr, F->dp, w->st, bqp);
        else eff__amm(nk, bqp, d, kp, ldk, 1, w->qt, bqp, w->st, bqp, 0, NULL);
        if (tk[t] & EFF__TK_ELEM) eff__fa_mask(F, b, h0, nh, i0, ni, j0, nk, F->cache ? w->kpos : NULL, tk[t], w->st, bqp);
        /* online softmax, one vector of queries at a time (Milakov & Gimelshein 2018; FA2 sec. 3.1) */
        for (c = 0; c < bqp; c += EFF__VL) {
            eff__vf mx = eff__vset1(-INFINITY), mold, mnew, muse, al, sum = eff__vzero();
            for (jj = 0; jj < nk; jj++) mx = eff__vmax(mx, eff__vload(w->st + jj * bqp + c));
            mold = eff__vload(w->m + c);
            mnew = eff__vmax(mold, mx);
            muse = eff__vselect_lt(mnew, eff__vset1(-FLT_MAX), eff__vzero(), mnew);   /* all hidden so far: 0 */
            al = eff__vexp(eff__vsub(mold, muse));
            for (jj = 0; jj < nk; jj++) {
                float *sp = w->st + jj * bqp + c;
                eff__vf p = eff__vexp(eff__vsub(eff__vload(sp), muse));
                eff__vstore(sp, p);
                sum = eff__vadd(sum, p);
            }
            eff__vstore(w->l + c, eff__vfma(al, eff__vload(w->l + c), sum));
            eff__vstore(w->m + c, mnew);
            eff__vstore(w->al + c, al);
        }
        vp = eff__fa_kv(F, 1, b, hkv, j0, nk, 1, w->vb, dvp, &ldv, NULL);
        eff__amm(nq, dvp, nk, w->st, 1, bqp, vp, ldv, w->o, dvp, first ? 0 : 2, w->al);
        first = 0;
    }
    for (r = 0; r < nq; r++) {
        const int64_t hh = r / ni, ii = r % ni;
        float *orow = w->o + r * dvp, l = w->l[r], lse;
        if (first || !(l > 0.0f)) { for (c = 0; c < dv; c++) orow[c] = 0.0f; lse = -INFINITY; }
        else {
            float inv = 1.0f / l;
            for (c = 0; c < dv; c++) orow[c] *= inv;
            lse = w->m[r] + logf(l);
        }
        if (opart) {
            memcpy(opart + hh * opart_hstride + ii * dv, orow, (size_t)dv * sizeof(float));
            lpart[hh * (opart_hstride / dv) + ii] = lse;
        } else {
            eff__attn_store_row(orow, eff__av_row(&F->o, b, h0 + hh, i0 + ii), F->o.dt, dv);
            if (F->lse.p) *(float *)eff__av_row(&F->lse, b, h0 + hh, i0 + ii) = lse;
        }
    }
}

/* The merge (sec. 0.1 of the reference notes), streaming: (acc, *lacc) <- merge with (o, l).
   Start from acc = 0, *lacc = -inf; -inf partials are empty and change nothing. */
static void eff__attn_merge_into(float *acc, float *lacc, const float *o, float l, int64_t dv) {
    float m, a, b, inv;
    int64_t c;
    if (l == -INFINITY) return;
    if (*lacc == -INFINITY) { memcpy(acc, o, (size_t)dv * sizeof(float)); *lacc = l; return; }
    /* weights relative to the larger lse: exact even where lse is large (LSH self scores of -1e5) */
    m = *lacc > l ? *lacc : l;
    a = expf(*lacc - m); b = expf(l - m); inv = 1.0f / (a + b);
    for (c = 0; c < dv; c++) acc[c] = (a * acc[c] + b * o[c]) * inv;
    *lacc = m + logf(a + b);
}

/* Tiling for a call: query tiles of bq rows (or, for decode, whole GQA groups packed into one
   tile), key tiles of bk keys. */
static void eff__fa_tiling(eff__fa *F) {
    F->dp = eff__attn_roundv(F->d);
    F->dvp = eff__attn_roundv(F->dv);
    if (F->bm) { F->bq = F->bm->bq; F->bk = F->bm->bk; }
    else if (F->d <= 64) { F->bq = 128; F->bk = 128; }
    else { F->bq = 64; F->bk = F->d <= 128 ? 128 : 64; }
    F->hpt = 1;
    if (!F->bm && F->Tq > 0 && F->Tq * 2 <= F->bq && F->G > 1) {
        F->hpt = eff__attn_min(F->G, F->bq / F->Tq);
        F->bq = eff__attn_max(F->Tq * F->hpt, 1);
    }
    if (!F->bm && F->Tq > 0 && F->Tq < F->bq && F->hpt == 1) F->bq = F->Tq;
    F->bqp = eff__attn_roundv(F->bq);
    F->nqt = F->Tq > 0 ? eff__attn_ceil(F->Tq, F->bq) : 0;
    F->nkt = F->Tk > 0 ? eff__attn_ceil(F->Tk, F->bk) : 0;
}

/* The forward driver shared by flash attention and cache decoding. */
static eff_status eff__fa_forward_run(eff_ctx *ctx, eff__fa *F, int64_t kv_splits) {
    const int nt = eff_ctx_n_threads(ctx);
    int64_t ntile_g, ntasks0, S = 1, per, ntask, task, nkt_max = F->nkt;
    char *ws;
    float *parts = NULL, *lparts = NULL;
    if (F->hpt > 1) ntile_g = eff__attn_ceil(F->G, F->hpt);
    else ntile_g = F->G * F->nqt;
    ntasks0 = F->B * F->Hkv * ntile_g;
    if (ntasks0 == 0) return EFF_OK;
    if (F->tk_b) { int64_t b; for (b = 0; b < F->B; b++) nkt_max = eff__attn_max(nkt_max, eff__attn_ceil(F->tk_b[b], F->bk)); }
    if (kv_splits > 1) S = eff__attn_max(1, eff__attn_min(kv_splits, nkt_max));
    else if (kv_splits == 0 && ntasks0 < 2 * nt && nkt_max >= 4)   /* Flash-Decoding: split the keys */
        S = eff__attn_min(nkt_max / 2, eff__attn_ceil(4 * (int64_t)nt, ntasks0));
    if (S < 1) S = 1;
    if (S > 64) S = 64;
    per = eff__fa_ws_layout(F, 0, 0, NULL, NULL);
    ws = (char *)eff_ctx_alloc(ctx, (size_t)(per * nt));
    if (!ws) return EFF_ERR_OOM;
    if (S > 1) {
        parts = (float *)eff_ctx_alloc(ctx, (size_t)(S * F->B * F->Hq * F->Tq * (F->dv + 1)) * sizeof(float));
        if (!parts) { eff_ctx_free(ctx, ws); return EFF_ERR_OOM; }
        lparts = parts + S * F->B * F->Hq * F->Tq * F->dv;
    }
    ntask = ntasks0 * S;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && ntask > 1))
    for (task = 0; task < ntask; task++) {
        eff__fa_ws w;
        int64_t s = task % S, rest = task / S, gi = rest % (F->B * F->Hkv), ti = rest / (F->B * F->Hkv);
        int64_t b = gi / F->Hkv, hkv = gi % F->Hkv, h0, nh, i0, ni, ntl, t0, t1;
        eff__fa_ws_layout(F, 0, 0, ws + (int64_t)eff__tid() * per, &w);
        if (F->hpt > 1) { h0 = hkv * F->G + ti * F->hpt; nh = eff__attn_min(F->hpt, F->G - ti * F->hpt); i0 = 0; ni = F->Tq; }
        else {   /* heaviest (last, for causal) query tiles first */
            int64_t qi = F->nqt - 1 - ti / F->G;
            h0 = hkv * F->G + ti % F->G; nh = 1; i0 = qi * F->bq; ni = eff__attn_min(F->bq, F->Tq - i0);
        }
        ntl = eff__fa_key_tiles(F, b, h0, i0, ni, w.tl, w.tk);
        t0 = ntl * s / S; t1 = ntl * (s + 1) / S;
        if (S == 1) eff__fa_fwd_tile(F, &w, b, h0, nh, i0, ni, w.tl, w.tk, ntl, NULL, NULL, 0);
        else {
            int64_t rowi = ((s * F->B + b) * F->Hq + h0) * F->Tq + i0;
            eff__fa_fwd_tile(F, &w, b, h0, nh, i0, ni, w.tl + t0, w.tk + t0, t1 - t0, parts + rowi * F->dv, lparts + rowi,
                             F->Tq * F->dv);
        }
    }
    if (S > 1) {
        int64_t rows = F->B * F->Hq * F->Tq, r;
        EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * S * F->dv > 65536))
        for (r = 0; r < rows; r++) {
            eff__fa_ws w;
            float lse = -INFINITY;
            int64_t i = r % F->Tq, h = (r / F->Tq) % F->Hq, b = r / (F->Tq * F->Hq), s, c;
            eff__fa_ws_layout(F, 0, 0, ws + (int64_t)eff__tid() * per, &w);
            for (c = 0; c < F->dv; c++) w.o[c] = 0.0f;
            for (s = 0; s < S; s++) {
                int64_t ri = ((s * F->B + b) * F->Hq + h) * F->Tq + i;
                eff__attn_merge_into(w.o, &lse, parts + ri * F->dv, lparts[ri], F->dv);
            }
            eff__attn_store_row(w.o, eff__av_row(&F->o, b, h, i), F->o.dt, F->dv);
            if (F->lse.p) *(float *)eff__av_row(&F->lse, b, h, i) = lse;
        }
    }
    eff_ctx_free(ctx, parts);
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

EFFDEF eff_status eff_attn_flash_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                         const eff_tensor *K, const eff_tensor *V, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_flash_forward";
    eff__fa F;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__TRY(eff__fa_setup(ctx, fn, &F, O, lse, Q, K, V, opts, EFF__ATTN_DT_FLOATS, EFF__ATTN_MAX_D));
    if (F.bm) EFF__CHECK(ctx, F.bm->bq >= 1 && F.bm->bq <= 256 && F.bm->bk >= 1 && F.bm->bk <= 512, EFF_ERR_INVALID_ARG,
                         "%s: block_mask tiles %lld x %lld; flash supports bq <= 256, bk <= 512", fn,
                         (long long)F.bm->bq, (long long)F.bm->bk);
    eff__fa_tiling(&F);
    return eff__fa_forward_run(ctx, &F, opts ? opts->kv_splits : 0);
}

/* Backward over one key tile (all query heads of its kv head), FA2 sec. 3.1 / reference notes
   sec. 1.4 in keys-as-rows form. dqacc: [G][Tq][dp] f32 accumulator for this group's dQ. */
static void eff__fa_bwd_ktile(const eff__fa *F, const eff__fa_ws *w, const eff__av *vdo, const float *Dall,
                              int64_t b, int64_t hkv, int64_t kt, float *dqacc) {
    const int64_t d = F->d, dv = F->dv, dp = F->dp, dvp = F->dvp, bqp = F->bqp;
    const int64_t j0 = kt * F->bk, nk = eff__attn_min(F->bk, F->Tk - j0);
    int64_t ldk, ldv, hh, t, jj, c;
    const float *kp = eff__fa_kv(F, 0, b, hkv, j0, nk, 1, w->kb, dp, &ldk, NULL);
    const float *vp = eff__fa_kv(F, 1, b, hkv, j0, nk, 1, w->vb, dvp, &ldv, NULL);
    memset(w->dk, 0, (size_t)(nk * dp) * sizeof(float));
    memset(w->dva, 0, (size_t)(nk * dvp) * sizeof(float));
    for (hh = 0; hh < F->G; hh++) {
        const int64_t h = hkv * F->G + hh;
        const int64_t nqt = eff__fa_query_tiles(F, h, kt, w->tl, w->tk);
        for (t = 0; t < nqt; t++) {
            const int64_t i0 = (int64_t)w->tl[t] * F->bq, ni = eff__attn_min(F->bq, F->Tq - i0);
            int64_t ldq, lddo;
            const float *qn, *don;
            eff__fa_pack_t(&F->q, d, b, h, 1, i0, ni, F->scale, w->row, w->qt, bqp);
            eff__fa_pack_t(vdo, dv, b, h, 1, i0, ni, 1.0f, w->row, w->dot, bqp);
            qn = eff__fa_qrows(&F->q, d, b, h, i0, ni, w->qn, dp, &ldq);
            don = eff__fa_qrows(vdo, dv, b, h, i0, ni, w->don, dvp, &lddo);
            for (c = 0; c < bqp; c++) {
                float L = c < ni ? *(const float *)eff__av_row(&F->lse, b, h, i0 + c) : INFINITY;
                w->L[c] = L == -INFINITY ? INFINITY : L;   /* rows that saw nothing: P = 0 */
                w->D[c] = c < ni ? Dall[(b * F->Hq + h) * F->Tq + i0 + c] : 0.0f;
            }
            /* S^T = K Q^T (scaled), P^T = exp(S^T - L) */
            eff__amm(nk, bqp, d, kp, ldk, 1, w->qt, bqp, w->st, bqp, 0, NULL);
            if (w->tk[t] & EFF__TK_ELEM) eff__fa_mask(F, b, h, 1, i0, ni, j0, nk, NULL, w->tk[t], w->st, bqp);
            for (jj = 0; jj < nk; jj++)
                for (c = 0; c < bqp; c += EFF__VL) {
                    float *sp = w->st + jj * bqp + c;
                    eff__vstore(sp, eff__vexp(eff__vsub(eff__vload(sp), eff__vload(w->L + c))));
                }
            /* dV += P^T dO */
            eff__amm(nk, dvp, ni, w->st, bqp, 1, don, lddo, w->dva, dvp, 1, NULL);
            /* dP^T = V dO^T; dS^T = scale * P^T (dP^T - D) */
            eff__amm(nk, bqp, dv, vp, ldv, 1, w->dot, bqp, w->dpt, bqp, 0, NULL);
            {
                eff__vf sc = eff__vset1(F->scale);
                for (jj = 0; jj < nk; jj++)
                    for (c = 0; c < bqp; c += EFF__VL) {
                        float *dq = w->dpt + jj * bqp + c;
                        eff__vf p = eff__vload(w->st + jj * bqp + c);
                        eff__vstore(dq, eff__vmul(eff__vmul(p, sc), eff__vsub(eff__vload(dq), eff__vload(w->D + c))));
                    }
            }
            /* dK += dS^T Q;  dQ += dS K */
            eff__amm(nk, dp, ni, w->dpt, bqp, 1, qn, ldq, w->dk, dp, 1, NULL);
            eff__amm(ni, dp, nk, w->dpt, 1, bqp, kp, ldk, dqacc + (hh * F->Tq + i0) * dp, dp, 1, NULL);
        }
    }
}

EFFDEF eff_status eff_attn_flash_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                          const eff_tensor *dO, const eff_tensor *Q, const eff_tensor *K,
                                          const eff_tensor *V, const eff_tensor *O, const eff_tensor *lse,
                                          const eff_attn_opts *opts) {
    const char *fn = "eff_attn_flash_backward";
    eff__fa F;
    eff__av vdo, vdq, vdk, vdv;
    int nt, modeA;
    int64_t groups, per, dqn, g, rows, r;
    char *ws;
    float *D;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL (pass the forward output)", fn);
    EFF__CHECK(ctx, lse != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'lse' is NULL (pass the forward lse)", fn);
    EFF__TRY(eff__fa_setup(ctx, fn, &F, O, lse, Q, K, V, opts, EFF__ATTN_DT_FLOATS, EFF__ATTN_MAX_D));
    EFF__TRY(eff__attn_check(ctx, fn, dO, "dO", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hq, F.Tq, F.dv));
    EFF__CHECK(ctx, dQ && dK && dV, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, !dQ ? "dQ" : !dK ? "dK" : "dV");
    EFF__TRY(eff__attn_check(ctx, fn, dQ, "dQ", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hq, F.Tq, F.d));
    EFF__TRY(eff__attn_check(ctx, fn, dK, "dK", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hkv, F.Tk, F.d));
    EFF__TRY(eff__attn_check(ctx, fn, dV, "dV", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hkv, F.Tk, F.dv));
    if (F.bm) EFF__CHECK(ctx, F.bm->bq >= 1 && F.bm->bq <= 256 && F.bm->bk >= 1 && F.bm->bk <= 512, EFF_ERR_INVALID_ARG,
                         "%s: block_mask tiles %lld x %lld; flash supports bq <= 256, bk <= 512", fn,
                         (long long)F.bm->bq, (long long)F.bm->bk);
    vdo = eff__attn_view4(dO); vdq = eff__attn_view4(dQ); vdk = eff__attn_view4(dK); vdv = eff__attn_view4(dV);
    eff__fa_tiling(&F);
    if (F.hpt > 1) { F.hpt = 1; F.bq = F.Tq > 0 ? eff__attn_min(F.Tq, 64) : 64; F.bqp = eff__attn_roundv(F.bq); F.nqt = F.Tq > 0 ? eff__attn_ceil(F.Tq, F.bq) : 0; }
    nt = eff_ctx_n_threads(ctx);
    groups = F.B * F.Hkv;
    rows = F.B * F.Hq * F.Tq;
    /* Mode A: threads own whole kv heads (dK/dV/dQ have one writer). Mode B (few heads): heads
       in turn, threads split the key tiles, each with a private dQ accumulator, summed after. */
    modeA = groups >= 2 * nt || F.nkt < 2;
    dqn = F.G * F.Tq * F.dp;
    per = eff__fa_ws_layout(&F, 1, dqn, NULL, NULL);
    ws = (char *)eff_ctx_alloc(ctx, (size_t)(per * nt));
    if (!ws) return EFF_ERR_OOM;
    D = (float *)eff_ctx_alloc(ctx, (size_t)(rows > 0 ? rows : 1) * sizeof(float));
    if (!D) { eff_ctx_free(ctx, ws); return EFF_ERR_OOM; }
    /* D_i = rowsum(dO_i * O_i) */
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * F.dv > 65536))
    for (r = 0; r < rows; r++) {
        eff__fa_ws w;
        int64_t i = r % F.Tq, h = (r / F.Tq) % F.Hq, b = r / (F.Tq * F.Hq), c;
        float s = 0.0f;
        eff__fa_ws_layout(&F, 1, dqn, ws + (int64_t)eff__tid() * per, &w);
        eff__attn_load_row(eff__av_row(&vdo, b, h, i), vdo.dt, w.o, F.dv);
        eff__attn_load_row(eff__av_row(&F.o, b, h, i), F.o.dt, w.vb, F.dv);
        for (c = 0; c < F.dv; c++) s += w.o[c] * w.vb[c];
        D[r] = s;
    }
    if (modeA) {
        EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && groups > 1))
        for (g = 0; g < groups; g++) {
            eff__fa_ws w;
            char *mine = ws + (int64_t)eff__tid() * per;
            int64_t b = g / F.Hkv, hkv = g % F.Hkv, kt, hh, i, jj;
            float *dqacc;
            int64_t sz = eff__fa_ws_layout(&F, 1, 0, mine, &w);
            dqacc = (float *)(mine + sz);
            memset(dqacc, 0, (size_t)dqn * sizeof(float));
            for (kt = 0; kt < F.nkt; kt++) {
                int64_t j0 = kt * F.bk, nk = eff__attn_min(F.bk, F.Tk - j0);
                eff__fa_bwd_ktile(&F, &w, &vdo, D, b, hkv, kt, dqacc);
                for (jj = 0; jj < nk; jj++) {
                    eff__attn_store_row(w.dk + jj * F.dp, eff__av_row(&vdk, b, hkv, j0 + jj), vdk.dt, F.d);
                    eff__attn_store_row(w.dva + jj * F.dvp, eff__av_row(&vdv, b, hkv, j0 + jj), vdv.dt, F.dv);
                }
            }
            for (hh = 0; hh < F.G; hh++)
                for (i = 0; i < F.Tq; i++)
                    eff__attn_store_row(dqacc + (hh * F.Tq + i) * F.dp, eff__av_row(&vdq, b, hkv * F.G + hh, i), vdq.dt, F.d);
        }
    } else {
        for (g = 0; g < groups; g++) {
            const int64_t b = g / F.Hkv, hkv = g % F.Hkv, grow = F.G * F.Tq;
            int64_t kt, rr;
            EFF__OMP(parallel num_threads(nt) if (nt > 1))
            {
                eff__fa_ws w;
                char *mine = ws + (int64_t)eff__tid() * per;
                int64_t sz = eff__fa_ws_layout(&F, 1, 0, mine, &w);
                float *dqacc = (float *)(mine + sz);
                const int team = eff__attn_team();
                memset(dqacc, 0, (size_t)dqn * sizeof(float));
                EFF__OMP(barrier)
                EFF__OMP(for schedule(dynamic, 1))
                for (kt = 0; kt < F.nkt; kt++) {
                    int64_t j0 = kt * F.bk, nk = eff__attn_min(F.bk, F.Tk - j0), jj;
                    eff__fa_bwd_ktile(&F, &w, &vdo, D, b, hkv, kt, dqacc);
                    for (jj = 0; jj < nk; jj++) {
                        eff__attn_store_row(w.dk + jj * F.dp, eff__av_row(&vdk, b, hkv, j0 + jj), vdk.dt, F.d);
                        eff__attn_store_row(w.dva + jj * F.dvp, eff__av_row(&vdv, b, hkv, j0 + jj), vdv.dt, F.dv);
                    }
                }
                /* implicit barrier, then sum the private dQ accumulators */
                EFF__OMP(for schedule(static))
                for (rr = 0; rr < grow; rr++) {
                    int tt;
                    float *acc = w.row;
                    int64_t c;
                    for (c = 0; c < F.d; c++) acc[c] = 0.0f;
                    for (tt = 0; tt < team; tt++) {
                        char *other = ws + (int64_t)tt * per;
                        const float *src = (const float *)(other + sz) + rr * F.dp;
                        for (c = 0; c < F.d; c++) acc[c] += src[c];
                    }
                    eff__attn_store_row(acc, eff__av_row(&vdq, b, hkv * F.G + rr / F.Tq, rr % F.Tq), vdq.dt, F.d);
                }
            }
        }
    }
    eff_ctx_free(ctx, D);
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Merge
   --------------------------------------------------------------------------- */
static eff_status eff__merge_check(eff_ctx *ctx, const char *fn, const eff_tensor *O, const char *on, const eff_tensor *lse,
                                   const char *ln, const eff_tensor *ref) {
    int i;
    char b1[96], b2[96];
    EFF__CHECK(ctx, O != NULL && lse != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, O ? ln : on);
    EFF__TRY(eff__attn_check(ctx, fn, O, on, EFF__ATTN_DT_F32, O->ndim >= 1 ? O->ndim : 1, -1, -1, -1, -1));
    EFF__TRY(eff_tensor_validate(ctx, lse, ln));
    EFF__CHECK(ctx, lse->dtype == EFF_F32, EFF_ERR_DTYPE, "%s: '%s' must be f32", fn, ln);
    EFF__CHECK(ctx, lse->ndim == O->ndim - 1, EFF_ERR_SHAPE, "%s: '%s' %s must have the leading dims of '%s' %s", fn, ln,
               eff_tensor_describe(lse, b1, sizeof b1), on, eff_tensor_describe(O, b2, sizeof b2));
    for (i = 0; i < lse->ndim; i++)
        EFF__CHECK(ctx, lse->ne[i] == O->ne[i], EFF_ERR_SHAPE, "%s: '%s' %s must have the leading dims of '%s' %s", fn, ln,
                   eff_tensor_describe(lse, b1, sizeof b1), on, eff_tensor_describe(O, b2, sizeof b2));
    if (ref) EFF__CHECK(ctx, eff_tensor_same_shape(O, ref), EFF_ERR_SHAPE, "%s: '%s' %s differs from 'O' %s", fn, on,
                        eff_tensor_describe(O, b1, sizeof b1), eff_tensor_describe(ref, b2, sizeof b2));
    return EFF_OK;
}
static int64_t eff__lse_offset(const eff_tensor *t, int64_t r) {
    int64_t off = 0;
    int i;
    for (i = t->ndim - 1; i >= 0; i--) { off += (r % t->ne[i]) * t->nb[i]; r /= t->ne[i]; }
    return off;
}

EFFDEF eff_status eff_attn_merge_n(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, int64_t n, const eff_tensor *Os,
                                   const eff_tensor *lses) {
    const char *fn = "eff_attn_merge_n";
    int64_t a, rows, dv, r;
    int nt;
    float *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__merge_check(ctx, fn, O, "O", lse, "lse", NULL));
    EFF__CHECK(ctx, n >= 1, EFF_ERR_INVALID_ARG, "%s: n = %lld partials; need at least 1", fn, (long long)n);
    EFF__CHECK(ctx, Os && lses, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, Os ? "lses" : "Os");
    for (a = 0; a < n; a++) EFF__TRY(eff__merge_check(ctx, fn, &Os[a], "Os[a]", &lses[a], "lses[a]", O));
    rows = eff_tensor_nrows(O); dv = eff_tensor_ncols(O);
    nt = eff_ctx_n_threads(ctx);
    ws = (float *)eff_ctx_alloc(ctx, (size_t)(nt * dv + 1) * sizeof(float));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * n * dv > 65536))
    for (r = 0; r < rows; r++) {
        float *acc = ws + (int64_t)eff__tid() * dv, lacc = -INFINITY;
        int64_t k, c;
        for (c = 0; c < dv; c++) acc[c] = 0.0f;
        for (k = 0; k < n; k++) {   /* read every partial before writing: O may be one of them */
            const float *o = (const float *)((const char *)Os[k].data + eff__row_offset(&Os[k], r));
            float l = *(const float *)((const char *)lses[k].data + eff__lse_offset(&lses[k], r));
            eff__attn_merge_into(acc, &lacc, o, l, dv);
        }
        memcpy((char *)O->data + eff__row_offset(O, r), acc, (size_t)dv * sizeof(float));
        *(float *)((char *)lse->data + eff__lse_offset(lse, r)) = lacc;
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

EFFDEF eff_status eff_attn_merge(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *O2, const eff_tensor *lse2) {
    eff_tensor os[2], ls[2];
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__merge_check(ctx, "eff_attn_merge", O, "O", lse, "lse", NULL));
    EFF__TRY(eff__merge_check(ctx, "eff_attn_merge", O2, "O2", lse2, "lse2", O));
    os[0] = *O; os[1] = *O2; ls[0] = *lse; ls[1] = *lse2;
    return eff_attn_merge_n(ctx, O, lse, 2, os, ls);
}

/* ---------------------------------------------------------------------------
   Block-sparse masks
   --------------------------------------------------------------------------- */
static int eff__rule_ok(const eff_attn_rule *r, int64_t i, int64_t j) {
    const uint32_t f = r->flags;
    const int64_t c = i + r->offset;
    int ok = 1;
    if ((f & EFF_ATTN_RULE_CAUSAL) && j > c) ok = 0;
    if (ok && (f & (EFF_ATTN_RULE_WINDOW | EFF_ATTN_RULE_DILATED))) {
        int w = (f & EFF_ATTN_RULE_WINDOW) && j >= c - r->window_left && j <= c + r->window_right;
        int dl = (f & EFF_ATTN_RULE_DILATED) && eff__attn_mod(c - j, r->stride) == 0;
        if (f & EFF_ATTN_RULE_UNION) ok = w || dl;
        else ok = (w || !(f & EFF_ATTN_RULE_WINDOW)) && (dl || !(f & EFF_ATTN_RULE_DILATED));
    }
    if (ok && (f & EFF_ATTN_RULE_LOCAL) && eff__attn_floordiv(c, r->block) != eff__attn_floordiv(j, r->block)) ok = 0;
    if (ok && (f & EFF_ATTN_RULE_SEGMENT) && r->seg_q[i] != r->seg_k[j]) ok = 0;
    if (!ok && (f & EFF_ATTN_RULE_GLOBAL)) ok = (r->glob_q && r->glob_q[i]) || (r->glob_k && r->glob_k[j]);
    return ok;
}

/* Tile [i0, i1) x [j0, j1) under a rule: -1 nothing allowed, 0 everything, 1 mixed.
   Interval arguments decide most tiles; the rest are scanned (with early exit). */
static int eff__rule_tile(const eff_attn_rule *r, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    const uint32_t f = r->flags;
    const int64_t c0 = i0 + r->offset, c1 = i1 - 1 + r->offset, ja = j0, jb = j1 - 1;
    int base = 0, k, seen_yes = 0, seen_no = 0;
    int64_t i, j;
#define EFF__AND(kk) do { int k_ = (kk); if (k_ < 0) base = -1; else if (k_ > 0 && base == 0) base = 1; } while (0)
    if (f == 0) return 0;
    if (f & EFF_ATTN_RULE_CAUSAL) EFF__AND(ja > c1 ? -1 : jb <= c0 ? 0 : 1);
    if (f & (EFF_ATTN_RULE_WINDOW | EFF_ATTN_RULE_DILATED)) {
        int kw = 0, kd = 0;
        if (f & EFF_ATTN_RULE_WINDOW)
            kw = (ja > c1 + r->window_right || jb < c0 - r->window_left) ? -1
               : (ja >= c1 - r->window_left && jb <= c0 + r->window_right) ? 0 : 1;
        if (f & EFF_ATTN_RULE_DILATED) kd = r->stride == 1 ? 0 : 1;
        if ((f & EFF_ATTN_RULE_UNION) && (f & EFF_ATTN_RULE_WINDOW) && (f & EFF_ATTN_RULE_DILATED)) EFF__AND(kw == 0 || kd == 0 ? 0 : 1);
        else { EFF__AND(kw); EFF__AND(kd); }
    }
    if (f & EFF_ATTN_RULE_LOCAL) {
        int64_t b0 = eff__attn_floordiv(c0, r->block), b1 = eff__attn_floordiv(c1, r->block);
        int64_t k0 = eff__attn_floordiv(ja, r->block), k1 = eff__attn_floordiv(jb, r->block);
        EFF__AND(b1 < k0 || k1 < b0 ? -1 : (b0 == b1 && k0 == k1 && b0 == k0) ? 0 : 1);
    }
    if (f & EFF_ATTN_RULE_SEGMENT) {
        int32_t qmin = INT32_MAX, qmax = INT32_MIN, kmin = INT32_MAX, kmax = INT32_MIN;
        for (i = i0; i < i1; i++) { if (r->seg_q[i] < qmin) qmin = r->seg_q[i]; if (r->seg_q[i] > qmax) qmax = r->seg_q[i]; }
        for (j = j0; j < j1; j++) { if (r->seg_k[j] < kmin) kmin = r->seg_k[j]; if (r->seg_k[j] > kmax) kmax = r->seg_k[j]; }
        EFF__AND(qmax < kmin || kmax < qmin ? -1 : (qmin == qmax && kmin == kmax && qmin == kmin) ? 0 : 1);
    }
#undef EFF__AND
    if (f & EFF_ATTN_RULE_GLOBAL) {
        int anyg = 0, allq = r->glob_q != NULL, allk = r->glob_k != NULL;
        for (i = i0; i < i1; i++) { int g = r->glob_q && r->glob_q[i]; anyg |= g; allq &= g; }
        for (j = j0; j < j1; j++) { int g = r->glob_k && r->glob_k[j]; anyg |= g; allk &= g; }
        if (allq || allk || base == 0) return 0;
        if (base < 0 && !anyg) return -1;
        base = 1;
    }
    if (base != 1) return base;
    for (i = i0; i < i1; i++)
        for (j = j0; j < j1; j++) {
            k = eff__rule_ok(r, i, j);
            seen_yes |= k; seen_no |= !k;
            if (seen_yes && seen_no) return 1;
        }
    return seen_yes ? 0 : -1;
}

EFFDEF eff_status eff_attn_blockmask_build(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t Tq, int64_t Tk, int64_t bq,
                                           int64_t bk, int64_t n_heads, const eff_attn_rule *rule, const uint8_t *layout) {
    const char *fn = "eff_attn_blockmask_build";
    eff_attn_rule ru;
    uint8_t *cls;
    int64_t nqb, nkb, nnz = 0, h, qt, kt, e, total, off;
    char *mem;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(ctx, bm);
    memset(bm, 0, sizeof *bm);
    memset(&ru, 0, sizeof ru);
    if (rule) ru = *rule;
    if (bq == 0) bq = 64;
    if (bk == 0) bk = 64;
    EFF__CHECK(ctx, Tq >= 0 && Tk >= 0, EFF_ERR_SHAPE, "%s: negative length Tq=%lld Tk=%lld", fn, (long long)Tq, (long long)Tk);
    EFF__CHECK(ctx, bq >= 1 && bk >= 1, EFF_ERR_INVALID_ARG, "%s: tile sizes bq=%lld bk=%lld must be >= 1", fn, (long long)bq, (long long)bk);
    EFF__CHECK(ctx, n_heads >= 1, EFF_ERR_INVALID_ARG, "%s: n_heads=%lld must be >= 1", fn, (long long)n_heads);
    EFF__CHECK(ctx, !(ru.flags & ~127u), EFF_ERR_INVALID_ARG, "%s: rule->flags 0x%x has unknown bits", fn, (unsigned)ru.flags);
    EFF__CHECK(ctx, !(ru.flags & EFF_ATTN_RULE_WINDOW) || (ru.window_left >= 0 && ru.window_right >= 0), EFF_ERR_INVALID_ARG,
               "%s: rule window_left/right must be >= 0", fn);
    EFF__CHECK(ctx, !(ru.flags & EFF_ATTN_RULE_DILATED) || ru.stride >= 1, EFF_ERR_INVALID_ARG, "%s: rule->stride must be >= 1", fn);
    EFF__CHECK(ctx, !(ru.flags & EFF_ATTN_RULE_LOCAL) || ru.block >= 1, EFF_ERR_INVALID_ARG, "%s: rule->block must be >= 1", fn);
    EFF__CHECK(ctx, !(ru.flags & EFF_ATTN_RULE_SEGMENT) || ((ru.seg_q || Tq == 0) && (ru.seg_k || Tk == 0)), EFF_ERR_INVALID_ARG,
               "%s: SEGMENT needs rule->seg_q and rule->seg_k", fn);
    EFF__CHECK(ctx, !(ru.flags & EFF_ATTN_RULE_GLOBAL) || ru.glob_q || ru.glob_k, EFF_ERR_INVALID_ARG,
               "%s: GLOBAL needs rule->glob_q or rule->glob_k", fn);
    nqb = eff__attn_ceil(Tq, bq); nkb = eff__attn_ceil(Tk, bk);
    EFF__CHECK(ctx, nqb < INT32_MAX && nkb < INT32_MAX && nqb * nkb / (nkb ? nkb : 1) == nqb, EFF_ERR_OVERFLOW,
               "%s: %lld x %lld tiles is too many", fn, (long long)nqb, (long long)nkb);
    cls = (uint8_t *)eff_ctx_alloc(ctx, (size_t)(nqb * nkb + 1));
    if (!cls) return EFF_ERR_OOM;
    for (qt = 0; qt < nqb; qt++)
        for (kt = 0; kt < nkb; kt++) {
            int k = eff__rule_tile(&ru, qt * bq, eff__attn_min(Tq, (qt + 1) * bq), kt * bk, eff__attn_min(Tk, (kt + 1) * bk));
            cls[qt * nkb + kt] = (uint8_t)(k < 0 ? 0 : k == 0 ? EFF_ATTN_TILE_FULL : EFF_ATTN_TILE_PARTIAL);
        }
    for (h = 0; h < n_heads; h++)
        for (e = 0; e < nqb * nkb; e++)
            if (cls[e] && (!layout || layout[h * nqb * nkb + e])) nnz++;
    /* one allocation: row_ptr, t_row_ptr (int64), col, t_col (int32), kind, t_kind, seg, glob */
    total = (n_heads * (nqb + 1) + n_heads * (nkb + 1)) * 8 + 2 * nnz * 4 + 2 * nnz + 64;
    if (ru.flags & EFF_ATTN_RULE_SEGMENT) total += (Tq + Tk) * 4 + 8;
    if (ru.flags & EFF_ATTN_RULE_GLOBAL) total += Tq + Tk + 8;
    mem = (char *)eff_ctx_alloc(ctx, (size_t)total);
    if (!mem) { eff_ctx_free(ctx, cls); return EFF_ERR_OOM; }
    off = 0;
    bm->row_ptr = (int64_t *)(mem + off); off += n_heads * (nqb + 1) * 8;
    bm->t_row_ptr = (int64_t *)(mem + off); off += n_heads * (nkb + 1) * 8;
    bm->col = (int32_t *)(mem + off); off += nnz * 4;
    bm->t_col = (int32_t *)(mem + off); off += nnz * 4;
    if (ru.flags & EFF_ATTN_RULE_SEGMENT) {
        int32_t *sq = (int32_t *)(mem + off), *sk = sq + Tq;
        if (Tq) memcpy(sq, ru.seg_q, (size_t)Tq * 4);
        if (Tk) memcpy(sk, ru.seg_k, (size_t)Tk * 4);
        ru.seg_q = sq; ru.seg_k = sk; off += (Tq + Tk) * 4;
    }
    bm->kind = (uint8_t *)(mem + off); off += nnz;
    bm->t_kind = (uint8_t *)(mem + off); off += nnz;
    if (ru.flags & EFF_ATTN_RULE_GLOBAL) {
        uint8_t *gq = (uint8_t *)(mem + off), *gk = gq + Tq;
        int64_t i;
        for (i = 0; i < Tq; i++) gq[i] = (uint8_t)(ru.glob_q && ru.glob_q[i] ? 1 : 0);
        for (i = 0; i < Tk; i++) gk[i] = (uint8_t)(ru.glob_k && ru.glob_k[i] ? 1 : 0);
        ru.glob_q = gq; ru.glob_k = gk;
    }
    /* CSR over query tiles */
    e = 0;
    for (h = 0; h < n_heads; h++)
        for (qt = 0; qt < nqb; qt++) {
            bm->row_ptr[h * (nqb + 1) + qt] = e;
            for (kt = 0; kt < nkb; kt++) {
                uint8_t c = cls[qt * nkb + kt];
                if (!c || (layout && !layout[(h * nqb + qt) * nkb + kt])) continue;
                bm->col[e] = (int32_t)kt; bm->kind[e] = c; e++;
            }
            if (qt == nqb - 1) bm->row_ptr[h * (nqb + 1) + nqb] = e;
        }
    if (nqb == 0) for (h = 0; h < n_heads; h++) bm->row_ptr[h] = 0;
    /* transpose (CSC): per key tile its query tiles, ascending */
    e = 0;
    for (h = 0; h < n_heads; h++)
        for (kt = 0; kt < nkb; kt++) {
            bm->t_row_ptr[h * (nkb + 1) + kt] = e;
            for (qt = 0; qt < nqb; qt++) {
                uint8_t c = cls[qt * nkb + kt];
                if (!c || (layout && !layout[(h * nqb + qt) * nkb + kt])) continue;
                bm->t_col[e] = (int32_t)qt; bm->t_kind[e] = c; e++;
            }
            if (kt == nkb - 1) bm->t_row_ptr[h * (nkb + 1) + nkb] = e;
        }
    if (nkb == 0) for (h = 0; h < n_heads; h++) bm->t_row_ptr[h] = 0;
    eff_ctx_free(ctx, cls);
    bm->Tq = Tq; bm->Tk = Tk; bm->bq = bq; bm->bk = bk; bm->nqb = nqb; bm->nkb = nkb;
    bm->n_heads = n_heads; bm->nnz = nnz; bm->rule = ru; bm->mem = mem;
    return EFF_OK;
}

EFFDEF void eff_attn_blockmask_free(eff_ctx *ctx, eff_attn_blockmask *bm) {
    if (!bm) return;
    eff_ctx_free(ctx, bm->mem);
    memset(bm, 0, sizeof *bm);
}

static eff_status eff__bm_check_T(eff_ctx *ctx, const char *fn, int64_t T, int64_t tile) {
    EFF__CHECK(ctx, T >= 0, EFF_ERR_SHAPE, "%s: T=%lld must be >= 0", fn, (long long)T);
    EFF__CHECK(ctx, tile >= 0, EFF_ERR_INVALID_ARG, "%s: tile=%lld must be >= 0 (0 = 64)", fn, (long long)tile);
    return EFF_OK;
}

EFFDEF eff_status eff_attn_blockmask_causal(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t Tq, int64_t Tk, int64_t tile) {
    eff_attn_rule r;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__bm_check_T(ctx, "eff_attn_blockmask_causal", Tq, tile));
    EFF__TRY(eff__bm_check_T(ctx, "eff_attn_blockmask_causal", Tk, tile));
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_CAUSAL; r.offset = Tk - Tq;
    return eff_attn_blockmask_build(ctx, bm, Tq, Tk, tile, tile, 1, &r, NULL);
}

EFFDEF eff_status eff_attn_blockmask_local(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t block, int causal,
                                           int64_t tile) {
    eff_attn_rule r;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__bm_check_T(ctx, "eff_attn_blockmask_local", T, tile));
    EFF__CHECK(ctx, block >= 1, EFF_ERR_INVALID_ARG, "eff_attn_blockmask_local: block=%lld must be >= 1", (long long)block);
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_LOCAL | (causal ? EFF_ATTN_RULE_CAUSAL : 0); r.block = block;
    return eff_attn_blockmask_build(ctx, bm, T, T, tile, tile, 1, &r, NULL);
}

EFFDEF eff_status eff_attn_blockmask_window(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t left, int64_t right,
                                            int64_t tile) {
    eff_attn_rule r;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__bm_check_T(ctx, "eff_attn_blockmask_window", T, tile));
    EFF__CHECK(ctx, left >= 0 && right >= 0, EFF_ERR_INVALID_ARG, "eff_attn_blockmask_window: left=%lld, right=%lld must be >= 0",
               (long long)left, (long long)right);
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_WINDOW; r.window_left = left; r.window_right = right;
    return eff_attn_blockmask_build(ctx, bm, T, T, tile, tile, 1, &r, NULL);
}

EFFDEF eff_status eff_attn_blockmask_strided(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t stride, int64_t tile) {
    eff_attn_rule r;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__bm_check_T(ctx, "eff_attn_blockmask_strided", T, tile));
    EFF__CHECK(ctx, stride >= 1, EFF_ERR_INVALID_ARG, "eff_attn_blockmask_strided: stride=%lld must be >= 1", (long long)stride);
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_CAUSAL | EFF_ATTN_RULE_WINDOW | EFF_ATTN_RULE_DILATED | EFF_ATTN_RULE_UNION;
    r.window_left = stride; r.stride = stride;
    return eff_attn_blockmask_build(ctx, bm, T, T, tile, tile, 1, &r, NULL);
}

EFFDEF eff_status eff_attn_blockmask_dilated(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t radius,
                                             int64_t dilation, int64_t tile) {
    eff_attn_rule r;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__bm_check_T(ctx, "eff_attn_blockmask_dilated", T, tile));
    EFF__CHECK(ctx, radius >= 0 && dilation >= 1, EFF_ERR_INVALID_ARG,
               "eff_attn_blockmask_dilated: radius=%lld must be >= 0 and dilation=%lld >= 1", (long long)radius, (long long)dilation);
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_WINDOW | EFF_ATTN_RULE_DILATED;
    r.window_left = r.window_right = radius; r.stride = dilation;
    return eff_attn_blockmask_build(ctx, bm, T, T, tile, tile, 1, &r, NULL);
}

EFFDEF eff_status eff_attn_blockmask_global(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t radius,
                                            const int64_t *global, int64_t n_global, int64_t tile) {
    const char *fn = "eff_attn_blockmask_global";
    eff_attn_rule r;
    uint8_t *g;
    int64_t a;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__bm_check_T(ctx, fn, T, tile));
    EFF__CHECK(ctx, radius >= 0, EFF_ERR_INVALID_ARG, "%s: radius=%lld must be >= 0", fn, (long long)radius);
    EFF__CHECK(ctx, n_global >= 0 && (n_global == 0 || global), EFF_ERR_INVALID_ARG, "%s: 'global' is NULL or n_global < 0", fn);
    for (a = 0; a < n_global; a++)
        EFF__CHECK(ctx, global[a] >= 0 && global[a] < T, EFF_ERR_INVALID_ARG, "%s: global[%lld]=%lld is outside [0, T=%lld)", fn,
                   (long long)a, (long long)global[a], (long long)T);
    g = (uint8_t *)eff_ctx_calloc(ctx, (size_t)(T + 1));
    if (!g) return EFF_ERR_OOM;
    for (a = 0; a < n_global; a++) g[global[a]] = 1;
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_WINDOW | EFF_ATTN_RULE_GLOBAL;
    r.window_left = r.window_right = radius; r.glob_q = g; r.glob_k = g;
    s = eff_attn_blockmask_build(ctx, bm, T, T, tile, tile, 1, &r, NULL);
    eff_ctx_free(ctx, g);
    return s;
}

EFFDEF eff_status eff_attn_blockmask_bigbird(eff_ctx *ctx, eff_attn_blockmask *bm, int64_t T, int64_t block,
                                             int64_t n_random, int64_t n_heads, uint64_t seed) {
    const char *fn = "eff_attn_blockmask_bigbird";
    uint8_t *lay;
    int64_t nb, h, I, J;
    uint64_t ctr = 0;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, T >= 0 && block >= 1 && n_random >= 0 && n_heads >= 1, EFF_ERR_INVALID_ARG,
               "%s: need T >= 0 (got %lld), block >= 1 (%lld), n_random >= 0 (%lld), n_heads >= 1 (%lld)", fn, (long long)T,
               (long long)block, (long long)n_random, (long long)n_heads);
    nb = eff__attn_ceil(T, block);
    EFF__CHECK(ctx, nb < 65536, EFF_ERR_INVALID_ARG, "%s: %lld blocks is too many for a tile layout", fn, (long long)nb);
    lay = (uint8_t *)eff_ctx_calloc(ctx, (size_t)(n_heads * nb * nb + 1));
    if (!lay) return EFF_ERR_OOM;
    for (h = 0; h < n_heads; h++)
        for (I = 0; I < nb; I++) {
            uint8_t *row = lay + (h * nb + I) * nb;
            int64_t free_cnt = 0, want;
            if (I == 0 || I == nb - 1) { for (J = 0; J < nb; J++) row[J] = 1; continue; }   /* global rows */
            row[0] = row[nb - 1] = 1;                                                        /* global columns */
            for (J = I - 1; J <= I + 1; J++) if (J >= 0 && J < nb) row[J] = 1;              /* window */
            for (J = 0; J < nb; J++) free_cnt += !row[J];
            want = eff__attn_min(n_random, free_cnt);
            while (want > 0) {   /* random blocks among those not chosen yet, seeded per (head, block) */
                int64_t pick = (int64_t)(eff_hash_u64(seed, ((uint64_t)h * (uint64_t)nb + (uint64_t)I) * 1024u + ctr++) % (uint64_t)free_cnt);
                for (J = 0; J < nb; J++)
                    if (!row[J] && pick-- == 0) { row[J] = 1; break; }
                free_cnt--; want--;
            }
        }
    s = eff_attn_blockmask_build(ctx, bm, T, T, block, block, n_heads, NULL, lay);
    eff_ctx_free(ctx, lay);
    return s;
}

EFFDEF eff_status eff_attn_blockmask_varlen(eff_ctx *ctx, eff_attn_blockmask *bm, const int64_t *seqlens, int64_t n_seqs,
                                            int causal, int64_t tile) {
    const char *fn = "eff_attn_blockmask_varlen";
    eff_attn_rule r;
    int32_t *seg;
    int64_t T = 0, a, p = 0;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, n_seqs >= 1 && seqlens, EFF_ERR_INVALID_ARG, "%s: need seqlens and n_seqs >= 1", fn);
    EFF__CHECK(ctx, n_seqs < INT32_MAX, EFF_ERR_INVALID_ARG, "%s: n_seqs too large", fn);
    for (a = 0; a < n_seqs; a++) {
        EFF__CHECK(ctx, seqlens[a] >= 0, EFF_ERR_INVALID_ARG, "%s: seqlens[%lld]=%lld is negative", fn, (long long)a, (long long)seqlens[a]);
        EFF__CHECK(ctx, !eff__add_ovf(T, seqlens[a], &T), EFF_ERR_OVERFLOW, "%s: total length overflows", fn);
    }
    EFF__TRY(eff__bm_check_T(ctx, fn, T, tile));
    seg = (int32_t *)eff_ctx_alloc(ctx, (size_t)(T + 1) * 4);
    if (!seg) return EFF_ERR_OOM;
    for (a = 0; a < n_seqs; a++) { int64_t t; for (t = 0; t < seqlens[a]; t++) seg[p++] = (int32_t)a; }
    memset(&r, 0, sizeof r);
    r.flags = EFF_ATTN_RULE_SEGMENT | (causal ? EFF_ATTN_RULE_CAUSAL : 0);
    r.seg_q = seg; r.seg_k = seg;
    s = eff_attn_blockmask_build(ctx, bm, T, T, tile, tile, 1, &r, NULL);
    eff_ctx_free(ctx, seg);
    return s;
}

EFFDEF int eff_attn_blockmask_allowed(const eff_attn_blockmask *bm, int64_t h, int64_t i, int64_t j) {
    const int64_t *rp;
    int64_t qt, kt, lo, hi;
    if (!bm || !bm->row_ptr || i < 0 || j < 0 || i >= bm->Tq || j >= bm->Tk || h < 0) return 0;
    rp = bm->row_ptr + (h % bm->n_heads) * (bm->nqb + 1);
    qt = i / bm->bq; kt = j / bm->bk;
    lo = rp[qt]; hi = rp[qt + 1];
    while (lo < hi) {   /* binary search: columns ascend */
        int64_t mid = lo + (hi - lo) / 2;
        if (bm->col[mid] < kt) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= rp[qt + 1] || bm->col[lo] != kt) return 0;
    return bm->kind[lo] == EFF_ATTN_TILE_FULL ? 1 : eff__rule_ok(&bm->rule, i, j);
}

/* snprintf-style appender */
typedef struct eff__sbuf { char *buf; int64_t size, len; } eff__sbuf;
static void eff__sb_put(eff__sbuf *s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void eff__sb_put(eff__sbuf *s, const char *fmt, ...) {
    va_list ap;
    char tmp[256];
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (s->buf && s->len < s->size - 1) {
        int64_t room = s->size - 1 - s->len, k = n < room ? n : room;
        memcpy(s->buf + s->len, tmp, (size_t)k);
        s->buf[s->len + k] = 0;
    }
    s->len += n;
}

/* Kind of tile (qt, kt) for mask head h: 0 absent, else EFF_ATTN_TILE_*. */
static int eff__bm_tile_kind(const eff_attn_blockmask *bm, int64_t h, int64_t qt, int64_t kt) {
    const int64_t *rp = bm->row_ptr + (h % bm->n_heads) * (bm->nqb + 1);
    int64_t e;
    for (e = rp[qt]; e < rp[qt + 1]; e++) if (bm->col[e] == kt) return bm->kind[e];
    return 0;
}

EFFDEF int64_t eff_attn_blockmask_render(const eff_attn_blockmask *bm, int64_t h, int mode, char *buf, int64_t size) {
    eff__sbuf s;
    int64_t i, j;
    s.buf = size > 0 ? buf : NULL; s.size = size; s.len = 0;
    if (buf && size > 0) buf[0] = 0;
    if (!bm || !bm->row_ptr || h < 0) return -1;
    if (mode == EFF_ATTN_RENDER_TILES) {
        for (i = 0; i < bm->nqb; i++) {
            for (j = 0; j < bm->nkb; j++) {
                int k = eff__bm_tile_kind(bm, h, i, j);
                eff__sb_put(&s, "%c", k == EFF_ATTN_TILE_FULL ? '#' : k ? '+' : '.');
            }
            eff__sb_put(&s, "\n");
        }
    } else if (mode == EFF_ATTN_RENDER_ELEMENTS) {
        for (i = 0; i < bm->Tq; i++) {
            for (j = 0; j < bm->Tk; j++) eff__sb_put(&s, "%c", eff_attn_blockmask_allowed(bm, h, i, j) ? '#' : '.');
            eff__sb_put(&s, "\n");
        }
    } else if (mode == EFF_ATTN_RENDER_SVG) {
        int64_t big = bm->Tq > bm->Tk ? bm->Tq : bm->Tk;
        double cell = big > 0 ? 640.0 / (double)big : 1.0;
        if (cell > 12.0) cell = 12.0;
        eff__sb_put(&s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" shape-rendering=\"crispEdges\">\n",
                    cell * (double)bm->Tk + 2, cell * (double)bm->Tq + 2);
        eff__sb_put(&s, "<rect x=\"0\" y=\"0\" width=\"%.2f\" height=\"%.2f\" fill=\"#f4f4f4\"/>\n", cell * (double)bm->Tk + 2,
                    cell * (double)bm->Tq + 2);
        for (i = 0; i < bm->Tq; i++) {   /* runs of allowed keys in a row, coloured by tile kind */
            j = 0;
            while (j < bm->Tk) {
                int64_t j1;
                int kind;
                if (!eff_attn_blockmask_allowed(bm, h, i, j)) { j++; continue; }
                kind = eff__bm_tile_kind(bm, h, i / bm->bq, j / bm->bk);
                j1 = j + 1;
                while (j1 < bm->Tk && j1 % bm->bk != 0 && eff_attn_blockmask_allowed(bm, h, i, j1)) j1++;
                eff__sb_put(&s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", 1 + cell * (double)j,
                            1 + cell * (double)i, cell * (double)(j1 - j), cell, kind == EFF_ATTN_TILE_FULL ? "#1f5fa8" : "#e8872a");
                j = j1;
            }
        }
        for (i = 0; i <= bm->nqb; i++)
            eff__sb_put(&s, "<line x1=\"1\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
                        1 + cell * (double)eff__attn_min(i * bm->bq, bm->Tq), 1 + cell * (double)bm->Tk,
                        1 + cell * (double)eff__attn_min(i * bm->bq, bm->Tq));
        for (j = 0; j <= bm->nkb; j++)
            eff__sb_put(&s, "<line x1=\"%.2f\" y1=\"1\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#999\" stroke-width=\"0.5\"/>\n",
                        1 + cell * (double)eff__attn_min(j * bm->bk, bm->Tk), 1 + cell * (double)eff__attn_min(j * bm->bk, bm->Tk),
                        1 + cell * (double)bm->Tq);
        eff__sb_put(&s, "</svg>\n");
    } else return -1;
    return s.len;
}

/* ---------------------------------------------------------------------------
   KV caches
   --------------------------------------------------------------------------- */
static int64_t eff__cache_row_bytes(int dtype, int64_t d) {
    switch (dtype) {
    case EFF_F32: return 4 * d;
    case EFF_BF16: case EFF_F16: return 2 * d;
    case EFF_I8: return 4 + d;
    case EFF_Q8_0: return d % 32 == 0 ? d / 32 * 34 : -1;
    default: return -1;
    }
}

EFFDEF int64_t eff_attn_kv_bytes(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t n_tokens, int dtype) {
    int64_t rb = eff__cache_row_bytes(dtype, head_dim), r = 2;
    if (rb < 0 || n_layers < 0 || n_kv_heads < 0 || head_dim < 1 || n_tokens < 0) return -1;
    if (eff__mul_ovf(r, n_layers, &r) || eff__mul_ovf(r, n_kv_heads, &r) || eff__mul_ovf(r, n_tokens, &r) ||
        eff__mul_ovf(r, rb, &r)) return -1;
    return r;
}

EFF__INLINE int64_t eff__cache_slot(const eff_attn_cache *c, int64_t pos) {
    if (c->opts.window <= 0 || pos < c->opts.n_sink) return pos;
    return c->opts.n_sink + (pos - c->opts.n_sink) % c->opts.window;
}
/* Position held by slot s when len tokens were appended. */
EFF__INLINE int64_t eff__cache_pos(const eff_attn_cache *c, int64_t len, int64_t s) {
    int64_t q, r;
    if (len <= c->slots || s < c->opts.n_sink) return s;
    q = len - 1 - c->opts.n_sink; r = s - c->opts.n_sink;
    return c->opts.n_sink + q - eff__attn_mod(q - r, c->opts.window);
}
EFFDEF int64_t eff_attn_cache_count(const eff_attn_cache *c, int64_t layer, int64_t seq) {
    if (!c || !c->len || layer < 0 || layer >= c->opts.n_layers || seq < 0 || seq >= c->opts.max_seqs) return 0;
    return eff__attn_min(c->len[seq * c->opts.n_layers + layer], c->slots);
}

/* Address of the row (seq, layer, kv, head, slot); NULL if a paged slot is unmapped or its
   table entry is out of range. */
static unsigned char *eff__cache_row(const eff_attn_cache *c, int64_t seq, int64_t layer, int kv, int64_t h, int64_t s) {
    const eff_attn_cache_opts *o = &c->opts;
    if (!o->paged)
        return c->data + ((((seq * o->n_layers + layer) * 2 + kv) * o->n_kv_heads + h) * c->slots + s) * c->row_bytes;
    {
        int32_t blk = c->block_table[seq * c->blocks_per_seq + s / o->block_size];
        if (blk < 0 || blk >= o->n_blocks) return NULL;
        return c->data + (int64_t)blk * c->block_bytes +
               (((layer * 2 + kv) * o->n_kv_heads + h) * o->block_size + s % o->block_size) * c->row_bytes;
    }
}

static void eff__cache_decode_row(const eff_attn_cache *c, const unsigned char *src, float *dst) {
    const int64_t d = c->opts.head_dim;
    int64_t i;
    switch (c->opts.dtype) {
    case EFF_F32: memcpy(dst, src, (size_t)d * 4); break;
    case EFF_BF16: eff_bf16_to_fp32_row((const uint16_t *)src, dst, d); break;
    case EFF_F16: eff_fp16_to_fp32_row((const uint16_t *)src, dst, d); break;
    case EFF_I8: {
        float s;
        const int8_t *q = (const int8_t *)(src + 4);
        memcpy(&s, src, 4);
        for (i = 0; i < d; i++) dst[i] = s * (float)q[i];
    } break;
    default: c->to_float(src, dst, d); break;
    }
}
static void eff__cache_encode_row(const eff_attn_cache *c, const float *src, unsigned char *dst) {
    const int64_t d = c->opts.head_dim;
    int64_t i;
    switch (c->opts.dtype) {
    case EFF_F32: memcpy(dst, src, (size_t)d * 4); break;
    case EFF_BF16: eff_fp32_to_bf16_row(src, (uint16_t *)dst, d); break;
    case EFF_F16: eff_fp32_to_fp16_row(src, (uint16_t *)dst, d); break;
    case EFF_I8: {   /* symmetric absmax per (token, head) row */
        float amax = 0.0f, s, inv;
        int8_t *q = (int8_t *)(dst + 4);
        for (i = 0; i < d; i++) { float a = fabsf(src[i]); if (a > amax) amax = a; }
        s = amax / 127.0f; inv = s > 0.0f ? 1.0f / s : 0.0f;
        memcpy(dst, &s, 4);
        for (i = 0; i < d; i++) {
            float v = nearbyintf(src[i] * inv);
            q[i] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
        }
    } break;
    default: c->from_float(src, dst, d); break;
    }
}

EFFDEF eff_status eff_attn_cache_create(eff_ctx *ctx, eff_attn_cache *c, const eff_attn_cache_opts *opts) {
    const char *fn = "eff_attn_cache_create";
    eff_attn_cache_opts o;
    int64_t data_bytes, total, off, i;
    char *mem;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK_PTR(ctx, c);
    EFF__CHECK_PTR(ctx, opts);
    memset(c, 0, sizeof *c);
    o = *opts;
    if (o.n_layers == 0) o.n_layers = 1;
    if (o.max_seqs == 0) o.max_seqs = 1;
    if (o.paged && o.block_size == 0) o.block_size = 16;
    EFF__CHECK(ctx, o.n_layers >= 1 && o.max_seqs >= 1 && o.n_kv_heads >= 1 && o.head_dim >= 1, EFF_ERR_INVALID_ARG,
               "%s: n_layers=%lld, max_seqs=%lld, n_kv_heads=%lld, head_dim=%lld must be >= 1", fn, (long long)o.n_layers,
               (long long)o.max_seqs, (long long)o.n_kv_heads, (long long)o.head_dim);
    EFF__CHECK(ctx, o.head_dim <= EFF__ATTN_MAX_D, EFF_ERR_SHAPE, "%s: head_dim=%lld > %d", fn, (long long)o.head_dim, EFF__ATTN_MAX_D);
    EFF__CHECK(ctx, o.dtype == EFF_F32 || o.dtype == EFF_BF16 || o.dtype == EFF_F16 || o.dtype == EFF_I8 || o.dtype == EFF_Q8_0,
               EFF_ERR_DTYPE, "%s: opts->dtype %s; caches hold f32, bf16, f16, i8 or q8_0", fn,
               eff_dtype_name(o.dtype) ? eff_dtype_name(o.dtype) : "(unknown)");
    if (o.dtype == EFF_Q8_0) {
        const eff_dtype_traits *t = eff_ctx_dtype(ctx, EFF_Q8_0);
        EFF__CHECK(ctx, t && t->to_float && t->from_float, EFF_ERR_DTYPE,
                   "%s: q8_0 conversions are not registered in this context (eff_quant.h registers them)", fn);
        EFF__CHECK(ctx, o.head_dim % 32 == 0, EFF_ERR_SHAPE, "%s: q8_0 needs head_dim %% 32 == 0, got %lld", fn, (long long)o.head_dim);
        c->to_float = t->to_float; c->from_float = t->from_float;
    }
    EFF__CHECK(ctx, o.window >= 0 && o.n_sink >= 0 && (o.n_sink == 0 || o.window > 0), EFF_ERR_INVALID_ARG,
               "%s: window=%lld and n_sink=%lld must be >= 0 (sinks need a window)", fn, (long long)o.window, (long long)o.n_sink);
    c->slots = o.window > 0 ? o.n_sink + o.window : o.max_tokens;
    EFF__CHECK(ctx, c->slots >= 1, EFF_ERR_INVALID_ARG, "%s: opts->max_tokens (or window) must be >= 1", fn);
    c->row_bytes = eff__cache_row_bytes(o.dtype, o.head_dim);
    if (o.paged) {
        EFF__CHECK(ctx, o.block_size >= 1, EFF_ERR_INVALID_ARG, "%s: block_size=%lld must be >= 1", fn, (long long)o.block_size);
        c->blocks_per_seq = eff__attn_ceil(c->slots, o.block_size);
        if (o.n_blocks == 0) o.n_blocks = o.max_seqs * c->blocks_per_seq;
        EFF__CHECK(ctx, o.n_blocks >= 1 && o.n_blocks < INT32_MAX, EFF_ERR_INVALID_ARG, "%s: n_blocks=%lld out of range", fn,
                   (long long)o.n_blocks);
        EFF__CHECK(ctx, !eff__mul_ovf(o.n_layers * 2 * o.n_kv_heads, o.block_size * c->row_bytes, &c->block_bytes) &&
                   !eff__mul_ovf(c->block_bytes, o.n_blocks, &data_bytes), EFF_ERR_OVERFLOW, "%s: pool size overflows", fn);
    } else {
        EFF__CHECK(ctx, !eff__mul_ovf(o.max_seqs * o.n_layers * 2 * o.n_kv_heads, c->slots * c->row_bytes, &data_bytes),
                   EFF_ERR_OVERFLOW, "%s: cache size overflows", fn);
    }
    total = data_bytes + 64 + o.max_seqs * o.n_layers * 8 + 64;
    if (o.paged) total += (o.max_seqs * c->blocks_per_seq + 2 * o.n_blocks) * 4 + 128;
    mem = (char *)eff_ctx_alloc(ctx, (size_t)total);
    if (!mem) return EFF_ERR_OOM;
    off = 0;
    c->data = (unsigned char *)mem; off += (data_bytes + 63) / 64 * 64;
    c->len = (int64_t *)(mem + off); off += o.max_seqs * o.n_layers * 8;
    memset(c->len, 0, (size_t)(o.max_seqs * o.n_layers) * 8);
    if (o.paged) {
        c->block_table = (int32_t *)(mem + off); off += o.max_seqs * c->blocks_per_seq * 4;
        c->refcount = (int32_t *)(mem + off); off += o.n_blocks * 4;
        c->free_list = (int32_t *)(mem + off);
        for (i = 0; i < o.max_seqs * c->blocks_per_seq; i++) c->block_table[i] = -1;
        for (i = 0; i < o.n_blocks; i++) { c->refcount[i] = 0; c->free_list[i] = (int32_t)(o.n_blocks - 1 - i); }
        c->n_free = o.n_blocks;
    } else {
        memset(c->data, 0, (size_t)data_bytes);
    }
    c->opts = o;
    c->mem = mem;
    return EFF_OK;
}

EFFDEF void eff_attn_cache_free(eff_ctx *ctx, eff_attn_cache *c) {
    if (!c) return;
    eff_ctx_free(ctx, c->mem);
    memset(c, 0, sizeof *c);
}

static eff_status eff__cache_check(eff_ctx *ctx, const char *fn, const eff_attn_cache *c, int64_t layer, int64_t seq) {
    EFF__CHECK(ctx, c != NULL && c->mem != NULL, EFF_ERR_INVALID_ARG, "%s: the cache is NULL or not created", fn);
    EFF__CHECK(ctx, layer >= 0 && layer < c->opts.n_layers, EFF_ERR_INVALID_ARG, "%s: layer %lld outside [0, %lld)", fn,
               (long long)layer, (long long)c->opts.n_layers);
    EFF__CHECK(ctx, seq >= 0 && seq < c->opts.max_seqs, EFF_ERR_INVALID_ARG, "%s: sequence %lld outside [0, %lld)", fn,
               (long long)seq, (long long)c->opts.max_seqs);
    return EFF_OK;
}
/* Every mapped table entry of seq must point into the pool. */
static eff_status eff__cache_check_table(eff_ctx *ctx, const char *fn, const eff_attn_cache *c, int64_t seq) {
    int64_t i;
    if (!c->opts.paged) return EFF_OK;
    for (i = 0; i < c->blocks_per_seq; i++) {
        int32_t b = c->block_table[seq * c->blocks_per_seq + i];
        EFF__CHECK(ctx, b >= -1 && b < c->opts.n_blocks, EFF_ERR_FORMAT,
                   "%s: block table of sequence %lld, entry %lld = %d points past the pool of %lld blocks", fn, (long long)seq,
                   (long long)i, (int)b, (long long)c->opts.n_blocks);
    }
    return EFF_OK;
}

/* Makes the block holding slot s of seq private and mapped (allocating or copying on write). */
static eff_status eff__cache_own_block(eff_ctx *ctx, eff_attn_cache *c, int64_t seq, int64_t s) {
    int32_t *ent = &c->block_table[seq * c->blocks_per_seq + s / c->opts.block_size];
    int32_t nb;
    if (*ent >= 0 && c->refcount[*ent] == 1) return EFF_OK;
    EFF__CHECK(ctx, c->n_free > 0, EFF_ERR_OOM, "eff_attn_cache_append: the pool of %lld blocks is exhausted",
               (long long)c->opts.n_blocks);
    nb = c->free_list[--c->n_free];
    c->refcount[nb] = 1;
    if (*ent >= 0) {   /* shared: copy on write */
        memcpy(c->data + (int64_t)nb * c->block_bytes, c->data + (int64_t)*ent * c->block_bytes, (size_t)c->block_bytes);
        c->refcount[*ent]--;
    } else memset(c->data + (int64_t)nb * c->block_bytes, 0, (size_t)c->block_bytes);
    *ent = nb;
    return EFF_OK;
}

EFFDEF eff_status eff_attn_cache_append(eff_ctx *ctx, eff_attn_cache *c, int64_t layer, int64_t seq, const eff_tensor *K,
                                        const eff_tensor *V) {
    const char *fn = "eff_attn_cache_append";
    eff_tensor k3, v3;
    int64_t n, t, h, len, d;
    float *row;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__cache_check(ctx, fn, c, layer, seq));
    EFF__TRY(eff__cache_check_table(ctx, fn, c, seq));
    EFF__CHECK(ctx, K && V, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, K ? "V" : "K");
    d = c->opts.head_dim;
    k3 = *K; v3 = *V;
    if (k3.ndim == 4 && k3.ne[0] == 1) { k3.ndim = 3; k3.ne[0] = k3.ne[1]; k3.ne[1] = k3.ne[2]; k3.ne[2] = k3.ne[3]; k3.nb[0] = k3.nb[1]; k3.nb[1] = k3.nb[2]; k3.nb[2] = k3.nb[3]; }
    if (v3.ndim == 4 && v3.ne[0] == 1) { v3.ndim = 3; v3.ne[0] = v3.ne[1]; v3.ne[1] = v3.ne[2]; v3.ne[2] = v3.ne[3]; v3.nb[0] = v3.nb[1]; v3.nb[1] = v3.nb[2]; v3.nb[2] = v3.nb[3]; }
    EFF__TRY(eff__attn_check(ctx, fn, &k3, "K", EFF__ATTN_DT_FLOATS, 3, c->opts.n_kv_heads, -1, d, -1));
    n = k3.ne[1];
    EFF__TRY(eff__attn_check(ctx, fn, &v3, "V", EFF__ATTN_DT_FLOATS, 3, c->opts.n_kv_heads, n, d, -1));
    len = c->len[seq * c->opts.n_layers + layer];
    EFF__CHECK(ctx, c->opts.window > 0 || len + n <= c->slots, EFF_ERR_INVALID_ARG,
               "%s: sequence %lld layer %lld holds %lld tokens; %lld more exceed max_tokens = %lld", fn, (long long)seq,
               (long long)layer, (long long)len, (long long)n, (long long)c->slots);
    row = (float *)eff_ctx_alloc(ctx, (size_t)d * sizeof(float));
    if (!row) return EFF_ERR_OOM;
    for (t = 0; t < n; t++) {
        int64_t s = eff__cache_slot(c, len + t);
        if (c->opts.paged) {
            eff_status st = eff__cache_own_block(ctx, c, seq, s);
            if (st != EFF_OK) { c->len[seq * c->opts.n_layers + layer] = len + t; eff_ctx_free(ctx, row); return st; }
        }
        for (h = 0; h < c->opts.n_kv_heads; h++) {
            eff__attn_load_row((const char *)k3.data + h * k3.nb[0] + t * k3.nb[1], k3.dtype, row, d);
            eff__cache_encode_row(c, row, eff__cache_row(c, seq, layer, 0, h, s));
            eff__attn_load_row((const char *)v3.data + h * v3.nb[0] + t * v3.nb[1], v3.dtype, row, d);
            eff__cache_encode_row(c, row, eff__cache_row(c, seq, layer, 1, h, s));
        }
    }
    c->len[seq * c->opts.n_layers + layer] = len + n;
    eff_ctx_free(ctx, row);
    return EFF_OK;
}

EFFDEF eff_status eff_attn_cache_reset(eff_ctx *ctx, eff_attn_cache *c, int64_t seq) {
    int64_t i;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__cache_check(ctx, "eff_attn_cache_reset", c, 0, seq));
    EFF__TRY(eff__cache_check_table(ctx, "eff_attn_cache_reset", c, seq));
    for (i = 0; i < c->opts.n_layers; i++) c->len[seq * c->opts.n_layers + i] = 0;
    if (c->opts.paged)
        for (i = 0; i < c->blocks_per_seq; i++) {
            int32_t *ent = &c->block_table[seq * c->blocks_per_seq + i];
            if (*ent < 0) continue;
            if (--c->refcount[*ent] == 0) c->free_list[c->n_free++] = *ent;
            *ent = -1;
        }
    return EFF_OK;
}

EFFDEF eff_status eff_attn_cache_truncate(eff_ctx *ctx, eff_attn_cache *c, int64_t seq, int64_t n) {
    const char *fn = "eff_attn_cache_truncate";
    int64_t l, keep = 0, i;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__cache_check(ctx, fn, c, 0, seq));
    EFF__TRY(eff__cache_check_table(ctx, fn, c, seq));
    EFF__CHECK(ctx, n >= 0, EFF_ERR_INVALID_ARG, "%s: n=%lld must be >= 0", fn, (long long)n);
    for (l = 0; l < c->opts.n_layers; l++) {   /* check every layer before changing any */
        int64_t len = c->len[seq * c->opts.n_layers + l];
        EFF__CHECK(ctx, len <= n || len <= c->slots, EFF_ERR_UNSUPPORTED,
                   "%s: sequence %lld's sliding window already overwrote the slots of positions >= %lld", fn, (long long)seq,
                   (long long)n);
    }
    for (l = 0; l < c->opts.n_layers; l++) {
        int64_t *len = &c->len[seq * c->opts.n_layers + l];
        if (*len > n) *len = n;
        if (*len > keep) keep = *len;
    }
    if (c->opts.paged)   /* slots are positions here (nothing wrapped): release blocks past the longest layer */
        for (i = eff__attn_ceil(keep, c->opts.block_size); i < c->blocks_per_seq; i++) {
            int32_t *ent = &c->block_table[seq * c->blocks_per_seq + i];
            if (*ent < 0) continue;
            if (--c->refcount[*ent] == 0) c->free_list[c->n_free++] = *ent;
            *ent = -1;
        }
    return EFF_OK;
}

EFFDEF eff_status eff_attn_cache_fork(eff_ctx *ctx, eff_attn_cache *c, int64_t src, int64_t dst) {
    const char *fn = "eff_attn_cache_fork";
    int64_t i;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__cache_check(ctx, fn, c, 0, src));
    EFF__TRY(eff__cache_check(ctx, fn, c, 0, dst));
    EFF__CHECK(ctx, src != dst, EFF_ERR_INVALID_ARG, "%s: src and dst are both %lld", fn, (long long)src);
    EFF__TRY(eff__cache_check_table(ctx, fn, c, src));
    EFF__TRY(eff_attn_cache_reset(ctx, c, dst));
    for (i = 0; i < c->opts.n_layers; i++) c->len[dst * c->opts.n_layers + i] = c->len[src * c->opts.n_layers + i];
    if (c->opts.paged) {
        for (i = 0; i < c->blocks_per_seq; i++) {
            int32_t b = c->block_table[src * c->blocks_per_seq + i];
            c->block_table[dst * c->blocks_per_seq + i] = b;
            if (b >= 0) c->refcount[b]++;
        }
    } else {
        int64_t per = c->opts.n_layers * 2 * c->opts.n_kv_heads * c->slots * c->row_bytes;
        memcpy(c->data + dst * per, c->data + src * per, (size_t)per);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_attn_cache_gather(eff_ctx *ctx, const eff_attn_cache *c, int64_t layer, int64_t seq, eff_tensor *K,
                                        eff_tensor *V, int64_t *pos, int64_t *n_out) {
    const char *fn = "eff_attn_cache_gather";
    int64_t n, len, s, h, d;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__cache_check(ctx, fn, c, layer, seq));
    EFF__TRY(eff__cache_check_table(ctx, fn, c, seq));
    d = c->opts.head_dim;
    len = c->len[seq * c->opts.n_layers + layer];
    n = eff__attn_min(len, c->slots);
    if (K) EFF__TRY(eff__attn_check(ctx, fn, K, "K", EFF__ATTN_DT_F32, 3, c->opts.n_kv_heads, -1, d, -1));
    if (V) EFF__TRY(eff__attn_check(ctx, fn, V, "V", EFF__ATTN_DT_F32, 3, c->opts.n_kv_heads, -1, d, -1));
    EFF__CHECK(ctx, (!K || K->ne[1] >= n) && (!V || V->ne[1] >= n), EFF_ERR_SHAPE, "%s: K/V hold fewer than the %lld retained tokens",
               fn, (long long)n);
    for (s = 0; s < n; s++) {
        if (pos) pos[s] = eff__cache_pos(c, len, s);
        for (h = 0; h < c->opts.n_kv_heads; h++) {
            const unsigned char *rk = eff__cache_row(c, seq, layer, 0, h, s), *rv = eff__cache_row(c, seq, layer, 1, h, s);
            EFF__CHECK(ctx, rk && rv, EFF_ERR_FORMAT, "%s: slot %lld of sequence %lld is not mapped to a block", fn, (long long)s,
                       (long long)seq);
            if (K) eff__cache_decode_row(c, rk, (float *)((char *)K->data + h * K->nb[0] + s * K->nb[1]));
            if (V) eff__cache_decode_row(c, rv, (float *)((char *)V->data + h * V->nb[0] + s * V->nb[1]));
        }
    }
    if (n_out) *n_out = n;
    return EFF_OK;
}

/* Rows of slots [j0, j0+n) of batch row b's sequence as f32 (direct for contiguous f32 caches),
   zero-padded to ldbuf; key positions into kpos when given. */
static const float *eff__cache_rows(const eff__fa *F, int which, int64_t b, int64_t hkv, int64_t j0, int64_t n, float *buf,
                                    int64_t ldbuf, int64_t *ld, int pad, int64_t *kpos) {
    const eff_attn_cache *c = F->cache;
    const int64_t seq = F->seq[b], d = c->opts.head_dim;
    int64_t jj, k;
    if (kpos) {
        int64_t len = c->len[seq * c->opts.n_layers + F->layer];
        for (jj = 0; jj < n; jj++) kpos[jj] = eff__cache_pos(c, len, j0 + jj);
    }
    if (!c->opts.paged && c->opts.dtype == EFF_F32 && (!pad || d % EFF__VL == 0)) {
        *ld = d;
        return (const float *)eff__cache_row(c, seq, F->layer, which, hkv, j0);
    }
    for (jj = 0; jj < n; jj++) {
        float *dst = buf + jj * ldbuf;
        eff__cache_decode_row(c, eff__cache_row(c, seq, F->layer, which, hkv, j0 + jj), dst);
        for (k = d; k < ldbuf; k++) dst[k] = 0.0f;
    }
    *ld = ldbuf;
    return buf;
}

EFFDEF eff_status eff_attn_cache_decode(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                        const eff_attn_cache *c, int64_t layer, const int64_t *seqs, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_cache_decode";
    eff__fa F;
    eff_attn_opts op;
    int64_t b, *tkb;
    int *wrap;
    eff_status st;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    memset(&op, 0, sizeof op);
    if (opts) op = *opts;
    EFF__CHECK(ctx, c != NULL && c->mem != NULL, EFF_ERR_INVALID_ARG, "%s: the cache is NULL or not created", fn);
    EFF__CHECK(ctx, !op.bias && !op.mask && !op.block_mask, EFF_ERR_UNSUPPORTED,
               "%s: opts bias/mask/block_mask are not supported over a cache", fn);
    EFF__CHECK(ctx, !op.window || (op.window_left >= 0 && op.window_right >= 0), EFF_ERR_INVALID_ARG,
               "%s: opts->window_left (%lld) and window_right (%lld) must be >= 0", fn, (long long)op.window_left,
               (long long)op.window_right);
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__CHECK_PTR(ctx, seqs);
    memset(&F, 0, sizeof F);
    EFF__TRY(eff__attn_check(ctx, fn, Q, "Q", EFF__ATTN_DT_FLOATS, 4, -1, -1, -1, c->opts.head_dim));
    F.B = Q->ne[0]; F.Hq = Q->ne[1]; F.Tq = Q->ne[2]; F.d = F.dv = c->opts.head_dim; F.Hkv = c->opts.n_kv_heads;
    EFF__CHECK(ctx, F.Hq % F.Hkv == 0, EFF_ERR_SHAPE, "%s: Q has %lld heads, not a multiple of the cache's %lld kv heads", fn,
               (long long)F.Hq, (long long)F.Hkv);
    F.G = F.Hq / F.Hkv;
    EFF__TRY(eff__attn_check(ctx, fn, O, "O", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hq, F.Tq, F.dv));
    if (lse) { EFF__TRY(eff__attn_check(ctx, fn, lse, "lse", EFF__ATTN_DT_F32, 3, F.B, F.Hq, F.Tq, -1)); F.lse = eff__attn_view3(lse); }
    EFF__CHECK(ctx, op.scale == op.scale && op.scale != INFINITY && op.scale != -INFINITY, EFF_ERR_INVALID_ARG,
               "%s: opts->scale is not finite", fn);
    EFF__CHECK(ctx, op.kv_splits >= 0, EFF_ERR_INVALID_ARG, "%s: opts->kv_splits is negative", fn);
    for (b = 0; b < F.B; b++) {
        EFF__TRY(eff__cache_check(ctx, fn, c, layer, seqs[b]));
        EFF__TRY(eff__cache_check_table(ctx, fn, c, seqs[b]));
        EFF__CHECK(ctx, c->len[seqs[b] * c->opts.n_layers + layer] >= F.Tq, EFF_ERR_SHAPE,
                   "%s: sequence %lld holds %lld tokens at layer %lld; Q has Tq = %lld (append them first)", fn, (long long)seqs[b],
                   (long long)c->len[seqs[b] * c->opts.n_layers + layer], (long long)layer, (long long)F.Tq);
        if (c->opts.paged) {   /* every retained slot must be mapped */
            int64_t n = eff_attn_cache_count(c, layer, seqs[b]), i;
            for (i = 0; i < eff__attn_ceil(n, c->opts.block_size); i++)
                EFF__CHECK(ctx, c->block_table[seqs[b] * c->blocks_per_seq + i] >= 0, EFF_ERR_FORMAT,
                           "%s: block %lld of sequence %lld is unmapped", fn, (long long)i, (long long)seqs[b]);
        }
    }
    F.q = eff__attn_view4(Q); F.o = eff__attn_view4(O);
    F.scale_d = op.scale != 0.0 ? op.scale : 1.0 / sqrt((double)F.d);
    F.scale = (float)F.scale_d;
    F.causal = 1;
    if (op.window) { F.window = 1; F.wl = op.window_left; F.wr = op.window_right; }
    F.cache = c; F.layer = layer; F.seq = seqs;
    tkb = (int64_t *)eff_ctx_alloc(ctx, (size_t)(2 * F.B + 1) * 8 + (size_t)(F.B + 1) * sizeof(int));
    if (!tkb) return EFF_ERR_OOM;
    wrap = (int *)(tkb + 2 * F.B + 1);
    F.tk_b = tkb; F.off_b = tkb + F.B; F.wrap_b = wrap;
    F.Tk = 0;
    for (b = 0; b < F.B; b++) {
        int64_t len = c->len[seqs[b] * c->opts.n_layers + layer];
        tkb[b] = eff__attn_min(len, c->slots);
        F.off_b[b] = len - F.Tq;
        wrap[b] = len > c->slots;
        if (tkb[b] > F.Tk) F.Tk = tkb[b];
    }
    eff__fa_tiling(&F);
    st = eff__fa_forward_run(ctx, &F, op.kv_splits);
    eff_ctx_free(ctx, tkb);
    return st;
}

/* ---------------------------------------------------------------------------
   Linear attention (phi = elu + 1), forward and backward, f32 state
   --------------------------------------------------------------------------- */
#define EFF__LIN_EPS 1e-6f
/* phi'(x) = 1 for x > 0, else exp(x) = phi(x) */
EFF__INLINE float eff__dphi(float x, float phx) { return x > 0.0f ? 1.0f : phx; }
/* y += a x and x . y with the SIMD layer (the state is f32, as in fast-transformers) */
static void eff__lin_axpy(int64_t n, float a, const float *EFF__RESTRICT x, float *EFF__RESTRICT y) {
    eff__vf va = eff__vset1(a);
    int64_t i = 0;
    for (; i + EFF__VL <= n; i += EFF__VL) eff__vstore(y + i, eff__vfma(va, eff__vload(x + i), eff__vload(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
static float eff__lin_dot(int64_t n, const float *EFF__RESTRICT x, const float *EFF__RESTRICT y) {
    eff__vf acc = eff__vzero();
    float s = 0.0f;
    int64_t i = 0;
    for (; i + EFF__VL <= n; i += EFF__VL) acc = eff__vfma(eff__vload(x + i), eff__vload(y + i), acc);
    for (; i < n; i++) s += x[i] * y[i];
    return s + eff__vhsum(acc);
}

static eff_status eff__lin_setup(eff_ctx *ctx, const char *fn, eff__fa *F, const eff_tensor *O, const eff_tensor *Q,
                                 const eff_tensor *K, const eff_tensor *V, int causal) {
    EFF__TRY(eff__fa_setup(ctx, fn, F, O, NULL, Q, K, V, NULL, EFF__ATTN_DT_FLOATS, EFF__ATTN_REF_MAX_D));
    EFF__CHECK(ctx, !causal || F->Tq == F->Tk, EFF_ERR_SHAPE, "%s: causal linear attention needs Tq == Tk (got %lld, %lld)", fn,
               (long long)F->Tq, (long long)F->Tk);
    return EFF_OK;
}
/* raw <- a row of a view, ph <- phi(raw) = elu(raw) + 1 */
static void eff__lin_row(const eff__av *v, int64_t b, int64_t h, int64_t t, int64_t n, float *raw, float *ph) {
    int64_t c;
    eff__attn_load_row(eff__av_row(v, b, h, t), v->dt, raw, n);
    for (c = 0; c + EFF__VL <= n; c += EFF__VL) {
        eff__vf x = eff__vload(raw + c);
        eff__vstore(ph + c, eff__vselect_lt(eff__vzero(), x, eff__vadd(x, eff__vset1(1.0f)), eff__vexp(x)));
    }
    for (; c < n; c++) ph[c] = raw[c] > 0.0f ? raw[c] + 1.0f : expf(raw[c]);
}

EFFDEF eff_status eff_attn_linear_forward(eff_ctx *ctx, eff_tensor *O, const eff_tensor *Q, const eff_tensor *K,
                                          const eff_tensor *V, int causal) {
    const char *fn = "eff_attn_linear_forward";
    eff__fa F;
    int nt;
    int64_t per, g, groups;
    float *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__TRY(eff__lin_setup(ctx, fn, &F, O, Q, K, V, causal));
    nt = eff_ctx_n_threads(ctx);
    groups = F.B * F.Hkv;
    per = F.d * F.dv + 4 * F.d + 3 * F.dv + 16;
    ws = (float *)eff_ctx_alloc(ctx, (size_t)(nt * per) * sizeof(float));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && groups > 1))
    for (g = 0; g < groups; g++) {
        float *S = ws + (int64_t)eff__tid() * per, *z = S + F.d * F.dv, *raw = z + F.d, *pk = raw + F.d, *pq = pk + F.d;
        float *vr = pq + F.d, *num = vr + F.dv;
        const int64_t b = g / F.Hkv, hk = g % F.Hkv;
        int64_t j, hh, c, e;
        memset(S, 0, (size_t)(F.d * F.dv + F.d) * sizeof(float));
        /* non-causal: all keys, then all queries; causal: key t, then the queries at t */
        for (j = 0; j < (causal ? F.Tq : F.Tk + F.Tq); j++) {
            const int is_key = causal || j < F.Tk;
            const int64_t t = causal || is_key ? j : j - F.Tk;
            if (is_key) {
                eff__lin_row(&F.k, b, hk, t, F.d, raw, pk);
                eff__attn_load_row(eff__av_row(&F.v, b, hk, t), F.v.dt, vr, F.dv);
                for (c = 0; c < F.d; c++) { eff__lin_axpy(F.dv, pk[c], vr, S + c * F.dv); z[c] += pk[c]; }
            }
            if (causal || !is_key)
                for (hh = 0; hh < F.G; hh++) {
                    float den;
                    eff__lin_row(&F.q, b, hk * F.G + hh, t, F.d, raw, pq);
                    for (e = 0; e < F.dv; e++) num[e] = 0.0f;
                    for (c = 0; c < F.d; c++) eff__lin_axpy(F.dv, pq[c], S + c * F.dv, num);
                    den = EFF__LIN_EPS + eff__lin_dot(F.d, pq, z);
                    for (e = 0; e < F.dv; e++) num[e] /= den;
                    eff__attn_store_row(num, eff__av_row(&F.o, b, hk * F.G + hh, t), F.o.dt, F.dv);
                }
        }
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

EFFDEF eff_status eff_attn_linear_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                           const eff_tensor *dO, const eff_tensor *Q, const eff_tensor *K,
                                           const eff_tensor *V, int causal) {
    const char *fn = "eff_attn_linear_backward";
    eff__fa F;
    eff__av vdo, vdq, vdk, vdv;
    int nt;
    int64_t per, g, groups;
    float *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__lin_setup(ctx, fn, &F, NULL, Q, K, V, causal));
    EFF__CHECK(ctx, dQ && dK && dV, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, !dQ ? "dQ" : !dK ? "dK" : "dV");
    EFF__TRY(eff__attn_check(ctx, fn, dO, "dO", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hq, F.Tq, F.dv));
    EFF__TRY(eff__attn_check(ctx, fn, dQ, "dQ", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hq, F.Tq, F.d));
    EFF__TRY(eff__attn_check(ctx, fn, dK, "dK", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hkv, F.Tk, F.d));
    EFF__TRY(eff__attn_check(ctx, fn, dV, "dV", EFF__ATTN_DT_FLOATS, 4, F.B, F.Hkv, F.Tk, F.dv));
    vdo = eff__attn_view4(dO); vdq = eff__attn_view4(dQ); vdk = eff__attn_view4(dK); vdv = eff__attn_view4(dV);
    nt = eff_ctx_n_threads(ctx);
    groups = F.B * F.Hkv;
    /* S, dS (or the suffix sum G) [d*dv]; z, dz [d]; rows; causal: dnum [G*T*dv], dden [G*T]; f32 row scratch */
    per = 2 * F.d * F.dv + 2 * F.d + 4 * F.d + 5 * F.dv + 16 + (causal ? F.G * F.Tq * (F.dv + 1) : 0);
    ws = (float *)eff_ctx_alloc(ctx, (size_t)(nt * per) * sizeof(float));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && groups > 1))
    for (g = 0; g < groups; g++) {
        float *S = ws + (int64_t)eff__tid() * per, *dS = S + F.d * F.dv, *z = dS + F.d * F.dv, *dz = z + F.d;
        float *raw = dz + F.d, *pk = raw + F.d, *pq = pk + F.d, *tmp = pq + F.d;
        float *vr = tmp + F.d, *num = vr + F.dv, *gr = num + F.dv, *dnum = gr + F.dv, *tv = dnum + F.dv;
        float *st_dnum = tv + F.dv, *st_dden = st_dnum + (causal ? F.G * F.Tq * F.dv : 0);
        const int64_t b = g / F.Hkv, hk = g % F.Hkv;
        int64_t i, j, hh, c, e;
        memset(S, 0, (size_t)(2 * F.d * F.dv + 2 * F.d) * sizeof(float));
        if (!causal)
            for (j = 0; j < F.Tk; j++) {
                eff__lin_row(&F.k, b, hk, j, F.d, raw, pk);
                eff__attn_load_row(eff__av_row(&F.v, b, hk, j), F.v.dt, vr, F.dv);
                for (c = 0; c < F.d; c++) { eff__lin_axpy(F.dv, pk[c], vr, S + c * F.dv); z[c] += pk[c]; }
            }
        /* queries: O = num / den; dnum = dO / den, dden = -(dO . O) / den; dphi(q) = S dnum + z dden */
        for (i = 0; i < F.Tq; i++) {
            if (causal) {   /* prefix sums up to and including key i */
                eff__lin_row(&F.k, b, hk, i, F.d, raw, pk);
                eff__attn_load_row(eff__av_row(&F.v, b, hk, i), F.v.dt, vr, F.dv);
                for (c = 0; c < F.d; c++) { eff__lin_axpy(F.dv, pk[c], vr, S + c * F.dv); z[c] += pk[c]; }
            }
            for (hh = 0; hh < F.G; hh++) {
                const int64_t h = hk * F.G + hh;
                float den, dden;
                eff__lin_row(&F.q, b, h, i, F.d, raw, pq);
                eff__attn_load_row(eff__av_row(&vdo, b, h, i), vdo.dt, gr, F.dv);
                for (e = 0; e < F.dv; e++) num[e] = 0.0f;
                for (c = 0; c < F.d; c++) eff__lin_axpy(F.dv, pq[c], S + c * F.dv, num);
                den = EFF__LIN_EPS + eff__lin_dot(F.d, pq, z);
                dden = -eff__lin_dot(F.dv, gr, num) / (den * den);
                for (e = 0; e < F.dv; e++) dnum[e] = gr[e] / den;
                for (c = 0; c < F.d; c++) tmp[c] = (z[c] * dden + eff__lin_dot(F.dv, S + c * F.dv, dnum)) * eff__dphi(raw[c], pq[c]);
                eff__attn_store_row(tmp, eff__av_row(&vdq, b, h, i), vdq.dt, F.d);
                if (causal) {
                    memcpy(st_dnum + (hh * F.Tq + i) * F.dv, dnum, (size_t)F.dv * sizeof(float));
                    st_dden[hh * F.Tq + i] = dden;
                } else {
                    for (c = 0; c < F.d; c++) { eff__lin_axpy(F.dv, pq[c], dnum, dS + c * F.dv); dz[c] += pq[c] * dden; }
                }
            }
        }
        /* keys: dphi(k_j) = dS v_j + dz, dv_j = dS^T phi(k_j), with dS, dz summed over the queries
           that see key j (all of them, or the suffix i >= j when causal) */
        for (j = causal ? F.Tk - 1 : 0; causal ? j >= 0 : j < F.Tk; j += causal ? -1 : 1) {
            if (causal)
                for (hh = 0; hh < F.G; hh++) {
                    const float *dn = st_dnum + (hh * F.Tq + j) * F.dv, dd = st_dden[hh * F.Tq + j];
                    eff__lin_row(&F.q, b, hk * F.G + hh, j, F.d, raw, pq);
                    for (c = 0; c < F.d; c++) { eff__lin_axpy(F.dv, pq[c], dn, dS + c * F.dv); dz[c] += pq[c] * dd; }
                }
            eff__lin_row(&F.k, b, hk, j, F.d, raw, pk);
            eff__attn_load_row(eff__av_row(&F.v, b, hk, j), F.v.dt, vr, F.dv);
            for (c = 0; c < F.d; c++) tmp[c] = (dz[c] + eff__lin_dot(F.dv, dS + c * F.dv, vr)) * eff__dphi(raw[c], pk[c]);
            for (e = 0; e < F.dv; e++) tv[e] = 0.0f;
            for (c = 0; c < F.d; c++) eff__lin_axpy(F.dv, pk[c], dS + c * F.dv, tv);
            eff__attn_store_row(tmp, eff__av_row(&vdk, b, hk, j), vdk.dt, F.d);
            eff__attn_store_row(tv, eff__av_row(&vdv, b, hk, j), vdv.dt, F.dv);
        }
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Linformer: project the key length with E, F, then flash attention
   --------------------------------------------------------------------------- */
static eff_status eff__linf_setup(eff_ctx *ctx, const char *fn, eff__fa *F, const eff_tensor *O, const eff_tensor *lse,
                                  const eff_tensor *Q, const eff_tensor *K, const eff_tensor *V, const eff_tensor *E,
                                  const eff_tensor *Fm, const eff_attn_opts *opts, int64_t *kp) {
    EFF__TRY(eff__fa_setup(ctx, fn, F, O, lse, Q, K, V, NULL, EFF__ATTN_DT_F32, EFF__ATTN_MAX_D));
    EFF__CHECK(ctx, !opts || (!opts->causal && !opts->window && !opts->block_mask), EFF_ERR_UNSUPPORTED,
               "%s: Linformer is not causal; opts causal/window/block_mask are not supported", fn);
    EFF__TRY(eff__attn_check(ctx, fn, E, "E", EFF__ATTN_DT_F32, 2, -1, F->Tk, -1, -1));
    *kp = E->ne[0];
    EFF__TRY(eff__attn_check(ctx, fn, Fm, "F", EFF__ATTN_DT_F32, 2, *kp, F->Tk, -1, -1));
    EFF__CHECK(ctx, E->nb[0] % 4 == 0 && Fm->nb[0] % 4 == 0 && F->k.st % 4 == 0 && F->v.st % 4 == 0, EFF_ERR_SHAPE,
               "%s: row strides must be multiples of 4 bytes", fn);
    return EFF_OK;
}
/* Kp[b, h] = E K[b, h], Vp[b, h] = F V[b, h] */
static eff_status eff__linf_project(eff_ctx *ctx, const eff__fa *F, const eff_tensor *E, const eff_tensor *Fm, int64_t kp,
                                    float *Kp, float *Vp) {
    int64_t b, h;
    for (b = 0; b < F->B; b++)
        for (h = 0; h < F->Hkv; h++) {
            const float *k = (const float *)eff__av_row(&F->k, b, h, 0), *v = (const float *)eff__av_row(&F->v, b, h, 0);
            float *kd = Kp + (b * F->Hkv + h) * kp * F->d, *vd = Vp + (b * F->Hkv + h) * kp * F->dv;
            EFF__TRY(eff_sgemm(ctx, 0, 0, kp, F->d, F->Tk, 1.0f, (const float *)E->data, E->nb[0] / 4, k, F->k.st / 4, 0.0f, kd, F->d));
            EFF__TRY(eff_sgemm(ctx, 0, 0, kp, F->dv, F->Tk, 1.0f, (const float *)Fm->data, Fm->nb[0] / 4, v, F->v.st / 4, 0.0f, vd, F->dv));
        }
    return EFF_OK;
}

EFFDEF eff_status eff_attn_linformer_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                             const eff_tensor *K, const eff_tensor *V, const eff_tensor *E,
                                             const eff_tensor *Fm, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_linformer_forward";
    eff__fa F;
    int64_t kp;
    float *Kp;
    eff_tensor Kt, Vt;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__TRY(eff__linf_setup(ctx, fn, &F, O, lse, Q, K, V, E, Fm, opts, &kp));
    Kp = (float *)eff_ctx_alloc(ctx, (size_t)(F.B * F.Hkv * kp * (F.d + F.dv) + 1) * sizeof(float));
    if (!Kp) return EFF_ERR_OOM;
    s = eff__linf_project(ctx, &F, E, Fm, kp, Kp, Kp + F.B * F.Hkv * kp * F.d);
    Kt = eff_tensor_4d(Kp, EFF_F32, F.B, F.Hkv, kp, F.d);
    Vt = eff_tensor_4d(Kp + F.B * F.Hkv * kp * F.d, EFF_F32, F.B, F.Hkv, kp, F.dv);
    if (s == EFF_OK) s = eff_attn_flash_forward(ctx, O, lse, Q, &Kt, &Vt, opts);
    eff_ctx_free(ctx, Kp);
    return s;
}

EFFDEF eff_status eff_attn_linformer_backward(eff_ctx *ctx, eff_tensor *dQ, eff_tensor *dK, eff_tensor *dV,
                                              eff_tensor *dE, eff_tensor *dF, const eff_tensor *dO,
                                              const eff_tensor *Q, const eff_tensor *K, const eff_tensor *V,
                                              const eff_tensor *E, const eff_tensor *Fm, const eff_tensor *O,
                                              const eff_tensor *lse, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_linformer_backward";
    eff__fa F;
    int64_t kp, b, h, nk, nv;
    float *buf;
    eff_tensor Kt, Vt, dKt, dVt;
    eff_status s;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O && lse, EFF_ERR_INVALID_ARG, "%s: pass O and lse from the forward pass", fn);
    EFF__TRY(eff__linf_setup(ctx, fn, &F, O, lse, Q, K, V, E, Fm, opts, &kp));
    EFF__CHECK(ctx, dQ && dK && dV && dE && dF, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn,
               !dQ ? "dQ" : !dK ? "dK" : !dV ? "dV" : !dE ? "dE" : "dF");
    EFF__TRY(eff__attn_check(ctx, fn, dK, "dK", EFF__ATTN_DT_F32, 4, F.B, F.Hkv, F.Tk, F.d));
    EFF__TRY(eff__attn_check(ctx, fn, dV, "dV", EFF__ATTN_DT_F32, 4, F.B, F.Hkv, F.Tk, F.dv));
    EFF__TRY(eff__attn_check(ctx, fn, dE, "dE", EFF__ATTN_DT_F32, 2, kp, F.Tk, -1, -1));
    EFF__TRY(eff__attn_check(ctx, fn, dF, "dF", EFF__ATTN_DT_F32, 2, kp, F.Tk, -1, -1));
    EFF__CHECK(ctx, dK->nb[2] % 4 == 0 && dV->nb[2] % 4 == 0 && dE->nb[0] % 4 == 0 && dF->nb[0] % 4 == 0, EFF_ERR_SHAPE,
               "%s: row strides must be multiples of 4 bytes", fn);
    nk = F.B * F.Hkv * kp * F.d; nv = F.B * F.Hkv * kp * F.dv;
    buf = (float *)eff_ctx_alloc(ctx, (size_t)(2 * (nk + nv) + 1) * sizeof(float));
    if (!buf) return EFF_ERR_OOM;
    s = eff__linf_project(ctx, &F, E, Fm, kp, buf, buf + nk);
    Kt = eff_tensor_4d(buf, EFF_F32, F.B, F.Hkv, kp, F.d);
    Vt = eff_tensor_4d(buf + nk, EFF_F32, F.B, F.Hkv, kp, F.dv);
    dKt = eff_tensor_4d(buf + nk + nv, EFF_F32, F.B, F.Hkv, kp, F.d);
    dVt = eff_tensor_4d(buf + 2 * nk + nv, EFF_F32, F.B, F.Hkv, kp, F.dv);
    if (s == EFF_OK) s = eff_attn_flash_backward(ctx, dQ, &dKt, &dVt, dO, Q, &Kt, &Vt, O, lse, opts);
    /* dK = E^T dK', dE += dK' K^T (and the same for V, F) */
    for (b = 0; b < F.B && s == EFF_OK; b++)
        for (h = 0; h < F.Hkv && s == EFF_OK; h++) {
            const float *gk = (const float *)dKt.data + (b * F.Hkv + h) * kp * F.d, *gv = (const float *)dVt.data + (b * F.Hkv + h) * kp * F.dv;
            const float *k = (const float *)eff__av_row(&F.k, b, h, 0), *v = (const float *)eff__av_row(&F.v, b, h, 0);
            float *dk = (float *)((char *)dK->data + b * dK->nb[0] + h * dK->nb[1]);
            float *dv = (float *)((char *)dV->data + b * dV->nb[0] + h * dV->nb[1]);
            s = eff_sgemm(ctx, 1, 0, F.Tk, F.d, kp, 1.0f, (const float *)E->data, E->nb[0] / 4, gk, F.d, 0.0f, dk, dK->nb[2] / 4);
            if (s == EFF_OK) s = eff_sgemm(ctx, 1, 0, F.Tk, F.dv, kp, 1.0f, (const float *)Fm->data, Fm->nb[0] / 4, gv, F.dv, 0.0f, dv, dV->nb[2] / 4);
            if (s == EFF_OK) s = eff_sgemm(ctx, 0, 1, kp, F.Tk, F.d, 1.0f, gk, F.d, k, F.k.st / 4, 1.0f, (float *)dE->data, dE->nb[0] / 4);
            if (s == EFF_OK) s = eff_sgemm(ctx, 0, 1, kp, F.Tk, F.dv, 1.0f, gv, F.dv, v, F.v.st / 4, 1.0f, (float *)dF->data, dF->nb[0] / 4);
        }
    eff_ctx_free(ctx, buf);
    return s;
}

/* ---------------------------------------------------------------------------
   Reformer LSH attention
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_attn_lsh_rotations(eff_ctx *ctx, eff_tensor *R, uint64_t seed) {
    int64_t n, i;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__TRY(eff__attn_check(ctx, "eff_attn_lsh_rotations", R, "R", EFF__ATTN_DT_F32, 3, -1, -1, -1, -1));
    n = eff_tensor_nelements(R);
    for (i = 0; i < n; i++) {   /* Box-Muller on two counter-based uniforms */
        double u1 = ((double)(eff_hash_u64(seed, 2 * (uint64_t)i) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
        double u2 = (double)(eff_hash_u64(seed, 2 * (uint64_t)i + 1) >> 11) * (1.0 / 9007199254740992.0);
        int64_t c = i % R->ne[2], k = (i / R->ne[2]) % R->ne[1], r = i / (R->ne[2] * R->ne[1]);
        *(float *)((char *)R->data + r * R->nb[0] + k * R->nb[1] + c * R->nb[2]) = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    return EFF_OK;
}

EFFDEF eff_status eff_attn_lsh_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *QK,
                                       const eff_tensor *V, const eff_tensor *R, const eff_attn_lsh_opts *opts) {
    const char *fn = "eff_attn_lsh_forward";
    eff_attn_lsh_opts lo;
    eff__fa F;
    int nt;
    int64_t m, nr, nb2, per, g, groups;
    char *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    memset(&lo, 0, sizeof lo);
    if (opts) lo = *opts;
    if (lo.chunk == 0) lo.chunk = 64;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__CHECK(ctx, lo.chunk >= 1, EFF_ERR_INVALID_ARG, "%s: opts->chunk=%lld must be >= 1", fn, (long long)lo.chunk);
    EFF__TRY(eff__fa_setup(ctx, fn, &F, O, lse, QK, QK, V, NULL, EFF__ATTN_DT_F32, EFF__ATTN_REF_MAX_D));
    EFF__TRY(eff__attn_check(ctx, fn, R, "R", EFF__ATTN_DT_F32, 3, -1, F.d, -1, -1));
    nr = R->ne[0]; nb2 = R->ne[2];
    EFF__CHECK(ctx, nr >= 1 && nb2 >= 1, EFF_ERR_SHAPE, "%s: R needs >= 1 round and >= 1 rotation column (n_buckets = 2 x columns)", fn);
    EFF__CHECK(ctx, lo.scale == lo.scale, EFF_ERR_INVALID_ARG, "%s: opts->scale is NaN", fn);
    if (lo.scale == 0.0) lo.scale = 1.0 / sqrt((double)F.d);
    m = lo.chunk;
    nt = eff_ctx_n_threads(ctx);
    groups = F.B * F.Hq;
    /* per thread: normalized keys [T*d], projections [nb2], scores [2m], o [dv], accO [T*dv], accL [T] (floats);
       bucket, order [T] and counts [2*nb2+1] (int64) */
    per = (F.Tq * F.d + nb2 + 2 * m + F.dv + F.Tq * F.dv + F.Tq + 16) * 4 + (2 * F.Tq + 2 * nb2 + 2) * 8 + 256;
    ws = (char *)eff_ctx_alloc(ctx, (size_t)(per * nt));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && groups > 1))
    for (g = 0; g < groups; g++) {
        char *base = ws + (int64_t)eff__tid() * per;
        int64_t *bucket = (int64_t *)base, *order = bucket + F.Tq, *cnt = order + F.Tq;
        float *kn = (float *)(cnt + 2 * nb2 + 2), *proj = kn + F.Tq * F.d, *sc = proj + nb2, *ot = sc + 2 * m;
        float *accO = ot + F.dv, *accL = accO + F.Tq * F.dv;
        const int64_t b = g / F.Hq, h = g % F.Hq, T = F.Tq, nch = eff__attn_ceil(T, m);
        int64_t t, r, c, k, e;
        for (t = 0; t < T; t++) {   /* keys are the unit-norm shared vectors */
            const float *x = (const float *)eff__av_row(&F.q, b, h, t);
            double nn = 0.0;
            for (k = 0; k < F.d; k++) nn += (double)x[k] * x[k];
            nn = nn > 0.0 ? 1.0 / sqrt(nn) : 0.0;
            for (k = 0; k < F.d; k++) kn[t * F.d + k] = (float)(x[k] * nn);
            accL[t] = -INFINITY;
            for (e = 0; e < F.dv; e++) accO[t * F.dv + e] = 0.0f;
        }
        for (r = 0; r < nr; r++) {
            /* hash: argmax over [x R; -x R] (first maximum wins) */
            for (t = 0; t < T; t++) {
                const float *x = (const float *)eff__av_row(&F.q, b, h, t);
                float best = -INFINITY;
                int64_t arg = 0;
                for (c = 0; c < nb2; c++) proj[c] = 0.0f;
                for (k = 0; k < F.d; k++) {
                    const float *Rr = (const float *)((const char *)R->data + r * R->nb[0] + k * R->nb[1]);
                    for (c = 0; c < nb2; c++) proj[c] += x[k] * *(const float *)((const char *)Rr + c * R->nb[2]);
                }
                for (c = 0; c < nb2; c++) if (proj[c] > best) { best = proj[c]; arg = c; }
                for (c = 0; c < nb2; c++) if (-proj[c] > best) { best = -proj[c]; arg = nb2 + c; }
                bucket[t] = arg;
            }
            /* stable counting sort: order by (bucket, position) */
            for (c = 0; c <= 2 * nb2; c++) cnt[c] = 0;
            for (t = 0; t < T; t++) cnt[bucket[t] + 1]++;
            for (c = 0; c < 2 * nb2; c++) cnt[c + 1] += cnt[c];
            for (t = 0; t < T; t++) order[cnt[bucket[t]]++] = t;
            /* each query attends to its chunk and the previous one */
            for (c = 0; c < nch; c++) {
                const int64_t c0 = c * m, c1 = eff__attn_min(T, c0 + m), pc = nch > 1 ? (c + nch - 1) % nch : c;
                const int64_t p0 = pc * m, p1 = eff__attn_min(T, p0 + m);
                int64_t a;
                for (a = c0; a < c1; a++) {
                    const int64_t qi = order[a];
                    const float *x = (const float *)eff__av_row(&F.q, b, h, qi);
                    float mx = -INFINITY, sum = 0.0f, l;
                    int64_t nk = 0, s2, part;
                    for (part = 0; part < (pc != c ? 2 : 1); part++) {
                        int64_t s0 = part ? p0 : c0, s1 = part ? p1 : c1;
                        for (s2 = s0; s2 < s1; s2++) {
                            const int64_t kj = order[s2];
                            float sv = 0.0f;
                            if (lo.causal && kj > qi) sv = -INFINITY;
                            else if (kj == qi) sv = -1e5f;
                            else sv = (float)lo.scale * eff__lin_dot(F.d, x, kn + kj * F.d);
                            sc[nk++] = sv;
                            if (sv > mx) mx = sv;
                        }
                    }
                    for (e = 0; e < F.dv; e++) ot[e] = 0.0f;
                    nk = 0;
                    for (part = 0; part < (pc != c ? 2 : 1); part++) {
                        int64_t s0 = part ? p0 : c0, s1 = part ? p1 : c1;
                        for (s2 = s0; s2 < s1; s2++) {
                            const float p = sc[nk] == -INFINITY ? 0.0f : expf(sc[nk] - mx);
                            const float *vr = (const float *)eff__av_row(&F.v, b, h, order[s2]);
                            nk++;
                            if (p == 0.0f) continue;
                            sum += p;
                            eff__lin_axpy(F.dv, p, vr, ot);
                        }
                    }
                    for (e = 0; e < F.dv; e++) ot[e] /= sum;
                    l = mx + logf(sum);
                    eff__attn_merge_into(accO + qi * F.dv, accL + qi, ot, l, F.dv);
                }
            }
        }
        for (t = 0; t < T; t++) {
            eff__attn_store_row(accO + t * F.dv, eff__av_row(&F.o, b, h, t), F.o.dt, F.dv);
            if (F.lse.p) *(float *)eff__av_row(&F.lse, b, h, t) = accL[t];
        }
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   LongNet dilated attention: gather -> dense flash tile -> merge by lse
   --------------------------------------------------------------------------- */
/* Dense attention over n gathered rows (f32 [n][d], [n][dv]) on the calling thread, with the
   flash tile kernel; tmpl fixes d, dv, scale and the tiling the workspace w was laid out for. */
static void eff__fa_dense_local(const eff__fa *tmpl, const eff__fa_ws *w, const float *q, const float *k, const float *v,
                                int64_t n, int causal, float *o, float *lse) {
    eff__fa F = *tmpl;
    int64_t qt;
    F.B = 1; F.Hq = F.Hkv = F.G = 1; F.Tq = F.Tk = n; F.causal = causal; F.off = 0;
    F.q.p = (char *)q; F.q.dt = EFF_F32; F.q.sb = F.q.sh = 0; F.q.st = F.d * 4;
    F.k.p = (char *)k; F.k.dt = EFF_F32; F.k.sb = F.k.sh = 0; F.k.st = F.d * 4;
    F.v.p = (char *)v; F.v.dt = EFF_F32; F.v.sb = F.v.sh = 0; F.v.st = F.dv * 4;
    F.o.p = (char *)o; F.o.dt = EFF_F32; F.o.sb = F.o.sh = 0; F.o.st = F.dv * 4;
    F.lse.p = (char *)lse; F.lse.dt = EFF_F32; F.lse.sb = F.lse.sh = 0; F.lse.st = 4;
    F.nqt = eff__attn_ceil(n, F.bq); F.nkt = eff__attn_ceil(n, F.bk);
    for (qt = 0; qt < F.nqt; qt++) {
        int64_t i0 = qt * F.bq, ni = eff__attn_min(F.bq, n - i0);
        int64_t ntl = eff__fa_key_tiles(&F, 0, 0, i0, ni, w->tl, w->tk);
        eff__fa_fwd_tile(&F, w, 0, 0, 1, i0, ni, w->tl, w->tk, ntl, NULL, NULL, 0);
    }
}

EFFDEF eff_status eff_attn_longnet_forward(eff_ctx *ctx, eff_tensor *O, eff_tensor *lse, const eff_tensor *Q,
                                           const eff_tensor *K, const eff_tensor *V, const int64_t *seg_len,
                                           const int64_t *dilation, int64_t n_pairs, const eff_attn_opts *opts) {
    const char *fn = "eff_attn_longnet_forward";
    eff__fa F;
    int nt;
    int64_t a, nmax = 1, per_fa, per, g, groups;
    char *ws;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    EFF__CHECK(ctx, O != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'O' is NULL", fn);
    EFF__CHECK(ctx, !opts || (!opts->window && !opts->bias && !opts->mask && !opts->block_mask && !opts->has_causal_offset),
               EFF_ERR_UNSUPPORTED, "%s: only opts scale and causal are supported", fn);
    EFF__TRY(eff__fa_setup(ctx, fn, &F, O, lse, Q, K, V, opts, EFF__ATTN_DT_FLOATS, EFF__ATTN_MAX_D));
    EFF__CHECK(ctx, F.Tq == F.Tk, EFF_ERR_SHAPE, "%s: needs Tq == Tk (got %lld, %lld)", fn, (long long)F.Tq, (long long)F.Tk);
    EFF__CHECK(ctx, n_pairs >= 1 && seg_len && dilation, EFF_ERR_INVALID_ARG, "%s: need n_pairs >= 1, seg_len and dilation", fn);
    for (a = 0; a < n_pairs; a++) {
        EFF__CHECK(ctx, seg_len[a] >= 1 && dilation[a] >= 1, EFF_ERR_INVALID_ARG, "%s: seg_len[%lld]=%lld and dilation[%lld]=%lld must be >= 1",
                   fn, (long long)a, (long long)seg_len[a], (long long)a, (long long)dilation[a]);
        nmax = eff__attn_max(nmax, eff__attn_ceil(eff__attn_min(seg_len[a], F.Tq), dilation[a]));
    }
    F.dp = eff__attn_roundv(F.d); F.dvp = eff__attn_roundv(F.dv);
    F.bq = 64; F.bk = 64; F.bqp = eff__attn_roundv(F.bq); F.hpt = 1;
    F.nqt = eff__attn_ceil(nmax, F.bq); F.nkt = eff__attn_ceil(nmax, F.bk);
    F.bias.p = F.mask.p = NULL; F.elem = 0; F.window = 0;
    nt = eff_ctx_n_threads(ctx);
    groups = F.B * F.Hq;
    per_fa = eff__fa_ws_layout(&F, 0, 0, NULL, NULL);
    /* + gathered q, k [nmax*d], v, o [nmax*dv], l [nmax], accO [T*dv], accL [T] */
    per = per_fa + (2 * nmax * F.d + 2 * nmax * F.dv + nmax + F.Tq * F.dv + F.Tq + 32) * 4;
    ws = (char *)eff_ctx_alloc(ctx, (size_t)(per * nt));
    if (!ws) return EFF_ERR_OOM;
    EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1 && groups > 1))
    for (g = 0; g < groups; g++) {
        char *base = ws + (int64_t)eff__tid() * per;
        eff__fa_ws w;
        float *gq = (float *)(base + per_fa), *gk = gq + nmax * F.d, *gv = gk + nmax * F.d, *go = gv + nmax * F.dv;
        float *gl = go + nmax * F.dv, *accO = gl + nmax, *accL = accO + F.Tq * F.dv;
        const int64_t b = g / F.Hq, h = g % F.Hq, hk = h / F.G, T = F.Tq;
        int64_t t, p, s0;
        eff__fa_ws_layout(&F, 0, 0, base, &w);
        for (t = 0; t < T; t++) accL[t] = -INFINITY;
        memset(accO, 0, (size_t)(T * F.dv) * sizeof(float));
        for (p = 0; p < n_pairs; p++) {
            const int64_t wl = seg_len[p], r = dilation[p], off = (h * r / F.Hq) % r;
            for (s0 = 0; s0 < T; s0 += wl) {
                const int64_t s1 = eff__attn_min(T, s0 + wl);
                int64_t n = 0, pos, i;
                for (pos = s0 + off; pos < s1; pos += r, n++) {
                    eff__attn_load_row(eff__av_row(&F.q, b, h, pos), F.q.dt, gq + n * F.d, F.d);
                    eff__attn_load_row(eff__av_row(&F.k, b, hk, pos), F.k.dt, gk + n * F.d, F.d);
                    eff__attn_load_row(eff__av_row(&F.v, b, hk, pos), F.v.dt, gv + n * F.dv, F.dv);
                }
                if (n == 0) continue;
                eff__fa_dense_local(&F, &w, gq, gk, gv, n, F.causal, go, gl);
                for (i = 0, pos = s0 + off; i < n; i++, pos += r)
                    eff__attn_merge_into(accO + pos * F.dv, accL + pos, go + i * F.dv, gl[i], F.dv);
            }
        }
        for (t = 0; t < T; t++) {
            eff__attn_store_row(accO + t * F.dv, eff__av_row(&F.o, b, h, t), F.o.dt, F.dv);
            if (F.lse.p) *(float *)eff__av_row(&F.lse, b, h, t) = accL[t];
        }
    }
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

/*@@IMPL@@*/






#ifdef __cplusplus
}
#endif
#endif /* EFF_ATTN_IMPLEMENTATION */
