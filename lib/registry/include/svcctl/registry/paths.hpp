// Where each entity lives in ZooKeeper (DESIGN §2). Names must be validated first.
#pragma once

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

}  // namespace svcctl::registry::paths
