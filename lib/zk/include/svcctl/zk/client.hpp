// RAII over the multi-threaded ZooKeeper C client (libzookeeper_mt).
//
// Every operation is sent with the asynchronous API and waited for with a deadline
// (Options::timeout), so no call blocks longer than that, whatever the server does.
// Batched reads are pipelined with a bounded number of requests in flight.
// The C client's own log goes to the file named by $SVCCTL_ZK_LOG, else nowhere.
#pragma once

#include <svcctl/core/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace svcctl::zk {

// ZooKeeper return codes the callers act on (the values of the C client's ZOO_ERRORS).
enum class Code : int {
  Ok = 0,
  ConnectionLoss = -4,
  OperationTimeout = -7,
  NoNode = -101,
  NoAuth = -102,
  BadVersion = -103,
  NoChildrenForEphemerals = -108,
  NodeExists = -110,
  NotEmpty = -111,
  SessionExpired = -112,
};

inline bool is(const Error& e, Code c) { return e.code == static_cast<int>(c); }

struct Stat {
  std::int64_t czxid = 0;
  std::int64_t mzxid = 0;
  std::int64_t pzxid = 0;
  std::int64_t ctime_ms = 0;
  std::int64_t mtime_ms = 0;
  std::int32_t version = 0;
  std::int32_t cversion = 0;
  std::int64_t ephemeral_owner = 0;  // session id of the owner, 0 if persistent
  std::int32_t num_children = 0;
};

struct Node {
  std::string data;
  Stat stat;
};

enum class CreateMode { Persistent, Ephemeral };

enum class SessionState { Connecting, Connected, Expired, AuthFailed, Closed };
std::string_view to_string(SessionState s);

// A notification: a watched node changed (the path says which), or the session's state did.
struct Event {
  enum class Type { Created, Deleted, Changed, Children, Session };
  Type type = Type::Session;
  std::string path;
  SessionState state = SessionState::Connected;
};

// Receives every Event, on the C client's completion thread. It may start asynchronous
// calls; it must never wait for a synchronous one or close the client (both deadlock).
using EventSink = std::function<void(Event)>;

struct Options {
  std::string connect = "127.0.0.1:2181";  // host:port[,host:port...][/chroot]
  std::chrono::milliseconds timeout{5000};  // connect, and each request
  std::chrono::milliseconds session_timeout{10000};
  std::string digest;  // "user:password" for digest auth; empty for none
  // With digest: a second identity ("user:base64(sha1(user:password))", ZooKeeper's digest
  // id) given all permissions on the nodes created, besides the creator.
  std::string admin_id;
  EventSink on_event;  // set before connecting, so that no notification is missed
};

enum class Watch { No, Yes };

// Completions of the asynchronous calls: run on the C client's completion thread (same
// rule as EventSink), or at once on the caller's thread when the call cannot be sent (a
// closed or expired session). `rc` is the ZooKeeper return code (0 = ok, see Code).
using NodeCallback = std::function<void(int rc, Node node)>;
using ChildrenCallback = std::function<void(int rc, std::vector<std::string> names, Stat stat)>;
using StatCallback = std::function<void(int rc, Stat stat)>;
using DoneCallback = std::function<void(int rc)>;

// One operation of an atomic multi().
struct Op {
  enum class Type { Create, Remove, Set, Check };
  Type type = Type::Check;
  std::string path;
  std::string data;
  int version = -1;  // -1: any version
  CreateMode mode = CreateMode::Persistent;

  static Op create(std::string path, std::string data, CreateMode mode = CreateMode::Persistent);
  static Op remove(std::string path, int version);
  static Op set(std::string path, std::string data, int version);
  static Op check(std::string path, int version);
};

// Maps a ZooKeeper return code to an Error whose kind is the exit code the user sees:
// no node → NotFound, exists/bad version/not empty → Conflict, no auth → PermissionDenied,
// connection loss/timeouts/expiry → Unavailable. `context` says what was attempted.
Error to_error(int rc, std::string_view context);

class Client {
 public:
  // Connects (and authenticates, when Options::digest is set) within Options::timeout.
  // Fails with Unavailable when no server answers in time, Usage for a malformed connect
  // string.
  static Expected<std::unique_ptr<Client>> connect(const Options& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::chrono::milliseconds negotiated_session_timeout() const;
  std::int64_t session_id() const;
  bool authenticated() const { return !m_options.digest.empty(); }

  Expected<Node> get(const std::string& path);
  Expected<std::vector<std::string>> children(const std::string& path);
  // The node's stat, or nullopt if it does not exist.
  Expected<std::optional<Stat>> exists(const std::string& path);
  // New nodes carry world-read + creator-all (+ admin-all) ACLs when authenticated, open
  // ACLs otherwise.
  Expected<void> create(const std::string& path, const std::string& data, CreateMode mode);
  Expected<Stat> set(const std::string& path, const std::string& data, int version);
  Expected<void> remove(const std::string& path, int version);
  // Applies all ops or none. On failure, the Error's code is the first failing op's return
  // code and its message names that op's path. With `stats`, on success: one per op, the
  // node's Stat after the write for Set ops (its mzxid is the multi's zxid), zeros for others.
  Expected<void> multi(const std::vector<Op>& ops, std::vector<Stat>* stats = nullptr);
  // Creates `path` and any missing parents with empty data, including a missing chroot.
  Expected<void> ensure_path(const std::string& path);

  // Pipelined reads: one result per path, in order, with at most `window` requests in
  // flight. A path that vanished between listing and reading gives NotFound for that slot.
  std::vector<Expected<Node>> get_many(const std::vector<std::string>& paths,
                                       std::size_t window = 512);
  std::vector<Expected<std::vector<std::string>>> children_many(
      const std::vector<std::string>& paths, std::size_t window = 512);

  // Asynchronous reads that, with Watch::Yes, leave a watch whose notification reaches
  // Options::on_event. The callback always runs exactly once (inline if the request could
  // not be sent).
  void get_async(const std::string& path, Watch watch, NodeCallback done);
  void children_async(const std::string& path, Watch watch, ChildrenCallback done);
  // With Watch::Yes the watch is left even when the node does not exist (Created fires).
  void exists_async(const std::string& path, Watch watch, StatCallback done);
  // ZooKeeper's sync: the server this session is connected to catches up with the leader.
  // Everything the leader had committed when the sync was sent, and every notification
  // that causes, reaches this session before `done` runs.
  void sync_async(const std::string& path, DoneCallback done);


  struct Impl;  // completion plumbing, in client.cpp

 private:
  explicit Client(Options options);
  Expected<void> ensure_chroot();

  Options m_options;
  std::string m_hosts;
  std::string m_chroot;
  std::unique_ptr<Impl> m_impl;
};

// Joins a parent path and a child name ("/" + "a" = "/a", "/a" + "b" = "/a/b").
std::string join(std::string_view parent, std::string_view child);

}  // namespace svcctl::zk
