// Every public header of kyotaku includes this first: the headers are C++20 (std::span, <=>, designated
// initialisers), and a consumer compiling as C++17 or older is told so here, at its first include, instead of by
// an error deep inside another header. CMake consumers get C++20 with kyotaku::engine; pkg-config's flags carry
// -std=c++20.
#pragma once

#if defined(_MSVC_LANG) ? _MSVC_LANG < 202002L : __cplusplus < 202002L
#error "kyotaku needs C++20: compile with -std=c++20 or later (CMake: kyotaku::engine; pkg-config --cflags kyotaku)"
// #error lets the compiler go on into the C++20 headers, whose errors would bury the message: a missing header
// is fatal, so compilation stops here, at the message.
#include <kyotaku-needs-cxx20-stop-here>
#endif
