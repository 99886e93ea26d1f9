#include "formats/eligibility_json.hpp"

#include "core/codes.hpp"

#include <charconv>

namespace kyotaku::server {

namespace {
using json = nlohmann::json;

json eligibility_json(EligibilityRecord const& e) {
    json out{{"insurer_number", e.insurer},   {"symbol", e.symbol},       {"number", e.number},
             {"branch", e.branch},            {"birthdate", e.birthdate}, {"name", e.name},
             {"name_kana", e.name_kana},      {"burden_ratio", e.burden_ratio}, {"valid_from", e.valid_from},
             {"valid_to", e.valid_to ? json(*e.valid_to) : json(nullptr)},
             {"card_classification", e.card_classification}, {"personal_family", e.personal_family}};
    if (auto lost = disqualification_date(e)) out["disqualification_date"] = *lost;
    if (e.valid_to && e.loss_reason) out["loss_reason"] = *e.loss_reason;
    return out;
}
std::optional<std::string> text_of(json const& o, char const* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
}

EligibilityRecord eligibility_of(json const& e) {
    EligibilityRecord r;
    r.insurer = e.at("insurer_number").get<std::string>();
    r.symbol = e.at("symbol").get<std::string>();
    r.number = e.at("number").get<std::string>();
    r.branch = e.at("branch").get<std::string>();
    r.birthdate = e.at("birthdate").get<std::string>();
    r.name = e.at("name").get<std::string>();
    r.name_kana = e.at("name_kana").get<std::string>();
    r.burden_ratio = e.at("burden_ratio").get<std::string>();
    r.valid_from = e.at("valid_from").get<std::string>();
    r.valid_to = text_of(e, "valid_to");
    if (auto v = text_of(e, "card_classification")) r.card_classification = *v;
    if (auto v = text_of(e, "personal_family")) r.personal_family = *v;
    r.loss_reason = text_of(e, "loss_reason");
    return r;
}
}  // namespace

json eligibility_answer_json(EligibilityAnswer const& a) {
    json out{{"allowed", a.allowed},
             {"qualification_validity", a.qualification_validity ? json(*a.qualification_validity) : json(nullptr)},
             {"reason", a.reason.ja}};
    if (!a.reason.en.empty()) out["reason_en"] = a.reason.en;
    if (a.basis) {
        out["visit_kind"] = a.basis->visit_kind;
        out["first_visit"] = a.basis->first_visit;
    }
    if (a.window_end) out["window_end"] = *a.window_end;
    if (a.eligibility) out["eligibility"] = eligibility_json(*a.eligibility);
    if (a.reference_numbers) out["reference_numbers"] = *a.reference_numbers;
    if (a.query_date) out["query_date"] = *a.query_date;
    return out;
}

EligibilityAnswer eligibility_answer_of(json const& a) {
    EligibilityAnswer out;
    out.allowed = a.value("allowed", false);
    if (auto it = a.find("qualification_validity"); it != a.end() && it->is_number())
        out.qualification_validity = it->get<int>();
    out.reason = Message{text_of(a, "reason").value_or(""), text_of(a, "reason_en").value_or("")};
    if (auto kind = text_of(a, "visit_kind")) {
        out.basis = ConsentRecord{};
        out.basis->visit_kind = *kind;
        out.basis->first_visit = text_of(a, "first_visit").value_or("");
    }
    out.window_end = text_of(a, "window_end");
    if (auto it = a.find("eligibility"); it != a.end() && it->is_object()) out.eligibility = eligibility_of(*it);
    if (auto it = a.find("reference_numbers"); it != a.end() && it->is_array())
        out.reference_numbers = it->get<std::vector<std::string>>();
    out.query_date = text_of(a, "query_date");
    return out;
}

namespace {
// `s` as nlohmann's dump (error_handler_t::replace) writes it: a valid UTF-8 text with nothing to escape as it is,
// any other through that dump itself (its escapes and its replacement of bad bytes).
void append_text(std::string& out, std::string_view s) {
    bool plain = true, ascii = true;
    for (char c : s) {
        auto const b = static_cast<unsigned char>(c);
        if (b < 0x20 || c == '"' || c == '\\') {
            plain = false;
            break;
        }
        ascii = ascii && b < 0x80;
    }
    if (plain && (ascii || valid_utf8(s))) {
        out += '"';
        out += s;
        out += '"';
        return;
    }
    out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}
// `"key":` (a comma before it unless it is the object's first member).
std::string& key(std::string& out, std::string_view name) {
    if (out.back() != '{') out += ',';
    out += '"';
    out += name;
    out += "\":";
    return out;
}
void text(std::string& out, std::string_view name, std::string_view value) { append_text(key(out, name), value); }
void optional_text(std::string& out, std::string_view name, std::optional<std::string> const& value) {
    if (value) text(out, name, *value);
    else key(out, name) += "null";
}
}  // namespace

std::string eligibility_answer_text(EligibilityAnswer const& a) {
    // The members in nlohmann's order (its objects are std::maps: keys in byte order).
    std::string out;
    out.reserve(a.eligibility ? 640 : 256);
    out += '{';
    key(out, "allowed") += a.allowed ? "true" : "false";
    if (a.eligibility) {
        EligibilityRecord const& e = *a.eligibility;
        key(out, "eligibility") += '{';
        text(out, "birthdate", e.birthdate);
        text(out, "branch", e.branch);
        text(out, "burden_ratio", e.burden_ratio);
        text(out, "card_classification", e.card_classification);
        if (auto lost = disqualification_date(e)) text(out, "disqualification_date", *lost);
        text(out, "insurer_number", e.insurer);
        if (e.valid_to && e.loss_reason) text(out, "loss_reason", *e.loss_reason);
        text(out, "name", e.name);
        text(out, "name_kana", e.name_kana);
        text(out, "number", e.number);
        text(out, "personal_family", e.personal_family);
        text(out, "symbol", e.symbol);
        text(out, "valid_from", e.valid_from);
        optional_text(out, "valid_to", e.valid_to);
        out += '}';
    }
    if (a.basis) text(out, "first_visit", a.basis->first_visit);
    if (a.qualification_validity) {
        char digits[16];
        key(out, "qualification_validity")
            .append(digits, std::to_chars(digits, digits + sizeof digits, *a.qualification_validity).ptr);
    } else {
        key(out, "qualification_validity") += "null";
    }
    if (a.query_date) text(out, "query_date", *a.query_date);
    text(out, "reason", a.reason.ja);
    if (!a.reason.en.empty()) text(out, "reason_en", a.reason.en);
    if (a.reference_numbers) {
        key(out, "reference_numbers") += '[';
        for (std::size_t i = 0; i < a.reference_numbers->size(); ++i) {
            if (i) out += ',';
            append_text(out, (*a.reference_numbers)[i]);
        }
        out += ']';
    }
    if (a.basis) text(out, "visit_kind", a.basis->visit_kind);
    if (a.window_end) text(out, "window_end", *a.window_end);
    out += '}';
    return out;
}

json card_json(Card const& card) {
    return json{{"insurer_number", card.insurer},
                {"symbol", card.symbol},
                {"number", card.number},
                {"branch", card.branch},
                {"birthdate", card.birthdate}};
}

}  // namespace kyotaku::server
