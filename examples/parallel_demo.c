/* parallel_demo.c - one small model trained on 4 local ranks (threads of this process,
   eff_parallel.h's local backend), with what each rank holds printed next to plain DP.

   The model: a byte-level MLP language model (Bengio et al. 2003): the embeddings of the
   previous 4 bytes, concatenated, go through 4 residual GELU MLP blocks and a vocabulary
   head with a cross-entropy loss. It is written once with the tensor-parallel primitives
   (vocab-parallel embedding, Megatron MLP, column-parallel head, vocab-parallel
   cross-entropy); on a tensor-parallel group of 1 rank they compute the plain model.

   1. Data parallel on 4 ranks: each rank runs a quarter of every batch; an eff_zero
      object holds the parameters, gradients and AdamW state at ZeRO stage 0 (plain DP),
      1, 2 and 3. Printed per rank: bytes of each, bytes held, peak, and the loss next to
      a 1-rank run (the same batches, so the loss should agree to rounding).
   2. 2x2 tensor x pipeline parallel on 4 ranks: stage 0 = embedding + blocks 1-2,
      stage 1 = blocks 3-4 + head, run by eff_pp_run with a 1F1B schedule over 4
      micro-batches; each stage is split over 2 tensor-parallel ranks. Per-rank bytes
      next to plain DP (every rank holds everything), and the loss next to 1 rank.

   "held" is what a rank's eff_ctx has in use between steps for the model state, "peak"
   its high-water mark during training (activations and communication buffers included):
   both are measured by the context's byte accounting. */
#define EFF_IMPLEMENTATION
#include "eff_model.h"
#include "eff_parallel.h"

#include "demo_common.h"

enum {
    VOCAB = 256, CTX = 4, EMB = 16, DIM = CTX * EMB, HID = 4 * DIM, NBLK = 4,
    NLAYER = NBLK + 2,          /* layer 0: embedding, 1..NBLK: MLP blocks, NBLK+1: head */
    HEAD = NLAYER - 1,
    SPLIT = 1 + NBLK / 2,       /* pipeline stage 1 starts at this layer */
    BATCH = 256, NMB = 4, MB_ROWS = BATCH / NMB, STEPS = 40, NRANK = 4
};
#define LR 3e-3f

#define T1(p, n) eff_tensor_1d((void *)(p), EFF_F32, (n))
#define T2(p, r, c) eff_tensor_2d((void *)(p), EFF_F32, (r), (c))
/* inside a rank function: on failure print where and why, then clean up */
#define TRY(expr) do { s = (expr); if (s != EFF_OK) { fprintf(stderr, "rank %d: error: %s: %s\n", r, #expr, eff_ctx_last_error(ctx)); goto done; } } while (0)

/* ---- data: windows of CTX bytes -> the next byte ------------------------------------- */
static char corpus[1 << 16];
static int64_t n_corpus;

typedef struct batch { int32_t ids[BATCH * CTX], tgt[BATCH]; } batch;

/* The same global batch on every rank for a step; each rank uses its rows. */
static void make_batch(int step, batch *b) {
    eff_rng g;
    int64_t i, k;
    eff_rng_seed(&g, 1000 + (uint64_t)step);
    for (i = 0; i < BATCH; i++) {
        int64_t off = (int64_t)(eff_rng_u64(&g) % (uint64_t)(n_corpus - CTX));
        for (k = 0; k < CTX; k++) b->ids[i * CTX + k] = (unsigned char)corpus[off + k];
        b->tgt[i] = (unsigned char)corpus[off + CTX];
    }
}

