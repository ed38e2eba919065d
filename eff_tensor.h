/* eff_tensor.h - v0.1 - the foundation of eff: context, tensors, dtypes, core ops,
   sgemm, optimizer kernels, fp16/bf16, JSON and safetensors.   Public domain / MIT.

   eff is a suite of stb-style, header-only C libraries for efficient transformers.
   This header is the one every other eff header includes.

   USAGE
     In exactly one C or C++ file:
         #define EFF_TENSOR_IMPLEMENTATION      (or EFF_IMPLEMENTATION for all eff headers)
         #include "eff_tensor.h"
     Everywhere else just #include "eff_tensor.h".

     A ten-line program (examples/hello.c is this program; `make test` compiles it):

         #define EFF_IMPLEMENTATION
         #include "eff_tensor.h"
         #include <stdio.h>
         int main(void) {
             eff_ctx *ctx; float x[6] = {1,2,3,4,5,6}, w[6] = {1,0,0,0,1,0}, y[4];
             if (eff_ctx_create(NULL, &ctx)) return 1;
             eff_tensor X = eff_tensor_2d(x, EFF_F32, 2, 3), W = eff_tensor_2d(w, EFF_F32, 2, 3);
             eff_tensor Y = eff_tensor_2d(y, EFF_F32, 2, 2);
             eff_status s = eff_linear_forward(ctx, &Y, &X, &W, NULL);   // y = x W^T
             printf("%s: %g %g %g %g\n", eff_status_str(s), y[0], y[1], y[2], y[3]);
             eff_ctx_destroy(ctx); return (int)s;
         }

   CONVENTIONS
     - Shapes are listed outermost first, like PyTorch's .shape: a tensor with
       ne = {B, T, C} has C contiguous elements per row. nb[] are byte strides.
     - Linear layers follow PyTorch: y = x W^T + b, W stored [out, in] row-major.
     - Forward functions write their outputs (=). Backward functions accumulate
       parameter gradients (+=, so gradient accumulation is free) and write input
       gradients (=). The one exception is eff_residual_backward, which adds into
       the residual stream's gradient, because that gradient is a sum by design.
     - Activations are f32. Weights of eff_linear_* may be any registered dtype
       (f32, f16, bf16 here; eff_quant.h registers its block formats).
     - Every public function returns eff_status (0 = EFF_OK). On failure the context
       keeps a message naming the function and the failing argument:
       eff_ctx_last_error(ctx).
     - Zero-initialized option structs mean "defaults".

   DEFINES (set before including)
     EFF_TENSOR_IMPLEMENTATION / EFF_IMPLEMENTATION   emit the definitions
     EFF_STATIC          make every function static (private copy per file)
     EFF_MALLOC(sz) EFF_REALLOC(p,sz) EFF_FREE(p)     default allocator; all or none
     EFF_ASSERT(x)       internal invariant check (default: assert; never on user input)
     EFF_NO_SIMD         use the scalar SIMD fallback even when the target has AVX/NEON
     EFF_USE_CBLAS       eff_sgemm calls cblas_sgemm (link OpenBLAS or another CBLAS)
     EFF_CUDA            tensors on EFF_DEVICE_CUDA dispatch to cuda/eff_tensor.cu
     OpenMP: compile with -fopenmp to run kernels on ctx->n_threads threads.

   VERSIONS
     0.1  first release: context, tensors, dtype traits, SIMD layer, core ops with
          backward, packed sgemm, SGD/AdamW kernels, JSON, safetensors.
*/
#ifndef EFF_TENSOR_H
#define EFF_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef EFF_STATIC
#define EFFDEF static
#else
#define EFFDEF extern
#endif

#if defined(EFF_MALLOC) && defined(EFF_FREE) && defined(EFF_REALLOC)
/* ok */
#elif !defined(EFF_MALLOC) && !defined(EFF_FREE) && !defined(EFF_REALLOC)
/* ok: defaults below */
#else
#error "eff: define all of EFF_MALLOC, EFF_REALLOC and EFF_FREE, or none of them"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Status codes
   --------------------------------------------------------------------------- */
typedef enum eff_status {
    EFF_OK = 0,
    EFF_ERR_INVALID_ARG,   /* NULL pointer, bad option value */
    EFF_ERR_SHAPE,         /* shapes do not agree */
    EFF_ERR_DTYPE,         /* dtype not supported by this function */
    EFF_ERR_OOM,           /* allocator returned NULL */
    EFF_ERR_IO,            /* open/read/write/rename failed */
    EFF_ERR_FORMAT,        /* a file or string is malformed or lies about itself */
    EFF_ERR_UNSUPPORTED,   /* valid request that this build cannot do */
    EFF_ERR_OVERFLOW,      /* size arithmetic would overflow int64 */
    EFF_ERR_NOT_FOUND,     /* named item is not present */
    EFF_ERR_TIMEOUT,       /* a peer did not answer in time */
    EFF_ERR_PEER,          /* a peer failed */
    EFF_ERR_NUMERIC,       /* NaN/Inf where a finite value is required */
    EFF_ERR_DEVICE,        /* device (CUDA) error */
    EFF_STATUS_COUNT
} eff_status;

EFFDEF const char *eff_status_str(eff_status s);

/* ---------------------------------------------------------------------------
   Context: allocator, threads, RNG, logger, last error, byte accounting
   --------------------------------------------------------------------------- */
typedef struct eff_allocator {
    void *(*alloc)(size_t size, void *user);  /* must return memory aligned to 16 */
    void (*free)(void *ptr, void *user);
    void *user;
} eff_allocator;

enum { EFF_LOG_ERROR = 0, EFF_LOG_WARN = 1, EFF_LOG_INFO = 2, EFF_LOG_DEBUG = 3 };

typedef struct eff_ctx_opts {
    int n_threads;          /* 0: all OpenMP threads (1 without OpenMP) */
    uint64_t seed;          /* RNG seed; 0 is a valid seed */
    eff_allocator alloc;    /* zero: EFF_MALLOC/EFF_FREE */
    void (*log)(int level, const char *msg, void *user);  /* NULL: silent */
    void *log_user;
    int log_level;          /* messages above this level are dropped; 0 = errors only */
} eff_ctx_opts;

/* xoshiro256** seeded by splitmix64: the same seed gives the same numbers on
   every machine and compiler (Blackman & Vigna, "Scrambled linear PRNGs", 2018). */
typedef struct eff_rng { uint64_t s[4]; } eff_rng;

typedef struct eff_ctx eff_ctx;

EFFDEF eff_status eff_ctx_create(const eff_ctx_opts *opts, eff_ctx **out);
EFFDEF void       eff_ctx_destroy(eff_ctx *ctx);
EFFDEF int        eff_ctx_n_threads(const eff_ctx *ctx);
EFFDEF void       eff_ctx_set_n_threads(eff_ctx *ctx, int n);
EFFDEF eff_rng   *eff_ctx_rng(eff_ctx *ctx);
EFFDEF const char *eff_ctx_last_error(const eff_ctx *ctx);
EFFDEF eff_status  eff_ctx_last_status(const eff_ctx *ctx);   /* status of the last error (EFF_OK after a clear) */
/* Seconds from a monotonic clock (the wall clock where there is none): for timings. */
EFFDEF double      eff_time_seconds(void);
EFFDEF void       eff_ctx_clear_error(eff_ctx *ctx);
/* Records status + message (printf-style) as the last error, logs it, returns status. */
EFFDEF eff_status eff_ctx_error(eff_ctx *ctx, eff_status s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
EFFDEF void       eff_ctx_log(eff_ctx *ctx, int level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Memory through the context's allocator, 64-byte aligned, with byte accounting.
   eff_ctx_alloc returns NULL (and sets the error) when the allocator fails. */
EFFDEF void      *eff_ctx_alloc(eff_ctx *ctx, size_t size);
EFFDEF void      *eff_ctx_calloc(eff_ctx *ctx, size_t size);
EFFDEF void       eff_ctx_free(eff_ctx *ctx, void *ptr);
EFFDEF size_t     eff_ctx_bytes_in_use(const eff_ctx *ctx);
EFFDEF size_t     eff_ctx_bytes_peak(const eff_ctx *ctx);
EFFDEF void       eff_ctx_reset_peak(eff_ctx *ctx);

EFFDEF void     eff_rng_seed(eff_rng *r, uint64_t seed);
EFFDEF uint64_t eff_rng_u64(eff_rng *r);
EFFDEF float    eff_rng_uniform(eff_rng *r);            /* [0, 1), 24 random bits */
EFFDEF double   eff_rng_uniform_f64(eff_rng *r);        /* [0, 1), 53 random bits */
EFFDEF float    eff_rng_normal(eff_rng *r);             /* N(0,1), Box-Muller */
EFFDEF void     eff_rng_fill_uniform(eff_rng *r, float *x, int64_t n, float lo, float hi);
EFFDEF void     eff_rng_fill_normal(eff_rng *r, float *x, int64_t n, float mean, float std);
/* Stateless counter-based hash (splitmix64 finalizer of seed and index): the value
   for element i does not depend on thread count or order, so dropout masks can be
   regenerated in backward and on a GPU. */
EFFDEF uint64_t eff_hash_u64(uint64_t seed, uint64_t i);

/* ---------------------------------------------------------------------------
   Dtypes. Ids are stable (they appear in files and fixtures). Storage sizes of
   every id are known here; conversion and dot kernels of the block formats are
   registered into a context by eff_quant.h (eff_quant_register).
   --------------------------------------------------------------------------- */
typedef enum eff_dtype {
    EFF_F32 = 0, EFF_F16 = 1, EFF_BF16 = 2, EFF_I8 = 3, EFF_I32 = 4,
    EFF_F64 = 5, EFF_I64 = 6, EFF_U8 = 7, EFF_I16 = 8,
    /* block formats (eff_quant.h): ggml layouts, bit-exact */
    EFF_Q8_0 = 16, EFF_Q4_0 = 17, EFF_Q4_1 = 18, EFF_Q5_0 = 19, EFF_Q5_1 = 20,
    EFF_Q8_1 = 21, EFF_Q4_K = 22, EFF_Q6_K = 23, EFF_Q8_K = 24,
    /* bitsandbytes 4-bit in self-contained blocks of 64: f32 absmax; u8 codes[32] */
    EFF_NF4 = 32, EFF_FP4 = 33,
    EFF_DTYPE_COUNT = 48
} eff_dtype;

typedef void (*eff_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*eff_from_float_fn)(const float *src, void *dst, int64_t n);
/* *s = dot(x[0:n], y[0:n]); x in the weight dtype, y in its vec_dot_type. */
typedef void (*eff_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

typedef struct eff_dtype_traits {
    const char *name;          /* "f32", "q4_0", ... */
    int64_t blck_size;         /* elements per block (1 for plain types) */
    size_t type_size;          /* bytes per block */
    int is_float;              /* plain floating type */
    int is_quantized;          /* block format */
    eff_to_float_fn to_float;  /* NULL if not registered */
    eff_from_float_fn from_float;
    eff_vec_dot_fn vec_dot;    /* NULL: no dot kernel */
    int vec_dot_type;          /* dtype activations are converted to before vec_dot */
} eff_dtype_traits;

/* Storage facts for any id, valid without a context (NULL name = unknown id). */
EFFDEF const char *eff_dtype_name(int dtype);
EFFDEF int64_t     eff_dtype_blck_size(int dtype);
EFFDEF size_t      eff_dtype_type_size(int dtype);
EFFDEF int         eff_dtype_from_name(const char *name);   /* -1 if unknown */
/* Bytes of a row of n elements; -1 if n is not a multiple of the block size or overflows. */
EFFDEF int64_t     eff_dtype_row_bytes(int dtype, int64_t n);
/* The context's traits (kernels included). */
EFFDEF const eff_dtype_traits *eff_ctx_dtype(const eff_ctx *ctx, int dtype);
EFFDEF eff_status  eff_ctx_register_dtype(eff_ctx *ctx, int dtype, const eff_dtype_traits *t);

/* fp16 (IEEE binary16) and bf16 conversions: round to nearest even, NaN stays NaN
   (quieted, sign kept), Inf stays Inf, subnormals exact. */
EFFDEF float    eff_fp16_to_fp32(uint16_t h);
EFFDEF uint16_t eff_fp32_to_fp16(float f);
EFFDEF float    eff_bf16_to_fp32(uint16_t h);
EFFDEF uint16_t eff_fp32_to_bf16(float f);
EFFDEF void     eff_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n);
EFFDEF void     eff_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n);
EFFDEF void     eff_bf16_to_fp32_row(const uint16_t *src, float *dst, int64_t n);
EFFDEF void     eff_fp32_to_bf16_row(const float *src, uint16_t *dst, int64_t n);

/* ---------------------------------------------------------------------------
   Tensors: views over memory. Nothing here allocates except eff_tensor_alloc
   and eff_tensor_contiguous.
   --------------------------------------------------------------------------- */
#define EFF_MAX_DIMS 4
enum { EFF_DEVICE_CPU = 0, EFF_DEVICE_CUDA = 1 };

typedef struct eff_tensor {
    void *data;
    int dtype;                  /* eff_dtype */
    int device;                 /* EFF_DEVICE_CPU or EFF_DEVICE_CUDA */
    int ndim;                   /* 0..4; 0 is a scalar */
    int64_t ne[EFF_MAX_DIMS];   /* elements per dim, outermost first (PyTorch order) */
    int64_t nb[EFF_MAX_DIMS];   /* byte strides; for block dtypes the last dim is
                                   contiguous and nb[ndim-1] = bytes per block */
    const char *name;
} eff_tensor;

/* Contiguous views over existing data (no checks; ops validate what they get). */
EFFDEF eff_tensor eff_tensor_1d(void *data, int dtype, int64_t n0);
EFFDEF eff_tensor eff_tensor_2d(void *data, int dtype, int64_t n0, int64_t n1);
EFFDEF eff_tensor eff_tensor_3d(void *data, int dtype, int64_t n0, int64_t n1, int64_t n2);
EFFDEF eff_tensor eff_tensor_4d(void *data, int dtype, int64_t n0, int64_t n1, int64_t n2, int64_t n3);
/* Checked construction: contiguous strides, overflow-checked sizes. */
EFFDEF eff_status eff_tensor_init(eff_ctx *ctx, eff_tensor *t, int dtype, int ndim,
                                  const int64_t *ne, void *data);
EFFDEF eff_status eff_tensor_alloc(eff_ctx *ctx, eff_tensor *t, int dtype, int ndim, const int64_t *ne);
EFFDEF void       eff_tensor_free(eff_ctx *ctx, eff_tensor *t);
/* Checks dims >= 0, dtype known, strides/sizes fit in int64; reports as `argname`. */
EFFDEF eff_status eff_tensor_validate(eff_ctx *ctx, const eff_tensor *t, const char *argname);
EFFDEF int64_t    eff_tensor_nelements(const eff_tensor *t);  /* -1 on overflow */
EFFDEF int64_t    eff_tensor_nbytes(const eff_tensor *t);     /* contiguous size; -1 on overflow */
EFFDEF int64_t    eff_tensor_nrows(const eff_tensor *t);      /* product of all but the last dim */
EFFDEF int64_t    eff_tensor_ncols(const eff_tensor *t);      /* last dim (1 for scalars) */
EFFDEF int        eff_tensor_is_contiguous(const eff_tensor *t);
EFFDEF int        eff_tensor_same_shape(const eff_tensor *a, const eff_tensor *b);
/* Metadata-only views (out may alias in). */
EFFDEF eff_status eff_tensor_reshape(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in,
                                     int ndim, const int64_t *ne);  /* one ne may be -1 */
EFFDEF eff_status eff_tensor_permute(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, const int *perm);
EFFDEF eff_status eff_tensor_transpose(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, int d0, int d1);
EFFDEF eff_status eff_tensor_slice(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in,
                                   int dim, int64_t start, int64_t len);
/* dst = src elementwise, any strides, converting between plain dtypes (and from any
   registered dtype to f32). Shapes must match. */
EFFDEF eff_status eff_tensor_copy(eff_ctx *ctx, eff_tensor *dst, const eff_tensor *src);
/* Allocates out (contiguous, same dtype) and copies in into it. */
EFFDEF eff_status eff_tensor_contiguous(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in);
/* Short description "name f32[2, 3] strides[12, 4]" into buf. */
EFFDEF const char *eff_tensor_describe(const eff_tensor *t, char *buf, size_t size);

/* ---------------------------------------------------------------------------
   Arena: one allocation sized by a dry run. Call the same layout code twice:
       eff_arena a; eff_arena_init(&a);            // sizing pass: pointers are NULL
       layout(&a, ...);                            // eff_arena_push / eff_arena_tensor
       eff_arena_commit(ctx, &a);                  // allocates a.size bytes once
       layout(&a, ...);                            // same calls, now real pointers
   --------------------------------------------------------------------------- */
typedef struct eff_arena {
    unsigned char *base;   /* NULL during the sizing pass */
    size_t size;           /* bytes needed (sizing) / capacity (committed) */
    size_t used;
    int overflow;          /* set if a committed arena ran out or sizes overflowed */
} eff_arena;

EFFDEF void       eff_arena_init(eff_arena *a);
EFFDEF void      *eff_arena_push(eff_arena *a, size_t bytes, size_t align);   /* NULL in sizing pass */
EFFDEF eff_status eff_arena_tensor(eff_ctx *ctx, eff_arena *a, eff_tensor *t, int dtype,
                                   int ndim, const int64_t *ne);
EFFDEF eff_status eff_arena_commit(eff_ctx *ctx, eff_arena *a);   /* allocate, rewind */
EFFDEF void       eff_arena_rewind(eff_arena *a);                  /* used = 0, keep memory */
EFFDEF void       eff_arena_release(eff_ctx *ctx, eff_arena *a);

/* ---------------------------------------------------------------------------
   sgemm: C = alpha * op(A) * op(B) + beta * C, row-major, op(A) is M x K,
   op(B) is K x N. trans = 1 means the matrix is stored transposed
   (A stored K x M with leading dimension lda). Packed, cache-blocked, with an
   AVX-512 / AVX2 / NEON / scalar micro-kernel and OpenMP over blocks.
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_sgemm(eff_ctx *ctx, int transA, int transB, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc);
/* The triple loop, as the reference and fallback (no threads, double accumulation). */
EFFDEF void eff_sgemm_naive(int transA, int transB, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                            float beta, float *C, int64_t ldc);

/* ---------------------------------------------------------------------------
   Core ops. Activations f32; shapes in comments outermost first.
   --------------------------------------------------------------------------- */

/* y[.., out] = x[.., in] W[out, in]^T + b[out].  W any registered dtype with contiguous rows
   (f32 W may also be a transposed view of a contiguous [in, out] matrix). b may be NULL.
   y's rows (and dx's in backward) must be uniformly strided; x may be any view. */
EFFDEF eff_status eff_linear_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x,
                                     const eff_tensor *W, const eff_tensor *b);
/* dx = dy W (=); dW += dy^T x (f32 W only); db += sum_rows dy. Any output may be NULL. */
EFFDEF eff_status eff_linear_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dW, eff_tensor *db,
                                      const eff_tensor *dy, const eff_tensor *x, const eff_tensor *W);

/* C[.., M, N] = A[.., M, K] B[.., K, N], batch dims broadcast (size 1 or equal).
   Transposed views (from eff_tensor_transpose) are used without copying; C (and dA, dB)
   may be row-major or a transposed view. */
EFFDEF eff_status eff_matmul_forward(eff_ctx *ctx, eff_tensor *C, const eff_tensor *A, const eff_tensor *B);
/* dA = dC B^T, dB = A^T dC (summed over broadcast batch dims). dA or dB may be NULL. */
EFFDEF eff_status eff_matmul_backward(eff_ctx *ctx, eff_tensor *dA, eff_tensor *dB, const eff_tensor *dC,
                                      const eff_tensor *A, const eff_tensor *B);

/* Elementwise with broadcasting of b to y's shape (numpy rules, trailing dims aligned). */
EFFDEF eff_status eff_add_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *a, const eff_tensor *b);
EFFDEF eff_status eff_add_backward(eff_ctx *ctx, eff_tensor *da, eff_tensor *db, const eff_tensor *dy);
EFFDEF eff_status eff_mul_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *a, const eff_tensor *b);
EFFDEF eff_status eff_mul_backward(eff_ctx *ctx, eff_tensor *da, eff_tensor *db, const eff_tensor *dy,
                                   const eff_tensor *a, const eff_tensor *b);
EFFDEF eff_status eff_scale_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, float s);
EFFDEF eff_status eff_scale_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, float s);
/* Residual stream: y = x + r (y may alias x). Backward adds dy into both dx and dr. */
EFFDEF eff_status eff_residual_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, const eff_tensor *r);
EFFDEF eff_status eff_residual_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dr, const eff_tensor *dy);

/* Activations (y may alias x in forward; dx may alias dy in backward). */
EFFDEF eff_status eff_gelu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x);  /* tanh form */
EFFDEF eff_status eff_gelu_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x);
EFFDEF eff_status eff_silu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x);
EFFDEF eff_status eff_silu_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x);
EFFDEF eff_status eff_relu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x);
EFFDEF eff_status eff_relu_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x);
/* SwiGLU (Shazeer 2020): y = silu(gate) * up. */
EFFDEF eff_status eff_swiglu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *gate, const eff_tensor *up);
EFFDEF eff_status eff_swiglu_backward(eff_ctx *ctx, eff_tensor *dgate, eff_tensor *dup, const eff_tensor *dy,
                                      const eff_tensor *gate, const eff_tensor *up);

/* Softmax / log-softmax over the last dim. Backward uses the forward output y. */
EFFDEF eff_status eff_softmax_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x);
EFFDEF eff_status eff_softmax_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *y);
EFFDEF eff_status eff_log_softmax_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x);
EFFDEF eff_status eff_log_softmax_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *y);

/* LayerNorm over the last dim C: y = (x - mean) * rstd * w + b. mean, rstd: [rows]
   (saved for backward; may be NULL in forward). w, b may be NULL (no affine). */
EFFDEF eff_status eff_layernorm_forward(eff_ctx *ctx, eff_tensor *y, eff_tensor *mean, eff_tensor *rstd,
                                        const eff_tensor *x, const eff_tensor *w, const eff_tensor *b, float eps);
EFFDEF eff_status eff_layernorm_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dw, eff_tensor *db,
                                         const eff_tensor *dy, const eff_tensor *x, const eff_tensor *w,
                                         const eff_tensor *mean, const eff_tensor *rstd);
/* RMSNorm (Zhang & Sennrich 2019): y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps). */
EFFDEF eff_status eff_rmsnorm_forward(eff_ctx *ctx, eff_tensor *y, eff_tensor *rstd,
                                      const eff_tensor *x, const eff_tensor *w, float eps);
EFFDEF eff_status eff_rmsnorm_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dw, const eff_tensor *dy,
                                       const eff_tensor *x, const eff_tensor *w, const eff_tensor *rstd);

/* RoPE (Su et al. 2021) on x[B, T, H, D] (any strides; permute a [B, H, T, D] tensor
   to this order as a view). Position of token t is pos[t] if pos != NULL, else
   pos_offset + t. NEOX pairs (i, i + rot/2) (GPT-NeoX, HF Llama); GPTJ pairs
   (2i, 2i + 1) (GPT-J, Meta's original Llama). Dims beyond rot_dim pass through. */
enum { EFF_ROPE_NEOX = 0, EFF_ROPE_GPTJ = 1 };
typedef struct eff_rope_opts {
    float theta;            /* 0: 10000 */
    int mode;               /* EFF_ROPE_NEOX (default) or EFF_ROPE_GPTJ */
    int64_t rot_dim;        /* 0: D (full rotary); must be even */
    int64_t pos_offset;
    const int32_t *pos;     /* [T] explicit positions, or NULL */
    float freq_scale;       /* 0: 1 (linear position interpolation: pos * freq_scale) */
    /* Optional: (cos, sin) of positions [cs_pos0, cs_pos0 + cs_len) from eff_rope_table with
       these opts, so a model computes them once per step instead of once per layer; a
       position outside it is computed on the fly. */
    const float *cs;
    int64_t cs_pos0, cs_len;
} eff_rope_opts;
EFFDEF eff_status eff_rope_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, const eff_rope_opts *opts);
EFFDEF eff_status eff_rope_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_rope_opts *opts);
/* cs[n][rot/2][2] = cos, sin of positions pos0 .. pos0+n-1 (rot = opts->rot_dim, or
   head_dim when 0); the same float values eff_rope_forward computes. */
EFFDEF eff_status eff_rope_table(eff_ctx *ctx, float *cs, int64_t pos0, int64_t n, int64_t head_dim, const eff_rope_opts *opts);

/* Embedding: out[.., C] = table[ids[..], :]; ids i32. Backward: dtable[ids] += dout. */
EFFDEF eff_status eff_embedding_forward(eff_ctx *ctx, eff_tensor *out, const eff_tensor *ids, const eff_tensor *table);
EFFDEF eff_status eff_embedding_backward(eff_ctx *ctx, eff_tensor *dtable, const eff_tensor *dout, const eff_tensor *ids);

/* Fused softmax + cross-entropy over logits[N, V] with targets[N] (i32).
   losses[N] (may be NULL) gets -log p[target] (0 where target == ignore_index);
   *mean_loss (may be NULL) the mean over non-ignored rows (0 if none).
   Backward writes dlogits = (softmax(logits) - onehot(target)) * dloss, where
   dloss = 1/n_valid for the mean loss (pass dloss = 0 for that default). */
typedef struct eff_xent_opts {
    int32_t ignore_index;   /* rows with this target are skipped; default -100 (PyTorch) */
    int has_ignore_index;   /* 0: ignore_index = -100 */
    float label_smoothing;  /* 0: none (PyTorch's definition) */
} eff_xent_opts;
EFFDEF eff_status eff_cross_entropy_forward(eff_ctx *ctx, eff_tensor *losses, float *mean_loss,
                                            const eff_tensor *logits, const eff_tensor *targets,
                                            const eff_xent_opts *opts);
EFFDEF eff_status eff_cross_entropy_backward(eff_ctx *ctx, eff_tensor *dlogits, const eff_tensor *logits,
                                             const eff_tensor *targets, float dloss, const eff_xent_opts *opts);

/* Inverted dropout: y = x * keep / (1 - p). The mask is eff_hash_u64(seed, offset + i)
   so backward regenerates it without storing it. */
EFFDEF eff_status eff_dropout_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, float p,
                                      uint64_t seed, uint64_t offset);
EFFDEF eff_status eff_dropout_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, float p,
                                       uint64_t seed, uint64_t offset);

/* ---------------------------------------------------------------------------
   Optimizer step kernels over flat buffers. Parameters may be f32, bf16 or f16;
   for bf16/f16 pass fp32 master weights (updated, then rounded into param).
   Gradients f32, bf16 or f16; multiplied by grad_scale (0 means 1) first, e.g.
   1/loss_scale or a clipping factor.
   --------------------------------------------------------------------------- */
typedef struct eff_adamw_opts {
    float lr;               /* 0: 1e-3 */
    float beta1;            /* 0: 0.9 */
    float beta2;            /* 0: 0.999 */
    float eps;              /* 0: 1e-8 */
    float weight_decay;     /* decoupled (Loshchilov & Hutter 2019); 0: none */
    int64_t step;           /* 1-based step for bias correction; must be >= 1 */
    float grad_scale;       /* 0: 1 */
} eff_adamw_opts;
EFFDEF eff_status eff_adamw_step(eff_ctx *ctx, const eff_adamw_opts *opts, int64_t n,
                                 void *param, int param_dtype, float *master,
                                 const void *grad, int grad_dtype, float *m, float *v);

typedef struct eff_sgd_opts {
    float lr;               /* 0: 1e-2 */
    float momentum;         /* 0: plain SGD (then momentum_buf may be NULL) */
    float dampening;        /* PyTorch's dampening; 0 */
    float weight_decay;     /* L2 added to the gradient, as torch.optim.SGD */
    int nesterov;
    int64_t step;           /* 1-based; at step 1 the momentum buffer is set to the gradient */
    float grad_scale;       /* 0: 1 */
} eff_sgd_opts;
EFFDEF eff_status eff_sgd_step(eff_ctx *ctx, const eff_sgd_opts *opts, int64_t n,
                               void *param, int param_dtype, float *master,
                               const void *grad, int grad_dtype, float *momentum_buf);

/* ---------------------------------------------------------------------------
   Files: mapping and atomic replacement (shared by every eff loader/saver).
   --------------------------------------------------------------------------- */
typedef struct eff_file_map {
    const unsigned char *data;
    int64_t size;
    int mapped;             /* 1: mmap, 0: read into memory */
    void *impl;
} eff_file_map;
EFFDEF eff_status eff_file_map_open(eff_ctx *ctx, const char *path, eff_file_map *m);
EFFDEF void       eff_file_map_close(eff_ctx *ctx, eff_file_map *m);

/* Writes go to "<path>.tmp.<pid>"; commit flushes, fsyncs and renames over path,
   so readers see the old file or the new one, never a torn one. */
typedef struct eff_file_writer {
    void *fp;               /* FILE* where POSIX I/O is unavailable */
    int fd;                 /* POSIX file descriptor, -1 if none */
    char *path;
    char *tmp_path;
    int64_t written;
    int failed;
} eff_file_writer;
EFFDEF eff_status eff_file_writer_open(eff_ctx *ctx, eff_file_writer *w, const char *path);
EFFDEF eff_status eff_file_writer_write(eff_ctx *ctx, eff_file_writer *w, const void *data, size_t n);
EFFDEF eff_status eff_file_writer_commit(eff_ctx *ctx, eff_file_writer *w);
EFFDEF void       eff_file_writer_abort(eff_ctx *ctx, eff_file_writer *w);

/* ---------------------------------------------------------------------------
   Minimal JSON (RFC 8259): a reader that builds a node array, and a writer.
   Shared by safetensors, config.json, tokenizer and adapter configs.
   --------------------------------------------------------------------------- */
enum { EFF_JSON_NULL = 0, EFF_JSON_FALSE, EFF_JSON_TRUE, EFF_JSON_NUMBER, EFF_JSON_STRING,
       EFF_JSON_ARRAY, EFF_JSON_OBJECT };
typedef struct eff_json_node {
    int type;
    int64_t len;            /* string bytes / number of children */
    double num;             /* numbers */
    int64_t inum;           /* integers that fit int64 exactly */
    int is_int;             /* the number was written as an integer and fits int64 */
    const char *str;        /* strings (unescaped, NUL-terminated) */
    const char *key;        /* member name when the parent is an object (NUL-terminated) */
    int64_t key_len;
    int64_t first, next;    /* first child, next sibling (node indices; -1 = none) */
} eff_json_node;
typedef struct eff_json {
    eff_json_node *nodes;
    int64_t n_nodes;
    char *strings;          /* backing store of unescaped strings */
} eff_json;
/* Parses text[0:len]. Depth is limited to 128; duplicate keys are an error when
   reject_duplicates is set. */
EFFDEF eff_status eff_json_parse(eff_ctx *ctx, eff_json *doc, const char *text, int64_t len, int reject_duplicates);
EFFDEF void       eff_json_free(eff_ctx *ctx, eff_json *doc);
EFFDEF const eff_json_node *eff_json_root(const eff_json *doc);
EFFDEF const eff_json_node *eff_json_get(const eff_json *doc, const eff_json_node *obj, const char *key);
EFFDEF const eff_json_node *eff_json_at(const eff_json *doc, const eff_json_node *arr, int64_t i);
EFFDEF const eff_json_node *eff_json_child(const eff_json *doc, const eff_json_node *n);   /* first child */
EFFDEF const eff_json_node *eff_json_next(const eff_json *doc, const eff_json_node *n);    /* next sibling */
/* Typed lookups with defaults, for configs: return def if missing or of another type. */
EFFDEF double      eff_json_get_number(const eff_json *doc, const eff_json_node *obj, const char *key, double def);
EFFDEF int64_t     eff_json_get_int(const eff_json *doc, const eff_json_node *obj, const char *key, int64_t def);
EFFDEF const char *eff_json_get_string(const eff_json *doc, const eff_json_node *obj, const char *key, const char *def);
EFFDEF int         eff_json_get_bool(const eff_json *doc, const eff_json_node *obj, const char *key, int def);

