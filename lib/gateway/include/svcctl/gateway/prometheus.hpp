// Prometheus' text exposition format, written once for every metric the gateway shows
// (its call counters in stats.cpp, the registry view's state in admin.cpp).
//
// The format wants each family's HELP and TYPE lines, then all of its samples together;
// the writer keeps one text per family, in the order the families were declared, so a
// caller may add samples to several families as it walks its data once.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace svcctl::gateway {

class Prometheus {
 public:
  // `labels` of one sample: name="value" pairs, values escaped (\\, \", \n).
  class Labels {
   public:
    Labels() = default;
    Labels(std::initializer_list<std::pair<std::string_view, std::string_view>> pairs) {
      for (const auto& [n, v] : pairs) add(n, v);
    }
    // A copy with one more pair.
    Labels with(std::string_view name, std::string_view value) const {
      Labels l = *this;
      l.add(name, value);
      return l;
    }
    const std::string& text() const { return m_text; }

   private:
    void add(std::string_view name, std::string_view value);
    std::string m_text;
  };

  // Declares a family (`type`: counter, gauge or histogram). Declaring it again does nothing.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of a declared family; `series` is the sample's name when it is not the
  // family's own (a histogram's name_bucket, name_sum and name_count).
  template <typename Value>
  void sample(std::string_view family_name, const Labels& labels, Value value, std::string_view series = {}) {
    std::string& out = find(family_name).samples;
    out += series.empty() ? family_name : series;
    if (!labels.text().empty()) {
      out += '{';
      out += labels.text();
      out += '}';
    }
    fmt::format_to(std::back_inserter(out), " {}\n", value);
  }

  // Every family, in the order declared.
  std::string text() const;

 private:
  struct Family {
    std::string name;
    std::string head;  // HELP and TYPE
    std::string samples;
  };
  Family* lookup(std::string_view name);  // null when not declared
  Family& find(std::string_view name);    // declared as untyped when it was not
  std::vector<Family> m_families;  // a few dozen at most: found by a linear search
};

}  // namespace svcctl::gateway
