// The gateway's insides, shared by the data plane (worker.cpp, connection.cpp, upstream.cpp),
// admin.cpp and gateway.cpp.
#pragma once

#include "http.hpp"
#include "upstream.hpp"

#include <svcctl/codec/value.hpp>
#include <svcctl/codec/yar.hpp>
#include <svcctl/gateway/balance.hpp>
#include <svcctl/gateway/convert.hpp>
#include <svcctl/gateway/gateway.hpp>
#include <svcctl/gateway/outlier.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/intrusive/list.hpp>
#include <boost/intrusive_ptr.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace svcctl::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Worker;
struct Conn;

// One call's state, set as the call goes: reset by value when the next call begins, so a
// field added here starts each call at its default without a line elsewhere.
struct CallState {
  Clock::time_point start{};
  Clock::time_point deadline{};
  // The caller.
  bool yar_caller = false;
  codec::Packager caller_packager = codec::Packager::Json;
  std::int64_t yar_id = 0;
  codec::Value yar_params;
  // Routing.
  std::shared_ptr<const ServiceRoute> route;  // keeps `api` and `addr_name` alive
  const ApiRoute* api = nullptr;
  std::size_t version = static_cast<std::size_t>(-1);  // into route->versions; none: any address
  AddrState* addr = nullptr;
  const std::string* addr_name = nullptr;
  StatsView::Service* svc_stats = nullptr;
  Counters* iface_stats = nullptr;
  StatsView::Address* addr_stats = nullptr;
  StatsView::Version* version_stats = nullptr;  // the address's version's, when kept
  StatsView::Key* key_stats = nullptr;   // a known, enabled key
  std::optional<RateDecision> rate;      // when its rate was enforced: for the headers
  bool counted_in_flight = false;
  // The provider's side.
  convert::Request up_request;               // how the provider's body was made
  const std::string* up_body_ref = nullptr;  // up_body, or the caller's body as it came
  bool stale_retry = false;
  bool retried = false;  // sent again to another address already
  // The answer.
  std::optional<Err> final_err;  // what the caller was answered
  std::optional<Err> addr_err;   // what counts against the address
  bool unrouted = false;
  bool recorded = false;
  std::uint64_t elapsed_us = 0;  // from start to the answer, set by record()
};

// A call's names, emptied when the next call begins but keeping their capacity (a request
// id is longer than a short string holds: freeing it would allocate once per call).
struct CallNames {
  std::string request_id;
  std::string service;
  std::string iface;
  std::string key;
  std::string yar_method;
  std::string yar_provider_field;
  std::string yar_token_field;
  void clear() {  // every member
    request_id.clear();
    service.clear();
    iface.clear();
    key.clear();
    yar_method.clear();
    yar_provider_field.clear();
    yar_token_field.clear();
  }
};

// The bytes a call writes and reads, reused from call to call: each is cleared by the
// code that fills it. The answers (resp_body, out_body) are given back after the call when
// a large one grew them past 64 KiB; the others keep what they grew to.
struct CallBuffers {
  std::string up_head;
  std::string up_body;
  std::string up_rest;    // what a full socket buffer left of the provider's request
  std::string resp_body;  // the provider's answer
  std::string out_head;
  std::string out_body;
  std::string out_rest;   // what a full socket buffer left of the caller's answer
};

// One call in progress on a client connection, and the provider connection it holds.
struct Exchange : CallState, CallNames, CallBuffers {
  boost::intrusive_ptr<UpConn> up;  // given back by Upstreams::release, never by reset()

  void reset() {
    static_cast<CallState&>(*this) = CallState{};
    CallNames::clear();
  }
};

struct InflightTag;
// auto_unlink: a Conn leaves both lists when it is destroyed.
using ConnHook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
using InflightHook = boost::intrusive::list_base_hook<boost::intrusive::tag<InflightTag>,
                                                      boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

// A client connection.
struct Conn : RefCounted<Conn>, ConnHook, InflightHook {
  Conn(Worker& worker, tcp::socket s) : w(worker), sock(std::move(s)) {}
  Worker& w;
  tcp::socket sock;
  std::string peer_ip;
  http::InBuffer in;
  http::Request req;
  std::optional<http::RequestParser> parser;
  Exchange ex;
  Clock::time_point deadline{};  // for reading (idle, or the request under way)
  bool request_started = false;  // bytes of a request arrived, and it is not whole yet
  bool busy = false;             // a request is being answered
  bool keep_alive = true;
  bool http10 = false;
  bool sent_continue = false;    // "100 Continue" went out for the request under way
  bool closed = false;

  bool is_linked() const { return ConnHook::is_linked(); }
  void unlink() { ConnHook::unlink(); }
  bool is_linked_inflight() const { return InflightHook::is_linked(); }
  void unlink_inflight() { InflightHook::unlink(); }
};

struct Worker final : Upstreams::Listener {
  Worker(Gateway::Impl& impl, unsigned n);
  void run();
  void shutdown();  // on the worker's thread

  Gateway::Impl& gw;
  const unsigned number;
  const outlier::Rules ejection;  // from the gateway's options
  // Sockets and timers are used by this worker's thread only: no locking in the reactor.
  // Other threads only post (admin's counters, stop), which the scheduler still locks.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  tcp::acceptor acceptor;
  asio::steady_timer tick;
  std::thread thread;
  bool stopping = false;
  bool draining = false;  // not accepting; connections close after their answer
  double retry_tokens = 20;
  std::atomic<std::int64_t> live{0};  // client connections open (read by drain())
  std::size_t pending_limit = 1024;  // per address, this worker's share
  Clock::time_point last_accept_error{};
  Clock::time_point now_cached = Clock::now();
  std::uint64_t ticks = 0;

