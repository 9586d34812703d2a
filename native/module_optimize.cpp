// Load-time inference optimisation of TorchScript modules (module_optimize.h).
#include "module_optimize.h"

#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>

#include <string>
#include <utility>
#include <vector>

namespace dove {
namespace {

bool isConv2d(const torch::jit::Module& m) {
  const auto& name = m.type()->name();
  if (!name) return false;
  const std::string q = name->qualifiedName();
  return q.size() >= 7 && q.compare(q.size() - 7, 7, ".Conv2d") == 0;
}

// Weights of nn.Conv2d only (not every 4-D parameter: a method may view() its own 4-D parameter,
// which a channels_last tensor would refuse). Returns the converted tensors with their old data.
std::vector<std::pair<at::Tensor, at::Tensor>> convWeightsToChannelsLast(torch::jit::Module& module) {
  c10::NoGradGuard noGrad;
  std::vector<std::pair<at::Tensor, at::Tensor>> converted;
  for (const auto& sub : module.modules()) {
    if (!isConv2d(sub) || !sub.hasattr("weight")) continue;
    const c10::IValue w = sub.attr("weight");
    if (!w.isTensor()) continue;
    at::Tensor weight = w.toTensor();
    if (weight.dim() != 4 || !weight.is_floating_point() || weight.is_contiguous(at::MemoryFormat::ChannelsLast)) continue;
    at::Tensor old = weight.detach();
    weight.set_data(weight.contiguous(at::MemoryFormat::ChannelsLast));
    converted.emplace_back(weight, old);
  }
  return converted;
}

}  // namespace

torch::jit::Module optimizeForInference(torch::jit::Module module, const c10::Device& device) {
  std::vector<std::pair<at::Tensor, at::Tensor>> converted;
  if (device.is_cpu()) converted = convWeightsToChannelsLast(module);
  // Public methods (the exported API); private helpers are inlined into them by freezing.
  std::vector<std::string> preserved;
  for (const auto& method : module.get_methods()) {
    if (!method.name().empty() && method.name()[0] != '_') preserved.push_back(method.name());
  }
  try {
    // optimize_numerics = false: no conv/batch-norm/add folds that change rounding.
    torch::jit::Module frozen = torch::jit::freeze(module, preserved, /*optimize_numerics=*/false);
    // torch::jit::freeze runs the frozen-graph clean-up on forward only; torch.jit.freeze in Python
    // runs it on every preserved method, and so do we.
    for (const auto& name : preserved) {
      if (name == "forward" || !frozen.find_method(name)) continue;
      auto graph = frozen.get_method(name).graph();
      torch::jit::OptimizeFrozenGraph(graph, /*optimize_numerics=*/false);
    }
    return frozen;
  } catch (const std::exception&) {
    // Not freezable (e.g. a module without forward, or one whose methods mutate module state):
    // best effort, it runs unoptimised and exactly as loaded. A DOVE export always freezes.
    c10::NoGradGuard noGrad;
    for (auto& [weight, old] : converted) weight.set_data(old);
    return module;
  }
}

}  // namespace dove
