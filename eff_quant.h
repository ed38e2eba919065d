/* eff_quant.h - v0.1 - model compression for eff: quantization (ggml blocks bit-exact,
   NF4/FP4, int8/int4, LLM.int8, QAT), quantized kernels, GGUF, pruning, distillation
   losses, low-rank factorization.   Public domain / MIT.

   WHAT (each section below has its own comment with the exact rules and sources)
     ggml blocks   Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q8_1 Q4_K Q6_K Q8_K, byte for byte the output
                   of ggml's reference quantizers, registered in the context's dtype
                   table so eff_linear_forward runs on quantized weights unchanged.
     kernels       activations quantized on the fly to Q8_0 / Q8_1 / Q8_K and integer
                   dot products (AVX-512 VNNI, AVX2, scalar), as ggml's CPU backend.
     NF4 / FP4     bitsandbytes 4-bit blockwise (QLoRA) with double quantization, GEMV.
     int8 / int4   affine and symmetric, per tensor / channel / group, PyTorch's rounding;
                   QAT fake-quant forward and straight-through backward.
     LLM.int8()    vector-wise int8 matmul with fp32 outlier features.
     GGUF v3       validating reader, atomic writer.
     pruning       magnitude (layer / global, gradual schedule), N:M 2:4 with a sparse
                   matmul, attention-head importance.
     distillation  KL with temperature (forward / reverse), cosine embedding loss.
     low rank      truncated SVD (one-sided Jacobi), rank by energy.

   USAGE
     In exactly one C or C++ file:
         #define EFF_QUANT_IMPLEMENTATION      (or EFF_IMPLEMENTATION for all eff headers)
         #include "eff_quant.h"
     Ten lines: quantize a weight matrix to Q4_0 and run a linear layer on it
     (examples/quant_table.c does this for every format and prints a table).

         eff_ctx *ctx; eff_tensor Wq;                  // W, X, Y: f32 eff_tensors
         if (eff_ctx_create(NULL, &ctx)) return 1;
         eff_quant_register(ctx);                      // Q* kernels into the dtype table
         eff_quant_tensor_quantize(ctx, &Wq, &W, EFF_Q4_0);   // allocates Wq
         eff_linear_forward(ctx, &Y, &X, &Wq, NULL);          // Y = X Wq^T
         eff_tensor_free(ctx, &Wq);
         eff_ctx_destroy(ctx);

   DEFINES
     EFF_QUANT_IMPLEMENTATION / EFF_IMPLEMENTATION   emit the definitions
     EFF_STATIC, EFF_MALLOC/EFF_REALLOC/EFF_FREE, EFF_NO_SIMD   as in eff_tensor.h
     Kernels are chosen at compile time: AVX-512 (F, BW, VL, VNNI), AVX2 + FMA, scalar.

   NUMERICS
     The reference quantizers must not be compiled with FMA contraction: ggml's
     reference build has none, and a fused x*id + 8.5f changes a Q4_0 code about
     once per 3e5 blocks. The quantizers carry GCC's optimize("fp-contract=off") /
     clang's "fp contract(off)", so GCC's -ffp-contract=fast is safe; clang's
     -ffp-contract=fast ignores pragmas by design (use its default "on", or
     "fast-honor-pragmas"). -ffast-math is not supported. Dot kernels are not
     bit-exact across SIMD paths (float summation order); tests bound the difference.
     GGUF assumes a little-endian host.

   VERSIONS
     0.1  ggml blocks + kernels, NF4/FP4 + double quant, affine int8/int4, QAT,
          LLM.int8(), GGUF v3, pruning, distillation losses, low-rank SVD.
*/
#ifndef EFF_QUANT_H
#define EFF_QUANT_H

#include "eff_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   ggml block formats. A row of n elements (n a multiple of the block size: 32,
   or 256 for the K formats) is stored as n/blck blocks, fields little-endian:
     Q8_0 (34 B)  f16 d; i8 qs[32]                   y = d*q
     Q8_1 (36 B)  f16 d; f16 s = d*sum(q); i8 qs[32] (activation format)
     Q4_0 (18 B)  f16 d; u8 qs[16]                   y = d*(q-8), q in 0..15
     Q4_1 (20 B)  f16 d; f16 m; u8 qs[16]            y = d*q + m
     Q5_0 (22 B)  f16 d; u8 qh[4]; u8 qs[16]         y = d*(q-16), q in 0..31
     Q5_1 (24 B)  f16 d; f16 m; u8 qh[4]; u8 qs[16]  y = d*q + m
     Q4_K (144 B) f16 d, dmin; u8 scales[12]; u8 qs[128]  8 sub-blocks of 32
     Q6_K (210 B) u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d  16 sub-blocks of 16
     Q8_K (292 B) f32 d; i8 qs[256]; i16 bsums[16]   (activation format)
   In the 32-element formats byte j holds element j (low nibble) and j+16 (high).
   Block data must be 2-byte aligned (4-byte for Q8_K).
   The bitsandbytes 4-bit codes (section "4-bit NF4 / FP4" below) also come as
   self-contained block dtypes, so a model can be quantized to them and run by
   eff_linear_forward like any ggml format:
     NF4, FP4 (36 B)  f32 absmax; u8 codes[32]  64 elements; byte j holds element
                      2j (high nibble) and 2j+1 (low), bitsandbytes' order
   Their codes and absmax are exactly those of eff_quant_4bit_quantize with
   blocksize 64 and no double quantization on a tensor whose rows are whole blocks;
   the dot runs against f32 activations (4.5 bits per weight).
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_quant_q8_0_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q8_0_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q8_1_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q8_1_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q4_0_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q4_0_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q4_1_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q4_1_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q5_0_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q5_0_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q5_1_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q5_1_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q4_k_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q4_k_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q6_k_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q6_k_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_q8_k_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_q8_k_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_nf4_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_nf4_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
EFFDEF eff_status eff_quant_fp4_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_fp4_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n);
/* The same for any of the block dtypes above, chosen by id. */
EFFDEF eff_status eff_quant_row_quantize(eff_ctx *ctx, int dtype, const float *x, void *q, int64_t n);
EFFDEF eff_status eff_quant_row_dequantize(eff_ctx *ctx, int dtype, const void *q, float *x, int64_t n);

/* Registers to_float, from_float, vec_dot and vec_dot_type of every block format
   into ctx's dtype table (ggml's pairing: Q8_0/Q4_0/Q5_0 with Q8_0 activations,
   Q4_1/Q5_1 with Q8_1, Q4_K/Q6_K with Q8_K; NF4/FP4 with f32). */
EFFDEF eff_status eff_quant_register(eff_ctx *ctx);

/* Allocates out (contiguous, same shape, dtype) and quantizes the f32 tensor in row
   by row; the last dim must be a multiple of the block size. */
EFFDEF eff_status eff_quant_tensor_quantize(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, int dtype);

/* *s = dot(w[0:n], a[0:n]) with w in a weight block format and a in its partner
   activation format (eff_quant_vec_dot_type). kernel: EFF_QUANT_KERNEL_AUTO (the
   best compiled-in SIMD kernel) or EFF_QUANT_KERNEL_SCALAR (the reference loop). */
enum { EFF_QUANT_KERNEL_AUTO = 0, EFF_QUANT_KERNEL_SCALAR = 1 };
EFFDEF eff_status eff_quant_vec_dot(eff_ctx *ctx, int dtype, int64_t n, float *s, const void *w, const void *a, int kernel);
EFFDEF int        eff_quant_vec_dot_type(int dtype);   /* -1 if dtype has no dot kernel */
EFFDEF const char *eff_quant_simd_name(void);          /* "avx512-vnni", "avx2", "scalar" */


/* ---------------------------------------------------------------------------
   4-bit NF4 / FP4 (bitsandbytes; QLoRA, Dettmers et al. 2023). The flattened
   tensor is cut into blocks of `blocksize` elements (default 64), each scaled by
   its absmax into [-1, 1] and mapped to the nearest of 16 code values:
     NF4  the normal-float table (quantiles of N(0,1), exact bitsandbytes floats);
          index = number of table midpoints strictly below the value (torch.bucketize,
          ties to the lower code), as bitsandbytes' reference backend.
     FP4  1 sign, 2 exponent, 1 mantissa bit: |v| in {0, 1/192, 1/6, 1/4, 1/3, 1/2,
          2/3, 1}, chosen by bitsandbytes' CUDA comparison tree (dQuantizeFP4, its
          literal thresholds, ties to the smaller magnitude), sign bit 8 for v < 0.
   Two codes per byte, the first element in the HIGH nibble (byte i = q[2i] << 4 |
   q[2i+1]; an odd count pads with the code of 0). Full blocks scale by
   x * (1/absmax), a short last block by x / absmax (bitsandbytes does both).
   Double quantization (compress_statistics): absmax values minus their mean
   `offset` are themselves quantized to 8 bits with the signed dynamic map in
   blocks of 256 (one fp32 scale each): 4 + 8/64 + 32/(64*256) = 4.127 bits/weight.
   --------------------------------------------------------------------------- */
typedef struct eff_quant_4bit_opts {
    int quant_type;         /* EFF_NF4 (0 means NF4) or EFF_FP4 */
    int64_t blocksize;      /* elements per absmax; 0: 64 */
    int double_quant;       /* 1: quantize the absmax values as well */
    int64_t blocksize2;     /* absmax values per second-level block; 0: 256 */
} eff_quant_4bit_opts;

typedef struct eff_quant_4bit {
    int quant_type;         /* EFF_NF4 or EFF_FP4 */
    int double_quant;
    int64_t rows, cols, n;  /* logical shape [rows, cols], n = rows * cols, row-major */
    int64_t blocksize, nblocks;
    uint8_t *codes;         /* (n + 1) / 2 bytes */
    float *absmax;          /* [nblocks]; NULL when double-quantized */
    uint8_t *qabsmax;       /* [nblocks] dynamic-map codes of absmax - offset */
    float *absmax2;         /* [nblocks2] */
    int64_t blocksize2, nblocks2;
    float offset;
} eff_quant_4bit;

/* Quantizes x[rows, cols] into q (allocates its arrays; eff_quant_4bit_free). */
EFFDEF eff_status eff_quant_4bit_quantize(eff_ctx *ctx, eff_quant_4bit *q, const float *x, int64_t rows, int64_t cols,
                                          const eff_quant_4bit_opts *opts);
EFFDEF eff_status eff_quant_4bit_dequantize(eff_ctx *ctx, const eff_quant_4bit *q, float *x);   /* x[n] */
EFFDEF eff_status eff_quant_4bit_absmax(eff_ctx *ctx, const eff_quant_4bit *q, float *absmax);  /* [nblocks] */
EFFDEF void       eff_quant_4bit_free(eff_ctx *ctx, eff_quant_4bit *q);
EFFDEF int64_t    eff_quant_4bit_nbytes(const eff_quant_4bit *q);   /* bytes of codes + statistics */
/* y[M, rows] = x[M, cols] W^T with W 4-bit (decode GEMV; OpenMP over rows). The fast
   kernels need blocksize % 32 == 0 and cols % blocksize == 0; other shapes take a
   slower element-wise path. */
EFFDEF eff_status eff_quant_4bit_gemv(eff_ctx *ctx, const eff_quant_4bit *W, const float *x, float *y, int64_t M,
                                      int kernel);   /* EFF_QUANT_KERNEL_AUTO or _SCALAR */
EFFDEF const float *eff_quant_4bit_code(int quant_type);   /* the 16 code values; NULL if not NF4/FP4 */

/* bitsandbytes' blockwise 8-bit quantization with the signed dynamic map
   (create_dynamic_map: 256 sorted values in [-0.993, 1]): absmax per block,
   nearest code with ties to the lower one. absmax has ceil(n / blocksize) entries. */
EFFDEF eff_status eff_quant_dyn8_quantize(eff_ctx *ctx, const float *x, int64_t n, int64_t blocksize, uint8_t *codes,
                                          float *absmax);
EFFDEF eff_status eff_quant_dyn8_dequantize(eff_ctx *ctx, const uint8_t *codes, const float *absmax, int64_t n,
                                            int64_t blocksize, float *x);
EFFDEF const float *eff_quant_dyn8_code(void);   /* the 256 values */


/* ---------------------------------------------------------------------------
   Affine (zero-point) and symmetric (absmax) integer quantization, int8 / int4,
   per tensor, per output channel (row) or per group of `group_size` elements
   along a row. PyTorch's rules throughout (Jacob et al. 2018; torch 2.x sources):
     quantize  q = clamp(Z + nearbyint(x * (1.0f / S)), qmin, qmax)   round half to
               even (the current FP rounding mode, default), then clamp;
     dequant   x = (q - Z) * S;
     qparams   MinMaxObserver: the range is widened to include 0;
               affine    S = max((max - min) / (qmax - qmin), eps),
                         Z = clamp(qmin - round_half_even(min / S), qmin, qmax);
               symmetric S = max(max(-min, max) / ((qmax - qmin) / 2), eps), Z = 0
                         (unsigned: 128 for 8 bits as quint8, else (qmin+qmax)/2
                         rounded down, PyTorch's customized-range rule);
               eps = FLT_EPSILON. Ranges: int8 [-128, 127], uint8 [0, 255],
               int4 [-8, 7], uint4 [0, 15].
   4-bit values are packed two per byte, element 2i in the LOW nibble (torch's
   quint4x2 order), signed values as two's complement nibbles.
   --------------------------------------------------------------------------- */
enum { EFF_QSCHEME_AFFINE = 0, EFF_QSCHEME_SYMMETRIC = 1 };
enum { EFF_QGRAN_TENSOR = 0, EFF_QGRAN_CHANNEL = 1, EFF_QGRAN_GROUP = 2 };

typedef struct eff_quant_int_opts {
    int bits;               /* 8 or 4; 0: 8 */
    int is_unsigned;        /* 0: signed range, 1: unsigned range */
    int scheme;             /* EFF_QSCHEME_AFFINE (default) or EFF_QSCHEME_SYMMETRIC */
    int granularity;        /* EFF_QGRAN_TENSOR (default), _CHANNEL (one per row), _GROUP */
    int64_t group_size;     /* EFF_QGRAN_GROUP: must divide cols; 0: 128 */
} eff_quant_int_opts;

typedef struct eff_quant_int {
    int bits, is_unsigned, scheme, granularity;
    int qmin, qmax;
    int64_t rows, cols, n;
    int64_t group_size;     /* elements sharing one (scale, zero): n, cols or the group size */
    int64_t ngroups;
    float *scale;           /* [ngroups] */
    int32_t *zero;          /* [ngroups] */
    uint8_t *data;          /* 8 bits: n bytes (int8_t or uint8_t); 4 bits: (n + 1) / 2 bytes */
} eff_quant_int;

/* The qparams PyTorch's MinMaxObserver computes for x[0:n] (one group). */
EFFDEF eff_status eff_quant_int_qparams(eff_ctx *ctx, const float *x, int64_t n, int qmin, int qmax, int scheme,
                                        int is_unsigned, float *scale, int32_t *zero);
/* Computes qparams per group and quantizes x[rows, cols] into q (allocated). */
EFFDEF eff_status eff_quant_int_quantize(eff_ctx *ctx, eff_quant_int *q, const float *x, int64_t rows, int64_t cols,
                                         const eff_quant_int_opts *opts);
EFFDEF eff_status eff_quant_int_dequantize(eff_ctx *ctx, const eff_quant_int *q, float *x);   /* x[n] */
EFFDEF eff_status eff_quant_int_values(eff_ctx *ctx, const eff_quant_int *q, int32_t *v);     /* v[n], unpacked */
EFFDEF void       eff_quant_int_free(eff_ctx *ctx, eff_quant_int *q);

/* Reconstruction error of xq against x: mse, nmse = mse / mean(x^2), max |x - xq|,
   SQNR in dB = 10 log10(sum x^2 / sum (x - xq)^2). */
typedef struct eff_quant_stats { double mse, nmse, max_abs_err, sqnr_db; } eff_quant_stats;
EFFDEF eff_status eff_quant_error_stats(eff_ctx *ctx, const float *x, const float *xq, int64_t n, eff_quant_stats *st);

/* QAT fake quantization (torch.fake_quantize_per_{tensor,channel}_affine):
   y = (clamp(nearbyint(x / S) + Z, qmin, qmax) - Z) * S, elements [g*group_size,
   (g+1)*group_size) using scale[g], zero[g] (group_size = n: per tensor; = cols:
   per output channel of a row-major [rows, cols] weight). Backward is the
   straight-through estimator: dx = dy where qmin <= nearbyint(x / S) + Z <= qmax,
   0 outside (the clamp's gradient). dx is written (=). */
EFFDEF eff_status eff_quant_fake_forward(eff_ctx *ctx, float *y, const float *x, int64_t n, int64_t group_size,
                                         const float *scale, const int32_t *zero, int qmin, int qmax);
EFFDEF eff_status eff_quant_fake_backward(eff_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n,
                                          int64_t group_size, const float *scale, const int32_t *zero, int qmin, int qmax);

/* ---------------------------------------------------------------------------
   LLM.int8() (Dettmers et al. 2022), bitsandbytes' reference rules: vector-wise
   int8 with a mixed-precision decomposition. A column j of X with any
   |X[i, j]| >= threshold is an outlier feature: those elements are zeroed before
   the row statistics, the column's int8 codes are 0, and its contribution is
   computed in fp32 as X[:, cols] W[:, cols]^T with W dequantized from int8.
     row_stats[i] = max_j |X'[i, j]|,  q = round_half_even(X' * (127 / row_stats))
     Y = (float)(Xq Wq^T) * (row_stats[i] * scb[j]) * 6.200124e-05 (+ bias) + outliers
   W is quantized the same way row by row (scb = absmax of each output row, which
   is LLM.int8's column-wise quantization of W^T). threshold <= 0 disables the
   decomposition (bitsandbytes' default); the paper uses 6.0.
   --------------------------------------------------------------------------- */
#define EFF_QUANT_LLM_INT8_THRESHOLD 6.0f
typedef struct eff_quant_llm_int8 {
    int64_t rows, cols;     /* W [rows = out features, cols = in features] */
    int8_t *q;              /* [rows, cols] */
    float *scb;             /* [rows] absmax per row */
} eff_quant_llm_int8;

/* bitsandbytes' int8_vectorwise_quant: q[M, K], row_stats[M]; outlier_cols[K] (may be
   NULL) gets 1 for outlier columns. */
EFFDEF eff_status eff_quant_llm_int8_rowwise(eff_ctx *ctx, int8_t *q, float *row_stats, uint8_t *outlier_cols,
                                             const float *X, int64_t M, int64_t K, float threshold);
EFFDEF eff_status eff_quant_llm_int8_weight(eff_ctx *ctx, eff_quant_llm_int8 *w, const float *W, int64_t rows, int64_t cols);
EFFDEF void       eff_quant_llm_int8_free(eff_ctx *ctx, eff_quant_llm_int8 *w);
/* Y[M, rows] = X[M, cols] W^T + bias (bias may be NULL); *n_outliers (may be NULL)
   gets the number of outlier columns. */
EFFDEF eff_status eff_quant_llm_int8_matmul(eff_ctx *ctx, float *Y, const float *X, int64_t M, const eff_quant_llm_int8 *W,
                                            const float *bias, float threshold, int64_t *n_outliers);


/* ---------------------------------------------------------------------------
   GGUF v3 (ggml's container; docs/gguf.md). Little-endian:
     "GGUF" u32 version(3) u64 n_tensors u64 n_kv
     n_kv x  { string key; u32 type; value }       string = u64 length + bytes (no NUL)
     n_tensors x { string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset }
     zero padding to `alignment`, then the data section; each tensor at `offset`
     from the data section start, aligned, padded to the alignment.
   ne[0] is the innermost dimension (ggml order; the reverse of PyTorch's shape).
   alignment = general.alignment (u32, a power of two), default 32.
   The reader checks every field against the file before exposing anything:
   magic, version (2 or 3; 1 and byte-swapped rejected), counts against the bytes
   left, value types, bool 0/1, no nested arrays, string lengths, duplicate keys,
   tensor name length (< 64) and uniqueness, n_dims <= 4, ne >= 0 without overflow,
   ggml type known, ne[0] a multiple of the block size, offsets aligned, inside the
   file and non-overlapping. Errors are EFF_ERR_FORMAT with the field and offset.
   Host byte order must be little-endian (x86, ARM).
   --------------------------------------------------------------------------- */
enum {
    EFF_GGUF_U8 = 0, EFF_GGUF_I8 = 1, EFF_GGUF_U16 = 2, EFF_GGUF_I16 = 3, EFF_GGUF_U32 = 4, EFF_GGUF_I32 = 5,
    EFF_GGUF_F32 = 6, EFF_GGUF_BOOL = 7, EFF_GGUF_STRING = 8, EFF_GGUF_ARRAY = 9, EFF_GGUF_U64 = 10,
    EFF_GGUF_I64 = 11, EFF_GGUF_F64 = 12, EFF_GGUF_TYPE_COUNT = 13
};
#define EFF_GGUF_DEFAULT_ALIGNMENT 32
#define EFF_GGUF_MAX_NAME 64            /* tensor names are shorter (ggml's GGML_MAX_NAME) */

typedef struct eff_quant_gguf_str { const char *str; uint64_t len; } eff_quant_gguf_str;

/* A metadata value. Scalars in the matching union member (bool in b as 0/1);
   strings in str/len (NUL-terminated in the reader); arrays: elem_type, count and
   either data (count packed little-endian numbers) or strs (count strings). */
typedef struct eff_quant_gguf_value {
    int type;
    int elem_type;
    uint64_t count;
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; int b; } v;
    const char *str;
    uint64_t len;
    const void *data;
    const eff_quant_gguf_str *strs;
} eff_quant_gguf_value;

typedef struct eff_quant_gguf_kv { const char *key; eff_quant_gguf_value value; } eff_quant_gguf_kv;

typedef struct eff_quant_gguf_tensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[4];          /* ggml order, ne[0] innermost; unused dims are 1 */
    uint32_t ggml_type;
    int dtype;              /* eff dtype id, or -1 if eff has no such type */
    uint64_t offset;        /* from the start of the data section */
    uint64_t nbytes;
    const void *data;       /* inside the file image */
} eff_quant_gguf_tensor;

typedef struct eff_quant_gguf {
    uint32_t version;
    uint64_t alignment;
    int64_t n_kv, n_tensors;
    eff_quant_gguf_kv *kv;
    eff_quant_gguf_tensor *tensors;
    uint64_t data_offset;   /* file offset of the data section */
    eff_file_map map;       /* eff_quant_gguf_open; unused for open_memory */
    const unsigned char *image;
    int64_t size;
    void *pool;             /* one allocation: kv, tensors, strings, arrays */
} eff_quant_gguf;

EFFDEF eff_status eff_quant_gguf_open(eff_ctx *ctx, eff_quant_gguf *g, const char *path);
/* The same over a buffer in memory (not copied; it must outlive g). */
EFFDEF eff_status eff_quant_gguf_open_memory(eff_ctx *ctx, eff_quant_gguf *g, const void *data, int64_t size);
EFFDEF void       eff_quant_gguf_close(eff_ctx *ctx, eff_quant_gguf *g);
EFFDEF const eff_quant_gguf_kv *eff_quant_gguf_find_kv(const eff_quant_gguf *g, const char *key);             /* NULL if absent */
EFFDEF const eff_quant_gguf_tensor *eff_quant_gguf_find_tensor(const eff_quant_gguf *g, const char *name);   /* NULL if absent */
/* A read-only eff_tensor view of a tensor whose type eff knows (shape in PyTorch order). */
EFFDEF eff_status eff_quant_gguf_tensor_view(eff_ctx *ctx, const eff_quant_gguf_tensor *ti, eff_tensor *out);
/* ggml type ids: name, block size, bytes per block (0 for unknown/removed ids) and
   the mapping to and from eff dtypes (-1 / -1 if none). */
EFFDEF const char *eff_quant_gguf_type_name(uint32_t ggml_type);
EFFDEF int64_t     eff_quant_gguf_type_blck(uint32_t ggml_type);
EFFDEF int64_t     eff_quant_gguf_type_size(uint32_t ggml_type);
EFFDEF int         eff_quant_gguf_type_to_dtype(uint32_t ggml_type);
EFFDEF int64_t     eff_quant_gguf_type_from_dtype(int dtype);

/* Writer: collect metadata and tensors, then write atomically (eff_file_writer).
   Keys keep insertion order; setting a key again replaces its value. Tensor data
   is not copied: it must stay valid until eff_quant_gguf_writer_write. */
typedef struct eff_quant_gguf_writer {
    eff_quant_gguf_kv *kv;
    int64_t n_kv, cap_kv;
    eff_quant_gguf_tensor *tensors;
    int64_t n_tensors, cap_tensors;
} eff_quant_gguf_writer;
EFFDEF void       eff_quant_gguf_writer_init(eff_quant_gguf_writer *w);
EFFDEF eff_status eff_quant_gguf_writer_set(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, const eff_quant_gguf_value *v);
EFFDEF eff_status eff_quant_gguf_writer_set_u32(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, uint32_t v);
EFFDEF eff_status eff_quant_gguf_writer_set_f32(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, float v);
EFFDEF eff_status eff_quant_gguf_writer_set_str(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, const char *v);
/* ne in ggml order (ne[0] innermost), n_dims 1..4. */
EFFDEF eff_status eff_quant_gguf_writer_add_tensor(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *name, uint32_t ggml_type,
                                                   uint32_t n_dims, const int64_t *ne, const void *data);
EFFDEF eff_status eff_quant_gguf_writer_write(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *path);
EFFDEF void       eff_quant_gguf_writer_free(eff_ctx *ctx, eff_quant_gguf_writer *w);


