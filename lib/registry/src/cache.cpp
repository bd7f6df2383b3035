#include <svcctl/registry/cache.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <variant>

namespace svcctl::registry {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The registry roots and the depth of their leaves: /key/{k} is 1, /address/{svc}/{hp} is 2.
struct Root {
  std::string_view path;
  int leaf_depth;
};
constexpr Root k_roots[] = {{paths::k_services, 1}, {paths::k_addresses, 2}, {paths::k_apis, 2},
                            {paths::k_keys, 1},     {paths::k_acls, 2},      {paths::k_gateways, 1}};

// How deep `path` is below its root (0 for the root itself), or -1 if it is under none.
int depth_of(std::string_view path, const Root** root) {
  for (const auto& r : k_roots) {
    if (path.substr(0, r.path.size()) != r.path) continue;
    if (path.size() == r.path.size()) {
      *root = &r;
      return 0;
    }
    if (path[r.path.size()] != '/') continue;
    *root = &r;
    return static_cast<int>(std::count(path.begin() + static_cast<std::ptrdiff_t>(r.path.size()),
                                       path.end(), '/'));
  }
  return -1;
}

bool is_container(std::string_view path) {
  const Root* root = nullptr;
  int d = depth_of(path, &root);
  return d >= 0 && d < root->leaf_depth;
}

std::size_t shard_of(std::string_view path) {
  return std::hash<std::string_view>{}(path) % Snapshot::k_shards;
}

}  // namespace

std::string_view to_string(Change::Kind kind) {
  switch (kind) {
    case Change::Kind::Added: return "added";
    case Change::Kind::Modified: return "modified";
    case Change::Kind::Deleted: return "deleted";
    case Change::Kind::Resync: return "resync";
    case Change::Kind::Synced: return "synced";
  }
  return "added";
}

const CacheEntry* Snapshot::find(std::string_view path) const {
  const auto& shard = m_shards[shard_of(path)];
  if (!shard) return nullptr;
  auto it = shard->find(path);
  return it == shard->end() ? nullptr : &it->second;
}

std::size_t Snapshot::size() const {
  std::size_t n = 0;
  for (const auto& s : m_shards) n += s ? s->size() : 0;
  return n;
}

std::map<std::string, CacheEntry> Snapshot::entries() const {
  std::map<std::string, CacheEntry> out;
  for (const auto& s : m_shards)
    if (s) out.insert(s->begin(), s->end());
  return out;
}

struct Cache::Impl {
  struct DataResult {
    std::uint64_t epoch;
    std::string path;
    int rc;
    zk::Node node;
  };
  struct ChildrenResult {
    std::uint64_t epoch;
    std::string path;
    int rc;
    std::vector<std::string> names;
    zk::Stat stat;
  };
  struct ExistsResult {
    std::uint64_t epoch;
    std::string path;
    int rc;
  };
  struct Notification {
    std::uint64_t epoch;
    zk::Event event;
  };
  struct AdoptLkg {};
  using Item = std::variant<DataResult, ChildrenResult, ExistsResult, Notification, AdoptLkg>;
  enum class ReadKind { Data, Children, Exists };

  Cache& owner;
  Options options;
  std::mt19937_64 rng{std::random_device{}()};

  // Filled by ZooKeeper's threads, drained by the control thread.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> inbox;
  bool stopping = false;

  // Owned by the control thread.
  std::unique_ptr<zk::Client> client;
  std::uint64_t epoch = 0;  // one per session; results of older sessions are dropped
  // The mirror, shard by shard. A published snapshot shares these maps; a shard is copied
  // only on its first change after a publish (owned[i] is false until then), so memory
  // holds one copy of the registry and a change costs a copy of one small shard.
  std::array<std::shared_ptr<Snapshot::Shard>, Snapshot::k_shards> shards;
  std::array<bool, Snapshot::k_shards> owned{};
  std::unordered_map<std::string, std::set<std::string>> children;
  std::unordered_set<std::string> seen;  // during a resync: nodes read again this round
  std::deque<std::pair<std::string, ReadKind>> pending;
  std::set<std::pair<std::string, ReadKind>> queued;
  std::size_t outstanding = 0;
  std::vector<Change> changes;
  bool loaded = false;
  bool resyncing = false;
  bool meta_changed = false;
  zk::SessionState session = zk::SessionState::Connecting;
  std::int64_t session_id = 0;
  std::optional<Snapshot::Clock::time_point> stale_since;
  Snapshot::Clock::time_point last_change{};
  std::int64_t max_zxid = 0;
  std::optional<SteadyClock::time_point> reconnect_at;
  std::chrono::milliseconds backoff{200};
  std::uint64_t generation = 0;
  std::thread thread;
  std::optional<SteadyClock::time_point> lkg_due;  // a write of the LKG file is pending
  std::atomic<bool> from_lkg{false};

