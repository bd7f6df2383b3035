// Conversion between what a caller sends and what a provider speaks (DESIGN §4): JSON or
// Yar (JSON or msgpack packager) on either side. Pure: bytes and values in, bytes or a
// refusal out; no I/O, no clock. The gateway's data plane calls it twice per call (the
// provider's request body, then the caller's answer); it is fuzzed (tests/fuzz).
#pragma once

#include <svcctl/codec/value.hpp>
#include <svcctl/codec/yar.hpp>
#include <svcctl/core/expected.hpp>
#include <svcctl/gateway/errors.hpp>
#include <svcctl/gateway/routes.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace svcctl::gateway::convert {

// The caller's side of a call, as the gateway read it.
struct Caller {
  bool yar = false;  // a Yar packet (else a JSON body)
  codec::Packager packager = codec::Packager::Json;  // a Yar caller's
  std::int64_t yar_id = 0;
  std::string_view yar_method;
  std::string_view provider_field;  // the Yar header's, passed on
  std::string_view token_field;
};

// How the provider's body was made.
struct Request {
  std::string_view content_type;
  bool as_sent = false;      // the caller's body goes as it came (`out` is untouched)
  bool yar_as_sent = false;  // a Yar packet as it came: its answer may go back as it comes
  std::int64_t yar_id = 0;   // the id the provider's Yar answer must carry (0: none asked)
};

// The provider's request body for `api`, into `out` unless it is the caller's as it came.
// `yar_params`: a Yar caller's parameters (moved from); `key`: a JSON caller's key, sent as
// the Yar token; `sequence`: the caller's counter, advanced when a JSON caller's call to a
// Yar provider draws its Yar id from it ((n & 0x7fffffff) | 1: positive, never 0).
// Fails (with the codec's error, which the caller answers as BadRequest) when the caller's
// JSON is not an object or array, or cannot be packed.
Expected<Request> provider_request(const ApiRoute& api, const Caller& caller, codec::Value& yar_params,
                                   std::string_view body, std::string_view key, std::uint64_t& sequence,
                                   std::string& out);

// What the caller is answered.
struct Answer {
  enum class Kind {
    Provider,  // the provider's body as it came
    Out,       // the body written to `out`
    Failure,   // an error in the gateway's shape: `error`, `message`, `extra`
  };
  Kind kind = Kind::Provider;
  int status = 200;
  std::string_view content_type;
  Err error = Err::BadResponse;
  std::string message;
  std::optional<codec::Value> extra;
  bool address_failed = false;  // counts against the address (an unreadable answer)
  bool provider_error = false;  // answered as it came, but counted as a provider error
};

// The caller's answer to the provider's `status` and `body`, for a call made as `request`
// said. `address` names the provider in messages. A 5xx is the caller's to retry before
// this; here it is answered.
Answer caller_answer(const ApiRoute& api, const Caller& caller, const Request& request, int status,
                     std::string_view body, std::string_view address, std::string& out);

}  // namespace svcctl::gateway::convert
