# eff - build, test, bench. Needs a C compiler and libm; OpenMP, OpenBLAS,
# OpenMPI and CUDA are probed and used when present.
#
#   make            build the examples
#   make demo       run the demo programs (the main job)
#   make test       build and run every test (+ MPI tests, CUDA compile check when available)
#   make bench      run the benchmarks (prints tables; bench-mpi: bench_comm under mpirun -np 2)
#   make asan       tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make cuda       nvcc compile of cuda/*.cu for sm_80 and sm_90, warnings as errors
#   make install PREFIX=/usr/local

CC      ?= cc
CXX     ?= c++
BUILD   ?= build
PREFIX  ?= /usr/local
# Tests and examples print or parse nothing locale-specific; keep it that way.
export LC_ALL = C

probe = $(shell printf 'int main(void){return 0;}\n' | $(CC) $(1) -x c - -o /dev/null >/dev/null 2>&1 && echo yes)

ARCH    := $(if $(call probe,-march=native),-march=native,)
OPENMP  := $(if $(call probe,-fopenmp),-fopenmp,)
WARN    := -Wall -Wextra -Werror -Wno-unknown-pragmas
CFLAGS  ?= -O2 -g
ALLCFLAGS = -std=c99 $(CFLAGS) $(ARCH) $(OPENMP) $(WARN) -I. -Itests
LDLIBS  = -lm

HAVE_CBLAS := $(shell printf '\043include <cblas.h>\nint main(void){float a=1,b=1,c=0; cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1,&a,1,&b,1,0,&c,1); return (int)c-1;}\n' | $(CC) -x c - -o /dev/null -lopenblas >/dev/null 2>&1 && echo yes)
MPICC   := $(shell command -v mpicc 2>/dev/null)
MPIRUN  := $(shell command -v mpirun 2>/dev/null)
NVCC    := $(shell command -v nvcc 2>/dev/null)
MPIRUN_FLAGS ?= --oversubscribe --allow-run-as-root
CLANG   := $(shell command -v clang 2>/dev/null)
# AVX2 without AVX-512, when this compiler targets x86 and this CPU has AVX2
AVX2_FLAGS := $(if $(and $(call probe,-mavx2 -mfma -mf16c -mno-avx512f),$(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo y)),-mavx2 -mfma -mf16c -mno-avx512f,)