  boost::intrusive::list<Conn, boost::intrusive::base_hook<ConnHook>, boost::intrusive::constant_time_size<false>> conns;
  boost::intrusive::list<Conn, boost::intrusive::base_hook<InflightHook>, boost::intrusive::constant_time_size<false>>
      inflight;

  // Routing: the table last read, and per service the worker's own state for it.
  struct ServiceState {
    std::shared_ptr<const ServiceRoute> route;
    std::vector<AddrState*> addrs;  // parallel to route->addrs
    std::vector<StatsView::Address*> addr_stats;
    std::vector<Counters*> iface_stats;  // parallel to route->apis
    std::vector<std::int64_t> swrr;      // round-robin state of the candidates
    StatsView::Service* svc_stats = nullptr;
    // Parallel to route->versions: each version's counters and round-robin state.
    std::vector<StatsView::Version*> version_stats;
    std::vector<std::vector<std::int64_t>> version_swrr;
    std::vector<StatsView::Version*> addr_version_stats;  // parallel to addrs; empty without versions
  };
  std::uint64_t route_gen = ~std::uint64_t{0};
  std::shared_ptr<const RouteTable> table;
  std::unordered_map<std::string, ServiceState, StringHash, std::equal_to<>> service_states;

  StatsView stats;  // this worker's counts (std::map: pointers into it stay valid)
  Upstreams upstreams;  // the providers' side: after `ioc` and `stats`, which it uses
  std::uint64_t rng = 0;
  std::uint32_t id_prefix = 0;
  std::uint64_t request_counter = 0;

  std::uint64_t next_random();
  void start_accept();
  void schedule_tick();
  void on_tick();
  void refresh_routes();
  ServiceState* bind(std::string_view svc);
  // The address for a call (balance::choose over this worker's state) among the service's
  // addresses, or `version`'s (an index into b.route->versions) unless it is npos: an
  // index into b.route->addrs, or npos when every address is ejected past panic, at its
  // pending limit, or `avoid`.
  std::size_t choose(ServiceState& b, std::size_t version, const AddrState* avoid = nullptr);
  // Where a call goes among the service's versions (balance::pick_version): the point on
  // the split is the sticky value's when the service has one and the call carries it.
  balance::VersionPick pick_version(const Conn* c, const ServiceRoute& r, std::string_view pin);
  std::int64_t now_ns() const { return now_cached.time_since_epoch().count(); }
  void note_success(AddrState& a);
  void note_failure(Conn* c);
  bool try_retry(Conn* c);
  void start_call(Conn* c, ServiceState& b, std::size_t i);
  void drain();
  std::string access_buf;  // access log lines not written yet
  void flush_access_log();

  void wait_readable(Conn* c);
  void on_readable(Conn* c, boost::system::error_code ec, std::size_t n);
  void process(Conn* c);
  void dispatch(Conn* c);
  // A Yar caller's packet: its id, method, parameters and header fields (false when it was
  // answered: a bad packet gets Yar's status answer).
  bool read_yar_call(Conn* c);
  // The provider's request body (false when the call was answered: refused).
  bool prepare_upstream_body(Conn* c);
  convert::Caller caller_of(const Exchange& x) const;
  // An attempt's end (Upstreams::Listener): the caller's answer, or a retry.
  void upstream_answered(Conn* c) override;
  void upstream_failed(Conn* c, Err e, std::string message) override;
  void upstream_timeout(Conn* c);
  // The call no longer counts as in flight on its address.
  void end_upstream(Conn* c);
  void release_upstream(Conn* c, Upstreams::Reuse reuse) { upstreams.release(c->ex, reuse, now_cached); }

  void fail_unrouted(Conn* c, Err e, std::string_view message);
  void fail_yar_status(Conn* c, const Error& error);
  void fail(Conn* c, Err e, std::string_view message, const codec::Value* extra = nullptr);
  void respond_error(Conn* c, Err e, std::string_view message);
  void respond(Conn* c, int status, std::string_view content_type, const std::string& body);
  void record(Conn* c);
  void write_response(Conn* c, int status, std::string_view content_type, const std::string& body,
                      const std::string_view* error_code);
  void after_response(Conn* c);
  void close(Conn* c);
};

struct Gateway::Impl {
  Impl(Options o, const RegistrySource& source, const Routes& r);
  ~Impl();
  Options options;
  mutable std::mutex id_mu;
  std::string id;
  std::string get_id() const {
    std::lock_guard lock(id_mu);
    return id;
  }
  const RegistrySource& registry;
  const Routes& routes;
  std::vector<std::unique_ptr<Worker>> workers;
  std::string listen_address;
  std::string admin_address;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

  // The admin listener.
  struct Admin;
  std::unique_ptr<Admin> admin;
  bool running = false;
  std::atomic<bool> draining{false};

  void log(std::string_view m) const {
    if (options.log) options.log(m);
  }
  // Address health, shared by the workers; entries live as long as the gateway.
  mutable std::mutex health_mu;
  std::unordered_map<std::string, std::unique_ptr<Health>> health;
  Health* health_of(const std::string& addr) {
    std::lock_guard lock(health_mu);
    auto& h = health[addr];
    if (!h) h = std::make_unique<Health>();
    return h.get();
  }
  // The latest end of any ejection: before it, choosing an address checks health.
  std::atomic<std::int64_t> ejection_horizon{0};
  StatsView gather() const;
};

}  // namespace svcctl::gateway
