#include "formats/batch_rows.hpp"

#include "formats/eligibility_json.hpp"

#include <charconv>
#include <stdexcept>

namespace kyotaku::server {

namespace {
using json = nlohmann::json;

// --- JSON: answers as the NDJSON route shows them; what earlier versions stored ------------------------------------

json echo_json(Echo const& echo) {
    json out = json::array();
    for (auto const& [name, value] : echo) out.push_back(json::array({name, value}));
    return out;
}

std::optional<Echo> echo_of(json const& o) {
    auto it = o.find("echo");
    if (it == o.end() || !it->is_array()) return std::nullopt;
    Echo out;
    for (auto const& pair : *it)
        if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string())
            out.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    return out;
}

std::optional<std::string> text_of(json const& o, char const* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
}

CardFields card_of(json const& o) {
    return {text_of(o, "insurer_number"), text_of(o, "symbol"), text_of(o, "number"), text_of(o, "branch"),
            text_of(o, "birthdate")};
}

// --- requests and answers (the compact form) ----------------------------------------------------------------------
// A version mark ("K1"), then the kind (a request: q a query, u an unread row, c a consented patient, g a
// registration; an answer: a, r, e) and one token per field in a fixed order (below): "-" for a field that is absent,
// or the text's length in bytes, ":" and its bytes. Numbers and flags are texts; a list is its length, then its items.

class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}
    void text(std::string_view s) {
        char digits[24];
        auto const end = std::to_chars(digits, digits + sizeof digits, s.size()).ptr;
        out_.append(digits, end);
        out_ += ':';
        out_.append(s);
    }
    void text(std::optional<std::string> const& s) {
        if (s) text(std::string_view(*s));
        else out_ += '-';
    }
    void flag(bool b) { text(std::string_view(b ? "1" : "0")); }
    void count(std::size_t n) {
        char digits[24];
        auto const end = std::to_chars(digits, digits + sizeof digits, n).ptr;
        text(std::string_view(digits, std::size_t(end - digits)));
    }
    void absent() { out_ += '-'; }

private:
    std::string& out_;
};

class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    std::optional<std::string> maybe_text() {
        if (at_ < in_.size() && in_[at_] == '-') {
            ++at_;
            return std::nullopt;
        }
        std::size_t n = 0;
        auto const [end, ec] = std::from_chars(in_.data() + at_, in_.data() + in_.size(), n);
        std::size_t const colon = std::size_t(end - in_.data());
        if (ec != std::errc() || colon >= in_.size() || in_[colon] != ':' || n > in_.size() - colon - 1) damaged();
        at_ = colon + 1 + n;
        return std::string(in_.substr(colon + 1, n));
    }
    std::string text() {
        auto t = maybe_text();
        if (!t) damaged();
        return std::move(*t);
    }
    bool flag() { return text() == "1"; }
    std::optional<std::size_t> maybe_count() {
        auto t = maybe_text();
        if (!t) return std::nullopt;
        std::size_t n = 0;
        auto const [end, ec] = std::from_chars(t->data(), t->data() + t->size(), n);
        // Every item takes at least one byte: a count beyond what is left is damage, not an allocation.
        if (ec != std::errc() || end != t->data() + t->size() || n > in_.size() - at_) damaged();
        return n;
    }
    bool done() const { return at_ == in_.size(); }
    [[noreturn]] static void damaged() {
        throw std::runtime_error("a stored batch answer is damaged (batch_results.result_json)");
    }

private:
    std::string_view in_;
    std::size_t at_ = 0;
};

constexpr std::string_view compact_mark = "K1";

void write_eligibility(Writer& w, EligibilityRecord const& e) {
    for (std::string const* s : {&e.insurer, &e.symbol, &e.number, &e.branch, &e.birthdate, &e.name, &e.name_kana,
                                 &e.burden_ratio, &e.valid_from})
        w.text(std::string_view(*s));
    w.text(e.valid_to);
    w.text(std::string_view(e.card_classification));
    w.text(std::string_view(e.personal_family));
    w.text(e.loss_reason);
}

EligibilityRecord read_eligibility(Reader& r) {
    EligibilityRecord e;
    for (std::string* s : {&e.insurer, &e.symbol, &e.number, &e.branch, &e.birthdate, &e.name, &e.name_kana,
                           &e.burden_ratio, &e.valid_from})
        *s = r.text();
    e.valid_to = r.maybe_text();
    e.card_classification = r.text();
    e.personal_family = r.text();
    e.loss_reason = r.maybe_text();
    return e;
}