/* ---------------------------------------------------------------------------
   Pruning. Masks are uint8 (1 = keep).
   Magnitude (unstructured): the k = nearbyint(sparsity * n) weights of smallest
   |w| are pruned (torch.nn.utils.prune's count rule; ties go to the lower index,
   so the result is deterministic). Global: one threshold over several tensors.
   Gradual schedule (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f) (1 - p)^3,
   p = clamp((t - t0) / (n_steps * dt), 0, 1).
   N:M semi-structured (2:4, Mishra et al. 2021): in each group of M consecutive
   weights of a row keep the N of largest |w| (ties: lower index). Compressed:
   the kept values [rows, cols * N / M] plus each one's position 0..M-1 in its group
   (eff's own layout; cuSPARSELt's metadata interleaving is opaque).
   Head importance (Michel et al. 2019): with a gate xi_h on each head's output,
   dL/dxi_h = sum_t <Att_h(x)_t, dL/dAtt_h(x)_t>; importance = mean over batches of
   |dL/dxi_h|, l2-normalized within each layer.
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_quant_prune_magnitude(eff_ctx *ctx, uint8_t *mask, const float *w, int64_t n, double sparsity);
EFFDEF eff_status eff_quant_prune_magnitude_global(eff_ctx *ctx, uint8_t *const *masks, const float *const *ws,
                                                   const int64_t *ns, int64_t ntensors, double sparsity);
EFFDEF eff_status eff_quant_prune_apply(eff_ctx *ctx, float *w, const uint8_t *mask, int64_t n);   /* w[i] = 0 where !mask[i] */
EFFDEF double     eff_quant_prune_schedule(double s_initial, double s_final, int64_t t, int64_t t0, int64_t n_steps, int64_t dt);

typedef struct eff_quant_nm {
    int64_t rows, cols;
    int n, m;               /* keep n of every m */
    float *values;          /* [rows, cols / m * n] */
    uint8_t *idx;           /* [rows, cols / m * n] position inside the group */
} eff_quant_nm;
EFFDEF eff_status eff_quant_nm_prune(eff_ctx *ctx, eff_quant_nm *out, const float *w, int64_t rows, int64_t cols, int n, int m);
EFFDEF eff_status eff_quant_nm_decompress(eff_ctx *ctx, const eff_quant_nm *s, float *w);   /* dense [rows, cols] */
/* Y[M, rows] = X[M, cols] W^T (+ bias) reading only the kept weights. */
EFFDEF eff_status eff_quant_nm_matmul(eff_ctx *ctx, float *Y, const float *X, int64_t M, const eff_quant_nm *W, const float *bias);
EFFDEF void       eff_quant_nm_free(eff_ctx *ctx, eff_quant_nm *s);

/* gate_grad[h] = sum over T tokens of <att[t, h, :], datt[t, h, :]> (att, datt [T, H, D]). */
EFFDEF eff_status eff_quant_head_gate_grad(eff_ctx *ctx, float *gate_grad, const float *att, const float *datt,
                                           int64_t T, int64_t H, int64_t D);
/* importance[L, H] = l2-normalized per layer of mean_b |gate_grads[b, L, H]|. */
EFFDEF eff_status eff_quant_head_importance(eff_ctx *ctx, float *importance, const float *gate_grads, int64_t B, int64_t L, int64_t H);

/* ---------------------------------------------------------------------------
   Distillation losses over logits [N, V] (rows are examples).
   Hinton et al. 2015: p = softmax(teacher / T), q = softmax(student / T),
     forward KL  loss = T^2 / N * sum_i KL(p_i || q_i)   (F.kl_div(log q, p, "batchmean") * T^2)
     reverse KL  loss = T^2 / N * sum_i KL(q_i || p_i)   (MiniLLM, Gu et al. 2023)
   The T^2 keeps gradient magnitudes comparable across temperatures:
     forward dL/ds = T / N * (q - p).
   Cosine embedding loss (DistilBERT): loss = mean_i (1 - cos(hs_i, ht_i)) over [N, D].
   Backward writes dstudent (=), scaled by dloss.
   --------------------------------------------------------------------------- */
typedef struct eff_quant_distill_opts {
    float temperature;      /* 0: 1 */
    int reverse;            /* 1: KL(student || teacher) */
} eff_quant_distill_opts;
EFFDEF eff_status eff_quant_distill_kl_forward(eff_ctx *ctx, float *loss, const float *student, const float *teacher,
                                               int64_t N, int64_t V, const eff_quant_distill_opts *opts);
EFFDEF eff_status eff_quant_distill_kl_backward(eff_ctx *ctx, float *dstudent, const float *student, const float *teacher,
                                                int64_t N, int64_t V, float dloss, const eff_quant_distill_opts *opts);
EFFDEF eff_status eff_quant_distill_cosine_forward(eff_ctx *ctx, float *loss, const float *hs, const float *ht, int64_t N, int64_t D);
EFFDEF eff_status eff_quant_distill_cosine_backward(eff_ctx *ctx, float *dhs, const float *hs, const float *ht, int64_t N, int64_t D,
                                                    float dloss);

/* ---------------------------------------------------------------------------
   Low-rank compression. eff_quant_svd: one-sided Jacobi (Hestenes 1958) in double,
   A[m, n] = U diag(S) Vt with k = min(m, n), U [m, k], S [k] descending, Vt [k, n];
   any of U, Vt may be NULL. eff_quant_lowrank: A ~ B C with B = U_r sqrt(S_r) [m, r]
   and C = sqrt(S_r) Vt_r [r, n]; rank r given, or (rank == 0) the smallest r with
   sum_{i<r} S_i^2 >= energy * sum S_i^2. rel_err = ||A - BC||_F / ||A||_F, which
   equals sqrt(sum_{i>=r} S_i^2 / sum S_i^2) (Eckart-Young). Fewer parameters iff
   r < m n / (m + n).
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_quant_svd(eff_ctx *ctx, const float *A, int64_t m, int64_t n, float *U, float *S, float *Vt);
EFFDEF eff_status eff_quant_lowrank(eff_ctx *ctx, const float *A, int64_t m, int64_t n, int64_t rank, double energy,
                                    float *B, float *C, int64_t *rank_out, double *rel_err);

#ifdef __cplusplus
}
#endif
#endif /* EFF_QUANT_H */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_QUANT_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_QUANT_IMPLEMENTED)
#define EFF_QUANT_IMPLEMENTED
#ifndef EFF__WANT_INTERNALS
#define EFF__WANT_INTERNALS
#endif
#include "eff_tensor.h"

#if !defined(EFF_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EFF__Q_AVX2 1
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define EFF__Q_VNNI 1       /* 256-bit vpdpbusd through AVX512VL */
#define EFF__Q_AVX512 1
#elif defined(__AVX512F__) && defined(__AVX512BW__)
#define EFF__Q_AVX512 1
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* No FMA contraction in the reference quantizers (see NUMERICS above). */
#if defined(__GNUC__) && !defined(__clang__)
#define EFF__NOCONTRACT __attribute__((optimize("fp-contract=off")))
#define EFF__FP_STRICT
#elif defined(__clang__)
#define EFF__NOCONTRACT
#define EFF__FP_STRICT _Pragma("clang fp contract(off)")
#else
#define EFF__NOCONTRACT
#define EFF__FP_STRICT
#endif

/* eff_ctx_alloc has recorded why it failed; the context struct is opaque outside
   eff_tensor.h's implementation, so report OOM with the caller's name.
   TODO(eff_tensor.h): an eff_ctx_last_status(ctx) accessor would keep the status. */
static eff_status eff__oom(eff_ctx *ctx, const char *fn) {
    return eff_ctx_error(ctx, EFF_ERR_OOM, "%s: out of memory", fn);
}

/* ---------------------------------------------------------------------------
   Block structs (ggml-common.h layouts; sizes are checked below)
   --------------------------------------------------------------------------- */
typedef struct { uint16_t d; int8_t qs[32]; } eff__bq8_0;
typedef struct { uint16_t d, s; int8_t qs[32]; } eff__bq8_1;
typedef struct { uint16_t d; uint8_t qs[16]; } eff__bq4_0;
typedef struct { uint16_t d, m; uint8_t qs[16]; } eff__bq4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } eff__bq5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } eff__bq5_1;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } eff__bq4_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } eff__bq6_k;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } eff__bq8_k;
typedef char eff__q_size_check[(sizeof(eff__bq8_0) == 34 && sizeof(eff__bq8_1) == 36 && sizeof(eff__bq4_0) == 18 &&
                                sizeof(eff__bq4_1) == 20 && sizeof(eff__bq5_0) == 22 && sizeof(eff__bq5_1) == 24 &&
                                sizeof(eff__bq4_k) == 144 && sizeof(eff__bq6_k) == 210 && sizeof(eff__bq8_k) == 292) ? 1 : -1];

#define EFF__H2F(h) eff_fp16_to_fp32(h)
#define EFF__F2H(f) eff_fp32_to_fp16(f)
#ifdef __F16C__
#define EFF__H2F_FAST(h) _cvtsh_ss(h)
#else
#define EFF__H2F_FAST(h) eff_fp16_to_fp32(h)
#endif

/* ggml's nearest_int: round half to even through the 1.5*2^23 trick (|f| < 2^22). */
EFF__INLINE int eff__nearest_int(float f) {
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}
/* (int)(v) truncation for v in [0, hi], saturating (and NaN -> 0) so that bad input
   is never undefined behaviour; identical to ggml's casts on its valid range. */
