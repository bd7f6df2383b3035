// zk::FakeEnsemble, the deterministic in-memory ensemble for unit tests. Long because it
// models what the tests rely on of a real one: one log, members that lag, per-session
// delivery, one-shot watches, SetWatches on reconnect, expiry, lost answers, lost data.
#include <svcctl/zk/fake.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <utility>

namespace svcctl::zk {

namespace {

struct FakeNode {
  std::string data;
  Stat stat;
  std::set<std::string> kids;
};
using Tree = std::map<std::string, FakeNode>;

Tree empty_tree() {
  Tree t;
  t["/"] = FakeNode{};
  return t;
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

bool valid_path(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path == "/") return true;
  return path.back() != '/' && path.find("//") == std::string::npos;
}

// One change a transaction makes to the tree.
struct Effect {
  enum class Kind { Create, Delete, Set };
  Kind kind = Kind::Set;
  std::string path;
  std::string data;
  std::int64_t owner = 0;
};

struct Txn {
  std::int64_t zxid = 0;
  std::vector<Effect> effects;
};

// Applies one effect (already checked against this state).
void apply(Tree& t, const Effect& e, std::int64_t zxid) {
  switch (e.kind) {
    case Effect::Kind::Create: {
      FakeNode n;
      n.data = e.data;
      n.stat.czxid = n.stat.mzxid = n.stat.pzxid = zxid;
      n.stat.ctime_ms = n.stat.mtime_ms = zxid;
      n.stat.ephemeral_owner = e.owner;
      t[e.path] = std::move(n);
      FakeNode& p = t[parent_of(e.path)];
      p.kids.insert(name_of(e.path));
      ++p.stat.cversion;
      p.stat.pzxid = zxid;
      p.stat.num_children = static_cast<std::int32_t>(p.kids.size());
      break;
    }
    case Effect::Kind::Delete: {
      t.erase(e.path);
      FakeNode& p = t[parent_of(e.path)];
      p.kids.erase(name_of(e.path));
      ++p.stat.cversion;
      p.stat.pzxid = zxid;
      p.stat.num_children = static_cast<std::int32_t>(p.kids.size());
      break;
    }
    case Effect::Kind::Set: {
      FakeNode& n = t[e.path];
      n.data = e.data;
      n.stat.mzxid = zxid;
      n.stat.mtime_ms = zxid;
      ++n.stat.version;
      break;
    }
  }
}

// Checks one op against `t` and applies it there; the effects go to `out`.
Code check_and_apply(Tree& t, const Op& op, std::int64_t owner, std::int64_t zxid, std::vector<Effect>& out) {
  if (!valid_path(op.path) || (op.type == Op::Type::Create && op.path == "/")) return Code::BadArguments;
  auto it = t.find(op.path);
  const bool version_ok = it == t.end() || op.version == -1 || it->second.stat.version == op.version;
  Effect e;
  e.path = op.path;
  switch (op.type) {
    case Op::Type::Create: {
      auto p = t.find(parent_of(op.path));
      if (op.mode == CreateMode::PersistentSequential && p != t.end()) {
        e.path = fmt::format("{}{:010d}", op.path, p->second.stat.cversion);  // as ZooKeeper names it
        it = t.find(e.path);
      }
      if (it != t.end()) return Code::NodeExists;
      if (p == t.end()) return Code::NoNode;
      if (p->second.stat.ephemeral_owner != 0) return Code::NoChildrenForEphemerals;
      e.kind = Effect::Kind::Create;
      e.data = op.data;
      e.owner = op.mode == CreateMode::Ephemeral ? owner : 0;
      break;
    }
    case Op::Type::Remove:
      if (it == t.end()) return Code::NoNode;
      if (!version_ok) return Code::BadVersion;
      if (!it->second.kids.empty()) return Code::NotEmpty;
      e.kind = Effect::Kind::Delete;
      break;
    case Op::Type::Set:
      if (it == t.end()) return Code::NoNode;
      if (!version_ok) return Code::BadVersion;
      e.kind = Effect::Kind::Set;
      e.data = op.data;
      break;
    case Op::Type::Check:
      if (it == t.end()) return Code::NoNode;
      if (!version_ok) return Code::BadVersion;
      return Code::Ok;
  }
  apply(t, e, zxid);
  out.push_back(std::move(e));
  return Code::Ok;
}

std::string_view verb(Op::Type t) {
  switch (t) {
    case Op::Type::Create: return "create";
    case Op::Type::Remove: return "delete";
    case Op::Type::Set: return "write";
    case Op::Type::Check: return "check";
  }
  return "check";
}

}  // namespace

struct FakeEnsemble::State {
  struct Member {
    Tree tree = empty_tree();
    std::int64_t zxid = 0;
    std::size_t applied = 0;  // transactions of the log applied
    bool lagging = false;
  };

