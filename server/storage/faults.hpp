// Database faults that pass, and when work may be done again after one (architecture.md "Past one machine";
// docs/operations.md "12. High availability").
//
// Both backends keep, per thread, a ledger of what the statements since the last reset may have committed: a
// transaction's COMMIT that returned, a lone write that returned, or one whose fate is unknown (the connection
// was lost while a commit or a lone write was under way: it may have been committed or not). A unit of work — one
// request — that fails with a TransientDatabaseError may be run again only while its ledger is clean: then it
// committed nothing, and running it again cannot do anything twice.
#pragma once

#include "storage/database.hpp"

namespace kyotaku::server {

struct WriteLedger {
    int committed = 0;      // transactions committed and lone writes done
    bool in_doubt = false;  // a commit or a lone write whose connection was lost before its answer
    bool clean() const { return committed == 0 && !in_doubt; }
};
// This thread's ledger (reset by once_more_if_nothing_committed; the backends add to it).
WriteLedger& write_ledger();

// Whether a lone statement (outside a transaction) only reads: one SELECT, or WITH … SELECT, with no word anywhere
// that writes or locks (INSERT, UPDATE, DELETE, MERGE, INTO, FOR, nextval, setval, pg_advisory_*, pg_try_advisory_*;
// string literals included) and no second statement after a semicolon. A write is run as a transaction of its own
// (PostgreSQL) and counted in the ledger: a read taken for one costs two round trips more and is not run again after
// a fault; a write taken for a read would be (a double write, not durable against a failover), so a doubt is a write.
bool reads_only(std::string const& sql);

// Runs `work` — one request's use case — with a fresh ledger. When it fails with a TransientDatabaseError and
// nothing of it may have been committed, it is run once more (the pool lends a connection that is alive, or
// connects a new one); a second such failure, or one after a commit, reaches the caller (an answer of 503, never
// 500). `retries` counts the second runs (Database::retries, for /metrics).
template <typename F>
auto once_more_if_nothing_committed(std::atomic<std::uint64_t>& retries, F&& work) -> decltype(work()) {
    write_ledger() = {};
    try {
        return work();
    } catch (TransientDatabaseError const&) {
        if (!write_ledger().clean()) throw;
    }
    ++retries;
    write_ledger() = {};
    return work();
}

}  // namespace kyotaku::server