EFF__INLINE int eff__trunc_sat(float v, int hi) {
    if (!(v >= 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* ---------------------------------------------------------------------------
   Reference quantizers (ggml's quantize_row_*_ref, same operation order)
   --------------------------------------------------------------------------- */
static EFF__NOCONTRACT void eff__quantize_q8_0(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq8_0 *y = (eff__bq8_0 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, x += 32) {
        float amax = 0.0f, d, id;
        int j;
        for (j = 0; j < 32; j++) { float a = fabsf(x[j]); amax = amax > a ? amax : a; }
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = EFF__F2H(d);
        for (j = 0; j < 32; j++) {
            float v = roundf(x[j] * id);
            y[i].qs[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
        }
    }
}

static EFF__NOCONTRACT void eff__quantize_q8_1(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq8_1 *y = (eff__bq8_1 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, x += 32) {
        float amax = 0.0f, d, id;
        int j, sum = 0;
        for (j = 0; j < 32; j++) { float a = fabsf(x[j]); amax = amax > a ? amax : a; }
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = EFF__F2H(d);
        for (j = 0; j < 32; j++) {
            float v = roundf(x[j] * id);
            y[i].qs[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v);
            sum += y[i].qs[j];
        }
        y[i].s = EFF__F2H((float)sum * d);
    }
}

/* Signed value of largest magnitude; the first one wins ties (ggml: amax < |v|). */
EFF__INLINE float eff__signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    int j;
    for (j = 0; j < n; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

static EFF__NOCONTRACT void eff__quantize_q4_0(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq4_0 *y = (eff__bq4_0 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, x += 32) {
        float d = eff__signed_absmax(x, 32) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int j;
        y[i].d = EFF__F2H(d);
        for (j = 0; j < 16; j++) {
            float x0 = x[j] * id, x1 = x[j + 16] * id;
            int q0 = eff__trunc_sat(x0 + 8.5f, 15), q1 = eff__trunc_sat(x1 + 8.5f, 15);
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static EFF__NOCONTRACT void eff__quantize_q4_1(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq4_1 *y = (eff__bq4_1 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX, d, id;
        int j;
        for (j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
        d = (max - min) / 15.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = EFF__F2H(d);
        y[i].m = EFF__F2H(min);
        for (j = 0; j < 16; j++) {
            float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
            int q0 = eff__trunc_sat(x0 + 0.5f, 15), q1 = eff__trunc_sat(x1 + 0.5f, 15);
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static EFF__NOCONTRACT void eff__quantize_q5_0(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq5_0 *y = (eff__bq5_0 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, x += 32) {
        float d = eff__signed_absmax(x, 32) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        int j;
        y[i].d = EFF__F2H(d);
        for (j = 0; j < 16; j++) {
            float x0 = x[j] * id, x1 = x[j + 16] * id;
            int q0 = eff__trunc_sat(x0 + 16.5f, 31), q1 = eff__trunc_sat(x1 + 16.5f, 31);
            y[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (j = 0; j < 4; j++) y[i].qh[j] = (uint8_t)(qh >> (8 * j));
    }
}

static EFF__NOCONTRACT void eff__quantize_q5_1(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq5_1 *y = (eff__bq5_1 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX, d, id;
        uint32_t qh = 0;
        int j;
        for (j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
        d = (max - min) / 31.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = EFF__F2H(d);
        y[i].m = EFF__F2H(min);
        for (j = 0; j < 16; j++) {
            float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
            int q0 = eff__trunc_sat(x0 + 0.5f, 31), q1 = eff__trunc_sat(x1 + 0.5f, 31);
            y[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (j = 0; j < 4; j++) y[i].qh[j] = (uint8_t)(qh >> (8 * j));
    }
}

static EFF__NOCONTRACT void eff__quantize_q8_k(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq8_k *y = (eff__bq8_k *)vq;
    int64_t i, nb = n / 256;
    for (i = 0; i < nb; i++, x += 256) {
        float max = eff__signed_absmax(x, 256), iscale;
        int j, g;
        if (max == 0.0f) { memset(&y[i], 0, sizeof y[i]); continue; }
        iscale = -127.0f / max;
        for (j = 0; j < 256; j++) {
            int v = eff__nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
        }
        for (g = 0; g < 16; g++) {
            int sum = 0;
            for (j = 0; j < 16; j++) sum += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ggml's make_qkx2_quants: scale and min of an asymmetric nmax-level quantizer for
   x[0:n] by a grid search over the scale with a weighted least-squares refit of
   (scale, min) at each step. Returns the scale; *the_min gets -min (>= 0). */
static EFF__NOCONTRACT float eff__make_qkx2(int n, int nmax, const float *x, const float *w, uint8_t *L,
                                            float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    EFF__FP_STRICT
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0], iscale, scale, best_error = 0.0f;
    int i, is;
    for (i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) min = 0.0f;
    if (max == min) {
        for (i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    iscale = (float)nmax / (max - min);
    scale = 1.0f / iscale;
    for (i = 0; i < n; i++) {
        int l = eff__nearest_int(iscale * (x[i] - min));
        float diff;
        L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
        diff = scale * (float)L[i] + min - x[i];
        diff = diff * diff;
        best_error += w[i] * diff;
    }
    for (is = 0; is <= nstep; is++) {
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f, D;
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        for (i = 0; i < n; i++) {
            int l = eff__nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0.0f) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            float cur_error = 0.0f;
            if (this_min > 0.0f) { this_min = 0.0f; this_scale = sum_xl / sum_l2; }
            for (i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += w[i] * diff;
            }
            if (cur_error < best_error) {
                for (i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ggml's make_qx_quants with rmse_type 1 (weights x^2) and no importance matrix:
   symmetric scale for codes in [-nmax, nmax-1] chosen among 19 candidates. */
static EFF__NOCONTRACT float eff__make_qx(int n, int nmax, const float *x, int8_t *L) {
    EFF__FP_STRICT
    float max = eff__signed_absmax(x, n), iscale, sumlx = 0.0f, suml2 = 0.0f, scale, best;
    int i, is;
    if (fabsf(max) < 1e-15f) {
        for (i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    iscale = (float)-nmax / max;
    for (i = 0; i < n; i++) {
        int l = eff__nearest_int(iscale * x[i]);
        float w = x[i] * x[i];
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    best = scale * sumlx;
    for (is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0.0f;
        for (i = 0; i < n; i++) {
            int l = eff__nearest_int(iscale * x[i]);
            float w = x[i] * x[i];
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
            for (i = 0; i < n; i++) {
                int l = eff__nearest_int(iscale * x[i]);
                l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
                L[i] = (int8_t)(l + nmax);
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* 6-bit scale and min of sub-block j from the 12 packed bytes of a Q4_K block. */
EFF__INLINE void eff__q4k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) { *sc = q[j] & 63; *m = q[j + 4] & 63; }
    else { *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

static EFF__NOCONTRACT void eff__quantize_q4_k(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq4_k *y = (eff__bq4_k *)vq;
    int64_t i, nb = n / 256;
    uint8_t L[256], Laux[32];
    float w[32], mins[8], scales[8];
    for (i = 0; i < nb; i++, x += 256) {
        float max_scale = 0.0f, max_min = 0.0f, inv_scale, inv_min, dd, dm;
        int j, l;
        uint8_t *q;
        for (j = 0; j < 8; j++) {
            float sum_x2 = 0.0f, av_x;
            for (l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            av_x = sqrtf(sum_x2 / 32.0f);
            for (l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = eff__make_qkx2(32, 15, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
        inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
        for (j = 0; j < 8; j++) {
            /* ggml stores nearest_int into a uint8_t before MIN(63, .) */
            uint8_t ls = (uint8_t)eff__nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)eff__nearest_int(inv_min * mins[j]);
            ls = ls < 63 ? ls : 63;
            lm = lm < 63 ? lm : 63;
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
                y[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                y[i].scales[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        y[i].d = EFF__F2H(max_scale / 63.0f);
        y[i].dmin = EFF__F2H(max_min / 63.0f);
        dd = EFF__H2F(y[i].d);
        dm = EFF__H2F(y[i].dmin);
        for (j = 0; j < 8; j++) {
            int sc, m;
            float d, dmj;
            eff__q4k_scale_min(j, y[i].scales, &sc, &m);
            d = dd * (float)sc;
            if (d == 0.0f) continue;
            dmj = dm * (float)m;
            for (l = 0; l < 32; l++) {
                int v = eff__nearest_int((x[32 * j + l] + dmj) / d);
                L[32 * j + l] = (uint8_t)(v < 0 ? 0 : v > 15 ? 15 : v);
            }
        }
        q = y[i].qs;
        for (j = 0; j < 256; j += 64, q += 32)
            for (l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
    }
}

static EFF__NOCONTRACT void eff__quantize_q6_k(const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    eff__bq6_k *y = (eff__bq6_k *)vq;
    int64_t i, nb = n / 256;
    int8_t L[256];
    float scales[16];
    for (i = 0; i < nb; i++, x += 256) {
        float max_scale = 0.0f, max_abs_scale = 0.0f, iscale, dd;
        int ib, j, l;
        uint8_t *ql, *qh;
        for (ib = 0; ib < 16; ib++) {
            scales[ib] = eff__make_qx(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) { max_abs_scale = fabsf(scales[ib]); max_scale = scales[ib]; }
        }
        if (max_abs_scale < 1e-15f) { memset(&y[i], 0, sizeof y[i]); continue; }
        iscale = -128.0f / max_scale;
        y[i].d = EFF__F2H(1.0f / iscale);
        for (ib = 0; ib < 16; ib++) {
            int v = eff__nearest_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
        }
        dd = EFF__H2F(y[i].d);
        for (j = 0; j < 16; j++) {
            float d = dd * (float)y[i].scales[j];
            if (d == 0.0f) continue;
            for (l = 0; l < 16; l++) {
                int v = eff__nearest_int(x[16 * j + l] / d);
                L[16 * j + l] = (int8_t)((v < -32 ? -32 : v > 31 ? 31 : v) + 32);
            }
        }
        ql = y[i].ql; qh = y[i].qh;
        for (j = 0; j < 256; j += 128, ql += 64, qh += 32)
            for (l = 0; l < 32; l++) {
                int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 15) | (q3 & 15) << 4);
                ql[l + 32] = (uint8_t)((q2 & 15) | (q4 & 15) << 4);
                qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
    }
}

/* ---------------------------------------------------------------------------
   Dequantizers (ggml's dequantize_row_*: the same products, no fused ops)
   --------------------------------------------------------------------------- */
static EFF__NOCONTRACT void eff__dequantize_q8_0(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq8_0 *x = (const eff__bq8_0 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, y += 32) {
        float d = EFF__H2F(x[i].d);
        int j;
        for (j = 0; j < 32; j++) y[j] = (float)x[i].qs[j] * d;
    }
}
static EFF__NOCONTRACT void eff__dequantize_q8_1(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq8_1 *x = (const eff__bq8_1 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, y += 32) {
        float d = EFF__H2F(x[i].d);
        int j;
        for (j = 0; j < 32; j++) y[j] = (float)x[i].qs[j] * d;
    }
}
static EFF__NOCONTRACT void eff__dequantize_q4_0(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq4_0 *x = (const eff__bq4_0 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, y += 32) {
        float d = EFF__H2F(x[i].d);
        int j;
        for (j = 0; j < 16; j++) {
            y[j] = (float)((x[i].qs[j] & 15) - 8) * d;
            y[j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}
static EFF__NOCONTRACT void eff__dequantize_q4_1(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq4_1 *x = (const eff__bq4_1 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, y += 32) {
        float d = EFF__H2F(x[i].d), m = EFF__H2F(x[i].m);
        int j;
        for (j = 0; j < 16; j++) {
            y[j] = (float)(x[i].qs[j] & 15) * d + m;
            y[j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}
EFF__INLINE uint32_t eff__le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static EFF__NOCONTRACT void eff__dequantize_q5_0(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq5_0 *x = (const eff__bq5_0 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, y += 32) {
        float d = EFF__H2F(x[i].d);
        uint32_t qh = eff__le32(x[i].qh);
        int j;
        for (j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(((x[i].qs[j] & 15) | h0) - 16) * d;
            y[j + 16] = (float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}
static EFF__NOCONTRACT void eff__dequantize_q5_1(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq5_1 *x = (const eff__bq5_1 *)vq;
    int64_t i, nb = n / 32;
    for (i = 0; i < nb; i++, y += 32) {
        float d = EFF__H2F(x[i].d), m = EFF__H2F(x[i].m);
        uint32_t qh = eff__le32(x[i].qh);
        int j;
        for (j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)((x[i].qs[j] & 15) | h0) * d + m;
            y[j + 16] = (float)((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}
static EFF__NOCONTRACT void eff__dequantize_q4_k(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq4_k *x = (const eff__bq4_k *)vq;
    int64_t i, nb = n / 256;
    for (i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        float d = EFF__H2F(x[i].d), dmin = EFF__H2F(x[i].dmin);
        int j, l;
        for (j = 0; j < 8; j += 2, q += 32) {
            int sc, m;
            float d1, m1, d2, m2;
            eff__q4k_scale_min(j, x[i].scales, &sc, &m);
            d1 = d * (float)sc; m1 = dmin * (float)m;
            eff__q4k_scale_min(j + 1, x[i].scales, &sc, &m);
            d2 = d * (float)sc; m2 = dmin * (float)m;
            for (l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 15) - m1;
            for (l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}
static EFF__NOCONTRACT void eff__dequantize_q6_k(const void *vq, float *y, int64_t n) {
    EFF__FP_STRICT
    const eff__bq6_k *x = (const eff__bq6_k *)vq;
    int64_t i, nb = n / 256;
    for (i = 0; i < nb; i++) {
        float d = EFF__H2F(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        int h, l;
        for (h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8)
            for (l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
    }
}
static void eff__dequantize_q8_k(const void *vq, float *y, int64_t n) {
    const eff__bq8_k *x = (const eff__bq8_k *)vq;
    int64_t i, nb = n / 256;
    for (i = 0; i < nb; i++, y += 256) {
        int j;
        for (j = 0; j < 256; j++) y[j] = x[i].d * (float)x[i].qs[j];
    }
}

/* ---------------------------------------------------------------------------
   Dot kernels. Scalar reference versions: exact int32 sums per block, then
   sumf += isum * (d_w * d_a) in block order (ggml's generic kernels).
   --------------------------------------------------------------------------- */
static void eff__dot_q8_0_q8_0_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq8_0 *w = (const eff__bq8_0 *)vw, *a = (const eff__bq8_0 *)va;
    int64_t i, nb = n / 32;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        int j, isum = 0;
        for (j = 0; j < 32; j++) isum += w[i].qs[j] * a[i].qs[j];
        sumf += (float)isum * (EFF__H2F(w[i].d) * EFF__H2F(a[i].d));
    }
    *s = sumf;
}
static void eff__dot_q4_0_q8_0_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_0 *w = (const eff__bq4_0 *)vw;
    const eff__bq8_0 *a = (const eff__bq8_0 *)va;
    int64_t i, nb = n / 32;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        int j, isum = 0;
        for (j = 0; j < 16; j++)
            isum += ((w[i].qs[j] & 15) - 8) * a[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
        sumf += (float)isum * (EFF__H2F(w[i].d) * EFF__H2F(a[i].d));
    }
    *s = sumf;
}
static void eff__dot_q4_1_q8_1_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_1 *w = (const eff__bq4_1 *)vw;
    const eff__bq8_1 *a = (const eff__bq8_1 *)va;
    int64_t i, nb = n / 32;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        int j, isum = 0;
        for (j = 0; j < 16; j++) isum += (w[i].qs[j] & 15) * a[i].qs[j] + (w[i].qs[j] >> 4) * a[i].qs[j + 16];
        sumf += (EFF__H2F(w[i].d) * EFF__H2F(a[i].d)) * (float)isum + EFF__H2F(w[i].m) * EFF__H2F(a[i].s);
    }
    *s = sumf;
}
static void eff__dot_q5_0_q8_0_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq5_0 *w = (const eff__bq5_0 *)vw;
    const eff__bq8_0 *a = (const eff__bq8_0 *)va;
    int64_t i, nb = n / 32;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        uint32_t qh = eff__le32(w[i].qh);
        int j, isum = 0;
        for (j = 0; j < 16; j++) {
            int q0 = ((w[i].qs[j] & 15) | (int)((qh >> j) & 1) << 4) - 16;
            int q1 = ((w[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
            isum += q0 * a[i].qs[j] + q1 * a[i].qs[j + 16];
        }
        sumf += (float)isum * (EFF__H2F(w[i].d) * EFF__H2F(a[i].d));
    }
    *s = sumf;
}
static void eff__dot_q5_1_q8_1_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq5_1 *w = (const eff__bq5_1 *)vw;
    const eff__bq8_1 *a = (const eff__bq8_1 *)va;
    int64_t i, nb = n / 32;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        uint32_t qh = eff__le32(w[i].qh);
        int j, isum = 0;
        for (j = 0; j < 16; j++) {
            int q0 = (w[i].qs[j] & 15) | (int)((qh >> j) & 1) << 4;
            int q1 = (w[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            isum += q0 * a[i].qs[j] + q1 * a[i].qs[j + 16];
        }
        sumf += (EFF__H2F(w[i].d) * EFF__H2F(a[i].d)) * (float)isum + EFF__H2F(w[i].m) * EFF__H2F(a[i].s);
    }
    *s = sumf;
}
/* Q4_K: sum_j d*sc_j*sum(q*a) - dmin*m_j*sum(a); sum(a) of a 32-sub-block is two bsums. */
static void eff__dot_q4_k_q8_k_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_k *w = (const eff__bq4_k *)vw;
    const eff__bq8_k *a = (const eff__bq8_k *)va;
    int64_t i, nb = n / 256;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        const uint8_t *q = w[i].qs;
        const int8_t *qa = a[i].qs;
        int j, l, sumi = 0, summs = 0;
        for (j = 0; j < 8; j += 2, q += 32, qa += 64) {
            int sc0, m0, sc1, m1, i0 = 0, i1 = 0;
            eff__q4k_scale_min(j, w[i].scales, &sc0, &m0);
            eff__q4k_scale_min(j + 1, w[i].scales, &sc1, &m1);
            for (l = 0; l < 32; l++) { i0 += (q[l] & 15) * qa[l]; i1 += (q[l] >> 4) * qa[l + 32]; }
            sumi += sc0 * i0 + sc1 * i1;
            summs += m0 * (a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]) + m1 * (a[i].bsums[2 * j + 2] + a[i].bsums[2 * j + 3]);
        }
        sumf += a[i].d * EFF__H2F(w[i].d) * (float)sumi - a[i].d * EFF__H2F(w[i].dmin) * (float)summs;
    }
    *s = sumf;
}
static void eff__dot_q6_k_q8_k_ref(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq6_k *w = (const eff__bq6_k *)vw;
    const eff__bq8_k *a = (const eff__bq8_k *)va;
    int64_t i, nb = n / 256;
    float sumf = 0.0f;
    for (i = 0; i < nb; i++) {
        const uint8_t *ql = w[i].ql, *qh = w[i].qh;
        const int8_t *sc = w[i].scales, *qa = a[i].qs;
        int h, l, isum = 0;
        for (h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, qa += 128) {
            int g[8] = {0, 0, 0, 0, 0, 0, 0, 0}, k;
            for (l = 0; l < 32; l++) {
                int is = l / 16;
                g[is] += (((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32) * qa[l];
                g[is + 2] += (((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32) * qa[l + 32];
                g[is + 4] += (((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32) * qa[l + 64];
                g[is + 6] += (((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32) * qa[l + 96];
            }
            for (k = 0; k < 8; k++) isum += sc[k] * g[k];
        }
        sumf += EFF__H2F(w[i].d) * a[i].d * (float)isum;
    }
    *s = sumf;
}

#ifdef EFF__Q_AVX2
/* ---- AVX2 / AVX-512 VNNI kernels: one 32-element block per 256-bit vector ---- */
EFF__INLINE int eff__hsum256_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}
/* 8 int32 lanes summing u[k]*s[k] over groups of 4 bytes: u unsigned (<= 255, or
   <= 127 without VNNI so maddubs cannot saturate), s signed. */
EFF__INLINE __m256i eff__dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#ifdef EFF__Q_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
/* Signed x signed: |x| times y with x's sign (x, y in [-127, 127]). */
EFF__INLINE __m256i eff__dot_s8s8(__m256i acc, __m256i x, __m256i y) {
    return eff__dot_u8s8(acc, _mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}
/* 32 nibbles of 16 bytes as 32 bytes: low nibbles first (elements 0..15), then high. */
EFF__INLINE __m256i eff__nibbles32(const uint8_t *p) {
    __m128i t = _mm_loadu_si128((const __m128i *)p);
    __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(15));
}

static void eff__dot_q8_0_q8_0_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq8_0 *w = (const eff__bq8_0 *)vw, *a = (const eff__bq8_0 *)va;
    int64_t i = 0, nb = n / 32;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 2 <= nb; i += 2) {
        __m256i p0 = eff__dot_s8s8(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)w[i].qs),
                                   _mm256_loadu_si256((const __m256i *)a[i].qs));
        __m256i p1 = eff__dot_s8s8(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)w[i + 1].qs),
                                   _mm256_loadu_si256((const __m256i *)a[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i + 1].d) * EFF__H2F_FAST(a[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        __m256i p0 = eff__dot_s8s8(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)w[i].qs),
                                   _mm256_loadu_si256((const __m256i *)a[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p0), acc0);
    }
    *s = eff__hsum256(_mm256_add_ps(acc0, acc1));
}

/* q in 0..15 unsigned: sum (q-8)*a = sum q*a - 8*sum a = dot(q, a) + dot(8, -a). */
EFF__INLINE __m256i eff__dot_q4_centered(__m256i q, __m256i a, __m256i c8) {
    __m256i acc = eff__dot_u8s8(_mm256_setzero_si256(), q, a);
    return eff__dot_u8s8(acc, c8, _mm256_sub_epi8(_mm256_setzero_si256(), a));
}
static void eff__dot_q4_0_q8_0_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_0 *w = (const eff__bq4_0 *)vw;
    const eff__bq8_0 *a = (const eff__bq8_0 *)va;
    int64_t i = 0, nb = n / 32;
    const __m256i c8 = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 2 <= nb; i += 2) {
        __m256i p0 = eff__dot_q4_centered(eff__nibbles32(w[i].qs), _mm256_loadu_si256((const __m256i *)a[i].qs), c8);
        __m256i p1 = eff__dot_q4_centered(eff__nibbles32(w[i + 1].qs), _mm256_loadu_si256((const __m256i *)a[i + 1].qs), c8);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i + 1].d) * EFF__H2F_FAST(a[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; i < nb; i++) {
        __m256i p0 = eff__dot_q4_centered(eff__nibbles32(w[i].qs), _mm256_loadu_si256((const __m256i *)a[i].qs), c8);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p0), acc0);
    }
    *s = eff__hsum256(_mm256_add_ps(acc0, acc1));
}

static void eff__dot_q4_1_q8_1_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_1 *w = (const eff__bq4_1 *)vw;
    const eff__bq8_1 *a = (const eff__bq8_1 *)va;
    int64_t i, nb = n / 32;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (i = 0; i < nb; i++) {
        __m256i p = eff__dot_u8s8(_mm256_setzero_si256(), eff__nibbles32(w[i].qs), _mm256_loadu_si256((const __m256i *)a[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p), acc);
        summ += EFF__H2F_FAST(w[i].m) * EFF__H2F_FAST(a[i].s);
    }
    *s = eff__hsum256(acc) + summ;
}

/* The fifth bits of a Q5 block as 0x10 bytes in element order. */
EFF__INLINE __m256i eff__q5_high(const uint8_t *qh4) {
    uint32_t qh = eff__le32(qh4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll, 0x0101010101010101ll, 0);
    const __m256i bits = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);   /* byte k = qh byte k/8 */
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);             /* 0xFF where bit set */
    return _mm256_and_si256(v, _mm256_set1_epi8(16));
}
static void eff__dot_q5_0_q8_0_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq5_0 *w = (const eff__bq5_0 *)vw;
    const eff__bq8_0 *a = (const eff__bq8_0 *)va;
    int64_t i, nb = n / 32;
    const __m256i c16 = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i < nb; i++) {
        __m256i q = _mm256_or_si256(eff__nibbles32(w[i].qs), eff__q5_high(w[i].qh));
        __m256i av = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i p = eff__dot_u8s8(_mm256_setzero_si256(), q, av);
        p = eff__dot_u8s8(p, c16, _mm256_sub_epi8(_mm256_setzero_si256(), av));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p), acc);
    }
    *s = eff__hsum256(acc);
}
static void eff__dot_q5_1_q8_1_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq5_1 *w = (const eff__bq5_1 *)vw;
    const eff__bq8_1 *a = (const eff__bq8_1 *)va;
    int64_t i, nb = n / 32;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (i = 0; i < nb; i++) {
        __m256i q = _mm256_or_si256(eff__nibbles32(w[i].qs), eff__q5_high(w[i].qh));
        __m256i p = eff__dot_u8s8(_mm256_setzero_si256(), q, _mm256_loadu_si256((const __m256i *)a[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * EFF__H2F_FAST(a[i].d)), _mm256_cvtepi32_ps(p), acc);
        summ += EFF__H2F_FAST(w[i].m) * EFF__H2F_FAST(a[i].s);
    }
    *s = eff__hsum256(acc) + summ;
}

/* Q4_K x Q8_K: maddubs(q, a) gives int16 pairs (|.| <= 2*15*127), madd with the
   sub-block scale folds the scale into the int32 sum. The 12 packed bytes become
   8 scales and 8 mins with four 32-bit mask operations (the layout of
   eff__q4k_scale_min, four sub-blocks per word), and the min term
   sum_j m_j * (bsums[2j] + bsums[2j+1]) is one madd of bsums with [m0 m0 m1 m1 ...]. */
static const uint8_t eff__q4k_bcast[8][32] = {
#define EFF__B2(j) 2 * (j), 2 * (j) + 1
#define EFF__ROW(j) {EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), \
                     EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j), EFF__B2(j)}
    EFF__ROW(0), EFF__ROW(1), EFF__ROW(2), EFF__ROW(3), EFF__ROW(4), EFF__ROW(5), EFF__ROW(6), EFF__ROW(7)
#undef EFF__ROW
#undef EFF__B2
};
static void eff__dot_q4_k_q8_k_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_k *w = (const eff__bq4_k *)vw;
    const eff__bq8_k *a = (const eff__bq8_k *)va;
    int64_t i, nb = n / 256;
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (i = 0; i < nb; i++) {
        const uint8_t *q = w[i].qs;
        const int8_t *qa = a[i].qs;
        uint32_t u[3], sc_lo, sc_hi, mn_lo, mn_hi;
        __m128i sm, mins;
        __m256i sc16, mins16, sumi = _mm256_setzero_si256();
        int j;
        memcpy(u, w[i].scales, 12);
        sc_lo = u[0] & 0x3f3f3f3fu;
        mn_lo = u[1] & 0x3f3f3f3fu;
        sc_hi = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
        mn_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
        sm = _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);        /* bytes: 8 scales, 8 mins */
        sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));                  /* 8 int16 scales, twice */
        mins = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));                            /* 8 int16 mins */
        mins16 = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
        accm = _mm256_fmadd_ps(_mm256_set1_ps(a[i].d * EFF__H2F_FAST(w[i].dmin)),
                               _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)a[i].bsums), mins16)), accm);
        for (j = 0; j < 8; j += 2, q += 32, qa += 64) {
            __m256i b = _mm256_loadu_si256((const __m256i *)q);
            __m256i lo = _mm256_and_si256(b, m4), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
            __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)qa));
            __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(qa + 32)));
            __m256i s0 = _mm256_shuffle_epi8(sc16, _mm256_loadu_si256((const __m256i *)eff__q4k_bcast[j]));
            __m256i s1 = _mm256_shuffle_epi8(sc16, _mm256_loadu_si256((const __m256i *)eff__q4k_bcast[j + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(a[i].d * EFF__H2F_FAST(w[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = eff__hsum256(acc) - eff__hsum256(accm);
}

/* Q6_K x Q8_K: q in 0..63; sum (q-32)*a*sc = madd(maddubs(q, a), sc) - 32*sum_g sc_g*bsum_g. */
static void eff__dot_q6_k_q8_k_simd(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq6_k *w = (const eff__bq6_k *)vw;
    const eff__bq8_k *a = (const eff__bq8_k *)va;
    int64_t i, nb = n / 256;
    const __m256i m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3 << 4);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i < nb; i++) {
        const uint8_t *ql = w[i].ql, *qh = w[i].qh;
        const int8_t *sc = w[i].scales, *qa = a[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        int h, g, corr = 0;
        for (g = 0; g < 16; g++) corr += sc[g] * a[i].bsums[g];
        for (h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, qa += 128) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m3));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m3));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m3));
            __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(hb, 2), m3));
            /* each 32-byte vector covers two 16-element groups: scales sc[k], sc[k+1] per 128-bit half */
            __m256i s1 = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
            __m256i s2 = _mm256_set_m128i(_mm_set1_epi16(sc[3]), _mm_set1_epi16(sc[2]));
            __m256i s3 = _mm256_set_m128i(_mm_set1_epi16(sc[5]), _mm_set1_epi16(sc[4]));
            __m256i s4 = _mm256_set_m128i(_mm_set1_epi16(sc[7]), _mm_set1_epi16(sc[6]));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)qa)), s1));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(qa + 32))), s2));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(qa + 64))), s3));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q4, _mm256_loadu_si256((const __m256i *)(qa + 96))), s4));
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(EFF__H2F_FAST(w[i].d) * a[i].d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = eff__hsum256(acc);
}
#endif /* EFF__Q_AVX2 */

#ifdef EFF__Q_VNNI
/* ---- AVX-512 VNNI kernels for Q8_0 and Q4_0: 16 blocks per step. Two blocks
   share a zmm; their int32 partial sums are reduced by a transpose tree into one
   lane per block, and the 16 fp16 scales of weights and activations are packed
   and converted at once, so the per-block scalar work of the 256-bit kernels
   (two fp16 conversions, a broadcast, a horizontal add) disappears. ---- */

/* After the reduction, lane L holds block 4*(L%4) + L/4 (eff__scales16 uses that order). */

/* P[k] holds blocks 2k and 2k+1; SPLIT: 128-bit chunks 0,2 are block 2k and 1,3
   block 2k+1; otherwise chunks 0,1 and 2,3. Returns 16 per-block sums. */
#define EFF__REDUCE16(NAME, IMM_A, IMM_B)                                                         \
    EFF__INLINE __m512i NAME(const __m512i *P) {                                                  \
        __m512i R0 = _mm512_add_epi32(_mm512_shuffle_i64x2(P[0], P[1], IMM_A), _mm512_shuffle_i64x2(P[0], P[1], IMM_B)); \
        __m512i R1 = _mm512_add_epi32(_mm512_shuffle_i64x2(P[2], P[3], IMM_A), _mm512_shuffle_i64x2(P[2], P[3], IMM_B)); \
        __m512i R2 = _mm512_add_epi32(_mm512_shuffle_i64x2(P[4], P[5], IMM_A), _mm512_shuffle_i64x2(P[4], P[5], IMM_B)); \
        __m512i R3 = _mm512_add_epi32(_mm512_shuffle_i64x2(P[6], P[7], IMM_A), _mm512_shuffle_i64x2(P[6], P[7], IMM_B)); \
        __m512i S0 = _mm512_add_epi32(_mm512_unpacklo_epi32(R0, R1), _mm512_unpackhi_epi32(R0, R1)); \
        __m512i S1 = _mm512_add_epi32(_mm512_unpacklo_epi32(R2, R3), _mm512_unpackhi_epi32(R2, R3)); \
        return _mm512_add_epi32(_mm512_unpacklo_epi64(S0, S1), _mm512_unpackhi_epi64(S0, S1));  \
    }
EFF__REDUCE16(eff__reduce16_split, _MM_SHUFFLE(1, 0, 1, 0), _MM_SHUFFLE(3, 2, 3, 2))
EFF__REDUCE16(eff__reduce16_pairs, _MM_SHUFFLE(2, 0, 2, 0), _MM_SHUFFLE(3, 1, 3, 1))
#undef EFF__REDUCE16

/* The fp16 scales of 16 blocks (block k at p + stride*k) in the reduced-lane order,
   as floats. Packing them with scalar loads into four 64-bit words and converting
   once is twice as fast on Zen 4/5 as vpgatherdd. */
EFF__INLINE uint64_t eff__ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
EFF__INLINE __m512 eff__scales16(const void *vp, int64_t st) {
    const uint8_t *p = (const uint8_t *)vp;
#define EFF__H(k) eff__ld16(p + st * (k))
    uint64_t a = EFF__H(0) | EFF__H(4) << 16 | EFF__H(8) << 32 | EFF__H(12) << 48;
    uint64_t b = EFF__H(1) | EFF__H(5) << 16 | EFF__H(9) << 32 | EFF__H(13) << 48;
    uint64_t c = EFF__H(2) | EFF__H(6) << 16 | EFF__H(10) << 32 | EFF__H(14) << 48;
    uint64_t d = EFF__H(3) | EFF__H(7) << 16 | EFF__H(11) << 32 | EFF__H(15) << 48;
#undef EFF__H
    return _mm512_cvtph_ps(_mm256_set_epi64x((long long)d, (long long)c, (long long)b, (long long)a));
}

static void eff__dot_q8_0_q8_0_avx512(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq8_0 *w = (const eff__bq8_0 *)vw, *a = (const eff__bq8_0 *)va;
    int64_t g = 0, nb = n / 32;
    const __m512i flip = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    float tail = 0.0f;
    for (; g + 16 <= nb; g += 16) {
        __m512i P[8];
        int k;
        for (k = 0; k < 8; k++) {
            const eff__bq8_0 *wb = w + g + 2 * k, *ab = a + g + 2 * k;
            __m512i W = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)wb[0].qs)),
                                           _mm256_loadu_si256((const __m256i *)wb[1].qs), 1);
            __m512i A = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)ab[0].qs)),
                                           _mm256_loadu_si256((const __m256i *)ab[1].qs), 1);
            /* sum w*a = sum (w+128)*a - 128*sum a, with w+128 = w ^ 0x80 as unsigned */
            __m512i p = _mm512_dpbusd_epi32(zero, _mm512_xor_si512(W, flip), A);
            P[k] = _mm512_dpbusd_epi32(p, flip, _mm512_sub_epi8(zero, A));
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(eff__reduce16_pairs(P)),
                              _mm512_mul_ps(eff__scales16(w + g, 34), eff__scales16(a + g, 34)), acc);
    }
    if (g < nb) eff__dot_q8_0_q8_0_simd((nb - g) * 32, &tail, w + g, a + g);
    *s = _mm512_reduce_add_ps(acc) + tail;
}

static void eff__dot_q4_0_q8_0_avx512(int64_t n, float *s, const void *vw, const void *va) {
    const eff__bq4_0 *w = (const eff__bq4_0 *)vw;
    const eff__bq8_0 *a = (const eff__bq8_0 *)va;
    int64_t g = 0, nb = n / 32;
    const __m512i m4 = _mm512_set1_epi8(15), c8 = _mm512_set1_epi8(8), zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    float tail = 0.0f;
    for (; g + 16 <= nb; g += 16) {
        __m512i P[8];
        int k;
        for (k = 0; k < 8; k++) {
            const eff__bq4_0 *wb = w + g + 2 * k;
            const eff__bq8_0 *ab = a + g + 2 * k;
            __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)wb[0].qs)),
                                                _mm_loadu_si128((const __m128i *)wb[1].qs), 1);
            /* chunks: low nibbles of block 2k, of 2k+1, high nibbles of 2k, of 2k+1 */
            __m512i q = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(y), _mm256_srli_epi16(y, 4), 1), m4);
            __m512i A = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)ab[0].qs)),
                                           _mm256_loadu_si256((const __m256i *)ab[1].qs), 1);
            __m512i p;
            A = _mm512_shuffle_i64x2(A, A, _MM_SHUFFLE(3, 1, 2, 0));   /* match the weight chunks */
            p = _mm512_dpbusd_epi32(zero, q, A);                       /* sum q*a ...            */
            P[k] = _mm512_dpbusd_epi32(p, c8, _mm512_sub_epi8(zero, A)); /* ... - 8*sum a         */
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(eff__reduce16_split(P)),
                              _mm512_mul_ps(eff__scales16(w + g, 18), eff__scales16(a + g, 34)), acc);
    }
    if (g < nb) eff__dot_q4_0_q8_0_simd((nb - g) * 32, &tail, w + g, a + g);
    *s = _mm512_reduce_add_ps(acc) + tail;
}
#endif /* EFF__Q_VNNI */


/* ---------------------------------------------------------------------------
   Format table, public wrappers, registration
   --------------------------------------------------------------------------- */
typedef struct {
    int dtype;
    eff_from_float_fn quantize;
    eff_to_float_fn dequantize;
    eff_vec_dot_fn dot_ref, dot_simd;
    int vec_dot_type;           /* -1: activation-only format */
} eff__qformat;

#ifdef EFF__Q_AVX2
#define EFF__QSIMD(name) name##_simd
#else
#define EFF__QSIMD(name) name##_ref
#endif
#ifdef EFF__Q_VNNI
#define EFF__QBEST(name) name##_avx512
#else
#define EFF__QBEST(name) EFF__QSIMD(name)
#endif
/* The bitsandbytes 4-bit block dtypes (defined with the NF4 / FP4 section). */
static void eff__quantize_nf4(const float *x, void *vq, int64_t n);
static void eff__quantize_fp4(const float *x, void *vq, int64_t n);
static void eff__dequantize_nf4(const void *vq, float *y, int64_t n);
static void eff__dequantize_fp4(const void *vq, float *y, int64_t n);
static void eff__dot_nf4_f32_ref(int64_t n, float *s, const void *vw, const void *va);
static void eff__dot_fp4_f32_ref(int64_t n, float *s, const void *vw, const void *va);
static void eff__dot_nf4_f32_simd(int64_t n, float *s, const void *vw, const void *va);
static void eff__dot_fp4_f32_simd(int64_t n, float *s, const void *vw, const void *va);

static const eff__qformat eff__qformats[] = {
    {EFF_Q8_0, eff__quantize_q8_0, eff__dequantize_q8_0, eff__dot_q8_0_q8_0_ref, EFF__QBEST(eff__dot_q8_0_q8_0), EFF_Q8_0},
    {EFF_Q4_0, eff__quantize_q4_0, eff__dequantize_q4_0, eff__dot_q4_0_q8_0_ref, EFF__QBEST(eff__dot_q4_0_q8_0), EFF_Q8_0},
    {EFF_Q4_1, eff__quantize_q4_1, eff__dequantize_q4_1, eff__dot_q4_1_q8_1_ref, EFF__QSIMD(eff__dot_q4_1_q8_1), EFF_Q8_1},
    {EFF_Q5_0, eff__quantize_q5_0, eff__dequantize_q5_0, eff__dot_q5_0_q8_0_ref, EFF__QSIMD(eff__dot_q5_0_q8_0), EFF_Q8_0},
    {EFF_Q5_1, eff__quantize_q5_1, eff__dequantize_q5_1, eff__dot_q5_1_q8_1_ref, EFF__QSIMD(eff__dot_q5_1_q8_1), EFF_Q8_1},
    {EFF_Q8_1, eff__quantize_q8_1, eff__dequantize_q8_1, NULL, NULL, -1},
    {EFF_Q4_K, eff__quantize_q4_k, eff__dequantize_q4_k, eff__dot_q4_k_q8_k_ref, EFF__QSIMD(eff__dot_q4_k_q8_k), EFF_Q8_K},
    {EFF_Q6_K, eff__quantize_q6_k, eff__dequantize_q6_k, eff__dot_q6_k_q8_k_ref, EFF__QSIMD(eff__dot_q6_k_q8_k), EFF_Q8_K},
    {EFF_Q8_K, eff__quantize_q8_k, eff__dequantize_q8_k, NULL, NULL, -1},
    {EFF_NF4, eff__quantize_nf4, eff__dequantize_nf4, eff__dot_nf4_f32_ref, eff__dot_nf4_f32_simd, EFF_F32},
    {EFF_FP4, eff__quantize_fp4, eff__dequantize_fp4, eff__dot_fp4_f32_ref, eff__dot_fp4_f32_simd, EFF_F32},
};
#define EFF__NQFORMATS ((int)(sizeof eff__qformats / sizeof eff__qformats[0]))

static const eff__qformat *eff__qformat_of(int dtype) {
    int i;
    for (i = 0; i < EFF__NQFORMATS; i++)
        if (eff__qformats[i].dtype == dtype) return &eff__qformats[i];
    return NULL;
}

static eff_status eff__check_row(eff_ctx *ctx, const char *fn, int dtype, const void *src, const void *dst, int64_t n) {
    const char *name = eff_dtype_name(dtype);
    EFF__CHECK(ctx, eff__qformat_of(dtype) != NULL, EFF_ERR_DTYPE, "%s: 'dtype' %d (%s) is not a block format", fn,
               dtype, name ? name : "unknown");
    EFF__CHECK(ctx, n >= 0, EFF_ERR_INVALID_ARG, "%s: 'n' = %lld is negative", fn, (long long)n);
    EFF__CHECK(ctx, n % eff_dtype_blck_size(dtype) == 0, EFF_ERR_SHAPE,
               "%s: 'n' = %lld is not a multiple of the %s block size %lld", fn, (long long)n, name,
               (long long)eff_dtype_blck_size(dtype));
    EFF__CHECK(ctx, n == 0 || src != NULL, EFF_ERR_INVALID_ARG, "%s: source pointer is NULL", fn);
    EFF__CHECK(ctx, n == 0 || dst != NULL, EFF_ERR_INVALID_ARG, "%s: destination pointer is NULL", fn);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_row_quantize(eff_ctx *ctx, int dtype, const float *x, void *q, int64_t n) {
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_row(ctx, "eff_quant_row_quantize", dtype, x, q, n));
    if (n) eff__qformat_of(dtype)->quantize(x, q, n);
    return EFF_OK;
}
EFFDEF eff_status eff_quant_row_dequantize(eff_ctx *ctx, int dtype, const void *q, float *x, int64_t n) {
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_row(ctx, "eff_quant_row_dequantize", dtype, q, x, n));
    if (n) eff__qformat_of(dtype)->dequantize(q, x, n);
    return EFF_OK;
}

