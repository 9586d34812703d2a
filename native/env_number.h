// Tuning knobs read from the environment once (docs/API.md lists them).
#pragma once

#include <algorithm>
#include <cstdlib>

namespace dove {

// The non-negative integer at the start of environment variable `name`, at most `most`; `fallback`
// when it is unset, empty, negative or not a number.
inline long nonNegativeFromEnv(const char* name, long fallback, long most) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  char* end = nullptr;
  const long parsed = std::strtol(env, &end, 10);
  return end != env && parsed >= 0 ? std::min(parsed, most) : fallback;
}

}  // namespace dove
