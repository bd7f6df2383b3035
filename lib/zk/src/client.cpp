// The ZooKeeper C client behind zk::Session: the only file that includes it. Long because
// every call (reads with watches, writes, multi, sync, batches) needs its completion
// adapter and its deadline; each is small and alike.
#include <svcctl/zk/client.hpp>

#include <zookeeper/zookeeper.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace svcctl::zk {

// zk::Code is the C client's ZOO_ERRORS, value for value.
static_assert(static_cast<int>(Code::Ok) == ZOK);
static_assert(static_cast<int>(Code::SystemError) == ZSYSTEMERROR);
static_assert(static_cast<int>(Code::RuntimeInconsistency) == ZRUNTIMEINCONSISTENCY);
static_assert(static_cast<int>(Code::DataInconsistency) == ZDATAINCONSISTENCY);
static_assert(static_cast<int>(Code::ConnectionLoss) == ZCONNECTIONLOSS);
static_assert(static_cast<int>(Code::MarshallingError) == ZMARSHALLINGERROR);
static_assert(static_cast<int>(Code::Unimplemented) == ZUNIMPLEMENTED);
static_assert(static_cast<int>(Code::OperationTimeout) == ZOPERATIONTIMEOUT);
static_assert(static_cast<int>(Code::BadArguments) == ZBADARGUMENTS);
static_assert(static_cast<int>(Code::InvalidState) == ZINVALIDSTATE);
static_assert(static_cast<int>(Code::NewConfigNoQuorum) == ZNEWCONFIGNOQUORUM);
static_assert(static_cast<int>(Code::ReconfigInProgress) == ZRECONFIGINPROGRESS);
static_assert(static_cast<int>(Code::SslConnectionError) == ZSSLCONNECTIONERROR);
static_assert(static_cast<int>(Code::ApiError) == ZAPIERROR);
static_assert(static_cast<int>(Code::NoNode) == ZNONODE);
static_assert(static_cast<int>(Code::NoAuth) == ZNOAUTH);
static_assert(static_cast<int>(Code::BadVersion) == ZBADVERSION);
static_assert(static_cast<int>(Code::NoChildrenForEphemerals) == ZNOCHILDRENFOREPHEMERALS);
static_assert(static_cast<int>(Code::NodeExists) == ZNODEEXISTS);
static_assert(static_cast<int>(Code::NotEmpty) == ZNOTEMPTY);
static_assert(static_cast<int>(Code::SessionExpired) == ZSESSIONEXPIRED);
static_assert(static_cast<int>(Code::InvalidCallback) == ZINVALIDCALLBACK);
static_assert(static_cast<int>(Code::InvalidAcl) == ZINVALIDACL);
static_assert(static_cast<int>(Code::AuthFailed) == ZAUTHFAILED);
static_assert(static_cast<int>(Code::Closing) == ZCLOSING);
static_assert(static_cast<int>(Code::Nothing) == ZNOTHING);
static_assert(static_cast<int>(Code::SessionMoved) == ZSESSIONMOVED);
static_assert(static_cast<int>(Code::NotReadOnly) == ZNOTREADONLY);
static_assert(static_cast<int>(Code::EphemeralOnLocalSession) == ZEPHEMERALONLOCALSESSION);
static_assert(static_cast<int>(Code::NoWatcher) == ZNOWATCHER);
static_assert(static_cast<int>(Code::ReconfigDisabled) == ZRECONFIGDISABLED);
static_assert(static_cast<int>(Code::SessionClosedRequireSaslAuth) == ZSESSIONCLOSEDREQUIRESASLAUTH);
static_assert(static_cast<int>(Code::Throttled) == ZTHROTTLEDOP);

namespace {

// The C client logs through one process-wide stream; it must never reach stdout.
void init_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* path = std::getenv("SVCCTL_ZK_LOG");
    FILE* stream = (path && *path) ? std::fopen(path, "a") : nullptr;
    if (stream) {
      zoo_set_debug_level(ZOO_LOG_LEVEL_INFO);
    } else {
      stream = std::fopen("/dev/null", "w");
      zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    }
    if (stream) zoo_set_log_stream(stream);  // kept open for the life of the process
  });
}