#define EFF__QWRAP(lname, DT)                                                                         \
    EFFDEF eff_status eff_quant_##lname##_quantize(eff_ctx *ctx, const float *x, void *q, int64_t n) { \
        EFF__CHECK_PTR(ctx, ctx);                                                                     \
        EFF__TRY(eff__check_row(ctx, "eff_quant_" #lname "_quantize", DT, x, q, n));                  \
        if (n) eff__quantize_##lname(x, q, n);                                                        \
        return EFF_OK;                                                                                \
    }                                                                                                 \
    EFFDEF eff_status eff_quant_##lname##_dequantize(eff_ctx *ctx, const void *q, float *x, int64_t n) { \
        EFF__CHECK_PTR(ctx, ctx);                                                                     \
        EFF__TRY(eff__check_row(ctx, "eff_quant_" #lname "_dequantize", DT, q, x, n));                \
        if (n) eff__dequantize_##lname(q, x, n);                                                      \
        return EFF_OK;                                                                                \
    }
EFF__QWRAP(q8_0, EFF_Q8_0)
EFF__QWRAP(q8_1, EFF_Q8_1)
EFF__QWRAP(q4_0, EFF_Q4_0)
EFF__QWRAP(q4_1, EFF_Q4_1)
EFF__QWRAP(q5_0, EFF_Q5_0)
EFF__QWRAP(q5_1, EFF_Q5_1)
EFF__QWRAP(q4_k, EFF_Q4_K)
EFF__QWRAP(q6_k, EFF_Q6_K)
EFF__QWRAP(nf4, EFF_NF4)
EFF__QWRAP(fp4, EFF_FP4)
EFF__QWRAP(q8_k, EFF_Q8_K)
#undef EFF__QWRAP

EFFDEF eff_status eff_quant_register(eff_ctx *ctx) {
    int i;
    EFF__CHECK_PTR(ctx, ctx);
    for (i = 0; i < EFF__NQFORMATS; i++) {
        const eff__qformat *f = &eff__qformats[i];
        eff_dtype_traits t;
        memset(&t, 0, sizeof t);
        t.name = eff_dtype_name(f->dtype);
        t.blck_size = eff_dtype_blck_size(f->dtype);
        t.type_size = eff_dtype_type_size(f->dtype);
        t.is_quantized = 1;
        t.to_float = f->dequantize;
        t.from_float = f->quantize;
        t.vec_dot = f->dot_simd;
        t.vec_dot_type = f->vec_dot_type >= 0 ? f->vec_dot_type : EFF_F32;
        EFF__TRY(eff_ctx_register_dtype(ctx, f->dtype, &t));
    }
    return EFF_OK;
}

EFFDEF int eff_quant_vec_dot_type(int dtype) {
    const eff__qformat *f = eff__qformat_of(dtype);
    return f ? f->vec_dot_type : -1;
}

EFFDEF const char *eff_quant_simd_name(void) {
#if defined(EFF__Q_VNNI)
    return "avx512-vnni";
#elif defined(EFF__Q_AVX2)
    return "avx2";
#else
    return "scalar";
#endif
}

EFFDEF eff_status eff_quant_vec_dot(eff_ctx *ctx, int dtype, int64_t n, float *s, const void *w, const void *a, int kernel) {
    const char *fn = "eff_quant_vec_dot";
    const eff__qformat *f;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, s);
    f = eff__qformat_of(dtype);
    EFF__CHECK(ctx, f && f->dot_ref, EFF_ERR_DTYPE, "%s: 'dtype' %d (%s) has no dot kernel", fn, dtype,
               eff_dtype_name(dtype) ? eff_dtype_name(dtype) : "unknown");
    EFF__CHECK(ctx, kernel == EFF_QUANT_KERNEL_AUTO || kernel == EFF_QUANT_KERNEL_SCALAR, EFF_ERR_INVALID_ARG,
               "%s: 'kernel' must be EFF_QUANT_KERNEL_AUTO or EFF_QUANT_KERNEL_SCALAR, got %d", fn, kernel);
    EFF__TRY(eff__check_row(ctx, fn, dtype, w, a, n));
    if (n == 0) { *s = 0.0f; return EFF_OK; }
    (kernel == EFF_QUANT_KERNEL_SCALAR ? f->dot_ref : f->dot_simd)(n, s, w, a);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_tensor_quantize(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, int dtype) {
    const char *fn = "eff_quant_tensor_quantize";
    const eff__qformat *f;
    eff_tensor src;
    int64_t r, nrows, ncols, rb;
    int own = 0;
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, out);
    EFF__CHECK_PTR(ctx, in);
    EFF__TRY(eff_tensor_validate(ctx, in, "in"));
    EFF__CHECK(ctx, in->dtype == EFF_F32 && in->device == EFF_DEVICE_CPU, EFF_ERR_DTYPE, "%s: 'in' must be a CPU f32 tensor", fn);
    EFF__CHECK(ctx, in->ndim >= 1, EFF_ERR_SHAPE, "%s: 'in' must have at least one dim", fn);
    f = eff__qformat_of(dtype);
    EFF__CHECK(ctx, f != NULL, EFF_ERR_DTYPE, "%s: 'dtype' %d is not a block format", fn, dtype);
    ncols = eff_tensor_ncols(in);
    nrows = eff_tensor_nrows(in);
    EFF__CHECK(ctx, ncols % eff_dtype_blck_size(dtype) == 0, EFF_ERR_SHAPE,
               "%s: last dim of 'in' (%lld) is not a multiple of the %s block size %lld", fn, (long long)ncols,
               eff_dtype_name(dtype), (long long)eff_dtype_blck_size(dtype));
    src = *in;
    if (!eff_tensor_is_contiguous(in)) { EFF__TRY(eff_tensor_contiguous(ctx, &src, in)); own = 1; }
    st = eff_tensor_alloc(ctx, out, dtype, in->ndim, in->ne);
    if (st == EFF_OK) {
        int nt = eff_ctx_n_threads(ctx);
        (void)nt;
        rb = eff_dtype_row_bytes(dtype, ncols);
        EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 16) if (nt > 1 && nrows * ncols > 65536))
        for (r = 0; r < nrows; r++) f->quantize((const float *)src.data + r * ncols, (char *)out->data + r * rb, ncols);
    }
    if (own) eff_tensor_free(ctx, &src);
    return st;
}

/* ---------------------------------------------------------------------------
   NF4 / FP4 and the dynamic 8-bit map (bitsandbytes)
   --------------------------------------------------------------------------- */
static const float eff__nf4_table[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};
/* bitsandbytes' dDequantizeFP4 literals, in bit-pattern order (bit 3 = sign). */
static const float eff__fp4_table[16] = {
    0.0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
    0.0f, -5.208333333e-03f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f};
/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), sorted. */
static const float eff__dyn8_table[256] = {
    -0.992968738f, -0.978906274f, -0.96484375f, -0.950781226f, -0.936718762f, -0.922656238f,
    -0.908593774f, -0.89453125f, -0.880468726f, -0.866406262f, -0.852343738f, -0.838281274f,
    -0.82421875f, -0.810156226f, -0.796093762f, -0.782031238f, -0.767968774f, -0.75390625f,
    -0.739843726f, -0.725781262f, -0.711718798f, -0.697656274f, -0.68359375f, -0.669531226f,
    -0.655468762f, -0.641406298f, -0.627343774f, -0.61328125f, -0.599218726f, -0.585156262f,
    -0.571093798f, -0.557031274f, -0.54296875f, -0.528906226f, -0.514843702f, -0.500781238f,
    -0.486718714f, -0.47265625f, -0.458593726f, -0.444531262f, -0.430468738f, -0.416406244f,
    -0.40234375f, -0.388281226f, -0.374218762f, -0.360156238f, -0.346093744f, -0.33203125f,
    -0.317968726f, -0.303906262f, -0.289843738f, -0.275781274f, -0.26171875f, -0.247656241f,
    -0.233593747f, -0.219531253f, -0.205468744f, -0.19140625f, -0.177343756f, -0.163281247f,
    -0.149218753f, -0.135156244f, -0.12109375f, -0.107031256f, -0.0985937491f, -0.0957812592f,
    -0.0929687545f, -0.0901562497f, -0.0873437524f, -0.0845312476f, -0.0817187577f, -0.078906253f,
    -0.0760937482f, -0.0732812509f, -0.0704687461f, -0.0676562563f, -0.0648437515f, -0.0620312504f,
    -0.0592187531f, -0.0564062484f, -0.053593751f, -0.05078125f, -0.047968749f, -0.0451562516f,
    -0.0423437469f, -0.0395312496f, -0.0367187522f, -0.0339062512f, -0.0310937501f, -0.028281251f,
    -0.0254687499f, -0.0226562507f, -0.0198437516f, -0.0170312505f, -0.0142187504f, -0.0114062503f,
    -0.00971874967f, -0.00915624946f, -0.00859375019f, -0.00803124998f, -0.00746874977f, -0.00690625003f,
    -0.00634374982f, -0.00578125007f, -0.00521875033f, -0.00465624966f, -0.00409374991f, -0.00353124971f,
    -0.00296874996f, -0.00240624999f, -0.00184375001f, -0.00128124992f, -0.000943750085f, -0.000831249985f,
    -0.00071875006f, -0.000606250076f, -0.000493750034f, -0.000381250022f, -0.000268750038f, -0.000156250011f,
    -8.87499991e-05f, -6.62500024e-05f, -4.37499984e-05f, -2.12499981e-05f, -7.7499999e-06f, -3.25000019e-06f,
    -5.50000038e-07f, 0.0f, 5.50000038e-07f, 3.25000019e-06f, 7.7499999e-06f, 2.12499981e-05f,
    4.37499984e-05f, 6.62500024e-05f, 8.87499991e-05f, 0.000156250011f, 0.000268750038f, 0.000381250022f,
    0.000493750034f, 0.000606250076f, 0.00071875006f, 0.000831249985f, 0.000943750085f, 0.00128124992f,
    0.00184375001f, 0.00240624999f, 0.00296874996f, 0.00353124971f, 0.00409374991f, 0.00465624966f,
    0.00521875033f, 0.00578125007f, 0.00634374982f, 0.00690625003f, 0.00746874977f, 0.00803124998f,
    0.00859375019f, 0.00915624946f, 0.00971874967f, 0.0114062503f, 0.0142187504f, 0.0170312505f,
    0.0198437516f, 0.0226562507f, 0.0254687499f, 0.028281251f, 0.0310937501f, 0.0339062512f,
    0.0367187522f, 0.0395312496f, 0.0423437469f, 0.0451562516f, 0.047968749f, 0.05078125f,
    0.053593751f, 0.0564062484f, 0.0592187531f, 0.0620312504f, 0.0648437515f, 0.0676562563f,
    0.0704687461f, 0.0732812509f, 0.0760937482f, 0.078906253f, 0.0817187577f, 0.0845312476f,
    0.0873437524f, 0.0901562497f, 0.0929687545f, 0.0957812592f, 0.0985937491f, 0.107031256f,
    0.12109375f, 0.135156244f, 0.149218753f, 0.163281247f, 0.177343756f, 0.19140625f,
    0.205468744f, 0.219531253f, 0.233593747f, 0.247656241f, 0.26171875f, 0.275781274f,
    0.289843738f, 0.303906262f, 0.317968726f, 0.33203125f, 0.346093744f, 0.360156238f,
    0.374218762f, 0.388281226f, 0.40234375f, 0.416406244f, 0.430468738f, 0.444531262f,
    0.458593726f, 0.47265625f, 0.486718714f, 0.500781238f, 0.514843702f, 0.528906226f,
    0.54296875f, 0.557031274f, 0.571093798f, 0.585156262f, 0.599218726f, 0.61328125f,
    0.627343774f, 0.641406298f, 0.655468762f, 0.669531226f, 0.68359375f, 0.697656274f,
    0.711718798f, 0.725781262f, 0.739843726f, 0.75390625f, 0.767968774f, 0.782031238f,
    0.796093762f, 0.810156226f, 0.82421875f, 0.838281274f, 0.852343738f, 0.866406262f,
    0.880468726f, 0.89453125f, 0.908593774f, 0.922656238f, 0.936718762f, 0.950781226f,
    0.96484375f, 0.978906274f, 0.992968738f, 1.0f};

EFFDEF const float *eff_quant_4bit_code(int quant_type) {
    return quant_type == EFF_NF4 ? eff__nf4_table : quant_type == EFF_FP4 ? eff__fp4_table : NULL;
}
EFFDEF const float *eff_quant_dyn8_code(void) { return eff__dyn8_table; }

/* Index of v among sorted codes c[0:nc]: the number of midpoints (c[i]+c[i+1])/2
   (float32) strictly below v, i.e. torch.bucketize(v, midpoints, right=False). */
static int eff__bucketize(const float *c, int nc, float v) {
    int lo = 0, hi = nc - 1;   /* answer in [0, nc-1]: first midpoint >= v */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if ((c[mid] + c[mid + 1]) / 2.0f < v) lo = mid + 1; else hi = mid;
    }
    return lo;
}
/* bitsandbytes' CUDA dQuantizeFP4 comparison tree. */
static int eff__fp4_index(float v) {
    int sign = v < 0.0f ? 8 : 0;
    float x = fabsf(v);
    if (x > 0.29166667f) {
        if (x > 0.583333f) return (x > 0.8333333f ? 3 : 2) + sign;
        return (x > 0.4166667f ? 5 : 4) + sign;
    }
    if (x > 0.0859375f) return (x > 0.20833333f ? 7 : 6) + sign;
    return (x > 0.00260417f ? 1 : 0) + sign;
}
EFF__INLINE int eff__4bit_index(int quant_type, float v) {
    return quant_type == EFF_FP4 ? eff__fp4_index(v) : eff__bucketize(eff__nf4_table, 16, v);
}

/* Blockwise absmax scaling as bitsandbytes' reference backend: scaled values of
   block [s, e) into out; returns the stored absmax (the short last block keeps the
   1e-38 clamp it divided by). */
static float eff__block_scale(const float *x, int64_t s, int64_t e, int full, float *out) {
    float amax = 0.0f;
    int64_t i;
    for (i = s; i < e; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (full) {
        float inv = 1.0f / (amax > 1e-38f ? amax : 1e-38f);
        for (i = s; i < e; i++) { float v = x[i] * inv; out[i - s] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v; }
        return amax;
    }
    amax = amax > 1e-38f ? amax : 1e-38f;
    for (i = s; i < e; i++) { float v = x[i] / amax; out[i - s] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v; }
    return amax;
}

static eff_status eff__check_dyn8(eff_ctx *ctx, const char *fn, const void *a, const void *b, const void *c, int64_t n,
                                  int64_t blocksize) {
    EFF__CHECK(ctx, n >= 0, EFF_ERR_INVALID_ARG, "%s: 'n' = %lld is negative", fn, (long long)n);
    EFF__CHECK(ctx, blocksize > 0 && blocksize <= ((int64_t)1 << 30), EFF_ERR_INVALID_ARG,
               "%s: 'blocksize' = %lld must be in [1, 2^30]", fn, (long long)blocksize);
    EFF__CHECK(ctx, n == 0 || (a && b && c), EFF_ERR_INVALID_ARG, "%s: an array argument is NULL", fn);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_dyn8_quantize(eff_ctx *ctx, const float *x, int64_t n, int64_t blocksize, uint8_t *codes,
                                          float *absmax) {
    int64_t b, nb, i;
    float buf[256];
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_dyn8(ctx, "eff_quant_dyn8_quantize", x, codes, absmax, n, blocksize));
    nb = (n + blocksize - 1) / blocksize;
    for (b = 0; b < nb; b++) {
        int64_t s = b * blocksize, e = s + blocksize < n ? s + blocksize : n, c;
        float amax = 0.0f, inv;
        int full = e - s == blocksize;
        for (i = s; i < e; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        if (!full) amax = amax > 1e-38f ? amax : 1e-38f;
        inv = 1.0f / (amax > 1e-38f ? amax : 1e-38f);
        absmax[b] = amax;
        /* the same arithmetic as eff__block_scale, in chunks of 256 */
        for (c = s; c < e; c += 256) {
            int64_t ce = c + 256 < e ? c + 256 : e;
            for (i = c; i < ce; i++) {
                float v = full ? x[i] * inv : x[i] / amax;
                buf[i - c] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
            }
            for (i = c; i < ce; i++) codes[i] = (uint8_t)eff__bucketize(eff__dyn8_table, 256, buf[i - c]);
        }
    }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_dyn8_dequantize(eff_ctx *ctx, const uint8_t *codes, const float *absmax, int64_t n,
                                            int64_t blocksize, float *x) {
    int64_t i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_dyn8(ctx, "eff_quant_dyn8_dequantize", codes, absmax, x, n, blocksize));
    for (i = 0; i < n; i++) x[i] = eff__dyn8_table[codes[i]] * absmax[i / blocksize];
    return EFF_OK;
}

EFFDEF void eff_quant_4bit_free(eff_ctx *ctx, eff_quant_4bit *q) {
    if (!q) return;
    eff_ctx_free(ctx, q->codes);
    eff_ctx_free(ctx, q->absmax);
    eff_ctx_free(ctx, q->qabsmax);
    eff_ctx_free(ctx, q->absmax2);
    memset(q, 0, sizeof *q);
}

EFFDEF int64_t eff_quant_4bit_nbytes(const eff_quant_4bit *q) {
    if (!q) return 0;
    return (q->n + 1) / 2 + (q->double_quant ? q->nblocks + 4 * q->nblocks2 + 4 : 4 * q->nblocks);
}

EFFDEF eff_status eff_quant_4bit_quantize(eff_ctx *ctx, eff_quant_4bit *q, const float *x, int64_t rows, int64_t cols,
                                          const eff_quant_4bit_opts *opts) {
    const char *fn = "eff_quant_4bit_quantize";
    eff_quant_4bit_opts o;
    int64_t n, b, i;
    float *scaled = NULL;
    int32_t pad;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, q);
    memset(q, 0, sizeof *q);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (o.quant_type == 0) o.quant_type = EFF_NF4;
    if (o.blocksize == 0) o.blocksize = 64;
    if (o.blocksize2 == 0) o.blocksize2 = 256;
    EFF__CHECK(ctx, o.quant_type == EFF_NF4 || o.quant_type == EFF_FP4, EFF_ERR_INVALID_ARG,
               "%s: 'opts->quant_type' must be EFF_NF4 or EFF_FP4, got %d", fn, o.quant_type);
    EFF__CHECK(ctx, o.blocksize > 0 && o.blocksize <= ((int64_t)1 << 30), EFF_ERR_INVALID_ARG,
               "%s: 'opts->blocksize' = %lld must be in [1, 2^30]", fn, (long long)o.blocksize);
    EFF__CHECK(ctx, o.blocksize2 > 0 && o.blocksize2 <= ((int64_t)1 << 30), EFF_ERR_INVALID_ARG,
               "%s: 'opts->blocksize2' = %lld must be in [1, 2^30]", fn, (long long)o.blocksize2);
    EFF__CHECK(ctx, rows >= 0 && cols >= 0, EFF_ERR_INVALID_ARG, "%s: 'rows' %lld and 'cols' %lld must be >= 0", fn,
               (long long)rows, (long long)cols);
    EFF__CHECK(ctx, !eff__mul_ovf(rows, cols, &n) && n < ((int64_t)1 << 60), EFF_ERR_OVERFLOW,
               "%s: 'rows' x 'cols' overflows", fn);
    EFF__CHECK(ctx, n == 0 || x != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'x' is NULL", fn);
    q->quant_type = o.quant_type;
    q->double_quant = o.double_quant != 0;
    q->rows = rows; q->cols = cols; q->n = n;
    q->blocksize = o.blocksize;
    q->nblocks = (n + o.blocksize - 1) / o.blocksize;
    q->blocksize2 = o.blocksize2;
    q->codes = (uint8_t *)eff_ctx_calloc(ctx, (size_t)((n + 1) / 2) + 1);
    q->absmax = (float *)eff_ctx_alloc(ctx, (size_t)q->nblocks * sizeof(float) + 4);
    scaled = (float *)eff_ctx_alloc(ctx, (size_t)(o.blocksize < n ? o.blocksize : n) * sizeof(float) + 4);
    if (!q->codes || !q->absmax || !scaled) {
        eff_ctx_free(ctx, scaled);
        eff_quant_4bit_free(ctx, q);
        return eff_ctx_error(ctx, EFF_ERR_OOM, "%s: out of memory for %lld elements", fn, (long long)n);
    }
    for (b = 0; b < q->nblocks; b++) {
        int64_t s = b * o.blocksize, e = s + o.blocksize < n ? s + o.blocksize : n;
        q->absmax[b] = eff__block_scale(x, s, e, e - s == o.blocksize, scaled);
        for (i = s; i < e; i++) {
            int idx = eff__4bit_index(o.quant_type, scaled[i - s]);
            q->codes[i >> 1] |= (uint8_t)((i & 1) ? idx : idx << 4);
        }
    }
    pad = eff__4bit_index(o.quant_type, 0.0f);   /* an odd count is padded with the code of 0 */
    if (n & 1) q->codes[n >> 1] |= (uint8_t)pad;
    eff_ctx_free(ctx, scaled);
    if (q->double_quant) {
        double sum = 0.0;
        float *centered;
        q->nblocks2 = (q->nblocks + o.blocksize2 - 1) / o.blocksize2;
        for (b = 0; b < q->nblocks; b++) sum += q->absmax[b];
        q->offset = q->nblocks ? (float)(sum / (double)q->nblocks) : 0.0f;
        q->qabsmax = (uint8_t *)eff_ctx_alloc(ctx, (size_t)q->nblocks + 1);
        q->absmax2 = (float *)eff_ctx_alloc(ctx, (size_t)q->nblocks2 * sizeof(float) + 4);
        centered = (float *)eff_ctx_alloc(ctx, (size_t)q->nblocks * sizeof(float) + 4);
        if (!q->qabsmax || !q->absmax2 || !centered) {
            eff_ctx_free(ctx, centered);
            eff_quant_4bit_free(ctx, q);
            return eff_ctx_error(ctx, EFF_ERR_OOM, "%s: out of memory for the double quantization", fn);
        }
        for (b = 0; b < q->nblocks; b++) centered[b] = q->absmax[b] - q->offset;
        eff_quant_dyn8_quantize(ctx, centered, q->nblocks, q->blocksize2, q->qabsmax, q->absmax2);
        eff_ctx_free(ctx, centered);
        eff_ctx_free(ctx, q->absmax);
        q->absmax = NULL;
    }
    return EFF_OK;
}

static eff_status eff__check_4bit(eff_ctx *ctx, const char *fn, const eff_quant_4bit *q, const char *arg) {
    EFF__CHECK(ctx, q != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, arg);
    EFF__CHECK(ctx, (q->quant_type == EFF_NF4 || q->quant_type == EFF_FP4) && q->blocksize > 0 && q->n >= 0 &&
               q->rows >= 0 && q->cols >= 0 && q->rows * q->cols == q->n && q->nblocks == (q->n + q->blocksize - 1) / q->blocksize &&
               (q->n == 0 || q->codes) && (q->double_quant ? (q->n == 0 || (q->qabsmax && q->absmax2 && q->blocksize2 > 0)) : (q->n == 0 || q->absmax)),
               EFF_ERR_INVALID_ARG, "%s: '%s' is not a quantized tensor from eff_quant_4bit_quantize", fn, arg);
    return EFF_OK;
}

/* absmax of block b: stored, or dequantized from the double quantization. */
static EFF__NOCONTRACT float eff__4bit_block_absmax(const eff_quant_4bit *q, int64_t b) {
    EFF__FP_STRICT
    if (!q->double_quant) return q->absmax[b];
    return eff__dyn8_table[q->qabsmax[b]] * q->absmax2[b / q->blocksize2] + q->offset;
}

EFFDEF eff_status eff_quant_4bit_absmax(eff_ctx *ctx, const eff_quant_4bit *q, float *absmax) {
    int64_t b;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_4bit(ctx, "eff_quant_4bit_absmax", q, "q"));
    EFF__CHECK(ctx, q->nblocks == 0 || absmax, EFF_ERR_INVALID_ARG, "eff_quant_4bit_absmax: argument 'absmax' is NULL");
    for (b = 0; b < q->nblocks; b++) absmax[b] = eff__4bit_block_absmax(q, b);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_4bit_dequantize(eff_ctx *ctx, const eff_quant_4bit *q, float *x) {
    const float *code;
    int64_t b, i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_4bit(ctx, "eff_quant_4bit_dequantize", q, "q"));
    EFF__CHECK(ctx, q->n == 0 || x, EFF_ERR_INVALID_ARG, "eff_quant_4bit_dequantize: argument 'x' is NULL");
    code = eff_quant_4bit_code(q->quant_type);
    for (b = 0; b < q->nblocks; b++) {
        int64_t s = b * q->blocksize, e = s + q->blocksize < q->n ? s + q->blocksize : q->n;
        float am = eff__4bit_block_absmax(q, b);
        for (i = s; i < e; i++) x[i] = code[(q->codes[i >> 1] >> ((i & 1) ? 0 : 4)) & 15] * am;
    }
    return EFF_OK;
}

/* GEMV kernels over one row: codes of `nblk` blocks of `bs` elements (bs % 32 == 0)
   against xp, the activations with each 32-chunk reordered as [even | odd] elements
   (the high nibbles of 16 bytes are the even elements). Per block:
   sum_b absmax_b * sum_i code[q_i] x_i. With double quantization absmax_b is
   dequantized inside the loop (scalar work that overlaps the vector work), so the
   kernels carry EFF__NOCONTRACT like eff__4bit_block_absmax. */
typedef struct {
    const float *am;        /* stored absmax of the row's blocks, or NULL for double quant */
    const uint8_t *qabs;    /* double quant: 8-bit codes of the row's blocks */
    const float *am2;       /* second-level scales of the whole tensor */
    int64_t bs2, b0;        /* second-level block size; global index of the row's first block */
    float offset;
} eff__4bit_scales;
#define EFF__4BIT_AM(S, b, b2, rem, out)                                                  \
    do {                                                                                  \
        if ((S)->am) (out) = (S)->am[b];                                                  \
        else {                                                                            \
            (out) = eff__dyn8_table[(S)->qabs[b]] * (S)->am2[b2] + (S)->offset;           \
            if (++(rem) == (S)->bs2) { (rem) = 0; (b2)++; }                               \
        }                                                                                 \
    } while (0)

static EFF__NOCONTRACT void eff__4bit_row_ref(const float *code, const uint8_t *c, const eff__4bit_scales *S, int64_t nblk,
                                              int64_t bs, const float *xp, float *out) {
    EFF__FP_STRICT
    int64_t b, k, b2 = S->bs2 ? S->b0 / S->bs2 : 0, rem = S->bs2 ? S->b0 % S->bs2 : 0;
    float sum = 0.0f;
    for (b = 0; b < nblk; b++) {
        float sb = 0.0f, am;
        for (k = 0; k < bs / 32; k++, c += 16, xp += 32) {
            int j;
            for (j = 0; j < 16; j++) sb += code[c[j] >> 4] * xp[j] + code[c[j] & 15] * xp[16 + j];
        }
        EFF__4BIT_AM(S, b, b2, rem, am);
        sum += am * sb;
    }
    *out = sum;
}
#if defined(EFF__Q_AVX512)
static EFF__NOCONTRACT void eff__4bit_row_simd(const float *code, const uint8_t *c, const eff__4bit_scales *S, int64_t nblk,
                                               int64_t bs, const float *xp, float *out) {
    EFF__FP_STRICT
    const __m512 T = _mm512_loadu_ps(code);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t b, k, b2 = S->bs2 ? S->b0 / S->bs2 : 0, rem = S->bs2 ? S->b0 % S->bs2 : 0;
    float am;
    if (bs == 64) {   /* the common blocksize: one 32-byte load per block */
        for (b = 0; b < nblk; b++, c += 32, xp += 64) {
            __m256i cb = _mm256_loadu_si256((const __m256i *)c);
            __m512i v0 = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(cb)), v1 = _mm512_cvtepu8_epi32(_mm256_extracti128_si256(cb, 1));
            __m512 s0 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), T), _mm512_loadu_ps(xp));
            __m512 s1 = _mm512_mul_ps(_mm512_permutexvar_ps(v0, T), _mm512_loadu_ps(xp + 16));
            s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), T), _mm512_loadu_ps(xp + 32), s0);
            s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, T), _mm512_loadu_ps(xp + 48), s1);
            EFF__4BIT_AM(S, b, b2, rem, am);
            if (b & 1) acc1 = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(am), acc1);
            else acc0 = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(am), acc0);
        }
        *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        return;
    }
    for (b = 0; b < nblk; b++) {
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (k = 0; k < bs / 32; k++, c += 16, xp += 32) {
            __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)c));
            /* vpermps reads the low 4 bits of each index: v itself is the low nibble */
            s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), T), _mm512_loadu_ps(xp), s0);
            s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, T), _mm512_loadu_ps(xp + 16), s1);
        }
        EFF__4BIT_AM(S, b, b2, rem, am);
        if (b & 1) acc1 = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(am), acc1);
        else acc0 = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(am), acc0);
    }
    *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
