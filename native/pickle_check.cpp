// Validation of TorchScript archive pickles before libtorch's Unpickler reads them (pickle_check.h).
//
// The opcodes, and what each does to the stack, the marks and the memo, are those of libtorch
// 2.11's torch/csrc/jit/serialization/unpickler.cpp (Unpickler::readInstruction and readGlobal);
// anything that unpickler would not accept is refused here too, and so is everything it accepts
// without checking. Values are tracked only as far as the checks need them: ints and strings by
// value, tuples/lists/dicts by their items, storages by dtype and byte size, every other object
// opaquely.
#include "pickle_check.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstring>
#include <memory>
#include <vector>

#include "common.h"
#include "shape_math.h"

namespace dove {
namespace {

// Deeper nesting is refused: libtorch destroys nested values recursively, and no export nests
// anywhere near this (a module tree of depth d nests about 3d deep).
constexpr int kMaxDepth = 512;

struct Value;
using Ref = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Tensor, Object };
  Kind kind = Kind::None;
  int64_t integer = 0;
  std::string text;
  std::vector<Ref> items;  // tuple/list elements; dict keys and values, alternating
  int depth = 0;           // 0 for scalars, 1 + deepest item for containers
  // A container becomes sealed once it is an item of another value or the argument of a call:
  // libtorch's pickler never adds to a container after that, and refusing it rules out cycles.
  bool sealed = false;
  int64_t itemsize = 0;  // tensors: bytes per element
  int64_t bytes = 0;     // tensors: bytes of the storage they view
};

Ref make(Value::Kind kind, int64_t integer = 0) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  v->integer = integer;
  return v;
}

const char* kindName(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "a bool";
    case Value::Kind::Int: return "an int";
    case Value::Kind::Float: return "a float";
    case Value::Kind::String: return "a string";
    case Value::Kind::Tuple: return "a tuple";
    case Value::Kind::List: return "a list";
    case Value::Kind::Dict: return "a dict";
    case Value::Kind::Tensor: return "a tensor";
    case Value::Kind::Object: return "an object";
  }
  return "a value";
}

// The dtypes a storage may hold, by their torch.*Storage names: the dense ones TorchScript archives
// use. Quantized, 8-bit float, bit and unsigned wide types are refused (libtorch would index its
// tables with any integer it finds in a storage record).
constexpr std::pair<const char*, at::ScalarType> kStorages[] = {
    {"ByteStorage", at::kByte},   {"CharStorage", at::kChar},     {"ShortStorage", at::kShort},
    {"IntStorage", at::kInt},     {"LongStorage", at::kLong},     {"HalfStorage", at::kHalf},
    {"FloatStorage", at::kFloat}, {"DoubleStorage", at::kDouble}, {"ComplexFloatStorage", at::kComplexFloat},
    {"ComplexDoubleStorage", at::kComplexDouble}, {"BoolStorage", at::kBool}, {"BFloat16Storage", at::kBFloat16},
};

std::optional<at::ScalarType> storageDtype(int64_t code) {
  for (const auto& [name, type] : kStorages) {
    if (static_cast<int64_t>(type) == code) return type;
  }
  return std::nullopt;
}