typedef struct eff_json_writer {
    char *buf;
    size_t len, cap;
    int depth;
    int need_comma[130];
    int after_key;
    int pretty;             /* indent with 2 spaces */
    int failed;             /* allocation failed or nesting misused */
    eff_ctx *ctx;
} eff_json_writer;
EFFDEF void eff_jsonw_init(eff_ctx *ctx, eff_json_writer *w, int pretty);
EFFDEF void eff_jsonw_begin_object(eff_json_writer *w);
EFFDEF void eff_jsonw_end_object(eff_json_writer *w);
EFFDEF void eff_jsonw_begin_array(eff_json_writer *w);
EFFDEF void eff_jsonw_end_array(eff_json_writer *w);
EFFDEF void eff_jsonw_key(eff_json_writer *w, const char *key);
EFFDEF void eff_jsonw_string(eff_json_writer *w, const char *s);
EFFDEF void eff_jsonw_number(eff_json_writer *w, double v);   /* shortest round-trip form */
EFFDEF void eff_jsonw_int(eff_json_writer *w, int64_t v);
EFFDEF void eff_jsonw_bool(eff_json_writer *w, int v);
EFFDEF void eff_jsonw_null(eff_json_writer *w);
/* Returns the NUL-terminated text (owned by the writer) or NULL if it failed. */
EFFDEF const char *eff_jsonw_finish(eff_json_writer *w, size_t *len);
EFFDEF void eff_jsonw_free(eff_json_writer *w);

/* ---------------------------------------------------------------------------
   safetensors (huggingface/safetensors format): 8-byte little-endian header
   length N, N bytes of JSON, then the data buffer. The reader validates the whole
   header (dtype, shape, offsets inside the buffer, sizes = dtype x shape, no
   overlaps, no holes, N sane) before returning anything, and maps the file.
   --------------------------------------------------------------------------- */
typedef struct eff_safetensors_entry {
    const char *name;
    eff_tensor tensor;      /* view into the mapped data (read-only) */
    int64_t offset;         /* byte offset inside the data buffer */
    int64_t nbytes;
} eff_safetensors_entry;
typedef struct eff_safetensors {
    eff_file_map map;
    eff_json json;
    eff_safetensors_entry *entries;   /* sorted by offset in the data buffer */
    int64_t n_entries;
    int64_t header_len;
    const eff_json_node *metadata;    /* "__metadata__" object or NULL */
} eff_safetensors;
EFFDEF eff_status eff_safetensors_open(eff_ctx *ctx, eff_safetensors *st, const char *path);
/* Same validation over a buffer already in memory (not copied; must outlive st). */
EFFDEF eff_status eff_safetensors_open_memory(eff_ctx *ctx, eff_safetensors *st, const void *data, int64_t size);
EFFDEF void       eff_safetensors_close(eff_ctx *ctx, eff_safetensors *st);
EFFDEF const eff_safetensors_entry *eff_safetensors_find(const eff_safetensors *st, const char *name);
EFFDEF const char *eff_safetensors_meta(const eff_safetensors *st, const char *key);   /* NULL if absent */
/* Writes tensors (any strides; each written contiguous) and string metadata
   pairs meta[2*i] = key, meta[2*i+1] = value, atomically. Names must be unique. */
EFFDEF eff_status eff_safetensors_write(eff_ctx *ctx, const char *path, const eff_tensor *tensors,
                                        int64_t n, const char *const *meta, int64_t n_meta);
/* safetensors dtype string <-> eff dtype ("F32", "BF16", ...); -1 / NULL if none. */
EFFDEF int         eff_safetensors_dtype_from_str(const char *s);
EFFDEF const char *eff_safetensors_dtype_str(int dtype);

/* ---------------------------------------------------------------------------
   Devices. A context has one slot for accelerator state (cuda/ keeps its
   stream and cuBLAS handle there); destroy runs in eff_ctx_destroy.
   Tensors with device EFF_DEVICE_CUDA hold device pointers; the ops above
   dispatch them to cuda/ when built with EFF_CUDA (contiguous f32 only), and
   return EFF_ERR_UNSUPPORTED otherwise.
   --------------------------------------------------------------------------- */
EFFDEF void *eff_ctx_device_state(const eff_ctx *ctx);
EFFDEF void  eff_ctx_set_device_state(eff_ctx *ctx, void *state, void (*destroy)(eff_ctx *ctx, void *state));

/* Op ids shared by the CPU dispatcher and cuda/. */
enum { EFF_OP_GELU = 0, EFF_OP_SILU, EFF_OP_RELU, EFF_OP_SCALE, EFF_OP_ADD, EFF_OP_MUL, EFF_OP_SWIGLU };

#ifdef EFF_CUDA
/* cuda/eff_tensor.cu: device pointers, contiguous row-major, asynchronous on the
   context's stream (eff_cuda_synchronize waits). Link -lcublas. */
EFFDEF eff_status eff_cuda_device_count(eff_ctx *ctx, int *n);
EFFDEF eff_status eff_cuda_init(eff_ctx *ctx, int device);
EFFDEF eff_status eff_cuda_synchronize(eff_ctx *ctx);
EFFDEF eff_status eff_cuda_malloc(eff_ctx *ctx, void **ptr, size_t bytes);
EFFDEF eff_status eff_cuda_free(eff_ctx *ctx, void *ptr);
EFFDEF eff_status eff_cuda_memcpy(eff_ctx *ctx, void *dst, const void *src, size_t bytes, int to_device);
EFFDEF eff_status eff_cuda_unary(eff_ctx *ctx, int op, float *y, const float *x, int64_t n);
EFFDEF eff_status eff_cuda_unary_backward(eff_ctx *ctx, int op, float *dx, const float *dy, const float *x, int64_t n);
EFFDEF eff_status eff_cuda_binary(eff_ctx *ctx, int op, float *y, const float *a, const float *b, float s, int64_t n);
EFFDEF eff_status eff_cuda_swiglu_backward(eff_ctx *ctx, float *dgate, float *dup, const float *dy, const float *gate,
                                           const float *up, int64_t n);
EFFDEF eff_status eff_cuda_softmax(eff_ctx *ctx, float *y, const float *x, int64_t rows, int64_t cols, int log_softmax);
EFFDEF eff_status eff_cuda_softmax_backward(eff_ctx *ctx, float *dx, const float *dy, const float *y, int64_t rows,
                                            int64_t cols, int log_softmax);
/* rms = 0: LayerNorm (mean, rstd saved); rms = 1: RMSNorm (mean unused, b must be NULL). */
EFFDEF eff_status eff_cuda_norm(eff_ctx *ctx, int rms, float *y, float *mean, float *rstd, const float *x, const float *w,
                                const float *b, int64_t rows, int64_t cols, float eps);
EFFDEF eff_status eff_cuda_norm_backward(eff_ctx *ctx, int rms, float *dx, float *dw, float *db, const float *dy,
                                         const float *x, const float *w, const float *mean, const float *rstd,
                                         int64_t rows, int64_t cols);
EFFDEF eff_status eff_cuda_sgemm(eff_ctx *ctx, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
EFFDEF eff_status eff_cuda_linear(eff_ctx *ctx, float *y, const float *x, const float *W, const float *b,
                                  int64_t M, int64_t N, int64_t K);
EFFDEF eff_status eff_cuda_linear_backward(eff_ctx *ctx, float *dx, float *dW, float *db, const float *dy,
                                           const float *x, const float *W, int64_t M, int64_t N, int64_t K);
#endif

#ifdef __cplusplus
}
#endif
#endif /* EFF_TENSOR_H */

/* ===========================================================================
   INTERNALS shared by the implementations of every eff header: system includes,
   argument-check macros, overflow-checked arithmetic and the SIMD mapping layer.
   All static inline, so they may appear in several translation units. Another
   header's implementation asks for them by defining EFF__WANT_INTERNALS before
   including eff_tensor.h.
   =========================================================================== */
#if (defined(EFF__WANT_INTERNALS) || defined(EFF_TENSOR_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF__INTERNALS_DEFINED)
#define EFF__INTERNALS_DEFINED
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef EFF_ASSERT
#include <assert.h>
#define EFF_ASSERT(x) assert(x)
#endif
#ifndef EFF_MALLOC
#define EFF_MALLOC(sz) malloc(sz)
#define EFF_REALLOC(p, sz) realloc(p, sz)
#define EFF_FREE(p) free(p)
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#define EFF__POSIX 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#endif

#ifdef __cplusplus
#define EFF__RESTRICT __restrict
#elif defined(_MSC_VER)
#define EFF__RESTRICT __restrict
#else
#define EFF__RESTRICT restrict
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EFF__INLINE static inline __attribute__((always_inline))
#else
#define EFF__INLINE static inline
#endif

/* OpenMP pragmas that compile away without -fopenmp. */
#define EFF__STR(x) #x
#ifdef _OPENMP
#define EFF__OMP(x) _Pragma(EFF__STR(omp x))
#else
#define EFF__OMP(x)
#endif

/* Argument checks used by every public function: they name the function and argument. */
#define EFF__CHECK(ctx, cond, status, ...) \
    do { if (!(cond)) return eff_ctx_error((ctx), (status), __VA_ARGS__); } while (0)
#define EFF__CHECK_PTR(ctx, p) \
    EFF__CHECK(ctx, (p) != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", __func__, #p)
#define EFF__TRY(expr) do { eff_status eff__s_ = (expr); if (eff__s_ != EFF_OK) return eff__s_; } while (0)

/* int64 arithmetic that reports overflow instead of wrapping. */
EFF__INLINE int eff__mul_ovf(int64_t a, int64_t b, int64_t *r) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_mul_overflow(a, b, r);
#else
    if (a != 0 && b != 0 && (a > INT64_MAX / (b < 0 ? -b : b) || a < -(INT64_MAX / (b < 0 ? -b : b)))) return 1;
    *r = a * b; return 0;
#endif
}
EFF__INLINE int eff__add_ovf(int64_t a, int64_t b, int64_t *r) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_add_overflow(a, b, r);
#else
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return 1;
    *r = a + b; return 0;
#endif
}

EFF__INLINE uint32_t eff__f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
EFF__INLINE float eff__u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---------------------------------------------------------------------------
   SIMD mapping layer: kernels are written once against eff__vf and these
   operations. Chosen at compile time: AVX-512F, AVX2+FMA, NEON, or scalar.
   --------------------------------------------------------------------------- */
/* GCC 12 in C++ reports its own AVX-512 intrinsics (built on _mm*_undefined_*()) as
   uninitialized; the diagnostic state at the intrinsics' lines is what counts, so the
   header is included with those two warnings off. */
#if !defined(EFF_NO_SIMD) && (defined(__AVX512F__) || defined(__AVX2__)) && defined(__cplusplus) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#if !defined(EFF_NO_SIMD) && defined(__AVX2__)
#include <immintrin.h>
/* 256-bit horizontal sums, shared by the AVX2 and AVX-512 paths (and eff_quant.h's
   256-bit kernels): one value, or four values with one transpose-and-add tree. */
EFF__INLINE float eff__hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
EFF__INLINE void eff__vhsum4_256(__m256 a, __m256 b, __m256 c, __m256 d, float *out) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}
#endif
#if !defined(EFF_NO_SIMD) && defined(__AVX512F__)
#include <immintrin.h>
#define EFF_SIMD_NAME "avx512"
#define EFF__VL 16
typedef __m512 eff__vf;
#define eff__vzero() _mm512_setzero_ps()
#define eff__vset1(x) _mm512_set1_ps(x)
#define eff__vload(p) _mm512_loadu_ps(p)
#define eff__vstore(p, v) _mm512_storeu_ps(p, v)
#define eff__vadd(a, b) _mm512_add_ps(a, b)
#define eff__vsub(a, b) _mm512_sub_ps(a, b)
#define eff__vmul(a, b) _mm512_mul_ps(a, b)
#define eff__vfma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define eff__vmax(a, b) _mm512_max_ps(a, b)
#define eff__vmin(a, b) _mm512_min_ps(a, b)
/* Horizontal sum/max through zero-masked extracts: GCC 12's _mm512_reduce_* use
   _mm256_undefined_*(), which -Wuninitialized flags in C++ builds. */
EFF__INLINE __m256 eff__half512(__m512 v) {   /* low + high 256-bit halves */
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), 1)));
}
EFF__INLINE float eff__vhsum(__m512 v) { return eff__hsum256(eff__half512(v)); }
EFF__INLINE float eff__vhmax(__m512 v) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), 1)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define eff__vhsum4(a, b, c, d, out) eff__vhsum4_256(eff__half512(a), eff__half512(b), eff__half512(c), eff__half512(d), out)
#define eff__vround(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* 2^n for integral-valued float n in [-126, 127] */
#define eff__vpow2i(n) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define eff__vselect_lt(x, t, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, t, _CMP_LT_OQ), b, a) /* x<t ? a : b */
#define eff__vload_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define eff__vload_bf16(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256((const __m256i *)(p))), 16))
#elif !defined(EFF_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EFF_SIMD_NAME "avx2"
#define EFF__VL 8
typedef __m256 eff__vf;
#define eff__vzero() _mm256_setzero_ps()
#define eff__vset1(x) _mm256_set1_ps(x)
#define eff__vload(p) _mm256_loadu_ps(p)
#define eff__vstore(p, v) _mm256_storeu_ps(p, v)
#define eff__vadd(a, b) _mm256_add_ps(a, b)
#define eff__vsub(a, b) _mm256_sub_ps(a, b)
#define eff__vmul(a, b) _mm256_mul_ps(a, b)
#define eff__vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define eff__vmax(a, b) _mm256_max_ps(a, b)
#define eff__vmin(a, b) _mm256_min_ps(a, b)
#define eff__vhsum(v) eff__hsum256(v)
EFF__INLINE float eff__vhmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#define eff__vhsum4(a, b, c, d, out) eff__vhsum4_256(a, b, c, d, out)
#define eff__vround(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define eff__vpow2i(n) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define eff__vselect_lt(x, t, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, t, _CMP_LT_OQ))
#ifdef __F16C__
#define eff__vload_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#endif
#define eff__vload_bf16(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#elif !defined(EFF_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define EFF_SIMD_NAME "neon"
#define EFF__VL 4
typedef float32x4_t eff__vf;
#define eff__vzero() vdupq_n_f32(0.0f)
#define eff__vset1(x) vdupq_n_f32(x)
#define eff__vload(p) vld1q_f32(p)
#define eff__vstore(p, v) vst1q_f32(p, v)
#define eff__vadd(a, b) vaddq_f32(a, b)
#define eff__vsub(a, b) vsubq_f32(a, b)
#define eff__vmul(a, b) vmulq_f32(a, b)
#define eff__vfma(a, b, c) vfmaq_f32(c, a, b)
#define eff__vmax(a, b) vmaxq_f32(a, b)
#define eff__vmin(a, b) vminq_f32(a, b)
#define eff__vhsum(v) vaddvq_f32(v)
#define eff__vhmax(v) vmaxvq_f32(v)
#define eff__vround(v) vrndnq_f32(v)
#define eff__vpow2i(n) vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23))
#define eff__vselect_lt(x, t, a, b) vbslq_f32(vcltq_f32(x, t), a, b)
#define eff__vload_bf16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(p)), 16))
#else
#define EFF_SIMD_NAME "scalar"
#define EFF__VL 1
typedef float eff__vf;
#define eff__vzero() 0.0f
#define eff__vset1(x) (x)
#define eff__vload(p) (*(p))
#define eff__vstore(p, v) (*(p) = (v))
#define eff__vadd(a, b) ((a) + (b))
#define eff__vsub(a, b) ((a) - (b))
#define eff__vmul(a, b) ((a) * (b))
#define eff__vfma(a, b, c) ((a) * (b) + (c))
#define eff__vmax(a, b) ((a) > (b) ? (a) : (b))
#define eff__vmin(a, b) ((a) < (b) ? (a) : (b))
#define eff__vhsum(v) (v)
#define eff__vhmax(v) (v)
#define eff__vround(v) nearbyintf(v)
#define eff__vpow2i(n) eff__u2f((uint32_t)((int32_t)(n) + 127) << 23)
#define eff__vselect_lt(x, t, a, b) ((x) < (t) ? (a) : (b))
#define eff__vload_bf16(p) eff_bf16_to_fp32(*(const uint16_t *)(p))
#endif
#ifndef eff__vload_f16
#define EFF__VLOAD_F16_SCALAR 1
#endif

/* Vector exp: Cody-Waite reduction x = n ln2 + r, degree-6 polynomial for e^r,
   scaled by 2^n. Relative error a few ulp; exactly 0 below -87.3 (so a -inf mask
   gives 0, never NaN); inputs above 88.37 are clamped. */
EFF__INLINE eff__vf eff__vexp(eff__vf x) {
    const eff__vf lo = eff__vset1(-87.3f);
    eff__vf xc = eff__vmin(eff__vmax(x, lo), eff__vset1(88.37f));
    eff__vf n = eff__vround(eff__vmul(xc, eff__vset1(1.44269504088896341f)));
    eff__vf r = eff__vfma(n, eff__vset1(-0.693145751953125f), xc);
    eff__vf p;
    r = eff__vfma(n, eff__vset1(-1.428606765330187045e-06f), r);
    p = eff__vset1(1.0f / 720.0f);
    p = eff__vfma(p, r, eff__vset1(1.0f / 120.0f));
    p = eff__vfma(p, r, eff__vset1(1.0f / 24.0f));
    p = eff__vfma(p, r, eff__vset1(1.0f / 6.0f));
    p = eff__vfma(p, r, eff__vset1(0.5f));
    p = eff__vfma(p, r, eff__vset1(1.0f));
    p = eff__vfma(p, r, eff__vset1(1.0f));
    p = eff__vmul(p, eff__vpow2i(n));
    return eff__vselect_lt(x, lo, eff__vzero(), p);
}

/* Byte offset of row r (all dims but the last) of t. */
EFF__INLINE int64_t eff__row_offset(const eff_tensor *t, int64_t r) {
    int64_t off = 0;
    int i;
    for (i = t->ndim - 2; i >= 0; i--) { off += (r % t->ne[i]) * t->nb[i]; r /= t->ne[i]; }
    return off;
}

EFF__INLINE int eff__tid(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Seconds from a monotonic clock (wall clock where none exists): for timeouts and timings. */
EFF__INLINE double eff__now(void) {
#if defined(EFF__POSIX) && defined(CLOCK_MONOTONIC)
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
#elif defined(EFF__POSIX)
    struct timeval tv;   /* strict -std=c99 hides clock_gettime; gettimeofday stays declared */
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
#else
    return (double)time(NULL);
#endif
}

#endif /* internals */

/* ===========================================================================
   IMPLEMENTATION
   =========================================================================== */
#if (defined(EFF_TENSOR_IMPLEMENTATION) || defined(EFF_IMPLEMENTATION)) && !defined(EFF_TENSOR_IMPLEMENTED)
#define EFF_TENSOR_IMPLEMENTED
#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
   Status, context, errors, memory
   --------------------------------------------------------------------------- */
EFFDEF const char *eff_status_str(eff_status s) {
    switch (s) {
    case EFF_OK: return "ok";
    case EFF_ERR_INVALID_ARG: return "invalid argument";
    case EFF_ERR_SHAPE: return "shape mismatch";
    case EFF_ERR_DTYPE: return "unsupported dtype";
    case EFF_ERR_OOM: return "out of memory";
    case EFF_ERR_IO: return "I/O error";
    case EFF_ERR_FORMAT: return "malformed data";
    case EFF_ERR_UNSUPPORTED: return "unsupported";
    case EFF_ERR_OVERFLOW: return "size overflow";
    case EFF_ERR_NOT_FOUND: return "not found";
    case EFF_ERR_TIMEOUT: return "timeout";
    case EFF_ERR_PEER: return "peer failed";
    case EFF_ERR_NUMERIC: return "non-finite value";
    case EFF_ERR_DEVICE: return "device error";
    default: return "unknown status";
    }
}

struct eff_ctx {
    eff_allocator alloc;
    int n_threads;
    eff_rng rng;
    void (*log)(int level, const char *msg, void *user);
    void *log_user;
    int log_level;
    eff_status last_status;
    char last_error[512];
    size_t bytes_in_use, bytes_peak;
    eff_dtype_traits dtypes[EFF_DTYPE_COUNT];
    void *device_state;
    void (*device_destroy)(eff_ctx *ctx, void *state);
};

static void *eff__default_alloc(size_t size, void *user) { (void)user; return EFF_MALLOC(size); }
static void eff__default_free(void *p, void *user) { (void)user; EFF_FREE(p); }

static void eff__register_core_dtypes(eff_ctx *ctx);

EFFDEF eff_status eff_ctx_create(const eff_ctx_opts *opts, eff_ctx **out) {
    eff_ctx_opts o;
    eff_ctx *ctx;
    if (!out) return EFF_ERR_INVALID_ARG;
    *out = NULL;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (!o.alloc.alloc != !o.alloc.free) return EFF_ERR_INVALID_ARG; /* both or neither */
    if (!o.alloc.alloc) { o.alloc.alloc = eff__default_alloc; o.alloc.free = eff__default_free; o.alloc.user = NULL; }
    ctx = (eff_ctx *)o.alloc.alloc(sizeof(eff_ctx), o.alloc.user);
    if (!ctx) return EFF_ERR_OOM;
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = o.alloc;
    ctx->log = o.log;
    ctx->log_user = o.log_user;
    ctx->log_level = o.log_level;
    eff_rng_seed(&ctx->rng, o.seed);
    eff_ctx_set_n_threads(ctx, o.n_threads);
    eff__register_core_dtypes(ctx);
    *out = ctx;
    return EFF_OK;
}

EFFDEF void eff_ctx_destroy(eff_ctx *ctx) {
    if (!ctx) return;
    if (ctx->device_destroy) ctx->device_destroy(ctx, ctx->device_state);
    ctx->alloc.free(ctx, ctx->alloc.user);
}

EFFDEF void *eff_ctx_device_state(const eff_ctx *ctx) { return ctx ? ctx->device_state : NULL; }
EFFDEF void eff_ctx_set_device_state(eff_ctx *ctx, void *state, void (*destroy)(eff_ctx *ctx, void *state)) {
    if (!ctx) return;
    if (ctx->device_destroy && ctx->device_state != state) ctx->device_destroy(ctx, ctx->device_state);
    ctx->device_state = state;
    ctx->device_destroy = destroy;
}

EFFDEF int eff_ctx_n_threads(const eff_ctx *ctx) { return ctx ? ctx->n_threads : 1; }

EFFDEF void eff_ctx_set_n_threads(eff_ctx *ctx, int n) {
    if (!ctx) return;
#ifdef _OPENMP
    if (n <= 0) n = omp_get_max_threads();
#else
    n = 1;
#endif
    ctx->n_threads = n < 1 ? 1 : n;
}

EFFDEF eff_rng *eff_ctx_rng(eff_ctx *ctx) { return ctx ? &ctx->rng : NULL; }
EFFDEF const char *eff_ctx_last_error(const eff_ctx *ctx) { return ctx ? ctx->last_error : "no context"; }
EFFDEF eff_status eff_ctx_last_status(const eff_ctx *ctx) { return ctx ? ctx->last_status : EFF_ERR_INVALID_ARG; }
EFFDEF double eff_time_seconds(void) { return eff__now(); }
EFFDEF void eff_ctx_clear_error(eff_ctx *ctx) { if (ctx) { ctx->last_error[0] = 0; ctx->last_status = EFF_OK; } }

static void eff__vlog(eff_ctx *ctx, int level, const char *fmt, va_list ap) {
    char msg[512];
    if (!ctx || !ctx->log || level > ctx->log_level) return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    ctx->log(level, msg, ctx->log_user);
}

EFFDEF void eff_ctx_log(eff_ctx *ctx, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    eff__vlog(ctx, level, fmt, ap);
    va_end(ap);
}

EFFDEF eff_status eff_ctx_error(eff_ctx *ctx, eff_status s, const char *fmt, ...) {
    va_list ap;
    if (!ctx) return s;
    va_start(ap, fmt);
    vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
    va_end(ap);
    ctx->last_status = s;
    if (ctx->log && ctx->log_level >= EFF_LOG_ERROR) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", eff_status_str(s), ctx->last_error);
        ctx->log(EFF_LOG_ERROR, msg, ctx->log_user);
    }
    return s;
}

/* Each block carries a header holding the raw pointer and the size, so frees
   can be accounted and the user pointer is 64-byte aligned. */
#define EFF__ALLOC_HDR 64
EFFDEF void *eff_ctx_alloc(eff_ctx *ctx, size_t size) {
    unsigned char *raw, *p;
    size_t total;
    if (!ctx) return NULL;
    if (size > SIZE_MAX - 2 * EFF__ALLOC_HDR) {
        eff_ctx_error(ctx, EFF_ERR_OVERFLOW, "eff_ctx_alloc: %zu bytes overflows size_t", size);
        return NULL;
    }
    total = size + 2 * EFF__ALLOC_HDR;
    raw = (unsigned char *)ctx->alloc.alloc(total, ctx->alloc.user);
    if (!raw) {
        eff_ctx_error(ctx, EFF_ERR_OOM, "eff_ctx_alloc: allocator failed for %zu bytes", size);
        return NULL;
    }
    p = raw + EFF__ALLOC_HDR;
    p += (EFF__ALLOC_HDR - ((uintptr_t)p % EFF__ALLOC_HDR)) % EFF__ALLOC_HDR;
    memcpy(p - sizeof(void *), &raw, sizeof raw);
    memcpy(p - sizeof(void *) - sizeof(size_t), &size, sizeof size);
    ctx->bytes_in_use += size;
    if (ctx->bytes_in_use > ctx->bytes_peak) ctx->bytes_peak = ctx->bytes_in_use;
    return p;
}

EFFDEF void *eff_ctx_calloc(eff_ctx *ctx, size_t size) {
    void *p = eff_ctx_alloc(ctx, size);
    if (p) memset(p, 0, size);
    return p;
}

EFFDEF void eff_ctx_free(eff_ctx *ctx, void *ptr) {
    unsigned char *p = (unsigned char *)ptr, *raw;
    size_t size;
    if (!ctx || !ptr) return;
    memcpy(&raw, p - sizeof(void *), sizeof raw);
    memcpy(&size, p - sizeof(void *) - sizeof(size_t), sizeof size);
    ctx->bytes_in_use -= size;
    ctx->alloc.free(raw, ctx->alloc.user);
}

EFFDEF size_t eff_ctx_bytes_in_use(const eff_ctx *ctx) { return ctx ? ctx->bytes_in_use : 0; }
EFFDEF size_t eff_ctx_bytes_peak(const eff_ctx *ctx) { return ctx ? ctx->bytes_peak : 0; }
EFFDEF void eff_ctx_reset_peak(eff_ctx *ctx) { if (ctx) ctx->bytes_peak = ctx->bytes_in_use; }

/* ---------------------------------------------------------------------------
   RNG
   --------------------------------------------------------------------------- */
