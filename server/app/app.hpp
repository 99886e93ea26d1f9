// The composition root of `kyotaku serve` (architecture.md "The server's layers"): the one place that makes every
// part from the options, wires them together and owns them for the process's lifetime — the database and the key
// file's secrets, the clock, the desks (Service, hand-offs included), the rules' runtime (SIGHUP reloads, /readyz,
// /metrics), the consent page's files, the rule workbench's configuration, the router, the TLS contexts, the listener
// (and the patients' listener, patient_listen), the connections' shared state and the batch worker. Nothing below it
// keeps a process global.
#pragma once

#include "ops/config.hpp"
#include "ops/preflight.hpp"

namespace kyotaku::server {

// Runs until SIGINT/SIGTERM; SIGHUP reloads the rules. Prints "listening on https://HOST:PORT" once ready, then
// one JSON log line per request and event on stdout (observability.hpp). Returns the exit code (2: it did not start,
// the reason on stderr).
int serve(ServeOptions const& options);

// `kyotaku serve` from a resolved configuration: its errors, then the preflight's (ops/preflight.hpp), printed and
// refused (status 2); else the server runs (serve), and an exception out of its start is printed (secrets redacted)
// and refused the same way instead of aborting.
int start_server(ResolvedConfig const& config);

}  // namespace kyotaku::server
