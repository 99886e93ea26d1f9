// Writes N megabytes of varied JSON Lines facts to stdout (for the eval throughput and memory runs).
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
    long long mb = argc > 1 ? std::atoll(argv[1]) : 100;
    long long limit = mb * 1024 * 1024, written = 0;
    char const* facilities[] = {"医科", "歯科", "薬局", "訪問看護ステーション"};
    char const* visits[] = {"訪問診療", "訪問看護", "往診", "オンライン診療", "訪問薬剤管理指導"};
    char const* terminals[] = {"資格確認端末", "電子カルテ端末", "モバイル端末"};
    std::string line;
    for (long long i = 0; written < limit; ++i) {
        int fm = 1 + int(i % 12), fd = 1 + int((i / 12) % 28);
        int qm = 1 + int((i / 7) % 12);
        char buf[1024];
        int n = std::snprintf(
            buf, sizeof buf,
            "{\"id\":\"r%lld\",\"facility_kind\":\"%s\",\"visit_kind\":\"%s\",\"first_visit\":\"2024-%02d-%02d\","
            "\"query_date\":\"2025-%02d-15\",\"continuing_home_care\":%s,\"reviewed_claim_months\":[\"2024-%02d\","
            "\"2024-%02d\",\"2024-%02d\"],"
            "\"terminal\":\"%s\",\"consented_items\":[\"薬剤情報\",\"診療情報\"],\"requested_item\":\"薬剤情報\","
            "\"feature_enabled\":%s}\n",
            i, facilities[i % 4], visits[i % 5], fm, fd, qm, i % 3 ? "false" : "true", fm, fm % 12 + 1,
            (fm + 1) % 12 + 1, terminals[i % 3], i % 10 ? "true" : "false");
        std::fwrite(buf, 1, std::size_t(n), stdout);
        written += n;
    }
    return 0;
}
