#include "storage/handoff_store.hpp"

namespace kyotaku::server {

namespace {
std::optional<std::string> text_or_null(Value const& v) {
    return is_null(v) ? std::nullopt : std::optional<std::string>(as_text(v));
}
}  // namespace

void HandoffStore::forget_expired(std::string const& before) {
    db_.query("DELETE FROM consent_handoffs WHERE expires_at < $1", {before});
}

std::vector<OpenHandoff> HandoffStore::open(std::string const& facility, std::string const& at) {
    std::vector<OpenHandoff> out;
    for (Row const& r :
         db_.query("SELECT code, client, claimed_at, expires_at FROM consent_handoffs WHERE facility_code = $1 "
                   "AND expires_at > $2 AND done_at IS NULL AND cancelled_at IS NULL ORDER BY created_at",
                   {facility, at}))
        out.push_back({as_text(r[0]), as_text(r[1]), !is_null(r[2]), as_text(r[3])});
    return out;
}

void HandoffStore::cancel_oldest_unclaimed(std::string const& facility, std::string const& client,
                                           std::string const& at) {
    db_.query("UPDATE consent_handoffs SET cancelled_at = $3 WHERE id = (SELECT id FROM consent_handoffs "
              "WHERE facility_code = $1 AND client = $2 AND claimed_at IS NULL AND expires_at > $3 AND done_at IS NULL "
              "AND cancelled_at IS NULL ORDER BY created_at LIMIT 1)",
              {facility, client, at});
}

void HandoffStore::add(NewHandoff const& h) {
    db_.query("INSERT INTO consent_handoffs (id, facility_code, code, choices_json, created_at, expires_at, client, "
              "to_computer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
              {h.id, h.facility, h.code, h.choices_json, h.created_at, h.expires_at, h.client,
               std::int64_t(h.to_computer ? 1 : 0)});
}

std::optional<HandoffState> HandoffStore::state(std::string const& id) {
    auto rows = db_.query("SELECT h.expires_at, h.claimed_at, h.consent_id, h.first_visit, h.cancelled_at, "
                          "h.choices_json, c.consent_id FROM consent_handoffs h LEFT JOIN challenges c "
                          "ON c.id = h.challenge_id WHERE h.id = $1",
                          {id});
    if (rows.empty()) return std::nullopt;
    Row const& r = rows[0];
    // Done is read from the registration itself: the consent of the hand-off's challenge.
    std::string consent_id = !is_null(r[2]) ? as_text(r[2]) : !is_null(r[6]) ? as_text(r[6]) : "";
    return HandoffState{as_text(r[0]), !is_null(r[1]), !is_null(r[4]), std::move(consent_id), text_or_null(r[3]),
                        as_text(r[5])};
}

void HandoffStore::cancel(std::string const& id, std::string const& at) {
    db_.query(
        "UPDATE consent_handoffs SET cancelled_at = $2 WHERE id = $1 AND done_at IS NULL AND cancelled_at IS NULL",
        {id, at});
}

std::optional<CodedHandoff> HandoffStore::by_code(std::string const& facility, std::string const& code,
                                                  std::string const& at) {
    auto rows = db_.query("SELECT id, choices_json, to_computer FROM consent_handoffs WHERE facility_code = $1 AND "
                          "code = $2 AND expires_at > $3 AND done_at IS NULL AND cancelled_at IS NULL",
                          {facility, code, at});
    if (rows.empty()) return std::nullopt;
    return CodedHandoff{as_text(rows[0][0]), as_text(rows[0][1]), as_int(rows[0][2]) != 0};
}

bool HandoffStore::claim(std::string const& id, std::string const& at, std::string const& claim_hash,
                         std::string const& expires_at) {
    return !db_.query("UPDATE consent_handoffs SET claimed_at = $2, claim_hash = $3, expires_at = $4 "
                      "WHERE id = $1 AND claimed_at IS NULL RETURNING id",
                      {id, at, claim_hash, expires_at})
                .empty();
}

std::optional<ClaimedHandoff> HandoffStore::by_claim(std::string const& claim_hash, std::string const& facility) {
    auto rows =
        db_.query("SELECT id, choices_json, challenge_id, expires_at, done_at, cancelled_at FROM consent_handoffs "
                  "WHERE claim_hash = $1 AND facility_code = $2",
                  {claim_hash, facility});
    if (rows.empty()) return std::nullopt;
    Row const& r = rows[0];
    return ClaimedHandoff{as_text(r[0]), as_text(r[1]), as_text(r[2]), as_text(r[3]), !is_null(r[4]), !is_null(r[5])};
}

void HandoffStore::set_challenge(std::string const& id, std::string const& challenge_id) {
    db_.query("UPDATE consent_handoffs SET challenge_id = $2 WHERE id = $1", {id, challenge_id});
}

void HandoffStore::finish(std::string const& id, std::string const& consent_id, std::string const& first_visit,
                          std::string const& at) {
    db_.query("UPDATE consent_handoffs SET consent_id = $2, first_visit = $3, done_at = $4 WHERE id = $1",
              {id, consent_id, first_visit, at});
}

void HandoffStore::forget_failures(std::string const& since) {
    db_.query("DELETE FROM consent_handoff_failures WHERE at <= $1", {since});
}

RecentCount HandoffStore::failures(std::string const& facility, std::string const& claimant, std::string const& since) {
    return recent_count(db_.query("SELECT COUNT(*), MIN(at) FROM consent_handoff_failures WHERE facility_code = $1 "
                                  "AND claimant = $2 AND at > $3",
                                  {facility, claimant, since}));
}

void HandoffStore::add_failure(std::string const& facility, std::string const& claimant, std::string const& at) {
    db_.query("INSERT INTO consent_handoff_failures (facility_code, at, claimant) VALUES ($1, $2, $3)",
              {facility, at, claimant});
}

}  // namespace kyotaku::server
