// A parsed HTTP/1.x request. All bytes (target, header names and values,
// body) live in buffers that are wiped when the Request dies: a header may
// carry a token (X-Emergency-Token) and a body may carry anything.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "chitty/base/wipe.hpp"

namespace chitty::http {

enum class Method { get, head, post, put, del, patch, options, other };

std::string_view method_name(Method m) noexcept;

class Request {
 public:
  Request() = default;
  Request(Request&&) noexcept = default;
  Request& operator=(Request&&) noexcept = default;

  Method method() const noexcept { return method_; }
  std::string_view method_name() const noexcept { return view(method_span_); }
  std::string_view target() const noexcept { return view(target_); }  // raw, as sent
  // The path of the target ("/api/x", still percent-encoded) and its raw query
  // (after '?', without it; empty if none). An absolute-form target
  // ("http://host/path") is reduced to its path.
  std::string_view path() const noexcept;
  std::string_view query() const noexcept;

  // First header with this name (case-insensitive), if any.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  std::size_t header_count() const noexcept { return headers_.size(); }
  std::pair<std::string_view, std::string_view> header_at(std::size_t i) const noexcept {
    return {view(headers_[i].first), view(headers_[i].second)};
  }

  std::span<const char> body() const noexcept { return {body_.data(), body_.size()}; }
  int http_minor() const noexcept { return http_minor_; }
  bool keep_alive() const noexcept { return keep_alive_; }

 private:
  friend class RequestParser;

  struct Span {
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
  };
  std::string_view view(Span s) const noexcept { return {data_.data() + s.offset, s.length}; }

  WipedBytes data_;
  Span method_span_;
  Span target_;
  std::vector<std::pair<Span, Span>> headers_;
  WipedBytes body_;
  Method method_ = Method::other;
  int http_minor_ = 1;
  bool keep_alive_ = true;
};

}  // namespace chitty::http