  // What a session's queue holds: a reply (its callback, given the code it gets: the one
  // computed, or the connection's loss) or a notification.
  struct Item {
    bool notice = false;
    Event event;
    Code rc = Code::Ok;
    std::function<void(Code)> reply;
    std::int64_t zxid = 0;  // what delivering it tells the session
  };

  struct FakeSessionState {
    std::int64_t id = 0;
    std::size_t member = 0;
    SessionState state = SessionState::Connected;  // as the client sees it
    bool known = true;     // alive on the ensemble
    bool held = false;
    bool lose_answer = false;  // the next write is applied, its answer lost with the connection
    std::int64_t last_zxid = 0;
    Options options;
    std::deque<Item> queue;
    std::set<std::string> data_watches;   // get, and exists on a node that exists
    std::set<std::string> exist_watches;  // exists on a node that does not
    std::set<std::string> child_watches;
  };

  mutable std::recursive_mutex mu;
  std::mt19937_64 rng;
  Tree leader = empty_tree();
  std::int64_t zxid = 0;
  std::vector<Txn> log;
  std::vector<Member> members;
  std::map<std::int64_t, FakeSessionState> sessions;
  std::int64_t next_id = 0x10000001;
  std::optional<std::size_t> connect_member;
  std::size_t next_member = 0;
  bool refusing = false;
  Counters counters;

  // ---- the log ----------------------------------------------------------------------

  void notify(FakeSessionState& s, Event::Type type, const std::string& path, std::int64_t z) {
    Item item;
    item.notice = true;
    item.event.type = type;
    item.event.path = path;
    item.zxid = z;
    s.queue.push_back(std::move(item));
  }

  // The watches one effect fires for the sessions connected to member m.
  void fire(std::size_t m, const Effect& e, std::int64_t z) {
    const std::string parent = parent_of(e.path);
    for (auto& [id, s] : sessions) {
      if (s.member != m || s.state != SessionState::Connected) continue;
      const bool watched = s.data_watches.erase(e.path) + s.exist_watches.erase(e.path) > 0;
      switch (e.kind) {
        case Effect::Kind::Create:
          if (watched) notify(s, Event::Type::Created, e.path, z);
          if (s.child_watches.erase(parent)) notify(s, Event::Type::Children, parent, z);
          break;
        case Effect::Kind::Delete:
          if (s.child_watches.erase(e.path) || watched) notify(s, Event::Type::Deleted, e.path, z);
          if (s.child_watches.erase(parent)) notify(s, Event::Type::Children, parent, z);
          break;
        case Effect::Kind::Set:
          if (watched) notify(s, Event::Type::Changed, e.path, z);
          break;
      }
    }
  }

  // Member m applies the log up to `upto` transactions.
  void advance(std::size_t m, std::size_t upto) {
    Member& mem = members[m];
    while (mem.applied < std::min(upto, log.size())) {
      const Txn& t = log[mem.applied++];
      for (const auto& e : t.effects) {
        apply(mem.tree, e, t.zxid);
        fire(m, e, t.zxid);
      }
      mem.zxid = t.zxid;
    }
  }

  // Commits ops as one transaction: all or none.
  Expected<std::int64_t> commit(const std::vector<Op>& ops, std::int64_t owner) {
    Tree next = leader;
    std::vector<Effect> effects;
    for (const auto& op : ops) {
      const Code rc = check_and_apply(next, op, owner, zxid + 1, effects);
      if (rc != Code::Ok) return fail(to_error(rc, fmt::format("{} {}", verb(op.type), op.path)));
    }
    if (effects.empty()) return zxid;  // only checks: nothing written
    return append(std::move(next), std::move(effects));
  }

  std::int64_t append(Tree next, std::vector<Effect> effects) {
    leader = std::move(next);
    log.push_back(Txn{++zxid, std::move(effects)});
    for (std::size_t m = 0; m < members.size(); ++m)
      if (!members[m].lagging) advance(m, log.size());
    return zxid;
  }

