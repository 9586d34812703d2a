// Inference-only rewrite of a loaded TorchScript module (loadModule(..., optimize = true); the
// Tokenizer and Reconstructor load with it by default, the Trainer never does). See docs/API.md
// "optimize" for what it changes and the numerics it keeps.
#pragma once

#include <torch/script.h>

#include "glibc_baseline.h"

namespace dove {

// Returns the module to run instead of `module` (which must be in eval mode):
//  - CPU only: the weights of every nn.Conv2d are stored channels_last, so oneDNN / the native
//    convolutions run NHWC end to end (the activations follow the weights' format) instead of
//    reordering NCHW <-> blocked layouts around every convolution;
//  - torch::jit::freeze with every method preserved, then the frozen-graph clean-up on each method
//    (no numerics-changing folds): attributes become constants, constant sub-graphs (DOVE's
//    timestep-embedding MLP, rotary tables) are computed once at load.
// The result has no parameters (they are graph constants) and cannot be trained.
// A module that cannot be frozen comes back as it was (weights restored), running unoptimised.
torch::jit::Module optimizeForInference(torch::jit::Module module, const c10::Device& device);

}  // namespace dove