  std::mutex load_mu;
  std::condition_variable load_cv;
  bool load_done = false;

  Impl(Cache& c, Options o) : owner(c), options(std::move(o)) {
    for (auto& s : shards) s = std::make_shared<Snapshot::Shard>();
    owned.fill(true);
  }

  // The shard of `path`, made private to the control thread first if a snapshot shares it.
  Snapshot::Shard& writable(std::size_t i) {
    if (!owned[i]) {
      shards[i] = std::make_shared<Snapshot::Shard>(*shards[i]);
      owned[i] = true;
    }
    return *shards[i];
  }

  void push(Item item) {
    {
      std::lock_guard lock(mu);
      inbox.push_back(std::move(item));
    }
    cv.notify_one();
  }

  // ---- sessions ----------------------------------------------------------------------

  void open_session(const std::string& reason) {
    ++epoch;
    outstanding = 0;  // replies of the old session are dropped, not counted
    pending.clear();
    queued.clear();
    client.reset();
    zk::Options o = options.zk;
    const std::uint64_t e = epoch;
    o.on_event = [this, e](zk::Event ev) { push(Notification{e, std::move(ev)}); };
    auto c = zk::Client::connect(o);
    if (!c) {
      set_session(zk::SessionState::Connecting);
      std::uniform_int_distribution<long> d(0, backoff.count());
      reconnect_at = SteadyClock::now() + backoff + std::chrono::milliseconds(d(rng));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
      return;
    }
    backoff = std::chrono::milliseconds(200);
    client = std::move(*c);
    session_id = client->session_id();
    set_session(zk::SessionState::Connected);
    begin_resync(reason);
  }

  void set_session(zk::SessionState s) {
    if (s != zk::SessionState::Connected && !stale_since) stale_since = Snapshot::Clock::now();
    if (s != session) meta_changed = true;
    session = s;
  }

  // Reads everything again: the roots, every container and every leaf known. What is not
  // seen again by the end of the round is swept away.
  void begin_resync(const std::string& reason) {
    resyncing = true;
    seen.clear();
    if (loaded) changes.push_back(Change{Change::Kind::Resync, {}, {}, {}, reason});
    for (const auto& r : k_roots) enqueue(std::string(r.path), ReadKind::Children);
    for (const auto& shard : shards)
      for (const auto& [path, entry] : *shard)
        enqueue(path, entry.container ? ReadKind::Children : ReadKind::Data);
  }

  void finish_round() {
    std::vector<std::string> gone;
    for (const auto& shard : shards)
      for (const auto& [path, entry] : *shard)
        if (!seen.count(path)) gone.push_back(path);
    for (const auto& p : gone) remove_subtree(p);
    seen = {};  // free it
    resyncing = false;
    if (loaded) changes.push_back(Change{Change::Kind::Synced, {}, {}, {}, {}});  // not the first load
    if (session == zk::SessionState::Connected && stale_since) {
      stale_since.reset();
      meta_changed = true;
    }
    if (!loaded) {
      loaded = true;
      meta_changed = true;
    }
    from_lkg = false;
  }

  // ---- reads -------------------------------------------------------------------------

  void enqueue(std::string path, ReadKind kind) {
    if (queued.emplace(path, kind).second) pending.emplace_back(std::move(path), kind);
  }

  void pump() {
    if (!client) return;
    while (outstanding < options.max_outstanding && !pending.empty()) {
      auto [path, kind] = std::move(pending.front());
      pending.pop_front();
      queued.erase({path, kind});
      ++outstanding;
      const std::uint64_t e = epoch;
      switch (kind) {
        case ReadKind::Data:
          client->get_async(path, zk::Watch::Yes, [this, e, path](int rc, zk::Node n) {
            push(DataResult{e, path, rc, std::move(n)});
          });
          break;
        case ReadKind::Children:
          client->children_async(path, zk::Watch::Yes,
                                 [this, e, path](int rc, std::vector<std::string> names, zk::Stat st) {
                                   push(ChildrenResult{e, path, rc, std::move(names), st});
                                 });
          break;
        case ReadKind::Exists:
          client->exists_async(path, zk::Watch::Yes,
                               [this, e, path](int rc, zk::Stat) { push(ExistsResult{e, path, rc}); });
          break;
      }
    }
  }

