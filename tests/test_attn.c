/* test_attn.c - tests for eff_attn.h: every kernel against the float64 reference, the
   reference against finite differences, masks, merges, caches and the approximate
   attentions against direct implementations written here. */
#define EFF_IMPLEMENTATION
#include "eff_attn.h"
#include "eff_test.h"

static int g_quick;
static eff_ctx *g_ctx;

/* ---- small helpers -------------------------------------------------------- */
static float *fbuf(int64_t n, double scale) {
    float *p = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    eff_test_fill(p, n, scale);
    return p;
}
static double *dbuf(int64_t n) { return (double *)calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }
static double *to_d(const float *x, int64_t n) {
    double *r = dbuf(n);
    int64_t i;
    for (i = 0; i < n; i++) r[i] = x[i];
    return r;
}
static eff_tensor t4(void *p, int dt, int64_t a, int64_t b, int64_t c, int64_t d) { return eff_tensor_4d(p, dt, a, b, c, d); }
static eff_tensor t3(void *p, int dt, int64_t a, int64_t b, int64_t c) { return eff_tensor_3d(p, dt, a, b, c); }

/* nmse, or the largest |a| when the reference is exactly zero (e.g. dQ with one key) */
static double err_vs(const float *a, const double *ref, int64_t n) {
    double den = 0, mx = 0;
    int64_t i;
    for (i = 0; i < n; i++) den += ref[i] * ref[i];
    if (den > 0) return eff_test_nmse(a, ref, n);
    if (!eff_test_all_finite_f(a, n)) return INFINITY;
    for (i = 0; i < n; i++) if (fabs(a[i]) > mx) mx = fabs(a[i]);
    return mx < 1e-6 ? 0.0 : mx;
}
#define CHECK_ERR(what, a, ref, n, tol) \
    do { double e_ = err_vs((a), (ref), (n)); EFF_CHECK(e_ <= (tol), "%s: nmse %.3g <= %.1g", (what), e_, (double)(tol)); } while (0)

/* lse arrays: -inf at the same places, nmse over the finite entries */
static int lse_match(const float *a, const double *ref, int64_t n, double tol, double *err) {
    double num = 0, den = 0;
    int64_t i;
    *err = INFINITY;
    for (i = 0; i < n; i++) {
        if (ref[i] == -INFINITY) { if (a[i] != -INFINITY) return 0; continue; }
        if (!(a[i] == a[i]) || a[i] == INFINITY || a[i] == -INFINITY) return 0;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    *err = den > 0 ? num / den : num;
    return *err <= tol;
}

/* A test problem: f32 Q/K/V plus f64 copies for the reference. */
typedef struct prob {
    int64_t B, Hq, Hkv, Tq, Tk, d, dv;
    float *q, *k, *v, *dout;
    eff_attn_opts op;
    float *bias; uint8_t *mask;
} prob;

static void prob_init(prob *p, int64_t B, int64_t Hq, int64_t Hkv, int64_t Tq, int64_t Tk, int64_t d, int64_t dv) {
    memset(p, 0, sizeof *p);
    p->B = B; p->Hq = Hq; p->Hkv = Hkv; p->Tq = Tq; p->Tk = Tk; p->d = d; p->dv = dv;
    p->q = fbuf(B * Hq * Tq * d, 1.0);
    p->k = fbuf(B * Hkv * Tk * d, 1.0);
    p->v = fbuf(B * Hkv * Tk * dv, 1.0);
    p->dout = fbuf(B * Hq * Tq * dv, 1.0);
}
static void prob_free(prob *p) {
    free(p->q); free(p->k); free(p->v); free(p->dout); free(p->bias); free(p->mask);
    memset(p, 0, sizeof *p);
}

/* Reference outputs in float64 for prob p (O, lse, and if grads != NULL dQ dK dV). */
static eff_status ref_run(prob *p, double *O, double *L, double *dq, double *dk, double *dv) {
    int64_t nq = p->B * p->Hq * p->Tq * p->d, nk = p->B * p->Hkv * p->Tk * p->d, nv = p->B * p->Hkv * p->Tk * p->dv;
    int64_t no = p->B * p->Hq * p->Tq * p->dv;
    double *q = to_d(p->q, nq), *k = to_d(p->k, nk), *v = to_d(p->v, nv), *g = to_d(p->dout, no);
    eff_tensor Q = t4(q, EFF_F64, p->B, p->Hq, p->Tq, p->d), K = t4(k, EFF_F64, p->B, p->Hkv, p->Tk, p->d);
    eff_tensor V = t4(v, EFF_F64, p->B, p->Hkv, p->Tk, p->dv), Ot = t4(O, EFF_F64, p->B, p->Hq, p->Tq, p->dv);
    eff_tensor Lt = t3(L, EFF_F64, p->B, p->Hq, p->Tq), G = t4(g, EFF_F64, p->B, p->Hq, p->Tq, p->dv);
    eff_tensor dQ = t4(dq, EFF_F64, p->B, p->Hq, p->Tq, p->d), dK = t4(dk, EFF_F64, p->B, p->Hkv, p->Tk, p->d);
    eff_tensor dV = t4(dv, EFF_F64, p->B, p->Hkv, p->Tk, p->dv);
    eff_status s = eff_attn_ref_forward(g_ctx, &Ot, L ? &Lt : NULL, &Q, &K, &V, &p->op);
    if (s == EFF_OK && dq) s = eff_attn_ref_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &p->op);
    free(q); free(k); free(v); free(g);
    return s;
}

/* Flash fwd (+bwd) against the reference for prob p. */
static void check_flash(prob *p, const char *what, int do_bwd) {
    int64_t no = p->B * p->Hq * p->Tq * p->dv, nl = p->B * p->Hq * p->Tq;
    int64_t nq = p->B * p->Hq * p->Tq * p->d, nk = p->B * p->Hkv * p->Tk * p->d, nv = p->B * p->Hkv * p->Tk * p->dv;
    double *Or = dbuf(no), *Lr = dbuf(nl), *dqr = dbuf(nq), *dkr = dbuf(nk), *dvr = dbuf(nv), e;
    float *o = fbuf(no, 0), *l = fbuf(nl, 0), *dq = fbuf(nq, 0), *dk = fbuf(nk, 0), *dv = fbuf(nv, 0);
    eff_tensor Q = t4(p->q, EFF_F32, p->B, p->Hq, p->Tq, p->d), K = t4(p->k, EFF_F32, p->B, p->Hkv, p->Tk, p->d);
    eff_tensor V = t4(p->v, EFF_F32, p->B, p->Hkv, p->Tk, p->dv), O = t4(o, EFF_F32, p->B, p->Hq, p->Tq, p->dv);
    eff_tensor L = t3(l, EFF_F32, p->B, p->Hq, p->Tq), G = t4(p->dout, EFF_F32, p->B, p->Hq, p->Tq, p->dv);
    eff_tensor dQ = t4(dq, EFF_F32, p->B, p->Hq, p->Tq, p->d), dK = t4(dk, EFF_F32, p->B, p->Hkv, p->Tk, p->d);
    eff_tensor dV = t4(dv, EFF_F32, p->B, p->Hkv, p->Tk, p->dv);
    eff_status s = ref_run(p, Or, Lr, do_bwd ? dqr : NULL, dkr, dvr);
    EFF_CHECK_STATUS(g_ctx, s, EFF_OK, "reference");
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &p->op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_OK, what);
    EFF_CHECK_NMSE(what, o, Or, no, 1e-10);
    { int okl = lse_match(l, Lr, nl, 1e-10, &e); EFF_CHECK(okl, "%s: lse (nmse %.3g, -inf rows match)", what, e); }
    if (do_bwd) {
        char w2[200];
        s = eff_attn_flash_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &O, &L, &p->op);
        EFF_CHECK_STATUS(g_ctx, s, EFF_OK, what);
        snprintf(w2, sizeof w2, "%s bwd dQ", what); CHECK_ERR(w2, dq, dqr, nq, 1e-10);
        snprintf(w2, sizeof w2, "%s bwd dK", what); CHECK_ERR(w2, dk, dkr, nk, 1e-10);
        snprintf(w2, sizeof w2, "%s bwd dV", what); CHECK_ERR(w2, dv, dvr, nv, 1e-10);
    }
    free(Or); free(Lr); free(dqr); free(dkr); free(dvr); free(o); free(l); free(dq); free(dk); free(dv);
}

/* ---- 1. the reference: conventions and finite differences ------------------- */
static void test_ref_conventions(void) {
    /* flash-attn README: seqlen_q = 2, seqlen_k = 5, causal -> 1 1 1 1 0 / 1 1 1 1 1 (bottom-right).
       V = identity, so O = P and zeros mark hidden keys. */
    float q[2 * 4], k[5 * 4], v[25], o[2 * 5], l[2];
    eff_tensor Q = t4(q, EFF_F32, 1, 1, 2, 4), K = t4(k, EFF_F32, 1, 1, 5, 4), V = t4(v, EFF_F32, 1, 1, 5, 5);
    eff_tensor O = t4(o, EFF_F32, 1, 1, 2, 5), L = t3(l, EFF_F32, 1, 1, 2);
    eff_attn_opts op;
    int i, j, ok = 1;
    eff_test_fill(q, 8, 1.0); eff_test_fill(k, 20, 1.0);
    for (i = 0; i < 25; i++) v[i] = (i % 6 == 0) ? 1.0f : 0.0f;
    memset(&op, 0, sizeof op); op.causal = 1;
    EFF_CHECK_STATUS(g_ctx, eff_attn_ref_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "ref causal 2x5");
    for (i = 0; i < 2; i++)
        for (j = 0; j < 5; j++) ok &= ((o[i * 5 + j] > 0) == (j <= i + 3));
    EFF_CHECK(ok, "causal bottom-right: 11110 / 11111");
    EFF_CHECK(fabs(o[0] + o[1] + o[2] + o[3] - 1.0) < 1e-6, "probabilities sum to 1");
    /* top-left (PyTorch is_causal): explicit offset 0 -> 10000 / 11000 */
    op.has_causal_offset = 1; op.causal_offset = 0;
    EFF_CHECK_STATUS(g_ctx, eff_attn_ref_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "ref causal top-left");
    ok = 1;
    for (i = 0; i < 2; i++)
        for (j = 0; j < 5; j++) ok &= ((o[i * 5 + j] > 0) == (j <= i));
    EFF_CHECK(ok, "causal top-left with causal_offset = 0: 10000 / 11000");
    /* window, inclusive bounds: offset 0, left 1, right 1 -> row 0 sees {0,1}, row 1 sees {0,1,2} */
    op.causal = 0; op.window = 1; op.window_left = 1; op.window_right = 1;
    EFF_CHECK_STATUS(g_ctx, eff_attn_ref_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "ref window");
    ok = 1;
    for (i = 0; i < 2; i++)
        for (j = 0; j < 5; j++) ok &= ((o[i * 5 + j] > 0) == (j >= i - 1 && j <= i + 1));
    EFF_CHECK(ok, "window bounds are inclusive");
}

/* Rows that see no key: O = 0 and lse = -inf, never NaN, in every kernel. */
static void test_empty_rows(void) {
    enum { Tq = 6, Tk = 3, D = 8 };
    float q[Tq * D], k[Tk * D], v[Tk * D], o[Tq * D], l[Tq];
    eff_tensor Q = t4(q, EFF_F32, 1, 1, Tq, D), K = t4(k, EFF_F32, 1, 1, Tk, D), V = t4(v, EFF_F32, 1, 1, Tk, D);
    eff_tensor O = t4(o, EFF_F32, 1, 1, Tq, D), L = t3(l, EFF_F32, 1, 1, Tq);
    eff_attn_opts op;
    int kern, i, c;
    eff_test_fill(q, Tq * D, 1); eff_test_fill(k, Tk * D, 1); eff_test_fill(v, Tk * D, 1);
    memset(&op, 0, sizeof op);
    op.causal = 1;   /* bottom-right with Tq > Tk: offset -3, rows 0..2 see nothing */
    for (kern = 0; kern < 3; kern++) {
        const char *nm = kern == 0 ? "ref" : kern == 1 ? "flash" : "naive";
        int ok = 1;
        eff_status s;
        for (i = 0; i < Tq * D; i++) o[i] = NAN;
        s = kern == 0 ? eff_attn_ref_forward(g_ctx, &O, &L, &Q, &K, &V, &op)
          : kern == 1 ? eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &op)
                      : eff_attn_naive_forward(g_ctx, &O, &L, &Q, &K, &V, &op);
        EFF_CHECK_STATUS(g_ctx, s, EFF_OK, nm);
        for (i = 0; i < 3; i++) {
            ok &= l[i] == -INFINITY;
            for (c = 0; c < D; c++) ok &= o[i * D + c] == 0.0f;
        }
        for (i = 3; i < Tq; i++) ok &= l[i] == l[i] && l[i] > -INFINITY;
        ok &= eff_test_all_finite_f(o, Tq * D);
        EFF_CHECK(ok, "%s: empty rows give O = 0, lse = -inf, no NaN", nm);
    }
    /* backward through empty rows: finite, zero gradient for those queries */
    {
        float g[Tq * D], dq[Tq * D], dk[Tk * D], dv[Tk * D];
        eff_tensor G = t4(g, EFF_F32, 1, 1, Tq, D), dQ = t4(dq, EFF_F32, 1, 1, Tq, D), dK = t4(dk, EFF_F32, 1, 1, Tk, D);
        eff_tensor dV = t4(dv, EFF_F32, 1, 1, Tk, D);
        int ok = 1;
        eff_test_fill(g, Tq * D, 1);
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "flash fwd");
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &O, &L, &op), EFF_OK, "flash bwd");
        ok &= eff_test_all_finite_f(dq, Tq * D) && eff_test_all_finite_f(dk, Tk * D) && eff_test_all_finite_f(dv, Tk * D);
        for (i = 0; i < 3 * D; i++) ok &= dq[i] == 0.0f;
        EFF_CHECK(ok, "flash bwd: empty rows finite with dQ = 0");
    }
    /* Tk = 0: everything empty */
    {
        eff_tensor K0 = t4(k, EFF_F32, 1, 1, 0, D), V0 = t4(v, EFF_F32, 1, 1, 0, D);
        int ok = 1;
        memset(&op, 0, sizeof op);
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K0, &V0, &op), EFF_OK, "flash Tk = 0");
        for (i = 0; i < Tq; i++) ok &= l[i] == -INFINITY;
        for (i = 0; i < Tq * D; i++) ok &= o[i] == 0.0f;
        EFF_CHECK(ok, "Tk = 0: O = 0, lse = -inf");
    }
}

