// 再照会 and the eligibility query (資格情報の照会), 薬剤情報等の閲覧, 照会番号, レセプト審査結果, and the histories.
// Every answer about a patient's eligibility goes through answer_eligibility, every viewing through the decision
// path: the rules decide on the server's date from the server's records.
#include "usecases/desk_util.hpp"

#include <date/date.h>

#include <algorithm>
#include <array>
#include <sstream>

namespace kyotaku::server {

namespace {

std::string category_of(Context& x, Fields const& f) {
    std::string category = f.text("category");
    auto rules = x.rules();
    if (rules->value_index_of_slot(rules->slot.category, category) < 0)
        throw invalid("category", "診療区分は 訪問診療等 か オンライン診療等 です", "category is 訪問診療等 or オンライン診療等");
    return category;
}

json eligibility_json(EligibilityRecord const& e) {
    json out{{"insurer_number", e.insurer},   {"symbol", e.symbol},       {"number", e.number},
             {"branch", e.branch},            {"birthdate", e.birthdate}, {"name", e.name},
             {"name_kana", e.name_kana},      {"burden_ratio", e.burden_ratio}, {"valid_from", e.valid_from},
             {"valid_to", e.valid_to ? json(*e.valid_to) : json(nullptr)},
             {"card_classification", e.card_classification}, {"personal_family", e.personal_family}};
    if (e.valid_to) {
        // 資格喪失日 (DisqualificationDate) is the day after the last day the insurance was valid.
        if (auto last = parse_iso_date_fast(*e.valid_to)) out["disqualification_date"] = Date::from_days(last->days() + 1).iso();
        if (e.loss_reason) out["loss_reason"] = *e.loss_reason;
    }
    return out;
}

}  // namespace

Lookup Lookup::from(Fields const& f) {
    Lookup l;
    if (f.has("reference_number")) {
        for (char const* other : {"insurer_number", "symbol", "number", "branch", "birthdate"})
            if (f.has(other))
                throw invalid(other, "照会番号で照会するときは保険者番号等を送りません", std::string("send either reference_number or the card fields, not ") + other);
        l.reference_number = f.text("reference_number");
        check_text(l.reference_number, "reference_number", 50);
    } else {
        l.card = card_from(f);
    }
    return l;
}

json InquiryDesk::answer_eligibility(Context& x, DecisionPath& decisions, Records& records, FacilityInfo const& facility, Lookup const& who,
                                     std::string const& category, std::string const& requested_date, Logging const* log) {
    json result{{"allowed", false}, {"qualification_validity", nullptr}};
    std::string person = !who.person.empty() ? who.person
                         : who.card        ? records.person_by_card(*who.card)
                                           : records.person_by_reference(facility.code, who.reference_number);
    json detail{{"category", category}, {"by", !who.person.empty() ? "consent" : who.card ? "card" : "reference_number"}};
    // How the caller named the patient (what it sent, or the consent it holds): what the history shows of whom.
    if (who.card)
        detail["patient"] = card_json(*who.card);
    else if (who.person.empty())
        detail["patient"] = json{{"reference_number", who.reference_number}};
    if (!requested_date.empty()) detail["query_date"] = requested_date;
    auto done = [&](std::string const& p) {
        if (log) {
            detail["allowed"] = result["allowed"];
            detail["qualification_validity"] = result["qualification_validity"];
            detail.update(log->extra);
            InquiryEntry entry{facility.code, log->actor, log->kind, p, result["allowed"].get<bool>(), detail, log->reception};
            if (log->into) log->into->push_back(std::move(entry));
            else log_inquiry(x, entry);
        }
        return result;
    };
    // A 資格確認日 the rules do not take is refused before the person is looked at: the same for everyone.
    if (auto refused = decisions.confirmation_refused(requested_date)) {
        result["reason"] = refused->reason.ja;
        result["reason_en"] = refused->reason.en;
        detail["reason"] = refused->reason.ja;
        return done(person);
    }
    if (person.empty() && !who.card) {
        result["qualification_validity"] = 4;  // 該当資格なし: the facility's own 照会番号 names no one
        result["reason"] = "この施設の照会番号ではありません";
        return done("");
    }
    // An unknown person is answered exactly as a person without this facility's consent: the route is not a way
    // to learn whether someone exists.
    Verdict v = person.empty() ? DecisionPath::no_consent() : decisions.eligibility(facility, person, category, requested_date);
    result["allowed"] = v.allowed;
    result["reason"] = v.reason.ja;
    if (!v.reason.en.empty()) result["reason_en"] = v.reason.en;
    if (v.basis) {
        result["visit_kind"] = v.basis->visit_kind;
        result["first_visit"] = v.basis->first_visit;
        detail["consent_id"] = v.basis->id;
    }
    if (v.window_end) result["window_end"] = *v.window_end;
    detail["reason"] = v.reason.ja;
    // A 資格確認日 before the consent the answer rests on would show insurance from before the relationship.
    if (v.allowed && !requested_date.empty() && v.basis && requested_date < v.basis->first_visit) {
        result["allowed"] = false;
        result["reason"] = "資格確認日 " + requested_date + " は同意 (初回訪問 " + v.basis->first_visit + ") より前です";
        result["reason_en"] = "the 資格確認日 is before the consent";
        detail["reason"] = result["reason"];
    }
    if (!result["allowed"].get<bool>()) return done(person);  // refused: nothing about the person's insurance is disclosed

    // Which insurance period to show: the one valid on the 資格確認日 (today unless the request names an earlier
    // day), following a change of insurer; when none is valid then, the one that ended, with its loss.
    std::string const on = requested_date.empty() ? decisions.today().iso() : requested_date;
    auto periods = records.eligibility(person);
    EligibilityRecord const* valid = nullptr;
    EligibilityRecord const* ended = nullptr;
    for (auto const& e : periods) {
        if (e.valid_from <= on && (!e.valid_to || *e.valid_to >= on)) {
            if (!valid) valid = &e;
        } else if (e.valid_to && *e.valid_to < on && (!ended || *e.valid_to > *ended->valid_to)) {
            ended = &e;
        }
    }
    if (valid) {
        bool same_card = !who.card || (valid->insurer == who.card->insurer && valid->symbol == who.card->symbol &&
                                       valid->number == who.card->number && valid->branch == who.card->branch);
        result["qualification_validity"] = same_card ? 1 : 3;  // 1 有効, 3 無効（新しい資格あり）
        result["eligibility"] = eligibility_json(*valid);
    } else {
        result["qualification_validity"] = 2;  // 無効
        if (ended) result["eligibility"] = eligibility_json(*ended);
    }
    result["reference_numbers"] = records.reference_numbers(facility.code, person);
    result["query_date"] = on;
    return done(person);
}

json InquiryDesk::reinquiry(Caller const& c, json const& body) {
    require_facility(c);
    Fields f(body, {"category", "reference_number", "insurer_number", "symbol", "number", "branch", "birthdate", "query_date"});
    std::string category = category_of(x_, f);
    std::string requested = f.optional_date("query_date");  // how far ahead: the rules', in answer_eligibility
    Lookup who = Lookup::from(f);
    PersonRecords records(x_.db, c.facility_code, who.card, who.reference_number);  // the facility and the person: one statement
    FacilityInfo facility = x_.facility(c, records);
    DecisionPath decisions(x_.rules(), records, x_.today());
    Logging const log{"再照会", c.subject};
    return answer_eligibility(x_, decisions, records, facility, who, category, requested, &log);
}

json InquiryDesk::view_medical_info(Caller const& c, json const& body) {
    if (c.kind != Caller::Kind::mobile) require_facility(c);
    Fields f(body, {"category", "item", "reference_number", "insurer_number", "symbol", "number", "branch", "birthdate"});
    auto rules = x_.rules();
    std::string category = category_of(x_, f);
    std::string item = f.enum_value(*rules->program, "item", "requested_item");
    Lookup who = Lookup::from(f);
    // The terminal is the caller's (its certificate; a URL-token session is a モバイル端末), never the body's.
    std::string const terminal = c.kind == Caller::Kind::mobile ? std::string("モバイル端末") : c.terminal;
    DbRecords records(x_.db);
    DecisionPath decisions(rules, records, x_.today());
    json result{{"allowed", false}};
    std::string person;
    auto log = [&](std::string const& reason) {
        x_.db.append("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                     {new_id(), c.facility_code, x_.now(), person.empty() ? Value(nullptr) : Value(person), item, terminal,
                      std::int64_t(result["allowed"].get<bool>()), reason});
        result["reason"] = reason;
        return result;
    };
    // A terminal the rules refuse whatever the rest (モバイル端末) learns nothing about the person or a consent.
    if (auto refused = decisions.viewing_refused_for_terminal(terminal, item)) return log(refused->reason.ja);
    FacilityInfo facility = x_.facility(c);
    person = who.card ? records.person_by_card(*who.card) : records.person_by_reference(facility.code, who.reference_number);
    // An unknown person is answered as one without this facility's consent (not a way to learn who exists).
    Verdict v = person.empty() ? DecisionPath::no_consent() : decisions.viewing(facility, person, category, item, terminal);
    result["allowed"] = v.allowed;
    if (v.allowed) {
        // What the patient's records hold up to today, never later entries.
        json out = json::array();
        for (auto const& r : x_.db.query("SELECT recorded_on, content_json FROM medical_records WHERE person_key = $1 AND item = $2 AND recorded_on <= $3 "
                                         "ORDER BY recorded_on, id",
                                         {person, item, decisions.today().iso()}))
            out.push_back(json{{"recorded_on", as_text(r[0])}, {"content", json::parse(as_text(r[1]))}});
        result["records"] = out;
    }
    return log(v.reason.ja);
}