void write_echo(Writer& w, std::optional<Echo> const& echo) {
    if (!echo) return w.absent();
    w.count(echo->size());
    for (auto const& [name, value] : *echo) {
        w.text(std::string_view(name));
        w.text(std::string_view(value));
    }
}

std::optional<Echo> read_echo(Reader& r) {
    auto n = r.maybe_count();
    if (!n) return std::nullopt;
    Echo echo;
    echo.reserve(*n);
    for (std::size_t i = 0; i < *n; ++i) {
        std::string name = r.text();
        echo.emplace_back(std::move(name), r.text());
    }
    return echo;
}

void write_card(Writer& w, CardFields const& card) {
    for (auto const* field : {&card.insurer_number, &card.symbol, &card.number, &card.branch, &card.birthdate})
        w.text(*field);
}

CardFields read_card(Reader& r) {
    CardFields card;
    for (auto* field : {&card.insurer_number, &card.symbol, &card.number, &card.branch, &card.birthdate})
        *field = r.maybe_text();
    return card;
}

// A request as every version before the compact form stored it: a JSON object.
BatchRow json_request_of(std::string_view stored) {
    json const r = json::parse(stored, nullptr, false);
    if (r.is_discarded() || !r.is_object()) return RowUnread{std::string(), std::nullopt, std::nullopt};
    if (r.contains("malformed"))
        return RowUnread{text_of(r, "malformed").value_or(""), text_of(r, "field"), echo_of(r)};
    if (auto person = text_of(r, "person_key"))
        return RowConsented{*person, text_of(r, "consent_date").value_or(""), text_of(r, "visit_kind").value_or("")};
    if (auto number = text_of(r, "reference_number"))
        return RowRegistration{*number, card_of(r), echo_of(r).value_or(Echo{})};
    return RowQuery{card_of(r), text_of(r, "arbitrary_identifier").value_or(""), echo_of(r)};
}
}  // namespace

std::string stored_request(BatchRow const& row) {
    std::string out;
    out.reserve(96);
    out.append(compact_mark);
    Writer w(out);
    if (auto const* q = std::get_if<RowQuery>(&row)) {
        w.text(std::string_view("q"));
        write_card(w, q->card);
        w.text(std::string_view(q->arbitrary_identifier));
        write_echo(w, q->echo);
    } else if (auto const* u = std::get_if<RowUnread>(&row)) {
        w.text(std::string_view("u"));
        w.text(std::string_view(u->text));
        w.text(u->field);
        write_echo(w, u->echo);
    } else if (auto const* c = std::get_if<RowConsented>(&row)) {
        w.text(std::string_view("c"));
        for (std::string const* text : {&c->person, &c->consent_date, &c->visit_kind}) w.text(std::string_view(*text));
    } else {
        auto const& reg = std::get<RowRegistration>(row);
        w.text(std::string_view("g"));
        w.text(std::string_view(reg.reference_number));
        write_card(w, reg.card);
        write_echo(w, reg.echo);
    }
    return out;
}

BatchRow stored_request_of(std::string_view stored) {
    if (stored.substr(0, compact_mark.size()) != compact_mark) return json_request_of(stored);
    try {
        Reader r(stored.substr(compact_mark.size()));
        BatchRow row;
        std::string const kind = r.text();
        if (kind == "q") {
            RowQuery q;
            q.card = read_card(r);
            q.arbitrary_identifier = r.text();
            q.echo = read_echo(r);
            row = std::move(q);
        } else if (kind == "u") {
            RowUnread u;
            u.text = r.text();
            u.field = r.maybe_text();
            u.echo = read_echo(r);
            row = std::move(u);
        } else if (kind == "c") {
            RowConsented c;
            for (std::string* text : {&c.person, &c.consent_date, &c.visit_kind}) *text = r.text();
            row = std::move(c);
        } else if (kind == "g") {
            RowRegistration g;
            g.reference_number = r.text();
            g.card = read_card(r);
            g.echo = read_echo(r).value_or(Echo{});
            row = std::move(g);
        } else {
            Reader::damaged();
        }
        if (!r.done()) Reader::damaged();
        return row;
    } catch (std::runtime_error const&) {
        return RowUnread{std::string(), std::nullopt, std::nullopt};  // damaged: the row's own error, as any unreadable
    }
}

