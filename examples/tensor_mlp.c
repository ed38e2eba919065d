/* tensor_mlp.c - a two-layer MLP trained with eff_tensor.h's core ops and AdamW.

   The task: three interleaved spirals in the plane, one class each. The network
   is x[B,2] -> linear(2,64) -> GELU -> linear(64,64) -> GELU -> linear(64,3) ->
   softmax cross-entropy. Every step runs the forward ops, the backward ops in
   reverse order (parameter gradients accumulate with +=, so they are zeroed
   first), and one eff_adamw_step over each parameter buffer.

   It prints the loss falling and finally draws the learned decision regions
   as text: each character is the class the network predicts at that point. */
#define EFF_IMPLEMENTATION
#include "eff_tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { B = 384, IN = 2, H = 64, NCLS = 3, STEPS = 1500 };

typedef struct { float *w, *b, *dw, *db, *mw, *vw, *mb, *vb; int64_t out, in; } layer;

/* One buffer per parameter kind keeps the example short; a model would use an arena. */
static int layer_init(eff_ctx *ctx, layer *l, int64_t out, int64_t in) {
    size_t nw = (size_t)(out * in), nb = (size_t)out;
    float *mem = (float *)eff_ctx_calloc(ctx, (4 * nw + 4 * nb) * sizeof(float));
    float bound = 1.0f / sqrtf((float)in);   /* PyTorch's nn.Linear init range */
    if (!mem) return 1;
    l->w = mem; l->dw = l->w + nw; l->mw = l->dw + nw; l->vw = l->mw + nw;
    l->b = l->vw + nw; l->db = l->b + nb; l->mb = l->db + nb; l->vb = l->mb + nb;
    l->out = out; l->in = in;
    eff_rng_fill_uniform(eff_ctx_rng(ctx), l->w, (int64_t)nw, -bound, bound);
    eff_rng_fill_uniform(eff_ctx_rng(ctx), l->b, (int64_t)nb, -bound, bound);
    return 0;
}

/* Point i of the spiral data set: class c = i % 3, radius r grows along the arm. */
static void spiral_point(eff_rng *rng, float *x, int32_t *y) {
    int c = (int)(eff_rng_u64(rng) % NCLS);
    float r = eff_rng_uniform(rng), t = 7.0f * r + 2.0943951f * (float)c + 0.15f * eff_rng_normal(rng);
    x[0] = r * sinf(t);
    x[1] = r * cosf(t);
    *y = c;
}

#define TRY(expr) do { eff_status s_ = (expr); if (s_) { printf("%s failed: %s\n", #expr, eff_ctx_last_error(ctx)); return 1; } } while (0)

