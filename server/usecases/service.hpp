// The reference verification system's use cases, independent of HTTP, one desk per area (architecture.md "The
// server's layers"): each desk runs the sequence of one request and its transaction. Every allow/deny about a
// patient's data comes from the decision path (decision.hpp), which alone asks the rules; the date comes from the
// injected clock; the caller's facility, role and terminal come from its certificate.
#pragma once

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/ids.hpp"
#include "core/secrets.hpp"
#include "decision/decision.hpp"
#include "contract/rule_contract.hpp"
#include "storage/database.hpp"
#include "storage/records.hpp"
#include "usecases/admin.hpp"
#include "usecases/batch.hpp"
#include "usecases/consent.hpp"
#include "usecases/context.hpp"
#include "usecases/events.hpp"
#include "usecases/inquiry.hpp"
#include "usecases/ledger.hpp"
#include "usecases/oqs_files.hpp"
#include "usecases/request_gate.hpp"
#include "usecases/settings.hpp"
#include "usecases/withdrawal.hpp"

#include <atomic>
#include <functional>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

class Handoffs;  // usecases/handoff.hpp: 引き継ぎ of the consent page to the staff's device

// Everything, wired together. Throws std::runtime_error (naming what is missing) when the rules do not fulfil
// the rule contract.
class Service {
public:
    // exact_bundle: the signed bundle's bytes the rules were loaded from (see RuleContract::exact_bundle).
    Service(Database& db, std::shared_ptr<Program const> rules, Clock& clock,
            std::shared_ptr<std::string const> exact_bundle = nullptr);
    ~Service();
    Service(Service const&) = delete;
    Service& operator=(Service const&) = delete;

    Context context;
    AdminDesk admin{context};
    SettingsDesk settings{context};
    LedgerDesk ledger{context};
    ConsentDesk consent{context, settings};
    InquiryDesk inquiry{context};
    WithdrawalDesk withdrawal{context};
    BatchDesk batch{context};
    OqsDesk oqs{context, batch, inquiry};
    Handoffs& handoffs() { return *handoffs_; }

    // Replaces the rules in force (requests in flight finish on the old ones). Returns the contract error and keeps
    // the old rules when the new ones do not fulfil it.
    std::optional<std::string> replace_rules(std::shared_ptr<Program const> rules,
                                             std::shared_ptr<std::string const> exact_bundle = nullptr);

    bool facility_exists(std::string const& code);
    // An interactive request starts (the ticket goes to request_end): the batch worker lets it finish first.
    std::uint64_t request_begin() { return context.gate.enter(); }
    void request_end(std::uint64_t ticket) { context.gate.leave(ticket); }

private:
    std::unique_ptr<Handoffs> handoffs_;
};

// Binds a rule program to the contract, or throws std::runtime_error with the contract's message.
Rules bind_rules(std::shared_ptr<Program const> program, std::shared_ptr<std::string const> exact_bundle = nullptr);

}  // namespace kyotaku::server