/* Finite differences of sum(O * W) through the float64 reference. */
typedef struct fd_ctx {
    prob *p;
    double *q, *k, *v, *w;
} fd_ctx;
static double fd_loss(void *u) {
    fd_ctx *f = (fd_ctx *)u;
    prob *p = f->p;
    int64_t no = p->B * p->Hq * p->Tq * p->dv, i;
    double *O = dbuf(no), s = 0;
    eff_tensor Q = t4(f->q, EFF_F64, p->B, p->Hq, p->Tq, p->d), K = t4(f->k, EFF_F64, p->B, p->Hkv, p->Tk, p->d);
    eff_tensor V = t4(f->v, EFF_F64, p->B, p->Hkv, p->Tk, p->dv), Ot = t4(O, EFF_F64, p->B, p->Hq, p->Tq, p->dv);
    eff_attn_ref_forward(g_ctx, &Ot, NULL, &Q, &K, &V, &p->op);
    for (i = 0; i < no; i++) s += O[i] * f->w[i];
    free(O);
    return s;
}
static double max_rel(const double *a, const double *b, int64_t n) {
    double num = 0, den = 0;
    int64_t i;
    for (i = 0; i < n; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
    return den > 0 ? num / den : num;
}
static void test_ref_fd(void) {
    int cfg;
    for (cfg = 0; cfg < 4; cfg++) {
        prob p;
        fd_ctx f;
        int64_t nq, nk, nv, no, i;
        double *dq, *dk, *dv, *g, *O;
        eff_tensor Q, K, V, G, dQ, dK, dV;
        float *bias = NULL;
        uint8_t *mask = NULL;
        eff_tensor Bt, Mt;
        prob_init(&p, cfg == 3 ? 2 : 1, 4, cfg == 0 ? 4 : 2, 5, 7, 3, 4);
        if (cfg == 1) p.op.causal = 1;
        if (cfg == 2) {
            p.op.window = 1; p.op.window_left = 2; p.op.window_right = 1;
            bias = fbuf(p.Tq * p.Tk, 0.5);
            Bt = eff_tensor_2d(bias, EFF_F32, p.Tq, p.Tk); p.op.bias = &Bt;
        }
        if (cfg == 3) {
            mask = (uint8_t *)malloc((size_t)(p.Hq * p.Tq * p.Tk));
            for (i = 0; i < p.Hq * p.Tq * p.Tk; i++) mask[i] = (uint8_t)((i * 7 + 3) % 5 != 0);
            Mt = eff_tensor_3d(mask, EFF_U8, p.Hq, p.Tq, p.Tk); p.op.mask = &Mt;
            p.op.scale = 0.7f; p.op.causal = 1;
        }
        nq = p.B * p.Hq * p.Tq * p.d; nk = p.B * p.Hkv * p.Tk * p.d; nv = p.B * p.Hkv * p.Tk * p.dv; no = p.B * p.Hq * p.Tq * p.dv;
        f.p = &p; f.q = to_d(p.q, nq); f.k = to_d(p.k, nk); f.v = to_d(p.v, nv); f.w = to_d(p.dout, no);
        dq = dbuf(nq); dk = dbuf(nk); dv = dbuf(nv); g = dbuf(nq + nk + nv); O = dbuf(no);
        Q = t4(f.q, EFF_F64, p.B, p.Hq, p.Tq, p.d); K = t4(f.k, EFF_F64, p.B, p.Hkv, p.Tk, p.d);
        V = t4(f.v, EFF_F64, p.B, p.Hkv, p.Tk, p.dv); G = t4(f.w, EFF_F64, p.B, p.Hq, p.Tq, p.dv);
        dQ = t4(dq, EFF_F64, p.B, p.Hq, p.Tq, p.d); dK = t4(dk, EFF_F64, p.B, p.Hkv, p.Tk, p.d);
        dV = t4(dv, EFF_F64, p.B, p.Hkv, p.Tk, p.dv);
        EFF_CHECK_STATUS(g_ctx, eff_attn_ref_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &p.op), EFF_OK, "ref bwd");
        eff_test_fd_grad(fd_loss, &f, f.q, nq, 1e-5, g);
        EFF_CHECK(max_rel(g, dq, nq) < 1e-12, "ref bwd dQ vs finite differences (cfg %d): nmse %.3g", cfg, max_rel(g, dq, nq));
        eff_test_fd_grad(fd_loss, &f, f.k, nk, 1e-5, g);
        EFF_CHECK(max_rel(g, dk, nk) < 1e-12, "ref bwd dK vs finite differences (cfg %d): nmse %.3g", cfg, max_rel(g, dk, nk));
        eff_test_fd_grad(fd_loss, &f, f.v, nv, 1e-5, g);
        EFF_CHECK(max_rel(g, dv, nv) < 1e-12, "ref bwd dV vs finite differences (cfg %d): nmse %.3g", cfg, max_rel(g, dv, nv));
        free(f.q); free(f.k); free(f.v); free(f.w); free(dq); free(dk); free(dv); free(g); free(O); free(bias); free(mask);
        prob_free(&p);
    }
    /* GQA: the reference with Hkv kv heads equals MHA with each kv head repeated G times */
    {
        prob a, m;
        int64_t G = 3, no, h, t;
        double *Oa, *Om;
        prob_init(&a, 2, 6, 2, 9, 11, 5, 5);
        prob_init(&m, 2, 6, 6, 9, 11, 5, 5);
        memcpy(m.q, a.q, (size_t)(2 * 6 * 9 * 5) * 4);
        for (h = 0; h < 2 * 6; h++)   /* [B][Hq] rows of the expanded K/V from [B][Hkv] */
            for (t = 0; t < 11 * 5; t++) {
                int64_t b = h / 6, hq = h % 6;
                m.k[h * 55 + t] = a.k[(b * 2 + hq / G) * 55 + t];
                m.v[h * 55 + t] = a.v[(b * 2 + hq / G) * 55 + t];
            }
        a.op.causal = m.op.causal = 1;
        no = 2 * 6 * 9 * 5;
        Oa = dbuf(no); Om = dbuf(no);
        ref_run(&a, Oa, NULL, NULL, NULL, NULL);
        ref_run(&m, Om, NULL, NULL, NULL, NULL);
        EFF_CHECK(max_rel(Oa, Om, no) == 0.0, "GQA reference == MHA with repeated kv heads");
        free(Oa); free(Om); prob_free(&a); prob_free(&m);
    }
}

/* ---- 2. flash vs reference --------------------------------------------------- */
static void test_flash_vs_ref(void) {
    /* B, Hq, Hkv, Tq, Tk, d, dv, causal, window(l, r), bias, mask, scale */
    static const int64_t cfgs[][13] = {
        {1, 1, 1, 1, 1, 32, 32, 0, -1, -1, 0, 0, 0},
        {1, 2, 2, 7, 7, 32, 32, 1, -1, -1, 0, 0, 0},
        {2, 4, 2, 33, 33, 64, 64, 1, -1, -1, 0, 0, 0},
        {1, 4, 1, 65, 130, 64, 64, 1, -1, -1, 0, 0, 0},   /* MQA, Tq != Tk, bottom-right */
        {1, 2, 2, 130, 65, 48, 40, 1, -1, -1, 0, 0, 0},   /* Tq > Tk: empty rows */
        {1, 3, 3, 100, 100, 33, 17, 0, -1, -1, 0, 0, 0},  /* odd head dims */
        {1, 2, 1, 129, 129, 128, 128, 1, -1, -1, 0, 0, 0},
        {1, 1, 1, 70, 70, 256, 256, 1, -1, -1, 0, 0, 0},
        {1, 2, 2, 150, 150, 64, 64, 1, 40, 0, 0, 0, 0},   /* Mistral window */
        {1, 2, 2, 150, 150, 32, 32, 0, 20, 13, 0, 0, 0},  /* two-sided window */
        {2, 2, 1, 37, 53, 16, 16, 0, -1, -1, 1, 0, 0},    /* bias */
        {1, 2, 2, 61, 61, 24, 24, 1, -1, -1, 0, 1, 0},    /* element mask + causal */
        {1, 4, 2, 90, 90, 64, 64, 1, -1, -1, 1, 1, 1},    /* everything, custom scale */
        {3, 8, 2, 1, 300, 64, 64, 1, -1, -1, 0, 0, 0},    /* decode step: Tq = 1, GQA groups packed */
        {2, 8, 8, 3, 200, 64, 64, 1, -1, -1, 0, 0, 0},    /* a few new tokens */
        {1, 2, 2, 5, 5, 1, 1, 0, -1, -1, 0, 0, 0},        /* d = 1 */
    };
    int n = (int)(sizeof cfgs / sizeof cfgs[0]), c;
    for (c = 0; c < n; c++) {
        const int64_t *x = cfgs[c];
        prob p;
        char what[160];
        eff_tensor Bt, Mt;
        prob_init(&p, x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
        p.op.causal = (int)x[7];
        if (x[8] >= 0) { p.op.window = 1; p.op.window_left = x[8]; p.op.window_right = x[9]; }
        if (x[10]) {
            int64_t i, n2 = x[0] * x[1] * x[3] * x[4];
            p.bias = fbuf(n2, 2.0);
            for (i = 0; i < n2; i += 17) p.bias[i] = -INFINITY;
            Bt = t4(p.bias, EFF_F32, x[0], x[1], x[3], x[4]); p.op.bias = &Bt;
        }
        if (x[11]) {
            int64_t i, n2 = x[3] * x[4];
            p.mask = (uint8_t *)malloc((size_t)n2);
            for (i = 0; i < n2; i++) p.mask[i] = (uint8_t)(((i * 2654435761u) >> 7) % 4 != 0);
            Mt = eff_tensor_2d(p.mask, EFF_U8, x[3], x[4]); p.op.mask = &Mt;
        }
        if (x[12]) p.op.scale = 0.3f;
        snprintf(what, sizeof what, "flash B%lld Hq%lld Hkv%lld Tq%lld Tk%lld d%lld dv%lld%s%s%s%s", (long long)x[0],
                 (long long)x[1], (long long)x[2], (long long)x[3], (long long)x[4], (long long)x[5], (long long)x[6],
                 x[7] ? " causal" : "", x[8] >= 0 ? " window" : "", x[10] ? " bias" : "", x[11] ? " mask" : "");
        check_flash(&p, what, 1);
        prob_free(&p);
    }
}

/* Outer dims with arbitrary strides: Q/K/V/O given as [B, T, H, d] memory viewed as [B, H, T, d]. */
static void test_flash_strided(void) {
    int64_t B = 2, H = 4, Hkv = 2, T = 77, d = 32, i;
    float *q = fbuf(B * T * H * d, 1), *k = fbuf(B * T * Hkv * d, 1), *v = fbuf(B * T * Hkv * d, 1);
    float *o = fbuf(B * T * H * d, 0), *oc = fbuf(B * H * T * d, 0), *qc = fbuf(B * H * T * d, 0);
    float *kc = fbuf(B * Hkv * T * d, 0), *vc = fbuf(B * Hkv * T * d, 0), *l = fbuf(B * H * T, 0), *lc = fbuf(B * H * T, 0);
    eff_tensor Qm = t4(q, EFF_F32, B, T, H, d), Km = t4(k, EFF_F32, B, T, Hkv, d), Vm = t4(v, EFF_F32, B, T, Hkv, d);
    eff_tensor Om = t4(o, EFF_F32, B, T, H, d), Q, K, V, O, L = t3(l, EFF_F32, B, H, T);
    eff_tensor Qc = t4(qc, EFF_F32, B, H, T, d), Kc = t4(kc, EFF_F32, B, Hkv, T, d), Vc = t4(vc, EFF_F32, B, Hkv, T, d);
    eff_tensor Oc = t4(oc, EFF_F32, B, H, T, d), Lc = t3(lc, EFF_F32, B, H, T), Ov;
    eff_attn_opts op;
    int ok = 1;
    eff_tensor_transpose(g_ctx, &Q, &Qm, 1, 2); eff_tensor_transpose(g_ctx, &K, &Km, 1, 2);
    eff_tensor_transpose(g_ctx, &V, &Vm, 1, 2); eff_tensor_transpose(g_ctx, &O, &Om, 1, 2);
    eff_tensor_copy(g_ctx, &Qc, &Q); eff_tensor_copy(g_ctx, &Kc, &K); eff_tensor_copy(g_ctx, &Vc, &V);
    memset(&op, 0, sizeof op); op.causal = 1;
    EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "flash strided");
    EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &Oc, &Lc, &Qc, &Kc, &Vc, &op), EFF_OK, "flash contiguous");
    eff_tensor_transpose(g_ctx, &Ov, &Om, 1, 2);
    eff_tensor_copy(g_ctx, &Qc, &Ov);   /* reuse qc as the contiguous copy of the strided O */
    for (i = 0; i < B * H * T * d; i++) ok &= qc[i] == oc[i];
    for (i = 0; i < B * H * T; i++) ok &= l[i] == lc[i];
    EFF_CHECK(ok, "permuted [B, T, H, d] views give bit-identical results");
    free(q); free(k); free(v); free(o); free(oc); free(qc); free(kc); free(vc); free(l); free(lc);
}

/* bf16 / f16 inputs: within the error of a plain bf16 implementation (the exact result rounded). */
static void test_flash_lowp(void) {
    int dtc;
    for (dtc = 0; dtc < 2; dtc++) {
        int dt = dtc == 0 ? EFF_BF16 : EFF_F16;
        int64_t B = 1, H = 4, Hkv = 2, T = 97, d = 64, nq = B * H * T * d, nk = B * Hkv * T * d, i;
        prob p;
        uint16_t *q16 = (uint16_t *)malloc((size_t)nq * 2), *k16 = (uint16_t *)malloc((size_t)nk * 2);
        uint16_t *v16 = (uint16_t *)malloc((size_t)nk * 2), *o16 = (uint16_t *)malloc((size_t)nq * 2);
        uint16_t *g16 = (uint16_t *)malloc((size_t)nq * 2), *dq16 = (uint16_t *)malloc((size_t)nq * 2);
        uint16_t *dk16 = (uint16_t *)malloc((size_t)nk * 2), *dv16 = (uint16_t *)malloc((size_t)nk * 2);
        float *o = fbuf(nq, 0), *l = fbuf(B * H * T, 0), *tmp = fbuf(nq > nk ? nq : nk, 0);
        double *Or = dbuf(nq), *Lr = dbuf(B * H * T), *dqr = dbuf(nq), *dkr = dbuf(nk), *dvr = dbuf(nk), e_plain, e;
        eff_tensor Q = t4(q16, dt, B, H, T, d), K = t4(k16, dt, B, Hkv, T, d), V = t4(v16, dt, B, Hkv, T, d);
        eff_tensor O = t4(o16, dt, B, H, T, d), L = t3(l, EFF_F32, B, H, T), Of = t4(o, EFF_F32, B, H, T, d);
        eff_tensor Gt = t4(g16, dt, B, H, T, d), dQ = t4(dq16, dt, B, H, T, d), dK = t4(dk16, dt, B, Hkv, T, d);
        eff_tensor dV = t4(dv16, dt, B, Hkv, T, d);
        uint16_t (*enc)(float) = dt == EFF_BF16 ? eff_fp32_to_bf16 : eff_fp32_to_fp16;
        float (*dec)(uint16_t) = dt == EFF_BF16 ? eff_bf16_to_fp32 : eff_fp16_to_fp32;
        const char *nm = dt == EFF_BF16 ? "bf16" : "f16";
        prob_init(&p, B, H, Hkv, T, T, d, d);
        p.op.causal = 1;
        /* round the inputs; the reference runs on exactly the rounded values */
        for (i = 0; i < nq; i++) { q16[i] = enc(p.q[i]); p.q[i] = dec(q16[i]); g16[i] = enc(p.dout[i]); p.dout[i] = dec(g16[i]); }
        for (i = 0; i < nk; i++) { k16[i] = enc(p.k[i]); p.k[i] = dec(k16[i]); v16[i] = enc(p.v[i]); p.v[i] = dec(v16[i]); }
        ref_run(&p, Or, Lr, dqr, dkr, dvr);
        /* f32 output from low-precision inputs: only accumulation error */
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &Of, &L, &Q, &K, &V, &p.op), EFF_OK, nm);
        EFF_CHECK(eff_test_nmse(o, Or, nq) < 1e-10, "%s inputs, f32 out: nmse %.3g < 1e-10", nm, eff_test_nmse(o, Or, nq));
        /* low-precision output: within 2x the error of rounding the exact result */
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &p.op), EFF_OK, nm);
        for (i = 0; i < nq; i++) { tmp[i] = dec(enc((float)Or[i])); }
        e_plain = eff_test_nmse(tmp, Or, nq);
        for (i = 0; i < nq; i++) tmp[i] = dec(o16[i]);
        e = eff_test_nmse(tmp, Or, nq);
        EFF_CHECK(e <= 2 * e_plain + 1e-12, "%s out: nmse %.3g <= 2 x rounding error %.3g", nm, e, e_plain);
        /* backward with low-precision tensors */
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_backward(g_ctx, &dQ, &dK, &dV, &Gt, &Q, &K, &V, &O, &L, &p.op), EFF_OK, nm);
        for (i = 0; i < nq; i++) tmp[i] = dec(dq16[i]);
        e = eff_test_nmse(tmp, dqr, nq);
        for (i = 0; i < nq; i++) tmp[i] = dec(enc((float)dqr[i]));
        e_plain = eff_test_nmse(tmp, dqr, nq);
        /* O itself was rounded, so D = rowsum(dO * O) carries that error too: allow 20x */
        EFF_CHECK(e <= 20 * e_plain + 1e-6, "%s bwd dQ: nmse %.3g (rounding %.3g)", nm, e, e_plain);
        for (i = 0; i < nk; i++) tmp[i] = dec(dk16[i]);
        EFF_CHECK(eff_test_nmse(tmp, dkr, nk) < 1e-4, "%s bwd dK: nmse %.3g", nm, eff_test_nmse(tmp, dkr, nk));
        for (i = 0; i < nk; i++) tmp[i] = dec(dv16[i]);
        EFF_CHECK(eff_test_nmse(tmp, dvr, nk) < 1e-4, "%s bwd dV: nmse %.3g", nm, eff_test_nmse(tmp, dvr, nk));
        free(q16); free(k16); free(v16); free(o16); free(g16); free(dq16); free(dk16); free(dv16);
        free(o); free(l); free(tmp); free(Or); free(Lr); free(dqr); free(dkr); free(dvr);
        prob_free(&p);
    }
}

