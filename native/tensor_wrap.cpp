// Tensor handles (napi Externals over TensorBoxes, see "Tensor handles" below). Memory crosses the
// boundary without copies in both directions:
// - tensorFromArray wraps the typed array's own memory and holds a strong reference to its
//   ArrayBuffer until libtorch frees the storage; that can happen on any thread, so the reference
//   is released through a queue drained on the JS thread (napi refs are JS-thread only). The buffer
//   is pinned (Node's markAsUntransferable), and every use of the tensor on the JS thread checks it
//   is still attached and as long as it was (see "JS-backed memory" below).
// - data() returns a typed array over the tensor's memory: the original ArrayBuffer for JS-backed
//   tensors, otherwise an external ArrayBuffer owning a heap at::Tensor.
#include <cstring>
#include <array>
#include <cstdint>
#include <new>

#include "common.h"
#include "shape_math.h"
#include "tensor_wrap.h"
#include "cuda_state.h"

namespace dove {

// ---------------------------------------------------------------------------------------------
// Release queue
void drainReleaseQueue(Napi::Env env, Napi::Function, ReleaseQueue* queue, void*);

struct ReleaseQueue {
  std::mutex mutex;
  bool closed = false;   // the env's cleanup hook ran: nothing drains `pending` any more
  bool envGone = false;  // the env finished finalizing (see releaseQueue): no napi calls after this
  std::vector<napi_ref> pending;
  napi_env env = nullptr;
  std::thread::id jsThread;
  napi_ref sentinel = nullptr;
  // Wakes the JS thread to drain `pending`; unref'd so it never keeps the process alive.
  Napi::TypedThreadSafeFunction<ReleaseQueue, void, drainReleaseQueue> wake;
  bool wakeScheduled = false;

  // Any thread. On the JS thread the reference is dropped at once, also during the env's teardown:
  // Node frees no reference an addon made (napi_create_reference) when the env goes, and the
  // teardown finalizes every live tensor, whose storage lets go of its array here. Skipping that
  // would leak one reference per JS-backed tensor alive at a worker's exit (LeakSanitizer, asan.md).
  void release(napi_ref ref) {
    std::lock_guard<std::mutex> lock(mutex);
    if (std::this_thread::get_id() == jsThread) {
      if (!envGone) napi_delete_reference(env, ref);
      return;
    }
    if (closed) return;  // another thread during teardown: the env's thread no longer listens
    pending.push_back(ref);
    if (!wakeScheduled) wakeScheduled = wake.NonBlockingCall() == napi_ok;
  }
};

void drainReleaseQueue(Napi::Env env, Napi::Function, ReleaseQueue* queue, void*) {
  if (env == nullptr || queue == nullptr) return;
  std::vector<napi_ref> refs;
  {
    std::lock_guard<std::mutex> lock(queue->mutex);
    queue->wakeScheduled = false;
    if (queue->closed) return;
    refs.swap(queue->pending);
  }
  for (napi_ref ref : refs) napi_delete_reference(env, ref);
}

namespace {

std::shared_ptr<ReleaseQueue> releaseQueue(Napi::Env env) {
  AddonState& state = addonState(env);
  if (!state.releaseQueue) {
    auto queue = std::make_shared<ReleaseQueue>();
    queue->env = env;
    queue->jsThread = std::this_thread::get_id();
    queue->wake = decltype(queue->wake)::New(env, "dove.releaseQueue", 0, 1, queue.get());
    queue->wake.Unref(env);
    state.releaseQueue = queue;
    // Before the env goes: stop accepting releases from other threads, drop what they queued, and
    // let the TSFN go. JS-thread releases stay allowed until the sentinel below is finalized.
    env.AddCleanupHook([weak = std::weak_ptr<ReleaseQueue>(queue), raw = static_cast<napi_env>(env)]() {
      if (auto q = weak.lock()) {
        std::lock_guard<std::mutex> lock(q->mutex);
        q->closed = true;
        for (napi_ref ref : q->pending) napi_delete_reference(raw, ref);
        q->pending.clear();
        q->wake.Abort();
      }
    });
    // When the env is torn down it runs every pending finalizer, newest first, then frees itself.
    // This object is made at addon init, before any tensor, so its finalizer runs after every
    // tensor's: from then on a release must not touch the env (a tensor freed later, e.g. by a
    // static destructor, just lets the reference go with the env).
    napi_value sentinel = nullptr;
    NAPI_THROW_IF_FAILED(env, napi_create_object(env, &sentinel), queue);
    NAPI_THROW_IF_FAILED(env, napi_create_reference(env, sentinel, 1, &queue->sentinel), queue);
    NAPI_THROW_IF_FAILED(env,
                         napi_add_finalizer(
                             env, sentinel, new std::shared_ptr<ReleaseQueue>(queue),
                             [](napi_env env, void* data, void*) {
                               std::unique_ptr<std::shared_ptr<ReleaseQueue>> keep(static_cast<std::shared_ptr<ReleaseQueue>*>(data));
                               ReleaseQueue& q = **keep;
                               std::lock_guard<std::mutex> lock(q.mutex);
                               napi_delete_reference(env, q.sentinel);
                               q.sentinel = nullptr;
                               q.envGone = true;
                             },
                             nullptr, nullptr),
                         queue);
  }
  return state.releaseQueue;
}

// ---------------------------------------------------------------------------------------------
// JS-backed memory
//
// A tensor made by tensorFromArray reads and writes the JS ArrayBuffer's memory directly, so that
// memory must stay where it was for as long as libtorch may touch it. JS has three ways to pull it
// away: detaching the buffer (structuredClone / postMessage with a transfer list; the memory then
// belongs to the receiver and is freed when the receiver is collected), shrinking a resizable
// ArrayBuffer (the pages past the new length become inaccessible), and SharedArrayBuffers (shared
// with other threads, and not ArrayBuffers to Node-API). So:
// - resizable ArrayBuffers and SharedArrayBuffers are refused when the tensor is made;
// - the buffer is marked untransferable (lib/core/native.ts hands Node's markAsUntransferable to the
//   addon): a transfer list naming it then copies instead of detaching, so a queued or running call
//   keeps valid memory;
// - every use on the JS thread (each tensor* function, each argument of run/runSync/trainStep/
//   collectives) checks that the buffer is still attached, at the same address, at least as long
//   (backingIntact), and an async call checks its JS-backed inputs again when it settles
//   (JsInputs): a detach by any route the pin does not cover fails the call instead of returning
//   results computed from memory that changed owner.

// Owner of the JS ArrayBuffer behind a JS-backed tensor (the storage DataPtr's context).
struct JsBacking {
  std::shared_ptr<ReleaseQueue> queue;
  napi_ref buffer = nullptr;
  const char* base = nullptr;  // first byte of the ArrayBuffer
  std::size_t length = 0;      // its byte length at wrap time
};

void deleteJsBacking(void* context) {
  std::unique_ptr<JsBacking> backing(static_cast<JsBacking*>(context));
  backing->queue->release(backing->buffer);
}

const JsBacking* jsBackingOf(const at::Tensor& tensor) {
  if (!tensor.defined() || !tensor.has_storage()) return nullptr;
  const c10::DataPtr& ptr = tensor.storage().data_ptr();
  if (ptr.get_deleter() != &deleteJsBacking) return nullptr;
  return static_cast<const JsBacking*>(ptr.get_context());
}

// JS thread: the ArrayBuffer behind `backing` is attached, at the address the tensor was made over,
// and no shorter than it was.
bool backingIntact(napi_env env, const JsBacking& backing) {
  napi_value buffer = nullptr;
  if (napi_get_reference_value(env, backing.buffer, &buffer) != napi_ok || buffer == nullptr) return false;
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, buffer, &detached) != napi_ok || detached) return false;
  void* data = nullptr;
  std::size_t length = 0;
  if (napi_get_arraybuffer_info(env, buffer, &data, &length) != napi_ok) return false;
  return data == backing.base && length >= backing.length;
}

