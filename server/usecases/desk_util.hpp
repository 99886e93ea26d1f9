// Small pieces the desks share (not part of the server's interface).
#pragma once

#include "core/codes.hpp"
#include "formats/field_values.hpp"
#include "storage/facility_registry.hpp"
#include "usecases/service.hpp"

#include <date/date.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

namespace kyotaku::server {

inline void require_admin(Caller const& c) {
    if (c.kind != Caller::Kind::admin)
        throw forbidden("運用者 (kyotaku-admin) の証明書が必要です", "the operator's certificate is required");
}
inline void require_facility(Caller const& c) {
    if (c.kind != Caller::Kind::facility)
        throw forbidden("医療機関等の証明書が必要です", "a facility certificate is required");
}
// 管理者 of the facility (通知 別添1: 環境設定, 医療機関別URL, the device ledger, withdrawals).
inline void require_manager(Caller const& c) {
    require_facility(c);
    if (c.role != Caller::Role::manager)
        throw forbidden("施設の管理者の証明書が必要です (職員の証明書ではできません)",
                        "the facility's 管理者 certificate is required");
}

// The card fields of a request, canonical and validated (insurer_number, symbol, number, branch, birthdate).
Card card_from(CardFields const& f);

// A date field of something that has happened (a first visit, a check, a record), as sent (ISO or 和暦): ISO, and
// not after the server's today (invalid, naming the field): a record dated ahead would act on the days to come. `what`
// names it in Japanese.
std::string not_after_today(Context& x, char const* field, std::string const& sent, char const* what);

std::vector<unsigned char> from_hex(std::string const& hex);

// Inside a transaction: the transactions that limit what one facility does run one after another until this one
// ends (FacilityRegistry::lock).
inline void lock_facility(Context& x, std::string const& facility) { FacilityRegistry(x.db).lock(facility); }

// A facility URL (its token) the server does not take — unknown, changed, its key retired — as the consent page's
// routes answer it (not_found, naming `token`): what happened, then the one next step (the facility's new QR code).
inline Error url_refused(Message const& reason) {
    return Error(Error::Kind::not_found, "token",
                 Message{reason.ja +
                             "。職員に新しいQRコードを見せてもらい、読み取ってから、はじめからやり直してください。",
                         reason.en + ": ask the facility for its new QR code"});
}

// The client whose budgets a request of the consent page spends at `facility` (hand-offs, wrong codes, challenges,
// wrong passcodes: handoff.hpp, consent_limits.hpp): its network address (Caller::client); an office terminal of the
// facility itself is counted under a name no address has (`office_client`), and never held back. A モバイル端末
// certificate (an unlabelled one too) is counted by its address, as anyone (outsider 24, F2).
inline constexpr char const* office_client = "(office terminal)";
inline std::string budget_client(Caller const& caller, std::string const& facility) {
    bool const office_terminal = caller.kind == Caller::Kind::facility && caller.terminal != "モバイル端末";
    return office_terminal && caller.facility_code == facility ? office_client : caller.client;
}

// Whole seconds from the clock's now until a stored timestamp (Clock::timestamp's form) and `later`, at least 1: a
// Retry-After.
inline long long seconds_until(Clock const& clock, std::string const& at,
                               std::chrono::seconds later = std::chrono::seconds(0)) {
    std::istringstream in(at);
    date::sys_time<std::chrono::microseconds> t;
    in >> date::parse("%FT%T", t);
    if (in.fail()) return 60;
    auto left = static_cast<long long>(std::chrono::ceil<std::chrono::seconds>(t + later - clock.now()).count());
    // A clock stepped back (NTP) puts `at` in the future: never longer than the window itself.
    if (later.count() > 0) left = std::min(left, static_cast<long long>(later.count()));
    return std::max(1LL, left);
}

// "N分" for a Retry-After, rounded up: what the patient or the staff is told to wait.
inline std::string minutes_ja(long long seconds) { return std::to_string(std::max(1LL, (seconds + 59) / 60)) + "分"; }

// Writes a 資格確認履歴 entry (InquiryEntry, storage/inquiry_log.hpp): the fields a record needs, never a request body.
// One entry is appended (Database::append: the audit line of a read, part of the caller's transaction when there is
// one); many — a batch's rows — go in with the caller's transaction in one insert.
void log_inquiry(Context& x, InquiryEntry const& entry);
void log_inquiries(Context& x, std::vector<InquiryEntry> entries);

}  // namespace kyotaku::server
