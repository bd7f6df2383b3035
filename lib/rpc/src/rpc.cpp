#include <svcctl/codec/json.hpp>
#include <svcctl/codec/msgpack.hpp>
#include <svcctl/rpc/rpc.hpp>

#include <curl/curl.h>
#include <fmt/format.h>

#include <memory>
#include <mutex>

namespace svcctl::rpc {

namespace {

constexpr std::size_t k_max_reply = 64u * 1024 * 1024;

struct Sink {
  std::string body;
  bool too_large = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  std::size_t bytes = size * n;
  if (sink->body.size() + bytes > k_max_reply) {
    sink->too_large = true;
    return 0;  // makes curl fail the transfer
  }
  sink->body.append(data, bytes);
  return bytes;
}

std::string host_of(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto end = url.find('/', start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string snippet(std::string_view body) {
  std::string s(body.substr(0, 300));
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return body.size() > 300 ? s + "..." : s;
}

Unexpected undeliverable(std::string message) {
  return fail(ErrorKind::DeliveryFailed, std::move(message));
}

// A 2xx answer that must be JSON, returned as it came (numbers beyond 64 bits and the
// provider's formatting survive) less trailing white space.
Expected<Result> json_answer(HttpReply reply, std::string_view from) {
  auto parsed = codec::parse_json(reply.body);
  if (!parsed)
    return undeliverable(fmt::format("answer from {} is not JSON ({}): {}", from,
                                     parsed.error().message, snippet(reply.body)));
  Result r;
  r.json = reply.body;
  r.json.erase(r.json.find_last_not_of(" \t\r\n") + 1);
  r.http = std::move(reply);
  return r;
}

}  // namespace

namespace {

// One HTTP exchange: a POST of `body`, or a GET when `body` is null.
Expected<HttpReply> perform(const std::string& url, const std::string_view* body,
                            const std::vector<std::string>& headers, const Timeouts& timeouts) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return fail(ErrorKind::Error, "cannot start libcurl");
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(list, curl_slist_free_all);

  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {};
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  if (body) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "svcctl");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeouts.connect.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeouts.total.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");

  CURLcode rc = curl_easy_perform(h);
  std::string where = host_of(url);
  if (rc != CURLE_OK) {
    if (sink.too_large)
      return undeliverable(fmt::format("answer from {} is larger than {} MiB", where, k_max_reply >> 20));
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return undeliverable(fmt::format("no answer from {} within {} ms", where, timeouts.total.count()));
    if (rc == CURLE_COULDNT_CONNECT)
      return undeliverable(fmt::format("cannot connect to {}: {}", where,
                                       *errbuf ? errbuf : curl_easy_strerror(rc)));
    return undeliverable(fmt::format("call to {} failed: {}", where,
                                     *errbuf ? errbuf : curl_easy_strerror(rc)));
  }
  HttpReply reply;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_off_t us = 0;
  curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
  reply.elapsed = std::chrono::microseconds(us);
  reply.body = std::move(sink.body);
  return reply;
}

}  // namespace

Expected<HttpReply> http_post(const std::string& url, std::string_view body,
                              const std::vector<std::string>& headers, const Timeouts& timeouts) {
  return perform(url, &body, headers, timeouts);
}

Expected<HttpReply> http_get(const std::string& url, const Timeouts& timeouts) {
  return perform(url, nullptr, {}, timeouts);
}

Expected<Result> call_json(const std::string& url, std::string_view json_body,
                           const Timeouts& timeouts) {
  SVCCTL_TRY(auto reply, http_post(url, json_body, {"Content-Type: application/json"}, timeouts));
  if (reply.status >= 400)
    return fail(ErrorKind::RemoteError,
                fmt::format("{} answered HTTP {}: {}", host_of(url), reply.status, snippet(reply.body)));
  if (reply.status < 200 || reply.status >= 300)
    return undeliverable(fmt::format("{} answered HTTP {}", host_of(url), reply.status));
  return json_answer(std::move(reply), host_of(url));
}

Expected<Result> call_yar(const std::string& url, codec::Packager packager, const std::string& method,
                          const codec::Value& params, const std::string& token,
                          const Timeouts& timeouts) {
  std::random_device rd;
  codec::YarRequest req;
  req.id = static_cast<std::int64_t>(rd());  // 32 random bits, as PHP's mt_rand()
  req.method = method;
  req.params = params;
  SVCCTL_TRY(std::string message, codec::encode_request(req, packager, "", token));
  // What the PHP client sends; a PHP server reads no body without a Content-Type.
  SVCCTL_TRY(auto reply, http_post(url, message, {"Content-Type: application/x-www-form-urlencoded"},
                                   timeouts));
  std::string where = host_of(url);
  if (reply.status != 200)
    return undeliverable(fmt::format("{} answered HTTP {} (a Yar server answers 200): {}", where,
                                     reply.status, snippet(reply.body)));
  if (reply.body.empty()) return undeliverable(fmt::format("{} answered with an empty body", where));
  auto frame = codec::decode_frame(reply.body);
  if (!frame)
    return undeliverable(fmt::format("answer from {} is not a Yar message: {}", where,
                                     frame.error().message));
  auto res = codec::decode_response(*frame);
  if (!res)
    return undeliverable(fmt::format("answer from {} cannot be decoded: {}", where,
                                     res.error().message));
  if (res->id != 0 && res->id != req.id)
    return undeliverable(fmt::format("answer from {} is for another call (response id mismatch)", where));
  Result r;
  r.output = res->output;
  if (res->status != 0) {
    const codec::Value& e = res->error ? *res->error : codec::Value("");
    if (e.is_object()) {
      return fail(ErrorKind::RemoteError,
                  fmt::format("{} raised {} (code {}): {}", where, e.value("_type", std::string("exception")),
                              e.contains("code") ? codec::to_json_text(e["code"]) : "0",
                              e.value("message", std::string())));
    }
    return fail(ErrorKind::RemoteError,
                fmt::format("{} answered Yar error {}: {}", where, res->status,
                            e.is_string() ? e.get<std::string>() : codec::to_json_text(e)));
  }
  r.json = codec::to_json_text(res->result);
  r.http = std::move(reply);
  return r;
}

Expected<Result> call_gateway(const std::string& base_url, const std::string& service,
                              const std::string& iface, std::string_view json_body,
                              const std::string& key, const Timeouts& timeouts) {
  std::string base = base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string url = fmt::format("{}/{}/{}", base, service, iface);
  std::vector<std::string> headers{"Content-Type: application/json"};
  if (!key.empty()) headers.push_back("X-Api-Key: " + key);
  SVCCTL_TRY(auto reply, http_post(url, json_body, headers, timeouts));
  if (reply.status >= 400) {
    auto body = codec::parse_json(reply.body);
    if (body && body->is_object() && body->contains("error") && (*body)["error"].is_object()) {
      const auto& e = (*body)["error"];
      return fail(ErrorKind::RemoteError,
                  fmt::format("{}: {} (HTTP {})", e.value("code", std::string("error")),
                              e.value("message", std::string()), reply.status));
    }
    return fail(ErrorKind::RemoteError,
                fmt::format("gateway answered HTTP {}: {}", reply.status, snippet(reply.body)));
  }
  return json_answer(std::move(reply), "the gateway");
}

std::optional<Choice> pick_address(const std::vector<model::Address>& addresses,
                                   const std::string& dc, std::mt19937_64& rng) {
  auto eligible = [](const model::Address& a) {
    return a.status == model::Status::Up && a.weight > 0;
  };
  Choice c;
  std::vector<const model::Address*> pool;
  if (!dc.empty())
    for (const auto& a : addresses)
      if (eligible(a) && a.dc == dc) pool.push_back(&a);
  c.in_preferred_dc = !pool.empty();
  if (pool.empty())
    for (const auto& a : addresses)
      if (eligible(a)) pool.push_back(&a);
  if (pool.empty()) return std::nullopt;
  for (const auto* a : pool) c.total_weight += a->weight;
  std::uniform_int_distribution<std::int64_t> dist(0, c.total_weight - 1);
  std::int64_t x = dist(rng);
  for (const auto* a : pool) {
    if (x < a->weight) {
      c.address = a;
      break;
    }
    x -= a->weight;
  }
  c.candidates = pool.size();
  return c;
}

}  // namespace svcctl::rpc
