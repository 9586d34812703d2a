// Atomic file writes (atomic_file.h).
#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common.h"

namespace dove {
namespace {

namespace fs = std::filesystem;

// The temp file: closed and removed by the destructor unless it was renamed into place. Its
// destructor never throws.
struct TempFile {
  int fd = -1;
  std::string path;
  bool renamed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!renamed) ::unlink(path.c_str());
  }
};

std::string describeErrno(int error) {
  std::string text = std::strerror(error);
  if (error == ENOSPC) text += " (the disk is full)";
  if (error == EFBIG) text += " (over the file size limit)";
  if (error == EDQUOT) text += " (over the disk quota)";
  return text;
}

}  // namespace

void writeFileAtomically(const std::string& path, const std::string& what,
                         const std::function<void(const ByteSink&)>& produce) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  DOVE_CHECK(fs::is_directory(dir, ec), "IO_ERROR",
             "Cannot save " + what + " to '" + path + "': directory '" + dir.string() + "' does not exist");
  static std::atomic<unsigned> serial{0};
  TempFile temp;
  temp.path = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
  temp.fd = ::open(temp.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (temp.fd < 0) {
    temp.renamed = true;  // nothing was created, so nothing to remove (and never someone else's file)
    fail("IO_ERROR", "Cannot save " + what + ": creating '" + temp.path + "' failed: " + describeErrno(errno));
  }
  int writeError = 0;
  const ByteSink sink = [&](const void* data, std::size_t n) -> std::size_t {
    const char* p = static_cast<const char*>(data);
    std::size_t left = writeError == 0 ? n : 0;
    while (left > 0) {
      const ssize_t written = ::write(temp.fd, p, left);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) {
        writeError = written < 0 ? errno : EIO;
        break;
      }
      p += written;
      left -= static_cast<std::size_t>(written);
    }
    return n;
  };
  try {
    produce(sink);
  } catch (...) {
    auto [code, message] = classifyException(std::current_exception());
    fail("IO_ERROR", "Saving " + what + " to '" + path + "' failed: " + message);
  }
  if (writeError != 0) fail("IO_ERROR", "Saving " + what + " to '" + path + "' failed: " + describeErrno(writeError));
  if (::fsync(temp.fd) != 0) fail("IO_ERROR", "Saving " + what + " to '" + path + "' failed: fsync: " + describeErrno(errno));
  const int fd = temp.fd;
  temp.fd = -1;
  if (::close(fd) != 0) fail("IO_ERROR", "Saving " + what + " to '" + path + "' failed: close: " + describeErrno(errno));
  if (std::rename(temp.path.c_str(), path.c_str()) != 0) {
    fail("IO_ERROR", "Saving " + what + ": renaming '" + temp.path + "' to '" + path + "' failed: " + describeErrno(errno));
  }
  temp.renamed = true;
  // Best effort: some filesystems refuse to fsync a directory.
  const int dirFd = ::open(dir.string().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
}

}  // namespace dove
