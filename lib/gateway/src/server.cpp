// The data plane. One Worker per thread: its io_context, acceptor, client connections,
// upstream pools, counters and timers are touched by that thread only.
//
// A request's life on a client connection (Conn):
//   read → parse (http::RequestParser) → route (RouteTable, per-worker Bound state) →
//   build the upstream body (passthrough or conversion) → an upstream connection (pooled
//   UpConn, or a new one) → write → read and parse the answer → build the caller's answer
//   → write → next request (keep-alive) or close.
// Sockets are non-blocking: reads go through the loop (async_read_some), and a write is
// tried at once, falling back to the loop only when the socket buffer is full. One tick per
// worker checks deadlines: upstream timeouts every 10 ms, client read deadlines and idle
// upstream connections every 250 ms.
#include "internal.hpp"

#include <svcctl/codec/yar.hpp>
#include <svcctl/gateway/convert.hpp>
#include <svcctl/gateway/router.hpp>
#include <svcctl/model/model.hpp>

#include <fmt/format.h>

#include <charconv>
#include <random>

namespace svcctl::gateway {

namespace {

// A client connection's input buffer starts small (an idle keep-alive connection holds
// one) and grows while a request needs more; a buffer grown past k_keep_buffer by a large
// message is given back (never on the common path: that would be an allocation per call).
constexpr std::size_t k_first_read = 2 * 1024;
constexpr std::size_t k_read_chunk = 16 * 1024;
constexpr std::size_t k_keep_buffer = 64 * 1024;
constexpr auto k_tick = std::chrono::milliseconds(10);
constexpr double k_retry_burst = 20;  // retries a worker may make before the budget counts
constexpr std::size_t npos = balance::k_none;

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // two digits a step
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_hex(std::string& out, std::uint64_t v, int digits) {
  static constexpr char k_hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out += k_hex[(v >> (i * 4)) & 0xf];
}

// Writes head and body without waiting; returns the bytes written. A small body is copied
// behind the head so that one send() goes out instead of a sendmsg() with two pieces.
std::size_t send_now(tcp::socket& sock, std::string& head, const std::string& body,
                     boost::system::error_code& ec) {
  if (body.size() <= 8192) {
    const std::size_t head_size = head.size();
    head += body;
    std::size_t n = sock.write_some(asio::buffer(head), ec);
    head.resize(head_size);
    return n;
  }
  std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(body)};
  return sock.write_some(bufs, ec);
}

// What is left to write after the first `written` bytes of head + body.
void rest_of(std::string& out, const std::string& head, const std::string& body, std::size_t written) {
  out.clear();
  if (written < head.size()) {
    out.append(head, written, std::string::npos);
    out += body;
  } else {
    out.append(body, written - head.size(), std::string::npos);
  }
}

}  // namespace

// ---- worker: setup, routing state, timers ------------------------------------------

Worker::Worker(Gateway::Impl& impl, unsigned n)
    : gw(impl),
      number(n),
      ejection{impl.options.eject_after, impl.options.eject_base, impl.options.eject_max,
               impl.options.max_ejected_percent},
      acceptor(ioc),
      tick(ioc),
      resolver(ioc) {
  std::random_device rd;
  rng = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ (static_cast<std::uint64_t>(number) << 56);
  id_prefix = static_cast<std::uint32_t>(next_random());
}

std::uint64_t Worker::next_random() {
  // splitmix64
  std::uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void Worker::run() {
  start_accept();
  schedule_tick();
  ioc.run();
}

void Worker::shutdown() {
  boost::system::error_code ec;
  stopping = true;
  flush_access_log();
  acceptor.close(ec);
  tick.cancel();
  resolver.cancel();
  while (!conns.empty()) close(&conns.front());
  for (auto& [_, a] : addr_states) {
    for (auto& u : a->idle) u->sock.close(ec);
    a->idle.clear();
  }
}

// Stops accepting and closes the connections with no request under way; the others close
// after their answer.
void Worker::drain() {
  draining = true;
  boost::system::error_code ec;
  acceptor.close(ec);
  for (auto it = conns.begin(); it != conns.end();) {
    Conn& c = *it++;
    if (!c.busy && !c.request_started) close(&c);
  }
}

void Worker::start_accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (stopping || draining) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Out of descriptors or memory: say so once a second at most, and try again shortly.
      auto now = Clock::now();
      if (now - last_accept_error > std::chrono::seconds(1)) {
        last_accept_error = now;
        gw.log(fmt::format("accept failed: {}", ec.message()));
      }
      auto t = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(50));
      t->async_wait([this, t](boost::system::error_code) {
        if (!stopping) start_accept();
      });
      return;
    }
    boost::system::error_code ignore;
    sock.set_option(tcp::no_delay(true), ignore);
    sock.non_blocking(true, ignore);
    auto c = boost::intrusive_ptr<Conn>(new Conn(*this, std::move(sock)));
    auto ep = c->sock.remote_endpoint(ignore);
    c->peer_ip = ignore ? std::string("unknown") : ep.address().to_string();
    conns.push_back(*c);
    ++stats.accepted;
    ++stats.connections;
    live.fetch_add(1, std::memory_order_relaxed);
    c->deadline = Clock::now() + gw.options.idle_timeout;
    wait_readable(c.get());
    start_accept();
  });
}