  // The session's ephemeral nodes go, in one transaction.
  void drop_ephemerals(std::int64_t id) {
    std::vector<Effect> effects;
    Tree next = leader;
    // Deepest first is not needed: ephemerals have no children.
    for (const auto& [path, n] : leader)
      if (n.stat.ephemeral_owner == id) effects.push_back(Effect{Effect::Kind::Delete, path, {}, 0});
    if (effects.empty()) return;
    for (const auto& e : effects) apply(next, e, zxid + 1);
    append(std::move(next), std::move(effects));
  }

  // ---- sessions ---------------------------------------------------------------------

  FakeSessionState* find(std::int64_t id) {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : &it->second;
  }

  void session_event(FakeSessionState& s, SessionState st) {
    Item item;
    item.notice = true;
    item.event.type = Event::Type::Session;
    item.event.state = st;
    s.queue.push_back(std::move(item));
  }

  // Replies not delivered get `rc`. Notifications not delivered are lost, but not their
  // watches: the client library keeps a watch until its notification reaches it, and sets
  // it again on reconnect (SetWatches), where it fires again.
  static void lose_queue(FakeSessionState& s, Code rc) {
    std::deque<Item> kept;
    for (auto& item : s.queue) {
      if (item.notice && item.event.type != Event::Type::Session) {
        const std::string& p = item.event.path;
        switch (item.event.type) {
          case Event::Type::Created: s.exist_watches.insert(p); break;
          case Event::Type::Children: s.child_watches.insert(p); break;
          default: s.data_watches.insert(p); break;  // Changed, Deleted
        }
        continue;
      }
      if (!item.notice) {
        item.rc = rc;
        item.zxid = 0;
      }
      kept.push_back(std::move(item));
    }
    s.queue = std::move(kept);
  }

  void disconnect(FakeSessionState& s) {
    if (s.state != SessionState::Connected) return;
    lose_queue(s, Code::ConnectionLoss);
    s.state = SessionState::Connecting;
    session_event(s, SessionState::Connecting);
  }

  void expire(FakeSessionState& s) {
    if (!s.known) return;
    s.known = false;
    drop_ephemerals(s.id);
    if (s.state == SessionState::Connected) {
      lose_queue(s, Code::SessionExpired);
      hear_expired(s);
    }
  }

  // The client learns that its session is gone: its watches with it.
  void hear_expired(FakeSessionState& s) {
    s.state = SessionState::Expired;
    s.data_watches.clear();
    s.exist_watches.clear();
    s.child_watches.clear();
    session_event(s, SessionState::Expired);
  }

  // SetWatches for one kind of watch, relative to the last zxid the session saw: a watched
  // node gone fires Deleted, one changed since (by `zxid_of` its stat) fires `changed`.
  template <class ZxidOf>
  void set_again(FakeSessionState& s, std::set<std::string>& watches, const Member& mem, Event::Type changed,
                 ZxidOf zxid_of) {
    for (auto it = watches.begin(); it != watches.end();) {
      auto n = mem.tree.find(*it);
      if (n == mem.tree.end()) notify(s, Event::Type::Deleted, *it, mem.zxid);
      else if (zxid_of(n->second.stat) > s.last_zxid) notify(s, changed, *it, mem.zxid);
      else {
        ++it;
        continue;
      }
      it = watches.erase(it);
    }
  }

  // A read through session s: computes the reply now from its member's state, or how the
  // call fails. Returns false when the call cannot be sent at all (InvalidState, inline).
  template <class Compute>
  bool read(std::int64_t id, std::uint64_t FakeEnsemble::Counters::*kind, Compute compute,
            std::function<void(Code)>* reply) {
    FakeSessionState* s = find(id);
    if (!s || s->state == SessionState::Expired || s->state == SessionState::Closed) return false;
    Item item;
    if (s->state == SessionState::Connecting) {
      item.rc = Code::ConnectionLoss;
    } else {
      ++(counters.*kind);
      item.rc = compute(*s, members[s->member].tree);
      item.zxid = members[s->member].zxid;
    }
    item.reply = std::move(*reply);
    s->queue.push_back(std::move(item));
    return true;
  }
};

// ---- one session -------------------------------------------------------------------

namespace {

using State = FakeEnsemble::State;

class FakeSession final : public Session {
 public:
  FakeSession(std::shared_ptr<State> st, std::int64_t id, Options o)
      : m_st(std::move(st)), m_id(id), m_timeout(o.session_timeout), m_auth(!o.digest.empty()) {}

