#include "usecases/service.hpp"

#include "usecases/desk_util.hpp"
#include "usecases/handoff.hpp"

#include "storage/inquiry_log.hpp"

#include <stdexcept>

namespace kyotaku::server {

Rules bind_rules(std::shared_ptr<Program const> program, std::shared_ptr<std::string const> exact_bundle) {
    auto bound = RuleContract::bind(std::move(program));
    if (auto const* error = std::get_if<Message>(&bound))
        throw std::runtime_error("ルールがサーバの契約を満たしません: " + error->ja +
                                 " / the rules do not fulfil the server's contract: " + error->en);
    std::get<RuleContract>(bound).exact_bundle = std::move(exact_bundle);
    return std::make_shared<RuleContract const>(std::move(std::get<RuleContract>(bound)));
}

Service::Service(Database& db, std::shared_ptr<Program const> rules, Clock& clock,
                 std::shared_ptr<std::string const> exact_bundle)
    : context(db, clock, bind_rules(std::move(rules), std::move(exact_bundle))),
      handoffs_(std::make_unique<Handoffs>(context, settings, consent)) {}

Service::~Service() = default;

std::optional<std::string> Service::replace_rules(std::shared_ptr<Program const> rules,
                                                  std::shared_ptr<std::string const> exact_bundle) {
    auto bound = RuleContract::bind(std::move(rules));
    if (auto const* error = std::get_if<Message>(&bound)) return error->text();
    std::get<RuleContract>(bound).exact_bundle = std::move(exact_bundle);
    context.set_rules(std::make_shared<RuleContract const>(std::move(std::get<RuleContract>(bound))));
    return std::nullopt;
}

bool Service::facility_exists(std::string const& code) {
    return FacilityRegistry(context.db).exists(code);
}

FacilityInfo Context::facility(Caller const& c) {
    DbRecords records(db);
    return facility(c, records);
}

FacilityInfo Context::facility(Caller const& c, Records& records) {
    if (c.kind != Caller::Kind::facility && c.kind != Caller::Kind::mobile)
        throw forbidden("医療機関等の証明書が必要です", "a facility certificate is required");
    auto f = records.facility(c.facility_code);
    if (!f) throw not_found("", "施設が登録されていません", "facility not registered");
    return *f;
}

Card card_from(CardFields const& f) {
    Card c;
    c.insurer = canonical_insurer_number(required("insurer_number", f.insurer_number));
    if (auto e = insurer_number_error(c.insurer, "insurer_number")) throw *e;
    c.symbol = normalize_symbol(f.symbol.value_or(""));
    c.number = normalize_symbol(required("number", f.number));
    c.branch = normalize_symbol(f.branch.value_or(""));
    check_line(c.symbol, "symbol", 20);
    check_line(c.number, "number", 20);
    if (c.number.empty()) throw invalid("number", "番号がありません", "number is empty");
    if (!c.branch.empty() && (c.branch.size() != 2 || c.branch.find_first_not_of("0123456789") != std::string::npos))
        throw invalid("branch", "枝番は2桁の数字です", "branch is 2 digits");
    c.birthdate = iso_date("birthdate", required("birthdate", f.birthdate));
    return c;
}

std::vector<unsigned char> from_hex(std::string const& hex) {
    std::vector<unsigned char> out;
    auto nibble = [](char ch) { return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<unsigned char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    return out;
}

std::string not_after_today(Context& x, char const* field, std::string const& sent, char const* what) {
    std::string const date = iso_date(field, sent);
    std::string const today = x.today().iso();
    if (date > today)
        throw invalid(field, std::string(what) + " " + date + " が今日 (" + today + ") より後です",
                      std::string(field) + " " + date + " is after today (" + today + ")");
    return date;
}

void log_inquiry(Context& x, InquiryEntry const& e) { InquiryLog(x.db).append(e, x.now()); }

void log_inquiries(Context& x, std::vector<InquiryEntry> entries) {
    InquiryLog(x.db).append_all(std::move(entries), x.now());
}

}  // namespace kyotaku::server
