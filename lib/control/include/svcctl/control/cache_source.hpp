// What the gateway's admin listener shows of the registry view (gateway::RegistrySource),
// read from the cache that feeds its routes.
#pragma once

#include <svcctl/gateway/registry_source.hpp>
#include <svcctl/registry/cache.hpp>

#include <functional>

namespace svcctl::control {

// The status the admin listener shows, from a cache's snapshot (null before the first
// publish), its sessions and whether it serves its last-known-good file. Pure.
gateway::RegistryStatus status_of(const registry::Snapshot* snap, const registry::SessionsView& sessions,
                                  bool serving_last_known_good);

class CacheSource final : public gateway::RegistrySource {
 public:
  explicit CacheSource(const registry::Cache& cache) : m_cache(cache) {}
  gateway::RegistryStatus status() const override;
  void each_node(const std::function<void(const gateway::RegistryNode&)>& fn) const override;

 private:
  const registry::Cache& m_cache;
};

}  // namespace svcctl::control
