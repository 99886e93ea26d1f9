#include "storage/inquiry_log.hpp"

#include "core/ids.hpp"
#include "storage/audit_journal.hpp"

namespace kyotaku::server {

namespace {
Value text_or_null(std::string const& s) { return s.empty() ? Value(nullptr) : Value(s); }
Value text_or_null(std::string&& s) { return s.empty() ? Value(nullptr) : Value(std::move(s)); }
std::optional<std::string> text_or_none(Value const& v) {
    return is_null(v) ? std::nullopt : std::optional<std::string>(as_text(v));
}

// One page: `columns` of `table`, the facility's entries in the page's bounds after its cursor, in (at, id) order,
// each made by `entry`, and the cursor of the next page (none on the last). `person`, when given, keeps one person's
// entries.
template <class Entry>
HistoryEntries<Entry> page_of(Database& db, char const* table, char const* columns, std::string const& facility,
                              LogPage const& q, Entry (*entry)(Row const&),
                              std::optional<std::string> const& person = std::nullopt) {
    std::vector<Value> params{facility, q.from, q.to, q.after_at, q.after_id};
    if (person) params.emplace_back(*person);
    auto rows =
        db.query(std::string("SELECT ") + columns + ", at, id FROM " + table +
                     " WHERE facility_code = $1 AND at >= $2 AND at < $3 AND (at > $4 OR (at = $4 AND id > $5))" +
                     (person ? " AND person_key = $6" : "") + " ORDER BY at, id LIMIT " + std::to_string(q.limit + 1),
                 params);
    HistoryEntries<Entry> out;
    for (std::size_t i = 0; i < rows.size() && i < std::size_t(q.limit); ++i) out.entries.push_back(entry(rows[i]));
    if (rows.size() > std::size_t(q.limit)) {
        Row const& last = rows[std::size_t(q.limit) - 1];
        out.next = as_text(last[last.size() - 2]) + "_" + as_text(last[last.size() - 1]);
    }
    return out;
}
}  // namespace

void InquiryLog::append(InquiryEntry const& e, std::string const& at) {
    db_.append(inquiry_log_insert,  // (SQLite's audit journal takes these lines: storage/audit_journal.hpp)
               {time_ordered_id(), e.facility, at, e.kind, text_or_null(e.person), std::int64_t(e.allowed),
                e.detail_json, text_or_null(e.actor), text_or_null(e.reception)});
}

void InquiryLog::append_all(std::vector<InquiryEntry> entries, std::string const& at) {
    std::size_t next = 0;
    std::vector<std::string> ids = time_ordered_ids(entries.size());
    db_.insert_rows("inquiry_log",
                    {"id", "facility_code", "at", "kind", "person_key", "allowed", "detail_json", "actor",
                     "reception_number"},
                    [&](Row& row) {
                        if (next == entries.size()) return false;
                        InquiryEntry& e = entries[next++];
                        // Each value moved into its place (a braced Row would copy every text from its list).
                        row.resize(9);
                        row[0] = std::move(ids[next - 1]);
                        row[1] = std::move(e.facility);
                        row[2] = at;
                        row[3] = std::move(e.kind);
                        row[4] = text_or_null(std::move(e.person));
                        row[5] = std::int64_t(e.allowed);
                        row[6] = std::move(e.detail_json);
                        row[7] = text_or_null(std::move(e.actor));
                        row[8] = text_or_null(std::move(e.reception));
                        return true;
                    });
}

void InquiryLog::append_viewing(ViewingEntry const& v, std::string const& at) {
    db_.append("INSERT INTO viewing_log (id, facility_code, at, person_key, item, terminal, allowed, reason) VALUES "
               "($1, $2, $3, $4, $5, $6, $7, $8)",
               {new_id(), v.facility, at, text_or_null(v.person), v.item, v.terminal, std::int64_t(v.allowed),
                v.reason});
}

HistoryEntries<InquiryLogEntry> InquiryLog::inquiries(std::string const& facility, LogPage const& page,
                                                      std::optional<std::string> const& person) {
    return page_of<InquiryLogEntry>(
        db_, "inquiry_log", "at, kind, allowed, detail_json, actor, reception_number", facility, page,
        [](Row const& r) {
            return InquiryLogEntry{as_text(r[0]),      as_text(r[1]),      as_int(r[2]) != 0,
                                   text_or_none(r[4]), text_or_none(r[5]), as_text(r[3])};
        },
        person);
}

HistoryEntries<ViewingLogEntry> InquiryLog::viewings(std::string const& facility, LogPage const& page) {
    return page_of<ViewingLogEntry>(
        db_, "viewing_log", "at, item, terminal, allowed, reason", facility, page, [](Row const& r) {
            return ViewingLogEntry{as_text(r[0]), as_text(r[1]), as_text(r[2]), as_int(r[3]) != 0, as_text(r[4])};
        });
}

}  // namespace kyotaku::server
