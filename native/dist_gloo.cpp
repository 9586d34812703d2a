// initProcessGroup: c10d TCPStore rendezvous + ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA,
// dist_nccl.cpp), all from libtorch's own c10d. The wheel lacks gloo's headers; scripts/get-gloo-headers supplies Debian's (see
// docs/TRAINING.md for why that is ABI-safe: gloo types only appear behind smart pointers in the
// c10d header, and every gloo symbol we reach is compiled inside libtorch).
#include "dist_group.h"
#include "shape_math.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DOVE_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <cstdlib>
#include <sstream>

namespace dove {
namespace {

using GroupPtr = std::shared_ptr<ProcessGroupHandle>;

[[noreturn]] void rethrowDistributed(const ProcessGroupHandle& group, const char* op) {
  std::string message;
  try {
    throw;
  } catch (const DoveException&) {
    throw;
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
  } catch (const std::exception& e) {
    message = e.what();
  }
  std::ostringstream out;
  out << op << " failed on rank " << group.rank << " of " << group.worldSize << " (" << group.backendName
      << ", timeout " << group.timeout.count() << " ms): " << message
      << " (a peer process probably died or stopped responding)";
  fail("DISTRIBUTED_ERROR", out.str());
}

uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

std::vector<uint8_t> bytesOf(const std::string& text) { return {text.begin(), text.end()}; }
std::string textOf(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// The first line where `a` and `b` differ, as "line N: 'x' here, 'y' on rank 0".
std::string firstDifference(const std::string& mine, const std::string& reference) {
  std::istringstream a(mine), b(reference);
  std::string la, lb;
  for (std::size_t line = 1;; ++line) {
    const bool moreA = static_cast<bool>(std::getline(a, la));
    const bool moreB = static_cast<bool>(std::getline(b, lb));
    if (!moreA && !moreB) return "the same text with a different hash";
    if (!moreA) return "it ends where rank 0 has '" + lb + "' (line " + std::to_string(line) + ")";
    if (!moreB) return "it has '" + la + "' where rank 0 ends (line " + std::to_string(line) + ")";
    if (la != lb) return "it has '" + la + "' where rank 0 has '" + lb + "' (line " + std::to_string(line) + ")";
  }
}

void waitWork(ProcessGroupHandle& group, const c10::intrusive_ptr<c10d::Work>& work, const char* op) {
  try {
    // Gloo honours the group timeout inside the collective; the explicit timeout guards the
    // case where the work never starts.
    work->wait(group.timeout);
  } catch (...) {
    rethrowDistributed(group, op);
  }
}

std::string describeTensor(const at::Tensor& t) {
  return dtypeName(t.scalar_type()) + " " + shape::toString(t.sizes()) + " on " + deviceString(t.device());
}

// Holds the group's mutex for a collective on a worker thread (collectives on one group must be
// issued in the same order on every rank), and closes the group on the way out when dispose() came
// while the collective held it.
struct GroupLock {
  ProcessGroupHandle& group;
  std::lock_guard<std::mutex> lock;
  explicit GroupLock(ProcessGroupHandle& g) : group(g), lock(g.mutex) {
    DOVE_CHECK(!group.disposed, "DISPOSED", "process group used after dispose()");
  }
  ~GroupLock() { group.releaseIfDisposed(); }
};

// A collective as a promise: `body` runs on a worker thread under GroupLock.
template <typename Body>
Napi::Value collective(Napi::Env env, const char* name, const GroupPtr& group, Body body,
                       std::vector<Napi::Value> keepAlive = {}, JsInputs inputs = {}) {
  return PromiseWorker<bool>::Start(
      env, name,
      [group, body]() mutable {
        GroupLock lock(*group);
        body(*group);
        return true;
      },
      [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); }, std::move(keepAlive), std::move(inputs));
}

// The JS view of a process group. Nothing here waits for the group's mutex: a collective holds it
// until its peers answer or the timeout passes.
class GroupWrap : public NativeWrap<GroupWrap, GroupPtr> {
 public:
  static constexpr const char* kName = "NativeProcessGroup";
  static void define(Napi::Env env) {
    NativeWrap::define(env, {
        InstanceAccessor<&GroupWrap::Rank>("rank"),
        InstanceAccessor<&GroupWrap::WorldSize>("worldSize"),
        InstanceAccessor<&GroupWrap::Backend>("backend"),
        method<&GroupWrap::AllReduce>("allReduce"),
        method<&GroupWrap::Broadcast>("broadcast"),
        method<&GroupWrap::Barrier>("barrier"),
        method<&GroupWrap::Agree>("agree"),
        method<&GroupWrap::Dispose>("dispose"),
    });
  }

  explicit GroupWrap(const Napi::CallbackInfo& info) : NativeWrap(info), group_(payload()) {}

  const GroupPtr& group() const {
    DOVE_CHECK(!group_->disposed, "DISPOSED", "process group used after dispose()");
    return group_;
  }

