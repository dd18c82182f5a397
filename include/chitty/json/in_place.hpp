// JSON parsed in place inside a SecureBuffer — for upstream answers that
// carry secrets (a 1Password item holds every field's value). rapidjson's
// SAX reader runs in situ: strings are unescaped where they lie, numbers are
// kept as their text, and the tree built here holds only offsets into the
// buffer. No byte of the document is copied to ordinary memory, so wiping the
// buffer wipes everything.
//
// Strict: one value, valid UTF-8, nothing after it (an embedded NUL ends the
// document early and is refused), bounded depth and node count.
//
// Thread: any; a document is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "chitty/base/result.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::json {

class InPlace;

// One value of an InPlace document. A light handle (document + index); valid
// while the document and its buffer live.
class Node {
 public:
  enum class Type : std::uint8_t { null, boolean, number, string, array, object };

  Node() = default;  // an invalid node (valid() false)

  Type type() const noexcept;
  bool is(Type t) const noexcept { return type() == t; }
  bool boolean() const noexcept;
  // A string's decoded bytes, or a number's text; points into the buffer.
  std::string_view text() const noexcept;
  // The member name, for a value inside an object; "" otherwise.
  std::string_view key() const noexcept;

  // Members of an object / items of an array, in document order.
  std::size_t size() const noexcept;
  // The member `name` of an object (exact match, first of duplicates); an
  // invalid node (valid() false) when absent or not an object.
  Node get(std::string_view name) const noexcept;
  bool valid() const noexcept { return doc_ != nullptr; }

  class Iterator {
   public:
    Node operator*() const noexcept { return Node(doc_, index_); }
    Iterator& operator++() noexcept;
    bool operator!=(const Iterator& o) const noexcept { return index_ != o.index_; }

   private:
    friend class Node;
    Iterator(const InPlace* d, std::uint32_t i) : doc_(d), index_(i) {}
    const InPlace* doc_;
    std::uint32_t index_;
  };
  // Children (members or items); empty for scalars.
  Iterator begin() const noexcept;
  Iterator end() const noexcept;

 private:
  friend class InPlace;
  Node(const InPlace* d, std::uint32_t i) : doc_(d), index_(i) {}
  const InPlace* doc_ = nullptr;
  std::uint32_t index_ = 0;
};

struct InPlaceLimits {
  unsigned max_depth = 32;
  std::size_t max_nodes = 20000;
};

class InPlace {
 public:
  // Parses the bytes of `buffer` in place. It needs one byte of spare
  // capacity (for the terminating NUL the in-situ reader stops at); the
  // buffer's bytes are rewritten (unescaped) by the parse. Errors say what
  // and at which byte, never what the document holds.
  [[nodiscard]] static Result<InPlace> parse(secure::SecureBuffer& buffer, InPlaceLimits limits = {});

  Node root() const noexcept { return Node(this, 0); }
  std::size_t nodes() const noexcept { return nodes_.size(); }

 private:
  friend class Node;
  friend struct InPlaceHandler;
  struct Item {
    Node::Type type = Node::Type::null;
    bool boolean = false;
    std::uint32_t next = 0;         // next sibling; 0 = none (the root is never a sibling)
    std::uint32_t first = 0;        // first child; 0 = none
    std::uint32_t count = 0;        // children
    std::uint32_t key_offset = 0, key_length = 0;
    std::uint32_t text_offset = 0, text_length = 0;
  };
  const char* base_ = nullptr;
  std::vector<Item> nodes_;
};

}  // namespace chitty::json