static uint64_t eff__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
EFFDEF void eff_rng_seed(eff_rng *r, uint64_t seed) {
    int i;
    for (i = 0; i < 4; i++) r->s[i] = eff__splitmix64(&seed);
}
static uint64_t eff__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
EFFDEF uint64_t eff_rng_u64(eff_rng *r) {
    uint64_t *s = r->s, res = eff__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = eff__rotl(s[3], 45);
    return res;
}
EFFDEF float eff_rng_uniform(eff_rng *r) { return (float)(eff_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
EFFDEF double eff_rng_uniform_f64(eff_rng *r) { return (double)(eff_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
EFFDEF float eff_rng_normal(eff_rng *r) {
    double u1 = 1.0 - eff_rng_uniform_f64(r), u2 = eff_rng_uniform_f64(r); /* u1 in (0, 1] */
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
EFFDEF void eff_rng_fill_uniform(eff_rng *r, float *x, int64_t n, float lo, float hi) {
    int64_t i;
    for (i = 0; i < n; i++) x[i] = lo + (hi - lo) * eff_rng_uniform(r);
}
EFFDEF void eff_rng_fill_normal(eff_rng *r, float *x, int64_t n, float mean, float std) {
    int64_t i;
    for (i = 0; i + 1 < n; i += 2) {   /* Box-Muller gives two independent normals per pair of uniforms */
        double u1 = 1.0 - eff_rng_uniform_f64(r), u2 = eff_rng_uniform_f64(r), rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        x[i] = mean + std * (float)(rad * cos(th));
        x[i + 1] = mean + std * (float)(rad * sin(th));
    }
    if (i < n) x[i] = mean + std * eff_rng_normal(r);
}
EFFDEF uint64_t eff_hash_u64(uint64_t seed, uint64_t i) {
    uint64_t z = seed ^ (i * 0xD1B54A32D192ED03ull);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------------
   fp16 / bf16
   --------------------------------------------------------------------------- */

EFFDEF float eff_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return eff__u2f(sign | 0x7f800000u | (man << 13));        /* inf / nan */
    if (exp == 0) {
        if (man == 0) return eff__u2f(sign);                                    /* +-0 */
        return sign ? -(float)man * (1.0f / 16777216.0f) : (float)man * (1.0f / 16777216.0f);  /* man * 2^-24 */
    }
    return eff__u2f(sign | ((exp + 112) << 23) | (man << 13));
}

EFFDEF uint16_t eff_fp32_to_fp16(float f) {
    uint32_t u = eff__f2u(f), sign = (u >> 16) & 0x8000, au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) /* inf or nan: keep nan payload top bits, force quiet */
        return (uint16_t)(sign | 0x7c00 | (au > 0x7f800000u ? (0x200 | ((au >> 13) & 0x3ff)) : 0));
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);        /* rounds to >= 65520: inf */
    if (au < 0x38800000u) {                                             /* below 2^-14: subnormal */
        /* subnormal units are 2^-24; round the 24-bit significand to nearest even */
        uint32_t e = au >> 23, m = (au & 0x7fffff) | 0x800000, shift, q, rem, half;
        if (au < 0x33000000u) return (uint16_t)sign;                   /* <= 2^-25: rounds to 0 */
        shift = 126 - e;                                                /* 14..24 */
        q = m >> shift; rem = m & ((1u << shift) - 1); half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    {
        uint32_t r = au + 0xfffu + ((au >> 13) & 1);                   /* RNE on the 13 dropped bits */
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
}

EFFDEF float eff_bf16_to_fp32(uint16_t h) { return eff__u2f((uint32_t)h << 16); }
EFFDEF uint16_t eff_fp32_to_bf16(float f) {
    uint32_t u = eff__f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet nan */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---------------------------------------------------------------------------
   Row conversions and the dtype table
   --------------------------------------------------------------------------- */
EFFDEF void eff_fp16_to_fp32_row(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
#ifndef EFF__VLOAD_F16_SCALAR
    for (; i + EFF__VL <= n; i += EFF__VL) eff__vstore(dst + i, eff__vload_f16(src + i));
#endif
    for (; i < n; i++) dst[i] = eff_fp16_to_fp32(src[i]);
}
EFFDEF void eff_fp32_to_fp16_row(const float *src, uint16_t *dst, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) dst[i] = eff_fp32_to_fp16(src[i]);
}
EFFDEF void eff_bf16_to_fp32_row(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + EFF__VL <= n; i += EFF__VL) eff__vstore(dst + i, eff__vload_bf16(src + i));
    for (; i < n; i++) dst[i] = eff_bf16_to_fp32(src[i]);
}
EFFDEF void eff_fp32_to_bf16_row(const float *src, uint16_t *dst, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) dst[i] = eff_fp32_to_bf16(src[i]);
}

static void eff__f32_to_float(const void *s, float *d, int64_t n) { memcpy(d, s, (size_t)n * 4); }
static void eff__f32_from_float(const float *s, void *d, int64_t n) { memcpy(d, s, (size_t)n * 4); }
static void eff__f16_to_float(const void *s, float *d, int64_t n) { eff_fp16_to_fp32_row((const uint16_t *)s, d, n); }
static void eff__f16_from_float(const float *s, void *d, int64_t n) { eff_fp32_to_fp16_row(s, (uint16_t *)d, n); }
static void eff__bf16_to_float(const void *s, float *d, int64_t n) { eff_bf16_to_fp32_row((const uint16_t *)s, d, n); }
static void eff__bf16_from_float(const float *s, void *d, int64_t n) { eff_fp32_to_bf16_row(s, (uint16_t *)d, n); }
/* Integer types convert by value; from_float rounds to nearest even and saturates (NaN -> 0). */
#define EFF__INT_CONV(T, NAME, LO, HI)                                                   \
    static void eff__##NAME##_to_float(const void *s, float *d, int64_t n) {           \
        int64_t i; const T *p = (const T *)s; for (i = 0; i < n; i++) d[i] = (float)p[i]; } \
    static void eff__##NAME##_from_float(const float *s, void *d, int64_t n) {         \
        int64_t i; T *p = (T *)d;                                                        \
        for (i = 0; i < n; i++) { double v = s[i] != s[i] ? 0.0 : nearbyint((double)s[i]); \
            p[i] = v <= (double)(LO) ? (T)(LO) : v >= (double)(HI) ? (T)(HI) : (T)v; } }
EFF__INT_CONV(int8_t, i8, -128, 127)
EFF__INT_CONV(int16_t, i16, -32768, 32767)
EFF__INT_CONV(int32_t, i32, INT32_MIN, INT32_MAX)
EFF__INT_CONV(int64_t, i64, INT64_MIN, INT64_MAX)
EFF__INT_CONV(uint8_t, u8, 0, 255)
static void eff__f64_to_float(const void *s, float *d, int64_t n) {
    int64_t i; const double *p = (const double *)s; for (i = 0; i < n; i++) d[i] = (float)p[i]; }
static void eff__f64_from_float(const float *s, void *d, int64_t n) {
    int64_t i; double *p = (double *)d; for (i = 0; i < n; i++) p[i] = s[i]; }

/* Dot kernels with f32 activations: several accumulators hide FMA latency. */
static void eff__vec_dot_f32(int64_t n, float *s, const void *xv, const void *yv) {
    const float *x = (const float *)xv, *y = (const float *)yv;
    eff__vf a0 = eff__vzero(), a1 = eff__vzero(), a2 = eff__vzero(), a3 = eff__vzero();
    int64_t i = 0;
    float sum;
    for (; i + 4 * EFF__VL <= n; i += 4 * EFF__VL) {
        a0 = eff__vfma(eff__vload(x + i), eff__vload(y + i), a0);
        a1 = eff__vfma(eff__vload(x + i + EFF__VL), eff__vload(y + i + EFF__VL), a1);
        a2 = eff__vfma(eff__vload(x + i + 2 * EFF__VL), eff__vload(y + i + 2 * EFF__VL), a2);
        a3 = eff__vfma(eff__vload(x + i + 3 * EFF__VL), eff__vload(y + i + 3 * EFF__VL), a3);
    }
    for (; i + EFF__VL <= n; i += EFF__VL) a0 = eff__vfma(eff__vload(x + i), eff__vload(y + i), a0);
    sum = eff__vhsum(eff__vadd(eff__vadd(a0, a1), eff__vadd(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}
static void eff__vec_dot_bf16(int64_t n, float *s, const void *xv, const void *yv) {
    const uint16_t *x = (const uint16_t *)xv;
    const float *y = (const float *)yv;
    eff__vf a0 = eff__vzero(), a1 = eff__vzero();
    int64_t i = 0;
    float sum;
    for (; i + 2 * EFF__VL <= n; i += 2 * EFF__VL) {
        a0 = eff__vfma(eff__vload_bf16(x + i), eff__vload(y + i), a0);
        a1 = eff__vfma(eff__vload_bf16(x + i + EFF__VL), eff__vload(y + i + EFF__VL), a1);
    }
    sum = eff__vhsum(eff__vadd(a0, a1));
    for (; i < n; i++) sum += eff_bf16_to_fp32(x[i]) * y[i];
    *s = sum;
}
static void eff__vec_dot_f16(int64_t n, float *s, const void *xv, const void *yv) {
    const uint16_t *x = (const uint16_t *)xv;
    const float *y = (const float *)yv;
    int64_t i = 0;
    float sum = 0.0f;
#ifndef EFF__VLOAD_F16_SCALAR
    eff__vf a0 = eff__vzero(), a1 = eff__vzero();
    for (; i + 2 * EFF__VL <= n; i += 2 * EFF__VL) {
        a0 = eff__vfma(eff__vload_f16(x + i), eff__vload(y + i), a0);
        a1 = eff__vfma(eff__vload_f16(x + i + EFF__VL), eff__vload(y + i + EFF__VL), a1);
    }
    sum = eff__vhsum(eff__vadd(a0, a1));
#endif
    for (; i < n; i++) sum += eff_fp16_to_fp32(x[i]) * y[i];
    *s = sum;
}

typedef struct { const char *name; int64_t blck; size_t size; int is_float, is_quant; } eff__dtype_info;
static const eff__dtype_info eff__dtype_infos[EFF_DTYPE_COUNT] = {
    /*  0 */ {"f32", 1, 4, 1, 0}, {"f16", 1, 2, 1, 0}, {"bf16", 1, 2, 1, 0}, {"i8", 1, 1, 0, 0},
    /*  4 */ {"i32", 1, 4, 0, 0}, {"f64", 1, 8, 1, 0}, {"i64", 1, 8, 0, 0}, {"u8", 1, 1, 0, 0},
    /*  8 */ {"i16", 1, 2, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0},
    /* 12 */ {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0},
    /* 16 */ {"q8_0", 32, 34, 0, 1}, {"q4_0", 32, 18, 0, 1}, {"q4_1", 32, 20, 0, 1}, {"q5_0", 32, 22, 0, 1},
    /* 20 */ {"q5_1", 32, 24, 0, 1}, {"q8_1", 32, 36, 0, 1}, {"q4_k", 256, 144, 0, 1}, {"q6_k", 256, 210, 0, 1},
    /* 24 */ {"q8_k", 256, 292, 0, 1}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0},
    /* 28 */ {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0},
    /* 32 */ {"nf4", 64, 36, 0, 1}, {"fp4", 64, 36, 0, 1}, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0},
};

EFF__INLINE int eff__dtype_known(int dt) { return dt >= 0 && dt < EFF_DTYPE_COUNT && eff__dtype_infos[dt].name; }
EFFDEF const char *eff_dtype_name(int dt) { return eff__dtype_known(dt) ? eff__dtype_infos[dt].name : NULL; }
EFFDEF int64_t eff_dtype_blck_size(int dt) { return eff__dtype_known(dt) ? eff__dtype_infos[dt].blck : 0; }
EFFDEF size_t eff_dtype_type_size(int dt) { return eff__dtype_known(dt) ? eff__dtype_infos[dt].size : 0; }
EFFDEF int eff_dtype_from_name(const char *name) {
    int i;
    if (!name) return -1;
    for (i = 0; i < EFF_DTYPE_COUNT; i++)
        if (eff__dtype_infos[i].name && strcmp(eff__dtype_infos[i].name, name) == 0) return i;
    return -1;
}
EFFDEF int64_t eff_dtype_row_bytes(int dt, int64_t n) {
    int64_t r;
    if (!eff__dtype_known(dt) || n < 0 || n % eff__dtype_infos[dt].blck) return -1;
    if (eff__mul_ovf(n / eff__dtype_infos[dt].blck, (int64_t)eff__dtype_infos[dt].size, &r)) return -1;
    return r;
}

static void eff__register_core_dtypes(eff_ctx *ctx) {
    int i;
    for (i = 0; i < EFF_DTYPE_COUNT; i++) {
        eff_dtype_traits *t = &ctx->dtypes[i];
        memset(t, 0, sizeof *t);
        t->name = eff__dtype_infos[i].name;
        t->blck_size = eff__dtype_infos[i].blck;
        t->type_size = eff__dtype_infos[i].size;
        t->is_float = eff__dtype_infos[i].is_float;
        t->is_quantized = eff__dtype_infos[i].is_quant;
        t->vec_dot_type = EFF_F32;
    }
#define EFF__SET(ID, NAME) ctx->dtypes[ID].to_float = eff__##NAME##_to_float; ctx->dtypes[ID].from_float = eff__##NAME##_from_float
    EFF__SET(EFF_F32, f32); EFF__SET(EFF_F16, f16); EFF__SET(EFF_BF16, bf16); EFF__SET(EFF_F64, f64);
    EFF__SET(EFF_I8, i8); EFF__SET(EFF_I16, i16); EFF__SET(EFF_I32, i32); EFF__SET(EFF_I64, i64); EFF__SET(EFF_U8, u8);
#undef EFF__SET
    ctx->dtypes[EFF_F32].vec_dot = eff__vec_dot_f32;
    ctx->dtypes[EFF_F16].vec_dot = eff__vec_dot_f16;
    ctx->dtypes[EFF_BF16].vec_dot = eff__vec_dot_bf16;
}

EFFDEF const eff_dtype_traits *eff_ctx_dtype(const eff_ctx *ctx, int dt) {
    if (!ctx || !eff__dtype_known(dt)) return NULL;
    return &ctx->dtypes[dt];
}

EFFDEF eff_status eff_ctx_register_dtype(eff_ctx *ctx, int dt, const eff_dtype_traits *t) {
    EFF__CHECK_PTR(ctx, t);
    EFF__CHECK(ctx, eff__dtype_known(dt), EFF_ERR_INVALID_ARG,
               "eff_ctx_register_dtype: dtype id %d has no storage entry in eff_tensor.h", dt);
    EFF__CHECK(ctx, t->name && t->blck_size == eff__dtype_infos[dt].blck && t->type_size == eff__dtype_infos[dt].size,
               EFF_ERR_INVALID_ARG, "eff_ctx_register_dtype: '%s' must keep block size %lld and %zu bytes per block",
               eff__dtype_infos[dt].name, (long long)eff__dtype_infos[dt].blck, eff__dtype_infos[dt].size);
    ctx->dtypes[dt] = *t;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Tensors
   --------------------------------------------------------------------------- */
static void eff__contig_strides(eff_tensor *t) {
    int i, last = t->ndim - 1;
    int64_t blck = eff_dtype_blck_size(t->dtype), sz = (int64_t)eff_dtype_type_size(t->dtype);
    if (t->ndim == 0) return;
    t->nb[last] = sz;
    for (i = last - 1; i >= 0; i--)
        t->nb[i] = (i == last - 1 && blck > 1) ? (t->ne[last] / blck) * sz : t->nb[i + 1] * t->ne[i + 1];
}

static eff_tensor eff__tensor_nd(void *data, int dtype, int ndim, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    eff_tensor t;
    int i;
    memset(&t, 0, sizeof t);
    t.data = data; t.dtype = dtype; t.ndim = ndim;
    t.ne[0] = n0; t.ne[1] = n1; t.ne[2] = n2; t.ne[3] = n3;
    for (i = ndim; i < EFF_MAX_DIMS; i++) t.ne[i] = 1;
    eff__contig_strides(&t);
    return t;
}
EFFDEF eff_tensor eff_tensor_1d(void *d, int dt, int64_t n0) { return eff__tensor_nd(d, dt, 1, n0, 1, 1, 1); }
EFFDEF eff_tensor eff_tensor_2d(void *d, int dt, int64_t n0, int64_t n1) { return eff__tensor_nd(d, dt, 2, n0, n1, 1, 1); }
EFFDEF eff_tensor eff_tensor_3d(void *d, int dt, int64_t n0, int64_t n1, int64_t n2) { return eff__tensor_nd(d, dt, 3, n0, n1, n2, 1); }
EFFDEF eff_tensor eff_tensor_4d(void *d, int dt, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    return eff__tensor_nd(d, dt, 4, n0, n1, n2, n3);
}

EFFDEF int64_t eff_tensor_nelements(const eff_tensor *t) {
    int64_t n = 1;
    int i;
    if (!t || t->ndim < 0 || t->ndim > EFF_MAX_DIMS) return -1;
    for (i = 0; i < t->ndim; i++) {
        if (t->ne[i] < 0 || eff__mul_ovf(n, t->ne[i], &n)) return -1;
    }
    return n;
}
EFFDEF int64_t eff_tensor_nbytes(const eff_tensor *t) {
    int64_t n = eff_tensor_nelements(t), r, blck;
    if (n < 0 || !eff__dtype_known(t->dtype)) return -1;
    blck = eff_dtype_blck_size(t->dtype);
    if (n % blck) return -1;
    if (eff__mul_ovf(n / blck, (int64_t)eff_dtype_type_size(t->dtype), &r)) return -1;
    return r;
}
EFFDEF int64_t eff_tensor_ncols(const eff_tensor *t) { return t->ndim ? t->ne[t->ndim - 1] : 1; }
EFFDEF int64_t eff_tensor_nrows(const eff_tensor *t) {
    int64_t n = 1;
    int i;
    for (i = 0; i + 1 < t->ndim; i++) n *= t->ne[i];
    return n;
}

EFFDEF int eff_tensor_is_contiguous(const eff_tensor *t) {
    eff_tensor c;
    int i;
    if (!t) return 0;
    c = *t;
    eff__contig_strides(&c);
    for (i = 0; i < t->ndim; i++)
        if (t->ne[i] != 1 && t->nb[i] != c.nb[i]) return 0;
    return 1;
}

EFFDEF int eff_tensor_same_shape(const eff_tensor *a, const eff_tensor *b) {
    int i;
    if (a->ndim != b->ndim) return 0;
    for (i = 0; i < a->ndim; i++) if (a->ne[i] != b->ne[i]) return 0;
    return 1;
}

EFFDEF const char *eff_tensor_describe(const eff_tensor *t, char *buf, size_t size) {
    size_t k = 0;
    int i;
    if (!buf || size == 0) return buf;
    buf[0] = 0;
    if (!t) { snprintf(buf, size, "(null)"); return buf; }
#define EFF__APP(...) do { if (k < size) { int w_ = snprintf(buf + k, size - k, __VA_ARGS__); if (w_ > 0) k += (size_t)w_; } } while (0)
    EFF__APP("%s%s%s[", t->name ? t->name : "", t->name ? " " : "", eff_dtype_name(t->dtype) ? eff_dtype_name(t->dtype) : "?");
    for (i = 0; i < t->ndim && i < EFF_MAX_DIMS; i++) EFF__APP("%s%lld", i ? ", " : "", (long long)t->ne[i]);
    EFF__APP("]");
    if (t->ndim >= 0 && t->ndim <= EFF_MAX_DIMS && !eff_tensor_is_contiguous(t)) {
        EFF__APP(" strides[");
        for (i = 0; i < t->ndim; i++) EFF__APP("%s%lld", i ? ", " : "", (long long)t->nb[i]);
        EFF__APP("]");
    }
    if (t->device == EFF_DEVICE_CUDA) EFF__APP(" cuda");
#undef EFF__APP
    return buf;
}

EFFDEF eff_status eff_tensor_validate(eff_ctx *ctx, const eff_tensor *t, const char *arg) {
    int i;
    int64_t span = 0, n;
    const char *nm = arg ? arg : "tensor";
    EFF__CHECK(ctx, t != NULL, EFF_ERR_INVALID_ARG, "tensor '%s' is NULL", nm);
    EFF__CHECK(ctx, t->ndim >= 0 && t->ndim <= EFF_MAX_DIMS, EFF_ERR_SHAPE,
               "tensor '%s': ndim %d outside [0, %d]", nm, t->ndim, EFF_MAX_DIMS);
    EFF__CHECK(ctx, eff__dtype_known(t->dtype), EFF_ERR_DTYPE, "tensor '%s': unknown dtype id %d", nm, t->dtype);
    for (i = 0; i < t->ndim; i++)
        EFF__CHECK(ctx, t->ne[i] >= 0, EFF_ERR_SHAPE, "tensor '%s': dim %d has negative size %lld", nm, i, (long long)t->ne[i]);
    n = eff_tensor_nelements(t);
    EFF__CHECK(ctx, n >= 0, EFF_ERR_OVERFLOW, "tensor '%s': element count overflows int64", nm);
    if (eff_dtype_blck_size(t->dtype) > 1 && t->ndim > 0) {
        int last = t->ndim - 1;
        EFF__CHECK(ctx, t->ne[last] % eff_dtype_blck_size(t->dtype) == 0, EFF_ERR_SHAPE,
                   "tensor '%s': last dim %lld is not a multiple of %s's block size %lld", nm,
                   (long long)t->ne[last], eff_dtype_name(t->dtype), (long long)eff_dtype_blck_size(t->dtype));
        EFF__CHECK(ctx, t->nb[last] == (int64_t)eff_dtype_type_size(t->dtype), EFF_ERR_SHAPE,
                   "tensor '%s': block dtype %s needs a contiguous last dim", nm, eff_dtype_name(t->dtype));
    }
    for (i = 0; i < t->ndim; i++) {
        int64_t ext, s = t->nb[i] < 0 ? -t->nb[i] : t->nb[i];
        if (t->ne[i] == 0) break;
        EFF__CHECK(ctx, !eff__mul_ovf(t->ne[i] - 1, s, &ext) && !eff__add_ovf(span, ext, &span), EFF_ERR_OVERFLOW,
                   "tensor '%s': byte extent overflows int64", nm);
    }
    EFF__CHECK(ctx, n == 0 || t->data != NULL, EFF_ERR_INVALID_ARG, "tensor '%s': data is NULL", nm);
    return EFF_OK;
}

EFFDEF eff_status eff_tensor_init(eff_ctx *ctx, eff_tensor *t, int dtype, int ndim, const int64_t *ne, void *data) {
    int i;
    EFF__CHECK_PTR(ctx, t);
    EFF__CHECK(ctx, ndim >= 0 && ndim <= EFF_MAX_DIMS, EFF_ERR_SHAPE, "eff_tensor_init: ndim %d outside [0, 4]", ndim);
    EFF__CHECK(ctx, ndim == 0 || ne, EFF_ERR_INVALID_ARG, "eff_tensor_init: argument 'ne' is NULL");
    EFF__CHECK(ctx, eff__dtype_known(dtype), EFF_ERR_DTYPE, "eff_tensor_init: unknown dtype id %d", dtype);
    memset(t, 0, sizeof *t);
    t->dtype = dtype; t->ndim = ndim; t->data = data;
    for (i = 0; i < EFF_MAX_DIMS; i++) t->ne[i] = i < ndim ? ne[i] : 1;
    for (i = 0; i < ndim; i++)
        EFF__CHECK(ctx, ne[i] >= 0, EFF_ERR_SHAPE, "eff_tensor_init: ne[%d] = %lld is negative", i, (long long)ne[i]);
    EFF__CHECK(ctx, eff_tensor_nelements(t) >= 0, EFF_ERR_OVERFLOW, "eff_tensor_init: element count overflows int64");
    EFF__CHECK(ctx, ndim == 0 || ne[ndim - 1] % eff_dtype_blck_size(dtype) == 0, EFF_ERR_SHAPE,
               "eff_tensor_init: last dim %lld is not a multiple of %s's block size %lld",
               (long long)ne[ndim - 1], eff_dtype_name(dtype), (long long)eff_dtype_blck_size(dtype));
    EFF__CHECK(ctx, eff_tensor_nbytes(t) >= 0, EFF_ERR_OVERFLOW, "eff_tensor_init: byte size overflows int64");
    eff__contig_strides(t);
    return EFF_OK;
}

EFFDEF eff_status eff_tensor_alloc(eff_ctx *ctx, eff_tensor *t, int dtype, int ndim, const int64_t *ne) {
    int64_t nbytes;
    EFF__TRY(eff_tensor_init(ctx, t, dtype, ndim, ne, NULL));
    nbytes = eff_tensor_nbytes(t);
    EFF__CHECK(ctx, (uint64_t)nbytes <= (uint64_t)SIZE_MAX, EFF_ERR_OVERFLOW, "eff_tensor_alloc: %lld bytes exceed size_t", (long long)nbytes);
    t->data = eff_ctx_alloc(ctx, (size_t)nbytes);
    if (!t->data) return ctx->last_status;
    return EFF_OK;
}

EFFDEF void eff_tensor_free(eff_ctx *ctx, eff_tensor *t) {
    if (!t) return;
    eff_ctx_free(ctx, t->data);
    t->data = NULL;
}

EFFDEF eff_status eff_tensor_reshape(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, int ndim, const int64_t *ne) {
    int64_t nn[EFF_MAX_DIMS], known = 1, n;
    int i, infer = -1;
    eff_tensor t;
    EFF__CHECK_PTR(ctx, out);
    EFF__TRY(eff_tensor_validate(ctx, in, "in"));
    EFF__CHECK(ctx, ndim >= 0 && ndim <= EFF_MAX_DIMS && (ndim == 0 || ne), EFF_ERR_SHAPE, "eff_tensor_reshape: bad ndim %d", ndim);
    EFF__CHECK(ctx, eff_tensor_is_contiguous(in), EFF_ERR_SHAPE,
               "eff_tensor_reshape: 'in' is not contiguous (copy it with eff_tensor_contiguous first)");
    n = eff_tensor_nelements(in);
    for (i = 0; i < ndim; i++) {
        nn[i] = ne[i];
        if (ne[i] == -1) {
            EFF__CHECK(ctx, infer < 0, EFF_ERR_SHAPE, "eff_tensor_reshape: more than one -1 in 'ne'");
            infer = i;
        } else {
            EFF__CHECK(ctx, ne[i] >= 0 && !eff__mul_ovf(known, ne[i], &known), EFF_ERR_SHAPE,
                       "eff_tensor_reshape: ne[%d] = %lld invalid", i, (long long)ne[i]);
        }
    }
    if (infer >= 0) {
        EFF__CHECK(ctx, known > 0 && n % known == 0, EFF_ERR_SHAPE, "eff_tensor_reshape: cannot infer dim %d", infer);
        nn[infer] = n / known; known = n;
    }
    EFF__CHECK(ctx, known == n, EFF_ERR_SHAPE, "eff_tensor_reshape: %lld elements cannot become %lld",
               (long long)n, (long long)known);
    EFF__TRY(eff_tensor_init(ctx, &t, in->dtype, ndim, nn, in->data));
    t.device = in->device; t.name = in->name;
    *out = t;
    return EFF_OK;
}

EFFDEF eff_status eff_tensor_permute(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, const int *perm) {
    eff_tensor t;
    int i, seen[EFF_MAX_DIMS] = {0, 0, 0, 0};
    EFF__CHECK_PTR(ctx, out);
    EFF__CHECK_PTR(ctx, perm);
    EFF__TRY(eff_tensor_validate(ctx, in, "in"));
    t = *in;
    for (i = 0; i < in->ndim; i++) {
        EFF__CHECK(ctx, perm[i] >= 0 && perm[i] < in->ndim && !seen[perm[i]], EFF_ERR_INVALID_ARG,
                   "eff_tensor_permute: perm is not a permutation of 0..%d", in->ndim - 1);
        seen[perm[i]] = 1;
        t.ne[i] = in->ne[perm[i]]; t.nb[i] = in->nb[perm[i]];
    }
    EFF__CHECK(ctx, eff_dtype_blck_size(in->dtype) == 1 || in->ndim == 0 || perm[in->ndim - 1] == in->ndim - 1,
               EFF_ERR_DTYPE, "eff_tensor_permute: block dtype %s must keep its last dim last", eff_dtype_name(in->dtype));
    *out = t;
    return EFF_OK;
}

EFFDEF eff_status eff_tensor_transpose(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, int d0, int d1) {
    int perm[EFF_MAX_DIMS] = {0, 1, 2, 3};
    EFF__CHECK_PTR(ctx, in);
    if (d0 < 0) d0 += in->ndim;
    if (d1 < 0) d1 += in->ndim;
    EFF__CHECK(ctx, d0 >= 0 && d0 < in->ndim && d1 >= 0 && d1 < in->ndim, EFF_ERR_INVALID_ARG,
               "eff_tensor_transpose: dims %d, %d out of range for ndim %d", d0, d1, in->ndim);
    perm[d0] = d1; perm[d1] = d0;
    return eff_tensor_permute(ctx, out, in, perm);
}

EFFDEF eff_status eff_tensor_slice(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in, int dim, int64_t start, int64_t len) {
    eff_tensor t;
    int64_t blck;
    EFF__CHECK_PTR(ctx, out);
    EFF__TRY(eff_tensor_validate(ctx, in, "in"));
    if (dim < 0) dim += in->ndim;
    EFF__CHECK(ctx, dim >= 0 && dim < in->ndim, EFF_ERR_INVALID_ARG, "eff_tensor_slice: dim out of range for ndim %d", in->ndim);
    EFF__CHECK(ctx, start >= 0 && len >= 0 && start <= in->ne[dim] && len <= in->ne[dim] - start, EFF_ERR_SHAPE,
               "eff_tensor_slice: start %lld, len %lld outside dim %d of size %lld", (long long)start,
               (long long)len, dim, (long long)in->ne[dim]);
    t = *in;
    blck = eff_dtype_blck_size(in->dtype);
    if (dim == in->ndim - 1 && blck > 1) {
        EFF__CHECK(ctx, start % blck == 0 && len % blck == 0, EFF_ERR_SHAPE,
                   "eff_tensor_slice: %s slices of the last dim must be whole blocks of %lld", eff_dtype_name(in->dtype), (long long)blck);
        t.data = (char *)in->data + (start / blck) * in->nb[dim];
    } else {
        t.data = (char *)in->data + start * in->nb[dim];
    }
    t.ne[dim] = len;
    *out = t;
    return EFF_OK;
}

EFFDEF eff_status eff_tensor_copy(eff_ctx *ctx, eff_tensor *dst, const eff_tensor *src) {
    const eff_dtype_traits *ts, *td;
    int64_t rows, cols, r;
    int direct, inner_contig;
    EFF__TRY(eff_tensor_validate(ctx, dst, "dst"));
    EFF__TRY(eff_tensor_validate(ctx, src, "src"));
    EFF__CHECK(ctx, dst->device == EFF_DEVICE_CPU && src->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED,
               "eff_tensor_copy: CPU tensors only");
    EFF__CHECK(ctx, eff_tensor_nelements(dst) == eff_tensor_nelements(src) && (eff_tensor_same_shape(dst, src) || src->ndim == 0 || dst->ndim == 0),
               EFF_ERR_SHAPE, "eff_tensor_copy: shapes of 'dst' and 'src' differ");
    ts = eff_ctx_dtype(ctx, src->dtype); td = eff_ctx_dtype(ctx, dst->dtype);
    rows = eff_tensor_nrows(src); cols = eff_tensor_ncols(src);
    if (eff_tensor_nelements(src) == 0) return EFF_OK;
    direct = src->dtype == dst->dtype;
    EFF__CHECK(ctx, direct || (ts->to_float && td->from_float), EFF_ERR_DTYPE,
               "eff_tensor_copy: no conversion from %s to %s", ts->name, td->name);
    if (src->ndim == 0 || dst->ndim == 0) { rows = 1; cols = 1; inner_contig = 1; }   /* one element */
    else inner_contig = (src->nb[src->ndim - 1] == (int64_t)ts->type_size || src->ne[src->ndim - 1] == 1) &&
                        (dst->nb[dst->ndim - 1] == (int64_t)td->type_size || dst->ne[dst->ndim - 1] == 1);
    if (inner_contig) {
        int64_t rb_src = eff_dtype_row_bytes(src->dtype, cols);
        float *tmp = NULL;
        if (!direct) { tmp = (float *)eff_ctx_alloc(ctx, (size_t)cols * sizeof(float)); if (!tmp) return ctx->last_status; }
        for (r = 0; r < rows; r++) {
            const char *s = (const char *)src->data + (src->ndim ? eff__row_offset(src, r) : 0);
            char *d = (char *)dst->data + (dst->ndim ? eff__row_offset(dst, r) : 0);
            if (direct) memcpy(d, s, (size_t)rb_src);
            else { ts->to_float(s, tmp, cols); td->from_float(tmp, d, cols); }
        }
        eff_ctx_free(ctx, tmp);
    } else {
        /* strided last dim: plain dtypes only, element by element */
        size_t es = ts->type_size;
        EFF__CHECK(ctx, ts->blck_size == 1 && td->blck_size == 1, EFF_ERR_DTYPE,
                   "eff_tensor_copy: strided copy of block dtype %s", ts->name);
        for (r = 0; r < rows; r++) {
            const char *s = (const char *)src->data + eff__row_offset(src, r);
            char *d = (char *)dst->data + eff__row_offset(dst, r);
            int64_t c, sn = src->nb[src->ndim - 1], dn = dst->nb[dst->ndim - 1];
            for (c = 0; c < cols; c++) {
                if (direct) memcpy(d + c * dn, s + c * sn, es);
                else { float f; ts->to_float(s + c * sn, &f, 1); td->from_float(&f, d + c * dn, 1); }
            }
        }
    }
    return EFF_OK;
}

EFFDEF eff_status eff_tensor_contiguous(eff_ctx *ctx, eff_tensor *out, const eff_tensor *in) {
    eff_tensor t;
    eff_status s;
    EFF__CHECK_PTR(ctx, out);
    EFF__TRY(eff_tensor_validate(ctx, in, "in"));
    EFF__TRY(eff_tensor_alloc(ctx, &t, in->dtype, in->ndim, in->ne));
    t.name = in->name;
    s = eff_tensor_copy(ctx, &t, in);
    if (s != EFF_OK) { eff_tensor_free(ctx, &t); return s; }
    *out = t;
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Arena
   --------------------------------------------------------------------------- */
EFFDEF void eff_arena_init(eff_arena *a) { memset(a, 0, sizeof *a); }

EFFDEF void *eff_arena_push(eff_arena *a, size_t bytes, size_t align) {
    size_t start;
    if (align < 16) align = 16;
    if (align > 64 || (align & (align - 1))) { a->overflow = 1; return NULL; }
    start = (a->used + align - 1) & ~(align - 1);
    if (start < a->used || start + bytes < start) { a->overflow = 1; return NULL; }
    if (!a->base) {
        a->used = start + bytes;
        if (a->used > a->size) a->size = a->used;
        return NULL;
    }
    if (start + bytes > a->size) { a->overflow = 1; return NULL; }
    a->used = start + bytes;
    return a->base + start;
}

EFFDEF eff_status eff_arena_tensor(eff_ctx *ctx, eff_arena *a, eff_tensor *t, int dtype, int ndim, const int64_t *ne) {
    int64_t nbytes;
    EFF__CHECK_PTR(ctx, a);
    EFF__TRY(eff_tensor_init(ctx, t, dtype, ndim, ne, NULL));
    nbytes = eff_tensor_nbytes(t);
    EFF__CHECK(ctx, (uint64_t)nbytes <= (uint64_t)SIZE_MAX, EFF_ERR_OVERFLOW, "eff_arena_tensor: size exceeds size_t");
    t->data = eff_arena_push(a, (size_t)nbytes, 64);
    EFF__CHECK(ctx, !a->overflow, a->base ? EFF_ERR_OOM : EFF_ERR_OVERFLOW,
               "eff_arena_tensor: arena %s (%zu of %zu bytes used, %lld more wanted)",
               a->base ? "is full; the layout differs from the sizing pass" : "size overflows",
               a->used, a->size, (long long)nbytes);
    return EFF_OK;
}

EFFDEF eff_status eff_arena_commit(eff_ctx *ctx, eff_arena *a) {
    EFF__CHECK_PTR(ctx, a);
    EFF__CHECK(ctx, !a->base, EFF_ERR_INVALID_ARG, "eff_arena_commit: arena is already committed");
    EFF__CHECK(ctx, !a->overflow, EFF_ERR_OVERFLOW, "eff_arena_commit: sizing pass overflowed");
    a->base = (unsigned char *)eff_ctx_alloc(ctx, a->size ? a->size : 1);
    if (!a->base) return ctx->last_status;
    a->used = 0;
    return EFF_OK;
}
EFFDEF void eff_arena_rewind(eff_arena *a) { a->used = 0; a->overflow = 0; }
EFFDEF void eff_arena_release(eff_ctx *ctx, eff_arena *a) {
    if (!a) return;
    eff_ctx_free(ctx, a->base);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------------------
   sgemm. Goto/BLIS structure: C is cut into NC-column slabs; each KC-deep slice
   of op(B) is packed into NR-wide micro-panels shared by all threads; each
   thread packs MC x KC blocks of op(A) into MR-tall micro-panels and runs the
   MR x NR micro-kernel, which keeps the whole C tile in registers and streams
   one B micro-panel from L1 while A micro-panels stream from L2.
   (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication", 2008.)
   --------------------------------------------------------------------------- */
#if EFF__VL == 16
#define EFF__GEMM_MR 14      /* 14 x 2 zmm accumulators + 2 B vectors of 32 registers */
#define EFF__GEMM_NRV 2
#elif EFF__VL == 8
#define EFF__GEMM_MR 6       /* 6 x 2 ymm accumulators + 2 B + 1 A of 16 registers */
#define EFF__GEMM_NRV 2
#elif EFF__VL == 4
#define EFF__GEMM_MR 8
#define EFF__GEMM_NRV 2
#else
#define EFF__GEMM_MR 4
#define EFF__GEMM_NRV 4
#endif
#define EFF__GEMM_NR (EFF__GEMM_NRV * EFF__VL)
#define EFF__GEMM_KC 256     /* B micro-panel KC x NR x 4 bytes = 32 KiB fits L1 (48 KiB on Zen 5) */
#define EFF__GEMM_MC 336     /* A block MC x KC x 4 bytes = 336 KiB in L2 */
#define EFF__GEMM_NC 4080    /* B block KC x NC x 4 bytes ~ 4 MiB in L3 */
#define EFF__GEMM_SMALL_M 16 /* up to this many rows of A, B is streamed once instead of packed */

EFFDEF void eff_sgemm_naive(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    int64_t i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = 0;
            for (k = 0; k < K; k++)
                s += (double)(transA ? A[k * lda + i] : A[i * lda + k]) * (double)(transB ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j]));
        }
}

/* Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-tall micro-panels, zero padded. */
static void eff__gemm_pack_a(int transA, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *Ap) {
    int64_t ir, i, k;
    for (ir = 0; ir < mc; ir += EFF__GEMM_MR) {
        int64_t mr = mc - ir < EFF__GEMM_MR ? mc - ir : EFF__GEMM_MR;
        float *dst = Ap + ir * kc;
        if (!transA) {
            /* k outer: each step writes MR contiguous floats; the MR source rows stay in L1 */
            const float *src[EFF__GEMM_MR];
            for (i = 0; i < mr; i++) src[i] = A + (i0 + ir + i) * lda + p0;
            if (mr == EFF__GEMM_MR) {
                for (k = 0; k < kc; k++)
                    for (i = 0; i < EFF__GEMM_MR; i++) dst[k * EFF__GEMM_MR + i] = src[i][k];
            } else {
                for (k = 0; k < kc; k++)
                    for (i = 0; i < mr; i++) dst[k * EFF__GEMM_MR + i] = src[i][k];
            }
        } else {
            for (k = 0; k < kc; k++) {
                const float *src = A + (p0 + k) * lda + i0 + ir;
                for (i = 0; i < mr; i++) dst[k * EFF__GEMM_MR + i] = src[i];
            }
        }
        if (mr < EFF__GEMM_MR)
            for (k = 0; k < kc; k++)
                for (i = mr; i < EFF__GEMM_MR; i++) dst[k * EFF__GEMM_MR + i] = 0.0f;
    }
}

/* Packs the micro-panel of op(B) at cols [j0, j0+nr), rows [p0, p0+kc), zero padded. */
static void eff__gemm_pack_b_panel(int transB, const float *B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nr, float *dst) {
    int64_t j, k;
    if (!transB) {
        for (k = 0; k < kc; k++) {
            const float *src = B + (p0 + k) * ldb + j0;
            float *d = dst + k * EFF__GEMM_NR;
            if (nr == EFF__GEMM_NR) { for (j = 0; j < EFF__GEMM_NR; j++) d[j] = src[j]; }
            else { for (j = 0; j < nr; j++) d[j] = src[j]; for (; j < EFF__GEMM_NR; j++) d[j] = 0.0f; }
        }
    } else {
        /* k outer: each step writes one contiguous NR-float row of the panel */
        const float *src[EFF__GEMM_NR];
        for (j = 0; j < nr; j++) src[j] = B + (j0 + j) * ldb + p0;
        if (nr == EFF__GEMM_NR) {
            for (k = 0; k < kc; k++)
                for (j = 0; j < EFF__GEMM_NR; j++) dst[k * EFF__GEMM_NR + j] = src[j][k];
        } else {
            for (k = 0; k < kc; k++) {
                for (j = 0; j < nr; j++) dst[k * EFF__GEMM_NR + j] = src[j][k];
                for (; j < EFF__GEMM_NR; j++) dst[k * EFF__GEMM_NR + j] = 0.0f;
            }
        }
    }
}

/* C[mr x nr] = alpha * Ap Bp + beta * C, the MR x NR tile held in registers.
   beta == 0 never reads C (it may hold NaN), as in BLAS. */
static void eff__gemm_ukernel(int64_t kc, const float *EFF__RESTRICT Ap, const float *EFF__RESTRICT Bp,
                              float *C, int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta) {
    eff__vf acc[EFF__GEMM_MR][EFF__GEMM_NRV];
    int i, j;
    int64_t k;
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC unroll 32
#endif
    for (i = 0; i < EFF__GEMM_MR; i++)
        for (j = 0; j < EFF__GEMM_NRV; j++) acc[i][j] = eff__vzero();
    for (k = 0; k < kc; k++) {
        eff__vf b[EFF__GEMM_NRV];
        for (j = 0; j < EFF__GEMM_NRV; j++) b[j] = eff__vload(Bp + j * EFF__VL);
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC unroll 32
#endif
        for (i = 0; i < EFF__GEMM_MR; i++) {
            eff__vf a = eff__vset1(Ap[i]);
            for (j = 0; j < EFF__GEMM_NRV; j++) acc[i][j] = eff__vfma(a, b[j], acc[i][j]);
        }
        Ap += EFF__GEMM_MR;
        Bp += EFF__GEMM_NR;
    }
    if (mr == EFF__GEMM_MR && nr == EFF__GEMM_NR) {
        eff__vf va = eff__vset1(alpha), vb = eff__vset1(beta);
        for (i = 0; i < EFF__GEMM_MR; i++)
            for (j = 0; j < EFF__GEMM_NRV; j++) {
                float *c = C + i * ldc + j * EFF__VL;
                eff__vf r = eff__vmul(acc[i][j], va);
                if (beta != 0.0f) r = eff__vfma(eff__vload(c), vb, r);
                eff__vstore(c, r);
            }
    } else {
        float tile[EFF__GEMM_MR * EFF__GEMM_NR];
        for (i = 0; i < EFF__GEMM_MR; i++)
            for (j = 0; j < EFF__GEMM_NRV; j++) eff__vstore(tile + i * EFF__GEMM_NR + j * EFF__VL, acc[i][j]);
        for (i = 0; i < mr; i++)
            for (j = 0; j < nr; j++) {
                float r = alpha * tile[i * EFF__GEMM_NR + j];
                C[i * ldc + j] = beta != 0.0f ? r + beta * C[i * ldc + j] : r;
            }
    }
}

#if defined(__GNUC__) || defined(__clang__)
#define EFF__PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 0)
#else
#define EFF__PREFETCH(p) ((void)(p))
#endif
/* out[a][b] = dot(x + a*K, w[b]) for a < MI, b < 4. The accumulators are named
   variables, not arrays, so they stay in registers (an array indexed in a loop is
   kept in memory by GCC at -O2, which costs a store-to-load round trip per FMA). */
/* GCC folds a vector load into every FMA that uses it when many accumulators are
   live (four loads of the same W vector per k step in the 4x4 kernel, which then
   runs out of load ports). An empty asm that "modifies" the loaded registers makes
   it load each vector once. */
#if !defined(EFF_NO_SIMD) && (defined(__GNUC__) || defined(__clang__)) && (defined(__AVX2__) || defined(__AVX512F__))
#define EFF__IN_REGS4(a, b, c, d) __asm__("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d))
#else
#define EFF__IN_REGS4(a, b, c, d) ((void)0)
#endif
#ifndef eff__vhsum4   /* NEON / scalar: four separate sums */
#define eff__vhsum4(a, b, c, d, out) ((out)[0] = eff__vhsum(a), (out)[1] = eff__vhsum(b), (out)[2] = eff__vhsum(c), (out)[3] = eff__vhsum(d))
#endif
/* Row a of out: the four vector sums, plus the K % VL remainder element by element. */
#define EFF__GEMV_ROW(a, c0, c1, c2, c3)                                                   \
    do {                                                                                   \
        int b_;                                                                            \
        eff__vhsum4(c0, c1, c2, c3, out[a]);                                               \
        for (b_ = 0; b_ < 4; b_++) {                                                       \
            int64_t t_;                                                                    \
            for (t_ = k; t_ < K; t_++) out[a][b_] += x[(a) * K + t_] * w[b_][t_];          \
        }                                                                                  \
    } while (0)
static void eff__gemv_1x4(int64_t K, const float *x, const float *const *w, int64_t pf, float out[4][4]) {
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    eff__vf c0 = eff__vzero(), c1 = eff__vzero(), c2 = eff__vzero(), c3 = eff__vzero();
    eff__vf d0 = eff__vzero(), d1 = eff__vzero(), d2 = eff__vzero(), d3 = eff__vzero();
    int64_t k = 0;
    for (; k + 2 * EFF__VL <= K; k += 2 * EFF__VL) {   /* two k steps: 8 independent FMA chains */
        eff__vf xa = eff__vload(x + k), xb = eff__vload(x + k + EFF__VL);
        EFF__PREFETCH(w0 + pf + k); EFF__PREFETCH(w1 + pf + k); EFF__PREFETCH(w2 + pf + k); EFF__PREFETCH(w3 + pf + k);
        EFF__PREFETCH(w0 + pf + k + EFF__VL); EFF__PREFETCH(w1 + pf + k + EFF__VL); EFF__PREFETCH(w2 + pf + k + EFF__VL);
        EFF__PREFETCH(w3 + pf + k + EFF__VL);
        c0 = eff__vfma(xa, eff__vload(w0 + k), c0); c1 = eff__vfma(xa, eff__vload(w1 + k), c1);
        c2 = eff__vfma(xa, eff__vload(w2 + k), c2); c3 = eff__vfma(xa, eff__vload(w3 + k), c3);
        d0 = eff__vfma(xb, eff__vload(w0 + k + EFF__VL), d0); d1 = eff__vfma(xb, eff__vload(w1 + k + EFF__VL), d1);
        d2 = eff__vfma(xb, eff__vload(w2 + k + EFF__VL), d2); d3 = eff__vfma(xb, eff__vload(w3 + k + EFF__VL), d3);
    }
    for (; k + EFF__VL <= K; k += EFF__VL) {
        eff__vf xa = eff__vload(x + k);
        c0 = eff__vfma(xa, eff__vload(w0 + k), c0); c1 = eff__vfma(xa, eff__vload(w1 + k), c1);
        c2 = eff__vfma(xa, eff__vload(w2 + k), c2); c3 = eff__vfma(xa, eff__vload(w3 + k), c3);
    }
    EFF__GEMV_ROW(0, eff__vadd(c0, d0), eff__vadd(c1, d1), eff__vadd(c2, d2), eff__vadd(c3, d3));
}
static void eff__gemv_2x4(int64_t K, const float *x, const float *const *w, int64_t pf, float out[4][4]) {
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *x1 = x + K;
    eff__vf c0 = eff__vzero(), c1 = eff__vzero(), c2 = eff__vzero(), c3 = eff__vzero();
    eff__vf d0 = eff__vzero(), d1 = eff__vzero(), d2 = eff__vzero(), d3 = eff__vzero();
    int64_t k = 0;
    for (; k + EFF__VL <= K; k += EFF__VL) {
        eff__vf xa = eff__vload(x + k), xb = eff__vload(x1 + k);
        eff__vf v0 = eff__vload(w0 + k), v1 = eff__vload(w1 + k), v2 = eff__vload(w2 + k), v3 = eff__vload(w3 + k);
        EFF__PREFETCH(w0 + pf + k); EFF__PREFETCH(w1 + pf + k); EFF__PREFETCH(w2 + pf + k); EFF__PREFETCH(w3 + pf + k);
        EFF__IN_REGS4(v0, v1, v2, v3);
        c0 = eff__vfma(xa, v0, c0); c1 = eff__vfma(xa, v1, c1); c2 = eff__vfma(xa, v2, c2); c3 = eff__vfma(xa, v3, c3);
        d0 = eff__vfma(xb, v0, d0); d1 = eff__vfma(xb, v1, d1); d2 = eff__vfma(xb, v2, d2); d3 = eff__vfma(xb, v3, d3);
    }
    EFF__GEMV_ROW(0, c0, c1, c2, c3);
    EFF__GEMV_ROW(1, d0, d1, d2, d3);
}
static void eff__gemv_4x4(int64_t K, const float *x, const float *const *w, int64_t pf, float out[4][4]) {
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *x1 = x + K, *x2 = x + 2 * K, *x3 = x + 3 * K;
    eff__vf c00 = eff__vzero(), c01 = eff__vzero(), c02 = eff__vzero(), c03 = eff__vzero();
    eff__vf c10 = eff__vzero(), c11 = eff__vzero(), c12 = eff__vzero(), c13 = eff__vzero();
    eff__vf c20 = eff__vzero(), c21 = eff__vzero(), c22 = eff__vzero(), c23 = eff__vzero();
    eff__vf c30 = eff__vzero(), c31 = eff__vzero(), c32 = eff__vzero(), c33 = eff__vzero();
    int64_t k = 0;
    for (; k + EFF__VL <= K; k += EFF__VL) {
        eff__vf v0 = eff__vload(w0 + k), v1 = eff__vload(w1 + k), v2 = eff__vload(w2 + k), v3 = eff__vload(w3 + k), xv;
        EFF__PREFETCH(w0 + pf + k); EFF__PREFETCH(w1 + pf + k); EFF__PREFETCH(w2 + pf + k); EFF__PREFETCH(w3 + pf + k);
        EFF__IN_REGS4(v0, v1, v2, v3);
        xv = eff__vload(x + k);
        c00 = eff__vfma(xv, v0, c00); c01 = eff__vfma(xv, v1, c01); c02 = eff__vfma(xv, v2, c02); c03 = eff__vfma(xv, v3, c03);
        xv = eff__vload(x1 + k);
        c10 = eff__vfma(xv, v0, c10); c11 = eff__vfma(xv, v1, c11); c12 = eff__vfma(xv, v2, c12); c13 = eff__vfma(xv, v3, c13);
        xv = eff__vload(x2 + k);
        c20 = eff__vfma(xv, v0, c20); c21 = eff__vfma(xv, v1, c21); c22 = eff__vfma(xv, v2, c22); c23 = eff__vfma(xv, v3, c23);
        xv = eff__vload(x3 + k);
        c30 = eff__vfma(xv, v0, c30); c31 = eff__vfma(xv, v1, c31); c32 = eff__vfma(xv, v2, c32); c33 = eff__vfma(xv, v3, c33);
    }
    EFF__GEMV_ROW(0, c00, c01, c02, c03);
    EFF__GEMV_ROW(1, c10, c11, c12, c13);
    EFF__GEMV_ROW(2, c20, c21, c22, c23);
    EFF__GEMV_ROW(3, c30, c31, c32, c33);
}
#undef EFF__GEMV_ROW

/* Small M (decode, GEMV): no packing; each B row/column is read once for all M rows. */
static void eff__sgemm_small_m(int nt, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                               float *Arows) {
    int64_t i;
    (void)nt;
    for (i = 0; i < M; i++) {   /* contiguous copy of op(A)'s rows */
        int64_t k;
        for (k = 0; k < K; k++) Arows[i * K + k] = transA ? A[k * lda + i] : A[i * lda + k];
    }
    if (transB) {
        /* 4 rows of B (outputs) against MI = 4, 2 or 1 rows of op(A) per pass, so each
           loaded vector feeds several FMAs. Missing B rows point at row 0 (results dropped). */
        int64_t jb, nblk = (N + 3) / 4;
        EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * K > 32768))
        for (jb = 0; jb < nblk; jb++) {
            int64_t j0 = jb * 4, nj = N - j0 < 4 ? N - j0 : 4, i0 = 0, b;
            const float *w[4];
            float out[4][4];
            for (b = 0; b < 4; b++) w[b] = B + (j0 + (b < nj ? b : 0)) * ldb;
            while (i0 < M) {
                int64_t mi = M - i0 >= 4 ? 4 : M - i0 >= 2 ? 2 : 1, a;
                /* the first pass over these rows prefetches the next 4 rows */
                int64_t pf = i0 == 0 && jb + 1 < nblk ? 4 * ldb : 0;
                if (mi == 4) eff__gemv_4x4(K, Arows + i0 * K, w, pf, out);
                else if (mi == 2) eff__gemv_2x4(K, Arows + i0 * K, w, pf, out);
                else eff__gemv_1x4(K, Arows + i0 * K, w, pf, out);
                for (a = 0; a < mi; a++)
                    for (b = 0; b < nj; b++) {
                        float *c = C + (i0 + a) * ldc + j0 + b;
                        *c = beta != 0.0f ? alpha * out[a][b] + beta * *c : alpha * out[a][b];
                    }
                i0 += mi;
            }
        }
    } else {
        int64_t jb, nblk = (N + 255) / 256;
        EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * K > 32768))
        for (jb = 0; jb < nblk; jb++) {
            int64_t j0 = jb * 256, nj = N - j0 < 256 ? N - j0 : 256, ii, k, j;
            float acc[16][256];
            for (ii = 0; ii < M; ii++) for (j = 0; j < nj; j++) acc[ii][j] = 0.0f;
            for (k = 0; k < K; k++) {
                const float *b = B + k * ldb + j0;
                for (ii = 0; ii < M; ii++) {
                    eff__vf a = eff__vset1(Arows[ii * K + k]);
                    float *r = acc[ii];
                    j = 0;
                    for (; j + EFF__VL <= nj; j += EFF__VL) eff__vstore(r + j, eff__vfma(a, eff__vload(b + j), eff__vload(r + j)));
                    for (; j < nj; j++) r[j] += Arows[ii * K + k] * b[j];
                }
            }
            for (ii = 0; ii < M; ii++)
                for (j = 0; j < nj; j++) {
                    float *c = C + ii * ldc + j0 + j;
                    *c = beta != 0.0f ? alpha * acc[ii][j] + beta * *c : alpha * acc[ii][j];
                }
        }
    }
}

