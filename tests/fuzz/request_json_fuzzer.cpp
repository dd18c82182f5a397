// Fuzz target: the API's request readers (every route's body and query) and
// reference/glob parsing. The first byte chooses the reader; the rest is the
// input. Invariants: nothing crashes; every refusal has a message; a parsed
// reference survives display → parse → the same canonical form; a parsed
// glob matches its own literal reference when it has no wildcard.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "chitty/api/requests.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/json/reader.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void refused_clearly(const chitty::api::Parsed<T>& r) {
  if (!r) check(!r.error().message.empty());
}

void reference_round_trip(std::string_view text) {
  auto r = chitty::catalog::parse_reference(text);
  if (!r) {
    check(!r.error().message.empty());
    return;
  }
  auto again = chitty::catalog::parse_reference(r->display());
  check(again.has_value());
  check(again->canonical() == r->canonical());
  // One normalisation: the canonical form is already in match form, and is
  // the match form of the verbatim key.
  check(chitty::catalog::match_form(r->canonical()) == r->canonical());
  check(chitty::catalog::match_form(r->id_key()) == r->canonical());
  // A key is injective on parts: no other reference (say, the first part
  // split at a '%2f') has the same key.
  chitty::catalog::Reference split = *r;
  split.item = r->item + "/x";
  check(split.canonical() != r->canonical());
  auto glob = chitty::catalog::Glob::parse(r->display());
  if (glob && r->display().find('*') == std::string::npos) check(glob->matches(*r));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::span<const char> body(input.data(), input.size());
  namespace api = chitty::api;
  switch (data[0] % 10) {
    case 0: {
      auto r = api::read_retrieve(body);
      refused_clearly(r);
      if (r && r->ref) reference_round_trip(r->ref->display());
      break;
    }
    case 1: {
      auto r = api::read_batch(body);
      refused_clearly(r);
      if (r) {
        check(!r->items.empty() && r->items.size() <= api::kMaxBatch);
        for (const auto& item : r->items) refused_clearly(item);
      }
      break;
    }
    case 2: refused_clearly(api::read_provision(body)); break;
    case 3: {
      auto r = api::read_validate(body);
      refused_clearly(r);
      // A body with a value is never accepted.
      auto doc = chitty::json::parse(input);
      if (doc && doc->find("value") != nullptr) check(!r);
      break;
    }
    case 4: refused_clearly(api::read_revoke(body)); break;
    case 5: refused_clearly(api::read_secret_query(input)); break;
    case 6: refused_clearly(api::read_get_options(input)); break;
    case 7: refused_clearly(api::read_audit_query(input)); break;
    case 8: reference_round_trip(input); break;
    case 9: {
      auto g = chitty::catalog::Glob::parse(input);
      if (!g) check(!g.error().message.empty());
      break;
    }
  }
  return 0;
}