void Worker::schedule_tick() {
  tick.expires_after(k_tick);
  tick.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping) return;
    on_tick();
    schedule_tick();
  });
}

void Worker::flush_access_log() {
  if (access_buf.empty() || !gw.options.access_log) return;
  gw.options.access_log->write_lines(access_buf);
  access_buf.clear();
}

void Worker::on_tick() {
  const auto now = Clock::now();
  now_cached = now;
  flush_access_log();
  // Upstream deadlines, every tick: the list is short (requests in flight).
  for (auto it = inflight.begin(); it != inflight.end();) {
    Conn& c = *it++;
    if (c.ex.deadline <= now) upstream_timeout(&c);
  }
  if (++ticks % 25 != 0) return;
  // Client read deadlines and idle upstreams, every 250 ms.
  for (auto it = conns.begin(); it != conns.end();) {
    Conn& c = *it++;
    if (c.busy || c.deadline > now) continue;
    if (c.request_started) {
      respond_error(&c, Err::RequestTimeout, "the request did not arrive in time");
    } else {
      close(&c);
    }
  }
  for (auto& [_, a] : addr_states) {
    auto& idle = a->idle;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < idle.size(); ++i) {
      if (now - idle[i]->idle_since < gw.options.upstream_idle_timeout) {
        idle[keep++] = std::move(idle[i]);
      } else {
        boost::system::error_code ec;
        idle[i]->sock.close(ec);
      }
    }
    idle.resize(keep);
  }
}

void Worker::refresh_routes() {
  if (gw.routes.generation() == route_gen && table) return;
  table = gw.routes.current();
  route_gen = table->generation;
}

Worker::Bound* Worker::bind(std::string_view svc) {
  auto it = table->services.find(svc);
  if (it == table->services.end()) return nullptr;
  const auto& route = it->second;
  auto bit = bound.find(svc);
  if (bit == bound.end()) bit = bound.emplace(std::string(svc), Bound{}).first;
  Bound& b = bit->second;
  if (b.route == route) return &b;
  // The service changed: rebind its addresses and counters.
  b.route = route;
  b.svc_stats = &stats.services[route->name];
  b.addrs.clear();
  b.addr_stats.clear();
  for (const auto& a : route->addrs) {
    auto& st = addr_states[a.name];
    if (!st) {
      st = std::make_unique<AddrState>();
      boost::system::error_code ec;
      auto ip = asio::ip::make_address(a.host, ec);
      if (!ec) st->endpoint = tcp::endpoint(ip, a.port);
      st->host = a.host;
      st->port = a.port;
      st->health = gw.health_of(a.name);
    }
    b.addrs.push_back(st.get());
    b.addr_stats.push_back(&b.svc_stats->addresses[a.name]);
  }
  b.iface_stats.clear();
  for (const auto& api : route->apis) b.iface_stats.push_back(&b.svc_stats->interfaces[api.name]);
  b.swrr.assign(route->candidates, 0);
  return &b;
}

namespace {
// A service's addresses as balance::choose asks about them: this worker's state for them.
struct BoundAddrs {
  const Worker::Bound& b;
  const AddrState* avoid;
  std::int64_t now;
  std::int64_t in_flight(std::size_t i) const { return b.addr_stats[i]->in_flight; }
  std::int64_t pending(std::size_t i) const { return b.addrs[i]->in_flight; }
  bool ejected(std::size_t i) const { return b.addrs[i]->health->ejected(now); }
  bool avoided(std::size_t i) const { return b.addrs[i] == avoid; }
};
}  // namespace

std::size_t Worker::choose(Bound& b, const AddrState* avoid) {
  const std::int64_t now = now_ns();
  BoundAddrs addrs{b, avoid, now};
  const balance::Rules rules{gw.options.balance, gw.options.panic_percent, static_cast<std::int64_t>(pending_limit)};
  const bool ejections = now < gw.ejection_horizon.load(std::memory_order_relaxed);
  const balance::Choice c =
      balance::choose(*b.route, addrs, b.swrr, rules, ejections, avoid != nullptr, [this] { return next_random(); });
  if (c.panic) ++b.svc_stats->panic;
  return c.index;
}

void Worker::note_success(AddrState& a) { outlier::succeeded(*a.health, ejection, now_ns()); }

