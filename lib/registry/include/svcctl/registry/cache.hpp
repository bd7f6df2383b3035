// The watch-driven registry cache (DESIGN §3): an in-memory mirror of every node under
// /service, /address, /api, /key, /acl and /gateway, kept exact by ZooKeeper watches.
//
// - The registry is read through Options::sessions sessions: a root's listing through the
//   first, everything under /{root}/{name} through the one `name` hashes to (so a
//   service's nodes under every root share one). A ZooKeeper server serves one session's
//   requests one after another; two sessions load a large registry about 1.5 times as fast.
// - What a session receives is applied at once, on its completion thread, under one lock
//   (no hop to another thread); at most Options::max_outstanding reads are in flight in
//   all. A background thread only keeps time: reconnects, the last-known-good file, and
//   publishing changes that waited too long for the rest of their transaction.
// - Changes are published by whole ZooKeeper transactions (per session): a change waits
//   until its session has answered every read that notifications received before it
//   caused (a multi-op's other nodes, a listing's new children), 250 ms at most.
// - Every read arms a watch; a notification only causes a new read (which re-arms it),
//   and what that read returns is applied. A result never moves a node back in time: its
//   mzxid only grows, and a node a newer listing of its parent lacks is not taken back
//   from an older read (sessions may be served by different servers of an ensemble).
// - A new session after expiry reads again everything it reads (after a random delay);
//   nodes not seen again are swept away. A reconnect within a session reads only the
//   roots' listings: the watches the client library sets again bring what changed.
//   A session that could not reconnect for longer than its negotiated timeout is taken as
//   expired: it cannot be alive on the server, and a server behind the zxids it has seen
//   (rebuilt on an empty data dir, restored from an older snapshot) refuses it for good.
// - Readers take the current Snapshot with snapshot(): an immutable value, swapped
//   atomically; they never lock on, wait for or call into ZooKeeper.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/zk/session.hpp>

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace svcctl::registry {

struct CacheEntry {
  std::string data;            // empty for containers (their data is not read)
  std::int64_t mzxid = 0;
  std::int32_t version = 0;
  std::int64_t ephemeral_owner = 0;
  bool container = false;      // /address/{svc}-like: holds children, data not mirrored
  std::int64_t czxid = 0;      // when this node was created (0 when taken from a file)
  // The same state (czxid is not compared: a recreated node has a new mzxid anyway, and a
  // node taken from a last-known-good file has none).
  bool operator==(const CacheEntry& o) const {
    return mzxid == o.mzxid && version == o.version && ephemeral_owner == o.ephemeral_owner &&
           container == o.container && data == o.data;
  }
};

class Snapshot {
 public:
  using Clock = std::chrono::system_clock;
  static constexpr std::size_t k_shards = 1024;
  // One shard: its nodes sorted by path, each behind a shared pointer, so that copying a
  // shard (on its first change after a publish) copies pointers, not paths and data.
  class Shard {
   public:
    struct Item {
      std::string path;
      CacheEntry entry;
    };
    using Items = std::vector<std::shared_ptr<const Item>>;
    const CacheEntry* find(std::string_view path) const;
    // The node's item, shared (null when absent).
    std::shared_ptr<const Item> item(std::string_view path) const;
    std::size_t size() const { return m_items.size(); }
    Items::const_iterator begin() const { return m_items.begin(); }
    Items::const_iterator end() const { return m_items.end(); }
    // Sets the node at `path` (added or replaced); its new item.
    std::shared_ptr<const Item> put(const std::string& path, CacheEntry entry);
    // Removes it and returns its item (null when it was absent).
    std::shared_ptr<const Item> erase(std::string_view path);

   private:
    Items::iterator lower_bound(std::string_view path);
    Items::const_iterator lower_bound(std::string_view path) const;
    Items m_items;
  };

  std::uint64_t generation = 0;     // one more at every publish
  // Every change up to this zxid is in this snapshot (each session has seen it, or has
  // synced past it).
  std::int64_t max_zxid = 0;
  zk::SessionState session = zk::SessionState::Connecting;  // the worst of the sessions'
  std::vector<std::int64_t> session_ids;                    // every session's (never empty once published)
  bool loaded = false;              // a full read has completed
  Clock::time_point last_change{};
  std::optional<Clock::time_point> stale_since;  // set while not connected

  const CacheEntry* find(std::string_view path) const;
  std::size_t size() const;
  // Every entry, sorted by path.
  std::map<std::string, CacheEntry> entries() const;

 private:
  friend class Cache;
  friend class Mirror;
  std::array<std::shared_ptr<const Shard>, k_shards> m_shards{};
};

struct Change {
  // Resync: a reconnect or a new session starts reading everything again (changes made
  // meanwhile may have been coalesced). Synced: that round is over; the view is the
  // registry again.
  enum class Kind { Added, Modified, Deleted, Resync, Synced };
  Kind kind = Kind::Added;
  std::string path;
  // The node's state before and after (null when it was absent), shared with the mirror
  // and its snapshots rather than copied: a load's changes cost no copy of its data.
  std::shared_ptr<const CacheEntry> before;
  std::shared_ptr<const CacheEntry> after;
  std::string reason;  // for Resync: "reconnected" or "session expired"
};
std::string_view to_string(Change::Kind kind);

// A transition of one of the cache's ZooKeeper sessions.
struct SessionEvent {
  // Disconnected: the connection is lost (the client is reconnecting). Reconnected: back
  // within the session. Expired: the session is gone (the server said so, or it could not
  // reconnect for longer than its timeout: it cannot be alive on the server any more).
  // Replaced: a new session was opened in its place. Resynced: a round of reading that
  // session's share again is over.
  enum class Kind { Disconnected, Reconnected, Expired, Replaced, Resynced };
  static constexpr std::size_t k_kinds = 5;
  Kind kind = Kind::Disconnected;
  std::size_t session = 0;   // which of Options::sessions
  std::int64_t id = 0;       // its ZooKeeper session id (Replaced: the new one)
  std::int64_t old_id = 0;   // Replaced: the one it replaces
  std::string reason;        // Expired and Replaced: why
  // Resynced: that round's nodes read, and what it found added, modified and deleted among
  // the session's nodes (one another session's listing removed before the round began, or
  // one read after the round ended, is not counted).
  std::size_t nodes_read = 0;
  std::size_t added = 0;
  std::size_t modified = 0;
  std::size_t deleted = 0;
  std::chrono::milliseconds duration{0};
};
std::string_view to_string(SessionEvent::Kind kind);
// One line for a log: "session 1 (0x…) disconnected: reconnecting".
std::string describe(const SessionEvent& e);
// Its fields: {"event":"session","what":"expired","session":1,"session_id":"0x…",...}.
nlohmann::json to_json(const SessionEvent& e);

// What the sessions have been through, for health reports.
struct SessionsView {
  struct One {
    std::int64_t id = 0;
    zk::SessionState state = zk::SessionState::Connecting;
  };
  std::vector<One> sessions;
  std::array<std::uint64_t, SessionEvent::k_kinds> events{};  // by SessionEvent::Kind
  std::string last_replaced_reason;  // empty until a session is replaced
  std::optional<std::chrono::system_clock::time_point> last_replaced;
};

class Cache {
 public:
  struct Options {
    zk::Options zk;
    zk::Connector connect;  // opens its sessions; by default the real client
    std::size_t max_outstanding = 32;  // in all sessions together
    std::size_t sessions = 2;          // at least 1
    // A new session after expiry starts after a random delay up to this, so that many
    // gateways do not all reload at the same instant.
    std::chrono::milliseconds resync_jitter{1000};
    // Called after each publish with what changed, under the cache's lock, on a ZooKeeper
    // completion thread or the cache's own. The first load comes all at once, as Added, in
    // no particular order. It must not call into the cache other than snapshot().
    std::function<void(const std::vector<Change>&, const Snapshot&)> on_change;
    // Called at each session transition, under the cache's lock, on a ZooKeeper completion
    // thread or the cache's own (after on_change for what a round changed). It must be
    // cheap and must not call into the cache.
    std::function<void(const SessionEvent&)> on_session;
    // Last-known-good file: when set, the mirror is written there (atomically, at most once
    // a second, only while connected and not resyncing), and start() falls back to it when
    // ZooKeeper cannot be loaded in time (fail static): the snapshot is then served stale
    // until a session reconciles it.
    std::string lkg_file;
    // For tests of the cache's logic on zk::FakeEnsemble. `clock`: what the cache takes for
    // now instead of the steady clock; when set, the cache has no control thread: start()
    // is not called, and tick() does that thread's work. `seed`: the random delays'
    // (backoff, resync jitter); 0 draws one.
    std::function<std::chrono::steady_clock::time_point()> clock;
    std::uint64_t seed = 0;
  };

  explicit Cache(Options options);
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // Connects and loads; returns once the first full load is published. When that does not
  // happen within `timeout`: with a readable last-known-good file, publishes its content
  // (stale) and returns; otherwise Unavailable.
  Expected<void> start(std::chrono::milliseconds timeout);

  // Whether the current snapshot came from the last-known-good file and has not yet been
  // reconciled with ZooKeeper.
  bool serving_lkg() const;

  // With Options::clock: opens the sessions due (all of them at the first call), gives up
  // on those lost past their timeout, publishes what waited long enough, sends the syncs
  // due and writes the last-known-good file, as of clock(). Returns when something is
  // next due (nothing: nullopt).
  std::optional<std::chrono::steady_clock::time_point> tick();

  // Each session's id and state, and how many transitions of each kind there were (never
  // waits for the cache's lock).
  SessionsView sessions() const;

  std::shared_ptr<const Snapshot> snapshot() const { return m_snapshot.load(); }

  struct Impl;

 private:
  std::unique_ptr<Impl> m_impl;
  std::atomic<std::shared_ptr<const Snapshot>> m_snapshot;
};

// Whether `file` can be a cache's last-known-good file (Options::lkg_file), so that a
// command can refuse it before waiting for ZooKeeper: a file can be created in its
// directory (the cache writes a new one there and renames it over `file`), and `file` is
// absent (a first run) or a readable file in the cache's format. Fails with
// ErrorKind::Error naming the file and why: the system's reason ("No such file or
// directory", "Is a directory"), or what in it is not the cache's format.
Expected<void> check_lkg_file(const std::string& file);

}  // namespace svcctl::registry
