#include "media/bencode.h"

#include <charconv>
#include <limits>

namespace verbund::media::bencode {

Dict::Dict(std::initializer_list<Entry> entries) {
  for (const auto& e : entries) set(e.first, e.second);
}

Dict& Dict::set(std::string key, Value value) {
  for (auto& e : entries_)
    if (e.first == key) {
      e.second = std::move(value);
      return *this;
    }
  entries_.emplace_back(std::move(key), std::move(value));
  return *this;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& e : entries_)
    if (e.first == key) return &e.second;
  return nullptr;
}

std::optional<std::string_view> Dict::string(std::string_view key) const {
  const Value* v = find(key);
  if (!v || !v->isString()) return std::nullopt;
  return std::string_view(v->asString());
}

std::optional<int64_t> Dict::integer(std::string_view key) const {
  const Value* v = find(key);
  if (!v || !v->isInteger()) return std::nullopt;
  return v->asInteger();
}

const List* Dict::list(std::string_view key) const {
  const Value* v = find(key);
  return v && v->isList() ? &v->asList() : nullptr;
}

const Dict* Dict::dict(std::string_view key) const {
  const Value* v = find(key);
  return v && v->isDict() ? &v->asDict() : nullptr;
}

bool Dict::operator==(const Dict& o) const {
  return entries_ == o.entries_;
}

const char* decodeErrorName(DecodeError e) {
  switch (e) {
  case DecodeError::Truncated:
    return "truncated";
  case DecodeError::UnexpectedByte:
    return "unexpected byte";
  case DecodeError::BadInteger:
    return "bad integer";
  case DecodeError::BadLength:
    return "bad string length";
  case DecodeError::StringTooLong:
    return "string too long";
  case DecodeError::TooDeep:
    return "nested too deep";
  case DecodeError::TooManyItems:
    return "too many items";
  case DecodeError::KeyNotString:
    return "dictionary key is not a string";
  case DecodeError::DuplicateKey:
    return "duplicate dictionary key";
  case DecodeError::TrailingData:
    return "data after the value";
  }
  return "unknown";
}

namespace {

// A recursive-descent decoder over one input. The first error sticks; positions are offsets
// into the input (reported in the message for logs).
class Decoder {
public:
  Decoder(std::string_view in, const Limits& limits) : in_(in), limits_(limits) {}

  std::optional<Value> value(size_t depth) {
    if (++items_ > limits_.maxItems) return fail(DecodeError::TooManyItems);
    if (pos_ >= in_.size()) return fail(DecodeError::Truncated);
    char c = in_[pos_];
    if (c == 'i') return integer();
    if (c >= '0' && c <= '9') {
      auto s = string();
      if (!s) return std::nullopt;
      return Value(std::move(*s));
    }
    if (c == 'l' || c == 'd') {
      if (depth >= limits_.maxDepth) return fail(DecodeError::TooDeep);
      return c == 'l' ? list(depth + 1) : dict(depth + 1);
    }
    return fail(DecodeError::UnexpectedByte);
  }

  bool atEnd() const { return pos_ == in_.size(); }
  Error error() const {
    return Error{int(error_), std::string("bencode: ") + decodeErrorName(error_) + " at offset " +
                                  std::to_string(errorPos_)};
  }
  std::nullopt_t fail(DecodeError e) {
    error_ = e;
    errorPos_ = pos_;
    return std::nullopt;
  }

private:
  // "i" [-] digits "e": no leading zeros, no "-0", within int64.
  std::optional<Value> integer() {
    ++pos_; // 'i'
    size_t end = in_.find('e', pos_);
    if (end == std::string_view::npos) return fail(DecodeError::Truncated);
    std::string_view digits = in_.substr(pos_, end - pos_);
    bool negative = !digits.empty() && digits[0] == '-';
    std::string_view body = negative ? digits.substr(1) : digits;
    if (body.empty() || (body[0] == '0' && (body.size() > 1 || negative)))
      return fail(DecodeError::BadInteger);
    for (char d : body)
      if (d < '0' || d > '9') return fail(DecodeError::BadInteger);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || ptr != digits.data() + digits.size())
      return fail(DecodeError::BadInteger);
    pos_ = end + 1;
    return Value(v);
  }

  // length ":" bytes; the length has no leading zeros.
  std::optional<std::string> string() {
    size_t colon = in_.find(':', pos_);
    if (colon == std::string_view::npos) return fail(DecodeError::Truncated);
    std::string_view digits = in_.substr(pos_, colon - pos_);
    if (digits.empty() || digits.size() > 10 || (digits[0] == '0' && digits.size() > 1))
      return fail(DecodeError::BadLength);
    uint64_t n = 0;
    for (char d : digits) {
      if (d < '0' || d > '9') return fail(DecodeError::BadLength);
      n = n * 10 + uint64_t(d - '0');
    }
    if (n > limits_.maxStringLength) return fail(DecodeError::StringTooLong);
    if (n > in_.size() - (colon + 1)) {
      pos_ = in_.size();
      return fail(DecodeError::Truncated);
    }
    std::string s(in_.substr(colon + 1, size_t(n)));
    pos_ = colon + 1 + size_t(n);
    return s;
  }

  std::optional<Value> list(size_t depth) {
    ++pos_; // 'l'
    List out;
    while (true) {
      if (pos_ >= in_.size()) return fail(DecodeError::Truncated);
      if (in_[pos_] == 'e') break;
      auto v = value(depth);
      if (!v) return std::nullopt;
      out.push_back(std::move(*v));
    }
    ++pos_;
    return Value(std::move(out));
  }

  std::optional<Value> dict(size_t depth) {
    ++pos_; // 'd'
    Dict out;
    while (true) {
      if (pos_ >= in_.size()) return fail(DecodeError::Truncated);
      char c = in_[pos_];
      if (c == 'e') break;
      if (c < '0' || c > '9') return fail(DecodeError::KeyNotString);
      if (++items_ > limits_.maxItems) return fail(DecodeError::TooManyItems);
      size_t keyPos = pos_;
      auto key = string();
      if (!key) return std::nullopt;
      if (out.find(*key)) {
        pos_ = keyPos;
        return fail(DecodeError::DuplicateKey);
      }
      auto v = value(depth);
      if (!v) return std::nullopt;
      out.set(std::move(*key), std::move(*v));
    }
    ++pos_;
    return Value(std::move(out));
  }

  std::string_view in_;
  const Limits& limits_;
  size_t pos_ = 0;
  size_t items_ = 0;
  DecodeError error_ = DecodeError::Truncated;
  size_t errorPos_ = 0;
};

void encodeString(std::string_view s, std::string& out) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

} // namespace

Result<Value> decode(std::string_view bytes, const Limits& limits) {
  Decoder d(bytes, limits);
  auto v = d.value(0);
  if (!v) return d.error();
  if (!d.atEnd()) {
    d.fail(DecodeError::TrailingData);
    return d.error();
  }
  return std::move(*v);
}

void encode(const Value& v, std::string& out) {
  if (v.isInteger()) {
    out += 'i';
    out += std::to_string(v.asInteger());
    out += 'e';
  } else if (v.isString()) {
    encodeString(v.asString(), out);
  } else if (v.isList()) {
    out += 'l';
    for (const auto& e : v.asList()) encode(e, out);
    out += 'e';
  } else {
    out += 'd';
    for (const auto& [k, e] : v.asDict().entries()) {
      encodeString(k, out);
      encode(e, out);
    }
    out += 'e';
  }
}

std::string encode(const Value& v) {
  std::string out;
  encode(v, out);
  return out;
}

} // namespace verbund::media::bencode