  ~FakeSession() override {
    std::vector<std::function<void(Code)>> closing;
    {
      std::lock_guard lock(m_st->mu);
      auto* s = m_st->find(m_id);
      if (!s) return;
      if (s->known && s->state != SessionState::Expired) m_st->drop_ephemerals(m_id);
      for (auto& item : s->queue)
        if (!item.notice) closing.push_back(std::move(item.reply));
      m_st->sessions.erase(m_id);
    }
    for (auto& c : closing) c(Code::Closing);
  }

  std::int64_t session_id() const override { return m_id; }
  std::chrono::milliseconds negotiated_session_timeout() const override { return m_timeout; }
  bool authenticated() const override { return m_auth; }

  void get_async(const std::string& path, Watch watch, NodeCallback done) override {
    auto node = std::make_shared<Node>();
    std::function<void(Code)> reply = [done, node](Code rc) { done(rc, rc == Code::Ok ? std::move(*node) : Node{}); };
    send(&FakeEnsemble::Counters::gets, reply, [&](State::FakeSessionState& s, const Tree& t) {
      auto it = t.find(path);
      if (it == t.end()) return Code::NoNode;
      *node = Node{it->second.data, it->second.stat};
      if (watch == Watch::Yes) s.data_watches.insert(path);
      return Code::Ok;
    });
  }

  void children_async(const std::string& path, Watch watch, ChildrenCallback done) override {
    auto names = std::make_shared<std::vector<std::string>>();
    auto stat = std::make_shared<Stat>();
    std::function<void(Code)> reply = [done, names, stat](Code rc) {
      if (rc == Code::Ok) done(rc, std::move(*names), *stat);
      else done(rc, {}, Stat{});
    };
    send(&FakeEnsemble::Counters::listings, reply, [&](State::FakeSessionState& s, const Tree& t) {
      auto it = t.find(path);
      if (it == t.end()) return Code::NoNode;
      names->assign(it->second.kids.begin(), it->second.kids.end());
      *stat = it->second.stat;
      if (watch == Watch::Yes) s.child_watches.insert(path);
      return Code::Ok;
    });
  }

  void exists_async(const std::string& path, Watch watch, StatCallback done) override {
    auto stat = std::make_shared<Stat>();
    std::function<void(Code)> reply = [done, stat](Code rc) { done(rc, rc == Code::Ok ? *stat : Stat{}); };
    send(&FakeEnsemble::Counters::exists, reply, [&](State::FakeSessionState& s, const Tree& t) {
      auto it = t.find(path);
      if (it == t.end()) {
        if (watch == Watch::Yes) s.exist_watches.insert(path);
        return Code::NoNode;
      }
      *stat = it->second.stat;
      if (watch == Watch::Yes) s.data_watches.insert(path);
      return Code::Ok;
    });
  }

  void sync_async(const std::string&, DoneCallback done) override {
    std::function<void(Code)> reply = [done](Code rc) { done(rc); };
    send(&FakeEnsemble::Counters::syncs, reply, [&](State::FakeSessionState& s, const Tree&) {
      m_st->advance(s.member, m_st->log.size());
      return Code::Ok;
    });
  }

  Expected<Node> get(const std::string& path) override {
    std::lock_guard lock(m_st->mu);
    SVCCTL_TRY(auto* s, connected(fmt::format("read {}", path)));
    ++m_st->counters.gets;
    const Tree& t = m_st->members[s->member].tree;
    auto it = t.find(path);
    if (it == t.end()) return fail(to_error(Code::NoNode, fmt::format("read {}", path)));
    return Node{it->second.data, it->second.stat};
  }

  Expected<std::vector<std::string>> children(const std::string& path) override {
    std::lock_guard lock(m_st->mu);
    SVCCTL_TRY(auto* s, connected(fmt::format("list {}", path)));
    ++m_st->counters.listings;
    const Tree& t = m_st->members[s->member].tree;
    auto it = t.find(path);
    if (it == t.end()) return fail(to_error(Code::NoNode, fmt::format("list {}", path)));
    return std::vector<std::string>(it->second.kids.begin(), it->second.kids.end());
  }