 private:
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group_->rank); }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group_->worldSize); }
  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), group_->backendName); }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    const GroupPtr& g = group();
    at::Tensor tensor = unwrapTensor(info[0], "tensor");
    std::string op = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    DOVE_CHECK(op == "sum" || op == "avg", "INVALID_ARGUMENT",
               "Expected 'sum' or 'avg' for op but received " + info[1].ToString().Utf8Value());
    DOVE_CHECK(tensor.is_contiguous(), "INVALID_ARGUMENT", "allReduce needs a contiguous tensor");
    return collective(
        info.Env(), "dove.allReduce", g,
        [tensor, op](ProcessGroupHandle& group) mutable {
          agree(group, "allReduce", "allReduce " + op + " of " + describeTensor(tensor));
          std::vector<at::Tensor> tensors{tensor};
          c10d::AllreduceOptions opts;
          opts.reduceOp = c10d::ReduceOp::SUM;  // Gloo has no AVG: divide afterwards.
          waitWork(group, group.backend->allreduce(tensors, opts), "allReduce");
          if (op == "avg") tensor.div_(group.worldSize);
        },
        {info[0]}, JsInputs::of({tensor}));
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    const GroupPtr& g = group();
    at::Tensor tensor = unwrapTensor(info[0], "tensor");
    const int64_t root = integerIn(info[1], "root", 0, g->worldSize - 1);
    return collective(
        info.Env(), "dove.broadcast", g,
        [tensor, root](ProcessGroupHandle& group) {
          agree(group, "broadcast", "broadcast from rank " + std::to_string(root) + " of " + describeTensor(tensor));
          std::vector<at::Tensor> tensors{tensor};
          c10d::BroadcastOptions opts;
          opts.rootRank = root;
          waitWork(group, group.backend->broadcast(tensors, opts), "broadcast");
        },
        {info[0]}, JsInputs::of({tensor}));
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    return collective(info.Env(), "dove.barrier", group(), [](ProcessGroupHandle& group) {
      // A barrier as a one-element all-reduce: Gloo's barrier ignores the timeout of a
      // peer that died before entering it on some versions; the all-reduce does not.
      agree(group, "barrier", "barrier");
      std::vector<at::Tensor> tensors{torch::zeros({1}, torch::device(group.device))};
      waitWork(group, group.backend->allreduce(tensors), "barrier");
    });
  }

  Napi::Value Agree(const Napi::CallbackInfo& info) {
    const GroupPtr& g = group();
    DOVE_CHECK(info.Length() >= 2 && info[0].IsString() && info[1].IsString(), "INVALID_ARGUMENT",
               "Expected (what: string, description: string) for agree");
    const std::string what = info[0].As<Napi::String>().Utf8Value();
    const std::string description = info[1].As<Napi::String>().Utf8Value();
    return collective(info.Env(), "dove.agree", g,
                      [what, description](ProcessGroupHandle& group) { agree(group, what, description); });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!group_->disposed.exchange(true)) {
      // A collective holding the mutex closes the group itself when it ends (GroupLock).
      std::unique_lock<std::mutex> lock(group_->mutex, std::try_to_lock);
      if (lock.owns_lock()) group_->releaseIfDisposed();
    }
    return info.Env().Undefined();
  }

  GroupPtr group_;
};

c10::intrusive_ptr<c10d::Store> connectStore(const std::string& addr, int port, int rank, int worldSize,
                                             std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions storeOptions;
  storeOptions.port = static_cast<uint16_t>(port);
  storeOptions.isServer = rank == 0;
  storeOptions.numWorkers = worldSize;
  storeOptions.waitWorkers = true;
  storeOptions.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(addr, storeOptions);
}

GroupPtr createGroup(const std::string& backend, int rank, int worldSize, const std::string& addr, int port,
                     int timeoutMs) {
  auto group = std::make_shared<ProcessGroupHandle>();
  group->rank = rank;
  group->worldSize = worldSize;
  group->backendName = backend;
  group->timeout = std::chrono::milliseconds(timeoutMs);
  if (backend == "nccl") {
    try {
      auto store = connectStore(addr, port, rank, worldSize, group->timeout);
      group->backend = createNcclBackend(store, rank, worldSize, group->timeout, group->device);
      group->store = store;
    } catch (...) {
      rethrowDistributed(*group, "rendezvous");  // a DoveException as it is
    }
    return group;
  }
#ifdef DOVE_HAVE_GLOO
  try {
    auto store = connectStore(addr, port, rank, worldSize, group->timeout);
    auto options = c10d::ProcessGroupGloo::Options::create(group->timeout);
    // Same device choice as torch.distributed: GLOO_SOCKET_IFNAME wins; a loopback master means a
    // single-node job (bind loopback); otherwise the address this host's name resolves to.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (addr == "localhost" || addr.rfind("127.", 0) == 0) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, worldSize, options);
    group->store = store;
  } catch (...) {
    rethrowDistributed(*group, "rendezvous");
  }
  return group;
#else
  fail("DISTRIBUTED_ERROR",
       "this build of the addon has no Gloo process group (gloo headers were not found at build time; run "
       "scripts/get-gloo-headers and rebuild)");
#endif
}