/* Memory: peak bytes during flash stay O(T d); no T x T buffer. */
static void test_flash_memory(void) {
    int64_t T = g_quick ? 2048 : 4096, d = 64, n = T * d;   /* below ~2k the fixed per-thread tiles rival T^2 */
    float *q = fbuf(n, 1), *k = fbuf(n, 1), *v = fbuf(n, 1), *o = fbuf(n, 0), *l = fbuf(T, 0), *g = fbuf(n, 1);
    float *dq = fbuf(n, 0), *dk = fbuf(n, 0), *dv = fbuf(n, 0);
    eff_tensor Q = t4(q, EFF_F32, 1, 1, T, d), K = t4(k, EFF_F32, 1, 1, T, d), V = t4(v, EFF_F32, 1, 1, T, d);
    eff_tensor O = t4(o, EFF_F32, 1, 1, T, d), L = t3(l, EFF_F32, 1, 1, T), G = t4(g, EFF_F32, 1, 1, T, d);
    eff_tensor dQ = t4(dq, EFF_F32, 1, 1, T, d), dK = t4(dk, EFF_F32, 1, 1, T, d), dV = t4(dv, EFF_F32, 1, 1, T, d);
    eff_attn_opts op;
    /* tiles: per-thread tile buffers (a few 128 x 128 f32 tiles) */
    size_t base, peak, bound = (size_t)(4 * T * d * 4), tt = (size_t)(T * T * 4), far = T >= 4096 ? 16 : 4;
    size_t tiles = (size_t)eff_ctx_n_threads(g_ctx) * 512 * 1024;
    memset(&op, 0, sizeof op); op.causal = 1;
    base = eff_ctx_bytes_in_use(g_ctx); eff_ctx_reset_peak(g_ctx);
    EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "flash fwd");
    peak = eff_ctx_bytes_peak(g_ctx) - base;
    EFF_CHECK(peak < bound + tiles && peak * far < tt, "flash fwd T=%lld: peak %zu bytes < 4 T d 4 + tiles = %zu and < T^2 4 / %d = %zu",
              (long long)T, peak, bound + tiles, (int)far, tt / far);
    eff_ctx_reset_peak(g_ctx);
    EFF_CHECK_STATUS(g_ctx, eff_attn_flash_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &O, &L, &op), EFF_OK, "flash bwd");
    peak = eff_ctx_bytes_peak(g_ctx) - base;
    EFF_CHECK(peak < bound + tiles && peak * far < tt, "flash bwd T=%lld: peak %zu bytes < 4 T d 4 + tiles = %zu and < T^2 4 / %d = %zu",
              (long long)T, peak, bound + tiles, (int)far, tt / far);
    EFF_CHECK(eff_ctx_bytes_in_use(g_ctx) == base, "flash frees everything it allocates");
    /* the naive path needs the T x T matrix */
    eff_ctx_reset_peak(g_ctx);
    EFF_CHECK_STATUS(g_ctx, eff_attn_naive_forward(g_ctx, &O, &L, &Q, &K, &V, &op), EFF_OK, "naive");
    peak = eff_ctx_bytes_peak(g_ctx) - base;
    EFF_CHECK(peak >= tt, "naive: peak %zu bytes >= T^2 4 = %zu", peak, tt);
    free(q); free(k); free(v); free(o); free(l); free(g); free(dq); free(dk); free(dv);
}

static void test_naive(void) {
    prob p;
    int64_t no, nl;
    double *Or, *Lr, e;
    float *o, *l;
    eff_tensor Q, K, V, O, L, Bt;
    prob_init(&p, 2, 4, 2, 45, 70, 32, 24);
    p.op.causal = 1;
    p.bias = fbuf(45 * 70, 1.0);
    Bt = eff_tensor_2d(p.bias, EFF_F32, 45, 70); p.op.bias = &Bt;
    no = 2 * 4 * 45 * 24; nl = 2 * 4 * 45;
    Or = dbuf(no); Lr = dbuf(nl); o = fbuf(no, 0); l = fbuf(nl, 0);
    ref_run(&p, Or, Lr, NULL, NULL, NULL);
    Q = t4(p.q, EFF_F32, 2, 4, 45, 32); K = t4(p.k, EFF_F32, 2, 2, 70, 32); V = t4(p.v, EFF_F32, 2, 2, 70, 24);
    O = t4(o, EFF_F32, 2, 4, 45, 24); L = t3(l, EFF_F32, 2, 4, 45);
    EFF_CHECK_STATUS(g_ctx, eff_attn_naive_forward(g_ctx, &O, &L, &Q, &K, &V, &p.op), EFF_OK, "naive");
    EFF_CHECK_NMSE("naive vs reference", o, Or, no, 1e-10);
    { int okl = lse_match(l, Lr, nl, 1e-10, &e); EFF_CHECK(okl, "naive lse (nmse %.3g)", e); }
    free(Or); free(Lr); free(o); free(l); prob_free(&p);
}

/* ---- 3. merge and split-KV -------------------------------------------------- */
static void test_merge(void) {
    int64_t B = 2, H = 3, T = 21, Tk = 100, d = 16, parts = 4, a, no = B * H * T * d, nl = B * H * T;
    prob p;
    double *Or = dbuf(no), *Lr = dbuf(nl), e;
    float *op[4], *lp[4], *o = fbuf(no, 0), *l = fbuf(nl, 0);
    eff_tensor Os[4], Ls[4], O = t4(o, EFF_F32, B, H, T, d), L = t3(l, EFF_F32, B, H, T);
    int64_t cut[5] = {0, 13, 14, 60, 100};
    prob_init(&p, B, H, H, T, Tk, d, d);
    ref_run(&p, Or, Lr, NULL, NULL, NULL);
    for (a = 0; a < parts; a++) {   /* attention over key slices [cut[a], cut[a+1]) */
        eff_tensor K = t4(p.k, EFF_F32, B, H, Tk, d), V = t4(p.v, EFF_F32, B, H, Tk, d), Ks, Vs;
        eff_tensor Q = t4(p.q, EFF_F32, B, H, T, d);
        op[a] = fbuf(no, 0); lp[a] = fbuf(nl, 0);
        Os[a] = t4(op[a], EFF_F32, B, H, T, d); Ls[a] = t3(lp[a], EFF_F32, B, H, T);
        eff_tensor_slice(g_ctx, &Ks, &K, 2, cut[a], cut[a + 1] - cut[a]);
        eff_tensor_slice(g_ctx, &Vs, &V, 2, cut[a], cut[a + 1] - cut[a]);
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &Os[a], &Ls[a], &Q, &Ks, &Vs, &p.op), EFF_OK, "part");
    }
    EFF_CHECK_STATUS(g_ctx, eff_attn_merge_n(g_ctx, &O, &L, parts, Os, Ls), EFF_OK, "merge_n");
    EFF_CHECK_NMSE("merge of 4 key slices == full attention", o, Or, no, 1e-12);
    { int okl = lse_match(l, Lr, nl, 1e-12, &e); EFF_CHECK(okl, "merged lse (nmse %.3g)", e); }
    /* pairwise in place, in another order */
    memcpy(o, op[2], (size_t)no * 4); memcpy(l, lp[2], (size_t)nl * 4);
    for (a = 0; a < parts; a++)
        if (a != 2) EFF_CHECK_STATUS(g_ctx, eff_attn_merge(g_ctx, &O, &L, &Os[a], &Ls[a]), EFF_OK, "merge");
    EFF_CHECK_NMSE("pairwise merges in any order == full attention", o, Or, no, 1e-12);
    /* empty partials (-inf) change nothing; all-empty rows give O = 0, lse = -inf */
    {
        int64_t i;
        int ok = 1;
        for (i = 0; i < no; i++) op[0][i] = 123.0f;
        for (i = 0; i < nl; i++) lp[0][i] = -INFINITY;
        memcpy(op[1], o, (size_t)no * 4); memcpy(lp[1], l, (size_t)nl * 4);
        EFF_CHECK_STATUS(g_ctx, eff_attn_merge(g_ctx, &Os[1], &Ls[1], &Os[0], &Ls[0]), EFF_OK, "merge with empty");
        for (i = 0; i < no; i++) ok &= op[1][i] == o[i];
        EFF_CHECK(ok, "merging an empty (-inf) partial leaves the result unchanged");
        memcpy(op[1], op[0], (size_t)no * 4); memcpy(lp[1], lp[0], (size_t)nl * 4);
        EFF_CHECK_STATUS(g_ctx, eff_attn_merge(g_ctx, &Os[1], &Ls[1], &Os[0], &Ls[0]), EFF_OK, "merge empty+empty");
        ok = 1;
        for (i = 0; i < no; i++) ok &= op[1][i] == 0.0f;
        for (i = 0; i < nl; i++) ok &= lp[1][i] == -INFINITY;
        EFF_CHECK(ok, "two empty partials: O = 0, lse = -inf");
    }
    /* shape mismatch is an error */
    {
        eff_tensor bad = t4(op[0], EFF_F32, B, H, T - 1, d);
        EFF_CHECK_STATUS(g_ctx, eff_attn_merge(g_ctx, &O, &L, &bad, &Ls[0]), EFF_ERR_SHAPE, "merge shape mismatch");
    }
    for (a = 0; a < parts; a++) { free(op[a]); free(lp[a]); }
    free(Or); free(Lr); free(o); free(l); prob_free(&p);
}

static void test_splitkv(void) {
    int c;
    for (c = 0; c < 3; c++) {
        prob p;
        char what[96];
        if (c == 0) { prob_init(&p, 1, 4, 4, 37, 900, 64, 64); p.op.kv_splits = 3; p.op.causal = 1; }
        else if (c == 1) { prob_init(&p, 1, 8, 2, 1, 2000, 64, 64); p.op.causal = 1; }   /* auto split-KV decode */
        else { prob_init(&p, 2, 4, 1, 2, 700, 32, 32); p.op.kv_splits = 7; }
        snprintf(what, sizeof what, "split-KV case %d (Tq=%lld Tk=%lld splits=%lld)", c, (long long)p.Tq, (long long)p.Tk,
                 (long long)p.op.kv_splits);
        check_flash(&p, what, 0);
        prob_free(&p);
    }
    {   /* split-KV over a block mask's tile lists == reference with the dense mask */
        prob p;
        eff_attn_blockmask bm;
        int64_t T = 300, i, j;
        uint8_t *dense = (uint8_t *)malloc((size_t)(T * T));
        eff_tensor Mt = eff_tensor_2d(dense, EFF_U8, T, T);
        double *Or = dbuf(2 * T * 32);
        float *o = fbuf(2 * T * 32, 0);
        eff_tensor Q, K, V, O;
        prob_init(&p, 1, 2, 1, T, T, 32, 32);
        eff_attn_blockmask_strided(g_ctx, &bm, T, 20, 32);
        for (i = 0; i < T; i++) for (j = 0; j < T; j++) dense[i * T + j] = (uint8_t)(j <= i && (i - j <= 20 || (i - j) % 20 == 0));
        p.op.mask = &Mt;
        ref_run(&p, Or, NULL, NULL, NULL, NULL);
        p.op.mask = NULL; p.op.block_mask = &bm; p.op.kv_splits = 4;
        Q = t4(p.q, EFF_F32, 1, 2, T, 32); K = t4(p.k, EFF_F32, 1, 1, T, 32); V = t4(p.v, EFF_F32, 1, 1, T, 32); O = t4(o, EFF_F32, 1, 2, T, 32);
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, NULL, &Q, &K, &V, &p.op), EFF_OK, "split-KV + block mask");
        EFF_CHECK_NMSE("split-KV (4) over a strided block mask == reference", o, Or, 2 * T * 32, 1e-10);
        eff_attn_blockmask_free(g_ctx, &bm);
        free(dense); free(Or); free(o); prob_free(&p);
    }
}

/* ---- bad arguments ---------------------------------------------------------- */
static void test_errors(void) {
    float buf[4096];
    eff_tensor Q = t4(buf, EFF_F32, 1, 4, 8, 16), K = t4(buf, EFF_F32, 1, 3, 8, 16), V = t4(buf, EFF_F32, 1, 3, 8, 16);
    eff_tensor O = t4(buf, EFF_F32, 1, 4, 8, 16), L = t3(buf, EFF_F32, 1, 4, 8), K2 = t4(buf, EFF_F32, 1, 2, 8, 16);
    eff_tensor V2 = t4(buf, EFF_F32, 1, 2, 8, 16), Kd = t4(buf, EFF_F32, 1, 2, 8, 8), Vt = t4(buf, EFF_F32, 1, 2, 9, 16);
    eff_tensor Qi = t4(buf, EFF_I32, 1, 4, 8, 16), Qbig = t4(buf, EFF_F32, 1, 1, 1, 300), Kbig = t4(buf, EFF_F32, 1, 1, 1, 300);
    eff_tensor Bb = eff_tensor_2d(buf, EFF_F32, 8, 7), Q3 = t3(buf, EFF_F32, 4, 8, 16);
    eff_attn_opts op;
    eff_status s;
    memset(&op, 0, sizeof op);
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "Hq=4 not a multiple of Hkv=3");
    EFF_CHECK(strstr(eff_ctx_last_error(g_ctx), "eff_attn_flash_forward") != NULL, "message names the function: %s", eff_ctx_last_error(g_ctx));
    s = eff_attn_ref_forward(g_ctx, &O, &L, &Q, &Kd, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "K head dim differs from Q");
    EFF_CHECK(strstr(eff_ctx_last_error(g_ctx), "'K'") != NULL, "message names 'K': %s", eff_ctx_last_error(g_ctx));
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K2, &Vt, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "V length differs from K");
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Qi, &K2, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_DTYPE, "i32 Q");
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Qbig, &Kbig, &Kbig, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "head dim 300 > 256 for flash");
    s = eff_attn_flash_forward(g_ctx, NULL, &L, &Q, &K2, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "NULL O");
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q3, &K2, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "3-D Q");
    op.bias = &Bb;
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K2, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_SHAPE, "bias [8, 7] for Tk = 8");
    op.bias = NULL; op.window = 1; op.window_left = -1;
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K2, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "negative window");
    op.window = 0; op.scale = NAN;
    s = eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K2, &V2, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "NaN scale");
    op.scale = 0;
    s = eff_attn_flash_backward(g_ctx, NULL, &K2, &V2, &O, &Q, &K2, &V2, &O, &L, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "flash bwd NULL dQ");
    s = eff_attn_flash_backward(g_ctx, &O, &K2, &V2, &O, &Q, &K2, &V2, &O, NULL, &op);
    EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_INVALID_ARG, "flash bwd without lse");
    EFF_CHECK(eff_attn_flash_forward(NULL, &O, &L, &Q, &K2, &V2, &op) == EFF_ERR_INVALID_ARG, "NULL ctx");
}

