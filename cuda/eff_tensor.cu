/* cuda/eff_tensor.cu - eff_tensor.h's core ops on NVIDIA GPUs.

   Compiled only when EFF_CUDA is defined (nvcc -DEFF_CUDA -c cuda/eff_tensor.cu,
   link -lcublas). The tensor API in eff_tensor.h dispatches here when a tensor's
   device is EFF_DEVICE_CUDA; these entry points take device pointers and sizes
   and may also be called directly.

   Every kernel mirrors the CPU kernel of the same name in eff_tensor.h (same
   formula, same accumulation precision where it matters: float64 row statistics
   for the norms), so tests/test_cuda.cu compares them element for element.
   Every kernel is launched through eff__cuda_launch, the one place with <<< >>>,
   so the same kernel source can be run by a CPU emulation of the CUDA execution
   model later. Matmul goes through cuBLAS. */
#ifndef EFF_CUDA
#define EFF_CUDA
#endif
#include "eff_tensor.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------
   Per-context device state: device, stream, cuBLAS handle
   --------------------------------------------------------------------------- */
typedef struct eff__cuda_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
} eff__cuda_state;

static void eff__cuda_state_free(eff_ctx *ctx, void *p) {
    eff__cuda_state *s = (eff__cuda_state *)p;
    if (!s) return;
    if (s->cublas) cublasDestroy(s->cublas);
    if (s->stream) cudaStreamDestroy(s->stream);
    eff_ctx_free(ctx, s);
}

static eff_status eff__cuda_err(eff_ctx *ctx, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return EFF_OK;
    return eff_ctx_error(ctx, EFF_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(e));
}

static eff__cuda_state *eff__cuda(eff_ctx *ctx) { return (eff__cuda_state *)eff_ctx_device_state(ctx); }

#define EFF__CUDA_REQUIRE(ctx)                                                                                 \
    do {                                                                                                       \
        if (!eff__cuda(ctx))                                                                                   \
            return eff_ctx_error((ctx), EFF_ERR_DEVICE, "%s: call eff_cuda_init(ctx, device) first", __func__); \
    } while (0)

extern "C" {

EFFDEF eff_status eff_cuda_device_count(eff_ctx *ctx, int *n) {
    cudaError_t e;
    if (!n) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_cuda_device_count: argument 'n' is NULL");
    *n = 0;
    e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) { *n = 0; return eff__cuda_err(ctx, e, "cudaGetDeviceCount"); }
    return EFF_OK;
}

EFFDEF eff_status eff_cuda_init(eff_ctx *ctx, int device) {
    eff__cuda_state *s;
    int n = 0;
    eff_status st;
    if (!ctx) return EFF_ERR_INVALID_ARG;
    if (eff__cuda(ctx)) return EFF_OK;
    st = eff_cuda_device_count(ctx, &n);
    if (st) return st;
    if (device < 0 || device >= n)
        return eff_ctx_error(ctx, EFF_ERR_DEVICE, "eff_cuda_init: device %d not in [0, %d)", device, n);
    st = eff__cuda_err(ctx, cudaSetDevice(device), "cudaSetDevice");
    if (st) return st;
    s = (eff__cuda_state *)eff_ctx_calloc(ctx, sizeof *s);
    if (!s) return EFF_ERR_OOM;
    s->device = device;
    if ((st = eff__cuda_err(ctx, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate")) != EFF_OK) {
        eff__cuda_state_free(ctx, s);
        return st;
    }
    if (cublasCreate(&s->cublas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(s->cublas, s->stream) != CUBLAS_STATUS_SUCCESS) {
        eff__cuda_state_free(ctx, s);
        return eff_ctx_error(ctx, EFF_ERR_DEVICE, "eff_cuda_init: cuBLAS initialization failed");
    }
    eff_ctx_set_device_state(ctx, s, eff__cuda_state_free);
    return EFF_OK;
}

EFFDEF eff_status eff_cuda_synchronize(eff_ctx *ctx) {
    EFF__CUDA_REQUIRE(ctx);
    return eff__cuda_err(ctx, cudaStreamSynchronize(eff__cuda(ctx)->stream), "cudaStreamSynchronize");
}

EFFDEF eff_status eff_cuda_malloc(eff_ctx *ctx, void **ptr, size_t bytes) {
    if (!ptr) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_cuda_malloc: argument 'ptr' is NULL");
    *ptr = NULL;
    EFF__CUDA_REQUIRE(ctx);
    return eff__cuda_err(ctx, cudaMalloc(ptr, bytes ? bytes : 1), "cudaMalloc");
}

EFFDEF eff_status eff_cuda_free(eff_ctx *ctx, void *ptr) {
    if (!ptr) return EFF_OK;
    return eff__cuda_err(ctx, cudaFree(ptr), "cudaFree");
}

EFFDEF eff_status eff_cuda_memcpy(eff_ctx *ctx, void *dst, const void *src, size_t bytes, int to_device) {
    eff_status st;
    EFF__CUDA_REQUIRE(ctx);
    st = eff__cuda_err(ctx, cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                                            eff__cuda(ctx)->stream), "cudaMemcpyAsync");
    if (st) return st;
    return eff_cuda_synchronize(ctx);
}

} /* extern "C" */

/* ---------------------------------------------------------------------------
   The launch helper: the only kernel launch in eff's CUDA code.
   --------------------------------------------------------------------------- */
template <typename... KArgs, typename... Args>
static eff_status eff__cuda_launch(eff_ctx *ctx, const char *name, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                   size_t smem, Args... args) {
    cudaError_t e;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return EFF_OK;
    kernel<<<grid, block, smem, eff__cuda(ctx)->stream>>>(args...);
    e = cudaGetLastError();
    if (e != cudaSuccess) return eff_ctx_error(ctx, EFF_ERR_DEVICE, "%s: launch failed: %s", name, cudaGetErrorString(e));
    return EFF_OK;
}

/* Grid for a grid-stride loop over n elements. */
static dim3 eff__grid1d(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b > 65535 * 4) b = 65535 * 4;
    return dim3((unsigned)(b > 0 ? b : 0));
}

