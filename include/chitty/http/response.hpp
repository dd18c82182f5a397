// Responses and their serialisation (status line and headers). Bodies are
// held through Payload so that a body living in locked memory can be written
// without a copy and wiped when the write completes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chitty::http {

// Owner of a response body. Destroyed after the bytes have been written (or
// the write failed): the place to wipe secret bytes.
class Payload {
 public:
  virtual ~Payload() = default;
  virtual std::span<const char> bytes() const noexcept = 0;
  // Holds secret material: counted against Limits::max_secret_responses.
  virtual bool sensitive() const noexcept { return false; }
};

// A body that carries no secret.
class StringPayload final : public Payload {
 public:
  explicit StringPayload(std::string s) : s_(std::move(s)) {}
  std::span<const char> bytes() const noexcept override { return {s_.data(), s_.size()}; }

 private:
  std::string s_;
};

struct Response {
  int status = 200;
  std::string content_type;  // empty: no Content-Type header
  std::vector<std::pair<std::string, std::string>> headers;
  std::unique_ptr<Payload> body;

  static Response json(int status, std::string body);
  static Response text(int status, std::string body);
  std::size_t body_size() const noexcept { return body ? body->bytes().size() : 0; }
};

// Reason phrase of a status code ("Not Found"); "Unknown" for others.
std::string_view reason_phrase(int status) noexcept;

// What the serializer needs beyond the Response itself.
struct HeadFields {
  std::string_view request_id;
  std::string_view date;  // HTTP-date; empty: no Date header
  bool close = false;     // Connection: close
  bool keep_alive_1_0 = false;  // Connection: keep-alive for an HTTP/1.0 client
};

// Appends the status line and header block (ending with the empty line) to
// `out`. Header names and values from the Response are written as given; the
// server only sets values it controls.
void serialize_head(const Response& r, const HeadFields& f, std::string& out);

}  // namespace chitty::http
