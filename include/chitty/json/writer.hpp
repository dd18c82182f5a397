// Writing JSON documents.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace chitty::json {

// Streams one JSON value into a std::string. Strings are always emitted as
// valid UTF-8: invalid bytes become U+FFFD, so a client-supplied path echoed
// in an error message can never break the document.
//
// Only for documents that hold no secret: secret-bearing responses are written
// into secure buffers by the secure-aware writer that arrives with the cache.
class Writer {
 public:
  explicit Writer(std::string& out);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Writer& begin_object();
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  Writer& key(std::string_view k);
  Writer& string(std::string_view v);
  Writer& integer(std::int64_t v);
  Writer& uinteger(std::uint64_t v);
  Writer& number(double v);  // non-finite values are written as null
  Writer& boolean(bool v);
  Writer& null();

  // True once exactly one complete top-level value has been written.
  bool complete() const;

 private:
  Writer& open(char bracket, bool object);
  Writer& close(char bracket);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The text of one JSON object whose members `members(w)` writes.
template <typename Members>
std::string object_text(Members&& members, std::size_t reserve = 0) {
  std::string out;
  out.reserve(reserve);
  Writer w(out);
  w.begin_object();
  members(w);
  w.end_object();
  return out;
}

}  // namespace chitty::json
