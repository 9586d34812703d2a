// What loadModule checks in a model file before libtorch runs or trusts anything in it, and after
// torch::jit::load. A model file is code: its TorchScript runs with the process's rights. See
// docs/MODEL_FORMAT.md, "Model files are code", for the rules and how the operator list was derived.
#pragma once

#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/script.h>

#include <memory>
#include <string>

namespace dove {

// Takes a snapshot of `path` (archive_snapshot.h) and checks it; the real load must read the returned
// adapter, so that what is loaded is exactly what was checked. Throws DoveException:
// - NOT_TORCHSCRIPT: not a TorchScript zip archive libtorch can load safely (flatbuffer or pre-1.4
//   formats, records larger than the file, pickles that pickle_check.h refuses, source nested or
//   chained deeper than the compiler's stack allows), naming what is wrong;
// - UNSAFE_MODEL (unless `trusted`): some method of some class in the archive, __setstate__ (which
//   runs at load) included, calls an operator that touches files, other processes or process-wide
//   state, starts threads that outlive the call, or skips memory bounds checks, or the archive
//   uses a native (torchbind) class; the message names the operator and the method.
std::shared_ptr<caffe2::serialize::ReadAdapterInterface> inspectModelFile(const std::string& path, bool trusted);

// After torch::jit::load: every tensor the module holds (parameters, buffers, other attributes,
// graph constants, in every submodule) is dense and lies inside its storage. Throws NOT_TORCHSCRIPT.
void checkModuleTensors(const torch::jit::Module& module, const std::string& path);

}  // namespace dove
