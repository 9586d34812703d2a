// Atomic file writes for everything the addon saves (ScriptModule.save, the trainer's optimizer
// state): a crash, a full disk or a file-size limit leaves either the old file or the complete new
// one under the target name, never part of one, and the failure is a DoveException IO_ERROR.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace dove {

// Receives the file's bytes in order. It always reports every byte taken: libtorch's zip writer
// (PyTorchStreamWriter) treats a short write as an error it throws again from its destructor, which
// terminated the process (SIGABRT on a full disk); the first write error is kept and reported once
// the serializer has returned.
using ByteSink = std::function<std::size_t(const void*, std::size_t)>;

// Runs `produce(sink)` into a sibling temp file, fsyncs it, renames it over `path` and fsyncs the
// directory. Any failure (ENOSPC, EFBIG, EIO, a throw from `produce`, fsync, rename) removes the temp
// file and throws DoveException IO_ERROR naming `what` and `path`. Any thread.
void writeFileAtomically(const std::string& path, const std::string& what,
                         const std::function<void(const ByteSink&)>& produce);

}  // namespace dove
