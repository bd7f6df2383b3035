#include <svcctl/registry/holder.hpp>
#include <svcctl/registry/paths.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace svcctl::registry {

namespace {

// What the ZooKeeper threads tell the holding loop: session events, and what became of
// the node at our path (ours, watched while held; or a foreign one we wait for).
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<zk::SessionState> states;
  bool node_gone = false;     // the watched node went away (ours: removed by someone else)
  bool node_changed = false;  // our node's data changed: read it again
  bool read_failed = false;   // that read failed (not for a missing node): read again later
  std::optional<zk::Node> read;  // the latest read of our node (taken in with keep_edits)

  void push(zk::SessionState s) {
    {
      std::lock_guard lock(mu);
      states.push_back(s);
    }
    cv.notify_all();
  }
};

}  // namespace

Holder::Options Holder::for_address(const std::string& service, const model::HostPort& address,
                                    const model::AddressFields& fields) {
  Options o;
  o.path = paths::address(service, address.str());
  o.parent = paths::addresses(service);
  o.required = paths::service(service);
  o.required_what = fmt::format("service \"{}\"", service);
  o.keep_edits = true;
  o.data = [fields](bool up) {
    nlohmann::json d = model::AddressFields::defaults();
    d.update(fields.patch());
    d["status"] = up ? "up" : "down";
    return d.dump();
  };
  return o;
}

struct Holder::Impl {
  Options o;
  const std::string& path = o.path;

  Inbox inbox;  // before the client: its callbacks write here until the client is closed
  std::unique_ptr<zk::Session> client;
  Clock::time_point now{};
  bool started = false;
  bool healthy = false;     // the check's verdict (without a check: up from the start)
  int passes = 0;
  int failures = 0;
  bool held = false;        // our session's node exists
  bool written_up = false;  // the status the node holds
  // keep_edits: the node as last read or written, with the edits of others, and whether
  // someone else marked it down (kept down until someone marks it up).
  nlohmann::json known;
  std::int32_t known_version = -1;
  bool drained = false;
  // The data of a write of ours (create or set) whose answer did not come back: a node
  // found holding it holds our write, not someone else's. Empty when there is none.
  std::string unanswered;
  bool said_not_object = false;
  std::int64_t waiting_for = 0;  // another session holds the node: wait for it to go
  Clock::time_point next_check{};
  Clock::time_point retry_at{};  // next session attempt, or next look at a foreign node
  bool reconnecting = false;     // the session has lost its connection, since `lost_since`
  Clock::time_point lost_since{};

  explicit Impl(Options options) : o(std::move(options)), healthy(!o.check) {}

  void log(std::string_view m) const {
    if (o.log) o.log(m);
  }
  void session_log(std::string_view m) const {
    if (o.on_session) o.on_session(m);
    else log(m);
  }

  std::string data_for(bool up) const {
    if (o.keep_edits && known.is_object()) {
      nlohmann::json d = known;
      d["status"] = up ? "up" : "down";
      return d.dump();
    }
    return o.data ? o.data(up) : std::string();
  }
  bool want_up() const { return healthy && !drained; }

  // Our write of `data` was answered: the node holds it, at `version`.
  void wrote(const std::string& data, bool up, std::int32_t version) {
    unanswered.clear();
    written_up = up;
    if (o.keep_edits) {
      known = nlohmann::json::parse(data, nullptr, false);
      known_version = version;
    }
  }

  // keep_edits: takes in a read of our node. A status this holder did not write is someone
  // else's: "down" is a drain, kept until someone writes "up".
  void take_in(const zk::Node& n) {
    if (n.stat.version < known_version) return;  // older than our own last write
    known_version = n.stat.version;  // our next write goes over this one, whatever it holds
    auto j = nlohmann::json::parse(n.data, nullptr, false);
    if (!j.is_object()) {
      if (!said_not_object)
        log(fmt::format("{} holds something that is not a JSON object: it will be written over", path));
      said_not_object = true;
      written_up = !want_up();  // force the write
      return;
    }
    said_not_object = false;
    known = std::move(j);
    auto st = known.find("status");
    if (st == known.end() || !st->is_string()) return;
    const bool up = *st == "up";
    if (!unanswered.empty()) {
      const bool ours = n.data == unanswered;
      unanswered.clear();  // applied, or not and written over since
      if (ours) {
        written_up = up;
        return;
      }
    }
    if (up == written_up) return;
    written_up = up;  // what the node holds now
    if (!up && !drained) {
      drained = true;
      log(fmt::format("{} was marked down by someone else: kept down until it is marked up", path));
    } else if (up && drained) {
      drained = false;
      log(fmt::format("{} was marked up again", path));
    }
  }

