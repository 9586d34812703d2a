// Evaluation linear algebra for FID: Gaussian statistics of feature sets and the Fréchet distance
// between two Gaussians, both in float64 on the CPU (float32 loses several digits in the trace of a
// 2048x2048 matrix square root, which is the whole signal FID measures).
#include "common.h"
#include "shape_math.h"

#include <c10/core/InferenceMode.h>

#include <cmath>
#include <sstream>

namespace dove {
namespace {

at::Tensor asCpuDouble(const at::Tensor& t) {
  return t.to(at::kCPU, at::kDouble).contiguous();
}

void requireFinite(const at::Tensor& t, const std::string& name) {
  DOVE_CHECK(at::isfinite(t).all().item<bool>(), "INVALID_ARGUMENT",
             "Expected only finite values in " + name + " but it contains NaN or Inf");
}

// The floating-point tensor argument `name` (DTYPE_MISMATCH for another dtype).
at::Tensor floatingTensor(Napi::Value value, const char* name) {
  at::Tensor t = unwrapTensor(value, name);
  DOVE_CHECK(at::isFloatingType(t.scalar_type()), "DTYPE_MISMATCH",
             std::string("Expected a floating-point tensor for ") + name + " but received " + dtypeName(t.scalar_type()));
  return t;
}

// A squared distance: a negative result within rounding of the traces is an exact zero.
double clampedFid(double fid, double trace1, double trace2) {
  return fid < 0 && fid > -1e-9 * std::max(trace1 + trace2, 1.0) ? 0.0 : fid;
}

// Symmetric square root of a covariance: V diag(sqrt(max(l, 0))) V^T. Covariances estimated from
// fewer samples than dimensions are singular, and rounding turns their zero eigenvalues into tiny
// negatives; those are clamped. A clearly negative eigenvalue means the input is not a covariance.
at::Tensor psdSqrt(const at::Tensor& sym, const std::string& name) {
  auto [values, vectors] = at::linalg_eigh(sym);
  const double largest = values.abs().max().item<double>();
  const double smallest = values.min().item<double>();
  const double tolerance = 1e-8 * std::max(largest, 1.0);
  if (smallest < -tolerance) {
    std::ostringstream msg;
    msg << "Expected " << name << " to be positive semi-definite but its smallest eigenvalue is " << smallest;
    fail("INVALID_ARGUMENT", msg.str());
  }
  auto roots = values.clamp_min(0).sqrt();
  return at::matmul(vectors * roots.unsqueeze(0), vectors.transpose(0, 1));
}

double frechet(const at::Tensor& mu1In, const at::Tensor& sigma1In, const at::Tensor& mu2In,
               const at::Tensor& sigma2In) {
  c10::InferenceMode inference;
  auto mu1 = asCpuDouble(mu1In), mu2 = asCpuDouble(mu2In);
  auto sigma1 = asCpuDouble(sigma1In), sigma2 = asCpuDouble(sigma2In);
  requireFinite(mu1, "mu1");
  requireFinite(mu2, "mu2");
  requireFinite(sigma1, "sigma1");
  requireFinite(sigma2, "sigma2");
  // Estimated covariances are symmetric only up to rounding; eigh reads one triangle, so
  // symmetrising first makes the result independent of which one.
  sigma1 = (sigma1 + sigma1.transpose(0, 1)) * 0.5;
  sigma2 = (sigma2 + sigma2.transpose(0, 1)) * 0.5;

  // Tr(sqrtm(S1 S2)) is the nuclear norm of A B with A = S1^{1/2}, B = S2^{1/2}: the eigenvalues of
  // S1 S2 = A (A B B A) A^-1 are the squared singular values of A B. Summing singular values keeps
  // the absolute error at machine precision; summing sqrt(eigenvalues of A S2 A) would amplify the
  // round-off of the (many, for rank-deficient covariances) near-zero eigenvalues by a square root.
  // Only symmetric eigensolvers and an SVD are used, so no complex round-off as with scipy's sqrtm.
  auto a = psdSqrt(sigma1, "sigma1");
  auto b = psdSqrt(sigma2, "sigma2");
  const double traceCovmean = at::linalg_svdvals(at::matmul(a, b)).sum().item<double>();
  auto diff = mu1 - mu2;
  const double meanTerm = at::dot(diff, diff).item<double>();
  const double trace1 = sigma1.trace().item<double>();
  const double trace2 = sigma2.trace().item<double>();
  return clampedFid(meanTerm + trace1 + trace2 - 2.0 * traceCovmean, trace1, trace2);
}

Napi::Value FrechetDistance(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() == 4, "INVALID_ARGUMENT",
             "Expected 4 arguments (mu1, sigma1, mu2, sigma2) for frechetDistance but received " +
                 std::to_string(info.Length()));
  at::Tensor mu1 = floatingTensor(info[0], "mu1");
  at::Tensor sigma1 = floatingTensor(info[1], "sigma1");
  at::Tensor mu2 = floatingTensor(info[2], "mu2");
  at::Tensor sigma2 = floatingTensor(info[3], "sigma2");
  DOVE_CHECK(mu1.dim() == 1 && mu1.size(0) > 0, "SHAPE_MISMATCH",
             "Expected mu1 of shape (D) but received " + shape::toString(mu1.sizes()));
  const int64_t d = mu1.size(0);
  DOVE_CHECK(mu2.dim() == 1 && mu2.size(0) == d, "SHAPE_MISMATCH",
             "Expected mu2 of shape (" + std::to_string(d) + ") but received " + shape::toString(mu2.sizes()));
  DOVE_CHECK(sigma1.dim() == 2 && sigma1.size(0) == d && sigma1.size(1) == d, "SHAPE_MISMATCH",
             "Expected sigma1 of shape (" + std::to_string(d) + ", " + std::to_string(d) + ") but received " +
                 shape::toString(sigma1.sizes()));
  DOVE_CHECK(sigma2.dim() == 2 && sigma2.size(0) == d && sigma2.size(1) == d, "SHAPE_MISMATCH",
             "Expected sigma2 of shape (" + std::to_string(d) + ", " + std::to_string(d) + ") but received " +
                 shape::toString(sigma2.sizes()));
  return PromiseWorker<double>::Start(
      env, "dove.frechetDistance", [=]() { return frechet(mu1, sigma1, mu2, sigma2); },
      [](Napi::Env env, double& value) -> Napi::Value { return Napi::Number::New(env, value); },
      {info[0], info[1], info[2], info[3]}, JsInputs::of({mu1, sigma1, mu2, sigma2}));
}

struct GaussianStats {
  at::Tensor mean;
  at::Tensor covariance;
};

// Unbiased (N-1) covariance of the rows, as numpy.cov(rowvar=False) which pytorch-fid uses.
GaussianStats gaussianStats(const at::Tensor& featuresIn) {
  c10::InferenceMode inference;
  auto x = asCpuDouble(featuresIn);
  requireFinite(x, "features");
  auto mean = x.mean(0);
  auto centred = x - mean.unsqueeze(0);
  auto cov = at::matmul(centred.transpose(0, 1), centred) / static_cast<double>(x.size(0) - 1);
  return {mean, cov};
}

Napi::Value GaussianStatistics(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() == 1, "INVALID_ARGUMENT",
             "Expected 1 argument (features) for gaussianStatistics but received " + std::to_string(info.Length()));
  at::Tensor features = floatingTensor(info[0], "features");
  DOVE_CHECK(features.dim() == 2, "SHAPE_MISMATCH",
             "Expected features of shape (N, D) but received " + shape::toString(features.sizes()));
  DOVE_CHECK(features.size(0) >= 2, "INVALID_ARGUMENT",
             "Expected at least 2 feature rows for a covariance but received " + std::to_string(features.size(0)));
  return PromiseWorker<GaussianStats>::Start(
      env, "dove.gaussianStatistics", [=]() { return gaussianStats(features); },
      [](Napi::Env env, GaussianStats& stats) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("mean", wrapTensor(env, stats.mean));
        out.Set("covariance", wrapTensor(env, stats.covariance));
        return out;
      },
      {info[0]}, JsInputs::of({features}));
}

