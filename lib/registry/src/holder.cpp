#include <svcctl/registry/holder.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace svcctl::registry {

namespace {

using Clock = std::chrono::steady_clock;

// Session events, queued by the ZooKeeper thread for the holding loop.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<zk::SessionState> states;
  bool node_gone = false;  // a watched, foreign node at our path went away

  void push(zk::SessionState s) {
    {
      std::lock_guard lock(mu);
      states.push_back(s);
    }
    cv.notify_all();
  }
};

}  // namespace

Expected<void> Holder::run(const std::atomic<bool>& stop) {
  const Options& o = m_options;
  const std::string path = paths::address(o.service, o.address.str());
  auto log = [&](std::string_view m) {
    if (o.log) o.log(m);
  };

  Inbox inbox;
  std::unique_ptr<zk::Client> client;
  bool healthy = !o.check;  // without a check: up from the start
  int passes = 0;
  int failures = 0;
  bool held = false;        // our session's node exists
  bool written_up = false;  // the status the node holds
  auto next_check = Clock::now();

  auto data_for = [&](bool up) {
    nlohmann::json d = model::AddressFields::defaults();
    d.update(o.fields.patch());
    d["status"] = up ? "up" : "down";
    return d.dump();
  };

  // Creates our node, or takes over one our own session holds. Returns false to retry later.
  auto ensure_node = [&]() -> Expected<bool> {
    if (!client) return false;
    bool up = healthy;
    auto created = client->create(path, data_for(up), zk::CreateMode::Ephemeral);
    if (created) {
      held = true;
      written_up = up;
      log(fmt::format("registered {} ({}) in session 0x{:x}", path, up ? "up" : "down",
                      client->session_id()));
      return true;
    }
    const Error& e = created.error();
    if (zk::is(e, zk::Code::NoNode)) {
      auto svc = client->exists(paths::service(o.service));
      if (svc && !*svc)
        return fail(ErrorKind::NotFound, fmt::format("service \"{}\" not found", o.service));
      SVCCTL_CHECK(client->ensure_path(paths::addresses(o.service)));
      return false;
    }
    if (!zk::is(e, zk::Code::NodeExists)) {
      if (e.kind == ErrorKind::PermissionDenied) return fail(e);
      return false;  // connection trouble: wait for the session
    }
    auto existing = client->exists(path);
    if (!existing || !*existing) return false;
    const zk::Stat& st = **existing;
    if (st.ephemeral_owner == 0)
      return fail(ErrorKind::Conflict,
                  fmt::format("{} is registered persistently; remove it before holding it", path));
    if (st.ephemeral_owner == client->session_id()) {  // ours (e.g. after a reconnect)
      held = true;
      written_up = !up;  // force the status write below
      return true;
    }
    // Another session holds it: a previous holder whose session has not ended yet, or a
    // second holder. Wait for it to go.
    log(fmt::format("{} is held by session 0x{:x}; waiting for it to go", path, st.ephemeral_owner));
    client->exists_async(path, zk::Watch::Yes, [](int, zk::Stat) {});
    return false;
  };

  auto open_session = [&]() {
    held = false;
    client.reset();
    zk::Options zo = o.zk;
    zo.on_event = [&inbox](zk::Event ev) {
      if (ev.type == zk::Event::Type::Session) inbox.push(ev.state);
      else if (ev.type == zk::Event::Type::Deleted) {
        {
          std::lock_guard lock(inbox.mu);
          inbox.node_gone = true;
        }
        inbox.cv.notify_all();
      }
    };
    auto c = zk::Client::connect(zo);
    if (!c) {
      log(fmt::format("cannot reach ZooKeeper: {}", c.error().message));
      return false;
    }
    client = std::move(*c);
    return true;
  };

  if (!open_session()) {
    // Keep trying below; the first failure is not final for a sidecar.
  }
  auto retry_at = Clock::now();

  while (!stop.load()) {
    // Session events first.
    std::deque<zk::SessionState> states;
    bool gone = false;
    {
      std::lock_guard lock(inbox.mu);
      states.swap(inbox.states);
      gone = std::exchange(inbox.node_gone, false);
    }
    for (auto s : states) {
      if (s == zk::SessionState::Expired || s == zk::SessionState::AuthFailed) {
        log("session expired: opening a new one");
        client.reset();
        held = false;
      }
    }
    if (!client && Clock::now() >= retry_at) {
      if (open_session()) log(fmt::format("new session 0x{:x}", client->session_id()));
      else retry_at = Clock::now() + std::chrono::seconds(1);
    }

    // The health check.
    if (o.check && Clock::now() >= next_check) {
      next_check = Clock::now() + o.interval;
      if (o.check()) {
        failures = 0;
        if (!healthy && ++passes >= o.rise) {
          healthy = true;
          log("check passing: up");
        }
      } else {
        passes = 0;
        if (healthy && ++failures >= o.fall) {
          healthy = false;
          log("check failing: down");
        }
      }
    }

    // Bring the node in line.
    if (client && (!held || gone)) {
      SVCCTL_TRY(bool ok, ensure_node());
      (void)ok;
    }
    if (client && held && written_up != healthy) {
      auto st = client->set(path, data_for(healthy), -1);
      if (st) {
        written_up = healthy;
        log(fmt::format("{} is {}", path, healthy ? "up" : "down"));
      } else if (zk::is(st.error(), zk::Code::NoNode)) {
        held = false;  // someone removed it: re-create it on the next turn
      }
    }

    std::unique_lock lock(inbox.mu);
    inbox.cv.wait_for(lock, std::chrono::milliseconds(std::min<long>(100, o.interval.count())),
                      [&] { return !inbox.states.empty() || inbox.node_gone || stop.load(); });
  }

  if (client && held) {
    auto existing = client->exists(path);
    if (existing && *existing && (*existing)->ephemeral_owner == client->session_id())
      (void)client->remove(path, -1);
    log(fmt::format("removed {}", path));
  }
  return {};
}

}  // namespace svcctl::registry
