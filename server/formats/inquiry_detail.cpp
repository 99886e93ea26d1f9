#include "formats/inquiry_detail.hpp"

#include "kyotaku/jsonl.hpp"

#include <charconv>

namespace kyotaku::server {

namespace {
// `"key":` then the value's writer; a comma before every member but the first.
class ObjectWriter {
public:
    explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
    ~ObjectWriter() { out_ += '}'; }
    ObjectWriter(ObjectWriter const&) = delete;
    ObjectWriter& operator=(ObjectWriter const&) = delete;
    std::string& key(std::string_view name) {
        if (!first_) out_ += ',';
        first_ = false;
        append_json_string(out_, name);
        out_ += ':';
        return out_;
    }
    void text(std::string_view name, std::string_view value) { append_json_string(key(name), value); }
    void number(std::string_view name, std::int64_t value) {
        char digits[24];
        auto const end = std::to_chars(digits, digits + sizeof digits, value).ptr;
        key(name).append(digits, end);
    }

private:
    std::string& out_;
    bool first_ = true;
};

char const* by_name(EligibilityDetail::By by) {
    switch (by) {
        case EligibilityDetail::By::card: return "card";
        case EligibilityDetail::By::reference_number: return "reference_number";
        case EligibilityDetail::By::consent: return "consent";
    }
    return "card";
}
}  // namespace

std::string eligibility_detail_json(EligibilityDetail const& d) {
    std::string out;
    out.reserve(384);
    {
        ObjectWriter o(out);
        o.key("allowed") += d.allowed ? "true" : "false";
        o.text("by", by_name(d.by));
        o.text("category", d.category);
        if (d.consent_id) o.text("consent_id", *d.consent_id);
        // The patient as the caller named it; a consented-patient download's row, by the consent it echoes.
        if (!d.consent_date.empty()) {
            ObjectWriter p(o.key("patient"));
            p.text("consent_date", d.consent_date);
            p.text("visit_kind", d.visit_kind);
        } else if (d.card) {
            ObjectWriter p(o.key("patient"));
            p.text("birthdate", d.card->birthdate);
            p.text("branch", d.card->branch);
            p.text("insurer_number", d.card->insurer);
            p.text("number", d.card->number);
            p.text("symbol", d.card->symbol);
        } else if (d.by == EligibilityDetail::By::reference_number) {
            ObjectWriter p(o.key("patient"));
            p.text("reference_number", d.reference_number);
        }
        if (d.qualification_validity) o.number("qualification_validity", *d.qualification_validity);
        else o.key("qualification_validity") += "null";
        if (!d.query_date.empty()) o.text("query_date", d.query_date);
        if (d.reason) o.text("reason", *d.reason);
        if (d.row) o.number("row", d.row);
    }
    return out;
}

}  // namespace kyotaku::server
