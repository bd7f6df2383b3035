#include <svcctl/ops/rollout.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <numeric>
#include <set>

namespace svcctl::ops::rollout {

Expected<std::vector<int>> parse_steps(std::string_view text) {
  std::vector<int> steps;
  std::string_view rest = text;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    int v = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc{} || end != item.data() + item.size() || v < 1 || v > 100 ||
        (!steps.empty() && v <= steps.back()))
      return fail(ErrorKind::Usage,
                  fmt::format("invalid --steps \"{}\": increasing whole percentages from 1 to 100, e.g. 5,25,50,100",
                              text));
    steps.push_back(v);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return steps;
}

std::vector<model::VersionShare> starting_shares(const model::Service& service,
                                                 const std::vector<model::Address>& addresses, const std::string& to) {
  std::vector<model::VersionShare> from;
  for (const auto& s : service.split)
    if (s.version != to && s.share > 0) from.push_back(s);
  if (!from.empty() || !service.split.empty()) return from;
  std::set<std::string> versions;
  for (const auto& a : addresses)
    if (a.version != to && model::routable(a)) versions.insert(a.version);
  for (const auto& v : versions) from.push_back({v, 1});
  return from;
}

std::vector<model::VersionShare> step_split(const std::vector<model::VersionShare>& from, const std::string& to,
                                            int percent) {
  std::vector<model::VersionShare> out;
  const std::int64_t rest = 100 - percent;
  const std::int64_t sum = std::accumulate(from.begin(), from.end(), std::int64_t{0},
                                           [](std::int64_t s, const model::VersionShare& v) { return s + v.share; });
  if (sum > 0 && rest > 0) {
    // Largest remainders: each its floor, then one more to the largest fractions.
    std::vector<std::pair<std::int64_t, std::size_t>> remainders;
    std::int64_t given = 0;
    for (std::size_t i = 0; i < from.size(); ++i) {
      const std::int64_t exact = rest * from[i].share;
      out.push_back({from[i].version, exact / sum});
      given += exact / sum;
      remainders.push_back({exact % sum, i});
    }
    std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::size_t k = 0; given < rest; ++k, ++given) out[remainders[k % remainders.size()].second].share += 1;
  }
  std::erase_if(out, [](const model::VersionShare& v) { return v.share == 0; });
  out.push_back({to, percent});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  return out;
}

namespace {
void add_difference(Window& w, const gateway::Counters& now, const gateway::Counters* then) {
  // A counter that fell: the gateway restarted between the rounds; it counts from 0.
  if (then && then->requests > now.requests) then = nullptr;
  std::uint64_t errors_now = 0, errors_then = 0;
  for (auto e : now.errors) errors_now += e;
  if (then)
    for (auto e : then->errors) errors_then += e;
  w.requests += now.requests - (then ? then->requests : 0);
  w.errors += errors_now >= errors_then ? errors_now - errors_then : errors_now;
  for (std::size_t b = 0; b < gateway::Histogram::k_buckets; ++b) {
    const std::uint64_t n = now.latency.at(b), m = then ? then->latency.at(b) : 0;
    if (n > m) w.latency.add(b, n - m);
  }
}
}  // namespace

Window window(const stats::Round& before, const stats::Round& after, const std::string& service,
              const std::vector<std::string>& versions) {
  Window w;
  std::map<std::string, const gateway::StatsView*> earlier;
  for (const auto& a : before.answers) earlier[a.identity] = &a.view;
  for (const auto& a : after.answers) {
    auto s = a.view.services.find(service);
    if (s == a.view.services.end()) continue;
    const gateway::StatsView::Service* old_service = nullptr;
    if (auto e = earlier.find(a.identity); e != earlier.end())
      if (auto os = e->second->services.find(service); os != e->second->services.end()) old_service = &os->second;
    for (const auto& v : versions) {
      auto now = s->second.versions.find(v);
      if (now == s->second.versions.end()) continue;
      const gateway::Counters* then = nullptr;
      if (old_service)
        if (auto t = old_service->versions.find(v); t != old_service->versions.end()) then = &t->second.counters;
      add_difference(w, now->second.counters, then);
    }
  }
  return w;
}

std::string to_string(Verdict::Kind kind) {
  switch (kind) {
    case Verdict::Kind::Pass: return "pass";
    case Verdict::Kind::TooFew: return "too_few";
    case Verdict::Kind::ErrorRate: return "error_rate";
    case Verdict::Kind::Latency: return "latency";
  }
  return "pass";
}

Verdict judge(const Window& fresh, const Window& old, const Limits& limits) {
  Verdict v;
  v.new_p99_us = fresh.latency.quantile(0.99);
  v.old_p99_us = old.latency.quantile(0.99);
  if (fresh.requests > 0) v.error_rate = 100.0 * static_cast<double>(fresh.errors) / static_cast<double>(fresh.requests);
  if (old.requests >= limits.min_requests && v.old_p99_us > 0)
    v.p99_ratio = static_cast<double>(v.new_p99_us) / static_cast<double>(v.old_p99_us);
  if (fresh.requests < limits.min_requests) {
    v.kind = Verdict::Kind::TooFew;
    v.reason = fmt::format("{} calls of the new version, fewer than {} to judge by", fresh.requests, limits.min_requests);
  } else if (v.error_rate > limits.max_error_rate) {
    v.kind = Verdict::Kind::ErrorRate;
    v.reason = fmt::format("error rate {:.1f}% > {:g}%", v.error_rate, limits.max_error_rate);
  } else if (v.p99_ratio && *v.p99_ratio > limits.max_p99_ratio) {
    v.kind = Verdict::Kind::Latency;
    v.reason = fmt::format("p99 {:.2f}x the old version's > {:g}x", *v.p99_ratio, limits.max_p99_ratio);
  } else {
    v.reason = "ok";
  }
  return v;
}

}  // namespace svcctl::ops::rollout
