// The data plane (with connection.cpp and upstream.cpp). One Worker per thread: its
// io_context, acceptor, client connections, upstream pools, counters and timers are
// touched by that thread only.
//
// A request's life on a client connection (Conn):
//   read → parse (http::RequestParser) → route (RouteTable, the worker's ServiceState) →
//   build the upstream body (passthrough or conversion) → Upstreams (upstream.hpp): a
//   pooled UpConn or a new one, write, read and parse the answer → build the caller's
//   answer → write → next request (keep-alive) or close.
// Sockets are non-blocking: reads go through the loop (async_read_some), and a write is
// tried at once, falling back to the loop only when the socket buffer is full. One tick per
// worker checks deadlines: upstream timeouts every 10 ms, client read deadlines and idle
// upstream connections every 250 ms.
//
// This file: the worker's setup, accepting, its tick, routing state (ServiceState), choosing an
// address, ejections and retries, dispatching a parsed request (router, conversion), and
// the provider's answer turned into the caller's.
#include "internal.hpp"
#include "wire.hpp"

#include <svcctl/codec/yar.hpp>
#include <svcctl/gateway/convert.hpp>
#include <svcctl/gateway/router.hpp>
#include <svcctl/model/model.hpp>

#include <fmt/format.h>

#include <random>

namespace svcctl::gateway {

using namespace wire;

// ---- worker: setup, routing state, timers ------------------------------------------

Worker::Worker(Gateway::Impl& impl, unsigned n)
    : gw(impl),
      number(n),
      ejection{impl.options.eject_after, impl.options.eject_base, impl.options.eject_max,
               impl.options.max_ejected_percent},
      acceptor(ioc),
      tick(ioc),
      upstreams(ioc, *this, {impl.options.max_idle_per_address, impl.options.upstream_idle_timeout},
                stats.upstream_connects) {
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
  upstreams.shutdown();
  while (!conns.empty()) close(&conns.front());
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
  upstreams.close_idle(now);
}

void Worker::refresh_routes() {
  if (gw.routes.generation() == route_gen && table) return;
  table = gw.routes.current();
  route_gen = table->generation;
}

Worker::ServiceState* Worker::bind(std::string_view svc) {
  auto it = table->services.find(svc);
  if (it == table->services.end()) return nullptr;
  const auto& route = it->second;
  auto bit = service_states.find(svc);
  if (bit == service_states.end()) bit = service_states.emplace(std::string(svc), ServiceState{}).first;
  ServiceState& b = bit->second;
  if (b.route == route) return &b;
  // The service changed: rebind its addresses and counters.
  b.route = route;
  b.svc_stats = &stats.services[route->name];
  b.addrs.clear();
  b.addr_stats.clear();
  for (const auto& a : route->addrs) {
    b.addrs.push_back(&upstreams.address(a, [this](const std::string& name) { return gw.health_of(name); }));
    b.addr_stats.push_back(&b.svc_stats->addresses[a.name]);
  }
  b.iface_stats.clear();
  for (const auto& api : route->apis) b.iface_stats.push_back(&b.svc_stats->interfaces[api.name]);
  b.swrr.assign(route->candidates, 0);
  b.version_stats.clear();
  b.version_swrr.clear();
  b.addr_version_stats.assign(route->versions.empty() ? 0 : route->addrs.size(), nullptr);
  for (const auto& v : route->versions) {
    b.version_stats.push_back(&b.svc_stats->versions[v.version]);
    b.version_swrr.emplace_back(v.candidates, 0);
    for (std::size_t i : v.indexes) b.addr_version_stats[i] = b.version_stats.back();
  }
  return &b;
}

namespace {
// A service's addresses as balance::choose asks about them: this worker's state for them.
struct ServiceAddrs {
  const Worker::ServiceState& b;
  const AddrState* avoid;
  std::int64_t now;
  std::int64_t in_flight(std::size_t i) const { return b.addr_stats[i]->in_flight; }
  std::int64_t pending(std::size_t i) const { return b.addrs[i]->in_flight; }
  bool ejected(std::size_t i) const { return b.addrs[i]->health->ejected(now); }
  bool avoided(std::size_t i) const { return b.addrs[i] == avoid; }
};
}  // namespace

std::size_t Worker::choose(ServiceState& b, std::size_t version, const AddrState* avoid) {
  const std::int64_t now = now_ns();
  ServiceAddrs addrs{b, avoid, now};
  const balance::Rules rules{gw.options.balance, gw.options.panic_percent, static_cast<std::int64_t>(pending_limit),
                             gw.options.dc_min_percent};
  const balance::Situation situation{now < gw.ejection_horizon.load(std::memory_order_relaxed), avoid != nullptr};
  auto random = [this] { return next_random(); };
  balance::Choice c;
  if (version == npos) {
    c = balance::choose(*b.route, addrs, b.swrr, rules, situation, random);
  } else {
    const VersionRoute& v = b.route->versions[version];
    balance::VersionAddrs<ServiceAddrs> in_version{addrs, v};
    c = balance::choose(v, in_version, b.version_swrr[version], rules, situation, random);
    if (c.index != npos) c.index = v.indexes[c.index];
  }
  if (c.panic) ++b.svc_stats->panic;
  if (c.spilled) ++b.svc_stats->dc_spilled;
  return c.index;
}

balance::VersionPick Worker::pick_version(const Conn* c, const ServiceRoute& r, std::string_view pin) {
  std::string_view sticky;
  if (r.sticky.by == model::Sticky::By::Key) sticky = c->ex.key;
  else if (r.sticky.by == model::Sticky::By::Header) sticky = c->req.field(r.sticky.header);
  const std::uint64_t point = sticky.empty() ? next_random() : balance::sticky_point(sticky);
  return balance::pick_version(r, pin, point);
}

void Worker::note_success(AddrState& a) { outlier::succeeded(*a.health, ejection, now_ns()); }

// A failure on the exchange's address (connect error, timeout, 5xx, unreadable answer).
void Worker::note_failure(Conn* c) {
  Exchange& x = c->ex;
  const std::int64_t now = Clock::now().time_since_epoch().count();
  auto count_ejected = [&] {
    std::size_t n = 0;
    for (const auto& ar : x.route->addrs) {
      const AddrState* a = upstreams.find(ar.name);
      if (a && a->health->ejected(now)) ++n;
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
  ServiceState* b = bind(x.service);
  if (!b) return false;
  const ApiRoute* api = x.api;
  std::size_t version = x.version;  // a retry stays in the call's version
  if (b->route != x.route) {  // the registry changed meanwhile: the call as it is now
    api = b->route->find_api(x.iface);
    if (!b->route->up || !api || !api->up || api->encoding != x.api->encoding || api->path != x.api->path ||
        api->method != x.api->method)
      return false;
    if (version != npos) {
      version = b->route->find_version(x.route->versions[version].version);
      if (version == b->route->versions.size()) return false;
    }
  }
  if (retry_tokens < 1) {
    ++x.svc_stats->retries_denied;
    return false;
  }
  std::size_t i = choose(*b, version, x.addr);
  if (i == npos) return false;
  retry_tokens -= 1;
  ++x.svc_stats->retries;
  // The failed attempt counts on its address; the call goes on.
  auto us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - x.start).count());
  x.addr_stats->counters.record(us, &*x.addr_err);
  note_failure(c);
  end_upstream(c);
  release_upstream(c, Upstreams::Reuse::Close);
  x.route = b->route;
  x.api = api;
  x.iface_stats = b->iface_stats[static_cast<std::size_t>(api - x.route->apis.data())];
  x.addr_err.reset();
  x.retried = true;
  x.version = version;
  start_call(c, *b, i);
  return true;
}

void Worker::start_call(Conn* c, ServiceState& b, std::size_t i) {
  Exchange& x = c->ex;
  x.addr = b.addrs[i];
  x.addr_stats = b.addr_stats[i];
  x.version_stats = b.addr_version_stats.empty() ? nullptr : b.addr_version_stats[i];
  x.addr_name = &x.route->addrs[i].name;
  ++x.addr->in_flight;
  ++x.addr_stats->in_flight;
  ++x.svc_stats->in_flight;
  x.counted_in_flight = true;
  if (!c->is_linked_inflight()) inflight.push_back(*c);
  upstreams.send(c);
}

void Worker::upstream_timeout(Conn* c) {
  Exchange& x = c->ex;
  upstream_failed(c, Err::Timeout,
                  fmt::format("no answer from {} within {} ms", *x.addr_name, x.api->timeout.count()));
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
  release_upstream(c, Upstreams::Reuse::Close);
  fail(c, e, message);
}


// ---- routing a request -------------------------------------------------------------

bool Worker::read_yar_call(Conn* c) {
  Exchange& x = c->ex;
  auto frame = codec::decode_frame(c->req.body);
  if (!frame) {
    x.caller_packager = codec::Packager::Json;
    fail_yar_status(c, frame.error());
    return false;
  }
  x.caller_packager = frame->packager;
  auto yreq = codec::decode_request(*frame);
  if (!yreq) {
    fail_yar_status(c, yreq.error());
    return false;
  }
  x.yar_id = yreq->id;
  if (x.key.empty()) x.key = frame->header.token;
  x.yar_method = std::move(yreq->method);
  x.yar_params = std::move(yreq->params);
  x.yar_provider_field = frame->header.provider;
  x.yar_token_field = frame->header.token;
  return true;
}

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
    if (!read_yar_call(c)) return;
    iface = x.yar_method;
  }
  x.iface.assign(iface);

  refresh_routes();
  ServiceState* b = bind(svc);
  if (!b) return fail_unrouted(c, Err::UnknownService, fmt::format("service \"{}\" is not registered", svc));
  x.route = b->route;
  x.svc_stats = b->svc_stats;
  const ServiceRoute& r = *x.route;
  const std::string_view version = !c->req.pinned_version.empty() ? std::string_view(c->req.pinned_version)
                                                             : router::query_param(target.query, "version");
  const router::Verdict v = router::route(
      *table, r, {svc, iface, x.key, gw.options.require_keys, x.start.time_since_epoch().count(), version});
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

  if (!v.version.empty() || r.split) {
    const balance::VersionPick pick = pick_version(c, r, v.version);
    if (pick.passed_over != npos) ++b->version_stats[pick.passed_over]->passed_over;
    if (pick.kind == balance::VersionPick::Kind::None)
      return fail(c, Err::NoUpstream, fmt::format("service \"{}\" has no address of version \"{}\" up", svc, v.version));
    x.version = pick.index;  // npos: every address
  }
  std::size_t i = choose(*b, x.version);
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
  auto r =
      convert::provider_request(*x.api, caller_of(x), x.yar_params, c->req.body, x.key, request_counter, x.up_body);
  if (!r) {
    fail(c, Err::BadRequest, r.error().message);
    return false;
  }
  x.up_request = *r;
  x.up_body_ref = r->as_sent ? &c->req.body : &x.up_body;
  return true;
}


// ---- the provider answered: the caller's answer ---------------------------------------

void Worker::upstream_answered(Conn* c) {
  Exchange& x = c->ex;
  end_upstream(c);
  UpConn& u = *x.up;
  const auto reuse = u.parser->keep_alive() && !u.closing ? Upstreams::Reuse::Pool : Upstreams::Reuse::Close;
  // Keep the answer: the connection goes back to the pool before we answer.
  std::swap(x.resp_body, u.resp.body);
  const int status = u.resp.status;
  release_upstream(c, reuse);

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
  if (x.version_stats) x.version_stats->counters.record(us, err);
}

}  // namespace svcctl::gateway
