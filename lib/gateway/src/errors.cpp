#include <svcctl/codec/json.hpp>
#include <svcctl/gateway/errors.hpp>

namespace svcctl::gateway {

namespace {
using codec::YarStatus;
constexpr int yar(YarStatus s) { return static_cast<int>(s); }

constexpr std::array<ErrInfo, k_err_count> k_info{{
    {"bad_request", 400, yar(YarStatus::Packager)},
    {"missing_key", 401, yar(YarStatus::Forbidden)},
    {"unknown_key", 401, yar(YarStatus::Forbidden)},
    {"key_disabled", 401, yar(YarStatus::Forbidden)},
    {"forbidden", 403, yar(YarStatus::Forbidden)},
    {"unknown_service", 404, yar(YarStatus::Request)},
    {"unknown_interface", 404, yar(YarStatus::Request)},
    {"not_found", 404, yar(YarStatus::Request)},
    {"method_not_allowed", 405, yar(YarStatus::Request)},
    {"request_timeout", 408, yar(YarStatus::Transport)},
    {"too_large", 413, yar(YarStatus::Protocol)},
    {"rate_limited", 429, yar(YarStatus::Transport)},
    {"header_too_large", 431, yar(YarStatus::Protocol)},
    {"provider_error", 502, yar(YarStatus::Transport)},
    {"bad_response", 502, yar(YarStatus::Transport)},
    {"service_down", 503, yar(YarStatus::Transport)},
    {"interface_down", 503, yar(YarStatus::Transport)},
    {"no_upstream", 503, yar(YarStatus::Transport)},
    {"upstream_unreachable", 503, yar(YarStatus::Transport)},
    {"upstream_overloaded", 503, yar(YarStatus::Transport)},
    {"timeout", 504, yar(YarStatus::Transport)},
}};
}  // namespace

const ErrInfo& info(Err e) { return k_info[index(e)]; }

std::string error_json(Err e, std::string_view message, std::string_view service,
                       std::string_view iface, const codec::Value* extra) {
  codec::Value err = codec::Value::object();
  err["code"] = info(e).code;
  err["message"] = message;
  if (!service.empty()) err["service"] = service;
  if (!iface.empty()) err["interface"] = iface;
  if (extra && extra->is_object())
    for (auto it = extra->begin(); it != extra->end(); ++it) err[it.key()] = it.value();
  codec::Value doc = codec::Value::object();
  doc["error"] = std::move(err);
  return codec::to_json_text(doc);
}

std::string yar_error_message(Err e, std::string_view message) {
  std::string s(info(e).code);
  s += ": ";
  s += message;
  return s;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 200 && status < 300 ? "OK" : "Error";
  }
}

}  // namespace svcctl::gateway