#elif defined(EFF__Q_AVX2)
EFF__INLINE __m256 eff__lut16_ps(__m256 tlo, __m256 thi, __m256i idx) {
    /* entries 0-7 from tlo, 8-15 from thi: bit 3 of the index moved to the sign bit selects */
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(tlo, idx), _mm256_permutevar8x32_ps(thi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}
static EFF__NOCONTRACT void eff__4bit_row_simd(const float *code, const uint8_t *c, const eff__4bit_scales *S, int64_t nblk,
                                               int64_t bs, const float *xp, float *out) {
    EFF__FP_STRICT
    const __m256 tlo = _mm256_loadu_ps(code), thi = _mm256_loadu_ps(code + 8);
    const __m256i m4 = _mm256_set1_epi32(15);
    __m256 acc = _mm256_setzero_ps();
    int64_t b, k, b2 = S->bs2 ? S->b0 / S->bs2 : 0, rem = S->bs2 ? S->b0 % S->bs2 : 0;
    float am;
    for (b = 0; b < nblk; b++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (k = 0; k < bs / 32; k++, c += 16, xp += 32) {
            __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c));
            __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + 8)));
            s0 = _mm256_fmadd_ps(eff__lut16_ps(tlo, thi, _mm256_srli_epi32(v0, 4)), _mm256_loadu_ps(xp), s0);
            s1 = _mm256_fmadd_ps(eff__lut16_ps(tlo, thi, _mm256_srli_epi32(v1, 4)), _mm256_loadu_ps(xp + 8), s1);
            s0 = _mm256_fmadd_ps(eff__lut16_ps(tlo, thi, _mm256_and_si256(v0, m4)), _mm256_loadu_ps(xp + 16), s0);
            s1 = _mm256_fmadd_ps(eff__lut16_ps(tlo, thi, _mm256_and_si256(v1, m4)), _mm256_loadu_ps(xp + 24), s1);
        }
        EFF__4BIT_AM(S, b, b2, rem, am);
        acc = _mm256_fmadd_ps(_mm256_add_ps(s0, s1), _mm256_set1_ps(am), acc);
    }
    *out = eff__hsum256(acc);
}
#else
#define eff__4bit_row_simd eff__4bit_row_ref
#endif

/* The generic path (any blocksize / cols): element by element. */
static float eff__4bit_row_generic(const eff_quant_4bit *W, const float *code, int64_t r, const float *x) {
    int64_t j, base = r * W->cols, cur = -1;
    float am = 0.0f, sum = 0.0f;
    for (j = 0; j < W->cols; j++) {
        int64_t i = base + j;
        if (i / W->blocksize != cur) { cur = i / W->blocksize; am = eff__4bit_block_absmax(W, cur); }
        sum += code[(W->codes[i >> 1] >> ((i & 1) ? 0 : 4)) & 15] * am * x[j];
    }
    return sum;
}

EFFDEF eff_status eff_quant_4bit_gemv(eff_ctx *ctx, const eff_quant_4bit *W, const float *x, float *y, int64_t M,
                                      int kernel) {
    const char *fn = "eff_quant_4bit_gemv";
    const float *code;
    int64_t K, N, r, m;
    int nt, fast;
    float *xp = NULL;
    void (*row_fn)(const float *, const uint8_t *, const eff__4bit_scales *, int64_t, int64_t, const float *, float *);
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_4bit(ctx, fn, W, "W"));
    EFF__CHECK(ctx, M >= 0, EFF_ERR_INVALID_ARG, "%s: 'M' = %lld is negative", fn, (long long)M);
    EFF__CHECK(ctx, kernel == EFF_QUANT_KERNEL_AUTO || kernel == EFF_QUANT_KERNEL_SCALAR, EFF_ERR_INVALID_ARG,
               "%s: 'kernel' must be EFF_QUANT_KERNEL_AUTO or EFF_QUANT_KERNEL_SCALAR, got %d", fn, kernel);
    K = W->cols; N = W->rows;
    if (M == 0 || N == 0) return EFF_OK;
    EFF__CHECK(ctx, x != NULL && y != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, x ? "y" : "x");
    code = eff_quant_4bit_code(W->quant_type);
    nt = eff_ctx_n_threads(ctx);
    row_fn = kernel == EFF_QUANT_KERNEL_SCALAR ? eff__4bit_row_ref : eff__4bit_row_simd;
    fast = W->blocksize % 32 == 0 && K % W->blocksize == 0;
    if (fast) {   /* activations reordered once: each 32-chunk as [even elements | odd elements] */
        int64_t c, j;
        xp = (float *)eff_ctx_alloc(ctx, (size_t)(M * K) * sizeof(float) + 4);
        if (!xp) return eff__oom(ctx, fn);
        for (m = 0; m < M; m++)
            for (c = 0; c < K; c += 32)
                for (j = 0; j < 16; j++) {
                    xp[m * K + c + j] = x[m * K + c + 2 * j];
                    xp[m * K + c + 16 + j] = x[m * K + c + 2 * j + 1];
                }
    }
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * K > 65536))
    for (r = 0; r < N; r++) {
        int64_t mm;
        if (!fast) {
            for (mm = 0; mm < M; mm++) y[mm * N + r] = eff__4bit_row_generic(W, code, r, x + mm * K);
        } else {
            int64_t bpr = K / W->blocksize;
            eff__4bit_scales sc;
            sc.am = W->double_quant ? NULL : W->absmax + r * bpr;
            sc.qabs = W->double_quant ? W->qabsmax + r * bpr : NULL;
            sc.am2 = W->absmax2;
            sc.bs2 = W->double_quant ? W->blocksize2 : 0;
            sc.b0 = r * bpr;
            sc.offset = W->offset;
            for (mm = 0; mm < M; mm++)
                row_fn(code, W->codes + r * (K / 2), &sc, bpr, W->blocksize, xp + mm * K, y + mm * N + r);
        }
    }
    eff_ctx_free(ctx, xp);
    return EFF_OK;
}

/* The NF4 / FP4 block dtypes (36 B: f32 absmax; u8 codes[32]; 64 elements, element
   2j in the high nibble of byte j). Quantization is eff__block_scale's full-block
   arithmetic followed by eff__4bit_index, so the codes equal eff_quant_4bit_quantize's. */
#define EFF__B4_QK 64
static EFF__NOCONTRACT void eff__quantize_b4(int quant_type, const float *x, void *vq, int64_t n) {
    EFF__FP_STRICT
    unsigned char *q = (unsigned char *)vq;
    float v[EFF__B4_QK];
    int64_t b;
    int j;
    for (b = 0; b < n / EFF__B4_QK; b++, x += EFF__B4_QK, q += 36) {
        float amax = eff__block_scale(x, 0, EFF__B4_QK, 1, v);
        memcpy(q, &amax, 4);
        for (j = 0; j < EFF__B4_QK / 2; j++)
            q[4 + j] = (unsigned char)(eff__4bit_index(quant_type, v[2 * j]) << 4 | eff__4bit_index(quant_type, v[2 * j + 1]));
    }
}
static void eff__dequantize_b4(const float *code, const void *vq, float *y, int64_t n) {
    const unsigned char *q = (const unsigned char *)vq;
    int64_t b;
    int j;
    for (b = 0; b < n / EFF__B4_QK; b++, q += 36, y += EFF__B4_QK) {
        float amax;
        memcpy(&amax, q, 4);
        for (j = 0; j < EFF__B4_QK / 2; j++) {
            y[2 * j] = code[q[4 + j] >> 4] * amax;
            y[2 * j + 1] = code[q[4 + j] & 15] * amax;
        }
    }
}
/* sum over blocks of absmax * sum_i code[q_i] x_i, elements in order. */
static EFF__NOCONTRACT void eff__dot_b4_ref(const float *code, int64_t n, float *s, const void *vw, const float *x) {
    EFF__FP_STRICT
    const unsigned char *q = (const unsigned char *)vw;
    float sum = 0.0f;
    int64_t b;
    int j;
    for (b = 0; b < n / EFF__B4_QK; b++, q += 36, x += EFF__B4_QK) {
        float amax, sb = 0.0f;
        memcpy(&amax, q, 4);
        for (j = 0; j < EFF__B4_QK / 2; j++) sb += code[q[4 + j] >> 4] * x[2 * j] + code[q[4 + j] & 15] * x[2 * j + 1];
        sum += amax * sb;
    }
    *s = sum;
}
#if defined(EFF__Q_AVX512)
/* 32 code bytes -> four vectors of 16 code indices in element order: unpacking the
   shifted bytes with the bytes interleaves high and low nibbles per 128-bit lane
   (vpermps reads only the low 4 bits of an index, so no masking is needed). */
static void eff__dot_b4_simd(const float *code, int64_t n, float *s, const void *vw, const float *x) {
    const unsigned char *q = (const unsigned char *)vw;
    const __m512 T = _mm512_loadu_ps(code);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t b;
    for (b = 0; b < n / EFF__B4_QK; b++, q += 36, x += EFF__B4_QK) {
        float amax;
        __m256i cb = _mm256_loadu_si256((const __m256i *)(q + 4)), hi = _mm256_srli_epi16(cb, 4);
        __m256i a = _mm256_unpacklo_epi8(hi, cb), c = _mm256_unpackhi_epi8(hi, cb);
        __m512 s0 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(a)), T), _mm512_loadu_ps(x));
        __m512 s1 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(c)), T), _mm512_loadu_ps(x + 16));
        s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(a, 1)), T), _mm512_loadu_ps(x + 32), s0);
        s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(c, 1)), T), _mm512_loadu_ps(x + 48), s1);
        memcpy(&amax, q, 4);
        if (b & 1) acc1 = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(amax), acc1);
        else acc0 = _mm512_fmadd_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(amax), acc0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
#elif defined(EFF__Q_AVX2)
static void eff__dot_b4_simd(const float *code, int64_t n, float *s, const void *vw, const float *x) {
    const unsigned char *q = (const unsigned char *)vw;
    const __m256 tlo = _mm256_loadu_ps(code), thi = _mm256_loadu_ps(code + 8);
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    int64_t b;
    for (b = 0; b < n / EFF__B4_QK; b++, q += 36, x += EFF__B4_QK) {
        float amax;
        __m256i cb = _mm256_loadu_si256((const __m256i *)(q + 4));
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(cb, 4), m4), lo = _mm256_and_si256(cb, m4);
        /* per 128-bit lane, in element order: a = elements 0-15 | 32-47, c = 16-31 | 48-63 */
        __m256i a = _mm256_unpacklo_epi8(hi, lo), c = _mm256_unpackhi_epi8(hi, lo);
        __m128i e[4];
        __m256 sb = _mm256_setzero_ps();
        int k;
        e[0] = _mm256_castsi256_si128(a); e[1] = _mm256_castsi256_si128(c);
        e[2] = _mm256_extracti128_si256(a, 1); e[3] = _mm256_extracti128_si256(c, 1);
        for (k = 0; k < 4; k++) {
            sb = _mm256_fmadd_ps(eff__lut16_ps(tlo, thi, _mm256_cvtepu8_epi32(e[k])), _mm256_loadu_ps(x + 16 * k), sb);
            sb = _mm256_fmadd_ps(eff__lut16_ps(tlo, thi, _mm256_cvtepu8_epi32(_mm_srli_si128(e[k], 8))), _mm256_loadu_ps(x + 16 * k + 8), sb);
        }
        memcpy(&amax, q, 4);
        acc = _mm256_fmadd_ps(sb, _mm256_set1_ps(amax), acc);
    }
    *s = eff__hsum256(acc);
}
#else
#define eff__dot_b4_simd eff__dot_b4_ref
#endif
static void eff__quantize_nf4(const float *x, void *vq, int64_t n) { eff__quantize_b4(EFF_NF4, x, vq, n); }
static void eff__quantize_fp4(const float *x, void *vq, int64_t n) { eff__quantize_b4(EFF_FP4, x, vq, n); }
static void eff__dequantize_nf4(const void *vq, float *y, int64_t n) { eff__dequantize_b4(eff__nf4_table, vq, y, n); }
static void eff__dequantize_fp4(const void *vq, float *y, int64_t n) { eff__dequantize_b4(eff__fp4_table, vq, y, n); }
static void eff__dot_nf4_f32_ref(int64_t n, float *s, const void *vw, const void *va) {
    eff__dot_b4_ref(eff__nf4_table, n, s, vw, (const float *)va);
}
static void eff__dot_fp4_f32_ref(int64_t n, float *s, const void *vw, const void *va) {
    eff__dot_b4_ref(eff__fp4_table, n, s, vw, (const float *)va);
}
static void eff__dot_nf4_f32_simd(int64_t n, float *s, const void *vw, const void *va) {
    eff__dot_b4_simd(eff__nf4_table, n, s, vw, (const float *)va);
}
static void eff__dot_fp4_f32_simd(int64_t n, float *s, const void *vw, const void *va) {
    eff__dot_b4_simd(eff__fp4_table, n, s, vw, (const float *)va);
}

/* ---------------------------------------------------------------------------
   Affine / symmetric integer quantization, QAT
   --------------------------------------------------------------------------- */
/* PyTorch's quantize_val: clamp(Z + nearbyint(x * inv), qmin, qmax); NaN maps to Z. */
EFF__INLINE int eff__qval(float x, float inv, int32_t z, int qmin, int qmax, int *in_range) {
    float r = nearbyintf(x * inv);
    double v = (double)z + (double)r;
    if (r != r) v = (double)z;
    *in_range = v >= (double)qmin && v <= (double)qmax;
    return v < (double)qmin ? qmin : v > (double)qmax ? qmax : (int)v;
}

EFFDEF eff_status eff_quant_int_qparams(eff_ctx *ctx, const float *x, int64_t n, int qmin, int qmax, int scheme,
                                        int is_unsigned, float *scale, int32_t *zero) {
    const char *fn = "eff_quant_int_qparams";
    float mn = 0.0f, mx = 0.0f, s;
    int64_t i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, scale && zero, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, scale ? "zero" : "scale");
    EFF__CHECK(ctx, n >= 0 && (n == 0 || x), EFF_ERR_INVALID_ARG, "%s: 'x' is NULL or 'n' < 0", fn);
    EFF__CHECK(ctx, qmin < qmax, EFF_ERR_INVALID_ARG, "%s: 'qmin' %d must be below 'qmax' %d", fn, qmin, qmax);
    EFF__CHECK(ctx, scheme == EFF_QSCHEME_AFFINE || scheme == EFF_QSCHEME_SYMMETRIC, EFF_ERR_INVALID_ARG,
               "%s: 'scheme' must be EFF_QSCHEME_AFFINE or EFF_QSCHEME_SYMMETRIC, got %d", fn, scheme);
    for (i = 0; i < n; i++) {   /* min(min, 0) and max(max, 0) directly */
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (scheme == EFF_QSCHEME_SYMMETRIC) {
        float m = -mn > mx ? -mn : mx;
        s = m / (float)((double)(qmax - qmin) / 2.0);
        *scale = s > FLT_EPSILON ? s : FLT_EPSILON;
        *zero = !is_unsigned ? 0 : (qmin == 0 && qmax == 255) ? 128 : (int32_t)((qmin + qmax) / 2);
    } else {
        float r;
        int32_t z;
        s = (mx - mn) / (float)(qmax - qmin);
        s = s > FLT_EPSILON ? s : FLT_EPSILON;
        r = nearbyintf(mn / s);
        z = qmin - (int32_t)r;
        *scale = s;
        *zero = z < qmin ? qmin : z > qmax ? qmax : z;
    }
    return EFF_OK;
}

EFFDEF void eff_quant_int_free(eff_ctx *ctx, eff_quant_int *q) {
    if (!q) return;
    eff_ctx_free(ctx, q->scale);
    eff_ctx_free(ctx, q->zero);
    eff_ctx_free(ctx, q->data);
    memset(q, 0, sizeof *q);
}

EFFDEF eff_status eff_quant_int_quantize(eff_ctx *ctx, eff_quant_int *q, const float *x, int64_t rows, int64_t cols,
                                         const eff_quant_int_opts *opts) {
    const char *fn = "eff_quant_int_quantize";
    eff_quant_int_opts o;
    int64_t n, g, i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, q);
    memset(q, 0, sizeof *q);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (o.bits == 0) o.bits = 8;
    if (o.group_size == 0) o.group_size = 128;
    EFF__CHECK(ctx, o.bits == 8 || o.bits == 4, EFF_ERR_INVALID_ARG, "%s: 'opts->bits' must be 8 or 4, got %d", fn, o.bits);
    EFF__CHECK(ctx, o.scheme == EFF_QSCHEME_AFFINE || o.scheme == EFF_QSCHEME_SYMMETRIC, EFF_ERR_INVALID_ARG,
               "%s: 'opts->scheme' %d is not an EFF_QSCHEME_*", fn, o.scheme);
    EFF__CHECK(ctx, o.granularity >= EFF_QGRAN_TENSOR && o.granularity <= EFF_QGRAN_GROUP, EFF_ERR_INVALID_ARG,
               "%s: 'opts->granularity' %d is not an EFF_QGRAN_*", fn, o.granularity);
    EFF__CHECK(ctx, rows >= 0 && cols >= 0, EFF_ERR_INVALID_ARG, "%s: 'rows' and 'cols' must be >= 0", fn);
    EFF__CHECK(ctx, !eff__mul_ovf(rows, cols, &n) && n < ((int64_t)1 << 60), EFF_ERR_OVERFLOW, "%s: 'rows' x 'cols' overflows", fn);
    EFF__CHECK(ctx, n == 0 || x, EFF_ERR_INVALID_ARG, "%s: argument 'x' is NULL", fn);
    EFF__CHECK(ctx, o.granularity != EFF_QGRAN_GROUP || (o.group_size > 0 && cols % o.group_size == 0), EFF_ERR_SHAPE,
               "%s: 'opts->group_size' %lld must be positive and divide cols %lld", fn, (long long)o.group_size, (long long)cols);
    q->bits = o.bits; q->is_unsigned = o.is_unsigned != 0; q->scheme = o.scheme; q->granularity = o.granularity;
    q->qmin = q->is_unsigned ? 0 : -(1 << (o.bits - 1));
    q->qmax = q->is_unsigned ? (1 << o.bits) - 1 : (1 << (o.bits - 1)) - 1;
    q->rows = rows; q->cols = cols; q->n = n;
    q->group_size = o.granularity == EFF_QGRAN_TENSOR ? n : o.granularity == EFF_QGRAN_CHANNEL ? cols : o.group_size;
    q->ngroups = q->group_size > 0 ? n / q->group_size : 0;
    q->scale = (float *)eff_ctx_alloc(ctx, (size_t)q->ngroups * sizeof(float) + 4);
    q->zero = (int32_t *)eff_ctx_alloc(ctx, (size_t)q->ngroups * sizeof(int32_t) + 4);
    q->data = (uint8_t *)eff_ctx_calloc(ctx, (size_t)(o.bits == 8 ? n : (n + 1) / 2) + 1);
    if (!q->scale || !q->zero || !q->data) {
        eff_quant_int_free(ctx, q);
        return eff_ctx_error(ctx, EFF_ERR_OOM, "%s: out of memory for %lld elements", fn, (long long)n);
    }
    for (g = 0; g < q->ngroups; g++) {
        const float *xg = x + g * q->group_size;
        float inv;
        int in_range;
        eff_quant_int_qparams(ctx, xg, q->group_size, q->qmin, q->qmax, q->scheme, q->is_unsigned, &q->scale[g], &q->zero[g]);
        inv = 1.0f / q->scale[g];
        for (i = 0; i < q->group_size; i++) {
            int v = eff__qval(xg[i], inv, q->zero[g], q->qmin, q->qmax, &in_range);
            int64_t e = g * q->group_size + i;
            if (o.bits == 8) q->data[e] = (uint8_t)(v & 0xFF);
            else q->data[e >> 1] |= (uint8_t)((v & 15) << ((e & 1) ? 4 : 0));
        }
    }
    return EFF_OK;
}

static eff_status eff__check_int(eff_ctx *ctx, const char *fn, const eff_quant_int *q) {
    EFF__CHECK(ctx, q != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'q' is NULL", fn);
    EFF__CHECK(ctx, (q->bits == 8 || q->bits == 4) && q->n >= 0 && q->group_size >= 0 && q->ngroups >= 0 &&
               q->ngroups * q->group_size == q->n && (q->n == 0 || (q->data && q->scale && q->zero)),
               EFF_ERR_INVALID_ARG, "%s: 'q' is not a tensor from eff_quant_int_quantize", fn);
    return EFF_OK;
}
/* Integer value of element e (sign-extended for the signed ranges). */
EFF__INLINE int eff__int_value(const eff_quant_int *q, int64_t e) {
    int v;
    if (q->bits == 8) return q->is_unsigned ? q->data[e] : (int)(int8_t)q->data[e];
    v = (q->data[e >> 1] >> ((e & 1) ? 4 : 0)) & 15;
    return (!q->is_unsigned && v >= 8) ? v - 16 : v;
}
EFFDEF eff_status eff_quant_int_values(eff_ctx *ctx, const eff_quant_int *q, int32_t *v) {
    int64_t e;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_int(ctx, "eff_quant_int_values", q));
    EFF__CHECK(ctx, q->n == 0 || v, EFF_ERR_INVALID_ARG, "eff_quant_int_values: argument 'v' is NULL");
    for (e = 0; e < q->n; e++) v[e] = eff__int_value(q, e);
    return EFF_OK;
}
EFFDEF eff_status eff_quant_int_dequantize(eff_ctx *ctx, const eff_quant_int *q, float *x) {
    int64_t e;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_int(ctx, "eff_quant_int_dequantize", q));
    EFF__CHECK(ctx, q->n == 0 || x, EFF_ERR_INVALID_ARG, "eff_quant_int_dequantize: argument 'x' is NULL");
    for (e = 0; e < q->n; e++) {
        int64_t g = e / q->group_size;
        x[e] = (float)(eff__int_value(q, e) - q->zero[g]) * q->scale[g];
    }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_error_stats(eff_ctx *ctx, const float *x, const float *xq, int64_t n, eff_quant_stats *st) {
    double se = 0.0, ss = 0.0, mx = 0.0;
    int64_t i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, st);
    EFF__CHECK(ctx, n > 0 && x && xq, EFF_ERR_INVALID_ARG, "eff_quant_error_stats: 'x', 'xq' must be non-NULL and 'n' > 0");
    for (i = 0; i < n; i++) {
        double d = (double)x[i] - (double)xq[i];
        se += d * d;
        ss += (double)x[i] * x[i];
        if (fabs(d) > mx) mx = fabs(d);
    }
    st->mse = se / (double)n;
    st->nmse = ss > 0.0 ? se / ss : (se > 0.0 ? INFINITY : 0.0);
    st->max_abs_err = mx;
    st->sqnr_db = se > 0.0 ? 10.0 * log10(ss / se) : INFINITY;
    return EFF_OK;
}

