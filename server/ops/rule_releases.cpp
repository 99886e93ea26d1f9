#include "ops/rule_releases.hpp"

#include "core/clock.hpp"

namespace kyotaku::server {

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }
}  // namespace

ReleaseAdmission judge_release(ReleaseFloor const& floor, ReleaseInfo const& release, std::uint64_t source_hash,
                               std::uint64_t rollback_to) {
    ReleaseAdmission a;
    a.floor = floor;
    std::uint64_t const r = release.release, f = floor.release;
    std::string const hash = source_hash_hex(source_hash);
    if (r > f) {
        a.accepted = a.raises_floor = true;
    } else if (r == f) {
        // The same number must mean the same rules: a changed rule set needs a new release number.
        a.accepted = r == 0 || floor.source_hash == hash;
        if (!a.accepted)
            a.refusal = Message{"リリース " + n(r) + " はこのデータベースで別のルール (ソースのハッシュ " +
                                    floor.source_hash + ") として使われました。このルールのハッシュは " + hash +
                                    " です。変えたルールには新しいリリース番号を付けてください (kyotaku release)",
                                "release " + n(r) + " was served from other rules (source hash " + floor.source_hash +
                                    ") by this database's servers; these rules hash to " + hash +
                                    ": a changed rule set needs a new release number (kyotaku release)"};
    } else if (rollback_to != 0 && rollback_to == r) {
        a.accepted = a.rollback = true;
    } else {
        a.refusal =
            Message{"リリース " + n(r) + " は、このデータベースで使った最も新しいリリース " + n(f) +
                        " より古いので使いません (巻き戻しの防止)。" + "本当に戻すときは rollback_to = " + n(r) +
                        " (--rollback-to " + n(r) + ") を指定してください。記録に残ります",
                    "release " + n(r) + " is older than release " + n(f) +
                        ", the newest this database's servers have served: refused (rollback "
                        "protection); to go back on purpose, set rollback_to = " +
                        n(r) + " (--rollback-to " + n(r) + "), which is logged"};
    }
    // A rollback_to that is not needed now would let release N be served again after a newer one: say so.
    if (a.accepted && rollback_to != 0 && !a.rollback)
        a.note = Message{
            "rollback_to = " + n(rollback_to) +
                " は今は使われていません。戻し終えたら設定から消してください (残すと、新しいリリースの後でもリリース " +
                n(rollback_to) + " に戻せてしまいます)",
            "rollback_to = " + n(rollback_to) +
                " is not in use now: remove it once the rollback is done (left set, it would let release " +
                n(rollback_to) + " be served again after a newer one)"};
    return a;
}

ReleaseFloor read_release_floor(Database& db) { return RuleReleaseFloor(db).read(); }

ReleaseAdmission admit_release(Database& db, ReleaseInfo const& release, std::uint64_t source_hash,
                               std::uint64_t rollback_to, std::string const& instance) {
    RuleReleaseFloor floor(db);
    return floor.atomically([&] {
        ReleaseAdmission a = judge_release(floor.lock(), release, source_hash, rollback_to);
        if (a.accepted && (a.raises_floor || a.rollback))
            floor.move({iso_timestamp(std::chrono::system_clock::now()), instance, a.rollback ? "rollback" : "served",
                        release.release, a.floor.release, source_hash_hex(source_hash), release.key_id});
        return a;
    });
}

}  // namespace kyotaku::server