  void watch_node() {
    client->get_async(path, zk::Watch::Yes, [this](zk::Code rc, zk::Node n) {
      {
        std::lock_guard lock(inbox.mu);
        if (rc == zk::Code::Ok) inbox.read = std::move(n);
        else if (rc == zk::Code::NoNode) inbox.node_gone = true;  // no watch left
        else inbox.read_failed = true;  // nor here: the loop reads again on a later turn
      }
      inbox.cv.notify_all();
    });
  }

  // Creates our node, or takes over one our own session holds; otherwise leaves `held`
  // false to try again later. Fails only on what waiting cannot fix.
  Expected<void> ensure_node() {
    const bool up = want_up();
    const std::string data = data_for(up);
    unanswered = data;
    auto created = client->create(path, data, zk::CreateMode::Ephemeral);
    if (created) {
      held = true;
      waiting_for = 0;
      wrote(data, up, 0);
      watch_node();
      log(fmt::format("registered {} ({}) in session 0x{:x}", path, up ? "up" : "down", client->session_id()));
      return {};
    }
    const Error& e = created.error();
    if (zk::is(e, zk::Code::NoNode)) {
      if (!o.required.empty()) {
        auto req = client->exists(o.required);
        if (req && !*req) return fail(ErrorKind::NotFound, fmt::format("{} not found", o.required_what));
      }
      return o.parent.empty() ? Expected<void>{} : client->ensure_path(o.parent);
    }
    if (!zk::is(e, zk::Code::NodeExists)) {
      if (e.kind == ErrorKind::PermissionDenied) return fail(e);
      return {};  // connection trouble: wait for the session
    }
    auto existing = client->exists(path);
    if (!existing || !*existing) return {};
    const zk::Stat& st = **existing;
    if (st.ephemeral_owner == 0)
      return fail(ErrorKind::Conflict, fmt::format("{} is registered persistently; remove it before holding it", path));
    if (st.ephemeral_owner == client->session_id()) return take_over(up);
    // Another session holds it: a previous holder whose session has not ended yet, or a
    // second holder. Wait for its node to go (the watch says when; a look every second
    // covers a lost notification), saying so once.
    if (waiting_for != st.ephemeral_owner)
      log(fmt::format("{} is held by session 0x{:x}; waiting for it to go", path, st.ephemeral_owner));
    waiting_for = st.ephemeral_owner;
    client->exists_async(path, zk::Watch::Yes, [](zk::Code, zk::Stat) {});
    retry_at = now + std::chrono::seconds(1);
    return {};
  }

  // The node is our own session's: a create of ours whose answer was lost went through,
  // `up` in it. It is held again. With keep_edits it is read first: take_in() tells our
  // unanswered write from an edit made since (a drain is kept), and until a read is taken
  // in nothing is written. Without, the status is written over.
  Expected<void> take_over(bool up) {
    held = true;
    waiting_for = 0;
    if (o.keep_edits) {
      written_up = up;  // what our create wrote: a status other than that is someone else's
      known_version = -1;
      if (auto n = client->get(path)) take_in(*n);
    } else {
      written_up = !up;
    }
    watch_node();
    return {};
  }

  bool open_session() {
    held = false;
    waiting_for = 0;  // a watch does not outlive its session
    client.reset();
    {
      std::lock_guard lock(inbox.mu);
      inbox.read.reset();
      inbox.node_changed = false;
      inbox.read_failed = false;
    }
    zk::Options zo = o.zk;
    zo.on_event = [this](zk::Event ev) {
      if (ev.type == zk::Event::Type::Session) {
        inbox.push(ev.state);
        return;
      }
      if (ev.type != zk::Event::Type::Changed && ev.type != zk::Event::Type::Deleted) return;
      {
        std::lock_guard lock(inbox.mu);
        (ev.type == zk::Event::Type::Changed ? inbox.node_changed : inbox.node_gone) = true;
      }
      inbox.cv.notify_all();
    };
    auto c = o.connect ? o.connect(zo) : zk::real_connector()(zo);
    if (!c) {
      log(fmt::format("cannot reach ZooKeeper: {}", c.error().message));
      return false;
    }
    client = std::move(*c);
    return true;
  }

  // What the ZooKeeper threads told since the last turn.
  struct News {
    std::deque<zk::SessionState> states;
    bool gone = false;
    bool changed = false;
    bool read_failed = false;
    std::optional<zk::Node> read;
  };
  News take_news() {
    News n;
    std::lock_guard lock(inbox.mu);
    n.states.swap(inbox.states);
    n.gone = std::exchange(inbox.node_gone, false);
    n.changed = std::exchange(inbox.node_changed, false);
    n.read_failed = std::exchange(inbox.read_failed, false);
    n.read.swap(inbox.read);
    return n;
  }

