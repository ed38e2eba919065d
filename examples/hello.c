/* hello.c - the ten-line program from the README and the top of eff_tensor.h:
   one linear layer, y = x W^T, on two rows. `make test` builds and runs it. */
#define EFF_IMPLEMENTATION
#include "eff_tensor.h"
#include <stdio.h>
int main(void) {
    eff_ctx *ctx; float x[6] = {1,2,3,4,5,6}, w[6] = {1,0,0,0,1,0}, y[4];
    if (eff_ctx_create(NULL, &ctx)) return 1;
    eff_tensor X = eff_tensor_2d(x, EFF_F32, 2, 3), W = eff_tensor_2d(w, EFF_F32, 2, 3);
    eff_tensor Y = eff_tensor_2d(y, EFF_F32, 2, 2);
    eff_status s = eff_linear_forward(ctx, &Y, &X, &W, NULL);   /* y = x W^T */
    printf("%s: %g %g %g %g\n", eff_status_str(s), y[0], y[1], y[2], y[3]);
    eff_ctx_destroy(ctx); return (int)s;
}
