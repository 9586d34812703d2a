// Linear probing: a softmax-regression classifier trained on frozen features (DOVE tokens or raw
// pixels) with libtorch on a worker thread. Reports per-epoch train loss, train top-1 and test
// top-1/top-5 through an optional JS callback, so long probes show progress as they go.
#include "common.h"
#include "shape_math.h"

#include <c10/util/ScopeExit.h>

#include <atomic>
#include <future>
#include <memory>
#include <optional>

namespace dove {
namespace {

struct ProbeOptions {
  int64_t numClasses = 0;
  int64_t epochs = 0;
  int64_t batchSize = 0;
  double lr = 0;
  double weightDecay = 0;
  uint64_t seed = 0;
  bool standardize = true;
};

struct EpochMetrics {
  int64_t epoch = 0;
  double trainLoss = 0;
  double trainTop1 = 0;
  double testTop1 = 0;
  double testTop5 = 0;
};

struct ProbeResult {
  std::vector<EpochMetrics> epochs;
  at::Tensor weight;  // (C, D), applied to standardised features when standardize is on
  at::Tensor bias;    // (C)
  at::Tensor mean;    // (D) feature mean used for standardisation (zeros when off)
  at::Tensor scale;   // (D) feature 1/std used for standardisation (ones when off)
};

Napi::Object metricsToJs(Napi::Env env, const EpochMetrics& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("epoch", Napi::Number::New(env, static_cast<double>(m.epoch)));
  o.Set("trainLoss", Napi::Number::New(env, m.trainLoss));
  o.Set("trainTop1", Napi::Number::New(env, m.trainTop1));
  o.Set("testTop1", Napi::Number::New(env, m.testTop1));
  o.Set("testTop5", Napi::Number::New(env, m.testTop5));
  return o;
}

// Returns (top1 correct, top5 correct) counts for logits against labels.
std::pair<int64_t, int64_t> topCorrect(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t k = std::min<int64_t>(5, logits.size(1));
  auto top = std::get<1>(logits.topk(k, 1));
  auto hits = top.eq(labels.unsqueeze(1));
  const int64_t top1 = hits.select(1, 0).sum().item<int64_t>();
  const int64_t top5 = hits.any(1).sum().item<int64_t>();
  return {top1, top5};
}

ProbeResult train(at::Tensor trainX, at::Tensor trainY, at::Tensor testX, at::Tensor testY, ProbeOptions opt,
                  std::optional<Napi::ThreadSafeFunction> onEpoch) {
  // Releases the thread-safe callback exactly once, on whichever path the worker leaves by.
  const auto release = c10::make_scope_exit([&onEpoch] {
    if (onEpoch) onEpoch->Release();
  });
  // The worker may inherit InferenceMode from nowhere, but be explicit: training needs autograd.
  c10::AutoGradMode gradMode(true);
  trainX = trainX.to(at::kCPU, at::kFloat).contiguous();
  testX = testX.to(at::kCPU, at::kFloat).contiguous();
  trainY = trainY.to(at::kCPU, at::kLong).contiguous();
  testY = testY.to(at::kCPU, at::kLong).contiguous();
  DOVE_CHECK(at::isfinite(trainX).all().item<bool>(), "INVALID_ARGUMENT", "Expected finite values in trainFeatures");
  DOVE_CHECK(at::isfinite(testX).all().item<bool>(), "INVALID_ARGUMENT", "Expected finite values in testFeatures");
  for (const auto& [labels, name] : {std::pair{trainY, "trainLabels"}, std::pair{testY, "testLabels"}}) {
    if (labels.numel() == 0) continue;
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    DOVE_CHECK(lo >= 0 && hi < opt.numClasses, "INVALID_ARGUMENT",
               std::string("Expected labels between 0 and ") + std::to_string(opt.numClasses - 1) + " in " + name +
                   " but found " + std::to_string(lo < 0 ? lo : hi));
  }

  const int64_t n = trainX.size(0), d = trainX.size(1);
  at::Tensor mean = at::zeros({d}, at::kFloat), scale = at::ones({d}, at::kFloat);
  if (opt.standardize) {
    // Features differ in scale by orders of magnitude (token dims vs pixel values); standardising with
    // train statistics keeps one learning rate sensible for all of them. Constant columns keep scale 1.
    at::NoGradGuard noGrad;
    mean = trainX.mean(0);
    auto std = trainX.std(0, /*unbiased=*/false);
    scale = at::where(std > 1e-6, std.reciprocal(), at::ones_like(std));
    trainX = (trainX - mean) * scale;
    testX = (testX - mean) * scale;
  }

  // Zero init: the problem is convex, so the optimum does not depend on it and runs are reproducible
  // without touching the global RNG (which other workers may be using).
  at::Tensor weight = at::zeros({opt.numClasses, d}, at::kFloat).requires_grad_(true);
  at::Tensor bias = at::zeros({opt.numClasses}, at::kFloat).requires_grad_(true);
  torch::optim::AdamW optimizer({weight, bias}, torch::optim::AdamWOptions(opt.lr).weight_decay(opt.weightDecay));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(opt.seed);

  ProbeResult result;
  // Shared with queued callbacks, which may run on the JS thread after this function returns.
  auto callbackFailed = std::make_shared<std::atomic<bool>>(false);
  for (int64_t epoch = 1; epoch <= opt.epochs; ++epoch) {
    auto order = at::randperm(n, generator, at::TensorOptions().dtype(at::kLong));
    double lossSum = 0;
    int64_t correct = 0;
    for (int64_t start = 0; start < n; start += opt.batchSize) {
      auto idx = order.slice(0, start, std::min(n, start + opt.batchSize));
      auto x = trainX.index_select(0, idx);
      auto y = trainY.index_select(0, idx);
      auto logits = at::addmm(bias, x, weight.t());
      auto loss = at::cross_entropy_loss(logits, y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      at::NoGradGuard noGrad;
      lossSum += loss.item<double>() * static_cast<double>(idx.size(0));
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
    }
    EpochMetrics m;
    m.epoch = epoch;
    m.trainLoss = lossSum / static_cast<double>(n);
    m.trainTop1 = static_cast<double>(correct) / static_cast<double>(n);
    {
      at::NoGradGuard noGrad;
      int64_t top1 = 0, top5 = 0;
      const int64_t nt = testX.size(0);
      for (int64_t start = 0; start < nt; start += 4096) {
        auto x = testX.slice(0, start, std::min(nt, start + 4096));
        auto [c1, c5] = topCorrect(at::addmm(bias, x, weight.t()), testY.slice(0, start, std::min(nt, start + 4096)));
        top1 += c1;
        top5 += c5;
      }
      m.testTop1 = nt > 0 ? static_cast<double>(top1) / static_cast<double>(nt) : 0.0;
      m.testTop5 = nt > 0 ? static_cast<double>(top5) / static_cast<double>(nt) : 0.0;
    }
    result.epochs.push_back(m);
    if (onEpoch) {
      // Wait until JS has seen the epoch, so every callback runs before the promise settles (the
      // CLI prints the last epoch before the summary) and a throwing callback stops training at once.
      auto done = std::make_shared<std::promise<void>>();
      std::future<void> seen = done->get_future();
      const napi_status status = onEpoch->BlockingCall([m, callbackFailed, done](Napi::Env env, Napi::Function cb) {
        try {
          cb.Call({metricsToJs(env, m)});
        } catch (const Napi::Error&) {
          *callbackFailed = true;
        }
        done->set_value();
      });
      // Not queued (the environment is shutting down): nothing to wait for.
      if (status == napi_ok) seen.wait();
      DOVE_CHECK(!*callbackFailed, "INVALID_ARGUMENT", "The onEpoch callback threw; training stopped after epoch " +
                                                          std::to_string(epoch));
    }
  }
  result.weight = weight.detach();
  result.bias = bias.detach();
  result.mean = mean;
  result.scale = scale;
  return result;
}

Napi::Value TrainLinearProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() >= 5, "INVALID_ARGUMENT",
             "Expected (trainFeatures, trainLabels, testFeatures, testLabels, options[, onEpoch]) but received " +
                 std::to_string(info.Length()) + " arguments");
  at::Tensor trainX = unwrapTensor(info[0], "trainFeatures");
  at::Tensor trainY = unwrapTensor(info[1], "trainLabels");
  at::Tensor testX = unwrapTensor(info[2], "testFeatures");
  at::Tensor testY = unwrapTensor(info[3], "testLabels");
  DOVE_CHECK(info[4].IsObject(), "INVALID_ARGUMENT", "Expected an options object as 5th argument");
  Napi::Object o = info[4].As<Napi::Object>();