Stat convert(const ::Stat* s) {
  zk::Stat out;
  if (!s) return out;
  out.czxid = s->czxid;
  out.mzxid = s->mzxid;
  out.pzxid = s->pzxid;
  out.ctime_ms = s->ctime;
  out.mtime_ms = s->mtime;
  out.version = s->version;
  out.cversion = s->cversion;
  out.ephemeral_owner = s->ephemeralOwner;
  out.num_children = s->numChildren;
  return out;
}

// A single asynchronous call waited for with a deadline. The completion may run after the
// waiter gave up, so the state is shared: the completion holds its own reference.
struct Call {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int rc = ZOK;
  std::string data;
  zk::Stat stat;
  std::vector<std::string> names;
  // multi() buffers: the C client writes results into them on completion.
  std::vector<zoo_op_t> ops;
  std::vector<zoo_op_result_t> results;
  std::vector<std::string> paths;
  std::vector<std::string> values;
  std::vector<std::vector<char>> path_buffers;
  std::vector<::Stat> set_stats;  // what each Set op's node became
};

using CallRef = std::shared_ptr<Call>;

CallRef* hold(const CallRef& c) { return new CallRef(c); }

void finish(const void* ctx, int rc, auto&& fill) {
  std::unique_ptr<CallRef> ref(static_cast<CallRef*>(const_cast<void*>(ctx)));
  Call& c = **ref;
  {
    std::lock_guard lock(c.mu);
    c.rc = rc;
    if (rc == ZOK) fill(c);
    c.done = true;
  }
  c.cv.notify_all();
}

void on_data(int rc, const char* value, int len, const ::Stat* stat, const void* ctx) {
  finish(ctx, rc, [&](Call& c) {
    if (value && len > 0) c.data.assign(value, static_cast<std::size_t>(len));
    c.stat = convert(stat);
  });
}

void on_stat(int rc, const ::Stat* stat, const void* ctx) {
  finish(ctx, rc, [&](Call& c) { c.stat = convert(stat); });
}

void on_void(int rc, const void* ctx) {
  finish(ctx, rc, [](Call&) {});
}

void on_string(int rc, const char*, const void* ctx) {
  finish(ctx, rc, [](Call&) {});
}

void on_strings(int rc, const struct String_vector* v, const void* ctx) {
  finish(ctx, rc, [&](Call& c) {
    if (!v) return;
    c.names.reserve(static_cast<std::size_t>(v->count));
    for (int i = 0; i < v->count; ++i) c.names.emplace_back(v->data[i]);
  });
}

// A pipelined batch: one slot per request, a bounded number in flight.
struct Batch {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t total = 0;
  std::size_t low_water = 0;  // the submitter is woken when in_flight falls to this
  std::size_t in_flight = 0;
  std::size_t completed = 0;
  std::vector<int> rcs;
  std::vector<std::string> datas;
  std::vector<zk::Stat> stats;
  std::vector<std::vector<std::string>> names;
};

struct Slot {
  std::shared_ptr<Batch> batch;
  std::size_t index;
};

void finish_slot(const void* ctx, int rc, auto&& fill) {
  std::unique_ptr<Slot> slot(static_cast<Slot*>(const_cast<void*>(ctx)));
  Batch& b = *slot->batch;
  bool wake = false;
  {
    std::lock_guard lock(b.mu);
    b.rcs[slot->index] = rc;
    if (rc == ZOK) fill(b, slot->index);
    --b.in_flight;
    ++b.completed;
    // Waking the submitter for every completion costs two context switches per request;
    // it refills the window in bursts instead.
    wake = b.in_flight == b.low_water || b.completed == b.total;
  }
  if (wake) b.cv.notify_all();
}

void on_batch_data(int rc, const char* value, int len, const ::Stat* stat, const void* ctx) {
  finish_slot(ctx, rc, [&](Batch& b, std::size_t i) {
    if (value && len > 0) b.datas[i].assign(value, static_cast<std::size_t>(len));
    b.stats[i] = convert(stat);
  });
}

void on_batch_strings(int rc, const struct String_vector* v, const void* ctx) {
  finish_slot(ctx, rc, [&](Batch& b, std::size_t i) {
    if (!v) return;
    for (int k = 0; k < v->count; ++k) b.names[i].emplace_back(v->data[k]);
  });
}

// A C client return code as the Error callers see.
Error to_error(int rc, std::string_view context) { return zk::to_error(static_cast<Code>(rc), context); }

