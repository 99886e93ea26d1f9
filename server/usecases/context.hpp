// What every desk shares (architecture.md "The server's layers"): who is calling and the context of a request —
// the database, the injected clock, the rules in force. Nothing here knows a wire format.
#pragma once

#include "core/clock.hpp"
#include "core/codes.hpp"
#include "core/error.hpp"
#include "core/ids.hpp"
#include "core/secrets.hpp"
#include "decision/decision.hpp"
#include "storage/database.hpp"
#include "storage/records.hpp"
#include "usecases/events.hpp"
#include "usecases/request_gate.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// A list of values of one of the rules' enums as a request sent it: nullopt for an entry that is not text (the desk
// refuses it, naming the values allowed).
using TextList = std::vector<std::optional<std::string>>;

// Who is calling, from the TLS client certificate (or the consent page's URL token).
struct Caller {
    // admin: the reference system's operator (certificate CN kyotaku-admin): test-data set-up, URL keys, the test
    //   clock. facility: an office terminal of a facility (CN = 医療機関等コード). mobile: a モバイル端末 session of
    //   the consent page, known only by the facility URL's token (X-Kyotaku-Url-Token, no certificate).
    enum class Kind { anonymous, admin, facility, mobile } kind = Kind::anonymous;
    // The facility role of an office terminal's certificate (its OU): 管理者 manages 環境設定, the URL, the device
    // ledger and withdrawals (通知 別添1); 職員 does the rest. A certificate without one is 職員.
    enum class Role { staff, manager } role = Role::staff;
    std::string facility_code;  // for facility and mobile
    std::string subject;        // the certificate subject, for audit (with its fingerprint's first 16 hex digits)
    std::string certificate;    // the SHA-256 fingerprint (hex) of the client certificate; empty in-process
    std::string terminal;       // 資格確認端末 / 電子カルテ端末 (the certificate's title) or モバイル端末
    // Where the request came from, as the server saw the connection: an IPv4 address, or an IPv6 address's /64
    // (client_key in http/callers.hpp). The key of per-client budgets (the hand-off's); it names a network
    // address, not a person — behind a TCP balancer every client has the balancer's, unless the balancer sends the
    // PROXY protocol (ConnectionLimits::proxy_protocol_from). Empty in-process.
    std::string client;
};

// What every desk shares: the database, the clock, the rules in force (swapped whole on reload), configuration.
class Context {
public:
    Context(Database& db, Clock& clock, Rules rules) : db(db), clock(clock), rules_(std::move(rules)) {}
    Database& db;
    Clock& clock;
    std::string public_url = "https://127.0.0.1:8443";
    std::string card_ca;  // PEM file of the card CA; empty: consent registration is unavailable
    TestClock* test_clock = nullptr;  // set when the server runs on a test clock (kyotaku serve --test-clock)
    // The key file's secrets (kyotaku serve --key-file); a process-lifetime key until serve sets them.
    std::shared_ptr<Secrets const> secrets = Secrets::ephemeral();

    Rules rules() const { return std::atomic_load(&rules_); }
    void set_rules(Rules rules) { std::atomic_store(&rules_, std::move(rules)); }
    Date today() const { return clock.today(); }
    std::string now() const { return clock.timestamp(); }

    // The facility of an office-terminal or mobile caller, with its 環境設定 (not_found when it is not registered).
    FacilityInfo facility(Caller const& c);
    FacilityInfo facility(Caller const& c, Records& records);  // as read by `records`

    // Interactive requests go before the batch worker (request_gate.hpp).
    RequestGate gate;

    // Characters a Shift_JIS answer could not hold (外字 written as 〓, formats/oqs_xml.hpp), for /metrics.
    std::atomic<std::uint64_t> unmappable_characters{0};

    // What the desks tell the server's log (batch jobs' state changes, chunks the worker could not answer); set by
    // kyotaku serve (events.hpp).
    DeskEvents events;

private:
    Rules rules_;
};

}  // namespace kyotaku::server
