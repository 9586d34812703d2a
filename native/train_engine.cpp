// createTrainEngine: trains a loaded TorchScript module in place. AdamW over the module's own
// parameters (grouped by name prefix), warm-up + cosine schedule, gradient accumulation, optional
// c10d gradient averaging, global-norm clipping, bf16 autocast on CUDA. Every step runs on a worker
// thread holding the module mutex, so inference calls on the same module never interleave with it;
// the JS thread never takes that mutex (a step or a run may hold it for seconds).
#include "atomic_file.h"
#include "common.h"
#include "cpu_block_cache.h"
#include "dist_group.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/serialize.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace dove {
namespace {

struct GroupSpec {
  std::vector<std::string> prefixes;
  double lrScale = 1.0;
  double weightDecay = 0.0;
};

struct EngineOptions {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  std::vector<GroupSpec> groups;
  double weightDecay = 0.01;
  int64_t warmupSteps = 0;
  int64_t totalSteps = 1;
  double minLrRatio = 0.0;
  double clipGradNorm = 0.0;
  int64_t accumulate = 1;
  bool autocastBf16 = false;
  uint64_t seed = 0;
};

struct Engine {
  std::shared_ptr<ModuleHandle> module;
  EngineOptions options;
  std::vector<at::Tensor> params;  // trainable parameters, in named_parameters order
  std::vector<double> groupScales;  // lr multiplier per optimizer param group
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::atomic<int64_t> step{0};  // written under the module mutex, read by the JS thread
  int64_t micro = 0;  // micro-batches accumulated towards the next optimizer step
  // Sums over the micro-batches of the forward's scalar entries, kept on the module's device: they
  // are read back once per call, together with the gradient norm (one device sync per step).
  std::map<std::string, at::Tensor> partSums;
  // Set by dispose() on the JS thread. The optimizer state is freed by whoever holds the module
  // mutex then: dispose() itself when the module is idle, else the step or save that holds it.
  std::atomic<bool> disposed{false};
  void releaseIfDisposed() {
    if (!disposed) return;
    optimizer.reset();  // frees the Adam moments (2x the parameter memory)
    params.clear();
    partSums.clear();
  }
};
// Holds the module mutex for a job on a worker thread, and frees the engine's state on the way out
// when dispose() came while the job held it.
struct EngineLock {
  Engine& e;
  std::lock_guard<std::mutex> lock;
  explicit EngineLock(Engine& engine) : e(engine), lock(engine.module->mutex) {
    DOVE_CHECK(!e.disposed, "DISPOSED", "train engine used after dispose()");
  }
  ~EngineLock() { e.releaseIfDisposed(); }
};
using EnginePtr = std::shared_ptr<Engine>;

struct StepOutput {
  std::map<std::string, double> parts;
  double lr = 0;
  double gradNorm = 0;
  int64_t step = 0;
  bool accumulated = false;
};

EngineOptions parseOptions(Napi::Object o) {
  EngineOptions opt;
  opt.lr = numberIn(o.Get("lr"), "lr", 0, 10);
  Napi::Value betas = o.Get("betas");
  DOVE_CHECK(betas.IsArray() && betas.As<Napi::Array>().Length() == 2, "INVALID_ARGUMENT",
             "Expected [beta1, beta2] for betas but received " + betas.ToString().Utf8Value());
  opt.beta1 = numberIn(betas.As<Napi::Object>().Get(uint32_t(0)), "beta1", 0, 0.999999);
  opt.beta2 = numberIn(betas.As<Napi::Object>().Get(uint32_t(1)), "beta2", 0, 0.999999);
  opt.eps = numberIn(o.Get("eps"), "eps", 1e-30, 1);
  opt.weightDecay = numberIn(o.Get("weightDecay"), "weightDecay", 0, 10);
  opt.warmupSteps = integerIn(o.Get("warmupSteps"), "warmupSteps", 0, 1e12);
  opt.totalSteps = integerIn(o.Get("totalSteps"), "totalSteps", 1, 1e12);
  opt.minLrRatio = numberIn(o.Get("minLrRatio"), "minLrRatio", 0, 1);
  opt.clipGradNorm = numberIn(o.Get("clipGradNorm"), "clipGradNorm", 0, 1e12);
  opt.accumulate = integerIn(o.Get("accumulate"), "accumulate", 1, 1e6);
  opt.autocastBf16 = booleanArg(o.Get("autocastBf16"), "autocastBf16");
  opt.seed = static_cast<uint64_t>(integerIn(o.Get("seed"), "seed", 0, 9007199254740991.0));
  Napi::Value groups = o.Get("groups");
  DOVE_CHECK(groups.IsArray(), "INVALID_ARGUMENT", "Expected an array for groups but received " + groups.ToString().Utf8Value());
  Napi::Array arr = groups.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value g = arr.Get(i);
    std::string where = "groups[" + std::to_string(i) + "]";
    DOVE_CHECK(g.IsObject(), "INVALID_ARGUMENT", "Expected an object for " + where);
    Napi::Object go = g.As<Napi::Object>();
    GroupSpec spec;
    Napi::Value prefixes = go.Get("prefixes");
    DOVE_CHECK(prefixes.IsArray(), "INVALID_ARGUMENT", "Expected an array of strings for " + where + ".prefixes");
    Napi::Array pa = prefixes.As<Napi::Array>();
    for (uint32_t j = 0; j < pa.Length(); ++j) {
      DOVE_CHECK(pa.Get(j).IsString(), "INVALID_ARGUMENT", "Expected an array of strings for " + where + ".prefixes");
      spec.prefixes.push_back(pa.Get(j).As<Napi::String>().Utf8Value());
    }
    spec.lrScale = numberIn(go.Get("lrScale"), "lrScale", 0, 1e6);
    spec.weightDecay = numberIn(go.Get("weightDecay"), "weightDecay", 0, 10);
    opt.groups.push_back(std::move(spec));
  }
  return opt;
}

