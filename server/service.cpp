#include "service.hpp"

#include "card_signature.hpp"
#include "codes.hpp"
#include "oqs_xml.hpp"
#include "url_token.hpp"

#include <openssl/rand.h>

#include <array>
#include <set>
#include <chrono>
#include <sstream>

namespace kyotaku::server {

std::string new_id() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), int(bytes.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    static char const hex[] = "0123456789abcdef";
    std::string out;
    for (auto b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

std::string now_iso() {
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    // Microseconds keep the log's order when several entries fall in the same second.
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%06lldZ", static_cast<long long>(us));
    return std::string(buf) + frac;
}

namespace {

void require_admin(Caller const& c) {
    if (c.kind != Caller::Kind::admin) throw ClientError(403, "", "管理者の証明書が必要です / an administrator certificate is required");
}
void require_facility(Caller const& c) {
    if (c.kind != Caller::Kind::facility)
        throw ClientError(403, "", "医療機関等の証明書が必要です / a facility certificate is required");
}

std::string text_field(json const& body, char const* field, bool required = true) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) {
        if (required) throw ClientError(400, field, std::string("項目 ") + field + " がありません / field " + field + " is missing");
        return {};
    }
    if (!it->is_string()) throw ClientError(400, field, std::string("項目 ") + field + " は文字列です / field " + field + " must be a string");
    return it->get<std::string>();
}

bool bool_field(json const& body, char const* field, bool fallback) {
    auto it = body.find(field);
    if (it == body.end()) return fallback;
    if (!it->is_boolean()) throw ClientError(400, field, std::string("項目 ") + field + " は true か false です / field " + field + " must be true or false");
    return it->get<bool>();
}

std::string date_field(json const& body, char const* field, bool required = true) {
    std::string raw = text_field(body, field, required);
    if (raw.empty() && !required) return {};
    auto r = parse_date(raw);
    if (!r.date) throw ClientError(400, field, std::string("項目 ") + field + ": " + r.error);
    return r.date->iso();
}

// Enum values are checked against the rule set, which owns them.
std::string enum_field(Program const& p, json const& body, char const* field, char const* fact) {
    std::string v = text_field(body, field);
    int f = p.find_fact(fact);
    if (f < 0 || p.find_enum_value(p.facts[std::size_t(f)].type.enum_id, v) < 0) {
        std::string allowed;
        if (f >= 0)
            for (auto const& name : p.enums[std::size_t(p.facts[std::size_t(f)].type.enum_id)].values) allowed += (allowed.empty() ? "" : ", ") + name;
        throw ClientError(400, field, std::string("項目 ") + field + " の値「" + v + "」は使えません (" + allowed + ") / unknown value for " + field);
    }
    return v;
}

// Viewing items and the settings column that enables each.
struct Item {
    char const* name;
    char const* column;
};
constexpr std::array<Item, 5> items{{{"手術情報", "view_operation"},
                                     {"診療情報", "view_diagnosis"},
                                     {"薬剤情報", "view_pharmacy"},
                                     {"特定健診情報", "view_checkup"},
                                     {"限度額情報", "view_limit"}}};

json settings_json(Row const& r) {
    json view = json::object();
    for (std::size_t i = 0; i < items.size(); ++i) view[items[i].name] = as_int(r[3 + i]) != 0;
    return json{{"terms_agreed", as_int(r[0]) != 0},
                {"home_visit_enabled", as_int(r[1]) != 0},
                {"online_enabled", as_int(r[2]) != 0},
                {"viewing_items", view},
                {"updated_at", as_text(r[8])}};
}

constexpr char const* settings_select =
    "SELECT terms_agreed, home_visit_enabled, online_enabled, view_operation, view_diagnosis, view_pharmacy, "
    "view_checkup, view_limit, updated_at FROM facility_settings WHERE facility_code = $1";

// The 分類 (訪問診療等 / オンライン診療等) of a visit kind, as the rule set classifies it (rules/10_service.rules).
std::string category_of(std::shared_ptr<Program const> const& rules, std::string const& visit_kind) {
    int slot = rules->find_slot("分類");
    if (slot < 0) return {};
    Activation facts(*rules);
    if (!facts.set_enum("visit_kind", visit_kind)) return {};
    Evaluator ev(rules);
    ev.begin(facts);
    Outcome o = ev.evaluate_slot(facts, std::uint32_t(slot));
    if (o.status != Status::ok) return {};
    return rules->enums[std::size_t(rules->slots[std::size_t(slot)].type.enum_id)].values[std::size_t(o.value)];
}

}  // namespace