  // ---- applying what was read ------------------------------------------------------------

  void put(const std::string& path, CacheEntry e) {
    if (resyncing) seen.insert(path);
    max_zxid = std::max(max_zxid, e.mzxid);
    std::size_t s = shard_of(path);
    const auto& current = *shards[s];
    auto it = current.find(path);
    if (it == current.end()) {
      writable(s).emplace(path, e);
      changes.push_back(Change{Change::Kind::Added, path, std::nullopt, std::move(e), {}});
    } else if (e.mzxid < it->second.mzxid || it->second == e) {
      return;  // an older state than the one held (never go back in time), or no change
    } else {
      Change c{Change::Kind::Modified, path, it->second, e, {}};
      writable(s)[path] = std::move(e);
      changes.push_back(std::move(c));
    }
    last_change = Snapshot::Clock::now();
  }

  void remove_subtree(const std::string& path) {
    // Keep the parent's list of children true, also for a node listed but not read yet: a
    // name left in the list would hide the node's return from the next listing for good.
    auto slash = path.rfind('/');
    if (slash > 0)
      if (auto p = children.find(path.substr(0, slash)); p != children.end())
        p->second.erase(path.substr(slash + 1));
    if (auto it = children.find(path); it != children.end()) {
      auto kids = std::move(it->second);
      children.erase(it);
      for (const auto& k : kids) remove_subtree(path + "/" + k);
    }
    std::size_t s = shard_of(path);
    if (!shards[s]->count(path)) return;
    auto& shard = writable(s);
    auto it = shard.find(path);
    changes.push_back(Change{Change::Kind::Deleted, path, std::move(it->second), std::nullopt, {}});
    shard.erase(it);
    last_change = Snapshot::Clock::now();
  }

  bool current(std::uint64_t e) {
    if (e != epoch) return false;
    if (outstanding > 0) --outstanding;
    return true;
  }

  void handle(DataResult& r) {
    if (!current(r.epoch)) return;
    if (r.rc == 0) {
      // A node read is a child of its parent, even if a listing served before it was
      // created again said otherwise: the next listing without it removes it.
      auto slash = r.path.rfind('/');
      if (auto p = children.find(r.path.substr(0, slash)); p != children.end())
        p->second.insert(r.path.substr(slash + 1));
      put(r.path, CacheEntry{std::move(r.node.data), r.node.stat.mzxid, r.node.stat.version,
                             r.node.stat.ephemeral_owner, false});
    } else if (r.rc == static_cast<int>(zk::Code::NoNode)) {
      remove_subtree(r.path);
    }
    // Connection trouble: the reconnect (or the new session) reads everything again.
  }

  void handle(ChildrenResult& r) {
    if (!current(r.epoch)) return;
    if (r.rc == static_cast<int>(zk::Code::NoNode)) {
      remove_subtree(r.path);
      const Root* root = nullptr;
      if (depth_of(r.path, &root) == 0) enqueue(r.path, ReadKind::Exists);  // wait for it
      return;
    }
    if (r.rc != 0) return;
    // The listing is as of the parent's pzxid: a removal shows in the zxid seen only there
    // (and may come after the removal itself was published: publish the zxid alone then).
    if (r.stat.pzxid > max_zxid) {
      max_zxid = r.stat.pzxid;
      meta_changed = true;
    }
    put(r.path, CacheEntry{{}, r.stat.mzxid, r.stat.version, r.stat.ephemeral_owner, true});
    std::set<std::string> now(std::make_move_iterator(r.names.begin()),
                              std::make_move_iterator(r.names.end()));
    auto& known = children[r.path];
    for (const auto& name : now)
      if (!known.count(name)) {
        std::string child = r.path + "/" + name;
        enqueue(child, is_container(child) ? ReadKind::Children : ReadKind::Data);
      }
    std::vector<std::string> gone;
    for (const auto& name : known)
      if (!now.count(name)) gone.push_back(name);
    known = std::move(now);
    for (const auto& name : gone) remove_subtree(r.path + "/" + name);
  }