#ifdef EFF_USE_CBLAS
#include <cblas.h>
#endif

typedef struct { int64_t kc0, mc0, n_ic, nc0; } eff__gemm_plan;

/* Even blocking: no tiny trailing KC or MC block; MC blocks a multiple of the thread count. */
static eff__gemm_plan eff__gemm_make_plan(int64_t M, int64_t N, int64_t K, int nt) {
    eff__gemm_plan p;
    int64_t n_pc = (K + EFF__GEMM_KC - 1) / EFF__GEMM_KC;
    p.kc0 = n_pc ? (K + n_pc - 1) / n_pc : 1;
    p.n_ic = (M + EFF__GEMM_MC - 1) / EFF__GEMM_MC;
    if (p.n_ic < nt && M >= (int64_t)nt * EFF__GEMM_MR) p.n_ic = nt;
    else if (nt > 1 && p.n_ic % nt) p.n_ic += nt - p.n_ic % nt;
    p.mc0 = (M + p.n_ic - 1) / p.n_ic;
    p.mc0 = (p.mc0 + EFF__GEMM_MR - 1) / EFF__GEMM_MR * EFF__GEMM_MR;
    p.n_ic = (M + p.mc0 - 1) / p.mc0;
    /* whole NR panels: B's packed slab is n_jr * NR wide, and the workspace holds kc0 * nc0 */
    p.nc0 = N < EFF__GEMM_NC ? (N + EFF__GEMM_NR - 1) / EFF__GEMM_NR * EFF__GEMM_NR : EFF__GEMM_NC / EFF__GEMM_NR * EFF__GEMM_NR;
    return p;
}

/* Floats of workspace eff__sgemm_core needs for this problem on nt threads. */
static int64_t eff__sgemm_ws_floats(int64_t M, int64_t N, int64_t K, int nt) {
    eff__gemm_plan p;
    if (M == 0 || N == 0 || K == 0) return 0;
    if (M <= EFF__GEMM_SMALL_M) return M * K;
    p = eff__gemm_make_plan(M, N, K, nt);
    return p.kc0 * p.nc0 + p.kc0 * p.mc0 * nt + 2 * 16;
}

/* The blocked product on nt threads with caller-provided workspace (no allocation,
   so batched callers may run it inside their own parallel loop with nt = 1). */
static void eff__sgemm_core(int nt, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                            float *ws) {
    eff__gemm_plan p;
    float *Bp, *Ap;
    int64_t jc;
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        int64_t i, j;
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    if (M <= EFF__GEMM_SMALL_M) {
        eff__sgemm_small_m(nt, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws);
        return;
    }
    p = eff__gemm_make_plan(M, N, K, nt);
    Bp = ws;
    Ap = ws + ((p.kc0 * p.nc0 + 15) & ~(int64_t)15);
    for (jc = 0; jc < N; jc += p.nc0) {
        int64_t nc = N - jc < p.nc0 ? N - jc : p.nc0, pc;
        int64_t n_jr = (nc + EFF__GEMM_NR - 1) / EFF__GEMM_NR;
        for (pc = 0; pc < K; pc += p.kc0) {
            int64_t kc = K - pc < p.kc0 ? K - pc : p.kc0;
            float beta_eff = pc == 0 ? beta : 1.0f;
            /* With fewer A blocks than threads, threads also split the columns. */
            int64_t n_split = p.n_ic >= nt ? 1 : (nt + p.n_ic - 1) / p.n_ic, n_tasks = p.n_ic * n_split, jr, task;
            EFF__OMP(parallel num_threads(nt) if (nt > 1))
            {
                EFF__OMP(for schedule(static))
                for (jr = 0; jr < n_jr; jr++) {
                    int64_t j0 = jr * EFF__GEMM_NR;
                    eff__gemm_pack_b_panel(transB, B, ldb, pc, kc, jc + j0, nc - j0 < EFF__GEMM_NR ? nc - j0 : EFF__GEMM_NR,
                                           Bp + j0 * kc);
                }
                EFF__OMP(for schedule(static))
                for (task = 0; task < n_tasks; task++) {
                    int tid = 0;
                    int64_t ic = (task / n_split) * p.mc0, mc = M - ic < p.mc0 ? M - ic : p.mc0;
                    int64_t part = task % n_split, jr0 = n_jr * part / n_split, jr1 = n_jr * (part + 1) / n_split, j, ir;
                    float *Apt;
#ifdef _OPENMP
                    if (nt > 1) tid = omp_get_thread_num();
#endif
                    Apt = Ap + (int64_t)tid * p.kc0 * p.mc0;
                    eff__gemm_pack_a(transA, A, lda, ic, mc, pc, kc, Apt);
                    for (j = jr0; j < jr1; j++) {
                        int64_t j0 = j * EFF__GEMM_NR, nr = nc - j0 < EFF__GEMM_NR ? nc - j0 : EFF__GEMM_NR;
                        for (ir = 0; ir < mc; ir += EFF__GEMM_MR)
                            eff__gemm_ukernel(kc, Apt + ir * kc, Bp + j0 * kc, C + (ic + ir) * ldc + jc + j0, ldc,
                                              mc - ir < EFF__GEMM_MR ? mc - ir : EFF__GEMM_MR, nr, alpha, beta_eff);
                    }
                }
            }
        }
    }
}

/* Threads worth waking for an M x N x K product: a parallel region costs a few
   microseconds (far more on a loaded machine), about a 1 MFLOP product. */
/* One thread for problems too small to pay for a fork/join. Small M (decode) is bound
   by streaming B, so its size is B's, not the flop count. */
static int eff__sgemm_threads(int nt, int64_t M, int64_t N, int64_t K) {
    double flops = 2.0 * (double)M * (double)N * (double)K;
    if (M <= EFF__GEMM_SMALL_M) return (double)N * (double)K < 65536.0 ? 1 : nt;
    return flops < 4e6 ? 1 : nt;
}

static eff_status eff__sgemm_check(eff_ctx *ctx, const char *fn, int transA, int transB, int64_t M, int64_t N, int64_t K,
                                   const float *A, int64_t lda, const float *B, int64_t ldb, const float *C, int64_t ldc) {
    EFF__CHECK(ctx, M >= 0 && N >= 0 && K >= 0, EFF_ERR_SHAPE, "%s: negative size M=%lld N=%lld K=%lld", fn,
               (long long)M, (long long)N, (long long)K);
    EFF__CHECK(ctx, ldc >= (N > 1 ? N : 1), EFF_ERR_SHAPE, "%s: ldc %lld < N %lld", fn, (long long)ldc, (long long)N);
    EFF__CHECK(ctx, lda >= ((transA ? M : K) > 1 ? (transA ? M : K) : 1), EFF_ERR_SHAPE,
               "%s: lda %lld too small for %s A", fn, (long long)lda, transA ? "transposed" : "plain");
    EFF__CHECK(ctx, ldb >= ((transB ? K : N) > 1 ? (transB ? K : N) : 1), EFF_ERR_SHAPE,
               "%s: ldb %lld too small for %s B", fn, (long long)ldb, transB ? "transposed" : "plain");
    EFF__CHECK(ctx, M == 0 || N == 0 || C, EFF_ERR_INVALID_ARG, "%s: argument 'C' is NULL", fn);
    EFF__CHECK(ctx, M == 0 || N == 0 || K == 0 || (A && B), EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, A ? "B" : "A");
    return EFF_OK;
}

EFFDEF eff_status eff_sgemm(eff_ctx *ctx, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    int64_t nws;
    float *ws = NULL;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__sgemm_check(ctx, "eff_sgemm", transA, transB, M, N, K, A, lda, B, ldb, C, ldc));
#ifdef EFF_USE_CBLAS
    if (M > 0 && N > 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return EFF_OK;
    }
#endif
    nt = eff__sgemm_threads(ctx->n_threads, M, N, K);
    nws = eff__sgemm_ws_floats(M, N, K, nt);
    if (nws) {
        ws = (float *)eff_ctx_alloc(ctx, (size_t)nws * sizeof(float));
        if (!ws) return ctx->last_status;
    }
    eff__sgemm_core(nt, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ws);
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Core ops: shared argument checks and row drivers
   --------------------------------------------------------------------------- */
/* A CPU f32 tensor whose last dim is contiguous (outer dims may be strided). */
static eff_status eff__check_f32(eff_ctx *ctx, const char *fn, const eff_tensor *t, const char *arg) {
    EFF__CHECK(ctx, t != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, arg);
    EFF__TRY(eff_tensor_validate(ctx, t, arg));
    EFF__CHECK(ctx, t->dtype == EFF_F32, EFF_ERR_DTYPE, "%s: '%s' must be f32, got %s", fn, arg, eff_dtype_name(t->dtype));
    EFF__CHECK(ctx, t->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED, "%s: '%s' is a CUDA tensor; this function runs on the CPU", fn, arg);
    EFF__CHECK(ctx, t->ndim == 0 || t->ne[t->ndim - 1] <= 1 || t->nb[t->ndim - 1] == 4, EFF_ERR_SHAPE,
               "%s: '%s' needs a contiguous last dim (copy it with eff_tensor_contiguous)", fn, arg);
    return EFF_OK;
}
static eff_status eff__check_same(eff_ctx *ctx, const char *fn, const eff_tensor *a, const char *an,
                                  const eff_tensor *b, const char *bn) {
    char d1[96], d2[96];
    EFF__CHECK(ctx, eff_tensor_same_shape(a, b), EFF_ERR_SHAPE, "%s: '%s' %s and '%s' %s differ", fn, an,
               eff_tensor_describe(a, d1, sizeof d1), bn, eff_tensor_describe(b, d2, sizeof d2));
    return EFF_OK;
}
#define EFF__ROWPTR(t, r) ((float *)((char *)(t)->data + eff__row_offset((t), (r))))

/* Row kernel over up to three inputs of the same shape: out[0:n] = f(a, b, c). */
typedef void (*eff__row_fn)(int64_t n, float *out, const float *a, const float *b, const float *c, const float *p);

/* Runs f over every row of same-shaped tensors (parallel over rows, or over chunks
   of one long row when everything is contiguous). out may alias any input. */
static void eff__rows_run(eff_ctx *ctx, eff__row_fn f, const float *params, eff_tensor *out,
                          const eff_tensor *a, const eff_tensor *b, const eff_tensor *c) {
    int nt = ctx->n_threads;
    int64_t n = eff_tensor_nelements(out);
    (void)nt;
    if (eff_tensor_is_contiguous(out) && (!a || eff_tensor_is_contiguous(a)) && (!b || eff_tensor_is_contiguous(b)) &&
        (!c || eff_tensor_is_contiguous(c))) {
        int64_t chunk = 4096, nchunk = (n + chunk - 1) / chunk, ci;
        EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 65536))
        for (ci = 0; ci < nchunk; ci++) {
            int64_t o = ci * chunk, len = n - o < chunk ? n - o : chunk;
            f(len, (float *)out->data + o, a ? (const float *)a->data + o : NULL, b ? (const float *)b->data + o : NULL,
              c ? (const float *)c->data + o : NULL, params);
        }
    } else {
        int64_t rows = eff_tensor_nrows(out), cols = eff_tensor_ncols(out), r;
        EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 65536))
        for (r = 0; r < rows; r++)
            f(cols, EFF__ROWPTR(out, r), a ? EFF__ROWPTR(a, r) : NULL, b ? EFF__ROWPTR(b, r) : NULL, c ? EFF__ROWPTR(c, r) : NULL, params);
    }
}

/* Checks out/a/b/c (NULL names skip b, c) as same-shaped f32 and runs f. */
static eff_status eff__rows_apply(eff_ctx *ctx, const char *fn, eff__row_fn f, const float *params,
                                  eff_tensor *out, const char *on, const eff_tensor *a, const char *an,
                                  const eff_tensor *b, const char *bn, const eff_tensor *c, const char *cn) {
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, out, on));
    EFF__TRY(eff__check_f32(ctx, fn, a, an));
    EFF__TRY(eff__check_same(ctx, fn, out, on, a, an));
    if (bn) { EFF__TRY(eff__check_f32(ctx, fn, b, bn)); EFF__TRY(eff__check_same(ctx, fn, out, on, b, bn)); }
    if (cn) { EFF__TRY(eff__check_f32(ctx, fn, c, cn)); EFF__TRY(eff__check_same(ctx, fn, out, on, c, cn)); }
    eff__rows_run(ctx, f, params, out, a, bn ? b : NULL, cn ? c : NULL);
    return EFF_OK;
}

/* ---- device dispatch: tensors on EFF_DEVICE_CUDA go to cuda/ (contiguous f32) ---- */
#define EFF__ON_CUDA(t) ((t) != NULL && (t)->device == EFF_DEVICE_CUDA)
/* Checks that the n tensors (NULL entries skipped) are contiguous f32 CUDA tensors. */
static eff_status eff__cuda_args(eff_ctx *ctx, const char *fn, int n, const eff_tensor *const *ts, const char *const *names) {
    int i;
    for (i = 0; i < n; i++) {
        if (!ts[i]) continue;
        EFF__TRY(eff_tensor_validate(ctx, ts[i], names[i]));
        EFF__CHECK(ctx, ts[i]->device == EFF_DEVICE_CUDA && ts[i]->dtype == EFF_F32 && eff_tensor_is_contiguous(ts[i]), EFF_ERR_UNSUPPORTED,
                   "%s: '%s' must be a contiguous f32 CUDA tensor like the others (no mixing devices)", fn, names[i]);
    }
#ifndef EFF_CUDA
    return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: CUDA tensors need a build with EFF_CUDA and cuda/eff_tensor.cu", fn);
#else
    return EFF_OK;
#endif
}
/* Elementwise ops on CUDA tensors of equal size: kind 0 unary forward (y, x), 1 unary
   backward (dx, dy, x), 2 binary (y, a, b with scalar s). */
static eff_status eff__cuda_elementwise(eff_ctx *ctx, const char *fn, int kind, int op, float sc, eff_tensor *y, const eff_tensor *a,
                                        const eff_tensor *b) {
    const eff_tensor *ts[3];
    const char *nm[3] = {"out", "in", "in2"};
    int64_t n;
    ts[0] = y; ts[1] = a; ts[2] = b;
    EFF__CHECK(ctx, y && a, EFF_ERR_INVALID_ARG, "%s: NULL tensor", fn);
    EFF__TRY(eff__cuda_args(ctx, fn, 3, ts, nm));
    n = eff_tensor_nelements(y);
    EFF__CHECK(ctx, eff_tensor_nelements(a) == n && (!b || eff_tensor_nelements(b) == n), EFF_ERR_SHAPE,
               "%s: CUDA elementwise ops need equal sizes (no broadcasting on the device)", fn);
#ifdef EFF_CUDA
    if (kind == 0) return eff_cuda_unary(ctx, op, (float *)y->data, (const float *)a->data, n);
    if (kind == 1) return eff_cuda_unary_backward(ctx, op, (float *)y->data, (const float *)a->data, (const float *)b->data, n);
    return eff_cuda_binary(ctx, op, (float *)y->data, (const float *)a->data, b ? (const float *)b->data : NULL, sc, n);
#else
    (void)kind; (void)op; (void)sc;
    return EFF_ERR_UNSUPPORTED;
#endif
}