SessionState session_state(int state) {
  if (state == ZOO_CONNECTED_STATE) return SessionState::Connected;
  if (state == ZOO_EXPIRED_SESSION_STATE) return SessionState::Expired;
  if (state == ZOO_AUTH_FAILED_STATE) return SessionState::AuthFailed;
  return SessionState::Connecting;
}

}  // namespace

// Connection state, owned by the Client, reached from the C client's threads.
struct Client::Impl {
  zhandle_t* zh = nullptr;
  std::chrono::milliseconds timeout{5000};
  EventSink sink;
  std::mutex mu;
  std::condition_variable cv;
  int state = 0;
  struct ACL acl_entries[3] = {};
  struct ACL shared_entries[3] = {};
  std::string admin_id;  // digest id "user:hash", or empty
  struct ACL_vector acl{0, nullptr};
  struct ACL_vector shared_acl{0, nullptr};

  static void watcher(zhandle_t*, int type, int state, const char* path, void* ctx) {
    auto* self = static_cast<Impl*>(ctx);
    if (type == ZOO_SESSION_EVENT) {
      {
        std::lock_guard lock(self->mu);
        self->state = state;
      }
      self->cv.notify_all();
      if (self->sink) self->sink(Event{Event::Type::Session, {}, session_state(state)});
      return;
    }
    if (!self->sink) return;
    Event e;
    e.path = path ? path : "";
    if (type == ZOO_CREATED_EVENT) e.type = Event::Type::Created;
    else if (type == ZOO_DELETED_EVENT) e.type = Event::Type::Deleted;
    else if (type == ZOO_CHANGED_EVENT) e.type = Event::Type::Changed;
    else if (type == ZOO_CHILD_EVENT) e.type = Event::Type::Children;
    else return;  // ZOO_NOTWATCHING_EVENT: a removed watch, nothing changed
    self->sink(std::move(e));
  }

  // Waits for a Call; on timeout the completion still owns its reference and cleans up.
  Expected<void> wait(Call& c, std::string_view context) {
    std::unique_lock lock(c.mu);
    if (!c.cv.wait_for(lock, timeout, [&] { return c.done; }))
      return fail(ErrorKind::Unavailable,
                  fmt::format("{}: no answer from ZooKeeper within {} ms", context, timeout.count()),
                  ZOPERATIONTIMEOUT);
    if (c.rc != ZOK) return fail(to_error(c.rc, context));
    return {};
  }

  // Submits one request built by `submit(ctx)`; a synchronous failure frees the context.
  Expected<void> run(const CallRef& call, std::string_view context, auto&& submit) {
    CallRef* ctx = hold(call);
    int rc = submit(static_cast<const void*>(ctx));
    if (rc != ZOK) {
      delete ctx;
      return fail(to_error(rc, context));
    }
    return wait(*call, context);
  }

  const struct ACL_vector* create_acl(bool authenticated) {
    if (!authenticated) return &ZOO_OPEN_ACL_UNSAFE;
    // Everyone may read; the identities this session authenticated as may do anything.
    acl_entries[0] = {ZOO_PERM_READ, ZOO_ANYONE_ID_UNSAFE};
    acl_entries[1] = {ZOO_PERM_ALL, ZOO_AUTH_IDS};
    acl = {2, acl_entries};
    if (!admin_id.empty()) {
      // And the admin identity, so that someone other than the creator can repair it.
      static char scheme[] = "digest";
      acl_entries[2] = {ZOO_PERM_ALL, {scheme, admin_id.data()}};
      acl.count = 3;
    }
    return &acl;
  }

  // create_acl's, with everyone also allowed to create and delete children.
  const struct ACL_vector* shared_folder_acl(bool authenticated) {
    if (!authenticated) return &ZOO_OPEN_ACL_UNSAFE;
    const struct ACL_vector* base = create_acl(true);
    std::copy(base->data, base->data + base->count, shared_entries);
    shared_entries[0].perms = ZOO_PERM_READ | ZOO_PERM_CREATE | ZOO_PERM_DELETE;
    shared_acl = {base->count, shared_entries};
    return &shared_acl;
  }
};

namespace {
int create_flags(CreateMode mode) {
  switch (mode) {
    case CreateMode::Persistent: return 0;
    case CreateMode::Ephemeral: return ZOO_EPHEMERAL;
    case CreateMode::PersistentSequential: return ZOO_SEQUENCE;
  }
  return 0;
}
}  // namespace

