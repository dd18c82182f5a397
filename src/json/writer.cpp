#include "chitty/json/writer.hpp"

#include <algorithm>

#include <charconv>
#include <cmath>
#include <vector>

#include "chitty/base/text.hpp"

namespace chitty::json {

// A small streaming writer: strings are appended in runs (base's escaper),
// commas and colons follow from a stack of open containers. Misuse (a value
// where a key belongs, closing what is not open) is a programming error.
struct Writer::Impl {
  explicit Impl(std::string& o) : out(o) {}

  struct Level {
    bool object;
    std::size_t members = 0;
  };

  void value_prefix() {
    if (stack.empty()) return;
    Level& top = stack.back();
    if (top.object) {
      // The key already wrote its colon.
      pending_key = false;
      ++top.members;
    } else {
      if (top.members++ > 0) out += ',';
    }
  }

  void finish_value() {
    if (stack.empty()) top_level_values++;
  }

  void quoted(std::string_view s) {
    out += '"';
    // Keys and most values are printable ASCII with nothing to escape: one
    // append (the escaper, byte by byte, is for the rest).
    const bool plain = std::all_of(s.begin(), s.end(), [](char ch) {
      const auto c = static_cast<unsigned char>(ch);
      return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
    });
    if (plain) {
      out.append(s);
    } else {
      append_json_escaped(out, s);
    }
    out += '"';
  }

  std::string& out;
  std::vector<Level> stack;
  bool pending_key = false;
  int top_level_values = 0;
};

Writer::Writer(std::string& out) : impl_(std::make_unique<Impl>(out)) {}
Writer::~Writer() = default;

Writer& Writer::open(char bracket, bool object) {
  impl_->value_prefix();
  impl_->out += bracket;
  impl_->stack.push_back({object, 0});
  return *this;
}

Writer& Writer::close(char bracket) {
  impl_->out += bracket;
  impl_->stack.pop_back();
  impl_->finish_value();
  return *this;
}

Writer& Writer::begin_object() { return open('{', true); }
Writer& Writer::end_object() { return close('}'); }
Writer& Writer::begin_array() { return open('[', false); }
Writer& Writer::end_array() { return close(']'); }

Writer& Writer::key(std::string_view k) {
  Impl::Level& top = impl_->stack.back();
  if (top.members > 0) impl_->out += ',';
  impl_->quoted(k);
  impl_->out += ':';
  impl_->pending_key = true;
  return *this;
}

Writer& Writer::string(std::string_view v) {
  impl_->value_prefix();
  impl_->quoted(v);
  impl_->finish_value();
  return *this;
}

Writer& Writer::integer(std::int64_t v) {
  impl_->value_prefix();
  if (v < 0) {
    impl_->out += '-';
    append_decimal(impl_->out, static_cast<std::uint64_t>(-(v + 1)) + 1);
  } else {
    append_decimal(impl_->out, static_cast<std::uint64_t>(v));
  }
  impl_->finish_value();
  return *this;
}

Writer& Writer::uinteger(std::uint64_t v) {
  impl_->value_prefix();
  append_decimal(impl_->out, v);
  impl_->finish_value();
  return *this;
}

Writer& Writer::number(double v) {
  impl_->value_prefix();
  if (!std::isfinite(v)) {
    impl_->out += "null";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
    impl_->out.append(buf, r.ptr);
  }
  impl_->finish_value();
  return *this;
}

Writer& Writer::boolean(bool v) {
  impl_->value_prefix();
  impl_->out += v ? "true" : "false";
  impl_->finish_value();
  return *this;
}

Writer& Writer::null() {
  impl_->value_prefix();
  impl_->out += "null";
  impl_->finish_value();
  return *this;
}

bool Writer::complete() const { return impl_->stack.empty() && impl_->top_level_values == 1; }

}  // namespace chitty::json
