// A deterministic in-memory ZooKeeper ensemble, for unit tests of what is written against
// zk::Session (the cache, the holders, the registry). Nothing happens on its own: no
// thread, no clock. A test writes (as another client would), lets replies and
// notifications through one at a time or all at once, and causes the faults an ensemble
// has on a bad day.
//
// What it keeps of ZooKeeper's semantics (the ones svcctl's reconciliation relies on):
// - One leader log: every write, a multi-op included, is one transaction with one zxid.
//   Members apply the log; a member made to lag applies nothing until it catches up (a
//   sync through one of its sessions, or catch_up()). Reads are answered from the state
//   of the member the session is connected to, as of the moment the read is sent.
// - Per session, replies and notifications arrive in order: a notification is queued
//   when its member applies the transaction, so it reaches the session before any reply
//   to a read sent after that. Watches are one-shot; exists() on a missing node leaves a
//   watch that a creation fires.
// - A session moved to another member (reconnect) is refused if that member has not seen
//   the zxids the session has (a restored or rebuilt ensemble); otherwise its watches are
//   set again there as the client library does (SetWatches with the last zxid seen): a
//   watched node changed, created or deleted since fires at once.
// - Expiry and close delete the session's ephemeral nodes, in one transaction.
//
// Delivery: each session has a FIFO queue. step() delivers the front of one non-empty
// queue (which one is drawn from the seed, so that interleavings across sessions vary
// with it and repeat with it); run() delivers until every queue is empty. A held session
// keeps its queue until released. Waited-for calls (get, create, ...) are answered at
// once on the caller's thread. Callbacks and event sinks run on the thread that calls
// step() or run(), without the ensemble's lock: they may call into their session.
//
// The ensemble must outlive its sessions.
#pragma once

#include <svcctl/zk/session.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace svcctl::zk {

class FakeEnsemble {
 public:
  struct Counters {
    std::uint64_t gets = 0;       // reads of data (asynchronous and waited for)
    std::uint64_t listings = 0;   // reads of children
    std::uint64_t exists = 0;
    std::uint64_t syncs = 0;
    std::uint64_t connects = 0;   // sessions opened
    std::uint64_t refused = 0;    // reconnects refused for a zxid the member has not seen
    std::uint64_t reads() const { return gets + listings + exists; }
  };

  explicit FakeEnsemble(std::size_t members = 3, std::uint64_t seed = 1);
  ~FakeEnsemble();
  FakeEnsemble(const FakeEnsemble&) = delete;
  FakeEnsemble& operator=(const FakeEnsemble&) = delete;

  // Opens sessions on the member set by connect_to() (by default each new session on the
  // next member that is up, in turn). The session's Connected event reaches
  // Options::on_event before the connector returns. Unavailable when no member is up or
  // connects are refused.
  Connector connector();
  void connect_to(std::optional<std::size_t> member);
  void refuse_connects(bool refuse);

  // ---- writes, as another client makes them: one transaction each; its zxid ---------
  Expected<std::int64_t> create(const std::string& path, const std::string& data = {},
                                CreateMode mode = CreateMode::Persistent, std::int64_t owner = 0);
  Expected<std::int64_t> set(const std::string& path, const std::string& data, int version = -1);
  Expected<std::int64_t> remove(const std::string& path, int version = -1);
  // Removes the node and everything below it, in one transaction.
  Expected<std::int64_t> remove_tree(const std::string& path);
  Expected<std::int64_t> multi(const std::vector<Op>& ops);
  // Creates the path and its missing parents, in one transaction.
  Expected<std::int64_t> ensure_path(const std::string& path, const std::string& data = {});

  // The leader's state.
  std::int64_t zxid() const;
  std::optional<Node> node(const std::string& path) const;
  std::vector<std::string> children_of(const std::string& path) const;

  // ---- members ----------------------------------------------------------------------
  std::size_t members() const;
  void lag(std::size_t member);       // applies no more of the log until caught up
  void catch_up(std::size_t member);  // applies all of it, and applies what comes again
  std::int64_t member_zxid(std::size_t member) const;

  // ---- delivery ---------------------------------------------------------------------
  bool step();          // delivers one item; false when nothing can be delivered
  std::size_t run();    // delivers until nothing can; how many were
  std::size_t queued() const;  // items waiting, held sessions' included
  void hold(std::int64_t session);
  void release(std::int64_t session);

  // ---- faults -----------------------------------------------------------------------
  // The session's connection is lost: notifications not yet delivered are lost with it
  // (their watches are kept: reconnect() fires them again), replies not yet delivered
  // become ConnectionLoss, and the session hears Connecting.
  void disconnect(std::int64_t session);
  // The client reconnects to `member` (by default the one it was on). Refused (false, and
  // the session stays Connecting) if the member has not seen the last zxid the session
  // did; a session the ensemble has expired hears Expired; otherwise Connected, then
  // what its watches missed.
  bool reconnect(std::int64_t session, std::optional<std::size_t> member = {});
  // The session's next write is applied, but its answer is lost with the connection: the
  // call fails with ConnectionLoss, and the session is disconnected.
  void lose_next_answer(std::int64_t session);
  // The ensemble ends the session (its ephemerals go, in one transaction). A connected
  // session hears Expired; a disconnected one hears it when it reconnects.
  void expire(std::int64_t session);
  // Every session's connection is lost and the ensemble forgets everything: an empty tree
  // at zxid 0, no sessions (a rebuilt ensemble, or one restored from nothing).
  void lose_data();

  // Sessions opened and not closed, oldest first.
  std::vector<std::int64_t> sessions() const;
  // The member the session is (or was last) connected to.
  std::optional<std::size_t> member_of(std::int64_t session) const;
  Counters counters() const;

  struct State;

 private:
  std::shared_ptr<State> m_state;
};

}  // namespace svcctl::zk
