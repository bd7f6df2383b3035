#include <svcctl/codec/json.hpp>
#include <svcctl/codec/msgpack.hpp>
#include <svcctl/rpc/rpc.hpp>

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <mutex>

namespace svcctl::rpc {

namespace {

constexpr std::size_t k_max_reply = 64u * 1024 * 1024;
// Transfers under way at once in http_get_many.
constexpr std::size_t k_parallel_gets = 64;

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

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

using EasyHandle = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using HeaderList = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;

// One transfer's handle and what it writes into; kept at one address while curl runs it.
struct Transfer {
  EasyHandle curl{nullptr, curl_easy_cleanup};
  HeaderList headers{nullptr, curl_slist_free_all};
  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {};
  std::string url;
};

// Sets up a POST of `body`, or a GET when `body` is null. False when libcurl cannot start.
bool prepare(Transfer& t, const std::string& url, const std::string_view* body,
             const std::vector<std::string>& headers, const Timeouts& timeouts) {
  init_curl_once();
  t.curl.reset(curl_easy_init());
  if (!t.curl) return false;
  t.url = url;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  t.headers.reset(list);

  CURL* h = t.curl.get();
  curl_easy_setopt(h, CURLOPT_URL, t.url.c_str());
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
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t.sink);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  return true;
}

// The reply of a finished transfer, or why there is none.
Expected<HttpReply> finish(Transfer& t, CURLcode rc, const Timeouts& timeouts) {
  std::string where = host_of(t.url);
  const char* why = *t.errbuf ? t.errbuf : curl_easy_strerror(rc);
  if (rc != CURLE_OK) {
    if (t.sink.too_large)
      return undeliverable(fmt::format("answer from {} is larger than {} MiB", where, k_max_reply >> 20));
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return undeliverable(fmt::format("no answer from {} within {} ms", where, timeouts.total.count()));
    if (rc == CURLE_COULDNT_CONNECT) return undeliverable(fmt::format("cannot connect to {}: {}", where, why));
    return undeliverable(fmt::format("call to {} failed: {}", where, why));
  }
  HttpReply reply;
  curl_easy_getinfo(t.curl.get(), CURLINFO_RESPONSE_CODE, &reply.status);
  curl_off_t us = 0;
  curl_easy_getinfo(t.curl.get(), CURLINFO_TOTAL_TIME_T, &us);
  reply.elapsed = std::chrono::microseconds(us);
  reply.body = std::move(t.sink.body);
  return reply;
}

// One HTTP exchange: a POST of `body`, or a GET when `body` is null.
Expected<HttpReply> perform(const std::string& url, const std::string_view* body,
                            const std::vector<std::string>& headers, const Timeouts& timeouts) {
  Transfer t;
  if (!prepare(t, url, body, headers, timeouts)) return fail(ErrorKind::Error, "cannot start libcurl");
  return finish(t, curl_easy_perform(t.curl.get()), timeouts);
}

}  // namespace

Expected<HttpReply> http_post(const std::string& url, std::string_view body,
                              const std::vector<std::string>& headers, const Timeouts& timeouts) {
  return perform(url, &body, headers, timeouts);
}

Expected<HttpReply> http_get(const std::string& url, const Timeouts& timeouts) {
  return perform(url, nullptr, {}, timeouts);
}

namespace {

enum class Exchange { Get, ConnectOnly };

// Runs every transfer at once, at most `parallel` under way.
std::vector<Expected<HttpReply>> run_many(const std::vector<std::string>& urls, const Timeouts& timeouts,
                                          Exchange exchange, std::size_t parallel) {
  const Expected<HttpReply> not_started = fail(ErrorKind::Error, "cannot start libcurl");
  std::vector<Expected<HttpReply>> out(urls.size(), not_started);
  init_curl_once();
  std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi(curl_multi_init(), curl_multi_cleanup);
  if (!multi) return out;
  std::vector<Transfer> transfers(urls.size());
  std::size_t next = 0;
  std::size_t in_flight = 0;
  // Transfers start only as others end, so each one's timeout runs from its own start.
  auto start_more = [&] {
    for (; next < urls.size() && in_flight < parallel; ++next) {
      Transfer& t = transfers[next];
      if (!prepare(t, urls[next], nullptr, {}, timeouts)) continue;
      if (exchange == Exchange::ConnectOnly) curl_easy_setopt(t.curl.get(), CURLOPT_CONNECT_ONLY, 1L);
      curl_easy_setopt(t.curl.get(), CURLOPT_PRIVATE, static_cast<void*>(&t));
      if (curl_multi_add_handle(multi.get(), t.curl.get()) != CURLM_OK) {
        t.curl.reset();
        continue;
      }
      ++in_flight;
    }
  };
  start_more();
  while (in_flight > 0) {
    int running = 0;
    if (CURLMcode mc = curl_multi_perform(multi.get(), &running); mc != CURLM_OK) {
      for (std::size_t i = 0; i < transfers.size(); ++i) {
        if (!transfers[i].curl) continue;
        curl_multi_remove_handle(multi.get(), transfers[i].curl.get());
        out[i] = fail(ErrorKind::Error, fmt::format("libcurl: {}", curl_multi_strerror(mc)));
      }
      return out;
    }
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi.get(), &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* h = m->easy_handle;
      const CURLcode rc = m->data.result;  // m is not to be read once its handle is removed
      void* mine = nullptr;
      curl_easy_getinfo(h, CURLINFO_PRIVATE, &mine);
      auto* t = static_cast<Transfer*>(mine);
      curl_multi_remove_handle(multi.get(), h);
      const auto i = static_cast<std::size_t>(t - transfers.data());
      out[i] = finish(*t, rc, timeouts);
      t->curl.reset();
      --in_flight;
    }
    start_more();
    if (in_flight > 0) curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
  }
  return out;
}

}  // namespace

std::vector<Expected<HttpReply>> http_get_many(const std::vector<std::string>& urls, const Timeouts& timeouts) {
  return run_many(urls, timeouts, Exchange::Get, k_parallel_gets);
}

std::vector<Expected<void>> connect_many(const std::vector<std::string>& host_ports,
                                         std::chrono::milliseconds timeout, std::size_t parallel) {
  std::vector<std::string> urls;
  urls.reserve(host_ports.size());
  for (const auto& hp : host_ports) urls.push_back("http://" + hp + "/");
  // curl counts a connect that did not finish in time as a timeout of the whole transfer.
  auto replies = run_many(urls, Timeouts{timeout, timeout}, Exchange::ConnectOnly, std::max<std::size_t>(1, parallel));
  std::vector<Expected<void>> out;
  out.reserve(replies.size());
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (replies[i]) {
      out.emplace_back();
      continue;
    }
    // curl's own words last ("...: Couldn't connect to server"), without its repetition of the address.
    auto e = replies[i].error();
    const auto colon = e.message.rfind(": ");
    const auto why = colon == std::string::npos ? std::string() : e.message.substr(colon + 2);
    if (e.message.starts_with("no answer from"))
      e.message = fmt::format("cannot connect to {} within {} ms", host_ports[i], timeout.count());
    else if (!why.empty())
      e.message = fmt::format("cannot connect to {} ({})", host_ports[i], why);
    out.emplace_back(fail(std::move(e)));
  }
  return out;
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
  auto eligible = [](const model::Address& a) { return model::routable(a); };
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