/* ---- 4. block-sparse masks --------------------------------------------------- */
enum { PAT_CAUSAL, PAT_LOCAL, PAT_WINDOW, PAT_STRIDED, PAT_DILATED, PAT_GLOBAL, PAT_VARLEN, PAT_BIGBIRD, PAT_COUNT };
static const char *pat_name[PAT_COUNT] = {"causal", "block-local causal", "sliding window", "strided", "dilated window",
                                          "global + window", "varlen causal", "bigbird"};
static const int64_t pat_globals[3] = {0, 5, 41};
static const int64_t pat_seqlens[4] = {30, 1, 45, 24};

/* The pattern written out directly (independent of the library's rule code). */
static int pat_allowed(int pat, int64_t T, int64_t i, int64_t j) {
    int64_t dd = i - j;
    switch (pat) {
    case PAT_CAUSAL: return j <= i;
    case PAT_LOCAL: return i / 10 == j / 10 && j <= i;
    case PAT_WINDOW: return j >= i - 9 && j <= i + 4;
    case PAT_STRIDED: return j <= i && (dd <= 8 || dd % 8 == 0);
    case PAT_DILATED: return (dd <= 12 && dd >= -12) && ((dd % 3 + 3) % 3 == 0);
    case PAT_GLOBAL: {
        int a;
        for (a = 0; a < 3; a++) if (i == pat_globals[a] || j == pat_globals[a]) return 1;
        return dd <= 3 && dd >= -3;
    }
    case PAT_VARLEN: {
        int64_t si = 0, sj = 0, acc = 0;
        int a;
        for (a = 0; a < 4; a++) { if (i >= acc) si = a; if (j >= acc) sj = a; acc += pat_seqlens[a]; }
        (void)T;
        return si == sj && j <= i;
    }
    default: return 0;
    }
}

static eff_status pat_build(int pat, eff_attn_blockmask *bm, int64_t T, int64_t tile, int64_t heads) {
    switch (pat) {
    case PAT_CAUSAL: return eff_attn_blockmask_causal(g_ctx, bm, T, T, tile);
    case PAT_LOCAL: return eff_attn_blockmask_local(g_ctx, bm, T, 10, 1, tile);
    case PAT_WINDOW: return eff_attn_blockmask_window(g_ctx, bm, T, 9, 4, tile);
    case PAT_STRIDED: return eff_attn_blockmask_strided(g_ctx, bm, T, 8, tile);
    case PAT_DILATED: return eff_attn_blockmask_dilated(g_ctx, bm, T, 12, 3, tile);
    case PAT_GLOBAL: return eff_attn_blockmask_global(g_ctx, bm, T, 3, pat_globals, 3, tile);
    case PAT_VARLEN: return eff_attn_blockmask_varlen(g_ctx, bm, pat_seqlens, 4, 1, tile);
    case PAT_BIGBIRD: return eff_attn_blockmask_bigbird(g_ctx, bm, T, tile, 2, heads, 1234);
    default: return EFF_ERR_INVALID_ARG;
    }
}

/* Tile kinds must be exact: FULL = every element allowed, absent = none, PARTIAL = mixed;
   the transpose must list the same tiles. */
static int bm_consistent(const eff_attn_blockmask *bm) {
    int64_t h, qt, kt, e, i, j;
    for (h = 0; h < bm->n_heads; h++)
        for (qt = 0; qt < bm->nqb; qt++)
            for (kt = 0; kt < bm->nkb; kt++) {
                int64_t yes = 0, no = 0, found = -1, tfound = -1;
                const int64_t *rp = bm->row_ptr + h * (bm->nqb + 1), *tp = bm->t_row_ptr + h * (bm->nkb + 1);
                for (e = rp[qt]; e < rp[qt + 1]; e++) if (bm->col[e] == kt) found = bm->kind[e];
                for (e = tp[kt]; e < tp[kt + 1]; e++) if (bm->t_col[e] == qt) tfound = bm->t_kind[e];
                if (found != tfound) return 0;
                for (i = qt * bm->bq; i < (qt + 1) * bm->bq && i < bm->Tq; i++)
                    for (j = kt * bm->bk; j < (kt + 1) * bm->bk && j < bm->Tk; j++) {
                        if (eff_attn_blockmask_allowed(bm, h, i, j)) yes++; else no++;
                    }
                if (found < 0 && yes) return 0;
                if (found == EFF_ATTN_TILE_FULL && no) return 0;
                if (found == EFF_ATTN_TILE_PARTIAL && bm->rule.flags && (!yes || !no)) return 0;
            }
    return 1;
}

static void test_blockmask_patterns(void) {
    int pat, tc;
    static const int64_t tiles[3][2] = {{100, 16}, {200, 64}, {90, 24}};   /* (T, tile); 24: not a multiple of the vector width */
    for (pat = 0; pat < PAT_COUNT; pat++)
        for (tc = 0; tc < 3; tc++) {
            int64_t T = pat == PAT_VARLEN ? 100 : tiles[tc][0], tile = tiles[tc][1], H = 4, Hkv = 2, i, j, h;
            int64_t heads = pat == PAT_BIGBIRD ? H : 1;
            eff_attn_blockmask bm;
            uint8_t *dense = (uint8_t *)malloc((size_t)(H * T * T));
            int same = 1;
            prob p;
            eff_tensor Mt;
            char what[160];
            eff_status s = pat_build(pat, &bm, T, tile, heads);
            EFF_CHECK_STATUS(g_ctx, s, EFF_OK, pat_name[pat]);
            if (s != EFF_OK) { free(dense); continue; }
            for (h = 0; h < H; h++)
                for (i = 0; i < T; i++)
                    for (j = 0; j < T; j++) {
                        int a = pat == PAT_BIGBIRD ? eff_attn_blockmask_allowed(&bm, h, i, j) : pat_allowed(pat, T, i, j);
                        dense[(h * T + i) * T + j] = (uint8_t)a;
                        if (pat != PAT_BIGBIRD) same &= a == eff_attn_blockmask_allowed(&bm, h, i, j);
                    }
            EFF_CHECK(same, "%s T=%lld tile=%lld: blockmask_allowed == the pattern's definition", pat_name[pat], (long long)T,
                      (long long)tile);
            EFF_CHECK(bm_consistent(&bm), "%s T=%lld tile=%lld: FULL/PARTIAL/absent tiles exact, transpose matches",
                      pat_name[pat], (long long)T, (long long)tile);
            /* flash with the block mask == reference with the equivalent dense element mask */
            prob_init(&p, 1, H, Hkv, T, T, 32, 32);
            Mt = eff_tensor_3d(dense, EFF_U8, H, T, T);
            {
                int64_t no = H * T * 32, nq = no, nk = Hkv * T * 32;
                double *Or = dbuf(no), *Lr = dbuf(H * T), *dqr = dbuf(nq), *dkr = dbuf(nk), *dvr = dbuf(nk), e;
                float *o = fbuf(no, 0), *l = fbuf(H * T, 0), *dq = fbuf(nq, 0), *dk = fbuf(nk, 0), *dv = fbuf(nk, 0);
                eff_tensor Q = t4(p.q, EFF_F32, 1, H, T, 32), K = t4(p.k, EFF_F32, 1, Hkv, T, 32), V = t4(p.v, EFF_F32, 1, Hkv, T, 32);
                eff_tensor O = t4(o, EFF_F32, 1, H, T, 32), L = t3(l, EFF_F32, 1, H, T), G = t4(p.dout, EFF_F32, 1, H, T, 32);
                eff_tensor dQ = t4(dq, EFF_F32, 1, H, T, 32), dK = t4(dk, EFF_F32, 1, Hkv, T, 32), dV = t4(dv, EFF_F32, 1, Hkv, T, 32);
                int okl;
                p.op.mask = &Mt;
                ref_run(&p, Or, Lr, dqr, dkr, dvr);
                p.op.mask = NULL; p.op.block_mask = &bm;
                snprintf(what, sizeof what, "%s T=%lld tile=%lld: flash(blockmask) == ref(dense mask)", pat_name[pat], (long long)T,
                         (long long)tile);
                EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, &L, &Q, &K, &V, &p.op), EFF_OK, what);
                EFF_CHECK_NMSE(what, o, Or, no, 1e-10);
                okl = lse_match(l, Lr, H * T, 1e-10, &e);
                EFF_CHECK(okl, "%s: lse (nmse %.3g)", what, e);
                EFF_CHECK_STATUS(g_ctx, eff_attn_flash_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, &O, &L, &p.op), EFF_OK, what);
                CHECK_ERR("  ... bwd dQ", dq, dqr, nq, 1e-10);
                CHECK_ERR("  ... bwd dK", dk, dkr, nk, 1e-10);
                CHECK_ERR("  ... bwd dV", dv, dvr, nk, 1e-10);
                /* the reference also honours block_mask directly */
                if (tc == 0) {
                    double *O2 = dbuf(no);
                    ref_run(&p, O2, NULL, NULL, NULL, NULL);
                    EFF_CHECK(max_rel(O2, Or, no) == 0.0, "%s: ref(blockmask) == ref(dense mask)", pat_name[pat]);
                    free(O2);
                }
                free(Or); free(Lr); free(dqr); free(dkr); free(dvr); free(o); free(l); free(dq); free(dk); free(dv);
            }
            prob_free(&p);
            eff_attn_blockmask_free(g_ctx, &bm);
            free(dense);
        }
}

static void test_blockmask_misc(void) {
    eff_attn_blockmask bm, bm2;
    char buf[4096];
    int64_t n, h, I, J, nb;
    int ok;
    /* the text renderer */
    EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_causal(g_ctx, &bm, 16, 16, 4), EFF_OK, "causal 16/4");
    n = eff_attn_blockmask_render(&bm, 0, EFF_ATTN_RENDER_TILES, buf, sizeof buf);
    EFF_CHECK(n == 20 && strcmp(buf, "+...\n#+..\n##+.\n###+\n") == 0, "tile render of causal:\n%.40s", buf);
    n = eff_attn_blockmask_render(&bm, 0, EFF_ATTN_RENDER_ELEMENTS, buf, sizeof buf);
    EFF_CHECK(n == 16 * 17 && strncmp(buf, "#...............\n##..............\n", 34) == 0, "element render of causal");
    n = eff_attn_blockmask_render(&bm, 0, EFF_ATTN_RENDER_ELEMENTS, buf, 10);
    EFF_CHECK(n == 16 * 17 && strlen(buf) == 9, "render truncates like snprintf and returns the full length");
    n = eff_attn_blockmask_render(&bm, 0, EFF_ATTN_RENDER_SVG, NULL, 0);
    {
        char *svg = (char *)malloc((size_t)n + 1);
        eff_attn_blockmask_render(&bm, 0, EFF_ATTN_RENDER_SVG, svg, n + 1);
        EFF_CHECK(n > 100 && strncmp(svg, "<svg", 4) == 0 && strstr(svg, "</svg>") != NULL && (int64_t)strlen(svg) == n,
                  "SVG render (%lld bytes)", (long long)n);
        free(svg);
    }
    eff_attn_blockmask_free(g_ctx, &bm);
    /* causal with Tq != Tk is bottom-right, like opts.causal */
    EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_causal(g_ctx, &bm, 3, 8, 2), EFF_OK, "causal 3x8");
    ok = 1;
    for (I = 0; I < 3; I++) for (J = 0; J < 8; J++) ok &= eff_attn_blockmask_allowed(&bm, 0, I, J) == (J <= I + 5);
    EFF_CHECK(ok, "blockmask causal Tq=3 Tk=8 is bottom-right");
    eff_attn_blockmask_free(g_ctx, &bm);
    /* BigBird structure: window + global blocks + exactly n_random random blocks; heads differ; seeded */
    EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_bigbird(g_ctx, &bm, 16 * 12, 16, 3, 4, 7), EFF_OK, "bigbird");
    EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_bigbird(g_ctx, &bm2, 16 * 12, 16, 3, 4, 7), EFF_OK, "bigbird again");
    nb = 12; ok = 1;
    for (h = 0; h < 4; h++)
        for (I = 0; I < nb; I++) {
            int64_t cnt = 0, base = 0;
            for (J = 0; J < nb; J++) {
                int present = eff_attn_blockmask_allowed(&bm, h, I * 16, J * 16);
                int must = I == 0 || I == nb - 1 || J == 0 || J == nb - 1 || (J >= I - 1 && J <= I + 1);
                cnt += present; base += must;
                if (must && !present) ok = 0;
                if (present != eff_attn_blockmask_allowed(&bm2, h, I * 16, J * 16)) ok = 0;
            }
            if (I != 0 && I != nb - 1 && cnt != base + 3) ok = 0;
        }
    EFF_CHECK(ok, "BigBird: window, global and exactly 3 random blocks per row; same seed, same mask");
    ok = 0;
    for (I = 1; I < nb - 1; I++) for (J = 0; J < nb; J++)
        ok |= eff_attn_blockmask_allowed(&bm, 0, I * 16, J * 16) != eff_attn_blockmask_allowed(&bm, 1, I * 16, J * 16);
    EFF_CHECK(ok, "BigBird: random blocks differ between heads");
    eff_attn_blockmask_free(g_ctx, &bm); eff_attn_blockmask_free(g_ctx, &bm2);
    /* block mask combined with opts.causal: the intersection */
    {
        prob p;
        int64_t T = 90, i, j;
        uint8_t *dense = (uint8_t *)malloc((size_t)(T * T));
        eff_tensor Mt = eff_tensor_2d(dense, EFF_U8, T, T);
        double *Or = dbuf(2 * T * 16);
        float *o = fbuf(2 * T * 16, 0);
        eff_tensor Q, K, V, O;
        EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_window(g_ctx, &bm, T, 7, 7, 32), EFF_OK, "window");
        for (i = 0; i < T; i++) for (j = 0; j < T; j++) dense[i * T + j] = (uint8_t)(j >= i - 7 && j <= i + 7 && j <= i);
        prob_init(&p, 1, 2, 2, T, T, 16, 16);
        p.op.mask = &Mt;
        ref_run(&p, Or, NULL, NULL, NULL, NULL);
        p.op.mask = NULL; p.op.block_mask = &bm; p.op.causal = 1;
        Q = t4(p.q, EFF_F32, 1, 2, T, 16); K = t4(p.k, EFF_F32, 1, 2, T, 16); V = t4(p.v, EFF_F32, 1, 2, T, 16);
        O = t4(o, EFF_F32, 1, 2, T, 16);
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, NULL, &Q, &K, &V, &p.op), EFF_OK, "window mask + causal");
        EFF_CHECK_NMSE("block mask AND opts.causal == dense intersection", o, Or, 2 * T * 16, 1e-10);
        /* a mask built for another length is rejected */
        p.op.block_mask = &bm;
        Q = t4(p.q, EFF_F32, 1, 2, T - 1, 16); O = t4(o, EFF_F32, 1, 2, T - 1, 16);
        EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &O, NULL, &Q, &K, &V, &p.op), EFF_ERR_SHAPE, "mask for another Tq");
        eff_attn_blockmask_free(g_ctx, &bm);
        free(dense); free(Or); free(o); prob_free(&p);
    }
    /* bad builder arguments */
    EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_window(g_ctx, &bm, 10, -1, 0, 0), EFF_ERR_INVALID_ARG, "negative window");
    EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_strided(g_ctx, &bm, 10, 0, 0), EFF_ERR_INVALID_ARG, "stride 0");
    {
        int64_t g = 12;
        EFF_CHECK_STATUS(g_ctx, eff_attn_blockmask_global(g_ctx, &bm, 10, 1, &g, 1, 0), EFF_ERR_INVALID_ARG, "global past T");
    }
    EFF_CHECK(eff_attn_blockmask_allowed(NULL, 0, 0, 0) == 0, "allowed(NULL) = 0");
}

