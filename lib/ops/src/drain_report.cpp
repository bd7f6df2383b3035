#include <svcctl/ops/drain_report.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>

namespace svcctl::ops::drain {

std::optional<std::int64_t> parse_zxid(std::string_view text) {
  int base = 10;
  if (text.starts_with("0x") || text.starts_with("0X")) {
    text.remove_prefix(2);
    base = 16;
  }
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || v < 0) return std::nullopt;
  return v;
}

Expected<Seen> read_stats(const nlohmann::json& stats, const std::string& service, const std::string& address) {
  return read_stats(stats, std::vector<std::string>{service}, address);
}

Expected<Seen> read_stats(const nlohmann::json& stats, const std::vector<std::string>& watched,
                          const std::string& address) {
  if (!stats.is_object())
    return fail(ErrorKind::DeliveryFailed, "/-/stats answered something that is not a JSON object");
  const auto reg = stats.find("registry");
  if (reg == stats.end() || !reg->is_object() || !reg->contains("zxid") || !(*reg)["zxid"].is_string())
    return fail(ErrorKind::DeliveryFailed, "/-/stats has no registry.zxid (a gateway older than drain?)");
  auto zxid = parse_zxid((*reg)["zxid"].get<std::string>());
  if (!zxid)
    return fail(ErrorKind::DeliveryFailed, fmt::format("/-/stats has a bad registry.zxid {}", (*reg)["zxid"].dump()));
  Seen s;
  s.zxid = *zxid;
  // A gateway lists an address only once it has sent it a call.
  const auto services = stats.find("services");
  const std::string service = watched.empty() ? std::string() : watched.front();
  if (!address.empty() && services != stats.end() && services->is_object() && services->contains(service)) {
    const auto& svc = (*services)[service];
    if (svc.is_object() && svc.contains("addresses") && svc["addresses"].is_object() &&
        svc["addresses"].contains(address)) {
      const auto& a = svc["addresses"][address];
      if (a.is_object() && a.contains("in_flight") && a["in_flight"].is_number_integer())
        s.in_flight = a["in_flight"].get<std::int64_t>();
    }
  }
  const auto guard = stats.find("guard");
  if (guard != stats.end() && guard->is_object() && guard->contains("held") && (*guard)["held"].is_array())
    for (const auto& h : (*guard)["held"])
      if (h.is_string() && std::find(watched.begin(), watched.end(), h.get<std::string>()) != watched.end())
        s.held = true;
  return s;
}

void Progress::update(std::vector<Answer> answers) {
  ++m_round;
  std::map<std::string, Tracked> before;
  for (auto& t : m_gateways) before.emplace(t.gateway.id, std::move(t));
  m_gateways.clear();
  std::sort(answers.begin(), answers.end(),
            [](const Answer& a, const Answer& b) { return a.gateway.id < b.gateway.id; });
  for (auto& a : answers) {
    Tracked t;
    if (auto it = before.find(a.gateway.id); it != before.end()) t = std::move(it->second);
    t.gateway = std::move(a.gateway);
    t.error = std::move(a.error);
    t.last = a.seen;
    t.ignored = false;
    if (t.done) {
      m_gateways.push_back(std::move(t));
      continue;
    }
    if (!a.seen) {
      // Ignored gateways are asked again every round: one that comes back is waited for.
      t.ignored = m_unreachable == Unreachable::Ignore;
      m_gateways.push_back(std::move(t));
      continue;
    }
    if (seen(*a.seen)) {
      if (t.seen_round < 0) t.seen_round = m_round;
      // A gateway publishes the zxid of its registry view a moment before it rebuilds its
      // routes, and a worker that chose the address counts the call a moment after: an
      // answer of no calls in flight is trusted only from a later round than the one in
      // which the write was first seen, when both moments are long past.
      if (m_need == Need::Seen || (m_round > t.seen_round && a.seen->in_flight == 0)) t.done = true;
    }
    m_gateways.push_back(std::move(t));
  }
}

bool Progress::done() const {
  return std::all_of(m_gateways.begin(), m_gateways.end(), [](const Tracked& t) { return t.done || t.ignored; });
}

std::string hex(std::int64_t zxid) { return fmt::format("0x{:x}", zxid); }

std::vector<std::string> Progress::waiting() const {
  std::vector<std::string> out;
  for (const auto& t : m_gateways) {
    if (t.done || t.ignored) continue;
    const auto& id = t.gateway.id;
    if (!t.last) {
      out.push_back(fmt::format("{} did not answer ({})", id, t.error));
    } else if (t.last->held) {
      out.push_back(fmt::format("{} holds the service at its old view (mass-change guard)", id));
    } else if (t.last->zxid < m_zxid) {
      out.push_back(fmt::format("{} has not seen the change (its registry is at zxid {}, the write is {})", id,
                                hex(t.last->zxid), hex(m_zxid)));
    } else if (t.last->in_flight > 0) {
      out.push_back(fmt::format("{} still has {} call{} in flight", id, t.last->in_flight,
                                t.last->in_flight == 1 ? "" : "s"));
    } else {
      out.push_back(fmt::format("{} has just seen the change", id));
    }
  }
  return out;
}

nlohmann::json result_json(const Progress& p, std::string_view done_field, const std::string& service,
                           const std::string& address, std::string_view action, std::int64_t waited_ms) {
  nlohmann::json gateways = nlohmann::json::array();
  for (const auto& t : p.gateways()) {
    nlohmann::json g = {{"id", t.gateway.id}, {"admin", t.gateway.admin}, {std::string(done_field), t.done}};
    g["zxid"] = t.last ? nlohmann::json(t.last->zxid) : nlohmann::json(nullptr);
    g["in_flight"] = t.last ? nlohmann::json(t.last->in_flight) : nlohmann::json(nullptr);
    if (!t.error.empty()) g["error"] = t.error;
    if (t.ignored) g["ignored"] = true;
    gateways.push_back(std::move(g));
  }
  return {{"service", service},
          {"address", address},
          {"action", action},
          {"zxid", p.zxid()},
          {std::string(done_field), p.done()},
          {"waited_ms", waited_ms},
          {"gateways", std::move(gateways)}};
}

}  // namespace svcctl::ops::drain