  void handle(ExistsResult& r) {
    if (!current(r.epoch)) return;
    if (r.rc == 0) enqueue(r.path, ReadKind::Children);  // it exists now: read it
  }

  void handle(Notification& n) {
    if (n.epoch != epoch) return;
    const zk::Event& ev = n.event;
    using T = zk::Event::Type;
    switch (ev.type) {
      case T::Session:
        if (ev.state == zk::SessionState::Connected) {
          if (session != zk::SessionState::Connected) {
            set_session(zk::SessionState::Connected);
            begin_resync("reconnected");  // watches may not have survived a server restart
          }
        } else if (ev.state == zk::SessionState::Connecting) {
          set_session(zk::SessionState::Connecting);
        } else {
          set_session(ev.state);
          std::uniform_int_distribution<long> d(0, options.resync_jitter.count());
          reconnect_at = SteadyClock::now() + std::chrono::milliseconds(d(rng));
        }
        break;
      case T::Children: enqueue(ev.path, ReadKind::Children); break;
      case T::Created:
      case T::Deleted:
      case T::Changed:
        enqueue(ev.path, is_container(ev.path) ? ReadKind::Children : ReadKind::Data);
        break;
    }
  }

  // ---- last-known-good file ---------------------------------------------------------

  // Reads the whole file before taking anything from it: a file that is not exactly what
  // write_lkg() writes is refused as a whole, never half adopted (and never throws).
  static std::optional<std::vector<std::pair<std::string, CacheEntry>>> read_lkg(
      const std::string& file, std::int64_t& written_ms) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    auto doc = nlohmann::json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || doc.value("format", "") != "svcctl-lkg-1")
      return std::nullopt;
    auto nodes = doc.find("nodes");
    auto written = doc.find("written_ms");
    if (nodes == doc.end() || !nodes->is_array() || written == doc.end() ||
        !written->is_number_integer())
      return std::nullopt;
    std::vector<std::pair<std::string, CacheEntry>> out;
    for (const auto& n : *nodes) {
      const Root* root = nullptr;
      if (!n.is_array() || n.size() != 6 || !n[0].is_string() || !n[1].is_string() ||
          !n[2].is_number_integer() || !n[3].is_number_integer() || !n[4].is_number_integer() ||
          !n[5].is_boolean() || depth_of(n[0].get_ref<const std::string&>(), &root) < 0)
        return std::nullopt;
      out.emplace_back(n[0].get<std::string>(),
                       CacheEntry{n[1].get<std::string>(), n[2].get<std::int64_t>(),
                                  n[3].get<std::int32_t>(), n[4].get<std::int64_t>(), n[5].get<bool>()});
    }
    written_ms = written->get<std::int64_t>();
    return out;
  }

  void handle(AdoptLkg&) {
    if (loaded || options.lkg_file.empty()) return;
    std::int64_t written_ms = 0;
    auto nodes = read_lkg(options.lkg_file, written_ms);
    if (!nodes) return;
    for (auto& [path, entry] : *nodes) {
      auto slash = path.rfind('/');
      const Root* root = nullptr;
      if (slash > 0 && depth_of(path.substr(0, slash), &root) >= 0)
        children[path.substr(0, slash)].insert(path.substr(slash + 1));
      // A round already under way must read these too, or it would sweep them.
      if (resyncing) enqueue(path, is_container(path) ? ReadKind::Children : ReadKind::Data);
      put(path, std::move(entry));
    }
    stale_since = Snapshot::Clock::time_point(std::chrono::milliseconds(written_ms));
    loaded = true;
    from_lkg = true;
    meta_changed = true;
  }

  void write_lkg() {
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& shard : shards)
      for (const auto& [path, e] : *shard)
        nodes.push_back({path, e.data, e.mzxid, e.version, e.ephemeral_owner, e.container});
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      Snapshot::Clock::now().time_since_epoch()).count();
    nlohmann::json doc = {{"format", "svcctl-lkg-1"}, {"max_zxid", max_zxid},
                          {"written_ms", now_ms}, {"nodes", std::move(nodes)}};
    std::string text = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string tmp = options.lkg_file + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return;
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 &&
              ::fsync(::fileno(f)) == 0;
    ok = std::fclose(f) == 0 && ok;
    if (ok) std::rename(tmp.c_str(), options.lkg_file.c_str());
    else std::remove(tmp.c_str());
  }

  void maybe_write_lkg(bool published) {
    if (options.lkg_file.empty()) return;
    bool consistent = loaded && !from_lkg && !resyncing && session == zk::SessionState::Connected;
    if (published && consistent && !lkg_due) lkg_due = SteadyClock::now() + std::chrono::seconds(1);
    if (lkg_due && SteadyClock::now() >= *lkg_due && consistent) {
      lkg_due.reset();
      write_lkg();
    }
  }

  // ---- publishing --------------------------------------------------------------------

  // Returns whether it published.
  bool publish() {
    if (!loaded || (changes.empty() && !meta_changed)) return false;
    auto snap = std::make_shared<Snapshot>();
    for (std::size_t i = 0; i < Snapshot::k_shards; ++i) {
      snap->m_shards[i] = shards[i];  // shared from now on: the next change copies it first
      owned[i] = false;
    }
    snap->generation = ++generation;
    snap->max_zxid = max_zxid;
    snap->session = session;
    snap->session_id = session_id;
    snap->loaded = true;
    snap->last_change = last_change;
    snap->stale_since = stale_since;
    owner.m_snapshot.store(snap);
    meta_changed = false;
    std::vector<Change> done;
    done.swap(changes);
    if (generation == 1)  // the first load: present it in path order
      std::stable_sort(done.begin(), done.end(),
                       [](const Change& a, const Change& b) { return a.path < b.path; });
    if (options.on_change && !done.empty()) options.on_change(done, *snap);
    {
      std::lock_guard lock(load_mu);
      load_done = true;
    }
    load_cv.notify_all();
    return true;
  }

  void run() {
    open_session("start");
    while (true) {
      std::deque<Item> items;
      {
        std::unique_lock lock(mu);
        auto until = std::min(reconnect_at.value_or(SteadyClock::time_point::max()),
                              lkg_due.value_or(SteadyClock::time_point::max()));
        if (until == SteadyClock::time_point::max()) until = SteadyClock::now() + std::chrono::hours(1);
        cv.wait_until(lock, until, [&] { return stopping || !inbox.empty(); });
        if (stopping) return;
        items.swap(inbox);
      }
      if (reconnect_at && SteadyClock::now() >= *reconnect_at) {
        reconnect_at.reset();
        open_session(session == zk::SessionState::Expired ? "session expired" : "reconnected");
      }
      for (auto& item : items) std::visit([this](auto& x) { handle(x); }, item);
      pump();
      if (resyncing && outstanding == 0 && pending.empty()) finish_round();
      maybe_write_lkg(publish());
    }
  }
};

