// Addon entry point: builds the exports object from every source file's self-registered init and
// owns the per-env state (napi instance data).
#include "common.h"

namespace dove {

std::vector<ExportInit>& exportInits() {
  // Function-local static: registrars in other translation units run during static
  // initialisation in unspecified order, so the list must exist before the first of them.
  static std::vector<ExportInit> inits;
  return inits;
}

AddonState& addonState(Napi::Env env) {
  AddonState* state = env.GetInstanceData<AddonState>();
  if (state == nullptr) {
    // Napi deletes the state when the env is torn down (worker thread exit or process exit).
    auto owned = std::make_unique<AddonState>();
    owned->jsThread = std::this_thread::get_id();
    state = owned.get();
    env.SetInstanceData<AddonState>(owned.release());
  }
  return *state;
}

}  // namespace dove

namespace {

Napi::Object InitDove(Napi::Env env, Napi::Object exports) {
  dove::addonState(env);
  for (dove::ExportInit init : dove::exportInits()) init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(dove, InitDove)
