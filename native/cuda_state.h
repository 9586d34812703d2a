// Whether libtorch's CUDA half (libtorch_cuda.so) is loaded. The addon links only the CPU
// libraries; lib/core/cuda-libtorch.ts loads libtorch_cuda.so when a CUDA device is asked for and then
// calls cudaLoaded() (runtime.cpp). Until then nothing here may touch libtorch's CUDA hooks:
// libtorch looks them up once per process (at::detail::getCUDAHooks), so an early look would
// leave CUDA off for good.
#pragma once

namespace dove {

bool cudaLibtorchLoaded();

}  // namespace dove