/* ---- activations ---- */
#define EFF__GELU_K 0.7978845608028654f   /* sqrt(2/pi) */
static void eff__gelu_f(int64_t n, float *y, const float *x, const float *u1, const float *u2, const float *p) {
    int64_t i;
    (void)u1; (void)u2; (void)p;
    for (i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(EFF__GELU_K * (v + 0.044715f * v * v * v)));
    }
}
static void eff__gelu_b(int64_t n, float *dx, const float *dy, const float *x, const float *u, const float *p) {
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) {
        float v = x[i], t = tanhf(EFF__GELU_K * (v + 0.044715f * v * v * v));
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * EFF__GELU_K * (1.0f + 3.0f * 0.044715f * v * v));
    }
}
EFF__INLINE float eff__sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static void eff__silu_f(int64_t n, float *y, const float *x, const float *u1, const float *u2, const float *p) {
    int64_t i;
    (void)u1; (void)u2; (void)p;
    for (i = 0; i < n; i++) y[i] = x[i] * eff__sigmoid(x[i]);
}
static void eff__silu_b(int64_t n, float *dx, const float *dy, const float *x, const float *u, const float *p) {
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) { float s = eff__sigmoid(x[i]); dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s)); }
}
static void eff__relu_f(int64_t n, float *y, const float *x, const float *u1, const float *u2, const float *p) {
    int64_t i;
    (void)u1; (void)u2; (void)p;
    for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
static void eff__relu_b(int64_t n, float *dx, const float *dy, const float *x, const float *u, const float *p) {
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
static void eff__swiglu_f(int64_t n, float *y, const float *g, const float *u, const float *u2, const float *p) {
    int64_t i;
    (void)u2; (void)p;
    for (i = 0; i < n; i++) y[i] = g[i] * eff__sigmoid(g[i]) * u[i];
}
static void eff__swiglu_bg(int64_t n, float *dg, const float *dy, const float *g, const float *u, const float *p) {
    int64_t i;
    (void)p;
    for (i = 0; i < n; i++) { float s = eff__sigmoid(g[i]); dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s)); }
}
static void eff__swiglu_bu(int64_t n, float *du, const float *dy, const float *g, const float *u, const float *p) {
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) du[i] = dy[i] * g[i] * eff__sigmoid(g[i]);
}
static void eff__scale_f(int64_t n, float *y, const float *x, const float *u1, const float *u2, const float *p) {
    int64_t i;
    float s = p[0];
    (void)u1; (void)u2;
    for (i = 0; i < n; i++) y[i] = s * x[i];
}
static void eff__acc2_f(int64_t n, float *y, const float *x, const float *r, const float *u, const float *p) {
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) y[i] = x[i] + r[i];
}

EFFDEF eff_status eff_gelu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) return eff__cuda_elementwise(ctx, "eff_gelu_forward", 0, EFF_OP_GELU, 0.0f, y, x, NULL);
    return eff__rows_apply(ctx, "eff_gelu_forward", eff__gelu_f, NULL, y, "y", x, "x", NULL, NULL, NULL, NULL);
}
EFFDEF eff_status eff_gelu_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    if (EFF__ON_CUDA(dx) || EFF__ON_CUDA(dy)) return eff__cuda_elementwise(ctx, "eff_gelu_backward", 1, EFF_OP_GELU, 0.0f, dx, dy, x);
    return eff__rows_apply(ctx, "eff_gelu_backward", eff__gelu_b, NULL, dx, "dx", dy, "dy", x, "x", NULL, NULL);
}
EFFDEF eff_status eff_silu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) return eff__cuda_elementwise(ctx, "eff_silu_forward", 0, EFF_OP_SILU, 0.0f, y, x, NULL);
    return eff__rows_apply(ctx, "eff_silu_forward", eff__silu_f, NULL, y, "y", x, "x", NULL, NULL, NULL, NULL);
}
EFFDEF eff_status eff_silu_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    if (EFF__ON_CUDA(dx) || EFF__ON_CUDA(dy)) return eff__cuda_elementwise(ctx, "eff_silu_backward", 1, EFF_OP_SILU, 0.0f, dx, dy, x);
    return eff__rows_apply(ctx, "eff_silu_backward", eff__silu_b, NULL, dx, "dx", dy, "dy", x, "x", NULL, NULL);
}
EFFDEF eff_status eff_relu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) return eff__cuda_elementwise(ctx, "eff_relu_forward", 0, EFF_OP_RELU, 0.0f, y, x, NULL);
    return eff__rows_apply(ctx, "eff_relu_forward", eff__relu_f, NULL, y, "y", x, "x", NULL, NULL, NULL, NULL);
}
EFFDEF eff_status eff_relu_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *x) {
    if (EFF__ON_CUDA(dx) || EFF__ON_CUDA(dy)) return eff__cuda_elementwise(ctx, "eff_relu_backward", 1, EFF_OP_RELU, 0.0f, dx, dy, x);
    return eff__rows_apply(ctx, "eff_relu_backward", eff__relu_b, NULL, dx, "dx", dy, "dy", x, "x", NULL, NULL);
}
EFFDEF eff_status eff_swiglu_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *gate, const eff_tensor *up) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(gate)) return eff__cuda_elementwise(ctx, "eff_swiglu_forward", 2, EFF_OP_SWIGLU, 0.0f, y, gate, up);
    return eff__rows_apply(ctx, "eff_swiglu_forward", eff__swiglu_f, NULL, y, "y", gate, "gate", up, "up", NULL, NULL);
}
EFFDEF eff_status eff_swiglu_backward(eff_ctx *ctx, eff_tensor *dgate, eff_tensor *dup, const eff_tensor *dy,
                                      const eff_tensor *gate, const eff_tensor *up) {
    if (EFF__ON_CUDA(dy)) {
        const eff_tensor *ts[5];
        const char *nm[5] = {"dgate", "dup", "dy", "gate", "up"};
        ts[0] = dgate; ts[1] = dup; ts[2] = dy; ts[3] = gate; ts[4] = up;
        EFF__TRY(eff__cuda_args(ctx, "eff_swiglu_backward", 5, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_swiglu_backward(ctx, dgate ? (float *)dgate->data : NULL, dup ? (float *)dup->data : NULL, (const float *)dy->data,
                                        (const float *)gate->data, (const float *)up->data, eff_tensor_nelements(dy));
#endif
    }
    const char *fn = "eff_swiglu_backward";
    EFF__CHECK_PTR(ctx, dy);
    EFF__CHECK_PTR(ctx, gate);
    EFF__CHECK_PTR(ctx, up);
    /* dgate is written first; it must not alias an input that dup still reads */
    EFF__CHECK(ctx, !dgate || !dup || (dgate->data != gate->data && dgate->data != up->data && dgate->data != dy->data),
               EFF_ERR_INVALID_ARG, "%s: 'dgate' may not alias dy/gate/up when 'dup' is requested", fn);
    if (dgate) EFF__TRY(eff__rows_apply(ctx, fn, eff__swiglu_bg, NULL, dgate, "dgate", dy, "dy", gate, "gate", up, "up"));
    if (dup) EFF__TRY(eff__rows_apply(ctx, fn, eff__swiglu_bu, NULL, dup, "dup", dy, "dy", gate, "gate", up, "up"));
    return EFF_OK;
}
EFFDEF eff_status eff_scale_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, float s) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) return eff__cuda_elementwise(ctx, "eff_scale_forward", 2, EFF_OP_SCALE, s, y, x, NULL);
    return eff__rows_apply(ctx, "eff_scale_forward", eff__scale_f, &s, y, "y", x, "x", NULL, NULL, NULL, NULL);
}
EFFDEF eff_status eff_scale_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, float s) {
    if (EFF__ON_CUDA(dx) || EFF__ON_CUDA(dy)) return eff__cuda_elementwise(ctx, "eff_scale_backward", 2, EFF_OP_SCALE, s, dx, dy, NULL);
    return eff__rows_apply(ctx, "eff_scale_backward", eff__scale_f, &s, dx, "dx", dy, "dy", NULL, NULL, NULL, NULL);
}
EFFDEF eff_status eff_residual_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, const eff_tensor *r) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) return eff__cuda_elementwise(ctx, "eff_residual_forward", 2, EFF_OP_ADD, 0.0f, y, x, r);
    return eff__rows_apply(ctx, "eff_residual_forward", eff__acc2_f, NULL, y, "y", x, "x", r, "r", NULL, NULL);
}
EFFDEF eff_status eff_residual_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dr, const eff_tensor *dy) {
    if (dx) EFF__TRY(eff__rows_apply(ctx, "eff_residual_backward", eff__acc2_f, NULL, dx, "dx", dx, "dx", dy, "dy", NULL, NULL));
    if (dr) EFF__TRY(eff__rows_apply(ctx, "eff_residual_backward", eff__acc2_f, NULL, dr, "dr", dr, "dr", dy, "dy", NULL, NULL));
    return EFF_OK;
}

/* ---- broadcasting add / mul ---- */
/* Aligns t's shape to 4 dims on the right; broadcast dims (size 1) get stride 0. */
static void eff__bcast4(const eff_tensor *t, int64_t ne[4], int64_t nb[4]) {
    int i, off = 4 - t->ndim;
    for (i = 0; i < 4; i++) { ne[i] = 1; nb[i] = 0; }
    for (i = 0; i < t->ndim; i++) { ne[off + i] = t->ne[i]; nb[off + i] = t->ne[i] == 1 ? 0 : t->nb[i]; }
}
static eff_status eff__check_bcast(eff_ctx *ctx, const char *fn, const eff_tensor *y, const eff_tensor *t, const char *tn) {
    int64_t ye[4], yb[4], te[4], tb[4];
    int i;
    char d1[96], d2[96];
    EFF__CHECK(ctx, t->ndim <= y->ndim, EFF_ERR_SHAPE, "%s: '%s' has more dims than the output", fn, tn);
    eff__bcast4(y, ye, yb); eff__bcast4(t, te, tb);
    for (i = 0; i < 4; i++)
        EFF__CHECK(ctx, te[i] == ye[i] || te[i] == 1, EFF_ERR_SHAPE, "%s: '%s' %s does not broadcast to %s", fn, tn,
                   eff_tensor_describe(t, d1, sizeof d1), eff_tensor_describe(y, d2, sizeof d2));
    return EFF_OK;
}
/* y = a (op) b with broadcasting; op 0 add, 1 mul. Parallel over output rows. */
static void eff__binary_run(eff_ctx *ctx, int op, const eff_tensor *y, const eff_tensor *a, const eff_tensor *b) {
    int64_t ye[4], yb[4], ae[4], ab[4], be[4], bb[4], rows, r;
    int nt = ctx->n_threads;
    (void)nt;
    eff__bcast4(y, ye, yb); eff__bcast4(a, ae, ab); eff__bcast4(b, be, bb);
    rows = ye[0] * ye[1] * ye[2];
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * ye[3] > 65536))
    for (r = 0; r < rows; r++) {
        int64_t i2 = r % ye[2], i1 = (r / ye[2]) % ye[1], i0 = r / (ye[1] * ye[2]), j, n = ye[3];
        float *yr = (float *)((char *)y->data + i0 * yb[0] + i1 * yb[1] + i2 * yb[2]);
        const float *ar = (const float *)((const char *)a->data + i0 * ab[0] + i1 * ab[1] + i2 * ab[2]);
        const float *br = (const float *)((const char *)b->data + i0 * bb[0] + i1 * bb[1] + i2 * bb[2]);
        int as = ab[3] != 0, bs = bb[3] != 0;
        if (op == 0) { for (j = 0; j < n; j++) yr[j] = ar[j * as] + br[j * bs]; }
        else { for (j = 0; j < n; j++) yr[j] = ar[j * as] * br[j * bs]; }
    }
}
/* g (shape of a broadcast operand) = sum of src (times w, when w != NULL) over broadcast dims. */
static void eff__reduce_to(const eff_tensor *g, const eff_tensor *src, const eff_tensor *w) {
    int64_t se[4], sb[4], ge[4], gb[4], we[4], wb[4], r, rows, j;
    eff__bcast4(src, se, sb); eff__bcast4(g, ge, gb);
    if (w) eff__bcast4(w, we, wb);
    rows = eff_tensor_nrows(g);
    for (r = 0; r < rows; r++) { float *gr = EFF__ROWPTR(g, r); for (j = 0; j < eff_tensor_ncols(g); j++) gr[j] = 0.0f; }
    rows = se[0] * se[1] * se[2];
    for (r = 0; r < rows; r++) {
        int64_t i2 = r % se[2], i1 = (r / se[2]) % se[1], i0 = r / (se[1] * se[2]), n = se[3];
        const float *sr = (const float *)((const char *)src->data + i0 * sb[0] + i1 * sb[1] + i2 * sb[2]);
        float *gr = (float *)((char *)g->data + i0 * gb[0] + i1 * gb[1] + i2 * gb[2]);
        int gs = gb[3] != 0;
        if (w) {
            const float *wr = (const float *)((const char *)w->data + i0 * wb[0] + i1 * wb[1] + i2 * wb[2]);
            int ws = wb[3] != 0;
            for (j = 0; j < n; j++) gr[j * gs] += sr[j] * wr[j * ws];
        } else {
            for (j = 0; j < n; j++) gr[j * gs] += sr[j];
        }
    }
}
static eff_status eff__binary_forward(eff_ctx *ctx, const char *fn, int op, eff_tensor *y, const eff_tensor *a, const eff_tensor *b) {
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, y, "y"));
    EFF__TRY(eff__check_f32(ctx, fn, a, "a"));
    EFF__TRY(eff__check_f32(ctx, fn, b, "b"));
    EFF__TRY(eff__check_bcast(ctx, fn, y, a, "a"));
    EFF__TRY(eff__check_bcast(ctx, fn, y, b, "b"));
    eff__binary_run(ctx, op, y, a, b);
    return EFF_OK;
}
EFFDEF eff_status eff_add_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *a, const eff_tensor *b) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(a)) return eff__cuda_elementwise(ctx, "eff_add_forward", 2, EFF_OP_ADD, 0.0f, y, a, b);
    return eff__binary_forward(ctx, "eff_add_forward", 0, y, a, b);
}
EFFDEF eff_status eff_mul_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *a, const eff_tensor *b) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(a)) return eff__cuda_elementwise(ctx, "eff_mul_forward", 2, EFF_OP_MUL, 0.0f, y, a, b);
    return eff__binary_forward(ctx, "eff_mul_forward", 1, y, a, b);
}
EFFDEF eff_status eff_add_backward(eff_ctx *ctx, eff_tensor *da, eff_tensor *db, const eff_tensor *dy) {
    const char *fn = "eff_add_backward";
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, dy, "dy"));
    if (da) { EFF__TRY(eff__check_f32(ctx, fn, da, "da")); EFF__TRY(eff__check_bcast(ctx, fn, dy, da, "da")); }
    if (db) { EFF__TRY(eff__check_f32(ctx, fn, db, "db")); EFF__TRY(eff__check_bcast(ctx, fn, dy, db, "db")); }
    EFF__CHECK(ctx, !da || !db || da->data != db->data, EFF_ERR_INVALID_ARG, "%s: 'da' and 'db' alias", fn);
    /* a reduction zeroes its output before reading dy */
    EFF__CHECK(ctx, !da || eff_tensor_same_shape(da, dy) || da->data != dy->data, EFF_ERR_INVALID_ARG,
               "%s: 'da' is reduced over broadcast dims and may not alias 'dy'", fn);
    EFF__CHECK(ctx, !db || eff_tensor_same_shape(db, dy) || db->data != dy->data, EFF_ERR_INVALID_ARG,
               "%s: 'db' is reduced over broadcast dims and may not alias 'dy'", fn);
    EFF__CHECK(ctx, !da || !db || da->data != dy->data, EFF_ERR_INVALID_ARG,
               "%s: 'da' may not alias 'dy' when 'db' is requested", fn);
    if (da) {
        if (eff_tensor_same_shape(da, dy)) { if (da->data != dy->data) EFF__TRY(eff_tensor_copy(ctx, da, dy)); }
        else eff__reduce_to(da, dy, NULL);
    }
    if (db) {
        if (eff_tensor_same_shape(db, dy)) { if (db->data != dy->data) EFF__TRY(eff_tensor_copy(ctx, db, dy)); }
        else eff__reduce_to(db, dy, NULL);
    }
    return EFF_OK;
}
EFFDEF eff_status eff_mul_backward(eff_ctx *ctx, eff_tensor *da, eff_tensor *db, const eff_tensor *dy,
                                   const eff_tensor *a, const eff_tensor *b) {
    const char *fn = "eff_mul_backward";
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, dy, "dy"));
    EFF__TRY(eff__check_f32(ctx, fn, a, "a"));
    EFF__TRY(eff__check_f32(ctx, fn, b, "b"));
    EFF__TRY(eff__check_bcast(ctx, fn, dy, a, "a"));
    EFF__TRY(eff__check_bcast(ctx, fn, dy, b, "b"));
    if (da) { EFF__TRY(eff__check_f32(ctx, fn, da, "da")); EFF__TRY(eff__check_same(ctx, fn, da, "da", a, "a")); }
    if (db) { EFF__TRY(eff__check_f32(ctx, fn, db, "db")); EFF__TRY(eff__check_same(ctx, fn, db, "db", b, "b")); }
    /* da is written first and db then reads dy and a; a reduction zeroes its output before reading */
    EFF__CHECK(ctx, !da || !db || (da->data != a->data && da->data != dy->data), EFF_ERR_INVALID_ARG,
               "%s: 'da' may not alias 'a' or 'dy' when 'db' is requested", fn);
    EFF__CHECK(ctx, !da || eff_tensor_same_shape(da, dy) || (da->data != dy->data && da->data != b->data), EFF_ERR_INVALID_ARG,
               "%s: 'da' is reduced over broadcast dims and may not alias 'dy' or 'b'", fn);
    EFF__CHECK(ctx, !db || eff_tensor_same_shape(db, dy) || (db->data != dy->data && db->data != a->data), EFF_ERR_INVALID_ARG,
               "%s: 'db' is reduced over broadcast dims and may not alias 'dy' or 'a'", fn);
    if (da) {
        if (eff_tensor_same_shape(da, dy)) eff__binary_run(ctx, 1, da, dy, b);
        else eff__reduce_to(da, dy, b);
    }
    if (db) {
        if (eff_tensor_same_shape(db, dy)) eff__binary_run(ctx, 1, db, dy, a);
        else eff__reduce_to(db, dy, a);
    }
    return EFF_OK;
}

/* ---- softmax ---- */
static float eff__row_max(int64_t n, const float *x) {
    int64_t i = 0;
    float m = -INFINITY;
    if (n >= EFF__VL) {
        eff__vf vm = eff__vload(x);
        for (i = EFF__VL; i + EFF__VL <= n; i += EFF__VL) vm = eff__vmax(vm, eff__vload(x + i));
        m = eff__vhmax(vm);
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
/* Sum of exp(x - m) with the vector exp; writes the exponentials to y when y != NULL. */
static float eff__row_exp_sum(int64_t n, float *y, const float *x, float m) {
    int64_t i = 0;
    eff__vf vs = eff__vzero(), vm = eff__vset1(m);
    float s;
    for (; i + EFF__VL <= n; i += EFF__VL) {
        eff__vf e = eff__vexp(eff__vsub(eff__vload(x + i), vm));
        if (y) eff__vstore(y + i, e);
        vs = eff__vadd(vs, e);
    }
    s = eff__vhsum(vs);
    for (; i < n; i++) { float e = expf(x[i] - m); if (y) y[i] = e; s += e; }
    return s;
}
static void eff__softmax_f(int64_t n, float *y, const float *x, const float *u1, const float *u2, const float *p) {
    float m = eff__row_max(n, x), inv;
    int64_t i;
    (void)u1; (void)u2; (void)p;
    if (m == -INFINITY) { for (i = 0; i < n; i++) y[i] = 0.0f; return; }  /* fully masked row */
    inv = 1.0f / eff__row_exp_sum(n, y, x, m);
    for (i = 0; i < n; i++) y[i] *= inv;
}
static void eff__log_softmax_f(int64_t n, float *y, const float *x, const float *u1, const float *u2, const float *p) {
    float m = eff__row_max(n, x), lse;
    int64_t i;
    (void)u1; (void)u2; (void)p;
    if (m == -INFINITY) { for (i = 0; i < n; i++) y[i] = -INFINITY; return; }
    lse = logf(eff__row_exp_sum(n, NULL, x, m));
    for (i = 0; i < n; i++) y[i] = (x[i] - m) - lse;   /* x - m is exact; x - (m + lse) is not for large x */
}
static void eff__softmax_b(int64_t n, float *dx, const float *dy, const float *y, const float *u, const float *p) {
    double dot = 0.0;
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) dot += (double)dy[i] * y[i];
    for (i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - (float)dot);
}
static void eff__log_softmax_b(int64_t n, float *dx, const float *dy, const float *y, const float *u, const float *p) {
    double sum = 0.0;
    int64_t i;
    (void)u; (void)p;
    for (i = 0; i < n; i++) sum += dy[i];
    for (i = 0; i < n; i++) dx[i] = dy[i] - expf(y[i]) * (float)sum;
}
/* Row ops need whole rows per call, so they run through this row-only driver. */
static eff_status eff__rowwise_apply(eff_ctx *ctx, const char *fn, eff__row_fn f, eff_tensor *out, const char *on,
                                     const eff_tensor *a, const char *an, const eff_tensor *b, const char *bn) {
    int64_t rows, cols, r;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, out, on));
    EFF__TRY(eff__check_f32(ctx, fn, a, an));
    EFF__TRY(eff__check_same(ctx, fn, out, on, a, an));
    if (bn) { EFF__TRY(eff__check_f32(ctx, fn, b, bn)); EFF__TRY(eff__check_same(ctx, fn, out, on, b, bn)); }
    rows = eff_tensor_nrows(out); cols = eff_tensor_ncols(out); nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * cols > 32768))
    for (r = 0; r < rows; r++) f(cols, EFF__ROWPTR(out, r), EFF__ROWPTR(a, r), bn ? EFF__ROWPTR(b, r) : NULL, NULL, NULL);
    return EFF_OK;
}
EFFDEF eff_status eff_softmax_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) {
        const eff_tensor *ts[2];
        const char *nm[2] = {"y", "x"};
        ts[0] = y; ts[1] = x;
        EFF__TRY(eff__cuda_args(ctx, "eff_softmax_forward", 2, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_softmax(ctx, (float *)y->data, (const float *)x->data, eff_tensor_nrows(x), eff_tensor_ncols(x), 0);
#endif
    }
    return eff__rowwise_apply(ctx, "eff_softmax_forward", eff__softmax_f, y, "y", x, "x", NULL, NULL);
}
EFFDEF eff_status eff_softmax_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *y) {
    if (EFF__ON_CUDA(dx) || EFF__ON_CUDA(dy)) {
        const eff_tensor *ts[3];
        const char *nm[3] = {"dx", "dy", "y"};
        ts[0] = dx; ts[1] = dy; ts[2] = y;
        EFF__TRY(eff__cuda_args(ctx, "eff_softmax_backward", 3, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_softmax_backward(ctx, (float *)dx->data, (const float *)dy->data, (const float *)y->data, eff_tensor_nrows(y),
                                         eff_tensor_ncols(y), 0);
#endif
    }
    return eff__rowwise_apply(ctx, "eff_softmax_backward", eff__softmax_b, dx, "dx", dy, "dy", y, "y");
}
EFFDEF eff_status eff_log_softmax_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) {
        const eff_tensor *ts[2];
        const char *nm[2] = {"y", "x"};
        ts[0] = y; ts[1] = x;
        EFF__TRY(eff__cuda_args(ctx, "eff_log_softmax_forward", 2, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_softmax(ctx, (float *)y->data, (const float *)x->data, eff_tensor_nrows(x), eff_tensor_ncols(x), 1);
#endif
    }
    return eff__rowwise_apply(ctx, "eff_log_softmax_forward", eff__log_softmax_f, y, "y", x, "x", NULL, NULL);
}
EFFDEF eff_status eff_log_softmax_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_tensor *y) {
    if (EFF__ON_CUDA(dx) || EFF__ON_CUDA(dy)) {
        const eff_tensor *ts[3];
        const char *nm[3] = {"dx", "dy", "y"};
        ts[0] = dx; ts[1] = dy; ts[2] = y;
        EFF__TRY(eff__cuda_args(ctx, "eff_log_softmax_backward", 3, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_softmax_backward(ctx, (float *)dx->data, (const float *)dy->data, (const float *)y->data, eff_tensor_nrows(y),
                                         eff_tensor_ncols(y), 1);
#endif
    }
    return eff__rowwise_apply(ctx, "eff_log_softmax_backward", eff__log_softmax_b, dx, "dx", dy, "dy", y, "y");
}

/* ---- LayerNorm / RMSNorm ---- */
static eff_status eff__check_vec(eff_ctx *ctx, const char *fn, const eff_tensor *v, const char *vn, int64_t n) {
    EFF__TRY(eff__check_f32(ctx, fn, v, vn));
    EFF__CHECK(ctx, eff_tensor_nelements(v) == n && eff_tensor_is_contiguous(v), EFF_ERR_SHAPE,
               "%s: '%s' must be a contiguous vector of %lld elements", fn, vn, (long long)n);
    return EFF_OK;
}

/* Per-thread accumulators for parameter gradients reduced over rows (dw, db):
   each thread sums its rows into its own slice, then slices are added in thread
   order, so the result does not depend on scheduling. */
static float *eff__thread_acc(eff_ctx *ctx, int nt, int64_t n) { return (float *)eff_ctx_calloc(ctx, (size_t)(nt * n) * sizeof(float)); }
static void eff__thread_acc_reduce(float *dst, const float *acc, int nt, int64_t n, int64_t stride) {
    int t;
    int64_t i;
    for (t = 0; t < nt; t++) for (i = 0; i < n; i++) dst[i] += acc[t * stride + i];
}

EFFDEF eff_status eff_layernorm_forward(eff_ctx *ctx, eff_tensor *y, eff_tensor *mean, eff_tensor *rstd,
                                        const eff_tensor *x, const eff_tensor *w, const eff_tensor *b, float eps) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) {
        const eff_tensor *ts[6];
        const char *nm[6] = {"y", "mean", "rstd", "x", "w", "b"};
        ts[0] = y; ts[1] = mean; ts[2] = rstd; ts[3] = x; ts[4] = w; ts[5] = b;
        EFF__TRY(eff__cuda_args(ctx, "eff_layernorm_forward", 6, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_norm(ctx, 0, (float *)y->data, mean ? (float *)mean->data : NULL, rstd ? (float *)rstd->data : NULL,
                             (const float *)x->data, w ? (const float *)w->data : NULL, b ? (const float *)b->data : NULL, eff_tensor_nrows(x),
                             eff_tensor_ncols(x), eps);
#endif
    }
    const char *fn = "eff_layernorm_forward";
    int64_t rows, C, r;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, y, "y"));
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_same(ctx, fn, y, "y", x, "x"));
    rows = eff_tensor_nrows(x); C = eff_tensor_ncols(x);
    if (w) EFF__TRY(eff__check_vec(ctx, fn, w, "w", C));
    if (b) EFF__TRY(eff__check_vec(ctx, fn, b, "b", C));
    if (mean) EFF__TRY(eff__check_vec(ctx, fn, mean, "mean", rows));
    if (rstd) EFF__TRY(eff__check_vec(ctx, fn, rstd, "rstd", rows));
    EFF__CHECK(ctx, eps >= 0.0f, EFF_ERR_INVALID_ARG, "%s: eps %g < 0", fn, (double)eps);
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * C > 32768))
    for (r = 0; r < rows; r++) {
        const float *xr = EFF__ROWPTR(x, r), *wp = w ? (const float *)w->data : NULL, *bp = b ? (const float *)b->data : NULL;
        float *yr = EFF__ROWPTR(y, r), mu, rs;
        double s = 0.0, v = 0.0;
        int64_t i;
        for (i = 0; i < C; i++) s += xr[i];
        mu = (float)(s / (double)C);
        for (i = 0; i < C; i++) { double d = xr[i] - mu; v += d * d; }
        rs = (float)(1.0 / sqrt(v / (double)C + eps));
        if (mean) ((float *)mean->data)[r] = mu;
        if (rstd) ((float *)rstd->data)[r] = rs;
        for (i = 0; i < C; i++) yr[i] = (xr[i] - mu) * rs * (wp ? wp[i] : 1.0f) + (bp ? bp[i] : 0.0f);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_layernorm_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dw, eff_tensor *db,
                                         const eff_tensor *dy, const eff_tensor *x, const eff_tensor *w,
                                         const eff_tensor *mean, const eff_tensor *rstd) {
    if (EFF__ON_CUDA(dy) || EFF__ON_CUDA(x)) {
        const eff_tensor *ts[8];
        const char *nm[8] = {"dx", "dw", "db", "dy", "x", "w", "mean", "rstd"};
        ts[0] = dx; ts[1] = dw; ts[2] = db; ts[3] = dy; ts[4] = x; ts[5] = w; ts[6] = mean; ts[7] = rstd;
        EFF__TRY(eff__cuda_args(ctx, "eff_layernorm_backward", 8, ts, nm));
        EFF__CHECK(ctx, mean && rstd, EFF_ERR_INVALID_ARG, "eff_layernorm_backward: 'mean' and 'rstd' are required");
#ifdef EFF_CUDA
        return eff_cuda_norm_backward(ctx, 0, dx ? (float *)dx->data : NULL, dw ? (float *)dw->data : NULL, db ? (float *)db->data : NULL,
                                      (const float *)dy->data, (const float *)x->data, w ? (const float *)w->data : NULL,
                                      (const float *)mean->data, (const float *)rstd->data, eff_tensor_nrows(x), eff_tensor_ncols(x));
#endif
    }
    const char *fn = "eff_layernorm_backward";
    int64_t rows, C, r;
    int nt;
    float *acc = NULL;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, dy, "dy"));
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_same(ctx, fn, dy, "dy", x, "x"));
    rows = eff_tensor_nrows(x); C = eff_tensor_ncols(x);
    if (dx) { EFF__TRY(eff__check_f32(ctx, fn, dx, "dx")); EFF__TRY(eff__check_same(ctx, fn, dx, "dx", x, "x")); }
    if (w) EFF__TRY(eff__check_vec(ctx, fn, w, "w", C));
    if (dw) EFF__TRY(eff__check_vec(ctx, fn, dw, "dw", C));
    if (db) EFF__TRY(eff__check_vec(ctx, fn, db, "db", C));
    EFF__TRY(eff__check_vec(ctx, fn, mean, "mean", rows));
    EFF__TRY(eff__check_vec(ctx, fn, rstd, "rstd", rows));
    EFF__CHECK(ctx, !dx || dx->data != x->data, EFF_ERR_INVALID_ARG, "%s: 'dx' may not alias 'x'", fn);
    nt = ctx->n_threads;
    if (dw || db) { acc = eff__thread_acc(ctx, nt, 2 * C); if (!acc) return ctx->last_status; }
    EFF__OMP(parallel num_threads(nt) if (nt > 1 && rows * C > 32768))
    {
        float *my = acc ? acc + (int64_t)eff__tid() * 2 * C : NULL;
        EFF__OMP(for schedule(static))
        for (r = 0; r < rows; r++) {
            const float *xr = EFF__ROWPTR(x, r), *dyr = EFF__ROWPTR(dy, r), *wp = w ? (const float *)w->data : NULL;
            float mu = ((const float *)mean->data)[r], rs = ((const float *)rstd->data)[r];
            double sdn = 0.0, sdnn = 0.0;
            int64_t i;
            for (i = 0; i < C; i++) {
                float nrm = (xr[i] - mu) * rs, dn = dyr[i] * (wp ? wp[i] : 1.0f);
                sdn += dn; sdnn += (double)dn * nrm;
                if (my) { my[i] += dyr[i] * nrm; my[C + i] += dyr[i]; }
            }
            if (dx) {   /* dx = rstd * (dn - mean(dn) - norm * mean(dn * norm)) */
                float *dxr = EFF__ROWPTR(dx, r), a = (float)(sdn / (double)C), bb = (float)(sdnn / (double)C);
                for (i = 0; i < C; i++) {
                    float nrm = (xr[i] - mu) * rs, dn = dyr[i] * (wp ? wp[i] : 1.0f);
                    dxr[i] = rs * (dn - a - nrm * bb);
                }
            }
        }
    }
    if (acc) {
        if (dw) eff__thread_acc_reduce((float *)dw->data, acc, nt, C, 2 * C);
        if (db) eff__thread_acc_reduce((float *)db->data, acc + C, nt, C, 2 * C);
        eff_ctx_free(ctx, acc);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_rmsnorm_forward(eff_ctx *ctx, eff_tensor *y, eff_tensor *rstd, const eff_tensor *x,
                                      const eff_tensor *w, float eps) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x)) {
        const eff_tensor *ts[4];
        const char *nm[4] = {"y", "rstd", "x", "w"};
        ts[0] = y; ts[1] = rstd; ts[2] = x; ts[3] = w;
        EFF__TRY(eff__cuda_args(ctx, "eff_rmsnorm_forward", 4, ts, nm));
#ifdef EFF_CUDA
        return eff_cuda_norm(ctx, 1, (float *)y->data, NULL, rstd ? (float *)rstd->data : NULL, (const float *)x->data,
                             w ? (const float *)w->data : NULL, NULL, eff_tensor_nrows(x), eff_tensor_ncols(x), eps);
#endif
    }
    const char *fn = "eff_rmsnorm_forward";
    int64_t rows, C, r;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, y, "y"));
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_same(ctx, fn, y, "y", x, "x"));
    rows = eff_tensor_nrows(x); C = eff_tensor_ncols(x);
    if (w) EFF__TRY(eff__check_vec(ctx, fn, w, "w", C));
    if (rstd) EFF__TRY(eff__check_vec(ctx, fn, rstd, "rstd", rows));
    EFF__CHECK(ctx, eps >= 0.0f, EFF_ERR_INVALID_ARG, "%s: eps %g < 0", fn, (double)eps);
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * C > 32768))
    for (r = 0; r < rows; r++) {
        const float *xr = EFF__ROWPTR(x, r), *wp = w ? (const float *)w->data : NULL;
        float *yr = EFF__ROWPTR(y, r), rs;
        double ss = 0.0;
        int64_t i;
        for (i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        rs = (float)(1.0 / sqrt(ss / (double)C + eps));
        if (rstd) ((float *)rstd->data)[r] = rs;
        for (i = 0; i < C; i++) yr[i] = xr[i] * rs * (wp ? wp[i] : 1.0f);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_rmsnorm_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dw, const eff_tensor *dy,
                                       const eff_tensor *x, const eff_tensor *w, const eff_tensor *rstd) {
    if (EFF__ON_CUDA(dy) || EFF__ON_CUDA(x)) {
        const eff_tensor *ts[6];
        const char *nm[6] = {"dx", "dw", "dy", "x", "w", "rstd"};
        ts[0] = dx; ts[1] = dw; ts[2] = dy; ts[3] = x; ts[4] = w; ts[5] = rstd;
        EFF__TRY(eff__cuda_args(ctx, "eff_rmsnorm_backward", 6, ts, nm));
        EFF__CHECK(ctx, rstd != NULL, EFF_ERR_INVALID_ARG, "eff_rmsnorm_backward: 'rstd' is required");
#ifdef EFF_CUDA
        return eff_cuda_norm_backward(ctx, 1, dx ? (float *)dx->data : NULL, dw ? (float *)dw->data : NULL, NULL, (const float *)dy->data,
                                      (const float *)x->data, w ? (const float *)w->data : NULL, NULL, (const float *)rstd->data,
                                      eff_tensor_nrows(x), eff_tensor_ncols(x));
#endif
    }
    const char *fn = "eff_rmsnorm_backward";
    int64_t rows, C, r;
    int nt;
    float *acc = NULL;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, dy, "dy"));
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_same(ctx, fn, dy, "dy", x, "x"));
    rows = eff_tensor_nrows(x); C = eff_tensor_ncols(x);
    if (dx) { EFF__TRY(eff__check_f32(ctx, fn, dx, "dx")); EFF__TRY(eff__check_same(ctx, fn, dx, "dx", x, "x")); }
    if (w) EFF__TRY(eff__check_vec(ctx, fn, w, "w", C));
    if (dw) EFF__TRY(eff__check_vec(ctx, fn, dw, "dw", C));
    EFF__TRY(eff__check_vec(ctx, fn, rstd, "rstd", rows));
    EFF__CHECK(ctx, !dx || dx->data != x->data, EFF_ERR_INVALID_ARG, "%s: 'dx' may not alias 'x'", fn);
    nt = ctx->n_threads;
    if (dw) { acc = eff__thread_acc(ctx, nt, C); if (!acc) return ctx->last_status; }
    EFF__OMP(parallel num_threads(nt) if (nt > 1 && rows * C > 32768))
    {
        float *my = acc ? acc + (int64_t)eff__tid() * C : NULL;
        EFF__OMP(for schedule(static))
        for (r = 0; r < rows; r++) {
            const float *xr = EFF__ROWPTR(x, r), *dyr = EFF__ROWPTR(dy, r), *wp = w ? (const float *)w->data : NULL;
            float rs = ((const float *)rstd->data)[r], k;
            double sgx = 0.0;
            int64_t i;
            for (i = 0; i < C; i++) {
                sgx += (double)dyr[i] * (wp ? wp[i] : 1.0f) * xr[i];
                if (my) my[i] += dyr[i] * xr[i] * rs;
            }
            k = (float)(sgx / (double)C) * rs * rs * rs;   /* dx = rstd*g - x*rstd^3*mean(g*x), g = dy*w */
            if (dx) {
                float *dxr = EFF__ROWPTR(dx, r);
                for (i = 0; i < C; i++) dxr[i] = rs * dyr[i] * (wp ? wp[i] : 1.0f) - xr[i] * k;
            }
        }
    }
    if (acc) { eff__thread_acc_reduce((float *)dw->data, acc, nt, C, C); eff_ctx_free(ctx, acc); }
    return EFF_OK;
}

