// libcupti.so.13 stub: the CUPTI calls libtorch_cpu.so (Kineto's GPU profiler) makes. Without the
// real library every call fails with CUPTI_ERROR_NOT_INITIALIZED, so GPU activity profiling is
// unavailable and CPU profiling is unaffected. See forward.h.
#include <cstddef>
#include <cstdint>

#include "forward.h"

namespace {
constexpr const char* kLibrary = "libcupti.so.13";
constexpr int kNotInitialized = 15;  // CUPTI_ERROR_NOT_INITIALIZED (cupti_result.h)
}  // namespace

// CUPTI's handle and callback types, reduced to what the calling convention sees.
using Handle = void*;
using Callback = void (*)();

// A call that only forwards: without the real library it fails with CUPTI_ERROR_NOT_INITIALIZED.
#define CUPTI_STUB(fn, params, ...) DOVE_STUB(kLibrary, kNotInitialized, fn, params, __VA_ARGS__)

CUPTI_STUB(cuptiActivityDisable, (int kind), kind)
CUPTI_STUB(cuptiActivityEnable, (int kind), kind)
CUPTI_STUB(cuptiActivityEnableCudaEventDeviceTimestamps, (uint8_t enable), enable)
CUPTI_STUB(cuptiActivityEnableDriverApi, (uint32_t callbackId, uint8_t enable), callbackId, enable)
CUPTI_STUB(cuptiActivityEnableRuntimeApi, (uint32_t callbackId, uint8_t enable), callbackId, enable)
CUPTI_STUB(cuptiActivityFlushAll, (uint32_t flag), flag)
CUPTI_STUB(cuptiActivityGetNextRecord, (uint8_t* buffer, size_t validBytes, void** record), buffer, validBytes, record)
DOVE_STUB_API int cuptiActivityGetNumDroppedRecords(Handle context, uint32_t streamId, size_t* dropped) {
  DOVE_FORWARD(kLibrary, cuptiActivityGetNumDroppedRecords, context, streamId, dropped);
  if (dropped != nullptr) *dropped = 0;
  return kNotInitialized;
}
CUPTI_STUB(cuptiActivityPopExternalCorrelationId, (int kind, uint64_t* lastId), kind, lastId)
CUPTI_STUB(cuptiActivityPushExternalCorrelationId, (int kind, uint64_t id), kind, id)
CUPTI_STUB(cuptiActivityRegisterCallbacks, (Callback requested, Callback completed), requested, completed)
CUPTI_STUB(cuptiActivityRegisterTimestampCallback, (Callback timestamp), timestamp)
CUPTI_STUB(cuptiActivitySetAttribute, (int attribute, size_t* valueSize, void* value), attribute, valueSize, value)
CUPTI_STUB(cuptiEnableCallback, (uint32_t enable, Handle subscriber, int domain, uint32_t callbackId), enable, subscriber,
           domain, callbackId)
CUPTI_STUB(cuptiEnableDomain, (uint32_t enable, Handle subscriber, int domain), enable, subscriber, domain)
CUPTI_STUB(cuptiFinalize, ())
DOVE_STUB_API int cuptiGetResultString(int result, const char** text) {
  DOVE_FORWARD(kLibrary, cuptiGetResultString, result, text);
  if (text == nullptr) return 1;  // CUPTI_ERROR_INVALID_PARAMETER
  *text = result == 0 ? "CUPTI_SUCCESS"
                      : "CUPTI not loaded (dove-encoder's CPU stand-in for libcupti.so.13)";
  return 0;
}
CUPTI_STUB(cuptiGetVersion, (uint32_t* version), version)
CUPTI_STUB(cuptiSubscribe, (Handle* subscriber, Callback callback, void* userData), subscriber, callback, userData)
CUPTI_STUB(cuptiUnsubscribe, (Handle subscriber), subscriber)