/* ---- parameters: one flat layer each; on t tensor-parallel ranks, this rank's shard --- */
static int64_t layer_count(int l, int t) {
    if (l == 0) return VOCAB / t * EMB;                       /* table rows [V/t, EMB] */
    if (l == HEAD) return VOCAB / t * DIM;                    /* head rows [V/t, DIM] */
    return 2 * (HID / t) * DIM + HID / t + DIM;               /* W1 [H/t, D], b1, W2 [D, H/t], b2 [D] */
}
static eff_tp_mlp block_view(float *w, int t) {
    int64_t h = HID / t;
    eff_tp_mlp m;
    memset(&m, 0, sizeof m);
    m.w1 = T2(w, h, DIM); m.b1 = T1(w + h * DIM, h);
    m.w2 = T2(w + h * DIM + h, DIM, h); m.b2 = T1(w + 2 * h * DIM + h, DIM);
    return m;
}
static int64_t n_params_total(void) {
    int64_t n = 0;
    int l;
    for (l = 0; l < NLAYER; l++) n += layer_count(l, 1);
    return n;
}
/* The full initial model, the same for every run. */
static void init_params(float *p) {
    eff_rng g;
    int l;
    eff_rng_seed(&g, 1234);
    for (l = 0; l < NLAYER; l++) {
        if (l == 0) eff_rng_fill_normal(&g, p, VOCAB * EMB, 0.0f, 1.0f);
        else if (l == HEAD) eff_rng_fill_normal(&g, p, VOCAB * DIM, 0.0f, 0.02f);   /* near-uniform first guess */
        else {
            eff_tp_mlp m = block_view(p, 1);
            eff_rng_fill_normal(&g, (float *)m.w1.data, HID * DIM, 0.0f, 0.125f);
            memset(m.b1.data, 0, sizeof(float) * HID);
            eff_rng_fill_normal(&g, (float *)m.w2.data, DIM * HID, 0.0f, 0.03f);
            memset(m.b2.data, 0, sizeof(float) * DIM);
        }
        p += layer_count(l, 1);
    }
}
/* This rank's shard of full layer l (eff_tp_shard_rows / _cols). */
static eff_status shard_layer(eff_comm *tp, int l, const float *full, float *mine) {
    int t = eff_comm_size(tp);
    eff_tensor src, dst;
    if (l == 0 || l == HEAD) {
        int64_t cols = l == 0 ? EMB : DIM;
        src = T2(full, VOCAB, cols); dst = T2(mine, VOCAB / t, cols);
        return eff_tp_shard_rows(tp, &dst, &src);
    } else {
        eff_tp_mlp f = block_view((float *)full, 1), m = block_view(mine, t);
        eff_tensor b1f = T2(f.b1.data, HID, 1), b1m = T2(m.b1.data, HID / t, 1);
        eff_status s = eff_tp_shard_rows(tp, &m.w1, &f.w1);             /* column-parallel */
        if (s == EFF_OK) s = eff_tp_shard_rows(tp, &b1m, &b1f);
        if (s == EFF_OK) s = eff_tp_shard_cols(tp, &m.w2, &f.w2);         /* row-parallel */
        memcpy(m.b2.data, f.b2.data, sizeof(float) * DIM);                 /* replicated */
        return s;
    }
}

/* ---- the model, one layer at a time (ZeRO gathers per layer, pipeline stages own a range) */
typedef struct acts {               /* one micro-batch's activations */
    float *x[NLAYER];               /* x[l]: input of layer l >= 1, [rows, DIM] */
    eff_tp_mlp_cache mlp[NLAYER];   /* blocks */
    float *logits;                  /* [rows, VOCAB/t] */
} acts;

static float *falloc(eff_ctx *ctx, int64_t n) { return (float *)eff_ctx_alloc(ctx, sizeof(float) * (size_t)n); }
static void acts_free(eff_comm *tp, acts *A) {
    int l;
    for (l = 0; l < NLAYER; l++) { eff_ctx_free(eff_comm_ctx(tp), A->x[l]); eff_tp_mlp_cache_free(tp, &A->mlp[l]); }
    eff_ctx_free(eff_comm_ctx(tp), A->logits);
    memset(A, 0, sizeof *A);
}

