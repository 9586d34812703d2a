// A model file as the loader sees it (model_inspect.cpp): the bytes libtorch parses (the zip
// directory, local headers, pickles, code, extra files) are copied into memory once, so the checks
// and the load read exactly the same bytes even when the file changes in between (a file on a
// network or FUSE mount can answer a second read differently). Only the payloads of stored tensor
// records are read from the file as the load needs them: their content is never trusted, and their
// size comes from the copied directory. So a load holds the file's bytes in memory once, as before,
// not twice.
#pragma once

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <memory>
#include <string>

namespace dove {

class ArchiveSnapshot;

// Opens and copies `path` (IO_ERROR when it cannot be read).
std::shared_ptr<ArchiveSnapshot> snapshotArchive(const std::string& path);

class ArchiveSnapshot final : public caffe2::serialize::ReadAdapterInterface {
 public:
  ~ArchiveSnapshot() override;
  size_t size() const override;
  size_t read(uint64_t pos, void* buf, size_t n, const char* what = "") const override;
  // Whether libtorch's zip reader over this snapshot sees the records where this snapshot's own
  // reading of the directory put them (same names, sizes and data offsets): otherwise an ambiguous
  // directory could place a record the checks read from memory over bytes served from the file.
  bool agreesWith(caffe2::serialize::PyTorchStreamReader& reader) const;

  struct Impl;
  explicit ArchiveSnapshot(std::unique_ptr<Impl> impl);

 private:
  friend std::shared_ptr<ArchiveSnapshot> snapshotArchive(const std::string& path);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dove