std::string stored_answer(BatchRowAnswer const& a) {
    std::string out;
    out.reserve(a.answer && a.answer->eligibility ? 512 : 256);
    out.append(compact_mark);
    Writer w(out);
    if (a.answer) {
        EligibilityAnswer const& e = *a.answer;
        w.text(std::string_view("a"));
        w.flag(e.allowed);
        if (e.qualification_validity) w.count(std::size_t(*e.qualification_validity));
        else w.absent();
        w.text(std::string_view(e.reason.ja));
        w.text(std::string_view(e.reason.en));
        if (e.basis) {
            w.text(std::string_view(e.basis->visit_kind));
            w.text(std::string_view(e.basis->first_visit));
        } else {
            w.absent();
        }
        w.text(e.window_end);
        if (e.eligibility) {
            w.flag(true);
            write_eligibility(w, *e.eligibility);
        } else {
            w.absent();
        }
        if (e.reference_numbers) {
            w.count(e.reference_numbers->size());
            for (auto const& n : *e.reference_numbers) w.text(std::string_view(n));
        } else {
            w.absent();
        }
        w.text(e.query_date);
    } else if (a.registration) {
        w.text(std::string_view("r"));
        w.flag(*a.registration);
        w.text(a.error);
    } else {
        w.text(std::string_view("e"));
        w.text(std::string_view(a.error.value_or("")));
        w.text(a.field);
    }
    w.text(a.arbitrary_identifier);
    write_echo(w, a.echo);
    w.text(a.consent_date);
    return out;
}

BatchRowAnswer stored_answer_of(std::string_view stored) {
    if (!stored.empty() && stored.front() == '{') {  // an earlier version's JSON
        json const r = json::parse(stored, nullptr, false);
        if (r.is_discarded() || !r.is_object()) Reader::damaged();
        return batch_answer_of(r);
    }
    if (stored.substr(0, compact_mark.size()) != compact_mark) Reader::damaged();
    Reader r(stored.substr(compact_mark.size()));
    BatchRowAnswer a;
    std::string const kind = r.text();
    if (kind == "a") {
        EligibilityAnswer e;
        e.allowed = r.flag();
        if (auto v = r.maybe_count()) e.qualification_validity = int(*v);
        e.reason.ja = r.text();
        e.reason.en = r.text();
        if (auto visit_kind = r.maybe_text()) {
            e.basis = ConsentRecord{};
            e.basis->visit_kind = std::move(*visit_kind);
            e.basis->first_visit = r.text();
        }
        e.window_end = r.maybe_text();
        if (r.maybe_text()) e.eligibility = read_eligibility(r);
        if (auto n = r.maybe_count()) {
            e.reference_numbers.emplace();
            for (std::size_t i = 0; i < *n; ++i) e.reference_numbers->push_back(r.text());
        }
        e.query_date = r.maybe_text();
        a.answer = std::move(e);
    } else if (kind == "r") {
        a.registration = r.flag();
        a.error = r.maybe_text();
    } else if (kind == "e") {
        a.error = r.text();
        a.field = r.maybe_text();
    } else {
        Reader::damaged();
    }
    a.arbitrary_identifier = r.maybe_text();
    a.echo = read_echo(r);
    a.consent_date = r.maybe_text();
    if (!r.done()) Reader::damaged();
    return a;
}

json batch_answer_json(BatchRowAnswer const& a) {
    json out;
    if (a.answer) {
        out = eligibility_answer_json(*a.answer);
        out["processing_result_status"] = 1;
    } else if (a.registration) {
        out = json{{"registration", *a.registration}};
        if (a.error) out["error"] = *a.error;
    } else {
        out = json{{"error", a.error.value_or("")}, {"processing_result_status", 2}};
        if (a.field) out["field"] = *a.field;
    }
    if (a.arbitrary_identifier) out["arbitrary_identifier"] = *a.arbitrary_identifier;
    if (a.echo) out["echo"] = echo_json(*a.echo);
    if (a.consent_date) out["consent_date"] = *a.consent_date;
    return out;
}

BatchRowAnswer batch_answer_of(json const& r) {
    BatchRowAnswer a;
    if (auto it = r.find("registration"); it != r.end() && it->is_boolean()) {
        a.registration = it->get<bool>();
        a.error = text_of(r, "error");
    } else if (auto status = r.find("processing_result_status"); status != r.end() && *status == 1) {
        a.answer = eligibility_answer_of(r);
    } else {
        // (a row refused for a reason of the rules' before it was stored with an error of its own)
        a.error = text_of(r, "error").value_or(text_of(r, "reason").value_or(""));
        a.field = text_of(r, "field");
    }
    a.arbitrary_identifier = text_of(r, "arbitrary_identifier");
    a.echo = echo_of(r);
    a.consent_date = text_of(r, "consent_date");
    return a;
}

}  // namespace kyotaku::server
