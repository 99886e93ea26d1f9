// Random identifiers: request ids, job and lease owners, idempotency keys of the relay.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kyotaku::server {

// A random 128-bit id as hex (OpenSSL's RAND_bytes, drawn for it: keys, challenges and secrets are made of these).
std::string new_id();
// A request's id (X-Request-Id, the logs): 64 random bits as 16 hex digits, from this thread's bytes drawn ahead (as
// time_ordered_id's).
std::string request_id();
// An id of the same form (32 hex digits) that grows with time: the milliseconds since 1970 (12 digits) then 80
// random bits. For the rows of a log written one after another (資格確認履歴): a new row's key lands at the end of
// the table's index instead of anywhere in it, so that a write touches a few pages instead of one per row.
// The random bits are RAND_bytes' output drawn 512 bytes at a time per thread (one OpenSSL call — its DRBG's lock,
// fork check and cipher set-up — per ~50 ids instead of one each, ~2 % of a re-inquiry's CPU), each byte used once and
// then cleared, never used after a fork. These ids are keys, not secrets: they name a facility's own lines to it (the
// history's cursor), every read of them is bounded by the facility, and what they need is to differ (80 bits a
// millisecond); the bytes are the CSPRNG's all the same.
std::string time_ordered_id();
// `n` such ids, their random bits drawn by one RAND_bytes call (a 500-row batch chunk's 資格確認履歴: OpenSSL's
// per-call cost — the DRBG's lock, fork check and cipher setup — paid once, not per row). The bytes are the same
// CSPRNG's output, each used once, in one id only, and never kept: nothing is buffered beyond the call.
std::vector<std::string> time_ordered_ids(std::size_t n);

}  // namespace kyotaku::server