json InquiryDesk::register_reference_number(Caller const& c, json const& body, int& status) {
    require_facility(c);
    Fields f(body, {"reference_number", "insurer_number", "symbol", "number", "branch", "birthdate"});
    std::string ref = f.text("reference_number");
    if (ref.empty()) throw invalid("reference_number", "照会番号がありません", "reference_number is empty");
    check_text(ref, "reference_number", 50);
    // A number is one line of visible text: no tab or line break (which a line-based file would split), not blanks only.
    if (ref.find_first_of("\t\r\n") != std::string::npos)
        throw invalid("reference_number", "照会番号にタブや改行は使えません", "reference_number holds a tab or a line break");
    std::string visible = ref;
    for (std::string const blank : {" ", "\u3000"})
        for (std::size_t at; (at = visible.find(blank)) != std::string::npos;) visible.erase(at, blank.size());
    if (visible.empty()) throw invalid("reference_number", "照会番号が空白だけです", "reference_number is blank");
    DbRecords records(x_.db);
    std::string person;
    if (f.has("birthdate")) {
        person = records.person_by_card(card_from(f));
    } else {
        // The 照会番号登録 file carries no Birthdate: the card fields are matched among this facility's consenting
        // patients, and must name exactly one.
        std::string insurer = canonical_insurer_number(f.text("insurer_number"));
        if (auto e = insurer_number_error(insurer, "insurer_number")) throw *e;
        auto r = x_.db.query("SELECT DISTINCT p.person_key FROM insured_persons p JOIN consents c ON c.person_key = p.person_key "
                             "WHERE c.facility_code = $1 AND c.withdrawn_at IS NULL AND p.insurer_number = $2 AND p.symbol = $3 AND p.number = $4 AND p.branch = $5",
                             {c.facility_code, insurer, normalize_symbol(f.optional_text("symbol")), normalize_symbol(f.text("number")),
                              normalize_symbol(f.optional_text("branch"))});
        if (r.size() > 1) throw conflict("birthdate", "記号・番号が複数の方に当たります。生年月日を付けてください", "several persons match: add the birthdate");
        if (r.size() == 1) person = as_text(r[0][0]);
    }
    // Only a patient this facility holds a consent for can be given a number: not a way to probe eligibility.
    if (person.empty() || records.consents(c.facility_code, person).open.empty())
        throw not_found("insurer_number", "この施設の同意がある方が見つかりません", "no consenting person of this facility matches");
    return transaction(x_.db, [&] {
        auto existing = x_.db.query("SELECT person_key FROM reference_numbers WHERE facility_code = $1 AND reference_number = $2", {c.facility_code, ref});
        if (!existing.empty()) {
            if (as_text(existing[0][0]) != person)
                throw conflict("reference_number", "この照会番号は別の方に登録済みです", "this reference number belongs to another person");
            status = 200;  // the same registration again
            return json{{"reference_number", ref}, {"registered", false}};
        }
        x_.db.query("INSERT INTO reference_numbers (facility_code, reference_number, person_key, registered_at) VALUES ($1, $2, $3, $4)",
                    {c.facility_code, ref, person, x_.now()});
        status = 201;
        return json{{"reference_number", ref}, {"registered", true}};
    });
}