/* ---- 5. KV caches ------------------------------------------------------------- */
/* A tiny Q8_0 (ggml block_q8_0: fp16 scale d = amax/127, then 32 int8 q = round(x/d)),
   registered here the way eff_quant.h will register the real one. */
static void q8_0_from_float(const float *x, void *dst, int64_t n) {
    unsigned char *p = (unsigned char *)dst;
    int64_t b, i;
    for (b = 0; b < n / 32; b++) {
        float amax = 0, d, id;
        uint16_t h;
        for (i = 0; i < 32; i++) if (fabsf(x[b * 32 + i]) > amax) amax = fabsf(x[b * 32 + i]);
        d = amax / 127.0f; id = d > 0 ? 1.0f / d : 0.0f;
        h = eff_fp32_to_fp16(d);
        memcpy(p + b * 34, &h, 2);
        for (i = 0; i < 32; i++) ((int8_t *)(p + b * 34 + 2))[i] = (int8_t)lrintf(x[b * 32 + i] * id);
    }
}
static void q8_0_to_float(const void *src, float *y, int64_t n) {
    const unsigned char *p = (const unsigned char *)src;
    int64_t b, i;
    for (b = 0; b < n / 32; b++) {
        uint16_t h;
        float d;
        memcpy(&h, p + b * 34, 2);
        d = eff_fp16_to_fp32(h);
        for (i = 0; i < 32; i++) y[b * 32 + i] = d * (float)((const int8_t *)(p + b * 34 + 2))[i];
    }
}

/* Decode over the cache == reference attention over the gathered (dequantized) K/V with
   key j visible to query i iff pos[j] <= pos of query i. */
static int64_t g_dec_window = -1;   /* >= 0: decode with opts.window, window_left = this, right = 0 */
static void check_decode(eff_attn_cache *c, int64_t layer, const int64_t *seqs, int64_t B, int64_t Hq, int64_t Tq,
                         const char *what, double tol, float *o_out) {
    int64_t d = c->opts.head_dim, Hkv = c->opts.n_kv_heads, b, i, j, h;
    int64_t no = B * Hq * Tq * d, maxn = c->slots;
    float *q = fbuf(no, 1), *o = fbuf(no, 0), *l = fbuf(B * Hq * Tq, 0);
    double *err_ref = dbuf(no), *lref = dbuf(B * Hq * Tq);
    eff_tensor Q = t4(q, EFF_F32, B, Hq, Tq, d), O = t4(o, EFF_F32, B, Hq, Tq, d), L = t3(l, EFF_F32, B, Hq, Tq);
    eff_attn_opts op;
    double e;
    int okl;
    memset(&op, 0, sizeof op);
    if (g_dec_window >= 0) { op.window = 1; op.window_left = g_dec_window; }
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_decode(g_ctx, &O, &L, &Q, c, layer, seqs, &op), EFF_OK, what);
    for (b = 0; b < B; b++) {   /* the reference, one batch row at a time */
        float *k = fbuf(Hkv * maxn * d, 0), *v = fbuf(Hkv * maxn * d, 0);
        int64_t *pos = (int64_t *)malloc((size_t)maxn * 8), n = 0, len = c->len[seqs[b] * c->opts.n_layers + layer];
        eff_tensor Kg = t3(k, EFF_F32, Hkv, maxn, d), Vg = t3(v, EFF_F32, Hkv, maxn, d);
        eff_attn_cache_gather(g_ctx, c, layer, seqs[b], &Kg, &Vg, pos, &n);
        {
            prob p;
            uint8_t *m = (uint8_t *)malloc((size_t)(Tq * n + 1));
            eff_tensor Mt = eff_tensor_2d(m, EFF_U8, Tq, n);
            prob_init(&p, 1, Hq, Hkv, Tq, n, d, d);
            memcpy(p.q, q + b * Hq * Tq * d, (size_t)(Hq * Tq * d) * 4);
            for (h = 0; h < Hkv; h++) {   /* gathered rows have a head stride of maxn */
                memcpy(p.k + h * n * d, k + h * maxn * d, (size_t)(n * d) * 4);
                memcpy(p.v + h * n * d, v + h * maxn * d, (size_t)(n * d) * 4);
            }
            for (i = 0; i < Tq; i++)
                for (j = 0; j < n; j++)
                    m[i * n + j] = (uint8_t)(pos[j] <= len - Tq + i && (g_dec_window < 0 || pos[j] >= len - Tq + i - g_dec_window));
            p.op.mask = &Mt;
            ref_run(&p, err_ref + b * Hq * Tq * d, lref + b * Hq * Tq, NULL, NULL, NULL);
            free(m); prob_free(&p);
        }
        free(k); free(v); free(pos);
    }
    {
        double en = eff_test_nmse(o, err_ref, no);
        EFF_CHECK(en <= tol, "%s: decode == reference over the cached K/V, nmse %.3g <= %.1g", what, en, tol);
    }
    okl = lse_match(l, lref, B * Hq * Tq, 1e-10, &e);
    EFF_CHECK(okl, "%s: lse (nmse %.3g)", what, e);
    if (o_out) memcpy(o_out, o, (size_t)no * 4);
    free(q); free(o); free(l); free(err_ref); free(lref);
}

static void test_cache_basic(void) {
    int paged;
    const int64_t L = 2, Hkv = 2, d = 64, Hq = 8, maxT = 300;
    for (paged = 0; paged < 2; paged++) {
        eff_attn_cache c;
        eff_attn_cache_opts co;
        int64_t seqs[2] = {2, 0}, layer, t, s;
        float *k, *v;
        const char *nm = paged ? "paged f32" : "contiguous f32";
        char what[128];
        memset(&co, 0, sizeof co);
        co.n_layers = L; co.n_kv_heads = Hkv; co.head_dim = d; co.max_seqs = 3; co.max_tokens = maxT; co.paged = paged;
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_create(g_ctx, &c, &co), EFF_OK, nm);
        eff_test_seed(99);   /* the same tokens for both cache kinds */
        k = fbuf(Hkv * 200 * d, 1); v = fbuf(Hkv * 200 * d, 1);
        for (layer = 0; layer < L; layer++)
            for (s = 0; s < 3; s++) {
                int64_t n0 = s == 0 ? 150 : s == 2 ? 37 : 5;   /* prefill, then one token at a time */
                eff_tensor K = t3(k, EFF_F32, Hkv, n0, d), V = t3(v, EFF_F32, Hkv, n0, d);
                K.nb[0] = V.nb[0] = 200 * d * 4;
                EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &c, layer, s, &K, &V), EFF_OK, "prefill");
                for (t = 0; t < 3; t++) {
                    eff_tensor K1 = t3(k + (n0 + t) * d, EFF_F32, Hkv, 1, d), V1 = t3(v + (n0 + t) * d, EFF_F32, Hkv, 1, d);
                    K1.nb[0] = V1.nb[0] = 200 * d * 4;
                    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &c, layer, s, &K1, &V1), EFF_OK, "append 1");
                }
            }
        EFF_CHECK(eff_attn_cache_count(&c, 1, 0) == 153 && eff_attn_cache_count(&c, 0, 2) == 40, "%s: token counts", nm);
        {   /* gather returns exactly what was appended (f32) */
            float *kg = fbuf(Hkv * maxT * d, 0);
            int64_t n = 0, pos[300], i, h, ok = 1;
            eff_tensor Kg = t3(kg, EFF_F32, Hkv, maxT, d);
            EFF_CHECK_STATUS(g_ctx, eff_attn_cache_gather(g_ctx, &c, 1, 2, &Kg, NULL, pos, &n), EFF_OK, "gather");
            for (h = 0; h < Hkv; h++) for (i = 0; i < n * d; i++) ok &= kg[h * maxT * d + i] == k[h * 200 * d + i];
            for (i = 0; i < n; i++) ok &= pos[i] == i;
            EFF_CHECK(ok && n == 40, "%s: gather == appended K, positions 0..n-1", nm);
            free(kg);
        }
        snprintf(what, sizeof what, "%s decode Tq=1, 2 seqs, GQA 8/2", nm);
        check_decode(&c, 1, seqs, 2, Hq, 1, what, 1e-10, NULL);
        snprintf(what, sizeof what, "%s decode Tq=3 (causal among the new tokens)", nm);
        check_decode(&c, 0, seqs, 2, Hq, 3, what, 1e-10, NULL);
        /* errors */
        {
            float big[4 * 64];
            eff_tensor K = t3(big, EFF_F32, Hkv, 1, d), Kbad = t3(big, EFF_F32, Hkv, 1, 32), Q = t4(big, EFF_F32, 1, 3, 1, d);
            eff_tensor O = t4(big, EFF_F32, 1, 3, 1, d);
            int64_t sq = 1;
            EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &c, 0, 1, &Kbad, &Kbad), EFF_ERR_SHAPE, "append wrong head_dim");
            EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &c, 2, 1, &K, &K), EFF_ERR_INVALID_ARG, "append layer out of range");
            EFF_CHECK_STATUS(g_ctx, eff_attn_cache_decode(g_ctx, &O, NULL, &Q, &c, 0, &sq, NULL), EFF_ERR_SHAPE, "Hq=3 vs Hkv=2");
        }
        eff_attn_cache_free(g_ctx, &c);
        free(k); free(v);
    }
}

/* Paged == contiguous, bit for bit (same tiles, same order), and paged block management. */
static void test_cache_paged(void) {
    const int64_t Hkv = 2, d = 32, Hq = 4, T = 100;
    eff_attn_cache cc, cp;
    eff_attn_cache_opts co;
    float *k = fbuf(Hkv * T * d, 1), *v = fbuf(Hkv * T * d, 1), *q = fbuf(2 * Hq * d, 1);
    float *o1 = fbuf(2 * Hq * d, 0), *o2 = fbuf(2 * Hq * d, 0), *o3 = fbuf(2 * Hq * d, 0);
    eff_tensor K = t3(k, EFF_F32, Hkv, T, d), V = t3(v, EFF_F32, Hkv, T, d), Q = t4(q, EFF_F32, 2, Hq, 1, d);
    eff_tensor O1 = t4(o1, EFF_F32, 2, Hq, 1, d), O2 = t4(o2, EFF_F32, 2, Hq, 1, d), O3 = t4(o3, EFF_F32, 2, Hq, 1, d);
    int64_t seqs[2] = {0, 1}, i, free0;
    int ok;
    eff_attn_opts op;
    memset(&op, 0, sizeof op);
    op.kv_splits = 3;
    memset(&co, 0, sizeof co);
    co.n_kv_heads = Hkv; co.head_dim = d; co.max_seqs = 4; co.max_tokens = 256;
    eff_attn_cache_create(g_ctx, &cc, &co);
    co.paged = 1; co.block_size = 16; co.n_blocks = 20;
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_create(g_ctx, &cp, &co), EFF_OK, "paged create");
    free0 = cp.n_free;
    for (i = 0; i < 2; i++) {
        eff_tensor Ks = K, Vs = V;
        Ks.ne[1] = Vs.ne[1] = T - 30 * i;
        eff_attn_cache_append(g_ctx, &cc, 0, i, &Ks, &Vs);
        eff_attn_cache_append(g_ctx, &cp, 0, i, &Ks, &Vs);
    }
    EFF_CHECK(cp.n_free == free0 - 7 - 5, "paged: 100 + 70 tokens take 7 + 5 blocks of 16 (%lld free)", (long long)cp.n_free);
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_decode(g_ctx, &O1, NULL, &Q, &cc, 0, seqs, &op), EFF_OK, "contiguous decode");
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_decode(g_ctx, &O2, NULL, &Q, &cp, 0, seqs, &op), EFF_OK, "paged decode");
    ok = 1;
    for (i = 0; i < 2 * Hq * d; i++) ok &= o1[i] == o2[i];
    EFF_CHECK(ok, "paged decode == contiguous decode, bit for bit");
    /* fork: seq 2 shares seq 0's blocks; appending to seq 2 copies on write, seq 0 unchanged */
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_fork(g_ctx, &cp, 0, 2), EFF_OK, "fork");
    EFF_CHECK(cp.n_free == free0 - 12 && cp.refcount[cp.block_table[0]] == 2, "fork shares blocks (refcount 2, no new blocks)");
    {
        float extra[2 * 32];
        eff_tensor Ke = t3(extra, EFF_F32, Hkv, 1, d);
        int64_t s2[2] = {2, 0};
        eff_test_fill(extra, 2 * 32, 1.0);
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &cp, 0, 2, &Ke, &Ke), EFF_OK, "append to fork");
        EFF_CHECK(cp.n_free == free0 - 13, "copy on write took one block for the last, shared, partial block");
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_decode(g_ctx, &O3, NULL, &Q, &cp, 0, seqs, &op), EFF_OK, "decode after fork");
        ok = 1;
        for (i = 0; i < 2 * Hq * d; i++) ok &= o3[i] == o1[i];
        EFF_CHECK(ok, "sequence 0 is unchanged by appends to its fork");
        EFF_CHECK(eff_attn_cache_count(&cp, 0, 2) == 101, "fork has 101 tokens");
        (void)s2;
    }
    /* reset returns blocks to the pool */
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_reset(g_ctx, &cp, 2), EFF_OK, "reset fork");
    EFF_CHECK(cp.n_free == free0 - 12, "reset of the fork frees only its private block");
    eff_attn_cache_reset(g_ctx, &cp, 0); eff_attn_cache_reset(g_ctx, &cp, 1);
    EFF_CHECK(cp.n_free == free0, "all blocks back in the pool after resets");
    /* pool exhaustion */
    {
        eff_tensor Ks = K;
        eff_status s;
        Ks.ne[1] = 100;
        eff_attn_cache_append(g_ctx, &cp, 0, 0, &Ks, &Ks);
        eff_attn_cache_append(g_ctx, &cp, 0, 1, &Ks, &Ks);   /* 14 of 20 blocks */
        s = eff_attn_cache_append(g_ctx, &cp, 0, 2, &Ks, &Ks);
        EFF_CHECK_STATUS(g_ctx, s, EFF_ERR_OOM, "pool exhausted");
    }
    /* a block table pointing past the pool is rejected */
    cp.block_table[1] = 999;
    EFF_CHECK_STATUS(g_ctx, eff_attn_cache_decode(g_ctx, &O2, NULL, &Q, &cp, 0, seqs, &op), EFF_ERR_FORMAT, "corrupt block table");
    cp.block_table[1] = 1;
    /* contiguous: appending past max_tokens is an error */
    {
        eff_tensor Ks = K;
        Ks.ne[1] = 100;
        eff_attn_cache_append(g_ctx, &cc, 0, 3, &Ks, &Ks);
        eff_attn_cache_append(g_ctx, &cc, 0, 3, &Ks, &Ks);
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &cc, 0, 3, &Ks, &Ks), EFF_ERR_INVALID_ARG, "past max_tokens");
    }
    /* truncate: roll back to 40 tokens; blocks past them return to the pool; decode == a cache that only ever had 40 */
    {
        eff_tensor Ks = K;
        eff_attn_cache fresh;
        int64_t s0 = 0, nfree_before;
        eff_attn_cache_reset(g_ctx, &cp, 0); eff_attn_cache_reset(g_ctx, &cp, 1); eff_attn_cache_reset(g_ctx, &cp, 2);
        Ks.ne[1] = 100;
        eff_attn_cache_append(g_ctx, &cp, 0, 0, &Ks, &Ks);
        nfree_before = cp.n_free;
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_truncate(g_ctx, &cp, 0, 40), EFF_OK, "truncate");
        EFF_CHECK(cp.n_free == nfree_before + 4 && eff_attn_cache_count(&cp, 0, 0) == 40, "truncate to 40 tokens frees 4 of 7 blocks");
        co.n_blocks = 0;
        eff_attn_cache_create(g_ctx, &fresh, &co);
        Ks.ne[1] = 40;
        eff_attn_cache_append(g_ctx, &fresh, 0, 0, &Ks, &Ks);
        {
            eff_tensor Q1 = t4(q, EFF_F32, 1, Hq, 1, d), O1b = t4(o1, EFF_F32, 1, Hq, 1, d), O2b = t4(o2, EFF_F32, 1, Hq, 1, d);
            eff_attn_cache_decode(g_ctx, &O1b, NULL, &Q1, &cp, 0, &s0, NULL);
            eff_attn_cache_decode(g_ctx, &O2b, NULL, &Q1, &fresh, 0, &s0, NULL);
            ok = 1;
            for (i = 0; i < Hq * d; i++) ok &= o1[i] == o2[i];
            EFF_CHECK(ok, "decode after truncate == decode of a cache that only had those tokens");
        }
        eff_attn_cache_free(g_ctx, &fresh);
        /* decode with a sliding attention window (Mistral), positions-based */
        g_dec_window = 9;
        check_decode(&cp, 0, &s0, 1, Hq, 3, "paged decode with opts.window (left 9)", 1e-10, NULL);
        g_dec_window = -1;
    }
    eff_attn_cache_free(g_ctx, &cc); eff_attn_cache_free(g_ctx, &cp);
    free(k); free(v); free(q); free(o1); free(o2); free(o3);
}