/* ---- RoPE ---- */
/* (cos, sin) of position p for the rot/2 frequencies; angles in double: p * theta^(-2i/rot). */
static void eff__rope_angles(const eff_rope_opts *o, int64_t rot, int64_t p, float *c) {
    double pos = (double)p * o->freq_scale;
    int64_t i;
    for (i = 0; i < rot / 2; i++) {
        double ang = pos * pow((double)o->theta, -2.0 * (double)i / (double)rot);
        c[2 * i] = (float)cos(ang);
        c[2 * i + 1] = (float)sin(ang);
    }
}
EFFDEF eff_status eff_rope_table(eff_ctx *ctx, float *cs, int64_t pos0, int64_t n, int64_t head_dim, const eff_rope_opts *opts) {
    eff_rope_opts o;
    int64_t rot, t;
    EFF__CHECK_PTR(ctx, ctx);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (o.theta == 0.0f) o.theta = 10000.0f;
    if (o.freq_scale == 0.0f) o.freq_scale = 1.0f;
    rot = o.rot_dim ? o.rot_dim : head_dim;
    EFF__CHECK(ctx, n >= 0 && (n == 0 || cs), EFF_ERR_INVALID_ARG, "eff_rope_table: 'cs' is NULL or n = %lld < 0", (long long)n);
    EFF__CHECK(ctx, rot > 0 && rot <= head_dim && rot % 2 == 0, EFF_ERR_INVALID_ARG, "eff_rope_table: rot_dim %lld must be even and in (0, %lld]",
               (long long)rot, (long long)head_dim);
    EFF__CHECK(ctx, o.theta > 0.0f, EFF_ERR_INVALID_ARG, "eff_rope_table: theta %g <= 0", (double)o.theta);
    for (t = 0; t < n; t++) eff__rope_angles(&o, rot, pos0 + t, cs + t * rot);
    return EFF_OK;
}
static eff_status eff__rope(eff_ctx *ctx, const char *fn, eff_tensor *y, const eff_tensor *x, const eff_rope_opts *opts, float sign) {
    eff_rope_opts o;
    int64_t B, T, H, D, rot, half, t;
    float *cs;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, y, "y"));
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_same(ctx, fn, y, "y", x, "x"));
    EFF__CHECK(ctx, x->ndim == 4, EFF_ERR_SHAPE, "%s: 'x' must be 4-D [B, T, H, D], got %d dims", fn, x->ndim);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (o.theta == 0.0f) o.theta = 10000.0f;
    if (o.freq_scale == 0.0f) o.freq_scale = 1.0f;
    B = x->ne[0]; T = x->ne[1]; H = x->ne[2]; D = x->ne[3];
    rot = o.rot_dim ? o.rot_dim : D;
    EFF__CHECK(ctx, rot > 0 && rot <= D && rot % 2 == 0, EFF_ERR_INVALID_ARG, "%s: rot_dim %lld must be even and in (0, D=%lld]",
               fn, (long long)rot, (long long)D);
    EFF__CHECK(ctx, o.mode == EFF_ROPE_NEOX || o.mode == EFF_ROPE_GPTJ, EFF_ERR_INVALID_ARG, "%s: unknown mode %d", fn, o.mode);
    EFF__CHECK(ctx, o.theta > 0.0f, EFF_ERR_INVALID_ARG, "%s: theta %g <= 0", fn, (double)o.theta);
    half = rot / 2;
    if (B == 0 || T == 0 || H == 0 || D == 0) return EFF_OK;
    cs = (float *)eff_ctx_alloc(ctx, (size_t)(T * half * 2) * sizeof(float));
    if (!cs) return ctx->last_status;
    for (t = 0; t < T; t++) {
        int64_t p = o.pos ? (int64_t)o.pos[t] : o.pos_offset + t, i;
        float *c = cs + t * half * 2;
        if (o.cs && p >= o.cs_pos0 && p < o.cs_pos0 + o.cs_len) memcpy(c, o.cs + (p - o.cs_pos0) * half * 2, (size_t)half * 2 * sizeof(float));
        else eff__rope_angles(&o, rot, p, c);
        if (sign < 0.0f) for (i = 0; i < half; i++) c[2 * i + 1] = -c[2 * i + 1];
    }
    nt = ctx->n_threads;
    (void)nt;
    {
        int64_t bth, n = B * T * H;
        EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && n * D > 32768))
        for (bth = 0; bth < n; bth++) {
            int64_t b = bth / (T * H), tt = (bth / H) % T, h = bth % H, i;
            const float *xr = (const float *)((const char *)x->data + b * x->nb[0] + tt * x->nb[1] + h * x->nb[2]);
            float *yr = (float *)((char *)y->data + b * y->nb[0] + tt * y->nb[1] + h * y->nb[2]);
            const float *c = cs + tt * half * 2;
            for (i = 0; i < half; i++) {
                int64_t i0 = o.mode == EFF_ROPE_NEOX ? i : 2 * i, i1 = o.mode == EFF_ROPE_NEOX ? i + half : 2 * i + 1;
                float x0 = xr[i0], x1 = xr[i1], co = c[2 * i], si = c[2 * i + 1];
                yr[i0] = x0 * co - x1 * si;
                yr[i1] = x0 * si + x1 * co;
            }
            if (yr != xr) for (i = rot; i < D; i++) yr[i] = xr[i];
        }
    }
    eff_ctx_free(ctx, cs);
    return EFF_OK;
}
EFFDEF eff_status eff_rope_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, const eff_rope_opts *opts) {
    return eff__rope(ctx, "eff_rope_forward", y, x, opts, 1.0f);
}
/* The rotation is orthogonal, so the gradient is the rotation by -angle. */
EFFDEF eff_status eff_rope_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, const eff_rope_opts *opts) {
    return eff__rope(ctx, "eff_rope_backward", dx, dy, opts, -1.0f);
}

/* ---- embedding ---- */
static eff_status eff__check_ids(eff_ctx *ctx, const char *fn, const eff_tensor *ids, int64_t V) {
    int64_t n, i;
    const int32_t *p;
    EFF__CHECK(ctx, ids != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'ids' is NULL", fn);
    EFF__TRY(eff_tensor_validate(ctx, ids, "ids"));
    EFF__CHECK(ctx, ids->dtype == EFF_I32 && eff_tensor_is_contiguous(ids), EFF_ERR_DTYPE,
               "%s: 'ids' must be contiguous i32", fn);
    n = eff_tensor_nelements(ids); p = (const int32_t *)ids->data;
    for (i = 0; i < n; i++)
        EFF__CHECK(ctx, p[i] >= 0 && p[i] < V, EFF_ERR_INVALID_ARG, "%s: ids[%lld] = %d outside the table's %lld rows", fn,
                   (long long)i, (int)p[i], (long long)V);
    return EFF_OK;
}
EFFDEF eff_status eff_embedding_forward(eff_ctx *ctx, eff_tensor *out, const eff_tensor *ids, const eff_tensor *table) {
    const char *fn = "eff_embedding_forward";
    const eff_dtype_traits *tt;
    int64_t n, C, i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, table);
    EFF__TRY(eff_tensor_validate(ctx, table, "table"));
    EFF__CHECK(ctx, table->ndim == 2 && table->device == EFF_DEVICE_CPU, EFF_ERR_SHAPE, "%s: 'table' must be a 2-D CPU tensor [V, C]", fn);
    tt = eff_ctx_dtype(ctx, table->dtype);
    EFF__CHECK(ctx, tt->to_float != NULL, EFF_ERR_DTYPE, "%s: no to_float for table dtype %s (register it first)", fn, tt->name);
    EFF__CHECK(ctx, table->nb[1] == (int64_t)tt->type_size || table->ne[1] <= 1, EFF_ERR_SHAPE, "%s: 'table' rows must be contiguous", fn);
    EFF__TRY(eff__check_ids(ctx, fn, ids, table->ne[0]));
    EFF__TRY(eff__check_f32(ctx, fn, out, "out"));
    C = table->ne[1]; n = eff_tensor_nelements(ids);
    EFF__CHECK(ctx, eff_tensor_ncols(out) == C && eff_tensor_nrows(out) == n && out->ndim == ids->ndim + 1, EFF_ERR_SHAPE,
               "%s: 'out' must be ids' shape + [%lld]", fn, (long long)C);
    for (i = 0; i < n; i++) {
        int32_t id = ((const int32_t *)ids->data)[i];
        tt->to_float((const char *)table->data + id * table->nb[0], EFF__ROWPTR(out, i), C);
    }
    return EFF_OK;
}
EFFDEF eff_status eff_embedding_backward(eff_ctx *ctx, eff_tensor *dtable, const eff_tensor *dout, const eff_tensor *ids) {
    const char *fn = "eff_embedding_backward";
    int64_t n, C, i, j;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, dtable, "dtable"));
    EFF__CHECK(ctx, dtable->ndim == 2, EFF_ERR_SHAPE, "%s: 'dtable' must be 2-D [V, C]", fn);
    EFF__TRY(eff__check_ids(ctx, fn, ids, dtable->ne[0]));
    EFF__TRY(eff__check_f32(ctx, fn, dout, "dout"));
    C = dtable->ne[1]; n = eff_tensor_nelements(ids);
    EFF__CHECK(ctx, eff_tensor_ncols(dout) == C && eff_tensor_nrows(dout) == n, EFF_ERR_SHAPE,
               "%s: 'dout' must be ids' shape + [%lld]", fn, (long long)C);
    for (i = 0; i < n; i++) {   /* serial: repeated ids add into the same row */
        float *d = (float *)((char *)dtable->data + ((const int32_t *)ids->data)[i] * dtable->nb[0]);
        const float *g = EFF__ROWPTR(dout, i);
        for (j = 0; j < C; j++) d[j] += g[j];
    }
    return EFF_OK;
}

/* ---- fused softmax + cross-entropy ---- */
static eff_status eff__xent_check(eff_ctx *ctx, const char *fn, const eff_tensor *logits, const eff_tensor *targets,
                                  const eff_xent_opts *opts, int32_t *ignore, float *eps) {
    int64_t N, V, i;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, logits, "logits"));
    EFF__CHECK(ctx, logits->ndim >= 1, EFF_ERR_SHAPE, "%s: 'logits' must be [N, V]", fn);
    EFF__CHECK(ctx, targets != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'targets' is NULL", fn);
    EFF__TRY(eff_tensor_validate(ctx, targets, "targets"));
    EFF__CHECK(ctx, targets->dtype == EFF_I32 && eff_tensor_is_contiguous(targets), EFF_ERR_DTYPE,
               "%s: 'targets' must be contiguous i32", fn);
    N = eff_tensor_nrows(logits); V = eff_tensor_ncols(logits);
    EFF__CHECK(ctx, eff_tensor_nelements(targets) == N, EFF_ERR_SHAPE, "%s: %lld targets for %lld rows of logits", fn,
               (long long)eff_tensor_nelements(targets), (long long)N);
    *ignore = opts && opts->has_ignore_index ? opts->ignore_index : -100;
    *eps = opts ? opts->label_smoothing : 0.0f;
    EFF__CHECK(ctx, *eps >= 0.0f && *eps <= 1.0f, EFF_ERR_INVALID_ARG, "%s: label_smoothing %g outside [0, 1]", fn, (double)*eps);
    for (i = 0; i < N; i++) {
        int32_t t = ((const int32_t *)targets->data)[i];
        EFF__CHECK(ctx, t == *ignore || (t >= 0 && t < V), EFF_ERR_INVALID_ARG, "%s: targets[%lld] = %d outside [0, %lld)", fn,
                   (long long)i, (int)t, (long long)V);
    }
    return EFF_OK;
}

EFFDEF eff_status eff_cross_entropy_forward(eff_ctx *ctx, eff_tensor *losses, float *mean_loss, const eff_tensor *logits,
                                            const eff_tensor *targets, const eff_xent_opts *opts) {
    const char *fn = "eff_cross_entropy_forward";
    int32_t ignore;
    float eps;
    int64_t N, V, r, n_valid = 0;
    double total = 0.0;
    int nt;
    EFF__TRY(eff__xent_check(ctx, fn, logits, targets, opts, &ignore, &eps));
    N = eff_tensor_nrows(logits); V = eff_tensor_ncols(logits);
    if (losses) EFF__TRY(eff__check_vec(ctx, fn, losses, "losses", N));
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) reduction(+ : total, n_valid) if (nt > 1 && N * V > 32768))
    for (r = 0; r < N; r++) {
        int32_t t = ((const int32_t *)targets->data)[r];
        const float *x = EFF__ROWPTR(logits, r);
        float loss = 0.0f;
        if (t != ignore) {
            float m = eff__row_max(V, x);
            double lse = (double)m + log((double)eff__row_exp_sum(V, NULL, x, m));
            loss = (float)(lse - x[t]);
            if (eps > 0.0f) {   /* PyTorch: (1-eps) * nll + eps * mean_j(-log p_j) */
                double sx = 0.0;
                int64_t j;
                for (j = 0; j < V; j++) sx += x[j];
                loss = (float)((1.0 - eps) * (lse - x[t]) + eps * (lse - sx / (double)V));
            }
            total += loss; n_valid++;
        }
        if (losses) ((float *)losses->data)[r] = loss;
    }
    if (mean_loss) *mean_loss = n_valid ? (float)(total / (double)n_valid) : 0.0f;
    return EFF_OK;
}

EFFDEF eff_status eff_cross_entropy_backward(eff_ctx *ctx, eff_tensor *dlogits, const eff_tensor *logits,
                                             const eff_tensor *targets, float dloss, const eff_xent_opts *opts) {
    const char *fn = "eff_cross_entropy_backward";
    int32_t ignore;
    float eps;
    int64_t N, V, r, n_valid = 0;
    int nt;
    EFF__TRY(eff__xent_check(ctx, fn, logits, targets, opts, &ignore, &eps));
    EFF__TRY(eff__check_f32(ctx, fn, dlogits, "dlogits"));
    EFF__TRY(eff__check_same(ctx, fn, dlogits, "dlogits", logits, "logits"));
    N = eff_tensor_nrows(logits); V = eff_tensor_ncols(logits);
    for (r = 0; r < N; r++) n_valid += ((const int32_t *)targets->data)[r] != ignore;
    if (dloss == 0.0f) dloss = n_valid ? 1.0f / (float)n_valid : 0.0f;
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * V > 32768))
    for (r = 0; r < N; r++) {
        int32_t t = ((const int32_t *)targets->data)[r];
        const float *x = EFF__ROWPTR(logits, r);
        float *dx = EFF__ROWPTR(dlogits, r);
        int64_t j;
        if (t == ignore) { for (j = 0; j < V; j++) dx[j] = 0.0f; continue; }
        {
            float m = eff__row_max(V, x), inv = 1.0f / eff__row_exp_sum(V, dx, x, m), off = eps / (float)V;
            for (j = 0; j < V; j++) dx[j] = (dx[j] * inv - off) * dloss;
            dx[t] -= (1.0f - eps) * dloss;
        }
    }
    return EFF_OK;
}

/* ---- dropout ---- */
/* Element i (row-major logical index) is kept when the top 24 bits of
   eff_hash_u64(seed, offset + i) are >= p * 2^24. */
static eff_status eff__dropout(eff_ctx *ctx, const char *fn, eff_tensor *y, const eff_tensor *x, float p, uint64_t seed, uint64_t offset) {
    int64_t rows, cols, r;
    uint32_t thr;
    float scale;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, y, "y"));
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_same(ctx, fn, y, "y", x, "x"));
    EFF__CHECK(ctx, p >= 0.0f && p <= 1.0f, EFF_ERR_INVALID_ARG, "%s: p = %g outside [0, 1]", fn, (double)p);
    rows = eff_tensor_nrows(x); cols = eff_tensor_ncols(x);
    thr = (uint32_t)((double)p * 16777216.0);
    scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && rows * cols > 65536))
    for (r = 0; r < rows; r++) {
        const float *xr = EFF__ROWPTR(x, r);
        float *yr = EFF__ROWPTR(y, r);
        int64_t j;
        for (j = 0; j < cols; j++) {
            uint32_t h = (uint32_t)(eff_hash_u64(seed, offset + (uint64_t)(r * cols + j)) >> 40);
            yr[j] = h >= thr ? xr[j] * scale : 0.0f;
        }
    }
    return EFF_OK;
}
EFFDEF eff_status eff_dropout_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, float p, uint64_t seed, uint64_t offset) {
    return eff__dropout(ctx, "eff_dropout_forward", y, x, p, seed, offset);
}
EFFDEF eff_status eff_dropout_backward(eff_ctx *ctx, eff_tensor *dx, const eff_tensor *dy, float p, uint64_t seed, uint64_t offset) {
    return eff__dropout(ctx, "eff_dropout_backward", dx, dy, p, seed, offset);
}

/* ---- linear and matmul ---- */
/* Views t's rows as an M x cols matrix with leading dimension ld (floats) when the
   outer dims collapse into one uniform stride. */
static int eff__as_matrix(const eff_tensor *t, int64_t *ld) {
    int i, d = t->ndim, prev = -1;
    int64_t cols = eff_tensor_ncols(t);
    *ld = cols > 0 ? cols : 1;
    if (eff_tensor_nrows(t) <= 1) return 1;
    /* size-1 dims carry no stride; the others must nest: nb[i] = nb[inner] * ne[inner] */
    for (i = d - 2; i >= 0; i--) {
        if (t->ne[i] == 1) continue;
        if (prev >= 0 && t->nb[i] != t->nb[prev] * t->ne[prev]) return 0;
        if (prev < 0) {   /* the innermost outer dim with ne > 1 gives the row stride */
            if (t->nb[i] % 4 || t->nb[i] / 4 < cols) return 0;
            *ld = t->nb[i] / 4;
        }
        prev = i;
    }
    return 1;
}

/* Rows [j0, j0+nj) of W (any dtype with to_float) dequantized into panel[nj, K]. */
static void eff__dequant_rows(int nt, const eff_dtype_traits *tr, const eff_tensor *W, int64_t j0, int64_t nj, int64_t K, float *panel) {
    int64_t r;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && nj * K > 65536))
    for (r = 0; r < nj; r++) tr->to_float((const char *)W->data + (j0 + r) * W->nb[0], panel + r * K, K);
}
static int64_t eff__panel_rows(int64_t K, int64_t N) {
    int64_t nj = ((int64_t)1 << 18) / (K > 0 ? K : 1);   /* ~1 MiB of f32 */
    nj = nj < EFF__GEMM_NR ? EFF__GEMM_NR : nj / EFF__GEMM_NR * EFF__GEMM_NR;
    return nj < N ? nj : N;
}

/* W's layouts the linear kernels read: rows with a contiguous last dim (any dtype), or for
   f32 a transposed view of a contiguous [in, out] matrix. */
static int eff__linear_w_ok(const eff_tensor *W, const eff_dtype_traits *tr) {
    if (W->ne[1] <= 1 || W->nb[1] == (int64_t)tr->type_size) return 1;
    return W->dtype == EFF_F32 && (W->nb[0] == 4 || W->ne[0] <= 1) && W->nb[1] % 4 == 0 && W->nb[1] / 4 >= W->ne[0];
}

EFFDEF eff_status eff_linear_forward(eff_ctx *ctx, eff_tensor *y, const eff_tensor *x, const eff_tensor *W, const eff_tensor *b) {
    if (EFF__ON_CUDA(y) || EFF__ON_CUDA(x) || EFF__ON_CUDA(W)) {
        const eff_tensor *ts[4];
        const char *nm[4] = {"y", "x", "W", "b"};
        ts[0] = y; ts[1] = x; ts[2] = W; ts[3] = b;
        EFF__TRY(eff__cuda_args(ctx, "eff_linear_forward", 4, ts, nm));
        EFF__CHECK(ctx, W->ndim == 2 && W->ne[1] == eff_tensor_ncols(x) && eff_tensor_ncols(y) == W->ne[0] &&
                   eff_tensor_nrows(y) == eff_tensor_nrows(x), EFF_ERR_SHAPE, "eff_linear_forward: shapes of x, W, y disagree");
#ifdef EFF_CUDA
        return eff_cuda_linear(ctx, (float *)y->data, (const float *)x->data, (const float *)W->data, b ? (const float *)b->data : NULL,
                               eff_tensor_nrows(x), W->ne[0], W->ne[1]);
#endif
    }
    const char *fn = "eff_linear_forward";
    const eff_dtype_traits *tr;
    eff_tensor xc;
    int64_t M, K, N, ldx, ldy;
    int own_x = 0;
    eff_status st = EFF_OK;
    char d1[96], d2[96];
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
    EFF__TRY(eff__check_f32(ctx, fn, y, "y"));
    EFF__CHECK(ctx, W != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'W' is NULL", fn);
    EFF__TRY(eff_tensor_validate(ctx, W, "W"));
    EFF__CHECK(ctx, W->ndim == 2, EFF_ERR_SHAPE, "%s: 'W' must be 2-D [out, in], got %s", fn, eff_tensor_describe(W, d1, sizeof d1));
    EFF__CHECK(ctx, W->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED, "%s: 'W' is a CUDA tensor", fn);
    M = eff_tensor_nrows(x); K = eff_tensor_ncols(x); N = W->ne[0];
    EFF__CHECK(ctx, W->ne[1] == K, EFF_ERR_SHAPE, "%s: 'x' %s has %lld features but 'W' %s expects %lld", fn,
               eff_tensor_describe(x, d1, sizeof d1), (long long)K, eff_tensor_describe(W, d2, sizeof d2), (long long)W->ne[1]);
    EFF__CHECK(ctx, eff_tensor_nrows(y) == M && eff_tensor_ncols(y) == N, EFF_ERR_SHAPE, "%s: 'y' %s must have %lld rows of %lld",
               fn, eff_tensor_describe(y, d1, sizeof d1), (long long)M, (long long)N);
    if (b) EFF__TRY(eff__check_vec(ctx, fn, b, "b", N));
    EFF__CHECK(ctx, eff__as_matrix(y, &ldy), EFF_ERR_SHAPE, "%s: 'y' rows are not uniformly strided", fn);
    EFF__CHECK(ctx, M == 0 || y->data != x->data, EFF_ERR_INVALID_ARG, "%s: 'y' may not alias 'x'", fn);
    tr = eff_ctx_dtype(ctx, W->dtype);
    EFF__CHECK(ctx, eff__linear_w_ok(W, tr), EFF_ERR_SHAPE,
               "%s: 'W' %s needs contiguous rows (or, for f32, to be a transposed view of a contiguous [in, out] matrix)", fn,
               eff_tensor_describe(W, d1, sizeof d1));
    if (M == 0 || N == 0) return EFF_OK;
    xc = *x;
    if (!eff__as_matrix(x, &ldx)) {
        EFF__TRY(eff_tensor_contiguous(ctx, &xc, x));
        own_x = 1; ldx = K;
    }
    if (W->dtype == EFF_F32 && (W->nb[1] == 4 || K == 1) && W->nb[0] % 4 == 0 && W->nb[0] / 4 >= K) {
        st = eff_sgemm(ctx, 0, 1, M, N, K, 1.0f, (const float *)xc.data, ldx, (const float *)W->data, K ? W->nb[0] / 4 : 1,
                       0.0f, (float *)y->data, ldy);
    } else if (W->dtype == EFF_F32 && (W->nb[0] == 4 || N == 1) && W->nb[1] % 4 == 0 && W->nb[1] / 4 >= N) {
        /* W is a transposed view of a [in, out] matrix */
        st = eff_sgemm(ctx, 0, 0, M, N, K, 1.0f, (const float *)xc.data, ldx, (const float *)W->data, W->nb[1] / 4,
                       0.0f, (float *)y->data, ldy);
    } else if (M > 8 && tr->to_float && (W->nb[1] == (int64_t)tr->type_size || K <= 1)) {
        /* prefill: dequantize panels of W and run the packed sgemm */
        int64_t nj = eff__panel_rows(K, N), j0;
        float *panel = (float *)eff_ctx_alloc(ctx, (size_t)(nj * K) * sizeof(float));
        if (!panel) st = ctx->last_status;
        for (j0 = 0; st == EFF_OK && j0 < N; j0 += nj) {
            int64_t n = N - j0 < nj ? N - j0 : nj;
            eff__dequant_rows(ctx->n_threads, tr, W, j0, n, K, panel);
            st = eff_sgemm(ctx, 0, 1, M, n, K, 1.0f, (const float *)xc.data, ldx, panel, K, 0.0f, (float *)y->data + j0, ldy);
        }
        eff_ctx_free(ctx, panel);
    } else {
        /* decode: activations converted once to the dot's partner dtype, one dot per output */
        const eff_dtype_traits *vt = eff_ctx_dtype(ctx, tr->vec_dot_type);
        int64_t rbq, i, j;
        unsigned char *xq = NULL;
        int nt = ctx->n_threads;
        (void)nt;
        if (!tr->vec_dot || !vt || !vt->from_float) {
            st = eff_ctx_error(ctx, EFF_ERR_DTYPE, "%s: no dot kernel for W dtype %s%s", fn, tr->name,
                               tr->is_quantized ? " (call eff_quant_register(ctx) first)" : "");
        } else {
            rbq = eff_dtype_row_bytes(tr->vec_dot_type, K);
            xq = (unsigned char *)eff_ctx_alloc(ctx, (size_t)(M * rbq));
            if (!xq) st = ctx->last_status;
            else {
                for (i = 0; i < M; i++) vt->from_float((const float *)xc.data + i * ldx, xq + i * rbq, K);
                EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && N * K > 32768))
                for (j = 0; j < N; j++) {
                    const void *wr = (const char *)W->data + j * W->nb[0];
                    int64_t ii;
                    for (ii = 0; ii < M; ii++) tr->vec_dot(K, (float *)y->data + ii * ldy + j, wr, xq + ii * rbq);
                }
            }
            eff_ctx_free(ctx, xq);
        }
    }
    if (own_x) eff_tensor_free(ctx, &xc);
    if (st == EFF_OK && b) {
        int64_t i, j;
        const float *bp = (const float *)b->data;
        for (i = 0; i < M; i++) {
            float *yr = (float *)y->data + i * ldy;
            for (j = 0; j < N; j++) yr[j] += bp[j];
        }
    }
    return st;
}

