// RAII over the multi-threaded ZooKeeper C client (libzookeeper_mt).
//
// Every operation is sent with the asynchronous API and waited for with a deadline
// (Options::timeout), so no call blocks longer than that, whatever the server does.
// Batched reads are pipelined with a bounded number of requests in flight.
// The C client's own log goes to the file named by $SVCCTL_ZK_LOG, else nowhere.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/zk/session.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace svcctl::zk {

class Client final : public Session {
 public:
  // Connects (and authenticates, when Options::digest is set) within Options::timeout.
  // Fails with Unavailable when no server answers in time, Usage for a malformed connect
  // string.
  static Expected<std::unique_ptr<Client>> connect(const Options& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::chrono::milliseconds negotiated_session_timeout() const override;
  std::int64_t session_id() const override;
  bool authenticated() const override { return !m_options.digest.empty(); }

  Expected<Node> get(const std::string& path) override;
  Expected<std::vector<std::string>> children(const std::string& path) override;
  // The node's stat, or nullopt if it does not exist.
  Expected<std::optional<Stat>> exists(const std::string& path) override;
  // New nodes carry world-read + creator-all (+ admin-all) ACLs when authenticated, open
  // ACLs otherwise.
  Expected<void> create(const std::string& path, const std::string& data, CreateMode mode) override;
  Expected<Stat> set(const std::string& path, const std::string& data, int version) override;
  Expected<void> remove(const std::string& path, int version) override;
  // Applies all ops or none. On failure, the Error's code is the first failing op's return
  // code and its message names that op's path. With `stats`, on success: one per op, the
  // node's Stat after the write for Set ops (its mzxid is the multi's zxid), zeros for others.
  Expected<void> multi(const std::vector<Op>& ops, std::vector<Stat>* stats = nullptr) override;
  // Creates `path` and any missing parents with empty data, including a missing chroot.
  Expected<void> ensure_path(const std::string& path) override;
  Expected<void> ensure_shared_folder(const std::string& path) override;

  // Pipelined reads: one result per path, in order, with at most `window` requests in
  // flight. A path that vanished between listing and reading gives NotFound for that slot.
  std::vector<Expected<Node>> get_many(const std::vector<std::string>& paths,
                                       std::size_t window = 512) override;
  std::vector<Expected<std::vector<std::string>>> children_many(
      const std::vector<std::string>& paths, std::size_t window = 512) override;

  // Asynchronous reads that, with Watch::Yes, leave a watch whose notification reaches
  // Options::on_event. The callback always runs exactly once (inline if the request could
  // not be sent).
  void get_async(const std::string& path, Watch watch, NodeCallback done) override;
  void children_async(const std::string& path, Watch watch, ChildrenCallback done) override;
  // With Watch::Yes the watch is left even when the node does not exist (Created fires).
  void exists_async(const std::string& path, Watch watch, StatCallback done) override;
  // ZooKeeper's sync: the server this session is connected to catches up with the leader.
  // Everything the leader had committed when the sync was sent, and every notification
  // that causes, reaches this session before `done` runs.
  void sync_async(const std::string& path, DoneCallback done) override;


  struct Impl;  // completion plumbing, in client.cpp

 private:
  explicit Client(Options options);
  Expected<void> ensure_chroot();

  Options m_options;
  std::string m_hosts;
  std::string m_chroot;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace svcctl::zk
