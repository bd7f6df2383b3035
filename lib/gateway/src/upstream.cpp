// The provider side of the data plane (see upstream.hpp).
#include "upstream.hpp"

#include "internal.hpp"
#include "wire.hpp"

#include <fmt/format.h>

#include <string>

namespace svcctl::gateway {

using namespace wire;

Upstreams::Upstreams(asio::io_context& ioc, Listener& listener, Limits limits, std::uint64_t& connects)
    : ioc_(ioc), resolver_(ioc), listener_(listener), limits_(limits), connects_(connects) {}

std::unique_ptr<AddrState> Upstreams::make_state(const AddrRoute& a, Health* health) {
  auto st = std::make_unique<AddrState>();
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(a.host, ec);
  if (!ec) st->endpoint = tcp::endpoint(ip, a.port);
  st->host = a.host;
  st->port = a.port;
  st->health = health;
  return st;
}

const AddrState* Upstreams::find(const std::string& name) const {
  auto it = addrs_.find(name);
  return it == addrs_.end() ? nullptr : it->second.get();
}

void Upstreams::close_idle(Clock::time_point now) {
  for (auto& [_, a] : addrs_) {
    auto& idle = a->idle;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < idle.size(); ++i) {
      if (now - idle[i]->idle_since < limits_.idle_timeout) {
        idle[keep++] = std::move(idle[i]);
      } else {
        boost::system::error_code ec;
        idle[i]->sock.close(ec);
      }
    }
    idle.resize(keep);
  }
}

void Upstreams::shutdown() {
  stopping_ = true;
  resolver_.cancel();
  boost::system::error_code ec;
  for (auto& [_, a] : addrs_) {
    for (auto& u : a->idle) u->sock.close(ec);
    a->idle.clear();
  }
}

void Upstreams::send(Conn* c) {
  Exchange& x = c->ex;
  AddrState& a = *x.addr;
  if (!a.idle.empty()) {
    x.up = std::move(a.idle.back());
    a.idle.pop_back();
    x.up->reused = true;
    x.up->owner = c;
    return write(c);
  }
  x.up = boost::intrusive_ptr<UpConn>(new UpConn(ioc_));
  x.up->owner = c;
  x.up->reused = false;
  ++connects_;
  auto on_connected = [this, c = boost::intrusive_ptr<Conn>(c), u = x.up](boost::system::error_code ec) {
    if (u->owner != c.get()) return;  // the exchange ended meanwhile (timeout, close)
    if (ec)
      return listener_.upstream_failed(c.get(), Err::Unreachable,
                                       fmt::format("cannot connect to {}: {}", *c->ex.addr_name, ec.message()));
    boost::system::error_code ignore;
    u->sock.set_option(tcp::no_delay(true), ignore);
    u->sock.non_blocking(true, ignore);
    write(c.get());
  };
  if (a.endpoint) {
    x.up->sock.async_connect(*a.endpoint, std::move(on_connected));
    return;
  }
  // A host name: resolve it for each new connection (the resolver runs on its own thread).
  resolver_.async_resolve(a.host, std::to_string(a.port),
                         [this, c = boost::intrusive_ptr<Conn>(c), u = x.up, on_connected = std::move(on_connected)](
                             boost::system::error_code ec, tcp::resolver::results_type results) mutable {
                           if (u->owner != c.get()) return;
                           if (ec || results.empty())
                             return listener_.upstream_failed(c.get(), Err::Unreachable,
                                                              fmt::format("cannot resolve {}: {}", *c->ex.addr_name,
                                                                          ec ? ec.message() : "no address"));
                           u->sock.async_connect(results.begin()->endpoint(), std::move(on_connected));
                         });
}

void Upstreams::write(Conn* c) {
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
  if (!ec && n == total) return wait(c);
  if (ec && ec != asio::error::would_block) return io_error(c, ec);
  if (ec) n = 0;
  // The socket buffer is full: the rest goes through the loop.
  rest_of(x.up_rest, h, body, n);
  asio::async_write(u.sock, asio::buffer(x.up_rest),
                    [this, c = boost::intrusive_ptr<Conn>(c), u = x.up](boost::system::error_code e, std::size_t) {
                      if (u->owner != c.get()) return;
                      if (e) return io_error(c.get(), e);
                      wait(c.get());
                    });
}

void Upstreams::wait(Conn* c) {
  auto& u = c->ex.up;
  u->sent = true;
  char* p = u->in.prepare(k_read_chunk);
  u->sock.async_read_some(asio::buffer(p, u->in.room()),
                          [this, c = boost::intrusive_ptr<Conn>(c), u](boost::system::error_code ec, std::size_t n) {
                            if (u->owner != c.get()) return;
                            on_readable(c.get(), ec, n);
                          });
}

void Upstreams::on_readable(Conn* c, boost::system::error_code ec, std::size_t n) {
  UpConn& u = *c->ex.up;
  bool eof = false;
  if (ec == asio::error::eof) {
    eof = true;
    ec = {};
  } else if (ec) {
    return io_error(c, ec);
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
      if (ec) return io_error(c, ec);
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
      return listener_.upstream_failed(c, Err::BadResponse,
                             fmt::format("unreadable answer from {}: {}", *c->ex.addr_name, ec.message()));
    }
    if (u.parser->is_done()) {
      u.closing = u.closing || eof;  // the provider closed too: not for the pool
      return listener_.upstream_answered(c);
    }
    if (used == 0) break;
  }
  if (eof) {
    if (!u.got_bytes) {
      return io_error(c, asio::error::eof);
    }
    u.parser->put_eof(ec);
    if (!ec && u.parser->is_done()) {
      u.closing = true;
      return listener_.upstream_answered(c);
    }
    return listener_.upstream_failed(c, Err::BadResponse,
                           fmt::format("{} closed the connection in the middle of its answer", *c->ex.addr_name));
  }
  wait(c);
}

// A connection-level failure: a reused connection that the provider had closed before
// reading anything is replaced by a new one, once (the request never reached it).
void Upstreams::io_error(Conn* c, boost::system::error_code ec) {
  Exchange& x = c->ex;
  UpConn& u = *x.up;
  const bool stale = u.reused && !u.got_bytes && !x.stale_retry &&
                     (ec == asio::error::eof || ec == asio::error::connection_reset ||
                      ec == asio::error::broken_pipe);
  if (stale) {
    x.stale_retry = true;
    release(x, Reuse::Close, {});
    return send(c);
  }
  if (u.sent)  // the request went out: the provider took it and did not answer
    return listener_.upstream_failed(c, Err::BadResponse,
                           ec == asio::error::eof
                               ? fmt::format("{} closed the connection without answering", *x.addr_name)
                               : fmt::format("{} failed while answering: {}", *x.addr_name, ec.message()));
  listener_.upstream_failed(c, Err::Unreachable, fmt::format("connection to {} failed: {}", *x.addr_name, ec.message()));
}

void Upstreams::release(Exchange& x, Reuse reuse, Clock::time_point now) {
  if (!x.up) return;
  boost::intrusive_ptr<UpConn> u = std::move(x.up);
  u->owner = nullptr;
  u->parser.reset();
  if (reuse == Reuse::Pool && !u->closing && u->in.empty() && !stopping_ &&
      x.addr->idle.size() < limits_.max_idle_per_address) {
    u->idle_since = now;
    u->in.shrink(k_keep_buffer);
    if (u->resp.body.capacity() > 64 * 1024) std::string().swap(u->resp.body);
    x.addr->idle.push_back(std::move(u));
    return;
  }
  boost::system::error_code ec;
  u->sock.close(ec);
}

}  // namespace svcctl::gateway