/* Layer l forward on rows [row0, row0 + rows) of the batch; the head adds its mean loss. */
static eff_status layer_forward(eff_comm *tp, int l, float *w, const batch *b, int64_t row0, int64_t rows, acts *A, float *loss) {
    eff_ctx *ctx = eff_comm_ctx(tp);
    int t = eff_comm_size(tp);
    eff_tensor ids = eff_tensor_1d((void *)(b->ids + row0 * CTX), EFF_I32, rows * CTX);
    eff_tensor tgt = eff_tensor_1d((void *)(b->tgt + row0), EFF_I32, rows), X, Y, W, LG;
    eff_tp_mlp m;
    eff_status s;
    float l_mb = 0.0f;
    if (l == HEAD) {   /* logits_r = x W_r^T over this rank's vocabulary, vocab-parallel cross-entropy */
        if (!(A->logits = falloc(ctx, rows * (VOCAB / t)))) return EFF_ERR_OOM;
        X = T2(A->x[l], rows, DIM); W = T2(w, VOCAB / t, DIM); LG = T2(A->logits, rows, VOCAB / t);
        s = eff_tp_column_linear_forward(tp, &LG, &X, &W, NULL, 0);
        if (s == EFF_OK) s = eff_tp_vocab_cross_entropy_forward(tp, NULL, &l_mb, &LG, &tgt);
        *loss += l_mb;
        return s;
    }
    if (!(A->x[l + 1] = falloc(ctx, rows * DIM))) return EFF_ERR_OOM;
    if (l == 0) {      /* the CTX embeddings of a row, side by side: [rows * CTX, EMB] = [rows, DIM] */
        Y = T2(A->x[1], rows * CTX, EMB); W = T2(w, VOCAB / t, EMB);
        return eff_tp_vocab_embedding_forward(tp, &Y, &ids, &W, 0);
    }
    m = block_view(w, t);   /* x[l+1] = x[l] + mlp(x[l]) */
    X = T2(A->x[l], rows, DIM); Y = T2(A->x[l + 1], rows, DIM);
    s = eff_tp_mlp_forward(tp, &m, NULL, &Y, &X, &A->mlp[l]);
    return s == EFF_OK ? eff_residual_forward(ctx, &Y, &Y, &X) : s;
}

/* Layer l backward: dx [rows, DIM] holds dL/d(output) and leaves with dL/d(input); weight
   gradients are added into g; dloss scales the loss (the head). Frees the layer's activations. */
static eff_status layer_backward(eff_comm *tp, int l, float *w, float *g, const batch *b, int64_t row0, int64_t rows, acts *A, float *dx,
                                 float dloss) {
    eff_ctx *ctx = eff_comm_ctx(tp);
    int t = eff_comm_size(tp);
    eff_tensor ids = eff_tensor_1d((void *)(b->ids + row0 * CTX), EFF_I32, rows * CTX);
    eff_tensor tgt = eff_tensor_1d((void *)(b->tgt + row0), EFF_I32, rows), DX = T2(dx, rows, DIM), X, W, G, LG, DL, TMP;
    eff_tp_mlp m, gm;
    float *tmp;
    eff_status s;
    if (l == HEAD) {
        if (!(tmp = falloc(ctx, rows * (VOCAB / t)))) return EFF_ERR_OOM;
        X = T2(A->x[l], rows, DIM); W = T2(w, VOCAB / t, DIM); G = T2(g, VOCAB / t, DIM);
        LG = T2(A->logits, rows, VOCAB / t); DL = T2(tmp, rows, VOCAB / t);
        s = eff_tp_vocab_cross_entropy_backward(tp, &DL, &LG, &tgt, dloss);
        if (s == EFF_OK) s = eff_tp_column_linear_backward(tp, &DX, &G, NULL, &DL, &X, &W, 0);
        eff_ctx_free(ctx, A->logits); A->logits = NULL;
    } else if (l == 0) {
        eff_tensor DE = T2(dx, rows * CTX, EMB);
        G = T2(g, VOCAB / t, EMB);
        return eff_tp_vocab_embedding_backward(tp, &G, &DE, &ids, 0);
    } else {           /* dx[l] = dx[l+1] + mlp'(x[l])^T dx[l+1] */
        if (!(tmp = falloc(ctx, rows * DIM))) return EFF_ERR_OOM;
        m = block_view(w, t); gm = block_view(g, t);
        X = T2(A->x[l], rows, DIM); TMP = T2(tmp, rows, DIM);
        s = eff_tp_mlp_backward(tp, &m, NULL, &gm, &TMP, &DX, &X, &A->mlp[l]);
        if (s == EFF_OK) s = eff_residual_forward(ctx, &DX, &DX, &TMP);
        eff_tp_mlp_cache_free(tp, &A->mlp[l]);
    }
    eff_ctx_free(ctx, tmp);
    eff_ctx_free(ctx, A->x[l]); A->x[l] = NULL;
    return s;
}