EFFDEF eff_status eff_linear_backward(eff_ctx *ctx, eff_tensor *dx, eff_tensor *dW, eff_tensor *db,
                                      const eff_tensor *dy, const eff_tensor *x, const eff_tensor *W) {
    if (EFF__ON_CUDA(dy) || EFF__ON_CUDA(W)) {
        const eff_tensor *ts[6];
        const char *nm[6] = {"dx", "dW", "db", "dy", "x", "W"};
        ts[0] = dx; ts[1] = dW; ts[2] = db; ts[3] = dy; ts[4] = x; ts[5] = W;
        EFF__TRY(eff__cuda_args(ctx, "eff_linear_backward", 6, ts, nm));
        EFF__CHECK(ctx, W && W->ndim == 2 && W->ne[0] == eff_tensor_ncols(dy), EFF_ERR_SHAPE, "eff_linear_backward: shapes of dy and W disagree");
#ifdef EFF_CUDA
        return eff_cuda_linear_backward(ctx, dx ? (float *)dx->data : NULL, dW ? (float *)dW->data : NULL, db ? (float *)db->data : NULL,
                                        (const float *)dy->data, x ? (const float *)x->data : NULL, (const float *)W->data, eff_tensor_nrows(dy),
                                        W->ne[0], W->ne[1]);
#endif
    }
    const char *fn = "eff_linear_backward";
    int64_t M, N, K, lddy, lddx = 1, ldx;
    eff_tensor dyc;
    int own_dy = 0;
    eff_status st = EFF_OK;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32(ctx, fn, dy, "dy"));
    M = eff_tensor_nrows(dy); N = eff_tensor_ncols(dy);
    EFF__CHECK(ctx, W != NULL, EFF_ERR_INVALID_ARG, "%s: argument 'W' is NULL", fn);
    EFF__TRY(eff_tensor_validate(ctx, W, "W"));
    EFF__CHECK(ctx, W->ndim == 2 && W->ne[0] == N, EFF_ERR_SHAPE, "%s: 'W' must be [%lld, in]", fn, (long long)N);
    K = W->ne[1];
    EFF__CHECK(ctx, !dx || eff__linear_w_ok(W, eff_ctx_dtype(ctx, W->dtype)), EFF_ERR_SHAPE,
               "%s: 'W' needs contiguous rows (or, for f32, to be a transposed view of a contiguous [in, out] matrix)", fn);
    if (dx) {
        EFF__TRY(eff__check_f32(ctx, fn, dx, "dx"));
        EFF__CHECK(ctx, eff_tensor_nrows(dx) == M && eff_tensor_ncols(dx) == K, EFF_ERR_SHAPE, "%s: 'dx' must have %lld rows of %lld",
                   fn, (long long)M, (long long)K);
        EFF__CHECK(ctx, eff__as_matrix(dx, &lddx), EFF_ERR_SHAPE, "%s: 'dx' rows are not uniformly strided", fn);
        EFF__CHECK(ctx, M == 0 || dx->data != dy->data, EFF_ERR_INVALID_ARG, "%s: 'dx' may not alias 'dy'", fn);
    }
    if (dW) {
        EFF__TRY(eff__check_f32(ctx, fn, dW, "dW"));
        EFF__CHECK(ctx, dW->ndim == 2 && dW->ne[0] == N && dW->ne[1] == K && eff_tensor_is_contiguous(dW), EFF_ERR_SHAPE,
                   "%s: 'dW' must be a contiguous f32 [%lld, %lld]", fn, (long long)N, (long long)K);
        EFF__TRY(eff__check_f32(ctx, fn, x, "x"));
        EFF__CHECK(ctx, eff_tensor_nrows(x) == M && eff_tensor_ncols(x) == K, EFF_ERR_SHAPE, "%s: 'x' must have %lld rows of %lld",
                   fn, (long long)M, (long long)K);
    }
    if (db) EFF__TRY(eff__check_vec(ctx, fn, db, "db", N));
    if (M == 0) return EFF_OK;
    dyc = *dy;
    if (!eff__as_matrix(dy, &lddy)) { EFF__TRY(eff_tensor_contiguous(ctx, &dyc, dy)); own_dy = 1; lddy = N; }
    if (dx && K > 0) {
        const eff_dtype_traits *tr = eff_ctx_dtype(ctx, W->dtype);
        if (W->dtype == EFF_F32 && (W->nb[1] == 4 || K == 1) && W->nb[0] % 4 == 0 && (W->nb[0] / 4 >= K || N == 1)) {
            st = eff_sgemm(ctx, 0, 0, M, K, N, 1.0f, (const float *)dyc.data, lddy, (const float *)W->data,
                           W->nb[0] / 4 >= K ? W->nb[0] / 4 : K, 0.0f, (float *)dx->data, lddx);
        } else if (W->dtype == EFF_F32 && (W->nb[0] == 4 || N == 1) && W->nb[1] % 4 == 0 && W->nb[1] / 4 >= N) {
            /* W is a transposed view of a [in, out] matrix S: dx = dy S^T */
            st = eff_sgemm(ctx, 0, 1, M, K, N, 1.0f, (const float *)dyc.data, lddy, (const float *)W->data, W->nb[1] / 4,
                           0.0f, (float *)dx->data, lddx);
        } else if (tr->to_float && (W->nb[1] == (int64_t)tr->type_size || K <= 1)) {
            /* dx = sum over panels of W rows: dy[:, panel] * W[panel, :] */
            int64_t nj = eff__panel_rows(K, N), j0;
            float *panel = nj > 0 ? (float *)eff_ctx_alloc(ctx, (size_t)(nj * K) * sizeof(float)) : NULL;
            if (nj > 0 && !panel) st = ctx->last_status;
            if (N == 0) st = eff_sgemm(ctx, 0, 0, M, K, 0, 1.0f, NULL, 1, NULL, K, 0.0f, (float *)dx->data, lddx);
            for (j0 = 0; st == EFF_OK && j0 < N; j0 += nj) {
                int64_t n = N - j0 < nj ? N - j0 : nj;
                eff__dequant_rows(ctx->n_threads, tr, W, j0, n, K, panel);
                st = eff_sgemm(ctx, 0, 0, M, K, n, 1.0f, (const float *)dyc.data + j0, lddy, panel, K, j0 ? 1.0f : 0.0f,
                               (float *)dx->data, lddx);
            }
            eff_ctx_free(ctx, panel);
        } else {
            st = eff_ctx_error(ctx, EFF_ERR_DTYPE, "%s: cannot read W dtype %s (no to_float)", fn, tr->name);
        }
    }
    if (st == EFF_OK && dW && K > 0) {
        eff_tensor xc = *x;
        int own_x = 0;
        if (!eff__as_matrix(x, &ldx)) { st = eff_tensor_contiguous(ctx, &xc, x); own_x = 1; ldx = K; }
        if (st == EFF_OK)
            st = eff_sgemm(ctx, 1, 0, N, K, M, 1.0f, (const float *)dyc.data, lddy, (const float *)xc.data, ldx, 1.0f,
                           (float *)dW->data, K);
        if (own_x) eff_tensor_free(ctx, &xc);
    }
    if (st == EFF_OK && db) {
        int64_t i, j;
        float *g = (float *)db->data;
        for (i = 0; i < M; i++) {
            const float *r = (const float *)dyc.data + i * lddy;
            for (j = 0; j < N; j++) g[j] += r[j];
        }
    }
    if (own_dy) eff_tensor_free(ctx, &dyc);
    return st;
}

/* Matrix layout of the last two dims: row-major (trans 0) or a transposed view (trans 1). */
static int eff__mat_layout(const eff_tensor *t, int *trans, int64_t *ld) {
    int d = t->ndim;
    int64_t r = t->ne[d - 2], c = t->ne[d - 1], nr = t->nb[d - 2], nc = t->nb[d - 1];
    if ((nc == 4 || c <= 1) && (r <= 1 || (nr % 4 == 0 && nr / 4 >= c))) {
        *trans = 0; *ld = r <= 1 ? (c > 1 ? c : 1) : nr / 4; return 1;
    }
    if ((nr == 4 || r <= 1) && (c <= 1 || (nc % 4 == 0 && nc / 4 >= r))) {
        *trans = 1; *ld = c <= 1 ? (r > 1 ? r : 1) : nc / 4; return 1;
    }
    return 0;
}
static void eff__batch2(const eff_tensor *t, int64_t ne[2], int64_t nb[2]) {
    int i, nbd = t->ndim - 2;
    ne[0] = ne[1] = 1; nb[0] = nb[1] = 0;
    for (i = 0; i < nbd; i++) { ne[2 - nbd + i] = t->ne[i]; nb[2 - nbd + i] = t->ne[i] == 1 ? 0 : t->nb[i]; }
}

static eff_tensor eff__swap_last2(const eff_tensor *t) {
    eff_tensor r = *t;
    int d = t->ndim;
    r.ne[d - 2] = t->ne[d - 1]; r.ne[d - 1] = t->ne[d - 2];
    r.nb[d - 2] = t->nb[d - 1]; r.nb[d - 1] = t->nb[d - 2];
    return r;
}

/* C = A @ B over broadcast batch dims. When C is smaller than the broadcast batch
   (a gradient of a broadcast operand) the products are summed into C. */
static eff_status eff__bmm(eff_ctx *ctx, const char *fn, eff_tensor *C, const eff_tensor *A, const eff_tensor *B) {
    int64_t Ae[2], Ab[2], Be[2], Bb[2], Ce[2], Cb[2], full[2], M, N, K, lda, ldb, ldc, nbatch, bi;
    int ta, tb, tc, d, reduce = 0, nt;
    eff_tensor Ac = *A, Bc = *B;
    int ownA = 0, ownB = 0;
    float *ws = NULL;
    char d1[96], d2[96], d3[96];
    EFF__CHECK(ctx, A->ndim >= 2 && B->ndim >= 2 && C->ndim >= 2, EFF_ERR_SHAPE, "%s: operands need at least 2 dims", fn);
    M = A->ne[A->ndim - 2]; K = A->ne[A->ndim - 1]; N = B->ne[B->ndim - 1];
    EFF__CHECK(ctx, B->ne[B->ndim - 2] == K && C->ne[C->ndim - 2] == M && C->ne[C->ndim - 1] == N, EFF_ERR_SHAPE,
               "%s: %s @ %s -> %s do not agree", fn, eff_tensor_describe(A, d1, sizeof d1), eff_tensor_describe(B, d2, sizeof d2),
               eff_tensor_describe(C, d3, sizeof d3));
    eff__batch2(A, Ae, Ab); eff__batch2(B, Be, Bb); eff__batch2(C, Ce, Cb);
    for (d = 0; d < 2; d++) {
        full[d] = Ae[d] > Be[d] ? Ae[d] : Be[d];
        if (Ce[d] > full[d]) full[d] = Ce[d];
        EFF__CHECK(ctx, (Ae[d] == 1 || Ae[d] == full[d]) && (Be[d] == 1 || Be[d] == full[d]) && (Ce[d] == 1 || Ce[d] == full[d]),
                   EFF_ERR_SHAPE, "%s: batch dims of %s, %s and %s do not broadcast", fn, eff_tensor_describe(A, d1, sizeof d1),
                   eff_tensor_describe(B, d2, sizeof d2), eff_tensor_describe(C, d3, sizeof d3));
        if (Ce[d] < full[d]) reduce = 1;
    }
    EFF__CHECK(ctx, eff__mat_layout(C, &tc, &ldc), EFF_ERR_SHAPE, "%s: output %s needs row-major or transposed matrices", fn,
               eff_tensor_describe(C, d1, sizeof d1));
    if (tc) {   /* C is a transposed view (e.g. the gradient of a transposed operand): C^T = B^T A^T */
        eff_tensor Ct = eff__swap_last2(C), At = eff__swap_last2(B), Bt = eff__swap_last2(A);
        return eff__bmm(ctx, fn, &Ct, &At, &Bt);
    }
    if (!eff__mat_layout(A, &ta, &lda)) { EFF__TRY(eff_tensor_contiguous(ctx, &Ac, A)); ownA = 1; eff__batch2(&Ac, Ae, Ab); eff__mat_layout(&Ac, &ta, &lda); }
    if (!eff__mat_layout(B, &tb, &ldb)) {
        eff_status s = eff_tensor_contiguous(ctx, &Bc, B);
        if (s) { if (ownA) eff_tensor_free(ctx, &Ac); return s; }
        ownB = 1; eff__batch2(&Bc, Be, Bb); eff__mat_layout(&Bc, &tb, &ldb);
    }
    nbatch = full[0] * full[1];
    nt = ctx->n_threads;
    if (reduce) {   /* zero C's matrices, then accumulate every product */
        int64_t c0, c1, i;
        for (c0 = 0; c0 < Ce[0]; c0++)
            for (c1 = 0; c1 < Ce[1]; c1++)
                for (i = 0; i < M; i++) memset((char *)C->data + c0 * Cb[0] + c1 * Cb[1] + i * ldc * 4, 0, (size_t)N * 4);
    }
    if (!reduce && nt > 1 && nbatch >= nt) {
        /* many independent products: one per thread, each single-threaded */
        int64_t per = eff__sgemm_ws_floats(M, N, K, 1) + 16;
        ws = (float *)eff_ctx_alloc(ctx, (size_t)(per * nt) * sizeof(float));
        if (ws) {
            EFF__OMP(parallel for num_threads(nt) schedule(dynamic, 1))
            for (bi = 0; bi < nbatch; bi++) {
                int64_t b0 = bi / full[1], b1 = bi % full[1];
                eff__sgemm_core(1, ta, tb, M, N, K, 1.0f,
                                (const float *)((const char *)Ac.data + b0 * Ab[0] + b1 * Ab[1]), lda,
                                (const float *)((const char *)Bc.data + b0 * Bb[0] + b1 * Bb[1]), ldb, 0.0f,
                                (float *)((char *)C->data + b0 * Cb[0] + b1 * Cb[1]), ldc, ws + (int64_t)eff__tid() * per);
            }
        }
    } else {
        int64_t nws;
        nt = eff__sgemm_threads(nt, M, N, K);
        nws = eff__sgemm_ws_floats(M, N, K, nt);
        ws = (float *)eff_ctx_alloc(ctx, (size_t)(nws + 16) * sizeof(float));
        if (ws) {
            for (bi = 0; bi < nbatch; bi++) {
                int64_t b0 = bi / full[1], b1 = bi % full[1];
                eff__sgemm_core(nt, ta, tb, M, N, K, 1.0f,
                                (const float *)((const char *)Ac.data + b0 * Ab[0] + b1 * Ab[1]), lda,
                                (const float *)((const char *)Bc.data + b0 * Bb[0] + b1 * Bb[1]), ldb, reduce ? 1.0f : 0.0f,
                                (float *)((char *)C->data + b0 * Cb[0] + b1 * Cb[1]), ldc, ws);
            }
        }
    }
    if (ownA) eff_tensor_free(ctx, &Ac);
    if (ownB) eff_tensor_free(ctx, &Bc);
    if (!ws) return ctx->last_status;
    eff_ctx_free(ctx, ws);
    return EFF_OK;
}

static eff_status eff__check_f32_any(eff_ctx *ctx, const char *fn, const eff_tensor *t, const char *arg) {
    EFF__CHECK(ctx, t != NULL, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, arg);
    EFF__TRY(eff_tensor_validate(ctx, t, arg));
    EFF__CHECK(ctx, t->dtype == EFF_F32 && t->device == EFF_DEVICE_CPU, EFF_ERR_DTYPE, "%s: '%s' must be a CPU f32 tensor", fn, arg);
    EFF__CHECK(ctx, t->ndim >= 2 && t->ndim <= 4, EFF_ERR_SHAPE, "%s: '%s' needs 2 to 4 dims, has %d", fn, arg, t->ndim);
    return EFF_OK;
}
EFFDEF eff_status eff_matmul_forward(eff_ctx *ctx, eff_tensor *C, const eff_tensor *A, const eff_tensor *B) {
    const char *fn = "eff_matmul_forward";
    int64_t Ae[2], Ab[2], Be[2], Bb[2], Ce[2], Cb[2];
    int d;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32_any(ctx, fn, C, "C"));
    EFF__TRY(eff__check_f32_any(ctx, fn, A, "A"));
    EFF__TRY(eff__check_f32_any(ctx, fn, B, "B"));
    EFF__CHECK(ctx, C->data != A->data && C->data != B->data, EFF_ERR_INVALID_ARG, "%s: 'C' may not alias an input", fn);
    eff__batch2(A, Ae, Ab); eff__batch2(B, Be, Bb); eff__batch2(C, Ce, Cb);
    for (d = 0; d < 2; d++)
        EFF__CHECK(ctx, Ce[d] == (Ae[d] > Be[d] ? Ae[d] : Be[d]), EFF_ERR_SHAPE,
                   "%s: output batch dim is %lld but A and B broadcast to %lld", fn, (long long)Ce[d],
                   (long long)(Ae[d] > Be[d] ? Ae[d] : Be[d]));
    return eff__bmm(ctx, fn, C, A, B);
}
EFFDEF eff_status eff_matmul_backward(eff_ctx *ctx, eff_tensor *dA, eff_tensor *dB, const eff_tensor *dC,
                                      const eff_tensor *A, const eff_tensor *B) {
    const char *fn = "eff_matmul_backward";
    eff_tensor t;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__TRY(eff__check_f32_any(ctx, fn, dC, "dC"));
    EFF__TRY(eff__check_f32_any(ctx, fn, A, "A"));
    EFF__TRY(eff__check_f32_any(ctx, fn, B, "B"));
    if (dA) {
        EFF__TRY(eff__check_f32_any(ctx, fn, dA, "dA"));
        EFF__TRY(eff__check_same(ctx, fn, dA, "dA", A, "A"));
        t = eff__swap_last2(B);
        EFF__TRY(eff__bmm(ctx, fn, dA, dC, &t));
    }
    if (dB) {
        EFF__TRY(eff__check_f32_any(ctx, fn, dB, "dB"));
        EFF__TRY(eff__check_same(ctx, fn, dB, "dB", B, "B"));
        t = eff__swap_last2(A);
        EFF__TRY(eff__bmm(ctx, fn, dB, &t, dC));
    }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Optimizer step kernels
   --------------------------------------------------------------------------- */
static eff_status eff__opt_check(eff_ctx *ctx, const char *fn, int64_t n, void *param, int pdt, float *master,
                                 const void *grad, int gdt) {
    EFF__CHECK(ctx, n >= 0, EFF_ERR_INVALID_ARG, "%s: n = %lld < 0", fn, (long long)n);
    if (n == 0) return EFF_OK;
    EFF__CHECK(ctx, param && grad, EFF_ERR_INVALID_ARG, "%s: argument '%s' is NULL", fn, param ? "grad" : "param");
    EFF__CHECK(ctx, pdt == EFF_F32 || pdt == EFF_BF16 || pdt == EFF_F16, EFF_ERR_DTYPE, "%s: param dtype %s not f32/bf16/f16", fn,
               eff_dtype_name(pdt) ? eff_dtype_name(pdt) : "?");
    EFF__CHECK(ctx, gdt == EFF_F32 || gdt == EFF_BF16 || gdt == EFF_F16, EFF_ERR_DTYPE, "%s: grad dtype %s not f32/bf16/f16", fn,
               eff_dtype_name(gdt) ? eff_dtype_name(gdt) : "?");
    EFF__CHECK(ctx, pdt != EFF_F32 || !master, EFF_ERR_INVALID_ARG, "%s: 'master' is only for bf16/f16 params", fn);
    return EFF_OK;
}
EFF__INLINE float eff__load_any(const void *p, int dt, int64_t i) {
    if (dt == EFF_F32) return ((const float *)p)[i];
    if (dt == EFF_BF16) return eff_bf16_to_fp32(((const uint16_t *)p)[i]);
    return eff_fp16_to_fp32(((const uint16_t *)p)[i]);
}
EFF__INLINE void eff__store_any(void *p, int dt, int64_t i, float v) {
    if (dt == EFF_F32) ((float *)p)[i] = v;
    else if (dt == EFF_BF16) ((uint16_t *)p)[i] = eff_fp32_to_bf16(v);
    else ((uint16_t *)p)[i] = eff_fp32_to_fp16(v);
}

/* AdamW as torch.optim.AdamW: p -= lr*wd*p; m, v moments; p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps). */
EFFDEF eff_status eff_adamw_step(eff_ctx *ctx, const eff_adamw_opts *opts, int64_t n, void *param, int pdt, float *master,
                                 const void *grad, int gdt, float *m, float *v) {
    const char *fn = "eff_adamw_step";
    eff_adamw_opts o;
    double bc1, bc2;
    float step_size, rbc2, decay;
    int64_t i;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, opts);
    EFF__TRY(eff__opt_check(ctx, fn, n, param, pdt, master, grad, gdt));
    EFF__CHECK(ctx, n == 0 || (m && v), EFF_ERR_INVALID_ARG, "%s: moment buffers 'm' and 'v' are required", fn);
    o = *opts;
    if (o.lr == 0.0f) o.lr = 1e-3f;
    if (o.beta1 == 0.0f) o.beta1 = 0.9f;
    if (o.beta2 == 0.0f) o.beta2 = 0.999f;
    if (o.eps == 0.0f) o.eps = 1e-8f;
    if (o.grad_scale == 0.0f) o.grad_scale = 1.0f;
    EFF__CHECK(ctx, o.step >= 1, EFF_ERR_INVALID_ARG, "%s: step %lld must be >= 1", fn, (long long)o.step);
    EFF__CHECK(ctx, o.beta1 > 0.0f && o.beta1 < 1.0f && o.beta2 > 0.0f && o.beta2 < 1.0f, EFF_ERR_INVALID_ARG,
               "%s: betas (%g, %g) must be in (0, 1)", fn, (double)o.beta1, (double)o.beta2);
    bc1 = 1.0 - pow((double)o.beta1, (double)o.step);
    bc2 = 1.0 - pow((double)o.beta2, (double)o.step);
    step_size = (float)(o.lr / bc1);
    rbc2 = (float)(1.0 / sqrt(bc2));
    decay = 1.0f - o.lr * o.weight_decay;
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 65536))
    for (i = 0; i < n; i++) {
        float g = eff__load_any(grad, gdt, i) * o.grad_scale;
        float p = master ? master[i] : eff__load_any(param, pdt, i);
        float mi = o.beta1 * m[i] + (1.0f - o.beta1) * g;
        float vi = o.beta2 * v[i] + (1.0f - o.beta2) * g * g;
        m[i] = mi; v[i] = vi;
        p = p * decay - step_size * mi / (sqrtf(vi) * rbc2 + o.eps);
        if (master) master[i] = p;
        eff__store_any(param, pdt, i, p);
    }
    return EFF_OK;
}

/* SGD as torch.optim.SGD: g += wd*p; buf = mu*buf + (1-dampening)*g (buf = g at step 1);
   g = nesterov ? g + mu*buf : buf; p -= lr*g. */
EFFDEF eff_status eff_sgd_step(eff_ctx *ctx, const eff_sgd_opts *opts, int64_t n, void *param, int pdt, float *master,
                               const void *grad, int gdt, float *buf) {
    const char *fn = "eff_sgd_step";
    eff_sgd_opts o;
    int64_t i;
    int nt;
    EFF__CHECK_PTR(ctx, ctx);
    EFF__CHECK_PTR(ctx, opts);
    EFF__TRY(eff__opt_check(ctx, fn, n, param, pdt, master, grad, gdt));
    o = *opts;
    if (o.lr == 0.0f) o.lr = 1e-2f;
    if (o.grad_scale == 0.0f) o.grad_scale = 1.0f;
    EFF__CHECK(ctx, o.momentum == 0.0f || n == 0 || (buf && o.step >= 1), EFF_ERR_INVALID_ARG,
               "%s: momentum needs 'momentum_buf' and step >= 1", fn);
    EFF__CHECK(ctx, !o.nesterov || (o.momentum > 0.0f && o.dampening == 0.0f), EFF_ERR_INVALID_ARG,
               "%s: nesterov needs momentum > 0 and dampening 0", fn);
    nt = ctx->n_threads;
    (void)nt;
    EFF__OMP(parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 65536))
    for (i = 0; i < n; i++) {
        float p = master ? master[i] : eff__load_any(param, pdt, i);
        float g = eff__load_any(grad, gdt, i) * o.grad_scale + o.weight_decay * p;
        if (o.momentum != 0.0f) {
            float b = o.step == 1 ? g : o.momentum * buf[i] + (1.0f - o.dampening) * g;
            buf[i] = b;
            g = o.nesterov ? g + o.momentum * b : b;
        }
        p -= o.lr * g;
        if (master) master[i] = p;
        eff__store_any(param, pdt, i, p);
    }
    return EFF_OK;
}

/* ---------------------------------------------------------------------------
   Files
   --------------------------------------------------------------------------- */
EFFDEF eff_status eff_file_map_open(eff_ctx *ctx, const char *path, eff_file_map *m) {
    FILE *f;
    long long size;
    EFF__CHECK_PTR(ctx, m);
    memset(m, 0, sizeof *m);
    EFF__CHECK_PTR(ctx, path);
#ifdef EFF__POSIX
    {
        int fd = open(path, O_RDONLY);
        struct stat sb;
        if (fd < 0) return eff_ctx_error(ctx, EFF_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            close(fd);
            return eff_ctx_error(ctx, EFF_ERR_IO, "'%s' is not a regular file", path);
        }
        if (sb.st_size > 0) {
            void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p != MAP_FAILED) {
                close(fd);
                m->data = (const unsigned char *)p; m->size = (int64_t)sb.st_size; m->mapped = 1;
                return EFF_OK;
            }
        }
        close(fd);
    }
#endif
    f = fopen(path, "rb");   /* fallback: read the whole file */
    if (!f) return eff_ctx_error(ctx, EFF_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (size = (long long)ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return eff_ctx_error(ctx, EFF_ERR_IO, "cannot size '%s'", path);
    }
    m->impl = eff_ctx_alloc(ctx, (size_t)size + 1);
    if (!m->impl) { fclose(f); return ctx->last_status; }
    if (size > 0 && fread(m->impl, 1, (size_t)size, f) != (size_t)size) {
        fclose(f); eff_ctx_free(ctx, m->impl); m->impl = NULL;
        return eff_ctx_error(ctx, EFF_ERR_IO, "short read of '%s'", path);
    }
    fclose(f);
    m->data = (const unsigned char *)m->impl; m->size = size; m->mapped = 0;
    return EFF_OK;
}
EFFDEF void eff_file_map_close(eff_ctx *ctx, eff_file_map *m) {
    if (!m) return;
#ifdef EFF__POSIX
    if (m->mapped && m->data) munmap((void *)m->data, (size_t)m->size);
#endif
    if (!m->mapped) eff_ctx_free(ctx, m->impl);
    memset(m, 0, sizeof *m);
}

static char *eff__strdup(eff_ctx *ctx, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)eff_ctx_alloc(ctx, n);
    if (d) memcpy(d, s, n);
    return d;
}

