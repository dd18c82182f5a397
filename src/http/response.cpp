#include "chitty/http/response.hpp"

#include "chitty/base/text.hpp"

namespace chitty::http {

namespace {

Response with_body(int status, std::string_view type, std::string body) {
  Response r;
  r.status = status;
  r.content_type = type;
  r.body = std::make_unique<StringPayload>(std::move(body));
  return r;
}

}  // namespace

Response Response::json(int status, std::string body) { return with_body(status, "application/json", std::move(body)); }

Response Response::text(int status, std::string body) {
  return with_body(status, "text/plain; charset=utf-8", std::move(body));
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace {

void header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

}  // namespace

void serialize_head(const Response& r, const HeadFields& f, std::string& out) {
  out += "HTTP/1.1 ";
  append_decimal(out, static_cast<std::uint64_t>(r.status));
  out += ' ';
  out += reason_phrase(r.status);
  out += "\r\n";
  if (!r.content_type.empty()) header(out, "Content-Type", r.content_type);
  out += "Content-Length: ";
  append_decimal(out, r.body_size());
  out += "\r\n";
  if (!f.request_id.empty()) header(out, "X-Request-Id", f.request_id);
  if (!f.date.empty()) header(out, "Date", f.date);
  // Nothing this agent answers may be stored by an intermediary or a client
  // cache: credentials above all, but also errors that name references.
  header(out, "Cache-Control", "no-store");
  for (const auto& [name, value] : r.headers) header(out, name, value);
  if (f.close) {
    header(out, "Connection", "close");
  } else if (f.keep_alive_1_0) {
    header(out, "Connection", "keep-alive");
  }
  out += "\r\n";
}

}  // namespace chitty::http
