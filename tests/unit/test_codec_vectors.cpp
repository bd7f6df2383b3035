// Every captured Yar packet (tests/data/yar, from a real PHP Yar client and server)
// decodes to what MANIFEST.md says; re-encoding what the real peers sent reproduces their
// bytes; the crafted bad requests fail the way the real server failed them.
#include <svcctl/codec/params.hpp>
#include <svcctl/codec/yar.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

using namespace svcctl;
using namespace svcctl::codec;

namespace {

const std::filesystem::path k_dir = SVCCTL_TEST_DATA "/yar";

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Case {
  std::string name;
  Value request;   // "Decoded request" of the manifest, or null
  Value response;  // "Decoded response", or null
};

// The manifest's "### `name`" sections and their "- Decoded ...: `{json}`" lines.
std::vector<Case> manifest() {
  std::istringstream in(slurp(k_dir / "MANIFEST.md"));
  std::vector<Case> cases;
  std::string line;
  auto json_of = [](const std::string& l) {
    auto a = l.find('`');
    auto b = l.rfind('`');
    return Value::parse(l.substr(a + 1, b - a - 1));
  };
  while (std::getline(in, line)) {
    if (line.rfind("### `", 0) == 0) {
      cases.push_back({line.substr(5, line.size() - 6), nullptr, nullptr});
    } else if (!cases.empty() && line.rfind("- Decoded request: `", 0) == 0) {
      cases.back().request = json_of(line);
    } else if (!cases.empty() && line.rfind("- Decoded response: `", 0) == 0) {
      cases.back().response = json_of(line);
    }
  }
  return cases;
}

bool is_crafted(const std::string& name) { return name.rfind("crafted-", 0) == 0; }

void check_header(const YarFrame& f, const Value& expected) {
  const Value& h = expected["header"];
  CHECK(f.header.id == h["id"].get<std::uint32_t>());
  CHECK(f.header.version == h["version"].get<std::uint16_t>());
  CHECK(f.header.reserved == h["reserved"].get<std::uint32_t>());
  CHECK(f.header.provider == h["provider"].get<std::string>());
  CHECK(f.header.token == h["token"].get<std::string>());
  CHECK(f.header.body_len == h["body_len"].get<std::uint32_t>());
  std::string name = expected["packager"];
  for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(packager_name(f.packager) == name);
}

}  // namespace

TEST_CASE("the manifest lists every captured packet") {
  auto cases = manifest();
  CHECK(cases.size() == 27);
  std::size_t bins = 0;
  for (const auto& e : std::filesystem::directory_iterator(k_dir))
    bins += e.path().extension() == ".bin";
  CHECK(bins == 53);
}

TEST_CASE("captured requests decode to what the manifest says") {
  int checked = 0;
  for (const auto& c : manifest()) {
    if (c.request.is_null() || !c.request.contains("body")) continue;
    CAPTURE(c.name);
    std::string bytes = slurp(k_dir / (c.name + "-request.bin"));
    auto frame = decode_frame(bytes);
    if (c.request["header"]["magic"] != "0x80DFEC60") {
      CHECK(!frame);
      continue;
    }
    REQUIRE(frame);
    check_header(*frame, c.request);
    const Value& body = c.request["body"];
    auto req = decode_request(*frame);
    if (!body.contains("p")) {
      REQUIRE(!req);
      continue;
    }
    REQUIRE(req);
    CHECK(req->id == body["i"].get<std::int64_t>());
    CHECK(req->method == body["m"].get<std::string>());
    CHECK(req->params == body["p"]);
    ++checked;
  }
  CHECK(checked == 20);
}

