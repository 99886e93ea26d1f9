#include "storage/records.hpp"

#include <algorithm>
#include <string_view>
#include <variant>

namespace kyotaku::server {

std::array<ViewingItem, 5> const viewing_items{{{"手術情報", "view_operation"},
                                                {"診療情報", "view_diagnosis"},
                                                {"薬剤情報", "view_pharmacy"},
                                                {"特定健診情報", "view_checkup"},
                                                {"限度額情報", "view_limit"}}};

bool Settings::feature(std::string_view name) const {
    // The two switches of 環境設定 (通知 別添1), named as the rules name them (let 利用する機能).
    if (name == "訪問診療等機能") return home_visit_enabled;
    if (name == "オンライン診療等機能") return online_enabled;
    return false;
}

char const* const settings_columns = "terms_agreed, home_visit_enabled, online_enabled, view_operation, "
                                     "view_diagnosis, view_pharmacy, view_checkup, view_limit, updated_at";

Settings settings_from_row(Row const& r) {
    Settings s;
    s.terms_agreed = as_int(r[0]) != 0;
    s.home_visit_enabled = as_int(r[1]) != 0;
    s.online_enabled = as_int(r[2]) != 0;
    for (std::size_t i = 0; i < s.viewing.size(); ++i) s.viewing[i] = as_int(r[3 + i]) != 0;
    s.updated_at = as_text(r[8]);
    return s;
}

namespace {
constexpr char const* consent_columns = "id, visit_kind, first_visit, identity_method, registered_at, items, "
                                        "appointment_date, withdrawn_at, preparatory_visit";
constexpr char const* eligibility_columns = "insurer_number, symbol, number, branch, birthdate, name, name_kana, "
                                            "burden_ratio, valid_from, valid_to, card_classification, "
                                            "personal_family, loss_reason";

ConsentRecord consent_from(Row const& r, std::size_t at) {
    ConsentRecord c;
    c.id = as_text(r[at]);
    c.visit_kind = as_text(r[at + 1]);
    c.first_visit = as_text(r[at + 2]);
    c.identity_method = as_text(r[at + 3]);
    c.registered_at = as_text(r[at + 4]);
    std::string const list = as_text(r[at + 5]);
    for (std::size_t pos = 0; pos < list.size();) {
        std::size_t comma = std::min(list.find(',', pos), list.size());
        if (comma > pos) c.items.push_back(list.substr(pos, comma - pos));
        pos = comma + 1;
    }
    if (!is_null(r[at + 6])) c.appointment_date = as_text(r[at + 6]);
    c.preparatory_visit = as_int(r[at + 8]) != 0;
    return c;
}
// Adds a row (consent_columns from `at`) to a state; rows come newest first.
void add_consent(ConsentState& s, Row const& r, std::size_t at) {
    if (!is_null(r[at + 7])) s.any_withdrawn = true;
    else s.open.push_back(consent_from(r, at));
}

EligibilityRecord eligibility_from(Row const& r, std::size_t at) {
    EligibilityRecord e;
    e.insurer = as_text(r[at]);
    e.symbol = as_text(r[at + 1]);
    e.number = as_text(r[at + 2]);
    e.branch = as_text(r[at + 3]);
    e.birthdate = as_text(r[at + 4]);
    e.name = as_text(r[at + 5]);
    e.name_kana = as_text(r[at + 6]);
    e.burden_ratio = as_text(r[at + 7]);
    e.valid_from = as_text(r[at + 8]);
    if (!is_null(r[at + 9])) e.valid_to = as_text(r[at + 9]);
    e.card_classification = as_text(r[at + 10]);
    e.personal_family = as_text(r[at + 11]);
    if (!is_null(r[at + 12])) e.loss_reason = as_text(r[at + 12]);
    return e;
}

// "($2, $3), ($4, $5) …": placeholders for `rows` tuples of `width` values, numbered from `first`.
std::string placeholders(std::size_t rows, std::size_t width, std::size_t first) {
    std::string out;
    for (std::size_t r = 0; r < rows; ++r) {
        out += r ? ", (" : "(";
        for (std::size_t w = 0; w < width; ++w) out += (w ? ", $" : "$") + std::to_string(first + r * width + w);
        out += ")";
    }
    return out;
}
}  // namespace

std::optional<FacilityInfo> DbRecords::facility(std::string const& code) {
    auto rows =
        db_.query(std::string("SELECT f.name, f.kind, ") + settings_columns +
                      " FROM facilities f JOIN facility_settings s ON s.facility_code = f.code WHERE f.code = $1",
                  {code});
    if (rows.empty()) return std::nullopt;
    FacilityInfo f;
    f.code = code;
    f.name = as_text(rows[0][0]);
    f.kind = as_text(rows[0][1]);
    f.settings = settings_from_row(Row(rows[0].begin() + 2, rows[0].end()));
    return f;
}

std::string DbRecords::person_by_card(Card const& c) {
    auto rows = db_.query("SELECT person_key FROM insured_persons WHERE insurer_number = $1 AND symbol = $2 AND number "
                          "= $3 AND branch = $4 "
                          "AND birthdate = $5 LIMIT 1",
                          {c.insurer, c.symbol, c.number, c.branch, c.birthdate});
    return rows.empty() ? std::string() : as_text(rows[0][0]);
}

std::string DbRecords::person_by_reference(std::string const& facility, std::string const& ref) {
    auto rows = db_.query("SELECT person_key FROM reference_numbers WHERE facility_code = $1 AND reference_number = $2",
                          {facility, ref});
    return rows.empty() ? std::string() : as_text(rows[0][0]);
}

ConsentState DbRecords::consents(std::string const& facility, std::string const& person) {
    ConsentState s;
    for (auto const& r : db_.query(std::string("SELECT ") + consent_columns +
                                       " FROM consents WHERE facility_code = $1 AND person_key = $2 ORDER BY "
                                       "first_visit DESC, registered_at DESC, id",
                                   {facility, person}))
        add_consent(s, r, 0);
    return s;
}

std::vector<Month> DbRecords::claim_months(std::string const& facility, std::string const& person) {
    std::vector<Month> out;
    for (auto const& r :
         db_.query("SELECT month FROM claim_reviews WHERE facility_code = $1 AND person_key = $2", {facility, person}))
        if (auto m = parse_month(as_text(r[0])).month) out.push_back(*m);
    return out;
}

std::vector<EligibilityRecord> DbRecords::eligibility(std::string const& person) {
    std::vector<EligibilityRecord> out;
    for (auto const& r : db_.query(std::string("SELECT ") + eligibility_columns +
                                       " FROM insured_persons WHERE person_key = $1 ORDER BY valid_from DESC, id",
                                   {person}))
        out.push_back(eligibility_from(r, 0));
    return out;
}

std::vector<std::string> DbRecords::reference_numbers(std::string const& facility, std::string const& person) {
    std::vector<std::string> out;
    for (auto const& r : db_.query("SELECT reference_number FROM reference_numbers WHERE facility_code = $1 AND "
                                   "person_key = $2 ORDER BY registered_at, reference_number",
                                   {facility, person}))
        out.push_back(as_text(r[0]));
    return out;
}

ChunkRecords::ChunkRecords(Database& db, std::string const& facility, std::vector<Card> const& cards)
    : db_(db), facility_(facility) {
    info_ = db_.facility(facility);
    // One query per 100 cards for the persons, then one per 100 persons for each table.
    constexpr std::size_t group = 100;
    for (std::size_t at = 0; at < cards.size(); at += group) {
        std::size_t n = std::min(group, cards.size() - at);
        std::vector<Value> params;
        for (std::size_t i = 0; i < n; ++i)
            for (auto const* v : {&cards[at + i].insurer, &cards[at + i].symbol, &cards[at + i].number,
                                  &cards[at + i].branch, &cards[at + i].birthdate})
                params.emplace_back(*v);
        for (auto const& r :
             db.query("SELECT person_key, insurer_number, symbol, number, branch, birthdate FROM insured_persons "
                      "WHERE (insurer_number, symbol, number, branch, birthdate) IN (VALUES " +
                          placeholders(n, 5, 1) + ")",
                      params)) {
            Card c{as_text(r[1]), as_text(r[2]), as_text(r[3]), as_text(r[4]), as_text(r[5])};
            person_by_card_.emplace(c.key(), as_text(r[0]));
            persons_.insert(as_text(r[0]));
        }
    }
    std::vector<std::string> list(persons_.begin(), persons_.end());
    for (std::size_t at = 0; at < list.size(); at += group) {
        std::size_t n = std::min(group, list.size() - at);
        std::vector<Value> params{facility};
        std::string in;
        for (std::size_t i = 0; i < n; ++i) {
            params.emplace_back(list[at + i]);
            in += (i ? ", $" : "$") + std::to_string(i + 2);
        }
        for (auto const& r : db.query(std::string("SELECT person_key, ") + consent_columns +
                                          " FROM consents WHERE facility_code = $1 AND person_key IN (" + in +
                                          ") ORDER BY first_visit DESC, registered_at DESC, id",
                                      params))
            add_consent(consents_[as_text(r[0])], r, 1);
        for (auto const& r :
             db.query("SELECT person_key, month FROM claim_reviews WHERE facility_code = $1 AND person_key IN (" + in +
                          ")",
                      params))
            if (auto m = parse_month(as_text(r[1])).month) claims_[as_text(r[0])].push_back(*m);
        for (auto const& r : db.query("SELECT person_key, reference_number FROM reference_numbers WHERE facility_code "
                                      "= $1 AND person_key IN (" +
                                          in + ") ORDER BY registered_at, reference_number",
                                      params))
            references_[as_text(r[0])].push_back(as_text(r[1]));
        std::vector<Value> eparams(params.begin() + 1, params.end());
        std::string ein;
        for (std::size_t i = 0; i < n; ++i) ein += (i ? ", $" : "$") + std::to_string(i + 1);
        for (auto const& r :
             db.query(std::string("SELECT person_key, ") + eligibility_columns +
                          " FROM insured_persons WHERE person_key IN (" + ein + ") ORDER BY valid_from DESC, id",
                      eparams))
            eligibility_[as_text(r[0])].push_back(eligibility_from(r, 1));
    }
}

std::optional<FacilityInfo> ChunkRecords::facility(std::string const& code) {
    return code == facility_ ? info_ : db_.facility(code);
}

std::string ChunkRecords::person_by_card(Card const& card) {
    auto it = person_by_card_.find(card.key());
    return it == person_by_card_.end() ? std::string() : it->second;
}

std::string ChunkRecords::person_by_reference(std::string const& facility, std::string const& ref) {
    return db_.person_by_reference(facility, ref);
}

ConsentState ChunkRecords::consents(std::string const& facility, std::string const& person) {
    if (!loaded(facility, person)) return db_.consents(facility, person);
    auto it = consents_.find(person);
    return it == consents_.end() ? ConsentState{} : it->second;
}

std::vector<Month> ChunkRecords::claim_months(std::string const& facility, std::string const& person) {
    if (!loaded(facility, person)) return db_.claim_months(facility, person);
    auto it = claims_.find(person);
    return it == claims_.end() ? std::vector<Month>{} : it->second;
}

std::vector<EligibilityRecord> ChunkRecords::eligibility(std::string const& person) {
    if (!persons_.count(person)) return db_.eligibility(person);
    auto it = eligibility_.find(person);
    return it == eligibility_.end() ? std::vector<EligibilityRecord>{} : it->second;
}

std::vector<std::string> ChunkRecords::reference_numbers(std::string const& facility, std::string const& person) {
    if (!loaded(facility, person)) return db_.reference_numbers(facility, person);
    auto it = references_.find(person);
    return it == references_.end() ? std::vector<std::string>{} : it->second;
}

namespace {
// One statement for PersonRecords: the facility with its settings (part 0), the person (1), their consents at the
// facility (2), its claim reviews (3), their insurance periods (4) and the facility's 照会番号 for them (5), with the
// columns that put each part in the order the one-table queries of DbRecords give (sort_person_rows). 18 columns: the
// part, 13 values (texts: the parts' integers are cast, so that PostgreSQL unites the columns), 4 sort keys (d1, d2
// descending, a1, a2 ascending; a part leaves those it does not use NULL). Each part finds the person by
// a scalar subquery (not a join with p, which SQLite planned as a scan of the facility's consents with an index of
// p made for each execution).
std::string person_statement(char const* who) {
    auto nulls = [](int n) {
        std::string out;
        for (int i = 0; i < n; ++i) out += ", NULL";
        return out;
    };
    std::string settings;
    for (char const* column : {"terms_agreed", "home_visit_enabled", "online_enabled", "view_operation",
                               "view_diagnosis", "view_pharmacy", "view_checkup", "view_limit"})
        settings += std::string(", CAST(s.") + column + " AS TEXT)";
    return std::string("WITH p AS (") + who +
           ") "
           "SELECT 0, f.name, f.kind" +
           settings + ", s.updated_at" + nulls(2) + nulls(4) +
           " FROM facilities f JOIN facility_settings s ON s.facility_code = f.code WHERE f.code = $1 "
           "UNION ALL SELECT 1, p.person_key" +
           nulls(12) + nulls(4) +
           " FROM p "
           "UNION ALL SELECT 2, c.id, c.visit_kind, c.first_visit, c.identity_method, c.registered_at, c.items, "
           "c.appointment_date, "
           "c.withdrawn_at, CAST(c.preparatory_visit AS TEXT)" +
           nulls(4) +
           ", c.first_visit, c.registered_at, c.id, NULL FROM consents c "
           "WHERE c.facility_code = $1 AND c.person_key = (SELECT person_key FROM p) "
           "UNION ALL SELECT 3, r.month" +
           nulls(12) + nulls(4) +
           " FROM claim_reviews r "
           "WHERE r.facility_code = $1 AND r.person_key = (SELECT person_key FROM p) "
           "UNION ALL SELECT 4, " +
           eligibility_columns +
           ", e.valid_from, NULL, e.id, NULL FROM insured_persons e "
           "WHERE e.person_key = (SELECT person_key FROM p) "
           "UNION ALL SELECT 5, n.reference_number" +
           nulls(12) +
           ", NULL, NULL, n.registered_at, n.reference_number "
           "FROM reference_numbers n WHERE n.facility_code = $1 AND n.person_key = (SELECT person_key FROM p)";
}

// The statement's rows by part, each part by its sort keys (d1, d2 descending, a1, a2 ascending, as texts in byte
// order: SQLite's BINARY collation, and PostgreSQL's C; NULL first, as SQLite; the keys a part uses are NOT NULL, those
// it leaves NULL are so in all its rows): sorted here, since a statement's ORDER BY over the union cost SQLite a
// temporary b-tree per part, a quarter of the statement's time. A part without keys (claims) keeps the rows' order.
void sort_person_rows(std::vector<Row>& rows) {
    auto key = [](Row const& r, std::size_t i) {
        auto const* s = std::get_if<std::string>(&r[i]);
        return s ? std::string_view(*s) : std::string_view();
    };
    std::stable_sort(rows.begin(), rows.end(), [&](Row const& a, Row const& b) {
        if (auto const pa = as_int(a[0]), pb = as_int(b[0]); pa != pb) return pa < pb;
        for (std::size_t i : {14, 15})
            if (int const c = key(a, i).compare(key(b, i)); c != 0) return c > 0;
        for (std::size_t i : {16, 17})
            if (int const c = key(a, i).compare(key(b, i)); c != 0) return c < 0;
        return false;
    });
}
// PostgreSQL's form of the same read (migration 113_person_lines.postgresql.sql): every row it needs is a line of
// person_lines, kept by triggers of the tables it mirrors, so that the read is one index scan instead of seven — the
// executor's set-up of the seven was a quarter of the cluster's CPU under re-inquiries. Its rows are the statement's
// above with a column more, the line's person (19 columns), the facility in two parts: 0 its name and kind, 6 its
// settings; the person's lines are found by the person the card or 照会番号 names, the facility's by person ''.
std::string person_lines_statement(char const* who) {
    return std::string("SELECT part, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, d1, d2, a1, a2, "
                       "person_key FROM person_lines WHERE person_key = ANY (ARRAY['', (") +
           who + ")]) AND scope = ANY (ARRAY['', $1])";
}
}  // namespace

PersonRecords::PersonRecords(Database& db, std::string const& facility, std::optional<Card> const& card,
                             std::string const& reference_number, Statement statement)
    : db_(db), facility_(facility), card_(card), reference_number_(reference_number) {
    static char const* const person_of_card = "SELECT person_key FROM insured_persons WHERE insurer_number = $2 AND "
                                              "symbol = $3 AND number = $4 AND branch = $5 AND birthdate = $6 LIMIT 1";
    static char const* const person_of_reference =
        "SELECT person_key FROM reference_numbers WHERE facility_code = $1 AND reference_number = $2";
    static std::string const by_card = person_statement(person_of_card);
    static std::string const by_reference = person_statement(person_of_reference);
    static std::string const lines_by_card = person_lines_statement(person_of_card);
    static std::string const lines_by_reference = person_lines_statement(person_of_reference);
    bool const lines = statement == Statement::best && db.backend() == "postgresql";
    std::vector<Row> rows =
        card ? db.query(lines ? lines_by_card : by_card,
                        {facility, card->insurer, card->symbol, card->number, card->branch, card->birthdate})
             : db.query(lines ? lines_by_reference : by_reference, {facility, reference_number});
    sort_person_rows(rows);
    std::optional<FacilityInfo> named;  // person_lines: the facility's name and kind (part 0), its settings (part 6)
    bool has_settings = false;
    Settings settings;
    for (auto const& r : rows) {
        std::int64_t const part = as_int(r[0]);
        if (lines && part >= 2 && part <= 5) {
            // Person '' is nobody (the seven scans' person_ "" loads nothing either); a line names its person.
            auto const* person = std::get_if<std::string>(&r[18]);
            if (!person || person->empty()) continue;
            if (person_.empty()) person_ = *person;
        }
        switch (part) {
            case 0:
                if (lines) named = FacilityInfo{facility, as_text(r[1]), as_text(r[2]), Settings{}};
                else
                    info_ = FacilityInfo{facility, as_text(r[1]), as_text(r[2]),
                                         settings_from_row(Row(r.begin() + 3, r.begin() + 12))};
                break;
            case 1: person_ = as_text(r[1]); break;
            case 2: add_consent(consents_, r, 1); break;
            case 3:
                if (auto m = parse_month(as_text(r[1])).month) claims_.push_back(*m);
                break;
            case 4: eligibility_.push_back(eligibility_from(r, 1)); break;
            case 5: references_.push_back(as_text(r[1])); break;
            case 6:
                settings = settings_from_row(Row(r.begin() + 1, r.begin() + 10));
                has_settings = true;
                break;
        }
    }
    if (named && has_settings) {  // (the seven scans' part 0 is the facility joined with its settings)
        named->settings = settings;
        info_ = std::move(named);
    }
}

std::optional<FacilityInfo> PersonRecords::facility(std::string const& code) {
    return code == facility_ ? info_ : db_.facility(code);
}

std::string PersonRecords::person_by_card(Card const& card) {
    if (card_ && card.key() == card_->key()) return person_;
    return db_.person_by_card(card);
}

std::string PersonRecords::person_by_reference(std::string const& facility, std::string const& ref) {
    if (!card_ && facility == facility_ && ref == reference_number_) return person_;
    return db_.person_by_reference(facility, ref);
}

ConsentState PersonRecords::consents(std::string const& facility, std::string const& person) {
    return loaded(facility, person) ? consents_ : db_.consents(facility, person);
}

std::vector<Month> PersonRecords::claim_months(std::string const& facility, std::string const& person) {
    return loaded(facility, person) ? claims_ : db_.claim_months(facility, person);
}

std::vector<EligibilityRecord> PersonRecords::eligibility(std::string const& person) {
    return !person_.empty() && person == person_ ? eligibility_ : db_.eligibility(person);
}

std::vector<std::string> PersonRecords::reference_numbers(std::string const& facility, std::string const& person) {
    return loaded(facility, person) ? references_ : db_.reference_numbers(facility, person);
}

}  // namespace kyotaku::server
