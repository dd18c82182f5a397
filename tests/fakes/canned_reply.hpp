// An agent answer made up for client tests: `body` with `status`, in locked
// memory when the request expects a secret (as AgentClient reads one).
#pragma once

#include <string_view>

#include "chitty/client/agent_client.hpp"

namespace chitty::testing {

inline client::Outcome<client::Reply> canned_reply(secure::Arena& arena, const client::Request& r, long status,
                                                   std::string_view body) {
  client::Reply reply;
  reply.status = status;
  if (!r.secret_answer) {
    reply.text = std::string(body);
    return reply;
  }
  reply.secret = secure::SecureBuffer::allocate(arena, secure::Arena::kMaxBlock);
  if (!reply.secret || !reply.secret.append(body)) return client::failed(client::Exit::failure, "canned answer too large");
  return reply;
}

}  // namespace chitty::testing
