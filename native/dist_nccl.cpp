// c10d::ProcessGroupNCCL, for CUDA training across processes. libtorch_cuda has it compiled in; its
// header needs nccl.h and the CUDA runtime headers, which the torch wheel's own dependencies
// (nvidia-nccl-cu13, the CUDA runtime wheel) ship under site-packages/nvidia/*/include.
// CMakeLists.txt compiles this file with them (and DOVE_HAVE_NCCL) when it finds them; otherwise
// the nccl backend reports that it is not compiled in.
#include "dist_group.h"

#ifdef DOVE_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace dove {

bool ncclCompiledIn() {
#ifdef DOVE_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

void checkNcclUsable() {
  DOVE_CHECK(ncclCompiledIn(), "DISTRIBUTED_ERROR",
             "the nccl backend is not compiled into this addon (its build found no nccl.h / cuda_runtime.h under the "
             "torch wheel's site-packages/nvidia/*/include); use backend 'gloo'");
  DOVE_CHECK(torch::cuda::is_available(), "DEVICE_UNAVAILABLE", "the nccl backend needs a CUDA device; this process sees none");
}

c10::intrusive_ptr<c10d::Backend> createNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int worldSize,
                                                    std::chrono::milliseconds timeout, c10::Device& device) {
#ifdef DOVE_HAVE_NCCL
  checkNcclUsable();
  // One GPU per rank: the current device (the launcher's LOCAL_RANK picks it, as torchrun does).
  device = c10::Device(c10::kCUDA, c10::cuda::current_device());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, worldSize, options);
#else
  (void)store;
  (void)rank;
  (void)worldSize;
  (void)timeout;
  (void)device;
  checkNcclUsable();
  fail("INTERNAL", "unreachable: checkNcclUsable passed without NCCL");
#endif
}

}  // namespace dove
