// 再照会 and the eligibility query (資格情報の照会), 薬剤情報等の閲覧, 照会番号, レセプト審査結果, and the histories.
// Every answer about a patient's eligibility goes through answer_eligibility, every viewing through the decision
// path: the rules decide on the server's date from the server's records.
#include "usecases/inquiry.hpp"

#include "formats/inquiry_detail.hpp"
#include "storage/reference_numbers.hpp"
#include "usecases/desk_util.hpp"

#include <nlohmann/json.hpp>
#include <date/date.h>

#include <algorithm>
#include <array>
#include <sstream>

namespace kyotaku::server {

// Stored details (資格確認履歴, hand-off choices, device staff lists) are JSON text.
using json = nlohmann::json;

namespace {

std::string checked_category(Context& x, std::string const& category) {
    auto rules = x.rules();
    if (rules->value_index_of_slot(rules->slot.category, category) < 0)
        throw invalid("category", "診療区分は 訪問診療等 か オンライン診療等 です",
                      "category is 訪問診療等 or オンライン診療等");
    return category;
}

}  // namespace

Lookup Lookup::from(std::optional<std::string> const& reference_number, CardFields const& card) {
    Lookup l;
    if (reference_number) {
        std::pair<char const*, std::optional<std::string> const*> const others[] = {{"insurer_number",
                                                                                     &card.insurer_number},
                                                                                    {"symbol", &card.symbol},
                                                                                    {"number", &card.number},
                                                                                    {"branch", &card.branch},
                                                                                    {"birthdate", &card.birthdate}};
        for (auto const& [other, value] : others)
            if (*value)
                throw invalid(other, "照会番号で照会するときは保険者番号等を送りません",
                              std::string("send either reference_number or the card fields, not ") + other);
        l.reference_number = *reference_number;
        check_line(l.reference_number, "reference_number", 50);
    } else {
        l.card = card_from(card);
    }
    return l;
}

EligibilityAnswer InquiryDesk::answer_eligibility(Context& x, DecisionPath& decisions, Records& records,
                                                  FacilityInfo const& facility, Lookup const& who,
                                                  std::string const& category, std::string const& requested_date,
                                                  Logging const* log) {
    EligibilityAnswer a;
    std::string person = !who.person.empty() ? who.person
                         : who.card        ? records.person_by_card(*who.card)
                                           : records.person_by_reference(facility.code, who.reference_number);
    // 資格確認履歴's detail (formats/inquiry_detail.hpp): how the caller named the patient (what it sent, or the
    // consent it holds), what was answered and why.
    EligibilityDetail detail;
    detail.category = category;
    detail.by = !who.person.empty() ? EligibilityDetail::By::consent
                : who.card          ? EligibilityDetail::By::card
                                    : EligibilityDetail::By::reference_number;
    detail.card = who.card;
    if (!who.card && who.person.empty()) detail.reference_number = who.reference_number;
    detail.query_date = requested_date;
    auto done = [&](std::string const& p) {
        if (log) {
            detail.allowed = a.allowed;
            detail.qualification_validity = a.qualification_validity;
            if (a.basis) detail.consent_id = a.basis->id;
            detail.row = log->row;
            detail.consent_date = log->consent_date;
            detail.visit_kind = log->visit_kind;
            InquiryEntry entry{facility.code, log->actor, log->kind, p, a.allowed, eligibility_detail_json(detail),
                               log->reception};
            if (log->into) log->into->push_back(std::move(entry));
            else log_inquiry(x, entry);
        }
        return a;
    };
    // A 資格確認日 the rules do not take is refused before the person is looked at: the same for everyone.
    if (auto refused = decisions.confirmation_refused(requested_date)) {
        a.reason = refused->reason;
        detail.reason = a.reason.ja;
        return done(person);
    }
    if (person.empty() && !who.card) {
        a.qualification_validity = 4;  // 該当資格なし: the facility's own 照会番号 names no one
        a.reason = Message{"この施設の照会番号ではありません", ""};
        return done("");
    }
    // An unknown person is answered exactly as a person without this facility's consent: the route is not a way
    // to learn whether someone exists.
    Verdict v =
        person.empty() ? DecisionPath::no_consent() : decisions.eligibility(facility, person, category, requested_date);
    a.allowed = v.allowed;
    a.reason = v.reason;
    a.basis = v.basis;
    a.window_end = v.window_end;
    // A 資格確認日 before the consent the answer rests on would show insurance from before the relationship.
    if (v.allowed && !requested_date.empty() && v.basis && requested_date < v.basis->first_visit) {
        a.allowed = false;
        a.reason =
            Message{"資格確認日 " + requested_date + " は同意 (初回訪問 " + v.basis->first_visit + ") より前です",
                    "the 資格確認日 is before the consent"};
    }
    detail.reason = a.reason.ja;
    if (!a.allowed) return done(person);  // refused: nothing about the person's insurance is disclosed

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
        a.qualification_validity = same_card ? 1 : 3;  // 1 有効, 3 無効（新しい資格あり）
        a.eligibility = *valid;
    } else {
        a.qualification_validity = 2;  // 無効
        if (ended) a.eligibility = *ended;
    }
    a.reference_numbers = records.reference_numbers(facility.code, person);
    a.query_date = on;
    return done(person);
}