  DOVE_CHECK(at::isFloatingType(trainX.scalar_type()) && at::isFloatingType(testX.scalar_type()), "DTYPE_MISMATCH",
             "Expected floating-point features but received " + dtypeName(trainX.scalar_type()) + " and " +
                 dtypeName(testX.scalar_type()));
  DOVE_CHECK(trainY.scalar_type() == at::kLong || trainY.scalar_type() == at::kInt, "DTYPE_MISMATCH",
             "Expected int64 or int32 trainLabels but received " + dtypeName(trainY.scalar_type()));
  DOVE_CHECK(testY.scalar_type() == at::kLong || testY.scalar_type() == at::kInt, "DTYPE_MISMATCH",
             "Expected int64 or int32 testLabels but received " + dtypeName(testY.scalar_type()));
  DOVE_CHECK(trainX.dim() == 2 && trainX.size(0) > 0 && trainX.size(1) > 0, "SHAPE_MISMATCH",
             "Expected trainFeatures of shape (N, D) with N, D > 0 but received " + shape::toString(trainX.sizes()));
  DOVE_CHECK(testX.dim() == 2 && testX.size(1) == trainX.size(1), "SHAPE_MISMATCH",
             "Expected testFeatures of shape (M, " + std::to_string(trainX.size(1)) + ") but received " +
                 shape::toString(testX.sizes()));
  DOVE_CHECK(trainY.dim() == 1 && trainY.size(0) == trainX.size(0), "SHAPE_MISMATCH",
             "Expected trainLabels of shape (" + std::to_string(trainX.size(0)) + ") but received " +
                 shape::toString(trainY.sizes()));
  DOVE_CHECK(testY.dim() == 1 && testY.size(0) == testX.size(0), "SHAPE_MISMATCH",
             "Expected testLabels of shape (" + std::to_string(testX.size(0)) + ") but received " +
                 shape::toString(testY.sizes()));

