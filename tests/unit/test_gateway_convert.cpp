// The gateway's conversion (lib/gateway convert.*): the provider's request body from the
// caller's, and the caller's answer from the provider's, for each pair of encodings.
#include <svcctl/codec/json.hpp>
#include <svcctl/codec/yar.hpp>
#include <svcctl/gateway/convert.hpp>

#include <doctest/doctest.h>

using namespace svcctl;
using namespace svcctl::gateway;
using convert::Answer;

namespace {

ApiRoute api_of(model::Encoding e, std::string method = "hello") {
  ApiRoute a;
  a.name = "hello";
  a.path = "/h";
  a.encoding = e;
  a.method = std::move(method);
  return a;
}

convert::Caller json_caller() { return {}; }

convert::Caller yar_caller(codec::Packager p, std::int64_t id, std::string_view method) {
  convert::Caller c;
  c.yar = true;
  c.packager = p;
  c.yar_id = id;
  c.yar_method = method;
  return c;
}

std::string yar_answer(std::int64_t id, codec::Packager p, codec::Value result, std::int64_t status = 0,
                       std::optional<codec::Value> error = std::nullopt) {
  codec::YarResponse r;
  r.id = id;
  r.status = status;
  r.result = std::move(result);
  r.error = std::move(error);
  return *codec::encode_response(r, p);
}

codec::YarResponse read_yar(std::string_view packet) {
  auto frame = codec::decode_frame(packet);
  REQUIRE(frame);
  auto r = codec::decode_response(*frame);
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("provider_request: JSON to JSON goes as it came; JSON to Yar is packed with the key as token") {
  codec::Value params;
  std::string out;
  std::uint64_t seq = 6;  // the next Yar id drawn is 7
  auto r = convert::provider_request(api_of(model::Encoding::Json), json_caller(), params, R"({"a":1})", "k", seq, out);
  REQUIRE(r);
  CHECK(r->as_sent);
  CHECK(seq == 6);  // no Yar id drawn
  CHECK(r->content_type == "application/json");
  CHECK(out.empty());

  r = convert::provider_request(api_of(model::Encoding::YarMsgpack, "say"), json_caller(), params, R"({"a":1})", "k",
                                seq, out);
  REQUIRE(r);
  CHECK_FALSE(r->as_sent);
  CHECK(r->yar_id == 7);
  CHECK(r->content_type == "application/x-www-form-urlencoded");
  auto frame = codec::decode_frame(out);
  REQUIRE(frame);
  CHECK(frame->packager == codec::Packager::Msgpack);
  CHECK(frame->header.token == "k");
  auto req = codec::decode_request(*frame);
  REQUIRE(req);
  CHECK(req->method == "say");
  CHECK(req->id == 7);
  CHECK(seq == 7);

  // Not a JSON object or array: refused, nothing sent.
  auto bad = convert::provider_request(api_of(model::Encoding::YarJson), json_caller(), params, "{", "", seq, out);
  CHECK_FALSE(bad);
  bad = convert::provider_request(api_of(model::Encoding::YarJson), json_caller(), params, "3", "", seq, out);
  CHECK_FALSE(bad);
  CHECK(seq == 7);  // refused before an id was drawn
}

TEST_CASE("provider_request: a Yar caller's packet goes as it came only to the same packager and method") {
  std::string out;
  std::uint64_t seq = 0;
  codec::Value params = codec::Value::array({1, "two"});
  auto same = yar_caller(codec::Packager::Msgpack, 42, "hello");
  auto r = convert::provider_request(api_of(model::Encoding::YarMsgpack), same, params, "packet", "", seq, out);
  REQUIRE(r);
  CHECK(r->as_sent);
  CHECK(r->yar_as_sent);
  CHECK(r->yar_id == 42);

  // Another packager: packed again, with the caller's id.
  r = convert::provider_request(api_of(model::Encoding::YarJson), same, params, "packet", "", seq, out);
  REQUIRE(r);
  CHECK_FALSE(r->as_sent);
  auto frame = codec::decode_frame(out);
  REQUIRE(frame);
  CHECK(frame->packager == codec::Packager::Json);
  CHECK(codec::decode_request(*frame)->id == 42);

  // To a JSON provider: the parameters as a JSON body (a list stays a list).
  params = codec::Value::array({1, "two"});
  r = convert::provider_request(api_of(model::Encoding::Json), same, params, "packet", "", seq, out);
  REQUIRE(r);
  CHECK_FALSE(r->as_sent);
  CHECK(out == R"([1,"two"])");
}

TEST_CASE("caller_answer: a JSON provider's answer") {
  std::string out;
  const auto json = api_of(model::Encoding::Json);
  convert::Request asked;
  Answer a = convert::caller_answer(json, json_caller(), asked, 201, R"({"ok":1})", "10.0.0.1:80", out);
  CHECK(a.kind == Answer::Kind::Provider);
  CHECK(a.status == 201);

  a = convert::caller_answer(json, json_caller(), asked, 404, R"({"no":1})", "10.0.0.1:80", out);
  CHECK(a.kind == Answer::Kind::Failure);
  CHECK(a.error == Err::ProviderError);
  CHECK(a.message == "10.0.0.1:80 answered HTTP 404");
  REQUIRE(a.extra);
  CHECK((*a.extra)["provider_status"] == 404);
  CHECK((*a.extra)["provider_body"]["no"] == 1);
  CHECK_FALSE(a.address_failed);

  // To a Yar caller: packed in its packager, with its id.
  auto caller = yar_caller(codec::Packager::Msgpack, 9, "hello");
  a = convert::caller_answer(json, caller, asked, 200, R"({"ok":true})", "p", out);
  REQUIRE(a.kind == Answer::Kind::Out);
  auto yr = read_yar(out);
  CHECK(yr.id == 9);
  CHECK(yr.result["ok"] == true);

  a = convert::caller_answer(json, caller, asked, 200, "not json", "p", out);
  CHECK(a.kind == Answer::Kind::Failure);
  CHECK(a.error == Err::BadResponse);
  CHECK(a.address_failed);
}

TEST_CASE("caller_answer: a Yar provider's answer, to JSON and Yar callers") {
  std::string out;
  const auto yar = api_of(model::Encoding::YarMsgpack);
  convert::Request asked;
  asked.yar_id = 5;
  // To a JSON caller: the result as JSON.
  Answer a = convert::caller_answer(yar, json_caller(), asked, 200,
                                    yar_answer(5, codec::Packager::Msgpack, codec::Value::object({{"x", 1}})), "p", out);
  REQUIRE(a.kind == Answer::Kind::Out);
  CHECK(a.content_type == "application/json");
  CHECK(out == R"({"x":1})");

  // A Yar exception: 502 with its message and fields.
  codec::Value ex = codec::Value::object({{"message", "boom"}, {"code", 3}, {"_type", "Exception"}});
  a = convert::caller_answer(yar, json_caller(), asked, 200, yar_answer(5, codec::Packager::Msgpack, nullptr, 64, ex),
                             "p", out);
  CHECK(a.kind == Answer::Kind::Failure);
  CHECK(a.error == Err::ProviderError);
  CHECK(a.message == "boom");
  CHECK((*a.extra)["exception"]["type"] == "Exception");
  CHECK((*a.extra)["yar_status"] == 64);

  // Another request's id, an unreadable packet, an HTTP error.
  a = convert::caller_answer(yar, json_caller(), asked, 200, yar_answer(6, codec::Packager::Msgpack, 1), "p", out);
  CHECK((a.kind == Answer::Kind::Failure && a.address_failed && a.message == "p answered another request's id"));
  a = convert::caller_answer(yar, json_caller(), asked, 200, "short", "p", out);
  CHECK((a.kind == Answer::Kind::Failure && a.error == Err::BadResponse && a.address_failed));
  a = convert::caller_answer(yar, json_caller(), asked, 500, "", "p", out);
  CHECK((a.kind == Answer::Kind::Failure && a.error == Err::ProviderError && !a.address_failed));

  // To a Yar caller: as it came when the packager matches (a Yar error counted, passed on)...
  auto caller = yar_caller(codec::Packager::Msgpack, 5, "hello");
  a = convert::caller_answer(yar, caller, asked, 200, yar_answer(5, codec::Packager::Msgpack, nullptr, 64, ex), "p",
                             out);
  CHECK(a.kind == Answer::Kind::Provider);
  CHECK(a.provider_error);
  // ...else packed again in the caller's.
  auto json_packer = yar_caller(codec::Packager::Json, 5, "hello");
  a = convert::caller_answer(yar, json_packer, asked, 200, yar_answer(5, codec::Packager::Msgpack, "hi"), "p", out);
  REQUIRE(a.kind == Answer::Kind::Out);
  CHECK(codec::decode_frame(out)->packager == codec::Packager::Json);
  CHECK(read_yar(out).result == "hi");
}