/* Quantized caches: decode == reference on the dequantized K/V, and close to the f32 original. */
static void test_cache_quant(void) {
    int dtc;
    const int dts[4] = {EFF_BF16, EFF_F16, EFF_I8, EFF_Q8_0};
    const char *nms[4] = {"bf16 cache", "f16 cache", "int8 cache", "q8_0 cache"};
    const int64_t Hkv = 2, d = 64, T = 90;
    for (dtc = 0; dtc < 4; dtc++) {
        eff_attn_cache c;
        eff_attn_cache_opts co;
        float *k = fbuf(Hkv * T * d, 1), *v = fbuf(Hkv * T * d, 1), *kg = fbuf(Hkv * T * d, 0);
        eff_tensor K = t3(k, EFF_F32, Hkv, T, d), V = t3(v, EFF_F32, Hkv, T, d), Kg = t3(kg, EFF_F32, Hkv, T, d);
        int64_t seq = 0, n;
        char what[96];
        memset(&co, 0, sizeof co);
        co.n_kv_heads = Hkv; co.head_dim = d; co.max_tokens = 128; co.dtype = dts[dtc]; co.paged = dtc & 1;
        if (dts[dtc] == EFF_Q8_0) {
            eff_dtype_traits tr;
            eff_ctx *fresh;
            eff_ctx_create(NULL, &fresh);
            EFF_CHECK_STATUS(fresh, eff_attn_cache_create(fresh, &c, &co), EFF_ERR_DTYPE, "q8_0 without registered traits");
            eff_ctx_destroy(fresh);
            tr = *eff_ctx_dtype(g_ctx, EFF_Q8_0);
            tr.to_float = q8_0_to_float; tr.from_float = q8_0_from_float;
            eff_ctx_register_dtype(g_ctx, EFF_Q8_0, &tr);
        }
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_create(g_ctx, &c, &co), EFF_OK, nms[dtc]);
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_append(g_ctx, &c, 0, 0, &K, &V), EFF_OK, nms[dtc]);
        eff_attn_cache_gather(g_ctx, &c, 0, 0, &Kg, NULL, NULL, &n);
        {
            double *kd = to_d(k, Hkv * T * d), e = eff_test_nmse(kg, kd, Hkv * T * d);
            EFF_CHECK(e < 5e-4, "%s: dequantized K close to the original (nmse %.3g < 5e-4)", nms[dtc], e);
            free(kd);
        }
        snprintf(what, sizeof what, "%s%s decode", nms[dtc], co.paged ? " (paged)" : "");
        check_decode(&c, 0, &seq, 1, 4, 1, what, 1e-10, NULL);
        snprintf(what, sizeof what, "%s%s decode Tq=2", nms[dtc], co.paged ? " (paged)" : "");
        check_decode(&c, 0, &seq, 1, 4, 2, what, 1e-10, NULL);
        eff_attn_cache_free(g_ctx, &c);
        free(k); free(v); free(kg);
    }
    {   /* q8_0 rejects a head dim that is not a multiple of 32 */
        eff_attn_cache c;
        eff_attn_cache_opts co;
        memset(&co, 0, sizeof co);
        co.n_kv_heads = 1; co.head_dim = 48; co.max_tokens = 8; co.dtype = EFF_Q8_0;
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_create(g_ctx, &c, &co), EFF_ERR_SHAPE, "q8_0 with head_dim 48");
    }
}

/* Sliding-window eviction with attention sinks (StreamingLLM). */
static void test_cache_window(void) {
    int paged;
    for (paged = 0; paged < 2; paged++) {
        const int64_t Hkv = 1, d = 32, W = 24, S = 4, T = 100;
        eff_attn_cache c;
        eff_attn_cache_opts co;
        float *k = fbuf(Hkv * T * d, 1), *kg = fbuf(Hkv * (W + S) * d, 0);
        eff_tensor Kg = t3(kg, EFF_F32, Hkv, W + S, d);
        int64_t t, pos[28], n, seq = 0, i, ok = 1, cnt;
        memset(&co, 0, sizeof co);
        co.n_kv_heads = Hkv; co.head_dim = d; co.window = W; co.n_sink = S; co.paged = paged; co.block_size = 8;
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_create(g_ctx, &c, &co), EFF_OK, "window cache");
        for (t = 0; t < T; t += 7) {   /* chunks of 7 tokens */
            int64_t m = T - t < 7 ? T - t : 7;
            eff_tensor K = t3(k + t * d, EFF_F32, Hkv, m, d);
            eff_attn_cache_append(g_ctx, &c, 0, 0, &K, &K);
            if (t == 7 * 6) check_decode(&c, 0, &seq, 1, 2, 3, paged ? "window+sinks paged, mid-stream" : "window+sinks, mid-stream", 1e-10, NULL);
        }
        eff_attn_cache_gather(g_ctx, &c, 0, 0, &Kg, NULL, pos, &n);
        cnt = 0;
        for (i = 0; i < n; i++) {
            int keep = pos[i] < S || pos[i] >= T - W;
            ok &= keep && memcmp(kg + i * d, k + pos[i] * d, (size_t)d * 4) == 0;
            cnt += keep;
        }
        EFF_CHECK(ok && n == W + S && cnt == W + S, "%s: retains the %lld sinks and the last %lld tokens", paged ? "paged" : "contiguous",
                  (long long)S, (long long)W);
        check_decode(&c, 0, &seq, 1, 2, 1, paged ? "window+sinks paged decode" : "window+sinks decode", 1e-10, NULL);
        g_dec_window = 10;   /* opts.window over a wrapped ring: positions decide, the sinks fall outside */
        check_decode(&c, 0, &seq, 1, 2, 4, paged ? "wrapped ring + opts.window, paged" : "wrapped ring + opts.window", 1e-10, NULL);
        g_dec_window = -1;
        EFF_CHECK_STATUS(g_ctx, eff_attn_cache_truncate(g_ctx, &c, 0, 50), EFF_ERR_UNSUPPORTED, "truncate into overwritten slots");
        check_decode(&c, 0, &seq, 1, 2, 5, paged ? "window+sinks paged decode Tq=5" : "window+sinks decode Tq=5", 1e-10, NULL);
        eff_attn_cache_free(g_ctx, &c);
        free(k); free(kg);
    }
}

static void test_kv_bytes(void) {
    /* Llama-2-7B: 32 layers, 32 kv heads of 128, 32k tokens, f16 = 16 GiB */
    EFF_CHECK(eff_attn_kv_bytes(32, 32, 128, 32768, EFF_F16) == 17179869184LL, "KV bytes of a 7B model at 32k tokens in f16 = 16 GiB");
    EFF_CHECK(eff_attn_kv_bytes(32, 8, 128, 32768, EFF_F16) == 4294967296LL, "GQA with 8 kv heads: 4 GiB");
    EFF_CHECK(eff_attn_kv_bytes(32, 8, 128, 32768, EFF_Q8_0) == 2 * 32 * 8 * 32768LL * 136, "q8_0: 34 bytes per 32 values");
    EFF_CHECK(eff_attn_kv_bytes(1, 1, 48, 1, EFF_Q8_0) == -1 && eff_attn_kv_bytes(-1, 1, 64, 1, EFF_F32) == -1, "bad arguments give -1");
}

/* ---- 6. linear attention, Linformer, Reformer LSH, LongNet ------------------- */
static double phi_d(double x) { return x > 0 ? x + 1 : exp(x); }

/* Direct quadratic form of linear attention in float64 (fast-transformers' definition). */
static void linear_direct(const prob *p, const double *q, const double *k, const double *v, int causal, double *o) {
    int64_t b, h, i, j, c, e, G = p->Hq / p->Hkv;
    for (b = 0; b < p->B; b++)
        for (h = 0; h < p->Hq; h++)
            for (i = 0; i < p->Tq; i++) {
                const double *qi = q + ((b * p->Hq + h) * p->Tq + i) * p->d;
                double den = 1e-6, *oi = o + ((b * p->Hq + h) * p->Tq + i) * p->dv;
                for (e = 0; e < p->dv; e++) oi[e] = 0;
                for (j = 0; j < (causal ? i + 1 : p->Tk); j++) {
                    const double *kj = k + ((b * p->Hkv + h / G) * p->Tk + j) * p->d, *vj = v + ((b * p->Hkv + h / G) * p->Tk + j) * p->dv;
                    double a = 0;
                    for (c = 0; c < p->d; c++) a += phi_d(qi[c]) * phi_d(kj[c]);
                    den += a;
                    for (e = 0; e < p->dv; e++) oi[e] += a * vj[e];
                }
                for (e = 0; e < p->dv; e++) oi[e] /= den;
            }
}

typedef struct lin_fd { prob *p; double *q, *k, *v, *w; int causal; } lin_fd;
static double lin_loss(void *u) {
    lin_fd *f = (lin_fd *)u;
    int64_t no = f->p->B * f->p->Hq * f->p->Tq * f->p->dv, i;
    double *o = dbuf(no), s = 0;
    linear_direct(f->p, f->q, f->k, f->v, f->causal, o);
    for (i = 0; i < no; i++) s += o[i] * f->w[i];
    free(o);
    return s;
}

static void test_linear(void) {
    int c;
    for (c = 0; c < 4; c++) {
        int causal = c & 1;
        prob p;
        int64_t nq, nk, nv, no;
        double *q, *k, *v, *Or, *g;
        float *o, *dq, *dk, *dv;
        eff_tensor Q, K, V, O, G, dQ, dK, dV;
        char what[96];
        lin_fd f;
        if (c < 2) prob_init(&p, 2, 4, 2, 37, 37, 8, 6);
        else prob_init(&p, 1, 4, 2, 6, 6, 3, 2);   /* tiny, GQA: finite differences */
        nq = p.B * p.Hq * p.Tq * p.d; nk = p.B * p.Hkv * p.Tk * p.d; nv = p.B * p.Hkv * p.Tk * p.dv; no = p.B * p.Hq * p.Tq * p.dv;
        q = to_d(p.q, nq); k = to_d(p.k, nk); v = to_d(p.v, nv); Or = dbuf(no); g = dbuf(nq + nk + nv);
        o = fbuf(no, 0); dq = fbuf(nq, 0); dk = fbuf(nk, 0); dv = fbuf(nv, 0);
        Q = t4(p.q, EFF_F32, p.B, p.Hq, p.Tq, p.d); K = t4(p.k, EFF_F32, p.B, p.Hkv, p.Tk, p.d); V = t4(p.v, EFF_F32, p.B, p.Hkv, p.Tk, p.dv);
        O = t4(o, EFF_F32, p.B, p.Hq, p.Tq, p.dv); G = t4(p.dout, EFF_F32, p.B, p.Hq, p.Tq, p.dv);
        dQ = t4(dq, EFF_F32, p.B, p.Hq, p.Tq, p.d); dK = t4(dk, EFF_F32, p.B, p.Hkv, p.Tk, p.d); dV = t4(dv, EFF_F32, p.B, p.Hkv, p.Tk, p.dv);
        linear_direct(&p, q, k, v, causal, Or);
        snprintf(what, sizeof what, "linear attention %s (T=%lld, GQA %lld/%lld) == quadratic form", causal ? "causal" : "non-causal",
                 (long long)p.Tq, (long long)p.Hq, (long long)p.Hkv);
        EFF_CHECK_STATUS(g_ctx, eff_attn_linear_forward(g_ctx, &O, &Q, &K, &V, causal), EFF_OK, what);
        EFF_CHECK_NMSE(what, o, Or, no, 1e-12);
        EFF_CHECK_STATUS(g_ctx, eff_attn_linear_backward(g_ctx, &dQ, &dK, &dV, &G, &Q, &K, &V, causal), EFF_OK, "linear bwd");
        if (c < 2) {   /* finite differences only on the tiny shapes (below): the quadratic form is costly */
            free(q); free(k); free(v); free(Or); free(g); free(o); free(dq); free(dk); free(dv);
            prob_free(&p);
            continue;
        }
        f.p = &p; f.q = q; f.k = k; f.v = v; f.w = to_d(p.dout, no); f.causal = causal;
        eff_test_fd_grad(lin_loss, &f, q, nq, 1e-6, g);
        snprintf(what, sizeof what, "linear %s bwd dQ vs finite differences", causal ? "causal" : "non-causal");
        EFF_CHECK_NMSE(what, dq, g, nq, 1e-9);
        eff_test_fd_grad(lin_loss, &f, k, nk, 1e-6, g);
        snprintf(what, sizeof what, "linear %s bwd dK vs finite differences", causal ? "causal" : "non-causal");
        EFF_CHECK_NMSE(what, dk, g, nk, 1e-9);
        eff_test_fd_grad(lin_loss, &f, v, nv, 1e-6, g);
        snprintf(what, sizeof what, "linear %s bwd dV vs finite differences", causal ? "causal" : "non-causal");
        EFF_CHECK_NMSE(what, dv, g, nv, 1e-9);
        free(f.w); free(q); free(k); free(v); free(Or); free(g); free(o); free(dq); free(dk); free(dv);
        prob_free(&p);
    }
    {
        float x[64];
        eff_tensor Q = t4(x, EFF_F32, 1, 1, 4, 4), K = t4(x, EFF_F32, 1, 1, 3, 4), O = t4(x, EFF_F32, 1, 1, 4, 4);
        EFF_CHECK_STATUS(g_ctx, eff_attn_linear_forward(g_ctx, &O, &Q, &K, &K, 1), EFF_ERR_SHAPE, "causal linear with Tq != Tk");
    }
}

