#include <catch2/catch.hpp>

#include <string>
#include <variant>

#include "chitty/http/router.hpp"
#include "chitty/http/url.hpp"

using chitty::http::Method;
using chitty::http::RouteTable;
using Router = chitty::http::Router<std::string>;

namespace {

Router make_router() {
  Router r;
  r.add(Method::get, "/health", "health");
  r.add(Method::get, "/api/onepassword/service-token/{target}", "service-token");
  r.add(Method::post, "/api/onepassword/retrieve", "retrieve");
  r.add(Method::get, "/api/onepassword/insights/{service}", "insights");
  r.add(Method::get, "/api/onepassword/insights/summary", "insights-summary");
  r.add(Method::get, "/a/{x}/b/{y}", "two");
  r.add(Method::post, "/a/{x}/b/{y}", "two-post");
  return r;
}

std::string handler_of(const Router::Lookup& l) {
  auto* f = std::get_if<Router::Found>(&l);
  return f ? *f->handler : std::string("<none>");
}

}  // namespace

TEST_CASE("literal routes match exactly", "[http][router]") {
  Router r = make_router();
  CHECK(handler_of(r.route(Method::get, "/health")) == "health");
  CHECK(std::holds_alternative<RouteTable::NotFound>(r.route(Method::get, "/health/")));
  CHECK(std::holds_alternative<RouteTable::NotFound>(r.route(Method::get, "/healthz")));
  CHECK(std::holds_alternative<RouteTable::NotFound>(r.route(Method::get, "//health")));
  CHECK(std::holds_alternative<RouteTable::NotFound>(r.route(Method::get, "/")));
}

TEST_CASE("parameters bind percent-decoded values", "[http][router]") {
  Router r = make_router();
  auto l = r.route(Method::get, "/api/onepassword/service-token/chitty%20id");
  auto* f = std::get_if<Router::Found>(&l);
  REQUIRE(f != nullptr);
  CHECK(*f->handler == "service-token");
  REQUIRE(f->params.size() == 1);
  CHECK(f->params[0].name == "target");
  CHECK(f->params[0].value == "chitty id");
  CHECK(chitty::http::find_param(f->params, "target") == std::optional<std::string_view>("chitty id"));
  CHECK_FALSE(chitty::http::find_param(f->params, "other").has_value());

  auto two = r.route(Method::get, "/a/1/b/%2F");
  auto* f2 = std::get_if<Router::Found>(&two);
  REQUIRE(f2 != nullptr);
  REQUIRE(f2->params.size() == 2);
  CHECK(f2->params[0].value == "1");
  CHECK(f2->params[1].value == "/");  // an encoded slash stays inside its segment
}

TEST_CASE("a parameter never matches an empty segment", "[http][router]") {
  Router r = make_router();
  CHECK(std::holds_alternative<RouteTable::NotFound>(r.route(Method::get, "/api/onepassword/service-token/")));
}

TEST_CASE("literal segments win over parameters", "[http][router]") {
  Router r = make_router();
  CHECK(handler_of(r.route(Method::get, "/api/onepassword/insights/summary")) == "insights-summary");
  CHECK(handler_of(r.route(Method::get, "/api/onepassword/insights/chittyid")) == "insights");
}

TEST_CASE("a known path with another method is 405 with the allowed methods", "[http][router]") {
  Router r = make_router();
  auto l = r.route(Method::post, "/health");
  auto* na = std::get_if<RouteTable::NotAllowed>(&l);
  REQUIRE(na != nullptr);
  CHECK(na->allow == "GET");
  auto both = r.route(Method::del, "/a/1/b/2");
  auto* na2 = std::get_if<RouteTable::NotAllowed>(&both);
  REQUIRE(na2 != nullptr);
  CHECK(na2->allow == "GET, POST");
  CHECK(handler_of(r.route(Method::post, "/a/1/b/2")) == "two-post");
}

TEST_CASE("malformed paths are refused, not routed", "[http][router]") {
  Router r = make_router();
  for (const char* p : {"/api/onepassword/service-token/%zz", "/api/onepassword/service-token/%4",
                        "/api/onepassword/service-token/a%00b", "/api/onepassword/service-token/..",
                        "/api/onepassword/service-token/%2e%2E", "/./health", "health", ""}) {
    INFO(p);
    CHECK(std::holds_alternative<RouteTable::BadPath>(r.route(Method::get, p)));
  }
}

TEST_CASE("percent_decode and parse_query", "[http][url]") {
  CHECK(chitty::http::percent_decode("a%20b+c", false).value() == "a b+c");
  CHECK(chitty::http::percent_decode("a%20b+c", true).value() == "a b c");
  CHECK(chitty::http::percent_decode("%41%6a", false).value() == "Aj");
  CHECK_FALSE(chitty::http::percent_decode("%", false).has_value());
  CHECK_FALSE(chitty::http::percent_decode("%1", false).has_value());
  CHECK_FALSE(chitty::http::percent_decode("%g1", false).has_value());
  CHECK_FALSE(chitty::http::percent_decode("%00", false).has_value());

  auto q = chitty::http::parse_query("ref=op%3A%2F%2FVault%2FItem%2Ffield&refresh=true&&flag&purpose=api+call");
  REQUIRE(q.has_value());
  REQUIRE(q->size() == 4);
  CHECK((*q)[0] == std::pair<std::string, std::string>("ref", "op://Vault/Item/field"));
  CHECK((*q)[1] == std::pair<std::string, std::string>("refresh", "true"));
  CHECK((*q)[2] == std::pair<std::string, std::string>("flag", ""));
  CHECK((*q)[3] == std::pair<std::string, std::string>("purpose", "api call"));
  CHECK(chitty::http::parse_query("").value().empty());
  CHECK_FALSE(chitty::http::parse_query("a=%zz").has_value());
}