/* ---- what the runs report ---------------------------------------------------------- */
typedef struct mem { double params, grads, optim, held, peak; } mem;
typedef struct job {
    int zero;                   /* data-parallel runs: the ZeRO stage */
    const float *init;          /* the full initial model */
    float loss[STEPS];          /* mean loss over the global batch, per step */
    mem m[NRANK];
    int64_t leaked[NRANK];      /* bytes a rank's context still had in use at the end, beyond its start */
    double seconds;
} job;

/* ---- 1. data parallel through eff_zero ------------------------------------------------- */
/* eff_zero has no public query of its buffer sizes, so the demo (which compiles the
   implementation) reads them from the object with the header's own layout rule: each
   buffer is the full padded vector or this rank's shard. The caller checks that they add
   up to the bytes the context measured. */
static void zero_bytes(const eff_zero *z, mem *m) {
    double full = (double)z->full_total, shard = (double)z->shard_total;
    m->params = (double)z->pes * (eff__zfull(z, EFF__Z_PARAMS) ? full : shard);
    m->grads = (double)z->pes * (eff__zfull(z, EFF__Z_GRADS) ? full : shard);
    m->optim = 2.0 * 4.0 * (eff__zfull(z, EFF__Z_M) ? full : shard);   /* AdamW m and v, f32 */
}

/* One step on this rank's rows: each layer gathered for forward and again for backward
   (stage 3 all-gathers it, earlier stages hold it), its gradient handed to ZeRO as soon
   as backward is done with it (stage 2-3 reduce-scatter it then), then the update. */
static eff_status dp_step(eff_zero *z, eff_comm *one, const batch *b, int64_t row0, int64_t rows, float *loss) {
    eff_ctx *ctx = eff_comm_ctx(one);
    acts A;
    void *w, *g;
    float *dx = falloc(ctx, rows * DIM);
    int l;
    eff_status s = dx ? EFF_OK : EFF_ERR_OOM;
    memset(&A, 0, sizeof A);
    *loss = 0.0f;
    for (l = 0; l < NLAYER && s == EFF_OK; l++) {
        s = eff_zero_gather_layer(z, l, &w);
        if (s == EFF_OK) s = layer_forward(one, l, (float *)w, b, row0, rows, &A, loss);
        if (s == EFF_OK) s = eff_zero_release_layer(z, l);
    }
    for (l = NLAYER - 1; l >= 0 && s == EFF_OK; l--) {
        s = eff_zero_gather_layer(z, l, &w);
        if (s == EFF_OK) s = eff_zero_grad_layer(z, l, &g);
        if (s == EFF_OK) s = layer_backward(one, l, (float *)w, (float *)g, b, row0, rows, &A, dx, 0.0f);   /* 0: mean over rows */
        if (s == EFF_OK) s = eff_zero_grad_done(z, l);
        if (s == EFF_OK) s = eff_zero_release_layer(z, l);
    }
    acts_free(one, &A);
    eff_ctx_free(ctx, dx);
    return s == EFF_OK ? eff_zero_step(z) : s;
}