  Expected<std::optional<Stat>> exists(const std::string& path) override {
    std::lock_guard lock(m_st->mu);
    SVCCTL_TRY(auto* s, connected(fmt::format("read {}", path)));
    ++m_st->counters.exists;
    const Tree& t = m_st->members[s->member].tree;
    auto it = t.find(path);
    if (it == t.end()) return std::optional<Stat>{};
    return std::optional<Stat>{it->second.stat};
  }

  Expected<void> create(const std::string& path, const std::string& data, CreateMode mode) override {
    SVCCTL_CHECK(write({Op::create(path, data, mode)}, nullptr));
    return {};
  }

  Expected<Stat> set(const std::string& path, const std::string& data, int version) override {
    std::vector<Stat> stats;
    SVCCTL_CHECK(write({Op::set(path, data, version)}, &stats));
    return stats.at(0);
  }

  Expected<void> remove(const std::string& path, int version) override {
    SVCCTL_CHECK(write({Op::remove(path, version)}, nullptr));
    return {};
  }

  Expected<void> multi(const std::vector<Op>& ops, std::vector<Stat>* stats) override {
    if (ops.empty()) return {};
    SVCCTL_CHECK(write(ops, stats));
    return {};
  }

 private:
  template <class Compute>
  void send(std::uint64_t FakeEnsemble::Counters::*kind, std::function<void(Code)>& reply, Compute compute) {
    bool sent;
    {
      std::lock_guard lock(m_st->mu);
      sent = m_st->read(m_id, kind, compute, &reply);
    }
    if (!sent) reply(Code::InvalidState);
  }

  Expected<State::FakeSessionState*> connected(std::string_view context) {
    auto* s = m_st->find(m_id);
    if (!s || s->state == SessionState::Expired || s->state == SessionState::Closed)
      return fail(to_error(Code::InvalidState, context));
    if (s->state != SessionState::Connected) return fail(to_error(Code::ConnectionLoss, context));
    return s;
  }

  // Through the leader; answered once the session's member has applied it.
  Expected<void> write(const std::vector<Op>& ops, std::vector<Stat>* stats) {
    std::lock_guard lock(m_st->mu);
    SVCCTL_TRY(auto* s, connected(fmt::format("{} {}", verb(ops.front().type), ops.front().path)));
    SVCCTL_TRY(const std::int64_t z, m_st->commit(ops, m_id));
    m_st->advance(s->member, m_st->log.size());
    if (std::exchange(s->lose_answer, false)) {
      m_st->disconnect(*s);
      return fail(to_error(Code::ConnectionLoss, fmt::format("{} {}", verb(ops.front().type), ops.front().path)));
    }
    s->last_zxid = std::max(s->last_zxid, z);
    if (stats) {
      stats->clear();
      for (const auto& op : ops) {
        auto it = m_st->leader.find(op.path);
        stats->push_back(op.type == Op::Type::Set && it != m_st->leader.end() ? it->second.stat : Stat{});
      }
    }
    return {};
  }

