// SHA-256 of a module's weights with the OpenSSL that Node itself exports to addons (node's headers
// ship openssl/; the symbols resolve against the node binary), so no second crypto library is linked.
#include "weights_hash.h"

#include <openssl/evp.h>

#include <map>

namespace dove {
namespace {

struct DigestContext {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  DigestContext() { DOVE_CHECK(ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1, "INTERNAL", "SHA-256 unavailable"); }
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;
  void update(const void* data, std::size_t size) {
    DOVE_CHECK(EVP_DigestUpdate(ctx, data, size) == 1, "INTERNAL", "SHA-256 update failed");
  }
};

}  // namespace

std::string weightsHash(const torch::jit::Module& module) {
  std::map<std::string, at::Tensor> entries;  // sorted by name
  for (const auto& p : module.named_parameters(/*recurse=*/true)) entries[p.name] = p.value;
  for (const auto& b : module.named_buffers(/*recurse=*/true)) entries[b.name] = b.value;
  DigestContext digest;
  for (const auto& [name, value] : entries) {
    const at::Tensor t = value.detach().to(at::kCPU).contiguous();
    std::string header = name + '\0' + dtypeName(t.scalar_type()) + '\0';
    for (int64_t d = 0; d < t.dim(); ++d) header += (d > 0 ? "," : "") + std::to_string(t.size(d));
    header += '\0';
    digest.update(header.data(), header.size());
    if (t.nbytes() > 0) digest.update(t.data_ptr(), t.nbytes());
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  DOVE_CHECK(EVP_DigestFinal_ex(digest.ctx, out, &length) == 1, "INTERNAL", "SHA-256 final failed");
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (unsigned int i = 0; i < length; ++i) {
    text += hex[out[i] >> 4];
    text += hex[out[i] & 15];
  }
  return text;
}

}  // namespace dove