  // Session events; a session lost past its timeout given up on; a new one when due.
  void follow_session(const std::deque<zk::SessionState>& states) {
    for (auto s : states) {
      if (s == zk::SessionState::Expired || s == zk::SessionState::AuthFailed) {
        session_log("session expired: opening a new one");
        client.reset();
        held = false;
      }
      if (s == zk::SessionState::Connecting && !reconnecting) lost_since = now;
      reconnecting = s == zk::SessionState::Connecting;
    }
    // Unable to reconnect for longer than its timeout, the session cannot be alive on the
    // server: a rebuilt or restored server (behind the zxids it has seen) refuses it for
    // good. A new session starts at zxid 0.
    if (client && reconnecting && now - lost_since > client->negotiated_session_timeout()) {
      const auto lost = std::chrono::duration_cast<std::chrono::milliseconds>(now - lost_since);
      session_log(fmt::format("session 0x{:x} expired (could not reconnect for {} ms, longer than the session "
                              "timeout of {} ms): opening a new session",
                              client->session_id(), lost.count(), client->negotiated_session_timeout().count()));
      client.reset();
      held = false;
    }
    if (!client) reconnecting = false;
    if (!client && now >= retry_at) {
      if (open_session()) session_log(fmt::format("new session 0x{:x}", client->session_id()));
      else retry_at = now + std::chrono::seconds(1);
    }
  }

  void run_check() {
    if (!o.check || now < next_check) return;
    next_check = now + o.interval;
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

  // The node's status as it should be. keep_edits: only over the version read, so that an
  // edit made meanwhile is not lost.
  void write_status() {
    const bool up = want_up();
    const std::string data = data_for(up);
    unanswered = data;
    auto st = client->set(path, data, o.keep_edits ? known_version : -1);
    if (st) {
      wrote(data, up, st->version);
      log(fmt::format("{} is {}", path, up ? "up" : "down"));
    } else if (zk::is(st.error(), zk::Code::NoNode)) {
      unanswered.clear();
      held = false;  // someone removed it: re-create it on the next turn
    } else if (o.keep_edits && zk::is(st.error(), zk::Code::BadVersion)) {
      // Edited meanwhile, or our previous write went through unanswered: read it (take_in
      // tells which), then write again.
      if (auto n = client->get(path)) take_in(*n);
    }
  }

  Expected<void> turn(Clock::time_point t) {
    now = t;
    if (!started) {
      started = true;
      next_check = now;
      // A first failure to connect is not final for a sidecar: it keeps trying.
      if (!open_session()) retry_at = now + std::chrono::seconds(1);
    }
    News news = take_news();
    follow_session(news.states);
    // Our node removed by someone else: it is registered again. What others wrote to it
    // is taken in with keep_edits.
    if (client && held && news.gone) {
      held = false;
      log(fmt::format("{} was removed by someone else: registering it again", path));
    }
    if (client && held) {
      if (o.keep_edits && news.read && news.read->stat.ephemeral_owner == client->session_id()) take_in(*news.read);
      if (news.changed || news.read_failed) watch_node();
    }
    run_check();
    if (client && !held && (waiting_for == 0 || news.gone || now >= retry_at)) SVCCTL_CHECK(ensure_node());
    if (client && held && written_up != want_up() && !(o.keep_edits && known_version < 0)) write_status();
    return {};
  }

  void release() {
    if (!client || !held) return;
    auto existing = client->exists(path);
    if (existing && *existing && (*existing)->ephemeral_owner == client->session_id() && client->remove(path, -1)) {
      held = false;
      log(fmt::format("removed {}", path));
    }
  }
};

Holder::Holder(Options options) : m_impl(std::make_unique<Impl>(std::move(options))) {}
Holder::~Holder() = default;

Expected<void> Holder::turn(Clock::time_point now) { return m_impl->turn(now); }

void Holder::wait(std::chrono::milliseconds most, const std::atomic<bool>* stop) {
  Inbox& in = m_impl->inbox;
  std::unique_lock lock(in.mu);
  in.cv.wait_for(lock, most, [&] {
    return !in.states.empty() || in.node_gone || in.node_changed || in.read || (stop && stop->load());
  });
}

void Holder::release() { m_impl->release(); }

Expected<void> Holder::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    SVCCTL_CHECK(turn(Clock::now()));
    wait(std::chrono::milliseconds(std::min<long>(100, m_impl->o.interval.count())), &stop);
  }
  release();
  return {};
}

bool Holder::held() const { return m_impl->held; }
bool Holder::up() const { return m_impl->written_up; }
bool Holder::drained() const { return m_impl->drained; }
std::int64_t Holder::session_id() const { return m_impl->client ? m_impl->client->session_id() : 0; }

}  // namespace svcctl::registry
