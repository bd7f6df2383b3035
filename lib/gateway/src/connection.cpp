// The client side of the data plane: a connection's reads (through the loop, then as
// much as the socket holds), the request parser, and the answer written back (the error
// shape, Yar status answers, the head with its request id, upstream and rate headers, the
// access log line), then keep-alive or close.
#include "internal.hpp"
#include "wire.hpp"

#include <svcctl/codec/yar.hpp>

#include <fmt/format.h>

namespace svcctl::gateway {

using namespace wire;

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
    release_upstream(c, Upstreams::Reuse::Close);
  }
  c->ex.route.reset();
  if (c->is_linked()) c->unlink();
  --stats.connections;
  live.fetch_sub(1, std::memory_order_relaxed);
  boost::system::error_code ec;
  c->sock.close(ec);
}

}  // namespace svcctl::gateway
