/* test_cuda.cu - every CUDA op of cuda/eff_tensor.cu against the tested CPU op
   of eff_tensor.h, on odd shapes, by nmse. Built by `make cuda` for sm_80 and
   sm_90; it runs wherever a GPU exists and skips with a message where none does. */
#ifndef EFF_CUDA
#define EFF_CUDA
#endif
/* the implementation comes from a C object built by the Makefile (build/cuda/eff_impl.o) */
#include "eff_tensor.h"
#include "eff_test.h"

#include <vector>

struct dev_buf {
    eff_ctx *ctx;
    float *p;
    int64_t n;
    dev_buf(eff_ctx *c, int64_t count) : ctx(c), p(NULL), n(count) {
        void *q = NULL;
        if (eff_cuda_malloc(ctx, &q, (size_t)(n > 0 ? n : 1) * sizeof(float)) == EFF_OK) p = (float *)q;
    }
    ~dev_buf() { eff_cuda_free(ctx, p); }
    void put(const std::vector<float> &h) { eff_cuda_memcpy(ctx, p, h.data(), (size_t)n * sizeof(float), 1); }
    std::vector<float> get() {
        std::vector<float> h((size_t)n);
        eff_cuda_memcpy(ctx, h.data(), p, (size_t)n * sizeof(float), 0);
        return h;
    }
};

static std::vector<float> randv(int64_t n, double scale) {
    std::vector<float> v((size_t)n);
    eff_test_fill(v.data(), n, scale);
    return v;
}

static void check_close(const char *what, const std::vector<float> &gpu, const std::vector<float> &cpu, double tol) {
    double e = eff_test_nmse_ff(gpu.data(), cpu.data(), (int64_t)cpu.size());
    EFF_CHECK(e <= tol, "%s: gpu vs cpu nmse %.3g <= %.1g", what, e, tol);
}

