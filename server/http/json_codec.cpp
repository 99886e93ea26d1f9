#include "http/json_codec.hpp"

#include "formats/fields.hpp"
#include "storage/faults.hpp"

#include <cctype>
#include <optional>
#include <set>
#include <vector>

namespace kyotaku::server {

using json = nlohmann::json;

// Invalid UTF-8 that a database from before issue 10 may hold is answered as U+FFFD, never a 500.
HttpResult json_result(int status, json const& body) {
    return HttpResult{status, "application/json; charset=utf-8",
                      body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

HttpResult unavailable_result() {
    bool const in_doubt = !write_ledger().clean();
    HttpResult r = error_result(
        in_doubt ? Error(Error::Kind::unavailable, "",
                         "データベースとの接続が切れました。保存されたかどうかを確かめてから、やり直してください",
                         "the database connection was lost: check whether the request took effect before repeating it")
                 : Error(Error::Kind::unavailable, "",
                         "データベースに一時的につながりません。少し待ってからもう一度お試しください",
                         "the database is unavailable for a moment: retry shortly"));
    r.headers.emplace_back("Retry-After", "2");
    return r;
}

int status_of(Error::Kind k) {
    switch (k) {
        case Error::Kind::invalid: return 400;
        case Error::Kind::forbidden: return 403;
        case Error::Kind::not_found: return 404;
        case Error::Kind::method_not_allowed: return 405;
        case Error::Kind::conflict: return 409;
        case Error::Kind::gone: return 410;
        case Error::Kind::too_large: return 413;
        case Error::Kind::unsupported: return 415;
        case Error::Kind::unprocessable: return 422;
        case Error::Kind::too_many: return 429;
        case Error::Kind::internal: return 500;
        case Error::Kind::unavailable: return 503;
    }
    return 500;
}
// One error shape for every answer: the Japanese and English texts as separate fields (and together in `error`).
HttpResult error_result(Error const& e) {
    json body{{"error", e.what()}, {"message_ja", e.message.ja}, {"message_en", e.message.en}};
    if (!e.field.empty()) body["field"] = e.field;
    HttpResult r = json_result(status_of(e.kind), body);
    if (e.retry_after > 0) r.headers.emplace_back("Retry-After", std::to_string(e.retry_after));
    return r;
}

namespace {
// Decodes %XX escapes and '+' of a query string value (category=%E8%A8%AA… for 訪問診療等).
std::string percent_decode(std::string const& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i] == '+' ? ' ' : s[i];
        }
    }
    return out;
}

}  // namespace

// The query parameter `name` of a target like /path?from=…&to=…, decoded.
std::string query_param(std::string const& target, std::string const& name) {
    auto q = target.find('?');
    if (q == std::string::npos) return {};
    std::string rest = target.substr(q + 1);
    std::size_t at = 0;
    while (at <= rest.size()) {
        std::size_t amp = rest.find('&', at);
        std::string pair = rest.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
        if (pair.rfind(name + "=", 0) == 0) return percent_decode(pair.substr(name.size() + 1));
        if (amp == std::string::npos) break;
        at = amp + 1;
    }
    return {};
}

// A JSON body, parsed without letting its nesting depth choose anything: values deeper than `max_depth` are
// refused (nlohmann's parser keeps its own stack; the callback sees each value's depth). The callback also keeps the
// keys of each object being read, so that a key given twice is refused, naming it (nlohmann would keep the last).
json parse_json_body_checked(std::string const& body) {
    constexpr int max_depth = 8;
    bool too_deep = false;
    std::optional<std::string> duplicate;
    std::vector<std::set<std::string>> keys;  // of each object open, outermost first (at most max_depth + 1)
    json j = json::parse(
        body,
        [&](int depth, json::parse_event_t event, json& parsed) {
            if (depth > max_depth) too_deep = true;
            if (too_deep || duplicate) return false;  // once refused, keep nothing more
            if (event == json::parse_event_t::object_start) keys.emplace_back();
            else if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
            else if (event == json::parse_event_t::key && !keys.empty() &&
                     !keys.back().insert(parsed.get<std::string>()).second)
                duplicate = parsed.get<std::string>();
            return !duplicate;
        },
        false);
    if (too_deep) throw invalid("", "本文の入れ子が深すぎます", "the body is nested too deeply");
    if (j.is_discarded() && !duplicate) throw invalid("", "本文が JSON として読めません", "the body is not valid JSON");
    if (duplicate) {
        std::string const key = utf8_prefix(*duplicate, 64);
        throw invalid(key, "本文に \"" + key + "\" が2回あります。1回だけにしてください",
                      "the key \"" + key + "\" appears twice in the body");
    }
    if (!j.is_object()) throw invalid("", "本文は JSON のオブジェクトです", "the body must be a JSON object");
    return j;
}

namespace {
// The common body — an object of at most 8 levels, no key twice, valid JSON — built by a SAX handler straight into
// the tree, a key given twice found by the object's own map (no set of keys, no callback per event). It gives up on
// anything else (a 9th level opened, a key again, a syntax error, not an object), and parse_json_body_checked then
// parses the body again to refuse it with its own words: what is taken, and every refusal, are the checked parse's.
class PlainBody {
public:
    explicit PlainBody(json& root) : root_(root) {}
    bool null() { return put(nullptr); }
    bool boolean(bool v) { return put(v); }
    bool number_integer(json::number_integer_t v) { return put(v); }
    bool number_unsigned(json::number_unsigned_t v) { return put(v); }
    bool number_float(json::number_float_t v, json::string_t const&) { return put(v); }
    bool string(json::string_t& v) { return put(v); }
    bool binary(json::binary_t&) { return false; }
    bool start_object(std::size_t) { return open(json::value_t::object); }
    bool start_array(std::size_t) { return open(json::value_t::array); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }
    bool key(json::string_t& k) {
        auto [at, fresh] = open_.back()->get_ref<json::object_t&>().try_emplace(k);
        element_ = &at->second;
        return fresh;
    }
    bool parse_error(std::size_t, std::string const&, nlohmann::detail::exception const&) { return false; }

private:
    static constexpr std::size_t max_open = 8;  // as deep as the checked parse takes, and no deeper
    template <class V>
    json* place(V&& v) {
        if (open_.empty()) return &(root_ = json(std::forward<V>(v)));
        if (open_.back()->is_array()) return &open_.back()->emplace_back(std::forward<V>(v));
        return &(*element_ = json(std::forward<V>(v)));
    }
    template <class V>
    bool put(V&& v) {
        place(std::forward<V>(v));
        return true;
    }
    bool open(json::value_t type) {
        if (open_.size() >= max_open) return false;
        open_.push_back(place(type));
        return true;
    }
    bool close() {
        open_.pop_back();
        return true;
    }
    json& root_;
    std::vector<json*> open_;
    json* element_ = nullptr;
};
}  // namespace

json parse_json_body(std::string const& body) {
    json j;
    PlainBody plain(j);
    if (json::sax_parse(body, &plain) && j.is_object()) return j;
    return parse_json_body_checked(body);
}

}  // namespace kyotaku::server