// A failure on the exchange's address (connect error, timeout, 5xx, unreadable answer).
void Worker::note_failure(Conn* c) {
  Exchange& x = c->ex;
  const std::int64_t now = Clock::now().time_since_epoch().count();
  auto count_ejected = [&] {
    std::size_t n = 0;
    for (const auto& ar : x.route->addrs) {
      auto it = addr_states.find(ar.name);
      if (it != addr_states.end() && it->second->health->ejected(now)) ++n;
    }
    return n;
  };
  auto e = outlier::failed(*x.addr->health, ejection, now, x.route->addrs.size(), count_ejected);
  if (!e) return;
  std::int64_t horizon = gw.ejection_horizon.load(std::memory_order_relaxed);
  while (horizon < e->until_ns &&
         !gw.ejection_horizon.compare_exchange_weak(horizon, e->until_ns, std::memory_order_relaxed)) {
  }
  ++x.addr_stats->ejections;
  gw.log(fmt::format("ejected {} of service {} for {} ms after {} failures in a row (last: {})", *x.addr_name,
                     x.service, e->length.count(), e->failures, info(*x.addr_err).code));
}

// Sends the call again, once, to another address: when it could not be sent (connect
// error), or when the interface is idempotent; within the call's deadline and the budget.
bool Worker::try_retry(Conn* c) {
  Exchange& x = c->ex;
  if (x.retried || stopping || !x.api || !x.addr_err) return false;
  if (*x.addr_err != Err::Unreachable && !x.api->idempotent) return false;
  if (Clock::now() >= x.deadline) return false;
  refresh_routes();
  Bound* b = bind(x.service);
  if (!b) return false;
  const ApiRoute* api = x.api;
  if (b->route != x.route) {  // the registry changed meanwhile: the call as it is now
    api = b->route->find_api(x.iface);
    if (!b->route->up || !api || !api->up || api->encoding != x.api->encoding || api->path != x.api->path ||
        api->method != x.api->method)
      return false;
  }
  if (retry_tokens < 1) {
    ++x.svc_stats->retries_denied;
    return false;
  }
  std::size_t i = choose(*b, x.addr);
  if (i == npos) return false;
  retry_tokens -= 1;
  ++x.svc_stats->retries;
  // The failed attempt counts on its address; the call goes on.
  auto us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - x.start).count());
  x.addr_stats->counters.record(us, &*x.addr_err);
  note_failure(c);
  end_upstream(c);
  release_upstream(c, false);
  x.route = b->route;
  x.api = api;
  x.iface_stats = b->iface_stats[static_cast<std::size_t>(api - x.route->apis.data())];
  x.addr_err.reset();
  x.retried = true;
  start_call(c, *b, i);
  return true;
}

void Worker::start_call(Conn* c, Bound& b, std::size_t i) {
  Exchange& x = c->ex;
  x.addr = b.addrs[i];
  x.addr_stats = b.addr_stats[i];
  x.addr_name = &x.route->addrs[i].name;
  ++x.addr->in_flight;
  ++x.addr_stats->in_flight;
  ++x.svc_stats->in_flight;
  x.counted_in_flight = true;
  if (!c->is_linked_inflight()) inflight.push_back(*c);
  send_upstream(c);
}

// ---- client connection: reading and parsing ----------------------------------------

// Reads go through async_read_some, not async_wait + read: Asio re-arms epoll
// (EPOLL_CTL_MOD) for every async_wait, while a read op on an edge-triggered descriptor
// needs no system call to wait, and no speculative read after a read that emptied it.
void Worker::wait_readable(Conn* c) {
  char* p = c->in.prepare(c->in.size() < k_first_read ? k_first_read : k_read_chunk);
  c->sock.async_read_some(asio::buffer(p, c->in.room()),
                          [c = boost::intrusive_ptr<Conn>(c)](boost::system::error_code ec, std::size_t n) {
                            c->w.on_readable(c.get(), ec, n);
                          });
}

void Worker::on_readable(Conn* c, boost::system::error_code ec, std::size_t n) {
  if (c->closed) return;
  if (ec) return close(c);  // EOF or reset
  bool full = n == c->in.room();
  c->in.commit(n);
  // An answer is under way (a 408 sent while this read was pending): the bytes wait for it.
  if (c->busy) return;
  while (full && c->in.size() <= gw.options.max_header_bytes + gw.options.max_body_bytes + k_read_chunk) {
    char* p = c->in.prepare(k_read_chunk);
    std::size_t room = c->in.room();
    n = c->sock.read_some(asio::buffer(p, room), ec);
    if (ec == asio::error::would_block) break;
    if (ec) return close(c);
    c->in.commit(n);
    full = n == room;
  }
  process(c);
}

