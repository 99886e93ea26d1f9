// Whether `kyotaku serve` can start with a configuration, decided in one place (issue 22 item 9): serve runs these
// checks before it starts and refuses with their errors; `--check-config` prints the same errors, with notes.
// Nothing is created, migrated or written. Every refusal is a message that names the file, the setting or the
// address — a path that cannot be read (a symlink loop, a folder without access) included — never an exception.
#pragma once

#include "ops/config.hpp"

#include <string>
#include <vector>

namespace kyotaku::server {

class Database;
class Secrets;

struct Preflight {
    // Who asks: the server itself, or an operator's --check-config. Run as root on behalf of the service (sudo), a
    // check accepts a key file that belongs to another user, with a note: the service's user is not known here.
    enum Asker { by_server, by_operator };
    std::vector<std::string> errors;  // each starts with the setting it is about: "tls: ca.pem: …", "rules: …"
    std::vector<std::string> notes;   // what --check-config prints besides: versions, warnings
    bool ok() const { return errors.empty(); }
};

// The listen address, the TLS folder (tls.hpp), the trusted keys and the rules as serve loads them (signed bundle,
// the server's rule contract), the database (reachable, writable, its schema not newer than this binary), the key
// file (and that it opens the database's sealed URL keys), the spool directory, the consent page's files.
Preflight preflight(ServeOptions const& options, Preflight::Asker asker = Preflight::by_server);

// One key file per deployment: at start, after the migrations, stores the fingerprint of the server's key
// (Secrets::fingerprint) in a database that has none, and throws std::runtime_error naming both fingerprints when
// the database's is another key's (preflight refuses that too, once it is stored).
void claim_key_fingerprint(Database& db, Secrets const& secrets, std::string const& at);

}  // namespace kyotaku::server
