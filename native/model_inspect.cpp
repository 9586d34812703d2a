// Model file checks (model_inspect.h): a pre-load pass over an in-memory snapshot of the archive,
// the TorchScript operator rules, the post-load tensor check, and the operator registry audit the
// tests compare the rules against.
#include "model_inspect.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/frontend/source_range.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/csrc/jit/serialization/import_source.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstring>
#include <regex>
#include <set>
#include <unordered_set>

#include "archive_snapshot.h"
#include "common.h"
#include "pickle_check.h"
#include "shape_math.h"

namespace dove {
namespace {

// ---------------------------------------------------------------------------------------------
// Operators a model may not call (unless the caller trusts the file). How the list was made
// (docs/MODEL_FORMAT.md, "Model files are code"): every operator in libtorch's registry
// (torch::jit::getAllOperators, 2.11, with the CPU and CUDA libraries loaded) that the registry
// query below flags was reviewed by hand, plus the interpreter's own node kinds that are not
// registered operators (prim::fork). Each flagged operator is either listed here or in
// kReviewedSafe with the reason; test/native/model-safety.test.ts fails when the registry of the
// libtorch in use flags one that is in neither list.
struct Rule {
  const char* name;
  const char* why;
};

const Rule kUnsafeOperators[] = {
    // Files
    {"aten::from_file", "maps a file into memory: reads it, and with shared=True writes it"},
    {"aten::save", "writes a file"},
    {"debugprims::load_tensor", "reads a file"},
    // Other processes
    {"prim::rpc_async", "calls another process (RPC)"},
    {"prim::rpc_sync", "calls another process (RPC)"},
    {"prim::rpc_remote", "calls another process (RPC)"},
    {"aten::to_here", "waits on a value owned by another process (RPC)"},
    // Process-wide state
    {"aten::manual_seed", "reseeds the process-wide random generator"},
    {"aten::seed", "reseeds the process-wide random generator from the OS"},
    {"aten::_cufft_set_plan_cache_max_size", "changes a process-wide CUDA setting"},
    {"aten::_cufft_clear_plan_cache", "clears a process-wide CUDA cache"},
    // Work that outlives the call
    {"prim::fork", "starts work on another thread that can outlive the call"},
    {"prim::awaitable", "defers work that can outlive the call"},
    // Memory without bounds checks
    {"aten::_sparse_coo_tensor_unsafe", "builds a sparse tensor without checking its indices"},
    {"aten::_sparse_csr_tensor_unsafe", "builds a sparse tensor without checking its indices"},
    {"aten::_sparse_csc_tensor_unsafe", "builds a sparse tensor without checking its indices"},
    {"aten::_sparse_bsr_tensor_unsafe", "builds a sparse tensor without checking its indices"},
    {"aten::_sparse_bsc_tensor_unsafe", "builds a sparse tensor without checking its indices"},
    {"aten::_sparse_compressed_tensor_unsafe", "builds a sparse tensor without checking its indices"},
    {"aten::_unsafe_index", "indexes without bounds checks"},
    {"aten::_unsafe_index_put", "writes through indices without bounds checks"},
    {"aten::_unsafe_masked_index", "indexes without bounds checks"},
    {"aten::_unsafe_masked_index_put_accumulate", "writes through indices without bounds checks"},
    {"inductor::_reinterpret_tensor", "views memory without bounds checks"},
    {"inductor::resize_storage_bytes_", "resizes a storage under its views"},
    {"inductor::_alloc_from_pool", "views a memory pool without bounds checks"},
    {"mkldnn::data_ptr", "exposes a memory address"},
};

// Whole namespaces: collectives and symmetric memory talk to other processes.
const Rule kUnsafeNamespaces[] = {
    {"c10d", "talks to other processes (collectives)"},
    {"_c10d_functional", "talks to other processes (collectives)"},
    {"_c10d_functional_autograd", "talks to other processes (collectives)"},
    {"_dtensor", "talks to other processes (collectives)"},
    {"symm_mem", "shares memory with other processes"},
};

// Flagged by the registry query, reviewed, and allowed.
const Rule kReviewedSafe[] = {
    {"aten::unsafe_chunk", "'unsafe' refers to autograd view tracking; bounds are checked"},
    {"aten::unsafe_split", "'unsafe' refers to autograd view tracking; bounds are checked"},
    {"aten::unsafe_split_with_sizes", "'unsafe' refers to autograd view tracking; bounds are checked"},
    {"aten::_unsafe_view", "a view whose sizes are checked against the element count"},
    {"aten::initial_seed", "reads the seed, changes nothing"},
    {"prim::data", "the tensor without autograd history"},
    {"aten::data", "the tensor without autograd history"},
    {"profiler::_record_function_exit", "ends a profiler range ('exit' of a range, not of the process)"},
};

constexpr const char* kTorchbindPrefix = "__torch__.torch.classes.";

std::string namespaceOf(const std::string& qualified) {
  const auto colon = qualified.find("::");
  return colon == std::string::npos ? std::string() : qualified.substr(0, colon);
}

const Rule* unsafeRule(const std::string& op) {
  for (const Rule& r : kUnsafeOperators) {
    if (op == r.name) return &r;
  }
  const std::string ns = namespaceOf(op);
  for (const Rule& r : kUnsafeNamespaces) {
    if (ns == r.name) return &r;
  }
  return nullptr;
}

// The registry query: which registered operators could touch files, other processes or
// process-wide state, or skip memory checks, judged from their schemas. Deliberately broad; what
// it flags is reviewed into the lists above.
std::optional<std::string> registryFlag(const c10::FunctionSchema& schema) {
  static const std::regex pathArgument("^(f|fd|file|files|filename|filenames|filepath|path|paths|dir|directory|folder)$|file|path");
  static const std::regex processName(
      "(^|_)(seed|rpc|fork|exit|abort|system|spawn|popen|exec|getenv|setenv|environ|signal|kill|socket|connect)(_|$)|rpc_|to_here");
  static const std::regex memoryName("_unsafe|unsafe_|reinterpret|resize_storage|data_ptr|alloc_from_pool|^data$");
  const std::string name = schema.name();
  const std::string ns = namespaceOf(name);
  const std::string base = name.substr(ns.size() + 2);
  for (const Rule& r : kUnsafeNamespaces) {
    if (ns == r.name) return std::string("namespace ") + ns;
  }
  for (const auto& arg : schema.arguments()) {
    const auto kind = arg.type()->kind();
    const bool stringy = kind == c10::TypeKind::StringType ||
                         (kind == c10::TypeKind::OptionalType &&
                          arg.type()->expectRef<c10::OptionalType>().getElementType()->kind() == c10::TypeKind::StringType);
    if (stringy && std::regex_search(arg.name(), pathArgument)) return "string argument '" + arg.name() + "'";
  }
  if (std::regex_search(base, processName)) return "process name";
  if (std::regex_search(base, memoryName)) return "memory name";
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// The archive snapshot

std::string recordText(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  auto [data, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

// ---------------------------------------------------------------------------------------------
// Source limits. libtorch's TorchScript parser and compiler recurse once per nesting level and per
// operator of a chained expression, on the loading thread's stack; a file with deeper nesting or
// longer chains than any exporter writes would overflow it (SIGSEGV) while compiling.
constexpr int kMaxBracketDepth = 128;
constexpr int kMaxIndent = 512;               // columns of leading whitespace
constexpr std::size_t kMaxLogicalLine = 65536;  // bytes of one statement
constexpr int kMaxOperatorsPerLine = 1024;    // binary/unary operator characters in one statement

void checkSource(const std::string& name, const std::string& text) {
  int depth = 0;
  std::size_t lineBytes = 0;
  int operators = 0;
  bool lineStart = true;
  int indent = 0;
  auto bad = [&](const std::string& what) {
    fail("NOT_TORCHSCRIPT", "the archive's " + name + " " + what + " (deeper or longer than any export; the compiler would overflow its stack)");
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (lineStart) {
      if (c == ' ' || c == '\t') {
        if (++indent > kMaxIndent) bad("is indented more than " + std::to_string(kMaxIndent) + " columns");
        continue;
      }
      lineStart = false;
    }
    if (c == '"' || c == '\'') {  // skip the string literal
      const char quote = c;
      for (++i; i < text.size() && text[i] != quote && text[i] != '\n'; ++i) {
        if (text[i] == '\\') ++i;
      }
      continue;
    }
    if (c == '#') {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') {
      if (++depth > kMaxBracketDepth) bad("nests brackets more than " + std::to_string(kMaxBracketDepth) + " deep");
    } else if (c == ')' || c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    } else if (std::strchr("+-*/%&|^~<>=@", c) != nullptr) {
      if (++operators > kMaxOperatorsPerLine) bad("chains more than " + std::to_string(kMaxOperatorsPerLine) + " operators in one statement");
    }
    if (++lineBytes > kMaxLogicalLine) bad("has a statement longer than " + std::to_string(kMaxLogicalLine) + " bytes");
    if (c == '\n' && depth == 0) {
      lineBytes = 0;
      operators = 0;
      lineStart = true;
      indent = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Operator scan

struct Finding {
  std::string what;
  std::string where;
};

void scanBlock(const torch::jit::Block* block, const std::string& where, std::optional<Finding>& found);

void scanNode(const torch::jit::Node* node, const std::string& where, std::optional<Finding>& found) {
  if (found) return;
  const std::string kind = node->kind().toQualString();
  if (const Rule* rule = unsafeRule(kind)) {
    found = Finding{"calls " + kind + " (" + rule->why + ")", where};
    return;
  }
  auto nativeClass = [&](const torch::jit::Value* v) -> std::optional<std::string> {
    if (auto cls = v->type()->cast<c10::ClassType>()) {
      if (cls->name() && cls->name()->qualifiedName().rfind(kTorchbindPrefix, 0) == 0) return cls->name()->qualifiedName();
    }
    return std::nullopt;
  };
  for (const auto values : {node->inputs(), node->outputs()}) {
    for (const torch::jit::Value* v : values) {
      if (auto name = nativeClass(v)) {
        found = Finding{"uses the native class " + *name + " (C++ code outside TorchScript)", where};
        return;
      }
    }
  }
  for (const torch::jit::Block* sub : node->blocks()) scanBlock(sub, where, found);
  for (const c10::Symbol& attr : node->attributeNames()) {
    const auto attrKind = node->kindOf(attr);
    if (attrKind == torch::jit::AttributeKind::g) {
      scanBlock(node->g(attr)->block(), where, found);
    } else if (attrKind == torch::jit::AttributeKind::gs) {
      for (const auto& g : node->gs(attr)) scanBlock(g->block(), where, found);
    }
  }
}

void scanBlock(const torch::jit::Block* block, const std::string& where, std::optional<Finding>& found) {
  for (const torch::jit::Node* node : block->nodes()) {
    scanNode(node, where, found);
    if (found) return;
  }
}

// "method encode_pixels of __torch__.dove.model.DOVE" / "function __torch__.helpers.f"
std::string describeFunction(const torch::jit::Function& fn) {
  const c10::QualifiedName& qn = fn.qualname();
  const std::string prefix = qn.prefix();
  if (!prefix.empty()) return "method " + qn.name() + " of " + prefix;
  return "function " + qn.qualifiedName();
}

// ---------------------------------------------------------------------------------------------
// Tensor check (shared by the pre-pass's constants and the post-load walk)

void checkTensor(const at::Tensor& t, const std::string& what, const std::string& path) {
  if (!t.defined()) return;
  DOVE_CHECK(t.layout() == c10::kStrided && !t.is_quantized(), "NOT_TORCHSCRIPT",
             "'" + path + "': " + what + " is not a dense tensor; dove-encoder loads dense tensors only");
  if (!t.has_storage()) return;
  const int64_t storageBytes = static_cast<int64_t>(t.storage().nbytes());
  DOVE_CHECK(shape::fitsStorage(t.sizes(), t.strides(), t.storage_offset(), static_cast<int64_t>(t.element_size()), storageBytes),
             "NOT_TORCHSCRIPT",
             "'" + path + "' is corrupt: " + what + " (size " + shape::toString(t.sizes()) + ", stride " +
                 shape::toString(t.strides()) + ", offset " + std::to_string(t.storage_offset()) +
                 ") reaches outside its storage of " + std::to_string(storageBytes) + " bytes");
}

void walkValue(const c10::IValue& value, const std::string& what, const std::string& path,
               std::unordered_set<const void*>& seen) {
  if (value.isPtrType()) {
    if (!seen.insert(value.internalToPointer()).second) return;
  }
  if (value.isTensor()) {
    checkTensor(value.toTensor(), what, path);
  } else if (value.isObject()) {
    const auto& obj = value.toObjectRef();
    const auto& type = obj.type();
    for (std::size_t i = 0; i < obj.slots().size(); ++i) {
      const std::string name = i < type->numAttributes() ? type->getAttributeName(i) : std::to_string(i);
      walkValue(obj.getSlot(i), what.empty() ? name : what + "." + name, path, seen);
    }
  } else if (value.isList()) {
    const auto list = value.toListRef();
    for (std::size_t i = 0; i < list.size(); ++i) walkValue(list[i], what + "[" + std::to_string(i) + "]", path, seen);
  } else if (value.isTuple()) {
    const auto& items = value.toTupleRef().elements();
    for (std::size_t i = 0; i < items.size(); ++i) walkValue(items[i], what + "[" + std::to_string(i) + "]", path, seen);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) walkValue(entry.value(), what + "[...]", path, seen);
  }
}

void walkGraphConstants(const torch::jit::Block* block, const std::string& where, const std::string& path,
                        std::unordered_set<const void*>& seen) {
  for (const torch::jit::Node* node : block->nodes()) {
    if (node->kind() == c10::prim::Constant && node->hasAttribute(c10::attr::value)) {
      const auto kind = node->kindOf(c10::attr::value);
      if (kind == torch::jit::AttributeKind::t) checkTensor(node->t(c10::attr::value), "a constant in " + where, path);
      if (kind == torch::jit::AttributeKind::ival) walkValue(node->ival(c10::attr::value), "a constant in " + where, path, seen);
    }
    for (const torch::jit::Block* sub : node->blocks()) walkGraphConstants(sub, where, path, seen);
  }
}

}  // namespace

std::shared_ptr<caffe2::serialize::ReadAdapterInterface> inspectModelFile(const std::string& path, bool trusted) {
  const std::shared_ptr<ArchiveSnapshot> adapter = snapshotArchive(path);
  const std::string prefix = "'" + path + "' ";
  char head[8] = {};
  DOVE_CHECK(adapter->read(0, head, sizeof(head), "") == sizeof(head), "NOT_TORCHSCRIPT", prefix + "is too short to be a TorchScript archive");
  // torch::jit::load reads a file whose bytes 4..7 are "PTMF" as a flatbuffer (mobile) module,
  // whatever its first bytes say.
  DOVE_CHECK(std::memcmp(head + 4, "PTMF", 4) != 0, "NOT_TORCHSCRIPT",
             prefix + "is a flatbuffer (mobile) module; dove-encoder loads TorchScript zip archives only");

  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> readerOwner;
  try {
    readerOwner = std::make_unique<caffe2::serialize::PyTorchStreamReader>(adapter);
  } catch (const c10::Error& e) {
    fail("NOT_TORCHSCRIPT", prefix + "is not a readable TorchScript archive: " + e.what_without_backtrace());
  }
  caffe2::serialize::PyTorchStreamReader& reader = *readerOwner;
  DOVE_CHECK(adapter->agreesWith(reader), "NOT_TORCHSCRIPT",
             prefix + "has an ambiguous zip directory (records that overlap, or that readers would place differently)");
  const std::vector<std::string> records = reader.getAllRecords();
  // libtorch allocates what a record's header claims and inflates into it: a small file claiming
  // gigabytes (a zip bomb) would exhaust memory. PyTorch stores tensors uncompressed and deflates
  // only code, so no legitimate record comes near this bound.
  const std::size_t maxRecord = (std::size_t{16} << 20) + adapter->size() * 64;
  for (const std::string& name : records) {
    DOVE_CHECK(reader.getRecordSize(name) <= maxRecord, "NOT_TORCHSCRIPT",
               prefix + "has a record '" + name + "' of " + std::to_string(reader.getRecordSize(name)) +
                   " bytes, more than 64 times the whole file (a zip bomb?)");
  }
  DOVE_CHECK(!reader.hasRecord("model.json"), "NOT_TORCHSCRIPT",
             prefix + "uses the pre-1.4 TorchScript format (model.json); re-export it with a current PyTorch");
  DOVE_CHECK(reader.hasRecord("data.pkl") && reader.hasRecord("constants.pkl"), "NOT_TORCHSCRIPT",
             prefix + "could not be loaded as TorchScript: it has no data.pkl / constants.pkl (a torch.save() file? export "
                      "with torch.jit.save)");

  const auto recordSize = [&reader](const std::string& key) -> std::optional<std::size_t> {
    if (!reader.hasRecord(key)) return std::nullopt;
    return reader.getRecordSize(key);
  };
  for (const std::string& name : records) {
    const bool debug = name.size() > 10 && name.compare(name.size() - 10, 10, ".debug_pkl") == 0;
    if (name != "data.pkl" && name != "constants.pkl" && !debug) continue;
    PickleRules rules;
    rules.recordSize = recordSize;
    rules.tensorDir = name == "data.pkl" ? "data/" : "constants/";
    rules.plainValuesOnly = debug;
    const std::string bytes = recordText(reader, name);
    try {
      checkPickle(name, bytes.data(), bytes.size(), rules);
    } catch (const DoveException& e) {
      fail(e.code, prefix + "is corrupt or unsupported: " + e.what());
    }
  }
  for (const std::string& name : records) {
    if (name.rfind("code/", 0) == 0 && name.size() > 3 && name.compare(name.size() - 3, 3, ".py") == 0) {
      checkSource(name, recordText(reader, name));
    }
  }

  // Compile every class the pickles name and build their objects, over storages that hold no data
  // and without running __setstate__: the code can then be checked before any of it runs.
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  std::vector<c10::IValue> constants;
  torch::jit::SourceImporter importer(
      cu, &constants,
      [&reader](const std::string& qualifier) -> std::shared_ptr<torch::jit::Source> {
        std::string file = qualifier;
        std::replace(file.begin(), file.end(), '.', '/');
        file = "code/" + file + ".py";
        if (!reader.hasRecord(file)) return nullptr;
        return std::make_shared<torch::jit::Source>(recordText(reader, file), file, 1);
      },
      reader.version());
  std::set<std::string> nativeClasses;
  auto typeResolver = [&](const c10::QualifiedName& qn) {
    if (qn.qualifiedName().rfind(kTorchbindPrefix, 0) == 0) nativeClasses.insert(qn.qualifiedName());
    return c10::StrongTypePtr(cu, importer.loadType(qn));
  };
  auto objLoader = [](const at::StrongTypePtr& type, c10::IValue input) {
    auto cls = type.type_->expect<c10::ClassType>();
    auto obj = c10::ivalue::Object::create(type, cls->numAttributes());
    if (cls->findMethod("__setstate__") != nullptr) return obj;  // the real load runs it, after the checks
    auto dict = std::move(input).toGenericDict();
    for (std::size_t i = 0; i < cls->numAttributes(); ++i) obj->setSlot(i, dict.at(cls->getAttributeName(i)));
    return obj;
  };
  auto unpickle = [&](const std::string& archive) {
    const std::string bytes = recordText(reader, archive + ".pkl");
    std::size_t offset = 0;
    torch::jit::Unpickler unpickler(
        [&](char* buffer, std::size_t n) -> std::size_t {
          n = std::min(n, bytes.size() - offset);
          std::memcpy(buffer, bytes.data() + offset, n);
          offset += n;
          return n;
        },
        typeResolver, objLoader, [](const std::string&) { return at::DataPtr(nullptr, c10::Device(c10::kCPU)); },
        c10::Device(c10::kCPU));
    unpickler.set_version(reader.version());
    return unpickler.parse_ivalue();
  };
  try {
    const c10::IValue table = unpickle("constants");
    DOVE_CHECK(table.isTuple(), "NOT_TORCHSCRIPT", prefix + "has a constants.pkl that is not a tuple");
    for (const c10::IValue& c : table.toTupleRef().elements()) constants.push_back(c);
    unpickle("data");
  } catch (const DoveException&) {
    throw;
  } catch (const std::exception& e) {
    auto [code, message] = classifyException(std::current_exception());
    fail("NOT_TORCHSCRIPT", prefix + "could not be loaded as TorchScript: " + message);
  }
  if (trusted) return adapter;

  const std::string advice =
      ". A model file is code: load it only if you trust it, with trustModel: true (API) or --trust-model (CLI)";
  if (!nativeClasses.empty()) {
    fail("UNSAFE_MODEL", prefix + "uses the native class " + *nativeClasses.begin() +
                             " (C++ code outside TorchScript, run at load)" + advice);
  }
  // Methods first, each with the functions and methods it calls inlined, so that a finding names
  // the method an application calls; then every other function (also the ones nothing calls).
  std::vector<torch::jit::Function*> methods;
  std::vector<torch::jit::Function*> functions;
  for (torch::jit::Function* fn : cu->get_functions()) {
    const std::string owner = fn->qualname().prefix();
    (!owner.empty() && cu->get_class(c10::QualifiedName(owner)) != nullptr ? methods : functions).push_back(fn);
  }
  methods.insert(methods.end(), functions.begin(), functions.end());
  for (torch::jit::Function* fn : methods) {
    torch::jit::GraphFunction* graphFn = torch::jit::tryToGraphFunction(*fn);
    if (graphFn == nullptr) continue;
    std::shared_ptr<torch::jit::Graph> graph = graphFn->graph()->copy();
    torch::jit::Inline(*graph);
    std::optional<Finding> found;
    scanBlock(graph->block(), describeFunction(*fn), found);
    if (found) fail("UNSAFE_MODEL", prefix + found->what + " in " + found->where + advice);
  }
  return adapter;
}

void checkModuleTensors(const torch::jit::Module& module, const std::string& path) {
  std::unordered_set<const void*> seen;
  walkValue(module._ivalue(), "", path, seen);
  for (torch::jit::Function* fn : module._ivalue()->compilation_unit()->get_functions()) {
    torch::jit::GraphFunction* graphFn = torch::jit::tryToGraphFunction(*fn);
    if (graphFn != nullptr) walkGraphConstants(graphFn->graph()->block(), describeFunction(*fn), path, seen);
  }
}

namespace {

// operatorAudit(): the rules and what the registry query finds in the libtorch that is loaded, for
// test/native/model-safety.test.ts.
Napi::Value OperatorAudit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto rules = [&](const auto& list) {
    Napi::Array out = Napi::Array::New(env);
    for (const Rule& r : list) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", r.name);
      o.Set("why", r.why);
      out.Set(out.Length(), o);
    }
    return out;
  };
  Napi::Object out = Napi::Object::New(env);
  out.Set("unsafeOperators", rules(kUnsafeOperators));
  out.Set("unsafeNamespaces", rules(kUnsafeNamespaces));
  out.Set("reviewedSafe", rules(kReviewedSafe));
  std::map<std::string, std::string> flagged;
  std::size_t total = 0;
  for (const auto& op : torch::jit::getAllOperators()) {
    ++total;
    const c10::FunctionSchema& schema = op->schema();
    if (auto why = registryFlag(schema)) flagged.emplace(schema.name(), *why);
  }
  Napi::Array registry = Napi::Array::New(env);
  for (const auto& [name, why] : flagged) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", name);
    o.Set("flaggedBy", why);
    o.Set("unsafe", unsafeRule(name) != nullptr);
    registry.Set(registry.Length(), o);
  }
  out.Set("registry", registry);
  out.Set("registrySize", Napi::Number::New(env, static_cast<double>(total)));
  return Napi::Value(out);
}

}  // namespace

void initModelInspect(Napi::Env env, Napi::Object exports) { exportFunctions(env, exports, {{"operatorAudit", OperatorAudit}}); }

}  // namespace dove