/* ---------------------------------------------------------------------------
   Elementwise kernels (same formulas as eff__gelu_f etc. in eff_tensor.h)
   --------------------------------------------------------------------------- */
#define EFF__GELU_KC 0.7978845608028654f

__device__ static float eff__d_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ static void eff__k_unary(int op, float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = x[i];
        if (op == EFF_OP_GELU) y[i] = 0.5f * v * (1.0f + tanhf(EFF__GELU_KC * (v + 0.044715f * v * v * v)));
        else if (op == EFF_OP_SILU) y[i] = v * eff__d_sigmoid(v);
        else y[i] = v > 0.0f ? v : 0.0f;
    }
}

__global__ static void eff__k_unary_backward(int op, float *dx, const float *dy, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = x[i], g = dy[i];
        if (op == EFF_OP_GELU) {
            float t = tanhf(EFF__GELU_KC * (v + 0.044715f * v * v * v));
            dx[i] = g * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * EFF__GELU_KC * (1.0f + 3.0f * 0.044715f * v * v));
        } else if (op == EFF_OP_SILU) {
            float s = eff__d_sigmoid(v);
            dx[i] = g * s * (1.0f + v * (1.0f - s));
        } else {
            dx[i] = v > 0.0f ? g : 0.0f;
        }
    }
}

/* op: EFF_OP_ADD y = a + b, EFF_OP_MUL y = a * b, EFF_OP_SCALE y = s * a, EFF_OP_SWIGLU y = silu(a) * b */
__global__ static void eff__k_binary(int op, float *y, const float *a, const float *b, float s, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        if (op == EFF_OP_ADD) y[i] = a[i] + b[i];
        else if (op == EFF_OP_MUL) y[i] = a[i] * b[i];
        else if (op == EFF_OP_SCALE) y[i] = s * a[i];
        else y[i] = a[i] * eff__d_sigmoid(a[i]) * b[i];
    }
}

__global__ static void eff__k_swiglu_backward(float *dgate, float *dup, const float *dy, const float *g, const float *u, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float s = eff__d_sigmoid(g[i]), gy = dy[i];
        if (dgate) dgate[i] = gy * u[i] * s * (1.0f + g[i] * (1.0f - s));
        if (dup) dup[i] = gy * g[i] * s;
    }
}

/* ---------------------------------------------------------------------------
   Row kernels: one block per row, shared-memory tree reductions.
   --------------------------------------------------------------------------- */
#define EFF__ROW_THREADS 256

