// The cache's reconciliation, pure: the answers of ZooKeeper reads in, the changes they
// make to the mirrored registry and the reads they call for out. No I/O, no clock, no
// lock: the cache (cache.hpp) sends the reads, feeds the answers in, and publishes.
//
// The rules it keeps (ARCHITECTURE.md, "The cache"), since the sessions reading may be
// served by members at different points of ZooKeeper's log:
// - a node's mzxid never goes back: an older read than the state held changes nothing;
// - a listing made after a node was created (its pzxid ≥ the node's czxid) and without
//   it wins over an older read of the node: the node has been deleted since;
// - a name an older listing lacks, of a node created after that listing (czxid > pzxid),
//   is not taken for deleted;
// - a node one session cannot see yet, but another session's listing names, is waited
//   for (an exists read with a watch) rather than taken for deleted;
// - a round (a session reading its share again) sweeps what it did not see;
// - a round that starts a new history (a session given up on, which a rebuilt or restored
//   ensemble may have refused; a last-known-good file) compares no zxid of a node it has
//   not read again yet with the new answers: those zxids may come from another log.
#pragma once

#include <svcctl/registry/cache.hpp>
#include <svcctl/zk/session.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace svcctl::registry {

class Mirror {
 public:
  // The registry roots mirrored, and the depth of their leaves: /key/{k} is 1,
  // /address/{svc}/{hp} is 2.
  struct Root {
    std::string_view path;
    int leaf_depth;
  };
  static const std::array<Root, 6> k_roots;
  // How deep `path` is below its root (0 for the root itself), or -1 if it is under none.
  static int depth_of(std::string_view path, const Root** root = nullptr);
  // Above its root's leaves: its children are mirrored, not its data.
  static bool is_container(std::string_view path);
  static std::size_t shard_of(std::string_view path);

  enum class ReadKind : char { Data = 'd', Children = 'c', Exists = 'e' };
  struct Read {
    std::size_t session;
    std::string path;
    ReadKind kind;
    bool operator==(const Read&) const = default;
  };
  // What feeding an answer in produced; appended to, the caller empties it.
  struct Out {
    std::vector<Change> changes;
    std::vector<Read> reads;
  };

  explicit Mirror(std::size_t sessions);

  // The session that reads `path`: a root's listing through the first; below a root, the
  // one the next name (service, key, gateway) hashes to, so that a service's nodes under
  // every root arrive in one session's order.
  std::size_t session_of(std::string_view path) const;

  // The answer to a read of `path`'s data (Data) or children (Children) through session
  // `via`: Ok with the node, or NoNode (other codes change nothing).
  void data(std::size_t via, const std::string& path, zk::Code rc, zk::Node node, Out& out);
  void children(std::size_t via, const std::string& path, zk::Code rc, const std::vector<std::string>& names,
                const zk::Stat& st, Out& out);
  // An exists read (a node waited for) found the node: read it.
  void exists(std::size_t via, const std::string& path, Out& out) const;

  // A node taken from a last-known-good file, as Added.
  void from_file(const std::string& path, CacheEntry entry, Out& out);

  // What a round of reading does with what the session held.
  enum class RoundKind {
    Listings,    // it reads the roots' listings only; nothing is swept
    Sweep,       // it reads everything again; what it does not see by end_round() is removed
    NewHistory,  // as Sweep, and what the session held is taken from its first answer in
                 // the round whatever its zxids; listings made before the round decide nothing
  };
  // A round of session i: every node it reads, to read again (its share of what is held;
  // the roots' listings for session 0 are the caller's). end_round() returns how many
  // distinct nodes a sweeping round saw.
  std::vector<Read> begin_round(std::size_t i, RoundKind kind);
  std::size_t end_round(std::size_t i, Out& out);
  // The round under way sweeps (it began with nodes held).
  bool sweeping(std::size_t i) const { return m_rounds[i].sweep; }

  const CacheEntry* find(std::string_view path) const;
  // Session i's nodes, as shared with snapshots.
  std::vector<std::shared_ptr<const Snapshot::Shard::Item>> held_by(std::size_t i) const;
  std::size_t count_held_by(std::size_t i) const;
  std::size_t size() const;

  // The mirror's shards, shared with `snap` from now on (the next change to one copies it
  // first: memory holds one copy of the registry, and a change copies one shard's
  // pointers).
  void share_into(Snapshot& snap);

 private:
  // A container's children's names, sorted: a vector holds a short name in a third of
  // the memory a set's node takes (one per address in the registry).
  class Names {
   public:
    Names() = default;
    explicit Names(std::vector<std::string> names);
    bool count(std::string_view name) const;
    void insert(std::string name);
    void erase(std::string_view name);
    std::vector<std::string>::const_iterator begin() const { return m_names.begin(); }
    std::vector<std::string>::const_iterator end() const { return m_names.end(); }

   private:
    std::vector<std::string> m_names;
  };
  // What the last listing of a container said.
  struct Listing {
    Names names;
    std::int64_t pzxid = 0;
    bool old_history = false;  // listed before a new history began: its pzxid says nothing
  };
  struct Round {
    bool sweep = false;
    bool new_history = false;
    std::unordered_set<std::string> seen;
  };

  Snapshot::Shard& writable(std::size_t shard);
  void put(std::size_t via, const std::string& path, CacheEntry e, Out& out);
  void remove_subtree(const std::string& path, Out& out);
  void absent(std::size_t via, const std::string& path, Out& out);
  void mark_seen(std::size_t via, const std::string& path);
  // Held from before a new history its session's round has begun, and not read again yet.
  bool old_history(const std::string& path) const;

  std::size_t m_sessions;
  std::array<std::shared_ptr<Snapshot::Shard>, Snapshot::k_shards> m_shards;
  std::array<bool, Snapshot::k_shards> m_owned{};
  std::unordered_map<std::string, Listing> m_children;
  std::vector<Round> m_rounds;
};

}  // namespace svcctl::registry
