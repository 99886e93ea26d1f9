// `kyotaku relay --dir DIR`: the folder exchange receipt computers already use. A request file written into
// DIR/req is sent to the server over mutual TLS and its result is written into DIR/res under the matching name
// (01req → 01res, 02req → 02res). A half-written file is never read: a file is taken only when its size and
// time have not changed for `settle_ms` and it ends with </XmlMsg>. A file that fails gets an error result.
//
// The folder is shared with other programs, so nothing in it is trusted (issue 10):
// - files are opened without following symlinks (O_NOFOLLOW, relative to the folders opened at start), and
//   anything that is not a regular file (a symlink, a FIFO, a device, a folder) is skipped and reported once;
// - a result is written to a temporary file created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW), synced, then
//   renamed over the result's name;
// - nothing is thrown out of the loop: a symlink loop, a full disk or an unreadable folder is reported and the
//   relay goes on, retrying the file later.
//
// Exactly once across restarts: before a request is sent, DIR/sent/NAME records an idempotency key for it
// (synced); the request carries that key (Idempotency-Key), and the server answers a repeated key with the
// answer it gave the first time instead of acting again. The answer is written to DIR/res (synced) before
// the request is moved to DIR/done and its record removed. So a relay killed after sending sends again with
// the same key and gets the same answer, and a request whose result exists is never sent again.
//
// Never hung (issue 22): every network step has a deadline (connect_timeout_ms, answer_timeout_ms); SIGTERM ends
// whichever step is under way within a fraction of a second; a failed attempt is tried again after a backoff
// that doubles (retry_ms … a minute); answers are written owner-only (0600); a request whose answer's name would
// not fit the folder is moved to DIR/rejected/ and reported. `--once` always ends, with a status (relay_exit)
// that says what happened, and a last line that counts it.
#pragma once

#include <string>

namespace kyotaku::server {

struct RelayOptions {
    std::string dir;
    std::string server = "https://127.0.0.1:8443";
    std::string ca, cert, key;  // TLS: the server's CA, the facility's client certificate and key
    int poll_ms = 200;
    int settle_ms = 1000;
    int connect_timeout_ms = 10'000;   // resolving, connecting and the TLS handshake: each step at most this long
    int answer_timeout_ms = 120'000;   // sending the request, and reading the answer: each at most this long
    int retry_ms = 1000;               // the first wait after a failure; doubled each time, at most a minute
    int max_attempts = 5;              // failed sends before the file gets an error result (and, with --once, failed
                                       // writes of its answer before it is left in req/ for the next run)
    bool once = false;                 // answer what is complete now, then exit
};

// The exit status of `kyotaku relay` (docs/operations.md): what happened, for a script or a systemd unit.
namespace relay_exit {
inline constexpr int done = 0;           // every request answered with the server's answer (or SIGTERM without --once)
inline constexpr int error_results = 1;  // --once: some requests got an error result, or were moved to rejected/
inline constexpr int usage = 2;          // could not start: a missing or unreadable TLS file, an unusable folder
inline constexpr int left_pending = 3;   // --once: some requests are still in req/ (their answer could not be written)
inline constexpr int stopped = 4;        // --once: SIGTERM or SIGINT before everything was answered
}  // namespace relay_exit

int relay(RelayOptions const& options);

}  // namespace kyotaku::server