EFFDEF eff_status eff_file_writer_open(eff_ctx *ctx, eff_file_writer *w, const char *path) {
    size_t n;
    EFF__CHECK_PTR(ctx, w);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    EFF__CHECK_PTR(ctx, path);
    n = strlen(path) + 64;
    w->path = eff__strdup(ctx, path);
    w->tmp_path = (char *)eff_ctx_alloc(ctx, n);
    if (!w->path || !w->tmp_path) { eff_file_writer_abort(ctx, w); return EFF_ERR_OOM; }
#ifdef EFF__POSIX
    snprintf(w->tmp_path, n, "%s.tmp.%ld.%lx", path, (long)getpid(), (unsigned long)((uintptr_t)w & 0xffffff));
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (w->fd < 0) {
#else
    snprintf(w->tmp_path, n, "%s.tmp.%lx", path, (unsigned long)((uintptr_t)w & 0xffffff));
    w->fp = fopen(w->tmp_path, "wb");
    if (!w->fp) {
#endif
        eff_status s = eff_ctx_error(ctx, EFF_ERR_IO, "cannot create '%s': %s", w->tmp_path, strerror(errno));
        eff_file_writer_abort(ctx, w);
        return s;
    }
    return EFF_OK;
}
EFFDEF eff_status eff_file_writer_write(eff_ctx *ctx, eff_file_writer *w, const void *data, size_t n) {
    const char *p = (const char *)data;
    size_t left = n;
    EFF__CHECK_PTR(ctx, w);
    EFF__CHECK(ctx, (w->fd >= 0 || w->fp) && !w->failed, EFF_ERR_IO, "eff_file_writer_write: writer is not open");
    while (left > 0) {
#ifdef EFF__POSIX
        ssize_t k = write(w->fd, p, left > ((size_t)1 << 30) ? ((size_t)1 << 30) : left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
#else
        size_t k = fwrite(p, 1, left, (FILE *)w->fp);
        if (k == 0) {
#endif
            w->failed = 1;
            return eff_ctx_error(ctx, EFF_ERR_IO, "write to '%s' failed: %s", w->tmp_path, strerror(errno));
        }
        p += k; left -= (size_t)k;
    }
    w->written += (int64_t)n;
    return EFF_OK;
}
EFFDEF eff_status eff_file_writer_commit(eff_ctx *ctx, eff_file_writer *w) {
    eff_status s = EFF_OK;
    EFF__CHECK_PTR(ctx, w);
    if ((w->fd < 0 && !w->fp) || w->failed) {
        eff_file_writer_abort(ctx, w);
        return eff_ctx_error(ctx, EFF_ERR_IO, "eff_file_writer_commit: writer is not open or a write failed");
    }
#ifdef EFF__POSIX
    if (fsync(w->fd) != 0) s = eff_ctx_error(ctx, EFF_ERR_IO, "fsync of '%s' failed: %s", w->tmp_path, strerror(errno));
    if (close(w->fd) != 0 && s == EFF_OK) s = eff_ctx_error(ctx, EFF_ERR_IO, "close of '%s' failed", w->tmp_path);
    w->fd = -1;
#else
    if (fclose((FILE *)w->fp) != 0) s = eff_ctx_error(ctx, EFF_ERR_IO, "close of '%s' failed", w->tmp_path);
    w->fp = NULL;
    if (s == EFF_OK) remove(w->path);   /* rename does not replace on every platform */
#endif
    if (s == EFF_OK && rename(w->tmp_path, w->path) != 0)
        s = eff_ctx_error(ctx, EFF_ERR_IO, "rename '%s' -> '%s' failed: %s", w->tmp_path, w->path, strerror(errno));
    if (s != EFF_OK) remove(w->tmp_path);
    eff_ctx_free(ctx, w->path);
    eff_ctx_free(ctx, w->tmp_path);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    return s;
}
EFFDEF void eff_file_writer_abort(eff_ctx *ctx, eff_file_writer *w) {
    if (!w) return;
#ifdef EFF__POSIX
    if (w->fd >= 0) close(w->fd);
#endif
    if (w->fp) fclose((FILE *)w->fp);
    if ((w->fd >= 0 || w->fp) && w->tmp_path) remove(w->tmp_path);
    eff_ctx_free(ctx, w->path);
    eff_ctx_free(ctx, w->tmp_path);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}

/* ---------------------------------------------------------------------------
   JSON reader (RFC 8259, strict: no comments, no trailing commas, no NaN)
   --------------------------------------------------------------------------- */
typedef struct {
    eff_ctx *ctx;
    const char *p, *end, *begin;
    eff_json *doc;
    int64_t cap;
    char *sp;            /* next free byte of doc->strings */
    int depth;
} eff__jp;

static eff_status eff__jerr(eff__jp *j, const char *what) {
    return eff_ctx_error(j->ctx, EFF_ERR_FORMAT, "JSON: %s at byte %lld", what, (long long)(j->p - j->begin));
}
static void eff__jws(eff__jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
static int64_t eff__jnode(eff__jp *j, int type) {
    eff_json_node *n;
    if (j->doc->n_nodes == j->cap) {
        int64_t nc = j->cap ? j->cap * 2 : 64;
        eff_json_node *nn = (eff_json_node *)eff_ctx_alloc(j->ctx, (size_t)nc * sizeof(eff_json_node));
        if (!nn) return -1;
        if (j->doc->nodes) memcpy(nn, j->doc->nodes, (size_t)j->doc->n_nodes * sizeof(eff_json_node));
        eff_ctx_free(j->ctx, j->doc->nodes);
        j->doc->nodes = nn; j->cap = nc;
    }
    n = &j->doc->nodes[j->doc->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = type; n->first = n->next = -1;
    return j->doc->n_nodes++;
}
static int eff__hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}
static int eff__j4hex(eff__jp *j, uint32_t *cp) {
    int i, v = 0;
    if (j->end - j->p < 4) return 0;
    for (i = 0; i < 4; i++) { int h = eff__hexval(j->p[i]); if (h < 0) return 0; v = v * 16 + h; }
    j->p += 4; *cp = (uint32_t)v;
    return 1;
}
/* Parses a string at j->p (after the quote) into the string store; returns its start. */
static eff_status eff__jstring(eff__jp *j, const char **out, int64_t *len) {
    char *start = j->sp;
    while (1) {
        unsigned char c;
        if (j->p >= j->end) return eff__jerr(j, "unterminated string");
        c = (unsigned char)*j->p++;
        if (c == '"') break;
        if (c < 0x20) return eff__jerr(j, "control character in string");
        if (c != '\\') { *j->sp++ = (char)c; continue; }
        if (j->p >= j->end) return eff__jerr(j, "unterminated escape");
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"': *j->sp++ = '"'; break;
        case '\\': *j->sp++ = '\\'; break;
        case '/': *j->sp++ = '/'; break;
        case 'b': *j->sp++ = '\b'; break;
        case 'f': *j->sp++ = '\f'; break;
        case 'n': *j->sp++ = '\n'; break;
        case 'r': *j->sp++ = '\r'; break;
        case 't': *j->sp++ = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (!eff__j4hex(j, &cp)) return eff__jerr(j, "bad \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return eff__jerr(j, "lone high surrogate");
                j->p += 2;
                if (!eff__j4hex(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return eff__jerr(j, "bad low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return eff__jerr(j, "lone low surrogate");
            }
            if (cp < 0x80) *j->sp++ = (char)cp;
            else if (cp < 0x800) { *j->sp++ = (char)(0xC0 | (cp >> 6)); *j->sp++ = (char)(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) {
                *j->sp++ = (char)(0xE0 | (cp >> 12)); *j->sp++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *j->sp++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *j->sp++ = (char)(0xF0 | (cp >> 18)); *j->sp++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *j->sp++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *j->sp++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return eff__jerr(j, "unknown escape");
        }
    }
    *j->sp++ = 0;
    *out = start; *len = (int64_t)(j->sp - start - 1);
    return EFF_OK;
}
static eff_status eff__jnumber(eff__jp *j, eff_json_node *n) {
    const char *s = j->p;
    char buf[512];
    int is_int = 1;
    size_t len;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end) return eff__jerr(j, "bad number");
    if (*j->p == '0') j->p++;
    else if (*j->p >= '1' && *j->p <= '9') { while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++; }
    else return eff__jerr(j, "bad number");
    if (j->p < j->end && *j->p == '.') {
        is_int = 0; j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return eff__jerr(j, "bad fraction");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        is_int = 0; j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return eff__jerr(j, "bad exponent");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    len = (size_t)(j->p - s);
    if (len >= sizeof buf) return eff__jerr(j, "number too long");
    memcpy(buf, s, len); buf[len] = 0;
    n->num = strtod(buf, NULL);
    if (is_int) {   /* exact int64 when it fits */
        const char *q = buf;
        int neg = *q == '-';
        uint64_t acc = 0;
        int ovf = 0;
        if (neg) q++;
        for (; *q; q++) {
            uint64_t d = (uint64_t)(*q - '0');
            if (acc > (UINT64_MAX - d) / 10) { ovf = 1; break; }
            acc = acc * 10 + d;
        }
        if (!ovf && (neg ? acc <= (uint64_t)INT64_MAX + 1 : acc <= (uint64_t)INT64_MAX)) {
            n->is_int = 1;
            n->inum = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
        }
    }
    return EFF_OK;
}
static int eff__jlit(eff__jp *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return 0;
    j->p += n;
    return 1;
}
static eff_status eff__jvalue(eff__jp *j, int64_t *out);
static eff_status eff__jcontainer(eff__jp *j, int64_t idx, int is_obj) {
    int64_t prev = -1, count = 0;
    char close = is_obj ? '}' : ']';
    if (++j->depth > 128) return eff__jerr(j, "nesting deeper than 128");
    eff__jws(j);
    if (j->p < j->end && *j->p == close) { j->p++; j->depth--; return EFF_OK; }
    while (1) {
        int64_t child;
        const char *key = NULL;
        int64_t key_len = 0;
        eff__jws(j);
        if (is_obj) {
            if (j->p >= j->end || *j->p != '"') return eff__jerr(j, "expected a member name");
            j->p++;
            EFF__TRY(eff__jstring(j, &key, &key_len));
            eff__jws(j);
            if (j->p >= j->end || *j->p != ':') return eff__jerr(j, "expected ':'");
            j->p++;
        }
        EFF__TRY(eff__jvalue(j, &child));
        j->doc->nodes[child].key = key;
        j->doc->nodes[child].key_len = key_len;
        if (prev < 0) j->doc->nodes[idx].first = child; else j->doc->nodes[prev].next = child;
        prev = child; count++;
        eff__jws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == close) { j->p++; break; }
        return eff__jerr(j, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    j->doc->nodes[idx].len = count;
    j->depth--;
    return EFF_OK;
}
static eff_status eff__jvalue(eff__jp *j, int64_t *out) {
    int64_t idx;
    eff__jws(j);
    if (j->p >= j->end) return eff__jerr(j, "unexpected end of input");
    switch (*j->p) {
    case '{': case '[': {
        int is_obj = *j->p == '{';
        idx = eff__jnode(j, is_obj ? EFF_JSON_OBJECT : EFF_JSON_ARRAY);
        if (idx < 0) return EFF_ERR_OOM;
        j->p++;
        EFF__TRY(eff__jcontainer(j, idx, is_obj));
        break;
    }
    case '"': {
        const char *s;
        int64_t len;
        idx = eff__jnode(j, EFF_JSON_STRING);
        if (idx < 0) return EFF_ERR_OOM;
        j->p++;
        EFF__TRY(eff__jstring(j, &s, &len));
        j->doc->nodes[idx].str = s; j->doc->nodes[idx].len = len;
        break;
    }
    case 't': if (!eff__jlit(j, "true")) return eff__jerr(j, "bad literal"); idx = eff__jnode(j, EFF_JSON_TRUE); break;
    case 'f': if (!eff__jlit(j, "false")) return eff__jerr(j, "bad literal"); idx = eff__jnode(j, EFF_JSON_FALSE); break;
    case 'n': if (!eff__jlit(j, "null")) return eff__jerr(j, "bad literal"); idx = eff__jnode(j, EFF_JSON_NULL); break;
    default:
        idx = eff__jnode(j, EFF_JSON_NUMBER);
        if (idx < 0) return EFF_ERR_OOM;
        EFF__TRY(eff__jnumber(j, &j->doc->nodes[idx]));
        break;
    }
    if (idx < 0) return EFF_ERR_OOM;
    *out = idx;
    return EFF_OK;
}
static int eff__jkeycmp(const void *a, const void *b) {
    const eff_json_node *x = *(const eff_json_node *const *)a, *y = *(const eff_json_node *const *)b;
    int64_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, (size_t)n);
    return c ? c : (x->key_len < y->key_len ? -1 : x->key_len > y->key_len);
}
EFFDEF eff_status eff_json_parse(eff_ctx *ctx, eff_json *doc, const char *text, int64_t len, int reject_duplicates) {
    eff__jp j;
    int64_t root, i;
    eff_status s;
    EFF__CHECK_PTR(ctx, doc);
    memset(doc, 0, sizeof *doc);
    EFF__CHECK_PTR(ctx, text);
    EFF__CHECK(ctx, len >= 0 && (uint64_t)len < (uint64_t)SIZE_MAX, EFF_ERR_INVALID_ARG, "eff_json_parse: bad length");
    memset(&j, 0, sizeof j);
    j.ctx = ctx; j.p = j.begin = text; j.end = text + len; j.doc = doc;
    doc->strings = (char *)eff_ctx_alloc(ctx, (size_t)len + 1);   /* unescaped strings never grow */
    if (!doc->strings) return ctx->last_status;
    j.sp = doc->strings;
    s = eff__jvalue(&j, &root);
    if (s == EFF_OK) { eff__jws(&j); if (j.p != j.end) s = eff__jerr(&j, "trailing characters"); }
    if (s == EFF_OK && reject_duplicates) {
        for (i = 0; i < doc->n_nodes && s == EFF_OK; i++) {
            eff_json_node *n = &doc->nodes[i], **kids;
            int64_t c, k;
            if (n->type != EFF_JSON_OBJECT || n->len < 2) continue;
            kids = (eff_json_node **)eff_ctx_alloc(ctx, (size_t)n->len * sizeof(*kids));
            if (!kids) { s = ctx->last_status; break; }
            for (c = n->first, k = 0; c >= 0; c = doc->nodes[c].next) kids[k++] = &doc->nodes[c];
            qsort(kids, (size_t)n->len, sizeof(*kids), eff__jkeycmp);
            for (k = 1; k < n->len; k++)
                if (eff__jkeycmp(&kids[k - 1], &kids[k]) == 0) {
                    s = eff_ctx_error(ctx, EFF_ERR_FORMAT, "JSON: duplicate key \"%.*s\"", (int)(kids[k]->key_len > 80 ? 80 : kids[k]->key_len), kids[k]->key);
                    break;
                }
            eff_ctx_free(ctx, kids);
        }
    }
    if (s != EFF_OK) { eff_json_free(ctx, doc); return s; }
    (void)root;
    return EFF_OK;
}
EFFDEF void eff_json_free(eff_ctx *ctx, eff_json *doc) {
    if (!doc) return;
    eff_ctx_free(ctx, doc->nodes);
    eff_ctx_free(ctx, doc->strings);
    memset(doc, 0, sizeof *doc);
}
EFFDEF const eff_json_node *eff_json_root(const eff_json *doc) { return doc && doc->n_nodes ? &doc->nodes[0] : NULL; }
EFFDEF const eff_json_node *eff_json_child(const eff_json *doc, const eff_json_node *n) {
    return n && n->first >= 0 ? &doc->nodes[n->first] : NULL;
}
EFFDEF const eff_json_node *eff_json_next(const eff_json *doc, const eff_json_node *n) {
    return n && n->next >= 0 ? &doc->nodes[n->next] : NULL;
}
EFFDEF const eff_json_node *eff_json_get(const eff_json *doc, const eff_json_node *obj, const char *key) {
    const eff_json_node *c;
    size_t kl;
    if (!doc || !obj || !key || obj->type != EFF_JSON_OBJECT) return NULL;
    kl = strlen(key);
    for (c = eff_json_child(doc, obj); c; c = eff_json_next(doc, c))
        if ((size_t)c->key_len == kl && memcmp(c->key, key, kl) == 0) return c;
    return NULL;
}
EFFDEF const eff_json_node *eff_json_at(const eff_json *doc, const eff_json_node *arr, int64_t i) {
    const eff_json_node *c;
    if (!doc || !arr || arr->type != EFF_JSON_ARRAY || i < 0 || i >= arr->len) return NULL;
    for (c = eff_json_child(doc, arr); c && i > 0; c = eff_json_next(doc, c)) i--;
    return c;
}
EFFDEF double eff_json_get_number(const eff_json *doc, const eff_json_node *obj, const char *key, double def) {
    const eff_json_node *n = eff_json_get(doc, obj, key);
    return n && n->type == EFF_JSON_NUMBER ? n->num : def;
}
EFFDEF int64_t eff_json_get_int(const eff_json *doc, const eff_json_node *obj, const char *key, int64_t def) {
    const eff_json_node *n = eff_json_get(doc, obj, key);
    return n && n->type == EFF_JSON_NUMBER && n->is_int ? n->inum : def;
}
EFFDEF const char *eff_json_get_string(const eff_json *doc, const eff_json_node *obj, const char *key, const char *def) {
    const eff_json_node *n = eff_json_get(doc, obj, key);
    return n && n->type == EFF_JSON_STRING ? n->str : def;
}
EFFDEF int eff_json_get_bool(const eff_json *doc, const eff_json_node *obj, const char *key, int def) {
    const eff_json_node *n = eff_json_get(doc, obj, key);
    return n && n->type == EFF_JSON_TRUE ? 1 : n && n->type == EFF_JSON_FALSE ? 0 : def;
}

/* ---- JSON writer ---- */
static void eff__jw_put(eff_json_writer *w, const char *s, size_t n) {
    if (w->failed) return;
    if (w->len + n + 1 > w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 256;
        char *nb;
        while (nc < w->len + n + 1) nc *= 2;
        nb = (char *)eff_ctx_alloc(w->ctx, nc);
        if (!nb) { w->failed = 1; return; }
        if (w->buf) memcpy(nb, w->buf, w->len);
        eff_ctx_free(w->ctx, w->buf);
        w->buf = nb; w->cap = nc;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}
static void eff__jw_indent(eff_json_writer *w) {
    int i;
    if (!w->pretty) return;
    eff__jw_put(w, "\n", 1);
    for (i = 0; i < w->depth; i++) eff__jw_put(w, "  ", 2);
}
/* Comma and indentation before a value (or a key). */
static void eff__jw_pre(eff_json_writer *w) {
    if (w->after_key) { w->after_key = 0; return; }
    if (w->depth > 0) {
        if (w->need_comma[w->depth]) eff__jw_put(w, ",", 1);
        eff__jw_indent(w);
    }
    w->need_comma[w->depth] = 1;
}
EFFDEF void eff_jsonw_init(eff_ctx *ctx, eff_json_writer *w, int pretty) {
    memset(w, 0, sizeof *w);
    w->ctx = ctx; w->pretty = pretty;
}
static void eff__jw_open(eff_json_writer *w, const char *c) {
    eff__jw_pre(w);
    eff__jw_put(w, c, 1);
    if (w->depth >= 128) { w->failed = 1; return; }
    w->depth++;
    w->need_comma[w->depth] = 0;
}
static void eff__jw_close(eff_json_writer *w, const char *c) {
    int had = w->depth > 0 && w->need_comma[w->depth];
    if (w->depth <= 0) { w->failed = 1; return; }
    w->depth--;
    if (had) eff__jw_indent(w);
    eff__jw_put(w, c, 1);
}
EFFDEF void eff_jsonw_begin_object(eff_json_writer *w) { eff__jw_open(w, "{"); }
EFFDEF void eff_jsonw_end_object(eff_json_writer *w) { eff__jw_close(w, "}"); }
EFFDEF void eff_jsonw_begin_array(eff_json_writer *w) { eff__jw_open(w, "["); }
EFFDEF void eff_jsonw_end_array(eff_json_writer *w) { eff__jw_close(w, "]"); }
static void eff__jw_str(eff_json_writer *w, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    eff__jw_put(w, "\"", 1);
    for (; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': eff__jw_put(w, "\\\"", 2); break;
        case '\\': eff__jw_put(w, "\\\\", 2); break;
        case '\n': eff__jw_put(w, "\\n", 2); break;
        case '\r': eff__jw_put(w, "\\r", 2); break;
        case '\t': eff__jw_put(w, "\\t", 2); break;
        default:
            if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); eff__jw_put(w, esc, 6); }
            else eff__jw_put(w, (const char *)p, 1);
        }
    }
    eff__jw_put(w, "\"", 1);
}
EFFDEF void eff_jsonw_key(eff_json_writer *w, const char *key) {
    eff__jw_pre(w);
    eff__jw_str(w, key);
    eff__jw_put(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
    w->after_key = 1;
}
EFFDEF void eff_jsonw_string(eff_json_writer *w, const char *s) { eff__jw_pre(w); eff__jw_str(w, s); }
EFFDEF void eff_jsonw_number(eff_json_writer *w, double v) {
    char b[40];
    int prec;
    eff__jw_pre(w);
    if (v != v || v == HUGE_VAL || v == -HUGE_VAL) { eff__jw_put(w, "null", 4); return; }  /* JSON has no NaN/Inf */
    for (prec = 1; prec <= 17; prec++) {   /* fewest digits that read back exactly */
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    {   /* "1e+21" -> "1e21", "1.5e-05" -> "1.5e-5"; integers as plain digits when not longer (768, not 7.68e+02) */
        char *e = strchr(b, 'e'), t[40];
        if (e) {
            char *src = e + 1, *dst = e + 1;
            if (*src == '+') src++;
            else if (*src == '-') *dst++ = *src++;
            while (src[0] == '0' && src[1]) src++;
            memmove(dst, src, strlen(src) + 1);
        }
        if (v == floor(v) && fabs(v) < 1e17) {
            snprintf(t, sizeof t, "%.0f", v);
            if (strlen(t) <= strlen(b)) memcpy(b, t, strlen(t) + 1);
        }
    }
    eff__jw_put(w, b, strlen(b));
}
EFFDEF void eff_jsonw_int(eff_json_writer *w, int64_t v) {
    char b[32];
    eff__jw_pre(w);
    snprintf(b, sizeof b, "%lld", (long long)v);
    eff__jw_put(w, b, strlen(b));
}
EFFDEF void eff_jsonw_bool(eff_json_writer *w, int v) { eff__jw_pre(w); eff__jw_put(w, v ? "true" : "false", v ? 4 : 5); }
EFFDEF void eff_jsonw_null(eff_json_writer *w) { eff__jw_pre(w); eff__jw_put(w, "null", 4); }
EFFDEF const char *eff_jsonw_finish(eff_json_writer *w, size_t *len) {
    if (w->failed || w->depth != 0 || !w->buf) return NULL;
    if (len) *len = w->len;
    return w->buf;
}
EFFDEF void eff_jsonw_free(eff_json_writer *w) {
    if (!w) return;
    eff_ctx_free(w->ctx, w->buf);
    w->buf = NULL; w->len = w->cap = 0;
}

/* ---------------------------------------------------------------------------
   safetensors
   --------------------------------------------------------------------------- */
static const struct { const char *s; int dt; } eff__st_dtypes[] = {
    {"F32", EFF_F32}, {"F16", EFF_F16}, {"BF16", EFF_BF16}, {"I8", EFF_I8}, {"I32", EFF_I32},
    {"F64", EFF_F64}, {"I64", EFF_I64}, {"U8", EFF_U8}, {"I16", EFF_I16}, {"BOOL", EFF_U8},
};
EFFDEF int eff_safetensors_dtype_from_str(const char *s) {
    size_t i;
    if (!s) return -1;
    for (i = 0; i < sizeof eff__st_dtypes / sizeof eff__st_dtypes[0]; i++)
        if (strcmp(eff__st_dtypes[i].s, s) == 0) return eff__st_dtypes[i].dt;
    return -1;
}
EFFDEF const char *eff_safetensors_dtype_str(int dt) {
    size_t i;
    for (i = 0; i < sizeof eff__st_dtypes / sizeof eff__st_dtypes[0]; i++)
        if (eff__st_dtypes[i].dt == dt) return eff__st_dtypes[i].s;
    return NULL;
}

#define EFF__ST_MAX_HEADER ((int64_t)100 * 1000 * 1000)   /* the reference implementation's limit */

static int eff__st_cmp(const void *a, const void *b) {
    const eff_safetensors_entry *x = (const eff_safetensors_entry *)a, *y = (const eff_safetensors_entry *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static eff_status eff__st_parse(eff_ctx *ctx, eff_safetensors *st, const unsigned char *data, int64_t size, const char *what) {
    uint64_t hl = 0;
    int64_t buf_size, n = 0, i, expect;
    const eff_json_node *root, *c;
    const unsigned char *buf;
    int k;
    if (size < 8) return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: %lld bytes is too short for the 8-byte header length", what, (long long)size);
    for (k = 7; k >= 0; k--) hl = (hl << 8) | data[k];
    if (hl < 2 || hl > (uint64_t)EFF__ST_MAX_HEADER)
        return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: header length %llu is not in [2, 100 MB]", what, (unsigned long long)hl);
    if ((int64_t)hl > size - 8)
        return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: header length %llu runs past the end of the file (%lld bytes)", what,
                             (unsigned long long)hl, (long long)size);
    if (data[8] != '{') return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: header does not start with '{'", what);
    st->header_len = (int64_t)hl;
    {
        eff_status js = eff_json_parse(ctx, &st->json, (const char *)data + 8, (int64_t)hl, 1);
        if (js != EFF_OK) {   /* keep the parser's message, add which file it was */
            char msg[sizeof ctx->last_error];
            memcpy(msg, ctx->last_error, sizeof msg);
            return eff_ctx_error(ctx, js, "safetensors %s: header: %s", what, msg);
        }
    }
    root = eff_json_root(&st->json);
    if (!root || root->type != EFF_JSON_OBJECT) return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: header is not a JSON object", what);
    buf = data + 8 + hl;
    buf_size = size - 8 - (int64_t)hl;
    for (c = eff_json_child(&st->json, root); c; c = eff_json_next(&st->json, c)) n++;
    st->entries = (eff_safetensors_entry *)eff_ctx_calloc(ctx, (size_t)(n ? n : 1) * sizeof(eff_safetensors_entry));
    if (!st->entries) return ctx->last_status;
    for (c = eff_json_child(&st->json, root); c; c = eff_json_next(&st->json, c)) {
        const eff_json_node *dt, *shape, *offs, *b, *e, *d;
        eff_safetensors_entry *en;
        int64_t ne[EFF_MAX_DIMS], nbytes, nd;
        int dtype;
        if (strcmp(c->key, "__metadata__") == 0 && (int64_t)strlen(c->key) == c->key_len) {
            const eff_json_node *m;
            if (c->type != EFF_JSON_OBJECT) return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: __metadata__ is not an object", what);
            for (m = eff_json_child(&st->json, c); m; m = eff_json_next(&st->json, m))
                if (m->type != EFF_JSON_STRING)
                    return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: __metadata__[\"%s\"] is not a string", what, m->key);
            st->metadata = c;
            continue;
        }
        if (c->type != EFF_JSON_OBJECT) return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: entry \"%s\" is not an object", what, c->key);
        dt = eff_json_get(&st->json, c, "dtype");
        shape = eff_json_get(&st->json, c, "shape");
        offs = eff_json_get(&st->json, c, "data_offsets");
        if (!dt || dt->type != EFF_JSON_STRING || !shape || shape->type != EFF_JSON_ARRAY || !offs || offs->type != EFF_JSON_ARRAY || offs->len != 2)
            return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" needs string dtype, array shape and 2 data_offsets", what, c->key);
        dtype = eff_safetensors_dtype_from_str(dt->str);
        if (dtype < 0) return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "safetensors %s: \"%s\" has dtype %s, which eff cannot hold", what, c->key, dt->str);
        nd = shape->len;
        if (nd > EFF_MAX_DIMS) return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "safetensors %s: \"%s\" has %lld dims (max %d)", what, c->key, (long long)nd, EFF_MAX_DIMS);
        for (i = 0, d = eff_json_child(&st->json, shape); d; d = eff_json_next(&st->json, d), i++) {
            if (d->type != EFF_JSON_NUMBER || !d->is_int || d->inum < 0)
                return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" shape[%lld] is not a non-negative integer", what, c->key, (long long)i);
            ne[i] = d->inum;
        }
        b = eff_json_at(&st->json, offs, 0); e = eff_json_at(&st->json, offs, 1);
        if (b->type != EFF_JSON_NUMBER || !b->is_int || e->type != EFF_JSON_NUMBER || !e->is_int || b->inum < 0 || e->inum < b->inum)
            return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" data_offsets are not integers 0 <= begin <= end", what, c->key);
        if (e->inum > buf_size)
            return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" ends at %lld, past the %lld-byte data buffer (truncated file?)", what,
                                 c->key, (long long)e->inum, (long long)buf_size);
        en = &st->entries[st->n_entries];
        if (eff_tensor_init(ctx, &en->tensor, dtype, (int)nd, ne, (void *)(buf + b->inum)) != EFF_OK || (nbytes = eff_tensor_nbytes(&en->tensor)) < 0)
            return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" shape overflows int64", what, c->key);
        if (nbytes != e->inum - b->inum)
            return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" is %s x shape = %lld bytes but data_offsets span %lld", what,
                                 c->key, dt->str, (long long)nbytes, (long long)(e->inum - b->inum));
        en->name = c->key; en->tensor.name = c->key; en->offset = b->inum; en->nbytes = nbytes;
        st->n_entries++;
    }
    qsort(st->entries, (size_t)st->n_entries, sizeof *st->entries, eff__st_cmp);
    for (i = 0, expect = 0; i < st->n_entries; i++) {   /* the buffer is exactly tiled: no overlap, no hole */
        const eff_safetensors_entry *en = &st->entries[i];
        if (en->offset != expect)
            return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: \"%s\" starts at %lld, expected %lld (%s)", what, en->name,
                                 (long long)en->offset, (long long)expect, en->offset < expect ? "overlapping tensors" : "hole in the data");
        expect = en->offset + en->nbytes;
    }
    if (expect != buf_size)
        return eff_ctx_error(ctx, EFF_ERR_FORMAT, "safetensors %s: tensors cover %lld of %lld data bytes", what, (long long)expect, (long long)buf_size);
    return EFF_OK;
}

EFFDEF eff_status eff_safetensors_open_memory(eff_ctx *ctx, eff_safetensors *st, const void *data, int64_t size) {
    eff_status s;
    EFF__CHECK_PTR(ctx, st);
    memset(st, 0, sizeof *st);
    EFF__CHECK_PTR(ctx, data);
    s = eff__st_parse(ctx, st, (const unsigned char *)data, size, "buffer");
    if (s != EFF_OK) eff_safetensors_close(ctx, st);
    return s;
}
EFFDEF eff_status eff_safetensors_open(eff_ctx *ctx, eff_safetensors *st, const char *path) {
    eff_status s;
    EFF__CHECK_PTR(ctx, st);
    memset(st, 0, sizeof *st);
    EFF__CHECK_PTR(ctx, path);
    EFF__TRY(eff_file_map_open(ctx, path, &st->map));
    s = eff__st_parse(ctx, st, st->map.data, st->map.size, path);
    if (s != EFF_OK) eff_safetensors_close(ctx, st);
    return s;
}
EFFDEF void eff_safetensors_close(eff_ctx *ctx, eff_safetensors *st) {
    if (!st) return;
    eff_ctx_free(ctx, st->entries);
    eff_json_free(ctx, &st->json);
    eff_file_map_close(ctx, &st->map);
    memset(st, 0, sizeof *st);
}
EFFDEF const eff_safetensors_entry *eff_safetensors_find(const eff_safetensors *st, const char *name) {
    int64_t i;
    if (!st || !name) return NULL;
    for (i = 0; i < st->n_entries; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}
EFFDEF const char *eff_safetensors_meta(const eff_safetensors *st, const char *key) {
    return st && st->metadata ? eff_json_get_string(&st->json, st->metadata, key, NULL) : NULL;
}

EFFDEF eff_status eff_safetensors_write(eff_ctx *ctx, const char *path, const eff_tensor *tensors, int64_t n,
                                        const char *const *meta, int64_t n_meta) {
    eff_json_writer jw;
    eff_file_writer fw;
    const char *hdr;
    size_t hlen, pad;
    int64_t i, j, off = 0, *offs = NULL, *order = NULL;
    unsigned char lenb[8];
    eff_status s = EFF_OK;
    uint64_t total;
    int k;
    EFF__CHECK_PTR(ctx, path);
    EFF__CHECK(ctx, n >= 0 && (n == 0 || tensors), EFF_ERR_INVALID_ARG, "eff_safetensors_write: bad tensor list");
    EFF__CHECK(ctx, n_meta >= 0 && (n_meta == 0 || meta), EFF_ERR_INVALID_ARG, "eff_safetensors_write: bad metadata list");
    for (i = 0; i < n; i++) {
        const eff_tensor *t = &tensors[i];
        EFF__TRY(eff_tensor_validate(ctx, t, t->name ? t->name : "tensor"));
        EFF__CHECK(ctx, t->name && t->name[0] && strcmp(t->name, "__metadata__") != 0, EFF_ERR_INVALID_ARG,
                   "eff_safetensors_write: tensor %lld needs a name (not __metadata__)", (long long)i);
        EFF__CHECK(ctx, eff_safetensors_dtype_str(t->dtype) != NULL, EFF_ERR_DTYPE, "eff_safetensors_write: \"%s\" has dtype %s, which safetensors cannot hold",
                   t->name, eff_dtype_name(t->dtype));
        EFF__CHECK(ctx, t->device == EFF_DEVICE_CPU, EFF_ERR_UNSUPPORTED, "eff_safetensors_write: \"%s\" is not on the CPU", t->name);
        for (j = 0; j < i; j++)
            EFF__CHECK(ctx, strcmp(tensors[j].name, t->name) != 0, EFF_ERR_INVALID_ARG, "eff_safetensors_write: duplicate name \"%s\"", t->name);
    }
    for (i = 0; i < n_meta; i++)
        EFF__CHECK(ctx, meta[2 * i] && meta[2 * i + 1], EFF_ERR_INVALID_ARG, "eff_safetensors_write: metadata pair %lld has a NULL string", (long long)i);
    /* Data layout as the reference writer: larger element sizes first (stable), so with the
       8-byte aligned data start every tensor is aligned to its element size. */
    offs = (int64_t *)eff_ctx_alloc(ctx, (size_t)(n ? n : 1) * 2 * sizeof(int64_t));
    if (!offs) return ctx->last_status;
    order = offs + n;
    for (i = 0; i < n; i++) {
        size_t sz = eff_dtype_type_size(tensors[i].dtype);
        for (j = i; j > 0 && eff_dtype_type_size(tensors[order[j - 1]].dtype) < sz; j--) order[j] = order[j - 1];
        order[j] = i;
    }
    for (i = 0; i < n; i++) { offs[order[i]] = off; off += eff_tensor_nbytes(&tensors[order[i]]); }
    eff_jsonw_init(ctx, &jw, 0);
    eff_jsonw_begin_object(&jw);
    if (n_meta > 0) {
        eff_jsonw_key(&jw, "__metadata__");
        eff_jsonw_begin_object(&jw);
        for (i = 0; i < n_meta; i++) { eff_jsonw_key(&jw, meta[2 * i]); eff_jsonw_string(&jw, meta[2 * i + 1]); }
        eff_jsonw_end_object(&jw);
    }
    for (i = 0; i < n; i++) {
        int64_t nb = eff_tensor_nbytes(&tensors[i]);
        eff_jsonw_key(&jw, tensors[i].name);
        eff_jsonw_begin_object(&jw);
        eff_jsonw_key(&jw, "dtype"); eff_jsonw_string(&jw, eff_safetensors_dtype_str(tensors[i].dtype));
        eff_jsonw_key(&jw, "shape"); eff_jsonw_begin_array(&jw);
        for (j = 0; j < tensors[i].ndim; j++) eff_jsonw_int(&jw, tensors[i].ne[j]);
        eff_jsonw_end_array(&jw);
        eff_jsonw_key(&jw, "data_offsets"); eff_jsonw_begin_array(&jw);
        eff_jsonw_int(&jw, offs[i]); eff_jsonw_int(&jw, offs[i] + nb);
        eff_jsonw_end_array(&jw);
        eff_jsonw_end_object(&jw);
    }
    eff_jsonw_end_object(&jw);
    hdr = eff_jsonw_finish(&jw, &hlen);
    if (!hdr) { eff_jsonw_free(&jw); eff_ctx_free(ctx, offs); return eff_ctx_error(ctx, EFF_ERR_OOM, "eff_safetensors_write: header JSON failed"); }
    pad = (8 - hlen % 8) % 8;   /* data starts 8-byte aligned, as the reference writer does */
    total = (uint64_t)(hlen + pad);
    for (k = 0; k < 8; k++) lenb[k] = (unsigned char)(total >> (8 * k));
    s = eff_file_writer_open(ctx, &fw, path);
    if (s == EFF_OK) s = eff_file_writer_write(ctx, &fw, lenb, 8);
    if (s == EFF_OK) s = eff_file_writer_write(ctx, &fw, hdr, hlen);
    if (s == EFF_OK) s = eff_file_writer_write(ctx, &fw, "        ", pad);
    eff_jsonw_free(&jw);
    for (i = 0; s == EFF_OK && i < n; i++) {
        const eff_tensor *t = &tensors[order[i]];
        if (eff_tensor_is_contiguous(t)) {
            s = eff_file_writer_write(ctx, &fw, t->data, (size_t)eff_tensor_nbytes(t));
        } else {
            eff_tensor c;
            s = eff_tensor_contiguous(ctx, &c, t);
            if (s == EFF_OK) { s = eff_file_writer_write(ctx, &fw, c.data, (size_t)eff_tensor_nbytes(&c)); eff_tensor_free(ctx, &c); }
        }
    }
    eff_ctx_free(ctx, offs);
    if (s == EFF_OK) return eff_file_writer_commit(ctx, &fw);
    eff_file_writer_abort(ctx, &fw);
    return s;
}

/* @@EFF_TENSOR_IMPL_END@@ */
#ifdef __cplusplus
}
#endif
#endif /* EFF_TENSOR_IMPLEMENTATION */