template <typename T>
__device__ static T eff__block_sum(T v, T *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}
__device__ static float eff__block_max(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* softmax (log_sm = 0) or log-softmax (log_sm = 1) of each row; a row of -inf gives 0 (resp. -inf). */
__global__ static void eff__k_softmax(float *y, const float *x, int64_t cols, int log_sm) {
    __shared__ float shf[EFF__ROW_THREADS];
    __shared__ double shd[EFF__ROW_THREADS];
    const float *xr = x + blockIdx.x * cols;
    float *yr = y + blockIdx.x * cols;
    float m = -INFINITY;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = eff__block_max(m, shf);
    if (m == -INFINITY) {
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = log_sm ? -INFINITY : 0.0f;
        return;
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += (double)expf(xr[j] - m);
    s = eff__block_sum(s, shd);
    if (log_sm) {
        float lse = m + logf((float)s);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - lse;
    } else {
        float inv = 1.0f / (float)s;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
    }
}

__global__ static void eff__k_softmax_backward(float *dx, const float *dy, const float *y, int64_t cols, int log_sm) {
    __shared__ double shd[EFF__ROW_THREADS];
    const float *dyr = dy + blockIdx.x * cols, *yr = y + blockIdx.x * cols;
    float *dxr = dx + blockIdx.x * cols;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += log_sm ? (double)dyr[j] : (double)dyr[j] * yr[j];
    s = eff__block_sum(s, shd);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        dxr[j] = log_sm ? dyr[j] - expf(yr[j]) * (float)s : yr[j] * (dyr[j] - (float)s);
}

/* LayerNorm (rms = 0) or RMSNorm (rms = 1) forward; statistics in float64 like the CPU path. */
__global__ static void eff__k_norm(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                                   int64_t cols, float eps, int rms) {
    __shared__ double shd[EFF__ROW_THREADS];
    const float *xr = x + blockIdx.x * cols;
    float *yr = y + blockIdx.x * cols;
    double s = 0.0, v = 0.0;
    float mu = 0.0f, rs;
    if (!rms) {
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
        mu = (float)(eff__block_sum(s, shd) / (double)cols);
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) { double d = (double)xr[j] - mu; v += d * d; }
    v = eff__block_sum(v, shd);
    rs = (float)(1.0 / sqrt(v / (double)cols + eps));
    if (threadIdx.x == 0) {
        if (mean) mean[blockIdx.x] = mu;
        if (rstd) rstd[blockIdx.x] = rs;
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        yr[j] = (xr[j] - mu) * rs * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
}

/* Input gradient of LayerNorm (rms = 0: dx = rstd (dn - mean(dn) - norm mean(dn norm)))
   or RMSNorm (rms = 1: dx = rstd g - x rstd^3 mean(g x)), one block per row. */
__global__ static void eff__k_norm_backward_dx(float *dx, const float *dy, const float *x, const float *w, const float *mean,
                                               const float *rstd, int64_t cols, int rms) {
    __shared__ double shd[EFF__ROW_THREADS];
    const float *xr = x + blockIdx.x * cols, *dyr = dy + blockIdx.x * cols;
    float *dxr = dx + blockIdx.x * cols;
    float mu = rms ? 0.0f : mean[blockIdx.x], rs = rstd[blockIdx.x];
    double a = 0.0, c = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float dn = dyr[j] * (w ? w[j] : 1.0f);
        if (rms) c += (double)dn * xr[j];
        else { a += dn; c += (double)dn * (xr[j] - mu) * rs; }
    }
    a = eff__block_sum(a, shd) / (double)cols;
    c = eff__block_sum(c, shd) / (double)cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float dn = dyr[j] * (w ? w[j] : 1.0f);
        if (rms) dxr[j] = rs * dn - xr[j] * ((float)c * rs * rs * rs);
        else dxr[j] = rs * (dn - (float)a - (xr[j] - mu) * rs * (float)c);
    }
}

/* Parameter gradients: one thread per column sums over rows in order (deterministic),
   dw[j] += sum_r dy[r,j] norm[r,j], db[j] += sum_r dy[r,j]. */
__global__ static void eff__k_norm_backward_dw(float *dw, float *db, const float *dy, const float *x, const float *mean,
                                               const float *rstd, int64_t rows, int64_t cols, int rms) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
        float sw = 0.0f, sb = 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            float g = dy[r * cols + j], nrm = (x[r * cols + j] - (rms ? 0.0f : mean[r])) * rstd[r];
            sw += g * nrm;
            sb += g;
        }
        if (dw) dw[j] += sw;
        if (db) db[j] += sb;
    }
}

__global__ static void eff__k_add_bias(float *y, const float *b, int64_t rows, int64_t cols) {
    int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) y[i] += b[i % cols];
}

