// dove_nccl.so: c10d::ProcessGroupNCCL for the addon, built as a library of its own. ProcessGroupNCCL
// lives in libtorch_cuda.so, and the addon links only libtorch's CPU libraries (a CPU process maps no
// CUDA library; docs/PACKAGING.md). native/dist_nccl.cpp opens this file with dlopen once
// lib/core/cuda-libtorch.ts has loaded libtorch_cuda.so and a 'nccl' group is asked for.
// ProcessGroupNCCL's header needs nccl.h and the CUDA runtime headers, which the torch wheel's own
// dependencies (nvidia-nccl-cu13, the CUDA runtime wheel) ship under site-packages/nvidia/*/include;
// CMakeLists.txt builds this file when it finds them.
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>
#include <cstdint>

// One NCCL backend for `rank` of `worldSize` on the current CUDA device (the launcher's LOCAL_RANK
// picks it, as torchrun does), which it writes to `deviceIndex`. Returns an owning pointer (reference
// count 1) for c10::intrusive_ptr<c10d::Backend>::reclaim. Exceptions (c10::Error) reach the caller,
// which links the same libc10 / libstdc++.
extern "C" __attribute__((visibility("default"))) c10d::Backend* dove_nccl_create_backend(
    const c10::intrusive_ptr<c10d::Store>* store, int rank, int worldSize, int64_t timeoutMs, int* deviceIndex) {
  *deviceIndex = c10::cuda::current_device();
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = std::chrono::milliseconds(timeoutMs);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(*store, rank, worldSize, options).release();
}
