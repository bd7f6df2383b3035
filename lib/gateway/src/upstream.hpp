// The provider side of the data plane, one per worker: each address's state (where to
// connect, its idle connections) and one attempt of a call on an address: a pooled
// connection or a new one (resolved, connected), the request written, the answer read and
// parsed, a pooled connection the provider had closed replaced once. It knows nothing of
// routes, retries, counters or the caller's answer: each attempt ends in one call to its
// Listener, and the worker gives the connection back with release().
#pragma once

#include "http.hpp"

#include <svcctl/gateway/errors.hpp>
#include <svcctl/gateway/outlier.hpp>
#include <svcctl/gateway/routes.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive_ptr.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace svcctl::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Conn;
struct Exchange;

// Reference counts for objects that pending handlers keep alive; one thread only.
template <typename T>
struct RefCounted {
  int refs = 0;
  friend void intrusive_ptr_add_ref(T* p) { ++p->refs; }
  friend void intrusive_ptr_release(T* p) {
    if (--p->refs == 0) delete p;
  }
};

// A connection to a provider.
struct UpConn : RefCounted<UpConn> {
  explicit UpConn(asio::io_context& ioc) : sock(ioc) {}
  tcp::socket sock;
  http::InBuffer in;
  http::Response resp;
  std::optional<http::ResponseParser> parser;
  Conn* owner = nullptr;  // the exchange using it; null while pooled
  bool reused = false;    // taken from the pool (may have been closed by the provider)
  bool sent = false;      // the whole request was written
  bool got_bytes = false; // some of the answer arrived
  bool closing = false;   // the provider closes after this answer
  Clock::time_point idle_since{};
};

// A provider address, per worker: where to connect and the idle connections.
struct AddrState {
  std::string host;
  std::uint16_t port = 0;
  std::optional<tcp::endpoint> endpoint;  // when the host is an IP address
  std::vector<boost::intrusive_ptr<UpConn>> idle;  // most recently used last
  Health* health = nullptr;
  std::int64_t in_flight = 0;  // this worker's calls to it, whatever the service
};

class Upstreams {
 public:
  // Told once per attempt; the connection is still in the exchange (`ex.up`) either way.
  class Listener {
   public:
    // The answer is whole in `ex.up->resp`.
    virtual void upstream_answered(Conn* c) = 0;
    // It could not be sent or answered; `e` says which (Unreachable: it never reached the
    // provider), `message` says why, naming the address.
    virtual void upstream_failed(Conn* c, Err e, std::string message) = 0;

   protected:
    ~Listener() = default;
  };
  struct Limits {
    std::size_t max_idle_per_address = 0;
    Clock::duration idle_timeout{};
  };
  enum class Reuse { Pool, Close };

  Upstreams(asio::io_context& ioc, Listener& listener, Limits limits, std::uint64_t& connects);

  // The state of an address, made the first time it is asked for; `health` is the
  // gateway-wide record of that address, taken then.
  template <typename HealthOf>
  AddrState& address(const AddrRoute& a, HealthOf&& health_of) {
    auto& st = addrs_[a.name];
    if (!st) st = make_state(a, health_of(a.name));
    return *st;
  }
  // The state of an address by its name, when it was ever asked for.
  const AddrState* find(const std::string& name) const;

  // An attempt of the exchange's call (`ex.addr`, `ex.api`, `ex.up_body_ref`) on its address.
  void send(Conn* c);
  // Gives the exchange's provider connection back: to its address's pool when `reuse` says
  // so and it can serve another call, else closed. Nothing when it holds none.
  void release(Exchange& x, Reuse reuse, Clock::time_point now);
  // Closes the pooled connections idle since before `now` - the idle timeout.
  void close_idle(Clock::time_point now);
  // Closes every pooled connection; from now on, released ones are closed too.
  void shutdown();

 private:
  std::unique_ptr<AddrState> make_state(const AddrRoute& a, Health* health);
  void write(Conn* c);
  void wait(Conn* c);
  void on_readable(Conn* c, boost::system::error_code ec, std::size_t n);
  void io_error(Conn* c, boost::system::error_code ec);

  asio::io_context& ioc_;
  tcp::resolver resolver_;
  Listener& listener_;
  const Limits limits_;
  std::uint64_t& connects_;  // connections opened, counted in the worker's stats
  bool stopping_ = false;
  std::unordered_map<std::string, std::unique_ptr<AddrState>> addrs_;  // by host:port
};

}  // namespace svcctl::gateway
