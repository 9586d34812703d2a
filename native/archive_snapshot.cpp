// Model file snapshots (archive_snapshot.h).
#include "archive_snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "common.h"

namespace dove {
namespace {

uint16_t u16(const std::string& b, std::size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | static_cast<uint8_t>(b[at + 1]) << 8);
}
uint32_t u32(const std::string& b, std::size_t at) {
  return static_cast<uint32_t>(u16(b, at)) | static_cast<uint32_t>(u16(b, at + 2)) << 16;
}

struct Entry {
  std::string name;  // as in the directory, archive folder included
  uint16_t method = 0;
  uint64_t compressed = 0;
  uint64_t size = 0;
  uint64_t header = 0;  // local header offset
  uint64_t data = 0;    // payload offset
};

struct Range {
  uint64_t begin;
  uint64_t end;
};

bool overlaps(const Range& a, const Range& b) { return a.begin < b.end && b.begin < a.end; }

// "archive/data/0" and "archive/constants/3" (tensor payloads), not "archive/data.pkl".
bool isTensorRecord(const std::string& name) {
  const auto slash = name.find('/');
  if (slash == std::string::npos) return false;
  const std::string rest = name.substr(slash + 1);
  for (const char* dir : {"data/", "constants/"}) {
    const std::size_t n = std::strlen(dir);
    if (rest.compare(0, n, dir) == 0 && rest.size() > n && rest.find('/', n) == std::string::npos) return true;
  }
  return false;
}

}  // namespace

struct ArchiveSnapshot::Impl {
  int fd = -1;
  uint64_t size = 0;
  std::map<uint64_t, std::string> pinned;  // begin -> bytes; everything else comes from the file
  std::vector<Entry> entries;               // empty when the directory was not read (all pinned)
  std::vector<Range> structure;             // the central directory and the end of the file

  std::string readAt(uint64_t pos, uint64_t n) const {
    std::string out(static_cast<std::size_t>(n), '\0');
    uint64_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd, out.data() + done, static_cast<std::size_t>(n - done), static_cast<off_t>(pos + done));
      if (got < 0 && errno == EINTR) continue;
      DOVE_CHECK(got > 0, "IO_ERROR", "Reading the model file failed (it changed while it was read?)");
      done += static_cast<uint64_t>(got);
    }
    return out;
  }

  // The directory as this snapshot reads it, or nothing when the file is not a plain (non-zip64)
  // zip it can read: then every byte is pinned and libtorch's reader judges the file.
  std::vector<Entry> directory() {
    if (size < 22) return {};
    const uint64_t tailSize = std::min<uint64_t>(size, 22 + 65535);
    structure = {{size - tailSize, size}};
    const std::string tail = readAt(size - tailSize, tailSize);
    std::size_t eocd = std::string::npos;
    for (std::size_t i = tail.size() - 22 + 1; i-- > 0;) {
      if (u32(tail, i) == 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd == std::string::npos) return {};
    const uint16_t count = u16(tail, eocd + 10);
    const uint32_t cdSize = u32(tail, eocd + 12);
    const uint32_t cdOffset = u32(tail, eocd + 16);
    if (count == 0xffff || cdSize == 0xffffffff || cdOffset == 0xffffffff) return {};  // zip64
    if (static_cast<uint64_t>(cdOffset) + cdSize > size) return {};
    structure.push_back({cdOffset, static_cast<uint64_t>(cdOffset) + cdSize});
    const std::string cd = readAt(cdOffset, cdSize);
    std::vector<Entry> out;
    std::size_t at = 0;
    for (uint16_t i = 0; i < count; ++i) {
      if (at + 46 > cd.size() || u32(cd, at) != 0x02014b50) return {};
      Entry e;
      e.method = u16(cd, at + 10);
      e.compressed = u32(cd, at + 20);
      e.size = u32(cd, at + 24);
      const uint16_t nameLength = u16(cd, at + 28);
      const std::size_t next = at + 46 + nameLength + u16(cd, at + 30) + u16(cd, at + 32);
      e.header = u32(cd, at + 42);
      if (next > cd.size() || e.compressed == 0xffffffff || e.size == 0xffffffff || e.header == 0xffffffff) return {};
      e.name = cd.substr(at + 46, nameLength);
      if (e.header + 30 > size) return {};
      const std::string local = readAt(e.header, 30);
      if (u32(local, 0) != 0x04034b50) return {};
      e.data = e.header + 30 + u16(local, 26) + u16(local, 28);
      if (e.data + e.compressed > size) return {};
      out.push_back(std::move(e));
      at = next;
    }
    return out;
  }
};