constexpr const char* kBackingGone =
    "was detached (transferred) or shrunk after the tensor was made over it, so its memory is no longer the "
    "tensor's; make a new tensor from the data";

// JS thread: throws INVALID_ARGUMENT when `tensor` is JS-backed and its buffer is no longer intact.
// Tensors of another env (a worker's) cannot be checked from here and never reach it: handles are
// per env.
void checkBacking(napi_env env, const at::Tensor& tensor, const char* what) {
  const JsBacking* backing = jsBackingOf(tensor);
  if (backing == nullptr || backing->queue->env != env) return;
  DOVE_CHECK(backingIntact(env, *backing), "INVALID_ARGUMENT", std::string("The ArrayBuffer behind ") + what + " " + kBackingGone);
}

Napi::Array toJsArray(Napi::Env env, c10::IntArrayRef values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out.Set(i, Napi::Number::New(env, static_cast<double>(values[i])));
  return out;
}

const char* typedArrayName(napi_typedarray_type type) {
  // In napi_typedarray_type order (napi_int8_array = 0 ... napi_biguint64_array = 10).
  static constexpr const char* kNames[] = {"Int8Array",    "Uint8Array",   "Uint8ClampedArray", "Int16Array",
                                           "Uint16Array",  "Int32Array",   "Uint32Array",       "Float32Array",
                                           "Float64Array", "BigInt64Array", "BigUint64Array"};
  static_assert(napi_int8_array == 0 && napi_biguint64_array == 10);
  return static_cast<std::size_t>(type) < std::size(kNames) ? kNames[type] : "TypedArray";
}

// The typed array that carries each dtype across the boundary.
napi_typedarray_type arrayTypeFor(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return napi_float32_array;
    case at::kDouble: return napi_float64_array;
    case at::kInt: return napi_int32_array;
    case at::kLong: return napi_bigint64_array;
    case at::kByte: return napi_uint8_array;
    case at::kBool: return napi_uint8_array;
    case at::kHalf: return napi_uint16_array;
    case at::kBFloat16: return napi_uint16_array;
    default:
      fail("DTYPE_MISMATCH", "Tensors of dtype " + dtypeName(type) +
                                 " have no typed array; convert first, e.g. to(null, 'float32')");
  }
}

}  // namespace

