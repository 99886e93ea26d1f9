// What `kyotaku serve` grants one connection (limits.hpp applies them). Apart from limits.hpp so that the
// configuration (config.hpp) names them without Boost.Asio's coroutines.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct stat;

namespace kyotaku::server {

struct ConnectionLimits {
    int max_connections = 256;                 // open at once; beyond, a connection is accepted and closed at once
    // the same on the patients' listener (patient_listen), counted apart: a flood there never takes the office
    // terminals' places on the main listener; each listener has its own handshake budgets too
    int patient_max_connections = 256;
    std::chrono::seconds hello{5};             // the client's first TLS record (its ClientHello), from the accept
    std::chrono::seconds handshake{10};        // the rest of the TLS handshake
    // connections waiting for their ClientHello at once, and as many in the rest of their handshake; a new one beyond
    // evicts another (limits.hpp)
    int max_handshakes = 64;
    std::chrono::seconds idle{30};             // waiting for the first byte of a request (keep-alive)
    std::chrono::seconds header{10};           // from a request's first byte to the end of its header
    std::chrono::seconds body{60};             // a body held in memory
    std::chrono::seconds upload{600};          // a spooled upload (the batch CSV)
    std::uint64_t header_bytes = 16 * 1024;
    // routes anyone may call (health, the consent page's) and mobile sessions
    std::uint64_t anonymous_body = 64 * 1024;
    std::uint64_t memory_body = 64 << 20;      // a JSON or CSV body of an office terminal, held in memory
    std::uint64_t xml_body = 16 << 20;         // an OQS*.xml file (parsed whole: the documented file limit)
    std::uint64_t spooled_body = 1ull << 30;   // the batch CSV upload, spooled to a file and streamed
    // Peers (a TCP balancer's addresses) whose connections begin with a PROXY protocol v1 header (HAProxy's
    // send-proxy): the client's own address is read from it, for per-client budgets (Caller::client). A connection
    // from one of them without the header is closed; a header from anyone else is not TLS and is closed too.
    std::vector<std::string> proxy_protocol_from = {};
    // Large uploads (bodies beyond anonymous_body), all connections together (UploadBudget, limits.hpp): the bytes of
    // bodies held in memory and of spooled ones at once, and how many one facility may send at once.
    std::uint64_t upload_memory = 256ull << 20;
    std::uint64_t upload_spool = 4ull << 30;
    int uploads_per_facility = 2;
};

// What is wrong with an existing spool directory (lstat's `st`): a symlink or not a folder, someone else's, open
// to others; "" when it is fit. prepare_spool_dir (limits.hpp) and the preflight (ops/preflight.hpp) ask it.
std::string spool_dir_problem(struct stat const& st);
// The bytes an unprivileged process may still write on the file system of `dir` (statvfs: f_bavail × f_frsize);
// nullopt when it cannot be read.
std::optional<std::uint64_t> free_disk_bytes(std::string const& dir);

}  // namespace kyotaku::server
