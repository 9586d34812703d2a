// Tensor geometry arithmetic for every size that arrives from outside the addon: shapes from JS
// (tensorFromArray, zeros) and the shapes, strides, offsets and storage sizes of tensors read from a
// model file (model_inspect.cpp). Every product and sum is overflow-checked here, in one place: a
// shape whose element count wraps around int64 (e.g. [4,5,5581,8681,49477,384773] -> 4) must be
// refused, never used.
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dove::shape {

// a * b for non-negative a and b, or nullopt when it does not fit int64.
inline std::optional<int64_t> mul(int64_t a, int64_t b) {
  int64_t out = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

inline std::optional<int64_t> add(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// Number of elements of `sizes`, or nullopt when a size is negative or the product overflows. A zero
// anywhere makes the count 0 whatever the other sizes are (libtorch agrees), but the others must
// still be representable, so the product is checked over the non-zero sizes as well.
inline std::optional<int64_t> elementCount(c10::IntArrayRef sizes) {
  int64_t nonZero = 1;
  bool zero = false;
  for (int64_t s : sizes) {
    if (s < 0) return std::nullopt;
    if (s == 0) {
      zero = true;
      continue;
    }
    const auto next = mul(nonZero, s);
    if (!next) return std::nullopt;
    nonZero = *next;
  }
  return zero ? 0 : nonZero;
}

// Bytes of `count` elements of `itemsize` bytes, or nullopt on overflow.
inline std::optional<int64_t> byteSize(int64_t count, int64_t itemsize) { return mul(count, itemsize); }

// Row-major strides of `sizes` (sizes already validated by elementCount).
inline std::vector<int64_t> contiguousStrides(c10::IntArrayRef sizes) {
  std::vector<int64_t> strides(sizes.size(), 1);
  int64_t running = 1;
  for (std::size_t i = sizes.size(); i-- > 0;) {
    strides[i] = running;
    running *= sizes[i] > 1 ? sizes[i] : 1;  // cannot overflow: bounded by the element count
  }
  return strides;
}

// The byte range [first, end) of a storage that a strided view touches: sizes, strides and offset
// in elements, itemsize in bytes. nullopt when the arithmetic overflows, a size is negative or the
// view reaches before the storage's first byte; an empty view (a zero size) touches nothing: {0, 0}.
struct ByteRange {
  int64_t first = 0;
  int64_t end = 0;
};

inline std::optional<ByteRange> touchedBytes(c10::IntArrayRef sizes, c10::IntArrayRef strides, int64_t offset,
                                             int64_t itemsize) {
  if (sizes.size() != strides.size() || itemsize <= 0) return std::nullopt;
  const auto count = elementCount(sizes);
  if (!count) return std::nullopt;
  if (*count == 0) return ByteRange{};
  // Lowest and highest element index reached: offset plus, per dimension, (size - 1) * stride on
  // the side the stride's sign points to.
  int64_t low = offset;
  int64_t high = offset;
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(sizes[d] - 1, strides[d], &reach)) return std::nullopt;
    int64_t& side = reach < 0 ? low : high;
    const auto next = add(side, reach);
    if (!next) return std::nullopt;
    side = *next;
  }
  if (low < 0) return std::nullopt;
  const auto first = mul(low, itemsize);
  const auto past = add(high, 1);
  const auto end = past ? mul(*past, itemsize) : std::nullopt;
  if (!first || !end) return std::nullopt;
  return ByteRange{*first, *end};
}

// Whether a view lies inside a storage of `storageBytes` bytes.
inline bool fitsStorage(c10::IntArrayRef sizes, c10::IntArrayRef strides, int64_t offset, int64_t itemsize,
                        int64_t storageBytes) {
  if (offset < 0 || storageBytes < 0) return false;
  const auto range = touchedBytes(sizes, strides, offset, itemsize);
  return range && range->first >= 0 && range->end <= storageBytes;
}

// "[4, 5, 6]"
inline std::string toString(c10::IntArrayRef values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

}  // namespace dove::shape
