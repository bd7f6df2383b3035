// The admin listener: GET /-/healthz, /-/stats, /metrics, /-/registry, on its own thread
// with its own loop (Beast's message API: these are rare requests).
#pragma once

#include "internal.hpp"

namespace svcctl::gateway {

struct Gateway::Impl::Admin {
  explicit Admin(Gateway::Impl& impl) : gw(impl), acceptor(ioc) {}
  void start();
  void stop();

  // The answer to one admin request: status, content type, body.
  struct Reply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
  };
  Reply handle(std::string_view target) const;

  Gateway::Impl& gw;
  asio::io_context ioc{1};
  tcp::acceptor acceptor;
  std::thread thread;

 private:
  void accept();
};

}  // namespace svcctl::gateway