EligibilityAnswer InquiryDesk::reinquiry(Caller const& c, EligibilityQuery const& q) {
    require_facility(c);
    std::string category = checked_category(x_, q.category);
    // how far ahead: the rules'
    std::string requested = q.query_date ? iso_date("query_date", *q.query_date) : std::string();
    Lookup who = Lookup::from(q.reference_number, q.card);
    // the facility and the person: one statement
    PersonRecords records(x_.db, c.facility_code, who.card, who.reference_number);
    FacilityInfo facility = x_.facility(c, records);
    DecisionPath decisions(x_.rules(), records, x_.today());
    Logging const log{"再照会", c.subject};
    return answer_eligibility(x_, decisions, records, facility, who, category, requested, &log);
}

MedicalInfoAnswer InquiryDesk::view_medical_info(Caller const& c, MedicalInfoQuery const& q) {
    if (c.kind != Caller::Kind::mobile) require_facility(c);
    auto rules = x_.rules();
    std::string category = checked_category(x_, q.category);
    std::string item = enum_value(*rules->program, "item", "requested_item", q.item);
    Lookup who = Lookup::from(q.reference_number, q.card);
    // The terminal is the caller's (its certificate; a URL-token session is a モバイル端末), never the body's.
    std::string const terminal = c.kind == Caller::Kind::mobile ? std::string("モバイル端末") : c.terminal;
    DbRecords records(x_.db);
    DecisionPath decisions(rules, records, x_.today());
    MedicalInfoAnswer result;
    std::string person;
    auto log = [&](std::string const& reason) {
        InquiryLog(x_.db).append_viewing(ViewingEntry{c.facility_code, person, item, terminal, result.allowed, reason},
                                         x_.now());
        result.reason = reason;
        return result;
    };
    // A terminal the rules refuse whatever the rest (モバイル端末) learns nothing about the person or a consent.
    if (auto refused = decisions.viewing_refused_for_terminal(terminal, item)) return log(refused->reason.ja);
    FacilityInfo facility = x_.facility(c);
    person =
        who.card ? records.person_by_card(*who.card) : records.person_by_reference(facility.code, who.reference_number);
    // An unknown person is answered as one without this facility's consent (not a way to learn who exists).
    Verdict v =
        person.empty() ? DecisionPath::no_consent() : decisions.viewing(facility, person, category, item, terminal);
    result.allowed = v.allowed;
    if (v.allowed) {
        // What the patient's records hold up to today, never later entries.
        result.records = MedicalRecords(x_.db).up_to(person, item, decisions.today().iso());
    }
    return log(v.reason.ja);
}

