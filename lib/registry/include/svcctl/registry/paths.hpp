// Where each entity lives in ZooKeeper (DESIGN §2). Names must be validated first.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace svcctl::registry::paths {

inline constexpr std::string_view k_services = "/service";
inline constexpr std::string_view k_addresses = "/address";
inline constexpr std::string_view k_apis = "/api";
inline constexpr std::string_view k_keys = "/key";
inline constexpr std::string_view k_acls = "/acl";
inline constexpr std::string_view k_gateways = "/gateway";

inline std::string under(std::string_view root, std::string_view name) {
  std::string p(root);
  p += '/';
  p += name;
  return p;
}
inline std::string under(std::string_view root, std::string_view a, std::string_view b) {
  return under(under(root, a), b);
}

inline std::string service(std::string_view svc) { return under(k_services, svc); }
inline std::string addresses(std::string_view svc) { return under(k_addresses, svc); }
inline std::string address(std::string_view svc, std::string_view hp) { return under(k_addresses, svc, hp); }
inline std::string apis(std::string_view svc) { return under(k_apis, svc); }
inline std::string api(std::string_view svc, std::string_view iface) { return under(k_apis, svc, iface); }
inline std::string key(std::string_view k) { return under(k_keys, k); }
inline std::string acls(std::string_view svc) { return under(k_acls, svc); }
inline std::string acl(std::string_view svc, std::string_view k) { return under(k_acls, svc, k); }

// The entity a leaf path names: kind (the root's name: "service", "address", "api",
// "key", "acl", "gateway"), its service (empty for keys and gateways) and its own name. nullopt for
// containers (/address/{svc}), roots and anything outside the layout.
struct Leaf {
  std::string_view kind;
  std::string service;
  std::string name;
};

inline std::optional<Leaf> parse_leaf(std::string_view path) {
  auto next = [&path]() -> std::optional<std::string_view> {
    if (path.empty() || path.front() != '/') return std::nullopt;
    path.remove_prefix(1);
    auto slash = path.find('/');
    auto part = path.substr(0, slash);
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
    if (part.empty()) return std::nullopt;
    return part;
  };
  auto root = next();
  auto a = next();
  if (!root || !a) return std::nullopt;
  auto b = next();
  if (!path.empty()) return std::nullopt;  // deeper than any leaf
  for (std::string_view one : {k_services, k_keys, k_gateways})
    if (*root == one.substr(1) && !b) {
      std::string svc = one == k_services ? std::string(*a) : std::string();
      return Leaf{one.substr(1), std::move(svc), std::string(*a)};
    }
  for (std::string_view two : {k_addresses, k_apis, k_acls})
    if (*root == two.substr(1) && b) return Leaf{two.substr(1), std::string(*a), std::string(*b)};
  return std::nullopt;
}

}  // namespace svcctl::registry::paths
