// The baseline of `kyotaku eval`'s throughput (scripts/bench, section 2): what a programmer would write by hand to
// answer ONE decision from the same JSON Lines — simdjson On-Demand over each line (the same 1 MiB line reader as
// `kyotaku eval`), the re-inquiry rule of rules/30_reinquiry.rules written in C++ with the engine's calendar
// functions, and {"id":…,"reinquiry_allowed":…} written per line. `kyotaku eval` answers every decision of the
// rule set (with reasons, versions and missing facts) from the same input; the bench prints the ratio of the two.
//   handwritten_eval < facts.jsonl > answers.jsonl
#include "kyotaku/calendar.hpp"
#include "kyotaku/engine.hpp"
#include "kyotaku/jsonl.hpp"

#include <simdjson.h>

#include <cstdio>
#include <string>
#include <string_view>

using namespace kyotaku;

namespace {

struct Facts {
    int facility = -1;  // 0 医科 / 歯科 / 薬局, 1 訪問看護ステーション
    int visit = -1;     // 0 再照会できる区分, 1 往診, 2 オンライン診療等
    std::int64_t first = 0, query = 0;
    int cont = -1, feature = -1;
    bool first_ok = false, query_ok = false, claims_ok = false;
    MonthBits claims;
};

int facility_of(std::string_view s) {
    if (s == "医科" || s == "歯科" || s == "薬局") return 0;
    if (s == "訪問看護ステーション") return 1;
    return -1;
}

int visit_of(std::string_view s) {
    if (s == "往診") return 1;
    if (s == "オンライン診療" || s == "オンライン服薬指導") return 2;
    if (s == "訪問診療" || s == "訪問看護" || s == "歯科訪問診療" || s == "訪問薬剤管理指導" ||
        s == "訪問リハビリテーション" || s == "訪問栄養食事指導" || s == "訪問歯科衛生指導")
        return 0;
    return -1;
}

std::optional<std::int64_t> month_of(std::string_view t) {
    if (t.size() != 7 || t[4] != '-') return std::nullopt;
    for (std::size_t i : {0, 1, 2, 3, 5, 6})
        if (unsigned(t[i]) - '0' >= 10u) return std::nullopt;
    int y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] - '0');
    int m = (t[5] - '0') * 10 + (t[6] - '0');
    if (m < 1 || m > 12) return std::nullopt;
    return std::int64_t(y) * 12 + (m - 1);
}

// rules/30_reinquiry.rules, decision reinquiry_allowed (with service_available and the window it depends on).
bool reinquiry_allowed(Facts const& f) {
    static std::int64_t const pre_medical = Date::from_ymd(2023, 11, 30)->days(),
                              pre_nurse = Date::from_ymd(2024, 2, 1)->days();
    std::int64_t const pre = f.facility == 1 ? pre_nurse : pre_medical;
    if (f.query < pre || !f.feature) return false;  // not service_available
    if (f.visit == 2) return false;
    if (f.visit == 1) return f.cont == 1;
    if (f.first < pre || f.query < f.first) return false;
    Date const first = Date::from_days(f.first);
    if (f.query <= month_end(period_end(first, 3, FirstDay::excluded)).days()) return true;
    std::int64_t const first_month = Month::of(first).index();
    std::int64_t const from = f.claims.has(first_month) ? first_month : first_month + 1;
    std::int64_t const last = Month::of(Date::from_days(f.query)).index() - 2;
    return from <= last && f.claims.all(from, last);
}

}  // namespace

int main() {
    simdjson::ondemand::parser parser;
    LineReader reader(stdin, simdjson::SIMDJSON_PADDING);
    std::string out;
    out.reserve(LineReader::chunk * 2);
    std::string_view line;
    bool too_long = false;
    Facts f;
    while (reader.next(line, too_long)) {
        if (too_long || line.empty()) continue;
        f.facility = f.visit = f.cont = f.feature = -1;
        f.first_ok = f.query_ok = f.claims_ok = false;
        std::string_view id = "null";
        bool bad = false;
        simdjson::ondemand::document doc;
        simdjson::ondemand::object obj;
        if (parser.iterate(simdjson::padded_string_view(line.data(), line.size(), reader.readable_from(line)))
                .get(doc) ||
            doc.get_object().get(obj)) {
            bad = true;
        } else {
            for (auto field : obj) {
                std::string_view key, s;
                if (field.unescaped_key().get(key)) {
                    bad = true;
                    break;
                }
                auto value = field.value();
                if (key == "id") {
                    id = value.raw_json_token();  // echoed as written
                    while (!id.empty() && (id.back() == ' ' || id.back() == ',')) id.remove_suffix(1);
                } else if (key == "facility_kind") {
                    if (!value.get_string().get(s)) f.facility = facility_of(s);
                } else if (key == "visit_kind") {
                    if (!value.get_string().get(s)) f.visit = visit_of(s);
                } else if (key == "first_visit" || key == "query_date") {
                    std::optional<Date> d;
                    if (!value.get_string().get(s)) d = parse_iso_date_fast(s);
                    if (!d) bad = true;
                    else if (key == "first_visit") f.first = d->days(), f.first_ok = true;
                    else f.query = d->days(), f.query_ok = true;
                } else if (key == "continuing_home_care" || key == "feature_enabled") {
                    bool b;
                    if (value.get_bool().get(b)) bad = true;
                    else (key == "feature_enabled" ? f.feature : f.cont) = b;
                } else if (key == "reviewed_claim_months") {
                    f.claims.clear();
                    simdjson::ondemand::array arr;
                    if (value.get_array().get(arr)) {
                        bad = true;
                    } else {
                        f.claims_ok = true;
                        for (auto item : arr) {
                            std::optional<std::int64_t> m;
                            if (!item.get_string().get(s)) m = month_of(s);
                            if (!m || !f.claims.set(*m)) {
                                bad = true;
                                break;
                            }
                        }
                    }
                }
                if (bad) break;
            }
        }
        out += "{\"id\":";
        out += id;
        if (bad || f.facility < 0 || f.visit < 0) {
            out += ",\"error\":\"bad line\"}\n";
        } else if (!f.first_ok || !f.query_ok || f.cont < 0 || f.feature < 0 || !f.claims_ok) {
            out += ",\"reinquiry_allowed\":null}\n";
        } else {
            out += reinquiry_allowed(f) ? ",\"reinquiry_allowed\":true}\n" : ",\"reinquiry_allowed\":false}\n";
        }
        if (out.size() >= LineReader::chunk) {
            std::fwrite(out.data(), 1, out.size(), stdout);
            out.clear();
        }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}
