// The gateway's answers when it cannot forward a call (DESIGN §4): one code per cause,
// each with its HTTP status and the Yar status a Yar caller gets it with. Pure.
#pragma once

#include <svcctl/codec/value.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace svcctl::gateway {

enum class Err : std::uint8_t {
  BadRequest,           // 400 the body is not what the interface takes (bad JSON, bad Yar packet)
  MissingKey,           // 401 the service needs a caller key and none came
  UnknownKey,           // 401 the key is not registered
  KeyDisabled,          // 401 the key's status is down
  Forbidden,            // 403 the key has no ACL for the service or interface
  UnknownService,       // 404
  UnknownInterface,     // 404
  NotFound,             // 404 not a gateway path
  MethodNotAllowed,     // 405 only POST calls
  RequestTimeout,       // 408 the request did not arrive in time
  TooLarge,             // 413 body over the limit
  RateLimited,          // 429
  HeaderTooLarge,       // 431
  ProviderError,        // 502 the provider answered with an error
  BadResponse,          // 502 the provider's answer could not be read
  ServiceDown,          // 503
  InterfaceDown,        // 503
  NoUpstream,           // 503 no up address
  Unreachable,          // 503 the provider could not be reached
  Overloaded,           // 503 every address has its limit of calls in flight
  Timeout,              // 504 no answer within the interface's timeout
  Count
};
inline constexpr std::size_t k_err_count = static_cast<std::size_t>(Err::Count);

struct ErrInfo {
  std::string_view code;  // "no_upstream"
  int http_status;
  int yar_status;         // codec::YarStatus value a Yar caller gets
};
const ErrInfo& info(Err e);
inline std::size_t index(Err e) { return static_cast<std::size_t>(e); }

// The one JSON error shape:
// {"error":{"code":"...","message":"...","service":"s","interface":"A"}} (service and
// interface only when known); `extra` fields (an object) are added to the error object.
std::string error_json(Err e, std::string_view message, std::string_view service,
                       std::string_view iface, const codec::Value* extra = nullptr);

// The text a Yar caller's exception carries: "code: message".
std::string yar_error_message(Err e, std::string_view message);

// "OK", "Not Found", ...: the status line's reason phrase.
std::string_view reason_phrase(int status);

}  // namespace svcctl::gateway
