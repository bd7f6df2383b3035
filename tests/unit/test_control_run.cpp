// What lib/control tells the gateway's admin listener of the registry view (status_of),
// and the gateway's default name.
#include <svcctl/control/cache_source.hpp>
#include <svcctl/control/run.hpp>

#include <doctest/doctest.h>

using namespace svcctl;

TEST_CASE("status_of: before the first publish, not started, and every kind of transition at zero") {
  registry::SessionsView sessions;
  auto st = control::status_of(nullptr, sessions, false);
  CHECK_FALSE(st.started);
  CHECK_FALSE(st.loaded);
  CHECK(st.sessions.empty());
  CHECK(st.session_events.size() == registry::SessionEvent::k_kinds);
}

TEST_CASE("status_of: the snapshot's state, every session and every kind of transition") {
  registry::Snapshot snap;
  snap.loaded = true;
  snap.session = zk::SessionState::Connected;
  snap.session_ids = {0x10, 0x11};
  snap.max_zxid = 0x2a;
  snap.generation = 7;
  registry::SessionsView sessions;
  sessions.sessions = {{0x10, zk::SessionState::Connected}, {0x11, zk::SessionState::Connecting}};
  sessions.events[static_cast<std::size_t>(registry::SessionEvent::Kind::Replaced)] = 2;
  sessions.events[static_cast<std::size_t>(registry::SessionEvent::Kind::Disconnected)] = 3;
  sessions.last_replaced = std::chrono::system_clock::time_point(std::chrono::seconds(5));
  sessions.last_replaced_reason = "refused";
  auto st = control::status_of(&snap, sessions, true);
  CHECK(st.started);
  CHECK(st.loaded);
  CHECK(st.connected);
  CHECK(st.session == "connected");
  CHECK(st.session_ids == std::vector<std::int64_t>{0x10, 0x11});
  CHECK(st.zxid == 0x2a);
  CHECK(st.generation == 7);
  CHECK(st.nodes == 0);
  CHECK(st.serving_last_known_good);
  CHECK_FALSE(st.last_change);  // never changed: no time to show
  REQUIRE(st.sessions.size() == 2);
  CHECK(st.sessions[1].id == 0x11);
  CHECK(st.sessions[1].state == "connecting");
  REQUIRE(st.session_events.size() == registry::SessionEvent::k_kinds);
  CHECK(st.session_events[0] == std::pair<std::string, std::uint64_t>{"disconnected", 3});
  CHECK(st.sessions_replaced == 2);
  CHECK(st.last_replaced_reason == "refused");

  snap.session = zk::SessionState::Expired;
  snap.stale_since = std::chrono::system_clock::now();
  st = control::status_of(&snap, sessions, false);
  CHECK_FALSE(st.connected);
  CHECK(st.session == "expired");
  CHECK(st.stale_since);
}

TEST_CASE("default_gateway_id: the short host name, in a name's characters, and the port") {
  CHECK(control::default_gateway_id("web-1.example.com", "0.0.0.0:8080") == "web-1-8080");
  CHECK(control::default_gateway_id("a b+c", "[::1]:80") == "a-b-c-80");
  CHECK(control::default_gateway_id("web+", "127.0.0.1:80") == "web-80");
  CHECK(control::default_gateway_id("", "127.0.0.1:9") == "gateway-9");
}