// FID straight from two feature sets (rows). With fewer rows than columns (small evaluation sets,
// e.g. a few hundred images of 2048-d features) the covariances are rank-deficient and the D x D
// eigendecompositions cost O(D^3) for nothing: with centred X1 (n1 x D), X2 (n2 x D),
// S1 S2 = X1^T (X1 X2^T X2) X1 / c shares its non-zero eigenvalues with M M^T, M = X1 X2^T / sqrt(c),
// c = (n1-1)(n2-1), so Tr sqrtm(S1 S2) is the nuclear norm of the n1 x n2 matrix M: exact, cheaper,
// and free of the round-off the D-dimensional route accumulates in the null space.
double frechetFromFeatures(const at::Tensor& f1In, const at::Tensor& f2In) {
  c10::InferenceMode inference;
  auto x1 = asCpuDouble(f1In), x2 = asCpuDouble(f2In);
  requireFinite(x1, "features1");
  requireFinite(x2, "features2");
  const int64_t n1 = x1.size(0), n2 = x2.size(0), d = x1.size(1);
  if (std::max(n1, n2) > d) {
    auto s1 = gaussianStats(x1), s2 = gaussianStats(x2);
    return frechet(s1.mean, s1.covariance, s2.mean, s2.covariance);
  }
  auto mu1 = x1.mean(0), mu2 = x2.mean(0);
  auto c1 = x1 - mu1.unsqueeze(0), c2 = x2 - mu2.unsqueeze(0);
  const double trace1 = c1.pow(2).sum().item<double>() / static_cast<double>(n1 - 1);
  const double trace2 = c2.pow(2).sum().item<double>() / static_cast<double>(n2 - 1);
  auto m = at::matmul(c1, c2.transpose(0, 1)) / std::sqrt(static_cast<double>(n1 - 1) * static_cast<double>(n2 - 1));
  const double traceCovmean = at::linalg_svdvals(m).sum().item<double>();
  auto diff = mu1 - mu2;
  return clampedFid(at::dot(diff, diff).item<double>() + trace1 + trace2 - 2.0 * traceCovmean, trace1, trace2);
}

