// The cache's I/O around the pure Mirror: its sessions (opening, replacing, rounds of
// reading), reads in flight, publishing by whole transactions, the last-known-good file
// and the control thread. One file because all of it runs under the one lock and shares
// Impl's state; the reconciliation rules themselves are in mirror.cpp, tested apart.
#include <svcctl/registry/cache.hpp>
#include <svcctl/registry/mirror.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <unordered_set>
#include <utility>

namespace svcctl::registry {

namespace {

using SteadyClock = std::chrono::steady_clock;

using ReadKind = Mirror::ReadKind;

// ---- the last-known-good file ------------------------------------------------------

struct LkgContent {
  std::vector<std::pair<std::string, CacheEntry>> nodes;
  std::int64_t written_ms = 0;
};

Unexpected not_lkg(const std::string& file, std::string_view why) {
  return fail(ErrorKind::Error, fmt::format("the last-known-good file {} is not one svcctl wrote: {}", file, why));
}

// The file's bytes: NotFound when there is no file, Error (with the system's reason, e.g.
// for a directory) when it cannot be read.
Expected<std::string> read_lkg_bytes(const std::string& file) {
  auto unreadable = [&file](int err) {
    return fail(ErrorKind::Error, fmt::format("cannot read the last-known-good file {}: {}", file, std::strerror(err)));
  };
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return fail(ErrorKind::NotFound, fmt::format("no last-known-good file {}", file));
  if (fd < 0) return unreadable(errno);
  std::string text;
  char buf[65536];
  while (const ssize_t n = ::read(fd, buf, sizeof buf)) {
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    } else if (errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return unreadable(err);
    }
  }
  ::close(fd);
  return text;
}

// Reads the whole file before taking anything from it: a file that is not exactly what
// write_lkg() writes is refused as a whole, never half adopted (and never throws).
Expected<LkgContent> read_lkg(const std::string& file) {
  SVCCTL_TRY(const std::string text, read_lkg_bytes(file));
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return not_lkg(file, "not JSON");
  const auto format = doc.find("format");  // end() for anything but an object
  if (format == doc.end() || *format != "svcctl-lkg-1")
    return not_lkg(file, "no \"format\": \"svcctl-lkg-1\"");
  const auto nodes = doc.find("nodes");
  const auto written = doc.find("written_ms");
  if (nodes == doc.end() || !nodes->is_array() || written == doc.end() || !written->is_number_integer())
    return not_lkg(file, "no \"nodes\" array and \"written_ms\" time");
  LkgContent out;
  for (const auto& n : *nodes) {
    if (!n.is_array() || n.size() != 6 || !n[0].is_string() || !n[1].is_string() ||
        !n[2].is_number_integer() || !n[3].is_number_integer() || !n[4].is_number_integer() ||
        !n[5].is_boolean() || Mirror::depth_of(n[0].get_ref<const std::string&>()) < 0)
      return not_lkg(file, fmt::format("node {} is not [path under a registry root, data, mzxid, version, "
                                       "owner, container]", out.nodes.size() + 1));
    out.nodes.emplace_back(n[0].get<std::string>(),
                           CacheEntry{n[1].get<std::string>(), n[2].get<std::int64_t>(),
                                      n[3].get<std::int32_t>(), n[4].get<std::int64_t>(), n[5].get<bool>()});
  }
  out.written_ms = written->get<std::int64_t>();
  return out;
}

// Whether a file can be created next to `file`: write_lkg() writes FILE.tmp and renames it
// over `file` (so `file`'s own permissions do not matter; its directory's do).
Expected<void> check_lkg_writable(const std::string& file) {
  std::string probe = file + ".XXXXXX";
  const int fd = ::mkstemp(probe.data());
  if (fd < 0)
    return fail(ErrorKind::Error,
                fmt::format("cannot write the last-known-good file {}: {}", file, std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

}  // namespace

Expected<void> check_lkg_file(const std::string& file) {
  SVCCTL_CHECK(check_lkg_writable(file));
  auto content = read_lkg(file);
  if (!content && content.error().kind != ErrorKind::NotFound) return fail(content.error());
  return {};
}

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

std::string_view to_string(SessionEvent::Kind kind) {
  switch (kind) {
    case SessionEvent::Kind::Disconnected: return "disconnected";
    case SessionEvent::Kind::Reconnected: return "reconnected";
    case SessionEvent::Kind::Expired: return "expired";
    case SessionEvent::Kind::Replaced: return "replaced";
    case SessionEvent::Kind::Resynced: return "resynced";
  }
  return "disconnected";
}

std::string describe(const SessionEvent& e) {
  const std::string who = fmt::format("session {} (0x{:x})", e.session, e.id);
  switch (e.kind) {
    case SessionEvent::Kind::Disconnected: return who + " disconnected: reconnecting";
    case SessionEvent::Kind::Reconnected: return who + " reconnected";
    case SessionEvent::Kind::Expired: return fmt::format("{} expired ({}): opening a new session", who, e.reason);
    case SessionEvent::Kind::Replaced:
      return fmt::format("session {}: new session 0x{:x} replaces 0x{:x} ({})", e.session, e.id, e.old_id, e.reason);
    case SessionEvent::Kind::Resynced:
      return fmt::format("{} resync done: {} nodes read, {} added, {} modified, {} deleted in {} ms", who,
                         e.nodes_read, e.added, e.modified, e.deleted, e.duration.count());
  }
  return who;
}

nlohmann::json to_json(const SessionEvent& e) {
  nlohmann::json j = {{"event", "session"}, {"what", to_string(e.kind)}, {"session", e.session},
                      {"session_id", fmt::format("0x{:x}", e.id)}};
  if (e.kind == SessionEvent::Kind::Replaced) j["old_session_id"] = fmt::format("0x{:x}", e.old_id);
  if (!e.reason.empty()) j["reason"] = e.reason;
  if (e.kind == SessionEvent::Kind::Resynced) {
    j["nodes_read"] = e.nodes_read;
    j["added"] = e.added;
    j["modified"] = e.modified;
    j["deleted"] = e.deleted;
    j["duration_ms"] = e.duration.count();
  }
  return j;
}

Snapshot::Shard::Items::iterator Snapshot::Shard::lower_bound(std::string_view path) {
  return m_items.begin() + (std::as_const(*this).lower_bound(path) - m_items.cbegin());
}

Snapshot::Shard::Items::const_iterator Snapshot::Shard::lower_bound(std::string_view path) const {
  return std::lower_bound(m_items.begin(), m_items.end(), path,
                          [](const auto& item, std::string_view p) { return item->path < p; });
}

const CacheEntry* Snapshot::Shard::find(std::string_view path) const {
  auto it = lower_bound(path);
  return it != m_items.end() && (*it)->path == path ? &(*it)->entry : nullptr;
}

std::shared_ptr<const Snapshot::Shard::Item> Snapshot::Shard::item(std::string_view path) const {
  auto it = lower_bound(path);
  return it != m_items.end() && (*it)->path == path ? *it : nullptr;
}

std::shared_ptr<const Snapshot::Shard::Item> Snapshot::Shard::put(const std::string& path, CacheEntry entry) {
  auto item = std::make_shared<const Item>(Item{path, std::move(entry)});
  auto it = lower_bound(path);
  if (it != m_items.end() && (*it)->path == path) *it = item;
  else m_items.insert(it, item);
  return item;
}

std::shared_ptr<const Snapshot::Shard::Item> Snapshot::Shard::erase(std::string_view path) {
  auto it = lower_bound(path);
  if (it == m_items.end() || (*it)->path != path) return nullptr;
  auto gone = std::move(*it);
  m_items.erase(it);
  return gone;
}

const CacheEntry* Snapshot::find(std::string_view path) const {
  const auto& shard = m_shards[Mirror::shard_of(path)];
  return shard ? shard->find(path) : nullptr;
}

std::size_t Snapshot::size() const {
  std::size_t n = 0;
  for (const auto& s : m_shards) n += s ? s->size() : 0;
  return n;
}

std::map<std::string, CacheEntry> Snapshot::entries() const {
  std::map<std::string, CacheEntry> out;
  for (const auto& s : m_shards)
    if (s)
      for (const auto& item : *s) out.emplace(item->path, item->entry);
  return out;
}

struct Cache::Impl {
  // One ZooKeeper session and the reads it carries.
  struct Session {
    std::unique_ptr<zk::Session> client;
    std::uint64_t epoch = 0;  // one per ZooKeeper session; replies of older ones are dropped
    bool connecting = false;  // the control thread is opening it (client not installed yet)
    zk::SessionState state = zk::SessionState::Connecting;
    zk::SessionState last_event = zk::SessionState::Connecting;  // also while connecting
    std::int64_t id = 0;
    struct Read {
      std::string path;
      ReadKind kind;
      std::uint64_t cause;  // `notifications` when it was queued
    };
    std::deque<Read> pending;
    std::unordered_set<std::string> queued;  // kind + path of what `pending` holds
    std::size_t outstanding = 0;
    // Notifications received. ZooKeeper sends every notification a transaction causes
    // before the answer to any read that sees it: once every read queued up to the N-th
    // notification is answered, the changes applied by then hold whole transactions.
    std::uint64_t notifications = 0;
    // By the notification count each was queued at: how many reads wait in `pending`, and
    // how many are in flight (forgotten with the epoch: lost ones come back to `pending`).
    std::map<std::uint64_t, std::size_t> queued_at;
    std::map<std::uint64_t, std::size_t> flying_at;
    bool resyncing = false;  // a round of reading everything of this session is under way
    bool loaded = false;     // a round has completed
    bool lkg_round = false;  // a round must complete before a last-known-good file is reconciled
    // Given up on: the ensemble may have been rebuilt or restored, its log another. The next
    // round compares no zxid of what it held with what it reads (Mirror::begin_round).
    bool new_history = false;
    // Every change up to `zxid` has reached this session: the highest zxid its replies
    // carried, or what a sync it finished while idle vouched for.
    std::int64_t zxid = 0;
    std::int64_t sync_sent = 0;  // a sync in flight, for this zxid
    std::int64_t sync_done = 0;  // a finished sync's zxid, credited once the session is idle
    bool blocked = false;        // a call failed at once (the handle is unusable): wait for an event
    bool fresh = false;          // a new session that has not completed a round yet
    bool catching_up = false;    // its first sync is in flight: nothing is read yet
    std::optional<SteadyClock::time_point> reconnect_at;
    std::chrono::milliseconds backoff{200};
    std::string reason = "start";  // why it is (re)opened
    std::string why;               // the same, as a SessionEvent says it
    bool was_connected = false;    // this ZooKeeper session has been connected (a Connected now is a reconnect)
    std::chrono::milliseconds timeout{0};  // the negotiated session timeout
    // Since when it has been trying to reconnect: past `timeout`, it is given up on.
    std::optional<SteadyClock::time_point> lost_since;
    // The round under way: when it began, and the session's nodes then (to tell what it
    // added, modified and deleted); reported when the session had completed one before.
    SteadyClock::time_point round_began{};
    std::vector<std::shared_ptr<const Snapshot::Shard::Item>> round_before;
    bool round_reported = false;
  };

  Cache& owner;
  Options options;
  std::size_t window;  // reads in flight per session
  std::mt19937_64 rng;

  // Taken by the completion threads of every session and by the control thread. Recursive:
  // a call that cannot be sent completes at once, on the thread that made it.
  std::recursive_mutex mu;
  std::condition_variable_any cv;
  bool stopping = false;
  bool serve_lkg_due = false;
  bool rearm = false;    // a time the control thread waits for has changed
  bool sending = false;  // pump() is inside a call: a reply now is the call failing at once
  std::vector<std::vector<Change>> garbage;  // large change lists, freed by the control thread

  std::vector<Session> sessions;
  Mirror mirror;  // the registry as read so far, shared with published snapshots
  std::vector<Change> changes;
  // Per change: the session whose reply made it, and its notification count then. It may
  // be published once that session has answered every read queued up to that count.
  struct Mark {
    std::size_t session = k_none;
    std::uint64_t notifications = 0;
  };
  static constexpr std::size_t k_none = ~std::size_t{0};
  std::vector<Mark> marks;
  std::size_t replying = k_none;  // the session whose reply is being applied
  // Changes whose transaction may not be whole yet are published anyway after this:
  // transactions that keep overlapping, each read before the last is answered.
  static constexpr auto k_transaction_wait = std::chrono::milliseconds(250);
  bool loaded = false;
  bool announced_resync = false;  // a Resync change went out and its Synced has not
  bool meta_changed = false;
  std::optional<Snapshot::Clock::time_point> stale_since;
  Snapshot::Clock::time_point last_change{};
  std::int64_t published_zxid = 0;
  std::optional<SteadyClock::time_point> publish_due;  // changes wait for reads in flight
  std::optional<SteadyClock::time_point> sync_due;     // sessions behind are synced then
  static constexpr auto k_sync_delay = std::chrono::milliseconds(5);
  std::uint64_t generation = 0;
  std::thread thread;
  std::optional<SteadyClock::time_point> lkg_due;  // a write of the LKG file is pending
  std::atomic<bool> from_lkg{false};

  std::mutex load_mu;
  std::condition_variable load_cv;
  bool load_done = false;

  mutable std::mutex view_mu;  // taken under `mu`, never the other way round
  SessionsView view;

  Impl(Cache& c, Options o) : owner(c), options(std::move(o)), mirror(options.sessions) {
    options.sessions = std::max<std::size_t>(1, options.sessions);
    if (!options.connect) options.connect = zk::real_connector();
    rng.seed(options.seed != 0 ? options.seed : std::random_device{}());
    window = std::max<std::size_t>(1, options.max_outstanding / options.sessions);
    sessions.resize(options.sessions);
    view.sessions.resize(options.sessions);
  }

  SteadyClock::time_point now() const { return options.clock ? options.clock() : SteadyClock::now(); }

  std::size_t session_of(std::string_view path) const { return mirror.session_of(path); }

  // ---- sessions ----------------------------------------------------------------------

  // On the control thread, without the lock: closing a client waits for its completion
  // thread, which may be waiting for the lock.
  void open_session(std::size_t i, std::unique_lock<std::recursive_mutex>& lock) {
    Session& s = sessions[i];
    const std::uint64_t e = ++s.epoch;
    s.connecting = true;
    s.last_event = zk::SessionState::Connecting;
    s.outstanding = 0;  // replies of the old session are not counted (reads they lose are queued again)
    s.flying_at.clear();
    s.sync_sent = 0;
    s.blocked = false;
    s.was_connected = false;
    s.lost_since.reset();
    std::unique_ptr<zk::Session> old = std::move(s.client);
    zk::Options o = options.zk;
    o.on_event = [this, i, e](zk::Event ev) {
      std::lock_guard guard(mu);
      if (sessions[i].epoch == e) on_event(i, ev);
    };
    lock.unlock();
    old.reset();
    auto c = options.connect(o);
    lock.lock();
    s.connecting = false;
    if (stopping || s.epoch != e) {  // the cache is closing
      lock.unlock();
      if (c) c->reset();
      lock.lock();
      return;
    }
    if (!c) {
      set_state(i, zk::SessionState::Connecting);
      std::uniform_int_distribution<long> d(0, s.backoff.count());
      s.reconnect_at = now() + s.backoff + std::chrono::milliseconds(d(rng));
      s.backoff = std::min(s.backoff * 2, std::chrono::milliseconds(10000));
      rearm = true;
      return;
    }
    s.backoff = std::chrono::milliseconds(200);
    s.client = std::move(*c);
    const std::int64_t old_id = std::exchange(s.id, s.client->session_id());
    s.timeout = s.client->negotiated_session_timeout();
    if (old_id != 0) {
      SessionEvent ev = event_of(i, SessionEvent::Kind::Replaced);
      ev.old_id = old_id;
      ev.reason = s.why;
      report(ev);
    }
    meta_changed = true;
    // What happened while connecting decides where the session stands now.
    if (s.last_event == zk::SessionState::Connected || s.last_event == zk::SessionState::Connecting) {
      s.fresh = true;
      s.was_connected = s.last_event == zk::SessionState::Connected;
      set_state(i, zk::SessionState::Connected);
      if (s.last_event == zk::SessionState::Connecting) set_state(i, zk::SessionState::Connecting);
      else start_round(i, s.reason);  // else when it is back
    } else {
      expire(i, s.last_event, expired_why(s.last_event));
    }
    send_and_publish();
  }

  // A session (re)connected reads its share again. A new one may be served by a member
  // behind what the cache holds: it reads once that member has caught up (a sync), or it
  // would take recent nodes for deleted. A session that reconnects is served by a member
  // at least as far as it has seen.
  void start_round(std::size_t i, const std::string& reason) {
    Session& s = sessions[i];
    if (!s.fresh) {
      begin_resync(i, reason);
      return;
    }
    s.catching_up = true;
    const std::uint64_t e = s.epoch;
    s.client->sync_async("/", [this, i, e, reason](zk::Code rc) {
      std::lock_guard guard(mu);
      Session& r = sessions[i];
      if (r.epoch != e || !r.catching_up) return;
      r.catching_up = false;
      // Failed: the connection is gone; the round starts (with a new sync) when it is back.
      if (rc == zk::Code::Ok && r.state == zk::SessionState::Connected) begin_resync(i, reason);
      send_and_publish();
    });
  }

  void set_state(std::size_t i, zk::SessionState st) {
    Session& s = sessions[i];
    if (st != zk::SessionState::Connected && !stale_since) stale_since = Snapshot::Clock::now();
    if (st != s.state) meta_changed = true;
    if (st != zk::SessionState::Connecting) s.lost_since.reset();
    else if (!s.lost_since && s.client) {
      s.lost_since = now();
      rearm = true;  // the control thread gives up on it past its timeout
      cv.notify_all();
    }
    s.state = st;
    s.blocked = false;
    std::lock_guard guard(view_mu);
    view.sessions[i] = {s.id, st};
  }

  SessionEvent event_of(std::size_t i, SessionEvent::Kind kind) const {
    SessionEvent ev;
    ev.kind = kind;
    ev.session = i;
    ev.id = sessions[i].id;
    return ev;
  }

  // Counts the transition and tells Options::on_session.
  void report(const SessionEvent& ev) {
    {
      std::lock_guard guard(view_mu);
      ++view.events[static_cast<std::size_t>(ev.kind)];
      if (ev.kind == SessionEvent::Kind::Replaced) {
        view.last_replaced_reason = ev.reason;
        view.last_replaced = Snapshot::Clock::now();
      }
    }
    if (options.on_session) options.on_session(ev);
  }

  // Unable to reconnect for longer than its timeout, the session cannot be alive on the
  // server any more: it is taken as expired (as Curator does). A server that has not seen
  // the zxids a session has (rebuilt on an empty data dir, restored from an older
  // snapshot) refuses it for good; a new session starts at zxid 0 and is accepted. Its
  // events and replies from now on are dropped.
  void give_up(std::size_t i, SteadyClock::time_point now) {
    Session& s = sessions[i];
    const auto lost = std::chrono::duration_cast<std::chrono::milliseconds>(now - *s.lost_since);
    ++s.epoch;
    s.new_history = true;
    expire(i, zk::SessionState::Expired,
           fmt::format("could not reconnect for {} ms, longer than the session timeout of {} ms", lost.count(),
                       s.timeout.count()));
  }

  std::optional<SteadyClock::time_point> give_up_at(const Session& s) const {
    if (!s.lost_since || s.state != zk::SessionState::Connecting) return std::nullopt;
    return *s.lost_since + s.timeout;
  }

  zk::SessionState worst_state() const {
    for (const auto& s : sessions)
      if (s.state != zk::SessionState::Connected) return s.state;
    return zk::SessionState::Connected;
  }

  static std::string expired_why(zk::SessionState st) {
    return st == zk::SessionState::AuthFailed ? "authentication failed" : "the server ended it";
  }

  // The session is gone for good: a new one after a random delay.
  void expire(std::size_t i, zk::SessionState st, std::string why) {
    set_state(i, st);
    sessions[i].why = std::move(why);
    SessionEvent ev = event_of(i, SessionEvent::Kind::Expired);
    ev.reason = sessions[i].why;
    report(ev);
    std::uniform_int_distribution<long> d(0, options.resync_jitter.count());
    sessions[i].reconnect_at = now() + std::chrono::milliseconds(d(rng));
    sessions[i].reason = "session expired";
    rearm = true;
    cv.notify_all();
  }

  void on_event(std::size_t i, const zk::Event& ev) {
    Session& s = sessions[i];
    using T = zk::Event::Type;
    if (ev.type == T::Session) s.last_event = ev.state;
    if (s.connecting) return;  // open_session() decides from last_event
    switch (ev.type) {
      case T::Session:
        if (ev.state == zk::SessionState::Connected) {
          if (s.state != zk::SessionState::Connected) {
            if (s.was_connected) report(event_of(i, SessionEvent::Kind::Reconnected));
            s.was_connected = true;
            set_state(i, zk::SessionState::Connected);
            // A new session's first Connected can come after connect() returned: its round
            // is the one the session was opened for.
            start_round(i, s.fresh ? s.reason : "reconnected");  // watches may not have survived a server restart
          }
        } else if (ev.state == zk::SessionState::Connecting) {
          if (s.state == zk::SessionState::Connected && s.was_connected)
            report(event_of(i, SessionEvent::Kind::Disconnected));
          set_state(i, zk::SessionState::Connecting);
        } else {
          expire(i, ev.state, expired_why(ev.state));
        }
        break;
      // The watch is this session's: the path is one it reads.
      case T::Children:
      case T::Created:
      case T::Deleted:
      case T::Changed: {
        const std::size_t reader = session_of(ev.path);
        ++sessions[reader].notifications;
        const bool listing = ev.type == T::Children || Mirror::is_container(ev.path);
        enqueue(reader, ev.path, listing ? ReadKind::Children : ReadKind::Data);
        break;
      }
    }
    send_and_publish();
  }

  // A new session (or one whose first round did not finish, or that must reconcile a
  // last-known-good file) reads again everything it reads: the roots (the first session),
  // every container and leaf known. What is not seen again by the end of the round is
  // swept away. A session that reconnected reads only the roots' listings: the client
  // library sets its watches again, and ZooKeeper then notifies every node changed,
  // created or deleted since the last zxid the session saw, so reading everything again
  // would only cost the ensemble a read per node and cache (a read storm when a leader
  // change reconnects every gateway at once).
  void begin_resync(std::size_t i, const std::string& reason) {
    Session& s = sessions[i];
    s.resyncing = true;
    s.sync_sent = 0;  // a sync lost with the connection is sent again
    s.round_began = now();
    s.round_before.clear();
    s.round_reported = s.loaded;  // a session's first round is its load, not a resync
    if (loaded && !announced_resync) {
      record(Change{Change::Kind::Resync, {}, {}, {}, reason});
      announced_resync = true;
    }
    if (i == 0)
      for (const auto& r : Mirror::k_roots) enqueue(0, std::string(r.path), ReadKind::Children);
    const bool everything = s.fresh || s.lkg_round || !s.loaded;
    if (everything && s.round_reported) s.round_before = mirror.held_by(i);
    const auto kind = s.new_history || s.lkg_round ? Mirror::RoundKind::NewHistory
                      : everything                  ? Mirror::RoundKind::Sweep
                                                    : Mirror::RoundKind::Listings;
    for (auto& r : mirror.begin_round(i, kind))
      enqueue(r.session, std::move(r.path), r.kind);
  }

  void finish_round(std::size_t i) {
    Session& s = sessions[i];
    const bool swept = mirror.sweeping(i);
    Mirror::Out out;
    const std::size_t seen = mirror.end_round(i, out);
    take(out);
    if (s.round_reported) report(round_report(i, swept ? std::optional<std::size_t>(seen) : std::nullopt));
    s.round_before = {};
    s.new_history = false;
    s.resyncing = false;
    s.fresh = false;
    s.loaded = true;
    s.lkg_round = false;
  }

  // What session i's round, now over, read and found: its nodes now against those it held
  // when the round began. `seen`: the nodes a sweeping round read.
  SessionEvent round_report(std::size_t i, std::optional<std::size_t> seen) const {
    const Session& s = sessions[i];
    SessionEvent ev = event_of(i, SessionEvent::Kind::Resynced);
    const std::size_t held = mirror.count_held_by(i);
    std::size_t kept = 0;
    for (const auto& before : s.round_before) {
      const CacheEntry* now = mirror.find(before->path);
      if (!now) continue;
      ++kept;
      if (!(*now == before->entry)) ++ev.modified;
    }
    ev.deleted = s.round_before.size() - kept;
    ev.added = held - kept;
    ev.nodes_read = seen.value_or(held);
    ev.duration = std::chrono::duration_cast<std::chrono::milliseconds>(now() - s.round_began);
    return ev;
  }

  // ---- reads -------------------------------------------------------------------------

  // `cause`: the notification count the read belongs with (a read queued again keeps its
  // own); by default the session's count now.
  void enqueue(std::size_t i, std::string path, ReadKind kind, std::optional<std::uint64_t> cause = {}) {
    Session& s = sessions[i];
    std::string key = static_cast<char>(kind) + path;
    if (!s.queued.insert(std::move(key)).second) return;
    const std::uint64_t c = cause.value_or(s.notifications);
    s.pending.push_back(Session::Read{std::move(path), kind, c});
    ++s.queued_at[c];
  }

  static void count_off(std::map<std::uint64_t, std::size_t>& counts, std::uint64_t cause) {
    auto it = counts.find(cause);
    if (it != counts.end() && --it->second == 0) counts.erase(it);
  }

  // Whether session i has answered every read queued up to its `n`-th notification, or
  // cannot answer before it is connected again.
  bool answered(std::size_t i, std::uint64_t n) const {
    const Session& s = sessions[i];
    if (s.state != zk::SessionState::Connected || s.blocked) return true;
    return (s.queued_at.empty() || s.queued_at.begin()->first > n) &&
           (s.flying_at.empty() || s.flying_at.begin()->first > n);
  }

  // How many of the changes from the first on hold whole transactions.
  std::size_t whole_transactions() const {
    std::size_t n = 0;
    while (n < marks.size() && (marks[n].session == k_none || answered(marks[n].session, marks[n].notifications))) ++n;
    return n;
  }

  void record(Change c) {
    changes.push_back(std::move(c));
    marks.push_back(replying == k_none ? Mark{} : Mark{replying, sessions[replying].notifications});
  }

  void pump(std::size_t i) {
    Session& s = sessions[i];
    // The window is refilled when half of it is free, in one burst: the client's I/O thread
    // then wakes, and the server reads, once per burst instead of once per request.
    if (s.outstanding > window / 2) return;
    while (s.client && s.state == zk::SessionState::Connected && !s.blocked && !s.catching_up &&
           s.outstanding < window && !s.pending.empty()) {
      auto [path, kind, cause] = std::move(s.pending.front());
      s.pending.pop_front();
      s.queued.erase(static_cast<char>(kind) + path);
      count_off(s.queued_at, cause);
      ++s.outstanding;
      ++s.flying_at[cause];
      const std::uint64_t e = s.epoch;
      // A reply: counted off if of this session's epoch, applied, then what follows from it.
      // A read lost with the connection (or with an old session) is queued again.
      auto reply = [this, i, e, path, kind, cause](zk::Code rc, auto&& apply) {
        std::lock_guard guard(mu);
        Session& r = sessions[i];
        if (r.epoch == e && r.outstanding > 0) {
          --r.outstanding;
          count_off(r.flying_at, cause);
        }
        if (zk::connection_trouble(rc)) {
          enqueue(i, path, kind, cause);
          if (sending && r.epoch == e) {  // not sent at all: stop sending until the session's next event
            r.blocked = true;
            return;
          }
        } else if (r.epoch == e) {
          replying = i;
          apply();
          replying = k_none;
        }
        send_and_publish();
      };
      sending = true;
      switch (kind) {
        case ReadKind::Data:
          s.client->get_async(path, zk::Watch::Yes, [reply, this, i, path](zk::Code rc, zk::Node n) {
            reply(rc, [&] { on_data(i, path, rc, n); });
          });
          break;
        case ReadKind::Children:
          s.client->children_async(
              path, zk::Watch::Yes, [reply, this, i, path](zk::Code rc, std::vector<std::string> names, zk::Stat st) {
                reply(rc, [&] { on_children(i, path, rc, names, st); });
              });
          break;
        case ReadKind::Exists:
          s.client->exists_async(path, zk::Watch::Yes, [reply, this, i, path](zk::Code rc, zk::Stat) {
            reply(rc, [&] {
              if (rc == zk::Code::Ok) {
                Mirror::Out out;
                mirror.exists(i, path, out);
                take(out);
              }
            });
          });
          break;
      }
      sending = false;
    }
  }

  // Has the session's own reply told it this zxid?
  static void note_zxid(Session& s, std::int64_t zxid) { s.zxid = std::max(s.zxid, zxid); }

  // ---- applying what was read ------------------------------------------------------------

  // What the mirror made of an answer: its changes recorded (with the replying session's
  // mark), its reads queued.
  void take(Mirror::Out& out) {
    if (!out.changes.empty()) last_change = Snapshot::Clock::now();
    for (auto& c : out.changes) record(std::move(c));
    for (auto& r : out.reads) enqueue(r.session, std::move(r.path), r.kind);
  }

  void on_data(std::size_t i, const std::string& path, zk::Code rc, zk::Node& n) {
    if (rc == zk::Code::Ok) note_zxid(sessions[i], n.stat.mzxid);
    Mirror::Out out;
    mirror.data(i, path, rc, std::move(n), out);
    take(out);
  }

  void on_children(std::size_t i, const std::string& path, zk::Code rc, std::vector<std::string>& names,
                   const zk::Stat& st) {
    // The listing is as of the parent's pzxid: a removal shows in the zxid seen only there.
    if (rc == zk::Code::Ok) note_zxid(sessions[i], std::max(st.mzxid, st.pzxid));
    Mirror::Out out;
    mirror.children(i, path, rc, names, st, out);
    take(out);
  }

  // ---- after every event and reply -----------------------------------------------------

  // Sends what is queued, closes finished rounds, keeps the zxid vouched for, and publishes
  // when nothing in flight could still belong with the changes made.
  void send_and_publish() {
    if (stopping) return;  // the cache is closing: its clients' last replies change nothing
    for (std::size_t i = 0; i < sessions.size(); ++i) pump(i);
    bool idle = true;
    std::int64_t top = 0;
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      Session& s = sessions[i];
      const bool quiet = s.pending.empty() && s.outstanding == 0;
      if (quiet && s.sync_done > 0) {
        s.zxid = std::max(s.zxid, s.sync_done);
        s.sync_done = 0;
      }
      if (quiet && s.resyncing && s.state == zk::SessionState::Connected) finish_round(i);
      idle = idle && quiet;
      top = std::max(top, s.zxid);
    }
    if (!loaded && idle && std::all_of(sessions.begin(), sessions.end(), [](const Session& s) { return s.loaded; })) {
      loaded = true;
      meta_changed = true;
    }
    if (from_lkg && settled() &&
        std::none_of(sessions.begin(), sessions.end(), [](const Session& s) { return s.lkg_round; }))
      from_lkg = false;
    if (settled()) {
      if (loaded && announced_resync) {
        record(Change{Change::Kind::Synced, {}, {}, {}, {}});
        announced_resync = false;
      }
      if (stale_since && !from_lkg) {
        stale_since.reset();
        meta_changed = true;
      }
    }
    // Only once nothing is in flight: a session's replies can carry a zxid past changes
    // whose notifications it has answered with reads not back yet.
    std::int64_t vouched = top;
    for (const auto& s : sessions) vouched = std::min(vouched, s.zxid);
    if (idle && vouched > published_zxid) {
      published_zxid = vouched;
      meta_changed = true;
    }
    if (loaded && (!changes.empty() || meta_changed)) {
      const auto t = now();
      // Not half a transaction: reads still due may complete these changes (the other
      // nodes a multi-op removed, a listing's new children). They are waited for, up to
      // k_transaction_wait from the first change held back.
      if (whole_transactions() == changes.size() || (publish_due && t >= *publish_due)) {
        publish();
      } else if (!publish_due) {
        publish_due = t + k_transaction_wait;
        rearm = true;
        cv.notify_all();
      }
    }
    sync_behind(top);
  }

  bool behind(const Session& s, std::int64_t top) const {
    return s.zxid < top && s.sync_sent < top && s.client && s.state == zk::SessionState::Connected;
  }

  // A session behind another may just have seen nothing lately: a sync brings it past.
  // Not at once: the control thread sends syncs a few milliseconds later, one for all the
  // changes of that while (a sync per change was a request per change more for the
  // server, at the moment the next change is being written).
  void sync_behind(std::int64_t top) {
    if (!loaded || sync_due) return;
    if (std::none_of(sessions.begin(), sessions.end(), [&](const Session& s) { return behind(s, top); })) return;
    sync_due = now() + k_sync_delay;
    rearm = true;
    cv.notify_all();
  }

  void send_syncs() {
    sync_due.reset();
    std::int64_t top = 0;
    for (const auto& s : sessions) top = std::max(top, s.zxid);
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      Session& s = sessions[i];
      if (!behind(s, top)) continue;
      s.sync_sent = top;
      const std::uint64_t e = s.epoch;
      // A failed sync is not sent again for this zxid (that could loop at once): a later
      // zxid, or the round after a reconnect, sends the next.
      s.client->sync_async("/", [this, i, e, top](zk::Code rc) {
        std::lock_guard guard(mu);
        Session& r = sessions[i];
        if (r.epoch != e || rc != zk::Code::Ok) return;
        if (r.sync_sent == top) r.sync_sent = 0;
        r.sync_done = std::max(r.sync_done, top);
        send_and_publish();
      });
    }
  }

  // ---- last-known-good file ---------------------------------------------------------

  void serve_lkg_file() {
    if (loaded || options.lkg_file.empty()) return;
    auto content = read_lkg(options.lkg_file);
    if (!content) return;
    Mirror::Out out;
    for (auto& [path, entry] : content->nodes) mirror.from_file(path, std::move(entry), out);
    for (auto& c : out.changes) record(std::move(c));
    stale_since = Snapshot::Clock::time_point(std::chrono::milliseconds(content->written_ms));
    loaded = true;
    from_lkg = true;
    meta_changed = true;
    // Every session reads what the file holds in a round of its own (a session not
    // connected yet starts it when it connects): what is gone is swept then.
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      Session& s = sessions[i];
      s.lkg_round = true;
      if (s.client && s.state == zk::SessionState::Connected && !s.catching_up)
        begin_resync(i, "last-known-good registry");
    }
    send_and_publish();
  }

