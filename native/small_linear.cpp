// dove::linear: a float32 linear for few rows, called by the batch-1 models of a compiled package
// (python/dove/aoti_export.py, docs/MODEL_FORMAT.md "Batch-1 models") through its proxy executor.
//
// At 64 rows (tiny's tokens at batch 1) oneDNN's prepacked linear spends 8-12 us a call on set-up
// (primitive descriptor, attributes, scratchpad) before a GEMM of a few microseconds; libtorch's
// exported brgemm (oneDNN's micro-kernel, fetched from a cache by shape) has none of it. The weight
// arrives packed by dove.small_linear.pack_weight: [ceil(N/64), K, 64], column blocks of 64 with
// the last padded with zeros, so each micro-kernel call reads one contiguous K x 64 panel.
//
// This file is built twice: into the addon, and by Python (torch.utils.cpp_extension) where packages
// are compiled and timed. It includes nothing of the addon. A package is untrusted input, so every
// size and dtype is checked before a pointer is read.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <vector>

namespace {

constexpr int64_t kBlockCols = 64;  // also pack_weight's block (python/dove/small_linear.py)
constexpr int64_t kBlockRows = 64;
constexpr int64_t kMinBlockRows = 16;

at::Tensor smallLinear(const at::Tensor& input, const at::Tensor& packed, const std::optional<at::Tensor>& bias,
                       int64_t outFeatures) {
  TORCH_CHECK(input.device().is_cpu() && packed.device().is_cpu(), "dove::linear runs on the CPU only");
  TORCH_CHECK(input.scalar_type() == at::kFloat && packed.scalar_type() == at::kFloat,
              "dove::linear takes float32 input and weight, received ", input.scalar_type(), " and ", packed.scalar_type());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) >= 1, "dove::linear: input needs a last dimension of at least 1, received ",
              input.sizes());
  const int64_t K = input.size(-1);
  const int64_t N = outFeatures;
  const int64_t blocks = (N + kBlockCols - 1) / kBlockCols;
  TORCH_CHECK(N >= 1, "dove::linear: out_features must be at least 1, received ", N);
  TORCH_CHECK(packed.dim() == 3 && packed.size(0) == blocks && packed.size(1) == K && packed.size(2) == kBlockCols,
              "dove::linear: expected a packed weight of [", blocks, ", ", K, ", ", kBlockCols, "] for ", K, " -> ", N,
              ", received ", packed.sizes());
  if (bias.has_value()) {
    TORCH_CHECK(bias->device().is_cpu() && bias->scalar_type() == at::kFloat && bias->dim() == 1 && bias->size(0) == N,
                "dove::linear: expected a float32 bias of [", N, "], received ", bias->scalar_type(), bias->sizes());
  }
  const at::Tensor weight = packed.contiguous();
  const at::Tensor rows = input.reshape({-1, K}).contiguous();
  const int64_t M = rows.size(0);
  std::vector<int64_t> outShape(input.sizes().begin(), input.sizes().end());
  outShape.back() = N;
  at::Tensor out = at::empty({M, N}, input.options());
  if (M == 0) return out.view(outShape);

  const at::Tensor biasValues = bias.has_value() ? bias->contiguous() : at::Tensor();
  const float* A = rows.const_data_ptr<float>();
  const float* B = weight.const_data_ptr<float>();
  const float* b = bias.has_value() ? biasValues.const_data_ptr<float>() : nullptr;
  float* C = out.data_ptr<float>();
  // Whole tiles per thread: with 3 column blocks of 64 rows on 2 threads one thread idles a third of
  // the call (tiny's 64->192 linears, its 192-channel convolutions), so halve the rows per tile until
  // the threads divide the tiles or there are enough that the remainder hardly matters.
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  int64_t rowsPerTile = kBlockRows;
  auto tilesOf = [&](int64_t rows) { return ((M + rows - 1) / rows) * blocks; };
  while (rowsPerTile > kMinBlockRows && tilesOf(rowsPerTile) % threads != 0 && tilesOf(rowsPerTile) < 8 * threads) rowsPerTile /= 2;
  const int64_t rowBlocks = (M + rowsPerTile - 1) / rowsPerTile;
  // Row blocks outermost: a thread's consecutive tiles reuse the same rows of A (64 x K) from cache
  // while the weight panels stream; the other order re-read A once per column block (bench at 1024+ rows).
  at::parallel_for(0, rowBlocks * blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t tile = first; tile < last; ++tile) {
      const int64_t i = tile / blocks, j = tile % blocks;
      const int64_t m0 = i * rowsPerTile, m = std::min(rowsPerTile, M - m0);
      const int64_t n0 = j * kBlockCols, n = std::min(kBlockCols, N - n0);
      float* tileC = C + m0 * N + n0;
      // The micro-kernel accumulates into the tile (add_C), which starts as the bias: written here, per
      // tile, while it is in cache (a broadcast copy of the whole output first cost more than the GEMM).
      if (b != nullptr) {
        for (int64_t r = 0; r < m; ++r) std::copy(b + n0, b + n0 + n, tileC + r * N);
      }
      at::native::cpublas::brgemm(m, n, K, K, kBlockCols, N, b != nullptr, A + m0 * K, B + j * K * kBlockCols, tileC, false);
    }
    at::native::cpublas::brgemm_release(false);
  });
  return out.view(outShape);
}

// Registered at load by a static object rather than TORCH_LIBRARY: a second copy of this library in
// one process (two builds of the addon, or a copy of it, as test/native/crossing.test.ts loads) would
// register the namespace again, which libtorch refuses by throwing from a static initializer, and that
// aborts the process. The second copy finds the operator and leaves the first copy's in place.
struct Registration {
  Registration() {
    try {
      if (c10::Dispatcher::singleton().findSchema({"dove::linear", ""}).has_value()) return;
      schema.emplace(torch::Library::DEF, "dove", std::nullopt, __FILE__, __LINE__);
      // needs_contiguous_strides: inductor hands the operator row-major inputs. Without it, it chose a
      // transposed layout for some buffers feeding it (the GELU before tiny's 1024->256 linear), which
      // the operator then copied: 48 us a call, more than the GEMM.
      schema->def("linear(Tensor input, Tensor packed_weight, Tensor? bias, int out_features) -> Tensor",
                  {at::Tag::needs_contiguous_strides});
      kernel.emplace(torch::Library::IMPL, "dove", c10::DispatchKey::CPU, __FILE__, __LINE__);
      kernel->impl("linear", smallLinear);
    } catch (const std::exception&) {
      // Nothing may escape a static initializer. Without the operator a package's batch-1 models
      // fail to load with libtorch's error naming dove::linear, and the runtime runs TorchScript.
      kernel.reset();
      schema.reset();
    }
  }
  std::optional<torch::Library> schema;
  std::optional<torch::Library> kernel;
};

const Registration registration;

}  // namespace