static eff_status eff__check_fake(eff_ctx *ctx, const char *fn, const void *a, const void *b, int64_t n, int64_t gs,
                                  const float *scale, const int32_t *zero, int qmin, int qmax) {
    int64_t g;
    EFF__CHECK(ctx, n >= 0 && gs > 0 && n % gs == 0, EFF_ERR_SHAPE,
               "%s: 'group_size' %lld must be positive and divide 'n' %lld", fn, (long long)gs, (long long)n);
    EFF__CHECK(ctx, n == 0 || (a && b && scale && zero), EFF_ERR_INVALID_ARG, "%s: an array argument is NULL", fn);
    EFF__CHECK(ctx, qmin < qmax, EFF_ERR_INVALID_ARG, "%s: 'qmin' %d must be below 'qmax' %d", fn, qmin, qmax);
    for (g = 0; g < n / gs; g++)
        EFF__CHECK(ctx, scale[g] > 0.0f && scale[g] <= FLT_MAX, EFF_ERR_INVALID_ARG, "%s: 'scale[%lld]' = %g must be positive and finite",
                   fn, (long long)g, (double)scale[g]);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_fake_forward(eff_ctx *ctx, float *y, const float *x, int64_t n, int64_t group_size,
                                         const float *scale, const int32_t *zero, int qmin, int qmax) {
    int64_t i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_fake(ctx, "eff_quant_fake_forward", y, x, n, group_size, scale, zero, qmin, qmax));
    for (i = 0; i < n; i++) {
        int64_t g = i / group_size;
        int in_range, v = eff__qval(x[i], 1.0f / scale[g], zero[g], qmin, qmax, &in_range);
        y[i] = (float)(v - zero[g]) * scale[g];
    }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_fake_backward(eff_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n,
                                          int64_t group_size, const float *scale, const int32_t *zero, int qmin, int qmax) {
    int64_t i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_fake(ctx, "eff_quant_fake_backward", dx, dy, n, group_size, scale, zero, qmin, qmax));
    EFF__CHECK(ctx, n == 0 || x, EFF_ERR_INVALID_ARG, "eff_quant_fake_backward: argument 'x' is NULL");
    for (i = 0; i < n; i++) {
        int64_t g = i / group_size;
        int in_range;
        eff__qval(x[i], 1.0f / scale[g], zero[g], qmin, qmax, &in_range);
        dx[i] = dy[i] * (in_range ? 1.0f : 0.0f);   /* as torch: grad * mask (-0.0, NaN propagate) */
    }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   LLM.int8()
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_quant_llm_int8_rowwise(eff_ctx *ctx, int8_t *q, float *row_stats, uint8_t *outlier_cols,
                                             const float *X, int64_t M, int64_t K, float threshold) {
    const char *fn = "eff_quant_llm_int8_rowwise";
    uint8_t *cols = outlier_cols;
    int64_t i, j, mk;
    int own = 0;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, M >= 0 && K >= 0 && !eff__mul_ovf(M, K, &mk), EFF_ERR_INVALID_ARG, "%s: bad 'M' %lld or 'K' %lld", fn,
               (long long)M, (long long)K);
    EFF__CHECK(ctx, mk == 0 || (q && row_stats && X), EFF_ERR_INVALID_ARG, "%s: 'q', 'row_stats' and 'X' must be non-NULL", fn);
    if (threshold > 0.0f && !cols && K > 0) {
        cols = (uint8_t *)eff_ctx_alloc(ctx, (size_t)K);
        if (!cols) return eff__oom(ctx, fn);
        own = 1;
    }
    if (cols) memset(cols, 0, (size_t)K);
    if (threshold > 0.0f)
        for (i = 0; i < M; i++)
            for (j = 0; j < K; j++)
                if (fabsf(X[i * K + j]) >= threshold) cols[j] = 1;
    for (i = 0; i < M; i++) {
        const float *x = X + i * K;
        float amax = 0.0f, s;
        for (j = 0; j < K; j++) {
            float a = fabsf(x[j]);
            if (threshold > 0.0f && a >= threshold) continue;   /* outliers are zeroed first */
            amax = a > amax ? a : amax;
        }
        row_stats[i] = amax;
        s = 127.0f / amax;
        for (j = 0; j < K; j++) {
            float v = (threshold > 0.0f && fabsf(x[j]) >= threshold) ? 0.0f : x[j];
            float r = amax > 0.0f ? nearbyintf(v * s) : 0.0f;
            q[i * K + j] = (int8_t)(r > 127.0f ? 127 : r < -128.0f ? -128 : (int)r);
            if (M > 1 && cols && cols[j]) q[i * K + j] = 0;
        }
    }
    if (own) eff_ctx_free(ctx, cols);
    return EFF_OK;
}

EFFDEF void eff_quant_llm_int8_free(eff_ctx *ctx, eff_quant_llm_int8 *w) {
    if (!w) return;
    eff_ctx_free(ctx, w->q);
    eff_ctx_free(ctx, w->scb);
    memset(w, 0, sizeof *w);
}

EFFDEF eff_status eff_quant_llm_int8_weight(eff_ctx *ctx, eff_quant_llm_int8 *w, const float *W, int64_t rows, int64_t cols) {
    const char *fn = "eff_quant_llm_int8_weight";
    int64_t n;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, w);
    memset(w, 0, sizeof *w);
    EFF__CHECK(ctx, rows >= 0 && cols >= 0 && !eff__mul_ovf(rows, cols, &n), EFF_ERR_INVALID_ARG, "%s: bad 'rows' or 'cols'", fn);
    EFF__CHECK(ctx, n == 0 || W, EFF_ERR_INVALID_ARG, "%s: argument 'W' is NULL", fn);
    w->q = (int8_t *)eff_ctx_alloc(ctx, (size_t)n + 1);
    w->scb = (float *)eff_ctx_alloc(ctx, (size_t)rows * sizeof(float) + 4);
    if (!w->q || !w->scb) { eff_quant_llm_int8_free(ctx, w); return eff__oom(ctx, fn); }
    w->rows = rows; w->cols = cols;
    return eff_quant_llm_int8_rowwise(ctx, w->q, w->scb, NULL, W, rows, cols, 0.0f);
}

/* int32 dot of two int8 rows with codes in [-127, 127] (so |a| fits the unsigned
   operand of vpdpbusd / pmaddubsw): exact, whatever the kernel. */
static int32_t eff__dot_i8(const int8_t *a, const int8_t *b, int64_t n) {
    int32_t s = 0;
    int64_t k = 0;
#ifdef EFF__Q_AVX2
    __m256i acc = _mm256_setzero_si256();
    for (; k + 32 <= n; k += 32)
        acc = eff__dot_s8s8(acc, _mm256_loadu_si256((const __m256i *)(a + k)), _mm256_loadu_si256((const __m256i *)(b + k)));
    s = eff__hsum256_i32(acc);
#endif
    for (; k < n; k++) s += (int32_t)a[k] * (int32_t)b[k];
    return s;
}

/* Output column j: int8 part dequantized as bitsandbytes' int8_mm_dequant, plus the
   outlier features in fp32 against W dequantized from int8 (q * scb / 127). */
static EFF__NOCONTRACT void eff__llm_int8_col(float *Y, const float *X, const int8_t *xq, const float *rs, int64_t M, int64_t N,
                                              int64_t K, const eff_quant_llm_int8 *W, int64_t j, const float *bias,
                                              const int64_t *list, int64_t no) {
    EFF__FP_STRICT
    const int8_t *wr = W->q + j * K;
    int64_t i, c;
    for (i = 0; i < M; i++) {
        float out = (float)eff__dot_i8(xq + i * K, wr, K) * (rs[i] * W->scb[j]) * 6.200124e-05f, o = 0.0f;
        if (bias) out += bias[j];
        for (c = 0; c < no; c++) o += X[i * K + list[c]] * ((float)wr[list[c]] * W->scb[j] * 7.874015718698502e-3f);
        Y[i * N + j] = no ? out + o : out;
    }
}

EFFDEF eff_status eff_quant_llm_int8_matmul(eff_ctx *ctx, float *Y, const float *X, int64_t M, const eff_quant_llm_int8 *W,
                                            const float *bias, float threshold, int64_t *n_outliers) {
    const char *fn = "eff_quant_llm_int8_matmul";
    int64_t K, N, j, no = 0;
    int8_t *xq;
    float *rs;
    uint8_t *cols;
    int64_t *list;
    int nt;
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, W && W->rows >= 0 && W->cols >= 0 && (W->rows * W->cols == 0 || (W->q && W->scb)), EFF_ERR_INVALID_ARG,
               "%s: 'W' is NULL or not from eff_quant_llm_int8_weight", fn);
    EFF__CHECK(ctx, M >= 0, EFF_ERR_INVALID_ARG, "%s: 'M' = %lld is negative", fn, (long long)M);
    K = W->cols; N = W->rows;
    if (n_outliers) *n_outliers = 0;
    if (M == 0 || N == 0) return EFF_OK;
    EFF__CHECK(ctx, X && Y, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, X ? "Y" : "X");
    xq = (int8_t *)eff_ctx_alloc(ctx, (size_t)(M * K) + 1);
    rs = (float *)eff_ctx_alloc(ctx, (size_t)M * sizeof(float));
    cols = (uint8_t *)eff_ctx_alloc(ctx, (size_t)K + 1);
    list = (int64_t *)eff_ctx_alloc(ctx, (size_t)K * sizeof(int64_t) + 8);
    if (!xq || !rs || !cols || !list) {
        st = eff__oom(ctx, fn);
        goto done;
    }
    st = eff_quant_llm_int8_rowwise(ctx, xq, rs, cols, X, M, K, threshold);
    if (st) goto done;
    for (j = 0; j < K; j++) if (cols[j]) list[no++] = j;
    if (n_outliers) *n_outliers = no;
    nt = eff_ctx_n_threads(ctx);
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * K * M > 65536))
    for (j = 0; j < N; j++) eff__llm_int8_col(Y, X, xq, rs, M, N, K, W, j, bias, list, no);
done:
    eff_ctx_free(ctx, xq);
    eff_ctx_free(ctx, rs);
    eff_ctx_free(ctx, cols);
    eff_ctx_free(ctx, list);
    return st;
}

/* ---------------------------------------------------------------------------
   GGUF
   --------------------------------------------------------------------------- */
typedef struct { const char *name; int64_t blck, size; int dtype; } eff__ggml_type;
static const eff__ggml_type eff__ggml_types[] = {
    /*  0 */ {"F32", 1, 4, EFF_F32}, {"F16", 1, 2, EFF_F16}, {"Q4_0", 32, 18, EFF_Q4_0}, {"Q4_1", 32, 20, EFF_Q4_1},
    /*  4 */ {0, 0, 0, -1}, {0, 0, 0, -1}, {"Q5_0", 32, 22, EFF_Q5_0}, {"Q5_1", 32, 24, EFF_Q5_1},
    /*  8 */ {"Q8_0", 32, 34, EFF_Q8_0}, {"Q8_1", 32, 36, EFF_Q8_1}, {"Q2_K", 256, 84, -1}, {"Q3_K", 256, 110, -1},
    /* 12 */ {"Q4_K", 256, 144, EFF_Q4_K}, {"Q5_K", 256, 176, -1}, {"Q6_K", 256, 210, EFF_Q6_K}, {"Q8_K", 256, 292, EFF_Q8_K},
    /* 16 */ {"IQ2_XXS", 256, 66, -1}, {"IQ2_XS", 256, 74, -1}, {"IQ3_XXS", 256, 98, -1}, {"IQ1_S", 256, 50, -1},
    /* 20 */ {"IQ4_NL", 32, 18, -1}, {"IQ3_S", 256, 110, -1}, {"IQ2_S", 256, 82, -1}, {"IQ4_XS", 256, 136, -1},
    /* 24 */ {"I8", 1, 1, EFF_I8}, {"I16", 1, 2, EFF_I16}, {"I32", 1, 4, EFF_I32}, {"I64", 1, 8, EFF_I64},
    /* 28 */ {"F64", 1, 8, EFF_F64}, {"IQ1_M", 256, 56, -1}, {"BF16", 1, 2, EFF_BF16}, {0, 0, 0, -1},
    /* 32 */ {0, 0, 0, -1}, {0, 0, 0, -1}, {"TQ1_0", 256, 54, -1}, {"TQ2_0", 256, 66, -1},
    /* 36 */ {0, 0, 0, -1}, {0, 0, 0, -1}, {0, 0, 0, -1}, {"MXFP4", 32, 17, -1},
    /* 40 */ {"NVFP4", 64, 36, -1}, {"Q1_0", 128, 18, -1}, {"Q2_0", 64, 18, -1}};
#define EFF__NGGML_TYPES ((uint32_t)(sizeof eff__ggml_types / sizeof eff__ggml_types[0]))
/* bytes of a scalar of each GGUF value type (0: string / array) */
static const int eff__gguf_size[EFF_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

EFFDEF const char *eff_quant_gguf_type_name(uint32_t t) { return t < EFF__NGGML_TYPES ? eff__ggml_types[t].name : NULL; }
EFFDEF int64_t eff_quant_gguf_type_blck(uint32_t t) { return t < EFF__NGGML_TYPES ? eff__ggml_types[t].blck : 0; }
EFFDEF int64_t eff_quant_gguf_type_size(uint32_t t) { return t < EFF__NGGML_TYPES ? eff__ggml_types[t].size : 0; }
EFFDEF int eff_quant_gguf_type_to_dtype(uint32_t t) { return t < EFF__NGGML_TYPES ? eff__ggml_types[t].dtype : -1; }
EFFDEF int64_t eff_quant_gguf_type_from_dtype(int dtype) {
    uint32_t t;
    for (t = 0; t < EFF__NGGML_TYPES; t++)
        if (eff__ggml_types[t].name && eff__ggml_types[t].dtype == dtype) return (int64_t)t;
    return -1;
}

/* Bytes of a tensor: ne[0] / blck blocks per row times the other dims; -1 on overflow. */
static int64_t eff__gguf_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne) {
    int64_t b, r;
    uint32_t j;
    if (eff__mul_ovf(ne[0] / eff__ggml_types[type].blck, eff__ggml_types[type].size, &b)) return -1;
    for (j = 1; j < n_dims; j++) if (eff__mul_ovf(b, ne[j], &r)) return -1; else b = r;
    return b;
}
EFF__INLINE uint64_t eff__align_up(uint64_t o, uint64_t a) { return o + (a - o % a) % a; }

/* The parser runs twice over the header: pass 0 validates everything and sizes the
   pools, pass 1 (fill) copies strings and arrays into one allocation. */
typedef struct {
    eff_ctx *ctx;
    const char *fn;
    const unsigned char *d;
    uint64_t n, pos;
    int fill;
    char *chars; uint64_t nchars;
    eff_quant_gguf_str *strs; uint64_t nstrs;
    unsigned char *num; uint64_t nnum;
} eff__gp;

#define EFF__GFAIL(p, ...) return eff_ctx_error((p)->ctx, EFF_ERR_FORMAT, __VA_ARGS__)
EFF__INLINE int eff__gp_has(const eff__gp *p, uint64_t k) { return k <= p->n - p->pos; }
static int eff__gp_raw(eff__gp *p, void *dst, uint64_t k) {
    if (!eff__gp_has(p, k)) return 0;
    memcpy(dst, p->d + p->pos, (size_t)k);
    p->pos += k;
    return 1;
}
static int eff__gp_u32(eff__gp *p, uint32_t *v) {
    unsigned char b[4];
    if (!eff__gp_raw(p, b, 4)) return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}
static int eff__gp_u64(eff__gp *p, uint64_t *v) {
    uint32_t lo, hi;
    if (!eff__gp_u32(p, &lo) || !eff__gp_u32(p, &hi)) return 0;
    *v = (uint64_t)lo | (uint64_t)hi << 32;
    return 1;
}
/* Reads a string; raw (may be NULL) gets the bytes inside the file image, out (fill
   pass) the NUL-terminated copy. what/idx describe it in errors. */
static eff_status eff__gp_string(eff__gp *p, eff_quant_gguf_str *out, eff_quant_gguf_str *raw, const char *what, int64_t idx) {
    uint64_t len, at = p->pos;
    if (!eff__gp_u64(p, &len))
        EFF__GFAIL(p, "%s: %s %lld: file ends inside its length (offset %llu)", p->fn, what, (long long)idx, (unsigned long long)at);
    if (!eff__gp_has(p, len))
        EFF__GFAIL(p, "%s: %s %lld: length %llu exceeds the %llu bytes left in the file (offset %llu)", p->fn, what,
                   (long long)idx, (unsigned long long)len, (unsigned long long)(p->n - p->pos), (unsigned long long)at);
    if (raw) { raw->str = (const char *)(p->d + p->pos); raw->len = len; }
    if (p->fill && out) {
        memcpy(p->chars + p->nchars, p->d + p->pos, (size_t)len);
        p->chars[p->nchars + len] = 0;
        out->str = p->chars + p->nchars;
        out->len = len;
    }
    p->nchars += len + 1;
    p->pos += len;
    return EFF_OK;
}

/* A printable, truncated copy of a (possibly binary) name for error messages. */
static const char *eff__gp_printable(const eff_quant_gguf_str *s, char *buf, size_t size) {
    size_t i, n = (size_t)(s->len < size - 4 ? s->len : size - 4);
    for (i = 0; i < n; i++) buf[i] = (s->str[i] >= 32 && s->str[i] < 127) ? s->str[i] : '?';
    if (s->len > n) { buf[n++] = '.'; buf[n++] = '.'; buf[n++] = '.'; }
    buf[n] = 0;
    return buf;
}

static eff_status eff__gp_value(eff__gp *p, int type, eff_quant_gguf_value *v, const char *key) {
    uint64_t at = p->pos;
    memset(v, 0, sizeof *v);
    v->type = type;
    if (type < 0 || type >= EFF_GGUF_TYPE_COUNT)
        EFF__GFAIL(p, "%s: key '%s' has invalid value type %d (offset %llu)", p->fn, key, type, (unsigned long long)at);
    if (type == EFF_GGUF_STRING) {
        eff_quant_gguf_str s;
        memset(&s, 0, sizeof s);
        EFF__TRY(eff__gp_string(p, &s, NULL, "string value of a key at offset", (int64_t)at));
        v->str = s.str; v->len = s.len;
        return EFF_OK;
    }
    if (type == EFF_GGUF_ARRAY) {
        uint32_t et;
        uint64_t count, i;
        if (!eff__gp_u32(p, &et) || !eff__gp_u64(p, &count))
            EFF__GFAIL(p, "%s: key '%s': file ends inside the array header (offset %llu)", p->fn, key, (unsigned long long)at);
        if (et >= EFF_GGUF_TYPE_COUNT) EFF__GFAIL(p, "%s: key '%s': array element type %u is invalid", p->fn, key, et);
        if (et == EFF_GGUF_ARRAY)
            EFF__GFAIL(p, "%s: key '%s': arrays of arrays are not supported (ggml rejects them too)", p->fn, key);
        v->elem_type = (int)et;
        v->count = count;
        if (et == EFF_GGUF_STRING) {
            eff_quant_gguf_str *dst = p->fill ? p->strs + p->nstrs : NULL;
            if (count > (p->n - p->pos) / 8)
                EFF__GFAIL(p, "%s: key '%s': %llu strings cannot fit in the %llu bytes left", p->fn, key,
                           (unsigned long long)count, (unsigned long long)(p->n - p->pos));
            for (i = 0; i < count; i++) EFF__TRY(eff__gp_string(p, dst ? dst + i : NULL, NULL, "array string", (int64_t)i));
            v->strs = dst;
            p->nstrs += count;
        } else {
            uint64_t es = (uint64_t)eff__gguf_size[et];
            if (count > (p->n - p->pos) / es)
                EFF__GFAIL(p, "%s: key '%s': array of %llu x %llu-byte elements exceeds the %llu bytes left (offset %llu)", p->fn,
                           key, (unsigned long long)count, (unsigned long long)es, (unsigned long long)(p->n - p->pos),
                           (unsigned long long)at);
            if (et == EFF_GGUF_BOOL)
                for (i = 0; i < count; i++)
                    if (p->d[p->pos + i] > 1)
                        EFF__GFAIL(p, "%s: key '%s': bool array element %llu is %u, not 0 or 1", p->fn, key,
                                   (unsigned long long)i, p->d[p->pos + i]);
            if (p->fill) {
                memcpy(p->num + p->nnum, p->d + p->pos, (size_t)(count * es));
                v->data = p->num + p->nnum;
            }
            p->nnum += (count * es + 7) / 8 * 8;
            p->pos += count * es;
        }
        return EFF_OK;
    }
    if (!eff__gp_has(p, (uint64_t)eff__gguf_size[type]))
        EFF__GFAIL(p, "%s: key '%s': file ends inside its value (offset %llu)", p->fn, key, (unsigned long long)at);
    memcpy(&v->v, p->d + p->pos, (size_t)eff__gguf_size[type]);   /* little-endian host */
    if (type == EFF_GGUF_BOOL) {
        if (p->d[p->pos] > 1) EFF__GFAIL(p, "%s: key '%s': bool value is %u, not 0 or 1", p->fn, key, p->d[p->pos]);
        v->v.b = p->d[p->pos];
    }
    p->pos += (uint64_t)eff__gguf_size[type];
    return EFF_OK;
}

/* (str, len) ordering for the duplicate checks */
static int eff__gstr_cmp(const void *a, const void *b) {
    const eff_quant_gguf_str *x = (const eff_quant_gguf_str *)a, *y = (const eff_quant_gguf_str *)b;
    size_t m = (size_t)(x->len < y->len ? x->len : y->len);
    int c = m ? memcmp(x->str, y->str, m) : 0;
    return c ? c : (x->len < y->len ? -1 : x->len > y->len ? 1 : 0);
}
static int eff__u64pair_cmp(const void *a, const void *b) {
    const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0;
}

/* One pass over the file. names[] (n_kv + n_tensors raw strings) is filled in
   both passes for the duplicate checks; spans[] (2 per tensor) for the overlaps. */
static eff_status eff__gguf_parse(eff__gp *p, eff_quant_gguf *g, eff_quant_gguf_str *names, uint64_t *spans) {
    uint32_t magic, version;
    uint64_t n_tensors, n_kv, i, alignment = EFF_GGUF_DEFAULT_ALIGNMENT, data_offset;
    char kb[80];
    p->pos = 0;
    if (!eff__gp_u32(p, &magic)) EFF__GFAIL(p, "%s: file too short for the GGUF magic (%llu bytes)", p->fn, (unsigned long long)p->n);
    if (magic != 0x46554747u)
        EFF__GFAIL(p, "%s: bad magic %02x %02x %02x %02x, expected 'GGUF'", p->fn, p->d[0], p->d[1], p->d[2], p->d[3]);
    if (!eff__gp_u32(p, &version)) EFF__GFAIL(p, "%s: file ends inside the version", p->fn);
    if (version == 1) EFF__GFAIL(p, "%s: GGUF version 1 (32-bit counts) is not supported", p->fn);
    if ((version & 0xFFFFu) == 0)
        EFF__GFAIL(p, "%s: version field 0x%08x looks byte-swapped: big-endian GGUF files are not supported", p->fn, version);
    if (version != 2 && version != 3) EFF__GFAIL(p, "%s: unsupported GGUF version %u (2 and 3 are)", p->fn, version);
    if (!eff__gp_u64(p, &n_tensors) || !eff__gp_u64(p, &n_kv)) EFF__GFAIL(p, "%s: file ends inside the header counts", p->fn);
    /* each KV needs >= 14 bytes (non-empty key), each tensor info >= 24 */
    if (n_kv > (p->n - p->pos) / 14)
        EFF__GFAIL(p, "%s: header claims %llu key-value pairs but only %llu bytes follow", p->fn, (unsigned long long)n_kv,
                   (unsigned long long)(p->n - p->pos));
    if (n_tensors > (p->n - p->pos) / 24)
        EFF__GFAIL(p, "%s: header claims %llu tensors but only %llu bytes follow", p->fn, (unsigned long long)n_tensors,
                   (unsigned long long)(p->n - p->pos));
    if (p->fill) { g->version = version; g->n_kv = (int64_t)n_kv; g->n_tensors = (int64_t)n_tensors; }
    else if (!names) return EFF_OK;   /* sizing of the counts only */
    for (i = 0; i < n_kv; i++) {
        eff_quant_gguf_str key;
        eff_quant_gguf_value val;
        uint32_t type;
        memset(&key, 0, sizeof key);
        EFF__TRY(eff__gp_string(p, p->fill ? &key : NULL, &names[i], "key of pair", (int64_t)i));
        eff__gp_printable(&names[i], kb, sizeof kb);
        if (names[i].len == 0) EFF__GFAIL(p, "%s: key of pair %llu is empty", p->fn, (unsigned long long)i);
        if (!eff__gp_u32(p, &type)) EFF__GFAIL(p, "%s: key '%s': file ends inside its value type", p->fn, kb);
        EFF__TRY(eff__gp_value(p, (int)type, &val, kb));
        if (names[i].len == 17 && memcmp(names[i].str, "general.alignment", 17) == 0) {
            if (type != EFF_GGUF_U32) EFF__GFAIL(p, "%s: 'general.alignment' must be a u32, has value type %u", p->fn, type);
            if (val.v.u32 == 0 || (val.v.u32 & (val.v.u32 - 1)))
                EFF__GFAIL(p, "%s: 'general.alignment' = %u is not a power of two", p->fn, val.v.u32);
            alignment = val.v.u32;
        }
        if (p->fill) { g->kv[i].key = key.str; g->kv[i].value = val; }
    }
    for (i = 0; i < n_tensors; i++) {
        eff_quant_gguf_str name;
        uint32_t n_dims, type, j;
        int64_t ne[4] = {1, 1, 1, 1}, nel = 1, nbytes;
        uint64_t offset;
        memset(&name, 0, sizeof name);
        EFF__TRY(eff__gp_string(p, p->fill ? &name : NULL, &names[n_kv + i], "name of tensor", (int64_t)i));
        eff__gp_printable(&names[n_kv + i], kb, sizeof kb);
        if (names[n_kv + i].len >= EFF_GGUF_MAX_NAME)
            EFF__GFAIL(p, "%s: tensor %llu name '%s' is %llu bytes (must be < %d)", p->fn, (unsigned long long)i, kb,
                       (unsigned long long)names[n_kv + i].len, EFF_GGUF_MAX_NAME);
        if (!eff__gp_u32(p, &n_dims)) EFF__GFAIL(p, "%s: tensor '%s': file ends inside n_dims", p->fn, kb);
        if (n_dims > 4) EFF__GFAIL(p, "%s: tensor '%s' has %u dims (at most 4)", p->fn, kb, n_dims);
        for (j = 0; j < n_dims; j++) {
            uint64_t d;
            if (!eff__gp_u64(p, &d)) EFF__GFAIL(p, "%s: tensor '%s': file ends inside ne[%u]", p->fn, kb, j);
            if (d > (uint64_t)INT64_MAX) EFF__GFAIL(p, "%s: tensor '%s': ne[%u] = %llu is negative as int64", p->fn, kb, j, (unsigned long long)d);
            ne[j] = (int64_t)d;
            if (eff__mul_ovf(nel, ne[j], &nel)) EFF__GFAIL(p, "%s: tensor '%s': element count overflows int64", p->fn, kb);
        }
        if (!eff__gp_u32(p, &type) || !eff__gp_u64(p, &offset))
            EFF__GFAIL(p, "%s: tensor '%s': file ends inside its type or offset", p->fn, kb);
        if (type >= EFF__NGGML_TYPES || !eff__ggml_types[type].name)
            EFF__GFAIL(p, "%s: tensor '%s' has invalid or removed ggml type %u", p->fn, kb, type);
        if (ne[0] % eff__ggml_types[type].blck)
            EFF__GFAIL(p, "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %lld", p->fn, kb, (long long)ne[0],
                       eff__ggml_types[type].name, (long long)eff__ggml_types[type].blck);
        nbytes = eff__gguf_nbytes(type, 4, ne);
        if (nbytes < 0) EFF__GFAIL(p, "%s: tensor '%s': byte size overflows int64", p->fn, kb);
        spans[2 * i] = offset; spans[2 * i + 1] = (uint64_t)nbytes;
        if (p->fill) {
            eff_quant_gguf_tensor *t = &g->tensors[i];
            t->name = name.str; t->n_dims = n_dims;
            for (j = 0; j < 4; j++) t->ne[j] = ne[j];
            t->ggml_type = type; t->dtype = eff__ggml_types[type].dtype;
            t->offset = offset; t->nbytes = (uint64_t)nbytes;
        }
    }
    data_offset = eff__align_up(p->pos, alignment);
    if (n_tensors > 0 && data_offset > p->n)
        EFF__GFAIL(p, "%s: data section would start at %llu, past the end of the file (%llu bytes)", p->fn,
                   (unsigned long long)data_offset, (unsigned long long)p->n);
    for (i = 0; i < n_tensors; i++) {
        uint64_t off = spans[2 * i], nb = spans[2 * i + 1], room = p->n - data_offset;
        eff__gp_printable(&names[n_kv + i], kb, sizeof kb);
        if (off % alignment)
            EFF__GFAIL(p, "%s: tensor '%s': offset %llu is not a multiple of the alignment %llu", p->fn, kb, (unsigned long long)off,
                       (unsigned long long)alignment);
        if (off > room || nb > room - off)
            EFF__GFAIL(p, "%s: tensor '%s': bytes [%llu, %llu) of the data section lie beyond the end of the file (%llu bytes of data)",
                       p->fn, kb, (unsigned long long)off, (unsigned long long)(off + nb), (unsigned long long)room);
        if (p->fill) g->tensors[i].data = p->d + data_offset + off;
    }
    if (p->fill) { g->alignment = alignment; g->data_offset = data_offset; }
    return EFF_OK;
}

