# The engine's sources, listed once (paths relative to engine/). Read by engine/CMakeLists.txt (the native library,
# also in the clang build of the fuzz targets) and wasm/CMakeLists.txt (the WebAssembly modules).
#
# runtime: what loads a compiled bundle and evaluates it (the consent page carries only this)
# jsonl:   the JSON Lines reader of `kyotaku eval` (simdjson natively, nlohmann/json in WebAssembly), with the
#          "did you mean" of a key that is no fact (syntax/suggest.cpp, which the checker uses too)
# front:   the parser, checker and compiler, rule-file tests, explain, diff (the CLI, the server, the workbench)
# emit:    the C++ emitter (`kyotaku compile --emit-cpp`; native only)
set(KYOTAKU_ENGINE_RUNTIME_SOURCES calendar/calendar.cpp compile/program.cpp eval/evaluator.cpp bundle/bundle.cpp)
set(KYOTAKU_ENGINE_JSONL_SOURCES eval/jsonl.cpp syntax/suggest.cpp)
set(KYOTAKU_ENGINE_FRONT_SOURCES syntax/grammar.cpp syntax/source.cpp syntax/diagnostics.cpp syntax/format.cpp
  check/checker.cpp compile/compiler.cpp compile/driver.cpp eval/testing.cpp eval/explain.cpp eval/diff.cpp)
set(KYOTAKU_ENGINE_EMIT_SOURCES compile/emit_cpp.cpp)
set(KYOTAKU_CONTRACT_SOURCES contract/rule_contract.cpp)
