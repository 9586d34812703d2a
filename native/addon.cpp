// Addon entry point: builds the exports object from each source file's init, listed here, and
// owns the per-env state (napi instance data).
#include "common.h"

namespace dove {

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
  for (auto init : {dove::initErrors, dove::initTensors, dove::initRuntime, dove::initModules, dove::initCompiled,
                    dove::initTrainEngine, dove::initProcessGroups, dove::initModelInspect, dove::initEvalFid,
                    dove::initEvalProbe}) {
    init(env, exports);
  }
  return exports;
}

}  // namespace

NODE_API_MODULE(dove, InitDove)
