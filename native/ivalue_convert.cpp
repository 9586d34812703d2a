// JS <-> TorchScript value conversion. JS has one number type and one array type, so the method
// schema decides: a number becomes int or float as declared, an array List[T] or Tuple.
#include <cmath>
#include <sstream>

#include "common.h"
#include "tensor_wrap.h"

namespace dove {

std::string describeValue(Napi::Value value) {
  if (value.IsUndefined()) return "undefined";
  if (value.IsNull()) return "null";
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value() ? "true" : "false";
  if (value.IsNumber()) return value.ToString().Utf8Value();
  if (value.IsBigInt()) return value.ToString().Utf8Value() + "n";
  if (value.IsString()) {
    std::string s = value.As<Napi::String>().Utf8Value();
    return "string '" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "'";
  }
  if (isTensor(value)) return "a Tensor";
  if (value.IsTypedArray()) return "a typed array (wrap it in a Tensor first)";
  if (value.IsArray()) return "an array of length " + std::to_string(value.As<Napi::Array>().Length());
  if (value.IsFunction()) return "a function";
  return "an object";
}

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

bool isSafeInteger(double d) { return std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= kMaxSafeInteger; }

[[noreturn]] void mismatch(const c10::TypePtr& expected, Napi::Value value, const std::string& where) {
  fail("INVALID_ARGUMENT",
       "Expected " + expected->annotation_str() + " for " + where + " but received " + describeValue(value));
}

bool isPlainObject(Napi::Value value) {
  return value.IsObject() && !value.IsArray() && !value.IsTypedArray() && !value.IsArrayBuffer() &&
         !value.IsFunction() && !isTensor(value);
}

int64_t toInt(Napi::Value value, const c10::TypePtr& expected, const std::string& where) {
  if (value.IsBigInt()) {
    bool lossless = false;
    int64_t v = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) fail("INVALID_ARGUMENT", "Expected a 64-bit integer for " + where + " but received " + describeValue(value));
    return v;
  }
  if (!value.IsNumber()) mismatch(expected, value, where);
  double d = value.As<Napi::Number>().DoubleValue();
  if (!isSafeInteger(d)) fail("INVALID_ARGUMENT", "Expected integer for " + where + " but received " + describeValue(value));
  return static_cast<int64_t>(d);
}

// Values passed where TorchScript accepts anything (Any, or an un-annotated container element).
c10::IValue inferIValue(Napi::Env env, Napi::Value value, const std::string& where) {
  if (value.IsNull() || value.IsUndefined()) return c10::IValue();
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value();
  if (value.IsBigInt()) return toInt(value, c10::IntType::get(), where);
  if (value.IsNumber()) {
    double d = value.As<Napi::Number>().DoubleValue();
    if (isSafeInteger(d)) return static_cast<int64_t>(d);
    return d;
  }
  if (value.IsString()) return value.As<Napi::String>().Utf8Value();
  if (isTensor(value)) return unwrapTensor(value, where.c_str());
  fail("INVALID_ARGUMENT", "Cannot infer a TorchScript type for " + where + " from " + describeValue(value) +
                               "; declare the parameter type in the scripted method");
}

// The common cases (a tensor, number or boolean where one is declared) without the path string
// toIValue takes (an allocation per argument per call); nullopt for anything else, and every error.
std::optional<c10::IValue> quickIValue(napi_env env, Napi::Value value, c10::TypeKind kind) {
  switch (kind) {
    case c10::TypeKind::TensorType:
      if (const at::Tensor* tensor = wrappedTensor(env, value)) return *tensor;
      break;
    case c10::TypeKind::FloatType:
      if (value.IsNumber()) return value.As<Napi::Number>().DoubleValue();
      break;
    case c10::TypeKind::IntType:
      if (value.IsNumber() && isSafeInteger(value.As<Napi::Number>().DoubleValue())) {
        return static_cast<int64_t>(value.As<Napi::Number>().DoubleValue());
      }
      break;
    case c10::TypeKind::BoolType:
      if (value.IsBoolean()) return value.As<Napi::Boolean>().Value();
      break;
    default:
      break;
  }
  return std::nullopt;
}

}  // namespace

