#include <svcctl/gateway/balance.hpp>

namespace svcctl::gateway {

std::size_t pick_swrr(std::span<const AddrRoute> candidates, std::span<std::int64_t> current) {
  std::size_t best = 0;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    current[i] += candidates[i].weight;
    total += candidates[i].weight;
    if (current[i] > current[best]) best = i;
  }
  current[best] -= total;
  return best;
}

}  // namespace svcctl::gateway
