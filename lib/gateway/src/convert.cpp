#include <svcctl/gateway/convert.hpp>

#include <svcctl/codec/json.hpp>
#include <svcctl/codec/params.hpp>

#include <fmt/format.h>

namespace svcctl::gateway::convert {

namespace {

constexpr std::string_view k_json = "application/json";
constexpr std::string_view k_yar = "application/octet-stream";
constexpr std::string_view k_form = "application/x-www-form-urlencoded";

Answer failure(Err e, std::string message, bool address_failed = false) {
  Answer a;
  a.kind = Answer::Kind::Failure;
  a.error = e;
  a.message = std::move(message);
  a.address_failed = address_failed;
  return a;
}

Answer body(int status, std::string_view content_type, Answer::Kind kind) {
  Answer a;
  a.kind = kind;
  a.status = status;
  a.content_type = content_type;
  return a;
}

// A JSON provider's answer.
Answer from_json_provider(const Caller& caller, int status, std::string_view text, std::string_view address,
                          std::string& out) {
  if (status < 200 || status > 299) {
    codec::Value extra = codec::Value::object();
    extra["provider_status"] = status;
    auto parsed = codec::parse_json(text);
    if (parsed) extra["provider_body"] = std::move(*parsed);
    else extra["provider_body"] = std::string(text.substr(0, 4096));
    Answer a = failure(Err::ProviderError, fmt::format("{} answered HTTP {}", address, status));
    a.extra = std::move(extra);
    return a;
  }
  if (!caller.yar) return body(status, k_json, Answer::Kind::Provider);
  auto value = codec::parse_json(text);
  if (!value) return failure(Err::BadResponse, fmt::format("{} answered with invalid JSON", address), true);
  codec::YarResponse yr;
  yr.id = caller.yar_id;
  yr.result = std::move(*value);
  auto packet = codec::encode_response(yr, caller.packager);
  if (!packet) return failure(Err::BadResponse, packet.error().message);
  out = std::move(*packet);
  return body(200, k_yar, Answer::Kind::Out);
}

// A Yar error for a JSON caller: the provider's message, and its exception's fields.
Answer yar_error_for_json(const codec::YarResponse& yr) {
  codec::Value extra = codec::Value::object();
  extra["yar_status"] = yr.status;
  std::string message;
  if (yr.error && yr.error->is_object()) {
    const auto& e = *yr.error;
    if (auto m = e.find("message"); m != e.end() && m->is_string()) message = m->get<std::string>();
    codec::Value ex = codec::Value::object();
    for (const char* k : {"_type", "code", "file", "line"})
      if (auto f = e.find(k); f != e.end()) ex[k[0] == '_' ? "type" : k] = *f;
    extra["exception"] = std::move(ex);
  } else if (yr.error && yr.error->is_string()) {
    message = yr.error->get<std::string>();
  }
  if (message.empty()) message = fmt::format("Yar error {}", yr.status);
  Answer a = failure(Err::ProviderError, std::move(message));
  a.extra = std::move(extra);
  return a;
}

// A Yar provider's answer.
Answer from_yar_provider(const Caller& caller, const Request& request, int status, std::string_view text,
                         std::string_view address, std::string& out) {
  if (status != 200) return failure(Err::ProviderError, fmt::format("{} answered HTTP {}", address, status));
  auto frame = codec::decode_frame(text);
  Expected<codec::YarResponse> yr =
      frame ? codec::decode_response(*frame) : Expected<codec::YarResponse>(svcctl::fail(frame.error()));
  if (!yr)
    return failure(Err::BadResponse, fmt::format("unreadable Yar answer from {}: {}", address, yr.error().message),
                   true);
  if (yr->id != 0 && yr->id != request.yar_id)
    return failure(Err::BadResponse, fmt::format("{} answered another request's id", address), true);
  if (caller.yar) {
    // The answer as it came (errors included: the PHP client raises what the provider
    // raised), in the caller's packager.
    Answer a;
    if (request.yar_as_sent || frame->packager == caller.packager) {
      a = body(200, k_yar, Answer::Kind::Provider);
    } else {
      yr->id = caller.yar_id;
      auto packet = codec::encode_response(*yr, caller.packager);
      if (!packet) return failure(Err::BadResponse, packet.error().message);
      out = std::move(*packet);
      a = body(200, k_yar, Answer::Kind::Out);
    }
    a.provider_error = yr->status != 0;  // counted as a JSON caller's would be
    return a;
  }
  if (yr->status != 0) return yar_error_for_json(*yr);
  out = codec::to_json_text(yr->result);
  return body(200, k_json, Answer::Kind::Out);
}

}  // namespace

Expected<Request> provider_request(const ApiRoute& api, const Caller& caller, codec::Value& yar_params,
                                   std::string_view text, std::string_view key, std::uint64_t& sequence,
                                   std::string& out) {
  Request r;
  if (api.encoding == model::Encoding::Json) {
    r.content_type = k_json;
    if (!caller.yar) {
      r.as_sent = true;  // passthrough, unparsed
      return r;
    }
    out = codec::to_json_text(codec::json_from_yar_params(std::move(yar_params)));
    return r;
  }
  const auto packager = api.encoding == model::Encoding::YarMsgpack ? codec::Packager::Msgpack : codec::Packager::Json;
  r.content_type = k_form;
  if (caller.yar) {
    r.yar_id = caller.yar_id;
    if (packager == caller.packager && api.method == caller.yar_method) {
      r.as_sent = r.yar_as_sent = true;  // the caller's packet as it came
      return r;
    }
    codec::YarRequest req{caller.yar_id, api.method, std::move(yar_params)};
    SVCCTL_TRY(out, codec::encode_request(req, packager, caller.provider_field, caller.token_field));
    return r;
  }
  SVCCTL_TRY(auto body, codec::parse_json(text));
  SVCCTL_TRY(auto params, codec::yar_params_from_json(std::move(body)));
  r.yar_id = static_cast<std::int64_t>((++sequence & 0x7fffffff) | 1);
  codec::YarRequest req{r.yar_id, api.method, std::move(params)};
  SVCCTL_TRY(out, codec::encode_request(req, packager, {}, key));
  return r;
}

Answer caller_answer(const ApiRoute& api, const Caller& caller, const Request& request, int status,
                     std::string_view text, std::string_view address, std::string& out) {
  if (api.encoding == model::Encoding::Json) return from_json_provider(caller, status, text, address, out);
  return from_yar_provider(caller, request, status, text, address, out);
}

}  // namespace svcctl::gateway::convert
