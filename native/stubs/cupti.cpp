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

DOVE_STUB_API int cuptiActivityDisable(int kind) {
  DOVE_FORWARD(kLibrary, cuptiActivityDisable, kind);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityEnable(int kind) {
  DOVE_FORWARD(kLibrary, cuptiActivityEnable, kind);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityEnableCudaEventDeviceTimestamps(uint8_t enable) {
  DOVE_FORWARD(kLibrary, cuptiActivityEnableCudaEventDeviceTimestamps, enable);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityEnableDriverApi(uint32_t callbackId, uint8_t enable) {
  DOVE_FORWARD(kLibrary, cuptiActivityEnableDriverApi, callbackId, enable);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityEnableRuntimeApi(uint32_t callbackId, uint8_t enable) {
  DOVE_FORWARD(kLibrary, cuptiActivityEnableRuntimeApi, callbackId, enable);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityFlushAll(uint32_t flag) {
  DOVE_FORWARD(kLibrary, cuptiActivityFlushAll, flag);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityGetNextRecord(uint8_t* buffer, size_t validBytes, void** record) {
  DOVE_FORWARD(kLibrary, cuptiActivityGetNextRecord, buffer, validBytes, record);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityGetNumDroppedRecords(Handle context, uint32_t streamId, size_t* dropped) {
  DOVE_FORWARD(kLibrary, cuptiActivityGetNumDroppedRecords, context, streamId, dropped);
  if (dropped != nullptr) *dropped = 0;
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityPopExternalCorrelationId(int kind, uint64_t* lastId) {
  DOVE_FORWARD(kLibrary, cuptiActivityPopExternalCorrelationId, kind, lastId);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityPushExternalCorrelationId(int kind, uint64_t id) {
  DOVE_FORWARD(kLibrary, cuptiActivityPushExternalCorrelationId, kind, id);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityRegisterCallbacks(Callback requested, Callback completed) {
  DOVE_FORWARD(kLibrary, cuptiActivityRegisterCallbacks, requested, completed);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivityRegisterTimestampCallback(Callback timestamp) {
  DOVE_FORWARD(kLibrary, cuptiActivityRegisterTimestampCallback, timestamp);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiActivitySetAttribute(int attribute, size_t* valueSize, void* value) {
  DOVE_FORWARD(kLibrary, cuptiActivitySetAttribute, attribute, valueSize, value);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiEnableCallback(uint32_t enable, Handle subscriber, int domain, uint32_t callbackId) {
  DOVE_FORWARD(kLibrary, cuptiEnableCallback, enable, subscriber, domain, callbackId);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiEnableDomain(uint32_t enable, Handle subscriber, int domain) {
  DOVE_FORWARD(kLibrary, cuptiEnableDomain, enable, subscriber, domain);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiFinalize() {
  DOVE_FORWARD(kLibrary, cuptiFinalize);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiGetResultString(int result, const char** text) {
  DOVE_FORWARD(kLibrary, cuptiGetResultString, result, text);
  if (text == nullptr) return 1;  // CUPTI_ERROR_INVALID_PARAMETER
  *text = result == 0 ? "CUPTI_SUCCESS"
                      : "CUPTI not loaded (dove-encoder's CPU stand-in for libcupti.so.13)";
  return 0;
}
DOVE_STUB_API int cuptiGetVersion(uint32_t* version) {
  DOVE_FORWARD(kLibrary, cuptiGetVersion, version);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiSubscribe(Handle* subscriber, Callback callback, void* userData) {
  DOVE_FORWARD(kLibrary, cuptiSubscribe, subscriber, callback, userData);
  return kNotInitialized;
}
DOVE_STUB_API int cuptiUnsubscribe(Handle subscriber) {
  DOVE_FORWARD(kLibrary, cuptiUnsubscribe, subscriber);
  return kNotInitialized;
}
