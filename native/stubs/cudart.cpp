// libcudart.so.13 stub: the six CUDA runtime calls libtorch_cpu.so (Kineto's GPU profiler) makes.
// Without the real runtime it answers like cudart on a machine with no NVIDIA driver: no device,
// cudaErrorInsufficientDriver. See forward.h.
#include "forward.h"

namespace {
constexpr const char* kLibrary = "libcudart.so.13";
constexpr int kErrorInsufficientDriver = 35;  // cudaErrorInsufficientDriver (driver_types.h)
}  // namespace

struct cudaDeviceProp;

DOVE_STUB(kLibrary, kErrorInsufficientDriver, cudaDeviceSynchronize, ())

DOVE_STUB_API int cudaDriverGetVersion(int* version) {
  DOVE_FORWARD(kLibrary, cudaDriverGetVersion, version);
  if (version != nullptr) *version = 0;  // what cudart reports when no driver is installed
  return 0;
}

DOVE_STUB_API int cudaRuntimeGetVersion(int* version) {
  DOVE_FORWARD(kLibrary, cudaRuntimeGetVersion, version);
  if (version != nullptr) *version = 0;
  return kErrorInsufficientDriver;
}

DOVE_STUB_API int cudaGetDeviceCount(int* count) {
  DOVE_FORWARD(kLibrary, cudaGetDeviceCount, count);
  if (count != nullptr) *count = 0;
  return kErrorInsufficientDriver;
}

DOVE_STUB(kLibrary, kErrorInsufficientDriver, cudaGetDeviceProperties, (cudaDeviceProp* properties, int device), properties,
          device)

DOVE_STUB_API const char* cudaGetErrorString(int error) {
  DOVE_FORWARD(kLibrary, cudaGetErrorString, error);
  return error == 0 ? "no error"
                    : "CUDA runtime not loaded (dove-encoder's CPU stand-in for libcudart.so.13)";
}