__global__ static void eff__k_col_sum(float *db, const float *dy, int64_t rows, int64_t cols) {
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < cols; j += (int64_t)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int64_t r = 0; r < rows; r++) s += dy[r * cols + j];
        db[j] += s;
    }
}

/* ---------------------------------------------------------------------------
   Entry points (device pointers; contiguous row-major)
   --------------------------------------------------------------------------- */
extern "C" {

static eff_status eff__cuda_rows_ok(eff_ctx *ctx, const char *fn, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return eff_ctx_error(ctx, EFF_ERR_SHAPE, "%s: negative size %lld x %lld", fn, (long long)rows, (long long)cols);
    if (rows > INT_MAX) return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "%s: %lld rows exceed one grid", fn, (long long)rows);
    return EFF_OK;
}

EFFDEF eff_status eff_cuda_unary(eff_ctx *ctx, int op, float *y, const float *x, int64_t n) {
    EFF__CUDA_REQUIRE(ctx);
    if (op != EFF_OP_GELU && op != EFF_OP_SILU && op != EFF_OP_RELU) return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_cuda_unary: op %d", op);
    return eff__cuda_launch(ctx, "eff__k_unary", eff__k_unary, eff__grid1d(n, 256), dim3(256), 0, op, y, x, n);
}

EFFDEF eff_status eff_cuda_unary_backward(eff_ctx *ctx, int op, float *dx, const float *dy, const float *x, int64_t n) {
    EFF__CUDA_REQUIRE(ctx);
    if (op != EFF_OP_GELU && op != EFF_OP_SILU && op != EFF_OP_RELU)
        return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_cuda_unary_backward: op %d", op);
    return eff__cuda_launch(ctx, "eff__k_unary_backward", eff__k_unary_backward, eff__grid1d(n, 256), dim3(256), 0, op, dx, dy, x, n);
}

EFFDEF eff_status eff_cuda_binary(eff_ctx *ctx, int op, float *y, const float *a, const float *b, float s, int64_t n) {
    EFF__CUDA_REQUIRE(ctx);
    if (op != EFF_OP_ADD && op != EFF_OP_MUL && op != EFF_OP_SCALE && op != EFF_OP_SWIGLU)
        return eff_ctx_error(ctx, EFF_ERR_INVALID_ARG, "eff_cuda_binary: op %d", op);
    return eff__cuda_launch(ctx, "eff__k_binary", eff__k_binary, eff__grid1d(n, 256), dim3(256), 0, op, y, a, b, s, n);
}

EFFDEF eff_status eff_cuda_swiglu_backward(eff_ctx *ctx, float *dgate, float *dup, const float *dy, const float *gate,
                                           const float *up, int64_t n) {
    EFF__CUDA_REQUIRE(ctx);
    return eff__cuda_launch(ctx, "eff__k_swiglu_backward", eff__k_swiglu_backward, eff__grid1d(n, 256), dim3(256), 0, dgate, dup, dy,
                            gate, up, n);
}

EFFDEF eff_status eff_cuda_softmax(eff_ctx *ctx, float *y, const float *x, int64_t rows, int64_t cols, int log_softmax) {
    eff_status st;
    EFF__CUDA_REQUIRE(ctx);
    if ((st = eff__cuda_rows_ok(ctx, "eff_cuda_softmax", rows, cols)) != EFF_OK) return st;
    return eff__cuda_launch(ctx, "eff__k_softmax", eff__k_softmax, dim3((unsigned)rows), dim3(EFF__ROW_THREADS), 0, y, x, cols,
                            log_softmax);
}

EFFDEF eff_status eff_cuda_softmax_backward(eff_ctx *ctx, float *dx, const float *dy, const float *y, int64_t rows, int64_t cols,
                                            int log_softmax) {
    eff_status st;
    EFF__CUDA_REQUIRE(ctx);
    if ((st = eff__cuda_rows_ok(ctx, "eff_cuda_softmax_backward", rows, cols)) != EFF_OK) return st;
    return eff__cuda_launch(ctx, "eff__k_softmax_backward", eff__k_softmax_backward, dim3((unsigned)rows), dim3(EFF__ROW_THREADS), 0, dx,
                            dy, y, cols, log_softmax);
}

