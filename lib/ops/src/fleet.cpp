#include <svcctl/ops/fleet.hpp>

#include <svcctl/rpc/rpc.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <thread>

namespace svcctl::ops::fleet {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds k_poll{100};
// Each gateway's answer is awaited at most this long per round (less near the deadline).
constexpr milliseconds k_ask_timeout{1000};

// One round: every gateway registered now and what its /-/stats says of the target.
Expected<std::vector<drain::Answer>> ask_gateways(registry::Registry& reg, const Target& target,
                                                  milliseconds timeout) {
  SVCCTL_TRY(auto gateways, reg.list_gateways());
  std::vector<model::Gateway> asked;
  for (auto& g : gateways) asked.push_back(std::move(g.gateway));
  auto replies = ask_admins(asked, "/-/stats", timeout);
  std::vector<drain::Answer> answers;
  for (std::size_t i = 0; i < asked.size(); ++i) {
    drain::Answer a{std::move(asked[i]), std::nullopt, {}};
    if (!replies[i]) {
      a.error = replies[i].error().message;
    } else if (auto seen = drain::read_stats(*replies[i], target.services, target.address)) {
      a.seen = *seen;
    } else {
      a.error = seen.error().message;
    }
    answers.push_back(std::move(a));
  }
  return answers;
}

// Tells progress on stderr when what is waited for changes, and at most once a second.
class Reporter {
 public:
  explicit Reporter(const Tell& tell) : m_tell(tell) {}
  void report(const drain::Progress& p) {
    auto w = p.waiting();
    if (w.empty()) return;
    auto line = fmt::format("waiting: {}", fmt::join(w, "; "));
    const auto now = Clock::now();
    if (line == m_last || now - m_at < std::chrono::seconds(1)) return;
    if (m_tell.note) m_tell.note(line);
    m_last = std::move(line);
    m_at = now;
  }

 private:
  const Tell& m_tell;
  std::string m_last;
  Clock::time_point m_at{};
};

}  // namespace

std::vector<Expected<nlohmann::json>> ask_admins(const std::vector<model::Gateway>& gateways,
                                                 std::string_view path, milliseconds timeout) {
  const std::string_view name = path.substr(0, path.find('?'));
  std::vector<Expected<nlohmann::json>> out;
  std::vector<std::string> urls;
  std::vector<std::size_t> asked;  // the gateway each URL is for
  for (const auto& g : gateways) {
    if (g.admin.empty()) {
      out.emplace_back(fail(ErrorKind::DeliveryFailed, "registered without an admin address"));
    } else {
      urls.push_back(fmt::format("http://{}{}", g.admin, path));
      asked.push_back(out.size());
      out.emplace_back(nlohmann::json());
    }
  }
  auto replies = rpc::http_get_many(urls, rpc::Timeouts{timeout, timeout});
  for (std::size_t i = 0; i < replies.size(); ++i) {
    auto& o = out[asked[i]];
    if (!replies[i]) {
      o = fail(replies[i].error());
    } else if (replies[i]->status != 200) {
      o = fail(ErrorKind::DeliveryFailed, fmt::format("{} answered HTTP {}", name, replies[i]->status));
    } else {
      auto j = nlohmann::json::parse(replies[i]->body, nullptr, false);
      if (j.is_discarded()) o = fail(ErrorKind::DeliveryFailed, fmt::format("{} answered something that is not JSON", name));
      else o = std::move(j);
    }
  }
  return out;
}

Expected<Outcome> follow(const Tell& tell, registry::Registry& reg, const Target& target, milliseconds timeout,
                         drain::Progress progress) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  Reporter reporter(tell);
  bool first = true;
  for (;;) {
    const auto round_start = Clock::now();
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - round_start);
    auto answers = ask_gateways(reg, target, std::clamp(left, milliseconds(50), k_ask_timeout));
    if (!answers) {
      // ZooKeeper away for a moment: the gateways are still there; ask again next round.
      if (first) return fail(answers.error());
      if (tell.warn) tell.warn(answers.error().message);
    } else {
      if (first && answers->empty())
        return Outcome{std::move(progress), 0, false, true};
      progress.update(std::move(*answers));
    }
    first = false;
    const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    if (progress.done()) return Outcome{std::move(progress), waited, false, false};
    if (Clock::now() >= deadline) return Outcome{std::move(progress), waited, true, false};
    reporter.report(progress);
    std::this_thread::sleep_until(std::min(round_start + k_poll, deadline));
  }
}

}  // namespace svcctl::ops::fleet
