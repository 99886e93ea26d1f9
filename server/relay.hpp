// `kyotaku relay --dir DIR`: the folder exchange receipt computers already use. A request file written into
// DIR/req is sent to the server over mutual TLS and its result is written into DIR/res under the matching name
// (01req → 01res, 02req → 02res). A half-written file is never read: a file is taken only when its size and
// time have not changed for `settle_ms` and it ends with </XmlMsg>. A file that fails gets an error result.
// Restarting never answers a file twice: a file is answered iff its result exists; answered requests are then
// moved to DIR/done.
#pragma once

#include <string>

namespace kyotaku::server {

struct RelayOptions {
    std::string dir;
    std::string server = "https://127.0.0.1:8443";
    std::string ca, cert, key;  // TLS: the server's CA, the facility's client certificate and key
    int poll_ms = 200;
    int settle_ms = 1000;
    int max_attempts = 5;       // connection failures before the file gets an error result
    bool once = false;          // answer what is complete now, then exit
};

int relay(RelayOptions const& options);

}  // namespace kyotaku::server
