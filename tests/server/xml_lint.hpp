// Every XML answer the server tests receive is checked with xmllint --noout (libxml2-utils, scripts/setup): an answer
// that is not well-formed XML — a non-character stored in a field, an unescaped text — fails the test that got it.
//
// A Shift_JIS answer is CP932 (Windows' table, which receipt computers read: IBM extensions such as 髙 FBFC, 﨑 FAB1).
// libxml2 reads "Shift_JIS" with glibc's JIS X 0208 table, which lacks them, so such an answer is checked after
// converting it with CP932's table to UTF-8 (its declaration says so then); everything else is checked as it is.
#pragma once

#include "formats/oqs_xml.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace kyotaku::server::testing_xml {

inline ::testing::AssertionResult well_formed_xml(std::string const& body) {
    std::string text = body;
    if (declared_encoding(body) == "SHIFT_JIS") {
        text = to_utf8(body, "SHIFT_JIS");
        auto const end = text.find("?>");
        if (text.rfind("<?xml", 0) == 0 && end != std::string::npos)
            text = "<?xml version=\"1.0\" encoding=\"UTF-8\"" + text.substr(end);
    }
    static int counter = 0;
    auto const file = std::filesystem::temp_directory_path() /
                      ("kyotaku-xmllint-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".xml");
    std::ofstream(file, std::ios::binary) << text;
    std::string const command = "xmllint --noout --nonet '" + file.string() + "' 2>&1";
    std::string output;
    int status = -1;
    if (FILE* p = ::popen(command.c_str(), "r")) {
        char buffer[512];
        while (std::size_t n = std::fread(buffer, 1, sizeof buffer, p)) output.append(buffer, n);
        status = ::pclose(p);
    }
    std::filesystem::remove(file);
    if (status == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "xmllint --noout: " << (output.empty() ? "could not run xmllint" : output)
                                         << "\n"
                                         << text.substr(0, 2000);
}

}  // namespace kyotaku::server::testing_xml