json InquiryDesk::register_reference_numbers_csv(Caller const& c, std::string const& csv) {
    require_facility(c);
    if (!valid_utf8(csv)) throw invalid("", "CSV が UTF-8 ではありません", "the CSV is not valid UTF-8");
    json results = json::array();
    int registered = 0, line_no = 0;
    std::istringstream in(csv);
    // One transaction: each row has its own result, and a crash registers all of them or none.
    transaction(x_.db, [&] {
        for (std::string line; std::getline(in, line);) {
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty() || (line_no == 1 && line.rfind("reference_number", 0) == 0)) continue;
            auto f = split_csv_line(line);
            json row{{"line", line_no}};
            // The file has no quoting (a quoted "Q\n1" would be read as two rows, registering 1"): a line with a double
            // quote is refused, naming its line and the field the quote is in.
            if (auto quoted = std::find_if(f.begin(), f.end(), [](std::string const& v) { return v.find('"') != std::string::npos; }); quoted != f.end()) {
                static constexpr std::array<char const*, 6> columns{"reference_number", "insurer_number", "symbol", "number", "branch", "birthdate"};
                auto const at = std::size_t(quoted - f.begin());
                row["field"] = at < columns.size() ? columns[at] : "";
                row["error"] = Message{std::to_string(line_no) + " 行目に引用符 (\") があります: この CSV は引用符で囲んだ項目を読みません (照会番号にカンマや改行は使えません)",
                                       "line " + std::to_string(line_no) + " holds a double quote: this CSV has no quoted fields (a reference number holds no comma or line break)"}
                                   .text();
                results.push_back(row);
                continue;
            }
            if (f.size() != 6) {
                row["error"] =
                    Message{"6列 (reference_number,insurer_number,symbol,number,branch,birthdate) が必要です",
                            "expected 6 columns"}
                        .text();
                results.push_back(row);
                continue;
            }
            row["reference_number"] = utf8_prefix(f[0], 200);
            try {
                int status = 0;
                json r = register_reference_number(c, json{{"reference_number", f[0]}, {"insurer_number", f[1]}, {"symbol", f[2]}, {"number", f[3]},
                                                           {"branch", f[4]}, {"birthdate", f[5]}},
                                                   status);
                row["result"] = r["registered"].get<bool>() ? "登録" : "登録済み";
                registered += r["registered"].get<bool>();
            } catch (Error const& e) {
                row["error"] = e.what();
                row["field"] = e.field;
            }
            results.push_back(row);
        }
    });
    return json{{"registered", registered}, {"results", results}};
}

