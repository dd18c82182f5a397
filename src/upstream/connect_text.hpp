// Words the Connect provider and its health share: how upstream text is
// shown in messages (printable, bounded), why a request got no answer, and
// the URL pieces of a Connect lookup. Names and IDs only — never a value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/text.hpp"  // percent_encode
#include "chitty/upstream/http_client.hpp"

namespace chitty::upstream {

// `?filter=title eq "NAME"`, encoded for the query string.
std::string title_filter(std::string_view name);
// Whether title_filter() can express `name`: not with a quote or a backslash.
bool filterable(std::string_view name) noexcept;
// Text from upstream for a message: printable ASCII ('?' for the rest), at
// most `max` bytes and "..." after a cut.
std::string printable(std::string_view s, std::size_t max = 200);
// printable(s, 256) in double quotes.
std::string quoted(std::string_view s);
// "id1, id2, …", each printable.
std::string list_ids(const std::vector<std::string>& ids);
// Why a request got no answer, in the same words for probes and fetches
// ("TLS: …", "timeout: …").
std::string failure_text(const HttpFailure& f);
// A duration for people ("1.5s"), never negative.
std::string seconds_text(Duration d);
// Connect's own explanation in an error answer ({"message": "…"}) as ": …",
// printable and bounded; "" when there is none. Parses the body in place.
std::string connect_message(HttpResponse& r);

}  // namespace chitty::upstream