  std::shared_ptr<State> m_st;
  std::int64_t m_id;
  std::chrono::milliseconds m_timeout;
  bool m_auth;
};

}  // namespace

// ---- the ensemble -----------------------------------------------------------------------

FakeEnsemble::FakeEnsemble(std::size_t members, std::uint64_t seed) : m_state(std::make_shared<State>()) {
  m_state->rng.seed(seed);
  m_state->members.resize(std::max<std::size_t>(1, members));
}

FakeEnsemble::~FakeEnsemble() = default;

Connector FakeEnsemble::connector() {
  std::weak_ptr<State> weak = m_state;
  return [weak](const Options& o) -> Expected<std::unique_ptr<Session>> {
    auto st = weak.lock();
    if (!st) return fail(ErrorKind::Unavailable, "the ZooKeeper ensemble is gone");
    std::int64_t id;
    {
      std::lock_guard lock(st->mu);
      if (st->refusing)
        return fail(ErrorKind::Unavailable, fmt::format("could not connect to ZooKeeper at {}", o.connect));
      std::size_t m = st->connect_member.value_or(st->next_member);
      if (!st->connect_member) st->next_member = (st->next_member + 1) % st->members.size();
      m = std::min(m, st->members.size() - 1);
      id = st->next_id++;
      State::FakeSessionState s;
      s.id = id;
      s.member = m;
      s.options = o;
      ++st->counters.connects;
      st->sessions.emplace(id, std::move(s));
    }
    auto session = std::make_unique<FakeSession>(st, id, o);
    if (o.on_event) o.on_event(Event{Event::Type::Session, {}, SessionState::Connected});
    return std::unique_ptr<Session>(std::move(session));
  };
}

void FakeEnsemble::connect_to(std::optional<std::size_t> member) {
  std::lock_guard lock(m_state->mu);
  m_state->connect_member = member;
}

void FakeEnsemble::refuse_connects(bool refuse) {
  std::lock_guard lock(m_state->mu);
  m_state->refusing = refuse;
}

Expected<std::int64_t> FakeEnsemble::create(const std::string& path, const std::string& data, CreateMode mode,
                                            std::int64_t owner) {
  std::lock_guard lock(m_state->mu);
  return m_state->commit({Op::create(path, data, mode)}, owner);
}

Expected<std::int64_t> FakeEnsemble::set(const std::string& path, const std::string& data, int version) {
  std::lock_guard lock(m_state->mu);
  return m_state->commit({Op::set(path, data, version)}, 0);
}

Expected<std::int64_t> FakeEnsemble::remove(const std::string& path, int version) {
  std::lock_guard lock(m_state->mu);
  return m_state->commit({Op::remove(path, version)}, 0);
}

Expected<std::int64_t> FakeEnsemble::remove_tree(const std::string& path) {
  std::lock_guard lock(m_state->mu);
  std::vector<Op> ops;
  // Children sort after their parent: removing in reverse order removes them first.
  const Tree& t = m_state->leader;
  for (auto it = t.lower_bound(path); it != t.end(); ++it) {
    if (it->first != path && it->first.rfind(path + "/", 0) != 0) break;
    ops.push_back(Op::remove(it->first, -1));
  }
  if (ops.empty()) return fail(to_error(Code::NoNode, fmt::format("delete {}", path)));
  std::reverse(ops.begin(), ops.end());
  return m_state->commit(ops, 0);
}

Expected<std::int64_t> FakeEnsemble::multi(const std::vector<Op>& ops) {
  std::lock_guard lock(m_state->mu);
  return m_state->commit(ops, 0);
}

Expected<std::int64_t> FakeEnsemble::ensure_path(const std::string& path, const std::string& data) {
  std::lock_guard lock(m_state->mu);
  std::vector<Op> ops;
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    const std::string p = path.substr(0, slash);
    if (!m_state->leader.count(p)) ops.push_back(Op::create(p, ""));
  }
  if (!m_state->leader.count(path)) ops.push_back(Op::create(path, data));
  return m_state->commit(ops, 0);
}

std::int64_t FakeEnsemble::zxid() const {
  std::lock_guard lock(m_state->mu);
  return m_state->zxid;
}

std::optional<Node> FakeEnsemble::node(const std::string& path) const {
  std::lock_guard lock(m_state->mu);
  auto it = m_state->leader.find(path);
  if (it == m_state->leader.end()) return std::nullopt;
  return Node{it->second.data, it->second.stat};
}

std::vector<std::string> FakeEnsemble::children_of(const std::string& path) const {
  std::lock_guard lock(m_state->mu);
  auto it = m_state->leader.find(path);
  if (it == m_state->leader.end()) return {};
  return {it->second.kids.begin(), it->second.kids.end()};
}

std::size_t FakeEnsemble::members() const {
  std::lock_guard lock(m_state->mu);
  return m_state->members.size();
}

void FakeEnsemble::lag(std::size_t member) {
  std::lock_guard lock(m_state->mu);
  m_state->members.at(member).lagging = true;
}

void FakeEnsemble::catch_up(std::size_t member) {
  std::lock_guard lock(m_state->mu);
  m_state->members.at(member).lagging = false;
  m_state->advance(member, m_state->log.size());
}

std::int64_t FakeEnsemble::member_zxid(std::size_t member) const {
  std::lock_guard lock(m_state->mu);
  return m_state->members.at(member).zxid;
}

