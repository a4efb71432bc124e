#pragma once
// Result<T>: a value or an Error. Used on every path that handles untrusted input, which must
// never throw or assert (style guide: "Errors and ownership").
#include <string>
#include <utility>
#include <variant>

namespace verbund {

struct Error {
  int code = 0; // protocol-specific: a SIP status for the SIP core, an HTTP status for the API
  std::string message; // human-readable; safe to log (never contains secrets)
};

template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(v_); }

private:
  std::variant<T, Error> v_;
};

template <> class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

private:
  Error err_;
  bool ok_ = true;
};

inline Error makeError(int code, std::string message) {
  return Error{code, std::move(message)};
}

} // namespace verbund
