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

namespace dove {

struct ProcessGroupHandle {
  c10::intrusive_ptr<c10d::Backend> backend;
  // The rendezvous store, also used to name what differs when ranks disagree (agree below).
  c10::intrusive_ptr<c10d::Store> store;
  int64_t agreements = 0;  // disagreements explained so far (the same count on every rank)
  int rank = 0;
  int worldSize = 1;
  std::string backendName;
  std::chrono::milliseconds timeout{60000};
  // Where the group's tensors live: CPU for Gloo, the rank's GPU for NCCL (barrier's tensor).
  c10::Device device{c10::kCPU};
  // Collectives on one group must be issued in the same order on every rank; this serialises them
  // within a process (JS may start an allReduce while a training step all-reduces gradients).
  std::mutex mutex;
  // Set by dispose() on the JS thread; whoever holds `mutex` then closes the backend.
  std::atomic<bool> disposed{false};
  void releaseIfDisposed() {
    if (!disposed) return;
    backend.reset();  // joins Gloo's worker threads and closes its sockets
    store.reset();
  }
};

// Throws DoveException INVALID_ARGUMENT (not a process group) / DISPOSED.
std::shared_ptr<ProcessGroupHandle> unwrapProcessGroup(Napi::Value value);

// dist_nccl.cpp: whether the nccl backend was built (dove_nccl.so beside the addon: ProcessGroupNCCL
// lives in libtorch_cuda.so, which the addon does not link), and its construction (sets `device` to
// the rank's GPU).
bool ncclCompiledIn();
// Throws DISTRIBUTED_ERROR (not compiled in) or DEVICE_UNAVAILABLE (no CUDA) before any rendezvous.
void checkNcclUsable();
c10::intrusive_ptr<c10d::Backend> createNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int worldSize,
                                                    std::chrono::milliseconds timeout, c10::Device& device);

// Every rank passes its own `description` of what it is about to do (the tensors of a collective,
// its parameter list); the ranks compare hashes of them with a fixed-size all-reduce before the real
// collective reaches Gloo, which aborts the process (gloo::EnforceNotMet, SIGABRT) when ranks pass
// tensors of different sizes. On a difference the descriptions go through the store and every rank
// throws DoveException DISTRIBUTED_ERROR naming the first rank that differs from rank 0 and the
// first differing line; a peer that does not answer is DISTRIBUTED_ERROR too. Call it with the
// group's mutex held.
void agree(ProcessGroupHandle& group, const std::string& what, const std::string& description);

// Sums `flat` (one contiguous tensor) over all ranks in place and divides by the world size.
// Any failure (dead peer, timeout) becomes DoveException DISTRIBUTED_ERROR naming the group.
void allReduceMeanInPlace(ProcessGroupHandle& group, at::Tensor& flat);

}  // namespace dove