static eff_status dp_rank(eff_comm *c, void *arg) {
    job *J = (job *)arg;
    eff_ctx *ctx = eff_comm_ctx(c);
    int r = eff_comm_rank(c), n = eff_comm_size(c), l, step;
    int64_t rows = BATCH / n, counts[NLAYER];
    size_t start = eff_ctx_bytes_in_use(ctx), base;
    eff_comm *one = NULL;       /* this rank alone: the model's tensor-parallel group of 1 */
    eff_zero *z = NULL;
    eff_zero_opts zo;
    batch b;
    float loss;
    eff_status s = EFF_OK;
    for (l = 0; l < NLAYER; l++) counts[l] = layer_count(l, 1);
    memset(&zo, 0, sizeof zo);
    zo.stage = J->zero; zo.n_layers = NLAYER; zo.layer_counts = counts;
    zo.adamw.lr = LR; zo.adamw.weight_decay = 0.01f;
    TRY(eff_comm_split(c, r, 0, &one));
    base = eff_ctx_bytes_in_use(ctx);
    eff_ctx_reset_peak(ctx);
    TRY(eff_zero_create(c, n_params_total(), &zo, &z));
    TRY(eff_zero_set_params(z, J->init));
    for (step = 0; step < STEPS; step++) {
        make_batch(step, &b);
        TRY(dp_step(z, one, &b, r * rows, rows, &loss));
        TRY(eff_comm_all_reduce(c, &loss, 1, EFF_F32, EFF_RED_AVG));   /* equal rows per rank: the batch mean */
        if (r == 0) J->loss[step] = loss;
    }
    zero_bytes(z, &J->m[r]);
    J->m[r].held = (double)(eff_ctx_bytes_in_use(ctx) - base);
    J->m[r].peak = (double)(eff_ctx_bytes_peak(ctx) - base);
done:
    eff_zero_destroy(z);
    eff_comm_destroy(one);
    J->leaked[r] = (int64_t)eff_ctx_bytes_in_use(ctx) - (int64_t)start;
    return s;
}

/* ---- 2. tensor x pipeline parallel ------------------------------------------------------ */
typedef struct stage {          /* one rank of the 2x2 grid */
    eff_comm *tp;
    int l0, l1;                 /* its layers [l0, l1) */
    float *w[NLAYER], *g[NLAYER];   /* its shard of each (into one flat buffer each) */
    const batch *b;
    acts A[NMB];
    float loss;                 /* summed over micro-batches (last stage) */
} stage;

static eff_status stage_forward(void *user, int mb, int chunk, const float *in, float *out) {
    stage *S = (stage *)user;
    eff_ctx *ctx = eff_comm_ctx(S->tp);
    acts *A = &S->A[mb];
    int l;
    eff_status s = EFF_OK;
    (void)chunk;
    if (in) {   /* the previous stage's activations: keep them for backward */
        if (!(A->x[S->l0] = falloc(ctx, MB_ROWS * DIM))) return EFF_ERR_OOM;
        memcpy(A->x[S->l0], in, sizeof(float) * MB_ROWS * DIM);
    }
    for (l = S->l0; l < S->l1 && s == EFF_OK; l++) s = layer_forward(S->tp, l, S->w[l], S->b, (int64_t)mb * MB_ROWS, MB_ROWS, A, &S->loss);
    if (s == EFF_OK && out) {
        memcpy(out, A->x[S->l1], sizeof(float) * MB_ROWS * DIM);
        eff_ctx_free(ctx, A->x[S->l1]); A->x[S->l1] = NULL;
    }
    return s;
}