std::vector<int64_t> shapeFromJs(Napi::Value value, const char* what) {
  DOVE_CHECK(value.IsArray(), "INVALID_ARGUMENT",
             std::string("Expected an array of non-negative integers for ") + what);
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  shape.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value v = array.Get(i);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    DOVE_CHECK(v.IsNumber() && d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<int64_t>(d)),
               "INVALID_ARGUMENT",
               std::string("Expected non-negative integer for ") + what + "[" + std::to_string(i) +
                   "] but received " + v.ToString().Utf8Value());
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

namespace {

struct ExternalTensor {
  at::Tensor tensor;
};

void finalizeExternalTensor(napi_env, void*, void* hint) {
  std::unique_ptr<ExternalTensor> owned(static_cast<ExternalTensor*>(hint));
}

// A typed array over `tensor`'s memory (contiguous CPU). JS-backed storage is handed back as its
// original ArrayBuffer: a second external buffer over memory V8 already owns would alias it.
Napi::Value typedArrayOver(Napi::Env env, const at::Tensor& tensor, bool* external = nullptr) {
  const napi_typedarray_type arrayType = arrayTypeFor(tensor.scalar_type());
  const std::size_t elementSize = tensor.element_size();
  const std::size_t length = static_cast<std::size_t>(tensor.numel());
  const std::size_t nbytes = length * elementSize;
  napi_value buffer = nullptr;
  std::size_t byteOffset = 0;

  if (const JsBacking* backing = jsBackingOf(tensor); backing != nullptr && backing->queue->env == env) {
    napi_value original = nullptr;
    if (napi_get_reference_value(env, backing->buffer, &original) == napi_ok && original != nullptr) {
      DOVE_CHECK(backingIntact(env, *backing), "INVALID_ARGUMENT", std::string("The ArrayBuffer behind this tensor ") + kBackingGone);
      buffer = original;
      byteOffset = static_cast<std::size_t>(static_cast<const char*>(tensor.data_ptr()) - backing->base);
    }
  }
  if (buffer == nullptr && nbytes == 0) {
    buffer = Napi::ArrayBuffer::New(env, 0);
  }
  if (buffer == nullptr) {
    auto owned = std::make_unique<ExternalTensor>(ExternalTensor{tensor});
    napi_status status = napi_create_external_arraybuffer(env, tensor.data_ptr(), nbytes, finalizeExternalTensor,
                                                          owned.get(), &buffer);
    if (status == napi_ok) {
      owned.release();  // the ArrayBuffer's finalizer owns it now
      if (external != nullptr) *external = true;
    } else {
      // Runtimes with a V8 sandbox (Electron) refuse external buffers: copy instead.
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
      }
      Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, nbytes);
      std::memcpy(copy.Data(), tensor.data_ptr(), nbytes);
      buffer = copy;
    }
  }
  napi_value out = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, arrayType, length, buffer, byteOffset, &out), Napi::Value());
  return Napi::Value(env, out);
}

// The ArrayBuffer of a typed array that a tensor may wrap: a plain, attached, fixed-length
// ArrayBuffer (see "JS-backed memory"). Throws INVALID_ARGUMENT otherwise.
Napi::ArrayBuffer wrappableBuffer(Napi::Env env, Napi::TypedArray array) {
  const std::string type = typedArrayName(array.TypedArrayType());
  napi_value value = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, array, nullptr, nullptr, nullptr, &value, nullptr), Napi::ArrayBuffer());
  bool plain = false;
  NAPI_THROW_IF_FAILED(env, napi_is_arraybuffer(env, value, &plain), Napi::ArrayBuffer());
  DOVE_CHECK(plain, "INVALID_ARGUMENT",
             "Expected a typed array over an ArrayBuffer but the " + type +
                 " is over a SharedArrayBuffer (other threads may change it while libtorch reads it); copy it first, "
                 "e.g. new " + type + "(view)");
  bool detached = false;
  NAPI_THROW_IF_FAILED(env, napi_is_detached_arraybuffer(env, value, &detached), Napi::ArrayBuffer());
  DOVE_CHECK(!detached, "INVALID_ARGUMENT",
             "Expected a typed array over a live ArrayBuffer but the " + type + "'s buffer was detached (transferred)");
  Napi::ArrayBuffer buffer(env, value);
  AddonState& state = addonState(env);
  if (!state.resizableGetter.IsEmpty()) {
    const Napi::Value resizable = state.resizableGetter.Call(buffer, {});
    DOVE_CHECK(!resizable.IsBoolean() || !resizable.As<Napi::Boolean>().Value(), "INVALID_ARGUMENT",
               "Expected a typed array over a fixed-length ArrayBuffer but the " + type +
                   " is over a resizable one (resize() could take memory away from the tensor); copy it first, e.g. new " +
                   type + "(view)");
  }
  return buffer;
}