c10::IValue toIValue(Napi::Env env, Napi::Value value, const c10::TypePtr& expected, const std::string& where) {
  using c10::TypeKind;
  switch (expected->kind()) {
    case TypeKind::TensorType:
      if (const at::Tensor* tensor = wrappedTensor(env, value)) return *tensor;
      mismatch(expected, value, where);
    case TypeKind::IntType:
      return toInt(value, expected, where);
    case TypeKind::FloatType:
      if (!value.IsNumber()) mismatch(expected, value, where);
      return value.As<Napi::Number>().DoubleValue();
    case TypeKind::NumberType:
      if (value.IsBigInt()) return toInt(value, expected, where);
      if (!value.IsNumber()) mismatch(expected, value, where);
      return value.As<Napi::Number>().DoubleValue();
    case TypeKind::BoolType:
      if (!value.IsBoolean()) mismatch(expected, value, where);
      return value.As<Napi::Boolean>().Value();
    case TypeKind::StringType:
      if (!value.IsString()) mismatch(expected, value, where);
      return value.As<Napi::String>().Utf8Value();
    case TypeKind::NoneType:
      if (!value.IsNull() && !value.IsUndefined()) mismatch(expected, value, where);
      return c10::IValue();
    case TypeKind::DeviceObjType:
      if (!value.IsString()) mismatch(expected, value, where);
      return parseDevice(value.As<Napi::String>().Utf8Value());
    case TypeKind::OptionalType: {
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      return toIValue(env, value, expected->expectRef<c10::OptionalType>().getElementType(), where);
    }
    case TypeKind::UnionType: {
      // First alternative that accepts the value wins, in declaration order.
      const auto& alternatives = expected->expectRef<c10::UnionType>().containedTypes();
      for (const auto& alternative : alternatives) {
        try {
          return toIValue(env, value, alternative, where);
        } catch (const DoveException&) {
        }
      }
      mismatch(expected, value, where);
    }
    case TypeKind::ListType: {
      if (!value.IsArray()) mismatch(expected, value, where);
      Napi::Array array = value.As<Napi::Array>();
      const c10::TypePtr& element = expected->expectRef<c10::ListType>().getElementType();
      c10::impl::GenericList list(element);
      const uint32_t length = array.Length();
      list.reserve(length);
      for (uint32_t i = 0; i < length; ++i) {
        Napi::Value item = array.Get(i);
        if (auto quick = quickIValue(env, item, element->kind())) list.push_back(std::move(*quick));
        else list.push_back(toIValue(env, item, element, where + "[" + std::to_string(i) + "]"));
      }
      return list;
    }
    case TypeKind::TupleType: {
      const auto& tuple = expected->expectRef<c10::TupleType>();
      const auto& elements = tuple.elements();
      if (!value.IsArray() || value.As<Napi::Array>().Length() != elements.size()) {
        fail("INVALID_ARGUMENT", "Expected an array of length " + std::to_string(elements.size()) + " (" +
                                     expected->annotation_str() + ") for " + where + " but received " + describeValue(value));
      }
      Napi::Array array = value.As<Napi::Array>();
      std::vector<c10::IValue> items;
      items.reserve(elements.size());
      for (uint32_t i = 0; i < elements.size(); ++i) {
        items.push_back(toIValue(env, array.Get(i), elements[i], where + "[" + std::to_string(i) + "]"));
      }
      if (tuple.schema()) return c10::ivalue::Tuple::createNamed(std::move(items), expected->expect<c10::TupleType>());
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case TypeKind::DictType: {
      const auto& dictType = expected->expectRef<c10::DictType>();
      const c10::TypePtr& keyType = dictType.getKeyType();
      const c10::TypePtr& valueType = dictType.getValueType();
      if (!isPlainObject(value)) mismatch(expected, value, where);
      const bool stringKeys = keyType->kind() == TypeKind::StringType;
      const bool intKeys = keyType->kind() == TypeKind::IntType;
      if (!stringKeys && !intKeys) {
        fail("INVALID_ARGUMENT", "Dict keys of type " + keyType->annotation_str() + " (" + where +
                                     ") cannot come from JS; use Dict[str, T] or Dict[int, T]");
      }
      Napi::Object object = value.As<Napi::Object>();
      Napi::Array keys = object.GetPropertyNames();
      c10::impl::GenericDict dict(keyType, valueType);
      dict.reserve(keys.Length());
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        const std::string key = keys.Get(i).ToString().Utf8Value();
        const std::string path = where + "['" + key + "']";
        c10::IValue item = toIValue(env, object.Get(key), valueType, path);
        if (stringKeys) {
          dict.insert_or_assign(key, std::move(item));
        } else {
          char* end = nullptr;
          const long long k = std::strtoll(key.c_str(), &end, 10);
          if (key.empty() || *end != '\0') fail("INVALID_ARGUMENT", "Expected integer key for " + path);
          dict.insert_or_assign(static_cast<int64_t>(k), std::move(item));
        }
      }
      return dict;
    }
    case TypeKind::AnyType:
      return inferIValue(env, value, where);
    default:
      fail("INVALID_ARGUMENT", "TorchScript type " + expected->annotation_str() + " of " + where +
                                   " cannot be passed from JS");
  }
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) {
    const at::Tensor& t = value.toTensor();
    return t.defined() ? Napi::Value(wrapTensor(env, t)) : env.Null();
  }
  if (value.isNone()) return env.Null();
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isInt()) {
    const int64_t v = value.toInt();
    if (std::fabs(static_cast<double>(v)) <= kMaxSafeInteger) return Napi::Number::New(env, static_cast<double>(v));
    return Napi::BigInt::New(env, v);
  }
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  if (value.isDevice()) return Napi::String::New(env, deviceString(value.toDevice()));
  if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    Napi::Array out = Napi::Array::New(env, elements.size());
    for (std::size_t i = 0; i < elements.size(); ++i) out.Set(i, fromIValue(env, elements[i]));
    return out;
  }
  if (value.isList()) {
    c10::List<c10::IValue> list = value.toList();
    Napi::Array out = Napi::Array::New(env, list.size());
    for (std::size_t i = 0; i < list.size(); ++i) out.Set(i, fromIValue(env, list.get(i)));
    return out;
  }
  if (value.isGenericDict()) {
    Napi::Object out = Napi::Object::New(env);
    for (const auto& entry : value.toGenericDict()) {
      const c10::IValue& key = entry.key();
      std::string name;
      if (key.isString()) name = key.toStringRef();
      else if (key.isInt()) name = std::to_string(key.toInt());
      else if (key.isBool()) name = key.toBool() ? "true" : "false";
      else fail("INVALID_ARGUMENT", "A dict with " + key.tagKind() + " keys cannot be returned to JS");
      out.Set(name, fromIValue(env, entry.value()));
    }
    return out;
  }
  if (value.isScalar()) return Napi::Number::New(env, value.toScalar().toDouble());
  fail("INVALID_ARGUMENT", "A TorchScript value of kind " + value.tagKind() + " cannot be returned to JS");
}