Cache::Cache(Options options) : m_impl(std::make_unique<Impl>(*this, std::move(options))) {}

Cache::~Cache() {
  {
    std::lock_guard lock(m_impl->mu);
    m_impl->stopping = true;
  }
  m_impl->cv.notify_all();
  if (m_impl->thread.joinable()) m_impl->thread.join();
  m_impl->client.reset();  // closes the session; late completions only queue
}

Expected<void> Cache::start(std::chrono::milliseconds timeout) {
  m_impl->thread = std::thread([this] { m_impl->run(); });
  {
    std::unique_lock lock(m_impl->load_mu);
    if (m_impl->load_cv.wait_for(lock, timeout, [&] { return m_impl->load_done; })) return {};
  }
  auto unavailable = fail(ErrorKind::Unavailable,
                          fmt::format("could not load the registry from ZooKeeper at {} within {} ms",
                                      m_impl->options.zk.connect, timeout.count()));
  if (m_impl->options.lkg_file.empty()) return unavailable;
  // Fail static: serve the last-known-good file until a session reconciles it. The control
  // thread may be inside a connect attempt, which lasts at most the ZooKeeper timeout.
  m_impl->push(Impl::AdoptLkg{});
  std::unique_lock lock(m_impl->load_mu);
  if (!m_impl->load_cv.wait_for(lock, m_impl->options.zk.timeout + timeout,
                                [&] { return m_impl->load_done; }))
    return fail(ErrorKind::Unavailable,
                fmt::format("{}, and no usable last-known-good file at {}", unavailable.error.message,
                            m_impl->options.lkg_file));
  return {};
}

bool Cache::serving_lkg() const { return m_impl->from_lkg.load(); }

}  // namespace svcctl::registry
