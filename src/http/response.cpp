#include "chitty/http/response.hpp"

#include "chitty/base/text.hpp"

namespace chitty::http {

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::make_unique<StringPayload>(std::move(body));
  return r;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::make_unique<StringPayload>(std::move(body));
  return r;
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

void serialize_head(const Response& r, const HeadFields& f, std::string& out) {
  out += "HTTP/1.1 ";
  append_decimal(out, static_cast<std::uint64_t>(r.status));
  out += ' ';
  out += reason_phrase(r.status);
  out += "\r\n";
  if (!r.content_type.empty()) {
    out += "Content-Type: ";
    out += r.content_type;
    out += "\r\n";
  }
  out += "Content-Length: ";
  append_decimal(out, r.body_size());
  out += "\r\n";
  if (!f.request_id.empty()) {
    out += "X-Request-Id: ";
    out += f.request_id;
    out += "\r\n";
  }
  if (!f.date.empty()) {
    out += "Date: ";
    out += f.date;
    out += "\r\n";
  }
  // Nothing this agent answers may be stored by an intermediary or a client
  // cache: credentials above all, but also errors that name references.
  out += "Cache-Control: no-store\r\n";
  for (const auto& [name, value] : r.headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (f.close) {
    out += "Connection: close\r\n";
  } else if (f.keep_alive_1_0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
}

}  // namespace chitty::http