// Linear warm-up to lr, then cosine decay to minLrRatio·lr at totalSteps (held there after).
double scheduledLr(const EngineOptions& o, int64_t step) {
  if (o.warmupSteps > 0 && step < o.warmupSteps) return o.lr * double(step + 1) / double(o.warmupSteps);
  int64_t span = std::max<int64_t>(1, o.totalSteps - o.warmupSteps);
  double progress = std::min(1.0, double(step - o.warmupSteps) / double(span));
  double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.lr * (o.minLrRatio + (1.0 - o.minLrRatio) * cosine);
}

EnginePtr buildEngine(std::shared_ptr<ModuleHandle> module, EngineOptions options) {
  auto engine = std::make_shared<Engine>();
  engine->module = module;
  engine->options = std::move(options);
  const auto& opt = engine->options;
  // JS thread, without the module mutex: method lookup and the parameter list only read the
  // module's type and slots, as a running method does (module_wrap.cpp, Parameters).
  DOVE_CHECK(module->module.find_method("forward").has_value(), "METHOD_NOT_FOUND",
             "the module has no forward method; training needs forward(...) -> Dict[str, Tensor] with 'loss'");

  // One bucket per spec plus the default bucket; the first matching spec wins.
  std::vector<std::vector<at::Tensor>> buckets(opt.groups.size() + 1);
  for (const auto& named : module->module.named_parameters(/*recurse=*/true)) {
    if (!named.value.requires_grad()) continue;
    const auto matches = [&](const GroupSpec& spec) {
      return std::any_of(spec.prefixes.begin(), spec.prefixes.end(),
                         [&](const std::string& prefix) { return named.name.rfind(prefix, 0) == 0; });
    };
    buckets[std::find_if(opt.groups.begin(), opt.groups.end(), matches) - opt.groups.begin()].push_back(named.value);
    engine->params.push_back(named.value);
  }
  DOVE_CHECK(!engine->params.empty(), "INVALID_ARGUMENT", "the module has no trainable parameters");

  auto defaults = torch::optim::AdamWOptions(opt.lr).betas({opt.beta1, opt.beta2}).eps(opt.eps).weight_decay(opt.weightDecay);
  std::vector<torch::optim::OptimizerParamGroup> paramGroups;
  for (size_t g = 0; g < buckets.size(); ++g) {
    // Empty groups are kept out: their presence would make saved states depend on specs that
    // matched nothing.
    if (buckets[g].empty()) continue;
    bool isDefault = g == opt.groups.size();
    double scale = isDefault ? 1.0 : opt.groups[g].lrScale;
    double decay = isDefault ? opt.weightDecay : opt.groups[g].weightDecay;
    auto groupOptions = std::make_unique<torch::optim::AdamWOptions>(defaults);
    groupOptions->lr(opt.lr * scale).weight_decay(decay);
    paramGroups.emplace_back(buckets[g], std::move(groupOptions));
    engine->groupScales.push_back(scale);
  }
  engine->optimizer = std::make_unique<torch::optim::AdamW>(std::move(paramGroups), defaults);
  // Seeds the CPU generator the module's stochastic choices (training lengths) draw from.
  torch::manual_seed(opt.seed);
  return engine;
}

