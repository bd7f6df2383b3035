#include <svcctl/registry/paths.hpp>

#include <doctest/doctest.h>

using namespace svcctl::registry;

TEST_CASE("paths: built and parsed back") {
  auto leaf = [](std::string_view p) { return paths::parse_leaf(p); };
  auto a = leaf(paths::address("user", "[::1]:80"));
  REQUIRE(a);
  CHECK(a->kind == "address");
  CHECK(a->service == "user");
  CHECK(a->name == "[::1]:80");
  auto s = leaf(paths::service("user"));
  REQUIRE(s);
  CHECK((s->kind == "service" && s->service == "user" && s->name == "user"));
  auto k = leaf(paths::key("k1"));
  REQUIRE(k);
  CHECK((k->kind == "key" && k->service.empty() && k->name == "k1"));
  auto acl = leaf(paths::acl("user", "k1"));
  REQUIRE(acl);
  CHECK((acl->kind == "acl" && acl->service == "user" && acl->name == "k1"));
  auto api = leaf(paths::api("user", "get"));
  REQUIRE(api);
  CHECK(api->kind == "api");
  auto g = leaf("/gateway/gw-1");
  REQUIRE(g);
  CHECK((g->kind == "gateway" && g->service.empty()));
  // containers, roots, too deep, outside the layout, malformed
  for (const char* p : {"/address/user", "/api/user", "/acl/user", "/service", "/key", "/",
                        "", "/service/a/b", "/address/u/h:1/x", "/zookeeper/quota", "/other/a",
                        "service/a", "//a", "/key/"})
    CHECK_MESSAGE(!leaf(p), p);
}