  // From a published snapshot, without the lock.
  void write_lkg(const Snapshot& snap) {
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& shard : snap.m_shards)
      for (const auto& item : *shard) {
        const CacheEntry& e = item->entry;
        nodes.push_back({item->path, e.data, e.mzxid, e.version, e.ephemeral_owner, e.container});
      }
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      Snapshot::Clock::now().time_since_epoch()).count();
    nlohmann::json doc = {{"format", "svcctl-lkg-1"}, {"max_zxid", snap.max_zxid},
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

  // Every session up and no round under way.
  bool settled() const {
    return loaded && worst_state() == zk::SessionState::Connected &&
           std::none_of(sessions.begin(), sessions.end(),
                        [](const Session& s) { return s.resyncing || s.catching_up; });
  }

  // ---- publishing --------------------------------------------------------------------

  void publish() {
    publish_due.reset();
    auto snap = std::make_shared<Snapshot>();
    mirror.share_into(*snap);  // shared from now on: the next change to a shard copies it first
    snap->generation = ++generation;
    snap->max_zxid = published_zxid;
    snap->session = worst_state();
    for (const auto& s : sessions) snap->session_ids.push_back(s.id);
    snap->loaded = true;
    snap->last_change = last_change;
    snap->stale_since = stale_since;
    owner.m_snapshot.store(snap);
    meta_changed = false;
    std::vector<Change> done;
    done.swap(changes);
    if (marks.capacity() > 4096) marks = {};  // a load's worth
    else marks.clear();
    if (options.on_change && !done.empty()) options.on_change(done, *snap);
    if (done.size() > 1000) {
      // Freeing a load's worth of changes takes milliseconds: not under the lock, where
      // the next notification waits. The control thread does it.
      garbage.push_back(std::move(done));
      rearm = true;
      cv.notify_all();
    }
    if (!from_lkg && settled() && !options.lkg_file.empty() && !lkg_due) {
      lkg_due = now() + std::chrono::seconds(1);
      rearm = true;
      cv.notify_all();
    }
    {
      std::lock_guard lock(load_mu);
      load_done = true;
    }
    load_cv.notify_all();
  }

  // When the control thread has something to do next (nothing: nullopt).
  std::optional<SteadyClock::time_point> next_due() const {
    std::optional<SteadyClock::time_point> until;
    auto consider = [&](const std::optional<SteadyClock::time_point>& t) {
      if (t && (!until || *t < *until)) until = t;
    };
    for (const auto& s : sessions) {
      consider(s.reconnect_at);
      consider(give_up_at(s));
    }
    consider(lkg_due);
    consider(publish_due);
    consider(sync_due);
    return until;
  }

  // The control thread's work, all that is due by now(): publishes what waited too long,
  // sends the syncs due, writes the last-known-good file, gives up on sessions lost past
  // their timeout, opens the first session due.
  void due(std::unique_lock<std::recursive_mutex>& lock) {
    if (!garbage.empty()) {
      auto g = std::move(garbage);
      garbage.clear();
      lock.unlock();
      g.clear();
      // And give the allocator's free lists back now (a load frees hundreds of thousands
      // of small blocks): otherwise the next allocations on a completion thread pay for
      // consolidating them, milliseconds into the first changes after a load.
      ::malloc_trim(0);
      lock.lock();
    }
    if (serve_lkg_due) {
      serve_lkg_due = false;
      serve_lkg_file();
    }
    const auto t = now();
    if (publish_due && t >= *publish_due) send_and_publish();
    if (sync_due && t >= *sync_due) send_syncs();
    if (lkg_due && t >= *lkg_due) {
      if (!from_lkg && settled()) {
        lkg_due.reset();
        auto snap = owner.m_snapshot.load();
        lock.unlock();
        if (snap) write_lkg(*snap);
        lock.lock();
      } else {
        lkg_due = t + std::chrono::seconds(1);
      }
    }
    for (std::size_t i = 0; i < sessions.size(); ++i)
      if (auto g = give_up_at(sessions[i]); g && now() >= *g) give_up(i, now());
    // One session at a time: a connect attempt can take the whole ZooKeeper timeout.
    for (std::size_t i = 0; i < sessions.size() && !stopping; ++i)
      if (sessions[i].reconnect_at && now() >= *sessions[i].reconnect_at) {
        sessions[i].reconnect_at.reset();
        open_session(i, lock);
        break;
      }
  }

  bool started = false;  // the sessions have been scheduled

  void schedule_sessions() {
    started = true;
    for (auto& s : sessions) s.reconnect_at = now();
  }

  // The control thread.
  void run() {
    std::unique_lock lock(mu);
    schedule_sessions();
    while (!stopping) {
      const auto until = next_due().value_or(SteadyClock::now() + std::chrono::hours(1));
      cv.wait_until(lock, until, [&] { return stopping || serve_lkg_due || rearm; });
      rearm = false;
      if (stopping) return;
      due(lock);
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
  // Closed without the lock: closing waits for completion threads that may wait for it.
  // What they still deliver belongs to an old epoch.
  std::vector<std::unique_ptr<zk::Session>> clients;
  {
    std::lock_guard lock(m_impl->mu);
    for (auto& s : m_impl->sessions) {
      ++s.epoch;
      clients.push_back(std::move(s.client));
    }
  }
  clients.clear();
}

Expected<void> Cache::start(std::chrono::milliseconds timeout) {
  if (m_impl->options.clock)
    return fail(ErrorKind::Error, "a cache with its own clock is driven by tick(), not started");
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
  {
    std::lock_guard lock(m_impl->mu);
    m_impl->serve_lkg_due = true;
  }
  m_impl->cv.notify_all();
  std::unique_lock lock(m_impl->load_mu);
  if (!m_impl->load_cv.wait_for(lock, m_impl->options.zk.timeout + timeout,
                                [&] { return m_impl->load_done; }))
    return fail(ErrorKind::Unavailable,
                fmt::format("{}, and no usable last-known-good file at {}", unavailable.error.message,
                            m_impl->options.lkg_file));
  return {};
}

bool Cache::serving_lkg() const { return m_impl->from_lkg.load(); }

std::optional<SteadyClock::time_point> Cache::tick() {
  std::unique_lock lock(m_impl->mu);
  if (!m_impl->started) m_impl->schedule_sessions();
  // Until nothing more is due now: each turn opens one session at most.
  for (std::size_t turn = 0; turn <= m_impl->sessions.size(); ++turn) {
    const auto next = m_impl->next_due();
    if (m_impl->stopping || !next || *next > m_impl->now()) break;
    m_impl->due(lock);
  }
  m_impl->rearm = false;
  return m_impl->next_due();
}

SessionsView Cache::sessions() const {
  std::lock_guard guard(m_impl->view_mu);
  return m_impl->view;
}

}  // namespace svcctl::registry
