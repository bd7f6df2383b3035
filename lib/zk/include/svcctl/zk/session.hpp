// ZooKeeper as the rest of svcctl sees it: one session, its calls and its notifications.
//
// `Session` is the narrow interface the registry, the cache and the holders are written
// against. `Client` (client.hpp) is the real one, over the C client; `FakeEnsemble`
// (fake.hpp, for unit tests) serves sessions from an in-memory ensemble whose faults
// (expiry, lost connections, lagging members, refused zxids, delayed and reordered
// replies) a test drives step by step. A `Connector` opens sessions: what a component
// that reopens its own sessions (the cache, a holder, LiveRegistry) is given.
#pragma once

#include <svcctl/core/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svcctl::zk {

// ZooKeeper's return codes (the values of the C client's ZOO_ERRORS, checked there).
enum class Code : int {
  Ok = 0,
  SystemError = -1,
  RuntimeInconsistency = -2,
  DataInconsistency = -3,
  ConnectionLoss = -4,
  MarshallingError = -5,
  Unimplemented = -6,
  OperationTimeout = -7,
  BadArguments = -8,
  InvalidState = -9,  // the handle is not connected (or closed): the call was not sent
  NewConfigNoQuorum = -13,
  ReconfigInProgress = -14,
  SslConnectionError = -15,
  ApiError = -100,
  NoNode = -101,
  NoAuth = -102,
  BadVersion = -103,
  NoChildrenForEphemerals = -108,
  NodeExists = -110,
  NotEmpty = -111,
  SessionExpired = -112,
  InvalidCallback = -113,
  InvalidAcl = -114,
  AuthFailed = -115,
  Closing = -116,
  Nothing = -117,
  SessionMoved = -118,
  NotReadOnly = -119,
  EphemeralOnLocalSession = -120,
  NoWatcher = -121,
  ReconfigDisabled = -123,
  SessionClosedRequireSaslAuth = -124,
  Throttled = -127,
};

// What a code means, for messages ("no such node", "connection to ZooKeeper lost").
std::string_view describe(Code c);

// Whether the request was lost with the connection or the session (or never sent, or
// throttled): nothing was read or written that the caller can know of, and asking again
// through a connected session is the answer. Any other code is the server's answer.
bool connection_trouble(Code c);

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

// PersistentSequential: ZooKeeper appends the parent's child counter (cversion), ten
// digits, to the name ("/history/r-" → "/history/r-0000000042"): names that sort in the
// order they were created.
enum class CreateMode { Persistent, Ephemeral, PersistentSequential };

enum class SessionState { Connecting, Connected, Expired, AuthFailed, Closed };
std::string_view to_string(SessionState s);

// A notification: a watched node changed (the path says which), or the session's state did.
struct Event {
  enum class Type { Created, Deleted, Changed, Children, Session };
  Type type = Type::Session;
  std::string path;
  SessionState state = SessionState::Connected;
};

// Receives every Event, on the session's completion thread. It may start asynchronous
// calls; it must never wait for a synchronous one or close the session (both deadlock).
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

// Completions of the asynchronous calls: run on the session's completion thread (same rule
// as EventSink), or at once on the caller's thread when the call cannot be sent (a closed
// or expired session: Code::InvalidState or Code::Closing).
using NodeCallback = std::function<void(Code rc, Node node)>;
using ChildrenCallback = std::function<void(Code rc, std::vector<std::string> names, Stat stat)>;
using StatCallback = std::function<void(Code rc, Stat stat)>;
using DoneCallback = std::function<void(Code rc)>;

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
Error to_error(Code rc, std::string_view context);

class Session {
 public:
  virtual ~Session() = default;

  virtual std::int64_t session_id() const = 0;
  virtual std::chrono::milliseconds negotiated_session_timeout() const = 0;
  virtual bool authenticated() const = 0;

  // ---- asynchronous: each callback runs exactly once (inline if the call was not sent)

  // With Watch::Yes, a watch is left whose notification reaches Options::on_event.
  virtual void get_async(const std::string& path, Watch watch, NodeCallback done) = 0;
  virtual void children_async(const std::string& path, Watch watch, ChildrenCallback done) = 0;
  // With Watch::Yes the watch is left even when the node does not exist (Created fires).
  virtual void exists_async(const std::string& path, Watch watch, StatCallback done) = 0;
  // ZooKeeper's sync: the server this session is connected to catches up with the leader.
  // Everything the leader had committed when the sync was sent, and every notification
  // that causes, reaches this session before `done` runs.
  virtual void sync_async(const std::string& path, DoneCallback done) = 0;

  // ---- waited for, within Options::timeout

  virtual Expected<Node> get(const std::string& path) = 0;
  virtual Expected<std::vector<std::string>> children(const std::string& path) = 0;
  // The node's stat, or nullopt if it does not exist.
  virtual Expected<std::optional<Stat>> exists(const std::string& path) = 0;
  // New nodes carry world-read + creator-all (+ admin-all) ACLs when authenticated, open
  // ACLs otherwise.
  virtual Expected<void> create(const std::string& path, const std::string& data, CreateMode mode) = 0;
  virtual Expected<Stat> set(const std::string& path, const std::string& data, int version) = 0;
  virtual Expected<void> remove(const std::string& path, int version) = 0;
  // Applies all ops or none. On failure, the Error's code is the first failing op's return
  // code and its message names that op's path. With `stats`, on success: one per op, the
  // node's Stat after the write for Set ops (its mzxid is the multi's zxid), zeros for others.
  virtual Expected<void> multi(const std::vector<Op>& ops, std::vector<Stat>* stats = nullptr) = 0;

  // Creates `path` and any missing parents with empty data.
  virtual Expected<void> ensure_path(const std::string& path);
  // ensure_path, but a `path` it creates lets every client create and delete its children
  // (world: read, create, delete; the creator and the admin id: all) when authenticated:
  // a folder every writer adds to, such as /history. The children themselves get the
  // usual ACL. Without authentication all nodes are open anyway.
  virtual Expected<void> ensure_shared_folder(const std::string& path) { return ensure_path(path); }
  // Reads: one result per path, in order (the real client pipelines them, at most `window`
  // in flight). A path that vanished between listing and reading gives NotFound there.
  virtual std::vector<Expected<Node>> get_many(const std::vector<std::string>& paths, std::size_t window = 512);
  virtual std::vector<Expected<std::vector<std::string>>> children_many(const std::vector<std::string>& paths,
                                                                        std::size_t window = 512);
};

// Opens a session: connected (and authenticated) within Options::timeout, or Unavailable;
// Usage for a malformed connect string.
using Connector = std::function<Expected<std::unique_ptr<Session>>(const Options&)>;

// The real one: zk::Client::connect.
Connector real_connector();

// Joins a parent path and a child name ("/" + "a" = "/a", "/a" + "b" = "/a/b").
std::string join(std::string_view parent, std::string_view child);

}  // namespace svcctl::zk