void Worker::process(Conn* c) {
  if (!c->parser) {
    if (c->in.empty()) return wait_readable(c);
    c->req.clear();
    c->parser.emplace(c->req);
    c->parser->header_limit(static_cast<std::uint32_t>(gw.options.max_header_bytes));
    c->parser->body_limit(gw.options.max_body_bytes);
    c->parser->eager(true);
    c->request_started = true;
    c->sent_continue = false;
    c->deadline = now_cached + gw.options.header_timeout;  // the tick's clock: checked every 250 ms anyway
  }
  while (!c->in.empty()) {
    boost::system::error_code ec;
    auto data = c->in.data();
    std::size_t used = c->parser->put(asio::buffer(data.data(), data.size()), ec);
    c->in.consume(used);
    if (ec == beast::http::error::need_more) break;
    if (ec) {
      c->keep_alive = false;
      Err e = Err::BadRequest;
      std::string msg = fmt::format("malformed HTTP request: {}", ec.message());
      if (ec == beast::http::error::body_limit) {
        e = Err::TooLarge;
        msg = fmt::format("the body is larger than {} bytes", gw.options.max_body_bytes);
      } else if (ec == beast::http::error::header_limit) {
        e = Err::HeaderTooLarge;
        msg = fmt::format("the request header is larger than {} bytes", gw.options.max_header_bytes);
      }
      return respond_error(c, e, msg);
    }
    if (c->parser->is_done()) return dispatch(c);
    if (used == 0) break;
  }
  // A client that asked (curl does for bodies over 1 KiB) waits for this before sending
  // the body; the limits were checked on the header already.
  if (c->parser->is_header_done() && c->req.expect_continue && !c->sent_continue && c->in.empty()) {
    c->sent_continue = true;
    static constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
    boost::system::error_code ec;
    c->sock.write_some(asio::buffer(k_continue.data(), k_continue.size()), ec);  // fits any empty socket buffer
    if (ec && ec != asio::error::would_block) return close(c);
  }
  wait_readable(c);
}

// ---- routing a request -------------------------------------------------------------

void Worker::dispatch(Conn* c) {
  Exchange& x = c->ex;
  x.reset();
  x.start = Clock::now();
  c->busy = true;
  c->keep_alive = c->parser->keep_alive();
  c->http10 = c->req.version == 10;
  c->request_started = false;
  if (c->req.body.capacity() > 64 * 1024 && c->req.body.size() < 1024) c->req.body.shrink_to_fit();

  if (router::request_id_ok(c->req.request_id)) {
    x.request_id = c->req.request_id;
  } else {
    append_hex(x.request_id, id_prefix, 8);
    x.request_id += '-';
    append_hex(x.request_id, ++request_counter, 12);
  }

  const router::Target target = router::parse_target(c->req.target);
  const std::string_view svc = target.service;
  std::string_view iface = target.iface;
  if (c->req.method != beast::http::verb::post)
    return fail_unrouted(c, Err::MethodNotAllowed, "only POST calls an interface");
  // Yar is told by its magic number; a POST to /{svc} without it is a bad Yar packet.
  x.yar_caller = codec::has_yar_magic(c->req.body) || (iface.empty() && !svc.empty());
  if (!model::validate_name("service", svc) || (!iface.empty() && !model::validate_name("interface", iface)))
    return fail_unrouted(c, Err::NotFound, "call POST /{service}/{interface} with JSON, or POST /{service} with a Yar packet");
  x.service.assign(svc);

  // The caller's key: X-Api-Key, else ?key=, else the Yar token (enforced in a later layer).
  x.key = c->req.api_key;  // Beast has trimmed the white space around it
  if (x.key.empty()) x.key = router::query_param(target.query, "key");

  // A Yar caller: the method is the interface.
  if (x.yar_caller) {
    auto frame = codec::decode_frame(c->req.body);
    if (!frame) {
      x.caller_packager = codec::Packager::Json;
      return fail_yar_status(c, frame.error());
    }
    x.caller_packager = frame->packager;
    auto yreq = codec::decode_request(*frame);
    if (!yreq) return fail_yar_status(c, yreq.error());
    x.yar_id = yreq->id;
    if (x.key.empty()) x.key = frame->header.token;
    x.yar_method = std::move(yreq->method);
    x.yar_params = std::move(yreq->params);
    x.yar_provider_field = frame->header.provider;
    x.yar_token_field = frame->header.token;
    iface = x.yar_method;
  }
  x.iface.assign(iface);

  refresh_routes();
  Bound* b = bind(svc);
  if (!b) return fail_unrouted(c, Err::UnknownService, fmt::format("service \"{}\" is not registered", svc));
  x.route = b->route;
  x.svc_stats = b->svc_stats;
  const ServiceRoute& r = *x.route;
  const router::Verdict v =
      router::route(*table, r, {svc, iface, x.key, gw.options.require_keys, x.start.time_since_epoch().count()});
  if (v.api) {
    x.api = v.api;
    x.iface_stats = b->iface_stats[static_cast<std::size_t>(v.api - r.apis.data())];
  }
  if (v.key_enabled) x.key_stats = &x.svc_stats->keys[x.key];
  x.rate = v.rate;
  if (v.shadow) {  // counted, not answered
    ++x.svc_stats->shadow[index(*v.shadow)];
    if (x.key_stats) ++x.key_stats->shadow[index(*v.shadow)];
  }
  if (v.refusal) return fail(c, *v.refusal, v.message);
  const ApiRoute* api = v.api;

  // The body the provider gets.
  if (!prepare_upstream_body(c)) return;

  std::size_t i = choose(*b);
  if (i == npos)
    return fail(c, Err::Overloaded,
                fmt::format("every address of \"{}\" has {} calls in flight", svc, gw.options.max_pending_per_address));
  // Each call adds to the retry budget, up to a burst.
  retry_tokens = std::min(k_retry_burst, retry_tokens + gw.options.retry_budget_percent / 100.0);
  x.deadline = x.start + api->timeout;
  start_call(c, *b, i);
}

