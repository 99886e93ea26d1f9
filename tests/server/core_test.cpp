// core/: check digits, URL tokens, QR codes, ids.
#include "server_fixture.hpp"
#include "usecases/desk_util.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>

TEST(CheckDigits, KnownNumbersFromInterfacesMd) {
    for (char const* n : {"01130012", "06132013", "19136019", "33120015", "54016027", "273128"})
        EXPECT_TRUE(valid_insurer_number(n)) << n;
    EXPECT_TRUE(valid_facility_code("0110113719"));
    EXPECT_TRUE(valid_facility_code("2714206386"));
    EXPECT_FALSE(valid_facility_code("0110113718"));
    EXPECT_FALSE(valid_facility_code("011011371"));
    EXPECT_FALSE(valid_facility_code("01101137a9"));
    EXPECT_FALSE(valid_insurer_number("06132012"));
    EXPECT_FALSE(valid_insurer_number("273129"));
    // 6-digit 国保 numbers padded to 8 with zeros or spaces are the same number.
    EXPECT_EQ(canonical_insurer_number("00273128"), "273128");
    EXPECT_EQ(canonical_insurer_number("  273128"), "273128");
    EXPECT_EQ(canonical_insurer_number("０６１３２０１３"), "06132013");
    EXPECT_EQ(normalize_symbol(" １２３ "), "123");
}

TEST(UrlToken, SealsAndOpensAndRefusesTampering) {
    std::vector<unsigned char> key(32, 7), other(32, 8);
    std::string token = seal_url_token(key, 3, UrlClaims{"0110113719", 5});
    EXPECT_EQ(token.find("0110113719"), std::string::npos);  // the code is not visible
    EXPECT_EQ(url_token_key_version(token), 3u);
    auto claims = open_url_token(key, token);
    ASSERT_TRUE(claims);
    EXPECT_EQ(claims->facility_code, "0110113719");
    EXPECT_EQ(claims->generation, 5u);
    EXPECT_FALSE(open_url_token(other, token));
    // Every single-character change is detected (but the last character, whose low bits base64 leaves unused).
    for (std::size_t i = 0; i + 1 < token.size(); ++i) {
        std::string t = token;
        t[i] = t[i] == 'A' ? 'B' : 'A';
        EXPECT_FALSE(open_url_token(key, t)) << i;
    }
    EXPECT_FALSE(open_url_token(key, ""));
    EXPECT_FALSE(open_url_token(key, "!!!"));
    EXPECT_FALSE(url_token_key_version(std::string(600, 'A')));
}

TEST(QrCode, PngAndSvg) {
    std::string png = qr_png("https://127.0.0.1:8443/c/abc");
    ASSERT_GT(png.size(), 100u);
    EXPECT_EQ(png.substr(1, 3), "PNG");
    std::string svg = qr_svg("https://127.0.0.1:8443/c/abc");
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_NE(svg.find("<path"), std::string::npos);
}

// A Retry-After is never longer than its window, even when the clock was stepped back after the count was taken
// (outsider's F8: 964 s for a 15-minute window after a restart on an earlier test clock).
TEST(RetryAfter, NeverLongerThanItsWindowWhenTheClockWentBack) {
    TestClock clock(*Date::from_ymd(2024, 7, 31));
    std::string const first_failure = clock.timestamp();
    EXPECT_LE(seconds_until(clock, first_failure, std::chrono::seconds(900)), 900);
    clock.advance(std::chrono::minutes(-30));  // the clock stepped back half an hour
    EXPECT_EQ(seconds_until(clock, first_failure, std::chrono::seconds(900)), 900);
    EXPECT_EQ(seconds_until(clock, first_failure, std::chrono::seconds(60)), 60);
    clock.advance(std::chrono::minutes(30) + std::chrono::seconds(840));  // 14 minutes after it: one minute left
    EXPECT_EQ(seconds_until(clock, first_failure, std::chrono::seconds(900)), 60);
}