at::Tensor tensorFromTypedArray(Napi::Env env, Napi::TypedArray array, const std::vector<int64_t>& shape,
                                at::ScalarType dtype) {
  const napi_typedarray_type expected = arrayTypeFor(dtype);
  const std::string type = typedArrayName(array.TypedArrayType());
  DOVE_CHECK(array.TypedArrayType() == expected, "DTYPE_MISMATCH",
             std::string("Expected ") + typedArrayName(expected) + " for dtype " + dtypeName(dtype) + " but received " + type);
  Napi::ArrayBuffer ab = wrappableBuffer(env, array);
  const std::size_t length = array.ElementLength();
  const std::optional<int64_t> numel = shape::elementCount(shape);
  DOVE_CHECK(numel.has_value(), "SHAPE_MISMATCH",
             "Shape " + shape::toString(shape) + " has more elements than a 64-bit count holds; the " + type + " has " +
                 std::to_string(length));
  DOVE_CHECK(static_cast<uint64_t>(*numel) == length, "SHAPE_MISMATCH",
             "Shape " + shape::toString(shape) + " needs " + std::to_string(*numel) + " elements but the " + type + " has " +
                 std::to_string(length));
  const std::size_t nbytes = array.ByteLength();
  char* base = static_cast<char*>(ab.Data());
  const std::size_t bufferBytes = ab.ByteLength();
  DOVE_CHECK(array.ByteOffset() <= bufferBytes && nbytes <= bufferBytes - array.ByteOffset(), "INVALID_ARGUMENT",
             "The typed array reaches past the end of its ArrayBuffer");
  char* data = base + array.ByteOffset();
  if (dtype == at::kBool) {
    // Any byte other than 0/1 in a bool tensor is undefined behaviour in libtorch kernels.
    const auto* bytes = reinterpret_cast<const uint8_t*>(data);
    for (std::size_t i = 0; i < length; ++i) {
      DOVE_CHECK(bytes[i] <= 1, "INVALID_ARGUMENT",
                 "Expected 0 or 1 in every byte of a bool tensor but element " + std::to_string(i) + " is " +
                     std::to_string(bytes[i]));
    }
  }
  const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  if (*numel == 0) return at::empty(shape, options);

  AddonState& state = addonState(env);
  if (!state.bufferPin.IsEmpty()) state.bufferPin.Call({ab});
  auto backing = std::make_unique<JsBacking>();
  backing->queue = releaseQueue(env);
  backing->base = base;
  backing->length = bufferBytes;
  NAPI_THROW_IF_FAILED(env, napi_create_reference(env, ab, 1, &backing->buffer), at::Tensor());
  // From here the DataPtr owns the backing (and its reference): whatever throws below, its deleter
  // runs exactly once, when the last owner of the storage lets go.
  c10::DataPtr owner(data, backing.release(), &deleteJsBacking, c10::Device(c10::kCPU));
  c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes, std::move(owner), /*allocator=*/nullptr,
                       /*resizable=*/false);
  return at::empty({0}, options).set_(std::move(storage), 0, shape, shape::contiguousStrides(shape));
}

// ---------------------------------------------------------------------------------------------
// Tensor handles
//
// A NativeTensor is a napi External over a TensorBox: no class, no prototype, no napi_wrap, so
// making one and reading it back cost least (docs/NATIVE.md, "Tensor handles", has the numbers).
// lib/core/tensor.ts's Tensor holds the handle and calls the tensor* functions below.

struct TensorBox {
  napi_env env = nullptr;  // the env whose JS thread made it (handles never cross envs)
  at::Tensor tensor;       // undefined after dispose()
  int64_t reported = 0;    // bytes reported to V8 (AdjustExternalMemory)
  // Weak: the last external ArrayBuffer data() made over this tensor's memory (see TensorData).
  Napi::Reference<Napi::ArrayBuffer> cachedBuffer;
  const void* cachedPtr = nullptr;
  std::size_t cachedBytes = 0;

  // JS thread: the tensor, for any use. Throws DISPOSED after dispose(), INVALID_ARGUMENT when the
  // JS memory under it was detached or shrunk (checkBacking).
  const at::Tensor& get() const {
    DOVE_CHECK(tensor.defined(), "DISPOSED", "Tensor was used after dispose()");
    checkBacking(env, tensor, "this tensor");
    return tensor;
  }

  void release() {
    tensor = at::Tensor();
    cachedBuffer.Reset();
    if (reported > 0) {
      int64_t ignored = 0;
      napi_adjust_external_memory(env, -reported, &ignored);
    }
    reported = 0;
  }
};

// Where every TensorBox lives: slots in slabs of 1024, 2048, ... that are never freed. A value is a
// tensor only when it is an External whose pointer is the start of a live slot here, made by the
// same env (docs/NATIVE.md, "recognises its tensors"). A lookup scans the few slabs without a lock
// (the table is append-only); taking and returning slots holds a mutex, uncontended unless worker
// threads make tensors.
class BoxArena {
 public:
  static BoxArena& instance() {
    static BoxArena* arena = new BoxArena();  // never destroyed: finalizers may run at teardown
    return *arena;
  }