namespace {
std::vector<std::string> split_csv_line(std::string const& line) {
    std::vector<std::string> f;
    std::size_t at = 0;
    for (;;) {
        std::size_t comma = line.find(',', at);
        f.push_back(line.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return f;
}
}  // namespace

Service::Service(Database& db, std::shared_ptr<Program const> rules) : db_(db), rules_(std::move(rules)) {
    // The rules are immutable: classify every visit kind once.
    if (int f = rules_->find_fact("visit_kind"); f >= 0)
        for (auto const& kind : rules_->enums[std::size_t(rules_->facts[std::size_t(f)].type.enum_id)].values)
            category_by_kind_[kind] = category_of(rules_, kind);
}

std::string Service::category(std::string const& visit_kind) const {
    auto it = category_by_kind_.find(visit_kind);
    return it == category_by_kind_.end() ? std::string() : it->second;
}

Evaluator& Service::evaluator() {
    thread_local std::shared_ptr<Program const> program;
    thread_local std::unique_ptr<Evaluator> ev;
    if (!ev || program != rules_) {
        program = rules_;
        ev = std::make_unique<Evaluator>(rules_);
    }
    return *ev;
}

bool Service::facility_exists(std::string const& code) {
    return !db_.query("SELECT 1 FROM facilities WHERE code = $1", {code}).empty();
}

std::string Service::facility_kind(std::string const& code) {
    auto rows = db_.query("SELECT kind FROM facilities WHERE code = $1", {code});
    return rows.empty() ? std::string() : as_text(rows[0][0]);
}

json Service::create_facility(Caller const& c, json const& body) {
    require_admin(c);
    std::string code = text_field(body, "code");
    if (auto e = facility_code_error(code); !e.empty()) throw ClientError(400, "code", e);
    std::string name = text_field(body, "name");
    if (name.empty() || name.size() > 200) throw ClientError(400, "name", "名称は1〜200バイトです / name must be 1..200 bytes");
    std::string kind = enum_field(*rules_, body, "kind", "facility_kind");
    if (facility_exists(code)) throw ClientError(409, "code", "この医療機関等コードはすでに登録されています / facility already exists");
    std::string now = now_iso();
    transaction(db_, [&] {
        db_.query("INSERT INTO facilities (code, name, kind, created_at) VALUES ($1, $2, $3, $4)", {code, name, kind, now});
        db_.query("INSERT INTO facility_settings (facility_code, updated_at) VALUES ($1, $2)", {code, now});
    });
    return json{{"code", code}, {"name", name}, {"kind", kind}};
}

json Service::get_settings(Caller const& c) {
    require_facility(c);
    auto rows = db_.query(settings_select, {c.facility_code});
    if (rows.empty()) throw ClientError(404, "", "施設が登録されていません / facility not registered");
    return settings_json(rows[0]);
}

json Service::put_settings(Caller const& c, json const& body) {
    require_facility(c);
    if (!body.is_object()) throw ClientError(400, "", "JSON のオブジェクトが必要です / a JSON object is required");
    for (auto const& [key, value] : body.items())
        if (key != "terms_agreed" && key != "home_visit_enabled" && key != "online_enabled" && key != "viewing_items")
            throw ClientError(400, key, "不明な項目 " + key + " / unknown field " + key);
    return transaction(db_, [&] {
        auto rows = db_.query(settings_select, {c.facility_code});
        if (rows.empty()) throw ClientError(404, "", "施設が登録されていません / facility not registered");
        json before = settings_json(rows[0]);
        json after = before;
        for (char const* f : {"terms_agreed", "home_visit_enabled", "online_enabled"}) after[f] = bool_field(body, f, before[f].get<bool>());
        if (auto it = body.find("viewing_items"); it != body.end()) {
            if (!it->is_object()) throw ClientError(400, "viewing_items", "viewing_items はオブジェクトです / viewing_items must be an object");
            for (auto const& [k, v] : it->items()) {
                bool known = false;
                for (auto const& item : items) known = known || k == item.name;
                if (!known) throw ClientError(400, "viewing_items." + k, "不明な閲覧項目 " + k + " / unknown viewing item " + k);
                if (!v.is_boolean()) throw ClientError(400, "viewing_items." + k, "true か false です / must be true or false");
                after["viewing_items"][k] = v.get<bool>();
            }
        }
        // 利用規約 must be agreed before a function is switched on (domain.md §3).
        if ((after["home_visit_enabled"].get<bool>() || after["online_enabled"].get<bool>()) && !after["terms_agreed"].get<bool>())
            throw ClientError(409, "terms_agreed", "利用規約に同意してから機能を「利用する」にしてください / agree to the terms of use before enabling a function");
        std::string now = now_iso();
        after["updated_at"] = now;
        auto const& v = after["viewing_items"];
        db_.query("UPDATE facility_settings SET terms_agreed = $2, home_visit_enabled = $3, online_enabled = $4, view_operation = $5, "
                  "view_diagnosis = $6, view_pharmacy = $7, view_checkup = $8, view_limit = $9, updated_at = $10 WHERE facility_code = $1",
                  {c.facility_code, std::int64_t(after["terms_agreed"].get<bool>()), std::int64_t(after["home_visit_enabled"].get<bool>()),
                   std::int64_t(after["online_enabled"].get<bool>()), std::int64_t(v["手術情報"].get<bool>()),
                   std::int64_t(v["診療情報"].get<bool>()), std::int64_t(v["薬剤情報"].get<bool>()),
                   std::int64_t(v["特定健診情報"].get<bool>()), std::int64_t(v["限度額情報"].get<bool>()), now});
        db_.query("INSERT INTO settings_audit (id, facility_code, seq, actor, at, before_json, after_json) "
                  "VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM settings_audit WHERE facility_code = $2), $3, $4, $5, $6)",
                  {new_id(), c.facility_code, c.subject, now, before.dump(), after.dump()});
        return after;
    });
}

json Service::settings_audit(Caller const& c) {
    require_facility(c);
    json out = json::array();
    for (auto const& r : db_.query("SELECT actor, at, before_json, after_json FROM settings_audit WHERE facility_code = $1 ORDER BY seq",
                                   {c.facility_code}))
        out.push_back(json{{"actor", as_text(r[0])}, {"at", as_text(r[1])}, {"before", json::parse(as_text(r[2]))}, {"after", json::parse(as_text(r[3]))}});
    return out;
}

json Service::add_insured_person(Caller const& c, json const& body) {
    require_admin(c);
    std::string insurer = canonical_insurer_number(text_field(body, "insurer_number"));
    if (auto e = insurer_number_error(insurer); !e.empty()) throw ClientError(400, "insurer_number", e);
    std::string symbol = normalize_symbol(text_field(body, "symbol"));
    std::string number = normalize_symbol(text_field(body, "number"));
    if (number.empty() || number.size() > 20) throw ClientError(400, "number", "番号は1〜20文字です / number must be 1..20 characters");
    if (symbol.size() > 20) throw ClientError(400, "symbol", "記号は20文字までです / symbol is at most 20 characters");
    std::string branch = normalize_symbol(text_field(body, "branch", false));
    if (!branch.empty() && (branch.size() != 2 || branch.find_first_not_of("0123456789") != std::string::npos))
        throw ClientError(400, "branch", "枝番は2桁の数字です / branch is 2 digits");
    std::string birthdate = date_field(body, "birthdate");
    std::string name = text_field(body, "name");
    std::string kana = text_field(body, "name_kana", false);
    std::string ratio = text_field(body, "burden_ratio");
    if (ratio != "010" && ratio != "020" && ratio != "030") throw ClientError(400, "burden_ratio", "負担割合は 010, 020, 030 のいずれかです / burden_ratio is 010, 020 or 030");
    std::string from = date_field(body, "valid_from");
    std::string to = date_field(body, "valid_to", false);
    if (!to.empty() && to < from) throw ClientError(400, "valid_to", "valid_to が valid_from より前です / valid_to is before valid_from");
    std::string person = text_field(body, "person_key", false);
    if (person.empty()) person = new_id();
    std::string id = new_id();
    db_.query("INSERT INTO insured_persons (id, person_key, insurer_number, symbol, number, branch, birthdate, name, name_kana, burden_ratio, "
              "valid_from, valid_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
              {id, person, insurer, symbol, number, branch, birthdate, name, kana, ratio, from, to.empty() ? Value(nullptr) : Value(to)});
    return json{{"id", id}, {"person_key", person}};
}

json Service::add_consent(Caller const& c, json const& body) {
    require_admin(c);
    std::string facility = text_field(body, "facility_code");
    if (!facility_exists(facility)) throw ClientError(400, "facility_code", "施設が登録されていません / unknown facility");
    std::string person = text_field(body, "person_key");
    if (db_.query("SELECT 1 FROM insured_persons WHERE person_key = $1", {person}).empty())
        throw ClientError(400, "person_key", "資格情報がありません / unknown person");
    std::string kind = enum_field(*rules_, body, "visit_kind", "visit_kind");
    std::string first = date_field(body, "first_visit");
    std::string method = text_field(body, "identity_method");
    if (method != "暗証番号" && method != "目視確認" && method != "マイナポータル" && method != "資格情報のお知らせ")
        throw ClientError(400, "identity_method", "本人確認の方法は 暗証番号, 目視確認, マイナポータル, 資格情報のお知らせ のいずれかです / unknown identity method");
    std::string list;
    auto it = body.find("items");
    if (it == body.end() || !it->is_array()) throw ClientError(400, "items", "items (同意した閲覧項目の配列) がありません / items must be an array");
    int item_fact = rules_->find_fact("consented_items");
    for (auto const& v : *it) {
        if (!v.is_string() || rules_->find_enum_value(rules_->facts[std::size_t(item_fact)].type.enum_id, v.get<std::string>()) < 0)
            throw ClientError(400, "items", "不明な閲覧項目です / unknown viewing item");
        list += (list.empty() ? "" : ",") + v.get<std::string>();
    }
    std::string appointment = date_field(body, "appointment_date", false);
    std::string id = new_id();
    db_.query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, continuing_home_care, identity_method, items, "
              "appointment_date, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
              {id, facility, person, kind, first, std::int64_t(bool_field(body, "continuing_home_care", false)), method, list,
               appointment.empty() ? Value(nullptr) : Value(appointment), now_iso()});
    return json{{"id", id}};
}

json Service::list_consents(Caller const& c, std::string const& facility_code) {
    require_admin(c);
    json out = json::array();
    for (auto const& r : db_.query("SELECT id, person_key, visit_kind, first_visit, registered_at, withdrawn_at, identity_method, items, "
                                   "appointment_date FROM consents WHERE facility_code = $1 ORDER BY registered_at, id",
                                   {facility_code})) {
        json items = json::array();
        std::stringstream list(as_text(r[7]));
        for (std::string item; std::getline(list, item, ',');)
            if (!item.empty()) items.push_back(item);
        out.push_back(json{{"id", as_text(r[0])}, {"person_key", as_text(r[1])}, {"visit_kind", as_text(r[2])}, {"first_visit", as_text(r[3])},
                           {"registered_at", as_text(r[4])}, {"withdrawn_at", is_null(r[5]) ? json(nullptr) : json(as_text(r[5]))},
                           {"identity_method", as_text(r[6])}, {"items", items},
                           {"appointment_date", is_null(r[8]) ? json(nullptr) : json(as_text(r[8]))}});
    }
    return out;
}

json Service::import_claim_reviews(Caller const& c, std::string const& csv) {
    require_facility(c);
    // Each bad row gets its own error; the good rows are imported (in one transaction).
    json errors = json::array();
    int imported = 0;
    std::istringstream in(csv);
    std::string line;
    int line_no = 0;
    transaction(db_, [&] {
        while (std::getline(in, line)) {
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty() || (line_no == 1 && line.rfind("facility_code", 0) == 0)) continue;
            std::vector<std::string> f;
            std::stringstream ls(line);
            std::string cell;
            while (std::getline(ls, cell, ',')) f.push_back(cell);
            if (!line.empty() && line.back() == ',') f.emplace_back();
            auto fail = [&](std::string field, std::string msg) { errors.push_back(json{{"line", line_no}, {"field", field}, {"error", msg}}); };
            if (f.size() != 8) {
                fail("", "8列 (facility_code,insurer_number,symbol,number,branch,birthdate,month,reviewed_on) が必要です / expected 8 columns");
                continue;
            }
            if (f[0] != c.facility_code) {
                fail("facility_code", "自施設以外の審査結果は取り込めません / rows must be for the calling facility");
                continue;
            }
            auto birth = parse_date(f[5]);
            auto month = parse_month(f[6]);
            auto reviewed = parse_date(f[7]);
            if (!birth.date) { fail("birthdate", birth.error); continue; }
            if (!month.month) { fail("month", month.error); continue; }
            if (!reviewed.date) { fail("reviewed_on", reviewed.error); continue; }
            auto persons = db_.query("SELECT person_key FROM insured_persons WHERE insurer_number = $1 AND symbol = $2 AND number = $3 AND branch = $4 AND birthdate = $5",
                                     {canonical_insurer_number(f[1]), normalize_symbol(f[2]), normalize_symbol(f[3]), normalize_symbol(f[4]), birth.date->iso()});
            if (persons.empty()) {
                fail("insurer_number", "該当する資格情報がありません / no matching eligibility record");
                continue;
            }
            db_.query("INSERT INTO claim_reviews (facility_code, person_key, month, reviewed_on) VALUES ($1, $2, $3, $4) "
                      "ON CONFLICT (facility_code, person_key, month) DO UPDATE SET reviewed_on = excluded.reviewed_on",
                      {c.facility_code, as_text(persons[0][0]), month.month->iso(), reviewed.date->iso()});
            ++imported;
        }
    });
    return json{{"imported", imported}, {"errors", errors}};
}

namespace {
// While a batch chunk is answered (one transaction, the connection held), the facility's settings and kind
// cannot change: they are read once for the chunk instead of once per row.
struct FacilityCache {
    std::string code, kind;
    std::vector<Row> settings;
};
thread_local FacilityCache const* chunk_facility = nullptr;
}  // namespace

// What a batch chunk needs about its persons, loaded with one query per table for the whole chunk (instead of
// five statements per row). Valid while the chunk's transaction holds the connection.
struct BatchPrefetch {
    std::string facility, query_date;
    std::map<std::string, std::string> person_by_card;  // insurer|symbol|number|branch|birthdate → person_key
    std::map<std::string, std::vector<Row>> consents;    // person → rows as latest_consent selects them
    std::map<std::string, std::vector<std::string>> claims;
    std::map<std::string, std::vector<Row>> eligibility; // person → rows valid on query_date, latest first
    std::map<std::string, std::vector<std::string>> references;
};

namespace {
thread_local BatchPrefetch const* prefetch = nullptr;

std::string card_key(std::string const& insurer, std::string const& symbol, std::string const& number, std::string const& branch,
                     std::string const& birthdate) {
    return insurer + "|" + symbol + "|" + number + "|" + branch + "|" + birthdate;
}

constexpr char const* consent_columns = "visit_kind, first_visit, continuing_home_care, items, withdrawn_at, appointment_date";
constexpr char const* eligibility_columns = "insurer_number, symbol, number, branch, birthdate, name, name_kana, burden_ratio, valid_from, valid_to";
}  // namespace

std::string Service::find_person(json const& body) {
    std::string insurer = canonical_insurer_number(text_field(body, "insurer_number"));
    if (auto e = insurer_number_error(insurer); !e.empty()) throw ClientError(400, "insurer_number", e);
    std::string symbol = normalize_symbol(text_field(body, "symbol"));
    std::string number = normalize_symbol(text_field(body, "number"));
    std::string branch = normalize_symbol(text_field(body, "branch", false));
    std::string birthdate = date_field(body, "birthdate");
    if (prefetch) {
        auto it = prefetch->person_by_card.find(card_key(insurer, symbol, number, branch, birthdate));
        return it == prefetch->person_by_card.end() ? std::string() : it->second;
    }
    auto persons = db_.query("SELECT person_key FROM insured_persons WHERE insurer_number = $1 AND symbol = $2 AND number = $3 AND branch = $4 AND birthdate = $5",
                             {insurer, symbol, number, branch, birthdate});
    return persons.empty() ? std::string() : as_text(persons[0][0]);
}