// valid_utf8 (simdjson's SIMD check) takes the text in blocks of up to 64 bytes: whatever lies at or across a
// block's edge is judged as one byte at a time would judge it.
TEST(ValidUtf8, AtEveryPlaceOfAWord) {
    std::string const kanji = "\xE5\x90\x89";               // 吉
    std::string const four = "\xF0\xA0\xAE\xB7";            // 𠮷 (four bytes)
    std::vector<std::string> const bad = {"\x80", "\xC3", "\xE5\x90", "\xED\xA0\x80" /* a surrogate */,
                                          "\xC0\xAF" /* overlong */, "\xF4\x90\x80\x80" /* beyond U+10FFFF */};
    for (std::size_t lead = 0; lead <= 70; ++lead) {
        std::string const ascii(lead, 'a');
        SCOPED_TRACE(lead);
        EXPECT_TRUE(valid_utf8(ascii));
        EXPECT_TRUE(valid_utf8(ascii + kanji + ascii));
        EXPECT_TRUE(valid_utf8(ascii + four));
        EXPECT_TRUE(valid_utf8(ascii + four + "bcdefghij"));
        for (auto const& b : bad) {
            EXPECT_FALSE(valid_utf8(ascii + b));
            EXPECT_FALSE(valid_utf8(ascii + b + "bcdefghijklmnop"));
            EXPECT_FALSE(valid_utf8(ascii + kanji + b + ascii));
        }
    }
}

// The ids of a batch chunk's 資格確認履歴 (one RAND_bytes call for all): each of the form of time_ordered_id — 32
// hex digits, the first 12 the milliseconds when it was made — and no two alike.
TEST(Ids, TimeOrderedIdsDrawnAtOnceKeepTheFormAndDiffer) {
    auto millis = [] {
        return std::uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
    };
    EXPECT_TRUE(time_ordered_ids(0).empty());
    std::uint64_t const before = millis();
    auto const ids = time_ordered_ids(1000);
    std::uint64_t const after = millis();
    ASSERT_EQ(ids.size(), 1000u);
    std::set<std::string> tails;
    for (auto const& id : ids) {
        ASSERT_EQ(id.size(), 32u) << id;
        EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
        std::uint64_t const ms = std::stoull(id.substr(0, 12), nullptr, 16);
        EXPECT_GE(ms, before) << id;
        EXPECT_LE(ms, after) << id;
        tails.insert(id.substr(12));
    }
    EXPECT_EQ(tails.size(), ids.size());  // 80 random bits each: a repeat would mean bytes used twice
    EXPECT_EQ(time_ordered_id().size(), 32u);
    EXPECT_NE(time_ordered_id().substr(12), time_ordered_id().substr(12));
}

// time_ordered_id and request_id draw their random bytes ahead, per thread: a thread's ids never repeat (one byte used
// twice would repeat a tail sooner or later: 10,000 ids here, ~200 draws of the buffer), each has its form, and a
// fork's child never takes the bytes its parent drew (it would make the parent's next ids).
TEST(Ids, DrawnAheadEachByteOnceAndNeverInAForksChild) {
    std::set<std::string> tails, requests;
    for (int i = 0; i < 10000; ++i) {
        std::string const id = time_ordered_id();
        ASSERT_EQ(id.size(), 32u) << id;
        EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
        tails.insert(id.substr(12));
        std::string const request = request_id();
        ASSERT_EQ(request.size(), 16u) << request;
        EXPECT_EQ(request.find_first_not_of("0123456789abcdef"), std::string::npos) << request;
        requests.insert(request);
    }
    EXPECT_EQ(tails.size(), 10000u);
    EXPECT_EQ(requests.size(), 10000u);
    (void)time_ordered_id();  // (this thread's buffer holds bytes not used yet)
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_t const child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        std::string const ids = time_ordered_id().substr(12) + request_id();
        ssize_t const n = ::write(out[1], ids.data(), ids.size());
        ::_exit(n == ssize_t(ids.size()) ? 0 : 1);
    }
    ::close(out[1]);
    std::string from_child(36, '\0');
    std::size_t got = 0;
    for (ssize_t n; got < from_child.size(); got += std::size_t(n))
        if ((n = ::read(out[0], from_child.data() + got, from_child.size() - got)) <= 0) break;
    ::close(out[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(got, from_child.size());
    std::string const parent = time_ordered_id().substr(12) + request_id();
    EXPECT_NE(from_child.substr(0, 20), parent.substr(0, 20));
    EXPECT_NE(from_child.substr(20), parent.substr(20));
}
