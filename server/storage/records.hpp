// What the decision path reads: the server's own records of a facility and a person, by purpose. Three
// implementations: `DbRecords` asks the database for each; `PersonRecords` loads one person's with one statement (a
// re-inquiry); `ChunkRecords` loads what a batch chunk needs with one query per table and answers from memory (the
// batch prefetch). Nothing here decides anything.
#pragma once

#include "storage/database.hpp"
#include "kyotaku/calendar.hpp"

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kyotaku::server {

// 環境設定 of a facility.
struct Settings {
    bool terms_agreed = false;
    bool home_visit_enabled = false;  // 訪問診療等機能
    bool online_enabled = false;      // オンライン診療等機能
    std::array<bool, 5> viewing{};    // 閲覧同意の利用有無, in the order of `viewing_items`
    std::string updated_at;
    // Whether the 機能 of 環境設定 named by the rules (利用する機能) is 利用する.
    bool feature(std::string_view name) const;
};
// The viewing items and the column of facility_settings that enables each.
struct ViewingItem {
    char const* name;
    char const* column;
};
extern std::array<ViewingItem, 5> const viewing_items;

struct FacilityInfo {
    std::string code, name, kind;
    Settings settings;
};

// The identifiers a request or a file row names a person by, canonical (full-width folded, 国保 padding removed).
struct Card {
    std::string insurer, symbol, number, branch, birthdate;
    std::string key() const { return insurer + '|' + symbol + '|' + number + '|' + branch + '|' + birthdate; }
};

// A card-verified consent (居宅同意取得型) of a facility, or a test-data one.
struct ConsentRecord {
    std::string id, visit_kind, first_visit, identity_method, registered_at;
    std::vector<std::string> items;
    std::optional<std::string> appointment_date;
    bool preparatory_visit = false;  // taken at a preparatory visit (事前の訪問), as the staff said at registration
};
struct ConsentState {
    std::vector<ConsentRecord> open;  // not withdrawn, newest first (first_visit, then registration)
    bool any_withdrawn = false;
};

// One period of one insurance of a person (資格情報).
struct EligibilityRecord {
    std::string insurer, symbol, number, branch, birthdate, name, name_kana, burden_ratio, valid_from;
    std::optional<std::string> valid_to;      // DisqualificationDate when the insurance ended
    std::string card_classification = "01";   // InsuredCardClassification
    std::string personal_family = "1";        // PersonalFamilyClassification
    // ReasonOfLoss (01 死亡, 02 生活保護受給開始, 03 医療保険等の資格取得, 99)
    std::optional<std::string> loss_reason;
};

class Records {
public:
    virtual ~Records() = default;
    virtual std::optional<FacilityInfo> facility(std::string const& code) = 0;
    virtual std::string person_by_card(Card const& card) = 0;                                       // "" when none
    virtual std::string person_by_reference(std::string const& facility, std::string const& ref) = 0;  // "" when none
    virtual ConsentState consents(std::string const& facility, std::string const& person) = 0;
    virtual std::vector<Month> claim_months(std::string const& facility, std::string const& person) = 0;
    // Every insurance period of the person, the latest start first.
    virtual std::vector<EligibilityRecord> eligibility(std::string const& person) = 0;
    virtual std::vector<std::string> reference_numbers(std::string const& facility, std::string const& person) = 0;
};

class DbRecords final : public Records {
public:
    explicit DbRecords(Database& db) : db_(db) {}
    std::optional<FacilityInfo> facility(std::string const& code) override;
    std::string person_by_card(Card const& card) override;
    std::string person_by_reference(std::string const& facility, std::string const& ref) override;
    ConsentState consents(std::string const& facility, std::string const& person) override;
    std::vector<Month> claim_months(std::string const& facility, std::string const& person) override;
    std::vector<EligibilityRecord> eligibility(std::string const& person) override;
    std::vector<std::string> reference_numbers(std::string const& facility, std::string const& person) override;

private:
    Database& db_;
};

// The records a batch chunk of one facility needs, loaded at once for its cards. Valid while the chunk's
// transaction holds the connection; a person or facility outside what was loaded is asked of the database.
class ChunkRecords final : public Records {
public:
    ChunkRecords(Database& db, std::string const& facility, std::vector<Card> const& cards);
    std::optional<FacilityInfo> facility(std::string const& code) override;
    std::string person_by_card(Card const& card) override;
    std::string person_by_reference(std::string const& facility, std::string const& ref) override;
    ConsentState consents(std::string const& facility, std::string const& person) override;
    std::vector<Month> claim_months(std::string const& facility, std::string const& person) override;
    std::vector<EligibilityRecord> eligibility(std::string const& person) override;
    std::vector<std::string> reference_numbers(std::string const& facility, std::string const& person) override;

private:
    bool loaded(std::string const& facility, std::string const& person) const {
        return facility == facility_ && persons_.count(person) != 0;
    }
    DbRecords db_;
    std::string facility_;
    std::optional<FacilityInfo> info_;
    std::set<std::string> persons_;
    std::map<std::string, std::string> person_by_card_;
    std::map<std::string, ConsentState> consents_;
    std::map<std::string, std::vector<Month>> claims_;
    std::map<std::string, std::vector<EligibilityRecord>> eligibility_;
    std::map<std::string, std::vector<std::string>> references_;
};

// The records of one person at one facility — the facility with its settings, the person named by a card or by the
// facility's 照会番号, their consents and claims there, their insurance periods and 照会番号 — read with one
// statement, for a request about one person (re-inquiry): one round trip and one read instead of six. Anything else
// is asked of the database as DbRecords would.
class PersonRecords final : public Records {
public:
    // Which statement reads: PostgreSQL's lines (one index scan of person_lines) or, on SQLite, the seven scans
    // (best); or the seven scans on either (the tests' reference for the lines).
    enum class Statement { best, seven_scans };
    PersonRecords(Database& db, std::string const& facility, std::optional<Card> const& card,
                  std::string const& reference_number, Statement statement = Statement::best);
    std::optional<FacilityInfo> facility(std::string const& code) override;
    std::string person_by_card(Card const& card) override;
    std::string person_by_reference(std::string const& facility, std::string const& ref) override;
    ConsentState consents(std::string const& facility, std::string const& person) override;
    std::vector<Month> claim_months(std::string const& facility, std::string const& person) override;
    std::vector<EligibilityRecord> eligibility(std::string const& person) override;
    std::vector<std::string> reference_numbers(std::string const& facility, std::string const& person) override;

private:
    bool loaded(std::string const& facility, std::string const& person) const {
        return !person_.empty() && facility == facility_ && person == person_;
    }
    DbRecords db_;
    std::string facility_;
    std::optional<Card> card_;
    std::string reference_number_;
    std::optional<FacilityInfo> info_;
    std::string person_;  // "" when the card or number names no one
    ConsentState consents_;
    std::vector<Month> claims_;
    std::vector<EligibilityRecord> eligibility_;
    std::vector<std::string> references_;
};

// The settings row of a facility as this file reads it (shared with the settings use case).
extern char const* const settings_columns;
Settings settings_from_row(Row const& r);

}  // namespace kyotaku::server
