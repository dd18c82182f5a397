// Line-oriented record files — the prediction model, the risk baselines:
// a header line, then one "<type> <field> <field> ...\n" line per record,
// then "end\n". Names are percent-escaped so that a field never holds a
// space or a control byte; numbers are plain decimal. The writer appends a
// line at a time; the reader names the line of the first thing wrong:
// "<what> line N: <why>".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty {

// Each byte 0x00-0x20, '%' and 0x7F-0xFF as %XX (upper-case hex).
void append_escaped(std::string& out, std::string_view s);
// The reverse; also takes lower-case hex and raw bytes 0x80-0xFF. False on
// a '%' without two hex digits after it, or a raw control byte.
bool unescape(std::string_view s, std::string& out);

// One record line: its type, then each field after one space; the newline
// when it goes out of scope.
class RecordWriter {
 public:
  RecordWriter(std::string& out, std::string_view type) : out_(out) { out_ += type; }
  ~RecordWriter() { out_ += '\n'; }
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  RecordWriter& text(std::string_view s);     // escaped
  RecordWriter& number(std::uint64_t v);
  RecordWriter& signed_number(std::int64_t v);

 private:
  std::string& out_;
};

Error record_error(std::string_view what, std::size_t line, std::string_view why);

// One record line as read: its fields, with readers that name the line and
// field when one is not what the format says.
class RecordLine {
 public:
  RecordLine(std::string_view what, std::size_t number, std::vector<std::string_view> fields)
      : what_(what), number_(number), fields_(std::move(fields)) {}

  std::size_t size() const noexcept { return fields_.size(); }
  std::string_view type() const noexcept { return fields_[0]; }

  Error error(std::string_view why) const { return record_error(what_, number_, why); }
  Error field_error(std::size_t i, std::string_view why) const;

  Result<std::string> text(std::size_t i) const;
  Result<std::uint64_t> number(std::size_t i, std::uint64_t max) const;
  Result<std::int64_t> signed_number(std::size_t i) const;

 private:
  std::string_view what_;
  std::size_t number_;
  std::vector<std::string_view> fields_;
};

// Reads `text` whose first line must be `header` and whose last is "end"
// (with no fields), calling `on_record` for each line between, in order.
// Refused: empty text, a line without its newline, an empty field (two
// spaces, or a space at an end), anything after "end", a missing "end",
// and whatever `on_record` refuses (an unknown type included).
Result<void> read_records(std::string_view text, std::string_view header, std::string_view what,
                          const std::function<Result<void>(const RecordLine&)>& on_record);

}  // namespace chitty