json Service::latest_consent(std::string const& facility, std::string const& person, std::string const& category) {
    std::vector<Row> fetched;
    std::vector<Row> const* rows = nullptr;
    if (prefetch && prefetch->facility == facility) {
        static std::vector<Row> const none;
        auto it = prefetch->consents.find(person);
        rows = it == prefetch->consents.end() ? &none : &it->second;
    } else {
        fetched = db_.query(std::string("SELECT ") + consent_columns +
                                " FROM consents WHERE facility_code = $1 AND person_key = $2 ORDER BY first_visit DESC, registered_at DESC",
                            {facility, person});
        rows = &fetched;
    }
    for (auto const& r : *rows) {
        if (this->category(as_text(r[0])) != category) continue;
        json items = json::array();
        std::string list = as_text(r[3]);
        for (std::size_t at = 0; at < list.size();) {
            std::size_t comma = list.find(',', at);
            if (comma == std::string::npos) comma = list.size();
            items.push_back(list.substr(at, comma - at));
            at = comma + 1;
        }
        return json{{"visit_kind", as_text(r[0])}, {"first_visit", as_text(r[1])}, {"continuing_home_care", as_int(r[2]) != 0},
                    {"items", items}, {"withdrawn", !is_null(r[4])},
                    {"appointment_date", is_null(r[5]) ? json(nullptr) : json(as_text(r[5]))}};
    }
    return nullptr;
}


void Service::fill_facts(Activation& facts, Caller const& c, std::string const& person, json const& consent, std::string const& category,
                         std::string const& query_date) {
    bool cached = chunk_facility && chunk_facility->code == c.facility_code;
    auto settings = cached ? chunk_facility->settings : db_.query(settings_select, {c.facility_code});
    // 環境設定 has one switch per 分類: 訪問診療等機能 (column 1) and オンライン診療等機能 (column 2).
    bool enabled = !settings.empty() && as_int(settings[0][category == "オンライン診療等" ? 2 : 1]) != 0;
    facts.set_enum("facility_kind", cached ? chunk_facility->kind : facility_kind(c.facility_code));
    facts.set_enum("visit_kind", consent["visit_kind"].get<std::string>());
    facts.set_date("first_visit", *parse_date(consent["first_visit"].get<std::string>()).date);
    facts.set_date("query_date", *parse_date(query_date).date);
    facts.set_bool("continuing_home_care", consent["continuing_home_care"].get<bool>());
    facts.set_bool("feature_enabled", enabled);
    if (consent["appointment_date"].is_string()) facts.set_date("appointment_date", *parse_date(consent["appointment_date"].get<std::string>()).date);
    std::vector<std::string_view> consented;
    for (auto const& i : consent["items"]) consented.push_back(i.get_ref<std::string const&>());
    facts.set_enum_set("consented_items", consented);
    if (!settings.empty()) {
        std::vector<std::string_view> enabled_items;
        for (std::size_t i = 0; i < items.size(); ++i)
            if (as_int(settings[0][3 + i]) != 0) enabled_items.push_back(items[i].name);
        facts.set_enum_set("enabled_items", enabled_items);
    }
    std::vector<Month> months;
    if (prefetch && prefetch->facility == c.facility_code) {
        if (auto it = prefetch->claims.find(person); it != prefetch->claims.end())
            for (auto const& m : it->second)
                if (auto month = parse_month(m).month) months.push_back(*month);
    } else {
        for (auto const& r : db_.query("SELECT month FROM claim_reviews WHERE facility_code = $1 AND person_key = $2", {c.facility_code, person}))
            if (auto m = parse_month(as_text(r[0])).month) months.push_back(*m);
    }
    facts.set_month_set("reviewed_claim_months", months);
}

namespace {
std::string category_field(Program const& rules, json const& body) {
    std::string category = text_field(body, "category");
    int slot = rules.find_slot("分類");
    if (slot < 0 || rules.find_enum_value(rules.slots[std::size_t(slot)].type.enum_id, category) < 0)
        throw ClientError(400, "category", "診療区分は 訪問診療等 か オンライン診療等 です / category is 訪問診療等 or オンライン診療等");
    return category;
}
}  // namespace

json Service::reinquiry(Caller const& c, json const& body) {
    require_facility(c);
    std::string category = category_field(*rules_, body);
    std::string query_date = date_field(body, "query_date");
    return reinquire(c, category, body, query_date, true);
}

json Service::reinquire(Caller const& c, std::string const& category, json const& body, std::string const& query_date, bool log_it) {
    // By 照会番号 (this facility's own numbers), or by 保険者番号・記号・番号・枝番・生年月日.
    bool by_reference = body.contains("reference_number");
    std::string person, insurer, symbol, number, branch;
    if (by_reference) {
        std::string ref = text_field(body, "reference_number");
        auto r = db_.query("SELECT person_key FROM reference_numbers WHERE facility_code = $1 AND reference_number = $2", {c.facility_code, ref});
        if (!r.empty()) person = as_text(r[0][0]);
    } else {
        person = find_person(body);
        insurer = canonical_insurer_number(text_field(body, "insurer_number"));
        symbol = normalize_symbol(text_field(body, "symbol"));
        number = normalize_symbol(text_field(body, "number"));
        branch = normalize_symbol(text_field(body, "branch", false));
    }

    json result{{"qualification_validity", 4}, {"allowed", false}};
    auto log = [&](std::string const& p) {
        if (log_it)
            db_.query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                      {new_id(), c.facility_code, now_iso(), std::string("再照会"), p.empty() ? Value(nullptr) : Value(p),
                       std::int64_t(result["allowed"].get<bool>()), json{{"request", body}, {"result", result}}.dump()});
        return result;
    };
    if (person.empty()) {
        result["reason"] = "該当する資格がありません (QualificationValidity 4) / no matching eligibility";
        return log("");
    }
    json consent = latest_consent(c.facility_code, person, category);
    if (consent.is_null() || consent["withdrawn"].get<bool>()) {
        result["qualification_validity"] = nullptr;
        result["reason"] = consent.is_null() ? "この施設の居宅同意取得型の同意がありません / no consent registered by this facility"
                                             : "同意は取り消されています / the consent was withdrawn";
        return log(person);
    }
    // The decision comes from the rule set.
    Activation facts(*rules_);
    fill_facts(facts, c, person, consent, category, query_date);
    facts.set_enum("terminal", "資格確認端末");
    Evaluator& ev = evaluator();
    ev.reset_params();
    ev.begin(facts);
    Outcome decision = ev.evaluate_slot(facts, std::uint32_t(rules_->find_slot("reinquiry_allowed")));
    if (decision.status != Status::ok) {
        result["reason"] = "ルールで判定できませんでした / the rules could not decide";
        return log(person);
    }
    bool allowed = decision.value != 0;
    result["allowed"] = allowed;
    result["reason"] = ev.render_text(std::int64_t(decision.clause), facts);
    result["first_visit"] = consent["first_visit"];
    if (int w = rules_->find_slot("window_end"); w >= 0) {
        Outcome we = ev.evaluate_slot(facts, std::uint32_t(w));
        if (we.status == Status::ok) result["window_end"] = Date::from_days(we.value).iso();
    }
    if (!allowed) {
        result["qualification_validity"] = nullptr;  // refused: no eligibility is disclosed
        return log(person);
    }
    // The latest eligibility of the person on the query date, following a change of insurer.
    bool prefetched = prefetch && prefetch->facility == c.facility_code && prefetch->query_date == query_date;
    std::vector<Row> current;
    if (prefetched) {
        if (auto it = prefetch->eligibility.find(person); it != prefetch->eligibility.end() && !it->second.empty()) current.push_back(it->second.front());
    } else {
        current = db_.query(std::string("SELECT ") + eligibility_columns +
                                " FROM insured_persons WHERE person_key = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to >= $2) "
                                "ORDER BY valid_from DESC LIMIT 1",
                            {person, query_date});
    }
    if (current.empty()) {
        result["qualification_validity"] = 2;  // 無効
    } else {
        auto const& r = current[0];
        bool same_card = by_reference ||
                         (as_text(r[0]) == insurer && as_text(r[1]) == symbol && as_text(r[2]) == number && as_text(r[3]) == branch);
        result["qualification_validity"] = same_card ? 1 : 3;  // 1 有効, 3 無効（新しい資格あり）
        result["eligibility"] = json{{"insurer_number", as_text(r[0])}, {"symbol", as_text(r[1])}, {"number", as_text(r[2])},
                                     {"branch", as_text(r[3])}, {"birthdate", as_text(r[4])}, {"name", as_text(r[5])},
                                     {"name_kana", as_text(r[6])}, {"burden_ratio", as_text(r[7])}, {"valid_from", as_text(r[8])},
                                     {"valid_to", is_null(r[9]) ? json(nullptr) : json(as_text(r[9]))}};
        json refs = json::array();
        if (prefetched) {
            if (auto it = prefetch->references.find(person); it != prefetch->references.end())
                for (auto const& ref : it->second) refs.push_back(ref);
        } else {
            for (auto const& row : db_.query("SELECT reference_number FROM reference_numbers WHERE facility_code = $1 AND person_key = $2 ORDER BY registered_at",
                                             {c.facility_code, person}))
                refs.push_back(as_text(row[0]));
        }
        result["reference_numbers"] = refs;
    }
    return log(person);
}