bool isDevice(const std::string& text) {
  try {
    c10::Device device(text);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

enum class Global {
  Class,
  RebuildTensor,
  Device,
  Complex,
  OrderedDict,
  BuildIntList,
  BuildTensorList,
  BuildDoubleList,
  BuildBoolList,
  RestoreTypeTag,
  TagIntList,
};

class Checker {
 public:
  Checker(const std::string& name, const char* data, std::size_t size, const PickleRules& rules)
      : name_(name), data_(data), size_(size), rules_(rules) {}

  void run() {
    DOVE_CHECK(size_ >= 2 && static_cast<uint8_t>(data_[0]) == 0x80 && static_cast<uint8_t>(data_[1]) == 2,
               "NOT_TORCHSCRIPT", where() + "is not a protocol-2 pickle");
    pos_ = 2;
    for (;;) {
      const std::size_t at = pos_;
      const uint8_t op = byte();
      opAt_ = at;
      if (op == '.') break;
      step(op);
    }
    DOVE_CHECK(stack_.size() == 1, "NOT_TORCHSCRIPT",
               where() + "ends with " + std::to_string(stack_.size()) + " values on its stack instead of 1");
  }

 private:
  [[noreturn]] void bad(const std::string& what) const { fail("NOT_TORCHSCRIPT", where() + what); }
  std::string where() const { return "the archive's " + name_ + " (byte " + std::to_string(opAt_) + "): "; }

  uint8_t byte() {
    if (pos_ >= size_) bad("ends before its STOP opcode");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  template <typename T>
  T read() {
    if (size_ - pos_ < sizeof(T)) bad("ends in the middle of a value");
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string bytes(std::size_t n) {
    if (size_ - pos_ < n) bad("has a string longer than the rest of the pickle");
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  std::string line() {
    const void* end = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (end == nullptr) bad("has a GLOBAL name without its newline");
    const std::size_t n = static_cast<const char*>(end) - (data_ + pos_);
    std::string s(data_ + pos_, n);
    pos_ += n + 1;
    for (char c : s) {
      const bool ok = c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!ok) bad("has a GLOBAL name that is not a Python identifier");
    }
    return s;
  }

  void push(Ref v) { stack_.push_back(std::move(v)); }
  Ref pop() {
    if (stack_.empty()) bad("pops an empty stack");
    Ref v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ref& top() {
    if (stack_.empty()) bad("reads an empty stack");
    return stack_.back();
  }
  std::size_t popMark() {
    if (marks_.empty()) bad("closes a MARK that was never set");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) bad("closes a MARK above the top of its stack");
    return mark;
  }
  // Puts `item` into `container` (appending to a list or a dict, or building a tuple/list/dict).
  void adopt(Value& container, Ref item) {
    if (item.get() == &container) bad("puts a container inside itself");
    item->sealed = true;
    container.depth = std::max(container.depth, item->depth + 1);
    if (container.depth > kMaxDepth) bad("nests values more than " + std::to_string(kMaxDepth) + " deep");
    container.items.push_back(std::move(item));
  }
  Ref collect(Value::Kind kind, std::size_t from) {
    Ref out = make(kind);
    for (std::size_t i = from; i < stack_.size(); ++i) adopt(*out, stack_[i]);
    stack_.resize(from);
    return out;
  }
  void requireMutable(const Value& v, Value::Kind kind, const char* op) {
    if (v.kind != kind) bad(std::string(op) + " on " + kindName(v.kind));
    if (v.sealed) bad(std::string(op) + " on a container that is already inside another value");
  }

  void step(uint8_t op) {
    switch (op) {
      case ']': push(make(Value::Kind::List)); break;
      case ')': push(make(Value::Kind::Tuple)); break;
      case '}': push(make(Value::Kind::Dict)); break;
      case 'q': memoPut(read<uint8_t>()); break;
      case 'r': memoPut(read<uint32_t>()); break;
      case 'h': memoGet(read<uint8_t>()); break;
      case 'j': memoGet(read<uint32_t>()); break;
      case '(': marks_.push_back(stack_.size()); break;
      case 0x88:
      case 0x89: push(make(Value::Kind::Bool, op == 0x88)); break;
      case 'N': push(make(Value::Kind::None)); break;
      case 'K': pushInt(read<uint8_t>()); break;
      case 'M': pushInt(read<uint16_t>()); break;
      case 'J': pushInt(read<int32_t>()); break;
      case 0x8a: {
        if (read<uint8_t>() != 8) bad("has a LONG1 that is not 8 bytes long");
        pushInt(read<int64_t>());
        break;
      }
      case 'X': {
        Ref v = make(Value::Kind::String);
        v->text = bytes(read<uint32_t>());
        push(v);
        break;
      }
      case 'G': {
        read<double>();
        push(make(Value::Kind::Float));
        break;
      }
      case 't': push(collect(Value::Kind::Tuple, popMark())); break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const std::size_t n = op - 0x84;
        if (stack_.size() < n) bad("builds a tuple from more values than its stack holds");
        push(collect(Value::Kind::Tuple, stack_.size() - n));
        break;
      }
      case 'l': push(collect(Value::Kind::List, popMark())); break;
      case 'e': extendBelowMark(Value::Kind::List, "APPENDS"); break;
      case 'd': {
        const std::size_t mark = popMark();
        if ((stack_.size() - mark) % 2 != 0) bad("builds a dict from an odd number of values");
        push(collect(Value::Kind::Dict, mark));
        break;
      }
      case 'u': extendBelowMark(Value::Kind::Dict, "SETITEMS"); break;
      case 's': {
        if (stack_.size() < 3) bad("SETITEM with fewer than 3 values on its stack");
        Value& dict = *stack_[stack_.size() - 3];
        requireMutable(dict, Value::Kind::Dict, "SETITEM");
        adopt(dict, stack_[stack_.size() - 2]);
        adopt(dict, stack_[stack_.size() - 1]);
        stack_.resize(stack_.size() - 2);
        break;
      }
      case 'c': global(); break;
      case 0x81: pop(); break;  // NEWOBJ: the empty argument tuple; the call is BUILD/REDUCE's
      case 'b':
      case 'R': call(); break;
      case 'Q': storage(); break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        bad(std::string("has opcode ") + hex + ", which TorchScript archives never use");
      }
    }
  }

  void pushInt(int64_t value) { push(make(Value::Kind::Int, value)); }
  // APPENDS / SETITEMS: the values above the last MARK go into the list / dict below it.
  void extendBelowMark(Value::Kind kind, const char* op) {
    const std::size_t mark = popMark();
    const bool dict = kind == Value::Kind::Dict;
    if (mark == 0) bad(std::string(op) + " without a " + (dict ? "dict" : "list") + " below its MARK");
    if (dict && (stack_.size() - mark) % 2 != 0) bad(std::string(op) + " with an odd number of values");
    Value& container = *stack_[mark - 1];
    requireMutable(container, kind, op);
    for (std::size_t i = mark; i < stack_.size(); ++i) adopt(container, stack_[i]);
    stack_.resize(mark);
  }
  void memoPut(std::size_t id) {
    // libtorch fills a gap up to any id with empty values (a 4-byte id could ask for billions);
    // its own pickler numbers memo entries one after another.
    if (id > memo_.size()) bad("memoizes under id " + std::to_string(id) + " with " + std::to_string(memo_.size()) + " ids in use");
    if (id == memo_.size()) memo_.push_back(top());
    else memo_[id] = top();
  }
  void memoGet(std::size_t id) {
    if (id >= memo_.size()) bad("reads memo id " + std::to_string(id) + " that was never set");
    push(memo_[id]);
  }

  void global() {
    const std::string module = line();
    const std::string name = line();
    if (rules_.plainValuesOnly && module != "torch.jit._pickle") {
      bad("refers to " + module + "." + name + " where only plain values belong");
    }
    auto entry = [&](Global g) {
      globals_.push_back(g);
      pushInt(static_cast<int64_t>(globals_.size() - 1));
    };
    if (module == "__main__" && name == "IntList") return entry(Global::TagIntList);
    if (module == "torch.jit._pickle") {
      if (name == "restore_type_tag") return entry(Global::RestoreTypeTag);
      if (name == "build_intlist") return entry(Global::BuildIntList);
      if (name == "build_tensorlist") return entry(Global::BuildTensorList);
      if (name == "build_doublelist") return entry(Global::BuildDoubleList);
      if (name == "build_boollist") return entry(Global::BuildBoolList);
    }
    if (module == "torch._utils" && name == "_rebuild_tensor_v2") return entry(Global::RebuildTensor);
    if (module == "builtins" && name == "complex") return entry(Global::Complex);
    if (module == "collections" && name == "OrderedDict") return entry(Global::OrderedDict);
    if (module == "torch" && name == "device") return entry(Global::Device);
    if (module == "torch") {
      for (const auto& [storage, type] : kStorages) {
        if (name == storage) return pushInt(static_cast<int64_t>(type));
      }
      bad("uses torch." + name + ", which dove-encoder does not load (quantized, sparse and other special "
          "tensors are not supported)");
    }
    const bool special = module == "__main__" || module == "torch.jit._pickle" || module == "torch._utils" ||
                         module == "torch._tensor" || module == "torch.distributed.rpc" || module == "builtins" ||
                         module == "collections";
    if (special) {
      bad("uses " + module + "." + name +
          ", which dove-encoder does not load (quantized or sparse tensors, tensor subclasses, RRefs and tensor tables "
          "are not supported)");
    }
    entry(Global::Class);
  }

  // REDUCE and BUILD (the same to libtorch): <global index> <argument> -> the global applied.
  void call() {
    if (stack_.size() < 2) bad("calls with fewer than 2 values on its stack");
    std::swap(stack_[stack_.size() - 1], stack_[stack_.size() - 2]);
    Ref index = pop();
    if (index->kind != Value::Kind::Int || index->integer < 0 || static_cast<uint64_t>(index->integer) >= globals_.size()) {
      bad("calls something that is not a GLOBAL it declared");
    }
    switch (globals_[static_cast<std::size_t>(index->integer)]) {
      case Global::Class: {
        Ref arg = pop();
        arg->sealed = true;
        Ref obj = make(Value::Kind::Object);
        obj->depth = arg->depth + 1;
        if (obj->depth > kMaxDepth) bad("nests values more than " + std::to_string(kMaxDepth) + " deep");
        push(obj);
        break;
      }
      case Global::RebuildTensor: push(rebuildTensor(*pop())); break;
      case Global::Device: {
        Ref arg = pop();
        const Value& s = element(*arg, 0, Value::Kind::String, "torch.device");
        if (!isDevice(s.text)) bad("names device '" + s.text + "', which is not a device");
        push(make(Value::Kind::Object));
        break;
      }
      case Global::Complex: {
        Ref arg = pop();
        if (arg->kind != Value::Kind::Tuple || arg->items.size() != 2) bad("builds a complex from something other than 2 floats");
        element(*arg, 0, Value::Kind::Float, "complex");
        element(*arg, 1, Value::Kind::Float, "complex");
        push(make(Value::Kind::Object));
        break;
      }
      case Global::OrderedDict: top() = make(Value::Kind::None); break;
      case Global::BuildIntList: typedList(Value::Kind::Int, "build_intlist"); break;
      case Global::BuildTensorList: typedList(Value::Kind::Tensor, "build_tensorlist"); break;
      case Global::BuildDoubleList: typedList(Value::Kind::Float, "build_doublelist"); break;
      case Global::BuildBoolList: typedList(Value::Kind::Bool, "build_boollist"); break;
      case Global::RestoreTypeTag: {
        Ref arg = pop();
        const Value& data = element(*arg, 0, std::nullopt, "restore_type_tag");
        element(*arg, 1, Value::Kind::String, "restore_type_tag");
        if (data.kind != Value::Kind::List && data.kind != Value::Kind::Dict) bad("tags the type of something that is not a list or dict");
        push(arg->items[0]);
        break;
      }
      case Global::TagIntList: {
        const Value& list = *top();
        if (list.kind != Value::Kind::List) bad("tags something other than a list as a list of ints");
        for (const Ref& item : list.items) {
          if (item->kind != Value::Kind::Int) bad("tags a list holding " + std::string(kindName(item->kind)) + " as a list of ints");
        }
        break;
      }
    }
  }

  const Value& element(const Value& tuple, std::size_t i, std::optional<Value::Kind> kind, const char* what) {
    if (tuple.kind != Value::Kind::Tuple || tuple.items.size() <= i) bad(std::string("gives ") + what + " too few arguments");
    const Value& v = *tuple.items[i];
    if (kind && v.kind != *kind) {
      bad(std::string("gives ") + what + " " + kindName(v.kind) + " where " + kindName(*kind) + " belongs (argument " +
          std::to_string(i) + ")");
    }
    return v;
  }

  void typedList(Value::Kind kind, const char* what) {
    Ref arg = pop();
    const Value& list = element(*arg, 0, Value::Kind::List, what);
    for (const Ref& item : list.items) {
      if (item->kind != kind) bad(std::string(what) + " over a list holding " + kindName(item->kind));
    }
    push(arg->items[0]);
  }

  std::vector<int64_t> ints(const Value& tuple, const char* what) {
    if (tuple.kind != Value::Kind::Tuple) bad(std::string("gives a tensor ") + what + " that is not a tuple of ints");
    std::vector<int64_t> out;
    out.reserve(tuple.items.size());
    for (const Ref& item : tuple.items) {
      if (item->kind != Value::Kind::Int) bad(std::string("gives a tensor ") + what + " that is not a tuple of ints");
      out.push_back(item->integer);
    }
    return out;
  }

  // ('storage', dtype, key, device, numel) -> the storage tensor libtorch builds over record <key>.
  void storage() {
    if (rules_.plainValuesOnly) bad("holds a tensor where only plain values belong");
    Ref arg = pop();
    if (arg->kind != Value::Kind::Tuple || arg->items.size() != 5) bad("has a storage record that is not a 5-tuple");
    if (element(*arg, 0, Value::Kind::String, "a storage record").text != "storage") bad("has a persistent id that is not a storage");
    const int64_t code = element(*arg, 1, Value::Kind::Int, "a storage record").integer;
    const std::optional<at::ScalarType> dtype = storageDtype(code);
    if (!dtype) bad("has a storage of dtype number " + std::to_string(code) + ", which dove-encoder does not load");
    const std::string& key = element(*arg, 2, Value::Kind::String, "a storage record").text;
    const std::string& device = element(*arg, 3, Value::Kind::String, "a storage record").text;
    if (!isDevice(device)) bad("has a storage on device '" + device + "', which is not a device");
    const int64_t numel = element(*arg, 4, Value::Kind::Int, "a storage record").integer;
    const int64_t itemsize = static_cast<int64_t>(c10::elementSize(*dtype));
    const std::optional<int64_t> bytes = shape::byteSize(numel, itemsize);
    if (numel < 0 || !bytes) bad("has a storage of " + std::to_string(numel) + " elements");
    if (numel > 0) {
      const std::optional<std::size_t> record = rules_.recordSize(rules_.tensorDir + key);
      if (!record) bad("refers to tensor data '" + rules_.tensorDir + key + "', which the archive does not hold");
      if (static_cast<uint64_t>(*bytes) > *record) {
        bad("declares storage '" + key + "' of " + std::to_string(numel) + " " + c10::toString(*dtype) + " elements (" +
            std::to_string(*bytes) + " bytes) but its record holds " + std::to_string(*record) + " bytes");
      }
    }
    Ref tensor = make(Value::Kind::Tensor);
    tensor->itemsize = itemsize;
    tensor->bytes = *bytes;
    push(tensor);
  }

  // _rebuild_tensor_v2((storage, offset, size, stride, requires_grad, hooks[, metadata])): a view of
  // the storage that libtorch sets up without any bounds check.
  Ref rebuildTensor(const Value& arg) {
    if (arg.kind != Value::Kind::Tuple || (arg.items.size() != 6 && arg.items.size() != 7)) {
      bad("rebuilds a tensor from something other than a 6- or 7-tuple");
    }
    const Value& storage = element(arg, 0, Value::Kind::Tensor, "_rebuild_tensor_v2");
    const int64_t offset = element(arg, 1, Value::Kind::Int, "_rebuild_tensor_v2").integer;
    const std::vector<int64_t> sizes = ints(*arg.items[2], "size");
    const std::vector<int64_t> strides = ints(*arg.items[3], "stride");
    element(arg, 4, Value::Kind::Bool, "_rebuild_tensor_v2");
    if (arg.items.size() == 7) element(arg, 6, Value::Kind::Dict, "_rebuild_tensor_v2");
    if (sizes.size() != strides.size()) bad("rebuilds a tensor with " + std::to_string(sizes.size()) + " sizes but " + std::to_string(strides.size()) + " strides");
    if (!shape::fitsStorage(sizes, strides, offset, storage.itemsize, storage.bytes)) {
      bad("has a tensor of size " + shape::toString(sizes) + ", stride " + shape::toString(strides) + " and offset " +
          std::to_string(offset) + " that reaches outside its storage of " + std::to_string(storage.bytes) + " bytes");
    }
    Ref tensor = make(Value::Kind::Tensor);
    tensor->itemsize = storage.itemsize;
    tensor->bytes = storage.bytes;
    return tensor;
  }

  const std::string& name_;
  const char* data_;
  std::size_t size_;
  const PickleRules& rules_;
  std::size_t pos_ = 0;
  std::size_t opAt_ = 0;
  std::vector<Ref> stack_;
  std::vector<std::size_t> marks_;
  std::vector<Ref> memo_;
  std::vector<Global> globals_;
};

}  // namespace

void checkPickle(const std::string& name, const char* data, std::size_t size, const PickleRules& rules) {
  Checker(name, data, size, rules).run();
}

}  // namespace dove
