#include <svcctl/gateway/prometheus.hpp>

#include <algorithm>

namespace svcctl::gateway {

void Prometheus::Labels::add(std::string_view name, std::string_view value) {
  if (!m_text.empty()) m_text += ',';
  m_text += name;
  m_text += "=\"";
  for (char c : value) {
    if (c == '\\') m_text += "\\\\";
    else if (c == '"') m_text += "\\\"";
    else if (c == '\n') m_text += "\\n";
    else m_text += c;
  }
  m_text += '"';
}

Prometheus::Family* Prometheus::lookup(std::string_view name) {
  auto it = std::find_if(m_families.begin(), m_families.end(), [&](const Family& f) { return f.name == name; });
  return it == m_families.end() ? nullptr : &*it;
}

void Prometheus::family(std::string_view name, std::string_view type, std::string_view help) {
  if (lookup(name)) return;
  Family f;
  f.name = name;
  fmt::format_to(std::back_inserter(f.head), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  m_families.push_back(std::move(f));
}

Prometheus::Family& Prometheus::find(std::string_view name) {
  if (Family* f = lookup(name)) return *f;
  // Not declared (a caller's slip): still valid text, as a family without a type.
  family(name, "untyped", "(undeclared)");
  return m_families.back();
}

std::string Prometheus::text() const {
  std::string out;
  for (const auto& f : m_families) {
    out += f.head;
    out += f.samples;
  }
  return out;
}

}  // namespace svcctl::gateway
