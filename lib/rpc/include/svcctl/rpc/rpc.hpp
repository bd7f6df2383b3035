// One-shot calls for `svcctl call`: to a provider in its interface's encoding, or to a
// gateway; and plain GETs, one or many at once (health checks, `svcctl stats`). libcurl
// underneath; every failure is an Error whose kind is the exit code:
// the provider answered with an error → RemoteError; the call could not be made or the
// answer could not be read (refused, timeout, not HTTP 200 for Yar, bad framing) →
// DeliveryFailed.
#pragma once

#include <svcctl/codec/value.hpp>
#include <svcctl/codec/yar.hpp>
#include <svcctl/core/expected.hpp>
#include <svcctl/model/model.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace svcctl::rpc {

struct Timeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds total{5000};
};

struct HttpReply {
  long status = 0;
  std::string body;
  std::chrono::microseconds elapsed{0};
};

// POSTs `body` with the given extra headers ("Name: value"). DeliveryFailed when no HTTP
// answer came (refused, reset, timeout, more than 64 MiB).
Expected<HttpReply> http_post(const std::string& url, std::string_view body,
                              const std::vector<std::string>& headers, const Timeouts& timeouts);

// GETs `url` (health checks). DeliveryFailed when no HTTP answer came.
Expected<HttpReply> http_get(const std::string& url, const Timeouts& timeouts);

// GETs every URL at once (at most 64 transfers under way; each bounded by `timeouts`
// from its own start). One result per URL, in order, each as http_get's.
std::vector<Expected<HttpReply>> http_get_many(const std::vector<std::string>& urls, const Timeouts& timeouts);

// Opens a TCP connection to every host:port (at most `parallel` at once, each within
// `timeout`) and closes it again: whether something listens there. One result per
// address, in order; DeliveryFailed ("cannot connect to ...") when nothing does.
std::vector<Expected<void>> connect_many(const std::vector<std::string>& host_ports,
                                         std::chrono::milliseconds timeout, std::size_t parallel);

struct Result {
  std::string json;    // the result as JSON text
  std::string output;  // Yar "o": what the method printed
  HttpReply http;
};

// A JSON interface: POST the JSON text as it is. A 2xx answer must be JSON (else
// DeliveryFailed) and is returned unchanged; HTTP ≥ 400 is RemoteError with the body.
Expected<Result> call_json(const std::string& url, std::string_view json_body,
                           const Timeouts& timeouts);

// A Yar interface: `params` is the Yar parameter list. A Yar error status is RemoteError
// ("yar error 4: ..." or, for 64, "exception Class (code N): message").
Expected<Result> call_yar(const std::string& url, codec::Packager packager,
                          const std::string& method, const codec::Value& params,
                          const std::string& token, const Timeouts& timeouts);

// Through a gateway: POST {base}/{svc}/{iface} with the JSON body and X-Api-Key. An error
// answer in the gateway's shape ({"error":{"code","message"}}) is RemoteError
// "code: message (HTTP status)".
Expected<Result> call_gateway(const std::string& base_url, const std::string& service,
                              const std::string& iface, std::string_view json_body,
                              const std::string& key, const Timeouts& timeouts);

// Chooses a routable address (model::routable) at random, by weight, among those in `dc`
// when any is (then among all). nullopt when none is routable.
struct Choice {
  const model::Address* address = nullptr;
  std::size_t candidates = 0;      // addresses it chose among
  std::int64_t total_weight = 0;   // their summed weight
  bool in_preferred_dc = false;
};
std::optional<Choice> pick_address(const std::vector<model::Address>& addresses,
                                   const std::string& dc, std::mt19937_64& rng);

}  // namespace svcctl::rpc
