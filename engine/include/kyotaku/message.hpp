// A message for people, in both languages, kept apart: Japanese (what patients and staff read) and English (logs,
// the API, developers). Nobody splits a joined string to find one of them (style.md 15, "errors as data").
// Every error that leaves the engine carries one: diagnostics, LoadResult, DateParse, MonthParse, the signing
// results; the server's and the consent page's errors are built on it.
#pragma once

#include "kyotaku/cxx20.hpp"  // first: a clear message for a C++17 consumer

#include <string>

namespace kyotaku {

struct Message {
    std::string ja;
    std::string en;

    bool empty() const { return ja.empty() && en.empty(); }
    // "ja / en": one line for a log or a developer's console; never parsed back. A rule's reason is Japanese only:
    // then the Japanese alone.
    std::string text() const { return en.empty() ? ja : ja.empty() ? en : ja + " / " + en; }
    friend bool operator==(Message const&, Message const&) = default;
};

}  // namespace kyotaku