  TensorBox* acquire(napi_env env) {
    Slot* slot = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (free_ == nullptr) grow();
      slot = free_;
      free_ = slot->next;
    }
    auto* box = new (slot->storage) TensorBox();
    box->env = env;
    slot->live.store(true, std::memory_order_release);
    return box;
  }

  void release(TensorBox* box) {
    Slot* slot = reinterpret_cast<Slot*>(box);  // the box is the slot's first member
    slot->live.store(false, std::memory_order_release);
    box->~TensorBox();
    std::lock_guard<std::mutex> lock(mutex_);
    slot->next = free_;
    free_ = slot;
  }

  // The live box at `p`, or null when `p` is not the start of a live slot of this arena.
  TensorBox* find(const void* p) const {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    const std::size_t count = slabCount_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count; ++i) {
      const auto first = reinterpret_cast<std::uintptr_t>(slabs_[i].slots);
      const std::size_t bytes = slabs_[i].size * sizeof(Slot);
      if (address < first || address >= first + bytes) continue;
      if ((address - first) % sizeof(Slot) != 0) return nullptr;
      auto* slot = reinterpret_cast<Slot*>(address);
      return slot->live.load(std::memory_order_acquire) ? reinterpret_cast<TensorBox*>(slot->storage) : nullptr;
    }
    return nullptr;
  }

 private:
  struct Slot {
    alignas(TensorBox) unsigned char storage[sizeof(TensorBox)];
    std::atomic<bool> live{false};
    Slot* next = nullptr;
  };
  struct Slab {
    Slot* slots = nullptr;
    std::size_t size = 0;
  };
  static constexpr std::size_t kMaxSlabs = 40;  // 1024 * (2^40 - 1) slots: never the limit

  void grow() {
    const std::size_t index = slabCount_.load(std::memory_order_relaxed);
    DOVE_CHECK(index < kMaxSlabs, "INTERNAL", "Too many live tensors");
    const std::size_t size = std::size_t{1024} << index;
    auto* slots = new Slot[size];
    for (std::size_t i = 0; i + 1 < size; ++i) slots[i].next = &slots[i + 1];
    slots[size - 1].next = free_;
    free_ = slots;
    slabs_[index] = Slab{slots, size};
    slabCount_.store(index + 1, std::memory_order_release);
  }

  std::mutex mutex_;
  Slot* free_ = nullptr;
  std::array<Slab, kMaxSlabs> slabs_{};
  std::atomic<std::size_t> slabCount_{0};
};

void finalizeBox(napi_env, void* data, void*) {
  auto* box = static_cast<TensorBox*>(data);
  box->release();
  BoxArena::instance().release(box);
}

// The box behind `value`, or null when it is not a tensor handle of this env.
TensorBox* boxOf(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return nullptr;
  void* data = nullptr;
  if (napi_get_value_external(env, value, &data) != napi_ok) return nullptr;
  TensorBox* box = BoxArena::instance().find(data);
  return box != nullptr && box->env == env ? box : nullptr;
}

// A binding function whose first argument is a tensor handle; its name is the function's data.
template <Napi::Value (*Body)(TensorBox&, const Napi::CallbackInfo&)>
Napi::Value tensorFunction(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    TensorBox* box = info.Length() >= 1 ? boxOf(info.Env(), info[0]) : nullptr;
    if (box == nullptr) {
      fail("INVALID_ARGUMENT", std::string("Expected a native tensor for the first argument of ") +
                                   static_cast<const char*>(info.Data()) + " but received " +
                                   (info.Length() >= 1 ? describeValue(info[0]) : "nothing"));
    }
    return Body(*box, info);
  });
}

Napi::Value TensorShape(TensorBox& box, const Napi::CallbackInfo& info) { return toJsArray(info.Env(), box.get().sizes()); }
Napi::Value TensorStrides(TensorBox& box, const Napi::CallbackInfo& info) { return toJsArray(info.Env(), box.get().strides()); }
Napi::Value TensorDtype(TensorBox& box, const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(box.get().scalar_type()));
}
Napi::Value TensorDevice(TensorBox& box, const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), deviceString(box.get().device()));
}
Napi::Value TensorNbytes(TensorBox& box, const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(box.get().nbytes()));
}
Napi::Value TensorIsContiguous(TensorBox& box, const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), box.get().is_contiguous());
}
Napi::Value TensorDisposed(TensorBox& box, const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !box.tensor.defined());
}

