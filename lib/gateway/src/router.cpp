#include <svcctl/gateway/router.hpp>

#include <fmt/format.h>

namespace svcctl::gateway::router {

namespace {

// A key as a message shows it: keys come from callers, so at most 64 bytes of it.
std::string_view shown(std::string_view key) { return key.substr(0, 64); }

// A refusal: answered, or with `shadow` only counted. `message` is only written for a
// refusal that is answered. False when the call is refused.
template <typename Message>
bool refuse(Verdict& v, Err e, bool shadow, Message&& message) {
  if (shadow) {
    v.shadow = e;
    return true;
  }
  v.refusal = e;
  v.message = message();
  return false;
}

// The caller's key and its ACL for the service. `enforcing`: refusals are answered, not
// only counted.
bool authorize(Verdict& v, const ServiceRoute& r, const Call& call, KeyState key, bool enforcing) {
  if (call.key.empty())
    return refuse(v, Err::MissingKey, !enforcing, [&] {
      return fmt::format("service \"{}\" needs a caller key: send it in X-Api-Key, ?key= or the Yar token",
                         call.service);
    });
  if (key == KeyState::Unknown)
    return refuse(v, Err::UnknownKey, !enforcing,
                  [&] { return fmt::format("key \"{}\" is not registered", shown(call.key)); });
  if (key == KeyState::Disabled)
    return refuse(v, Err::KeyDisabled, !enforcing,
                  [&] { return fmt::format("key \"{}\" is disabled", shown(call.key)); });
  const AclRoute* acl = r.find_acl(call.key);
  if (!acl)
    return refuse(v, Err::Forbidden, !enforcing, [&] {
      return fmt::format("key \"{}\" may not call service \"{}\"", shown(call.key), call.service);
    });
  v.acl = acl;
  if (!acl->allows(call.iface))
    return refuse(v, Err::Forbidden, acl->shadow || !enforcing, [&] {
      return fmt::format("key \"{}\" may not call interface \"{}\" of \"{}\"", shown(call.key), call.iface,
                         call.service);
    });
  return true;
}

bool within_rate(Verdict& v, const RouteTable& table, const Call& call, bool enforcing) {
  const AclRoute& acl = *v.acl;
  const RateDecision d = take_token(*acl.bucket, *acl.rate, acl.burst, table.gateways, call.now_ns);
  const bool shadow = acl.shadow || !enforcing;
  if (!shadow) v.rate = d;  // the X-RateLimit-* headers
  if (d.allowed) return true;
  return refuse(v, Err::RateLimited, shadow, [&] {
    return fmt::format("key \"{}\" is over its rate for \"{}\": {:g}/s, burst {}, shared by {} gateway{}",
                       shown(call.key), call.service, *acl.rate, acl.burst, table.gateways,
                       table.gateways == 1 ? "" : "s");
  });
}

Verdict refused(Verdict v, Err e, std::string message) {
  v.refusal = e;
  v.message = std::move(message);
  return v;
}

}  // namespace

Target parse_target(std::string_view target) {
  Target t;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    t.query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  if (target.size() > 1 && target.front() == '/') {
    std::string_view rest = target.substr(1);
    auto slash = rest.find('/');
    t.service = rest.substr(0, slash);
    if (slash != std::string_view::npos) {
      t.iface = rest.substr(slash + 1);
      if (!t.iface.empty() && t.iface.back() == '/') t.iface.remove_suffix(1);
    }
  }
  return t;
}

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return part.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

bool request_id_ok(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (c <= ' ' || c > '~') return false;
  return true;
}

Verdict route(const RouteTable& table, const ServiceRoute& r, const Call& call) {
  Verdict v;
  v.api = r.find_api(call.iface);
  const KeyState key = call.key.empty() ? KeyState::Unknown : table.key_state(call.key);
  v.key_enabled = key == KeyState::Enabled;
  const bool keyed = !r.acls.empty() || call.require_keys;
  const bool enforcing = r.enforcing || call.require_keys;  // else every refusal is only counted
  if (keyed && !authorize(v, r, call, key, enforcing)) return v;
  v.version = v.acl && !v.acl->version.empty() ? std::string_view(v.acl->version) : call.version;
  if (!r.up) return refused(std::move(v), Err::ServiceDown, fmt::format("service \"{}\" is down", call.service));
  if (!v.api)
    return refused(std::move(v), Err::UnknownInterface,
                   fmt::format("service \"{}\" has no interface \"{}\"", call.service, call.iface));
  if (!v.api->up)
    return refused(std::move(v), Err::InterfaceDown,
                   fmt::format("interface \"{}\" of \"{}\" is down", call.iface, call.service));
  if (r.candidates == 0)
    return refused(std::move(v), Err::NoUpstream, fmt::format("service \"{}\" has no address up", call.service));
  if (v.acl && v.acl->rate && !v.shadow) within_rate(v, table, call, enforcing);
  return v;
}

}  // namespace svcctl::gateway::router
