// The one rule for the URLs the agent sends a token or the audit trail to
// (the Connect servers, the audit sink): used by the configuration check
// and by the HTTP client, so a file that passes --check-config is never
// refused at start, nor the other way round.
//
// The parser is strict on purpose: an http(s) URL with a host of letters,
// digits, dots and dashes, or a bracketed IPv6 address; an optional port;
// no user info. Anything a URL parser could read two ways (backslashes,
// percent-escapes or '@' in the authority, spaces) is refused, so that the
// host checked here is the host libcurl connects to.
//
// Header-only, pure (the standard library and inet_pton).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <string_view>

#include "chitty/base/result.hpp"

namespace chitty {

struct ServiceUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower-case; an IPv6 address without its brackets
  bool ipv6 = false;
  std::string port;    // digits, or "" for the scheme's default
  bool has_query = false;
  bool has_fragment = false;
};

namespace detail {

inline char lower_ascii(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace detail

// Parses `text` as the agent accepts a service URL; an error says why not.
[[nodiscard]] inline Result<ServiceUrl> parse_service_url(std::string_view text) {
  auto quoted = [&] { return "\"" + std::string(text.substr(0, 200)) + "\""; };
  ServiceUrl u;
  std::size_t colon = text.find("://");
  for (char c : text.substr(0, colon == std::string_view::npos ? 0 : colon)) u.scheme += detail::lower_ascii(c);
  if (colon == std::string_view::npos || (u.scheme != "http" && u.scheme != "https")) {
    return fail(quoted() + " must start with http:// or https:// (http://host:port or https://host)");
  }
  std::string_view rest = text.substr(colon + 3);
  std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  for (char c : text) {
    auto uc = static_cast<unsigned char>(c);
    if (uc <= 0x20 || uc >= 0x7f || c == '\\') return fail(quoted() + " holds a space, a control character or a backslash");
  }
  if (authority.find('@') != std::string_view::npos) {
    return fail("the URL carries credentials; the token belongs in token_file or token_env");
  }
  if (authority.find('%') != std::string_view::npos) return fail(quoted() + ": the host may not be percent-encoded");
  std::string_view host = authority, port;
  if (authority.starts_with('[')) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail(quoted() + ": an IPv6 address without its closing ']'");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail(quoted() + ": unexpected text after the IPv6 address");
      port = after.substr(1);
    }
    in6_addr a6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) return fail(quoted() + ": not an IPv6 address");
    u.ipv6 = true;
  } else {
    std::size_t c = authority.find(':');
    if (c != std::string_view::npos) {
      host = authority.substr(0, c);
      port = authority.substr(c + 1);
    }
    if (host.empty()) return fail(quoted() + " names no host");
    for (char ch : host) {
      bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                ch == '-';
      if (!ok) return fail(quoted() + ": the host may hold only letters, digits, '.' and '-'");
    }
  }
  if (authority.find(':') != std::string_view::npos && !u.ipv6 && port.empty()) {
    return fail(quoted() + ": an empty port");
  }
  if (!port.empty()) {
    if (port.size() > 5) return fail(quoted() + ": the port is not a number from 1 to 65535");
    unsigned long n = 0;
    for (char ch : port) {
      if (ch < '0' || ch > '9') return fail(quoted() + ": the port is not a number from 1 to 65535");
      n = n * 10 + static_cast<unsigned long>(ch - '0');
    }
    if (n == 0 || n > 65535) return fail(quoted() + ": the port is not a number from 1 to 65535");
  }
  for (char ch : host) u.host += detail::lower_ascii(ch);
  u.port = std::string(port);
  u.has_query = tail.find('?') != std::string_view::npos;
  u.has_fragment = tail.find('#') != std::string_view::npos;
  return u;
}

// Whether `host` (as ServiceUrl::host: lower-case, IPv6 without brackets)
// is this machine's loopback: "localhost" (with or without a final dot), an
// IPv4 address in 127.0.0.0/8 written as a dotted quad, ::1, or ::ffff:127.x.
// By address, never by prefix: "127.example.com" is a name like any other.
inline bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "localhost.") return true;
  std::string h(host);
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
  }
  return false;
}

// The rule: `what` names the URL in messages ("the Connect server", "the
// audit sink"). `base`: a base URL (no query or fragment). Plain http only
// to a loopback host unless `allow_insecure_http`.
[[nodiscard]] inline Result<ServiceUrl> check_service_url(std::string_view url, bool allow_insecure_http, bool base,
                                            std::string_view what) {
  auto u = parse_service_url(url);
  if (!u) return u;
  if (base && (u->has_query || u->has_fragment)) return fail("the URL may not have a query or fragment");
  if (u->scheme == "http" && !allow_insecure_http && !is_loopback_host(u->host)) {
    return fail("plain http to " + u->host + " would send " + std::string(what) +
                " unencrypted; use https, a loopback address, or set allow_insecure_http = true");
  }
  return u;
}

}  // namespace chitty