Napi::Value TensorData(TensorBox& box, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = box.get();
  arrayTypeFor(t.scalar_type());  // fail early for dtypes without a typed array
  // CUDA and non-contiguous tensors need a copy; contiguous CPU memory is shared as is.
  if (!t.device().is_cpu() || !t.is_contiguous()) return typedArrayOver(env, t.to(at::kCPU).contiguous());
  // Reuse the external buffer of an earlier data() while it lives and the storage has not moved:
  // one ArrayBuffer per tensor, and no new external-memory pressure (GC) per call.
  const std::size_t nbytes = t.nbytes();
  if (!box.cachedBuffer.IsEmpty() && box.cachedPtr == t.data_ptr() && box.cachedBytes == nbytes) {
    Napi::Value cached = box.cachedBuffer.Value();
    bool detached = true;  // a transferred external buffer: make a new one below
    if (!cached.IsEmpty() && cached.IsArrayBuffer() && napi_is_detached_arraybuffer(env, cached, &detached) == napi_ok && !detached) {
      napi_value out = nullptr;
      NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, arrayTypeFor(t.scalar_type()), static_cast<std::size_t>(t.numel()),
                                                       cached, 0, &out),
                           Napi::Value());
      return Napi::Value(env, out);
    }
  }
  bool external = false;
  Napi::Value view = typedArrayOver(env, t, &external);
  if (external) {
    box.cachedBuffer = Napi::Weak(view.As<Napi::TypedArray>().ArrayBuffer());
    box.cachedPtr = t.data_ptr();
    box.cachedBytes = nbytes;
  }
  return view;
}

Napi::Value TensorDataAddress(TensorBox& box, const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(box.get().data_ptr())));
}

Napi::Value TensorTo(TensorBox& box, const Napi::CallbackInfo& info) {
  const at::Tensor& t = box.get();
  c10::Device device = t.device();
  at::ScalarType dtype = t.scalar_type();
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) {
    DOVE_CHECK(info[1].IsString(), "INVALID_ARGUMENT", "Expected device string or null for to(device, dtype)");
    device = parseDevice(info[1].As<Napi::String>().Utf8Value());
  }
  if (info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined()) {
    DOVE_CHECK(info[2].IsString(), "INVALID_ARGUMENT", "Expected dtype string or null for to(device, dtype)");
    dtype = parseDtype(info[2].As<Napi::String>().Utf8Value());
  }
  return wrapTensor(info.Env(), t.to(device, dtype));
}

Napi::Value TensorContiguous(TensorBox& box, const Napi::CallbackInfo& info) { return wrapTensor(info.Env(), box.get().contiguous()); }
Napi::Value TensorClone(TensorBox& box, const Napi::CallbackInfo& info) { return wrapTensor(info.Env(), box.get().clone()); }

Napi::Value TensorSlice0(TensorBox& box, const Napi::CallbackInfo& info) {
  const at::Tensor& t = box.get();
  DOVE_CHECK(t.dim() >= 1, "SHAPE_MISMATCH", "slice0 needs a tensor with at least one dimension");
  const int64_t size = t.size(0);
  const int64_t start = integerIn(info[1], "start", 0, static_cast<double>(size));
  const int64_t end = integerIn(info[2], "end", 0, static_cast<double>(size));
  DOVE_CHECK(start <= end, "INVALID_ARGUMENT",
             "Expected start <= end for slice0 but received " + std::to_string(start) + " > " + std::to_string(end));
  return wrapTensor(info.Env(), t.narrow(0, start, end - start));
}

// (1, ...) -> (n, ...) as a view (stride 0 along dim 0, no copy): one encoding decoded at n lengths.
Napi::Value TensorExpand0(TensorBox& box, const Napi::CallbackInfo& info) {
  const at::Tensor& t = box.get();
  DOVE_CHECK(t.dim() >= 1 && t.size(0) == 1, "SHAPE_MISMATCH",
             "expand0 needs a tensor whose first dimension is 1 but shape is " + shape::toString(t.sizes()));
  std::vector<int64_t> sizes = t.sizes().vec();
  sizes[0] = integerIn(info[1], "n", 1, 65536);
  return wrapTensor(info.Env(), t.expand(sizes));
}

Napi::Value TensorItem(TensorBox& box, const Napi::CallbackInfo& info) {
  const at::Tensor& t = box.get();
  DOVE_CHECK(t.numel() == 1, "SHAPE_MISMATCH", "item() needs a tensor with exactly one element but shape is " + shape::toString(t.sizes()));
  return Napi::Number::New(info.Env(), t.item<double>());
}

Napi::Value TensorDispose(TensorBox& box, const Napi::CallbackInfo& info) {
  box.release();
  return info.Env().Undefined();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Shared helpers (common.h)

Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor) {
  // JS-backed memory is already known to V8 through its ArrayBuffer.
  const bool report = jsBackingOf(tensor) == nullptr;
  TensorBox* box = BoxArena::instance().acquire(env);
  box->tensor = std::move(tensor);
  napi_value out = nullptr;
  const napi_status status = napi_create_external(env, box, finalizeBox, nullptr, &out);
  if (status != napi_ok) {
    BoxArena::instance().release(box);
    NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  }
  // From here the External's finalizer owns the box.
  if (report) {
    box->reported = static_cast<int64_t>(box->tensor.nbytes());
    if (box->reported > 0) Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  }
  return Napi::Value(env, out);
}

bool isTensor(Napi::Value value) { return boxOf(value.Env(), value) != nullptr; }

