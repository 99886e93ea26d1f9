#include "storage/audit_journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <iostream>

namespace kyotaku::server {

std::atomic<int> AuditJournal::failing_writes{0};

namespace {
constexpr std::size_t header = 8;                      // length, checksum
constexpr std::uint32_t largest = 64u * 1024 * 1024;  // a longer record is taken for a torn one

void put32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}
void put64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}
std::uint64_t get(char const* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}
std::uint32_t crc(char const* p, std::size_t n) {
    return std::uint32_t(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<Bytef const*>(p), uInt(n)));
}

// One record's body (after length and checksum) read into `line`: false when it does not parse whole.
bool decode(char const* p, std::size_t n, JournalLine& line) {
    std::size_t at = 0;
    auto need = [&](std::size_t bytes) { return n - at >= bytes; };
    if (!need(12)) return false;
    line.seq = get(p, 8);
    std::size_t const sql = get(p + 8, 4);
    at = 12;
    if (!need(sql + 4)) return false;
    line.sql.assign(p + at, sql);
    at += sql;
    std::size_t const count = get(p + at, 4);
    at += 4;
    line.params.clear();
    for (std::size_t i = 0; i < count; ++i) {
        if (!need(1)) return false;
        char const type = p[at++];
        if (type == 0) {
            line.params.emplace_back(nullptr);
        } else if (type == 1) {
            if (!need(8)) return false;
            line.params.emplace_back(std::int64_t(get(p + at, 8)));
            at += 8;
        } else if (type == 2) {
            if (!need(4)) return false;
            std::size_t const len = get(p + at, 4);
            at += 4;
            if (!need(len)) return false;
            line.params.emplace_back(std::string(p + at, len));
            at += len;
        } else {
            return false;
        }
    }
    return at == n;
}
}  // namespace

std::unique_ptr<AuditJournal> AuditJournal::open(std::string const& path, bool create) {
    int const fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0) {
        if (errno == ENOENT && !create) return nullptr;
        throw DatabaseError("cannot open the audit journal " + path + ": " + std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {  // another holds it (EWOULDBLOCK)
        ::close(fd);
        return nullptr;
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0 && (st.st_mode & 077)) ::fchmod(fd, st.st_mode & 0700);
    std::unique_ptr<AuditJournal> journal(new AuditJournal(path, fd));
    journal->size_ = std::uint64_t(st.st_size);
    return journal;
}

AuditJournal::~AuditJournal() { ::close(fd_); }  // (the lock goes with it)

std::vector<JournalLine> AuditJournal::read_all() {
    std::string bytes;
    bytes.resize(size_);
    std::size_t got = 0;
    while (got < bytes.size()) {
        ssize_t const n = ::pread(fd_, bytes.data() + got, bytes.size() - got, off_t(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw DatabaseError("cannot read the audit journal " + path_ + ": " + std::strerror(errno));
        if (n == 0) break;
        got += std::size_t(n);
    }
    bytes.resize(got);
    std::vector<JournalLine> lines;
    std::size_t at = 0;
    while (at < bytes.size()) {
        if (bytes.size() - at < header) break;
        std::uint32_t const length = std::uint32_t(get(bytes.data() + at, 4)),
                            sum = std::uint32_t(get(bytes.data() + at + 4, 4));
        if (length > largest || bytes.size() - at - header < length) break;
        char const* body = bytes.data() + at + header;
        JournalLine line;
        if (crc(body, length) != sum || !decode(body, length, line)) break;
        if (!lines.empty() && line.seq <= lines.back().seq) break;  // (not written by this format)
        lines.push_back(std::move(line));
        at += header + length;
    }
    if (at < bytes.size()) {
        std::cerr << "kyotaku: " << path_ << ": 監査ジャーナルの末尾 " << bytes.size() - at
                  << " バイトは書きかけのため捨てました / dropped a torn tail of " << bytes.size() - at
                  << " bytes (a record cut short or with a wrong checksum) after " << lines.size()
                  << " whole record(s)\n";
        if (::ftruncate(fd_, off_t(at)) != 0)
            throw DatabaseError("cannot cut the torn tail of the audit journal " + path_ + ": " +
                                std::strerror(errno));
    }
    size_ = at;
    if (!lines.empty()) last_ = std::max(last_, lines.back().seq);
    return lines;
}

std::uint64_t AuditJournal::write(std::string const& sql, std::vector<Value> const& params) {
    std::uint64_t const seq = last_ + 1;
    std::string& out = buffer_;
    out.clear();
    out.resize(header);
    put64(out, seq);
    put32(out, std::uint32_t(sql.size()));
    out += sql;
    put32(out, std::uint32_t(params.size()));
    for (Value const& v : params) {
        if (std::holds_alternative<std::nullptr_t>(v)) {
            out.push_back(0);
        } else if (auto const* i = std::get_if<std::int64_t>(&v)) {
            out.push_back(1);
            put64(out, std::uint64_t(*i));
        } else {
            auto const& s = std::get<std::string>(v);
            out.push_back(2);
            put32(out, std::uint32_t(s.size()));
            out += s;
        }
    }
    std::size_t const length = out.size() - header;
    if (length > largest) throw DatabaseError("an audit line too long for the journal");
    std::string head;
    put32(head, std::uint32_t(length));
    put32(head, crc(out.data() + header, length));
    std::memcpy(out.data(), head.data(), header);
    std::size_t done = 0;
    int error = 0;
    if (failing_writes.load(std::memory_order_relaxed) > 0 && failing_writes.fetch_sub(1) > 0) error = ENOSPC;
    while (!error && done < out.size()) {
        ssize_t const n = ::pwrite(fd_, out.data() + done, out.size() - done, off_t(size_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) error = n < 0 ? errno : ENOSPC;
        else done += std::size_t(n);
    }
    if (error) {
        // Nothing of it stays: a part would be taken for a torn tail, and the next line written after it lost.
        if (done && ::ftruncate(fd_, off_t(size_)) != 0)
            std::cerr << "kyotaku: " << path_ << ": cannot cut a failed write off the audit journal: "
                      << std::strerror(errno) << "\n";
        throw TransientDatabaseError("cannot write the audit journal " + path_ + ": " + std::strerror(error) +
                                     " (the request is not answered)");
    }
    size_ += out.size();
    last_ = seq;
    return seq;
}

void AuditJournal::truncate() {
    if (size_ == 0) return;
    if (::ftruncate(fd_, 0) != 0) {
        std::cerr << "kyotaku: " << path_ << ": cannot empty the audit journal: " << std::strerror(errno) << "\n";
        return;  // (its lines are applied: a later start skips them by the mark)
    }
    size_ = 0;
}

}  // namespace kyotaku::server
