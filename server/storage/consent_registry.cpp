#include "storage/consent_registry.hpp"

#include <algorithm>

namespace kyotaku::server {

void ConsentRegistry::add_challenge(std::string const& id, std::string const& facility,
                                    std::string const& challenge_hex, std::string const& created_at,
                                    std::string const& expires_at, std::string const& client) {
    db_.query("INSERT INTO challenges (id, facility_code, challenge_hex, created_at, expires_at, client) VALUES ($1, "
              "$2, $3, $4, $5, $6)",
              {id, facility, challenge_hex, created_at, expires_at, client});
}

std::optional<StoredChallenge> ConsentRegistry::challenge(std::string const& id) {
    auto r = db_.query("SELECT facility_code, challenge_hex, expires_at, used_at, request_hash, consent_id FROM "
                       "challenges WHERE id = $1",
                       {id});
    if (r.empty()) return std::nullopt;
    bool const used = !is_null(r[0][3]);
    return StoredChallenge{as_text(r[0][0]),
                           as_text(r[0][1]),
                           as_text(r[0][2]),
                           used,
                           used ? as_text(r[0][4]) : "",
                           used ? as_text(r[0][5]) : ""};
}

void ConsentRegistry::use_challenge(std::string const& id, std::string const& at, std::string const& request_hash,
                                    std::string const& consent_id) {
    db_.query("UPDATE challenges SET used_at = $2, request_hash = $3, consent_id = $4 WHERE id = $1",
              {id, at, request_hash, consent_id});
}

void ConsentRegistry::forget_challenges(std::string const& now, std::string const& used_before) {
    db_.query("DELETE FROM challenges WHERE expires_at < $1 AND (used_at IS NULL OR used_at < $2)", {now, used_before});
}

RecentCount ConsentRegistry::recent_challenges(std::string const& facility, std::string const& client,
                                               std::string const& since) {
    return recent_count(db_.query("SELECT COUNT(*), MIN(created_at) FROM challenges WHERE facility_code = $1 "
                                  "AND client = $2 AND created_at > $3",
                                  {facility, client, since}));
}

std::optional<std::string> ConsentRegistry::first_visit(std::string const& consent_id) {
    auto r = db_.query("SELECT first_visit FROM consents WHERE id = $1", {consent_id});
    if (r.empty()) return std::nullopt;
    return as_text(r[0][0]);
}

std::string ConsentRegistry::card_holder(std::string const& fingerprint) {
    auto r = db_.query("SELECT person_key FROM card_certificates WHERE fingerprint = $1", {fingerprint});
    return r.empty() ? std::string() : as_text(r[0][0]);
}

void ConsentRegistry::register_card(std::string const& fingerprint, std::string const& person, std::string const& at) {
    db_.query("INSERT INTO card_certificates (fingerprint, person_key, registered_at) VALUES ($1, $2, $3) "
              "ON CONFLICT (fingerprint) DO UPDATE SET person_key = excluded.person_key",
              {fingerprint, person, at});
}

void ConsentRegistry::add(ConsentRow const& c) {
    db_.query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, identity_method, items, "
              "appointment_date, registered_at, "
              "preparatory_visit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
              {c.id, c.facility, c.person, c.visit_kind, c.first_visit, c.identity_method, c.items,
               c.appointment_date ? Value(*c.appointment_date) : Value(nullptr), c.registered_at,
               std::int64_t(c.preparatory_visit)});
}

std::vector<StoredConsent> ConsentRegistry::of_facility(std::string const& facility) {
    std::vector<StoredConsent> out;
    auto text_or_null = [](Value const& v) {
        return is_null(v) ? std::nullopt : std::optional<std::string>(as_text(v));
    };
    for (Row const& r :
         db_.query("SELECT id, person_key, visit_kind, first_visit, registered_at, withdrawn_at, identity_method, "
                   "items, appointment_date, preparatory_visit, withdrawn_by FROM consents WHERE facility_code = $1 "
                   "ORDER BY registered_at, id",
                   {facility})) {
        std::vector<std::string> items;
        std::string const list = as_text(r[7]);
        for (std::size_t at = 0; at <= list.size();) {
            std::size_t const comma = std::min(list.find(',', at), list.size());
            if (comma > at) items.push_back(list.substr(at, comma - at));
            at = comma + 1;
        }
        out.push_back({as_text(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3]), as_text(r[4]), text_or_null(r[5]),
                       as_text(r[6]), std::move(items), text_or_null(r[8]), as_int(r[9]) != 0, text_or_null(r[10])});
    }
    return out;
}

std::size_t ConsentRegistry::withdraw(std::string const& facility, std::string const& person, std::string const& at,
                                      std::string const& by) {
    auto open =
        db_.query("SELECT id FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                  {facility, person});
    if (open.empty()) return 0;
    db_.query("UPDATE consents SET withdrawn_at = $3, withdrawn_by = $4 WHERE facility_code = $1 AND person_key = $2 "
              "AND withdrawn_at IS NULL",
              {facility, person, at, by});
    return open.size();
}

std::vector<OpenConsent> ConsentRegistry::open_between(std::string const& facility, std::string const& from,
                                                       std::string const& to) {
    std::vector<OpenConsent> out;
    for (auto const& r :
         db_.query("SELECT person_key, visit_kind, first_visit FROM consents WHERE facility_code = $1 AND withdrawn_at "
                   "IS NULL "
                   "AND first_visit >= $2 AND first_visit <= $3 ORDER BY first_visit, registered_at, id",
                   {facility, from, to}))
        out.push_back({as_text(r[0]), as_text(r[1]), as_text(r[2])});
    return out;
}

}  // namespace kyotaku::server
