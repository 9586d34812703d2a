// The weights hash that ties a compiled package to the TorchScript file it was compiled from
// (python/dove/aoti_export.py weights_hash computes the same in Python).
#pragma once

#include "common.h"

namespace dove {

// SHA-256 (hex) over every parameter and buffer of `module`, by name in sorted order: for each the
// UTF-8 line "name NUL dtype NUL d0,d1,... NUL", then the tensor's contiguous bytes (host order).
std::string weightsHash(const torch::jit::Module& module);

}  // namespace dove
