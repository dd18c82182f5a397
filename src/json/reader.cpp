#include "chitty/json/reader.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <unordered_set>

namespace chitty::json {

const Value* Value::find(std::string_view key) const noexcept {
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string_view type_name(Value::Type t) noexcept {
  switch (t) {
    case Value::Type::null: return "null";
    case Value::Type::boolean: return "boolean";
    case Value::Type::number: return "number";
    case Value::Type::string: return "string";
    case Value::Type::array: return "array";
    case Value::Type::object: return "object";
  }
  return "value";
}

namespace {

// Builds a Value from rapidjson's SAX events. Returning false stops the
// parse; `problem` then says why.
class Builder : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Builder> {
 public:
  bool Null() { return add(Value{}); }
  bool Bool(bool b) {
    Value v;
    v.type = Value::Type::boolean;
    v.boolean = b;
    return add(std::move(v));
  }
  bool Int(int i) { return integer(i); }
  bool Uint(unsigned u) { return integer(u); }
  bool Int64(std::int64_t i) { return integer(i); }
  bool Uint64(std::uint64_t u) {
    if (u > static_cast<std::uint64_t>(INT64_MAX)) return Double(static_cast<double>(u));
    return integer(static_cast<std::int64_t>(u));
  }
  bool Double(double d) {
    Value v;
    v.type = Value::Type::number;
    v.number = d;
    return add(std::move(v));
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    Value v;
    v.type = Value::Type::string;
    v.string.assign(s, n);
    return add(std::move(v));
  }
  bool StartObject() { return open(Value::Type::object); }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    Frame& f = stack_.back();
    std::string key(s, n);
    if (!f.keys.insert(key).second) {
      problem = "duplicate key \"" + key + "\"";
      return false;
    }
    f.key = std::move(key);
    return true;
  }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool StartArray() { return open(Value::Type::array); }
  bool EndArray(rapidjson::SizeType) { return close(); }

  std::optional<Value> root;
  std::string problem;

 private:
  struct Frame {
    Value value;
    std::string key;
    std::unordered_set<std::string> keys;
  };

  bool integer(std::int64_t i) {
    Value v;
    v.type = Value::Type::number;
    v.number = static_cast<double>(i);
    v.integer = i;
    return add(std::move(v));
  }
  bool add(Value v) {
    if (stack_.empty()) {
      root = std::move(v);
      return true;
    }
    Frame& f = stack_.back();
    if (f.value.type == Value::Type::object) {
      f.value.members.push_back(Member{std::move(f.key), std::move(v)});
    } else {
      f.value.items.push_back(std::move(v));
    }
    return true;
  }
  bool open(Value::Type t) {
    if (stack_.size() >= kMaxDepth) {
      problem = "nested deeper than " + std::to_string(kMaxDepth) + " levels";
      return false;
    }
    Frame f;
    f.value.type = t;
    stack_.push_back(std::move(f));
    return true;
  }
  bool close() {
    Value v = std::move(stack_.back().value);
    stack_.pop_back();
    return add(std::move(v));
  }

  std::vector<Frame> stack_;
};

}  // namespace

[[nodiscard]] Result<Value> parse(std::string_view text) {
  Builder b;
  rapidjson::Reader reader;
  rapidjson::MemoryStream ms(text.data(), text.size());
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
  rapidjson::ParseResult r = reader.Parse<kFlags>(ms, b);
  if (!r) {
    std::string why = !b.problem.empty() ? b.problem : rapidjson::GetParseError_En(r.Code());
    if (!why.empty() && why.back() == '.') why.pop_back();
    return fail("invalid JSON at byte " + std::to_string(r.Offset()) + ": " + why);
  }
  if (!b.root) return fail("invalid JSON: no value");
  return std::move(*b.root);
}

}  // namespace chitty::json