// Restores the autocast thread-locals however the step ends.
struct AutocastScope {
  bool active;
  bool prevEnabled = false;
  at::ScalarType prevType = at::kHalf;
  explicit AutocastScope(bool on) : active(on) {
    if (!active) return;
    prevEnabled = at::autocast::is_autocast_enabled(at::kCUDA);
    prevType = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  }
  ~AutocastScope() {
    if (!active) return;
    at::autocast::set_autocast_enabled(at::kCUDA, prevEnabled);
    at::autocast::set_autocast_dtype(at::kCUDA, prevType);
    at::autocast::clear_cache();
  }
};

// AdamW::step()'s update as one fused kernel per parameter group and step count (aten's
// _fused_adamw_, the kernel behind torch.optim.AdamW(fused=True)): every parameter is read and
// written once per step. The multi-tensor form runs about ten passes over the weights: 11.8 ms per
// update for tiny's 7.1 M parameters against 3.3 ms fused (bench/train/adamw.py, 2 threads), of a
// step of about 40 ms; on a GPU one launch per group instead of ten per parameter. Same formula and the same state objects as
// torch::optim::AdamW, so saved optimizer states load either way. A bucket with a non-contiguous
// tensor (the fused kernel walks flat memory) takes the multi-tensor (_foreach) form of the formula.
// `clipCoef` (a device scalar, or undefined for none) scales the gradients first, as clipping does;
// the fused kernel applies it while it reads them (as 1 / its grad_scale), saving a pass over them.
void adamwStep(torch::optim::AdamW& optimizer, const at::Tensor& clipCoef) {
  struct Bucket {
    std::vector<at::Tensor> params, grads, avg, avgSq;
    bool dense = true;
  };
  torch::NoGradGuard noGrad;
  auto& state = optimizer.state();
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas());
    const double beta2 = std::get<1>(o.betas());
    // Bias corrections depend on each parameter's own step count; parameters share one unless
    // some of them had no gradient in earlier steps.
    std::map<int64_t, Bucket> byStep;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto found = state.find(p.unsafeGetTensorImpl());
      if (found == state.end()) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        found = state.emplace(p.unsafeGetTensorImpl(), std::move(fresh)).first;
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*found->second);
      st.step(st.step() + 1);
      Bucket& b = byStep[st.step()];
      b.params.push_back(p);
      b.grads.push_back(p.grad());
      b.avg.push_back(st.exp_avg());
      b.avgSq.push_back(st.exp_avg_sq());
      b.dense = b.dense && p.is_floating_point() && p.is_contiguous() && p.grad().is_contiguous() &&
                st.exp_avg().is_contiguous() && st.exp_avg_sq().is_contiguous() &&
                p.grad().scalar_type() == p.scalar_type();
    }
    for (auto& [step, b] : byStep) {
      const c10::Device device = b.params.front().device();
      if (b.dense && (device.is_cpu() || device.is_cuda())) {
        // The kernel reads each parameter's step from a float tensor on its device.
        auto steps = torch::full({}, double(step), torch::dtype(at::kFloat).device(device));
        const std::vector<at::Tensor> stepList(b.params.size(), steps);
        std::optional<at::Tensor> gradScale;
        if (clipCoef.defined()) gradScale = clipCoef.to(at::kFloat).reciprocal();
        at::_fused_adamw_(b.params, b.grads, b.avg, b.avgSq, {}, stepList, o.lr(), beta1, beta2, o.weight_decay(),
                          o.eps(), /*amsgrad=*/false, /*maximize=*/false, gradScale);
        continue;
      }
      if (clipCoef.defined()) at::_foreach_mul_(b.grads, clipCoef);
      if (o.weight_decay() != 0) at::_foreach_mul_(b.params, 1 - o.lr() * o.weight_decay());
      const double correction1 = 1 - std::pow(beta1, double(step));
      const double correction2 = 1 - std::pow(beta2, double(step));
      at::_foreach_mul_(b.avg, beta1);
      at::_foreach_add_(b.avg, b.grads, 1 - beta1);
      at::_foreach_mul_(b.avgSq, beta2);
      at::_foreach_addcmul_(b.avgSq, b.grads, b.grads, 1 - beta2);
      auto denom = at::_foreach_sqrt(b.avgSq);
      at::_foreach_div_(denom, std::sqrt(correction2));
      at::_foreach_add_(denom, o.eps());
      at::_foreach_addcdiv_(b.params, b.avg, denom, -o.lr() / correction1);
    }
  }
}