int main(void) {
    eff_ctx *ctx;
    eff_ctx_opts opts;
    layer L[3];
    static float x[B * IN], h1[B * H], a1[B * H], h2[B * H], a2[B * H], logits[B * NCLS];
    static float dlogits[B * NCLS], da2[B * H], dh2[B * H], da1[B * H], dh1[B * H];
    static int32_t y[B];
    eff_adamw_opts adam;
    int step, i, k;

    memset(&opts, 0, sizeof opts);
    opts.seed = 42;
    if (eff_ctx_create(&opts, &ctx)) return 1;
    if (layer_init(ctx, &L[0], H, IN) || layer_init(ctx, &L[1], H, H) || layer_init(ctx, &L[2], NCLS, H)) return 1;

    eff_tensor X = eff_tensor_2d(x, EFF_F32, B, IN), Y = eff_tensor_1d(y, EFF_I32, B);
    eff_tensor H1 = eff_tensor_2d(h1, EFF_F32, B, H), A1 = eff_tensor_2d(a1, EFF_F32, B, H);
    eff_tensor H2 = eff_tensor_2d(h2, EFF_F32, B, H), A2 = eff_tensor_2d(a2, EFF_F32, B, H);
    eff_tensor Z = eff_tensor_2d(logits, EFF_F32, B, NCLS), DZ = eff_tensor_2d(dlogits, EFF_F32, B, NCLS);
    eff_tensor DA2 = eff_tensor_2d(da2, EFF_F32, B, H), DH2 = eff_tensor_2d(dh2, EFF_F32, B, H);
    eff_tensor DA1 = eff_tensor_2d(da1, EFF_F32, B, H), DH1 = eff_tensor_2d(dh1, EFF_F32, B, H);
    eff_tensor W[3], Bv[3], dW[3], dB[3];
    for (k = 0; k < 3; k++) {
        W[k] = eff_tensor_2d(L[k].w, EFF_F32, L[k].out, L[k].in);
        dW[k] = eff_tensor_2d(L[k].dw, EFF_F32, L[k].out, L[k].in);
        Bv[k] = eff_tensor_1d(L[k].b, EFF_F32, L[k].out);
        dB[k] = eff_tensor_1d(L[k].db, EFF_F32, L[k].out);
    }
    memset(&adam, 0, sizeof adam);
    adam.lr = 1e-2f;
    adam.weight_decay = 1e-4f;

    printf("three-spiral classification, MLP 2-%d-%d-3 with GELU, AdamW lr %g, batch %d\n", H, H, (double)adam.lr, B);
    printf("%6s  %8s\n", "step", "loss");
    for (step = 1; step <= STEPS; step++) {
        float loss;
        for (i = 0; i < B; i++) spiral_point(eff_ctx_rng(ctx), x + IN * i, y + i);
        /* forward */
        TRY(eff_linear_forward(ctx, &H1, &X, &W[0], &Bv[0]));
        TRY(eff_gelu_forward(ctx, &A1, &H1));
        TRY(eff_linear_forward(ctx, &H2, &A1, &W[1], &Bv[1]));
        TRY(eff_gelu_forward(ctx, &A2, &H2));
        TRY(eff_linear_forward(ctx, &Z, &A2, &W[2], &Bv[2]));
        TRY(eff_cross_entropy_forward(ctx, NULL, &loss, &Z, &Y, NULL));
        /* backward: zero the parameter gradients (they accumulate), then reverse order */
        for (k = 0; k < 3; k++) {
            memset(L[k].dw, 0, (size_t)(L[k].out * L[k].in) * sizeof(float));
            memset(L[k].db, 0, (size_t)L[k].out * sizeof(float));
        }
        TRY(eff_cross_entropy_backward(ctx, &DZ, &Z, &Y, 0.0f, NULL));
        TRY(eff_linear_backward(ctx, &DA2, &dW[2], &dB[2], &DZ, &A2, &W[2]));
        TRY(eff_gelu_backward(ctx, &DH2, &DA2, &H2));
        TRY(eff_linear_backward(ctx, &DA1, &dW[1], &dB[1], &DH2, &A1, &W[1]));
        TRY(eff_gelu_backward(ctx, &DH1, &DA1, &H1));
        TRY(eff_linear_backward(ctx, NULL, &dW[0], &dB[0], &DH1, &X, &W[0]));
        /* update */
        adam.step = step;
        for (k = 0; k < 3; k++) {
            TRY(eff_adamw_step(ctx, &adam, L[k].out * L[k].in, L[k].w, EFF_F32, NULL, L[k].dw, EFF_F32, L[k].mw, L[k].vw));
            TRY(eff_adamw_step(ctx, &adam, L[k].out, L[k].b, EFF_F32, NULL, L[k].db, EFF_F32, L[k].mb, L[k].vb));
        }
        if (step == 1 || step % 150 == 0) printf("%6d  %8.4f\n", step, (double)loss);
    }

    /* Decision regions on a 61 x 25 grid over [-1, 1]^2: the class the network picks. */
    {
        enum { GW = 61, GH = 25 };
        static float gx[GW * IN], gh1[GW * H], ga1[GW * H], gh2[GW * H], ga2[GW * H], gz[GW * NCLS];
        eff_tensor GX = eff_tensor_2d(gx, EFF_F32, GW, IN), GH1 = eff_tensor_2d(gh1, EFF_F32, GW, H);
        eff_tensor GA1 = eff_tensor_2d(ga1, EFF_F32, GW, H), GH2 = eff_tensor_2d(gh2, EFF_F32, GW, H);
        eff_tensor GA2 = eff_tensor_2d(ga2, EFF_F32, GW, H), GZ = eff_tensor_2d(gz, EFF_F32, GW, NCLS);
        int correct = 0, total = 2000, r, c;
        printf("\nlearned decision regions (x right, y up; classes 'o', '+', '.'):\n");
        for (r = 0; r < GH; r++) {
            char line[GW + 1];
            for (c = 0; c < GW; c++) {
                gx[IN * c] = -1.0f + 2.0f * (float)c / (GW - 1);
                gx[IN * c + 1] = 1.0f - 2.0f * (float)r / (GH - 1);
            }
            TRY(eff_linear_forward(ctx, &GH1, &GX, &W[0], &Bv[0]));
            TRY(eff_gelu_forward(ctx, &GA1, &GH1));
            TRY(eff_linear_forward(ctx, &GH2, &GA1, &W[1], &Bv[1]));
            TRY(eff_gelu_forward(ctx, &GA2, &GH2));
            TRY(eff_linear_forward(ctx, &GZ, &GA2, &W[2], &Bv[2]));
            for (c = 0; c < GW; c++) {
                float *z = gz + NCLS * c;
                int best = z[1] > z[0] ? 1 : 0;
                if (z[2] > z[best]) best = 2;
                line[c] = "o+."[best];
            }
            line[GW] = 0;
            printf("  %s\n", line);
        }
        /* accuracy on fresh points, one row at a time through the same ops */
        for (i = 0; i < total; i++) {
            int32_t label;
            float *z = gz;
            int best;
            eff_tensor P = eff_tensor_2d(gx, EFF_F32, 1, IN), P1 = eff_tensor_2d(gh1, EFF_F32, 1, H);
            eff_tensor Q1 = eff_tensor_2d(ga1, EFF_F32, 1, H), P2 = eff_tensor_2d(gh2, EFF_F32, 1, H);
            eff_tensor Q2 = eff_tensor_2d(ga2, EFF_F32, 1, H), PZ = eff_tensor_2d(gz, EFF_F32, 1, NCLS);
            spiral_point(eff_ctx_rng(ctx), gx, &label);
            TRY(eff_linear_forward(ctx, &P1, &P, &W[0], &Bv[0]));
            TRY(eff_gelu_forward(ctx, &Q1, &P1));
            TRY(eff_linear_forward(ctx, &P2, &Q1, &W[1], &Bv[1]));
            TRY(eff_gelu_forward(ctx, &Q2, &P2));
            TRY(eff_linear_forward(ctx, &PZ, &Q2, &W[2], &Bv[2]));
            best = z[1] > z[0] ? 1 : 0;
            if (z[2] > z[best]) best = 2;
            correct += best == label;
        }
        printf("accuracy on %d fresh points: %.1f%% (the noisy spiral arms overlap a little)\n", total, 100.0 * correct / total);
    }
    for (k = 0; k < 3; k++) eff_ctx_free(ctx, L[k].w);
    printf("bytes still allocated through the context: %zu\n", eff_ctx_bytes_in_use(ctx));
    eff_ctx_destroy(ctx);
    return 0;
}