static eff_status eff__gguf_load(eff_ctx *ctx, eff_quant_gguf *g, const unsigned char *d, int64_t size, const char *fn) {
    eff__gp p;
    eff_quant_gguf_str *names = NULL;
    uint64_t *spans = NULL, n_kv, n_t, i, total, o_kv, o_t, o_strs, o_num, o_chars;
    unsigned char *pool;
    eff_status st;
    memset(&p, 0, sizeof p);
    p.ctx = ctx; p.fn = fn; p.d = d; p.n = (uint64_t)size;
    EFF__TRY(eff__gguf_parse(&p, g, NULL, NULL));   /* header and counts (bounded by the file size) */
    memcpy(&n_t, d + 8, 8); memcpy(&n_kv, d + 16, 8);
    names = (eff_quant_gguf_str *)eff_ctx_alloc(ctx, (size_t)(n_kv + n_t + 1) * sizeof *names);
    spans = (uint64_t *)eff_ctx_alloc(ctx, (size_t)(2 * n_t + 2) * sizeof *spans);
    if (!names || !spans) { st = eff__oom(ctx, fn); goto fail; }
    st = eff__gguf_parse(&p, g, names, spans);
    if (st) goto fail;
    /* duplicate keys, duplicate tensor names, overlapping tensors */
    qsort(names, (size_t)n_kv, sizeof *names, eff__gstr_cmp);
    for (i = 1; i < n_kv; i++)
        if (eff__gstr_cmp(&names[i - 1], &names[i]) == 0) {
            char kb[80];
            st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: duplicate key '%s'", fn, eff__gp_printable(&names[i], kb, sizeof kb));
            goto fail;
        }
    qsort(names + n_kv, (size_t)n_t, sizeof *names, eff__gstr_cmp);
    for (i = 1; i < n_t; i++)
        if (eff__gstr_cmp(&names[n_kv + i - 1], &names[n_kv + i]) == 0) {
            char kb[80];
            st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: duplicate tensor name '%s'", fn,
                               eff__gp_printable(&names[n_kv + i], kb, sizeof kb));
            goto fail;
        }
    qsort(spans, (size_t)n_t, 2 * sizeof *spans, eff__u64pair_cmp);
    for (i = 1; i < n_t; i++)
        if (spans[2 * i - 2] + spans[2 * i - 1] > spans[2 * i]) {
            st = eff_ctx_error(ctx, EFF_ERR_FORMAT, "%s: tensor data at [%llu, %llu) overlaps the tensor starting at %llu", fn,
                               (unsigned long long)spans[2 * i - 2], (unsigned long long)(spans[2 * i - 2] + spans[2 * i - 1]),
                               (unsigned long long)spans[2 * i]);
            goto fail;
        }
    /* one allocation for everything the fill pass copies */
    o_kv = 0;
    o_t = o_kv + (n_kv * sizeof(eff_quant_gguf_kv) + 7) / 8 * 8;
    o_strs = o_t + n_t * sizeof(eff_quant_gguf_tensor);
    o_num = o_strs + (p.nstrs * sizeof(eff_quant_gguf_str) + 7) / 8 * 8;
    o_chars = o_num + p.nnum;
    total = o_chars + p.nchars + 1;
    pool = (unsigned char *)eff_ctx_calloc(ctx, (size_t)total);
    if (!pool) { st = eff__oom(ctx, fn); goto fail; }
    g->pool = pool;
    g->kv = (eff_quant_gguf_kv *)(void *)(pool + o_kv);
    g->tensors = (eff_quant_gguf_tensor *)(void *)(pool + o_t);
    p.fill = 1;
    p.strs = (eff_quant_gguf_str *)(void *)(pool + o_strs);
    p.num = pool + o_num;
    p.chars = (char *)(pool + o_chars);
    p.nstrs = p.nnum = p.nchars = 0;
    st = eff__gguf_parse(&p, g, names, spans);
    g->image = d;
    g->size = size;
fail:
    eff_ctx_free(ctx, names);
    eff_ctx_free(ctx, spans);
    return st;
}

EFFDEF eff_status eff_quant_gguf_open_memory(eff_ctx *ctx, eff_quant_gguf *g, const void *data, int64_t size) {
    const char *fn = "eff_quant_gguf_open_memory";
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, g);
    memset(g, 0, sizeof *g);
    EFF__CHECK(ctx, size >= 0 && (size == 0 || data), EFF_ERR_INVALID_ARG, "%s: 'data' is NULL or 'size' < 0", fn);
    st = eff__gguf_load(ctx, g, (const unsigned char *)data, size, fn);
    if (st) { eff_ctx_free(ctx, g->pool); memset(g, 0, sizeof *g); }
    return st;
}

EFFDEF eff_status eff_quant_gguf_open(eff_ctx *ctx, eff_quant_gguf *g, const char *path) {
    const char *fn = "eff_quant_gguf_open";
    eff_file_map m;
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, g);
    EFF__CHECK_PTR(ctx, path);
    memset(g, 0, sizeof *g);
    EFF__TRY(eff_file_map_open(ctx, path, &m));
    st = eff__gguf_load(ctx, g, m.data, m.size, fn);
    if (st) {
        eff_ctx_free(ctx, g->pool);
        eff_file_map_close(ctx, &m);
        memset(g, 0, sizeof *g);
        return st;
    }
    g->map = m;
    return EFF_OK;
}

EFFDEF void eff_quant_gguf_close(eff_ctx *ctx, eff_quant_gguf *g) {
    if (!g) return;
    eff_ctx_free(ctx, g->pool);
    if (g->map.data || g->map.impl) eff_file_map_close(ctx, &g->map);
    memset(g, 0, sizeof *g);
}

EFFDEF const eff_quant_gguf_kv *eff_quant_gguf_find_kv(const eff_quant_gguf *g, const char *key) {
    int64_t i;
    if (!g || !key) return NULL;
    for (i = 0; i < g->n_kv; i++) if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}
EFFDEF const eff_quant_gguf_tensor *eff_quant_gguf_find_tensor(const eff_quant_gguf *g, const char *name) {
    int64_t i;
    if (!g || !name) return NULL;
    for (i = 0; i < g->n_tensors; i++) if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

EFFDEF eff_status eff_quant_gguf_tensor_view(eff_ctx *ctx, const eff_quant_gguf_tensor *ti, eff_tensor *out) {
    const char *fn = "eff_quant_gguf_tensor_view";
    int64_t ne[4];
    uint32_t j, nd;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, ti);
    EFF__CHECK_PTR(ctx, out);
    EFF__CHECK(ctx, ti->dtype >= 0, EFF_ERR_DTYPE, "%s: tensor '%s' has ggml type %s, which eff has no dtype for", fn, ti->name,
               eff_quant_gguf_type_name(ti->ggml_type));
    nd = ti->n_dims ? ti->n_dims : 1;
    for (j = 0; j < nd; j++) ne[j] = ti->ne[nd - 1 - j];   /* PyTorch order */
    EFF__TRY(eff_tensor_init(ctx, out, ti->dtype, (int)nd, ne, (void *)(uintptr_t)ti->data));
    out->name = ti->name;
    return EFF_OK;
}

/* ---- writer ---- */
EFFDEF void eff_quant_gguf_writer_init(eff_quant_gguf_writer *w) { if (w) memset(w, 0, sizeof *w); }

static void *eff__dup(eff_ctx *ctx, const void *src, size_t n, int nul) {
    unsigned char *p = (unsigned char *)eff_ctx_alloc(ctx, n + (nul ? 1 : 0) + 1);
    if (!p) return NULL;
    if (n) memcpy(p, src, n);
    if (nul) p[n] = 0;
    return p;
}
static void eff__gguf_value_free(eff_ctx *ctx, eff_quant_gguf_value *v) {
    uint64_t i;
    eff_ctx_free(ctx, (void *)(uintptr_t)v->str);
    eff_ctx_free(ctx, (void *)(uintptr_t)v->data);
    if (v->strs) {
        for (i = 0; i < v->count; i++) eff_ctx_free(ctx, (void *)(uintptr_t)v->strs[i].str);
        eff_ctx_free(ctx, (void *)(uintptr_t)v->strs);
    }
    memset(v, 0, sizeof *v);
}
/* Grows an array of elem-sized items to hold n + 1. */
static int eff__grow(eff_ctx *ctx, void **arr, int64_t *cap, int64_t n, size_t elem) {
    void *p;
    int64_t nc;
    if (n < *cap) return 1;
    nc = *cap ? *cap * 2 : 16;
    p = eff_ctx_alloc(ctx, (size_t)nc * elem);
    if (!p) return 0;
    if (n) memcpy(p, *arr, (size_t)n * elem);
    eff_ctx_free(ctx, *arr);
    *arr = p;
    *cap = nc;
    return 1;
}

EFFDEF eff_status eff_quant_gguf_writer_set(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, const eff_quant_gguf_value *v) {
    const char *fn = "eff_quant_gguf_writer_set";
    eff_quant_gguf_value c;
    int64_t i;
    uint64_t k;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, w);
    EFF__CHECK_PTR(ctx, key);
    EFF__CHECK_PTR(ctx, v);
    EFF__CHECK(ctx, key[0] != 0, EFF_ERR_INVALID_ARG, "%s: 'key' is empty", fn);
    EFF__CHECK(ctx, v->type >= 0 && v->type < EFF_GGUF_TYPE_COUNT, EFF_ERR_INVALID_ARG, "%s: key '%s': 'v->type' %d is invalid", fn,
               key, v->type);
    EFF__CHECK(ctx, v->type != EFF_GGUF_ARRAY || (v->elem_type >= 0 && v->elem_type < EFF_GGUF_TYPE_COUNT && v->elem_type != EFF_GGUF_ARRAY),
               EFF_ERR_INVALID_ARG, "%s: key '%s': 'v->elem_type' %d is invalid (no nested arrays)", fn, key, v->elem_type);
    EFF__CHECK(ctx, v->type != EFF_GGUF_STRING || v->len == 0 || v->str, EFF_ERR_INVALID_ARG, "%s: key '%s': 'v->str' is NULL", fn, key);
    EFF__CHECK(ctx, v->type != EFF_GGUF_BOOL || v->v.b == 0 || v->v.b == 1, EFF_ERR_INVALID_ARG, "%s: key '%s': bool must be 0 or 1", fn, key);
    EFF__CHECK(ctx, v->type != EFF_GGUF_ARRAY || v->count == 0 || (v->elem_type == EFF_GGUF_STRING ? v->strs != NULL : v->data != NULL),
               EFF_ERR_INVALID_ARG, "%s: key '%s': array data is NULL", fn, key);
    EFF__CHECK(ctx, v->count < ((uint64_t)1 << 40), EFF_ERR_INVALID_ARG, "%s: key '%s': 'v->count' is absurd", fn, key);
    if (strcmp(key, "general.alignment") == 0)
        EFF__CHECK(ctx, v->type == EFF_GGUF_U32 && v->v.u32 && !(v->v.u32 & (v->v.u32 - 1)), EFF_ERR_INVALID_ARG,
                   "%s: 'general.alignment' must be a u32 power of two", fn);
    if (v->type == EFF_GGUF_ARRAY && v->elem_type == EFF_GGUF_BOOL)
        for (k = 0; k < v->count; k++)
            EFF__CHECK(ctx, ((const uint8_t *)v->data)[k] <= 1, EFF_ERR_INVALID_ARG, "%s: key '%s': bool element %llu is not 0 or 1", fn,
                       key, (unsigned long long)k);
    c = *v;
    c.str = NULL; c.data = NULL; c.strs = NULL;
    if (v->type == EFF_GGUF_STRING && !(c.str = (const char *)eff__dup(ctx, v->str, (size_t)v->len, 1))) return eff__oom(ctx, fn);
    if (v->type == EFF_GGUF_ARRAY && v->elem_type != EFF_GGUF_STRING &&
        !(c.data = eff__dup(ctx, v->data, (size_t)(v->count * (uint64_t)eff__gguf_size[v->elem_type]), 0)))
        return eff__oom(ctx, fn);
    if (v->type == EFF_GGUF_ARRAY && v->elem_type == EFF_GGUF_STRING) {
        eff_quant_gguf_str *ss = (eff_quant_gguf_str *)eff_ctx_calloc(ctx, (size_t)(v->count + 1) * sizeof *ss);
        if (!ss) return eff__oom(ctx, fn);
        c.strs = ss;
        for (k = 0; k < v->count; k++) {
            if (v->strs[k].len && !v->strs[k].str) { eff__gguf_value_free(ctx, &c); return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "%s: key '%s': string %llu is NULL", fn, key, (unsigned long long)k); }
            ss[k].len = v->strs[k].len;
            if (!(ss[k].str = (const char *)eff__dup(ctx, v->strs[k].str, (size_t)v->strs[k].len, 1))) { eff__gguf_value_free(ctx, &c); return eff__oom(ctx, fn); }
        }
    }
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            eff__gguf_value_free(ctx, &w->kv[i].value);
            w->kv[i].value = c;
            return EFF_OK;
        }
    if (!eff__grow(ctx, (void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) { eff__gguf_value_free(ctx, &c); return eff__oom(ctx, fn); }
    w->kv[w->n_kv].key = (const char *)eff__dup(ctx, key, strlen(key), 1);
    if (!w->kv[w->n_kv].key) { eff__gguf_value_free(ctx, &c); return eff__oom(ctx, fn); }
    w->kv[w->n_kv].value = c;
    w->n_kv++;
    return EFF_OK;
}
EFFDEF eff_status eff_quant_gguf_writer_set_u32(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, uint32_t x) {
    eff_quant_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = EFF_GGUF_U32; v.v.u32 = x;
    return eff_quant_gguf_writer_set(ctx, w, key, &v);
}
EFFDEF eff_status eff_quant_gguf_writer_set_f32(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, float x) {
    eff_quant_gguf_value v;
    memset(&v, 0, sizeof v);
    v.type = EFF_GGUF_F32; v.v.f32 = x;
    return eff_quant_gguf_writer_set(ctx, w, key, &v);
}
EFFDEF eff_status eff_quant_gguf_writer_set_str(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *key, const char *x) {
    eff_quant_gguf_value v;
    EFF__CHECK(ctx, x != NULL, EFF_ERR_INVALID_ARG, "eff_quant_gguf_writer_set_str: argument 'x' is NULL");
    memset(&v, 0, sizeof v);
    v.type = EFF_GGUF_STRING; v.str = x; v.len = strlen(x);
    return eff_quant_gguf_writer_set(ctx, w, key, &v);
}

EFFDEF eff_status eff_quant_gguf_writer_add_tensor(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *name, uint32_t ggml_type,
                                                   uint32_t n_dims, const int64_t *ne, const void *data) {
    const char *fn = "eff_quant_gguf_writer_add_tensor";
    eff_quant_gguf_tensor t;
    int64_t i, nb;
    uint32_t j;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, w);
    EFF__CHECK_PTR(ctx, name);
    EFF__CHECK_PTR(ctx, ne);
    EFF__CHECK(ctx, strlen(name) < EFF_GGUF_MAX_NAME, EFF_ERR_INVALID_ARG, "%s: 'name' '%s' must be shorter than %d bytes", fn, name,
               EFF_GGUF_MAX_NAME);
    EFF__CHECK(ctx, ggml_type < EFF__NGGML_TYPES && eff__ggml_types[ggml_type].name, EFF_ERR_INVALID_ARG,
               "%s: tensor '%s': 'ggml_type' %u is unknown", fn, name, ggml_type);
    EFF__CHECK(ctx, n_dims >= 1 && n_dims <= 4, EFF_ERR_INVALID_ARG, "%s: tensor '%s': 'n_dims' %u must be 1..4", fn, name, n_dims);
    memset(&t, 0, sizeof t);
    for (j = 0; j < 4; j++) t.ne[j] = 1;
    for (j = 0; j < n_dims; j++) {
        EFF__CHECK(ctx, ne[j] >= 0, EFF_ERR_INVALID_ARG, "%s: tensor '%s': ne[%u] = %lld is negative", fn, name, j, (long long)ne[j]);
        t.ne[j] = ne[j];
    }
    EFF__CHECK(ctx, t.ne[0] % eff__ggml_types[ggml_type].blck == 0, EFF_ERR_SHAPE,
               "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size", fn, name, (long long)t.ne[0],
               eff__ggml_types[ggml_type].name);
    nb = eff__gguf_nbytes(ggml_type, 4, t.ne);
    EFF__CHECK(ctx, nb >= 0, EFF_ERR_OVERFLOW, "%s: tensor '%s': size overflows", fn, name);
    EFF__CHECK(ctx, nb == 0 || data, EFF_ERR_INVALID_ARG, "%s: tensor '%s': 'data' is NULL", fn, name);
    for (i = 0; i < w->n_tensors; i++)
        EFF__CHECK(ctx, strcmp(w->tensors[i].name, name) != 0, EFF_ERR_INVALID_ARG, "%s: duplicate tensor name '%s'", fn, name);
    t.name = (const char *)eff__dup(ctx, name, strlen(name), 1);
    if (!t.name || !eff__grow(ctx, (void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof t)) {
        eff_ctx_free(ctx, (void *)(uintptr_t)t.name);
        return eff__oom(ctx, fn);
    }
    t.n_dims = n_dims; t.ggml_type = ggml_type; t.dtype = eff__ggml_types[ggml_type].dtype;
    t.nbytes = (uint64_t)nb; t.data = data;
    w->tensors[w->n_tensors++] = t;
    return EFF_OK;
}

EFFDEF void eff_quant_gguf_writer_free(eff_ctx *ctx, eff_quant_gguf_writer *w) {
    int64_t i;
    if (!w) return;
    for (i = 0; i < w->n_kv; i++) {
        eff_ctx_free(ctx, (void *)(uintptr_t)w->kv[i].key);
        eff__gguf_value_free(ctx, &w->kv[i].value);
    }
    for (i = 0; i < w->n_tensors; i++) eff_ctx_free(ctx, (void *)(uintptr_t)w->tensors[i].name);
    eff_ctx_free(ctx, w->kv);
    eff_ctx_free(ctx, w->tensors);
    memset(w, 0, sizeof *w);
}

/* Serializer over a buffer; with buf == NULL it only counts. */
typedef struct { unsigned char *buf; uint64_t n; } eff__gw;
static void eff__gw_raw(eff__gw *b, const void *p, uint64_t k) { if (b->buf && k) memcpy(b->buf + b->n, p, (size_t)k); b->n += k; }
static void eff__gw_u32(eff__gw *b, uint32_t v) {
    unsigned char x[4];
    x[0] = (unsigned char)v; x[1] = (unsigned char)(v >> 8); x[2] = (unsigned char)(v >> 16); x[3] = (unsigned char)(v >> 24);
    eff__gw_raw(b, x, 4);
}
static void eff__gw_u64(eff__gw *b, uint64_t v) { eff__gw_u32(b, (uint32_t)v); eff__gw_u32(b, (uint32_t)(v >> 32)); }
static void eff__gw_str(eff__gw *b, const char *s, uint64_t len) { eff__gw_u64(b, len); eff__gw_raw(b, s, len); }
static void eff__gw_header(eff__gw *b, const eff_quant_gguf_writer *w, uint64_t alignment) {
    int64_t i;
    uint64_t k, off = 0;
    uint32_t j;
    eff__gw_raw(b, "GGUF", 4);
    eff__gw_u32(b, 3);
    eff__gw_u64(b, (uint64_t)w->n_tensors);
    eff__gw_u64(b, (uint64_t)w->n_kv);
    for (i = 0; i < w->n_kv; i++) {
        const eff_quant_gguf_value *v = &w->kv[i].value;
        eff__gw_str(b, w->kv[i].key, strlen(w->kv[i].key));
        eff__gw_u32(b, (uint32_t)v->type);
        if (v->type == EFF_GGUF_STRING) eff__gw_str(b, v->str, v->len);
        else if (v->type == EFF_GGUF_ARRAY) {
            eff__gw_u32(b, (uint32_t)v->elem_type);
            eff__gw_u64(b, v->count);
            if (v->elem_type == EFF_GGUF_STRING) for (k = 0; k < v->count; k++) eff__gw_str(b, v->strs[k].str, v->strs[k].len);
            else eff__gw_raw(b, v->data, v->count * (uint64_t)eff__gguf_size[v->elem_type]);
        } else if (v->type == EFF_GGUF_BOOL) {
            unsigned char c = (unsigned char)(v->v.b != 0);
            eff__gw_raw(b, &c, 1);
        } else eff__gw_raw(b, &v->v, (uint64_t)eff__gguf_size[v->type]);   /* little-endian host */
    }
    for (i = 0; i < w->n_tensors; i++) {
        const eff_quant_gguf_tensor *t = &w->tensors[i];
        eff__gw_str(b, t->name, strlen(t->name));
        eff__gw_u32(b, t->n_dims);
        for (j = 0; j < t->n_dims; j++) eff__gw_u64(b, (uint64_t)t->ne[j]);
        eff__gw_u32(b, t->ggml_type);
        eff__gw_u64(b, off);
        off = eff__align_up(off + t->nbytes, alignment);
    }
    k = eff__align_up(b->n, alignment) - b->n;
    if (b->buf) memset(b->buf + b->n, 0, (size_t)k);
    b->n += k;
}

EFFDEF eff_status eff_quant_gguf_writer_write(eff_ctx *ctx, eff_quant_gguf_writer *w, const char *path) {
    const char *fn = "eff_quant_gguf_writer_write";
    eff_file_writer fw;
    eff__gw b;
    uint64_t alignment = EFF_GGUF_DEFAULT_ALIGNMENT;
    static const unsigned char zeros[64] = {0};
    int64_t i;
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, w);
    EFF__CHECK_PTR(ctx, path);
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) alignment = w->kv[i].value.v.u32;
    b.buf = NULL; b.n = 0;
    eff__gw_header(&b, w, alignment);
    b.buf = (unsigned char *)eff_ctx_alloc(ctx, (size_t)b.n + 1);
    if (!b.buf) return eff__oom(ctx, fn);
    b.n = 0;
    eff__gw_header(&b, w, alignment);
    st = eff_file_writer_open(ctx, &fw, path);
    if (st) { eff_ctx_free(ctx, b.buf); return st; }
    st = eff_file_writer_write(ctx, &fw, b.buf, (size_t)b.n);
    eff_ctx_free(ctx, b.buf);
    for (i = 0; st == EFF_OK && i < w->n_tensors; i++) {
        uint64_t pad = eff__align_up(w->tensors[i].nbytes, alignment) - w->tensors[i].nbytes;
        if (w->tensors[i].nbytes) st = eff_file_writer_write(ctx, &fw, w->tensors[i].data, (size_t)w->tensors[i].nbytes);
        while (st == EFF_OK && pad) {
            size_t k = (size_t)(pad < sizeof zeros ? pad : sizeof zeros);
            st = eff_file_writer_write(ctx, &fw, zeros, k);
            pad -= k;
        }
    }
    if (st) { eff_file_writer_abort(ctx, &fw); return st; }
    return eff_file_writer_commit(ctx, &fw);
}

