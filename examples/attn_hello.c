/* attn_hello.c - the ten-line program at the top of eff_attn.h: causal flash attention over
   two heads of 16 tokens. `make` builds it, so the header's usage example cannot drift. */
#define EFF_IMPLEMENTATION
#include "eff_attn.h"
#include <stdio.h>
static float q[2*16*32], k[2*16*32], v[2*16*32], o[2*16*32], l[2*16];
int main(void) {
    eff_ctx *ctx; eff_attn_opts op = {0}; eff_status s;
    eff_tensor Q = eff_tensor_4d(q, EFF_F32, 1, 2, 16, 32), K = eff_tensor_4d(k, EFF_F32, 1, 2, 16, 32);
    eff_tensor V = eff_tensor_4d(v, EFF_F32, 1, 2, 16, 32), O = eff_tensor_4d(o, EFF_F32, 1, 2, 16, 32);
    eff_tensor L = eff_tensor_3d(l, EFF_F32, 1, 2, 16);
    if (eff_ctx_create(NULL, &ctx)) return 1;
    op.causal = 1;                                    /* bottom-right diagonal */
    s = eff_attn_flash_forward(ctx, &O, &L, &Q, &K, &V, &op);
    printf("%s: lse of the first and last query = %g, %g (log 1, log 16 for zero inputs)\n", eff_status_str(s), l[0], l[15]);
    eff_ctx_destroy(ctx); return (int)s;
}
