#include "chitty/json/writer.hpp"

#include <cmath>

#include <rapidjson/writer.h>

#include "chitty/base/text.hpp"

namespace chitty::json {
namespace {

// rapidjson output stream over a std::string.
class StringStream {
 public:
  using Ch = char;
  explicit StringStream(std::string& out) : out_(out) {}
  void Put(char c) { out_.push_back(c); }
  void Flush() {}

 private:
  std::string& out_;
};

}  // namespace

struct Writer::Impl {
  explicit Impl(std::string& out) : stream(out), writer(stream) {}
  StringStream stream;
  rapidjson::Writer<StringStream, rapidjson::UTF8<>, rapidjson::UTF8<>, rapidjson::CrtAllocator,
                    rapidjson::kWriteValidateEncodingFlag>
      writer;
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