Napi::Value InitProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DOVE_CHECK(info[0].IsObject(), "INVALID_ARGUMENT", "Expected an options object for initProcessGroup");
  Napi::Object options = info[0].As<Napi::Object>();
  const int worldSize = static_cast<int>(integerIn(options.Get("worldSize"), "worldSize", 1, 65536));
  const int rank = static_cast<int>(integerIn(options.Get("rank"), "rank", 0, worldSize - 1));
  const int port = static_cast<int>(integerIn(options.Get("masterPort"), "masterPort", 1, 65535));
  const int timeoutMs = static_cast<int>(integerIn(options.Get("timeoutMs"), "timeoutMs", 1, 24 * 3600 * 1000));
  const std::string addr = stringArg(options.Get("masterAddr"), "a host name for masterAddr");
  Napi::Value backendValue = options.Get("backend");
  std::string backend = backendValue.IsString() ? backendValue.As<Napi::String>().Utf8Value() : "";
  DOVE_CHECK(backend == "gloo" || backend == "nccl", "INVALID_ARGUMENT",
             "Expected 'gloo' or 'nccl' for backend but received " + backendValue.ToString().Utf8Value());
  // Refused before any rendezvous, so no peer waits for a rank that cannot join.
  if (backend == "nccl") checkNcclUsable();
  return PromiseWorker<GroupPtr>::Start(
      env, "dove.initProcessGroup",
      [=]() { return createGroup(backend, rank, worldSize, addr, port, timeoutMs); },
      [](Napi::Env env, GroupPtr& group) { return GroupWrap::create(env, group); });
}

}  // namespace

void initProcessGroups(Napi::Env env, Napi::Object exports) {
  GroupWrap::define(env);
  exportFunctions(env, exports, {{"initProcessGroup", InitProcessGroup}});
}

std::shared_ptr<ProcessGroupHandle> unwrapProcessGroup(Napi::Value value) {
  return GroupWrap::unwrap(value, "a process group from initProcessGroup").group();
}

void agree(ProcessGroupHandle& group, const std::string& what, const std::string& description) {
  if (group.worldSize <= 1 || !group.backend) return;
  try {
    // A fixed-size collective (the same two int64 on every rank, so Gloo cannot trip over it, and a
    // dead peer is noticed as fast as by any collective): the minimum of the hashes and of their
    // complements, i.e. the smallest and the largest hash. They are equal only when all ranks agree.
    const auto hash = static_cast<int64_t>(fnv1a(description));
    // On the group's device: NCCL reduces GPU tensors only.
    std::vector<at::Tensor> tensors{torch::tensor({hash, ~hash}, torch::kInt64).to(group.device)};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::MIN;
    waitWork(group, group.backend->allreduce(tensors, opts), what.c_str());
    const at::Tensor reduced = tensors[0].cpu();
    const auto* extremes = reduced.data_ptr<int64_t>();
    if (extremes[0] == ~extremes[1]) return;
    // Every rank sees the disagreement and comes here: exchange the descriptions through the store
    // to name the first rank that differs from rank 0 and how.
    if (!group.store) fail("DISTRIBUTED_ERROR", what + ": the ranks differ");
    const std::string base = "dove/agree/" + std::to_string(group.agreements++) + "/";
    group.store->set(base + std::to_string(group.rank), bytesOf(description));
    std::vector<std::string> keys;
    for (int r = 0; r < group.worldSize; ++r) keys.push_back(base + std::to_string(r));
    group.store->wait(keys, group.timeout);
    const std::vector<std::vector<uint8_t>> texts = group.store->multiGet(keys);
    for (int r = 1; r < group.worldSize; ++r) {
      if (texts[static_cast<std::size_t>(r)] == texts[0]) continue;
      std::ostringstream out;
      out << what << ": rank " << r << " differs from rank 0: "
          << firstDifference(textOf(texts[static_cast<std::size_t>(r)]), textOf(texts[0]))
          << "; every rank must run the same model and options";
      fail("DISTRIBUTED_ERROR", out.str());
    }
    fail("DISTRIBUTED_ERROR", what + ": the ranks' descriptions hash differently but read the same");
  } catch (...) {
    rethrowDistributed(group, what.c_str());
  }
}

void allReduceMeanInPlace(ProcessGroupHandle& group, at::Tensor& flat) {
  GroupLock lock(group);
  agree(group, "gradient allReduce", "gradient allReduce of " + describeTensor(flat));
  std::vector<at::Tensor> tensors{flat};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  waitWork(group, group.backend->allreduce(tensors, opts), "gradient allReduce");
  flat.div_(group.worldSize);
}

}  // namespace dove
