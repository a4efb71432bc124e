#pragma once
// Bencode (the encoding of rtpengine's ng control protocol: byte strings, integers, lists and
// dictionaries), as a pure codec: no I/O, no clock. Decoding is strict and bounded (depth, item
// count, string length), so a hostile datagram costs at most a small, fixed amount of work; it
// never throws and never asserts.
//
// Dictionaries keep their keys in the order they were given or read: rtpengine writes its replies
// in insertion order, not in the sorted order BitTorrent's bencode asks for, and does not need
// sorted keys on input. Duplicate keys are refused when decoding (ambiguous).
#include "base/result.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace verbund::media::bencode {

class Value;
using List = std::vector<Value>;

// An ordered dictionary of byte-string keys.
class Dict {
public:
  using Entry = std::pair<std::string, Value>;
  Dict() = default;
  Dict(std::initializer_list<Entry> entries);

  // Replaces the value of an existing key, else appends.
  Dict& set(std::string key, Value value);
  const Value* find(std::string_view key) const;
  // The value of key if it is a string / an integer.
  std::optional<std::string_view> string(std::string_view key) const;
  std::optional<int64_t> integer(std::string_view key) const;
  const List* list(std::string_view key) const;
  const Dict* dict(std::string_view key) const;

  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const;
  bool empty() const;
  bool operator==(const Dict& o) const;

private:
  std::vector<Entry> entries_;
};

class Value {
public:
  Value() : v_(int64_t{0}) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(List l) : v_(std::move(l)) {}
  Value(Dict d) : v_(std::move(d)) {}

  bool isInteger() const { return v_.index() == 0; }
  bool isString() const { return v_.index() == 1; }
  bool isList() const { return v_.index() == 2; }
  bool isDict() const { return v_.index() == 3; }
  int64_t asInteger() const { return std::get<0>(v_); }
  const std::string& asString() const { return std::get<1>(v_); }
  const List& asList() const { return std::get<2>(v_); }
  const Dict& asDict() const { return std::get<3>(v_); }
  List& asList() { return std::get<2>(v_); }
  Dict& asDict() { return std::get<3>(v_); }

  bool operator==(const Value& o) const { return v_ == o.v_; }

private:
  std::variant<int64_t, std::string, List, Dict> v_;
};

inline size_t Dict::size() const {
  return entries_.size();
}
inline bool Dict::empty() const {
  return entries_.empty();
}

// Why a decode failed; the Error's code is one of these.
enum class DecodeError {
  Truncated = 1,  // input ended inside a value
  UnexpectedByte, // a byte that cannot start or continue a value here
  BadInteger,     // empty, "-0", leading zeros, or out of int64 range
  BadLength,      // a string length with leading zeros or out of range
  StringTooLong,  // longer than Limits::maxStringLength
  TooDeep,        // nesting beyond Limits::maxDepth
  TooManyItems,   // more values than Limits::maxItems
  KeyNotString,   // a dictionary key that is not a byte string
  DuplicateKey,   // a key twice in one dictionary
  TrailingData,   // bytes after the (top-level) value
};
const char* decodeErrorName(DecodeError e);

struct Limits {
  size_t maxDepth = 32;             // nested lists/dictionaries
  size_t maxItems = 20000;          // values of any kind in one document
  size_t maxStringLength = 1 << 20; // one byte string
};

// Decodes exactly one value spanning all of `bytes`.
Result<Value> decode(std::string_view bytes, const Limits& limits = {});
// Appends the encoding of v to out / returns it.
void encode(const Value& v, std::string& out);
std::string encode(const Value& v);

} // namespace verbund::media::bencode
