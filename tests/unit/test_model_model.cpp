#include <svcctl/model/model.hpp>

#include <doctest/doctest.h>

using namespace svcctl;
using namespace svcctl::model;

TEST_CASE("names") {
  CHECK(validate_name("service", "user-api_v2.1"));
  CHECK(validate_name("service", std::string(128, 'a')));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "a:b", "ü", "a\n"}) {
    auto r = validate_name("service", bad);
    REQUIRE_MESSAGE(!r, bad);
    CHECK(r.error().kind == ErrorKind::Usage);
  }
  auto r = validate_name("interface", std::string(129, 'a'));
  REQUIRE(!r);
  CHECK(r.error().message.find("invalid interface name") == 0);
}

TEST_CASE("host:port") {
  auto v4 = parse_host_port("10.0.0.5:8080");
  REQUIRE(v4);
  CHECK(v4->host == "10.0.0.5");
  CHECK(v4->port == 8080);
  CHECK(v4->str() == "10.0.0.5:8080");
  auto v6 = parse_host_port("[::1]:80");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->str() == "[::1]:80");
  auto name = parse_host_port("svc-1.dc.example:65535");
  REQUIRE(name);
  CHECK(name->port == 65535);
  for (const char* bad : {"", "host", "host:", ":80", "host:0", "host:65536", "host:8o", "::1:80",
                          "[::1]", "[::1]:", "[zz]:80", "a..b:1", "-a:1", "a b:1", "h:+80"}) {
    CHECK_MESSAGE(!parse_host_port(bad), bad);
  }
}

TEST_CASE("weights, rates and positive numbers") {
  CHECK(*parse_weight("0") == 0);
  CHECK(*parse_weight("1000000") == 1000000);
  for (const char* bad : {"", "-1", "1.5", "1e3", "abc", " 1", "1000001", "0x10",
                          "99999999999999999999"})
    CHECK_MESSAGE(!parse_weight(bad), bad);
  CHECK(*parse_rate("0.5") == doctest::Approx(0.5));
  for (const char* bad : {"", "0", "-1", "nan", "inf", "1/s"}) CHECK_MESSAGE(!parse_rate(bad), bad);
  CHECK(*parse_positive("burst", "7", 10) == 7);
  CHECK(!parse_positive("burst", "0", 10));
  CHECK(!parse_positive("burst", "11", 10));
}

TEST_CASE("status, encoding, path, name lists") {
  CHECK(*parse_status("down") == Status::Down);
  CHECK(!parse_status("DOWN"));
  CHECK(*parse_encoding("yar-msgpack") == Encoding::YarMsgpack);
  CHECK(!parse_encoding("msgpack"));
  CHECK(validate_api_path("/a/b?c=1"));
  CHECK(!validate_api_path("a"));
  CHECK(!validate_api_path("/a b"));
  CHECK(*parse_name_list("interface", "*") == std::vector<std::string>{"*"});
  CHECK(*parse_name_list("interface", "a,b") == std::vector<std::string>{"a", "b"});
  CHECK(!parse_name_list("interface", "a,"));
  CHECK(!parse_name_list("interface", "a,*"));
}

TEST_CASE("lenient decoding keeps going and reports each problem") {
  auto ok = decode_address("s", "h:1", R"({"dc":"bj","weight":5,"status":"down","extra":1})");
  CHECK(ok.problems.empty());
  CHECK(ok.value.dc == "bj");
  CHECK(ok.value.weight == 5);
  CHECK(ok.value.status == Status::Down);

  auto empty = decode_address("s", "h:1", "");
  CHECK(empty.problems.empty());
  CHECK(empty.value.weight == k_default_weight);
  CHECK(empty.value.status == Status::Up);

  auto garbage = decode_address("s", "h:1", "{oops");
  REQUIRE(garbage.problems.size() == 1);
  CHECK(garbage.problems[0] == "data is not valid JSON");

  auto wrong = decode_address("s", "h:1", R"({"weight":-1,"status":"maybe","tags":"x","dc":3})");
  CHECK(wrong.value.weight == k_default_weight);
  CHECK(wrong.value.status == Status::Down);  // unknown status is never routed to
  CHECK(wrong.value.tags == std::vector<std::string>{"x"});
  CHECK(wrong.problems.size() == 3);  // weight, status, dc

  auto huge = decode_address("s", "h:1", R"({"weight":18446744073709551615})");
  CHECK(huge.value.weight == k_default_weight);
  CHECK(huge.problems.size() == 1);

  auto api = decode_api("s", "i", R"({"encoding":"xml","timeout_ms":0})");
  CHECK(api.value.encoding == Encoding::Json);
  CHECK(!api.value.timeout_ms);
  CHECK(api.problems.size() == 3);  // path missing, encoding, timeout

  auto acl = decode_acl("s", "k", R"({"rate":"fast","apis":["a"],"shadow":true})");
  CHECK(!acl.value.rate);
  CHECK(acl.value.apis == std::vector<std::string>{"a"});
  CHECK(acl.value.shadow);
  CHECK(acl.problems.size() == 1);

  auto list = decode_service("s", "[1]");
  CHECK(list.problems == std::vector<std::string>{"data is JSON but not an object"});

  auto gw = decode_gateway("gw-1", R"({"listen":"127.0.0.1:8080","admin":"127.0.0.1:9901","dc":"bj",)"
                                   R"("started":"2024-05-01T10:00:00Z","version":"0.1.0","pid":42,"later":true})");
  CHECK(gw.problems.empty());
  CHECK(gw.value.id == "gw-1");
  CHECK(gw.value.admin == "127.0.0.1:9901");
  CHECK(gw.value.pid == 42);
  CHECK(to_json(gw.value)["listen"] == "127.0.0.1:8080");
  auto odd = decode_gateway("gw-2", R"({"admin":9901,"pid":-3})");
  CHECK(odd.value.admin.empty());
  CHECK(odd.value.pid == 0);
  CHECK(odd.problems.size() == 2);
}

