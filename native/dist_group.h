// Process groups (c10d) shared by dist_gloo.cpp (construction, JS surface) and train_engine.cpp
// (gradient all-reduce). Only c10d's Backend interface appears here, so files including this header
// compile whether or not the build found gloo's headers.
#pragma once

#include "common.h"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace dove {

struct ProcessGroupHandle {
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank = 0;
  int worldSize = 1;
  std::string backendName;
  std::chrono::milliseconds timeout{60000};
  // Where the group's tensors live: CPU for Gloo, the rank's GPU for NCCL (barrier's tensor).
  c10::Device device{c10::kCPU};
  // Collectives on one group must be issued in the same order on every rank; this serialises them
  // within a process (JS may start an allReduce while a training step all-reduces gradients).
  std::mutex mutex;
  bool disposed = false;
};

// Throws DoveException INVALID_ARGUMENT (not a process group) / DISPOSED.
std::shared_ptr<ProcessGroupHandle> unwrapProcessGroup(Napi::Value value);

// dist_nccl.cpp: whether ProcessGroupNCCL was compiled in, and its construction (sets `device` to
// the rank's GPU). Throws DISTRIBUTED_ERROR when it was not compiled in, DEVICE_UNAVAILABLE without CUDA.
bool ncclCompiledIn();
// Throws DISTRIBUTED_ERROR (not compiled in) or DEVICE_UNAVAILABLE (no CUDA) before any rendezvous.
void checkNcclUsable();
c10::intrusive_ptr<c10d::Backend> createNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int worldSize,
                                                    std::chrono::milliseconds timeout, c10::Device& device);

// Sums `flat` (one contiguous tensor) over all ranks in place and divides by the world size.
// Any failure (dead peer, timeout) becomes DoveException DISTRIBUTED_ERROR naming the group.
void allReduceMeanInPlace(ProcessGroupHandle& group, at::Tensor& flat);

}  // namespace dove