Napi::Value FrechetDistanceFromFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() == 2, "INVALID_ARGUMENT",
             "Expected 2 arguments (features1, features2) for frechetDistanceFromFeatures but received " +
                 std::to_string(info.Length()));
  at::Tensor f1 = floatingTensor(info[0], "features1");
  at::Tensor f2 = floatingTensor(info[1], "features2");
  DOVE_CHECK(f1.dim() == 2 && f1.size(0) >= 2 && f1.size(1) > 0, "SHAPE_MISMATCH",
             "Expected features1 of shape (N, D) with N >= 2 but received " + shape::toString(f1.sizes()));
  DOVE_CHECK(f2.dim() == 2 && f2.size(0) >= 2 && f2.size(1) == f1.size(1), "SHAPE_MISMATCH",
             "Expected features2 of shape (M, " + std::to_string(f1.size(1)) + ") with M >= 2 but received " +
                 shape::toString(f2.sizes()));
  return PromiseWorker<double>::Start(
      env, "dove.frechetDistanceFromFeatures", [=]() { return frechetFromFeatures(f1, f2); },
      [](Napi::Env env, double& value) -> Napi::Value { return Napi::Number::New(env, value); },
      {info[0], info[1]}, JsInputs::of({f1, f2}));
}

}  // namespace

void initEvalFid(Napi::Env env, Napi::Object exports) {
  exportFunctions(env, exports, {{"frechetDistance", FrechetDistance}, {"gaussianStatistics", GaussianStatistics},
                                 {"frechetDistanceFromFeatures", FrechetDistanceFromFeatures}});
}

}  // namespace dove