TEST_CASE("patches hold only the given fields") {
  AddressFields f;
  f.weight = 7;
  CHECK(f.patch() == nlohmann::json{{"weight", 7}});
  CHECK(AddressFields::defaults() ==
        nlohmann::json{{"dc", ""}, {"weight", 100}, {"status", "up"}});
  ApiFields a;
  a.encoding = Encoding::YarJson;
  a.idempotent = false;
  CHECK(a.patch() == nlohmann::json{{"encoding", "yar-json"}, {"idempotent", false}});
  CHECK(ServiceFields{}.patch() == nlohmann::json::object());
}

TEST_CASE("listing form") {
  Api api;
  api.service = "s";
  api.name = "find";
  api.path = "/f";
  auto j = to_json(api);
  CHECK(j["method"] == "find");  // defaults to the interface name
  CHECK(j["timeout_ms"].is_null());
  CHECK(j["encoding"] == "json");
}

TEST_CASE("routable: up, weight above 0, and a host:port to connect to") {
  model::Address a;
  a.address = "10.0.0.1:80";
  CHECK(model::routable(a));
  a.weight = 0;
  CHECK_FALSE(model::routable(a));
  a.weight = 1;
  a.status = model::Status::Down;
  CHECK_FALSE(model::routable(a));
  a.status = model::Status::Up;
  a.address = "not-an-address";
  CHECK_FALSE(model::routable(a));
  a.address = "[::1]:8080";
  CHECK(model::routable(a));
}

TEST_CASE("decode_service: a split by version, sorted; a bad one is a problem and no split; stickiness") {
  auto d = decode_service("s", R"({"split": {"v2": 10, "v1": 90, "": 0}, "sticky": "header:X-User"})");
  CHECK(d.problems.empty());
  REQUIRE(d.value.split.size() == 3);
  CHECK(d.value.split[0] == VersionShare{"", 0});
  CHECK(d.value.split[1] == VersionShare{"v1", 90});
  CHECK(d.value.split[2] == VersionShare{"v2", 10});
  CHECK(d.value.sticky.by == Sticky::By::Header);
  CHECK(d.value.sticky.header == "X-User");
  CHECK(to_json(d.value)["split"] == nlohmann::json{{"", 0}, {"v1", 90}, {"v2", 10}});
  CHECK(to_json(d.value)["sticky"] == "header:X-User");
  // Shares are relative: 3:1 is a split as good as 75:25.
  CHECK(decode_service("s", R"({"split": {"a": 3, "b": 1}})").problems.empty());
  for (const char* bad : {R"({"split": [1]})", R"({"split": {"v1": -1, "v2": 101}})", R"({"split": {"v1": 0}})",
                          R"({"split": {"v 1": 100}})", R"({"split": {"v1": 1.5}})", R"({"split": {"v1": 101}})"}) {
    auto b = decode_service("s", bad);
    CHECK_MESSAGE(b.value.split.empty(), bad);
    CHECK_MESSAGE(b.problems.size() == 1, bad);
  }
  auto st = decode_service("s", R"({"sticky": "cookie"})");
  CHECK(st.value.sticky.by == Sticky::By::None);
  CHECK(st.problems.size() == 1);
  CHECK(parse_sticky("key")->by == Sticky::By::Key);
  CHECK(!parse_sticky("header:"));
  CHECK(!parse_sticky("header:a b"));
  CHECK(to_string(*parse_sticky("header:X-Tenant")) == "header:X-Tenant");
}

TEST_CASE("decode_acl: a version pin, refused when it is not a version name") {
  CHECK(decode_acl("s", "k", R"({"version": "v2"})").value.version == "v2");
  auto bad = decode_acl("s", "k", R"({"version": "v 2"})");
  CHECK(bad.value.version.empty());
  CHECK(bad.problems.size() == 1);
}
