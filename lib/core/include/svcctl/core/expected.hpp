// Expected<T>: a value or an Error. The library returns these; exceptions stay at the edge
// (cmd/). A small stand-in for C++23 std::expected, which Debian 12's g++ lacks in C++20.
#pragma once

#include <svcctl/core/error.hpp>

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace svcctl {

struct Unexpected {
  Error error;
};

// Builds the error side of an Expected: `return fail(ErrorKind::NotFound, "...")`.
inline Unexpected fail(ErrorKind kind, std::string message, int code = 0) {
  return Unexpected{Error{kind, std::move(message), code}};
}
inline Unexpected fail(Error error) { return Unexpected{std::move(error)}; }

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(const T& value) : m_v(std::in_place_index<0>, value) {}  // NOLINT: implicit by design
  Expected(T&& value) : m_v(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  template <typename U>
    requires std::is_constructible_v<T, U&&> && (!std::is_same_v<std::decay_t<U>, T>) &&
             (!std::is_same_v<std::decay_t<U>, Unexpected>) &&
             (!std::is_same_v<std::decay_t<U>, Expected>)
  Expected(U&& value) : m_v(std::in_place_index<0>, std::forward<U>(value)) {}  // NOLINT
  Expected(Unexpected u) : m_v(std::in_place_index<1>, std::move(u.error)) {}  // NOLINT

  bool has_value() const { return m_v.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(m_v); }
  const T& value() const& { assert(has_value()); return std::get<0>(m_v); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(m_v)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!has_value()); return std::get<1>(m_v); }
  Error& error() { assert(!has_value()); return std::get<1>(m_v); }

 private:
  std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Unexpected u) : m_error(std::move(u.error)), m_ok(false) {}  // NOLINT
  bool has_value() const { return m_ok; }
  explicit operator bool() const { return m_ok; }
  const Error& error() const { assert(!m_ok); return m_error; }

 private:
  Error m_error;
  bool m_ok = true;
};

}  // namespace svcctl

// Propagate the error of an Expected expression, else bind its value:
//   SVCCTL_TRY(auto stat, client.exists(path));
#define SVCCTL_CONCAT_INNER(a, b) a##b
#define SVCCTL_CONCAT(a, b) SVCCTL_CONCAT_INNER(a, b)
#define SVCCTL_TRY_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                     \
  if (!tmp) return ::svcctl::fail(tmp.error()); \
  decl = std::move(*tmp)
#define SVCCTL_TRY(decl, expr) SVCCTL_TRY_IMPL(SVCCTL_CONCAT(svcctl_try_, __LINE__), decl, expr)
// Same for Expected<void>.
#define SVCCTL_CHECK(expr)                                   \
  do {                                                       \
    if (auto svcctl_check_ = (expr); !svcctl_check_)         \
      return ::svcctl::fail(svcctl_check_.error());          \
  } while (0)