  ProbeOptions opt;
  opt.numClasses = integerIn(o.Get("numClasses"), "numClasses", 2, 1e6);
  opt.epochs = integerIn(o.Get("epochs"), "epochs", 1, 1e6);
  opt.batchSize = integerIn(o.Get("batchSize"), "batchSize", 1, 1e7);
  opt.lr = numberIn(o.Get("lr"), "lr", 1e-12, 1e3);
  opt.weightDecay = numberIn(o.Get("weightDecay"), "weightDecay", 0, 1e3);
  opt.seed = static_cast<uint64_t>(integerIn(o.Get("seed"), "seed", 0, 9007199254740991.0));
  opt.standardize = booleanArg(o.Get("standardize"), "standardize");

  std::optional<Napi::ThreadSafeFunction> onEpoch;
  if (info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull()) {
    DOVE_CHECK(info[5].IsFunction(), "INVALID_ARGUMENT", "Expected a function for onEpoch");
    onEpoch = Napi::ThreadSafeFunction::New(env, info[5].As<Napi::Function>(), "dove.probeEpoch", 0, 1);
  }
  return PromiseWorker<ProbeResult>::Start(
      env, "dove.trainLinearProbe",
      [=]() { return train(trainX, trainY, testX, testY, opt, onEpoch); },
      [](Napi::Env env, ProbeResult& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        Napi::Array epochs = Napi::Array::New(env, r.epochs.size());
        for (size_t i = 0; i < r.epochs.size(); ++i) epochs.Set(static_cast<uint32_t>(i), metricsToJs(env, r.epochs[i]));
        out.Set("epochs", epochs);
        out.Set("weight", wrapTensor(env, r.weight));
        out.Set("bias", wrapTensor(env, r.bias));
        out.Set("mean", wrapTensor(env, r.mean));
        out.Set("scale", wrapTensor(env, r.scale));
        return out;
      },
      {info[0], info[1], info[2], info[3]}, JsInputs::of({trainX, trainY, testX, testY}));
}

}  // namespace

void initEvalProbe(Napi::Env env, Napi::Object exports) { exportFunctions(env, exports, {{"trainLinearProbe", TrainLinearProbe}}); }

}  // namespace dove
