// One credential from the agent, for chittyctl's get, run, inject and mcp:
// POST /api/onepassword/retrieve (or provision, service-token/…,
// integration-key/…) and the value taken out of the answer in locked memory.
#pragma once

#include <optional>
#include <string>

#include "chitty/base/text.hpp"  // percent_encode
#include "chitty/client/agent_client.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::client {

// What the command line says about every request (the context the agent
// checks against the caller's service).
struct Context {
  std::string purpose;       // context.purpose ("" = none stated)
  std::string environment;   // context.environment (informational)
  const secure::SecureBuffer* step_up = nullptr;  // X-Chitty-Step-Up, when given
  bool mcp = false;          // say X-Chitty-Channel: mcp (values withheld unless mcp_release)
};

// What to ask for: exactly one of them.
struct Wanted {
  std::string ref;          // op://VAULT/ITEM[/SECTION]/FIELD
  std::string type;         // a catalog credential type (retrieve's credential_type)
  std::string provision;    // a type to provision (POST /api/credentials/provision)
  std::string service_token;    // GET /api/onepassword/service-token/{target}
  std::string integration_key;  // GET /api/onepassword/integration-key/{integration}
};

// The request for `what` under `ctx` (secret_answer set).
Request credential_request(const Wanted& what, const Context& ctx);

// The agent's answer to a credential request: 200, or the Failure.
Outcome<Reply> ask(Transport& agent, const Wanted& what, const Context& ctx);

// The value inside a 200 answer, decoded (base64 when the answer says so)
// into a new buffer; the answer's buffer is parsed in place (unusable
// after). nullopt when the answer withheld the value (the MCP channel).
Outcome<std::optional<secure::SecureBuffer>> value_of(secure::Arena& arena, Reply& reply);

// ask() then value_of(); a withheld value is a failure here.
Outcome<secure::SecureBuffer> fetch_value(Transport& agent, secure::Arena& arena, const Wanted& what,
                                          const Context& ctx);


// A token read from a file into locked memory, trailing newline dropped;
// `owner_only`: refused when group or others may read it.
Outcome<secure::SecureBuffer> read_token_file(secure::Arena& arena, const std::string& path, std::string_view what,
                                              bool owner_only);

}  // namespace chitty::client