ReferenceRegistered InquiryDesk::register_reference_number(Caller const& c, ReferenceRegistrationRequest const& r) {
    require_facility(c);
    std::string const& ref = r.reference_number;
    if (ref.empty()) throw invalid("reference_number", "照会番号がありません", "reference_number is empty");
    check_text(ref, "reference_number", 50);
    // A number is one line of visible text: no tab or line break (which a line-based file would split), not blanks
    // only.
    if (ref.find_first_of("\t\r\n") != std::string::npos)
        throw invalid("reference_number", "照会番号にタブや改行は使えません",
                      "reference_number holds a tab or a line break");
    std::string visible = ref;
    for (std::string const blank : {" ", "\u3000"})
        for (std::size_t at; (at = visible.find(blank)) != std::string::npos;) visible.erase(at, blank.size());
    if (visible.empty()) throw invalid("reference_number", "照会番号が空白だけです", "reference_number is blank");
    DbRecords records(x_.db);
    ReferenceNumbers numbers(x_.db);
    std::string person;
    if (r.card.birthdate) {
        person = records.person_by_card(card_from(r.card));
    } else {
        // The 照会番号登録 file carries no Birthdate: the card fields are matched among this facility's consenting
        // patients, and must name exactly one.
        std::string insurer = canonical_insurer_number(required("insurer_number", r.card.insurer_number));
        if (auto e = insurer_number_error(insurer, "insurer_number")) throw *e;
        auto const persons =
            numbers.consenting_persons(c.facility_code, insurer, normalize_symbol(r.card.symbol.value_or("")),
                                       normalize_symbol(required("number", r.card.number)),
                                       normalize_symbol(r.card.branch.value_or("")));
        if (persons.size() > 1)
            throw conflict("birthdate", "記号・番号が複数の方に当たります。生年月日を付けてください",
                           "several persons match: add the birthdate");
        if (persons.size() == 1) person = persons[0];
    }
    // Only a patient this facility holds a consent for can be given a number: not a way to probe eligibility.
    if (person.empty() || records.consents(c.facility_code, person).open.empty())
        throw not_found("insurer_number", "この施設の同意がある方が見つかりません",
                        "no consenting person of this facility matches");
    return transaction(x_.db, [&] {
        if (auto const holder = numbers.holder(c.facility_code, ref)) {
            if (*holder != person)
                throw conflict("reference_number", "この照会番号は別の方に登録済みです",
                               "this reference number belongs to another person");
            return ReferenceRegistered{ref, false};  // the same registration again
        }
        numbers.add(c.facility_code, ref, person, x_.now());
        return ReferenceRegistered{ref, true};
    });
}

ReferenceImport InquiryDesk::register_reference_numbers_csv(Caller const& c, std::string const& csv) {
    require_facility(c);
    if (!valid_utf8(csv)) throw invalid("", "CSV が UTF-8 ではありません", "the CSV is not valid UTF-8");
    ReferenceImport out;
    int line_no = 0;
    std::istringstream in(csv);
    // One transaction: each row has its own result, and a crash registers all of them or none.
    transaction(x_.db, [&] {
        for (std::string line; std::getline(in, line);) {
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty() || (line_no == 1 && line.rfind("reference_number", 0) == 0)) continue;
            auto f = split_csv_line(line);
            ReferenceImport::Line row{line_no, {}, {}, {}, {}};
            // The file has no quoting (a quoted "Q\n1" would be read as two rows, registering 1"): a line with a double
            // quote is refused, naming its line and the field the quote is in.
            if (auto quoted = std::find_if(f.begin(), f.end(),
                                           [](std::string const& v) { return v.find('"') != std::string::npos; });
                quoted != f.end()) {
                static constexpr std::array<char const*, 6> columns{"reference_number", "insurer_number", "symbol",
                                                                    "number",           "branch",         "birthdate"};
                auto const at = std::size_t(quoted - f.begin());
                row.field = at < columns.size() ? columns[at] : "";
                row.error = Message{std::to_string(line_no) +
                                        " 行目に引用符 (\") があります: この CSV は引用符で囲んだ項目を読みません "
                                        "(照会番号にカンマや改行は使えません)",
                                    "line " + std::to_string(line_no) +
                                        " holds a double quote: this CSV has no quoted fields (a reference number "
                                        "holds no comma or line break)"};
                out.results.push_back(std::move(row));
                continue;
            }
            if (f.size() != 6) {
                row.error = Message{"6列 (reference_number,insurer_number,symbol,number,branch,birthdate) が必要です",
                                    "expected 6 columns"};
                out.results.push_back(std::move(row));
                continue;
            }
            row.reference_number = utf8_prefix(f[0], 200);
            try {
                bool const registered =
                    register_reference_number(c, {f[0], CardFields{f[1], f[2], f[3], f[4], f[5]}}).registered;
                row.result = registered ? "登録" : "登録済み";
                out.registered += registered;
            } catch (Error const& e) {
                row.error = e.message;
                row.field = e.field;
            }
            out.results.push_back(std::move(row));
        }
    });
    return out;
}