TEST_CASE("captured responses decode to what the manifest says") {
  int checked = 0;
  for (const auto& c : manifest()) {
    if (c.response.is_null() || !c.response.contains("body")) continue;
    CAPTURE(c.name);
    std::string bytes = slurp(k_dir / (c.name + "-response.bin"));
    auto frame = decode_frame(bytes);
    REQUIRE(frame);
    check_header(*frame, c.response);
    const Value& body = c.response["body"];
    auto res = decode_response(*frame);
    REQUIRE(res);
    CHECK(res->id == body["i"].get<std::int64_t>());
    CHECK(res->status == body["s"].get<std::int64_t>());
    CHECK(res->output == body.value("o", std::string()));
    if (res->status == 0) {
      CHECK(res->result == body["r"]);
      CHECK(!res->error);
    } else {
      REQUIRE(res->error);
      CHECK(*res->error == body["e"]);
    }
    ++checked;
  }
  CHECK(checked == 26);
}

TEST_CASE("re-encoding what the real client and server sent reproduces their bytes") {
  int checked = 0;
  for (const auto& c : manifest()) {
    if (is_crafted(c.name) || c.request.is_null() || !c.request.contains("body")) continue;
    CAPTURE(c.name);
    std::string req_bytes = slurp(k_dir / (c.name + "-request.bin"));
    auto frame = decode_frame(req_bytes);
    REQUIRE(frame);
    auto req = decode_request(*frame);
    REQUIRE(req);
    auto again = encode_request(*req, frame->packager, frame->header.provider, frame->header.token);
    REQUIRE(again);
    CHECK(*again == req_bytes);

    std::string res_bytes = slurp(k_dir / (c.name + "-response.bin"));
    auto rframe = decode_frame(res_bytes);
    REQUIRE(rframe);
    auto res = decode_response(*rframe);
    REQUIRE(res);
    auto res_again = encode_response(*res, rframe->packager, rframe->header.provider);
    REQUIRE(res_again);
    CHECK(*res_again == res_bytes);
    ++checked;
  }
  CHECK(checked == 17);  // 9 JSON and 8 msgpack exchanges
}

TEST_CASE("crafted requests: our verdict is the real server's") {
  int checked = 0;
  for (const auto& c : manifest()) {
    if (!is_crafted(c.name)) continue;
    CAPTURE(c.name);
    std::string bytes = slurp(k_dir / (c.name + "-request.bin"));
    const Value& reply = c.response["body"];
    auto frame = decode_frame(bytes);
    Expected<YarRequest> req = frame ? decode_request(*frame) : Expected<YarRequest>(fail(frame.error()));
    if (reply["s"] == 0) {
      CHECK(req);
    } else {
      REQUIRE(!req);
      CHECK(req.error().code == reply["s"].get<int>());
      // PHP appends the first bytes it saw to "malformed request header"; the rest match.
      CHECK(reply["e"].get<std::string>().rfind(req.error().message, 0) == 0);
    }
    ++checked;
  }
  CHECK(checked == 9);
}

TEST_CASE("a GET's HTML info page is not a Yar message") {
  std::string html = slurp(k_dir / "get-info-response.bin");
  CHECK(!has_yar_magic(html));
  CHECK(!decode_frame(html));
}

TEST_CASE("parameter mapping on the captured calls") {
  // crafted-params-map sends "p" as a map; PHP passes its values by position.
  // The frame's payload is a view into the bytes: keep them alive.
  std::string map_bytes = slurp(k_dir / "crafted-params-map-request.bin");
  auto frame = decode_frame(map_bytes);
  REQUIRE(frame);
  auto req = decode_request(*frame);
  REQUIRE(req);
  CHECK(json_from_yar_params(req->params) == Value::parse(R"(["first","second"])"));
  // msgpack-echo sends one map: that is the JSON body a JSON provider gets.
  std::string echo_bytes = slurp(k_dir / "msgpack-echo-request.bin");
  auto echo = decode_frame(echo_bytes);
  REQUIRE(echo);
  auto ereq = decode_request(*echo);
  REQUIRE(ereq);
  Value body = json_from_yar_params(ereq->params);
  CHECK(body.is_object());
  CHECK(body["name"] == "svc-α/β ✓");
  auto back = yar_params_from_json(body);
  REQUIRE(back);
  CHECK(*back == ereq->params);
}
