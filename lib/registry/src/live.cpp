#include <svcctl/registry/live.hpp>

#include <fmt/format.h>

namespace svcctl::registry {

LiveRegistry::LiveRegistry(zk::Options options, std::function<void(std::string_view)> log, zk::Connector connect)
    : m_options(std::move(options)), m_log(std::move(log)),
      m_connect(connect ? std::move(connect) : zk::real_connector()) {}

LiveRegistry::~LiveRegistry() = default;

Expected<Registry*> LiveRegistry::current() {
  if (m_registry) return m_registry.get();
  SVCCTL_TRY(m_client, m_connect(m_options));
  m_registry = std::make_unique<Registry>(*m_client);
  return m_registry.get();
}

void LiveRegistry::replace(const Error& why) {
  const std::int64_t session = m_client->session_id();
  m_registry.reset();
  m_client.reset();
  if (m_log)
    m_log(fmt::format("ZooKeeper session 0x{:x} failed a read ({}): reading again through a new session",
                      session, why.message));
}

}  // namespace svcctl::registry