/* ---------------------------------------------------------------------------
   Pruning
   --------------------------------------------------------------------------- */
/* The k-th smallest (0-based) of a[0:n] by quickselect; a is reordered. */
static float eff__select_kth(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, i = lo, j = hi;
        float x, t, p;
        /* median of three as the pivot */
        if (a[mid] < a[lo]) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (a[hi] < a[lo]) { t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (a[hi] < a[mid]) { t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
        p = a[mid];
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) { x = a[i]; a[i] = a[j]; a[j] = x; i++; j--; }
        }
        if (k <= j) hi = j; else if (k >= i) lo = i; else return a[k];
    }
    return a[k];
}

/* Prunes the k smallest |w| across the given tensors (ties: lower tensor, lower index). */
static eff_status eff__prune_k(eff_ctx *ctx, const char *fn, uint8_t *const *masks, const float *const *ws, const int64_t *ns,
                               int64_t nt, int64_t total, int64_t k) {
    float *a, thr;
    int64_t t, i, o = 0, below = 0, ties;
    for (t = 0; t < nt; t++) for (i = 0; i < ns[t]; i++) masks[t][i] = 1;
    if (k <= 0) return EFF_OK;
    a = (float *)eff_ctx_alloc(ctx, (size_t)total * sizeof(float));
    if (!a) return eff__oom(ctx, fn);
    for (t = 0; t < nt; t++) for (i = 0; i < ns[t]; i++) a[o++] = fabsf(ws[t][i]);
    thr = eff__select_kth(a, total, k - 1);
    eff_ctx_free(ctx, a);
    for (t = 0; t < nt; t++) for (i = 0; i < ns[t]; i++) below += fabsf(ws[t][i]) < thr;
    ties = k - below;   /* how many |w| == thr to prune, lowest index first */
    for (t = 0; t < nt; t++)
        for (i = 0; i < ns[t]; i++) {
            float v = fabsf(ws[t][i]);
            if (v < thr) masks[t][i] = 0;
            else if (v == thr && ties > 0) { masks[t][i] = 0; ties--; }
        }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_prune_magnitude_global(eff_ctx *ctx, uint8_t *const *masks, const float *const *ws,
                                                   const int64_t *ns, int64_t ntensors, double sparsity) {
    const char *fn = "eff_quant_prune_magnitude_global";
    int64_t t, total = 0;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, ntensors >= 0 && (ntensors == 0 || (masks && ws && ns)), EFF_ERR_INVALID_ARG, "%s: NULL arrays or 'ntensors' < 0", fn);
    EFF__CHECK(ctx, sparsity >= 0.0 && sparsity <= 1.0, EFF_ERR_INVALID_ARG, "%s: 'sparsity' %g must be in [0, 1]", fn, sparsity);
    for (t = 0; t < ntensors; t++) {
        EFF__CHECK(ctx, ns[t] >= 0 && (ns[t] == 0 || (masks[t] && ws[t])), EFF_ERR_INVALID_ARG, "%s: tensor %lld: NULL or negative size", fn,
                   (long long)t);
        EFF__CHECK(ctx, !eff__add_ovf(total, ns[t], &total), EFF_ERR_OVERFLOW, "%s: total size overflows", fn);
    }
    return eff__prune_k(ctx, fn, masks, ws, ns, ntensors, total, (int64_t)nearbyint(sparsity * (double)total));
}

EFFDEF eff_status eff_quant_prune_magnitude(eff_ctx *ctx, uint8_t *mask, const float *w, int64_t n, double sparsity) {
    const char *fn = "eff_quant_prune_magnitude";
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, n >= 0 && (n == 0 || (mask && w)), EFF_ERR_INVALID_ARG, "%s: 'mask' or 'w' is NULL, or 'n' < 0", fn);
    EFF__CHECK(ctx, sparsity >= 0.0 && sparsity <= 1.0, EFF_ERR_INVALID_ARG, "%s: 'sparsity' %g must be in [0, 1]", fn, sparsity);
    return eff__prune_k(ctx, fn, &mask, &w, &n, 1, n, (int64_t)nearbyint(sparsity * (double)n));
}

EFFDEF eff_status eff_quant_prune_apply(eff_ctx *ctx, float *w, const uint8_t *mask, int64_t n) {
    int64_t i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, n >= 0 && (n == 0 || (mask && w)), EFF_ERR_INVALID_ARG, "eff_quant_prune_apply: 'w' or 'mask' is NULL, or 'n' < 0");
    for (i = 0; i < n; i++) if (!mask[i]) w[i] = 0.0f;
    return EFF_OK;
}

EFFDEF double eff_quant_prune_schedule(double s_initial, double s_final, int64_t t, int64_t t0, int64_t n_steps, int64_t dt) {
    double p, span = (double)n_steps * (double)(dt > 0 ? dt : 1);
    if (n_steps <= 0) return s_final;
    p = ((double)t - (double)t0) / span;
    p = p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p;
    return s_final + (s_initial - s_final) * (1.0 - p) * (1.0 - p) * (1.0 - p);
}

EFFDEF void eff_quant_nm_free(eff_ctx *ctx, eff_quant_nm *s) {
    if (!s) return;
    eff_ctx_free(ctx, s->values);
    eff_ctx_free(ctx, s->idx);
    memset(s, 0, sizeof *s);
}

EFFDEF eff_status eff_quant_nm_prune(eff_ctx *ctx, eff_quant_nm *out, const float *w, int64_t rows, int64_t cols, int n, int m) {
    const char *fn = "eff_quant_nm_prune";
    int64_t r, g, kept, total;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, out);
    memset(out, 0, sizeof *out);
    EFF__CHECK(ctx, m >= 1 && m <= 255 && n >= 1 && n <= m, EFF_ERR_INVALID_ARG, "%s: need 1 <= 'n' (%d) <= 'm' (%d) <= 255", fn, n, m);
    EFF__CHECK(ctx, rows >= 0 && cols >= 0 && cols % m == 0, EFF_ERR_SHAPE, "%s: 'cols' %lld must be a multiple of 'm' %d", fn,
               (long long)cols, m);
    EFF__CHECK(ctx, !eff__mul_ovf(rows, cols / m * n, &total), EFF_ERR_OVERFLOW, "%s: size overflows", fn);
    EFF__CHECK(ctx, total == 0 || w, EFF_ERR_INVALID_ARG, "%s: argument 'w' is NULL", fn);
    out->values = (float *)eff_ctx_alloc(ctx, (size_t)total * sizeof(float) + 4);
    out->idx = (uint8_t *)eff_ctx_alloc(ctx, (size_t)total + 1);
    if (!out->values || !out->idx) { eff_quant_nm_free(ctx, out); return eff__oom(ctx, fn); }
    out->rows = rows; out->cols = cols; out->n = n; out->m = m;
    kept = 0;
    for (r = 0; r < rows; r++)
        for (g = 0; g < cols; g += m) {
            const float *x = w + r * cols + g;
            uint8_t take[256];
            int k, j;
            memset(take, 0, (size_t)m);
            for (k = 0; k < n; k++) {   /* n times: the largest |x| not yet taken, lowest index on ties */
                int best = -1;
                for (j = 0; j < m; j++) if (!take[j] && (best < 0 || fabsf(x[j]) > fabsf(x[best]))) best = j;
                take[best] = 1;
            }
            for (j = 0; j < m; j++)
                if (take[j]) { out->values[kept] = x[j]; out->idx[kept] = (uint8_t)j; kept++; }
        }
    return EFF_OK;
}

static eff_status eff__check_nm(eff_ctx *ctx, const char *fn, const eff_quant_nm *s) {
    EFF__CHECK(ctx, s && s->m >= 1 && s->n >= 1 && s->n <= s->m && s->rows >= 0 && s->cols >= 0 && s->cols % s->m == 0 &&
               (s->rows * s->cols == 0 || (s->values && s->idx)), EFF_ERR_INVALID_ARG, "%s: 's' is not from eff_quant_nm_prune", fn);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_nm_decompress(eff_ctx *ctx, const eff_quant_nm *s, float *w) {
    int64_t r, g, k = 0;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_nm(ctx, "eff_quant_nm_decompress", s));
    EFF__CHECK(ctx, s->rows * s->cols == 0 || w, EFF_ERR_INVALID_ARG, "eff_quant_nm_decompress: argument 'w' is NULL");
    memset(w, 0, (size_t)(s->rows * s->cols) * sizeof(float));
    for (r = 0; r < s->rows; r++)
        for (g = 0; g < s->cols; g += s->m) {
            int j;
            for (j = 0; j < s->n; j++, k++) w[r * s->cols + g + s->idx[k]] = s->values[k];
        }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_nm_matmul(eff_ctx *ctx, float *Y, const float *X, int64_t M, const eff_quant_nm *W, const float *bias) {
    const char *fn = "eff_quant_nm_matmul";
    int64_t j, K, N, per_row;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_nm(ctx, fn, W));
    EFF__CHECK(ctx, M >= 0, EFF_ERR_INVALID_ARG, "%s: 'M' = %lld is negative", fn, (long long)M);
    K = W->cols; N = W->rows; per_row = K / W->m * W->n;
    if (M == 0 || N == 0) return EFF_OK;
    EFF__CHECK(ctx, X && Y, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, X ? "Y" : "X");
    nt = eff_ctx_n_threads(ctx);
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * per_row * M > 65536))
    for (j = 0; j < N; j++) {
        const float *v = W->values + j * per_row;
        const uint8_t *ix = W->idx + j * per_row;
        int64_t i, g, k;
        for (i = 0; i < M; i++) {
            const float *x = X + i * K;
            float acc = 0.0f;
            g = k = 0;
#if defined(EFF__Q_AVX512)
            if (W->n == 2 && W->m == 4) {
                /* 16 kept values = 8 groups = 32 elements of x: select each kept value's
                   element with one two-register permute (index = 4 * group + position) */
                const __m512i base = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0);
                __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
                for (; g + 64 <= K; g += 64, k += 32) {
                    __m512i i0 = _mm512_add_epi32(base, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix + k))));
                    __m512i i1 = _mm512_add_epi32(base, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix + k + 16))));
                    __m512 x0 = _mm512_permutex2var_ps(_mm512_loadu_ps(x + g), i0, _mm512_loadu_ps(x + g + 16));
                    __m512 x1 = _mm512_permutex2var_ps(_mm512_loadu_ps(x + g + 32), i1, _mm512_loadu_ps(x + g + 48));
                    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(v + k), x0, a0);
                    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(v + k + 16), x1, a1);
                }
                acc = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
            }
#endif
            for (; g < K; g += W->m) {
                int q;
                for (q = 0; q < W->n; q++, k++) acc += v[k] * x[g + ix[k]];
            }
            Y[i * N + j] = acc + (bias ? bias[j] : 0.0f);
        }
    }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_head_gate_grad(eff_ctx *ctx, float *gate_grad, const float *att, const float *datt,
                                           int64_t T, int64_t H, int64_t D) {
    int64_t t, h, d;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, T >= 0 && H >= 0 && D >= 0, EFF_ERR_INVALID_ARG, "eff_quant_head_gate_grad: negative size");
    EFF__CHECK(ctx, H == 0 || (gate_grad && (T * D == 0 || (att && datt))), EFF_ERR_INVALID_ARG,
               "eff_quant_head_gate_grad: an array argument is NULL");
    for (h = 0; h < H; h++) {
        double s = 0.0;
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++) s += (double)att[(t * H + h) * D + d] * datt[(t * H + h) * D + d];
        gate_grad[h] = (float)s;
    }
    return EFF_OK;
}

EFFDEF eff_status eff_quant_head_importance(eff_ctx *ctx, float *importance, const float *gate_grads, int64_t B, int64_t L, int64_t H) {
    int64_t b, l, h;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, B > 0 && L >= 0 && H >= 0, EFF_ERR_INVALID_ARG, "eff_quant_head_importance: need 'B' > 0 and 'L', 'H' >= 0");
    EFF__CHECK(ctx, L * H == 0 || (importance && gate_grads), EFF_ERR_INVALID_ARG, "eff_quant_head_importance: an array argument is NULL");
    for (l = 0; l < L; l++) {
        double norm = 0.0;
        for (h = 0; h < H; h++) {
            double s = 0.0;
            for (b = 0; b < B; b++) s += fabs((double)gate_grads[(b * L + l) * H + h]);
            importance[l * H + h] = (float)(s / (double)B);
            norm += (double)importance[l * H + h] * importance[l * H + h];
        }
        /* HF bertology: I / (||I||_2 + 1e-20) per layer */
        for (h = 0; h < H; h++) importance[l * H + h] = (float)(importance[l * H + h] / (sqrt(norm) + 1e-20));
    }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Distillation losses
   --------------------------------------------------------------------------- */
static eff_status eff__check_kd(eff_ctx *ctx, const char *fn, const void *a, const float *s, const float *t, int64_t N, int64_t V,
                                const eff_quant_distill_opts *opts, double *T) {
    EFF__CHECK(ctx, N > 0 && V > 0, EFF_ERR_INVALID_ARG, "%s: 'N' and 'V' must be positive", fn);
    EFF__CHECK(ctx, a && s && t, EFF_ERR_INVALID_ARG, "%s: an array argument is NULL", fn);
    *T = opts && opts->temperature != 0.0f ? opts->temperature : 1.0;
    EFF__CHECK(ctx, *T > 0.0 && *T < 1e30, EFF_ERR_INVALID_ARG, "%s: 'opts->temperature' %g must be positive", fn, *T);
    return EFF_OK;
}
/* log-softmax of z / T for one row, in double */
static void eff__log_softmax_T(const float *z, int64_t V, double T, double *out) {
    double mx = -INFINITY, s = 0.0, lse;
    int64_t v;
    for (v = 0; v < V; v++) { out[v] = (double)z[v] / T; mx = out[v] > mx ? out[v] : mx; }
    for (v = 0; v < V; v++) s += exp(out[v] - mx);
    lse = mx + log(s);
    for (v = 0; v < V; v++) out[v] -= lse;
}

EFFDEF eff_status eff_quant_distill_kl_forward(eff_ctx *ctx, float *loss, const float *student, const float *teacher,
                                               int64_t N, int64_t V, const eff_quant_distill_opts *opts) {
    const char *fn = "eff_quant_distill_kl_forward";
    double T = 1.0, total = 0.0, *lp, *lq;
    int64_t i, v;
    int rev = opts && opts->reverse;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_kd(ctx, fn, loss, student, teacher, N, V, opts, &T));
    lp = (double *)eff_ctx_alloc(ctx, (size_t)(2 * V) * sizeof(double));
    if (!lp) return eff__oom(ctx, fn);
    lq = lp + V;
    for (i = 0; i < N; i++) {
        eff__log_softmax_T(teacher + i * V, V, T, lp);
        eff__log_softmax_T(student + i * V, V, T, lq);
        for (v = 0; v < V; v++) total += rev ? exp(lq[v]) * (lq[v] - lp[v]) : exp(lp[v]) * (lp[v] - lq[v]);
    }
    eff_ctx_free(ctx, lp);
    *loss = (float)(total * T * T / (double)N);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_distill_kl_backward(eff_ctx *ctx, float *dstudent, const float *student, const float *teacher,
                                                int64_t N, int64_t V, float dloss, const eff_quant_distill_opts *opts) {
    const char *fn = "eff_quant_distill_kl_backward";
    double T = 1.0, *lp, *lq, scale;
    int64_t i, v;
    int rev = opts && opts->reverse;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_kd(ctx, fn, dstudent, student, teacher, N, V, opts, &T));
    lp = (double *)eff_ctx_alloc(ctx, (size_t)(2 * V) * sizeof(double));
    if (!lp) return eff__oom(ctx, fn);
    lq = lp + V;
    scale = (double)dloss * T / (double)N;   /* T^2 times the 1/T of d(s/T)/ds */
    for (i = 0; i < N; i++) {
        eff__log_softmax_T(teacher + i * V, V, T, lp);
        eff__log_softmax_T(student + i * V, V, T, lq);
        if (!rev) {
            for (v = 0; v < V; v++) dstudent[i * V + v] = (float)(scale * (exp(lq[v]) - exp(lp[v])));
        } else {   /* d KL(q||p) / dz_j = q_j (log q_j - log p_j - KL) */
            double kl = 0.0;
            for (v = 0; v < V; v++) kl += exp(lq[v]) * (lq[v] - lp[v]);
            for (v = 0; v < V; v++) dstudent[i * V + v] = (float)(scale * exp(lq[v]) * (lq[v] - lp[v] - kl));
        }
    }
    eff_ctx_free(ctx, lp);
    return EFF_OK;
}

/* torch's cosine_similarity eps inside the norms: cos = a.b / sqrt((|a|^2 + e)(|b|^2 + e)) */
#define EFF__COS_EPS 1e-12
EFFDEF eff_status eff_quant_distill_cosine_forward(eff_ctx *ctx, float *loss, const float *hs, const float *ht, int64_t N, int64_t D) {
    int64_t i, d;
    double total = 0.0;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, N > 0 && D > 0 && loss && hs && ht, EFF_ERR_INVALID_ARG, "eff_quant_distill_cosine_forward: bad sizes or NULL array");
    for (i = 0; i < N; i++) {
        double ab = 0, aa = 0, bb = 0;
        for (d = 0; d < D; d++) { double a = hs[i * D + d], b = ht[i * D + d]; ab += a * b; aa += a * a; bb += b * b; }
        total += 1.0 - ab / sqrt((aa + EFF__COS_EPS) * (bb + EFF__COS_EPS));
    }
    *loss = (float)(total / (double)N);
    return EFF_OK;
}
EFFDEF eff_status eff_quant_distill_cosine_backward(eff_ctx *ctx, float *dhs, const float *hs, const float *ht, int64_t N, int64_t D,
                                                    float dloss) {
    int64_t i, d;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, N > 0 && D > 0 && dhs && hs && ht, EFF_ERR_INVALID_ARG, "eff_quant_distill_cosine_backward: bad sizes or NULL array");
    for (i = 0; i < N; i++) {
        double ab = 0, aa = 0, bb = 0, den;
        for (d = 0; d < D; d++) { double a = hs[i * D + d], b = ht[i * D + d]; ab += a * b; aa += a * a; bb += b * b; }
        den = sqrt((aa + EFF__COS_EPS) * (bb + EFF__COS_EPS));
        for (d = 0; d < D; d++)   /* d(1 - cos)/da = -(b / den - ab / den * a / (|a|^2 + e)) */
            dhs[i * D + d] = (float)(-(double)dloss / (double)N * (ht[i * D + d] / den - ab / den * hs[i * D + d] / (aa + EFF__COS_EPS)));
    }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   SVD (one-sided Jacobi) and low-rank factors
   --------------------------------------------------------------------------- */
/* W: m x n column-major (m >= n) is orthogonalized in place, V (n x n, column-major)
   accumulates the rotations. */
static void eff__jacobi(double *W, double *V, int64_t m, int64_t n) {
    int sweep;
    int64_t i, j, r;
    for (sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (i = 0; i < n; i++)
            for (j = i + 1; j < n; j++) {
                double *wi = W + i * m, *wj = W + j * m, a = 0, b = 0, g = 0, zeta, t, c, s;
                for (r = 0; r < m; r++) { a += wi[r] * wi[r]; b += wj[r] * wj[r]; g += wi[r] * wj[r]; }
                if (a == 0.0 || b == 0.0 || fabs(g) <= 1e-15 * sqrt(a * b)) continue;
                off = fabs(g) / sqrt(a * b) > off ? fabs(g) / sqrt(a * b) : off;
                zeta = (b - a) / (2.0 * g);
                t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                c = 1.0 / sqrt(1.0 + t * t);
                s = c * t;
                for (r = 0; r < m; r++) { double x = wi[r], y = wj[r]; wi[r] = c * x - s * y; wj[r] = s * x + c * y; }
                for (r = 0; r < n; r++) {
                    double x = V[i * n + r], y = V[j * n + r];
                    V[i * n + r] = c * x - s * y;
                    V[j * n + r] = s * x + c * y;
                }
            }
        if (off < 1e-14) break;
    }
}

EFFDEF eff_status eff_quant_svd(eff_ctx *ctx, const float *A, int64_t m, int64_t n, float *U, float *S, float *Vt) {
    const char *fn = "eff_quant_svd";
    int64_t tall, rows, cols, i, j, k, *ord;
    double *W, *V, *sig;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, m > 0 && n > 0 && m <= 65536 && n <= 65536, EFF_ERR_INVALID_ARG, "%s: 'm' %lld and 'n' %lld must be in [1, 65536]",
               fn, (long long)m, (long long)n);
    EFF__CHECK(ctx, A && S, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, A ? "S" : "A");
    tall = m >= n;
    rows = tall ? m : n;   /* work on A (tall) or A^T (wide): rows >= cols */
    cols = tall ? n : m;
    W = (double *)eff_ctx_alloc(ctx, (size_t)(rows * cols + cols * cols + cols) * sizeof(double));
    ord = (int64_t *)eff_ctx_alloc(ctx, (size_t)cols * sizeof(int64_t));
    if (!W || !ord) { eff_ctx_free(ctx, W); eff_ctx_free(ctx, ord); return eff__oom(ctx, fn); }
    V = W + rows * cols;
    sig = V + cols * cols;
    for (j = 0; j < cols; j++)
        for (i = 0; i < rows; i++) W[j * rows + i] = tall ? A[i * n + j] : A[j * n + i];
    for (i = 0; i < cols * cols; i++) V[i] = 0.0;
    for (i = 0; i < cols; i++) V[i * cols + i] = 1.0;
    eff__jacobi(W, V, rows, cols);
    for (j = 0; j < cols; j++) {
        double s2 = 0.0;
        for (i = 0; i < rows; i++) s2 += W[j * rows + i] * W[j * rows + i];
        sig[j] = sqrt(s2);
        ord[j] = j;
    }
    for (i = 1; i < cols; i++) {   /* insertion sort, descending */
        int64_t o = ord[i];
        for (k = i; k > 0 && sig[ord[k - 1]] < sig[o]; k--) ord[k] = ord[k - 1];
        ord[k] = o;
    }
    /* tall: A = W' diag V^T with W' = W / sig; wide: A^T = W' diag V^T, so A = V diag W'^T */
    for (k = 0; k < cols; k++) {
        int64_t c = ord[k];
        double sv = sig[c], inv = sv > 0.0 ? 1.0 / sv : 0.0;
        S[k] = (float)sv;
        for (i = 0; i < rows; i++) {
            float u = (float)(W[c * rows + i] * inv);
            if (tall) { if (U) U[i * cols + k] = u; }
            else if (Vt) Vt[k * n + i] = u;
        }
        for (i = 0; i < cols; i++) {
            float v = (float)V[c * cols + i];
            if (tall) { if (Vt) Vt[k * n + i] = v; }
            else if (U) U[i * cols + k] = v;
        }
    }
    eff_ctx_free(ctx, W);
    eff_ctx_free(ctx, ord);
    return EFF_OK;
}

EFFDEF eff_status eff_quant_lowrank(eff_ctx *ctx, const float *A, int64_t m, int64_t n, int64_t rank, double energy,
                                    float *B, float *C, int64_t *rank_out, double *rel_err) {
    const char *fn = "eff_quant_lowrank";
    int64_t k, r, i, j;
    float *U, *S, *Vt;
    double tot = 0.0, acc = 0.0, tail = 0.0;
    eff_status st;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK(ctx, m > 0 && n > 0, EFF_ERR_INVALID_ARG, "%s: 'm' and 'n' must be positive", fn);
    k = m < n ? m : n;
    EFF__CHECK(ctx, rank >= 0 && rank <= k, EFF_ERR_INVALID_ARG, "%s: 'rank' %lld must be in [0, %lld]", fn, (long long)rank, (long long)k);
    EFF__CHECK(ctx, rank > 0 || (energy > 0.0 && energy <= 1.0), EFF_ERR_INVALID_ARG, "%s: 'energy' %g must be in (0, 1] when rank = 0",
               fn, energy);
    EFF__CHECK(ctx, A && B && C, EFF_ERR_INVALID_ARG, "%s: 'A', 'B' and 'C' must be non-NULL", fn);
    U = (float *)eff_ctx_alloc(ctx, (size_t)(m * k + k + k * n) * sizeof(float));
    if (!U) return eff__oom(ctx, fn);
    S = U + m * k;
    Vt = S + k;
    st = eff_quant_svd(ctx, A, m, n, U, S, Vt);
    if (st) { eff_ctx_free(ctx, U); return st; }
    for (i = 0; i < k; i++) tot += (double)S[i] * S[i];
    r = rank;
    if (r == 0) {
        for (r = 0; r < k; r++) { acc += (double)S[r] * S[r]; if (acc >= energy * tot) { r++; break; } }
        if (r > k) r = k;
    }
    for (i = r; i < k; i++) tail += (double)S[i] * S[i];
    for (i = 0; i < m; i++) for (j = 0; j < r; j++) B[i * r + j] = U[i * k + j] * sqrtf(S[j]);
    for (j = 0; j < r; j++) for (i = 0; i < n; i++) C[j * n + i] = sqrtf(S[j]) * Vt[j * n + i];
    if (rank_out) *rank_out = r;
    if (rel_err) *rel_err = tot > 0.0 ? sqrt(tail / tot) : 0.0;
    eff_ctx_free(ctx, U);
    return EFF_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* EFF_QUANT_IMPLEMENTATION */