EFFDEF eff_status eff_cuda_norm(eff_ctx *ctx, int rms, float *y, float *mean, float *rstd, const float *x, const float *w,
                                const float *b, int64_t rows, int64_t cols, float eps) {
    eff_status st;
    EFF__CUDA_REQUIRE(ctx);
    if ((st = eff__cuda_rows_ok(ctx, "eff_cuda_norm", rows, cols)) != EFF_OK) return st;
    return eff__cuda_launch(ctx, "eff__k_norm", eff__k_norm, dim3((unsigned)rows), dim3(EFF__ROW_THREADS), 0, y, mean, rstd, x, w, b,
                            cols, eps, rms);
}

EFFDEF eff_status eff_cuda_norm_backward(eff_ctx *ctx, int rms, float *dx, float *dw, float *db, const float *dy, const float *x,
                                         const float *w, const float *mean, const float *rstd, int64_t rows, int64_t cols) {
    eff_status st;
    EFF__CUDA_REQUIRE(ctx);
    if ((st = eff__cuda_rows_ok(ctx, "eff_cuda_norm_backward", rows, cols)) != EFF_OK) return st;
    if (dx && (st = eff__cuda_launch(ctx, "eff__k_norm_backward_dx", eff__k_norm_backward_dx, dim3((unsigned)rows), dim3(EFF__ROW_THREADS),
                                     0, dx, dy, x, w, mean, rstd, cols, rms)) != EFF_OK)
        return st;
    if (dw || db)
        return eff__cuda_launch(ctx, "eff__k_norm_backward_dw", eff__k_norm_backward_dw, eff__grid1d(cols, 128), dim3(128), 0, dw, db, dy,
                                x, mean, rstd, rows, cols, rms);
    return EFF_OK;
}

/* Row-major C = alpha op(A) op(B) + beta C through column-major cuBLAS:
   C^T = op(B)^T op(A)^T, so the operands swap and keep their own transpose flags. */
EFFDEF eff_status eff_cuda_sgemm(eff_ctx *ctx, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cublasStatus_t cs;
    EFF__CUDA_REQUIRE(ctx);
    if (M < 0 || N < 0 || K < 0) return eff_ctx_error(ctx, EFF_ERR_SHAPE, "eff_cuda_sgemm: negative size");
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return eff_ctx_error(ctx, EFF_ERR_UNSUPPORTED, "eff_cuda_sgemm: sizes beyond INT_MAX");
    if (M == 0 || N == 0) return EFF_OK;
    cs = cublasSgemm(eff__cuda(ctx)->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M,
                     (int)K, &alpha, B, (int)ldb, A, (int)lda, &beta, C, (int)ldc);
    if (cs != CUBLAS_STATUS_SUCCESS) return eff_ctx_error(ctx, EFF_ERR_DEVICE, "eff_cuda_sgemm: cublasSgemm status %d", (int)cs);
    return EFF_OK;
}

/* y[M,N] = x[M,K] W[N,K]^T + b. */
EFFDEF eff_status eff_cuda_linear(eff_ctx *ctx, float *y, const float *x, const float *W, const float *b, int64_t M, int64_t N, int64_t K) {
    eff_status st = eff_cuda_sgemm(ctx, 0, 1, M, N, K, 1.0f, x, K > 0 ? K : 1, W, K > 0 ? K : 1, 0.0f, y, N > 0 ? N : 1);
    if (st || !b) return st;
    return eff__cuda_launch(ctx, "eff__k_add_bias", eff__k_add_bias, eff__grid1d(M * N, 256), dim3(256), 0, y, b, M, N);
}

/* dx = dy W (=), dW += dy^T x, db += colsum(dy). */
EFFDEF eff_status eff_cuda_linear_backward(eff_ctx *ctx, float *dx, float *dW, float *db, const float *dy, const float *x,
                                           const float *W, int64_t M, int64_t N, int64_t K) {
    eff_status st = EFF_OK;
    int64_t ldk = K > 0 ? K : 1, ldn = N > 0 ? N : 1;
    if (dx && (st = eff_cuda_sgemm(ctx, 0, 0, M, K, N, 1.0f, dy, ldn, W, ldk, 0.0f, dx, ldk)) != EFF_OK) return st;
    if (dW && (st = eff_cuda_sgemm(ctx, 1, 0, N, K, M, 1.0f, dy, ldn, x, ldk, 1.0f, dW, ldk)) != EFF_OK) return st;
    if (db) st = eff__cuda_launch(ctx, "eff__k_col_sum", eff__k_col_sum, eff__grid1d(N, 128), dim3(128), 0, db, dy, M, N);
    return st;
}

} /* extern "C" */