int main(void) {
    eff_ctx *ctx;
    int ndev = 0;
    EFF_TEST_BEGIN("test_cuda");
    if (eff_ctx_create(NULL, &ctx)) return 1;
    if (eff_cuda_device_count(ctx, &ndev) != EFF_OK || ndev == 0) {
        printf("skipped: no CUDA device here (%s)\n", ndev == 0 && eff_ctx_last_error(ctx)[0] ? eff_ctx_last_error(ctx) : "0 devices");
        eff_ctx_destroy(ctx);
        return EFF_TEST_END();
    }
    EFF_CHECK_STATUS(ctx, eff_cuda_init(ctx, 0), EFF_OK, "eff_cuda_init");
    const int64_t shapes[][2] = {{1, 1}, {7, 13}, {33, 65}, {127, 257}, {3, 1031}};
    for (const auto &sh : shapes) {
        int64_t R = sh[0], C = sh[1], n = R * C;
        char what[128];
        std::vector<float> x = randv(n, 3.0), y2 = randv(n, 1.0), dy = randv(n, 1.0), w = randv(C, 1.0), b = randv(C, 1.0);
        dev_buf dx_(ctx, n), dy_(ctx, n), dx2(ctx, n), dout(ctx, n), dw_(ctx, C), db_(ctx, C), dstat1(ctx, R), dstat2(ctx, R), dy2(ctx, n);
        dx_.put(x); dy_.put(dy); dy2.put(y2); dw_.put(w); db_.put(b);
        eff_tensor X = eff_tensor_2d(x.data(), EFF_F32, R, C), DY = eff_tensor_2d(dy.data(), EFF_F32, R, C);
        eff_tensor Y2 = eff_tensor_2d(y2.data(), EFF_F32, R, C), W = eff_tensor_1d(w.data(), EFF_F32, C), B = eff_tensor_1d(b.data(), EFF_F32, C);
        std::vector<float> ref((size_t)n), ref2((size_t)n), mean((size_t)R), rstd((size_t)R);
        eff_tensor REF = eff_tensor_2d(ref.data(), EFF_F32, R, C), REF2 = eff_tensor_2d(ref2.data(), EFF_F32, R, C);
        eff_tensor MEAN = eff_tensor_1d(mean.data(), EFF_F32, R), RSTD = eff_tensor_1d(rstd.data(), EFF_F32, R);
        const int unary[3] = {EFF_OP_GELU, EFF_OP_SILU, EFF_OP_RELU};
        const char *uname[3] = {"gelu", "silu", "relu"};
        for (int u = 0; u < 3; u++) {
            if (u == 0) eff_gelu_forward(ctx, &REF, &X); else if (u == 1) eff_silu_forward(ctx, &REF, &X); else eff_relu_forward(ctx, &REF, &X);
            eff_cuda_unary(ctx, unary[u], dout.p, dx_.p, n);
            snprintf(what, sizeof what, "%s forward %lldx%lld", uname[u], (long long)R, (long long)C);
            check_close(what, dout.get(), ref, 1e-10);
            if (u == 0) eff_gelu_backward(ctx, &REF, &DY, &X); else if (u == 1) eff_silu_backward(ctx, &REF, &DY, &X); else eff_relu_backward(ctx, &REF, &DY, &X);
            eff_cuda_unary_backward(ctx, unary[u], dout.p, dy_.p, dx_.p, n);
            snprintf(what, sizeof what, "%s backward %lldx%lld", uname[u], (long long)R, (long long)C);
            check_close(what, dout.get(), ref, 1e-10);
        }
        eff_swiglu_forward(ctx, &REF, &X, &Y2);
        eff_cuda_binary(ctx, EFF_OP_SWIGLU, dout.p, dx_.p, dy2.p, 0.0f, n);
        check_close("swiglu forward", dout.get(), ref, 1e-10);
        eff_swiglu_backward(ctx, &REF, &REF2, &DY, &X, &Y2);
        eff_cuda_swiglu_backward(ctx, dout.p, dx2.p, dy_.p, dx_.p, dy2.p, n);
        check_close("swiglu backward dgate", dout.get(), ref, 1e-10);
        check_close("swiglu backward dup", dx2.get(), ref2, 1e-10);
        eff_mul_forward(ctx, &REF, &X, &Y2);
        eff_cuda_binary(ctx, EFF_OP_MUL, dout.p, dx_.p, dy2.p, 0.0f, n);
        check_close("mul", dout.get(), ref, 1e-12);
        for (int lg = 0; lg < 2; lg++) {
            if (lg) eff_log_softmax_forward(ctx, &REF, &X); else eff_softmax_forward(ctx, &REF, &X);
            eff_cuda_softmax(ctx, dout.p, dx_.p, R, C, lg);
            check_close(lg ? "log_softmax forward" : "softmax forward", dout.get(), ref, 1e-10);
            dx2.put(ref);
            if (lg) eff_log_softmax_backward(ctx, &REF2, &DY, &REF); else eff_softmax_backward(ctx, &REF2, &DY, &REF);
            eff_cuda_softmax_backward(ctx, dout.p, dy_.p, dx2.p, R, C, lg);
            check_close(lg ? "log_softmax backward" : "softmax backward", dout.get(), ref2, 1e-10);
        }
        for (int rms = 0; rms < 2; rms++) {
            std::vector<float> dwc((size_t)C, 0.5f), dbc((size_t)C, 0.25f);
            eff_tensor DW = eff_tensor_1d(dwc.data(), EFF_F32, C), DB = eff_tensor_1d(dbc.data(), EFF_F32, C);
            if (rms) eff_rmsnorm_forward(ctx, &REF, &RSTD, &X, &W, 1e-5f);
            else eff_layernorm_forward(ctx, &REF, &MEAN, &RSTD, &X, &W, &B, 1e-5f);
            eff_cuda_norm(ctx, rms, dout.p, rms ? NULL : dstat1.p, dstat2.p, dx_.p, dw_.p, rms ? NULL : db_.p, R, C, 1e-5f);
            check_close(rms ? "rmsnorm forward" : "layernorm forward", dout.get(), ref, 1e-10);
            check_close(rms ? "rmsnorm rstd" : "layernorm rstd", dstat2.get(), rstd, 1e-10);
            if (rms) eff_rmsnorm_backward(ctx, &REF2, &DW, &DY, &X, &W, &RSTD);
            else eff_layernorm_backward(ctx, &REF2, &DW, &DB, &DY, &X, &W, &MEAN, &RSTD);
            dev_buf gdw(ctx, C), gdb(ctx, C);
            gdw.put(std::vector<float>((size_t)C, 0.5f));
            gdb.put(std::vector<float>((size_t)C, 0.25f));
            eff_cuda_norm_backward(ctx, rms, dout.p, gdw.p, rms ? NULL : gdb.p, dy_.p, dx_.p, dw_.p, rms ? NULL : dstat1.p, dstat2.p, R, C);
            check_close(rms ? "rmsnorm backward dx" : "layernorm backward dx", dout.get(), ref2, 1e-9);
            check_close(rms ? "rmsnorm backward dw (+=)" : "layernorm backward dw (+=)", gdw.get(), dwc, 1e-9);
            if (!rms) check_close("layernorm backward db (+=)", gdb.get(), dbc, 1e-9);
        }
    }
    /* sgemm and linear through cuBLAS vs eff_sgemm, all transposes */
    {
        const int64_t M = 37, N = 53, K = 71;
        std::vector<float> A = randv(M * K, 1.0), Bm = randv(K * N, 1.0), Cc((size_t)(M * N)), Cg;
        dev_buf dA(ctx, M * K), dB(ctx, K * N), dC(ctx, M * N);
        dA.put(A); dB.put(Bm);
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            eff_sgemm(ctx, ta, tb, M, N, K, 1.5f, A.data(), ta ? M : K, Bm.data(), tb ? K : N, 0.0f, Cc.data(), N);
            eff_cuda_sgemm(ctx, ta, tb, M, N, K, 1.5f, dA.p, ta ? M : K, dB.p, tb ? K : N, 0.0f, dC.p, N);
            char what[64];
            snprintf(what, sizeof what, "sgemm transA=%d transB=%d", ta, tb);
            check_close(what, dC.get(), Cc, 1e-10);
        }
    }
    /* the same ops through the tensor API: device tensors dispatch to cuda/ */
    {
        const int64_t R = 17, C = 129, n = R * C;
        std::vector<float> x = randv(n, 2.0), ref((size_t)n), mean((size_t)R), rstd((size_t)R), w = randv(C, 1.0);
        dev_buf dx_(ctx, n), dy_(ctx, n), dm(ctx, R), dr(ctx, R), dw(ctx, C);
        dx_.put(x); dw.put(w);
        eff_tensor X = eff_tensor_2d(x.data(), EFF_F32, R, C), REF = eff_tensor_2d(ref.data(), EFF_F32, R, C);
        eff_tensor W = eff_tensor_1d(w.data(), EFF_F32, C), RS = eff_tensor_1d(rstd.data(), EFF_F32, R);
        eff_tensor DX = eff_tensor_2d(dx_.p, EFF_F32, R, C), DY = eff_tensor_2d(dy_.p, EFF_F32, R, C);
        eff_tensor DW = eff_tensor_1d(dw.p, EFF_F32, C), DR = eff_tensor_1d(dr.p, EFF_F32, R);
        DX.device = DY.device = DW.device = DR.device = EFF_DEVICE_CUDA;
        eff_gelu_forward(ctx, &REF, &X);
        EFF_CHECK_STATUS(ctx, eff_gelu_forward(ctx, &DY, &DX), EFF_OK, "eff_gelu_forward on device tensors");
        check_close("tensor API gelu", dy_.get(), ref, 1e-10);
        eff_rmsnorm_forward(ctx, &REF, &RS, &X, &W, 1e-5f);
        EFF_CHECK_STATUS(ctx, eff_rmsnorm_forward(ctx, &DY, &DR, &DX, &DW, 1e-5f), EFF_OK, "eff_rmsnorm_forward on device tensors");
        check_close("tensor API rmsnorm", dy_.get(), ref, 1e-10);
        eff_softmax_forward(ctx, &REF, &X);
        EFF_CHECK_STATUS(ctx, eff_softmax_forward(ctx, &DY, &DX), EFF_OK, "eff_softmax_forward on device tensors");
        check_close("tensor API softmax", dy_.get(), ref, 1e-10);
        (void)mean;
    }
    eff_ctx_destroy(ctx);
    return EFF_TEST_END();
}