// The logged scalars as one float64 vector on the device, in partSums' (name) order.
at::Tensor stackedParts(const Engine& e) {
  std::vector<at::Tensor> values;
  for (const auto& [name, sum] : e.partSums) values.push_back(sum.reshape({}));
  if (values.empty()) return torch::zeros({0}, torch::dtype(at::kDouble).device(e.module->device));
  return torch::stack(values);
}

// Averages gradients (and the logged loss parts) over the process group in one all-reduce, so
// every rank steps with the gradient of the global batch. The parts stay on the device.
void averageOverGroup(Engine& e, ProcessGroupHandle& group) {
  std::vector<at::Tensor> flat;
  flat.reserve(e.params.size() + 1);
  for (auto& p : e.params) {
    // Every rank contributes the same layout; a parameter unused this step counts as zero.
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    flat.push_back(p.grad().reshape(-1).to(at::kFloat));
  }
  const at::Tensor parts = stackedParts(e);
  flat.push_back(parts.to(at::kFloat).to(e.params[0].device()));
  at::Tensor buffer = torch::cat(flat);
  allReduceMeanInPlace(group, buffer);
  int64_t offset = 0;
  for (auto& p : e.params) {
    int64_t n = p.numel();
    p.mutable_grad().copy_(buffer.narrow(0, offset, n).view_as(p));
    offset += n;
  }
  at::Tensor tail = buffer.narrow(0, offset, parts.numel()).to(at::kDouble);
  int64_t i = 0;
  for (auto& [name, sum] : e.partSums) sum = tail[i++].to(sum.device());
}

