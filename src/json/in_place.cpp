#include "chitty/json/in_place.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/stream.h>

namespace chitty::json {

// Builds the node table from rapidjson's SAX events. Containers are open on
// a stack; each value is linked to its parent's last child.
struct InPlaceHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, InPlaceHandler> {
  using Item = InPlace::Item;
  using Type = Node::Type;

  InPlaceHandler(InPlace& d, const InPlaceLimits& l) : doc(d), limits(l) {}

  InPlace& doc;
  const InPlaceLimits& limits;
  struct Open {
    std::uint32_t index;
    std::uint32_t last_child;  // 0 = none yet
  };
  std::vector<Open> open;
  const char* key = nullptr;
  std::uint32_t key_length = 0;
  bool too_deep = false;
  bool too_many = false;

  std::uint32_t offset(const char* p) const { return static_cast<std::uint32_t>(p - doc.base_); }

  bool add(Item item, bool container) {
    if (doc.nodes_.size() >= limits.max_nodes) {
      too_many = true;
      return false;
    }
    auto index = static_cast<std::uint32_t>(doc.nodes_.size());
    if (!open.empty()) {
      Open& parent = open.back();
      Item& p = doc.nodes_[parent.index];
      if (p.type == Type::object) {
        item.key_offset = offset(key);
        item.key_length = key_length;
      }
      if (parent.last_child == 0) {
        p.first = index;
      } else {
        doc.nodes_[parent.last_child].next = index;
      }
      parent.last_child = index;
      ++p.count;
    }
    doc.nodes_.push_back(item);
    if (container) {
      if (open.size() >= limits.max_depth) {
        too_deep = true;
        return false;
      }
      open.push_back({index, 0});
    }
    return true;
  }
  bool scalar(Type t) {
    Item i;
    i.type = t;
    return add(i, false);
  }

  bool Null() { return scalar(Type::null); }
  bool Bool(bool b) {
    Item i;
    i.type = Type::boolean;
    i.boolean = b;
    return add(i, false);
  }
  bool text(Type t, const char* s, rapidjson::SizeType n) {
    Item i;
    i.type = t;
    i.text_offset = offset(s);
    i.text_length = n;
    return add(i, false);
  }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return text(Type::number, s, n); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return text(Type::string, s, n); }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key = s;
    key_length = n;
    return true;
  }
  bool StartObject() {
    Item i;
    i.type = Type::object;
    return add(i, true);
  }
  bool StartArray() {
    Item i;
    i.type = Type::array;
    return add(i, true);
  }
  bool EndObject(rapidjson::SizeType) {
    open.pop_back();
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    open.pop_back();
    return true;
  }
};

Result<InPlace> InPlace::parse(secure::SecureBuffer& buffer, InPlaceLimits limits) {
  const std::size_t n = buffer.size();
  if (n == 0) return fail("empty document");
  if (n >= buffer.capacity()) return fail("no room for the terminating NUL (internal)");
  if (n > 0xFFFFFFF0u) return fail("document too large");
  buffer.data()[n] = '\0';  // beyond size(): the reader stops here

  InPlace doc;
  doc.base_ = buffer.data();
  InPlaceHandler handler(doc, limits);
  rapidjson::InsituStringStream stream(buffer.data());
  rapidjson::Reader reader;
  constexpr unsigned kFlags =
      rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::ParseResult r = reader.Parse<kFlags>(stream, handler);
  if (handler.too_deep) return fail("nested deeper than " + std::to_string(limits.max_depth) + " levels");
  if (handler.too_many) return fail("more than " + std::to_string(limits.max_nodes) + " values");
  if (!r) {
    return fail(std::string(rapidjson::GetParseError_En(r.Code())) + " at byte " + std::to_string(r.Offset()));
  }
  // The reader stops at the first NUL: one inside the document would hide
  // whatever follows it.
  if (stream.Tell() != n) return fail("a NUL byte at byte " + std::to_string(stream.Tell()));
  return doc;
}

Node::Type Node::type() const noexcept { return doc_ ? doc_->nodes_[index_].type : Type::null; }
bool Node::boolean() const noexcept { return doc_ && doc_->nodes_[index_].boolean; }

std::string_view Node::text() const noexcept {
  if (!doc_) return {};
  const auto& i = doc_->nodes_[index_];
  return {doc_->base_ + i.text_offset, i.text_length};
}

std::string_view Node::key() const noexcept {
  if (!doc_) return {};
  const auto& i = doc_->nodes_[index_];
  return {doc_->base_ + i.key_offset, i.key_length};
}

std::size_t Node::size() const noexcept { return doc_ ? doc_->nodes_[index_].count : 0; }

Node Node::get(std::string_view name) const noexcept {
  if (!is(Type::object)) return {};
  for (Node child : *this) {
    if (child.key() == name) return child;
  }
  return {};
}

Node::Iterator& Node::Iterator::operator++() noexcept {
  index_ = doc_->nodes_[index_].next;
  return *this;
}

Node::Iterator Node::begin() const noexcept {
  if (!doc_) return Iterator(nullptr, 0);
  return Iterator(doc_, doc_->nodes_[index_].first);
}

Node::Iterator Node::end() const noexcept { return Iterator(doc_, 0); }

}  // namespace chitty::json