namespace {

// A history's page checked: its bounds, its size, and where the cursor left off (the time and id of the last entry
// of the previous page; "" before the first).
// A history bound as a caller writes it → the stored timestamps' form (iso_timestamp), compared as text: the first
// instant it includes (`to`: the first one after it). Both bounds are inclusive to the precision written: a date is
// a day in Japan (JST, the server's calendar), whole; a date-time (YYYY-MM-DDTHH:MM:SS[.ffffff]) is UTC unless it
// ends in Z or an offset (+09:00), whole to the second when it has no fraction. Anything else is a 400 naming `field`.
std::string history_bound(std::string const& text, char const* field, bool upper) {
    using namespace std::chrono;
    auto const refuse = [&] {
        return invalid(field,
                       std::string(field) + " は日付 (YYYY-MM-DD: 日本時間の日) か日時 (YYYY-MM-DDTHH:MM:SS、Z や "
                                            "+09:00 の時差つき。なければ UTC) です",
                       std::string(field) + " is a date (YYYY-MM-DD, a day in Japan) or a date-time "
                                            "(YYYY-MM-DDTHH:MM:SS, with Z or an offset such as +09:00; UTC without)");
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
        } else if (stamp.size() > 6 && (stamp[stamp.size() - 6] == '+' || stamp[stamp.size() - 6] == '-' ||
                                        stamp[stamp.size() - 6] == ' ')) {
            offset = stamp.substr(stamp.size() - 6);
            if (offset[0] == ' ') offset[0] = '+';  // a + left unescaped in the query decodes as a space
            stamp.resize(stamp.size() - 6);
        }
        if (stamp.size() < 19 || stamp[10] != 'T' || (stamp.size() > 19 && (stamp[19] != '.' || stamp.size() > 26)))
            throw refuse();
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

LogPage page_query(HistoryPage const& p) {
    LogPage q{p.from.empty() ? std::string("0000") : history_bound(p.from, "from", false),
              p.to.empty() ? std::string("9999") : history_bound(p.to, "to", true), "", "", history_page};
    auto digits = [](std::string const& t, std::size_t from = 0) {
        return t.size() > from &&
               std::all_of(t.begin() + std::ptrdiff_t(from), t.end(), [](char c) { return c >= '0' && c <= '9'; });
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
        std::string const at = bar == std::string::npos ? "" : p.after.substr(0, bar),
                          id = bar == std::string::npos ? "" : p.after.substr(bar + 1);
        bool const ok =
            !at.empty() && at.size() <= 40 && id.size() == 32 &&
            std::all_of(at.begin(), at.end(),
                        [](char c) {
                            return (c >= '0' && c <= '9') || c == 'T' || c == 'Z' || c == ':' || c == '.' || c == '-';
                        }) &&
            std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
        if (!ok)
            throw invalid("after", "続きの位置 (after) が正しくありません。前のページの next をそのまま渡してください",
                          "after is not a cursor: pass the previous page's \"next\" as it is");
        q.after_at = at;
        q.after_id = id;
    }
    return q;
}

}  // namespace

HistoryEntries<InquiryLogEntry> InquiryDesk::inquiry_history(Caller const& c, HistoryPage const& page,
                                                             std::optional<CardFields> const& patient) {
    require_facility(c);
    // One patient's entries, however each route named them (card, 照会番号, consent): by the server's person. A card
    // that names no one has none, exactly like a person this facility never asked about.
    std::optional<std::string> person;
    if (patient) {
        person = DbRecords(x_.db).person_by_card(card_from(*patient));
        if (person->empty()) person = "-";
    }
    return InquiryLog(x_.db).inquiries(c.facility_code, page_query(page), person);
}

HistoryEntries<ViewingLogEntry> InquiryDesk::viewing_history(Caller const& c, HistoryPage const& page) {
    require_facility(c);
    return InquiryLog(x_.db).viewings(c.facility_code, page_query(page));
}

}  // namespace kyotaku::server