// `group`: the process group set when the step was called (none: no averaging).
StepOutput runStep(Engine& e, std::vector<c10::IValue> inputs, const std::shared_ptr<ProcessGroupHandle>& group) {
  EngineLock lock(e);
  DOVE_CHECK(!e.module->disposed, "DISPOSED", "module used after dispose()");
  const auto& opt = e.options;
  torch::jit::Module& module = e.module->module;
  // libuv worker threads do not inherit the JS thread's grad mode; training needs it on.
  c10::AutoGradMode gradMode(true);
  module.train(true);

  // The batch arrives in host memory (JS buffers) and moves to the device here, on the worker
  // thread: under CUDA autocast a CPU input is not autocast-eligible, and the first conv would fail
  // with "Input type (float) and bias type (c10::BFloat16) should be the same".
  for (auto& value : inputs) {
    if (value.isTensor() && value.toTensor().device() != e.module->device) {
      value = value.toTensor().to(e.module->device, /*non_blocking=*/false);
    }
  }

  // The forward runs unoptimised by the graph executor (a thread-local setting, this step's thread only):
  // its profiling executor differentiates the scripted graph itself (autodiff subgraphs), which for
  // tiny at batch 1 took 49.6-51.4 ms a step against 43.1-44.6 ms as plain interpreted aten calls under
  // autograd, and 284-300 against 290-309 ms at batch 16 (torch.optim AdamW on the same file in Python,
  // 5 alternating rounds, 2 threads, AMD EPYC).
  torch::jit::GraphOptimizerEnabledGuard interpreted(false);
  c10::IValue result;
  {
    AutocastScope autocast(opt.autocastBf16 && e.module->device.is_cuda());
    result = module.get_method("forward")(std::move(inputs));
  }
  DOVE_CHECK(result.isGenericDict(), "INVALID_ARGUMENT",
             "forward must return Dict[str, Tensor] with 'loss' but returned " + result.type()->str());
  auto dict = result.toGenericDict();
  DOVE_CHECK(dict.contains("loss"), "INVALID_ARGUMENT", "forward's dict has no 'loss' entry");
  at::Tensor loss = dict.at("loss").toTensor();
  DOVE_CHECK(loss.numel() == 1, "INVALID_ARGUMENT", "forward's 'loss' must be a scalar");
  DOVE_CHECK(loss.requires_grad(), "INVALID_ARGUMENT", "forward's 'loss' does not depend on any trainable parameter");
  for (const auto& entry : dict) {
    if (!entry.key().isString() || !entry.value().isTensor()) continue;
    const at::Tensor& t = entry.value().toTensor();
    if (t.numel() != 1) continue;
    // No .item() here: on CUDA each one waits for the queue to drain (one stall per entry per step).
    at::Tensor value = t.detach().reshape({}).to(e.module->device, at::kDouble);
    at::Tensor& sum = e.partSums[entry.key().toStringRef()];
    sum = sum.defined() ? sum + value : value;
  }
  // Accumulated micro-batches sum their gradients; scaling each loss makes the sum a mean.
  (loss.to(at::kFloat) / double(opt.accumulate)).backward();
  e.micro += 1;

  StepOutput out;
  // Copies the parts (and, after an optimizer step, the gradient norm) to the host in one transfer.
  auto readBack = [&](const at::Tensor& gradNorm) {
    std::vector<at::Tensor> pieces{stackedParts(e) / double(e.micro)};
    if (gradNorm.defined()) pieces.push_back(gradNorm.reshape({1}).to(at::kDouble));
    const at::Tensor host = torch::cat(pieces).cpu();
    const double* v = host.data_ptr<double>();
    std::size_t i = 0;
    for (const auto& [name, sum] : e.partSums) out.parts[name] = v[i++];
    if (gradNorm.defined()) out.gradNorm = v[i];
  };
  if (e.micro < opt.accumulate) {
    readBack(at::Tensor());
    out.accumulated = true;
    out.step = e.step;
    out.lr = scheduledLr(opt, e.step);
    return out;
  }

  if (group && group->worldSize > 1) averageOverGroup(e, *group);

  std::vector<at::Tensor> grads;
  for (auto& p : e.params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  // One multi-tensor norm launch rather than one per parameter; it stays on the device: clipping
  // scales by min(1, max / norm) as torch.nn.utils.clip_grad_norm_ does, without asking the host
  // whether the norm is above the limit (a scale of exactly 1 changes nothing). adamwStep applies it.
  at::Tensor total = grads.empty() ? torch::zeros({}, torch::dtype(at::kFloat).device(e.module->device))
                                   : torch::stack(at::_foreach_norm(grads, 2, at::kFloat)).norm();
  at::Tensor clipCoef;
  if (opt.clipGradNorm > 0 && !grads.empty()) clipCoef = (opt.clipGradNorm / (total + 1e-6)).clamp_max(1.0);
  double lr = scheduledLr(opt, e.step);
  auto& groups = e.optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(lr * e.groupScales[g]);
  }
  adamwStep(*e.optimizer, clipCoef);
  e.optimizer->zero_grad(/*set_to_none=*/true);
  readBack(total);
  e.step += 1;
  e.micro = 0;
  e.partSums.clear();
  out.lr = lr;
  out.step = e.step;
  return out;
}