std::vector<c10::IValue> argsForSchema(Napi::Env env, const c10::FunctionSchema& schema, Napi::Array args) {
  const auto& declared = schema.arguments();
  const std::size_t first = (!declared.empty() && declared[0].name() == "self") ? 1 : 0;
  const std::size_t count = declared.size() - first;
  std::size_t required = 0;
  for (std::size_t i = first; i < declared.size(); ++i) {
    if (!declared[i].default_value()) required = i - first + 1;
  }
  const std::size_t given = args.Length();
  if (given > count || given < required) {
    // Built only on failure: this runs on every call and a string per call is measurable.
    std::ostringstream signature;
    for (std::size_t i = first; i < declared.size(); ++i) {
      const auto& arg = declared[i];
      signature << (i > first ? ", " : "") << arg.name() << ": " << arg.type()->annotation_str()
                << (arg.default_value() ? "?" : "");
    }
    const std::string expected = required == count ? std::to_string(count)
                                                   : std::to_string(required) + " to " + std::to_string(count);
    fail("INVALID_ARGUMENT", schema.name() + " expects " + expected + " argument(s) (" + signature.str() +
                                 ") but received " + std::to_string(given));
  }
  std::vector<c10::IValue> out;
  out.reserve(count + 1);  // room for `self`, which the caller puts in front without reallocating
  for (std::size_t i = first; i < declared.size(); ++i) {
    const auto& arg = declared[i];
    const std::size_t j = i - first;
    Napi::Value value = j < given ? args.Get(static_cast<uint32_t>(j)) : env.Undefined();
    if (auto quick = quickIValue(env, value, arg.type()->kind())) {
      out.push_back(std::move(*quick));
      continue;
    }
    if (value.IsUndefined() && arg.default_value()) {
      out.push_back(*arg.default_value());
      continue;
    }
    if (value.IsUndefined() && arg.type()->kind() != c10::TypeKind::OptionalType) {
      fail("INVALID_ARGUMENT", "Missing argument '" + arg.name() + "' (" + arg.type()->annotation_str() + ") of " +
                                   schema.name());
    }
    out.push_back(toIValue(env, value, arg.type(), "argument '" + arg.name() + "' of " + schema.name()));
  }
  return out;
}

}  // namespace dove
