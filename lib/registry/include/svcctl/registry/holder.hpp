// Self-registration (DESIGN §2): holds an ephemeral node for as long as this process lives
// and its health check passes: a provider's /address/{svc}/{host:port} (a sidecar), or a
// gateway's /gateway/{id}.
#pragma once

#include <svcctl/core/expected.hpp>
#include <svcctl/model/model.hpp>
#include <svcctl/zk/session.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace svcctl::registry {

class Holder {
 public:
  struct Options {
    zk::Options zk;
    zk::Connector connect;  // opens its sessions; by default the real client
    std::string path;      // the ephemeral node
    std::string parent;    // created when missing (unless `required` is missing)
    std::string required;  // when set, a node that must exist (else NotFound), e.g. the service
    std::string required_what;  // how messages name it: "service \"hello\""
    // The node's data, for a passing (true) or failing check.
    std::function<std::string(bool up)> data;
    // The node is a JSON object whose "status" this holder owns ("up"/"down"), and which
    // others may edit while it is held (an operator's `register`, `drain`): their edits are
    // kept in every later write and re-creation, and a "down" written by someone else (a
    // drain) stays until someone marks it "up" again, whatever the check says.
    bool keep_edits = false;
    // The health check; empty means always healthy. Called on the holding thread.
    std::function<bool()> check;
    std::chrono::milliseconds interval{2000};
    int rise = 2;  // consecutive passes before the address is up
    int fall = 3;  // consecutive failures before it is down
    // Told of every transition ("registered", "down: check failed", "new session", ...).
    std::function<void(std::string_view)> log;
    // Told instead of `log` when set: the session ending (expired, or given up on after it
    // could not reconnect for longer than its timeout) and the new one opened.
    std::function<void(std::string_view)> on_session;
  };

  // An address node: /address/{svc}/{host:port} with the given fields and a status that
  // follows the check; the service must exist.
  static Options for_address(const std::string& service, const model::HostPort& address,
                             const model::AddressFields& fields);

  using Clock = std::chrono::steady_clock;

  explicit Holder(Options options);
  ~Holder();  // closes its session: the node goes with it
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;

  // Runs until `stop` becomes true, then removes the node (if this session holds it) and
  // returns. Fails at once on what waiting cannot fix: a missing service (NotFound), a
  // persistent node at the address (Conflict), a permission error. ZooKeeper being away
  // is waited out; a session that could not reconnect for longer than its timeout is taken
  // as expired and replaced by a new one (a rebuilt server refuses it for good).
  // run() is turn() and wait() in a loop, then release().
  Expected<void> run(const std::atomic<bool>& stop);

  // One turn of the holding loop as of `now`: takes in what the session told (its events,
  // news of the node), opens a session when due or gives up on one lost past its timeout,
  // runs the check when due, and brings the node in line (creates it, takes over one this
  // session holds, writes the status). Fails as run() does.
  Expected<void> turn(Clock::time_point now);
  // Waits up to `most` for news from ZooKeeper, or for `stop`.
  void wait(std::chrono::milliseconds most, const std::atomic<bool>* stop = nullptr);
  // Removes the node if this session holds it.
  void release();

  // Where it stands.
  bool held() const;            // this session's node exists, as far as it knows
  bool up() const;              // the status it last wrote or read there
  bool drained() const;         // someone else marked the node down: kept down
  std::int64_t session_id() const;  // 0 without a session

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace svcctl::registry
