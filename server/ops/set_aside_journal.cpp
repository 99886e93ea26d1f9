#include "ops/set_aside_journal.hpp"

#include "storage/audit_journal.hpp"
#include "storage/database.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <ostream>
#include <vector>

namespace kyotaku::server {

namespace {

constexpr std::size_t offsets_listed = 20;    // in the last line (each damaged stretch has a line of its own)

// The file, opened read-only and locked: never through a symlink, never a FIFO, device or folder. -1 with the
// reason printed.
int open_journal_file(std::string const& path, std::ostream& err) {
    int const fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        err << "kyotaku audit-journal: " << path
            << (errno == ELOOP ? ": is a symbolic link: refused (name the file itself)"
                               : std::string(": cannot open: ") + std::strerror(errno))
            << "\n";
        return -1;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err << "kyotaku audit-journal: " << path << ": is not a regular file: refused\n";
        ::close(fd);
        return -1;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err << "kyotaku audit-journal: " << path
            << ": another process holds it (a running server's own journal, or another kyotaku audit-journal): "
               "refused\n";
        ::close(fd);
        return -1;
    }
    return fd;
}

struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);  // (the lock goes with it)
    }
};

std::string text_of(Value const& v) { return std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : ""; }

// A good record as printed: what tells it apart and finds it in inquiry_log, nothing personal.
void print_good(std::ostream& out, JournalRecord const& r) {
    out << "byte " << r.offset << ": good: id " << text_of(r.line[0]) << ", facility " << text_of(r.line[1])
        << ", at " << text_of(r.line[2]) << ", kind " << text_of(r.line[3]) << "\n";
}
void print_damaged(std::ostream& out, JournalRecord const& r, char const* then) {
    out << "byte " << r.offset << ": damaged (" << r.size << " bytes, up to byte " << r.offset + r.size
        << "): " << r.why << then << "\n";
}
std::string offsets(std::vector<std::uint64_t> const& at, std::size_t count) {
    std::string s;
    for (std::size_t i = 0; i < at.size(); ++i) s += (i ? ", " : "") + std::to_string(at[i]);
    if (count > at.size()) s += " and " + std::to_string(count - at.size()) + " more";
    return s;
}

}  // namespace

int check_set_aside_journal(SetAsideJournalOptions const& o, std::ostream& out, std::ostream& err) {
    Fd const file{open_journal_file(o.file, err)};
    if (file.fd < 0) return journal_exit::failed;
    try {
        JournalReader reader(file.fd, o.file, true);
        std::size_t good = 0, damaged = 0;
        std::vector<std::uint64_t> at;
        for (JournalRecord r; reader.next(r);) {
            if (r.good) {
                ++good;
                print_good(out, r);
                continue;
            }
            if (damaged++ < offsets_listed) at.push_back(r.offset);
            print_damaged(out, r, "");
        }
        out << o.file << ": " << good << " good record(s), " << damaged << " damaged"
            << (damaged ? " (at byte " + offsets(at, damaged) + ")" : std::string()) << "\n";
        return damaged ? journal_exit::damaged : journal_exit::done;
    } catch (std::exception const& e) {
        err << "kyotaku audit-journal check: " << e.what() << "\n";
        return journal_exit::failed;
    }
}

int apply_set_aside_journal(SetAsideJournalOptions const& o, std::ostream& out, std::ostream& err) {
    if (is_postgres_url(o.db)) {
        err << "kyotaku audit-journal apply: --db " << o.db << ": audit journals are SQLite's only\n";
        return journal_exit::failed;
    }
    struct stat db_st {};
    if (::stat(o.db.c_str(), &db_st) != 0 || !S_ISREG(db_st.st_mode)) {
        err << "kyotaku audit-journal apply: --db " << o.db << ": no such database file (none is created)\n";
        return journal_exit::failed;
    }
    if (db_st.st_uid != ::geteuid()) {
        // (SQLite's -wal and -shm files, made by this process, would be its user's: the server could not open them)
        err << "kyotaku audit-journal apply: --db " << o.db << ": owned by user " << db_st.st_uid
            << ", not by this one (" << ::geteuid() << "): refused (run it as the database's owner: sudo -u kyotaku)\n";
        return journal_exit::failed;
    }
    Fd const file{open_journal_file(o.file, err)};
    if (file.fd < 0) return journal_exit::failed;
    struct stat file_st {}, live {};
    ::fstat(file.fd, &file_st);
    if (::stat((o.db + "-audit").c_str(), &live) == 0 && live.st_dev == file_st.st_dev &&
        live.st_ino == file_st.st_ino) {
        err << "kyotaku audit-journal apply: " << o.file << ": is the database's own journal (" << o.db
            << "-audit), which the server applies at its start: refused (apply takes a file it set aside)\n";
        return journal_exit::failed;
    }
    std::size_t applied = 0, present = 0, damaged = 0;
    std::vector<std::uint64_t> at;
    auto report = [&] {
        out << o.file << ": applied " << applied << ", already present " << present << ", skipped " << damaged
            << " damaged" << (damaged ? " (at byte " + offsets(at, damaged) + ")" : std::string()) << "\n";
    };
    try {
        auto db = open_sqlite(o.db, 1);
        SchemaState const schema = schema_state(*db);
        if (!schema.unknown.empty()) throw DatabaseError(schema_too_new_message(schema));
        if (!schema.pending.empty())
            throw DatabaseError("the database's schema is older than this kyotaku's (" +
                                std::to_string(schema.pending.size()) +
                                " migration(s) pending): start this version's server once first");
        JournalReader reader(file.fd, o.file, true);
        std::vector<std::vector<Value>> group;
        auto flush = [&] {
            if (group.empty()) return;
            std::size_t const inserted = db->apply_journal_lines(group);
            applied += inserted;
            present += group.size() - inserted;
            group.clear();
        };
        for (JournalRecord r; reader.next(r);) {
            if (!r.good) {
                if (damaged++ < offsets_listed) at.push_back(r.offset);
                print_damaged(out, r, ": skipped");
                continue;
            }
            group.push_back(std::move(r.line));
            if (group.size() == AuditJournal::lines_per_group) flush();  // (as the server's replay)
        }
        flush();
    } catch (std::exception const& e) {
        report();
        err << "kyotaku audit-journal apply: " << o.db << ": " << e.what()
            << " (the lines applied before stay; run it again: none is doubled)\n";
        return journal_exit::failed;
    }
    report();
    if (o.remove) {
        struct stat now {};
        if (damaged) {
            out << o.file << ": kept (it holds damaged records: keep it with the audit records)\n";
        } else if (::lstat(o.file.c_str(), &now) != 0 || now.st_dev != file_st.st_dev ||
                   now.st_ino != file_st.st_ino) {
            err << "kyotaku audit-journal apply: " << o.file
                << ": replaced while it was applied: not removed (every record read is in the database)\n";
            return journal_exit::failed;
        } else if (::unlink(o.file.c_str()) != 0) {
            err << "kyotaku audit-journal apply: " << o.file << ": cannot remove it: " << std::strerror(errno)
                << " (every record of it is in the database)\n";
            return journal_exit::failed;
        } else {
            out << o.file << ": removed (every record of it is in the database)\n";
        }
    }
    return damaged ? journal_exit::damaged : journal_exit::done;
}

}  // namespace kyotaku::server
