// The fuzz targets' bodies, shared by the libFuzzer entry points (fuzz_*.cpp) and by the
// unit test that replays every saved crash input (tests/fuzz/regressions/<target>/).
// Each returns normally for any input, and traps when an invariant breaks.
#pragma once

#include <svcctl/codec/json.hpp>
#include <svcctl/codec/msgpack.hpp>
#include <svcctl/codec/params.hpp>
#include <svcctl/codec/yar.hpp>
#include <svcctl/gateway/convert.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace svcctl::fuzz {

inline void require(bool ok) {
  if (!ok) __builtin_trap();
}

// Encoding is idempotent through a decode: encode(decode(encode(v))) == encode(v).
inline void check_msgpack_roundtrip(const codec::Value& v) {
  auto once = codec::value_to_msgpack(v);
  if (!once) return;  // too deep: refused, fine
  auto back = codec::msgpack_to_value(*once);
  require(back.has_value());
  auto twice = codec::value_to_msgpack(*back);
  require(twice.has_value() && *twice == *once);
}

// Any bytes as an HTTP body sent to the gateway: a Yar request or response.
inline void yar(std::string_view data) {
  auto frame = codec::decode_frame(data);
  if (!frame) {
    require(frame.error().code == 1 || frame.error().code == 2);
    return;
  }
  if (auto req = codec::decode_request(*frame)) {
    auto again = codec::encode_request(*req, frame->packager);
    require(again.has_value());
    auto f2 = codec::decode_frame(*again);
    require(f2.has_value());
    auto r2 = codec::decode_request(*f2);
    require(r2.has_value() && r2->method == req->method && r2->id == req->id);
    (void)codec::json_from_yar_params(req->params);
  }
  if (auto res = codec::decode_response(*frame)) {
    auto again = codec::encode_response(*res, codec::Packager::Msgpack);
    require(again.has_value());
    (void)codec::to_json_text(res->result);
  }
}

// Any bytes as a msgpack payload from a provider.
inline void msgpack(std::string_view data) {
  auto v = codec::msgpack_to_value(data);
  if (!v) return;
  (void)codec::to_json_text(*v);
  (void)codec::to_php_json_text(*v);
  check_msgpack_roundtrip(*v);
}

// Any bytes as a JSON body from a caller.
inline void json(std::string_view data) {
  auto v = codec::parse_json(data);
  if (!v) return;
  auto text = codec::to_json_text(*v);
  auto again = codec::parse_json(text);
  require(again.has_value());
  require(codec::to_json_text(*again) == text);
  check_msgpack_roundtrip(*v);
  if (auto p = codec::yar_params_from_json(*v)) (void)codec::json_from_yar_params(*p);
}

// Any bytes through the gateway's conversion, both ways: the first byte chooses the
// provider's encoding, the caller's kind and the provider's HTTP status; the rest is used
// both as the caller's body and as the provider's answer. What comes out is what it says
// it is.
inline void convert(std::string_view data) {
  if (data.empty()) return;
  const auto pick = static_cast<unsigned char>(data.front());
  data.remove_prefix(1);
  gateway::ApiRoute api;
  api.method = "m";
  api.encoding = pick % 3 == 0 ? model::Encoding::Json : pick % 3 == 1 ? model::Encoding::YarJson : model::Encoding::YarMsgpack;
  gateway::convert::Caller caller;
  codec::Value params = codec::Value::array();
  // 0: a JSON caller; 1: a Yar caller (its packet the body) calling, usually, another method
  // than the interface's; 2: the same, calling the interface's method (its packet may go as sent).
  const unsigned kind = (pick / 3) % 3;
  std::string method;  // the Yar caller's, outliving the block (caller.yar_method views it)
  if (kind != 0) {
    auto frame = codec::decode_frame(data);
    if (!frame) return;  // the data plane answers a bad packet before converting
    auto req = codec::decode_request(*frame);
    if (!req) return;
    caller.yar = true;
    caller.packager = frame->packager;
    caller.yar_id = req->id;
    method = req->method;
    if (kind == 2) api.method = method;
    caller.yar_method = method;
    params = std::move(req->params);
  }
  std::string out;
  std::uint64_t sequence = 6;
  auto request = gateway::convert::provider_request(api, caller, params, data, "key", sequence, out);
  if (!request) {
    require(!request.error().message.empty());
    return;
  }
  if (!request->as_sent && api.encoding != model::Encoding::Json) require(codec::decode_frame(out).has_value());
  const int status = pick >= 192 ? 500 : pick >= 160 ? 404 : 200;
  std::string answer_out;
  auto a = gateway::convert::caller_answer(api, caller, *request, status, data, "p", answer_out);
  using Kind = gateway::convert::Answer::Kind;
  if (a.kind == Kind::Failure) {
    require(!a.message.empty());
  } else if (a.kind == Kind::Out) {
    if (caller.yar) require(codec::decode_frame(answer_out).has_value());
    else require(codec::parse_json(answer_out).has_value());
  }
}

}  // namespace svcctl::fuzz