static eff_status stage_backward(void *user, int mb, int chunk, const float *dout, float *din) {
    stage *S = (stage *)user;
    eff_ctx *ctx = eff_comm_ctx(S->tp);
    float *dx = falloc(ctx, MB_ROWS * DIM);
    int l;
    eff_status s = dx ? EFF_OK : EFF_ERR_OOM;
    (void)chunk;
    if (dx && dout) memcpy(dx, dout, sizeof(float) * MB_ROWS * DIM);
    for (l = S->l1 - 1; l >= S->l0 && s == EFF_OK; l--)   /* dloss: the mean over the whole batch */
        s = layer_backward(S->tp, l, S->w[l], S->g[l], S->b, (int64_t)mb * MB_ROWS, MB_ROWS, &S->A[mb], dx, 1.0f / BATCH);
    if (s == EFF_OK && din) memcpy(din, dx, sizeof(float) * MB_ROWS * DIM);
    eff_ctx_free(ctx, dx);
    return s;
}

static eff_status tpp_rank(eff_comm *c, void *arg) {
    job *J = (job *)arg;
    eff_ctx *ctx = eff_comm_ctx(c);
    int r = eff_comm_rank(c), pp_stage = r / 2, tp_rank = r % 2, l, k, step;
    size_t start = eff_ctx_bytes_in_use(ctx), base, before;
    eff_comm *pp = NULL;
    eff_pp_schedule sch;
    eff_pp_stage_fns fns;
    eff_adamw_opts adam;
    stage S;
    batch b;
    float *w = NULL, *g = NULL, *mom = NULL, *var = NULL;
    const float *full = J->init;
    int64_t np = 0, off = 0;
    eff_status s = EFF_OK;
    memset(&S, 0, sizeof S);
    memset(&sch, 0, sizeof sch);
    S.l0 = pp_stage ? SPLIT : 0; S.l1 = pp_stage ? NLAYER : SPLIT; S.b = &b;
    TRY(eff_comm_split(c, pp_stage, tp_rank, &S.tp));   /* the 2 ranks of a stage */
    TRY(eff_comm_split(c, tp_rank, pp_stage, &pp));     /* one tensor-parallel slice across the stages */
    TRY(eff_pp_schedule_create(ctx, EFF_PP_1F1B, 2, NMB, 1, &sch));
    for (l = S.l0; l < S.l1; l++) np += layer_count(l, 2);
    /* the model state this rank holds, each measured as it is allocated */
    base = eff_ctx_bytes_in_use(ctx);
    eff_ctx_reset_peak(ctx);
    before = eff_ctx_bytes_in_use(ctx);
    if (!(w = falloc(ctx, np))) TRY(EFF_ERR_OOM);
    J->m[r].params = (double)(eff_ctx_bytes_in_use(ctx) - before);
    before = eff_ctx_bytes_in_use(ctx);
    if (!(g = (float *)eff_ctx_calloc(ctx, sizeof(float) * (size_t)np))) TRY(EFF_ERR_OOM);
    J->m[r].grads = (double)(eff_ctx_bytes_in_use(ctx) - before);
    before = eff_ctx_bytes_in_use(ctx);
    if (!(mom = (float *)eff_ctx_calloc(ctx, sizeof(float) * (size_t)np)) || !(var = (float *)eff_ctx_calloc(ctx, sizeof(float) * (size_t)np)))
        TRY(EFF_ERR_OOM);
    J->m[r].optim = (double)(eff_ctx_bytes_in_use(ctx) - before);
    for (l = 0; l < S.l0; l++) full += layer_count(l, 1);
    for (l = S.l0; l < S.l1; l++) {
        S.w[l] = w + off; S.g[l] = g + off;
        TRY(shard_layer(S.tp, l, full, S.w[l]));
        off += layer_count(l, 2); full += layer_count(l, 1);
    }
    memset(&fns, 0, sizeof fns);
    fns.forward = stage_forward; fns.backward = stage_backward; fns.user = &S; fns.act_count = MB_ROWS * DIM;
    memset(&adam, 0, sizeof adam);
    adam.lr = LR; adam.weight_decay = 0.01f;
    for (step = 0; step < STEPS; step++) {
        make_batch(step, &b);
        S.loss = 0.0f;
        TRY(eff_pp_run(pp, &sch, &fns));
        adam.step = step + 1;   /* every parameter lives on exactly one rank of a stage (b2 on both, with equal gradients) */
        TRY(eff_adamw_step(ctx, &adam, np, w, EFF_F32, NULL, g, EFF_F32, mom, var));
        memset(g, 0, sizeof(float) * (size_t)np);
        if (S.l1 == NLAYER && tp_rank == 0) J->loss[step] = S.loss / NMB;
    }
    J->m[r].held = (double)(eff_ctx_bytes_in_use(ctx) - base);
    J->m[r].peak = (double)(eff_ctx_bytes_peak(ctx) - base);
done:
    for (k = 0; k < NMB; k++) if (S.tp) acts_free(S.tp, &S.A[k]);
    eff_ctx_free(ctx, w); eff_ctx_free(ctx, g); eff_ctx_free(ctx, mom); eff_ctx_free(ctx, var);
    eff_pp_schedule_free(ctx, &sch);
    eff_comm_destroy(pp);
    eff_comm_destroy(S.tp);
    J->leaked[r] = (int64_t)eff_ctx_bytes_in_use(ctx) - (int64_t)start;
    return s;
}

