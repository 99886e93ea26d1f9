// Random identifiers: request ids, job and lease owners, idempotency keys of the relay.
#pragma once

#include <string>

namespace kyotaku::server {

// A random 128-bit id as hex (OpenSSL's RAND_bytes).
std::string new_id();

}  // namespace kyotaku::server