json Service::register_reference_number(Caller const& c, json const& body, int& status) {
    require_facility(c);
    std::string ref = text_field(body, "reference_number");
    std::size_t chars = 0;
    for (char ch : ref) chars += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    if (chars == 0 || chars > 50) throw ClientError(400, "reference_number", "照会番号は1〜50文字です / reference_number is 1..50 characters");
    std::string person;
    if (body.contains("birthdate")) {
        person = find_person(body);
    } else {
        // The 照会番号登録 file carries no Birthdate: the card fields are matched among this facility's
        // consenting patients, and must name exactly one.
        std::string insurer = canonical_insurer_number(text_field(body, "insurer_number"));
        if (auto e = insurer_number_error(insurer); !e.empty()) throw ClientError(400, "insurer_number", e);
        auto r = db_.query("SELECT DISTINCT p.person_key FROM insured_persons p JOIN consents c ON c.person_key = p.person_key "
                           "WHERE c.facility_code = $1 AND c.withdrawn_at IS NULL AND p.insurer_number = $2 AND p.symbol = $3 AND p.number = $4 AND p.branch = $5",
                           {c.facility_code, insurer, normalize_symbol(text_field(body, "symbol")), normalize_symbol(text_field(body, "number")),
                            normalize_symbol(text_field(body, "branch", false))});
        if (r.size() > 1) throw ClientError(409, "birthdate", "記号・番号が複数の方に当たります。生年月日を付けてください / several persons match: add the birthdate");
        if (r.size() == 1) person = as_text(r[0][0]);
    }
    // Only a patient this facility holds a consent for can be given a number: not a way to probe eligibility.
    if (person.empty() || db_.query("SELECT 1 FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                                    {c.facility_code, person}).empty())
        throw ClientError(404, "insurer_number", "この施設の同意がある方が見つかりません / no consenting person of this facility matches");
    return transaction(db_, [&] {
        auto existing = db_.query("SELECT person_key FROM reference_numbers WHERE facility_code = $1 AND reference_number = $2", {c.facility_code, ref});
        if (!existing.empty()) {
            if (as_text(existing[0][0]) != person)
                throw ClientError(409, "reference_number", "この照会番号は別の方に登録済みです / this reference number belongs to another person");
            status = 200;  // the same registration again
            return json{{"reference_number", ref}, {"registered", false}};
        }
        db_.query("INSERT INTO reference_numbers (facility_code, reference_number, person_key, registered_at) VALUES ($1, $2, $3, $4)",
                  {c.facility_code, ref, person, now_iso()});
        status = 201;
        return json{{"reference_number", ref}, {"registered", true}};
    });
}

json Service::register_reference_numbers_csv(Caller const& c, std::string const& csv) {
    require_facility(c);
    json results = json::array();
    int registered = 0, line_no = 0;
    std::istringstream in(csv);
    for (std::string line; std::getline(in, line);) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (line_no == 1 && line.rfind("reference_number", 0) == 0)) continue;
        auto f = split_csv_line(line);
        json row{{"line", line_no}};
        if (f.size() != 6) {
            row["error"] = "6列 (reference_number,insurer_number,symbol,number,branch,birthdate) が必要です / expected 6 columns";
            results.push_back(row);
            continue;
        }
        try {
            int status = 0;
            json r = register_reference_number(c, json{{"reference_number", f[0]}, {"insurer_number", f[1]}, {"symbol", f[2]}, {"number", f[3]},
                                                       {"branch", f[4]}, {"birthdate", f[5]}},
                                               status);
            row["reference_number"] = f[0];
            row["result"] = r["registered"].get<bool>() ? "登録" : "登録済み";
            registered += r["registered"].get<bool>();
        } catch (ClientError const& e) {
            row["reference_number"] = f[0];
            row["error"] = e.what();
            row["field"] = e.field;
        }
        results.push_back(row);
    }
    return json{{"registered", registered}, {"results", results}};
}

json Service::add_medical_record(Caller const& c, json const& body) {
    require_admin(c);
    std::string person = text_field(body, "person_key");
    if (db_.query("SELECT 1 FROM insured_persons WHERE person_key = $1", {person}).empty())
        throw ClientError(400, "person_key", "資格情報がありません / unknown person");
    std::string item = enum_field(*rules_, body, "item", "requested_item");
    std::string on = date_field(body, "recorded_on");
    auto content = body.find("content");
    if (content == body.end() || !content->is_object()) throw ClientError(400, "content", "content はオブジェクトです / content must be an object");
    std::string id = new_id();
    db_.query("INSERT INTO medical_records (id, person_key, item, recorded_on, content_json) VALUES ($1, $2, $3, $4, $5)",
              {id, person, item, on, content->dump()});
    return json{{"id", id}};
}

json Service::view_medical_info(Caller const& c, json const& body) {
    if (c.kind != Caller::Kind::mobile) require_facility(c);
    std::string category = category_field(*rules_, body);
    std::string item = enum_field(*rules_, body, "item", "requested_item");
    // Office terminals name which office terminal they are; a モバイル端末 session is one, whatever it claims,
    // and the rule set decides what that means (medical_info_viewable refuses it).
    std::string terminal = c.kind == Caller::Kind::mobile ? std::string("モバイル端末") : enum_field(*rules_, body, "terminal", "terminal");
    std::string query_date = date_field(body, "query_date");
    std::string person = find_person(body);
    json result{{"allowed", false}};
    auto log = [&](std::string const& reason) {
        db_.query("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                  {new_id(), c.facility_code, now_iso(), person.empty() ? Value(nullptr) : Value(person), item, terminal,
                   std::int64_t(result["allowed"].get<bool>()), reason});
        result["reason"] = reason;
        return result;
    };
    if (person.empty()) return log("該当する資格がありません / no matching eligibility");
    json consent = latest_consent(c.facility_code, person, category);
    if (consent.is_null() || consent["withdrawn"].get<bool>())
        return log(consent.is_null() ? "この施設の同意がありません / no consent registered by this facility"
                                     : "同意は取り消されています / the consent was withdrawn");
    Activation facts(*rules_);
    fill_facts(facts, c, person, consent, category, query_date);
    facts.set_enum("terminal", terminal);
    facts.set_enum("requested_item", item);
    Evaluator& ev = evaluator();
    ev.reset_params();
    ev.begin(facts);
    Outcome decision = ev.evaluate_slot(facts, std::uint32_t(rules_->find_slot("medical_info_viewable")));
    if (decision.status != Status::ok) return log("ルールで判定できませんでした / the rules could not decide");
    result["allowed"] = decision.value != 0;
    std::string reason = ev.render_text(std::int64_t(decision.clause), facts);
    if (decision.value) {
        json records = json::array();
        for (auto const& r : db_.query("SELECT recorded_on, content_json FROM medical_records WHERE person_key = $1 AND item = $2 ORDER BY recorded_on",
                                       {person, item}))
            records.push_back(json{{"recorded_on", as_text(r[0])}, {"content", json::parse(as_text(r[1]))}});
        result["records"] = records;
    }
    return log(reason);
}

json Service::viewing_history(Caller const& c, std::string const& from, std::string const& to) {
    require_facility(c);
    json out = json::array();
    for (auto const& r : db_.query("SELECT at, item, terminal, allowed, reason FROM viewing_log WHERE facility_code = $1 AND at >= $2 AND at <= $3 ORDER BY at, id",
                                   {c.facility_code, from.empty() ? std::string("0000") : from, to.empty() ? std::string("9999") : to}))
        out.push_back(json{{"at", as_text(r[0])}, {"item", as_text(r[1])}, {"terminal", as_text(r[2])}, {"allowed", as_int(r[3]) != 0},
                           {"reason", as_text(r[4])}});
    return out;
}