bool FakeEnsemble::step() {
  State::Item item;
  EventSink sink;
  {
    std::lock_guard lock(m_state->mu);
    std::vector<State::FakeSessionState*> ready;
    for (auto& [id, s] : m_state->sessions)
      if (!s.held && !s.queue.empty()) ready.push_back(&s);
    if (ready.empty()) return false;
    State::FakeSessionState& s = *ready[m_state->rng() % ready.size()];
    item = std::move(s.queue.front());
    s.queue.pop_front();
    s.last_zxid = std::max(s.last_zxid, item.zxid);
    sink = s.options.on_event;
  }
  if (item.notice) {
    if (sink) sink(std::move(item.event));
  } else {
    item.reply(item.rc);
  }
  return true;
}

std::size_t FakeEnsemble::run() {
  std::size_t n = 0;
  while (step()) ++n;
  return n;
}

std::size_t FakeEnsemble::queued() const {
  std::lock_guard lock(m_state->mu);
  std::size_t n = 0;
  for (const auto& [id, s] : m_state->sessions) n += s.queue.size();
  return n;
}

namespace {

// Does `f` to the session under the ensemble's lock; nothing for a session closed.
template <class F>
void with_session(FakeEnsemble::State& st, std::int64_t session, F f) {
  std::lock_guard lock(st.mu);
  if (auto* s = st.find(session)) f(*s);
}

}  // namespace

void FakeEnsemble::hold(std::int64_t session) {
  with_session(*m_state, session, [](auto& s) { s.held = true; });
}

void FakeEnsemble::release(std::int64_t session) {
  with_session(*m_state, session, [](auto& s) { s.held = false; });
}

void FakeEnsemble::disconnect(std::int64_t session) {
  with_session(*m_state, session, [this](auto& s) { m_state->disconnect(s); });
}

bool FakeEnsemble::reconnect(std::int64_t session, std::optional<std::size_t> member) {
  std::lock_guard lock(m_state->mu);
  auto* s = m_state->find(session);
  if (!s || s->state != SessionState::Connecting) return false;
  const std::size_t m = std::min(member.value_or(s->member), m_state->members.size() - 1);
  const State::Member& mem = m_state->members[m];
  if (mem.zxid < s->last_zxid) {  // "Refusing session request for client as it has seen zxid ..."
    ++m_state->counters.refused;
    return false;
  }
  if (!s->known) {
    m_state->hear_expired(*s);
    return true;
  }
  s->member = m;
  s->state = SessionState::Connected;
  m_state->session_event(*s, SessionState::Connected);
  // SetWatches.
  m_state->set_again(*s, s->data_watches, mem, Event::Type::Changed, [](const Stat& st) { return st.mzxid; });
  m_state->set_again(*s, s->child_watches, mem, Event::Type::Children, [](const Stat& st) { return st.pzxid; });
  const Tree& t = mem.tree;
  for (auto it = s->exist_watches.begin(); it != s->exist_watches.end();) {
    if (t.count(*it)) {
      m_state->notify(*s, Event::Type::Created, *it, mem.zxid);
      it = s->exist_watches.erase(it);
    } else {
      ++it;
    }
  }
  return true;
}

void FakeEnsemble::lose_next_answer(std::int64_t session) {
  with_session(*m_state, session, [](auto& s) { s.lose_answer = true; });
}

void FakeEnsemble::expire(std::int64_t session) {
  with_session(*m_state, session, [this](auto& s) { m_state->expire(s); });
}

void FakeEnsemble::lose_data() {
  std::lock_guard lock(m_state->mu);
  State& st = *m_state;
  for (auto& [id, s] : st.sessions) {
    st.disconnect(s);
    s.known = false;
  }
  st.leader = empty_tree();
  st.zxid = 0;
  st.log.clear();
  for (auto& m : st.members) m = State::Member{};
}

std::vector<std::int64_t> FakeEnsemble::sessions() const {
  std::lock_guard lock(m_state->mu);
  std::vector<std::int64_t> out;
  for (const auto& [id, s] : m_state->sessions) out.push_back(id);
  return out;
}

std::optional<std::size_t> FakeEnsemble::member_of(std::int64_t session) const {
  std::lock_guard lock(m_state->mu);
  auto it = m_state->sessions.find(session);
  if (it == m_state->sessions.end()) return std::nullopt;
  return it->second.member;
}

FakeEnsemble::Counters FakeEnsemble::counters() const {
  std::lock_guard lock(m_state->mu);
  return m_state->counters;
}

}  // namespace svcctl::zk
