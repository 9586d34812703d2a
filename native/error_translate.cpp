// Error translation: every C++ failure (DoveException, c10::Error, std::exception, anything else)
// becomes an instance of the JS DoveError class with a stable code. Classification runs on any
// thread; only makeError touches JS.
#include <sstream>

#include "common.h"

namespace dove {
namespace {

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r\n");
  return s.substr(begin, end - begin + 1);
}

// libtorch messages carry a C++ backtrace ("Exception raised from ... frame #0: ...") and, for
// errors inside TorchScript, a TorchScript traceback whose last line is the real error. Callers
// need the real error first, then the TorchScript location; the C++ frames are noise to them.
std::string cleanTorchMessage(const std::string& raw) {
  std::vector<std::string> lines;
  std::istringstream in(raw);
  for (std::string line; std::getline(in, line);) {
    if (startsWith(trim(line), "Exception raised from ")) break;
    if (startsWith(line, "frame #")) break;
    lines.push_back(line);
  }
  while (!lines.empty() && trim(lines.back()).empty()) lines.pop_back();

  // TorchScript runtime errors: "The following operation failed in the TorchScript interpreter.
  // Traceback of TorchScript ...: <source excerpt> RuntimeError: <message>". Headline = the last
  // "XxxError: " line and what follows it; then the excerpt, capped so messages stay readable.
  std::size_t headline = lines.size();
  for (std::size_t i = lines.size(); i-- > 0;) {
    const std::string t = trim(lines[i]);
    const auto colon = t.find("Error: ");
    if (colon != std::string::npos && t.find(' ') > colon) {
      headline = i;
      break;
    }
  }
  const bool scripted = raw.find("Traceback of TorchScript") != std::string::npos;
  std::ostringstream out;
  if (scripted && headline < lines.size()) {
    std::string head = trim(lines[headline]);
    const auto colon = head.find("Error: ");
    head = head.substr(colon + 7);
    out << head;
    for (std::size_t i = headline + 1; i < lines.size(); ++i) out << "\n" << lines[i];
    out << "\nTorchScript traceback:";
    std::size_t shown = 0;
    for (std::size_t i = 0; i < headline && shown < 24; ++i) {
      const std::string t = trim(lines[i]);
      if (t.empty() || startsWith(t, "The following operation failed")) continue;
      out << "\n  " << lines[i];
      ++shown;
    }
    return out.str();
  }
  for (std::size_t i = 0; i < lines.size() && i < 40; ++i) out << (i ? "\n" : "") << lines[i];
  std::string result = trim(out.str());
  return result.empty() ? trim(raw) : result;
}

}  // namespace

std::pair<std::string, std::string> classifyException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const DoveException& e) {
    return {e.code, e.what()};
  } catch (const Napi::Error& e) {
    return {"INTERNAL", e.what()};
  } catch (const c10::Error& e) {
    std::string message = cleanTorchMessage(e.what_without_backtrace());
    // CUDA-less machines: libtorch reports missing CUDA as a plain c10::Error.
    if (message.find("Torch not compiled with CUDA") != std::string::npos ||
        message.find("no CUDA GPUs are available") != std::string::npos ||
        message.find("Found no NVIDIA driver") != std::string::npos) {
      return {"DEVICE_UNAVAILABLE", message};
    }
    return {"TORCH_ERROR", message};
  } catch (const std::bad_alloc&) {
    return {"INTERNAL", "out of memory (std::bad_alloc)"};
  } catch (const std::exception& e) {
    // The TorchScript interpreter rethrows kernel errors as std::runtime_error with its traceback.
    const std::string what = e.what();
    if (what.find("Traceback of TorchScript") != std::string::npos ||
        what.find("TorchScript interpreter") != std::string::npos) {
      return {"TORCH_ERROR", cleanTorchMessage(what)};
    }
    return {"INTERNAL", what};
  } catch (...) {
    return {"INTERNAL", "unknown native exception"};
  }
}

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message) {
  AddonState& state = addonState(env);
  if (!state.errorClass.IsEmpty()) {
    Napi::Value instance =
        state.errorClass.New({Napi::String::New(env, message), Napi::String::New(env, code)});
    return Napi::Error(env, instance);
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void rethrowAsDoveError(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;  // already a JS exception (e.g. from a JS callback); keep it as is.
  } catch (...) {
    auto [code, message] = classifyException(std::current_exception());
    throw makeError(env, code, message);
  }
}

namespace {

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  DOVE_CHECK(info.Length() == 1 && info[0].IsFunction(), "INVALID_ARGUMENT",
             "setErrorClass expects a constructor function (message, code) => Error");
  addonState(info.Env()).errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

void initErrors(Napi::Env env, Napi::Object exports) { exportFunctions(env, exports, {{"setErrorClass", SetErrorClass}}); }

}  // namespace dove