std::shared_ptr<ArchiveSnapshot> snapshotArchive(const std::string& path) {
  auto impl = std::make_unique<ArchiveSnapshot::Impl>();
  impl->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  DOVE_CHECK(impl->fd >= 0, "IO_ERROR", "Model file '" + path + "' cannot be read: " + std::strerror(errno));
  auto snapshot = std::make_shared<ArchiveSnapshot>(std::move(impl));
  ArchiveSnapshot::Impl& s = *snapshot->impl_;
  // statx (glibc 2.28) rather than fstat, whose symbol is glibc 2.33's: the prebuilt addon's baseline is 2.28.
  struct statx st {};
  DOVE_CHECK(::statx(s.fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &st) == 0 && S_ISREG(st.stx_mode), "IO_ERROR",
             "Model file '" + path + "' is not a readable file");
  s.size = static_cast<uint64_t>(st.stx_size);

  // Payloads that may stay in the file: stored tensor records that no other record, header or the
  // directory overlaps. Everything else is pinned.
  s.entries = s.directory();
  std::vector<Range> fromFile;
  std::vector<Range> mustPin;
  for (const Entry& e : s.entries) {
    const bool payloadFromFile = e.method == 0 && isTensorRecord(e.name) && e.compressed > 0;
    if (payloadFromFile) {
      fromFile.push_back({e.data, e.data + e.compressed});
      mustPin.push_back({e.header, e.data});
    } else {
      mustPin.push_back({e.header, e.data + e.compressed});
    }
  }
  // The central directory and the end of the file, where the directory is looked for, stay pinned.
  mustPin.insert(mustPin.end(), s.structure.begin(), s.structure.end());
  fromFile.erase(std::remove_if(fromFile.begin(), fromFile.end(),
                                [&](const Range& r) {
                                  return std::any_of(mustPin.begin(), mustPin.end(), [&](const Range& p) { return overlaps(r, p); });
                                }),
                 fromFile.end());
  std::sort(fromFile.begin(), fromFile.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  uint64_t at = 0;
  for (const Range& r : fromFile) {
    if (r.begin > at) s.pinned.emplace(at, s.readAt(at, r.begin - at));
    at = std::max(at, r.end);
  }
  if (at < s.size) s.pinned.emplace(at, s.readAt(at, s.size - at));
  return snapshot;
}

ArchiveSnapshot::ArchiveSnapshot(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ArchiveSnapshot::~ArchiveSnapshot() {
  if (impl_ && impl_->fd >= 0) ::close(impl_->fd);
}

size_t ArchiveSnapshot::size() const { return static_cast<size_t>(impl_->size); }

size_t ArchiveSnapshot::read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const {
  const Impl& s = *impl_;
  auto* out = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n && pos + done < s.size) {
    const uint64_t p = pos + done;
    auto next = s.pinned.upper_bound(p);  // first chunk starting after p
    if (next != s.pinned.begin()) {
      auto chunk = std::prev(next);
      const uint64_t end = chunk->first + chunk->second.size();
      if (p < end) {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(n - done, end - p));
        std::memcpy(out + done, chunk->second.data() + (p - chunk->first), take);
        done += take;
        continue;
      }
    }
    // A tensor payload: from the file, up to the next pinned chunk.
    const uint64_t limit = next == s.pinned.end() ? s.size : next->first;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n - done, limit - p));
    const ssize_t got = ::pread(s.fd, out + done, want, static_cast<off_t>(p));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the file shrank: a short read, which libtorch reports
    done += static_cast<size_t>(got);
  }
  return done;
}

bool ArchiveSnapshot::agreesWith(caffe2::serialize::PyTorchStreamReader& reader) const {
  const std::vector<Entry>& entries = impl_->entries;
  if (entries.empty()) return true;  // nothing is served from the file
  const std::vector<std::string> records = reader.getAllRecords();
  if (records.size() != entries.size()) return false;
  for (const Entry& e : entries) {
    const auto slash = e.name.find('/');
    if (slash == std::string::npos) return false;
    const std::string name = e.name.substr(slash + 1);
    if (!reader.hasRecord(name) || reader.getRecordSize(name) != e.size || reader.getRecordOffset(name) != e.data) return false;
  }
  return true;
}

}  // namespace dove