json Service::withdrawal_lookup(Caller const& c, json const& body) {
    require_facility(c);
    std::string person = find_person(body);
    // Only a person with a consent of this facility is shown: the lookup is not a way to browse eligibility.
    if (person.empty() || db_.query("SELECT 1 FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                                    {c.facility_code, person}).empty())
        throw ClientError(404, "", "この施設の有効な同意がある方が見つかりません / no consenting person of this facility matches");
    auto r = db_.query("SELECT name, name_kana, birthdate FROM insured_persons WHERE person_key = $1 ORDER BY valid_from DESC LIMIT 1", {person});
    json consents = json::array();
    for (auto const& row : db_.query("SELECT visit_kind, first_visit FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL "
                                     "ORDER BY first_visit",
                                     {c.facility_code, person}))
        consents.push_back(json{{"visit_kind", as_text(row[0])}, {"first_visit", as_text(row[1])}});
    return json{{"name", as_text(r[0][0])}, {"name_kana", as_text(r[0][1])}, {"birthdate", as_text(r[0][2])}, {"consents", consents}};
}

json Service::withdraw(Caller const& c, json const& body) {
    require_facility(c);
    if (!bool_field(body, "confirmed", false))
        throw ClientError(400, "confirmed", "本人であることを確認したら confirmed: true を送ってください / send confirmed: true after confirming the person");
    std::string person = find_person(body);
    if (person.empty()) throw ClientError(404, "", "この施設の有効な同意がある方が見つかりません / no consenting person of this facility matches");
    return transaction(db_, [&] {
        auto open = db_.query("SELECT id FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL", {c.facility_code, person});
        if (open.empty()) throw ClientError(404, "", "この施設の有効な同意がある方が見つかりません / no consenting person of this facility matches");
        std::string now = now_iso();
        db_.query("UPDATE consents SET withdrawn_at = $3 WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                  {c.facility_code, person, now});
        return json{{"withdrawn", open.size()}, {"withdrawn_at", now}};
    });
}

namespace {
std::vector<unsigned char> from_hex(std::string const& hex) {
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}
}  // namespace

std::pair<std::uint32_t, std::vector<unsigned char>> Service::current_url_key() {
    return transaction(db_, [&] {
        auto rows = db_.query("SELECT version, key_hex FROM url_keys WHERE retired_at IS NULL ORDER BY version DESC LIMIT 1");
        if (!rows.empty()) return std::make_pair(std::uint32_t(as_int(rows[0][0])), from_hex(as_text(rows[0][1])));
        auto last = db_.query("SELECT COALESCE(MAX(version), 0) FROM url_keys");
        std::uint32_t version = std::uint32_t(as_int(last[0][0]) + 1);
        std::string hex = new_id() + new_id();  // 256 random bits
        db_.query("INSERT INTO url_keys (version, key_hex, created_at) VALUES ($1, $2, $3)", {std::int64_t(version), hex, now_iso()});
        return std::make_pair(version, from_hex(hex));
    });
}

std::string Service::facility_url_text(Caller const& c) {
    require_facility(c);
    auto gen = db_.query("SELECT generation FROM facility_url WHERE facility_code = $1", {c.facility_code});
    std::uint32_t generation = gen.empty() ? 1 : std::uint32_t(as_int(gen[0][0]));
    if (gen.empty())
        db_.query("INSERT INTO facility_url (facility_code, generation, changed_at) VALUES ($1, 1, $2) ON CONFLICT (facility_code) DO NOTHING",
                  {c.facility_code, now_iso()});
    auto [version, key] = current_url_key();
    return public_url_ + "/c/" + seal_url_token(key, version, UrlClaims{c.facility_code, generation});
}

json Service::facility_url(Caller const& c) {
    std::string url = facility_url_text(c);
    auto gen = db_.query("SELECT generation, changed_at FROM facility_url WHERE facility_code = $1", {c.facility_code});
    return json{{"url", url}, {"generation", as_int(gen[0][0])}, {"changed_at", as_text(gen[0][1])}};
}

json Service::change_facility_url(Caller const& c) {
    require_facility(c);
    facility_url_text(c);  // makes sure a row exists
    db_.query("UPDATE facility_url SET generation = generation + 1, changed_at = $2 WHERE facility_code = $1", {c.facility_code, now_iso()});
    return facility_url(c);
}

json Service::rotate_url_key(Caller const& c) {
    require_admin(c);
    return transaction(db_, [&] {
        db_.query("UPDATE url_keys SET retired_at = $1 WHERE retired_at IS NULL", {now_iso()});
        auto [version, key] = current_url_key();
        (void)key;
        return json{{"key_version", version}};
    });
}

Service::TokenCheck Service::check_url_token(std::string const& token) {
    TokenCheck out;
    auto version = url_token_key_version(token);
    if (!version) {
        out.reason = "URL が正しくありません / malformed URL";
        return out;
    }
    auto key = db_.query("SELECT key_hex, retired_at FROM url_keys WHERE version = $1", {std::int64_t(*version)});
    if (key.empty()) {
        out.reason = "URL が正しくありません / unknown URL";
        return out;
    }
    auto claims = open_url_token(from_hex(as_text(key[0][0])), token);
    if (!claims) {
        out.reason = "URL が正しくありません / invalid URL";
        return out;
    }
    if (!is_null(key[0][1])) {
        out.reason = "この URL は使えなくなりました (鍵の更新) / this URL has been revoked";
        return out;
    }
    auto gen = db_.query("SELECT f.name, u.generation FROM facilities f JOIN facility_url u ON u.facility_code = f.code WHERE f.code = $1",
                         {claims->facility_code});
    if (gen.empty()) {
        out.reason = "URL が正しくありません / unknown facility";
        return out;
    }
    if (std::uint32_t(as_int(gen[0][1])) != claims->generation) {
        out.reason = "この URL は変更されました。施設から新しい URL か QR コードを受け取ってください / this URL was replaced by the facility";
        return out;
    }
    out.facility_code = claims->facility_code;
    out.facility_name = as_text(gen[0][0]);
    return out;
}

namespace {
std::string iso_after(int seconds) {
    auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    return buf;
}
}  // namespace

// The calendar day in Japan (JST, UTC+9, no daylight saving): the day a consent is given or a file is received
// is Japanese civil time, whatever the server's clock zone. Timestamps (now_iso) stay in UTC.
std::string today_iso() {
    using namespace std::chrono;
    auto const days_since_epoch = floor<days>(system_clock::now() + hours(9)).time_since_epoch().count();
    return Date::from_days(days_since_epoch).iso();
}

namespace {
}  // namespace

json Service::consent_page(std::string const& token) {
    if (token.empty()) throw ClientError(400, "token", "token が必要です / token is required");
    auto check = check_url_token(token);
    if (!check.facility_code) throw ClientError(404, "token", check.reason);
    auto settings = db_.query(settings_select, {*check.facility_code});
    bool const home = !settings.empty() && as_int(settings[0][1]) != 0;
    bool const online = !settings.empty() && as_int(settings[0][2]) != 0;
    return json{{"facility_name", check.facility_name}, {"facility_kind", facility_kind(*check.facility_code)},
                {"home_care_feature", home}, {"online_feature", online}, {"today", today_iso()}, {"rules", "/web/rules.bundle"}};
}

std::string const& Service::rules_bundle() {
    std::call_once(bundle_once_, [this] { bundle_ = save_bundle(*rules_); });
    return bundle_;
}

std::string Service::facility_of_token(json const& body) {
    auto check = check_url_token(text_field(body, "token"));
    if (!check.facility_code) throw ClientError(404, "token", check.reason);
    return *check.facility_code;
}

json Service::issue_challenge(json const& body) {
    std::string facility = facility_of_token(body);
    std::string id = new_id();
    std::string challenge = new_id() + new_id();  // 32 random bytes, hex
    std::string expires = iso_after(300);
    db_.query("INSERT INTO challenges (id, facility_code, challenge_hex, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
              {id, facility, challenge, now_iso(), expires});
    std::vector<unsigned char> bytes;
    for (std::size_t i = 0; i < challenge.size(); i += 2) bytes.push_back(static_cast<unsigned char>(std::stoi(challenge.substr(i, 2), nullptr, 16)));
    return json{{"challenge_id", id}, {"challenge", base64_encode(bytes)}, {"expires_at", expires}};
}

json Service::visual_passcode(Caller const& c) {
    require_facility(c);
    std::array<unsigned char, 8> r{};
    if (RAND_bytes(r.data(), int(r.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    std::string code;
    for (auto b : r) code += char('0' + b % 10);
    std::string expires = iso_after(900);
    db_.query("INSERT INTO visual_passcodes (facility_code, passcode_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
              {c.facility_code, sha256_hex(c.facility_code + ":" + code), now_iso(), expires});
    return json{{"passcode", code}, {"expires_at", expires}};
}

json Service::register_card(Caller const& c, json const& body) {
    require_admin(c);
    std::string person = text_field(body, "person_key");
    if (db_.query("SELECT 1 FROM insured_persons WHERE person_key = $1", {person}).empty())
        throw ClientError(400, "person_key", "資格情報がありません / unknown person");
    auto fp = certificate_fingerprint(text_field(body, "certificate"));
    if (!fp) throw ClientError(400, "certificate", "証明書を読めません (base64 の DER か PEM) / the certificate does not parse (base64 DER or PEM)");
    db_.query("INSERT INTO card_certificates (fingerprint, person_key, registered_at) VALUES ($1, $2, $3) "
              "ON CONFLICT (fingerprint) DO UPDATE SET person_key = excluded.person_key",
              {*fp, person, now_iso()});
    return json{{"fingerprint", *fp}};
}

json Service::register_consent(json const& body, int& status) {
    std::string facility = facility_of_token(body);
    std::string challenge_id = text_field(body, "challenge_id");
    auto certificate = base64_decode(text_field(body, "certificate"));
    if (!certificate) throw ClientError(400, "certificate", "certificate は base64 です / certificate must be base64");
    std::string method = text_field(body, "identity_method");
    if (method != "暗証番号" && method != "目視確認") throw ClientError(400, "identity_method", "本人確認は 暗証番号 か 目視確認 です / identity_method is 暗証番号 or 目視確認");
    // 暗証番号: the card signed the challenge after the PIN. 目視確認: no PIN, so no signature; the certificate is
    // checked and the office terminal's one-time passcode authorises the visit (interfaces.md section 3).
    std::optional<std::vector<unsigned char>> signature;
    if (method == "暗証番号" || body.contains("signature")) {
        signature = base64_decode(text_field(body, "signature"));
        if (!signature) throw ClientError(400, "signature", "signature は base64 です / signature must be base64");
    }
    std::string kind = enum_field(*rules_, body, "visit_kind", "visit_kind");
    std::string visit_date = body.contains("visit_date") ? date_field(body, "visit_date") : today_iso();
    auto items_it = body.find("items");
    if (items_it == body.end() || !items_it->is_array()) throw ClientError(400, "items", "items (同意する閲覧項目の配列) がありません / items must be an array");
    int item_fact = rules_->find_fact("consented_items");
    std::string list;
    for (auto const& v : *items_it) {
        if (!v.is_string() || rules_->find_enum_value(rules_->facts[std::size_t(item_fact)].type.enum_id, v.get<std::string>()) < 0)
            throw ClientError(400, "items", "不明な閲覧項目です / unknown viewing item");
        list += (list.empty() ? "" : ",") + v.get<std::string>();
    }
    std::string appointment = date_field(body, "appointment_date", false);
    std::string category = this->category(kind);
    if (category == "オンライン診療等" && appointment.empty())
        throw ClientError(400, "appointment_date", "オンライン診療等では診療予約日が必要です / online care needs the appointment date");
    bool continuing = bool_field(body, "continuing_home_care", false);
    std::string request_hash = sha256_hex(body.dump());

    return transaction(db_, [&]() -> json {
        auto ch = db_.query("SELECT facility_code, challenge_hex, expires_at, used_at, request_hash, consent_id FROM challenges WHERE id = $1", {challenge_id});
        if (ch.empty() || as_text(ch[0][0]) != facility) throw ClientError(400, "challenge_id", "チャレンジが見つかりません / unknown challenge");
        if (!is_null(ch[0][3])) {
            // The same registration sent again (a retry after a lost answer) gets the same answer; anything else
            // with a used challenge is a replay.
            if (as_text(ch[0][4]) == request_hash) {
                status = 200;
                return json{{"consent_id", as_text(ch[0][5])}, {"first_visit", visit_date}, {"retry", true}};
            }
            throw ClientError(409, "challenge_id", "このチャレンジは使用済みです (再送は同じ内容でだけ) / the challenge was already used");
        }
        if (as_text(ch[0][2]) < now_iso()) throw ClientError(400, "challenge_id", "チャレンジの有効期限が切れました / the challenge expired");
        std::vector<unsigned char> challenge;
        std::string hex = as_text(ch[0][1]);
        for (std::size_t i = 0; i + 1 < hex.size(); i += 2) challenge.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
        if (card_ca_.empty()) throw ClientError(503, "", "カードの認証局が設定されていません / the card CA is not configured");
        CardCheck card = verify_card_signature(card_ca_, *certificate, challenge, signature ? &*signature : nullptr);
        if (!card.ok) throw ClientError(card.field.empty() ? 503 : 400, card.field, card.error);
        auto holder = db_.query("SELECT person_key FROM card_certificates WHERE fingerprint = $1", {card.fingerprint});
        if (holder.empty()) throw ClientError(400, "certificate", "このカードの資格情報がありません / no eligibility for this card");
        std::string person = as_text(holder[0][0]);

        // The identity method and the service itself are checked against the rule set for that date.
        Activation facts(*rules_);
        facts.set_enum("facility_kind", facility_kind(facility));
        facts.set_date("query_date", *parse_date(visit_date).date);
        facts.set_enum("visit_kind", kind);
        auto settings = db_.query(settings_select, {facility});
        facts.set_bool("feature_enabled", !settings.empty() && as_int(settings[0][category == "オンライン診療等" ? 2 : 1]) != 0);
        Evaluator ev(rules_);
        ev.begin(facts);
        Outcome service = ev.evaluate_slot(facts, std::uint32_t(rules_->find_slot("service_available")));
        if (service.status != Status::ok || !service.value)
            throw ClientError(409, "visit_kind", service.status == Status::ok ? ev.render_text(std::int64_t(service.clause), facts)
                                                                              : "居宅同意取得型を利用できません / service not available");
        int methods_slot = rules_->find_slot("identity_methods");
        Outcome methods = ev.evaluate_slot(facts, std::uint32_t(methods_slot));
        int method_index = rules_->find_enum_value(rules_->slots[std::size_t(methods_slot)].type.enum_id, method);
        if (methods.status != Status::ok || method_index < 0 || !((std::uint64_t(methods.value) >> method_index) & 1u))
            throw ClientError(400, "identity_method",
                              method + " はこの日には使えません: " +
                                  (methods.status == Status::ok ? ev.render_text(std::int64_t(methods.clause), facts) : std::string("判定できません")));
        if (method == "目視確認") {
            std::string passcode = text_field(body, "visual_passcode");
            auto row = db_.query("SELECT expires_at, used_at FROM visual_passcodes WHERE facility_code = $1 AND passcode_hash = $2",
                                 {facility, sha256_hex(facility + ":" + passcode)});
            if (row.empty() || !is_null(row[0][1]) || as_text(row[0][0]) < now_iso())
                throw ClientError(400, "visual_passcode", "目視確認用パスコードが正しくないか、使用済みか、期限切れです / the 目視確認 passcode is wrong, used or expired");
            db_.query("UPDATE visual_passcodes SET used_at = $3 WHERE facility_code = $1 AND passcode_hash = $2",
                      {facility, sha256_hex(facility + ":" + passcode), now_iso()});
        }
        std::string consent_id = new_id();
        db_.query("INSERT INTO consents (id, facility_code, person_key, visit_kind, first_visit, continuing_home_care, identity_method, items, "
                  "appointment_date, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                  {consent_id, facility, person, kind, visit_date, std::int64_t(continuing), method, list,
                   appointment.empty() ? Value(nullptr) : Value(appointment), now_iso()});
        db_.query("UPDATE challenges SET used_at = $2, request_hash = $3, consent_id = $4 WHERE id = $1", {challenge_id, now_iso(), request_hash, consent_id});
        // The first visit's 居宅同意取得型 verification is itself a 資格確認 of the facility: logged.
        db_.query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES ($1, $2, $3, $4, $5, 1, $6)",
                  {new_id(), facility, now_iso(), std::string("資格確認（居宅同意取得型）"), person,
                   json{{"consent_id", consent_id}, {"identity_method", method}, {"visit_kind", kind}, {"visit_date", visit_date}}.dump()});
        status = 201;
        return json{{"consent_id", consent_id}, {"first_visit", visit_date}};
    });
}


json Service::upload_batch(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                           std::string const& csv) {
    std::istringstream in(csv);
    return upload_batch(c, category, query_date, file_identifier, in);
}

json Service::upload_batch(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                           std::istream& csv) {
    require_facility(c);
    bool first = true;
    return upload_batch_stream(c, category, query_date, file_identifier, "csv", [&](json& row) {
        std::string line;
        while (std::getline(csv, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            bool header = first && line.rfind("arbitrary_identifier", 0) == 0;
            first = false;
            if (line.empty() || header) continue;
            // Every line becomes a row, even a malformed one: it gets its own error result.
            auto f = split_csv_line(line);
            row = f.size() == 6 ? json{{"arbitrary_identifier", f[0]}, {"insurer_number", f[1]}, {"symbol", f[2]},
                                       {"number", f[3]}, {"branch", f[4]}, {"birthdate", f[5]}}
                                : json{{"malformed", line.substr(0, 200)}};
            return true;
        }
        return false;
    });
}

json Service::upload_batch_rows(Caller const& c, std::string const& category, std::string const& query_date, std::string const& file_identifier,
                                std::string const& format, std::vector<json> const& rows) {
    std::size_t i = 0;
    return upload_batch_stream(c, category, query_date, file_identifier, format, [&](json& row) {
        if (i == rows.size()) return false;
        row = rows[i++];
        return true;
    });
}

json Service::upload_batch_stream(Caller const& c, std::string const& category, std::string const& query_date_raw,
                                  std::string const& file_identifier, std::string const& format, std::function<bool(json&)> const& next,
                                  bool allow_empty) {
    require_facility(c);
    json meta{{"category", category}, {"query_date", query_date_raw}};
    std::string cat = category_field(*rules_, meta);
    std::string query_date = date_field(meta, "query_date");
    if (file_identifier.size() > 100) throw ClientError(400, "file_identifier", "file_identifier は100文字までです / at most 100 characters");
    char stamp[32];
    auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
    std::string reception = stamp + std::to_string(std::stoull(new_id().substr(0, 12), nullptr, 16) % 1000000 + 1000000).substr(1);
    json accepted = transaction(db_, [&] {
        db_.query("INSERT INTO batch_jobs (reception_number, facility_code, category, query_date, file_identifier, format, total, done, created_at) "
                  "VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7)",
                  {reception, c.facility_code, cat, query_date, file_identifier, format, now_iso()});
        // 100 rows per INSERT: one statement execution instead of a hundred.
        constexpr std::size_t per_statement = 100;
        std::int64_t total = 0;
        std::vector<Value> params;
        auto flush = [&] {
            std::size_t n = (params.size() - 1) / 2;
            if (n == 0) return;
            std::string sql = "INSERT INTO batch_rows (reception_number, row_no, request_json) VALUES ";
            for (std::size_t i = 0; i < n; ++i) sql += (i ? ", ($1, $" : "($1, $") + std::to_string(2 + 2 * i) + ", $" + std::to_string(3 + 2 * i) + ")";
            db_.query(sql, params);
        };
        params.emplace_back(reception);
        json row;
        while (next(row)) {
            if (++total > 200000) throw ClientError(413, "", "20万行までです / at most 200,000 rows");
            params.emplace_back(total);
            params.emplace_back(row.dump());
            if ((params.size() - 1) / 2 == per_statement) {
                flush();
                params.resize(1);
            }
        }
        flush();
        if (total == 0 && !allow_empty) throw ClientError(400, "", "行がありません / the file has no rows");
        db_.query("UPDATE batch_jobs SET total = $2 WHERE reception_number = $1", {reception, total});
        return json{{"reception_number", reception}, {"total", total}, {"status", "処理中"}};
    });
    batch_event("accepted", reception, c.facility_code, accepted["total"].get<std::int64_t>());
    return accepted;
}

namespace {
std::string with_field(ClientError const& e) { return std::string(e.what()) + (e.field.empty() ? "" : " (" + e.field + ")"); }
constexpr char const* another_facility = "MedicalInstitutionCode が証明書の医療機関等コードと違います / the file names another facility";
}  // namespace

// Parses an OQS request file of the caller's facility; on failure the error result to send instead.
std::optional<std::string> Service::oqs_request(Caller const& c, std::string const& xml, BulkUpload& up, int& status, bool single) {
    require_facility(c);
    try {
        up = parse_bulk_upload(xml);
        if (single && up.rows.size() != 1)
            throw ClientError(400, "QualificationConfirmSearchInfo", "単一の資格確認は1件です / a single 資格確認 has one search info");
    } catch (ClientError const& e) {
        status = 400;
        return file_error_result(xml, "", "", with_field(e));
    }
    if (up.facility_code != c.facility_code) {
        status = 403;
        return bulk_upload_result(up, "", "EKY0901", another_facility);
    }
    return std::nullopt;
}

std::string Service::oqs_bulk_upload(Caller const& c, std::string const& xml, int& status) {
    BulkUpload up;
    if (auto error = oqs_request(c, xml, up, status, false)) return *error;
    try {
        json job = upload_batch_rows(c, "訪問診療等", up.query_date, up.file_identifier, "xml", up.rows);
        status = 200;
        return bulk_upload_result(up, job["reception_number"], "", "");
    } catch (ClientError const& e) {
        status = e.status;
        return bulk_upload_result(up, "", "EKY0901", e.what());
    }
}

std::string Service::oqs_consented_upload(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    ConsentedDownload d;
    BulkUpload reply;  // the 01res shape
    try {
        d = parse_consented_download(xml);
    } catch (ClientError const& e) {
        status = 400;
        return file_error_result(xml, "", "", with_field(e));
    }
    reply.encoding = d.encoding;
    reply.facility_code = d.facility_code;
    reply.file_identifier = d.file_identifier;
    if (d.facility_code != c.facility_code) {
        status = 403;
        return bulk_upload_result(reply, "", "EKY0901", another_facility);
    }
    std::string category = d.treatment_flag == 2 ? "訪問診療等" : "オンライン診療等";
    // One row per open consent of this facility in the range; each answered at once with the person's current
    // eligibility on QualificationConfirmationDate and the consent date.
    std::vector<json> rows;
    for (auto const& r : db_.query("SELECT person_key, visit_kind, first_visit FROM consents WHERE facility_code = $1 AND withdrawn_at IS NULL "
                                   "AND first_visit >= $2 AND first_visit <= $3 ORDER BY first_visit, registered_at",
                                   {c.facility_code, d.from, d.to})) {
        if (this->category(as_text(r[1])) != category) continue;
        rows.push_back(json{{"person_key", as_text(r[0])}, {"consent_date", as_text(r[2])}, {"visit_kind", as_text(r[1])}});
    }
    json job = transaction(db_, [&] {
        std::size_t next_row = 0;
        json j = upload_batch_stream(
            c, category, d.query_date, d.file_identifier, d.treatment_flag == 2 ? "hvq" : "onq",
            [&](json& row) {
                if (next_row == rows.size()) return false;
                row = rows[next_row++];
                return true;
            },
            true);
        std::string rn = j["reception_number"];
        std::int64_t n = 0;
        for (auto const& row : rows) {
            json result{{"processing_result_status", 1}, {"allowed", true}, {"consent_date", row["consent_date"]},
                        {"echo", json::array({json::array({"ConsentDate", row["consent_date"].get<std::string>()}),
                                              json::array({"VisitKind", row["visit_kind"].get<std::string>()})})}};
            auto e = db_.query(std::string("SELECT ") + eligibility_columns +
                                   " FROM insured_persons WHERE person_key = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to >= $2) "
                                   "ORDER BY valid_from DESC LIMIT 1",
                               {row["person_key"].get<std::string>(), d.query_date});
            if (e.empty()) {
                result["qualification_validity"] = 2;
            } else {
                auto const& q = e[0];
                result["qualification_validity"] = 1;
                result["eligibility"] = json{{"insurer_number", as_text(q[0])}, {"symbol", as_text(q[1])}, {"number", as_text(q[2])},
                                             {"branch", as_text(q[3])}, {"birthdate", as_text(q[4])}, {"name", as_text(q[5])},
                                             {"name_kana", as_text(q[6])}, {"burden_ratio", as_text(q[7])}, {"valid_from", as_text(q[8])},
                                             {"valid_to", is_null(q[9]) ? json(nullptr) : json(as_text(q[9]))}};
            }
            db_.query("UPDATE batch_rows SET result_json = $3 WHERE reception_number = $1 AND row_no = $2", {rn, ++n, result.dump()});
        }
        db_.query("UPDATE batch_jobs SET total = $2, done = $2, finished_at = $3 WHERE reception_number = $1", {rn, std::int64_t(rows.size()), now_iso()});
        j["total"] = std::int64_t(rows.size());
        return j;
    });
    batch_event("finished", job["reception_number"], c.facility_code, job["total"].get<std::int64_t>());
    status = 200;
    return bulk_upload_result(reply, job["reception_number"], "", "");
}

std::string Service::oqs_reference_number(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    ReferenceRegistration reg;
    try {
        reg = parse_reference_registration(xml);
    } catch (ClientError const& e) {
        status = 400;
        ReferenceRegistration bad;
        bad.encoding = answer_encoding(xml);
        return reference_registration_result(bad, "EKY0901", with_field(e));
    }
    if (reg.facility_code != c.facility_code) {
        status = 403;
        return reference_registration_result(reg, "EKY0901", another_facility);
    }
    try {
        int s = 0;
        register_reference_number(c, reg.request, s);
        status = 200;
        return reference_registration_result(reg, "", "");
    } catch (ClientError const& e) {
        status = 200;  // the file was understood: the refusal is its result
        return reference_registration_result(reg, "EKY0001", with_field(e));
    }
}

std::string Service::oqs_reference_numbers(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    ReferenceRegistrations regs;
    BulkUpload reply;  // the 01res shape
    try {
        regs = parse_reference_registrations(xml);
    } catch (ClientError const& e) {
        status = 400;
        return file_error_result(xml, "", "", with_field(e));
    }
    reply.encoding = regs.encoding;
    reply.facility_code = regs.facility_code;
    reply.file_identifier = regs.file_identifier;
    if (regs.facility_code != c.facility_code) {
        status = 403;
        return bulk_upload_result(reply, "", "EKY0901", another_facility);
    }
    // Registered at once, each item with its own result; the results come with the common 02req download.
    json job = transaction(db_, [&] {
        std::size_t next = 0;
        json j = upload_batch_stream(c, "訪問診療等", today_iso(), regs.file_identifier, "imm", [&](json& row) {
            if (next == regs.requests.size()) return false;
            row = regs.requests[next++];
            return true;
        });
        std::string rn = j["reception_number"];
        std::int64_t n = 0;
        for (auto const& request : regs.requests) {
            json result{{"echo", request["echo"]}, {"registration", false}};
            if (request.contains("malformed")) {
                result["error"] = request["malformed"];
            } else {
                try {
                    int s = 0;
                    register_reference_number(c, request, s);
                    result["registration"] = true;
                } catch (ClientError const& e) {
                    result["error"] = with_field(e);
                }
            }
            db_.query("UPDATE batch_rows SET result_json = $3 WHERE reception_number = $1 AND row_no = $2", {rn, ++n, result.dump()});
        }
        db_.query("UPDATE batch_jobs SET done = total, finished_at = $2 WHERE reception_number = $1", {rn, now_iso()});
        return j;
    });
    batch_event("finished", job["reception_number"], c.facility_code, job["total"].get<std::int64_t>());
    status = 200;
    return bulk_upload_result(reply, job["reception_number"], "", "");
}

std::string Service::oqs_single(Caller const& c, std::string const& xml, int& status) {
    BulkUpload up;
    if (auto error = oqs_request(c, xml, up, status, true)) return *error;
    json const& request = up.rows[0];
    json result;
    try {
        result = reinquire(c, "訪問診療等", request, up.query_date, true);
        result["processing_result_status"] = 1;
    } catch (ClientError const& e) {
        result = json{{"error", e.what()}, {"field", e.field}, {"processing_result_status", 2}};
    }
    result["echo"] = request["echo"];
    status = 200;
    return single_result(up, result);
}

std::string Service::oqs_bulk_download(Caller const& c, std::string const& xml, int& status) {
    require_facility(c);
    BulkDownload d = parse_bulk_download(xml);
    if (d.facility_code != c.facility_code) throw ClientError(403, "MedicalInstitutionCode", another_facility);
    json st = batch_status(c, d.reception_number);
    BulkJobInfo job{d.reception_number, c.facility_code, st["file_identifier"], st["query_date"], st["segment_of_result"] == 1};
    std::vector<json> rows;
    if (job.finished)
        for (auto const& r : db_.query("SELECT result_json FROM batch_rows WHERE reception_number = $1 ORDER BY row_no", {d.reception_number}))
            rows.push_back(json::parse(as_text(r[0])));
    status = 200;
    return bulk_result(job, rows, d.encoding);
}

json Service::batch_status(Caller const& c, std::string const& reception) {
    require_facility(c);
    auto r = db_.query("SELECT total, done, finished_at, file_identifier, query_date, category FROM batch_jobs WHERE reception_number = $1 AND facility_code = $2",
                       {reception, c.facility_code});
    if (r.empty()) throw ClientError(404, "reception_number", "受付番号が見つかりません / unknown reception number");
    bool finished = !is_null(r[0][2]);
    return json{{"reception_number", reception}, {"total", as_int(r[0][0])}, {"done", as_int(r[0][1])},
                {"status", finished ? "正常終了" : "処理中"}, {"segment_of_result", finished ? 1 : 2},
                {"file_identifier", as_text(r[0][3])}, {"query_date", as_text(r[0][4])}, {"category", as_text(r[0][5])}};
}

std::string Service::batch_results(Caller const& c, std::string const& reception) {
    auto next = batch_results_pages(c, reception);
    std::string out;
    for (std::string page = next(); !page.empty(); page = next()) out += page;
    return out;
}

std::function<std::string()> Service::batch_results_pages(Caller const& c, std::string const& reception, int page_rows) {
    json status = batch_status(c, reception);
    if (status["segment_of_result"] != 1) throw ClientError(409, "reception_number", "まだ処理中です / the job is still running");
    auto after = std::make_shared<std::int64_t>(-1);
    return [this, reception, page_rows, after]() {
        std::string out;
        for (auto const& r : db_.query("SELECT row_no, result_json FROM batch_rows WHERE reception_number = $1 AND row_no > $2 "
                                       "ORDER BY row_no LIMIT $3",
                                       {reception, *after, std::int64_t(page_rows)})) {
            json row = json::parse(as_text(r[1]));
            *after = as_int(r[0]);
            row["row"] = *after;
            out += row.dump() + "\n";
        }
        return out;
    };
}

namespace {
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

BatchPrefetch Service::load_prefetch(std::string const& facility, std::string const& query_date, std::vector<Row> const& rows) {
    BatchPrefetch pre;
    pre.facility = facility;
    pre.query_date = query_date;
    // The cards of the chunk, in the canonical form find_person compares (rows with bad fields are left out:
    // they get their own error when answered).
    std::vector<std::array<std::string, 5>> cards;
    for (auto const& r : rows) {
        json req = json::parse(as_text(r[1]));
        if (!req.contains("insurer_number")) continue;
        try {
            std::string insurer = canonical_insurer_number(text_field(req, "insurer_number"));
            if (!insurer_number_error(insurer).empty()) continue;
            cards.push_back({insurer, normalize_symbol(text_field(req, "symbol")), normalize_symbol(text_field(req, "number")),
                             normalize_symbol(text_field(req, "branch", false)), date_field(req, "birthdate")});
        } catch (ClientError const&) {
        }
    }
    constexpr std::size_t group = 100;
    std::set<std::string> persons;
    for (std::size_t at = 0; at < cards.size(); at += group) {
        std::size_t n = std::min(group, cards.size() - at);
        std::vector<Value> params;
        for (std::size_t i = 0; i < n; ++i)
            for (auto const& v : cards[at + i]) params.emplace_back(v);
        for (auto const& r : db_.query("SELECT person_key, insurer_number, symbol, number, branch, birthdate FROM insured_persons "
                                       "WHERE (insurer_number, symbol, number, branch, birthdate) IN (VALUES " + placeholders(n, 5, 1) + ")",
                                       params)) {
            pre.person_by_card.emplace(card_key(as_text(r[1]), as_text(r[2]), as_text(r[3]), as_text(r[4]), as_text(r[5])), as_text(r[0]));
            persons.insert(as_text(r[0]));
        }
    }
    std::vector<std::string> list(persons.begin(), persons.end());
    for (std::size_t at = 0; at < list.size(); at += group) {
        std::size_t n = std::min(group, list.size() - at);
        std::vector<Value> params{facility};
        std::string in;
        for (std::size_t i = 0; i < n; ++i) {
            params.emplace_back(list[at + i]);
            in += (i ? ", $" : "$") + std::to_string(i + 2);
        }
        for (auto r : db_.query(std::string("SELECT person_key, ") + consent_columns + " FROM consents WHERE facility_code = $1 AND person_key IN (" + in +
                                    ") ORDER BY first_visit DESC, registered_at DESC",
                                params)) {
            std::string key = as_text(r[0]);
            r.erase(r.begin());
            pre.consents[key].push_back(std::move(r));
        }
        for (auto const& r : db_.query("SELECT person_key, month FROM claim_reviews WHERE facility_code = $1 AND person_key IN (" + in + ")", params))
            pre.claims[as_text(r[0])].push_back(as_text(r[1]));
        for (auto const& r : db_.query("SELECT person_key, reference_number FROM reference_numbers WHERE facility_code = $1 AND person_key IN (" + in +
                                           ") ORDER BY registered_at",
                                       params))
            pre.references[as_text(r[0])].push_back(as_text(r[1]));
        std::vector<Value> eparams{query_date};
        for (std::size_t i = 0; i < n; ++i) eparams.emplace_back(list[at + i]);
        for (auto r : db_.query(std::string("SELECT person_key, ") + eligibility_columns + " FROM insured_persons WHERE person_key IN (" + in +
                                    ") AND valid_from <= $1 AND (valid_to IS NULL OR valid_to >= $1) ORDER BY valid_from DESC",
                                eparams)) {
            std::string key = as_text(r[0]);
            r.erase(r.begin());
            pre.eligibility[key].push_back(std::move(r));
        }
    }
    return pre;
}

int Service::process_batches(int max_rows, int max_ms) {
    auto jobs = db_.query("SELECT reception_number, facility_code, category, query_date FROM batch_jobs WHERE finished_at IS NULL ORDER BY created_at LIMIT 1");
    if (jobs.empty()) return 0;
    std::string reception = as_text(jobs[0][0]);
    Caller caller;
    caller.kind = Caller::Kind::facility;
    caller.facility_code = as_text(jobs[0][1]);
    caller.subject = "batch " + reception;
    std::string category = as_text(jobs[0][2]), query_date = as_text(jobs[0][3]);
    bool finished = false;
    int answered_rows = transaction(db_, [&] {
        FacilityCache cache{caller.facility_code, facility_kind(caller.facility_code), db_.query(settings_select, {caller.facility_code})};
        chunk_facility = &cache;
        struct Reset {
            ~Reset() { chunk_facility = nullptr; }
        } reset;
        auto rows = db_.query("SELECT row_no, request_json FROM batch_rows WHERE reception_number = $1 AND result_json IS NULL ORDER BY row_no LIMIT $2",
                              {reception, std::int64_t(max_rows)});
        BatchPrefetch pre = load_prefetch(caller.facility_code, query_date, rows);
        prefetch = &pre;
        struct ResetPrefetch {
            ~ResetPrefetch() { prefetch = nullptr; }
        } reset_prefetch;
        auto started = std::chrono::steady_clock::now();
        std::size_t answered = 0;
        for (auto const& r : rows) {
            if (answered > 0 && std::chrono::steady_clock::now() - started > std::chrono::milliseconds(max_ms)) break;
            if (answered >= 50 && requests_waiting()) break;  // interactive requests first
            ++answered;
            json request = json::parse(as_text(r[1]));
            json result;
            if (request.contains("malformed")) {
                result = json{{"error", "6列 (arbitrary_identifier,insurer_number,symbol,number,branch,birthdate) が必要です / expected 6 columns"},
                              {"processing_result_status", 2}};
            } else {
                try {
                    result = reinquire(caller, category, request, query_date, false);
                    result["processing_result_status"] = 1;
                } catch (ClientError const& e) {
                    result = json{{"error", e.what()}, {"field", e.field}, {"processing_result_status", 2}};
                }
                result["arbitrary_identifier"] = request["arbitrary_identifier"];
                if (request.contains("echo")) result["echo"] = request["echo"];
            }
            db_.query("UPDATE batch_rows SET result_json = $3 WHERE reception_number = $1 AND row_no = $2 AND result_json IS NULL",
                      {reception, as_int(r[0]), result.dump()});
        }
        db_.query("UPDATE batch_jobs SET done = (SELECT COUNT(*) FROM batch_rows WHERE reception_number = $1 AND result_json IS NOT NULL) "
                  "WHERE reception_number = $1",
                  {reception});
        if (rows.size() < std::size_t(max_rows) && answered == rows.size()) {
            finished = true;
            db_.query("UPDATE batch_jobs SET finished_at = $2 WHERE reception_number = $1", {reception, now_iso()});
            db_.query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES ($1, $2, $3, $4, NULL, 1, $5)",
                      {new_id(), caller.facility_code, now_iso(), std::string("一括再照会"),
                       json{{"reception_number", reception}, {"rows", as_int(db_.query("SELECT total FROM batch_jobs WHERE reception_number = $1", {reception})[0][0])}}.dump()});
        }
        return int(answered);
    });
    if (finished) batch_event("finished", reception, caller.facility_code);
    return answered_rows;
}

namespace {
struct CheckItem {
    char const* field;
    char const* label;
};
constexpr std::array<CheckItem, 5> device_check_items{{{"os_updated", "OS・ソフトウェアの更新"},
                                                        {"antivirus", "ウイルス対策"},
                                                        {"screen_lock", "画面ロック・パスワード"},
                                                        {"ledger_reviewed", "台帳と利用者の定期確認"},
                                                        {"staff_trained", "職員の教育"}}};
}  // namespace

json Service::add_device(Caller const& c, json const& body) {
    require_facility(c);
    std::string name = text_field(body, "name");
    if (name.empty() || name.size() > 200) throw ClientError(400, "name", "名称は1〜200バイトです / name must be 1..200 bytes");
    std::string kind = text_field(body, "kind");
    if (kind != "スマートフォン" && kind != "タブレット" && kind != "ノートPC")
        throw ClientError(400, "kind", "種類は スマートフォン, タブレット, ノートPC のいずれかです / kind is スマートフォン, タブレット or ノートPC");
    std::string ownership = text_field(body, "ownership");
    if (ownership != "施設所有" && ownership != "個人所有")
        throw ClientError(400, "ownership", "所有は 施設所有 か 個人所有 (BYOD) です / ownership is 施設所有 or 個人所有");
    auto staff = body.find("permitted_staff");
    if (staff == body.end() || !staff->is_array() || staff->empty())
        throw ClientError(400, "permitted_staff", "利用を許可する職員の一覧が必要です / permitted_staff must be a non-empty array");
    for (auto const& s : *staff)
        if (!s.is_string() || s.get<std::string>().empty()) throw ClientError(400, "permitted_staff", "職員名は文字列です / staff names are strings");
    std::string id = new_id();
    db_.query("INSERT INTO devices (id, facility_code, name, kind, ownership, permitted_staff, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
              {id, c.facility_code, name, kind, ownership, staff->dump(), now_iso()});
    return json{{"id", id}};
}

json Service::list_devices(Caller const& c) {
    require_facility(c);
    json out = json::array();
    for (auto const& r : db_.query("SELECT id, name, kind, ownership, permitted_staff, registered_at FROM devices WHERE facility_code = $1 AND retired_at IS NULL "
                                   "ORDER BY registered_at, id",
                                   {c.facility_code})) {
        json d{{"id", as_text(r[0])}, {"name", as_text(r[1])}, {"kind", as_text(r[2])}, {"ownership", as_text(r[3])},
               {"permitted_staff", json::parse(as_text(r[4]))}, {"registered_at", as_text(r[5])}, {"last_check", nullptr}};
        auto last = db_.query("SELECT checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained FROM device_checks "
                              "WHERE device_id = $1 ORDER BY checked_on DESC, recorded_at DESC LIMIT 1",
                              {as_text(r[0])});
        if (!last.empty()) {
            json failed = json::array();
            for (std::size_t i = 0; i < device_check_items.size(); ++i)
                if (!as_int(last[0][2 + i])) failed.push_back(device_check_items[i].label);
            d["last_check"] = json{{"checked_on", as_text(last[0][0])}, {"checker", as_text(last[0][1])}, {"all_passed", failed.empty()}, {"failed", failed}};
        }
        out.push_back(d);
    }
    return out;
}

json Service::add_device_check(Caller const& c, std::string const& device_id, json const& body) {
    require_facility(c);
    if (db_.query("SELECT 1 FROM devices WHERE id = $1 AND facility_code = $2", {device_id, c.facility_code}).empty())
        throw ClientError(404, "device_id", "端末が見つかりません / no such device");
    std::string checked_on = date_field(body, "checked_on");
    std::string checker = text_field(body, "checker");
    if (checker.empty()) throw ClientError(400, "checker", "点検者が必要です / checker is required");
    auto checks = body.find("checks");
    if (checks == body.end() || !checks->is_object()) throw ClientError(400, "checks", "checks (5項目) が必要です / checks is required");
    std::vector<Value> values{new_id(), device_id, checked_on, checker};
    for (auto const& item : device_check_items) {
        auto it = checks->find(item.field);
        if (it == checks->end() || !it->is_boolean())
            throw ClientError(400, std::string("checks.") + item.field, std::string(item.label) + " (true / false) が必要です / checks." + item.field + " is required");
        values.emplace_back(std::int64_t(it->get<bool>()));
    }
    for (auto const& [k, v] : checks->items()) {
        bool known = false;
        for (auto const& item : device_check_items) known = known || k == item.field;
        if (!known) throw ClientError(400, "checks." + k, "不明な点検項目 " + k + " / unknown check " + k);
    }
    values.emplace_back(now_iso());
    db_.query("INSERT INTO device_checks (id, device_id, checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained, recorded_at) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
              values);
    return json{{"id", as_text(values[0])}};
}

json Service::device_checks(Caller const& c, std::string const& device_id) {
    require_facility(c);
    if (db_.query("SELECT 1 FROM devices WHERE id = $1 AND facility_code = $2", {device_id, c.facility_code}).empty())
        throw ClientError(404, "device_id", "端末が見つかりません / no such device");
    json out = json::array();
    for (auto const& r : db_.query("SELECT checked_on, checker, os_updated, antivirus, screen_lock, ledger_reviewed, staff_trained FROM device_checks "
                                   "WHERE device_id = $1 ORDER BY checked_on, recorded_at",
                                   {device_id})) {
        json checks = json::object();
        for (std::size_t i = 0; i < device_check_items.size(); ++i) checks[device_check_items[i].field] = as_int(r[2 + i]) != 0;
        out.push_back(json{{"checked_on", as_text(r[0])}, {"checker", as_text(r[1])}, {"checks", checks}});
    }
    return out;
}

json Service::record_fallback_verification(Caller const& c, json const& body) {
    require_facility(c);
    std::string method = text_field(body, "method");
    if (method != "マイナポータル" && method != "資格情報のお知らせ")
        throw ClientError(400, "method", "方法は マイナポータル か 資格情報のお知らせ です / method is マイナポータル or 資格情報のお知らせ");
    std::string reason = text_field(body, "reason");
    if (reason.empty() || reason.size() > 500) throw ClientError(400, "reason", "カードを使えなかった理由が必要です / reason is required (≤ 500 bytes)");
    std::string verified_on = date_field(body, "verified_on");
    std::string ratio = text_field(body, "burden_ratio");
    if (ratio != "010" && ratio != "020" && ratio != "030") throw ClientError(400, "burden_ratio", "負担割合は 010, 020, 030 のいずれかです / burden_ratio is 010, 020 or 030");
    std::string person = find_person(body);  // validates the identifiers; empty when unknown here
    std::string id = new_id();
    transaction(db_, [&] {
        db_.query("INSERT INTO fallback_verifications (id, facility_code, person_key, method, reason, verified_on, insurer_number, symbol, number, branch, "
                  "birthdate, burden_ratio, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                  {id, c.facility_code, person.empty() ? Value(nullptr) : Value(person), method, reason, verified_on,
                   canonical_insurer_number(text_field(body, "insurer_number")), normalize_symbol(text_field(body, "symbol")),
                   normalize_symbol(text_field(body, "number")), normalize_symbol(text_field(body, "branch", false)), date_field(body, "birthdate"),
                   ratio, now_iso()});
        db_.query("INSERT INTO inquiry_log (id, facility_code, at, kind, person_key, allowed, detail_json) VALUES ($1, $2, $3, $4, $5, 1, $6)",
                  {new_id(), c.facility_code, now_iso(), "資格確認（" + method + "）", person.empty() ? Value(nullptr) : Value(person),
                   json{{"verification_id", id}, {"reason", reason}, {"verified_on", verified_on}}.dump()});
    });
    return json{{"id", id}, {"method", method}};
}

json Service::inquiry_history(Caller const& c, std::string const& from, std::string const& to) {
    require_facility(c);
    json out = json::array();
    for (auto const& r : db_.query("SELECT at, kind, allowed, detail_json FROM inquiry_log WHERE facility_code = $1 AND at >= $2 AND at <= $3 ORDER BY at, id",
                                   {c.facility_code, from.empty() ? std::string("0000") : from, to.empty() ? std::string("9999") : to}))
        out.push_back(json{{"at", as_text(r[0])}, {"kind", as_text(r[1])}, {"allowed", as_int(r[2]) != 0}, {"detail", json::parse(as_text(r[3]))}});
    return out;
}

}  // namespace kyotaku::server