// ---- the provider's request body ----

convert::Caller Worker::caller_of(const Exchange& x) const {
  convert::Caller caller;
  caller.yar = x.yar_caller;
  caller.packager = x.caller_packager;
  caller.yar_id = x.yar_id;
  caller.yar_method = x.yar_method;
  caller.provider_field = x.yar_provider_field;
  caller.token_field = x.yar_token_field;
  return caller;
}

bool Worker::prepare_upstream_body(Conn* c) {
  Exchange& x = c->ex;
  x.up_body.clear();
  const std::int64_t new_id = static_cast<std::int64_t>((request_counter + 1) & 0x7fffffff) | 1;
  auto r = convert::provider_request(*x.api, caller_of(x), x.yar_params, c->req.body, x.key, new_id, x.up_body);
  if (!r) {
    fail(c, Err::BadRequest, r.error().message);
    return false;
  }
  if (!x.yar_caller && r->yar_id != 0) ++request_counter;  // new_id was taken
  x.up_request = *r;
  x.up_body_ref = r->as_sent ? &c->req.body : &x.up_body;
  return true;
}

// ---- upstream --------------------------------------------------------------------------

void Worker::send_upstream(Conn* c) {
  Exchange& x = c->ex;
  AddrState& a = *x.addr;
  if (!a.idle.empty()) {
    x.up = std::move(a.idle.back());
    a.idle.pop_back();
    x.up->reused = true;
    x.up->owner = c;
    return write_upstream(c);
  }
  x.up = boost::intrusive_ptr<UpConn>(new UpConn(ioc));
  x.up->owner = c;
  x.up->reused = false;
  ++stats.upstream_connects;
  auto on_connected = [this, c = boost::intrusive_ptr<Conn>(c), u = x.up](boost::system::error_code ec) {
    if (u->owner != c.get()) return;  // the exchange ended meanwhile (timeout, close)
    if (ec) return upstream_failed(c.get(), Err::Unreachable, fmt::format("cannot connect to {}: {}", *c->ex.addr_name, ec.message()));
    boost::system::error_code ignore;
    u->sock.set_option(tcp::no_delay(true), ignore);
    u->sock.non_blocking(true, ignore);
    write_upstream(c.get());
  };
  if (a.endpoint) {
    x.up->sock.async_connect(*a.endpoint, std::move(on_connected));
    return;
  }
  // A host name: resolve it for each new connection (the resolver runs on its own thread).
  resolver.async_resolve(a.host, std::to_string(a.port),
                         [this, c = boost::intrusive_ptr<Conn>(c), u = x.up, on_connected = std::move(on_connected)](
                             boost::system::error_code ec, tcp::resolver::results_type results) mutable {
                           if (u->owner != c.get()) return;
                           if (ec || results.empty())
                             return upstream_failed(c.get(), Err::Unreachable,
                                                    fmt::format("cannot resolve {}: {}", *c->ex.addr_name,
                                                                ec ? ec.message() : "no address"));
                           u->sock.async_connect(results.begin()->endpoint(), std::move(on_connected));
                         });
}

void Worker::write_upstream(Conn* c) {
  Exchange& x = c->ex;
  const ApiRoute& api = *x.api;
  const std::string& body = *x.up_body_ref;
  std::string& h = x.up_head;
  h.clear();
  h += "POST ";
  h += api.path;
  h += " HTTP/1.1\r\nHost: ";
  h += *x.addr_name;
  h += "\r\nContent-Type: ";
  h += x.up_request.content_type;
  h += "\r\nContent-Length: ";
  append_uint(h, body.size());
  h += "\r\nX-Request-Id: ";
  h += x.request_id;
  h += "\r\nX-Forwarded-For: ";  // the chain the caller sent, then the caller
  if (!c->req.forwarded_for.empty() && c->req.forwarded_for.size() < 1024) {
    h += c->req.forwarded_for;
    h += ", ";
  }
  h += c->peer_ip;
  h += "\r\n\r\n";
  UpConn& u = *x.up;
  u.resp.clear();
  u.parser.emplace(u.resp);
  u.parser->body_limit(64u * 1024 * 1024);
  u.parser->eager(true);
  u.got_bytes = false;
  u.sent = false;
  boost::system::error_code ec;
  std::size_t n = send_now(u.sock, h, body, ec);
  const std::size_t total = h.size() + body.size();
  if (!ec && n == total) return wait_upstream(c);
  if (ec && ec != asio::error::would_block) return upstream_io_error(c, ec);
  if (ec) n = 0;
  // The socket buffer is full: the rest goes through the loop.
  rest_of(x.up_rest, h, body, n);
  asio::async_write(u.sock, asio::buffer(x.up_rest),
                    [this, c = boost::intrusive_ptr<Conn>(c), u = x.up](boost::system::error_code e, std::size_t) {
                      if (u->owner != c.get()) return;
                      if (e) return upstream_io_error(c.get(), e);
                      wait_upstream(c.get());
                    });
}