/* Linformer written out: K' = E K, V' = F V, softmax(scale Q K'^T) V' in float64. */
typedef struct linf_fd { prob *p; int64_t kp; double *q, *k, *v, *E, *F, *w; } linf_fd;
static void linformer_direct(const linf_fd *f, double *o) {
    const prob *p = f->p;
    int64_t b, h, i, j, t, c, G = p->Hq / p->Hkv, kp = f->kp;
    double *Kp = dbuf(kp * p->d), *Vp = dbuf(kp * p->dv), *s = dbuf(kp), sc = 1.0 / sqrt((double)p->d);
    for (b = 0; b < p->B; b++)
        for (h = 0; h < p->Hq; h++) {
            const double *k = f->k + (b * p->Hkv + h / G) * p->Tk * p->d, *v = f->v + (b * p->Hkv + h / G) * p->Tk * p->dv;
            for (j = 0; j < kp; j++) {
                for (c = 0; c < p->d; c++) { double a = 0; for (t = 0; t < p->Tk; t++) a += f->E[j * p->Tk + t] * k[t * p->d + c]; Kp[j * p->d + c] = a; }
                for (c = 0; c < p->dv; c++) { double a = 0; for (t = 0; t < p->Tk; t++) a += f->F[j * p->Tk + t] * v[t * p->dv + c]; Vp[j * p->dv + c] = a; }
            }
            for (i = 0; i < p->Tq; i++) {
                const double *qi = f->q + ((b * p->Hq + h) * p->Tq + i) * p->d;
                double m = -INFINITY, sum = 0, *oi = o + ((b * p->Hq + h) * p->Tq + i) * p->dv;
                for (j = 0; j < kp; j++) { double a = 0; for (c = 0; c < p->d; c++) a += qi[c] * Kp[j * p->d + c]; s[j] = sc * a; if (s[j] > m) m = s[j]; }
                for (j = 0; j < kp; j++) { s[j] = exp(s[j] - m); sum += s[j]; }
                for (c = 0; c < p->dv; c++) { double a = 0; for (j = 0; j < kp; j++) a += s[j] * Vp[j * p->dv + c]; oi[c] = a / sum; }
            }
        }
    free(Kp); free(Vp); free(s);
}
static double linf_loss(void *u) {
    linf_fd *f = (linf_fd *)u;
    int64_t no = f->p->B * f->p->Hq * f->p->Tq * f->p->dv, i;
    double *o = dbuf(no), s = 0;
    linformer_direct(f, o);
    for (i = 0; i < no; i++) s += o[i] * f->w[i];
    free(o);
    return s;
}

static void test_linformer(void) {
    prob p;
    linf_fd f;
    int64_t kp = 5, nq, nk, nv, no, i;
    float *E, *Fm, *o, *l, *dq, *dk, *dv, *dE, *dF;
    double *Or, *g;
    eff_tensor Q, K, V, Et, Ft, O, L, G, dQ, dK, dV, dEt, dFt;
    prob_init(&p, 2, 4, 2, 9, 13, 4, 3);
    nq = p.B * p.Hq * p.Tq * p.d; nk = p.B * p.Hkv * p.Tk * p.d; nv = p.B * p.Hkv * p.Tk * p.dv; no = p.B * p.Hq * p.Tq * p.dv;
    E = fbuf(kp * p.Tk, 0.5); Fm = fbuf(kp * p.Tk, 0.5); o = fbuf(no, 0); l = fbuf(p.B * p.Hq * p.Tq, 0);
    dq = fbuf(nq, 0); dk = fbuf(nk, 0); dv = fbuf(nv, 0); dE = fbuf(kp * p.Tk, 0); dF = fbuf(kp * p.Tk, 0);
    for (i = 0; i < kp * p.Tk; i++) { dE[i] = 0.25f; dF[i] = -0.5f; }   /* backward adds into these */
    Q = t4(p.q, EFF_F32, p.B, p.Hq, p.Tq, p.d); K = t4(p.k, EFF_F32, p.B, p.Hkv, p.Tk, p.d); V = t4(p.v, EFF_F32, p.B, p.Hkv, p.Tk, p.dv);
    Et = eff_tensor_2d(E, EFF_F32, kp, p.Tk); Ft = eff_tensor_2d(Fm, EFF_F32, kp, p.Tk);
    O = t4(o, EFF_F32, p.B, p.Hq, p.Tq, p.dv); L = t3(l, EFF_F32, p.B, p.Hq, p.Tq); G = t4(p.dout, EFF_F32, p.B, p.Hq, p.Tq, p.dv);
    dQ = t4(dq, EFF_F32, p.B, p.Hq, p.Tq, p.d); dK = t4(dk, EFF_F32, p.B, p.Hkv, p.Tk, p.d); dV = t4(dv, EFF_F32, p.B, p.Hkv, p.Tk, p.dv);
    dEt = eff_tensor_2d(dE, EFF_F32, kp, p.Tk); dFt = eff_tensor_2d(dF, EFF_F32, kp, p.Tk);
    f.p = &p; f.kp = kp; f.q = to_d(p.q, nq); f.k = to_d(p.k, nk); f.v = to_d(p.v, nv); f.E = to_d(E, kp * p.Tk); f.F = to_d(Fm, kp * p.Tk);
    f.w = to_d(p.dout, no);
    Or = dbuf(no); g = dbuf(nq + nk + nv + kp * p.Tk);
    linformer_direct(&f, Or);
    EFF_CHECK_STATUS(g_ctx, eff_attn_linformer_forward(g_ctx, &O, &L, &Q, &K, &V, &Et, &Ft, NULL), EFF_OK, "linformer fwd");
    EFF_CHECK_NMSE("Linformer == softmax(Q (E K)^T) (F V) written out", o, Or, no, 1e-10);
    EFF_CHECK_STATUS(g_ctx, eff_attn_linformer_backward(g_ctx, &dQ, &dK, &dV, &dEt, &dFt, &G, &Q, &K, &V, &Et, &Ft, &O, &L, NULL),
                     EFF_OK, "linformer bwd");
    eff_test_fd_grad(linf_loss, &f, f.q, nq, 1e-6, g); EFF_CHECK_NMSE("Linformer dQ vs finite differences", dq, g, nq, 1e-9);
    eff_test_fd_grad(linf_loss, &f, f.k, nk, 1e-6, g); EFF_CHECK_NMSE("Linformer dK vs finite differences", dk, g, nk, 1e-9);
    eff_test_fd_grad(linf_loss, &f, f.v, nv, 1e-6, g); EFF_CHECK_NMSE("Linformer dV vs finite differences", dv, g, nv, 1e-9);
    eff_test_fd_grad(linf_loss, &f, f.E, kp * p.Tk, 1e-6, g);
    for (i = 0; i < kp * p.Tk; i++) g[i] += 0.25;
    EFF_CHECK_NMSE("Linformer dE (accumulated) vs finite differences", dE, g, kp * p.Tk, 1e-9);
    eff_test_fd_grad(linf_loss, &f, f.F, kp * p.Tk, 1e-6, g);
    for (i = 0; i < kp * p.Tk; i++) g[i] -= 0.5;
    EFF_CHECK_NMSE("Linformer dF (accumulated) vs finite differences", dF, g, kp * p.Tk, 1e-9);
    {
        eff_attn_opts op;
        memset(&op, 0, sizeof op); op.causal = 1;
        EFF_CHECK_STATUS(g_ctx, eff_attn_linformer_forward(g_ctx, &O, &L, &Q, &K, &V, &Et, &Ft, &op), EFF_ERR_UNSUPPORTED, "causal Linformer");
        Et = eff_tensor_2d(E, EFF_F32, kp, p.Tk - 1);
        EFF_CHECK_STATUS(g_ctx, eff_attn_linformer_forward(g_ctx, &O, &L, &Q, &K, &V, &Et, &Ft, NULL), EFF_ERR_SHAPE, "E with the wrong length");
    }
    free(f.q); free(f.k); free(f.v); free(f.E); free(f.F); free(f.w); free(Or); free(g);
    free(E); free(Fm); free(o); free(l); free(dq); free(dk); free(dv); free(dE); free(dF);
    prob_free(&p);
}

/* Reformer LSH written out: hash, sort, chunk, attend, merge rounds, all in float64. */
static void lsh_direct(const float *qk, const float *v, const float *R, int64_t T, int64_t d, int64_t dv, int64_t nr, int64_t nb2,
                       int64_t m, int causal, double scale, double *o, double *lse) {
    int64_t *bk = (int64_t *)malloc((size_t)T * 8), *ord = (int64_t *)malloc((size_t)T * 8), r, t, u, c, e, k;
    double *kn = dbuf(T * d), *acc = dbuf(T * dv), *L = dbuf(T), *s = dbuf(2 * m), *oo = dbuf(dv);
    int64_t nch = (T + m - 1) / m;
    for (t = 0; t < T; t++) {
        double nn = 0;
        for (k = 0; k < d; k++) nn += (double)qk[t * d + k] * qk[t * d + k];
        for (k = 0; k < d; k++) kn[t * d + k] = nn > 0 ? qk[t * d + k] / sqrt(nn) : 0;
        L[t] = -INFINITY;
    }
    for (r = 0; r < nr; r++) {
        for (t = 0; t < T; t++) {   /* argmax over [xR, -xR], first max wins (float arithmetic as the library) */
            float best = -INFINITY;
            int64_t arg = 0;
            for (c = 0; c < 2 * nb2; c++) {
                float a = 0;
                for (k = 0; k < d; k++) a += qk[t * d + k] * R[(r * d + k) * nb2 + c % nb2];
                if (c >= nb2) a = -a;
                if (a > best) { best = a; arg = c; }
            }
            bk[t] = arg;
        }
        u = 0;   /* order by (bucket, position) */
        for (c = 0; c < 2 * nb2; c++) for (t = 0; t < T; t++) if (bk[t] == c) ord[u++] = t;
        for (u = 0; u < T; u++) {
            int64_t qi = ord[u], ch = u / m, pc = nch > 1 ? (ch + nch - 1) % nch : ch, n = 0, part, a;
            double mx = -INFINITY, sum = 0, l;
            for (part = 0; part < (pc != ch ? 2 : 1); part++) {
                int64_t cc = part ? pc : ch;
                for (a = cc * m; a < (cc + 1) * m && a < T; a++) {
                    int64_t kj = ord[a];
                    double sv = 0;
                    if (causal && kj > qi) sv = -INFINITY;
                    else if (kj == qi) sv = -1e5;
                    else { for (k = 0; k < d; k++) sv += qk[qi * d + k] * kn[kj * d + k]; sv *= scale; }
                    s[n++] = sv;
                    if (sv > mx) mx = sv;
                }
            }
            for (e = 0; e < dv; e++) oo[e] = 0;
            n = 0;
            for (part = 0; part < (pc != ch ? 2 : 1); part++) {
                int64_t cc = part ? pc : ch;
                for (a = cc * m; a < (cc + 1) * m && a < T; a++) {
                    double pr = s[n] == -INFINITY ? 0 : exp(s[n] - mx);
                    n++;
                    sum += pr;
                    for (e = 0; e < dv; e++) oo[e] += pr * v[ord[a] * dv + e];
                }
            }
            l = mx + log(sum);
            {   /* merge round r into the accumulator */
                double mm = L[qi] > l ? L[qi] : l, ln = mm + log(exp(L[qi] - mm) + exp(l - mm));
                for (e = 0; e < dv; e++) acc[qi * dv + e] = exp(L[qi] - ln) * acc[qi * dv + e] + exp(l - ln) * oo[e] / sum;
                L[qi] = ln;
            }
        }
    }
    for (t = 0; t < T * dv; t++) o[t] = acc[t];
    for (t = 0; t < T; t++) lse[t] = L[t];
    free(bk); free(ord); free(kn); free(acc); free(L); free(s); free(oo);
}

static void test_lsh(void) {
    const int64_t B = 2, H = 2, T = 75, d = 16, dv = 8, nr = 3, nb2 = 4;
    float *qk = fbuf(B * H * T * d, 1), *v = fbuf(B * H * T * dv, 1), *R = fbuf(nr * d * nb2, 0), *R2 = fbuf(nr * d * nb2, 0);
    float *o = fbuf(B * H * T * dv, 0), *l = fbuf(B * H * T, 0);
    double *Or = dbuf(B * H * T * dv), *Lr = dbuf(B * H * T), mean = 0, var = 0, e;
    eff_tensor QK = t4(qk, EFF_F32, B, H, T, d), V = t4(v, EFF_F32, B, H, T, dv), Rt = t3(R, EFF_F32, nr, d, nb2);
    eff_tensor R2t = t3(R2, EFF_F32, nr, d, nb2), O = t4(o, EFF_F32, B, H, T, dv), L = t3(l, EFF_F32, B, H, T);
    eff_attn_lsh_opts lo;
    int causal, i, okl;
    EFF_CHECK_STATUS(g_ctx, eff_attn_lsh_rotations(g_ctx, &Rt, 42), EFF_OK, "rotations");
    eff_attn_lsh_rotations(g_ctx, &R2t, 42);
    EFF_CHECK(memcmp(R, R2, (size_t)(nr * d * nb2) * 4) == 0, "same seed, same rotations");
    eff_attn_lsh_rotations(g_ctx, &R2t, 43);
    EFF_CHECK(memcmp(R, R2, (size_t)(nr * d * nb2) * 4) != 0, "another seed, other rotations");
    {
        float *big = fbuf(20000, 0);
        eff_tensor Bt = t3(big, EFF_F32, 1, 100, 200);
        eff_attn_lsh_rotations(g_ctx, &Bt, 5);
        for (i = 0; i < 20000; i++) mean += big[i] / 20000.0;
        for (i = 0; i < 20000; i++) var += (big[i] - mean) * (big[i] - mean) / 20000.0;
        EFF_CHECK(fabs(mean) < 0.03 && fabs(var - 1) < 0.05, "rotations ~ N(0, 1): mean %.3f var %.3f", mean, var);
        free(big);
    }
    for (causal = 0; causal < 2; causal++) {
        int64_t b, h;
        char what[96];
        memset(&lo, 0, sizeof lo); lo.chunk = 16; lo.causal = causal;
        EFF_CHECK_STATUS(g_ctx, eff_attn_lsh_forward(g_ctx, &O, &L, &QK, &V, &Rt, &lo), EFF_OK, "lsh");
        for (b = 0; b < B; b++)
            for (h = 0; h < H; h++)
                lsh_direct(qk + (b * H + h) * T * d, v + (b * H + h) * T * dv, R, T, d, dv, nr, nb2, 16, causal, 1.0 / sqrt((double)d),
                           Or + (b * H + h) * T * dv, Lr + (b * H + h) * T);
        snprintf(what, sizeof what, "LSH attention %s (3 rounds, 8 buckets, chunk 16) == written-out Reformer", causal ? "causal" : "");
        EFF_CHECK_NMSE(what, o, Or, B * H * T * dv, 1e-10);
        okl = lse_match(l, Lr, B * H * T, 1e-10, &e);
        EFF_CHECK(okl, "LSH lse (nmse %.3g)", e);
    }
    /* one chunk holding every token: each round is full attention without the diagonal, so the
       merged result is exactly that (and lse grows by log(rounds)) */
    {
        prob p;
        uint8_t *m = (uint8_t *)malloc((size_t)(T * T));
        eff_tensor Mt = eff_tensor_2d(m, EFF_U8, T, T);
        int64_t j, t2;
        int ok = 1;
        prob_init(&p, B, H, H, T, T, d, dv);
        memcpy(p.q, qk, (size_t)(B * H * T * d) * 4); memcpy(p.k, qk, (size_t)(B * H * T * d) * 4);
        memcpy(p.v, v, (size_t)(B * H * T * dv) * 4);
        for (t2 = 0; t2 < B * H * T; t2++) {   /* reference keys are the normalized vectors */
            double nn = 0;
            for (j = 0; j < d; j++) nn += (double)p.k[t2 * d + j] * p.k[t2 * d + j];
            for (j = 0; j < d; j++) p.k[t2 * d + j] = (float)(p.k[t2 * d + j] / sqrt(nn));
        }
        for (t2 = 0; t2 < T; t2++) for (j = 0; j < T; j++) m[t2 * T + j] = (uint8_t)(t2 != j);
        p.op.mask = &Mt;
        ref_run(&p, Or, Lr, NULL, NULL, NULL);
        memset(&lo, 0, sizeof lo); lo.chunk = 1000;
        EFF_CHECK_STATUS(g_ctx, eff_attn_lsh_forward(g_ctx, &O, &L, &QK, &V, &Rt, &lo), EFF_OK, "lsh one chunk");
        EFF_CHECK(eff_test_nmse(o, Or, B * H * T * dv) < 1e-10, "LSH with one chunk == full attention without the diagonal (nmse %.3g)",
                  eff_test_nmse(o, Or, B * H * T * dv));
        for (t2 = 0; t2 < B * H * T; t2++) ok &= fabs(l[t2] - (Lr[t2] + log((double)nr))) < 1e-4;
        EFF_CHECK(ok, "  ... and lse = full lse + log(rounds)");
        free(m); prob_free(&p);
    }
    free(qk); free(v); free(R); free(R2); free(o); free(l); free(Or); free(Lr);
}

