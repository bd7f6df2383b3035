#include <svcctl/control/cache_source.hpp>

namespace svcctl::control {

gateway::RegistryStatus status_of(const registry::Snapshot* snap, const registry::SessionsView& sessions,
                                  bool serving_last_known_good) {
  gateway::RegistryStatus st;
  // The sessions' transitions, from the first: shown (as zeros) before any snapshot too.
  for (std::size_t k = 0; k < registry::SessionEvent::k_kinds; ++k)
    st.session_events.emplace_back(registry::to_string(static_cast<registry::SessionEvent::Kind>(k)),
                                   sessions.events[k]);
  st.sessions_replaced = sessions.events[static_cast<std::size_t>(registry::SessionEvent::Kind::Replaced)];
  st.last_replaced = sessions.last_replaced;
  st.last_replaced_reason = sessions.last_replaced_reason;
  if (!snap) return st;
  st.started = true;
  st.loaded = snap->loaded;
  st.connected = snap->session == zk::SessionState::Connected;
  st.session = zk::to_string(snap->session);
  st.session_ids = snap->session_ids;
  st.zxid = snap->max_zxid;
  st.generation = snap->generation;
  st.nodes = snap->size();
  st.serving_last_known_good = serving_last_known_good;
  if (snap->last_change.time_since_epoch().count() != 0) st.last_change = snap->last_change;
  st.stale_since = snap->stale_since;
  for (const auto& one : sessions.sessions) st.sessions.push_back({one.id, std::string(zk::to_string(one.state))});
  return st;
}

gateway::RegistryStatus CacheSource::status() const {
  auto snap = m_cache.snapshot();
  return status_of(snap.get(), m_cache.sessions(), m_cache.serving_lkg());
}

void CacheSource::each_node(const std::function<void(const gateway::RegistryNode&)>& fn) const {
  auto snap = m_cache.snapshot();
  if (!snap) return;
  for (const auto& [path, e] : snap->entries()) {
    if (e.container) continue;
    fn({path, e.data, e.version, e.ephemeral_owner != 0});
  }
}

}  // namespace svcctl::control
