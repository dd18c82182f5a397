#include "chitty/base/records.hpp"

#include <limits>
#include <optional>

#include "chitty/base/text.hpp"

namespace chitty {
namespace {

// Splits on single spaces; nullopt when a field is empty (two spaces in a
// row, or a space at either end).
std::optional<std::vector<std::string_view>> split(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t sp = line.find(' ', start);
    const std::string_view f = line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start);
    if (f.empty()) return std::nullopt;
    fields.push_back(f);
    if (sp == std::string_view::npos) return fields;
    start = sp + 1;
  }
}

}  // namespace

void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '%' || c >= 0x7F) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
}

bool unescape(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      const int hi = hex_digit(s[i + 1]);
      const int lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>((hi << 4) | lo);
      i += 2;
    } else if (c < 0x20 || c == 0x7F) {
      return false;
    } else {
      out += static_cast<char>(c);
    }
  }
  return true;
}

RecordWriter& RecordWriter::text(std::string_view s) {
  out_ += ' ';
  append_escaped(out_, s);
  return *this;
}

RecordWriter& RecordWriter::number(std::uint64_t v) {
  out_ += ' ';
  append_decimal(out_, v);
  return *this;
}

RecordWriter& RecordWriter::signed_number(std::int64_t v) {
  out_ += ' ';
  if (v < 0) {
    out_ += '-';
    append_decimal(out_, static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(v));
  } else {
    append_decimal(out_, static_cast<std::uint64_t>(v));
  }
  return *this;
}

Error record_error(std::string_view what, std::size_t line, std::string_view why) {
  std::string m(what);
  m += " line ";
  append_decimal(m, line);
  m += ": ";
  m += why;
  return Error(std::move(m));
}

Error RecordLine::field_error(std::size_t i, std::string_view why) const {
  std::string m(why);
  m += " in field ";
  append_decimal(m, i + 1);
  m += " of the ";
  m += type();
  m += " record";
  return error(m);
}

Result<std::string> RecordLine::text(std::size_t i) const {
  std::string out;
  if (!unescape(fields_[i], out)) return tl::unexpected(field_error(i, "bad escape"));
  return out;
}

Result<std::uint64_t> RecordLine::number(std::size_t i, std::uint64_t max) const {
  std::uint64_t v = 0;
  if (!parse_u64(fields_[i], v)) return tl::unexpected(field_error(i, "bad number"));
  if (v > max) return tl::unexpected(field_error(i, "number out of range"));
  return v;
}

Result<std::int64_t> RecordLine::signed_number(std::size_t i) const {
  std::string_view f = fields_[i];
  const bool negative = !f.empty() && f[0] == '-';
  if (negative) f.remove_prefix(1);
  std::uint64_t v = 0;
  if (!parse_u64(f, v)) return tl::unexpected(field_error(i, "bad number"));
  if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return tl::unexpected(field_error(i, "number out of range"));
  }
  return negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
}

Result<void> read_records(std::string_view text, std::string_view header, std::string_view what,
                          const std::function<Result<void>(const RecordLine&)>& on_record) {
  std::size_t number = 0;
  std::size_t pos = 0;
  bool ended = false;
  while (pos < text.size()) {
    ++number;
    const std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      return tl::unexpected(record_error(what, number, "truncated line (no newline at its end)"));
    }
    const std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (number == 1) {
      if (raw != header) {
        std::string why = "not a ";
        why += what;
        why += ": the header must be \"";
        why += header;
        why += "\"";
        return tl::unexpected(record_error(what, 1, why));
      }
      continue;
    }
    if (ended) return tl::unexpected(record_error(what, number, "a line after the end record"));
    auto fields = split(raw);
    if (!fields) {
      return tl::unexpected(record_error(what, number, "an empty field (two spaces, or a space at an end of the line)"));
    }
    const RecordLine line(what, number, std::move(*fields));
    if (line.type() == "end") {
      if (line.size() != 1) return tl::unexpected(line.error("the end record has no fields"));
      ended = true;
      continue;
    }
    if (auto r = on_record(line); !r) return r;
  }
  if (number == 0) return tl::unexpected(record_error(what, 1, "empty: no header"));
  if (!ended) return tl::unexpected(record_error(what, number + 1, "the end record is missing (a truncated file)"));
  return {};
}

}  // namespace chitty