namespace {

// A history's page checked: its bounds, its size, and where the cursor left off (the time and id of the last entry
// of the previous page; "" before the first).
struct PageQuery {
    std::string from, to, after_at, after_id;  // from: the first instant included; to: the first instant after the page
    int limit = history_page;
};

// A history bound as a caller writes it → the stored timestamps' form (iso_timestamp), compared as text: the first
// instant it includes (`to`: the first one after it). Both bounds are inclusive to the precision written: a date is
// a day in Japan (JST, the server's calendar), whole; a date-time (YYYY-MM-DDTHH:MM:SS[.ffffff]) is UTC unless it
// ends in Z or an offset (+09:00), whole to the second when it has no fraction. Anything else is a 400 naming `field`.
std::string history_bound(std::string const& text, char const* field, bool upper) {
    using namespace std::chrono;
    auto const refuse = [&] {
        return invalid(field, std::string(field) + " は日付 (YYYY-MM-DD: 日本時間の日) か日時 (YYYY-MM-DDTHH:MM:SS、Z や +09:00 の時差つき。なければ UTC) です",
                       std::string(field) + " is a date (YYYY-MM-DD, a day in Japan) or a date-time (YYYY-MM-DDTHH:MM:SS, with Z or an offset such as +09:00; UTC without)");
    };
    if (text.size() > 40) throw refuse();
    sys_time<microseconds> first;
    microseconds whole{1};
    if (text.size() == 10) {
        date::local_days day;
        std::istringstream in(text);
        in >> date::parse("%F", day);
        if (in.fail() || in.peek() != std::char_traits<char>::eof()) throw refuse();
        first = sys_time<microseconds>(day.time_since_epoch()) - hours(9);  // 00:00 JST
        whole = days(1);
    } else {
        std::string stamp = text, offset;  // the date-time, and its offset (+09:00) when it has one
        if (!stamp.empty() && (stamp.back() == 'Z' || stamp.back() == 'z')) {
            stamp.pop_back();
        } else if (stamp.size() > 6 && (stamp[stamp.size() - 6] == '+' || stamp[stamp.size() - 6] == '-' || stamp[stamp.size() - 6] == ' ')) {
            offset = stamp.substr(stamp.size() - 6);
            if (offset[0] == ' ') offset[0] = '+';  // a + left unescaped in the query decodes as a space
            stamp.resize(stamp.size() - 6);
        }
        if (stamp.size() < 19 || stamp[10] != 'T' || (stamp.size() > 19 && (stamp[19] != '.' || stamp.size() > 26))) throw refuse();
        std::istringstream in(stamp + offset);
        in >> date::parse(offset.empty() ? "%FT%T" : "%FT%T%Ez", first);  // the offset taken off: UTC
        if (in.fail() || in.peek() != std::char_traits<char>::eof()) throw refuse();
        if (stamp.size() == 19) whole = seconds(1);
    }
    // Before every entry or after any (a year such as 4048, which the clock's nanoseconds cannot hold): as text.
    sys_time<microseconds> const bound = upper ? first + whole : first;
    if (bound < date::sys_days(date::year{1970} / 1 / 1)) return "0000";
    if (bound >= date::sys_days(date::year{2200} / 1 / 1)) return "9999";
    return iso_timestamp(time_point_cast<system_clock::duration>(bound));
}

PageQuery page_query(HistoryPage const& p) {
    PageQuery q{p.from.empty() ? std::string("0000") : history_bound(p.from, "from", false),
                p.to.empty() ? std::string("9999") : history_bound(p.to, "to", true), "", "", history_page};
    auto digits = [](std::string const& t, std::size_t from = 0) {
        return t.size() > from && std::all_of(t.begin() + std::ptrdiff_t(from), t.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!p.limit.empty()) {
        if (!digits(p.limit) || p.limit.size() > 4 || std::stoi(p.limit) < 1 || std::stoi(p.limit) > history_page_max)
            throw invalid("limit", "件数は 1 から " + std::to_string(history_page_max) + " までの数です",
                          "limit is a whole number from 1 to " + std::to_string(history_page_max));
    }
    if (!p.limit.empty()) q.limit = std::stoi(p.limit);
    if (!p.after.empty()) {
        // The cursor a page gave as "next": the last entry's time, "_", its id (32 hex digits).
        auto const bar = p.after.rfind('_');
        std::string const at = bar == std::string::npos ? "" : p.after.substr(0, bar), id = bar == std::string::npos ? "" : p.after.substr(bar + 1);
        bool const ok = !at.empty() && at.size() <= 40 && id.size() == 32 &&
                        std::all_of(at.begin(), at.end(), [](char c) { return (c >= '0' && c <= '9') || c == 'T' || c == 'Z' || c == ':' || c == '.' || c == '-'; }) &&
                        std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
        if (!ok) throw invalid("after", "続きの位置 (after) が正しくありません。前のページの next をそのまま渡してください",
                               "after is not a cursor: pass the previous page's \"next\" as it is");
        q.after_at = at;
        q.after_id = id;
    }
    return q;
}

// One page: `columns` of `table`, the facility's entries in the page's bounds after its cursor, in (at, id) order;
// {"entries": […], "next": the cursor of the next page, or null on the last}.
// `person`, when given, keeps one person's entries.
json page_of_history(Database& db, char const* table, char const* columns, std::string const& facility, HistoryPage const& page,
                     json (*entry)(Row const&), std::optional<std::string> const& person = std::nullopt) {
    PageQuery const q = page_query(page);
    std::vector<Value> params{facility, q.from, q.to, q.after_at, q.after_id};
    if (person) params.emplace_back(*person);
    auto rows = db.query(std::string("SELECT ") + columns + ", at, id FROM " + table +
                             " WHERE facility_code = $1 AND at >= $2 AND at < $3 AND (at > $4 OR (at = $4 AND id > $5))" +
                             (person ? " AND person_key = $6" : "") + " ORDER BY at, id LIMIT " + std::to_string(q.limit + 1),
                         params);
    json out{{"entries", json::array()}, {"next", nullptr}};
    for (std::size_t i = 0; i < rows.size() && i < std::size_t(q.limit); ++i) out["entries"].push_back(entry(rows[i]));
    if (rows.size() > std::size_t(q.limit)) {
        Row const& last = rows[std::size_t(q.limit) - 1];
        out["next"] = as_text(last[last.size() - 2]) + "_" + as_text(last[last.size() - 1]);
    }
    return out;
}

}  // namespace

json InquiryDesk::inquiry_history(Caller const& c, HistoryPage const& page, json const& patient) {
    require_facility(c);
    // One patient's entries, however each route named them (card, 照会番号, consent): by the server's person. A card
    // that names no one has none, exactly like a person this facility never asked about.
    std::optional<std::string> person;
    if (!patient.empty()) {
        person = DbRecords(x_.db).person_by_card(card_from(Fields(patient, {"insurer_number", "symbol", "number", "branch", "birthdate"})));
        if (person->empty()) person = "-";
    }
    return page_of_history(
        x_.db, "inquiry_log", "at, kind, allowed, detail_json, actor, reception_number", c.facility_code, page,
        [](Row const& r) {
            json detail = json::parse(as_text(r[3]));
            json entry{{"at", as_text(r[0])},
                       {"kind", as_text(r[1])},
                       {"allowed", as_int(r[2]) != 0},
                       {"actor", is_null(r[4]) ? json(nullptr) : json(as_text(r[4]))},
                       {"reception_number", is_null(r[5]) ? json(nullptr) : json(as_text(r[5]))},
                       {"patient", detail.contains("patient") ? detail["patient"] : json(nullptr)}};
            entry["detail"] = std::move(detail);
            return entry;
        },
        person);
}

json InquiryDesk::viewing_history(Caller const& c, HistoryPage const& page) {
    require_facility(c);
    return page_of_history(x_.db, "viewing_log", "at, item, terminal, allowed, reason", c.facility_code, page, [](Row const& r) {
        return json{{"at", as_text(r[0])}, {"item", as_text(r[1])}, {"terminal", as_text(r[2])}, {"allowed", as_int(r[3]) != 0},
                    {"reason", as_text(r[4])}};
    });
}

// 同意取消照会 (通知 別添3 「継続的な訪問診療等の終了時に行うこと」): an office terminal of the facility — 職員 or 管理者,
// the quick guides name 資格確認端末等 and no role — looks the person up among the facility's open consents, confirms,
// and withdraws. Both steps are in 資格確認履歴 with the certificate that took them.
json WithdrawalDesk::lookup(Caller const& c, json const& body) {
    require_facility(c);
    Fields f(body, {"insurer_number", "symbol", "number", "branch", "birthdate"});
    DbRecords records(x_.db);
    Card const card = card_from(f);
    std::string person = records.person_by_card(card);
    auto state = person.empty() ? ConsentState{} : records.consents(c.facility_code, person);
    // Only a person with an open consent of this facility is shown: the lookup is not a way to browse eligibility.
    if (state.open.empty()) throw not_found("", "この施設の有効な同意がある方が見つかりません", "no consenting person of this facility matches");
    auto periods = records.eligibility(person);
    json consents = json::array();
    for (auto it = state.open.rbegin(); it != state.open.rend(); ++it)
        consents.push_back(json{{"visit_kind", it->visit_kind}, {"first_visit", it->first_visit}});
    // The lookup shows the person's name: a disclosure, logged with who asked.
    log_inquiry(x_, InquiryEntry{c.facility_code, c.subject, "同意取消照会", person, true, json{{"patient", card_json(card)}, {"consents", consents.size()}}});
    return json{{"name", periods.front().name}, {"name_kana", periods.front().name_kana}, {"birthdate", periods.front().birthdate}, {"consents", consents}};
}

json WithdrawalDesk::withdraw(Caller const& c, json const& body) {
    require_facility(c);
    Fields f(body, {"insurer_number", "symbol", "number", "branch", "birthdate", "confirmed"});
    if (!f.boolean("confirmed", false))
        throw invalid("confirmed", "本人であることを確認したら confirmed: true を送ってください", "send confirmed: true after confirming the person");
    Card const card = card_from(f);
    std::string person = DbRecords(x_.db).person_by_card(card);
    return transaction(x_.db, [&] {
        auto open = person.empty() ? std::vector<Row>{}
                                   : x_.db.query("SELECT id FROM consents WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                                                 {c.facility_code, person});
        if (open.empty()) throw not_found("", "この施設の有効な同意がある方が見つかりません", "no consenting person of this facility matches");
        std::string now = x_.now();
        x_.db.query("UPDATE consents SET withdrawn_at = $3, withdrawn_by = $4 WHERE facility_code = $1 AND person_key = $2 AND withdrawn_at IS NULL",
                    {c.facility_code, person, now, c.subject});
        log_inquiry(x_, InquiryEntry{c.facility_code, c.subject, "同意取消", person, true, json{{"patient", card_json(card)}, {"consents", open.size()}}});
        return json{{"withdrawn", open.size()}, {"withdrawn_at", now}, {"withdrawn_by", c.subject}};
    });
}

}  // namespace kyotaku::server
