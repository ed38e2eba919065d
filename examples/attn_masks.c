/* attn_masks.c - the fixed sparse-attention patterns, drawn. One block-sparse format
   (eff_attn_blockmask: per query tile, its key tiles, each FULL or PARTIAL + a rule) holds
   all of them, and the same flash kernel runs them all.

   Each pattern is drawn for T = 32 tokens with 8 x 8 tiles: '#' a key the query sees inside
   a FULL tile (no per-element test), '+' a key it sees inside a PARTIAL tile (the kernel
   tests these elements), '.' hidden. Below each: the fraction of tiles the kernel computes
   and of elements that are visible. The row/column of the picture is query/key.

       ./attn_masks              draw the patterns
       ./attn_masks mask.svg     also write the BigBird mask as an SVG image */
#define EFF_IMPLEMENTATION
#include "eff_attn.h"
#include <stdio.h>
#include <string.h>

#define T 32
#define TILE 8
#define NPAT 8

static char pic[NPAT][T][T + 1];
static char stats[NPAT][40];

static void draw(int p, const eff_attn_blockmask *bm) {   /* tiles are bm->bq x bm->bk */
    int64_t i, j, allowed = 0;
    for (i = 0; i < T; i++) {
        for (j = 0; j < T; j++) {
            int a = eff_attn_blockmask_allowed(bm, 0, i, j);
            const int64_t *rp = bm->row_ptr;
            int64_t e, kind = 0;
            for (e = rp[i / bm->bq]; e < rp[i / bm->bq + 1]; e++) if (bm->col[e] == j / bm->bk) kind = bm->kind[e];
            pic[p][i][j] = !a ? '.' : kind == EFF_ATTN_TILE_FULL ? '#' : '+';
            allowed += a;
        }
        pic[p][i][T] = 0;
    }
    snprintf(stats[p], sizeof stats[p], "tiles %2lld/%2lld, elems %3.0f%%", (long long)(bm->row_ptr[bm->nqb] - bm->row_ptr[0]),
             (long long)(bm->nqb * bm->nkb), 100.0 * (double)allowed / (T * T));
}

int main(int argc, char **argv) {
    static const char *names[NPAT] = {"causal", "block-local (8)", "window (4 left, 2 right)", "strided (Sparse Tr., 6)",
                                      "dilated (r 8, every 2nd)", "global {0, 17} + window 2", "BigBird (block 4, 1 random)",
                                      "packed seqs 12+7+13 causal"};
    eff_ctx *ctx;
    eff_attn_blockmask bm[NPAT];
    const int64_t glob[2] = {0, 17}, lens[3] = {12, 7, 13};
    int p, row, i;
    if (eff_ctx_create(NULL, &ctx)) return 1;
    if (eff_attn_blockmask_causal(ctx, &bm[0], T, T, TILE) || eff_attn_blockmask_local(ctx, &bm[1], T, 8, 0, TILE) ||
        eff_attn_blockmask_window(ctx, &bm[2], T, 4, 2, TILE) || eff_attn_blockmask_strided(ctx, &bm[3], T, 6, TILE) ||
        eff_attn_blockmask_dilated(ctx, &bm[4], T, 8, 2, TILE) || eff_attn_blockmask_global(ctx, &bm[5], T, 2, glob, 2, TILE) ||
        eff_attn_blockmask_bigbird(ctx, &bm[6], T, 4, 1, 1, 7) || eff_attn_blockmask_varlen(ctx, &bm[7], lens, 3, 1, TILE)) {
        printf("error: %s\n", eff_ctx_last_error(ctx));
        return 1;
    }
    for (p = 0; p < NPAT; p++) draw(p, &bm[p]);
    printf("Sparse attention patterns, T = %d, tiles %d x %d ('#' full tile, '+' partial tile, '.' hidden)\n", T, TILE, TILE);
    for (row = 0; row < NPAT; row += 4) {
        printf("\n");
        for (p = row; p < row + 4; p++) printf("%-34.33s", names[p]);
        printf("\n");
        for (i = 0; i < T; i++) {
            for (p = row; p < row + 4; p++) printf("%s  ", pic[p][i]);
            printf("\n");
        }
        for (p = row; p < row + 4; p++) printf("%-34s", stats[p]);
        printf("\n");
    }
    if (argc > 1) {
        int64_t n = eff_attn_blockmask_render(&bm[6], 0, EFF_ATTN_RENDER_SVG, NULL, 0);
        char *svg = (char *)malloc((size_t)n + 1);
        FILE *f = fopen(argv[1], "w");
        eff_attn_blockmask_render(&bm[6], 0, EFF_ATTN_RENDER_SVG, svg, n + 1);
        if (f) { fputs(svg, f); fclose(f); printf("\nwrote %s (%lld bytes)\n", argv[1], (long long)n); }
        free(svg);
    }
    for (p = 0; p < NPAT; p++) eff_attn_blockmask_free(ctx, &bm[p]);
    eff_ctx_destroy(ctx);
    return 0;
}
