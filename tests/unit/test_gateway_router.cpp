// Routing a call (lib/gateway router.*): the target's parts, and the verdict from the
// route table: the interface, the caller's key and ACL, refusals answered or only counted,
// the rate.
#include <svcctl/gateway/router.hpp>

#include <doctest/doctest.h>

#include <memory>

using namespace svcctl;
using namespace svcctl::gateway;

namespace {

struct Table {
  RouteTable table;
  std::shared_ptr<ServiceRoute> svc = std::make_shared<ServiceRoute>();
  std::shared_ptr<KeyTable> keys = std::make_shared<KeyTable>();
  Table() {
    svc->name = "s";
    AddrRoute a;
    a.name = "10.0.0.1:80";
    svc->addrs.push_back(a);
    svc->candidates = 1;
    ApiRoute api;
    api.name = "hello";
    api.path = "/h";
    svc->apis.push_back(api);
    (*keys)["good"] = true;
    (*keys)["off"] = false;
  }
  AclRoute& acl(const std::string& key, bool shadow = false) {
    AclRoute& a = svc->acls[key];
    a.shadow = shadow;
    a.bucket = std::make_shared<RateBucket>();
    svc->enforcing = svc->enforcing || !shadow;
    return a;
  }
  router::Verdict route(std::string_view key, std::string_view iface = "hello", bool require_keys = false) {
    table.keys = keys;
    return router::route(table, *svc, {"s", iface, key, require_keys, 1'000'000'000, {}});
  }
};

}  // namespace

TEST_CASE("parse_target: service, interface, query") {
  auto t = router::parse_target("/s/hello?key=k&x=1");
  CHECK(t.service == "s");
  CHECK(t.iface == "hello");
  CHECK(t.query == "key=k&x=1");
  CHECK(router::query_param(t.query, "key") == "k");
  CHECK(router::query_param(t.query, "x") == "1");
  CHECK(router::query_param(t.query, "y").empty());
  t = router::parse_target("/s/hello/");
  CHECK(t.iface == "hello");
  t = router::parse_target("/s");
  CHECK(t.service == "s");
  CHECK(t.iface.empty());
  t = router::parse_target("/");
  CHECK(t.service.empty());
  t = router::parse_target("s/hello");
  CHECK(t.service.empty());
  CHECK(router::request_id_ok("abc-1"));
  CHECK_FALSE(router::request_id_ok(""));
  CHECK_FALSE(router::request_id_ok("a b"));
  CHECK_FALSE(router::request_id_ok(std::string(129, 'a')));
}

TEST_CASE("route: an open service, its interface, down states and no address") {
  Table t;
  auto v = t.route("");
  CHECK_FALSE(v.refusal);
  REQUIRE(v.api);
  CHECK(v.api->path == "/h");
  v = t.route("", "nope");
  CHECK(v.refusal == Err::UnknownInterface);
  CHECK(v.message == "service \"s\" has no interface \"nope\"");
  t.svc->apis[0].up = false;
  CHECK(t.route("").refusal == Err::InterfaceDown);
  t.svc->up = false;
  CHECK(t.route("").refusal == Err::ServiceDown);
  t.svc->up = true;
  t.svc->apis[0].up = true;
  t.svc->candidates = 0;
  CHECK(t.route("").refusal == Err::NoUpstream);
  // An unknown key on an open service is no refusal; an enabled one is counted.
  t.svc->candidates = 1;
  CHECK_FALSE(t.route("stranger").refusal);
  CHECK(t.route("good").key_enabled);
  CHECK_FALSE(t.route("off").key_enabled);
}

TEST_CASE("route: keys and ACLs, enforced") {
  Table t;
  t.acl("good").all_apis = true;
  CHECK(t.route("").refusal == Err::MissingKey);
  CHECK(t.route("stranger").refusal == Err::UnknownKey);
  CHECK(t.route("off").refusal == Err::KeyDisabled);
  (*t.keys)["other"] = true;
  auto v = t.route("other");
  CHECK(v.refusal == Err::Forbidden);
  CHECK(v.message == "key \"other\" may not call service \"s\"");
  v = t.route("good");
  CHECK_FALSE(v.refusal);
  CHECK(v.acl == t.svc->find_acl("good"));
  // An ACL for some interfaces only.
  AclRoute& some = t.acl("good");
  some.all_apis = false;
  some.apis = {"other"};
  CHECK(t.route("good").refusal == Err::Forbidden);
  // A key is shown cut to 64 bytes.
  v = t.route(std::string(100, 'k'));
  CHECK(v.message == "key \"" + std::string(64, 'k') + "\" is not registered");
}

TEST_CASE("route: shadow ACLs count the first would-be refusal and answer none") {
  Table t;
  t.acl("good", true);
  auto v = t.route("");
  CHECK_FALSE(v.refusal);
  CHECK(v.shadow == Err::MissingKey);
  // A refusal that is not the ACL's still answers.
  v = t.route("", "nope");
  CHECK(v.shadow == Err::MissingKey);
  CHECK(v.refusal == Err::UnknownInterface);
  // --require-keys enforces whatever the ACLs say.
  CHECK(t.route("", "hello", true).refusal == Err::MissingKey);
}

TEST_CASE("route: a key's rate, its burst at once, then refusals with the decision") {
  Table t;
  AclRoute& a = t.acl("good");
  a.rate = 1.0;
  a.burst = 2;
  auto v = t.route("good");
  CHECK_FALSE(v.refusal);
  REQUIRE(v.rate);
  CHECK(v.rate->remaining == 1);
  CHECK_FALSE(t.route("good").refusal);
  v = t.route("good");
  CHECK(v.refusal == Err::RateLimited);
  REQUIRE(v.rate);
  CHECK_FALSE(v.rate->allowed);
  CHECK(v.message == "key \"good\" is over its rate for \"s\": 1/s, burst 2, shared by 1 gateway");
  // In shadow mode: counted, never refused, no headers.
  a.shadow = true;
  t.svc->enforcing = false;
  v = t.route("good");
  CHECK_FALSE(v.refusal);
  CHECK(v.shadow == Err::RateLimited);
  CHECK_FALSE(v.rate);
}

TEST_CASE("route: the version pin is the key's ACL's, else the caller's; a shadow ACL pins too") {
  Table t;
  t.table.keys = t.keys;
  auto route = [&](std::string_view key, std::string_view asked) {
    return router::route(t.table, *t.svc, {"s", "hello", key, false, 1'000'000'000, asked});
  };
  CHECK(route("", "").version.empty());
  CHECK(route("", "v2").version == "v2");
  t.acl("good", true).version = "v1";
  CHECK(route("good", "v2").version == "v1");
  CHECK(route("good", "").version == "v1");
  t.acl("off").version = "v9";  // an enforcing ACL: a call without a key is refused, and pinned nowhere
  auto refused = route("", "v2");
  CHECK(refused.refusal == Err::MissingKey);
  CHECK(refused.version.empty());
}
