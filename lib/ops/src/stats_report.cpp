#include <svcctl/ops/stats_report.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>
#include <utility>

namespace svcctl::ops::stats {

using gateway::Counters;
using gateway::Err;
using gateway::StatsView;

std::string_view to_string(By by) {
  switch (by) {
    case By::Service: return "service";
    case By::Interface: return "interface";
    case By::Address: return "address";
    case By::Key: return "key";
    case By::Version: return "version";
  }
  return "service";
}

std::optional<By> parse_by(std::string_view text) {
  for (By by : {By::Service, By::Interface, By::Address, By::Key, By::Version})
    if (text == to_string(by)) return by;
  return std::nullopt;
}

void merge_answers(Round& round) {
  round.merged = StatsView{};
  for (const auto& a : round.answers) round.merged.merge(a.view);
}

namespace {

template <typename Counts>
std::uint64_t total(const Counts& counts) {
  return std::accumulate(counts.begin(), counts.end(), std::uint64_t{0});
}

Row counters_row(const std::string& service, const std::string& name, const Counters& c) {
  Row r;
  r.service = service;
  r.name = name;
  r.requests = c.requests;
  r.errors = total(c.errors);
  r.rate_limited = c.errors[gateway::index(Err::RateLimited)];
  r.p50_us = c.latency.quantile(0.50);
  r.p90_us = c.latency.quantile(0.90);
  r.p99_us = c.latency.quantile(0.99);
  return r;
}

// Every row of one view, in no particular order.
std::vector<Row> collect(const StatsView& view, By by, const std::string& only) {
  std::vector<Row> rows;
  for (const auto& [name, s] : view.services) {
    if (!only.empty() && name != only) continue;
    switch (by) {
      case By::Service:
        rows.push_back(counters_row(name, {}, s.counters));
        rows.back().in_flight = s.in_flight;
        break;
      case By::Interface:
        for (const auto& [iface, c] : s.interfaces) rows.push_back(counters_row(name, iface, c));
        break;
      case By::Address:
        for (const auto& [addr, a] : s.addresses) {
          rows.push_back(counters_row(name, addr, a.counters));
          rows.back().in_flight = a.in_flight;
          rows.back().ejections = a.ejections;
          rows.back().ejected_for_ms = a.ejected_ms;
        }
        break;
      case By::Key:
        for (const auto& [key, k] : s.keys) {
          rows.push_back(counters_row(name, key, k.counters));
          rows.back().shadow = total(k.shadow);
        }
        break;
      case By::Version:
        for (const auto& [version, v] : s.versions) {
          rows.push_back(counters_row(name, version, v.counters));
          rows.back().passed_over = v.passed_over;
        }
        break;
    }
  }
  return rows;
}

using RowKey = std::pair<std::string, std::string>;

// Requests per second of each row between two rounds, counting only the gateways that
// answered both times as the same process: one that just came back (or restarted) would
// otherwise count its whole history, or a fall, as this second's traffic.
std::map<RowKey, double> rates_between(const Round& now, const Round& before, By by, const std::string& only) {
  const double seconds = std::chrono::duration<double>(now.at - before.at).count();
  std::map<RowKey, double> out;
  if (seconds <= 0) return out;
  StatsView then_view, now_view;
  for (const auto& a : now.answers) {
    auto it = std::find_if(before.answers.begin(), before.answers.end(),
                           [&](const Answer& b) { return b.identity == a.identity; });
    if (it == before.answers.end()) continue;
    now_view.merge(a.view);
    then_view.merge(it->view);
  }
  std::map<RowKey, std::uint64_t> then_requests;
  for (auto& r : collect(then_view, by, only)) then_requests[{r.service, r.name}] = r.requests;
  for (auto& r : collect(now_view, by, only)) {
    const std::uint64_t then = then_requests[{r.service, r.name}];
    out[{r.service, r.name}] = r.requests > then ? static_cast<double>(r.requests - then) / seconds : 0.0;
  }
  return out;
}

// How many gateways have each address out of rotation now.
void count_ejections(std::vector<Row>& rows, const Round& round) {
  for (auto& r : rows) {
    for (const auto& a : round.answers) {
      auto s = a.view.services.find(r.service);
      if (s == a.view.services.end()) continue;
      auto addr = s->second.addresses.find(r.name);
      if (addr != s->second.addresses.end() && addr->second.ejected_ms > 0) ++r.ejected_by;
    }
  }
}

}  // namespace

std::vector<Row> build_rows(const Round& now, const Round* before, const Query& query) {
  auto rows = collect(now.merged, query.by, query.service);
  if (query.by == By::Address) count_ejections(rows, now);
  // A gateway lists the interfaces and addresses its workers know, called or not; a row
  // with nothing to tell is noise.
  std::erase_if(rows, [](const Row& r) {
    return r.requests == 0 && r.in_flight == 0 && r.shadow == 0 && r.ejected_by == 0 && r.passed_over == 0;
  });
  if (before) {
    auto rates = rates_between(now, *before, query.by, query.service);
    for (auto& r : rows) {
      auto it = rates.find({r.service, r.name});
      r.per_second = it == rates.end() ? 0.0 : it->second;
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    const double ra = a.per_second.value_or(0), rb = b.per_second.value_or(0);
    if (ra != rb) return ra > rb;
    if (a.requests != b.requests) return a.requests > b.requests;
    return std::tie(a.service, a.name) < std::tie(b.service, b.name);
  });
  if (query.top > 0 && rows.size() > query.top) rows.resize(query.top);
  return rows;
}

StatsView only_service(const StatsView& view, const std::string& service) {
  if (service.empty()) return view;
  StatsView v = view;
  std::erase_if(v.services, [&](const auto& s) { return s.first != service; });
  return v;
}

namespace {

// "a, b, c" or "a, b, c, d, e and 7 more": a header line stays one line with many gateways.
constexpr std::size_t k_names_shown = 5;

template <typename Each>
std::string some(const std::vector<Reached>& gateways, bool ok, Each&& each) {
  std::vector<std::string> names;
  std::size_t n = 0;
  for (const auto& g : gateways) {
    if (g.ok() != ok) continue;
    if (++n <= k_names_shown) names.push_back(each(g));
  }
  std::string s = fmt::format("{}", fmt::join(names, ", "));
  if (n > k_names_shown) s += fmt::format(" and {} more", n - k_names_shown);
  return s;
}

}  // namespace

std::string summary_line(const std::vector<Reached>& gateways) {
  if (gateways.empty()) return "no gateway registered under /gateway";
  const auto ok = static_cast<std::size_t>(
      std::count_if(gateways.begin(), gateways.end(), [](const Reached& g) { return g.ok(); }));
  const auto failed = gateways.size() - ok;
  std::string s = fmt::format("{} gateway{}", ok, ok == 1 ? "" : "s");
  if (ok > 0) s += ": " + some(gateways, true, [](const Reached& g) { return g.gateway.id; });
  if (failed > 0) {
    auto with_error = [](const Reached& g) { return fmt::format("{} ({})", g.gateway.id, g.error); };
    s += fmt::format("; {} unreachable: {}", failed, some(gateways, false, with_error));
  }
  return s;
}

std::string unrouted_line(const Counters& unrouted) {
  if (unrouted.requests == 0) return {};
  std::vector<std::string> codes;
  for (std::size_t i = 0; i < gateway::k_err_count; ++i)
    if (unrouted.errors[i])
      codes.push_back(fmt::format("{} {}", gateway::info(static_cast<Err>(i)).code, unrouted.errors[i]));
  return fmt::format("unrouted: {} request{}{}", unrouted.requests, unrouted.requests == 1 ? "" : "s",
                     codes.empty() ? std::string() : fmt::format(" ({})", fmt::join(codes, ", ")));
}

std::string format_ms(std::uint64_t us, std::uint64_t requests) {
  if (requests == 0) return "-";
  const double ms = static_cast<double>(us) / 1000.0;
  if (ms < 10) return fmt::format("{:.2f}ms", ms);
  if (ms < 100) return fmt::format("{:.1f}ms", ms);
  return fmt::format("{:.0f}ms", ms);
}

std::string format_pct(std::uint64_t part, std::uint64_t whole) {
  if (whole == 0) return "-";
  const double pct = 100.0 * static_cast<double>(part) / static_cast<double>(whole);
  if (part > 0 && pct < 0.1) return "<0.1%";
  return fmt::format("{:.1f}%", pct);
}

namespace {

using output::Cell;
using output::Tone;

std::string ejected_cell(const Row& r, std::size_t gateways) {
  if (r.ejected_by == 0) return "no";
  const std::string left = fmt::format("{}s", (r.ejected_for_ms + 999) / 1000);
  if (gateways <= 1) return fmt::format("yes ({})", left);
  return fmt::format("{} of {} ({})", r.ejected_by, gateways, left);
}

}  // namespace

output::Table table(const std::vector<Row>& rows, By by, Rates shown, std::size_t gateways) {
  const bool rates = shown == Rates::Shown;
  std::vector<std::string> headers{"SERVICE"};
  if (by == By::Interface) headers.emplace_back("INTERFACE");
  if (by == By::Address) headers.emplace_back("ADDRESS");
  if (by == By::Key) headers.emplace_back("KEY");
  if (by == By::Version) headers.emplace_back("VERSION");
  headers.emplace_back("REQUESTS");
  if (rates) headers.emplace_back("REQ/S");
  for (const char* h : {"ERRORS", "ERR%"}) headers.emplace_back(h);
  // Rate limits refuse a call before an address or version is chosen.
  const bool rate_limited = by != By::Address && by != By::Version;
  if (rate_limited) headers.emplace_back("RATE-LIMITED");
  if (by == By::Key) headers.emplace_back("SHADOW");
  for (const char* h : {"P50", "P90", "P99"}) headers.emplace_back(h);
  if (by == By::Service || by == By::Address) headers.emplace_back("IN-FLIGHT");
  if (by == By::Address)
    for (const char* h : {"EJECTIONS", "EJECTED"}) headers.emplace_back(h);
  if (by == By::Version) headers.emplace_back("PASSED-OVER");

  output::Table t(std::move(headers));
  for (const auto& r : rows) {
    std::vector<Cell> cells{{r.service}};
    if (by == By::Version) cells.push_back({r.name.empty() ? "\"\"" : r.name});
    else if (by != By::Service) cells.push_back({r.name});
    cells.push_back({std::to_string(r.requests)});
    if (rates) cells.push_back({r.per_second ? fmt::format("{:.1f}", *r.per_second) : "-"});
    cells.push_back({std::to_string(r.errors)});
    cells.push_back({format_pct(r.errors, r.requests), r.errors > 0 ? Tone::Bad : Tone::Plain});
    if (rate_limited) cells.push_back({std::to_string(r.rate_limited)});
    if (by == By::Key) cells.push_back({std::to_string(r.shadow)});
    for (auto us : {r.p50_us, r.p90_us, r.p99_us}) cells.push_back({format_ms(us, r.requests)});
    if (by == By::Service || by == By::Address) cells.push_back({std::to_string(r.in_flight)});
    if (by == By::Address) {
      cells.push_back({std::to_string(r.ejections)});
      cells.push_back({ejected_cell(r, gateways), r.ejected_by > 0 ? Tone::Bad : Tone::Plain});
    }
    if (by == By::Version) cells.push_back({std::to_string(r.passed_over), r.passed_over > 0 ? Tone::Bad : Tone::Plain});
    t.add_row(std::move(cells));
  }
  return t;
}

nlohmann::json gateways_json(const std::vector<Reached>& gateways) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : gateways) {
    nlohmann::json j = {{"id", g.gateway.id}, {"admin", g.gateway.admin},     {"listen", g.gateway.listen},
                        {"dc", g.gateway.dc}, {"version", g.gateway.version}, {"ok", g.ok()}};
    if (!g.ok()) j["error"] = g.error;
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json rows_json(const std::vector<Row>& rows, By by) {
  auto ms = [](std::uint64_t us) { return static_cast<double>(us) / 1000.0; };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json j = {{"service", r.service}};
    if (by != By::Service) j[std::string(to_string(by))] = r.name;
    j["requests"] = r.requests;
    j["errors"] = r.errors;
    j["rate_limited"] = r.rate_limited;
    j["latency_ms"] = {{"p50", ms(r.p50_us)}, {"p90", ms(r.p90_us)}, {"p99", ms(r.p99_us)}};
    if (by == By::Service || by == By::Address) j["in_flight"] = r.in_flight;
    if (by == By::Address) {
      j["ejections"] = r.ejections;
      j["ejected_by"] = r.ejected_by;
      j["ejected_for_ms"] = r.ejected_for_ms;
    }
    if (by == By::Key) j["shadow"] = r.shadow;
    if (by == By::Version) j["passed_over"] = r.passed_over;
    if (r.per_second) j["requests_per_second"] = *r.per_second;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace svcctl::ops::stats