void Worker::wait_upstream(Conn* c) {
  auto& u = c->ex.up;
  u->sent = true;
  char* p = u->in.prepare(k_read_chunk);
  u->sock.async_read_some(asio::buffer(p, u->in.room()),
                          [this, c = boost::intrusive_ptr<Conn>(c), u](boost::system::error_code ec, std::size_t n) {
                            if (u->owner != c.get()) return;
                            on_upstream_readable(c.get(), ec, n);
                          });
}

void Worker::on_upstream_readable(Conn* c, boost::system::error_code ec, std::size_t n) {
  UpConn& u = *c->ex.up;
  bool eof = false;
  if (ec == asio::error::eof) {
    eof = true;
    ec = {};
  } else if (ec) {
    return upstream_io_error(c, ec);
  } else {
    bool full = n == u.in.room();
    u.in.commit(n);
    u.got_bytes = true;
    while (full) {
      char* p = u.in.prepare(k_read_chunk);
      std::size_t room = u.in.room();
      n = u.sock.read_some(asio::buffer(p, room), ec);
      if (ec == asio::error::would_block) {
        ec = {};
        break;
      }
      if (ec == asio::error::eof) {
        eof = true;
        ec = {};
        break;
      }
      if (ec) return upstream_io_error(c, ec);
      u.in.commit(n);
      full = n == room;
    }
  }
  while (!u.in.empty()) {
    auto data = u.in.data();
    std::size_t used = u.parser->put(asio::buffer(data.data(), data.size()), ec);
    u.in.consume(used);
    if (ec == beast::http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) {
      return upstream_failed(c, Err::BadResponse,
                             fmt::format("unreadable answer from {}: {}", *c->ex.addr_name, ec.message()));
    }
    if (u.parser->is_done()) {
      u.closing = u.closing || eof;  // the provider closed too: not for the pool
      return upstream_done(c);
    }
    if (used == 0) break;
  }
  if (eof) {
    if (!u.got_bytes) {
      return upstream_io_error(c, asio::error::eof);
    }
    u.parser->put_eof(ec);
    if (!ec && u.parser->is_done()) {
      u.closing = true;
      return upstream_done(c);
    }
    return upstream_failed(c, Err::BadResponse,
                           fmt::format("{} closed the connection in the middle of its answer", *c->ex.addr_name));
  }
  wait_upstream(c);
}

// A connection-level failure: a reused connection that the provider had closed before
// reading anything is replaced by a new one, once (the request never reached it).
void Worker::upstream_io_error(Conn* c, boost::system::error_code ec) {
  Exchange& x = c->ex;
  UpConn& u = *x.up;
  const bool stale = u.reused && !u.got_bytes && !x.stale_retry &&
                     (ec == asio::error::eof || ec == asio::error::connection_reset ||
                      ec == asio::error::broken_pipe);
  if (stale) {
    x.stale_retry = true;
    release_upstream(c, false);
    return send_upstream(c);
  }
  if (u.sent)  // the request went out: the provider took it and did not answer
    return upstream_failed(c, Err::BadResponse,
                           ec == asio::error::eof
                               ? fmt::format("{} closed the connection without answering", *x.addr_name)
                               : fmt::format("{} failed while answering: {}", *x.addr_name, ec.message()));
  upstream_failed(c, Err::Unreachable, fmt::format("connection to {} failed: {}", *x.addr_name, ec.message()));
}

void Worker::upstream_timeout(Conn* c) {
  Exchange& x = c->ex;
  upstream_failed(c, Err::Timeout,
                  fmt::format("no answer from {} within {} ms", *x.addr_name, x.api->timeout.count()));
}