/* ---- main: run, check, print ------------------------------------------------------------ */
static int run(int n, eff_comm_rank_fn fn, job *J, const char *what) {
    double t0 = demo_now();
    eff_status s = eff_comm_local_run(n, fn, J);
    int r;
    J->seconds = demo_now() - t0;
    if (s != EFF_OK) { fprintf(stderr, "error: %s failed: %s\n", what, eff_status_str(s)); return 1; }
    for (r = 0; r < n; r++)
        if (J->leaked[r] != 0) { fprintf(stderr, "error: %s: rank %d still has %lld bytes allocated\n", what, r, (long long)J->leaked[r]); return 1; }
    return 0;
}
static double max_diff(const job *a, const job *b) {
    double d = 0.0;
    int i;
    for (i = 0; i < STEPS; i++) d = fabs((double)a->loss[i] - (double)b->loss[i]) > d ? fabs((double)a->loss[i] - (double)b->loss[i]) : d;
    return d;
}
static void print_mem(const char *label, const mem *m) {
    printf("  %-26s %8.1f %8.1f %8.1f %9.1f %9.1f", label, m->params / 1024, m->grads / 1024, m->optim / 1024, m->held / 1024, m->peak / 1024);
}
/* the breakdown read from eff_zero must be what the context measured (plus its small index arrays) */
static int check_zero_bytes(const job *J, int n) {
    int r;
    for (r = 0; r < n; r++) {
        double sum = J->m[r].params + J->m[r].grads + J->m[r].optim;
        if (J->m[r].held < sum || J->m[r].held > sum + 4096) {
            fprintf(stderr, "error: ZeRO-%d rank %d: buffers %.0f bytes, context holds %.0f\n", J->zero, r, sum, J->m[r].held);
            return 1;
        }
    }
    return 0;
}