void saveState(Engine& e, const std::string& path) {
  EngineLock lock(e);
  DOVE_CHECK(e.micro == 0, "INVALID_ARGUMENT",
             "saveState between micro-batches would lose " + std::to_string(e.micro) +
                 " accumulated gradients; save after a full optimizer step");
  torch::serialize::OutputArchive archive;
  e.optimizer->save(archive);
  archive.write("dove_step", torch::tensor(e.step.load(), torch::kInt64));
  archive.write("dove_param_count", torch::tensor(int64_t(e.params.size()), torch::kInt64));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> genLock(gen.mutex());
    archive.write("dove_cpu_rng", gen.get_state());
  }
  // Atomic (atomic_file.h): a crash or a full disk leaves either the old file or the complete new
  // one under `path`, never a torn one, and never aborts the process.
  writeFileAtomically(path, "the optimizer state", [&](const ByteSink& sink) { archive.save_to(sink); });
}

void loadState(Engine& e, const std::string& path) {
  EngineLock lock(e);
  DOVE_CHECK(::access(path.c_str(), R_OK) == 0, "FILE_NOT_FOUND", "optimizer state not found: " + path);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& err) {
    fail("IO_ERROR", "cannot read optimizer state " + path + ": " + err.what_without_backtrace());
  }
  at::Tensor count, step, rng;
  DOVE_CHECK(archive.try_read("dove_param_count", count) && archive.try_read("dove_step", step) &&
                 archive.try_read("dove_cpu_rng", rng),
             "IO_ERROR", path + " is not a DOVE optimizer state (missing step / RNG entries)");
  DOVE_CHECK(count.item<int64_t>() == int64_t(e.params.size()), "SHAPE_MISMATCH",
             "optimizer state " + path + " holds " + std::to_string(count.item<int64_t>()) +
                 " parameters but the module has " + std::to_string(e.params.size()));
  try {
    e.optimizer->load(archive);
  } catch (const c10::Error& err) {
    fail("SHAPE_MISMATCH", "optimizer state " + path + " does not fit this module: " + err.what_without_backtrace());
  }
  e.step = step.item<int64_t>();
  e.micro = 0;
  e.partSums.clear();
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> genLock(gen.mutex());
  gen.set_state(rng);
}

// The JS view of a train engine: everything here runs on the JS thread and never waits for the
// module mutex; steps, saves and loads take it on a worker thread.
class EngineWrap : public NativeWrap<EngineWrap, EnginePtr> {
 public:
  static constexpr const char* kName = "NativeTrainEngine";
  static void define(Napi::Env env) {
    NativeWrap::define(env, {
        InstanceAccessor<&EngineWrap::Step>("step"),
        method<&EngineWrap::TrainStep>("trainStep"),
        method<&EngineWrap::SaveState>("saveState"),
        method<&EngineWrap::LoadState>("loadState"),
        method<&EngineWrap::SetProcessGroup>("setProcessGroup"),
        method<&EngineWrap::Dispose>("dispose"),
    });
  }

  // The JS module object stays reachable as long as the engine is, so it cannot be collected (and
  // its tensors freed) under a running step: createTrainEngine's caller sets it right after.
  explicit EngineWrap(const Napi::CallbackInfo& info) : NativeWrap(info), engine_(payload()) {}
  void keep(Napi::Value moduleObject) { module_ = Napi::Persistent(moduleObject.As<Napi::Object>()); }