void Worker::release_upstream(Conn* c, bool reusable) {
  Exchange& x = c->ex;
  if (!x.up) return;
  boost::intrusive_ptr<UpConn> u = std::move(x.up);
  u->owner = nullptr;
  u->parser.reset();
  if (reusable && !u->closing && u->in.empty() && !stopping &&
      x.addr->idle.size() < gw.options.max_idle_per_address) {
    u->idle_since = now_cached;
    u->in.shrink(k_keep_buffer);
    if (u->resp.body.capacity() > 64 * 1024) std::string().swap(u->resp.body);
    x.addr->idle.push_back(std::move(u));
    return;
  }
  boost::system::error_code ec;
  u->sock.close(ec);
}

void Worker::end_upstream(Conn* c) {
  Exchange& x = c->ex;
  if (x.counted_in_flight) {
    --x.addr->in_flight;
    --x.addr_stats->in_flight;
    --x.svc_stats->in_flight;
    x.counted_in_flight = false;
  }
  if (c->is_linked_inflight()) c->unlink_inflight();
}

void Worker::upstream_failed(Conn* c, Err e, std::string message) {
  Exchange& x = c->ex;
  x.addr_err = e;
  if (try_retry(c)) return;
  end_upstream(c);
  release_upstream(c, false);
  fail(c, e, message);
}

// ---- the provider answered: the caller's answer ---------------------------------------

void Worker::upstream_done(Conn* c) {
  Exchange& x = c->ex;
  end_upstream(c);
  UpConn& u = *x.up;
  const bool reusable = u.parser->keep_alive() && !u.closing;
  // Keep the answer: the connection goes back to the pool before we answer.
  std::swap(x.resp_body, u.resp.body);
  const int status = u.resp.status;
  release_upstream(c, reusable);

  if (status >= 500) {  // a failure of the address; an idempotent call goes to another one
    x.addr_err = Err::ProviderError;
    if (try_retry(c)) return;
  }
  convert::Answer answer =
      convert::caller_answer(*x.api, caller_of(x), x.up_request, status, x.resp_body, *x.addr_name, x.out_body);
  if (answer.address_failed) x.addr_err = Err::BadResponse;
  if (answer.provider_error) x.final_err = Err::ProviderError;
  switch (answer.kind) {
    case convert::Answer::Kind::Provider:
      return respond(c, answer.status, answer.content_type, x.resp_body);
    case convert::Answer::Kind::Out:
      return respond(c, answer.status, answer.content_type, x.out_body);
    case convert::Answer::Kind::Failure:
      return fail(c, answer.error, answer.message, answer.extra ? &*answer.extra : nullptr);
  }
}

// ---- answering ---------------------------------------------------------------------------

void Worker::fail_unrouted(Conn* c, Err e, std::string_view message) {
  c->ex.unrouted = true;
  fail(c, e, message);
}

void Worker::fail_yar_status(Conn* c, const Error& error) {
  // A bad Yar packet: answered as PHP's Yar server would (HTTP 200, its status and message).
  Exchange& x = c->ex;
  x.unrouted = x.service.empty() || !x.route;
  x.final_err = Err::BadRequest;
  auto status = static_cast<codec::YarStatus>(error.code ? error.code : static_cast<int>(codec::YarStatus::Packager));
  x.out_body = codec::encode_error_response(x.yar_id, status, error.message, x.caller_packager);
  record(c);
  write_response(c, 200, "application/octet-stream", x.out_body, &info(Err::BadRequest).code);
}

void Worker::fail(Conn* c, Err e, std::string_view message, const codec::Value* extra) {
  Exchange& x = c->ex;
  x.final_err = e;
  record(c);
  if (x.yar_caller) {
    auto status = static_cast<codec::YarStatus>(info(e).yar_status);
    x.out_body = codec::encode_error_response(x.yar_id, status, yar_error_message(e, message), x.caller_packager);
    return write_response(c, 200, "application/octet-stream", x.out_body, &info(e).code);
  }
  x.out_body = error_json(e, message, x.service, x.iface, extra);
  write_response(c, info(e).http_status, "application/json", x.out_body, &info(e).code);
}

void Worker::respond_error(Conn* c, Err e, std::string_view message) {
  // Before a request could be read whole: always JSON, always closing.
  Exchange& x = c->ex;
  x.reset();
  x.final_err = e;
  x.unrouted = true;
  x.start = Clock::now();
  c->busy = true;
  c->request_started = false;
  c->keep_alive = false;
  record(c);
  x.out_body = error_json(e, message, {}, {});
  write_response(c, info(e).http_status, "application/json", x.out_body, &info(e).code);
}

void Worker::respond(Conn* c, int status, std::string_view content_type, const std::string& body) {
  record(c);
  write_response(c, status, content_type, body, nullptr);
}

void Worker::record(Conn* c) {
  Exchange& x = c->ex;
  if (x.recorded) return;
  x.recorded = true;
  const auto us = x.elapsed_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - x.start).count());
  const Err* err = x.final_err ? &*x.final_err : nullptr;
  if (x.unrouted || !x.svc_stats) {
    stats.unrouted.record(us, err);
    return;
  }
  if (x.addr) {  // a provider was called: its health
    if (x.addr_err) note_failure(c);
    else note_success(*x.addr);
  }
  x.svc_stats->counters.record(us, err);
  if (x.iface_stats) x.iface_stats->record(us, err);
  if (x.key_stats) x.key_stats->counters.record(us, err);
  if (x.addr_stats) x.addr_stats->counters.record(us, x.addr_err ? &*x.addr_err : nullptr);
}