HEADERS   := $(wildcard eff_*.h)
TEST_SRC  := $(filter-out %_mpi.c,$(wildcard tests/test_*.c))
MPI_SRC   := $(wildcard tests/test_*_mpi.c)
EX_SRC    := $(wildcard examples/*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)
CUDA_SRC  := $(wildcard cuda/*.cu)

TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
MPITESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(MPI_SRC))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

# The demo: programs run in this order by `make demo` (each prints what it shows).
DEMOS ?= tensor_mlp sgemm_speed quant_table attn_masks attn_memory model_demo train_demo spec_demo parallel_estimate parallel_demo parallel_pipeline

.PHONY: all examples build-all demo test test-unit test-kernels test-contract test-mpi test-cuda bench bench-mpi asan cuda install clean
all: examples
examples: $(EXAMPLES)
build-all: $(TESTS) $(EXAMPLES) $(BENCHES)

$(BUILD)/tests/% : tests/%.c $(HEADERS) tests/eff_test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $< -o $@ $(LDLIBS)

$(BUILD)/examples/% : examples/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $< -o $@ $(LDLIBS)

BENCH_CFLAGS = -std=c99 -O3 $(ARCH) $(OPENMP) $(WARN) -I. -Itests $(if $(HAVE_CBLAS),-DEFF_HAVE_OPENBLAS,)
BENCH_LIBS   = $(LDLIBS) $(if $(HAVE_CBLAS),-lopenblas,)
$(BUILD)/bench/% : bench/%.c bench/bench_util.h $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -DEFF_BENCH_FLAGS='"$(BENCH_CFLAGS)"' $< -o $@ $(BENCH_LIBS)

demo: $(EXAMPLES)
	@set -e; for d in $(DEMOS); do echo; echo "===== examples/$$d ====="; ./$(BUILD)/examples/$$d; done

# ---- tests -------------------------------------------------------------------
test: test-unit test-kernels test-contract test-mpi test-cuda
	@echo "make test: all passed"

# The kernel-heavy tests again on the other SIMD paths (the scalar fallback, and AVX2
# when the CPU has it), and eff_sgemm through OpenBLAS when it is installed.
KERNEL_TESTS = test_tensor test_quant test_attn
test-kernels:
	@mkdir -p $(BUILD)/kernels
	@set -e; for t in $(KERNEL_TESTS); do \
	  $(CC) -std=c99 $(CFLAGS) $(OPENMP) $(WARN) -DEFF_NO_SIMD -I. -Itests tests/$$t.c -o $(BUILD)/kernels/$${t}_scalar $(LDLIBS); \
	  echo; echo "$$t, scalar kernels (-DEFF_NO_SIMD)"; EFF_TEST_QUICK=1 ./$(BUILD)/kernels/$${t}_scalar; \
	  if [ -n "$(AVX2_FLAGS)" ]; then \
	    $(CC) -std=c99 $(CFLAGS) $(AVX2_FLAGS) $(OPENMP) $(WARN) -I. -Itests tests/$$t.c -o $(BUILD)/kernels/$${t}_avx2 $(LDLIBS); \
	    echo; echo "$$t, AVX2 kernels ($(AVX2_FLAGS))"; EFF_TEST_QUICK=1 ./$(BUILD)/kernels/$${t}_avx2; \
	  fi; \
	done
ifneq ($(HAVE_CBLAS),)
	$(CC) $(ALLCFLAGS) -DEFF_USE_CBLAS tests/test_tensor.c -o $(BUILD)/kernels/test_tensor_cblas $(LDLIBS) -lopenblas
	@echo; echo "test_tensor, eff_sgemm through OpenBLAS (-DEFF_USE_CBLAS)"; EFF_TEST_QUICK=1 ./$(BUILD)/kernels/test_tensor_cblas
else
	@echo "test-kernels: the OpenBLAS build skipped (no cblas.h / -lopenblas)"
endif

test-unit: $(TESTS)
	@fail=0; for t in $(TESTS); do echo; ./$$t || { echo "FAILED: $$t"; fail=1; }; done; \
	 [ $$fail = 0 ] || { echo "some tests failed"; exit 1; }

# The stb contract: every header alone as C99 and C++, twice in one file, in two
# translation units with one implementation, under EFF_STATIC, with and without
# SIMD; and the README's example (examples/hello.c) builds and runs.
test-contract: $(BUILD)/examples/hello
	@mkdir -p $(BUILD)/contract
	@set -e; for h in $(HEADERS); do \
	  u=$$(basename $$h .h | tr a-z A-Z); \
	  printf '#define %s_IMPLEMENTATION\n#include "%s"\n#include "%s"\nint main(void){return 0;}\n' $$u $$h $$h > $(BUILD)/contract/$$u.c; \
	  $(CC) -std=c99 -pedantic $(WARN) -I. -fsyntax-only $(BUILD)/contract/$$u.c; \
	  $(CC) -std=c99 -pedantic $(WARN) -DEFF_NO_SIMD -I. -fsyntax-only $(BUILD)/contract/$$u.c; \
	  $(CXX) -std=c++11 $(WARN) -I. -fsyntax-only -x c++ $(BUILD)/contract/$$u.c; \
	  echo "contract: $$h compiles as C99, C99 scalar and C++11"; \
	done
	@printf '#define EFF_IMPLEMENTATION\n' > $(BUILD)/contract/impl.c
	@for h in $(HEADERS); do printf '#include "%s"\n' $$h >> $(BUILD)/contract/impl.c; done
	@printf 'int eff_contract_other(void);\nint main(void){ return eff_contract_other(); }\n' >> $(BUILD)/contract/impl.c
	@printf '' > $(BUILD)/contract/other.c
	@for h in $(HEADERS); do printf '#include "%s"\n' $$h >> $(BUILD)/contract/other.c; done
	@printf 'int eff_contract_other(void){ eff_ctx *c; if (eff_ctx_create(0, &c)) return 1; eff_ctx_destroy(c); return 0; }\n' >> $(BUILD)/contract/other.c
	$(CC) -std=c99 $(WARN) $(OPENMP) -I. $(BUILD)/contract/impl.c $(BUILD)/contract/other.c -o $(BUILD)/contract/two_tu $(LDLIBS)
	./$(BUILD)/contract/two_tu
	@printf '#define EFF_STATIC\n#define EFF_IMPLEMENTATION\n' > $(BUILD)/contract/static.c
	@for h in $(HEADERS); do printf '#include "%s"\n' $$h >> $(BUILD)/contract/static.c; done
	@printf 'int main(void){ eff_ctx *c; if (eff_ctx_create(0, &c)) return 1; eff_ctx_destroy(c); return 0; }\n' >> $(BUILD)/contract/static.c
	$(CC) -std=c99 $(WARN) -Wno-unused-function -I. $(BUILD)/contract/static.c -o $(BUILD)/contract/static $(LDLIBS)
	./$(BUILD)/contract/static
	./$(BUILD)/examples/hello
	$(CXX) -std=c++11 -O2 $(ARCH) $(OPENMP) $(WARN) -I. -x c++ examples/hello.c -o $(BUILD)/contract/hello_cpp $(LDLIBS)
	./$(BUILD)/contract/hello_cpp
ifneq ($(CLANG),)
	@set -e; for f in $(TEST_SRC) $(EX_SRC) $(BENCH_SRC); do $(CLANG) -std=c99 $(ARCH) $(WARN) -I. -Itests -fsyntax-only $$f; done; \
	 echo "contract: every test, example and bench compiles warning-free under clang too"
else
	@echo "contract: clang not found; the clang warning check skipped"
endif
	@echo "contract: all headers pass"

test-mpi:
ifneq ($(and $(MPICC),$(MPIRUN),$(MPI_SRC)),)
	@mkdir -p $(BUILD)/tests
	@set -e; for s in $(MPI_SRC); do \
	  b=$(BUILD)/tests/$$(basename $$s .c); \
	  $(MPICC) -DEFF_MPI $(ALLCFLAGS) $$s -o $$b $(LDLIBS); \
	  for np in 2 4; do echo "mpirun -np $$np $$b"; OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(MPIRUN) $(MPIRUN_FLAGS) -np $$np $$b; done; \
	done
else
	@echo "test-mpi: skipped ($(if $(MPI_SRC),mpicc/mpirun not found,no MPI tests yet))"
endif

test-cuda:
ifneq ($(NVCC),)
	@$(MAKE) --no-print-directory cuda
else
	@echo "test-cuda: skipped (nvcc not found)"
endif

# ---- CUDA (compile and link check; running needs a GPU) -----------------------
NVCCFLAGS = -std=c++17 -O2 -I. -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -DEFF_CUDA -Itests
# NCCL (cuda/eff_nccl.cu, tests/test_nccl.cu) when nccl.h sits with the CUDA headers; with
# OpenMPI also the MPI bootstrap (eff_comm_nccl_create_mpi) and test_nccl_mpi
NCCL_H    := $(if $(NVCC),$(wildcard $(dir $(NVCC))../include/nccl.h),)
NCCLFLAGS := $(if $(NCCL_H),-DEFF_NCCL,)
MPI_INC   := $(if $(and $(NCCL_H),$(MPICC)),$(shell $(MPICC) --showme:compile 2>/dev/null),)
MPI_LINK  := $(if $(MPI_INC),$(shell $(MPICC) --showme:link 2>/dev/null),)
CUDA_LIBS  = -lcublas $(if $(NCCL_H),-lnccl,) $(if $(OPENMP),-Xcompiler -fopenmp,) -lm
cuda:
ifneq ($(NVCC),)
	@mkdir -p $(BUILD)/cuda/mpi
	@# the C implementation of the headers, built by the C compiler, linked with the .cu objects
	@printf '#define EFF_IMPLEMENTATION\n' > $(BUILD)/cuda/eff_impl.c
	@for h in $(HEADERS); do printf '#include "%s"\n' $$h >> $(BUILD)/cuda/eff_impl.c; done
	$(CC) -std=c99 -O2 $(ARCH) $(OPENMP) $(WARN) -DEFF_CUDA -I. -c $(BUILD)/cuda/eff_impl.c -o $(BUILD)/cuda/eff_impl.o
	$(if $(MPI_LINK),$(MPICC) -std=c99 -O2 $(ARCH) $(OPENMP) $(WARN) -DEFF_CUDA -DEFF_MPI -I. -c $(BUILD)/cuda/eff_impl.c -o $(BUILD)/cuda/mpi/eff_impl.o,)
	@set -e; for arch in sm_80 sm_90; do \
	  for f in $(CUDA_SRC); do \
	    echo "nvcc -arch=$$arch $$f"; \
	    $(NVCC) $(NVCCFLAGS) $(NCCLFLAGS) -arch=$$arch -c $$f -o $(BUILD)/cuda/$$(basename $$f .cu)_$$arch.o; \
	  done; \
	  $(NVCC) $(NVCCFLAGS) -arch=$$arch tests/test_cuda.cu $(BUILD)/cuda/*_$$arch.o $(BUILD)/cuda/eff_impl.o \
	    -o $(BUILD)/cuda/test_cuda_$$arch $(CUDA_LIBS); \
	  if [ -n "$(NCCL_H)" ]; then \
	    echo "nvcc -arch=$$arch tests/test_nccl.cu"; \
	    $(NVCC) $(NVCCFLAGS) $(NCCLFLAGS) -arch=$$arch tests/test_nccl.cu $(BUILD)/cuda/*_$$arch.o $(BUILD)/cuda/eff_impl.o \
	      -o $(BUILD)/cuda/test_nccl_$$arch $(CUDA_LIBS); \
	  fi; \
	  if [ -n "$(MPI_LINK)" ]; then \
	    echo "nvcc -arch=$$arch -DEFF_MPI cuda/eff_nccl.cu tests/test_nccl.cu"; \
	    $(NVCC) $(NVCCFLAGS) $(NCCLFLAGS) -DEFF_MPI $(MPI_INC) -arch=$$arch -c cuda/eff_nccl.cu -o $(BUILD)/cuda/mpi/eff_nccl_$$arch.o; \
	    $(NVCC) $(NVCCFLAGS) $(NCCLFLAGS) -DEFF_MPI $(MPI_INC) -arch=$$arch tests/test_nccl.cu $(BUILD)/cuda/mpi/eff_nccl_$$arch.o \
	      $$(ls $(BUILD)/cuda/*_$$arch.o | grep -v '/eff_nccl_') $(BUILD)/cuda/mpi/eff_impl.o \
	      -o $(BUILD)/cuda/test_nccl_mpi_$$arch $(CUDA_LIBS) $(MPI_LINK); \
	  fi; \
	done
	@echo "cuda: compiled and linked for sm_80 and sm_90 (on a GPU run $(BUILD)/cuda/test_cuda_sm_80$(if $(NCCL_H), and $(BUILD)/cuda/test_nccl_sm_80$(if $(MPI_LINK), or mpirun -np N $(BUILD)/cuda/test_nccl_mpi_sm_80,),))"
else
	@echo "cuda: skipped (nvcc not found)"
endif

# ---- benchmarks, sanitizers, install -----------------------------------------
bench: $(BENCHES)
	@set -e; for b in $(BENCHES); do echo; ./$$b; done
	@$(MAKE) --no-print-directory bench-mpi

# bench_comm built with EFF_MPI under mpirun: eff's MPI backend next to raw MPI collectives
bench-mpi:
ifneq ($(and $(MPICC),$(MPIRUN)),)
	@mkdir -p $(BUILD)/bench
	$(MPICC) -DEFF_MPI $(BENCH_CFLAGS) -DEFF_BENCH_FLAGS='"$(BENCH_CFLAGS) -DEFF_MPI"' bench/bench_comm.c -o $(BUILD)/bench/bench_comm_mpi $(BENCH_LIBS)
	@echo; OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(MPIRUN) $(MPIRUN_FLAGS) -np 2 $(BUILD)/bench/bench_comm_mpi
else
	@echo "bench-mpi: skipped (mpicc/mpirun not found)"
endif

ASAN_FLAGS = -std=c99 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined $(ARCH) $(WARN) -I. -Itests
asan:
	@mkdir -p $(BUILD)/asan
	@set -e; for s in $(TEST_SRC); do \
	  b=$(BUILD)/asan/$$(basename $$s .c); \
	  $(CC) $(ASAN_FLAGS) $$s -o $$b $(LDLIBS); \
	  echo; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 EFF_TEST_QUICK=1 ./$$b; \
	done
	@echo "asan: all tests clean under ASan + UBSan"

install:
	install -d $(DESTDIR)$(PREFIX)/include
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/

clean:
	rm -rf $(BUILD)