 private:
  const EnginePtr& engine() const {
    DOVE_CHECK(!engine_->disposed, "DISPOSED", "train engine used after dispose()");
    return engine_;
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(engine_->step.load())); }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnginePtr e = engine();
    DOVE_CHECK(info[0].IsArray(), "INVALID_ARGUMENT", "Expected an array of forward arguments for trainStep");
    // dispose() runs on this thread and is the only thing that replaces the module: the
    // schema can be read without the mutex once it has not run.
    DOVE_CHECK(!e->module->disposed, "DISPOSED", "module used after dispose()");
    const auto& schema = e->module->module.get_method("forward").function().getSchema();
    // argsForSchema skips `self`; the method call adds it back.
    std::vector<c10::IValue> inputs = argsForSchema(env, schema, info[0].As<Napi::Array>());
    JsInputs jsInputs;
    for (const c10::IValue& input : inputs) jsInputs.add(input);
    return PromiseWorker<StepOutput>::Start(
        env, "dove.trainStep", [e, inputs, group = group_]() mutable { return runStep(*e, std::move(inputs), group); },
        [](Napi::Env env, StepOutput& out) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          Napi::Object parts = Napi::Object::New(env);
          for (auto& [name, value] : out.parts) parts.Set(name, Napi::Number::New(env, value));
          result.Set("parts", parts);
          result.Set("lr", Napi::Number::New(env, out.lr));
          result.Set("gradNorm", Napi::Number::New(env, out.gradNorm));
          result.Set("step", Napi::Number::New(env, double(out.step)));
          result.Set("accumulated", Napi::Boolean::New(env, out.accumulated));
          return result;
        },
        {info[0]}, std::move(jsInputs));
  }

  template <void (*Job)(Engine&, const std::string&)>
  Napi::Value StateFile(const Napi::CallbackInfo& info, const char* name, const char* resource) {
    Napi::Env env = info.Env();
    EnginePtr e = engine();
    const std::string path = stringArg(info[0], std::string("a file path for ") + name);
    return PromiseWorker<bool>::Start(
        env, resource, [e, path]() { Job(*e, path); return true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  }
  Napi::Value SaveState(const Napi::CallbackInfo& info) { return StateFile<saveState>(info, "saveState", "dove.saveState"); }
  Napi::Value LoadState(const Napi::CallbackInfo& info) { return StateFile<loadState>(info, "loadState", "dove.loadState"); }

  // Applies to the steps called from now on; a step already called keeps the group it was called with.
  Napi::Value SetProcessGroup(const Napi::CallbackInfo& info) {
    engine();
    group_ = given(info[0]) ? unwrapProcessGroup(info[0]) : nullptr;
    return info.Env().Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!engine_->disposed.exchange(true)) {
      group_.reset();
      // A job holding the mutex frees the state itself when it ends (EngineLock).
      std::unique_lock<std::mutex> lock(engine_->module->mutex, std::try_to_lock);
      if (lock.owns_lock()) engine_->releaseIfDisposed();
    }
    return info.Env().Undefined();
  }

  EnginePtr engine_;
  std::shared_ptr<ProcessGroupHandle> group_;
  Napi::ObjectReference module_;
};

Napi::Value CreateTrainEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<ModuleHandle> module = unwrapModule(info[0]);
  DOVE_CHECK(info[1].IsObject(), "INVALID_ARGUMENT", "Expected an options object for createTrainEngine");
  EnginePtr engine = buildEngine(module, parseOptions(info[1].As<Napi::Object>()));
  // Every step frees and allocates the same tensors again: the cache serves them (cpu_block_cache.h).
  if (module->device.is_cpu()) installCpuBlockCache();
  Napi::Value wrapped = EngineWrap::create(env, engine);
  EngineWrap::Unwrap(wrapped.As<Napi::Object>())->keep(info[0]);
  return wrapped;
}

}  // namespace

void initTrainEngine(Napi::Env env, Napi::Object exports) {
  EngineWrap::define(env);
  exportFunctions(env, exports, {{"createTrainEngine", CreateTrainEngine}});
}

}  // namespace dove