void Worker::write_response(Conn* c, int status, std::string_view content_type, const std::string& body,
                            const std::string_view* error_code) {
  Exchange& x = c->ex;
  std::string& h = x.out_head;
  h.clear();
  h += c->http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  append_uint(h, static_cast<std::uint64_t>(status));
  h += ' ';
  h += reason_phrase(status);
  h += "\r\nContent-Type: ";
  h += content_type;
  h += "\r\nContent-Length: ";
  append_uint(h, body.size());
  if (!x.request_id.empty()) {
    h += "\r\nX-Request-Id: ";
    h += x.request_id;
  }
  if (x.addr_name) {  // an address was chosen
    h += "\r\nX-Upstream: ";
    h += *x.addr_name;
  }
  if (error_code) {
    h += "\r\nX-Svcctl-Error: ";
    h += *error_code;
  }
  if (x.rate) {
    // Seconds, rounded up: a client that waits that long finds what the header says.
    auto secs = [](std::int64_t ns) { return static_cast<std::uint64_t>((ns + 999'999'999) / 1'000'000'000); };
    h += "\r\nX-RateLimit-Limit: ";
    append_uint(h, static_cast<std::uint64_t>(x.rate->limit));
    h += "\r\nX-RateLimit-Remaining: ";
    append_uint(h, static_cast<std::uint64_t>(x.rate->remaining));
    h += "\r\nX-RateLimit-Reset: ";
    append_uint(h, secs(x.rate->reset_ns));
    if (!x.rate->allowed) {
      h += "\r\nRetry-After: ";
      append_uint(h, std::max<std::uint64_t>(1, secs(x.rate->retry_after_ns)));
    }
  }
  if (stopping || draining) c->keep_alive = false;
  if (Log* log = gw.options.access_log) {
    CallRecord r;
    r.request_id = x.request_id;
    r.service = x.service;
    r.iface = x.iface;
    if (x.addr_name) r.upstream = *x.addr_name;
    r.status = status;
    if (error_code) r.error = *error_code;
    r.duration_us = x.elapsed_us;  // record() ran before every answer
    r.retried = x.retried;
    log->format_call(access_buf, r);
    if (access_buf.size() > 64 * 1024) flush_access_log();
  }
  if (!c->keep_alive) h += "\r\nConnection: close";
  else if (c->http10) h += "\r\nConnection: keep-alive";
  h += "\r\n\r\n";
  boost::system::error_code ec;
  std::size_t n = send_now(c->sock, h, body, ec);
  const std::size_t total = h.size() + body.size();
  if (!ec && n == total) return after_response(c);
  if (ec && ec != asio::error::would_block) return close(c);
  if (ec) n = 0;
  rest_of(x.out_rest, h, body, n);
  asio::async_write(c->sock, asio::buffer(x.out_rest),
                    [c = boost::intrusive_ptr<Conn>(c)](boost::system::error_code e, std::size_t) {
                      if (c->closed) return;
                      if (e) return c->w.close(c.get());
                      c->w.after_response(c.get());
                    });
}

void Worker::after_response(Conn* c) {
  c->busy = false;
  c->parser.reset();
  c->ex.route.reset();
  if (!c->keep_alive) {
    boost::system::error_code ec;
    c->sock.shutdown(tcp::socket::shutdown_send, ec);
    return close(c);
  }
  if (c->ex.resp_body.capacity() > 64 * 1024) std::string().swap(c->ex.resp_body);
  if (c->ex.out_body.capacity() > 64 * 1024) std::string().swap(c->ex.out_body);
  c->in.shrink(k_keep_buffer);
  c->deadline = now_cached + gw.options.idle_timeout;
  if (!c->in.empty()) {
    // A pipelined request is already here. Through the loop, not a direct call: answers that
    // need no provider would otherwise recurse once per request on the same stack.
    asio::post(ioc, [c = boost::intrusive_ptr<Conn>(c)] {
      if (!c->closed) c->w.process(c.get());
    });
    return;
  }
  wait_readable(c);
}

void Worker::close(Conn* c) {
  if (c->closed) return;
  c->closed = true;
  if (c->ex.up || c->is_linked_inflight()) {
    end_upstream(c);
    release_upstream(c, false);
  }
  c->ex.route.reset();
  if (c->is_linked()) c->unlink();
  --stats.connections;
  live.fetch_sub(1, std::memory_order_relaxed);
  boost::system::error_code ec;
  c->sock.close(ec);
}

}  // namespace svcctl::gateway