/* LongNet written out in float64: per pair, gather each segment's dilated rows, softmax, merge. */
static void longnet_direct(const prob *p, const int64_t *w, const int64_t *r, int64_t np, int causal, double *o, double *lse) {
    int64_t b, h, a, s0, t, i, j, c, G = p->Hq / p->Hkv, T = p->Tq;
    double sc = 1.0 / sqrt((double)p->d), *s = dbuf(T), *oo = dbuf(p->dv);
    for (b = 0; b < p->B; b++)
        for (h = 0; h < p->Hq; h++) {
            double *O = o + (b * p->Hq + h) * T * p->dv, *L = lse + (b * p->Hq + h) * T;
            for (t = 0; t < T; t++) L[t] = -INFINITY;
            for (t = 0; t < T * p->dv; t++) O[t] = 0;
            for (a = 0; a < np; a++) {
                int64_t off = (h * r[a] / p->Hq) % r[a];
                for (s0 = 0; s0 < T; s0 += w[a])
                    for (i = s0 + off; i < s0 + w[a] && i < T; i += r[a]) {
                        const float *qi = p->q + ((b * p->Hq + h) * T + i) * p->d;
                        double mx = -INFINITY, sum = 0, l, mm, ln;
                        int64_t n = 0;
                        for (j = s0 + off; j < s0 + w[a] && j < T; j += r[a]) {
                            const float *kj = p->k + ((b * p->Hkv + h / G) * T + j) * p->d;
                            double d2 = 0;
                            for (c = 0; c < p->d; c++) d2 += (double)qi[c] * kj[c];
                            s[n] = causal && j > i ? -INFINITY : sc * d2;
                            if (s[n] > mx) mx = s[n];
                            n++;
                        }
                        for (c = 0; c < p->dv; c++) oo[c] = 0;
                        n = 0;
                        for (j = s0 + off; j < s0 + w[a] && j < T; j += r[a]) {
                            double pr = s[n] == -INFINITY ? 0 : exp(s[n] - mx);
                            n++;
                            sum += pr;
                            for (c = 0; c < p->dv; c++) oo[c] += pr * p->v[((b * p->Hkv + h / G) * T + j) * p->dv + c];
                        }
                        l = mx + log(sum);
                        mm = L[i] > l ? L[i] : l; ln = mm + log(exp(L[i] - mm) + exp(l - mm));
                        for (c = 0; c < p->dv; c++) O[i * p->dv + c] = exp(L[i] - ln) * O[i * p->dv + c] + exp(l - ln) * oo[c] / sum;
                        L[i] = ln;
                    }
            }
        }
    free(s); free(oo);
}

static void test_longnet(void) {
    const int64_t w[3] = {16, 32, 64}, r[3] = {1, 2, 4};
    int causal;
    for (causal = 0; causal < 2; causal++) {
        prob p;
        int64_t no, nl;
        double *Or, *Lr, e;
        float *o, *l;
        eff_tensor Q, K, V, O, L;
        int okl;
        char what[96];
        prob_init(&p, 2, 4, 2, 150, 150, 32, 24);
        p.op.causal = causal;
        no = 2 * 4 * 150 * 24; nl = 2 * 4 * 150;
        Or = dbuf(no); Lr = dbuf(nl); o = fbuf(no, 0); l = fbuf(nl, 0);
        Q = t4(p.q, EFF_F32, 2, 4, 150, 32); K = t4(p.k, EFF_F32, 2, 2, 150, 32); V = t4(p.v, EFF_F32, 2, 2, 150, 24);
        O = t4(o, EFF_F32, 2, 4, 150, 24); L = t3(l, EFF_F32, 2, 4, 150);
        longnet_direct(&p, w, r, 3, causal, Or, Lr);
        snprintf(what, sizeof what, "LongNet w=16,32,64 r=1,2,4 %s == written out", causal ? "causal" : "");
        EFF_CHECK_STATUS(g_ctx, eff_attn_longnet_forward(g_ctx, &O, &L, &Q, &K, &V, w, r, 3, &p.op), EFF_OK, what);
        EFF_CHECK_NMSE(what, o, Or, no, 1e-10);
        okl = lse_match(l, Lr, nl, 1e-10, &e);
        EFF_CHECK(okl, "LongNet lse (nmse %.3g)", e);
        /* one pair covering the whole sequence with r = 1 is plain attention */
        {
            int64_t wf = 150, rf = 1;
            ref_run(&p, Or, Lr, NULL, NULL, NULL);
            EFF_CHECK_STATUS(g_ctx, eff_attn_longnet_forward(g_ctx, &O, &L, &Q, &K, &V, &wf, &rf, 1, &p.op), EFF_OK, "longnet full");
            EFF_CHECK_NMSE("LongNet with (w = T, r = 1) == full attention", o, Or, no, 1e-10);
        }
        free(Or); free(Lr); free(o); free(l); prob_free(&p);
    }
}

/* ---- PyTorch SDPA fixtures (tools/gen_attn_fixtures.py) --------------------- */
static const eff_tensor *fx(const eff_safetensors *st, const char *cs, const char *nm) {
    char key[128];
    const eff_safetensors_entry *e;
    snprintf(key, sizeof key, "%s.%s", cs, nm);
    e = eff_safetensors_find(st, key);
    return e ? &e->tensor : NULL;
}
static float *f64_to_f32(const eff_tensor *t) {
    int64_t n = eff_tensor_nelements(t), i;
    float *r = (float *)malloc((size_t)(n > 0 ? n : 1) * 4);
    for (i = 0; i < n; i++) r[i] = (float)((const double *)t->data)[i];
    return r;
}
static void test_torch_fixtures(void) {
    static const char *cases[4] = {"bottom_right_gqa", "top_left", "bias_scale", "boolmask_gqa"};
    eff_safetensors st;
    int c;
    eff_status s = eff_safetensors_open(g_ctx, &st, "tests/fixtures/attn/sdpa.safetensors");
    EFF_CHECK_STATUS(g_ctx, s, EFF_OK, "open tests/fixtures/attn/sdpa.safetensors (run from the repository root)");
    if (s != EFF_OK) return;
    for (c = 0; c < 4; c++) {
        const char *cs = cases[c];
        const eff_tensor *Q = fx(&st, cs, "q"), *K = fx(&st, cs, "k"), *V = fx(&st, cs, "v"), *G = fx(&st, cs, "do");
        const eff_tensor *Ot = fx(&st, cs, "o"), *dQt = fx(&st, cs, "dq"), *dKt = fx(&st, cs, "dk"), *dVt = fx(&st, cs, "dv");
        const eff_tensor *Bt = fx(&st, cs, "bias"), *Mt = fx(&st, cs, "mask");
        char key[96], what[160];
        const char *causal, *scale;
        eff_attn_opts op;
        int64_t no, nq, nk, nv;
        double *o, *dq, *dk, *dv;
        eff_tensor O, dQ, dK, dV, Bf;
        float *bf = NULL;
        if (!Q || !K || !V || !G || !Ot || !dQt || !dKt || !dVt) { EFF_CHECK(0, "fixture case %s is incomplete", cs); continue; }
        snprintf(key, sizeof key, "%s.causal", cs); causal = eff_safetensors_meta(&st, key);
        snprintf(key, sizeof key, "%s.scale", cs); scale = eff_safetensors_meta(&st, key);
        memset(&op, 0, sizeof op);
        op.scale = scale ? atof(scale) : 0.0;
        if (causal && strcmp(causal, "bottom_right") == 0) op.causal = 1;              /* our default diagonal */
        if (causal && strcmp(causal, "top_left") == 0) { op.causal = 1; op.has_causal_offset = 1; op.causal_offset = 0; }
        if (Bt) op.bias = Bt;   /* the reference takes f64 bias */
        if (Mt) op.mask = Mt;
        no = eff_tensor_nelements(Ot); nq = eff_tensor_nelements(Q); nk = eff_tensor_nelements(K); nv = eff_tensor_nelements(V);
        o = dbuf(no); dq = dbuf(nq); dk = dbuf(nk); dv = dbuf(nv);
        O = *Ot; O.data = o; dQ = *dQt; dQ.data = dq; dK = *dKt; dK.data = dk; dV = *dVt; dV.data = dv;
        EFF_CHECK_STATUS(g_ctx, eff_attn_ref_forward(g_ctx, &O, NULL, Q, K, V, &op), EFF_OK, cs);
        EFF_CHECK_STATUS(g_ctx, eff_attn_ref_backward(g_ctx, &dQ, &dK, &dV, G, Q, K, V, &op), EFF_OK, cs);
        snprintf(what, sizeof what, "%s: reference == PyTorch SDPA (float64): O, dQ, dK, dV", cs);
        EFF_CHECK(max_rel(o, (const double *)Ot->data, no) < 1e-24 && max_rel(dq, (const double *)dQt->data, nq) < 1e-24 &&
                  max_rel(dk, (const double *)dKt->data, nk) < 1e-24 && max_rel(dv, (const double *)dVt->data, nv) < 1e-24,
                  "%s (nmse %.2g %.2g %.2g %.2g)", what, max_rel(o, (const double *)Ot->data, no), max_rel(dq, (const double *)dQt->data, nq),
                  max_rel(dk, (const double *)dKt->data, nk), max_rel(dv, (const double *)dVt->data, nv));
        {   /* flash in f32 against the same oracle */
            float *qf = f64_to_f32(Q), *kf = f64_to_f32(K), *vf = f64_to_f32(V), *gf = f64_to_f32(G);
            float *of = fbuf(no, 0), *lf = fbuf(no, 0), *dqf = fbuf(nq, 0), *dkf = fbuf(nk, 0), *dvf = fbuf(nv, 0);
            eff_tensor Qf = *Q, Kf = *K, Vf = *V, Gf = *G, Of, Lf, dQf, dKf, dVf;
            Qf = t4(qf, EFF_F32, Q->ne[0], Q->ne[1], Q->ne[2], Q->ne[3]); Kf = t4(kf, EFF_F32, K->ne[0], K->ne[1], K->ne[2], K->ne[3]);
            Vf = t4(vf, EFF_F32, V->ne[0], V->ne[1], V->ne[2], V->ne[3]); Gf = t4(gf, EFF_F32, G->ne[0], G->ne[1], G->ne[2], G->ne[3]);
            Of = t4(of, EFF_F32, Ot->ne[0], Ot->ne[1], Ot->ne[2], Ot->ne[3]); Lf = t3(lf, EFF_F32, Q->ne[0], Q->ne[1], Q->ne[2]);
            dQf = t4(dqf, EFF_F32, Q->ne[0], Q->ne[1], Q->ne[2], Q->ne[3]); dKf = t4(dkf, EFF_F32, K->ne[0], K->ne[1], K->ne[2], K->ne[3]);
            dVf = t4(dvf, EFF_F32, V->ne[0], V->ne[1], V->ne[2], V->ne[3]);
            if (Bt) { bf = f64_to_f32(Bt); Bf = t4(bf, EFF_F32, Bt->ne[0], Bt->ne[1], Bt->ne[2], Bt->ne[3]); op.bias = &Bf; }
            EFF_CHECK_STATUS(g_ctx, eff_attn_flash_forward(g_ctx, &Of, &Lf, &Qf, &Kf, &Vf, &op), EFF_OK, cs);
            EFF_CHECK_STATUS(g_ctx, eff_attn_flash_backward(g_ctx, &dQf, &dKf, &dVf, &Gf, &Qf, &Kf, &Vf, &Of, &Lf, &op), EFF_OK, cs);
            snprintf(what, sizeof what, "%s: flash (f32) == PyTorch SDPA: O", cs); EFF_CHECK_NMSE(what, of, (const double *)Ot->data, no, 1e-10);
            snprintf(what, sizeof what, "%s: flash (f32) == PyTorch SDPA: dQ", cs); EFF_CHECK_NMSE(what, dqf, (const double *)dQt->data, nq, 1e-10);
            snprintf(what, sizeof what, "%s: flash (f32) == PyTorch SDPA: dK", cs); EFF_CHECK_NMSE(what, dkf, (const double *)dKt->data, nk, 1e-10);
            snprintf(what, sizeof what, "%s: flash (f32) == PyTorch SDPA: dV", cs); EFF_CHECK_NMSE(what, dvf, (const double *)dVt->data, nv, 1e-10);
            free(qf); free(kf); free(vf); free(gf); free(of); free(lf); free(dqf); free(dkf); free(dvf); free(bf);
        }
        free(o); free(dq); free(dk); free(dv);
    }
    eff_safetensors_close(g_ctx, &st);
}

/*@@TESTS@@*/

int main(void) {
    eff_ctx_opts co;
    g_quick = getenv("EFF_TEST_QUICK") != NULL;
    memset(&co, 0, sizeof co);
    co.seed = 1;
    if (eff_ctx_create(&co, &g_ctx)) return 1;
    EFF_TEST_BEGIN("test_attn");
    printf("   SIMD %s, %d threads%s\n", EFF_SIMD_NAME, eff_ctx_n_threads(g_ctx), g_quick ? ", quick" : "");
    test_ref_conventions();
    test_empty_rows();
    test_ref_fd();
    test_torch_fixtures();
    test_flash_vs_ref();
    test_flash_strided();
    test_flash_lowp();
    test_flash_memory();
    test_naive();
    test_merge();
    test_splitkv();
    test_errors();
    test_blockmask_patterns();
    test_blockmask_misc();
    test_cache_basic();
    test_cache_paged();
    test_cache_quant();
    test_cache_window();
    test_kv_bytes();
    test_linear();
    test_linformer();
    test_lsh();
    test_longnet();
    /*@@CALLS@@*/
    EFF_CHECK(eff_ctx_bytes_in_use(g_ctx) == 0, "no leaks through the context: %zu bytes in use", eff_ctx_bytes_in_use(g_ctx));
    eff_ctx_destroy(g_ctx);
    return EFF_TEST_END();
}