const at::Tensor* wrappedTensor(napi_env env, napi_value value) {
  TensorBox* box = boxOf(env, value);
  return box == nullptr ? nullptr : &box->get();
}

void JsInputs::add(const at::Tensor& tensor) {
  if (jsBackingOf(tensor) != nullptr) tensors_.push_back(tensor);
}

void JsInputs::add(const c10::IValue& value) {
  if (value.isTensor()) {
    add(value.toTensor());
  } else if (value.isTensorList()) {
    for (const at::Tensor& t : value.toTensorVector()) add(t);
  } else if (value.isList()) {
    for (const c10::IValue& item : value.toListRef()) add(item);
  } else if (value.isTuple()) {
    for (const c10::IValue& item : value.toTupleRef().elements()) add(item);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) add(entry.value());
  }
}

void JsInputs::verify(napi_env env, const std::string& what) const {
  for (const at::Tensor& t : tensors_) {
    const JsBacking* backing = jsBackingOf(t);
    if (backing == nullptr || backing->queue->env != env || backing->queue->envGone) continue;
    DOVE_CHECK(backingIntact(env, *backing), "INVALID_ARGUMENT",
               "The ArrayBuffer behind an input of " + what +
                   " was detached (transferred) or shrunk while the call was queued or running; its result was "
                   "discarded (keep the buffer until the call settles)");
  }
}

at::Tensor unwrapTensor(Napi::Value value, const char* what) {
  TensorBox* box = boxOf(value.Env(), value);
  DOVE_CHECK(box != nullptr, "INVALID_ARGUMENT", std::string("Expected a Tensor for ") + what + " but received " + describeValue(value));
  return box->get();
}

std::string deviceString(const c10::Device& device) {
  if (device.is_cpu()) return "cpu";
  if (device.is_cuda()) return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  return device.str();
}

c10::Device parseDevice(const std::string& spec) {
  std::optional<c10::Device> device;
  try {
    device.emplace(spec);
  } catch (const c10::Error&) {
  }
  DOVE_CHECK(device.has_value() && (device->is_cpu() || device->is_cuda()), "INVALID_ARGUMENT",
             "Expected device 'cpu', 'cuda' or 'cuda:N' but received '" + spec + "'");
  if (device->is_cpu()) return c10::Device(c10::kCPU);
  DOVE_CHECK(cudaLibtorchLoaded(), "DEVICE_UNAVAILABLE",
             "Device '" + spec + "' was requested but libtorch's CUDA libraries are not loaded (the API loads them when a "
             "CUDA device is asked for; dove doctor shows where they were looked for)");
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  const int64_t index = device->has_index() ? device->index() : 0;
  DOVE_CHECK(index < count, "DEVICE_UNAVAILABLE",
             count == 0 ? "Device '" + spec + "' was requested but no CUDA GPU is available (devices: cpu)"
                        : "Device '" + spec + "' was requested but only " + std::to_string(count) +
                              " CUDA device(s) exist (cuda:0 .. cuda:" + std::to_string(count - 1) + ")");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

// The dtypes JS names (DType in binding.d.ts).
constexpr std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int32", at::kInt},     {"int64", at::kLong},     {"uint8", at::kByte},   {"bool", at::kBool},
};

std::string dtypeName(at::ScalarType type) {
  for (const auto& [name, t] : kDtypes) {
    if (t == type) return name;
  }
  if (type == at::kChar) return "int8";
  if (type == at::kShort) return "int16";
  return c10::toString(type);
}

at::ScalarType parseDtype(const std::string& name) {
  for (const auto& [n, type] : kDtypes) {
    if (name == n) return type;
  }
  fail("INVALID_ARGUMENT",
       "Expected dtype float32, float64, float16, bfloat16, int32, int64, uint8 or bool but received '" + name + "'");
}

namespace {

Napi::Value TensorFromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() >= 1 && info[0].IsTypedArray(), "INVALID_ARGUMENT",
             "Expected a typed array (Float32Array, Float64Array, Int32Array, BigInt64Array, Uint8Array, "
             "Uint16Array) or Buffer for data but received " +
                 std::string(info.Length() < 1 ? "nothing" : info[0].IsArray() ? "a plain array" : info[0].ToString().Utf8Value()));
  const std::vector<int64_t> shape = shapeFromJs(info[1], "shape");
  DOVE_CHECK(info.Length() >= 3 && info[2].IsString(), "INVALID_ARGUMENT", "Expected dtype string for tensorFromArray");
  const at::ScalarType dtype = parseDtype(info[2].As<Napi::String>().Utf8Value());
  return wrapTensor(env, tensorFromTypedArray(env, info[0].As<Napi::TypedArray>(), shape, dtype));
}

Napi::Value IsTensor(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), info.Length() >= 1 && isTensor(info[0]));
}

