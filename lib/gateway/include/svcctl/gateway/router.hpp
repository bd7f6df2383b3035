// Routing a call, pure: from the request's target to a service and interface, and from the
// route table and the call to what the gateway does with it (the interface to call, the
// caller's ACL, or the refusal to answer). No I/O; the rate bucket is the only state it
// touches (an atomic, shared by the workers).
#pragma once

#include <svcctl/gateway/errors.hpp>
#include <svcctl/gateway/routes.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace svcctl::gateway::router {

struct Target {
  std::string_view service;
  std::string_view iface;  // empty for /{svc} (a Yar call names its method in the packet)
  std::string_view query;
};
// "/{svc}" or "/{svc}/{iface}" (one trailing slash allowed), then "?query". The names are
// not validated here.
Target parse_target(std::string_view target);

// The value of `name` in a query string (no percent-decoding: keys are plain names).
std::string_view query_param(std::string_view query, std::string_view name);

// A request id from the caller is kept when it is short (128 bytes at most) and printable.
bool request_id_ok(std::string_view id);

// What the router needs of a call whose service is known.
struct Call {
  std::string_view service;
  std::string_view iface;
  std::string_view key;       // the caller's (empty: none)
  bool require_keys = false;  // the gateway's --require-keys
  std::int64_t now_ns = 0;    // steady clock, for the rate
  std::string_view version;   // the version the caller asks for (empty: any)
};

struct Verdict {
  const ApiRoute* api = nullptr;  // the interface, when the service has it
  const AclRoute* acl = nullptr;  // the caller's ACL for the service, when it has one
  // Answered: the call is refused with this error and message.
  std::optional<Err> refusal;
  std::string message;
  // Counted only: what an ACL in shadow mode (or a service whose ACLs all are) would have
  // refused; the first such refusal, at most one per call.
  std::optional<Err> shadow;
  // The rate decision when a rate was enforced (for the X-RateLimit-* headers).
  std::optional<RateDecision> rate;
  bool key_enabled = false;  // a registered, enabled key: its counters are kept
  // The version the call is pinned to: its key's ACL's, else the one the caller asked
  // for; empty: none (a split, if any, chooses).
  std::string_view version;
};

// The checks, in order: the caller's key and ACL (when the service has ACLs or the
// gateway requires keys), the service up, the interface known and up, an address to call,
// then the key's rate. The version pin is routing, not a check: an ACL in shadow mode pins
// too.
Verdict route(const RouteTable& table, const ServiceRoute& service, const Call& call);

}  // namespace svcctl::gateway::router