int main(void) {
    static job one, dp[4], tpp;
    static float init[1 << 18];
    static const char *names[4] = {"plain DP (ZeRO-0)", "ZeRO-1", "ZeRO-2", "ZeRO-3"};
    int64_t np = n_params_total();
    int k, r;
    char label[64];
    double total = demo_now(), worst;
    if (np > (int64_t)(sizeof init / sizeof init[0])) { fprintf(stderr, "error: model too large\n"); return 1; }
    n_corpus = demo_corpus(corpus, sizeof corpus, 7, 0);
    init_params(init);
    printf("parallel_demo: a byte-level MLP language model (%d-byte context, %d residual GELU MLP blocks of %d -> %d -> %d,\n"
           "vocab %d; %lld parameters, f32) trained %d AdamW steps on batches of %d windows of generated text, on\n"
           "%d local ranks (threads, eff_parallel.h's local backend). Bytes in KiB per rank.\n\n",
           CTX, NBLK, DIM, HID, DIM, VOCAB, (long long)np, STEPS, BATCH, NRANK);

    /* 1. data parallel */
    one.zero = 0; one.init = init;
    if (run(1, dp_rank, &one, "1-rank run")) return 1;
    for (k = 0; k < 4; k++) {
        dp[k].zero = k; dp[k].init = init;
        snprintf(label, sizeof label, "%s on %d ranks", names[k], NRANK);
        if (run(NRANK, dp_rank, &dp[k], label) || check_zero_bytes(&dp[k], NRANK)) return 1;
    }
    if (check_zero_bytes(&one, 1)) return 1;
    printf("1. data parallel: %d rows of each batch per rank; eff_zero holds parameters, gradients, AdamW m and v\n", BATCH / NRANK);
    printf("  %-26s %8s %8s %8s %9s %9s %11s %10s %6s\n", "per rank (all ranks alike)", "params", "grads", "AdamW", "held", "peak", "final loss", "vs 1 rank", "time");
    print_mem("1 rank (reference)", &one.m[0]);
    printf(" %11.6f %10s %5.1fs\n", (double)one.loss[STEPS - 1], "", one.seconds);
    for (k = 0; k < 4; k++) {
        for (r = 1; r < NRANK; r++)
            if (memcmp(&dp[k].m[r], &dp[k].m[0], sizeof(mem)) != 0) break;
        print_mem(names[k], &dp[k].m[0]);
        printf(" %11.6f %10.1e %5.1fs%s\n", (double)dp[k].loss[STEPS - 1], fabs((double)dp[k].loss[STEPS - 1] - one.loss[STEPS - 1]), dp[k].seconds,
               r < NRANK ? "  (rank 0; ranks differ)" : "");
    }
    for (k = 0, worst = 0.0; k < 4; k++) worst = max_diff(&dp[k], &one) > worst ? max_diff(&dp[k], &one) : worst;
    printf("  loss %.4f at step 1 -> %.4f at step %d; largest difference from 1 rank over all steps and stages: %.1e\n\n",
           (double)one.loss[0], (double)one.loss[STEPS - 1], STEPS, worst);

    /* 2. tensor x pipeline parallel */
    tpp.init = init;
    if (run(NRANK, tpp_rank, &tpp, "2x2 tensor x pipeline run")) return 1;
    printf("2. 2x2 tensor x pipeline parallel: stage 0 = embedding + blocks 1-%d, stage 1 = blocks %d-%d + head; eff_pp_run,\n"
           "   1F1B over %d micro-batches of %d rows; each stage split over 2 tensor-parallel ranks\n", SPLIT - 1, SPLIT, NBLK, NMB, MB_ROWS);
    printf("  %-26s %8s %8s %8s %9s %9s\n", "per rank", "params", "grads", "AdamW", "held", "peak");
    for (r = 0; r < NRANK; r++) {
        snprintf(label, sizeof label, "rank %d (stage %d, tp %d)", r, r / 2, r % 2);
        print_mem(label, &tpp.m[r]);
        printf("\n");
    }
    print_mem("plain DP: every rank", &dp[0].m[0]);
    printf("\n  final loss %.6f, 1 rank %.6f: difference %.1e (largest over all %d steps %.1e); %.1fs\n\n", (double)tpp.loss[STEPS - 1],
           (double)one.loss[STEPS - 1], fabs((double)tpp.loss[STEPS - 1] - one.loss[STEPS - 1]), STEPS, max_diff(&tpp, &one), tpp.seconds);
    printf("held: the model state a rank's eff_ctx has in use between steps; peak: its high-water mark while training\n"
           "(activations and communication buffers included). Every run freed all it allocated (0 bytes left). %.1fs in all.\n",
           demo_now() - total);
    return 0;
}