// The ArrayBuffer.prototype.resizable getter as the addon found it at load (user code that
// redefines the property later cannot hide a resizable buffer); absent on runtimes without resizable
// buffers.
Napi::FunctionReference resizableGetterOf(Napi::Env env) {
  Napi::Object global = env.Global();
  Napi::Value arrayBuffer = global.Get("ArrayBuffer");
  Napi::Value object = global.Get("Object");
  if (!arrayBuffer.IsFunction() || !object.IsObject()) return {};
  Napi::Value describe = object.As<Napi::Object>().Get("getOwnPropertyDescriptor");
  if (!describe.IsFunction()) return {};
  Napi::Value descriptor = describe.As<Napi::Function>().Call(
      object, {arrayBuffer.As<Napi::Object>().Get("prototype"), Napi::String::New(env, "resizable")});
  if (!descriptor.IsObject()) return {};
  Napi::Value getter = descriptor.As<Napi::Object>().Get("get");
  return getter.IsFunction() ? Napi::Persistent(getter.As<Napi::Function>()) : Napi::FunctionReference();
}

Napi::Value SetBufferPin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info.Length() == 1 && info[0].IsFunction(), "INVALID_ARGUMENT",
             "setBufferPin expects a function (arrayBuffer) => void, e.g. worker_threads.markAsUntransferable");
  addonState(env).bufferPin = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// The boxes behind an array of tensor handles (INVALID_ARGUMENT naming the index of a non-tensor).
std::vector<TensorBox*> boxesOf(const Napi::CallbackInfo& info, const char* what) {
  DOVE_CHECK(info.Length() >= 1 && info[0].IsArray(), "INVALID_ARGUMENT", std::string("Expected an array of tensors for ") + what);
  Napi::Array list = info[0].As<Napi::Array>();
  DOVE_CHECK(list.Length() <= 4096, "INVALID_ARGUMENT", std::string("Expected at most 4096 tensors for ") + what);
  std::vector<TensorBox*> boxes;
  for (uint32_t i = 0; i < list.Length(); i++) {
    TensorBox* box = boxOf(info.Env(), list.Get(i));
    DOVE_CHECK(box != nullptr, "INVALID_ARGUMENT", std::string("Expected a native tensor at index ") + std::to_string(i) + " of " + what);
    boxes.push_back(box);
  }
  return boxes;
}

// One call for what a caller checks on several results: [{dtype, shape, data?}] (data where asked,
// as tensorData gives it): a model's outputs are checked without a call per property.
Napi::Value TensorsInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<TensorBox*> boxes = boxesOf(info, "tensorsInfo");
  DOVE_CHECK(info.Length() >= 2 && info[1].IsArray() && info[1].As<Napi::Array>().Length() == boxes.size(), "INVALID_ARGUMENT",
             "Expected one boolean per tensor for the data flags of tensorsInfo");
  Napi::Array flags = info[1].As<Napi::Array>();
  Napi::Array out = Napi::Array::New(env, boxes.size());
  for (uint32_t i = 0; i < boxes.size(); i++) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("dtype", TensorDtype(*boxes[i], info));
    entry.Set("shape", TensorShape(*boxes[i], info));
    if (flags.Get(i).ToBoolean().Value()) entry.Set("data", TensorData(*boxes[i], info));
    out.Set(i, entry);
  }
  return out;
}

// dispose() of several tensors in one call (each idempotent, as tensorDispose).
Napi::Value TensorsDispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (TensorBox* box : boxesOf(info, "tensorsDispose")) box->release();
  return env.Undefined();
}

}  // namespace

void initTensors(Napi::Env env, Napi::Object exports) {
  releaseQueue(env);
  addonState(env).resizableGetter = resizableGetterOf(env);
  exportFunctions(env, exports, {{"setBufferPin", SetBufferPin}, {"tensorFromArray", TensorFromArray}, {"isTensor", IsTensor},
                                 {"tensorsInfo", TensorsInfo}, {"tensorsDispose", TensorsDispose}});
  const std::pair<const char*, Napi::Function::Callback> functions[] = {
      {"tensorShape", tensorFunction<TensorShape>},
      {"tensorStrides", tensorFunction<TensorStrides>},
      {"tensorDtype", tensorFunction<TensorDtype>},
      {"tensorDevice", tensorFunction<TensorDevice>},
      {"tensorNbytes", tensorFunction<TensorNbytes>},
      {"tensorIsContiguous", tensorFunction<TensorIsContiguous>},
      {"tensorDisposed", tensorFunction<TensorDisposed>},
      {"tensorData", tensorFunction<TensorData>},
      {"tensorDataAddress", tensorFunction<TensorDataAddress>},
      {"tensorTo", tensorFunction<TensorTo>},
      {"tensorContiguous", tensorFunction<TensorContiguous>},
      {"tensorClone", tensorFunction<TensorClone>},
      {"tensorSlice0", tensorFunction<TensorSlice0>},
      {"tensorExpand0", tensorFunction<TensorExpand0>},
      {"tensorItem", tensorFunction<TensorItem>},
      {"tensorDispose", tensorFunction<TensorDispose>},
  };
  // The name doubles as the function's data, for its error messages (a string literal: static).
  for (const auto& [name, callback] : functions) {
    exports.Set(name, Napi::Function::New(env, callback, name, const_cast<char*>(name)));
  }
}

}  // namespace dove
