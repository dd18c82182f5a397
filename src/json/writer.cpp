#include "chitty/json/writer.hpp"

#include <cmath>

#include <rapidjson/writer.h>

#include "chitty/base/text.hpp"

namespace chitty::json {

// rapidjson output stream over a std::string.
class StringStream {
 public:
  using Ch = char;
  explicit StringStream(std::string& out) : out_(out) {}
  void Put(char c) { out_.push_back(c); }
  void Flush() {}
  void reserve(std::size_t n) {
    if (out_.capacity() - out_.size() < n) out_.reserve(out_.size() + n);
  }
  void put_unsafe(char c) { out_.push_back(c); }

 private:
  std::string& out_;
};

}  // namespace chitty::json

// rapidjson reserves room before it writes a string (PutReserve) and then
// puts characters unchecked (PutUnsafe); without these it would grow the
// std::string one push_back at a time.
namespace rapidjson {
template <>
inline void PutReserve(chitty::json::StringStream& stream, size_t count) {
  stream.reserve(count);
}
template <>
inline void PutUnsafe(chitty::json::StringStream& stream, char c) {
  stream.put_unsafe(c);
}
}  // namespace rapidjson

namespace chitty::json {

struct Writer::Impl {
  explicit Impl(std::string& out) : stream(out), writer(stream) {}
  StringStream stream;
  // No kWriteValidateEncodingFlag: key() and string() validate (and repair)
  // before rapidjson sees the bytes.
  rapidjson::Writer<StringStream> writer;
};

Writer::Writer(std::string& out) : impl_(std::make_unique<Impl>(out)) {}
Writer::~Writer() = default;

Writer& Writer::begin_object() { impl_->writer.StartObject(); return *this; }
Writer& Writer::end_object() { impl_->writer.EndObject(); return *this; }
Writer& Writer::begin_array() { impl_->writer.StartArray(); return *this; }
Writer& Writer::end_array() { impl_->writer.EndArray(); return *this; }

// rapidjson would stop at invalid UTF-8 after writing part of the string, so
// strings are checked first and repaired only when needed.
Writer& Writer::key(std::string_view k) {
  if (is_valid_utf8(k)) {
    impl_->writer.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
  } else {
    std::string clean = to_valid_utf8(k);
    impl_->writer.Key(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
  }
  return *this;
}

Writer& Writer::string(std::string_view v) {
  if (is_valid_utf8(v)) {
    impl_->writer.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  } else {
    std::string clean = to_valid_utf8(v);
    impl_->writer.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
  }
  return *this;
}

Writer& Writer::integer(std::int64_t v) { impl_->writer.Int64(v); return *this; }
Writer& Writer::uinteger(std::uint64_t v) { impl_->writer.Uint64(v); return *this; }
Writer& Writer::number(double v) {
  if (std::isfinite(v)) impl_->writer.Double(v); else impl_->writer.Null();
  return *this;
}
Writer& Writer::boolean(bool v) { impl_->writer.Bool(v); return *this; }
Writer& Writer::null() { impl_->writer.Null(); return *this; }

bool Writer::complete() const { return impl_->writer.IsComplete(); }

}  // namespace chitty::json