Client::Client(Options options) : m_options(std::move(options)), m_impl(std::make_unique<Impl>()) {
  m_impl->timeout = m_options.timeout;
  m_impl->sink = m_options.on_event;
  m_impl->admin_id = m_options.admin_id;
  auto slash = m_options.connect.find('/');
  m_hosts = m_options.connect.substr(0, slash);
  if (slash != std::string::npos) {
    m_chroot = m_options.connect.substr(slash);
    while (m_chroot.size() > 1 && m_chroot.back() == '/') m_chroot.pop_back();
    if (m_chroot == "/") m_chroot.clear();
  }
}

Client::~Client() {
  if (m_impl && m_impl->zh) zookeeper_close(m_impl->zh);
}

Expected<std::unique_ptr<Client>> Client::connect(const Options& options) {
  init_logging();
  std::unique_ptr<Client> client(new Client(options));
  Impl& impl = *client->m_impl;
  if (client->m_hosts.empty())
    return fail(ErrorKind::Usage,
                fmt::format("invalid ZooKeeper connect string \"{}\": no host", options.connect));

  impl.zh = zookeeper_init(options.connect.c_str(), &Impl::watcher,
                           static_cast<int>(options.session_timeout.count()), nullptr, &impl, 0);
  if (!impl.zh) {
    int err = errno;
    return fail(err == EINVAL ? ErrorKind::Usage : ErrorKind::Unavailable,
                fmt::format("cannot use ZooKeeper connect string \"{}\": {}", options.connect,
                            err == EINVAL ? "malformed, or a host name that does not resolve"
                                          : std::strerror(err)));
  }

  // By default the client resolves the host list again every time it polls its socket:
  // a getaddrinfo (netlink socket, /etc/hosts) per request. Re-resolving every 30 s still
  // follows DNS changes, and a connection loss re-resolves at once.
  zoo_set_servers_resolution_delay(impl.zh, 30'000);

  {
    std::unique_lock lock(impl.mu);
    bool settled = impl.cv.wait_for(lock, options.timeout, [&] {
      return impl.state == ZOO_CONNECTED_STATE || impl.state == ZOO_EXPIRED_SESSION_STATE ||
             impl.state == ZOO_AUTH_FAILED_STATE;
    });
    if (!settled || impl.state != ZOO_CONNECTED_STATE)
      return fail(ErrorKind::Unavailable,
                  fmt::format("cannot reach ZooKeeper at {} within {} ms", client->m_hosts,
                              options.timeout.count()),
                  ZCONNECTIONLOSS);
  }

  if (!options.digest.empty()) {
    auto call = std::make_shared<Call>();
    const std::string& cred = options.digest;
    SVCCTL_CHECK(impl.run(call, "digest authentication", [&](const void* ctx) {
      return zoo_add_auth(impl.zh, "digest", cred.data(), static_cast<int>(cred.size()), on_void,
                          ctx);
    }));
  }
  return client;
}

std::chrono::milliseconds Client::negotiated_session_timeout() const {
  return std::chrono::milliseconds(zoo_recv_timeout(m_impl->zh));
}

std::int64_t Client::session_id() const { return zoo_client_id(m_impl->zh)->client_id; }

namespace {

void on_async_data(int rc, const char* value, int len, const ::Stat* stat, const void* ctx) {
  std::unique_ptr<NodeCallback> done(static_cast<NodeCallback*>(const_cast<void*>(ctx)));
  Node node;
  if (rc == ZOK) {
    if (value && len > 0) node.data.assign(value, static_cast<std::size_t>(len));
    node.stat = convert(stat);
  }
  (*done)(static_cast<Code>(rc), std::move(node));
}

void on_async_children(int rc, const struct String_vector* v, const ::Stat* stat, const void* ctx) {
  std::unique_ptr<ChildrenCallback> done(static_cast<ChildrenCallback*>(const_cast<void*>(ctx)));
  std::vector<std::string> names;
  if (rc == ZOK && v) {
    names.reserve(static_cast<std::size_t>(v->count));
    for (int i = 0; i < v->count; ++i) names.emplace_back(v->data[i]);
  }
  (*done)(static_cast<Code>(rc), std::move(names), rc == ZOK ? convert(stat) : zk::Stat{});
}

void on_async_stat(int rc, const ::Stat* stat, const void* ctx) {
  std::unique_ptr<StatCallback> done(static_cast<StatCallback*>(const_cast<void*>(ctx)));
  (*done)(static_cast<Code>(rc), rc == ZOK ? convert(stat) : zk::Stat{});
}

void on_async_string(int rc, const char*, const void* ctx) {
  std::unique_ptr<DoneCallback> done(static_cast<DoneCallback*>(const_cast<void*>(ctx)));
  (*done)(static_cast<Code>(rc));
}

}  // namespace

void Client::exists_async(const std::string& path, Watch watch, StatCallback done) {
  auto* ctx = new StatCallback(std::move(done));
  int rc = zoo_aexists(m_impl->zh, path.c_str(), watch == Watch::Yes ? 1 : 0, on_async_stat, ctx);
  if (rc != ZOK) {
    std::unique_ptr<StatCallback> owned(ctx);
    (*owned)(static_cast<Code>(rc), zk::Stat{});
  }
}

void Client::sync_async(const std::string& path, DoneCallback done) {
  auto* ctx = new DoneCallback(std::move(done));
  int rc = zoo_async(m_impl->zh, path.c_str(), on_async_string, ctx);
  if (rc != ZOK) {
    std::unique_ptr<DoneCallback> owned(ctx);
    (*owned)(static_cast<Code>(rc));
  }
}

void Client::get_async(const std::string& path, Watch watch, NodeCallback done) {
  auto* ctx = new NodeCallback(std::move(done));
  int rc = zoo_aget(m_impl->zh, path.c_str(), watch == Watch::Yes ? 1 : 0, on_async_data, ctx);
  if (rc != ZOK) {
    std::unique_ptr<NodeCallback> owned(ctx);
    (*owned)(static_cast<Code>(rc), Node{});
  }
}

void Client::children_async(const std::string& path, Watch watch, ChildrenCallback done) {
  auto* ctx = new ChildrenCallback(std::move(done));
  int rc = zoo_aget_children2(m_impl->zh, path.c_str(), watch == Watch::Yes ? 1 : 0,
                              on_async_children, ctx);
  if (rc != ZOK) {
    std::unique_ptr<ChildrenCallback> owned(ctx);
    (*owned)(static_cast<Code>(rc), {}, zk::Stat{});
  }
}

Expected<Node> Client::get(const std::string& path) {
  auto call = std::make_shared<Call>();
  SVCCTL_CHECK(m_impl->run(call, fmt::format("read {}", path), [&](const void* ctx) {
    return zoo_aget(m_impl->zh, path.c_str(), 0, on_data, ctx);
  }));
  std::lock_guard lock(call->mu);
  return Node{std::move(call->data), call->stat};
}

Expected<std::vector<std::string>> Client::children(const std::string& path) {
  auto call = std::make_shared<Call>();
  SVCCTL_CHECK(m_impl->run(call, fmt::format("list {}", path), [&](const void* ctx) {
    return zoo_aget_children(m_impl->zh, path.c_str(), 0, on_strings, ctx);
  }));
  std::lock_guard lock(call->mu);
  return std::move(call->names);
}

Expected<std::optional<Stat>> Client::exists(const std::string& path) {
  auto call = std::make_shared<Call>();
  auto r = m_impl->run(call, fmt::format("read {}", path), [&](const void* ctx) {
    return zoo_aexists(m_impl->zh, path.c_str(), 0, on_stat, ctx);
  });
  if (!r) {
    if (is(r.error(), Code::NoNode)) return std::optional<Stat>{};
    return fail(r.error());
  }
  std::lock_guard lock(call->mu);
  return std::optional<Stat>{call->stat};
}

Expected<void> Client::create(const std::string& path, const std::string& data, CreateMode mode) {
  auto call = std::make_shared<Call>();
  int flags = create_flags(mode);
  return m_impl->run(call, fmt::format("create {}", path), [&](const void* ctx) {
    return zoo_acreate(m_impl->zh, path.c_str(), data.data(), static_cast<int>(data.size()),
                       m_impl->create_acl(authenticated()), flags, on_string, ctx);
  });
}

Expected<Stat> Client::set(const std::string& path, const std::string& data, int version) {
  auto call = std::make_shared<Call>();
  SVCCTL_CHECK(m_impl->run(call, fmt::format("write {}", path), [&](const void* ctx) {
    return zoo_aset(m_impl->zh, path.c_str(), data.data(), static_cast<int>(data.size()), version,
                    on_stat, ctx);
  }));
  std::lock_guard lock(call->mu);
  return call->stat;
}

Expected<void> Client::remove(const std::string& path, int version) {
  auto call = std::make_shared<Call>();
  return m_impl->run(call, fmt::format("delete {}", path), [&](const void* ctx) {
    return zoo_adelete(m_impl->zh, path.c_str(), version, on_void, ctx);
  });
}

Expected<void> Client::multi(const std::vector<Op>& ops, std::vector<Stat>* stats) {
  if (ops.empty()) return {};
  auto call = std::make_shared<Call>();
  Call& c = *call;
  const std::size_t n = ops.size();
  c.ops.resize(n);
  c.results.resize(n);
  c.paths.reserve(n);
  c.values.reserve(n);
  c.path_buffers.resize(n);
  c.set_stats.resize(n);
  const struct ACL_vector* acl = m_impl->create_acl(authenticated());
  for (std::size_t i = 0; i < n; ++i) {
    const Op& op = ops[i];
    const char* p = c.paths.emplace_back(op.path).c_str();
    const std::string& v = c.values.emplace_back(op.data);
    switch (op.type) {
      case Op::Type::Create:
        c.path_buffers[i].resize(op.path.size() + 1 + m_chroot.size() + 16);
        zoo_create_op_init(&c.ops[i], p, v.data(), static_cast<int>(v.size()), acl,
                           create_flags(op.mode),
                           c.path_buffers[i].data(), static_cast<int>(c.path_buffers[i].size()));
        break;
      case Op::Type::Remove: zoo_delete_op_init(&c.ops[i], p, op.version); break;
      case Op::Type::Set:
        zoo_set_op_init(&c.ops[i], p, v.data(), static_cast<int>(v.size()), op.version, &c.set_stats[i]);
        break;
      case Op::Type::Check: zoo_check_op_init(&c.ops[i], p, op.version); break;
    }
  }
  auto r = m_impl->run(call, "atomic update", [&](const void* ctx) {
    return zoo_amulti(m_impl->zh, static_cast<int>(n), c.ops.data(), c.results.data(), on_void, ctx);
  });
  if (r) {
    if (stats) {
      std::lock_guard lock(c.mu);
      stats->clear();
      for (std::size_t i = 0; i < n; ++i)
        stats->push_back(ops[i].type == Op::Type::Set ? convert(&c.set_stats[i]) : Stat{});
    }
    return {};
  }
  // Name the op that failed (the others report "rolled back" or ZOK).
  std::lock_guard lock(c.mu);
  if (c.done) {
    for (std::size_t i = 0; i < n; ++i) {
      int rc = c.results[i].err;
      if (rc != ZOK && rc != ZRUNTIMEINCONSISTENCY) {
        const char* verb = ops[i].type == Op::Type::Create   ? "create"
                           : ops[i].type == Op::Type::Remove ? "delete"
                           : ops[i].type == Op::Type::Set    ? "write"
                                                             : "check";
        return fail(to_error(rc, fmt::format("{} {}", verb, ops[i].path)));
      }
    }
  }
  return fail(r.error());
}

Expected<void> Client::ensure_path(const std::string& path) {
  if (path.empty() || path == "/") return {};
  auto r = create(path, "", CreateMode::Persistent);
  if (r || is(r.error(), Code::NodeExists)) return {};
  if (!is(r.error(), Code::NoNode)) return r;
  auto slash = path.rfind('/');
  if (slash == 0) {
    // A top-level node has no parent inside the chroot: the chroot itself is missing.
    if (m_chroot.empty()) return r;
    SVCCTL_CHECK(ensure_chroot());
  } else {
    SVCCTL_CHECK(ensure_path(path.substr(0, slash)));
  }
  r = create(path, "", CreateMode::Persistent);
  if (r || is(r.error(), Code::NodeExists)) return {};
  return r;
}

Expected<void> Client::ensure_shared_folder(const std::string& path) {
  SVCCTL_TRY(auto there, exists(path));
  if (there) return {};
  auto slash = path.rfind('/');
  if (slash > 0) SVCCTL_CHECK(ensure_path(path.substr(0, slash)));
  else if (!m_chroot.empty()) SVCCTL_CHECK(ensure_chroot());
  auto call = std::make_shared<Call>();
  auto r = m_impl->run(call, fmt::format("create {}", path), [&](const void* ctx) {
    return zoo_acreate(m_impl->zh, path.c_str(), "", 0, m_impl->shared_folder_acl(authenticated()), 0, on_string,
                       ctx);
  });
  if (r || is(r.error(), Code::NodeExists)) return {};
  return r;
}

Expected<void> Client::ensure_chroot() {
  Options raw = m_options;
  raw.connect = m_hosts;
  SVCCTL_TRY(auto root, Client::connect(raw));
  return root->ensure_path(m_chroot);
}

namespace {

// Runs a pipelined batch: submit(i, ctx) sends request i; at most `window` in flight,
// refilled when half have completed. Returns false when the server stopped answering for a
// whole timeout.
bool run_batch(const std::shared_ptr<Batch>& batch, std::size_t n, std::size_t window,
               std::chrono::milliseconds timeout, auto&& submit) {
  std::size_t next = 0;
  std::unique_lock lock(batch->mu);
  batch->total = n;
  batch->low_water = window / 2;
  while (batch->completed < n) {
    while (next < n && batch->in_flight < window) {
      ++batch->in_flight;
      lock.unlock();
      auto* slot = new Slot{batch, next};
      int rc = submit(next, static_cast<const void*>(slot));
      lock.lock();
      if (rc != ZOK) {
        delete slot;
        batch->rcs[next] = rc;
        --batch->in_flight;
        ++batch->completed;
      }
      ++next;
    }
    std::size_t seen = batch->completed;
    bool woke = batch->cv.wait_for(lock, timeout, [&] {
      return batch->completed == n || (next < n && batch->in_flight <= batch->low_water);
    });
    if (!woke && batch->completed == seen) return false;
  }
  return true;
}

}  // namespace

std::vector<Expected<Node>> Client::get_many(const std::vector<std::string>& paths,
                                             std::size_t window) {
  const std::size_t n = paths.size();
  auto batch = std::make_shared<Batch>();
  batch->rcs.assign(n, ZOPERATIONTIMEOUT);
  batch->datas.resize(n);
  batch->stats.resize(n);
  bool ok = run_batch(batch, n, window, m_options.timeout, [&](std::size_t i, const void* ctx) {
    return zoo_aget(m_impl->zh, paths[i].c_str(), 0, on_batch_data, ctx);
  });
  std::vector<Expected<Node>> out;
  out.reserve(n);
  std::lock_guard lock(batch->mu);
  for (std::size_t i = 0; i < n; ++i) {
    int rc = batch->rcs[i];
    if (rc == ZOK) out.emplace_back(Node{std::move(batch->datas[i]), batch->stats[i]});
    else if (!ok && rc == ZOPERATIONTIMEOUT)
      out.emplace_back(fail(ErrorKind::Unavailable,
                            fmt::format("read {}: no answer from ZooKeeper within {} ms", paths[i],
                                        m_options.timeout.count()),
                            rc));
    else out.emplace_back(fail(to_error(rc, fmt::format("read {}", paths[i]))));
  }
  return out;
}

std::vector<Expected<std::vector<std::string>>> Client::children_many(
    const std::vector<std::string>& paths, std::size_t window) {
  const std::size_t n = paths.size();
  auto batch = std::make_shared<Batch>();
  batch->rcs.assign(n, ZOPERATIONTIMEOUT);
  batch->names.resize(n);
  bool ok = run_batch(batch, n, window, m_options.timeout, [&](std::size_t i, const void* ctx) {
    return zoo_aget_children(m_impl->zh, paths[i].c_str(), 0, on_batch_strings, ctx);
  });
  std::vector<Expected<std::vector<std::string>>> out;
  out.reserve(n);
  std::lock_guard lock(batch->mu);
  for (std::size_t i = 0; i < n; ++i) {
    int rc = batch->rcs[i];
    if (rc == ZOK) out.emplace_back(std::move(batch->names[i]));
    else if (!ok && rc == ZOPERATIONTIMEOUT)
      out.emplace_back(fail(ErrorKind::Unavailable,
                            fmt::format("list {}: no answer from ZooKeeper within {} ms", paths[i],
                                        m_options.timeout.count()),
                            rc));
    else out.emplace_back(fail(to_error(rc, fmt::format("list {}", paths[i]))));
  }
  return out;
}

}  // namespace svcctl::zk
