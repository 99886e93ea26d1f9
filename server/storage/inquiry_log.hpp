// inquiry_log: 資格確認履歴 (inquiry_log) and 医療情報閲覧履歴 (viewing_log) — what every desk that answers about a
// patient writes, and the pages the history routes read (in (at, id) order, after a cursor).
#pragma once

#include "storage/database.hpp"

#include <optional>
#include <string>
#include <vector>

namespace kyotaku::server {

// One 資格確認履歴 entry: who asked (the certificate's subject, or マイナ在宅受付Web), by which route (kind), about
// whom (the server's person key; empty: no one it knows), what was answered (allowed, and in detail — a JSON object, as
// stored and shown — the reason, the consent and how the caller named the patient), and for a batch its reception
// number. One per patient answered.
struct InquiryEntry {
    std::string facility, actor, kind, person;
    bool allowed = false;
    std::string detail_json;
    std::string reception = {};
};

// One 医療情報閲覧履歴 entry: the item a terminal asked for, about whom (empty: no one the server knows), and the
// answer.
struct ViewingEntry {
    std::string facility, person, item, terminal;
    bool allowed = false;
    std::string reason;
};

// A page of entries as read: the entries and the cursor of the next (nullopt on the last page).
template <class Entry>
struct HistoryEntries {
    std::vector<Entry> entries;
    std::optional<std::string> next;
};
// 資格確認履歴 as read: who asked (actor), by which route (kind), a batch's reception number, and the entry's detail.
struct InquiryLogEntry {
    std::string at, kind;
    bool allowed = false;
    std::optional<std::string> actor, reception_number;
    std::string detail_json;
};
// 医療情報閲覧履歴 as read.
struct ViewingLogEntry {
    std::string at, item, terminal;
    bool allowed = false;
    std::string reason;
};

// Which entries a page holds, checked: from `from` (the first instant included) to `to` (the first instant after the
// page), after the entry (after_at, after_id) — the last of the previous page ("" before the first) — at most `limit`.
struct LogPage {
    std::string from, to, after_at, after_id;
    int limit = 0;
};

class InquiryLog {
public:
    explicit InquiryLog(Database& db) : db_(db) {}
    // One entry, stamped `at` (Database::append: the audit line of a read, in the caller's transaction when there is
    // one); many — a batch's rows — in one insert (their texts moved into it, not copied).
    void append(InquiryEntry const& e, std::string const& at);
    void append_all(std::vector<InquiryEntry> entries, std::string const& at);
    void append_viewing(ViewingEntry const& v, std::string const& at);
    // A page of the facility's entries; `person`, when given, keeps one person's 資格確認履歴.
    HistoryEntries<InquiryLogEntry> inquiries(std::string const& facility, LogPage const& page,
                                              std::optional<std::string> const& person);
    HistoryEntries<ViewingLogEntry> viewings(std::string const& facility, LogPage const& page);

private:
    Database& db_;
};

}  // namespace kyotaku::server
