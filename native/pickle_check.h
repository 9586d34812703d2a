// Validation of the pickles inside a TorchScript archive (data.pkl, constants.pkl, code/*.debug_pkl)
// before libtorch's own Unpickler reads them. That unpickler trusts its input: an out-of-range dtype
// number in a storage record indexes past a table (SIGSEGV), a storage whose element count exceeds
// its record, or a tensor whose size/stride/offset reach past its storage, give tensors over memory
// that is not theirs, an odd DICT/SETITEMS item count reads past its stack, a huge memo id allocates
// without bound. checkPickle runs the same opcodes over an abstract stack and refuses all of that;
// what it accepts is a pickle libtorch's unpickler handles without undefined behaviour.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace dove {

struct PickleRules {
  // Size in bytes of the tensor record `key` (e.g. "data/0"), nullopt when the archive has none.
  std::function<std::optional<std::size_t>(const std::string& key)> recordSize;
  // The folder of this pickle's tensor records ("data/", "constants/").
  std::string tensorDir;
  // Debug pickles (source ranges) hold plain values only: no tensors, no classes (typed lists of
  // torch.jit._pickle are fine).
  bool plainValuesOnly = false;
};

// Throws DoveException NOT_TORCHSCRIPT naming `name` and what is wrong (an unsupported construct:
// quantized or sparse tensors, tensor subclasses, RRefs; or a malformed / out-of-bounds one).
void checkPickle(const std::string& name, const char* data, std::size_t size, const PickleRules& rules);

}  // namespace dove
